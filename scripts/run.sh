#!/usr/bin/env bash
# `make run`: start epmd if needed, then sandboxd in the foreground with the default
# cookie (~/.erlang.cookie, the one iex and erl use), and say how to reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
epmd -daemon >/dev/null 2>&1 || true
SNAME=${SANDBOXD_SNAME:-sandboxd}
HOST=$(hostname -s)
NODE="$SNAME@$HOST"
cat <<MSG
sandboxd is starting as $NODE (hidden node; cookie from \$SANDBOXD_COOKIE or ~/.erlang.cookie).
From another terminal on this machine, as the same user:

  iex --sname me
  iex> Node.ping(:"$NODE")                                   # :pong
  iex> :rpc.call(:"$NODE", :sandbox, :ping, [])              # :pong
  iex> :rpc.call(:"$NODE", :sandbox, :info, [])              # node, version, uptime, backends
  iex> GenServer.call({:sandboxd, :"$NODE"}, {:info})        # the same through gen_server

Stop with Ctrl-C (peers see nodedown). Extra flags: SANDBOXD_ARGS="--log-level debug" make run
MSG
# shellcheck disable=SC2086
exec priv/sandboxd --sname "$SNAME" ${SANDBOXD_ARGS:-}
