/*
 * agentctl events: the agent's event log, from the daemon or, with --db,
 * straight from a state database file while the daemon is down. Both sources
 * produce the same JSON event objects, so the output is the same either way.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "agentctl/agentctl.h"
#include "common/ctlproto.h"
#include "core/event.h"
#include "io/store.h"

#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 10000
#define EVENTS_POLL_INTERVAL_NS (500 * 1000 * 1000L)

struct events_query {
        int64_t after_id;       /* only ids above this (0: all) */
        uint64_t since_us;      /* only events at or after this CLOCK_REALTIME µs (0: all) */
        const char *kind;       /* NULL: every kind */
        uint32_t limit;         /* the newest `limit` matches */
};

struct events_source {
        const struct agentctl *ctl;
        const char *db_path;    /* --db: read this file instead of asking agentd */
        struct store *store;
};

struct events_printer {
        bool json;
        bool follow;
        struct output_table *table;
};

/* "agent_started, agent_stopping, ..." for the --kind usage error. */
static char *kind_list(void) {
        char *list = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&list, &len);
        if (!f)
                return NULL;
        for (int k = 0; k < _EVENT_KIND_MAX; k++)
                fprintf(f, "%s%s", k > 0 ? ", " : "", event_kind_to_string((enum event_kind) k));
        if (fclose(f) != 0) {
                free(list);
                return NULL;
        }
        return list;
}

/* Digits only: "10x", "-1", " 5" and "" are refused, not half-read. */
static int parse_limit(const char *s, uint32_t *ret) {
        unsigned long long v = 0;

        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long long) (*p - '0');
                if (v > EVENTS_LIMIT_MAX)
                        return -ERANGE;
        }
        if (v < 1)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

static int fetch_store(struct events_source *src, const struct events_query *q, json_t **ret) {
        struct store_event_filter f = {
                .after_id = q->after_id,
                .since_us = q->since_us,
                .kind = q->kind,
                .limit = q->limit,
        };
        json_t *events, *data;
        int r;

        events = json_array();
        if (!events)
                goto nomem;
        r = store_events_query(src->store, &f, ctlproto_event_append, events);
        if (r < 0) {
                json_decref(events);
                if (r == -ENOMEM)
                        goto nomem;
                agentctl_error("events: cannot read %s: %s", src->db_path, strerror(-r));
                return AGENTCTL_EXIT_ERROR;
        }
        data = json_pack("{s:o}", "events", events);
        if (!data)
                goto nomem;
        *ret = data;
        return 0;
nomem:
        agentctl_error("out of memory");
        return AGENTCTL_EXIT_ERROR;
}

static int fetch_daemon(struct events_source *src, const struct events_query *q, json_t **ret) {
        json_t *args, *data = NULL;
        int r;

        args = json_pack("{s:I}", "limit", (json_int_t) q->limit);
        if (!args ||
            (q->after_id > 0 && json_object_set_new(args, "after_id", json_integer(q->after_id)) < 0) ||
            (q->since_us > 0 && json_object_set_new(args, "since_us", json_integer((json_int_t) q->since_us)) < 0) ||
            (q->kind && json_object_set_new(args, "kind", json_string(q->kind)) < 0)) {
                json_decref(args);
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        r = agentctl_call(src->ctl, "events", args, &data);
        json_decref(args);
        if (r != 0)
                return r;
        *ret = data;
        return 0;
}

/*
 * Fetches one batch as {"events":[...],"last_id":N}, whichever the source,
 * and checks its shape so the printers can rely on it. last_id is the
 * highest id seen, or the query's after_id when nothing matched, so a
 * follower never goes backwards. Prints its own errors.
 */
static int fetch(struct events_source *src, const struct events_query *q, json_t **ret) {
        json_t *data = NULL, *events, *ev;
        int64_t last = q->after_id;
        size_t i;
        int r;

        r = src->store ? fetch_store(src, q, &data) : fetch_daemon(src, q, &data);
        if (r != 0)
                return r;

        events = json_object_get(data, "events");
        if (!json_is_array(events))
                goto bad;
        json_array_foreach(events, i, ev) {
                json_t *id = json_object_get(ev, "id");

                if (!json_is_object(ev) || !json_is_integer(id))
                        goto bad;
                if (json_integer_value(id) > last)
                        last = json_integer_value(id);
        }
        if (json_object_set_new(data, "last_id", json_integer(last)) < 0) {
                json_decref(data);
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        *ret = data;
        return 0;
bad:
        json_decref(data);
        agentctl_error("events: malformed reply from agentd on %s", src->ctl->socket_path);
        return AGENTCTL_EXIT_ERROR;
}

static int add_row(struct output_table *t, const json_t *ev) {
        const char *ts = json_string_value(json_object_get(ev, "ts"));
        const json_t *ts_us = json_object_get(ev, "ts_us");
        char id[32], tsbuf[UTIL_TS_MAX];

        snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(ev, "id")));
        if (!ts && json_is_integer(ts_us) && json_integer_value(ts_us) >= 0)
                ts = util_format_ts((uint64_t) json_integer_value(ts_us), tsbuf);
        return output_table_add(t, (const char *const[]) {
                id,
                ts,
                json_string_value(json_object_get(ev, "node")),
                json_string_value(json_object_get(ev, "kind")),
                json_string_value(json_object_get(ev, "subject")),
                json_string_value(json_object_get(ev, "detail")),
        });
}

/*
 * Prints one batch. Without --follow and with --json the whole reply is the
 * one document; with --follow --json each event is a line of its own, the
 * only case where agentctl prints more than one JSON document.
 */
static int print_batch(struct events_printer *p, const json_t *data) {
        const json_t *events = json_object_get(data, "events"), *ev;
        size_t i;
        int r;

        if (p->json && !p->follow)
                return output_json(data, false);
        if (p->json) {
                json_array_foreach(events, i, ev) {
                        r = output_json(ev, true);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        json_array_foreach(events, i, ev) {
                r = add_row(p->table, ev);
                if (r < 0)
                        return r;
        }
        return output_table_flush(p->table, stdout);
}

/*
 * SIGINT and SIGTERM end --follow with status 0. They are blocked and
 * collected with sigtimedwait() between polls, so no handler races with a
 * request in flight. A SIGINT the shell told us to ignore (a background job
 * of a script) stays ignored.
 */
static void follow_signals(sigset_t *ret_set) {
        struct sigaction old;

        sigemptyset(ret_set);
        sigaddset(ret_set, SIGTERM);
        if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
                sigaddset(ret_set, SIGINT);
        sigprocmask(SIG_BLOCK, ret_set, NULL);
}

/* Sleeps one poll interval; true when a stop signal arrived. */
static bool follow_wait(const sigset_t *set) {
        struct timespec left = { 0, EVENTS_POLL_INTERVAL_NS };
        uint64_t end = util_now_mono_us() + EVENTS_POLL_INTERVAL_NS / 1000;

        for (;;) {
                uint64_t now;

                if (sigtimedwait(set, NULL, &left) > 0)
                        return true;
                if (errno != EINTR)
                        return false;
                /* Another signal (SIGCONT, SIGWINCH) woke us early: sleep the rest. */
                now = util_now_mono_us();
                if (now >= end)
                        return false;
                left.tv_sec = (time_t) ((end - now) / USEC_PER_SEC);
                left.tv_nsec = (long) ((end - now) % USEC_PER_SEC) * 1000;
        }
}

static int run_events(struct events_source *src, struct events_query *q, struct events_printer *p) {
        json_t *data = NULL;
        sigset_t stop;
        int r;

        if (p->follow)
                follow_signals(&stop);

        r = fetch(src, q, &data);
        if (r != 0)
                return r;
        for (;;) {
                r = print_batch(p, data);
                q->after_id = json_integer_value(json_object_get(data, "last_id"));
                json_decref(data);
                data = NULL;
                if (r == -ENOMEM) {
                        agentctl_error("out of memory");
                        return AGENTCTL_EXIT_ERROR;
                }
                if (r < 0)
                        return AGENTCTL_EXIT_ERROR;  /* stdout is gone; main says why */
                if (!p->follow)
                        return AGENTCTL_EXIT_OK;

                /*
                 * Later polls ask for everything after the last id, at the
                 * largest batch the daemon allows: more than that within one
                 * interval would be a flood nobody reads line by line anyway.
                 */
                q->limit = EVENTS_LIMIT_MAX;
                if (follow_wait(&stop))
                        return AGENTCTL_EXIT_OK;
                r = fetch(src, q, &data);
                if (r != 0)
                        return r;
        }
}

int agentctl_events(struct agentctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "since",  required_argument, NULL, 's' },
                { "kind",   required_argument, NULL, 'k' },
                { "limit",  required_argument, NULL, 'n' },
                { "follow", no_argument,       NULL, 'f' },
                { "db",     required_argument, NULL, 'd' },
                { "help",   no_argument,       NULL, 'h' },
                {}
        };
        static const char *const headers[] = { "ID", "TIME", "NODE", "KIND", "SUBJECT", "DETAIL" };
        struct events_query q = { .limit = EVENTS_LIMIT_DEFAULT };
        struct events_source src = { .ctl = ctl };
        struct events_printer p = { .json = ctl->json };
        _cleanup_free_ char *err = NULL;
        uint64_t since, now;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":s:k:n:fd:h", options, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (util_parse_duration(optarg, &since) < 0)
                                return agentctl_usage_error(ctl, "invalid duration '%s' for --since (use e.g. 30s, 5m, 2h, 1d)",
                                                            optarg);
                        /* A window reaching back before 1970 simply means "everything". */
                        now = util_now_real_us();
                        q.since_us = since < now ? now - since : 0;
                        break;
                case 'k':
                        if (event_kind_from_string(optarg) == _EVENT_KIND_INVALID) {
                                _cleanup_free_ char *kinds = kind_list();

                                return agentctl_usage_error(ctl, "unknown event kind '%s' (valid kinds: %s)",
                                                            optarg, kinds ? kinds : "?");
                        }
                        q.kind = optarg;
                        break;
                case 'n':
                        if (parse_limit(optarg, &q.limit) < 0)
                                return agentctl_usage_error(ctl, "--limit must be a number from 1 to %d, not '%s'",
                                                            EVENTS_LIMIT_MAX, optarg);
                        break;
                case 'f':
                        p.follow = true;
                        break;
                case 'd':
                        if (!*optarg)
                                return agentctl_usage_error(ctl, "--db needs a path");
                        src.db_path = optarg;
                        break;
                case 'h':
                        return agentctl_verb_help(ctl);
                default:
                        return agentctl_bad_option(ctl, argv, c);
                }
        }
        if (optind < argc)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);

        if (src.db_path) {
                r = store_open_readonly(src.db_path, &src.store, &err);
                if (r < 0) {
                        if (err)
                                agentctl_error("events: %s", err);
                        else
                                agentctl_error("events: cannot open %s: %s", src.db_path, strerror(-r));
                        return AGENTCTL_EXIT_ERROR;
                }
        }
        if (!p.json) {
                r = output_table_new(ELEMENTSOF(headers), headers, &p.table);
                if (r < 0) {
                        store_free(src.store);
                        agentctl_error("out of memory");
                        return AGENTCTL_EXIT_ERROR;
                }
                output_table_align_right(p.table, 0);
        }

        r = run_events(&src, &q, &p);
        output_table_free(p.table);
        store_free(src.store);
        return r;
}
