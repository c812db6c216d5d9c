%% Docker sandboxes across a restart of sandboxd, in the moments before the engine's
%% first answer. A clean `make test` once failed on exactly this: destroy, sent right
%% after a restart, answered ok in 2 ms and the container stayed.
%%
%% The window is made wide and certain: the restarted sandboxd reaches the real dockerd
%% through a proxy on a unix socket (DOCKER_HOST) that holds every new connection for
%% 1.5 s before passing its bytes on. A destroy sent at once must wait for the engine's
%% first answer and remove the container before it answers ok.
-module(sbx_docker_restart_tests).

-include_lib("stdlib/include/assert.hrl").

-export([tests/0]).

-define(U, sbx_test_util).
-define(IMAGE, <<"sandboxd-test/busybox:1">>).
-define(HOLD_MS, 1500).

tests() ->
    [{destroy_before_engine_answers_after_restart, 120000,
      sbx_docker_tests:guarded(fun destroy_right_after_restart/0)}].

call(#{node := N}, F, A) -> rpc:call(N, sandbox, F, A, 60000).

destroy_right_after_restart() ->
    S0 = ?U:start_isolated(),
    #{sname := SName, state_dir := Dir, os_pid := OsPid, port := Port} = S0,
    Node = atom_to_list(maps:get(node, S0)),
    try
        ok = ?U:wait_until(fun() -> docker_up(S0) end, 20000, 20),
        {ok, #{ref := Ref}} = call(S0, create, [<<"rs1">>, docker,
                                                #{image => ?IMAGE, cmd => [<<"sleep">>, <<"3600">>]}]),
        ?assertEqual("true", inspect(Ref, "{{.State.Running}}")),
        ?U:os_kill(OsPid, "KILL"),
        receive {Port, {exit_status, _}} -> ok after 10000 -> error(sandboxd_not_killed) end,
        Sock = filename:join(Dir, "slow-docker.sock"),
        Proxy = start_proxy(Sock),
        S1 = ?U:start_isolated(#{sname => SName, state_dir => Dir,
                                 env => [{"DOCKER_HOST", "unix://" ++ Sock}]}),
        %% The engine has not answered yet: the proxy still holds its first connection.
        T0 = erlang:monotonic_time(millisecond),
        ?assertEqual(ok, call(S1, destroy, [<<"rs1">>])),
        Ms = erlang:monotonic_time(millisecond) - T0,
        io:format("      destroy answered ok ~b ms after it was sent (proxy holds ~b ms)~n",
                  [Ms, ?HOLD_MS]),
        %% ok means gone: no container, and nothing under the node's label.
        ?assertEqual(false, container_exists(Ref)),
        ?assertEqual([], string:lexemes(os:cmd("timeout 60 docker ps -aq --filter label=sandboxd.node="
                                               ++ Node), "\n")),
        ?assertEqual([], call(S1, list, [])),
        exit(Proxy, kill),
        ok
    after
        os:cmd("timeout 60 docker ps -aq --filter label=sandboxd.node=" ++ Node
               ++ " | xargs -r docker rm -f -v >/dev/null 2>&1")
    end.

docker_up(S) -> maps:get(docker, maps:get(backends, ?U:info(S))) =:= available.

inspect(Ref, Fmt) ->
    string:trim(os:cmd("timeout 60 docker inspect --format '" ++ Fmt ++ "' "
                       ++ binary_to_list(Ref) ++ " 2>&1")).

container_exists(Ref) ->
    string:trim(os:cmd("timeout 60 docker inspect --format x " ++ binary_to_list(Ref)
                       ++ " 2>/dev/null")) =:= "x".

%% A unix-socket proxy to /var/run/docker.sock that holds each connection ?HOLD_MS before
%% relaying it both ways. Linked to nothing: the test kills it at the end.
start_proxy(Path) ->
    _ = file:delete(Path),
    Self = self(),
    Pid = spawn(fun() ->
                        {ok, L} = gen_tcp:listen(0, [{ifaddr, {local, Path}}, binary,
                                                     {active, false}, {packet, raw}]),
                        Self ! {proxy_ready, self()},
                        accept_loop(L)
                end),
    receive {proxy_ready, Pid} -> Pid after 5000 -> error(proxy_not_ready) end.

accept_loop(L) ->
    {ok, C} = gen_tcp:accept(L),
    H = spawn(fun() -> receive go -> hold_then_relay(C) end end),
    ok = gen_tcp:controlling_process(C, H),
    H ! go,
    accept_loop(L).

hold_then_relay(C) ->
    timer:sleep(?HOLD_MS),
    {ok, D} = gen_tcp:connect({local, "/var/run/docker.sock"}, 0,
                              [binary, {active, true}, {packet, raw}]),
    ok = inet:setopts(C, [{active, true}]),
    relay(C, D).

relay(C, D) ->
    receive
        {tcp, C, Data} -> ok = gen_tcp:send(D, Data), relay(C, D);
        {tcp, D, Data} -> ok = gen_tcp:send(C, Data), relay(C, D);
        {tcp_closed, _} -> gen_tcp:close(C), gen_tcp:close(D);
        {tcp_error, _, _} -> gen_tcp:close(C), gen_tcp:close(D)
    end.
