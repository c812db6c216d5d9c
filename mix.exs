# Mix builds this repository as a dependency ({:sandboxd, path: ...} or git:) with neither hex
# nor rebar3: src/*.erl and lib/*.ex by Mix itself, priv/sandboxd (and the modules the daemon
# loads into BEAM nodes) by `make priv`, the compiler step below.
defmodule Mix.Tasks.Compile.SandboxdPriv do
  @moduledoc "Builds priv/sandboxd and priv/*.beam with `make priv` (a no-op when up to date)."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    case System.cmd("make", ["-s", "priv"], cd: File.cwd!(), stderr_to_stdout: true) do
      {_, 0} ->
        # priv/ may have been made just now: link it into _build like Mix does for a
        # priv/ that existed before the compilers ran.
        Mix.Project.build_structure()
        {:ok, []}

      {out, status} ->
        Mix.shell().error(out)
        Mix.raise("make priv failed (exit status #{status}): sandboxd needs make, gcc and the " <>
                    "libraries scripts/deps.sh build installs")
    end
  end
end

defmodule Sandboxd.MixProject do
  use Mix.Project

  def project do
    [
      app: :sandboxd,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:sandboxd_priv | Mix.compilers()],
      erlc_paths: ["src"],
      erlc_include_path: "include",
      erlc_options: [:debug_info, :warnings_as_errors],
      elixirc_paths: ["lib"],
      deps: []
    ]
  end

  # No application callback: a daemon runs only where the user's supervision tree starts
  # Sandboxd.Daemon.
  def application do
    [extra_applications: [:logger]]
  end
end
