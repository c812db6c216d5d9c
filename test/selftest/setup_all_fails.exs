# Selftest fixture: setup_all raises (as when sandboxd cannot start), so both tests are
# invalid. ExUnit 1.14 prints "2 tests, 0 failures, 2 invalid" and exits non-zero.
ExUnit.start()

defmodule SelftestSetupAllFails do
  use ExUnit.Case

  setup_all do
    raise "selftest fixture: setup_all fails on purpose"
  end

  test "one", do: assert(true)
  test "two", do: assert(true)
end
