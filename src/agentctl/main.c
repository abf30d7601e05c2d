/*
 * agentctl: parses the global options, picks the verb from the table below
 * and runs it. Messages on stderr always start with "agentctl: ", so scripts
 * and operators can tell them from the daemon's own.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentctl/agentctl.h"
#include "common/ctlproto.h"

#define PROG "agentctl"
#define GLOBAL_USAGE "[--socket PATH] [--json] [--timeout DURATION] VERB [ARGS]"

static int verb_help(struct agentctl *ctl, int argc, char **argv);

/* Every verb agentctl knows, in the order --help lists them. */
static const struct agentctl_verb verbs[] = {
        { "status",  agentctl_status,  "",
          "show the agent's state, leader, term and uptime" },
        { "events",  agentctl_events,
          "[--since DURATION] [--kind KIND] [--limit N] [--follow] [--db PATH]",
          "list recorded events, oldest first" },
        { "services", agentctl_services, "",
          "show the supervised service instances: health, breaker, restarts, last check" },
        { "breakers", agentctl_breakers, "",
          "show the circuit breaker of each service instance" },
        { "restart", agentctl_restart, "[--no-wait] UNIT",
          "restart a supervised unit through systemd (root or admin group)" },
        { "members", agentctl_members, "",
          "show the cluster's members: address, state, incarnation, last change, RTT" },
        { "leader", agentctl_leader, "",
          "show the cluster's leader, term, election state and quorum" },
        { "table",   agentctl_table,   "[SERVICE]",
          "show the balancer table: per service its backends, weights and states" },
        { "pick",    agentctl_pick,    "[--client ADDR] SERVICE",
          "show the backend the balancer would give a client now" },
        { "drain",   agentctl_drain,   "[--ttl DURATION] NODE",
          "stop new traffic to a node's backends (root or admin group)" },
        { "undrain", agentctl_undrain, "NODE",
          "let a drained node's backends take traffic again (root or admin group)" },
        { "force-leave", agentctl_force_leave, "NODE",
          "mark a member that will not come back as left (root or admin group)" },
        { "reload",  agentctl_reload,  "",
          "reload the configuration file (root or admin group)" },
        { "version", agentctl_version, "",
          "show the versions of agentctl and the running agentd" },
        { "help",    verb_help,        "[VERB]",
          "show this help, or one verb's usage" },
};

static const struct agentctl_verb *verb_lookup(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

void agentctl_error(const char *fmt, ...) {
        va_list ap;

        fputs(PROG ": ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void short_usage(const struct agentctl_verb *v, FILE *f) {
        if (v)
                fprintf(f, "usage: " PROG " [OPTIONS] %s%s%s\n", v->name, *v->usage ? " " : "", v->usage);
        else
                fprintf(f, "usage: " PROG " " GLOBAL_USAGE "\n");
        fprintf(f, "Try '" PROG " --help' for more information.\n");
}

int agentctl_usage_error(const struct agentctl *ctl, const char *fmt, ...) {
        const struct agentctl_verb *v = ctl ? ctl->verb : NULL;
        va_list ap;

        fputs(PROG ": ", stderr);
        if (v)
                fprintf(stderr, "%s: ", v->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        short_usage(v, stderr);
        return AGENTCTL_EXIT_USAGE;
}

int agentctl_verb_help(const struct agentctl *ctl) {
        const struct agentctl_verb *v = ctl->verb;

        printf("usage: " PROG " [OPTIONS] %s%s%s\n\n%s.\n", v->name, *v->usage ? " " : "", v->usage, v->summary);
        if (strcmp(v->name, "events") == 0) {
                /* The one verb with options of its own; doc/agentctl.8 has the details. */
                printf("\n"
                       "  --since DURATION  only events newer than DURATION ago (30s, 5m, 2h, 1d)\n"
                       "  --kind KIND       only events of this kind\n"
                       "  --limit N         the newest N matches, 1..10000 (default 100)\n"
                       "  --follow          keep printing new events until interrupted\n"
                       "  --db PATH         read the state database PATH instead of asking agentd\n");
        } else if (strcmp(v->name, "restart") == 0) {
                printf("\n"
                       "  UNIT        a unit (or service name) from agentd.conf's services list\n"
                       "  --no-wait   return once the restart is requested, without waiting for\n"
                       "              systemd's job to finish (at most 2m) and its outcome\n");
        } else if (strcmp(v->name, "pick") == 0) {
                printf("\n"
                       "  SERVICE        a service in the balancer table\n"
                       "  --client ADDR  pick as for a client at this IP address (hashing algorithms)\n");
        } else if (strcmp(v->name, "drain") == 0) {
                printf("\n"
                       "  NODE            the node whose backends get no new traffic\n"
                       "  --ttl DURATION  undrain by itself after DURATION (30s, 10m, 1h; default: never)\n");
        }
        return AGENTCTL_EXIT_OK;
}

/*
 * getopt_long runs with opterr = 0 and a leading ':' so that every option
 * error is reported in agentctl's own words, naming the verb.
 */
int agentctl_bad_option(const struct agentctl *ctl, char **argv, int c) {
        const char *arg = optind > 0 ? argv[optind - 1] : NULL;
        char shortopt[3] = { '-', (char) optopt, '\0' };
        const char *name;

        /* A long option names itself in argv; a short one may sit inside a group ("-jx"). */
        if (arg && strncmp(arg, "--", 2) == 0)
                name = arg;
        else
                name = optopt ? shortopt : (arg ? arg : "?");
        if (c == ':')
                return agentctl_usage_error(ctl, "option '%s' needs an argument", name);
        return agentctl_usage_error(ctl, "unknown option '%s'", name);
}

int agentctl_parse_no_args(struct agentctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        return agentctl_verb_help(ctl);
                default:
                        return agentctl_bad_option(ctl, argv, c);
                }
        }
        if (optind < argc)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
        return AGENTCTL_CONTINUE;
}

/* Describes a failure to reach the daemon in the words an operator needs. */
static char *describe_transport_error(const struct agentctl *ctl, int r) {
        const char *path = ctl->socket_path;
        char dur[64];
        char *s = NULL;
        int n;

        switch (r) {
        case -ENOENT:
                n = asprintf(&s, "agentd is not running (no socket at %s)", path);
                break;
        case -ECONNREFUSED:
                n = asprintf(&s, "agentd is not running (connection refused at %s)", path);
                break;
        case -EACCES:
        case -EPERM:
                n = asprintf(&s, "permission denied connecting to %s", path);
                break;
        case -ETIMEDOUT:
                n = asprintf(&s, "agentd did not answer within %s on %s",
                             util_format_duration(ctl->timeout_us, dur, sizeof(dur)), path);
                break;
        case -ENOTDIR:
                n = asprintf(&s, "agentd is not running (no directory for the socket %s)", path);
                break;
        case -ENAMETOOLONG:
                n = asprintf(&s, "socket path too long for a Unix socket: %s", path);
                break;
        case -EBADMSG:
                n = asprintf(&s, "unreadable reply from agentd on %s", path);
                break;
        case -EMSGSIZE:
                n = asprintf(&s, "reply from agentd on %s is larger than %d bytes", path, CTL_MAX_REPLY);
                break;
        case -ECONNRESET:
        case -EPIPE:
                n = asprintf(&s, "agentd closed the connection on %s", path);
                break;
        default:
                n = asprintf(&s, "cannot talk to agentd on %s: %s", path, strerror(-r));
                break;
        }
        return n < 0 ? NULL : s;
}

/*
 * Turns an error reply into "message (code)". A reply that breaks the
 * protocol still gets a readable line rather than a crash.
 */
static char *describe_error_reply(const json_t *reply) {
        const json_t *err = json_object_get(reply, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        char *s = NULL;

        if (!code)
                code = "unknown";
        if (!msg || !*msg)
                msg = "request failed";
        if (asprintf(&s, "%s (%s)", msg, code) < 0)
                return NULL;
        return s;
}

/* Hands MSG (malloc'd; NULL: out of memory) out as *ret_error and returns R. */
static int request_failed(char *msg, int r, char **ret_error) {
        if (!msg)
                return -ENOMEM;
        *ret_error = msg;
        return r;
}

int agentctl_request(const struct agentctl *ctl, const char *verb, json_t *args,
                     json_t **ret_data, char **ret_error) {
        json_t *reply = NULL, *ok, *data;
        char *msg;
        int r;

        r = ctlproto_call(ctl->socket_path, verb, args, ctl->timeout_us, &reply);
        if (r < 0)
                return request_failed(describe_transport_error(ctl, r), r, ret_error);

        ok = json_object_get(reply, "ok");
        if (!json_is_boolean(ok)) {
                json_decref(reply);
                return request_failed(describe_transport_error(ctl, -EBADMSG), -EBADMSG, ret_error);
        }
        if (!json_is_true(ok)) {
                msg = describe_error_reply(reply);
                json_decref(reply);
                return request_failed(msg, -EREMOTEIO, ret_error);
        }

        data = json_object_get(reply, "data");
        if (!data || json_is_null(data))
                data = json_object();
        else if (json_is_object(data))
                json_incref(data);
        else
                data = NULL;
        json_decref(reply);
        if (!data)
                return request_failed(describe_transport_error(ctl, -EBADMSG), -EBADMSG, ret_error);
        *ret_data = data;
        return 0;
}

int agentctl_call(const struct agentctl *ctl, const char *verb, json_t *args, json_t **ret_data) {
        _cleanup_free_ char *msg = NULL;
        int r;

        r = agentctl_request(ctl, verb, args, ret_data, &msg);
        if (r == -ENOMEM)
                agentctl_error("out of memory");
        else if (r == -EREMOTEIO)
                agentctl_error("%s: %s", verb, msg);
        else if (r < 0)
                agentctl_error("%s", msg);
        return r < 0 ? AGENTCTL_EXIT_ERROR : 0;
}

int agentctl_fetch(struct agentctl *ctl, int argc, char **argv, const char *verb, json_t **ret_data) {
        int r;

        r = agentctl_parse_no_args(ctl, argc, argv);
        if (r != AGENTCTL_CONTINUE)
                return r;
        r = agentctl_call(ctl, verb, NULL, ret_data);
        return r != 0 ? r : AGENTCTL_CONTINUE;
}

int agentctl_exit_status(int r) {
        if (r == -ENOMEM)
                agentctl_error("out of memory");
        return r < 0 ? AGENTCTL_EXIT_ERROR : AGENTCTL_EXIT_OK;
}

/*
 * The rows are copied into the table, so the reply is released before the
 * table is printed; the summary still needs the list and comes last.
 */
int agentctl_list(struct agentctl *ctl, int argc, char **argv, const struct agentctl_list *l) {
        _cleanup_table_ struct output_table *t = NULL;
        const json_t *list, *item;
        json_t *data = NULL;
        size_t i;
        int r;

        r = agentctl_fetch(ctl, argc, argv, l->verb, &data);
        if (r != AGENTCTL_CONTINUE)
                return r;
        list = json_object_get(data, l->key);
        if (ctl->json && (json_is_array(list) || !l->json_needs_list)) {
                r = output_json(data, false);
                json_decref(data);
                return agentctl_exit_status(r);
        }

        if (!json_is_array(list)) {
                json_decref(data);
                agentctl_error("%s: malformed reply from agentd on %s", l->verb, ctl->socket_path);
                return AGENTCTL_EXIT_ERROR;
        }
        if (l->empty && json_array_size(list) == 0) {
                json_decref(data);
                printf("%s\n", l->empty);
                return AGENTCTL_EXIT_OK;
        }
        r = output_table_new(l->n_cols, l->headers, &t);
        for (size_t col = 0; r == 0 && col < l->n_cols && col < 32; col++)
                if (l->right & (UINT32_C(1) << col))
                        output_table_align_right(t, col);
        json_array_foreach(list, i, item) {
                if (r < 0)
                        break;
                r = l->add_row(t, item);
        }
        if (r == 0)
                r = output_table_flush(t, stdout);
        if (r == 0 && l->summary)
                l->summary(list);
        json_decref(data);
        return agentctl_exit_status(r);
}

static void long_usage(void) {
        printf("usage: " PROG " " GLOBAL_USAGE "\n"
               "\n"
               "Controls agentd, the cluster availability agent, over its control socket.\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH       control socket (default: $AGENTCTL_SOCKET, else %s)\n"
               "  -j, --json              print one JSON document instead of text\n"
               "  -t, --timeout DURATION  how long to wait for agentd (default 5s)\n"
               "  -h, --help              show this help\n"
               "  -V, --version           show agentctl's version\n"
               "\n"
               "Verbs:\n", AGENTCTL_DEFAULT_SOCKET);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-11s %s%s%s\n", verbs[i].name, verbs[i].summary,
                       *verbs[i].usage ? "\n              " : "", verbs[i].usage);
        printf("\n"
               "Exit status: 0 ok, 1 error, 2 usage, 3 reachable but degraded (status).\n"
               "See agentctl(8).\n");
}

static int verb_help(struct agentctl *ctl, int argc, char **argv) {
        const struct agentctl_verb *v;

        if (argc > 2)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[2]);
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                long_usage();
                return AGENTCTL_EXIT_OK;
        }
        v = verb_lookup(argv[1]);
        if (!v)
                return agentctl_usage_error(ctl, "unknown verb '%s'", argv[1]);
        ctl->verb = v;
        return agentctl_verb_help(ctl);
}

static int parse_timeout(struct agentctl *ctl, const char *s) {
        uint64_t us;

        if (util_parse_duration(s, &us) < 0)
                return agentctl_usage_error(NULL, "invalid duration '%s' for --timeout (use e.g. 500ms, 5s, 1m)", s);
        if (us == 0 || us > AGENTCTL_MAX_TIMEOUT_US)
                return agentctl_usage_error(NULL, "--timeout must be more than 0 and at most 1d, not '%s'", s);
        ctl->timeout_us = us;
        return AGENTCTL_CONTINUE;
}

/* Reports a failed write to stdout (a full disk, a closed pipe) instead of exiting 0. */
static int finish_stdout(int status) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (errno != EPIPE)
                        agentctl_error("error writing output: %s", strerror(errno));
                return AGENTCTL_EXIT_ERROR;
        }
        return status;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket",  required_argument, NULL, 's' },
                { "json",    no_argument,       NULL, 'j' },
                { "timeout", required_argument, NULL, 't' },
                { "help",    no_argument,       NULL, 'h' },
                { "version", no_argument,       NULL, 'V' },
                {}
        };
        struct agentctl ctl = {
                .socket_path = AGENTCTL_DEFAULT_SOCKET,
                .timeout_us = AGENTCTL_DEFAULT_TIMEOUT_US,
        };
        const char *env = getenv("AGENTCTL_SOCKET");
        int c, r;

        if (env && *env)
                ctl.socket_path = env;

        opterr = 0;
        /* '+': the first non-option is the verb, and what follows it is the verb's. */
        while ((c = getopt_long(argc, argv, "+:s:jt:hV", options, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (!*optarg)
                                return agentctl_usage_error(NULL, "--socket needs a path");
                        ctl.socket_path = optarg;
                        break;
                case 'j':
                        ctl.json = true;
                        break;
                case 't':
                        r = parse_timeout(&ctl, optarg);
                        if (r != AGENTCTL_CONTINUE)
                                return r;
                        break;
                case 'h':
                        long_usage();
                        return finish_stdout(AGENTCTL_EXIT_OK);
                case 'V':
                        printf(PROG " %s\n", PACKAGE_VERSION);
                        return finish_stdout(AGENTCTL_EXIT_OK);
                default:
                        return agentctl_bad_option(NULL, argv, c);
                }
        }

        if (optind >= argc)
                return agentctl_usage_error(NULL, "no verb given");
        ctl.verb = verb_lookup(argv[optind]);
        if (!ctl.verb)
                return agentctl_usage_error(NULL, "unknown verb '%s'", argv[optind]);

        r = ctl.verb->run(&ctl, argc - optind, argv + optind);
        return finish_stdout(r);
}
