/* The state directory: one folder per sandbox, state_dir/sandboxes/<id>, holding its
 * record (file "record": a term in external format) and whatever else belongs to it (log
 * file, FIFOs, workspace). Records are replaced atomically (write "record.tmp", fsync,
 * rename, fsync the folder), so a crash leaves either the old or the new record; a
 * leftover "record.tmp" is never read. Every function taking an id refuses one that is
 * not [A-Za-z0-9][A-Za-z0-9_.-]{0,62} with EINVAL (callers validate ids already). */
#ifndef SBX_CORE_JOURNAL_H
#define SBX_CORE_JOURNAL_H

#include <stddef.h>

/* Creates state_dir and state_dir/sandboxes (mode 0700), and missing parents of state_dir
 * (mode 0711: searchable, not listable), if missing. 0 or -1 (errno). */
int sbx_journal_init(const char *state_dir);

/* Writes path of the sandbox's folder (state_dir/sandboxes/<id>) into out; creates it
 * (0700) if create is set. 0, or -1 (errno; ENAMETOOLONG if it does not fit, ENOTDIR if
 * something other than a folder, e.g. a symlink, has its name); out is unchanged on
 * failure. */
int sbx_journal_dir(const char *state_dir, const char *id, int create, char *out, size_t cap);

/* Replaces the record of id with buf[0..len) (a term with its version byte), creating the
 * folder if needed. 0, or -1 (errno) leaving the old record as it was. */
int sbx_journal_save(const char *state_dir, const char *id, const char *buf, size_t len);

/* Removes the sandbox's folder and everything in it (it never follows symlinks out of
 * it, nor enters another mount), the record first. 0, or -1 (errno) if something could
 * not be removed. Missing is not an error. */
int sbx_journal_remove(const char *state_dir, const char *id);

/* Calls fn for each sandbox folder that holds a record, in order of id, with the record's
 * bytes (read fully; at most 16 MiB; valid during the call). Folders without a readable
 * regular record, and symlinks, are skipped. Returns the number of records passed: 0 if
 * state_dir/sandboxes does not exist, -1 (errno) if it cannot be read. */
typedef void (*sbx_journal_each_fn)(void *arg, const char *id, const char *buf, size_t len);
int sbx_journal_each(const char *state_dir, sbx_journal_each_fn fn, void *arg);

#endif
