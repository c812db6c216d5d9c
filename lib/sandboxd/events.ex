defmodule Sandboxd.Events do
  @moduledoc """
  Sandbox events of one or more daemon nodes, re-broadcast to local processes through a
  `Registry`, like Phoenix.PubSub topics:

      children = [{Sandboxd.Events, nodes: [:"sbx@myhost"]}]

      # in any process, e.g. a LiveView's mount/3:
      :ok = Sandboxd.Events.subscribe("web")     # or :all
      # then handle_info({:sandbox_event, node, id, topic, data}, socket)

  One relay process per node subscribes to `:all` there (topics `:status` and `:log` unless
  `topics:` says otherwise) and keeps trying every `retry_ms` (default 500) while the node
  is down, so events flow again once a daemon is back after a restart. Options: `nodes`,
  `topics`, `retry_ms`, `name` (default `Sandboxd.Events`; give the same name to
  `subscribe/2`).
  """
  use Supervisor

  @typedoc "A sandbox id (atoms and charlists are taken as binaries) or `:all`."
  @type key :: binary | atom | charlist

  @doc "Starts the registry and one relay per node."
  @spec start_link(keyword) :: Supervisor.on_start()
  def start_link(opts) do
    name = Keyword.get(opts, :name, __MODULE__)
    Supervisor.start_link(__MODULE__, opts, name: Module.concat(name, Supervisor))
  end

  @impl true
  @doc false
  def init(opts) do
    name = Keyword.get(opts, :name, __MODULE__)
    relay = [topics: Keyword.get(opts, :topics, [:status, :log]),
             retry_ms: Keyword.get(opts, :retry_ms, 500), registry: name]

    relays =
      for node <- Keyword.fetch!(opts, :nodes) do
        Supervisor.child_spec({Sandboxd.Events.Relay, [{:node, node} | relay]}, id: {:relay, node})
      end

    Supervisor.init([{Registry, keys: :duplicate, name: name} | relays], strategy: :rest_for_one)
  end

  @doc """
  The calling process receives `{:sandbox_event, node, id, topic, data}` for sandbox
  `key` (or every sandbox with `:all`) until it dies or unsubscribes.
  """
  @spec subscribe(key, atom) :: :ok
  def subscribe(key, name \\ __MODULE__) do
    {:ok, _} = Registry.register(name, normalize(key), nil)
    :ok
  end

  @doc "Ends the calling process's subscription to `key`."
  @spec unsubscribe(key, atom) :: :ok
  def unsubscribe(key, name \\ __MODULE__), do: Registry.unregister(name, normalize(key))

  @doc """
  Sends `{:sandbox_event, node, id, topic, data}` to the subscribers of `id` and of `:all`
  (what the relays and `Sandboxd.Cluster` do); `:ok` also when no such registry runs.
  """
  @spec broadcast(atom, node, binary, atom, term) :: :ok
  def broadcast(name, node, id, topic, data) do
    if Process.whereis(name) do
      msg = {:sandbox_event, node, id, topic, data}
      for key <- [id, :all] do
        Registry.dispatch(name, key, fn entries -> for {pid, _} <- entries, do: send(pid, msg) end)
      end
    end

    :ok
  end

  defp normalize(:all), do: :all
  defp normalize(id) when is_atom(id), do: Atom.to_string(id)
  defp normalize(id) when is_list(id), do: List.to_string(id)
  defp normalize(id) when is_binary(id), do: id
end

defmodule Sandboxd.Events.Relay do
  @moduledoc """
  Subscribes to `:all` on one daemon node and passes each event to `Sandboxd.Events`
  subscribers with the node's name; subscribes again whenever the node comes back.
  """
  use GenServer

  @doc "Starts a relay (options: `node`, `topics`, `retry_ms`, `registry`)."
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, Map.new(opts))

  @doc "`:up` while subscribed on the node, else `:down`."
  @spec status(pid) :: :up | :down
  def status(pid), do: GenServer.call(pid, :status)

  @impl true
  @doc false
  def init(state) do
    send(self(), :connect)
    {:ok, Map.put(state, :up, false)}
  end

  @impl true
  @doc false
  def handle_call(:status, _from, s), do: {:reply, if(s.up, do: :up, else: :down), s}

  @impl true
  @doc false
  def handle_info(:connect, %{up: false} = s) do
    case Sandboxd.subscribe(s.node, :all, self(), s.topics, timeout: 5000) do
      {:ok, _ref} ->
        Node.monitor(s.node, true)
        {:noreply, %{s | up: true}}

      _ ->
        Process.send_after(self(), :connect, s.retry_ms)
        {:noreply, s}
    end
  end

  def handle_info(:connect, s), do: {:noreply, s}

  def handle_info({:nodedown, node}, %{node: node} = s) do
    Process.send_after(self(), :connect, s.retry_ms)
    {:noreply, %{s | up: false}}
  end

  def handle_info({:sandbox_event, id, topic, data}, s) do
    Sandboxd.Events.broadcast(s.registry, s.node, id, topic, data)
    {:noreply, s}
  end

  def handle_info(_other, s), do: {:noreply, s}
end
