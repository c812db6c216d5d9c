%% bench/docker: Docker sandboxes through sandboxd against the Engine API driven with curl
%% and against the docker CLI (issue 4, item 6). Run by bench/docker as
%% `erl ... -run sbx_bench_docker main`.
%%
%% One cycle is create -> running -> destroy of a container running `sleep 3600` from
%% sandboxd-test/busybox:1 (scripts/docker-up.sh), done three ways:
%%   sandboxd  sandbox:create(Id, docker, #{image, cmd}) ({ok, running}), sandbox:destroy(Id)
%%   curl      curl --unix-socket: POST /containers/create, POST /start, GET /json (Running
%%             true), POST /stop?t=10, DELETE ?v=1 -- the calls sandboxd makes, one curl
%%             process each, in one sh per cycle
%%   cli       docker run -d --rm, then docker stop -t 10 (which removes it, --rm)
%% with the HostConfig.Init sandboxd uses (read from a container it made), so all three run
%% the same container. Sequential (one cycle at a time, the three methods interleaved) and
%% 20-way concurrent (20 cycles at once, rounds interleaved). Then log throughput: a
%% container printing BENCH_LOG_MB of numbered 100-byte lines, read to its last line by a
%% subscriber of sandboxd's log events against `docker logs -f` into a pipe.
%%
%% Environment: BENCH_DOCKER_SEQ (cycles per method, default 20), BENCH_DOCKER_CONC (20),
%% BENCH_DOCKER_ROUNDS (3), BENCH_LOG_MB (50), BENCH_LOG_ROUNDS (2).
-module(sbx_bench_docker).

-export([main/0]).

-define(IMAGE, "sandboxd-test/busybox:1").
-define(WATCHDOG_MS, 1500000).
-define(MB, (1024 * 1024)).
-define(LINE_BYTES, 100).

main() ->
    sbx_bench_lib:guarded_main(fun run/0, ?WATCHDOG_MS, fun remove_bench_containers/0).

run() ->
    put(problems, []),
    Seq = sbx_bench_lib:env_int("BENCH_DOCKER_SEQ", 20),
    Conc = sbx_bench_lib:env_int("BENCH_DOCKER_CONC", 20),
    Rounds = sbx_bench_lib:env_int("BENCH_DOCKER_ROUNDS", 3),
    LogMb = sbx_bench_lib:env_int("BENCH_LOG_MB", 50),
    LogRounds = sbx_bench_lib:env_int("BENCH_LOG_ROUNDS", 2),
    case sbx_docker_smoke_tests:docker_wanted() of
        ok -> ok;
        {skip, _} -> error("no Docker engine: run scripts/docker-up.sh (make docker-up) first")
    end,
    Sbx = sbx_test_util:start_isolated(#{sname => sbx_test_util:unique("sbx_bench_dk_")}),
    #{node := Node, os_pid := OsPid} = Sbx,
    sbx_bench_lib:write_pidfile(OsPid),
    ok = sbx_test_util:wait_until(
           fun() -> maps:get(docker, maps:get(backends, sbx_test_util:info(Sbx))) =:= available end,
           30000),
    #{version := Vsn} = sbx_test_util:info(Sbx),
    io:format("sandboxd ~s  node ~s  os pid ~b~n", [Vsn, Node, OsPid]),
    io:format("engine ~s  curl ~s  load average ~s~n",
              [cmd("docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'"),
               hd(string:lexemes(cmd("curl --version"), " \n") -- ["curl"]), loadavg()]),
    Init = init_flag(Sbx),
    io:format("image ~s, cmd sleep 3600, HostConfig.Init ~s (as sandboxd sets it)~n", [?IMAGE, Init]),
    Methods = [{sandboxd, fun(I) -> cycle_sandboxd(Sbx, I) end},
               {curl, fun(I) -> cycle_curl(Init, I) end},
               {cli, fun(I) -> cycle_cli(Init, I) end}],
    %% Warm-up: one cycle each (image in the page cache, first-use costs).
    [F(warm) || {_, F} <- Methods],

    io:format("~n== create -> running -> destroy, sequential: ~b cycles per method, interleaved~n", [Seq]),
    SeqRes = sequential(Methods, Seq),
    io:format("~n== create -> running -> destroy, ~b-way concurrent: ~b interleaved rounds per method~n",
              [Conc, Rounds]),
    ConcRes = concurrent(Methods, Conc, Rounds),
    io:format("~n== log throughput: ~b MB of 100-byte numbered lines, ~b rounds each, interleaved~n",
              [LogMb, LogRounds]),
    LogRes = logs(Sbx, Init, LogMb, LogRounds),
    summary(SeqRes, ConcRes, LogRes),
    pong = rpc:call(Node, sandbox, ping, [], 10000),
    case [Id || #{id := Id} <- rpc:call(Node, sandbox, list, [], 10000)] of
        [] -> ok;
        Left -> sbx_bench_lib:problem("sandboxes left in sandboxd: ~p", [Left])
    end,
    io:format("load average at the end ~s~n", [loadavg()]),
    case lists:reverse(get(problems)) of
        [] -> io:format("~nOK: every cycle succeeded~n"), ok;
        Ps -> {failed, Ps}
    end.

%% ---- the three ways of one cycle: {ok, Ms} | {error, What} -------------------------

cycle_sandboxd(#{node := N}, I) ->
    Id = iolist_to_binary(["b", tag(I)]),
    T0 = erlang:monotonic_time(microsecond),
    case rpc:call(N, sandbox, create, [Id, docker, #{image => list_to_binary(?IMAGE),
                                                     cmd => [<<"sleep">>, <<"3600">>]}], 120000) of
        {ok, #{status := running}} ->
            case rpc:call(N, sandbox, destroy, [Id], 120000) of
                ok -> {ok, (erlang:monotonic_time(microsecond) - T0) / 1000};
                E -> {error, {destroy, E}}
            end;
        E ->
            _ = rpc:call(N, sandbox, destroy, [Id], 120000),
            {error, {create, E}}
    end.

cycle_curl(Init, I) ->
    Name = ["sbx_bench_curl_", os:getpid(), "_", tag(I)],
    Body = ["{\"Image\":\"", ?IMAGE, "\",\"Cmd\":[\"sleep\",\"3600\"],\"Labels\":{\"sandboxd.bench\":\"",
            os:getpid(), "\"},\"HostConfig\":{\"Init\":", Init, "}}"],
    Script = ["C='curl -sS --fail-with-body --unix-socket ", sock(), "'; ",
              "id=$($C -X POST -H 'Content-Type: application/json' -d '", Body, "' ",
              "'http://docker/containers/create?name=", Name, "' | sed -n 's/.*\"Id\":\"\\([0-9a-f]*\\)\".*/\\1/p') && ",
              "[ -n \"$id\" ] && $C -X POST http://docker/containers/$id/start && ",
              "$C http://docker/containers/$id/json | grep -q '\"Running\":true' && ",
              "$C -X POST \"http://docker/containers/$id/stop?t=10\" && ",
              "$C -X DELETE \"http://docker/containers/$id?v=1\" && echo CYCLE-OK"],
    timed_sh(Script).

cycle_cli(Init, I) ->
    InitFlag = case Init of "true" -> " --init"; _ -> "" end,
    Script = ["id=$(docker run -d --rm", InitFlag, " --label sandboxd.bench=", os:getpid(),
              " --name sbx_bench_cli_", os:getpid(), "_", tag(I),
              " ", ?IMAGE, " sleep 3600) && docker stop -t 10 $id >/dev/null && echo CYCLE-OK"],
    timed_sh(Script).

%% A name part unique to this cycle: [A-Za-z0-9_] only.
tag(I) ->
    P = case I of
            {A, B} -> io_lib:format("~p_~p", [A, B]);
            _ -> io_lib:format("~p", [I])
        end,
    lists:flatten([P, "_", integer_to_list(erlang:unique_integer([positive]))]).

timed_sh(Script) ->
    T0 = erlang:monotonic_time(microsecond),
    Out = os:cmd(lists:flatten(["(", Script, ") 2>&1"])),
    Ms = (erlang:monotonic_time(microsecond) - T0) / 1000,
    case string:find(Out, "CYCLE-OK") of
        nomatch -> {error, string:trim(Out)};
        _ -> {ok, Ms}
    end.

%% ---- sequential and concurrent -----------------------------------------------------

sequential(Methods, N) ->
    Runs = [{M, F(I)} || I <- lists:seq(1, N), {M, F} <- rotate(Methods, I)],
    maps:from_list([{M, seq_report(M, [R || {M2, R} <- Runs, M2 =:= M])} || {M, _} <- Methods]).

seq_report(M, Results) ->
    Ms = lists:sort([T || {ok, T} <- Results]),
    Errs = [E || {error, E} <- Results],
    [sbx_bench_lib:problem("~p cycle failed: ~p", [M, E]) || E <- lists:sublist(Errs, 3)],
    case Ms of
        [] -> io:format("  ~-9s no successful cycle~n", [M]), undefined;
        _ ->
            io:format("  ~-9s median ~7.1f ms  p90 ~7.1f  min ~7.1f  max ~7.1f  (~b ok, ~b failed)~n",
                      [M, pct(Ms, 50), pct(Ms, 90), hd(Ms), lists:last(Ms), length(Ms), length(Errs)]),
            pct(Ms, 50)
    end.

concurrent(Methods, Conc, Rounds) ->
    Runs = [{M, conc_round(M, F, Conc, R)} || R <- lists:seq(1, Rounds), {M, F} <- rotate(Methods, R)],
    maps:from_list(
      [{M, begin
               Rs = [X || {M2, X} <- Runs, M2 =:= M],
               Walls = lists:sort([W || {W, _, 0} <- Rs]),
               Per = lists:sort(lists:append([P || {_, P, _} <- Rs])),
               Fails = lists:sum([F || {_, _, F} <- Rs]),
               case Walls of
                   [] -> io:format("  ~-9s no round without failures~n", [M]), undefined;
                   _ ->
                       io:format("  ~-9s wall per round of ~b: median ~7.1f ms (~s)  per cycle median ~7.1f "
                                 "max ~7.1f  (~b cycles failed)~n",
                                 [M, Conc, pct(Walls, 50), lists:join(" ", [io_lib:format("~.1f", [W]) || {W, _, _} <- Rs]),
                                  pct(Per, 50), lists:last(Per), Fails]),
                       pct(Walls, 50)
               end
           end} || {M, _} <- Methods]).

conc_round(M, F, Conc, R) ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> Self ! {cycle, self(), F({R, I})} end) || I <- lists:seq(1, Conc)],
    Res = [receive {cycle, P, X} -> X after 300000 -> {error, timeout} end || P <- Pids],
    Wall = (erlang:monotonic_time(microsecond) - T0) / 1000,
    Errs = [E || {error, E} <- Res],
    [sbx_bench_lib:problem("~p concurrent cycle failed: ~p", [M, E]) || E <- lists:sublist(Errs, 3)],
    {Wall, [T || {ok, T} <- Res], length(Errs)}.

%% ---- log throughput ----------------------------------------------------------------

%% The container's command: Lines numbered 100-byte lines, then LOG-DONE; then it exits
%% (so that `docker logs -f` ends).
log_cmd(Lines) ->
    lists:flatten(
      ["awk 'BEGIN { p = sprintf(\"%90s\", \"\"); gsub(/ /, \"x\", p); for (i = 1; i <= ",
       integer_to_list(Lines), "; i++) printf \"%08d %s\\n\", i, p }'; echo LOG-DONE"]).

logs(Sbx, Init, Mb, Rounds) ->
    Lines = Mb * ?MB div ?LINE_BYTES,
    Runs = [{M, case M of
                    sandboxd -> log_sandboxd(Sbx, Lines, R);
                    docker_logs -> log_docker(Init, Lines, R)
                end} || R <- lists:seq(1, Rounds), M <- rotate([sandboxd, docker_logs], R)],
    maps:from_list(
      [{M, begin
               Oks = [{Ms, Bytes} || {M2, {ok, Ms, Bytes}} <- Runs, M2 =:= M],
               [sbx_bench_lib:problem("~p log round: ~p", [M, E]) || {M2, {error, E}} <- Runs, M2 =:= M],
               case Oks of
                   [] -> io:format("  ~-12s no successful round~n", [M]), undefined;
                   _ ->
                       Rates = lists:sort([B / ?MB / (Ms / 1000) || {Ms, B} <- Oks]),
                       io:format("  ~-12s ~7.1f MB/s median (rounds: ~s; create-to-last-line ms: ~s)~n",
                                 [M, pct(Rates, 50), lists:join(" ", [io_lib:format("~.1f", [X]) || X <- Rates]),
                                  lists:join(" ", [io_lib:format("~.1f", [Ms]) || {Ms, _} <- Oks])]),
                       pct(Rates, 50)
               end
           end} || M <- [sandboxd, docker_logs]]).

%% From the create call to the subscriber holding LOG-DONE; every line checked in order.
log_sandboxd(#{node := N}, Lines, R) ->
    Id = iolist_to_binary(io_lib:format("blog~b", [R])),
    {ok, Sub} = rpc:call(N, sandbox, subscribe, [all, self(), [log]], 10000),
    T0 = erlang:monotonic_time(microsecond),
    Res = case rpc:call(N, sandbox, create, [Id, docker, #{image => list_to_binary(?IMAGE),
                                                           cmd => list_to_binary(log_cmd(Lines))}], 120000) of
              {ok, _} ->
                  case read_events(Id, 1, 0, 0) of
                      {done, Next, Bytes, Dropped} when Next =:= Lines + 1, Dropped =:= 0 ->
                          {ok, (erlang:monotonic_time(microsecond) - T0) / 1000, Bytes};
                      Other -> {error, {lines, Other}}
                  end;
              E -> {error, E}
          end,
    ok = rpc:call(N, sandbox, unsubscribe, [Sub], 10000),
    _ = rpc:call(N, sandbox, destroy, [Id], 120000),
    flush(),
    Res.

read_events(Id, Next, Bytes, Dropped) ->
    receive
        {sandbox_event, Id, log, P = #{data := D}} ->
            Dr = Dropped + maps:get(dropped, P, 0),
            case check_lines(binary:split(D, <<"\n">>, [global, trim]), Next) of
                {done, N2} -> {done, N2, Bytes + byte_size(D), Dr};
                {more, N2} -> read_events(Id, N2, Bytes + byte_size(D), Dr);
                Bad -> {bad, Bad, Next}
            end;
        {sandbox_event, _, _, _} -> read_events(Id, Next, Bytes, Dropped)
    after 120000 -> {silent, Next, Bytes}
    end.

check_lines([], Next) -> {more, Next};
check_lines([<<"LOG-DONE">> | _], Next) -> {done, Next};
check_lines([<<Num:8/binary, " ", _/binary>> = L | Rest], Next) ->
    case catch binary_to_integer(Num) of
        Next -> check_lines(Rest, Next + 1);
        _ -> {out_of_order, Next, binary:part(L, 0, min(30, byte_size(L)))}
    end;
check_lines([L | _], Next) -> {foreign, Next, binary:part(L, 0, min(30, byte_size(L)))}.

flush() -> receive {sandbox_event, _, _, _} -> flush() after 0 -> ok end.

%% From `docker run -d` to `docker logs -f` having delivered LOG-DONE into a pipe (the
%% reader counts the lines it got).
log_docker(Init, Lines, R) ->
    InitFlag = case Init of "true" -> " --init"; _ -> "" end,
    Name = io_lib:format("sbx_bench_log_~s_~b", [os:getpid(), R]),
    Script = ["id=$(docker run -d", InitFlag, " --label sandboxd.bench=", os:getpid(), " --name ", Name, " ",
              ?IMAGE, " sh -c \"$0\") && ",
              "docker logs -f $id 2>&1 | awk '/^LOG-DONE$/ { print \"LINES\", n; exit } { n++ }'; ",
              "docker rm -f -v $id >/dev/null; echo CYCLE-OK"],
    %% The awk program of log_cmd holds quotes: it reaches the container's sh -c as $0.
    T0 = erlang:monotonic_time(microsecond),
    Out = os:cmd(lists:flatten(["sh -c ", quote(lists:flatten(Script)), " ", quote(log_cmd(Lines)), " 2>&1"])),
    Ms = (erlang:monotonic_time(microsecond) - T0) / 1000,
    Want = "LINES " ++ integer_to_list(Lines),
    case string:find(Out, Want) of
        nomatch -> {error, string:trim(Out)};
        _ -> {ok, Ms, Lines * ?LINE_BYTES}
    end.

quote(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

%% ---- summary -----------------------------------------------------------------------

summary(Seq, Conc, Logs) ->
    io:format("~n== ratios (sandboxd / other; for times lower is better, for throughput higher)~n"),
    ratio("sequential cycle, sandboxd / curl (raw API)", maps:get(sandboxd, Seq), maps:get(curl, Seq), "target <= 1.05"),
    ratio("sequential cycle, sandboxd / docker CLI", maps:get(sandboxd, Seq), maps:get(cli, Seq), "target < 1"),
    ratio("20-way concurrent wall, sandboxd / curl", maps:get(sandboxd, Conc), maps:get(curl, Conc), "target <= 1.05"),
    ratio("20-way concurrent wall, sandboxd / docker CLI", maps:get(sandboxd, Conc), maps:get(cli, Conc), "target < 1"),
    ratio("log throughput, sandboxd subscriber / docker logs -f", maps:get(sandboxd, Logs),
          maps:get(docker_logs, Logs), "higher is better").

ratio(Label, A, B, Target) when is_number(A), is_number(B), B > 0 ->
    io:format("  ~-55s ~6.3f   (~s)~n", [Label, A / B, Target]);
ratio(Label, _, _, _) ->
    io:format("  ~-55s    n/a~n", [Label]).

%% ---- helpers -----------------------------------------------------------------------

%% The HostConfig.Init of a container sandboxd made ("true" or "false").
init_flag(#{node := N}) ->
    {ok, #{ref := Ref}} = rpc:call(N, sandbox, create, [<<"probe">>, docker,
                                                        #{image => list_to_binary(?IMAGE),
                                                          cmd => [<<"sleep">>, <<"3600">>]}], 120000),
    Init = case cmd("docker inspect --format '{{.HostConfig.Init}}' " ++ binary_to_list(Ref)) of
               "true" -> "true";
               _ -> "false"
           end,
    ok = rpc:call(N, sandbox, destroy, [<<"probe">>], 120000),
    Init.

sock() -> sbx_docker_smoke_tests:socket().

cmd(C) -> string:trim(os:cmd(C ++ " 2>&1")).

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, B} -> string:join(lists:sublist(string:lexemes(binary_to_list(B), " "), 3), " ");
        _ -> "?"
    end.

pct(Sorted, P) -> lists:nth(max(1, min(length(Sorted), round(length(Sorted) * P / 100))), Sorted).

rotate(L, N) ->
    K = N rem length(L),
    lists:nthtail(K, L) ++ lists:sublist(L, K).

%% Containers the curl and CLI cycles made, should a cycle have failed half-way.
remove_bench_containers() ->
    Ids = string:lexemes(os:cmd("docker ps -aq --filter label=sandboxd.bench=" ++ os:getpid()), "\n"),
    [os:cmd("docker rm -f -v " ++ Id) || Id <- Ids],
    ok.
