/* Bringing up the guest as pid 1 (shared by the agent and the hostile test inits): the
 * pseudo file systems, the console, the kernel modules listed in the initramfs, the agent's
 * virtio-serial port, and powering off. */
#ifndef SBX_AGENT_BOOT_H
#define SBX_AGENT_BOOT_H

/* The list of modules to load, one path per line, in load order (written by
 * scripts/vm-image.sh from the modules' dependencies). Missing: nothing to load. */
#define AGENT_MODULES_LIST "/lib/modules/sandboxd.load"

/* Mounts /dev (devtmpfs), /proc and /sys where nothing is mounted yet, and as pid 1 also
 * /dev/pts, /dev/shm, /tmp and /run; points fds 0-2 at /dev/console when they are not open.
 * Logs failures. */
void boot_mounts(int pid1);

/* Loads every module of AGENT_MODULES_LIST with finit_module (already loaded is fine).
 * Returns how many failed. */
int boot_modules(void);

/* Waits up to timeout_ms for the virtio port named `name` and opens it (O_RDWR, non-blocking,
 * close-on-exec). The fd, or -1 (logged). */
int boot_open_port(const char *name, int timeout_ms);

/* Kills every other process, syncs and powers the machine off. Does not return. */
void boot_poweroff(const char *why) __attribute__((noreturn));

/* Value of "key=" on the kernel command line into out (NUL-terminated), or -1 if absent. */
int boot_cmdline_get(const char *key, char *out, unsigned cap);

#endif
