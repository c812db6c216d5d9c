%% Docker sandboxes as a caller on a real Erlang node sees them (issue 4, "It must show"
%% items 2-5): every function of docs/API.md for type `docker` with its error cases, exec's
%% stdout/stderr and exit codes, a 50 MB burst of output reaching a subscriber in order,
%% dockerd killed and started again under a running sandboxd, adoption after SIGKILL of
%% sandboxd, and 20 concurrent creates while another process pings the node.
%%
%% Each test starts its own sandboxd (fresh --state-dir, --shutdown-policy destroy) and ends
%% by asserting that `docker ps -a --filter label=sandboxd.node=<node>` is empty; whatever a
%% failed test leaves behind is then removed with `docker rm -f` (and named in the log).
%% The engine and the image sandboxd-test/busybox:1 come from scripts/docker-up.sh; without
%% them the tests answer {skip, no_docker} (or fail with SANDBOXD_REQUIRE_DOCKER=1), as
%% sbx_docker_smoke_tests:docker_wanted/0 decides. Containers are inspected with the docker
%% CLI, never through sandboxd. Timings are printed, never asserted.
-module(sbx_docker_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0, guarded/1]).

-define(U, sbx_test_util).
-define(IMAGE, <<"sandboxd-test/busybox:1">>).
-define(MB, (1024 * 1024)).
-define(SANDBOX_KEYS, [config, created_at, exit_status, id, labels, node, ports, ref,
                       restart_count, started_at, status, type, user]).
-define(SLEEP, [<<"sleep">>, <<"3600">>]).
%% With the engine down, a call that needs it answers within this (a busy 2-core machine
%% answers in well under a second; the call timeout is 120 s).
-define(FAIL_FAST_MS, 10000).
%% concurrent_20_creates_while_pinging: the slowest ping during 20 creates (a loop that blocks
%% on Docker for a create freezes pings for seconds).
-define(WORST_PING_MS, 3000).

tests() ->
    [{info_shows_docker_available, 30000, t(fun info_available/1)},
     {create_right_after_start, 60000, guarded(fun create_after_start/0)},
     {lifecycle, 180000, t(fun lifecycle/1)},
     {create_errors_leave_no_container, 180000, t(fun create_errors/1)},
     {exec_streams_and_exit_codes, 120000, t(fun exec/1)},
     {exec_timeout_truncation_stdin, 120000, t(fun exec_more/1)},
     {logs_and_subscribe, 120000, t(fun logs_subscribe/1)},
     {metrics_and_processes, 90000, t(fun metrics_processes/1)},
     {copy_to_from, 120000, t(fun copy_files/1)},
     {shell, 60000, t(fun shell/1)},
     {health_check_http_tcp_exec, 120000, t(fun health/1)},
     {health_check_never_healthy, 90000, t(fun health_never/1)},
     {ttl_ms_destroys, 60000, t(fun ttl/1)},
     {owner_down_destroys, 60000, t(fun owner/1)},
     {killed_or_removed_behind_back, 120000, t(fun behind_back/1)},
     {burst_50mb_to_subscriber, 400000, t(fun(S) -> burst(S, keep_running) end)},
     {burst_50mb_then_exit_nothing_lost, 400000, t(fun(S) -> burst(S, exit) end)},
     {concurrent_20_creates_while_pinging, 300000, t(fun concurrent/1)},
     {dockerd_killed_reconcile_then_sigkill_adopt, 600000, guarded(fun engine_down/0)}].

%%% ---------------------------------------------------------------------------------
%%% Harness

%% Fun as a test, or the skip docker_wanted/0 gives when no engine is up (also used by
%% sbx_docker_restart_tests).
guarded(Fun) ->
    fun() ->
        case sbx_docker_smoke_tests:docker_wanted() of
            ok -> Fun();
            Skip -> Skip
        end
    end.

%% A test body Fun(S) against a fresh sandboxd; then no container of its node may be left.
t(Fun) ->
    guarded(fun() ->
                    S = ?U:start_isolated(),
                    try
                        %% create_right_after_start covers the moments before the probe.
                        ok = wait_docker_available(S, 20000),
                        Fun(S),
                        assert_no_containers(S)
                    after
                        remove_leftovers(S)
                    end
            end).

node_s(#{node := N}) -> atom_to_list(N).

wait_docker_available(S, Timeout) ->
    ?U:wait_until(fun() -> maps:get(docker, maps:get(backends, ?U:info(S))) =:= available end,
                  Timeout, 20).

%% Container ids labelled with the node (the command the issue names).
containers(S) ->
    Out = os:cmd("timeout 60 docker ps -aq --no-trunc --filter label=sandboxd.node=" ++ node_s(S)
                 ++ " 2>&1"),
    string:lexemes(Out, "\n").

assert_no_containers(S) ->
    case containers(S) of
        [] -> ok;
        Left -> error({containers_left, node_s(S),
                       [dk("inspect --format '{{.Name}} {{.State.Status}}' " ++ C) || C <- Left]})
    end.

remove_leftovers(S) ->
    case containers(S) of
        [] -> ok;
        Left ->
            report("removing ~b container(s) the test left: ~p", [length(Left), Left]),
            [dk("rm -f -v " ++ C) || C <- Left],
            ok
    end.

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 120000).

now_ms() -> erlang:monotonic_time(millisecond).
wall_ms() -> os:system_time(millisecond).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

%% The docker CLI, output trimmed.
dk(Args) -> string:trim(os:cmd("timeout 60 docker " ++ Args ++ " 2>&1")).

inspect(Ref, Fmt) -> dk("inspect --format '" ++ Fmt ++ "' " ++ str(Ref)).

str(B) when is_binary(B) -> binary_to_list(B);
str(A) when is_atom(A) -> atom_to_list(A);
str(L) when is_list(L) -> L.

container_exists(Ref) ->
    string:trim(os:cmd("timeout 60 docker inspect --format x " ++ str(Ref) ++ " 2>/dev/null")) =:= "x".

%% The container name sandboxd gives: sandboxd-<node>-<id>, node characters outside
%% [A-Za-z0-9_.-] as '_'.
container_name(S, Id) ->
    Safe = [case (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z) orelse
                (C >= $0 andalso C =< $9) orelse lists:member(C, "_.-") of
                true -> C;
                false -> $_
            end || C <- node_s(S)],
    "sandboxd-" ++ Safe ++ "-" ++ str(Id).

create_ok(S, Id, Config) ->
    Cfg = maps:merge(#{image => ?IMAGE}, Config),
    case call(S, create, [Id, docker, Cfg]) of
        {ok, #{status := running} = Sb} -> Sb;
        Other -> error({create_failed, Id, Cfg, Other})
    end.

ids(List) -> lists:sort([maps:get(id, Sb) || Sb <- List]).

check_sandbox_map(Sb) ->
    ?assertEqual(?SANDBOX_KEYS, lists:sort(maps:keys(Sb))),
    #{id := Id, type := T, status := St, created_at := C, labels := L, restart_count := RC} = Sb,
    ?assert(is_binary(Id)),
    ?assertEqual(docker, T),
    ?assert(lists:member(St, [starting, running, stopping, stopped, exited, error])),
    ?assert(is_integer(C) andalso abs(C - wall_ms()) < 600000),
    ?assert(is_map(L)),
    ?assert(is_integer(RC) andalso RC >= 0),
    ok.

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
                       Timeout, 100) of
        ok -> ok;
        {error, timeout} -> error({status_never, Id, Status, call(S, get, [Id])})
    end.

wait_gone(S, Id, Timeout) ->
    case ?U:wait_until(fun() -> call(S, get, [Id]) =:= {error, not_found} end, Timeout, 100) of
        ok -> ok;
        {error, timeout} -> error({not_destroyed, Id, call(S, get, [Id])})
    end.

wait_no_containers(S, Timeout) ->
    _ = ?U:wait_until(fun() -> containers(S) =:= [] end, Timeout, 200),
    assert_no_containers(S).

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

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {0, 0, 0, 0}}, {reuseaddr, true}]),
    {ok, P} = inet:port(L),
    gen_tcp:close(L),
    P.

%% A fresh host directory for a workspace, world-writable (the container runs as root,
%% the files it makes are read back here).
workspace(Name) ->
    D = filename:absname(filename:join([?U:log_dir(), "ws", ?U:unique(Name)])),
    ok = filelib:ensure_dir(filename:join(D, "x")),
    ok = file:change_mode(D, 8#777),
    D.

%% GET http://127.0.0.1:Port/Path -> {Status, Body} | {error, Why}.
http_get(Port, Path) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 3000) of
        {ok, Sock} ->
            ok = gen_tcp:send(Sock, ["GET ", Path, " HTTP/1.0\r\nHost: x\r\n\r\n"]),
            R = read_all(Sock, <<>>),
            gen_tcp:close(Sock),
            case binary:split(R, <<"\r\n\r\n">>) of
                [<<"HTTP/", _:3/binary, " ", Code:3/binary, _/binary>>, Body] ->
                    {binary_to_integer(Code), Body};
                _ -> {error, {bad_answer, R}}
            end;
        Err -> Err
    end.

read_all(Sock, Acc) ->
    case gen_tcp:recv(Sock, 0, 5000) of
        {ok, D} -> read_all(Sock, <<Acc/binary, D/binary>>);
        {error, _} -> Acc
    end.

%%% ---------------------------------------------------------------------------------
%%% info

info_available(S) ->
    #{backends := B} = ?U:info(S),
    report("backends: ~p", [B]),
    ?assertEqual(available, maps:get(docker, B)),
    ?assertEqual(available, maps:get(process, B)).

%% A create sent the moment the node answers ping: the engine is up, so it must not be
%% refused as unavailable while sandboxd has not yet asked /version.
create_after_start() ->
    S = ?U:start_isolated(),
    try
        T0 = now_ms(),
        R = call(S, create, [first, docker, #{image => ?IMAGE, cmd => ?SLEEP}]),
        report("create right after start: ~p in ~b ms", [element(1, R), now_ms() - T0]),
        ?assertMatch({ok, #{status := running}}, R),
        ok = call(S, destroy, [first]),
        assert_no_containers(S)
    after
        remove_leftovers(S)
    end.

%%% ---------------------------------------------------------------------------------
%%% Lifecycle: create (every config key), get, list, stop, start, restart, destroy

lifecycle(S = #{node := N}) ->
    Ws = workspace("lc"),
    ok = file:write_file(filename:join(Ws, "hello.txt"), <<"from the host">>),
    HostPort = free_port(),
    Cfg = #{image => ?IMAGE,
            cmd => [<<"sh">>, <<"-c">>, <<"echo started; echo \"$GREETING\"; exec sleep 3600">>],
            env => #{<<"GREETING">> => <<"hi there">>, <<"OTHER">> => <<"x=y">>},
            labels => #{tier => <<"web">>, <<"team">> => <<"a">>},
            ports => [{HostPort, 8080}],
            workspace => list_to_binary(Ws),
            memory_mb => 64, cpus => 1, pids_limit => 50,
            pull => if_missing},
    T0 = now_ms(),
    A = create_ok(S, lc_atom, Cfg),
    report("create -> running: ~b ms", [now_ms() - T0]),
    check_sandbox_map(A),
    #{id := <<"lc_atom">>, node := N, ref := Ref, started_at := StA, exit_status := undefined,
      restart_count := 0, ports := Ports,
      labels := #{<<"tier">> := <<"web">>, <<"team">> := <<"a">>}} = A,
    report("sandbox: ref ~s, ports ~p", [Ref, Ports]),
    ?assert(is_binary(Ref) andalso byte_size(Ref) >= 12),
    ?assert(is_integer(StA)),
    ?assertMatch(#{image := ?IMAGE}, maps:get(config, A)),
    %% What Docker was asked for.
    ?assertEqual("true", inspect(Ref, "{{.State.Running}}")),
    ?assertEqual("/" ++ container_name(S, lc_atom), inspect(Ref, "{{.Name}}")),
    ?assertEqual("lc_atom", inspect(Ref, "{{index .Config.Labels \"sandboxd.id\"}}")),
    ?assertEqual(atom_to_list(N), inspect(Ref, "{{index .Config.Labels \"sandboxd.node\"}}")),
    Env = inspect(Ref, "{{json .Config.Env}}"),
    ?assertNotEqual(nomatch, string:find(Env, "GREETING=hi there")),
    ?assertNotEqual(nomatch, string:find(Env, "OTHER=x=y")),
    ?assertEqual(integer_to_list(64 * ?MB), inspect(Ref, "{{.HostConfig.Memory}}")),
    ?assertEqual("1000000000", inspect(Ref, "{{.HostConfig.NanoCpus}}")),
    ?assertEqual("50", inspect(Ref, "{{.HostConfig.PidsLimit}}")),
    ?assertEqual(integer_to_list(HostPort),
                 inspect(Ref, "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}")),
    %% The workspace is /app, both ways.
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"from the host">>}},
                 call(S, exec, [lc_atom, [<<"cat">>, <<"/app/hello.txt">>]])),
    {ok, #{exit_code := 0}} = call(S, exec, [lc_atom, <<"echo from the container > /app/back.txt">>]),
    ?assertEqual({ok, <<"from the container\n">>}, file:read_file(filename:join(Ws, "back.txt"))),
    wait_log(S, lc_atom, <<"hi there">>, 10000),
    ?assertMatch([#{data := <<"started">>, stream := stdout} | _], log_lines(S, lc_atom)),
    %% A second and third sandbox: no cmd (the image's), and one that exits with 3.
    B = create_ok(S, <<"lc-bin.1">>, #{<<"cmd">> => <<"echo b; exec sleep 3600">>,
                                       <<"labels">> => #{tier => <<"db">>}}),
    check_sandbox_map(B),
    C = create_ok(S, "lc_list", #{cmd => <<"sleep 0.5; exit 3">>}),
    check_sandbox_map(C),
    wait_status(S, "lc_list", exited, 20000),
    ?assertMatch({ok, #{status := exited, exit_status := 3}}, call(S, get, [lc_list])),
    ?assertEqual("exited", inspect(maps:get(ref, C), "{{.State.Status}}")),
    3 = maps:get(sandboxes, ?U:info(S)),
    %% already_exists, whichever way the id is spelled; the existing one is untouched.
    [?assertEqual({error, already_exists}, call(S, create, [Id, docker, #{image => ?IMAGE}]))
     || Id <- [lc_atom, <<"lc_atom">>, "lc_atom"]],
    ?assertEqual("true", inspect(Ref, "{{.State.Running}}")),
    %% get by any spelling.
    [?assertMatch({ok, #{id := <<"lc_atom">>, status := running, ref := Ref, type := docker}},
                  call(S, get, [Id])) || Id <- [lc_atom, <<"lc_atom">>, "lc_atom"]],
    %% not_found from every function taking an id.
    NotFound = [{get, [nope]}, {destroy, [nope]}, {stop, [nope]}, {start, [nope]},
                {restart, [nope]}, {exec, [nope, [<<"true">>]]}, {exec, [nope, [<<"true">>], #{}]},
                {logs, [nope, #{}]}, {metrics, [nope]}, {processes, [nope]}, {shell, [nope]},
                {copy_to, [nope, <<"f">>, <<"x">>]}, {copy_from, [nope, <<"f">>]},
                {subscribe, [nope, self(), [status]]}],
    [?assertEqual({{F, Args}, {error, not_found}}, {{F, Args}, call(S, F, Args)})
     || {F, Args} <- NotFound],
    %% list, in creation order, and its filters.
    ?assertEqual([<<"lc_atom">>, <<"lc-bin.1">>, <<"lc_list">>], [I || #{id := I} <- call(S, list, [])]),
    [check_sandbox_map(X) || X <- call(S, list, [])],
    ?assertEqual(3, length(call(S, list, [#{type => docker}]))),
    ?assertEqual([], call(S, list, [#{type => process}])),
    ?assertEqual([<<"lc-bin.1">>, <<"lc_atom">>], ids(call(S, list, [#{status => running}]))),
    ?assertEqual([<<"lc_list">>], ids(call(S, list, [#{status => exited}]))),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{labels => #{tier => <<"web">>}}]))),
    ?assertEqual([<<"lc-bin.1">>], ids(call(S, list, [#{<<"labels">> => #{<<"tier">> => <<"db">>}}]))),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{type => docker, status => running,
                                                       labels => #{tier => <<"web">>, team => <<"a">>}}]))),
    ?assertEqual([], call(S, list, [#{labels => #{tier => <<"web">>, team => <<"b">>}}])),
    %% stop: the container is stopped, not removed.
    T1 = now_ms(),
    {ok, Stopped} = call(S, stop, [lc_atom]),
    report("stop: ~b ms", [now_ms() - T1]),
    check_sandbox_map(Stopped),
    ?assertMatch(#{id := <<"lc_atom">>, status := stopped}, Stopped),
    ?assertEqual("false", inspect(Ref, "{{.State.Running}}")),
    ?assertEqual([<<"lc_atom">>], ids(call(S, list, [#{status => stopped}]))),
    ?assertMatch({ok, #{status := stopped}}, call(S, stop, [lc_atom])),
    ?assertEqual({error, not_running}, call(S, exec, [lc_atom, [<<"true">>]])),
    %% start: running again.
    {ok, Started} = call(S, start, [lc_atom]),
    ?assertMatch(#{status := running}, Started),
    ?assertEqual("true", inspect(maps:get(ref, Started), "{{.State.Running}}")),
    ?assertMatch({ok, #{status := running}}, call(S, start, [lc_atom])),
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"from the host">>}},
                 call(S, exec, [lc_atom, [<<"cat">>, <<"/app/hello.txt">>]])),
    %% restart: a new start of the workload.
    Before = inspect(maps:get(ref, Started), "{{.State.StartedAt}}"),
    {ok, Restarted} = call(S, restart, [lc_atom]),
    ?assertMatch(#{status := running}, Restarted),
    Ref3 = maps:get(ref, Restarted),
    ?assertEqual("true", inspect(Ref3, "{{.State.Running}}")),
    ?assertNotEqual(Before, inspect(Ref3, "{{.State.StartedAt}}")),
    %% restart of an exited sandbox runs it again.
    ?assertMatch({ok, #{status := running}}, call(S, restart, [lc_list])),
    %% destroy: ok once the containers are gone.
    Refs = [Ref3, maps:get(ref, B), maps:get(ref, C)],
    T2 = now_ms(),
    [?assertEqual(ok, call(S, destroy, [Id])) || Id <- [lc_atom, <<"lc-bin.1">>, "lc_list"]],
    report("3 destroys: ~b ms", [now_ms() - T2]),
    ?assertEqual([], [R || R <- Refs, container_exists(R)]),
    ?assertEqual([], call(S, list, [])),
    ?assertEqual({error, not_found}, call(S, get, [lc_atom])),
    ?assertEqual({error, not_found}, call(S, destroy, [lc_atom])),
    ?assertEqual(0, maps:get(sandboxes, ?U:info(S))),
    assert_no_containers(S),
    %% The host's workspace is the caller's: still there.
    ?assert(filelib:is_regular(filename:join(Ws, "hello.txt"))),
    %% An id is free again once destroyed.
    create_ok(S, lc_atom, #{cmd => ?SLEEP}),
    ok = call(S, destroy, [lc_atom]),
    %% Checked last so that the rest runs whatever: the sandbox map names the published port.
    ?assertMatch({[_ | _], _}, {Ports, HostPort}),
    ?assert(lists:member(HostPort, lists:flatten([tuple_to_list(P) || P <- Ports, is_tuple(P)] ++
                                                      [maps:values(P) || P <- Ports, is_map(P)]))),
    ok.

%%% ---------------------------------------------------------------------------------
%%% Create errors: Docker's refusal in {backend, docker, Detail}, and nothing left

create_errors(S) ->
    Busy = free_port(),
    {ok, Listener} = gen_tcp:listen(Busy, [{ip, {0, 0, 0, 0}}, {reuseaddr, false}]),
    Sleep = #{image => ?IMAGE, cmd => ?SLEEP},
    Cases = [{missing_image_pull_never,
              #{image => <<"sandboxd-test/no-such-image:404">>, pull => never, cmd => ?SLEEP},
              {backend, <<"404">>}},
             {port_in_use, Sleep#{ports => [{Busy, 80}]}, backend},
             {more_cpus_than_the_host, Sleep#{cpus => 4096}, {badarg_or_backend, cpus}},
             {memory_below_dockers_minimum, Sleep#{memory_mb => 1}, {badarg_or_backend, memory_mb}},
             {unknown_key, Sleep#{bogus => 1}, {badarg, bogus, unknown_key}},
             {no_image, #{cmd => ?SLEEP}, {badarg, image, missing}},
             {image_not_a_string, Sleep#{image => 42}, {badarg, image}},
             {bad_pull, Sleep#{pull => sometimes}, {badarg, pull}},
             {bad_ports, Sleep#{ports => [{<<"x">>, 80}]}, {badarg, ports}},
             {bad_port_number, Sleep#{ports => [{70000, 80}]}, {badarg, ports}},
             {bad_memory, Sleep#{memory_mb => -1}, {badarg, memory_mb}},
             {bad_env, Sleep#{env => [1, 2]}, {badarg, env}},
             {bad_volumes, Sleep#{volumes => 7}, {badarg, volumes}}],
    try
        lists:foreach(
          fun({Name, Cfg, Want}) ->
                  T0 = now_ms(),
                  R = call(S, create, [<<"ce">>, docker, Cfg]),
                  report("~p: ~p (~b ms)", [Name, R, now_ms() - T0]),
                  case Want of
                      backend ->
                          ?assertMatch({_, {error, {backend, docker, D}}} when is_binary(D), {Name, R});
                      {backend, Prefix} ->
                          ?assertMatch({_, {error, {backend, docker, <<Prefix:3/binary, _/binary>>}}},
                                       {Name, R});
                      {badarg_or_backend, Field} ->
                          case R of
                              {error, {badarg, Field, W}} when is_atom(W) -> ok;
                              _ -> ?assertMatch({_, {error, {backend, docker, D}}} when is_binary(D), {Name, R})
                          end;
                      {badarg, Field} ->
                          ?assertMatch({_, {error, {badarg, Field, W}}} when is_atom(W), {Name, R});
                      _ ->
                          ?assertEqual({Name, {error, Want}}, {Name, R})
                  end,
                  ?assertEqual({Name, []}, {Name, call(S, list, [])}),
                  ?assertEqual({error, not_found}, call(S, get, [<<"ce">>])),
                  ?assertEqual(0, maps:get(sandboxes, ?U:info(S))),
                  ?assertEqual({Name, []}, {Name, containers(S)}),
                  ?assertNot(container_exists(container_name(S, ce)))
          end, Cases)
    after
        gen_tcp:close(Listener)
    end,
    %% A command that is not in the image: as docs/API.md says, not a create error but a
    %% sandbox that exits with 127 (Docker's init reports it).
    RB = call(S, create, [<<"ce">>, docker, Sleep#{cmd => [<<"/no/such/binary">>]}]),
    report("missing binary: ~p", [RB]),
    ?assertMatch({ok, _}, RB),
    wait_status(S, <<"ce">>, exited, 20000),
    {ok, GB} = call(S, get, [<<"ce">>]),
    report("missing binary, then: ~p", [maps:with([status, exit_status], GB)]),
    ?assertMatch(#{status := exited, exit_status := 127}, GB),
    ok = call(S, destroy, [<<"ce">>]),
    ?assertEqual([], containers(S)),
    %% The message names what was wrong.
    {error, {backend, docker, D404}} =
        call(S, create, [<<"ce">>, docker, #{image => <<"sandboxd-test/no-such-image:404">>, pull => never}]),
    ?assertNotEqual(nomatch, string:find(string:lowercase(D404), "no such image")),
    %% The id is usable after all these failures; the port is free again and usable.
    #{ref := Ref} = create_ok(S, <<"ce">>, Sleep#{ports => [{Busy, 80}]}),
    ?assertEqual("true", inspect(Ref, "{{.State.Running}}")),
    %% A second sandbox asking for the same host port: refused, the first one untouched.
    R2 = call(S, create, [<<"ce2">>, docker, Sleep#{ports => [{Busy, 80}]}]),
    report("same host port twice: ~p", [R2]),
    ?assertMatch({error, {backend, docker, _}}, R2),
    ?assertEqual([<<"ce">>], ids(call(S, list, []))),
    ?assertEqual("true", inspect(Ref, "{{.State.Running}}")),
    ok = call(S, destroy, [<<"ce">>]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% exec

exec(S) ->
    create_ok(S, ex, #{cmd => ?SLEEP}),
    E = fun(Cmd) -> call(S, exec, [ex, Cmd]) end,
    E3 = fun(Cmd, Opts) -> call(S, exec, [ex, Cmd, Opts]) end,
    %% stdout and stderr apart, the exit code.
    {ok, R1} = E([<<"sh">>, <<"-c">>, <<"echo out; echo err >&2; echo out2; exit 3">>]),
    ?assertEqual([duration_ms, exit_code, stderr, stdout, truncated], lists:sort(maps:keys(R1))),
    ?assertMatch(#{exit_code := 3, stdout := <<"out\nout2\n">>, stderr := <<"err\n">>,
                   truncated := false}, R1),
    ?assert(is_integer(maps:get(duration_ms, R1))),
    %% argv without a shell: spaces, $HOME, globs and quotes arrive literally.
    {ok, R2} = E([<<"printf">>, <<"[%s]">>, <<"a b">>, <<"$HOME">>, <<"*">>, <<"'q' \"d\"">>]),
    ?assertMatch(#{exit_code := 0, stderr := <<>>}, R2),
    ?assertEqual(<<"[a b][$HOME][*]['q' \"d\"]">>, maps:get(stdout, R2)),
    %% A binary is a shell command.
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"42\n">>}}, E(<<"echo $((6*7))">>)),
    %% Exit codes as the command gave them.
    [?assertMatch({Code, {ok, #{exit_code := Code}}},
                  {Code, E(iolist_to_binary(["exit ", integer_to_list(Code)]))})
     || Code <- [0, 1, 2, 127, 255]],
    %% A command killed by a signal: 128 + N.
    {ok, RK} = E(<<"kill -9 $$">>),
    report("exec killed by SIGKILL: ~p", [RK]),
    ?assertMatch(#{exit_code := 137}, RK),
    %% env and cwd.
    ?assertMatch({ok, #{stdout := <<"bar baz\n">>}},
                 E3(<<"echo \"$FOO\"">>, #{env => #{<<"FOO">> => <<"bar baz">>}})),
    ?assertMatch({ok, #{stdout := <<"/tmp\n">>}}, E3([<<"pwd">>], #{cwd => <<"/tmp">>})),
    {ok, #{stdout := Cwd}} = E([<<"pwd">>]),
    report("default exec cwd: ~p", [Cwd]),
    %% Interleaved streams: each keeps its order, neither loses a line.
    {ok, R3} = E(<<"i=1; while [ $i -le 2000 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done">>),
    ?assertEqual(iolist_to_binary([["o", integer_to_list(I), "\n"] || I <- lists:seq(1, 2000)]),
                 maps:get(stdout, R3)),
    ?assertEqual(iolist_to_binary([["e", integer_to_list(I), "\n"] || I <- lists:seq(1, 2000)]),
                 maps:get(stderr, R3)),
    %% 300 KB of binary output, byte for byte.
    {ok, R4} = E(<<"head -c 300000 /dev/urandom > /tmp/r.bin; cat /tmp/r.bin">>),
    {ok, #{stdout := Md5Line}} = E(<<"md5sum /tmp/r.bin">>),
    ?assertEqual(300000, byte_size(maps:get(stdout, R4))),
    ?assertEqual(string:slice(binary_to_list(Md5Line), 0, 32), hex(erlang:md5(maps:get(stdout, R4)))),
    %% A missing binary: an answer, not a crash.
    RM = E([<<"/no/such/binary">>]),
    report("exec of a missing binary: ~p", [RM]),
    %% As docs/API.md says: exit code 126 from exec inspect, Docker's message on stdout.
    ?assertMatch({ok, #{exit_code := 126, stdout := <<"OCI runtime exec failed", _/binary>>}}, RM),
    %% Bad arguments.
    ?assertMatch({error, {badarg, cmd, _}}, E(42)),
    ?assertMatch({error, {badarg, cmd, _}}, E([])),
    ?assertMatch({error, {badarg, _, _}}, E3([<<"true">>], #{timeout_ms => -5})),
    ?assertMatch({error, {badarg, _, _}}, E3([<<"true">>], #{bogus => 1})),
    %% The sandbox runs on.
    ?assertMatch({ok, #{status := running}}, call(S, get, [ex])),
    ok = call(S, destroy, [ex]),
    ok.

hex(Bin) -> lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).

exec_more(S) ->
    create_ok(S, em, #{cmd => ?SLEEP}),
    E3 = fun(Cmd, Opts) -> call(S, exec, [em, Cmd, Opts]) end,
    %% timeout: {error, timeout} and the command is gone from the container.
    T0 = now_ms(),
    ?assertEqual({error, timeout}, E3([<<"sleep">>, <<"77.25">>], #{timeout_ms => 500})),
    report("exec with timeout_ms 500 answered after ~b ms", [now_ms() - T0]),
    Gone = fun() ->
                   {ok, #{stdout := Ps}} = call(S, exec, [em, [<<"ps">>, <<"-o">>, <<"args">>]]),
                   binary:match(Ps, <<"77.25">>) =:= nomatch
           end,
    case ?U:wait_until(Gone, 10000, 200) of
        ok -> ok;
        {error, timeout} -> error({timed_out_exec_still_runs,
                                   call(S, exec, [em, [<<"ps">>, <<"-o">>, <<"args">>]])})
    end,
    %% Truncation at max_output_bytes, per call and by default (1 MiB).
    {ok, RT} = E3(<<"head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2">>, #{max_output_bytes => 1000}),
    report("exec 100000 bytes with max_output_bytes 1000: stdout ~b bytes, stderr ~b bytes, truncated ~p",
           [byte_size(maps:get(stdout, RT)), byte_size(maps:get(stderr, RT)), maps:get(truncated, RT)]),
    %% Per stream, as for process sandboxes.
    ?assertMatch(#{truncated := true, exit_code := 0, stderr := <<"tail\n">>}, RT),
    ?assertEqual(binary:copy(<<"a">>, 1000), maps:get(stdout, RT)),
    {ok, RD} = E3(<<"head -c 3000000 /dev/zero | tr '\\0' b">>, #{}),
    report("exec 3 MB with the default limit: stdout ~b bytes, truncated ~p",
           [byte_size(maps:get(stdout, RD)), maps:get(truncated, RD)]),
    ?assertMatch(#{truncated := true}, RD),
    ?assertEqual(binary:copy(<<"b">>, ?MB), maps:get(stdout, RD)),
    ?assertMatch({ok, #{truncated := false}}, E3(<<"head -c 1000 /dev/zero">>, #{max_output_bytes => 1000})),
    %% stdin: text, then 2 MB of binary read back by checksum.
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"line1\nline2\n">>}},
                 E3([<<"cat">>], #{stdin => <<"line1\nline2\n">>})),
    Big = crypto:strong_rand_bytes(2 * ?MB),
    {ok, RS} = E3(<<"cat > /tmp/in; md5sum < /tmp/in; wc -c < /tmp/in">>, #{stdin => Big}),
    [Md5, Count] = string:lexemes(maps:get(stdout, RS), " -\n"),
    ?assertEqual(hex(erlang:md5(Big)), binary_to_list(Md5)),
    ?assertEqual(<<"2097152">>, Count),
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"0\n">>}}, E3(<<"wc -c">>, #{stdin => <<>>})),
    %% Concurrent execs on one sandbox: each gets its own output.
    Self = self(),
    [spawn_link(fun() -> Self ! {ex, I, E3(iolist_to_binary(["sleep 0.3; echo ", integer_to_list(I)]), #{})} end)
     || I <- lists:seq(1, 8)],
    [receive {ex, I, R} ->
             Want = <<(integer_to_binary(I))/binary, "\n">>,
             ?assertMatch({I, {ok, #{exit_code := 0, stdout := Want}}}, {I, R})
     after 60000 -> error({no_answer, I})
     end || I <- lists:seq(1, 8)],
    %% exec on a stopped sandbox.
    {ok, #{status := stopped}} = call(S, stop, [em]),
    ?assertEqual({error, not_running}, E3([<<"true">>], #{})),
    ok = call(S, destroy, [em]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% logs and subscribe (status, log, metrics)

logs_subscribe(S) ->
    {ok, SubAll} = call(S, subscribe, [all, self(), [status, log, metrics]]),
    ?assert(is_reference(SubAll) orelse is_binary(SubAll) orelse is_integer(SubAll) orelse is_tuple(SubAll)),
    Cmd = <<"for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; exec sleep 3600">>,
    create_ok(S, lg, #{cmd => Cmd}),
    %% status events up to running.
    wait_event(<<"lg">>, status, fun(#{to := To}) -> To =:= running end, 10000),
    %% log events: every line, each on its stream, in order per stream.
    Lines = collect_log_lines(<<"lg">>, 10, 20000),
    report("log events of lg: ~p", [Lines]),
    ?assertEqual([<<"out1">>, <<"out2">>, <<"out3">>, <<"out4">>, <<"out5">>],
                 [D || {stdout, D} <- Lines]),
    ?assertEqual([<<"err1">>, <<"err2">>, <<"err3">>, <<"err4">>, <<"err5">>],
                 [D || {stderr, D} <- Lines]),
    %% logs/1, logs/2 with tail and since.
    {ok, All} = call(S, logs, [lg]),
    ?assertEqual(10, length(All)),
    [?assertMatch(#{ts := Ts, stream := St, data := D} when is_integer(Ts) andalso is_binary(D)
                  andalso (St =:= stdout orelse St =:= stderr), R) || R <- All],
    ?assertEqual([<<"out", I>> || I <- "12345"], [D || #{stream := stdout, data := D} <- All]),
    ?assertEqual([<<"err", I>> || I <- "12345"], [D || #{stream := stderr, data := D} <- All]),
    {ok, Tail3} = call(S, logs, [lg, #{tail => 3}]),
    ?assertEqual(lists:nthtail(7, All), Tail3),
    ?assertEqual({ok, []}, call(S, logs, [lg, #{since => wall_ms() + 60000}])),
    {ok, Since} = call(S, logs, [lg, #{since => 0}]),
    ?assertEqual(10, length(Since)),
    ?assertMatch({error, {badarg, _, _}}, call(S, logs, [lg, #{tail => -1}])),
    ?assertMatch({error, {badarg, _, _}}, call(S, logs, [lg, #{bogus => 1}])),
    %% metrics events, about once a second.
    M = wait_event(<<"lg">>, metrics, fun(_) -> true end, 10000),
    report("metrics event: ~p", [M]),
    check_metrics(M),
    %% A subscription on the one sandbox.
    {ok, SubOne} = call(S, subscribe, [lg, self(), [status]]),
    ok = call(S, unsubscribe, [SubAll]),
    flush_events(),
    %% Output after a restart reaches logs().
    {ok, #{status := running}} = call(S, get, [lg]),
    T0 = now_ms(),
    {ok, #{status := stopped}} = call(S, stop, [lg]),
    report("stop: ~b ms", [now_ms() - T0]),
    Ev = wait_event(<<"lg">>, status, fun(#{to := To}) -> To =:= stopped end, 20000),
    report("status event at stop: ~p", [Ev]),
    ?assertMatch(#{from := _, to := stopped, ts := _, reason := _}, Ev),
    {ok, #{status := running}} = call(S, start, [lg]),
    wait_event(<<"lg">>, status, fun(#{to := To}) -> To =:= running end, 20000),
    ok = ?U:wait_until(fun() -> length([x || #{data := <<"out1">>} <- log_lines(S, lg)]) >= 2 end, 10000),
    ok = call(S, destroy, [lg]),
    Ev2 = wait_event(<<"lg">>, status, fun(#{reason := R}) -> R =:= destroyed end, 20000),
    report("status event at destroy: ~p", [Ev2]),
    ok = call(S, unsubscribe, [SubOne]),
    ok = call(S, unsubscribe, [make_ref()]),
    %% Unsubscribed: nothing more arrives.
    create_ok(S, lg2, #{cmd => <<"echo quiet; exec sleep 3600">>}),
    wait_log(S, lg2, <<"quiet">>, 10000),
    receive {sandbox_event, <<"lg2">>, _, _} = Unexpected -> error({event_after_unsubscribe, Unexpected})
    after 1500 -> ok
    end,
    ?assertMatch({error, {badarg, _, _}}, call(S, subscribe, [lg2, self(), [bogus]])),
    ok = call(S, destroy, [lg2]),
    ok.

%% {Stream, Line} of the first N lines sent as log events of Id (events may batch lines).
collect_log_lines(Id, N, Timeout) ->
    Deadline = now_ms() + Timeout,
    collect_log_lines(Id, N, Deadline, []).

collect_log_lines(_Id, N, _Deadline, Acc) when length(Acc) >= N -> lists:reverse(Acc);
collect_log_lines(Id, N, Deadline, Acc) ->
    receive
        {sandbox_event, Id, log, #{stream := St, data := D}} ->
            Ls = [{St, L} || L <- split_lines(D)],
            collect_log_lines(Id, N, Deadline, lists:reverse(Ls, Acc))
    after max(0, Deadline - now_ms()) -> error({log_events, Id, lists:reverse(Acc)})
    end.

split_lines(D) ->
    case binary:split(D, <<"\n">>, [global]) of
        [_ | _] = Ls ->
            case lists:last(Ls) of
                <<>> when length(Ls) > 1 -> lists:droplast(Ls);
                _ -> Ls
            end
    end.

check_metrics(M) ->
    [?assert(is_number(maps:get(K, M))) || K <- [cpu_percent, memory_bytes, memory_limit_bytes, pids, ts]],
    %% Network counters, whatever their names (rx/tx).
    Net = [K || K <- maps:keys(M), string:find(atom_to_list(K), "rx") =/= nomatch orelse
                                       string:find(atom_to_list(K), "tx") =/= nomatch],
    ?assertMatch({[_, _ | _], _}, {Net, M}),
    ok.

%%% ---------------------------------------------------------------------------------
%%% metrics and processes

metrics_processes(S) ->
    create_ok(S, mp, #{cmd => <<"sleep 1234 & exec sleep 3600">>, memory_mb => 64, pids_limit => 40}),
    timer:sleep(1500),
    {ok, M} = call(S, metrics, [mp]),
    report("metrics: ~p", [M]),
    check_metrics(M),
    ?assertEqual(64 * ?MB, maps:get(memory_limit_bytes, M)),
    ?assert(maps:get(memory_bytes, M) > 0),
    ?assert(maps:get(pids, M) >= 2),
    %% Memory use shows: a 30 MB tmpfs file.
    {ok, #{exit_code := 0}} = call(S, exec, [mp, <<"head -c 31457280 /dev/zero > /dev/shm/fill">>]),
    ok = ?U:wait_until(fun() -> {ok, #{memory_bytes := B}} = call(S, metrics, [mp]),
                                B > 25 * ?MB end, 10000),
    {ok, Ps} = call(S, processes, [mp]),
    report("processes: ~p", [Ps]),
    [?assertMatch(#{pid := P, name := Nm, status := _, memory_bytes := _, cpu_percent := _}
                      when is_integer(P) andalso is_binary(Nm), X) || X <- Ps],
    Names = [Nm || #{name := Nm} <- Ps],
    ?assert(length([x || Nm <- Names, binary:match(Nm, <<"sleep">>) =/= nomatch]) >= 2),
    %% Not running: metrics and processes say so.
    {ok, #{status := stopped}} = call(S, stop, [mp]),
    RM = call(S, metrics, [mp]),
    RP = call(S, processes, [mp]),
    report("metrics and processes of a stopped sandbox: ~p ~p", [RM, RP]),
    ?assertEqual({error, not_running}, RM),
    ?assertEqual({error, not_running}, RP),
    ok = call(S, destroy, [mp]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% copy_to / copy_from: relative paths under /app (the workspace), absolute ones as they are

copy_files(S) ->
    Ws = workspace("cp"),
    create_ok(S, cp, #{cmd => ?SLEEP, workspace => list_to_binary(Ws)}),
    ok = call(S, copy_to, [cp, <<"a.txt">>, <<"hello A">>]),
    ?assertEqual({ok, <<"hello A">>}, file:read_file(filename:join(Ws, "a.txt"))),
    ?assertMatch({ok, #{stdout := <<"hello A">>}}, call(S, exec, [cp, [<<"cat">>, <<"/app/a.txt">>]])),
    ?assertEqual({ok, <<"hello A">>}, call(S, copy_from, [cp, <<"a.txt">>])),
    %% Overwrite.
    ok = call(S, copy_to, [cp, "a.txt", <<"second">>]),
    ?assertEqual({ok, <<"second">>}, call(S, copy_from, [cp, "a.txt"])),
    %% Absolute container paths, 5 MB of binary both ways.
    Big = crypto:strong_rand_bytes(5 * ?MB),
    T0 = now_ms(),
    ok = call(S, copy_to, [cp, <<"/tmp/big.bin">>, Big]),
    T1 = now_ms(),
    {ok, #{stdout := Md5Line}} = call(S, exec, [cp, <<"md5sum /tmp/big.bin">>]),
    ?assertEqual(hex(erlang:md5(Big)), string:slice(binary_to_list(Md5Line), 0, 32)),
    T2 = now_ms(),
    ?assertEqual({ok, Big}, call(S, copy_from, [cp, <<"/tmp/big.bin">>])),
    report("5 MB copy_to ~b ms, copy_from ~b ms", [T1 - T0, now_ms() - T2]),
    ?assertNot(filelib:is_regular(filename:join(Ws, "big.bin"))),
    %% A file the workload made, read back by a relative path.
    {ok, #{exit_code := 0}} = call(S, exec, [cp, <<"echo made > /app/made.txt">>]),
    ?assertEqual({ok, <<"made\n">>}, call(S, copy_from, [cp, <<"made.txt">>])),
    ?assertEqual({ok, <<>>}, (fun() -> ok = call(S, copy_to, [cp, <<"/tmp/empty">>, <<>>]),
                                       call(S, copy_from, [cp, <<"/tmp/empty">>]) end)()),
    %% Errors.
    ?assertEqual({error, {badarg, path, enoent}}, call(S, copy_from, [cp, <<"no-such-file">>])),
    ?assertEqual({error, {badarg, path, enoent}}, call(S, copy_from, [cp, <<"/no/such/file">>])),
    ?assertEqual({error, {badarg, path, eisdir}}, call(S, copy_from, [cp, <<"/etc">>])),
    {ok, #{exit_code := 0}} = call(S, exec, [cp, <<"head -c 68157440 /dev/zero > /tmp/huge">>]),
    ?assertEqual({error, {badarg, path, too_large}}, call(S, copy_from, [cp, <<"/tmp/huge">>])),
    RU = call(S, copy_to, [cp, <<"../escape.txt">>, <<"x">>]),
    report("copy_to ../escape.txt: ~p", [RU]),
    ?assertMatch({error, {badarg, path, _}}, RU),
    ?assertNot(filelib:is_regular(filename:join(filename:dirname(Ws), "escape.txt"))),
    ?assertMatch({error, {badarg, _, _}}, call(S, copy_to, [cp, <<"x">>, 42])),
    ?assertMatch({error, {badarg, path, _}}, call(S, copy_from, [cp, 42])),
    ok = call(S, destroy, [cp]),
    %% Without a workspace, relative paths still land in /app.
    create_ok(S, cp2, #{cmd => ?SLEEP}),
    ok = call(S, copy_to, [cp2, <<"rel.txt">>, <<"rel">>]),
    ?assertMatch({ok, #{stdout := <<"rel">>}}, call(S, exec, [cp2, [<<"cat">>, <<"/app/rel.txt">>]])),
    ok = call(S, destroy, [cp2]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% shell

shell(S) ->
    #{ref := Ref} = create_ok(S, sh1, #{cmd => ?SLEEP}),
    {ok, Sh} = call(S, shell, [sh1]),
    report("shell: ~p", [Sh]),
    ?assertMatch(#{kind := exec, argv := [_ | _]}, Sh),
    #{argv := [Prog | Args]} = Sh,
    ?assert(lists:all(fun erlang:is_binary/1, [Prog | Args])),
    Name = list_to_binary(container_name(S, sh1)),
    ?assert(lists:any(fun(A) -> A =:= Ref orelse A =:= Name orelse
                                    binary:match(Ref, A) =:= {0, byte_size(A)} end, Args)),
    %% The argv opens a shell in the container; the test has no terminal, so without -t.
    NoTty = lists:append([case A of
                              <<"-it">> -> [<<"-i">>];
                              <<"-ti">> -> [<<"-i">>];
                              <<"-t">> -> [];
                              <<"--tty">> -> [];
                              _ -> [A]
                          end || A <- Args]),
    Exe = case binary:first(Prog) of
              $/ -> binary_to_list(Prog);
              _ -> os:find_executable(binary_to_list(Prog))
          end,
    Port = open_port({spawn_executable, Exe},
                     [{args, [binary_to_list(A) || A <- NoTty]}, binary, exit_status, use_stdio,
                      stderr_to_stdout]),
    port_command(Port, <<"echo SHELL-$((40+2))-OK; cat /proc/1/cmdline; exit\n">>),
    Out = collect_port(Port, <<>>, now_ms() + 20000),
    report("shell session output: ~p", [Out]),
    ?assertNotEqual(nomatch, binary:match(Out, <<"SHELL-42-OK">>)),
    ?assertNotEqual(nomatch, binary:match(Out, <<"3600">>)),
    ok = call(S, destroy, [sh1]),
    ok.

collect_port(Port, Acc, Deadline) ->
    receive
        {Port, {data, D}} -> collect_port(Port, <<Acc/binary, D/binary>>, Deadline);
        {Port, {exit_status, _}} -> Acc
    after max(0, Deadline - now_ms()) ->
            catch port_close(Port),
            Acc
    end.

%%% ---------------------------------------------------------------------------------
%%% Health checks (on a published port: the same number inside and outside)

httpd_cmd(Port, DelayS) ->
    P = integer_to_binary(Port),
    <<"mkdir -p /www && echo healthy > /www/index.html && sleep ", (integer_to_binary(DelayS))/binary,
      " && exec httpd -f -p ", P/binary, " -h /www">>.

health(S) ->
    P1 = free_port(),
    T0 = now_ms(),
    R1 = call(S, create, [hh, docker, #{image => ?IMAGE, cmd => httpd_cmd(P1, 2), ports => [{P1, P1}],
                                        health_check => #{type => http, port => P1, path => <<"/">>,
                                                          status => 200, interval_ms => 100,
                                                          timeout_ms => 30000}}]),
    report("create with an http health check (httpd after 2 s): ~p in ~b ms", [element(1, R1), now_ms() - T0]),
    ?assertMatch({ok, #{status := running}}, R1),
    %% Healthy when create answered: it serves at once.
    ?assertEqual({200, <<"healthy\n">>}, http_get(P1, "/")),
    ok = call(S, destroy, [hh]),
    P2 = free_port(),
    T1 = now_ms(),
    R2 = call(S, create, [ht, docker, #{image => ?IMAGE, cmd => httpd_cmd(P2, 2), ports => [{P2, P2}],
                                        health_check => #{type => tcp, port => P2, interval_ms => 100,
                                                          timeout_ms => 30000}}]),
    report("create with a tcp health check: ~p in ~b ms", [element(1, R2), now_ms() - T1]),
    ?assertMatch({ok, #{status := running}}, R2),
    ?assertEqual({200, <<"healthy\n">>}, http_get(P2, "/")),
    ok = call(S, destroy, [ht]),
    T2 = now_ms(),
    R3 = call(S, create, [hx, docker, #{image => ?IMAGE,
                                        cmd => <<"sleep 1; touch /tmp/ready; exec sleep 3600">>,
                                        health_check => #{type => exec,
                                                          cmd => [<<"test">>, <<"-f">>, <<"/tmp/ready">>],
                                                          interval_ms => 100, timeout_ms => 30000}}]),
    report("create with an exec health check: ~p in ~b ms", [element(1, R3), now_ms() - T2]),
    ?assertMatch({ok, #{status := running}}, R3),
    ?assertMatch({ok, #{exit_code := 0}}, call(S, exec, [hx, [<<"test">>, <<"-f">>, <<"/tmp/ready">>]])),
    ok = call(S, destroy, [hx]),
    ok.

health_never(S) ->
    P = free_port(),
    T0 = now_ms(),
    R = call(S, create, [hn, docker, #{image => ?IMAGE, cmd => ?SLEEP, ports => [{P, P}],
                                       health_check => #{type => tcp, port => P, interval_ms => 100,
                                                         timeout_ms => 3000}}]),
    report("create with a health check that never passes: ~p after ~b ms", [R, now_ms() - T0]),
    ?assertEqual({error, timeout}, R),
    ?assertEqual([], call(S, list, [])),
    ?assertEqual({error, not_found}, call(S, get, [hn])),
    assert_no_containers(S),
    %% http answering the wrong status.
    R2 = call(S, create, [hn, docker, #{image => ?IMAGE, cmd => httpd_cmd(P, 0), ports => [{P, P}],
                                        health_check => #{type => http, port => P, path => <<"/nope">>,
                                                          status => 200, interval_ms => 100,
                                                          timeout_ms => 3000}}]),
    report("http health check on a 404 path: ~p", [R2]),
    ?assertEqual({error, timeout}, R2),
    ?assertEqual([], call(S, list, [])),
    ok.

%%% ---------------------------------------------------------------------------------
%%% ttl_ms and owner

ttl(S) ->
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    T0 = now_ms(),
    %% The ttl runs from the create: it must outlast the container's start (about 2 s on a
    %% loaded 2-core machine under ASan; 2 s of ttl once expired before it ran).
    #{ref := Ref} = create_ok(S, tt, #{cmd => ?SLEEP, ttl_ms => 6000}),
    Ev = wait_event(<<"tt">>, status, fun(#{reason := R}) -> R =:= ttl end, 30000),
    report("ttl 6000: status event ~p after ~b ms", [Ev, now_ms() - T0]),
    wait_gone(S, tt, 20000),
    report("ttl 6000: gone after ~b ms", [now_ms() - T0]),
    %% Gone means gone: the id can be used again at once, and the container goes.
    Again = call(S, create, [tt, docker, #{image => ?IMAGE, cmd => ?SLEEP}]),
    report("ttl: create of the same id right after: ~p", [element(1, Again)]),
    ?assertMatch({ok, #{status := running}}, Again),
    ok = call(S, destroy, [tt]),
    wait_container_gone(Ref, T0),
    ?assertMatch({error, {badarg, ttl_ms, _}}, call(S, create, [tt2, docker, #{image => ?IMAGE, ttl_ms => -1}])),
    wait_no_containers(S, 10000).

owner(S) ->
    Owner = spawn(fun() -> receive stop -> ok end end),
    #{ref := Ref} = create_ok(S, ow, #{cmd => ?SLEEP, owner => Owner}),
    #{ref := Ref2} = create_ok(S, ow_other, #{cmd => ?SLEEP}),
    {ok, _} = call(S, subscribe, [ow, self(), [status]]),
    T0 = now_ms(),
    exit(Owner, kill),
    Ev = wait_event(<<"ow">>, status, fun(#{reason := R}) -> R =:= owner_down end, 30000),
    report("owner killed: status event ~p", [Ev]),
    wait_gone(S, ow, 20000),
    report("owner killed: sandbox gone after ~b ms", [now_ms() - T0]),
    Again = call(S, create, [ow, docker, #{image => ?IMAGE, cmd => ?SLEEP}]),
    report("owner: create of the same id right after: ~p", [element(1, Again)]),
    ?assertMatch({ok, #{status := running}}, Again),
    ok = call(S, destroy, [ow]),
    wait_container_gone(Ref, T0),
    %% The others are not the owner's.
    ?assertEqual("true", inspect(Ref2, "{{.State.Running}}")),
    ?assertMatch({error, {badarg, owner, _}}, call(S, create, [ow2, docker, #{image => ?IMAGE, owner => 42}])),
    ok = call(S, destroy, [ow_other]),
    ok.

%%% ---------------------------------------------------------------------------------
%%% A container killed or removed behind sandboxd's back

behind_back(S) ->
    {ok, _} = call(S, subscribe, [all, self(), [status]]),
    #{ref := RefK} = create_ok(S, bk, #{cmd => ?SLEEP}),
    #{ref := RefR} = create_ok(S, br, #{cmd => ?SLEEP}),
    flush_events(),
    T0 = now_ms(),
    _ = dk("kill " ++ str(RefK)),
    EvK = wait_event(<<"bk">>, status, fun(#{to := To}) -> To =/= running end, 20000),
    report("docker kill: status event ~p after ~b ms", [EvK, now_ms() - T0]),
    ?assertMatch(#{to := exited}, EvK),
    {ok, GK} = call(S, get, [bk]),
    report("after docker kill: ~p", [maps:with([status, exit_status], GK)]),
    ?assertMatch(#{status := exited}, GK),
    ?assertEqual({error, not_running}, call(S, exec, [bk, [<<"true">>]])),
    T1 = now_ms(),
    _ = dk("rm -f " ++ str(RefR)),
    EvR = wait_event(<<"br">>, status, fun(#{to := To}) -> To =/= running end, 20000),
    report("docker rm -f: status event ~p after ~b ms", [EvR, now_ms() - T1]),
    ?assertMatch(#{to := exited}, EvR),
    ?assertMatch({ok, #{status := exited}}, call(S, get, [br])),
    %% A killed one starts again (the same container); a removed one starts in a new
    %% container made from its config (docs/API.md).
    ?assertMatch({ok, #{status := running, ref := RefK}}, call(S, start, [bk])),
    RS = call(S, start, [br]),
    report("start of a sandbox whose container was removed: ~p", [RS]),
    ?assertMatch({ok, #{status := running, ref := NewRef}} when NewRef =/= RefR, RS),
    {ok, #{ref := RefR2}} = RS,
    ?assertEqual("true", inspect(RefR2, "{{.State.Running}}")),
    ?assertNot(container_exists(RefR)),
    ok = call(S, destroy, [bk]),
    ok = call(S, destroy, [br]),
    ?assertEqual([], call(S, list, [])),
    ok.

%%% ---------------------------------------------------------------------------------
%%% 50 MB burst of container output to a subscriber that keeps up

-define(BURST_LINE, 100).            % bytes per line with its newline
-define(BURST_LINES, 524288).        % 50 MiB

%% Mode keep_running: the container sleeps after its output; exit: it exits right after
%% the last line, so its status changes while its output may still be on its way.
burst(S, Mode) ->
    {ok, _} = call(S, subscribe, [all, self(), [log, status]]),
    After = case Mode of
                keep_running -> "echo BURST-DONE; exec sleep 3600";
                exit -> "echo BURST-DONE"
            end,
    Pad = ?BURST_LINE - 10,
    %% Line i: "%08d " then Pad x's and a newline: exactly 100 bytes.
    Awk = iolist_to_binary(
            ["awk 'BEGIN { p = sprintf(\"%", integer_to_list(Pad), "s\", \"\"); gsub(/ /, \"x\", p); "
             "for (i = 1; i <= ", integer_to_list(?BURST_LINES), "; i++) printf \"%08d %s\\n\", i, p }'; ",
             After]),
    T0 = now_ms(),
    create_ok(S, burst, #{cmd => Awk}),
    St = burst_collect(#{next => 1, bad => [], events => 0, bytes => 0, dropped => 0, other => 0,
                         done => false, t_last => T0, mode => Mode}),
    #{next := Next, bad := Bad, events := Evs, bytes := Bytes, dropped := Dropped,
      other := Other, done := Done, t_last := TLast} = St,
    Ms = max(1, TLast - T0),
    report("50 MB burst (~p): ~b lines in order of ~b, ~b log events, ~.1f MB of data, ~b ms from create "
           "(~.1f MB/s), dropped ~b, foreign lines ~b, BURST-DONE seen: ~p",
           [Mode, Next - 1, ?BURST_LINES, Evs, Bytes / ?MB, Ms, Bytes / ?MB / (Ms / 1000), Dropped, Other, Done]),
    ?assertEqual([], lists:sublist(lists:reverse(Bad), 5)),
    ?assertEqual(0, Dropped),
    ?assertEqual(?BURST_LINES + 1, Next),
    ?assert(Done),
    %% logs/2 has the end of it.
    {ok, Tail} = call(S, logs, [burst, #{tail => 2}]),
    ?assertMatch([#{data := <<"00524288 ", _/binary>>}, #{data := <<"BURST-DONE">>}], Tail),
    pong = call(S, ping, []),
    ok = call(S, destroy, [burst]),
    ok.

burst_collect(St = #{next := Next, bad := Bad}) ->
    receive
        {sandbox_event, <<"burst">>, log, P = #{data := D}} ->
            Dr = maps:get(dropped, P, 0),
            Ls = split_lines(D),
            St1 = lists:foldl(fun burst_line/2, St, Ls),
            St2 = St1#{events := maps:get(events, St) + 1, bytes := maps:get(bytes, St) + byte_size(D),
                       dropped := maps:get(dropped, St) + Dr},
            case maps:get(done, St2) of
                true -> St2#{t_last := now_ms()};
                false -> burst_collect(St2)
            end;
        {sandbox_event, <<"burst">>, status, #{to := To}}
          when To =/= running, To =/= starting, map_get(mode, St) =:= keep_running ->
            St#{bad := [{status, To, Next} | Bad], t_last := now_ms()};
        {sandbox_event, _, _, _} ->
            burst_collect(St)
    after 60000 ->
            St#{bad := [{silent_for_60s, Next} | Bad], t_last := now_ms()}
    end.

burst_line(<<"BURST-DONE">>, St) -> St#{done := true};
burst_line(<<Num:8/binary, " ", Rest/binary>> = L, St = #{next := Next, bad := Bad}) ->
    case {catch binary_to_integer(Num), byte_size(Rest)} of
        {Next, ?BURST_LINE - 10} -> St#{next := Next + 1};
        {N, Sz} when length(Bad) < 20 -> St#{bad := [{expected, Next, got, N, Sz, binary:part(L, 0, min(20, byte_size(L)))} | Bad]};
        _ -> St
    end;
burst_line(L, St = #{other := O, bad := Bad}) when length(Bad) < 20 ->
    St#{other := O + 1, bad := [{foreign, binary:part(L, 0, min(40, byte_size(L)))} | Bad]};
burst_line(_, St = #{other := O}) -> St#{other := O + 1}.

%%% ---------------------------------------------------------------------------------
%%% 20 concurrent creates from 20 caller processes, another process pinging the node

concurrent(S) ->
    Self = self(),
    Pinger = spawn_link(fun() -> pinger(S, Self, []) end),
    timer:sleep(300),
    T0 = now_ms(),
    Ids = [list_to_binary("cc" ++ integer_to_list(I)) || I <- lists:seq(1, 20)],
    [spawn_link(fun() ->
                        T = now_ms(),
                        R = call(S, create, [Id, docker, #{image => ?IMAGE, cmd => ?SLEEP}]),
                        Self ! {created, Id, R, now_ms() - T}
                end) || Id <- Ids],
    Results = [receive {created, Id, R, Ms} -> {Id, R, Ms} after 280000 -> error({no_answer, Id}) end
               || Id <- Ids],
    Wall = now_ms() - T0,
    Pinger ! {stop, Self},
    Pings = receive {pings, Ps} -> Ps after 10000 -> error(no_pinger) end,
    Sorted = lists:sort(Pings),
    Worst = lists:last(Sorted),
    P99 = lists:nth(max(1, (length(Sorted) * 99) div 100), Sorted),
    Creates = lists:sort([Ms || {_, _, Ms} <- Results]),
    report("20 concurrent creates: wall ~b ms, per create median ~b ms, max ~b ms; "
           "~b pings during the burst: median ~.2f ms, p99 ~.2f ms, worst ~.2f ms",
           [Wall, lists:nth(10, Creates), lists:last(Creates), length(Pings),
            lists:nth(max(1, length(Sorted) div 2), Sorted) / 1000, P99 / 1000, Worst / 1000]),
    [?assertMatch({Id, {ok, #{status := running, type := docker}}, _}, X) || {Id, _, _} = X <- Results],
    %% The node kept answering: enough pings, none slower than ?WORST_PING_MS.
    ?assert(length(Pings) >= 20),
    ?assert(Worst =< ?WORST_PING_MS * 1000),
    ?assertEqual(lists:sort(Ids), ids(call(S, list, [#{status => running}]))),
    Cids = [R || {_, {ok, #{ref := R}}, _} <- Results],
    ?assertEqual(20, length(lists:usort(Cids))),
    ?assertEqual(lists:sort(Cids), lists:sort([list_to_binary(C) || C <- containers(S)])),
    [?assertEqual("true", inspect(C, "{{.State.Running}}")) || C <- Cids],
    %% 20 concurrent destroys.
    T1 = now_ms(),
    [spawn_link(fun() -> Self ! {destroyed, Id, call(S, destroy, [Id])} end) || Id <- Ids],
    [receive {destroyed, Id, R} -> ?assertEqual({Id, ok}, {Id, R}) after 280000 -> error({no_answer, Id}) end
     || Id <- Ids],
    report("20 concurrent destroys: ~b ms", [now_ms() - T1]),
    ?assertEqual([], call(S, list, [])),
    ok.

%% Pings every 5 ms; answers {pings, [Microseconds]}.
pinger(S = #{node := N}, Parent, Acc) ->
    receive {stop, Parent} -> Parent ! {pings, Acc}
    after 5 ->
            T = erlang:monotonic_time(microsecond),
            pong = rpc:call(N, sandbox, ping, [], 30000),
            pinger(S, Parent, [erlang:monotonic_time(microsecond) - T | Acc])
    end.

%%% ---------------------------------------------------------------------------------
%%% dockerd killed under a running sandboxd; then sandboxd SIGKILLed and started again

engine_down() ->
    S0 = ?U:start_isolated(),
    try
        engine_down(S0)
    after
        ensure_dockerd(),
        remove_leftovers(S0)
    end.

engine_down(S0 = #{sname := SName, state_dir := Dir}) ->
    Ids = [list_to_binary("kd" ++ integer_to_list(I)) || I <- lists:seq(1, 5)],
    Ticker = <<"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done">>,
    ok = wait_docker_available(S0, 20000),
    [create_ok(S0, Id, #{cmd => Ticker}) || Id <- Ids],
    wait_log(S0, <<"kd5">>, <<"tick 3">>, 10000),
    %% Kill dockerd.
    Pid = string:trim(os:cmd("pgrep -x dockerd")),
    ?assertMatch({_, [_]}, {dockerd_pids, string:lexemes(Pid, "\n")}),
    %% With its containerd, as a crash of the docker service's control group would: an
    %% orphaned containerd stays, and a new dockerd then fails to start its own (and
    %% docker-up.sh falls back to --iptables=false). The containers' shims live on.
    Containerd = string:lexemes(os:cmd("pgrep -P " ++ Pid ++ " -x containerd"), "\n"),
    report("killing dockerd (pid ~s) and its containerd ~p with SIGKILL", [Pid, Containerd]),
    ?U:os_kill(list_to_integer(Pid), "KILL"),
    [?U:os_kill(list_to_integer(C), "KILL") || C <- Containerd],
    ok = ?U:wait_until(fun() -> not filelib:is_file("/proc/" ++ Pid ++ "/stat") orelse
                                    string:find(os:cmd("cat /proc/" ++ Pid ++ "/stat"), ") Z") =/= nomatch
                       end, 10000),
    %% Calls that need the engine fail fast with unavailable.
    Timed = fun(F, A) -> T = erlang:monotonic_time(microsecond), R = call(S0, F, A),
                         {R, (erlang:monotonic_time(microsecond) - T) / 1000} end,
    {RC, MsC} = Timed(create, [<<"kd6">>, docker, #{image => ?IMAGE, cmd => ?SLEEP}]),
    report("engine down: create answered ~p in ~.1f ms", [RC, MsC]),
    %% Checked at the end (so that reconcile and adoption are tested whatever), as are
    %% the calls below.
    put(late, [{create_right_after_kill, RC, MsC}]),
    T0 = now_ms(),
    Down = fun() -> case maps:get(docker, maps:get(backends, ?U:info(S0))) of
                        {unavailable, W} when is_binary(W) -> true;
                        _ -> false
                    end end,
    case ?U:wait_until(Down, 20000, 20) of
        ok -> ok;
        {error, timeout} -> error({info_still_shows, maps:get(backends, ?U:info(S0))})
    end,
    report("engine down: info() shows ~p after ~b ms", [maps:get(docker, maps:get(backends, ?U:info(S0))),
                                                        now_ms() - T0]),
    Calls = [{create, [<<"kd6">>, docker, #{image => ?IMAGE, cmd => ?SLEEP}]},
             {exec, [<<"kd1">>, [<<"true">>]]},
             {metrics, [<<"kd1">>]},
             {processes, [<<"kd1">>]},
             {copy_from, [<<"kd1">>, <<"/etc/passwd">>]},
             {copy_to, [<<"kd1">>, <<"x">>, <<"y">>]}],
    [begin
         {R, Ms} = Timed(F, A),
         report("engine down: ~p answered ~p in ~.1f ms", [F, R, Ms]),
         put(late, [{F, R, Ms} | get(late)])
     end || {F, A} <- Calls],
    {Lst, MsL} = Timed(list, []),
    report("engine down: list() in ~.1f ms: ~p", [MsL, [{I, St} || #{id := I, status := St} <- Lst]]),
    ?assertEqual(Ids, ids(Lst)),
    pong = call(S0, ping, []),
    %% Start dockerd again, the way scripts/docker-up.sh does, once its containerd is gone.
    TC = now_ms(),
    %% Gone means reaped too: dockerd takes a zombie containerd (its pid file names it)
    %% for a running one.
    Alive = fun(P) -> filelib:is_file("/proc/" ++ P ++ "/stat") end,
    _ = ?U:wait_until(fun() -> not lists:any(Alive, Containerd) end, 30000, 100),
    report("the old containerd ~s after ~b ms", [case lists:any(Alive, Containerd) of
                                                     true -> "still there"; false -> "reaped" end,
                                                 now_ms() - TC]),
    T1 = now_ms(),
    Up = ensure_dockerd(),
    report("dockerd started again in ~b ms: ~s", [now_ms() - T1, Up]),
    %% sandboxd reconnects and reconciles by itself.
    T2 = now_ms(),
    ok = ?U:wait_until(fun() -> maps:get(docker, maps:get(backends, ?U:info(S0))) =:= available end,
                       60000, 100),
    report("info() shows docker available ~b ms after dockerd answered", [now_ms() - T2]),
    True = fun() -> [{Id, docker_status(Ref)} || #{id := Id, ref := Ref} <- call(S0, list, [])] end,
    Matches = fun() -> lists:all(fun(#{id := Id, status := St}) ->
                                         St =:= proplists:get_value(Id, True())
                                 end, call(S0, list, []))
              end,
    case ?U:wait_until(Matches, 60000, 250) of
        ok -> ok;
        {error, timeout} -> error({statuses_not_reconciled,
                                   [{Id, St} || #{id := Id, status := St} <- call(S0, list, [])],
                                   docker_says, True()})
    end,
    report("reconciled after ~b ms: ~p (docker: ~p)",
           [now_ms() - T2, [{Id, St} || #{id := Id, status := St} <- call(S0, list, [])], True()]),
    ?assertEqual(Ids, ids(call(S0, list, []))),
    %% Usable again: a new sandbox, and every old one running.
    create_ok(S0, <<"kd6">>, #{cmd => Ticker}),
    [case call(S0, get, [Id]) of
         {ok, #{status := running}} -> ok;
         {ok, _} -> ?assertMatch({Id, {ok, #{status := running}}}, {Id, call(S0, start, [Id])})
     end || Id <- Ids],
    All = [<<"kd6">> | Ids],
    [?assertEqual("true", inspect(R, "{{.State.Running}}")) || #{ref := R} <- call(S0, list, [])],
    %% SIGKILL sandboxd; the containers run on; the same state dir and name adopt them.
    [wait_log(S0, Id, <<"tick 2">>, 10000) || Id <- All],
    Before = maps:from_list([{Id, {Ref, last_tick(S0, Id)}} || #{id := Id, ref := Ref} <- call(S0, list, [])]),
    #{os_pid := OsPid, port := Port} = S0,
    ?U:os_kill(OsPid, "KILL"),
    receive {Port, {exit_status, _}} -> ok after 10000 -> error(sandboxd_not_killed) end,
    [?assertEqual({Id, "true"}, {Id, inspect(R, "{{.State.Running}}")}) || {Id, {R, _}} <- maps:to_list(Before)],
    timer:sleep(1000),
    T3 = now_ms(),
    S1 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    report("sandboxd started again after SIGKILL in ~b ms", [now_ms() - T3]),
    Adopted = fun() -> L = call(S1, list, []),
                       length(L) =:= 6 andalso lists:all(fun(#{status := St}) -> St =:= running end, L)
              end,
    case ?U:wait_until(Adopted, 30000, 200) of
        ok -> ok;
        {error, timeout} -> error({not_adopted, [{Id, St} || #{id := Id, status := St} <- call(S1, list, [])]})
    end,
    report("adopted after ~b ms: ~p", [now_ms() - T3, [{Id, St} || #{id := Id, status := St} <- call(S1, list, [])]]),
    [begin
         {Ref, Last} = maps:get(Id, Before),
         ?assertMatch({Id, {ok, #{ref := Ref, status := running}}}, {Id, call(S1, get, [Id])}),
         %% Its logs continue past what was there before the kill.
         case ?U:wait_until(fun() -> last_tick(S1, Id) > Last + 3 end, 15000, 200) of
             ok -> ok;
             {error, timeout} -> error({logs_did_not_continue, Id, Last, last_tick(S1, Id)})
         end
     end || Id <- All],
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"adopted\n">>}},
                 call(S1, exec, [<<"kd1">>, <<"echo adopted">>])),
    [?assertEqual({Id, ok}, {Id, call(S1, destroy, [Id])}) || Id <- All],
    ?assertEqual([], call(S1, list, [])),
    assert_no_containers(S1),
    ?assertEqual([], [X || {_, R, _} = X <- lists:reverse(get(late)),
                           not is_tuple(R) orelse element(1, R) =/= error orelse
                               not is_tuple(element(2, R)) orelse element(1, element(2, R)) =/= unavailable]),
    %% Fast: each answered within ?FAIL_FAST_MS (the call timeout is 120 s; a backend that waits
    %% for the engine, or retries, takes that long).
    ?assertEqual([], [{F, Ms} || {F, _, Ms} <- lists:reverse(get(late)), Ms > ?FAIL_FAST_MS]),
    ok.

wait_container_gone(Ref, T0) ->
    case ?U:wait_until(fun() -> not container_exists(Ref) end, 20000, 100) of
        ok -> report("container ~s gone ~b ms after the trigger", [binary:part(Ref, 0, 12), now_ms() - T0]);
        {error, timeout} -> error({container_left, Ref, inspect(Ref, "{{.State.Status}}")})
    end.

docker_status(Ref) ->
    case inspect(Ref, "{{.State.Status}}") of
        "running" -> running;
        "exited" -> exited;
        "created" -> stopped;
        "dead" -> exited;
        Other -> list_to_atom(Other)
    end.

last_tick(S, Id) ->
    lists:max([0 | [binary_to_integer(N) || #{data := <<"tick ", N/binary>>} <- log_lines(S, Id)]]).

%% Makes sure the engine answers again (scripts/docker-up.sh), whatever the test did.
ensure_dockerd() ->
    Script = filename:absname("scripts/docker-up.sh"),
    os:cmd(Script ++ " 2>&1").
