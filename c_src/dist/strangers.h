/* Accounting of strangers: accepted connections whose peer has not proven the cookie yet,
 * counted overall and per source address, so that the node can bound them (dist/conn.c
 * decides what to do at the limits). A fixed-size open-addressing table; no allocation
 * after init. */
#ifndef SBX_DIST_STRANGERS_H
#define SBX_DIST_STRANGERS_H

#include <stddef.h>
#include <stdint.h>

/* A source address: IPv4 (len 4), IPv6 (len 16), or unknown (len 0, all share one slot). */
struct sbx_addr {
    unsigned char len;
    unsigned char b[16];
};

struct sbx_stranger_slot {
    struct sbx_addr addr;
    size_t count; /* 0: free slot */
};

struct sbx_strangers {
    struct sbx_stranger_slot *slots;
    size_t mask;       /* slots - 1 (a power of two, at least twice max_total) */
    size_t total;      /* strangers counted now */
    size_t used;       /* slots in use (distinct addresses) */
    size_t max_total;  /* the node's cap overall */
    size_t max_per_addr;
    size_t *by_count;  /* by_count[k]: addresses with exactly k strangers (k <= max_per_addr
                          in normal use; larger counts are kept at the last index) */
};

/* Sizes the table for max_total strangers. 0, or -1 (out of memory; s zeroed, safe to free). */
int sbx_strangers_init(struct sbx_strangers *s, size_t max_total, size_t max_per_addr);

/* Frees the table; s is zeroed. Safe on a zeroed s. */
void sbx_strangers_free(struct sbx_strangers *s);

/* How many strangers come from a now. */
size_t sbx_strangers_count(const struct sbx_strangers *s, const struct sbx_addr *a);

/* Counts one more stranger from a: 0, or -1 when the table has no room (only if more than
 * max_total are added: the caller checks the cap first). */
int sbx_strangers_add(struct sbx_strangers *s, const struct sbx_addr *a);

/* Counts one stranger from a less; no-op if none is counted for a. */
void sbx_strangers_del(struct sbx_strangers *s, const struct sbx_addr *a);

/* The largest number of strangers any one address has now (0 if none at all). O(max_per_addr). */
size_t sbx_strangers_most(const struct sbx_strangers *s);

/* 1 if a and b are the same address. */
int sbx_addr_equal(const struct sbx_addr *a, const struct sbx_addr *b);

#endif
