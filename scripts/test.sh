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
PASS=0
FAIL=0
SKIP=0

add() { PASS=$((PASS + $1)); FAIL=$((FAIL + $2)); SKIP=$((SKIP + ${3:-0})); }

# Reads the "Label: N passed, N failed[, N skipped]" line a suite printed last.
tally() {
  local out=$1 line
  line=$(grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (suite printed no summary: counted as 1 failure)"
    add 0 1
    return
  fi
  local p f s
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  add "$p" "$f" "$s"
}

epmd -daemon >/dev/null 2>&1 || true

# A Docker engine and the test image for the Docker suites (scripts/docker-up.sh). They see
# SANDBOXD_DOCKER=1 when it is up and skip themselves otherwise. SANDBOXD_DOCKER=0 leaves Docker
# alone; with SANDBOXD_REQUIRE_DOCKER=1 (.ci/run) an engine that cannot be brought up fails.
echo "== Docker"
if [ "${SANDBOXD_DOCKER:-}" = 0 ] && [ "${SANDBOXD_REQUIRE_DOCKER:-}" != 1 ]; then
  unset SANDBOXD_DOCKER
  echo "SANDBOXD_DOCKER=0: Docker suites will be skipped"
  echo "docker: 0 passed, 0 failed, 1 skipped"
  add 0 0 1
else
  scripts/docker-up.sh 2>&1 | tee "$LOGS/docker-up.out"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    export SANDBOXD_DOCKER=1
    echo "docker: 1 passed, 0 failed"
    add 1 0
  elif [ "${SANDBOXD_REQUIRE_DOCKER:-}" = 1 ]; then
    unset SANDBOXD_DOCKER
    echo "FAIL  SANDBOXD_REQUIRE_DOCKER=1 and no Docker engine could be brought up (see above and _build/dockerd.log)"
    echo "docker: 0 passed, 1 failed"
    add 0 1
  else
    unset SANDBOXD_DOCKER
    echo "Docker is not available: Docker suites will be skipped"
    echo "docker: 0 passed, 0 failed, 1 skipped"
    add 0 0 1
  fi
fi

echo "== C unit tests (ASan+UBSan)"
for t in _build/c/unit/test_*; do
  out=$LOGS/$(basename "$t").out
  if "$t" >"$out" 2>&1; then rc=0; else rc=$?; fi
  p=$(grep -oE '\[  PASSED  \] [0-9]+' "$out" | grep -oE '[0-9]+$' || echo 0)
  f=$(grep -oE '\[  FAILED  \] [0-9]+' "$out" | grep -oE '[0-9]+$' || echo 0)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$out"; fi
  [ "$f" -gt 0 ] && cat "$out"
  echo "$(basename "$t"): $p passed, $f failed"
  add "$p" "$f"
done

# Erlang suites against a given binary. $1 label, $2 binary, rest: suites.
erl_suites() {
  local label=$1 bin=$2; shift 2
  local out=$LOGS/$label.out
  echo "== $label ($bin)"
  SANDBOXD_BIN=$bin erl -sname "sbx_runner_$$_$label" -setcookie "$COOKIE" -noshell \
    -pa "$ROOT/ebin" -pa "$ROOT/_build/test/ebin" \
    -run sbx_test_runner main "$label" "$@" 2>&1 | tee "$out"
  tally "$out"
}

SUITES=(sbx_dist_tests sbx_fault_tests sbx_process_tests sbx_docker_smoke_tests sbx_docker_tests sbx_beam_tests sbx_trace_tests sbx_beam_docker_tests sbx_fence_tests)
erl_suites erl-release "$ROOT/priv/sandboxd" "${SUITES[@]}"

# The same suites against the ASan+UBSan build; any sanitizer report fails the run.
rm -f "$LOGS"/*.log
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  erl_suites erl-asan "$ROOT/_build/c/asan/sandboxd" "${SUITES[@]}"
if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$LOGS"/*.log >/dev/null 2>&1; then
  echo "FAIL  sanitizer reports in:"
  grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$LOGS"/*.log
  grep -hE -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$LOGS"/*.log | head -60
  echo "sanitizer: 0 passed, 1 failed"
  add 0 1
else
  echo "sanitizer: 1 passed, 0 failed"
  add 1 0
fi

# One elixir run per file: sandboxd_test.exs, and sandboxd_docker_test.exs (its tests are
# excluded, counted as skipped, when no Docker engine is up).
for exs in test/elixir/*.exs; do
  name=$(basename "$exs" .exs)
  echo "== Elixir $name (ExUnit, as a user)"
  out=$LOGS/elixir-$name.out
  SANDBOXD_BIN=$ROOT/priv/sandboxd elixir --sname "sbx_ex_$$_$name" --cookie "$COOKIE" \
    -pa "$ROOT/ebin" -pa "$ROOT/_build/test/ebin" "$exs" 2>&1 | tee "$out"
  line=$(grep -E '^[0-9]+ tests?, [0-9]+ failures?' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    t=$(grep -oE '^[0-9]+' <<<"$line"); f=$(grep -oE '[0-9]+ failure' <<<"$line" | grep -oE '[0-9]+')
    s=$(grep -oE '[0-9]+ (skipped|excluded)' <<<"$line" | grep -oE '[0-9]+' | head -1 || echo 0)
    s=${s:-0}
    echo "elixir $name: $((t - f - s)) passed, $f failed, $s skipped"
    add $((t - f - s)) "$f" "$s"
  else
    echo "elixir $name: 0 passed, 1 failed"
    add 0 1
  fi
done

pkill -f "sbx_runner_$$" 2>/dev/null || true
if [ "$SKIP" -gt 0 ]; then
  echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
  echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" -eq 0 ]
