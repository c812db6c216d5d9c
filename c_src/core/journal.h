/* The state directory: one folder per sandbox holding its record (a term in external
 * format) and whatever else belongs to it (log file, FIFOs, workspace). Records are
 * replaced atomically (write to a temporary file, fsync, rename), so a crash leaves
 * either the old or the new record. */
#ifndef SBX_CORE_JOURNAL_H
#define SBX_CORE_JOURNAL_H

#include <stddef.h>

/* Creates state_dir and state_dir/sandboxes (mode 0700) if missing. 0 or -1 (errno). */
int sbx_journal_init(const char *state_dir);

/* Writes path of the sandbox's folder (state_dir/sandboxes/<id>) into out; creates it
 * (0700) if create is set. 0, or -1 (errno; ENAMETOOLONG if it does not fit). */
int sbx_journal_dir(const char *state_dir, const char *id, int create, char *out, size_t cap);

/* Replaces the record of id with buf[0..len) (a term with its version byte). 0 or -1. */
int sbx_journal_save(const char *state_dir, const char *id, const char *buf, size_t len);

/* Removes the sandbox's folder and everything in it (it never follows symlinks out of
 * it). 0, or -1 if something could not be removed. Missing is not an error. */
int sbx_journal_remove(const char *state_dir, const char *id);

/* Calls fn for each sandbox folder that holds a record, with the record's bytes (read
 * fully; at most 16 MiB). Folders without a readable record are skipped. Returns the
 * number of records passed. */
typedef void (*sbx_journal_each_fn)(void *arg, const char *id, const char *buf, size_t len);
int sbx_journal_each(const char *state_dir, sbx_journal_each_fn fn, void *arg);

#endif
