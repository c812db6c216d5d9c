/* Logging to stderr in logfmt style. Every value a format interpolates is escaped, so that
 * one event is always exactly one line and no value can forge a key=value pair. */
#include "util/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum sbx_log_level current_level = SBX_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* See log.h. One level for the whole process. */
void sbx_log_set_level(enum sbx_log_level level) { current_level = level; }

/* See log.h. Exact, case-sensitive names. */
int sbx_log_parse_level(const char *s, enum sbx_log_level *out) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum sbx_log_level)i;
            return 0;
        }
    }
    return -1;
}

/* An output buffer that only ever takes whole pieces: once one does not fit, it is full and
 * takes nothing more. cap leaves room for a closing quote (added by finish). */
struct writer {
    char *buf;
    size_t cap;
    size_t len;
    int full;
};

/* Appends n bytes, all or nothing; 0, or -1 (w is full from now on). */
static int put(struct writer *w, const char *s, size_t n) {
    if (w->full || n > w->cap - w->len) {
        w->full = 1;
        return -1;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return 0;
}

/* 1 if byte c must be escaped inside a quoted value. */
static int needs_escape(unsigned char c) { return c < 0x20 || c == 0x7f || c == '"' || c == '\\'; }

/* 1 if s[0..n) can stand bare after key=: not empty, no space, quote, '=' or escape. */
static int bare_ok(const char *s, size_t n) {
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '=' || needs_escape(c))
            return 0;
    }
    return 1;
}

/* Appends the escaped form of s[0..n) (no quotes added); stops at the first sequence that
 * does not fit (w is then full). */
static void put_escaped(struct writer *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && !w->full; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[4];
        size_t k = 0;
        if (!needs_escape(c)) {
            e[k++] = (char)c;
        } else {
            e[k++] = '\\';
            switch (c) {
            case '"': e[k++] = '"'; break;
            case '\\': e[k++] = '\\'; break;
            case '\n': e[k++] = 'n'; break;
            case '\r': e[k++] = 'r'; break;
            case '\t': e[k++] = 't'; break;
            default:
                e[k++] = 'x';
                e[k++] = hex[c >> 4];
                e[k++] = hex[c & 15];
                break;
            }
        }
        put(w, e, k);
    }
}

/* See log.h. */
size_t sbx_log_escape(char *out, size_t cap, const char *s, size_t n) {
    struct writer w = {out, cap > 0 ? cap - 1 : 0, 0, 0};
    if (cap == 0)
        return 0;
    put_escaped(&w, s, n);
    out[w.len] = '\0';
    return w.len;
}

/* One conversion spec of kv_fmt: flags, width, precision and length modifier as written. */
struct spec {
    char text[24]; /* "%...c", NUL-terminated */
    int precision;  /* -1: none */
    char conv;
    int len_mod;    /* 0 none, 'h', 'H' (hh), 'l', 'L' (ll), 'z', 'j', 't' */
};

/* Parses the spec starting at fmt (which points at '%'); returns its length, or 0 if it is
 * not one this formatter knows (the rest of the format is then dropped). */
static size_t parse_spec(const char *fmt, struct spec *sp) {
    size_t i = 1;
    sp->precision = -1;
    sp->len_mod = 0;
    while (fmt[i] != '\0' && strchr("-+ #0", fmt[i]) != NULL)
        i++;
    while (fmt[i] >= '0' && fmt[i] <= '9')
        i++;
    if (fmt[i] == '.') {
        i++;
        sp->precision = 0;
        while (fmt[i] >= '0' && fmt[i] <= '9')
            sp->precision = sp->precision * 10 + (fmt[i++] - '0');
    }
    if (fmt[i] == 'h' || fmt[i] == 'l') {
        char m = fmt[i++];
        sp->len_mod = m;
        if (fmt[i] == m) {
            sp->len_mod = m == 'h' ? 'H' : 'L';
            i++;
        }
    } else if (fmt[i] == 'z' || fmt[i] == 'j' || fmt[i] == 't') {
        sp->len_mod = fmt[i++];
    }
    sp->conv = fmt[i];
    if (sp->conv == '\0' || strchr("sdiuxXcpfg%", sp->conv) == NULL || i + 1 >= sizeof sp->text)
        return 0;
    memcpy(sp->text, fmt, i + 1);
    sp->text[i + 1] = '\0';
    return i + 1;
}

/* Formats one numeric (or %c, %p) argument with its own spec into w. */
static void put_number(struct writer *w, const struct spec *sp, va_list *ap) {
    char tmp[64];
    int n;
    if (sp->conv == 'f' || sp->conv == 'g') {
        n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, double));
    } else if (sp->conv == 'p') {
        n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, void *));
    } else if (sp->conv == 'd' || sp->conv == 'i' || sp->conv == 'c') {
        switch (sp->len_mod) {
        case 'l': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, long)); break;
        case 'L': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, long long)); break;
        case 'z': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, ptrdiff_t)); break;
        case 'j': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, long long)); break;
        case 't': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, ptrdiff_t)); break;
        default: n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, int)); break;
        }
    } else {
        switch (sp->len_mod) {
        case 'l': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, unsigned long)); break;
        case 'L': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, unsigned long long)); break;
        case 'z': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, size_t)); break;
        case 'j': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, unsigned long long)); break;
        case 't': n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, size_t)); break;
        default: n = snprintf(tmp, sizeof tmp, sp->text, va_arg(*ap, unsigned)); break;
        }
    }
    if (n > 0) {
        size_t len = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
        /* A number holds nothing to escape; %c might. */
        if (sp->conv == 'c')
            put_escaped(w, tmp, len);
        else
            put(w, tmp, len);
    }
}

/* Formats kv_fmt into w: literal text as written (it comes from the code), every %s value
 * escaped; a %s outside the format's own quotes that is empty or holds a space, '=', a
 * quote or a control byte is quoted. Ends inside no quote: one left open by a cut is closed. */
static void format_kv(struct writer *w, const char *fmt, va_list *ap) {
    int in_quotes = 0;
    while (*fmt != '\0' && !w->full) {
        if (*fmt != '%') {
            const char *lit = fmt;
            int quotes = 0;
            while (*fmt != '\0' && *fmt != '%')
                quotes += *fmt++ == '"';
            if (put(w, lit, (size_t)(fmt - lit)) == 0 && quotes % 2 == 1)
                in_quotes = !in_quotes;
            continue;
        }
        struct spec sp;
        size_t k = parse_spec(fmt, &sp);
        if (k == 0)
            break;
        fmt += k;
        if (sp.conv == '%') {
            put(w, "%", 1);
        } else if (sp.conv == 's') {
            const char *s = va_arg(*ap, const char *);
            if (s == NULL)
                s = "(null)";
            size_t n = sp.precision >= 0 ? strnlen(s, (size_t)sp.precision) : strlen(s);
            if (in_quotes || bare_ok(s, n)) {
                put_escaped(w, s, n);
            } else if (put(w, "\"", 1) == 0) {
                in_quotes = 1;
                put_escaped(w, s, n);
                if (put(w, "\"", 1) == 0)
                    in_quotes = 0;
            }
        } else {
            put_number(w, &sp, ap);
        }
    }
    if (in_quotes)
        w->buf[w->len++] = '"'; /* room reserved: cap is one short of the buffer */
}

/* See log.h. */
size_t sbx_log_vformat(char *out, size_t cap, const char *kv_fmt, va_list ap) {
    struct writer w = {out, cap > 1 ? cap - 2 : 0, 0, 0};
    va_list cp;
    if (cap < 2) {
        if (cap == 1)
            out[0] = '\0';
        return 0;
    }
    va_copy(cp, ap);
    format_kv(&w, kv_fmt, &cp);
    va_end(cp);
    out[w.len] = '\0';
    return w.len;
}

/* See log.h. */
size_t sbx_log_format(char *out, size_t cap, const char *kv_fmt, ...) {
    va_list ap;
    va_start(ap, kv_fmt);
    size_t n = sbx_log_vformat(out, cap, kv_fmt, ap);
    va_end(ap);
    return n;
}

/* Builds the whole line in one buffer and writes it with one call, so lines from
 * children sharing stderr do not interleave inside a line. msg and every value are
 * escaped: the line holds exactly one newline, at its end. */
void sbx_log(enum sbx_log_level level, const char *msg, const char *kv_fmt, ...) {
    char line[4096];
    struct timespec ts;
    struct tm tm;

    if (level > current_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* The line's last two bytes stay free: a closing quote after a cut, and the newline. */
    struct writer w = {line, sizeof line - 2, 0, 0};
    char head[96];
    int hn = snprintf(head, sizeof head, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
    if (hn > 0 && (size_t)hn < sizeof head)
        put(&w, head, (size_t)hn);
    put_escaped(&w, msg != NULL ? msg : "", msg != NULL ? strlen(msg) : 0);
    line[w.len++] = '"'; /* reserved room */
    w.cap = sizeof line - 1;
    if (!w.full && kv_fmt != NULL && kv_fmt[0] != '\0' && put(&w, " ", 1) == 0) {
        va_list ap;
        va_start(ap, kv_fmt);
        struct writer kv = {line + w.len, w.cap - w.len, 0, 0};
        if (kv.cap > 1) {
            kv.cap -= 1; /* room for a closing quote after a cut */
            format_kv(&kv, kv_fmt, &ap);
            w.len += kv.len;
        }
        va_end(ap);
    }
    line[w.len++] = '\n';
    fwrite(line, 1, w.len, stderr);
}
