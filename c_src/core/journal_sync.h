/* Group commit for the state directory. While the syncer runs, sbx_journal_save writes
 * and renames a record on the loop without any fsync, and asks for a sync; one thread
 * makes every record written so far durable with a single syncfs() of the state
 * directory's filesystem, then takes the next batch (all the requests that arrived while
 * it synced). The loop never waits on the disk.
 *
 * What a crash can lose: a SIGKILL of sandboxd loses nothing (the renamed record is in
 * the page cache, the kernel writes it). A power loss or kernel crash can lose the records
 * of the last few milliseconds, those not yet covered by a finished syncfs. Without the
 * syncer (unit tests, or a start-up failure) sbx_journal_save syncs inline as before. */
#ifndef SBX_CORE_JOURNAL_SYNC_H
#define SBX_CORE_JOURNAL_SYNC_H

#include <stdint.h>

/* Starts the syncer thread for the filesystem holding state_dir. 0, or -1 (errno; nothing
 * started, saves stay synchronous). */
int sbx_journal_sync_start(const char *state_dir);

/* 1 while the syncer runs (saves may skip their own fsyncs), else 0. */
int sbx_journal_sync_running(void);

/* Asks for a sync of everything written so far; never blocks on the disk. */
void sbx_journal_sync_request(void);

/* How many syncfs() calls the thread has finished (for info() and tests). */
uint64_t sbx_journal_sync_count(void);

/* Syncs what is still pending, stops and joins the thread. Safe when not started. */
void sbx_journal_sync_stop(void);

#endif
