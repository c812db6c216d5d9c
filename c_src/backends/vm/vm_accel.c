/* accel => auto: KVM when it really works here, else TCG. A host without a usable
 * /dev/kvm is TCG at once. Otherwise, at first use, a probe qemu boots the default
 * kernel under KVM with no root device, so that it panics and, with panic=-1 and
 * -no-reboot, exits 0 within PROBE_TIMEOUT_MS; anything else (QEMU refusing the CPU,
 * a guest that hangs) means TCG. The probe is a child off the loop; VMs waiting for the
 * answer are kept in a list and told once it is known. The answer stands for the life
 * of the daemon. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/vm/vm.h"
#include "core/sandbox.h"
#include "util/log.h"

#define PROBE_TIMEOUT_MS 20000

struct waiter {
    struct waiter *next;
    struct vm_state *vs;
    void (*done)(struct vm_state *vs, const char *accel);
};

static const char *decided;      /* "kvm", "tcg", or NULL */
static struct vm_child *probe;
static struct waiter *waiters;

/* Tells every waiter. */
static void decide(const char *accel) {
    decided = accel;
    while (waiters != NULL) {
        struct waiter *w = waiters;
        waiters = w->next;
        w->done(w->vs, accel);
        free(w);
    }
}

/* The probe ended: exit 0 means KVM booted a kernel to its panic. */
static void probe_done(void *arg, int status, const char *out, size_t len) {
    (void)arg;
    probe = NULL;
    int ok = status == 0 || (status == -2 && len > 0 && strstr(out, "Kernel panic") != NULL);
    SBX_INFO("vm KVM probe", "booted=%d accel=%s", ok, ok ? "kvm" : "tcg");
    decide(ok ? "kvm" : "tcg");
}

/* Starts the probe, or decides tcg at once. */
static void start_probe(struct sbx_core *core) {
    char kernel[4096], initrd[4096];
    const char *why;
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0 || vm_image_default(kernel, sizeof kernel, initrd, sizeof initrd, &why) != 0) {
        if (fd >= 0)
            close(fd);
        decided = "tcg";
        return;
    }
    close(fd);
    char *argv[] = {"qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "pc", "-m", "128",
                    "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
                    "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent", NULL};
    probe = vm_child_run(core, argv, PROBE_TIMEOUT_MS, probe_done, NULL);
    if (probe == NULL)
        decided = "tcg";
}

/* See vm.h. */
const char *vm_accel_auto(struct sbx_core *core) {
    if (decided == NULL && probe == NULL)
        start_probe(core);
    return decided;
}

/* See vm.h. */
void vm_accel_when(struct vm_state *vs, void (*done)(struct vm_state *vs, const char *accel)) {
    const char *a = vm_accel_auto(vs->sb->core);
    struct waiter *w;
    if (a != NULL || (w = calloc(1, sizeof *w)) == NULL) {
        done(vs, a != NULL ? a : "tcg");
        return;
    }
    w->vs = vs;
    w->done = done;
    w->next = waiters;
    waiters = w;
}

/* See vm.h. */
void vm_accel_forget(struct vm_state *vs) {
    for (struct waiter **pp = &waiters; *pp != NULL;) {
        struct waiter *w = *pp;
        if (w->vs == vs) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}
