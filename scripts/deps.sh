#!/usr/bin/env bash
# Installs the Debian packages a target needs, only those missing.
#   scripts/deps.sh build|test|fuzz
set -euo pipefail
build=(make gcc pkg-config erlang-nox erlang-dev libevent-dev libssl-dev libcurl4-openssl-dev
       libjansson-dev libarchive-dev)
test=(erlang-eunit erlang-proper erlang-tools elixir libcmocka-dev procps curl rebar3)
fuzz=(clang libclang-rt-14-dev)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  fuzz) want=("${build[@]}" "${fuzz[@]}") ;;
  *) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
