%% Clean stop (SIGTERM) and its two policies, as docs/API.md promises them:
%%  - `--shutdown-policy keep` (the default): sandboxd exits 0 within its budget, the workloads
%%    keep running, and the next start with the same state dir adopts them (same OS processes);
%%  - `--shutdown-policy destroy`: sandboxd exits 0 within its budget and every workload is
%%    gone; the next start lists nothing;
%%  - the test helpers' own shutdown check (sbx_test_util:cleanup/0, which runs after every
%%    test): a sandboxd that ignores SIGTERM is a failure, not a silent SIGKILL.
-module(sbx_shutdown_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).

tests() ->
    [{keep_policy_leaves_sandboxes_adoptable, 90000, fun keep/0},
     {destroy_policy_removes_every_sandbox, 90000, fun destroy/0},
     {cleanup_fails_a_sandboxd_that_ignores_sigterm, 90000, fun hang_detected/0}].

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

now_ms() -> erlang:monotonic_time(millisecond).

os_alive(P) -> file:read_file_info("/proc/" ++ integer_to_list(P)) =/= {error, enoent}
                   andalso not zombie(P).

zombie(P) ->
    case file:read_file("/proc/" ++ integer_to_list(P) ++ "/stat") of
        {ok, B} -> [_, Rest] = binary:split(B, <<") ">>), binary:first(Rest) =:= $Z;
        _ -> true
    end.

%% Three sleeping process sandboxes; returns #{Id => OsPid}.
three(S) ->
    maps:from_list(
      [begin
           {ok, #{ref := R, status := running}} =
               call(S, create, [Id, process, #{cmd => [<<"sleep">>, <<"600">>]}]),
           {Id, R}
       end || Id <- [<<"a">>, <<"b">>, <<"c">>]]).

%% SIGTERM, timed: stop/1 asserts exit 0 within the budget and a clean log.
timed_stop(S) ->
    T0 = now_ms(),
    ?assertEqual(0, ?U:stop(S)),
    Ms = now_ms() - T0,
    io:format("      SIGTERM to exit: ~b ms (budget ~b ms)~n", [Ms, ?U:shutdown_budget_ms()]),
    Ms.

keep() ->
    S1 = #{sname := SName, state_dir := Dir} = ?U:start_isolated(#{policy => "keep"}),
    Refs = three(S1),
    timed_stop(S1),
    %% The workloads outlive sandboxd.
    ?assertEqual([], [Id || {Id, R} <- maps:to_list(Refs), not os_alive(R)]),
    %% The next start (same name, same state dir) adopts the very same processes.
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir, policy => "keep"}),
    Listed = call(S2, list, []),
    ?assertEqual(Refs, maps:from_list([{Id, R} || #{id := Id, ref := R, status := running} <- Listed])),
    ?assertMatch({ok, #{stdout := <<"adopted\n">>}},
                 call(S2, exec, [<<"a">>, [<<"echo">>, <<"adopted">>]])),
    [?assertEqual(ok, call(S2, destroy, [Id])) || Id <- maps:keys(Refs)],
    ok = ?U:wait_until(fun() -> not lists:any(fun os_alive/1, maps:values(Refs)) end, 10000),
    ok.

destroy() ->
    S1 = #{sname := SName, state_dir := Dir} = ?U:start_isolated(#{policy => "destroy"}),
    Refs = three(S1),
    timed_stop(S1),
    %% Every workload went with it (destroy is done before sandboxd exits; allow the kernel a
    %% moment to reap).
    ok = ?U:wait_until(fun() -> not lists:any(fun os_alive/1, maps:values(Refs)) end, 5000),
    ?assertEqual([], [Id || {Id, R} <- maps:to_list(Refs), os_alive(R)]),
    %% Nothing is left to adopt.
    S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    ?assertEqual([], call(S2, list, [])),
    ok.

%% A "sandboxd" that does not react to SIGTERM (a stand-in binary that ignores it) must make
%% cleanup raise, naming it, after waiting out the budget and not before; then it is SIGKILLed.
hang_detected() ->
    Bin = filename:absname(filename:join(?U:log_dir(), ?U:unique("ignores_term") ++ ".sh")),
    ok = file:write_file(Bin, "#!/bin/sh\ntrap '' TERM\nexec sleep 600\n"),
    ok = file:change_mode(Bin, 8#755),
    #{os_pid := OsPid, node := N} = ?U:start(#{bin => Bin, wait => false}),
    ok = ?U:wait_until(fun() -> os_alive(OsPid) end, 5000),
    timer:sleep(300), % the trap is set
    T0 = now_ms(),
    R = try ?U:cleanup() of
            ok -> no_error
        catch error:E -> E
        end,
    Ms = now_ms() - T0,
    io:format("      cleanup of a sandboxd that ignores SIGTERM: ~p after ~b ms~n", [R, Ms]),
    ?assertMatch({sandboxd_shutdown, [{N, {no_exit_within_ms, _, after_sigterm}}]}, R),
    ?assert(Ms >= ?U:shutdown_budget_ms()),
    ok = ?U:wait_until(fun() -> not os_alive(OsPid) end, 5000),
    ok.
