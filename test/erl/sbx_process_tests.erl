%% Process sandboxes as a caller on a real Erlang node sees them (issue 3, "It must show"
%% items 1-8, and the rest of the process backend's contract): lifecycle and every error
%% reason, destroy leaving no process and no zombie, exec, subscriptions and slow
%% subscribers, limits, namespaces, adoption after SIGKILL, malformed calls, ttl, owner,
%% restart policy, health checks, files and shell.
%%
%% Each test starts its own sandboxd with a fresh --state-dir and --shutdown-policy destroy
%% (sbx_test_util:start_isolated/1), so tests never see each other's sandboxes and nothing
%% a failed test leaves behind outlives its instance. Processes are checked from the host
%% by scanning /proc for a marker unique to the test (a sleep duration such as
%% 1000.41234 or a string in the command line). Figures worth keeping (RSS, destroy
%% times, drop counts) are printed with report/2 and so appear in the test log.
-module(sbx_process_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% Run on peer nodes.
-export([peer_lazy_subscriber/1, peer_read/1, peer_report/1, peer_own_sandbox/2]).

-define(U, sbx_test_util).
-define(MB, (1024 * 1024)).
%% Bound on sandboxd's resident memory while a subscriber lags behind 100 MB of output.
-define(RSS_BOUND, (200 * ?MB)).
-define(SANDBOX_KEYS, [config, created_at, exit_status, id, labels, node, ports, ref,
                       restart_count, started_at, status, type, user]).

tests() ->
    [{lifecycle, 90000, fun lifecycle/0},
     {failed_create_leaves_nothing, 60000, fun failed_create/0},
     {exec_on_stopped_not_running, 60000, fun exec_on_stopped/0},
     {destroy_double_fork_no_process_no_zombie, 90000, fun destroy_double_fork/0},
     {destroy_term_ignoring_workload, 90000, fun destroy_term_ignored/0},
     {exec, 90000, fun exec/0},
     {exec_timeout_kills_command, 60000, fun exec_timeout/0},
     {subscriber_events_and_death, 60000, fun subscriber_events/0},
     {subscriber_never_reads_100mb, 180000, fun flood_lazy_subscriber/0},
     {subscriber_node_stalled_100mb_drops, 180000, fun flood_stalled_node/0},
     {memory_limit_oom, 90000, fun memory_oom/0},
     {pids_limit_fork_bomb, 60000, fun fork_bomb/0},
     {isolation_namespaces, 60000, fun namespaces/0},
     {sigkill_adopt_20, 180000, fun sigkill_adopt/0},
     {malformed_calls, 120000, fun malformed/0},
     {ttl_destroys, 60000, fun ttl/0},
     {owner_down_destroys, 90000, fun owner_down/0},
     {restart_policy, 60000, fun restart_policy/0},
     {health_check_exec, 60000, fun health_exec/0},
     {health_check_tcp_http, 60000, fun health_tcp/0},
     {health_check_never_healthy, 60000, fun health_never/0},
     {copy_to_from, 60000, fun copy_files/0},
     {copy_fifo_does_not_block, 60000, fun copy_fifo/0},
     {unknown_user_refused_and_exec_keeps_the_uid, 60000, fun exec_unknown_user/0},
     {shell, 60000, fun shell/0},
     {shell_namespaced, 60000, fun shell_namespaced/0}].

%%% ---------------------------------------------------------------------------------
%%% Helpers

start() -> ?U:start_isolated().

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

now_ms() -> erlang:monotonic_time(millisecond).
wall_ms() -> os:system_time(millisecond).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

%% A marker unique to this run, usable as a sleep duration: "1000.<digits>".
marker(Int) ->
    integer_to_list(Int) ++ "." ++ integer_to_list(erlang:unique_integer([positive]) rem 100000)
        ++ integer_to_list(list_to_integer(os:getpid()) rem 1000).

ids(List) -> lists:sort([maps:get(id, Sb) || Sb <- List]).

info(S) -> ?U:info(S).

%% The first {sandbox_event, Id, Topic, P} with Pred(P); other events of that id and
%% topic are consumed, others stay in the mailbox.
wait_event(Id, Topic, Pred, Timeout) ->
    Deadline = now_ms() + Timeout,
    wait_event_loop(Id, Topic, Pred, Deadline).

wait_event_loop(Id, Topic, Pred, Deadline) ->
    Left = max(0, Deadline - now_ms()),
    receive
        {sandbox_event, Id, Topic, P} ->
            case Pred(P) of
                true -> P;
                false -> wait_event_loop(Id, Topic, Pred, Deadline)
            end
    after Left -> error({no_event, Id, Topic})
    end.

flush_events() ->
    receive {sandbox_event, _, _, _} -> flush_events() after 0 -> ok end.

%% Waits until no host process has Marker in its command line; fails listing them.
%% Timeout 0: checks once, now.
assert_no_process(Marker, 0) ->
    case [{P, cmdline(P)} || P <- ?U:os_pids_matching(Marker)] of
        [] -> ok;
        Left -> error({processes_left, Marker, Left})
    end;
assert_no_process(Marker, Timeout) ->
    case ?U:wait_until(fun() -> ?U:os_pids_matching(Marker) =:= [] end, Timeout) of
        ok -> ok;
        {error, timeout} ->
            Left = [{P, cmdline(P)} || P <- ?U:os_pids_matching(Marker)],
            error({processes_left, Marker, Left})
    end.

cmdline(P) ->
    case file:read_file("/proc/" ++ integer_to_list(P) ++ "/cmdline") of
        {ok, B} -> binary:replace(B, <<0>>, <<" ">>, [global]);
        _ -> gone
    end.

%% Alive and not a zombie (a killed process that is no longer sandboxd's child waits for
%% init to reap it).
os_alive(P) ->
    case file:read_file("/proc/" ++ integer_to_list(P) ++ "/stat") of
        {ok, Stat} ->
            [_, Rest] = string:split(Stat, <<") ">>, trailing),
            binary:first(Rest) =/= $Z;
        _ -> false
    end.

assert_no_zombies(#{os_pid := OsPid}) ->
    case ?U:wait_until(fun() -> ?U:zombies_of(OsPid) =:= [] end, 3000) of
        ok -> ok;
        {error, timeout} -> error({zombies, ?U:zombies_of(OsPid)})
    end.

sandbox_dir(#{state_dir := D}, Id) -> filename:join([D, "sandboxes", Id]).

%% The sandbox's cgroup directories (any controller), as sandboxd names them.
cgroup_dirs(#{node := N}, Id) ->
    filelib:wildcard("/sys/fs/cgroup/*/sandboxd/" ++ atom_to_list(N) ++ "/" ++ Id) ++
        filelib:wildcard("/sys/fs/cgroup/sandboxd/" ++ atom_to_list(N) ++ "/" ++ Id).

create_ok(S, Id, Config) ->
    case call(S, create, [Id, process, Config]) of
        {ok, #{status := running} = Sb} -> Sb;
        Other -> error({create_failed, Id, Config, Other})
    end.

log_lines(S, Id) ->
    {ok, Recs} = call(S, logs, [Id, #{tail => 100000}]),
    Recs.

log_text(S, Id) ->
    iolist_to_binary([[D, $\n] || #{data := D} <- log_lines(S, Id)]).

wait_log(S, Id, Pattern, Timeout) ->
    case ?U:wait_until(fun() -> binary:match(log_text(S, Id), Pattern) =/= nomatch end, Timeout) of
        ok -> ok;
        {error, timeout} -> error({log_never_showed, Id, Pattern, log_text(S, Id)})
    end.

wait_status(S, Id, Status, Timeout) ->
    case ?U:wait_until(fun() -> {ok, #{status := St}} = call(S, get, [Id]), St =:= Status end,
                       Timeout) of
        ok -> ok;
        {error, timeout} -> error({status_never, Id, Status, call(S, get, [Id])})
    end.

check_sandbox_map(Sb) ->
    ?assertEqual(?SANDBOX_KEYS, lists:sort(maps:keys(Sb))),
    #{id := Id, type := T, status := St, created_at := C, labels := L, restart_count := RC} = Sb,
    ?assert(is_binary(Id)),
    ?assertEqual(process, T),
    ?assert(lists:member(St, [starting, running, stopping, stopped, exited, error])),
    ?assert(is_integer(C) andalso abs(C - wall_ms()) < 600000),
    ?assert(is_map(L)),
    ?assert(is_integer(RC) andalso RC >= 0),
    ok.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, P} = inet:port(L),
    gen_tcp:close(L),
    P.

test_ebin() -> filename:dirname(code:which(?MODULE)).

%%% ---------------------------------------------------------------------------------
%%% 1. Lifecycle

lifecycle() ->
    S = #{node := N} = start(),
    M = marker(300),
    %% Ids as atom, binary and charlist; always returned as binaries.
    A = create_ok(S, lc_atom, #{cmd => [<<"sleep">>, list_to_binary(M)],
                                labels => #{tier => <<"web">>, <<"team">> => <<"a">>}}),
    B = create_ok(S, <<"lc-bin.1">>, #{<<"cmd">> => <<"echo hello; sleep ", (list_to_binary(M))/binary>>,
                                       labels => #{tier => <<"db">>}}),
    C = create_ok(S, "lc_list", #{cmd => ["sleep", M]}),
    [check_sandbox_map(X) || X <- [A, B, C]],
    #{id := <<"lc_atom">>, node := N, ref := RefA, started_at := StA, exit_status := undefined,
      ports := [], restart_count := 0,
      labels := #{<<"tier">> := <<"web">>, <<"team">> := <<"a">>}} = A,
    #{id := <<"lc-bin.1">>} = B,
    #{id := <<"lc_list">>} = C,
    ?assert(is_integer(RefA) andalso os_alive(RefA)),
    ?assert(is_integer(StA)),
    ?assertMatch(#{cmd := [<<"sleep">>, _]}, maps:get(config, A)),
    3 = maps:get(sandboxes, info(S)),
    %% already_exists, whichever way the id is spelled.
    [?assertEqual({error, already_exists}, call(S, create, [Id, process, #{cmd => [<<"true">>]}]))
     || Id <- [lc_atom, <<"lc_atom">>, "lc_atom"]],
    %% get by any spelling.
    [?assertMatch({ok, #{id := <<"lc_atom">>, status := running}}, call(S, get, [Id]))
     || Id <- [lc_atom, <<"lc_atom">>, "lc_atom"]],
    %% not_found from every function taking an id.
    NotFound = [{get, [nope]}, {destroy, [nope]}, {stop, [nope]}, {start, [nope]},
                {restart, [nope]}, {exec, [nope, [<<"true">>]]}, {exec, [nope, [<<"true">>], #{}]},
                {logs, [nope, #{}]}, {metrics, [nope]}, {processes, [nope]}, {shell, [nope]},
                {copy_to, [nope, <<"f">>, <<"x">>]}, {copy_from, [nope, <<"f">>]},
                {subscribe, [nope, self(), [status]]}],
    [?assertEqual({{F, Args}, {error, not_found}}, {{F, Args}, call(S, F, Args)})
     || {F, Args} <- NotFound],
    %% list and its filters.
    %% In creation order.
    ?assertEqual([<<"lc_atom">>, <<"lc-bin.1">>, <<"lc_list">>], [I || #{id := I} <- call(S, list, [])]),
    [check_sandbox_map(X) || X <- call(S, list, [])],
    ?assertEqual(3, length(call(S, list, [#{type => process}]))),
    ?assertEqual([], call(S, list, [#{type => docker}])),
    ?assertEqual(3, length(call(S, list, [#{status => running}]))),
    ?assertEqual([], call(S, list, [#{status => stopped}])),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{labels => #{tier => <<"web">>}}]))),
    ?assertEqual([<<"lc-bin.1">>], ids(call(S, list, [#{<<"labels">> => #{<<"tier">> => <<"db">>}}]))),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{type => process, status => running,
                                                       labels => #{tier => <<"web">>, team => <<"a">>}}]))),
    ?assertEqual([], ids(call(S, list, [#{labels => #{tier => <<"web">>, team => <<"b">>}}]))),
    wait_log(S, <<"lc-bin.1">>, <<"hello">>, 5000),
    %% stop: the process is gone, status stopped.
    {ok, Stopped} = call(S, stop, [lc_atom]),
    check_sandbox_map(Stopped),
    ?assertMatch(#{id := <<"lc_atom">>, status := stopped}, Stopped),
    ok = ?U:wait_until(fun() -> not os_alive(RefA) end, 3000),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{status => stopped}]))),
    ?assertMatch({ok, #{status := stopped}}, call(S, stop, [lc_atom])),
    %% start: a new process.
    {ok, Started} = call(S, start, [lc_atom]),
    #{status := running, ref := RefA2, started_at := StA2} = Started,
    ?assert(is_integer(RefA2) andalso RefA2 =/= RefA andalso os_alive(RefA2)),
    ?assert(StA2 >= StA),
    %% start while running: no change.
    ?assertMatch({ok, #{status := running, ref := RefA2}}, call(S, start, [lc_atom])),
    %% restart: a new process again; restart_count counts restarts made by the restart
    %% policy (max_restarts), not restarts asked for by a caller.
    {ok, Restarted} = call(S, restart, [lc_atom]),
    #{status := running, ref := RefA3, restart_count := RC3} = Restarted,
    ?assert(is_integer(RefA3) andalso RefA3 =/= RefA2 andalso os_alive(RefA3)),
    ok = ?U:wait_until(fun() -> not os_alive(RefA2) end, 3000),
    ?assertEqual(0, RC3),
    %% restart of a stopped sandbox starts it.
    {ok, #{status := stopped}} = call(S, stop, ["lc_list"]),
    ?assertMatch({ok, #{status := running}}, call(S, restart, ["lc_list"])),
    %% destroy: ok, then everything is gone.
    #{ref := RefB} = B,
    Refs = [RefA3, RefB | [R || #{ref := R} <- call(S, list, [#{status => running}])]],
    [?assertEqual(ok, call(S, destroy, [Id])) || Id <- [lc_atom, <<"lc-bin.1">>, "lc_list"]],
    ?assertEqual([], call(S, list, [])),
    ?assertEqual({error, not_found}, call(S, get, [lc_atom])),
    ?assertEqual({error, not_found}, call(S, destroy, [lc_atom])),
    ?assertEqual([], [R || R <- Refs, os_alive(R)]),
    assert_no_process(M, 0),
    [?assertNot(filelib:is_dir(sandbox_dir(S, Id))) || Id <- ["lc_atom", "lc-bin.1", "lc_list"]],
    [?assertEqual([], cgroup_dirs(S, Id)) || Id <- ["lc_atom", "lc-bin.1", "lc_list"]],
    ?assertEqual(0, maps:get(sandboxes, info(S))),
    %% An id is free again once destroyed.
    create_ok(S, lc_atom, #{cmd => [<<"true">>]}),
    ok = call(S, destroy, [lc_atom]),
    assert_no_zombies(S),
    ok.

%% Creates that fail leave nothing: no sandbox, no process, no folder, and the id is free.
failed_create() ->
    S = start(),
    M = marker(400),
    Cases = [{#{cmd => [<<"/no/such/binary">>, list_to_binary(M)]}, backend},
             {#{cmd => [<<"sleep">>, list_to_binary(M)], cwd => <<"/no/such/dir">>}, backend},
             {#{cmd => [<<"sleep">>, list_to_binary(M)], user => <<"no_such_user_sbx">>}, backend},
             {#{cmd => [<<"sleep">>, list_to_binary(M)], bogus => 1}, {badarg, bogus, unknown_key}},
             {#{}, {badarg, cmd, missing}}],
    lists:foreach(
      fun({Cfg, Want}) ->
              R = call(S, create, [<<"fc">>, process, Cfg]),
              case Want of
                  backend ->
                      ?assertMatch({{error, {backend, process, D}}, _} when is_binary(D), {R, Cfg});
                  _ ->
                      ?assertEqual({{error, Want}, Cfg}, {R, Cfg})
              end,
              ?assertEqual([], call(S, list, [])),
              ?assertEqual({error, not_found}, call(S, get, [<<"fc">>])),
              ?assertEqual(0, maps:get(sandboxes, info(S))),
              ?assertNot(filelib:is_dir(sandbox_dir(S, "fc"))),
              ?assertEqual([], cgroup_dirs(S, "fc")),
              assert_no_process(M, 2000)
      end, Cases),
    {error, {backend, process, Detail}} = call(S, create, [<<"fc">>, process, #{cmd => [<<"/no/such/binary">>]}]),
    report("create of a missing binary: ~s", [Detail]),
    ?assertNotEqual(nomatch, binary:match(Detail, <<"/no/such/binary">>)),
    %% The id is usable after all these failures.
    create_ok(S, <<"fc">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    ok = call(S, destroy, [<<"fc">>]),
    assert_no_process(M, 0),
    assert_no_zombies(S),
    ok.

%% exec on a sandbox that is not running: {error, not_running} (docs/API.md, an addition
%% to the shared contract's reasons).
exec_on_stopped() ->
    S = start(),
    create_ok(S, es, #{cmd => [<<"sleep">>, <<"300">>]}),
    {ok, #{status := stopped}} = call(S, stop, [es]),
    ?assertEqual({error, not_running}, call(S, exec, [es, [<<"echo">>, <<"hi">>]])),
    create_ok(S, es2, #{cmd => <<"exit 0">>}),
    wait_status(S, es2, exited, 10000),
    ?assertEqual({error, not_running}, call(S, exec, [es2, [<<"echo">>, <<"hi">>], #{}])),
    ok = call(S, destroy, [es]),
    ok = call(S, destroy, [es2]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 2. destroy leaves no process and no zombie

destroy_double_fork() ->
    S = start(),
    M = marker(1000),
    %% One double-forked child leaves the session (setsid), one stays in it, one more is
    %% a plain background child; the main shell waits on a fourth.
    Cmd = iolist_to_binary(["(setsid sleep ", M, " &) ; (sleep ", M, " &) ; sleep ", M,
                            " & sleep ", M]),
    #{ref := Ref} = create_ok(S, df, #{cmd => Cmd}),
    %% The shell's own command line holds the marker too: 1 + 4 sleeps.
    %% Forked shells carry the marker in their command line until they exec sleep: wait
    %% for the four sleeps themselves.
    SleepsNow = fun() ->
                        {ok, Ps} = call(S, processes, [df]),
                        [P || #{name := <<"sleep">>, pid := P} <- Ps]
                end,
    ok = ?U:wait_until(fun() -> length(SleepsNow()) >= 4 end, 5000),
    Sleeps = SleepsNow(),
    Before = ?U:os_pids_matching(M),
    ?assert(length(Sleeps) >= 4),
    %% The setsid'd sleep is outside the session but still the sandbox's.
    [Setsid | _] = [P || P <- Sleeps, session_of(P) =/= session_of(Ref)],
    ?assert(lists:member(Setsid, Before)),
    T0 = now_ms(),
    ok = call(S, destroy, [df]),
    Ms = now_ms() - T0,
    %% Nothing left the moment destroy returned.
    Left = [{P, cmdline(P)} || P <- ?U:os_pids_matching(M)],
    report("destroy of a double-forking sandbox (~b processes): ~b ms, left ~p",
           [length(Before), Ms, Left]),
    ?assertEqual([], Left),
    assert_no_zombies(S),
    ?assertNot(filelib:is_dir(sandbox_dir(S, "df"))),
    ?assertEqual([], cgroup_dirs(S, "df")),
    ok.

session_of(Pid) ->
    {ok, Stat} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat"),
    [_, Rest] = string:split(Stat, <<") ">>, trailing),
    [_State, _PPid, _Pgrp, Sid | _] = binary:split(Rest, <<" ">>, [global]),
    binary_to_integer(Sid).

%% A workload that ignores SIGTERM (inherited by its children) and keeps forking is
%% SIGKILLed after the grace period; destroy answers ok only once nothing of it is left:
%% no process, no cgroup, no folder (the group is emptied and removed from timers).
destroy_term_ignored() ->
    S = start(),
    M = marker(1001),
    Cmd = iolist_to_binary(["trap '' TERM; (setsid sleep ", M, " &) ; "
                            "(while :; do (sleep ", M, " &); sleep 0.05; done) & "
                            "while :; do sleep ", M, "; done"]),
    create_ok(S, ti, #{cmd => Cmd}),
    ok = ?U:wait_until(fun() -> length(?U:os_pids_matching(M)) >= 3 end, 5000),
    T0 = now_ms(),
    ok = call(S, destroy, [ti]),
    Ms = now_ms() - T0,
    Left = [{P, cmdline(P)} || P <- ?U:os_pids_matching(M)],
    report("destroy of a SIGTERM-ignoring, forking sandbox: ~b ms (grace then SIGKILL), left ~p",
           [Ms, Left]),
    ?assertEqual([], Left),
    ?assert(Ms < 15000),
    assert_no_zombies(S),
    ?assertNot(filelib:is_dir(sandbox_dir(S, "ti"))),
    ?assertEqual([], cgroup_dirs(S, "ti")),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 3. exec

exec() ->
    S = start(),
    create_ok(S, ex, #{cmd => [<<"sleep">>, <<"300">>]}),
    E = fun(Cmd) -> call(S, exec, [ex, Cmd]) end,
    E3 = fun(Cmd, Opts) -> call(S, exec, [ex, Cmd, Opts]) end,
    %% argv without a shell: spaces, $HOME, globs and quotes arrive literally.
    {ok, R1} = E([<<"printf">>, <<"[%s]">>, <<"a b">>, <<"$HOME">>, <<"*">>, <<"'q' \"d\"">>, <<"`id`">>]),
    ?assertEqual([duration_ms, exit_code, stderr, stdout, truncated], lists:sort(maps:keys(R1))),
    ?assertMatch(#{exit_code := 0, stderr := <<>>, truncated := false}, R1),
    ?assertEqual(<<"[a b][$HOME][*]['q' \"d\"][`id`]">>, maps:get(stdout, R1)),
    ?assert(is_integer(maps:get(duration_ms, R1)) andalso maps:get(duration_ms, R1) >= 0),
    %% A single binary (and a charlist) is run by /bin/sh -c.
    ?assertMatch({ok, #{stdout := <<"a b\n">>, exit_code := 0}}, E(<<"echo a   b">>)),
    ?assertMatch({ok, #{stdout := <<"hi\n">>}}, E("echo hi")),
    %% Exit codes.
    ?assertMatch({ok, #{exit_code := 0}}, E([<<"true">>])),
    ?assertMatch({ok, #{exit_code := 1}}, E([<<"false">>])),
    ?assertMatch({ok, #{exit_code := 7}}, E([<<"sh">>, <<"-c">>, <<"exit 7">>])),
    ?assertMatch({ok, #{exit_code := 255}}, E(<<"exit 255">>)),
    ?assertMatch({ok, #{exit_code := 127}}, E(<<"no_such_command_sbx">>)),
    %% A program that does not exist, run without a shell.
    NoSuch = E([<<"/no/such/program">>]),
    report("exec of a missing program: ~p", [NoSuch]),
    ?assertMatch({error, {backend, process, D}} when is_binary(D), NoSuch),
    %% A command ended by a signal: exit_code 128 + N and signal => N.
    ?assertMatch({ok, #{exit_code := 137, signal := 9}}, E(<<"kill -9 $$">>)),
    %% stdout and stderr are separate.
    ?assertMatch({ok, #{stdout := <<"out\n">>, stderr := <<"err\n">>, exit_code := 4}},
                 E(<<"echo out; echo err >&2; exit 4">>)),
    %% stdin: given, binary-safe, large; absent means end of file at once.
    ?assertMatch({ok, #{stdout := <<"l1\nl2\n">>}}, E3([<<"cat">>], #{stdin => <<"l1\nl2\n">>})),
    Bytes = list_to_binary(lists:seq(0, 255)),
    ?assertMatch({ok, #{stdout := Bytes}}, E3([<<"cat">>], #{stdin => Bytes})),
    Big = binary:copy(<<"0123456789">>, 200000),
    ?assertMatch({ok, #{stdout := <<"2000000\n">>}}, E3([<<"wc">>, <<"-c">>], #{stdin => Big})),
    ?assertMatch({ok, #{stdout := <<>>, exit_code := 0}}, E3([<<"cat">>], #{timeout_ms => 5000})),
    %% env and cwd.
    ?assertMatch({ok, #{stdout := <<"bar\n/tmp\n">>}},
                 E3([<<"sh">>, <<"-c">>, <<"echo $FOO; pwd">>],
                    #{env => #{<<"FOO">> => <<"bar">>}, cwd => <<"/tmp">>})),
    %% max_output_bytes: cut, truncated => true; per stream; exact fit is not truncated.
    {ok, T1} = E3(<<"head -c 100000 /dev/zero | tr '\\0' x">>, #{max_output_bytes => 1000}),
    ?assertMatch(#{truncated := true, exit_code := 0}, T1),
    ?assertEqual(binary:copy(<<"x">>, 1000), maps:get(stdout, T1)),
    {ok, T2} = E3(<<"head -c 5000 /dev/zero | tr '\\0' e >&2">>, #{max_output_bytes => 100}),
    ?assertMatch(#{truncated := true, stdout := <<>>}, T2),
    ?assertEqual(100, byte_size(maps:get(stderr, T2))),
    {ok, T3} = E3(<<"head -c 1000 /dev/zero | tr '\\0' x">>, #{max_output_bytes => 1000}),
    ?assertMatch(#{truncated := false}, T3),
    ?assertEqual(1000, byte_size(maps:get(stdout, T3))),
    %% Default limit: 1 MiB.
    {ok, T4} = E(<<"head -c 3000000 /dev/zero">>),
    ?assertMatch(#{truncated := true}, T4),
    ?assertEqual(1024 * 1024, byte_size(maps:get(stdout, T4))),
    %% duration_ms measures the command.
    {ok, #{duration_ms := Dur}} = E([<<"sleep">>, <<"0.3">>]),
    ?assert(Dur >= 250 andalso Dur < 10000),
    %% The sandbox is untouched by all this.
    ?assertMatch({ok, #{status := running}}, call(S, get, [ex])),
    ok = call(S, destroy, [ex]),
    ok.

exec_timeout() ->
    S = start(),
    M = marker(30),
    create_ok(S, et, #{cmd => [<<"sleep">>, <<"300">>]}),
    T0 = now_ms(),
    R = call(S, exec, [et, [<<"sh">>, <<"-c">>, iolist_to_binary(["sleep ", M, " & sleep ", M, "; echo never"])],
                       #{timeout_ms => 500}]),
    Ms = now_ms() - T0,
    report("exec past its deadline (500 ms): ~p after ~b ms", [R, Ms]),
    ?assertEqual({error, timeout}, R),
    ?assert(Ms >= 450 andalso Ms < 10000),
    %% The command and what it started are gone.
    assert_no_process(M, 2000),
    ?assertMatch({ok, #{status := running}}, call(S, get, [et])),
    %% The sandbox still runs commands.
    ?assertMatch({ok, #{stdout := <<"ok\n">>}}, call(S, exec, [et, [<<"echo">>, <<"ok">>]])),
    ok = call(S, destroy, [et]),
    assert_no_zombies(S),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 4. Subscribers

subscriber_events() ->
    S = start(),
    Me = self(),
    %% A plain process subscribes to everything and forwards what it gets.
    Sub = spawn(fun() -> forwarder(Me) end),
    {ok, SubRef} = call(S, subscribe, [all, Sub, [status, log, metrics, processes]]),
    ?assert(is_reference(SubRef)),
    ?assertEqual(1, maps:get(subscribers, info(S))),
    create_ok(S, ev, #{cmd => <<"i=0; while :; do i=$((i+1)); echo line $i; echo err $i >&2; sleep 0.1; done">>,
                       metrics_interval_ms => 200}),
    Fwd = fun(Topic, Pred) -> fwd_event(<<"ev">>, Topic, Pred, 10000) end,
    St = Fwd(status, fun(#{to := running}) -> true; (_) -> false end),
    ?assertEqual([from, reason, to, ts], lists:sort(maps:keys(St))),
    ?assertMatch(#{from := starting, to := running}, St),
    ?assert(abs(maps:get(ts, St) - wall_ms()) < 60000),
    Log = Fwd(log, fun(#{stream := stdout}) -> true; (_) -> false end),
    ?assertEqual([data, stream, ts], lists:sort(maps:keys(Log))),
    ?assertMatch(#{data := <<"line ", _/binary>>}, Log),
    ErrLog = Fwd(log, fun(#{stream := stderr}) -> true; (_) -> false end),
    ?assertMatch(#{data := <<"err ", _/binary>>}, ErrLog),
    Met = Fwd(metrics, fun(_) -> true end),
    ?assertEqual([cpu_percent, memory_bytes, memory_limit_bytes, pids, ts], lists:sort(maps:keys(Met))),
    #{cpu_percent := Cpu, memory_bytes := Mem, memory_limit_bytes := Lim, pids := Pids} = Met,
    ?assert(is_number(Cpu) andalso Cpu >= 0),
    ?assert(is_integer(Mem) andalso Mem > 0),
    ?assert(is_integer(Lim) andalso Lim >= 0),
    ?assert(is_integer(Pids) andalso Pids >= 1),
    %% metrics/1 answers the same shape.
    {ok, Met1} = call(S, metrics, [ev]),
    ?assertEqual(lists:sort(maps:keys(Met)), lists:sort(maps:keys(Met1))),
    Procs = fwd_event(<<"ev">>, processes, fun(L) -> is_list(L) andalso L =/= [] end, 10000),
    [?assertEqual([cpu_percent, memory_bytes, name, pid, status], lists:sort(maps:keys(P))) || P <- Procs],
    %% A second, per-sandbox subscription from this process; unsubscribe ends it.
    {ok, Ref2} = call(S, subscribe, [ev, self(), [log]]),
    ?assertEqual(2, maps:get(subscribers, info(S))),
    _ = wait_event(<<"ev">>, log, fun(_) -> true end, 5000),
    ?assertEqual(ok, call(S, unsubscribe, [Ref2])),
    ?assertEqual(ok, call(S, unsubscribe, [make_ref()])),
    ?assertEqual(1, maps:get(subscribers, info(S))),
    timer:sleep(300),
    flush_events(),
    receive {sandbox_event, _, _, _} = Ev -> error({event_after_unsubscribe, Ev})
    after 700 -> ok
    end,
    %% stop: running -> stopping -> stopped, with a reason.
    {ok, _} = call(S, stop, [ev]),
    Stp = Fwd(status, fun(#{to := stopped}) -> true; (_) -> false end),
    ?assertMatch(#{from := stopping}, Stp),
    report("status event on stop: ~p", [Stp]),
    %% The subscriber dies: its subscription goes with it.
    exit(Sub, kill),
    ?assertEqual(ok, ?U:wait_until(fun() -> maps:get(subscribers, info(S)) =:= 0 end, 5000)),
    ok = call(S, destroy, [ev]),
    ok.

forwarder(To) ->
    receive
        {sandbox_event, _, _, _} = E -> To ! {fwd, E}, forwarder(To)
    end.

fwd_event(Id, Topic, Pred, Timeout) ->
    Deadline = now_ms() + Timeout,
    fwd_loop(Id, Topic, Pred, Deadline).

fwd_loop(Id, Topic, Pred, Deadline) ->
    receive
        {fwd, {sandbox_event, Id, Topic, P}} ->
            case Pred(P) of
                true -> P;
                false -> fwd_loop(Id, Topic, Pred, Deadline)
            end
    after max(0, Deadline - now_ms()) -> error({no_forwarded_event, Id, Topic})
    end.

%% 100 MB printed while a subscriber on another node never reads its mailbox. Afterwards
%% it starts reading: events flow to it again, and one carries the drop count.
flood_lazy_subscriber() ->
    flood(lazy).

%% The same with a subscriber that reads, on a node that is stopped (SIGSTOP) during the
%% flood and continued (SIGCONT) afterwards.
flood_stalled_node() ->
    flood(stalled).

flood(Mode) ->
    %% Under AddressSanitizer, freed memory waits in a quarantine (256 MB by default) before
    %% reuse, which would count as RSS here: keep it small for this instance.
    Env = case string:find(?U:bin(), "asan") of
              nomatch -> [];
              _ -> [{"ASAN_OPTIONS", os:getenv("ASAN_OPTIONS", "") ++ ":quarantine_size_mb=16"}]
          end,
    S = #{node := N, os_pid := OsPid} = ?U:start_isolated(#{env => Env}),
    {Peer, _PeerNode} = ?U:start_peer("flood", ["-pa", test_ebin()]),
    pong = peer:call(Peer, net_adm, ping, [N]),
    Sub = peer:call(Peer, ?MODULE, peer_lazy_subscriber, [Mode =:= stalled]),
    {ok, _} = peer:call(Peer, rpc, call, [N, sandbox, subscribe, [all, Sub, [status, log]]]),
    Rss0 = maps:get(memory_bytes, info(S)),
    Self = self(),
    Sampler = spawn_link(fun() -> sampler(S, Self, Rss0) end),
    PeerOs = ?U:peer_os_pid(Peer),
    case Mode of
        stalled -> ?U:os_kill(PeerOs, "STOP");
        lazy -> ok
    end,
    T0 = now_ms(),
    create_ok(S, flood, #{cmd => <<"head -c 100000000 /dev/zero | tr '\\0' x | fold -w 999; echo; echo FLOOD-DONE">>}),
    wait_status(S, flood, exited, 150000),
    FloodMs = now_ms() - T0,
    timer:sleep(500),
    Sampler ! {stop, Self},
    Peak = receive {peak, P} -> P after 10000 -> error(no_sampler) end,
    Hwm = ?U:vm_hwm(OsPid),
    unlink(Sampler),
    %% logs/2 still answers, with the end of the output.
    {ok, Tail} = call(S, logs, [flood, #{tail => 3}]),
    ?assertMatch([_, _, #{data := <<"FLOOD-DONE">>}], Tail),
    pong = rpc:call(N, sandbox, ping, []),
    %% The subscriber catches up: its node runs again, or it starts reading.
    case Mode of
        stalled -> ?U:os_kill(PeerOs, "CONT");
        lazy -> ok
    end,
    Backlog = peer:call(Peer, ?MODULE, peer_read, [Sub], 120000),
    %% Events of a new sandbox reach it again, one of them with dropped => N.
    create_ok(S, later, #{cmd => <<"for i in $(seq 1 30); do echo later $i; sleep 0.1; done">>}),
    wait_status(S, later, exited, 30000),
    timer:sleep(1000),
    ok = call(S, destroy, [flood]),
    ok = call(S, destroy, [later]),
    Rep = peer:call(Peer, ?MODULE, peer_report, [Sub], 120000),
    #{events := Evs, bytes := Bytes, dropped := Dropped, dropped_events := DropEvs,
      first_dropped := FirstDrop, later := Later, statuses := Statuses} = Rep,
    report("~p subscriber, 100 MB of output in ~b ms: sandboxd RSS before ~.1f MB, "
           "peak sampled via info() ~.1f MB, VmHWM ~.1f MB; backlog when it caught up: "
           "~b log events (~.1f MB); in all ~b log events (~.1f MB), ~b status events; "
           "dropped => N seen in ~b events (first: ~w), total dropped ~b; events of the "
           "next sandbox received: ~b",
           [Mode, FloodMs, Rss0 / ?MB, Peak / ?MB, hwm_mb(Hwm), maps:get(events, Backlog),
            maps:get(bytes, Backlog) / ?MB, Evs, Bytes / ?MB, length(Statuses), DropEvs,
            case FirstDrop of
                {FI, FT, FN} -> {binary_to_atom(FI), FT, FN};
                none -> none
            end, Dropped, Later]),
    ?assert(Peak < ?RSS_BOUND),
    ?assert(Hwm =:= undefined orelse Hwm < ?RSS_BOUND),
    %% Delivery resumed once the subscriber kept up again.
    ?assert(Later >= 10),
    %% Events beyond the limit were dropped and counted, and an event said so.
    ?assert(Dropped > 0),
    ?U:stop_peer(Peer),
    ok.

hwm_mb(undefined) -> -1.0;
hwm_mb(B) -> B / ?MB.

sampler(S, Parent, Peak) ->
    receive
        {stop, Parent} -> Parent ! {peak, Peak}
    after 50 ->
        Now = case catch maps:get(memory_bytes, info(S)) of
                  V when is_integer(V) -> V;
                  _ -> 0
              end,
        sampler(S, Parent, max(Peak, Now))
    end.

%% On the peer: a subscriber that reads nothing until told to (Reading false), or reads
%% from the start. Counts what it gets.
peer_lazy_subscriber(Reading) ->
    spawn(fun() -> sub_loop(Reading, new_stats()) end).

new_stats() ->
    #{events => 0, bytes => 0, dropped => 0, dropped_events => 0, first_dropped => none,
      later => 0, statuses => []}.

sub_loop(false, St) ->
    receive
        {read, From} ->
            Backlog = drain(new_stats()),
            From ! {read, self(), Backlog},
            sub_loop(true, merge_stats(St, Backlog))
    end;
sub_loop(true, St) ->
    receive
        {read, From} ->
            St1 = drain(St),
            From ! {read, self(), St1},
            sub_loop(true, St1);
        {report, From} ->
            St1 = drain(St),
            From ! {report, self(), St1#{statuses := lists:reverse(maps:get(statuses, St1))}};
        {sandbox_event, _, _, _} = E ->
            sub_loop(true, count(E, St))
    end.

merge_stats(A, B) ->
    maps:map(fun(statuses, V) -> maps:get(statuses, B) ++ V;
                (first_dropped, none) -> maps:get(first_dropped, B);
                (first_dropped, V) -> V;
                (K, V) -> V + maps:get(K, B)
             end, A).

%% Everything already in the mailbox.
drain(St) ->
    receive {sandbox_event, _, _, _} = E -> drain(count(E, St))
    after 0 -> St
    end.

count({sandbox_event, Id, Topic, P} = E, St) ->
    St1 = case P of
              #{dropped := N} when is_integer(N) ->
                  St#{dropped := maps:get(dropped, St) + N,
                      dropped_events := maps:get(dropped_events, St) + 1,
                      first_dropped := case maps:get(first_dropped, St) of
                                           none -> {Id, Topic, N};
                                           F -> F
                                       end};
              _ -> St
          end,
    St2 = case Id of
              <<"later">> -> St1#{later := maps:get(later, St1) + 1};
              _ -> St1
          end,
    case E of
        {_, _, log, #{data := D}} ->
            St2#{events := maps:get(events, St2) + 1, bytes := maps:get(bytes, St2) + byte_size(D)};
        {_, _, status, _} ->
            St2#{statuses := [{Id, maps:with([from, to, reason, dropped], P)} | maps:get(statuses, St2)]};
        _ -> St2
    end.

%% On the peer: tells the subscriber to read from now on; returns what it had queued.
peer_read(Sub) ->
    Sub ! {read, self()},
    receive {read, Sub, Backlog} -> Backlog after 110000 -> error(no_read_answer) end.

peer_report(Sub) ->
    Sub ! {report, self()},
    receive {report, Sub, R} -> R after 110000 -> error(no_report) end.

%%% ---------------------------------------------------------------------------------
%%% 5. Limits

memory_oom() ->
    S = start(),
    #{limits := #{memory_mb := How}} = info(S),
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    M = marker(10),
    %% The shell keeps 200 MB in a variable.
    Cmd = iolist_to_binary(["x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}; sleep ", M]),
    create_ok(S, hog, #{cmd => Cmd, memory_mb => 64}),
    {ok, #{memory_limit_bytes := Lim}} = call(S, metrics, [hog]),
    ?assertEqual(64 * ?MB, Lim),
    Ended = wait_event(<<"hog">>, status, fun(#{to := T}) -> T =:= exited end, 60000),
    report("memory hog under memory_mb => 64 (enforced by ~p): ~p", [How, Ended]),
    case How of
        cgroup -> ?assertMatch(#{reason := oom}, Ended);
        _ -> ok
    end,
    ?assertEqual(nomatch, binary:match(log_text(S, <<"hog">>), <<"survived">>)),
    ok = call(S, destroy, [hog]),
    assert_no_process(M, 0),
    ok.

fork_bomb() ->
    S = start(),
    #{limits := #{pids_limit := How}} = info(S),
    M = marker(100),
    Cmd = iolist_to_binary(["(for i in $(seq 1 100); do sleep ", M, " & done; wait); sleep ", M]),
    create_ok(S, fb, #{cmd => Cmd, pids_limit => 10}),
    wait_log(S, <<"fb">>, <<"fork">>, 10000),
    %% Sample for a while: never more than 10 processes, seen by sandboxd and from the host.
    Samples = [begin
                   timer:sleep(100),
                   {ok, #{pids := P}} = call(S, metrics, [fb]),
                   {ok, L} = call(S, processes, [fb]),
                   {P, length(L), length(?U:os_pids_matching(M))}
               end || _ <- lists:seq(1, 15)],
    MaxPids = lists:max([P || {P, _, _} <- Samples]),
    MaxProcs = lists:max([L || {_, L, _} <- Samples]),
    MaxHost = lists:max([H || {_, _, H} <- Samples]),
    report("fork bomb under pids_limit => 10 (enforced by ~p): max metrics pids ~b, processes ~b, "
           "host-visible ~b; log: ~p", [How, MaxPids, MaxProcs, MaxHost, log_text(S, <<"fb">>)]),
    ?assert(MaxPids =< 10),
    ?assert(MaxProcs =< 10),
    ?assert(MaxHost =< 10),
    ?assert(MaxHost >= 5), % the bomb did start some
    T0 = now_ms(),
    ok = call(S, destroy, [fb]),
    report("destroy of the fork bomb: ~b ms", [now_ms() - T0]),
    assert_no_process(M, 0),
    assert_no_zombies(S),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 6. Namespaces

namespaces() ->
    S = start(),
    M = marker(301),
    create_ok(S, <<"ns-box">>, #{cmd => [<<"sleep">>, list_to_binary(M)], isolation => namespaces}),
    {ok, #{stdout := Ps, exit_code := 0}} = call(S, exec, [<<"ns-box">>, [<<"ps">>, <<"-e">>, <<"-o">>, <<"pid=,comm=">>]]),
    Lines = [string:split(string:trim(L), " ", leading) || L <- string:split(string:trim(Ps), "\n", all)],
    Names = [string:trim(C) || [_, C] <- Lines],
    Pids = [binary_to_integer(P) || [P, _] <- Lines],
    report("ps inside the namespaces: ~p", [Lines]),
    ?assert(length(Lines) =< 4),
    ?assert(lists:member(<<"sleep">>, Names)),
    ?assert(lists:member(<<"ps">>, Names)),
    ?assert(lists:all(fun(P) -> P < 10 end, Pids)),
    HostCount = length([P || P <- element(2, file:list_dir("/proc")), lists:all(fun(C) -> C >= $0 andalso C =< $9 end, P)]),
    ?assert(HostCount > 10),
    {ok, #{stdout := LsProc}} = call(S, exec, [<<"ns-box">>, [<<"ls">>, <<"/proc">>]]),
    NumEntries = [E || E <- string:split(LsProc, "\n", all), E =/= <<>>,
                       lists:all(fun(C) -> C >= $0 andalso C =< $9 end, binary_to_list(E))],
    ?assert(length(NumEntries) =< 4),
    %% hostname: the sandbox id, not the host's.
    {ok, HostName} = inet:gethostname(),
    {ok, #{stdout := Hn}} = call(S, exec, [<<"ns-box">>, [<<"hostname">>]]),
    ?assertEqual(<<"ns-box">>, string:trim(Hn)),
    ?assertNotEqual(list_to_binary(HostName), string:trim(Hn)),
    %% Its own network namespace: only a loopback interface.
    {ok, #{stdout := NetDev}} = call(S, exec, [<<"ns-box">>, [<<"cat">>, <<"/proc/net/dev">>]]),
    Ifaces = [string:trim(hd(string:split(L, ":"))) || L <- string:split(NetDev, "\n", all),
                                                        string:find(L, ":") =/= nomatch],
    report("interfaces inside: ~p", [Ifaces]),
    ?assertEqual([<<"lo">>], Ifaces),
    %% Seen from the host, the sandbox has its processes.
    {ok, Procs} = call(S, processes, [<<"ns-box">>]),
    ?assert(lists:any(fun(#{name := Nm}) -> Nm =:= <<"sleep">> end, Procs)),
    ok = call(S, destroy, [<<"ns-box">>]),
    assert_no_process(M, 0),
    assert_no_zombies(S),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 7. SIGKILL sandboxd with 20 sandboxes running, start it again

sigkill_adopt() ->
    S1 = #{node := N, os_pid := Os1, sname := SName, state_dir := Dir} = start(),
    M = marker(0),          % "0.<digits>": the tick interval, ~0.2 s
    Tick = "0.2" ++ tl(tl(M)),
    Ids = [list_to_binary(io_lib:format("t~2..0b", [I])) || I <- lists:seq(1, 20)],
    Cmd = iolist_to_binary(["i=0; while :; do i=$((i+1)); echo tick $i; sleep ", Tick, "; done"]),
    Refs = maps:from_list([{Id, maps:get(ref, create_ok(S1, Id, #{cmd => Cmd}))} || Id <- Ids]),
    #{ref := GoneRef} = create_ok(S1, gone, #{cmd => [<<"sleep">>, list_to_binary(Tick ++ "00")]}),
    ok = ?U:wait_until(fun() -> lists:all(fun(Id) -> length(log_lines(S1, Id)) >= 3 end, Ids) end, 20000),
    %% SIGKILL: the workloads keep running without it.
    KillTs = wall_ms(),
    ?U:os_kill(Os1, "KILL"),
    ok = ?U:wait_until(fun() -> not lists:member(N, nodes(hidden)) end, 10000),
    %% One workload ends while sandboxd is away.
    ?U:os_kill(GoneRef, "KILL"),
    timer:sleep(1000),
    ?assertEqual([], [Id || {Id, R} <- maps:to_list(Refs), not os_alive(R)]),
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    RestartTs = wall_ms(),
    Listed0 = call(S2, list, []),
    %% The one that ended while sandboxd was away is listed as exited.
    ?assertMatch([#{status := exited}], [Sb || #{id := <<"gone">>} = Sb <- Listed0]),
    ok = call(S2, destroy, [gone]),
    Listed = call(S2, list, []),
    ?assertEqual(Ids, ids(Listed)),
    NotRunning = [{Id, St} || #{id := Id, status := St} <- Listed, St =/= running],
    ?assertEqual([], NotRunning),
    %% Adopted, not restarted: the same OS processes.
    ?assertEqual(Refs, maps:from_list([{Id, R} || #{id := Id, ref := R} <- Listed])),
    %% Every workload's log goes on after the restart, without a gap: wait (with a
    %% deadline) for a line newer than the restart from each, since the ticks and sandboxd's
    %% reading of them take their time on a loaded machine; then check the whole log.
    GapsNow = fun() ->
                      lists:filtermap(
                        fun(Id) ->
                                Recs = log_lines(S2, Id),
                                Before = [R || #{ts := T} = R <- Recs, T < KillTs],
                                After = [R || #{ts := T} = R <- Recs, T > RestartTs],
                                Ticks = [binary_to_integer(Nb) || #{data := <<"tick ", Nb/binary>>} <- Recs],
                                Contiguous = Ticks =:= lists:seq(hd(Ticks), lists:last(Ticks)),
                                case Before =/= [] andalso After =/= [] andalso Contiguous andalso hd(Ticks) =:= 1 of
                                    true -> false;
                                    false -> {true, {Id, length(Before), length(After), Ticks}}
                                end
                        end, Ids)
              end,
    _ = ?U:wait_until(fun() -> GapsNow() =:= [] end, 20000),
    Gaps = GapsNow(),
    ?assertEqual([], Gaps),
    %% The adopted sandboxes still take exec and answer metrics.
    ?assertMatch({ok, #{stdout := <<"hi\n">>}}, call(S2, exec, [<<"t01">>, [<<"echo">>, <<"hi">>]])),
    ?assertMatch({ok, #{pids := P}} when P >= 1, call(S2, metrics, [<<"t01">>])),
    T0 = now_ms(),
    [?assertEqual({Id, ok}, {Id, call(S2, destroy, [Id])}) || Id <- Ids],
    Ms = now_ms() - T0,
    report("destroy of 20 adopted sandboxes: ~b ms total", [Ms]),
    ?assertEqual([], call(S2, list, [])),
    ?assertEqual([], [Id || {Id, R} <- maps:to_list(Refs), os_alive(R)]),
    assert_no_process(Tick, 1000),
    assert_no_zombies(S2),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 8. Malformed calls

malformed() ->
    S = #{node := N} = start(),
    Cases = malformed_cases(),
    report("~b malformed calls without a sandbox", [length(Cases)]),
    ?assert(length(Cases) >= 200),
    Failures = run_cases(S, Cases),
    ?assertEqual(pong, rpc:call(N, sandbox, ping, [])),
    ?assertEqual(0, maps:get(sandboxes, info(S))),
    ?assertEqual([], call(S, list, [])),
    %% Options of functions on a live sandbox.
    create_ok(S, live, #{cmd => [<<"sleep">>, <<"300">>]}),
    Live = live_cases(),
    report("~b malformed calls on a live sandbox", [length(Live)]),
    Failures2 = run_cases(S, Live),
    ?assertEqual(pong, rpc:call(N, sandbox, ping, [])),
    ?assertEqual(1, maps:get(sandboxes, info(S))),
    ?assertMatch({ok, #{status := running}}, call(S, get, [live])),
    ok = call(S, destroy, [live]),
    ?assertEqual(0, maps:get(sandboxes, info(S))),
    %% The same refusals through the gen_server form.
    ?assertEqual({error, {badarg, id, invalid_characters}},
                 gen_server:call({sandboxd, N}, {create, <<"../x">>, process, #{cmd => [<<"true">>]}})),
    ?assertEqual({error, {badarg, cmd, missing}}, gen_server:call({sandboxd, N}, {create, <<"g">>, process, #{}})),
    ?assertEqual({error, {badarg, id, empty}}, gen_server:call({sandboxd, N}, {get, <<>>})),
    %% Another type's keys are checked by its own backend, before anything starts.
    ?assertEqual({error, {badarg, bogus, unknown_key}}, call(S, create, [<<"m">>, vm, #{bogus => x}])),
    ?assertEqual({error, {badarg, accel, unknown_value}}, call(S, create, [<<"m">>, vm, #{accel => 1}])),
    ?assertEqual(0, maps:get(sandboxes, info(S))),
    case Failures ++ Failures2 of
        [] -> ok;
        All ->
            report("~b malformed calls answered wrongly:", [length(All)]),
            [report("  ~P", [F, 30]) || F <- lists:sublist(All, 40)],
            error({malformed_failures, length(All), lists:sublist(All, 10)})
    end.

run_cases(#{node := N}, Cases) ->
    {_, Fails} = lists:foldl(
                   fun({F, Args, Want}, {I, Acc}) ->
                           Got = rpc:call(N, sandbox, F, Args, 60000),
                           Acc1 = case matches(F, Args, Want, Got) of
                                      true -> Acc;
                                      false -> [{F, shorten(Args), {want, Want}, {got, shorten(Got)}} | Acc]
                                  end,
                           %% The node keeps serving throughout.
                           case I rem 25 of
                               0 -> pong = rpc:call(N, sandbox, ping, []);
                               _ -> ok
                           end,
                           {I + 1, Acc1}
                   end, {1, []}, Cases),
    lists:reverse(Fails).

matches(F, Args, undef, Got) ->
    Got =:= {badrpc, {'EXIT', {undef, [{sandbox, F, Args, []}]}}};
matches(_, _, {Field, Why}, {error, {badarg, GotField, GotWhy}}) ->
    field_ok(Field, GotField) andalso (Why =:= '_' orelse Why =:= GotWhy) andalso is_atom(GotWhy);
matches(_, _, _, _) -> false.

field_ok('_', _) -> true;
field_ok({any, L}, F) -> lists:member(F, L);
field_ok(F, F) -> true;
field_ok(_, _) -> false.

%% Big binaries are shown by size.
shorten(B) when is_binary(B), byte_size(B) > 100 -> {binary, byte_size(B)};
shorten(L) when is_list(L) -> [shorten(X) || X <- L];
shorten(T) when is_tuple(T) -> list_to_tuple(shorten(tuple_to_list(T)));
shorten(M) when is_map(M) -> maps:from_list([{shorten(K), shorten(V)} || {K, V} <- maps:to_list(M)]);
shorten(X) -> X.

bad_ids() ->
    Big = binary:copy(<<"a">>, 10 * ?MB),
    [{"../x", invalid_characters}, {<<"../x">>, invalid_characters}, {'../x', invalid_characters},
     {"", empty}, {<<>>, empty}, {'', empty},
     {<<0>>, invalid_characters}, {<<"a", 0, "b">>, invalid_characters},
     {binary:copy(<<"a">>, 64), too_long}, {lists:duplicate(64, $a), too_long},
     {list_to_atom(lists:duplicate(64, $a)), too_long}, {Big, too_long},
     {<<"-x">>, invalid_characters}, {<<".x">>, invalid_characters}, {<<"a b">>, invalid_characters},
     {<<"a/b">>, invalid_characters}, {<<"é"/utf8>>, invalid_characters},
     {42, not_a_string}, {3.5, not_a_string}, {{x}, not_a_string}, {[a], not_a_string},
     {#{}, not_a_string}, {self(), not_a_string}, {make_ref(), not_a_string},
     {<<1:7>>, not_a_string}, {[$a, $b | c], not_a_string}].

malformed_cases() ->
    C = [<<"true">>],
    Big = binary:copy(<<"b">>, 10 * ?MB),
    IdFuns = [{get, fun(Id) -> [Id] end}, {destroy, fun(Id) -> [Id] end},
              {stop, fun(Id) -> [Id] end}, {start, fun(Id) -> [Id] end},
              {restart, fun(Id) -> [Id] end}, {metrics, fun(Id) -> [Id] end},
              {processes, fun(Id) -> [Id] end}, {shell, fun(Id) -> [Id] end},
              {logs, fun(Id) -> [Id, #{}] end},
              {exec, fun(Id) -> [Id, C] end}, {exec, fun(Id) -> [Id, C, #{}] end},
              {copy_from, fun(Id) -> [Id, <<"f">>] end},
              {copy_to, fun(Id) -> [Id, <<"f">>, <<"x">>] end},
              {subscribe, fun(Id) -> [Id, self(), [status]] end},
              {create, fun(Id) -> [Id, process, #{cmd => C}] end}],
    IdCases = [{F, Mk(Id), {id, Why}} || {F, Mk} <- IdFuns, {Id, Why} <- bad_ids()],
    Cfg = fun(Extra) -> maps:merge(#{cmd => C}, Extra) end,
    HC = fun(H) -> Cfg(#{health_check => H}) end,
    %% Nested health_check errors may name the inner key or health_check itself.
    HF = fun(K) -> {any, [K, health_check]} end,
    Configs =
        [{#{}, {cmd, missing}},
         {[], {config, not_a_map}}, {[{cmd, C}], {config, not_a_map}}, {<<"cmd">>, {config, not_a_map}},
         {42, {config, not_a_map}},
         {#{cmd => []}, {cmd, empty}}, {#{cmd => <<>>}, {cmd, empty}}, {#{cmd => 42}, {cmd, not_a_list}},
         {#{cmd => [a]}, {cmd, not_a_string}}, {#{cmd => [<<>>]}, {cmd, empty}},
         {#{cmd => [<<"ls">>, 1]}, {cmd, not_a_string}}, {#{cmd => [<<"ls">> | <<"x">>]}, {cmd, not_a_list}},
         {#{cmd => [<<"a", 0>>]}, {cmd, contains_nul}}, {#{cmd => <<"echo", 0>>}, {cmd, contains_nul}},
         {#{cmd => [Big]}, {cmd, too_long}}, {#{cmd => [<<"echo">>, Big]}, {cmd, too_long}},
         {#{cmd => Big}, {cmd, too_long}}, {#{cmd => lists:duplicate(5000, <<"a">>)}, {cmd, too_many}},
         {#{cmd => {<<"ls">>}}, {cmd, not_a_list}}, {#{cmd => #{}}, {cmd, not_a_list}},
         {Cfg(#{foo => 1}), {foo, unknown_key}}, {Cfg(#{<<"foo">> => 1}), {<<"foo">>, unknown_key}},
         {Cfg(#{image => <<"x">>}), {image, unknown_key}}, {Cfg(#{name => <<"x">>}), {name, unknown_key}},
         {Cfg(#{kernel => <<"x">>}), {kernel, unknown_key}}, {Cfg(#{<<"ports">> => []}), {<<"ports">>, unknown_key}},
         {Cfg(#{1 => 2}), {config, bad_key}}, {Cfg(#{{a} => 2}), {config, bad_key}},
         {Cfg(#{<<"cmd">> => C}), {{any, [cmd, <<"cmd">>]}, duplicate_key}},
         {Cfg(#{env => [a]}), {env, not_a_map}}, {Cfg(#{env => #{<<"A">> => 1}}), {env, not_a_string}},
         {Cfg(#{env => #{1 => <<"x">>}}), {env, not_a_string}},
         {Cfg(#{env => #{<<"A=B">> => <<"x">>}}), {env, invalid_characters}},
         {Cfg(#{env => #{<<>> => <<"x">>}}), {env, empty}},
         {Cfg(#{env => #{<<"A">> => <<"x", 0>>}}), {env, contains_nul}},
         {Cfg(#{env => #{<<"A">> => Big}}), {env, too_long}},
         {Cfg(#{labels => 1}), {labels, not_a_map}}, {Cfg(#{labels => [{k, <<"v">>}]}), {labels, not_a_map}},
         {Cfg(#{labels => #{k => 1}}), {labels, not_a_string}},
         {Cfg(#{labels => #{<<>> => <<"v">>}}), {labels, empty}},
         {Cfg(#{labels => maps:from_list([{integer_to_binary(I), <<"v">>} || I <- lists:seq(1, 65)])}),
          {labels, too_many}},
         {Cfg(#{labels => #{k => Big}}), {labels, too_long}},
         {Cfg(#{cwd => 1}), {cwd, not_a_string}}, {Cfg(#{cwd => <<>>}), {cwd, empty}},
         {Cfg(#{memory_mb => -1}), {memory_mb, out_of_range}}, {Cfg(#{memory_mb => 0}), {memory_mb, out_of_range}},
         {Cfg(#{memory_mb => <<"64">>}), {memory_mb, not_an_integer}},
         {Cfg(#{memory_mb => 64.0}), {memory_mb, not_an_integer}},
         {Cfg(#{memory_mb => 1 bsl 70}), {memory_mb, out_of_range}},
         {Cfg(#{cpus => 0}), {cpus, out_of_range}}, {Cfg(#{cpus => -1.5}), {cpus, out_of_range}},
         {Cfg(#{cpus => a}), {cpus, not_a_number}},
         {Cfg(#{pids_limit => 0}), {pids_limit, out_of_range}}, {Cfg(#{pids_limit => x}), {pids_limit, not_an_integer}},
         {Cfg(#{ttl_ms => 0}), {ttl_ms, out_of_range}}, {Cfg(#{ttl_ms => -5}), {ttl_ms, out_of_range}},
         {Cfg(#{ttl_ms => infinity}), {ttl_ms, not_an_integer}},
         {Cfg(#{owner => <<"pid">>}), {owner, not_a_pid}}, {Cfg(#{owner => make_ref()}), {owner, not_a_pid}},
         {Cfg(#{owner => {sandboxd, node()}}), {owner, not_a_pid}},
         {Cfg(#{restart => sometimes}), {restart, unknown_value}}, {Cfg(#{restart => 1}), {restart, unknown_value}},
         {Cfg(#{max_restarts => -1}), {max_restarts, out_of_range}},
         {Cfg(#{max_restarts => a}), {max_restarts, not_an_integer}},
         {Cfg(#{workspace => <<"rel/dir">>}), {workspace, not_absolute}},
         {Cfg(#{workspace => 1}), {workspace, not_a_string}},
         {Cfg(#{isolation => full}), {isolation, unknown_value}}, {Cfg(#{isolation => <<"vm">>}), {isolation, unknown_value}},
         {Cfg(#{user => <<>>}), {user, empty}}, {Cfg(#{user => -1}), {user, out_of_range}},
         {Cfg(#{user => 1.0}), {user, not_a_string}},
         {Cfg(#{metrics_interval_ms => 0}), {metrics_interval_ms, out_of_range}},
         {HC(5), {health_check, not_a_map}}, {HC([type, tcp]), {health_check, not_a_map}},
         {HC(#{}), {HF(type), missing}}, {HC(#{type => foo}), {HF(type), unknown_value}},
         {HC(#{type => tcp}), {HF(port), missing}}, {HC(#{type => tcp, port => 0}), {HF(port), out_of_range}},
         {HC(#{type => tcp, port => 70000}), {HF(port), out_of_range}},
         {HC(#{type => tcp, port => <<"80">>}), {HF(port), not_an_integer}},
         {HC(#{type => tcp, port => 80, cmd => C}), {HF(cmd), unknown_key}},
         {HC(#{type => tcp, port => 80, bogus => 1}), {HF(bogus), unknown_key}},
         {HC(#{type => exec}), {HF(cmd), missing}}, {HC(#{type => exec, cmd => 1}), {HF(cmd), not_a_list}},
         {HC(#{type => exec, cmd => C, timeout_ms => 0}), {HF(timeout_ms), out_of_range}},
         {HC(#{type => exec, cmd => C, interval_ms => 1}), {HF(interval_ms), out_of_range}},
         {HC(#{type => http, port => 80, path => <<"x">>}), {HF(path), not_absolute}},
         {HC(#{type => http, port => 80, status => 99}), {HF(status), out_of_range}}],
    ConfigCases = [{create, [<<"m">>, process, Cf], Want} || {Cf, Want} <- Configs],
    TypeCases = [{create, [<<"m">>, foo, #{cmd => C}], {type, unknown_value}},
                 {create, [<<"m">>, "process", #{cmd => C}], {type, unknown_value}},
                 {create, [<<"m">>, 42, #{cmd => C}], {type, unknown_value}},
                 {create, [<<"m">>, docker, #{cmd => C}], {image, missing}}],
    Filters = [{x, {filter, not_a_map}}, {[], {filter, not_a_map}}, {#{type => foo}, {type, unknown_value}},
               {#{status => foo}, {status, unknown_value}}, {#{status => <<"bogus">>}, {status, unknown_value}},
               {#{labels => 1}, {labels, not_a_map}}, {#{labels => #{k => 1}}, {labels, not_a_string}},
               {#{foo => 1}, {foo, unknown_key}}, {#{<<"foo">> => 1}, {<<"foo">>, unknown_key}},
               {#{1 => 1}, {filter, bad_key}}],
    FilterCases = [{list, [F], Want} || {F, Want} <- Filters],
    SubCases = [{subscribe, [all, notapid, [status]], {pid, not_a_pid}},
                {subscribe, [all, <<"pid">>, [status]], {pid, not_a_pid}},
                {subscribe, [all, {sandboxd, node()}, [status]], {pid, not_a_pid}},
                {subscribe, [all, make_ref(), [status]], {pid, not_a_pid}},
                {subscribe, [all, self(), status], {topics, not_a_list}},
                {subscribe, [all, self(), []], {topics, empty}},
                {subscribe, [all, self(), [bogus]], {topics, unknown_value}},
                {subscribe, [all, self(), [status | log]], {topics, '_'}},
                {subscribe, [all, self(), "ab"], {topics, '_'}},
                {subscribe, [all, self(), #{}], {topics, not_a_list}},
                {subscribe, [all, self(), [status, 1]], {topics, unknown_value}},
                {unsubscribe, [x], {ref, not_a_reference}},
                {unsubscribe, [self()], {ref, not_a_reference}},
                {unsubscribe, [<<"ref">>], {ref, not_a_reference}}],
    Arity = [{create, []}, {create, [a]}, {create, [a, process]}, {create, [a, process, #{}, x]},
             {get, []}, {get, [a, b]}, {list, [a, b]}, {destroy, []}, {destroy, [a, b]},
             {stop, [a, b]}, {start, []}, {restart, [a, b]}, {exec, [a]}, {exec, [a, b, c, d]},
             {logs, []}, {logs, [a, b, c]}, {metrics, []}, {metrics, [a, b]}, {processes, [a, b]},
             {subscribe, [a, b]}, {subscribe, [a, b, c, d]}, {unsubscribe, []}, {unsubscribe, [a, b]},
             {copy_to, [a, b]}, {copy_from, [a, b, c]}, {shell, []}, {shell, [a, b]}, {ping, [x]},
             {info, [x]}, {bogus, []}, {create_sandbox, [a, process, #{}]}, {'', []}],
    ArityCases = [{F, A, undef} || {F, A} <- Arity],
    IdCases ++ ConfigCases ++ TypeCases ++ FilterCases ++ SubCases ++ ArityCases.

live_cases() ->
    C = [<<"true">>],
    [{exec, [live, []], {cmd, empty}}, {exec, [live, 42], {cmd, not_a_list}},
     {exec, [live, [a]], {cmd, not_a_string}}, {exec, [live, [<<"echo">> | x]], {cmd, not_a_list}},
     {exec, [live, [binary:copy(<<"e">>, 10 * ?MB)]], {cmd, too_long}},
     {exec, [live, C, x], {opts, not_a_map}}, {exec, [live, C, [{timeout_ms, 5}]], {opts, not_a_map}},
     {exec, [live, C, #{timeout_ms => 0}], {timeout_ms, out_of_range}},
     {exec, [live, C, #{timeout_ms => a}], {timeout_ms, not_an_integer}},
     {exec, [live, C, #{env => 1}], {env, not_a_map}},
     {exec, [live, C, #{env => #{<<"A">> => 1}}], {env, not_a_string}},
     {exec, [live, C, #{cwd => 1}], {cwd, not_a_string}},
     {exec, [live, C, #{stdin => 1}], {stdin, not_a_string}},
     {exec, [live, C, #{max_output_bytes => -1}], {max_output_bytes, out_of_range}},
     {exec, [live, C, #{foo => 1}], {foo, unknown_key}},
     {exec, [live, C, #{<<"foo">> => 1}], {<<"foo">>, unknown_key}},
     {logs, [live, x], {opts, not_a_map}}, {logs, [live, #{tail => -1}], {tail, out_of_range}},
     {logs, [live, #{tail => a}], {tail, not_an_integer}},
     {logs, [live, #{since => a}], {since, not_an_integer}}, {logs, [live, #{foo => 1}], {foo, unknown_key}},
     {copy_to, [live, "../x", <<>>], {path, dot_dot}}, {copy_to, [live, <<"a/../../x">>, <<>>], {path, dot_dot}},
     {copy_to, [live, "/etc/x", <<>>], {path, absolute}}, {copy_to, [live, "", <<>>], {path, empty}},
     {copy_to, [live, <<"f">>, notbinary], {data, not_a_binary}}, {copy_to, [live, 1, <<>>], {path, not_a_string}},
     {copy_from, [live, "../x"], {path, dot_dot}}, {copy_from, [live, <<"a/../../x">>], {path, dot_dot}},
     {copy_from, [live, "/etc/passwd"], {path, absolute}}, {copy_from, [live, <<"a", 0>>], {path, contains_nul}},
     {copy_from, [live, <<".">>], {path, '_'}},
     {subscribe, [live, self(), [bogus]], {topics, unknown_value}},
     {subscribe, [live, notapid, [log]], {pid, not_a_pid}}].

%%% ---------------------------------------------------------------------------------
%%% ttl, owner, restart policy

ttl() ->
    S = start(),
    M = marker(302),
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    T0 = now_ms(),
    create_ok(S, ttl1, #{cmd => [<<"sleep">>, list_to_binary(M)], ttl_ms => 700}),
    Ev = wait_event(<<"ttl1">>, status, fun(#{reason := R}) -> R =:= ttl end, 10000),
    Ms = now_ms() - T0,
    report("ttl_ms => 700: status event ~p after ~b ms", [Ev, Ms]),
    ?assert(Ms >= 600),
    ok = ?U:wait_until(fun() -> call(S, get, [ttl1]) =:= {error, not_found} end, 10000),
    ?assertEqual([], call(S, list, [])),
    assert_no_process(M, 1000),
    ok.

owner_down() ->
    S = #{node := N} = start(),
    M = marker(303),
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    Owner = spawn(fun() -> receive stop -> ok end end),
    create_ok(S, own1, #{cmd => [<<"sleep">>, list_to_binary(M)], owner => Owner}),
    timer:sleep(200),
    ?assertMatch({ok, #{status := running}}, call(S, get, [own1])),
    exit(Owner, kill),
    Ev = wait_event(<<"own1">>, status, fun(#{reason := R}) -> R =:= owner_down end, 10000),
    report("owner killed: ~p", [Ev]),
    ok = ?U:wait_until(fun() -> call(S, get, [own1]) =:= {error, not_found} end, 10000),
    assert_no_process(M, 1000),
    %% An owner on a node that goes away altogether.
    {Peer, _} = ?U:start_peer("owner", ["-pa", test_ebin()]),
    pong = peer:call(Peer, net_adm, ping, [N]),
    {ok, #{id := <<"own2">>}} = peer:call(Peer, ?MODULE, peer_own_sandbox, [N, M]),
    ?assertMatch({ok, #{status := running}}, call(S, get, [own2])),
    ?U:stop_peer(Peer),
    Ev2 = wait_event(<<"own2">>, status, fun(#{reason := R}) -> R =:= owner_down end, 15000),
    report("owner's node stopped: ~p", [Ev2]),
    ok = ?U:wait_until(fun() -> call(S, get, [own2]) =:= {error, not_found} end, 10000),
    assert_no_process(M, 1000),
    ok.

%% On a peer: a long-lived process there owns a new sandbox.
peer_own_sandbox(N, M) ->
    Owner = spawn(fun() -> receive stop -> ok end end),
    rpc:call(N, sandbox, create, [own2, process, #{cmd => [<<"sleep">>, list_to_binary(M)], owner => Owner}]).

restart_policy() ->
    S = start(),
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    %% on_failure, max_restarts 2: three runs, then it stays exited.
    create_ok(S, rp, #{cmd => <<"echo run; exit 1">>, restart => on_failure, max_restarts => 2}),
    ok = ?U:wait_until(fun() ->
                               {ok, #{status := St, restart_count := RC}} = call(S, get, [rp]),
                               St =:= exited andalso RC =:= 2
                       end, 15000),
    timer:sleep(2500),
    {ok, Final} = call(S, get, [rp]),
    ?assertMatch(#{status := exited, restart_count := 2, exit_status := 1}, Final),
    Runs = length(binary:matches(log_text(S, <<"rp">>), <<"run">>)),
    Exits = collect_status(<<"rp">>, exited),
    report("on_failure/max_restarts 2 of `exit 1`: ~b runs, exited events ~p", [Runs, Exits]),
    ?assertEqual(3, Runs),
    ?assertEqual([{exit, 1}, {exit, 1}, {exit, 1}], Exits),
    ok = call(S, destroy, [rp]),
    %% on_failure does not restart a success.
    %% (Each run is awaited with a deadline; the fixed pauses after that only give a wrong
    %% restart the time to show.)
    create_ok(S, rp0, #{cmd => <<"exit 0">>, restart => on_failure, max_restarts => 2}),
    ok = wait_exited(S, rp0),
    timer:sleep(1500),
    ?assertMatch({ok, #{status := exited, restart_count := 0, exit_status := 0}}, call(S, get, [rp0])),
    ok = call(S, destroy, [rp0]),
    %% always restarts a success too, up to max_restarts.
    create_ok(S, rpa, #{cmd => <<"echo a; exit 0">>, restart => always, max_restarts => 1}),
    ok = ?U:wait_until(fun() -> {ok, #{restart_count := RC}} = call(S, get, [rpa]), RC =:= 1 end, 10000),
    ok = wait_exited(S, rpa),
    timer:sleep(1500),
    ?assertMatch({ok, #{status := exited, restart_count := 1}}, call(S, get, [rpa])),
    ok = call(S, destroy, [rpa]),
    %% never (the default): no restart.
    create_ok(S, rpn, #{cmd => <<"exit 3">>}),
    ok = wait_exited(S, rpn),
    timer:sleep(1000),
    ?assertMatch({ok, #{status := exited, restart_count := 0, exit_status := 3}}, call(S, get, [rpn])),
    ok = call(S, destroy, [rpn]),
    ok.

%% Waits (15 s at most) until sandbox Id's status is exited.
wait_exited(S, Id) ->
    ?U:wait_until(fun() -> {ok, #{status := St}} = call(S, get, [Id]), St =:= exited end, 15000).

collect_status(Id, To) ->
    receive
        {sandbox_event, Id, status, #{to := To, reason := R}} -> [R | collect_status(Id, To)];
        {sandbox_event, Id, status, _} -> collect_status(Id, To)
    after 0 -> []
    end.

%%% ---------------------------------------------------------------------------------
%%% Health checks

health_exec() ->
    S = start(),
    M = marker(304),
    T0 = now_ms(),
    R = call(S, create, [he, process,
                         #{cmd => iolist_to_binary(["sleep 0.5; touch ready; sleep ", M]),
                           health_check => #{type => exec, cmd => [<<"test">>, <<"-f">>, <<"ready">>],
                                             interval_ms => 50, timeout_ms => 20000}}]),
    Ms = now_ms() - T0,
    report("create with an exec health check (ready after 500 ms): ~b ms", [Ms]),
    ?assertMatch({ok, #{status := running}}, R),
    ?assert(Ms >= 450),
    ?assertMatch({ok, <<>>}, call(S, copy_from, [he, <<"ready">>])),
    ok = call(S, destroy, [he]),
    assert_no_process(M, 0),
    ok.

health_tcp() ->
    case os:find_executable("perl") of
        false -> {skip, no_perl_for_a_listener};
        _ -> health_tcp_perl()
    end.

health_tcp_perl() ->
    S = start(),
    M = marker(305),
    Port = free_port(),
    %% Listens after 700 ms; answers HTTP 200 to anything.
    Server = iolist_to_binary(
               ["sleep 0.7; exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "
                "\"127.0.0.1\", LocalPort => ", integer_to_list(Port), ", Listen => 5, ReuseAddr => 1) "
                "or die \"listen: $!\"; while ($c = $s->accept) { sysread($c, $b, 4096); "
                "print $c \"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok\"; close $c }' ", M]),
    T0 = now_ms(),
    R = call(S, create, [ht, process, #{cmd => Server,
                                        health_check => #{type => tcp, port => Port, interval_ms => 50,
                                                          timeout_ms => 20000}}]),
    Ms = now_ms() - T0,
    report("create with a tcp health check (listening after 700 ms): ~p in ~b ms",
           [element(1, R), Ms]),
    ?assertMatch({ok, #{status := running}}, R),
    ?assert(Ms >= 650),
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 2000),
    gen_tcp:close(Sock),
    ok = call(S, destroy, [ht]),
    assert_no_process(M, 0),
    %% http: the expected status.
    Port2 = free_port(),
    Server2 = binary:replace(Server, integer_to_binary(Port), integer_to_binary(Port2)),
    T1 = now_ms(),
    R2 = call(S, create, [hh, process, #{cmd => Server2,
                                         health_check => #{type => http, port => Port2, path => <<"/">>,
                                                           status => 200, interval_ms => 50,
                                                           timeout_ms => 20000}}]),
    Ms2 = now_ms() - T1,
    report("create with an http health check: ~p in ~b ms", [element(1, R2), Ms2]),
    ?assertMatch({ok, #{status := running}}, R2),
    ?assert(Ms2 >= 650),
    ok = call(S, destroy, [hh]),
    %% http expecting another status never becomes healthy.
    Port3 = free_port(),
    Server3 = binary:replace(Server, integer_to_binary(Port), integer_to_binary(Port3)),
    ?assertEqual({error, timeout},
                 call(S, create, [hx, process, #{cmd => Server3,
                                                 health_check => #{type => http, port => Port3,
                                                                   status => 204, interval_ms => 50,
                                                                   timeout_ms => 2000}}])),
    ?assertEqual([], call(S, list, [])),
    assert_no_process(M, 2000),
    ok.

health_never() ->
    S = start(),
    M = marker(306),
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    T0 = now_ms(),
    R = call(S, create, [hn, process, #{cmd => [<<"sleep">>, list_to_binary(M)],
                                        health_check => #{type => exec, cmd => [<<"false">>],
                                                          interval_ms => 50, timeout_ms => 1000}}]),
    Ms = now_ms() - T0,
    %% What is left the moment {error, timeout} arrives: the id is free again at once,
    %% nothing runs, nothing is counted.
    Left = [{P, cmdline(P)} || P <- ?U:os_pids_matching(M)],
    Again = call(S, create, [hn, process, #{cmd => [<<"true">>]}]),
    Count = maps:get(sandboxes, info(S)),
    report("never healthy (exec, timeout 1000 ms): ~p after ~b ms; at that moment: "
           "processes ~p, create of the same id ~P, then info() sandboxes ~b",
           [R, Ms, Left, Again, 4, Count]),
    ?assertEqual({error, timeout}, R),
    ?assert(Ms >= 900 andalso Ms < 15000),
    ?assertEqual([], Left),
    ?assertMatch({ok, _}, Again),
    ok = call(S, destroy, [hn]),
    ?assertEqual(1, Count),
    ?assertEqual([], call(S, list, [])),
    ?assertEqual({error, not_found}, call(S, get, [hn])),
    ?assertNot(filelib:is_dir(sandbox_dir(S, "hn"))),
    %% Subscribers learn why it went.
    Gone = wait_event(<<"hn">>, status, fun(#{to := T}) -> T =:= stopped end, 5000),
    ?assertMatch(#{reason := unhealthy}, Gone),
    %% tcp on a port nobody opens.
    Port = free_port(),
    R2 = call(S, create, [hn, process, #{cmd => [<<"sleep">>, list_to_binary(M)],
                                         health_check => #{type => tcp, port => Port,
                                                           interval_ms => 50, timeout_ms => 1000}}]),
    Left2 = [{P, cmdline(P)} || P <- ?U:os_pids_matching(M)],
    Count2 = maps:get(sandboxes, info(S)),
    report("never healthy (tcp): ~p; at that moment: processes ~p, info() sandboxes ~b",
           [R2, Left2, Count2]),
    ?assertEqual({error, timeout}, R2),
    ?assertEqual([], Left2),
    ?assertEqual(0, Count2),
    ?assertEqual([], call(S, list, [])),
    %% A workload that ignores SIGTERM: the answer waits until it is gone (SIGKILL after
    %% the grace period).
    T3 = now_ms(),
    R3 = call(S, create, [hn, process, #{cmd => iolist_to_binary(["trap '' TERM; sleep ", M]),
                                         health_check => #{type => exec, cmd => [<<"false">>],
                                                           interval_ms => 50, timeout_ms => 500}}]),
    Ms3 = now_ms() - T3,
    Left3 = [{P, cmdline(P)} || P <- ?U:os_pids_matching(M)],
    Again3 = call(S, create, [hn, process, #{cmd => [<<"true">>]}]),
    report("never healthy, SIGTERM ignored: ~p after ~b ms; at that moment: processes ~p, "
           "create of the same id ~P", [R3, Ms3, Left3, Again3, 4]),
    ?assertEqual({error, timeout}, R3),
    ?assertEqual([], Left3),
    ?assertMatch({ok, _}, Again3),
    ok = call(S, destroy, [hn]),
    assert_no_zombies(S),
    ok.

%%% ---------------------------------------------------------------------------------
%%% Files and shell

%% A FIFO the workload plants in its workspace: copy_from/copy_to answer at once with an
%% error instead of stalling the node (which keeps answering meanwhile).
copy_fifo() ->
    S = start(),
    create_ok(S, ff, #{cmd => [<<"sleep">>, <<"300">>]}),
    {ok, #{exit_code := 0}} = call(S, exec, [ff, <<"mkfifo pipe">>]),
    T0 = now_ms(),
    ?assertEqual({error, {badarg, path, eisdir}}, call(S, copy_from, [ff, <<"pipe">>])),
    ?assertMatch({error, {badarg, path, _}}, call(S, copy_to, [ff, <<"pipe">>, <<"x">>])),
    ?assert(now_ms() - T0 < 2000),
    ?assertEqual(pong, call(S, ping, [])),
    ok = call(S, destroy, [ff]).

%% exec in a sandbox whose user is gone (deleted after create): exec looks the user up again
%% and is refused with the documented {error, {backend, process, <<"no such user: ...">>}};
%% nothing runs as sandboxd's own user, and the sandbox keeps running. (create with an unknown
%% user is refused too.)
exec_unknown_user() ->
    S = start(),
    ?assertMatch({error, {backend, process, <<"no such user", _/binary>>}},
                 call(S, create, [uu, process, #{cmd => [<<"sleep">>, <<"300">>],
                                                 user => <<"no_such_user_xyz">>}])),
    ?assertEqual([], call(S, list, [])),
    %% A name no earlier run used (this VM's os pid and a counter).
    User = "sbxu" ++ os:getpid() ++ "x" ++ integer_to_list(erlang:unique_integer([positive])),
    Ran = "/tmp/sbx_ran_as_*_" ++ User,
    "" = os:cmd("useradd --no-create-home --shell /bin/sh " ++ User ++ " 2>&1"),
    try
        create_ok(S, ue, #{cmd => [<<"sleep">>, <<"300">>], user => list_to_binary(User)}),
        Uid = string:trim(os:cmd("id -u " ++ User)),
        ?assertMatch({ok, #{exit_code := 0, stdout := <<"sbxu", _/binary>>}},
                     call(S, exec, [ue, [<<"id">>, <<"-un">>]])),
        ?assertEqual({ok, list_to_binary(Uid ++ "\n")},
                     maps:find(stdout, element(2, call(S, exec, [ue, [<<"id">>, <<"-u">>]])))),
        %% -f: the sandbox's sleep still runs as the user.
        "gone\n" = os:cmd("userdel -f " ++ User ++ " >/dev/null 2>&1; id -u " ++ User ++
                              " >/dev/null 2>&1 || echo gone"),
        %% The sandbox keeps the uid it was created with (its journal has it): exec still
        %% runs as that uid, never as sandboxd's root.
        R = call(S, exec, [ue, [<<"sh">>, <<"-c">>, <<"id -u; touch /tmp/sbx_ran_as_$(id -u)_", (list_to_binary(User))/binary>>]]),
        report("exec after the sandbox's user was deleted: ~p", [R]),
        ?assertMatch({ok, #{exit_code := 0}}, R),
        ?assertEqual({ok, list_to_binary(Uid ++ "\n")}, maps:find(stdout, element(2, R))),
        ?assertEqual(["/tmp/sbx_ran_as_" ++ Uid ++ "_" ++ User], filelib:wildcard(Ran)),
        ?assertMatch({ok, #{status := running}}, call(S, get, [ue])),
        ok = call(S, destroy, [ue])
    after
        os:cmd("userdel -f " ++ User ++ " 2>/dev/null"),
        [file:delete(F) || F <- filelib:wildcard(Ran)]
    end.

copy_files() ->
    S = start(),
    create_ok(S, cp, #{cmd => [<<"sleep">>, <<"300">>]}),
    Data = binary:copy(list_to_binary(lists:seq(0, 255)), 1000),
    ?assertEqual(ok, call(S, copy_to, [cp, <<"a/b/c.bin">>, Data])),
    ?assertEqual({ok, Data}, call(S, copy_from, [cp, <<"a/b/c.bin">>])),
    ?assertEqual({ok, Data}, call(S, copy_from, [cp, "a/b/c.bin"])),
    %% The workload sees the file in its workspace (its working directory).
    ?assertMatch({ok, #{stdout := <<"256000\n">>}}, call(S, exec, [cp, <<"wc -c < a/b/c.bin">>])),
    {ok, _} = call(S, exec, [cp, <<"echo made > made.txt">>]),
    ?assertEqual({ok, <<"made\n">>}, call(S, copy_from, [cp, <<"made.txt">>])),
    ?assertEqual(ok, call(S, copy_to, [cp, <<"empty">>, <<>>])),
    ?assertEqual({ok, <<>>}, call(S, copy_from, [cp, <<"empty">>])),
    %% Paths outside the workspace are refused.
    [?assertMatch({error, {badarg, path, _}}, call(S, copy_from, [cp, P]))
     || P <- [<<"../x">>, <<"a/../../x">>, <<"/etc/passwd">>, <<"">>]],
    [?assertMatch({error, {badarg, path, _}}, call(S, copy_to, [cp, P, <<"x">>]))
     || P <- [<<"../x">>, <<"a/../../x">>, <<"/tmp/sbx_abs">>, <<"">>]],
    %% Symlinks the sandbox plants do not lead out of it.
    Outside = filename:absname(filename:join([?U:log_dir(), "state", ?U:unique("outside")])),
    ok = filelib:ensure_dir(filename:join(Outside, "x")),
    Secret = filename:join(Outside, "secret"),
    ok = file:write_file(Secret, <<"secret">>),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, [<<"ln">>, <<"-s">>, <<"/etc">>, <<"etc_link">>]]),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, [<<"ln">>, <<"-s">>, <<"/etc/passwd">>, <<"pw_link">>]]),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, [<<"ln">>, <<"-s">>, list_to_binary(Outside), <<"out_dir">>]]),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, [<<"ln">>, <<"-s">>, list_to_binary(Secret), <<"out_file">>]]),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, [<<"ln">>, <<"-s">>, <<"../../../../../../../..">>, <<"up">>]]),
    Reads = [{P, call(S, copy_from, [cp, P])}
             || P <- [<<"etc_link/passwd">>, <<"pw_link">>, <<"out_dir/secret">>, <<"out_file">>,
                      <<"up/etc/passwd">>]],
    report("copy_from through planted symlinks: ~p", [[{P, shorten(R)} || {P, R} <- Reads]]),
    [?assertMatch({_, {error, _}}, PR) || PR <- Reads],
    Writes = [{P, call(S, copy_to, [cp, P, <<"pwned">>])}
              || P <- [<<"out_dir/new_file">>, <<"out_file">>, <<"out_dir/secret">>]],
    report("copy_to through planted symlinks: ~p", [Writes]),
    [?assertMatch({_, {error, _}}, PW) || PW <- Writes],
    ?assertEqual({ok, <<"secret">>}, file:read_file(Secret)),
    ?assertNot(filelib:is_file(filename:join(Outside, "new_file"))),
    %% Missing files and directories are errors.
    ?assertMatch({error, _}, call(S, copy_from, [cp, <<"no_such_file">>])),
    ?assertMatch({error, _}, call(S, copy_from, [cp, <<"a/b">>])),
    Ws = sandbox_dir(S, "cp"),
    ?assert(filelib:is_dir(Ws)),
    ok = call(S, destroy, [cp]),
    ?assertNot(filelib:is_dir(Ws)),
    %% A host directory as workspace.
    HostWs = filename:join(Outside, "ws"),
    ok = filelib:ensure_dir(filename:join(HostWs, "x")),
    create_ok(S, cpw, #{cmd => [<<"sleep">>, <<"300">>], workspace => list_to_binary(HostWs)}),
    ok = call(S, copy_to, [cpw, <<"in.txt">>, <<"hello">>]),
    ?assertEqual({ok, <<"hello">>}, file:read_file(filename:join(HostWs, "in.txt"))),
    ?assertMatch({ok, #{stdout := <<"hello">>}}, call(S, exec, [cpw, [<<"cat">>, <<"in.txt">>]])),
    ok = call(S, destroy, [cpw]),
    ok.

shell() ->
    S = start(),
    create_ok(S, sh1, #{cmd => [<<"sleep">>, <<"300">>]}),
    {ok, Sh} = call(S, shell, [sh1]),
    report("shell: ~p", [Sh]),
    ?assertMatch(#{kind := exec, argv := [_ | _]}, Sh),
    #{argv := Argv} = Sh,
    ?assert(lists:all(fun(A) -> is_binary(A) end, Argv)),
    %% The argv opens a working shell in the sandbox's workspace: it computes the line (so
    %% the line is the shell's, not an echo of what was typed) and prints the workspace.
    Out = run_shell(Argv, <<"echo SHELL-$((6*7))-OK; pwd; exit\n">>),
    report("shell session output: ~p", [Out]),
    ?assertEqual([<<"SHELL-42-OK">>, list_to_binary(filename:join(sandbox_dir(S, "sh1"), "workspace"))],
                 shell_lines(Out)),
    ok = call(S, destroy, [sh1]),
    ok.

%% With isolation => namespaces, the shell (nsenter) is inside the sandbox's own pid and mount
%% namespaces: the ones its workload has, not the host's.
shell_namespaced() ->
    S = start(),
    M = marker(300),
    create_ok(S, sh2, #{cmd => [<<"sleep">>, list_to_binary(M)], isolation => namespaces}),
    {ok, #{kind := exec, argv := [<<"nsenter">> | _] = Argv}} = call(S, shell, [sh2]),
    [Sleep] = ?U:os_pids_matching("sleep " ++ M),
    Ns = fun(P, K) -> {ok, L} = file:read_link("/proc/" ++ P ++ "/ns/" ++ K), list_to_binary(L) end,
    Want = [<<"SHELL-42-OK">>, Ns(integer_to_list(Sleep), "pid"), Ns(integer_to_list(Sleep), "mnt")],
    ?assertNotEqual(Ns("self", "pid"), lists:nth(2, Want)),
    Out = run_shell(Argv, <<"echo SHELL-$((6*7))-OK; readlink /proc/self/ns/pid; "
                            "readlink /proc/self/ns/mnt; exit\n">>),
    report("namespaced shell output: ~p (workload's namespaces ~p)", [Out, tl(Want)]),
    ?assertEqual(Want, shell_lines(Out)),
    ok = call(S, destroy, [sh2]),
    ok.

%% Runs a shell argv as a user would (no terminal), types Input, returns all it printed.
run_shell([Prog | Args], Input) ->
    Exe = case binary:first(Prog) of
              $/ -> binary_to_list(Prog);
              _ -> os:find_executable(binary_to_list(Prog))
          end,
    Port = open_port({spawn_executable, Exe},
                     [{args, [binary_to_list(A) || A <- Args]}, binary, exit_status, use_stdio,
                      stderr_to_stdout]),
    port_command(Port, Input),
    collect_port(Port, <<>>, now_ms() + 10000).

%% The lines a shell printed from the first SHELL- line on (before it: sh -i's notice that it
%% has no terminal), without prompts ("# ", "$ ") and empty lines.
shell_lines(Out) ->
    Strip = fun Strip(<<"# ", R/binary>>) -> Strip(R);
                Strip(<<"$ ", R/binary>>) -> Strip(R);
                Strip(L) -> L
            end,
    Lines = [L || L0 <- binary:split(Out, <<"\n">>, [global]), (L = Strip(L0)) =/= <<>>],
    lists:dropwhile(fun(L) -> binary:match(L, <<"SHELL-">>) =:= nomatch end, Lines).

collect_port(Port, Acc, Deadline) ->
    receive
        {Port, {data, D}} -> collect_port(Port, <<Acc/binary, D/binary>>, Deadline);
        {Port, {exit_status, _}} -> Acc
    after max(0, Deadline - now_ms()) ->
        catch port_close(Port),
        Acc
    end.
