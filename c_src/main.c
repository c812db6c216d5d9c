/* sandboxd: a hidden Erlang node in C that orchestrates sandboxes.
 *
 * main wires the pieces: command line, cookie, one libevent loop, the node, its
 * registered services; SIGTERM/SIGINT close every connection (peers see nodedown),
 * unregister from epmd and exit 0. */
#define _GNU_SOURCE
#include <ei.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "core/core.h"
#include "dist/node.h"
#include "dist/tls.h"
#include "rpc/services.h"
#include "backends/beam/beam.h"
#include "backends/vm/vm_info.h"
#include "util/cookie.h"
#include "util/fdreserve.h"
#include "util/fdlimit.h"
#include "util/log.h"
#include "web/web.h"

struct options {
    char name[SBX_NODE_NAME_MAX + 1];
    char *cookie;            /* --cookie: points into argv, wiped once read */
    const char *cookie_file; /* --cookie-file */
    int net_ticktime_s;
    int handshake_timeout_ms;
    size_t max_packet;
    size_t max_handshakes;
    int max_handshakes_given;
    size_t max_handshakes_per_addr;
    char state_dir[256];
    int shutdown_destroy;
    int no_dynamic_uids;
    int stop_on_stdin_eof;
    uid_t uid_first, uid_last;
    const char *http;       /* --http ADDR:PORT */
    char *http_token;       /* --http-token: points into argv, wiped once read */
    size_t http_max_conns;  /* --http-max-connections (0: the default) */
    int proto_tls;              /* --proto-dist inet_tls */
    const char *ssl_dist_optfile; /* --ssl-dist-optfile */
};

/* Prints the command-line help to out. */
static void usage(FILE *out) {
    fputs("usage: sandboxd [options]\n"
          "  --sname NAME          short node name (default sandboxd): NAME@<short host>\n"
          "  --name NAME@HOST      long node name\n"
          "  --cookie-file PATH    read the distribution cookie from PATH (a file only its\n"
          "                        owner may access, like ~/.erlang.cookie); read at start;\n"
          "                        not together with --cookie\n"
          "  --cookie COOKIE       the cookie itself; every local user can read it in\n"
          "                        /proc while sandboxd starts: prefer --cookie-file\n"
          "                        Without either: $SANDBOXD_COOKIE (removed from the\n"
          "                        environment once read), else ~/.erlang.cookie, created\n"
          "                        like erl does if missing\n"
          "  --net-ticktime SECS   silence after which a peer is dropped (default 60;\n"
          "                        a peer ticking faster is held to its own ticktime)\n"
          "  --handshake-timeout MS  drop a peer that has not finished the handshake\n"
          "                        (default 7000, at most 10000)\n"
          "  --max-packet BYTES    largest distribution packet accepted once a peer has\n"
          "                        proven the cookie (default 64 MiB; before: 300 bytes)\n"
          "  --max-handshakes N    accepted connections still in the handshake, overall\n"
          "                        (default 1024, at most a quarter of the open-file\n"
          "                        limit); a newcomer past it evicts the oldest one\n"
          "                        among the source addresses that hold the most\n"
          "  --max-handshakes-per-addr N  the same per source address (default 32); a\n"
          "                        newcomer past it is refused at once\n"
          "  --state-dir DIR       journal, logs and workspaces (default\n"
          "                        /var/lib/sandboxd/<node> as root, else\n"
          "                        $XDG_STATE_HOME/sandboxd/<node>, else ~/.local/state/...)\n"
          "  --shutdown-policy P   keep | destroy: what a clean stop does to running\n"
          "                        sandboxes (default keep: adopted at the next start)\n"
          "  --log-level LEVEL     error | warn | info | debug (default info)\n"
          "  --erl PATH            erl for beam_node sandboxes (else $SANDBOXD_ERL, else PATH)\n"
          "  --vm-image DIR        the default vm image (vmlinuz, initrd.img; else vm/ next to\n"
          "                        the binary's priv folder)\n"
          "  --proto-dist P        inet_tcp (default) | inet_tls: distribution over TLS, as\n"
          "                        erl's -proto_dist inet_tls; needs --ssl-dist-optfile\n"
          "  --ssl-dist-optfile F  the cluster's ssl_dist optfile (erl's -ssl_dist_optfile);\n"
          "                        beam_node sandboxes get the same options\n"
          "  --uid-range FIRST-LAST | off\n"
          "                        uids (and gids) given one per process/beam_node sandbox\n"
          "                        when running as root (default 61184-65519); off: they\n"
          "                        run as sandboxd's own user unless `user` says otherwise\n"
          "  --stop-on-stdin-eof   stop (as on SIGTERM) when standard input reaches its end:\n"
          "                        for a parent that starts sandboxd through a pipe (an\n"
          "                        Erlang port) and may die without stopping it\n"
          "  --http ADDR:PORT      serve /metrics, /healthz, /readyz, /api/ and the live\n"
          "                        view over HTTP (off by default; port 0: any free one).\n"
          "                        A non-loopback address needs a token\n"
          "  --http-token TOKEN    every HTTP request then needs `Authorization: Bearer\n"
          "                        TOKEN` or the page's login; enables stop and destroy\n"
          "                        on the page (else $SANDBOXD_HTTP_TOKEN, removed from\n"
          "                        the environment once read)\n"
          "  --http-max-connections N  HTTP connections open at once (default 1024, at\n"
          "                        most an eighth of the open-file limit); past it new\n"
          "                        clients wait until one closes\n"
          "  --version             print the version and exit\n"
          "  --help                this text\n",
          out);
}

/* Parses a bounded positive integer; -1 if s is not one. */
static long parse_num(const char *s, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max)
        return -1;
    return v;
}

/* --uid-range: "off", or FIRST-LAST with 1000 <= FIRST <= LAST < 2^31 and at most 2^20
 * ids (never root's or the low system ids). 0, or -1 if s is neither. */
static int parse_uid_range(const char *s, struct options *o) {
    char first[16];
    const char *dash = strchr(s, '-');
    if (strcmp(s, "off") == 0) {
        o->no_dynamic_uids = 1;
        return 0;
    }
    if (dash == NULL || (size_t)(dash - s) >= sizeof first)
        return -1;
    memcpy(first, s, (size_t)(dash - s));
    first[dash - s] = '\0';
    long a = parse_num(first, 1000, 0x7fffffffL), b = parse_num(dash + 1, 1000, 0x7fffffffL);
    if (a < 0 || b < a || b - a >= (1L << 20))
        return -1;
    o->uid_first = (uid_t)a;
    o->uid_last = (uid_t)b;
    o->no_dynamic_uids = 0;
    return 0;
}

/* The host name up to its first dot, into out: 0, or -1 if it is unknown or does not fit. */
static int short_host(char *out, size_t cap) {
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        return -1;
    host[sizeof host - 1] = '\0';
    char *dot = strchr(host, '.');
    if (dot != NULL)
        *dot = '\0';
    return snprintf(out, cap, "%s", host) < (int)cap ? 0 : -1;
}

/* Fills opts from argv. Returns 0 to run, 1 to exit 0 (help, version), -1 on error. */
static int parse_args(int argc, char **argv, struct options *o) {
    enum { O_SNAME = 1, O_NAME, O_COOKIE, O_TICK, O_HS, O_MAXPKT, O_LOG, O_VERSION, O_HELP,
           O_STATE, O_SHUTDOWN, O_ERL, O_UIDS, O_COOKIE_FILE, O_MAXHS, O_MAXHS_ADDR, O_STDIN_EOF,
           O_HTTP, O_HTTP_TOKEN, O_HTTP_MAXCONN, O_PROTO, O_SSL_OPTFILE, O_VM_IMAGE };
    static const struct option longopts[] = {
        {"sname", required_argument, NULL, O_SNAME},
        {"name", required_argument, NULL, O_NAME},
        {"cookie", required_argument, NULL, O_COOKIE},
        {"cookie-file", required_argument, NULL, O_COOKIE_FILE},
        {"net-ticktime", required_argument, NULL, O_TICK},
        {"handshake-timeout", required_argument, NULL, O_HS},
        {"max-packet", required_argument, NULL, O_MAXPKT},
        {"max-handshakes", required_argument, NULL, O_MAXHS},
        {"max-handshakes-per-addr", required_argument, NULL, O_MAXHS_ADDR},
        {"log-level", required_argument, NULL, O_LOG},
        {"state-dir", required_argument, NULL, O_STATE},
        {"shutdown-policy", required_argument, NULL, O_SHUTDOWN},
        {"erl", required_argument, NULL, O_ERL},
        {"vm-image", required_argument, NULL, O_VM_IMAGE},
        {"uid-range", required_argument, NULL, O_UIDS},
        {"stop-on-stdin-eof", no_argument, NULL, O_STDIN_EOF},
        {"http", required_argument, NULL, O_HTTP},
        {"http-token", required_argument, NULL, O_HTTP_TOKEN},
        {"http-max-connections", required_argument, NULL, O_HTTP_MAXCONN},
        {"proto-dist", required_argument, NULL, O_PROTO},
        {"ssl-dist-optfile", required_argument, NULL, O_SSL_OPTFILE},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    char host[256];
    const char *sname = "sandboxd";
    const char *lname = NULL;
    enum sbx_log_level level;
    long v;
    int c;

    o->net_ticktime_s = 60;
    o->handshake_timeout_ms = 7000;
    o->uid_first = SBX_UID_FIRST_DEFAULT;
    o->uid_last = SBX_UID_LAST_DEFAULT;
    o->max_packet = 64u << 20;
    o->max_handshakes = 1024;
    o->max_handshakes_per_addr = 32;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_SNAME: sname = optarg; lname = NULL; break;
        case O_NAME: lname = optarg; break;
        case O_COOKIE: o->cookie = optarg; break;
        case O_COOKIE_FILE: o->cookie_file = optarg; break;
        case O_STDIN_EOF: o->stop_on_stdin_eof = 1; break;
        case O_ERL: sbx_beam_set_erl(optarg); break;
        case O_VM_IMAGE: sbx_vm_set_image_dir(optarg); break;
        case O_HTTP: o->http = optarg; break;
        case O_HTTP_TOKEN: o->http_token = optarg; break;
        case O_HTTP_MAXCONN:
            if ((v = parse_num(optarg, 1, 65536)) < 0)
                goto bad;
            o->http_max_conns = (size_t)v;
            break;
        case O_PROTO:
            if (strcmp(optarg, "inet_tls") == 0)
                o->proto_tls = 1;
            else if (strcmp(optarg, "inet_tcp") == 0)
                o->proto_tls = 0;
            else
                goto bad;
            break;
        case O_SSL_OPTFILE: o->ssl_dist_optfile = optarg; break;
        case O_UIDS:
            if (parse_uid_range(optarg, o) != 0)
                goto bad;
            break;
        case O_TICK:
            if ((v = parse_num(optarg, 1, 3600)) < 0)
                goto bad;
            o->net_ticktime_s = (int)v;
            break;
        case O_HS:
            if ((v = parse_num(optarg, 100, 10000)) < 0)
                goto bad;
            o->handshake_timeout_ms = (int)v;
            break;
        case O_MAXPKT:
            if ((v = parse_num(optarg, 1024, 1L << 30)) < 0)
                goto bad;
            o->max_packet = (size_t)v;
            break;
        case O_MAXHS:
            if ((v = parse_num(optarg, 1, 65536)) < 0)
                goto bad;
            o->max_handshakes = (size_t)v;
            o->max_handshakes_given = 1;
            break;
        case O_MAXHS_ADDR:
            if ((v = parse_num(optarg, 1, 65536)) < 0)
                goto bad;
            o->max_handshakes_per_addr = (size_t)v;
            break;
        case O_LOG:
            if (sbx_log_parse_level(optarg, &level) != 0)
                goto bad;
            sbx_log_set_level(level);
            break;
        case O_STATE:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof o->state_dir)
                goto bad;
            snprintf(o->state_dir, sizeof o->state_dir, "%s", optarg);
            break;
        case O_SHUTDOWN:
            if (strcmp(optarg, "keep") == 0)
                o->shutdown_destroy = 0;
            else if (strcmp(optarg, "destroy") == 0)
                o->shutdown_destroy = 1;
            else
                goto bad;
            break;
        case O_VERSION: printf("sandboxd %s\n", SBX_VERSION); return 1;
        case O_HELP: usage(stdout); return 1;
        default: goto bad;
        }
    }
    if (optind != argc || (o->cookie != NULL && o->cookie_file != NULL) ||
        (o->proto_tls != (o->ssl_dist_optfile != NULL)))
        goto bad;
    if (lname != NULL) {
        if (strchr(lname, '@') == NULL)
            goto bad;
        snprintf(o->name, sizeof o->name, "%s", lname);
    } else {
        if (strchr(sname, '@') != NULL) {
            snprintf(o->name, sizeof o->name, "%s", sname);
        } else {
            if (short_host(host, sizeof host) != 0)
                goto bad;
            if (snprintf(o->name, sizeof o->name, "%s@%s", sname, host) >= (int)sizeof o->name)
                goto bad;
        }
    }
    if (!sbx_node_name_valid(o->name, strlen(o->name)))
        goto bad;
    if (o->state_dir[0] == '\0') {
        const char *xdg = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        int n;
        /* As root, a place workloads (other uids) can reach their workspaces through;
         * /root is closed to them. */
        if (geteuid() == 0)
            n = snprintf(o->state_dir, sizeof o->state_dir, "/var/lib/sandboxd/%s", o->name);
        else if (xdg != NULL && xdg[0] == '/')
            n = snprintf(o->state_dir, sizeof o->state_dir, "%s/sandboxd/%s", xdg, o->name);
        else
            n = snprintf(o->state_dir, sizeof o->state_dir, "%s/.local/state/sandboxd/%s",
                         home != NULL ? home : "/tmp", o->name);
        if (n < 0 || n >= (int)sizeof o->state_dir)
            goto bad;
    }
    return 0;
bad:
    usage(stderr);
    return -1;
}

/* SIGTERM and SIGINT, as loop events: break the loop, so that main shuts down in order. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    SBX_INFO("stopping", "signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

/* --stop-on-stdin-eof: standard input is read and discarded; its end (or an error)
 * breaks the loop as SIGTERM does. arg is the event base. */
static void on_stdin(evutil_socket_t fd, short what, void *arg) {
    char buf[4096];
    (void)what;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    SBX_INFO("stopping", "why=\"standard input closed\"");
    event_base_loopbreak(arg);
}

/* Exit status 0 after a clean stop (or --help, --version), 2 for bad
 * arguments, 1 if start-up failed. Shutdown order: the core (its
 * shutdown policy), the node (connections, epmd), then the loop. */
int main(int argc, char **argv) {
    struct options opts;
    struct sbx_node node;
    struct sbx_node_config cfg;
    struct sbx_core core;
    struct sbx_tls *tls = NULL;
    int core_started = 0;
    char cookie[SBX_COOKIE_MAX + 1];
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *stdin_ev = NULL;
    char http_token[256] = "";
    const char *why = NULL;
    int node_started = 0;
    int rc = 1;

    memset(&opts, 0, sizeof opts);
    memset(&node, 0, sizeof node);
    memset(&core, 0, sizeof core);
    node.epmd_fd = -1;
    int pa = parse_args(argc, argv, &opts);
    if (pa != 0)
        return pa > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    /* ei_init sizes a table from the open-file limit: capped for it, raised after. */
    sbx_fdlimit_cap_for_init(65536);
    if (ei_init() != 0) {
        SBX_ERROR("ei_init failed", NULL);
        goto done;
    }
    if (opts.cookie != NULL)
        SBX_WARN("--cookie is readable by every local user in /proc; use --cookie-file", NULL);
    int resolved = sbx_cookie_resolve(opts.cookie, opts.cookie_file, cookie, &why);
    /* Whatever the outcome, the cookie leaves argv and the environment: children (epmd,
     * workloads) inherit neither, and /proc shows neither from here on. */
    sbx_cookie_scrub_arg(opts.cookie);
    sbx_cookie_scrub_env();
    if (resolved != 0) {
        SBX_ERROR("no cookie", "why=\"%s\"", why);
        goto done;
    }
    /* The HTTP token, like the cookie, leaves argv and the environment once read. */
    const char *tok = opts.http_token != NULL ? opts.http_token : getenv("SANDBOXD_HTTP_TOKEN");
    if (tok != NULL && strlen(tok) >= sizeof http_token) {
        SBX_ERROR("--http-token is too long", "max=%zu", sizeof http_token - 1);
        goto done;
    }
    if (tok != NULL)
        snprintf(http_token, sizeof http_token, "%s", tok);
    sbx_cookie_scrub_arg(opts.http_token);
    unsetenv("SANDBOXD_HTTP_TOKEN");
    if (opts.proto_tls) {
        struct sbx_tls_opts topts;
        char twhy[300];
        if (sbx_tls_opts_load(opts.ssl_dist_optfile, &topts, twhy, sizeof twhy) != 0 ||
            (tls = sbx_tls_new(&topts, twhy, sizeof twhy)) == NULL) {
            SBX_ERROR("cannot use the ssl_dist optfile", "file=%s why=\"%s\"",
                      opts.ssl_dist_optfile, twhy);
            goto done;
        }
        sbx_beam_set_tls(sbx_tls_options(tls));
    }
    base = event_base_new();
    if (base == NULL)
        goto done;
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) != 0 ||
        event_add(sigint, NULL) != 0)
        goto done;
    if (opts.stop_on_stdin_eof) {
        stdin_ev = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, base);
        if (stdin_ev == NULL || evutil_make_socket_nonblocking(STDIN_FILENO) != 0 ||
            event_add(stdin_ev, NULL) != 0) {
            SBX_ERROR("--stop-on-stdin-eof: standard input cannot be watched", NULL);
            goto done;
        }
    }
    cfg = (struct sbx_node_config){.name = opts.name,
                                   .cookie = cookie,
                                   .handshake_timeout_ms = opts.handshake_timeout_ms,
                                   .net_ticktime_s = opts.net_ticktime_s,
                                   .max_packet = opts.max_packet,
                                   .max_outbuf = 256u << 20,
                                   .max_handshakes = opts.max_handshakes,
                                   .max_handshakes_per_addr = opts.max_handshakes_per_addr,
                                   .tls = tls};
    if (sbx_node_start(&node, base, &cfg, &why) != 0) {
        SBX_ERROR("cannot start the node", "node=%s why=\"%s\"", opts.name, why);
        goto done;
    }
    node_started = 1;
    /* Raised once the node runs (an epmd it started keeps the usual limit). */
    long nofile = sbx_fdlimit_raise(SBX_NOFILE_CEILING);
    SBX_INFO("open-file limit", "soft=%ld", nofile);
    if (!opts.max_handshakes_given && nofile > 0 && opts.max_handshakes > (size_t)nofile / 4) {
        /* Strangers must never take the descriptors that sandboxes need. */
        opts.max_handshakes = (size_t)nofile / 4 > 16 ? (size_t)nofile / 4 : 16;
        sbx_node_lower_handshake_cap(&node, opts.max_handshakes);
        SBX_WARN("low open-file limit: fewer connections allowed in the handshake",
                 "nofile=%ld max_handshakes=%zu", nofile, opts.max_handshakes);
    }
    sbx_fd_reserve_fill(); /* room for cleanup at the open-file limit */
    if (opts.http != NULL) {
        struct sbx_web_config wcfg = {.listen = opts.http,
                                      .token = http_token[0] != '\0' ? http_token : NULL,
                                      .max_conns = opts.http_max_conns,
                                      .nofile = nofile};
        if (sbx_web_start(base, &node, &wcfg, &why) != 0) {
            SBX_ERROR("cannot start the HTTP server", "why=\"%s\" http=%s", why, opts.http);
            goto done;
        }
    }
    if (sbx_services_start(&node) != 0) {
        SBX_ERROR("cannot register system processes", NULL);
        goto done;
    }
    struct sbx_core_config ccfg = {.state_dir = opts.state_dir,
                                   .shutdown_destroy = opts.shutdown_destroy,
                                   .log_max_bytes = 1u << 20,
                                   .max_sandboxes = 10000,
                                   .max_subscribers = 10000,
                                   .stop_grace_ms = 5000,
                                   .dynamic_uids = !opts.no_dynamic_uids,
                                   .uid_first = opts.uid_first,
                                   .uid_last = opts.uid_last};
    if (sbx_core_start(&core, &node, &ccfg, &why) != 0) {
        SBX_ERROR("cannot start the sandbox core", "why=\"%s\" state_dir=%s", why, opts.state_dir);
        goto done;
    }
    core_started = 1;
    SBX_INFO("ready", "node=%s version=%s", node.name, SBX_VERSION);
    event_base_dispatch(base);
    rc = 0;
done:
    sbx_web_stop(); /* first: the core's stop must not reach the tap */
    if (core_started)
        sbx_core_stop(&core);
    if (node_started)
        sbx_node_stop(&node);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (stdin_ev != NULL)
        event_free(stdin_ev);
    if (base != NULL)
        event_base_free(base);
    sbx_tls_free(tls);
    memset(cookie, 0, sizeof cookie);
    memset(http_token, 0, sizeof http_token);
    if (rc == 0)
        SBX_INFO("stopped", NULL);
    return rc;
}
