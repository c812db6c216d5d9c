/* The state directory: state_dir/sandboxes/<id>/record, one folder per sandbox.
 *
 * A record is replaced by writing record.tmp, fsync, rename over record, fsync of the
 * folder (and of sandboxes/ when the folder is new), so a crash leaves the old record or
 * the new one; a leftover record.tmp is never read. Folders are removed with
 * openat/unlinkat on directory fds, never following a symlink and never descending
 * into another mount. Ids must match [A-Za-z0-9][A-Za-z0-9_.-]{0,62} (EINVAL). */
#define _GNU_SOURCE
#include "core/journal.h"

#include "core/journal_sync.h"
#include "util/fdio.h"
#include "util/fdreserve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SANDBOXES "sandboxes"
#define RECORD "record"
#define RECORD_TMP "record.tmp"
#define RECORD_MAX ((size_t)16 << 20)
#define ID_MAX 63
#define RM_MAX_DEPTH 64     /* deeper folders are moved up, so fds and stack stay bounded */
#define RM_MAX_PASSES 65536 /* over one folder, while each pass removes something */

/* 1 if id is a sandbox id (so never "", ".", ".." nor anything with a '/'). */
static int valid_id(const char *id) {
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (n >= ID_MAX || !(alnum || (n > 0 && (c == '_' || c == '.' || c == '-'))))
            return 0;
    }
    return n > 0;
}

/* Creates dir (mode) unless it is already a directory (with follow, also a symlink to
 * one). 0 (*created says which), or -1 (errno; ENOTDIR if something else is there). */
static int make_dir(const char *dir, mode_t mode, int follow, int *created) {
    struct stat st;
    *created = 0;
    if (mkdir(dir, mode) == 0) {
        *created = 1;
        return 0;
    }
    if (errno != EEXIST)
        return -1;
    if ((follow ? stat(dir, &st) : lstat(dir, &st)) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* fsyncs the directory at path. 0 or -1 (errno). */
static int sync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Makes a removal in the directory open at fd durable: with the syncer running, its next
 * syncfs does (group commit: the loop never waits on the disk), else an fsync now. */
static void removal_durable(int fd) {
    if (sbx_journal_sync_running())
        sbx_journal_sync_request();
    else
        (void)fsync(fd);
}

/* Formats state_dir/sandboxes[/id] into out (cap bytes). 0, or -1 (ENAMETOOLONG) with
 * out unchanged. */
static int format_path(char *out, size_t cap, const char *state_dir, const char *id) {
    char tmp[PATH_MAX];
    int n = id != NULL ? snprintf(tmp, sizeof tmp, "%s/" SANDBOXES "/%s", state_dir, id)
                       : snprintf(tmp, sizeof tmp, "%s/" SANDBOXES, state_dir);
    if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(out, tmp, (size_t)n + 1);
    return 0;
}

/* Creates state_dir and state_dir/sandboxes, mode 0700, and its missing parents, mode
 * 0711 (searchable, not listable: a workload with a uid of its own can then reach its
 * workspace by path once the core opens the state dir itself for searching). Existing
 * folders keep their mode. 0 or -1 (errno); what was made stays on failure. */
int sbx_journal_init(const char *state_dir) {
    char path[PATH_MAX];
    size_t n = strlen(state_dir);
    int created;
    int rc = -1;

    if (n == 0) {
        errno = ENOENT;
        goto done;
    }
    if (format_path(path, sizeof path, state_dir, NULL) != 0)
        goto done;
    /* mkdir -p state_dir: path holds state_dir followed by "/sandboxes". */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        path[i] = '\0';
        int made = make_dir(path, i < n ? 0711 : 0700, 1, &created);
        path[i] = '/';
        if (made != 0)
            goto done;
    }
    if (make_dir(path, 0700, 1, &created) != 0)
        goto done;
    rc = 0;
done:
    return rc;
}

/* Writes the sandbox folder's path into out; with create, makes it (and sandboxes/) if
 * missing. *created (may be NULL) tells whether the folder was made now. out is left
 * unchanged on failure. */
static int sandbox_dir(const char *state_dir, const char *id, int create, char *out,
                       size_t cap, int *created) {
    char path[PATH_MAX];
    int made = 0;
    int rc = -1;

    if (!valid_id(id)) {
        errno = EINVAL;
        goto done;
    }
    if (format_path(path, sizeof path, state_dir, id) != 0 || strlen(path) >= cap) {
        errno = ENAMETOOLONG;
        goto done;
    }
    if (create) {
        char parent[PATH_MAX];
        int pmade;
        if (format_path(parent, sizeof parent, state_dir, NULL) != 0 ||
            make_dir(parent, 0700, 1, &pmade) != 0 || make_dir(path, 0700, 0, &made) != 0)
            goto done;
    }
    memcpy(out, path, strlen(path) + 1);
    if (created != NULL)
        *created = made;
    rc = 0;
done:
    return rc;
}

/* See journal.h. out is left unchanged on failure. */
int sbx_journal_dir(const char *state_dir, const char *id, int create, char *out, size_t cap) {
    return sandbox_dir(state_dir, id, create, out, cap, NULL);
}


/* Replaces id's record (the caller keeps buf). On failure the old record, if any, is
 * left as it was and no record.tmp remains (the folder may have been created). With the
 * syncer running (journal_sync.h) no fsync happens here: one is asked for. */
int sbx_journal_save(const char *state_dir, const char *id, const char *buf, size_t len) {
    char dir[PATH_MAX];
    int created = 0;
    int dfd = -1, fd = -1, tmp_made = 0;
    int rc = -1, saved;

    if (sandbox_dir(state_dir, id, 1, dir, sizeof dir, &created) != 0)
        goto done;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        goto done;
    if (unlinkat(dfd, RECORD_TMP, 0) != 0 && errno != ENOENT)
        goto done;
    fd = openat(dfd, RECORD_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto done;
    tmp_made = 1;
    /* With the syncer running, durability comes from its next syncfs (group commit);
     * the rename below already makes the record survive a SIGKILL of sandboxd. */
    int inline_sync = !sbx_journal_sync_running();
    if (sbx_write_all(fd, buf, len) != 0 || (inline_sync && fsync(fd) != 0))
        goto done;
    int close_rc = close(fd);
    fd = -1;
    if (close_rc != 0)
        goto done;
    if (renameat(dfd, RECORD_TMP, dfd, RECORD) != 0)
        goto done;
    tmp_made = 0;
    if (!inline_sync) {
        sbx_journal_sync_request();
        rc = 0;
        goto done;
    }
    if (fsync(dfd) != 0)
        goto done;
    if (created) {
        char parent[PATH_MAX];
        if (format_path(parent, sizeof parent, state_dir, NULL) != 0 || sync_dir(parent) != 0)
            goto done;
    }
    rc = 0;
done:
    saved = errno;
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlinkat(dfd, RECORD_TMP, 0);
    if (dfd >= 0)
        close(dfd);
    errno = saved;
    return rc;
}

/* ---- removal ------------------------------------------------------------------------- */

struct rm_ctx {
    int top_fd;         /* the sandbox folder */
    dev_t dev;          /* its filesystem: never left */
    unsigned long moved; /* names handed out to folders moved up */
    int err;            /* first errno, 0 if all went well */
};

/* Records e (EIO when e is 0) as the removal's error, unless one is recorded already. */
static void rm_fail(struct rm_ctx *c, int e) {
    if (c->err == 0)
        c->err = e != 0 ? e : EIO;
}

static int rm_contents(struct rm_ctx *c, int fd, int depth);

/* 1 if the directory open at fd is another mount's root (or on another device), else 0
 * after making it writable and searchable by its owner (it is about to go; a workload
 * may have left it read-only). */
static int other_mount(const struct rm_ctx *c, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != c->dev)
        return 1;
#ifdef STATX_ATTR_MOUNT_ROOT
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, &sx) == 0 &&
        (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
        (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return 1;
#endif
    if ((st.st_mode & 0700) != 0700)
        (void)fchmod(fd, (st.st_mode & 07777) | 0700);
    return 0;
}

/* Moves the folder name in dfd up into the sandbox folder under a fresh name, for a later
 * pass there. 0, or -1 (recorded in c) leaving it where it was. */
static int rm_move_up(struct rm_ctx *c, int dfd, const char *name) {
    int rc = -1;
    int e = EEXIST;
    for (int tries = 0; tries < 16; tries++) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, ".sbx-rm-%lu", c->moved++);
        if (renameat2(dfd, name, c->top_fd, tmp, RENAME_NOREPLACE) == 0) {
            rc = 0;
            goto done;
        }
        e = errno;
        if (e != EEXIST)
            break;
    }
    rm_fail(c, e);
done:
    return rc;
}

/* Removes the folder name in dfd and what it holds; one that is too deep is moved up
 * into the sandbox folder instead (so that open fds and the stack stay bounded). 0 if it
 * is gone (or moved), -1 otherwise (recorded in c; what could not be removed stays). */
static int rm_dir_at(struct rm_ctx *c, int dfd, const char *name, int depth) {
    int rc = -1;
    int fd = -1;

    if (depth >= RM_MAX_DEPTH) {
        rc = rm_move_up(c, dfd, name);
        goto done;
    }
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES && fchmodat(dfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = 0;
        else
            rm_fail(c, errno);
        goto done;
    }
    if (other_mount(c, fd)) {
        rm_fail(c, EXDEV);
        goto done;
    }
    int owned = fd;
    fd = -1;
    if (rm_contents(c, owned, depth + 1) != 0)
        goto done;
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        rm_fail(c, errno);
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Empties the folder open at fd (taken over and closed): passes over it until one
 * removes nothing. 0 if it is empty now, -1 otherwise (recorded in c). */
static int rm_contents(struct rm_ctx *c, int fd, int depth) {
    DIR *d = fdopendir(fd);
    int rc = -1;

    if (d == NULL) {
        rm_fail(c, errno);
        close(fd);
        goto done;
    }
    for (int pass = 0; pass < RM_MAX_PASSES; pass++) {
        size_t seen = 0, removed = 0;
        struct dirent *e;
        if (pass > 0)
            rewinddir(d);
        errno = 0;
        while ((e = readdir(d)) != NULL) {
            const char *name = e->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            seen++;
            int isdir = e->d_type == DT_DIR;
            if (e->d_type == DT_UNKNOWN) {
                struct stat st;
                if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                    if (errno != ENOENT)
                        rm_fail(c, errno);
                    errno = 0;
                    continue;
                }
                isdir = S_ISDIR(st.st_mode);
            }
            if (isdir) {
                if (rm_dir_at(c, dirfd(d), name, depth) == 0)
                    removed++;
            } else if (unlinkat(dirfd(d), name, 0) == 0 || errno == ENOENT) {
                removed++;
            } else {
                rm_fail(c, errno);
            }
            errno = 0;
        }
        if (errno != 0) {
            rm_fail(c, errno);
            goto done;
        }
        if (seen == 0) {
            rc = 0;
            goto done;
        }
        if (removed == 0)
            goto done;
    }
    rm_fail(c, ENOTEMPTY);
done:
    if (d != NULL)
        closedir(d);
    return rc;
}

/* One removal pass of sbx_journal_remove. */
static int remove_once(const char *state_dir, const char *id) {
    char parent[PATH_MAX];
    struct rm_ctx c = {.top_fd = -1};
    struct stat st;
    int pfd = -1;
    int rc = -1, saved;

    if (!valid_id(id)) {
        errno = EINVAL;
        goto done;
    }
    if (format_path(parent, sizeof parent, state_dir, NULL) != 0)
        goto done;
    pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        if (errno == ENOENT)
            rc = 0;
        goto done;
    }
    if (fstatat(pfd, id, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            rc = 0;
        goto done;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(pfd, id, 0) == 0 || errno == ENOENT)
            rc = 0;
        goto done;
    }
    c.top_fd = openat(pfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c.top_fd < 0)
        goto done;
    if (fstat(c.top_fd, &st) != 0)
        goto done;
    c.dev = st.st_dev;
    (void)other_mount(&c, c.top_fd); /* for its chmod */
    if (unlinkat(c.top_fd, RECORD, 0) != 0 && errno != ENOENT)
        goto done;
    removal_durable(c.top_fd);
    int dup_fd = fcntl(c.top_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        goto done;
    if (rm_contents(&c, dup_fd, 1) != 0) {
        errno = c.err;
        goto done;
    }
    if (unlinkat(pfd, id, AT_REMOVEDIR) != 0 && errno != ENOENT)
        goto done;
    removal_durable(pfd);
    rc = 0;
done:
    saved = errno;
    if (c.top_fd >= 0)
        close(c.top_fd);
    if (pfd >= 0)
        close(pfd);
    errno = saved;
    return rc;
}

/* Removes id's folder and everything in it, its record first (so a folder that could not
 * be removed whole is not taken for a sandbox). Symlinks are removed, never followed;
 * other mounts are not entered. At the open-file limit the descriptor reserve is spent on
 * a second try (and taken back). -1 (errno of the first failure) leaves what could not be
 * removed. */
int sbx_journal_remove(const char *state_dir, const char *id) {
    int rc = remove_once(state_dir, id);
    if (rc != 0 && sbx_fd_exhausted(errno)) {
        sbx_fd_reserve_release();
        rc = remove_once(state_dir, id);
        sbx_fd_reserve_fill();
    }
    return rc;
}

/* ---- reading back -------------------------------------------------------------------- */

/* Reads the record of the folder name in pfd into a new buffer (*out, the caller frees;
 * at least one byte allocated). 0, or -1 if there is no readable regular record of at
 * most RECORD_MAX bytes (*out untouched). */
static int read_record(int pfd, const char *name, char **out, size_t *len) {
    int dfd = -1, fd = -1;
    char *buf = NULL;
    size_t have = 0;
    struct stat st;
    int rc = -1;

    dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        goto done;
    fd = openat(dfd, RECORD, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
        goto done;
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (size_t)st.st_size > RECORD_MAX) {
        errno = EINVAL;
        goto done;
    }
    /* One byte more than it should hold, to see whether it grew past the limit. */
    size_t cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL)
        goto done;
    for (;;) {
        if (have == cap) {
            if (cap > RECORD_MAX) {
                errno = EFBIG;
                goto done;
            }
            size_t ncap = cap * 2 > RECORD_MAX + 1 ? RECORD_MAX + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL)
                goto done;
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    if (have > RECORD_MAX) {
        errno = EFBIG;
        goto done;
    }
    *out = buf;
    *len = have;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* qsort comparator over an array of C strings. */
static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Passes each readable record to fn in order of id (buf valid during the call). 0 when
 * sandboxes/ is missing; -1 (errno) if it cannot be read, before fn is ever called. */
int sbx_journal_each(const char *state_dir, sbx_journal_each_fn fn, void *arg) {
    char path[PATH_MAX];
    DIR *d = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int count = 0;
    int rc = -1, saved;

    if (format_path(path, sizeof path, state_dir, NULL) != 0)
        goto done;
    d = opendir(path);
    if (d == NULL) {
        if (errno == ENOENT)
            rc = 0;
        goto done;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                goto done;
            break;
        }
        if (!valid_id(e->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap > 0 ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (nn == NULL)
                goto done;
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL)
            goto done;
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char *buf;
        size_t len;
        if (read_record(dirfd(d), names[i], &buf, &len) != 0)
            continue;
        fn(arg, names[i], buf, len);
        free(buf);
        count++;
    }
    rc = count;
done:
    saved = errno;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (d != NULL)
        closedir(d);
    errno = saved;
    return rc;
}
