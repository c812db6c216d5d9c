/* Subscriptions: which remote processes get which events of which sandboxes, and the
 * bounds that keep a slow subscriber from growing sandboxd's memory. */
#ifndef SBX_CORE_SUBS_H
#define SBX_CORE_SUBS_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "dist/proc.h"

struct sbx_core;
struct sbx_sandbox;

/* Bounds on a subscriber.
 *
 * Each subscriber has a credit of SBX_SUB_WINDOW bytes of events. Once it has used half,
 * sandboxd asks the subscriber's node for the subscriber's message queue length
 * (erlang:process_info/2 through erpc); a queue of at most SBX_SUB_MAX_QUEUE messages
 * renews the credit, a longer one stops delivery, and the question is asked again at
 * most every SBX_SUB_RECHECK_MS while events keep coming. Events that find no credit, or
 * a connection already holding SBX_SUB_MAX_BACKLOG bytes, are dropped and counted; the
 * next event delivered carries dropped => N. A subscriber that keeps up never loses an
 * event; one that stops reading costs at most a window of its own node's memory and
 * nothing of sandboxd's. */
#define SBX_SUB_WINDOW (16 << 20)
#define SBX_SUB_MAX_QUEUE 1000
#define SBX_SUB_RECHECK_MS 100
#define SBX_SUB_MAX_BACKLOG (32u << 20)

struct sbx_sub {
    struct sbx_sub *next;
    char sandbox_id[SBX_ID_MAX + 1]; /* "" = all sandboxes */
    unsigned topics;                 /* bits of enum sbx_topic */
    struct sbx_rpid pid;
    char *ref;                       /* the SubRef, also the monitor's reference */
    size_t ref_len;
    uint64_t dropped;                /* not yet reported */
    uint64_t sent;
    int64_t credit;                  /* bytes it may still be sent */
    char *check_ref;                 /* the queue-length question in flight, or NULL */
    size_t check_ref_len;
    int64_t next_check_ms;
};

/* Adds a subscription for pid (sandbox_id NULL = all) and monitors pid. ref_out
 * receives the SubRef. 0, or -1: no memory, pid's node not connected, or the limit. */
int sbx_subs_add(struct sbx_core *core, const char *sandbox_id, const struct sbx_rpid *pid,
                 unsigned topics, ei_x_buff *ref_out, const char **why);

/* Removes the subscription with that reference (encoded). 1 if one existed. */
int sbx_subs_remove(struct sbx_core *core, const char *ref, size_t ref_len, int demonitor);

/* Removes every subscription held through a connection that went down. */
void sbx_subs_conn_down(struct sbx_core *core, uint64_t conn_id);

/* Frees every subscription without telling anyone (shutdown). */
void sbx_subs_free_all(struct sbx_core *core);

/* Removes the subscriptions of a sandbox that is gone. */
void sbx_subs_sandbox_gone(struct sbx_core *core, const char *sandbox_id);

/* A 'DOWN' message that answers a queue-length question: updates the subscriber's
 * credit and returns 1; 0 if msg is not such an answer. */
int sbx_subs_check_answer(struct sbx_core *core, const char *msg);

/* 1 if some subscriber wants topic events of sb. */
int sbx_subs_wanted(const struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic);
/* The same, counting Erlang subscribers only (not the event tap, core/stats.h). */
int sbx_subs_wanted_by_subscriber(const struct sbx_core *core, const struct sbx_sandbox *sb,
                                  enum sbx_topic topic);

/* Sends {sandbox_event, Id, Topic, Payload} to each subscriber of sb and topic. payload
 * is a map (encoded, no version byte) whose header is its first bytes: a `dropped => N`
 * pair is added for subscribers that lost events. */
void sbx_subs_publish(struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic,
                      const char *payload, size_t payload_len, int payload_pairs);

/* The same for the last event of a stream (a trace's end, which says why it ended and
 * carries the drop count): sent even to a subscriber out of credit, so that it learns the
 * stream is over; only a backlogged connection still loses it. Once per stream, so it
 * cannot grow anything without bound. */
void sbx_subs_publish_last(struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic,
                           const char *payload, size_t payload_len, int payload_pairs);

#endif
