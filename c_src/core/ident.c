/* Dynamic uids for sandboxes and the ownership of a sandbox's own files (see ident.h). */
#define _GNU_SOURCE
#include "core/ident.h"
#include "util/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL_MAX_SPAN (1u << 20)

/* See ident.h. A disabled pool holds no memory. */
int sbx_uid_pool_init(struct sbx_uid_pool *pool, int enable, uid_t first, uid_t last) {
    memset(pool, 0, sizeof *pool);
    pool->claims_fd = -1;
    pool->first = first;
    pool->last = last;
    pool->next = first;
    if (!enable || last < first || last - first >= POOL_MAX_SPAN)
        return 0;
    pool->used = calloc((size_t)(last - first) / 8 + 1, 1);
    if (pool->used == NULL)
        return -1;
    pool->enabled = 1;
    return 0;
}

/* See ident.h. */
void sbx_uid_pool_free(struct sbx_uid_pool *pool) {
    free(pool->used);
    pool->used = NULL;
    free(pool->busy);
    pool->busy = NULL;
    pool->enabled = 0;
    if (pool->claims_fd >= 0)
        close(pool->claims_fd);
    pool->claims_fd = -1;
}

/* mkdir -p path with mode 0700 for the folders it makes. 0 or -1 (errno). */
static int make_dirs(const char *path) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* See ident.h. */
int sbx_uid_pool_share(struct sbx_uid_pool *pool, const char *dir, const char *node) {
    if (!pool->enabled)
        return 0;
    if (strlen(node) >= sizeof pool->node) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (make_dirs(dir) != 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    snprintf(pool->node, sizeof pool->node, "%s", node);
    pool->claims_fd = fd;
    return 0;
}

/* 1 if the claim file name (in the claims folder) holds exactly this node's name. */
static int claim_is_ours(const struct sbx_uid_pool *pool, const char *name) {
    char buf[258];
    size_t len = strlen(pool->node);
    int fd = openat(pool->claims_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n == (ssize_t)len + 1 && memcmp(buf, pool->node, len) == 0 && buf[len] == '\n';
}

/* Claims uid in the shared folder: 0 if the claim now names this node (made now, or left
 * by an earlier run of it), -1 if another instance has it or the file cannot be made. */
static int claim_file(struct sbx_uid_pool *pool, uid_t uid) {
    char name[24], buf[258];
    size_t len = strlen(pool->node);
    int rc = -1;
    if (pool->claims_fd < 0)
        return 0;
    snprintf(name, sizeof name, "%u", (unsigned)uid);
    int fd = openat(pool->claims_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    if (fd >= 0) {
        buf[0] = '\n';
        if (write(fd, pool->node, len) == (ssize_t)len && write(fd, buf, 1) == 1)
            rc = 0;
        close(fd);
        if (rc != 0)
            (void)unlinkat(pool->claims_fd, name, 0);
        return rc;
    }
    if (errno != EEXIST)
        return -1;
    return claim_is_ours(pool, name) ? 0 : -1;
}

/* Removes this node's claim on uid (someone else's is left alone). */
static void unclaim_file(struct sbx_uid_pool *pool, uid_t uid) {
    char name[24];
    if (pool->claims_fd < 0)
        return;
    snprintf(name, sizeof name, "%u", (unsigned)uid);
    if (claim_is_ours(pool, name))
        (void)unlinkat(pool->claims_fd, name, 0);
}

/* Bit i of map. */
static int bit_get(const unsigned char *map, size_t i) { return (map[i / 8] >> (i % 8)) & 1; }
/* Sets bit i of map to v. */
static void bit_set(unsigned char *map, size_t i, int v) {
    if (v)
        map[i / 8] |= (unsigned char)(1u << (i % 8));
    else
        map[i / 8] &= (unsigned char)~(1u << (i % 8));
}

/* Reads /proc/<name>/status into buf (NUL-terminated, truncated to cap-1). 0 or -1. */
static int read_status(const char *name, char *buf, size_t cap) {
    char path[300];
    size_t have = 0;
    snprintf(path, sizeof path, "/proc/%.255s/status", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (have + 1 < cap) {
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    buf[have] = '\0';
    return have > 0 ? 0 : -1;
}

/* The four ids (real, effective, saved, fs) after "key:\t" in a status text; 0 or -1. */
static int status_ids(const char *text, const char *key, unsigned long ids[4]) {
    const char *p = strstr(text, key);
    if (p == NULL)
        return -1;
    p += strlen(key);
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        ids[i] = strtoul(p, &end, 10);
        if (end == p || errno != 0)
            return -1;
        p = end;
    }
    return 0;
}

/* Calls fn(arg, uids[4], gids[4]) for each live (not zombie) process in /proc whose
 * status can be read. */
static void each_process(void (*fn)(void *arg, const unsigned long *uids, const unsigned long *gids),
                         void *arg) {
    char text[4096];
    DIR *d = opendir("/proc");
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        unsigned long uids[4], gids[4];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (read_status(e->d_name, text, sizeof text) != 0 ||
            status_ids(text, "\nUid:", uids) != 0 || status_ids(text, "\nGid:", gids) != 0)
            continue;
        /* A zombie holds nothing (and is gone once its parent reaps it). */
        const char *st = strstr(text, "\nState:\t");
        if (st != NULL && (st[8] == 'Z' || st[8] == 'X'))
            continue;
        fn(arg, uids, gids);
    }
    closedir(d);
}

/* How long a rescan that found the range full stands. */
#define FULL_RESCAN_MS 2000

/* The claims folder's modification time in ns (a claim made or given back by any
 * instance changes it); 0 when the pool shares no folder or it cannot be read. */
static long long claims_mtime_ns(const struct sbx_uid_pool *pool) {
    struct stat st;
    if (pool->claims_fd < 0 || fstat(pool->claims_fd, &st) != 0)
        return 0;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

struct busy_scan {
    const struct sbx_uid_pool *pool;
    unsigned char *busy;
};

/* each_process callback: marks in-range ids held by a process as busy. */
static void mark_busy(void *arg, const unsigned long *uids, const unsigned long *gids) {
    struct busy_scan *s = arg;
    for (int i = 0; i < 8; i++) {
        unsigned long v = i < 4 ? uids[i] : gids[i - 4];
        if (v >= s->pool->first && v <= s->pool->last)
            bit_set(s->busy, v - s->pool->first, 1);
    }
}

/* The first free candidate from pool->next on: not handed out, not busy at the last scan
 * (process or passwd/group entry), and claimed here. 0 with *out, or -1. */
static int take_free(struct sbx_uid_pool *pool, uid_t *out) {
    size_t span = (size_t)(pool->last - pool->first) + 1;
    size_t start = pool->next >= pool->first && pool->next <= pool->last ? pool->next - pool->first : 0;
    for (size_t k = 0; k < span; k++) {
        size_t i = (start + k) % span;
        uid_t cand = pool->first + (uid_t)i;
        if (bit_get(pool->used, i) || bit_get(pool->busy, i))
            continue;
        if (claim_file(pool, cand) != 0)
            continue; /* another sandboxd of this host has it */
        bit_set(pool->used, i, 1);
        pool->next = i + 1 < span ? cand + 1 : pool->first;
        *out = cand;
        return 0;
    }
    return -1;
}

/* Marks id busy in pool->busy when it is in the range. */
static void mark_id(struct sbx_uid_pool *pool, unsigned long id) {
    if (id >= pool->first && id <= pool->last)
        bit_set(pool->busy, id - pool->first, 1);
}

/* Rebuilds pool->busy: ids held by a process (one /proc scan) and ids named by a passwd
 * or group entry (one enumeration of each, instead of two lookups per candidate: with
 * nss-systemd a lookup walks several userdb folders). 0, or -1 (ENOMEM). */
static int scan_busy(struct sbx_uid_pool *pool) {
    size_t span = (size_t)(pool->last - pool->first) + 1;
    struct passwd *pw;
    struct group *gr;
    if (pool->busy == NULL)
        pool->busy = calloc(span / 8 + 1, 1);
    if (pool->busy == NULL) {
        errno = ENOMEM;
        return -1;
    }
    memset(pool->busy, 0, span / 8 + 1);
    setpwent();
    while ((pw = getpwent()) != NULL)
        mark_id(pool, pw->pw_uid);
    endpwent();
    setgrent();
    while ((gr = getgrent()) != NULL)
        mark_id(pool, gr->gr_gid);
    endgrent();
    struct busy_scan s = {pool, pool->busy};
    each_process(mark_busy, &s);
    return 0;
}

/* See ident.h. /proc is scanned at the first take and again only when the range looks
 * full: a uid this pool hands out and gets back was swept at its destroy, and the claims
 * keep other instances' uids apart, so the scan only finds strays (a uid used outside
 * sandboxd), and a stray found once is skipped until the next scan. passwd and group
 * are enumerated with each scan. A rescan that finds the range full is not repeated for
 * FULL_RESCAN_MS, unless a uid came back here or another instance gave one back (its claim
 * went): creates past the range answer at once instead of each scanning /proc (thousands
 * of processes) on the loop. */
int sbx_uid_pool_take(struct sbx_uid_pool *pool, uid_t *out) {
    if (!pool->enabled) {
        errno = ENOSYS;
        return -1;
    }
    int fresh = pool->busy == NULL;
    if (fresh && scan_busy(pool) != 0)
        return -1;
    if (take_free(pool, out) == 0)
        return 0;
    if (!fresh && (pool->full_at_ms == 0 || sbx_mono_ms() - pool->full_at_ms >= FULL_RESCAN_MS ||
                   claims_mtime_ns(pool) != pool->full_claims_ns)) {
        if (scan_busy(pool) == 0 && take_free(pool, out) == 0)
            return 0;
        pool->full_at_ms = sbx_mono_ms();
        pool->full_claims_ns = claims_mtime_ns(pool);
    }
    errno = EAGAIN;
    return -1;
}

/* See ident.h. */
int sbx_uid_pool_claim(struct sbx_uid_pool *pool, uid_t uid) {
    if (!pool->enabled || uid < pool->first || uid > pool->last)
        return 0;
    if (bit_get(pool->used, uid - pool->first) || claim_file(pool, uid) != 0) {
        errno = EEXIST;
        return -1;
    }
    bit_set(pool->used, uid - pool->first, 1);
    return 0;
}

/* See ident.h. */
void sbx_uid_pool_put(struct sbx_uid_pool *pool, uid_t uid) {
    if (pool->enabled && uid >= pool->first && uid <= pool->last &&
        bit_get(pool->used, uid - pool->first)) {
        bit_set(pool->used, uid - pool->first, 0);
        /* Swept at its destroy: no longer busy, and the range is no longer full. */
        if (pool->busy != NULL)
            bit_set(pool->busy, uid - pool->first, 0);
        pool->full_at_ms = 0;
        unclaim_file(pool, uid);
    }
}

struct use_scan {
    unsigned long uid, gid;
    int check_gid;
    int found;
};

/* each_process callback: notes a process holding the uid (or gid). */
static void note_use(void *arg, const unsigned long *uids, const unsigned long *gids) {
    struct use_scan *s = arg;
    for (int i = 0; i < 4; i++)
        if (uids[i] == s->uid || (s->check_gid && gids[i] == s->gid))
            s->found = 1;
}

/* See ident.h. */
int sbx_ident_in_use(uid_t uid, gid_t gid) {
    struct use_scan s = {uid, gid, gid != (gid_t)-1, 0};
    each_process(note_use, &s);
    return s.found;
}

/* See ident.h. */
int sbx_ident_separate(const struct sbx_ident *id) {
    if (id->kind == SBX_IDENT_DYNAMIC)
        return 1;
    return id->kind == SBX_IDENT_NAMED && id->resolved && id->uid != geteuid();
}

/* See ident.h. fchownat with AT_EMPTY_PATH works on O_PATH descriptors too. */
int sbx_ident_own_fd(const struct sbx_ident *id, int fd) {
    if (!sbx_ident_separate(id))
        return 0;
    return fchownat(fd, "", id->uid, id->gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

/* See ident.h. */
void sbx_ident_encode(const struct sbx_ident *id, ei_x_buff *x) {
    if (id->kind == SBX_IDENT_SHARED || (id->kind == SBX_IDENT_NAMED && !id->resolved)) {
        ei_x_encode_atom(x, "shared");
        return;
    }
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, id->kind == SBX_IDENT_DYNAMIC ? "dynamic" : "named");
    ei_x_encode_ulong(x, id->uid);
    ei_x_encode_ulong(x, id->gid);
}

/* See ident.h. out is written only on success. */
int sbx_ident_decode(const char *buf, int *idx, struct sbx_ident *out) {
    char atom[MAXATOMLEN];
    int i = *idx, arity;
    unsigned long uid, gid;
    if (ei_decode_atom(buf, &i, atom) == 0) {
        if (strcmp(atom, "shared") != 0)
            return -1;
        memset(out, 0, sizeof *out);
        *idx = i;
        return 0;
    }
    if (ei_decode_tuple_header(buf, &i, &arity) != 0 || arity != 3 ||
        ei_decode_atom(buf, &i, atom) != 0 || ei_decode_ulong(buf, &i, &uid) != 0 ||
        ei_decode_ulong(buf, &i, &gid) != 0 || uid >= (unsigned long)(uid_t)-1 ||
        gid >= (unsigned long)(gid_t)-1)
        return -1;
    if (strcmp(atom, "dynamic") == 0)
        out->kind = SBX_IDENT_DYNAMIC;
    else if (strcmp(atom, "named") == 0)
        out->kind = SBX_IDENT_NAMED;
    else
        return -1;
    out->resolved = 1;
    out->uid = (uid_t)uid;
    out->gid = (gid_t)gid;
    *idx = i;
    return 0;
}

/* See ident.h. A numeric uid without a passwd entry gets gid = uid. Uses getpw*'s static
 * buffers (blocking NSS lookup). */
int sbx_ident_lookup_user(const char *user, uid_t *uid, gid_t *gid) {
    char *end;
    struct passwd *pw;
    errno = 0;
    unsigned long v = strtoul(user, &end, 10);
    if (*user != '\0' && *end == '\0' && errno == 0) {
        pw = getpwuid((uid_t)v);
        *uid = (uid_t)v;
        *gid = pw != NULL ? pw->pw_gid : (gid_t)v;
        return 0;
    }
    pw = getpwnam(user);
    if (pw == NULL)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}
