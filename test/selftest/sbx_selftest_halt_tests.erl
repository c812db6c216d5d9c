%% Selftest fixture: a test that takes the runner node down with it (no summary line).
-module(sbx_selftest_halt_tests).
-export([tests/0]).

tests() ->
    [{passes, fun() -> ok end},
     {halts_the_node, fun() -> erlang:halt(3) end},
     {never_runs, fun() -> ok end}].
