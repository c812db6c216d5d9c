/* The distribution cookie: where it comes from, and creating ~/.erlang.cookie like erl. */
#ifndef SBX_UTIL_COOKIE_H
#define SBX_UTIL_COOKIE_H

#include <stddef.h>

#define SBX_COOKIE_MAX 255

/* Resolves the cookie: `explicit_cookie` if non-NULL, else the file `cookie_file` if
 * non-NULL, else $SANDBOXD_COOKIE, else ~/.erlang.cookie (created mode 0400 with 20 random
 * upper-case letters if missing). A cookie file (either) must be a regular file that
 * neither group nor others may access (erl's own rule); trailing white space is dropped.
 * Writes a NUL-terminated cookie into out (size SBX_COOKIE_MAX + 1).
 * Returns 0, or -1 with a reason in *why (a static string) and out unchanged. */
int sbx_cookie_resolve(const char *explicit_cookie, const char *cookie_file, char *out,
                       const char **why);

/* Removes SANDBOXD_COOKIE from this process's environment and overwrites its bytes in
 * place, so that neither children (which inherit environ) nor /proc/<pid>/environ (which
 * shows the memory the environment started in) hold it any more. */
void sbx_cookie_scrub_env(void);

/* Overwrites a command-line argument in place with NUL bytes (it then no longer shows in
 * /proc/<pid>/cmdline); NULL is fine. */
void sbx_cookie_scrub_arg(char *arg);

#endif
