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

A process sandbox (the default backend), a command run in it, and its output:

  iex> n = :"$NODE"
  iex> {:ok, sb} = :rpc.call(n, :sandbox, :create, ["web1", :process, %{cmd: ["sh", "-c", "while true; do date; sleep 1; done"]}])
  iex> :rpc.call(n, :sandbox, :exec, ["web1", ["uname", "-a"]])
  iex> :rpc.call(n, :sandbox, :logs, ["web1", %{tail: 5}])
  iex> :rpc.call(n, :sandbox, :subscribe, ["web1", self(), [:status, :log]]); flush()
  iex> :rpc.call(n, :sandbox, :destroy, ["web1"])

Stop with Ctrl-C (peers see nodedown). Extra flags: SANDBOXD_ARGS="--log-level debug" make run
MSG
# shellcheck disable=SC2086
STATE_DIR=${SANDBOXD_STATE_DIR:-$PWD/_build/run-state}
echo "State (journal, logs, workspaces): $STATE_DIR"
# The HTTP side on a loopback port: metrics, health, JSON API and the live view.
HTTP=${SANDBOXD_HTTP:-127.0.0.1:8480}
echo "Live view: http://$HTTP/   (also /metrics, /healthz, /readyz, /api/sandboxes)"
exec priv/sandboxd --sname "$SNAME" --state-dir "$STATE_DIR" --http "$HTTP" ${SANDBOXD_ARGS:-}
