/* The distribution cookie: where it comes from, and creating ~/.erlang.cookie like erl. */
#ifndef SBX_UTIL_COOKIE_H
#define SBX_UTIL_COOKIE_H

#include <stddef.h>

#define SBX_COOKIE_MAX 255

/* Resolves the cookie: `explicit_cookie` if non-NULL, else $SANDBOXD_COOKIE, else
 * ~/.erlang.cookie (created mode 0400 with 20 random upper-case letters if missing).
 * Writes a NUL-terminated cookie into out (size SBX_COOKIE_MAX + 1).
 * Returns 0, or -1 with a reason in *why (a static string) and out unchanged. */
int sbx_cookie_resolve(const char *explicit_cookie, char *out, const char **why);

#endif
