/* sbx-hostile: a stand-in for a broken or hostile guest agent, the /init of the test images
 * _build/vm/test/initrd-hostile-{garbage,huge,silent}.img (scripts/vm-image.sh --hostile).
 * It brings the guest up like the agent (mounts, modules, the port) and then, by the mode in
 * /etc/hostile-mode:
 *   garbage  answers every connection with an endless stream of pseudo-random bytes;
 *   huge     answers the first bytes of a connection with a frame header announcing a
 *            4 GiB frame, then says nothing more;
 *   silent   reads and discards everything, never writes.
 * It reads (and discards) what the host sends in every mode, and never exits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "boot.h"
#include "log.h"
#include "vmproto/agent_proto.h"

int main(void) {
    char mode[32] = "silent";
    uint8_t junk[4096], in[4096];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int huge_sent = 0;
    boot_mounts(getpid() == 1);
    int fd = open("/etc/hostile-mode", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, mode, sizeof mode - 1);
        mode[n > 0 ? n : 0] = '\0';
        mode[strcspn(mode, "\n")] = '\0';
        close(fd);
    }
    agent_log("hostile init, mode %s", mode);
    boot_modules();
    int port = boot_open_port(AGENT_PORT_NAME, 30000);
    if (port < 0)
        boot_poweroff("no agent port");
    for (;;) {
        int garbage = strcmp(mode, "garbage") == 0;
        struct pollfd p = {port, POLLIN | (garbage ? POLLOUT : 0), 0};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            boot_poweroff("poll failed");
        if (p.revents & POLLHUP) {
            huge_sent = 0;
            usleep(20000); /* the host is away: look again soon */
            continue;
        }
        if (p.revents & POLLIN) {
            ssize_t n = read(port, in, sizeof in);
            if (n > 0 && strcmp(mode, "huge") == 0 && !huge_sent) {
                static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, AGENT_HELLO, 0, 0, 0, 1};
                huge_sent = write(port, hdr, sizeof hdr) == (ssize_t)sizeof hdr;
            }
        }
        if (garbage && (p.revents & POLLOUT)) {
            for (size_t i = 0; i < sizeof junk; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                junk[i] = (uint8_t)x;
            }
            ssize_t w = write(port, junk, sizeof junk);
            (void)w;
        }
    }
}
