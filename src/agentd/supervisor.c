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
 *
 * Placed instances (a leader's order, supervisor_assign) are instances like
 * the others, built from their service's config with the template's unit and
 * the placed port, plus a placement life cycle: persisted as part of the
 * placed set, then StartUnit followed to its job result (checks are held
 * until it ends), and at the end StopUnit followed the same way, after which
 * the instance is forgotten. Starts and stops that could not be sent (bus
 * down) are retried by one timer. Their rows in the state tables are keyed
 * by unit; a configured instance's by its service name, as before.
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
#include "core/sync.h"
#include "io/journal.h"
#include "io/probe.h"
#include "io/store.h"
#include "io/systemd.h"

/* Every configured service must be watchable: one D-Bus match rule per unit. */
_Static_assert(CONFIG_MAX_SERVICES <= SYSTEMD_MAX_UNITS, "config allows more services than systemd.c can watch");

#define WHY_MAX 256
/* Retry period of placement starts and stops that could not be sent or failed. */
#define PLACE_RETRY_S 2.
/* Key of the placed set (and of the term of the assignment held) in STORE_TABLE_AGENT. */
#define PLACED_KEY "placed"
#define PLACED_TERM_KEY "placed_term"

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

        /* Placement: STATIC instances leave all of this at zero but ever_up. */
        enum placement_origin origin;
        uint64_t placed_at_us;          /* PLACED: CLOCK_REALTIME µs of the order */
        uint64_t placed_term;           /* PLACED: the term of the leader that placed it */
        uint64_t place_cookie;          /* our StartUnit/StopUnit in flight; 0: none */
        bool place_stop_job;            /* ... which is a StopUnit */
        bool need_start;                /* a StartUnit is due (not sent yet) */
        bool start_if_inactive;         /* restored: start it once its state says inactive */
        bool start_failed;              /* the last start job failed */
        bool restored_stopped;          /* restored with its unit not running: start when assigned again */
        bool stopping;                  /* no longer assigned: stopping, then forgotten */
        char stop_why[WHY_MAX];         /* ... because */
        bool ever_up;                   /* an up verdict since it was started: PENDING ends */

        /* What supervisor_report() showed last, to call the report handler on changes only. */
        bool rep_valid;
        bool rep_healthy;
        enum breaker_state rep_breaker;
        enum placement_instance_state rep_state;
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

        struct instance **insts;        /* configured instances, in config order */
        size_t n_insts;

        struct instance **placed;       /* placed instances, sorted by unit */
        size_t n_placed;
        uint64_t assign_term;           /* term of the assignment held (fencing) */
        char **orphans;                 /* restored placed units without a service now: to stop */
        size_t n_orphans;
        ev_timer place_timer;           /* retries placement starts and stops */
        uint64_t skip_hash;             /* the last skipped-assignment message logged */

        ev_prepare report_prepare;      /* calls report_fn once per loop iteration when something changed */
        void (*report_fn)(void *userdata);
        void *report_userdata;
};

static void inst_apply(struct instance *in, struct supervise_output *out, uint64_t now);
static void inst_arm_wake(struct instance *in, uint64_t now);
static void report_changed(struct supervisor *s);
static void placed_persist(struct supervisor *s, bool commit);
static void place_start(struct instance *in);
static void place_kick(struct supervisor *s, bool now);
static void place_job_done(struct instance *in, enum systemd_job_result result, const char *text);

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

static void inst_emit_term(struct instance *in, enum event_kind kind, uint64_t term, const char *fmt, ...)
        _printf_(4, 5);

/* Every instance event names its service and unit; the subject is the unit. */
static void inst_emit_va(struct instance *in, enum event_kind kind, uint64_t term, const char *fmt, va_list ap) {
        char detail[1024];

        vsnprintf(detail, sizeof(detail), fmt, ap);
        agent_emit_event(in->sup->agent, &(struct event) {
                .kind = kind,
                .subject = in->cfg.unit,
                .detail = detail,
                .service = in->cfg.name,
                .unit = in->cfg.unit,
                .term = term,
        });
}

static void inst_emit_term(struct instance *in, enum event_kind kind, uint64_t term, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        inst_emit_va(in, kind, term, fmt, ap);
        va_end(ap);
}

static void inst_emit(struct instance *in, enum event_kind kind, const char *fmt, ...) _printf_(3, 4);
static void inst_emit(struct instance *in, enum event_kind kind, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        inst_emit_va(in, kind, 0, fmt, ap);
        va_end(ap);
}

/*
 * The key of an instance's rows in the state tables: a configured
 * instance's service name (one per service, as it always was), a placed
 * one's unit (a service may have several here).
 */
static const char *inst_key(const struct instance *in) {
        return in->origin == PLACEMENT_PLACED ? in->cfg.unit : in->cfg.name;
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
        free(c->template_unit);
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

        c.name = c.unit = c.address = c.template_unit = NULL;
        c.check.path = c.check.expect_body = c.check.command = NULL;
        if (dup_or_null(src->name, &c.name) < 0 || dup_or_null(src->unit, &c.unit) < 0 ||
            dup_or_null(src->template_unit, &c.template_unit) < 0 ||
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
        r = store_state_put(agent_store(in->sup->agent), t, inst_key(in), text, now_real);
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

        r = store_state_get(agent_store(in->sup->agent), t, inst_key(in), &text, NULL);
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
        const struct supervisor *sup;
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
        for (size_t i = 0; i < sk->sup->n_placed; i++)
                if (strcmp(sk->sup->placed[i]->cfg.unit, key) == 0)
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

/*
 * State of services no longer configured (removed while agentd was down) and
 * of placed instances no longer held is dropped.
 */
static void delete_stale_rows(struct supervisor *s) {
        static const enum store_table tables[] = { STORE_TABLE_BREAKERS, STORE_TABLE_RATELIMITS, STORE_TABLE_BACKOFF };
        struct stale_keys sk = { .sup = s, .config = agent_config(s->agent) };

        for (size_t i = 0; i < ELEMENTSOF(tables); i++)
                (void) store_state_foreach(agent_store(s->agent), tables[i], collect_stale, &sk);
        for (size_t i = 0; i < sk.n; i++) {
                bool dup = false;
                for (size_t j = 0; j < i; j++)
                        dup = dup || strcmp(sk.keys[i], sk.keys[j]) == 0;
                if (!dup) {
                        log_info("supervisor: dropping saved state of %s (no longer configured or placed)", sk.keys[i]);
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

        /* A placed instance being started or stopped on the leader's order is not restarted meanwhile. */
        if (in->stopping || in->need_start || in->place_cookie)
                r = -EALREADY;
        else
                r = s->sd ? systemd_restart_unit(s->sd, in->cfg.unit, &cookie) : -ENOTCONN;
        if (r < 0) {
                inst_emit(in, EVENT_RESTART_SUPPRESSED, "restart %u (%s) not sent: %s", a->attempt, in->job_why,
                          r == -ENOTCONN ? "systemd is not reachable on the bus" :
                          r == -EALREADY ? "the placed instance is being started or stopped" : strerror(-r));
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

static enum placement_instance_state inst_placement_state(const struct instance *in) {
        if (in->stopping)
                return PLACEMENT_STOPPING;
        /*
         * While our StartUnit is due or in flight the unit may not even be
         * loaded yet (a template instance systemd has not seen): that is a
         * start under way, not a failure the leader should re-place.
         */
        if (in->origin == PLACEMENT_PLACED && (in->need_start || (in->place_cookie && !in->place_stop_job)))
                return PLACEMENT_PENDING;
        if (in->start_failed || in->not_found || in->supervise.quarantined)
                return PLACEMENT_FAILED;
        if (in->health.state == HEALTH_HEALTHY)
                return PLACEMENT_HEALTHY;
        return in->ever_up ? PLACEMENT_UNHEALTHY : PLACEMENT_PENDING;
}

/* The table's "healthy": an up verdict, and not on its way out. */
static bool inst_up(const struct instance *in) {
        return in->health.state == HEALTH_HEALTHY && !in->stopping;
}

/* Tells the report handler when what supervisor_report() says of IN changed. */
static void inst_note_change(struct instance *in) {
        bool healthy = inst_up(in);
        enum placement_instance_state st = inst_placement_state(in);

        if (in->rep_valid && in->rep_healthy == healthy && in->rep_breaker == in->breaker.state &&
            in->rep_state == st)
                return;
        in->rep_valid = true;
        in->rep_healthy = healthy;
        in->rep_breaker = in->breaker.state;
        in->rep_state = st;
        report_changed(in->sup);
}

/* Checks wait while a placed instance is being started or stopped: they would only see it half-way. */
static bool inst_checks_held(const struct instance *in) {
        return in->stopping || in->need_start || in->start_if_inactive || in->place_cookie;
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
                if (ht.to == HEALTH_HEALTHY) {
                        in->start_failed = false;
                        if (!in->ever_up) {
                                in->ever_up = true;
                                /* A restored placed instance that was up once is not PENDING again. */
                                if (in->origin == PLACEMENT_PLACED)
                                        placed_persist(in->sup, false);
                        }
                }
                inst_verdict(in, ht.to, now);
        }
        inst_persist(in);
        inst_arm_wake(in, now);
        inst_note_change(in);
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

        if (inst_checks_held(in))
                return;
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
        inst_note_change(in);
}

static struct instance *find_static_unit(struct supervisor *s, const char *unit) {
        for (size_t i = 0; i < s->n_insts; i++)
                if (strcmp(s->insts[i]->cfg.unit, unit) == 0)
                        return s->insts[i];
        return NULL;
}

/* Index of UNIT in s->placed, or where it would go (*ret_found false). */
static size_t placed_index(const struct supervisor *s, const char *unit, bool *ret_found) {
        size_t lo = 0, hi = s->n_placed;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(s->placed[mid]->cfg.unit, unit);

                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

static struct instance *find_placed_unit(struct supervisor *s, const char *unit) {
        bool found;
        size_t i = placed_index(s, unit, &found);

        return found ? s->placed[i] : NULL;
}

static struct instance *find_unit(struct supervisor *s, const char *unit) {
        return find_static_unit(s, unit) ?: find_placed_unit(s, unit);
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

        /*
         * A restored placed instance whose unit is not running is NOT started
         * here: while this agent was away the leader may have replaced it
         * elsewhere. It is reported as it is (failed), and started again only
         * if the current leader's assignment still lists it.
         */
        if (in->start_if_inactive && in->unit_loaded) {
                in->start_if_inactive = false;
                if (!in->not_found && (strcmp(in->active_state, "inactive") == 0 ||
                                       strcmp(in->active_state, "failed") == 0)) {
                        log_info("supervisor: %s: placed instance restored, unit %s: left stopped until the "
                                 "leader's assignment lists it", in->cfg.unit, in->active_state);
                        in->start_failed = true;
                        in->restored_stopped = true;
                } else
                        log_info("supervisor: %s: placed instance restored, unit %s/%s", in->cfg.unit,
                                 in->not_found ? "not-found" : in->active_state, in->sub_state);
        }

        inst_unit_status(in, now);
        inst_persist(in);
        inst_arm_wake(in, now);
        inst_note_change(in);
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
                in->start_if_inactive = false;
                inst_unit_status(in, now);
                inst_persist(in);
                inst_arm_wake(in, now);
                inst_note_change(in);
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

        if (in && in->place_cookie && in->place_cookie == cookie) {
                place_job_done(in, result, text);
                return;
        }
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
        inst_note_change(in);
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
        /* Placement starts and stops that waited for the bus go out now. */
        place_kick(s, true);
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

static int inst_new(struct supervisor *s, const struct config_service *svc, enum placement_origin origin,
                    struct instance **ret) {
        struct supervise_config sc = supervise_config_of(svc);
        struct breaker_config bc = breaker_config_of(svc);
        struct instance *in;
        uint64_t now = util_now_mono_us();
        int r;

        in = calloc(1, sizeof(*in));
        if (!in)
                return -ENOMEM;
        in->sup = s;
        in->origin = origin;
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

/* ---- placed instances ------------------------------------------------------ */

static void report_changed(struct supervisor *s) {
        if (s->report_fn && !ev_is_active(&s->report_prepare))
                ev_prepare_start(s->loop, &s->report_prepare);
}

/* Runs before the loop waits again: every change of this iteration makes one call. */
static void on_report_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
        struct supervisor *s = w->data;
        (void) revents;

        ev_prepare_stop(loop, w);
        if (s->report_fn)
                s->report_fn(s->report_userdata);
}

/* "web@.service" and 8081 give "web@8081.service"; false when it does not fit. */
static bool placed_unit_name(const char *template_unit, uint16_t port, char buf[static SYNC_UNIT_MAX]) {
        const char *at = strchr(template_unit, '@');
        int n;

        if (!at || at[1] != '.')
                return false;
        n = snprintf(buf, SYNC_UNIT_MAX, "%.*s%u%s", (int) (at - template_unit + 1), template_unit, port, at + 1);
        return n > 0 && n < SYNC_UNIT_MAX;
}

static const struct config_service *config_find_service(const struct agentd_config *c, const char *name) {
        for (size_t i = 0; i < c->n_services; i++)
                if (strcmp(c->services[i].name, name) == 0)
                        return &c->services[i];
        return NULL;
}

/* Whether UNIT on PORT may be a placed instance of SVC as configured now: NULL, or why not. */
static const char *placed_mismatch(const struct config_service *svc, const char *unit, uint16_t port) {
        char want[SYNC_UNIT_MAX];

        if (!svc)
                return "the service is not configured here";
        if (!svc->template_unit)
                return "the service has no template here (replicas = 0)";
        if (port == 0)
                return "no port";
        if (!placed_unit_name(svc->template_unit, port, want) || strcmp(want, unit) != 0)
                return "the unit is not the service's template with the port";
        return NULL;
}

/* Whether a configured instance of the config in force runs UNIT. */
static bool config_has_static_unit(const struct agentd_config *c, const char *unit) {
        for (size_t i = 0; i < c->n_services; i++)
                if (config_service_has_static(&c->services[i]) && strcmp(c->services[i].unit, unit) == 0)
                        return true;
        return false;
}

/* The service's settings with the placed unit and port (borrowing both): what the instance runs with. */
static struct config_service placed_config(const struct config_service *svc, char *unit, uint16_t port) {
        struct config_service c = *svc;

        c.unit = unit;
        c.port = port;
        return c;
}

/*
 * Writes the placed set (and the term of the assignment held) to the agent
 * table, so that a restarted agent supervises the units it started and does
 * not act on an older term. COMMIT: on disk before returning, for a start
 * that follows.
 */
static void placed_persist(struct supervisor *s, bool commit) {
        struct store *st = agent_store(s->agent);
        _cleanup_free_ char *text = NULL;
        char term[48];
        json_t *list = json_array();
        uint64_t now_real = util_now_real_us();
        int r = -ENOMEM;

        for (size_t i = 0; list && i < s->n_placed; i++) {
                const struct instance *in = s->placed[i];

                if (json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:I, s:I, s:b, s:b}",
                                                          "service", in->cfg.name,
                                                          "unit", in->cfg.unit,
                                                          "port", (int) in->cfg.port,
                                                          "placed_at_us", (json_int_t) in->placed_at_us,
                                                          "term", (json_int_t) in->placed_term,
                                                          "ready", in->ever_up,
                                                          "stopping", in->stopping)) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (list)
                text = json_dumps(list, JSON_COMPACT);
        json_decref(list);
        snprintf(term, sizeof(term), "{\"term\":%" PRIu64 "}", s->assign_term);
        if (text) {
                r = store_state_put(st, STORE_TABLE_AGENT, PLACED_KEY, text, now_real);
                if (r >= 0)
                        r = store_state_put(st, STORE_TABLE_AGENT, PLACED_TERM_KEY, term, now_real);
                if (r >= 0 && commit)
                        r = store_commit(st);
        }
        if (r < 0)
                log_error("supervisor: cannot save the placed instances: %s", strerror(-r));
}

/* Arms the retry of placement starts and stops (NOW: at once, e.g. the bus is back). */
static void place_kick(struct supervisor *s, bool now) {
        if (now) {
                ev_timer_stop(s->loop, &s->place_timer);
                ev_timer_set(&s->place_timer, 0., PLACE_RETRY_S);
                ev_timer_start(s->loop, &s->place_timer);
        } else if (!ev_is_active(&s->place_timer)) {
                ev_timer_set(&s->place_timer, PLACE_RETRY_S, PLACE_RETRY_S);
                ev_timer_start(s->loop, &s->place_timer);
        }
}

/* Sends StartUnit for a placed instance (need_start is set); job_done follows. */
static void place_start(struct instance *in) {
        struct supervisor *s = in->sup;
        uint64_t cookie = 0;
        int r;

        r = s->sd ? systemd_start_unit(s->sd, in->cfg.unit, &cookie) : -ENOTCONN;
        if (r == -ENOTCONN || r == -EBUSY) {
                in->need_start = true;
                place_kick(s, false);
                return;
        }
        in->need_start = false;
        if (r < 0) {
                in->start_failed = true;
                inst_emit_term(in, EVENT_INSTANCE_PLACED, in->placed_term,
                               "start of %s failed: %s (placed by term %" PRIu64 ")", in->cfg.unit, strerror(-r),
                               in->placed_term);
                inst_note_change(in);
                return;
        }
        in->place_cookie = cookie;
        in->place_stop_job = false;
        if (in->probe)
                probe_cancel(in->probe);
        log_info("supervisor: %s: StartUnit sent (placed by term %" PRIu64 ")", in->cfg.unit, in->placed_term);
}

/*
 * Stops a placed instance no longer to run here (WHY, for the event; NULL
 * when retrying); it is forgotten when the stop job ends.
 */
static void place_stop(struct instance *in, const char *why) {
        struct supervisor *s = in->sup;
        uint64_t cookie = 0;
        int r;

        if (!in->stopping) {
                snprintf(in->stop_why, sizeof(in->stop_why), "%s", why ? why : "no longer assigned here");
                in->stopping = true;
                in->need_start = false;
                in->start_if_inactive = false;
                if (in->probe)
                        probe_cancel(in->probe);
        }
        r = s->sd ? systemd_stop_unit(s->sd, in->cfg.unit, &cookie) : -ENOTCONN;
        if (r < 0) {
                if (r != -ENOTCONN && r != -EBUSY)
                        log_warning("supervisor: %s: cannot send StopUnit: %s; retrying", in->cfg.unit, strerror(-r));
                in->place_cookie = 0;
                place_kick(s, false);
                return;
        }
        in->place_cookie = cookie;
        in->place_stop_job = true;
        log_info("supervisor: %s: StopUnit sent (%s)", in->cfg.unit, in->stop_why);
}

/* Forgets a placed instance: checks, watch, saved rows; the placed set is saved without it. */
static void placed_drop(struct supervisor *s, struct instance *in) {
        bool found;
        size_t i = placed_index(s, in->cfg.unit, &found);

        if (!found || s->placed[i] != in)
                return;
        memmove(&s->placed[i], &s->placed[i + 1], (s->n_placed - i - 1) * sizeof(*s->placed));
        s->n_placed--;
        delete_rows(s, in->cfg.unit);
        inst_free(in);
        placed_persist(s, false);
        report_changed(s);
}

static void place_job_done(struct instance *in, enum systemd_job_result result, const char *text) {
        struct supervisor *s = in->sup;
        const struct systemd_unit_state *st = NULL;

        in->place_cookie = 0;
        if (in->place_stop_job) {
                bool down = result == SYSTEMD_RESULT_DONE || in->not_found ||
                            (systemd_unit_state(s->sd, in->cfg.unit, &st) == 0 && st && st->loaded &&
                             (strcmp(st->active_state, "inactive") == 0 || strcmp(st->active_state, "failed") == 0));

                if (down) {
                        inst_emit_term(in, EVENT_INSTANCE_STOPPED, s->assign_term,
                                       "stopped %s (placed by term %" PRIu64 "; %s)", in->cfg.unit,
                                       in->placed_term, in->stop_why);
                        placed_drop(s, in);
                        return;
                }
                log_warning("supervisor: %s: stop job %s (%s); retrying", in->cfg.unit,
                            systemd_job_result_to_string(result), text ? text : "");
                place_kick(s, false);
                return;
        }

        if (result == SYSTEMD_RESULT_DONE) {
                in->start_failed = false;
                /* The verdict is about the process just started. */
                health_reset(&in->health, util_now_mono_us());
                inst_emit_term(in, EVENT_INSTANCE_PLACED, in->placed_term, "started %s (placed by term %" PRIu64 ")",
                               in->cfg.unit, in->placed_term);
        } else if (result == SYSTEMD_RESULT_UNKNOWN) {
                /* The bus went away: the job may or may not have run, and starting again is harmless. */
                log_warning("supervisor: %s: outcome of StartUnit unknown (%s); sending it again", in->cfg.unit,
                            text ? text : "");
                in->need_start = true;
                place_kick(s, false);
        } else {
                in->start_failed = true;
                inst_emit_term(in, EVENT_INSTANCE_PLACED, in->placed_term,
                               "start of %s failed: job %s (%s) (placed by term %" PRIu64 ")", in->cfg.unit,
                               systemd_job_result_to_string(result), text ? text : "", in->placed_term);
        }
        inst_note_change(in);
}

/* Retries what could not be sent: stops of left-over units, starts and stops of placed instances. */
static void on_place_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        struct supervisor *s = w->data;
        bool pending = false;
        (void) revents;

        if (s->n_orphans > 0 && ensure_bus(s) == 0) {
                size_t k = 0;

                for (size_t i = 0; i < s->n_orphans; i++) {
                        uint64_t cookie = 0;
                        int r = systemd_stop_unit(s->sd, s->orphans[i], &cookie);

                        if (r == -ENOTCONN || r == -EBUSY) {
                                s->orphans[k++] = s->orphans[i];
                                continue;
                        }
                        if (r < 0)
                                log_warning("supervisor: %s: cannot send StopUnit: %s", s->orphans[i], strerror(-r));
                        else
                                log_notice("supervisor: %s: StopUnit sent (a placed instance this host no longer "
                                           "runs)", s->orphans[i]);
                        free(s->orphans[i]);
                }
                s->n_orphans = k;
        }
        for (size_t i = 0; i < s->n_placed; i++) {
                struct instance *in = s->placed[i];

                if (in->place_cookie)
                        continue;
                if (in->stopping)
                        place_stop(in, NULL);
                else if (in->need_start)
                        place_start(in);
        }
        for (size_t i = 0; i < s->n_placed; i++)
                pending = pending || (!s->placed[i]->place_cookie && (s->placed[i]->stopping || s->placed[i]->need_start));
        if (!pending && s->n_orphans == 0)
                ev_timer_stop(loop, w);
}

/* Creates the placed instance UNIT of SVC (not yet started) and files it in s->placed. */
static int placed_create(struct supervisor *s, const struct config_service *svc, const char *unit, uint16_t port,
                         uint64_t placed_at_us, uint64_t term, struct instance **ret) {
        char name[SYNC_UNIT_MAX];
        struct config_service c;
        struct instance *in = NULL, **a;
        bool found;
        size_t i;
        int r;

        snprintf(name, sizeof(name), "%s", unit);
        c = placed_config(svc, name, port);
        a = realloc(s->placed, (s->n_placed + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        s->placed = a;
        r = inst_new(s, &c, PLACEMENT_PLACED, &in);
        if (r < 0)
                return r;
        in->placed_at_us = placed_at_us;
        in->placed_term = term;
        i = placed_index(s, in->cfg.unit, &found);
        memmove(&s->placed[i + 1], &s->placed[i], (s->n_placed - i) * sizeof(*a));
        s->placed[i] = in;
        s->n_placed++;
        *ret = in;
        return 0;
}

static void orphan_add(struct supervisor *s, const char *unit) {
        char **a, *u;

        if (s->n_orphans >= SYNC_ASSIGNED_MAX)
                return;
        a = realloc(s->orphans, (s->n_orphans + 1) * sizeof(*a));
        if (!a)
                return;
        s->orphans = a;
        u = strdup(unit);
        if (u)
                s->orphans[s->n_orphans++] = u;
}

/*
 * The placed set of the previous run: each instance is supervised again
 * (its unit most likely still runs: it is started only if systemd says it
 * is inactive), a stop in progress is finished, and units whose service
 * this host no longer runs with a template are stopped.
 */
static void placed_restore(struct supervisor *s) {
        const struct agentd_config *c = agent_config(s->agent);
        _cleanup_free_ char *text = NULL, *term_text = NULL;
        bool changed = false, kick = false;
        json_t *doc, *e;
        size_t i;
        int r;

        if (store_state_get(agent_store(s->agent), STORE_TABLE_AGENT, PLACED_TERM_KEY, &term_text, NULL) == 0) {
                json_t *t = json_loads(term_text, 0, NULL);

                s->assign_term = row_uint(t, "term", INT64_MAX);
                json_decref(t);
        }
        r = store_state_get(agent_store(s->agent), STORE_TABLE_AGENT, PLACED_KEY, &text, NULL);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_error("supervisor: cannot read the placed instances: %s", strerror(-r));
                return;
        }
        doc = json_loads(text, 0, NULL);
        if (!json_is_array(doc)) {
                log_warning("supervisor: ignoring the unreadable saved set of placed instances");
                json_decref(doc);
                return;
        }
        json_array_foreach(doc, i, e) {
                const char *svc_name = json_string_value(json_object_get(e, "service"));
                const char *unit = json_string_value(json_object_get(e, "unit"));
                uint64_t port = row_uint(e, "port", 65535);
                const struct config_service *svc;
                struct instance *in;
                const char *why;

                if (!svc_name || !unit || strlen(unit) >= SYNC_UNIT_MAX || !systemd_unit_name_valid(unit) ||
                    port == 0 || i >= SYNC_ASSIGNED_MAX) {
                        log_warning("supervisor: ignoring a malformed saved placed instance");
                        changed = true;
                        continue;
                }
                if (find_static_unit(s, unit) || find_placed_unit(s, unit)) {
                        log_notice("supervisor: %s: no longer a placed instance (a configured instance now)", unit);
                        changed = true;
                        continue;
                }
                svc = config_find_service(c, svc_name);
                why = placed_mismatch(svc, unit, (uint16_t) port);
                if (why || s->n_insts + s->n_placed >= SYSTEMD_MAX_UNITS) {
                        log_notice("supervisor: %s: placed instance of %s left from the last run: %s; stopping it",
                                   unit, svc_name, why ? why : "too many units watched");
                        orphan_add(s, unit);
                        changed = kick = true;
                        continue;
                }
                r = placed_create(s, svc, unit, (uint16_t) port, row_uint(e, "placed_at_us", INT64_MAX),
                                  row_uint(e, "term", INT64_MAX), &in);
                if (r < 0) {
                        log_error("supervisor: %s: cannot supervise the placed instance: %s", unit, strerror(-r));
                        changed = true;
                        continue;
                }
                in->ever_up = json_is_true(json_object_get(e, "ready"));
                if (json_is_true(json_object_get(e, "stopping"))) {
                        in->stopping = true;
                        snprintf(in->stop_why, sizeof(in->stop_why), "being stopped when agentd last ran");
                        kick = true;
                } else
                        in->start_if_inactive = true;
                log_info("supervisor: %s: placed instance of %s restored (placed by term %" PRIu64 "%s)", unit,
                         svc_name, in->placed_term, in->stopping ? ", being stopped" : "");
        }
        json_decref(doc);
        if (changed)
                placed_persist(s, false);
        if (kick)
                place_kick(s, false);
}

/*
 * Placed instances follow a reload: those whose service is gone, lost its
 * template or now names another template are stopped; one that became a
 * configured instance is handed over (forgotten here, not stopped); the
 * others take the new settings of their service.
 */
static void placed_reload(struct supervisor *s) {
        const struct agentd_config *c = agent_config(s->agent);
        bool changed = false;

        for (size_t i = s->n_placed; i-- > 0;) {
                struct instance *in = s->placed[i];
                const struct config_service *svc = config_find_service(c, in->cfg.name);
                const char *why = placed_mismatch(svc, in->cfg.unit, in->cfg.port);
                struct config_service tmp;

                if (config_has_static_unit(c, in->cfg.unit)) {
                        log_notice("supervisor: %s is now a configured instance; no longer a placed one", in->cfg.unit);
                        placed_drop(s, in);
                        continue;
                }
                if (why) {
                        if (!in->stopping) {
                                log_notice("supervisor: %s: stopping the placed instance: %s", in->cfg.unit, why);
                                place_stop(in, why);
                                changed = true;
                        }
                        continue;
                }
                tmp = placed_config(svc, in->cfg.unit, in->cfg.port);
                if (inst_reconfigure(in, &tmp) < 0)
                        log_error("supervisor: %s: cannot apply the new settings; keeping the old ones", in->cfg.unit);
        }
        if (changed)
                placed_persist(s, false);
}

static uint64_t text_hash(const char *t) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *t; t++)
                h = (h ^ (unsigned char) *t) * UINT64_C(1099511628211);
        return h;
}

/* One line for the entries of an assignment that were skipped, unless the same was said last time. */
static void log_skipped(struct supervisor *s, uint64_t term, size_t n_skipped, size_t n, const char *first) {
        char msg[512];
        uint64_t h;

        if (n_skipped == 0) {
                s->skip_hash = 0;
                return;
        }
        snprintf(msg, sizeof(msg), "skipped %zu of %zu placed instance%s (%s)", n_skipped, n, n == 1 ? "" : "s",
                 first);
        h = text_hash(msg);
        if (h == s->skip_hash)
                return;
        s->skip_hash = h;
        log_warning("supervisor: assignment of term %" PRIu64 ": %s", term, msg);
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
        ev_timer_init(&s->place_timer, on_place_timer, 0., 0.);
        s->place_timer.data = s;
        ev_prepare_init(&s->report_prepare, on_report_prepare);
        s->report_prepare.data = s;
        if (c->n_services > 0) {
                s->insts = calloc(c->n_services, sizeof(*s->insts));
                if (!s->insts) {
                        free(s);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < c->n_services; i++) {
                if (!config_service_has_static(&c->services[i]))
                        continue;  /* a bare template: only placed instances of it run here */
                r = inst_new(s, &c->services[i], PLACEMENT_STATIC, &s->insts[s->n_insts]);
                if (r < 0) {
                        log_error("supervisor: cannot supervise %s: %s", c->services[i].unit, strerror(-r));
                        supervisor_free(s);
                        return r;
                }
                s->n_insts++;
        }
        placed_restore(s);
        delete_stale_rows(s);
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
        /* First, so that a unit handed over to the configuration is no longer watched as a placed one. */
        placed_reload(s);

        /* First let go of what is gone (or re-pointed to another unit), so its unit watch is free. */
        for (size_t i = 0; i < s->n_insts; i++) {
                struct instance *in = s->insts[i];
                const struct config_service *svc = NULL;

                for (size_t j = 0; j < c->n_services; j++)
                        if (strcmp(c->services[j].name, in->cfg.name) == 0)
                                svc = &c->services[j];
                if (svc && strcmp(svc->unit, in->cfg.unit) == 0 && config_service_has_static(svc))
                        continue;
                log_info("supervisor: %s (%s) %s", in->cfg.name, in->cfg.unit,
                         !svc ? "is no longer supervised" :
                         !config_service_has_static(svc) ? "is no longer a configured instance (template only)" :
                         "moves to another unit");
                delete_rows(s, in->cfg.name);
                inst_free(in);
                s->insts[i] = NULL;
        }

        for (size_t j = 0; j < c->n_services; j++) {
                const struct config_service *svc = &c->services[j];
                struct instance *in = NULL;

                if (!config_service_has_static(svc))
                        continue;
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
                if (inst_new(s, svc, PLACEMENT_STATIC, &in) < 0) {
                        log_error("supervisor: cannot supervise %s", svc->unit);
                        continue;
                }
                log_info("supervisor: now supervising %s (%s)", svc->unit, svc->name);
                next[n++] = in;
        }
        free(s->insts);
        s->insts = next;
        s->n_insts = n;
        /* Addresses, weights and algorithms may have changed. */
        report_changed(s);
}

void supervisor_free(struct supervisor *s) {
        if (!s)
                return;
        ev_timer_stop(s->loop, &s->place_timer);
        ev_prepare_stop(s->loop, &s->report_prepare);
        for (size_t i = 0; i < s->n_insts; i++)
                inst_free(s->insts[i]);
        free(s->insts);
        /* Placed units keep running: the next start restores them from the placed set. */
        for (size_t i = 0; i < s->n_placed; i++)
                inst_free(s->placed[i]);
        free(s->placed);
        for (size_t i = 0; i < s->n_orphans; i++)
                free(s->orphans[i]);
        free(s->orphans);
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
        bool retry = sv->next_at_us > now, placed = in->origin == PLACEMENT_PLACED;
        char ts[UTIL_TS_MAX];
        json_t *o;

        o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:i, s:i, s:I, s:I, s:I, s:o, s:o, s:b,"
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
        /* Where it came from and what the leader is told about it (see supervisor_report). */
        if (o && json_object_update_new(o, json_pack("{s:s, s:s, s:i, s:s, s:o, s:o, s:o}",
                                                     "origin", placement_origin_to_string(in->origin),
                                                     "placement", placement_instance_state_to_string(
                                                             inst_placement_state(in)),
                                                     "port", (int) in->cfg.port,
                                                     "address", in->cfg.address,
                                                     "placed_at", placed ? json_string(util_format_ts(
                                                             in->placed_at_us, ts)) : json_null(),
                                                     "placed_at_us", int_or_null(placed, in->placed_at_us),
                                                     "placed_term", int_or_null(placed, in->placed_term))) < 0) {
                json_decref(o);
                o = NULL;
        }
        return o;
}

/* Configured instances in config order, then placed ones by unit. */
static struct instance *inst_at(const struct supervisor *s, size_t i) {
        return i < s->n_insts ? s->insts[i] : s->placed[i - s->n_insts];
}

static size_t inst_count(const struct supervisor *s) {
        return s ? s->n_insts + s->n_placed : 0;
}

json_t *supervisor_verb_services(struct supervisor *s, json_t *args) {
        uint64_t now = util_now_mono_us(), now_real = util_now_real_us();
        json_t *list;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "services takes no arguments");
        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < inst_count(s); i++) {
                json_t *o = inst_service_json(inst_at(s, i), now, now_real);
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
        for (size_t i = 0; i < inst_count(s); i++) {
                json_t *o = inst_breaker_json(inst_at(s, i), now, now_real);
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
        for (size_t i = 0; i < inst_count(s); i++)
                if (strcmp(inst_at(s, i)->cfg.unit, unit) == 0 || strcmp(inst_at(s, i)->cfg.name, unit) == 0) {
                        in = inst_at(s, i);
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
        inst_note_change(in);
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

/* ---- placement ------------------------------------------------------------- */

int supervisor_assign(struct supervisor *s, const struct sync_assigned *assigned, size_t n, uint64_t term) {
        const struct agentd_config *c;
        const struct sync_assigned **valid = NULL;
        struct instance **started = NULL;
        bool *listed = NULL, persist;
        size_t n_valid = 0, n_started = 0, n_skipped = 0, n_watched;
        char first[SYNC_UNIT_MAX + 128] = "";
        int changes = 0;

        if (!s || (n > 0 && !assigned) || term == 0)
                return -EINVAL;
        if (term < s->assign_term)
                return -ESTALE;  /* fencing: an older leader's word */
        c = agent_config(s->agent);
        persist = term != s->assign_term;
        s->assign_term = term;

        valid = calloc(n + 1, sizeof(*valid));
        started = calloc(n + 1, sizeof(*started));
        listed = calloc(s->n_placed + 1, sizeof(*listed));
        if (!valid || !started || !listed) {
                free(valid);
                free(started);
                free(listed);
                return -ENOMEM;
        }

        /* What of the list this host can run. */
        for (size_t i = 0; i < n; i++) {
                const struct sync_assigned *a = &assigned[i];
                const char *why = NULL;

                if (i >= SYNC_ASSIGNED_MAX)
                        why = "beyond the limit of placed instances in one assignment";
                else if (!memchr(a->service, '\0', sizeof(a->service)) || !memchr(a->unit, '\0', sizeof(a->unit)))
                        why = "malformed";
                else
                        why = placed_mismatch(config_find_service(c, a->service), a->unit, a->port);
                if (!why && find_static_unit(s, a->unit))
                        why = "the unit is a configured instance";
                for (size_t j = 0; !why && j < n_valid; j++)
                        if (strcmp(valid[j]->unit, a->unit) == 0)
                                why = "listed twice";
                if (why) {
                        /* The unit is printed bounded: a malformed one may lack its NUL. */
                        if (n_skipped++ == 0)
                                snprintf(first, sizeof(first), "%.*s: %s", SYNC_UNIT_MAX - 1, a->unit, why);
                        continue;
                }
                valid[n_valid++] = a;
        }

        /* Placed instances no longer listed are stopped; listed ones being stopped start again. */
        for (size_t j = 0; j < n_valid; j++) {
                bool found;
                size_t k = placed_index(s, valid[j]->unit, &found);

                if (found)
                        listed[k] = true;
        }
        for (size_t k = 0; k < s->n_placed; k++) {
                struct instance *in = s->placed[k];

                if (!listed[k] && !in->stopping) {
                        char why[64];

                        snprintf(why, sizeof(why), "not in the assignment of term %" PRIu64, term);
                        place_stop(in, why);
                        changes++;
                        persist = true;
                } else if (listed[k] && in->restored_stopped && !in->place_cookie) {
                        /* The leader still wants what we had before our restart: run it again. */
                        in->restored_stopped = false;
                        in->start_failed = false;
                        in->placed_term = term;
                        in->need_start = true;
                        started[n_started++] = in;
                        changes++;
                        persist = true;
                } else if (listed[k] && in->stopping) {
                        in->stopping = false;
                        in->ever_up = false;
                        in->placed_term = term;
                        in->need_start = true;
                        started[n_started++] = in;
                        changes++;
                        persist = true;
                }
        }

        /* New ones: created now, started once the set that names them is on disk. */
        n_watched = s->n_insts + s->n_placed;
        for (size_t j = 0; j < n_valid; j++) {
                const struct sync_assigned *a = valid[j];
                struct instance *in;
                int r;

                if (find_placed_unit(s, a->unit))
                        continue;
                if (n_watched >= SYSTEMD_MAX_UNITS) {
                        if (n_skipped++ == 0)
                                snprintf(first, sizeof(first), "%s: too many units watched", a->unit);
                        continue;
                }
                r = placed_create(s, config_find_service(c, a->service), a->unit, a->port,
                                  a->placed_at_us ? a->placed_at_us : util_now_real_us(), term, &in);
                if (r < 0) {
                        log_error("supervisor: %s: cannot supervise the placed instance: %s", a->unit, strerror(-r));
                        continue;
                }
                n_watched++;
                in->need_start = true;
                started[n_started++] = in;
                changes++;
                persist = true;
                log_info("supervisor: %s: placed here by the leader of term %" PRIu64, a->unit, term);
        }
        log_skipped(s, term, n_skipped, n, first);

        if (persist)
                placed_persist(s, n_started > 0);
        for (size_t j = 0; j < n_started; j++)
                place_start(started[j]);
        if (changes > 0)
                report_changed(s);
        free(valid);
        free(started);
        free(listed);
        return changes;
}

int supervisor_report(struct supervisor *s, struct sync_instance **ret, size_t *ret_n) {
        size_t n = 0, total = inst_count(s);
        struct sync_instance *a;

        a = calloc(total ? total : 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < total; i++) {
                const struct instance *in = inst_at(s, i);
                struct sync_instance *o = &a[n];
                enum balance_algorithm alg = balance_algorithm_from_string(
                        config_algorithm_to_string(in->cfg.algorithm));

                /* A name the table cannot hold (the config allows longer units) is left out. */
                if (strlen(in->cfg.name) >= sizeof(o->inst.service) || strlen(in->cfg.unit) >= sizeof(o->inst.instance) ||
                    strlen(in->cfg.address) >= sizeof(o->inst.address))
                        continue;
                snprintf(o->inst.service, sizeof(o->inst.service), "%s", in->cfg.name);
                snprintf(o->inst.instance, sizeof(o->inst.instance), "%s", in->cfg.unit);
                snprintf(o->inst.address, sizeof(o->inst.address), "%s", in->cfg.address);
                o->inst.port = in->cfg.port;
                o->inst.weight = (uint32_t) in->cfg.weight;
                o->inst.healthy = inst_up(in);
                o->inst.breaker = in->breaker.state;
                o->inst.active = 0;
                o->inst.algorithm = alg == _BALANCE_ALGORITHM_INVALID ? BALANCE_WRR : alg;
                o->origin = in->origin;
                o->state = inst_placement_state(in);
                o->placed_at_us = in->origin == PLACEMENT_PLACED ? in->placed_at_us : 0;
                n++;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

void supervisor_set_report_handler(struct supervisor *s, void (*fn)(void *userdata), void *userdata) {
        if (!s)
                return;
        s->report_fn = fn;
        s->report_userdata = userdata;
        if (fn)
                report_changed(s);  /* a first report with what is known now */
        else
                ev_prepare_stop(s->loop, &s->report_prepare);
}
