#!/usr/bin/env bash
# Runs the libFuzzer target _build/c/fuzz/fuzz_dist (make -C c_src fuzz-bin) for SECONDS.
#   scripts/fuzz.sh SECONDS
# FUZZ_TARGET=fuzz_tls runs the TLS handshake / optfile target (test/fuzz/fuzz_tls.c) instead,
# with its own corpus _build/fuzz-corpus-fuzz_tls.
# Corpus: _build/fuzz-corpus (kept between runs, seeded here with valid inputs).
# Crashes: _build/fuzz-artifacts/<run>/crash-* (one directory per run).
# Prints libFuzzer's final figures and a triage of the crashes; exits 1 if any crash,
# leak, timeout or OOM file was written, 2 on usage errors.
#
# Environment:
#   FUZZ_JOBS=N            parallel jobs (default 1). The run uses libFuzzer's fork mode
#                          with -ignore_crashes=1, so a crash does not end it: the whole
#                          time goes to fuzzing and every distinct crash is kept.
#   FUZZ_FORK=0            single process instead: stops at the first crash.
#   FUZZ_IGNORE_KNOWN=1    do not hand terms showing a known c_src bug to ei (see
#                          test/fuzz/fuzz_dist.c), to look for new bugs.
#   FUZZ_MAX_LEN=N         largest input (default 4096).
set -u
cd "$(dirname "$0")/.." || exit 2

secs=${1:-}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
  echo "usage: $0 SECONDS" >&2
  exit 2
fi
TARGET=${FUZZ_TARGET:-fuzz_dist}
BIN=_build/c/fuzz/$TARGET
if [ ! -x "$BIN" ]; then
  echo "$BIN is missing: run make -C c_src fuzz-bin (or make fuzz)" >&2
  exit 2
fi
CORPUS=_build/fuzz-corpus
[ "$TARGET" = fuzz_dist ] || CORPUS=_build/fuzz-corpus-$TARGET
RUN=_build/fuzz-artifacts/$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$CORPUS" "$RUN"

# Seeds: the first byte selects the mode (low 2 bits: 0 term, 1 packet stream,
# 2 handshake bodies, 3 epmd replies) and options (see fuzz_dist.c). Written once.
seed() {
  local name=$1; shift
  # shellcheck disable=SC2059 # the escapes are the point
  [ -e "$CORPUS/seed-$name" ] || printf "$@" >"$CORPUS/seed-$name"
}
count() { find "$1" -type f | wc -l; }
PID='\x58\x77\x03a@b\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01'
if [ "$TARGET" = fuzz_tls ]; then
  # mode 0: raw client bytes; 1: a real handshake with (offset:16, xor:8) edits; 2: optfiles
  seed raw_record  '\x00\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00'
  seed plain_name  '\x00\x00\x0fN\x00\x00\x00\x01\x00\x00\xd7\xbd\x00\x00\x00\x05\x00\x03a@b'
  seed handshake   '\x01'
  seed edit_hello  '\x01\x00\x05\x01'
  seed edit_late   '\x01\x01\x20\x80\x02\x00\x10'
  seed optfile     "\\x02[{server, [{certfile, \"/a\"}, {verify, verify_peer}, {depth, 2}, {versions, ['tlsv1.2']}]}, {client, [{server_name_indication, disable}]}]."
elif [ "$TARGET" = fuzz_agent ]; then
  # first byte: read size - 1 (low 4 bits), bit 4 small decoder buffer; then the stream
  seed hello_req   '\x0f\x00\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01'
  seed out_split   '\x00\x00\x00\x00\x0e\x04\x00\x00\x00\x02\x01\x00\x00\x00\x04abcd\x00\x00\x00\x05\x0c\x00\x00\x00\x02'
  seed exec        '\x0f\x00\x00\x00\x1e\x02\x00\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x03cat\x00\x00\x00\x00\x00\x00\x00\x01/'
  seed ps_list     '\x0f\x00\x00\x00\x22\x0f\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00S\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x01i\x00\x00\x00\x00'
  seed huge        '\x13\xff\xff\xff\xff\x01\x00\x00\x00\x00'
else
# mode 0: terms
seed atom        '\x00\x77\x02ok'
seed tuple       '\x00\x68\x05\x77\x02ok\x61\x01\x6c\x00\x00\x00\x01\x77\x01a\x6a\x6d\x00\x00\x00\x01b\x74\x00\x00\x00\x00'
seed map         '\x00\x74\x00\x00\x00\x01\x77\x01k\x6b\x00\x03abc'
seed pid         "\\x00$PID"
seed ref         '\x00\x5a\x00\x03\x77\x03a@b\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03'
seed port        '\x00\x59\x77\x03a@b\x00\x00\x00\x07\x00\x00\x00\x01'
seed export      '\x00\x71\x77\x01m\x77\x01f\x61\x02'
seed fun         "\\x00\\x70\\x00\\x00\\x00\\x38\\x01$(printf '\\x%02x' {1..16})\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x77\\x01m\\x61\\x00\\x61\\x00$PID\\x61\\x07"
seed floats      "\\x00\\x6c\\x00\\x00\\x00\\x02\\x46\\x40\\x09\\x21\\xfb\\x54\\x44\\x2d\\x18\\x63\\x31\\x2e\\x35$(printf '\\x00%.0s' {1..28})\\x6a"
seed bigs        '\x00\x68\x02\x6e\x04\x00\x01\x02\x03\x04\x6f\x00\x00\x00\x02\x01\xff\xff'
seed bits        '\x00\x4d\x00\x00\x00\x02\x05\xff\xe0'
seed improper    '\x00\x6c\x00\x00\x00\x01\x61\x01\x61\x02'
seed string      '\x00\x6b\x00\x05hello'
seed nested      '\x00\x68\x01\x68\x01\x68\x01\x68\x01\x6c\x00\x00\x00\x01\x74\x00\x00\x00\x00\x6a'
# mode 1: packet streams (4-byte and, with option bit 4, 2-byte prefixes)
seed send        "\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x1f\\x70\\x83\\x68\\x03\\x61\\x02\\x77\\x00$PID\\x83\\x77\\x02hi"
seed ctl_only    '\x01\x00\x00\x00\x05\x70\x83\x68\x01\x6a'
seed prefix2     '\x05\x00\x05\x70\x83\x6a\x83\x6a\x00\x00'
seed too_big     '\x09\x00\x00\x01\x00\x70'
# mode 2: handshake bodies (0x82: status cap 300; 0x42: also digests)
seed name        '\x82N\x00\x00\x00\x01\x00\x00\xd7\xbd\x00\x00\x00\x05\x00\x03a@b'
seed challenge   '\x82N\x00\x00\x00\x01\x00\x00\xd7\xbd\x12\x34\x56\x78\x00\x00\x00\x05\x00\x03a@b'
seed status      '\x82sok'
seed reply       '\x42r\x00\x00\x30\x39\xd4\x04\x7d\x3e\x56\xe6\xd6\xd6\x3f\x7d\x16\xb8\x5c\xd2\xfa\x88'
seed ack         '\x42a\xd4\x04\x7d\x3e\x56\xe6\xd6\xd6\x3f\x7d\x16\xb8\x5c\xd2\xfa\x88'
# mode 3: epmd replies and node names
seed port2       '\x43\x77\x00\x11\x12\x4d\x00\x00\x06\x00\x05\x00\x03foo\x00\x00'
seed alive_x     '\x43\x76\x00\x00\x00\x00\x05'
seed alive_old   '\x43\x79\x00\x00\x03'
seed portplease  '\x43foo@bar'
fi

jobs=${FUZZ_JOBS:-1}
args=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$RUN/"
      -max_len="${FUZZ_MAX_LEN:-4096}" -timeout=10 -rss_limit_mb=2048)
if [ "${FUZZ_FORK:-1}" != 0 ]; then
  args+=(-fork="$jobs" -ignore_crashes=1)
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
[ "${FUZZ_IGNORE_KNOWN:-0}" = 1 ] && export SBX_FUZZ_IGNORE_KNOWN=1

LOG=$RUN/fuzz.log
echo "fuzz: $BIN for ${secs}s, corpus $CORPUS ($(count "$CORPUS") inputs), log $LOG"
start=$(date +%s)
"$BIN" "${args[@]}" "$CORPUS" >"$LOG" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))

# Final figures. Fork mode: the parent's last "#N: cov: ..." line; single process: the
# stat:: lines of -print_final_stats.
last=$(grep -E '^#[0-9]+: cov:' "$LOG" | tail -n 1)
if [ -n "$last" ]; then
  echo "$last"
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
else
  grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|stat::)' "$LOG" | tail -n 8
  execs=$(grep -E '^stat::number_of_executed_units:' "$LOG" | tail -n 1 | grep -oE '[0-9]+$')
fi
execs=${execs:-0}
echo "fuzz: $execs executions in ${elapsed}s ($(( execs / (elapsed > 0 ? elapsed : 1) )) exec/s)," \
     "corpus now $(count "$CORPUS") inputs"

# Crash files of this run, triaged by the first INVARIANT/SUMMARY line they produce.
shopt -s nullglob
found=("$RUN"/crash-* "$RUN"/leak-* "$RUN"/timeout-* "$RUN"/oom-*)
if [ ${#found[@]} -gt 0 ]; then
  echo "fuzz: ${#found[@]} crash file(s) in $RUN/"
  for f in "${found[@]:0:300}"; do
    why=$("$BIN" "$f" 2>&1 | grep -m1 -oE 'INVARIANT: .*|SUMMARY: .*|ERROR: libFuzzer: [a-z -]+')
    echo "${why:-unknown}"$'\t'"$f"
  done | sort | awk -F'\t' '{n[$1]++; if (!($1 in ex)) ex[$1]=$2}
      END {for (k in n) printf "  %4d  %s\n        e.g. %s\n", n[k], k, ex[k]}'
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "fuzz: libFuzzer exited with $rc but wrote no crash file; see $LOG"
  tail -n 20 "$LOG"
  exit 1
fi
echo "fuzz: no crashes"
