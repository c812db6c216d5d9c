/* The table of backends this build has: the one place a new backend is listed. */
#include "backends/backend.h"

/* See backend.h. NULL for a type this build has no backend for, which callers must
 * check. */
const struct sbx_backend *sbx_backend_for(enum sbx_type type) {
    switch (type) {
    case SBX_TYPE_PROCESS: return &sbx_backend_process;
    case SBX_TYPE_DOCKER: return &sbx_backend_docker;
    case SBX_TYPE_BEAM_NODE: return &sbx_backend_beam;
    case SBX_TYPE_VM: return &sbx_backend_vm;
    default: return NULL;
    }
}
