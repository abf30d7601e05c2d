/*
 * The circuit breaker state machine, see breaker.h.
 */
#include <errno.h>
#include <string.h>

#include "core/breaker.h"

static const char *const state_names[_BREAKER_STATE_MAX] = {
        [BREAKER_CLOSED] = "closed",
        [BREAKER_OPEN] = "open",
        [BREAKER_HALF_OPEN] = "half_open",
};

/* Every from -> to pair, so callers get a static string without formatting. */
static const char *const transition_names[_BREAKER_STATE_MAX][_BREAKER_STATE_MAX] = {
        [BREAKER_CLOSED] = {
                [BREAKER_CLOSED] = "closed -> closed",
                [BREAKER_OPEN] = "closed -> open",
                [BREAKER_HALF_OPEN] = "closed -> half_open",
        },
        [BREAKER_OPEN] = {
                [BREAKER_CLOSED] = "open -> closed",
                [BREAKER_OPEN] = "open -> open",
                [BREAKER_HALF_OPEN] = "open -> half_open",
        },
        [BREAKER_HALF_OPEN] = {
                [BREAKER_CLOSED] = "half_open -> closed",
                [BREAKER_OPEN] = "half_open -> open",
                [BREAKER_HALF_OPEN] = "half_open -> half_open",
        },
};

static bool config_valid(const struct breaker_config *c) {
        return c && c->failures >= 1 && c->failures <= BREAKER_COUNT_MAX && c->half_open_probes >= 1 &&
               c->half_open_probes <= BREAKER_COUNT_MAX && c->open_for_us <= BREAKER_OPEN_FOR_MAX;
}

int breaker_init(struct breaker *b, const struct breaker_config *c) {
        if (!b || !config_valid(c))
                return -EINVAL;
        *b = (struct breaker) {
                .config = *c,
                .state = BREAKER_CLOSED,
        };
        return 0;
}

/* Keeps counters below the thresholds so a lowered threshold fires at the next result, not never. */
static void clamp_counters(struct breaker *b) {
        if (b->n_failures >= b->config.failures)
                b->n_failures = b->config.failures - 1;
        if (b->n_probe_ok >= b->config.half_open_probes)
                b->n_probe_ok = b->config.half_open_probes - 1;
        if (b->n_admitted > b->config.half_open_probes)
                b->n_admitted = b->config.half_open_probes;
}

int breaker_configure(struct breaker *b, const struct breaker_config *c) {
        if (!b || !config_valid(c))
                return -EINVAL;
        b->config = *c;
        clamp_counters(b);
        return 0;
}

static void enter(struct breaker *b, enum breaker_state to, uint64_t now_us, struct breaker_transition *t) {
        t->from = b->state;
        t->to = to;
        b->state = to;
        b->changed_at_us = now_us;
        b->n_failures = 0;
        b->n_probe_ok = 0;
        b->n_admitted = 0;
        if (to == BREAKER_OPEN) {
                b->open_until_us = now_us + b->config.open_for_us;
                b->n_opened++;
        } else
                b->open_until_us = 0;
}

bool breaker_tick(struct breaker *b, uint64_t now_us, struct breaker_transition *ret_transition) {
        struct breaker_transition t;

        if (b->state != BREAKER_OPEN || now_us < b->open_until_us)
                return false;
        enter(b, BREAKER_HALF_OPEN, now_us, &t);
        if (ret_transition)
                *ret_transition = t;
        return true;
}

bool breaker_allow(struct breaker *b, uint64_t now_us, struct breaker_transition *ret_transition) {
        struct breaker_transition t = { .from = b->state, .to = b->state };
        bool allowed;

        breaker_tick(b, now_us, &t);
        switch (b->state) {
        case BREAKER_CLOSED:
                allowed = true;
                break;
        case BREAKER_HALF_OPEN:
                allowed = b->n_admitted < b->config.half_open_probes;
                if (allowed)
                        b->n_admitted++;
                break;
        default:
                allowed = false;
                break;
        }
        if (ret_transition)
                *ret_transition = t;
        return allowed;
}

unsigned breaker_record(struct breaker *b, bool ok, uint64_t now_us,
                        struct breaker_transition ret_transitions[static BREAKER_MAX_TRANSITIONS]) {
        unsigned n = 0;

        if (breaker_tick(b, now_us, &ret_transitions[n]))
                n++;

        switch (b->state) {
        case BREAKER_CLOSED:
                if (ok)
                        b->n_failures = 0;
                else if (++b->n_failures >= b->config.failures)
                        enter(b, BREAKER_OPEN, now_us, &ret_transitions[n++]);
                break;
        case BREAKER_HALF_OPEN:
                if (!ok)
                        enter(b, BREAKER_OPEN, now_us, &ret_transitions[n++]);
                else if (++b->n_probe_ok >= b->config.half_open_probes)
                        enter(b, BREAKER_CLOSED, now_us, &ret_transitions[n++]);
                break;
        default:
                /* Open and not yet due: a late result of an attempt started before it opened says nothing new. */
                break;
        }
        return n;
}

uint64_t breaker_next_wakeup(const struct breaker *b) {
        return b->state == BREAKER_OPEN ? b->open_until_us : 0;
}

void breaker_save(const struct breaker *b, struct breaker_snapshot *ret) {
        *ret = (struct breaker_snapshot) {
                .state = b->state,
                .n_failures = b->n_failures,
                .n_probe_ok = b->n_probe_ok,
                .open_until_us = b->state == BREAKER_OPEN ? b->open_until_us : 0,
                .changed_at_us = b->changed_at_us,
                .n_opened = b->n_opened,
        };
}

int breaker_restore(struct breaker *b, const struct breaker_snapshot *s, uint64_t now_us) {
        uint64_t cap = now_us + b->config.open_for_us;

        if (!s || s->state < 0 || s->state >= _BREAKER_STATE_MAX)
                return -EINVAL;
        b->state = s->state;
        b->n_failures = s->state == BREAKER_CLOSED ? s->n_failures : 0;
        b->n_probe_ok = s->state == BREAKER_HALF_OPEN ? s->n_probe_ok : 0;
        b->n_admitted = 0;
        b->open_until_us = s->state == BREAKER_OPEN ? (s->open_until_us > cap ? cap : s->open_until_us) : 0;
        b->changed_at_us = s->changed_at_us > now_us ? now_us : s->changed_at_us;
        b->n_opened = s->n_opened;
        /* A half-open breaker resumes with its successes so far; fresh admissions follow. */
        b->n_admitted = b->n_probe_ok;
        clamp_counters(b);
        return 0;
}

const char *breaker_state_to_string(enum breaker_state s) {
        if (s < 0 || s >= _BREAKER_STATE_MAX)
                return NULL;
        return state_names[s];
}

enum breaker_state breaker_state_from_string(const char *s) {
        if (!s)
                return _BREAKER_STATE_INVALID;
        for (int i = 0; i < _BREAKER_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0)
                        return (enum breaker_state) i;
        return _BREAKER_STATE_INVALID;
}

const char *breaker_transition_to_string(const struct breaker_transition *t) {
        if (!t || t->from < 0 || t->from >= _BREAKER_STATE_MAX || t->to < 0 || t->to >= _BREAKER_STATE_MAX)
                return NULL;
        return transition_names[t->from][t->to];
}
