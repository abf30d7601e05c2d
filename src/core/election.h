/*
 * Leader election (pure core): Raft's election without the log, as in
 * DESIGN.md "Leader, balancer table, failover".
 *
 * This module does no I/O, reads no clock and calls no rand(). Every input
 * carries `now` (CLOCK_MONOTONIC µs) and randomness comes from the injected
 * RNG. Inputs append outputs to a list the caller drains with
 * election_outputs() and election_outputs_clear(), IN ORDER:
 *
 *   PERSIST  write (term, vote) to the store and commit it synchronously
 *            (store_commit()) before handling any later output of the list.
 *            The core always appends PERSIST before the SEND that depends
 *            on it (a vote, a candidacy, an answer in a new term), so an
 *            adapter that walks the list in order never sends a vote it
 *            could forget in a crash.
 *   SEND     send msg to member `to` (the adapter encodes it).
 *   EVENT    log / store event `event` with subject and detail.
 *
 * After every input the caller arms a timer for election_next_deadline()
 * and calls election_tick() when it expires (calling it early is harmless).
 *
 * Protocol. Members are voters (role voter or witness: a witness votes and
 * can lead, it only runs no services) and non-voters (never vote, never
 * lead, only follow). Quorum is a majority of the voter set the caller
 * supplies (voters that joined and have not left; a dead voter still counts
 * until force-leave). A voter that hears no leader for a randomized election
 * timeout starts a PreVote round for term+1 without changing its term; only
 * when a majority would vote for it does it increment its term, vote for
 * itself (PERSIST) and ask for votes. One vote per term, persisted before
 * it is sent. So a partitioned node that rejoins cannot inflate terms and
 * depose a healthy leader.
 *
 * Lease. The leader sends a heartbeat round every heartbeat interval; a
 * voter that accepts a heartbeat acknowledges it and PROMISES, for lease_us
 * from the moment it received it, to grant no pre-vote or vote to anyone
 * (and not even to raise its term for a vote request). The leader's lease
 * runs until send time of the latest round acknowledged by a quorum (itself
 * included) + lease_us - lease_guard_us (the guard absorbs clock-rate
 * differences between hosts). It is "active" (may issue orders) only while
 * that lease runs, and steps down the instant it expires. A newer leader
 * needs votes from a quorum, which intersects the quorum that acknowledged
 * the old leader's last round; those voters only vote after their promise,
 * which ends after the old lease. Hence a new leader is elected - and may
 * act as soon as its own first round is acknowledged - only after the old
 * lease has run out. A restarted voter has lost its promises, so it grants
 * nothing and does not campaign for lease_us after election_new().
 *
 * Fencing. Every message carries its sender's term; anything from an older
 * term is rejected (-ESTALE), and election_accepts() lets other modules
 * apply the same rule to the leader's orders (tables, start/stop orders).
 */
#ifndef AGENTD_ELECTION_H
#define AGENTD_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

#define ELECTION_NAME_MAX 65            /* node name (<= 64 bytes, as WIRE_NAME_MAX) + NUL */
#define ELECTION_VOTERS_MAX 64          /* voters in one cluster (acks are a 64-bit set) */
#define ELECTION_MEMBERS_MAX 10000      /* voters and non-voters */
#define ELECTION_DETAIL_MAX 160         /* event detail text, NUL included */
#define ELECTION_ROUNDS 64              /* heartbeat rounds awaiting acks (ring) */

struct election_config {
        uint64_t election_timeout_min_us; /* no leader for [min, max) -> PreVote; min >= lease */
        uint64_t election_timeout_max_us;
        uint64_t heartbeat_interval_us; /* leader's round period; < lease - guard */
        uint64_t lease_us;              /* voters' promise after an accepted heartbeat */
        uint64_t lease_guard_us;        /* the leader's lease ends this much earlier; < lease */
};

/* lan-like defaults: timeout 1.5-3 s, heartbeat 100 ms, lease 1 s, guard 50 ms. */
void election_config_defaults(struct election_config *ret);
/* Checks the ranges and relations above; -EINVAL and a static reason in *ret_reason. */
int election_config_validate(const struct election_config *cfg, const char **ret_reason);

/* Randomness: next() returns 64 uniformly random bits. */
struct election_rng {
        uint64_t (*next)(void *ctx);
        void *ctx;
};

enum election_role {
        ELECTION_ROLE_NONVOTER,         /* node.voter = false */
        ELECTION_ROLE_VOTER,
        ELECTION_ROLE_WITNESS,          /* votes and can lead, runs no services */
        _ELECTION_ROLE_MAX,
};
const char *election_role_to_string(enum election_role r);     /* "nonvoter", "voter", "witness" */

struct election_member {
        const char *name;
        enum election_role role;
};

enum election_state {
        ELECTION_FOLLOWER,
        ELECTION_PRE_CANDIDATE,         /* PreVote round: term not raised yet */
        ELECTION_CANDIDATE,
        ELECTION_LEADER,
        _ELECTION_STATE_MAX,
};
const char *election_state_to_string(enum election_state s);   /* "follower", ... */
/* "follower -> candidate" (static storage per pair). */
const char *election_transition_to_string(enum election_state from, enum election_state to);

enum election_msg_type {
        ELECTION_MSG_PRE_VOTE_REQ,      /* term: the term the sender would campaign in (its term + 1) */
        ELECTION_MSG_PRE_VOTE_RESP,     /* term: the request's term if granted, else the responder's term */
        ELECTION_MSG_VOTE_REQ,          /* term: the candidate's term */
        ELECTION_MSG_VOTE_RESP,         /* term: the responder's term; granted */
        ELECTION_MSG_HEARTBEAT,         /* term: the leader's term; round */
        ELECTION_MSG_HEARTBEAT_ACK,     /* term: the responder's term; round echoed; granted = accepted */
        _ELECTION_MSG_MAX,
};
const char *election_msg_type_to_string(enum election_msg_type t); /* "pre_vote_req", ... */

/* One message; which fields matter per type is listed above. */
struct election_msg {
        enum election_msg_type type;
        uint64_t term;
        char from[ELECTION_NAME_MAX];
        bool granted;
        uint64_t round;
};

enum election_output_kind {
        ELECTION_OUT_PERSIST,
        ELECTION_OUT_SEND,
        ELECTION_OUT_EVENT,
        _ELECTION_OUT_MAX,
};
const char *election_output_kind_to_string(enum election_output_kind k); /* "persist", ... */

/* Why a leader stopped being one (the leader_lost event's detail starts with it). */
enum election_lost_reason {
        ELECTION_LOST_LEASE_EXPIRED,    /* leader: no quorum renewed the lease */
        ELECTION_LOST_HIGHER_TERM,      /* leader: a newer term exists */
        ELECTION_LOST_NOT_VOTER,        /* leader: removed from the voter set */
        ELECTION_LOST_SILENT,           /* follower: no heartbeat for an election timeout */
        _ELECTION_LOST_MAX,
};
const char *election_lost_reason_to_string(enum election_lost_reason r); /* "lease_expired", ... */

struct election_output {
        enum election_output_kind kind;
        uint64_t term;                  /* PERSIST: the term; EVENT: the term it is about */
        char vote[ELECTION_NAME_MAX];   /* PERSIST: voted for, "" for none */
        char to[ELECTION_NAME_MAX];     /* SEND */
        struct election_msg msg;        /* SEND */
        enum event_kind event;          /* EVENT: LEADER_ELECTED, LEADER_LOST, QUORUM_LOST, QUORUM_REGAINED */
        char subject[ELECTION_NAME_MAX]; /* EVENT: the leader concerned, or "" */
        char detail[ELECTION_DETAIL_MAX]; /* EVENT */
};

struct election;

/*
 * Creates the core for node `self`, from the persisted term and vote (0 and
 * NULL for a new node). It starts as a follower that neither votes nor
 * campaigns for cfg->lease_us (the promises it may have made before a
 * restart are forgotten). Call election_set_members() before anything
 * happens. -EINVAL for a bad config, name or rng; -ENOMEM.
 */
int election_new(const struct election_config *cfg, const char *self, uint64_t term, const char *vote,
                 const struct election_rng *rng, uint64_t now, struct election **ret);
void election_free(struct election *e);

/*
 * Replaces the member list (self included, with its role; a self absent
 * from the list is a non-voter). A leader that is no longer a voter steps
 * down; a leader whose voter set changed needs a quorum of the new set for
 * its next renewal. -EINVAL for a bad or duplicate name or role, -E2BIG
 * beyond ELECTION_VOTERS_MAX voters or ELECTION_MEMBERS_MAX members; the
 * old list stays then.
 */
int election_set_members(struct election *e, const struct election_member *members, size_t n, uint64_t now);

/*
 * Handles one message. 0 when handled (including a response that no longer
 * matters); -ESTALE for a message of an older term (fencing: answered with
 * our term where the protocol needs it, otherwise ignored); -ENOENT from a
 * sender that is not a member; -EPERM for a heartbeat from a non-voter;
 * -EINVAL for a malformed message; -EPROTO for
 * a heartbeat of our own term while we lead (two leaders in a term: a bug).
 */
int election_receive(struct election *e, const struct election_msg *m, uint64_t now);

void election_tick(struct election *e, uint64_t now);
uint64_t election_next_deadline(const struct election *e);

const struct election_output *election_outputs(const struct election *e, size_t *ret_n);
void election_outputs_clear(struct election *e);

enum election_state election_state(const struct election *e);
uint64_t election_term(const struct election *e);
/* Voted for in the current term, or NULL. */
const char *election_vote(const struct election *e);
/* The leader of the current term as far as we know, or NULL. */
const char *election_leader(const struct election *e);
/* We lead and our lease runs at `now`: only then may the leader issue orders. */
bool election_is_active(const struct election *e, uint64_t now);
/* The end of our lease (0 when we hold none). */
uint64_t election_lease_expiry(const struct election *e);
/*
 * When the latest heartbeat round that a quorum acknowledged was sent (0
 * when we hold no lease). A decision prompted by an input that arrived
 * before this time is known to be taken with a quorum behind us: a leader
 * cut off from the majority keeps its lease for a while, but no round sent
 * after the cut is ever acknowledged.
 */
uint64_t election_quorum_round(const struct election *e);
/* Fencing: an order carrying `term` may be acted on (term >= ours). */
bool election_accepts(const struct election *e, uint64_t term);
/* Voters counted for quorum, and the majority needed. */
void election_quorum(const struct election *e, size_t *ret_voters, size_t *ret_need);
bool election_is_voter(const struct election *e);

#endif
