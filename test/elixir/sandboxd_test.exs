# What an Elixir developer sees when calling sandboxd from IEx or a Phoenix backend.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
ExUnit.start(trace: true)

defmodule SandboxdTest do
  use ExUnit.Case

  setup_all do
    sbx = :sbx_test_util.start()
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
end
