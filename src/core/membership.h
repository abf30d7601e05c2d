/*
 * Cluster membership and failure detection (pure core): SWIM with the
 * Lifeguard extensions, as in doc/PROTOCOL.md and DESIGN.md "Membership".
 *
 * This module does no I/O, reads no clock and calls no rand(). Every input
 * carries `now` (CLOCK_MONOTONIC µs) and randomness comes from the injected
 * RNG, so a simulator or a unit test replays it exactly. Inputs append
 * outputs to a list the caller drains with membership_outputs() and
 * membership_outputs_clear():
 *
 *   SEND      send this encoded UDP body (at most cfg.packet_budget bytes)
 *   PUSHPULL  open a TCP push-pull exchange with this address; report the
 *             answer with membership_pushpull_result() or the failure with
 *             membership_pushpull_failed()
 *   EVENT     a member changed state (or this node refuted a suspicion):
 *             log / store it as event `kind`
 *   PERSIST   our incarnation or a member record changed: write it to the
 *             store (read the current value with membership_incarnation() /
 *             membership_member_get())
 *
 * After every input the caller arms a timer for membership_next_deadline()
 * and calls membership_tick() when it expires (calling it early is harmless).
 *
 * Protocol in brief: every probe interval (stretched by the local health
 * multiplier) one member, round-robin over a shuffled list, gets a ping; no
 * ack within probe_timeout sends ping-reqs through indirect_checks others,
 * which answer ack or nack; no ack by the end of the interval makes the
 * member suspect. A suspect becomes dead after a timeout that starts at
 * suspicion_max_timeout_mult * min and shrinks towards min as independent
 * suspicions arrive; the member itself refutes by raising its incarnation.
 * For one incarnation left > dead > suspect > alive; a higher incarnation
 * wins; left is final for its incarnation. Updates piggyback on every packet
 * and on gossip packets to gossip_nodes members every gossip_interval, each
 * retransmitted ceil(retransmit_mult * ln(n + 1)) times. Push-pull (full
 * state over TCP) runs at join, every pushpull_interval, towards one
 * dead member every dead_reprobe_interval so healed partitions merge, and
 * with the sender of a ping whose address no live member has, when it is
 * still unknown 10 probe intervals later (its alive never reached us).
 */
#ifndef AGENTD_MEMBERSHIP_H
#define AGENTD_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/wire.h"

/* Bounds on what the outside can make us hold. */
#define MEMBERSHIP_MEMBERS_MAX 10000    /* default and hard cap of cfg.max_members */
#define MEMBERSHIP_SEEDS_MAX 64         /* addresses given to membership_join() */
#define MEMBERSHIP_RELAYS_MAX 128       /* ping-reqs relayed for others at once */
#define MEMBERSHIP_CAUSE_MAX 160        /* event cause text, NUL included */

enum membership_profile {
        MEMBERSHIP_PROFILE_LAN,         /* default: one LAN, sub-ms RTT */
        MEMBERSHIP_PROFILE_LOCAL,       /* one host / loopback: faster still */
        MEMBERSHIP_PROFILE_WAN,         /* sites over a WAN: patient */
        _MEMBERSHIP_PROFILE_MAX,
};

/*
 * Every timing and bound. Start from membership_profile_defaults() and
 * override single fields (the config's gossip { } block does that).
 */
struct membership_config {
        uint64_t probe_interval_us;     /* one probe per interval (x LHM) */
        uint64_t probe_timeout_us;      /* direct ack wait before ping-req (x LHM); < interval */
        unsigned indirect_checks;       /* ping-req relays per failed probe (0..16) */
        unsigned suspicion_mult;        /* min suspicion = mult * max(1, log10 n) * probe_interval */
        unsigned suspicion_max_timeout_mult; /* max suspicion = this * min (>= 1) */
        unsigned suspicion_confirmations; /* independent suspicions that shrink max to min */
        unsigned retransmit_mult;       /* each update sent ceil(mult * ln(n + 1)) times */
        uint64_t gossip_interval_us;    /* gossip pending updates this often ... */
        unsigned gossip_nodes;          /* ... to this many random members (0: piggyback only) */
        uint64_t pushpull_interval_us;  /* full-state sync with one random member (0: off) */
        uint64_t dead_reprobe_interval_us; /* push-pull to one random dead member (0: off) */
        uint64_t left_reap_us;          /* forget left members after this */
        uint64_t join_backoff_us;       /* first join retry delay, doubled per attempt ... */
        uint64_t join_backoff_max_us;   /* ... up to this */
        unsigned awareness_max;         /* Lifeguard LHM: score 0..max-1 multiplies timings (>= 1) */
        size_t packet_budget;           /* max encoded UDP body, WIRE_BUDGET_MIN..WIRE_BUDGET_MAX */
        size_t max_members;             /* including self, 2..MEMBERSHIP_MEMBERS_MAX */
};

/*
 * The three profiles (numbers in doc/PROTOCOL.md "Timing"). lan: probe 200ms,
 * timeout 100ms, 3 indirect checks, suspicion 2 x log10(n) x 200ms shrinking
 * from 4x that, gossip 100ms to 3 nodes, push-pull 30s, dead re-probe 5s.
 * Returns -EINVAL for an unknown profile.
 */
int membership_profile_defaults(enum membership_profile p, struct membership_config *ret);
const char *membership_profile_to_string(enum membership_profile p);   /* "lan", ... */
enum membership_profile membership_profile_from_string(const char *s); /* -1 if unknown */

/* Checks every field's range; -EINVAL and a static reason in *ret_reason. */
int membership_config_validate(const struct membership_config *cfg, const char **ret_reason);

/* Randomness: next() returns 64 uniformly random bits. */
struct membership_rng {
        uint64_t (*next)(void *ctx);
        void *ctx;
};

enum membership_state {
        MEMBERSHIP_ALIVE = WIRE_STATE_ALIVE,
        MEMBERSHIP_SUSPECT = WIRE_STATE_SUSPECT,
        MEMBERSHIP_DEAD = WIRE_STATE_DEAD,
        MEMBERSHIP_LEFT = WIRE_STATE_LEFT,
};
const char *membership_state_to_string(enum membership_state s);  /* "alive", ... (contract) */

struct membership;

/*
 * Creates the core for node `name` reachable at `addr`, starting at
 * `incarnation` (the persisted one; 0 for a new node) with optional meta.
 * The node is alone and alive; it gossips once it learns members through
 * membership_join() or an incoming message. -EINVAL for a bad config, name,
 * address, meta, or rng; -ENOMEM.
 */
int membership_new(const struct membership_config *cfg, const char *name, const struct wire_addr *addr,
                   uint64_t incarnation, const uint8_t *meta, size_t meta_len,
                   const struct membership_rng *rng, struct membership **ret);
void membership_free(struct membership *m);    /* NULL-safe */

/*
 * Replaces the timings (reload). Running timers keep their deadlines; the new
 * values apply from the next probe. -EINVAL for an invalid config.
 */
int membership_set_config(struct membership *m, const struct membership_config *cfg);

/* --- inputs -------------------------------------------------------------- */

/* Runs every timer that is due at `now`. */
void membership_tick(struct membership *m, uint64_t now);

/*
 * The absolute time (µs) at which membership_tick() must next run;
 * UINT64_MAX when nothing is scheduled.
 */
uint64_t membership_next_deadline(const struct membership *m);

/*
 * A decoded UDP body from `from` (the packet's source address). Returns 0, or
 * -EINVAL for a message that wire_decode() would not have produced.
 */
int membership_receive(struct membership *m, uint64_t now, const struct wire_addr *from,
                       const struct wire_msg *msg);

/* Convenience: wire_decode() then membership_receive(); decode errors as wire_decode(). */
int membership_receive_packet(struct membership *m, uint64_t now, const struct wire_addr *from,
                              const uint8_t *buf, size_t len);

/*
 * Joins through seed addresses: PUSHPULL (join) to every seed at once, then
 * again after join_backoff (doubling up to join_backoff_max, with jitter)
 * until one exchange succeeds. Our own address is skipped; when no other
 * address is left, the node counts as joined (first node of a cluster).
 * A new call replaces the seeds. -EINVAL for n == 0, n > MEMBERSHIP_SEEDS_MAX
 * or an invalid address.
 */
int membership_join(struct membership *m, uint64_t now, const struct wire_addr *addrs, size_t n);

/* True once a join exchange succeeded (or there was nobody to join). */
bool membership_joined(const struct membership *m);

/*
 * Push-pull, initiator side. A PUSHPULL output asks the caller to connect to
 * `to`, send membership_pushpull_export(m, out.pushpull.join, ...) and read
 * the peer's answer; membership_pushpull_result() merges the answer body,
 * membership_pushpull_failed() reports that no answer came (connect error,
 * timeout, bad frame). `to` is the address from the output.
 * Returns 0, or the wire_pushpull_open() error (then nothing was merged).
 */
int membership_pushpull_result(struct membership *m, uint64_t now, const struct wire_addr *to,
                               const uint8_t *body, size_t len);
void membership_pushpull_failed(struct membership *m, uint64_t now, const struct wire_addr *to);

/*
 * Push-pull, responder side: merges the body a peer pushed to us. The caller
 * then answers with membership_pushpull_export(m, false, ...) (reply).
 * Returns 0 or the wire_pushpull_open() error (nothing merged).
 */
int membership_pushpull_receive(struct membership *m, uint64_t now, const struct wire_addr *from,
                                const uint8_t *body, size_t len);

/*
 * Our full state as a push-pull body (no frame prefix): a malloc'd buffer the
 * caller frees. `join` marks a join push; `reply` an answer. At most
 * WIRE_PUSHPULL_MAX bytes. -ENOMEM.
 */
int membership_pushpull_export(const struct membership *m, bool join, bool reply, uint8_t **ret_body,
                               size_t *ret_len);

/*
 * Leaves gracefully: gossips `left` for our incarnation and stops probing
 * and refuting. The caller keeps ticking until membership_leave_done() (or
 * its own deadline, e.g. 1 s) and then stops. -EALREADY when already left.
 */
int membership_leave(struct membership *m, uint64_t now);
/* True when the `left` update went out its retransmit count (or nobody is left to tell). */
bool membership_leave_done(const struct membership *m);

/*
 * Operator's force-leave: a suspect or dead member is marked left (and
 * gossiped so), so quorums stop counting it. -ENOENT for an unknown name,
 * -EBUSY for an alive member (it would refute), -EINVAL for ourselves,
 * -EALREADY when it already left.
 */
int membership_force_leave(struct membership *m, uint64_t now, const char *name);

/*
 * Replaces our meta blob: raises our incarnation and gossips alive.
 * -EINVAL when meta_len > WIRE_META_MAX.
 */
int membership_set_meta(struct membership *m, uint64_t now, const uint8_t *meta, size_t meta_len);

/* --- outputs ------------------------------------------------------------- */

enum membership_output_type {
        MEMBERSHIP_OUT_SEND,
        MEMBERSHIP_OUT_PUSHPULL,
        MEMBERSHIP_OUT_EVENT,
        MEMBERSHIP_OUT_PERSIST,
};

enum membership_persist {
        MEMBERSHIP_PERSIST_SELF,        /* our incarnation (or meta) changed */
        MEMBERSHIP_PERSIST_MEMBER,      /* member `name` was added or changed */
        MEMBERSHIP_PERSIST_REMOVED,     /* member `name` was forgotten */
};

struct membership_output {
        enum membership_output_type type;
        union {
                struct {
                        struct wire_addr to;
                        uint8_t msg_type;       /* enum wire_msg_type, for counters */
                        const uint8_t *data;    /* encoded body, valid until outputs_clear */
                        size_t len;             /* <= cfg.packet_budget */
                } send;
                struct {
                        struct wire_addr to;
                        bool join;
                } pushpull;
                struct {
                        enum event_kind kind;   /* EVENT_MEMBER_JOINED .. EVENT_MEMBER_REFUTED */
                        char name[WIRE_NAME_MAX + 1];
                        struct wire_addr addr;
                        uint64_t incarnation;
                        enum membership_state from_state; /* previous state (joined: the new one) */
                        enum membership_state to_state;
                        char cause[MEMBERSHIP_CAUSE_MAX];
                } event;
                struct {
                        enum membership_persist what;
                        char name[WIRE_NAME_MAX + 1];   /* MEMBER / REMOVED */
                } persist;
        };
};

/*
 * The outputs appended since the last clear, oldest first. The array and the
 * send data stay valid until membership_outputs_clear() or the next input.
 */
size_t membership_outputs(const struct membership *m, const struct membership_output **ret);
void membership_outputs_clear(struct membership *m);

/* --- queries (agentctl members, status, metrics) -------------------------- */

struct membership_member_info {
        const char *name;               /* NUL-terminated, valid until the next input */
        struct wire_addr addr;
        enum membership_state state;
        uint64_t incarnation;
        uint64_t state_changed_us;      /* monotonic; the caller converts to realtime */
        uint32_t rtt_us;                /* smoothed direct ping RTT; 0: not measured */
        const uint8_t *meta;
        size_t meta_len;
        bool self;
};

/* Member slots: i in [0, membership_slots()); returns -ENOENT for an empty slot. */
size_t membership_slots(const struct membership *m);
int membership_member_at(const struct membership *m, size_t i, struct membership_member_info *ret);
int membership_member_get(const struct membership *m, const char *name, struct membership_member_info *ret);

/* Number of members in each state, self included. */
struct membership_census {
        size_t alive, suspect, dead, left;
};
void membership_census(const struct membership *m, struct membership_census *ret);

const char *membership_name(const struct membership *m);
uint64_t membership_incarnation(const struct membership *m);
/* Lifeguard local health score, 0 (healthy) .. awareness_max - 1. */
unsigned membership_health_score(const struct membership *m);

struct membership_counters {
        uint64_t probes;                /* direct pings started */
        uint64_t probes_acked;          /* ... answered directly */
        uint64_t probes_indirect_acked; /* ... answered through a relay */
        uint64_t probes_failed;         /* ... ended with a suspicion */
        uint64_t probes_void;           /* ... we were too late to judge (stalled) */
        uint64_t ping_reqs_sent;
        uint64_t ping_reqs_relayed;     /* pings we sent on someone's behalf */
        uint64_t ping_reqs_dropped;     /* relay table full */
        uint64_t nacks_sent;
        uint64_t nacks_received;
        uint64_t msgs_sent;
        uint64_t msgs_received;
        uint64_t msgs_ignored;          /* ping for another name, unknown ack seq */
        uint64_t updates_sent;          /* piggybacked update copies */
        uint64_t updates_received;
        uint64_t updates_dropped;       /* member cap reached */
        uint64_t suspicions;            /* members we marked suspect */
        uint64_t deaths;                /* members we marked dead */
        uint64_t refutations;           /* our incarnation raised to refute */
        uint64_t pushpulls_started;
        uint64_t pushpulls_ok;
        uint64_t pushpulls_failed;
        uint64_t pushpulls_served;
        uint64_t strangers_synced;      /* push-pulls with a prober we did not know */
        uint64_t bytes_sent;            /* encoded UDP bodies */
};
void membership_get_counters(const struct membership *m, struct membership_counters *ret);

#endif
