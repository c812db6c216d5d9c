%% @doc Client for a running sandboxd node.
%%
%% Every function takes the sandboxd node name first and calls the node's `sandbox'
%% module through erpc, so a call from any OTP 25+ node looks exactly like
%% `rpc:call(Node, sandbox, F, Args)'. Failures to reach the node come back as
%% `{error, {badrpc, Reason}}' instead of exceptions.
-module(sandboxd).

-include("sandboxd.hrl").

-export([ping/1, info/1, net_ping/2, call/3, call/4]).

-export_type([backend/0, info/0]).

-type backend() :: process | docker | beam_node | vm.
-type info() :: #{node := node(),
                  version := binary(),
                  uptime_ms := non_neg_integer(),
                  memory_bytes := non_neg_integer(),
                  sandboxes := non_neg_integer(),
                  connections := non_neg_integer(),
                  processes := non_neg_integer(),
                  backends := #{backend() => available | {unavailable, binary()}}}.

%% @doc `pong' when the node answers, `pang' when it cannot be reached.
-spec ping(node()) -> pong | pang.
ping(Node) ->
    case call(Node, ping, []) of
        pong -> pong;
        _ -> pang
    end.

%% @doc The node's name, version, uptime, memory, counts and backend availability.
-spec info(node()) -> info() | {error, {badrpc, term()}}.
info(Node) ->
    call(Node, info, []).

%% @doc Asks sandboxd to connect to `Target' itself (its initiating handshake) and ping
%% it the way net_adm:ping does.
-spec net_ping(node(), node()) -> pong | pang | {error, term()}.
net_ping(Node, Target) ->
    call(Node, net_ping, [Target]).

%% @doc `sandbox:Function(Args...)' on the node, with the default timeout.
-spec call(node(), atom(), [term()]) -> term().
call(Node, Function, Args) ->
    call(Node, Function, Args, ?SANDBOXD_TIMEOUT).

%% @doc `sandbox:Function(Args...)' on the node; `{error, {badrpc, Reason}}' when the
%% node is unreachable, the call times out or the function is not exported.
-spec call(node(), atom(), [term()], timeout()) -> term().
call(Node, Function, Args, Timeout) when is_atom(Node), is_atom(Function), is_list(Args) ->
    try
        erpc:call(Node, sandbox, Function, Args, Timeout)
    catch
        error:{erpc, Reason} -> {error, {badrpc, Reason}};
        error:{exception, Reason, Stack} -> {error, {badrpc, {'EXIT', {Reason, Stack}}}};
        exit:{exception, Reason} -> {error, {badrpc, {'EXIT', Reason}}};
        exit:{signal, Reason} -> {error, {badrpc, {'EXIT', Reason}}};
        throw:Value -> Value
    end.
