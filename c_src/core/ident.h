/* Who a sandbox's workload runs as, and who owns the sandbox's own files.
 *
 * When sandboxd runs as root, each process or beam_node sandbox gets a uid and gid of its
 * own from a range sandboxd owns (like systemd's DynamicUser; default 61184-65519): a uid
 * that no passwd or group entry names and no running process holds. The choice is kept in
 * the sandbox's journal record, so a restarted sandboxd claims it again, and is given back
 * at destroy. A named `user` is the caller's explicit choice; without root, every workload
 * shares sandboxd's own uid (nothing else is possible).
 *
 * Ownership of the sandbox's own files (its workspace, and whatever sandboxd creates in
 * it or in the sandbox's HOME for the workload) is one step: sbx_ident_own_fd(). */
#ifndef SBX_CORE_IDENT_H
#define SBX_CORE_IDENT_H

#include <ei.h>
#include <stddef.h>
#include <sys/types.h>

#define SBX_UID_FIRST_DEFAULT 61184u
#define SBX_UID_LAST_DEFAULT 65519u

enum sbx_ident_kind {
    SBX_IDENT_SHARED = 0, /* sandboxd's own uid (sandboxd is not root, or no local workload) */
    SBX_IDENT_DYNAMIC,    /* a uid of its own from the pool */
    SBX_IDENT_NAMED       /* the config's `user` (resolved: uid/gid valid) */
};

struct sbx_ident {
    enum sbx_ident_kind kind;
    int resolved;         /* NAMED: the user exists; DYNAMIC: always 1 */
    uid_t uid;
    gid_t gid;
};

/* The range of dynamic uids: enabled only when sandboxd is root and not switched off. */
struct sbx_uid_pool {
    int enabled;
    uid_t first, last;
    uid_t next;              /* where the next search starts (round robin: a freed uid
                                is handed out again as late as possible) */
    unsigned char *used;     /* one bit per uid of [first, last] */
    unsigned char *busy;     /* held by a process or named by a passwd or group entry at
                                the last scan (NULL: no scan yet) */
    long long full_at_ms;    /* when a rescan last found the range full (monotonic; 0: never
                                since, or a uid came back) */
    long long full_claims_ns; /* the claims folder's mtime then (another instance's put) */
    int claims_fd;           /* the claims folder shared by every sandboxd of the host
                                (sbx_uid_pool_share), or -1 */
    char node[256];          /* this sandboxd's node name, the claims' content */
};

/* Where sandboxd instances of one host record which uid each has handed out: one file per
 * uid, named by the uid, holding the node name of the sandboxd that has it. /run is
 * cleared at boot, and with it the claims of instances that never came back. */
#define SBX_UID_CLAIMS_DIR "/run/sandboxd/uids"

/* Sets up pool for [first, last] (first <= last, last - first < 1<<20), enabled only if
 * enable is set. 0, or -1 when out of memory (pool disabled). */
int sbx_uid_pool_init(struct sbx_uid_pool *pool, int enable, uid_t first, uid_t last);

/* Shares the range with the other sandboxd instances of the host: from now on a uid is
 * handed out (take, claim) only once a claim file in dir names this node, and put removes
 * it, so two instances never give one uid to two sandboxes, and one never signals the
 * other's workloads. A claim already naming this node (left by an earlier run of it) is
 * this node's. 0, or -1 (errno; claims stay off, the pool serves this instance only). */
int sbx_uid_pool_share(struct sbx_uid_pool *pool, const char *dir, const char *node);

/* Frees the pool's memory and closes its claims folder; safe on a zeroed pool. */
void sbx_uid_pool_free(struct sbx_uid_pool *pool);

/* Hands out a uid (gid = uid) of the range that the pool has not handed out, no passwd or
 * group entry names, and no running process held (real, effective, saved or fs uid or
 * gid) at the last scan of /proc and of the passwd and group entries: the first take
 * scans, later ones only when the range looks full. Blocking (call at create). 0, or -1 (errno EAGAIN: the range
 * is exhausted; ENOSYS: the pool is disabled). */
int sbx_uid_pool_take(struct sbx_uid_pool *pool, uid_t *out);

/* Marks uid as handed out (adoption of a journalled sandbox). 0; -1 (EEXIST) if it is
 * already, here or, when shared, by another instance; a uid outside the range is accepted
 * and not tracked. */
int sbx_uid_pool_claim(struct sbx_uid_pool *pool, uid_t uid);

/* Gives uid back (destroy); a uid outside the range or not handed out is ignored. */
void sbx_uid_pool_put(struct sbx_uid_pool *pool, uid_t uid);

/* 1 if a running process has uid (or gid, when gid is not (gid_t)-1) as its real,
 * effective, saved or fs id, else 0. Reads /proc (blocking). */
int sbx_ident_in_use(uid_t uid, gid_t gid);

/* Gives the file open at fd (any fd, O_PATH included) to the workload's uid and gid when
 * it runs as a uid of its own (dynamic, or named and not sandboxd's own uid); otherwise
 * changes nothing. 0, or -1 (errno). The one place where sandboxd hands a file to a
 * sandbox. */
int sbx_ident_own_fd(const struct sbx_ident *id, int fd);

/* 1 if the workload runs as a uid other than sandboxd's own (its files must be reachable
 * and owned by it). */
int sbx_ident_separate(const struct sbx_ident *id);

/* Resolves a user name or numeric uid to uid/gid (blocking NSS lookup: call at create,
 * not in hot paths). 0, or -1 if there is no such user. */
int sbx_ident_lookup_user(const char *user, uid_t *uid, gid_t *gid);

/* Encodes an ident for the journal and sandbox map: {dynamic, Uid, Gid} | {named, Uid,
 * Gid} | shared. Decoding accepts the same; -1 on anything else. */
void sbx_ident_encode(const struct sbx_ident *id, ei_x_buff *x);
int sbx_ident_decode(const char *buf, int *idx, struct sbx_ident *out);

#endif
