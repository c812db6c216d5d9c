%% bench/trace, remote_call part: sandbox:remote_call through sandboxd against a direct
%% erpc:call from the same caller to the same sandbox node, and sandboxd's own
%% sandbox:ping/0, all three in the same run. Called by sbx_bench_trace (contract in
%% bench/trace/README.md).
%%
%% Three workloads, each measured three ways with the same number of calls and the same
%% concurrency after a warm-up, in batches of 100 calls taken in turn (the figure of each
%% way is its median batch, which leaves out bursts of load from others on the machine):
%%   node/0 sequential   erlang:node() one call after another: pure per-call latency
%%                       (through sandboxd is two hops, caller -> sandboxd -> node)
%%   node/0 x16          16 concurrent callers: throughput
%%   sum 10k sequential  lists:sum(lists:seq(1, 10000)): a call carrying a 10,000-element
%%                       list (sandboxd copies it in and out)
%% added = via sandboxd - direct erpc, per call; it is set against sandboxd's ping at the
%% same concurrency. Target (issue 10): added <= 1.2 x ping on node/0 sequential. Both
%% ways use erpc:call, so the caller's side costs the same; every answer is checked
%% against the direct one.
-module(remote_call).

-export([run/1]).

-define(CALLS, 2000).
-define(BATCH, 100).
-define(WARMUP, 200).
-define(CONC, 16).
-define(TARGET, 1.2).

run(#{sandboxd := N, id := Id, node := Node} = Ctx) ->
    put(sandboxd_os_pid, maps:get(os_pid, Ctx, undefined)),
    Direct = fun(M, F, A) -> erpc:call(Node, M, F, A, 10000) end,
    Via = fun(M, F, A) -> erpc:call(N, sandbox, remote_call, [Id, M, F, A, 10000], 15000) end,
    Ping = fun(_, _, _) -> erpc:call(N, sandbox, ping, [], 10000) end,
    %% {Label, M, F, A, Concurrency, Target applies}
    Works = [{"node/0 sequential", erlang, node, [], 1, true},
             {"node/0 x16 concurrent", erlang, node, [], ?CONC, false},
             {"sum 10k sequential", lists, sum, [lists:seq(1, 10000)], 1, false}],
    Problems = lists:append([one(W, Direct, Via, Ping) || W <- Works]),
    case Problems of
        [] -> ok;
        _ -> {failed, Problems}
    end.

one({Label, M, F, A, Conc, Targeted}, Direct, Via, Ping) ->
    Want = Direct(M, F, A),
    case {Via(M, F, A), Ping(x, x, x)} of
        {Want, pong} ->
            Ways = [Direct, Via, Ping],
            _ = [timed(W, M, F, A, ?WARMUP, Conc) || W <- Ways],
            %% Short batches of each way in turn, and the median batch of each: a shared
            %% machine's bursts of load hit some batches of every way and are left out.
            Batches = [[cpu_timed(W, M, F, A, ?BATCH, Conc) || W <- Ways]
                       || _ <- lists:seq(1, ?CALLS div ?BATCH)],
            [D, V, P] = [median([element(1, lists:nth(K, B)) / ?BATCH || B <- Batches])
                         || K <- [1, 2, 3]],
            [_, VCpu, PCpu] = [lists:sum([element(2, lists:nth(K, B)) || B <- Batches]) / ?CALLS
                               || K <- [1, 2, 3]],
            Added = V - D,
            Ratio = Added / P,
            Verdict = case Targeted of
                          true when Ratio =< ?TARGET ->
                              io_lib:format("target <= ~.1fx: met", [?TARGET]);
                          true ->
                              io_lib:format("target <= ~.1fx: MISSED", [?TARGET]);
                          false ->
                              "no target"
                      end,
            io:format("  ~-22s median of ~b batches of ~b calls: direct erpc ~.1f us/call, via "
                      "sandboxd ~.1f us/call (~.2fx), sandboxd ping ~.1f us/call; added ~.1f us "
                      "= ~.2fx ping (~s)~n",
                      [Label, ?CALLS div ?BATCH, ?BATCH, D, V, V / D, P, Added, Ratio, Verdict]),
            io:format("  ~-22s sandboxd's CPU: ~.1f us per remote_call, ~.1f us per ping~n",
                      ["", VCpu, PCpu]),
            [];
        {Other, Pong} ->
            [lists:flatten(io_lib:format("~s: remote_call answered ~P, erpc ~P, ping ~P",
                                         [Label, Other, 10, Want, 10, Pong, 10]))]
    end.

%% {wall time in us, sandboxd's CPU time in us} of timed/6.
cpu_timed(Call, M, F, A, Calls, Conc) ->
    C0 = cpu_us(),
    T = timed(Call, M, F, A, Calls, Conc),
    {T, cpu_us() - C0}.

%% sandboxd's CPU time so far in us (/proc/PID/schedstat, in ns); 0 without its pid.
cpu_us() ->
    case get(sandboxd_os_pid) of
        Pid when is_integer(Pid) ->
            case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/schedstat") of
                {ok, B} -> binary_to_integer(hd(binary:split(B, <<" ">>))) / 1000;
                _ -> 0
            end;
        _ ->
            0
    end.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

%% Wall time in microseconds for Calls calls spread over Conc concurrent callers.
timed(Call, M, F, A, Calls, 1) ->
    T0 = erlang:monotonic_time(microsecond),
    loop(Call, M, F, A, Calls),
    erlang:monotonic_time(microsecond) - T0;
timed(Call, M, F, A, Calls, Conc) ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> loop(Call, M, F, A, Calls div Conc), Self ! {done, self()} end)
            || _ <- lists:seq(1, Conc)],
    [receive {done, P} -> ok end || P <- Pids],
    erlang:monotonic_time(microsecond) - T0.

loop(_, _, _, _, 0) -> ok;
loop(Call, M, F, A, K) ->
    _ = Call(M, F, A),
    loop(Call, M, F, A, K - 1).
