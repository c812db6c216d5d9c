/* copy_to / copy_from: files inside a sandbox's workspace, or through the backend when
 * it has copy ops (docker: absolute paths are container paths there). Paths are resolved beneath
 * the workspace with openat2(RESOLVE_BENEATH), so neither ".." nor a symlink the
 * sandbox planted can reach a file outside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/api.h"
#include "api/reply.h"
#include "core/core.h"
#include "core/sandbox.h"

#define MAX_COPY_BYTES (64u << 20)

/* openat2 of path beneath dirfd: no '..' or absolute escape, no magic
 * links, close-on-exec. The caller closes the fd; -1 with errno. */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Creates the parent directories of rel beneath dirfd; those it makes are given to the
 * sandbox's workload uid. */
static int make_parents(const struct sbx_sandbox *sb, int dirfd, const char *rel) {
    char buf[1100];
    int cur = dup(dirfd);
    int rc = -1;
    if (cur < 0)
        return -1;
    snprintf(buf, sizeof buf, "%s", rel);
    /* One component at a time, each relative to the directory just opened: nothing the
     * sandbox renames in between can redirect a mkdir outside the workspace. */
    char *name = buf;
    for (char *p = strchr(name, '/'); p != NULL; name = p + 1, p = strchr(name, '/')) {
        *p = '\0';
        int made = mkdirat(cur, name, 0755) == 0;
        if (!made && errno != EEXIST)
            goto done;
        int next = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            goto done;
        close(cur);
        cur = next;
        if (made && sbx_sandbox_own_fd(sb, cur) != 0)
            goto done;
    }
    rc = 0;
done:
    close(cur);
    return rc;
}

/* Answers {error, {badarg, path, Why}} for errno e; an errno not listed is eacces. */
static void reply_errno(struct sbx_call *call, int e) {
    struct sbx_badarg bad = {.field = "path"};
    bad.why = e == ENOENT ? "enoent" : e == EISDIR ? "eisdir" : e == EXDEV ? "outside_workspace" :
              e == EFBIG ? "too_large" : e == ENOTDIR ? "enotdir" : "eacces";
    sbx_reply_badarg(&call->result, &bad);
}

/* Answer of a backend copy for a call that may be gone: the value, {badarg, path, Why}
 * (reason "badarg", why in detail) or the backend's error. */
static void backend_copy_done(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                              const struct sbx_err *err) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    free(call->state);
    call->state = NULL;
    if (term != NULL && err == NULL) {
        int idx = 0;
        char atom[MAXATOMLEN];
        /* copy_to answers the bare atom ok; copy_from {ok, Binary}. */
        if (ei_decode_atom(term, &idx, atom) == 0 && strcmp(atom, "ok") == 0) {
            ei_x_append_buf(&call->result, term, (int)len);
        } else {
            ei_x_encode_tuple_header(&call->result, 2);
            ei_x_encode_atom(&call->result, "ok");
            ei_x_append_buf(&call->result, term, (int)len);
        }
    } else if (err != NULL && err->reason_atom != NULL && strcmp(err->reason_atom, "badarg") == 0) {
        static const char *const whys[] = {"enoent", "eisdir", "too_large", "enotdir", "eacces",
                                           "einval"};
        struct sbx_badarg bad = {.field = "path", .why = "eacces"};
        for (size_t i = 0; i < sizeof whys / sizeof whys[0]; i++)
            if (strcmp(err->detail, whys[i]) == 0)
                bad.why = whys[i];
        sbx_reply_badarg(&call->result, &bad);
    } else {
        static const struct sbx_err unknown = {"backend", "no answer"};
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), err != NULL ? err : &unknown);
    }
    sbx_call_done(call);
}

/* Hands a copy to sb's backend (data NULL: copy_from): pending, or answered at once
 * with the backend's error. */
static enum sbx_api_status backend_copy(struct sbx_call *call, struct sbx_sandbox *sb,
                                        const char *path, const char *data, size_t len) {
    struct sbx_err err = {0};
    int rc;
    call->state = strdup(sb->id);
    if (call->state == NULL) {
        sbx_reply_error(&call->result, "limit_reached");
        return SBX_API_DONE;
    }
    call->cancel = sbx_api_cancel_backend_call;
    if (data != NULL)
        rc = sb->backend->copy_to(sb, path, data, len, sbx_call_key(call), backend_copy_done, &err);
    else
        rc = sb->backend->copy_from(sb, path, sbx_call_key(call), backend_copy_done, &err);
    if (rc == 0)
        return SBX_API_PENDING;
    free(call->state);
    call->state = NULL;
    call->cancel = NULL;
    sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
    return SBX_API_DONE;
}

/* See api.h. Writes Data to Path beneath the workspace (parents made 0755,
 * the file 0644 and truncated). Synchronous: blocking file I/O on the loop. */
enum sbx_api_status sbx_api_copy_to(struct sbx_call *call) {
    char rel[1100];
    struct sbx_badarg bad = {0};
    int idx, type, size, dirfd = -1, fd = -1;
    struct sbx_sandbox *sb = NULL;
    char id[SBX_ID_MAX + 1];

    idx = call->argv[0];
    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0)
        goto badarg;
    sb = sbx_sandbox_find(sbx_core_get(), id);
    if (sb == NULL || sb->destroying) {
        sbx_reply_error(&call->result, "not_found");
        goto done;
    }
    if (sbx_api_refuse_paused(call, sb))
        goto done;
    idx = call->argv[1];
    if ((sb->backend->copy_to != NULL
             ? sbx_decode_path(call->args.buff, &idx, rel, sizeof rel, &bad)
             : sbx_decode_rel_path(call->args.buff, &idx, rel, sizeof rel, &bad)) != 0)
        goto badarg;
    idx = call->argv[2];
    ei_get_type(call->args.buff, &idx, &type, &size);
    if (type != ERL_BINARY_EXT) {
        bad = (struct sbx_badarg){.field = "data", .why = "not_a_binary"};
        goto badarg;
    }
    const char *data = call->args.buff + idx + 5;
    if (sb->backend->copy_to != NULL) {
        if ((size_t)size > MAX_COPY_BYTES) {
            reply_errno(call, EFBIG);
            goto done;
        }
        return backend_copy(call, sb, rel, data, (size_t)size);
    }
    dirfd = open(sb->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 || make_parents(sb, dirfd, rel) != 0) {
        reply_errno(call, errno);
        goto done;
    }
    /* Non-blocking open: a FIFO planted by the workload must not stall the loop. */
    fd = open_beneath(dirfd, rel, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0644);
    struct stat wst;
    if (fd < 0 || fstat(fd, &wst) != 0) {
        reply_errno(call, errno);
        goto done;
    }
    if (!S_ISREG(wst.st_mode)) {
        reply_errno(call, EISDIR);
        goto done;
    }
    /* A file not yet the workload's becomes its own; one with other names (a hard link
     * the workload made to a file it does not own) is never written through. */
    if (sbx_ident_separate(&sb->ident) && wst.st_uid != sb->ident.uid) {
        if (wst.st_nlink > 1) {
            reply_errno(call, EACCES);
            goto done;
        }
        if (sbx_sandbox_own_fd(sb, fd) != 0) {
            reply_errno(call, errno);
            goto done;
        }
    }
    if (ftruncate(fd, 0) != 0 || fcntl(fd, F_SETFL, 0) != 0) {
        reply_errno(call, errno);
        goto done;
    }
    for (size_t off = 0; off < (size_t)size;) {
        ssize_t n = write(fd, data + off, (size_t)size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            reply_errno(call, errno);
            goto done;
        }
        off += (size_t)n;
    }
    ei_x_encode_atom(&call->result, "ok");
    goto done;
badarg:
    sbx_reply_badarg(&call->result, &bad);
done:
    if (fd >= 0)
        close(fd);
    if (dirfd >= 0)
        close(dirfd);
    return SBX_API_DONE;
}

/* See api.h. Reads a regular file of at most 64 MiB beneath
 * the workspace. Synchronous: blocking file I/O on the loop. */
enum sbx_api_status sbx_api_copy_from(struct sbx_call *call) {
    char rel[1100];
    struct sbx_badarg bad = {0};
    int idx, dirfd = -1, fd = -1;
    char *buf = NULL;
    char id[SBX_ID_MAX + 1];
    struct stat st;

    idx = call->argv[0];
    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0)
        goto badarg;
    struct sbx_sandbox *sb = sbx_sandbox_find(sbx_core_get(), id);
    if (sb == NULL || sb->destroying) {
        sbx_reply_error(&call->result, "not_found");
        goto done;
    }
    if (sbx_api_refuse_paused(call, sb))
        goto done;
    idx = call->argv[1];
    if (sb->backend->copy_from != NULL) {
        if (sbx_decode_path(call->args.buff, &idx, rel, sizeof rel, &bad) != 0)
            goto badarg;
        return backend_copy(call, sb, rel, NULL, 0);
    }
    if (sbx_decode_rel_path(call->args.buff, &idx, rel, sizeof rel, &bad) != 0)
        goto badarg;
    dirfd = open(sb->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    fd = dirfd >= 0 ? open_beneath(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0) : -1;
    if (fd < 0 || fstat(fd, &st) != 0) {
        reply_errno(call, errno);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        reply_errno(call, EISDIR);
        goto done;
    }
    /* A hard link the workload made to a file it does not own is never read through
     * (fs.protected_hardlinks = 0 would let it link any file it can see). */
    if (sbx_ident_separate(&sb->ident) && st.st_uid != sb->ident.uid && st.st_nlink > 1) {
        reply_errno(call, EACCES);
        goto done;
    }
    if ((uint64_t)st.st_size > MAX_COPY_BYTES) {
        reply_errno(call, EFBIG);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        sbx_reply_error(&call->result, "limit_reached");
        goto done;
    }
    fcntl(fd, F_SETFL, 0);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    ei_x_encode_tuple_header(&call->result, 2);
    ei_x_encode_atom(&call->result, "ok");
    ei_x_encode_binary(&call->result, buf, (int)got);
    goto done;
badarg:
    sbx_reply_badarg(&call->result, &bad);
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (dirfd >= 0)
        close(dirfd);
    return SBX_API_DONE;
}
