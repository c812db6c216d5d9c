%% @doc Runs a sandboxd daemon (`priv/sandboxd') from an application's supervision tree.
%%
%% `start_link/1' starts the binary as `Name@<this host>' with this node's cookie, handed
%% over in its environment (`SANDBOXD_COOKIE', which sandboxd removes once read), never
%% on its command line, and returns `{ok, Pid}' only once the daemon answers
%% `sandbox:ping/0'. The gen_server owns the daemon's OS process: when the daemon exits
%% the gen_server stops with `{sandboxd_exited, Status}', so its supervisor starts a new
%% daemon with the same name and state directory, which adopts the sandboxes still
%% running. On shutdown it sends SIGTERM and waits (`stop_timeout'), then SIGKILL.
%%
%% Options (a map or a proplist): `name' (default `"sandboxd"'; with `@' a long name),
%% `state_dir', `shutdown_policy' (`keep' | `destroy', sandboxd's `--shutdown-policy'),
%% `args' (more arguments), `bin' (default `code:priv_dir(sandboxd)/sandboxd'),
%% `start_timeout' (ms, default 20000), `stop_timeout' (ms, default 10000), `log_file'
%% (the daemon's log lines are appended there), `register' (a local name for the
%% gen_server), `id' and `restart' (for child_spec/1).
-module(sandboxd_daemon).
-behaviour(gen_server).

-export([start_link/1, child_spec/1, node/1, os_pid/1, node_name/1, bin/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/2]).

-export_type([option/0]).

-type option() :: {name, string() | binary() | atom()}
                | {state_dir, file:filename_all()}
                | {shutdown_policy, keep | destroy}
                | {args, [string() | binary()]}
                | {bin, file:filename_all()}
                | {start_timeout, pos_integer()}
                | {stop_timeout, pos_integer()}
                | {log_file, file:filename_all()}
                | {register, atom()}
                | {id, term()}
                | {restart, permanent | transient | temporary}.

-define(TAIL_LINES, 40).

%% @doc Starts the daemon and returns once its node answers `sandbox:ping/0'; `{error,
%% Reason}' (the daemon killed) when it exits or does not answer within `start_timeout':
%% `not_distributed', `{no_binary, Path}', `{already_running, Node}' (a daemon of that
%% name answers already, e.g. one left by a node that was killed), `{exited, Status,
%% LastLogLines}', `timeout'.
-spec start_link(map() | [option()]) -> {ok, pid()} | {error, term()}.
start_link(Opts0) ->
    Opts = opts(Opts0),
    case maps:find(register, Opts) of
        {ok, Name} when is_atom(Name) -> gen_server:start_link({local, Name}, ?MODULE, Opts, []);
        error -> gen_server:start_link(?MODULE, Opts, [])
    end.

%% @doc A child spec for a supervisor: a worker whose shutdown budget covers the daemon's
%% own `stop_timeout' (SIGTERM, then SIGKILL).
-spec child_spec(map() | [option()]) -> supervisor:child_spec().
child_spec(Opts0) ->
    Opts = opts(Opts0),
    #{id => maps:get(id, Opts, ?MODULE),
      start => {?MODULE, start_link, [Opts]},
      restart => maps:get(restart, Opts, permanent),
      shutdown => maps:get(stop_timeout, Opts, 10000) + 6000,
      type => worker,
      modules => [?MODULE]}.

%% @doc The daemon's node name.
-spec node(pid() | atom()) -> node().
node(Server) -> gen_server:call(Server, node).

%% @doc The daemon's OS pid.
-spec os_pid(pid() | atom()) -> non_neg_integer().
os_pid(Server) -> gen_server:call(Server, os_pid).

%% @doc The node name a daemon started from this node with `Name' gets: `Name@<this
%% node's host>', or `Name' itself when it has an `@'.
-spec node_name(string() | binary() | atom()) -> node().
node_name(Name0) ->
    Name = to_list(Name0),
    case lists:member($@, Name) of
        true -> list_to_atom(Name);
        false ->
            [_, Host] = string:split(atom_to_list(erlang:node()), "@"),
            list_to_atom(Name ++ "@" ++ Host)
    end.

%% @doc The daemon binary this application ships: `priv/sandboxd' of the `sandboxd' app.
-spec bin() -> file:filename().
bin() ->
    case code:priv_dir(sandboxd) of
        {error, bad_name} -> filename:absname("priv/sandboxd");
        Dir -> filename:join(Dir, "sandboxd")
    end.

%% Normalizes a proplist or map of options to a map (binaries kept as they are).
opts(Opts) when is_map(Opts) -> Opts;
opts(Opts) when is_list(Opts) -> maps:from_list(proplists:unfold(Opts)).

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) when is_list(L) -> L.

%% @private Opens the daemon's port and waits for its node to answer.
init(Opts) ->
    process_flag(trap_exit, true),
    Bin = to_list(maps:get(bin, Opts, bin())),
    case {erlang:is_alive(), filelib:is_regular(Bin)} of
        {false, _} -> {stop, not_distributed};
        {_, false} -> {stop, {no_binary, Bin}};
        {true, true} ->
            Node = node_name(maps:get(name, Opts, "sandboxd")),
            case catch erpc:call(Node, sandbox, ping, [], 2000) of
                pong -> {stop, {already_running, Node}};
                _ -> start_daemon(Bin, Opts)
            end
    end.

start_daemon(Bin, Opts) ->
    Name = to_list(maps:get(name, Opts, "sandboxd")),
    Node = node_name(Name),
    NameArgs = case lists:member($@, Name) of
                   true -> ["--name", Name];
                   false -> ["--sname", Name]
               end,
    StateArgs = case maps:find(state_dir, Opts) of
                    {ok, Dir} -> ["--state-dir", to_list(Dir)];
                    error -> []
                end,
    PolicyArgs = case maps:find(shutdown_policy, Opts) of
                     {ok, P} -> ["--shutdown-policy", to_list(P)];
                     error -> []
                 end,
    %% --stop-on-stdin-eof: the port's pipe closes when this node dies, even by SIGKILL,
    %% and the daemon then stops as on SIGTERM instead of outliving its application.
    Args = NameArgs ++ StateArgs ++ PolicyArgs ++ ["--stop-on-stdin-eof"]
        ++ [to_list(A) || A <- maps:get(args, Opts, [])],
    Env = [{"SANDBOXD_COOKIE", atom_to_list(erlang:get_cookie())}],
    Port = open_port({spawn_executable, Bin},
                     [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary,
                      {line, 4096}, hide]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    S = #{port => Port, os_pid => OsPid, node => Node, tail => [],
          log_file => maps:get(log_file, Opts, undefined),
          stop_timeout => maps:get(stop_timeout, Opts, 10000)},
    Deadline = erlang:monotonic_time(millisecond) + maps:get(start_timeout, Opts, 20000),
    wait_up(S, Deadline).

%% Polls sandbox:ping/0 every 100 ms while reading the daemon's log, until it answers,
%% exits, or the deadline passes (then it is killed).
wait_up(S = #{port := Port, node := Node}, Deadline) ->
    receive
        {Port, {exit_status, St}} ->
            {stop, {exited, St, lists:reverse(maps:get(tail, S))}};
        {Port, {data, Line}} ->
            wait_up(log_line(Line, S), Deadline)
    after 0 ->
        case catch erpc:call(Node, sandbox, ping, [], 2000) of
            pong -> {ok, S};
            _ ->
                case erlang:monotonic_time(millisecond) > Deadline of
                    true ->
                        kill_and_wait(S, "KILL", 5000),
                        {stop, timeout};
                    false ->
                        receive after 100 -> ok end,
                        wait_up(S, Deadline)
                end
        end
    end.

%% @private
handle_call(node, _From, S) -> {reply, maps:get(node, S), S};
handle_call(os_pid, _From, S) -> {reply, maps:get(os_pid, S), S};
handle_call(_, _From, S) -> {reply, {error, unknown_request}, S}.

%% @private
handle_cast(_, S) -> {noreply, S}.

%% @private The daemon exiting stops the gen_server, so its supervisor restarts it.
handle_info({Port, {exit_status, St}}, S = #{port := Port, node := Node}) ->
    logger:warning("sandboxd ~p exited with status ~p; its last lines:~n~s",
                   [Node, St, lists:join($\n, lists:reverse(lists:sublist(maps:get(tail, S), 8)))]),
    {stop, {sandboxd_exited, St}, S#{port := undefined}};
handle_info({Port, {data, Line}}, S = #{port := Port}) ->
    {noreply, log_line(Line, S)};
handle_info(_, S) ->
    {noreply, S}.

%% @private SIGTERM, wait up to stop_timeout, then SIGKILL.
terminate(_Reason, #{port := undefined}) -> ok;
terminate(_Reason, S = #{stop_timeout := T}) ->
    case kill_and_wait(S, "TERM", T) of
        exited -> ok;
        timeout -> kill_and_wait(S, "KILL", 5000), ok
    end.

%% @private Crash reports leave the log tail out (it is logged on its own).
format_status(_Opt, [_PDict, S]) -> maps:remove(tail, S).

%% Sends Sig to the daemon and waits up to Ms for its exit status, still logging its lines.
kill_and_wait(S = #{os_pid := OsPid}, Sig, Ms) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    await_exit(S, erlang:monotonic_time(millisecond) + Ms).

await_exit(S = #{port := Port}, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {exit_status, _}} -> exited;
        {Port, {data, Line}} -> await_exit(log_line(Line, S), Deadline)
    after Left -> timeout
    end.

%% Keeps the last lines for error reports and appends them to log_file when given.
log_line({Flag, Bytes}, S = #{tail := Tail, log_file := File}) ->
    Line = case Flag of eol -> [Bytes, $\n]; noeol -> Bytes end,
    File =:= undefined orelse file:write_file(File, Line, [append]),
    S#{tail := lists:sublist([Bytes | Tail], ?TAIL_LINES)}.
