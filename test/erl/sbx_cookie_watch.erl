%% Cookie watch (issue 14, "It must show" 7): during a whole suite run, no process that a
%% sandboxd started holds a cookie in its /proc/<pid>/cmdline or /proc/<pid>/environ.
%%
%% A process scans /proc about every 200 ms. A sandboxd instance is a process whose argv[0]
%% ends in "sandboxd" and that descends from this test node's OS process (the instances
%% this run started: other runs on the same machine are theirs to watch); its descendants
%% are found by walking PPid (field 4 of /proc/<pid>/stat). A descendant offends when its cmdline holds `-setcookie`, or its
%% cmdline or environ holds `SANDBOXD_COOKIE=`, this test node's cookie, or a known sandbox
%% cookie. Sandbox cookies are learnt from the `-setcookie` tokens seen and from the
%% .erlang.cookie in the HOME (from its environ) of any descendant.
%%
%% start() -> Watch; results(Watch) stops it, prints one line per offending process and a
%% summary, and returns one failed test result per offending process (none when clean).
-module(sbx_cookie_watch).

-export([start/0, results/1, descendants/1]).
-export([scan_once/1]).

-define(EVERY_MS, 200).

start() ->
    Cookie = atom_to_binary(erlang:get_cookie()),
    Self = self(),
    spawn(fun() -> loop(#{owner => Self, fixed => [<<"SANDBOXD_COOKIE=">>, Cookie],
                          known => #{}, offenders => #{}, scans => 0, seen => #{}}) end).

results(Watch) ->
    Ref = monitor(process, Watch),
    Watch ! {stop, self()},
    St = receive
             {Watch, State} -> demonitor(Ref, [flush]), State;
             {'DOWN', Ref, process, Watch, Why} -> #{crashed => Why, offenders => #{}, scans => 0,
                                                     seen => #{}}
         after 30000 -> #{crashed => timeout, offenders => #{}, scans => 0, seen => #{}}
         end,
    #{offenders := Off, scans := Scans, seen := Seen} = St,
    Crash = case maps:find(crashed, St) of
                {ok, W} -> [{{?MODULE, cookie_watch}, {fail, {watcher_died, W}}}];
                error -> []
            end,
    [io:format("FAIL  ~p:cookie_watch pid ~b (~s): ~s~n", [?MODULE, P, Comm, Why])
     || {P, {Comm, Why}} <- maps:to_list(Off)],
    io:format("cookie_watch: ~b scans, ~b processes started by sandboxd seen, ~b holding a "
              "cookie~n", [Scans, map_size(Seen), map_size(Off)]),
    Crash ++ [{{?MODULE, cookie_watch}, {fail, {cookie_in_proc, P, Comm, Why}}}
              || {P, {Comm, Why}} <- maps:to_list(Off)].

loop(St) ->
    St1 = try scan_once(St) catch _:_ -> St end,
    receive
        {stop, From} -> From ! {self(), scan_once(St1)}
    after ?EVERY_MS -> loop(St1)
    end.

%% One pass over /proc.
scan_once(St = #{scans := N}) ->
    Table = proc_table(),
    Mine = descendants_in(Table, [list_to_integer(os:getpid())]),
    Roots = [P || P <- Mine, is_sandboxd(P)],
    Kids = descendants_in(Table, Roots),
    lists:foldl(fun check/2, St#{scans := N + 1}, Kids).

check(Pid, St = #{known := Known, offenders := Off, seen := Seen, fixed := Fixed}) ->
    Cmd = read("/proc/" ++ integer_to_list(Pid) ++ "/cmdline"),
    Env = read("/proc/" ++ integer_to_list(Pid) ++ "/environ"),
    case Cmd of
        <<>> -> St; %% gone, or a zombie
        _ ->
            Args = binary:split(Cmd, <<0>>, [global]),
            Known1 = learn(Args, Env, Known),
            Needles = Fixed ++ maps:keys(Known1),
            Why = [<<"-setcookie in cmdline">> || lists:member(<<"-setcookie">>, Args)] ++
                  [<<"a cookie in cmdline">> || has_any(Cmd, Needles)] ++
                  [<<"a cookie in environ">> || has_any(Env, Needles)],
            Comm = comm(Args),
            Off1 = case Why of
                       [] -> Off;
                       _ -> Off#{Pid => {Comm, [lists:join(", ", Why), " in: ",
                                                redact(Args, Needles)]}}
                   end,
            St#{known := Known1, offenders := Off1, seen := Seen#{Pid => Comm}}
    end.

%% The command line, at most 300 bytes, with every cookie shown as <cookie>.
redact(Args, Needles) ->
    Line = iolist_to_binary(lists:join(" ", Args)),
    R = lists:foldl(fun(N, L) when byte_size(N) >= 4 ->
                            binary:replace(L, N, <<"<cookie>">>, [global]);
                       (_, L) -> L
                    end, Line, Needles),
    binary:part(R, 0, min(300, byte_size(R))).

comm([A0 | _]) -> filename:basename(A0);
comm(_) -> <<"?">>.

has_any(_, []) -> false;
has_any(Text, [N | T]) when byte_size(N) >= 4 ->
    binary:match(Text, N) =/= nomatch orelse has_any(Text, T);
has_any(Text, [_ | T]) -> has_any(Text, T).

%% Cookies this process shows: the token after -setcookie, and HOME/.erlang.cookie.
learn(Args, Env, Known) ->
    K1 = after_setcookie(Args, Known),
    Homes = [H || <<"HOME=", H/binary>> <- binary:split(Env, <<0>>, [global])],
    lists:foldl(fun(H, K) ->
                        case string:trim(read(filename:join(H, ".erlang.cookie"))) of
                            <<>> -> K;
                            C -> K#{C => true}
                        end
                end, K1, Homes).

after_setcookie([<<"-setcookie">>, C | T], K) when C =/= <<>> -> after_setcookie(T, K#{C => true});
after_setcookie([_ | T], K) -> after_setcookie(T, K);
after_setcookie([], K) -> K.

read(Path) ->
    case file:read_file(Path) of
        {ok, B} -> B;
        _ -> <<>>
    end.

is_sandboxd(Pid) ->
    case binary:split(read("/proc/" ++ integer_to_list(Pid) ++ "/cmdline"), <<0>>) of
        [A0 | _] -> filename:basename(A0) =:= <<"sandboxd">>;
        _ -> false
    end.

%% [{Pid, PPid}] for every process now.
proc_table() ->
    {ok, Names} = file:list_dir("/proc"),
    lists:filtermap(fun(N) ->
                            case string:to_integer(N) of
                                {P, ""} -> case ppid(P) of
                                               undefined -> false;
                                               PP -> {true, {P, PP}}
                                           end;
                                _ -> false
                            end
                    end, Names).

%% PPid from /proc/<pid>/stat: the 2nd field after the ")" that closes comm.
ppid(P) ->
    S = read("/proc/" ++ integer_to_list(P) ++ "/stat"),
    case string:split(S, <<")">>, trailing) of
        [_, Rest] ->
            case string:lexemes(Rest, " ") of
                [_State, PP | _] -> binary_to_integer(PP);
                _ -> undefined
            end;
        _ -> undefined
    end.

descendants_in(Table, Roots) ->
    Children = lists:foldl(fun({P, PP}, M) -> maps:update_with(PP, fun(L) -> [P | L] end, [P], M)
                           end, #{}, Table),
    walk(Roots, Children, []).

walk([], _, Acc) -> Acc;
walk([P | T], Children, Acc) ->
    Kids = maps:get(P, Children, []),
    walk(Kids ++ T, Children, Kids ++ Acc).

%% Every process below Pid now.
descendants(Pid) -> descendants_in(proc_table(), [Pid]).
