# Counting for scripts/test.sh, sourced (bash). Kept apart so that scripts/selftest.sh can feed
# it fixtures: every way a run can go wrong must come out as failed (or skipped, where right).
#
# Totals live in TALLY_PASS/FAIL/SKIP. Every count goes through tally_report, which prints one
# line "result LABEL: N passed, N failed, N skipped" and keeps it in $TALLY_LINES; tally_final
# checks that the totals equal the sum of those printed lines, then prints the final line.

TALLY_PASS=0
TALLY_FAIL=0
TALLY_SKIP=0
TALLY_LINES=${TALLY_LINES:-$(mktemp /tmp/sbx-tally.XXXXXX)}

# Starts counting afresh (the selftest runs many cases in one shell).
tally_reset() {
  TALLY_PASS=0
  TALLY_FAIL=0
  TALLY_SKIP=0
  : >"$TALLY_LINES"
}

# tally_report LABEL P F S [NOTE]: counts one suite (or step) and prints its result line.
tally_report() {
  local label=$1 p=$2 f=$3 s=$4 note=${5:-}
  TALLY_PASS=$((TALLY_PASS + p))
  TALLY_FAIL=$((TALLY_FAIL + f))
  TALLY_SKIP=$((TALLY_SKIP + s))
  local line="result $label: $p passed, $f failed, $s skipped"
  echo "$line${note:+  ($note)}"
  echo "$line" >>"$TALLY_LINES"
}

# tally_setup LABEL RC [WHY]: a setup step (Docker engine, sanitizer scan) is no test: success
# adds nothing to the counts, a failure counts as one failed.
tally_setup() {
  local label=$1 rc=$2 why=${3:-}
  if [ "$rc" -eq 0 ]; then
    echo "setup $label: ok${why:+ ($why)}"
  else
    echo "FAIL  setup $label${why:+: $why}"
    tally_report "$label" 0 1 0 "setup step failed"
  fi
}

# tally_runner LABEL OUT RC: a runner that prints "LABEL: N passed, N failed[, N skipped]" last
# (sbx_test_runner, the selftest). No such line, or an exit status other than 0 while nothing
# failed, is one failure more.
tally_runner() {
  local label=$1 out=$2 rc=$3 line p f s note=""
  line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed" "$out" | tail -n 1)
  if [ -z "$line" ]; then
    tally_report "$label" 0 1 0 "printed no summary, exit status $rc: counted as 1 failure"
    return
  fi
  p=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/^[^:]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '^[0-9]+' || true)
  s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    note="exit status $rc with a clean summary: counted as 1 failure"
  fi
  tally_report "$label" "$p" "$f" "$s" "$note"
}

# The cmocka tests that may skip on this host (space separated), from what the host has:
# cgroup tests where there are no cgroups of the kind they need, the real-dockerd test where no
# engine is up. SBX_EXPECTED_SKIPS adds names.
tally_host_expected_skips() {
  local mounts=${TALLY_MOUNTS:-/proc/mounts} e=""
  if ! grep -qE '^[^ ]+ [^ ]+ cgroup2? ' "$mounts"; then
    e="$e test_cgroup:*"
  else
    if ! grep -qE '^[^ ]+ [^ ]+ cgroup ' "$mounts"; then
      e="$e test_cgroup:test_track_escaped_and_kill_no_freezer test_cgroup:test_create_rollback"
    fi
    if ! grep -qE '^[^ ]+ [^ ]+ cgroup2 ' "$mounts"; then
      e="$e test_cgroup:test_v2_tracking"
    fi
  fi
  [ "${SANDBOXD_DOCKER:-}" = 1 ] || e="$e test_http:test_real_dockerd"
  echo "$e ${SBX_EXPECTED_SKIPS:-}"
}

# tally_cmocka NAME OUT RC: one cmocka binary's output. Counts from cmocka's own summary
# ([  PASSED  ] / [  FAILED  ] / [  SKIPPED ] N test(s)), which must add up to the tests run.
# A skip is counted as skipped; under CI=true a skip not expected on this host
# (tally_host_expected_skips) is a failure. A crash (no summary) or an exit status other than
# 0 with nothing failed is one failure more.
tally_cmocka() {
  local name=$1 out=$2 rc=$3 run p f s t notes="" expected unexpected=0
  run=$(grep -oE '^\[==========\] [0-9]+ test\(s\) run' "$out" | grep -oE '[0-9]+' | tail -n 1)
  p=$(grep -oE '^\[  PASSED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | tail -n 1)
  f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | tail -n 1)
  s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | tail -n 1)
  p=${p:-0} f=${f:-0} s=${s:-0}
  if [ -z "$run" ]; then
    f=$((f + 1))
    notes="no '[==========] N test(s) run' line: crashed? counted as 1 failure"
  elif [ $((p + f + s)) -ne "$run" ]; then
    local extra=$((run - p - f - s))
    [ "$extra" -gt 0 ] || extra=1
    f=$((f + extra))
    notes="passed+failed+skipped != $run run: the rest counted as failed"
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    notes="${notes:+$notes; }exit status $rc with nothing failed: counted as 1 failure"
  fi
  if [ "$s" -gt 0 ] && [ "${CI:-}" = true ]; then
    expected=" $(tally_host_expected_skips) "
    for t in $(grep -E '^\[  SKIPPED \] [A-Za-z_][A-Za-z0-9_]*$' "$out" | awk '{print $4}' | sort -u); do
      case "$expected" in
        *" $name:$t "* | *" $name:* "*) ;;
        *) unexpected=$((unexpected + 1))
           echo "FAIL  $name:$t skipped, and CI=true expects no skip of it on this host" ;;
      esac
    done
    if [ "$unexpected" -gt 0 ]; then
      s=$((s - unexpected))
      f=$((f + unexpected))
      notes="${notes:+$notes; }$unexpected unexpected skip(s) counted as failed"
    fi
  fi
  tally_report "$name" "$p" "$f" "$s" "$notes"
}

# tally_exunit NAME OUT RC: an `elixir file.exs` run. ExUnit prints e.g.
# "2 tests, 0 failures, 2 invalid" (setup_all crashed), "5 tests, 1 failure, 2 excluded",
# "1 doctest, 3 tests, 0 failures, 1 skipped". Failed = failures + invalid; skipped = skipped +
# excluded; passed = the rest. No such line, or an exit status other than 0 with nothing failed,
# is one failure more.
tally_exunit() {
  local name=$1 out=$2 rc=$3 line t=0 f=0 inv=0 sk=0 ex=0 n p note=""
  line=$(grep -E '^([0-9]+ doctests?, )?[0-9]+ tests?, [0-9]+ failures?' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    tally_report "$name" 0 1 0 "ExUnit printed no summary, exit status $rc: counted as 1 failure"
    return
  fi
  for n in $(grep -oE '[0-9]+ doctests?' <<<"$line" | grep -oE '^[0-9]+'); do t=$((t + n)); done
  for n in $(grep -oE '[0-9]+ tests?' <<<"$line" | grep -oE '^[0-9]+'); do t=$((t + n)); done
  n=$(grep -oE '[0-9]+ failures?' <<<"$line" | grep -oE '^[0-9]+'); f=${n:-0}
  n=$(grep -oE '[0-9]+ invalid' <<<"$line" | grep -oE '^[0-9]+'); inv=${n:-0}
  n=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '^[0-9]+'); sk=${n:-0}
  n=$(grep -oE '[0-9]+ excluded' <<<"$line" | grep -oE '^[0-9]+'); ex=${n:-0}
  f=$((f + inv))
  p=$((t - f - sk - ex))
  if [ "$p" -lt 0 ]; then
    note="summary does not add up: counted as 1 failure more"
    p=0
    f=$((f + 1))
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    note="exit status $rc with a clean summary: counted as 1 failure"
  elif [ "$inv" -gt 0 ]; then
    note="$inv invalid (a setup_all failed) counted as failed"
  fi
  tally_report "$name" "$p" "$f" "$((sk + ex))" "$note"
}

# tally_filter: an exported SBX_TEST_FILTER runs only a subset. Says so loudly; under CI=true
# it is a failure (a CI run must run everything).
tally_filter() {
  if [ -n "${SBX_TEST_FILTER:-}" ]; then
    echo "!!!!! SBX_TEST_FILTER='$SBX_TEST_FILTER' is set: only the Erlang tests whose names contain it run !!!!!"
    if [ "${CI:-}" = true ]; then
      echo "FAIL  CI=true and SBX_TEST_FILTER is set: a filtered run is not a test run"
      tally_report filter 0 1 0 "SBX_TEST_FILTER under CI=true"
    fi
  fi
}

# tally_sanitizer DIR: scans the sandboxd logs (*.log) in DIR for sanitizer reports. No log at
# all means nothing was checked: a failure.
tally_sanitizer() {
  local dir=$1 n hits
  n=$(find "$dir" -maxdepth 1 -name '*.log' -type f | wc -l)
  if [ "$n" -eq 0 ]; then
    tally_setup sanitizer 1 "no sandboxd log in $dir: nothing was checked"
    return
  fi
  hits=$(grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$dir"/*.log)
  if [ -n "$hits" ]; then
    echo "sanitizer reports in:"
    echo "$hits"
    grep -hE -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$dir"/*.log | head -60
    tally_setup sanitizer 1 "sanitizer reports in $(wc -l <<<"$hits") of $n sandboxd logs"
  else
    tally_setup sanitizer 0 "$n sandboxd logs, no report"
  fi
}

# tally_final: checks that the totals equal the sum of the printed result lines, then prints
# the last line "N passed, N failed[, N skipped]". Returns 0 only if nothing failed.
tally_final() {
  local sp=0 sf=0 ss=0 a b c
  while read -r a b c; do
    sp=$((sp + a)); sf=$((sf + b)); ss=$((ss + c))
  done < <(sed -E 's/^result [^:]+: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/' "$TALLY_LINES")
  if [ "$sp" -ne "$TALLY_PASS" ] || [ "$sf" -ne "$TALLY_FAIL" ] || [ "$ss" -ne "$TALLY_SKIP" ]; then
    echo "FAIL  the totals ($TALLY_PASS/$TALLY_FAIL/$TALLY_SKIP) are not the sum of the result lines ($sp/$sf/$ss)"
    TALLY_FAIL=$((TALLY_FAIL + 1))
  fi
  if [ "$TALLY_SKIP" -gt 0 ]; then
    echo "$TALLY_PASS passed, $TALLY_FAIL failed, $TALLY_SKIP skipped"
  else
    echo "$TALLY_PASS passed, $TALLY_FAIL failed"
  fi
  [ "$TALLY_FAIL" -eq 0 ]
}
