%% Faults and load against the real sandboxd binary: many callers at once, callers that
%% die, bytes no real node would send, peers that never speak or never read, ticks, and
%% wrong cookies. Every test checks what a user of the node would see: its answers,
%% how long it takes to drop a bad peer, and that its connection and process counts
%% (sandbox:info/0) come back to where they were.
%%
%% Baselines are taken at the start of each test, after this runner connected (its own
%% connection counts as one). Peers are real erl nodes (hidden) started through `peer`
%% with this module's directory in their code path: the peer_* functions below run on
%% them. Each test ends by stopping the node with SIGTERM: it must exit 0 and its log
%% must hold no sanitizer report (that is where LeakSanitizer speaks).
-module(sbx_fault_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% Run on peer nodes.
-export([peer_load/3, peer_spin/2, peer_spin_count/0, peer_watch/1, peer_watch_report/0]).

-define(HANDSHAKE_LIMIT_MS, 10500). % handshake timeout (7 s default, at most 10 s) + slack
-define(PROMPT_MS, 3000).           % "closed at once", with room for a sanitizer build
-define(PING_LATENCY_MS, 2000).     % slowest acceptable ping while the node is under stress

tests() ->
    [{load, 300000, fun load/0},
     {caller_killed, 90000, fun caller_killed/0},
     {raw_garbage_handshake, 120000, fun raw_garbage_handshake/0},
     {raw_huge_length, 60000, fun raw_huge_length/0},
     {raw_truncated_terms, 90000, fun raw_truncated_terms/0},
     {raw_ignored_messages, 60000, fun raw_ignored_messages/0},
     {raw_wrong_cookie, 60000, fun raw_wrong_cookie/0},
     {raw_data_with_reply, 60000, fun raw_data_with_reply/0},
     {raw_alive_reconnect, 60000, fun raw_alive_reconnect/0},
     {raw_impostor_alive, 60000, fun raw_impostor_alive/0},
     {silent_peer, 60000, fun silent_peer/0},
     {silent_peers_many, 90000, fun silent_peers_many/0},
     {slow_reader, 180000, fun slow_reader/0},
     {ticks_idle, 120000, fun ticks_idle/0},
     {ticks_sigstop, 90000, fun ticks_sigstop/0},
     {ticks_node_ticktime, 90000, fun ticks_node_ticktime/0},
     {wrong_cookie, 90000, fun wrong_cookie/0}].

%%% ---------------------------------------------------------------------------------
%%% 1. Load: two peers, 50 processes each, 2,000 erpc calls per process.

load() ->
    {S, Base} = start_node(),
    N = node_of(S),
    Peers = [sbx_test_util:start_peer("load", peer_args([])) || _ <- [1, 2]],
    Self = self(),
    T0 = now_ms(),
    Jobs = [spawn_link(fun() ->
                           Self ! {self(), catch peer:call(P, ?MODULE, peer_load,
                                                           [N, 50, 2000], 280000)}
                       end) || {P, _} <- Peers],
    Results = [receive {J, R} -> R end || J <- Jobs],
    Ms = max(1, now_ms() - T0),
    Pongs = lists:sum([P || {P, _, _} <- Results]),
    report("load: ~b pongs of 200000 in ~b ms (~b calls/s); per peer ~p",
           [Pongs, Ms, Pongs * 1000 div Ms, Results]),
    [?assertMatch({100000, 0, []}, R) || R <- Results],
    ?assertEqual(200000, Pongs),
    [sbx_test_util:stop_peer(P) || {P, _} <- Peers],
    await_counts(S, Base, 10000),
    assert_serves(S),
    stop_clean(S).

%% On a peer: Procs processes each make Calls erpc:call ping calls.
%% {Pongs, OtherAnswers, FirstFewOtherAnswers}.
peer_load(Node, Procs, Calls) ->
    Self = self(),
    Ws = [spawn_link(fun() -> Self ! {self(), load_worker(Node, Calls, 0, 0, [])} end)
          || _ <- lists:seq(1, Procs)],
    lists:foldl(fun(W, {P, B, Sample}) ->
                        receive
                            {W, {P1, B1, S1}} -> {P + P1, B + B1, lists:sublist(Sample ++ S1, 5)}
                        end
                end, {0, 0, []}, Ws).

load_worker(_, 0, P, B, Sample) -> {P, B, Sample};
load_worker(Node, K, P, B, Sample) ->
    case catch erpc:call(Node, sandbox, ping, [], 60000) of
        pong -> load_worker(Node, K - 1, P + 1, B, Sample);
        Other -> load_worker(Node, K - 1, P, B + 1, lists:sublist([Other | Sample], 5))
    end.

%%% ---------------------------------------------------------------------------------
%%% 2. A caller node SIGKILLed in the middle of many calls.

caller_killed() ->
    {S, {C0, P0} = Base} = start_node(),
    N = node_of(S),
    {Peer, _} = sbx_test_util:start_peer("victim", peer_args([])),
    ok = peer:call(Peer, ?MODULE, peer_spin, [N, 50]),
    ok = sbx_test_util:wait_until(
           fun() -> peer:call(Peer, ?MODULE, peer_spin_count, []) >= 2000 end, 30000, 100),
    ?assertMatch({C, _} when C =:= C0 + 1, sbx_test_util:counts(S)),
    OsPid = sbx_test_util:peer_os_pid(Peer),
    Before = peer:call(Peer, ?MODULE, peer_spin_count, []),
    timer:sleep(200),
    After = peer:call(Peer, ?MODULE, peer_spin_count, []),
    ?assert(After > Before), % the calls are still going when the node dies
    sbx_test_util:os_kill(OsPid, "KILL"),
    T0 = now_ms(),
    assert_serves(S),
    await_counts(S, {C0, P0}, 5000),
    report("caller_killed: ~b calls made before SIGKILL; counts back to ~p in ~b ms",
           [After, Base, now_ms() - T0]),
    stop_clean(S).

%% On a peer: Procs processes call ping in a loop until the node dies; a counter
%% (peer_spin_count/0) says how many calls were answered pong.
peer_spin(Node, Procs) ->
    Cnt = counters:new(1, [write_concurrency]),
    persistent_term:put({?MODULE, spin}, Cnt),
    [spawn(fun() -> spin(Node, Cnt) end) || _ <- lists:seq(1, Procs)],
    ok.

spin(Node, Cnt) ->
    case catch erpc:call(Node, sandbox, ping, [], 60000) of
        pong -> counters:add(Cnt, 1, 1);
        _ -> ok
    end,
    spin(Node, Cnt).

peer_spin_count() -> counters:get(persistent_term:get({?MODULE, spin}), 1).

%%% ---------------------------------------------------------------------------------
%%% 3. A raw TCP peer (sbx_rawpeer) sending what no real node would.

%% (a) Garbage before or instead of a handshake: dropped, no "ok" status, node serves.
raw_garbage_handshake() ->
    {S, Base} = start_node(),
    N = node_of(S),
    Flags = sbx_rawpeer:flags(),
    Name = fun() -> atom_to_binary(sbx_rawpeer:unique_name(), utf8) end,
    NameMsg = fun(F, Nm) -> <<$N, F:64, 7:32, (byte_size(Nm)):16, Nm/binary>> end,
    Hs = fun(Body) -> <<(byte_size(Body)):16, Body/binary>> end,
    Random = list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, 61)]),
    Host = list_to_binary(sbx_test_util:host()),
    Cases =
        [{empty_message, <<0, 0>>, ?PROMPT_MS},
         {short_send_name, Hs(<<"hello">>), ?PROMPT_MS},
         {old_style_send_name_v5, Hs(<<$n, 5:16, 16#7FFFD:32, (Name())/binary>>), ?PROMPT_MS},
         {name_length_past_end, Hs(<<$N, Flags:64, 7:32, 200:16, "x@y">>), ?PROMPT_MS},
         {name_without_host, Hs(NameMsg(Flags, <<"nohost">>)), ?PROMPT_MS},
         {name_with_nul, Hs(NameMsg(Flags, <<"a", 0, "b@", Host/binary>>)), ?PROMPT_MS},
         {missing_mandatory_flags, Hs(NameMsg(16#4, Name())), ?PROMPT_MS},
         {this_nodes_own_name, Hs(NameMsg(Flags, atom_to_binary(N, utf8))), ?PROMPT_MS},
         {junk_then_valid_name, [Hs(<<"xyz">>), Hs(NameMsg(Flags, Name()))], ?PROMPT_MS},
         {random_bytes, Hs(<<0, Random/binary>>), ?PROMPT_MS},
         {http_request, <<"GET / HTTP/1.1\r\nHost: sandboxd\r\n\r\n">>, ?HANDSHAKE_LIMIT_MS},
         {tls_client_hello, <<22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, Random/binary>>,
          ?HANDSHAKE_LIMIT_MS}],
    [begin
         {ok, Sock} = sbx_rawpeer:connect(N),
         ok = inet:setopts(Sock, [{packet, raw}]), % the bytes as they are, no length added
         ok = gen_tcp:send(Sock, Bytes),
         R = sbx_rawpeer:wait_closed(Sock, Limit + 2000),
         ?assertMatch({Case, {closed, Ms, _}} when Ms =< Limit, {Case, R}),
         {closed, Ms, Got} = R,
         ?assertEqual({Case, no_handshake_progress}, {Case, handshake_progress(Got)}),
         report("garbage ~p: closed after ~b ms, got ~w", [Case, Ms, Got]),
         assert_serves(S),
         await_counts(S, Base, 5000)
     end || {Case, Bytes, Limit} <- Cases],
    %% Garbage where the challenge reply belongs.
    [begin
         {ok, Sock} = sbx_rawpeer:connect(N),
         ok = sbx_rawpeer:send_name(Sock, sbx_rawpeer:unique_name(), Flags, 7),
         {ok, <<"sok">>} = sbx_rawpeer:recv_hs(Sock, 5000),
         {ok, <<$N, _/binary>>} = sbx_rawpeer:recv_hs(Sock, 5000),
         ok = sbx_rawpeer:send_hs(Sock, Reply),
         R = sbx_rawpeer:wait_closed(Sock, ?PROMPT_MS + 2000),
         ?assertMatch({Case, {closed, Ms, <<>>}} when Ms =< ?PROMPT_MS, {Case, R})
     end || {Case, Reply} <- [{short_reply, <<"rxyz">>},
                              {reply_too_long, <<$r, 0:32, 0:128, 0>>},
                              {ack_instead_of_reply, <<$a, 0:128>>},
                              {second_send_name, NameMsg(Flags, Name())}]],
    assert_serves(S),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% What the node sent before closing must not be the start of a successful handshake:
%% nothing, or one refusing status.
handshake_progress(<<>>) -> no_handshake_progress;
handshake_progress(<<L:16, $s, Status:(L - 1)/binary>>)
  when Status =/= <<"ok">>, Status =/= <<"ok_simultaneous">>, Status =/= <<"alive">> ->
    no_handshake_progress;
handshake_progress(Other) -> {progress, Other}.

%% (b) After a good handshake, a length prefix of 16#FFFFFFFF (and other oversized
%% ones): the connection is dropped at once and the node goes on serving.
raw_huge_length() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    [begin
         {ok, C} = sbx_rawpeer:open(N),
         %% The connection works before the bad length...
         {ok, _, pong} = sbx_rawpeer:gen_call(C, sandboxd, {ping}, alias, 5000),
         ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
         ok = sbx_rawpeer:send_raw(C, Bytes),
         R = sbx_rawpeer:wait_closed(C, ?PROMPT_MS + 2000),
         ?assertMatch({Case, {closed, Ms, _}} when Ms =< ?PROMPT_MS, {Case, R}),
         report("huge length ~p: closed after ~b ms", [Case, element(2, R)]),
         assert_serves(S),
         await_counts(S, Base, 5000)
     end || {Case, Bytes} <- [{ffffffff, <<16#FFFFFFFF:32>>},
                              {ffffffff_then_bytes, <<16#FFFFFFFF:32, 112, 131, 106>>},
                              {max_packet_plus_one, <<(64 * 1024 * 1024 + 1):32>>},
                              {two_gib, <<16#80000000:32, 0, 0, 0>>}]],
    stop_clean(S).

%% (c) After a good handshake, packets whose terms are cut short or lie about their
%% size: the connection is dropped and the node goes on serving.
raw_truncated_terms() ->
    {S, Base} = start_node(),
    N = node_of(S),
    {ok, C} = sbx_rawpeer:open(N), % only to build terms naming a fake node
    From = sbx_rawpeer:pid(C, 1),
    sbx_rawpeer:close(C),
    await_counts(S, Base, 5000),
    Ctl = term_to_binary({6, From, '', sandboxd}),
    Msg = term_to_binary({'$gen_call', {From, make_ref()}, {ping}}),
    Cut = fun(B) -> binary:part(B, 0, byte_size(B) div 2) end,
    Cases =
        [{tuple_header_only, <<112, 131, 104, 3>>},
         {binary_claims_4gib, <<112, 131, 109, 16#FFFFFFF0:32, 1, 2, 3>>},
         {string_claims_64k, <<112, 131, 107, 16#FFFF:16, "abc">>},
         {list_claims_4g_elements, <<112, 131, 108, 16#FFFFFFFF:32, 106>>},
         {map_claims_4g_pairs, <<112, 131, 116, 16#FFFFFFFF:32>>},
         {atom_claims_64k, <<112, 131, 118, 16#FFFF:16, "abc">>},
         {bignum_claims_4gib, <<112, 131, 111, 16#FFFFFFFF:32, 0, 1>>},
         {control_cut_in_half, <<112, (Cut(Ctl))/binary>>},
         {message_cut_in_half, <<112, Ctl/binary, (Cut(Msg))/binary>>},
         {control_then_junk, <<112, Ctl/binary, 1, 2, 3>>},
         {nested_100000_deep, <<112, 131, (binary:copy(<<104, 1>>, 100000))/binary, 106>>},
         {lone_112, <<112>>},
         {no_version_byte, <<112, 104, 1, 97, 99>>},
         {unknown_tag, <<112, 131, 200, 0, 0, 0>>},
         {not_112, <<1, 2, 3, 4>>},
         {dist_header_d, <<68, 0, 131, 106>>}],
    [begin
         {ok, C2} = sbx_rawpeer:open(N),
         ok = sbx_rawpeer:send_packet(C2, Body),
         R = sbx_rawpeer:wait_closed(C2, ?PROMPT_MS + 2000),
         ?assertMatch({Case, {closed, Ms, _}} when Ms =< ?PROMPT_MS, {Case, R}),
         assert_serves(S),
         await_counts(S, Base, 5000)
     end || {Case, Body} <- Cases],
    stop_clean(S).

%% (d) Well-formed messages the node has no use for are ignored, not fatal: an unknown
%% opcode, REG_SEND to a name nobody has, SEND to a pid that does not exist, a tick.
%% The connection then still answers a gen_server call, and signals to missing
%% processes get the answers a real node gives.
raw_ignored_messages() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    {ok, C} = sbx_rawpeer:open(N),
    #{peer_creation := SbxCreation} = C,
    From = sbx_rawpeer:pid(C, 1),
    Dead = sbx_rawpeer:make_pid(N, 30000, 4000, SbxCreation),
    ok = sbx_rawpeer:send_ctl(C, {99, foo, bar}),
    ok = sbx_rawpeer:send_ctl(C, {99}, some_message),
    ok = sbx_rawpeer:send_ctl(C, {123456789, From}),
    ok = sbx_rawpeer:send_ctl(C, {7, From, Dead}), % GROUP_LEADER
    ok = sbx_rawpeer:send_ctl(C, {6, From, '', no_such_name}, hello),
    ok = sbx_rawpeer:send_ctl(C, {6, From, '', no_such_name},
                              {'$gen_call', {From, make_ref()}, {ping}}),
    ok = sbx_rawpeer:send_ctl(C, {2, '', Dead}, hello),
    ok = sbx_rawpeer:send_ctl(C, {36, 1, From, Dead}), % UNLINK_ID_ACK nobody asked for
    ok = sbx_rawpeer:send_tick(C),
    %% Still connected, and nothing came back for any of that but ticks.
    ?assertEqual({error, timeout}, recv_non_tick(C, 1000)),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    %% gen_server call with an alias tag: answered by ALIAS_SEND {33, Sandboxd, Ref}.
    {ok, Ctl1, Reply1} = sbx_rawpeer:gen_call(C, sandboxd, {ping}, alias, 5000),
    ?assertEqual(pong, Reply1),
    ?assertMatch({33, P, R} when node(P) =:= N andalso is_reference(R), Ctl1),
    %% With a plain reference tag: answered by SEND {2, '', From}.
    {ok, Ctl2, Reply2} = sbx_rawpeer:gen_call(C, sandboxd, {ping}, plain, 5000),
    ?assertEqual(pong, Reply2),
    ?assertEqual({2, '', From}, Ctl2),
    %% MONITOR_P of a name nobody has: MONITOR_P_EXIT noproc at once.
    MRef = sbx_rawpeer:ref(C),
    ok = sbx_rawpeer:send_ctl(C, {19, From, no_such_name, MRef}),
    ?assertEqual({ok, {{21, no_such_name, From, MRef, noproc}, none}},
                 recv_non_tick(C, 5000)),
    %% LINK to a pid that does not exist: EXIT noproc.
    ok = sbx_rawpeer:send_ctl(C, {1, From, Dead}),
    ?assertEqual({ok, {{3, Dead, From, noproc}, none}}, recv_non_tick(C, 5000)),
    sbx_rawpeer:close(C),
    assert_serves(S),
    await_counts(S, Base, 5000),
    stop_clean(S).

recv_non_tick(C, Timeout) ->
    sbx_rawpeer:recv_until(C, fun(_) -> true end, Timeout).

%% (e) A wrong cookie in the raw handshake: closed without an ack. The same handshake
%% with the right cookie works (so the failure is the cookie's).
raw_wrong_cookie() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    [begin
         {ok, Sock} = sbx_rawpeer:connect(N),
         T0 = now_ms(),
         ?assertEqual({error, {ack, closed}}, sbx_rawpeer:handshake(Sock, N, #{cookie => Cookie})),
         ?assert(now_ms() - T0 =< ?PROMPT_MS),
         gen_tcp:close(Sock),
         assert_serves(S),
         await_counts(S, Base, 5000)
     end || Cookie <- ["wrong", "", sbx_test_util:cookie() ++ "x",
                       lists:duplicate(300, $a)]],
    {ok, C} = sbx_rawpeer:open(N),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    {ok, _, pong} = sbx_rawpeer:gen_call(C, sandboxd, {ping}, alias, 5000),
    sbx_rawpeer:close(C),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% A peer whose first data packets travel in the same TCP segment as its challenge
%% reply (they may arrive in one read): they are not lost.
raw_data_with_reply() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    Name = sbx_rawpeer:unique_name(),
    Cookie = sbx_test_util:cookie(),
    {ok, Sock} = sbx_rawpeer:connect(N),
    ok = sbx_rawpeer:send_name(Sock, Name, sbx_rawpeer:flags(), 11),
    {ok, <<"sok">>} = sbx_rawpeer:recv_hs(Sock, 5000),
    {ok, <<$N, _:64, Challenge:32, SbxCreation:32, _/binary>>} = sbx_rawpeer:recv_hs(Sock, 5000),
    ok = inet:setopts(Sock, [{packet, raw}]),
    C = #{sock => Sock, name => Name, creation => 11, cookie => Cookie, peer => N,
          peer_creation => SbxCreation},
    From = sbx_rawpeer:pid(C, 1),
    Tags = [sbx_rawpeer:ref(C) || _ <- [1, 2]],
    Calls = [begin
                 Body = [112, term_to_binary({6, From, '', sandboxd}),
                         term_to_binary({'$gen_call', {From, T}, {ping}})],
                 [<<(iolist_size(Body)):32>>, Body]
             end || T <- Tags],
    Mine = 12345,
    Reply = <<$r, Mine:32, (sbx_rawpeer:digest(Cookie, Challenge))/binary>>,
    ok = gen_tcp:send(Sock, [<<(byte_size(Reply)):16>>, Reply, <<0:32>> | Calls]),
    Ack = sbx_rawpeer:digest(Cookie, Mine),
    ?assertEqual({ok, <<17:16, $a, Ack/binary>>}, gen_tcp:recv(Sock, 19, 5000)),
    Got = [sbx_rawpeer:recv_until(C, fun({_, {X, _}}) -> X =:= T; (_) -> false end, 5000)
           || T <- Tags],
    ?assertMatch([{ok, {{2, '', From}, {_, pong}}}, {ok, {{2, '', From}, {_, pong}}}], Got),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    gen_tcp:close(Sock),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% (f) A node reconnecting under the name of a connection that is still up (say, it
%% restarted before the node noticed): the node answers "alive". Answering false
%% withdraws the new attempt and the old connection stays; answering true and proving
%% the cookie replaces the old connection by the new one.
raw_alive_reconnect() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    Name = sbx_rawpeer:unique_name(),
    {ok, Old} = sbx_rawpeer:open(N, #{name => Name}),
    {ok, B1} = sbx_rawpeer:connect(N),
    ok = sbx_rawpeer:send_name(B1, Name, sbx_rawpeer:flags(), 8),
    ?assertEqual({ok, <<"salive">>}, sbx_rawpeer:recv_hs(B1, 5000)),
    ok = sbx_rawpeer:send_hs(B1, <<"sfalse">>),
    ?assertMatch({closed, _, <<>>}, sbx_rawpeer:wait_closed(B1, ?PROMPT_MS)),
    ?assertMatch({ok, _, pong}, sbx_rawpeer:gen_call(Old, sandboxd, {ping}, alias, 5000)),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    {ok, B2} = sbx_rawpeer:connect(N),
    ok = sbx_rawpeer:send_name(B2, Name, sbx_rawpeer:flags(), 9),
    ?assertEqual({ok, <<"salive">>}, sbx_rawpeer:recv_hs(B2, 5000)),
    ok = sbx_rawpeer:send_hs(B2, <<"strue">>),
    {ok, New} = sbx_rawpeer:continue_handshake(B2, N, #{name => Name, creation => 9}),
    ?assertMatch({closed, _, _}, sbx_rawpeer:wait_closed(Old, ?PROMPT_MS)),
    ?assertMatch({ok, _, pong}, sbx_rawpeer:gen_call(New, sandboxd, {ping}, alias, 5000)),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    sbx_rawpeer:close(New),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% (g) Someone without the cookie connects under the name of a node that is already
%% connected (this runner). The node answers "alive"; whatever the impostor does next,
%% the real node's connection must survive: a real Erlang node only replaces the old
%% connection once the new one has proven the cookie (dist_util: "Continue handshake to
%% verify cookie and then wait for old connection to die").
raw_impostor_alive() ->
    {S, {C0, _} = Base} = start_node(),
    N = node_of(S),
    true = erlang:monitor_node(N, true),
    Me = node(),
    [begin
         {ok, Sock} = sbx_rawpeer:connect(N),
         ok = sbx_rawpeer:send_name(Sock, Me, sbx_rawpeer:flags(), 7),
         ?assertEqual({ok, <<"salive">>}, sbx_rawpeer:recv_hs(Sock, 5000)),
         ok = sbx_rawpeer:send_hs(Sock, <<"strue">>),
         {ok, <<$N, _:64, Challenge:32, _/binary>>} = sbx_rawpeer:recv_hs(Sock, 5000),
         case Next of
             wrong_digest ->
                 Digest = sbx_rawpeer:digest("not the cookie", Challenge),
                 ok = sbx_rawpeer:send_hs(Sock, <<$r, 1:32, Digest/binary>>);
             silence ->
                 ok
         end,
         R = sbx_rawpeer:wait_closed(Sock, ?HANDSHAKE_LIMIT_MS + 2000),
         ?assertMatch({closed, _, <<>>}, R),
         Down = receive
                    {nodedown, N} -> real_peer_disconnected_by_impostor
                after 500 -> real_peer_still_connected
                end,
         ?assertEqual({Next, real_peer_still_connected}, {Next, Down}),
         ?assertMatch({C1, _} when C1 =:= C0, sbx_test_util:counts(S))
     end || Next <- [wrong_digest, silence]],
    erlang:monitor_node(N, false),
    await_counts(S, Base, 5000),
    stop_clean(S).

%%% ---------------------------------------------------------------------------------
%%% 4. Peers that connect and never speak.

silent_peer() ->
    {S, Base} = start_node(),
    N = node_of(S),
    Pinger = start_pinger(N),
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, sbx_test_util:port_of(S),
                                 [binary, {active, false}]),
    T0 = now_ms(),
    R = gen_tcp:recv(Sock, 0, ?HANDSHAKE_LIMIT_MS + 5000),
    T = now_ms() - T0,
    gen_tcp:close(Sock),
    {Pings, Fails, MaxMs} = stop_pinger(Pinger),
    report("silent_peer: dropped after ~b ms; ~b pings meanwhile, slowest ~b ms",
           [T, Pings, MaxMs]),
    ?assertEqual({error, closed}, R),
    ?assert(T > 0 andalso T =< ?HANDSHAKE_LIMIT_MS),
    ?assertEqual([], Fails),
    ?assert(Pings >= 10),
    ?assert(MaxMs =< ?PING_LATENCY_MS),
    assert_serves(S),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% 50 silent sockets at once, and 10 that stop after send_name: all dropped within the
%% handshake timeout while the node keeps answering. All 60 come from 127.0.0.1, more than
%% the default per-address cap on connections in the handshake (32; sbx_stranger_tests tests
%% the caps), so this node allows 64.
silent_peers_many() ->
    S = sbx_test_util:start(#{args => ["--max-handshakes-per-addr", "64"]}),
    Base = sbx_test_util:counts(S),
    N = node_of(S),
    Port = sbx_test_util:port_of(S),
    Pinger = start_pinger(N),
    Self = self(),
    Silent = [spawn_link(fun() -> Self ! {self(), silent_one(Port, silent)} end)
              || _ <- lists:seq(1, 50)],
    Stalled = [spawn_link(fun() -> Self ! {self(), silent_one(Port, after_name)} end)
               || _ <- lists:seq(1, 10)],
    Results = [receive {P, R} -> R end || P <- Silent ++ Stalled],
    {Pings, Fails, MaxMs} = stop_pinger(Pinger),
    Times = [T || {closed, T} <- Results],
    report("silent_peers_many: ~b of 60 dropped, after ~p..~p ms; ~b pings, slowest ~b ms",
           [length(Times), lists:min([infinity | Times]), lists:max([0 | Times]), Pings, MaxMs]),
    ?assertEqual([], [R || R <- Results, not is_closed_in_time(R)]),
    ?assertEqual([], Fails),
    ?assert(Pings >= 10),
    ?assert(MaxMs =< ?PING_LATENCY_MS),
    assert_serves(S),
    await_counts(S, Base, 5000),
    stop_clean(S).

silent_one(Port, How) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, 2}]),
    case How of
        silent -> ok;
        after_name ->
            ok = sbx_rawpeer:send_name(Sock, sbx_rawpeer:unique_name(), sbx_rawpeer:flags(), 7),
            {ok, <<"sok">>} = sbx_rawpeer:recv_hs(Sock, 5000),
            {ok, <<$N, _/binary>>} = sbx_rawpeer:recv_hs(Sock, 5000)
    end,
    case sbx_rawpeer:wait_closed(Sock, ?HANDSHAKE_LIMIT_MS + 5000) of
        {closed, T, _} -> {closed, T};
        Other -> Other
    end.

is_closed_in_time({closed, T}) -> T > 0 andalso T =< ?HANDSHAKE_LIMIT_MS;
is_closed_in_time(_) -> false.

%%% ---------------------------------------------------------------------------------
%%% 5. A peer that sends requests with large answers and never reads them.

%% Each request is an rpc (rex) call of an undefined function with a 4 MiB argument: the
%% {badrpc, {'EXIT', {undef, [{sandbox, nope, [Arg], []}]}}} answer carries the argument
%% back. 80 of them are 320 MiB of answers; the node may buffer at most 256 MiB for a
%% peer, so it must drop this one, and must answer everyone else meanwhile.
slow_reader() ->
    {S, Base} = start_node(),
    N = node_of(S),
    {ok, C} = sbx_rawpeer:open(N),
    From = sbx_rawpeer:pid(C, 1),
    %% The answer is what a real node gives, when it is read.
    Small = {call, sandbox, nope, [<<"x">>], user},
    {ok, _, Answer} = sbx_rawpeer:gen_call(C, rex, Small, alias, 5000),
    ?assertEqual({badrpc, {'EXIT', {undef, [{sandbox, nope, [<<"x">>], []}]}}}, Answer),
    Pinger = start_pinger(N),
    Big = binary:copy(<<"0123456789abcdef">>, 256 * 1024), % 4 MiB
    Ctl = term_to_binary({6, From, '', rex}),
    T0 = now_ms(),
    Sent = send_big(C, Ctl, From, Big, 80, 0),
    %% Without reading anything, wait for the node to drop the connection.
    Dropped = sbx_test_util:wait_until(fun() -> sbx_test_util:counts(S) =:= Base end, 60000, 200),
    DropMs = now_ms() - T0,
    {Pings, Fails, MaxMs} = stop_pinger(Pinger),
    #{memory_bytes := Mem} = sbx_test_util:info(S),
    report("slow_reader: ~b x 4 MiB requests sent; dropped: ~p after ~b ms; ~b pings, "
           "slowest ~b ms; node RSS now ~b MiB", [Sent, Dropped, DropMs, Pings, MaxMs,
                                                   Mem div (1024 * 1024)]),
    ?assertEqual(ok, Dropped),
    ?assertMatch({closed, _, _}, sbx_rawpeer:wait_closed(C, 30000)),
    ?assertEqual([], Fails),
    ?assert(MaxMs =< ?PING_LATENCY_MS),
    assert_serves(S),
    await_counts(S, Base, 5000),
    stop_clean(S).

send_big(_, _, _, _, 0, Sent) -> Sent;
send_big(C, Ctl, From, Big, K, Sent) ->
    Msg = term_to_binary({'$gen_call', {From, make_ref()}, {call, sandbox, nope, [Big], user}}),
    case sbx_rawpeer:send_packet(C, [112, Ctl, Msg]) of
        ok -> send_big(C, Ctl, From, Big, K - 1, Sent + 1);
        {error, _} -> Sent
    end.

%%% ---------------------------------------------------------------------------------
%%% 6, 7. Ticks, with a peer whose net_ticktime is 4 s.

%% Idle for 30 s: the node keeps the peer (it must tick often enough for a 4 s
%% ticktime) and the peer never sees nodedown.
ticks_idle() ->
    {S, {C0, P0} = Base} = start_node(),
    N = node_of(S),
    {Peer, _} = sbx_test_util:start_peer("idle", peer_args(["-kernel", "net_ticktime", "4"])),
    ?assertEqual(4, peer:call(Peer, net_kernel, get_net_ticktime, [])),
    ok = peer:call(Peer, ?MODULE, peer_watch, [N]),
    Up = {C0 + 1, P0},
    ?assertEqual(Up, sbx_test_util:counts(S)),
    Samples = [begin timer:sleep(2000), sbx_test_util:counts(S) end || _ <- lists:seq(1, 15)],
    ?assertEqual([], [X || X <- Samples, X =/= Up]),
    ?assertEqual([], peer:call(Peer, ?MODULE, peer_watch_report, [])),
    ?assert(lists:member(N, peer:call(Peer, erlang, nodes, [hidden]))),
    sbx_test_util:stop_peer(Peer),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% SIGSTOP a connected, idle peer: the node must drop it within the peer's own
%% ticktime (4 s, learned from its idle ticks) + 2 s.
ticks_sigstop() ->
    {S, {C0, P0} = Base} = start_node(),
    N = node_of(S),
    {Peer, _} = sbx_test_util:start_peer("stopped", peer_args(["-kernel", "net_ticktime", "4"])),
    OsPid = sbx_test_util:peer_os_pid(Peer),
    ok = peer:call(Peer, ?MODULE, peer_watch, [N]),
    ?assertEqual({C0 + 1, P0}, sbx_test_util:counts(S)),
    timer:sleep(4000), % idle: the node sees the peer's tick cadence
    ?assertEqual({C0 + 1, P0}, sbx_test_util:counts(S)),
    T0 = now_ms(),
    sbx_test_util:os_kill(OsPid, "STOP"),
    Drop = try
               poll_drop(S, C0, T0, T0 + 20000)
           after
               sbx_test_util:os_kill(OsPid, "CONT")
           end,
    report("ticks_sigstop: dropped ~p ms after SIGSTOP", [Drop]),
    ?assert(is_integer(Drop) andalso Drop =< 6000),
    assert_serves(S),
    sbx_test_util:stop_peer(Peer),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% The node's own --net-ticktime 4: it ticks a quiet peer about every second (so a peer
%% that ticks back stays up), and drops one that falls silent after about 4 s.
ticks_node_ticktime() ->
    S = sbx_test_util:start(#{args => ["--net-ticktime", "4"]}),
    N = node_of(S),
    Pinger = start_pinger(N), % keeps this runner's own connection busy
    {C0, _} = Base = sbx_test_util:counts(S),
    {ok, C} = sbx_rawpeer:open(N),
    {Got, Status, LastTick} = tick_along(C, now_ms() + 10000, 0, 0),
    report("ticks_node_ticktime: ~b ticks from the node in 10 s of ticking back", [Got]),
    ?assertEqual(open, Status),
    ?assert(Got >= 6),
    ?assertMatch({C1, _} when C1 =:= C0 + 1, sbx_test_util:counts(S)),
    R = sbx_rawpeer:wait_closed(C, 15000),
    Drop = now_ms() - LastTick,
    report("ticks_node_ticktime: dropped ~b ms after the peer's last tick (~p)",
           [Drop, element(1, R)]),
    ?assertMatch({closed, _, _}, R),
    ?assert(Drop >= 3000 andalso Drop =< 6000),
    {_, Fails, _} = stop_pinger(Pinger),
    ?assertEqual([], Fails),
    await_counts(S, Base, 5000),
    stop_clean(S).

%% Sends a tick every second until Until, counting the ticks that arrive meanwhile.
%% {TicksReceived, open | Why, WhenTheLastTickWasSent}.
tick_along(C, Until, Got, Last) ->
    case now_ms() >= Until of
        true -> {Got, open, Last};
        false ->
            ok = sbx_rawpeer:send_tick(C),
            Sent = now_ms(),
            count_ticks(C, Sent + 1000, Until, Got, Sent)
    end.

count_ticks(C, Next, Until, Got, Last) ->
    case sbx_rawpeer:recv_packet(C, max(0, Next - now_ms())) of
        {ok, tick} -> count_ticks(C, Next, Until, Got + 1, Last);
        {ok, _} -> count_ticks(C, Next, Until, Got, Last);
        {error, timeout} -> tick_along(C, Until, Got, Last);
        {error, Why} -> {Got, Why, Last}
    end.

poll_drop(S, C0, T0, Deadline) ->
    {C, _} = sbx_test_util:counts(S),
    Now = now_ms(),
    if C =:= C0 -> Now - T0;
       Now > Deadline -> {not_dropped_after_ms, Now - T0};
       true -> timer:sleep(200), poll_drop(S, C0, T0, Deadline)
    end.

%% On a peer: connect to Node and record every nodedown for it, in a registered process.
peer_watch(Node) ->
    Self = self(),
    W = spawn(fun() ->
                      R = net_adm:ping(Node),
                      true = erlang:monitor_node(Node, true),
                      Self ! {self(), R},
                      watch_loop(Node, [])
              end),
    register(sbx_fault_watch, W),
    receive
        {W, pong} -> ok;
        {W, Other} -> {ping, Other}
    after 15000 -> no_answer
    end.

watch_loop(Node, Downs) ->
    receive
        {nodedown, Node} = D -> watch_loop(Node, [{erlang:system_time(millisecond), D} | Downs]);
        {report, From} -> From ! {sbx_fault_watch, lists:reverse(Downs)}, watch_loop(Node, Downs)
    end.

peer_watch_report() ->
    sbx_fault_watch ! {report, self()},
    receive {sbx_fault_watch, Downs} -> Downs after 5000 -> no_report end.

%%% ---------------------------------------------------------------------------------
%%% 8. A real peer with the wrong cookie.

wrong_cookie() ->
    {S, {C0, P0} = Base} = start_node(),
    N = node_of(S),
    {Bad, _} = sbx_test_util:start_peer("badcookie", peer_args([])),
    true = peer:call(Bad, erlang, set_cookie, [N, sbx_not_the_cookie]),
    Tries = [begin
                 T0 = now_ms(),
                 R = peer:call(Bad, net_adm, ping, [N], 30000),
                 {R, now_ms() - T0}
             end || _ <- lists:seq(1, 5)],
    report("wrong_cookie: ~p", [Tries]),
    ?assertEqual([], [T || {R, _} = T <- Tries, R =/= pang]),
    ?assertEqual([], [T || {_, Ms} = T <- Tries, Ms > ?PROMPT_MS]),
    ?assertEqual({badrpc, nodedown},
                 peer:call(Bad, rpc, call, [N, sandbox, ping, [], 10000], 30000)),
    ?assertEqual({C0, P0}, sbx_test_util:counts(S)),
    %% A peer with the right cookie is served meanwhile.
    {Good, _} = sbx_test_util:start_peer("goodcookie", peer_args([])),
    ?assertEqual(pong, peer:call(Good, net_adm, ping, [N])),
    ?assertEqual(pong, peer:call(Good, erpc, call, [N, sandbox, ping, []])),
    ?assertEqual({C0 + 1, P0}, sbx_test_util:counts(S)),
    ?assertEqual(pang, peer:call(Bad, net_adm, ping, [N], 30000)),
    sbx_test_util:stop_peer(Good),
    sbx_test_util:stop_peer(Bad),
    await_counts(S, Base, 5000),
    stop_clean(S).

%%% ---------------------------------------------------------------------------------
%%% Helpers.

start_node() ->
    S = sbx_test_util:start(),
    {S, sbx_test_util:counts(S)}.

node_of(#{node := N}) -> N.

now_ms() -> erlang:monotonic_time(millisecond).

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

%% Peers get this module's directory in their code path.
peer_args(Extra) ->
    ["-pa", filename:absname(filename:dirname(code:which(?MODULE))) | Extra].

%% This runner's rpc ping is answered pong, promptly.
assert_serves(S) ->
    T0 = now_ms(),
    ?assertEqual(pong, rpc:call(node_of(S), sandbox, ping, [], 5000)),
    ?assert(now_ms() - T0 =< ?PING_LATENCY_MS).

%% counts/1 reaches Want within Ms.
await_counts(S, Want, Ms) ->
    case sbx_test_util:wait_until(fun() -> sbx_test_util:counts(S) =:= Want end, Ms, 100) of
        ok -> ok;
        {error, timeout} ->
            error({counts_not_back, #{want => Want, after_ms => Ms,
                                      got => catch sbx_test_util:counts(S)}})
    end.

%% SIGTERM: the node exits 0, and its log holds no sanitizer report.
stop_clean(S) ->
    Status = sbx_test_util:stop(S),
    Log = sbx_test_util:log_text(S),
    Report = case re:run(Log, "AddressSanitizer|LeakSanitizer|runtime error:|"
                              "UndefinedBehaviorSanitizer", [{capture, first, index}]) of
                 nomatch -> none;
                 {match, [{At, _}]} -> binary:part(Log, At, min(3000, byte_size(Log) - At))
             end,
    ?assertEqual({exit_status, 0, sanitizer_report, none},
                 {exit_status, Status, sanitizer_report, Report}).

%% Pings the node from this runner every 200 ms until stopped.
start_pinger(N) ->
    spawn_link(fun() -> pinger_loop(N, 0, [], 0) end).

pinger_loop(N, Count, Fails, Max) ->
    receive
        {stop, From} -> From ! {pinger, self(), {Count, lists:reverse(Fails), Max}}
    after 200 ->
            T0 = now_ms(),
            R = rpc:call(N, sandbox, ping, [], 5000),
            Ms = now_ms() - T0,
            case R of
                pong -> pinger_loop(N, Count + 1, Fails, max(Max, Ms));
                _ -> pinger_loop(N, Count + 1, [{R, Ms} | Fails], max(Max, Ms))
            end
    end.

stop_pinger(P) ->
    P ! {stop, self()},
    receive {pinger, P, Stats} -> Stats after 15000 -> error(pinger_stuck) end.
