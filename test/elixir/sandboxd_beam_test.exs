# beam_node sandboxes as an Elixir developer uses them: a node running Elixir code from
# this installation, remote_call and get_state from IEx-like code, rpc:call's shapes.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
ExUnit.start(trace: true)

defmodule SandboxdBeamTest do
  use ExUnit.Case

  setup_all do
    sbx = :sbx_test_util.start_isolated()
    on_exit(fn -> :sbx_test_util.cleanup() end)
    {:ok, node: sbx[:node]}
  end

  defp call(n, f, a), do: :rpc.call(n, :sandbox, f, a, 60_000)

  defp uname(prefix), do: "#{prefix}_#{System.unique_integer([:positive])}_#{System.pid()}"

  test "a node running Elixir: remote_call, exceptions as :rpc.call gives them, get_state of an Agent",
       %{node: n} do
    elixir_ebin = :code.lib_dir(:elixir, :ebin) |> to_string()
    name = uname("ex")

    assert {:ok, %{status: :running, type: :beam_node}} =
             call(n, :create, ["ex1", :beam_node,
                               %{name: name, code_paths: [elixir_ebin], apps: [:elixir]}])

    assert {:ok, %{kind: :remsh, node: node, argv: argv}} = call(n, :shell, ["ex1"])
    Node.set_cookie(node, List.last(argv) |> String.to_atom())

    assert call(n, :remote_call, ["ex1", String, :upcase, ["sandbox"]]) == "SANDBOX"
    assert call(n, :remote_call, ["ex1", Enum, :sum, [[1, 2, 3]]]) == 6

    # An Elixir raise, an exit and a throw come back exactly as :rpc.call gives them.
    for {m, f, a} <- [{String, :to_integer, ["x"]}, {Kernel, :exit, [:bye]},
                      {:erlang, :throw, [:ball]}, {Map, :fetch!, [%{}, :k]}] do
      assert call(n, :remote_call, ["ex1", m, f, a]) == :rpc.call(node, m, f, a)
    end

    {:ok, agent} = call(n, :remote_call, ["ex1", Agent, :start, [Map, :new, []]])
    assert node(agent) == node
    :ok = call(n, :remote_call, ["ex1", Agent, :update, [agent, Map, :put, [:seen, 42]]])
    assert call(n, :get_state, ["ex1", agent]) == {:ok, %{seen: 42}}

    assert {:ok, procs} = call(n, :processes, ["ex1"])
    assert Enum.any?(procs, &(&1.pid == agent))
    assert {:ok, %{process_count: pc, memory: %{total: _}}} = call(n, :metrics, ["ex1"])
    assert pc > 10

    assert :ok = call(n, :destroy, ["ex1"])
    assert :sbx_test_util.wait_until(fn -> Node.ping(node) == :pang end, 10_000) == :ok
  end
end
