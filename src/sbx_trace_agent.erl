%% The trace agent: runs inside a traced BEAM node (loaded there with code:load_binary by
%% sandboxd) and enforces every limit of a trace on that node itself, so the node stays
%% safe when sandboxd is slow or gone.
%%
%% One agent process per node (registered as sbx_trace_agent: erlang:trace/3 allows one
%% tracer per process, so a second trace on the same node is refused). The agent is the
%% tracer: it turns trace messages into event maps #{ts, pid, event, detail}, batches them
%% (by count and time) and sends {sbx_trace, Ref, [Event]} to the sink, a process on
%% sandboxd, with nosuspend: a busy connection drops the batch (counted) instead of
%% blocking the agent. The trace ends at max_events, duration_ms, stop/1 or
%% {sbx_trace_stop, Ref}, or when sandboxd goes away (nodedown, or the sink's 'DOWN');
%% the sink then gets {sbx_trace_done, Ref, Event} whose detail says why and how much was
%% dropped. Whatever way the agent ends, it leaves no trace flags and no trace patterns:
%% normal ends clean up in the agent, an agent that is killed is cleaned up after by a
%% janitor process that monitors it.
%%
%% Flood protection: every ?CHECK_EVERY trace messages the agent looks at its own
%% message queue; above ?QUEUE_HIGH it switches the trace flags off, drops what is queued
%% (counted as overload) and switches them on again, so the node's memory stays bounded
%% whatever rate its processes produce events at.
-module(sbx_trace_agent).

-export([start/1, stop/1, whereis_agent/0]).
%% Internal: spawned functions.
-export([init/2, janitor/3]).

-define(NAME, sbx_trace_agent).
%% The start map's layout and the agent's behaviour. sandboxd sends vsn => ?VSN; an agent
%% of another version answers {error, agent_version} and sandboxd loads its own
%% (code:load_binary) and starts again. 2: batches bounded by bytes too.
-define(VSN, 2).
-define(BATCH_MAX, 500).
-define(BATCH_MS, 20).
%% A batch is also sent once its events reach this many bytes (external size): events can
%% be max_msg_bytes (up to 1 MiB) each, and a batch of ?BATCH_MAX of them would pass the
%% largest packet sandboxd accepts (64 MiB), which drops the connection to this node.
-define(BATCH_BYTES, (1 bsl 20)).
-define(CHECK_EVERY, 64).
-define(QUEUE_HIGH, 10000).
-define(START_TIMEOUT, 5000).
-define(MAX_EVENTS_CAP, 100000).
-define(DURATION_CAP, 600000).
-define(ALL_FLAGS, [send, 'receive', call, return, procs, garbage_collection, running]).

-record(st, {
    ref, sink, sink_mon, sandboxd,
    pidspec, flags, pattern, start_pids,
    max_events, max_bytes, rate_max, rate_ms,
    win_start = 0, win_count = 0,
    events = 0, batch = [], batch_len = 0, batch_bytes = 0, flush_timer,
    since_check = 0,
    dropped_rate = 0, dropped_overload = 0, dropped_busy = 0, max_queue = 0,
    janitor, duration
}).

%% Starts a trace. Spec is a map: ref (any term naming the trace), sink (the pid events
%% go to), pids (all | new | existing | [Pid | RegName]), flags (a list of ?ALL_FLAGS),
%% mfa ({M, F, Arity} or undefined; needed for call and return), match_spec (a list or
%% undefined), max_events, duration_ms, rate ({Max, PerMs} or undefined), max_msg_bytes.
%% Returns {ok, AgentPid} once tracing is on, {error, already_tracing} when this node
%% already has a tracer, {error, agent_version} when Spec's vsn (if any) is not this
%% module's, {error, {badarg, Field}} or {error, Why}. The caller owns
%% nothing afterwards: the agent is not linked to it.
start(#{vsn := V}) when V =/= ?VSN ->
    {error, agent_version};
start(Spec) when is_map(Spec) ->
    case check_spec(Spec) of
        {ok, Norm} ->
            Caller = self(),
            {Pid, Mon} = spawn_opt(?MODULE, init, [Caller, Norm], [monitor]),
            receive
                {?MODULE, Pid, Answer} ->
                    erlang:demonitor(Mon, [flush]),
                    Answer;
                {'DOWN', Mon, process, Pid, Why} ->
                    {error, {agent_died, Why}}
            after ?START_TIMEOUT ->
                exit(Pid, kill),
                {error, timeout}
            end;
        {error, _} = E ->
            E
    end;
start(_) ->
    {error, {badarg, spec}}.

%% Ends the trace run by Agent (a pid, or the trace's ref), as if a limit was reached, with
%% reason stopped. Returns ok, also when that trace has ended already.
stop(Agent) when is_pid(Agent) ->
    Agent ! {sbx_trace_stop, any},
    ok;
stop(Ref) ->
    case whereis(?NAME) of
        undefined -> ok;
        Pid -> Pid ! {sbx_trace_stop, Ref}, ok
    end.

%% The running agent's pid, or undefined.
whereis_agent() ->
    whereis(?NAME).

%% ---------------------------------------------------------------- spec checking

check_spec(Spec) ->
    try
        Sink = maps:get(sink, Spec),
        is_pid(Sink) orelse throw(sink),
        Flags = maps:get(flags, Spec, [send, 'receive']),
        (is_list(Flags) andalso Flags =/= [] andalso
             lists:all(fun(F) -> lists:member(F, ?ALL_FLAGS) end, Flags)) orelse throw(flags),
        Pids = maps:get(pids, Spec, all),
        check_pids(Pids) orelse throw(pids),
        MFA = maps:get(mfa, Spec, undefined),
        MS = maps:get(match_spec, Spec, undefined),
        NeedsMFA = lists:member(call, Flags) orelse lists:member(return, Flags),
        Pattern = case MFA of
                      undefined when NeedsMFA -> throw(mfa);
                      undefined -> undefined;
                      {M, F, A} when is_atom(M), M =/= '_', is_atom(F),
                                     (A =:= '_' orelse (is_integer(A) andalso A >= 0 andalso A =< 255)) ->
                          NeedsMFA orelse throw(flags),
                          {MFA, match_spec(MS, lists:member(return, Flags))};
                      _ -> throw(mfa)
                  end,
        Max = int_in(maps:get(max_events, Spec, 1000), 1, ?MAX_EVENTS_CAP, max_events),
        Dur = int_in(maps:get(duration_ms, Spec, 60000), 1, ?DURATION_CAP, duration_ms),
        Bytes = int_in(maps:get(max_msg_bytes, Spec, 4096), 64, 1 bsl 20, max_msg_bytes),
        {RMax, RMs} = case maps:get(rate, Spec, undefined) of
                          undefined -> {undefined, undefined};
                          {RM, RP} -> {int_in(RM, 1, 10000000, rate), int_in(RP, 1, 3600000, rate)};
                          _ -> throw(rate)
                      end,
        {ok, #st{ref = maps:get(ref, Spec, undefined), sink = Sink, sandboxd = node(Sink),
                 pidspec = Pids, flags = Flags, pattern = Pattern,
                 max_events = Max, max_bytes = Bytes, rate_max = RMax, rate_ms = RMs,
                 duration = Dur}}
    catch
        throw:Field -> {error, {badarg, Field}};
        error:{badkey, Key} -> {error, {badarg, Key}}
    end.

check_pids(all) -> true;
check_pids(new) -> true;
check_pids(existing) -> true;
check_pids(L) when is_list(L), L =/= [] ->
    lists:all(fun(P) -> (is_pid(P) andalso node(P) =:= node()) orelse
                            (is_atom(P) andalso P =/= undefined) end, L);
check_pids(_) -> false.

int_in(V, Lo, Hi, _) when is_integer(V), V >= Lo, V =< Hi -> V;
int_in(_, _, _, Field) -> throw(Field).

%% The match spec for the pattern: the caller's (checked by erlang:trace_pattern itself),
%% or match everything; with return, each clause also asks for {return_trace}.
match_spec(undefined, Return) -> match_spec([{'_', [], []}], Return);
match_spec(MS, false) when is_list(MS) -> MS;
match_spec(MS, true) when is_list(MS) ->
    [case C of
         {Head, Guard, Body} when is_list(Body) -> {Head, Guard, Body ++ [{return_trace}]};
         Other -> Other
     end || C <- MS];
match_spec(_, _) -> throw(match_spec).

%% ---------------------------------------------------------------- the agent

%% The agent process: registers (refusing a second trace), starts the janitor, turns
%% tracing on, answers the caller, then runs until an end.
init(Caller, St0) ->
    case catch register(?NAME, self()) of
        true ->
            case tracing_elsewhere() of
                true ->
                    Caller ! {?MODULE, self(), {error, already_tracing}};
                false ->
                    begin_trace(Caller, St0)
            end;
        _ ->
            Caller ! {?MODULE, self(), {error, already_tracing}}
    end.

begin_trace(Caller, St0) ->
    process_flag(priority, high),
    Janitor = spawn(?MODULE, janitor, [self(), St0#st.pidspec, St0#st.pattern]),
    SinkMon = erlang:monitor(process, St0#st.sink),
    erlang:monitor_node(St0#st.sandboxd, true),
    StartPids = case St0#st.pidspec of
                    P when P =:= new; P =:= existing -> maps:from_list([{X, true} || X <- erlang:processes()]);
                    _ -> #{}
                end,
    St1 = St0#st{janitor = Janitor, sink_mon = SinkMon, start_pids = StartPids,
                 win_start = now_ms()},
    try
        set_pattern(St1#st.pattern),
        trace_on(St1, initial),
        untrace_self([Caller, Janitor]),
        Caller ! {?MODULE, self(), {ok, self()}}
    catch
        Class:Why ->
            cleanup(St1),
            Caller ! {?MODULE, self(), {error, {Class, Why}}},
            exit(normal)
    end,
    erlang:send_after(St1#st.duration, self(), {sbx_trace_duration, St1#st.ref}),
    loop(St1).

%% 1 if some process of this node already sends trace messages to a tracer: then ours
%% would take its processes away from it.
tracing_elsewhere() ->
    case erlang:trace_info(new, tracer) of
        {tracer, []} -> false;
        {tracer, _} -> true;
        _ -> false
    end.

%% One message at a time, in arrival order (no selective receive on a long queue). A
%% crash while handling one still ends the trace cleanly, with reason {error, Why}.
loop(St) ->
    receive
        Msg ->
            try handle(Msg, St) of
                {ok, St1} -> loop(St1);
                {stop, Reason, St1} -> finish(Reason, St1)
            catch
                Class:Why -> finish({Class, Why}, St)
            end
    end.

handle(Msg, St) when element(1, Msg) =:= trace ->
    St1 = count_check(St),
    event(Msg, St1);
handle({sbx_trace_flush, Ref}, St = #st{ref = Ref}) ->
    {ok, flush(St#st{flush_timer = undefined})};
handle({sbx_trace_duration, Ref}, St = #st{ref = Ref}) ->
    {stop, duration, St};
handle({sbx_trace_stop, R}, St = #st{ref = Ref}) when R =:= Ref; R =:= any ->
    {stop, stopped, St};
handle({nodedown, Node}, St = #st{sandboxd = Node}) ->
    {stop, node_down, St};
handle({'DOWN', Mon, process, _, _}, St = #st{sink_mon = Mon}) ->
    {stop, sink_down, St};
handle(_Other, St) ->
    {ok, St}.

%% Every ?CHECK_EVERY trace messages: if the queue is over the bound, flags off, drop the
%% queue, flags on.
count_check(St = #st{since_check = N}) when N < ?CHECK_EVERY ->
    St#st{since_check = N + 1};
count_check(St) ->
    {message_queue_len, Len} = process_info(self(), message_queue_len),
    MaxQ = max(Len, St#st.max_queue),
    case Len > ?QUEUE_HIGH of
        false ->
            St#st{since_check = 0, max_queue = MaxQ};
        true ->
            trace_off(St),
            Dropped = drain(0),
            St1 = St#st{since_check = 0, max_queue = MaxQ,
                        dropped_overload = St#st.dropped_overload + Dropped},
            trace_on(St1, resume),
            St1
    end.

%% Drops every trace message already queued (selective receive on the tag only: control
%% messages stay queued); returns how many.
drain(N) ->
    receive
        T when element(1, T) =:= trace -> drain(N + 1)
    after 0 -> N
    end.

event(Msg, St) ->
    Now = now_ms(),
    case rate_ok(Now, St) of
        {false, St1} ->
            {ok, St1#st{dropped_rate = St1#st.dropped_rate + 1}};
        {true, St1} ->
            Ev = to_event(Msg, Now, St1#st.max_bytes),
            St2 = St1#st{events = St1#st.events + 1, batch = [Ev | St1#st.batch],
                         batch_len = St1#st.batch_len + 1,
                         batch_bytes = St1#st.batch_bytes + erlang:external_size(Ev)},
            if
                St2#st.events >= St2#st.max_events -> {stop, limit, St2};
                St2#st.batch_len >= ?BATCH_MAX; St2#st.batch_bytes >= ?BATCH_BYTES ->
                    {ok, flush(St2)};
                St2#st.flush_timer =:= undefined ->
                    T = erlang:send_after(?BATCH_MS, self(), {sbx_trace_flush, St2#st.ref}),
                    {ok, St2#st{flush_timer = T}};
                true -> {ok, St2}
            end
    end.

rate_ok(_Now, St = #st{rate_max = undefined}) ->
    {true, St};
rate_ok(Now, St = #st{rate_ms = Ms, win_start = W}) when Now - W >= Ms ->
    {true, St#st{win_start = Now, win_count = 1}};
rate_ok(_Now, St = #st{rate_max = Max, win_count = C}) when C < Max ->
    {true, St#st{win_count = C + 1}};
rate_ok(_Now, St) ->
    {false, St}.

%% Sends the batch (oldest first); a connection that would suspend us drops it.
flush(St = #st{batch = []}) ->
    St;
flush(St = #st{sink = Sink, ref = Ref, batch = B, batch_len = N}) ->
    case erlang:send(Sink, {sbx_trace, Ref, lists:reverse(B)}, [nosuspend, noconnect]) of
        ok -> St#st{batch = [], batch_len = 0, batch_bytes = 0};
        _ -> St#st{batch = [], batch_len = 0, batch_bytes = 0, dropped_busy = St#st.dropped_busy + N}
    end.

%% The end: tracing off, the last batch and the final event out, the janitor released.
finish(Reason, St0) ->
    cleanup(St0),
    St = flush(St0),
    Dropped = St#st.dropped_rate + St#st.dropped_overload + St#st.dropped_busy,
    Final = #{ts => now_ms(), pid => self(), event => trace_end,
              detail => #{reason => Reason, events => St#st.events, dropped => Dropped,
                          dropped_rate => St#st.dropped_rate,
                          dropped_overload => St#st.dropped_overload,
                          dropped_busy => St#st.dropped_busy,
                          max_queue => St#st.max_queue}},
    _ = erlang:send(St#st.sink, {sbx_trace_done, St#st.ref, Final}, [nosuspend, noconnect]),
    St#st.janitor ! {self(), done},
    exit(normal).

%% ---------------------------------------------------------------- trace flags

trace_flags(Flags) ->
    lists:usort([case F of return -> call; _ -> F end || F <- Flags]).

set_pattern(undefined) -> ok;
set_pattern({MFA, MS}) ->
    case erlang:trace_pattern(MFA, MS, [local]) of
        0 -> error({badarg, mfa_not_loaded});
        _ -> ok
    end.

%% initial: as the spec says. resume (after an overload pause): the same set of processes
%% again, as far as it can still be named (new: processes started since the trace began).
trace_on(St = #st{pidspec = Spec, flags = Flags}, When) ->
    TF = [{tracer, self()} | trace_flags(Flags)],
    case {Spec, When} of
        {all, _} -> erlang:trace(all, true, TF);
        {new, initial} -> erlang:trace(new, true, TF);
        {existing, initial} -> erlang:trace(existing, true, TF);
        {new, resume} ->
            erlang:trace(new, true, TF),
            [catch erlang:trace(P, true, TF) || P <- erlang:processes(),
                                                 not maps:is_key(P, St#st.start_pids)];
        {existing, resume} ->
            [catch erlang:trace(P, true, TF) || P <- maps:keys(St#st.start_pids)];
        {L, initial} when is_list(L) ->
            [erlang:trace(P, true, TF) || P <- resolve(L, initial)];
        {L, resume} when is_list(L) ->
            [catch erlang:trace(P, true, TF) || P <- resolve(L, resume)]
    end,
    untrace_self([St#st.janitor]),
    ok.

%% Pids of the spec's list; registered names are looked up (an unknown name fails the
%% start, and is skipped on resume).
resolve(L, When) ->
    lists:flatmap(fun(P) when is_pid(P) -> [P];
                     (Name) ->
                          case whereis(Name) of
                              undefined when When =:= initial -> error({badarg, {no_such_process, Name}});
                              undefined -> [];
                              P -> [P]
                          end
                  end, L).

untrace_self(Others) ->
    [catch erlang:trace(P, false, [all]) || P <- [self() | Others], is_pid(P)],
    ok.

trace_off(#st{pidspec = Spec}) ->
    clear_flags(Spec).

%% Switches off every flag this trace may have set (all flags: what erlang:trace/3 with
%% all, new or existing set is node-wide and ours alone, as a second tracer is refused).
clear_flags(Spec) when is_list(Spec) ->
    [catch erlang:trace(P, false, [all]) || P <- resolve_quiet(Spec)],
    ok;
clear_flags(_) ->
    catch erlang:trace(all, false, [all]),
    ok.

resolve_quiet(L) ->
    [P || P <- [case X of _ when is_pid(X) -> X; _ -> whereis(X) end || X <- L], is_pid(P)].

cleanup(#st{pidspec = Spec, pattern = Pattern}) ->
    clear(Spec, Pattern).

clear(Spec, Pattern) ->
    clear_flags(Spec),
    case Pattern of
        {MFA, _} -> catch erlang:trace_pattern(MFA, false, [local]);
        undefined -> ok
    end,
    ok.

%% Watches the agent: if it dies without cleaning up (killed), switches off what it set.
janitor(Agent, Spec, Pattern) ->
    Mon = erlang:monitor(process, Agent),
    receive
        {Agent, done} -> erlang:demonitor(Mon, [flush]), ok;
        {'DOWN', Mon, process, Agent, _} -> clear(Spec, Pattern)
    end.

%% ---------------------------------------------------------------- events

now_ms() -> erlang:system_time(millisecond).

to_event(Msg, Ts, Max) ->
    Pid = element(2, Msg),
    Tag = element(3, Msg),
    #{ts => Ts, pid => Pid, event => Tag, detail => detail(Msg, Max)}.

detail({trace, _, send, M, To}, Max) -> #{msg => cut(M, Max), to => To};
detail({trace, _, send_to_non_existing_process, M, To}, Max) -> #{msg => cut(M, Max), to => To};
detail({trace, _, 'receive', M}, Max) -> #{msg => cut(M, Max)};
detail({trace, _, call, {M, F, A}}, Max) -> #{mfa => {M, F, cut(A, Max)}};
detail({trace, _, call, {M, F, A}, X}, Max) -> #{mfa => {M, F, cut(A, Max)}, match => cut(X, Max)};
detail({trace, _, return_from, MFA, V}, Max) -> #{mfa => MFA, value => cut(V, Max)};
detail({trace, _, exception_from, MFA, {C, V}}, Max) -> #{mfa => MFA, class => C, value => cut(V, Max)};
detail({trace, _, spawn, P, MFA}, Max) -> #{pid => P, mfa => cut(MFA, Max)};
detail({trace, _, spawned, P, MFA}, Max) -> #{parent => P, mfa => cut(MFA, Max)};
detail({trace, _, exit, R}, Max) -> #{reason => cut(R, Max)};
detail({trace, _, _, A}, Max) -> #{info => cut(A, Max)};
detail({trace, _, _, A, B}, Max) -> #{info => cut(A, Max), extra => cut(B, Max)};
detail(_, _) -> #{}.

%% The term itself when its external size is at most Max, else {summary, Bytes, Cut}
%% where Cut is the term with its depth, lists and binaries shortened until it fits.
cut(T, _Max) when is_atom(T); is_integer(T); is_pid(T); is_reference(T); is_port(T) -> T;
cut(T, Max) ->
    Size = erlang:external_size(T),
    case Size =< Max of
        true -> T;
        false -> {summary, Size, shrink(T, 6, Max)}
    end.

shrink(_T, 0, _Max) -> '...';
shrink(T, Depth, Max) ->
    S = trunc_term(T, Depth, 16),
    case erlang:external_size(S) =< Max of
        true -> S;
        false -> shrink(T, Depth - 1, Max)
    end.

trunc_term(_, 0, _) -> '...';
trunc_term(B, _, W) when is_binary(B), byte_size(B) > W * 4 ->
    <<H:(W * 4)/binary, _/binary>> = B, <<H/binary, "...">>;
trunc_term(B, _, _) when is_bitstring(B) -> B;
trunc_term(L, D, W) when is_list(L) -> trunc_list(L, D, W, W);
trunc_term(T, D, W) when is_tuple(T) ->
    list_to_tuple(trunc_list(tuple_to_list(T), D, W, W));
trunc_term(M, D, W) when is_map(M) ->
    maps:from_list(lists:sublist([{trunc_term(K, D - 1, W), trunc_term(V, D - 1, W)}
                                  || {K, V} <- maps:to_list(M)], W));
trunc_term(F, _, _) when is_function(F) -> '#Fun';
trunc_term(T, _, _) -> T.

trunc_list([], _, _, _) -> [];
trunc_list(_, _, _, 0) -> ['...'];
trunc_list([H | T], D, W, N) -> [trunc_term(H, D - 1, W) | trunc_list(T, D, W, N - 1)];
trunc_list(Tail, D, W, _) -> trunc_term(Tail, D - 1, W).
