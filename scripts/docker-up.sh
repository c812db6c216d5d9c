#!/usr/bin/env bash
# Brings up what the Docker suites need, and nothing from any registry:
#   1. docker.io from apt if `dockerd` is missing (a newer client at /usr/local/bin/docker is fine:
#      it negotiates the API version down);
#   2. dockerd in the background if nothing answers /_ping on the socket (log: _build/dockerd.log);
#   3. the test image sandboxd-test/busybox:1, made with `docker import` of a busybox-static rootfs;
#   4. a check that a container actually runs from it.
# Idempotent; well under a second when everything is already up. Exits non-zero, saying why, if
# the engine cannot be brought up. Prints one line on success.
#
# dockerd flags. On the Debian 12 machines this is tested on (kernel 6.x, cgroup v1, root, ext4)
# plain `dockerd` with no flags works: storage driver overlay2, cgroup driver cgroupfs, iptables
# (iptables-nft) works, and so does the default bridge: containers get 172.17.0.0/16 addresses,
# reach the host's gateway address, and published ports (-p) answer on 127.0.0.1 and on the
# container's address. So no flags are passed by default. If dockerd dies while starting (what
# happens where iptables/NAT cannot be set up, e.g. in an unprivileged container), it is started
# once more with `--iptables=false --ip-forward=false`: containers still run and the bridge still
# gives them addresses, but they get no NAT to the outside. SANDBOXD_DOCKERD_FLAGS replaces the
# first attempt's flags. Side effect of the default flags on the host: dockerd turns on
# net.ipv4.ip_forward and sets the iptables FORWARD policy to DROP (its own chains accept its
# bridges' traffic), as it does everywhere.
#
# TLS (issue 13; scripts/docker-tls.sh): a dockerd started here also listens on
# tcp://127.0.0.1:23760 with --tlsverify and test certificates made once per machine under
# /var/cache/sandboxd/docker-tls. A dockerd that is already running without that listener is
# restarted once with it, under `flock /tmp/sbx-docker.lock` (the lock the Docker suites run
# under), keeping its other flags; containers survive only if it runs with --live-restore. A
# dockerd managed by systemd (-H fd://) is never restarted: the TLS tests are then skipped.
# When the listener answers, _build/docker-tls.env names it (DOCKER_TLS_HOST, DOCKER_TLS_CERTS,
# DOCKER_TLS_WRONG_CERTS) for scripts/test.sh; SANDBOXD_DOCKER_TLS=0 leaves TLS alone.
#
# Environment: DOCKER_HOST=unix:///path selects another socket (tcp:// engines are only checked,
# never started here).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=sandboxd-test/busybox:1
WAIT_S=60
LOG=$ROOT/_build/dockerd.log
T0=$(date +%s%N)
mkdir -p "$ROOT/_build"

die() { echo "docker-up: $*" >&2; exit 1; }
say() { echo "docker-up: $*" >&2; }
. "$ROOT/scripts/docker-tls.sh"
TLS_ENV=$ROOT/_build/docker-tls.env
rm -f "$TLS_ENV"

SOCK=/var/run/docker.sock
REMOTE=""
case "${DOCKER_HOST:-}" in
  "") ;;
  unix://*) SOCK=${DOCKER_HOST#unix://} ;;
  *) REMOTE=$DOCKER_HOST ;;
esac

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=NONE; fi
fi
as_root() {
  [ "$sudo" = NONE ] && die "need root (or password-less sudo) to: $*"
  $sudo "$@"
}

# The engine answers /_ping with "OK".
ping_engine() {
  if [ -z "$REMOTE" ] && command -v curl >/dev/null 2>&1; then
    [ "$(curl -s --max-time 3 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null)" = OK ]
  else
    command -v docker >/dev/null 2>&1 && timeout 10 docker version >/dev/null 2>&1
  fi
}

apt_install() {
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq --no-install-recommends "$@" >>"$ROOT/_build/docker-apt.log" 2>&1 ||
    { as_root apt-get update -qq >>"$ROOT/_build/docker-apt.log" 2>&1 &&
      as_root apt-get install -y -qq --no-install-recommends "$@" >>"$ROOT/_build/docker-apt.log" 2>&1; } ||
    die "apt-get install $* failed; see _build/docker-apt.log"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# One docker-up at a time (two `make test` runs must not both start dockerd or import the image).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ROOT/_build/docker-up.lock"
  flock -w 180 9 || die "another docker-up.sh holds _build/docker-up.lock"
fi

# Starts dockerd with the given flags and waits until it answers. 0: up; 1: it died; 2: timeout.
start_dockerd() {
  echo "=== $(date -u +%FT%TZ) dockerd $*" >>"$LOG"
  # setsid: its own session, so neither make's process group nor the test scripts' cleanup
  # takes it down with them; it keeps running after make test (the next run finds it up).
  # 8>&- 9>&-: dockerd must not keep holding the locks taken here.
  as_root setsid dockerd "$@" >>"$LOG" 2>&1 </dev/null 8>&- 9>&- &
  local pid=$! i
  for ((i = 0; i < WAIT_S * 4; i++)); do
    ping_engine && return 0
    # `as_root` exits when dockerd does (setsid without --fork execs in place after the fork).
    if ! kill -0 "$pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null 2>&1; then
      return 1
    fi
    sleep 0.25
  done
  return 2
}

# The TLS listener is wanted for a local engine, unless SANDBOXD_DOCKER_TLS=0.
tls_flags=()
if [ -z "$REMOTE" ] && [ "${SANDBOXD_DOCKER_TLS:-}" != 0 ] && docker_tls_certs; then
  # shellcheck disable=SC2207
  tls_flags=($(docker_tls_flags))
fi

started=""
if ! ping_engine; then
  [ -n "$REMOTE" ] && die "the engine at DOCKER_HOST=$REMOTE does not answer"
  if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "dockerd is not installed and there is no apt-get"
    apt_install docker.io
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but no dockerd on PATH"
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    # Already starting (or hung): give it the same time to answer.
    say "dockerd is running but not answering on $SOCK yet; waiting"
    for ((i = 0; i < WAIT_S * 4; i++)); do ping_engine && break; sleep 0.25; done
    ping_engine || die "dockerd (pid $(pgrep -x dockerd | tr '\n' ' ')) does not answer on $SOCK after ${WAIT_S}s"
  else
    host_flags=()
    [ "$SOCK" != /var/run/docker.sock ] && host_flags=(-H "unix://$SOCK")
    [ ${#tls_flags[@]} -gt 0 ] && host_flags=("${tls_flags[@]}")
    # shellcheck disable=SC2206
    flags=(${SANDBOXD_DOCKERD_FLAGS:-})
    start_dockerd "${host_flags[@]}" "${flags[@]}"; rc=$?
    if [ $rc -eq 1 ]; then
      say "dockerd exited while starting (tail of _build/dockerd.log below); retrying without iptables"
      tail -n 5 "$LOG" >&2
      flags=(--iptables=false --ip-forward=false)
      start_dockerd "${host_flags[@]}" "${flags[@]}"; rc=$?
    fi
    case $rc in
      0) started=" (started dockerd ${flags[*]:-with default flags}${tls_flags[*]:+ and the TLS listener})" ;;
      1) tail -n 20 "$LOG" >&2; die "dockerd exited while starting; see _build/dockerd.log" ;;
      *) tail -n 20 "$LOG" >&2; die "dockerd did not answer on $SOCK within ${WAIT_S}s; see _build/dockerd.log" ;;
    esac
  fi
fi

# Restarts the running dockerd ($1, its pid) with the TLS listener added to its other flags.
# Under /tmp/sbx-docker.lock, so that no Docker suite that takes it is running meanwhile.
restart_with_tls() {
  local pid=$1 args=() a skip=0 rc
  while IFS= read -r -d '' a; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case $a in
      -H|--host) skip=1 ;;
      -H*|--host=*|--tls*) ;;
      *) args+=("$a") ;;
    esac
  done < <(tail -z -n +2 "/proc/$pid/cmdline")
  say "restarting dockerd (pid $pid) to add the TLS listener on 127.0.0.1:$DOCKER_TLS_PORT"
  as_root kill -TERM "$pid" || return 1
  for ((i = 0; i < 120; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  [ -d "/proc/$pid" ] && { say "dockerd (pid $pid) did not stop within 30 s"; return 1; }
  start_dockerd "${args[@]}" "${tls_flags[@]}"; rc=$?
  [ $rc = 0 ] && started=" (restarted dockerd with the TLS listener)"
  return $rc
}

if [ ${#tls_flags[@]} -gt 0 ] && ! docker_tls_ping; then
  pid=$(pgrep -x dockerd | head -n 1)
  if [ -z "$pid" ]; then
    say "no dockerd process found to add the TLS listener to: TLS tests will be skipped"
  elif tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'fd://'; then
    say "dockerd (pid $pid) is managed by systemd: not restarting it for TLS; TLS tests will be skipped"
  else
    # A caller run under `flock /tmp/sbx-docker.lock` (flock(1) leaves the locked file open in
    # its child) already holds it: taking it again would wait for ourselves.
    held=""
    for fd in /proc/$$/fd/*; do
      [ "$(readlink "$fd")" = /tmp/sbx-docker.lock ] && held=1
    done
    exec 8>/tmp/sbx-docker.lock
    if [ -n "$held" ] || flock -w 300 8; then
      # Someone else may have done it meanwhile.
      docker_tls_ping || restart_with_tls "$pid" ||
        { tail -n 20 "$LOG" >&2; ping_engine || die "dockerd did not come back after the restart for TLS; see _build/dockerd.log"; }
      flock -u 8
    else
      say "/tmp/sbx-docker.lock is held for over 300 s: not restarting dockerd; TLS tests will be skipped"
    fi
    exec 8>&-
  fi
fi
tls=""
if [ ${#tls_flags[@]} -gt 0 ]; then
  for ((i = 0; i < 40; i++)); do docker_tls_ping && break; sleep 0.25; done
  if docker_tls_ping; then
    docker_tls_env >"$TLS_ENV"
    tls=", TLS on tcp://127.0.0.1:$DOCKER_TLS_PORT"
  else
    say "the engine does not answer over TLS on 127.0.0.1:$DOCKER_TLS_PORT: TLS tests will be skipped"
  fi
fi

command -v docker >/dev/null 2>&1 || apt_install docker.io
docker_() { timeout 120 docker "$@"; }

built=""
if ! docker_ image inspect "$IMAGE" >/dev/null 2>&1; then
  installed busybox-static || apt_install busybox-static
  bb=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n 1)
  [ -x "$bb" ] || die "busybox-static is installed but its /bin/busybox is missing"
  rootfs=$(mktemp -d "$ROOT/_build/rootfs.XXXXXX") || die "mktemp failed"
  trap 'rm -rf "$rootfs"' EXIT
  (
    set -e
    cd "$rootfs"
    mkdir -p bin sbin usr/bin usr/sbin etc root home tmp var/tmp proc sys dev app
    chmod 1777 tmp var/tmp
    cp "$bb" bin/busybox
    # Every applet where busybox would install it (bin/sh, usr/bin/env, sbin/ip, ...).
    for p in $(bin/busybox --list-full); do [ -e "$p" ] || ln -s /bin/busybox "$p"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >etc/passwd
    printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
  ) || die "could not build the rootfs in $rootfs"
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf - . |
    docker_ import --change 'CMD ["/bin/sh"]' \
      --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'LABEL org.sandboxd.test=1' - "$IMAGE" >/dev/null ||
    die "docker import of the busybox rootfs as $IMAGE failed"
  built=", image built"
fi

# The engine can answer and still be unable to run anything (runc, cgroups, storage driver).
out=$(docker_ run --rm --network none "$IMAGE" echo hi 2>&1)
[ "$out" = hi ] || die "docker run --rm $IMAGE echo hi did not print hi: $out"

ver=$(docker_ version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null)
ms=$((($(date +%s%N) - T0) / 1000000))
echo "docker: engine ${ver:-?} up${started}, $IMAGE ready${built}, containers run${tls} (${ms} ms)"
