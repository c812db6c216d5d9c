/* The vm type's own config keys (accel, network, ports, boot_timeout_ms, image), kept in
 * the config's ext as a struct sbx_vm_config. memory_mb, cpus, cmd and env are common
 * keys; the vm schema gives memory_mb and cpus their vm defaults (256, 1). */
#ifndef SBX_BACKENDS_VM_VM_CONFIG_H
#define SBX_BACKENDS_VM_VM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

enum sbx_vm_accel { SBX_VM_ACCEL_AUTO = 0, SBX_VM_ACCEL_KVM, SBX_VM_ACCEL_TCG };
enum sbx_vm_net { SBX_VM_NET_NONE = 0, SBX_VM_NET_USER };

#define SBX_VM_PORTS_MAX 32
#define SBX_VM_MEMORY_DEFAULT_MB 256
#define SBX_VM_BOOT_TIMEOUT_DEFAULT_MS 120000

/* host TCP port (127.0.0.1) forwarded to guest TCP port through user-mode networking. */
struct sbx_vm_port {
    int host;
    int guest;
};

struct sbx_vm_config {
    enum sbx_vm_accel accel;
    enum sbx_vm_net network;
    int64_t boot_timeout_ms;
    char *kernel;      /* NULL: the default image's */
    char *initrd;      /* NULL: the default image's (only when kernel is NULL too) */
    char *disk;        /* NULL: none; else an absolute path to a base image */
    int disk_raw;      /* image.format => raw: raw data accepted as a disk */
    struct sbx_vm_port ports[SBX_VM_PORTS_MAX];
    size_t nports;
};

extern const struct sbx_config_schema sbx_vm_config_schema;

/* The vm part of a decoded config (never NULL for a vm config that decoded). */
static inline const struct sbx_vm_config *sbx_vm_cfg(const struct sbx_config *c) {
    return (const struct sbx_vm_config *)c->ext;
}

#endif
