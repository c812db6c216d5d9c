/* Cookie resolution. The cookie is never logged. */
#define _GNU_SOURCE
#include "util/cookie.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies src into out if it is a usable cookie (1..SBX_COOKIE_MAX printable bytes). */
static int take_cookie(const char *src, size_t len, char *out) {
    if (len == 0 || len > SBX_COOKIE_MAX)
        return -1;
    memcpy(out, src, len);
    out[len] = '\0';
    return 0;
}

/* $HOME if set and non-empty, else the passwd entry's home, else NULL. Not the caller's to free. */
static const char *home_dir(void) {
    const char *home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw != NULL ? pw->pw_dir : NULL;
}

/* Creates the cookie file exclusively with mode 0400, as erl does. */
static int create_cookie_file(const char *path) {
    unsigned char rnd[20];
    char text[21];
    int rc = -1;
    int fd = -1;

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        goto done;
    for (size_t i = 0; i < sizeof rnd; i++)
        text[i] = (char)('A' + rnd[i] % 26);
    text[20] = '\0';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
    if (fd < 0)
        goto done;
    if (write(fd, text, 20) != 20)
        goto done;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* See cookie.h. Blocking file I/O (start-up only); the cookie is never logged. */
int sbx_cookie_resolve(const char *explicit_cookie, char *out, const char **why) {
    char path[4096];
    char buf[SBX_COOKIE_MAX + 2];
    FILE *f = NULL;
    int rc = -1;

    if (explicit_cookie != NULL) {
        rc = take_cookie(explicit_cookie, strlen(explicit_cookie), out);
        *why = "the --cookie value is empty or longer than 255 bytes";
        return rc;
    }
    const char *env = getenv("SANDBOXD_COOKIE");
    if (env != NULL && env[0] != '\0') {
        rc = take_cookie(env, strlen(env), out);
        *why = "$SANDBOXD_COOKIE is longer than 255 bytes";
        return rc;
    }
    const char *home = home_dir();
    if (home == NULL) {
        *why = "no home directory to find .erlang.cookie in";
        goto done;
    }
    if (snprintf(path, sizeof path, "%s/.erlang.cookie", home) >= (int)sizeof path) {
        *why = "home directory path too long";
        goto done;
    }
    if (access(path, F_OK) != 0 && create_cookie_file(path) != 0 && errno != EEXIST) {
        *why = "cannot create ~/.erlang.cookie";
        goto done;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        *why = "cannot read ~/.erlang.cookie";
        goto done;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    rc = take_cookie(buf, n, out);
    *why = "~/.erlang.cookie is empty or longer than 255 bytes";
done:
    if (f != NULL)
        fclose(f);
    return rc;
}
