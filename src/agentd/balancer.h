/*
 * The agent's balancer module: the balancer table and replica placement in
 * the agent's loop (DESIGN.md "Leader, balancer table, failover").
 *
 * Every agent reports its instances (supervisor) to the leader and holds
 * the last table set it accepted (persisted in STORE_TABLE_BALANCER, served
 * by `pick` from the moment the agent starts). The leader builds the table
 * from the reports, membership and drains (core/table.h), plans replicas
 * (core/placement.h), pushes new versions and assignments to every agent
 * (TCP exchanges, core/sync.h) and announces (term, version, digest) over
 * UDP so an agent that missed a push pulls it.
 */
#ifndef AGENTD_BALANCER_H
#define AGENTD_BALANCER_H

#include <jansson.h>

#include "io/ctl.h"

struct agent;
struct gossip;
struct leader;
struct supervisor;
struct balancer;

/* Key of the persisted table set and of this node's drain in STORE_TABLE_BALANCER. */
#define BALANCER_STORE_TABLE_KEY "table"
#define BALANCER_STORE_DRAIN_KEY "drain"

/* sup may be NULL (a witness runs no services). 0 or a negative errno (logged). */
int balancer_new(struct agent *a, struct gossip *g, struct leader *l, struct supervisor *sup,
                 struct balancer **ret);
void balancer_free(struct balancer *b);    /* NULL-safe */

/* The config changed (already in force): service specs are re-reported. */
void balancer_reload(struct balancer *b);

/* Control verbs: complete replies (drain and undrain may answer later through the ctl). */
json_t *balancer_verb_table(struct balancer *b, json_t *args);
json_t *balancer_verb_pick(struct balancer *b, json_t *args);
json_t *balancer_verb_drain(struct balancer *b, const struct ctl_caller *caller, json_t *args);
json_t *balancer_verb_undrain(struct balancer *b, const struct ctl_caller *caller, json_t *args);

/* Adds "table" ({"term","version","digest","services","current","leader"}) to a status object. */
int balancer_status(struct balancer *b, json_t *status);

#endif
