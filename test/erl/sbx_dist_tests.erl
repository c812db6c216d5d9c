%% What a caller on a real OTP node sees of sandboxd's distribution layer: ping, every
%% rpc form, info, undef and noproc answers, spawn/link/monitor semantics, the node
%% dialling out, cookies, names and clean shutdown.
-module(sbx_dist_tests).

-export([tests/0]).

-include_lib("kernel/include/file.hrl").

-define(U, sbx_test_util).

tests() ->
    [{ping_and_hidden, fun ping_and_hidden/0},
     {call_forms, fun call_forms/0},
     {erl_call_legacy_rex, fun erl_call_legacy_rex/0},
     {info_map, fun info_map/0},
     {undef_like_real_node, fun undef_like_real_node/0},
     {gen_server_noproc_and_unknown_request, fun gen_server_noproc/0},
     {spawn_link_monitor, fun spawn_link_monitor/0},
     {net_ping_initiating_handshake, fun net_ping/0},
     {sigterm_nodedown_and_unregister, fun sigterm/0},
     {cookie_file_created_like_erl, fun cookie_file/0},
     {cookie_from_env, fun cookie_env/0},
     {name_in_use_fails_cleanly, fun name_in_use/0},
     {command_line, fun command_line/0}].

ping_and_hidden() ->
    #{node := N} = ?U:start(),
    pong = net_adm:ping(N),
    true = lists:member(N, nodes(hidden)),
    false = lists:member(N, nodes()),
    ok.

call_forms() ->
    #{node := N} = ?U:start(),
    pong = rpc:call(N, sandbox, ping, []),
    pong = erpc:call(N, sandbox, ping, []),
    pong = erpc:call(N, sandbox, ping, [], 5000),
    pong = rpc:block_call(N, sandbox, ping, []),
    Key = rpc:async_call(N, sandbox, ping, []),
    pong = rpc:yield(Key),
    Req = erpc:send_request(N, sandbox, ping, []),
    pong = erpc:receive_response(Req),
    pong = gen_server:call({sandboxd, N}, {ping}),
    pong = gen_server:call({sandboxd, N}, ping),
    Me = node(),
    {[Me, N], []} = rpc:multicall([node(), N], erlang, node, []),
    [{ok, Me}, {ok, N}] = erpc:multicall([node(), N], erlang, node, []),
    true = rpc:cast(N, sandbox, ping, []),
    ok = erpc:cast(N, sandbox, nope, []),
    %% Many calls in flight from one process, answered in any order, none lost.
    Reqs = [erpc:send_request(N, sandbox, ping, []) || _ <- lists:seq(1, 500)],
    [pong = erpc:receive_response(R, 5000) || R <- Reqs],
    pong = rpc:call(N, sandbox, ping, []),
    ok.

%% erl_call (OTP's own C client) uses rex's legacy {Pid, {call, M, F, A, GL}} form.
erl_call_legacy_rex() ->
    case filelib:wildcard(code:lib_dir(erl_interface) ++ "/bin/erl_call") of
        [] -> {skip, no_erl_call};
        [ErlCall] ->
            #{node := N} = ?U:start(),
            Out = os:cmd(ErlCall ++ " -n " ++ atom_to_list(N) ++ " -c " ++ ?U:cookie() ++
                         " -a 'sandbox ping'"),
            "pong" = string:trim(Out),
            ok
    end.

info_map() ->
    S = #{node := N} = ?U:start(),
    Info = rpc:call(N, sandbox, info, []),
    #{node := N, version := V, uptime_ms := Up, memory_bytes := Mem, sandboxes := 0,
      connections := C, processes := P, backends := B} = Info,
    true = is_binary(V) andalso byte_size(V) > 0,
    true = is_integer(Up) andalso Up >= 0,
    true = is_integer(Mem) andalso Mem > 1024 * 1024,
    1 = C,
    true = P >= 3,
    [beam_node, docker, process, vm] = lists:sort(maps:keys(B)),
    [true = (St =:= available orelse element(1, St) =:= unavailable) || St <- maps:values(B)],
    %% The host's load averages, as /proc/loadavg has them (each within 1 of it: the two
    %% reads are a moment apart).
    #{load := {L1, L5, L15}} = Info,
    {ok, LoadText} = file:read_file("/proc/loadavg"),
    [T1, T5, T15 | _] = binary:split(LoadText, <<" ">>, [global]),
    [P1, P5, P15] = [binary_to_float(T) || T <- [T1, T5, T15]],
    [true = is_float(L) andalso L >= 0.0 andalso abs(L - Pl) < 1.0
     || {L, Pl} <- [{L1, P1}, {L5, P5}, {L15, P15}]],
    %% Uptime moves forward.
    timer:sleep(20),
    #{uptime_ms := Up2} = ?U:info(S),
    true = Up2 > Up,
    ok.

undef_like_real_node() ->
    #{node := N} = ?U:start(),
    {badrpc, {'EXIT', {undef, [{sandbox, nope, [], []}]}}} = rpc:call(N, sandbox, nope, []),
    {badrpc, {'EXIT', {undef, [{sandbox, ping, [1, x], []}]}}} = rpc:call(N, sandbox, ping, [1, x]),
    {badrpc, {'EXIT', {undef, [{no_such_mod, f, [], []}]}}} = rpc:call(N, no_such_mod, f, []),
    {badrpc, {'EXIT', {undef, [{sandbox, nope, [], []}]}}} = rpc:block_call(N, sandbox, nope, []),
    try erpc:call(N, sandbox, nope, [1]) of
        V -> error({unexpected, V})
    catch error:{exception, undef, [{sandbox, nope, [1], []}]} -> ok
    end,
    %% A string-encoded argument list ([1,2,3] travels as STRING_EXT).
    {badrpc, {'EXIT', {undef, [{sandbox, nope, [1, 2, 3], []}]}}} = rpc:call(N, sandbox, nope, [1, 2, 3]),
    pong = rpc:call(N, sandbox, ping, []),
    ok.

gen_server_noproc() ->
    #{node := N} = ?U:start(),
    T0 = erlang:monotonic_time(millisecond),
    {'EXIT', {noproc, {gen_server, call, [{nosuch, N}, hello]}}} =
        (catch gen_server:call({nosuch, N}, hello)),
    true = erlang:monotonic_time(millisecond) - T0 < 2000,
    {error, {badarg, request, unknown_function}} = gen_server:call({sandboxd, N}, {nope, 1}),
    {error, {badarg, request, unknown_function}} = gen_server:call({sandboxd, N}, <<"junk">>),
    pong = gen_server:call({sandboxd, N}, {ping}),
    ok.

spawn_link_monitor() ->
    #{node := N} = ?U:start(),
    {_, R1} = spawn_monitor(N, sandbox, ping, []),
    normal = down(R1),
    {_, R2} = spawn_monitor(N, nomod, nofun, [a]),
    {undef, [{nomod, nofun, [a], []}]} = down(R2),
    %% A monitor on a registered process stays quiet; on an unknown name it fires noproc.
    R3 = erlang:monitor(process, {sandboxd, N}),
    R4 = erlang:monitor(process, {nosuch, N}),
    noproc = down(R4),
    receive {'DOWN', R3, _, _, _} = D -> error({unexpected, D}) after 300 -> ok end,
    true = erlang:demonitor(R3, [flush]),
    %% Linking to a finished process gives an exit signal noproc.
    process_flag(trap_exit, true),
    Pid = spawn(N, sandbox, ping, []),
    timer:sleep(200),
    true = link(Pid),
    receive {'EXIT', Pid, noproc} -> ok after 3000 -> error(no_noproc_exit) end,
    %% spawn_link: the process ends normally; with trap_exit we see it.
    P2 = spawn_link(N, sandbox, ping, []),
    receive {'EXIT', P2, normal} -> ok after 3000 -> error(no_normal_exit) end,
    %% unlink of a pid that is gone is answered (UNLINK_ID_ACK) without harm.
    true = unlink(Pid),
    pong = rpc:call(N, sandbox, ping, []),
    ok.

down(Ref) ->
    receive {'DOWN', Ref, process, _, Reason} -> Reason
    after 5000 -> error({no_down, Ref})
    end.

net_ping() ->
    S = #{node := N} = ?U:start(),
    {Peer, PeerNode} = ?U:start_peer("sbxnp"),
    [] = peer:call(Peer, erlang, nodes, [hidden]),
    pong = rpc:call(N, sandbox, net_ping, [PeerNode]),
    true = lists:member(N, peer:call(Peer, erlang, nodes, [hidden])),
    %% Calls now flow both ways over the connection sandboxd opened.
    pong = peer:call(Peer, erpc, call, [N, sandbox, ping, []]),
    pang = rpc:call(N, sandbox, net_ping, [list_to_atom("nobody_here@" ++ ?U:host())], 15000),
    {Peer2, PeerNode2} = ?U:start_peer("sbxnpc", ["-setcookie", "another_cookie"]),
    pang = rpc:call(N, sandbox, net_ping, [PeerNode2], 15000),
    [] = peer:call(Peer2, erlang, nodes, [hidden]),
    {error, {badarg, node, not_a_node_name}} = rpc:call(N, sandbox, net_ping, [not_a_node]),
    {error, {badarg, node, not_a_node_name}} = rpc:call(N, sandbox, net_ping, ["x@y"]),
    pong = rpc:call(N, sandbox, net_ping, [N]),
    %% Both peers gone: only the runner's connection is left.
    ?U:stop_peer(Peer),
    ?U:stop_peer(Peer2),
    ok = ?U:wait_until(fun() -> {1, _} = ?U:counts(S), true end, 5000),
    ok.

sigterm() ->
    S = #{node := N} = ?U:start(),
    pong = net_adm:ping(N),
    true = erlang:monitor_node(N, true),
    [Alive, _] = string:split(atom_to_list(N), "@"),
    {ok, Names0} = erl_epmd:names(),
    true = lists:keymember(Alive, 1, Names0),
    0 = ?U:stop(S),
    receive {nodedown, N} -> ok after 5000 -> error(no_nodedown) end,
    ok = ?U:wait_until(fun() ->
                               {ok, Names} = erl_epmd:names(),
                               not lists:keymember(Alive, 1, Names)
                       end, 3000),
    Log = ?U:log_text(S),
    {match, _} = re:run(Log, "msg=\"stopped\""),
    ok.

cookie_file() ->
    Home = filename:join(?U:log_dir(), ?U:unique("home")),
    ok = file:make_dir(Home),
    S = #{node := N} = ?U:start(#{cookie => false, wait => false,
                                  env => [{"HOME", Home}, {"SANDBOXD_COOKIE", false}]}),
    File = filename:join(Home, ".erlang.cookie"),
    ok = ?U:wait_until(fun() -> filelib:is_regular(File) end, 5000),
    {ok, #file_info{mode = Mode}} = file:read_file_info(File),
    8#400 = Mode band 8#777,
    {ok, Bin} = file:read_file(File),
    {match, _} = re:run(Bin, "^[A-Z]{20}$"),
    Cookie = binary_to_atom(Bin),
    true = erlang:set_cookie(N, Cookie),
    ok = ?U:wait_until(fun() -> net_adm:ping(N) =:= pong end, 10000),
    pong = rpc:call(N, sandbox, ping, []),
    %% The cookie never reaches the log.
    nomatch = binary:match(?U:log_text(S), Bin),
    ok.

cookie_env() ->
    S = #{node := N} = ?U:start(#{cookie => false, wait => false,
                                  env => [{"SANDBOXD_COOKIE", "env_cookie_xyz"}]}),
    true = erlang:set_cookie(N, env_cookie_xyz),
    ok = ?U:wait_until(fun() -> net_adm:ping(N) =:= pong end, 10000),
    nomatch = binary:match(?U:log_text(S), <<"env_cookie_xyz">>),
    ok.

name_in_use() ->
    #{node := N} = ?U:start(),
    [Alive, _] = string:split(atom_to_list(N), "@"),
    #{port := Port} = S2 = ?U:start(#{sname => Alive, wait => false}),
    St = receive {Port, {exit_status, X}} -> X after 10000 -> error(second_node_kept_running) end,
    true = St =/= 0,
    {match, _} = re:run(?U:log_text(S2), "cannot start the node"),
    pong = rpc:call(N, sandbox, ping, []),
    ok.

command_line() ->
    Bin = ?U:bin(),
    "sandboxd " ++ _ = os:cmd(Bin ++ " --version"),
    {match, _} = re:run(os:cmd(Bin ++ " --help"), "--sname"),
    "2" = string:trim(os:cmd(Bin ++ " --no-such-option >/dev/null 2>&1; echo $?")),
    "2" = string:trim(os:cmd(Bin ++ " --net-ticktime 0 >/dev/null 2>&1; echo $?")),
    ok.
