/* Logging: one line per event on stderr, `level=L msg="..." key=value ...`.
 * Never pass secrets (the cookie) to these functions. */
#ifndef SBX_UTIL_LOG_H
#define SBX_UTIL_LOG_H

enum sbx_log_level { SBX_LOG_ERROR = 0, SBX_LOG_WARN, SBX_LOG_INFO, SBX_LOG_DEBUG };

/* Sets the most verbose level that is printed (default info). */
void sbx_log_set_level(enum sbx_log_level level);

/* Parses "error|warn|info|debug". Returns 0 and sets *out, or -1 leaving *out unchanged. */
int sbx_log_parse_level(const char *s, enum sbx_log_level *out);

/* Writes one line: msg is quoted; kv_fmt (may be NULL) formats the key=value tail. */
void sbx_log(enum sbx_log_level level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SBX_ERROR(msg, ...) sbx_log(SBX_LOG_ERROR, msg, __VA_ARGS__)
#define SBX_WARN(msg, ...) sbx_log(SBX_LOG_WARN, msg, __VA_ARGS__)
#define SBX_INFO(msg, ...) sbx_log(SBX_LOG_INFO, msg, __VA_ARGS__)
#define SBX_DEBUG(msg, ...) sbx_log(SBX_LOG_DEBUG, msg, __VA_ARGS__)

#endif
