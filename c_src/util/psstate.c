/* See psstate.h. */
#include "util/psstate.h"

/* See psstate.h. Pure. */
const char *sbx_ps_state_atom(int letter) {
    switch (letter) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk_sleep";
    case 'T': case 't': return "stopped";
    case 'Z': return "zombie";
    case 'I': return "idle";
    default: return "other";
    }
}
