%% Distribution over TLS (issue 13, "It must show" 1-3): a sandboxd started with
%% --proto-dist inet_tls and an optfile with verify_peer, called by real erl nodes started with
%% -proto_dist inet_tls and the same kind of optfile. Certificates are made here with openssl:
%% a CA the cluster trusts, another CA, a node certificate of each.
%%
%% The runner node speaks plain TCP, so it drives TLS peers over their standard_io (peer
%% module) and they make the calls; the runner's own plain attempts are the "plain peer"
%% case. Run on every OTP of the matrix (scripts/test.sh): peers are the runner's OTP.
-module(sbx_tls_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% Run inside a TLS peer.
-export([calls_in_peer/1, load_in_peer/3, beam_in_peer/3]).

-define(U, sbx_test_util).

tests() ->
    [{ping_rpc_erpc_gen_server_over_tls, 120000, fun calls/0},
     {erpc_50_callers_x_1000_over_tls, 300000, fun load/0},
     {wrong_ca_and_no_cert_refused, 120000, fun refused_certs/0},
     {plain_peer_vs_tls_node_both_ways, 120000, fun plain_vs_tls/0},
     {net_ping_initiates_tls_and_checks_the_server, 120000, fun net_ping_out/0},
     {beam_node_remote_call_and_trace_over_tls, 300000, fun beam_node/0},
     {optfile_unknown_key_refused_at_start, 60000, fun unknown_key/0}].

%%% ---------------------------------------------------------------------------------
%%% Certificates, optfiles, nodes

report(Fmt, Args) -> io:format("      " ++ Fmt ++ "~n", Args).

sh(Cmd) ->
    Out = os:cmd(Cmd ++ " 2>&1; echo \"rc=$?\""),
    case lists:reverse(string:trim(Out)) of
        "0=cr" ++ _ -> ok;
        _ -> error({command_failed, Cmd, Out})
    end.

%% Made once per run (make_certs/0). A directory with ca.pem, otherca.pem and for each of node (signed by ca) and rogue (signed
%% by otherca) a certificate and key naming this host, localhost and 127.0.0.1.
certs() ->
    case persistent_term:get({?MODULE, certs}, undefined) of
        undefined ->
            D = make_certs(),
            persistent_term:put({?MODULE, certs}, D),
            D;
        D -> D
    end.

make_certs() ->
    Dir = filename:absname(filename:join(?U:log_dir(), ?U:unique("tls_certs"))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Host = ?U:host(),
    Ca = fun(N) ->
                 sh(io_lib:format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=~s"
                                  " -keyout ~s/~s.key -out ~s/~s.pem", [N, Dir, N, Dir, N]))
         end,
    Leaf = fun(N, CaName) ->
                   ok = file:write_file(filename:join(Dir, N ++ ".ext"),
                                        ["subjectAltName=DNS:", Host,
                                         ",DNS:localhost,IP:127.0.0.1\n"]),
                   sh(io_lib:format("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=~s"
                                    " -keyout ~s/~s.key -out ~s/~s.csr", [N, Dir, N, Dir, N])),
                   sh(io_lib:format("openssl x509 -req -days 2 -in ~s/~s.csr -CA ~s/~s.pem"
                                    " -CAkey ~s/~s.key -CAcreateserial -out ~s/~s.pem"
                                    " -extfile ~s/~s.ext",
                                    [Dir, N, Dir, CaName, Dir, CaName, Dir, N, Dir, N]))
           end,
    Ca("ca"), Ca("otherca"),
    Leaf("node", "ca"), Leaf("rogue", "otherca"),
    Dir.

%% An optfile: Who's certificate ("node" | "rogue" | "none"), trusting CaName, verify_peer both
%% ways, a client certificate required.
optfile(Dir, Who, CaName) ->
    P = fun(F) -> io_lib:format("~p", [filename:join(Dir, F)]) end,
    Cert = case Who of
               "none" -> "";
               _ -> ["{certfile, ", P(Who ++ ".pem"), "}, {keyfile, ", P(Who ++ ".key"), "}, "]
           end,
    Ca = ["{cacertfile, ", P(CaName ++ ".pem"), "}"],
    ServerCert = case Who of
                     "none" -> ["{certfile, ", P("node.pem"), "}, {keyfile, ", P("node.key"), "}, "];
                     _ -> Cert
                 end,
    Text = ["[{server, [", ServerCert, Ca, ", {verify, verify_peer}, {fail_if_no_peer_cert, true},"
            " {secure_renegotiate, true}, {versions, ['tlsv1.2', 'tlsv1.3']}]},\n"
            " {client, [", Cert, Ca, ", {verify, verify_peer}, {secure_renegotiate, true},"
            " {depth, 5}]}].\n"],
    F = filename:join(Dir, Who ++ "_" ++ CaName ++ ".conf"),
    ok = file:write_file(F, Text),
    F.

%% A sandboxd speaking TLS with the node certificate; wait with a TLS peer's ping.
start_tls_sandboxd(Dir, Opts) ->
    Conf = optfile(Dir, "node", "ca"),
    ?U:start_isolated(Opts#{args => ["--proto-dist", "inet_tls", "--ssl-dist-optfile", Conf],
                            wait => false}).

%% A TLS peer node (the runner's OTP) with Who's certificate trusting CaName.
tls_peer(Dir, Who, CaName) ->
    Conf = optfile(Dir, Who, CaName),
    Ebin = filename:dirname(code:which(?MODULE)),
    ?U:start_peer("tlspeer", ["-proto_dist", "inet_tls", "-ssl_dist_optfile", Conf,
                              "-pa", Ebin]).

%% Waits until the TLS peer reaches node N (sandboxd just started).
await_pong(Peer, N) ->
    ok = ?U:wait_until(fun() -> pcall(Peer, net_adm, ping, [N]) =:= pong end, 60000).

pcall(Peer, M, F, A) -> peer:call(Peer, M, F, A, 280000).

%% info() of N asked from the TLS peer.
info_via(Peer, N) -> pcall(Peer, rpc, call, [N, sandbox, info, [], 10000]).

%% Waits until N has no handshake pending and Conns connections up, as seen from Peer.
await_baseline(Peer, N, Conns) ->
    ok = ?U:wait_until(
           fun() ->
                   case info_via(Peer, N) of
                       #{connections := Conns, handshakes := #{pending := 0}} -> true;
                       _ -> false
                   end
           end, 60000).

%%% ---------------------------------------------------------------------------------
%%% Tests

calls() ->
    Dir = certs(),
    #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Peer, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Peer, N),
    ?assertEqual(ok, pcall(Peer, ?MODULE, calls_in_peer, [N])),
    ok.

%% In the peer: every call form answers over TLS.
calls_in_peer(N) ->
    pong = net_adm:ping(N),
    pong = rpc:call(N, sandbox, ping, []),
    pong = erpc:call(N, sandbox, ping, [], 10000),
    pong = gen_server:call({sandboxd, N}, ping),
    #{node := N, connections := C} = rpc:call(N, sandbox, info, []),
    true = C >= 1,
    true = lists:member(N, nodes(hidden)),
    ok.

load() ->
    Dir = certs(),
    #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Peer, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Peer, N),
    T0 = erlang:monotonic_time(millisecond),
    {Good, Bad} = pcall(Peer, ?MODULE, load_in_peer, [N, 50, 1000]),
    report("50 x 1000 erpc calls over TLS: ~b ms", [erlang:monotonic_time(millisecond) - T0]),
    ?assertEqual({50000, []}, {Good, Bad}),
    await_baseline(Peer, N, 1),
    ok.

%% In the peer: Callers processes each make Calls erpc calls whose answer names the call (an
%% undef error carries its arguments back): {CorrectAnswers, [WrongAnswer]}.
load_in_peer(N, Callers, Calls) ->
    Me = self(),
    Pids = [spawn_link(fun() -> Me ! {done, self(), caller(N, K, Calls, 0, [])} end)
            || K <- lists:seq(1, Callers)],
    lists:foldl(fun(P, {G, B}) ->
                        receive {done, P, {G1, B1}} -> {G + G1, B1 ++ B} end
                end, {0, []}, Pids).

caller(_N, _K, 0, Good, Bad) -> {Good, lists:sublist(Bad, 5)};
caller(N, K, J, Good, Bad) ->
    try erpc:call(N, sandbox, tls_echo, [K, J], 30000) of
        Other -> caller(N, K, J - 1, Good, [{K, J, Other} | Bad])
    catch
        error:{exception, undef, [{sandbox, tls_echo, [K, J], _}]} ->
            caller(N, K, J - 1, Good + 1, Bad);
        C:E -> caller(N, K, J - 1, Good, [{K, J, C, E} | Bad])
    end.

refused_certs() ->
    Dir = certs(),
    S = #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Good, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Good, N),
    {Rogue, _} = tls_peer(Dir, "rogue", "otherca"),
    ?assertEqual(pang, pcall(Rogue, net_adm, ping, [N])),
    %% Trusts the right CA but has no certificate of its own.
    {NoCert, _} = tls_peer(Dir, "none", "ca"),
    ?assertEqual(pang, pcall(NoCert, net_adm, ping, [N])),
    %% The node keeps serving, and holds nothing of the refused peers.
    ?assertEqual(ok, pcall(Good, ?MODULE, calls_in_peer, [N])),
    await_baseline(Good, N, 1),
    Log = ?U:log_text(S),
    report("sandboxd's reasons: ~p", [[L || L <- binary:split(Log, <<"\n">>, [global]),
                                           binary:match(L, <<"TLS:">>) =/= nomatch]]),
    ?assertNotEqual(nomatch, binary:match(Log, <<"peer did not return a certificate">>)),
    ok.

plain_vs_tls() ->
    Dir = certs(),
    %% A plain peer (this runner) against a TLS sandboxd.
    #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Good, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Good, N),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual(pang, net_adm:ping(N)),
    report("plain ping of a TLS sandboxd: pang after ~b ms", [erlang:monotonic_time(millisecond) - T0]),
    ?assertEqual(ok, pcall(Good, ?MODULE, calls_in_peer, [N])),
    await_baseline(Good, N, 1),
    %% A TLS peer against a plain sandboxd.
    Plain = #{node := PN} = ?U:start_isolated(),
    Base = ?U:counts(Plain),
    T1 = erlang:monotonic_time(millisecond),
    ?assertEqual(pang, pcall(Good, net_adm, ping, [PN])),
    report("TLS ping of a plain sandboxd: pang after ~b ms", [erlang:monotonic_time(millisecond) - T1]),
    pong = net_adm:ping(PN),
    ok = ?U:wait_until(fun() ->
                               #{handshakes := #{pending := P}} = ?U:info(Plain),
                               P =:= 0 andalso ?U:counts(Plain) =:= Base
                       end, 60000),
    ok.

net_ping_out() ->
    Dir = certs(),
    S = #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Good, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Good, N),
    %% Another TLS node, not yet connected: sandboxd dials it over TLS.
    {_Other, ON} = tls_peer(Dir, "node", "ca"),
    ?assertEqual(pong, pcall(Good, rpc, call, [N, sandbox, net_ping, [ON]])),
    %% A node whose certificate comes from another CA: sandboxd refuses it (verify_peer).
    {_Rogue, RN} = tls_peer(Dir, "rogue", "otherca"),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual(pang, pcall(Good, rpc, call, [N, sandbox, net_ping, [RN]])),
    T1 = erlang:monotonic_time(millisecond),
    %% A plain node (this runner): it waits for a handshake message that never comes, so this
    %% one ends at the handshake timeout.
    ?assertEqual(pang, pcall(Good, rpc, call, [N, sandbox, net_ping, [node()]])),
    report("net_ping pang: other CA after ~b ms, plain node after ~b ms",
           [T1 - T0, erlang:monotonic_time(millisecond) - T1]),
    ?assertNotEqual(nomatch, binary:match(?U:log_text(S), <<"certificate verify failed">>)),
    await_baseline(Good, N, 2),
    ok.

beam_node() ->
    Dir = certs(),
    #{node := N} = start_tls_sandboxd(Dir, #{}),
    {Good, _} = tls_peer(Dir, "node", "ca"),
    await_pong(Good, N),
    Id = list_to_binary(?U:unique("tlsbeam")),
    ?assertMatch({ok, _}, pcall(Good, ?MODULE, beam_in_peer, [N, Id, {ok, [["inet_tls"]]}])),
    ok.

%% In the peer: a beam_node sandbox of the TLS sandboxd answers remote_call, and a trace of a
%% process in it reaches this node's subscriber; destroy leaves nothing.
beam_in_peer(N, Id, Proto) ->
    C = fun(F, A) -> rpc:call(N, sandbox, F, A, 150000) end,
    Ebin = list_to_binary(filename:dirname(code:which(?MODULE))),
    %% A node starting ssl on a crowded 2-core machine may need more than the default 30 s
    %% to come up: the deadline is the health check's (a condition, waited for, not a timing).
    Health = #{type => exec, cmd => [<<"true">>], timeout_ms => 120000},
    {ok, #{status := running}} = C(create, [Id, beam_node, #{code_paths => [Ebin],
                                                             health_check => Health}]),
    {ok, #{ref := Ref}} = C(get, [Id]),
    SNode = if is_atom(Ref) -> Ref; is_binary(Ref) -> binary_to_atom(Ref) end,
    SNode = C(remote_call, [Id, erlang, node, []]),
    {badrpc, {'EXIT', {badarith, _}}} = C(remote_call, [Id, erlang, '/', [1, 0]]),
    %% The sandbox's node itself runs TLS distribution.
    Proto = C(remote_call, [Id, init, get_argument, [proto_dist]]),
    %% sbx_trace_tests' counter server, traced as in that suite.
    {ok, Pid} = C(remote_call, [Id, gen_server, start, [{local, sbx_trace_counter},
                                                        sbx_trace_tests, 0, []]]),
    {ok, _} = C(subscribe, [Id, self(), [trace]]),
    {ok, _} = C(trace_start, [Id, #{pids => [Pid], flags => ['receive'], max_events => 3}]),
    [{ok, _} = {ok, C(remote_call, [Id, gen_server, call, [sbx_trace_counter, incr]])}
     || _ <- [1, 2, 3]],
    Events = collect(Id, []),
    3 = length(Events),
    ok = C(destroy, [Id]),
    {ok, Events}.

collect(Id, Acc) ->
    receive
        {sandbox_event, Id, trace, #{event := trace_end}} -> lists:reverse(Acc);
        {sandbox_event, Id, trace, Ev} -> collect(Id, [Ev | Acc])
    after 20000 -> {no_trace_end, lists:reverse(Acc)}
    end.

unknown_key() ->
    Dir = certs(),
    Conf = filename:join(Dir, "bad.conf"),
    ok = file:write_file(Conf, "[{server, [{certfile, \"/nonexistent\"}, "
                               "{ciphers, [\"AES128-SHA\"]}]}].\n"),
    S = ?U:start(#{args => ["--proto-dist", "inet_tls", "--ssl-dist-optfile", Conf],
                   wait => false}),
    ok = ?U:wait_until(fun() -> binary:match(?U:log_text(S), <<"ciphers">>) =/= nomatch end,
                       10000),
    report("~s", [string:trim(?U:log_text(S))]),
    %% It exits (status 1, a failed start) rather than run without the options it was given.
    #{os_pid := OsPid} = S,
    ok = ?U:wait_until(fun() -> not os_running(OsPid) end, 10000),
    ok.

os_running(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} -> [_, Rest] = binary:split(Stat, <<") ">>), binary:first(Rest) =/= $Z;
        _ -> false
    end.
