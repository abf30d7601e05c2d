/*
 * The publisher: what the active leader does for the balancer (DESIGN.md
 * "Leader, balancer table, failover"). Fed with every node's REPORT and with
 * membership changes, it plans replicas (core/placement.h), builds the
 * table (core/table.h), records each decision as an event (table_published,
 * failover, instance_placed, instance_stopped), pushes UPDATEs (the table
 * and the node's assignment) and announces (term, version, digest). It does
 * no timing of its own: balancer.c calls publisher_step() from its loop
 * whenever the schedule callback asked for it, and on its tick.
 */
#ifndef AGENTD_PUBLISHER_H
#define AGENTD_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent;
struct gossip;
struct publisher;
struct sync_report;
struct sync_update;
struct table_set;

struct publisher_callbacks {
        /* Applies the UPDATE meant for this node itself (the leader's own table and assignment). */
        void (*apply_self)(const struct sync_update *u, void *userdata);
        /* An input arrived: call publisher_step() soon (the caller coalesces). */
        void (*schedule)(void *userdata);
        void *userdata;
};

int publisher_new(struct agent *a, struct gossip *g, const struct publisher_callbacks *cb, struct publisher **ret);
void publisher_free(struct publisher *pb);         /* NULL-safe */

/*
 * Starts leading `term`: nodes in `held` (the table this agent held as a
 * follower, may be NULL) get stand-in reports until they report themselves,
 * so a node that died meanwhile shows down instead of vanishing; the first
 * table is published once every alive member has reported or after a
 * second. 0 or -ENOMEM. publisher_stop() forgets every report.
 */
int publisher_start(struct publisher *pb, uint64_t term, const struct table_set *held);
void publisher_stop(struct publisher *pb);
bool publisher_leading(const struct publisher *pb);
uint64_t publisher_term(const struct publisher *pb);        /* 0 when not leading */
/* The table last published in this leadership, or NULL. */
const struct table_set *publisher_current(const struct publisher *pb);

/*
 * Takes a node's report (its arrays move to the publisher; *r is zeroed).
 * -EAGAIN when not leading, -EPERM from a node that is not an alive or
 * suspect member (what we hold per node is bounded by the member list).
 */
int publisher_take_report(struct publisher *pb, struct sync_report *r);

/* The UPDATE answering `node`'s report: the table if it lacks it, and its assignment. */
int publisher_reply(struct publisher *pb, const char *node, uint8_t **ret, size_t *ret_len);

/* The outcome of a push exchange; false when `cookie` is not one of ours. */
bool publisher_exchange_done(struct publisher *pb, uint64_t cookie, int result, const uint8_t *body, size_t len);

void publisher_members_changed(struct publisher *pb);

/*
 * Rebuilds when an input changed (once settled), pushes what nodes lack,
 * announces when due. quorum_round (leader_quorum_round()): a rebuild waits
 * until a heartbeat round sent after the newest input was acknowledged by a
 * quorum, so a leader cut off from the majority decides nothing while its
 * lease runs out.
 */
void publisher_step(struct publisher *pb, uint64_t quorum_round);

#endif
