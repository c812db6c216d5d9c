%% Many sandboxes per node (issue 10): the open-file limit sandboxd raises for itself and
%% reports, the limit its workloads still see, and the journal's crash safety with group
%% commit: a sandbox answered {ok, _} is found again after a SIGKILL of sandboxd sent the
%% moment the answer arrived, 50 times in a row.
-module(sbx_scale_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).

tests() ->
    [{info_reports_open_files_and_workloads_keep_the_usual_limit, 60000, fun open_files/0},
     {sigkill_right_after_create_ok_50_times, 300000, fun kill_after_ok/0}].

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

%% Running (a zombie, reaped later by whoever adopted it, has ended already).
alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, Rest] = binary:split(Stat, <<") ">>),
            binary:first(Rest) =/= $Z;
        _ -> false
    end.
