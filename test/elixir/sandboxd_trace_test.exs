# Tracing a beam_node sandbox as an Elixir developer does it (the Cinema Debugger's data
# source): an Elixir GenServer runs inside the sandbox's node, a LiveView-like process in
# this node subscribes to `trace` events and keeps them.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
ExUnit.start(trace: true)

# The traced server, compiled here and loaded into the sandbox's node with
# :code.load_binary through remote_call.
{:module, counter_mod, counter_bin, _} =
  defmodule SandboxdTraceTest.Counter do
    use GenServer
    def init(n), do: {:ok, n}
    def handle_call(:incr, _from, n), do: {:reply, n + 1, n + 1}
    def handle_call(:get, _from, n), do: {:reply, n, n}
  end

Application.put_env(:sandboxd_trace_test, :counter, {counter_mod, counter_bin})

defmodule SandboxdTraceTest do
  use ExUnit.Case

  defmodule Viewer do
    # What a LiveView does with trace events: subscribes its own pid, keeps what arrives.
    use GenServer

    def start(node, id), do: GenServer.start(__MODULE__, {node, id})
    def events(pid), do: GenServer.call(pid, :events)

    @impl true
    def init({node, id}) do
      {:ok, _ref} = :rpc.call(node, :sandbox, :subscribe, [id, self(), [:trace]])
      {:ok, %{id: id, events: [], done: nil}}
    end

    @impl true
    def handle_info({:sandbox_event, id, :trace, %{event: :trace_end, detail: d}}, %{id: id} = s),
      do: {:noreply, %{s | done: d}}

    def handle_info({:sandbox_event, id, :trace, ev}, %{id: id} = s),
      do: {:noreply, %{s | events: [ev | s.events]}}

    @impl true
    def handle_call(:events, _from, s), do: {:reply, {Enum.reverse(s.events), s.done}, s}
  end

  setup_all do
    sbx = :sbx_test_util.start_isolated()
    on_exit(fn -> :sbx_test_util.cleanup() end)
    {:ok, node: sbx[:node]}
  end

  defp call(n, f, a), do: :rpc.call(n, :sandbox, f, a, 60_000)

  defp uid(prefix), do: "#{prefix}_#{System.unique_integer([:positive])}_#{System.pid()}"

  # A beam_node sandbox running Elixir, with the Counter server started in it.
  defp sandbox_with_counter(n) do
    id = uid("tr")
    elixir_ebin = :code.lib_dir(:elixir, :ebin) |> to_string()
    {:ok, %{status: :running}} =
      call(n, :create, [id, :beam_node, %{code_paths: [elixir_ebin], apps: [:elixir]}])
    {mod, bin} = Application.get_env(:sandboxd_trace_test, :counter)
    {:module, ^mod} = call(n, :remote_call, [id, :code, :load_binary, [mod, ~c"counter.beam", bin]])
    {:ok, pid} = call(n, :remote_call, [id, GenServer, :start, [mod, 0, [name: :counter]]])
    {id, pid}
  end

  defp incr(n, id, times),
    do: for(_ <- 1..times, do: call(n, :remote_call, [id, GenServer, :call, [:counter, :incr]]))

  defp wait_end(viewer, tries \\ 100) do
    case Viewer.events(viewer) do
      {events, nil} when tries > 0 ->
        Process.sleep(50)
        _ = events
        wait_end(viewer, tries - 1)
      result ->
        result
    end
  end

  test "a GenServer's send, receive and call events reach an Elixir subscriber; stop leaves no flags",
       %{node: n} do
    {id, pid} = sandbox_with_counter(n)
    {:ok, viewer} = Viewer.start(n, id)
    {mod, _} = Application.get_env(:sandboxd_trace_test, :counter)

    assert {:ok, ref} =
             call(n, :trace_start, [id, %{pids: [pid], flags: [:send, :receive, :call],
                                          mfa: {mod, :handle_call, 3}}])
    assert is_reference(ref)
    assert Enum.map(incr(n, id, 3), & &1) == [1, 2, 3]
    Process.sleep(200)
    assert call(n, :trace_stop, [ref]) == :ok
    {events, done} = wait_end(viewer)
    IO.puts("    #{length(events)} events, end: #{inspect(done)}")

    kinds = events |> Enum.map(& &1.event) |> Enum.uniq() |> Enum.sort()
    assert :send in kinds and :receive in kinds and :call in kinds
    assert %{reason: :stopped} = done
    assert Enum.all?(events, &match?(%{ts: ts, pid: ^pid, detail: %{}} when is_integer(ts), &1))
    assert Enum.any?(events, &match?(%{event: :call, detail: %{mfa: {^mod, :handle_call, [:incr | _]}}}, &1))
    assert Enum.any?(events, &match?(%{event: :receive, detail: %{msg: {:"$gen_call", _, :incr}}}, &1))

    assert call(n, :remote_call, [id, :erlang, :trace_info, [pid, :flags]]) == {:flags, []}
    assert call(n, :remote_call, [id, :erlang, :trace_info, [{mod, :handle_call, 3}, :traced]]) ==
             {:traced, false}
    assert call(n, :destroy, [id]) == :ok
  end

  test "max_events, duration_ms and rate each stop or throttle a trace", %{node: n} do
    {id, pid} = sandbox_with_counter(n)

    {:ok, v1} = Viewer.start(n, id)
    {:ok, _} = call(n, :trace_start, [id, %{pids: [pid], flags: [:receive], max_events: 4}])
    incr(n, id, 10)
    {events, done} = wait_end(v1)
    IO.puts("    max_events: #{length(events)} events, end: #{inspect(done)}")
    assert length(events) == 4
    assert %{reason: :limit, events: 4} = done

    {:ok, v2} = Viewer.start(n, id)
    {:ok, _} = call(n, :trace_start, [id, %{pids: [pid], flags: [:receive], duration_ms: 500}])
    incr(n, id, 2)
    {events, done} = wait_end(v2)
    IO.puts("    duration_ms: #{length(events)} events, end: #{inspect(done)}")
    assert length(events) == 2
    assert %{reason: :duration} = done

    {:ok, v3} = Viewer.start(n, id)
    {:ok, ref} = call(n, :trace_start, [id, %{pids: [pid], flags: [:receive], rate: {2, 60_000}}])
    incr(n, id, 12)
    Process.sleep(200)
    :ok = call(n, :trace_stop, [ref])
    {events, done} = wait_end(v3)
    IO.puts("    rate: #{length(events)} events, end: #{inspect(done)}")
    assert length(events) == 2
    assert %{reason: :stopped, dropped_rate: 10} = done

    assert call(n, :remote_call, [id, :erlang, :trace_info, [pid, :flags]]) == {:flags, []}
    assert call(n, :destroy, [id]) == :ok
  end

  test "bad specs are refused before anything reaches the node", %{node: n} do
    {id, _pid} = sandbox_with_counter(n)
    assert {:error, {:badarg, :max_events, :out_of_range}} =
             call(n, :trace_start, [id, %{max_events: 1_000_000}])
    assert {:error, {:badarg, :mfa, :missing}} = call(n, :trace_start, [id, %{flags: [:call]}])
    assert call(n, :trace_start, ["no_such_sandbox", %{}]) == {:error, :not_found}
    assert call(n, :trace_stop, [make_ref()]) == :ok
    assert call(n, :destroy, [id]) == :ok
  end
end
