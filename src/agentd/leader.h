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

#include <stdbool.h>
#include <stdint.h>

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

/*
 * For the balancer: the leader of the current term (NULL: none known), the
 * term, whether we lead with a running lease (only then may we issue
 * tables and orders), and fencing (an output of `term` may be acted on).
 * The change handler runs after any change of leader, term, activity or
 * quorum round (so, while we lead, about once per heartbeat).
 */
const char *leader_current(struct leader *l);
uint64_t leader_term(struct leader *l);
bool leader_active(struct leader *l);
/* election_quorum_round(): decisions on inputs older than this have a quorum behind them. */
uint64_t leader_quorum_round(struct leader *l);
bool leader_accepts(struct leader *l, uint64_t term);
void leader_set_change_handler(struct leader *l, void (*fn)(void *userdata), void *userdata);

/* Fills "leader", "term" and "quorum" ({"have":N,"need":N}) of a status object. 0 or -ENOMEM. */
int leader_status(struct leader *l, json_t *status);

#endif
