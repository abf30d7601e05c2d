/*
 * Replay windows: table-driven stamp sequences with the exact verdict of
 * each step, a long pseudo-random run against a brute-force model of the
 * window, and the bounded sender table's least-recently-seen eviction.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/util.h"
#include "core/replay.h"
#include "unit.h"

#define W REPLAY_WINDOW

struct step {
        uint64_t sender, epoch, seq;
        enum replay_verdict want;
};

struct scenario {
        const char *name;
        size_t max_senders;
        struct step steps[16];
        size_t n;
};

#define ACC REPLAY_ACCEPTED
#define NEW REPLAY_NEW_SENDER
#define EPO REPLAY_NEW_EPOCH
#define DUP REPLAY_DUPLICATE
#define OLD REPLAY_TOO_OLD
#define OEP REPLAY_OLD_EPOCH

static const struct scenario scenarios[] = {
        { "in order", 8, { { 1, 1, 1, NEW }, { 1, 1, 2, ACC }, { 1, 1, 3, ACC }, { 1, 1, 4, ACC } }, 4 },
        { "first seq zero", 8, { { 1, 0, 0, NEW }, { 1, 0, 0, DUP }, { 1, 0, 1, ACC } }, 3 },
        { "out of order in window", 8,
          { { 1, 1, 10, NEW }, { 1, 1, 7, ACC }, { 1, 1, 9, ACC }, { 1, 1, 8, ACC },
            { 1, 1, 12, ACC }, { 1, 1, 11, ACC }, { 1, 1, 7, DUP }, { 1, 1, 11, DUP } }, 8 },
        { "duplicates", 8,
          { { 1, 1, 5, NEW }, { 1, 1, 5, DUP }, { 1, 1, 6, ACC }, { 1, 1, 6, DUP }, { 1, 1, 5, DUP } }, 5 },
        { "window edge", 8,
          { { 1, 1, W, NEW }, { 1, 1, 1, ACC }, { 1, 1, 0, OLD }, { 1, 1, 1, DUP },
            { 1, 1, W + 1, ACC }, { 1, 1, 1, OLD }, { 1, 1, 2, ACC } }, 7 },
        { "jump beyond window", 8,
          { { 1, 1, 1, NEW }, { 1, 1, 1 + W, ACC }, { 1, 1, 2, ACC }, { 1, 1, 1, OLD },
            { 1, 1, 10 * W, ACC }, { 1, 1, 9 * W, OLD }, { 1, 1, 9 * W + 1, ACC }, { 1, 1, 9 * W + 1, DUP } }, 8 },
        { "shift across words", 8,
          { { 1, 1, 100, NEW }, { 1, 1, 165, ACC }, { 1, 1, 100, DUP }, { 1, 1, 101, ACC },
            { 1, 1, 300, ACC }, { 1, 1, 100, DUP }, { 1, 1, 101, DUP }, { 1, 1, 165, DUP }, { 1, 1, 166, ACC } }, 9 },
        { "epoch forward resets", 8,
          { { 1, 1, 50, NEW }, { 1, 2, 1, EPO }, { 1, 2, 1, DUP }, { 1, 2, 2, ACC },
            { 1, 7, 0, EPO }, { 1, 7, 0, DUP } }, 6 },
        { "epoch backward rejected", 8,
          { { 1, 5, 3, NEW }, { 1, 4, 100, OEP }, { 1, 4, 3, OEP }, { 1, 0, 0, OEP }, { 1, 5, 4, ACC } }, 5 },
        { "old epoch replays after restart", 8,
          { { 1, 1, 1, NEW }, { 1, 1, 2, ACC }, { 1, 2, 1, EPO }, { 1, 1, 2, OEP }, { 1, 1, 3, OEP }, { 1, 2, 2, ACC } }, 6 },
        { "senders are independent", 8,
          { { 1, 1, 5, NEW }, { 2, 1, 5, NEW }, { 1, 1, 5, DUP }, { 2, 1, 5, DUP },
            { 2, 9, 1, EPO }, { 1, 1, 6, ACC }, { 1, 9, 0, EPO } }, 7 },
        { "extreme values", 8,
          { { UINT64_MAX, UINT64_MAX, UINT64_MAX, NEW }, { UINT64_MAX, UINT64_MAX, UINT64_MAX, DUP },
            { UINT64_MAX, UINT64_MAX, 0, OLD }, { UINT64_MAX, UINT64_MAX, UINT64_MAX - W + 1, ACC },
            { UINT64_MAX, UINT64_MAX - 1, UINT64_MAX, OEP }, { 0, 0, 0, NEW } }, 6 },
        { "eviction of least recently seen", 3,
          { { 1, 1, 1, NEW }, { 2, 1, 1, NEW }, { 3, 1, 1, NEW }, { 1, 1, 2, ACC },
            { 4, 1, 1, NEW },          /* evicts 2 */
            { 1, 1, 2, DUP }, { 3, 1, 1, DUP }, { 4, 1, 1, DUP },
            { 2, 1, 1, NEW },          /* came back as new: evicts 1 (3 and 4 were seen later) */
            { 3, 1, 1, DUP }, { 1, 1, 2, NEW } }, 11 },
        { "rejected packets still count as seen", 2,
          { { 1, 1, 1, NEW }, { 2, 1, 1, NEW }, { 1, 1, 1, DUP },
            { 3, 1, 1, NEW },          /* evicts 2: the duplicate touched 1 */
            { 1, 1, 1, DUP }, { 2, 1, 1, NEW } }, 6 },
};

static void test_scenarios(void) {
        for (size_t i = 0; i < ELEMENTSOF(scenarios); i++) {
                const struct scenario *sc = &scenarios[i];
                struct replay *r = NULL;

                CU_ASSERT_EQUAL_FATAL(replay_new(sc->max_senders, &r), 0);
                for (size_t j = 0; j < sc->n; j++) {
                        const struct step *st = &sc->steps[j];
                        enum replay_verdict v = replay_check(r, st->sender, st->epoch, st->seq);

                        if (v != st->want)
                                fprintf(stderr, "\n%s step %zu: got %s, want %s\n", sc->name, j,
                                        replay_verdict_to_string(v), replay_verdict_to_string(st->want));
                        CU_ASSERT_EQUAL(v, st->want);
                }
                CU_ASSERT(replay_count(r) <= sc->max_senders);
                replay_free(r);
        }
}

static uint64_t rng_state;

static uint64_t rng(void) {
        /* xorshift64*: deterministic, so a failure reproduces. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

/*
 * One sender, 200,000 stamps mostly near the top of the window (reordering,
 * duplicates, stale ones, jumps, occasional epoch changes both ways),
 * checked against a model that remembers every accepted sequence.
 */
#define SPACE (1u << 21)
static void test_model(void) {
        static uint8_t seen[SPACE];
        uint64_t epoch = 3, top = 0;
        bool have = false;
        struct replay *r = NULL;
        unsigned counts[_REPLAY_VERDICT_MAX] = { 0 };

        rng_state = UINT64_C(0x9e3779b97f4a7c15);
        CU_ASSERT_EQUAL_FATAL(replay_new(4, &r), 0);
        for (unsigned i = 0; i < 200000; i++) {
                uint64_t x = rng(), e = epoch, seq;
                enum replay_verdict want, got;

                if (x % 5000 == 0)
                        e = epoch + 1;
                else if (x % 5000 == 1)
                        e = epoch - 1;
                x >>= 16;
                if (!have)
                        seq = x % 100;
                else if (x % 50 == 0)
                        seq = top + 1 + (x >> 8) % (3 * W);                /* a jump, maybe past the window */
                else if (x % 50 == 1)
                        seq = top > 2 * W ? top - W - (x >> 8) % W : top;  /* stale */
                else if (x % 5 == 0 && top + 8 >= (x >> 8) % (W + 16))
                        seq = top + 8 - (x >> 8) % (W + 16);               /* anywhere around the window */
                else
                        seq = top + 8 - (x >> 8) % 40;                     /* reordering near the top */
                if (seq >= SPACE) {
                        /* Stay inside the model's memory: restart the window in a new epoch. */
                        e = epoch + 1;
                        seq = x % 100;
                }

                if (!have) {
                        want = REPLAY_NEW_SENDER;
                } else if (e < epoch) {
                        want = REPLAY_OLD_EPOCH;
                } else if (e > epoch) {
                        want = REPLAY_NEW_EPOCH;
                } else if (seq > top) {
                        want = REPLAY_ACCEPTED;
                } else if (top - seq >= W) {
                        want = REPLAY_TOO_OLD;
                } else {
                        want = seen[seq] ? REPLAY_DUPLICATE : REPLAY_ACCEPTED;
                }
                if (want == REPLAY_NEW_SENDER || want == REPLAY_NEW_EPOCH) {
                        memset(seen, 0, sizeof seen);
                        epoch = e;
                        top = seq;
                        have = true;
                }
                if (want == REPLAY_ACCEPTED && seq > top)
                        top = seq;
                if (replay_accepted(want))
                        seen[seq] = 1;

                got = replay_check(r, 42, e, seq);
                if (got != want) {
                        fprintf(stderr, "\nstep %u: epoch %llu seq %llu top %llu: got %s want %s\n", i,
                                (unsigned long long) e, (unsigned long long) seq, (unsigned long long) top,
                                replay_verdict_to_string(got), replay_verdict_to_string(want));
                        CU_FAIL("model mismatch");
                        break;
                }
                counts[got]++;
        }
        /* The generator must have exercised every verdict. */
        for (int v = 0; v < _REPLAY_VERDICT_MAX; v++)
                CU_ASSERT(counts[v] > 0);
        replay_free(r);
}

/*
 * Many senders through a small table: after every step the table holds
 * exactly the most recently seen max senders (a model LRU list), each with
 * the stamp it was last accepted with.
 */
static void test_eviction_model(void) {
        enum { MAX = 16, IDS = 40, STEPS = 20000 };
        uint64_t lru[MAX];  /* lru[0] most recent */
        uint64_t seqs[IDS] = { 0 };
        size_t n = 0;
        struct replay *r = NULL;

        rng_state = 12345;
        CU_ASSERT_EQUAL_FATAL(replay_new(MAX, &r), 0);
        for (unsigned i = 0; i < STEPS; i++) {
                /* With 16 senders in a 32-slot index, probe runs and backward shifts are constant. */
                unsigned k = (unsigned) (rng() % IDS);
                uint64_t id = (uint64_t) k << 40;
                size_t pos = n;
                enum replay_verdict v;

                for (size_t j = 0; j < n; j++)
                        if (lru[j] == id)
                                pos = j;
                seqs[k]++;
                v = replay_check(r, id, 1, seqs[k]);
                if (pos == n) {
                        CU_ASSERT_EQUAL(v, REPLAY_NEW_SENDER);
                        if (n < MAX)
                                n++;
                        pos = n - 1;
                } else {
                        CU_ASSERT_EQUAL(v, REPLAY_ACCEPTED);
                }
                memmove(lru + 1, lru, pos * sizeof lru[0]);
                lru[0] = id;

                CU_ASSERT_EQUAL(replay_count(r), n);
                for (size_t j = 0; j < n; j++) {
                        uint64_t e = 0, t = 0;

                        CU_ASSERT(replay_lookup(r, lru[j], &e, &t));
                        CU_ASSERT_EQUAL(e, 1);
                        CU_ASSERT_EQUAL(t, seqs[lru[j] >> 40]);
                }
        }
        /* Absent ids are absent, and lookup leaves outputs alone. */
        {
                uint64_t e = 77, t = 78;
                size_t absent = 0;

                for (unsigned k = 0; k < IDS; k++) {
                        uint64_t id = (uint64_t) k << 40;
                        bool in = false;

                        for (size_t j = 0; j < n; j++)
                                in |= lru[j] == id;
                        if (!in) {
                                absent++;
                                CU_ASSERT_FALSE(replay_lookup(r, id, &e, &t));
                        }
                }
                CU_ASSERT_EQUAL(absent, IDS - MAX);
                CU_ASSERT_EQUAL(e, 77);
                CU_ASSERT_EQUAL(t, 78);
        }
        replay_free(r);
}

/* The default table takes exactly REPLAY_SENDERS_DEFAULT senders, then evicts. */
static void test_default_cap(void) {
        struct replay *r = NULL;

        CU_ASSERT_EQUAL_FATAL(replay_new(0, &r), 0);
        for (uint64_t id = 0; id < REPLAY_SENDERS_DEFAULT + 100; id++)
                CU_ASSERT_EQUAL(replay_check(r, id, 0, 0), REPLAY_NEW_SENDER);
        CU_ASSERT_EQUAL(replay_count(r), REPLAY_SENDERS_DEFAULT);
        CU_ASSERT_FALSE(replay_lookup(r, 99, NULL, NULL));
        CU_ASSERT(replay_lookup(r, 100, NULL, NULL));
        CU_ASSERT_EQUAL(replay_check(r, REPLAY_SENDERS_DEFAULT + 99, 0, 0), REPLAY_DUPLICATE);
        replay_free(r);
}

static void test_new_args(void) {
        struct replay *r = (struct replay *) 0x1;

        CU_ASSERT_EQUAL(replay_new(REPLAY_SENDERS_MAX + 1, &r), -EINVAL);
        CU_ASSERT_PTR_EQUAL(r, (struct replay *) 0x1);
        CU_ASSERT_EQUAL(replay_new(1, NULL), -EINVAL);
        CU_ASSERT_EQUAL_FATAL(replay_new(1, &r), 0);
        CU_ASSERT_EQUAL(replay_check(r, 1, 1, 1), REPLAY_NEW_SENDER);
        CU_ASSERT_EQUAL(replay_check(r, 2, 1, 1), REPLAY_NEW_SENDER);
        CU_ASSERT_EQUAL(replay_check(r, 1, 1, 1), REPLAY_NEW_SENDER);
        CU_ASSERT_EQUAL(replay_count(r), 1);
        replay_free(r);
        replay_free(NULL);
}

static void test_printers(void) {
        static const char *const want[_REPLAY_VERDICT_MAX] = {
                "accepted", "new_sender", "new_epoch", "duplicate", "too_old", "old_epoch",
        };

        for (int v = 0; v < _REPLAY_VERDICT_MAX; v++) {
                CU_ASSERT_STRING_EQUAL(replay_verdict_to_string(v), want[v]);
                CU_ASSERT_EQUAL(replay_accepted(v), v <= REPLAY_NEW_EPOCH);
        }
        CU_ASSERT_PTR_NULL(replay_verdict_to_string(_REPLAY_VERDICT_MAX));
        CU_ASSERT_PTR_NULL(replay_verdict_to_string((enum replay_verdict) -1));
}

static CU_TestInfo tests[] = {
        { "table-driven sequences", test_scenarios },
        { "window against a model", test_model },
        { "eviction against a model LRU", test_eviction_model },
        { "default cap", test_default_cap },
        { "arguments", test_new_args },
        { "printers", test_printers },
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        { "replay", NULL, NULL, NULL, NULL, tests },
        CU_SUITE_INFO_NULL,
};

int main(void) {
        return unit_run(suites);
}
