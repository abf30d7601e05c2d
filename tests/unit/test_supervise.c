/*
 * Restart decisions: exact action lists for a crash loop (backoff, rate limit,
 * quarantine, retries at the cap, reset after a stable period), systemd's own
 * restarts never doubled, job results, missing units, manual restarts,
 * backoff and jitter bounds over many draws of a deterministic RNG, and
 * save/restore continuing the same limits.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "core/supervise.h"
#include "unit.h"

#define S USEC_PER_SEC
#define MS USEC_PER_MSEC
#define T0 (1000 * S)   /* a monotonic clock that has been running a while */

#define A_RESTART SUPERVISE_ACTION_RESTART
#define A_SUPPRESS SUPERVISE_ACTION_SUPPRESS
#define A_QUARANTINE SUPERVISE_ACTION_QUARANTINE
#define A_UNQUARANTINE SUPERVISE_ACTION_UNQUARANTINE
#define A_RESET SUPERVISE_ACTION_RESET
#define A_RECHECK SUPERVISE_ACTION_RECHECK
#define A_WAKEUP SUPERVISE_ACTION_WAKEUP

#define R_NONE SUPERVISE_REASON_NONE
#define R_UNHEALTHY SUPERVISE_REASON_UNHEALTHY
#define R_RETRY SUPERVISE_REASON_QUARANTINE_RETRY
#define R_MANUAL SUPERVISE_REASON_MANUAL
#define R_LIMITED SUPERVISE_REASON_RATE_LIMITED
#define R_BACKOFF SUPERVISE_REASON_BACKOFF
#define R_QUARANTINED SUPERVISE_REASON_QUARANTINED
#define R_IN_FLIGHT SUPERVISE_REASON_IN_FLIGHT
#define R_SD_RESTARTING SUPERVISE_REASON_SYSTEMD_RESTARTING
#define R_SD_BUSY SUPERVISE_REASON_SYSTEMD_BUSY
#define R_NO_UNIT SUPERVISE_REASON_NO_UNIT
#define R_STABLE SUPERVISE_REASON_STABLE
#define R_CHANGED SUPERVISE_REASON_UNIT_CHANGED

/* --- RNGs ---------------------------------------------------------------- */

static uint64_t rng_zero(void *userdata) {
        (void) userdata;
        return 0;
}

/* xorshift64*: deterministic, good enough to spread draws over the jitter range. */
static uint64_t rng_xorshift(void *userdata) {
        uint64_t *x = userdata;

        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        return *x * UINT64_C(2685821657736338717);
}

/* --- action list assertions ---------------------------------------------- */

struct exp {
        enum supervise_action_type type;
        enum supervise_reason reason;
        unsigned attempt;
        uint64_t at;
};

static void dump(const struct supervise_output *out) {
        char buf[128];

        for (size_t i = 0; i < out->n; i++)
                fprintf(stderr, "    got %s %s attempt=%u at=%llu (%s)\n",
                        supervise_action_type_to_string(out->actions[i].type),
                        supervise_reason_to_string(out->actions[i].reason), out->actions[i].attempt,
                        (unsigned long long) out->actions[i].at_us,
                        supervise_action_format(&out->actions[i], T0, buf, sizeof(buf)));
}

/* Asserts the output holds exactly these actions, in order, then drains it. */
static void expect_actions(struct supervise_output *out, const struct exp *e, size_t n, int line) {
        bool same = out->n == n;

        for (size_t i = 0; same && i < n; i++)
                same = out->actions[i].type == e[i].type && out->actions[i].reason == e[i].reason &&
                       out->actions[i].attempt == e[i].attempt && out->actions[i].at_us == e[i].at;
        if (!same) {
                fprintf(stderr, "\n  line %d: expected %zu actions:\n", line, n);
                for (size_t i = 0; i < n; i++)
                        fprintf(stderr, "    want %s %s attempt=%u at=%llu\n", supervise_action_type_to_string(e[i].type),
                                supervise_reason_to_string(e[i].reason), e[i].attempt, (unsigned long long) e[i].at);
                dump(out);
        }
        CU_ASSERT_TRUE(same);
        out->n = 0;
}

#define EXPECT(out, ...) \
        expect_actions(out, (const struct exp[]) { __VA_ARGS__ }, \
                       sizeof((const struct exp[]) { __VA_ARGS__ }) / sizeof(struct exp), __LINE__)
#define EXPECT_NONE(out) expect_actions(out, NULL, 0, __LINE__)

static const struct supervise_config crash_cfg = {
        .restart_limit = 3,
        .restart_window_us = 60 * S,
        .backoff_us = 1 * S,
        .backoff_max_us = 8 * S,
        .stable_us = 0, /* backoff_max */
};

static const struct supervise_unit_status active_unit = { .active = SUPERVISE_ACTIVE_ACTIVE, .main_pid = 100 };
static const struct supervise_unit_status failed_unit = { .active = SUPERVISE_ACTIVE_FAILED };

/* --- tests --------------------------------------------------------------- */

static void test_backoff_table(void) {
        static const struct {
                uint64_t backoff, max;
                unsigned attempt;
                uint64_t lo, hi;
        } cases[] = {
                { S, 30 * S, 0, S / 2, S },
                { S, 30 * S, 1, S / 2, S },
                { S, 30 * S, 2, S, 2 * S },
                { S, 30 * S, 3, 2 * S, 4 * S },
                { S, 30 * S, 4, 4 * S, 8 * S },
                { S, 30 * S, 5, 8 * S, 16 * S },
                { S, 30 * S, 6, 15 * S, 30 * S },       /* 32s capped at 30s */
                { S, 30 * S, 7, 15 * S, 30 * S },
                { S, 30 * S, 64, 15 * S, 30 * S },      /* no shift overflow */
                { S, 30 * S, SUPERVISE_ATTEMPT_MAX, 15 * S, 30 * S },
                { 5, 100, 1, 3, 5 },                    /* odd: b - b/2 rounds the low end up */
                { 7, 7, 10, 4, 7 },
                { UINT64_C(1) << 40, UINT64_C(1) << 50, 30, UINT64_C(1) << 49, UINT64_C(1) << 50 },
                { 1, 1, 1, 1, 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct supervise_config c = { .backoff_us = cases[i].backoff, .backoff_max_us = cases[i].max };
                uint64_t span = cases[i].hi - cases[i].lo;

                CU_ASSERT_EQUAL(supervise_backoff_delay(&c, cases[i].attempt, 0), cases[i].lo);
                CU_ASSERT_EQUAL(supervise_backoff_delay(&c, cases[i].attempt, span), cases[i].hi);
                /* The draw wraps modulo span + 1. */
                CU_ASSERT_EQUAL(supervise_backoff_delay(&c, cases[i].attempt, span + 1), cases[i].lo);
                CU_ASSERT_EQUAL(supervise_backoff_delay(&c, cases[i].attempt, UINT64_MAX),
                                cases[i].lo + UINT64_MAX % (span + 1));
        }
}

static void test_jitter_bounds(void) {
        struct supervise_config c = { .backoff_us = 1000, .backoff_max_us = 64000 };
        uint64_t x = 0x9E3779B97F4A7C15ull;

        /* Every draw of every attempt lies in [b - b/2, b]; at the cap the draws cover the range. */
        for (unsigned attempt = 1; attempt <= 10; attempt++) {
                uint64_t b = attempt <= 7 ? UINT64_C(1000) << (attempt - 1) : 64000;
                uint64_t lo = b - b / 2, min = UINT64_MAX, max = 0, sum = 0;
                const unsigned draws = 20000;

                for (unsigned i = 0; i < draws; i++) {
                        uint64_t d = supervise_backoff_delay(&c, attempt, rng_xorshift(&x));
                        CU_ASSERT_TRUE(d >= lo && d <= b);
                        min = d < min ? d : min;
                        max = d > max ? d : max;
                        sum += d;
                }
                /* Spread: both ends within 1% of the span are reached, the mean is mid-range. */
                CU_ASSERT_TRUE(min <= lo + (b - lo) / 100);
                CU_ASSERT_TRUE(max >= b - (b - lo) / 100);
                CU_ASSERT_TRUE(sum / draws >= lo + (b - lo) * 45 / 100 && sum / draws <= lo + (b - lo) * 55 / 100);
        }
}

/* The same bounds through the state machine: 2000 restarts with a random RNG. */
static void test_jitter_in_flow(void) {
        struct supervise_config c = {
                .restart_limit = 1000000, .restart_window_us = 1000000, .backoff_us = 1000, .backoff_max_us = 64000,
        };
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        uint64_t x = 42, now = T0;

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &c, rng_xorshift, &x), 0);
        supervise_unit(&s, &active_unit, now, &out);
        for (unsigned i = 1; i <= 2000; i++) {
                uint64_t b = i <= 7 ? UINT64_C(1000) << (i - 1) : 64000, d;

                out.n = 0;
                supervise_verdict(&s, HEALTH_UNHEALTHY, now, &out);
                CU_ASSERT_EQUAL_FATAL(out.n, 1);
                CU_ASSERT_EQUAL(out.actions[0].type, A_RESTART);
                CU_ASSERT_EQUAL(out.actions[0].attempt, i);
                d = s.next_at_us - now;
                CU_ASSERT_TRUE(d >= b - b / 2 && d <= b);
                out.n = 0;
                supervise_job_result(&s, SUPERVISE_JOB_DONE, now + 1, &out);
                CU_ASSERT_EQUAL(out.n, 0);
                now = s.next_at_us;
        }
        CU_ASSERT_EQUAL(s.n_restarts, 2000);
        CU_ASSERT_FALSE(s.quarantined);
}

/*
 * A unit that dies at once on every start: restarts 1..3 follow the backoff
 * (minimum jitter), the 4th is denied by the limiter (3 per 60s) and the
 * instance is quarantined, retried every backoff_max, and released after
 * being healthy for backoff_max.
 */
static void test_crash_loop(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_unit(&s, &active_unit, T0, &out);
        EXPECT_NONE(&out);
        CU_ASSERT_TRUE(supervise_in_rotation(&s));

        /* 1: the first restart is immediate. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
        CU_ASSERT_EQUAL(s.verdict, HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 500 * MS);
        CU_ASSERT_TRUE(s.in_flight);
        supervise_unit(&s, &(struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_ACTIVATING, .job_pending = true },
                       T0 + 10 * MS, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 });
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 20 * MS, &out);
        EXPECT_NONE(&out);
        supervise_unit(&s, &failed_unit, T0 + 20 * MS, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 });

        /* 2: the fresh verdict comes before the backoff has passed. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 100 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_BACKOFF, 0, T0 + 500 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 500 * MS });
        /* The same verdict again is not reported twice. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 200 * MS, &out);
        EXPECT_NONE(&out);
        supervise_tick(&s, T0 + 500 * MS - 1, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 500 * MS });
        supervise_tick(&s, T0 + 500 * MS, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 2, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 1500 * MS);
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 600 * MS, &out);
        EXPECT_NONE(&out);

        /* 3 */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 700 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_BACKOFF, 0, T0 + 1500 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 1500 * MS });
        supervise_tick(&s, T0 + 1500 * MS, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 3, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 3500 * MS);
        CU_ASSERT_EQUAL(supervise_restarts_in_window(&s, T0 + 1500 * MS), 3);
        supervise_job_result(&s, SUPERVISE_JOB_FAILED, T0 + 1600 * MS, &out);
        EXPECT_NONE(&out);
        CU_ASSERT_EQUAL(s.last_job, SUPERVISE_JOB_FAILED);

        /* 4th: past the limit -> quarantined, first retry at the cap. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 2 * S, &out);
        EXPECT(&out, { A_SUPPRESS, R_BACKOFF, 0, T0 + 3500 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 3500 * MS });
        supervise_tick(&s, T0 + 3500 * MS, &out);
        EXPECT(&out, { A_QUARANTINE, R_LIMITED, 3, T0 + 11500 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 11500 * MS });
        CU_ASSERT_EQUAL(s.n_restarts, 3);
        CU_ASSERT_TRUE(s.quarantined);
        CU_ASSERT_EQUAL(s.quarantined_at_us, T0 + 3500 * MS);
        CU_ASSERT_FALSE(supervise_in_rotation(&s));
        supervise_tick(&s, T0 + 5 * S, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 11500 * MS });

        /* Quarantined: retried exactly every backoff_max, never given up. */
        supervise_tick(&s, T0 + 11500 * MS, &out);
        EXPECT(&out, { A_RESTART, R_RETRY, 4, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 11600 * MS, &out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 12 * S, &out);
        EXPECT(&out, { A_SUPPRESS, R_QUARANTINED, 0, T0 + 19500 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 19500 * MS });
        supervise_tick(&s, T0 + 19500 * MS, &out);
        EXPECT(&out, { A_RESTART, R_RETRY, 5, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        CU_ASSERT_EQUAL(s.n_restarts, 5);
        CU_ASSERT_TRUE(s.quarantined);

        /* Healthy for backoff_max (8s): out of quarantine, backoff from the start. */
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 19600 * MS, &out);
        EXPECT_NONE(&out);
        supervise_verdict(&s, HEALTH_HEALTHY, T0 + 20 * S, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 28 * S });
        supervise_tick(&s, T0 + 28 * S - 1, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 28 * S });
        CU_ASSERT_TRUE(s.quarantined);
        supervise_tick(&s, T0 + 28 * S, &out);
        EXPECT(&out, { A_UNQUARANTINE, R_STABLE, 0, 0 }, { A_RESET, R_STABLE, 0, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        CU_ASSERT_FALSE(s.quarantined);
        CU_ASSERT_TRUE(supervise_in_rotation(&s));
        CU_ASSERT_EQUAL(s.attempt, 0);
        CU_ASSERT_EQUAL(s.next_at_us, 0);
        CU_ASSERT_EQUAL(supervise_next_wakeup(&s), 0);

        /* The limiter was not reset: restarts 1..3 at T0, T0+0.5s, T0+1.5s leave tat at T0+60s. */
        CU_ASSERT_EQUAL(s.limiter.tat_us, T0 + 60 * S);
        CU_ASSERT_EQUAL(supervise_restarts_in_window(&s, T0 + 28 * S), 2);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 30 * S, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
}

/* Quarantine comes after exactly `limit` restarts, for several limits. */
static void test_quarantine_count(void) {
        for (unsigned limit = 1; limit <= 12; limit++) {
                struct supervise_config c = {
                        .restart_limit = limit, .restart_window_us = 600 * S,
                        .backoff_us = 10 * MS, .backoff_max_us = 20 * MS,
                };
                struct supervise s;
                struct supervise_output out = { .n = 0 };
                uint64_t now = T0;
                unsigned restarts = 0;

                CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &c, rng_zero, NULL), 0);
                while (!s.quarantined && restarts <= limit + 1) {
                        out.n = 0;
                        supervise_verdict(&s, HEALTH_UNHEALTHY, now, &out);
                        supervise_tick(&s, now, &out);
                        for (size_t i = 0; i < out.n; i++)
                                restarts += out.actions[i].type == A_RESTART;
                        supervise_job_result(&s, SUPERVISE_JOB_DONE, now, &out);
                        now += 20 * MS;
                }
                CU_ASSERT_TRUE(s.quarantined);
                CU_ASSERT_EQUAL(restarts, limit);
                CU_ASSERT_EQUAL(s.n_restarts, limit);
        }
}

/* Restart=always, SIGKILLed: systemd restarts it; agentd only rechecks. */
static void test_systemd_restarts_itself(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        struct supervise_unit_status st = { .active = SUPERVISE_ACTIVE_ACTIVE, .restart_configured = true, .main_pid = 100 };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_unit(&s, &st, T0, &out);
        supervise_verdict(&s, HEALTH_HEALTHY, T0, &out);
        EXPECT_NONE(&out);

        /* Killed: the stop phase, then auto-restart (activating/auto-restart). */
        st = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_DEACTIVATING, .restart_configured = true, .main_pid = 0 };
        supervise_unit(&s, &st, T0 + 1 * MS, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 });
        st = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_ACTIVATING, .auto_restart = true, .restart_configured = true };
        supervise_unit(&s, &st, T0 + 2 * MS, &out);
        EXPECT_NONE(&out);      /* busy -> busy: no edge */
        /* Our checks failed meanwhile: held back, no timer. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 100 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_SD_RESTARTING, 0, 0 });
        supervise_tick(&s, T0 + 150 * MS, &out);
        EXPECT_NONE(&out);
        /* The start job. */
        st = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_ACTIVATING, .restart_configured = true, .job_pending = true };
        supervise_unit(&s, &st, T0 + 200 * MS, &out);
        EXPECT_NONE(&out);
        /* Running again under a new MainPID: the verdict gathered meanwhile is stale. */
        st = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_ACTIVE, .restart_configured = true, .main_pid = 200 };
        supervise_unit(&s, &st, T0 + 300 * MS, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 });
        CU_ASSERT_EQUAL(s.verdict, HEALTH_UNKNOWN);
        supervise_verdict(&s, HEALTH_HEALTHY, T0 + 1 * S, &out);
        EXPECT_NONE(&out);
        CU_ASSERT_EQUAL(s.n_restarts, 0);
        CU_ASSERT_EQUAL(s.limiter.tat_us, 0);

        /* The same when the two properties change in one signal: active -> active with a new MainPID. */
        st.main_pid = 300;
        supervise_unit(&s, &st, T0 + 2 * S, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 });

        /* Hung but alive (no transition): agentd restarts. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 3 * S, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 3100 * MS, &out);

        /* systemd gave up (start limit hit: failed, not auto-restart): agentd restarts. */
        st = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_FAILED, .restart_configured = true };
        supervise_unit(&s, &st, T0 + 4 * S, &out);
        EXPECT_NONE(&out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 5 * S, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 2, 0 });
}

/* The busy reasons, one fresh supervisor per row: an unhealthy verdict while the unit is in that state. */
static void test_busy_reasons(void) {
        static const struct {
                struct supervise_unit_status st;
                enum supervise_reason reason;   /* R_NONE: restarts */
        } cases[] = {
                { { .active = SUPERVISE_ACTIVE_ACTIVE, .main_pid = 5 }, R_NONE },
                { { .active = SUPERVISE_ACTIVE_FAILED }, R_NONE },
                { { .active = SUPERVISE_ACTIVE_INACTIVE }, R_NONE },
                { { .active = SUPERVISE_ACTIVE_UNKNOWN }, R_NONE },
                { { .active = SUPERVISE_ACTIVE_ACTIVATING, .auto_restart = true }, R_SD_RESTARTING },
                { { .active = SUPERVISE_ACTIVE_FAILED, .auto_restart = true }, R_SD_RESTARTING },
                { { .active = SUPERVISE_ACTIVE_ACTIVATING, .restart_configured = true }, R_SD_RESTARTING },
                { { .active = SUPERVISE_ACTIVE_ACTIVATING }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_ACTIVE, .job_pending = true }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_DEACTIVATING }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_RELOADING }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_MAINTENANCE }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_REFRESHING }, R_SD_BUSY },
                { { .active = SUPERVISE_ACTIVE_INACTIVE, .not_found = true }, R_NO_UNIT },
                { { .active = SUPERVISE_ACTIVE_INACTIVE, .not_found = true, .job_pending = true }, R_NO_UNIT },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct supervise s;
                struct supervise_output out = { .n = 0 };

                CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
                supervise_unit(&s, &cases[i].st, T0, &out);
                EXPECT_NONE(&out);
                supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
                if (cases[i].reason == R_NONE)
                        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
                else
                        EXPECT(&out, { A_SUPPRESS, cases[i].reason, 0, 0 });
        }
}

static void test_in_flight_and_jobs(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_unit(&s, &active_unit, T0, &out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
        /* A fresh unhealthy verdict before our job has finished: wait for it. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 100 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_IN_FLIGHT, 0, 0 });
        supervise_tick(&s, T0 + 600 * MS, &out);
        EXPECT_NONE(&out);
        /* The result comes after the backoff has passed: the next restart goes out at once. */
        supervise_job_result(&s, SUPERVISE_JOB_TIMEOUT, T0 + 700 * MS, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 2, 0 });
        CU_ASSERT_EQUAL(s.last_job, SUPERVISE_JOB_TIMEOUT);
        /* ... and when it comes before, a timer for the rest. */
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 800 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_IN_FLIGHT, 0, 0 });
        /* A lost call (bus gone) is "unknown", handled like any result. */
        supervise_job_result(&s, SUPERVISE_JOB_UNKNOWN, T0 + 900 * MS, &out);
        EXPECT(&out, { A_SUPPRESS, R_BACKOFF, 0, T0 + 1700 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 1700 * MS });
        CU_ASSERT_EQUAL(s.last_job, SUPERVISE_JOB_UNKNOWN);
        /* A result nobody waits for, or out of range, changes nothing else. */
        supervise_job_result(&s, (enum supervise_job_result) 99, T0 + 1 * S, &out);
        EXPECT_NONE(&out);
        CU_ASSERT_EQUAL(s.last_job, SUPERVISE_JOB_UNKNOWN);
}

static void test_missing_unit(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        struct supervise_unit_status st = { .active = SUPERVISE_ACTIVE_INACTIVE, .not_found = true };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_unit(&s, &st, T0, &out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_SUPPRESS, R_NO_UNIT, 0, 0 });
        CU_ASSERT_EQUAL(supervise_next_wakeup(&s), 0);
        supervise_unit(&s, &st, T0 + S, &out);
        supervise_tick(&s, T0 + 2 * S, &out);
        EXPECT_NONE(&out);
        /* The unit appears (daemon-reload): restarted at once. */
        st.not_found = false;
        supervise_unit(&s, &st, T0 + 3 * S, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
}

static void test_manual(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        CU_ASSERT_EQUAL(supervise_manual_restart(&s, T0, &out), 0);
        EXPECT(&out, { A_RESTART, R_MANUAL, 0, 0 });
        CU_ASSERT_EQUAL(supervise_manual_restart(&s, T0, &out), -EBUSY);
        EXPECT_NONE(&out);
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 1, &out);
        /* Not an attempt and not charged to the limiter. */
        CU_ASSERT_EQUAL(s.attempt, 0);
        CU_ASSERT_EQUAL(s.limiter.tat_us, 0);
        CU_ASSERT_EQUAL(s.n_restarts, 1);

        /* Also while quarantined, without ending the quarantine. */
        for (int i = 0; i < 3; i++) {
                supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 10 * S, &out);
                supervise_tick(&s, T0 + 10 * S, &out);
                supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 10 * S, &out);
                supervise_tick(&s, s.next_at_us, &out);
                supervise_job_result(&s, SUPERVISE_JOB_DONE, s.next_at_us, &out);
        }
        out.n = 0;
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 20 * S, &out);
        CU_ASSERT_TRUE(s.quarantined);
        out.n = 0;
        CU_ASSERT_EQUAL(supervise_manual_restart(&s, T0 + 21 * S, &out), 0);
        CU_ASSERT_EQUAL(out.n, 2);
        CU_ASSERT_EQUAL(out.actions[0].type, A_RESTART);
        CU_ASSERT_EQUAL(out.actions[0].reason, R_MANUAL);
        CU_ASSERT_EQUAL(out.actions[1].type, A_WAKEUP);
        CU_ASSERT_EQUAL(out.actions[1].at_us, 0);
        CU_ASSERT_TRUE(s.quarantined);
}

/* A healthy period interrupted before stable_us does not reset anything. */
static void test_stable_interrupted(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        struct supervise_config c = crash_cfg;

        c.stable_us = 5 * S;
        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &c, rng_zero, NULL), 0);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 1, 0 });
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0, &out);
        supervise_verdict(&s, HEALTH_HEALTHY, T0 + 1 * S, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 6 * S });
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 6 * S - 1, &out);
        EXPECT(&out, { A_RESTART, R_UNHEALTHY, 2, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 6 * S, &out);
        supervise_verdict(&s, HEALTH_HEALTHY, T0 + 7 * S, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 12 * S });
        /* A RECHECK (systemd reloading it) restarts the stable clock too. */
        supervise_unit(&s, &(struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_RELOADING }, T0 + 8 * S, &out);
        supervise_unit(&s, &(struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_RELOADING }, T0 + 8 * S, &out);
        out.n = 0;
        supervise_unit(&s, &active_unit, T0 + 9 * S, &out);
        EXPECT(&out, { A_RECHECK, R_CHANGED, 0, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        supervise_verdict(&s, HEALTH_HEALTHY, T0 + 10 * S, &out);
        EXPECT(&out, { A_WAKEUP, R_NONE, 0, T0 + 15 * S });
        supervise_tick(&s, T0 + 15 * S, &out);
        EXPECT(&out, { A_RESET, R_STABLE, 0, 0 }, { A_WAKEUP, R_NONE, 0, 0 });
        CU_ASSERT_EQUAL(s.attempt, 0);
}

/* Drives a crash loop on a supervisor; the outputs of each step are appended to *log. */
static void crash_step(struct supervise *s, unsigned step, uint64_t now, struct supervise_output *out) {
        switch (step % 3) {
        case 0:
                supervise_verdict(s, HEALTH_UNHEALTHY, now, out);
                break;
        case 1:
                supervise_tick(s, now, out);
                break;
        default:
                supervise_job_result(s, SUPERVISE_JOB_DONE, now, out);
                break;
        }
}

static bool same_actions(const struct supervise_output *a, const struct supervise_output *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (a->actions[i].type != b->actions[i].type || a->actions[i].reason != b->actions[i].reason ||
                    a->actions[i].attempt != b->actions[i].attempt || a->actions[i].at_us != b->actions[i].at_us)
                        return false;
        return true;
}

/*
 * kill -9 in the middle of a crash loop: a supervisor restored from the
 * snapshot continues with the same attempts, backoff, limiter and
 * quarantine as the one that kept running.
 */
static void test_save_restore(void) {
        struct supervise a, b;
        struct supervise_snapshot snap;
        struct supervise_output oa = { .n = 0 }, ob = { .n = 0 };
        uint64_t xa = 7, xb = 7, now = T0;
        unsigned step;

        CU_ASSERT_EQUAL_FATAL(supervise_init(&a, &crash_cfg, rng_xorshift, &xa), 0);
        supervise_unit(&a, &failed_unit, now, &oa);
        for (step = 0; a.n_restarts < 2; step++) {
                now += 300 * MS;
                crash_step(&a, step, now, &oa);
        }
        oa.n = 0;
        supervise_save(&a, &snap);
        CU_ASSERT_EQUAL(snap.attempt, 2);
        CU_ASSERT_EQUAL(snap.n_restarts, 2);
        CU_ASSERT_FALSE(snap.quarantined);
        CU_ASSERT_EQUAL(snap.tat_us, a.limiter.tat_us);
        CU_ASSERT_EQUAL(snap.next_at_us, a.next_at_us);

        /* The new agent: same RNG position, state from the snapshot, unit status re-read. */
        CU_ASSERT_EQUAL_FATAL(supervise_init(&b, &crash_cfg, rng_xorshift, &xb), 0);
        xb = xa;
        supervise_restore(&b, &snap, now);
        CU_ASSERT_EQUAL(b.attempt, 2);
        CU_ASSERT_EQUAL(b.next_at_us, a.next_at_us);
        CU_ASSERT_EQUAL(b.limiter.tat_us, a.limiter.tat_us);
        CU_ASSERT_EQUAL(b.verdict, HEALTH_UNKNOWN);
        CU_ASSERT_FALSE(b.unit_known);
        CU_ASSERT_FALSE(b.in_flight);
        supervise_unit(&b, &failed_unit, now, &ob);
        ob.n = 0;
        /* a's last step may have left a job in flight; b's adapter lost it: settle a the same way. */
        supervise_job_result(&a, SUPERVISE_JOB_UNKNOWN, now, &oa);
        oa.n = 0;
        a.wakeup_us = 0;

        for (unsigned i = 0; i < 60; i++, step++) {
                now += 700 * MS;
                crash_step(&a, step, now, &oa);
                crash_step(&b, step, now, &ob);
                CU_ASSERT_TRUE(same_actions(&oa, &ob));
                if (!same_actions(&oa, &ob)) {
                        fprintf(stderr, "\n  step %u differs; a:\n", step);
                        dump(&oa);
                        fprintf(stderr, "  b:\n");
                        dump(&ob);
                        break;
                }
                oa.n = ob.n = 0;
        }
        /* Both went through the limit into quarantine and retries. */
        CU_ASSERT_TRUE(a.quarantined);
        CU_ASSERT_TRUE(b.quarantined);
        CU_ASSERT_EQUAL(a.n_restarts, b.n_restarts);
        CU_ASSERT_TRUE(b.n_restarts > 3);
}

/* Restored into a later agent: no burst; quarantine and backoff deadlines hold; bad values clamped. */
static void test_restore_no_burst(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        struct supervise_snapshot snap = {
                .attempt = 4,
                .next_at_us = T0 + 6 * S,
                .quarantined = true,
                .quarantined_at_us = T0 - 2 * S,
                .tat_us = T0 + 55 * S,
                .last_restart_us = T0 - 2 * S,
                .n_restarts = 4,
        };

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_restore(&s, &snap, T0);
        CU_ASSERT_FALSE(supervise_in_rotation(&s));
        supervise_unit(&s, &failed_unit, T0, &out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 1 * S, &out);
        EXPECT(&out, { A_SUPPRESS, R_QUARANTINED, 0, T0 + 6 * S }, { A_WAKEUP, R_NONE, 0, T0 + 6 * S });
        supervise_tick(&s, T0 + 6 * S, &out);
        EXPECT(&out, { A_RESTART, R_RETRY, 5, 0 }, { A_WAKEUP, R_NONE, 0, 0 });

        /* Not quarantined, limiter nearly full: the next restart after the backoff quarantines. */
        snap = (struct supervise_snapshot) { .attempt = 3, .next_at_us = T0 + 2 * S, .tat_us = T0 + 59 * S, .n_restarts = 3 };
        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_restore(&s, &snap, T0);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_SUPPRESS, R_BACKOFF, 0, T0 + 2 * S }, { A_WAKEUP, R_NONE, 0, T0 + 2 * S });
        supervise_tick(&s, T0 + 2 * S, &out);
        EXPECT(&out, { A_QUARANTINE, R_LIMITED, 3, T0 + 10 * S }, { A_WAKEUP, R_NONE, 0, T0 + 10 * S });

        /* Values from a clock that jumped: clamped to what the config allows. */
        snap = (struct supervise_snapshot) {
                .attempt = UINT32_MAX, .next_at_us = UINT64_MAX, .quarantined = true,
                .quarantined_at_us = UINT64_MAX, .tat_us = UINT64_MAX, .last_restart_us = UINT64_MAX,
        };
        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_restore(&s, &snap, T0);
        CU_ASSERT_EQUAL(s.attempt, SUPERVISE_ATTEMPT_MAX);
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 8 * S);
        CU_ASSERT_EQUAL(s.quarantined_at_us, T0);
        CU_ASSERT_EQUAL(s.last_restart_us, T0);
        CU_ASSERT_EQUAL(s.limiter.tat_us, T0 + 60 * S);
        CU_ASSERT_EQUAL(supervise_restarts_in_window(&s, T0), 3);

        /* Deadlines already past (the agent was down a while): acted on at once, once. */
        snap = (struct supervise_snapshot) { .attempt = 2, .next_at_us = T0 - 5 * S, .quarantined = true, .tat_us = T0 - S };
        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_restore(&s, &snap, T0);
        CU_ASSERT_EQUAL(s.limiter.tat_us, 0);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_RESTART, R_RETRY, 3, 0 });
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        EXPECT(&out, { A_SUPPRESS, R_IN_FLIGHT, 0, 0 });
}

static void test_configure(void) {
        struct supervise s;
        struct supervise_output out = { .n = 0 };
        struct supervise_config c = crash_cfg;

        CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0, &out);
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0, &out);
        supervise_tick(&s, T0 + 500 * MS, &out);
        supervise_job_result(&s, SUPERVISE_JOB_DONE, T0 + 500 * MS, &out);
        CU_ASSERT_EQUAL(s.attempt, 2);
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 1500 * MS);

        /* Lower limit and cap: state kept, next_at clamped, the limiter full. */
        c.restart_limit = 2;
        c.backoff_max_us = 1 * S;
        CU_ASSERT_EQUAL(supervise_configure(&s, &c, T0 + 400 * MS), 0);
        CU_ASSERT_EQUAL(s.attempt, 2);
        CU_ASSERT_EQUAL(s.next_at_us, T0 + 1400 * MS);
        CU_ASSERT_EQUAL(s.limiter.interval_us, 30 * S);
        CU_ASSERT_EQUAL(s.limiter.tat_us, T0 + 40 * S);
        out.n = 0;
        supervise_verdict(&s, HEALTH_UNHEALTHY, T0 + 1400 * MS, &out);
        EXPECT(&out, { A_QUARANTINE, R_LIMITED, 2, T0 + 2400 * MS }, { A_WAKEUP, R_NONE, 0, T0 + 2400 * MS });

        /* A bad config changes nothing. */
        c.backoff_us = 0;
        CU_ASSERT_EQUAL(supervise_configure(&s, &c, T0), -EINVAL);
        CU_ASSERT_EQUAL(s.config.backoff_us, crash_cfg.backoff_us);
        CU_ASSERT_EQUAL(s.config.restart_limit, 2);
}

static void test_init_validation(void) {
        static const struct {
                struct supervise_config c;
                int ret;
        } cases[] = {
                { { 3, 60 * S, S, 8 * S, 0 }, 0 },
                { { 1, 1, 1, 1, 0 }, 0 },
                { { 0, 60 * S, S, 8 * S, 0 }, -EINVAL },
                { { 3, 2, S, 8 * S, 0 }, -EINVAL },
                { { 3, 60 * S, 0, 8 * S, 0 }, -EINVAL },
                { { 3, 60 * S, 9 * S, 8 * S, 0 }, -EINVAL },
                { { 3, 60 * S, S, RATELIMIT_WINDOW_MAX + 1, 0 }, -EINVAL },
                { { 3, 60 * S, S, 8 * S, RATELIMIT_WINDOW_MAX + 1 }, -EINVAL },
        };
        struct supervise s;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_EQUAL(supervise_init(&s, &cases[i].c, rng_zero, NULL), cases[i].ret);
        CU_ASSERT_EQUAL(supervise_init(&s, &crash_cfg, NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL(supervise_init(&s, NULL, rng_zero, NULL), -EINVAL);

        /* Unknown verdict values are ignored. */
        {
                struct supervise_output out = { .n = 0 };
                CU_ASSERT_EQUAL_FATAL(supervise_init(&s, &crash_cfg, rng_zero, NULL), 0);
                supervise_verdict(&s, _HEALTH_STATE_INVALID, T0, &out);
                supervise_verdict(&s, _HEALTH_STATE_MAX, T0, &out);
                EXPECT_NONE(&out);
                CU_ASSERT_EQUAL(s.verdict, HEALTH_UNKNOWN);
        }
}

static void test_format(void) {
        static const struct {
                struct supervise_action a;
                const char *text;
        } cases[] = {
                { { A_RESTART, R_UNHEALTHY, 3, 0 }, "restart 3 (unhealthy)" },
                { { A_RESTART, R_MANUAL, 0, 0 }, "restart 0 (manual)" },
                { { A_SUPPRESS, R_BACKOFF, 0, T0 + 1500 * MS }, "suppressed: backoff for 1500ms" },
                { { A_SUPPRESS, R_QUARANTINED, 0, T0 + 1234 }, "suppressed: quarantined for 2ms" },
                { { A_SUPPRESS, R_SD_RESTARTING, 0, 0 }, "suppressed: systemd_restarting" },
                { { A_QUARANTINE, R_LIMITED, 5, T0 + 300 * S }, "quarantined after 5 restarts: rate_limited, retry in 5m" },
                { { A_QUARANTINE, R_LIMITED, 1, T0 + 2 * S }, "quarantined after 1 restart: rate_limited, retry in 2s" },
                { { A_UNQUARANTINE, R_STABLE, 0, 0 }, "unquarantined: stable" },
                { { A_RESET, R_STABLE, 0, 0 }, "backoff reset: stable" },
                { { A_RECHECK, R_CHANGED, 0, 0 }, "recheck: unit_changed" },
                { { A_WAKEUP, R_NONE, 0, 0 }, "wakeup: none" },
                { { A_WAKEUP, R_NONE, 0, T0 + 1234567 }, "wakeup in 1235ms" },
                { { A_WAKEUP, R_NONE, 0, T0 - 5 }, "wakeup in 0s" },
        };
        char buf[128];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_STRING_EQUAL(supervise_action_format(&cases[i].a, T0, buf, sizeof(buf)), cases[i].text);
        /* Truncation is safe. */
        CU_ASSERT_STRING_EQUAL(supervise_action_format(&cases[0].a, T0, buf, 8), "restart");
        CU_ASSERT_PTR_NULL(supervise_action_format(&cases[0].a, T0, buf, 0));
}

static void test_printers(void) {
        static const char *const actions[] = { "restart", "suppress", "quarantine", "unquarantine", "reset", "recheck", "wakeup" };
        static const char *const actives[] = {
                "unknown", "active", "reloading", "inactive", "failed", "activating", "deactivating", "maintenance", "refreshing",
        };
        static const char *const jobs[] = { "done", "canceled", "timeout", "failed", "dependency", "skipped", "invalid", "unknown" };

        CU_ASSERT_EQUAL(ELEMENTSOF(actions), _SUPERVISE_ACTION_MAX);
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                CU_ASSERT_STRING_EQUAL(supervise_action_type_to_string((enum supervise_action_type) i), actions[i]);
        CU_ASSERT_EQUAL(ELEMENTSOF(actives), _SUPERVISE_ACTIVE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(actives); i++) {
                CU_ASSERT_STRING_EQUAL(supervise_active_to_string((enum supervise_active) i), actives[i]);
                CU_ASSERT_EQUAL(supervise_active_from_string(actives[i]), (enum supervise_active) i);
        }
        CU_ASSERT_EQUAL(ELEMENTSOF(jobs), _SUPERVISE_JOB_RESULT_MAX);
        for (size_t i = 0; i < ELEMENTSOF(jobs); i++) {
                CU_ASSERT_STRING_EQUAL(supervise_job_result_to_string((enum supervise_job_result) i), jobs[i]);
                CU_ASSERT_EQUAL(supervise_job_result_from_string(jobs[i]), (enum supervise_job_result) i);
        }
        for (int r = 0; r < _SUPERVISE_REASON_MAX; r++)
                CU_ASSERT_PTR_NOT_NULL(supervise_reason_to_string((enum supervise_reason) r));
        CU_ASSERT_STRING_EQUAL(supervise_reason_to_string(R_SD_RESTARTING), "systemd_restarting");
        CU_ASSERT_STRING_EQUAL(supervise_reason_to_string(R_RETRY), "quarantine_retry");
        CU_ASSERT_PTR_NULL(supervise_reason_to_string(_SUPERVISE_REASON_MAX));
        CU_ASSERT_PTR_NULL(supervise_action_type_to_string(_SUPERVISE_ACTION_INVALID));
        CU_ASSERT_PTR_NULL(supervise_active_to_string(_SUPERVISE_ACTIVE_MAX));
        CU_ASSERT_PTR_NULL(supervise_job_result_to_string(_SUPERVISE_JOB_RESULT_MAX));
        CU_ASSERT_EQUAL(supervise_active_from_string("auto-restart"), _SUPERVISE_ACTIVE_INVALID);
        CU_ASSERT_EQUAL(supervise_active_from_string(NULL), _SUPERVISE_ACTIVE_INVALID);
        CU_ASSERT_EQUAL(supervise_job_result_from_string("Done"), _SUPERVISE_JOB_RESULT_INVALID);
        CU_ASSERT_EQUAL(supervise_job_result_from_string(NULL), _SUPERVISE_JOB_RESULT_INVALID);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "backoff delay table", test_backoff_table },
                { "jitter bounds over many draws", test_jitter_bounds },
                { "jitter bounds through the state machine", test_jitter_in_flow },
                { "crash loop: backoff, limit, quarantine, reset", test_crash_loop },
                { "quarantine after exactly limit restarts", test_quarantine_count },
                { "systemd restarts it itself: no double restart", test_systemd_restarts_itself },
                { "busy reasons", test_busy_reasons },
                { "restart job in flight and job results", test_in_flight_and_jobs },
                { "missing unit", test_missing_unit },
                { "manual restart", test_manual },
                { "stable period interrupted", test_stable_interrupted },
                { "save/restore continues the same limits", test_save_restore },
                { "restore: no burst, clamping", test_restore_no_burst },
                { "reconfigure", test_configure },
                { "init validation", test_init_validation },
                { "action format", test_format },
                { "printers", test_printers },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "supervise", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
