%% The anchor that bench/scale measures sandboxd's create against: loaded (code:load_binary
%% over rpc) into a plain BEAM peer node started for the bench. A registered process owns
%% one port per "sandbox": open_port({spawn_executable, "/bin/sleep"}, ...) running
%% `sleep 1000`, the plain-Erlang way of starting and holding an OS process.
%%
%%   start/0      starts the registered owner (unlinked, so it outlives the rpc process)
%%   create/1     opens one port running `sleep 1000`; {ok, OsPid}
%%   count/0      how many ports it holds
%%   set_list/1, list/0   keeps a term (sandboxd's list() reply) and returns it: the
%%                anchor for list(), a BEAM node answering the same term from a process
%%   stop_all/0   closes every port, SIGTERMs the sleeps (SIGKILL after 5 s) and waits
%%                until they are gone; {ok, #{ports, left, ms}}
-module(sbx_bench_scale_anchor).

-behaviour(gen_server).

-export([start/0, create/1, count/0, stop_all/0, set_list/1, list/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() ->
    case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok
    end.

create(Id) -> gen_server:call(?MODULE, {create, Id}, 30000).

count() -> gen_server:call(?MODULE, count).

set_list(L) -> gen_server:call(?MODULE, {set_list, L}).

list() -> gen_server:call(?MODULE, list).

stop_all() -> gen_server:call(?MODULE, stop_all, 60000).

init([]) ->
    Sleep = case os:find_executable("sleep") of
                false -> "/bin/sleep";
                S -> S
            end,
    {ok, #{sleep => Sleep, ports => #{}}}.

handle_call({create, Id}, _From, #{sleep := Sleep, ports := Ports} = St) ->
    try open_port({spawn_executable, Sleep},
                  [{args, ["1000"]}, {arg0, "sleep"}, binary, exit_status,
                   stderr_to_stdout]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            {reply, {ok, OsPid}, St#{ports := Ports#{Id => {Port, OsPid}}}}
    catch Class:Reason ->
            {reply, {error, {Class, Reason}}, St}
    end;
handle_call({set_list, L}, _From, St) ->
    {reply, ok, St#{list => L}};
handle_call(list, _From, St) ->
    {reply, maps:get(list, St, []), St};
handle_call(count, _From, #{ports := Ports} = St) ->
    {reply, map_size(Ports), St};
handle_call(stop_all, _From, #{ports := Ports} = St) ->
    T0 = erlang:monotonic_time(millisecond),
    List = maps:values(Ports),
    [catch port_close(P) || {P, _} <- List],
    OsPids = [O || {_, O} <- List],
    kill(OsPids, "TERM"),
    Left = case wait_gone(OsPids, T0 + 5000) of
               [] -> [];
               L -> kill(L, "KILL"), wait_gone(L, T0 + 10000)
           end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    {reply, {ok, #{ports => length(List), left => length(Left), ms => Ms}},
     St#{ports := #{}}}.

handle_cast(_Msg, St) -> {noreply, St}.

%% exit_status and stray output of the closed ports' sleeps.
handle_info(_Msg, St) -> {noreply, St}.

kill([], _Sig) -> ok;
kill(OsPids, Sig) ->
    {Batch, Rest} = lists:split(min(200, length(OsPids)), OsPids),
    os:cmd("kill -" ++ Sig ++ " " ++ lists:join(" ", [integer_to_list(P) || P <- Batch])
           ++ " 2>/dev/null"),
    kill(Rest, Sig).

%% The sleeps are children of erl_child_setup, which reaps them; a pid whose cmdline is
%% no longer `sleep 1000` is gone.
wait_gone(OsPids, Deadline) ->
    case [P || P <- OsPids, is_sleep(P)] of
        [] -> [];
        Alive ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> Alive;
                false -> timer:sleep(10), wait_gone(Alive, Deadline)
            end
    end.

is_sleep(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/cmdline") of
        {ok, <<"sleep", 0, "1000", 0>>} -> true;
        _ -> false
    end.
