%% bench/vm: vm sandboxes (issue 9, item 6). Run by bench/vm as
%% `erl ... -run sbx_bench_vm main`.
%%
%%  1. boot: sandbox:create(Id, vm, #{}) until the first exec of `true` answers, against
%%     the same qemu command line (read from /proc of a VM sandboxd started) run by hand in
%%     a folder of its own, until `sbx-agentctl --wait-ms 120000 agent.sock hello` answers.
%%     BENCH_VM_BOOTS rounds (default 3), interleaved.
%%  2. exec round trip of `true`: a VM, a process sandbox, and a docker sandbox when the
%%     engine is up (the test image, scripts/docker-up.sh); BENCH_VM_EXECS calls each
%%     (default 100), interleaved in chunks of 10, p50 and p99.
%%  3. host RSS of one idle VM's qemu (VmRSS, 5 s after boot) against its memory_mb.
%%  4. 4 VMs created at once (wall time until all answered) against one alone.
%% Prints the accel used (info()'s vm_accel and the metrics' accel).
-module(sbx_bench_vm).

-export([main/0]).

-define(WATCHDOG_MS, 1200000).

main() ->
    sbx_bench_lib:guarded_main(fun run/0, ?WATCHDOG_MS, fun() -> ok end).

now_ms() -> erlang:monotonic_time(microsecond) / 1000.

call(Node, F, A) -> rpc:call(Node, sandbox, F, A, 300000).

image() -> filename:absname("priv/vm").

run() ->
    put(problems, []),
    Boots = sbx_bench_lib:env_int("BENCH_VM_BOOTS", 3),
    Execs = sbx_bench_lib:env_int("BENCH_VM_EXECS", 100),
    Sbx = sbx_test_util:start_isolated(#{sname => sbx_test_util:unique("sbx_bench_vm_"),
                                         args => ["--vm-image", image()]}),
    #{node := Node, os_pid := OsPid} = Sbx,
    sbx_bench_lib:write_pidfile(OsPid),
    #{version := Vsn, vm_accel := Accel, backends := #{vm := VmAvail}} = sbx_test_util:info(Sbx),
    io:format("sandboxd ~s  node ~s  vm ~p  accel (auto) ~p~n", [Vsn, Node, VmAvail, Accel]),
    boot(Node, Boots),
    exec_rtt(Sbx, Node, Execs),
    rss(Node),
    four(Node),
    case get(problems) of
        [] -> ok;
        Ps -> {failed, lists:reverse(Ps)}
    end.

%% The argv of the qemu that runs sandbox Id.
qemu_argv(Id) ->
    [Pid] = sbx_test_util:os_pids_matching(["-name sbx-", Id, " "]),
    {ok, C} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/cmdline"),
    [binary_to_list(A) || A <- binary:split(C, <<0>>, [global, trim_all])].

%% The same command line by hand, in a folder of its own, until the agent's HELLO.
hand_boot(Argv, N) ->
    Dir = filename:join(os:getenv("SBX_BENCH_HANDDIR", "/tmp/sbx-bench-vm"), integer_to_list(N)),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Args = by_hand(tl(Argv)),
    Ctl = filename:absname("_build/vm/sbx-agentctl"),
    Q = string:join([shq(A) || A <- [hd(Argv) | Args]], " "),
    T0 = now_ms(),
    Out = os:cmd("cd " ++ shq(Dir) ++ " && { " ++ Q ++ " </dev/null >/dev/null 2>qemu.err & echo $! > qemu.pid; } && "
                 ++ shq(Ctl) ++ " --wait-ms 120000 agent.sock hello"),
    T = now_ms() - T0,
    {ok, P} = file:read_file(filename:join(Dir, "qemu.pid")),
    os:cmd("kill -KILL " ++ binary_to_list(string:trim(P))),
    case string:find(Out, "version 1") of
        nomatch -> sbx_bench_lib:problem("hand boot: no HELLO: ~s", [Out]), T;
        _ -> T
    end.

%% sandboxd's qemu argv as a command line a shell can start: what sandboxd hands over as
%% descriptors (the QMP and agent sockets, the kernel and initrd: vm_qemu.c) becomes paths
%% again, and the console a file.
by_hand(["-kernel", _ | T]) -> ["-kernel", filename:absname("priv/vm/vmlinuz") | by_hand(T)];
by_hand(["-initrd", _ | T]) -> ["-initrd", filename:absname("priv/vm/initrd.img") | by_hand(T)];
by_hand(["stdio,id=con,signal=off" | T]) -> ["file,id=con,path=console.log" | by_hand(T)];
by_hand(["socket,id=" ++ Rest = A | T]) ->
    case string:split(Rest, ",fd=") of
        [Name, _] -> ["socket,id=" ++ Name ++ ",path=" ++ Name ++ ".sock,server=on,wait=off" | by_hand(T)];
        _ -> [A | by_hand(T)]
    end;
by_hand([A | T]) -> [A | by_hand(T)];
by_hand([]) -> [].

shq(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

boot(Node, Rounds) ->
    io:format("~n1. boot: create until the first exec answers vs the same qemu by hand until HELLO~n"),
    {ok, _} = call(Node, create, [<<"argv">>, vm, #{}]),
    Argv = qemu_argv(<<"argv">>),
    ok = call(Node, destroy, [<<"argv">>]),
    Rs = [begin
              Id = list_to_binary("b" ++ integer_to_list(I)),
              T0 = now_ms(),
              {ok, _} = call(Node, create, [Id, vm, #{}]),
              {ok, #{exit_code := 0}} = call(Node, exec, [Id, [<<"true">>]]),
              Sb = now_ms() - T0,
              ok = call(Node, destroy, [Id]),
              H = hand_boot(Argv, I),
              io:format("   round ~b: sandboxd ~.1f ms, by hand ~.1f ms~n", [I, Sb, H]),
              {Sb, H}
          end || I <- lists:seq(1, Rounds)],
    Sm = median([S || {S, _} <- Rs]),
    Hm = median([H || {_, H} <- Rs]),
    io:format("   median: sandboxd ~.1f ms, by hand ~.1f ms, ratio ~.2f (target <= 1.2)~n",
              [Sm, Hm, Sm / Hm]),
    io:format("   Firecracker's anchor (KVM, to guest init): 125 ms; this TCG boot is ~.1fx that~n",
              [Hm / 125]).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

pct(L, P) ->
    S = lists:sort(L),
    lists:nth(max(1, round(P / 100 * length(S))), S).

exec_rtt(Sbx, Node, N) ->
    io:format("~n2. exec round trip of `true` (~b calls each, interleaved)~n", [N]),
    {ok, _} = call(Node, create, [<<"evm">>, vm, #{}]),
    {ok, _} = call(Node, create, [<<"eproc">>, process, #{cmd => <<"sleep 3600">>}]),
    Docker = case sbx_docker_smoke_tests:docker_wanted() of
                 ok ->
                     sbx_test_util:wait_until(fun() -> maps:get(docker, maps:get(backends, sbx_test_util:info(Sbx))) =:= available end, 30000),
                     case call(Node, create, [<<"edk">>, docker, #{image => <<"sandboxd-test/busybox:1">>, cmd => <<"sleep 3600">>}]) of
                         {ok, _} -> [<<"edk">>];
                         E -> io:format("   docker: ~p~n", [E]), []
                     end;
                 _ -> io:format("   docker: no engine (scripts/docker-up.sh): n/a~n"), []
             end,
    Targets = [<<"evm">>, <<"eproc">> | Docker],
    Times = lists:foldl(
              fun(_Chunk, Acc) ->
                      lists:foldl(fun(Id, A) ->
                                          Ts = [begin T0 = now_ms(),
                                                      {ok, #{exit_code := 0}} = call(Node, exec, [Id, [<<"true">>]]),
                                                      now_ms() - T0 end || _ <- lists:seq(1, 10)],
                                          maps:update_with(Id, fun(L) -> Ts ++ L end, Ts, A)
                                  end, Acc, Targets)
              end, #{}, lists:seq(1, max(1, N div 10))),
    [io:format("   ~-6s p50 ~.1f ms  p99 ~.1f ms~n", [Name(Id), pct(maps:get(Id, Times), 50), pct(maps:get(Id, Times), 99)])
     || Id <- Targets, Name <- [fun(<<"evm">>) -> "vm"; (<<"eproc">>) -> "process"; (_) -> "docker" end]],
    Vm = pct(maps:get(<<"evm">>, Times), 50),
    io:format("   ratio vm/process p50 ~.2f~n", [Vm / pct(maps:get(<<"eproc">>, Times), 50)]),
    [io:format("   ratio vm/docker p50 ~.2f~n", [Vm / pct(maps:get(<<"edk">>, Times), 50)]) || Docker =/= []],
    {ok, #{accel := A}} = call(Node, metrics, [<<"evm">>]),
    io:format("   accel (QMP query-kvm) ~p~n", [A]),
    [ok = call(Node, destroy, [Id]) || Id <- Targets].

rss(Node) ->
    io:format("~n3. host RSS of an idle VM~n"),
    {ok, #{ref := Pid}} = call(Node, create, [<<"rss">>, vm, #{memory_mb => 256}]),
    timer:sleep(5000),
    Kb = sbx_bench_lib:status_kb(Pid, "VmRSS"),
    io:format("   qemu VmRSS ~b KiB for memory_mb 256: ~.2f of the guest's memory~n", [Kb, Kb / (256 * 1024)]),
    ok = call(Node, destroy, [<<"rss">>]).

four(Node) ->
    io:format("~n4. 4 VMs created at once~n"),
    T0 = now_ms(),
    {ok, _} = call(Node, create, [<<"one">>, vm, #{}]),
    One = now_ms() - T0,
    ok = call(Node, destroy, [<<"one">>]),
    Self = self(),
    T1 = now_ms(),
    Ids = [list_to_binary("q" ++ integer_to_list(I)) || I <- lists:seq(1, 4)],
    [spawn_link(fun() -> Self ! {made, Id, call(Node, create, [Id, vm, #{}])} end) || Id <- Ids],
    Res = [receive {made, Id, R} -> R end || Id <- Ids],
    Four = now_ms() - T1,
    [sbx_bench_lib:problem("4 at once: ~p", [R]) || R <- Res, element(1, R) =/= ok],
    io:format("   one alone ~.1f ms; four at once ~.1f ms (~.2fx one, on ~b cores)~n",
              [One, Four, Four / One, erlang:system_info(logical_processors)]),
    [call(Node, destroy, [Id]) || Id <- Ids].
