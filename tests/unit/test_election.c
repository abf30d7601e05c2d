/*
 * Unit tests of the election core, driven by hand: a tiny harness runs a
 * few cores with instant, in-order delivery over links the test cuts and
 * heals, and ticks them at their own deadlines, so every assertion is about
 * an exact time or an exact output.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/election.h"
#include "unit.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)
#define NMAX 6
#define T0 (100 * SEC)

static struct election_config cfg;

static uint64_t xs_next(void *ctx) {
        uint64_t *x = ctx;

        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

struct qmsg {
        int to;
        struct election_msg msg;
};

struct cluster {
        size_t n;
        struct election *c[NMAX];
        uint64_t rng[NMAX];
        bool up[NMAX];
        bool link[NMAX][NMAX];
        uint64_t now;
        struct qmsg q[4096];
        size_t qh, qt;
        int n_stale[NMAX];
        int n_won[NMAX];
        int n_lost[NMAX];
        uint64_t persisted_term[NMAX];
        char persisted_vote[NMAX][ELECTION_NAME_MAX];
};

static struct cluster cl;
static struct election_member cl_members[NMAX];
static char cl_names[NMAX][16];

static int idx(const char *name) {
        return name[0] == 'n' ? name[1] - '0' : -1;
}

static void drain(int i) {
        size_t n;
        const struct election_output *o = election_outputs(cl.c[i], &n);

        for (size_t k = 0; k < n; k++) {
                if (o[k].kind == ELECTION_OUT_SEND) {
                        int to = idx(o[k].to);

                        if (to >= 0 && cl.link[i][to] && cl.up[to])
                                cl.q[cl.qt++ % 4096] = (struct qmsg) { .to = to, .msg = o[k].msg };
                } else if (o[k].kind == ELECTION_OUT_PERSIST) {
                        cl.persisted_term[i] = o[k].term;
                        memcpy(cl.persisted_vote[i], o[k].vote, ELECTION_NAME_MAX);
                } else if (o[k].event == EVENT_LEADER_ELECTED && strcmp(o[k].subject, election_leader(cl.c[i]) ? election_leader(cl.c[i]) : "") == 0 && o[k].detail[0] == 'w') {
                        cl.n_won[i]++;
                } else if (o[k].event == EVENT_LEADER_LOST) {
                        cl.n_lost[i]++;
                }
        }
        election_outputs_clear(cl.c[i]);
}

static void pump(void) {
        while (cl.qh != cl.qt) {
                struct qmsg m = cl.q[cl.qh++ % 4096];

                if (!cl.up[m.to])
                        continue;
                if (election_receive(cl.c[m.to], &m.msg, cl.now) == -ESTALE)
                        cl.n_stale[m.to]++;
                drain(m.to);
        }
}

/* Runs every core's timers in deadline order up to t. */
static void run_until(uint64_t t) {
        uint64_t spin_at = 0, spins = 0;

        for (;;) {
                int best = -1;
                uint64_t d = UINT64_MAX;

                /* A core whose deadline never moves would hang the test: fail it instead. */
                if (cl.now == spin_at) {
                        if (++spins == 100000) {
                                CU_FAIL("a core ticks forever at the same instant");
                                break;
                        }
                } else {
                        spin_at = cl.now;
                        spins = 0;
                }

                for (size_t i = 0; i < cl.n; i++)
                        if (cl.up[i] && election_next_deadline(cl.c[i]) < d) {
                                d = election_next_deadline(cl.c[i]);
                                best = (int)i;
                        }
                if (best < 0 || d > t)
                        break;
                if (d > cl.now)
                        cl.now = d;
                election_tick(cl.c[best], cl.now);
                drain(best);
                pump();
        }
        cl.now = t;
}

static void setup(size_t n, const enum election_role *roles) {
        struct election_member *m = cl_members;
        char (*names)[16] = cl_names;

        memset(&cl, 0, sizeof(cl));
        cl.n = n;
        cl.now = T0;
        for (size_t i = 0; i < n; i++) {
                snprintf(names[i], sizeof(names[i]), "n%u", (unsigned)i);
                m[i] = (struct election_member) { .name = names[i], .role = roles ? roles[i] : ELECTION_ROLE_VOTER };
        }
        for (size_t i = 0; i < n; i++) {
                struct election_rng r = { .next = xs_next, .ctx = &cl.rng[i] };

                cl.rng[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
                CU_ASSERT_FATAL(election_new(&cfg, names[i], 0, NULL, &r, T0, &cl.c[i]) == 0);
                CU_ASSERT_FATAL(election_set_members(cl.c[i], m, n, T0) == 0);
                cl.up[i] = true;
                for (size_t j = 0; j < n; j++)
                        cl.link[i][j] = true;
        }
}

/* A crash and restart: the core comes back from what it persisted, nothing else. */
static void restart(size_t i) {
        struct election_rng r = { .next = xs_next, .ctx = &cl.rng[i] };

        election_free(cl.c[i]);
        CU_ASSERT_FATAL(election_new(&cfg, cl_names[i], cl.persisted_term[i],
                                     cl.persisted_vote[i][0] ? cl.persisted_vote[i] : NULL, &r, cl.now, &cl.c[i]) == 0);
        CU_ASSERT_FATAL(election_set_members(cl.c[i], cl_members, cl.n, cl.now) == 0);
}

static void teardown(void) {
        for (size_t i = 0; i < cl.n; i++)
                election_free(cl.c[i]);
        memset(&cl, 0, sizeof(cl));
}

static void isolate(size_t i, bool cut) {
        for (size_t j = 0; j < cl.n; j++)
                cl.link[i][j] = cl.link[j][i] = !cut;
}

static int leader_of(void) {
        int l = -1;

        for (size_t i = 0; i < cl.n; i++)
                if (cl.up[i] && election_state(cl.c[i]) == ELECTION_LEADER) {
                        CU_ASSERT(l < 0);
                        l = (int)i;
                }
        return l;
}

/* --- tests --------------------------------------------------------------- */

static void test_printers(void) {
        static const char *const states[] = { "follower", "pre_candidate", "candidate", "leader" };

        for (int s = 0; s < _ELECTION_STATE_MAX; s++)
                CU_ASSERT_STRING_EQUAL(election_state_to_string((enum election_state)s), states[s]);
        CU_ASSERT_STRING_EQUAL(election_state_to_string(_ELECTION_STATE_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(election_transition_to_string(ELECTION_FOLLOWER, ELECTION_CANDIDATE),
                               "follower -> candidate");
        CU_ASSERT_STRING_EQUAL(election_transition_to_string(ELECTION_LEADER, ELECTION_FOLLOWER), "leader -> follower");
        CU_ASSERT_STRING_EQUAL(election_transition_to_string(ELECTION_LEADER, 9), "invalid");
        CU_ASSERT_STRING_EQUAL(election_role_to_string(ELECTION_ROLE_WITNESS), "witness");
        CU_ASSERT_STRING_EQUAL(election_role_to_string(ELECTION_ROLE_NONVOTER), "nonvoter");
        CU_ASSERT_STRING_EQUAL(election_msg_type_to_string(ELECTION_MSG_PRE_VOTE_REQ), "pre_vote_req");
        CU_ASSERT_STRING_EQUAL(election_msg_type_to_string(ELECTION_MSG_HEARTBEAT_ACK), "heartbeat_ack");
        CU_ASSERT_STRING_EQUAL(election_msg_type_to_string(_ELECTION_MSG_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(election_output_kind_to_string(ELECTION_OUT_PERSIST), "persist");
        CU_ASSERT_STRING_EQUAL(election_lost_reason_to_string(ELECTION_LOST_LEASE_EXPIRED), "lease_expired");
        CU_ASSERT_STRING_EQUAL(election_lost_reason_to_string(_ELECTION_LOST_MAX), "invalid");
}

static void test_config(void) {
        static const struct {
                uint64_t tmin, tmax, hb, lease, guard;
                int ret;
        } t[] = {
                { 1500 * MS, 3000 * MS, 100 * MS, 1000 * MS, 50 * MS, 0 },
                { 1000 * MS, 1001 * MS, 100 * MS, 1000 * MS, 0, 0 },
                { 900 * MS, 3000 * MS, 100 * MS, 1000 * MS, 50 * MS, -EINVAL },  /* timeout < lease */
                { 1500 * MS, 1500 * MS, 100 * MS, 1000 * MS, 50 * MS, -EINVAL }, /* empty range */
                { 1500 * MS, 3000 * MS, 0, 1000 * MS, 50 * MS, -EINVAL },        /* no heartbeat */
                { 1500 * MS, 3000 * MS, 950 * MS, 1000 * MS, 50 * MS, -EINVAL }, /* heartbeat >= lease - guard */
                { 1500 * MS, 3000 * MS, 100 * MS, 1000 * MS, 1000 * MS, -EINVAL }, /* guard >= lease */
                { 1500 * MS, 3000 * MS, 100 * MS, 0, 0, -EINVAL },
        };
        struct election_config c;
        struct election *e = NULL;
        const char *why = NULL;
        uint64_t x = 1;
        struct election_rng r = { .next = xs_next, .ctx = &x };

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                c = (struct election_config) { t[i].tmin, t[i].tmax, t[i].hb, t[i].lease, t[i].guard };
                why = NULL;
                CU_ASSERT_EQUAL(election_config_validate(&c, &why), t[i].ret);
                CU_ASSERT((t[i].ret == 0) == (why == NULL));
        }
        election_config_defaults(&c);
        CU_ASSERT_EQUAL(election_config_validate(&c, NULL), 0);
        CU_ASSERT_EQUAL(election_new(&c, "bad name", 0, NULL, &r, 0, &e), -EINVAL);
        CU_ASSERT_EQUAL(election_new(&c, "", 0, NULL, &r, 0, &e), -EINVAL);
        CU_ASSERT_EQUAL(election_new(&c, "n0", 0, "bad/vote", &r, 0, &e), -EINVAL);
        CU_ASSERT_EQUAL(election_new(&c, "n0", 0, NULL, NULL, 0, &e), -EINVAL);
        CU_ASSERT_PTR_NULL(e);
        CU_ASSERT_EQUAL(election_new(&c, "n0", 7, "n1", &r, 0, &e), 0);
        CU_ASSERT_EQUAL(election_term(e), 7);
        CU_ASSERT_STRING_EQUAL(election_vote(e), "n1");
        {
                struct election_member dup[] = { { "n0", ELECTION_ROLE_VOTER }, { "n0", ELECTION_ROLE_VOTER } };
                struct election_member bad[] = { { "n0", 7 } };
                struct election_msg m = { .type = ELECTION_MSG_HEARTBEAT, .term = 9, .from = "zz" };

                CU_ASSERT_EQUAL(election_set_members(e, dup, 2, 0), -EINVAL);
                CU_ASSERT_EQUAL(election_set_members(e, bad, 1, 0), -EINVAL);
                CU_ASSERT_EQUAL(election_set_members(e, dup, 1, 0), 0);
                CU_ASSERT_EQUAL(election_receive(e, &m, 0), -ENOENT);
                m.type = 99;
                CU_ASSERT_EQUAL(election_receive(e, &m, 0), -EINVAL);
                m.type = ELECTION_MSG_HEARTBEAT;
                snprintf(m.from, sizeof(m.from), "n0");
                CU_ASSERT_EQUAL(election_receive(e, &m, 0), -EINVAL); /* from ourselves */
                CU_ASSERT_EQUAL(election_term(e), 7);
        }
        election_free(e);
}

/* 3 and 5 voters: exactly one leader, of term 1, active after its first round; all follow it. */
static void test_elect(void) {
        static const size_t sizes[] = { 3, 5 };

        for (size_t k = 0; k < 2; k++) {
                int l;

                setup(sizes[k], NULL);
                run_until(T0 + 5 * SEC);
                l = leader_of();
                CU_ASSERT_FATAL(l >= 0);
                CU_ASSERT_EQUAL(election_term(cl.c[l]), 1);
                CU_ASSERT(election_is_active(cl.c[l], cl.now));
                CU_ASSERT_EQUAL(cl.n_won[l], 1);
                for (size_t i = 0; i < cl.n; i++) {
                        size_t v, need;

                        CU_ASSERT_EQUAL(election_term(cl.c[i]), 1);
                        CU_ASSERT_PTR_NOT_NULL_FATAL(election_leader(cl.c[i]));
                        CU_ASSERT_EQUAL(idx(election_leader(cl.c[i])), l);
                        CU_ASSERT_EQUAL(cl.persisted_term[i], 1);
                        election_quorum(cl.c[i], &v, &need);
                        CU_ASSERT_EQUAL(v, sizes[k]);
                        CU_ASSERT_EQUAL(need, sizes[k] / 2 + 1);
                }
                /* Stable: no new election over a minute of heartbeats. */
                run_until(cl.now + 60 * SEC);
                CU_ASSERT_EQUAL(leader_of(), l);
                CU_ASSERT_EQUAL(election_term(cl.c[l]), 1);
                teardown();
        }
}

static const struct election_output *find_out(struct election *e, enum election_output_kind kind, size_t *pos) {
        size_t n;
        const struct election_output *o = election_outputs(e, &n);

        for (size_t k = 0; k < n; k++)
                if (o[k].kind == kind) {
                        *pos = k;
                        return &o[k];
                }
        return NULL;
}

/* One vote per term, persisted before the answer; the vote survives a restart. */
static void test_single_vote(void) {
        static const struct {
                const char *from;
                uint64_t term;
                bool granted;
                uint64_t want_term;
        } t[] = {
                { "n1", 1, true, 1 },   /* first request of term 1: granted */
                { "n2", 1, false, 1 },  /* another candidate of term 1: refused */
                { "n1", 1, true, 1 },   /* the same candidate again (a retransmission): still yes */
                { "n2", 2, true, 2 },   /* a new term: a new vote */
                { "n1", 1, false, 2 },  /* an older term: refused */
        };
        struct election_member m[] = { { "n0", ELECTION_ROLE_VOTER }, { "n1", ELECTION_ROLE_VOTER },
                                        { "n2", ELECTION_ROLE_VOTER } };
        uint64_t x = 5, now = T0 + cfg.lease_us; /* past the restart promise */
        struct election_rng r = { .next = xs_next, .ctx = &x };
        struct election *e;

        CU_ASSERT_FATAL(election_new(&cfg, "n0", 0, NULL, &r, T0, &e) == 0);
        CU_ASSERT_FATAL(election_set_members(e, m, 3, T0) == 0);
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                struct election_msg q = { .type = ELECTION_MSG_VOTE_REQ, .term = t[i].term };
                const struct election_output *o;
                size_t ps = 99, ss = 99;

                snprintf(q.from, sizeof(q.from), "%s", t[i].from);
                election_receive(e, &q, now);
                o = find_out(e, ELECTION_OUT_SEND, &ss);
                CU_ASSERT_PTR_NOT_NULL_FATAL(o);
                CU_ASSERT_EQUAL(o->msg.type, ELECTION_MSG_VOTE_RESP);
                CU_ASSERT_EQUAL(o->msg.granted, t[i].granted);
                CU_ASSERT_EQUAL(o->msg.term, t[i].want_term);
                CU_ASSERT_STRING_EQUAL(o->to, t[i].from);
                if (find_out(e, ELECTION_OUT_PERSIST, &ps))
                        CU_ASSERT(ps < ss);
                /* A new vote is always persisted, and before the answer. */
                if (i == 0 || i == 3) {
                        const struct election_output *p = find_out(e, ELECTION_OUT_PERSIST, &ps);

                        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
                        CU_ASSERT(ps < ss);
                        CU_ASSERT_EQUAL(p->term, t[i].want_term);
                        CU_ASSERT_STRING_EQUAL(p->vote, t[i].from);
                }
                election_outputs_clear(e);
        }
        election_free(e);

        /* Restarted from the store with (2, n2): n1 still cannot get a vote in term 2. */
        CU_ASSERT_FATAL(election_new(&cfg, "n0", 2, "n2", &r, now, &e) == 0);
        CU_ASSERT_FATAL(election_set_members(e, m, 3, now) == 0);
        {
                struct election_msg q = { .type = ELECTION_MSG_VOTE_REQ, .term = 2, .from = "n1" };
                const struct election_output *o;
                size_t ss;

                /* Within lease_us of the restart nothing is granted, not even to n2. */
                election_receive(e, &q, now + cfg.lease_us - 1);
                o = find_out(e, ELECTION_OUT_SEND, &ss);
                CU_ASSERT_PTR_NOT_NULL_FATAL(o);
                CU_ASSERT_FALSE(o->msg.granted);
                election_outputs_clear(e);
                election_receive(e, &q, now + cfg.lease_us);
                o = find_out(e, ELECTION_OUT_SEND, &ss);
                CU_ASSERT_PTR_NOT_NULL_FATAL(o);
                CU_ASSERT_FALSE(o->msg.granted);
                election_outputs_clear(e);
                snprintf(q.from, sizeof(q.from), "n2");
                election_receive(e, &q, now + cfg.lease_us);
                o = find_out(e, ELECTION_OUT_SEND, &ss);
                CU_ASSERT_PTR_NOT_NULL_FATAL(o);
                CU_ASSERT_TRUE(o->msg.granted);
        }
        election_free(e);
}

/* A candidacy: PERSIST(term+1, self) comes before every vote request. */
static void test_persist_order(void) {
        struct election_member m[] = { { "n0", ELECTION_ROLE_VOTER }, { "n1", ELECTION_ROLE_VOTER },
                                        { "n2", ELECTION_ROLE_VOTER } };
        uint64_t x = 11, now;
        struct election_rng r = { .next = xs_next, .ctx = &x };
        struct election *e;
        const struct election_output *o;
        size_t n, sends = 0;
        struct election_msg g = { .type = ELECTION_MSG_PRE_VOTE_RESP, .term = 4, .from = "n1", .granted = true };

        CU_ASSERT_FATAL(election_new(&cfg, "n0", 3, "n2", &r, T0, &e) == 0);
        CU_ASSERT_FATAL(election_set_members(e, m, 3, T0) == 0);
        now = election_next_deadline(e);
        CU_ASSERT(now >= T0 + cfg.election_timeout_min_us);
        CU_ASSERT(now < T0 + cfg.election_timeout_max_us);
        election_tick(e, now);
        /* The pre-vote: no PERSIST, the term is unchanged, requests ask for term 4. */
        o = election_outputs(e, &n);
        CU_ASSERT_EQUAL(n, 2);
        for (size_t k = 0; k < n; k++) {
                CU_ASSERT_EQUAL(o[k].kind, ELECTION_OUT_SEND);
                CU_ASSERT_EQUAL(o[k].msg.type, ELECTION_MSG_PRE_VOTE_REQ);
                CU_ASSERT_EQUAL(o[k].msg.term, 4);
        }
        CU_ASSERT_EQUAL(election_term(e), 3);
        CU_ASSERT_EQUAL(election_state(e), ELECTION_PRE_CANDIDATE);
        election_outputs_clear(e);
        CU_ASSERT_EQUAL(election_receive(e, &g, now), 0);
        o = election_outputs(e, &n);
        CU_ASSERT_FATAL(n == 3);
        CU_ASSERT_EQUAL(o[0].kind, ELECTION_OUT_PERSIST);
        CU_ASSERT_EQUAL(o[0].term, 4);
        CU_ASSERT_STRING_EQUAL(o[0].vote, "n0");
        for (size_t k = 1; k < n; k++) {
                CU_ASSERT_EQUAL(o[k].kind, ELECTION_OUT_SEND);
                CU_ASSERT_EQUAL(o[k].msg.type, ELECTION_MSG_VOTE_REQ);
                CU_ASSERT_EQUAL(o[k].msg.term, 4);
                sends++;
        }
        CU_ASSERT_EQUAL(sends, 2);
        CU_ASSERT_EQUAL(election_state(e), ELECTION_CANDIDATE);
        election_free(e);
}

/* A partitioned voter keeps its term (its pre-votes fail) and rejoins without deposing the leader. */
static void test_prevote(void) {
        int l, iso;

        setup(5, NULL);
        run_until(T0 + 5 * SEC);
        l = leader_of();
        CU_ASSERT_FATAL(l >= 0);
        iso = (l + 1) % 5;
        isolate((size_t)iso, true);
        run_until(cl.now + 120 * SEC);
        CU_ASSERT_EQUAL(election_term(cl.c[iso]), 1);
        CU_ASSERT_EQUAL(election_state(cl.c[iso]), ELECTION_PRE_CANDIDATE);
        CU_ASSERT_EQUAL(cl.persisted_term[iso], 1);
        isolate((size_t)iso, false);
        run_until(cl.now + 10 * SEC);
        CU_ASSERT_EQUAL(leader_of(), l);
        CU_ASSERT_EQUAL(cl.n_lost[l], 0);
        for (size_t i = 0; i < 5; i++) {
                CU_ASSERT_EQUAL(election_term(cl.c[i]), 1);
                CU_ASSERT_EQUAL(idx(election_leader(cl.c[i]) ? election_leader(cl.c[i]) : "x"), l);
        }
        teardown();
}

/* The lease: renewed by acks, lost exactly at (last quorum round's send time + lease - guard). */
static void test_lease(void) {
        int l;
        uint64_t exp, last_round;

        setup(3, NULL);
        run_until(T0 + 5 * SEC);
        l = leader_of();
        CU_ASSERT_FATAL(l >= 0);
        /* Rounds go out every heartbeat interval; each acked one moves the lease. */
        exp = election_lease_expiry(cl.c[l]);
        last_round = exp - cfg.lease_us + cfg.lease_guard_us;
        CU_ASSERT(last_round <= cl.now && cl.now < last_round + cfg.heartbeat_interval_us);
        run_until(cl.now + cfg.heartbeat_interval_us);
        CU_ASSERT_EQUAL(election_lease_expiry(cl.c[l]), exp + cfg.heartbeat_interval_us);
        exp = election_lease_expiry(cl.c[l]);
        /* The quorum round is the send time of the round behind the lease. */
        last_round = election_quorum_round(cl.c[l]);
        CU_ASSERT_EQUAL(last_round, exp - cfg.lease_us + cfg.lease_guard_us);
        for (size_t i = 0; i < 3; i++)
                if ((int) i != l)
                        CU_ASSERT_EQUAL(election_quorum_round(cl.c[i]), 0);
        /* Cut the leader off: no round after this one is acknowledged. */
        isolate((size_t)l, true);
        run_until(exp - 1);
        CU_ASSERT_EQUAL(election_state(cl.c[l]), ELECTION_LEADER);
        CU_ASSERT(election_is_active(cl.c[l], exp - 1));
        /* Still active, but the quorum round stays where the cut left it: decisions wait. */
        CU_ASSERT_EQUAL(election_quorum_round(cl.c[l]), last_round);
        CU_ASSERT_FALSE(election_is_active(cl.c[l], exp));
        CU_ASSERT_EQUAL(cl.n_lost[l], 0);
        run_until(exp);
        CU_ASSERT_EQUAL(election_state(cl.c[l]), ELECTION_FOLLOWER);
        CU_ASSERT_EQUAL(cl.n_lost[l], 1);
        CU_ASSERT_EQUAL(election_lease_expiry(cl.c[l]), 0);
        CU_ASSERT_EQUAL(election_quorum_round(cl.c[l]), 0);
        teardown();
}

/* A new leader is elected only after the old lease has run out. */
static void test_wait_out_lease(void) {
        int l, nl = -1;
        uint64_t exp;

        setup(5, NULL);
        run_until(T0 + 5 * SEC);
        l = leader_of();
        CU_ASSERT_FATAL(l >= 0);
        isolate((size_t)l, true);
        exp = election_lease_expiry(cl.c[l]);
        /* Step in small increments and catch the first moment anyone else leads. */
        while (cl.now < exp + 30 * SEC) {
                run_until(cl.now + MS);
                for (size_t i = 0; i < 5; i++)
                        if ((int)i != l && election_state(cl.c[i]) == ELECTION_LEADER)
                                nl = (int)i;
                if (nl >= 0)
                        break;
        }
        CU_ASSERT_FATAL(nl >= 0);
        CU_ASSERT(cl.now >= exp + cfg.lease_guard_us);
        CU_ASSERT_EQUAL(election_state(cl.c[l]), ELECTION_FOLLOWER);
        CU_ASSERT_EQUAL(election_term(cl.c[nl]), 2);
        /* The old leader returns and follows: it never acts in term 1 again. */
        isolate((size_t)l, false);
        run_until(cl.now + 5 * SEC);
        CU_ASSERT_EQUAL(leader_of(), nl);
        CU_ASSERT_EQUAL(election_term(cl.c[l]), 2);
        teardown();
}

/*
 * A restarted voter has forgotten the promise it made to the leader, so it
 * grants nothing for a lease: n2, which cannot hear the leader n0, asks n1
 * right after n1's restart, while n0's lease still runs.
 */
static void test_restart_promise(void) {
        uint64_t exp, d;
        int nl = -1;

        setup(3, NULL);
        run_until(T0 + 5 * SEC);
        CU_ASSERT_FATAL(leader_of() == 0 || leader_of() >= 0);
        if (leader_of() != 0) {
                /* Make n0 the leader: whoever leads is cut until n0 takes over. */
                for (int k = 0; k < 20 && leader_of() != 0; k++) {
                        int l = leader_of();

                        isolate((size_t)l, true);
                        run_until(cl.now + 10 * SEC);
                        isolate((size_t)l, false);
                        run_until(cl.now + 5 * SEC);
                }
        }
        CU_ASSERT_FATAL(leader_of() == 0);
        cl.link[0][2] = cl.link[2][0] = false;
        run_until(cl.now + 10 * SEC);
        CU_ASSERT_EQUAL(leader_of(), 0);
        CU_ASSERT_EQUAL(election_state(cl.c[2]), ELECTION_PRE_CANDIDATE);
        d = election_next_deadline(cl.c[2]);
        run_until(d - 1);
        isolate(0, true);
        exp = election_lease_expiry(cl.c[0]);
        CU_ASSERT(exp > cl.now);
        restart(1);
        while (cl.now < exp + 30 * SEC && nl < 0) {
                run_until(cl.now + MS);
                for (size_t i = 1; i < 3; i++)
                        if (election_state(cl.c[i]) == ELECTION_LEADER)
                                nl = (int)i;
        }
        CU_ASSERT_FATAL(nl > 0);
        CU_ASSERT(cl.now >= exp);
        teardown();
}

/* A non-voter never campaigns, never grants and is never counted; a witness votes and leads. */
static void test_roles(void) {
        static const enum election_role roles[] = { ELECTION_ROLE_NONVOTER, ELECTION_ROLE_WITNESS,
                                                    ELECTION_ROLE_VOTER, ELECTION_ROLE_VOTER };
        static const enum election_msg_type asks[] = { ELECTION_MSG_VOTE_REQ, ELECTION_MSG_PRE_VOTE_REQ };
        size_t v, need;
        int l = -1, witness_led = 0;

        setup(4, roles);
        election_quorum(cl.c[0], &v, &need);
        CU_ASSERT_EQUAL(v, 3);
        CU_ASSERT_EQUAL(need, 2);
        CU_ASSERT_FALSE(election_is_voter(cl.c[0]));
        CU_ASSERT_TRUE(election_is_voter(cl.c[1]));
        /* The non-voter alone with one voter: no quorum, no leader, and it never asks. */
        cl.up[2] = cl.up[1] = false;
        run_until(T0 + 60 * SEC);
        CU_ASSERT_EQUAL(leader_of(), -1);
        CU_ASSERT_EQUAL(election_term(cl.c[0]), 0);
        CU_ASSERT_EQUAL(election_state(cl.c[0]), ELECTION_FOLLOWER);
        CU_ASSERT_EQUAL(election_next_deadline(cl.c[0]), UINT64_MAX);
        CU_ASSERT_EQUAL(cl.persisted_term[0], 0);
        for (size_t k = 0; k < 2; k++) {
                struct election_msg q = { .type = asks[k], .term = 9, .from = "n2" };
                const struct election_output *o;
                size_t n;

                CU_ASSERT_EQUAL(election_receive(cl.c[0], &q, cl.now), 0);
                o = election_outputs(cl.c[0], &n);
                CU_ASSERT_FATAL(n == 1);
                CU_ASSERT_EQUAL(o[0].kind, ELECTION_OUT_SEND);
                CU_ASSERT_FALSE(o[0].msg.granted);
                CU_ASSERT_EQUAL(o[0].msg.term, 0);
                election_outputs_clear(cl.c[0]);
        }
        /* Everyone up: cut whoever leads until the witness does; the non-voter follows it. */
        cl.up[1] = cl.up[2] = true;
        for (int round = 0; round < 20 && !witness_led; round++) {
                for (size_t i = 1; i < 4; i++)
                        isolate(i, false);
                if (l >= 1)
                        isolate((size_t)l, true);
                run_until(cl.now + 20 * SEC);
                l = leader_of();
                CU_ASSERT_FATAL(l >= 1);
                CU_ASSERT(election_is_active(cl.c[l], cl.now));
                if (l == 1)
                        witness_led = 1;
        }
        CU_ASSERT_TRUE(witness_led);
        CU_ASSERT_EQUAL(idx(election_leader(cl.c[0]) ? election_leader(cl.c[0]) : "x"), 1);
        CU_ASSERT_STRING_EQUAL(cl.persisted_vote[0], "");
        CU_ASSERT_EQUAL(cl.n_won[0], 0);
        teardown();
}

/* Fencing: older terms are rejected, by the core and through election_accepts(). */
static void test_stale(void) {
        static const struct {
                enum election_msg_type type;
                uint64_t term;
                int ret;
                bool answer;
        } t[] = {
                { ELECTION_MSG_HEARTBEAT, 2, -ESTALE, true },
                { ELECTION_MSG_VOTE_REQ, 2, -ESTALE, true },
                { ELECTION_MSG_PRE_VOTE_REQ, 1, -ESTALE, true },
                { ELECTION_MSG_VOTE_RESP, 2, -ESTALE, false },
                { ELECTION_MSG_HEARTBEAT_ACK, 2, -ESTALE, false },
                { ELECTION_MSG_HEARTBEAT, 3, 0, true },
        };
        struct election_member m[] = { { "n0", ELECTION_ROLE_VOTER }, { "n1", ELECTION_ROLE_VOTER },
                                        { "n2", ELECTION_ROLE_VOTER } };
        uint64_t x = 3;
        struct election_rng r = { .next = xs_next, .ctx = &x };
        struct election *e;

        CU_ASSERT_FATAL(election_new(&cfg, "n0", 3, NULL, &r, T0, &e) == 0);
        CU_ASSERT_FATAL(election_set_members(e, m, 3, T0) == 0);
        CU_ASSERT_FALSE(election_accepts(e, 2));
        CU_ASSERT_TRUE(election_accepts(e, 3));
        CU_ASSERT_TRUE(election_accepts(e, 4));
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                struct election_msg q = { .type = t[i].type, .term = t[i].term, .from = "n1", .round = 7 };
                const struct election_output *o;
                size_t n;

                CU_ASSERT_EQUAL(election_receive(e, &q, T0 + SEC), t[i].ret);
                o = election_outputs(e, &n);
                CU_ASSERT_EQUAL(n > 0, t[i].answer);
                for (size_t k = 0; k < n; k++)
                        if (o[k].kind == ELECTION_OUT_SEND) {
                                CU_ASSERT_EQUAL(o[k].msg.term, 3);
                                CU_ASSERT_EQUAL(o[k].msg.granted, t[i].ret == 0);
                                CU_ASSERT_EQUAL(o[k].msg.round, t[i].type == ELECTION_MSG_HEARTBEAT ? 7 : 0);
                        }
                CU_ASSERT_EQUAL(election_term(e), 3);
                election_outputs_clear(e);
        }
        CU_ASSERT_STRING_EQUAL(election_leader(e), "n1");
        election_free(e);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "printers", test_printers },
                { "config", test_config },
                { "elect 3 and 5", test_elect },
                { "single vote per term", test_single_vote },
                { "persist before candidacy", test_persist_order },
                { "prevote vs partitioned node", test_prevote },
                { "lease renew and expiry", test_lease },
                { "new leader waits out lease", test_wait_out_lease },
                { "restart forgets promises: waits a lease", test_restart_promise },
                { "non-voter and witness", test_roles },
                { "stale terms", test_stale },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "election", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        election_config_defaults(&cfg);
        return unit_run(suites);
}
