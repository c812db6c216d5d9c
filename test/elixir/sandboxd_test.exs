# What an Elixir developer sees when calling sandboxd from IEx or a Phoenix backend.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
ExUnit.start(trace: true)

defmodule SandboxdTest do
  use ExUnit.Case

  setup_all do
    # A state directory of its own, and sandboxes destroyed when the node stops.
    sbx = :sbx_test_util.start_isolated()
    on_exit(fn -> :sbx_test_util.cleanup() end)
    {:ok, node: sbx[:node], sbx: sbx}
  end

  test "Node.ping answers :pong and the node is hidden", %{node: n} do
    assert Node.ping(n) == :pong
    assert n in Node.list(:hidden)
    refute n in Node.list()
  end

  test ":rpc.call, :erpc.call, :rpc.block_call and GenServer.call answer :pong", %{node: n} do
    assert :rpc.call(n, :sandbox, :ping, []) == :pong
    assert :erpc.call(n, :sandbox, :ping, []) == :pong
    assert :rpc.block_call(n, :sandbox, :ping, []) == :pong
    assert GenServer.call({:sandboxd, n}, {:ping}) == :pong
    key = :rpc.async_call(n, :sandbox, :ping, [])
    assert :rpc.yield(key) == :pong
  end

  test ":rpc.multicall returns both node names", %{node: n} do
    assert :rpc.multicall([node(), n], :erlang, :node, []) == {[node(), n], []}
  end

  test "info returns the documented map", %{node: n} do
    info = :rpc.call(n, :sandbox, :info, [])
    assert %{node: ^n, version: v, uptime_ms: up, memory_bytes: mem, sandboxes: 0,
             backends: backends} = info
    assert is_binary(v) and is_integer(up) and mem > 0
    assert Map.keys(backends) |> Enum.sort() == [:beam_node, :docker, :process, :vm]
    assert :sandboxd.info(n) |> Map.fetch!(:node) == n
  end

  test "an unknown function answers exactly like a real node", %{node: n} do
    assert :rpc.call(n, :sandbox, :nope, []) == {:badrpc, {:EXIT, {:undef, [{:sandbox, :nope, [], []}]}}}
    assert_raise ErlangError, fn -> :erpc.call(n, :sandbox, :nope, []) end
  end

  test "GenServer.call to a name the node does not have exits with noproc at once", %{node: n} do
    assert {:noproc, _} = catch_exit(GenServer.call({:no_such_server, n}, :hello, 2000))
  end

  test "the client module reports an unreachable node without raising" do
    assert :sandboxd.ping(:"nobody@nowhere") == :pang
  end

  test "a plain GenServer in this node can keep calling the node", %{node: n} do
    defmodule Caller do
      use GenServer
      def init(node), do: {:ok, node}
      def handle_call(:go, _from, node), do: {:reply, :erpc.call(node, :sandbox, :ping, []), node}
    end

    {:ok, pid} = GenServer.start_link(Caller, n)
    assert Enum.all?(1..100, fn _ -> GenServer.call(pid, :go) == :pong end)
  end

  defmodule LiveViewLike do
    # What a Phoenix LiveView does with sandbox events: subscribes its own pid in init and
    # keeps what arrives through handle_info.
    use GenServer

    def start(node, id), do: GenServer.start(__MODULE__, {node, id})
    def events(pid), do: GenServer.call(pid, :events)

    @impl true
    def init({node, id}) do
      {:ok, ref} = :rpc.call(node, :sandbox, :subscribe, [id, self(), [:status, :log, :metrics]])
      {:ok, %{ref: ref, events: []}}
    end

    @impl true
    def handle_info({:sandbox_event, id, topic, payload}, state),
      do: {:noreply, %{state | events: [{id, topic, payload} | state.events]}}

    @impl true
    def handle_call(:events, _from, state), do: {:reply, Enum.reverse(state.events), state}
  end

  defp wait_for(fun, ms \\ 10_000), do: assert(:sbx_test_util.wait_until(fun, ms) == :ok)

  test "a GenServer subscribed to a process sandbox gets status, log and metrics events, and its subscription goes when it stops",
       %{node: n} do
    cmd = "while true; do echo tick; sleep 0.2; done"
    assert {:ok, %{id: "lv1", status: :running}} =
             :rpc.call(n, :sandbox, :create, [:lv1, :process, %{cmd: cmd, metrics_interval_ms: 200}])

    {:ok, pid} = LiveViewLike.start(n, "lv1")
    assert %{subscribers: 1} = :rpc.call(n, :sandbox, :info, [])

    wait_for(fn -> Enum.any?(LiveViewLike.events(pid), &match?({"lv1", :log, _}, &1)) end)
    {_, :log, log} = Enum.find(LiveViewLike.events(pid), &match?({"lv1", :log, _}, &1))
    assert %{ts: ts, stream: :stdout, data: data} = log
    assert is_integer(ts) and data =~ "tick"

    wait_for(fn -> Enum.any?(LiveViewLike.events(pid), &match?({"lv1", :metrics, _}, &1)) end)
    {_, :metrics, m} = Enum.find(LiveViewLike.events(pid), &match?({"lv1", :metrics, _}, &1))
    assert %{cpu_percent: _, memory_bytes: _, memory_limit_bytes: _, pids: p, ts: _} = m
    assert p >= 1

    assert {:ok, %{status: :stopped}} = :rpc.call(n, :sandbox, :stop, [:lv1])
    wait_for(fn -> Enum.any?(LiveViewLike.events(pid), &match?({"lv1", :status, %{to: :stopped}}, &1)) end)
    statuses = for {"lv1", :status, st} <- LiveViewLike.events(pid), do: st
    assert Enum.all?(statuses, &match?(%{from: _, to: _, ts: _, reason: _}, &1))
    assert Enum.map(statuses, & &1.to) == [:stopping, :stopped]

    # The LiveView goes away (the user closed the tab): so does its subscription.
    :ok = GenServer.stop(pid)
    wait_for(fn -> :rpc.call(n, :sandbox, :info, [])[:subscribers] == 0 end)

    assert :ok = :rpc.call(n, :sandbox, :destroy, [:lv1])
    assert :rpc.call(n, :sandbox, :get, [:lv1]) == {:error, :not_found}
  end
end
