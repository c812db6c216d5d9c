%% Helpers for suites: start and stop the real sandboxd binary, start peer nodes,
%% wait for conditions. Everything started is recorded and cleaned up after each test.
-module(sbx_test_util).

-export([bin/0, cookie/0, host/0, log_dir/0, start/0, start/1, stop/1, os_kill/2,
         info/1, counts/1, start_peer/1, start_peer/2, stop_peer/1, peer_os_pid/1,
         wait_until/2, wait_until/3, cleanup/0, unique/1, log_text/1, port_of/1,
         state_dir/1, start_isolated/0, start_isolated/1, os_pids_matching/1, zombies_of/1,
         vm_hwm/1, shutdown_budget_ms/0, sanitizer_report/1]).

-define(TABLE, sbx_test_util_started).
%% How long SIGTERM may take to end sandboxd (destroy policy included, sanitizer build, busy
%% 2-core machine). A hang at shutdown takes forever; a clean stop takes well under a second.
-define(SHUTDOWN_BUDGET_MS, 15000).

shutdown_budget_ms() -> ?SHUTDOWN_BUDGET_MS.

bin() ->
    case os:getenv("SANDBOXD_BIN") of
        false -> filename:absname("priv/sandboxd");
        B -> B
    end.

cookie() -> atom_to_list(erlang:get_cookie()).

host() -> lists:nth(2, string:split(atom_to_list(node()), "@")).

log_dir() ->
    D = os:getenv("SBX_LOG_DIR", "_build/test/logs"),
    ok = filelib:ensure_dir(filename:join(D, "x")),
    D.

unique(Prefix) ->
    Prefix ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid().

%% start(Opts): Opts may hold sname, cookie (false = none given), args (extra argv), env, bin
%% (another executable than bin(), given the same argv).
%% Returns #{node, os_pid, port, log} once the node answers ping.
start() -> start(#{}).
start(Opts) ->
    SName = maps:get(sname, Opts, unique("sbx")),
    Log = filename:join(log_dir(), SName ++ ".log"),
    CookieArgs = case maps:get(cookie, Opts, cookie()) of
                     false -> [];
                     C -> ["--cookie", C]
                 end,
    Extra = maps:get(args, Opts, []),
    %% Every instance keeps its journal in the test logs, never in $HOME.
    StateArgs = case lists:member("--state-dir", Extra) of
                    true -> [];
                    false -> ["--state-dir", state_dir(SName)]
                end,
    Args = ["--sname", SName | CookieArgs] ++ StateArgs ++ Extra,
    Cmd = "exec \"$0\" \"$@\" 2>>" ++ Log,
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", Cmd, maps:get(bin, Opts, bin()) | Args]}, exit_status, {env, maps:get(env, Opts, [])}]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    Keeper = keep_port(Port),
    Node = list_to_atom(SName ++ "@" ++ host()),
    S = #{node => Node, os_pid => OsPid, port => Port, log => Log, keeper => Keeper},
    remember({sandboxd, S}),
    case maps:get(wait, Opts, true) of
        true ->
            ok = wait_until(fun() -> net_adm:ping(Node) =:= pong end, 10000),
            S;
        false ->
            S
    end.

%% A fresh, empty state directory (absolute) under log_dir(), for one sandboxd instance.
state_dir(Name) ->
    D = filename:absname(filename:join([log_dir(), "state", unique(Name)])),
    ok = filelib:ensure_dir(filename:join(D, "x")),
    D.

%% As start/1, with a state directory of its own (Opts state_dir, else a fresh one) and
%% `--shutdown-policy destroy` (Opts policy), so that sandboxes a test leaves behind go
%% with the instance at cleanup. The result also holds state_dir and sname.
start_isolated() -> start_isolated(#{}).
start_isolated(Opts) ->
    SName = maps:get(sname, Opts, unique("sbx")),
    Dir = case maps:get(state_dir, Opts, undefined) of
              undefined -> state_dir(SName);
              D -> D
          end,
    Policy = maps:get(policy, Opts, "destroy"),
    Args = ["--state-dir", Dir, "--shutdown-policy", Policy] ++ maps:get(args, Opts, []),
    S = start(Opts#{sname => SName, args => Args}),
    S#{state_dir => Dir, sname => SName}.

%% OS pids whose command line (arguments joined by spaces) contains Marker.
os_pids_matching(Marker) ->
    M = iolist_to_binary(Marker),
    [P || P <- all_os_pids(), P =/= list_to_integer(os:getpid()),
          case file:read_file("/proc/" ++ integer_to_list(P) ++ "/cmdline") of
              {ok, C} -> binary:match(binary:replace(C, <<0>>, <<" ">>, [global]), M) =/= nomatch;
              _ -> false
          end].

%% Zombie processes (state Z) whose parent is OsPid: [{Pid, Comm}].
zombies_of(OsPid) ->
    lists:filtermap(
      fun(P) ->
              case file:read_file("/proc/" ++ integer_to_list(P) ++ "/stat") of
                  {ok, Stat} ->
                      [Left, Rest] = string:split(Stat, <<") ">>, trailing),
                      [_, Comm] = binary:split(Left, <<" (">>),
                      case binary:split(Rest, <<" ">>, [global]) of
                          [<<"Z">>, PPid | _] ->
                              case binary_to_integer(PPid) =:= OsPid of
                                  true -> {true, {P, Comm}};
                                  false -> false
                              end;
                          _ -> false
                      end;
                  _ -> false
              end
      end, all_os_pids()).

%% The peak resident set size (VmHWM) of an OS process, in bytes; undefined if gone.
vm_hwm(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, B} ->
            case re:run(B, "VmHWM:\\s+(\\d+) kB", [{capture, all_but_first, binary}]) of
                {match, [K]} -> binary_to_integer(K) * 1024;
                _ -> undefined
            end;
        _ -> undefined
    end.

all_os_pids() ->
    {ok, Names} = file:list_dir("/proc"),
    [list_to_integer(N) || N <- Names, lists:all(fun(C) -> C >= $0 andalso C =< $9 end, N)].

%% Hands the port of a sandboxd the caller just opened to a process of its own, which outlives
%% the test: the caller still gets every {Port, _} message (forwarded), and cleanup/0 can learn
%% the exit status after the test process is gone. Returns the keeper's pid.
keep_port(Port) ->
    Starter = self(),
    K = spawn(fun() -> receive {take, Port} -> port_keeper(Port, Starter) end end),
    case catch erlang:port_connect(Port, K) of
        true ->
            unlink(Port),
            K ! {take, Port};
        _ ->
            %% The port closed already: its exit status is in the caller's mailbox.
            St = receive {Port, {exit_status, X}} = M -> self() ! M, X after 1000 -> unknown end,
            K ! {take, Port},
            K ! {Port, {exit_status, St}}
    end,
    K.

%% Forwards port messages to the starter; answers {status, From, Ref} with running or
%% {exited, Status}; ends on stop.
port_keeper(Port, Starter) ->
    receive
        {Port, {exit_status, St}} = M -> Starter ! M, keeper_done(St);
        {Port, _} = M -> Starter ! M, port_keeper(Port, Starter);
        {status, From, Ref} -> From ! {Ref, running}, port_keeper(Port, Starter);
        stop -> ok
    end.

keeper_done(St) ->
    receive
        {status, From, Ref} -> From ! {Ref, {exited, St}}, keeper_done(St);
        stop -> ok
    end.

%% running | {exited, Status} of an instance, as its port keeper saw it.
port_status(#{keeper := K}) ->
    Ref = make_ref(),
    K ! {status, self(), Ref},
    receive {Ref, A} -> A after 5000 -> {exited, keeper_gone} end.

%% Waits until the keeper has the exit status, up to the monotonic Deadline (ms).
await_exit(S, Deadline) ->
    case port_status(S) of
        {exited, St} -> {exited, St};
        running ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> timer:sleep(50), await_exit(S, Deadline)
            end
    end.

%% SIGTERM, and wait: sandboxd must exit within shutdown_budget_ms() with status 0 and leave no
%% sanitizer report in its log; anything else raises {sandboxd_shutdown, What} (after SIGKILL
%% if it hung). Returns 0.
stop(S = #{os_pid := OsPid, port := Port}) ->
    os_kill(OsPid, "TERM"),
    St = receive {Port, {exit_status, X}} -> X
         after ?SHUTDOWN_BUDGET_MS -> os_kill(OsPid, "KILL"), timeout
         end,
    case [V || V <- [exit_violation(S, St), sanitizer_violation(S)], V =/= ok] of
        [] -> St;
        Vs -> error({sandboxd_shutdown, Vs})
    end.

exit_violation(_, 0) -> ok;
exit_violation(#{node := N}, timeout) ->
    {N, {no_exit_within_ms, ?SHUTDOWN_BUDGET_MS, after_sigterm}};
exit_violation(#{node := N}, St) -> {N, {exit_status_after_sigterm, St}}.

sanitizer_violation(S = #{node := N, log := Log}) ->
    case sanitizer_report(S) of
        none -> ok;
        R -> {N, {sanitizer_report, Log, R}}
    end.

%% The first sanitizer report (up to 3000 bytes) in an instance's log, or none.
sanitizer_report(#{log := Log}) ->
    case file:read_file(Log) of
        {ok, B} ->
            case re:run(B, "AddressSanitizer|LeakSanitizer|runtime error:|"
                           "UndefinedBehaviorSanitizer", [{capture, first, index}]) of
                nomatch -> none;
                {match, [{At, _}]} -> binary:part(B, At, min(3000, byte_size(B) - At))
            end;
        _ -> none
    end.

os_kill(OsPid, Sig) ->
    os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok.

info(#{node := Node}) -> rpc:call(Node, sandbox, info, [], 10000).

%% Connection and process counts as info() reports them.
counts(S) ->
    #{connections := C, processes := P} = info(S),
    {C, P}.

log_text(#{log := Log}) ->
    {ok, B} = file:read_file(Log),
    B.

%% The distribution port sandboxd listens on, from epmd.
port_of(#{node := Node}) ->
    [Alive, Host] = string:split(atom_to_list(Node), "@"),
    {port, P, _} = erl_epmd:port_please(Alive, Host),
    P.

%% A peer node (real erl) with the test cookie; extra erl args in Args.
start_peer(Name) -> start_peer(Name, []).
start_peer(Name, Args) ->
    {ok, Peer, Node} = peer:start(#{name => unique(Name),
                                    args => ["-setcookie", cookie(), "-hidden" | Args],
                                    connection => standard_io,
                                    wait_boot => 120000}),
    remember({peer, Peer}),
    {Peer, Node}.

stop_peer(Peer) -> catch peer:stop(Peer), ok.

peer_os_pid(Peer) -> list_to_integer(peer:call(Peer, os, getpid, [])).

wait_until(Fun, TimeoutMs) -> wait_until(Fun, TimeoutMs, 50).
wait_until(Fun, TimeoutMs, Step) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_loop(Fun, Deadline, Step).

wait_loop(Fun, Deadline, Step) ->
    case catch Fun() of
        true -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, timeout};
                false -> timer:sleep(Step), wait_loop(Fun, Deadline, Step)
            end
    end.

remember(Item) ->
    case ets:info(?TABLE) of
        undefined ->
            Owner = spawn(fun() -> receive stop -> ok end end),
            ets:new(?TABLE, [named_table, public, bag, {heir, Owner, none}]);
        _ -> ok
    end,
    ets:insert(?TABLE, {item, Item}).

%% Stops whatever the last test started: peers, then sandboxd instances still running:
%% SIGCONT and SIGTERM, and up to shutdown_budget_ms() to exit (a sanitizer build checks for
%% leaks on the way out), then SIGKILL. Raises {sandboxd_shutdown, Violations} if one did not
%% exit in time, exited with a status other than 0, or if any instance's log (running or not)
%% holds a sanitizer report; the runner counts that against the test. Instances the test itself
%% ended (SIGKILL, stop/1, a failed start) are not judged by their exit status.
cleanup() ->
    case ets:info(?TABLE) of
        undefined -> ok;
        _ ->
            Items = [I || {item, I} <- ets:lookup(?TABLE, item)],
            ets:delete_all_objects(?TABLE),
            [stop_peer(P) || {peer, P} <- Items],
            All = [S || {sandboxd, S} <- Items],
            Running = [S || S = #{os_pid := P} <- All, port_status(S) =:= running, os_alive(P)],
            [begin os_kill(P, "CONT"), os_kill(P, "TERM") end || #{os_pid := P} <- Running],
            Deadline = erlang:monotonic_time(millisecond) + ?SHUTDOWN_BUDGET_MS,
            Ends = [{S, await_exit(S, Deadline)} || S <- Running],
            [begin os_kill(P, "KILL"), await_exit(S, Deadline + 5000) end
             || {S = #{os_pid := P}, timeout} <- Ends],
            ExitVs = [exit_violation(S, case E of {exited, St} -> St; timeout -> timeout end)
                      || {S, E} <- Ends],
            Vs = [V || V <- ExitVs ++ [sanitizer_violation(S) || S <- All], V =/= ok],
            [K ! stop || #{keeper := K} <- All],
            case Vs of
                [] -> ok;
                _ -> error({sandboxd_shutdown, Vs})
            end
    end.

os_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% A zombie (state Z) has exited already.
            [_, Rest] = binary:split(Stat, <<") ">>),
            binary:first(Rest) =/= $Z;
        _ -> false
    end.
