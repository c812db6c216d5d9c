%% The application's own supervisor: a sandboxd daemon as its child.
-module(client_app_sup).
-behaviour(supervisor).
-export([start_link/1, init/1]).

start_link(DaemonOpts) -> supervisor:start_link(?MODULE, DaemonOpts).

init(DaemonOpts) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [sandboxd_daemon:child_spec(DaemonOpts)]}}.
