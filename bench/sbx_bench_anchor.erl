%% The anchor that bench/rpc measures sandboxd against: loaded (code:load_binary over
%% rpc) into a plain BEAM peer node started for the bench.
%%
%%   ping/0   the equivalent of sandbox:ping/0 on a BEAM node: a gen_server:call to a
%%            registered process that answers pong.
%%   plain/0  pong straight from the function, without the registered-process hop.
-module(sbx_bench_anchor).

-behaviour(gen_server).

-export([start/0, ping/0, plain/0]).
-export([init/1, handle_call/3, handle_cast/2]).

%% Starts the registered server, unlinked, so it outlives the rpc process that asked.
start() ->
    case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok
    end.

ping() -> gen_server:call(?MODULE, ping).

plain() -> pong.

init([]) -> {ok, nostate}.

handle_call(ping, _From, State) -> {reply, pong, State}.

handle_cast(_Msg, State) -> {noreply, State}.
