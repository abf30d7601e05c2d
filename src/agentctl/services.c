/*
 * agentctl services, breakers and restart: what the agent's supervisor knows
 * about the local service instances, and the operator's restart. The daemon
 * sends times both as RFC 3339 stamps and as µs from now, so the text output
 * can say "in 3.2s" without trusting this host's clock to match.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "agentctl/agentctl.h"

/* How long `restart` waits for the unit_restarted event of its job. */
#define RESTART_WAIT_US (120 * USEC_PER_SEC)
#define RESTART_POLL_NS (200 * 1000 * 1000L)

static bool streq_field(const json_t *o, const char *key, const char *want) {
        const char *v = output_field_str(o, key);

        return v && strcmp(v, want) == 0;
}

/* "850ms", "3.2s", "4m10s", "2h5m": short and human, for relative times. */
static const char *format_span(uint64_t us, char *buf, size_t len) {
        if (us < USEC_PER_MSEC)
                snprintf(buf, len, "%" PRIu64 "us", us);
        else if (us < USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 "ms", us / USEC_PER_MSEC);
        else if (us < 10 * USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", us / USEC_PER_SEC,
                         (us % USEC_PER_SEC) / (100 * USEC_PER_MSEC));
        else if (us < USEC_PER_MIN)
                snprintf(buf, len, "%" PRIu64 "s", us / USEC_PER_SEC);
        else if (us < USEC_PER_HOUR)
                snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", us / USEC_PER_MIN,
                         (us % USEC_PER_MIN) / USEC_PER_SEC);
        else
                snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", us / USEC_PER_HOUR,
                         (us % USEC_PER_HOUR) / USEC_PER_MIN);
        return buf;
}

/* A latency with sub-millisecond precision: "0.42ms", "12.3ms", "1.2s". */
static const char *format_latency(uint64_t us, char *buf, size_t len) {
        if (us < 10 * USEC_PER_MSEC)
                snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "ms", us / USEC_PER_MSEC,
                         (us % USEC_PER_MSEC) / 10);
        else if (us < USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "ms", us / USEC_PER_MSEC,
                         (us % USEC_PER_MSEC) / 100);
        else
                format_span(us, buf, len);
        return buf;
}

/* "in 3.2s" from a field holding µs from now; "now" when due; "-" when absent. */
static const char *format_in(const json_t *o, const char *key, char *buf, size_t len) {
        char span[32];
        json_int_t v;

        if (!output_field_int(o, key, &v) || v < 0)
                return "-";
        if (v == 0)
                return "now";
        snprintf(buf, len, "in %s", format_span((uint64_t) v, span, sizeof(span)));
        return buf;
}

/* "4.1s ago" from a field holding µs since then. */
static const char *format_ago(const json_t *o, const char *key, char *buf, size_t len) {
        char span[32];
        json_int_t v;

        if (!output_field_int(o, key, &v) || v < 0)
                return "-";
        snprintf(buf, len, "%s ago", format_span((uint64_t) v, span, sizeof(span)));
        return buf;
}

static int add_service_row(struct output_table *t, const json_t *s) {
        char health[64], pid[32], restarts[48], nextbuf[48], check[512], latency[32], active[96];
        const char *h = output_field_str(s, "health"), *as = output_field_str(s, "active_state");
        const char *ss = output_field_str(s, "sub_state"), *res = output_field_str(s, "last_check_result");
        const char *msg = output_field_str(s, "last_check_message"), *ls = output_field_str(s, "load_state");
        json_int_t v, lim;

        snprintf(health, sizeof(health), "%s%s", h ? h : "-",
                 json_is_true(json_object_get(s, "quarantined")) ? " (quarantined)" : "");
        if (output_field_int(s, "main_pid", &v) && v > 0)
                snprintf(pid, sizeof(pid), "%" JSON_INTEGER_FORMAT, v);
        else
                snprintf(pid, sizeof(pid), "-");
        if (output_field_int(s, "restarts_in_window", &v) && output_field_int(s, "restart_limit", &lim))
                snprintf(restarts, sizeof(restarts), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, v, lim);
        else if (output_field_int(s, "restarts_in_window", &v))
                snprintf(restarts, sizeof(restarts), "%" JSON_INTEGER_FORMAT, v);
        else
                snprintf(restarts, sizeof(restarts), "-");
        const char *next = format_in(s, "next_retry_in_us", nextbuf, sizeof(nextbuf));
        if (res && msg && *msg)
                snprintf(check, sizeof(check), "%s: %s", res, msg);
        else
                snprintf(check, sizeof(check), "%s", res ? res : "-");
        /* A systemd check reads the unit's state from signals: it has no latency of its own. */
        if (output_field_int(s, "last_check_latency_us", &v) && v >= 0 && !streq_field(s, "check", "systemd"))
                format_latency((uint64_t) v, latency, sizeof(latency));
        else
                snprintf(latency, sizeof(latency), "-");
        /* A unit that is not there has no state worth showing: say so instead. */
        if (ls && *ls && strcmp(ls, "loaded") != 0)
                snprintf(active, sizeof(active), "%s", ls);
        else if (as && ss)
                snprintf(active, sizeof(active), "%s/%s", as, ss);
        else
                snprintf(active, sizeof(active), "%s", as ? as : "-");

        return output_table_add(t, (const char *const[]) {
                output_field_str(s, "service"), output_field_str(s, "unit"), health, active, pid,
                output_field_str(s, "breaker"), restarts, next, check, latency,
                output_field_str(s, "origin") ?: "static",
        });
}

int agentctl_services(struct agentctl *ctl, int argc, char **argv) {
        static const char *const headers[] = {
                "SERVICE", "UNIT", "HEALTH", "ACTIVE", "PID", "BREAKER", "RESTARTS", "NEXT RETRY",
                "LAST CHECK", "LATENCY", "ORIGIN",
        };
        static const struct agentctl_list list = {
                .verb = "services",
                .key = "services",
                .n_cols = ELEMENTSOF(headers),
                .headers = headers,
                .right = 1u << 4 | 1u << 9,     /* PID, LATENCY */
                .empty = "no services configured",
                .add_row = add_service_row,
        };

        return agentctl_list(ctl, argc, argv, &list);
}

static int add_breaker_row(struct output_table *t, const json_t *b) {
        char failures[48], openedbuf[64], nextbuf[48];
        const char *state = output_field_str(b, "state"), *opened, *next = "-";
        bool closed = state && strcmp(state, "closed") == 0;
        json_int_t v, lim;

        /* Consecutive failures only count while closed; open and half-open reset them. */
        if (closed && output_field_int(b, "failures", &v) && output_field_int(b, "threshold", &lim))
                snprintf(failures, sizeof(failures), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, v, lim);
        else if (closed && output_field_int(b, "failures", &v))
                snprintf(failures, sizeof(failures), "%" JSON_INTEGER_FORMAT, v);
        else
                snprintf(failures, sizeof(failures), "-");
        opened = format_ago(b, "opened_ago_us", openedbuf, sizeof(openedbuf));
        if (state && strcmp(state, "open") == 0)
                next = format_in(b, "next_half_open_in_us", nextbuf, sizeof(nextbuf));
        return output_table_add(t, (const char *const[]) {
                output_field_str(b, "service"), output_field_str(b, "unit"), state, failures, opened,
                output_field_str(b, "opened_at"), next,
        });
}

int agentctl_breakers(struct agentctl *ctl, int argc, char **argv) {
        static const char *const headers[] = {
                "SERVICE", "UNIT", "STATE", "FAILURES", "OPENED", "OPENED AT", "NEXT HALF-OPEN",
        };
        static const struct agentctl_list list = {
                .verb = "breakers",
                .key = "breakers",
                .n_cols = ELEMENTSOF(headers),
                .headers = headers,
                .empty = "no services configured",
                .add_row = add_breaker_row,
        };

        return agentctl_list(ctl, argc, argv, &list);
}

/* The id of the newest stored event, so the wait below only looks at newer ones. */
static int newest_event_id(const struct agentctl *ctl, json_int_t *ret) {
        json_t *args = json_pack("{s:i}", "limit", 1), *data = NULL;
        json_int_t last = 0;
        int r;

        if (!args)
                return -ENOMEM;
        r = agentctl_call(ctl, "events", args, &data);
        json_decref(args);
        if (r != 0)
                return -EIO;
        output_field_int(data, "last_id", &last);
        json_decref(data);
        *ret = last;
        return 0;
}

/*
 * Polls for the unit_restarted event the daemon records when the job of
 * this restart ends (JobRemoved). Returns 0 with *ret_event set, -ETIMEDOUT,
 * -EINTR on SIGINT/SIGTERM, or -EIO after printing why.
 */
static int wait_restarted(const struct agentctl *ctl, const char *unit, json_int_t after, json_t **ret_event) {
        uint64_t deadline = util_now_mono_us() + RESTART_WAIT_US;
        sigset_t stop;

        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, NULL);

        while (util_now_mono_us() < deadline) {
                json_t *args, *data = NULL, *ev;
                const json_t *events;
                struct timespec ts = { 0, RESTART_POLL_NS };
                size_t i;
                int r;

                args = json_pack("{s:I, s:s, s:i}", "after_id", after, "kind", "unit_restarted", "limit", 10000);
                if (!args)
                        return -ENOMEM;
                r = agentctl_call(ctl, "events", args, &data);
                json_decref(args);
                if (r != 0)
                        return -EIO;
                events = json_object_get(data, "events");
                json_array_foreach(events, i, ev) {
                        const char *u = output_field_str(ev, "unit");
                        json_int_t id;

                        if (output_field_int(ev, "id", &id) && id > after)
                                after = id;
                        if (u && strcmp(u, unit) == 0) {
                                *ret_event = json_incref(ev);
                                json_decref(data);
                                return 0;
                        }
                }
                json_decref(data);
                if (sigtimedwait(&stop, NULL, &ts) > 0)
                        return -EINTR;
        }
        return -ETIMEDOUT;
}

/*
 * Asks the daemon to restart UNIT (or the unit of the service named UNIT) and,
 * unless --no-wait, waits for systemd's job to finish: the outcome is the
 * unit_restarted event the supervisor records for it, with the job result and
 * the old and new main pid. Exits 1 when the job did not end with "done".
 */
int agentctl_restart(struct agentctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "no-wait", no_argument, NULL, 'n' },
                { "help",    no_argument, NULL, 'h' },
                {}
        };
        json_t *args = NULL, *data = NULL, *ev = NULL;
        json_int_t after = 0;
        const char *unit, *detail;
        bool wait = true;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":nh", options, NULL)) != -1) {
                switch (c) {
                case 'n':
                        wait = false;
                        break;
                case 'h':
                        return agentctl_verb_help(ctl);
                default:
                        return agentctl_bad_option(ctl, argv, c);
                }
        }
        if (optind >= argc)
                return agentctl_usage_error(ctl, "no unit given");
        if (optind + 1 < argc)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[optind + 1]);
        unit = argv[optind];
        if (!*unit)
                return agentctl_usage_error(ctl, "the unit name is empty");

        if (wait && newest_event_id(ctl, &after) < 0)
                return AGENTCTL_EXIT_ERROR;
        args = json_pack("{s:s}", "unit", unit);
        if (!args) {
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        r = agentctl_call(ctl, "restart", args, &data);
        json_decref(args);
        if (r != 0)
                return r;
        /* The daemon may have resolved a service name to its unit. */
        unit = output_field_str(data, "unit") ? output_field_str(data, "unit") : unit;

        if (!wait) {
                if (ctl->json)
                        r = output_json(data, false);
                else {
                        printf("restart of %s requested\n", unit);
                        r = 0;
                }
                json_decref(data);
                return agentctl_exit_status(r);
        }

        r = wait_restarted(ctl, unit, after, &ev);
        if (r == -EINTR) {
                json_decref(data);
                agentctl_error("restart: stopped waiting; the restart of %s goes on (see agentctl events)", unit);
                return AGENTCTL_EXIT_ERROR;
        }
        if (r == -ETIMEDOUT) {
                json_decref(data);
                agentctl_error("restart: no outcome for %s within 2m; see agentctl events --kind unit_restarted",
                               unit);
                return AGENTCTL_EXIT_ERROR;
        }
        if (r < 0) {
                json_decref(data);
                if (r == -ENOMEM)
                        agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }

        detail = output_field_str(ev, "detail");
        /* The supervisor writes "...; job done; ..." when systemd's job succeeded. */
        bool done = detail && strstr(detail, "; job done;");
        if (ctl->json) {
                json_object_set(data, "event", ev);
                json_object_set_new(data, "done", json_boolean(done));
                r = output_json(data, false);
        } else {
                printf("%s %s: %s\n", unit, done ? "restarted" : "restart failed", detail ? detail : "-");
                r = 0;
        }
        json_decref(ev);
        json_decref(data);
        if (r < 0)
                return AGENTCTL_EXIT_ERROR;
        return done ? AGENTCTL_EXIT_OK : AGENTCTL_EXIT_ERROR;
}
