# Sandboxd.Cluster over three daemons on this machine (one per host in real use): placement,
# routing, a daemon killed and brought back.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
Code.require_file("support/client_helper.exs", __DIR__)
ExUnit.start(trace: true)

defmodule SandboxdClusterTest do
  use ExUnit.Case

  setup_all do
    names = for i <- 1..3, do: ClientHelper.unique("sbxcu#{i}_")

    # temporary: the test decides when the killed one comes back
    pids =
      for name <- names do
        start_supervised!(Sandboxd.Daemon.child_spec(ClientHelper.daemon_opts(name, id: name, restart: :temporary)))
      end

    nodes = Enum.map(pids, &Sandboxd.Daemon.node/1)

    start_supervised!({Sandboxd.Events, nodes: nodes})
    start_supervised!({Sandboxd.Cluster, nodes: nodes})
    on_exit(fn -> for name <- names, do: assert(ClientHelper.sanitizer_report(name) == nil) end)
    {:ok, names: names, nodes: nodes, pids: pids}
  end

  defp counts(sandboxes), do: Enum.frequencies_by(sandboxes, & &1.node)

  test "30 creates spread over three daemons; a daemon killed: node_down events, creates go elsewhere, and once back it is used again",
       %{names: [name_a | _], nodes: [a, b, c] = nodes, pids: [daemon_a | _]} do
    assert ClientHelper.wait_until(fn -> Enum.sort(Sandboxd.Cluster.up_nodes()) == Enum.sort(nodes) end)

    placed =
      for i <- 1..30 do
        assert {:ok, sb} = Sandboxd.Cluster.create("j#{i}", :process, cmd: ["sleep", "300"])
        sb
      end

    assert counts(placed) == %{a => 10, b => 10, c => 10}
    all = Sandboxd.Cluster.list_all()
    assert length(all) == 30
    assert Enum.sort(Enum.map(all, & &1.id)) == Enum.sort(for i <- 1..30, do: "j#{i}")
    assert Sandboxd.Cluster.whereis("j1") == hd(placed).node
    assert {:ok, %{exit_code: 0, stdout: "x\n"}} = Sandboxd.Cluster.call("j2", :exec, [["echo", "x"]])
    assert {:error, :already_exists} = Sandboxd.Cluster.create("j3", :process, cmd: ["true"])
    on_a = for %{node: ^a, id: id} <- placed, do: id

    # SIGKILL the daemon on a: one node_down event per sandbox it held.
    :ok = Sandboxd.Events.subscribe(:all)
    System.cmd("kill", ["-KILL", Integer.to_string(Sandboxd.Daemon.os_pid(daemon_a))])
    downs = collect_node_down(a, MapSet.new(on_a), MapSet.new())
    assert downs == MapSet.new(on_a)
    assert Sandboxd.Cluster.nodes()[a] == :down

    while_down =
      for i <- 1..6 do
        assert {:ok, sb} = Sandboxd.Cluster.create("k#{i}", :process, cmd: ["sleep", "300"])
        sb.node
      end

    assert Enum.frequencies(while_down) == %{b => 3, c => 3}
    assert length(Sandboxd.Cluster.list_all()) == 26

    # The same daemon again (same name, same state directory): it adopts its 10 sandboxes, the
    # cluster sees it up, and the next create goes there (10 sandboxes against 13 and 13).
    start_supervised!(Sandboxd.Daemon.child_spec(ClientHelper.daemon_opts(name_a, id: name_a <> "_again")))
    assert ClientHelper.wait_until(fn -> Sandboxd.Cluster.nodes()[a] == :up end)
    adopted = Sandboxd.list(a)
    assert Enum.sort(Enum.map(adopted, & &1.id)) == Enum.sort(on_a)
    assert Enum.all?(adopted, &(&1.status == :running))
    assert {:ok, %{node: ^a}} = Sandboxd.Cluster.create("m1", :process, cmd: ["sleep", "300"])
    assert length(Sandboxd.Cluster.list_all()) == 37
    assert Sandboxd.Cluster.whereis("m1") == a
    assert :ok = Sandboxd.Cluster.destroy("m1")
    assert Sandboxd.Cluster.whereis("m1") == nil
  end

  # The other test may have run first: its daemon brought back ran under that test and is gone.
  test "a cluster by prefix finds the daemons among the connected nodes", %{nodes: nodes, names: [n1 | _]} do
    prefix = n1 |> String.split("_") |> hd() |> String.trim_trailing("1")
    running = Enum.filter(nodes, &(Sandboxd.ping(&1) == :pong))
    assert length(running) >= 2
    start_supervised!({Sandboxd.Cluster, prefix: prefix, name: :by_prefix})
    assert ClientHelper.wait_until(fn -> Enum.sort(Sandboxd.Cluster.up_nodes(:by_prefix)) == Enum.sort(running) end)
  end

  defp collect_node_down(node, want, got) do
    if MapSet.equal?(want, got) do
      got
    else
      receive do
        {:sandbox_event, ^node, id, :node_down, %{ts: _}} -> collect_node_down(node, want, MapSet.put(got, id))
      after
        30_000 -> got
      end
    end
  end
end
