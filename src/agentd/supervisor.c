/*
 * The supervisor: wires core/health, core/breaker and core/supervise of each
 * service instance to io/probe (checks), io/systemd (unit state, restarts)
 * and io/store (persisted state), and turns their transitions into events.
 *
 * Flow of one instance:
 *   check timer -> probe (or the unit's cached state for `systemd` checks)
 *     -> breaker_record + health_observe -> on a verdict change,
 *        supervise_verdict -> actions: RESTART is sent to systemd at once,
 *        from inside the probe callback (no extra loop iteration);
 *   systemd job_done -> unit_restarted event -> supervise_job_result;
 *   systemd unit_changed -> supervise_unit (a unit systemd restarts itself
 *     is not restarted twice);
 *   wake timer -> supervise_tick / breaker_tick (backoff, quarantine retry,
 *     half-open, end of the fail-safe period).
 * After every such step the instance's persistable state is compared with
 * what was last written and written again when it changed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <jansson.h>
#include <sodium.h>

#include "agentd/supervisor.h"
#include "common/ctlproto.h"
#include "core/breaker.h"
#include "core/health.h"
#include "core/supervise.h"
#include "io/journal.h"
#include "io/probe.h"
#include "io/store.h"
#include "io/systemd.h"

/* Every configured service must be watchable: one D-Bus match rule per unit. */
_Static_assert(CONFIG_MAX_SERVICES <= SYSTEMD_MAX_UNITS, "config allows more services than systemd.c can watch");

#define WHY_MAX 256

struct supervisor;

struct instance {
        struct supervisor *sup;
        struct config_service cfg;      /* deep copy: the agent's config is replaced on reload */

        struct health health;
        struct breaker breaker;
        struct supervise supervise;
        struct probe *probe;            /* NULL for `systemd` checks */

        ev_timer check_timer;           /* every check.interval */
        ev_timer wake_timer;            /* supervise/breaker wakeups, fail-safe end, deferred results */

        /* What systemd told us about the unit (copied: the adapter's view is short-lived). */
        bool unit_loaded;
        bool not_found;
        char load_state[SYSTEMD_STATE_MAX];
        char active_state[SYSTEMD_STATE_MAX];
        char sub_state[SYSTEMD_STATE_MAX];
        char result[SYSTEMD_STATE_MAX];
        uint32_t main_pid;
        uint32_t n_sd_restarts;
        bool restart_configured;        /* Restart= is not "no" */

        /* The restart in flight (ours or an operator's). */
        uint64_t job_cookie;            /* 0: none sent */
        bool job_unknown_pending;       /* a restart could not be sent: report UNKNOWN from the wake timer */
        unsigned job_attempt;
        uint32_t job_old_pid;
        char job_why[WHY_MAX];
        uint64_t manual_uid;            /* set while a manual restart's actions are applied */

        /* Timing of the last unhealthy verdict, for the debug lines bench_heal.sh reads. */
        uint64_t verdict_at_us;
        bool await_active;              /* log when the new main pid is active */

        bool episode_failed;            /* check_failed was reported; report check_recovered */
        uint64_t failsafe_until_us;     /* no automatic restart before this (store recovered) */
        bool failsafe_held;             /* an unhealthy verdict is being held back */

        /* Persisted copies, to write only what changed. */
        struct supervise_snapshot saved_sup;
        struct breaker_snapshot saved_brk;
        bool saved_valid;
};

struct supervisor {
        struct agent *agent;
        struct ev_loop *loop;
        struct systemd *sd;
        enum config_bus bus;
        bool store_failing;             /* a state write failed; logged once until one succeeds */
        char bus_lost_reason[SYSTEMD_ERROR_MAX];
        bool fail_safe;
        uint64_t started_us;

        struct instance **insts;
        size_t n_insts;
};

static void inst_apply(struct instance *in, struct supervise_output *out, uint64_t now);
static void inst_arm_wake(struct instance *in, uint64_t now);

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rng_sodium(void *userdata) {
        uint64_t v;

        (void) userdata;
        randombytes_buf(&v, sizeof(v));
        return v;
}

static const char *check_name(const struct instance *in) {
        return config_check_type_to_string(in->cfg.check.type);
}

static void inst_emit(struct instance *in, enum event_kind kind, const char *fmt, ...) _printf_(3, 4);

/* Every instance event names its service and unit; the subject is the unit. */
static void inst_emit(struct instance *in, enum event_kind kind, const char *fmt, ...) {
        char detail[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        agent_emit_event(in->sup->agent, &(struct event) {
                .kind = kind,
                .subject = in->cfg.unit,
                .detail = detail,
                .service = in->cfg.name,
                .unit = in->cfg.unit,
        });
}

static const char *pid_text(uint32_t pid, char *buf, size_t len) {
        if (pid == 0)
                snprintf(buf, len, "none");
        else
                snprintf(buf, len, "%" PRIu32, pid);
        return buf;
}

/* ---- config copies ----------------------------------------------------- */

static void svc_clear(struct config_service *c) {
        free(c->name);
        free(c->unit);
        free(c->address);
        free(c->check.path);
        free(c->check.expect_body);
        free(c->check.command);
        *c = (struct config_service) { 0 };
}

static int dup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int svc_copy(const struct config_service *src, struct config_service *dst) {
        struct config_service c = *src;

        c.name = c.unit = c.address = NULL;
        c.check.path = c.check.expect_body = c.check.command = NULL;
        if (dup_or_null(src->name, &c.name) < 0 || dup_or_null(src->unit, &c.unit) < 0 ||
            dup_or_null(src->address, &c.address) < 0 || dup_or_null(src->check.path, &c.check.path) < 0 ||
            dup_or_null(src->check.expect_body, &c.check.expect_body) < 0 ||
            dup_or_null(src->check.command, &c.check.command) < 0) {
                svc_clear(&c);
                return -ENOMEM;
        }
        *dst = c;
        return 0;
}

static bool streq0(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* True when the probe itself must be rebuilt (not only its schedule or thresholds). */
static bool probe_changed(const struct config_service *a, const struct config_service *b) {
        const struct config_check *x = &a->check, *y = &b->check;

        return x->type != y->type || !streq0(a->address, b->address) || a->port != b->port ||
               !streq0(x->path, y->path) || !streq0(x->expect_body, y->expect_body) ||
               x->status_min != y->status_min || x->status_max != y->status_max ||
               !streq0(x->command, y->command) || x->timeout_us != y->timeout_us;
}

static struct supervise_config supervise_config_of(const struct config_service *c) {
        return (struct supervise_config) {
                .restart_limit = (unsigned) c->restart.limit,
                .restart_window_us = c->restart.window_us,
                .backoff_us = c->restart.backoff_us,
                .backoff_max_us = c->restart.backoff_max_us,
                .stable_us = 0,
        };
}

static struct breaker_config breaker_config_of(const struct config_service *c) {
        return (struct breaker_config) {
                .failures = (unsigned) c->breaker.failures,
                .open_for_us = c->breaker.open_for_us,
                .half_open_probes = (unsigned) c->breaker.half_open_probes,
        };
}

/* ---- persistence -------------------------------------------------------- */

/*
 * The core works in CLOCK_MONOTONIC, which restarts at boot; the store keeps
 * CLOCK_REALTIME. 0 means "never" in both. A persisted time that lies before
 * this boot maps to 1 (long ago); the core clamps times in the future.
 */
static uint64_t mono_to_real(uint64_t mono, uint64_t now_mono, uint64_t now_real) {
        if (mono == 0)
                return 0;
        if (mono >= now_mono)
                return now_real + (mono - now_mono);
        return now_real > now_mono - mono ? now_real - (now_mono - mono) : 1;
}

static uint64_t real_to_mono(uint64_t real, uint64_t now_mono, uint64_t now_real) {
        if (real == 0)
                return 0;
        if (real >= now_real)
                return now_mono + (real - now_real);
        return now_mono > now_real - real ? now_mono - (now_real - real) : 1;
}

static bool sup_snap_equal(const struct supervise_snapshot *a, const struct supervise_snapshot *b) {
        return a->attempt == b->attempt && a->next_at_us == b->next_at_us && a->quarantined == b->quarantined &&
               a->quarantined_at_us == b->quarantined_at_us && a->last_restart_us == b->last_restart_us &&
               a->n_restarts == b->n_restarts;
}

static bool brk_snap_equal(const struct breaker_snapshot *a, const struct breaker_snapshot *b) {
        return a->state == b->state && a->n_failures == b->n_failures && a->n_probe_ok == b->n_probe_ok &&
               a->open_until_us == b->open_until_us && a->changed_at_us == b->changed_at_us &&
               a->n_opened == b->n_opened;
}

static int put_json(struct instance *in, enum store_table t, json_t *doc, uint64_t now_real) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (!doc)
                return -ENOMEM;
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!text)
                return -ENOMEM;
        r = store_state_put(agent_store(in->sup->agent), t, in->cfg.name, text, now_real);
        /* A broken store would fail every write: say so once, not at every check. */
        if (r < 0 && !in->sup->store_failing)
                log_error("supervisor: cannot save %s state of %s: %s (further failures not logged)",
                          store_table_to_string(t), in->cfg.unit, strerror(-r));
        in->sup->store_failing = r < 0;
        return r;
}

/* Writes whatever changed since the last write. */
static void inst_persist(struct instance *in) {
        uint64_t now_mono = util_now_mono_us(), now_real = util_now_real_us();
        struct supervise_snapshot ss;
        struct breaker_snapshot bs;

        supervise_save(&in->supervise, &ss);
        breaker_save(&in->breaker, &bs);

        if (!in->saved_valid || ss.tat_us != in->saved_sup.tat_us)
                put_json(in, STORE_TABLE_RATELIMITS,
                         json_pack("{s:s, s:i, s:I, s:I}", "unit", in->cfg.unit,
                                   "limit", in->cfg.restart.limit,
                                   "window_us", (json_int_t) in->cfg.restart.window_us,
                                   "tat_us", (json_int_t) mono_to_real(ss.tat_us, now_mono, now_real)),
                         now_real);
        if (!in->saved_valid || !sup_snap_equal(&ss, &in->saved_sup))
                put_json(in, STORE_TABLE_BACKOFF,
                         json_pack("{s:s, s:I, s:I, s:b, s:I, s:I, s:I}", "unit", in->cfg.unit,
                                   "attempt", (json_int_t) ss.attempt,
                                   "next_at_us", (json_int_t) mono_to_real(ss.next_at_us, now_mono, now_real),
                                   "quarantined", ss.quarantined,
                                   "quarantined_at_us",
                                   (json_int_t) mono_to_real(ss.quarantined_at_us, now_mono, now_real),
                                   "last_restart_us",
                                   (json_int_t) mono_to_real(ss.last_restart_us, now_mono, now_real),
                                   "restarts", (json_int_t) ss.n_restarts),
                         now_real);
        if (!in->saved_valid || !brk_snap_equal(&bs, &in->saved_brk))
                put_json(in, STORE_TABLE_BREAKERS,
                         json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "unit", in->cfg.unit,
                                   "state", breaker_state_to_string(bs.state),
                                   "failures", (json_int_t) bs.n_failures,
                                   "probe_ok", (json_int_t) bs.n_probe_ok,
                                   "open_until_us", (json_int_t) mono_to_real(bs.open_until_us, now_mono, now_real),
                                   "changed_at_us", (json_int_t) mono_to_real(bs.changed_at_us, now_mono, now_real),
                                   "opened", (json_int_t) bs.n_opened),
                         now_real);
        in->saved_sup = ss;
        in->saved_brk = bs;
        in->saved_valid = true;
}

/*
 * Reads one persisted row as a JSON object, or NULL when there is none, it is
 * unreadable, or it belongs to another unit (the service was re-pointed).
 */
static json_t *load_row(struct instance *in, enum store_table t) {
        _cleanup_free_ char *text = NULL;
        json_t *doc;
        int r;

        r = store_state_get(agent_store(in->sup->agent), t, in->cfg.name, &text, NULL);
        if (r == -ENOENT)
                return NULL;
        if (r < 0) {
                log_error("supervisor: cannot read %s state of %s: %s", store_table_to_string(t), in->cfg.unit,
                          strerror(-r));
                return NULL;
        }
        doc = json_loads(text, 0, NULL);
        if (!json_is_object(doc)) {
                log_warning("supervisor: ignoring unreadable %s state of %s", store_table_to_string(t),
                            in->cfg.unit);
                json_decref(doc);
                return NULL;
        }
        if (!streq0(json_string_value(json_object_get(doc, "unit")), in->cfg.unit)) {
                json_decref(doc);
                return NULL;
        }
        return doc;
}

/* A non-negative integer field, clamped to max; 0 when absent or malformed. */
static uint64_t row_uint(const json_t *doc, const char *key, uint64_t max) {
        const json_t *v = json_object_get(doc, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return 0;
        return (uint64_t) json_integer_value(v) > max ? max : (uint64_t) json_integer_value(v);
}

/*
 * Restores the breaker, limiter and backoff of an instance from the store,
 * so that a crash loop of agentd itself continues the same limits. Every
 * value is clamped by the core modules' restore functions.
 */
static void inst_restore(struct instance *in) {
        uint64_t now_mono = util_now_mono_us(), now_real = util_now_real_us();
        struct supervise_snapshot ss = { 0 };
        struct breaker_snapshot bs = { 0 };
        json_t *rl, *bo, *br;
        bool any = false;

        rl = load_row(in, STORE_TABLE_RATELIMITS);
        bo = load_row(in, STORE_TABLE_BACKOFF);
        br = load_row(in, STORE_TABLE_BREAKERS);
        if (rl) {
                ss.tat_us = real_to_mono(row_uint(rl, "tat_us", INT64_MAX), now_mono, now_real);
                any = true;
        }
        if (bo) {
                ss.attempt = (unsigned) row_uint(bo, "attempt", SUPERVISE_ATTEMPT_MAX);
                ss.next_at_us = real_to_mono(row_uint(bo, "next_at_us", INT64_MAX), now_mono, now_real);
                ss.quarantined = json_is_true(json_object_get(bo, "quarantined"));
                ss.quarantined_at_us = real_to_mono(row_uint(bo, "quarantined_at_us", INT64_MAX), now_mono, now_real);
                ss.last_restart_us = real_to_mono(row_uint(bo, "last_restart_us", INT64_MAX), now_mono, now_real);
                ss.n_restarts = row_uint(bo, "restarts", INT64_MAX);
                any = true;
        }
        if (any)
                supervise_restore(&in->supervise, &ss, now_mono);
        if (br) {
                enum breaker_state st = breaker_state_from_string(json_string_value(json_object_get(br, "state")));

                bs.state = st;
                bs.n_failures = (unsigned) row_uint(br, "failures", BREAKER_COUNT_MAX);
                bs.n_probe_ok = (unsigned) row_uint(br, "probe_ok", BREAKER_COUNT_MAX);
                bs.open_until_us = real_to_mono(row_uint(br, "open_until_us", INT64_MAX), now_mono, now_real);
                bs.changed_at_us = real_to_mono(row_uint(br, "changed_at_us", INT64_MAX), now_mono, now_real);
                bs.n_opened = row_uint(br, "opened", INT64_MAX);
                if (st == _BREAKER_STATE_INVALID || breaker_restore(&in->breaker, &bs, now_mono) < 0)
                        log_warning("supervisor: ignoring invalid breaker state of %s", in->cfg.unit);
                any = true;
        }
        if (any)
                log_info("supervisor: %s: restored state: breaker %s, %u restarts in window, attempt %u%s",
                         in->cfg.unit, breaker_state_to_string(in->breaker.state),
                         supervise_restarts_in_window(&in->supervise, now_mono), in->supervise.attempt,
                         in->supervise.quarantined ? ", quarantined" : "");
        json_decref(rl);
        json_decref(bo);
        json_decref(br);
        /* What is in the store now is what we hold: no rewrite until something changes. */
        supervise_save(&in->supervise, &in->saved_sup);
        breaker_save(&in->breaker, &in->saved_brk);
        in->saved_valid = any;
}

static void delete_rows(struct supervisor *s, const char *key) {
        static const enum store_table tables[] = { STORE_TABLE_BREAKERS, STORE_TABLE_RATELIMITS, STORE_TABLE_BACKOFF };

        for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
                int r = store_state_delete(agent_store(s->agent), tables[i], key);
                if (r < 0)
                        log_error("supervisor: cannot delete %s state of %s: %s", store_table_to_string(tables[i]),
                                  key, strerror(-r));
        }
}

struct stale_keys {
        const struct agentd_config *config;
        char **keys;
        size_t n;
        size_t cap;
};

static int collect_stale(const char *key, const char *value, uint64_t updated_us, void *userdata) {
        struct stale_keys *sk = userdata;
        (void) value;
        (void) updated_us;

        for (size_t i = 0; i < sk->config->n_services; i++)
                if (strcmp(sk->config->services[i].name, key) == 0)
                        return 0;
        if (sk->n == sk->cap) {
                size_t cap = sk->cap ? sk->cap * 2 : 8;
                char **k = realloc(sk->keys, cap * sizeof(char *));
                if (!k)
                        return -ENOMEM;
                sk->keys = k;
                sk->cap = cap;
        }
        sk->keys[sk->n] = strdup(key);
        if (!sk->keys[sk->n])
                return -ENOMEM;
        sk->n++;
        return 0;
}

/* State of services no longer configured (removed while agentd was down) is dropped. */
static void delete_stale_rows(struct supervisor *s) {
        static const enum store_table tables[] = { STORE_TABLE_BREAKERS, STORE_TABLE_RATELIMITS, STORE_TABLE_BACKOFF };
        struct stale_keys sk = { .config = agent_config(s->agent) };

        for (size_t i = 0; i < ELEMENTSOF(tables); i++)
                (void) store_state_foreach(agent_store(s->agent), tables[i], collect_stale, &sk);
        for (size_t i = 0; i < sk.n; i++) {
                bool dup = false;
                for (size_t j = 0; j < i; j++)
                        dup = dup || strcmp(sk.keys[i], sk.keys[j]) == 0;
                if (!dup) {
                        log_info("supervisor: dropping saved state of service %s (no longer configured)", sk.keys[i]);
                        delete_rows(s, sk.keys[i]);
                }
        }
        for (size_t i = 0; i < sk.n; i++)
                free(sk.keys[i]);
        free(sk.keys);
}

/* ---- executing decisions ----------------------------------------------- */

static void breaker_events(struct instance *in, const struct breaker_transition *t, unsigned n) {
        char d[64];

        for (unsigned i = 0; i < n; i++) {
                const char *tr = breaker_transition_to_string(&t[i]);

                switch (t[i].to) {
                case BREAKER_OPEN:
                        inst_emit(in, EVENT_BREAKER_OPENED, "%s after %u consecutive failure%s; open for %s",
                                  tr, in->breaker.config.failures, in->breaker.config.failures == 1 ? "" : "s",
                                  util_format_duration(in->breaker.config.open_for_us, d, sizeof(d)));
                        break;
                case BREAKER_HALF_OPEN:
                        inst_emit(in, EVENT_BREAKER_HALF_OPEN, "%s: letting %u probe%s through", tr,
                                  in->breaker.config.half_open_probes,
                                  in->breaker.config.half_open_probes == 1 ? "" : "s");
                        break;
                case BREAKER_CLOSED:
                        inst_emit(in, EVENT_BREAKER_CLOSED, "%s after %u successful probe%s", tr,
                                  in->breaker.config.half_open_probes,
                                  in->breaker.config.half_open_probes == 1 ? "" : "s");
                        break;
                default:
                        break;
                }
        }
}

/* Forgets the verdict: the process it was about is gone or going. */
static void inst_recheck(struct instance *in, uint64_t now) {
        health_reset(&in->health, now);
        if (in->probe)
                probe_cancel(in->probe);
}

static enum supervise_job_result job_result_of(enum systemd_job_result r) {
        switch (r) {
        case SYSTEMD_RESULT_DONE:
                return SUPERVISE_JOB_DONE;
        case SYSTEMD_RESULT_CANCELED:
                return SUPERVISE_JOB_CANCELED;
        case SYSTEMD_RESULT_TIMEOUT:
                return SUPERVISE_JOB_TIMEOUT;
        case SYSTEMD_RESULT_FAILED:
        case SYSTEMD_RESULT_OTHER:
                return SUPERVISE_JOB_FAILED;
        case SYSTEMD_RESULT_DEPENDENCY:
                return SUPERVISE_JOB_DEPENDENCY;
        case SYSTEMD_RESULT_SKIPPED:
                return SUPERVISE_JOB_SKIPPED;
        case SYSTEMD_RESULT_REFUSED:
                return SUPERVISE_JOB_INVALID;
        case SYSTEMD_RESULT_UNKNOWN:
        default:
                return SUPERVISE_JOB_UNKNOWN;
        }
}

/*
 * Sends RestartUnit, synchronously from the callback that produced the
 * verdict. The state that counts this restart is written first; it joins the
 * loop iteration's batch, committed before the loop waits again. Committing
 * here instead would put SQLite (and, now and then, a WAL checkpoint) between
 * the verdict and the restart, for the benefit of a crash within the same
 * iteration, which could at worst forget this one restart.
 */
static void inst_restart(struct instance *in, const struct supervise_action *a, uint64_t now) {
        struct supervisor *s = in->sup;
        const char *last = in->health.last_reason[0] ? in->health.last_reason : "no result";
        char pid[32];
        uint64_t cookie = 0;
        int r;

        switch (a->reason) {
        case SUPERVISE_REASON_MANUAL:
                snprintf(in->job_why, sizeof(in->job_why), "operator uid %" PRIu64, in->manual_uid);
                break;
        case SUPERVISE_REASON_QUARANTINE_RETRY:
                snprintf(in->job_why, sizeof(in->job_why), "quarantine retry, %s check: %s", check_name(in), last);
                break;
        default:
                snprintf(in->job_why, sizeof(in->job_why), "unhealthy, %s check: %s", check_name(in), last);
                break;
        }
        /* An operator's restart is not one of the backoff's attempts. */
        in->job_attempt = a->reason == SUPERVISE_REASON_MANUAL ? 0 : a->attempt;
        in->job_old_pid = in->main_pid;
        in->job_cookie = 0;

        inst_persist(in);

        r = s->sd ? systemd_restart_unit(s->sd, in->cfg.unit, &cookie) : -ENOTCONN;
        if (r < 0) {
                inst_emit(in, EVENT_RESTART_SUPPRESSED, "restart %u (%s) not sent: %s", a->attempt, in->job_why,
                          r == -ENOTCONN ? "systemd is not reachable on the bus" : strerror(-r));
                /* Reported from the loop, not from inside this apply: the core is mid-call. */
                in->job_unknown_pending = true;
                ev_timer_stop(s->loop, &in->wake_timer);
                ev_timer_set(&in->wake_timer, 0., 0.);
                ev_timer_start(s->loop, &in->wake_timer);
                return;
        }
        in->job_cookie = cookie;
        if (in->verdict_at_us && a->reason != SUPERVISE_REASON_MANUAL)
                log_debug("supervisor: %s: RestartUnit sent verdict_to_sent_us=%" PRIu64 " attempt %u old pid %s",
                          in->cfg.unit, util_now_mono_us() - in->verdict_at_us, a->attempt,
                          pid_text(in->job_old_pid, pid, sizeof(pid)));
        else
                log_debug("supervisor: %s: RestartUnit sent (%s)", in->cfg.unit, in->job_why);
        in->await_active = true;
        inst_recheck(in, now);
}

static void inst_apply(struct instance *in, struct supervise_output *out, uint64_t now) {
        struct supervise_output copy = *out;
        char buf[256];

        out->n = 0;
        for (size_t i = 0; i < copy.n; i++) {
                const struct supervise_action *a = &copy.actions[i];

                switch (a->type) {
                case SUPERVISE_ACTION_RESTART:
                        inst_restart(in, a, now);
                        break;
                case SUPERVISE_ACTION_SUPPRESS:
                        inst_emit(in, EVENT_RESTART_SUPPRESSED, "%s", supervise_action_format(a, now, buf, sizeof(buf)));
                        break;
                case SUPERVISE_ACTION_QUARANTINE:
                        inst_emit(in, EVENT_INSTANCE_QUARANTINED, "%s; out of rotation",
                                  supervise_action_format(a, now, buf, sizeof(buf)));
                        break;
                case SUPERVISE_ACTION_UNQUARANTINE:
                        log_notice("supervisor: %s: %s; back in rotation", in->cfg.unit,
                                   supervise_action_format(a, now, buf, sizeof(buf)));
                        break;
                case SUPERVISE_ACTION_RESET:
                        log_info("supervisor: %s: %s", in->cfg.unit, supervise_action_format(a, now, buf, sizeof(buf)));
                        break;
                case SUPERVISE_ACTION_RECHECK:
                        log_debug("supervisor: %s: %s", in->cfg.unit, supervise_action_format(a, now, buf, sizeof(buf)));
                        inst_recheck(in, now);
                        break;
                case SUPERVISE_ACTION_WAKEUP:
                default:
                        break;
                }
        }
}

/* One timer for everything time-driven: the earliest of the core's wakeups and the fail-safe end. */
static void inst_arm_wake(struct instance *in, uint64_t now) {
        uint64_t at = supervise_next_wakeup(&in->supervise), b = breaker_next_wakeup(&in->breaker);

        if (in->job_unknown_pending)
                return;  /* already armed for now */
        if (b && (!at || b < at))
                at = b;
        if (in->failsafe_held && (!at || in->failsafe_until_us < at))
                at = in->failsafe_until_us;
        ev_timer_stop(in->sup->loop, &in->wake_timer);
        if (!at)
                return;
        ev_timer_set(&in->wake_timer, at > now ? (double) (at - now) / 1e6 : 0., 0.);
        ev_timer_start(in->sup->loop, &in->wake_timer);
}

static bool failsafe_active(const struct instance *in, uint64_t now) {
        return in->failsafe_until_us && now < in->failsafe_until_us;
}

/* Hands a verdict to the restart logic, unless the fail-safe period holds it back. */
static void inst_verdict(struct instance *in, enum health_state v, uint64_t now) {
        struct supervise_output out = { .n = 0 };
        char ts[UTIL_TS_MAX];

        if (v == HEALTH_UNHEALTHY && failsafe_active(in, now)) {
                if (!in->failsafe_held)
                        inst_emit(in, EVENT_RESTART_SUPPRESSED,
                                  "state database was recovered; fail-safe: no automatic restart until %s",
                                  util_format_ts(util_now_real_us() + (in->failsafe_until_us - now), ts));
                in->failsafe_held = true;
                return;
        }
        in->failsafe_held = false;
        supervise_verdict(&in->supervise, v, now, &out);
        inst_apply(in, &out, now);
}

/* A check result, from a probe or from the unit's state. */
static void inst_result(struct instance *in, bool ok, uint64_t latency_us, const char *reason) {
        struct breaker_transition bt[BREAKER_MAX_TRANSITIONS];
        struct health_transition ht;
        uint64_t now = util_now_mono_us();
        unsigned n;

        n = breaker_record(&in->breaker, ok, now, bt);
        breaker_events(in, bt, n);

        if (health_observe(&in->health, &(struct health_result) { .ok = ok, .latency_us = latency_us,
                                                                   .reason = reason }, now, &ht)) {
                if (ht.to == HEALTH_UNHEALTHY) {
                        in->verdict_at_us = now;
                        in->episode_failed = true;
                        inst_emit(in, EVENT_CHECK_FAILED, "%s check failed %u time%s in a row: %s", check_name(in),
                                  in->health.fall, in->health.fall == 1 ? "" : "s", reason ? reason : "failed");
                } else if (ht.to == HEALTH_HEALTHY && in->episode_failed) {
                        in->episode_failed = false;
                        inst_emit(in, EVENT_CHECK_RECOVERED, "%s check passed %u time%s in a row: %s", check_name(in),
                                  in->health.rise, in->health.rise == 1 ? "" : "s", reason ? reason : "ok");
                } else if (ht.to == HEALTH_HEALTHY) {
                        log_info("supervisor: %s: healthy (%s check: %s)", in->cfg.unit, check_name(in),
                                 reason ? reason : "ok");
                }
                inst_verdict(in, ht.to, now);
        }
        inst_persist(in);
        inst_arm_wake(in, now);
}

/* ---- callbacks ----------------------------------------------------------- */

static void on_probe_done(struct probe *p, const struct probe_result *r, void *userdata) {
        struct instance *in = userdata;
        (void) p;

        inst_result(in, r->ok, r->latency_us, r->reason);
}

/*
 * A `systemd` check is the unit's state as the signals left it: active (or
 * reloading) passes, anything else fails. Sampling the cached state every
 * interval gives rise/fall the same meaning as for the other checks.
 */
static void systemd_check(struct instance *in) {
        char reason[160];

        if (in->not_found) {
                snprintf(reason, sizeof(reason), "unit %s not found", in->cfg.unit);
                inst_result(in, false, 0, reason);
                return;
        }
        if (!in->unit_loaded)
                return;  /* not known yet: no result rather than a wrong one */
        if (strcmp(in->active_state, "active") == 0 || strcmp(in->active_state, "reloading") == 0) {
                snprintf(reason, sizeof(reason), "%s/%s", in->active_state, in->sub_state);
                inst_result(in, true, 0, reason);
                return;
        }
        snprintf(reason, sizeof(reason), "%s/%s%s%s%s", in->active_state, in->sub_state,
                 in->result[0] ? " (result " : "", in->result, in->result[0] ? ")" : "");
        inst_result(in, false, 0, reason);
}

static void on_check_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        struct instance *in = w->data;
        (void) loop;
        (void) revents;

        if (!in->probe) {
                systemd_check(in);
                return;
        }
        /* The timeout is at most the interval, so an attempt still running is the exception. */
        if (!probe_running(in->probe))
                (void) probe_start(in->probe);
}

static void on_wake_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        struct instance *in = w->data;
        struct supervise_output out = { .n = 0 };
        struct breaker_transition bt;
        uint64_t now = util_now_mono_us();
        (void) loop;
        (void) revents;

        if (in->job_unknown_pending) {
                in->job_unknown_pending = false;
                supervise_job_result(&in->supervise, SUPERVISE_JOB_UNKNOWN, now, &out);
                inst_apply(in, &out, now);
        }
        if (breaker_tick(&in->breaker, now, &bt))
                breaker_events(in, &bt, 1);
        if (in->failsafe_held && !failsafe_active(in, now)) {
                log_notice("supervisor: %s: fail-safe period over; automatic restarts resume", in->cfg.unit);
                in->failsafe_until_us = 0;
                in->failsafe_held = false;
                if (in->health.state == HEALTH_UNHEALTHY)
                        inst_verdict(in, HEALTH_UNHEALTHY, now);
        }
        supervise_tick(&in->supervise, now, &out);
        inst_apply(in, &out, now);
        inst_persist(in);
        inst_arm_wake(in, now);
}

static struct instance *find_unit(struct supervisor *s, const char *unit) {
        for (size_t i = 0; i < s->n_insts; i++)
                if (strcmp(s->insts[i]->cfg.unit, unit) == 0)
                        return s->insts[i];
        return NULL;
}

static void copy_state(char dst[static SYSTEMD_STATE_MAX], const char *src) {
        snprintf(dst, SYSTEMD_STATE_MAX, "%s", src ? src : "");
}

/* Passes what systemd says of the unit to the restart logic. */
static void inst_unit_status(struct instance *in, uint64_t now) {
        struct supervise_output out = { .n = 0 };
        struct supervise_unit_status st = {
                .active = SUPERVISE_ACTIVE_UNKNOWN,
                .not_found = in->not_found,
                .main_pid = in->main_pid,
                /* supervise needs Restart=: it decides whether "activating" is systemd's own restart. */
                .restart_configured = in->restart_configured,
        };

        if (in->unit_loaded && !in->not_found) {
                enum supervise_active a = supervise_active_from_string(in->active_state);
                st.active = a == _SUPERVISE_ACTIVE_INVALID ? SUPERVISE_ACTIVE_UNKNOWN : a;
                st.auto_restart = strcmp(in->sub_state, "auto-restart") == 0;
        }
        supervise_unit(&in->supervise, &st, now, &out);
        inst_apply(in, &out, now);
}

static void on_unit_changed(struct systemd *sd, const struct systemd_unit_state *state, void *userdata) {
        struct supervisor *s = userdata;
        struct instance *in = find_unit(s, state->name);
        uint64_t now = util_now_mono_us();
        char p1[32];
        (void) sd;

        if (!in)
                return;
        in->unit_loaded = state->loaded;
        copy_state(in->load_state, state->load_state);
        copy_state(in->active_state, state->active_state);
        copy_state(in->sub_state, state->sub_state);
        copy_state(in->result, state->result);
        in->main_pid = state->main_pid;
        in->n_sd_restarts = state->n_restarts;
        in->restart_configured = state->restart[0] && strcmp(state->restart, "no") != 0;
        if (state->loaded) {
                bool nf = strcmp(state->load_state, "not-found") == 0 || strcmp(state->load_state, "masked") == 0;
                if (in->not_found && !nf)
                        log_notice("supervisor: %s: unit loaded (%s)", in->cfg.unit, state->load_state);
                in->not_found = nf;
        }

        if (in->await_active && strcmp(in->active_state, "active") == 0 && in->main_pid != 0 &&
            in->main_pid != in->job_old_pid) {
                in->await_active = false;
                if (in->verdict_at_us)
                        log_debug("supervisor: %s: new main pid %s active verdict_to_active_us=%" PRIu64,
                                  in->cfg.unit, pid_text(in->main_pid, p1, sizeof(p1)), now - in->verdict_at_us);
        }

        inst_unit_status(in, now);
        inst_persist(in);
        inst_arm_wake(in, now);
}

static void on_unit_error(struct systemd *sd, const char *unit, int error, const char *message, void *userdata) {
        struct supervisor *s = userdata;
        struct instance *in = find_unit(s, unit);
        uint64_t now = util_now_mono_us();
        (void) sd;

        if (!in)
                return;
        if (error == -ENOENT) {
                if (!in->not_found)
                        log_warning("supervisor: %s: %s; it cannot be restarted until it exists",
                                    in->cfg.unit, message ? message : "unit not found");
                in->not_found = true;
                inst_unit_status(in, now);
                inst_persist(in);
                inst_arm_wake(in, now);
                return;
        }
        log_warning("supervisor: %s: %s", in->cfg.unit, message ? message : strerror(-error));
}

static void on_job_done(struct systemd *sd, uint64_t cookie, const char *unit, enum systemd_job_result result,
                        const char *text, void *userdata) {
        struct supervisor *s = userdata;
        struct instance *in = find_unit(s, unit);
        struct supervise_output out = { .n = 0 };
        const struct systemd_unit_state *st = NULL;
        uint64_t now = util_now_mono_us();
        enum supervise_job_result jr = job_result_of(result);
        char p1[32], p2[32];
        uint32_t new_pid;

        if (!in || in->job_cookie != cookie)
                return;
        in->job_cookie = 0;
        /* systemd sends the unit's PropertiesChanged before JobRemoved, so MainPID is current. */
        new_pid = systemd_unit_state(sd, unit, &st) == 0 && st ? st->main_pid : in->main_pid;
        if (jr == SUPERVISE_JOB_DONE)
                inst_emit(in, EVENT_UNIT_RESTARTED, "%s; attempt %u; job done; main pid %s -> %s", in->job_why,
                          in->job_attempt, pid_text(in->job_old_pid, p1, sizeof(p1)),
                          pid_text(new_pid, p2, sizeof(p2)));
        else
                /* systemd's words: "failed", "timeout", ..., "refused" (the call was denied), "unknown". */
                inst_emit(in, EVENT_UNIT_RESTARTED, "%s; attempt %u; job %s (%s); main pid %s -> %s", in->job_why,
                          in->job_attempt, systemd_job_result_to_string(result), text ? text : "",
                          pid_text(in->job_old_pid, p1, sizeof(p1)), pid_text(new_pid, p2, sizeof(p2)));
        if (in->await_active && jr == SUPERVISE_JOB_DONE && st && strcmp(st->active_state, "active") == 0 &&
            new_pid != 0 && new_pid != in->job_old_pid) {
                in->await_active = false;
                if (in->verdict_at_us)
                        log_debug("supervisor: %s: new main pid %s active verdict_to_active_us=%" PRIu64,
                                  in->cfg.unit, pid_text(new_pid, p1, sizeof(p1)), now - in->verdict_at_us);
        } else if (jr != SUPERVISE_JOB_DONE)
                in->await_active = false;

        supervise_job_result(&in->supervise, jr, now, &out);
        inst_apply(in, &out, now);
        inst_persist(in);
        inst_arm_wake(in, now);
}

static void on_bus_ready(struct systemd *sd, bool reconnected, void *userdata) {
        struct supervisor *s = userdata;
        struct systemd_status st;
        (void) sd;

        if (reconnected) {
                systemd_get_status(s->sd, &st);
                agent_emit_event(s->agent, &(struct event) {
                        .kind = EVENT_BUS_RECONNECTED,
                        .subject = s->bus == CONFIG_BUS_USER ? "user bus" : "system bus",
                        .detail = s->bus_lost_reason[0] ? s->bus_lost_reason : "connection restored",
                });
                log_info("supervisor: systemd reachable again; %u units watched, re-reading them", st.watched);
        } else
                log_info("supervisor: connected to the %s bus", s->bus == CONFIG_BUS_USER ? "user" : "system");
}

static void on_bus_lost(struct systemd *sd, const char *reason, void *userdata) {
        struct supervisor *s = userdata;
        (void) sd;

        snprintf(s->bus_lost_reason, sizeof(s->bus_lost_reason), "lost: %s", reason ? reason : "unknown");
        log_warning("supervisor: systemd not reachable on the %s bus: %s; retrying",
                    s->bus == CONFIG_BUS_USER ? "user" : "system", reason ? reason : "unknown");
}

/* ---- instances ------------------------------------------------------------ */

static int inst_make_probe(struct instance *in) {
        const struct config_service *c = &in->cfg;
        struct probe_options o = {
                .address = c->address,
                .port = c->port,
                .path = c->check.path,
                .status_min = c->check.status_min,
                .status_max = c->check.status_max,
                .expect_body = c->check.expect_body,
                .command = c->check.command,
                .timeout_us = c->check.timeout_us,
        };

        switch (c->check.type) {
        case CONFIG_CHECK_SYSTEMD:
                in->probe = NULL;
                return 0;
        case CONFIG_CHECK_TCP:
                o.type = PROBE_TCP;
                break;
        case CONFIG_CHECK_HTTP:
                o.type = PROBE_HTTP;
                break;
        case CONFIG_CHECK_EXEC:
                o.type = PROBE_EXEC;
                break;
        default:
                return -EINVAL;
        }
        return probe_new(in->sup->loop, &o, on_probe_done, in, &in->probe);
}

/*
 * Checks run on a grid: every check with the same interval fires at the
 * multiples of that interval on the monotonic clock. Checks that fire
 * together are started from one loop wakeup and their answers tend to arrive
 * in the same few, which is most of what supervising many instances costs
 * (nearly all of it is the kernel's TCP and scheduler work, not ours).
 */
static void inst_start_checks(struct instance *in) {
        uint64_t iv = in->cfg.check.interval_us, now = util_now_mono_us();
        uint64_t first = iv - now % iv;

        ev_timer_stop(in->sup->loop, &in->check_timer);
        ev_timer_set(&in->check_timer, (double) first / 1e6, (double) iv / 1e6);
        ev_timer_start(in->sup->loop, &in->check_timer);
}

static void inst_free(struct instance *in) {
        if (!in)
                return;
        ev_timer_stop(in->sup->loop, &in->check_timer);
        ev_timer_stop(in->sup->loop, &in->wake_timer);
        probe_free(in->probe);
        if (in->sup->sd)
                (void) systemd_unwatch(in->sup->sd, in->cfg.unit);
        svc_clear(&in->cfg);
        free(in);
}

static int ensure_bus(struct supervisor *s);

static int inst_new(struct supervisor *s, const struct config_service *svc, struct instance **ret) {
        struct supervise_config sc = supervise_config_of(svc);
        struct breaker_config bc = breaker_config_of(svc);
        struct instance *in;
        uint64_t now = util_now_mono_us();
        int r;

        in = calloc(1, sizeof(*in));
        if (!in)
                return -ENOMEM;
        in->sup = s;
        ev_timer_init(&in->check_timer, on_check_timer, 1., 1.);
        ev_timer_init(&in->wake_timer, on_wake_timer, 0., 0.);
        in->check_timer.data = in->wake_timer.data = in;
        r = svc_copy(svc, &in->cfg);
        if (r < 0)
                goto fail;
        r = health_init(&in->health, (unsigned) svc->check.rise, (unsigned) svc->check.fall);
        if (r < 0)
                goto fail;
        r = breaker_init(&in->breaker, &bc);
        if (r < 0)
                goto fail;
        r = supervise_init(&in->supervise, &sc, rng_sodium, NULL);
        if (r < 0)
                goto fail;
        r = inst_make_probe(in);
        if (r < 0) {
                log_error("supervisor: %s: cannot set up the %s check: %s", svc->unit,
                          config_check_type_to_string(svc->check.type), strerror(-r));
                goto fail;
        }
        inst_restore(in);
        if (s->fail_safe) {
                in->failsafe_until_us = s->started_us + svc->restart.window_us;
                if (in->failsafe_until_us <= now)
                        in->failsafe_until_us = 0;
        }

        r = ensure_bus(s);
        if (r < 0)
                goto fail;
        r = systemd_watch(s->sd, in->cfg.unit);
        if (r < 0) {
                /* The checks still run and say what they see; only restarts need the watch. */
                log_error("supervisor: %s: cannot watch the unit: %s", svc->unit,
                          r == -ENOSPC ? "too many units watched" : strerror(-r));
        }
        inst_start_checks(in);
        inst_arm_wake(in, now);
        *ret = in;
        return 0;
fail:
        inst_free(in);
        return r;
}

/* A changed service with the same unit: new thresholds, and a new probe when the check itself changed. */
static int inst_reconfigure(struct instance *in, const struct config_service *svc) {
        struct supervise_config sc = supervise_config_of(svc);
        struct breaker_config bc = breaker_config_of(svc);
        struct config_service copy;
        uint64_t now = util_now_mono_us();
        bool new_probe = probe_changed(&in->cfg, svc);
        bool new_interval = in->cfg.check.interval_us != svc->check.interval_us;
        int r;

        r = svc_copy(svc, &copy);
        if (r < 0)
                return r;
        if (health_set_thresholds(&in->health, (unsigned) svc->check.rise, (unsigned) svc->check.fall) < 0 ||
            breaker_configure(&in->breaker, &bc) < 0 || supervise_configure(&in->supervise, &sc, now) < 0) {
                svc_clear(&copy);
                return -EINVAL;
        }
        svc_clear(&in->cfg);
        in->cfg = copy;
        if (new_probe) {
                probe_free(in->probe);
                in->probe = NULL;
                r = inst_make_probe(in);
                if (r < 0)
                        log_error("supervisor: %s: cannot set up the %s check: %s", in->cfg.unit,
                                  config_check_type_to_string(in->cfg.check.type), strerror(-r));
                /* A different check says nothing about the old verdict. */
                health_reset(&in->health, now);
        }
        if (new_probe || new_interval)
                inst_start_checks(in);
        in->saved_valid = false;  /* limit and window are part of the saved rows */
        inst_persist(in);
        inst_arm_wake(in, now);
        return 0;
}

static int ensure_bus(struct supervisor *s) {
        static const struct systemd_callbacks cb = {
                .bus_ready = on_bus_ready,
                .bus_lost = on_bus_lost,
                .unit_changed = on_unit_changed,
                .unit_error = on_unit_error,
                .job_done = on_job_done,
        };
        int r;

        if (s->sd)
                return 0;
        r = systemd_new(s->loop, s->bus == CONFIG_BUS_USER ? SYSTEMD_BUS_USER : SYSTEMD_BUS_SYSTEM, &cb, s, &s->sd);
        if (r < 0)
                log_error("supervisor: cannot set up the %s bus connection: %s",
                          s->bus == CONFIG_BUS_USER ? "user" : "system", strerror(-r));
        return r;
}

/* ---- public --------------------------------------------------------------- */

int supervisor_new(struct agent *a, bool fail_safe, struct supervisor **ret) {
        const struct agentd_config *c = agent_config(a);
        struct supervisor *s;
        int r;

        if (sodium_init() < 0) {
                log_error("supervisor: libsodium failed to initialise");
                return -EIO;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->agent = a;
        s->loop = agent_loop(a);
        s->bus = c->bus;
        s->fail_safe = fail_safe;
        s->started_us = util_now_mono_us();
        if (c->n_services > 0) {
                s->insts = calloc(c->n_services, sizeof(*s->insts));
                if (!s->insts) {
                        free(s);
                        return -ENOMEM;
                }
        }
        delete_stale_rows(s);
        for (size_t i = 0; i < c->n_services; i++) {
                r = inst_new(s, &c->services[i], &s->insts[s->n_insts]);
                if (r < 0) {
                        log_error("supervisor: cannot supervise %s: %s", c->services[i].unit, strerror(-r));
                        supervisor_free(s);
                        return r;
                }
                s->n_insts++;
        }
        if (fail_safe && s->n_insts > 0)
                log_warning("supervisor: the state database was recovered: automatic restarts are held back for "
                            "each service's restart.window (fail-safe)");
        *ret = s;
        return 0;
}

void supervisor_reload(struct supervisor *s) {
        const struct agentd_config *c;
        struct instance **next;
        size_t n = 0;

        if (!s)
                return;
        c = agent_config(s->agent);
        if (c->bus != s->bus)
                return;  /* refused by config_diff_restart_key before we get here */
        next = calloc(c->n_services ? c->n_services : 1, sizeof(*next));
        if (!next) {
                log_error("supervisor: out of memory applying the new configuration; keeping the old services");
                return;
        }

        /* First let go of what is gone (or re-pointed to another unit), so its unit watch is free. */
        for (size_t i = 0; i < s->n_insts; i++) {
                struct instance *in = s->insts[i];
                const struct config_service *svc = NULL;

                for (size_t j = 0; j < c->n_services; j++)
                        if (strcmp(c->services[j].name, in->cfg.name) == 0)
                                svc = &c->services[j];
                if (svc && strcmp(svc->unit, in->cfg.unit) == 0)
                        continue;
                log_info("supervisor: %s (%s) %s", in->cfg.name, in->cfg.unit,
                         svc ? "moves to another unit" : "is no longer supervised");
                delete_rows(s, in->cfg.name);
                inst_free(in);
                s->insts[i] = NULL;
        }

        for (size_t j = 0; j < c->n_services; j++) {
                const struct config_service *svc = &c->services[j];
                struct instance *in = NULL;

                for (size_t i = 0; i < s->n_insts; i++)
                        if (s->insts[i] && strcmp(s->insts[i]->cfg.name, svc->name) == 0) {
                                in = s->insts[i];
                                s->insts[i] = NULL;
                                break;
                        }
                if (in) {
                        if (inst_reconfigure(in, svc) < 0)
                                log_error("supervisor: %s: cannot apply the new settings; keeping the old ones",
                                          in->cfg.unit);
                        next[n++] = in;
                        continue;
                }
                if (inst_new(s, svc, &in) < 0) {
                        log_error("supervisor: cannot supervise %s", svc->unit);
                        continue;
                }
                log_info("supervisor: now supervising %s (%s)", svc->unit, svc->name);
                next[n++] = in;
        }
        free(s->insts);
        s->insts = next;
        s->n_insts = n;
}

void supervisor_free(struct supervisor *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_insts; i++)
                inst_free(s->insts[i]);
        free(s->insts);
        systemd_free(s->sd);
        free(s);
}

/* ---- verbs ---------------------------------------------------------------- */

static json_t *ts_or_null(uint64_t mono, uint64_t now_mono, uint64_t now_real) {
        char ts[UTIL_TS_MAX];

        if (mono == 0)
                return json_null();
        return json_string(util_format_ts(mono_to_real(mono, now_mono, now_real), ts));
}

static json_t *int_or_null(bool present, uint64_t v) {
        return present ? json_integer((json_int_t) v) : json_null();
}

static json_t *inst_service_json(const struct instance *in, uint64_t now, uint64_t now_real) {
        const struct health *h = &in->health;
        const struct supervise *sv = &in->supervise;
        bool retry = sv->next_at_us > now;

        return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:i, s:i, s:I, s:I, s:I, s:o, s:o, s:b,"
                         " s:o, s:o, s:o, s:o, s:s?, s:s?, s:s?, s:o, s:I}",
                         "service", in->cfg.name,
                         "unit", in->cfg.unit,
                         "check", check_name(in),
                         "health", health_state_to_string(h->state),
                         "quarantined", sv->quarantined,
                         "in_rotation", supervise_in_rotation(sv),
                         "breaker", breaker_state_to_string(in->breaker.state),
                         "restarts_in_window", (int) supervise_restarts_in_window(sv, now),
                         "restart_limit", in->cfg.restart.limit,
                         "restart_window_us", (json_int_t) in->cfg.restart.window_us,
                         "attempt", (json_int_t) sv->attempt,
                         "restarts_total", (json_int_t) sv->n_restarts,
                         "next_retry", retry ? ts_or_null(sv->next_at_us, now, now_real) : json_null(),
                         "next_retry_in_us", int_or_null(retry, sv->next_at_us - now),
                         "restarting", sv->in_flight,
                         "last_check_result", h->has_last ? json_string(h->last_ok ? "ok" : "failed") : json_null(),
                         "last_check_message", h->has_last ? json_string(h->last_reason) : json_null(),
                         "last_check_latency_us", int_or_null(h->has_last, h->last_latency_us),
                         "last_check_at", h->has_last ? ts_or_null(h->last_at_us, now, now_real) : json_null(),
                         "active_state", in->unit_loaded ? in->active_state : (in->not_found ? "not-found" : NULL),
                         "sub_state", in->unit_loaded ? in->sub_state : NULL,
                         "load_state", in->unit_loaded ? in->load_state : NULL,
                         "main_pid", int_or_null(in->main_pid != 0, in->main_pid),
                         "systemd_restarts", (json_int_t) in->n_sd_restarts);
}

json_t *supervisor_verb_services(struct supervisor *s, json_t *args) {
        uint64_t now = util_now_mono_us(), now_real = util_now_real_us();
        json_t *list;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "services takes no arguments");
        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; s && i < s->n_insts; i++) {
                json_t *o = inst_service_json(s->insts[i], now, now_real);
                if (!o || json_array_append_new(list, o) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return ctlproto_ok(json_pack("{s:o}", "services", list));
}

static json_t *inst_breaker_json(const struct instance *in, uint64_t now, uint64_t now_real) {
        const struct breaker *b = &in->breaker;
        bool open = b->state == BREAKER_OPEN, half = b->state == BREAKER_HALF_OPEN;
        /* When it last opened: open since changed_at; half-open came open_for after it. */
        uint64_t opened = open ? b->changed_at_us :
                          half && b->open_until_us > b->config.open_for_us ? b->open_until_us - b->config.open_for_us : 0;

        return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:I}",
                         "service", in->cfg.name,
                         "unit", in->cfg.unit,
                         "state", breaker_state_to_string(b->state),
                         "failures", (json_int_t) b->n_failures,
                         "threshold", (json_int_t) b->config.failures,
                         "open_for_us", (json_int_t) b->config.open_for_us,
                         "half_open_probes", (json_int_t) b->config.half_open_probes,
                         "opened_at", ts_or_null(opened, now, now_real),
                         "opened_at_us", int_or_null(opened != 0, mono_to_real(opened, now, now_real)),
                         "opened_ago_us", int_or_null(opened != 0 && opened <= now, now - opened),
                         "next_half_open", open ? ts_or_null(b->open_until_us, now, now_real) : json_null(),
                         "next_half_open_in_us",
                         int_or_null(open, b->open_until_us > now ? b->open_until_us - now : 0),
                         "probes_ok", (json_int_t) b->n_probe_ok,
                         "times_opened", (json_int_t) b->n_opened);
}

json_t *supervisor_verb_breakers(struct supervisor *s, json_t *args) {
        uint64_t now = util_now_mono_us(), now_real = util_now_real_us();
        json_t *list;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "breakers takes no arguments");
        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; s && i < s->n_insts; i++) {
                json_t *o = inst_breaker_json(s->insts[i], now, now_real);
                if (!o || json_array_append_new(list, o) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return ctlproto_ok(json_pack("{s:o}", "breakers", list));
}

json_t *supervisor_verb_restart(struct supervisor *s, const struct ctl_caller *caller, json_t *args) {
        struct supervise_output out = { .n = 0 };
        struct instance *in = NULL;
        const char *key, *unit;
        uint64_t now = util_now_mono_us();
        json_t *v;
        int r;

        json_object_foreach(args, key, v) {
                if (strcmp(key, "unit") != 0)
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        }
        unit = json_string_value(json_object_get(args, "unit"));
        if (!unit || !*unit)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "restart needs {\"unit\": UNIT}");
        for (size_t i = 0; s && i < s->n_insts; i++)
                if (strcmp(s->insts[i]->cfg.unit, unit) == 0 || strcmp(s->insts[i]->cfg.name, unit) == 0) {
                        in = s->insts[i];
                        break;
                }
        if (!in)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT,
                                      "\"%.*s\" is not a unit or service supervised by this agent (see agentctl services)",
                                      SYSTEMD_UNIT_NAME_MAX, unit);

        r = supervise_manual_restart(&in->supervise, now, &out);
        if (r == -EBUSY)
                return ctlproto_error(CTL_ERR_FAILED, "a restart of %s is already in progress", in->cfg.unit);
        in->manual_uid = caller ? caller->uid : 0;
        in->verdict_at_us = 0;
        inst_apply(in, &out, now);
        inst_persist(in);
        inst_arm_wake(in, now);
        if (in->job_cookie == 0)
                return ctlproto_error(CTL_ERR_FAILED, "cannot restart %s: systemd is not reachable on the bus",
                                      in->cfg.unit);
        return ctlproto_ok(json_pack("{s:s, s:s, s:I, s:o, s:b}",
                                     "unit", in->cfg.unit,
                                     "service", in->cfg.name,
                                     "uid", (json_int_t) in->manual_uid,
                                     "old_main_pid", int_or_null(in->job_old_pid != 0, in->job_old_pid),
                                     "requested", in->job_cookie != 0));
}
