%% Unprivileged workloads (issue 14, "It must show" item 2, and finding 8): with sandboxd
%% running as root, a default process sandbox runs under a uid of its own from sandboxd's
%% range, without capabilities and with no_new_privs, and from INSIDE it (through exec, and
%% through what the workload itself writes to its workspace) sandboxd's cookie, environment,
%% journal, logs and other sandboxes' workspaces cannot be read, no cgroup.procs anywhere
%% can be written, and neither sandboxd nor another sandbox's process can be killed. A
%% workload that tries to escape (writes into every cgroup.procs, setsid, double fork) is
%% fully gone after destroy: no process of its uid, no cgroup, no folder. Its workspace is
%% its own, also with `user => nobody`. beam_node sandboxes run erl under a dynamic uid too,
%% and a restarted sandboxd keeps each sandbox's uid.
%%
%% Every test skips with {skip, not_root} when the test run is not root (then sandboxd
%% cannot switch uids at all: info() says `user => shared`).
-module(sbx_unpriv_tests).

-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([tests/0]).

-define(U, sbx_test_util).

tests() ->
    [{default_sandbox_runs_as_own_uid_without_caps, 60000, root(fun own_uid/0)},
     {workload_cannot_reach_sandboxd_or_neighbours, 90000, root(fun cannot_reach/0)},
     {escape_attempt_leaves_nothing_after_destroy, 90000, root(fun escape/0)},
     {workspace_writable_dynamic_and_nobody, 60000, root(fun workspace/0)},
     {copy_refuses_hard_link_to_foreign_file, 60000, root(fun hard_link/0)},
     {explicit_root_user_is_root_with_no_new_privs, 60000, root(fun explicit_root/0)},
     {namespaces_under_dynamic_uid, 60000, root(fun namespaces/0)},
     {beam_node_runs_as_dynamic_uid, 90000, root(fun beam_node/0)},
     {restart_keeps_uids, 90000, root(fun restart_keeps/0)},
     {uid_range_exhausted_and_reused, 60000, root(fun exhausted/0)},
     {two_instances_never_share_a_uid, 60000, root(fun two_instances/0)},
     {sandboxd_not_root_says_shared, 60000, root(fun not_root/0)}].

%% Wraps a test: {skip, not_root} unless this test run is root.
root(F) ->
    fun() ->
            case string:trim(os:cmd("id -u")) of
                "0" -> F();
                _ -> {skip, not_root}
            end
    end.

%%% ---------------------------------------------------------------------------------
%%% Helpers

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

marker(Int) ->
    integer_to_list(Int) ++ "." ++ integer_to_list(erlang:unique_integer([positive]) rem 100000)
        ++ integer_to_list(list_to_integer(os:getpid()) rem 1000).

create(S, Id, Config) ->
    {ok, #{status := running} = Sb} = call(S, create, [Id, process, Config]),
    Sb.

%% Runs a shell line in the sandbox: {ExitCode, Stdout, Stderr}.
sh(S, Id, Line) ->
    {ok, #{exit_code := C, stdout := O, stderr := E}} =
        call(S, exec, [Id, [<<"/bin/sh">>, <<"-c">>, iolist_to_binary(Line)]]),
    {C, O, E}.

%% The fields of /proc/<Pid|self>/status as a map of binary => binary.
status_of(Text) ->
    maps:from_list([{K, string:trim(V)} || L <- binary:split(Text, <<"\n">>, [global]),
                                          [K, V] <- [binary:split(L, <<":">>)]]).
proc_status(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    status_of(B).
real_uid(StatusMap) ->
    [R | _] = binary:split(maps:get(<<"Uid">>, StatusMap), <<"\t">>, [global]),
    binary_to_integer(R).

workspace(#{state_dir := D}, Id) -> filename:join([D, "sandboxes", Id, "workspace"]).

%% OS pids of live processes (zombies are dead: they hold nothing, and their parent, not
%% always sandboxd, reaps them) whose real, effective, saved or fs uid is Uid.
pids_of_uid(Uid) ->
    {ok, Names} = file:list_dir("/proc"),
    [P || N <- Names, lists:all(fun(C) -> C >= $0 andalso C =< $9 end, N),
          P <- [list_to_integer(N)],
          case file:read_file("/proc/" ++ N ++ "/status") of
              {ok, B} ->
                  St = status_of(B),
                  Ids = binary:split(maps:get(<<"Uid">>, St, <<>>), <<"\t">>, [global]),
                  lists:member(integer_to_binary(Uid), Ids) andalso
                      binary:first(maps:get(<<"State">>, St, <<"R">>)) =/= $Z;
              _ -> false
          end].

alive(OsPid) -> filelib:is_dir("/proc/" ++ integer_to_list(OsPid)).

%%% ---------------------------------------------------------------------------------
%%% Tests

%% id -u is neither 0 nor sandboxd's uid, two sandboxes differ, the map says which uid;
%% CapEff, CapPrm, CapBnd, CapInh, CapAmb are 0 and NoNewPrivs is 1, both in an exec and
%% in the workload itself (which writes its view to its workspace).
own_uid() ->
    S = ?U:start_isolated(),
    Mine = real_uid(proc_status(maps:get(os_pid, S))),
    Info = ?U:info(S),
    ?assertMatch(#{isolation := #{user := dynamic, capabilities := dropped,
                                  no_new_privs := true, separate := true,
                                  uid_range := {61184, 65519}}}, Info),
    M = marker(1000),
    Cmd = <<"id -u > me.txt; grep -E '^(Cap|NoNewPrivs)' /proc/self/status > status.txt; "
            "exec sleep ", (list_to_binary(M))/binary>>,
    SbA = create(S, <<"a">>, #{cmd => Cmd}),
    SbB = create(S, <<"b">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    #{user := #{kind := dynamic, uid := UidA, gid := GidA}} = SbA,
    #{user := #{kind := dynamic, uid := UidB}} = SbB,
    {0, IdOut, _} = sh(S, <<"a">>, <<"id -u; id -g; id -G">>),
    [U1, G1, Gs] = [binary_to_integer(X) || X <- string:lexemes(IdOut, "\n")],
    report("sandboxd uid ~b; sandbox a uid ~b gid ~b (groups ~b), sandbox b uid ~b",
           [Mine, U1, G1, Gs, UidB]),
    ?assertEqual({UidA, GidA, GidA}, {U1, G1, Gs}),
    ?assertNotEqual(0, U1),
    ?assertNotEqual(Mine, U1),
    ?assertNotEqual(UidA, UidB),
    ?assert(UidA >= 61184 andalso UidA =< 65519),
    {0, St, _} = sh(S, <<"a">>, <<"cat /proc/self/status">>),
    Exec = status_of(St),
    ok = ?U:wait_until(fun() -> case call(S, copy_from, [<<"a">>, <<"status.txt">>]) of
                                    {ok, B} -> byte_size(B) > 0;
                                    _ -> false
                                end
                       end, 10000),
    {ok, WlSt} = call(S, copy_from, [<<"a">>, <<"status.txt">>]),
    {ok, WlMe} = call(S, copy_from, [<<"a">>, <<"me.txt">>]),
    Workload = status_of(WlSt),
    ?assertEqual(integer_to_binary(UidA), string:trim(WlMe)),
    lists:foreach(
      fun(View) ->
              [?assertEqual({K, <<"0000000000000000">>}, {K, maps:get(K, View)})
               || K <- [<<"CapEff">>, <<"CapPrm">>, <<"CapBnd">>, <<"CapInh">>, <<"CapAmb">>]],
              ?assertEqual(<<"1">>, maps:get(<<"NoNewPrivs">>, View))
      end, [Exec, Workload]),
    report("exec and workload: CapEff ~s CapBnd ~s NoNewPrivs ~s",
           [maps:get(<<"CapEff">>, Workload), maps:get(<<"CapBnd">>, Workload),
            maps:get(<<"NoNewPrivs">>, Workload)]),
    %% The main process itself, seen from the host.
    #{ref := Pid} = SbA,
    Host = proc_status(Pid),
    ?assertEqual(UidA, real_uid(Host)),
    ?assertEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, Host)),
    %% shell/1 answers a shell that runs as the same uid, without capabilities.
    {ok, #{kind := exec, argv := Argv}} = call(S, shell, [<<"a">>]),
    ShellOut = os:cmd("echo 'id -u; grep CapEff /proc/self/status' | "
                      ++ lists:flatten([[$', binary_to_list(A), "' "] || A <- Argv]) ++ " 2>/dev/null"),
    report("shell argv: ~s~n      shell says: ~p", [lists:join(" ", Argv), ShellOut]),
    ?assertMatch([_, _], string:lexemes(ShellOut, "\n")),
    [ShellUid, ShellCap] = string:lexemes(ShellOut, "\n"),
    ?assertEqual(integer_to_list(UidA), ShellUid),
    ?assertEqual("CapEff:\t0000000000000000", ShellCap),
    ok = call(S, destroy, [<<"a">>]),
    ok = call(S, destroy, [<<"b">>]),
    ok.

%% From inside a sandbox: sandboxd's cookie file, /proc/<sandboxd>/environ, another
%% sandbox's workspace, the journal and logs cannot be read; no cgroup.procs (nor tasks)
%% can be written; kill of sandboxd and of another sandbox's process fails.
cannot_reach() ->
    %% sandboxd reads its cookie from ~/.erlang.cookie (0400) of a HOME of its own.
    Home = ?U:state_dir("home"),
    CookieFile = filename:join(Home, ".erlang.cookie"),
    ok = file:write_file(CookieFile, ?U:cookie()),
    ok = file:change_mode(CookieFile, 8#400),
    S = ?U:start_isolated(#{cookie => false,
                            env => [{"HOME", Home}, {"SANDBOXD_SECRET_MARK", "sekrit42"}]}),
    SbdPid = maps:get(os_pid, S),
    M = marker(1000),
    create(S, <<"a">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    SbB = create(S, <<"b">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    #{ref := PidB} = SbB,
    ok = call(S, copy_to, [<<"b">>, <<"secret.txt">>, <<"b's secret">>]),
    WsB = workspace(S, "b"),
    D = maps:get(state_dir, S),
    Reads = [{cookie, CookieFile},
             {environ, "/proc/" ++ integer_to_list(SbdPid) ++ "/environ"},
             {other_workspace_file, filename:join(WsB, "secret.txt")},
             {own_record, filename:join([D, "sandboxes", "a", "record"])},
             {other_record, filename:join([D, "sandboxes", "b", "record"])},
             {own_log, filename:join([D, "sandboxes", "a", "log"])},
             {own_stdout_fifo, filename:join([D, "sandboxes", "a", "stdout.fifo"])}],
    lists:foreach(
      fun({What, Path}) ->
              {C, O, E} = sh(S, <<"a">>, ["exec cat '", Path, "' </dev/null"]),
              report("read ~p: exit ~b, ~s", [What, C, string:trim(E)]),
              ?assertNotEqual({What, 0}, {What, C}),
              ?assertEqual({What, <<>>}, {What, O})
      end, Reads),
    %% The host side: the cookie really is there and readable by root.
    {ok, _} = file:read_file(CookieFile),
    Lists = [{state_dir, D}, {sandboxes, filename:join(D, "sandboxes")}, {other_workspace, WsB}],
    lists:foreach(
      fun({What, Path}) ->
              {C, O, _} = sh(S, <<"a">>, ["ls -a '", Path, "'"]),
              ?assertNotEqual({What, 0}, {What, C}),
              ?assertEqual({What, <<>>}, {What, O})
      end, Lists),
    {_, Env, _} = sh(S, <<"a">>, <<"cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c sekrit42">>),
    ?assertEqual(<<"0">>, string:trim(Env)),
    %% Every cgroup.procs and tasks file on the host: none can be written.
    {0, CgOut, _} = sh(S, <<"a">>,
                        <<"n=0; ok=0; for f in $(find /sys/fs/cgroup -name cgroup.procs -o -name tasks 2>/dev/null); do "
                          "n=$((n+1)); if (echo $$ > \"$f\") 2>/dev/null; then ok=$((ok+1)); echo \"WROTE $f\"; fi; "
                          "done; echo tried=$n wrote=$ok; "
                          "echo own=$(find /sys/fs/cgroup -path '*/sandboxd/*/a/cgroup.procs' | wc -l)">>),
    report("cgroup files: ~s", [lists:join(" ", string:lexemes(CgOut, "\n"))]),
    [Tried] = [binary_to_integer(T) || L <- string:lexemes(CgOut, "\n"),
                                        {match, [T]} <- [re:run(L, "tried=(\\d+)", [{capture, all_but_first, binary}])]],
    ?assert(Tried > 10),
    %% Its own cgroup's files were among those tried (v1: one per controller).
    {match, [Own]} = re:run(CgOut, "own=(\\d+)", [{capture, all_but_first, binary}]),
    ?assert(binary_to_integer(Own) >= 1),
    ?assertEqual(nomatch, binary:match(CgOut, <<"WROTE">>)),
    ?assertNotEqual(nomatch, binary:match(CgOut, <<"wrote=0">>)),
    %% kill: of sandboxd, and of sandbox b's process.
    lists:foreach(
      fun({What, P}) ->
              {C, _, E} = sh(S, <<"a">>, ["kill -KILL ", integer_to_list(P)]),
              report("kill ~p (~b): exit ~b, ~s", [What, P, C, string:trim(E)]),
              ?assertNotEqual({What, 0}, {What, C})
      end, [{sandboxd, SbdPid}, {other_sandbox, PidB}]),
    timer:sleep(300),
    ?assert(alive(SbdPid)),
    ?assert(alive(PidB)),
    pong = call(S, ping, []),
    {ok, #{status := running}} = call(S, get, [<<"b">>]),
    ok = call(S, destroy, [<<"a">>]),
    ok = call(S, destroy, [<<"b">>]),
    ok.

%% A workload writes its pid into every cgroup.procs it finds, setsids away and double
%% forks: after destroy nothing of its cgroup is left, nor its cgroup, nor its folder; a
%% process of its uid started outside its cgroup is swept by uid right after destroy's ok
%% (and before the uid goes back to the pool).
escape() ->
    S = ?U:start_isolated(),
    M = marker(1000),
    Script = ["for f in $(find /sys/fs/cgroup -name cgroup.procs 2>/dev/null); do echo $$ > \"$f\"; done 2>/dev/null; "
              "setsid sh -c '(setsid sleep ", M, " &); sleep ", M, "' & "
              "(sleep ", M, " &) ; exec sleep ", M],
    Sb = create(S, <<"esc">>, #{cmd => iolist_to_binary(Script)}),
    #{user := #{uid := Uid}} = Sb,
    ok = ?U:wait_until(fun() -> length(?U:os_pids_matching("sleep " ++ M)) >= 4 end, 10000),
    %% One more process of its uid outside its cgroup and session (what an escape on a host
    %% without cgroups would leave), started from here: destroy must find it by its uid.
    Outside = marker(1001),
    U = integer_to_list(Uid),
    Port = open_port({spawn_executable, os:find_executable("setpriv")},
                     [{args, ["--reuid=" ++ U, "--regid=" ++ U, "--clear-groups", "sleep", Outside]},
                      exit_status]),
    ok = ?U:wait_until(fun() -> ?U:os_pids_matching("sleep " ++ Outside) =/= [] end, 10000),
    Before = pids_of_uid(Uid),
    report("escapee uid ~b: ~b processes before destroy", [Uid, length(Before)]),
    Node = atom_to_list(maps:get(node, S)),
    CgGlob = "/sys/fs/cgroup/*/sandboxd/" ++ Node ++ "/esc",
    ?assertNotEqual([], filelib:wildcard(CgGlob)),
    Folder = filename:join([maps:get(state_dir, S), "sandboxes", "esc"]),
    ?assert(filelib:is_dir(Folder)),
    T0 = erlang:monotonic_time(millisecond),
    ok = call(S, destroy, [<<"esc">>]),
    report("destroy took ~b ms", [erlang:monotonic_time(millisecond) - T0]),
    ?assertEqual([], ?U:os_pids_matching("sleep " ++ M)),
    receive {Port, {exit_status, Killed}} ->
            report("outside process: exit status ~b, ~b ms after destroy was called",
                   [Killed, erlang:monotonic_time(millisecond) - T0])
    after 10000 -> error(outside_process_not_ended)
    end,
    ok = ?U:wait_until(fun() -> pids_of_uid(Uid) == [] end, 10000),
    ?assertEqual([], ?U:os_pids_matching("sleep " ++ Outside)),
    ?assertEqual([], filelib:wildcard(CgGlob)),
    ?assertNot(filelib:is_dir(Folder)),
    ok.

%% The workspace belongs to the workload: it writes there (relative, via $HOME, a
%% subfolder, and a file copied in by copy_to), with a dynamic uid and with user nobody.
workspace() ->
    S = ?U:start_isolated(),
    M = marker(1000),
    Cmd = <<"echo hi > out.txt && mkdir -p d && echo x > d/y && echo home > \"$HOME/viahome\" && "
            "exec sleep ", (list_to_binary(M))/binary>>,
    lists:foreach(
      fun({Id, Extra, Kind}) ->
              Sb = create(S, Id, maps:merge(#{cmd => Cmd}, Extra)),
              #{user := #{kind := Kind, uid := Uid}} = Sb,
              ok = ?U:wait_until(fun() -> call(S, copy_from, [Id, <<"viahome">>]) =:= {ok, <<"home\n">>} end,
                                 10000),
              {ok, <<"hi\n">>} = call(S, copy_from, [Id, <<"out.txt">>]),
              {ok, <<"x\n">>} = call(S, copy_from, [Id, <<"d/y">>]),
              ok = call(S, copy_to, [Id, <<"in/from_api.txt">>, <<"api">>]),
              {0, _, _} = sh(S, Id, <<"echo more >> in/from_api.txt && touch in/new">>),
              {ok, <<"api", "more\n">>} = call(S, copy_from, [Id, <<"in/from_api.txt">>]),
              {ok, #file_info{uid = Owner, mode = Mode}} =
                  file:read_file_info(workspace(S, binary_to_list(Id))),
              report("~s: workspace owner ~b mode ~.8b (workload uid ~b)", [Id, Owner, Mode band 8#7777, Uid]),
              ?assertEqual(Uid, Owner),
              ?assertEqual(8#700, Mode band 8#777),
              ok = call(S, destroy, [Id])
      end, [{<<"dyn">>, #{}, dynamic}, {<<"nob">>, #{user => <<"nobody">>}, named}]),
    ok.

%% copy_to / copy_from run as root in a folder the workload controls: a hard link there
%% to a file the workload does not own (which fs.protected_hardlinks = 0 would let it make;
%% made here by the test itself) is neither read nor written through.
hard_link() ->
    S = ?U:start_isolated(),
    create(S, <<"hl">>, #{cmd => [<<"sleep">>, list_to_binary(marker(1000))]}),
    Secret = filename:join(maps:get(state_dir, S), "root-only"),
    ok = file:write_file(Secret, <<"root's secret">>),
    ok = file:change_mode(Secret, 8#600),
    Link = filename:join(workspace(S, "hl"), "link"),
    ok = file:make_link(Secret, Link),
    R1 = call(S, copy_from, [<<"hl">>, <<"link">>]),
    R2 = call(S, copy_to, [<<"hl">>, <<"link">>, <<"overwritten">>]),
    report("copy_from of the link: ~p; copy_to: ~p", [R1, R2]),
    ?assertEqual({error, {badarg, path, eacces}}, R1),
    ?assertEqual({error, {badarg, path, eacces}}, R2),
    ?assertEqual({ok, <<"root's secret">>}, file:read_file(Secret)),
    {ok, #file_info{uid = 0}} = file:read_file_info(Secret),
    %% Its own files with several names are fine.
    {0, _, _} = sh(S, <<"hl">>, <<"echo mine > a && ln a b">>),
    {ok, <<"mine\n">>} = call(S, copy_from, [<<"hl">>, <<"b">>]),
    ok = call(S, copy_to, [<<"hl">>, <<"b">>, <<"again">>]),
    {ok, <<"again">>} = call(S, copy_from, [<<"hl">>, <<"a">>]),
    ok = call(S, destroy, [<<"hl">>]),
    ok.

%% user => root is the caller's explicit choice: uid 0 with its capabilities, and still
%% no_new_privs.
explicit_root() ->
    S = ?U:start_isolated(),
    Sb = create(S, <<"r">>, #{cmd => [<<"sleep">>, list_to_binary(marker(1000))], user => <<"root">>}),
    ?assertMatch(#{user := #{kind := named, uid := 0}}, Sb),
    {0, Out, _} = sh(S, <<"r">>, <<"id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status">>),
    St = status_of(Out),
    ?assertEqual(<<"0">>, hd(string:lexemes(Out, "\n"))),
    ?assertNotEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, St)),
    ?assertEqual(<<"1">>, maps:get(<<"NoNewPrivs">>, St)),
    ok = call(S, destroy, [<<"r">>]),
    ok.

%% isolation => namespaces keeps working under the dynamic uid: the workload, an exec
%% entering its namespaces and the reaper outside them all run as that uid without
%% capabilities; destroy leaves no process of the uid.
namespaces() ->
    S = ?U:start_isolated(),
    M = marker(1000),
    Sb = create(S, <<"ns">>, #{cmd => [<<"sleep">>, list_to_binary(M)], isolation => namespaces}),
    #{user := #{kind := dynamic, uid := Uid}, ref := Reaper} = Sb,
    {0, Out, _} = sh(S, <<"ns">>, <<"id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ps -o pid= -o comm=">>),
    [IdU | Rest] = string:lexemes(Out, "\n"),
    St = status_of(iolist_to_binary(lists:join("\n", Rest))),
    report("inside the namespaces: uid ~s, CapEff ~s, NoNewPrivs ~s; processes ~p",
           [IdU, maps:get(<<"CapEff">>, St), maps:get(<<"NoNewPrivs">>, St),
            [L || L <- Rest, binary:match(L, <<":">>) =:= nomatch]]),
    ?assertEqual(integer_to_binary(Uid), IdU),
    ?assertEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, St)),
    ?assertEqual(<<"1">>, maps:get(<<"NoNewPrivs">>, St)),
    Host = proc_status(Reaper),
    ?assertEqual(Uid, real_uid(Host)),
    ?assertEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, Host)),
    ok = call(S, destroy, [<<"ns">>]),
    ?assertEqual([], pids_of_uid(Uid)),
    ok.

%% erl of a beam_node sandbox runs under a dynamic uid without capabilities; remote_call
%% still works.
beam_node() ->
    S = ?U:start_isolated(),
    Name = "unpriv_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid(),
    {ok, Sb} = call(S, create, [<<"bn">>, beam_node, #{name => list_to_binary(Name)}]),
    #{user := #{kind := dynamic, uid := Uid}} = Sb,
    OsPid = list_to_integer(call(S, remote_call, [<<"bn">>, os, getpid, []])),
    St = proc_status(OsPid),
    report("beam_node erl os pid ~b: uid ~s, CapEff ~s", [OsPid, maps:get(<<"Uid">>, St),
                                                         maps:get(<<"CapEff">>, St)]),
    ?assertEqual(Uid, real_uid(St)),
    ?assertNotEqual(0, Uid),
    ?assertEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, St)),
    ?assertEqual(3, call(S, remote_call, [<<"bn">>, erlang, '+', [1, 2]])),
    ok = call(S, destroy, [<<"bn">>]),
    ?assertEqual([], pids_of_uid(Uid)),
    ok.

%% A restarted sandboxd (after SIGKILL) keeps each adopted sandbox's uid and hands new
%% sandboxes other uids.
restart_keeps() ->
    S1 = ?U:start_isolated(#{policy => "keep"}),
    M = marker(1000),
    #{user := #{uid := U1}} = create(S1, <<"k1">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    #{user := #{uid := U2}} = create(S1, <<"k2">>, #{cmd => [<<"sleep">>, list_to_binary(M)]}),
    ?U:os_kill(maps:get(os_pid, S1), "KILL"),
    ok = ?U:wait_until(fun() -> not alive(maps:get(os_pid, S1)) end, 10000),
    S2 = ?U:start_isolated(#{state_dir => maps:get(state_dir, S1), sname => maps:get(sname, S1)}),
    {ok, #{status := running, user := #{uid := U1}}} = call(S2, get, [<<"k1">>]),
    {ok, #{status := running, user := #{uid := U2}}} = call(S2, get, [<<"k2">>]),
    Fresh = [maps:get(uid, maps:get(user, create(S2, list_to_binary("n" ++ integer_to_list(I)),
                                                   #{cmd => [<<"sleep">>, list_to_binary(M)]})))
             || I <- lists:seq(1, 3)],
    report("adopted uids ~b, ~b kept; new ones ~w", [U1, U2, Fresh]),
    ?assertEqual(5, length(lists:usort([U1, U2 | Fresh]))),
    {0, Out, _} = sh(S2, <<"k1">>, <<"id -u">>),
    ?assertEqual(integer_to_binary(U1), string:trim(Out)),
    [ok = call(S2, destroy, [Id]) || Id <- [<<"k1">>, <<"k2">>, <<"n1">>, <<"n2">>, <<"n3">>]],
    ?assertEqual([], ?U:os_pids_matching("sleep " ++ M)),
    ok.

%% sandboxd run as a user that is not root (here nobody, through setpriv): nothing of the
%% above is possible, and info() and the sandbox map say so; workloads still get an empty
%% capability set and no_new_privs.
not_root() ->
    Dir = ?U:state_dir("nobody"),
    State = filename:join(Dir, "state"),
    ok = file:make_dir(State),
    "" = os:cmd("chown 65534:65534 '" ++ State ++ "' && chmod 0700 '" ++ State ++ "'"),
    Wrapper = filename:join(Dir, "as_nobody.sh"),
    ok = file:write_file(Wrapper, ["#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "
                                   "--inh-caps=-all --bounding-set=-all '", ?U:bin(), "' \"$@\"\n"]),
    ok = file:change_mode(Wrapper, 8#755),
    Old = os:getenv("SANDBOXD_BIN"),
    os:putenv("SANDBOXD_BIN", Wrapper),
    S = try ?U:start_isolated(#{state_dir => State})
        after
            case Old of
                false -> os:unsetenv("SANDBOXD_BIN");
                _ -> os:putenv("SANDBOXD_BIN", Old)
            end
        end,
    ?assertEqual(65534, real_uid(proc_status(maps:get(os_pid, S)))),
    #{isolation := Iso} = ?U:info(S),
    report("info() isolation when not root: ~p", [Iso]),
    ?assertMatch(#{user := shared, separate := false, uid_range := none,
                   capabilities := dropped, no_new_privs := true}, Iso),
    Sb = create(S, <<"sh">>, #{cmd => [<<"sleep">>, list_to_binary(marker(1000))]}),
    ?assertMatch(#{user := #{kind := shared, uid := 65534, gid := 65534}}, Sb),
    {0, Out, _} = sh(S, <<"sh">>, <<"id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status">>),
    [IdU | Rest] = string:lexemes(Out, "\n"),
    St = status_of(iolist_to_binary(lists:join("\n", Rest))),
    ?assertEqual(<<"65534">>, IdU),
    ?assertEqual(<<"0000000000000000">>, maps:get(<<"CapEff">>, St)),
    ?assertEqual(<<"1">>, maps:get(<<"NoNewPrivs">>, St)),
    ok = call(S, destroy, [<<"sh">>]),
    ok.

%% Two sandboxd instances of one host on the same two-id range: each id goes to one
%% sandbox of one instance (the claims in /run/sandboxd/uids), a third create in either
%% fails, and a destroy in one instance frees the id for the other without touching the
%% other's workloads.
two_instances() ->
    Range = ["--uid-range", "64010-64011"],
    A = ?U:start_isolated(#{args => Range}),
    B = ?U:start_isolated(#{args => Range}),
    M = list_to_binary(marker(1000)),
    #{user := #{uid := UA}} = create(A, <<"a1">>, #{cmd => [<<"sleep">>, M]}),
    #{user := #{uid := UB}, ref := RefB} = create(B, <<"b1">>, #{cmd => [<<"sleep">>, M]}),
    ?assertEqual([64010, 64011], lists:sort([UA, UB])),
    {ok, Claim} = file:read_file("/run/sandboxd/uids/" ++ integer_to_list(UB)),
    ?assertEqual(iolist_to_binary([atom_to_list(maps:get(node, B)), "\n"]), Claim),
    Full = {error, {limit_reached, uids}},
    ?assertEqual(Full, call(A, create, [<<"a2">>, process, #{cmd => [<<"sleep">>, M]}])),
    ?assertEqual(Full, call(B, create, [<<"b2">>, process, #{cmd => [<<"sleep">>, M]}])),
    ok = call(A, destroy, [<<"a1">>]),
    %% The claim goes once the uid is swept (after destroy's ok).
    ok = ?U:wait_until(fun() -> not filelib:is_file("/run/sandboxd/uids/" ++ integer_to_list(UA)) end,
                       10000),
    #{user := #{uid := UB2}} = create(B, <<"b2">>, #{cmd => [<<"sleep">>, M]}),
    ?assertEqual(UA, UB2),
    %% A's destroy left B's workload alone.
    ?assertMatch({ok, #{status := running, ref := RefB}}, call(B, get, [<<"b1">>])),
    [ok = call(B, destroy, [Id]) || Id <- [<<"b1">>, <<"b2">>]],
    ok = ?U:wait_until(fun() ->
                               [] == [U || U <- [UA, UB],
                                           filelib:is_file("/run/sandboxd/uids/" ++ integer_to_list(U))]
                       end, 10000),
    ok.

%% --uid-range bounds the live sandboxes that get a uid: with two ids, a third create fails
%% (and leaves nothing); after a destroy the id is handed out again once swept (the sweep
%% runs after destroy's ok: until then creates answer limit_reached).
exhausted() ->
    S = ?U:start_isolated(#{args => ["--uid-range", "64000-64001"]}),
    ?assertMatch(#{isolation := #{uid_range := {64000, 64001}}}, ?U:info(S)),
    M = list_to_binary(marker(1000)),
    #{user := #{uid := A}} = create(S, <<"x1">>, #{cmd => [<<"sleep">>, M]}),
    #{user := #{uid := B}} = create(S, <<"x2">>, #{cmd => [<<"sleep">>, M]}),
    ?assertEqual([64000, 64001], lists:sort([A, B])),
    R = call(S, create, [<<"x3">>, process, #{cmd => [<<"sleep">>, M]}]),
    report("third create with two uids: ~p", [R]),
    ?assertEqual({error, {limit_reached, uids}}, R),
    ?assertEqual({error, not_found}, call(S, get, [<<"x3">>])),
    ?assertNot(filelib:is_dir(filename:join([maps:get(state_dir, S), "sandboxes", "x3"]))),
    ok = call(S, destroy, [<<"x1">>]),
    ok = ?U:wait_until(fun() ->
                               call(S, create, [<<"x3">>, process, #{cmd => [<<"sleep">>, M]}])
                                   =/= {error, {limit_reached, uids}}
                       end, 10000),
    {ok, #{status := running, user := #{uid := C}}} = call(S, get, [<<"x3">>]),
    ?assertEqual(A, C),
    [ok = call(S, destroy, [Id]) || Id <- [<<"x2">>, <<"x3">>]],
    ok.
