%% A distribution peer made by hand on gen_tcp, so that tests can send sandboxd bytes
%% a real Erlang node never would.
%%
%% It connects like a real node does (version 6 handshake, this side initiating):
%%   -> send_name       'N' Flags:64 Creation:32 NameLen:16 Name      (2-byte length)
%%   <- send_status     's' "ok"
%%   <- send_challenge  'N' Flags:64 Challenge:32 Creation:32 NameLen:16 Name
%%   -> challenge_reply 'r' MyChallenge:32 md5(Cookie ++ integer_to_list(Challenge))
%%   <- challenge_ack   'a' md5(Cookie ++ integer_to_list(MyChallenge))
%% then switches the socket to {packet, raw} and frames data packets itself
%% (4-byte length, 0 = tick, body 112 | control term | optional message term), so that a
%% test can also write any bytes at all.
%%
%% A connection is a map: #{sock, name, creation, cookie, peer, peer_flags,
%% peer_creation}. name is this fake node's name, peer the sandboxd node.
-module(sbx_rawpeer).

-export([flags/0, unique_name/0, digest/2,
         connect/1, send_name/4, send_hs/2, recv_hs/2, handshake/3, continue_handshake/3,
         open/1, open/2,
         send_raw/2, send_packet/2, send_tick/1, send_ctl/2, send_ctl/3,
         recv_packet/2, recv_until/3, wait_closed/2, close/1,
         make_pid/4, pid/2, make_ref/2, ref/1, gen_call/5]).

%% Hidden (no PUBLISHED), the OTP 25 mandatory set, monitors, UNLINK_ID, SPAWN, V4_NC,
%% ALIAS: see the dist-protocol notes.
-define(FLAGS, 16#D07070FBC).
-define(STEP_TIMEOUT, 5000).
-define(CREATION, 16#5BD0C0DE).

flags() -> ?FLAGS.

unique_name() ->
    list_to_atom(sbx_test_util:unique("raw") ++ "@" ++ sbx_test_util:host()).

%% The handshake digest: md5 of the cookie followed by the challenge in decimal.
digest(Cookie, Challenge) ->
    erlang:md5([Cookie, integer_to_list(Challenge)]).

%% A TCP connection to the node's distribution port (found through epmd), in
%% {packet, 2} mode for the handshake. {ok, Socket} | {error, Why}.
connect(Node) ->
    Port = sbx_test_util:port_of(#{node => Node}),
    gen_tcp:connect({127, 0, 0, 1}, Port,
                    [binary, {active, false}, {packet, 2}, {nodelay, true}], ?STEP_TIMEOUT).

send_name(Sock, Name, Flags, Creation) ->
    N = atom_to_binary(Name, utf8),
    send_hs(Sock, <<$N, Flags:64, Creation:32, (byte_size(N)):16, N/binary>>).

%% One handshake message (the socket adds the 2-byte length).
send_hs(Sock, Body) -> gen_tcp:send(Sock, Body).

recv_hs(Sock, Timeout) -> gen_tcp:recv(Sock, 0, Timeout).

%% Runs the handshake on a socket from connect/1 against node Peer.
%% Opts: name, cookie (a string), flags, creation.
%% {ok, Conn} | {error, {Step, What}} where Step is status, challenge or ack and What
%% is closed, timeout, or the unexpected message.
handshake(Sock, Peer, Opts) ->
    Conn0 = conn0(Sock, Peer, Opts#{name => maps:get(name, Opts, unique_name())}),
    #{name := Name, creation := Creation} = Conn0,
    ok = send_name(Sock, Name, maps:get(flags, Opts, ?FLAGS), Creation),
    case recv_hs(Sock, ?STEP_TIMEOUT) of
        {ok, <<"sok">>} -> challenge(Conn0);
        {ok, Other} -> {error, {status, Other}};
        {error, Why} -> {error, {status, Why}}
    end.

%% The rest of the handshake, from the challenge on, for a test that sent send_name and
%% dealt with the status itself (say, answered "alive" with "true"). Opts as for
%% handshake/3; name (and creation, if one was given to send_name/4) must be the ones sent.
continue_handshake(Sock, Peer, #{name := _} = Opts) ->
    challenge(conn0(Sock, Peer, Opts)).

conn0(Sock, Peer, Opts) ->
    #{sock => Sock, name => maps:get(name, Opts), peer => Peer,
      creation => maps:get(creation, Opts, ?CREATION),
      cookie => maps:get(cookie, Opts, sbx_test_util:cookie())}.

challenge(#{sock := Sock, cookie := Cookie, peer := Peer} = Conn) ->
    PeerBin = atom_to_binary(Peer, utf8),
    case recv_hs(Sock, ?STEP_TIMEOUT) of
        {ok, <<$N, PFlags:64, Challenge:32, PCreation:32, NLen:16, PeerBin:NLen/binary,
               _/binary>>} ->
            Mine = rand:uniform(16#FFFFFFFF),
            ok = send_hs(Sock, <<$r, Mine:32, (digest(Cookie, Challenge))/binary>>),
            Want = digest(Cookie, Mine),
            case recv_hs(Sock, ?STEP_TIMEOUT) of
                {ok, <<$a, Want:16/binary>>} ->
                    ok = inet:setopts(Sock, [{packet, raw}]),
                    {ok, Conn#{peer_flags => PFlags, peer_creation => PCreation}};
                {ok, Other} -> {error, {ack, Other}};
                {error, Why} -> {error, {ack, Why}}
            end;
        {ok, Other} -> {error, {challenge, Other}};
        {error, Why} -> {error, {challenge, Why}}
    end.

%% connect + handshake. {ok, Conn} | {error, Why}.
open(Node) -> open(Node, #{}).
open(Node, Opts) ->
    case connect(Node) of
        {ok, Sock} ->
            case handshake(Sock, Node, Opts) of
                {ok, Conn} -> {ok, Conn};
                Err -> gen_tcp:close(Sock), Err
            end;
        Err -> Err
    end.

close(#{sock := Sock}) -> gen_tcp:close(Sock).

%% Any bytes, unframed.
send_raw(#{sock := Sock}, Bytes) -> gen_tcp:send(Sock, Bytes).

%% One data packet with a correct length prefix around Body.
send_packet(#{sock := Sock}, Body) ->
    gen_tcp:send(Sock, [<<(iolist_size(Body)):32>>, Body]).

send_tick(#{sock := Sock}) -> gen_tcp:send(Sock, <<0:32>>).

send_ctl(Conn, Ctl) -> send_packet(Conn, [112, term_to_binary(Ctl)]).
send_ctl(Conn, Ctl, Msg) -> send_packet(Conn, [112, term_to_binary(Ctl), term_to_binary(Msg)]).

%% The next packet: {ok, tick} | {ok, {Ctl, Msg}} (Msg = none when absent)
%% | {ok, {raw, Body}} for a body not starting with 112 | {error, closed | timeout | ...}.
recv_packet(#{sock := Sock}, Timeout) ->
    case gen_tcp:recv(Sock, 4, Timeout) of
        {ok, <<0:32>>} -> {ok, tick};
        {ok, <<Len:32>>} ->
            case gen_tcp:recv(Sock, Len, Timeout) of
                {ok, <<112, Rest/binary>>} -> {ok, decode_terms(Rest)};
                {ok, Body} -> {ok, {raw, Body}};
                {error, Why} -> {error, Why}
            end;
        {error, Why} -> {error, Why}
    end.

decode_terms(Bin) ->
    {Ctl, Used} = binary_to_term(Bin, [used]),
    case Used =:= byte_size(Bin) of
        true -> {Ctl, none};
        false -> {Ctl, binary_to_term(binary:part(Bin, Used, byte_size(Bin) - Used))}
    end.

%% Reads packets, skipping ticks and those Pred({Ctl, Msg}) rejects, until one is
%% accepted: {ok, {Ctl, Msg}} | {error, timeout | closed | ...}.
recv_until(Conn, Pred, Timeout) ->
    recv_until(Conn, Pred, erlang:monotonic_time(millisecond) + Timeout, Timeout).

recv_until(Conn, Pred, Deadline, _) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    case recv_packet(Conn, Left) of
        {ok, tick} -> recv_until(Conn, Pred, Deadline, Left);
        {ok, {_, _} = P} ->
            case Pred(P) of
                true -> {ok, P};
                false -> recv_until(Conn, Pred, Deadline, Left)
            end;
        {error, Why} -> {error, Why}
    end.

%% Reads (and keeps the first 4 KiB of) whatever arrives until the other side closes.
%% {closed, Ms, Bytes}: closed after Ms milliseconds | {open, Bytes}: still open after
%% Timeout. A socket or a connection map.
wait_closed(#{sock := Sock}, Timeout) -> wait_closed(Sock, Timeout);
wait_closed(Sock, Timeout) ->
    ok = inet:setopts(Sock, [{packet, raw}]),
    T0 = erlang:monotonic_time(millisecond),
    wait_closed(Sock, T0, T0 + Timeout, <<>>).

wait_closed(Sock, T0, Deadline, Acc) ->
    Now = erlang:monotonic_time(millisecond),
    case gen_tcp:recv(Sock, 0, max(0, Deadline - Now)) of
        {ok, Data} ->
            Kept = case byte_size(Acc) < 4096 of
                       true -> <<Acc/binary, Data/binary>>;
                       false -> Acc
                   end,
            wait_closed(Sock, T0, Deadline, Kept);
        {error, timeout} ->
            {open, Acc};
        {error, _} -> % closed, econnreset
            gen_tcp:close(Sock),
            {closed, erlang:monotonic_time(millisecond) - T0, Acc}
    end.

%% A pid of node Node, built from the external format (NEW_PID_EXT).
make_pid(Node, Num, Serial, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Num:32, Serial:32, Creation:32>>).

%% A pid of the fake node.
pid(#{name := Name, creation := Creation}, Num) -> make_pid(Name, Num, 0, Creation).

%% A fresh reference of node Node (NEWER_REFERENCE_EXT, 3 words).
make_ref(Node, Creation) ->
    N = atom_to_binary(Node, utf8),
    U = erlang:unique_integer([positive]),
    binary_to_term(<<131, 90, 3:16, 119, (byte_size(N)), N/binary, Creation:32,
                     (U band 16#3FFFF):32, (U bsr 18):32, (rand:uniform(16#FFFFFFFF)):32>>).

ref(#{name := Name, creation := Creation}) -> make_ref(Name, Creation).

%% gen_server:call by hand: REG_SEND {6, From, '', Name} + {'$gen_call', {From, Tag},
%% Request}, where Tag is [alias | Ref] (TagKind alias, what OTP 24+ sends) or a plain
%% Ref (plain). Waits for the message {Tag, Reply}.
%% {ok, Ctl, Reply} (Ctl: the control message it came with) | {error, Why}.
gen_call(Conn, Name, Request, TagKind, Timeout) ->
    From = pid(Conn, 1),
    Ref = ref(Conn),
    Tag = case TagKind of
              alias -> [alias | Ref];
              plain -> Ref
          end,
    ok = send_ctl(Conn, {6, From, '', Name}, {'$gen_call', {From, Tag}, Request}),
    case recv_until(Conn, fun({_, {T, _}}) -> T =:= Tag; (_) -> false end, Timeout) of
        {ok, {Ctl, {Tag, Reply}}} -> {ok, Ctl, Reply};
        {error, Why} -> {error, Why}
    end.
