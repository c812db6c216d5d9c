# Shared by the client's ExUnit files (test/elixir/sandboxd_client*_test.exs): options for a
# Sandboxd.Daemon under test (the binary from SANDBOXD_BIN, logs and state under SBX_LOG_DIR,
# where scripts/test.sh scans the logs for sanitizer reports) and a deadline wait.
defmodule ClientHelper do
  def bin, do: System.get_env("SANDBOXD_BIN") || Path.expand("priv/sandboxd")
  def log_dir, do: Path.expand(System.get_env("SBX_LOG_DIR") || "_build/test/logs")

  def unique(prefix), do: "#{prefix}#{System.unique_integer([:positive])}_#{System.pid()}"

  # Options for a daemon named `name`; state_dir made fresh unless given.
  def daemon_opts(name, extra \\ []) do
    state = Path.join([log_dir(), "state", name])
    File.mkdir_p!(state)
    [name: name, bin: bin(), state_dir: state, shutdown_policy: :destroy,
     log_file: Path.join(log_dir(), name <> ".log"), stop_timeout: 15_000,
     start_timeout: 60_000] ++ extra
  end

  # Polls fun every 50 ms until it returns a truthy value (returned) or ms pass (nil).
  def wait_until(fun, ms \\ 30_000), do: wait(fun, System.monotonic_time(:millisecond) + ms)

  defp wait(fun, deadline) do
    case fun.() do
      v when v not in [nil, false] -> v
      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          nil
        else
          Process.sleep(50)
          wait(fun, deadline)
        end
    end
  end

  # The sanitizer report in a daemon's log, or nil.
  def sanitizer_report(name) do
    case File.read(Path.join(log_dir(), name <> ".log")) do
      {:ok, text} -> if text =~ ~r/AddressSanitizer|LeakSanitizer|runtime error:/, do: text
      _ -> nil
    end
  end
end
