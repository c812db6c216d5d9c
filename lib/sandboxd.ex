defmodule Sandboxd do
  @moduledoc """
  Elixir client for a sandboxd node: every function of its `sandbox` module (docs/API.md),
  with the node first.

  Configs and options may be keyword lists or maps (nested keyword lists such as
  `health_check: [type: :tcp, port: 80]` become maps). Each function answers what the node
  answers (`{:ok, _}`, `:ok`, `{:error, reason}`); a node that cannot be reached gives
  `{:error, {:nodedown, node}}`, a call past its timeout `{:error, :timeout}`.

  Every function takes a last `opts` keyword list; `timeout:` (ms or `:infinity`) overrides
  the call's default timeout (`:sandboxd.default_timeout/2`: 5 minutes for `create`, a
  minute for `destroy`/`stop`/`start`/`restart`/`copy_*`, the command's `timeout_ms` plus
  5 s for `exec`, 30 s for the rest).

      {:ok, sb} = Sandboxd.create(node, "web", :process, cmd: ["sleep", "60"])
      {:ok, %{stdout: "hi\\n"}} = Sandboxd.exec(node, "web", ["echo", "hi"])
      :ok = Sandboxd.destroy(node, "web")
  """

  @typedoc "A sandbox id: a binary; atoms and charlists are accepted."
  @type id :: binary | atom | charlist
  @typedoc "A config or options: a keyword list or a map."
  @type config :: keyword | map
  @typedoc "`timeout:` overrides the call's default timeout."
  @type opts :: [timeout: timeout]
  @typedoc "The sandbox map (docs/API.md, Sandbox map)."
  @type sandbox :: map
  @typedoc "What a failed call answers."
  @type error ::
          {:error,
           :not_found
           | :already_exists
           | :timeout
           | :unsupported
           | :not_running
           | :paused
           | :not_paused
           | :limit_reached
           | {:nodedown, node}
           | {:badarg, term, atom}
           | {:unavailable, atom, term}
           | {:backend, atom, term}
           | {:badrpc, term}
           | term}
  @typedoc "Event topics."
  @type topic :: :status | :log | :metrics | :processes | :trace

  @doc "`:pong` when the node answers."
  @spec ping(node, opts) :: :pong | error
  def ping(node, opts \\ []), do: run(node, :ping, [], opts)

  @doc "The node's info map (name, version, counts, limits, backends...)."
  @spec info(node, opts) :: map | error
  def info(node, opts \\ []), do: run(node, :info, [], opts)

  @doc "Has sandboxd dial `target` itself and ping it (`:pong` or `:pang`)."
  @spec net_ping(node, node, opts) :: :pong | :pang | error
  def net_ping(node, target, opts \\ []), do: run(node, :net_ping, [target], opts)

  @doc """
  Creates a sandbox of `type` (`:process`, `:docker`, `:beam_node`, `:vm`) and answers once
  it runs (and is healthy, with a `health_check`).
  """
  @spec create(node, id, atom, config, opts) :: {:ok, sandbox} | error
  def create(node, id, type, config \\ [], opts \\ []),
    do: run(node, :create, [id, type, to_map(config)], opts)

  @doc "Destroys a sandbox: `:ok` once everything it owned is gone."
  @spec destroy(node, id, opts) :: :ok | error
  def destroy(node, id, opts \\ []), do: run(node, :destroy, [id], opts)

  @doc "Stops a sandbox's workload (the sandbox stays)."
  @spec stop(node, id, opts) :: {:ok, sandbox} | error
  def stop(node, id, opts \\ []), do: run(node, :stop, [id], opts)

  @doc "Starts a stopped sandbox's workload."
  @spec start(node, id, opts) :: {:ok, sandbox} | error
  def start(node, id, opts \\ []), do: run(node, :start, [id], opts)

  @doc "Restarts a sandbox's workload."
  @spec restart(node, id, opts) :: {:ok, sandbox} | error
  def restart(node, id, opts \\ []), do: run(node, :restart, [id], opts)

  @doc "The sandbox map."
  @spec get(node, id, opts) :: {:ok, sandbox} | error
  def get(node, id, opts \\ []), do: run(node, :get, [id], opts)

  @doc "Sandboxes in creation order; `filter` may hold `type`, `status`, `labels`."
  @spec list(node, config, opts) :: [sandbox] | error
  def list(node, filter \\ %{}, opts \\ []), do: run(node, :list, [to_map(filter)], opts)

  @doc """
  Runs `cmd` in the sandbox: a list of binaries (argv) or one binary (`/bin/sh -c`).
  `exec_opts`: `timeout_ms`, `env`, `cwd`, `stdin`, `max_output_bytes`.
  """
  @spec exec(node, id, [binary] | binary, config, opts) :: {:ok, map} | error
  def exec(node, id, cmd, exec_opts \\ %{}, opts \\ []),
    do: run(node, :exec, [id, cmd, to_map(exec_opts)], opts)

  @doc "Output lines, oldest first; `log_opts`: `tail` (default 100), `since`."
  @spec logs(node, id, config, opts) :: {:ok, [map]} | error
  def logs(node, id, log_opts \\ %{}, opts \\ []),
    do: run(node, :logs, [id, to_map(log_opts)], opts)

  @doc "CPU, memory and pids of the sandbox."
  @spec metrics(node, id, opts) :: {:ok, map} | error
  def metrics(node, id, opts \\ []), do: run(node, :metrics, [id], opts)

  @doc "The sandbox's processes (OS processes, or Erlang processes of a BEAM node)."
  @spec processes(node, id, opts) :: {:ok, [map]} | error
  def processes(node, id, opts \\ []), do: run(node, :processes, [id], opts)

  @doc """
  Sends `{:sandbox_event, id, topic, payload}` to `pid` for the sandbox (or `:all`); the
  subscription ends when `pid` dies. See `Sandboxd.Events` for a relay with node names.
  """
  @spec subscribe(node, id | :all, pid, [topic], opts) :: {:ok, reference} | error
  def subscribe(node, id, pid \\ self(), topics \\ [:status, :log], opts \\ []),
    do: run(node, :subscribe, [id, pid, topics], opts)

  @doc "Ends a subscription (`:ok` also for an unknown ref)."
  @spec unsubscribe(node, reference, opts) :: :ok | error
  def unsubscribe(node, ref, opts \\ []), do: run(node, :unsubscribe, [ref], opts)

  @doc "Writes `data` to `path` in the sandbox's workspace."
  @spec copy_to(node, id, Path.t(), binary, opts) :: :ok | error
  def copy_to(node, id, path, data, opts \\ []), do: run(node, :copy_to, [id, path, data], opts)

  @doc "Reads `path` from the sandbox's workspace."
  @spec copy_from(node, id, Path.t(), opts) :: {:ok, binary} | error
  def copy_from(node, id, path, opts \\ []), do: run(node, :copy_from, [id, path], opts)

  @doc """
  `:rpc.call(sandbox_node, m, f, a)` in a BEAM sandbox (beam_node, or docker with `beam`):
  answers exactly what `:rpc.call` would. With `timeout:` it is the rpc's own timeout
  (`remote_call/5` on the node) and the client waits 5 s longer; without, none (as
  `:rpc.call/4`).
  """
  @spec remote_call(node, id, module, atom, list, opts) :: term
  def remote_call(node, id, m, f, a, opts \\ []) do
    case Keyword.fetch(opts, :timeout) do
      {:ok, t} -> :sandboxd.remote_call(node, id, m, f, a, t)
      :error -> :sandboxd.remote_call(node, id, m, f, a)
    end
  end

  @doc "`:sys.get_state(pid_or_name, 5000)` in a BEAM sandbox's node."
  @spec get_state(node, id, pid | atom, opts) :: {:ok, term} | error
  def get_state(node, id, pid_or_name, opts \\ []),
    do: run(node, :get_state, [id, pid_or_name], opts)

  @doc "Starts a trace in a BEAM sandbox's node (spec: docs/API.md, Tracing)."
  @spec trace_start(node, id, config, opts) :: {:ok, reference} | error
  def trace_start(node, id, spec \\ %{}, opts \\ []),
    do: run(node, :trace_start, [id, to_map(spec)], opts)

  @doc "Ends a trace: `:ok` once it is off."
  @spec trace_stop(node, reference, opts) :: :ok | error
  def trace_stop(node, trace_ref, opts \\ []), do: run(node, :trace_stop, [trace_ref], opts)

  @doc """
  Freezes every process of the sandbox (status `:paused`); `:ok` once frozen. While paused,
  `exec`, `copy_to`, `copy_from`, `processes` and `metrics` answer `{:error, :paused}`.
  Pausing a paused sandbox answers `{:error, :paused}`, one that does not run
  `{:error, :not_running}`.
  """
  @spec pause(node, id, opts) :: :ok | error
  def pause(node, id, opts \\ []), do: run(node, :pause, [id], opts)

  @doc "Thaws a paused sandbox (status `:running` again); `{:error, :not_paused}` otherwise."
  @spec resume(node, id, opts) :: :ok | error
  def resume(node, id, opts \\ []), do: run(node, :resume, [id], opts)

  @doc "How to open an interactive shell in the sandbox (`%{kind: :exec | :remsh, ...}`)."
  @spec shell(node, id, opts) :: {:ok, map} | error
  def shell(node, id, opts \\ []), do: run(node, :shell, [id], opts)

  @doc "Calls `sandbox:fun(args...)` on the node, with the function's default timeout."
  @spec call(node, atom, list, opts) :: term
  def call(node, fun, args, opts \\ []), do: run(node, fun, args, opts)

  @doc """
  A keyword list (also nested, in values) as a map, `[]` as `%{}`; maps and other terms as
  they are.
  Lists that are not keyword lists (`cmd`, `ports: [{8080, 80}]`) are left alone.
  """
  @spec to_map(term) :: term
  def to_map([]), do: %{}
  def to_map(%{} = m) when not is_struct(m), do: Map.new(m, fn {k, v} -> {k, nested(v)} end)
  def to_map([{k, _} | _] = kw) when is_atom(k), do: if(Keyword.keyword?(kw), do: to_map(Map.new(kw)), else: kw)
  def to_map(other), do: other

  defp nested([{k, _} | _] = v) when is_atom(k), do: to_map(v)
  defp nested(%{} = v) when not is_struct(v), do: to_map(v)
  defp nested(v), do: v

  defp run(node, fun, args, opts) do
    timeout = Keyword.get_lazy(opts, :timeout, fn -> :sandboxd.default_timeout(fun, args) end)
    :sandboxd.call(node, fun, args, timeout)
  end
end
