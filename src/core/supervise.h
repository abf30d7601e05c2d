/*
 * Restart decisions for one supervised instance (one systemd unit). The
 * supervisor adapter (agentd/supervisor.c) feeds it facts -- health verdicts,
 * the unit's systemd state, restart job results, the passing of time -- and
 * carries out the actions it appends to a struct supervise_output. It never
 * does anything itself: pure, no clock, no I/O, no allocation; randomness
 * (jitter) comes from an injected function.
 *
 * Policy:
 *   - An unhealthy verdict restarts the unit at once, unless a rule below
 *     holds it back (each hold is reported once per unhealthy episode as a
 *     SUPPRESS action with its reason).
 *   - Our own restart job still running: wait for its result.
 *   - systemd is acting on the unit itself (a job is queued or running, its
 *     SubState is auto-restart, or it is activating, deactivating or
 *     reloading): systemd is not fought. Every edge into or out of such a
 *     state, and every MainPID change, makes the current verdict stale: a
 *     RECHECK action tells the caller to health_reset() the check, and the
 *     next verdict must be about the new process. So a unit with Restart=
 *     that systemd restarts after a crash is not restarted a second time.
 *   - Backoff: after restart number n (n = 1, 2, ... since the last reset)
 *     the next one waits d(n), with b(n) = min(backoff * 2^(n-1), backoff_max)
 *     and d(n) uniform in [b(n) - b(n)/2, b(n)] ("equal jitter":
 *     b - b/2 + rng() % (b/2 + 1)). The first restart of an episode is not delayed.
 *   - Rate limit: each restart takes one event of a GCRA limiter of
 *     restart_limit per restart_window (core/ratelimit.h). A restart the
 *     limiter denies is not made: the instance is QUARANTINED instead. A
 *     quarantined instance is out of rotation and, while unhealthy, is retried
 *     exactly every backoff_max (these retries bypass the limiter): it is never
 *     given up.
 *   - Reset: once the verdict has been healthy for stable_us without a break,
 *     the backoff restarts from the beginning (RESET) and a quarantine ends
 *     (UNQUARANTINE first). The limiter is never reset: it drains by itself.
 *   - A restart (RESTART action) also makes the verdict stale: the caller
 *     resets the health check as for RECHECK. (A `systemd` type check has to
 *     keep observing the unit's current ActiveState every interval after such
 *     a reset, or a unit that stays failed would never get a fresh verdict.)
 *   - WAKEUP: appended when the time of the next supervise_tick() changes
 *     (at_us 0: none needed), and by every supervise_tick() call that leaves
 *     one pending, so a one-shot timer re-armed at each WAKEUP is enough.
 *
 * Times are CLOCK_MONOTONIC µs. The persistable part is struct
 * supervise_snapshot (the adapter converts times to CLOCK_REALTIME and back).
 */
#ifndef AGENTD_SUPERVISE_H
#define AGENTD_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/health.h"
#include "core/ratelimit.h"

/* Returns 64 random bits. Tests inject a deterministic one; agentd uses libsodium's. */
typedef uint64_t (*supervise_rng_fn)(void *userdata);

/* Upper bound of the restart counter; it saturates there. */
#define SUPERVISE_ATTEMPT_MAX 1000000u
/* Most actions one call can append (RECHECK, SUPPRESS|QUARANTINE|RESTART, UNQUARANTINE, RESET, WAKEUP, spare). */
#define SUPERVISE_MAX_ACTIONS 8

/* systemd's ActiveState values. */
enum supervise_active {
        SUPERVISE_ACTIVE_UNKNOWN,       /* not (yet) known: the bus has not told us */
        SUPERVISE_ACTIVE_ACTIVE,
        SUPERVISE_ACTIVE_RELOADING,
        SUPERVISE_ACTIVE_INACTIVE,
        SUPERVISE_ACTIVE_FAILED,
        SUPERVISE_ACTIVE_ACTIVATING,
        SUPERVISE_ACTIVE_DEACTIVATING,
        SUPERVISE_ACTIVE_MAINTENANCE,
        SUPERVISE_ACTIVE_REFRESHING,
        _SUPERVISE_ACTIVE_MAX,
        _SUPERVISE_ACTIVE_INVALID = -1,
};

/* What the adapter knows of the unit, from its properties on the bus. */
struct supervise_unit_status {
        enum supervise_active active;   /* ActiveState */
        bool auto_restart;              /* SubState is "auto-restart" */
        bool restart_configured;        /* Restart= is not "no" */
        bool job_pending;               /* Job is set: a job is queued or running */
        bool not_found;                 /* LoadState not-found or masked: a restart cannot help */
        uint32_t main_pid;              /* MainPID, 0: none */
};

/* JobRemoved results, plus UNKNOWN: the bus went away before the result came. */
enum supervise_job_result {
        SUPERVISE_JOB_DONE,
        SUPERVISE_JOB_CANCELED,
        SUPERVISE_JOB_TIMEOUT,
        SUPERVISE_JOB_FAILED,
        SUPERVISE_JOB_DEPENDENCY,
        SUPERVISE_JOB_SKIPPED,
        SUPERVISE_JOB_INVALID,          /* "invalid": also used when the call itself was refused */
        SUPERVISE_JOB_UNKNOWN,
        _SUPERVISE_JOB_RESULT_MAX,
        _SUPERVISE_JOB_RESULT_INVALID = -1,
};

enum supervise_action_type {
        SUPERVISE_ACTION_RESTART,       /* call RestartUnit; report its result with supervise_job_result() */
        SUPERVISE_ACTION_SUPPRESS,      /* a restart was due but held back (event restart_suppressed) */
        SUPERVISE_ACTION_QUARANTINE,    /* entered quarantine (event instance_quarantined); out of rotation */
        SUPERVISE_ACTION_UNQUARANTINE,  /* left quarantine: back in rotation */
        SUPERVISE_ACTION_RESET,         /* stable period passed: backoff starts over */
        SUPERVISE_ACTION_RECHECK,       /* verdict stale (process replaced): health_reset() the check */
        SUPERVISE_ACTION_WAKEUP,        /* call supervise_tick() at at_us (0: no timer needed) */
        _SUPERVISE_ACTION_MAX,
        _SUPERVISE_ACTION_INVALID = -1,
};

enum supervise_reason {
        SUPERVISE_REASON_NONE,
        SUPERVISE_REASON_UNHEALTHY,             /* RESTART: the check's verdict */
        SUPERVISE_REASON_QUARANTINE_RETRY,      /* RESTART: the every-backoff_max retry */
        SUPERVISE_REASON_MANUAL,                /* RESTART: agentctl restart */
        SUPERVISE_REASON_RATE_LIMITED,          /* QUARANTINE: the limiter denied a restart */
        SUPERVISE_REASON_BACKOFF,               /* SUPPRESS: waiting until at_us */
        SUPERVISE_REASON_QUARANTINED,           /* SUPPRESS: quarantined, next retry at at_us */
        SUPERVISE_REASON_IN_FLIGHT,             /* SUPPRESS: our restart job has not finished */
        SUPERVISE_REASON_SYSTEMD_RESTARTING,    /* SUPPRESS: auto-restart, or Restart= and activating */
        SUPERVISE_REASON_SYSTEMD_BUSY,          /* SUPPRESS: a job or another transition in progress */
        SUPERVISE_REASON_NO_UNIT,               /* SUPPRESS: the unit does not exist */
        SUPERVISE_REASON_STABLE,                /* RESET / UNQUARANTINE: healthy for stable_us */
        SUPERVISE_REASON_UNIT_CHANGED,          /* RECHECK: systemd transition or new MainPID */
        _SUPERVISE_REASON_MAX,
        _SUPERVISE_REASON_INVALID = -1,
};

struct supervise_action {
        enum supervise_action_type type;
        enum supervise_reason reason;
        unsigned attempt;       /* RESTART: this restart's number; QUARANTINE: restarts made so far; else 0 */
        uint64_t at_us;         /* SUPPRESS backoff/quarantined: until; QUARANTINE: first retry; WAKEUP: when; else 0 */
};

/* Filled by the calls below (appended); the caller drains it and sets n = 0. */
struct supervise_output {
        struct supervise_action actions[SUPERVISE_MAX_ACTIONS];
        size_t n;
};

struct supervise_config {
        unsigned restart_limit;         /* restart.limit */
        uint64_t restart_window_us;     /* restart.window */
        uint64_t backoff_us;            /* restart.backoff, >= 1 */
        uint64_t backoff_max_us;        /* restart.backoff_max, >= backoff_us */
        uint64_t stable_us;             /* healthy this long resets the backoff; 0: backoff_max_us */
};

/* Read-only for callers (display: `agentctl services`). */
struct supervise {
        struct supervise_config config;
        supervise_rng_fn rng;
        void *rng_userdata;
        struct ratelimit limiter;
        struct supervise_unit_status unit;
        bool unit_known;                /* a status has been given */
        enum health_state verdict;      /* UNKNOWN after a restart or RECHECK */
        uint64_t healthy_since_us;      /* verdict healthy since (0: not healthy) */
        unsigned attempt;               /* restarts since the last reset */
        uint64_t next_at_us;            /* no restart before this (0: none pending) */
        bool quarantined;
        uint64_t quarantined_at_us;
        bool in_flight;                 /* our restart job has no result yet */
        enum supervise_job_result last_job;
        bool has_last_job;
        uint64_t last_restart_us;       /* 0: never */
        uint64_t n_restarts;            /* total, for display */
        enum supervise_reason suppressed; /* last SUPPRESS reason this episode (NONE: none yet) */
        uint64_t suppressed_at_us;      /* ... and its at_us, so a changed deadline is reported */
        uint64_t wakeup_us;             /* last WAKEUP announced */
};

/* Everything that must survive an agent restart. Times are monotonic µs. */
struct supervise_snapshot {
        unsigned attempt;
        uint64_t next_at_us;            /* 0: none */
        bool quarantined;
        uint64_t quarantined_at_us;
        uint64_t tat_us;                /* the limiter's TAT (0: idle) */
        uint64_t last_restart_us;       /* 0: never */
        uint64_t n_restarts;
};

/*
 * Unit status unknown, verdict unknown, no restart made. rng must not be NULL.
 * -EINVAL on a bad config: restart_limit/window outside ratelimit_init()'s
 * range, backoff_us 0, backoff_max_us < backoff_us, or any duration above
 * RATELIMIT_WINDOW_MAX.
 */
int supervise_init(struct supervise *s, const struct supervise_config *c, supervise_rng_fn rng, void *rng_userdata);

/*
 * New config (reload), keeping the state: the limiter keeps its TAT
 * (clamped), next_at is clamped to now_us + the new backoff_max_us.
 * -EINVAL like supervise_init, s untouched.
 */
int supervise_configure(struct supervise *s, const struct supervise_config *c, uint64_t now_us);

/* A new verdict of the instance's health check (call on every health transition). */
void supervise_verdict(struct supervise *s, enum health_state verdict, uint64_t now_us,
                       struct supervise_output *out);

/* The unit's properties changed (or were read for the first time). */
void supervise_unit(struct supervise *s, const struct supervise_unit_status *st, uint64_t now_us,
                    struct supervise_output *out);

/* The result of the job started for a RESTART action (also for a manual one). */
void supervise_job_result(struct supervise *s, enum supervise_job_result r, uint64_t now_us,
                          struct supervise_output *out);

/* Time passed: call at the last WAKEUP's at_us (calling earlier or more often is harmless). */
void supervise_tick(struct supervise *s, uint64_t now_us, struct supervise_output *out);

/*
 * An administrator asked for a restart (agentctl restart): appends a RESTART
 * with reason MANUAL unless our own restart job is still running (-EBUSY,
 * nothing appended). It bypasses backoff, limiter and quarantine and does not
 * count as an attempt, but like any restart makes the verdict stale.
 */
int supervise_manual_restart(struct supervise *s, uint64_t now_us, struct supervise_output *out);

/* The earliest time supervise_tick() has work, 0 when none. */
uint64_t supervise_next_wakeup(const struct supervise *s);

/* In the load-balancing table? False while quarantined. */
bool supervise_in_rotation(const struct supervise *s);

/* Restarts the limiter currently counts (ratelimit_used): "restarts in window". */
unsigned supervise_restarts_in_window(const struct supervise *s, uint64_t now_us);

/*
 * The delay after restart number `attempt` (>= 1) for a given random draw:
 * b - b/2 + r % (b/2 + 1), b = min(backoff * 2^(attempt-1), backoff_max).
 * Exposed so tests and docs can state the bounds exactly.
 */
uint64_t supervise_backoff_delay(const struct supervise_config *c, unsigned attempt, uint64_t r);

void supervise_save(const struct supervise *s, struct supervise_snapshot *ret);

/*
 * Installs a persisted state: attempt capped at SUPERVISE_ATTEMPT_MAX,
 * next_at clamped to at most now_us + backoff_max_us, times after now_us
 * (last_restart, quarantined_at) clamped to now_us, the TAT as
 * ratelimit_restore(). Verdict and unit status stay unknown and no job is in
 * flight: the adapter re-reads them. Never fails.
 */
void supervise_restore(struct supervise *s, const struct supervise_snapshot *snap, uint64_t now_us);

/*
 * One line for an event's detail, e.g. "restart 3 (unhealthy)",
 * "suppressed: backoff for 1500ms", "quarantined after 5 restarts: rate limited,
 * retry in 5m". at_us values are shown relative to now_us. Returns buf.
 */
const char *supervise_action_format(const struct supervise_action *a, uint64_t now_us, char *buf, size_t len);

/* Enum printers: lowercase names with '_' ("auto_restart" style); NULL when out of range. */
const char *supervise_action_type_to_string(enum supervise_action_type t);
const char *supervise_reason_to_string(enum supervise_reason r);
/* systemd's own spelling: "active", "activating", ... ("unknown" for UNKNOWN). */
const char *supervise_active_to_string(enum supervise_active a);
enum supervise_active supervise_active_from_string(const char *s);
/* systemd's own spelling: "done", "canceled", ... plus "unknown". */
const char *supervise_job_result_to_string(enum supervise_job_result r);
enum supervise_job_result supervise_job_result_from_string(const char *s);

#endif
