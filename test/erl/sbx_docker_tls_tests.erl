%% Docker over TCP with TLS (issue 13), against the local dockerd, which scripts/docker-up.sh
%% makes listen on tcp://127.0.0.1:PORT with --tlsverify and certificates it made
%% (scripts/docker-tls.sh). scripts/test.sh passes the listener as DOCKER_TLS_HOST and the
%% client certificate folders as DOCKER_TLS_CERTS (accepted) and DOCKER_TLS_WRONG_CERTS (a
%% client certificate from another CA). Without them every test is skipped ({skip,
%% no_docker_tls}), unless SANDBOXD_REQUIRE_DOCKER=1, where that is a failure.
%%
%% First the smoke suite's four engine checks again, over TLS; then sandboxd itself with
%% DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, as the docker CLI reads them.
-module(sbx_docker_tls_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).
-define(SMOKE, sbx_docker_smoke_tests).
-define(IMAGE, <<"sandboxd-test/busybox:1">>).

tests() ->
    [{smoke_engine_answers_ping_over_tls, 20000, smoke(ping)},
     {smoke_engine_version_api_over_tls, 20000, smoke(version)},
     {smoke_test_image_present_over_tls, 20000, smoke(image)},
     {smoke_container_runs_over_tls, 60000, smoke(container_runs)},
     {docker_sandbox_through_tls, 120000, guarded(fun sandbox_through_tls/0)},
     {wrong_client_certificate_is_unavailable, 60000, guarded(fun wrong_certificate/0)},
     {no_client_certificate_is_unavailable, 60000, guarded(fun no_certificate/0)}].

%% ok | {skip, _}; raises when Docker is required but its TLS listener is not up.
tls_wanted() ->
    case ?SMOKE:docker_wanted() of
        ok ->
            case {os:getenv("DOCKER_TLS_HOST"), os:getenv("SANDBOXD_REQUIRE_DOCKER")} of
                {"tcp://" ++ _, _} -> ok;
                {_, "1"} -> error({docker_tls_required_but_not_up,
                                   "scripts/docker-up.sh did not bring up the engine's TLS "
                                   "listener (DOCKER_TLS_HOST unset); see its output"});
                _ -> {skip, no_docker_tls}
            end;
        Skip -> Skip
    end.

guarded(Fun) ->
    fun() ->
            case tls_wanted() of
                ok -> Fun();
                Skip -> Skip
            end
    end.

smoke(Check) ->
    guarded(fun() -> ?SMOKE:with_endpoint(endpoint(certs()), fun ?SMOKE:Check/0) end).

%% {tls, Host, Port, CertDir} for the smoke module's client.
endpoint(Dir) ->
    "tcp://" ++ HostPort = os:getenv("DOCKER_TLS_HOST"),
    [Host, Port] = string:split(HostPort, ":", trailing),
    {tls, Host, list_to_integer(Port), Dir}.

certs() -> os:getenv("DOCKER_TLS_CERTS").

%% sandboxd's environment for the engine's TLS listener with the client certificates in Dir.
tls_env(Dir) ->
    [{"DOCKER_HOST", os:getenv("DOCKER_TLS_HOST")}, {"DOCKER_TLS_VERIFY", "1"},
     {"DOCKER_CERT_PATH", Dir}].

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

docker_state(S) -> maps:get(docker, maps:get(backends, ?U:info(S))).

%% Containers labelled with S's node, asked over TLS.
containers(#{node := N}) ->
    Filter = uri_string:quote("{\"label\":[\"sandboxd.node=" ++ atom_to_list(N) ++ "\"]}"),
    {200, _, Body} = ?SMOKE:with_endpoint(
                        endpoint(certs()),
                        fun() -> ?SMOKE:request(get, "/containers/json?all=1&filters=" ++ Filter,
                                                <<>>) end),
    case re:run(Body, "\"Id\":\"([0-9a-f]+)\"", [global, {capture, all_but_first, binary}]) of
        {match, Ids} -> [Id || [Id] <- Ids];
        nomatch -> []
    end.

%% Create, exec, destroy: every engine request of a sandbox's life over TLS.
sandbox_through_tls() ->
    S = ?U:start_isolated(#{env => tls_env(certs())}),
    ok = ?U:wait_until(fun() -> docker_state(S) =:= available end, 20000, 20),
    {ok, #{ref := Ref}} = call(S, create, [<<"tls1">>, docker,
                                           #{image => ?IMAGE, cmd => [<<"sleep">>, <<"3600">>]}]),
    [Id] = containers(S),
    ?assertEqual(Ref, binary:part(Id, 0, byte_size(Ref))),
    ?assertMatch({ok, #{exit_code := 0, stdout := <<"over tls\n">>}},
                 call(S, exec, [<<"tls1">>, [<<"echo">>, <<"over tls">>]])),
    ?assertMatch({ok, #{exit_code := 7}}, call(S, exec, [<<"tls1">>, <<"exit 7">>])),
    ?assertEqual(ok, call(S, destroy, [<<"tls1">>])),
    ?assertEqual([], containers(S)).

%% A client certificate from another CA: the engine refuses the handshake; sandboxd answers
%% unavailable with the TLS reason, keeps serving, and the engine still serves good clients.
wrong_certificate() ->
    refused(os:getenv("DOCKER_TLS_WRONG_CERTS")).

%% No client certificate at all (only ca.pem in DOCKER_CERT_PATH): refused the same way.
no_certificate() ->
    Dir = filename:join(?U:state_dir("nocert"), "certs"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, _} = file:copy(filename:join(certs(), "ca.pem"), filename:join(Dir, "ca.pem")),
    refused(Dir).

refused(Dir) ->
    S = ?U:start_isolated(#{env => tls_env(Dir)}),
    R = call(S, create, [<<"tls2">>, docker, #{image => ?IMAGE, cmd => [<<"sleep">>, <<"60">>]}]),
    io:format("      ~p~n", [R]),
    {error, {unavailable, docker, Why}} = R,
    ?assertMatch({match, _}, re:run(Why, "^tls: .*alert (bad certificate|certificate required"
                                    "|handshake failure)")),
    ?assertMatch({unavailable, _}, docker_state(S)),
    ?assertEqual([], call(S, list, [])),
    ?assertEqual(pong, net_adm:ping(maps:get(node, S))),
    ?assertEqual([], containers(S)),
    ?SMOKE:with_endpoint(endpoint(certs()), fun ?SMOKE:ping/0).
