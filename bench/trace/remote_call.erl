%% bench/trace, remote_call part: sandbox:remote_call through sandboxd against a direct
%% erpc:call from the same caller to the same sandbox node, as a ratio (target: within
%% 1.3x). Called by sbx_bench_trace (contract in bench/trace/README.md).
%%
%% Three workloads, each measured both ways with the same number of calls after a warm-up:
%%   node/0 sequential   erlang:node() one call after another: pure per-call latency
%%                       (through sandboxd is two hops, caller -> sandboxd -> node)
%%   node/0 x16          16 concurrent callers: throughput
%%   sum 10k sequential  lists:sum(lists:seq(1, 10000)): a call doing some work
%% Both ways use erpc:call, so the caller's side costs the same; every answer is checked
%% against the direct one.
-module(remote_call).

-export([run/1]).

-define(CALLS, 2000).
-define(WARMUP, 200).
-define(CONC, 16).
-define(TARGET, 1.3).

run(#{sandboxd := N, id := Id, node := Node}) ->
    Direct = fun(M, F, A) -> erpc:call(Node, M, F, A, 10000) end,
    Via = fun(M, F, A) -> erpc:call(N, sandbox, remote_call, [Id, M, F, A, 10000], 15000) end,
    Works = [{"node/0 sequential", erlang, node, [], 1},
             {"node/0 x16 concurrent", erlang, node, [], ?CONC},
             {"sum 10k sequential", lists, sum, [lists:seq(1, 10000)], 1}],
    Problems = lists:append([one(W, Direct, Via) || W <- Works]),
    case Problems of
        [] -> ok;
        _ -> {failed, Problems}
    end.

one({Label, M, F, A, Conc}, Direct, Via) ->
    Want = Direct(M, F, A),
    case Via(M, F, A) of
        Want ->
            _ = timed(Direct, M, F, A, ?WARMUP, Conc),
            _ = timed(Via, M, F, A, ?WARMUP, Conc),
            %% Alternate the two a few times so drift on a shared machine hits both.
            Pairs = [{timed(Direct, M, F, A, ?CALLS div 4, Conc), timed(Via, M, F, A, ?CALLS div 4, Conc)}
                     || _ <- lists:seq(1, 4)],
            D = lists:sum([X || {X, _} <- Pairs]),
            V = lists:sum([Y || {_, Y} <- Pairs]),
            Ratio = V / D,
            io:format("  ~-22s ~b calls: direct erpc ~.1f us/call (~b calls/s), "
                      "via sandboxd ~.1f us/call (~b calls/s): ratio ~.2fx (target <= ~.1fx: ~s)~n",
                      [Label, ?CALLS, D / ?CALLS, per_sec(?CALLS, D), V / ?CALLS,
                       per_sec(?CALLS, V), Ratio, ?TARGET,
                       case Ratio =< ?TARGET of true -> "met"; false -> "MISSED" end]),
            [];
        Other ->
            [lists:flatten(io_lib:format("~s: remote_call answered ~P, erpc ~P",
                                         [Label, Other, 10, Want, 10]))]
    end.

per_sec(Calls, Us) when Us > 0 -> round(Calls * 1000000 / Us);
per_sec(_, _) -> 0.

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
