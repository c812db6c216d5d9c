#!/usr/bin/env bash
# Builds the test image sandboxd-test/erlang:<OTP release> from this host's own Erlang
# installation, with no registry: busybox-static for /bin/sh, the host's /usr/lib/erlang, and
# every shared library its executables and NIFs link against (found with ldd), imported with
# `docker import`. Containers from it run `erl` as on the host; with --network host they reach
# the host's epmd, so a node started in one is reachable by its short name like a local node.
# Needs a running engine (scripts/docker-up.sh). Idempotent: an existing image is kept.
# Prints the image name on stdout.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
ERL_ROOT=$(erl -noshell -eval 'io:format("~s", [code:root_dir()]), halt().')
OTP=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
IMAGE=sandboxd-test/erlang:$OTP

if timeout 60 docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
bb=$(dpkg -L busybox-static 2>/dev/null | grep -E '/bin/busybox$' | head -n 1)
[ -x "$bb" ] || { echo "docker-erlang-image: busybox-static is missing (run scripts/docker-up.sh)" >&2; exit 1; }
mkdir -p "$ROOT/_build"
rootfs=$(mktemp -d "$ROOT/_build/erlroot.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
cd "$rootfs"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp var/tmp proc sys dev app
chmod 1777 tmp var/tmp
cp "$bb" bin/busybox
for p in $(bin/busybox --list-full); do [ -e "$p" ] || ln -s /bin/busybox "$p"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
mkdir -p ".$(dirname "$ERL_ROOT")"
cp -a "$ERL_ROOT" ".$ERL_ROOT"
rm -rf ".$ERL_ROOT/man" ".$ERL_ROOT"/lib/*/src ".$ERL_ROOT"/lib/*/doc
ln -sf "$ERL_ROOT/bin/erl" usr/bin/erl
ln -sf "$ERL_ROOT/bin/epmd" usr/bin/epmd
# Every library the ELF files need, at the path the host has it (the loader included).
find ".$ERL_ROOT" -type f -perm -u+x -o -type f -name '*.so' | while read -r f; do
  ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true
done | sort -u | while read -r lib; do
  [ -e "$lib" ] || continue
  mkdir -p ".$(dirname "$lib")"
  cp -L "$lib" ".$lib"
done
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf - . |
  timeout 300 docker import --change 'CMD ["erl"]' \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root' \
    --change 'LABEL org.sandboxd.test=1' - "$IMAGE" >/dev/null
echo "$IMAGE"
