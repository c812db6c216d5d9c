#!/usr/bin/env bash
# Builds Erlang/OTP releases newer than Debian 12's from Debian's own source packages, for the
# OTP matrix of `make test` (scripts/test.sh). Usage: scripts/otp.sh [VERSION...]
# (default: every version in OTP_VERSIONS below). Prints nothing but progress; exits non-zero
# when a build fails.
#
# - Each release comes from the Debian suite that carries it, through deb-src lines in a private
#   apt directory ($OTP_CACHE/apt/<suite>): /etc/apt is left alone. The archive's address is
#   taken from this machine's own apt sources.
# - Only the applications the tests need are built (every other lib/<app> gets a SKIP file).
# - Installs into $OTP_CACHE/<version> (default /var/cache/sandboxd/otp), outside the
#   repository, so only the first run on a machine pays for the build; a present
#   $OTP_CACHE/<version>/.complete skips it.
# - The build runs niced: the machine is shared. Runs for the same version are serialised
#   (flock on $OTP_CACHE/.lock-<version>).
set -euo pipefail

OTP_CACHE=${OTP_CACHE:-/var/cache/sandboxd/otp}
# version -> Debian suite whose source package `erlang` is that version.
declare -A OTP_SUITE=([27.3.4.1]=trixie [29.1.1]=forky)
OTP_VERSIONS=(27.3.4.1 29.1.1)
# Applications the dist and beam_node suites use on these nodes (and what they need to build).
KEEP_APPS="kernel stdlib compiler sasl crypto public_key asn1 ssl runtime_tools tools
  syntax_tools parsetools erl_interface"

log() { echo "otp.sh: $*" >&2; }

# The archive URI of this machine's Debian sources (deb822 or one-line form).
archive_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { print $2; exit }' "$f")
    case "$uri" in *debian-security*|"") ;; *) echo "$uri"; return 0 ;; esac
  done
  uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
    /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { log "no Debian archive URI in /etc/apt"; return 1; }
  echo "$uri"
}

# Downloads and unpacks source package erlang of suite $1 into directory $2; prints the tree.
fetch_source() {
  local suite=$1 dir=$2 apt=$OTP_CACHE/apt/$suite uri
  uri=$(archive_uri)
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" "$suite" >"$apt/sources.sources"
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o "APT::Sandbox::User=root" -o "Acquire::Check-Valid-Until=false")
  apt-get "${opts[@]}" update >&2
  # The index may name a Debian revision whose .dsc and patches have left the pool while the
  # upstream tarball is still there (seen: trixie, 27.3.4.1+dfsg-1+deb13u4): then build the
  # tarball alone (Debian's patches are packaging fixes the tests do not need).
  if ! (cd "$dir" && apt-get "${opts[@]}" source erlang >&2); then
    local orig
    orig=$(find "$dir" -maxdepth 1 -name 'erlang_*.orig.tar.*' | head -1)
    [ -n "$orig" ] || return 1
    log "unpacking $orig alone"
    tar -C "$dir" -xf "$orig"
  fi
  local v
  v=$(find "$dir" -mindepth 2 -maxdepth 2 -name OTP_VERSION | head -1)
  [ -n "$v" ] && dirname "$v"
}

build_one() {
  local vsn=$1 suite=${OTP_SUITE[$1]:-} prefix=$OTP_CACHE/$1 work src start
  [ -n "$suite" ] || { log "unknown version $vsn (known: ${OTP_VERSIONS[*]})"; return 1; }
  if [ -f "$prefix/.complete" ] && [ -x "$prefix/bin/erl" ]; then
    log "OTP $vsn present in $prefix"
    return 0
  fi
  start=$SECONDS
  work=$OTP_CACHE/build-$vsn
  rm -rf "$work" "$prefix"
  src=$(fetch_source "$suite" "$work")
  [ -n "$src" ] && [ -f "$src/OTP_VERSION" ] || { log "no source tree for $vsn"; return 1; }
  grep -qx "$vsn" "$src/OTP_VERSION" || {
    log "suite $suite carries OTP $(cat "$src/OTP_VERSION"), not $vsn"; return 1; }
  local app
  for app in "$src"/lib/*/; do
    app=$(basename "$app")
    case " $(echo $KEEP_APPS) " in *" $app "*) ;; *) touch "$src/lib/$app/SKIP" ;; esac
  done
  log "building OTP $vsn in $src (log: $work/build.log)"
  (cd "$src" &&
    nice -n 10 ./configure --prefix="$prefix" --without-wx --without-javac --without-jinterface \
      --without-odbc --disable-silent-rules &&
    nice -n 10 make -j2 &&
    make install) >"$work/build.log" 2>&1 || {
      tail -40 "$work/build.log" >&2; log "OTP $vsn build failed"; return 1; }
  "$prefix/bin/erl" -noshell -eval 'ok = application:load(ssl), halt().' ||
    { log "OTP $vsn installed but ssl does not load"; return 1; }
  touch "$prefix/.complete"
  rm -rf "$work"
  log "OTP $vsn built in $((SECONDS - start)) s into $prefix"
}

[ $# -gt 0 ] || set -- "${OTP_VERSIONS[@]}"
mkdir -p "$OTP_CACHE"
for v in "$@"; do
  # One build of a version at a time on a machine: a second run waits for the first (up to
  # an hour), then finds its result.
  (
    flock -w 3600 9 || { log "another scripts/otp.sh holds $OTP_CACHE/.lock-$v"; exit 1; }
    build_one "$v"
  ) 9>"$OTP_CACHE/.lock-$v"
done
