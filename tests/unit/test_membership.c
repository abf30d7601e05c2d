/*
 * Tests for the SWIM + Lifeguard membership core. Two kinds of test:
 *
 *  - one core driven by hand: the test decodes every packet it sends and
 *    answers (or not) exactly as the case needs, so times and counts are
 *    exact;
 *  - a few cores on a tiny in-test router: a virtual clock, a packet queue
 *    with a fixed latency, crashed nodes and cut links, and push-pull done
 *    synchronously.
 *
 * Everything is seeded; nothing depends on the machine's speed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/membership.h"
#include "unit.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)
#define T0 (1000 * SEC) /* a monotonic clock rarely starts at 0 */

/* --- helpers --------------------------------------------------------------- */

static uint64_t splitmix(void *ctx) {
        uint64_t *s = ctx, z = (*s += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t rng_state[64];

static struct wire_addr addr_of(unsigned port) {
        static const uint8_t lo[4] = { 127, 0, 0, 1 };

        return wire_addr_ipv4(lo, (uint16_t)port);
}

static struct membership *node_new_cfg(const char *name, unsigned port, const struct membership_config *cfg) {
        struct membership *m = NULL;
        struct wire_addr a = addr_of(port);
        struct membership_rng rng = { splitmix, &rng_state[port % 64] };

        rng_state[port % 64] = port * UINT64_C(7919);
        CU_ASSERT_EQUAL_FATAL(membership_new(cfg, name, &a, 0, NULL, 0, &rng, &m), 0);
        return m;
}

static struct membership *node_new(const char *name, unsigned port) {
        struct membership_config cfg;

        CU_ASSERT_EQUAL_FATAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &cfg), 0);
        return node_new_cfg(name, port, &cfg);
}

/* What one core emitted, decoded. */
#define CAP_SENDS 2048
#define CAP_EVENTS 512
struct capture {
        size_t n_send;
        struct {
                struct wire_addr to;
                uint8_t type;
                size_t len;
                uint8_t buf[WIRE_BUDGET_DEFAULT];
        } send[CAP_SENDS];
        size_t n_event;
        struct membership_output event[CAP_EVENTS];
        size_t n_pushpull;
        struct wire_addr pushpull[64];
        bool pushpull_join[64];
        size_t n_persist_self;
        size_t n_persist_member;
};

static struct capture *cap_new(void) {
        struct capture *c = calloc(1, sizeof(*c));

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        return c;
}

static void drain(struct membership *m, struct capture *c) {
        const struct membership_output *o;
        size_t n = membership_outputs(m, &o);

        for (size_t i = 0; i < n; i++) {
                switch (o[i].type) {
                case MEMBERSHIP_OUT_SEND:
                        CU_ASSERT_FATAL(o[i].send.len <= WIRE_BUDGET_DEFAULT);
                        if (c && c->n_send < CAP_SENDS) {
                                c->send[c->n_send].to = o[i].send.to;
                                c->send[c->n_send].type = o[i].send.msg_type;
                                c->send[c->n_send].len = o[i].send.len;
                                memcpy(c->send[c->n_send].buf, o[i].send.data, o[i].send.len);
                                c->n_send++;
                        }
                        break;
                case MEMBERSHIP_OUT_EVENT:
                        if (c && c->n_event < CAP_EVENTS)
                                c->event[c->n_event++] = o[i];
                        break;
                case MEMBERSHIP_OUT_PUSHPULL:
                        if (c && c->n_pushpull < 64) {
                                c->pushpull_join[c->n_pushpull] = o[i].pushpull.join;
                                c->pushpull[c->n_pushpull++] = o[i].pushpull.to;
                        }
                        break;
                case MEMBERSHIP_OUT_PERSIST:
                        if (c && o[i].persist.what == MEMBERSHIP_PERSIST_SELF)
                                c->n_persist_self++;
                        else if (c)
                                c->n_persist_member++;
                        break;
                }
        }
        membership_outputs_clear(m);
}

static void cap_reset(struct capture *c) {
        c->n_send = c->n_event = c->n_pushpull = c->n_persist_self = c->n_persist_member = 0;
}

static int decode_send(const struct capture *c, size_t i, struct wire_msg *msg) {
        return wire_decode(c->send[i].buf, c->send[i].len, msg);
}

/* The last sent message of a type (decoded into *msg), or -1. */
static ssize_t find_send(const struct capture *c, uint8_t type, struct wire_msg *msg) {
        for (size_t i = c->n_send; i-- > 0;)
                if (c->send[i].type == type) {
                        CU_ASSERT_EQUAL_FATAL(decode_send(c, i, msg), 0);
                        return (ssize_t)i;
                }
        return -1;
}

static size_t count_events(const struct capture *c, enum event_kind kind, const char *name) {
        size_t n = 0;

        for (size_t i = 0; i < c->n_event; i++)
                if (c->event[i].event.kind == kind && (!name || strcmp(c->event[i].event.name, name) == 0))
                        n++;
        return n;
}

static const struct membership_output *last_event(const struct capture *c, enum event_kind kind) {
        for (size_t i = c->n_event; i-- > 0;)
                if (c->event[i].event.kind == kind)
                        return &c->event[i];
        return NULL;
}

/* Feeds one gossip packet carrying one update. */
static void feed(struct membership *m, uint64_t now, enum wire_state kind, const char *name, unsigned port,
                 uint64_t inc, const char *from) {
        static struct wire_msg msg;
        struct wire_addr src = addr_of(9);

        msg = (struct wire_msg){ .type = WIRE_MSG_GOSSIP, .n_updates = 1 };
        msg.updates[0] = (struct wire_update){ .kind = (uint8_t)kind, .name = name, .name_len = (uint8_t)strlen(name),
                                               .incarnation = inc };
        if (kind == WIRE_STATE_ALIVE)
                msg.updates[0].addr = addr_of(port);
        if (kind == WIRE_STATE_SUSPECT || kind == WIRE_STATE_DEAD) {
                msg.updates[0].from = from;
                msg.updates[0].from_len = (uint8_t)strlen(from);
        }
        CU_ASSERT_EQUAL_FATAL(membership_receive(m, now, &src, &msg), 0);
}

static void send_simple(struct membership *m, uint64_t now, unsigned from_port, enum wire_msg_type type, uint32_t seq,
                        const char *target, unsigned target_port) {
        static struct wire_msg msg;
        struct wire_addr src = addr_of(from_port);

        msg = (struct wire_msg){ .type = (uint8_t)type, .seq = seq };
        if (target) {
                msg.target = target;
                msg.target_len = (uint8_t)strlen(target);
                msg.target_addr = addr_of(target_port);
        }
        CU_ASSERT_EQUAL_FATAL(membership_receive(m, now, &src, &msg), 0);
}

static enum membership_state state_of(const struct membership *m, const char *name) {
        struct membership_member_info info;

        if (membership_member_get(m, name, &info) < 0)
                return 0;
        return info.state;
}

static uint64_t inc_of(const struct membership *m, const char *name) {
        struct membership_member_info info;

        CU_ASSERT_EQUAL_FATAL(membership_member_get(m, name, &info), 0);
        return info.incarnation;
}

/* Does any update in the sent packets name `name` with `kind`? Returns the count. */
static size_t count_updates(const struct capture *c, enum wire_state kind, const char *name, uint64_t inc) {
        static struct wire_msg msg;
        size_t n = 0;

        for (size_t i = 0; i < c->n_send; i++) {
                CU_ASSERT_EQUAL_FATAL(decode_send(c, i, &msg), 0);
                for (size_t j = 0; j < msg.n_updates; j++)
                        if (msg.updates[j].kind == kind && msg.updates[j].name_len == strlen(name) &&
                            memcmp(msg.updates[j].name, name, msg.updates[j].name_len) == 0 &&
                            msg.updates[j].incarnation == inc)
                                n++;
        }
        return n;
}

/* Ticks one core at each deadline up to `until`; returns the time reached. */
static uint64_t run_core(struct membership *m, struct capture *c, uint64_t now, uint64_t until) {
        for (;;) {
                uint64_t d = membership_next_deadline(m);

                if (d > until)
                        return until;
                if (d > now)
                        now = d;
                membership_tick(m, now);
                drain(m, c);
        }
}

/* --- config ---------------------------------------------------------------- */

static void test_profiles(void) {
        struct membership_config c;
        const char *why = "x";

        for (int p = 0; p < _MEMBERSHIP_PROFILE_MAX; p++) {
                CU_ASSERT_EQUAL(membership_profile_defaults((enum membership_profile)p, &c), 0);
                CU_ASSERT_EQUAL(membership_config_validate(&c, &why), 0);
                CU_ASSERT_PTR_NULL(why);
                CU_ASSERT_EQUAL(
                        membership_profile_from_string(membership_profile_to_string((enum membership_profile)p)), p);
        }
        CU_ASSERT_EQUAL(membership_profile_defaults((enum membership_profile)7, &c), -EINVAL);
        CU_ASSERT_EQUAL((int)membership_profile_from_string("lan2"), -1);
        /* The lan numbers the detection aim rests on (doc/PROTOCOL.md "Timing"). */
        CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &c), 0);
        CU_ASSERT_EQUAL(c.probe_interval_us, 200 * MS);
        CU_ASSERT_EQUAL(c.probe_timeout_us, 100 * MS);
        CU_ASSERT_EQUAL(c.indirect_checks, 3);
        CU_ASSERT_EQUAL(c.suspicion_mult, 2);
        CU_ASSERT_EQUAL(c.suspicion_max_timeout_mult, 4);
        CU_ASSERT_EQUAL(c.packet_budget, 1280);
}

static void test_config_invalid(void) {
        static const struct {
                const char *what;
                size_t off;
                uint64_t value;
                bool is_size;
        } cases[] = {
                { "probe_interval 5ms", offsetof(struct membership_config, probe_interval_us), 5 * MS, false },
                { "probe_timeout == interval", offsetof(struct membership_config, probe_timeout_us), 200 * MS, false },
                { "left_reap 0", offsetof(struct membership_config, left_reap_us), 0, false },
                { "pushpull 10ms", offsetof(struct membership_config, pushpull_interval_us), 10 * MS, false },
                { "budget 100", offsetof(struct membership_config, packet_budget), 100, true },
                { "budget 70000", offsetof(struct membership_config, packet_budget), 70000, true },
                { "max_members 1", offsetof(struct membership_config, max_members), 1, true },
                { "max_members 10001", offsetof(struct membership_config, max_members), 10001, true },
        };
        struct membership_config c;
        const char *why;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &c), 0);
                if (cases[i].is_size)
                        *(size_t *)((char *)&c + cases[i].off) = (size_t)cases[i].value;
                else
                        *(uint64_t *)((char *)&c + cases[i].off) = cases[i].value;
                why = NULL;
                CU_ASSERT_EQUAL(membership_config_validate(&c, &why), -EINVAL);
                CU_ASSERT_PTR_NOT_NULL(why);
        }
        CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &c), 0);
        c.awareness_max = 0;
        CU_ASSERT_EQUAL(membership_config_validate(&c, NULL), -EINVAL);
        c.awareness_max = 8;
        c.indirect_checks = 17;
        CU_ASSERT_EQUAL(membership_config_validate(&c, NULL), -EINVAL);
}

static void test_new_invalid(void) {
        struct membership_config c;
        struct membership *m = NULL;
        struct wire_addr a = addr_of(7000), bad = {};
        uint64_t seed = 1;
        struct membership_rng rng = { splitmix, &seed }, norng = { NULL, NULL };
        uint8_t meta[WIRE_META_MAX + 1] = {};

        CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &c), 0);
        CU_ASSERT_EQUAL(membership_new(&c, "bad name", &a, 0, NULL, 0, &rng, &m), -EINVAL);
        CU_ASSERT_EQUAL(membership_new(&c, "", &a, 0, NULL, 0, &rng, &m), -EINVAL);
        CU_ASSERT_EQUAL(membership_new(&c, "n1", &bad, 0, NULL, 0, &rng, &m), -EINVAL);
        CU_ASSERT_EQUAL(membership_new(&c, "n1", &a, 0, meta, sizeof(meta), &rng, &m), -EINVAL);
        CU_ASSERT_EQUAL(membership_new(&c, "n1", &a, 0, NULL, 0, &norng, &m), -EINVAL);
        CU_ASSERT_PTR_NULL(m);
        CU_ASSERT_EQUAL(membership_new(&c, "n1", &a, 42, meta, 3, &rng, &m), 0);
        CU_ASSERT_EQUAL(membership_incarnation(m), 42);
        CU_ASSERT_STRING_EQUAL(membership_name(m), "n1");
        CU_ASSERT_EQUAL(membership_next_deadline(m), 0);        /* not started: tick now */
        membership_free(m);
        membership_free(NULL);
}

/* --- one core by hand -------------------------------------------------------- */

/*
 * A core "a" (port 7000) that knows members named in `names` (ports 7001..),
 * started at T0 with its outputs drained.
 */
static struct membership *core_with(const char *const *names, size_t n, struct capture *c) {
        struct membership *m = node_new("a", 7000);

        membership_tick(m, T0);
        for (size_t i = 0; i < n; i++)
                feed(m, T0, WIRE_STATE_ALIVE, names[i], 7001 + (unsigned)i, 1, NULL);
        drain(m, c);
        return m;
}

/*
 * Runs the core for 3 s answering every ping, so the join news has drained,
 * everyone is alive and the health score is 0; returns the time reached.
 */
static uint64_t settle(struct membership *m, struct capture *c, uint64_t now) {
        static struct wire_msg ping;
        uint64_t until = now + 3 * SEC;

        for (;;) {
                uint64_t d = membership_next_deadline(m);

                if (d > until)
                        break;
                cap_reset(c);
                membership_tick(m, d);
                drain(m, c);
                now = d;
                for (size_t j = 0; j < c->n_send; j++)
                        if (c->send[j].type == WIRE_MSG_PING) {
                                CU_ASSERT_EQUAL_FATAL(decode_send(c, j, &ping), 0);
                                send_simple(m, d, c->send[j].to.port, WIRE_MSG_ACK, ping.seq, NULL, 0);
                        }
                drain(m, c);
        }
        CU_ASSERT_EQUAL(membership_health_score(m), 0);
        cap_reset(c);
        return now;
}

static unsigned port_of(const struct wire_addr *a) {
        return a->port;
}

static void test_probe_ack(void) {
        static const char *const names[] = { "b", "c", "d" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 3, c);
        struct membership_counters k;
        struct membership_member_info info;
        static struct wire_msg ping;
        uint64_t now = T0, t_ping;
        ssize_t i;

        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_JOINED, NULL), 3);
        CU_ASSERT_EQUAL(c->n_persist_member, 3);
        now = settle(m, c, now);
        /* Run to the next probe. */
        cap_reset(c);
        while (find_send(c, WIRE_MSG_PING, &ping) < 0) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                drain(m, c);
        }
        t_ping = now;
        i = find_send(c, WIRE_MSG_PING, &ping);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_EQUAL(ping.target_len, 1);
        CU_ASSERT_EQUAL(port_of(&c->send[i].to), 7001u + (unsigned)(ping.target[0] - 'b'));
        /* The next deadline is the direct probe timeout. */
        CU_ASSERT_EQUAL(membership_next_deadline(m), t_ping + 100 * MS);
        /* The ack comes back after 3 ms. */
        send_simple(m, t_ping + 3 * MS, c->send[i].to.port, WIRE_MSG_ACK, ping.seq, NULL, 0);
        drain(m, c);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.probes, k.probes_acked);
        CU_ASSERT_EQUAL(k.probes_failed, 0);
        char target[2] = { ping.target[0], 0 };
        CU_ASSERT_EQUAL(membership_member_get(m, target, &info), 0);
        /* Settling acked it instantly (1 µs floor); the EWMA weighs the new 3 ms by 1/8. */
        CU_ASSERT_EQUAL(info.rtt_us, (7 * 1 + 3 * MS) / 8);
        /* Acked: nothing until the next probe one interval after the first. */
        CU_ASSERT_EQUAL(membership_next_deadline(m), t_ping + 200 * MS);
        /* A late duplicate ack is ignored. */
        send_simple(m, t_ping + 4 * MS, 7001, WIRE_MSG_ACK, ping.seq, NULL, 0);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.msgs_ignored, 1);
        /* Probing is round-robin: any 3 consecutive probes within a round hit 3 members... */
        cap_reset(c);
        settle(m, c, t_ping + 4 * MS);
        struct membership_counters k2;
        membership_get_counters(m, &k2);
        CU_ASSERT_TRUE(k2.probes - k.probes >= 14);     /* 3 s / 200 ms */
        CU_ASSERT_EQUAL(k2.probes_failed, 0);
        /* ...and every member is probed about equally: 3 s of probes over 3 members. */
        for (const char *const *n = names; n < names + 3; n++) {
                CU_ASSERT_EQUAL(membership_member_get(m, *n, &info), 0);
                CU_ASSERT_EQUAL(info.state, MEMBERSHIP_ALIVE);
        }
        free(c);
        membership_free(m);
}

/* A ping for us is acked with the same seq; one for another name is ignored. */
static void test_ping_answer(void) {
        struct capture *c = cap_new();
        struct membership *m = core_with(NULL, 0, c);
        static struct wire_msg ack;
        struct membership_counters k;

        cap_reset(c);
        send_simple(m, T0 + MS, 7005, WIRE_MSG_PING, 777, "a", 0);
        drain(m, c);
        CU_ASSERT_EQUAL_FATAL(c->n_send, 1);
        CU_ASSERT_EQUAL(c->send[0].to.port, 7005);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_ACK, &ack) >= 0);
        CU_ASSERT_EQUAL(ack.seq, 777);
        send_simple(m, T0 + MS, 7005, WIRE_MSG_PING, 778, "zz", 0);
        drain(m, c);
        CU_ASSERT_EQUAL(c->n_send, 1);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.msgs_ignored, 1);
        free(c);
        membership_free(m);
}

/*
 * A ping from an address no member has: after exactly 10 probe intervals
 * (2 s in lan) of still not knowing it, one push-pull with that address;
 * none when the prober became known meanwhile; none for a stranger noted
 * within 2 s after the last check (the rate limit).
 */
static void test_stranger_pushpull(void) {
        struct capture *c = cap_new();
        struct membership *m = core_with(NULL, 0, c);
        struct membership_counters k;
        uint64_t t = T0 + MS, t2;

        cap_reset(c);
        send_simple(m, t, 7005, WIRE_MSG_PING, 1, "a", 0);
        drain(m, c);
        CU_ASSERT_EQUAL(c->n_send, 1);
        CU_ASSERT_EQUAL(c->n_pushpull, 0);
        run_core(m, c, t, t + 2 * SEC - 1);
        CU_ASSERT_EQUAL(c->n_pushpull, 0);
        run_core(m, c, t + 2 * SEC - 1, t + 2 * SEC);
        CU_ASSERT_EQUAL_FATAL(c->n_pushpull, 1);
        CU_ASSERT_EQUAL(port_of(&c->pushpull[0]), 7005);
        CU_ASSERT_FALSE(c->pushpull_join[0]);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.strangers_synced, 1);

        /* Inside the rate limit: not even noted. */
        cap_reset(c);
        send_simple(m, t + 2 * SEC + MS, 7006, WIRE_MSG_PING, 2, "a", 0);
        drain(m, c);
        run_core(m, c, t + 2 * SEC + MS, t + 4 * SEC - MS);
        CU_ASSERT_EQUAL(c->n_pushpull, 0);

        /*
         * Noted, then its alive arrives before the check: no push-pull
         * (settle() answers our pings of it, so it stays alive).
         */
        t2 = t + 4 * SEC;
        send_simple(m, t2, 7006, WIRE_MSG_PING, 3, "a", 0);
        drain(m, c);
        feed(m, t2 + SEC, WIRE_STATE_ALIVE, "c", 7006, 1, NULL);
        drain(m, c);
        t2 = settle(m, c, t2 + SEC);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.strangers_synced, 1);

        /* A known prober is never a stranger. */
        send_simple(m, t2, 7006, WIRE_MSG_PING, 4, "a", 0);
        drain(m, c);
        settle(m, c, t2);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.strangers_synced, 1);
        CU_ASSERT_EQUAL(k.pushpulls_started, 1);
        free(c);
        membership_free(m);
}

/*
 * The full failure path with exact times: no ack -> ping-req through the two
 * other members at +100ms -> one nack -> suspect at +200ms -> dead exactly
 * one suspicion timeout later (n = 3: k = 0, so timeout = min = 2 * 200ms).
 */
static void test_suspect_then_dead(void) {
        static const char *const names[] = { "b", "c" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 2, c);
        static struct wire_msg ping, preq;
        uint64_t t_ping, now = T0;
        const struct membership_output *ev;
        struct membership_counters k;
        char target[2] = {};
        unsigned relay_port;
        ssize_t i;

        now = settle(m, c, now);
        while (find_send(c, WIRE_MSG_PING, &ping) < 0) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                drain(m, c);
        }
        t_ping = now;
        target[0] = ping.target[0];
        CU_ASSERT_EQUAL_FATAL(membership_next_deadline(m), t_ping + 100 * MS);
        cap_reset(c);
        membership_tick(m, t_ping + 100 * MS - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(c->n_send, 0);
        membership_tick(m, t_ping + 100 * MS);
        drain(m, c);
        /* One relay: the only other member. */
        CU_ASSERT_EQUAL_FATAL(c->n_send, 1);
        i = find_send(c, WIRE_MSG_PING_REQ, &preq);
        CU_ASSERT_FATAL(i == 0);
        CU_ASSERT_EQUAL(preq.seq, ping.seq);
        CU_ASSERT_EQUAL(preq.target_len, 1);
        CU_ASSERT_EQUAL(preq.target[0], target[0]);
        CU_ASSERT_EQUAL(preq.target_addr.port, 7001u + (unsigned)(target[0] - 'b'));
        relay_port = c->send[0].to.port;
        CU_ASSERT_NOT_EQUAL(relay_port, preq.target_addr.port);
        /* The relay's nack arrives. */
        send_simple(m, t_ping + 180 * MS, relay_port, WIRE_MSG_NACK, ping.seq, NULL, 0);
        drain(m, c);
        CU_ASSERT_EQUAL(membership_next_deadline(m), t_ping + 200 * MS);
        membership_tick(m, t_ping + 200 * MS - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, target), MEMBERSHIP_ALIVE);
        cap_reset(c);
        membership_tick(m, t_ping + 200 * MS);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, target), MEMBERSHIP_SUSPECT);
        ev = last_event(c, EVENT_MEMBER_SUSPECT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_STRING_EQUAL(ev->event.name, target);
        CU_ASSERT_EQUAL(ev->event.from_state, MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(ev->event.to_state, MEMBERSHIP_SUSPECT);
        char want[MEMBERSHIP_CAUSE_MAX];
        snprintf(want, sizeof(want), "no ack from %s after 1 indirect probes (1 nacks)", target);
        CU_ASSERT_STRING_EQUAL(ev->event.cause, want);
        /* Lifeguard: the relay answered, so our own health is not in doubt. */
        CU_ASSERT_EQUAL(membership_health_score(m), 0);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.probes_failed, 1);
        CU_ASSERT_EQUAL(k.nacks_received, 1);
        CU_ASSERT_EQUAL(k.suspicions, 1);
        /* The suspicion is gossiped (to the live members, the suspect too). */
        CU_ASSERT_TRUE(count_updates(c, WIRE_STATE_SUSPECT, target, 1) >= 1);

        /* Keep the other member answering so it stays alive; the suspect never answers. */
        now = t_ping + 200 * MS;
        uint64_t dead_at = now + 400 * MS;
        for (;;) {
                uint64_t d = membership_next_deadline(m);

                CU_ASSERT_FATAL(d <= dead_at);
                cap_reset(c);
                membership_tick(m, d);
                drain(m, c);
                if (state_of(m, target) == MEMBERSHIP_DEAD) {
                        CU_ASSERT_EQUAL(d, dead_at);
                        break;
                }
                for (size_t j = 0; j < c->n_send; j++) {
                        if (c->send[j].type == WIRE_MSG_PING && c->send[j].to.port == relay_port) {
                                CU_ASSERT_EQUAL_FATAL(decode_send(c, j, &ping), 0);
                                send_simple(m, d, relay_port, WIRE_MSG_ACK, ping.seq, NULL, 0);
                        }
                }
                drain(m, c);
        }
        ev = last_event(c, EVENT_MEMBER_DEAD);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_EQUAL(ev->event.from_state, MEMBERSHIP_SUSPECT);
        CU_ASSERT_STRING_EQUAL(ev->event.cause, "suspected by a; no refutation within 0.400s (0 of 0 confirmations)");
        CU_ASSERT_TRUE(count_updates(c, WIRE_STATE_DEAD, target, 1) >= 1);
        free(c);
        membership_free(m);
}

/* Lifeguard: the suspicion timeout starts at max and shrinks with independent confirmations. */
static void test_suspicion_confirmations(void) {
        static const char *const names[] = { "b", "c", "d", "e" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 4, c);
        uint64_t now = T0 + MS;
        /* n = 5 live: min = 2 * 1 * 200ms = 400ms, max = 4 * min, k = 2. */
        uint64_t min = 400 * MS, max = 1600 * MS;
        /* max - (max - min) * log(2) / log(3) */
        uint64_t one = max - (uint64_t)((double)(max - min) * 0.63092975357);

        feed(m, now, WIRE_STATE_SUSPECT, "e", 0, 1, "b");
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_SUSPECT);
        /* Only the suspicion's deadline can be earliest here: the probe timer runs too, so check >= */
        struct membership_member_info info;
        CU_ASSERT_EQUAL(membership_member_get(m, "e", &info), 0);
        CU_ASSERT_EQUAL(info.state_changed_us, now);

        /* Walk time to just before max: without confirmations it is still suspect. */
        membership_tick(m, now + one);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_SUSPECT);
        /* A second, independent suspector: the deadline drops to start + `one`, already passed. */
        feed(m, now + one + 10 * MS, WIRE_STATE_SUSPECT, "e", 0, 1, "c");
        drain(m, c);
        CU_ASSERT_TRUE(membership_next_deadline(m) <= now + one + 50);
        CU_ASSERT_TRUE(membership_next_deadline(m) >= now + one - 50);
        membership_tick(m, now + one + 10 * MS);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_DEAD);
        free(c);
        membership_free(m);

        /* Again, with the same suspector twice (no confirmation) and then two new ones. */
        c = cap_new();
        m = core_with(names, 4, c);
        feed(m, now, WIRE_STATE_SUSPECT, "e", 0, 1, "b");
        feed(m, now + 100 * MS, WIRE_STATE_SUSPECT, "e", 0, 1, "b");
        drain(m, c);
        membership_tick(m, now + max - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_SUSPECT);
        membership_free(m);
        free(c);

        c = cap_new();
        m = core_with(names, 4, c);
        feed(m, now, WIRE_STATE_SUSPECT, "e", 0, 1, "b");
        feed(m, now + 100 * MS, WIRE_STATE_SUSPECT, "e", 0, 1, "c");
        feed(m, now + 200 * MS, WIRE_STATE_SUSPECT, "e", 0, 1, "d");
        drain(m, c);
        /* Two confirmations = k: the minimum, measured from the first suspicion. */
        membership_tick(m, now + min - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_SUSPECT);
        membership_tick(m, now + min);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "e"), MEMBERSHIP_DEAD);
        const struct membership_output *ev = last_event(c, EVENT_MEMBER_DEAD);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_STRING_EQUAL(ev->event.cause, "suspected by b; no refutation within 0.400s (2 of 2 confirmations)");
        membership_free(m);
        free(c);
}

/* A member hearing it is suspected or dead raises its incarnation and says so. */
static void test_refutation(void) {
        static const char *const names[] = { "b" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 1, c);
        const struct membership_output *ev;
        struct membership_counters k;

        cap_reset(c);
        feed(m, T0 + MS, WIRE_STATE_SUSPECT, "a", 0, 0, "b");
        drain(m, c);
        CU_ASSERT_EQUAL(membership_incarnation(m), 1);
        ev = last_event(c, EVENT_MEMBER_REFUTED);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_STRING_EQUAL(ev->event.name, "a");
        CU_ASSERT_EQUAL(ev->event.incarnation, 1);
        CU_ASSERT_STRING_EQUAL(ev->event.cause, "suspected at incarnation 0 by b; now 1");
        CU_ASSERT_EQUAL(c->n_persist_self, 1);
        CU_ASSERT_EQUAL(membership_health_score(m), 1);
        /* The refutation goes out on the next packet. */
        cap_reset(c);
        run_core(m, c, T0 + MS, T0 + 400 * MS);
        CU_ASSERT_TRUE(count_updates(c, WIRE_STATE_ALIVE, "a", 1) >= 1);
        /* Dead at a higher incarnation: go above it. */
        feed(m, T0 + 500 * MS, WIRE_STATE_DEAD, "a", 0, 5, "b");
        CU_ASSERT_EQUAL(membership_incarnation(m), 6);
        /* Stale news about an older incarnation changes nothing. */
        feed(m, T0 + 501 * MS, WIRE_STATE_SUSPECT, "a", 0, 3, "b");
        feed(m, T0 + 502 * MS, WIRE_STATE_LEFT, "a", 0, 5, NULL);
        CU_ASSERT_EQUAL(membership_incarnation(m), 6);
        /* Left at our incarnation while we run: refuted too. */
        feed(m, T0 + 503 * MS, WIRE_STATE_LEFT, "a", 0, 6, NULL);
        CU_ASSERT_EQUAL(membership_incarnation(m), 7);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.refutations, 3);
        free(c);
        membership_free(m);
}

/* Precedence: for one incarnation left > dead > suspect > alive; higher incarnations win. */
static void test_precedence(void) {
        static const struct {
                enum wire_state kind;
                uint64_t inc;
                enum membership_state want;
                uint64_t want_inc;
        } steps[] = {
                { WIRE_STATE_SUSPECT, 3, MEMBERSHIP_SUSPECT, 3 },
                { WIRE_STATE_ALIVE, 3, MEMBERSHIP_SUSPECT, 3 },  /* equal alive does not refute */
                { WIRE_STATE_ALIVE, 2, MEMBERSHIP_SUSPECT, 3 },
                { WIRE_STATE_DEAD, 3, MEMBERSHIP_DEAD, 3 },
                { WIRE_STATE_ALIVE, 3, MEMBERSHIP_DEAD, 3 },     /* a late alive never revives */
                { WIRE_STATE_ALIVE, 1, MEMBERSHIP_DEAD, 3 },
                { WIRE_STATE_SUSPECT, 3, MEMBERSHIP_DEAD, 3 },
                { WIRE_STATE_SUSPECT, 9, MEMBERSHIP_DEAD, 3 },   /* suspect never overrides dead */
                { WIRE_STATE_ALIVE, 4, MEMBERSHIP_ALIVE, 4 },    /* the member refuted */
                { WIRE_STATE_DEAD, 3, MEMBERSHIP_ALIVE, 4 },     /* old news */
                { WIRE_STATE_LEFT, 4, MEMBERSHIP_LEFT, 4 },
                { WIRE_STATE_ALIVE, 4, MEMBERSHIP_LEFT, 4 },     /* left is final for its incarnation */
                { WIRE_STATE_DEAD, 4, MEMBERSHIP_LEFT, 4 },
                { WIRE_STATE_SUSPECT, 5, MEMBERSHIP_LEFT, 4 },
                { WIRE_STATE_ALIVE, 5, MEMBERSHIP_ALIVE, 5 },    /* rejoined */
        };
        static const char *const names[] = { "x", "y", "z" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 3, c);

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                feed(m, T0 + MS, steps[i].kind, "x", 7001, steps[i].inc, "y");
                drain(m, c);
                if (state_of(m, "x") != steps[i].want || inc_of(m, "x") != steps[i].want_inc)
                        fprintf(stderr, "step %zu: state %d inc %llu\n", i, state_of(m, "x"),
                                (unsigned long long)inc_of(m, "x"));
                CU_ASSERT_EQUAL(state_of(m, "x"), steps[i].want);
                CU_ASSERT_EQUAL(inc_of(m, "x"), steps[i].want_inc);
        }
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_JOINED, "x"), 2);     /* first sight, rejoin */
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_ALIVE, "x"), 1);
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_DEAD, "x"), 1);
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_LEFT, "x"), 1);
        /* Unknown members are not created from suspect/dead/left news. */
        feed(m, T0 + MS, WIRE_STATE_DEAD, "ghost", 0, 1, "y");
        feed(m, T0 + MS, WIRE_STATE_LEFT, "ghost2", 0, 1, NULL);
        CU_ASSERT_EQUAL(state_of(m, "ghost"), 0);
        CU_ASSERT_EQUAL(state_of(m, "ghost2"), 0);
        free(c);
        membership_free(m);
}

/* Relaying a ping-req: ack forwarded with the requester's seq, or a nack at 80% of the timeout. */
static void test_relay(void) {
        static const char *const names[] = { "b", "c" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 2, c);
        static struct wire_msg msg;
        uint64_t now = T0 + 10 * MS;
        ssize_t i;

        /* b asks us to probe c. */
        cap_reset(c);
        send_simple(m, now, 7001, WIRE_MSG_PING_REQ, 4242, "c", 7002);
        drain(m, c);
        i = find_send(c, WIRE_MSG_PING, &msg);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_EQUAL(c->send[i].to.port, 7002);
        CU_ASSERT_EQUAL(msg.target_len, 1);
        CU_ASSERT_EQUAL(msg.target[0], 'c');
        /* c acks our ping: the ack goes to b with b's seq. */
        cap_reset(c);
        send_simple(m, now + 2 * MS, 7002, WIRE_MSG_ACK, msg.seq, NULL, 0);
        drain(m, c);
        i = find_send(c, WIRE_MSG_ACK, &msg);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_EQUAL(c->send[i].to.port, 7001);
        CU_ASSERT_EQUAL(msg.seq, 4242);

        /* Again, but c stays silent: a nack at +80ms, exactly. */
        now += SEC;
        cap_reset(c);
        send_simple(m, now, 7001, WIRE_MSG_PING_REQ, 99, "c", 7002);
        drain(m, c);
        CU_ASSERT_TRUE(membership_next_deadline(m) <= now + 80 * MS);
        membership_tick(m, now + 80 * MS - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(find_send(c, WIRE_MSG_NACK, &msg), -1);
        membership_tick(m, now + 80 * MS);
        drain(m, c);
        i = find_send(c, WIRE_MSG_NACK, &msg);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_EQUAL(c->send[i].to.port, 7001);
        CU_ASSERT_EQUAL(msg.seq, 99);
        /* A ping-req naming us is answered directly. */
        cap_reset(c);
        send_simple(m, now + 90 * MS, 7001, WIRE_MSG_PING_REQ, 5, "a", 7000);
        drain(m, c);
        CU_ASSERT_EQUAL(c->n_send, 1);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_ACK, &msg) == 0);
        CU_ASSERT_EQUAL(msg.seq, 5);
        free(c);
        membership_free(m);
}

/*
 * Lifeguard local health: each failed probe whose relays do not even nack
 * raises the score by the missing nacks; the probe interval and timeout
 * stretch by (score + 1); a direct ack lowers the score by one.
 */
static void test_lifeguard_multiplier(void) {
        static const char *const names[] = { "b", "c", "d", "e" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 4, c);
        static struct wire_msg ping;
        uint64_t now = T0, t_ping;

        now = settle(m, c, now);
        while (find_send(c, WIRE_MSG_PING, &ping) < 0) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                drain(m, c);
        }
        t_ping = now;
        /* Nobody answers anything: ping-reqs to 3 relays, no nacks. */
        membership_tick(m, t_ping + 100 * MS);
        drain(m, c);
        cap_reset(c);
        membership_tick(m, t_ping + 200 * MS);
        drain(m, c);
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_SUSPECT, NULL), 1);
        CU_ASSERT_EQUAL(membership_health_score(m), 3);
        /* The next probe started at +200ms; its timeout (400ms) and interval (800ms) are 4x. */
        uint64_t t2 = t_ping + 200 * MS;
        static struct wire_msg msg;
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_PING, &ping) >= 0);
        cap_reset(c);
        run_core(m, c, t2, t2 + 400 * MS - 1);
        CU_ASSERT_EQUAL(find_send(c, WIRE_MSG_PING_REQ, &msg), -1);
        membership_tick(m, t2 + 400 * MS);
        drain(m, c);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_PING_REQ, &msg) >= 0);
        /* An ack through a relay proves the target but says nothing about our own health. */
        send_simple(m, t2 + 450 * MS, 7001, WIRE_MSG_ACK, ping.seq, NULL, 0);
        CU_ASSERT_EQUAL(membership_health_score(m), 3);
        cap_reset(c);
        run_core(m, c, t2 + 450 * MS, t2 + 800 * MS - 1);
        CU_ASSERT_EQUAL(find_send(c, WIRE_MSG_PING, &msg), -1);
        membership_tick(m, t2 + 800 * MS);
        drain(m, c);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_PING, &ping) >= 0);
        /* A direct ack: the score falls by one, and the next interval is 3x. */
        send_simple(m, t2 + 810 * MS, 7001, WIRE_MSG_ACK, ping.seq, NULL, 0);
        CU_ASSERT_EQUAL(membership_health_score(m), 2);
        cap_reset(c);
        run_core(m, c, t2 + 810 * MS, t2 + 1600 * MS - 1);
        CU_ASSERT_EQUAL(find_send(c, WIRE_MSG_PING, &msg), -1);
        membership_tick(m, t2 + 1600 * MS);
        drain(m, c);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_PING, &ping) >= 0);
        membership_tick(m, t2 + 1600 * MS + 300 * MS - 1);
        drain(m, c);
        CU_ASSERT_EQUAL(find_send(c, WIRE_MSG_PING_REQ, &msg), -1);
        membership_tick(m, t2 + 1600 * MS + 300 * MS);
        drain(m, c);
        CU_ASSERT_TRUE(find_send(c, WIRE_MSG_PING_REQ, &msg) >= 0);
        /* The score never exceeds awareness_max - 1. */
        for (int i = 0; i < 10; i++)
                feed(m, t2 + 2 * SEC, WIRE_STATE_SUSPECT, "a", 0, membership_incarnation(m), "b");
        drain(m, c);
        CU_ASSERT_EQUAL(membership_health_score(m), 7);
        free(c);
        membership_free(m);
}

/* A tick a whole probe timeout late (a stalled loop) judges nobody. */
static void test_stall_voids_probe(void) {
        static const char *const names[] = { "b", "c" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 2, c);
        static struct wire_msg ping;
        struct membership_counters k;
        uint64_t now = T0;

        cap_reset(c);
        while (find_send(c, WIRE_MSG_PING, &ping) < 0) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                drain(m, c);
        }
        /* Paused for 3 s: the next tick comes long after the probe's end. */
        membership_tick(m, now + 3 * SEC);
        drain(m, c);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.probes_void, 1);
        CU_ASSERT_EQUAL(k.probes_failed, 0);
        CU_ASSERT_EQUAL(count_events(c, EVENT_MEMBER_SUSPECT, NULL), 0);
        CU_ASSERT_EQUAL(membership_health_score(m), 1);
        free(c);
        membership_free(m);
}

/* Each update goes out ceil(retransmit_mult * ln(n + 1)) times, then stops. */
static void test_retransmit_count(void) {
        static const struct {
                size_t members;         /* others, plus us */
                size_t want;
        } cases[] = {
                { 4, 8 },       /* n = 5: ceil(4 ln 6) = ceil(7.17) */
                { 9, 10 },      /* n = 10: ceil(4 ln 11) = ceil(9.59) */
                { 30, 14 },     /* n = 31: ceil(4 ln 32) = ceil(13.86) */
        };

        for (size_t ci = 0; ci < ELEMENTSOF(cases); ci++) {
                char names[40][8];
                const char *ptrs[40];
                struct capture *c = cap_new();
                struct membership *m;
                uint64_t now;

                for (size_t i = 0; i < cases[ci].members; i++) {
                        snprintf(names[i], sizeof(names[i]), "m%zu", i);
                        ptrs[i] = names[i];
                }
                m = core_with(ptrs, cases[ci].members, c);
                /* Let the join news drain completely (acks keep everyone alive). */
                now = T0;
                for (int round = 0; round < 400; round++) {
                        uint64_t d = membership_next_deadline(m);
                        static struct wire_msg ping;

                        cap_reset(c);
                        membership_tick(m, d);
                        drain(m, c);
                        now = d;
                        for (size_t j = 0; j < c->n_send; j++)
                                if (c->send[j].type == WIRE_MSG_PING) {
                                        CU_ASSERT_EQUAL_FATAL(decode_send(c, j, &ping), 0);
                                        send_simple(m, d, c->send[j].to.port, WIRE_MSG_ACK, ping.seq, NULL, 0);
                                }
                        drain(m, c);
                }
                /* One fresh piece of news, then count its copies until silence. */
                cap_reset(c);
                feed(m, now, WIRE_STATE_ALIVE, "m0", 7001, 9, NULL);
                drain(m, c);
                for (int round = 0; round < 200; round++) {
                        uint64_t d = membership_next_deadline(m);
                        static struct wire_msg ping;
                        size_t before = c->n_send;

                        membership_tick(m, d);
                        drain(m, c);
                        for (size_t j = before; j < c->n_send; j++)
                                if (c->send[j].type == WIRE_MSG_PING) {
                                        CU_ASSERT_EQUAL_FATAL(decode_send(c, j, &ping), 0);
                                        send_simple(m, d, c->send[j].to.port, WIRE_MSG_ACK, ping.seq, NULL, 0);
                                }
                        drain(m, c);
                }
                CU_ASSERT_EQUAL(count_updates(c, WIRE_STATE_ALIVE, "m0", 9), cases[ci].want);
                free(c);
                membership_free(m);
        }
}

/* Packets never exceed the budget, and full queues fill packets close to it. */
static void test_budget(void) {
        struct membership_config cfg;
        struct capture *c = cap_new();
        struct membership *m;
        static struct wire_msg msg;
        uint8_t meta[200];
        struct wire_addr src = addr_of(9);
        size_t near_full = 0;

        memset(meta, 'm', sizeof(meta));
        CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &cfg), 0);
        cfg.packet_budget = 600;
        m = node_new_cfg("a", 7000, &cfg);
        membership_tick(m, T0);
        /* 200 members with 200-byte metas, all news. */
        for (int i = 0; i < 200; i++) {
                char name[WIRE_NAME_MAX + 1];

                snprintf(name, sizeof(name), "member-with-a-long-name-%040d", i);
                msg = (struct wire_msg){ .type = WIRE_MSG_GOSSIP, .n_updates = 1 };
                msg.updates[0] = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .name = name,
                                                       .name_len = (uint8_t)strlen(name), .incarnation = 1,
                                                       .meta = meta, .meta_len = sizeof(meta) };
                msg.updates[0].addr = addr_of(8000 + (unsigned)i);
                CU_ASSERT_EQUAL_FATAL(membership_receive(m, T0, &src, &msg), 0);
                drain(m, c);
        }
        cap_reset(c);
        run_core(m, c, T0, T0 + 2 * SEC);
        CU_ASSERT_TRUE(c->n_send > 50);
        for (size_t i = 0; i < c->n_send; i++) {
                CU_ASSERT(c->send[i].len <= 600);
                CU_ASSERT_EQUAL(decode_send(c, i, &msg), 0);
                /* An alive update here is 1+1+64+1+7+2+200 = 276 bytes: two fit, a third would not. */
                if (c->send[i].len > 600 - 276)
                        near_full++;
        }
        CU_ASSERT(near_full >= c->n_send / 2);
        free(c);
        membership_free(m);
}

/* The member cap holds: news about more members is dropped and counted. */
static void test_member_cap(void) {
        struct membership_config cfg;
        struct capture *c = cap_new();
        struct membership *m;
        struct membership_counters k;
        struct membership_census census;

        CU_ASSERT_EQUAL(membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &cfg), 0);
        cfg.max_members = 5;
        m = node_new_cfg("a", 7000, &cfg);
        for (int i = 0; i < 10; i++) {
                char name[8];

                snprintf(name, sizeof(name), "m%d", i);
                feed(m, T0, WIRE_STATE_ALIVE, name, 7001 + (unsigned)i, 1, NULL);
        }
        drain(m, c);
        membership_census(m, &census);
        CU_ASSERT_EQUAL(census.alive, 5);
        membership_get_counters(m, &k);
        CU_ASSERT_EQUAL(k.updates_dropped, 6);
        /* A left member makes room for a newcomer. */
        CU_ASSERT_EQUAL(membership_force_leave(m, T0, "m0"), -EBUSY);
        feed(m, T0, WIRE_STATE_LEFT, "m0", 0, 1, NULL);
        feed(m, T0, WIRE_STATE_ALIVE, "m9", 7010, 1, NULL);
        CU_ASSERT_EQUAL(state_of(m, "m9"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(state_of(m, "m0"), 0);
        drain(m, c);
        free(c);
        membership_free(m);
}

static void test_force_leave(void) {
        static const char *const names[] = { "b", "c" };
        struct capture *c = cap_new();
        struct membership *m = core_with(names, 2, c);
        const struct membership_output *ev;

        CU_ASSERT_EQUAL(membership_force_leave(m, T0, "nobody"), -ENOENT);
        CU_ASSERT_EQUAL(membership_force_leave(m, T0, "a"), -EINVAL);
        CU_ASSERT_EQUAL(membership_force_leave(m, T0, "bad name"), -EINVAL);
        CU_ASSERT_EQUAL(membership_force_leave(m, T0, "b"), -EBUSY);
        feed(m, T0, WIRE_STATE_DEAD, "b", 0, 1, "c");
        drain(m, c);
        cap_reset(c);
        CU_ASSERT_EQUAL(membership_force_leave(m, T0 + MS, "b"), 0);
        drain(m, c);
        CU_ASSERT_EQUAL(state_of(m, "b"), MEMBERSHIP_LEFT);
        ev = last_event(c, EVENT_MEMBER_LEFT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        CU_ASSERT_STRING_EQUAL(ev->event.cause, "force-left by the operator");
        CU_ASSERT_EQUAL(ev->event.from_state, MEMBERSHIP_DEAD);
        CU_ASSERT_EQUAL(c->n_persist_member, 1);
        CU_ASSERT_EQUAL(membership_force_leave(m, T0 + MS, "b"), -EALREADY);
        /* ...and it is gossiped. */
        cap_reset(c);
        run_core(m, c, T0 + MS, T0 + SEC);
        CU_ASSERT_TRUE(count_updates(c, WIRE_STATE_LEFT, "b", 1) >= 1);
        /* Left members are forgotten after left_reap. */
        drain(m, c);
        run_core(m, c, T0 + SEC, T0 + 24 * 3600 * SEC + 20 * SEC);
        CU_ASSERT_EQUAL(state_of(m, "b"), 0);
        free(c);
        membership_free(m);
}

/* Join: push-pull to the seeds, retried with doubling backoff until one answers. */
static void test_join_backoff(void) {
        struct capture *c = cap_new();
        struct membership *m = node_new("a", 7000);
        struct wire_addr seeds[3] = { addr_of(7001), addr_of(7000), addr_of(7002) };
        uint64_t now = T0, expect[] = { 1 * SEC, 2 * SEC, 4 * SEC, 8 * SEC, 16 * SEC, 30 * SEC, 30 * SEC };
        uint8_t *body;
        size_t len;

        CU_ASSERT_EQUAL(membership_join(m, now, seeds, 0), -EINVAL);
        CU_ASSERT_EQUAL(membership_join(m, now, seeds, 3), 0);
        drain(m, c);
        /* Our own address is skipped. */
        CU_ASSERT_EQUAL(c->n_pushpull, 2);
        CU_ASSERT_EQUAL(c->pushpull[0].port, 7001);
        CU_ASSERT_EQUAL(c->pushpull[1].port, 7002);
        CU_ASSERT_TRUE(c->pushpull_join[0]);
        CU_ASSERT_FALSE(membership_joined(m));
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                uint64_t d;

                membership_pushpull_failed(m, now, &seeds[0]);
                membership_pushpull_failed(m, now, &seeds[2]);
                drain(m, c);
                d = membership_next_deadline(m);
                /* Backoff plus up to a quarter of jitter. */
                CU_ASSERT_TRUE(d >= now + expect[i] && d <= now + expect[i] + expect[i] / 4);
                cap_reset(c);
                membership_tick(m, d);
                drain(m, c);
                CU_ASSERT_EQUAL(c->n_pushpull, 2);
                now = d;
        }
        /* Seed 7002 answers with its state: joined, no more attempts. */
        struct membership *s = node_new("s", 7002);
        membership_tick(s, now);
        feed(s, now, WIRE_STATE_ALIVE, "t", 7003, 4, NULL);
        drain(s, NULL);
        CU_ASSERT_EQUAL(membership_pushpull_export(s, false, true, &body, &len), 0);
        CU_ASSERT_EQUAL(membership_pushpull_result(m, now, &seeds[2], body, len), 0);
        free(body);
        drain(m, c);
        CU_ASSERT_TRUE(membership_joined(m));
        CU_ASSERT_EQUAL(state_of(m, "s"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(state_of(m, "t"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(inc_of(m, "t"), 4);
        cap_reset(c);
        run_core(m, c, now, now + 120 * SEC);
        for (size_t i = 0; i < c->n_pushpull; i++)
                CU_ASSERT_FALSE(c->pushpull_join[i]);
        /* A malformed answer merges nothing. */
        static const uint8_t junk[] = { 1, 0x10, 0, 1, 'x', 0, 0, 0, 1 };
        CU_ASSERT_EQUAL(membership_pushpull_result(m, now, &seeds[2], junk, sizeof(junk)), -EBADMSG);
        /* Joining only ourselves: joined at once. */
        struct membership *lone = node_new("l", 7009);
        struct wire_addr me = addr_of(7009);
        CU_ASSERT_EQUAL(membership_join(lone, now, &me, 1), 0);
        CU_ASSERT_TRUE(membership_joined(lone));
        membership_free(lone);
        membership_free(s);
        free(c);
        membership_free(m);
}

/* Push-pull: a remote dead is only a suspicion here; left and alive merge as news. */
static void test_pushpull_merge(void) {
        struct capture *c = cap_new();
        struct membership *a = node_new("a", 7000), *b = node_new("b", 7001);
        struct wire_addr addr_b = addr_of(7001), addr_a = addr_of(7000);
        uint8_t *body;
        size_t len;

        membership_tick(a, T0);
        membership_tick(b, T0);
        feed(a, T0, WIRE_STATE_ALIVE, "x", 7005, 2, NULL);
        feed(a, T0, WIRE_STATE_ALIVE, "y", 7006, 1, NULL);
        feed(b, T0, WIRE_STATE_ALIVE, "x", 7005, 2, NULL);
        feed(b, T0, WIRE_STATE_DEAD, "x", 7005, 2, "b");
        feed(b, T0, WIRE_STATE_ALIVE, "y", 7006, 1, NULL);
        feed(b, T0, WIRE_STATE_LEFT, "y", 0, 1, NULL);
        feed(b, T0, WIRE_STATE_ALIVE, "z", 7007, 8, NULL);
        drain(a, c);
        drain(b, NULL);
        CU_ASSERT_EQUAL(membership_pushpull_export(b, false, true, &body, &len), 0);
        cap_reset(c);
        CU_ASSERT_EQUAL(membership_pushpull_result(a, T0 + MS, &addr_b, body, len), 0);
        free(body);
        drain(a, c);
        CU_ASSERT_EQUAL(state_of(a, "x"), MEMBERSHIP_SUSPECT);
        CU_ASSERT_EQUAL(state_of(a, "y"), MEMBERSHIP_LEFT);
        CU_ASSERT_EQUAL(state_of(a, "z"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(state_of(a, "b"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(inc_of(a, "z"), 8);
        /* Our own record in b's view is refuted if b thinks worse of us. */
        feed(b, T0, WIRE_STATE_ALIVE, "a", 7000, 0, NULL);
        feed(b, T0, WIRE_STATE_DEAD, "a", 0, 0, "b");
        drain(b, NULL);
        CU_ASSERT_EQUAL(membership_pushpull_export(b, false, true, &body, &len), 0);
        CU_ASSERT_EQUAL(membership_pushpull_receive(a, T0 + 2 * MS, &addr_b, body, len), 0);
        free(body);
        CU_ASSERT_EQUAL(membership_incarnation(a), 1);
        /* And b learns a's answer. */
        drain(a, NULL);
        CU_ASSERT_EQUAL(membership_pushpull_export(a, false, true, &body, &len), 0);
        CU_ASSERT_EQUAL(membership_pushpull_result(b, T0 + 3 * MS, &addr_a, body, len), 0);
        free(body);
        CU_ASSERT_EQUAL(state_of(b, "a"), MEMBERSHIP_ALIVE);
        CU_ASSERT_EQUAL(inc_of(b, "a"), 1);
        struct membership_counters k;
        membership_get_counters(a, &k);
        CU_ASSERT_EQUAL(k.pushpulls_ok, 1);
        CU_ASSERT_EQUAL(k.pushpulls_served, 1);
        drain(b, NULL);
        free(c);
        membership_free(a);
        membership_free(b);
}

static void test_set_meta(void) {
        struct capture *c = cap_new();
        static const char *const names[] = { "b" };
        struct membership *m = core_with(names, 1, c);
        struct membership_member_info info;
        uint8_t big[WIRE_META_MAX + 1] = {};

        CU_ASSERT_EQUAL(membership_set_meta(m, T0, big, sizeof(big)), -EINVAL);
        CU_ASSERT_EQUAL(membership_set_meta(m, T0, (const uint8_t *)"voter", 5), 0);
        drain(m, c);
        CU_ASSERT_EQUAL(membership_incarnation(m), 1);
        CU_ASSERT_EQUAL(c->n_persist_self, 1);
        CU_ASSERT_EQUAL(membership_member_get(m, "a", &info), 0);
        CU_ASSERT_TRUE(info.self);
        CU_ASSERT_EQUAL(info.meta_len, 5);
        CU_ASSERT_EQUAL(memcmp(info.meta, "voter", 5), 0);
        free(c);
        membership_free(m);
}

/* --- a tiny cluster on a virtual network ------------------------------------------ */

#define NODES_MAX 12
#define QUEUE_MAX 8192

struct packet {
        uint64_t at;
        uint64_t order;
        unsigned from, to;
        size_t len;
        uint8_t buf[WIRE_BUDGET_DEFAULT];
};

struct cluster {
        size_t n;
        uint64_t now;
        uint64_t latency;
        struct membership *node[NODES_MAX];
        bool down[NODES_MAX];
        bool cut[NODES_MAX][NODES_MAX];
        struct packet *q;
        size_t nq;
        uint64_t order;
        struct capture *cap[NODES_MAX];
};

static const char *node_name(unsigned i) {
        static const char *const names[NODES_MAX] = { "n0", "n1", "n2", "n3", "n4", "n5",
                                                      "n6", "n7", "n8", "n9", "n10", "n11" };
        return names[i];
}

static struct cluster *cluster_new(size_t n) {
        struct cluster *cl = calloc(1, sizeof(*cl));

        CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
        cl->q = calloc(QUEUE_MAX, sizeof(*cl->q));
        CU_ASSERT_PTR_NOT_NULL_FATAL(cl->q);
        cl->n = n;
        cl->now = T0;
        cl->latency = 1 * MS;
        for (size_t i = 0; i < n; i++) {
                cl->node[i] = node_new(node_name((unsigned)i), 7100 + (unsigned)i);
                cl->cap[i] = cap_new();
        }
        return cl;
}

static void cluster_free(struct cluster *cl) {
        for (size_t i = 0; i < cl->n; i++) {
                membership_free(cl->node[i]);
                free(cl->cap[i]);
        }
        free(cl->q);
        free(cl);
}

static bool link_ok(const struct cluster *cl, unsigned a, unsigned b) {
        return !cl->down[a] && !cl->down[b] && !cl->cut[a][b];
}

static void pump(struct cluster *cl, unsigned i);

/* Synchronous push-pull: the initiator's state, the responder's merge and reply. */
static void do_pushpull(struct cluster *cl, unsigned from, unsigned to, bool join) {
        struct wire_addr a_from = addr_of(7100 + from), a_to = addr_of(7100 + to);
        uint8_t *body;
        size_t len;

        if (to >= cl->n || !link_ok(cl, from, to)) {
                membership_pushpull_failed(cl->node[from], cl->now, &a_to);
                return;
        }
        CU_ASSERT_EQUAL_FATAL(membership_pushpull_export(cl->node[from], join, false, &body, &len), 0);
        CU_ASSERT_EQUAL_FATAL(membership_pushpull_receive(cl->node[to], cl->now, &a_from, body, len), 0);
        free(body);
        CU_ASSERT_EQUAL_FATAL(membership_pushpull_export(cl->node[to], false, true, &body, &len), 0);
        CU_ASSERT_EQUAL_FATAL(membership_pushpull_result(cl->node[from], cl->now, &a_to, body, len), 0);
        free(body);
        pump(cl, to);
}

static void pump(struct cluster *cl, unsigned i) {
        struct membership *m = cl->node[i];
        const struct membership_output *o;
        size_t n = membership_outputs(m, &o);
        struct {
                unsigned to;
                bool join;
        } pp[64];
        size_t npp = 0;

        for (size_t k = 0; k < n; k++) {
                unsigned to;

                switch (o[k].type) {
                case MEMBERSHIP_OUT_SEND:
                        to = o[k].send.to.port - 7100;
                        CU_ASSERT_FATAL(o[k].send.len <= WIRE_BUDGET_DEFAULT);
                        if (to < cl->n && link_ok(cl, i, to) && cl->nq < QUEUE_MAX) {
                                struct packet *p = &cl->q[cl->nq++];

                                p->at = cl->now + cl->latency;
                                p->order = cl->order++;
                                p->from = i;
                                p->to = to;
                                p->len = o[k].send.len;
                                memcpy(p->buf, o[k].send.data, p->len);
                        }
                        break;
                case MEMBERSHIP_OUT_PUSHPULL:
                        if (npp < 64) {
                                pp[npp].to = o[k].pushpull.to.port - 7100;
                                pp[npp++].join = o[k].pushpull.join;
                        }
                        break;
                case MEMBERSHIP_OUT_EVENT:
                        if (cl->cap[i]->n_event < CAP_EVENTS)
                                cl->cap[i]->event[cl->cap[i]->n_event++] = o[k];
                        break;
                default:
                        break;
                }
        }
        membership_outputs_clear(m);
        for (size_t k = 0; k < npp; k++)
                do_pushpull(cl, i, pp[k].to, pp[k].join);
        if (npp > 0)
                pump(cl, i);
}

/* Runs the cluster until `until`, event by event. */
static void cluster_run(struct cluster *cl, uint64_t until) {
        for (;;) {
                uint64_t t = UINT64_MAX;
                size_t best = SIZE_MAX;

                for (size_t k = 0; k < cl->nq; k++)
                        if (cl->q[k].at < t || (cl->q[k].at == t && cl->q[k].order < cl->q[best].order)) {
                                t = cl->q[k].at;
                                best = k;
                        }
                for (size_t i = 0; i < cl->n; i++)
                        if (!cl->down[i]) {
                                uint64_t d = membership_next_deadline(cl->node[i]);

                                if (d < t) {
                                        t = d;
                                        best = SIZE_MAX;
                                }
                        }
                if (t > until) {
                        cl->now = until;
                        return;
                }
                if (t > cl->now)
                        cl->now = t;
                if (best != SIZE_MAX) {
                        struct packet p = cl->q[best];
                        struct wire_addr from = addr_of(7100 + p.from);

                        cl->q[best] = cl->q[--cl->nq];
                        if (link_ok(cl, p.from, p.to)) {
                                CU_ASSERT_EQUAL_FATAL(
                                        membership_receive_packet(cl->node[p.to], cl->now, &from, p.buf, p.len), 0);
                                pump(cl, p.to);
                        }
                        continue;
                }
                for (size_t i = 0; i < cl->n; i++)
                        if (!cl->down[i] && membership_next_deadline(cl->node[i]) <= cl->now) {
                                membership_tick(cl->node[i], cl->now);
                                pump(cl, (unsigned)i);
                        }
        }
}

static void cluster_join_all(struct cluster *cl) {
        struct wire_addr seed = addr_of(7100);

        for (size_t i = 0; i < cl->n; i++) {
                membership_tick(cl->node[i], cl->now);
                pump(cl, (unsigned)i);
        }
        for (size_t i = 1; i < cl->n; i++) {
                CU_ASSERT_EQUAL_FATAL(membership_join(cl->node[i], cl->now, &seed, 1), 0);
                pump(cl, (unsigned)i);
        }
}

static bool all_see(const struct cluster *cl, unsigned who, enum membership_state s) {
        for (size_t i = 0; i < cl->n; i++)
                if (i != who && !cl->down[i] && state_of(cl->node[i], node_name(who)) != s)
                        return false;
        return true;
}

static size_t events_total(const struct cluster *cl, enum event_kind kind) {
        size_t n = 0;

        for (size_t i = 0; i < cl->n; i++)
                n += count_events(cl->cap[i], kind, NULL);
        return n;
}

static void test_cluster_join_converge(void) {
        struct cluster *cl = cluster_new(8);

        cluster_join_all(cl);
        cluster_run(cl, cl->now + 3 * SEC);
        for (unsigned w = 0; w < cl->n; w++)
                CU_ASSERT_TRUE(all_see(cl, w, MEMBERSHIP_ALIVE));
        for (size_t i = 0; i < cl->n; i++) {
                struct membership_census cs;

                membership_census(cl->node[i], &cs);
                CU_ASSERT_EQUAL(cs.alive, 8);
                CU_ASSERT_TRUE(membership_joined(cl->node[i]) || i == 0);
                CU_ASSERT_EQUAL(count_events(cl->cap[i], EVENT_MEMBER_JOINED, NULL), 7);
        }
        /* Quiet for a minute: nobody suspects anybody. */
        cluster_run(cl, cl->now + 60 * SEC);
        CU_ASSERT_EQUAL(events_total(cl, EVENT_MEMBER_SUSPECT), 0);
        CU_ASSERT_EQUAL(events_total(cl, EVENT_MEMBER_DEAD), 0);
        cluster_free(cl);
}

static void test_cluster_crash(void) {
        struct cluster *cl = cluster_new(8);
        uint64_t crash;

        cluster_join_all(cl);
        cluster_run(cl, cl->now + 5 * SEC);
        CU_ASSERT_TRUE(all_see(cl, 5, MEMBERSHIP_ALIVE));
        crash = cl->now;
        cl->down[5] = true;
        /* Every survivor knows within the lan aim (simulated time, not wall time). */
        while (!all_see(cl, 5, MEMBERSHIP_DEAD) && cl->now < crash + 10 * SEC)
                cluster_run(cl, cl->now + 50 * MS);
        CU_ASSERT_TRUE(all_see(cl, 5, MEMBERSHIP_DEAD));
        CU_ASSERT_TRUE(cl->now - crash <= 2500 * MS);
        /* Nobody else was declared dead. */
        for (size_t i = 0; i < cl->n; i++)
                for (size_t j = 0; j < cl->cap[i]->n_event; j++)
                        if (cl->cap[i]->event[j].event.kind == EVENT_MEMBER_DEAD)
                                CU_ASSERT_STRING_EQUAL(cl->cap[i]->event[j].event.name, "n5");
        cluster_free(cl);
}

static void test_cluster_leave(void) {
        struct cluster *cl = cluster_new(6);

        cluster_join_all(cl);
        cluster_run(cl, cl->now + 5 * SEC);
        CU_ASSERT_EQUAL(membership_leave(cl->node[3], cl->now), 0);
        CU_ASSERT_EQUAL(membership_leave(cl->node[3], cl->now), -EALREADY);
        pump(cl, 3);
        for (int i = 0; i < 40 && !membership_leave_done(cl->node[3]); i++)
                cluster_run(cl, cl->now + 50 * MS);
        CU_ASSERT_TRUE(membership_leave_done(cl->node[3]));
        cl->down[3] = true;
        cluster_run(cl, cl->now + 10 * SEC);
        CU_ASSERT_TRUE(all_see(cl, 3, MEMBERSHIP_LEFT));
        CU_ASSERT_EQUAL(events_total(cl, EVENT_MEMBER_DEAD), 0);
        CU_ASSERT_EQUAL(events_total(cl, EVENT_MEMBER_LEFT), 5);
        cluster_free(cl);
}

static void test_cluster_partition_heal(void) {
        struct cluster *cl = cluster_new(6);
        uint64_t healed;

        cluster_join_all(cl);
        cluster_run(cl, cl->now + 5 * SEC);
        for (unsigned a = 0; a < 2; a++)
                for (unsigned b = 2; b < 6; b++)
                        cl->cut[a][b] = cl->cut[b][a] = true;
        cluster_run(cl, cl->now + 10 * SEC);
        CU_ASSERT_EQUAL(state_of(cl->node[0], "n4"), MEMBERSHIP_DEAD);
        CU_ASSERT_EQUAL(state_of(cl->node[4], "n1"), MEMBERSHIP_DEAD);
        CU_ASSERT_EQUAL(state_of(cl->node[0], "n1"), MEMBERSHIP_ALIVE);
        memset(cl->cut, 0, sizeof(cl->cut));
        healed = cl->now;
        for (;;) {
                bool all = true;

                for (unsigned w = 0; w < cl->n; w++)
                        all &= all_see(cl, w, MEMBERSHIP_ALIVE);
                if (all || cl->now > healed + 60 * SEC)
                        break;
                cluster_run(cl, cl->now + 100 * MS);
        }
        for (unsigned w = 0; w < cl->n; w++)
                CU_ASSERT_TRUE(all_see(cl, w, MEMBERSHIP_ALIVE));
        cluster_free(cl);
}

static CU_TestInfo config_tests[] = {
        { "profiles", test_profiles },
        { "invalid configs", test_config_invalid },
        { "membership_new refuses bad input", test_new_invalid },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo core_tests[] = {
        { "probe and ack", test_probe_ack },
        { "ping answered", test_ping_answer },
        { "an unknown prober gets a push-pull", test_stranger_pushpull },
        { "suspect, then dead at the exact time", test_suspect_then_dead },
        { "suspicion timeout shrinks with confirmations", test_suspicion_confirmations },
        { "refutation raises the incarnation", test_refutation },
        { "precedence: stale alive never revives", test_precedence },
        { "ping-req relay: ack and nack", test_relay },
        { "Lifeguard multiplier rises and falls", test_lifeguard_multiplier },
        { "a stalled tick voids the probe", test_stall_voids_probe },
        { "piggyback retransmission count", test_retransmit_count },
        { "packet budget respected", test_budget },
        { "member cap", test_member_cap },
        { "force-leave", test_force_leave },
        { "join retries with backoff", test_join_backoff },
        { "push-pull merge", test_pushpull_merge },
        { "meta update", test_set_meta },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo cluster_tests[] = {
        { "8 nodes join and converge", test_cluster_join_converge },
        { "crash detected by all", test_cluster_crash },
        { "graceful leave is left, not dead", test_cluster_leave },
        { "partition heals without an operator", test_cluster_partition_heal },
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        { "membership config", NULL, NULL, NULL, NULL, config_tests },
        { "membership core", NULL, NULL, NULL, NULL, core_tests },
        { "membership cluster", NULL, NULL, NULL, NULL, cluster_tests },
        CU_SUITE_INFO_NULL,
};

int main(void) {
        return unit_run(suites);
}
