/*
 * agentctl table, pick, drain and undrain: the balancer as the operator sees
 * it. The leader publishes one table (term, version) for the cluster; every
 * agent holds a copy, and says whether it is the version the leader announced
 * last. pick asks which backend this agent would hand out now; drain and
 * undrain take a node's backends out of and back into rotation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "agentctl/agentctl.h"

/* A drain longer than this is a typo, not a plan: a year is already a lot. */
#define DRAIN_MAX_TTL_US (365 * USEC_PER_DAY)

static const char *int_text(const json_t *o, const char *key, char *buf, size_t len) {
        json_int_t v;

        if (!output_field_int(o, key, &v))
                return "-";
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, v);
        return buf;
}

/*
 * The start of every verb here that names one thing (a service, a node):
 * parses --help and, when TTL is wanted, --ttl; then exactly one argument.
 * Returns AGENTCTL_CONTINUE with *ret_arg set, or the exit status now.
 */
static int parse_one_arg(struct agentctl *ctl, int argc, char **argv, const char *what, bool optional,
                         const char **ret_arg, uint64_t *ret_ttl_us, const char **ret_client) {
        static const struct option options[] = {
                { "help",   no_argument,       NULL, 'h' },
                { "ttl",    required_argument, NULL, 't' },
                { "client", required_argument, NULL, 'c' },
                {}
        };
        unsigned char addr[sizeof(struct in6_addr)];
        uint64_t us;
        int c;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        return agentctl_verb_help(ctl);
                case 't':
                        if (!ret_ttl_us)
                                return agentctl_usage_error(ctl, "unknown option '--ttl'");
                        if (util_parse_duration(optarg, &us) < 0)
                                return agentctl_usage_error(ctl, "invalid duration '%s' for --ttl (use e.g. 30s, 10m, 1h)",
                                                            optarg);
                        if (us == 0 || us > DRAIN_MAX_TTL_US)
                                return agentctl_usage_error(ctl, "--ttl must be more than 0 and at most 365d, not '%s'",
                                                            optarg);
                        *ret_ttl_us = us;
                        break;
                case 'c':
                        if (!ret_client)
                                return agentctl_usage_error(ctl, "unknown option '--client'");
                        if (inet_pton(AF_INET, optarg, addr) != 1 && inet_pton(AF_INET6, optarg, addr) != 1)
                                return agentctl_usage_error(ctl, "--client needs an IP address (10.0.0.7 or fd00::7), not '%s'",
                                                            optarg);
                        *ret_client = optarg;
                        break;
                default:
                        return agentctl_bad_option(ctl, argv, c);
                }
        }
        if (optind >= argc) {
                if (optional) {
                        *ret_arg = NULL;
                        return AGENTCTL_CONTINUE;
                }
                return agentctl_usage_error(ctl, "no %s given", what);
        }
        if (optind + 1 < argc)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[optind + 1]);
        if (!*argv[optind])
                return agentctl_usage_error(ctl, "the %s name is empty", what);
        *ret_arg = argv[optind];
        return AGENTCTL_CONTINUE;
}

/* Sends VERB with the one string argument KEY = VALUE (VALUE NULL: no arguments). */
static int call_with(const struct agentctl *ctl, const char *verb, const char *key, const char *value,
                     json_t **ret_data) {
        json_t *args = NULL;
        int r;

        if (value) {
                args = json_pack("{s:s}", key, value);
                if (!args) {
                        agentctl_error("out of memory");
                        return AGENTCTL_EXIT_ERROR;
                }
        }
        r = agentctl_call(ctl, verb, args, ret_data);
        json_decref(args);
        return r;
}

static int add_backend_row(struct output_table *t, const json_t *b) {
        char port[16], weight[24], active[24];

        if (!json_is_object(b))
                return 0;
        return output_table_add(t, (const char *const[]) {
                output_field_str(b, "node"), output_field_str(b, "instance"), output_field_str(b, "address"),
                int_text(b, "port", port, sizeof(port)), int_text(b, "weight", weight, sizeof(weight)),
                output_field_str(b, "state"), int_text(b, "active", active, sizeof(active)),
        });
}

/* "web (wrr, term 3 version 7)", then its backends; a service without any says so. */
static int print_service(const json_t *svc, const char *tv) {
        static const char *const headers[] = { "NODE", "INSTANCE", "ADDRESS", "PORT", "WEIGHT", "STATE", "ACTIVE" };
        _cleanup_table_ struct output_table *t = NULL;
        const json_t *backends = json_object_get(svc, "backends"), *b;
        const char *name = output_field_str(svc, "name"), *alg = output_field_str(svc, "algorithm");
        size_t i;
        int r;

        printf("\n%s (%s, %s)\n", name ? name : "-", alg ? alg : "-", tv);
        if (!json_is_array(backends) || json_array_size(backends) == 0) {
                printf("no backends\n");
                return 0;
        }
        r = output_table_new(ELEMENTSOF(headers), headers, &t);
        if (r < 0)
                return r;
        output_table_align_right(t, 3);
        output_table_align_right(t, 4);
        output_table_align_right(t, 6);
        json_array_foreach(backends, i, b) {
                r = add_backend_row(t, b);
                if (r < 0)
                        return r;
        }
        return output_table_flush(t, stdout);
}

/*
 * agentctl table [SERVICE]: the table this agent holds. Version 0 means no
 * leader has published one yet; that is a state to report, not an error.
 */
int agentctl_table(struct agentctl *ctl, int argc, char **argv) {
        const json_t *services, *svc;
        const char *service = NULL, *leader, *digest;
        json_int_t term = 0, version = 0;
        json_t *data = NULL;
        char tv[96];
        size_t i;
        int r;

        r = parse_one_arg(ctl, argc, argv, "service", true, &service, NULL, NULL);
        if (r != AGENTCTL_CONTINUE)
                return r;
        r = call_with(ctl, "table", "service", service, &data);
        if (r != 0)
                return r;
        if (ctl->json) {
                r = output_json(data, false);
                json_decref(data);
                return agentctl_exit_status(r);
        }

        services = json_object_get(data, "services");
        if (!output_field_int(data, "term", &term) || !output_field_int(data, "version", &version) ||
            !json_is_array(services)) {
                json_decref(data);
                agentctl_error("table: malformed reply from agentd on %s", ctl->socket_path);
                return AGENTCTL_EXIT_ERROR;
        }
        if (version == 0 && json_array_size(services) == 0) {
                json_decref(data);
                printf("no balancer table yet (no leader has published one)\n");
                return AGENTCTL_EXIT_OK;
        }

        leader = output_field_str(data, "leader");
        digest = output_field_str(data, "digest");
        printf("table term %" JSON_INTEGER_FORMAT " version %" JSON_INTEGER_FORMAT " digest %s, leader %s, %s\n",
               term, version, digest ? digest : "-", leader ? leader : "none",
               json_is_true(json_object_get(data, "current")) ? "current" : "NOT current");
        snprintf(tv, sizeof(tv), "term %" JSON_INTEGER_FORMAT " version %" JSON_INTEGER_FORMAT, term, version);
        r = 0;
        json_array_foreach(services, i, svc) {
                r = print_service(svc, tv);
                if (r < 0)
                        break;
        }
        json_decref(data);
        return agentctl_exit_status(r);
}

/*
 * agentctl pick SERVICE [--client ADDR]: "10.0.0.1:8080 (n1 web@8080.service)",
 * "[fd00::1]:8080 (...)" for IPv6. --client matters to the algorithms that
 * hash the client (consistent hashing); it must be an address, checked here
 * so a typo is a usage error rather than a silently different pick.
 */
int agentctl_pick(struct agentctl *ctl, int argc, char **argv) {
        const char *service = NULL, *client = NULL, *addr, *node, *inst;
        json_t *args, *data = NULL;
        json_int_t port = 0;
        int r;

        r = parse_one_arg(ctl, argc, argv, "service", false, &service, NULL, &client);
        if (r != AGENTCTL_CONTINUE)
                return r;
        args = json_pack("{s:s, s:s*}", "service", service, "client", client);
        if (!args) {
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        r = agentctl_call(ctl, "pick", args, &data);
        json_decref(args);
        if (r != 0)
                return r;
        if (ctl->json) {
                r = output_json(data, false);
                json_decref(data);
                return agentctl_exit_status(r);
        }
        addr = output_field_str(data, "address");
        node = output_field_str(data, "node");
        inst = output_field_str(data, "instance");
        if (!addr || !output_field_int(data, "port", &port)) {
                json_decref(data);
                agentctl_error("pick: malformed reply from agentd on %s", ctl->socket_path);
                return AGENTCTL_EXIT_ERROR;
        }
        printf("%s%s%s:%" JSON_INTEGER_FORMAT " (%s %s)\n", strchr(addr, ':') ? "[" : "", addr,
               strchr(addr, ':') ? "]" : "", port, node ? node : "-", inst ? inst : "-");
        json_decref(data);
        return agentctl_exit_status(0);
}

/*
 * agentctl drain NODE [--ttl DURATION]: the daemon answers once the drained
 * node has confirmed (or with a timeout error after 3 s), so the line printed
 * means the drain is in effect, not merely requested.
 */
int agentctl_drain(struct agentctl *ctl, int argc, char **argv) {
        const char *node = NULL, *until;
        uint64_t ttl_us = 0;
        json_t *args, *data = NULL;
        int r;

        r = parse_one_arg(ctl, argc, argv, "node", false, &node, &ttl_us, NULL);
        if (r != AGENTCTL_CONTINUE)
                return r;
        args = ttl_us > 0 ? json_pack("{s:s, s:I}", "node", node, "ttl_us", (json_int_t) ttl_us)
                          : json_pack("{s:s}", "node", node);
        if (!args) {
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        r = agentctl_call(ctl, "drain", args, &data);
        json_decref(args);
        if (r != 0)
                return r;
        if (ctl->json)
                r = output_json(data, false);
        else {
                until = output_field_str(data, "until");
                printf("%s draining until %s\n", output_field_str(data, "node") ? output_field_str(data, "node") : node,
                       until ? until : "undrain");
                r = 0;
        }
        json_decref(data);
        return agentctl_exit_status(r);
}

int agentctl_undrain(struct agentctl *ctl, int argc, char **argv) {
        const char *node = NULL;
        json_t *data = NULL;
        int r;

        r = parse_one_arg(ctl, argc, argv, "node", false, &node, NULL, NULL);
        if (r != AGENTCTL_CONTINUE)
                return r;
        r = call_with(ctl, "undrain", "node", node, &data);
        if (r != 0)
                return r;
        if (ctl->json)
                r = output_json(data, false);
        else {
                printf("%s undrained\n", output_field_str(data, "node") ? output_field_str(data, "node") : node);
                r = 0;
        }
        json_decref(data);
        return agentctl_exit_status(r);
}
