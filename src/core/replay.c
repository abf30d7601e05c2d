/*
 * Replay windows: a fixed array of sender entries, an open-addressing index
 * over it (linear probing, backward-shift deletion, at most half full) and
 * a least-recently-seen list threaded through the entries. Everything is
 * allocated by replay_new, so replay_check cannot fail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/replay.h"

#define WORDS (REPLAY_WINDOW / 64)
#define NIL UINT32_MAX

struct sender {
        uint64_t id;
        uint64_t epoch;
        uint64_t top;            /* highest sequence accepted in epoch */
        uint64_t bits[WORDS];    /* bit i: sequence top - i was seen */
        uint32_t prev, next;     /* LRU list: prev is more recent */
};

struct replay {
        struct sender *senders;  /* [0, count) in use */
        size_t max;
        size_t count;
        uint32_t *index;         /* sender position + 1; 0 is an empty slot */
        size_t mask;             /* index size - 1 (a power of two >= 2 * max) */
        uint32_t head, tail;     /* most and least recently seen */
};

static const char *const verdict_names[_REPLAY_VERDICT_MAX] = {
        [REPLAY_ACCEPTED] = "accepted",
        [REPLAY_NEW_SENDER] = "new_sender",
        [REPLAY_NEW_EPOCH] = "new_epoch",
        [REPLAY_DUPLICATE] = "duplicate",
        [REPLAY_TOO_OLD] = "too_old",
        [REPLAY_OLD_EPOCH] = "old_epoch",
};

const char *replay_verdict_to_string(enum replay_verdict v) {
        if ((unsigned) v >= _REPLAY_VERDICT_MAX)
                return NULL;
        return verdict_names[v];
}

/*
 * Sender ids are hashes in practice, but in plaintext mode anyone picks
 * them: mixing (splitmix64's finalizer) spreads chosen ids, and the
 * bounded table keeps the worst case at max probes anyway.
 */
static size_t slot_of(const struct replay *r, uint64_t id) {
        id ^= id >> 30;
        id *= UINT64_C(0xbf58476d1ce4e5b9);
        id ^= id >> 27;
        id *= UINT64_C(0x94d049bb133111eb);
        id ^= id >> 31;
        return (size_t) id & r->mask;
}

int replay_new(size_t max_senders, struct replay **ret) {
        struct replay *r;
        size_t slots = 1;

        if (max_senders == 0)
                max_senders = REPLAY_SENDERS_DEFAULT;
        if (!ret || max_senders > REPLAY_SENDERS_MAX)
                return -EINVAL;
        while (slots < 2 * max_senders)
                slots <<= 1;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->senders = calloc(max_senders, sizeof *r->senders);
        r->index = calloc(slots, sizeof *r->index);
        if (!r->senders || !r->index) {
                replay_free(r);
                return -ENOMEM;
        }
        r->max = max_senders;
        r->mask = slots - 1;
        r->head = r->tail = NIL;
        *ret = r;
        return 0;
}

void replay_free(struct replay *r) {
        if (!r)
                return;
        free(r->senders);
        free(r->index);
        free(r);
}

size_t replay_count(const struct replay *r) {
        return r->count;
}

/* Returns the index slot holding id, or the empty slot where it would go. */
static size_t find_slot(const struct replay *r, uint64_t id) {
        size_t i = slot_of(r, id);

        while (r->index[i] != 0 && r->senders[r->index[i] - 1].id != id)
                i = (i + 1) & r->mask;
        return i;
}

/*
 * Empties slot i and moves later entries of the probe run back, so lookups
 * never need tombstones (Knuth's algorithm R).
 */
static void index_remove(struct replay *r, size_t i) {
        size_t j = i;

        for (;;) {
                size_t home;

                r->index[i] = 0;
                for (;;) {
                        j = (j + 1) & r->mask;
                        if (r->index[j] == 0)
                                return;
                        home = slot_of(r, r->senders[r->index[j] - 1].id);
                        /* Stays put when its home lies cyclically in (i, j]. */
                        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                                continue;
                        break;
                }
                r->index[i] = r->index[j];
                i = j;
        }
}

static void lru_unlink(struct replay *r, uint32_t p) {
        struct sender *s = &r->senders[p];

        if (s->prev != NIL)
                r->senders[s->prev].next = s->next;
        else
                r->head = s->next;
        if (s->next != NIL)
                r->senders[s->next].prev = s->prev;
        else
                r->tail = s->prev;
}

static void lru_push_front(struct replay *r, uint32_t p) {
        struct sender *s = &r->senders[p];

        s->prev = NIL;
        s->next = r->head;
        if (r->head != NIL)
                r->senders[r->head].prev = p;
        r->head = p;
        if (r->tail == NIL)
                r->tail = p;
}

static void touch(struct replay *r, uint32_t p) {
        if (r->head == p)
                return;
        lru_unlink(r, p);
        lru_push_front(r, p);
}

static void window_reset(struct sender *s, uint64_t epoch, uint64_t seq) {
        s->epoch = epoch;
        s->top = seq;
        memset(s->bits, 0, sizeof s->bits);
        s->bits[0] = 1;
}

/* Moves the window up by d sequence numbers: bit i becomes bit i + d. */
static void window_shift(struct sender *s, uint64_t d) {
        size_t ws, bs;

        if (d >= REPLAY_WINDOW) {
                memset(s->bits, 0, sizeof s->bits);
                return;
        }
        ws = (size_t) d / 64;
        bs = (size_t) d % 64;
        for (size_t k = WORDS; k-- > 0;) {
                uint64_t v = 0;

                if (k >= ws) {
                        v = s->bits[k - ws] << bs;
                        if (bs && k > ws)
                                v |= s->bits[k - ws - 1] >> (64 - bs);
                }
                s->bits[k] = v;
        }
}

enum replay_verdict replay_check(struct replay *r, uint64_t sender, uint64_t epoch, uint64_t seq) {
        size_t slot = find_slot(r, sender);
        struct sender *s;
        uint32_t p;
        uint64_t d;

        if (r->index[slot] == 0) {
                if (r->count < r->max) {
                        p = (uint32_t) r->count++;
                } else {
                        /* Full: the least recently seen sender gives up its entry. */
                        p = r->tail;
                        lru_unlink(r, p);
                        index_remove(r, find_slot(r, r->senders[p].id));
                        slot = find_slot(r, sender);
                }
                s = &r->senders[p];
                s->id = sender;
                window_reset(s, epoch, seq);
                r->index[slot] = p + 1;
                lru_push_front(r, p);
                return REPLAY_NEW_SENDER;
        }

        p = r->index[slot] - 1;
        s = &r->senders[p];
        touch(r, p);

        if (epoch < s->epoch)
                return REPLAY_OLD_EPOCH;
        if (epoch > s->epoch) {
                window_reset(s, epoch, seq);
                return REPLAY_NEW_EPOCH;
        }
        if (seq > s->top) {
                window_shift(s, seq - s->top);
                s->top = seq;
                s->bits[0] |= 1;
                return REPLAY_ACCEPTED;
        }
        d = s->top - seq;
        if (d >= REPLAY_WINDOW)
                return REPLAY_TOO_OLD;
        if (s->bits[d / 64] & (UINT64_C(1) << (d % 64)))
                return REPLAY_DUPLICATE;
        s->bits[d / 64] |= UINT64_C(1) << (d % 64);
        return REPLAY_ACCEPTED;
}

bool replay_lookup(const struct replay *r, uint64_t sender, uint64_t *ret_epoch, uint64_t *ret_top) {
        size_t slot = find_slot(r, sender);
        const struct sender *s;

        if (r->index[slot] == 0)
                return false;
        s = &r->senders[r->index[slot] - 1];
        if (ret_epoch)
                *ret_epoch = s->epoch;
        if (ret_top)
                *ret_top = s->top;
        return true;
}
