/*
 * The agent's leader module: runs the election core (core/election.h) in
 * the agent's loop. Election messages travel through gossip (sealed,
 * replay-checked UDP, addressed by member name); the voter set comes from
 * the membership core (members that joined and have not left, each with the
 * role its meta blob announces); term and vote live in STORE_TABLE_ELECTION
 * and are committed before anything that depends on them is sent.
 */
#ifndef AGENTD_LEADER_H
#define AGENTD_LEADER_H

#include <jansson.h>

struct agent;
struct gossip;
struct leader;

/* Key of the (term, vote) row in STORE_TABLE_ELECTION. */
#define LEADER_STORE_KEY "election"

/* Loads the persisted term and vote and starts following. 0 or a negative errno (logged). */
int leader_new(struct agent *a, struct gossip *g, struct leader **ret);
void leader_free(struct leader *l);        /* NULL-safe */

/* The `leader` verb: a complete reply. */
json_t *leader_verb(struct leader *l, json_t *args);

/* Fills "leader", "term" and "quorum" ({"have":N,"need":N}) of a status object. 0 or -ENOMEM. */
int leader_status(struct leader *l, json_t *status);

#endif
