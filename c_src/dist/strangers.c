/* Strangers per source address: open addressing, linear probing, backward-shift deletion. */
#include "dist/strangers.h"

#include <stdlib.h>
#include <string.h>

/* See strangers.h. */
int sbx_addr_equal(const struct sbx_addr *a, const struct sbx_addr *b) {
    return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* FNV-1a of the address bytes (and its length). */
static size_t hash_addr(const struct sbx_addr *a) {
    uint32_t h = 2166136261u ^ a->len;
    for (unsigned i = 0; i < a->len; i++)
        h = (h ^ a->b[i]) * 16777619u;
    return h;
}

/* See strangers.h. Room for max_total distinct addresses at a load of at most one half. */
int sbx_strangers_init(struct sbx_strangers *s, size_t max_total, size_t max_per_addr) {
    size_t n = 16;
    memset(s, 0, sizeof *s);
    while (n < 2 * max_total + 2)
        n *= 2;
    s->slots = calloc(n, sizeof *s->slots);
    s->by_count = calloc(max_per_addr + 2, sizeof *s->by_count);
    if (s->slots == NULL || s->by_count == NULL) {
        sbx_strangers_free(s);
        return -1;
    }
    s->mask = n - 1;
    s->max_total = max_total;
    s->max_per_addr = max_per_addr;
    return 0;
}

/* See strangers.h. */
void sbx_strangers_free(struct sbx_strangers *s) {
    free(s->slots);
    free(s->by_count);
    memset(s, 0, sizeof *s);
}

/* The slot holding a, or the free slot where it would go; NULL only for a table with no
 * free slot (never, at the sizes init picks, unless the caller ignores the cap). */
static struct sbx_stranger_slot *find(const struct sbx_strangers *s, const struct sbx_addr *a) {
    if (s->slots == NULL)
        return NULL;
    size_t i = hash_addr(a) & s->mask;
    for (size_t probes = 0; probes <= s->mask; probes++, i = (i + 1) & s->mask) {
        struct sbx_stranger_slot *sl = &s->slots[i];
        if (sl->count == 0 || sbx_addr_equal(&sl->addr, a))
            return sl;
    }
    return NULL;
}

/* See strangers.h. */
size_t sbx_strangers_count(const struct sbx_strangers *s, const struct sbx_addr *a) {
    const struct sbx_stranger_slot *sl = find(s, a);
    return sl != NULL ? sl->count : 0;
}

/* The by_count index of a count (counts past max_per_addr share the last one). */
static size_t bucket(const struct sbx_strangers *s, size_t count) {
    return count <= s->max_per_addr ? count : s->max_per_addr + 1;
}

/* Moves one address from count `from` to count `to` in the histogram (0 is not tracked). */
static void recount(struct sbx_strangers *s, size_t from, size_t to) {
    if (from > 0)
        s->by_count[bucket(s, from)]--;
    if (to > 0)
        s->by_count[bucket(s, to)]++;
}

/* See strangers.h. Keeps at least one slot free, so that lookups always end. */
int sbx_strangers_add(struct sbx_strangers *s, const struct sbx_addr *a) {
    struct sbx_stranger_slot *sl = find(s, a);
    if (sl == NULL)
        return -1;
    if (sl->count == 0) {
        if (s->used + 1 >= s->mask + 1)
            return -1;
        sl->addr = *a;
        s->used++;
    }
    recount(s, sl->count, sl->count + 1);
    sl->count++;
    s->total++;
    return 0;
}

/* See strangers.h. A slot that empties is refilled from later slots of its probe chain
 * (backward shift), so that no lookup stops early. */
void sbx_strangers_del(struct sbx_strangers *s, const struct sbx_addr *a) {
    struct sbx_stranger_slot *sl = find(s, a);
    if (sl == NULL || sl->count == 0)
        return;
    s->total--;
    recount(s, sl->count, sl->count - 1);
    if (--sl->count > 0)
        return;
    s->used--;
    size_t hole = (size_t)(sl - s->slots);
    size_t j = hole;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->slots[j].count == 0)
            break;
        size_t home = hash_addr(&s->slots[j].addr) & s->mask;
        /* j's entry may move to the hole if its home is not cyclically in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            s->slots[hole] = s->slots[j];
            s->slots[j].count = 0;
            hole = j;
        }
    }
    s->slots[hole].count = 0;
}

/* See strangers.h. For counts past max_per_addr (never, when the caller refuses at the
 * cap) the table is scanned. */
size_t sbx_strangers_most(const struct sbx_strangers *s) {
    if (s->by_count == NULL)
        return 0;
    if (s->by_count[s->max_per_addr + 1] > 0) {
        size_t best = 0;
        for (size_t i = 0; i <= s->mask; i++)
            if (s->slots[i].count > best)
                best = s->slots[i].count;
        return best;
    }
    for (size_t k = s->max_per_addr; k > 0; k--)
        if (s->by_count[k] > 0)
            return k;
    return 0;
}
