%% Run by scripts/client-projects.sh with sbx_test_runner, after `rebar3 compile`:
%% the Erlang side of the client from a rebar3 project.
-module(client_app_tests).
-export([tests/0]).

tests() ->
    [{daemon_sandbox_events_and_restart, 180000, fun daemon_sandbox_events_and_restart/0}].

daemon_sandbox_events_and_restart() ->
    process_flag(trap_exit, true),
    Name = "sbxreb" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid(),
    Logs = os:getenv("SBX_LOG_DIR"),
    State = filename:join([Logs, "state", Name]),
    ok = filelib:ensure_dir(filename:join(State, "x")),
    Bin = sandboxd_daemon:bin(),
    Bin = filename:join(code:priv_dir(sandboxd), "sandboxd"),
    true = filelib:is_regular(Bin),
    {ok, Sup} = client_app_sup:start_link(#{name => Name, state_dir => State,
                                            shutdown_policy => destroy, start_timeout => 60000,
                                            log_file => filename:join(Logs, Name ++ ".log")}),
    [Old] = daemon(Sup),
    Node = sandboxd_daemon:node(Old),
    Node = sandboxd_daemon:node_name(Name),
    pong = sandboxd:ping(Node),
    %% create, events, exec, destroy
    {ok, _} = sandboxd:subscribe(Node, all, self(), [status, log]),
    {ok, #{status := running}} =
        sandboxd:create(Node, <<"r1">>, process, #{cmd => [<<"sh">>, <<"-c">>, <<"echo up; sleep 300">>]}),
    receive {sandbox_event, <<"r1">>, log, #{data := <<"up", _/binary>>}} -> ok
    after 30000 -> error(no_log_event)
    end,
    {ok, #{exit_code := 0, stdout := <<"hi\n">>}} = sandboxd:exec(Node, <<"r1">>, [<<"echo">>, <<"hi">>]),
    ok = sandboxd:destroy(Node, <<"r1">>),
    receive {sandbox_event, <<"r1">>, status, #{to := stopped}} -> ok
    after 30000 -> error(no_status_event)
    end,
    %% the daemon's OS process killed: restarted, the sandbox adopted
    {ok, #{ref := Ref}} = sandboxd:create(Node, <<"r2">>, process, #{cmd => [<<"sleep">>, <<"300">>]}),
    OsPid = sandboxd_daemon:os_pid(Old),
    _ = os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
    ok = wait_until(fun() -> case daemon(Sup) of [P] -> P =/= Old; _ -> false end end, 60000),
    [New] = daemon(Sup),
    true = sandboxd_daemon:os_pid(New) =/= OsPid,
    {ok, #{status := running, ref := Ref}} = sandboxd:get(Node, <<"r2">>),
    {error, {nodedown, 'nobody@nowhere'}} = sandboxd:get('nobody@nowhere', <<"r2">>),
    %% the supervisor stops: SIGTERM, and with shutdown_policy destroy nothing is left
    NewOsPid = sandboxd_daemon:os_pid(New),
    ok = stop_sup(Sup),
    false = alive(NewOsPid),
    ok = wait_until(fun() -> not alive(Ref) end, 10000),
    ok.

%% An OS process that runs (a zombie no longer does).
alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, Rest] = string:split(Stat, <<") ">>, trailing),
            binary:first(Rest) =/= $Z;
        {error, _} -> false
    end.

daemon(Sup) -> [P || {sandboxd_daemon, P, _, _} <- supervisor:which_children(Sup), is_pid(P)].

stop_sup(Sup) ->
    exit(Sup, shutdown),
    receive {'EXIT', Sup, _} -> ok after 30000 -> error(supervisor_did_not_stop) end.

%% The suite runs under sbx_test_runner, with sbx_test_util on the code path.
wait_until(Fun, Ms) -> sbx_test_util:wait_until(Fun, Ms).
