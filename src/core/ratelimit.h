/*
 * A rate limiter: the generic cell rate algorithm (GCRA), "limit events per
 * window". Its whole state is one timestamp, the theoretical arrival time
 * (TAT), so it is cheap to persist and exact to restore.
 *
 * With T = ceil(window / limit) (the emission interval) and a burst tolerance
 * of (limit - 1) * T, an idle limiter allows `limit` events at once; after
 * that one more every T. An event at `now` is allowed when
 * max(tat, now) - now <= (limit - 1) * T, and then tat = max(tat, now) + T.
 * A denied event does not change the state.
 *
 * Pure: time (CLOCK_MONOTONIC µs, supplied by the caller) is an argument.
 */
#ifndef AGENTD_RATELIMIT_H
#define AGENTD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Bounds accepted by ratelimit_init(); they keep every sum below 2^63. */
#define RATELIMIT_LIMIT_MAX 1000000u
#define RATELIMIT_WINDOW_MAX (UINT64_C(100) * 365 * 24 * 3600 * 1000000)  /* 100 years in µs */

struct ratelimit {
        unsigned limit;
        uint64_t window_us;
        uint64_t interval_us;   /* T */
        uint64_t tolerance_us;  /* (limit - 1) * T */
        uint64_t tat_us;        /* 0: never used (or fully drained) */
};

/*
 * An idle limiter allowing `limit` events per `window_us`. -EINVAL unless
 * 1 <= limit <= RATELIMIT_LIMIT_MAX and limit <= window_us <= RATELIMIT_WINDOW_MAX.
 */
int ratelimit_init(struct ratelimit *rl, unsigned limit, uint64_t window_us);

/*
 * Takes one event at now_us. Returns true (allowed, state advanced) or false
 * (denied, state unchanged) and then sets *ret_retry_after_us (may be NULL) to
 * how long from now_us until the next event would be allowed.
 */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_us, uint64_t *ret_retry_after_us);

/* What ratelimit_allow() would answer, without taking an event. */
bool ratelimit_check(const struct ratelimit *rl, uint64_t now_us, uint64_t *ret_retry_after_us);

/*
 * How many events of the current burst are "in use" at now_us:
 * ceil((tat - now) / T), 0..limit. Shown as "restarts in window".
 */
unsigned ratelimit_used(const struct ratelimit *rl, uint64_t now_us);

/*
 * Installs a persisted TAT (monotonic µs, converted by the adapter). A value
 * from the future is clamped to now_us + limit * T (a full burst used, the
 * most the algorithm can ever hold); a value in the past means idle.
 */
void ratelimit_restore(struct ratelimit *rl, uint64_t tat_us, uint64_t now_us);

#endif
