/* Logging: one line per event on stderr, `level=L msg="..." key=value ...`.
 * Never pass secrets (the cookie) to these functions.
 *
 * Values are escaped: a `"`, `\`, newline, carriage return and tab become `\"`, `\\`, `\n`,
 * `\r`, `\t`; any other byte below 0x20 and 0x7f becomes `\xHH`. A %s value outside the
 * format's own quotes that is empty or holds a space, `=` or an escaped byte is quoted. So a
 * value (a peer's node name, say) can never end the line or forge a key=value pair. A line
 * longer than 4 KiB is cut, with any quote it cut open closed. */
#ifndef SBX_UTIL_LOG_H
#define SBX_UTIL_LOG_H

enum sbx_log_level { SBX_LOG_ERROR = 0, SBX_LOG_WARN, SBX_LOG_INFO, SBX_LOG_DEBUG };

/* Sets the most verbose level that is printed (default info). */
void sbx_log_set_level(enum sbx_log_level level);

/* Parses "error|warn|info|debug". Returns 0 and sets *out, or -1 leaving *out unchanged. */
int sbx_log_parse_level(const char *s, enum sbx_log_level *out);

#include <stdarg.h>
#include <stddef.h>

/* Writes one line: msg is quoted; kv_fmt (may be NULL) formats the key=value tail with the
 * conversions %s %d %i %u %x %c %p %f %g %% (flags, width, precision, hh h l ll z j t). */
void sbx_log(enum sbx_log_level level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The escaped form of s[0..n) into out (NUL-terminated, at most cap-1 bytes, never a cut
 * escape sequence); returns its length. */
size_t sbx_log_escape(char *out, size_t cap, const char *s, size_t n);

/* The key=value tail as sbx_log writes it, into out (NUL-terminated); returns its length.
 * For tests and for callers that build a line themselves. */
size_t sbx_log_vformat(char *out, size_t cap, const char *kv_fmt, va_list ap);
size_t sbx_log_format(char *out, size_t cap, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SBX_ERROR(msg, ...) sbx_log(SBX_LOG_ERROR, msg, __VA_ARGS__)
#define SBX_WARN(msg, ...) sbx_log(SBX_LOG_WARN, msg, __VA_ARGS__)
#define SBX_INFO(msg, ...) sbx_log(SBX_LOG_INFO, msg, __VA_ARGS__)
#define SBX_DEBUG(msg, ...) sbx_log(SBX_LOG_DEBUG, msg, __VA_ARGS__)

#endif
