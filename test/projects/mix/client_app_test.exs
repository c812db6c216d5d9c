# The test of the fresh Mix project scripts/client-projects.sh makes: it depends on the sandboxd
# checkout by path and was compiled with neither hex nor rebar3 on PATH.
defmodule ClientAppTest do
  use ExUnit.Case

  setup_all do
    name = "sbxmix#{System.unique_integer([:positive])}_#{System.pid()}"
    logs = System.fetch_env!("SBX_LOG_DIR")
    state = Path.join([logs, "state", name])
    File.mkdir_p!(state)
    node = Sandboxd.Daemon.node_name(name)

    children = [
      {Sandboxd.Daemon, name: name, state_dir: state, shutdown_policy: :destroy, start_timeout: 60_000,
       log_file: Path.join(logs, name <> ".log")},
      {Sandboxd.Events, nodes: [node]}
    ]

    # The application's own supervisor (under ExUnit's, which stops it after the module).
    sup = start_supervised!(%{id: :app_sup, type: :supervisor,
                              start: {Supervisor, :start_link, [children, [strategy: :one_for_one]]}})
    {:ok, sup: sup, node: node}
  end

  defp daemon_pid(sup) do
    for {:sandboxd_daemon, pid, _, _} <- Supervisor.which_children(sup), is_pid(pid), do: pid
  end

  defp wait_until(fun, ms \\ 60_000), do: wait(fun, System.monotonic_time(:millisecond) + ms)

  defp wait(fun, deadline) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(50) && wait(fun, deadline)
    end
  end

  test "built without hex or rebar3; the daemon binary found through Application.app_dir" do
    refute Code.ensure_loaded?(Hex)
    assert System.find_executable("rebar3") == nil
    assert to_string(:sandboxd_daemon.bin()) == Application.app_dir(:sandboxd, "priv/sandboxd")
    assert File.regular?(:sandboxd_daemon.bin())
  end

  test "create, exec, destroy a process sandbox, with its events through Sandboxd.Events", %{node: n} do
    :ok = Sandboxd.Events.subscribe("m1")
    assert {:ok, %{status: :running}} =
             Sandboxd.create(n, "m1", :process, cmd: ["sh", "-c", "echo started; sleep 300"])
    assert_receive {:sandbox_event, ^n, "m1", :log, %{data: data}}, 30_000
    assert data =~ "started"
    assert {:ok, %{exit_code: 0, stdout: "hello\n"}} = Sandboxd.exec(n, "m1", ["echo", "hello"])
    assert :ok = Sandboxd.destroy(n, "m1")
    assert_receive {:sandbox_event, ^n, "m1", :status, %{to: :stopped}}, 30_000
    assert {:error, :not_found} = Sandboxd.get(n, "m1")
  end

  test "the daemon's OS process killed: restarted by the supervisor, the sandbox adopted, events again",
       %{sup: sup, node: n} do
    [old] = daemon_pid(sup)
    :ok = Sandboxd.Events.subscribe("m2")
    cmd = "while true; do echo tick; sleep 0.2; done"
    assert {:ok, %{status: :running, ref: ref}} = Sandboxd.create(n, "m2", :process, cmd: cmd)
    os_pid = Sandboxd.Daemon.os_pid(old)
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert wait_until(fn -> match?([p] when p != old, daemon_pid(sup)) end)
    [new] = daemon_pid(sup)
    assert Sandboxd.Daemon.os_pid(new) != os_pid
    assert Sandboxd.ping(n) == :pong
    assert {:ok, %{status: :running, ref: ^ref}} = Sandboxd.get(n, "m2")
    # Sandboxd.Events subscribed again: log lines of the adopted sandbox arrive.
    flush()
    assert_receive {:sandbox_event, ^n, "m2", :log, %{data: data}}, 30_000
    assert data =~ "tick"
    assert :ok = Sandboxd.destroy(n, "m2")
  end

  defp flush do
    receive do
      {:sandbox_event, _, _, _, _} -> flush()
    after
      0 -> :ok
    end
  end
end
