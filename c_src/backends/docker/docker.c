/* The docker backend: containers through the Docker Engine API (net/http.c). */
#include "backends/backend.h"

/* Not usable yet: the Engine API client lands with issue 4. */
static int dk_available(struct sbx_core *core, const char **why) {
    (void)core;
    *why = "not built yet";
    return 0;
}

const struct sbx_backend sbx_backend_docker = {
    .name = "docker",
    .type = SBX_TYPE_DOCKER,
    .available = dk_available,
};
