/*
 * A circuit breaker per backend. Closed: traffic flows and consecutive
 * failures are counted; `failures` in a row open it. Open: nothing flows for
 * `open_for`. Then half-open: `half_open_probes` attempts are let through; if
 * all of them succeed the breaker closes, the first failure opens it again
 * (for another `open_for`).
 *
 * Results come from health checks now and from the data plane later; both
 * call breaker_record(). Checks run whatever the state, so they need no
 * admission; data-plane callers ask breaker_allow() first, which limits the
 * half-open attempts in flight.
 *
 * Time is CLOCK_MONOTONIC µs supplied by the caller; the whole state is in
 * struct breaker_snapshot so it can be persisted (the adapter converts times
 * to CLOCK_REALTIME and back). Pure: no clock, no I/O, no allocation.
 */
#ifndef AGENTD_BREAKER_H
#define AGENTD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
        BREAKER_CLOSED,
        BREAKER_OPEN,
        BREAKER_HALF_OPEN,
        _BREAKER_STATE_MAX,
        _BREAKER_STATE_INVALID = -1,
};

/* Largest accepted failures / half_open_probes; counters never exceed them. */
#define BREAKER_COUNT_MAX 1000000u
/* Longest accepted open_for: 100 years in µs, keeps sums below 2^63. */
#define BREAKER_OPEN_FOR_MAX (UINT64_C(100) * 365 * 24 * 3600 * 1000000)
/* breaker_record() can move open -> half_open -> closed|open in one call. */
#define BREAKER_MAX_TRANSITIONS 2

struct breaker_config {
        unsigned failures;              /* 1..BREAKER_COUNT_MAX */
        uint64_t open_for_us;           /* 0..BREAKER_OPEN_FOR_MAX */
        unsigned half_open_probes;      /* 1..BREAKER_COUNT_MAX */
};

struct breaker_transition {
        enum breaker_state from;
        enum breaker_state to;
};

/* Read-only for callers (display); change it only through the functions below. */
struct breaker {
        struct breaker_config config;
        enum breaker_state state;
        unsigned n_failures;            /* closed: consecutive failures */
        unsigned n_probe_ok;            /* half-open: successes so far */
        unsigned n_admitted;            /* half-open: breaker_allow() admissions */
        uint64_t open_until_us;         /* open: when it turns half-open */
        uint64_t changed_at_us;         /* when `state` was entered (0: never changed) */
        uint64_t n_opened;              /* times opened, for display */
};

/* Everything that must survive an agent restart. Times are monotonic µs. */
struct breaker_snapshot {
        enum breaker_state state;
        unsigned n_failures;
        unsigned n_probe_ok;
        uint64_t open_until_us;
        uint64_t changed_at_us;
        uint64_t n_opened;
};

/* Closed, no failures. -EINVAL when a config value is out of range. */
int breaker_init(struct breaker *b, const struct breaker_config *c);

/*
 * New thresholds (config reload), keeping the state. Counters are cut to the
 * new thresholds' range; a threshold already reached takes effect at the next
 * result. An open breaker keeps its open_until. -EINVAL, b untouched, on a bad config.
 */
int breaker_configure(struct breaker *b, const struct breaker_config *c);

/*
 * Moves open -> half_open once now_us >= open_until_us. Returns true and fills
 * *ret_transition (may be NULL) when it did. Call it from the timer armed at
 * breaker_next_wakeup(); breaker_allow() and breaker_record() call it too.
 */
bool breaker_tick(struct breaker *b, uint64_t now_us, struct breaker_transition *ret_transition);

/*
 * Data plane: may one attempt go through now? Closed: yes. Open: no (unless
 * due: then it turns half-open first). Half-open: yes while fewer than
 * half_open_probes attempts have been admitted since it turned half-open.
 * *ret_transition (may be NULL) is always written: from != to only when the
 * call turned the breaker half-open.
 */
bool breaker_allow(struct breaker *b, uint64_t now_us, struct breaker_transition *ret_transition);

/*
 * Records one result at now_us. Writes the transitions it caused, in order,
 * to ret_transitions and returns how many (0..BREAKER_MAX_TRANSITIONS):
 *   closed:    failure -> count; the `failures`th in a row opens. Success resets the count.
 *   open:      ignored (nothing should flow), unless due: half-open first.
 *   half-open: failure -> open again (open_until = now + open_for);
 *              success -> count; the `half_open_probes`th closes.
 */
unsigned breaker_record(struct breaker *b, bool ok, uint64_t now_us,
                        struct breaker_transition ret_transitions[static BREAKER_MAX_TRANSITIONS]);

/* When breaker_tick() has work: open_until_us when open, else 0 (none). */
uint64_t breaker_next_wakeup(const struct breaker *b);

void breaker_save(const struct breaker *b, struct breaker_snapshot *ret);

/*
 * Installs a persisted state under b's current config. Validates (-EINVAL,
 * b untouched, for a bad state value) and clamps: counters to the thresholds,
 * open_until to at most now_us + open_for, changed_at to at most now_us.
 * A restored half-open breaker keeps its successes and admits the probes
 * still missing (attempts in flight when the agent stopped are lost).
 */
int breaker_restore(struct breaker *b, const struct breaker_snapshot *s, uint64_t now_us);

/* "closed", "open", "half_open"; NULL for an out-of-range value. */
const char *breaker_state_to_string(enum breaker_state s);
/* The inverse; _BREAKER_STATE_INVALID for an unknown name or NULL. */
enum breaker_state breaker_state_from_string(const char *s);
/* "closed -> open", "open -> half_open", ...: a static string; NULL when out of range. */
const char *breaker_transition_to_string(const struct breaker_transition *t);

#endif
