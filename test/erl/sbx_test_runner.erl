%% Minimal test runner for suites that drive the real sandboxd binary.
%%
%% A suite is a module exporting tests/0 -> [{Name, Fun} | {Name, TimeoutMs, Fun}].
%% Each test runs in its own process with a timeout; crashes and timeouts are failures.
%% Prints one line per test and, last, "Label: N passed, N failed, N skipped".
%% A test may return {skip, Why}. A suite whose tests/0 crashes counts as one failed test; the
%% cleanup after each test (sbx_test_util:cleanup/0: sandboxd must stop on SIGTERM in time, with
%% exit status 0 and no sanitizer report) fails the test it follows.
-module(sbx_test_runner).

-export([main/1]).

-define(DEFAULT_TIMEOUT, 120000).

%% main([Label, Suite...]) from `erl -run sbx_test_runner main Label Suite...`.
main([Label | Suites]) ->
    Filter = os:getenv("SBX_TEST_FILTER", ""),
    Filter =:= "" orelse
        io:format("!!!!! SBX_TEST_FILTER=~p: only tests whose names contain it run !!!!!~n", [Filter]),
    Watch = sbx_cookie_watch:start(), %% cookie watch (issue 14): the whole run
    Results0 = lists:append([run_suite(list_to_atom(S), Filter) || S <- Suites]),
    Results = Results0 ++ sbx_cookie_watch:results(Watch), %% a failure per process with a cookie
    P = length([ok || {_, ok} <- Results]),
    F = length([x || {_, {fail, _}} <- Results]),
    K = length([s || {_, {skip, _}} <- Results]),
    io:format("~s: ~b passed, ~b failed, ~b skipped~n", [Label, P, F, K]),
    halt(case F of 0 -> 0; _ -> 1 end).

run_suite(Suite, Filter) ->
    try [normalize(T) || T <- Suite:tests()] of
        Tests ->
            [run_one(Suite, T) || {Name, _, _} = T <- Tests,
                                  Filter =:= "" orelse string:find(atom_to_list(Name), Filter) =/= nomatch]
    catch C:R:St ->
        io:format("FAIL  ~p:tests/0 crashed~n      ~P~n", [Suite, {C, R, St}, 40]),
        [{{Suite, tests}, {fail, {C, R}}}]
    end.

normalize({Name, Fun}) -> {Name, ?DEFAULT_TIMEOUT, Fun};
normalize({Name, Timeout, Fun}) -> {Name, Timeout, Fun}.

run_one(Suite, {Name, Timeout, Fun}) ->
    T0 = erlang:monotonic_time(millisecond),
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() ->
        Res = try Fun() of
                  {skip, Why} -> {skip, Why};
                  _ -> ok
              catch C:R:St -> {fail, {C, R, St}}
              end,
        Self ! {self(), Res}
    end),
    Result = receive
                 {Pid, Res} -> erlang:demonitor(Ref, [flush]), Res;
                 {'DOWN', Ref, process, Pid, Why} -> {fail, {died, Why}}
             after Timeout ->
                 exit(Pid, kill),
                 {fail, timeout}
             end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    %% Whatever the test left behind (sandboxd instances, peers) goes with it; a sandboxd that
    %% does not stop cleanly fails the test.
    Result1 = try sbx_test_util:cleanup() of
                  _ -> Result
              catch _:CleanupErr ->
                  case Result of
                      {fail, E0} -> {fail, {E0, and_at_cleanup, CleanupErr}};
                      _ -> {fail, {cleanup, CleanupErr}}
                  end
              end,
    case Result1 of
        ok -> io:format("ok    ~p:~p (~b ms)~n", [Suite, Name, Ms]);
        {skip, W} -> io:format("skip  ~p:~p: ~p~n", [Suite, Name, W]);
        {fail, E} -> io:format("FAIL  ~p:~p (~b ms)~n      ~P~n", [Suite, Name, Ms, E, 40])
    end,
    {{Suite, Name}, Result1}.
