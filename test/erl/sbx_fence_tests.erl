%% Sandboxes must not reach the control plane (issue 14, "It must show" 1 and 7): code
%% inside a beam_node sandbox, and inside a docker sandbox with `beam`, tries every door
%% back into sandboxd over the connection sandboxd itself opened to it, and each is
%% refused; a fresh connection under the sandbox node's name, or under another name with
%% the sandbox's cookie, is refused too. Meanwhile remote_call, get_state and tracing of that
%% sandbox keep working. Also the cookie options: --cookie-file, --cookie's warning, and
%% SANDBOXD_COOKIE gone from sandboxd's /proc/<pid>/environ and from its children's.
%%
%% The doors are functions of this module run inside the sandbox's node (loaded there with
%% code:load_binary through remote_call). Each door would create a sandbox if it opened:
%% the test asserts, from its own authorized connection, that none was created and that
%% the marker file each create would have touched does not exist.
-module(sbx_fence_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% Run inside the sandbox's node.
-export([doors/2, ping_door/1, ping_result/0, init/1, handle_call/3, handle_cast/2]).

-define(U, sbx_test_util).

tests() ->
    [{beam_node_doors_refused, 120000, fun beam_doors/0},
     {docker_beam_doors_refused, 240000, fun docker_doors/0},
     {cookie_file_and_cookie_warning, 60000, fun cookie_file/0},
     {cookie_env_cleared, 60000, fun cookie_env/0}].

%%% ---------------------------------------------------------------------------------
%%% Helpers

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

now_ms() -> erlang:monotonic_time(millisecond).

%% Loads this module into the sandbox Id's node.
load_self(S, Id) ->
    {Mod, Bin, File} = code:get_object_code(?MODULE),
    {module, Mod} = call(S, remote_call, [Id, code, load_binary, [Mod, File, Bin]]),
    ok.

%% The marker files a create through a door would have touched.
markers(Dir) -> filelib:wildcard(filename:join(Dir, "door_*")).

marker_dir() ->
    D = filename:absname(filename:join(?U:log_dir(), ?U:unique("fence"))),
    ok = filelib:ensure_dir(filename:join(D, "x")),
    D.

%% The doors, run from the sandbox's node, then: nothing was created, no marker exists,
%% every door answered (no hang) and was refused, and the refusals were logged.
try_doors(S, Id, Dir) ->
    N = maps:get(node, S),
    load_self(S, Id),
    T0 = now_ms(),
    Doors = call(S, remote_call, [Id, ?MODULE, doors, [N, list_to_binary(Dir)], 90000]),
    report("doors tried from ~s in ~b ms:", [Id, now_ms() - T0]),
    [report("  ~-16s ~6b ms  ~P", [D, Ms, R, 14]) || {D, Ms, R} <- Doors],
    Res = maps:from_list([{D, R} || {D, _, R} <- Doors]),
    %% rpc:call: an error at once (erpc's spawn refused), never a value.
    ?assertMatch({badrpc, _}, maps:get(rpc_call, Res)),
    ?assertMatch({error, {erpc, _}}, maps:get(erpc_call, Res)),
    %% gen_server:call to sandboxd's registered name: the monitor says noproc.
    ?assertMatch({exit, {noproc, _}}, maps:get(gen_server_call, Res)),
    ?assertMatch({exit, {noproc, _}}, maps:get(gen_server_rex, Res)),
    ?assertEqual(no_answer, maps:get(raw_sends, Res)),
    ?assertMatch({spawn_reply_error, _}, maps:get(spawn_request, Res)),
    ?assertMatch({down, _}, maps:get(spawn_4, Res)),
    ?assertEqual({exit, noproc}, maps:get(link, Res)),
    ?assertEqual(sent, maps:get(exit_signal, Res)),
    %% net_adm:ping: pang (net_kernel is not reachable). On pang the node itself drops its
    %% connection (net_adm does that), so it runs apart and is read back by a second call.
    ok = call(S, remote_call, [Id, ?MODULE, ping_door, [N]]),
    Ping = ?U:wait_until(fun() -> call(S, remote_call, [Id, ?MODULE, ping_result, []]) =/= none
                         end, 30000),
    ok = Ping,
    {PingMs, PingRes} = call(S, remote_call, [Id, ?MODULE, ping_result, []]),
    report("  ~-16s ~6b ms  ~p", [net_adm_ping, PingMs, PingRes]),
    ?assertEqual(pang, PingRes),
    %% Nothing a door asked for happened.
    List = call(S, list, []),
    report("sandboxes after the doors: ~p", [[maps:get(id, M) || M <- List]]),
    ?assertEqual([Id], [maps:get(id, M) || M <- List]),
    %% A create accepted late would still run its command: give it a moment.
    timer:sleep(1000),
    ?assertEqual([], markers(Dir)),
    Log = ?U:log_text(S),
    Refusals = length(binary:matches(Log, <<"refused from a sandbox's node">>)),
    report("refusal lines in sandboxd's log: ~b", [Refusals]),
    ?assert(Refusals > 0),
    ok.

%% A fresh connection with the sandbox's cookie: under the sandbox node's own name (a raw
%% handshake: sandboxd answers not_allowed) and under another name (a real erl node: pang,
%% and rpc:call says nodedown).
fresh_connections(S, SbNode, Cookie) ->
    N = maps:get(node, S),
    Raw = sbx_rawpeer:open(N, #{name => SbNode, cookie => binary_to_list(Cookie)}),
    report("raw handshake as ~s with its cookie: ~p", [SbNode, Raw]),
    ?assertMatch({error, {status, <<"snot_allowed">>}}, Raw),
    {ok, Peer, PNode} = peer:start(#{name => ?U:unique("fresh"),
                                     args => ["-setcookie", binary_to_list(Cookie), "-hidden"],
                                     connection => standard_io, wait_boot => 30000}),
    try
        Ping = peer:call(Peer, net_adm, ping, [N], 30000),
        Rpc = peer:call(Peer, rpc, call, [N, sandbox, list, [], 10000], 30000),
        report("fresh node ~s with the sandbox's cookie: ping ~p, rpc ~p", [PNode, Ping, Rpc]),
        ?assertEqual(pang, Ping),
        ?assertEqual({badrpc, nodedown}, Rpc)
    after
        catch peer:stop(Peer)
    end.

%% remote_call, get_state and a trace of the sandbox Id still work.
still_served(S, Id, SbNode) ->
    ?assertEqual(SbNode, call(S, remote_call, [Id, erlang, node, []])),
    {ok, Srv} = call(S, remote_call, [Id, gen_server, start, [{local, fence_srv}, ?MODULE, 41, []]]),
    ?assertEqual({ok, 41}, call(S, get_state, [Id, fence_srv])),
    {ok, _} = call(S, subscribe, [Id, self(), [trace]]),
    {ok, TRef} = call(S, trace_start, [Id, #{pids => [Srv], flags => ['receive'],
                                             max_events => 3}]),
    [42, 43, 44] = [call(S, remote_call, [Id, gen_server, call, [fence_srv, bump]])
                    || _ <- lists:seq(1, 3)],
    Events = collect(Id, 20000, []),
    report("trace events after the doors: ~b", [length(Events)]),
    ?assert(length([E || #{event := 'receive'} = E <- Events]) >= 1),
    _ = call(S, trace_stop, [TRef]),
    ?assertEqual({ok, 44}, call(S, get_state, [Id, fence_srv])).

collect(Id, Timeout, Acc) ->
    receive
        {sandbox_event, Id, trace, #{event := trace_end}} -> lists:reverse(Acc);
        {sandbox_event, Id, trace, Ev} -> collect(Id, Timeout, [Ev | Acc])
    after Timeout -> lists:reverse(Acc)
    end.

%%% ---------------------------------------------------------------------------------
%%% Inside the sandbox's node

%% The fenced server used for get_state and tracing.
init(N) -> {ok, N}.
handle_call(bump, _From, N) -> {reply, N + 1, N + 1}.
handle_cast(_, N) -> {noreply, N}.

%% Every door into sandboxd node N; each create would touch Dir/door_<name>.
%% Returns [{Door, Ms, Result}].
doors(N, Dir) ->
    Cfg = fun(Tag) -> #{cmd => [<<"sh">>, <<"-c">>,
                                <<"touch ", Dir/binary, "/door_", Tag/binary>>]} end,
    Args = fun(Tag) -> [<<"esc_", Tag/binary>>, process, Cfg(Tag)] end,
    GL = group_leader(),
    [timed(rpc_call, fun() -> rpc:call(N, sandbox, create, Args(<<"rpc">>), 15000) end),
     timed(erpc_call, fun() ->
                              try erpc:call(N, sandbox, create, Args(<<"erpc">>), 15000)
                              catch C:R -> {C, R}
                              end
                      end),
     timed(gen_server_call, fun() -> gcall({sandboxd, N}, {create, Args(<<"gen">>)}) end),
     timed(gen_server_rex, fun() -> gcall({rex, N}, {call, sandbox, create, Args(<<"rex">>),
                                                     group_leader()}) end),
     timed(raw_sends, fun() -> raw_sends(N, Args) end),
     timed(spawn_request, fun() ->
                                  R = spawn_request(N, sandbox, create, Args(<<"spawn">>), [monitor]),
                                  receive
                                      {spawn_reply, R, error, E} -> {spawn_reply_error, E};
                                      {spawn_reply, R, ok, P} -> {spawned, P}
                                  after 15000 -> no_reply
                                  end
                          end),
     timed(spawn_4, fun() ->
                            P = spawn(N, sandbox, create, Args(<<"spawn4">>)),
                            M = monitor(process, P),
                            receive {'DOWN', M, process, P, Why} -> {down, Why}
                            after 15000 -> no_down
                            end
                    end),
     timed(link, fun() -> isolated(fun() -> link_door(GL) end) end),
     timed(exit_signal, fun() -> exit(GL, kill), sent end)].

%% net_adm:ping(N) in a process of its own; ping_result/0 gives {Ms, Result} or none.
ping_door(N) ->
    persistent_term:put(fence_ping, none),
    spawn(fun() ->
                  {_, Ms, R} = timed(net_adm_ping, fun() -> net_adm:ping(N) end),
                  persistent_term:put(fence_ping, {Ms, R})
          end),
    ok.

ping_result() -> persistent_term:get(fence_ping, none).

timed(Door, F) ->
    T0 = erlang:monotonic_time(millisecond),
    R = F(),
    {Door, erlang:monotonic_time(millisecond) - T0, R}.

gcall(Dest, Req) ->
    try gen_server:call(Dest, Req, 15000)
    catch exit:{Why, _} -> {exit, {Why, Dest}}
    end.

%% Raw messages in the forms sandboxd's rex and sandboxd processes serve (legacy rex,
%% a gen_call to each): no answer may come within 3 s.
raw_sends(N, Args) ->
    Tag = make_ref(),
    {rex, N} ! {self(), {call, sandbox, create, Args(<<"raw_rex">>), group_leader()}},
    {rex, N} ! {'$gen_call', {self(), Tag}, {call, sandbox, create, Args(<<"raw_rexg">>), user}},
    {sandboxd, N} ! {'$gen_call', {self(), Tag}, {create, Args(<<"raw_sbx">>)}},
    {net_kernel, N} ! {'$gen_call', {self(), Tag}, {is_auth, node()}},
    receive
        {rex, Any} -> {answered, Any};
        {Tag, Any} -> {answered, Any}
    after 3000 -> no_answer
    end.

%% In a process of its own (it traps exits).
isolated(F) ->
    Self = self(),
    Pid = spawn(fun() -> Self ! {self(), F()} end),
    receive {Pid, R} -> R after 20000 -> no_result end.

link_door(GL) ->
    process_flag(trap_exit, true),
    true = link(GL),
    receive {'EXIT', GL, Why} -> {exit, Why}
    after 15000 -> still_linked
    end.

%%% ---------------------------------------------------------------------------------
%%% Tests

beam_doors() ->
    S = ?U:start_isolated(),
    Id = <<"fence">>,
    Name = ?U:unique("fence"),
    {ok, #{status := running}} = call(S, create, [Id, beam_node, #{name => list_to_binary(Name)}]),
    {ok, #{node := SbNode, argv := Argv}} = call(S, shell, [Id]),
    Cookie = lists:last(Argv),
    Dir = marker_dir(),
    try_doors(S, Id, Dir),
    fresh_connections(S, SbNode, Cookie),
    still_served(S, Id, SbNode),
    ?assertEqual([], markers(Dir)),
    ok = call(S, destroy, [Id]).

docker_doors() ->
    case sbx_docker_smoke_tests:docker_wanted() of
        ok -> docker_doors_locked();
        Skip -> Skip
    end.

%% Under the shared Docker lock, like the other Docker suites' runs.
docker_doors_locked() ->
    Image = docker_image(),
    S = ?U:start_isolated(),
    ok = ?U:wait_until(fun() -> maps:get(docker, maps:get(backends, ?U:info(S))) =:= available
                       end, 20000),
    Id = <<"dfence">>,
    Name = ?U:unique("dfence"),
    Cookie = list_to_binary(?U:unique("ck")),
    SbNode = list_to_atom(Name ++ "@" ++ ?U:host()),
    Cfg = #{image => Image, network => <<"host">>,
            cmd => [<<"erl">>, <<"-noshell">>, <<"-sname">>, list_to_binary(Name),
                    <<"-setcookie">>, Cookie],
            beam => #{name => SbNode, cookie => Cookie}},
    try
        {ok, #{status := running}} = call(S, create, [Id, docker, Cfg]),
        Dir = marker_dir(),
        try_doors(S, Id, Dir),
        fresh_connections(S, SbNode, Cookie),
        still_served(S, Id, SbNode),
        ?assertEqual([], markers(Dir)),
        ok = call(S, destroy, [Id])
    after
        Left = string:lexemes(os:cmd("timeout 60 docker ps -aq --filter label=sandboxd.node="
                                     ++ atom_to_list(maps:get(node, S))), "\n"),
        [os:cmd("timeout 60 docker rm -f -v " ++ C) || C <- Left]
    end.

docker_image() ->
    Out = os:cmd("scripts/docker-erlang-image.sh 2>&1; echo \"rc=$?\""),
    Lines = string:lexemes(Out, "\n"),
    "rc=0" = lists:last(Lines),
    list_to_binary(lists:nth(length(Lines) - 1, Lines)).

%% --cookie-file: the file's cookie works (ping, rpc); a file open to others is refused;
%% --cookie works with a warning in the log.
cookie_file() ->
    Dir = marker_dir(),
    File = filename:join(Dir, "cookie"),
    ok = file:write_file(File, [?U:cookie(), "\n"]),
    ok = file:change_mode(File, 8#600),
    S = ?U:start_isolated(#{cookie => false, args => ["--cookie-file", File]}),
    ?assertEqual(pong, net_adm:ping(maps:get(node, S))),
    ?assertEqual([], call(S, list, [])),
    ?assertEqual(nomatch, binary:match(?U:log_text(S), <<"--cookie is readable">>)),
    ?assertEqual(nomatch, binary:match(?U:log_text(S), list_to_binary(?U:cookie()))),
    %% Open to others: sandboxd refuses to start.
    ok = file:change_mode(File, 8#644),
    Bad = ?U:start(#{cookie => false, args => ["--cookie-file", File], wait => false}),
    #{port := Port} = Bad,
    Status = receive {Port, {exit_status, St}} -> St after 20000 -> still_running end,
    report("--cookie-file open to others: exit status ~p, log: ~s", [Status, last_line(Bad)]),
    ?assertEqual(1, Status),
    ?assertNotEqual(nomatch, binary:match(?U:log_text(Bad), <<"owner only">>)),
    %% --cookie: works, warns, and is no longer in /proc/<pid>/cmdline.
    S2 = ?U:start_isolated(),
    ?assertEqual([], call(S2, list, [])),
    Warn = binary:match(?U:log_text(S2), <<"--cookie is readable by every local user">>),
    ?assertNotEqual(nomatch, Warn),
    Cmdline = proc_file(maps:get(os_pid, S2), "cmdline"),
    ?assertEqual(nomatch, binary:match(Cmdline, list_to_binary(?U:cookie()))),
    ok.

last_line(S) ->
    Lines = binary:split(string:trim(?U:log_text(S)), <<"\n">>, [global]),
    lists:last(Lines).

proc_file(Pid, F) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/" ++ F),
    B.

%% SANDBOXD_COOKIE: read, then gone from sandboxd's /proc/<pid>/environ and from what its
%% children get (a process sandbox's environ, a beam_node's erl: cmdline and environ).
cookie_env() ->
    C = list_to_binary(?U:cookie()),
    S = ?U:start_isolated(#{cookie => false, env => [{"SANDBOXD_COOKIE", ?U:cookie()}]}),
    ?assertEqual([], call(S, list, [])),
    OsPid = maps:get(os_pid, S),
    Env = proc_file(OsPid, "environ"),
    report("sandboxd environ: ~b bytes, SANDBOXD_COOKIE ~p", [byte_size(Env),
                                                              binary:match(Env, <<"SANDBOXD_COOKIE">>)]),
    ?assertEqual(nomatch, binary:match(Env, <<"SANDBOXD_COOKIE">>)),
    ?assertEqual(nomatch, binary:match(Env, C)),
    {ok, _} = call(S, create, [<<"p">>, process, #{cmd => [<<"sleep">>, <<"60">>]}]),
    {ok, #{status := running}} = call(S, create, [<<"b">>, beam_node, #{}]),
    Kids = descendants(OsPid),
    report("children of sandboxd: ~p", [Kids]),
    ?assert(length(Kids) >= 2),
    [begin
         Text = <<(proc_file(K, "cmdline"))/binary, (proc_file(K, "environ"))/binary>>,
         ?assertEqual({K, nomatch}, {K, binary:match(Text, C)}),
         ?assertEqual({K, nomatch}, {K, binary:match(Text, <<"SANDBOXD_COOKIE">>)}),
         ?assertEqual({K, nomatch}, {K, binary:match(Text, <<"-setcookie">>)})
     end || K <- Kids, filelib:is_file("/proc/" ++ integer_to_list(K))],
    %% What a workload sees: its own environ, an exec's, and its parent's (sandboxd's when
    %% sandboxd forked it directly).
    Script = <<"cat /proc/self/environ; echo; cat /proc/$PPID/environ; echo">>,
    {ok, #{exit_code := 0, stdout := Out}} = call(S, exec, [<<"p">>, [<<"sh">>, <<"-c">>, Script]]),
    report("an exec's environ and its parent's: ~b bytes", [byte_size(Out)]),
    ?assert(byte_size(Out) > 0),
    ?assertEqual(nomatch, binary:match(Out, C)),
    ?assertEqual(nomatch, binary:match(Out, <<"SANDBOXD_COOKIE">>)),
    ok = call(S, destroy, [<<"b">>]),
    ok = call(S, destroy, [<<"p">>]).

descendants(Pid) -> sbx_cookie_watch:descendants(Pid).
