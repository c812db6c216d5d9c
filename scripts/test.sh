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
    # The engine's TLS listener for sbx_docker_tls_tests (DOCKER_TLS_HOST, DOCKER_TLS_CERTS,
    # DOCKER_TLS_WRONG_CERTS), when docker-up.sh could bring it up.
    if [ -r _build/docker-tls.env ]; then set -a; . _build/docker-tls.env; set +a; fi
  elif [ "${SANDBOXD_REQUIRE_DOCKER:-}" = 1 ]; then
    unset SANDBOXD_DOCKER
    tally_setup docker 1 "SANDBOXD_REQUIRE_DOCKER=1 and no Docker engine could be brought up (see above and _build/dockerd.log)"
  else
    unset SANDBOXD_DOCKER
    echo "setup docker: skipped (no engine could be brought up): Docker suites will be skipped"
  fi
fi

# The OTP matrix (issue 13; run after the ASan pass below). SBX_OTP_MATRIX: the versions,
# space-separated (default: every version scripts/otp.sh builds); "none" runs none, saying so.
# A version not yet in the cache (/var/cache/sandboxd/otp) is built now, niced, in the
# background while the release and ASan passes run (they leave most of the 2 cores idle);
# the matrix step waits for it and says how long the build took.
read -r -a OTP_MATRIX <<<"${SBX_OTP_MATRIX:-27.3.4.1 29.1.1}"
OTP_BUILD_PID=""
if [ "${OTP_MATRIX[*]}" != none ]; then
  missing=()
  for v in "${OTP_MATRIX[@]}"; do
    [ -f "${OTP_CACHE:-/var/cache/sandboxd/otp}/$v/.complete" ] || missing+=("$v")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    section "OTP ${missing[*]}: not in the cache; building in the background (scripts/otp.sh, niced; about 10 min each on 2 cores; log: _build/test/logs/otp-build.out)"
    scripts/otp.sh "${missing[@]}" >"$LOGS/otp-build.out" 2>&1 &
    OTP_BUILD_PID=$!
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

SUITES=(sbx_dist_tests sbx_tls_tests sbx_fault_tests sbx_stranger_tests sbx_process_tests sbx_unpriv_tests sbx_docker_smoke_tests sbx_docker_tls_tests sbx_docker_tests sbx_docker_restart_tests sbx_beam_tests sbx_trace_tests sbx_beam_docker_tests sbx_fence_tests sbx_shutdown_tests sbx_scale_tests sbx_http_tests sbx_pause_tests sbx_agent_tests sbx_vm_tests)
erl_suites erl-release "$ROOT/priv/sandboxd" "${SUITES[@]}"
elixir_suites release "$ROOT/priv/sandboxd"

# The client library as another project's dependency (issue 11), once, on the release binary.
section "client projects (fresh Mix and rebar3 projects)"
. "$ROOT/scripts/client-projects.sh"

# The OTP matrix (issue 13): the distribution, TLS and beam_node suites again with the runner,
# its peers and the beam_node sandboxes on each newer OTP, built once per machine from Debian's
# source packages by scripts/otp.sh into /var/cache/sandboxd/otp (OTP 25 is the run above).
# Everything Erlang is compiled by that OTP's erlc (sandboxd's agent beams too, next to a copy
# of the release binary, where it looks for them).
otp_matrix() {
  local vsn=$1 otp=${OTP_CACHE:-/var/cache/sandboxd/otp}/$1/bin dir=$ROOT/_build/otp/$1
  local label=otp-$1 out=$LOGS/otp-$1.out
  section "$label (the dist, tls and beam_node suites on OTP $vsn)"
  # Built by the background scripts/otp.sh started at the beginning, or before this run.
  if [ ! -f "$otp/../.complete" ]; then
    tally_setup "$label" 1 "OTP $vsn is not built: scripts/otp.sh $vsn failed (see _build/test/logs/otp-build.out above)"
    return
  fi
  rm -rf "$dir" && mkdir -p "$dir/ebin" "$dir/test" "$dir/priv" &&
    "$otp/erlc" +debug_info -I include -o "$dir/ebin" src/*.erl &&
    "$otp/erlc" +debug_info -I include -o "$dir/test" test/erl/*.erl &&
    cp "$ROOT/priv/sandboxd" "$dir/priv/" &&
    for b in priv/*.beam; do cp "$dir/ebin/$(basename "$b")" "$dir/priv/"; done || {
      tally_setup "$label" 1 "compiling with OTP $vsn's erlc failed"; return; }
  PATH=$otp:$PATH SANDBOXD_ERL=$otp/erl SANDBOXD_BIN=$dir/priv/sandboxd SBX_EXPECT_OTP=${vsn%%.*} "$otp/erl" \
    -sname "sbx_runner_$$_otp${vsn//./_}" -setcookie "$COOKIE" -noshell \
    -pa "$dir/ebin" -pa "$dir/test" \
    -run sbx_test_runner main "$label" sbx_dist_tests sbx_tls_tests sbx_beam_tests 2>&1 | tee "$out"
  tally_runner "$label" "$out" "${PIPESTATUS[0]}"
}
# The same suites against the ASan+UBSan build; any sanitizer report fails the run (each
# instance's cleanup checks its own log too, and fails the test that started it). Two are left
# to the release pass, to pay for the OTP matrix (issue 13): sbx_beam_docker_tests (about 50 s;
# its own C is dk_beam_target, which copies a configured name and cookie: the beam query,
# trace and docker paths it drives run under ASan in sbx_beam_tests, sbx_trace_tests and
# sbx_docker_tests) and the ExUnit files (about 20 s; the Elixir client sends the calls the
# Erlang suites send, so no C path of theirs is theirs alone).
rm -f "$LOGS"/*.log
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ASAN_SUITES=()
# sbx_agent_tests runs no sandboxd (the guest agent in QEMU alone): once is enough.
# sbx_vm_tests boots QEMU under TCG: about 130 s in the release pass, 400 s under ASan on a
# busy 2-core machine; it runs once, on the release binary.
for s in "${SUITES[@]}"; do
  case $s in sbx_beam_docker_tests|sbx_agent_tests|sbx_vm_tests) ;; *) ASAN_SUITES+=("$s") ;; esac
done
erl_suites erl-asan "$ROOT/_build/c/asan/sandboxd" "${ASAN_SUITES[@]}"
unset ASAN_OPTIONS UBSAN_OPTIONS
tally_sanitizer "$LOGS"

if [ "${OTP_MATRIX[*]}" = none ]; then
  echo "setup otp matrix: skipped (SBX_OTP_MATRIX=none)"
else
  if [ -n "$OTP_BUILD_PID" ]; then
    section "waiting for the OTP build started at the beginning (scripts/otp.sh)"
    wait "$OTP_BUILD_PID" || echo "scripts/otp.sh exited with status $?:"
    cat "$LOGS/otp-build.out"
  fi
  for v in "${OTP_MATRIX[@]}"; do otp_matrix "$v"; done
fi

pkill -f "sbx_runner_$$" 2>/dev/null || true
tally_final
