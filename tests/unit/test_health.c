/*
 * Health rise/fall: sequences of results against the exact verdict after each
 * one, plus thresholds, reset, reason handling and the printers.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "core/health.h"
#include "unit.h"

/*
 * results: '+' success, '-' failure. states: the verdict after each result,
 * 'U' unknown, 'H' healthy, 'X' unhealthy; a transition is expected exactly
 * where the letter differs from the previous one.
 */
static const struct {
        unsigned rise, fall;
        const char *results;
        const char *states;
} sequences[] = {
        { 1, 1, "+", "H" },
        { 1, 1, "-", "X" },
        { 1, 1, "+-+-", "HXHX" },
        { 2, 3, "+", "U" },
        { 2, 3, "++", "UH" },
        { 2, 3, "+-+", "UUU" },
        { 2, 3, "--", "UU" },
        { 2, 3, "---", "UUX" },
        { 2, 3, "++--", "UHHH" },
        { 2, 3, "++---", "UHHHX" },
        { 2, 3, "++--+---", "UHHHHHHX" },
        { 2, 3, "---+", "UUXX" },
        { 2, 3, "---++", "UUXXH" },
        { 2, 3, "---+-++", "UUXXXXH" },
        { 2, 3, "-----+++", "UUXXXXHH" },
        { 3, 1, "+-+++", "UXXXH" },
        { 3, 1, "+++-", "UUHX" },
        { 1, 3, "-+--+", "UHHHH" },
        { 1, 3, "---+---", "UUXHHHX" },
};

static enum health_state letter(char c) {
        switch (c) {
        case 'H':
                return HEALTH_HEALTHY;
        case 'X':
                return HEALTH_UNHEALTHY;
        default:
                return HEALTH_UNKNOWN;
        }
}

static void test_sequences(void) {
        for (size_t i = 0; i < ELEMENTSOF(sequences); i++) {
                struct health h;
                enum health_state prev = HEALTH_UNKNOWN;
                size_t n = strlen(sequences[i].results);

                CU_ASSERT_EQUAL_FATAL(n, strlen(sequences[i].states));
                CU_ASSERT_EQUAL_FATAL(health_init(&h, sequences[i].rise, sequences[i].fall), 0);
                for (size_t j = 0; j < n; j++) {
                        struct health_transition t = { .from = _HEALTH_STATE_INVALID, .to = _HEALTH_STATE_INVALID };
                        struct health_result r = { .ok = sequences[i].results[j] == '+', .latency_us = 100 + j };
                        enum health_state want = letter(sequences[i].states[j]);
                        uint64_t now = 1000 * (j + 1);
                        bool changed = health_observe(&h, &r, now, &t);

                        if (h.state != want || changed != (want != prev))
                                fprintf(stderr, "case %zu (%s) step %zu: state %s changed %d\n", i,
                                        sequences[i].results, j, health_state_to_string(h.state), changed);
                        CU_ASSERT_EQUAL(h.state, want);
                        CU_ASSERT_EQUAL(changed, want != prev);
                        if (want != prev) {
                                CU_ASSERT_EQUAL(t.from, prev);
                                CU_ASSERT_EQUAL(t.to, want);
                                CU_ASSERT_EQUAL(h.since_us, now);
                        } else {
                                CU_ASSERT_EQUAL(t.from, _HEALTH_STATE_INVALID);
                        }
                        CU_ASSERT_EQUAL(h.last_ok, r.ok);
                        CU_ASSERT_EQUAL(h.last_latency_us, 100 + j);
                        CU_ASSERT_EQUAL(h.last_at_us, now);
                        prev = want;
                }
                CU_ASSERT_EQUAL(h.n_checks, n);
        }
}

static void test_counters(void) {
        struct health h;
        struct health_result ok = { .ok = true }, bad = { .ok = false, .reason = "HTTP 500" };

        CU_ASSERT_EQUAL_FATAL(health_init(&h, 2, 2), 0);
        CU_ASSERT_FALSE(h.has_last);
        health_observe(&h, &bad, 1, NULL);
        health_observe(&h, &bad, 2, NULL);
        health_observe(&h, &bad, 3, NULL);
        CU_ASSERT_EQUAL(h.n_fail, 3);
        CU_ASSERT_EQUAL(h.n_ok, 0);
        CU_ASSERT_EQUAL(h.n_failures, 3);
        CU_ASSERT_STRING_EQUAL(h.last_reason, "HTTP 500");
        CU_ASSERT_TRUE(h.has_last);
        health_observe(&h, &ok, 4, NULL);
        CU_ASSERT_EQUAL(h.n_fail, 0);
        CU_ASSERT_EQUAL(h.n_ok, 1);
        CU_ASSERT_STRING_EQUAL(h.last_reason, "");
        CU_ASSERT_EQUAL(h.n_checks, 4);
        CU_ASSERT_EQUAL(h.n_failures, 3);

        /* Streaks saturate instead of wrapping. */
        for (unsigned i = 0; i < HEALTH_THRESHOLD_MAX + 10; i++)
                health_observe(&h, &ok, 10 + i, NULL);
        CU_ASSERT_EQUAL(h.n_ok, HEALTH_THRESHOLD_MAX);
        CU_ASSERT_EQUAL(h.state, HEALTH_HEALTHY);
}

static void test_reset(void) {
        struct health h;
        struct health_result bad = { .ok = false, .latency_us = 7, .reason = "x" };
        struct health_transition t;

        CU_ASSERT_EQUAL_FATAL(health_init(&h, 1, 2), 0);
        health_observe(&h, &bad, 10, NULL);
        CU_ASSERT_TRUE(health_observe(&h, &bad, 20, &t));
        CU_ASSERT_EQUAL(h.state, HEALTH_UNHEALTHY);
        health_reset(&h, 30);
        CU_ASSERT_EQUAL(h.state, HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(h.since_us, 30);
        CU_ASSERT_EQUAL(h.n_fail, 0);
        /* Display data survives a reset. */
        CU_ASSERT_EQUAL(h.last_latency_us, 7);
        CU_ASSERT_STRING_EQUAL(h.last_reason, "x");
        CU_ASSERT_EQUAL(h.n_checks, 2);
        /* The next verdict needs a full streak again. */
        CU_ASSERT_FALSE(health_observe(&h, &bad, 40, &t));
        CU_ASSERT_TRUE(health_observe(&h, &bad, 50, &t));
        CU_ASSERT_EQUAL(t.from, HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(t.to, HEALTH_UNHEALTHY);
        /* Resetting an unknown machine keeps its since. */
        health_reset(&h, 60);
        health_reset(&h, 70);
        CU_ASSERT_EQUAL(h.since_us, 60);
}

static void test_thresholds(void) {
        static const struct {
                unsigned rise, fall;
                int ret;
        } cases[] = {
                { 1, 1, 0 },
                { HEALTH_THRESHOLD_MAX, HEALTH_THRESHOLD_MAX, 0 },
                { 0, 1, -EINVAL },
                { 1, 0, -EINVAL },
                { HEALTH_THRESHOLD_MAX + 1, 1, -EINVAL },
                { 1, HEALTH_THRESHOLD_MAX + 1, -EINVAL },
        };
        struct health h;
        struct health_result bad = { .ok = false };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_EQUAL(health_init(&h, cases[i].rise, cases[i].fall), cases[i].ret);
        CU_ASSERT_EQUAL(health_init(NULL, 1, 1), -EINVAL);

        /* Lowering fall below the current streak takes effect at the next result. */
        CU_ASSERT_EQUAL_FATAL(health_init(&h, 1, 5), 0);
        health_observe(&h, &bad, 1, NULL);
        health_observe(&h, &bad, 2, NULL);
        health_observe(&h, &bad, 3, NULL);
        CU_ASSERT_EQUAL(h.state, HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(health_set_thresholds(&h, 1, 2), 0);
        CU_ASSERT_EQUAL(h.state, HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(h.n_fail, 3);
        CU_ASSERT_TRUE(health_observe(&h, &bad, 4, NULL));
        CU_ASSERT_EQUAL(h.state, HEALTH_UNHEALTHY);
        CU_ASSERT_EQUAL(health_set_thresholds(&h, 0, 2), -EINVAL);
        CU_ASSERT_EQUAL(h.rise, 1);
        CU_ASSERT_EQUAL(h.fall, 2);
}

static void test_reason_truncation(void) {
        struct health h;
        char longr[400];
        /* "é" is 2 bytes: a cut must not leave half of one. */
        char utf[HEALTH_REASON_MAX + 12];
        struct health_result r = { .ok = false, .reason = longr };

        memset(longr, 'a', sizeof(longr) - 1);
        longr[sizeof(longr) - 1] = '\0';
        CU_ASSERT_EQUAL_FATAL(health_init(&h, 1, 1), 0);
        health_observe(&h, &r, 1, NULL);
        CU_ASSERT_EQUAL(strlen(h.last_reason), HEALTH_REASON_MAX - 1);

        /* "ab" then "é"s: byte 127 is the second half of a character, so the cut backs off to 126. */
        utf[0] = 'a';
        utf[1] = 'b';
        for (size_t i = 2; i + 1 < sizeof(utf) - 1; i += 2) {
                utf[i] = (char) 0xC3;
                utf[i + 1] = (char) 0xA9;
        }
        utf[sizeof(utf) - 2] = '\0';
        r.reason = utf;
        health_observe(&h, &r, 2, NULL);
        CU_ASSERT_EQUAL(strlen(h.last_reason), HEALTH_REASON_MAX - 2);
        CU_ASSERT_EQUAL((unsigned char) h.last_reason[HEALTH_REASON_MAX - 3], 0xA9);
        CU_ASSERT_EQUAL((unsigned char) h.last_reason[HEALTH_REASON_MAX - 4], 0xC3);

        r.reason = NULL;
        health_observe(&h, &r, 3, NULL);
        CU_ASSERT_STRING_EQUAL(h.last_reason, "");
}

static void test_printers(void) {
        static const struct {
                enum health_state s;
                const char *name;
        } names[] = {
                { HEALTH_UNKNOWN, "unknown" },
                { HEALTH_HEALTHY, "healthy" },
                { HEALTH_UNHEALTHY, "unhealthy" },
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                CU_ASSERT_STRING_EQUAL(health_state_to_string(names[i].s), names[i].name);
                CU_ASSERT_EQUAL(health_state_from_string(names[i].name), names[i].s);
        }
        CU_ASSERT_EQUAL(ELEMENTSOF(names), _HEALTH_STATE_MAX);
        CU_ASSERT_PTR_NULL(health_state_to_string(_HEALTH_STATE_MAX));
        CU_ASSERT_PTR_NULL(health_state_to_string(_HEALTH_STATE_INVALID));
        CU_ASSERT_EQUAL(health_state_from_string("Healthy"), _HEALTH_STATE_INVALID);
        CU_ASSERT_EQUAL(health_state_from_string(""), _HEALTH_STATE_INVALID);
        CU_ASSERT_EQUAL(health_state_from_string(NULL), _HEALTH_STATE_INVALID);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "rise/fall sequences", test_sequences },
                { "streak counters and last result", test_counters },
                { "reset", test_reset },
                { "thresholds", test_thresholds },
                { "reason truncation", test_reason_truncation },
                { "printers", test_printers },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "health", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
