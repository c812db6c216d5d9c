#!/usr/bin/env bash
# Runs every suite and prints, last, "N passed, N failed[, N skipped]" over all of them.
# Expects `make test-build` to have run. Starts epmd if it is not running.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/_build/test/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
export SBX_LOG_DIR=$LOGS
COOKIE=sbxtest_$$
set -o pipefail
# Counting (result lines, the final line and its check) lives in scripts/tally.sh, which
# scripts/selftest.sh drives with fixtures.
TALLY_LINES=$LOGS/result-lines.txt
. "$ROOT/scripts/tally.sh"
tally_reset
# Section headers carry the seconds since the start, to see where make test's time goes.
SECONDS=0
section() { echo "== $* [+${SECONDS}s]"; }

tally_filter

# The runner's own self-test first: if counting is broken, nothing after it can be believed.
section "selftest (scripts/selftest.sh)"
scripts/selftest.sh 2>&1 | tee "$LOGS/selftest.out"
tally_runner selftest "$LOGS/selftest.out" "${PIPESTATUS[0]}"

epmd -daemon >/dev/null 2>&1 || true

# A Docker engine and the test image for the Docker suites (scripts/docker-up.sh). They see
# SANDBOXD_DOCKER=1 when it is up and skip themselves otherwise. SANDBOXD_DOCKER=0 leaves Docker
# alone; with SANDBOXD_REQUIRE_DOCKER=1 (.ci/run) an engine that cannot be brought up fails.
section "Docker"
if [ "${SANDBOXD_DOCKER:-}" = 0 ] && [ "${SANDBOXD_REQUIRE_DOCKER:-}" != 1 ]; then
  unset SANDBOXD_DOCKER
  echo "setup docker: skipped (SANDBOXD_DOCKER=0): Docker suites will be skipped"
else
  scripts/docker-up.sh 2>&1 | tee "$LOGS/docker-up.out"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    export SANDBOXD_DOCKER=1
    tally_setup docker 0 "engine up"
  elif [ "${SANDBOXD_REQUIRE_DOCKER:-}" = 1 ]; then
    unset SANDBOXD_DOCKER
    tally_setup docker 1 "SANDBOXD_REQUIRE_DOCKER=1 and no Docker engine could be brought up (see above and _build/dockerd.log)"
  else
    unset SANDBOXD_DOCKER
    echo "setup docker: skipped (no engine could be brought up): Docker suites will be skipped"
  fi
fi

section "C unit tests (ASan+UBSan)"
for t in _build/c/unit/test_*; do
  out=$LOGS/$(basename "$t").out
  if "$t" >"$out" 2>&1; then rc=0; else rc=$?; fi
  grep -qE '^\[  (FAILED|ERROR) ' "$out" || [ "$rc" -ne 0 ] && cat "$out"
  tally_cmocka "$(basename "$t")" "$out" "$rc"
done

# Erlang suites against a given binary. $1 label, $2 binary, rest: suites.
erl_suites() {
  local label=$1 bin=$2; shift 2
  local out=$LOGS/$label.out
  section "$label ($bin)"
  SANDBOXD_BIN=$bin erl -sname "sbx_runner_$$_$label" -setcookie "$COOKIE" -noshell \
    -pa "$ROOT/ebin" -pa "$ROOT/_build/test/ebin" \
    -run sbx_test_runner main "$label" "$@" 2>&1 | tee "$out"
  tally_runner "$label" "$out" "${PIPESTATUS[0]}"
}

# One elixir run per file against a given binary. $1 label, $2 binary. Docker tests are
# excluded (counted as skipped) when no Docker engine is up.
elixir_suites() {
  local label=$1 bin=$2 exs name out
  for exs in test/elixir/*.exs; do
    name=$(basename "$exs" .exs)
    section "Elixir $name, $label (ExUnit, as a user)"
    out=$LOGS/elixir-$label-$name.out
    SANDBOXD_BIN=$bin elixir --sname "sbx_ex_$$_$name" --cookie "$COOKIE" \
      -pa "$ROOT/ebin" -pa "$ROOT/_build/test/ebin" "$exs" 2>&1 | tee "$out"
    tally_exunit "elixir-$label-$name" "$out" "${PIPESTATUS[0]}"
  done
}

SUITES=(sbx_dist_tests sbx_tls_tests sbx_fault_tests sbx_stranger_tests sbx_process_tests sbx_unpriv_tests sbx_docker_smoke_tests sbx_docker_tests sbx_docker_restart_tests sbx_beam_tests sbx_trace_tests sbx_beam_docker_tests sbx_fence_tests sbx_shutdown_tests sbx_scale_tests)
erl_suites erl-release "$ROOT/priv/sandboxd" "${SUITES[@]}"
elixir_suites release "$ROOT/priv/sandboxd"

# The same suites against the ASan+UBSan build; any sanitizer report fails the run (each
# instance's cleanup checks its own log too, and fails the test that started it).
rm -f "$LOGS"/*.log
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
erl_suites erl-asan "$ROOT/_build/c/asan/sandboxd" "${SUITES[@]}"
elixir_suites asan "$ROOT/_build/c/asan/sandboxd"
unset ASAN_OPTIONS UBSAN_OPTIONS
tally_sanitizer "$LOGS"

pkill -f "sbx_runner_$$" 2>/dev/null || true
tally_final
