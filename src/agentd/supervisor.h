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

#endif
