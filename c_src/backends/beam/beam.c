/* The beam_node backend: Erlang nodes started, connected to and watched by sandboxd. */
#include "backends/backend.h"

/* Not usable yet: lands with issue 5. */
static int bm_available(struct sbx_core *core, const char **why) {
    (void)core;
    *why = "not built yet";
    return 0;
}

const struct sbx_backend sbx_backend_beam = {
    .name = "beam_node",
    .type = SBX_TYPE_BEAM_NODE,
    .available = bm_available,
};
