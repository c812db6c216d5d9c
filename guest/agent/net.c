/* Network and hostname set-up with ioctls (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Sets an IPv4 address-type field of ifr (SIOCSIFADDR / SIOCSIFNETMASK) on interface. */
static int set_addr(int s, const char *ifname, unsigned long req, const char *addr) {
    struct ifreq ifr;
    struct sockaddr_in sin;
    memset(&ifr, 0, sizeof ifr);
    memset(&sin, 0, sizeof sin);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin.sin_addr);
    memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    return ioctl(s, req, &ifr);
}

/* IFF_UP (and RUNNING) on ifname. */
static int set_up(int s, const char *ifname) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* The default route through gw. */
static int add_default_route(int s, const char *gw) {
    struct rtentry rt;
    struct sockaddr_in *a;
    memset(&rt, 0, sizeof rt);
    a = (struct sockaddr_in *)&rt.rt_dst;
    a->sin_family = AF_INET;
    a = (struct sockaddr_in *)&rt.rt_genmask;
    a->sin_family = AF_INET;
    a = (struct sockaddr_in *)&rt.rt_gateway;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, gw, &a->sin_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    return ioctl(s, SIOCADDRT, &rt);
}

/* Writes text to path (replacing it); errors are logged, not fatal. */
static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        agent_log("write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

void net_setup(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("socket: %s", strerror(errno));
        return;
    }
    if (set_up(s, "lo") != 0)
        agent_log("lo up: %s", strerror(errno));
    if (if_nametoindex("eth0") == 0) {
        agent_log("no eth0: network none");
    } else if (set_addr(s, "eth0", SIOCSIFADDR, "10.0.2.15") != 0 ||
               set_addr(s, "eth0", SIOCSIFNETMASK, "255.255.255.0") != 0 ||
               set_up(s, "eth0") != 0 || add_default_route(s, "10.0.2.2") != 0) {
        agent_log("eth0: %s", strerror(errno));
    } else {
        mkdir("/etc", 0755);
        write_file("/etc/resolv.conf", "nameserver 10.0.2.3\n");
        agent_log("eth0 10.0.2.15/24 via 10.0.2.2");
    }
    close(s);
}

void net_hostname(const char *name) {
    char line[128];
    if (sethostname(name, strlen(name)) != 0)
        agent_log("sethostname: %s", strerror(errno));
    mkdir("/etc", 0755);
    snprintf(line, sizeof line, "%s\n", name);
    write_file("/etc/hostname", line);
    snprintf(line, sizeof line, "127.0.0.1 localhost\n127.0.1.1 %s\n", name);
    write_file("/etc/hosts", line);
}
