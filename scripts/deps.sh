#!/usr/bin/env bash
# Installs the Debian packages a target needs, only those missing.
#   scripts/deps.sh build|test|fuzz
set -euo pipefail
build=(make gcc pkg-config erlang-nox erlang-dev libevent-dev libssl-dev libcurl4-openssl-dev
       libjansson-dev libarchive-dev xxd
       qemu-system-x86 qemu-utils busybox-static cpio)
test=(erlang-eunit erlang-proper erlang-tools elixir libcmocka-dev procps curl rebar3 xxd
      prometheus chromium nodejs)
fuzz=(clang libclang-rt-14-dev)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  fuzz) want=("${build[@]}" "${fuzz[@]}") ;;
  *) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac
# sbx_http_tests drives Debian's chromium with playwright-core from npm, installed once into
# a cache outside the repository (a warm run fetches nothing).
npm_deps() {
  local dir=${SBX_NPM_DIR:-/var/cache/sandboxd/npm}
  [ -f "$dir/node_modules/playwright-core/package.json" ] && return 0
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"sandboxd-test-deps","private":true}' >"$dir/package.json"
  echo "installing playwright-core into $dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent playwright-core@1)
}
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "${1:-build}" = test ] && npm_deps
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "${1:-build}" = test ] && npm_deps
exit 0
