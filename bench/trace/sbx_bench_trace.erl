%% bench/trace: trace events relayed per second from a beam_node sandbox through
%% sandboxd to one subscriber, then the remote_call part (remote_call.erl) when present.
%% See bench/trace/README.md.
-module(sbx_bench_trace).

-export([main/0]).
%% Run inside the sandbox's node.
-export([flood_start/1, flood_loop/2, flood_count/0]).

-define(WATCHDOG_MS, 300000).
-define(TARGET, 100000).
-define(MAX_EVENTS, 100000).

main() ->
    sbx_bench_lib:guarded_main(fun run/0, ?WATCHDOG_MS, fun() -> ok end).

run() ->
    put(problems, []),
    S = sbx_test_util:start_isolated(),
    #{node := N, os_pid := OsPid} = S,
    sbx_bench_lib:write_pidfile(OsPid),
    put(sandboxd_os_pid, OsPid),
    Id = <<"bench_trace">>,
    Cookie = list_to_binary(sbx_test_util:unique("ck")),
    Ebin = list_to_binary(filename:absname(os:getenv("SBX_BENCH_EBIN", "_build/bench/trace/ebin"))),
    {ok, #{ref := Ref}} = rpc:call(N, sandbox, create,
                                   [Id, beam_node, #{code_paths => [Ebin], cookie => Cookie}], 60000),
    Node = to_atom(Ref),
    erlang:set_cookie(Node, binary_to_atom(Cookie)),
    Burst = sbx_bench_lib:env_int("SBX_BENCH_TRACE_BURST", 1024),
    {ok, FPid} = rc(N, Id, ?MODULE, flood_start, [Burst]),
    put(node_os_pid, list_to_integer(rc(N, Id, os, getpid, []))),
    C0 = rc(N, Id, ?MODULE, flood_count, []),
    timer:sleep(1000),
    C1 = rc(N, Id, ?MODULE, flood_count, []),
    io:format("sandbox node ~s; its flood process (bursts of ~b rounds, then 1 ms) produces "
              "~b events/s untraced~n", [Node, Burst, 2 * (C1 - C0)]),
    io:format("load average (1, 5, 15 min) at the start: ~s~n", [loadavg()]),
    Rounds = sbx_bench_lib:env_int("SBX_BENCH_TRACE_ROUNDS", 5),
    io:format("~nTrace events relayed to one subscriber (max_events ~b, no rate limit):~n",
              [?MAX_EVENTS]),
    Rates = [one_round(N, Id, FPid, I) || I <- lists:seq(1, Rounds)],
    Good = [R || R <- Rates, is_integer(R)],
    case Good of
        [] when Rounds =:= 0 ->
            io:format("  skipped (SBX_BENCH_TRACE_ROUNDS=0)~n");
        [] ->
            sbx_bench_lib:problem("no round finished", []);
        _ ->
            Median = lists:nth((length(Good) + 1) div 2, lists:sort(Good)),
            io:format("trace events relayed/s (median of ~b rounds): ~b (target >= ~b)~n",
                      [length(Good), Median, ?TARGET]),
            {Evs, Ms} = lists:foldl(fun({E, C}, {EAcc, CAcc}) -> {EAcc + E, CAcc + C} end, {0, 0},
                                    get_list(cpu)),
            io:format("sandboxd's own cost: ~.2f us of CPU per relayed event, i.e. ~b events "
                      "per CPU second (the rest of the pipeline is the traced node and the "
                      "subscriber's node)~n", [Ms * 1000 / max(1, Evs), Evs * 1000 div max(1, Ms)]),
            Median >= ?TARGET orelse
                sbx_bench_lib:problem("relay rate ~b/s is below the target ~b/s", [Median, ?TARGET])
    end,
    io:format("load average at the end: ~s~n", [loadavg()]),
    rc(N, Id, erlang, exit, [FPid, kill]),
    remote_call_part(#{sandboxd => N, id => Id, node => Node, cookie => binary_to_atom(Cookie),
                       os_pid => OsPid}),
    ok = rpc:call(N, sandbox, destroy, [Id], 60000),
    case get(problems) of
        [] -> ok;
        P -> {failed, lists:reverse(P)}
    end.

remote_call_part(Ctx) ->
    io:format("~nremote_call vs erpc:call:~n"),
    case code:ensure_loaded(remote_call) of
        {module, remote_call} ->
            case catch remote_call:run(Ctx) of
                ok -> ok;
                {failed, Ps} -> [sbx_bench_lib:problem("~s", [P]) || P <- Ps];
                Other -> sbx_bench_lib:problem("remote_call part: ~p", [Other])
            end;
        _ ->
            io:format("  skipped: bench/trace/remote_call.erl is not there~n")
    end.

get_list(Key) ->
    case get(Key) of
        undefined -> [];
        L -> L
    end.

to_atom(A) when is_atom(A) -> A;
to_atom(B) when is_binary(B) -> binary_to_atom(B);
to_atom(L) when is_list(L) -> list_to_atom(L).

rc(N, Id, M, F, A) ->
    rpc:call(N, sandbox, remote_call, [Id, M, F, A], 60000).

%% One trace of max_events events, counted by a fresh subscriber. Returns events/s or
%% undefined.
one_round(N, Id, FPid, I) ->
    Self = self(),
    Sub = spawn_link(fun() ->
                             {ok, _} = rpc:call(N, sandbox, subscribe, [Id, self(), [trace]], 60000),
                             Self ! {subscribed, self()},
                             Self ! {counted, self(), count(Id, undefined, undefined, 0, 0)}
                     end),
    receive {subscribed, Sub} -> ok end,
    Cpu0 = cpu_ms(get(sandboxd_os_pid)),
    NodeCpu0 = cpu_ms(get(node_os_pid)),
    OwnCpu0 = cpu_ms(list_to_integer(os:getpid())),
    {ok, _} = rpc:call(N, sandbox, trace_start,
                       [Id, #{pids => [FPid], flags => [send, 'receive'],
                              max_events => ?MAX_EVENTS, duration_ms => 60000}], 60000),
    receive
        {counted, Sub, {Count, First, Last, Dropped, End}} ->
            Us = max(1, Last - First),
            Rate = Count * 1000000 div Us,
            Cpu = cpu_ms(get(sandboxd_os_pid)) - Cpu0,
            NodeCpu = cpu_ms(get(node_os_pid)) - NodeCpu0,
            OwnCpu = cpu_ms(list_to_integer(os:getpid())) - OwnCpu0,
            io:format("  round ~b: ~b events in ~.1f ms = ~b events/s; CPU ms: sandboxd ~b, "
                      "traced node ~b, subscriber's node ~b; dropped by sandboxd for the "
                      "subscriber ~b; agent: ~w~n",
                      [I, Count, Us / 1000, Rate, Cpu, NodeCpu, OwnCpu, Dropped,
                       maps:with([events, dropped_overload, dropped_busy, max_queue, reason], End)]),
            %% Events sandboxd dropped for a subscriber that fell behind are counted on the
            %% next event it gets: none may go missing uncounted.
            put(cpu, [{Count, Cpu} | get_list(cpu)]),
            Count + Dropped >= ?MAX_EVENTS orelse
                sbx_bench_lib:problem("round ~b: ~b events received and ~b counted as dropped, of ~b",
                                      [I, Count, Dropped, ?MAX_EVENTS]),
            Rate
    after 60000 ->
        sbx_bench_lib:problem("round ~b: no trace_end within 60 s", [I]),
        undefined
    end.

count(Id, First, Last, N, D) ->
    receive
        {sandbox_event, Id, trace, #{event := trace_end, detail := End} = Ev} ->
            {N, First, Last, D + maps:get(dropped, Ev, 0), End};
        {sandbox_event, Id, trace, Ev} ->
            Now = erlang:monotonic_time(microsecond),
            F = case First of undefined -> Now; _ -> First end,
            count(Id, F, Now, N + 1, D + maps:get(dropped, Ev, 0))
    after 30000 ->
        {N, First, Last, D, #{reason => no_end}}
    end.

%% The machine's load averages (other work on it slows every figure here).
loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, B} -> lists:join(" ", lists:sublist(string:lexemes(binary_to_list(B), " "), 3));
        _ -> "n/a"
    end.

%% User + system CPU time of an OS process, in ms (0 if unreadable).
cpu_ms(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, B} ->
            [_, Rest] = binary:split(B, <<") ">>),
            F = string:lexemes(binary_to_list(Rest), " "),
            (list_to_integer(lists:nth(12, F)) + list_to_integer(lists:nth(13, F))) * 10;
        _ -> 0
    end.

%%% Inside the sandbox's node.

flood_start(Burst) ->
    Pid = spawn(fun() -> register(sbx_bench_flood, self()), flood_loop(0, Burst) end),
    {ok, Pid}.

%% Sends to itself and receives: two trace events a round, in bursts of Burst rounds
%% with a 1 ms pause after each (so that the producer leaves the rest of the pipeline some
%% CPU on a small machine, while producing more events than a trace carries).
flood_loop(N, Burst) ->
    self() ! N,
    receive _ -> ok end,
    case N rem Burst of
        0 -> put(count, N), receive after 1 -> ok end;
        _ -> ok
    end,
    flood_loop(N + 1, Burst).

flood_count() ->
    receive after 0 -> ok end,
    {dictionary, D} = process_info(flood_pid(), dictionary),
    proplists:get_value(count, D, 0).

flood_pid() ->
    case whereis(sbx_bench_flood) of
        undefined -> error(no_flood);
        P -> P
    end.
