/*
 * sim_election: real election cores (src/core/election.c) on the simulated
 * network, without membership cores (params.app_only), through long runs of
 * crashes, restarts, pauses, partitions and loss. Two clusters per seed: 3
 * voters + 2 non-voters, and 5 voters (one a witness) + 2 non-voters.
 *
 * The store is simulated: a node's PERSIST outputs update its record, which
 * is all a restarted node gets back. Election messages travel as opaque
 * datagrams (sim_app_send). The history checker proves, as it goes:
 *   - never two leaders in one term;
 *   - PERSIST precedes sends: every vote and candidacy a node sends is
 *     already in its store;
 *   - fencing: a node never acts on (accepts) a heartbeat - our model of a
 *     leader's order - of a term older than what it has stored, and every
 *     accepted heartbeat comes from the recorded leader of its term;
 *   - leader-active intervals (from the first quorum-acknowledged round to
 *     the lease end or step-down, in virtual time) never overlap, and begin
 *     in term order;
 *   - a minority partition makes no decision: no node wins there, no node
 *     there raises its term above the highest term at the partition, and a
 *     leader cut off into it is not active beyond partition + lease;
 *   - after every "calm" (heal, resume, restart all) an active leader
 *     exists within CALM_BOUND.
 * It prints the elections held and time-to-leader after quorum returns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/election.h"
#include "sim.h"

#define SEC SIM_USEC_PER_SEC
#define MS SIM_USEC_PER_MSEC
#define NMAX 8
/* Restart promise (lease) + an old lease + a few split-vote rounds of 3 s: generous, yet finite. */
#define CALM_BOUND (20 * SEC)

struct store {
        uint64_t term;
        char vote[ELECTION_NAME_MAX];
};

struct interval {
        uint64_t term;
        uint32_t node;
        uint64_t start, end;
        bool open;
};

/* What travels: the message and, for the checker only, when it was sent. */
struct payload {
        uint64_t sent_at;
        struct election_msg msg;
};

/* Heartbeats kept for replaying late: the orders fencing must refuse. */
#define REPLAY_RING 256

struct replay_rec {
        uint32_t from;
        struct payload pl;
};

struct enode {
        struct election *e;
        bool stale_input;               /* processed a message sent before the current partition */
        struct sim_rng rng;
        struct store store;
        char name[16];
        enum election_role role;
        int iv;                         /* index of our open active interval, -1 */
};

struct run {
        struct sim *s;
        uint32_t n, voters;
        struct election_config cfg;
        struct election_member members[NMAX];
        struct enode node[NMAX];
        uint32_t *leader_of_term;       /* by term: node + 1, 0: none */
        size_t cap_terms;
        struct interval *iv;
        size_t n_iv, cap_iv;
        /* The current partition, for the minority checks. */
        bool partitioned;
        uint32_t group[NMAX];
        bool majority_side[NMAX];
        uint64_t partition_at, partition_max_term;      /* raised by stale_input nodes */
        /* Figures. */
        uint64_t calm_with_leader, bounces;
        uint64_t elections, heartbeats_accepted, stale_rejected, crashes, restarts, pauses, partitions;
        struct replay_rec replay[REPLAY_RING];
        uint64_t n_replay, replayed;
        uint64_t *ttl;                  /* time to leader after each calm */
        size_t n_ttl, cap_ttl;
};

static struct run R;

static uint64_t rng_next(void *ctx) {
        return sim_rng_next(ctx);
}

static uint64_t offset(uint32_t i) {
        return sim_local_now(R.s, i) - sim_now(R.s);
}

static uint64_t to_virtual(uint32_t i, uint64_t local) {
        uint64_t o = offset(i);

        return local > o ? local - o : 0;
}

static int node_index(const char *name) {
        char *end;
        unsigned long v;

        if (name[0] != 'n')
                return -1;
        v = strtoul(name + 1, &end, 10);
        return *end || v >= R.n ? -1 : (int)v;
}

static void record_leader(uint32_t i, uint64_t term) {
        if (term >= R.cap_terms) {
                size_t cap = R.cap_terms ? R.cap_terms : 256;
                uint32_t *p;

                while (cap <= term)
                        cap *= 2;
                p = realloc(R.leader_of_term, cap * sizeof(*p));
                if (!p)
                        abort();
                memset(p + R.cap_terms, 0, (cap - R.cap_terms) * sizeof(*p));
                R.leader_of_term = p;
                R.cap_terms = cap;
        }
        if (R.leader_of_term[term] && R.leader_of_term[term] != i + 1)
                sim_fail(R.s, "two leaders in term %" PRIu64 ": n%u and n%u", term, R.leader_of_term[term] - 1, i);
        R.leader_of_term[term] = i + 1;
}

static uint32_t leader_of_term(uint64_t term) {
        return term < R.cap_terms ? R.leader_of_term[term] : 0;
}

/* The interval activated after `k` must start no earlier than k ends. */
static void check_next(size_t k) {
        if (k + 1 < R.n_iv && R.iv[k].end > R.iv[k + 1].start)
                sim_fail(R.s, "leader n%u of term %" PRIu64 " active until %.6f s, but n%u of term %" PRIu64
                         " active since %.6f s", R.iv[k].node, R.iv[k].term, (double)R.iv[k].end / 1e6,
                         R.iv[k + 1].node, R.iv[k + 1].term, (double)R.iv[k + 1].start / 1e6);
}

/* After anything happened at node i: open, extend or close its active interval. */
static void track_active(uint32_t i) {
        struct enode *n = &R.node[i];
        uint64_t now = sim_now(R.s);
        bool active = n->e && election_is_active(n->e, sim_local_now(R.s, i));

        if (n->iv >= 0 && (!active || R.iv[n->iv].term != election_term(n->e))) {
                struct interval *v = &R.iv[n->iv];

                if (now < v->end)
                        v->end = now;
                v->open = false;
                check_next((size_t)n->iv);
                n->iv = -1;
        }
        if (!active)
                return;
        if (n->iv < 0) {
                uint64_t term = election_term(n->e);

                if (R.n_iv && R.iv[R.n_iv - 1].term >= term)
                        sim_fail(R.s, "n%u active in term %" PRIu64 " after term %" PRIu64 " was", i, term,
                                 R.iv[R.n_iv - 1].term);
                if (leader_of_term(term) != i + 1)
                        sim_fail(R.s, "n%u active in term %" PRIu64 " without having won it", i, term);
                if (R.n_iv == R.cap_iv) {
                        R.cap_iv = R.cap_iv ? R.cap_iv * 2 : 64;
                        R.iv = realloc(R.iv, R.cap_iv * sizeof(*R.iv));
                        if (!R.iv)
                                abort();
                }
                R.iv[R.n_iv] = (struct interval) { .term = term, .node = i, .start = now, .end = now, .open = true };
                n->iv = (int)R.n_iv++;
                if (n->iv > 0)
                        check_next((size_t)n->iv - 1);
        }
        R.iv[n->iv].end = to_virtual(i, election_lease_expiry(n->e));
        check_next((size_t)n->iv);
        if (R.partitioned && !R.majority_side[i] && R.iv[n->iv].end > R.partition_at + R.cfg.lease_us)
                sim_fail(R.s, "n%u leads on a minority side until %.6f s, partitioned at %.6f s", i,
                         (double)R.iv[n->iv].end / 1e6, (double)R.partition_at / 1e6);
}

static void drain(uint32_t i) {
        struct enode *n = &R.node[i];
        const struct election_output *o;
        size_t k, cnt;

        o = election_outputs(n->e, &cnt);
        for (k = 0; k < cnt && !sim_failed(R.s); k++) {
                int to;

                switch (o[k].kind) {
                case ELECTION_OUT_PERSIST:
                        if (o[k].term < n->store.term)
                                sim_fail(R.s, "n%u persisted term %" PRIu64 " over %" PRIu64, i, o[k].term,
                                         n->store.term);
                        if (o[k].term == n->store.term && n->store.vote[0] && strcmp(o[k].vote, n->store.vote) != 0)
                                sim_fail(R.s, "n%u changed its vote in term %" PRIu64 " from %s to %s", i, o[k].term,
                                         n->store.vote, o[k].vote);
                        n->store.term = o[k].term;
                        memcpy(n->store.vote, o[k].vote, sizeof(n->store.vote));
                        break;
                case ELECTION_OUT_SEND:
                        /* What we send must survive a crash right after it. */
                        if (o[k].msg.term > n->store.term && o[k].msg.type != ELECTION_MSG_PRE_VOTE_REQ &&
                            o[k].msg.type != ELECTION_MSG_PRE_VOTE_RESP)
                                sim_fail(R.s, "n%u sent %s of term %" PRIu64 " with term %" PRIu64 " stored", i,
                                         election_msg_type_to_string(o[k].msg.type), o[k].msg.term, n->store.term);
                        if ((o[k].msg.type == ELECTION_MSG_VOTE_REQ ||
                             (o[k].msg.type == ELECTION_MSG_VOTE_RESP && o[k].msg.granted)) &&
                            strcmp(n->store.vote, o[k].msg.type == ELECTION_MSG_VOTE_REQ ? n->name : o[k].to) != 0)
                                sim_fail(R.s, "n%u sent %s before persisting its vote", i,
                                         election_msg_type_to_string(o[k].msg.type));
                        to = node_index(o[k].to);
                        if (to < 0)
                                sim_fail(R.s, "n%u sent to unknown %s", i, o[k].to);
                        else {
                                struct payload pl = { .sent_at = sim_now(R.s), .msg = o[k].msg };

                                sim_app_send(R.s, i, (uint32_t)to, &pl, sizeof(pl));
                                /* Keep one heartbeat per round or so, spread over the run. */
                                if (pl.msg.type == ELECTION_MSG_HEARTBEAT && pl.msg.round % 8 == 1 && to == 0)
                                        R.replay[R.n_replay++ % REPLAY_RING] = (struct replay_rec) { .from = i, .pl = pl };
                        }
                        break;
                case ELECTION_OUT_EVENT:
                        if (o[k].event == EVENT_LEADER_ELECTED && strcmp(o[k].subject, n->name) == 0) {
                                R.elections++;
                                if (n->role == ELECTION_ROLE_NONVOTER)
                                        sim_fail(R.s, "non-voter n%u won term %" PRIu64, i, o[k].term);
                                if (R.partitioned && !R.majority_side[i] && !n->stale_input)
                                        sim_fail(R.s, "n%u won term %" PRIu64 " on a minority side", i, o[k].term);
                                record_leader(i, o[k].term);
                        }
                        if (sim_failed(R.s))
                                break;
                        if (getenv("SIM_TRACE"))
                                sim_note(R.s, "n%u %s %s: %s", i, event_kind_to_string(o[k].event), o[k].subject,
                                         o[k].detail);
                        break;
                default:
                        sim_fail(R.s, "n%u: unknown output %d", i, o[k].kind);
                }
        }
        election_outputs_clear(n->e);
        /* A node acting on pre-partition news may move on; it then sets the bar for its side. */
        if (R.partitioned && !R.majority_side[i] && n->stale_input && election_term(n->e) > R.partition_max_term)
                R.partition_max_term = election_term(n->e);
        if (R.partitioned && !R.majority_side[i] && election_term(n->e) > R.partition_max_term)
                sim_fail(R.s, "n%u raised its term to %" PRIu64 " on a minority side (max %" PRIu64 " at the partition)",
                         i, election_term(n->e), R.partition_max_term);
        track_active(i);
}

static void app_receive(struct sim *s, uint32_t to, uint32_t from, const uint8_t *buf, size_t len, void *ud) {
        struct enode *n = &R.node[to];
        struct payload pl;
        struct election_msg m;
        uint64_t stored;
        int r;

        (void)ud;
        if (!n->e || len != sizeof(pl))
                return;
        memcpy(&pl, buf, sizeof(pl));
        m = pl.msg;
        /* A paused node reads what reached its socket before the partition only after it. */
        if (R.partitioned && pl.sent_at < R.partition_at)
                n->stale_input = true;
        if (node_index(m.from) != (int)from) {
                sim_fail(s, "n%u got a message from n%u claiming to be %s", to, from, m.from);
                return;
        }
        stored = n->store.term;
        r = election_receive(n->e, &m, sim_local_now(s, to));
        if (r == -ESTALE)
                R.stale_rejected++;
        if (r == 0 && m.type == ELECTION_MSG_HEARTBEAT) {
                R.heartbeats_accepted++;
                if (m.term < stored)
                        sim_fail(s, "n%u acted on a heartbeat of term %" PRIu64 " with term %" PRIu64 " stored", to,
                                 m.term, stored);
                if (leader_of_term(m.term) != from + 1)
                        sim_fail(s, "n%u acted on a heartbeat of term %" PRIu64 " from n%u, which did not win it",
                                 to, m.term, from);
        } else if (r < 0 && r != -ESTALE) {
                sim_fail(s, "n%u rejected %s from n%u: %s", to, election_msg_type_to_string(m.type), from, strerror(-r));
        }
        drain(to);
}

static void app_tick(struct sim *s, uint32_t i, void *ud) {
        (void)ud;
        if (!R.node[i].e)
                return;
        election_tick(R.node[i].e, sim_local_now(s, i));
        drain(i);
}

static uint64_t app_deadline(struct sim *s, uint32_t i, void *ud) {
        uint64_t d;

        (void)s;
        (void)ud;
        if (!R.node[i].e)
                return UINT64_MAX;
        d = election_next_deadline(R.node[i].e);
        return d == UINT64_MAX ? d : to_virtual(i, d);
}

/* A (re)start: the core comes back from the store alone. */
static int node_boot(uint32_t i) {
        struct enode *n = &R.node[i];
        struct election_rng rng = { .next = rng_next, .ctx = &n->rng };
        int r;

        r = election_new(&R.cfg, n->name, n->store.term, n->store.vote, &rng, sim_local_now(R.s, i), &n->e);
        if (r < 0)
                return r;
        return election_set_members(n->e, R.members, R.n, sim_local_now(R.s, i));
}

static void node_crash(uint32_t i) {
        struct enode *n = &R.node[i];

        sim_crash(R.s, i);
        if (n->iv >= 0) {
                if (sim_now(R.s) < R.iv[n->iv].end)
                        R.iv[n->iv].end = sim_now(R.s);
                R.iv[n->iv].open = false;
                n->iv = -1;
        }
        election_free(n->e);
        n->e = NULL;
        R.crashes++;
}

static void node_restart(uint32_t i) {
        if (node_boot(i) < 0 || sim_restart(R.s, i) < 0) {
                sim_fail(R.s, "n%u: restart failed", i);
                return;
        }
        R.restarts++;
        sim_app_reschedule(R.s, i);
}

static uint64_t max_term(void) {
        uint64_t t = 0;

        for (uint32_t i = 0; i < R.n; i++)
                if (R.node[i].store.term > t)
                        t = R.node[i].store.term;
        return t;
}

static void set_partition(bool on) {
        struct sim_rng *rng = sim_scenario_rng(R.s);
        uint32_t votes[2] = { 0, 0 };

        for (uint32_t i = 0; i < R.n; i++)
                R.node[i].stale_input = false;
        if (!on) {
                R.partitioned = false;
                sim_partition(R.s, NULL);
                return;
        }
        for (uint32_t i = 0; i < R.n; i++) {
                R.group[i] = (uint32_t)sim_rng_below(rng, 2);
                if (R.node[i].role != ELECTION_ROLE_NONVOTER)
                        votes[R.group[i]]++;
        }
        /* A (pre-)candidate may complete, after the cut, a round it gathered before it. */
        for (uint32_t i = 0; i < R.n; i++) {
                R.majority_side[i] = votes[R.group[i]] > R.voters / 2;
                R.node[i].stale_input = R.node[i].e && (election_state(R.node[i].e) == ELECTION_PRE_CANDIDATE ||
                                                        election_state(R.node[i].e) == ELECTION_CANDIDATE);
        }
        R.partitioned = true;
        R.partition_at = sim_now(R.s);
        R.partition_max_term = max_term();
        sim_partition(R.s, R.group);
        R.partitions++;
}

static bool have_active_leader(struct sim *s, void *ud) {
        (void)ud;
        for (uint32_t i = 0; i < R.n; i++)
                if (R.node[i].e && election_is_active(R.node[i].e, sim_local_now(s, i)))
                        return true;
        return false;
}

/* Heal everything; a leader must be active within CALM_BOUND. */
static void calm(void) {
        uint64_t t0;

        set_partition(false);
        sim_set_loss(R.s, 0.0);
        for (uint32_t i = 0; i < R.n; i++) {
                if (sim_node_state(R.s, i) == SIM_NODE_PAUSED)
                        sim_resume(R.s, i);
                else if (sim_node_state(R.s, i) == SIM_NODE_CRASHED)
                        node_restart(i);
        }
        t0 = sim_now(R.s);
        if (have_active_leader(R.s, NULL)) {
                R.calm_with_leader++;
                return;
        }
        if (!sim_run_while_not(R.s, t0 + CALM_BOUND, 10 * MS, have_active_leader, NULL)) {
                sim_fail(R.s, "no active leader %.1f s after quorum returned", (double)CALM_BOUND / 1e6);
                return;
        }
        if (R.n_ttl == R.cap_ttl) {
                R.cap_ttl = R.cap_ttl ? R.cap_ttl * 2 : 64;
                R.ttl = realloc(R.ttl, R.cap_ttl * sizeof(*R.ttl));
                if (!R.ttl)
                        abort();
        }
        R.ttl[R.n_ttl++] = sim_now(R.s) - t0;
}

/* One random fault. */
static void chaos_step(void) {
        struct sim_rng *rng = sim_scenario_rng(R.s);
        uint32_t i = (uint32_t)sim_rng_below(rng, R.n);
        uint64_t dice = sim_rng_below(rng, 100);

        /* Aim at the leader half the time: that is where the interesting races are. */
        if (sim_rng_below(rng, 2))
                for (uint32_t k = 0; k < R.n; k++)
                        if (R.node[k].e && election_state(R.node[k].e) == ELECTION_LEADER)
                                i = k;
        switch (sim_node_state(R.s, i)) {
        case SIM_NODE_CRASHED:
                if (dice < 70)
                        node_restart(i);
                return;
        case SIM_NODE_PAUSED:
                if (dice < 70)
                        sim_resume(R.s, i);
                return;
        default:
                break;
        }
        if (dice < 20)
                node_crash(i);
        else if (dice < 45) {
                sim_pause(R.s, i);
                R.pauses++;
        } else if (dice < 65) {
                /* Heal, or cut anew: a repartition strands a leader with a fresh majority elsewhere. */
                set_partition(!R.partitioned || sim_rng_below(rng, 2));
        }
        else if (dice < 72)
                sim_set_loss(R.s, (double)sim_rng_below(rng, 20) / 100.0);
        else if (dice < 76 && R.n_replay) {
                /* A long-delayed heartbeat, usually of an old term, reaches some node now. */
                struct replay_rec *rr = &R.replay[sim_rng_below(rng, R.n_replay < REPLAY_RING ? R.n_replay : REPLAY_RING)];
                struct payload pl = rr->pl;
                uint32_t to = (uint32_t)sim_rng_below(rng, R.n);

                pl.sent_at = sim_now(R.s);
                if (to != rr->from) {
                        sim_app_send(R.s, rr->from, to, &pl, sizeof(pl));
                        R.replayed++;
                }
        } else if (dice < 82) {
                /* A correlated failure: a majority of voters crash and come straight back. */
                for (uint32_t k = 0; k < R.voters / 2 + 1; k++) {
                        uint32_t v = (uint32_t)sim_rng_below(rng, R.voters);

                        if (sim_node_state(R.s, v) == SIM_NODE_UP) {
                                node_crash(v);
                                node_restart(v);
                        }
                }
                R.bounces++;
        }
        /* else: nothing this time */
}

static int run_cluster(uint64_t seed, uint32_t voters, uint32_t nonvoters, uint64_t duration) {
        struct sim_params p;
        struct sim_app_ops ops = { .receive = app_receive, .tick = app_tick, .deadline = app_deadline };
        struct sim_rng *rng;
        uint64_t end, next_calm;
        int ret;

        memset(&R, 0, sizeof(R));
        R.n = voters + nonvoters;
        R.voters = voters;
        election_config_defaults(&R.cfg);
        sim_params_default(&p, "sim_election", seed, R.n);
        p.app_only = true;
        /* Some links are slow (up to 20 ms): votes and acks race with timers. */
        p.latency_spread_us = 20 * MS;
        p.jitter_us = 5 * MS;
        if (sim_new(&p, &R.s) < 0)
                return 1;
        sim_on_app(R.s, &ops, NULL);
        for (uint32_t i = 0; i < R.n; i++) {
                struct enode *n = &R.node[i];

                snprintf(n->name, sizeof(n->name), "n%u", i);
                n->role = i >= voters ? ELECTION_ROLE_NONVOTER : (i == 1 && voters >= 5) ? ELECTION_ROLE_WITNESS
                                                                                          : ELECTION_ROLE_VOTER;
                n->iv = -1;
                sim_rng_seed(&n->rng, seed, UINT64_C(1000) + i);
                R.members[i] = (struct election_member) { .name = n->name, .role = n->role };
        }
        rng = sim_scenario_rng(R.s);
        for (uint32_t i = 0; i < R.n && !sim_failed(R.s); i++) {
                sim_run_for(R.s, sim_rng_below(rng, 500 * MS));
                if (node_boot(i) < 0 || sim_start(R.s, i, -1) < 0)
                        sim_fail(R.s, "n%u: start failed", i);
        }
        /* The first election counts as quorum returning. */
        calm();
        end = sim_now(R.s) + duration;
        next_calm = sim_now(R.s) + 30 * SEC + sim_rng_below(rng, 60 * SEC);
        while (sim_now(R.s) < end && !sim_failed(R.s)) {
                sim_run_for(R.s, 100 * MS + sim_rng_below(rng, 4 * SEC));
                if (sim_failed(R.s))
                        break;
                if (sim_now(R.s) >= next_calm) {
                        calm();
                        sim_run_for(R.s, sim_rng_below(rng, 10 * SEC));
                        next_calm = sim_now(R.s) + 30 * SEC + sim_rng_below(rng, 60 * SEC);
                } else {
                        chaos_step();
                }
        }
        if (!sim_failed(R.s))
                calm();
        ret = sim_failed(R.s) ? 1 : 0;
        if (!ret) {
                uint64_t p50 = sim_percentile(R.ttl, R.n_ttl, 50), p99 = sim_percentile(R.ttl, R.n_ttl, 99);

                printf("sim_election: %u voters + %u non-voters, %" PRIu64 " s: %" PRIu64 " elections, max term %" PRIu64
                       ", %" PRIu64 " calms: %zu leaderless, time to leader p50 %.3f s p99 %.3f s max %.3f s; %" PRIu64
                       " crashes, %" PRIu64 " restarts (%" PRIu64 " majority bounces), %" PRIu64 " pauses, %" PRIu64
                       " partitions; %" PRIu64 " orders acted on, %" PRIu64 " old heartbeats replayed, %" PRIu64
                       " stale messages rejected\n",
                       voters, nonvoters, duration / SEC, R.elections, max_term(), R.n_ttl + R.calm_with_leader, R.n_ttl,
                       (double)p50 / 1e6,
                       (double)p99 / 1e6, (double)sim_percentile(R.ttl, R.n_ttl, 100) / 1e6, R.crashes, R.restarts,
                       R.bounces, R.pauses, R.partitions, R.heartbeats_accepted, R.replayed, R.stale_rejected);
        }
        for (uint32_t i = 0; i < R.n; i++)
                election_free(R.node[i].e);
        sim_free(R.s);
        free(R.leader_of_term);
        free(R.iv);
        free(R.ttl);
        memset(&R, 0, sizeof(R));
        return ret;
}

static int run(uint64_t seed) {
        uint64_t d = sim_scaled(3000 * SEC, 300 * SEC);

        if (run_cluster(seed, 3, 2, d))
                return 1;
        return run_cluster(seed, 5, 2, d);
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2, 3, 4, 5, 0xe1ec7, 0xdeadbeef, 42, 0x5eed, 1000003 };

        return sim_main("sim_election", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
