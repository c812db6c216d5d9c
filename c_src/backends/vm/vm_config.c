/* The vm type's config keys: accel, network, ports, boot_timeout_ms and image. Files are
 * checked here as far as a stat goes (absolute, present, readable); whether a disk
 * really is a disk image is asked of qemu-img when the sandbox starts (vm_image.c),
 * off the loop. */
#define _GNU_SOURCE
#include "backends/vm/vm_config.h"

#include <ei.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/term_decode.h"

enum { K_ACCEL, K_NETWORK, K_PORTS, K_BOOT_TIMEOUT_MS, K_IMAGE, K_COUNT };

static const char *const KEYS[K_COUNT] = {
    [K_ACCEL] = "accel", [K_NETWORK] = "network", [K_PORTS] = "ports",
    [K_BOOT_TIMEOUT_MS] = "boot_timeout_ms", [K_IMAGE] = "image",
};
static const char *const ACCEL_NAMES[] = {"auto", "kvm", "tcg"};
static const char *const NET_NAMES[] = {"none", "user"};

/* Why atoms of the vm keys alone. */
static const char WHY_MORE_THAN_HOST[] = "more_than_host_memory";
static const char WHY_NO_FILE[] = "no_such_file";
static const char WHY_NOT_REGULAR[] = "not_a_regular_file";
static const char WHY_NEEDS_USER_NET[] = "needs_network_user";
static const char WHY_NEEDS_KERNEL[] = "needs_kernel";

/* The vm part of c, made on first use. NULL when out of memory. */
static struct sbx_vm_config *ext(struct sbx_config *c) {
    if (c->ext == NULL) {
        struct sbx_vm_config *v = calloc(1, sizeof *v);
        if (v == NULL)
            return NULL;
        v->boot_timeout_ms = SBX_VM_BOOT_TIMEOUT_DEFAULT_MS;
        c->ext = v;
    }
    return c->ext;
}

/* One forwarded port: {HostPort, GuestPort} or #{host, guest}, both 1..65535. */
static int get_port(const char *buf, int *idx, struct sbx_vm_port *out, struct sbx_badarg *err) {
    static const struct sbx_td_key PK[2] = {{"host", 1}, {"guest", 1}};
    long long h, g;
    int i = *idx, arity = 0;
    if (sbx_td_tag(buf, i) == ERL_SMALL_TUPLE_EXT) {
        if (ei_decode_tuple_header(buf, &i, &arity) != 0 || arity != 2) {
            sbx_td_fail(err, "ports", SBX_WHY_UNKNOWN_VALUE);
            return -1;
        }
        if (sbx_td_int(buf, &i, "ports", 1, 65535, &h, err) != 0 ||
            sbx_td_int(buf, &i, "ports", 1, 65535, &g, err) != 0)
            return -1;
    } else {
        struct sbx_td_pos pos[2];
        int end = i, j;
        if (sbx_td_scan_map(buf, &end, "ports", PK, 2, 1, pos, err) != 0)
            return -1;
        if (pos[0].val < 0 || pos[1].val < 0) {
            sbx_td_fail(err, "ports", SBX_WHY_MISSING);
            return -1;
        }
        j = pos[0].val;
        if (sbx_td_int(buf, &j, "ports", 1, 65535, &h, err) != 0)
            return -1;
        j = pos[1].val;
        if (sbx_td_int(buf, &j, "ports", 1, 65535, &g, err) != 0)
            return -1;
        i = end;
    }
    out->host = (int)h;
    out->guest = (int)g;
    *idx = i;
    return 0;
}

/* ports: a proper list of at most SBX_VM_PORTS_MAX forwards. */
static int get_ports(const char *buf, int *idx, struct sbx_vm_config *v, struct sbx_badarg *err) {
    int i = *idx, arity = 0;
    if (sbx_td_list_open(buf, &i, &arity) != 0) {
        sbx_td_fail(err, "ports", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    if (arity > SBX_VM_PORTS_MAX) {
        sbx_td_fail(err, "ports", SBX_WHY_TOO_MANY);
        return -1;
    }
    for (int k = 0; k < arity; k++)
        if (get_port(buf, &i, &v->ports[k], err) != 0)
            return -1;
    if (sbx_td_list_close(buf, &i, arity) != 0) {
        sbx_td_fail(err, "ports", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    v->nports = (size_t)arity;
    *idx = i;
    return 0;
}

/* An absolute path to a readable regular file, into *out (the caller's). */
static int get_file(const char *buf, int *idx, const char *field, char **out,
                    struct sbx_badarg *err) {
    struct stat st;
    char *s = NULL;
    if (sbx_td_nonempty(buf, idx, field, 0, SBX_TD_PATH_MAX, &s, err) != 0)
        return -1;
    if (s[0] != '/')
        sbx_td_fail(err, field, SBX_WHY_NOT_ABSOLUTE);
    else if (stat(s, &st) != 0 || access(s, R_OK) != 0)
        sbx_td_fail(err, field, WHY_NO_FILE);
    else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        sbx_td_fail(err, field, WHY_NOT_REGULAR);
    else {
        free(*out);
        *out = s;
        return 0;
    }
    free(s);
    return -1;
}

enum { I_KERNEL, I_INITRD, I_DISK, I_FORMAT, I_COUNT };
static const struct sbx_td_key IMAGE_KEYS[I_COUNT] = {
    [I_KERNEL] = {"kernel", 1}, [I_INITRD] = {"initrd", 1}, [I_DISK] = {"disk", 1},
    [I_FORMAT] = {"format", 1},
};
static const char *const FORMAT_NAMES[] = {"auto", "raw"};

/* image: `default`, or #{kernel, initrd, disk, format => auto | raw}. */
static int get_image(const char *buf, int *idx, struct sbx_vm_config *v, struct sbx_badarg *err) {
    static const char *const DEFAULT_NAME[] = {"default"};
    struct sbx_td_pos pos[I_COUNT];
    int end = *idx, j, fmt = 0;
    if (sbx_td_tag(buf, end) != ERL_MAP_EXT)
        return sbx_td_enum(buf, idx, "image", DEFAULT_NAME, 1, &fmt, err);
    if (sbx_td_scan_map(buf, &end, "image", IMAGE_KEYS, I_COUNT, 1, pos, err) != 0)
        return -1;
    static const char *const FIELDS[3] = {"kernel", "initrd", "disk"};
    char **dst[3] = {&v->kernel, &v->initrd, &v->disk};
    for (int k = 0; k < 3; k++) {
        j = pos[k].val;
        if (j >= 0 && get_file(buf, &j, FIELDS[k], dst[k], err) != 0)
            return -1;
    }
    j = pos[I_FORMAT].val;
    if (j >= 0 && sbx_td_enum(buf, &j, "format", FORMAT_NAMES, 2, &fmt, err) != 0)
        return -1;
    v->disk_raw = fmt == 1;
    *idx = end;
    return 0;
}

/* Decodes the value of KEYS[k] into c's vm part (see struct sbx_config_schema). */
static int decode(size_t k, const char *buf, int *idx, struct sbx_config *c,
                  struct sbx_badarg *err) {
    struct sbx_vm_config *v = ext(c);
    long long n;
    int e = 0;
    if (v == NULL) {
        sbx_td_fail(err, KEYS[k], SBX_WHY_NO_MEMORY);
        return -1;
    }
    switch (k) {
    case K_ACCEL:
        if (sbx_td_enum(buf, idx, KEYS[k], ACCEL_NAMES, 3, &e, err) != 0)
            return -1;
        v->accel = (enum sbx_vm_accel)e;
        return 0;
    case K_NETWORK:
        if (sbx_td_enum(buf, idx, KEYS[k], NET_NAMES, 2, &e, err) != 0)
            return -1;
        v->network = (enum sbx_vm_net)e;
        return 0;
    case K_PORTS: return get_ports(buf, idx, v, err);
    case K_BOOT_TIMEOUT_MS:
        if (sbx_td_int(buf, idx, KEYS[k], 100, 3600000, &n, err) != 0)
            return -1;
        v->boot_timeout_ms = n;
        return 0;
    default: return get_image(buf, idx, v, err);
    }
}

/* Rules across keys: vm defaults for memory_mb and cpus, memory within the host's, ports
 * only with network => user, an initrd only with a kernel. Owns nothing. */
static int finish(struct sbx_config *c, struct sbx_badarg *err) {
    struct sbx_vm_config *v = ext(c);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (v == NULL) {
        sbx_td_fail(err, "config", SBX_WHY_NO_MEMORY);
        return -1;
    }
    if (c->memory_mb == 0)
        c->memory_mb = SBX_VM_MEMORY_DEFAULT_MB;
    if (c->cpus == 0)
        c->cpus = 1;
    if (c->cpus != (double)(long)c->cpus || c->cpus > 64) {
        sbx_td_fail(err, "cpus", SBX_WHY_OUT_OF_RANGE);
        return -1;
    }
    if (pages > 0 && psize > 0 && (double)c->memory_mb * 1048576.0 >= (double)pages * (double)psize) {
        sbx_td_fail(err, "memory_mb", WHY_MORE_THAN_HOST);
        return -1;
    }
    if (v->nports > 0 && v->network != SBX_VM_NET_USER) {
        sbx_td_fail(err, "ports", WHY_NEEDS_USER_NET);
        return -1;
    }
    if (v->initrd != NULL && v->kernel == NULL) {
        sbx_td_fail(err, "initrd", WHY_NEEDS_KERNEL);
        return -1;
    }
    return 0;
}

/* Frees c's vm part. */
static void vm_free(struct sbx_config *c) {
    struct sbx_vm_config *v = c->ext;
    if (v == NULL)
        return;
    free(v->kernel);
    free(v->initrd);
    free(v->disk);
    free(v);
    c->ext = NULL;
}

const struct sbx_config_schema sbx_vm_config_schema = {
    .keys = KEYS, .nkeys = K_COUNT, .decode = decode, .finish = finish, .free = vm_free,
};
