%% The guest agent alone in real QEMU (issue 9): the default image (make vm-image: priv/vm)
%% is booted ONCE, under TCG, and driven through _build/vm/sbx-agentctl over the
%% virtio-serial port's chardev socket. No sandboxd: the vm backend's own suite is
%% sbx_vm_tests. The tests share that one VM and run in order; the last one shuts it down
%% through the agent and checks that QEMU exits by itself.
%%
%% Checks: the HELLO version and guest kernel release (= priv/vm/kernel-release, not the
%% host's); exec keeps stdout and stderr apart, returns exit codes and signal deaths; 1 MB of
%% stdin comes back intact through cat; 20 MB of output arrive exactly (count and checksum
%% against the guest's own); a timeout kills the command and its background child (checked
%% from inside the guest); 5 MB written then read back byte for byte; ps and metrics answer
%% sane values; an unknown type, a malformed EXEC, a too-small length with junk and a 4 GiB
%% length from the host neither kill the agent nor stop it answering HELLO; a new connection
%% kills the previous connection's commands; shutdown powers the guest off and QEMU exits.
%%
%% Every test skips when qemu-system-x86_64 is not installed.
-module(sbx_agent_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(KEY, {?MODULE, vm}).
-define(BOOT_MS, 150000).

tests() ->
    [{boot_and_hello, ?BOOT_MS + 30000, qemu(fun boot_and_hello/0)},
     {exec_streams_codes_signals, 60000, qemu(fun exec_basics/0)},
     {stdin_1mb_echoed_intact, 120000, qemu(fun stdin_1mb/0)},
     {output_20mb_exact, 300000, qemu(fun output_20mb/0)},
     {timeout_kills_command_and_child, 60000, qemu(fun timeout_kills_group/0)},
     {write_then_read_5mb, 180000, qemu(fun files_5mb/0)},
     {ps_and_metrics_sane, 60000, qemu(fun ps_metrics/0)},
     {hostile_host_frames_survived, 60000, qemu(fun hostile_host/0)},
     {reconnect_kills_old_connections_commands, 60000, qemu(fun reconnect/0)},
     {shutdown_powers_off, 90000, qemu(fun shutdown/0)}].

%% Wraps a test: {skip, no_qemu} without qemu-system-x86_64.
qemu(F) ->
    fun() ->
            case os:find_executable("qemu-system-x86_64") of
                false -> {skip, no_qemu};
                _ -> F()
            end
    end.

%%% ---------------------------------------------------------------------------------
%%% Helpers

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

root() ->
    {ok, Cwd} = file:get_cwd(),
    Cwd.

ctl_bin() -> filename:join(root(), "_build/vm/sbx-agentctl").

vm() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> error(vm_not_booted);
        Vm -> Vm
    end.

%% Runs a shell command line; {ExitStatus, Output} (stdout only, unless the line redirects).
sh(Cmd) -> sh(Cmd, 120000).
sh(Cmd, TimeoutMs) ->
    P = open_port({spawn_executable, "/bin/sh"},
                  [{args, ["-c", Cmd]}, exit_status, binary, stream, use_stdio]),
    sh_collect(P, [], erlang:monotonic_time(millisecond) + TimeoutMs).

sh_collect(P, Acc, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {P, {data, D}} -> sh_collect(P, [D | Acc], Deadline);
        {P, {exit_status, S}} -> {S, iolist_to_binary(lists:reverse(Acc))}
    after Left ->
            catch port_close(P),
            error({shell_timeout, Left})
    end.

q(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

%% sbx-agentctl SOCKET Args (a shell fragment); stderr into Dir/stderr. {Status, Stdout, Stderr}.
ctl(Args) ->
    #{sock := Sock, dir := Dir} = vm(),
    Err = filename:join(Dir, "stderr"),
    {St, Out} = sh(q(ctl_bin()) ++ " " ++ q(Sock) ++ " " ++ Args ++ " 2>" ++ q(Err)),
    {ok, E} = file:read_file(Err),
    {St, Out, E}.

%% exec in the guest through `sh -c Script`.
gsh(Script) -> ctl("exec -- sh -c " ++ q(Script)).
gsh(Opts, Script) -> ctl("exec " ++ Opts ++ " -- sh -c " ++ q(Script)).

%% Starts QEMU under a small shell that kills it when this node goes (its stdin closes), so a
%% failed run leaves no VM behind. A holder process owns the port and reports its exit.
start_vm(Dir) ->
    Vm = filename:join(root(), "priv/vm"),
    Sock = filename:join(Dir, "agent.sock"),
    Console = filename:join(Dir, "console.log"),
    Args = ["-M", "pc", "-accel", "tcg,tb-size=64", "-m", "256", "-nographic", "-no-reboot",
            "-monitor", "none", "-serial", "file:" ++ Console,
            "-kernel", filename:join(Vm, "vmlinuz"), "-initrd", filename:join(Vm, "initrd.img"),
            "-append", "console=ttyS0 panic=-1",
            "-device", "virtio-serial-pci",
            "-chardev", "socket,id=agent,path=" ++ Sock ++ ",server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=org.sandboxd.agent",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="],
    %% (An asynchronous list's stdin is /dev/null unless redirected: hence fd 3.)
    Wrapper = "exec 3<&0; qemu-system-x86_64 \"$@\" </dev/null & q=$!; echo $q > "
        ++ q(filename:join(Dir, "qemu.pid"))
        ++ "; (cat <&3; kill -9 $q) >/dev/null 2>&1 & wait $q",
    Self = self(),
    Holder = spawn(fun() ->
                           P = open_port({spawn_executable, "/bin/sh"},
                                         [{args, ["-c", Wrapper, "sh" | Args]}, exit_status,
                                          binary, stderr_to_stdout]),
                           Self ! {self(), started},
                           holder(P, [])
                   end),
    receive {Holder, started} -> ok end,
    #{dir => Dir, sock => Sock, console => Console, holder => Holder}.

holder(P, Out) ->
    receive
        {P, {data, D}} -> holder(P, [D | Out]);
        {P, {exit_status, S}} -> holder_done(S, iolist_to_binary(lists:reverse(Out)));
        {status, From} -> From ! {self(), running}, holder(P, Out)
    end.

holder_done(S, Out) ->
    receive
        {status, From} -> From ! {self(), {exited, S, Out}}, holder_done(S, Out)
    end.

vm_status(#{holder := H}) ->
    H ! {status, self()},
    receive {H, St} -> St after 5000 -> unknown end.

qemu_pid(#{dir := Dir}) ->
    {ok, B} = file:read_file(filename:join(Dir, "qemu.pid")),
    string:trim(binary_to_list(B)).

kv_lines(Bin) ->
    maps:from_list([list_to_tuple(string:split(L, " ")) ||
                       L <- string:split(string:trim(binary_to_list(Bin)), "\n", all), L =/= ""]).

tmp_file(Name) -> filename:join(maps:get(dir, vm()), Name).

%% A new folder of this run's own under /tmp (0700; removed by the last test).
new_dir() ->
    Dir = filename:join("/tmp", io_lib:format("sbx-agent-test.~s.~b",
                                               [os:getpid(), erlang:unique_integer([positive])])),
    ok = file:make_dir(Dir),
    ok = file:change_mode(Dir, 8#700),
    lists:flatten(Dir).

%%% ---------------------------------------------------------------------------------
%%% Tests

boot_and_hello() ->
    Dir = new_dir(),
    {ok, RelBin} = file:read_file(filename:join(root(), "priv/vm/kernel-release")),
    Release = string:trim(binary_to_list(RelBin)),
    Vm = start_vm(Dir),
    persistent_term:put(?KEY, Vm),
    {St, Out} = sh(q(ctl_bin()) ++ " --wait-ms " ++ integer_to_list(?BOOT_MS) ++ " " ++
                       q(maps:get(sock, Vm)) ++ " hello", ?BOOT_MS + 10000),
    ?assertEqual({0, running}, {St, vm_status(Vm)}),
    H = kv_lines(Out),
    ?assertEqual("1", maps:get("version", H)),
    ?assertEqual(Release, maps:get("kernel", H)),
    ?assertNotEqual(string:trim(os:cmd("uname -r")), maps:get("kernel", H)),
    report("boot to hello ~s ms (guest boot_ms ~s), guest kernel ~s",
           [maps:get("hello_ms", H), maps:get("boot_ms", H), Release]),
    %% The guest's uname agrees.
    {0, Uname, _} = ctl("exec -- uname -r"),
    ?assertEqual(Release, string:trim(binary_to_list(Uname))).

exec_basics() ->
    {3, <<"out\n">>, <<"err\n">>} = gsh("echo out; echo err >&2; exit 3"),
    {0, <<"ok\n">>, <<>>} = gsh("echo ok"),
    {1, <<>>, <<>>} = ctl("exec -- false"),
    %% Environment and working directory.
    {0, <<"bar /tmp /root\n">>, _} =
        ctl("exec --env FOO=bar --cwd /tmp -- sh -c 'echo $FOO $PWD $HOME'"),
    %% A signal death: 128 + the signal, and said so.
    {137, <<>>, E} = gsh("kill -KILL $$"),
    ?assertNotEqual(nomatch, binary:match(E, <<"killed by signal 9">>)),
    %% A program that does not exist: an error from the agent, no exit code.
    {125, <<>>, E2} = ctl("exec -- /no/such/program"),
    ?assertNotEqual(nomatch, binary:match(E2, <<"error 2:">>)).

stdin_1mb() ->
    In = crypto:strong_rand_bytes(1024 * 1024),
    InF = tmp_file("in1m"),
    ok = file:write_file(InF, In),
    {0, Out, <<>>} = ctl("exec --stdin " ++ q(InF) ++ " -- cat"),
    ?assertEqual(byte_size(In), byte_size(Out)),
    ?assert(In =:= Out).

output_20mb() ->
    Gen = "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c 20000000",
    {0, Sum, <<>>} = gsh(Gen ++ " | md5sum | cut -d' ' -f1"),
    OutF = tmp_file("out20m"),
    T0 = erlang:monotonic_time(millisecond),
    {0, <<>>} = sh(q(ctl_bin()) ++ " " ++ q(maps:get(sock, vm())) ++ " exec -- sh -c " ++ q(Gen)
                   ++ " >" ++ q(OutF), 240000),
    Ms = erlang:monotonic_time(millisecond) - T0,
    {ok, Out} = file:read_file(OutF),
    ok = file:delete(OutF),
    ?assertEqual(20000000, byte_size(Out)),
    Hex = lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= erlang:md5(Out)]),
    ?assertEqual(string:trim(binary_to_list(Sum)), Hex),
    report("20 MB of output in ~b ms", [Ms]).

timeout_kills_group() ->
    {137, <<"started\n">>, E} =
        gsh("--timeout 1500", "sleep 300 & echo $! > /tmp/child; echo started; sleep 301"),
    ?assertNotEqual(nomatch, binary:match(E, <<"timed out">>)),
    {0, PidB, _} = ctl("exec -- cat /tmp/child"),
    Pid = string:trim(binary_to_list(PidB)),
    %% The child got SIGKILL with its group; the agent (pid 1) reaps it once it is orphaned.
    Gone = fun() ->
                   {0, Ps, _} = ctl("ps"),
                   Pids = [hd(string:split(L, " ")) || L <- string:split(binary_to_list(Ps), "\n", all)],
                   {_, Alive, _} = gsh("test -e /proc/" ++ Pid ++ " && echo yes || echo no"),
                   not lists:member(Pid, Pids) andalso Alive =:= <<"no\n">>
           end,
    ok = wait_until(Gone, 10000),
    {0, <<>>, _} = gsh("ps -o pid,args | grep -v grep | grep 'sleep 30[01]' || true").

wait_until(F, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    wait_loop(F, Deadline).
wait_loop(F, Deadline) ->
    case F() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error(condition_not_met);
                false -> timer:sleep(200), wait_loop(F, Deadline)
            end
    end.

files_5mb() ->
    Data = crypto:strong_rand_bytes(5 * 1000 * 1000),
    InF = tmp_file("in5m"),
    ok = file:write_file(InF, Data),
    {0, <<"ok\n">>, <<>>} = ctl("write /tmp/five 600 < " ++ q(InF)),
    {0, Back, <<>>} = ctl("read /tmp/five"),
    ?assertEqual(byte_size(Data), byte_size(Back)),
    ?assert(Data =:= Back),
    {0, <<"600 5000000\n">>, _} = gsh("stat -c '%a %s' /tmp/five"),
    %% Errors carry the errno.
    {1, <<>>, E1} = ctl("read /no/such/file"),
    ?assertNotEqual(nomatch, binary:match(E1, <<"error 2:">>)),
    {1, <<>>, E2} = ctl("read /tmp"),
    ?assertNotEqual(nomatch, binary:match(E2, <<"error 21:">>)),
    {1, _, E3} = ctl("write /no/such/dir/f < /dev/null"),
    ?assertNotEqual(nomatch, binary:match(E3, <<"error 2:">>)),
    {1, _, E4} = ctl("write relative/path < /dev/null"),
    ?assertNotEqual(nomatch, binary:match(E4, <<"error 22:">>)).

ps_metrics() ->
    {0, Ps, <<>>} = ctl("ps"),
    [_Header | Lines] = string:split(string:trim(binary_to_list(Ps)), "\n", all),
    Procs = [string:split(L, " ", all) || L <- Lines],
    ?assert(length(Procs) > 5),
    [["1", "0", _State, Rss1, "init" | _]] = [P || P = ["1" | _] <- Procs],
    ?assert(list_to_integer(Rss1) > 0),
    {0, M0, <<>>} = ctl("metrics"),
    M = maps:map(fun(_, V) -> list_to_integer(V) end, kv_lines(M0)),
    #{"mem_total" := Total, "mem_available" := Avail, "uptime_ms" := Up,
      "cpu_user" := User, "cpu_system" := Sys, "cpu_idle" := Idle, "nprocs" := N} = M,
    %% -m 256: the kernel keeps some for itself.
    ?assert(Total > 150 * 1024 * 1024 andalso Total =< 256 * 1024 * 1024),
    ?assert(Avail > 0 andalso Avail < Total),
    ?assert(Up > 1000),
    ?assert(User + Sys + Idle > 0),
    ?assert(N > 5),
    report("guest: mem_total ~b, mem_available ~b, uptime_ms ~b, ~b tasks", [Total, Avail, Up, N]).

hostile_host() ->
    {0, G, _} = ctl("garbage"),
    ?assertNotEqual(nomatch, binary:match(G, <<"unknown type: error 38">>)),
    ?assertNotEqual(nomatch, binary:match(G, <<"malformed exec: error 22">>)),
    ?assertNotEqual(nomatch, binary:match(G, <<"resynchronised: hello answered">>)),
    {0, H, _} = ctl("huge"),
    ?assertNotEqual(nomatch, binary:match(H, <<"hello answered">>)),
    %% A new connection still gets its HELLO answered and its commands run.
    {0, <<"version 1\n", _/binary>>, _} = ctl("hello"),
    {0, <<"alive\n">>, _} = gsh("echo alive"),
    %% Raw junk straight on the socket, then the connection dropped.
    #{sock := Sock} = vm(),
    {ok, S} = gen_tcp:connect({local, Sock}, 0, [binary, {active, false}]),
    ok = gen_tcp:send(S, crypto:strong_rand_bytes(100000)),
    ok = gen_tcp:close(S),
    {0, <<"still alive\n">>, _} = gsh("echo still alive").

reconnect() ->
    %% The main workload (id 0), then a command, each started by a connection of its own (a
    %% background sbx-agentctl; QEMU takes one connection at a time); once each runs, its
    %% sbx-agentctl is killed, which closes the connection.
    N = integer_to_list(erlang:unique_integer([positive]) rem 1000 + 1000),
    Marker = "sleep 3" ++ N,
    MainMarker = "sleep 4" ++ N,
    [begin
         {Ctl, Out} = background(Cmd, M),
         ok = wait_until(fun() -> file:read_file(Out) =:= {ok, <<"started\n">>} end, 15000),
         {0, _} = sh("kill -9 " ++ Ctl)
     end || {Cmd, M} <- [{"exec --main", MainMarker}, {"exec", Marker}]],
    %% The next connection's HELLO kills what the dropped one started, not the main workload.
    Running = fun(M) ->
                      {0, Ps, _} = ctl("ps"),
                      binary:match(Ps, list_to_binary(M)) =/= nomatch
              end,
    ok = wait_until(fun() -> not Running(Marker) end, 15000),
    ?assert(Running(MainMarker)),
    {0, <<"next\n">>, _} = gsh("echo next"),
    %% A second main workload is refused while the first runs; KILL ends it.
    {125, <<>>, Busy} = ctl("exec --main -- true"),
    ?assertNotEqual(nomatch, binary:match(Busy, <<"error 16:">>)),
    {0, <<"exit -1 signal 9\n">>, _} = ctl("kill 0"),
    ok = wait_until(fun() -> not Running(MainMarker) end, 15000),
    %% The console says what happened.
    ?assert(console_has("killed 1 commands of the previous one")).

%% sbx-agentctl SOCKET Cmd -- sh -c 'echo started; exec Marker' in the background; its os
%% pid and the file that gets its output.
background(Cmd, Marker) ->
    #{sock := Sock} = vm(),
    OutF = tmp_file("bg-" ++ lists:last(string:split(Marker, " ")) ++ ".out"),
    Bg = q(ctl_bin()) ++ " " ++ q(Sock) ++ " " ++ Cmd ++ " -- sh -c "
        ++ q("echo started; exec " ++ Marker) ++ " >" ++ q(OutF) ++ " 2>&1 & echo $!",
    {0, Pid} = sh(Bg),
    {string:trim(binary_to_list(Pid)), OutF}.

console_has(Text) ->
    {ok, B} = file:read_file(maps:get(console, vm())),
    binary:match(B, list_to_binary(Text)) =/= nomatch.

shutdown() ->
    Vm = vm(),
    Result = try
                 {0, <<"ok\n">>, _} = ctl("shutdown"),
                 ok = wait_until(fun() -> vm_status(Vm) =/= running end, 60000),
                 {exited, 0, _} = vm_status(Vm),
                 {ok, Console} = file:read_file(maps:get(console, Vm)),
                 ?assertNotEqual(nomatch, binary:match(Console, <<"Linux version">>)),
                 ?assertNotEqual(nomatch, binary:match(Console, <<"sbx-agent: ready">>)),
                 ?assertNotEqual(nomatch, binary:match(Console, <<"powering off">>)),
                 ok
             catch C:R:St ->
                     {C, R, St}
             end,
    %% Whatever happened, no VM stays behind.
    case vm_status(Vm) of
        running -> os:cmd("kill -9 " ++ qemu_pid(Vm));
        _ -> ok
    end,
    persistent_term:erase(?KEY),
    case Result of
        ok ->
            os:cmd("rm -rf " ++ q(maps:get(dir, Vm)));
        {C1, R1, St1} ->
            report("kept ~s (the console log is there)", [maps:get(dir, Vm)]),
            erlang:raise(C1, R1, St1)
    end.
