/* Unit tests for dist/proc.h: pid allocation, lookup, growth, registered names, links,
 * monitors, dropping a connection, and iteration that frees. Leaks are caught by
 * LeakSanitizer at exit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dist/proc.h"

static int setup_table(void **state) {
    struct sbx_proc_table *t = malloc(sizeof *t);
    if (t == NULL || sbx_proc_table_init(t) != 0)
        return -1;
    *state = t;
    return 0;
}

static int teardown_table(void **state) {
    struct sbx_proc_table *t = *state;
    sbx_proc_table_free(t);
    int ok = t->buckets == NULL && t->count == 0;
    free(t);
    return ok ? 0 : -1;
}

static size_t count_links(const struct sbx_proc *p) {
    size_t n = 0;
    for (const struct sbx_link *l = p->links; l != NULL; l = l->next)
        n++;
    return n;
}

static size_t count_monitors(const struct sbx_proc *p) {
    size_t n = 0;
    for (const struct sbx_monitor *m = p->monitors; m != NULL; m = m->next)
        n++;
    return n;
}

static size_t count_each_cb_calls;

static void count_cb(struct sbx_proc *p, void *arg) {
    (void)p;
    (void)arg;
    count_each_cb_calls++;
}

static size_t table_walk_count(struct sbx_proc_table *t) {
    count_each_cb_calls = 0;
    sbx_proc_each(t, count_cb, NULL);
    return count_each_cb_calls;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_init_empty(void **state) {
    struct sbx_proc_table *t = *state;
    assert_non_null(t->buckets);
    assert_int_equal(t->count, 0);
    assert_true(t->nbuckets > 0 && (t->nbuckets & (t->nbuckets - 1)) == 0);
    assert_null(sbx_proc_find(t, 1, 0));
    assert_null(sbx_proc_whereis(t, "rex"));
    assert_int_equal(table_walk_count(t), 0);
}

#define MANY 100000

static void test_spawn_many_unique(void **state) {
    struct sbx_proc_table *t = *state;
    static const struct sbx_proc_ops ops = {0};
    struct sbx_proc **ps = malloc(MANY * sizeof *ps);
    uint32_t *ids = malloc(MANY * sizeof *ids);
    assert_non_null(ps);
    assert_non_null(ids);
    size_t initial_buckets = t->nbuckets;
    for (size_t i = 0; i < MANY; i++) {
        ps[i] = sbx_proc_spawn(t, &ops, (void *)(uintptr_t)(i + 1));
        assert_non_null(ps[i]);
        /* 15-bit number, never 0; 13-bit serial. */
        assert_true(ps[i]->num >= 1 && ps[i]->num <= 0x7fff);
        assert_true(ps[i]->serial <= 0x1fff);
        assert_ptr_equal(ps[i]->ops, &ops);
        assert_ptr_equal(ps[i]->data, (void *)(uintptr_t)(i + 1));
        assert_null(ps[i]->name);
        assert_null(ps[i]->links);
        assert_null(ps[i]->monitors);
        ids[i] = ps[i]->serial << 15 | ps[i]->num;
    }
    assert_int_equal(t->count, MANY);
    /* The table grew: load at most 1, bucket count a power of two. */
    assert_true(t->nbuckets > initial_buckets);
    assert_true(t->nbuckets >= t->count);
    assert_true((t->nbuckets & (t->nbuckets - 1)) == 0);

    qsort(ids, MANY, sizeof *ids, cmp_u32);
    for (size_t i = 1; i < MANY; i++)
        assert_true(ids[i - 1] != ids[i]);

    for (size_t i = 0; i < MANY; i++)
        assert_ptr_equal(sbx_proc_find(t, ps[i]->num, ps[i]->serial), ps[i]);
    /* Wrong serial or number: not found. */
    assert_null(sbx_proc_find(t, ps[0]->num, ps[0]->serial + 0x1000));
    assert_null(sbx_proc_find(t, 0, 0));
    assert_int_equal(table_walk_count(t), MANY);

    /* Free every other one; the rest are still found, the freed are not. */
    uint32_t *freed_num = malloc(MANY / 2 * sizeof *freed_num);
    uint32_t *freed_ser = malloc(MANY / 2 * sizeof *freed_ser);
    assert_non_null(freed_num);
    assert_non_null(freed_ser);
    for (size_t i = 0; i < MANY; i += 2) {
        freed_num[i / 2] = ps[i]->num;
        freed_ser[i / 2] = ps[i]->serial;
        sbx_proc_free(t, ps[i]);
        ps[i] = NULL;
    }
    assert_int_equal(t->count, MANY / 2);
    for (size_t i = 0; i < MANY / 2; i++)
        assert_null(sbx_proc_find(t, freed_num[i], freed_ser[i]));
    for (size_t i = 1; i < MANY; i += 2)
        assert_ptr_equal(sbx_proc_find(t, ps[i]->num, ps[i]->serial), ps[i]);

    /* New processes never take a live pid. */
    for (size_t i = 0; i < 1000; i++) {
        struct sbx_proc *p = sbx_proc_spawn(t, &ops, NULL);
        assert_non_null(p);
        assert_ptr_equal(sbx_proc_find(t, p->num, p->serial), p);
    }
    assert_int_equal(t->count, MANY / 2 + 1000);
    assert_int_equal(table_walk_count(t), MANY / 2 + 1000);
    free(freed_num);
    free(freed_ser);
    free(ids);
    free(ps);
}

static void test_num_never_zero_across_wraps(void **state) {
    struct sbx_proc_table *t = *state;
    /* 3 * 2^15 spawns cross the point where the 15-bit number wraps three times. */
    for (uint32_t i = 0; i < 3 * 0x8000 + 5; i++) {
        struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
        assert_non_null(p);
        assert_int_not_equal(p->num, 0);
        if (i % 3 != 0)
            sbx_proc_free(t, p);
    }
}

static void test_counter_wraps_around_live_pids(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *first = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(first);
    assert_int_equal(first->num, 1);
    assert_int_equal(first->serial, 0);
    /* Jump to the end of the 28-bit space. */
    t->counter = 0x0ffffffe;
    struct sbx_proc *last = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(last);
    assert_int_equal(last->num, 0x7fff);
    assert_int_equal(last->serial, 0x1fff);
    /* Next the counter wraps to 1, which is taken by `first`: it must skip to 2. */
    struct sbx_proc *wrapped = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(wrapped);
    assert_int_equal(wrapped->serial, 0);
    assert_int_equal(wrapped->num, 2);
    assert_ptr_equal(sbx_proc_find(t, 1, 0), first);
    assert_ptr_equal(sbx_proc_find(t, 2, 0), wrapped);
    assert_int_equal(t->count, 3);
}

static void test_whereis(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *a = sbx_proc_spawn(t, NULL, NULL);
    struct sbx_proc *b = sbx_proc_spawn(t, NULL, NULL);
    struct sbx_proc *c = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    a->name = "rex";
    b->name = "sandboxd_spawner";
    assert_ptr_equal(sbx_proc_whereis(t, "rex"), a);
    assert_ptr_equal(sbx_proc_whereis(t, "sandboxd_spawner"), b);
    assert_null(sbx_proc_whereis(t, "re"));
    assert_null(sbx_proc_whereis(t, "rexx"));
    assert_null(sbx_proc_whereis(t, ""));
    /* Survives growth of the table. */
    for (int i = 0; i < 5000; i++)
        assert_non_null(sbx_proc_spawn(t, NULL, NULL));
    assert_ptr_equal(sbx_proc_whereis(t, "rex"), a);
    sbx_proc_free(t, a);
    assert_null(sbx_proc_whereis(t, "rex"));
    assert_ptr_equal(sbx_proc_whereis(t, "sandboxd_spawner"), b);
}

/* Which fenced peer may reach a process: none by default, exactly the one named after
 * sbx_proc_serve_peer (replaced by a second call); the copy goes with the process. */
static void test_serve_peer(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
    char name[32];
    assert_non_null(p);
    assert_int_equal(sbx_proc_serves(p, "a@host"), 0);
    strcpy(name, "a@host");
    assert_int_equal(sbx_proc_serve_peer(p, name), 0);
    memset(name, 0, sizeof name); /* copied, not kept */
    assert_int_equal(sbx_proc_serves(p, "a@host"), 1);
    assert_int_equal(sbx_proc_serves(p, "b@host"), 0);
    assert_int_equal(sbx_proc_serves(p, "a@hos"), 0);
    assert_int_equal(sbx_proc_serve_peer(p, "b@host"), 0);
    assert_int_equal(sbx_proc_serves(p, "a@host"), 0);
    assert_int_equal(sbx_proc_serves(p, "b@host"), 1);
    sbx_proc_free(t, p); /* frees the name too (LeakSanitizer would say otherwise) */
    struct sbx_proc *q = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(q);
    assert_int_equal(sbx_proc_serve_peer(q, "c@host"), 0); /* freed by the table's teardown */
}

static void test_links(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(p);
    struct sbx_rpid r1 = {.conn_id = 1, .num = 10, .serial = 0, .creation = 5};
    struct sbx_rpid r1b = r1;
    r1b.creation = 6; /* same process number on a restarted node: another process */
    struct sbx_rpid r2 = {.conn_id = 2, .num = 10, .serial = 0, .creation = 5};

    assert_int_equal(sbx_proc_link(p, &r1), 0);
    assert_int_equal(sbx_proc_link(p, &r1), 0);
    assert_int_equal(sbx_proc_link(p, &r1), 0);
    assert_int_equal(count_links(p), 1);
    assert_true(sbx_rpid_eq(&p->links->pid, &r1));
    assert_int_equal(sbx_proc_link(p, &r1b), 0);
    assert_int_equal(sbx_proc_link(p, &r2), 0);
    assert_int_equal(count_links(p), 3);

    assert_int_equal(sbx_proc_unlink(p, &r1), 1);
    assert_int_equal(sbx_proc_unlink(p, &r1), 0);
    assert_int_equal(count_links(p), 2);
    for (const struct sbx_link *l = p->links; l != NULL; l = l->next)
        assert_false(sbx_rpid_eq(&l->pid, &r1));
    /* Link again after unlink. */
    assert_int_equal(sbx_proc_link(p, &r1), 0);
    assert_int_equal(count_links(p), 3);
    struct sbx_rpid other = {.conn_id = 9, .num = 1, .serial = 1, .creation = 1};
    assert_int_equal(sbx_proc_unlink(p, &other), 0);
    assert_int_equal(count_links(p), 3);
    /* Freed with its links still there: LeakSanitizer checks they go with it. */
    sbx_proc_free(t, p);
}

static void test_rpid_eq(void **state) {
    (void)state;
    struct sbx_rpid a = {1, 2, 3, 4}, b = a;
    assert_true(sbx_rpid_eq(&a, &b));
    b.conn_id = 9;
    assert_false(sbx_rpid_eq(&a, &b));
    b = a;
    b.num = 9;
    assert_false(sbx_rpid_eq(&a, &b));
    b = a;
    b.serial = 9;
    assert_false(sbx_rpid_eq(&a, &b));
    b = a;
    b.creation = 9;
    assert_false(sbx_rpid_eq(&a, &b));
}

static void test_monitors(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(p);
    struct sbx_rpid w1 = {.conn_id = 1, .num = 77, .serial = 0, .creation = 3};
    struct sbx_rpid w2 = {.conn_id = 1, .num = 78, .serial = 0, .creation = 3};
    /* Refs as a watcher would encode them (NEWER_REFERENCE_EXT bytes). */
    char ref1[] = {90, 0, 3, 119, 3, 'a', '@', 'b', 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3};
    char ref2[sizeof ref1];
    memcpy(ref2, ref1, sizeof ref1);
    ref2[sizeof ref2 - 1] = 4;

    assert_int_equal(sbx_proc_monitor(p, &w1, ref1, sizeof ref1, 0), 0);
    assert_int_equal(sbx_proc_monitor(p, &w1, ref2, sizeof ref2, 1), 0);
    assert_int_equal(sbx_proc_monitor(p, &w2, ref1, sizeof ref1, 0), 0);
    assert_int_equal(count_monitors(p), 3);

    /* The ref was copied: changing the caller's bytes changes nothing. */
    char saved = ref1[5];
    ref1[5] = 'Z';
    int found = 0;
    for (const struct sbx_monitor *m = p->monitors; m != NULL; m = m->next) {
        assert_int_equal(m->ref_len, sizeof ref1);
        assert_ptr_not_equal(m->ref, ref1);
        assert_int_equal(m->ref[5], 'a');
        if (sbx_rpid_eq(&m->watcher, &w1) && m->ref[sizeof ref1 - 1] == 4) {
            assert_int_equal(m->by_name, 1);
            found++;
        } else {
            assert_int_equal(m->by_name, 0);
        }
    }
    assert_int_equal(found, 1);
    ref1[5] = saved;

    /* Demonitor needs the same watcher, the same bytes and the same length. */
    assert_int_equal(sbx_proc_demonitor(p, &w1, ref1, sizeof ref1 - 1), 0);
    struct sbx_rpid w3 = w1;
    w3.conn_id = 2;
    assert_int_equal(sbx_proc_demonitor(p, &w3, ref1, sizeof ref1), 0);
    assert_int_equal(count_monitors(p), 3);
    assert_int_equal(sbx_proc_demonitor(p, &w1, ref1, sizeof ref1), 1);
    assert_int_equal(sbx_proc_demonitor(p, &w1, ref1, sizeof ref1), 0);
    assert_int_equal(count_monitors(p), 2);
    /* w2's monitor with the same ref is still there. */
    assert_int_equal(sbx_proc_demonitor(p, &w2, ref1, sizeof ref1), 1);
    assert_int_equal(sbx_proc_demonitor(p, &w1, ref2, sizeof ref2), 1);
    assert_null(p->monitors);

    /* An empty ref is allowed. */
    assert_int_equal(sbx_proc_monitor(p, &w1, "", 0, 0), 0);
    assert_int_equal(sbx_proc_demonitor(p, &w1, "", 0), 1);
    /* Left behind on purpose: freed with the table (leak-checked). */
    assert_int_equal(sbx_proc_monitor(p, &w1, ref1, sizeof ref1, 0), 0);
    assert_int_equal(sbx_proc_link(p, &w2), 0);
}

static void test_drop_conn(void **state) {
    struct sbx_proc_table *t = *state;
    struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
    struct sbx_proc *q = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(p);
    assert_non_null(q);
    struct sbx_rpid a1 = {.conn_id = 1, .num = 1, .serial = 0, .creation = 1};
    struct sbx_rpid b1 = {.conn_id = 1, .num = 2, .serial = 0, .creation = 1};
    struct sbx_rpid c1 = {.conn_id = 1, .num = 3, .serial = 0, .creation = 1};
    struct sbx_rpid a2 = {.conn_id = 2, .num = 1, .serial = 0, .creation = 1};
    const char r[] = {1, 2, 3};

    /* Interleaved so that removals happen at the head, middle and tail. */
    assert_int_equal(sbx_proc_link(p, &a1), 0);
    assert_int_equal(sbx_proc_link(p, &a2), 0);
    assert_int_equal(sbx_proc_link(p, &b1), 0);
    assert_int_equal(sbx_proc_link(p, &c1), 0);
    assert_int_equal(sbx_proc_monitor(p, &a2, r, 3, 0), 0);
    assert_int_equal(sbx_proc_monitor(p, &a1, r, 3, 0), 0);
    assert_int_equal(sbx_proc_monitor(p, &a2, r, 2, 0), 0);
    assert_int_equal(sbx_proc_monitor(p, &b1, r, 1, 1), 0);
    assert_int_equal(sbx_proc_link(q, &a1), 0);
    assert_int_equal(sbx_proc_monitor(q, &a1, r, 3, 0), 0);

    assert_int_equal(sbx_proc_drop_conn(p, 3), 0);
    assert_int_equal(sbx_proc_drop_conn(p, 1), 3 + 2);
    assert_int_equal(count_links(p), 1);
    assert_true(sbx_rpid_eq(&p->links->pid, &a2));
    assert_int_equal(count_monitors(p), 2);
    for (const struct sbx_monitor *m = p->monitors; m != NULL; m = m->next)
        assert_int_equal(m->watcher.conn_id, 2);
    assert_int_equal(sbx_proc_drop_conn(p, 1), 0);
    /* q is untouched by p's drop. */
    assert_int_equal(count_links(q), 1);
    assert_int_equal(count_monitors(q), 1);
    assert_int_equal(sbx_proc_drop_conn(p, 2), 3);
    assert_null(p->links);
    assert_null(p->monitors);
    assert_int_equal(sbx_proc_drop_conn(q, 1), 2);
    assert_null(q->links);
    assert_null(q->monitors);
}

struct each_state {
    struct sbx_proc_table *t;
    size_t visited, freed;
};

static void free_odd_cb(struct sbx_proc *p, void *arg) {
    struct each_state *s = arg;
    s->visited++;
    if (p->num % 2 == 1) {
        sbx_proc_free(s->t, p);
        s->freed++;
    }
}

static void free_all_cb(struct sbx_proc *p, void *arg) {
    struct each_state *s = arg;
    s->visited++;
    s->freed++;
    sbx_proc_free(s->t, p);
}

static void test_each_with_free(void **state) {
    struct sbx_proc_table *t = *state;
    const struct sbx_rpid r = {.conn_id = 4, .num = 1, .serial = 2, .creation = 3};
    for (int i = 0; i < 3000; i++) {
        struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
        assert_non_null(p);
        assert_int_equal(sbx_proc_link(p, &r), 0);
        assert_int_equal(sbx_proc_monitor(p, &r, "ref", 3, 0), 0);
    }
    struct each_state s = {t, 0, 0};
    sbx_proc_each(t, free_odd_cb, &s);
    assert_int_equal(s.visited, 3000);
    assert_int_equal(s.freed, 1500); /* numbers 1..3000: half are odd */
    assert_int_equal(t->count, 1500);
    assert_int_equal(table_walk_count(t), 1500);
    for (uint32_t n = 1; n <= 3000; n++) {
        struct sbx_proc *p = sbx_proc_find(t, n, 0);
        if (n % 2)
            assert_null(p);
        else
            assert_non_null(p);
    }

    s.visited = s.freed = 0;
    sbx_proc_each(t, free_all_cb, &s);
    assert_int_equal(s.visited, 1500);
    assert_int_equal(t->count, 0);
    assert_int_equal(table_walk_count(t), 0);
    /* The table is still usable. */
    struct sbx_proc *p = sbx_proc_spawn(t, NULL, NULL);
    assert_non_null(p);
    assert_ptr_equal(sbx_proc_find(t, p->num, p->serial), p);
    assert_int_equal(t->count, 1);
}

static void test_table_free_with_contents(void **state) {
    (void)state;
    /* A table freed while processes hold links and monitors: nothing leaks. */
    struct sbx_proc_table t;
    assert_int_equal(sbx_proc_table_init(&t), 0);
    const struct sbx_rpid r = {.conn_id = 1, .num = 1, .serial = 0, .creation = 1};
    for (int i = 0; i < 200; i++) {
        struct sbx_proc *p = sbx_proc_spawn(&t, NULL, NULL);
        assert_non_null(p);
        assert_int_equal(sbx_proc_link(p, &r), 0);
        assert_int_equal(sbx_proc_monitor(p, &r, "abcdef", 6, i & 1), 0);
    }
    sbx_proc_table_free(&t);
    assert_null(t.buckets);
    assert_int_equal(t.count, 0);
    assert_int_equal(t.nbuckets, 0);
    /* Freeing twice is harmless (the table is zeroed). */
    sbx_proc_table_free(&t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_table, teardown_table)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_init_empty),
        T(test_spawn_many_unique),
        T(test_num_never_zero_across_wraps),
        T(test_counter_wraps_around_live_pids),
        T(test_whereis),
        T(test_serve_peer),
        T(test_links),
        cmocka_unit_test(test_rpid_eq),
        T(test_monitors),
        T(test_drop_conn),
        T(test_each_with_free),
        cmocka_unit_test(test_table_free_with_contents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
