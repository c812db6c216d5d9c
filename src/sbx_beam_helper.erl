%% Loaded by sandboxd into a beam_node sandbox's node (code:load_binary, from
%% priv/sbx_beam_helper.beam) so that processes/1 and metrics/1 cost one remote call each.
%% Runs inside the sandbox's node: it only reads, and bounds what it returns.
-module(sbx_beam_helper).
-export([processes/0, metrics/3]).

-define(MAX_PROCS, 10000).
-define(KEYS, [registered_name, current_function, memory, message_queue_len, reductions,
               status]).

%% One map per live process (at most ?MAX_PROCS): the keys of API.md's processes
%% (pid, name, status, memory_bytes, cpu_percent) plus the Erlang ones.
-spec processes() -> [map()].
processes() ->
    Pids = lists:sublist(erlang:processes(), ?MAX_PROCS),
    [M || P <- Pids, M <- [proc(P)], M =/= undefined].

proc(P) ->
    case erlang:process_info(P, ?KEYS) of
        undefined ->
            undefined;
        Info ->
            Name = case proplists:get_value(registered_name, Info) of
                       [] -> undefined;
                       N -> N
                   end,
            Mem = proplists:get_value(memory, Info),
            #{pid => P,
              name => Name,
              registered_name => Name,
              status => proplists:get_value(status, Info),
              current_function => proplists:get_value(current_function, Info),
              memory => Mem,
              memory_bytes => Mem,
              message_queue_len => proplists:get_value(message_queue_len, Info),
              reductions => proplists:get_value(reductions, Info),
              cpu_percent => 0.0}
    end.

%% {Reductions, Ts, Metrics}: sandboxd keeps the first two for the next call's
%% reductions_per_sec. Os is the OS view (cpu_percent, memory_bytes, pids, ...) of the
%% node's process group; its keys win over the defaults, the BEAM ones are added.
-spec metrics(integer(), integer(), map()) -> {integer(), integer(), map()}.
metrics(PrevReds, PrevTs, Os) when is_integer(PrevReds), is_integer(PrevTs), is_map(Os) ->
    {Reds, _} = erlang:statistics(reductions),
    Ts = erlang:system_time(millisecond),
    Rate = if PrevTs > 0, Ts > PrevTs, Reds >= PrevReds ->
                   (Reds - PrevReds) * 1000 div (Ts - PrevTs);
              true ->
                   0
           end,
    Mem = maps:from_list(erlang:memory()),
    Defaults = #{cpu_percent => 0.0, memory_bytes => maps:get(total, Mem),
                 memory_limit_bytes => 0, pids => 0},
    Beam = #{memory => Mem,
             process_count => erlang:system_info(process_count),
             run_queue => erlang:statistics(run_queue),
             reductions => Reds,
             reductions_per_sec => Rate,
             ts => Ts},
    {Reds, Ts, maps:merge(maps:merge(Defaults, Os), Beam)}.
