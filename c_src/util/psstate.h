/* The processes list's `status` atom for a Linux process state letter (/proc/PID/stat's
 * third field, ps's STAT column), shared by every backend that lists processes. */
#ifndef SBX_UTIL_PSSTATE_H
#define SBX_UTIL_PSSTATE_H

/* running | sleeping | disk_sleep | stopped | zombie | idle | other (static string). */
const char *sbx_ps_state_atom(int letter);

#endif
