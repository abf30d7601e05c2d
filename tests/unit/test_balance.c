/*
 * Load-balancing algorithms: wrr against an nginx oracle (exact sequence,
 * shares and spread), roundrobin order, random and wrandom statistics over
 * 10^6 deterministic picks plus an exact alias-table check, wlc against a
 * brute-force oracle, sourcehash stickiness and minimal movement, states and
 * weight 0 for every algorithm, edge cases, validation, printers, SipHash.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/balance.h"
#include "unit.h"

#define UP BALANCE_UP
#define DR BALANCE_DRAINING
#define DN BALANCE_DOWN
#define EJ BALANCE_EJECTED

static const enum balance_algorithm all_algorithms[] = {
        BALANCE_RANDOM, BALANCE_ROUNDROBIN, BALANCE_WRR, BALANCE_WRANDOM, BALANCE_WLC, BALANCE_SOURCEHASH,
};

static uint64_t splitmix(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

#define SET_MAX 1100
static char names[SET_MAX][24];

/* Fills set[0..n) named "b<i>", all up with weight 1 unless given. */
static void make_set(struct balance_backend *set, size_t n, const uint32_t *weights, const enum balance_state *states) {
        for (size_t i = 0; i < n; i++) {
                snprintf(names[i], sizeof(names[i]), "b%zu", i);
                set[i] = (struct balance_backend) {
                        .name = names[i], .address = "127.0.0.1", .port = (uint16_t) (8000 + i),
                        .weight = weights ? weights[i] : 1, .state = states ? states[i] : UP,
                };
        }
}

static struct balance *build_ok(enum balance_algorithm a, const struct balance_backend *set, size_t n) {
        struct balance *b = NULL;

        CU_ASSERT_EQUAL_FATAL(balance_build(a, set, n, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        return b;
}

/* One pick the way a caller would: fresh randomness, a key for sourcehash, wlc counts it. */
static size_t pick_ok(struct balance *b, uint64_t *rng, unsigned client) {
        size_t idx = SIZE_MAX;
        char key[32];
        int len = snprintf(key, sizeof(key), "10.%u.%u.%u", (client >> 16) & 255, (client >> 8) & 255, client & 255);

        CU_ASSERT_EQUAL_FATAL(balance_pick(b, splitmix(rng), key, (size_t) len, &idx), 0);
        if (balance_algorithm(b) == BALANCE_WLC)
                CU_ASSERT_EQUAL(balance_add_active(b, idx, 1), 0);
        return idx;
}

static void test_printers(void) {
        static const char *const expect[] = { "random", "roundrobin", "wrr", "wrandom", "wlc", "sourcehash" };
        static const char *const states[] = { "up", "draining", "down", "ejected" };

        for (int i = 0; i < _BALANCE_ALGORITHM_MAX; i++) {
                CU_ASSERT_STRING_EQUAL(balance_algorithm_to_string((enum balance_algorithm) i), expect[i]);
                CU_ASSERT_EQUAL(balance_algorithm_from_string(expect[i]), (enum balance_algorithm) i);
        }
        for (int i = 0; i < _BALANCE_STATE_MAX; i++) {
                CU_ASSERT_STRING_EQUAL(balance_state_to_string((enum balance_state) i), states[i]);
                CU_ASSERT_EQUAL(balance_state_from_string(states[i]), (enum balance_state) i);
        }
        CU_ASSERT_PTR_NULL(balance_algorithm_to_string(_BALANCE_ALGORITHM_MAX));
        CU_ASSERT_PTR_NULL(balance_algorithm_to_string(_BALANCE_ALGORITHM_INVALID));
        CU_ASSERT_PTR_NULL(balance_state_to_string(_BALANCE_STATE_MAX));
        CU_ASSERT_EQUAL(balance_algorithm_from_string("WRR"), _BALANCE_ALGORITHM_INVALID);
        CU_ASSERT_EQUAL(balance_algorithm_from_string(""), _BALANCE_ALGORITHM_INVALID);
        CU_ASSERT_EQUAL(balance_algorithm_from_string(NULL), _BALANCE_ALGORITHM_INVALID);
        CU_ASSERT_EQUAL(balance_state_from_string("upp"), _BALANCE_STATE_INVALID);
        CU_ASSERT_EQUAL(balance_state_from_string(NULL), _BALANCE_STATE_INVALID);
}

/* The reference SipHash-2-4 vectors (key 00..0f, input 00..len-1). */
static void test_hash_vectors(void) {
        uint8_t in[16];

        for (unsigned i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) i;
        CU_ASSERT_EQUAL(balance_hash(in, 0), UINT64_C(0x726fdb47dd0e0e31));
        CU_ASSERT_EQUAL(balance_hash(in, 7), UINT64_C(0xab0200f58b01d137));
        CU_ASSERT_EQUAL(balance_hash(in, 8), UINT64_C(0x93f5f5799a932462));
        CU_ASSERT_EQUAL(balance_hash(in, 15), UINT64_C(0xa129ca6149be45e5));
        CU_ASSERT_EQUAL(balance_hash(in, 16), UINT64_C(0x3f2acc7f57c29bdb));
}

static void test_validation(void) {
        struct balance_backend set[3];
        struct balance *b = (struct balance *) 0x1;
        static const struct {
                const char *what;
                const char *name;
                uint32_t weight;
                int state;
                int expect;
        } cases[] = {
                { "ok", "x", 10000, UP, 0 },
                { "NULL name", NULL, 1, UP, -EINVAL },
                { "empty name", "", 1, UP, -EINVAL },
                { "weight above max", "x", 10001, UP, -EINVAL },
                { "state out of range", "x", 1, _BALANCE_STATE_MAX, -EINVAL },
                { "negative state", "x", 1, -1, -EINVAL },
                { "duplicate name", "b0", 1, UP, -EEXIST },
        };
        char long_name[BALANCE_NAME_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                make_set(set, 3, NULL, NULL);
                set[2].name = cases[i].name;
                set[2].weight = cases[i].weight;
                set[2].state = (enum balance_state) cases[i].state;
                for (size_t a = 0; a < ELEMENTSOF(all_algorithms); a++) {
                        struct balance *r = NULL;
                        int rc = balance_build(all_algorithms[a], set, 3, &r);

                        if (rc != cases[i].expect)
                                fprintf(stderr, "case %s, %s: %d\n", cases[i].what,
                                        balance_algorithm_to_string(all_algorithms[a]), rc);
                        CU_ASSERT_EQUAL(rc, cases[i].expect);
                        CU_ASSERT((rc == 0) == (r != NULL));
                        balance_free(r);
                }
        }
        memset(long_name, 'n', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        make_set(set, 3, NULL, NULL);
        set[1].name = long_name;
        CU_ASSERT_EQUAL(balance_build(BALANCE_SOURCEHASH, set, 3, &b), -EINVAL);
        long_name[BALANCE_NAME_MAX] = 0;        /* exactly the maximum is fine */
        CU_ASSERT_EQUAL(balance_build(BALANCE_SOURCEHASH, set, 3, &b), 0);
        balance_free(b);

        b = (struct balance *) 0x1;
        CU_ASSERT_EQUAL(balance_build(BALANCE_WRR, set, BALANCE_BACKENDS_MAX + 1, &b), -E2BIG);
        CU_ASSERT_EQUAL(balance_build(_BALANCE_ALGORITHM_MAX, set, 3, &b), -EINVAL);
        CU_ASSERT_EQUAL(balance_build(_BALANCE_ALGORITHM_INVALID, set, 3, &b), -EINVAL);
        CU_ASSERT_EQUAL(balance_build(BALANCE_WRR, NULL, 3, &b), -EINVAL);
        CU_ASSERT_EQUAL(balance_build(BALANCE_WRR, set, 3, NULL), -EINVAL);
        CU_ASSERT_PTR_EQUAL(b, (struct balance *) 0x1);

        /* A failed update leaves the balancer as it was, round-robin position included. */
        make_set(set, 3, NULL, NULL);
        b = build_ok(BALANCE_ROUNDROBIN, set, 3);
        size_t idx = 99;
        CU_ASSERT_EQUAL(balance_pick(b, 0, NULL, 0, &idx), 0);
        CU_ASSERT_EQUAL(idx, 0);
        set[2].name = "b0";
        CU_ASSERT_EQUAL(balance_update(b, set, 3), -EEXIST);
        CU_ASSERT_EQUAL(balance_pick(b, 0, NULL, 0, &idx), 0);
        CU_ASSERT_EQUAL(idx, 1);
        CU_ASSERT_EQUAL(balance_size(b), 3);

        /* Bad pick arguments. */
        char key[BALANCE_KEY_MAX + 1] = { 0 };
        idx = 77;
        CU_ASSERT_EQUAL(balance_pick(b, 0, key, sizeof(key), &idx), -EINVAL);
        CU_ASSERT_EQUAL(balance_pick(b, 0, NULL, 3, &idx), -EINVAL);
        CU_ASSERT_EQUAL(balance_pick(b, 0, NULL, 0, NULL), -EINVAL);
        CU_ASSERT_EQUAL(balance_pick(NULL, 0, NULL, 0, &idx), -EINVAL);
        CU_ASSERT_EQUAL(idx, 77);
        CU_ASSERT_EQUAL(balance_set_active(b, 3, 1), -EINVAL);
        CU_ASSERT_EQUAL(balance_add_active(b, 3, 1), -EINVAL);
        CU_ASSERT_EQUAL(balance_update(NULL, set, 3), -EINVAL);
        balance_free(b);
        balance_free(NULL);
}

/* 0 backends, 1 backend, everything draining, everything weight 0: every algorithm. */
static void test_edges(void) {
        struct balance_backend set[4];
        uint64_t rng = 1;

        for (size_t a = 0; a < ELEMENTSOF(all_algorithms); a++) {
                struct balance *b;
                size_t idx = 42;

                b = build_ok(all_algorithms[a], NULL, 0);
                CU_ASSERT_EQUAL(balance_pick(b, 5, "k", 1, &idx), -EHOSTUNREACH);
                CU_ASSERT_EQUAL(idx, 42);
                CU_ASSERT_EQUAL(balance_eligible(b), 0);
                balance_free(b);

                make_set(set, 1, NULL, NULL);
                b = build_ok(all_algorithms[a], set, 1);
                for (unsigned i = 0; i < 100; i++)
                        CU_ASSERT_EQUAL(pick_ok(b, &rng, i), 0);
                balance_free(b);

                make_set(set, 4, NULL, (const enum balance_state[]) { DR, DR, DR, DR });
                b = build_ok(all_algorithms[a], set, 4);
                CU_ASSERT_EQUAL(balance_pick(b, 5, "k", 1, &idx), -EHOSTUNREACH);
                CU_ASSERT_EQUAL(balance_eligible(b), 0);
                /* The next table brings one back. */
                set[2].state = UP;
                CU_ASSERT_EQUAL(balance_update(b, set, 4), 0);
                for (unsigned i = 0; i < 100; i++)
                        CU_ASSERT_EQUAL(pick_ok(b, &rng, i), 2);
                balance_free(b);

                make_set(set, 4, (const uint32_t[]) { 0, 0, 0, 0 }, NULL);
                b = build_ok(all_algorithms[a], set, 4);
                CU_ASSERT_EQUAL(balance_pick(b, 5, "k", 1, &idx), -EHOSTUNREACH);
                CU_ASSERT_EQUAL(idx, 42);
                balance_free(b);
        }
}

/*
 * Only up backends with weight > 0 are picked, by every algorithm, and every
 * one of them is picked.
 */
static void test_states(void) {
        static const enum balance_state states[] = { UP, DR, DN, EJ, UP, UP, DR, UP };
        static const uint32_t weights[] = { 3, 5, 5, 5, 0, 1, 1, 2 };
        struct balance_backend set[8];
        uint64_t rng = 7;

        make_set(set, 8, weights, states);
        for (size_t a = 0; a < ELEMENTSOF(all_algorithms); a++) {
                struct balance *b = build_ok(all_algorithms[a], set, 8);
                unsigned count[8] = { 0 };

                CU_ASSERT_EQUAL(balance_eligible(b), 3);
                for (unsigned i = 0; i < 30000; i++)
                        count[pick_ok(b, &rng, i)]++;
                for (size_t i = 0; i < 8; i++) {
                        bool eligible = i == 0 || i == 5 || i == 7;

                        if (eligible != (count[i] > 0))
                                fprintf(stderr, "%s: backend %zu picked %u times\n",
                                        balance_algorithm_to_string(all_algorithms[a]), i, count[i]);
                        CU_ASSERT_EQUAL(eligible, count[i] > 0);
                }
                balance_free(b);
        }
}

static void test_roundrobin(void) {
        static const size_t expect[] = { 0, 1, 3, 4, 0, 1, 3, 4, 0 };
        struct balance_backend set[5];
        struct balance *b;
        uint64_t rng = 3;

        /* Weights are ignored, states are not. */
        make_set(set, 5, (const uint32_t[]) { 1, 7, 2, 1, 3 }, (const enum balance_state[]) { UP, UP, DN, UP, UP });
        b = build_ok(BALANCE_ROUNDROBIN, set, 5);
        for (size_t i = 0; i < ELEMENTSOF(expect); i++)
                CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), expect[i]);
        /* A new table version carries the position over (1 of 4 -> 1 of 5). */
        set[2].state = UP;
        CU_ASSERT_EQUAL(balance_update(b, set, 5), 0);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 1);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 2);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 3);
        balance_free(b);
}

/* nginx's smooth weighted round-robin, verbatim, as the oracle. */
struct nginx_oracle {
        int64_t cw[SET_MAX];
};

static size_t nginx_next(struct nginx_oracle *o, const struct balance_backend *set, size_t n) {
        int64_t total = 0;
        size_t best = SIZE_MAX;

        for (size_t i = 0; i < n; i++) {
                if (set[i].state != UP || set[i].weight == 0)
                        continue;
                o->cw[i] += set[i].weight;
                total += set[i].weight;
                if (best == SIZE_MAX || o->cw[i] > o->cw[best])
                        best = i;
        }
        o->cw[best] -= total;
        return best;
}

static void test_wrr_pattern(void) {
        static const char expect[] = "aabacaaaabacaa";
        static const struct {
                uint32_t w[4];
                size_t n;
                const char *seq;        /* one cycle, nginx's order */
        } cases[] = {
                { { 5, 1, 1 }, 3, "aabacaa" },
                { { 2, 2, 1 }, 3, "abcab" },
                { { 1, 1, 1, 1 }, 4, "abcd" },
                { { 10, 10, 5 }, 3, "abcab" },  /* the gcd does not change the order */
                { { 3, 1 }, 2, "aaba" },
        };
        struct balance_backend set[4];
        uint64_t rng = 11;

        make_set(set, 3, (const uint32_t[]) { 5, 1, 1 }, NULL);
        struct balance *b = build_ok(BALANCE_WRR, set, 3);
        for (size_t i = 0; i < strlen(expect); i++)
                CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), (size_t) (expect[i] - 'a'));
        balance_free(b);

        for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
                make_set(set, cases[c].n, cases[c].w, NULL);
                b = build_ok(BALANCE_WRR, set, cases[c].n);
                for (unsigned cycle = 0; cycle < 3; cycle++)
                        for (const char *p = cases[c].seq; *p; p++)
                                CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), (size_t) (*p - 'a'));
                balance_free(b);
        }
}

/*
 * Random sets (states, weight 0, repeated weights) against the oracle: the
 * same sequence, exactly its weight's share per cycle, and never a burst:
 * after every pick t each backend is less than 2 picks away from its ideal
 * share t*w/total (a backend served in one burst per cycle is up to w away).
 * Large sets with many distinct weights force the tournament-tree mode
 * (no precomputed cycle), two of them over whole cycles.
 */
static void test_wrr_oracle(void) {
        static struct balance_backend set[SET_MAX];
        static uint32_t weights[SET_MAX];
        static enum balance_state states[SET_MAX];
        uint64_t rng = 99;

        for (unsigned round = 0; round < 60; round++) {
                /* 55..57: a cycle of millions, partly run; 58, 59: ~200k picks per cycle, two whole cycles. */
                bool big = round >= 55 && round < 58, full = round >= 58;
                size_t n = big ? 300 : full ? 200 : 1 + splitmix(&rng) % 40;
                static struct nginx_oracle o;
                static unsigned count[SET_MAX];
                uint64_t total = 0;
                struct balance *b;

                for (size_t i = 0; i < n; i++) {
                        weights[i] = big    ? 5000 + (uint32_t) (splitmix(&rng) % 5000)
                                     : full ? 1000 + (uint32_t) (splitmix(&rng) % 150)
                                            : (uint32_t) (splitmix(&rng) % (round % 2 ? 6 : 30));
                        states[i] = splitmix(&rng) % 5 == 0 ? (enum balance_state) (splitmix(&rng) % 4) : UP;
                        if (states[i] == UP)
                                total += weights[i];
                }
                make_set(set, n, weights, states);
                b = build_ok(BALANCE_WRR, set, n);
                memset(&o, 0, sizeof(o));
                memset(count, 0, sizeof(count));
                if (total == 0) {
                        size_t idx;

                        CU_ASSERT_EQUAL(balance_pick(b, 0, NULL, 0, &idx), -EHOSTUNREACH);
                        balance_free(b);
                        continue;
                }
                uint64_t picks = big ? 20000 : 2 * total + 5;
                for (uint64_t i = 0; i < picks; i++) {
                        size_t got = pick_ok(b, &rng, 0), want = nginx_next(&o, set, n);

                        CU_ASSERT_EQUAL_FATAL(got, want);
                        if (i < total) {
                                count[got]++;
                                for (size_t j = 0; j < n && !big; j++) {
                                        int64_t lag = (int64_t) count[j] * (int64_t) total -
                                                      (int64_t) (i + 1) * (states[j] == UP ? weights[j] : 0);

                                        CU_ASSERT_FATAL(lag < 2 * (int64_t) total && lag > -2 * (int64_t) total);
                                }
                        }
                }
                if (!big)       /* one whole cycle: exactly the weight's share */
                        for (size_t i = 0; i < n; i++)
                                CU_ASSERT_EQUAL(count[i], states[i] == UP ? weights[i] : 0);
                balance_free(b);
        }
}

/*
 * Spread: sets that nginx interleaves completely never give a backend two
 * picks in a row (wrapping from one cycle to the next included). The
 * general bound is checked in test_wrr_oracle.
 */
static void test_wrr_spread(void) {
        static const uint32_t sets[][6] = {
                { 3, 3, 2, 2, 1, 1 }, { 2, 2, 1, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1 }, { 4, 4, 0, 0, 0, 0 },
                { 20, 20, 10, 0, 0, 0 },
        };
        struct balance_backend set[6];
        uint64_t rng = 5;

        for (size_t s = 0; s < ELEMENTSOF(sets); s++) {
                size_t n = 0, prev = SIZE_MAX;
                struct balance *b;

                while (n < 6 && sets[s][n])
                        n++;
                make_set(set, n, sets[s], NULL);
                b = build_ok(BALANCE_WRR, set, n);
                for (unsigned i = 0; i < 300; i++) {
                        size_t idx = pick_ok(b, &rng, 0);

                        CU_ASSERT_NOT_EQUAL(idx, prev);
                        prev = idx;
                }
                balance_free(b);
        }
}

static double chi_square(const unsigned *count, const double *p, size_t n, double picks) {
        double x = 0;

        for (size_t i = 0; i < n; i++) {
                double e = p[i] * picks, d = count[i] - e;

                if (e > 0)
                        x += d * d / e;
        }
        return x;
}

/*
 * 10^6 picks with a fixed seed: chi-square below the 0.1% critical value
 * and every backend within 2% of its expectation.
 */
static void check_stats(enum balance_algorithm a, const uint32_t *w, const enum balance_state *st, size_t n,
                        const double *p, double critical) {
        struct balance_backend set[8];
        unsigned count[8] = { 0 };
        uint64_t rng = 0x5eed;
        struct balance *b;
        const unsigned picks = 1000000;

        make_set(set, n, w, st);
        b = build_ok(a, set, n);
        for (unsigned i = 0; i < picks; i++) {
                size_t idx;

                CU_ASSERT_EQUAL_FATAL(balance_pick(b, splitmix(&rng), NULL, 0, &idx), 0);
                count[idx]++;
        }
        for (size_t i = 0; i < n; i++) {
                double e = p[i] * picks;

                CU_ASSERT(e == 0 ? count[i] == 0 : count[i] >= e * 0.98 && count[i] <= e * 1.02);
        }
        CU_ASSERT(chi_square(count, p, n, picks) < critical);
        balance_free(b);
}

static void test_random_stats(void) {
        static const uint32_t w[] = { 1, 9, 3, 1, 5, 2 };
        static const enum balance_state st[] = { UP, UP, DR, UP, UP, UP };
        static const double p[] = { .2, .2, 0, .2, .2, .2 };

        /* 4 degrees of freedom: 18.47 at p = 0.001. */
        check_stats(BALANCE_RANDOM, w, st, 6, p, 18.47);
}

static void test_wrandom_stats(void) {
        static const uint32_t w[] = { 1, 2, 3, 4, 10, 7 };
        static const enum balance_state st[] = { UP, UP, UP, UP, UP, EJ };
        static const double p[] = { .05, .1, .15, .2, .5, 0 };

        check_stats(BALANCE_WRANDOM, w, st, 6, p, 18.47);
}

/*
 * The alias table's exact probabilities: sweep the random value over a
 * regular grid (every column, 2^14 coin values each) instead of sampling.
 */
static void test_wrandom_exact(void) {
        static const uint32_t w[] = { 7, 1, 10000, 333, 2, 0, 5000, 1 };
        struct balance_backend set[8];
        double total = 0, count[8] = { 0 }, samples = 0;
        struct balance *b;
        const size_t m = 7;

        make_set(set, 8, w, NULL);
        b = build_ok(BALANCE_WRANDOM, set, 8);
        for (size_t i = 0; i < 8; i++)
                total += w[i];
        for (uint64_t col = 0; col < m; col++) {
                /* The smallest high half that scales onto column col. */
                uint64_t hi = ((col << 32) + m - 1) / m;

                for (uint64_t coin = 0; coin < (1u << 14); coin++) {
                        size_t idx;

                        CU_ASSERT_EQUAL_FATAL(balance_pick(b, hi << 32 | coin << 18, NULL, 0, &idx), 0);
                        count[idx]++;
                        samples++;
                }
        }
        for (size_t i = 0; i < 8; i++) {
                double got = count[i] / samples, want = w[i] / total;

                CU_ASSERT(got > want - 1e-4 && got < want + 1e-4);
        }
        balance_free(b);
}

/*
 * wlc against a brute-force oracle under random connection changes: the
 * pick is always the lowest index among the minima of active/weight.
 */
static void test_wlc_oracle(void) {
        static struct balance_backend set[64];
        uint32_t weights[64];
        enum balance_state states[64];
        uint64_t active[64];
        uint64_t rng = 2024;

        for (unsigned round = 0; round < 200; round++) {
                size_t n = 1 + splitmix(&rng) % 64;
                struct balance *b;

                for (size_t i = 0; i < n; i++) {
                        weights[i] = (uint32_t) (splitmix(&rng) % (round % 3 ? 4 : 200));
                        states[i] = splitmix(&rng) % 6 == 0 ? (enum balance_state) (splitmix(&rng) % 4) : UP;
                        active[i] = splitmix(&rng) % 50;
                }
                make_set(set, n, weights, states);
                for (size_t i = 0; i < n; i++)
                        set[i].active = active[i];
                b = build_ok(BALANCE_WLC, set, n);
                for (unsigned op = 0; op < 400; op++) {
                        size_t want = SIZE_MAX, got = SIZE_MAX, k = splitmix(&rng) % n;
                        uint64_t r = splitmix(&rng) % 4;

                        if (r == 0) {
                                active[k] = splitmix(&rng) % 100;
                                CU_ASSERT_EQUAL(balance_set_active(b, k, active[k]), 0);
                        } else if (r == 1) {
                                CU_ASSERT_EQUAL(balance_add_active(b, k, -1), 0);
                                active[k] = active[k] ? active[k] - 1 : 0;
                        }
                        for (size_t i = 0; i < n; i++)
                                if (states[i] == UP && weights[i] > 0 &&
                                    (want == SIZE_MAX || active[i] * weights[want] < active[want] * weights[i]))
                                        want = i;
                        int rc = balance_pick(b, 0, NULL, 0, &got);
                        if (want == SIZE_MAX) {
                                CU_ASSERT_EQUAL(rc, -EHOSTUNREACH);
                                continue;
                        }
                        CU_ASSERT_EQUAL_FATAL(rc, 0);
                        CU_ASSERT_EQUAL_FATAL(got, want);
                        CU_ASSERT_EQUAL(balance_add_active(b, got, 1), 0);
                        active[got]++;
                        CU_ASSERT_EQUAL(balance_get_active(b, got), active[got]);
                }
                balance_free(b);
        }
}

/* Equal load with equal weights: wlc hands out connections in turn. */
static void test_wlc_basics(void) {
        struct balance_backend set[3];
        struct balance *b;
        uint64_t rng = 1;

        make_set(set, 3, (const uint32_t[]) { 1, 2, 1 }, NULL);
        b = build_ok(BALANCE_WLC, set, 3);
        /* 0/1 0/2 0/1 -> b0; 1/1 0/2 0/1 -> b1; 1/1 1/2 0/1 -> b2; 1/1 1/2 1/1 -> b1 */
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 0);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 1);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 2);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 1);
        CU_ASSERT_EQUAL(pick_ok(b, &rng, 0), 0);

        /* Saturation at both ends. */
        CU_ASSERT_EQUAL(balance_set_active(b, 0, UINT64_MAX), 0);
        CU_ASSERT_EQUAL(balance_get_active(b, 0), BALANCE_ACTIVE_MAX);
        CU_ASSERT_EQUAL(balance_add_active(b, 0, INT64_MAX), 0);
        CU_ASSERT_EQUAL(balance_get_active(b, 0), BALANCE_ACTIVE_MAX);
        CU_ASSERT_EQUAL(balance_add_active(b, 0, INT64_MIN), 0);
        CU_ASSERT_EQUAL(balance_get_active(b, 0), 0);
        CU_ASSERT_EQUAL(balance_add_active(b, 1, -3), 0);
        CU_ASSERT_EQUAL(balance_get_active(b, 1), 0);
        CU_ASSERT_EQUAL(balance_set_active(b, 2, 7), 0);
        CU_ASSERT_EQUAL(balance_add_active(b, 2, -7), 0);
        CU_ASSERT_EQUAL(balance_get_active(b, 2), 0);
        balance_free(b);
}

#define CLIENTS 100000

static void client_key(unsigned c, char *buf, size_t size, size_t *ret_len) {
        *ret_len = (size_t) snprintf(buf, size, "192.168.%u.%u", c >> 8, c & 255);
}

/* Maps every client to a backend name (pointers into names[]). */
static void map_clients(struct balance *b, const struct balance_backend *set, const char **ret) {
        for (unsigned c = 0; c < CLIENTS; c++) {
                char key[32];
                size_t len, idx;

                client_key(c, key, sizeof(key), &len);
                CU_ASSERT_EQUAL_FATAL(balance_pick(b, 0, key, len, &idx), 0);
                ret[c] = set[idx].name;
        }
}

/*
 * Stickiness and minimal movement: unchanged table -> nobody moves; one of
 * 10 backends leaving (down, or gone from the array) -> only its clients
 * move, at most 12%; an 11th joining -> only clients moving to it, ~1/11.
 */
static void test_sourcehash(void) {
        static const char *before[CLIENTS], *after[CLIENTS];
        struct balance_backend set[11];
        unsigned per[11] = { 0 }, moved;
        struct balance *b;

        make_set(set, 10, NULL, NULL);
        b = build_ok(BALANCE_SOURCEHASH, set, 10);
        map_clients(b, set, before);
        map_clients(b, set, after);
        CU_ASSERT_EQUAL(memcmp(before, after, sizeof(before)), 0);
        for (unsigned c = 0; c < CLIENTS; c++)
                per[before[c][1] - '0']++;
        /* Each backend's share is 10% within a few points with 256 points each. */
        for (size_t i = 0; i < 10; i++)
                CU_ASSERT(per[i] > CLIENTS * 0.07 && per[i] < CLIENTS * 0.13);

        /* An identical new table version (and another order) moves nobody. */
        struct balance_backend rev[10];
        for (size_t i = 0; i < 10; i++)
                rev[i] = set[9 - i];
        CU_ASSERT_EQUAL(balance_update(b, rev, 10), 0);
        map_clients(b, rev, after);
        CU_ASSERT_EQUAL(memcmp(before, after, sizeof(before)), 0);

        /* b3 down: only its clients move. */
        set[3].state = DN;
        CU_ASSERT_EQUAL(balance_update(b, set, 10), 0);
        map_clients(b, set, after);
        moved = 0;
        for (unsigned c = 0; c < CLIENTS; c++)
                if (before[c] != after[c]) {
                        moved++;
                        CU_ASSERT_STRING_EQUAL_FATAL(before[c], "b3");
                } else
                        CU_ASSERT_STRING_NOT_EQUAL_FATAL(after[c], "b3");
        CU_ASSERT_EQUAL(moved, per[3]);
        CU_ASSERT(moved <= CLIENTS * 12 / 100);

        /* b3 gone from the array altogether (indices shift): the same. */
        struct balance_backend nine[9];
        for (size_t i = 0, k = 0; i < 10; i++)
                if (i != 3)
                        nine[k++] = (struct balance_backend) { .name = set[i].name, .weight = 1, .state = UP };
        CU_ASSERT_EQUAL(balance_update(b, nine, 9), 0);
        map_clients(b, nine, after);
        moved = 0;
        for (unsigned c = 0; c < CLIENTS; c++)
                if (before[c] != after[c]) {
                        moved++;
                        CU_ASSERT_STRING_EQUAL_FATAL(before[c], "b3");
                }
        CU_ASSERT_EQUAL(moved, per[3]);

        /* An 11th backend: only clients moving to it, about 1/11. */
        set[3].state = UP;
        make_set(set, 11, NULL, NULL);
        CU_ASSERT_EQUAL(balance_update(b, set, 11), 0);
        map_clients(b, set, after);
        moved = 0;
        for (unsigned c = 0; c < CLIENTS; c++)
                if (before[c] != after[c]) {
                        moved++;
                        CU_ASSERT_STRING_EQUAL_FATAL(after[c], "b10");
                }
        CU_ASSERT(moved >= CLIENTS * 6 / 100 && moved <= CLIENTS * 12 / 100);
        balance_free(b);
}

/* Weight is honoured (virtual nodes), and a key-less pick uses rnd as the hash. */
static void test_sourcehash_weights(void) {
        static const char *map[CLIENTS];
        struct balance_backend set[2];
        unsigned heavy = 0;
        struct balance *b;

        make_set(set, 2, (const uint32_t[]) { 1, 3 }, NULL);
        b = build_ok(BALANCE_SOURCEHASH, set, 2);
        map_clients(b, set, map);
        for (unsigned c = 0; c < CLIENTS; c++)
                heavy += map[c] == set[1].name;
        CU_ASSERT(heavy > CLIENTS * 0.70 && heavy < CLIENTS * 0.80);

        size_t x, y;
        CU_ASSERT_EQUAL(balance_pick(b, 12345, NULL, 0, &x), 0);
        CU_ASSERT_EQUAL(balance_pick(b, 12345, NULL, 0, &y), 0);
        CU_ASSERT_EQUAL(x, y);
        /* With a key, rnd is ignored. */
        CU_ASSERT_EQUAL(balance_pick(b, 1, "10.0.0.1", 8, &x), 0);
        CU_ASSERT_EQUAL(balance_pick(b, 2, "10.0.0.1", 8, &y), 0);
        CU_ASSERT_EQUAL(x, y);
        balance_free(b);

        /* Very heavy sets scale the ring down and still build and pick. */
        static struct balance_backend big[1000];
        make_set(big, 1000, NULL, NULL);
        for (size_t i = 0; i < 1000; i++)
                big[i].weight = BALANCE_WEIGHT_MAX;
        b = build_ok(BALANCE_SOURCEHASH, big, 1000);
        CU_ASSERT_EQUAL(balance_pick(b, 0, "10.0.0.1", 8, &x), 0);
        CU_ASSERT(x < 1000);
        balance_free(b);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "printers", test_printers },
                { "siphash vectors", test_hash_vectors },
                { "validation", test_validation },
                { "edge cases", test_edges },
                { "states and weight 0", test_states },
                { "roundrobin order", test_roundrobin },
                { "wrr nginx pattern", test_wrr_pattern },
                { "wrr oracle and shares", test_wrr_oracle },
                { "wrr spread", test_wrr_spread },
                { "random statistics", test_random_stats },
                { "wrandom statistics", test_wrandom_stats },
                { "wrandom exact", test_wrandom_exact },
                { "wlc oracle", test_wlc_oracle },
                { "wlc basics", test_wlc_basics },
                { "sourcehash movement", test_sourcehash },
                { "sourcehash weights", test_sourcehash_weights },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "balance", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
