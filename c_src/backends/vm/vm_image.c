/* Where a VM's kernel, initrd and disk come from. The default image is the folder
 * `make vm-image` fills (vmlinuz, initrd.img, kernel-release): --vm-image DIR, else vm/
 * in the priv folder next to the binary (priv/sandboxd), else the source tree's priv/vm
 * for a binary under _build/c/VARIANT/. A disk is never written: it is checked with
 * `qemu-img info --output=json` (a real image format; raw data only with format => raw,
 * since any file at all is "raw" to qemu-img), then used through a per-sandbox qcow2
 * overlay made with `qemu-img create` in the sandbox folder. Both run as children, off
 * the loop. */
#define _GNU_SOURCE
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/vm/vm.h"
#include "core/sandbox.h"

#define QEMU_IMG_TIMEOUT_MS 30000

static char image_dir[PATH_MAX];

/* See vm.h. */
void sbx_vm_set_image_dir(const char *dir) { snprintf(image_dir, sizeof image_dir, "%s", dir); }

/* 1 if dir holds vmlinuz and initrd.img. */
static int has_image(const char *dir) {
    char k[PATH_MAX + 16], i[PATH_MAX + 16];
    snprintf(k, sizeof k, "%s/vmlinuz", dir);
    snprintf(i, sizeof i, "%s/initrd.img", dir);
    return access(k, R_OK) == 0 && access(i, R_OK) == 0;
}

/* The default image folder into out: --vm-image, or found next to the binary. */
static void find_dir(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n;
    if (image_dir[0] != '\0') {
        snprintf(out, cap, "%s", image_dir);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, cap, "%s", "priv/vm");
        return;
    }
    exe[n] = '\0';
    char *d = dirname(exe);
    snprintf(out, cap, "%s/vm", d);
    if (!has_image(out))
        snprintf(out, cap, "%s/../../../priv/vm", d); /* _build/c/asan/sandboxd */
}

/* See vm.h. */
int vm_image_default(char *kernel, size_t kcap, char *initrd, size_t icap, const char **why) {
    char dir[PATH_MAX];
    find_dir(dir, sizeof dir);
    if (!has_image(dir)) {
        *why = "no vm image: run make vm-image (or pass --vm-image DIR)";
        return -1;
    }
    snprintf(kernel, kcap, "%s/vmlinuz", dir);
    snprintf(initrd, icap, "%s/initrd.img", dir);
    return 0;
}

struct prep {
    struct vm_state *vs;
    void (*done)(struct vm_state *vs, const char *why);
};

/* Ends the preparation with why (NULL: ready). */
static void prep_end(struct vm_state *vs, void (*done)(struct vm_state *, const char *),
                     const char *why) {
    if (why != NULL)
        snprintf(vs->start_why, sizeof vs->start_why, "%.250s", why);
    done(vs, why != NULL ? vs->start_why : NULL);
}

/* The last non-empty line of out (qemu-img's error), into buf. */
static const char *last_line(const char *out, size_t len, char *buf, size_t cap) {
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
        len--;
    size_t start = len;
    while (start > 0 && out[start - 1] != '\n')
        start--;
    snprintf(buf, cap, "%.*s", (int)(len - start > 150 ? 150 : len - start), out + start);
    return buf[0] != '\0' ? buf : "no output";
}

/* qemu-img create finished: the overlay exists, or the start fails. */
static void overlay_done(void *arg, int status, const char *out, size_t len) {
    struct prep *p = arg;
    struct vm_state *vs = p->vs;
    void (*done)(struct vm_state *, const char *) = p->done;
    char line[160], why[200];
    free(p);
    vs->helper = NULL;
    if ((status == 0 || (status == -2 && access(vs->overlay, R_OK) == 0 &&
                         strstr(out, "Formatting") != NULL))) {
        prep_end(vs, done, NULL);
        return;
    }
    snprintf(why, sizeof why, "qemu-img create failed: %s", last_line(out, len, line, sizeof line));
    prep_end(vs, done, why);
}

/* The formats a disk may have without format => raw. */
static int known_format(const char *f) {
    static const char *const ok[] = {"qcow2", "qcow", "vmdk", "vdi", "vhdx", "vpc", "qed", NULL};
    for (int i = 0; ok[i] != NULL; i++)
        if (strcmp(f, ok[i]) == 0)
            return 1;
    return 0;
}

/* qemu-img info finished: the disk's format checked, then the overlay made. */
static void info_done(void *arg, int status, const char *out, size_t len) {
    struct prep *p = arg;
    struct vm_state *vs = p->vs;
    const struct sbx_vm_config *vc = sbx_vm_cfg(&vs->sb->cfg);
    char line[160], why[300], base[PATH_MAX];
    json_t *j = json_loadb(out, len, 0, NULL);
    const char *fmt = json_string_value(json_object_get(j, "format"));
    vs->helper = NULL;
    if (fmt == NULL || (status != 0 && status != -2)) {
        snprintf(why, sizeof why, "disk %s: qemu-img info failed: %s", vc->disk,
                 last_line(out, len, line, sizeof line));
        goto fail;
    }
    if (!known_format(fmt) && !(strcmp(fmt, "raw") == 0 && vc->disk_raw)) {
        snprintf(why, sizeof why,
                 "disk %s is not a disk image (qemu-img sees %s data; image.format => raw "
                 "uses raw data as a disk)", vc->disk, fmt);
        goto fail;
    }
    snprintf(vs->disk_fmt, sizeof vs->disk_fmt, "%s", fmt);
    json_decref(j);
    j = NULL;
    if (realpath(vc->disk, base) == NULL) {
        snprintf(why, sizeof why, "disk %s: cannot resolve its path", vc->disk);
        goto fail;
    }
    vm_path(vs, "disk.qcow2", vs->overlay, sizeof vs->overlay);
    char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", vs->disk_fmt, "-b", base,
                    vs->overlay, NULL};
    vs->helper = vm_child_run(vs->sb->core, argv, QEMU_IMG_TIMEOUT_MS, overlay_done, p);
    if (vs->helper == NULL) {
        snprintf(why, sizeof why, "cannot run qemu-img create");
        goto fail;
    }
    return;
fail:
    json_decref(j);
    void (*done)(struct vm_state *, const char *) = p->done;
    free(p);
    prep_end(vs, done, why);
}

/* See vm.h. */
int vm_image_prepare(struct vm_state *vs, void (*done)(struct vm_state *vs, const char *why)) {
    const struct sbx_vm_config *vc = sbx_vm_cfg(&vs->sb->cfg);
    struct prep *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(vs->start_why, sizeof vs->start_why, "out of memory");
        return -1;
    }
    p->vs = vs;
    p->done = done;
    char *argv[] = {"qemu-img", "info", "--output=json", "-U", vc->disk, NULL};
    vs->helper = vm_child_run(vs->sb->core, argv, QEMU_IMG_TIMEOUT_MS, info_done, p);
    if (vs->helper == NULL) {
        free(p);
        snprintf(vs->start_why, sizeof vs->start_why, "cannot run qemu-img (is qemu-utils installed?)");
        return -1;
    }
    return 0;
}
