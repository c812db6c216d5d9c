%% bench/http: the HTTP side of sandboxd (issue 12, "It must show" 4).
%%   1. N process sandboxes (`sleep 3600`, BENCH_HTTP_SANDBOXES, default 10000) created by
%%      8 callers; then, once every one has a metrics sample, 20 sequential GET /metrics,
%%      each timed from the request to the last byte (the render, on sandboxd's loop,
%%      is nearly all of it): median and max, and the exposition's size.
%%   2. rpc ping latency (sequential sandbox:ping calls for BENCH_HTTP_PING_SECONDS, 10) without and then with a
%%      scraper fetching /metrics 10 times a second: p50, p99, max of each, and the
%%      scrape times seen meanwhile.
%% Figures are printed, not asserted; the exit status says only whether every answer came.
-module(sbx_bench_http).

-export([main/0]).

-define(U, sbx_test_util).

main() ->
    sbx_bench_lib:guarded_main(fun run/0, 3600000, fun() -> catch ?U:cleanup() end).

run() ->
    N = sbx_bench_lib:env_int("BENCH_HTTP_SANDBOXES", 10000),
    Secs = sbx_bench_lib:env_int("BENCH_HTTP_PING_SECONDS", 10),
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    #{node := Node, os_pid := OsPid} =
        ?U:start_isolated(#{args => ["--http", "127.0.0.1:" ++ integer_to_list(Port)]
                                     ++ sbx_bench_lib:uid_range_args()}),
    sbx_bench_lib:write_pidfile(OsPid),
    io:format("sandboxd ~s (os pid ~b), HTTP on 127.0.0.1:~b~n", [Node, OsPid, Port]),
    io:format("~n== creating ~b process sandboxes (8 callers)~n", [N]),
    T0 = erlang:monotonic_time(millisecond),
    Made = parallel(8, N, fun(I) ->
                                  Id = list_to_binary("b" ++ integer_to_list(I)),
                                  element(1, rpc:call(Node, sandbox, create,
                                                      [Id, process, #{cmd => ["sleep", "3600"]}], 60000))
                          end),
    Ok = length([x || ok <- Made]),
    io:format("created ~b of ~b in ~.1f s~n", [Ok, N, (erlang:monotonic_time(millisecond) - T0) / 1000]),
    ok = ?U:wait_until(fun() -> sampled(Port) >= Ok end, 120000, 500),
    io:format("every sandbox sampled; sandboxd RSS ~b MiB~n", [rss_kb(OsPid) div 1024]),
    io:format("~n== GET /metrics with ~b sandboxes, 20 times in a row~n", [Ok]),
    Scrapes = [scrape(Port) || _ <- lists:seq(1, 20)],
    {Ms, Bytes} = lists:unzip(Scrapes),
    io:format("render+transfer ms: median ~.1f, max ~.1f; ~b bytes (~b lines)~n",
              [median(Ms), lists:max(Ms), hd(Bytes), lines(Port)]),
    io:format("~n== rpc ping latency, sequential calls for ~b s each~n", [Secs]),
    Base = pings(Node, Secs),
    report("no scraper", Base),
    Self = self(),
    Scraper = spawn_link(fun() -> scraper(Port, Self, []) end),
    Loaded = pings(Node, Secs),
    Scraper ! stop,
    Seen = receive {scraped, X} -> X end,
    report("scraper at 10/s", Loaded),
    io:format("scrapes during the pings: ~b, ms median ~.1f, max ~.1f~n",
              [length(Seen), median(Seen), lists:max([0.0 | Seen])]),
    io:format("~n== destroying~n"),
    _ = parallel(8, N, fun(I) -> rpc:call(Node, sandbox, destroy, [list_to_binary("b" ++ integer_to_list(I))], 60000) end),
    pong = rpc:call(Node, sandbox, ping, []),
    case Ok =:= N of
        true -> ok;
        false -> {failed, [io_lib:format("~b creates failed", [N - Ok])]}
    end.

%% Runs F(1..N) on W worker processes; the results in any order.
parallel(W, N, F) ->
    Self = self(),
    Chunks = [lists:seq(K, N, W) || K <- lists:seq(1, W)],
    Pids = [spawn_link(fun() -> Self ! {done, self(), [F(I) || I <- C]} end) || C <- Chunks],
    lists:append([receive {done, P, R} -> R end || P <- Pids]).

sampled(Port) ->
    {_, Body} = get(Port, "/metrics"),
    length(binary:matches(Body, <<"container_memory_usage_bytes{">>)).

lines(Port) ->
    {_, Body} = get(Port, "/metrics"),
    length(binary:matches(Body, <<"\n">>)).

scrape(Port) ->
    T0 = erlang:monotonic_time(microsecond),
    {200, Body} = get(Port, "/metrics"),
    {(erlang:monotonic_time(microsecond) - T0) / 1000, byte_size(Body)}.

scraper(Port, Parent, Acc) ->
    T0 = erlang:monotonic_time(millisecond),
    {Ms, _} = scrape(Port),
    Wait = max(0, 100 - (erlang:monotonic_time(millisecond) - T0)),
    receive stop -> Parent ! {scraped, [Ms | Acc]}
    after Wait -> scraper(Port, Parent, [Ms | Acc])
    end.

%% Sequential pings for Secs seconds: their latencies (ms).
pings(Node, Secs) ->
    pings(Node, erlang:monotonic_time(millisecond) + Secs * 1000, []).
pings(Node, End, Acc) ->
    T0 = erlang:monotonic_time(microsecond),
    pong = rpc:call(Node, sandbox, ping, [], 10000),
    Acc1 = [(erlang:monotonic_time(microsecond) - T0) / 1000 | Acc],
    case erlang:monotonic_time(millisecond) < End of
        true -> pings(Node, End, Acc1);
        false -> Acc1
    end.

report(Label, Ms) ->
    S = lists:sort(Ms),
    P = fun(Q) -> lists:nth(max(1, round(Q * length(S))), S) end,
    io:format("ping ~s: ~b calls, p50 ~.3f ms, p99 ~.3f ms, max ~.3f ms~n",
              [Label, length(S), P(0.5), P(0.99), lists:last(S)]).

median(L) -> lists:nth(max(1, length(L) div 2), lists:sort(L)).

get(Port, Path) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000),
    ok = gen_tcp:send(Sock, ["GET ", Path, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]),
    R = read_all(Sock, []),
    gen_tcp:close(Sock),
    <<"HTTP/1.1 ", C:3/binary, _/binary>> = R,
    [_, Body] = binary:split(R, <<"\r\n\r\n">>),
    {binary_to_integer(C), Body}.

read_all(Sock, Acc) ->
    case gen_tcp:recv(Sock, 0, 30000) of
        {ok, B} -> read_all(Sock, [Acc, B]);
        {error, closed} -> iolist_to_binary(Acc)
    end.

rss_kb(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    {match, [K]} = re:run(B, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, binary}]),
    binary_to_integer(K).
