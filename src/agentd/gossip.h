/*
 * The agent's gossip module: wires the membership core (SWIM + Lifeguard)
 * to the network (io/net), the envelope (io/crypto), the replay window
 * (core/replay) and the store. Inbound: decrypt and authenticate, replay
 * check, decode, membership input. Outbound: the core's SEND, PUSHPULL,
 * EVENT and PERSIST outputs become sealed datagrams, TCP exchanges,
 * member_* events and rows in STORE_TABLE_AGENT / STORE_TABLE_MEMBERS.
 *
 * Like the agent, this module logs at the edge: its failures at start and
 * on reload are logged here and returned as negative errno.
 */
#ifndef AGENTD_GOSSIP_H
#define AGENTD_GOSSIP_H

#include <jansson.h>

#include "agentd/config.h"

struct agent;
struct gossip;

/* How long a graceful leave may hold up the agent's exit. */
#define GOSSIP_LEAVE_TIMEOUT_US (2 * USEC_PER_SEC)
/* At most one packet_rejected summary per this interval. */
#define GOSSIP_REJECT_SUMMARY_US (10 * USEC_PER_SEC)
/* The plaintext warning repeats this often. */
#define GOSSIP_PLAINTEXT_WARN_US (10 * USEC_PER_MIN)

/*
 * Starts gossip for the agent's config: loads the keyring, bumps and
 * persists the boot epoch, binds node.bind (UDP and TCP), and starts
 * joining cluster.join (or, failing that, the members persisted by the
 * last run). Returns 0 or a negative errno (already logged).
 */
int gossip_new(struct agent *a, struct gossip **ret);

/* Stops at once, without saying goodbye. NULL-safe. */
void gossip_free(struct gossip *g);

/*
 * Reload, in two steps so that nothing changes unless every module accepts
 * the new config: prepare loads the new keyring and checks the timings
 * (0, or a negative errno with a malloc'd "FILE: message" in *ret_error);
 * commit applies what the last successful prepare checked.
 */
int gossip_reload_prepare(struct gossip *g, const struct agentd_config *next, char **ret_error);
void gossip_reload_commit(struct gossip *g);

/*
 * SIGTERM: gossips `left` and breaks the agent's loop once the update has
 * gone out (or after GOSSIP_LEAVE_TIMEOUT_US). Returns 1 when the leave is
 * under way (the caller must not break the loop itself), 0 when there is
 * nothing to wait for.
 */
int gossip_leave(struct gossip *g);

/* Control verbs: complete replies (ctlproto_ok / ctlproto_error). */
json_t *gossip_verb_members(struct gossip *g, json_t *args);
json_t *gossip_verb_force_leave(struct gossip *g, json_t *args);

/*
 * Adds "members" ({"alive":N,"suspect":N,"dead":N,"left":N}) and "gossip"
 * (incarnation, boot epoch, joined, encrypted, keys, traffic and rejection
 * counters) to a status object. Returns 0 or -ENOMEM.
 */
int gossip_status(struct gossip *g, json_t *status);

/*
 * Election transport and membership view for src/agentd/leader.c. Election
 * bodies (core/wire.h, type WIRE_ELECTION_TYPE) travel in the same sealed,
 * replay-checked datagrams as gossip; inbound ones are handed, still
 * undecoded, to the election handler. The change handler runs after any
 * membership event or member update, so the leader module can refresh the
 * election's member list. Our own meta blob carries our election role
 * (GOSSIP_META_ROLE_* in byte 0).
 */
enum gossip_meta_role {
        GOSSIP_META_ROLE_NONVOTER = 0,
        GOSSIP_META_ROLE_VOTER = 1,
        GOSSIP_META_ROLE_WITNESS = 2,
};
typedef void (*gossip_election_fn)(const uint8_t *body, size_t len, void *userdata);
typedef void (*gossip_change_fn)(void *userdata);
void gossip_set_election_handlers(struct gossip *g, gossip_election_fn on_body, gossip_change_fn on_change,
                                  void *userdata);
/* Seals and sends body to member `name`: -ENOENT unknown or left, -EINVAL no address. */
int gossip_send_to(struct gossip *g, const char *name, const uint8_t *body, size_t len);
struct membership;
const struct membership *gossip_membership(const struct gossip *g);

/*
 * Table sync transport for src/agentd/balancer.c (bodies of core/sync.h).
 * UDP sync bodies (ANNOUNCE, DRAIN, DRAIN_ACK) go to on_datagram; a TCP
 * exchange whose request is a sync body (REPORT, UPDATE) goes to
 * on_request, which returns 0 and a malloc'd reply body, or a negative
 * errno to close the connection unanswered; the outcome of our own
 * exchanges (gossip_sync_exchange) arrives at on_reply with the reply body
 * (opened and replay-checked) or a negative errno. on_change runs, like the
 * election's, after membership events. All bodies are still undecoded.
 */
struct gossip_sync_handlers {
        void (*on_datagram)(const uint8_t *body, size_t len, void *userdata);
        int (*on_request)(const uint8_t *body, size_t len, uint8_t **ret_reply, size_t *ret_len, void *userdata);
        void (*on_reply)(uint64_t cookie, int result, const uint8_t *body, size_t len, void *userdata);
        void (*on_change)(void *userdata);
        void *userdata;
};
void gossip_set_sync_handlers(struct gossip *g, const struct gossip_sync_handlers *h); /* NULL: none */

/*
 * Starts a TCP exchange carrying body to member `name`. *ret_cookie
 * identifies the reply. -ENOENT unknown or left, -EINVAL no address,
 * -EBUSY too many exchanges in flight, -ENOMEM.
 */
int gossip_sync_exchange(struct gossip *g, const char *name, const uint8_t *body, size_t len, uint64_t *ret_cookie);
/* Most sync exchanges of ours in flight at once. */
#define GOSSIP_SYNC_PENDING_MAX 256

#endif
