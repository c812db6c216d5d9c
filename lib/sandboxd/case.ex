defmodule Sandboxd.Case do
  @moduledoc """
  Sandboxes for ExUnit tests, made and removed around each test (like testcontainers):

      defmodule MyApp.WebTest do
        use ExUnit.Case
        use Sandboxd.Case, node: :"sbx@myhost"

        sandbox :web, type: :process, cmd: ["python3", "-m", "http.server", "8000"]
        sandbox :db, type: :docker, image: "postgres:16", shared: true

        test "serves", %{web: web} do
          assert web.status == :running
        end
      end

  `sandbox name, opts` creates the sandbox in `setup` (in `setup_all` with `shared: true`)
  and puts its map in the context under `name`; it is destroyed `on_exit`. Its `owner` is
  the test process (the module's `setup_all` process when shared), so the daemon destroys
  it even when the test process is killed before `on_exit` could run. The id is
  `"<name>-<unique>"` unless `id:` is given. The node: `node:` of `sandbox`, else
  `node:` of `use` (an atom, or a `&Mod.fun/0` capture called at setup), else the
  context's `:sandboxd_node` (e.g. from a `setup_all` that started a `Sandboxd.Daemon`),
  else `Application.get_env(:sandboxd, :node)`. Every other option is the sandbox's
  config (`type` defaults to `:process`).
  """

  @doc false
  defmacro __using__(opts) do
    quote do
      import Sandboxd.Case, only: [sandbox: 2]
      @sandboxd_case_node unquote(Keyword.get(opts, :node))
    end
  end

  @doc "Declares a sandbox made for each test (or once per module with `shared: true`)."
  defmacro sandbox(name, opts) do
    quote do
      if Keyword.get(unquote(opts), :shared, false) do
        setup_all context do
          Sandboxd.Case.__create__(unquote(name), unquote(opts), @sandboxd_case_node, context)
        end
      else
        setup context do
          Sandboxd.Case.__create__(unquote(name), unquote(opts), @sandboxd_case_node, context)
        end
      end
    end
  end

  @doc false
  @spec __create__(atom, keyword, atom | (-> node) | nil, map) :: map
  def __create__(name, opts, default_node, context) do
    node = node_of(opts[:node] || default_node, context)
    id = Keyword.get_lazy(opts, :id, fn -> "#{name}-#{System.unique_integer([:positive])}" end)
    type = Keyword.get(opts, :type, :process)
    config = opts |> Keyword.drop([:type, :node, :shared, :id]) |> Keyword.put(:owner, self())

    case Sandboxd.create(node, id, type, config) do
      {:ok, sandbox} ->
        ExUnit.Callbacks.on_exit({Sandboxd.Case, id}, fn -> Sandboxd.destroy(node, id) end)
        %{name => sandbox, sandboxd_node: node}

      {:error, reason} ->
        raise "sandbox #{inspect(name)} (#{id}) could not be created on #{node}: #{inspect(reason)}"
    end
  end

  defp node_of(f, _context) when is_function(f, 0), do: f.()
  defp node_of(n, _context) when is_atom(n) and n != nil, do: n
  defp node_of(nil, context),
    do: Map.get(context, :sandboxd_node) || Application.get_env(:sandboxd, :node) ||
          raise("Sandboxd.Case: no node (give node: or set :sandboxd_node in the context)")
end
