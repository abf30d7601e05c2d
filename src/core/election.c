/*
 * Leader election: Raft's election without the log, PreVote, and a leader
 * lease backed by voters' promises. The protocol and the reasoning behind
 * the lease are in election.h; this file keeps to the mechanics.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/election.h"

struct member {
        char name[ELECTION_NAME_MAX];
        enum election_role role;
        int voter;                      /* index in the voter set, -1 for a non-voter */
};

struct round {
        uint64_t round;
        uint64_t sent_at;
        uint64_t acks;                  /* voter-index bits */
};

struct election {
        struct election_config cfg;
        struct election_rng rng;
        char self[ELECTION_NAME_MAX];

        struct member *members;
        size_t n_members;
        size_t n_voters;
        int self_voter;                 /* our voter index, -1 */

        enum election_state state;
        uint64_t term;
        char vote[ELECTION_NAME_MAX];
        char leader[ELECTION_NAME_MAX];
        bool dirty;                     /* term or vote changed and not yet in a PERSIST */

        uint64_t election_deadline;     /* follower / (pre-)candidate timer, UINT64_MAX: none */
        uint64_t heard_at;              /* last accepted heartbeat, for the leader_lost detail */
        uint64_t promise_until;         /* no votes granted, no campaign before this */
        uint64_t granted;               /* (pre-)votes of the running round, voter-index bits */
        bool quorum_ok;

        uint64_t won_at;
        bool have_lease;
        uint64_t lease_expiry;
        uint64_t next_heartbeat;
        uint64_t round;
        struct round rounds[ELECTION_ROUNDS];

        struct election_output *out;
        size_t n_out, cap_out;
};

/* --- printers ------------------------------------------------------------ */

static const char *const state_names[_ELECTION_STATE_MAX] = {
        [ELECTION_FOLLOWER] = "follower",
        [ELECTION_PRE_CANDIDATE] = "pre_candidate",
        [ELECTION_CANDIDATE] = "candidate",
        [ELECTION_LEADER] = "leader",
};

static const char *const role_names[_ELECTION_ROLE_MAX] = {
        [ELECTION_ROLE_NONVOTER] = "nonvoter",
        [ELECTION_ROLE_VOTER] = "voter",
        [ELECTION_ROLE_WITNESS] = "witness",
};

static const char *const msg_names[_ELECTION_MSG_MAX] = {
        [ELECTION_MSG_PRE_VOTE_REQ] = "pre_vote_req",
        [ELECTION_MSG_PRE_VOTE_RESP] = "pre_vote_resp",
        [ELECTION_MSG_VOTE_REQ] = "vote_req",
        [ELECTION_MSG_VOTE_RESP] = "vote_resp",
        [ELECTION_MSG_HEARTBEAT] = "heartbeat",
        [ELECTION_MSG_HEARTBEAT_ACK] = "heartbeat_ack",
};

static const char *const out_names[_ELECTION_OUT_MAX] = {
        [ELECTION_OUT_PERSIST] = "persist",
        [ELECTION_OUT_SEND] = "send",
        [ELECTION_OUT_EVENT] = "event",
};

static const char *const lost_names[_ELECTION_LOST_MAX] = {
        [ELECTION_LOST_LEASE_EXPIRED] = "lease_expired",
        [ELECTION_LOST_HIGHER_TERM] = "higher_term",
        [ELECTION_LOST_NOT_VOTER] = "not_voter",
        [ELECTION_LOST_SILENT] = "silent",
};

const char *election_state_to_string(enum election_state s) {
        return (unsigned)s < _ELECTION_STATE_MAX ? state_names[s] : "invalid";
}

const char *election_role_to_string(enum election_role r) {
        return (unsigned)r < _ELECTION_ROLE_MAX ? role_names[r] : "invalid";
}

const char *election_msg_type_to_string(enum election_msg_type t) {
        return (unsigned)t < _ELECTION_MSG_MAX ? msg_names[t] : "invalid";
}

const char *election_output_kind_to_string(enum election_output_kind k) {
        return (unsigned)k < _ELECTION_OUT_MAX ? out_names[k] : "invalid";
}

const char *election_lost_reason_to_string(enum election_lost_reason r) {
        return (unsigned)r < _ELECTION_LOST_MAX ? lost_names[r] : "invalid";
}

/* A fixed table so that callers get static strings without allocation. */
const char *election_transition_to_string(enum election_state from, enum election_state to) {
        static const char *const t[_ELECTION_STATE_MAX][_ELECTION_STATE_MAX] = {
                { "follower -> follower", "follower -> pre_candidate", "follower -> candidate", "follower -> leader" },
                { "pre_candidate -> follower", "pre_candidate -> pre_candidate", "pre_candidate -> candidate",
                  "pre_candidate -> leader" },
                { "candidate -> follower", "candidate -> pre_candidate", "candidate -> candidate", "candidate -> leader" },
                { "leader -> follower", "leader -> pre_candidate", "leader -> candidate", "leader -> leader" },
        };

        if ((unsigned)from >= _ELECTION_STATE_MAX || (unsigned)to >= _ELECTION_STATE_MAX)
                return "invalid";
        return t[from][to];
}

/* --- configuration ------------------------------------------------------- */

void election_config_defaults(struct election_config *ret) {
        *ret = (struct election_config) {
                .election_timeout_min_us = UINT64_C(1500000),
                .election_timeout_max_us = UINT64_C(3000000),
                .heartbeat_interval_us = UINT64_C(100000),
                .lease_us = UINT64_C(1000000),
                .lease_guard_us = UINT64_C(50000),
        };
}

int election_config_validate(const struct election_config *cfg, const char **ret_reason) {
        const char *why = NULL;
        const uint64_t hour = UINT64_C(3600000000);

        if (!cfg)
                why = "no configuration";
        else if (cfg->lease_us < 1000 || cfg->lease_us > hour)
                why = "lease must be between 1ms and 1h";
        else if (cfg->lease_guard_us >= cfg->lease_us)
                why = "lease guard must be shorter than the lease";
        else if (cfg->heartbeat_interval_us == 0 || cfg->heartbeat_interval_us >= cfg->lease_us - cfg->lease_guard_us)
                why = "heartbeat interval must be positive and shorter than the lease minus its guard";
        else if (cfg->election_timeout_min_us < cfg->lease_us)
                why = "election timeout must be at least the lease";
        else if (cfg->election_timeout_max_us <= cfg->election_timeout_min_us || cfg->election_timeout_max_us > hour)
                why = "election timeout range must be non-empty and at most 1h";
        if (why) {
                if (ret_reason)
                        *ret_reason = why;
                return -EINVAL;
        }
        return 0;
}

/* --- helpers ------------------------------------------------------------- */

static bool name_ok(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, ELECTION_NAME_MAX);
        if (n == 0 || n >= ELECTION_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

static size_t need(const struct election *e) {
        return e->n_voters / 2 + 1;
}

static bool majority(const struct election *e, uint64_t bits) {
        return e->n_voters > 0 && (size_t)__builtin_popcountll(bits) >= need(e);
}

static uint64_t self_bit(const struct election *e) {
        return e->self_voter >= 0 ? UINT64_C(1) << e->self_voter : 0;
}

static const struct member *member_find(const struct election *e, const char *name) {
        for (size_t i = 0; i < e->n_members; i++)
                if (strcmp(e->members[i].name, name) == 0)
                        return &e->members[i];
        return NULL;
}

/*
 * Outputs never fail for lack of memory when the caller drains them after
 * every input: set_members() reserves room for one round of messages.
 */
static struct election_output *out_push(struct election *e, enum election_output_kind kind) {
        struct election_output *o;

        if (e->n_out == e->cap_out) {
                size_t cap = e->cap_out ? e->cap_out * 2 : 16;
                struct election_output *p = realloc(e->out, cap * sizeof(*p));

                if (!p)
                        return NULL;
                e->out = p;
                e->cap_out = cap;
        }
        o = &e->out[e->n_out++];
        memset(o, 0, sizeof(*o));
        o->kind = kind;
        return o;
}

/* Emits the pending (term, vote) so that it precedes whatever follows. */
static void flush_persist(struct election *e) {
        struct election_output *o;

        if (!e->dirty)
                return;
        o = out_push(e, ELECTION_OUT_PERSIST);
        if (!o)
                return;
        o->term = e->term;
        memcpy(o->vote, e->vote, sizeof(o->vote));
        e->dirty = false;
}

static void send_msg(struct election *e, const char *to, enum election_msg_type type, uint64_t term,
                     bool granted, uint64_t round) {
        struct election_output *o;

        flush_persist(e);
        o = out_push(e, ELECTION_OUT_SEND);
        if (!o)
                return;
        snprintf(o->to, sizeof(o->to), "%s", to);
        o->msg = (struct election_msg) { .type = type, .term = term, .granted = granted, .round = round };
        memcpy(o->msg.from, e->self, sizeof(o->msg.from));
        o->term = term;
}

static void emit(struct election *e, enum event_kind kind, const char *subject, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void emit(struct election *e, enum event_kind kind, const char *subject, const char *fmt, ...) {
        struct election_output *o;
        va_list ap;

        flush_persist(e);
        o = out_push(e, ELECTION_OUT_EVENT);
        if (!o)
                return;
        o->event = kind;
        o->term = e->term;
        snprintf(o->subject, sizeof(o->subject), "%s", subject ? subject : "");
        va_start(ap, fmt);
        vsnprintf(o->detail, sizeof(o->detail), fmt, ap);
        va_end(ap);
}

static uint64_t random_timeout(struct election *e) {
        uint64_t span = e->cfg.election_timeout_max_us - e->cfg.election_timeout_min_us;

        return e->cfg.election_timeout_min_us + e->rng.next(e->rng.ctx) % span;
}

/* Non-voters keep the timer only to notice a silent leader. */
static void reset_timer(struct election *e, uint64_t now) {
        e->election_deadline = max_u64(now + random_timeout(e), e->promise_until);
}

static void quorum_regained(struct election *e, const char *how) {
        if (e->quorum_ok)
                return;
        e->quorum_ok = true;
        emit(e, EVENT_QUORUM_REGAINED, e->leader, "%s", how);
}

static void quorum_lost(struct election *e, const char *how) {
        if (!e->quorum_ok)
                return;
        e->quorum_ok = false;
        emit(e, EVENT_QUORUM_LOST, "", "%s", how);
}

static void step_down(struct election *e, uint64_t now, enum election_lost_reason why, const char *detail) {
        if (e->state != ELECTION_LEADER)
                return;
        emit(e, EVENT_LEADER_LOST, e->self, "%s: %s (%s)", election_lost_reason_to_string(why), detail,
             election_transition_to_string(ELECTION_LEADER, ELECTION_FOLLOWER));
        e->state = ELECTION_FOLLOWER;
        e->have_lease = false;
        e->lease_expiry = 0;
        e->leader[0] = '\0';
        reset_timer(e, now);
}

/* A newer term exists: follow it, with no vote and no known leader yet. */
static void adopt_term(struct election *e, uint64_t now, uint64_t term, const char *from) {
        char why[128];

        if (term <= e->term)
                return;
        snprintf(why, sizeof(why), "term %" PRIu64 " seen from %s", term, from);
        step_down(e, now, ELECTION_LOST_HIGHER_TERM, why);
        if (e->state != ELECTION_FOLLOWER) {
                e->state = ELECTION_FOLLOWER;
                reset_timer(e, now);
        }
        e->term = term;
        e->vote[0] = '\0';
        e->leader[0] = '\0';
        e->dirty = true;
}

static void broadcast(struct election *e, enum election_msg_type type, uint64_t term, bool voters_only,
                      uint64_t round) {
        for (size_t i = 0; i < e->n_members; i++) {
                const struct member *m = &e->members[i];

                if (strcmp(m->name, e->self) == 0 || (voters_only && m->voter < 0))
                        continue;
                send_msg(e, m->name, type, term, false, round);
        }
}

static void check_round(struct election *e, const struct round *r) {
        uint64_t exp;

        if (!majority(e, r->acks))
                return;
        exp = r->sent_at + e->cfg.lease_us - e->cfg.lease_guard_us;
        if (!e->have_lease || exp > e->lease_expiry) {
                e->have_lease = true;
                e->lease_expiry = exp;
        }
}

static void send_round(struct election *e, uint64_t now) {
        struct round *r;

        e->round++;
        r = &e->rounds[e->round % ELECTION_ROUNDS];
        *r = (struct round) { .round = e->round, .sent_at = now, .acks = self_bit(e) };
        /* Our own acknowledgement is a promise like any voter's. */
        e->promise_until = max_u64(e->promise_until, now + e->cfg.lease_us);
        e->next_heartbeat = now + e->cfg.heartbeat_interval_us;
        broadcast(e, ELECTION_MSG_HEARTBEAT, e->term, false, e->round);
        check_round(e, r);
}

static void win(struct election *e, uint64_t now) {
        e->state = ELECTION_LEADER;
        memcpy(e->leader, e->self, sizeof(e->leader));
        e->won_at = now;
        e->have_lease = false;
        e->lease_expiry = 0;
        memset(e->rounds, 0, sizeof(e->rounds));
        emit(e, EVENT_LEADER_ELECTED, e->self, "won term %" PRIu64 " with %d of %zu votes (%s)", e->term,
             __builtin_popcountll(e->granted), e->n_voters,
             election_transition_to_string(ELECTION_CANDIDATE, ELECTION_LEADER));
        quorum_regained(e, "elected leader");
        send_round(e, now);
}

static void become_candidate(struct election *e, uint64_t now) {
        e->state = ELECTION_CANDIDATE;
        e->term++;
        memcpy(e->vote, e->self, sizeof(e->vote));
        e->leader[0] = '\0';
        e->dirty = true;
        e->granted = self_bit(e);
        reset_timer(e, now);
        if (majority(e, e->granted)) {
                flush_persist(e);
                win(e, now);
                return;
        }
        broadcast(e, ELECTION_MSG_VOTE_REQ, e->term, true, 0);
}

static void start_pre_vote(struct election *e, uint64_t now) {
        e->state = ELECTION_PRE_CANDIDATE;
        e->granted = self_bit(e);
        reset_timer(e, now);
        if (majority(e, e->granted)) {
                become_candidate(e, now);
                return;
        }
        broadcast(e, ELECTION_MSG_PRE_VOTE_REQ, e->term + 1, true, 0);
}

/* --- lifecycle ----------------------------------------------------------- */

int election_new(const struct election_config *cfg, const char *self, uint64_t term, const char *vote,
                 const struct election_rng *rng, uint64_t now, struct election **ret) {
        struct election *e;

        if (election_config_validate(cfg, NULL) < 0 || !name_ok(self) || !rng || !rng->next || !ret ||
            (vote && vote[0] && !name_ok(vote)) || term == UINT64_MAX)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->cfg = *cfg;
        e->rng = *rng;
        snprintf(e->self, sizeof(e->self), "%s", self);
        e->term = term;
        if (vote)
                snprintf(e->vote, sizeof(e->vote), "%s", vote);
        e->self_voter = -1;
        e->state = ELECTION_FOLLOWER;
        e->quorum_ok = true;
        /* Promises made before a restart are forgotten: honour them all blindly. */
        e->promise_until = now + cfg->lease_us;
        e->heard_at = now;
        reset_timer(e, now);
        *ret = e;
        return 0;
}

void election_free(struct election *e) {
        if (!e)
                return;
        free(e->members);
        free(e->out);
        free(e);
}

int election_set_members(struct election *e, const struct election_member *members, size_t n, uint64_t now) {
        struct member *m;
        size_t voters = 0;
        int self_voter = -1;

        if (!e || (n && !members))
                return -EINVAL;
        if (n > ELECTION_MEMBERS_MAX)
                return -E2BIG;
        m = calloc(n ? n : 1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!name_ok(members[i].name) || (unsigned)members[i].role >= _ELECTION_ROLE_MAX) {
                        free(m);
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(m[j].name, members[i].name) == 0) {
                                free(m);
                                return -EINVAL;
                        }
                snprintf(m[i].name, sizeof(m[i].name), "%s", members[i].name);
                m[i].role = members[i].role;
                m[i].voter = -1;
                if (members[i].role != ELECTION_ROLE_NONVOTER) {
                        if (voters == ELECTION_VOTERS_MAX) {
                                free(m);
                                return -E2BIG;
                        }
                        m[i].voter = (int)voters++;
                        if (strcmp(m[i].name, e->self) == 0)
                                self_voter = m[i].voter;
                }
        }
        if (e->cap_out < n + 16) {
                struct election_output *o = realloc(e->out, (n + 16) * sizeof(*o));

                if (!o) {
                        free(m);
                        return -ENOMEM;
                }
                e->out = o;
                e->cap_out = n + 16;
        }
        free(e->members);
        e->members = m;
        e->n_members = n;
        e->n_voters = voters;
        e->self_voter = self_voter;
        /* Voter indices changed: acknowledgements and votes gathered so far are void. */
        e->granted = self_bit(e);
        for (size_t k = 0; k < ELECTION_ROUNDS; k++)
                e->rounds[k].acks = self_bit(e);
        if (self_voter < 0) {
                step_down(e, now, ELECTION_LOST_NOT_VOTER, "no longer in the voter set");
                if (e->state != ELECTION_FOLLOWER) {
                        e->state = ELECTION_FOLLOWER;
                        reset_timer(e, now);
                }
        }
        return 0;
}

/* --- inputs -------------------------------------------------------------- */

void election_tick(struct election *e, uint64_t now) {
        char why[128];

        if (e->state == ELECTION_LEADER) {
                uint64_t end = e->have_lease ? e->lease_expiry : e->won_at + e->cfg.lease_us - e->cfg.lease_guard_us;

                if (now >= end) {
                        snprintf(why, sizeof(why), "no quorum of %zu voters renewed the lease", need(e));
                        step_down(e, now, ELECTION_LOST_LEASE_EXPIRED, why);
                        quorum_lost(e, why);
                        return;
                }
                if (now >= e->next_heartbeat)
                        send_round(e, now);
                flush_persist(e);
                return;
        }
        if (now < e->election_deadline)
                return;
        if (e->state == ELECTION_FOLLOWER && e->leader[0]) {
                emit(e, EVENT_LEADER_LOST, e->leader, "%s: no heartbeat from %s for %" PRIu64 " ms",
                     election_lost_reason_to_string(ELECTION_LOST_SILENT), e->leader, (now - e->heard_at) / 1000);
                e->leader[0] = '\0';
        } else if (e->state == ELECTION_PRE_CANDIDATE) {
                snprintf(why, sizeof(why), "pre-vote for term %" PRIu64 " got %d of %zu needed", e->term + 1,
                         __builtin_popcountll(e->granted), need(e));
                quorum_lost(e, why);
        }
        if (e->self_voter < 0) {
                e->state = ELECTION_FOLLOWER;
                e->election_deadline = UINT64_MAX;
                return;
        }
        start_pre_vote(e, now);
        flush_persist(e);
}

static int on_pre_vote_req(struct election *e, const struct member *from, const struct election_msg *m,
                           uint64_t now) {
        bool grant = e->self_voter >= 0 && from->voter >= 0 && m->term > e->term &&
                     now >= e->promise_until && e->state != ELECTION_LEADER;

        send_msg(e, from->name, ELECTION_MSG_PRE_VOTE_RESP, grant ? m->term : e->term, grant, 0);
        return m->term < e->term ? -ESTALE : 0;
}

static int on_pre_vote_resp(struct election *e, const struct member *from, const struct election_msg *m,
                            uint64_t now) {
        if (!m->granted) {
                if (m->term > e->term)
                        adopt_term(e, now, m->term, from->name);
                return m->term < e->term ? -ESTALE : 0;
        }
        if (e->state != ELECTION_PRE_CANDIDATE || m->term != e->term + 1 || from->voter < 0)
                return m->term <= e->term ? -ESTALE : 0;
        e->granted |= UINT64_C(1) << from->voter;
        if (majority(e, e->granted))
                become_candidate(e, now);
        return 0;
}

static int on_vote_req(struct election *e, const struct member *from, const struct election_msg *m, uint64_t now) {
        bool grant;

        if (m->term < e->term) {
                send_msg(e, from->name, ELECTION_MSG_VOTE_RESP, e->term, false, 0);
                return -ESTALE;
        }
        /* Within a promise we do not even raise our term: that is what keeps a lease safe. */
        if (e->self_voter < 0 || from->voter < 0 || now < e->promise_until) {
                send_msg(e, from->name, ELECTION_MSG_VOTE_RESP, e->term, false, 0);
                return 0;
        }
        adopt_term(e, now, m->term, from->name);
        grant = (e->state == ELECTION_FOLLOWER || e->state == ELECTION_PRE_CANDIDATE) &&
                (!e->vote[0] || strcmp(e->vote, from->name) == 0);
        if (grant)
                e->state = ELECTION_FOLLOWER;
        if (grant && !e->vote[0]) {
                memcpy(e->vote, from->name, sizeof(e->vote));
                e->dirty = true;
                reset_timer(e, now);
        }
        send_msg(e, from->name, ELECTION_MSG_VOTE_RESP, e->term, grant, 0);
        return 0;
}

static int on_vote_resp(struct election *e, const struct member *from, const struct election_msg *m, uint64_t now) {
        if (m->term > e->term) {
                adopt_term(e, now, m->term, from->name);
                return 0;
        }
        if (m->term < e->term)
                return -ESTALE;
        if (e->state != ELECTION_CANDIDATE || !m->granted || from->voter < 0)
                return 0;
        e->granted |= UINT64_C(1) << from->voter;
        if (majority(e, e->granted))
                win(e, now);
        return 0;
}

static int on_heartbeat(struct election *e, const struct member *from, const struct election_msg *m, uint64_t now) {
        if (m->term < e->term) {
                send_msg(e, from->name, ELECTION_MSG_HEARTBEAT_ACK, e->term, false, m->round);
                return -ESTALE;
        }
        if (m->term == e->term && e->state == ELECTION_LEADER)
                return -EPROTO;
        if (from->voter < 0)
                return -EPERM;
        adopt_term(e, now, m->term, from->name);
        e->state = ELECTION_FOLLOWER;
        if (strcmp(e->leader, from->name) != 0) {
                memcpy(e->leader, from->name, sizeof(e->leader));
                emit(e, EVENT_LEADER_ELECTED, e->leader, "%s leads term %" PRIu64 " (learned from its heartbeat)",
                     e->leader, e->term);
        }
        quorum_regained(e, "following a leader");
        if (e->self_voter >= 0)
                e->promise_until = max_u64(e->promise_until, now + e->cfg.lease_us);
        e->heard_at = now;
        reset_timer(e, now);
        send_msg(e, from->name, ELECTION_MSG_HEARTBEAT_ACK, e->term, true, m->round);
        return 0;
}

static int on_ack(struct election *e, const struct member *from, const struct election_msg *m, uint64_t now) {
        struct round *r;

        if (m->term > e->term) {
                adopt_term(e, now, m->term, from->name);
                return 0;
        }
        if (m->term < e->term)
                return -ESTALE;
        if (e->state != ELECTION_LEADER || !m->granted || from->voter < 0)
                return 0;
        r = &e->rounds[m->round % ELECTION_ROUNDS];
        if (r->round != m->round || m->round == 0)
                return 0;
        r->acks |= UINT64_C(1) << from->voter;
        check_round(e, r);
        return 0;
}

int election_receive(struct election *e, const struct election_msg *m, uint64_t now) {
        const struct member *from;
        int r = -EINVAL;

        if (!e || !m || (unsigned)m->type >= _ELECTION_MSG_MAX || !name_ok(m->from) || m->term == UINT64_MAX)
                return -EINVAL;
        if (strcmp(m->from, e->self) == 0)
                return -EINVAL;
        from = member_find(e, m->from);
        if (!from)
                return -ENOENT;
        switch (m->type) {
        case ELECTION_MSG_PRE_VOTE_REQ:
                r = on_pre_vote_req(e, from, m, now);
                break;
        case ELECTION_MSG_PRE_VOTE_RESP:
                r = on_pre_vote_resp(e, from, m, now);
                break;
        case ELECTION_MSG_VOTE_REQ:
                r = on_vote_req(e, from, m, now);
                break;
        case ELECTION_MSG_VOTE_RESP:
                r = on_vote_resp(e, from, m, now);
                break;
        case ELECTION_MSG_HEARTBEAT:
                r = on_heartbeat(e, from, m, now);
                break;
        case ELECTION_MSG_HEARTBEAT_ACK:
                r = on_ack(e, from, m, now);
                break;
        default:
                break;
        }
        flush_persist(e);
        return r;
}

/* --- queries ------------------------------------------------------------- */

uint64_t election_next_deadline(const struct election *e) {
        if (e->state == ELECTION_LEADER) {
                uint64_t end = e->have_lease ? e->lease_expiry : e->won_at + e->cfg.lease_us - e->cfg.lease_guard_us;

                return end < e->next_heartbeat ? end : e->next_heartbeat;
        }
        return e->election_deadline;
}

const struct election_output *election_outputs(const struct election *e, size_t *ret_n) {
        *ret_n = e->n_out;
        return e->out;
}

void election_outputs_clear(struct election *e) {
        e->n_out = 0;
}

enum election_state election_state(const struct election *e) {
        return e->state;
}

uint64_t election_term(const struct election *e) {
        return e->term;
}

const char *election_vote(const struct election *e) {
        return e->vote[0] ? e->vote : NULL;
}

const char *election_leader(const struct election *e) {
        return e->leader[0] ? e->leader : NULL;
}

bool election_is_active(const struct election *e, uint64_t now) {
        return e->state == ELECTION_LEADER && e->have_lease && now < e->lease_expiry;
}

uint64_t election_quorum_round(const struct election *e) {
        uint64_t span = e->cfg.lease_us - e->cfg.lease_guard_us;

        if (e->state != ELECTION_LEADER || !e->have_lease || e->lease_expiry < span)
                return 0;
        return e->lease_expiry - span;
}

uint64_t election_lease_expiry(const struct election *e) {
        return e->state == ELECTION_LEADER && e->have_lease ? e->lease_expiry : 0;
}

bool election_accepts(const struct election *e, uint64_t term) {
        return term >= e->term;
}

void election_quorum(const struct election *e, size_t *ret_voters, size_t *ret_need) {
        if (ret_voters)
                *ret_voters = e->n_voters;
        if (ret_need)
                *ret_need = need(e);
}

bool election_is_voter(const struct election *e) {
        return e->self_voter >= 0;
}
