/* The journal's syncer thread (see journal_sync.h). The only state shared with the loop
 * is the request counter, under one mutex; the thread touches nothing else of sandboxd's. */
#define _GNU_SOURCE
#include "core/journal_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "util/log.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running;
    int stopping;
    int fd;              /* the state directory, for syncfs */
    uint64_t requested;  /* requests so far */
    uint64_t covered;    /* requests covered by a finished (or running) syncfs */
    uint64_t syncs;      /* syncfs calls finished */
} js = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, -1, 0, 0, 0};

/* The thread: waits for requests, covers all of them with one syncfs, repeats; at stop,
 * covers what is left and returns. */
static void *sync_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&js.mu);
    for (;;) {
        while (js.covered == js.requested && !js.stopping)
            pthread_cond_wait(&js.cv, &js.mu);
        if (js.covered == js.requested && js.stopping)
            break;
        js.covered = js.requested;
        pthread_mutex_unlock(&js.mu);
        int rc = syncfs(js.fd);
        int e = errno;
        pthread_mutex_lock(&js.mu);
        js.syncs++;
        if (rc != 0)
            SBX_WARN("cannot sync the state directory", "errno=%d", e);
    }
    pthread_mutex_unlock(&js.mu);
    return NULL;
}

/* See journal_sync.h. */
int sbx_journal_sync_start(const char *state_dir) {
    int rc = -1;
    int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        goto done;
    js.fd = fd;
    js.stopping = 0;
    js.requested = js.covered = 0;
    int e = pthread_create(&js.thread, NULL, sync_main, NULL);
    if (e != 0) {
        errno = e;
        goto done;
    }
    js.running = 1;
    fd = -1;
    rc = 0;
done:
    if (fd >= 0) {
        close(fd);
        js.fd = -1;
    }
    return rc;
}

/* See journal_sync.h. */
int sbx_journal_sync_running(void) { return js.running; }

/* See journal_sync.h. */
void sbx_journal_sync_request(void) {
    if (!js.running)
        return;
    pthread_mutex_lock(&js.mu);
    js.requested++;
    pthread_cond_signal(&js.cv);
    pthread_mutex_unlock(&js.mu);
}

/* See journal_sync.h. */
uint64_t sbx_journal_sync_count(void) {
    pthread_mutex_lock(&js.mu);
    uint64_t n = js.syncs;
    pthread_mutex_unlock(&js.mu);
    return n;
}

/* See journal_sync.h. */
void sbx_journal_sync_stop(void) {
    if (!js.running)
        return;
    pthread_mutex_lock(&js.mu);
    js.stopping = 1;
    pthread_cond_signal(&js.cv);
    pthread_mutex_unlock(&js.mu);
    pthread_join(js.thread, NULL);
    js.running = 0;
    close(js.fd);
    js.fd = -1;
}
