/*
 * The supervisor: self-healing of this host's service instances. For every
 * configured service it watches the unit through io/systemd.h, runs the
 * instance's check (io/probe.h, or the unit's state for `systemd` checks) and
 * feeds the results to the pure state machines in src/core (health, breaker,
 * supervise). It carries out what they decide -- restarts through D-Bus,
 * followed to their job result -- records every change as an event, and
 * persists breaker, rate-limit and backoff state in the store's state tables
 * so that an agent restart continues where it stopped.
 */
#ifndef AGENTD_SUPERVISOR_H
#define AGENTD_SUPERVISOR_H

#include <stdbool.h>

#include <jansson.h>

#include "agentd/agent.h"
#include "io/ctl.h"

struct supervisor;

/*
 * Builds the supervisor for agent_config(a)'s services and restores their
 * persisted state. FAIL_SAFE (the state database was recovered from
 * corruption, so the restart history is lost): automatic restarts are held
 * back for each instance's restart.window after start. The bus is opened only
 * once a service is configured. Returns 0 or negative errno (logged here).
 */
int supervisor_new(struct agent *a, bool fail_safe, struct supervisor **ret);

/*
 * Applies a configuration already in force (agent_config(a) is the new one):
 * added services start, removed ones stop and their persisted state is
 * deleted, changed ones are reconfigured (a changed unit or check type starts
 * the instance afresh). Never refuses.
 */
void supervisor_reload(struct supervisor *s);

/* Stops every check and drops the bus connection. NULL-safe. */
void supervisor_free(struct supervisor *s);

/*
 * Control verbs; each returns a complete reply (ctlproto_ok/ctlproto_error).
 * services and breakers take no arguments; restart takes {"unit": UNIT} where
 * UNIT is a supervised unit or the name of its service.
 */
json_t *supervisor_verb_services(struct supervisor *s, json_t *args);
json_t *supervisor_verb_breakers(struct supervisor *s, json_t *args);
json_t *supervisor_verb_restart(struct supervisor *s, const struct ctl_caller *caller, json_t *args);

/*
 * Placed instances (replicas started on a leader's order; see
 * core/placement.h and core/sync.h). A service whose config has
 * replicas >= 1 and a template unit lets the leader place instances of it
 * here: "web@.service" with port P becomes "web@P.service", supervised
 * exactly like a configured instance (same check, restart and breaker
 * settings, address, weight), with the placed port substituted.
 *
 * supervisor_assign() makes the set of placed instances equal to `assigned`
 * (the complete list from the leader of `term`): new ones are persisted,
 * then started through StartUnit; ones no longer listed are stopped through
 * StopUnit and forgotten once stopped. An assignment for a service this host
 * does not run with a template, a unit that is already a configured
 * instance, or beyond SYNC_ASSIGNED_MAX / the unit watch limit is skipped
 * (and logged once per assignment). Returns the number of changes
 * (starts + stops) or a negative errno.
 */
struct sync_assigned;
struct sync_instance;
int supervisor_assign(struct supervisor *s, const struct sync_assigned *assigned, size_t n, uint64_t term);

/*
 * Every instance (configured and placed) as this host reports it on the
 * gossip: a malloc'd array in config order, then placed ones by unit.
 * healthy is the health verdict (up); state is PLACEMENT_PENDING until the
 * first up verdict after a (re)start, HEALTHY / UNHEALTHY after, FAILED when
 * quarantined or the start job failed or the unit does not exist, STOPPING
 * while a stop job runs. 0 or -ENOMEM.
 */
int supervisor_report(struct supervisor *s, struct sync_instance **ret, size_t *ret_n);

/*
 * Called (once per loop iteration at most, from an ev_idle/prepare or right
 * away) whenever what supervisor_report() returns may have changed: a
 * verdict, a breaker state, a placed instance started, stopped or failed.
 */
void supervisor_set_report_handler(struct supervisor *s, void (*fn)(void *userdata), void *userdata);

#endif
