%% Many sandboxes per node (issue 10): the open-file limit sandboxd raises for itself and
%% reports, the limit its workloads still see, and the journal's crash safety with group
%% commit: a sandbox answered {ok, _} is found again after a SIGKILL of sandboxd sent the
%% moment the answer arrived, 50 times in a row. The descriptor budget: an idle process
%% sandbox holds none of sandboxd's (a holder process keeps its FIFOs open), and no output
%% is lost, neither what a workload writes right before it exits nor what it writes while
%% sandboxd is down.
-module(sbx_scale_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).

tests() ->
    [{info_reports_open_files_and_workloads_keep_the_usual_limit, 60000, fun open_files/0},
     {sigkill_right_after_create_ok_50_times, 300000, fun kill_after_ok/0},
     {idle_sandboxes_hold_no_descriptor_of_sandboxd, 120000, fun idle_fds/0},
     {output_right_before_exit_is_delivered_20_times, 120000, fun last_words/0},
     {output_written_while_sandboxd_is_down_is_delivered, 60000, fun written_while_down/0}].

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 30000).

%% The soft open-file limit of an OS process, from /proc/<pid>/limits.
soft_nofile(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/limits"),
    {match, [Soft]} = re:run(B, "Max open files\\s+(\\d+)", [{capture, all_but_first, binary}]),
    binary_to_integer(Soft).

%% sandboxd started from a shell whose soft limit is lowered to 1024 (its hard limit is
%% this node's): it raises its own soft limit to the hard one, reports it in info(), and
%% its workloads get the 1024 back.
open_files() ->
    Hard = list_to_integer(string:trim(os:cmd("ulimit -Hn"))),
    SName = ?U:unique("sbxl"),
    Node = list_to_atom(SName ++ "@" ++ ?U:host()),
    Log = filename:join(?U:log_dir(), SName ++ ".log"),
    Args = ["--sname", SName, "--cookie", ?U:cookie(), "--state-dir", ?U:state_dir(SName),
            "--shutdown-policy", "destroy"],
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\" 2>>" ++ Log,
                              ?U:bin() | Args]}, exit_status]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    S = #{node => Node, os_pid => OsPid, port => Port},
    try
        ok = ?U:wait_until(fun() -> net_adm:ping(Node) =:= pong end, 10000),
        Own = soft_nofile(OsPid),
        io:format("      started with soft 1024, hard ~b; sandboxd's soft limit now ~b~n", [Hard, Own]),
        ?assert(Own >= Hard),
        #{open_files := #{limit := Limit, in_use := InUse, sandboxes_allowed := Allowed0}} = ?U:info(S),
        ?assertEqual(Own, Limit),
        ?assert(InUse > 0 andalso InUse < Limit),
        ?assert(Allowed0 > 1000),
        %% A workload, and a command run in it, see the limit sandboxd was started with.
        {ok, _} = call(S, create, [<<"lim">>, process,
                                   #{cmd => [<<"sh">>, <<"-c">>, <<"ulimit -Sn > lim.txt; exec sleep 600">>]}]),
        {ok, #{stdout := Out}} = call(S, exec, [<<"lim">>, <<"ulimit -Sn; cat lim.txt">>]),
        ?assertEqual([<<"1024">>, <<"1024">>], binary:split(string:trim(Out), <<"\n">>)),
        #{open_files := #{sandboxes_allowed := Allowed1}} = ?U:info(S),
        io:format("      info: limit ~b in_use ~b allowed ~b (one sandbox: ~b)~n",
                  [Limit, InUse, Allowed0, Allowed1]),
        ?assert(Allowed1 >= 1),
        ok = call(S, destroy, [<<"lim">>]),
        ?U:os_kill(OsPid, "TERM"),
        receive {Port, {exit_status, St}} -> ?assertEqual(0, St)
        after 15000 -> error(sandboxd_did_not_stop)
        end
    after
        ?U:os_kill(OsPid, "KILL")
    end,
    ok.

%% 50 rounds: start sandboxd on the same state dir, check every sandbox created so far
%% is there (running, same OS pid), create one more and SIGKILL sandboxd the moment its
%% {ok, _} arrives. A shell waiting on a pipe sends the kill, so no process has to be
%% started between the answer and the signal.
kill_after_ok() ->
    SName = ?U:unique("sbxk"),
    Dir = ?U:state_dir(SName),
    Ids = [list_to_binary("k" ++ integer_to_list(I)) || I <- lists:seq(1, 50)],
    Refs = lists:foldl(fun(Id, Acc) -> round_of(SName, Dir, Id, Acc) end, #{}, Ids),
    S = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    Listed = call(S, list, []),
    ?assertEqual(lists:sort(Ids), lists:sort([I || #{id := I} <- Listed])),
    ?assertEqual(Refs, maps:from_list([{I, R} || #{id := I, ref := R} <- Listed])),
    ?assertEqual([], [I || #{id := I, status := St} <- Listed, St =/= running]),
    [?assertEqual({Id, ok}, {Id, call(S, destroy, [Id])}) || Id <- Ids],
    ?assertEqual([], [R || R <- maps:values(Refs), alive(R)]),
    {ok, Left} = file:list_dir(filename:join(Dir, "sandboxes")),
    ?assertEqual([], Left),
    ok.

round_of(SName, Dir, Id, Refs) ->
    S = #{os_pid := OsPid, port := Port} = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    Listed = call(S, list, []),
    Found = maps:from_list([{I, R} || #{id := I, ref := R, status := running} <- Listed]),
    Missing = maps:without(maps:keys(Found), Refs),
    Other = [{I, St, R} || #{id := I, ref := R, status := St} <- Listed,
                           maps:get(I, Refs, none) =/= R orelse St =/= running],
    ?assertEqual({Id, #{}, []}, {Id, Missing, Other}),
    Killer = open_port({spawn, "sh -c 'read x; kill -KILL " ++ integer_to_list(OsPid) ++ "'"},
                       [binary]),
    {ok, #{ref := Ref}} = call(S, create, [Id, process, #{cmd => [<<"sleep">>, <<"600">>]}]),
    true = port_command(Killer, <<"\n">>),
    receive {Port, {exit_status, _}} -> ok after 10000 -> error({sandboxd_not_killed, Id}) end,
    catch port_close(Killer),
    Refs#{Id => Ref}.

%% 40 idle sandboxes cost sandboxd no descriptor: its open descriptors stay within a
%% couple (a connection, a journal file) of what they were with one sandbox (which made the
%% shared inotify descriptor and the holder's socket); at one each they would grow by 40.
%% The holder, a child of sandboxd, keeps two per sandbox, and info() says so.
idle_fds() ->
    N = 40,
    S = #{os_pid := OsPid} = ?U:start_isolated(),
    Sleep = #{cmd => [<<"sleep">>, <<"600">>]},
    try
        {ok, _} = call(S, create, [<<"warm">>, process, Sleep]),
        Before = fd_targets(OsPid),
        [{ok, #{status := running}} = call(S, create, [idle_id(I), process, Sleep])
         || I <- lists:seq(1, N)],
        %% A descriptor of a create may close a moment after its answer.
        _ = ?U:wait_until(fun() -> length(fd_targets(OsPid)) =< length(Before) end, 5000),
        After = fd_targets(OsPid),
        [Holder] = [P || P <- children(OsPid), comm(P) =:= <<"sbx-fdhold">>],
        Held = length(fd_targets(Holder)),
        #{open_files := #{in_use := InUse, holders_in_use := HInUse}} = ?U:info(S),
        io:format("      sandboxd fds ~b with 1 sandbox, ~b with ~b (new: ~p); holder ~b "
                  "holds ~b; info in_use ~b holders_in_use ~b~n",
                  [length(Before), length(After), N + 1, After -- Before, Holder, Held,
                   InUse, HInUse]),
        ?assert(length(After) - length(Before) =< 2),
        ?assert(Held >= 2 * (N + 1)),
        ?assertEqual(2 * (N + 1) + 1, HInUse),
        [ok = call(S, destroy, [Id]) || #{id := Id} <- call(S, list, [])],
        %% The holder holds nothing any more and ends.
        ok = ?U:wait_until(fun() -> not alive(Holder) end, 10000)
    after
        [call(S, destroy, [Id]) || #{id := Id} <- call(S, list, [])]
    end,
    ok.

%% A workload writes 100 KiB (more than a FIFO's 64 KiB buffer) and exits at once, 20
%% times: every byte arrives in its logs. The tail is still in the FIFO when the workload
%% is gone; only the holder's descriptor keeps it.
last_words() ->
    S = ?U:start_isolated(),
    Lines = 1024,
    Cmd = [<<"sh">>, <<"-c">>, iolist_to_binary(["seq -f '%099g' 1 ", integer_to_list(Lines)])],
    Ids = [list_to_binary("w" ++ integer_to_list(I)) || I <- lists:seq(1, 20)],
    try
        [{ok, _} = call(S, create, [Id, process, #{cmd => Cmd}]) || Id <- Ids],
        [ok = ?U:wait_until(fun() -> status(S, Id) =:= exited end, 30000) || Id <- Ids],
        Got = [{Id, logged_lines(S, Id, Lines)} || Id <- Ids],
        Expected = [iolist_to_binary(io_lib:format("~99..0b", [I])) || I <- lists:seq(1, Lines)],
        ?assertEqual([], [{Id, length(L)} || {Id, L} <- Got, L =/= Expected])
    after
        [call(S, destroy, [Id]) || Id <- Ids]
    end,
    ok.

%% SIGKILL sandboxd, let a workload write 500 lines (50 KiB, within the FIFO's buffer),
%% start sandboxd again: it adopts the sandbox and delivers all 500.
written_while_down() ->
    SName = ?U:unique("sbxw"),
    Dir = ?U:state_dir(SName),
    Go = filename:join("/tmp", SName ++ ".go"),
    Wrote = filename:join("/tmp", SName ++ ".wrote"),
    Script = iolist_to_binary(["while [ ! -e ", Go, " ]; do sleep 0.05; done; "
                               "seq -f '%099g' 1 500; : > ", Wrote, "; exec sleep 600"]),
    S = #{os_pid := OsPid, port := Port} = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
    try
        {ok, #{status := running}} = call(S, create, [<<"down">>, process,
                                                      #{cmd => [<<"sh">>, <<"-c">>, Script]}]),
        ?U:os_kill(OsPid, "KILL"),
        receive {Port, {exit_status, _}} -> ok after 10000 -> error(sandboxd_not_killed) end,
        ok = file:write_file(Go, <<>>),
        ok = ?U:wait_until(fun() -> filelib:is_file(Wrote) end, 20000),
        S2 = ?U:start_isolated(#{sname => SName, state_dir => Dir}),
        ?assertEqual(running, status(S2, <<"down">>)),
        Expected = [iolist_to_binary(io_lib:format("~99..0b", [I])) || I <- lists:seq(1, 500)],
        ok = ?U:wait_until(fun() -> logged_lines(S2, <<"down">>, 500) =:= Expected end, 20000),
        ok = call(S2, destroy, [<<"down">>])
    after
        file:delete(Go),
        file:delete(Wrote)
    end,
    ok.

status(S, Id) ->
    case call(S, get, [Id]) of
        {ok, #{status := St}} -> St;
        Other -> Other
    end.

logged_lines(S, Id, N) ->
    {ok, L} = call(S, logs, [Id, #{tail => N + 10}]),
    [D || #{stream := stdout, data := D} <- L].

idle_id(I) -> list_to_binary("idle" ++ integer_to_list(I)).

%% What the descriptors of an OS process point at (a descriptor closed meanwhile is left out).
fd_targets(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/fd/",
    {ok, Fds} = file:list_dir(Dir),
    lists:sort([T || F <- Fds, {ok, T} <- [file:read_link(Dir ++ F)]]).

children(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/task/" ++
                                 integer_to_list(OsPid) ++ "/children"),
    [binary_to_integer(P) || P <- binary:split(B, <<" ">>, [global, trim_all])].

comm(P) ->
    case file:read_file("/proc/" ++ integer_to_list(P) ++ "/comm") of
        {ok, B} -> string:trim(B);
        _ -> <<>>
    end.

%% Running (a zombie, reaped later by whoever adopted it, has ended already).
alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, Rest] = binary:split(Stat, <<") ">>),
            binary:first(Rest) =/= $Z;
        _ -> false
    end.
