/* Pure tar work for the archive endpoints (libarchive, in memory): one file in, the first
 * entry out. No I/O: unit-tested in test/c/test_docker.c. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/docker/dk.h"

/* Growing output buffer for archive_write_open. */
struct tar_out {
    char *buf;
    size_t len, cap;
};

/* libarchive write callback: appends to the tar_out. */
static la_ssize_t tar_write_cb(struct archive *a, void *arg, const void *data, size_t n) {
    struct tar_out *o = arg;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 16384;
        while (cap < o->len + n)
            cap *= 2;
        char *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            archive_set_error(a, ENOMEM, "out of memory");
            return -1;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, data, n);
    o->len += n;
    return (la_ssize_t)n;
}

/* See dk.h. ustar/pax entry, mode 0644, owner root, mtime now. */
int dk_tar_make(const char *name, const char *data, size_t len, char **out, size_t *out_len) {
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    struct tar_out o = {0};
    int rc = -1;
    if (a == NULL || e == NULL || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 10240) != ARCHIVE_OK ||
        archive_write_open2(a, &o, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK)
        goto done;
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_mtime(e, time(NULL), 0);
    if (archive_write_header(a, e) != ARCHIVE_OK)
        goto done;
    if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
        goto done;
    if (archive_write_close(a) != ARCHIVE_OK)
        goto done;
    *out = o.buf;
    *out_len = o.len;
    o.buf = NULL;
    rc = 0;
done:
    if (e != NULL)
        archive_entry_free(e);
    if (a != NULL)
        archive_write_free(a);
    free(o.buf);
    return rc;
}

/* See dk.h. Only the first entry is looked at. */
int dk_tar_read_first(const char *tar, size_t len, size_t max, char **out, size_t *out_len,
                      const char **why) {
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    char *buf = NULL;
    int rc = -1;
    *why = "einval";
    if (a == NULL || archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, tar, len) != ARCHIVE_OK)
        goto done;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) {
        *why = "enoent";
        goto done;
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        goto done;
    if (archive_entry_filetype(e) != AE_IFREG) {
        *why = "eisdir";
        goto done;
    }
    la_int64_t size = archive_entry_size(e);
    if (size < 0 || (uint64_t)size > max) {
        *why = "too_large";
        goto done;
    }
    buf = malloc((size_t)size + 1);
    if (buf == NULL)
        goto done;
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t n = archive_read_data(a, buf + got, (size_t)size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)size)
        goto done;
    *out = buf;
    *out_len = got;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (a != NULL)
        archive_read_free(a);
    return rc;
}
