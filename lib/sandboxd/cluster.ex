defmodule Sandboxd.Cluster do
  @moduledoc """
  Several sandboxd nodes (one per host, in one Erlang cluster) used as one:

      children = [
        {Sandboxd.Events, nodes: nodes},
        {Sandboxd.Cluster, nodes: nodes}        # or prefix: "sbx"
      ]

      {:ok, sb} = Sandboxd.Cluster.create("job-1", :process, cmd: ["sleep", "60"])
      Sandboxd.Cluster.call("job-1", :exec, [["uname", "-n"]])

  `create/4` places a sandbox on the node that is up, has the type `available` in its
  `info()` and the least load: the fewest sandboxes (plus creates under way there), then the
  lowest host load average (`info()`'s `load`), among
  nodes whose `open_files.sandboxes_allowed` is not reached. `whereis/2`, `list_all/1`
  (merged from every node that is up) and `call/4` route by sandbox id.

  Nodes: `nodes:` a list, or `prefix:` every connected node whose name starts with it
  (hidden nodes included). A node that goes down is skipped by placement; each of its
  sandboxes gets the event `{:sandbox_event, node, id, :node_down, %{ts: ms}}` through
  `Sandboxd.Events` (`events:`, default `Sandboxd.Events`); it is dialled every
  `retry_ms` (default 500) and, once back, used again and its sandboxes (as listed then)
  get `:node_up` events. Option `name` (default `Sandboxd.Cluster`).
  """
  use GenServer

  @typedoc "Options of the calls: `cluster:` (the server's name), `timeout:`."
  @type opts :: [cluster: GenServer.server(), timeout: timeout]

  @doc "Starts the cluster server."
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: Keyword.get(opts, :name, __MODULE__))
  end

  @doc """
  Creates a sandbox on the least loaded node that has `type` available;
  `{:error, :no_node}` when none has, `{:error, :already_exists}` when the cluster
  knows the id already.
  """
  @spec create(Sandboxd.id(), atom, Sandboxd.config(), opts) :: {:ok, map} | Sandboxd.error()
  def create(id, type, config \\ [], opts \\ []) do
    cluster = Keyword.get(opts, :cluster, __MODULE__)
    id = to_id(id)

    case GenServer.call(cluster, {:place, id, type}, 30_000) do
      {:ok, node} ->
        result = Sandboxd.create(node, id, type, config, Keyword.take(opts, [:timeout]))
        GenServer.cast(cluster, {:placed, id, node, match?({:ok, _}, result)})
        result

      error ->
        error
    end
  end

  @doc "The node that holds sandbox `id`, or `nil`."
  @spec whereis(Sandboxd.id(), opts) :: node | nil
  def whereis(id, opts \\ []) do
    cluster = Keyword.get(opts, :cluster, __MODULE__)
    id = to_id(id)

    case GenServer.call(cluster, {:whereis, id}) do
      {:ok, node} ->
        node

      {:unknown, up} ->
        {replies, _bad} = :rpc.multicall(up, :sandbox, :get, [id], 10_000)

        case for({:ok, %{node: n}} <- replies, do: n) do
          [node | _] ->
            GenServer.cast(cluster, {:learned, id, node})
            node

          [] ->
            nil
        end
    end
  end

  @doc "Every sandbox of every node that is up (each map's `node` says where)."
  @spec list_all(opts) :: [map]
  def list_all(opts \\ []) do
    cluster = Keyword.get(opts, :cluster, __MODULE__)
    up = up_nodes(cluster)
    lists = for n <- up, do: {n, Sandboxd.list(n, %{}, Keyword.take(opts, [:timeout]))}
    GenServer.cast(cluster, {:listed, for({n, l} <- lists, is_list(l), do: {n, ids(l)})})
    for {_, l} <- lists, is_list(l), sb <- l, do: sb
  end

  @doc "`Sandboxd.call(node_of_id, fun, [id | args])`; `{:error, :not_found}` if no node has it."
  @spec call(Sandboxd.id(), atom, list, opts) :: term
  def call(id, fun, args \\ [], opts \\ []) do
    case whereis(id, opts) do
      nil -> {:error, :not_found}
      node -> Sandboxd.call(node, fun, [to_id(id) | args], Keyword.take(opts, [:timeout]))
    end
  end

  @doc "Destroys sandbox `id` wherever it is."
  @spec destroy(Sandboxd.id(), opts) :: :ok | Sandboxd.error()
  def destroy(id, opts \\ []) do
    result = call(id, :destroy, [], opts)
    if result == :ok, do: GenServer.cast(Keyword.get(opts, :cluster, __MODULE__), {:forget, to_id(id)})
    result
  end

  @doc "The nodes and whether each is `:up` or `:down`."
  @spec nodes(GenServer.server()) :: %{node => :up | :down}
  def nodes(cluster \\ __MODULE__), do: GenServer.call(cluster, :nodes)

  @doc "The nodes that are up."
  @spec up_nodes(GenServer.server()) :: [node]
  def up_nodes(cluster \\ __MODULE__), do: for({n, :up} <- nodes(cluster), do: n)

  defp to_id(id) when is_binary(id), do: id
  defp to_id(id) when is_atom(id), do: Atom.to_string(id)
  defp to_id(id) when is_list(id), do: List.to_string(id)

  defp ids(list), do: for(%{id: id} <- list, do: id)

  # Server: nodes %{node => :up | :down}; where %{id => node}; pending %{node => creates}.

  @impl true
  @doc false
  def init(opts) do
    :ok = :net_kernel.monitor_nodes(true, node_type: :all)
    nodes = Keyword.get(opts, :nodes, [])
    prefix = Keyword.get(opts, :prefix)

    s = %{
      nodes: Map.new(nodes, &{&1, :down}),
      prefix: prefix,
      where: %{},
      pending: %{},
      events: Keyword.get(opts, :events, Sandboxd.Events),
      retry_ms: Keyword.get(opts, :retry_ms, 500)
    }

    found = if prefix, do: Enum.filter(Node.list([:visible, :hidden]), &prefixed?(&1, prefix)), else: []
    s = Enum.reduce(found, s, fn n, acc -> put_in(acc.nodes[n], :down) end)
    {:ok, s, {:continue, :dial}}
  end

  @impl true
  @doc false
  def handle_continue(:dial, s), do: {:noreply, dial(s)}

  @impl true
  @doc false
  def handle_call({:place, id, type}, _from, s) do
    if Map.has_key?(s.where, id) do
      {:reply, {:error, :already_exists}, s}
    else
      case pick(s, type) do
        nil -> {:reply, {:error, :no_node}, s}
        node -> {:reply, {:ok, node}, %{s | pending: Map.update(s.pending, node, 1, &(&1 + 1)),
                                           where: Map.put(s.where, id, node)}}
      end
    end
  end

  def handle_call({:whereis, id}, _from, s) do
    case s.where do
      %{^id => node} -> {:reply, {:ok, node}, s}
      _ -> {:reply, {:unknown, for({n, :up} <- s.nodes, do: n)}, s}
    end
  end

  def handle_call(:nodes, _from, s), do: {:reply, s.nodes, s}

  @impl true
  @doc false
  def handle_cast({:placed, id, node, ok?}, s) do
    s = %{s | pending: Map.update(s.pending, node, 0, &max(&1 - 1, 0))}
    {:noreply, if(ok?, do: s, else: %{s | where: Map.delete(s.where, id)})}
  end

  def handle_cast({:learned, id, node}, s), do: {:noreply, put_in(s.where[id], node)}
  def handle_cast({:forget, id}, s), do: {:noreply, %{s | where: Map.delete(s.where, id)}}

  def handle_cast({:listed, per_node}, s) do
    {:noreply, Enum.reduce(per_node, s, fn {n, ids}, acc -> replace_ids(acc, n, ids) end)}
  end

  @impl true
  @doc false
  def handle_info({:nodeup, node, _}, s) do
    cond do
      Map.get(s.nodes, node) == :down -> {:noreply, up(s, node)}
      s.prefix && not Map.has_key?(s.nodes, node) && prefixed?(node, s.prefix) -> {:noreply, up(s, node)}
      true -> {:noreply, s}
    end
  end

  def handle_info({:nodedown, node, _}, s) do
    case s.nodes do
      %{^node => :up} ->
        ts = System.os_time(:millisecond)
        for {id, ^node} <- s.where, do: Sandboxd.Events.broadcast(s.events, node, id, :node_down, %{ts: ts})
        Process.send_after(self(), :dial, s.retry_ms)
        {:noreply, %{s | nodes: Map.put(s.nodes, node, :down), pending: Map.delete(s.pending, node)}}

      _ ->
        {:noreply, s}
    end
  end

  def handle_info(:dial, s), do: {:noreply, dial(s)}
  def handle_info(_, s), do: {:noreply, s}

  # Tries every node that is down; asks again in retry_ms while any still is.
  defp dial(s) do
    s = Enum.reduce(for({n, :down} <- s.nodes, do: n), s, fn n, acc ->
      if Sandboxd.ping(n, timeout: 2000) == :pong, do: up(acc, n), else: acc
    end)

    if Enum.any?(s.nodes, fn {_, st} -> st == :down end), do: Process.send_after(self(), :dial, s.retry_ms)
    s
  end

  # Marks a node up once it answers, learns its sandboxes and tells their subscribers.
  defp up(s, node) do
    case Sandboxd.list(node, %{}, timeout: 10_000) do
      list when is_list(list) ->
        ts = System.os_time(:millisecond)
        s = replace_ids(%{s | nodes: Map.put(s.nodes, node, :up)}, node, ids(list))
        for id <- ids(list), do: Sandboxd.Events.broadcast(s.events, node, id, :node_up, %{ts: ts})
        s

      _ ->
        %{s | nodes: Map.put(s.nodes, node, :down)}
    end
  end

  defp replace_ids(s, node, ids) do
    kept = for {id, n} <- s.where, n != node, into: %{}, do: {id, n}
    %{s | where: Enum.reduce(ids, kept, &Map.put(&2, &1, node))}
  end

  # The node for a new sandbox of type: up, type available, room left, least loaded.
  defp pick(s, type) do
    up = for {n, :up} <- s.nodes, do: n
    {infos, _bad} = :rpc.multicall(up, :sandbox, :info, [], 5000)
    type = if is_binary(type), do: String.to_existing_atom(type), else: type

    infos
    |> Enum.filter(&is_map/1)
    |> Enum.filter(fn info -> Map.get(info.backends, type) == :available and room?(info) end)
    |> Enum.map(fn info ->
      {info.sandboxes + Map.get(s.pending, info.node, 0), load1(info), info.node}
    end)
    |> Enum.min(fn -> nil end)
    |> case do
      nil -> nil
      {_, _, node} -> node
    end
  end

  # The host's 1-minute load average from info() (a tie-break between equally full nodes).
  defp load1(%{load: {l1, _, _}}) when is_number(l1), do: l1
  defp load1(_), do: 0.0

  defp room?(%{open_files: %{sandboxes_allowed: max}, sandboxes: n}) when is_integer(max), do: n < max
  defp room?(_), do: true

  defp prefixed?(node, prefix), do: String.starts_with?(Atom.to_string(node), prefix)
end
