/*
 * Restart decisions for one instance, see supervise.h for the policy.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/supervise.h"

static const char *const action_names[_SUPERVISE_ACTION_MAX] = {
        [SUPERVISE_ACTION_RESTART] = "restart",
        [SUPERVISE_ACTION_SUPPRESS] = "suppress",
        [SUPERVISE_ACTION_QUARANTINE] = "quarantine",
        [SUPERVISE_ACTION_UNQUARANTINE] = "unquarantine",
        [SUPERVISE_ACTION_RESET] = "reset",
        [SUPERVISE_ACTION_RECHECK] = "recheck",
        [SUPERVISE_ACTION_WAKEUP] = "wakeup",
};

static const char *const reason_names[_SUPERVISE_REASON_MAX] = {
        [SUPERVISE_REASON_NONE] = "none",
        [SUPERVISE_REASON_UNHEALTHY] = "unhealthy",
        [SUPERVISE_REASON_QUARANTINE_RETRY] = "quarantine_retry",
        [SUPERVISE_REASON_MANUAL] = "manual",
        [SUPERVISE_REASON_RATE_LIMITED] = "rate_limited",
        [SUPERVISE_REASON_BACKOFF] = "backoff",
        [SUPERVISE_REASON_QUARANTINED] = "quarantined",
        [SUPERVISE_REASON_IN_FLIGHT] = "in_flight",
        [SUPERVISE_REASON_SYSTEMD_RESTARTING] = "systemd_restarting",
        [SUPERVISE_REASON_SYSTEMD_BUSY] = "systemd_busy",
        [SUPERVISE_REASON_NO_UNIT] = "no_unit",
        [SUPERVISE_REASON_STABLE] = "stable",
        [SUPERVISE_REASON_UNIT_CHANGED] = "unit_changed",
};

static const char *const active_names[_SUPERVISE_ACTIVE_MAX] = {
        [SUPERVISE_ACTIVE_UNKNOWN] = "unknown",
        [SUPERVISE_ACTIVE_ACTIVE] = "active",
        [SUPERVISE_ACTIVE_RELOADING] = "reloading",
        [SUPERVISE_ACTIVE_INACTIVE] = "inactive",
        [SUPERVISE_ACTIVE_FAILED] = "failed",
        [SUPERVISE_ACTIVE_ACTIVATING] = "activating",
        [SUPERVISE_ACTIVE_DEACTIVATING] = "deactivating",
        [SUPERVISE_ACTIVE_MAINTENANCE] = "maintenance",
        [SUPERVISE_ACTIVE_REFRESHING] = "refreshing",
};

static const char *const job_names[_SUPERVISE_JOB_RESULT_MAX] = {
        [SUPERVISE_JOB_DONE] = "done",
        [SUPERVISE_JOB_CANCELED] = "canceled",
        [SUPERVISE_JOB_TIMEOUT] = "timeout",
        [SUPERVISE_JOB_FAILED] = "failed",
        [SUPERVISE_JOB_DEPENDENCY] = "dependency",
        [SUPERVISE_JOB_SKIPPED] = "skipped",
        [SUPERVISE_JOB_INVALID] = "invalid",
        [SUPERVISE_JOB_UNKNOWN] = "unknown",
};

static bool config_valid(const struct supervise_config *c) {
        struct ratelimit probe;

        return c && ratelimit_init(&probe, c->restart_limit, c->restart_window_us) == 0 && c->backoff_us >= 1 &&
               c->backoff_max_us >= c->backoff_us && c->backoff_max_us <= RATELIMIT_WINDOW_MAX &&
               c->stable_us <= RATELIMIT_WINDOW_MAX;
}

static uint64_t stable_period(const struct supervise *s) {
        return s->config.stable_us ? s->config.stable_us : s->config.backoff_max_us;
}

int supervise_init(struct supervise *s, const struct supervise_config *c, supervise_rng_fn rng, void *rng_userdata) {
        struct ratelimit rl;

        if (!s || !rng || !config_valid(c) || ratelimit_init(&rl, c->restart_limit, c->restart_window_us) < 0)
                return -EINVAL;
        *s = (struct supervise) {
                .config = *c,
                .rng = rng,
                .rng_userdata = rng_userdata,
                .limiter = rl,
                .verdict = HEALTH_UNKNOWN,
                .suppressed = SUPERVISE_REASON_NONE,
        };
        return 0;
}

int supervise_configure(struct supervise *s, const struct supervise_config *c, uint64_t now_us) {
        struct ratelimit rl;
        uint64_t cap;

        if (!s || !config_valid(c) || ratelimit_init(&rl, c->restart_limit, c->restart_window_us) < 0)
                return -EINVAL;
        ratelimit_restore(&rl, s->limiter.tat_us, now_us);
        s->limiter = rl;
        s->config = *c;
        cap = now_us + c->backoff_max_us;
        if (s->next_at_us > cap)
                s->next_at_us = cap;
        return 0;
}

static void push(struct supervise_output *out, enum supervise_action_type type, enum supervise_reason reason,
                 unsigned attempt, uint64_t at_us) {
        /* The count per call is bounded by construction (see SUPERVISE_MAX_ACTIONS); the check is a seatbelt. */
        if (out->n >= SUPERVISE_MAX_ACTIONS)
                return;
        out->actions[out->n++] = (struct supervise_action) {
                .type = type,
                .reason = reason,
                .attempt = attempt,
                .at_us = at_us,
        };
}

/*
 * Is systemd itself acting on the unit? Then a restart of ours would be a
 * second one (or would fight a stop/reload in progress). *ret_reason says
 * whether it is systemd's own restart or some other transition.
 */
static bool unit_busy(const struct supervise_unit_status *u, enum supervise_reason *ret_reason) {
        enum supervise_reason r;

        if (u->auto_restart || (u->restart_configured && u->active == SUPERVISE_ACTIVE_ACTIVATING))
                r = SUPERVISE_REASON_SYSTEMD_RESTARTING;
        else if (u->job_pending || u->active == SUPERVISE_ACTIVE_ACTIVATING ||
                 u->active == SUPERVISE_ACTIVE_DEACTIVATING || u->active == SUPERVISE_ACTIVE_RELOADING ||
                 u->active == SUPERVISE_ACTIVE_MAINTENANCE || u->active == SUPERVISE_ACTIVE_REFRESHING)
                r = SUPERVISE_REASON_SYSTEMD_BUSY;
        else
                return false;
        if (ret_reason)
                *ret_reason = r;
        return true;
}

/* Forgets the verdict: whatever the check said was about a process that is gone (or going). */
static void stale_verdict(struct supervise *s) {
        s->verdict = HEALTH_UNKNOWN;
        s->healthy_since_us = 0;
        s->suppressed = SUPERVISE_REASON_NONE;
        s->suppressed_at_us = 0;
}

/* Reports a hold once per unhealthy episode (and again only when its reason or deadline changes). */
static void suppress(struct supervise *s, enum supervise_reason reason, uint64_t at_us, struct supervise_output *out) {
        if (s->suppressed == reason && s->suppressed_at_us == at_us)
                return;
        s->suppressed = reason;
        s->suppressed_at_us = at_us;
        push(out, SUPERVISE_ACTION_SUPPRESS, reason, 0, at_us);
}

static void restart(struct supervise *s, enum supervise_reason reason, bool counts, uint64_t now_us,
                    struct supervise_output *out) {
        if (counts && s->attempt < SUPERVISE_ATTEMPT_MAX)
                s->attempt++;
        s->in_flight = true;
        s->last_restart_us = now_us;
        s->n_restarts++;
        stale_verdict(s);
        push(out, SUPERVISE_ACTION_RESTART, reason, s->attempt, 0);
}

uint64_t supervise_backoff_delay(const struct supervise_config *c, unsigned attempt, uint64_t r) {
        unsigned shift = attempt > 0 ? attempt - 1 : 0;
        uint64_t b, half;

        if (shift >= 63 || c->backoff_us > (c->backoff_max_us >> shift))
                b = c->backoff_max_us;
        else
                b = c->backoff_us << shift;
        if (b > c->backoff_max_us)
                b = c->backoff_max_us;
        half = b / 2;
        return b - half + r % (half + 1);
}

static bool reset_pending(const struct supervise *s) {
        return s->verdict == HEALTH_HEALTHY && (s->attempt > 0 || s->quarantined || s->next_at_us > 0);
}

/* True when an unhealthy verdict is only waiting for next_at (nothing else holds it). */
static bool waiting_for_backoff(const struct supervise *s) {
        if (s->verdict != HEALTH_UNHEALTHY || s->in_flight || s->next_at_us == 0)
                return false;
        if (s->unit_known && (s->unit.not_found || unit_busy(&s->unit, NULL)))
                return false;
        return true;
}

uint64_t supervise_next_wakeup(const struct supervise *s) {
        uint64_t w = 0;

        if (waiting_for_backoff(s))
                w = s->next_at_us;
        if (reset_pending(s)) {
                uint64_t t = s->healthy_since_us + stable_period(s);
                if (w == 0 || t < w)
                        w = t;
        }
        return w;
}

static void evaluate(struct supervise *s, uint64_t now_us, struct supervise_output *out) {
        enum supervise_reason busy;

        if (reset_pending(s) && now_us >= s->healthy_since_us + stable_period(s)) {
                if (s->quarantined) {
                        s->quarantined = false;
                        s->quarantined_at_us = 0;
                        push(out, SUPERVISE_ACTION_UNQUARANTINE, SUPERVISE_REASON_STABLE, 0, 0);
                }
                s->attempt = 0;
                s->next_at_us = 0;
                push(out, SUPERVISE_ACTION_RESET, SUPERVISE_REASON_STABLE, 0, 0);
        }

        if (s->verdict != HEALTH_UNHEALTHY)
                return;
        if (s->in_flight) {
                suppress(s, SUPERVISE_REASON_IN_FLIGHT, 0, out);
                return;
        }
        if (s->unit_known && s->unit.not_found) {
                suppress(s, SUPERVISE_REASON_NO_UNIT, 0, out);
                return;
        }
        if (s->unit_known && unit_busy(&s->unit, &busy)) {
                suppress(s, busy, 0, out);
                return;
        }
        if (now_us < s->next_at_us) {
                suppress(s, s->quarantined ? SUPERVISE_REASON_QUARANTINED : SUPERVISE_REASON_BACKOFF,
                         s->next_at_us, out);
                return;
        }

        if (s->quarantined) {
                restart(s, SUPERVISE_REASON_QUARANTINE_RETRY, true, now_us, out);
                s->next_at_us = now_us + s->config.backoff_max_us;
        } else if (!ratelimit_allow(&s->limiter, now_us, NULL)) {
                s->quarantined = true;
                s->quarantined_at_us = now_us;
                s->next_at_us = now_us + s->config.backoff_max_us;
                push(out, SUPERVISE_ACTION_QUARANTINE, SUPERVISE_REASON_RATE_LIMITED, s->attempt, s->next_at_us);
                /* The QUARANTINE action already says "held until next_at": no SUPPRESS repeating it. */
                s->suppressed = SUPERVISE_REASON_QUARANTINED;
                s->suppressed_at_us = s->next_at_us;
        } else {
                restart(s, SUPERVISE_REASON_UNHEALTHY, true, now_us, out);
                s->next_at_us = now_us + supervise_backoff_delay(&s->config, s->attempt, s->rng(s->rng_userdata));
        }
}

static void announce(struct supervise *s, bool always, struct supervise_output *out) {
        uint64_t w = supervise_next_wakeup(s);

        if (w == s->wakeup_us && !(always && w != 0))
                return;
        s->wakeup_us = w;
        push(out, SUPERVISE_ACTION_WAKEUP, SUPERVISE_REASON_NONE, 0, w);
}

void supervise_verdict(struct supervise *s, enum health_state verdict, uint64_t now_us,
                       struct supervise_output *out) {
        if (verdict < 0 || verdict >= _HEALTH_STATE_MAX)
                return;
        if (verdict != s->verdict) {
                s->verdict = verdict;
                s->healthy_since_us = verdict == HEALTH_HEALTHY ? now_us : 0;
                s->suppressed = SUPERVISE_REASON_NONE;
                s->suppressed_at_us = 0;
        }
        evaluate(s, now_us, out);
        announce(s, false, out);
}

void supervise_unit(struct supervise *s, const struct supervise_unit_status *st, uint64_t now_us,
                    struct supervise_output *out) {
        struct supervise_unit_status old = s->unit;
        bool was_known = s->unit_known;

        s->unit = *st;
        s->unit_known = true;
        if (was_known && (unit_busy(&old, NULL) != unit_busy(st, NULL) ||
                          (old.main_pid != 0 && st->main_pid != 0 && old.main_pid != st->main_pid))) {
                stale_verdict(s);
                push(out, SUPERVISE_ACTION_RECHECK, SUPERVISE_REASON_UNIT_CHANGED, 0, 0);
        }
        evaluate(s, now_us, out);
        announce(s, false, out);
}

void supervise_job_result(struct supervise *s, enum supervise_job_result r, uint64_t now_us,
                          struct supervise_output *out) {
        if (r < 0 || r >= _SUPERVISE_JOB_RESULT_MAX)
                r = SUPERVISE_JOB_UNKNOWN;
        s->in_flight = false;
        s->last_job = r;
        s->has_last_job = true;
        evaluate(s, now_us, out);
        announce(s, false, out);
}

void supervise_tick(struct supervise *s, uint64_t now_us, struct supervise_output *out) {
        evaluate(s, now_us, out);
        announce(s, true, out);
}

int supervise_manual_restart(struct supervise *s, uint64_t now_us, struct supervise_output *out) {
        if (s->in_flight)
                return -EBUSY;
        restart(s, SUPERVISE_REASON_MANUAL, false, now_us, out);
        announce(s, false, out);
        return 0;
}

bool supervise_in_rotation(const struct supervise *s) {
        return !s->quarantined;
}

unsigned supervise_restarts_in_window(const struct supervise *s, uint64_t now_us) {
        return ratelimit_used(&s->limiter, now_us);
}

void supervise_save(const struct supervise *s, struct supervise_snapshot *ret) {
        *ret = (struct supervise_snapshot) {
                .attempt = s->attempt,
                .next_at_us = s->next_at_us,
                .quarantined = s->quarantined,
                .quarantined_at_us = s->quarantined_at_us,
                .tat_us = s->limiter.tat_us,
                .last_restart_us = s->last_restart_us,
                .n_restarts = s->n_restarts,
        };
}

void supervise_restore(struct supervise *s, const struct supervise_snapshot *snap, uint64_t now_us) {
        uint64_t cap = now_us + s->config.backoff_max_us;

        s->attempt = snap->attempt > SUPERVISE_ATTEMPT_MAX ? SUPERVISE_ATTEMPT_MAX : snap->attempt;
        s->next_at_us = snap->next_at_us > cap ? cap : snap->next_at_us;
        s->quarantined = snap->quarantined;
        s->quarantined_at_us = !snap->quarantined ? 0 :
                               snap->quarantined_at_us > now_us ? now_us : snap->quarantined_at_us;
        ratelimit_restore(&s->limiter, snap->tat_us, now_us);
        s->last_restart_us = snap->last_restart_us > now_us ? now_us : snap->last_restart_us;
        s->n_restarts = snap->n_restarts;
        s->unit_known = false;
        s->unit = (struct supervise_unit_status) { .active = SUPERVISE_ACTIVE_UNKNOWN };
        s->in_flight = false;
        s->has_last_job = false;
        s->wakeup_us = 0;
        stale_verdict(s);
}

/* Like util_format_duration (core cannot use util), after rounding up to whole milliseconds. */
static const char *format_rel(uint64_t us, char *buf, size_t len) {
        static const struct {
                const char *name;
                uint64_t ms;
        } units[] = {
                { "d", UINT64_C(86400000) }, { "h", UINT64_C(3600000) }, { "m", UINT64_C(60000) },
                { "s", UINT64_C(1000) }, { "ms", UINT64_C(1) },
        };
        uint64_t ms = us / 1000 + (us % 1000 != 0);

        if (ms == 0) {
                snprintf(buf, len, "0s");
                return buf;
        }
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (ms % units[i].ms == 0) {
                        snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].name);
                        break;
                }
        return buf;
}

const char *supervise_action_format(const struct supervise_action *a, uint64_t now_us, char *buf, size_t len) {
        char d[32];
        const char *reason = supervise_reason_to_string(a->reason);

        if (!buf || len == 0)
                return NULL;
        format_rel(a->at_us > now_us ? a->at_us - now_us : 0, d, sizeof(d));
        if (!reason)
                reason = "?";
        switch (a->type) {
        case SUPERVISE_ACTION_RESTART:
                snprintf(buf, len, "restart %u (%s)", a->attempt, reason);
                break;
        case SUPERVISE_ACTION_SUPPRESS:
                if (a->reason == SUPERVISE_REASON_BACKOFF || a->reason == SUPERVISE_REASON_QUARANTINED)
                        snprintf(buf, len, "suppressed: %s for %s", reason, d);
                else
                        snprintf(buf, len, "suppressed: %s", reason);
                break;
        case SUPERVISE_ACTION_QUARANTINE:
                snprintf(buf, len, "quarantined after %u restart%s: %s, retry in %s", a->attempt,
                         a->attempt == 1 ? "" : "s", reason, d);
                break;
        case SUPERVISE_ACTION_UNQUARANTINE:
                snprintf(buf, len, "unquarantined: %s", reason);
                break;
        case SUPERVISE_ACTION_RESET:
                snprintf(buf, len, "backoff reset: %s", reason);
                break;
        case SUPERVISE_ACTION_RECHECK:
                snprintf(buf, len, "recheck: %s", reason);
                break;
        case SUPERVISE_ACTION_WAKEUP:
                if (a->at_us == 0)
                        snprintf(buf, len, "wakeup: none");
                else
                        snprintf(buf, len, "wakeup in %s", d);
                break;
        default:
                snprintf(buf, len, "invalid action");
                break;
        }
        return buf;
}

const char *supervise_action_type_to_string(enum supervise_action_type t) {
        if (t < 0 || t >= _SUPERVISE_ACTION_MAX)
                return NULL;
        return action_names[t];
}

const char *supervise_reason_to_string(enum supervise_reason r) {
        if (r < 0 || r >= _SUPERVISE_REASON_MAX)
                return NULL;
        return reason_names[r];
}

const char *supervise_active_to_string(enum supervise_active a) {
        if (a < 0 || a >= _SUPERVISE_ACTIVE_MAX)
                return NULL;
        return active_names[a];
}

enum supervise_active supervise_active_from_string(const char *s) {
        if (!s)
                return _SUPERVISE_ACTIVE_INVALID;
        for (int i = 0; i < _SUPERVISE_ACTIVE_MAX; i++)
                if (strcmp(s, active_names[i]) == 0)
                        return (enum supervise_active) i;
        return _SUPERVISE_ACTIVE_INVALID;
}

const char *supervise_job_result_to_string(enum supervise_job_result r) {
        if (r < 0 || r >= _SUPERVISE_JOB_RESULT_MAX)
                return NULL;
        return job_names[r];
}

enum supervise_job_result supervise_job_result_from_string(const char *s) {
        if (!s)
                return _SUPERVISE_JOB_RESULT_INVALID;
        for (int i = 0; i < _SUPERVISE_JOB_RESULT_MAX; i++)
                if (strcmp(s, job_names[i]) == 0)
                        return (enum supervise_job_result) i;
        return _SUPERVISE_JOB_RESULT_INVALID;
}
