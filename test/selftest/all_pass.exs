# Selftest fixture: a clean ExUnit file (two pass, one excluded): it must count as passed.
ExUnit.start(exclude: [:later])

defmodule SelftestAllPass do
  use ExUnit.Case

  test "one", do: assert(1 + 1 == 2)
  test "two", do: assert(true)
  @tag :later
  test "excluded", do: assert(false)
end
