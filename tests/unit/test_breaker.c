/*
 * Circuit breaker: every transition, half-open counting and admission,
 * timing at exact microseconds, reconfiguration, save/restore, printers.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "core/breaker.h"
#include "unit.h"

#define C BREAKER_CLOSED
#define O BREAKER_OPEN
#define H BREAKER_HALF_OPEN
#define NONE _BREAKER_STATE_INVALID

/*
 * op: 'S' success, 'F' failure (breaker_record), 'T' breaker_tick,
 * 'A' breaker_allow expecting admission, 'D' breaker_allow expecting denial.
 * t1/t2: the transitions expected, "from,to" pairs; NONE for none.
 */
struct step {
        char op;
        uint64_t now;
        enum breaker_state after;
        enum breaker_state t1_from, t1_to, t2_from, t2_to;
};

static const struct breaker_config cfg = { .failures = 3, .open_for_us = 10000, .half_open_probes = 2 };

static const struct {
        const char *name;
        struct step steps[16];
        size_t n;
} scripts[] = {
        {
                "closed: failures must be consecutive",
                {
                        { 'F', 1, C, NONE, NONE, NONE, NONE },
                        { 'F', 2, C, NONE, NONE, NONE, NONE },
                        { 'S', 3, C, NONE, NONE, NONE, NONE },
                        { 'F', 4, C, NONE, NONE, NONE, NONE },
                        { 'F', 5, C, NONE, NONE, NONE, NONE },
                        { 'A', 5, C, NONE, NONE, NONE, NONE },
                        { 'F', 6, O, C, O, NONE, NONE },
                },
                7,
        },
        {
                "open for exactly open_for, then half-open closes after all probes succeed",
                {
                        { 'F', 100, C, NONE, NONE, NONE, NONE },
                        { 'F', 100, C, NONE, NONE, NONE, NONE },
                        { 'F', 100, O, C, O, NONE, NONE },
                        { 'D', 100, O, NONE, NONE, NONE, NONE },
                        { 'S', 5000, O, NONE, NONE, NONE, NONE },      /* ignored while open */
                        { 'F', 5000, O, NONE, NONE, NONE, NONE },      /* ignored, open_until unchanged */
                        { 'T', 10099, O, NONE, NONE, NONE, NONE },
                        { 'D', 10099, O, NONE, NONE, NONE, NONE },
                        { 'T', 10100, H, O, H, NONE, NONE },
                        { 'S', 10200, H, NONE, NONE, NONE, NONE },
                        { 'S', 10300, C, H, C, NONE, NONE },
                        { 'F', 10400, C, NONE, NONE, NONE, NONE },     /* the count starts over */
                },
                12,
        },
        {
                "half-open: any failure opens again for another open_for",
                {
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, O, C, O, NONE, NONE },
                        { 'T', 10000, H, O, H, NONE, NONE },
                        { 'S', 10001, H, NONE, NONE, NONE, NONE },
                        { 'F', 10002, O, H, O, NONE, NONE },
                        { 'T', 20001, O, NONE, NONE, NONE, NONE },
                        { 'T', 20002, H, O, H, NONE, NONE },
                        { 'F', 20003, O, H, O, NONE, NONE },
                },
                9,
        },
        {
                "a result arriving when due turns half-open first (two transitions in one call)",
                {
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, O, C, O, NONE, NONE },
                        { 'F', 10000, O, O, H, H, O },
                        { 'S', 20000, H, O, H, NONE, NONE },
                        { 'S', 20000, C, H, C, NONE, NONE },
                },
                6,
        },
        {
                "half-open admits exactly half_open_probes attempts",
                {
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, C, NONE, NONE, NONE, NONE },
                        { 'F', 0, O, C, O, NONE, NONE },
                        { 'A', 10000, H, O, H, NONE, NONE },           /* allow turns it half-open */
                        { 'A', 10000, H, NONE, NONE, NONE, NONE },
                        { 'D', 10000, H, NONE, NONE, NONE, NONE },
                        { 'D', 10500, H, NONE, NONE, NONE, NONE },
                        { 'S', 11000, H, NONE, NONE, NONE, NONE },
                        { 'D', 11000, H, NONE, NONE, NONE, NONE },     /* admitted, not "in flight" */
                        { 'S', 11000, C, H, C, NONE, NONE },
                        { 'A', 11000, C, NONE, NONE, NONE, NONE },
                        { 'A', 11000, C, NONE, NONE, NONE, NONE },
                        { 'A', 11000, C, NONE, NONE, NONE, NONE },
                },
                13,
        },
};

static void check_transition(const struct breaker_transition *t, enum breaker_state from, enum breaker_state to) {
        CU_ASSERT_EQUAL(t->from, from);
        CU_ASSERT_EQUAL(t->to, to);
}

static void test_scripts(void) {
        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                struct breaker b;

                CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &cfg), 0);
                for (size_t j = 0; j < scripts[i].n; j++) {
                        const struct step *st = &scripts[i].steps[j];
                        struct breaker_transition tr[BREAKER_MAX_TRANSITIONS];
                        unsigned want = (st->t1_from != NONE) + (st->t2_from != NONE);
                        unsigned n = 0;
                        bool allowed;

                        memset(tr, 0xff, sizeof(tr));
                        switch (st->op) {
                        case 'S':
                        case 'F':
                                n = breaker_record(&b, st->op == 'S', st->now, tr);
                                break;
                        case 'T':
                                n = breaker_tick(&b, st->now, &tr[0]) ? 1 : 0;
                                break;
                        default:
                                allowed = breaker_allow(&b, st->now, &tr[0]);
                                CU_ASSERT_EQUAL(allowed, st->op == 'A');
                                n = tr[0].from != tr[0].to ? 1 : 0;
                                break;
                        }
                        if (n != want || b.state != st->after)
                                fprintf(stderr, "%s step %zu: %u transitions, state %s\n", scripts[i].name, j, n,
                                        breaker_state_to_string(b.state));
                        CU_ASSERT_EQUAL(n, want);
                        CU_ASSERT_EQUAL(b.state, st->after);
                        if (want >= 1)
                                check_transition(&tr[0], st->t1_from, st->t1_to);
                        if (want >= 2)
                                check_transition(&tr[1], st->t2_from, st->t2_to);
                        if (want >= 1)
                                CU_ASSERT_EQUAL(b.changed_at_us, st->now);
                        CU_ASSERT_EQUAL(breaker_next_wakeup(&b), b.state == O ? b.open_until_us : 0);
                }
        }
}

static void test_open_until(void) {
        struct breaker b;
        struct breaker_transition tr[BREAKER_MAX_TRANSITIONS];

        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &(struct breaker_config) { .failures = 1, .open_for_us = 30, .half_open_probes = 1 }), 0);
        CU_ASSERT_EQUAL(breaker_record(&b, false, 1000, tr), 1);
        CU_ASSERT_EQUAL(b.open_until_us, 1030);
        CU_ASSERT_EQUAL(breaker_next_wakeup(&b), 1030);
        CU_ASSERT_EQUAL(b.n_opened, 1);
        /* A failure while open does not extend it. */
        CU_ASSERT_EQUAL(breaker_record(&b, false, 1020, tr), 0);
        CU_ASSERT_EQUAL(b.open_until_us, 1030);
        /* Due: open -> half_open -> open again in one result, reopening from now. */
        CU_ASSERT_EQUAL(breaker_record(&b, false, 1040, tr), 2);
        CU_ASSERT_EQUAL(b.open_until_us, 1070);
        CU_ASSERT_EQUAL(b.n_opened, 2);
        CU_ASSERT_EQUAL(breaker_record(&b, true, 1070, tr), 2);
        check_transition(&tr[0], O, H);
        check_transition(&tr[1], H, C);
        CU_ASSERT_EQUAL(breaker_next_wakeup(&b), 0);

        /* open_for 0: half-open at the next look. */
        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &(struct breaker_config) { .failures = 1, .open_for_us = 0, .half_open_probes = 3 }), 0);
        CU_ASSERT_EQUAL(breaker_record(&b, false, 5, tr), 1);
        CU_ASSERT_TRUE(breaker_tick(&b, 5, &tr[0]));
        CU_ASSERT_EQUAL(b.state, H);
        CU_ASSERT_FALSE(breaker_tick(&b, 6, &tr[0]));
}

static void test_config(void) {
        static const struct {
                struct breaker_config c;
                int ret;
        } cases[] = {
                { { 1, 0, 1 }, 0 },
                { { BREAKER_COUNT_MAX, BREAKER_OPEN_FOR_MAX, BREAKER_COUNT_MAX }, 0 },
                { { 0, 10, 1 }, -EINVAL },
                { { 1, 10, 0 }, -EINVAL },
                { { BREAKER_COUNT_MAX + 1, 10, 1 }, -EINVAL },
                { { 1, 10, BREAKER_COUNT_MAX + 1 }, -EINVAL },
                { { 1, BREAKER_OPEN_FOR_MAX + 1, 1 }, -EINVAL },
        };
        struct breaker b;
        struct breaker_transition tr[BREAKER_MAX_TRANSITIONS];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_EQUAL(breaker_init(&b, &cases[i].c), cases[i].ret);
        CU_ASSERT_EQUAL(breaker_init(&b, NULL), -EINVAL);

        /* Lowering the threshold under a streak: the next failure opens. */
        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &(struct breaker_config) { .failures = 5, .open_for_us = 10, .half_open_probes = 4 }), 0);
        for (int i = 0; i < 4; i++)
                CU_ASSERT_EQUAL(breaker_record(&b, false, 1, tr), 0);
        CU_ASSERT_EQUAL(breaker_configure(&b, &(struct breaker_config) { .failures = 2, .open_for_us = 10, .half_open_probes = 4 }), 0);
        CU_ASSERT_EQUAL(b.state, C);
        CU_ASSERT_EQUAL(b.n_failures, 1);
        CU_ASSERT_EQUAL(breaker_record(&b, false, 2, tr), 1);
        CU_ASSERT_EQUAL(b.state, O);
        CU_ASSERT_EQUAL(breaker_configure(&b, &(struct breaker_config) { .failures = 0, .open_for_us = 10, .half_open_probes = 4 }), -EINVAL);
        CU_ASSERT_EQUAL(b.config.failures, 2);
}

static void test_save_restore(void) {
        struct breaker a, b;
        struct breaker_snapshot snap;
        struct breaker_transition tr[BREAKER_MAX_TRANSITIONS], ta[BREAKER_MAX_TRANSITIONS];

        /* Mid-streak closed breaker: the restored one opens at the same failure. */
        CU_ASSERT_EQUAL_FATAL(breaker_init(&a, &cfg), 0);
        breaker_record(&a, false, 1, tr);
        breaker_record(&a, false, 2, tr);
        breaker_save(&a, &snap);
        CU_ASSERT_EQUAL(snap.state, C);
        CU_ASSERT_EQUAL(snap.n_failures, 2);
        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &cfg), 0);
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 3), 0);
        CU_ASSERT_EQUAL(breaker_record(&b, false, 3, tr), 1);
        CU_ASSERT_EQUAL(breaker_record(&a, false, 3, ta), 1);
        CU_ASSERT_EQUAL(b.state, O);
        CU_ASSERT_EQUAL(b.open_until_us, a.open_until_us);

        /* Open: the restored breaker stays open until the same time, then behaves the same. */
        breaker_save(&a, &snap);
        CU_ASSERT_EQUAL(snap.state, O);
        CU_ASSERT_EQUAL(snap.open_until_us, 10003);
        CU_ASSERT_EQUAL(snap.n_opened, 1);
        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &cfg), 0);
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 5000), 0);
        CU_ASSERT_FALSE(breaker_tick(&b, 10002, &tr[0]));
        CU_ASSERT_TRUE(breaker_tick(&b, 10003, &tr[0]));
        CU_ASSERT_EQUAL(b.n_opened, 1);

        /* Half-open with one success of two: one more success closes it. */
        CU_ASSERT_TRUE(breaker_tick(&a, 10003, &ta[0]));
        breaker_record(&a, true, 10004, ta);
        breaker_save(&a, &snap);
        CU_ASSERT_EQUAL(snap.state, H);
        CU_ASSERT_EQUAL(snap.n_probe_ok, 1);
        CU_ASSERT_EQUAL_FATAL(breaker_init(&b, &cfg), 0);
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 20000), 0);
        CU_ASSERT_TRUE(breaker_allow(&b, 20000, NULL));
        CU_ASSERT_FALSE(breaker_allow(&b, 20000, NULL));
        CU_ASSERT_EQUAL(breaker_record(&b, true, 20001, tr), 1);
        check_transition(&tr[0], H, C);

        /* An open_until far in the future (clock trouble) is clamped to now + open_for. */
        snap = (struct breaker_snapshot) { .state = O, .open_until_us = UINT64_MAX, .changed_at_us = UINT64_MAX };
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 700), 0);
        CU_ASSERT_EQUAL(b.open_until_us, 10700);
        CU_ASSERT_EQUAL(b.changed_at_us, 700);

        /* Counters beyond the thresholds are cut. */
        snap = (struct breaker_snapshot) { .state = C, .n_failures = 99 };
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 700), 0);
        CU_ASSERT_EQUAL(b.n_failures, 2);
        CU_ASSERT_EQUAL(breaker_record(&b, false, 701, tr), 1);

        /* A bad state is refused and changes nothing. */
        snap = (struct breaker_snapshot) { .state = (enum breaker_state) 7 };
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 800), -EINVAL);
        CU_ASSERT_EQUAL(b.state, O);
        snap.state = _BREAKER_STATE_INVALID;
        CU_ASSERT_EQUAL(breaker_restore(&b, &snap, 800), -EINVAL);
}

static void test_printers(void) {
        static const struct {
                enum breaker_state s;
                const char *name;
        } names[] = { { C, "closed" }, { O, "open" }, { H, "half_open" } };
        static const struct {
                enum breaker_state from, to;
                const char *text;
        } trans[] = {
                { C, O, "closed -> open" },
                { O, H, "open -> half_open" },
                { H, C, "half_open -> closed" },
                { H, O, "half_open -> open" },
        };

        CU_ASSERT_EQUAL(ELEMENTSOF(names), _BREAKER_STATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                CU_ASSERT_STRING_EQUAL(breaker_state_to_string(names[i].s), names[i].name);
                CU_ASSERT_EQUAL(breaker_state_from_string(names[i].name), names[i].s);
        }
        for (size_t i = 0; i < ELEMENTSOF(trans); i++)
                CU_ASSERT_STRING_EQUAL(breaker_transition_to_string(&(struct breaker_transition) { trans[i].from, trans[i].to }),
                                       trans[i].text);
        CU_ASSERT_PTR_NULL(breaker_state_to_string(_BREAKER_STATE_MAX));
        CU_ASSERT_PTR_NULL(breaker_state_to_string(_BREAKER_STATE_INVALID));
        CU_ASSERT_EQUAL(breaker_state_from_string("half-open"), _BREAKER_STATE_INVALID);
        CU_ASSERT_EQUAL(breaker_state_from_string(NULL), _BREAKER_STATE_INVALID);
        CU_ASSERT_PTR_NULL(breaker_transition_to_string(&(struct breaker_transition) { C, _BREAKER_STATE_MAX }));
        CU_ASSERT_PTR_NULL(breaker_transition_to_string(NULL));
}

int main(void) {
        CU_TestInfo tests[] = {
                { "scripted transitions", test_scripts },
                { "open_until timing", test_open_until },
                { "config and reconfigure", test_config },
                { "save and restore", test_save_restore },
                { "printers", test_printers },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "breaker", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
