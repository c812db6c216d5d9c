%% Shapes shared with Erlang callers of sandboxd.

-ifndef(SANDBOXD_HRL).
-define(SANDBOXD_HRL, true).

%% Default registered name of the daemon's gen_server-compatible process.
-define(SANDBOXD_SERVER, sandboxd).

%% Default rpc timeout of the client module (ms).
-define(SANDBOXD_TIMEOUT, 30000).

-endif.
