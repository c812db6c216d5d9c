%% Selftest fixture: a suite whose tests/0 raises. sbx_test_runner must count it as failed.
-module(sbx_selftest_crash_tests).
-export([tests/0]).

tests() -> error(selftest_fixture_tests_crash).
