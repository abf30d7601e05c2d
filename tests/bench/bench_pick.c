/*
 * Benchmark of the load-balancing algorithms (prints figures; never passes
 * or fails): ns per balance_pick() for every algorithm at 10, 100 and 1,000
 * backends, and the cost of a table change (balance_update()), for two
 * weight profiles: 1..100 (typical) and 1..10000 (every weight distinct, the
 * worst case for wrr, which then cannot precompute its cycle).
 *
 * The random value for random/wrandom comes from an inlined splitmix64 and is
 * part of the figure; sourcehash hashes a client address string ("10.a.b.c")
 * per pick (its hashing alone is printed last); times are the thread's CPU
 * time. "wlc+acct" also reports the connection's start and end
 * (balance_add_active +1 and -1), as a client-side balancer would.
 *
 *   make tests/bench/bench_pick && ./tests/bench/bench_pick
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/balance.h"

#define KEYS 4096

static char names[1000][16];
static char keys[KEYS][20];
static size_t key_len[KEYS];

static inline uint64_t splitmix(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/*
 * CPU time of this thread, not wall time: the figures stay meaningful on a
 * shared, loaded machine (time spent descheduled is not counted).
 */
static double wall_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

/* A sink the compiler cannot see through, so picks are not optimized away. */
static volatile size_t sink;

static double bench_picks(struct balance *b, bool accounting, unsigned picks) {
        uint64_t rng = 42;
        size_t acc = 0;
        double t0 = wall_ns();

        for (unsigned i = 0; i < picks; i++) {
                unsigned k = i & (KEYS - 1);
                size_t idx;

                if (balance_pick(b, splitmix(&rng), keys[k], key_len[k], &idx) < 0)
                        abort();
                if (accounting) {
                        balance_add_active(b, idx, 1);
                        balance_add_active(b, idx, -1);
                }
                acc += idx;
        }
        sink = acc;
        return (wall_ns() - t0) / picks;
}

static double bench_update(struct balance *b, const struct balance_backend *set, size_t n) {
        unsigned rounds = n >= 1000 ? 10 : 100;
        double t0 = wall_ns();

        for (unsigned i = 0; i < rounds; i++)
                if (balance_update(b, set, n) < 0)
                        abort();
        return (wall_ns() - t0) / rounds;
}

int main(void) {
        static const size_t sizes[] = { 10, 100, 1000 };
        static const uint32_t max_weight[] = { 100, 10000 };
        static struct balance_backend set[1000];
        static const struct {
                enum balance_algorithm a;
                bool accounting;
                const char *label;
        } rows[] = {
                { BALANCE_RANDOM, false, "random" },
                { BALANCE_ROUNDROBIN, false, "roundrobin" },
                { BALANCE_WRR, false, "wrr" },
                { BALANCE_WRANDOM, false, "wrandom" },
                { BALANCE_WLC, false, "wlc" },
                { BALANCE_WLC, true, "wlc+acct" },
                { BALANCE_SOURCEHASH, false, "sourcehash" },
        };
        const unsigned picks = 2000000;

        for (unsigned i = 0; i < 1000; i++)
                snprintf(names[i], sizeof(names[i]), "n%u/web@%u", i % 30, 8000 + i);
        for (unsigned i = 0; i < KEYS; i++)
                key_len[i] = (size_t) snprintf(keys[i], sizeof(keys[i]), "10.%u.%u.%u", i >> 16, (i >> 8) & 255,
                                               i & 255);

        for (size_t p = 0; p < sizeof(max_weight) / sizeof(max_weight[0]); p++) {
                printf("weights 1..%u (random, seeded)\n", max_weight[p]);
                printf("%-12s %10s %10s %10s   %12s %12s %12s\n", "algorithm", "ns/pick@10", "@100", "@1000",
                       "build us@10", "@100", "@1000");
                for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
                        double pick_ns[3], build_us[3];

                        for (size_t s = 0; s < 3; s++) {
                                size_t n = sizes[s];
                                uint64_t rng = 7;
                                struct balance *b;

                                for (size_t i = 0; i < n; i++)
                                        set[i] = (struct balance_backend) {
                                                .name = names[i], .address = "127.0.0.1", .port = 8000,
                                                .weight = 1 + (uint32_t) (splitmix(&rng) % max_weight[p]),
                                                .state = BALANCE_UP, .active = splitmix(&rng) % 100,
                                        };
                                if (balance_build(rows[r].a, set, n, &b) < 0)
                                        abort();
                                build_us[s] = bench_update(b, set, n) / 1000;
                                pick_ns[s] = bench_picks(b, rows[r].accounting, picks);
                                balance_free(b);
                        }
                        printf("%-12s %10.1f %10.1f %10.1f   %12.1f %12.1f %12.1f\n", rows[r].label, pick_ns[0],
                               pick_ns[1], pick_ns[2], build_us[0], build_us[1], build_us[2]);
                }
                printf("\n");
        }

        /* The share of sourcehash's figure that is hashing the client key. */
        double t0 = wall_ns();
        uint64_t acc = 0;
        for (unsigned i = 0; i < picks; i++)
                acc += balance_hash(keys[i & (KEYS - 1)], key_len[i & (KEYS - 1)]);
        sink = (size_t) acc;
        printf("balance_hash of a client address alone: %.1f ns\n", (wall_ns() - t0) / picks);
        return 0;
}
