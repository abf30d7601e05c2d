/*
 * The agent: owns the one ev_loop and every adapter (store, control socket,
 * signals, systemd notification), and wires them together. Decisions live in
 * src/core; this file only routes inputs to them and their outputs to I/O.
 */
#ifndef AGENTD_AGENT_H
#define AGENTD_AGENT_H

#include <ev.h>

#include "agentd/config.h"
#include "core/event.h"

struct agent;
struct ctl;
struct store;

/*
 * Builds an agent from a validated config (ownership passes to the agent,
 * also on failure): opens the store, binds the control socket. Errors are
 * logged here, at the edge, and returned as negative errno.
 */
int agent_new(const char *config_path, struct agentd_config *config, struct agent **ret);

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int agent_run(struct agent *a);

void agent_free(struct agent *a);

/*
 * What the agent's modules (supervisor, gossip, ...) use. agent_emit_event
 * records an event in the store and the log; ts_us 0 means now, node NULL
 * means this node. The config pointer changes on reload: do not keep it.
 */
void agent_emit_event(struct agent *a, const struct event *ev);
struct ev_loop *agent_loop(struct agent *a);
struct store *agent_store(struct agent *a);
const struct agentd_config *agent_config(struct agent *a);
/* The control socket, for modules that answer a request late (ctl_reply). */
struct ctl *agent_ctl(struct agent *a);

/*
 * Resolves a group name to a gid for the control socket. NULL name gives
 * (gid_t) -1. Returns 0, -ENOENT for an unknown group, or another errno.
 */
int agent_resolve_group(const char *name, gid_t *ret_gid);

#endif
