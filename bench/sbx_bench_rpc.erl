%% bench/rpc: sandboxd's erpc path against plain BEAM anchors, and sandboxd's memory
%% with many connected peers. Run by bench/rpc as `erl ... -run sbx_bench_rpc main`.
%%
%% Targets, all called with erpc:call from this (the caller) node:
%%   sandboxd          sandbox:ping/0 on a freshly started priv/sandboxd
%%   beam(registered)  sbx_bench_anchor:ping/0 on a plain BEAM peer: gen_server:call to a
%%                     registered process answering pong (the equivalent call)
%%   beam(plain)       sbx_bench_anchor:plain/0 on the same peer: pong with no hop
%% Every answer must be pong; anything else is counted and reported as a problem.
%%
%% Phases: throughput (?CALLERS caller processes, interleaved timed rounds), sequential
%% latency (interleaved chunks, one process), memory idle, memory with N real erl peer
%% nodes connected, memory after they leave. Exit status 0 only if nothing went wrong.
%%
%% Environment (for quick runs): BENCH_ROUND_MS (default 2000), BENCH_ROUNDS (5),
%% BENCH_LAT_CALLS (10000), BENCH_PEERS (100), BENCH_PEER_BATCH (10),
%% SBX_BENCH_PIDFILE (where sandboxd's OS pid is written for the wrapper's cleanup).
-module(sbx_bench_rpc).

-export([main/0]).

-define(CALLERS, 50).
-define(CALL_TIMEOUT, 10000).
-define(MAX_BAD, 10).
-define(WARMUP_MS, 500).
-define(LAT_WARMUP, 500).
-define(LAT_CHUNKS, 10).
-define(PEER_ARGS, ["+S", "1", "+SDio", "1", "+SDcpu", "1", "+A", "1",
                    "-mode", "interactive"]).
-define(WATCHDOG_MS, 540000).
-define(TIMED_OUT, {error, {erpc, timeout}}).

%% Entry point. The bench runs in its own process so a crash or a hang still ends in
%% cleanup (peers and sandboxd stopped) and a non-zero exit status.
main() ->
    sbx_bench_lib:guarded_main(fun run/0, ?WATCHDOG_MS, fun() -> ok end).

run() ->
    put(problems, []),
    RoundMs = sbx_bench_lib:env_int("BENCH_ROUND_MS", 2000),
    Rounds = sbx_bench_lib:env_int("BENCH_ROUNDS", 5),
    LatCalls = sbx_bench_lib:env_int("BENCH_LAT_CALLS", 10000),
    NPeers = sbx_bench_lib:env_int("BENCH_PEERS", 100),
    Batch = sbx_bench_lib:env_int("BENCH_PEER_BATCH", 10),

    Sbx = start_sandboxd(),
    #{node := SNode, os_pid := SPid} = Sbx,
    sbx_bench_lib:write_pidfile(SPid),
    #{version := Vsn} = sbx_test_util:info(Sbx),
    io:format("sandboxd ~s  node ~s  os pid ~b~n", [Vsn, SNode, SPid]),
    io:format("caller node ~s  OTP ~s  ERTS ~s  schedulers ~b  logical cpus ~p~n",
              [node(), erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online),
               erlang:system_info(logical_processors_available)]),
    Idle = mem(Sbx),

    {APeer, ANode} = sbx_test_util:start_peer("sbx_bench_anchor", tls_erl_args()),
    load_anchor(ANode),
    io:format("anchor node ~s  (plain erl peer, default flags, sbx_bench_anchor loaded)~n",
              [ANode]),
    Targets = [{sandboxd, "sandboxd", SNode, sandbox, ping},
               {registered, "beam(registered)", ANode, sbx_bench_anchor, ping},
               {plain, "beam(plain)", ANode, sbx_bench_anchor, plain}],
    [first_call(T) || T <- Targets],

    Tput = throughput_phase(Targets, Rounds, RoundMs),
    Lat = latency_phase(Targets, LatCalls),
    summary(Tput, Lat),

    AfterLoad = mem(Sbx),
    AnchorKb = sbx_bench_lib:status_kb(sbx_test_util:peer_os_pid(APeer), "VmRSS"),
    sbx_test_util:stop_peer(APeer),
    io:format("~n== memory (sandboxd os pid ~b)~n", [SPid]),
    print_mem("RSS idle, fresh", Idle),
    print_mem("RSS idle, after the rpc load", AfterLoad),
    io:format("  for scale: the anchor BEAM node (default flags) VmRSS ~s~n", [sbx_bench_lib:kb(AnchorKb)]),

    peers_phase(Sbx, NPeers, Batch, AfterLoad),
    final_check(Sbx),
    case lists:reverse(get(problems)) of
        [] -> io:format("~nOK: every answer was pong; no problems seen~n"), ok;
        Ps -> {failed, Ps}
    end.

%% ---- TLS (bench/rpc-tls) ----------------------------------------------------------
%% With BENCH_TLS_CONF (an ssl_dist optfile; this caller node then runs inet_tls too),
%% sandboxd, the anchor and the peers all speak distribution over TLS.

tls_conf() -> os:getenv("BENCH_TLS_CONF", "").

tls_erl_args() ->
    case tls_conf() of
        "" -> [];
        C -> ["-proto_dist", "inet_tls", "-ssl_dist_optfile", C]
    end.

start_sandboxd() ->
    SName = sbx_test_util:unique("sbx_bench_"),
    case tls_conf() of
        "" -> sbx_test_util:start(#{sname => SName});
        C ->
            S = #{node := N} = sbx_test_util:start(
                                 #{sname => SName, wait => false,
                                   args => ["--proto-dist", "inet_tls", "--ssl-dist-optfile", C]}),
            ok = sbx_test_util:wait_until(fun() -> net_adm:ping(N) =:= pong end, 15000),
            io:format("distribution over TLS (optfile ~s)~n", [C]),
            S
    end.

%% ---- anchor ---------------------------------------------------------------------

load_anchor(ANode) ->
    {Mod, Bin, File} = code:get_object_code(sbx_bench_anchor),
    {module, Mod} = erpc:call(ANode, code, load_binary, [Mod, File, Bin]),
    ok = erpc:call(ANode, sbx_bench_anchor, start, []).

first_call({_, Label, Node, M, F}) ->
    case call(Node, M, F) of
        pong -> ok;
        Other -> error({first_call_not_pong, Label, Other})
    end.

%% ---- throughput -----------------------------------------------------------------

throughput_phase(Targets, Rounds, RoundMs) ->
    io:format("~n== throughput: ~b concurrent caller processes, erpc:call, ~b interleaved "
              "rounds x ~b ms per target (after a ~b ms warm-up each)~n",
              [?CALLERS, Rounds, RoundMs, ?WARMUP_MS]),
    [note_hang(T, tput_round(T, ?WARMUP_MS)) || T <- Targets],
    Runs = [{element(1, T), note_hang(T, tput_round(T, RoundMs))}
            || R <- lists:seq(0, Rounds - 1), T <- rotate(Targets, R), not hung(T)],
    maps:from_list([tput_report(T, [Res || {K, Res} <- Runs, K =:= element(1, T)])
                    || T <- Targets]).

tput_report({Key, Label, _, _, _}, Results) ->
    Ok = lists:sum([O || {O, _, _, _} <- Results]),
    Bad = lists:sum([B || {_, B, _, _} <- Results]),
    Secs = lists:sum([native_s(E) || {_, _, _, E} <- Results]),
    Rate = case Secs > 0 of
               true -> Ok / Secs;
               false -> 0
           end,
    PerRound = [io_lib:format("~b", [round(O / native_s(E))]) || {O, _, _, E} <- Results],
    io:format("  ~-17s ~8b calls/s   rounds: ~s   calls ~b, not pong ~b~n",
              [Label, round(Rate), lists:join(" ", PerRound), Ok, Bad]),
    bad_answers(Label, "throughput", Bad, [F || {_, _, F, _} <- Results]),
    {Key, Rate}.

%% One timed round: ?CALLERS processes call in a loop until the deadline. The clock
%% runs from the go signal until the last caller has reported.
tput_round({_, _, Node, M, F}, Ms) ->
    Self = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() ->
                               receive {Go, Deadline} -> ok end,
                               Self ! {Go, self(), tput_loop(Node, M, F, Deadline, 0, 0, none)}
                       end)
            || _ <- lists:seq(1, ?CALLERS)],
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(Ms, millisecond, native),
    [P ! {Go, Deadline} || P <- Pids],
    Rs = [receive {Go, P, R} -> R end || P <- Pids],
    T1 = erlang:monotonic_time(),
    {lists:sum([O || {O, _, _} <- Rs]), lists:sum([B || {_, B, _} <- Rs]),
     first_of([Fb || {_, _, Fb} <- Rs]), T1 - T0}.

tput_loop(Node, M, F, Deadline, Ok, Bad, First) ->
    case Bad >= ?MAX_BAD orelse erlang:monotonic_time() >= Deadline of
        true ->
            {Ok, Bad, First};
        false ->
            case call(Node, M, F) of
                pong -> tput_loop(Node, M, F, Deadline, Ok + 1, Bad, First);
                ?TIMED_OUT = T -> {Ok, Bad + 1, first(First, T)};
                Other -> tput_loop(Node, M, F, Deadline, Ok, Bad + 1, first(First, Other))
            end
    end.

%% A target that let a call time out is not called again (in this phase or later
%% ones), so a hung target costs one timeout, not one per call.
note_hang(T, Result) ->
    case lists:member(?TIMED_OUT, tuple_to_list(Result)) of
        true ->
            put({hung, element(1, T)}, true),
            sbx_bench_lib:problem("~s: an erpc:call got no answer within ~b ms; not calling it again",
                    [element(2, T), ?CALL_TIMEOUT]);
        false ->
            ok
    end,
    Result.

hung(T) -> get({hung, element(1, T)}) =:= true.

%% ---- latency --------------------------------------------------------------------

latency_phase(Targets, Calls) ->
    Chunk = max(1, Calls div ?LAT_CHUNKS),
    io:format("~n== sequential latency: ~b erpc:calls per target from one process, in ~b "
              "interleaved chunks of ~b (after ~b warm-up calls each)~n",
              [Chunk * ?LAT_CHUNKS, ?LAT_CHUNKS, Chunk, ?LAT_WARMUP]),
    [note_hang(T, lat_run(T, ?LAT_WARMUP)) || T <- Targets, not hung(T)],
    Runs = [{element(1, T), note_hang(T, lat_run(T, Chunk))}
            || R <- lists:seq(0, ?LAT_CHUNKS - 1), T <- rotate(Targets, R), not hung(T)],
    maps:from_list([lat_report(T, [Res || {K, Res} <- Runs, K =:= element(1, T)])
                    || T <- Targets]).

lat_report({Key, Label, _, _, _}, Results) ->
    Samples = list_to_tuple(lists:sort(lists:append([S || {S, _, _} <- Results]))),
    Bad = lists:sum([B || {_, B, _} <- Results]),
    N = tuple_size(Samples),
    bad_answers(Label, "latency", Bad, [F || {_, _, F} <- Results]),
    case N of
        0 ->
            io:format("  ~-17s no successful calls~n", [Label]),
            {Key, undefined};
        _ ->
            Us = fun(P) -> native_us(element(rank(P, N), Samples)) end,
            Mean = native_us(lists:sum(tuple_to_list(Samples))) / N,
            St = #{p50 => Us(50), p99 => Us(99)},
            io:format("  ~-17s p50 ~7.1f us   p90 ~7.1f   p99 ~7.1f   p99.9 ~7.1f   "
                      "mean ~7.1f   max ~8.1f   (n ~b, not pong ~b)~n",
                      [Label, Us(50), Us(90), Us(99), Us(99.9), Mean,
                       native_us(element(N, Samples)), N, Bad]),
            {Key, St}
    end.

lat_run({_, _, Node, M, F}, N) -> lat_loop(Node, M, F, N, [], 0, none).

lat_loop(_Node, _M, _F, N, Acc, Bad, First) when N =< 0; Bad >= ?MAX_BAD ->
    {Acc, Bad, First};
lat_loop(Node, M, F, N, Acc, Bad, First) ->
    T0 = erlang:monotonic_time(),
    R = call(Node, M, F),
    T1 = erlang:monotonic_time(),
    case R of
        pong -> lat_loop(Node, M, F, N - 1, [T1 - T0 | Acc], Bad, First);
        ?TIMED_OUT -> {Acc, Bad + 1, first(First, R)};
        Other -> lat_loop(Node, M, F, N - 1, Acc, Bad + 1, first(First, Other))
    end.

%% Nearest-rank percentile index.
rank(P, N) -> max(1, min(N, ceil(P * N / 100))).

%% ---- summary --------------------------------------------------------------------

summary(Tput, Lat) ->
    io:format("~n== results: sandboxd vs the BEAM anchors (same machine, same run, "
              "interleaved)~n"),
    #{sandboxd := TS, registered := TR, plain := TP} = Tput,
    io:format("throughput calls/s: sandboxd ~b  beam(registered) ~b  beam(plain) ~b~n",
              [round(TS), round(TR), round(TP)]),
    io:format("  ratio sandboxd/beam(registered) ~s  sandboxd/beam(plain) ~s"
              "   (higher is better)~n", [ratio(TS, TR), ratio(TS, TP)]),
    [lat_line(Lat, P) || P <- [p50, p99]],
    ok.

lat_line(#{sandboxd := S, registered := R, plain := P}, Key) ->
    V = fun(#{} = M) -> maps:get(Key, M); (undefined) -> undefined end,
    io:format("latency ~s us: sandboxd ~s  beam(registered) ~s  beam(plain) ~s~n",
              [Key, us(V(S)), us(V(R)), us(V(P))]),
    io:format("  ratio sandboxd/beam(registered) ~s  sandboxd/beam(plain) ~s"
              "   (lower is better)~n", [ratio(V(S), V(R)), ratio(V(S), V(P))]).

ratio(A, B) when is_number(A), is_number(B), B > 0 -> io_lib:format("~.2f", [A / B]);
ratio(_, _) -> "n/a".

us(X) when is_number(X) -> io_lib:format("~.1f", [X]);
us(_) -> "n/a".

%% ---- peers ----------------------------------------------------------------------

peers_phase(_Sbx, 0, _Batch, _Before) ->
    ok;
peers_phase(#{node := SNode} = Sbx, N, Batch, Before) ->
    io:format("~n== ~b peer nodes (erl ~s), started in parallel batches of ~b; each "
              "connects with one erpc:call ping~n",
              [N, lists:join(" ", ?PEER_ARGS), Batch]),
    T0 = erlang:monotonic_time(millisecond),
    Started = lists:append([pmap(fun(_) -> start_peer(SNode) end, B)
                            || B <- chunks(lists:seq(1, N), Batch)]),
    T1 = erlang:monotonic_time(millisecond),
    Peers = [P || {ok, P, _} <- Started],
    Pong = length([x || {ok, _, pong} <- Started]),
    io:format("  started ~b of ~b peers in ~.1f s; ~b answered pong~n",
              [length(Peers), N, (T1 - T0) / 1000, Pong]),
    [sbx_bench_lib:problem("peer start failed: ~0p", [E]) || {error, E} <- Started],
    [sbx_bench_lib:problem("peer's ping of sandboxd answered ~0p", [R])
     || {ok, _, R} <- Started, R =/= pong],
    With = mem(Sbx),
    #{connections := Conns} = With,
    print_mem(io_lib:format("RSS with ~b peers connected", [length(Peers)]), With),
    case {maps:get(vmrss_kb, With), maps:get(vmrss_kb, Before)} of
        {W, B0} when is_integer(W), is_integer(B0), Peers =/= [] ->
            io:format("  growth over idle: ~s total, ~.1f KiB per connected peer~n",
                      [sbx_bench_lib:kb(W - B0), (W - B0) / length(Peers)]);
        _ -> ok
    end,
    case Conns >= N of
        true -> io:format("  connections ~b >= ~b: ok~n", [Conns, N]);
        false -> sbx_bench_lib:problem("connections is ~b with ~b peers started, expected >= ~b",
                         [Conns, length(Peers), N])
    end,
    T2 = erlang:monotonic_time(millisecond),
    pmap(fun sbx_test_util:stop_peer/1, Peers),
    Base = maps:get(connections, Before),
    Settled = sbx_test_util:wait_until(
                fun() -> maps:get(connections, sbx_test_util:info(Sbx)) =< Base end, 30000),
    T3 = erlang:monotonic_time(millisecond),
    After = mem(Sbx),
    io:format("  stopped the peers in ~.2f s~n", [(T3 - T2) / 1000]),
    print_mem("RSS after the peers left", After),
    case Settled of
        ok -> ok;
        _ -> sbx_bench_lib:problem("connections still ~b 30 s after all peers stopped (was ~b before)",
                     [maps:get(connections, After), Base])
    end.

start_peer(SNode) ->
    try
        {Peer, _Node} = sbx_test_util:start_peer("sbx_bench_p", ?PEER_ARGS ++ tls_erl_args()),
        R = try peer:call(Peer, erpc, call, [SNode, sandbox, ping, [], ?CALL_TIMEOUT],
                          ?CALL_TIMEOUT + 5000)
            catch C:E -> {C, E}
            end,
        {ok, Peer, R}
    catch Class:Reason -> {error, {Class, Reason}}
    end.

%% ---- memory ---------------------------------------------------------------------

mem(#{os_pid := OsPid} = Sbx) ->
    case sbx_test_util:info(Sbx) of
        #{memory_bytes := B, connections := C, processes := P} ->
            #{info_bytes => B, connections => C, processes => P,
              vmrss_kb => sbx_bench_lib:status_kb(OsPid, "VmRSS"), vmhwm_kb => sbx_bench_lib:status_kb(OsPid, "VmHWM")};
        Other ->
            error({sandboxd_info_failed, Other})
    end.

print_mem(What, #{info_bytes := B, connections := C, processes := P, vmrss_kb := Rss,
                  vmhwm_kb := Hwm}) ->
    io:format("  ~-32s ~s   (info memory_bytes ~b; /proc VmRSS ~s, VmHWM ~s; "
              "connections ~b, processes ~b)~n",
              [What, sbx_bench_lib:kb(B div 1024), B, sbx_bench_lib:kb(Rss), sbx_bench_lib:kb(Hwm), C, P]).



%% ---- end ------------------------------------------------------------------------

%% sandboxd must still be running and answering after everything.
final_check(#{node := SNode, os_pid := OsPid, port := Port} = Sbx) ->
    receive
        {Port, {exit_status, St}} -> sbx_bench_lib:problem("sandboxd exited with status ~b", [St])
    after 0 -> ok
    end,
    case file:read_file_info("/proc/" ++ integer_to_list(OsPid)) of
        {ok, _} -> ok;
        {error, _} -> sbx_bench_lib:problem("sandboxd (os pid ~b) is gone", [OsPid])
    end,
    case call(SNode, sandbox, ping) of
        pong -> ok;
        Other -> sbx_bench_lib:problem("final ping of sandboxd answered ~0p", [Other])
    end,
    Log = sbx_test_util:log_text(Sbx),
    Bad = [L || L <- binary:split(Log, <<"\n">>, [global]),
                binary:match(L, [<<"level=error">>, <<"level=warn">>]) =/= nomatch],
    case Bad of
        [] -> ok;
        _ -> io:format("~nsandboxd logged ~b warning/error line(s); first: ~s~n",
                       [length(Bad), hd(Bad)])
    end,
    io:format("sandboxd log: ~s~n", [maps:get(log, Sbx)]).

%% ---- helpers --------------------------------------------------------------------

call(Node, M, F) ->
    try erpc:call(Node, M, F, [], ?CALL_TIMEOUT)
    catch Class:Reason -> {Class, Reason}
    end.

bad_answers(_Label, _Phase, 0, _Firsts) ->
    ok;
bad_answers(Label, Phase, Bad, Firsts) ->
    sbx_bench_lib:problem("~s: ~b answer(s) in the ~s phase were not pong; first: ~0p",
            [Label, Bad, Phase, first_of(Firsts)]).


first(none, X) -> X;
first(F, _) -> F.

first_of(L) ->
    case [X || X <- L, X =/= none] of
        [] -> none;
        [X | _] -> X
    end.

%% The round-robin order is shifted each round so no target always goes first.
rotate(L, N) ->
    K = N rem length(L),
    {A, B} = lists:split(K, L),
    B ++ A.

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) ->
    {A, B} = lists:split(N, L),
    [A | chunks(B, N)].

pmap(F, L) ->
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                spawn_link(fun() -> Self ! {Ref, F(X)} end),
                Ref
            end || X <- L],
    [receive {Ref, R} -> R end || Ref <- Refs].

native_s(D) -> erlang:convert_time_unit(D, native, nanosecond) / 1.0e9.

native_us(D) -> erlang:convert_time_unit(D, native, nanosecond) / 1000.


