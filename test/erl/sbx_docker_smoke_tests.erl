%% The test infrastructure the Docker suites rely on (scripts/docker-up.sh): the engine answers
%% on its unix socket, reports the API version it speaks, has the registry-free test image, and
%% runs a container from it. Spoken to directly over the Engine API (gen_tcp on the unix socket,
%% HTTP/1.0), not through sandboxd.
%%
%% scripts/test.sh exports SANDBOXD_DOCKER=1 once docker-up.sh has brought the engine up.
%% Without it every test is skipped ({skip, no_docker}), unless SANDBOXD_REQUIRE_DOCKER=1
%% (as in .ci/run), where a missing engine is a failure.
-module(sbx_docker_smoke_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).
%% For later Docker suites (sbx_docker_tls_tests runs the four checks again over TLS).
-export([docker_wanted/0, socket/0, request/3, request/4, with_endpoint/2,
         ping/0, version/0, image/0, container_runs/0]).

-define(IMAGE, "sandboxd-test/busybox:1").

tests() ->
    [{engine_answers_ping, 20000, guarded(fun ping/0)},
     {engine_version_api, 20000, guarded(fun version/0)},
     {test_image_present, 20000, guarded(fun image/0)},
     {container_runs_from_test_image, 60000, guarded(fun container_runs/0)}].

%% ok | {skip, no_docker}; raises when Docker is required but not up.
docker_wanted() ->
    case {os:getenv("SANDBOXD_DOCKER"), os:getenv("SANDBOXD_REQUIRE_DOCKER")} of
        {"1", _} -> ok;
        {_, "1"} -> error({docker_required_but_not_up,
                           "SANDBOXD_REQUIRE_DOCKER=1 and scripts/docker-up.sh did not bring "
                           "the engine up; see _build/dockerd.log"});
        _ -> {skip, no_docker}
    end.

guarded(Fun) ->
    fun() ->
        case docker_wanted() of
            ok -> Fun();
            Skip -> Skip
        end
    end.

ping() ->
    {200, _, Body} = request(get, "/_ping", <<>>),
    ?assertEqual(<<"OK">>, Body).

%% /version names the API version to negotiate; never assume one.
version() ->
    {200, _, Body} = request(get, "/version", <<>>),
    Api = json_string(Body, "ApiVersion"),
    MinApi = json_string(Body, "MinAPIVersion"),
    Version = json_string(Body, "Version"),
    {match, [Major, Minor]} = re:run(Api, "^([0-9]+)\\.([0-9]+)$", [{capture, all_but_first, list}]),
    %% Everything issue 4 uses exists from API 1.24 on.
    ?assert({list_to_integer(Major), list_to_integer(Minor)} >= {1, 24}),
    io:format("      engine ~s, API ~s (min ~s)~n", [Version, Api, MinApi]).

image() ->
    {Status, _, Body} = request(get, "/images/" ++ ?IMAGE ++ "/json", <<>>),
    ?assertEqual(200, Status, Body),
    ?assertMatch({match, _}, re:run(Body, "\"/bin/sh\"")).

%% create, start, wait, logs (8-byte stream frames), remove.
container_runs() ->
    Name = "sbx_smoke_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
    Create = iolist_to_binary(
               ["{\"Image\":\"", ?IMAGE, "\",\"Cmd\":[\"sh\",\"-c\",\"echo hi; echo oops >&2; exit 3\"],"
                "\"Labels\":{\"sandboxd.test\":\"smoke\"},\"HostConfig\":{\"NetworkMode\":\"none\"}}"]),
    {201, _, Created} = request(post, "/containers/create?name=" ++ Name, Create,
                                [{"Content-Type", "application/json"}]),
    Id = json_string(Created, "Id"),
    try
        {204, _, _} = request(post, "/containers/" ++ Id ++ "/start", <<>>),
        {200, _, Waited} = request(post, "/containers/" ++ Id ++ "/wait", <<>>),
        ?assertMatch({match, _}, re:run(Waited, "\"StatusCode\":\\s*3\\b")),
        {200, _, Logs} = request(get, "/containers/" ++ Id ++ "/logs?stdout=1&stderr=1", <<>>),
        ?assertEqual([{1, <<"hi\n">>}, {2, <<"oops\n">>}], lists:sort(frames(Logs)))
    after
        request(delete, "/containers/" ++ Id ++ "?force=1&v=1", <<>>)
    end,
    {404, _, _} = request(get, "/containers/" ++ Id ++ "/json", <<>>).

%% --- a minimal Engine API client --------------------------------------------------------

socket() ->
    case os:getenv("DOCKER_HOST") of
        "unix://" ++ Path -> Path;
        _ -> "/var/run/docker.sock"
    end.

%% Runs Fun with this process's requests going to Endpoint: {tls, Host, Port, CertDir}
%% (CertDir holding ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH) or {local, Path}.
with_endpoint(Endpoint, Fun) ->
    Old = put(sbx_docker_endpoint, Endpoint),
    try Fun() after put(sbx_docker_endpoint, Old) end.

endpoint() ->
    case get(sbx_docker_endpoint) of
        undefined -> {local, socket()};
        E -> E
    end.

request(Method, Path, Body) -> request(Method, Path, Body, []).

%% -> {Status, Headers, Body}. HTTP/1.0 so that the engine answers unchunked and closes.
request(Method, Path, Body, Headers) ->
    {Mod, S} = connect(endpoint()),
    try
        M = string:uppercase(atom_to_list(Method)),
        Req = [M, " ", Path, " HTTP/1.0\r\nHost: docker\r\n",
               [[K, ": ", V, "\r\n"] || {K, V} <- Headers],
               "Content-Length: ", integer_to_list(iolist_size(Body)), "\r\n\r\n", Body],
        ok = Mod:send(S, Req),
        parse(read_all(Mod, S, []))
    after
        Mod:close(S)
    end.

%% The engine's certificate must lead to ca.pem and name the host (verify_peer).
connect({local, Path}) ->
    {ok, S} = gen_tcp:connect({local, Path}, 0, [local, binary, {active, false}], 5000),
    {gen_tcp, S};
connect({tls, Host, Port, Dir}) ->
    {ok, _} = application:ensure_all_started(ssl),
    %% An address as a tuple, so that the certificate's IP subjectAltName is what is checked.
    Addr = case inet:parse_address(Host) of {ok, A} -> A; _ -> Host end,
    {ok, S} = ssl:connect(Addr, Port, [binary, {active, false}, {verify, verify_peer},
                                       {cacertfile, filename:join(Dir, "ca.pem")},
                                       {certfile, filename:join(Dir, "cert.pem")},
                                       {keyfile, filename:join(Dir, "key.pem")}], 5000),
    {ssl, S}.

read_all(Mod, S, Acc) ->
    case Mod:recv(S, 0, 15000) of
        {ok, D} -> read_all(Mod, S, [D | Acc]);
        {error, closed} -> iolist_to_binary(lists:reverse(Acc))
    end.

parse(Resp) ->
    [Head, Body] = binary:split(Resp, <<"\r\n\r\n">>),
    [StatusLine | HeaderLines] = binary:split(Head, <<"\r\n">>, [global]),
    [_, Code | _] = binary:split(StatusLine, <<" ">>, [global]),
    Hs = [begin [K, V] = binary:split(L, <<":">>), {string:lowercase(K), string:trim(V)} end
          || L <- HeaderLines],
    B = case proplists:get_value(<<"transfer-encoding">>, Hs) of
            <<"chunked">> -> dechunk(Body, []);
            _ -> Body
        end,
    {binary_to_integer(Code), Hs, B}.

dechunk(Bin, Acc) ->
    [SizeLine, Rest] = binary:split(Bin, <<"\r\n">>),
    case binary_to_integer(hd(binary:split(SizeLine, <<";">>)), 16) of
        0 -> iolist_to_binary(lists:reverse(Acc));
        N -> <<Chunk:N/binary, "\r\n", More/binary>> = Rest, dechunk(More, [Chunk | Acc])
    end.

%% A string field of a flat JSON object (enough for /version and create's answer).
json_string(Json, Key) ->
    {match, [V]} = re:run(Json, "\"" ++ Key ++ "\"\\s*:\\s*\"([^\"]*)\"", [{capture, all_but_first, list}]),
    V.

%% stdout/stderr frames of a non-tty log stream: <<Stream, 0,0,0, Len:32, Data:Len>>.
frames(<<>>) -> [];
frames(<<Stream, _:3/binary, Len:32, Data:Len/binary, Rest/binary>>) -> [{Stream, Data} | frames(Rest)].
