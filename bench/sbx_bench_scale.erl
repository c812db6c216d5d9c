%% bench/scale: sandboxd with 1,000 process sandboxes. Run by bench/scale as
%% `erl ... -run sbx_bench_scale main`.
%%
%% One fresh sandboxd (fresh --state-dir, --shutdown-policy destroy so an aborted run
%% does not leave its sleeps behind) and, as the anchor, one plain BEAM peer node that
%% starts the same `sleep 1000` processes with open_port({spawn_executable, ...}) from a
%% registered process (bench/sbx_bench_scale_anchor.erl). From this (the caller) node:
%%
%%   1. baseline: sandboxd's VmRSS / VmHWM, info() memory_bytes, open fds, children,
%%      `sleep 1000` processes on the machine, per-sandbox cgroup directories
%%   2. N sequential creates on each target, one erpc:call at a time, each timed; the two
%%      targets alternate in chunks (order swapped every chunk) so drift hits both alike;
%%      a side process pings sandboxd every 20 ms to see whether creates stall its loop
%%   3. list() of the N sandboxes, repeated; reply size (term_to_binary and on the wire)
%%   4. the same figures as in 1 with N idle sandboxes (and the anchor node's, for scale)
%%   5. N sequential destroys, each timed (pinged as in 2)
%%   6. the figures again: fds must be back to the baseline and no `sleep 1000` of
%%      sandboxd's may be left (asserted); the anchor's ports are closed, its sleeps killed
%%   7. optional concurrent variant: M creates from W caller processes, list(), M
%%      destroys from W processes; the same assertions
%% Targets are printed next to the figures, not asserted. Exit status 0 only if every
%% reply was as expected and the assertions held.
%%
%% Environment: BENCH_SANDBOXES (1000), BENCH_CHUNK (100), BENCH_LIST_REPS (20),
%% BENCH_CONC_WORKERS (8; 0 skips the concurrent variant), BENCH_CONC_SANDBOXES (200),
%% BENCH_STATE_DIR (sandboxd's --state-dir; must not exist yet), SBX_BENCH_PIDFILE and
%% SBX_BENCH_SLEEP_PIDFILE (for the wrapper's cleanup if this node dies).
-module(sbx_bench_scale).

-export([main/0]).

-include_lib("kernel/include/file.hrl").

-define(CALL_TIMEOUT, 30000).
-define(MAX_BAD, 10).
-define(PING_EVERY_MS, 20).
-define(SETTLE_MS, 5000).
-define(WATCHDOG_MS, 540000).
-define(PIDS, sbx_bench_scale_pids).
-define(SLEEP_ARGV, [<<"sleep">>, <<"1000">>]).
%% Targets (printed, not asserted).
-define(T_CREATE_MS, 20).
-define(T_LIST_MS, 10).
-define(T_RSS_KB, 65536).

main() ->
    ets:new(?PIDS, [named_table, public, set]),
    sbx_bench_lib:guarded_main(fun run/0, 1000 * sbx_bench_lib:env_int("BENCH_WATCHDOG_S", ?WATCHDOG_MS div 1000),
                               fun() -> catch kill_leftovers(), catch node_cgroups_left() end).

run() ->
    put(problems, []),
    N = sbx_bench_lib:env_int("BENCH_SANDBOXES", 1000),
    Chunk = max(1, sbx_bench_lib:env_int("BENCH_CHUNK", 100)),
    ListReps = max(1, sbx_bench_lib:env_int("BENCH_LIST_REPS", 20)),
    ConcW = sbx_bench_lib:env_int("BENCH_CONC_WORKERS", 8),
    ConcN = sbx_bench_lib:env_int("BENCH_CONC_SANDBOXES", 200),
    StateDir = state_dir(),

    SName = sbx_test_util:unique("sbx_scale_"),
    Sbx = sbx_test_util:start(#{sname => SName,
                                args => ["--state-dir", StateDir,
                                         "--shutdown-policy", "destroy"]
                                        ++ sbx_bench_lib:uid_range_args()}),
    #{node := SNode, os_pid := SPid} = Sbx,
    sbx_bench_lib:write_pidfile(SPid),
    ets:insert(?PIDS, {node, SNode}),
    #{version := Vsn} = sbx_test_util:info(Sbx),
    io:format("sandboxd ~s  node ~s  os pid ~b  state dir ~s  max open files ~s~n",
              [Vsn, SNode, SPid, StateDir, max_fds(SPid)]),
    io:format("binary ~s (~s)~n", [sbx_test_util:bin(), bin_stamp(sbx_test_util:bin())]),
    io:format("caller node ~s  OTP ~s  ERTS ~s  schedulers ~b  logical cpus ~p  "
              "load average ~s~n",
              [node(), erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online),
               erlang:system_info(logical_processors_available), loadavg()]),

    {APeer, ANode} = sbx_test_util:start_peer("sbx_bench_scale_anchor"),
    load_anchor(ANode),
    AOsPid = sbx_test_util:peer_os_pid(APeer),
    io:format("anchor node ~s  os pid ~b  (plain erl peer, default flags; a registered "
              "process opens one port per create)~n", [ANode, AOsPid]),

    io:format("~n== baseline (sandboxd idle, the caller connected)~n"),
    Base = snapshot(Sbx),
    print_snapshot("before", Base),

    %% ---- sequential creates, interleaved with the anchor's
    io:format("~n== ~b sequential creates per target (`sleep 1000`), one erpc:call at a "
              "time, alternating chunks of ~b~n", [N, Chunk]),
    Pinger = pinger_start(SNode),
    TC0 = erlang:monotonic_time(),
    {SbxCreates, AnchorCreates} = create_phase(SNode, ANode, N, Chunk),
    TC1 = erlang:monotonic_time(),
    PingC = pinger_take(Pinger),
    io:format("  phase took ~.1f s~n", [native_s(TC1 - TC0)]),
    SbxC = report_times("sandboxd create", [T || {_, T, _} <- SbxCreates]),
    AncC = report_times("anchor create", [T || {_, T, _} <- AnchorCreates]),
    by_chunk("sandboxd create", [T || {_, T, _} <- SbxCreates], Chunk),
    by_chunk("anchor create", [T || {_, T, _} <- AnchorCreates], Chunk),
    report_times("sandboxd ping during creates", PingC),
    Refs = [R || {_, _, R} <- SbxCreates],
    check_created(Sbx, Refs, N),
    check_workload_fds(Refs),

    %% ---- list()
    io:format("~n== list() of the ~b sandboxes, ~b times~n", [length(Refs), ListReps]),
    List = list_phase(SNode, ANode, length(Refs), ListReps),

    %% ---- idle with N sandboxes
    timer:sleep(1000),
    io:format("~n== with ~b idle sandboxes (1 s after the last list())~n", [length(Refs)]),
    With = snapshot(Sbx),
    print_snapshot("with sandboxes", With),
    print_growth(Base, With, length(Refs)),
    ARss = sbx_bench_lib:status_kb(AOsPid, "VmRSS"),
    AFds = length(fds(AOsPid)),
    io:format("  for scale: the anchor node with ~b ports: VmRSS ~s, ~b open fds~n",
              [erpc:call(ANode, sbx_bench_scale_anchor, count, []), sbx_bench_lib:kb(ARss), AFds]),

    %% ---- sequential destroys
    io:format("~n== ~b sequential destroys~n", [length(Refs)]),
    pinger_take(Pinger),
    TD0 = erlang:monotonic_time(),
    Destroys = destroy_phase(SNode, [Id || {Id, _, _} <- SbxCreates], 1),
    TD1 = erlang:monotonic_time(),
    PingD = pinger_take(Pinger),
    pinger_stop(Pinger),
    io:format("  phase took ~.1f s~n", [native_s(TD1 - TD0)]),
    SbxD = report_times("sandboxd destroy", Destroys),
    by_chunk("sandboxd destroy", Destroys, Chunk),
    report_times("sandboxd ping during destroys", PingD),
    io:format("~n== after destroying all~n"),
    After = check_released("after destroy", Sbx, Base, Refs),

    %% ---- the anchor's teardown
    AStop = erpc:call(ANode, sbx_bench_scale_anchor, stop_all, [], 60000),
    io:format("~nanchor teardown (close ports, SIGTERM the sleeps, wait): ~0p~n", [AStop]),
    case AStop of
        {ok, #{left := 0}} -> ok;
        _ -> sbx_bench_lib:problem("the anchor's teardown left sleeps: ~0p", [AStop])
    end,
    sbx_test_util:stop_peer(APeer),

    %% ---- optional concurrent variant
    Conc = conc_phase(Sbx, Base, ConcW, ConcN),

    summary(#{n => length(Refs), sbx_c => SbxC, anc_c => AncC, list => List, with => With,
              base => Base, aft => After, sbx_d => SbxD, conc => Conc}),
    final_check(case Conc of #{sbx := Sbx2} -> Sbx2; _ -> Sbx end),
    io:format("load average at the end ~s~n", [loadavg()]),
    case lists:reverse(get(problems)) of
        [] -> io:format("~nOK: every reply as expected; fds back to the baseline; no "
                        "sleep left~n"), ok;
        Ps -> {failed, Ps}
    end.

%% ---- anchor ---------------------------------------------------------------------

load_anchor(ANode) ->
    {Mod, Bin, File} = code:get_object_code(sbx_bench_scale_anchor),
    {module, Mod} = erpc:call(ANode, code, load_binary, [Mod, File, Bin]),
    ok = erpc:call(ANode, sbx_bench_scale_anchor, start, []).

%% ---- creates --------------------------------------------------------------------

%% Returns {[{Id, Native, OsPid}], [{I, Native, OsPid}]} for the creates that worked.
create_phase(SNode, ANode, N, Chunk) ->
    Chunks = chunks(lists:seq(1, N), Chunk),
    {_, S, A} =
        lists:foldl(
          fun(Is, {K, SAcc, AAcc}) ->
                  Order = case K rem 2 of 0 -> [sbx, anchor]; 1 -> [anchor, sbx] end,
                  {S1, A1} = lists:foldl(
                               fun(sbx, {Sa, Aa}) -> {[create_chunk(sbx, SNode, Is) | Sa], Aa};
                                  (anchor, {Sa, Aa}) -> {Sa, [create_chunk(anchor, ANode, Is) | Aa]}
                               end, {SAcc, AAcc}, Order),
                  write_sleep_pidfile(),
                  {K + 1, S1, A1}
          end, {0, [], []}, Chunks),
    {lists:append(lists:reverse(S)), lists:append(lists:reverse(A))}.

create_chunk(Which, Node, Is) ->
    case get({stopped, Which}) of
        true -> [];
        _ -> lists:reverse(lists:foldl(fun(I, Acc) -> create_one(Which, Node, I, Acc) end,
                                       [], Is))
    end.

create_one(Which, Node, I, Acc) ->
    case get({stopped, Which}) of
        true -> Acc;
        _ ->
            Id = sbx_id("s", I),
            {T, R} = case Which of
                         sbx -> timed(Node, sandbox, create,
                                      [Id, process, #{cmd => ?SLEEP_ARGV}]);
                         anchor -> timed(Node, sbx_bench_scale_anchor, create, [I])
                     end,
            case {Which, R} of
                {sbx, {ok, #{id := Id, status := running, ref := Ref}}} when is_integer(Ref) ->
                    ets:insert(?PIDS, {Ref}),
                    [{Id, T, Ref} | Acc];
                {anchor, {ok, OsPid}} when is_integer(OsPid) ->
                    ets:insert(?PIDS, {OsPid}),
                    [{I, T, OsPid} | Acc];
                _ ->
                    bad(Which, io_lib:format("create #~b (id ~s) replied ~0P after ~.1f ms",
                                             [I, Id, R, 30, native_ms(T)])),
                    Acc
            end
    end.

%% Counts a wrong reply; after ?MAX_BAD of them that target gets no more calls.
bad(Which, Text) ->
    N = case get({bad, Which}) of undefined -> 1; B -> B + 1 end,
    put({bad, Which}, N),
    sbx_bench_lib:problem("~s: ~s", [Which, Text]),
    case N >= ?MAX_BAD of
        true ->
            put({stopped, Which}, true),
            sbx_bench_lib:problem("~s: ~b wrong replies; no more calls to it in this phase", [Which, N]);
        false -> ok
    end.

check_created(Sbx, Refs, N) ->
    Procs = procs(),
    Alive = [R || R <- Refs, is_sleep(R, Procs)],
    #{sandboxes := Count} = sbx_test_util:info(Sbx),
    io:format("  sandboxd: ~b of ~b creates ok; ~b of their pids are running `sleep 1000`; "
              "info() sandboxes ~b~n", [length(Refs), N, length(Alive), Count]),
    [sbx_bench_lib:problem("only ~b of sandboxd's ~b created pids run `sleep 1000`",
             [length(Alive), length(Refs)]) || length(Alive) =/= length(Refs)],
    [sbx_bench_lib:problem("info() says ~b sandboxes after ~b creates", [Count, length(Refs)])
     || Count =/= length(Refs)],
    ok.

%% The processes sandboxd started should hold their stdio and nothing else of sandboxd's.
%% Printed as a warning (not one of the asserted checks).
check_workload_fds(Refs) ->
    Counts = [{length(fds(R)), R} || R <- Refs],
    Hist = lists:foldl(fun({C, _}, M) -> maps:update_with(C, fun(X) -> X + 1 end, 1, M) end,
                       #{}, Counts),
    io:format("  open fds of the sandbox processes (fds: how many): ~s~n",
              [lists:join("  ", [io_lib:format("~b: ~b", [C, K])
                                 || {C, K} <- lists:sort(maps:to_list(Hist))])]),
    case [X || {C, _} = X <- Counts, C > 3] of
        [] -> ok;
        More ->
            {C, R} = hd(More),
            Targets = [io_lib:format("~s -> ~s", [F, T])
                       || {F, T} <- lists:sort(fun({A, _}, {B, _}) ->
                                                       list_to_integer(A) =< list_to_integer(B)
                                               end, fds(R))],
            io:format("  WARN: ~b sandbox process(es) hold more than their 3 stdio fds, the "
                      "first being sandbox #~b (pid ~b, ~b fds: ~s)~n",
                      [length(More), index_of(R, Refs), R, C, lists:join(", ", Targets)])
    end.

index_of(X, L) -> length(lists:takewhile(fun(Y) -> Y =/= X end, L)) + 1.

%% Medians per chunk, in call order: shows whether a call gets slower as sandboxes add up.
by_chunk(_Label, [], _Chunk) -> ok;
by_chunk(Label, Samples, Chunk) ->
    Meds = [begin
                S = lists:sort(C),
                native_ms(lists:nth(max(1, ceil(length(S) / 2)), S))
            end || C <- chunks(Samples, Chunk)],
    io:format("    ~s median per ~b, in call order: ~s~n",
              [Label, Chunk, lists:join(" ", [io_lib:format("~.1f", [M]) || M <- Meds])]).

%% ---- list -----------------------------------------------------------------------

list_phase(SNode, ANode, N, Reps) ->
    Rx0 = dist_recv_oct(SNode),
    {T1, L} = timed(SNode, sandbox, list, []),
    Rx1 = dist_recv_oct(SNode),
    Wire = case {Rx0, Rx1} of
               {A, B} when is_integer(A), is_integer(B) -> B - A;
               _ -> undefined
           end,
    Ok = case L of
             _ when is_list(L), length(L) =:= N ->
                 Ids = lists:sort([maps:get(id, M) || M <- L]),
                 Want = lists:sort([sbx_id("s", I) || I <- lists:seq(1, N)]),
                 [sbx_bench_lib:problem("list() ids differ from the ones created", []) || Ids =/= Want],
                 true;
             _ when is_list(L) ->
                 sbx_bench_lib:problem("list() returned ~b sandboxes, expected ~b", [length(L), N]),
                 true;
             _ ->
                 sbx_bench_lib:problem("list() replied ~0P", [L, 20]),
                 false
         end,
    Times = case Ok of
                true -> [T1 | [element(1, timed(SNode, sandbox, list, []))
                               || _ <- lists:seq(2, Reps)]];
                false -> []
            end,
    Ext = case is_list(L) of true -> byte_size(term_to_binary(L)); false -> 0 end,
    io:format("  reply: ~b sandboxes, ~s as term_to_binary (~b B per sandbox), ~s on the "
              "wire~n", [len(L), kib(Ext), Ext div max(1, len(L)), kib(Wire)]),
    St = report_times("list()", Times),
    %% The anchor: a BEAM node returning the same term from a registered process.
    ASt = case is_list(L) of
              true ->
                  ok = erpc:call(ANode, sbx_bench_scale_anchor, set_list, [L]),
                  ATimes = [element(1, timed(ANode, sbx_bench_scale_anchor, list, []))
                            || _ <- lists:seq(1, Reps)],
                  report_times("anchor: the same term", ATimes);
              false -> undefined
          end,
    St#{ext => Ext, wire => Wire, anchor => ASt}.

len(L) when is_list(L) -> length(L);
len(_) -> 0.

%% Bytes received on the distribution connection to Node (inet_tcp_dist), if known.
dist_recv_oct(Node) ->
    try lists:keyfind(Node, 1, erlang:system_info(dist_ctrl)) of
        {_, Port} when is_port(Port) ->
            {ok, [{recv_oct, V}]} = inet:getstat(Port, [recv_oct]),
            V;
        _ -> undefined
    catch _:_ -> undefined
    end.

%% ---- destroys -------------------------------------------------------------------

destroy_phase(_SNode, [], _I) ->
    [];
destroy_phase(SNode, [Id | Ids], I) ->
    case get({stopped, destroy}) of
        true -> [];
        _ ->
            {T, R} = timed(SNode, sandbox, destroy, [Id]),
            case R of
                ok -> [T | destroy_phase(SNode, Ids, I + 1)];
                _ ->
                    bad(destroy, io_lib:format("destroy(~s) replied ~0P after ~.1f ms",
                                               [Id, R, 30, native_ms(T)])),
                    destroy_phase(SNode, Ids, I + 1)
            end
    end.

%% After the destroys: fds back to the baseline, none of sandboxd's sleeps left, no
%% children left, no sandbox left in list()/info(). A difference seen at once is waited
%% on for ?SETTLE_MS (the figure printed says how long it took), then it is a problem.
check_released(What, Sbx, Base, Refs) ->
    #{fds := BaseFds} = Base,
    Cond = fun(S) ->
                   length(maps:get(fds, S)) =:= length(BaseFds) andalso
                       maps:get(children, S) =:= [] andalso
                       [R || R <- Refs, is_sleep(R, maps:get(procs, S))] =:= []
           end,
    S0 = snapshot(Sbx),
    T0 = erlang:monotonic_time(millisecond),
    {S1, Waited} = case Cond(S0) of
                       true -> {S0, 0};
                       false -> settle(Sbx, Cond, T0)
                   end,
    print_snapshot(What, S1),
    [io:format("  (not at once: it took ~b ms to get there)~n", [Waited])
     || Waited > 0, Cond(S1)],
    Left = [R || R <- Refs, is_sleep(R, maps:get(procs, S1))],
    NFds = length(maps:get(fds, S1)),
    case NFds - length(BaseFds) of
        0 -> io:format("  fds: ~b, the baseline: every fd released~n", [NFds]);
        D ->
            sbx_bench_lib:problem("~s: sandboxd has ~b open fds, the baseline was ~b (~+b) after "
                    "waiting ~b ms; extra: ~s", [What, NFds, length(BaseFds), D, Waited,
                                                  fd_diff(maps:get(fds, S1), BaseFds)])
    end,
    case Left of
        [] -> io:format("  none of sandboxd's ~b sleeps is left~n", [length(Refs)]);
        _ -> sbx_bench_lib:problem("~s: ~b of sandboxd's sleeps still run after ~b ms, e.g. pid ~b",
                     [What, length(Left), Waited, hd(Left)])
    end,
    [sbx_bench_lib:problem("~s: sandboxd still has ~b child process(es): ~0P",
             [What, length(C), C, 10]) || C <- [maps:get(children, S1)], C =/= []],
    #{sandboxes := NS} = S1,
    [sbx_bench_lib:problem("~s: info() still says ~b sandboxes", [What, NS]) || NS =/= 0],
    case erpc:call(maps:get(node, Sbx), sandbox, list, [], ?CALL_TIMEOUT) of
        [] -> ok;
        L -> sbx_bench_lib:problem("~s: list() still returns ~b sandboxes", [What, len(L)])
    end,
    [sbx_bench_lib:problem("~s: ~b per-sandbox cgroup dir(s) left: ~0p", [What, cg_total(CG), CG])
     || CG <- [maps:get(cgroups, S1)], cg_total(CG) > 0],
    [sbx_bench_lib:problem("~s: ~b entries left in the state dir's sandboxes/: ~0P",
             [What, length(E), E, 10]) || E <- [maps:get(state_entries, S1)], E =/= []],
    S1.

settle(Sbx, Cond, T0) ->
    timer:sleep(50),
    S = snapshot(Sbx),
    Waited = erlang:monotonic_time(millisecond) - T0,
    case Cond(S) orelse Waited >= ?SETTLE_MS of
        true -> {S, Waited};
        false -> settle(Sbx, Cond, T0)
    end.

fd_diff(Now, Base) ->
    Kind = fun(T) -> re:replace(T, "\\[[0-9]+\\]$", "", [{return, list}]) end,
    Count = fun(L) -> lists:foldl(fun({_, T}, M) -> maps:update_with(Kind(T), fun(C) -> C + 1 end, 1, M) end,
                                  #{}, L) end,
    B = Count(Base),
    Extra = [io_lib:format("~s x~b", [K, C - maps:get(K, B, 0)])
             || {K, C} <- lists:sort(maps:to_list(Count(Now))), C > maps:get(K, B, 0)],
    Missing = [io_lib:format("~s x-~b", [K, C - maps:get(K, Count(Now), 0)])
               || {K, C} <- lists:sort(maps:to_list(B)), C > maps:get(K, Count(Now), 0)],
    lists:join(", ", Extra ++ Missing).

%% ---- concurrent variant ---------------------------------------------------------

conc_phase(_Sbx, _Base, W, M) when W =< 0; M =< 0 ->
    undefined;
conc_phase(#{node := SNode} = Sbx, Base, W, M) ->
    io:format("~n== concurrent variant: ~b creates from ~b caller processes, list(), ~b "
              "destroys from ~b processes~n", [M, W, M, W]),
    Ids = [sbx_id("c", I) || I <- lists:seq(1, M)],
    Pinger = pinger_start(SNode),
    {CWall, CRes} = pmap_w(fun(Id) ->
                                   timed(SNode, sandbox, create,
                                         [Id, process, #{cmd => ?SLEEP_ARGV}])
                           end, Ids, W),
    PingSt = report_times("ping during the burst", pinger_take(Pinger)),
    pinger_stop(Pinger),
    Good = [{Id, T, Ref} || {Id, {T, {ok, #{status := running, ref := Ref}}}}
                                <- lists:zip(Ids, CRes), is_integer(Ref)],
    [ets:insert(?PIDS, {Ref}) || {_, _, Ref} <- Good],
    write_sleep_pidfile(),
    Bad = [{Id, R} || {Id, {_, R}} <- lists:zip(Ids, CRes),
                      not lists:keymember(Id, 1, Good)],
    [sbx_bench_lib:problem("concurrent create(~s) replied ~0P", [Id, R, 30])
     || {Id, R} <- lists:sublist(Bad, 5)],
    [sbx_bench_lib:problem("concurrent creates: ~b wrong replies in all", [length(Bad)]) || length(Bad) > 5],
    io:format("  creates: ~b ok in ~.2f s = ~.1f creates/s~n",
              [length(Good), native_s(CWall), length(Good) / max(1.0e-9, native_s(CWall))]),
    CSt = report_times("create, concurrent", [T || {_, T, _} <- Good]),
    {LT, L} = timed(SNode, sandbox, list, []),
    LSt = report_times("list() of all", [LT | [element(1, timed(SNode, sandbox, list, []))
                                                || _ <- lists:seq(2, 10)]]),
    [sbx_bench_lib:problem("concurrent variant: list() returned ~b, expected ~b", [len(L), length(Good)])
     || len(L) =/= length(Good)],
    timer:sleep(1000),
    Idle = snapshot(Sbx),
    print_snapshot("with the concurrent sandboxes idle", Idle),
    print_growth(Base, Idle, length(Good)),
    {Sbx2, Restart} = restart_phase(Sbx, length(Good)),
    SNode2 = maps:get(node, Sbx2),
    GoodIds = [Id || {Id, _, _} <- Good],
    {DWall, DRes} = pmap_w(fun(Id) -> timed(SNode2, sandbox, destroy, [Id]) end, GoodIds, W),
    DOk = [T || {T, ok} <- DRes],
    DBad = [{Id, R} || {Id, {_, R}} <- lists:zip(GoodIds, DRes), R =/= ok],
    [sbx_bench_lib:problem("concurrent destroy(~s) replied ~0P", [Id, R, 30])
     || {Id, R} <- lists:sublist(DBad, 5)],
    [sbx_bench_lib:problem("concurrent destroys: ~b wrong replies in all", [length(DBad)])
     || length(DBad) > 5],
    io:format("  destroys: ~b ok in ~.2f s = ~.1f destroys/s~n",
              [length(DOk), native_s(DWall), length(DOk) / max(1.0e-9, native_s(DWall))]),
    DSt = report_times("destroy, concurrent", DOk),
    After = check_released("after the concurrent destroys", Sbx2, Base,
                           [R || {_, _, R} <- Good]),
    #{create => CSt, destroy => DSt, create_wall => CWall, n => length(Good), w => W,
      aft => After, ping => PingSt, list => LSt, idle => Idle, destroy_wall => DWall,
      ndestroy => length(DOk), restart => Restart, sbx => Sbx2}.

%% SIGKILL sandboxd with N sandboxes running, start it again on the same state dir and
%% name: the time from the start to its node answering (it logs `ready` after adopting
%% the journalled sandboxes) and how many list() shows as running. BENCH_RESTART=0
%% skips it. {SandboxdNow, #{ready_ms, adopted} | undefined}.
restart_phase(Sbx, N) ->
    case sbx_bench_lib:env_int("BENCH_RESTART", 1) of
        0 -> {Sbx, undefined};
        _ -> restart(Sbx, N)
    end.

restart(#{node := SNode, os_pid := OsPid, port := Port}, N) ->
    io:format("~n== SIGKILL sandboxd with ~b sandboxes running, start it again~n", [N]),
    os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
    receive {Port, {exit_status, _}} -> ok after 10000 -> ok end,
    ok = sbx_test_util:wait_until(fun() -> net_adm:ping(SNode) =:= pang end, 10000),
    [SName, _] = string:split(atom_to_list(SNode), "@"),
    T0 = erlang:monotonic_time(),
    Sbx2 = sbx_test_util:start(#{sname => SName, wait => false,
                                 args => ["--state-dir", get(state_dir),
                                          "--shutdown-policy", "destroy"]
                                         ++ sbx_bench_lib:uid_range_args()}),
    sbx_bench_lib:write_pidfile(maps:get(os_pid, Sbx2)),
    ok = sbx_test_util:wait_until(fun() -> net_adm:ping(SNode) =:= pong end, 300000),
    ReadyMs = native_ms(erlang:monotonic_time() - T0),
    L = erpc:call(SNode, sandbox, list, [], 60000),
    Running = length([x || #{status := running} <- L]),
    io:format("  start to ready (node answers): ~.1f ms; list(): ~b sandboxes, ~b running~n",
              [ReadyMs, len(L), Running]),
    [sbx_bench_lib:problem("after the restart ~b of ~b sandboxes run", [Running, N]) || Running =/= N],
    {Sbx2, #{ready_ms => ReadyMs, adopted => Running}}.

%% Runs F over L with W worker processes; {WallNative, Results in L's order}.
pmap_w(F, L, W) ->
    Self = self(),
    Q = list_to_tuple(L),
    Next = atomics:new(1, []),
    T0 = erlang:monotonic_time(),
    Pids = [spawn_link(fun() -> Self ! {pmap_done, self(), worker(F, Q, Next, [])} end)
            || _ <- lists:seq(1, W)],
    Rs = lists:append([receive {pmap_done, P, R} -> R end || P <- Pids]),
    T1 = erlang:monotonic_time(),
    {T1 - T0, [R || {_, R} <- lists:sort(Rs)]}.

worker(F, Q, Next, Acc) ->
    I = atomics:add_get(Next, 1, 1),
    case I =< tuple_size(Q) of
        true -> worker(F, Q, Next, [{I, F(element(I, Q))} | Acc]);
        false -> Acc
    end.

%% ---- summary --------------------------------------------------------------------

summary(#{n := N, sbx_c := SC, anc_c := AC, list := L, with := With, base := Base,
          aft := Aft, sbx_d := SD, conc := Conc}) ->
    io:format("~n== summary: sandboxd with ~b process sandboxes (targets printed, not "
              "asserted; fds and leftover sleeps asserted)~n", [N]),
    io:format("  create, sequential  median ~s ms  p90 ~s  p99 ~s  max ~s   "
              "target median < ~b ms: ~s~n",
              [ms(SC, p50), ms(SC, p90), ms(SC, p99), ms(SC, max), ?T_CREATE_MS,
               met(get_v(SC, p50), fun(V) -> V < ?T_CREATE_MS end)]),
    io:format("    anchor (BEAM open_port sleep)  median ~s ms  p90 ~s  p99 ~s  max ~s~n",
              [ms(AC, p50), ms(AC, p90), ms(AC, p99), ms(AC, max)]),
    io:format("    ratio sandboxd/anchor: median ~s  p90 ~s  p99 ~s  mean ~s   "
              "(lower is better; 1.00 = as fast as a BEAM node spawning the process)~n",
              [ratio(SC, AC, p50), ratio(SC, AC, p90), ratio(SC, AC, p99),
               ratio(SC, AC, mean)]),
    io:format("  list() of ~b         median ~s ms  max ~s   reply ~s (term_to_binary), "
              "~s on the wire   target < ~b ms: ~s~n",
              [N, ms(L, p50), ms(L, max), kib(maps:get(ext, L)), kib(maps:get(wire, L)),
               ?T_LIST_MS, met(get_v(L, p50), fun(V) -> V < ?T_LIST_MS end)]),
    LA = maps:get(anchor, L),
    io:format("    anchor (BEAM node returning the same term)  median ~s ms  max ~s   "
              "ratio sandboxd/anchor: median ~s~n",
              [ms(LA, p50), ms(LA, max), ratio(L, LA, p50)]),
    #{vmrss_kb := R1, info_bytes := IB} = With,
    io:format("  RSS with ~b idle     ~s VmRSS (info memory_bytes ~s; ~s before)   "
              "target < ~b MiB: ~s~n",
              [N, sbx_bench_lib:kb(R1), sbx_bench_lib:kb(IB div 1024), sbx_bench_lib:kb(maps:get(vmrss_kb, Base)), ?T_RSS_KB div 1024,
               met(R1, fun(V) -> V < ?T_RSS_KB end)]),
    io:format("  RSS after destroy   ~s VmRSS (VmHWM ~s)~n",
              [sbx_bench_lib:kb(maps:get(vmrss_kb, Aft)), sbx_bench_lib:kb(maps:get(vmhwm_kb, Aft))]),
    F0 = length(maps:get(fds, Base)),
    F1 = length(maps:get(fds, With)),
    F2 = length(maps:get(fds, Aft)),
    io:format("  open fds            ~b before, ~b with ~b (~.1f per sandbox), ~b after   "
              "target every fd released: ~s~n",
              [F0, F1, N, (F1 - F0) / max(1, N), F2, met(F2, fun(V) -> V =:= F0 end)]),
    io:format("  destroy, sequential median ~s ms  p99 ~s  max ~s~n",
              [ms(SD, p50), ms(SD, p99), ms(SD, max)]),
    case Conc of
        undefined -> ok;
        #{create := CC, destroy := CD, create_wall := CW, n := CN, w := W, aft := CA,
          ping := PS, list := CL, idle := CI, destroy_wall := DW, ndestroy := ND,
          restart := RS} ->
            Rate = CN / max(1.0e-9, native_s(CW)),
            DRate = ND / max(1.0e-9, native_s(DW)),
            io:format("  concurrent (~b callers, ~b sandboxes): create median ~s ms p99 ~s, "
                      "~.1f creates/s   target >= 1000/s: ~s~n",
                      [W, CN, ms(CC, p50), ms(CC, p99), Rate, met(Rate, fun(V) -> V >= 1000 end)]),
            io:format("    ping during the burst  median ~s ms  p99 ~s   target p99 < 5 ms: ~s~n",
                      [ms(PS, p50), ms(PS, p99), met(get_v(PS, p99), fun(V) -> V < 5 end)]),
            io:format("    list() of ~b  median ~s ms  max ~s   target < 20 ms: ~s~n",
                      [CN, ms(CL, p50), ms(CL, max), met(get_v(CL, p50), fun(V) -> V < 20 end)]),
            #{vmrss_kb := CR, holders := CH} = CI,
            io:format("    RSS with ~b idle  ~s   target < 200 MiB: ~s;  open fds ~b~n",
                      [CN, sbx_bench_lib:kb(CR), met(CR, fun(V) -> V < 204800 end),
                       length(maps:get(fds, CI))]),
            io:format("    descriptor holders ~b: VmRSS ~s in all (private ~s), open fds ~b~n",
                      [length(CH), sbx_bench_lib:kb(lists:sum([R || {_, R, _, _} <- CH])),
                       sbx_bench_lib:kb(lists:sum([V || {_, _, V, _} <- CH])),
                       lists:sum([F || {_, _, _, F} <- CH])]),
            case RS of
                #{ready_ms := RM, adopted := AD} ->
                    io:format("    SIGKILL + restart: start to ready ~.1f ms, ~b of ~b adopted~n",
                              [RM, AD, CN]);
                _ -> ok
            end,
            io:format("    destroy median ~s ms p99 ~s, ~.1f destroys/s   target >= 1000/s: ~s;"
                      "  fds after ~b~n",
                      [ms(CD, p50), ms(CD, p99), DRate, met(DRate, fun(V) -> V >= 1000 end),
                       length(maps:get(fds, CA))])
    end,
    ok.

get_v(undefined, _) -> undefined;
get_v(M, K) -> maps:get(K, M, undefined).

ms(M, K) ->
    case get_v(M, K) of
        V when is_number(V) -> io_lib:format("~.2f", [V]);
        _ -> "n/a"
    end.

ratio(A, B, K) ->
    case {get_v(A, K), get_v(B, K)} of
        {X, Y} when is_number(X), is_number(Y), Y > 0 -> io_lib:format("~.2f", [X / Y]);
        _ -> "n/a"
    end.

met(V, F) when is_number(V) ->
    case F(V) of true -> "met"; false -> "MISSED" end;
met(_, _) -> "n/a".

%% ---- snapshots ------------------------------------------------------------------

snapshot(#{os_pid := OsPid, node := Node} = Sbx) ->
    Info = case sbx_test_util:info(Sbx) of
               #{memory_bytes := _} = I -> I;
               Other -> error({sandboxd_info_failed, Other})
           end,
    Procs = procs(),
    #{info_bytes => maps:get(memory_bytes, Info),
      sandboxes => maps:get(sandboxes, Info),
      connections => maps:get(connections, Info),
      vmrss_kb => sbx_bench_lib:status_kb(OsPid, "VmRSS"),
      vmhwm_kb => sbx_bench_lib:status_kb(OsPid, "VmHWM"),
      fds => fds(OsPid),
      procs => Procs,
      sleeps => length([P || {P, _, _, A} <- Procs, A =:= ?SLEEP_ARGV]),
      children => [{P, St, A} || {P, PP, St, A} <- Procs, PP =:= OsPid],
      holders => holders(OsPid, Procs),
      cgroups => cgroup_dirs(Node),
      state_entries => state_entries()}.

print_snapshot(What, S) ->
    #{info_bytes := B, vmrss_kb := Rss, vmhwm_kb := Hwm, fds := Fds, sleeps := Sl,
      children := Ch, sandboxes := NS, cgroups := CG, holders := Hs} = S,
    Z = length([x || {_, $Z, _} <- Ch]),
    io:format("  ~s: VmRSS ~s (VmHWM ~s; info memory_bytes ~s)  open fds ~b  sandboxes ~b~n"
              "    children ~b (zombies ~b)  `sleep 1000` processes on the machine ~b  "
              "per-sandbox cgroup dirs ~s~n",
              [What, sbx_bench_lib:kb(Rss), sbx_bench_lib:kb(Hwm), sbx_bench_lib:kb(B div 1024), length(Fds), NS, length(Ch), Z, Sl,
               cg_text(CG)]),
    [io:format("    descriptor holder ~b: VmRSS ~s (private ~s)  open fds ~b~n",
               [P, sbx_bench_lib:kb(HR), sbx_bench_lib:kb(HP), HF]) || {P, HR, HP, HF} <- Hs].

%% sandboxd's descriptor holders (children named sbx-fdhold): {Pid, VmRSS KiB, private
%% KiB (what it does not share with sandboxd after the fork), open fds}.
holders(OsPid, Procs) ->
    [{P, sbx_bench_lib:status_kb(P, "VmRSS"), private_kb(P), length(fds(P))}
     || {P, PP, _, _} <- Procs, PP =:= OsPid,
        file:read_file("/proc/" ++ integer_to_list(P) ++ "/comm") =:= {ok, <<"sbx-fdhold\n">>}].

private_kb(P) ->
    case file:read_file("/proc/" ++ integer_to_list(P) ++ "/smaps_rollup") of
        {ok, B} ->
            lists:sum([binary_to_integer(K) || {match, [K]} <-
                           [re:run(B, Key ++ ":\\s+(\\d+)", [{capture, all_but_first, binary}])
                            || Key <- ["Private_Clean", "Private_Dirty"]]]);
        _ -> undefined
    end.

print_growth(Base, With, N) when N > 0 ->
    case {maps:get(vmrss_kb, With), maps:get(vmrss_kb, Base)} of
        {W, B} when is_integer(W), is_integer(B) ->
            io:format("  growth: ~s VmRSS, ~.1f KiB and ~.1f fds per sandbox~n",
                      [sbx_bench_lib:kb(W - B), (W - B) / N,
                       (length(maps:get(fds, With)) - length(maps:get(fds, Base))) / N]);
        _ -> ok
    end;
print_growth(_, _, _) -> ok.

%% Every process on the machine: {Pid, PPid, State, Argv}.
procs() ->
    {ok, Names} = file:list_dir("/proc"),
    lists:filtermap(fun proc/1, [N || N <- Names, lists:all(fun(C) -> C >= $0 andalso C =< $9 end, N)]).

proc(Name) ->
    case file:read_file("/proc/" ++ Name ++ "/stat") of
        {ok, Stat} ->
            case binary:split(Stat, <<") ">>, [global]) of
                [_ | _] = Parts when length(Parts) >= 2 ->
                    [StateB, PPidB | _] = binary:split(lists:last(Parts), <<" ">>, [global]),
                    Argv = case file:read_file("/proc/" ++ Name ++ "/cmdline") of
                               {ok, C} -> [A || A <- binary:split(C, <<0>>, [global]), A =/= <<>>];
                               _ -> []
                           end,
                    {true, {list_to_integer(Name), binary_to_integer(PPidB),
                            binary:first(StateB), argv(Argv)}};
                _ -> false
            end;
        _ -> false
    end.

argv([A0 | Rest]) -> [filename:basename(A0) | Rest];
argv([]) -> [].

is_sleep(OsPid, Procs) ->
    lists:keyfind(OsPid, 1, Procs) =/= false andalso
        element(4, lists:keyfind(OsPid, 1, Procs)) =:= ?SLEEP_ARGV.

%% [{Fd, Target}] for sandboxd's open fds.
fds(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/fd",
    case file:list_dir(Dir) of
        {ok, Fds} ->
            [{F, case file:read_link_all(Dir ++ "/" ++ F) of
                     {ok, T} -> T;
                     _ -> "?"
                 end} || F <- Fds];
        {error, _} -> []
    end.

%% Per-sandbox cgroup directories below sandboxd/<node> under each controller mount
%% (sandboxd's layout on cgroup v1; v2: the unified root). #{Controller => Count}.
cgroup_dirs(Node) ->
    Roots = [{C, filename:join(["/sys/fs/cgroup", C, "sandboxd", atom_to_list(Node)])}
             || C <- ["freezer", "pids", "memory", "cpu", "cpuacct", "unified"]]
        ++ [{"v2", filename:join(["/sys/fs/cgroup", "sandboxd", atom_to_list(Node)])}],
    maps:from_list([{C, length([E || E <- Es, filelib:is_dir(filename:join(D, E))])}
                    || {C, D} <- Roots, {ok, Es} <- [file:list_dir(D)]]).

cg_total(CG) -> lists:sum(maps:values(CG)).

cg_text(CG) when map_size(CG) =:= 0 -> "n/a (no sandboxd/<node> group found)";
cg_text(CG) ->
    lists:join(" ", [io_lib:format("~s:~b", [C, N]) || {C, N} <- lists:sort(maps:to_list(CG))]).

state_entries() ->
    case file:list_dir(filename:join(get(state_dir), "sandboxes")) of
        {ok, Es} -> Es;
        _ -> []
    end.


max_fds(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/limits") of
        {ok, T} ->
            case re:run(T, "(?m)^Max open files\\s+(\\S+)", [{capture, all_but_first, list}]) of
                {match, [N]} -> N;
                _ -> "?"
            end;
        _ -> "?"
    end.


kib(N) when is_integer(N), N > 0 -> io_lib:format("~.1f KiB", [N / 1024]);
kib(_) -> "n/a".

%% ---- ping probe -----------------------------------------------------------------

%% A process that pings sandboxd every ?PING_EVERY_MS and keeps the timings.
pinger_start(SNode) ->
    spawn_link(fun() -> pinger_loop(SNode, []) end).

pinger_loop(SNode, Acc) ->
    receive
        {take, From} -> From ! {pinger, self(), Acc}, pinger_loop(SNode, []);
        stop -> ok
    after ?PING_EVERY_MS ->
            pinger_loop(SNode, [timed(SNode, sandbox, ping, []) | Acc])
    end.

%% The ping timings since the last take; a reply other than pong is a problem.
pinger_take(P) ->
    P ! {take, self()},
    Acc = receive {pinger, P, A} -> A end,
    Bad = [R || {_, R} <- Acc, R =/= pong],
    [sbx_bench_lib:problem("~b ping(s) during the bench did not answer pong; first: ~0P",
             [length(Bad), hd(Bad), 20]) || Bad =/= []],
    [T || {T, pong} <- Acc].

pinger_stop(P) -> unlink(P), P ! stop.

%% ---- end ------------------------------------------------------------------------

final_check(#{node := SNode, os_pid := OsPid, port := Port} = Sbx) ->
    receive
        {Port, {exit_status, St}} -> sbx_bench_lib:problem("sandboxd exited with status ~b", [St])
    after 0 -> ok
    end,
    case file:read_file_info("/proc/" ++ integer_to_list(OsPid)) of
        {ok, _} -> ok;
        {error, _} -> sbx_bench_lib:problem("sandboxd (os pid ~b) is gone", [OsPid])
    end,
    case element(2, timed(SNode, sandbox, ping, [])) of
        pong -> ok;
        Other -> sbx_bench_lib:problem("final ping of sandboxd answered ~0p", [Other])
    end,
    Log = sbx_test_util:log_text(Sbx),
    Lines = binary:split(Log, <<"\n">>, [global]),
    Bad = [L || L <- Lines, binary:match(L, [<<"level=error">>, <<"level=warn">>]) =/= nomatch],
    io:format("~nsandboxd log: ~s (~b lines, ~b warning/error)~n",
              [maps:get(log, Sbx), length(Lines) - 1, length(Bad)]),
    [io:format("  ~s~n", [L]) || L <- lists:sublist(Bad, 5)].

%% The sleeps this run started that still run (only after a failure): SIGKILL.
kill_leftovers() ->
    Procs = procs(),
    Left = [P || {P} <- ets:tab2list(?PIDS), is_sleep(P, Procs)],
    case Left of
        [] -> ok;
        _ ->
            io:format("cleanup: killing ~b leftover `sleep 1000` process(es) this run "
                      "started~n", [length(Left)]),
            [os:cmd("kill -KILL " ++ lists:join(" ", [integer_to_list(P) || P <- B]))
             || B <- chunks(Left, 200)],
            ok
    end.

%% After sandboxd has stopped: its own group sandboxd/<node> should be gone too. A group
%% left empty is noted and removed (rmdir only removes an empty group).
node_cgroups_left() ->
    [{node, Node}] = ets:lookup(?PIDS, node),
    Dirs = [D || C <- ["freezer", "pids", "memory", "cpu", "cpuacct", "unified", ""],
                 D <- [filename:join(["/sys/fs/cgroup", C, "sandboxd", atom_to_list(Node)])],
                 filelib:is_dir(D)],
    case Dirs of
        [] -> ok;
        _ ->
            Removed = [D || D <- Dirs, file:del_dir(D) =:= ok],
            io:format("NOTE: after sandboxd stopped, its group sandboxd/~s was left in ~b "
                      "cgroup hierarchies (~b removed now, being empty)~n",
                      [Node, length(Dirs), length(Removed)])
    end.

%% ---- helpers --------------------------------------------------------------------

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, B} -> lists:join(" ", lists:sublist(string:lexemes(binary_to_list(B), " "), 3));
        _ -> "?"
    end.

bin_stamp(Path) ->
    case file:read_file_info(Path, [{time, universal}]) of
        {ok, #file_info{size = Size, mtime = {{Y, Mo, D}, {H, Mi, S}}}} ->
            io_lib:format("~b bytes, modified ~4..0b-~2..0b-~2..0b ~2..0b:~2..0b:~2..0b UTC",
                          [Size, Y, Mo, D, H, Mi, S]);
        _ -> "?"
    end.

timed(Node, M, F, A) ->
    T0 = erlang:monotonic_time(),
    R = try erpc:call(Node, M, F, A, ?CALL_TIMEOUT)
        catch Class:Reason -> {Class, Reason}
        end,
    {erlang:monotonic_time() - T0, R}.

%% Prints and returns #{p50, p90, p99, max, mean} in ms for native-unit durations.
report_times(Label, []) ->
    io:format("  ~-30s no samples~n", [Label]),
    undefined;
report_times(Label, Samples) ->
    S = list_to_tuple(lists:sort(Samples)),
    N = tuple_size(S),
    P = fun(Pc) -> native_ms(element(max(1, min(N, ceil(Pc * N / 100))), S)) end,
    St = #{p50 => P(50), p90 => P(90), p99 => P(99), max => native_ms(element(N, S)),
           min => native_ms(element(1, S)), mean => native_ms(lists:sum(Samples)) / N},
    io:format("  ~-30s median ~8.2f ms  p90 ~8.2f  p99 ~8.2f  max ~8.2f  min ~7.2f  "
              "mean ~8.2f  (n ~b)~n",
              [Label, P(50), P(90), P(99), maps:get(max, St), maps:get(min, St),
               maps:get(mean, St), N]),
    St.

sbx_id(Prefix, I) -> iolist_to_binary(io_lib:format("scale-~s~5..0b", [Prefix, I])).


chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) ->
    {A, B} = lists:split(N, L),
    [A | chunks(B, N)].

native_s(D) -> erlang:convert_time_unit(D, native, nanosecond) / 1.0e9.

native_ms(D) -> erlang:convert_time_unit(D, native, nanosecond) / 1.0e6.


state_dir() ->
    D = case os:getenv("BENCH_STATE_DIR") of
            false -> filename:absname("_build/bench/scale-state." ++ os:getpid());
            "" -> filename:absname("_build/bench/scale-state." ++ os:getpid());
            V -> filename:absname(V)
        end,
    case filelib:is_file(D) of
        true -> error({state_dir_exists, D});
        false -> ok
    end,
    put(state_dir, D),
    D.


write_sleep_pidfile() ->
    case os:getenv("SBX_BENCH_SLEEP_PIDFILE") of
        false -> ok;
        File -> ok = file:write_file(File, [[integer_to_list(P), $\n]
                                            || {P} <- ets:tab2list(?PIDS)])
    end.
