# Docker sandboxes as an Elixir developer drives them from IEx or a Phoenix backend (issue 4):
# create -> exec -> logs -> destroy, a subscriber's log events, and the errors a caller sees.
# Run by scripts/test.sh: elixir --sname X --cookie C -pa ebin -pa _build/test/ebin this_file
# Without a Docker engine (scripts/docker-up.sh did not export SANDBOXD_DOCKER=1) the tests
# are excluded; with SANDBOXD_REQUIRE_DOCKER=1 a missing engine raises instead.
docker? = :sbx_docker_smoke_tests.docker_wanted() == :ok
ExUnit.start(trace: true, exclude: if(docker?, do: [], else: [:docker]))

defmodule SandboxdDockerTest do
  use ExUnit.Case
  @moduletag :docker
  @image "sandboxd-test/busybox:1"

  setup_all do
    sbx = :sbx_test_util.start_isolated()
    on_exit(fn -> :sbx_test_util.cleanup() end)
    {:ok, node: sbx[:node]}
  end

  defp call(n, f, args), do: :rpc.call(n, :sandbox, f, args, 120_000)

  # Containers labelled with the node, as `docker ps -a` lists them.
  defp containers(n) do
    {out, 0} = System.cmd("docker", ["ps", "-aq", "--filter", "label=sandboxd.node=#{n}"])
    String.split(out, "\n", trim: true)
  end

  defp lines(events), do: Enum.flat_map(events, &String.split(&1, "\n", trim: true))

  test "create, exec, logs and destroy a container", %{node: n} do
    {:ok, sub} = call(n, :subscribe, [:all, self(), [:log, :status]])
    cmd = "for i in 1 2 3; do echo line $i; done; echo oops >&2; exec sleep 3600"

    assert {:ok, %{id: "ex1", type: :docker, status: :running, ref: ref}} =
             call(n, :create, ["ex1", :docker, %{image: @image, cmd: cmd, env: %{"WHO" => "elixir"}}])

    assert is_binary(ref)
    assert [_] = containers(n)

    # exec: stdout and stderr apart, the exit code, the container's environment.
    assert {:ok, %{exit_code: 3, stdout: "hello elixir\n", stderr: "bad\n", truncated: false}} =
             call(n, :exec, ["ex1", "echo hello $WHO; echo bad >&2; exit 3"])

    assert {:ok, %{exit_code: 0, stdout: "a b"}} = call(n, :exec, ["ex1", ["printf", "%s", "a b"], %{}])

    # The log lines reach the subscriber, then logs/2 has them, each on its stream.
    assert_receive {:sandbox_event, "ex1", :status, %{to: :running}}, 10_000
    out = receive_lines("ex1", :stdout, 3, [])
    assert out == ["line 1", "line 2", "line 3"]

    {:ok, logs} = call(n, :logs, ["ex1", %{tail: 100}])
    assert for(%{stream: :stdout, data: d} <- logs, do: d) == ["line 1", "line 2", "line 3"]
    assert for(%{stream: :stderr, data: d} <- logs, do: d) == ["oops"]
    # stdout and stderr are two pipes: only the order within each stream is given.
    assert {:ok, [_, _]} = call(n, :logs, ["ex1", %{tail: 2}])

    assert call(n, :copy_to, ["ex1", "note.txt", "from elixir"]) == :ok
    assert call(n, :copy_from, ["ex1", "/app/note.txt"]) == {:ok, "from elixir"}

    # destroy: gone from sandboxd and from Docker.
    assert call(n, :destroy, ["ex1"]) == :ok
    assert_receive {:sandbox_event, "ex1", :status, %{reason: :destroyed}}, 10_000
    assert call(n, :get, ["ex1"]) == {:error, :not_found}
    assert call(n, :exec, ["ex1", "true"]) == {:error, :not_found}
    assert call(n, :unsubscribe, [sub]) == :ok
    assert containers(n) == []
  end

  test "errors: a missing image, a bad option, an unknown id", %{node: n} do
    assert {:error, {:backend, :docker, detail}} =
             call(n, :create, ["ex2", :docker, %{image: "sandboxd-test/none:404", pull: :never}])

    assert is_binary(detail)
    assert {:error, {:badarg, :image, :missing}} = call(n, :create, ["ex2", :docker, %{cmd: "true"}])
    assert {:error, {:badarg, :bogus, :unknown_key}} =
             call(n, :create, ["ex2", :docker, %{image: @image, bogus: 1}])

    assert call(n, :list, [%{type: :docker}]) == []
    assert call(n, :destroy, ["ex2"]) == {:error, :not_found}
    assert containers(n) == []
  end

  test "GenServer.call drives the same cycle", %{node: n} do
    s = {:sandboxd, n}
    assert {:ok, %{status: :running}} =
             GenServer.call(s, {:create, "ex3", :docker, %{image: @image, cmd: "exec sleep 3600"}}, 120_000)

    assert {:ok, %{stdout: "42\n"}} = GenServer.call(s, {:exec, "ex3", "echo $((6*7))"}, 60_000)
    assert [%{id: "ex3", type: :docker}] = GenServer.call(s, {:list, %{type: :docker}})
    assert GenServer.call(s, {:destroy, "ex3"}, 60_000) == :ok
    assert containers(n) == []
  end

  defp receive_lines(_id, _stream, want, acc) when length(acc) >= want, do: Enum.take(acc, want)

  defp receive_lines(id, stream, want, acc) do
    receive do
      {:sandbox_event, ^id, :log, %{stream: ^stream, data: d}} ->
        receive_lines(id, stream, want, acc ++ lines([d]))
    after
      10_000 -> flunk("only #{inspect(acc)} arrived as #{stream} log events")
    end
  end
end
