%% @doc Client for a running sandboxd node.
%%
%% Every function takes the sandboxd node name first and calls the node's `sandbox'
%% module through erpc, so a call from any OTP 25+ node looks exactly like
%% `rpc:call(Node, sandbox, F, Args)'. Each function has a default call timeout
%% (default_timeout/2); call/4 takes any other. A node that cannot be reached answers
%% `{error, {nodedown, Node}}', a call past its timeout `{error, timeout}', anything else
%% the rpc layer reports (such as a function the node does not export)
%% `{error, {badrpc, Reason}}', never an exception.
-module(sandboxd).

-include("sandboxd.hrl").

-export([ping/1, info/1, net_ping/2, call/3, call/4, default_timeout/2]).
-export([create/4, destroy/2, stop/2, start/2, restart/2, get/2, list/1, list/2,
         exec/3, exec/4, logs/2, logs/3, metrics/2, processes/2, subscribe/4,
         unsubscribe/2, copy_to/4, copy_from/3, shell/2, pause/2, resume/2]).
-export([remote_call/5, remote_call/6, get_state/3, trace_start/3, trace_stop/2]).

-export_type([backend/0, info/0, id/0, sandbox/0, status/0, error/0, config/0]).

-type id() :: binary() | atom() | string().
-type status() :: starting | running | paused | stopping | stopped | exited | error.
-type sandbox() :: #{id := binary(),
                     type := backend(),
                     status := status(),
                     node := node(),
                     created_at := integer(),
                     started_at := integer() | undefined,
                     config := map(),
                     ref := term(),
                     ports := list(),
                     labels := #{binary() => binary()},
                     exit_status := integer() | {signal, atom()} | undefined,
                     restart_count := non_neg_integer()}.
-type config() :: #{atom() | binary() => term()}.
-type error() :: {error, not_found | already_exists | timeout | unsupported | limit_reached
                  | not_running | paused | not_paused
                  | {badarg, term(), atom()}
                  | {unavailable, backend(), term()}
                  | {backend, backend(), term()}
                  | {nodedown, node()}
                  | {badrpc, term()}}.
-type exec_result() :: #{exit_code := integer(), stdout := binary(), stderr := binary(),
                         duration_ms := non_neg_integer(), truncated := boolean()}.
-type log_line() :: #{ts := integer(), stream := stdout | stderr, data := binary()}.
-type topic() :: status | log | metrics | processes | trace.

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

%% @doc Creates a sandbox and returns once it is running (and healthy, when the config
%% has a health_check).
-spec create(node(), id(), backend(), config()) -> {ok, sandbox()} | error().
create(Node, Id, Type, Config) -> call(Node, create, [Id, Type, Config]).

%% @doc Destroys a sandbox: returns `ok' once everything it owned is gone.
-spec destroy(node(), id()) -> ok | error().
destroy(Node, Id) -> call(Node, destroy, [Id]).

-spec stop(node(), id()) -> {ok, sandbox()} | error().
stop(Node, Id) -> call(Node, stop, [Id]).

-spec start(node(), id()) -> {ok, sandbox()} | error().
start(Node, Id) -> call(Node, start, [Id]).

-spec restart(node(), id()) -> {ok, sandbox()} | error().
restart(Node, Id) -> call(Node, restart, [Id]).

-spec get(node(), id()) -> {ok, sandbox()} | error().
get(Node, Id) -> call(Node, get, [Id]).

-spec list(node()) -> [sandbox()] | error().
list(Node) -> call(Node, list, []).

%% @doc Sandboxes matching `#{type, status, labels}' (each key optional).
-spec list(node(), map()) -> [sandbox()] | error().
list(Node, Filter) -> call(Node, list, [Filter]).

%% @doc Runs a command in the sandbox: a list of binaries (argv, no shell) or one
%% binary (run by /bin/sh -c).
-spec exec(node(), id(), [binary()] | binary()) -> {ok, exec_result()} | error().
exec(Node, Id, Cmd) -> call(Node, exec, [Id, Cmd]).

%% @doc As exec/3 with options `timeout_ms', `env', `cwd', `stdin', `max_output_bytes'.
%% The rpc waits a little longer than the command's own timeout.
-spec exec(node(), id(), [binary()] | binary(), map()) -> {ok, exec_result()} | error().
exec(Node, Id, Cmd, Opts) when is_map(Opts) ->
    call(Node, exec, [Id, Cmd, Opts]).

-spec logs(node(), id()) -> {ok, [log_line()]} | error().
logs(Node, Id) -> call(Node, logs, [Id, #{}]).

%% @doc Output lines; options `tail' (default 100) and `since' (ms since the epoch).
-spec logs(node(), id(), map()) -> {ok, [log_line()]} | error().
logs(Node, Id, Opts) -> call(Node, logs, [Id, Opts]).

-spec metrics(node(), id()) -> {ok, map()} | error().
metrics(Node, Id) -> call(Node, metrics, [Id]).

-spec processes(node(), id()) -> {ok, [map()]} | error().
processes(Node, Id) -> call(Node, processes, [Id]).

%% @doc Sends `{sandbox_event, Id, Topic, Payload}' to `Pid' for the sandbox (or `all');
%% the subscription ends by itself when `Pid' dies.
-spec subscribe(node(), id() | all, pid(), [topic()]) -> {ok, reference()} | error().
subscribe(Node, Id, Pid, Topics) -> call(Node, subscribe, [Id, Pid, Topics]).

-spec unsubscribe(node(), reference()) -> ok | error().
unsubscribe(Node, Ref) -> call(Node, unsubscribe, [Ref]).

%% @doc Writes a file inside the sandbox's workspace (Path relative to it).
-spec copy_to(node(), id(), iodata(), binary()) -> ok | error().
copy_to(Node, Id, Path, Data) -> call(Node, copy_to, [Id, Path, Data]).

-spec copy_from(node(), id(), iodata()) -> {ok, binary()} | error().
copy_from(Node, Id, Path) -> call(Node, copy_from, [Id, Path]).

%% @doc Freezes every process of the sandbox (status `paused'); `ok' once frozen.
%% `{error, paused}' if it is paused already, `{error, not_running}' if it does not run.
-spec pause(node(), id()) -> ok | error().
pause(Node, Id) -> call(Node, pause, [Id]).

%% @doc Thaws a paused sandbox (status `running' again); `{error, not_paused}' otherwise.
-spec resume(node(), id()) -> ok | error().
resume(Node, Id) -> call(Node, resume, [Id]).

%% @doc How to open an interactive shell in the sandbox.
-spec shell(node(), id()) -> {ok, map()} | error().
shell(Node, Id) -> call(Node, shell, [Id]).

%% @doc Runs `Fun' in a BEAM sandbox's node, as `rpc:call(SandboxNode, M, F, A)' would
%% (`/4' on the node: no timeout, so the client waits as long as the node does).
-spec remote_call(node(), id(), module(), atom(), [term()]) -> term().
remote_call(Node, Id, M, F, A) -> call(Node, remote_call, [Id, M, F, A]).

%% @doc As remote_call/5 with a timeout in the sandbox's node (ms or `infinity'); the
%% client waits 5 s longer than that.
-spec remote_call(node(), id(), module(), atom(), [term()], timeout()) -> term().
remote_call(Node, Id, M, F, A, Timeout) ->
    call(Node, remote_call, [Id, M, F, A, Timeout], default_timeout(remote_call, Timeout)).

%% @doc `sys:get_state(PidOrName, 5000)' in a BEAM sandbox's node.
-spec get_state(node(), id(), pid() | atom()) -> {ok, term()} | error().
get_state(Node, Id, PidOrName) -> call(Node, get_state, [Id, PidOrName]).

%% @doc Starts tracing processes of a BEAM sandbox's node (Spec: docs/API.md, Tracing);
%% the events go to subscribers of topic `trace'.
-spec trace_start(node(), id(), map()) -> {ok, reference()} | error().
trace_start(Node, Id, Spec) -> call(Node, trace_start, [Id, Spec]).

%% @doc Ends a trace; `ok' once the agent has switched it off (also for an unknown ref).
-spec trace_stop(node(), reference()) -> ok | error().
trace_stop(Node, TraceRef) -> call(Node, trace_stop, [TraceRef]).

%% @doc `sandbox:Function(Args...)' on the node, with that function's default timeout.
-spec call(node(), atom(), [term()]) -> term().
call(Node, Function, Args) ->
    call(Node, Function, Args, default_timeout(Function, Args)).

%% @doc The call timeout (ms) the client uses for `Function' called with `Args': long
%% enough for what the node itself may take (a create waits for health checks and image
%% pulls, an exec for its command's `timeout_ms').
-spec default_timeout(atom(), term()) -> timeout().
default_timeout(create, _) -> 300000;
default_timeout(F, _) when F =:= destroy; F =:= stop; F =:= start; F =:= restart;
                           F =:= copy_to; F =:= copy_from ->
    60000;
default_timeout(exec, [_, _, #{timeout_ms := T} | _]) when is_integer(T), T >= 0 -> T + 5000;
default_timeout(exec, _) -> 35000;
default_timeout(remote_call, [_, _, _, _, T]) -> default_timeout(remote_call, T);
default_timeout(remote_call, T) when is_integer(T), T >= 0 -> T + 5000;
default_timeout(remote_call, _) -> infinity;
default_timeout(F, _) when F =:= get_state; F =:= trace_start; F =:= trace_stop -> 20000;
default_timeout(ping, _) -> 5000;
default_timeout(_, _) -> ?SANDBOXD_TIMEOUT.

%% @doc `sandbox:Function(Args...)' on the node: `{error, {nodedown, Node}}' when the
%% node cannot be reached, `{error, timeout}' past Timeout, `{error, {badrpc, Reason}}'
%% for what else the rpc layer reports (a function the node does not export).
-spec call(node(), atom(), [term()], timeout()) -> term().
call(Node, Function, Args, Timeout) when is_atom(Node), is_atom(Function), is_list(Args) ->
    try
        erpc:call(Node, sandbox, Function, Args, Timeout)
    catch
        error:{erpc, noconnection} -> {error, {nodedown, Node}};
        error:{erpc, timeout} -> {error, timeout};
        error:{erpc, Reason} -> {error, {badrpc, Reason}};
        error:{exception, Reason, Stack} -> {error, {badrpc, {'EXIT', {Reason, Stack}}}};
        exit:{exception, Reason} -> {error, {badrpc, {'EXIT', Reason}}};
        exit:{signal, Reason} -> {error, {badrpc, {'EXIT', Reason}}};
        throw:Value -> Value
    end.
