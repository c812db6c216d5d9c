%% Selftest fixture: a suite that passes (two tests, one skips): counted as passed/skipped.
-module(sbx_selftest_ok_tests).
-export([tests/0]).

tests() ->
    [{passes, fun() -> ok end},
     {skips, fun() -> {skip, selftest_fixture} end},
     {passes_too, fun() -> ok end}].
