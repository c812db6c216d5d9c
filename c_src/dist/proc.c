/* Process table: chained hash on the pid number. */
#include "dist/proc.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64

/* Bucket index for a pid; relies on nbuckets being a power of two. */
static size_t slot(const struct sbx_proc_table *t, uint32_t num, uint32_t serial) {
    return ((size_t)num * 2654435761u ^ serial) & (t->nbuckets - 1);
}

/* See proc.h. Overwrites *t without freeing what it held. */
int sbx_proc_table_init(struct sbx_proc_table *t) {
    memset(t, 0, sizeof *t);
    t->buckets = calloc(INITIAL_BUCKETS, sizeof *t->buckets);
    if (t->buckets == NULL)
        return -1;
    t->nbuckets = INITIAL_BUCKETS;
    return 0;
}

/* Frees p's links and monitors (with their ref copies),
 * leaving both lists empty; p and p->data are left. */
static void free_links_monitors(struct sbx_proc *p) {
    while (p->links != NULL) {
        struct sbx_link *l = p->links;
        p->links = l->next;
        free(l);
    }
    while (p->monitors != NULL) {
        struct sbx_monitor *m = p->monitors;
        p->monitors = m->next;
        free(m->ref);
        free(m);
    }
}

/* See proc.h. p->data of remaining processes is not released.
 * Accepts a table whose init failed, and leaves t zeroed. */
void sbx_proc_table_free(struct sbx_proc_table *t) {
    for (size_t i = 0; t->buckets != NULL && i < t->nbuckets; i++) {
        while (t->buckets[i] != NULL) {
            struct sbx_proc *p = t->buckets[i];
            t->buckets[i] = p->hnext;
            free_links_monitors(p);
            free(p->fence_peer);
            free(p);
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

/* Doubles the bucket array when the load passes 1; on allocation failure keeps the
 * old (slower but correct) table. */
static void maybe_grow(struct sbx_proc_table *t) {
    if (t->count < t->nbuckets)
        return;
    size_t n = t->nbuckets * 2;
    struct sbx_proc **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    struct sbx_proc_table nt = {.buckets = b, .nbuckets = n};
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i] != NULL) {
            struct sbx_proc *p = t->buckets[i];
            t->buckets[i] = p->hnext;
            size_t s = slot(&nt, p->num, p->serial);
            p->hnext = b[s];
            b[s] = p;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* See proc.h. data stays owned by ops (released through ops->kill); name starts
 * NULL. May rehash the table, so never call it from an sbx_proc_each callback. */
struct sbx_proc *sbx_proc_spawn(struct sbx_proc_table *t, const struct sbx_proc_ops *ops,
                                void *data) {
    struct sbx_proc *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    do {
        t->counter = (t->counter + 1) & 0x0fffffff;
        if (t->counter == 0)
            t->counter = 1;
        p->num = t->counter & 0x7fff;
        p->serial = t->counter >> 15;
    } while (p->num == 0 || sbx_proc_find(t, p->num, p->serial) != NULL);
    p->ops = ops;
    p->data = data;
    maybe_grow(t);
    size_t s = slot(t, p->num, p->serial);
    p->hnext = t->buckets[s];
    t->buckets[s] = p;
    t->count++;
    return p;
}

/* See proc.h. p owns the copy (freed with p). */
int sbx_proc_serve_peer(struct sbx_proc *p, const char *peer_name) {
    char *copy = strdup(peer_name);
    if (copy == NULL)
        return -1;
    free(p->fence_peer);
    p->fence_peer = copy;
    return 0;
}

/* See proc.h. */
int sbx_proc_serves(const struct sbx_proc *p, const char *peer_name) {
    return p->fence_peer != NULL && strcmp(p->fence_peer, peer_name) == 0;
}

/* See proc.h. The table keeps ownership of the result. */
struct sbx_proc *sbx_proc_find(const struct sbx_proc_table *t, uint32_t num, uint32_t serial) {
    for (struct sbx_proc *p = t->buckets[slot(t, num, serial)]; p != NULL; p = p->hnext)
        if (p->num == num && p->serial == serial)
            return p;
    return NULL;
}

/* See proc.h. The table keeps ownership of the result. */
struct sbx_proc *sbx_proc_whereis(const struct sbx_proc_table *t, const char *name) {
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct sbx_proc *p = t->buckets[i]; p != NULL; p = p->hnext)
            if (p->name != NULL && strcmp(p->name, name) == 0)
                return p;
    return NULL;
}

/* See proc.h. Calls no ops and sends no signals: the caller
 * has released p->data and told linked peers. */
void sbx_proc_free(struct sbx_proc_table *t, struct sbx_proc *p) {
    struct sbx_proc **pp = &t->buckets[slot(t, p->num, p->serial)];
    while (*pp != NULL && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp == p) {
        *pp = p->hnext;
        t->count--;
    }
    free_links_monitors(p);
    free(p->fence_peer);
    free(p);
}

/* See proc.h. p is unchanged on -1. */
int sbx_proc_link(struct sbx_proc *p, const struct sbx_rpid *pid) {
    for (struct sbx_link *l = p->links; l != NULL; l = l->next)
        if (sbx_rpid_eq(&l->pid, pid))
            return 0;
    struct sbx_link *l = malloc(sizeof *l);
    if (l == NULL)
        return -1;
    l->pid = *pid;
    l->next = p->links;
    p->links = l;
    return 0;
}

/* See proc.h. Frees the matching entry; sends nothing. */
int sbx_proc_unlink(struct sbx_proc *p, const struct sbx_rpid *pid) {
    for (struct sbx_link **pl = &p->links; *pl != NULL; pl = &(*pl)->next) {
        if (sbx_rpid_eq(&(*pl)->pid, pid)) {
            struct sbx_link *l = *pl;
            *pl = l->next;
            free(l);
            return 1;
        }
    }
    return 0;
}

/* See proc.h. Each call adds an entry, duplicates included; p is unchanged on -1. */
int sbx_proc_monitor(struct sbx_proc *p, const struct sbx_rpid *watcher, const char *ref,
                     size_t ref_len, int by_name) {
    struct sbx_monitor *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->ref = malloc(ref_len > 0 ? ref_len : 1);
    if (m->ref == NULL) {
        free(m);
        return -1;
    }
    memcpy(m->ref, ref, ref_len);
    m->ref_len = ref_len;
    m->watcher = *watcher;
    m->by_name = by_name;
    m->next = p->monitors;
    p->monitors = m;
    return 0;
}

/* See proc.h. Frees the first matching entry only; sends nothing and calls no ops. */
int sbx_proc_demonitor(struct sbx_proc *p, const struct sbx_rpid *watcher, const char *ref,
                       size_t ref_len) {
    for (struct sbx_monitor **pm = &p->monitors; *pm != NULL; pm = &(*pm)->next) {
        struct sbx_monitor *m = *pm;
        if (sbx_rpid_eq(&m->watcher, watcher) && m->ref_len == ref_len &&
            memcmp(m->ref, ref, ref_len) == 0) {
            *pm = m->next;
            free(m->ref);
            free(m);
            return 1;
        }
    }
    return 0;
}

/* See proc.h. Only frees entries: sends nothing and calls no ops. */
size_t sbx_proc_drop_conn(struct sbx_proc *p, uint64_t conn_id) {
    size_t n = 0;
    for (struct sbx_link **pl = &p->links; *pl != NULL;) {
        if ((*pl)->pid.conn_id == conn_id) {
            struct sbx_link *l = *pl;
            *pl = l->next;
            free(l);
            n++;
        } else {
            pl = &(*pl)->next;
        }
    }
    for (struct sbx_monitor **pm = &p->monitors; *pm != NULL;) {
        if ((*pm)->watcher.conn_id == conn_id) {
            struct sbx_monitor *m = *pm;
            *pm = m->next;
            free(m->ref);
            free(m);
            n++;
        } else {
            pm = &(*pm)->next;
        }
    }
    return n;
}

/* See proc.h. fn must not spawn: that may rehash the buckets being walked. */
void sbx_proc_each(struct sbx_proc_table *t, void (*fn)(struct sbx_proc *p, void *arg), void *arg) {
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct sbx_proc *p = t->buckets[i];
        while (p != NULL) {
            struct sbx_proc *next = p->hnext;
            fn(p, arg);
            p = next;
        }
    }
}
