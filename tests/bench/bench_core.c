/*
 * Benchmark of the gossip core (prints figures; never passes or fails):
 *
 *  - membership: CPU per tick and per received message for a core that
 *    knows 10, 100 and 1000 members (steady state: nothing to gossip), and
 *    per received gossip packet full of news;
 *  - wire: encode and decode time per message for a ping, an ack carrying
 *    10 updates and a full default-budget gossip packet;
 *  - memory: bytes of heap per known member.
 *
 *   make tests/bench/bench_core && ./tests/bench/bench_core
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/membership.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

static uint64_t splitmix(void *ctx) {
        uint64_t *s = ctx, z = (*s += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static double wall_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct wire_addr addr_of(unsigned i) {
        uint8_t ip[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };

        return wire_addr_ipv4(ip, 7946);
}

static char names[1001][16];

/* Feeds n members as gossip (up to 32 per packet), as a join would. */
static void feed_members(struct membership *m, uint64_t now, unsigned n, uint64_t inc) {
        static struct wire_msg msg;
        struct wire_addr from = addr_of(60000);

        for (unsigned i = 1; i <= n;) {
                msg = (struct wire_msg){ .type = WIRE_MSG_GOSSIP };
                for (; i <= n && msg.n_updates < 32; i++) {
                        struct wire_update *u = &msg.updates[msg.n_updates++];

                        *u = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .name = names[i],
                                                   .name_len = (uint8_t)strlen(names[i]), .incarnation = inc };
                        u->addr = addr_of(i);
                }
                if (membership_receive(m, now, &from, &msg) < 0)
                        abort();
                membership_outputs_clear(m);
        }
}

/*
 * Answers every ping the core sent with an ack, as live members would;
 * returns how many outputs there were.
 */
static size_t answer(struct membership *m, uint64_t now) {
        const struct membership_output *o;
        size_t n = membership_outputs(m, &o), acks = 0;
        static struct wire_msg msg, ack;
        uint32_t seqs[64];

        for (size_t i = 0; i < n && acks < 64; i++)
                if (o[i].type == MEMBERSHIP_OUT_SEND && o[i].send.msg_type == WIRE_MSG_PING &&
                    wire_decode(o[i].send.data, o[i].send.len, &msg) == 0)
                        seqs[acks++] = msg.seq;
        membership_outputs_clear(m);
        for (size_t i = 0; i < acks; i++) {
                struct wire_addr from = addr_of(1);

                ack = (struct wire_msg){ .type = WIRE_MSG_ACK, .seq = seqs[i] };
                membership_receive(m, now, &from, &ack);
                membership_outputs_clear(m);
        }
        return n;
}

static void bench_membership(unsigned n) {
        struct membership_config cfg;
        struct membership *m = NULL;
        struct wire_addr self = addr_of(0);
        uint64_t seed = 42, now = 1000 * SEC;
        struct membership_rng rng = { splitmix, &seed };
        struct mallinfo2 before, after;
        static struct wire_msg ping, gossip;
        struct wire_addr from = addr_of(1);
        unsigned ticks = 0;
        double t0, t_tick, t_ping, t_gossip, heap;
        const int reps = 20000;

        membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &cfg);
        before = mallinfo2();
        if (membership_new(&cfg, "n0", &self, 0, NULL, 0, &rng, &m) < 0)
                abort();
        membership_tick(m, now);
        membership_outputs_clear(m);
        feed_members(m, now, n, 1);
        /* Drain the join news: 60 s of answered probes. */
        for (uint64_t end = now + 60 * SEC; now < end;) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                answer(m, now);
        }
        after = mallinfo2();

        /* Steady-state ticks: one probe per interval, answered. */
        t0 = wall_ns();
        for (uint64_t end = now + 600 * SEC; now < end; ticks++) {
                now = membership_next_deadline(m);
                membership_tick(m, now);
                answer(m, now);
        }
        t_tick = (wall_ns() - t0) / ticks;

        /* A ping for us: decode not included, the ack with its (empty) piggyback is. */
        ping = (struct wire_msg){ .type = WIRE_MSG_PING, .seq = 1, .target = "n0", .target_len = 2 };
        t0 = wall_ns();
        for (int i = 0; i < reps; i++) {
                membership_receive(m, now, &from, &ping);
                membership_outputs_clear(m);
        }
        t_ping = (wall_ns() - t0) / reps;

        /* A gossip packet of 32 alive updates we already know (the common case). */
        gossip = (struct wire_msg){ .type = WIRE_MSG_GOSSIP };
        for (unsigned i = 1; i <= 32; i++) {
                unsigned k = 1 + (i * 7919) % n;
                struct wire_update *u = &gossip.updates[gossip.n_updates++];

                *u = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .name = names[k],
                                           .name_len = (uint8_t)strlen(names[k]), .incarnation = 1 };
                u->addr = addr_of(k);
        }
        t0 = wall_ns();
        for (int i = 0; i < reps; i++) {
                membership_receive(m, now, &from, &gossip);
                membership_outputs_clear(m);
        }
        t_gossip = (wall_ns() - t0) / reps;

        heap = (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd);
        printf("membership n=%-5u tick %7.0f ns   recv ping %6.0f ns   recv gossip(32 known) %7.0f ns   "
               "heap %6.0f B/member\n",
               n, t_tick, t_ping, t_gossip, heap / (n + 1));
        membership_free(m);
}

/* News: a core learning 32 new members per packet, until it knows n. */
static void bench_news(unsigned n) {
        struct membership_config cfg;
        struct membership *m = NULL;
        struct wire_addr self = addr_of(0);
        uint64_t seed = 7, now = 1000 * SEC;
        struct membership_rng rng = { splitmix, &seed };
        double t0;

        membership_profile_defaults(MEMBERSHIP_PROFILE_LAN, &cfg);
        if (membership_new(&cfg, "n0", &self, 0, NULL, 0, &rng, &m) < 0)
                abort();
        membership_tick(m, now);
        membership_outputs_clear(m);
        t0 = wall_ns();
        feed_members(m, now, n, 1);
        printf("membership n=%-5u learning all members: %7.0f ns per new member\n", n, (wall_ns() - t0) / n);
        membership_free(m);
}

static void bench_wire(const char *what, const struct wire_msg *msg) {
        static uint8_t buf[WIRE_BUDGET_MAX];
        static struct wire_msg out;
        const int reps = 200000;
        size_t len = 0;
        double t0, t_enc, t_dec;

        t0 = wall_ns();
        for (int i = 0; i < reps; i++)
                if (wire_encode(msg, buf, WIRE_BUDGET_DEFAULT, &len) < 0)
                        abort();
        t_enc = (wall_ns() - t0) / reps;
        t0 = wall_ns();
        for (int i = 0; i < reps; i++)
                if (wire_decode(buf, len, &out) < 0)
                        abort();
        t_dec = (wall_ns() - t0) / reps;
        printf("wire %-28s %5zu bytes   encode %6.0f ns   decode %6.0f ns\n", what, len, t_enc, t_dec);
}

int main(void) {
        static struct wire_msg ping, ack, gossip;
        static const uint8_t meta[16] = "role=member;v=1";

        for (unsigned i = 0; i <= 1000; i++)
                snprintf(names[i], sizeof(names[i]), "node-%u", i);

        ping = (struct wire_msg){ .type = WIRE_MSG_PING, .seq = 12345, .target = "node-17", .target_len = 7 };
        bench_wire("ping", &ping);
        ack = (struct wire_msg){ .type = WIRE_MSG_ACK, .seq = 12345 };
        for (unsigned i = 0; i < 10; i++) {
                struct wire_update *u = &ack.updates[ack.n_updates++];

                *u = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .name = names[i + 1],
                                           .name_len = (uint8_t)strlen(names[i + 1]), .incarnation = 1000 + i,
                                           .meta = meta, .meta_len = sizeof(meta) };
                u->addr = addr_of(i + 1);
        }
        bench_wire("ack + 10 alive updates", &ack);
        gossip = (struct wire_msg){ .type = WIRE_MSG_GOSSIP };
        size_t used = wire_msg_header_size(&gossip);
        for (unsigned i = 0; gossip.n_updates < WIRE_UPDATES_MAX; i++) {
                struct wire_update u = { .kind = WIRE_STATE_SUSPECT, .name = names[i + 1],
                                         .name_len = (uint8_t)strlen(names[i + 1]), .incarnation = 77,
                                         .from = "node-0", .from_len = 6 };

                if (used + wire_update_size(&u) > WIRE_BUDGET_DEFAULT)
                        break;
                used += wire_update_size(&u);
                gossip.updates[gossip.n_updates++] = u;
        }
        bench_wire("gossip, full 1280-byte budget", &gossip);

        bench_membership(10);
        bench_membership(100);
        bench_membership(1000);
        bench_news(1000);
        return 0;
}
