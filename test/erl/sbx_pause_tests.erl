%% pause(Id) and resume(Id) (issue 9) for process, beam_node and docker sandboxes, as a
%% caller sees them: the status `paused` and its events, {error, paused} from the calls
%% that need the workload, the documented errors, the workload not running while paused
%% (a counter it appends to a file in its workspace stops growing, and grows again after
%% resume; read from the host, so no call into the paused sandbox is needed), destroy and
%% ttl of a paused sandbox leaving nothing, and a paused process sandbox adopted as paused
%% after sandboxd is SIGKILLed and started again. The Erlang client's pause/2 and
%% resume/2 are used for part of the calls. Docker cases need an engine (skipped as the
%% other Docker suites skip without one).
-module(sbx_pause_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).
-define(IMAGE, <<"sandboxd-test/busybox:1">>).
%% How long a paused workload is watched for not running (it appends every 20 ms).
-define(STILL_MS, 600).

tests() ->
    [{process_pause_resume_errors_destroy, 60000, fun process_pause/0},
     {process_ttl_and_adopt_while_paused, 60000, fun process_ttl_adopt/0},
     {beam_node_pause_resume_destroy, 90000, fun beam_pause/0},
     {docker_pause_resume_outside_destroy, 120000,
      sbx_docker_tests:guarded(fun docker_pause/0)}].

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

%% A shell loop appending a line to `count` in Dir every 20 ms; Mark (unique) is in its
%% command line.
counter_cmd(Dir, Mark) ->
    iolist_to_binary(["cd ", Dir, " && : ", Mark, " && while :; do echo x >> count; sleep 0.02; done"]).

mark() -> "pz" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid().

size_of(File) -> filelib:file_size(File).

%% The file grows (the workload runs).
assert_grows(File) ->
    S0 = size_of(File),
    ok = ?U:wait_until(fun() -> size_of(File) > S0 end, 10000).

%% The file does not change while ?STILL_MS pass (the workload is frozen).
assert_still(File) ->
    S0 = size_of(File),
    timer:sleep(?STILL_MS),
    ?assertEqual(S0, size_of(File)).

%% The next status event of Id, within Timeout.
status_event(Id) ->
    receive {sandbox_event, Id, status, Ev} -> Ev
    after 10000 -> error({no_status_event, Id})
    end.

%% The sandbox's workspace on the host (exec's default working directory).
workspace(S, Id) ->
    {ok, #{stdout := Out}} = call(S, exec, [Id, [<<"pwd">>]]),
    string:trim(binary_to_list(Out)).

%% Where the freezer of a process sandbox's cgroup reads its state (v1 freezer.state, v2
%% cgroup.freeze), and what it reads; `none` when the group is gone.
freezer(#{node := N}, Id) ->
    Rel = "sandboxd/" ++ atom_to_list(N) ++ "/" ++ binary_to_list(Id),
    V1 = "/sys/fs/cgroup/freezer/" ++ Rel,
    V2 = "/sys/fs/cgroup/" ++ Rel,
    case {filelib:is_dir(V1), filelib:is_dir(V2)} of
        {true, _} -> read_trim(V1 ++ "/freezer.state");
        {_, true} -> read_trim(V2 ++ "/cgroup.freeze");
        _ -> none
    end.

read_trim(F) ->
    {ok, B} = file:read_file(F),
    string:trim(binary_to_list(B)).

frozen_text("FROZEN") -> true;
frozen_text("1") -> true;
frozen_text(_) -> false.

process_pause() ->
    S = #{node := N} = ?U:start_isolated(),
    Mark = mark(),
    {ok, #{started_at := Started2}} =
        call(S, create, [p2, process, #{cmd => counter_cmd(".", Mark)}]),
    {ok, _} = call(S, subscribe, [p2, self(), [status]]),
    File = filename:join(workspace(S, <<"p2">>), "count"),
    assert_grows(File),
    %% Errors before any pause: resume of a running sandbox, bad ids, unknown ids.
    ?assertEqual({error, not_paused}, call(S, resume, [p2])),
    ?assertMatch({error, {badarg, id, _}}, call(S, pause, [<<"no spaces">>])),
    ?assertMatch({error, {badarg, id, _}}, call(S, pause, [42])),
    ?assertMatch({error, {badarg, id, _}}, call(S, resume, [{p2}])),
    ?assertEqual({error, not_found}, call(S, pause, [nosuch])),
    ?assertEqual({error, not_found}, sandboxd:resume(N, nosuch)),
    %% pause: ok once frozen; the status, its event, the freezer, the workload still.
    T0 = erlang:monotonic_time(microsecond),
    ?assertEqual(ok, sandboxd:pause(N, p2)),
    T1 = erlang:monotonic_time(microsecond),
    ?assertMatch(#{from := running, to := paused, reason := paused}, status_event(<<"p2">>)),
    {ok, #{status := paused, started_at := Started2}} = call(S, get, [p2]),
    ?assertEqual([<<"p2">>], [Id || #{id := Id} <- call(S, list, [#{status => paused}])]),
    ?assert(frozen_text(freezer(S, <<"p2">>))),
    assert_still(File),
    %% What needs the workload answers paused; pause twice too.
    ?assertEqual({error, paused}, call(S, exec, [p2, [<<"true">>]])),
    ?assertEqual({error, paused}, call(S, exec, [p2, <<"true">>, #{timeout_ms => 1000}])),
    ?assertEqual({error, paused}, call(S, copy_to, [p2, <<"f">>, <<"x">>])),
    ?assertEqual({error, paused}, call(S, copy_from, [p2, <<"count">>])),
    ?assertEqual({error, paused}, call(S, processes, [p2])),
    ?assertEqual({error, paused}, call(S, metrics, [p2])),
    ?assertEqual({error, paused}, call(S, start, [p2])),
    ?assertEqual({error, paused}, sandboxd:pause(N, p2)),
    {ok, _} = call(S, logs, [p2]),
    %% resume: running again, the same start time, the counter grows, exec works.
    T2 = erlang:monotonic_time(microsecond),
    ?assertEqual(ok, sandboxd:resume(N, p2)),
    io:format("      process: pause answered in ~b us, resume in ~b us~n",
              [T1 - T0, erlang:monotonic_time(microsecond) - T2]),
    ?assertMatch(#{from := paused, to := running, reason := resumed}, status_event(<<"p2">>)),
    {ok, #{status := running, started_at := Started2}} = call(S, get, [p2]),
    ?assertNot(frozen_text(freezer(S, <<"p2">>))),
    assert_grows(File),
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"hi\n">>}},
                 call(S, exec, [p2, [<<"echo">>, <<"hi">>]])),
    ?assertEqual({error, not_paused}, call(S, resume, [p2])),
    %% destroy while paused: the events, then nothing left (processes, cgroup).
    ?assertEqual(ok, call(S, pause, [p2])),
    ?assertMatch(#{to := paused}, status_event(<<"p2">>)),
    ?assertEqual(ok, call(S, destroy, [p2])),
    ?assertMatch(#{from := paused, to := stopping, reason := destroyed}, status_event(<<"p2">>)),
    ?assertMatch(#{from := stopping, to := stopped}, status_event(<<"p2">>)),
    ?assertEqual(none, freezer(S, <<"p2">>)),
    ?assertEqual([], ?U:os_pids_matching(Mark)),
    ?assertEqual({error, not_found}, call(S, pause, [p2])),
    %% pause of a sandbox that is not running.
    {ok, _} = call(S, create, [p3, process, #{cmd => <<"exit 3">>}]),
    ok = ?U:wait_until(fun() -> {ok, #{status := St}} = call(S, get, [p3]), St =:= exited end,
                       10000),
    ?assertEqual({error, not_running}, call(S, pause, [p3])),
    ?assertEqual({error, not_paused}, call(S, resume, [p3])),
    ok = call(S, destroy, [p3]).

process_ttl_adopt() ->
    S1 = #{sname := SName, state_dir := Dir, os_pid := Os1, port := Port} = ?U:start_isolated(),
    %% ttl counts while paused: the paused sandbox is destroyed, nothing left.
    Marker = "1000." ++ integer_to_list(erlang:unique_integer([positive])),
    {ok, _} = call(S1, create, [t1, process, #{cmd => [<<"sleep">>, list_to_binary(Marker)],
                                               ttl_ms => 3000}]),
    {ok, _} = call(S1, subscribe, [t1, self(), [status]]),
    ?assertEqual(ok, call(S1, pause, [t1])),
    ?assertMatch(#{to := paused}, status_event(<<"t1">>)),
    ?assertMatch(#{from := paused, to := stopping, reason := ttl}, status_event(<<"t1">>)),
    ?assertMatch(#{to := stopped, reason := ttl}, status_event(<<"t1">>)),
    ok = ?U:wait_until(fun() -> call(S1, get, [t1]) =:= {error, not_found} end, 10000),
    ?assertEqual([], ?U:os_pids_matching(Marker)),
    ?assertEqual(none, freezer(S1, <<"t1">>)),
    %% A paused sandbox survives a SIGKILL of sandboxd and is adopted as paused.
    {ok, _} = call(S1, create, [a1, process, #{cmd => counter_cmd(".", mark())}]),
    File = filename:join(workspace(S1, <<"a1">>), "count"),
    assert_grows(File),
    ?assertEqual(ok, call(S1, pause, [a1])),
    ?U:os_kill(Os1, "KILL"),
    receive {Port, {exit_status, _}} -> ok after 10000 -> error(sandboxd_not_killed) end,
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    ?assertMatch({ok, #{status := paused}}, call(S2, get, [a1])),
    ?assertEqual({error, paused}, call(S2, exec, [a1, [<<"true">>]])),
    assert_still(File),
    ?assertEqual(ok, call(S2, resume, [a1])),
    assert_grows(File),
    ?assertMatch({ok, #{exit_code := 0}}, call(S2, exec, [a1, [<<"true">>]])),
    ok = call(S2, destroy, [a1]),
    ?assertEqual(none, freezer(S2, <<"a1">>)).

beam_pause() ->
    S = ?U:start_isolated(),
    Name = "pz_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid(),
    %% The counter runs in the BEAM itself: a process appending to a file in the node's
    %% working directory (the workspace) every 20 ms.
    Loop = <<"spawn(fun() -> L = fun G() -> file:write_file(\"count\", <<\"x\">>, [append]), "
             "timer:sleep(20), G() end, L() end)">>,
    {ok, #{status := running}} =
        call(S, create, [b1, beam_node, #{name => list_to_binary(Name),
                                          erl_args => [<<"-eval">>, Loop]}]),
    File = filename:join(workspace(S, <<"b1">>), "count"),
    assert_grows(File),
    ?assertEqual(ok, call(S, pause, [b1])),
    {ok, #{status := paused}} = call(S, get, [b1]),
    assert_still(File),
    ?assertEqual({error, paused}, call(S, exec, [b1, [<<"true">>]])),
    ?assertEqual({error, paused}, call(S, remote_call, [b1, erlang, node, []])),
    ?assertEqual({error, paused}, call(S, processes, [b1])),
    ?assertEqual({error, paused}, call(S, pause, [b1])),
    ?assertEqual(ok, call(S, resume, [b1])),
    assert_grows(File),
    ?assertEqual(list_to_atom(Name ++ "@" ++ ?U:host()),
                 call(S, remote_call, [b1, erlang, node, []])),
    %% destroy while paused: the node's OS processes and its cgroup are gone.
    ?assertEqual(ok, call(S, pause, [b1])),
    ?assertNotEqual([], ?U:os_pids_matching("-sname " ++ Name ++ "@")),
    ?assertEqual(ok, call(S, destroy, [b1])),
    ?assertEqual([], ?U:os_pids_matching("-sname " ++ Name ++ "@")),
    ?assertEqual(none, freezer(S, <<"b1">>)).

docker_pause() ->
    S = ?U:start_isolated(),
    Node = atom_to_list(maps:get(node, S)),
    Ws = filename:join(?U:state_dir("pzws"), "ws"),
    ok = file:make_dir(Ws),
    File = filename:join(Ws, "count"),
    try
        ok = ?U:wait_until(fun() -> maps:get(docker, maps:get(backends, ?U:info(S))) =:= available
                           end, 20000, 20),
        {ok, #{ref := Cid}} = call(S, create, [d1, docker, #{image => ?IMAGE, workspace => list_to_binary(Ws),
                                                             cmd => counter_cmd("/app", mark())}]),
        {ok, _} = call(S, subscribe, [d1, self(), [status]]),
        assert_grows(File),
        ?assertEqual({error, not_paused}, call(S, resume, [d1])),
        T0 = erlang:monotonic_time(microsecond),
        ?assertEqual(ok, call(S, pause, [d1])),
        T1 = erlang:monotonic_time(microsecond),
        ?assertMatch(#{from := running, to := paused, reason := paused}, status_event(<<"d1">>)),
        ?assertEqual("true", inspect(Cid, "{{.State.Paused}}")),
        {ok, #{status := paused}} = call(S, get, [d1]),
        assert_still(File),
        ?assertEqual({error, paused}, call(S, exec, [d1, [<<"true">>]])),
        ?assertEqual({error, paused}, call(S, copy_from, [d1, <<"count">>])),
        ?assertEqual({error, paused}, call(S, pause, [d1])),
        T2 = erlang:monotonic_time(microsecond),
        ?assertEqual(ok, call(S, resume, [d1])),
        io:format("      docker: pause answered in ~b us, resume in ~b us~n",
                  [T1 - T0, erlang:monotonic_time(microsecond) - T2]),
        ?assertMatch(#{from := paused, to := running, reason := resumed}, status_event(<<"d1">>)),
        ?assertEqual("false", inspect(Cid, "{{.State.Paused}}")),
        assert_grows(File),
        ?assertMatch({ok, #{exit_code := 0}}, call(S, exec, [d1, [<<"true">>]])),
        %% Paused and unpaused outside sandboxd: the engine's events say so.
        "" = dk("pause " ++ binary_to_list(Cid) ++ " >/dev/null"),
        ?assertMatch(#{from := running, to := paused, reason := external}, status_event(<<"d1">>)),
        ?assertEqual({error, paused}, call(S, exec, [d1, [<<"true">>]])),
        "" = dk("unpause " ++ binary_to_list(Cid) ++ " >/dev/null"),
        ?assertMatch(#{from := paused, to := running, reason := external}, status_event(<<"d1">>)),
        %% destroy while paused: no container left.
        ?assertEqual(ok, call(S, pause, [d1])),
        ?assertMatch(#{to := paused}, status_event(<<"d1">>)),
        ?assertEqual(ok, call(S, destroy, [d1])),
        ?assertEqual("", dk("ps -aq --filter label=sandboxd.node=" ++ Node))
    after
        os:cmd("timeout 60 docker ps -aq --filter label=sandboxd.node=" ++ Node
               ++ " | xargs -r docker rm -f -v >/dev/null 2>&1")
    end.

inspect(Cid, Fmt) -> dk("inspect --format '" ++ Fmt ++ "' " ++ binary_to_list(Cid)).

dk(Args) -> string:trim(os:cmd("timeout 60 docker " ++ Args ++ " 2>&1")).
