#!/usr/bin/env bash
# Self-test of scripts/test.sh's counting (scripts/tally.sh): feeds it real runs of the
# fixtures in test/selftest/ (an ExUnit file whose setup_all fails, cmocka binaries with a skip
# and with a bug back, Erlang suites that crash or take the runner down, a runner that exits 1
# with a clean summary, a filtered run under CI=true, ...) and checks what each one adds to the
# final line. Prints one line per case and, last, "selftest: N passed, N failed"; exits 1 if
# any case came out wrong. Needs the test beams (_build/test/ebin), cc with cmocka, elixir.
set -u
set -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FIX=$ROOT/test/selftest
WORK=$ROOT/_build/selftest
rm -rf "$WORK"
mkdir -p "$WORK/ebin" "$WORK/logs"
TALLY_LINES=$WORK/result-lines.txt
# The fixtures run whole, whatever filter the outer run has.
unset SBX_TEST_FILTER
. "$ROOT/scripts/tally.sh"

OK=0
BAD=0

# check CASE P F S: after feeding one fixture, the totals must be exactly P passed, F failed,
# S skipped, and the final line must say so and fail (F > 0) or pass (F = 0).
check() {
  local name=$1 p=$2 f=$3 s=$4 final rc want
  final=$(tally_final 2>&1)
  rc=$?
  final=$(tail -n 1 <<<"$final")
  if [ "$s" -gt 0 ]; then want="$p passed, $f failed, $s skipped"; else want="$p passed, $f failed"; fi
  local rc_ok=0
  if [ "$f" -gt 0 ]; then [ "$rc" -ne 0 ] && rc_ok=1; else [ "$rc" -eq 0 ] && rc_ok=1; fi
  if [ "$final" = "$want" ] && [ "$rc_ok" = 1 ]; then
    echo "ok    selftest:$name -> $final"
    OK=$((OK + 1))
  else
    echo "FAIL  selftest:$name: final line '$final' (exit $rc), expected '$want'"
    BAD=$((BAD + 1))
  fi
}

# show CMD...: runs a tally function in this shell (its counts stay) and prints what it said,
# indented, so that nothing in it passes for a line of ours.
show() {
  "$@" >"$WORK/shown" 2>&1
  sed 's/^/    | /' "$WORK/shown"
}

# --- ExUnit -------------------------------------------------------------------------------
for exs in setup_all_fails all_pass cleanup_fails; do
  elixir "$FIX/$exs.exs" >"$WORK/logs/$exs.out" 2>&1
  echo "$?" >"$WORK/logs/$exs.rc"
done
tally_reset
show tally_exunit ex-setup-all "$WORK/logs/setup_all_fails.out" "$(cat "$WORK/logs/setup_all_fails.rc")"
check exunit_setup_all_fails 0 2 0
tally_reset
tally_exunit ex-pass "$WORK/logs/all_pass.out" "$(cat "$WORK/logs/all_pass.rc")" >/dev/null
check exunit_clean_file 2 0 1
# setup_all's on_exit (where the Elixir files call sbx_test_util.cleanup()) raises.
tally_reset
show tally_exunit ex-cleanup "$WORK/logs/cleanup_fails.out" "$(cat "$WORK/logs/cleanup_fails.rc")"
check exunit_cleanup_raises 0 1 0
# The same summary with an exit status of 1: one failure.
tally_reset
tally_exunit ex-pass "$WORK/logs/all_pass.out" 1 >/dev/null
check exunit_clean_summary_exit_1 2 1 1
# An ExUnit run that printed no summary (the file did not compile, elixir died).
echo "** (CompileError) nope" >"$WORK/logs/no_summary.out"
tally_reset
tally_exunit ex-none "$WORK/logs/no_summary.out" 1 >/dev/null
check exunit_no_summary 0 1 0

# --- cmocka -------------------------------------------------------------------------------
CMOCKA_FLAGS="-std=gnu11 -Wall -Wextra -Werror -I$ROOT/test/c"
for c in cmocka_skip cmocka_known_bug; do
  cc $CMOCKA_FLAGS -o "$WORK/$c" "$FIX/$c.c" -lcmocka
  "$WORK/$c" >"$WORK/logs/$c.out" 2>&1
  echo "$?" >"$WORK/logs/$c.rc"
done
tally_reset
CI= show tally_cmocka cm-skip "$WORK/logs/cmocka_skip.out" "$(cat "$WORK/logs/cmocka_skip.rc")"
check cmocka_skip_counted_as_skipped 1 0 1
# Under CI=true the skip is not one this host expects: a failure.
tally_reset
CI=true tally_cmocka cm-skip "$WORK/logs/cmocka_skip.out" "$(cat "$WORK/logs/cmocka_skip.rc")" >/dev/null
check cmocka_unexpected_skip_under_ci 1 1 0
# ... unless the host expects it (SBX_EXPECTED_SKIPS).
tally_reset
CI=true SBX_EXPECTED_SKIPS="cm-skip:test_skips" tally_cmocka cm-skip "$WORK/logs/cmocka_skip.out" 0 >/dev/null
check cmocka_expected_skip_under_ci 1 0 1
# A host with no cgroups at all expects every test_cgroup skip; one with v1 and v2 mounts none.
printf 'proc /proc proc rw 0 0\n' >"$WORK/mounts-none"
sed 's/test_skips/test_detect/g' "$WORK/logs/cmocka_skip.out" >"$WORK/logs/cg_skip.out"
tally_reset
CI=true TALLY_MOUNTS="$WORK/mounts-none" tally_cmocka test_cgroup "$WORK/logs/cg_skip.out" 0 >/dev/null
check cmocka_cgroup_skip_on_host_without_cgroups 1 0 1
printf 'cgroup /sys/fs/cgroup/memory cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n' >"$WORK/mounts-both"
tally_reset
CI=true TALLY_MOUNTS="$WORK/mounts-both" tally_cmocka test_cgroup "$WORK/logs/cg_skip.out" 0 >/dev/null
check cmocka_cgroup_skip_on_host_with_cgroups 1 1 0
# known_bug() finding its bug back fails the test (it used to skip).
tally_reset
show tally_cmocka cm-bug "$WORK/logs/cmocka_known_bug.out" "$(cat "$WORK/logs/cmocka_known_bug.rc")"
check cmocka_known_bug_fails 1 1 0
# A binary that died half way (no summary).
head -n 3 "$WORK/logs/cmocka_skip.out" >"$WORK/logs/cm_crash.out"
tally_reset
tally_cmocka cm-crash "$WORK/logs/cm_crash.out" 134 >/dev/null
check cmocka_crashed 0 1 0

# --- Erlang runner ------------------------------------------------------------------------
erlc +warnings_as_errors -o "$WORK/ebin" "$FIX"/sbx_selftest_*.erl
run_erl_fixture() {
  local label=$1 suite=$2
  erl -noshell -pa "$ROOT/_build/test/ebin" -pa "$WORK/ebin" \
    -run sbx_test_runner main "$label" "$suite" >"$WORK/logs/$label.out" 2>&1
  echo "$?" >"$WORK/logs/$label.rc"
}
run_erl_fixture erl-crash sbx_selftest_crash_tests
run_erl_fixture erl-halt sbx_selftest_halt_tests
run_erl_fixture erl-ok sbx_selftest_ok_tests
SBX_TEST_FILTER=passes_too run_erl_fixture erl-filtered sbx_selftest_ok_tests
tally_reset
show tally_runner erl-crash "$WORK/logs/erl-crash.out" "$(cat "$WORK/logs/erl-crash.rc")"
check erl_tests0_crashes 0 1 0
tally_reset
show tally_runner erl-halt "$WORK/logs/erl-halt.out" "$(cat "$WORK/logs/erl-halt.rc")"
check erl_runner_node_dies 0 1 0
tally_reset
tally_runner erl-ok "$WORK/logs/erl-ok.out" "$(cat "$WORK/logs/erl-ok.rc")" >/dev/null
check erl_clean_suite 2 0 1
if grep -q '^!!!!! SBX_TEST_FILTER' "$WORK/logs/erl-filtered.out"; then
  echo "ok    selftest:erl_filter_is_loud"
  OK=$((OK + 1))
else
  echo "FAIL  selftest:erl_filter_is_loud: the runner ran a filtered subset without saying so"
  BAD=$((BAD + 1))
fi

# --- a runner that exits 1 with a clean summary ----------------------------------------------
"$FIX/clean_summary_exit1.sh" 2>&1 | tee "$WORK/logs/exit1.out" >/dev/null
rc=${PIPESTATUS[0]}
tally_reset
show tally_runner fixture "$WORK/logs/exit1.out" "$rc"
check runner_exit_1_clean_summary 1 1 0

# --- a filtered run ---------------------------------------------------------------------------
tally_reset
SBX_TEST_FILTER=passes_too CI=true show tally_filter
show tally_runner erl-filtered "$WORK/logs/erl-filtered.out" "$(cat "$WORK/logs/erl-filtered.rc")"
check filtered_run_under_ci 1 1 0
tally_reset
CI= SBX_TEST_FILTER=passes_too tally_filter >"$WORK/logs/filter-noci.out"
if grep -q '^!!!!! SBX_TEST_FILTER' "$WORK/logs/filter-noci.out"; then
  check filtered_run_outside_ci_is_loud 0 0 0
else
  echo "FAIL  selftest:filtered_run_outside_ci_is_loud: no loud line"
  BAD=$((BAD + 1))
fi

# --- setup steps and the sanitizer scan ---------------------------------------------------------
tally_reset
tally_setup docker 0 "engine up" >/dev/null
check setup_step_adds_no_pass 0 0 0
tally_reset
tally_setup docker 1 "no engine" >/dev/null
check setup_step_failure_fails 0 1 0
mkdir -p "$WORK/nologs"
tally_reset
tally_sanitizer "$WORK/nologs" >/dev/null
check sanitizer_with_no_log_fails 0 1 0
mkdir -p "$WORK/asanlogs"
printf 'level=info msg="ready"\n==1==ERROR: LeakSanitizer: detected memory leaks\n' >"$WORK/asanlogs/a.log"
printf 'level=info msg="ready"\n' >"$WORK/asanlogs/b.log"
tally_reset
tally_sanitizer "$WORK/asanlogs" >/dev/null
check sanitizer_report_fails 0 1 0
rm "$WORK/asanlogs/a.log"
tally_reset
tally_sanitizer "$WORK/asanlogs" >/dev/null
check sanitizer_clean_log_passes 0 0 0

# --- the final line is the sum of the result lines ----------------------------------------------
tally_reset
tally_report a 3 0 1 >/dev/null
tally_report b 2 0 0 >/dev/null
TALLY_PASS=$((TALLY_PASS + 1)) # a count that no printed line shows
final=$(tally_final)
frc=$?
if [ "$frc" -ne 0 ] && grep -q 'not the sum of the result lines' <<<"$final"; then
  echo "ok    selftest:final_line_checked_against_result_lines -> $(tail -n 1 <<<"$final")"
  OK=$((OK + 1))
else
  echo "FAIL  selftest:final_line_checked_against_result_lines: a total off the printed lines passed: $final"
  BAD=$((BAD + 1))
fi

echo "selftest: $OK passed, $BAD failed, 0 skipped"
[ "$BAD" -eq 0 ]
