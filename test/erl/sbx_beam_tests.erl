%% beam_node sandboxes as a caller on a real Erlang node sees them (issue 5, "It must
%% show" items 1 and 2): lifecycle with code_paths and apps and its errors (bad app, a node
%% that exits or never comes up, name in use), remote_call against what a real rpc:call to
%% the same node returns (values, throw, error, exit, timeout), get_state of a gen_server,
%% processes/metrics/logs/shell, destroy leaving no OS process and no epmd entry, the node
%% dying on its own, and adoption after SIGKILL of sandboxd.
%%
%% Each test starts its own sandboxd (sbx_test_util:start_isolated/0). Sandbox node names
%% carry a marker unique to the run, so leftovers are found by scanning /proc and epmd.
-module(sbx_beam_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% Run inside a sandbox's node.
-export([io_request_for/1]).

-define(U, sbx_test_util).

tests() ->
    [{lifecycle_code_paths_apps, 120000, fun lifecycle/0},
     {remote_call_like_rpc_call, 90000, fun remote_call_vs_rpc/0},
     {get_state_gen_server, 90000, fun get_state/0},
     {processes_metrics_logs_shell, 90000, fun inspect/0},
     {error_bad_app_leaves_nothing, 90000, fun bad_app/0},
     {error_node_exits_before_up, 60000, fun node_exits/0},
     {error_node_never_up_timeout, 90000, fun node_never_up/0},
     {error_name_in_use, 90000, fun name_in_use/0},
     {node_dies_on_its_own, 90000, fun node_dies/0},
     {not_beam_and_bad_args, 60000, fun not_beam/0},
     {sigkill_sandboxd_adopt, 120000, fun sigkill_adopt/0},
     {remote_call_survives_exit_to_group_leader, 90000, fun exit_to_group_leader/0},
     {io_reply_only_to_the_node_that_asked, 90000, fun io_reply_target/0},
     {destroy_answers_pending_metrics, 90000, fun destroy_during_query/0},
     {sigkill_sandboxd_during_start, 120000, fun sigkill_during_start/0}].

%%% ---------------------------------------------------------------------------------
%%% Helpers

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

now_ms() -> erlang:monotonic_time(millisecond).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

%% A node name unique to this test run.
uname(Prefix) ->
    Prefix ++ "_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid().

create_ok(S, Id, Config) ->
    T0 = now_ms(),
    case call(S, create, [Id, beam_node, Config]) of
        {ok, #{status := running} = Sb} ->
            report("create ~s: ~b ms", [Id, now_ms() - T0]),
            Sb;
        Other -> error({create_failed, Id, Config, Other})
    end.

%% The node of a running beam sandbox, with the test node given its cookie (from shell/1).
node_of(S, Id) ->
    {ok, #{kind := remsh, node := Node, argv := Argv}} = call(S, shell, [Id]),
    Cookie = lists:last(Argv),
    true = erlang:set_cookie(Node, binary_to_atom(Cookie)),
    Node.

epmd_names() ->
    {ok, Names} = net_adm:names(),
    [N || {N, _} <- Names].

os_pids_of(Name) -> ?U:os_pids_matching("-sname " ++ Name ++ "@").

%% Nothing left of a node named Name: no OS process, no epmd entry.
assert_gone(Name) ->
    ok = ?U:wait_until(fun() -> os_pids_of(Name) =:= [] end, 10000),
    ok = ?U:wait_until(fun() -> not lists:member(Name, epmd_names()) end, 10000).

%% A tiny OTP application in a fresh directory: app `App` whose supervisor starts the
%% gen_server `<App>_srv`, registered, with state {state, App, Counter}. Returns its ebin.
make_app(App) ->
    Dir = filename:absname(filename:join([?U:log_dir(), "apps", uname(atom_to_list(App))])),
    Ebin = filename:join(Dir, "ebin"),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    A = atom_to_list(App),
    Srv = A ++ "_srv",
    Sup = A ++ "_sup",
    Mods = [{A ++ "_app",
             ["-module(", A, "_app).\n-behaviour(application).\n-export([start/2, stop/1]).\n"
              "start(_, _) -> ", Sup, ":start_link().\nstop(_) -> ok.\n"]},
            {Sup,
             ["-module(", Sup, ").\n-behaviour(supervisor).\n-export([start_link/0, init/1]).\n"
              "start_link() -> supervisor:start_link({local, ", Sup, "}, ", Sup, ", []).\n"
              "init([]) -> {ok, {#{}, [#{id => srv, start => {", Srv, ", start_link, []}}]}}.\n"]},
            {Srv,
             ["-module(", Srv, ").\n-behaviour(gen_server).\n"
              "-export([start_link/0, init/1, handle_call/3, handle_cast/2]).\n"
              "start_link() -> gen_server:start_link({local, ", Srv, "}, ", Srv, ", [], []).\n"
              "init([]) -> logger:notice(\"", Srv, " started\"), {ok, {state, ", A, ", 0}}.\n"
              "handle_call(bump, _, {state, N, C}) -> {reply, C + 1, {state, N, C + 1}}.\n"
              "handle_cast({log, Text}, S) -> logger:notice(\"~s\", [Text]), {noreply, S}.\n"]}],
    [begin
         Src = filename:join(Dir, M ++ ".erl"),
         ok = file:write_file(Src, Text),
         {ok, _} = compile:file(Src, [{outdir, Ebin}, return_errors])
     end || {M, Text} <- Mods],
    AppFile = io_lib:format("~p.~n", [{application, App,
                                       [{vsn, "1.0"},
                                        {modules, [list_to_atom(M) || {M, _} <- Mods]},
                                        {registered, [list_to_atom(Srv)]},
                                        {applications, [kernel, stdlib]},
                                        {mod, {list_to_atom(A ++ "_app"), []}}]}]),
    ok = file:write_file(filename:join(Ebin, A ++ ".app"), AppFile),
    Ebin.

%%% ---------------------------------------------------------------------------------
%%% Tests

lifecycle() ->
    S = ?U:start_isolated(),
    ?assertMatch(#{backends := #{beam_node := available}}, ?U:info(S)),
    App = list_to_atom(uname("sbxdemo")),
    Ebin = make_app(App),
    Name = uname("life"),
    Sb = create_ok(S, <<"life">>, #{name => list_to_binary(Name),
                                   code_paths => [list_to_binary(Ebin)],
                                   apps => [runtime_tools, App]}),
    ?assertMatch(#{type := beam_node, status := running}, Sb),
    %% The node has a cookie of its own: the test node's (sandboxd's) is refused.
    ?assertEqual(pang, net_adm:ping(list_to_atom(Name ++ "@" ++ ?U:host()))),
    Node = node_of(S, <<"life">>),
    ?assertEqual(Name, hd(string:split(atom_to_list(Node), "@"))),
    ?assert(lists:member(Name, epmd_names())),
    %% Apps started in order: both running, the app's code found through code_paths.
    Apps = [A || {A, _, _} <- call(S, remote_call, [<<"life">>, application, which_applications, []])],
    ?assert(lists:member(App, Apps)),
    ?assert(lists:member(runtime_tools, Apps)),
    ?assertEqual(Ebin, hd(call(S, remote_call, [<<"life">>, code, get_path, []]))),
    ?assertMatch({ok, #{status := running}}, call(S, get, [<<"life">>])),
    %% stop: init:stop(), the OS process ends; start again brings the apps back.
    T1 = now_ms(),
    ?assertMatch({ok, #{status := stopped, exit_status := 0}}, call(S, stop, [<<"life">>])),
    report("stop (init:stop): ~b ms", [now_ms() - T1]),
    assert_gone(Name),
    ?assertMatch({ok, #{status := running}}, call(S, start, [<<"life">>])),
    Apps2 = [A || {A, _, _} <- call(S, remote_call, [<<"life">>, application, which_applications, []])],
    ?assert(lists:member(App, Apps2)),
    %% destroy leaves no OS process and no epmd entry.
    T0 = now_ms(),
    ok = call(S, destroy, [<<"life">>]),
    report("destroy: ~b ms", [now_ms() - T0]),
    ?assertEqual({error, not_found}, call(S, get, [<<"life">>])),
    assert_gone(Name),
    %% A default name is sandbox_<id>.
    create_ok(S, <<"dflt">>, #{}),
    D = node_of(S, <<"dflt">>),
    %% Each sandbox gets a cookie of its own.
    ?assertNotEqual(erlang:get_cookie(Node), erlang:get_cookie(D)),
    ?assertEqual("sandbox_dflt", hd(string:split(atom_to_list(D), "@"))),
    ok = call(S, destroy, [<<"dflt">>]),
    assert_gone("sandbox_dflt").

remote_call_vs_rpc() ->
    S = ?U:start_isolated(),
    create_ok(S, <<"rc">>, #{name => list_to_binary(uname("rc"))}),
    Node = node_of(S, <<"rc">>),
    Cases = [{erlang, node, []},
             {lists, seq, [1, 5]},
             {erlang, list_to_binary, ["abc"]},
             {erlang, throw, [thrown]},
             {erlang, throw, [{'EXIT', fake}]},
             {erlang, error, [boom]},
             {erlang, error, [{badmatch, 3}, [a, b]]},
             {erlang, exit, [bye]},
             {erlang, exit, [{shutdown, x}]},
             {lists, nth, [0, []]},
             {no_such_module, f, []},
             {erlang, binary_to_term, [<<131, 0>>]},
             {io, format, ["printed by a remote call~n"]}],
    [begin
         Direct = rpc:call(Node, M, F, A),
         Via = call(S, remote_call, [<<"rc">>, M, F, A]),
         report("~p:~p ~P -> ~P", [M, F, A, 5, Via, 12]),
         ?assertEqual({M, F, A, Direct}, {M, F, A, Via})
     end || {M, F, A} <- Cases],
    %% This runner and the sandbox's node run the OTP under test (scripts/test.sh's OTP
    %% matrix sets SBX_EXPECT_OTP to its major release).
    Want = os:getenv("SBX_EXPECT_OTP", erlang:system_info(otp_release)),
    ?assertEqual({Want, Want}, {erlang:system_info(otp_release),
                                call(S, remote_call, [<<"rc">>, erlang, system_info, [otp_release]])}),
    %% Timeouts: remote_call/5 as rpc:call/5.
    ?assertEqual(rpc:call(Node, timer, sleep, [3000], 200),
                 call(S, remote_call, [<<"rc">>, timer, sleep, [3000], 200])),
    ?assertEqual(ok, call(S, remote_call, [<<"rc">>, timer, sleep, [10], 5000])),
    %% Pids and big values come back intact.
    Pid = call(S, remote_call, [<<"rc">>, erlang, whereis, [init]]),
    ?assertEqual(Node, node(Pid)),
    Big = call(S, remote_call, [<<"rc">>, lists, duplicate, [200000, 7]]),
    ?assertEqual(200000, length(Big)),
    %% A caller that leaves mid-call leaves nothing behind in sandboxd.
    Before = maps:get(processes, ?U:info(S)),
    {Pid2, Ref} = spawn_monitor(fun() -> call(S, remote_call, [<<"rc">>, timer, sleep, [60000]]) end),
    timer:sleep(300),
    exit(Pid2, kill),
    receive {'DOWN', Ref, process, Pid2, _} -> ok end,
    ok = ?U:wait_until(fun() -> maps:get(processes, ?U:info(S)) =< Before end, 5000),
    %% 500 calls from 50 concurrent callers: every answer right, nothing left afterwards.
    Self = self(),
    Callers = [spawn_link(fun() ->
                                  Rs = [call(S, remote_call, [<<"rc">>, erlang, '+', [I, J]])
                                        || J <- lists:seq(1, 10)],
                                  Self ! {sum, self(), Rs =:= [I + J || J <- lists:seq(1, 10)]}
                          end) || I <- lists:seq(1, 50)],
    ?assertEqual([true || _ <- Callers], [receive {sum, P, Ok} -> Ok end || P <- Callers]),
    ok = ?U:wait_until(fun() -> maps:get(processes, ?U:info(S)) =< Before end, 5000),
    ok = call(S, destroy, [<<"rc">>]).

get_state() ->
    S = ?U:start_isolated(),
    App = list_to_atom(uname("gsdemo")),
    Ebin = make_app(App),
    Srv = list_to_atom(atom_to_list(App) ++ "_srv"),
    create_ok(S, <<"gs">>, #{name => list_to_binary(uname("gs")),
                             code_paths => [list_to_binary(Ebin)], apps => [App]}),
    ?assertEqual({ok, {state, App, 0}}, call(S, get_state, [<<"gs">>, Srv])),
    ?assertEqual(1, call(S, remote_call, [<<"gs">>, gen_server, call, [Srv, bump]])),
    ?assertEqual(2, call(S, remote_call, [<<"gs">>, gen_server, call, [Srv, bump]])),
    ?assertEqual({ok, {state, App, 2}}, call(S, get_state, [<<"gs">>, Srv])),
    %% By pid as well.
    Pid = call(S, remote_call, [<<"gs">>, erlang, whereis, [Srv]]),
    ?assert(is_pid(Pid)),
    ?assertEqual({ok, {state, App, 2}}, call(S, get_state, [<<"gs">>, Pid])),
    %% Same state as sys:get_state from the test node.
    Node = node_of(S, <<"gs">>),
    ?assertEqual({ok, rpc:call(Node, sys, get_state, [Srv])}, call(S, get_state, [<<"gs">>, Srv])),
    ?assertMatch({error, {backend, beam_node, _}}, call(S, get_state, [<<"gs">>, no_such_name])),
    ?assertEqual({error, not_found}, call(S, get_state, [<<"nope">>, Srv])),
    ?assertMatch({error, {badarg, _, _}}, call(S, get_state, [<<"gs">>, "not a name"])),
    ok = call(S, destroy, [<<"gs">>]).

inspect() ->
    S = ?U:start_isolated(),
    App = list_to_atom(uname("insdemo")),
    Ebin = make_app(App),
    Srv = list_to_atom(atom_to_list(App) ++ "_srv"),
    create_ok(S, <<"ins">>, #{name => list_to_binary(uname("ins")),
                              code_paths => [list_to_binary(Ebin)], apps => [App]}),
    Node = node_of(S, <<"ins">>),
    {ok, Procs} = call(S, processes, [<<"ins">>]),
    report("processes: ~b", [length(Procs)]),
    [P] = [P || #{registered_name := N} = P <- Procs, N =:= Srv],
    ?assertMatch(#{pid := Pid, name := Srv, current_function := {gen_server, loop, _},
                   memory := M, memory_bytes := M, message_queue_len := 0,
                   reductions := R, status := waiting, cpu_percent := _}
                   when is_pid(Pid) andalso M > 0 andalso R > 0, P),
    ?assertEqual(rpc:call(Node, erlang, whereis, [Srv]), maps:get(pid, P)),
    ?assertEqual(length(Procs) > 10, true),
    {ok, M1} = call(S, metrics, [<<"ins">>]),
    timer:sleep(300),
    {ok, M2} = call(S, metrics, [<<"ins">>]),
    report("metrics: ~p", [M2]),
    [?assert(maps:is_key(K, M2)) || K <- [memory, process_count, run_queue, reductions_per_sec,
                                         cpu_percent, memory_bytes, ts]],
    ?assertMatch(#{total := T, processes := _} when T > 0, maps:get(memory, M2)),
    ?assert(maps:get(process_count, M1) > 10),
    ?assert(maps:get(reductions_per_sec, M2) > 0),
    %% Logs: the node's stdout, with logger output (the app's notice at start-up, and one
    %% logged now).
    %% (logger drops events of processes whose group leader is on another node, as the
    %% process serving a remote call's is: the gen_server logs from its own process.)
    Marker = uname("logmark"),
    ok = call(S, remote_call, [<<"ins">>, gen_server, cast, [Srv, {log, Marker}]]),
    Out = uname("stdout"),
    ok = call(S, remote_call, [<<"ins">>, io, format, [user, "~s~n", [Out]]]),
    Text = fun() ->
                   {ok, Recs} = call(S, logs, [<<"ins">>, #{tail => 100000}]),
                   iolist_to_binary([[D, $\n] || #{data := D} <- Recs])
           end,
    %% The three lines reach the log in no fixed order (logger's handler writes on its own,
    %% and sandboxd may read a line in two pieces): wait for all of them, then check each.
    Want = [list_to_binary(Marker), list_to_binary(Out), list_to_binary(atom_to_list(Srv) ++ " started")],
    _ = ?U:wait_until(fun() -> T = Text(), lists:all(fun(W) -> binary:match(T, W) =/= nomatch end, Want) end,
                      10000),
    Final = Text(),
    ?assertEqual([], [W || W <- Want, binary:match(Final, W) =:= nomatch]),
    %% shell: what erl -remsh needs; the cookie it gives works.
    {ok, Sh} = call(S, shell, [<<"ins">>]),
    ?assertMatch(#{kind := remsh, node := Node, cookie_env := <<"ERL_AFLAGS=-setcookie ", _/binary>>,
                   argv := [_, <<"-sname">>, _, <<"-remsh">>, _, <<"-setcookie">>, _]}, Sh),
    ?assertEqual(atom_to_binary(Node), lists:nth(5, maps:get(argv, Sh))),
    ?assertEqual(pong, net_adm:ping(Node)),
    ok = call(S, destroy, [<<"ins">>]).

bad_app() ->
    S = ?U:start_isolated(),
    Name = uname("badapp"),
    R = call(S, create, [<<"bad">>, beam_node, #{name => list_to_binary(Name),
                                                 apps => [no_such_app_here]}]),
    report("bad app: ~p", [R]),
    ?assertMatch({error, {backend, beam_node, <<"cannot start app no_such_app_here", _/binary>>}}, R),
    ?assertEqual([], call(S, list, [])),
    assert_gone(Name).

node_exits() ->
    S = ?U:start_isolated(),
    Name = uname("exits"),
    T0 = now_ms(),
    R = call(S, create, [<<"ex">>, beam_node, #{name => list_to_binary(Name),
                                                erl_args => [<<"-boot">>, <<"/nonexistent/boot">>]}]),
    Ms = now_ms() - T0,
    report("node that exits: ~p after ~b ms", [R, Ms]),
    ?assertMatch({error, {backend, beam_node, _}}, R),
    %% The exit is seen: create does not wait out the 30 s for the node.
    ?assert(Ms < 15000),
    ?assertEqual([], call(S, list, [])),
    assert_gone(Name).

node_never_up() ->
    S = ?U:start_isolated(),
    Name = uname("never"),
    %% Distribution never starts: the node runs but is never registered in epmd.
    T0 = now_ms(),
    R = call(S, create, [<<"nv">>, beam_node,
                         #{name => list_to_binary(Name),
                           erl_args => [<<"-kernel">>, <<"start_distribution">>, <<"false">>],
                           health_check => #{type => exec, cmd => [<<"true">>], timeout_ms => 3000}}]),
    Ms = now_ms() - T0,
    report("node never up: ~p after ~b ms", [R, Ms]),
    ?assertEqual({error, timeout}, R),
    %% The health check's 3 s decide, not the 30 s node wait.
    ?assert(Ms < 20000),
    ?assertEqual([], call(S, list, [])),
    assert_gone(Name).

name_in_use() ->
    S = ?U:start_isolated(),
    Name = uname("dup"),
    create_ok(S, <<"one">>, #{name => list_to_binary(Name)}),
    R = call(S, create, [<<"two">>, beam_node, #{name => list_to_binary(Name)}]),
    ?assertEqual({error, {backend, beam_node, <<"name in use">>}}, R),
    %% The first one is untouched.
    ?assertMatch([#{id := <<"one">>, status := running}], call(S, list, [])),
    ?assertEqual(list_to_atom(Name ++ "@" ++ ?U:host()),
                 call(S, remote_call, [<<"one">>, erlang, node, []])),
    ok = call(S, destroy, [<<"one">>]),
    assert_gone(Name).

node_dies() ->
    S = ?U:start_isolated(),
    Name = uname("dies"),
    create_ok(S, <<"die">>, #{name => list_to_binary(Name)}),
    {ok, _} = call(S, subscribe, [<<"die">>, self(), [status]]),
    %% halt(3) from inside: the call itself never answers (the node is gone).
    ?assertEqual({badrpc, nodedown}, call(S, remote_call, [<<"die">>, erlang, halt, [3]])),
    Ev = receive {sandbox_event, <<"die">>, status, #{to := exited} = E} -> E
         after 10000 -> error(no_status_event)
         end,
    report("status event: ~p", [Ev]),
    ?assertMatch(#{reason := {exit, 3}}, Ev),
    ?assertMatch({ok, #{status := exited}}, call(S, get, [<<"die">>])),
    ?assertEqual({badrpc, nodedown}, call(S, remote_call, [<<"die">>, erlang, node, []])),
    assert_gone(Name),
    ok = call(S, destroy, [<<"die">>]).

not_beam() ->
    S = ?U:start_isolated(),
    {ok, _} = call(S, create, [<<"p">>, process, #{cmd => [<<"sleep">>, <<"30">>]}]),
    ?assertEqual({error, unsupported}, call(S, remote_call, [<<"p">>, erlang, node, []])),
    ?assertEqual({error, unsupported}, call(S, get_state, [<<"p">>, init])),
    ?assertEqual({error, not_found}, call(S, remote_call, [<<"none">>, erlang, node, []])),
    create_ok(S, <<"b">>, #{name => list_to_binary(uname("args"))}),
    ?assertMatch({error, {badarg, _, _}}, call(S, remote_call, [<<"b">>, "erlang", node, []])),
    ?assertMatch({error, {badarg, _, _}}, call(S, remote_call, [<<"b">>, erlang, "node", []])),
    %% An improper argument list passes is_list/1 and fails in the node, as for rpc:call.
    ?assertMatch({badrpc, {'EXIT', {badarg, _}}}, call(S, remote_call, [<<"b">>, erlang, node, [a | b]])),
    ?assertMatch({error, {badarg, _, _}}, call(S, remote_call, [<<"b">>, erlang, node, x])),
    ?assertMatch({error, {badarg, _, _}}, call(S, remote_call, [<<"b">>, erlang, node, [], -1])),
    ?assertMatch({error, {badarg, _, _}}, call(S, remote_call, [<<"b">>, erlang, node, [], x])),
    ?assertEqual(pong, net_adm:ping(maps:get(node, S))),
    ok = call(S, destroy, [<<"b">>]),
    ok = call(S, destroy, [<<"p">>]).

sigkill_adopt() ->
    S1 = #{os_pid := Os1, node := N, sname := SName, state_dir := Dir} = ?U:start_isolated(),
    App = list_to_atom(uname("addemo")),
    Ebin = make_app(App),
    Srv = list_to_atom(atom_to_list(App) ++ "_srv"),
    Name = uname("adopt"),
    create_ok(S1, <<"ad">>, #{name => list_to_binary(Name), code_paths => [list_to_binary(Ebin)],
                              apps => [App]}),
    1 = call(S1, remote_call, [<<"ad">>, gen_server, call, [Srv, bump]]),
    [OsPid] = os_pids_of(Name),
    ?U:os_kill(Os1, "KILL"),
    ok = ?U:wait_until(fun() -> not lists:member(N, nodes(hidden)) end, 10000),
    timer:sleep(500),
    %% The node runs on without sandboxd.
    ?assertEqual([OsPid], os_pids_of(Name)),
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    ?assertMatch({ok, #{status := running}}, call(S2, get, [<<"ad">>])),
    %% Same node, nothing re-run: the gen_server kept its state.
    ?assertEqual([OsPid], os_pids_of(Name)),
    ?assertEqual(2, call(S2, remote_call, [<<"ad">>, gen_server, call, [Srv, bump]])),
    ?assertEqual({ok, {state, App, 2}}, call(S2, get_state, [<<"ad">>, Srv])),
    {ok, Procs} = call(S2, processes, [<<"ad">>]),
    ?assert(length(Procs) > 10),
    ok = call(S2, destroy, [<<"ad">>]),
    assert_gone(Name).

%% The process a remote_call runs in has sandboxd's call process as its group leader, so
%% code in the node can send that process exit signals. The call must still answer and
%% leave nothing behind in sandboxd.
exit_to_group_leader() ->
    S = ?U:start_isolated(),
    create_ok(S, <<"gl">>, #{name => list_to_binary(uname("gl"))}),
    Node = node_of(S, <<"gl">>),
    #{node := SbxNode} = S,
    Before = maps:get(processes, ?U:info(S)),
    Self = self(),
    Caller = spawn_link(fun() ->
                                R = rpc:call(SbxNode, sandbox, remote_call,
                                             [<<"gl">>, timer, sleep, [1500], 20000], 30000),
                                Self ! {answer, R}
                        end),
    %% The sleeping remote process, found from the test node; its group leader is
    %% sandboxd's call process.
    FindGl = fun() ->
                     [GL || P <- rpc:call(Node, erlang, processes, []),
                            {current_function, {timer, sleep, 1}} <-
                                [rpc:call(Node, erlang, process_info, [P, current_function])],
                            {group_leader, GL} <- [rpc:call(Node, erlang, process_info, [P, group_leader])],
                            node(GL) =:= SbxNode]
             end,
    ok = ?U:wait_until(fun() -> FindGl() =/= [] end, 5000),
    [GL | _] = FindGl(),
    report("group leader of the remote process: ~p", [GL]),
    true = rpc:call(Node, erlang, exit, [GL, kill]),
    true = rpc:call(Node, erlang, exit, [GL, some_reason]),
    Answer = receive {answer, A} -> A after 25000 -> no_answer end,
    report("answer: ~p", [Answer]),
    ?assertEqual(ok, Answer),
    unlink(Caller),
    ok = ?U:wait_until(fun() -> maps:get(processes, ?U:info(S)) =< Before end, 5000),
    ok = call(S, destroy, [<<"gl">>]).

%% Inside the sandbox's node: an io_request to our group leader (sandboxd's call process)
%% that names From as the requester, as io:put_chars would for itself.
io_request_for(From) ->
    group_leader() ! {io_request, From, spoofed_reply_as, {put_chars, unicode, <<"x">>}},
    ok.

%% sandboxd answers io requests of the remote process (so io:format there returns), but
%% only to a process on that node: code in the node must not make sandboxd send
%% {io_reply, AnyTerm, ok} to processes of other nodes.
io_reply_target() ->
    S = ?U:start_isolated(),
    Ebin = list_to_binary(filename:dirname(code:which(?MODULE))),
    create_ok(S, <<"io">>, #{name => list_to_binary(uname("io")), code_paths => [Ebin]}),
    ok = call(S, remote_call, [<<"io">>, io, format, ["still answered~n"]]),
    ok = call(S, remote_call, [<<"io">>, ?MODULE, io_request_for, [self()]]),
    %% A reply to us, if sandboxd sent one, would come on sandboxd's connection to us; wait a
    %% real while (2 s, and a second request and call through the same path) rather than
    %% rely on ordering.
    ok = call(S, remote_call, [<<"io">>, ?MODULE, io_request_for, [self()]]),
    pong = call(S, ping, []),
    Got = receive {io_reply, spoofed_reply_as, _} = M -> M after 2000 -> none end,
    report("io_reply to this node: ~p", [Got]),
    ?assertEqual(none, Got),
    ok = call(S, destroy, [<<"io">>]).

%% metrics/1 and processes/1 of a beam_node wait for the node's helper. A destroy (or stop)
%% meanwhile must answer them, not leave their callers waiting forever. The helper is
%% replaced by one that takes 5 s.
destroy_during_query() ->
    S = ?U:start_isolated(),
    create_ok(S, <<"dq">>, #{name => list_to_binary(uname("dq"))}),
    Before = maps:get(processes, ?U:info(S)),
    Forms = [{attribute, 1, module, sbx_beam_helper},
             {attribute, 2, export, [{metrics, 3}, {processes, 0}]},
             {function, 3, metrics, 3,
              [{clause, 3, [{var, 3, '_'}, {var, 3, '_'}, {var, 3, '_'}], [],
                [{call, 3, {remote, 3, {atom, 3, timer}, {atom, 3, sleep}}, [{integer, 3, 5000}]},
                 {tuple, 3, [{integer, 3, 0}, {integer, 3, 0}, {map, 3, []}]}]}]},
             {function, 4, processes, 0,
              [{clause, 4, [], [],
                [{call, 4, {remote, 4, {atom, 4, timer}, {atom, 4, sleep}}, [{integer, 4, 5000}]},
                 {nil, 4}]}]}],
    {ok, sbx_beam_helper, Slow} = compile:forms(Forms, []),
    {module, sbx_beam_helper} = call(S, remote_call, [<<"dq">>, code, load_binary,
                                                      [sbx_beam_helper, "slow.beam", Slow]]),
    #{node := SbxNode} = S,
    Self = self(),
    [spawn_link(fun() -> Self ! {F, rpc:call(SbxNode, sandbox, F, [<<"dq">>], 30000)} end)
     || F <- [metrics, processes]],
    timer:sleep(500),
    ok = call(S, destroy, [<<"dq">>]),
    Answers = [receive {F, A} -> A after 20000 -> no_answer end || F <- [metrics, processes]],
    report("answers after destroy: ~p", [Answers]),
    [?assertMatch({error, _}, A) || A <- Answers],
    ok = ?U:wait_until(fun() -> maps:get(processes, ?U:info(S)) =< Before end, 5000).

%% sandboxd killed while a node is still coming up (erl is slowed by a wrapper that waits
%% 3 s before exec): the restarted sandboxd adopts the node and must still run the
%% start-up it never got to (code paths, apps), not report it running without them.
sigkill_during_start() ->
    Wrapper = filename:absname(filename:join(?U:log_dir(), uname("slow_erl") ++ ".sh")),
    {ok, Erl} = {ok, os:find_executable("erl")},
    ok = file:write_file(Wrapper, ["#!/bin/sh\nsleep 3\nexec ", Erl, " \"$@\"\n"]),
    ok = file:change_mode(Wrapper, 8#755),
    #{os_pid := Os1, node := N, sname := SName, state_dir := Dir} =
        ?U:start_isolated(#{args => ["--erl", Wrapper]}),
    App = list_to_atom(uname("dsdemo")),
    Ebin = make_app(App),
    Srv = list_to_atom(atom_to_list(App) ++ "_srv"),
    Name = uname("dstart"),
    Self = self(),
    spawn(fun() ->
                  Self ! {created, rpc:call(N, sandbox, create,
                                            [<<"ds">>, beam_node,
                                             #{name => list_to_binary(Name),
                                               code_paths => [list_to_binary(Ebin)],
                                               apps => [App]}], 30000)}
          end),
    ok = ?U:wait_until(fun() -> os_pids_of(Name) =/= [] end, 10000),
    ?U:os_kill(Os1, "KILL"),
    ok = ?U:wait_until(fun() -> not lists:member(N, nodes(hidden)) end, 10000),
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    {ok, #{status := St}} = call(S2, get, [<<"ds">>]),
    report("status after the restart: ~p", [St]),
    Running = fun() ->
                      case call(S2, remote_call, [<<"ds">>, erlang, whereis, [Srv]]) of
                          P when is_pid(P) -> true;
                          _ -> false
                      end
              end,
    Ok = ?U:wait_until(Running, 20000),
    report("app server after the restart: ~p", [Ok]),
    ?assertEqual(ok, Ok),
    ?assertEqual(1, call(S2, remote_call, [<<"ds">>, gen_server, call, [Srv, bump]])),
    ?assertMatch({ok, #{status := running}}, call(S2, get, [<<"ds">>])),
    ok = call(S2, destroy, [<<"ds">>]),
    assert_gone(Name).
