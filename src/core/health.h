/*
 * The health verdict of one check: a rise/fall state machine fed with check
 * results. A single failed probe is noise; `fall` consecutive failures make
 * an instance unhealthy and `rise` consecutive successes make it healthy
 * again. The first verdict also needs a full streak: a new (or reset)
 * machine is "unknown" until `rise` successes or `fall` failures in a row.
 *
 * Pure: no clock (time is an argument), no I/O, no allocation.
 */
#ifndef AGENTD_HEALTH_H
#define AGENTD_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

enum health_state {
        HEALTH_UNKNOWN,
        HEALTH_HEALTHY,
        HEALTH_UNHEALTHY,
        _HEALTH_STATE_MAX,
        _HEALTH_STATE_INVALID = -1,
};

/* Largest accepted rise/fall; counters saturate there. */
#define HEALTH_THRESHOLD_MAX 1000
/* Bytes kept of a result's reason (including the NUL); longer ones are cut. */
#define HEALTH_REASON_MAX 128

/* One check result, as a probe or the systemd signal adapter reports it. */
struct health_result {
        bool ok;
        uint64_t latency_us;
        const char *reason;     /* borrowed; NULL or "" when there is nothing to say */
};

struct health_transition {
        enum health_state from;
        enum health_state to;
};

/*
 * Read-only for callers (display): change it only through the functions
 * below. Counters count the current streak; the other one is 0.
 */
struct health {
        unsigned rise;
        unsigned fall;
        enum health_state state;
        unsigned n_ok;                  /* consecutive successes */
        unsigned n_fail;                /* consecutive failures */
        uint64_t since_us;              /* when `state` was entered (0: never) */
        bool has_last;                  /* a result has been observed */
        bool last_ok;
        uint64_t last_at_us;
        uint64_t last_latency_us;
        char last_reason[HEALTH_REASON_MAX];
        uint64_t n_checks;              /* totals since init, for display */
        uint64_t n_failures;
};

/* Starts in HEALTH_UNKNOWN. -EINVAL unless 1 <= rise, fall <= HEALTH_THRESHOLD_MAX. */
int health_init(struct health *h, unsigned rise, unsigned fall);

/*
 * Changes the thresholds (config reload) keeping state and streaks; a streak
 * already past a lowered threshold takes effect at the next result.
 * -EINVAL like health_init, h untouched.
 */
int health_set_thresholds(struct health *h, unsigned rise, unsigned fall);

/*
 * Forgets the streaks and the verdict (back to HEALTH_UNKNOWN), keeping the
 * last result and totals for display. Used when the process being checked was
 * replaced (a restart), so the next verdict is about the new one.
 */
void health_reset(struct health *h, uint64_t now_us);

/*
 * Records one result at now_us. Returns true when the verdict changed and
 * then fills *ret_transition (may be NULL); false otherwise, *ret_transition
 * untouched. Transitions: unknown -> healthy|unhealthy, healthy -> unhealthy,
 * unhealthy -> healthy.
 */
bool health_observe(struct health *h, const struct health_result *r, uint64_t now_us,
                    struct health_transition *ret_transition);

/* "unknown", "healthy", "unhealthy"; NULL for an out-of-range value. */
const char *health_state_to_string(enum health_state s);
/* The inverse; _HEALTH_STATE_INVALID for an unknown name or NULL. */
enum health_state health_state_from_string(const char *s);

#endif
