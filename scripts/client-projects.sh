#!/usr/bin/env bash
# The client library as a dependency, in projects made here (issue 11), against the release
# binary the checkout built: a fresh Mix project (compiled with neither hex nor rebar3 on PATH,
# then `mix test`) and a rebar3 project (`rebar3 compile`, then its suite). Prints one result
# line per project through scripts/tally.sh. Sourced by scripts/test.sh, or run alone after
# `make test-build`: scripts/client-projects.sh
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
if [ -z "${TALLY_LINES:-}" ]; then
  STANDALONE=1
  LOGS=${SBX_LOG_DIR:-$ROOT/_build/test/logs}
  mkdir -p "$LOGS"
  export SBX_LOG_DIR=$LOGS
  . "$ROOT/scripts/tally.sh"
  tally_reset
fi
WORK=$ROOT/_build/client-projects
rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/home"
PROJ_COOKIE=sbxproj_$$_$RANDOM$RANDOM$RANDOM

# A PATH with everything of /usr/bin (/bin is the same on Debian 12) but rebar3, and a Mix
# home without hex.
ln -s /usr/bin/* "$WORK/bin/"
rm -f "$WORK/bin/rebar3"
bare_env() {
  env -u MIX_REBAR3 -u MIX_REBAR -u HEX_HOME PATH="$WORK/bin" HOME="$WORK/home" \
    MIX_HOME="$WORK/home/.mix" SBX_LOG_DIR="$SBX_LOG_DIR" "$@"
}

# 1. Mix: `mix new`, the dependency by path, `mix compile`, `mix test`.
mix_out=$SBX_LOG_DIR/client-mix-project.out
(
  set -e
  cd "$WORK"
  bare_env sh -c '! command -v rebar3 && ! ls "$MIX_HOME"/archives/hex* 2>/dev/null' >/dev/null
  bare_env mix new client_app >/dev/null
  cd client_app
  cat >mix.exs <<MIX
defmodule ClientApp.MixProject do
  use Mix.Project
  def project, do: [app: :client_app, version: "0.1.0", elixir: "~> 1.14", deps: [{:sandboxd, path: "$ROOT"}]]
  def application, do: [extra_applications: [:logger]]
end
MIX
  rm -f test/client_app_test.exs
  cp "$ROOT/test/projects/mix/client_app_test.exs" test/
  echo "== mix compile [+${SECONDS}s] (PATH without rebar3, MIX_HOME without hex)"
  bare_env mix compile
  echo "== mix test [+${SECONDS}s]"
  bare_env elixir --sname "sbx_mixproj_$$" --cookie "$PROJ_COOKIE" -S mix test --seed 0 --trace
) >"$mix_out" 2>&1
mix_rc=$?
cat "$mix_out"
tally_exunit client-mix-project "$mix_out" "$mix_rc"

# 2. rebar3: the checkout in _checkouts, `rebar3 compile`, then the project's suite.
reb_out=$SBX_LOG_DIR/client-rebar3-project.out
if ! command -v rebar3 >/dev/null; then
  echo "no rebar3 (scripts/deps.sh test installs Debian's)" >"$reb_out"
  rc=1
else
  (
    set -e
    mkdir -p "$WORK/rebar_app/_checkouts"
    cp -r "$ROOT/test/projects/rebar3/." "$WORK/rebar_app/"
    ln -s "$ROOT" "$WORK/rebar_app/_checkouts/sandboxd"
    cd "$WORK/rebar_app"
    echo "== rebar3 compile [+${SECONDS}s]"
    HOME="$WORK/home" rebar3 compile
    pa=()
    for e in _build/default/lib/*/ebin _build/default/checkouts/*/ebin; do
      [ -d "$e" ] && pa+=(-pa "$e")
    done
    echo "== client_app_tests [+${SECONDS}s]"
    erl -sname "sbx_rebproj_$$" -setcookie "$PROJ_COOKIE" -noshell "${pa[@]}" -pa "$ROOT/_build/test/ebin" \
      -run sbx_test_runner main client-rebar3-project client_app_tests
  ) >"$reb_out" 2>&1
  rc=$?
fi
cat "$reb_out"
tally_runner client-rebar3-project "$reb_out" "$rc"

[ -n "${STANDALONE:-}" ] && tally_final
true
