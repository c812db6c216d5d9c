defmodule Sandboxd.Daemon do
  @moduledoc """
  Runs a sandboxd daemon from your supervision tree (as MuonTrap.Daemon runs a program):

      children = [
        {Sandboxd.Daemon, name: "sbx", state_dir: "/var/lib/myapp/sbx", shutdown_policy: :keep},
        {Sandboxd.Events, nodes: [Sandboxd.Daemon.node_name("sbx")]}
      ]

  The daemon (`priv/sandboxd`) runs as `sbx@<this host>` with this node's cookie, passed in
  its environment, never on its command line; the local node must be distributed.
  `start_link/1` returns `{:ok, pid}` only once the daemon answers `sandbox:ping/0`. When
  the daemon exits the process stops, its supervisor starts it again, and the new daemon
  (same name, same state directory) adopts the sandboxes still running. On shutdown it is
  sent SIGTERM and waited for (`stop_timeout`), then SIGKILL.

  Options: `name` (default `"sandboxd"`), `state_dir`, `shutdown_policy` (`:keep` |
  `:destroy`: what a clean stop does to the sandboxes), `args` (more daemon arguments),
  `bin` (default `Application.app_dir(:sandboxd, "priv/sandboxd")`), `start_timeout` (ms,
  default 20000), `stop_timeout` (ms, default 10000), `log_file` (the daemon's log is
  appended there), `register` (a local name for this process), `id` (the child id, default
  `:sandboxd_daemon`: give each daemon of one supervisor its own), `restart`.

  The `:sandboxd` application never starts a daemon by itself. From Erlang:
  `sandboxd_daemon:child_spec/1` and `sandboxd_daemon:start_link/1`.
  """

  @typedoc "Options: a keyword list or a map (see the module doc)."
  @type options :: keyword | map

  @doc "A child spec: a worker whose shutdown budget covers `stop_timeout`."
  @spec child_spec(options) :: Supervisor.child_spec()
  def child_spec(opts), do: :sandboxd_daemon.child_spec(normalize(opts))

  @doc "Starts the daemon; `{:ok, pid}` once its node answers `sandbox:ping/0`."
  @spec start_link(options) :: {:ok, pid} | {:error, term}
  def start_link(opts), do: :sandboxd_daemon.start_link(normalize(opts))

  @doc "The daemon's node name."
  @spec node(GenServer.server()) :: node
  def node(server), do: :sandboxd_daemon.node(server)

  @doc "The daemon's OS pid."
  @spec os_pid(GenServer.server()) :: non_neg_integer
  def os_pid(server), do: :sandboxd_daemon.os_pid(server)

  @doc "The node name a daemon started here with `name` gets: `name@<this host>`."
  @spec node_name(String.t() | atom) :: node
  def node_name(name), do: :sandboxd_daemon.node_name(name)

  defp normalize(opts) when is_map(opts), do: opts
  defp normalize(opts) when is_list(opts), do: Map.new(opts)
end
