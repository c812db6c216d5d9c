# The Elixir client library (lib/): Sandboxd, Sandboxd.Daemon, Sandboxd.Events and the
# ExUnit helper Sandboxd.Case, against a daemon this file starts under ExUnit's supervisor.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
Code.require_file("support/client_helper.exs", __DIR__)
ExUnit.start(trace: true)

defmodule SandboxdClientDocsTest do
  use ExUnit.Case

  @modules [Sandboxd, Sandboxd.Daemon, Sandboxd.Events, Sandboxd.Events.Relay,
            Sandboxd.Cluster, Sandboxd.Case]

  test "every public function and macro of the client has a @doc (or says @doc false)" do
    entries =
      for mod <- @modules,
          {:docs_v1, _, :elixir, _, moddoc, _, docs} = Code.fetch_docs(mod),
          entry <- [{{:module, mod, 0}, nil, nil, moddoc, nil} | docs],
          match?({{kind, _, _}, _, _, _, _} when kind in [:module, :function, :macro], entry),
          do: {mod, entry}

    # every module's functions were looked at (Sandboxd alone has 29 documented ones)
    assert length(entries) > 60
    assert {{:function, :create, 5}, _, _, %{"en" => _}, _} =
             List.keyfind(Code.fetch_docs(Sandboxd) |> elem(6), {:function, :create, 5}, 0)
    missing = for {mod, {key, _, _, :none, _}} <- entries, do: {mod, key}
    assert missing == []
  end

  # A function with default arguments has one spec, for its full arity.
  test "every public function has a @spec (Elixir modules and the Erlang modules)" do
    for mod <- @modules ++ [:sandboxd, :sandboxd_daemon] do
      {:ok, specs} = Code.Typespec.fetch_specs(mod)
      have = for {{name, arity}, _} <- specs, do: {name, arity}
      hidden =
        case Code.fetch_docs(mod) do
          {:docs_v1, _, _, _, _, _, docs} ->
            for {{_, name, arity}, _, _, :hidden, _} <- docs, do: {name, arity}
          _ ->
            []
        end

      exported = mod.module_info(:exports) -- [module_info: 0, module_info: 1, __info__: 1]
      callbacks = [init: 1, handle_call: 3, handle_cast: 2, handle_info: 2, terminate: 2,
                   handle_continue: 2, code_change: 3, format_status: 2, child_spec: 1,
                   __using__: 1]
      unspecced = for {n, a} <- exported, not Enum.any?(have, fn {hn, ha} -> hn == n and ha >= a end),
                      {n, a} not in hidden,
                      {n, a} not in callbacks, not String.starts_with?(Atom.to_string(n), "MACRO-"),
                      do: {n, a}
      assert {mod, unspecced} == {mod, []}
    end
  end
end

defmodule SandboxdClientTest do
  use ExUnit.Case

  setup_all do
    name = ClientHelper.unique("sbxcl")
    pid = start_supervised!({Sandboxd.Daemon, ClientHelper.daemon_opts(name)})
    node = Sandboxd.Daemon.node(pid)
    start_supervised!({Sandboxd.Events, nodes: [node], topics: [:status, :log]})
    on_exit(fn -> assert ClientHelper.sanitizer_report(name) == nil end)
    {:ok, node: node, daemon: pid, name: name}
  end

  test "Sandboxd.Daemon answers ping before start_link returns, as name@host, cookie off its command line",
       %{node: n, daemon: pid, name: name} do
    assert n == Sandboxd.Daemon.node_name(name)
    assert Sandboxd.ping(n) == :pong
    os_pid = Sandboxd.Daemon.os_pid(pid)
    cmdline = File.read!("/proc/#{os_pid}/cmdline")
    refute cmdline =~ Atom.to_string(Node.get_cookie())
    environ = File.read!("/proc/#{os_pid}/environ")
    refute environ =~ Atom.to_string(Node.get_cookie())
  end

  test "Sandboxd.Daemon.start_link errors: a daemon of that name answers already; the daemon exits at once",
       %{node: n, name: name} do
    Process.flag(:trap_exit, true)
    assert {:error, {:already_running, ^n}} =
             Sandboxd.Daemon.start_link(ClientHelper.daemon_opts(name))
    other = ClientHelper.unique("sbxbad")
    assert {:error, {:exited, status, lines}} =
             Sandboxd.Daemon.start_link(ClientHelper.daemon_opts(other, args: ["--no-such-option"]))
    assert status != 0 and is_list(lines)
  end

  # The daemon reads its standard input (the port's pipe) and stops when it closes: a node
  # killed with SIGKILL cannot stop its daemon itself, and must not leave it running.
  test "the daemon stops when the node that started it is killed with SIGKILL" do
    name = ClientHelper.unique("sbxorph")
    opts = ClientHelper.daemon_opts(name)
    paths = Enum.uniq(for m <- [Sandboxd, :sandboxd_daemon], do: Path.dirname(:code.which(m)))
    code = """
    {:ok, pid} = Sandboxd.Daemon.start_link(#{inspect(opts)})
    IO.puts("daemon_os_pid=" <> Integer.to_string(Sandboxd.Daemon.os_pid(pid)))
    Process.sleep(:infinity)
    """
    args = ["--sname", ClientHelper.unique("sbxparent"), "--cookie", Atom.to_string(Node.get_cookie())] ++
             Enum.flat_map(paths, &["-pa", &1]) ++ ["-e", code]
    port = Port.open({:spawn_executable, System.find_executable("elixir")},
                     [:binary, :exit_status, :stderr_to_stdout, {:line, 4096}, args: args])
    {:os_pid, parent} = Port.info(port, :os_pid)
    daemon = await_daemon_pid(port, System.monotonic_time(:millisecond) + 90_000)
    assert is_integer(daemon) and File.exists?("/proc/#{daemon}")
    assert Sandboxd.ping(Sandboxd.Daemon.node_name(name)) == :pong
    System.cmd("kill", ["-KILL", Integer.to_string(parent)])
    assert ClientHelper.wait_until(fn -> not File.exists?("/proc/#{daemon}") end, 30_000)
    assert ClientHelper.sanitizer_report(name) == nil
  end

  defp await_daemon_pid(port, deadline) do
    receive do
      {^port, {:data, {:eol, "daemon_os_pid=" <> pid}}} -> String.to_integer(pid)
      {^port, {:data, _}} -> await_daemon_pid(port, deadline)
      {^port, {:exit_status, status}} -> {:parent_exited, status}
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> :timeout
    end
  end

  test "create, get, list, exec, logs, copy_to/copy_from, metrics, processes, shell, pause/resume, destroy with keyword configs",
       %{node: n} do
    assert {:ok, %{id: "c1", status: :running, labels: %{"app" => "t"}}} =
             Sandboxd.create(n, :c1, :process, cmd: ["sh", "-c", "echo hello; sleep 100"],
                             labels: %{"app" => "t"},
                             health_check: [type: :exec, cmd: ["true"], timeout_ms: 5000])
    assert {:ok, %{id: "c1"}} = Sandboxd.get(n, "c1")
    assert [%{id: "c1"}] = Sandboxd.list(n, labels: %{"app" => "t"})
    assert {:ok, %{exit_code: 0, stdout: "hi\n"}} = Sandboxd.exec(n, "c1", ["echo", "hi"], timeout_ms: 5000)
    assert {:ok, %{exit_code: 3}} = Sandboxd.exec(n, "c1", "exit 3")
    assert ClientHelper.wait_until(fn ->
             match?({:ok, [_ | _]}, Sandboxd.logs(n, "c1", tail: 10))
           end)
    assert :ok = Sandboxd.copy_to(n, "c1", "f.txt", "data")
    assert {:ok, "data"} = Sandboxd.copy_from(n, "c1", "f.txt")
    assert {:ok, %{pids: _}} = Sandboxd.metrics(n, "c1")
    assert {:ok, [_ | _]} = Sandboxd.processes(n, "c1")
    assert {:ok, %{kind: :exec}} = Sandboxd.shell(n, "c1")
    assert {:error, :not_paused} = Sandboxd.resume(n, "c1")
    assert :ok = Sandboxd.pause(n, "c1")
    assert {:ok, %{status: :paused}} = Sandboxd.get(n, "c1")
    assert {:error, :paused} = Sandboxd.exec(n, "c1", "true")
    assert {:error, :paused} = Sandboxd.pause(n, "c1", timeout: 10_000)
    assert :ok = Sandboxd.resume(n, "c1", timeout: 10_000)
    assert {:ok, %{status: :running}} = Sandboxd.get(n, "c1")
    assert {:ok, %{status: :stopped}} = Sandboxd.stop(n, "c1")
    assert {:ok, %{status: :running}} = Sandboxd.start(n, "c1")
    assert {:ok, %{status: :running}} = Sandboxd.restart(n, "c1")
    assert {:error, :unsupported} = Sandboxd.remote_call(n, "c1", :erlang, :node, [])
    assert {:error, :unsupported} = Sandboxd.get_state(n, "c1", :kernel_sup)
    assert {:error, :unsupported} = Sandboxd.trace_start(n, "c1", pids: :all)
    assert :ok = Sandboxd.destroy(n, "c1")
    assert {:error, :not_found} = Sandboxd.get(n, "c1")
    assert {:error, :already_exists} =
             with({:ok, _} <- Sandboxd.create(n, "c2", :process, %{cmd: ["sleep", "100"]}),
                  do: Sandboxd.create(n, "c2", :process, %{cmd: ["sleep", "100"]}))
    assert :ok = Sandboxd.destroy(n, "c2")
    assert {:error, {:badarg, :type, _}} = Sandboxd.create(n, "c3", :nope, [])
  end

  test "Sandboxd.Daemon stopped by its supervisor: SIGTERM, and with shutdown_policy :destroy no sandbox process is left" do
    name = ClientHelper.unique("sbxst")
    pid = start_supervised!(Sandboxd.Daemon.child_spec(ClientHelper.daemon_opts(name, id: :stopped_one)))
    n = Sandboxd.Daemon.node(pid)
    os_pid = Sandboxd.Daemon.os_pid(pid)
    {:ok, %{ref: sandbox_pid}} = Sandboxd.create(n, "s1", :process, cmd: ["sleep", "300"])
    :ok = stop_supervised(:stopped_one)
    refute running?(os_pid)
    assert ClientHelper.wait_until(fn -> not running?(sandbox_pid) end, 10_000)
    assert File.read!(Path.join(ClientHelper.log_dir(), name <> ".log")) =~ "msg=\"stopping\" signal=15"
    assert ClientHelper.sanitizer_report(name) == nil
  end

  # An OS process that runs (a zombie does not).
  defp running?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} -> not (stat |> String.split(") ") |> List.last() |> String.starts_with?("Z"))
      _ -> false
    end
  end

  test "errors: an unreachable node is {:error, {:nodedown, node}}, a call past its timeout {:error, :timeout}",
       %{node: n} do
    assert Sandboxd.ping(:"nobody_here@nowhere") == {:error, {:nodedown, :"nobody_here@nowhere"}}
    assert Sandboxd.list(:"nobody_here@nowhere") == {:error, {:nodedown, :"nobody_here@nowhere"}}
    {:ok, _} = Sandboxd.create(n, "slow", :process, cmd: ["sleep", "100"])
    assert {:error, :timeout} = Sandboxd.exec(n, "slow", ["sleep", "3"], %{}, timeout: 200)
    assert {:error, {:badrpc, {:EXIT, {:undef, _}}}} = Sandboxd.call(n, :no_such_function, [])
    assert :ok = Sandboxd.destroy(n, "slow")
  end

  test "remote_call, get_state and trace_start/trace_stop reach a beam_node sandbox", %{node: n} do
    assert {:ok, %{node: _, ref: bnode}} = Sandboxd.create(n, "b1", :beam_node, [])
    assert Sandboxd.remote_call(n, "b1", :erlang, :node, []) == bnode
    assert Sandboxd.remote_call(n, "b1", :timer, :sleep, [2000], timeout: 100) == {:badrpc, :timeout}
    assert {:ok, _} = Sandboxd.get_state(n, "b1", :kernel_sup)
    {:ok, _} = Sandboxd.subscribe(n, "b1", self(), [:trace])
    assert {:ok, ref} = Sandboxd.trace_start(n, "b1", pids: :new, flags: [:procs], max_events: 10)
    assert :ok = Sandboxd.trace_stop(n, ref)
    assert_receive {:sandbox_event, "b1", :trace, %{event: :trace_end}}, 30_000
    assert :ok = Sandboxd.destroy(n, "b1")
  end

  test "Sandboxd.Events: a subscriber gets {:sandbox_event, node, id, topic, data} for its id and for :all",
       %{node: n} do
    :ok = Sandboxd.Events.subscribe("ev1")
    :ok = Sandboxd.Events.subscribe(:all)
    {:ok, _} = Sandboxd.create(n, "ev1", :process, cmd: ["sh", "-c", "while true; do echo tick; sleep 0.2; done"])
    assert_receive {:sandbox_event, ^n, "ev1", :log, %{data: data}}, 30_000
    assert data =~ "tick"
    # the same event twice: once as a subscriber of "ev1", once of :all
    assert_receive {:sandbox_event, ^n, "ev1", :log, %{data: _}}, 30_000
    :ok = Sandboxd.Events.unsubscribe("ev1")
    :ok = Sandboxd.Events.unsubscribe(:all)
    :ok = Sandboxd.Events.subscribe(:ev1)
    :ok = Sandboxd.destroy(n, "ev1")
    assert_receive {:sandbox_event, ^n, "ev1", :status, %{to: :stopped}}, 30_000
  end

  test "Sandboxd.Case: a passing and two failing tests (one raises, one kills its process) leave no sandbox",
       %{node: n} do
    fixture = Path.join(__DIR__, "support/case_fixture.exs")
    root = Path.expand("../..", __DIR__)
    ebins = ["-pa", Path.join(root, "ebin"), "-pa", Path.join(root, "_build/test/ebin")]
    args = ["--sname", ClientHelper.unique("casefx"), "--cookie", Atom.to_string(Node.get_cookie())] ++
             List.flatten(ebins) ++ [fixture]
    {out, status} = System.cmd("elixir", args, env: [{"SBX_CASE_NODE", Atom.to_string(n)}], stderr_to_stdout: true)
    assert status != 0, out
    assert out =~ "4 tests, 2 failures", out
    assert out =~ "case_fixture: saw the sandbox", out
    assert ClientHelper.wait_until(fn -> Sandboxd.list(n, %{labels: %{"case" => "fixture"}}) == [] end),
           inspect(Sandboxd.list(n))
  end
end
