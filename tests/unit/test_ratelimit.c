/*
 * GCRA: allow/deny decisions and retry-after values at exact microseconds,
 * the rounding of the emission interval, "used" counts, and restore.
 */
#include <errno.h>

#include "common/util.h"
#include "core/ratelimit.h"
#include "unit.h"

#define S USEC_PER_SEC

struct step {
        uint64_t now;
        bool allow;
        uint64_t retry;         /* when denied */
        unsigned used;          /* ratelimit_used() after the step */
};

static const struct {
        const char *name;
        unsigned limit;
        uint64_t window;
        uint64_t interval, tolerance;
        struct step steps[12];
        size_t n;
} scripts[] = {
        {
                "3 per 3s: burst of 3, then one per second", 3, 3 * S, S, 2 * S,
                {
                        { 0, true, 0, 1 },
                        { 0, true, 0, 2 },
                        { 0, true, 0, 3 },
                        { 0, false, S, 3 },
                        { S - 1, false, 1, 3 },
                        { S, true, 0, 3 },
                        { S, false, S, 3 },
                        { 2 * S + 500000, true, 0, 3 },         /* tat was 4s, now 5s: ceil(2.5) in use */
                        { 2 * S + 500000, false, 500000, 2 + 1 },
                        { 10 * S, true, 0, 1 },                  /* drained */
                },
                10,
        },
        {
                "1 per second: no burst", 1, S, S, 0,
                {
                        { 5, true, 0, 1 },
                        { 5, false, S, 1 },
                        { S + 4, false, 1, 1 },
                        { S + 5, true, 0, 1 },
                        { 3 * S, true, 0, 1 },
                },
                5,
        },
        {
                /* T = ceil(10/4) = 3: exactly 4 at once, never 5 (10/2 would allow 5). */
                "4 per 10us: interval rounded up", 4, 10, 3, 9,
                {
                        { 100, true, 0, 1 },
                        { 100, true, 0, 2 },
                        { 100, true, 0, 3 },
                        { 100, true, 0, 4 },
                        { 100, false, 3, 4 },
                        { 102, false, 1, 4 },
                        { 103, true, 0, 4 },
                        { 103, false, 3, 4 },
                },
                8,
        },
        {
                "5 per 10 minutes, spread out", 5, 10 * USEC_PER_MIN, 2 * USEC_PER_MIN, 8 * USEC_PER_MIN,
                {
                        { 0, true, 0, 1 },
                        { USEC_PER_MIN, true, 0, 2 },            /* tat 4m: ceil(3m / 2m) in use */
                        { 2 * USEC_PER_MIN, true, 0, 2 },        /* tat 6m */
                        { 2 * USEC_PER_MIN, true, 0, 3 },        /* tat 8m */
                        { 2 * USEC_PER_MIN, true, 0, 4 },        /* tat 10m */
                        { 2 * USEC_PER_MIN, true, 0, 5 },        /* 8m ahead, at the tolerance: tat 12m */
                        { 2 * USEC_PER_MIN, false, 2 * USEC_PER_MIN, 5 },
                        { 4 * USEC_PER_MIN - 1, false, 1, 5 },
                        { 4 * USEC_PER_MIN, true, 0, 5 },
                },
                9,
        },
};

static void test_scripts(void) {
        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                struct ratelimit rl;

                CU_ASSERT_EQUAL_FATAL(ratelimit_init(&rl, scripts[i].limit, scripts[i].window), 0);
                CU_ASSERT_EQUAL(rl.interval_us, scripts[i].interval);
                CU_ASSERT_EQUAL(rl.tolerance_us, scripts[i].tolerance);
                for (size_t j = 0; j < scripts[i].n; j++) {
                        const struct step *st = &scripts[i].steps[j];
                        uint64_t retry = UINT64_MAX, peek = UINT64_MAX;
                        bool check = ratelimit_check(&rl, st->now, &peek);
                        uint64_t tat = rl.tat_us;
                        bool a = ratelimit_allow(&rl, st->now, &retry);

                        if (a != st->allow || (!a && retry != st->retry) || ratelimit_used(&rl, st->now) != st->used)
                                fprintf(stderr, "%s step %zu: allow %d retry %llu used %u\n", scripts[i].name, j, a,
                                        (unsigned long long) retry, ratelimit_used(&rl, st->now));
                        CU_ASSERT_EQUAL(a, st->allow);
                        CU_ASSERT_EQUAL(check, st->allow);
                        if (!a) {
                                CU_ASSERT_EQUAL(retry, st->retry);
                                CU_ASSERT_EQUAL(peek, st->retry);
                                /* A denial changes nothing. */
                                CU_ASSERT_EQUAL(rl.tat_us, tat);
                        } else {
                                CU_ASSERT_EQUAL(retry, UINT64_MAX);
                        }
                        CU_ASSERT_EQUAL(ratelimit_used(&rl, st->now), st->used);
                }
        }
}

/* Over a long run at the maximum rate, never more than limit + (elapsed / T) events. */
static void test_long_run(void) {
        struct ratelimit rl;
        unsigned allowed = 0;

        CU_ASSERT_EQUAL_FATAL(ratelimit_init(&rl, 7, 70000), 0);
        for (uint64_t now = 0; now <= 700000; now += 100)
                while (ratelimit_allow(&rl, now, NULL))
                        allowed++;
        /* 7 at once, then one every 10000µs for 700000µs. */
        CU_ASSERT_EQUAL(allowed, 7 + 70);
}

static void test_init(void) {
        static const struct {
                unsigned limit;
                uint64_t window;
                int ret;
        } cases[] = {
                { 1, 1, 0 },
                { 5, 5, 0 },
                { 5, 4, -EINVAL },
                { 0, 10, -EINVAL },
                { RATELIMIT_LIMIT_MAX, RATELIMIT_WINDOW_MAX, 0 },
                { RATELIMIT_LIMIT_MAX + 1, RATELIMIT_WINDOW_MAX, -EINVAL },
                { 1, RATELIMIT_WINDOW_MAX + 1, -EINVAL },
        };
        struct ratelimit rl;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_EQUAL(ratelimit_init(&rl, cases[i].limit, cases[i].window), cases[i].ret);
        CU_ASSERT_EQUAL(ratelimit_init(NULL, 1, 1), -EINVAL);

        /* The extremes do not overflow: a full burst at the end of a long uptime. */
        CU_ASSERT_EQUAL_FATAL(ratelimit_init(&rl, 3, RATELIMIT_WINDOW_MAX), 0);
        {
                uint64_t now = UINT64_C(1) << 62, retry = 0;
                CU_ASSERT_TRUE(ratelimit_allow(&rl, now, NULL));
                CU_ASSERT_TRUE(ratelimit_allow(&rl, now, NULL));
                CU_ASSERT_TRUE(ratelimit_allow(&rl, now, NULL));
                CU_ASSERT_FALSE(ratelimit_allow(&rl, now, &retry));
                CU_ASSERT_EQUAL(retry, rl.interval_us);
                CU_ASSERT_EQUAL(ratelimit_used(&rl, now), 3);
        }
}

static void test_restore(void) {
        struct ratelimit a, b;
        uint64_t ra = 0, rb = 0;

        /* Save after two of three, restore into a fresh limiter: the same decisions follow. */
        CU_ASSERT_EQUAL_FATAL(ratelimit_init(&a, 3, 3 * S), 0);
        CU_ASSERT_TRUE(ratelimit_allow(&a, 10 * S, NULL));
        CU_ASSERT_TRUE(ratelimit_allow(&a, 10 * S, NULL));
        CU_ASSERT_EQUAL_FATAL(ratelimit_init(&b, 3, 3 * S), 0);
        ratelimit_restore(&b, a.tat_us, 10 * S);
        CU_ASSERT_EQUAL(b.tat_us, 12 * S);
        for (uint64_t now = 10 * S; now < 20 * S; now += 250000) {
                bool x = ratelimit_allow(&a, now, &ra), y = ratelimit_allow(&b, now, &rb);
                CU_ASSERT_EQUAL(x, y);
                if (!x)
                        CU_ASSERT_EQUAL(ra, rb);
        }

        /* From the future (a clock jump, a corrupt row): at most a full burst in use. */
        ratelimit_restore(&b, UINT64_MAX, 50 * S);
        CU_ASSERT_EQUAL(b.tat_us, 53 * S);
        CU_ASSERT_EQUAL(ratelimit_used(&b, 50 * S), 3);
        CU_ASSERT_FALSE(ratelimit_allow(&b, 50 * S, &rb));
        CU_ASSERT_EQUAL(rb, S);
        /* From the past: idle. */
        ratelimit_restore(&b, 49 * S, 50 * S);
        CU_ASSERT_EQUAL(b.tat_us, 0);
        CU_ASSERT_EQUAL(ratelimit_used(&b, 50 * S), 0);
        ratelimit_restore(&b, 50 * S, 50 * S);
        CU_ASSERT_EQUAL(b.tat_us, 0);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "scripted decisions", test_scripts },
                { "long run rate", test_long_run },
                { "init bounds", test_init },
                { "restore", test_restore },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "ratelimit", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
