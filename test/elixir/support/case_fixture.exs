# Run by sandboxd_client_test.exs in a VM of its own, against the daemon SBX_CASE_NODE names:
# two of its tests fail on purpose (one raises, one kills its own test process); the caller
# then checks that no sandbox is left.
ExUnit.start(trace: true)

defmodule CaseFixture do
  use ExUnit.Case
  use Sandboxd.Case, node: String.to_atom(System.fetch_env!("SBX_CASE_NODE"))

  sandbox :web, type: :process, cmd: ["sleep", "300"], labels: %{"case" => "fixture"}
  sandbox :shared, cmd: ["sleep", "300"], labels: %{"case" => "fixture"}, shared: true

  test "the sandbox runs and the shared one too", %{web: web, shared: shared, sandboxd_node: n} do
    assert web.status == :running and shared.status == :running
    assert {:ok, %{exit_code: 0}} = Sandboxd.exec(n, web.id, ["true"])
    IO.puts("case_fixture: saw the sandbox #{web.id}")
  end

  test "a failing test", %{web: web} do
    assert web.status == :running
    raise "fails on purpose"
  end

  test "a test whose process is killed", %{web: _web} do
    Process.exit(self(), :kill)
  end

  test "each test gets a sandbox of its own", %{web: web, sandboxd_node: n} do
    assert [_, _] = Sandboxd.list(n, %{labels: %{"case" => "fixture"}})
    assert {:ok, _} = Sandboxd.get(n, web.id)
  end
end
