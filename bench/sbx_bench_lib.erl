%% What the benchmarks share: a guarded entry point (watchdog, cleanup, exit status),
%% problem collection, environment knobs and /proc readings.
-module(sbx_bench_lib).

-export([guarded_main/3, problem/2, env_int/2, write_pidfile/1, status_kb/2, kb/1, uid_range_args/0]).

%% Runs Run() in its own process so that a crash or a hang still ends in cleanup and a
%% non-zero exit status. Run returns ok or {failed, Problems}; After() runs last, whatever
%% happened (its crashes are ignored). Halts the VM.
-spec guarded_main(fun(() -> ok | {failed, [string()]}), pos_integer(), fun(() -> term())) ->
          no_return().
guarded_main(Run, WatchdogMs, After) ->
    T0 = erlang:monotonic_time(millisecond),
    {Pid, Ref} = spawn_monitor(fun() -> exit({bench_result, Run()}) end),
    Code = receive
               {'DOWN', Ref, process, Pid, {bench_result, ok}} ->
                   0;
               {'DOWN', Ref, process, Pid, {bench_result, {failed, Problems}}} ->
                   io:format("~nFAILED: ~b problem(s):~n", [length(Problems)]),
                   [io:format("  - ~s~n", [P]) || P <- Problems],
                   1;
               {'DOWN', Ref, process, Pid, Reason} ->
                   io:format("~nFAILED: the bench crashed:~n  ~p~n", [Reason]),
                   1
           after WatchdogMs ->
                   exit(Pid, kill),
                   io:format("~nFAILED: watchdog: the bench did not finish in ~b s~n",
                             [WatchdogMs div 1000]),
                   2
           end,
    catch sbx_test_util:cleanup(),
    catch After(),
    io:format("bench time: ~.1f s~n", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    halt(Code).

%% Prints a problem and records it in the calling process (key `problems').
problem(Fmt, Args) ->
    Text = lists:flatten(io_lib:format(Fmt, Args)),
    io:format("  PROBLEM: ~s~n", [Text]),
    put(problems, [Text | get(problems)]).

env_int(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        V -> list_to_integer(V)
    end.

%% Tells the wrapper script which sandboxd to stop if the runner dies.
write_pidfile(OsPid) ->
    case os:getenv("SBX_BENCH_PIDFILE") of
        false -> ok;
        File -> ok = file:write_file(File, integer_to_list(OsPid))
    end.

%% A "Key: N kB" line of /proc/<pid>/status, or undefined.
status_kb(OsPid, Key) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, Text} ->
            case re:run(Text, "(?m)^" ++ Key ++ ":\\s+(\\d+) kB",
                        [{capture, all_but_first, list}]) of
                {match, [N]} -> list_to_integer(N);
                nomatch -> undefined
            end;
        {error, _} -> undefined
    end.

kb(N) when is_integer(N) -> io_lib:format("~.2f MiB", [N / 1024]);
kb(_) -> "n/a".

%% sandboxd's --uid-range for a bench: the default range (61184-65519) gives 4,336 sandboxes
%% their own uid, fewer than a 10,000-sandbox bench makes. BENCH_UID_RANGE overrides it.
uid_range_args() ->
    ["--uid-range", os:getenv("BENCH_UID_RANGE", "200000-219999")].
