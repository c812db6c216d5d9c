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

/* Reads the cookie file at path into out: the file must be a regular file without any
 * group or other permission bits. 0, or -1 with *why set (out unchanged). */
static int read_cookie_file(const char *path, char *out, const char **why) {
    char buf[SBX_COOKIE_MAX + 2];
    struct stat st;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *why = "cannot open the cookie file";
        goto done;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "the cookie file is not a regular file";
        goto done;
    }
    if ((st.st_mode & 077) != 0) {
        *why = "the cookie file must be accessible by its owner only (chmod 400)";
        goto done;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        *why = "cannot read the cookie file";
        goto done;
    }
    size_t len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    rc = take_cookie(buf, len, out);
    *why = "the cookie file is empty or longer than 255 bytes";
done:
    memset(buf, 0, sizeof buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* See cookie.h. Blocking file I/O (start-up only); the cookie is never logged. */
int sbx_cookie_resolve(const char *explicit_cookie, const char *cookie_file, char *out,
                       const char **why) {
    char path[4096];
    int rc = -1;

    if (explicit_cookie != NULL) {
        rc = take_cookie(explicit_cookie, strlen(explicit_cookie), out);
        *why = "the --cookie value is empty or longer than 255 bytes";
        return rc;
    }
    if (cookie_file != NULL)
        return read_cookie_file(cookie_file, out, why);
    const char *env = getenv("SANDBOXD_COOKIE");
    if (env != NULL && env[0] != '\0') {
        rc = take_cookie(env, strlen(env), out);
        *why = "$SANDBOXD_COOKIE is longer than 255 bytes";
        return rc;
    }
    const char *home = home_dir();
    if (home == NULL) {
        *why = "no home directory to find .erlang.cookie in";
        return -1;
    }
    if (snprintf(path, sizeof path, "%s/.erlang.cookie", home) >= (int)sizeof path) {
        *why = "home directory path too long";
        return -1;
    }
    if (access(path, F_OK) != 0 && create_cookie_file(path) != 0 && errno != EEXIST) {
        *why = "cannot create ~/.erlang.cookie";
        return -1;
    }
    if (read_cookie_file(path, out, why) != 0) {
        *why = "~/.erlang.cookie is unreadable, empty, too long, or open to group/others";
        return -1;
    }
    return 0;
}

/* See cookie.h. Every entry named SANDBOXD_COOKIE goes (a hand-made environ may hold
 * several); their bytes were the process's own (initial stack or heap), so writing them
 * is safe. */
void sbx_cookie_scrub_env(void) {
    static const char key[] = "SANDBOXD_COOKIE=";
    for (;;) {
        char *entry = NULL;
        for (char **e = environ; e != NULL && *e != NULL; e++) {
            if (strncmp(*e, key, sizeof key - 1) == 0) {
                entry = *e;
                break;
            }
        }
        if (entry == NULL)
            return;
        size_t len = strlen(entry);
        unsetenv("SANDBOXD_COOKIE");
        memset(entry, 0, len);
    }
}

/* See cookie.h. */
void sbx_cookie_scrub_arg(char *arg) {
    if (arg != NULL)
        memset(arg, 0, strlen(arg));
}
