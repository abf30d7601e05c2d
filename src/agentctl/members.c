/*
 * agentctl members and force-leave: the cluster as this agent's gossip sees
 * it, and the operator's way to remove a member that will not come back.
 * The daemon sends each member's last change both as an RFC 3339 stamp and
 * as µs ago, so the text output says "4.1s ago" without trusting this
 * host's clock to match.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "agentctl/agentctl.h"

static const char *str_field(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static bool int_field(const json_t *o, const char *key, json_int_t *ret) {
        const json_t *v = json_object_get(o, key);

        if (!json_is_integer(v))
                return false;
        *ret = json_integer_value(v);
        return true;
}

/* "850ms", "3.2s", "4m10s", "2h5m", "3d4h". */
static const char *format_span(uint64_t us, char *buf, size_t len) {
        if (us < USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 "ms", us / USEC_PER_MSEC);
        else if (us < 10 * USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", us / USEC_PER_SEC,
                         (us % USEC_PER_SEC) / (100 * USEC_PER_MSEC));
        else if (us < USEC_PER_MIN)
                snprintf(buf, len, "%" PRIu64 "s", us / USEC_PER_SEC);
        else if (us < USEC_PER_HOUR)
                snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", us / USEC_PER_MIN,
                         (us % USEC_PER_MIN) / USEC_PER_SEC);
        else if (us < USEC_PER_DAY)
                snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", us / USEC_PER_HOUR,
                         (us % USEC_PER_HOUR) / USEC_PER_MIN);
        else
                snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", us / USEC_PER_DAY,
                         (us % USEC_PER_DAY) / USEC_PER_HOUR);
        return buf;
}

/* Round-trip times are sub-millisecond on a LAN: "0.42ms", "12.3ms", "1.2s". */
static const char *format_rtt(uint64_t us, char *buf, size_t len) {
        if (us < 10 * USEC_PER_MSEC)
                snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "ms", us / USEC_PER_MSEC, (us % USEC_PER_MSEC) / 10);
        else if (us < USEC_PER_SEC)
                snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "ms", us / USEC_PER_MSEC, (us % USEC_PER_MSEC) / 100);
        else
                format_span(us, buf, len);
        return buf;
}

static int add_member_row(struct output_table *t, const json_t *m) {
        char inc[32] = "-", since[48] = "-", rtt[32] = "-", span[32], name[96];
        json_int_t v;

        if (int_field(m, "incarnation", &v))
                snprintf(inc, sizeof(inc), "%" JSON_INTEGER_FORMAT, v);
        if (int_field(m, "last_change_ago_us", &v) && v >= 0)
                snprintf(since, sizeof(since), "%s ago", format_span((uint64_t) v, span, sizeof(span)));
        if (int_field(m, "rtt_us", &v) && v >= 0)
                format_rtt((uint64_t) v, rtt, sizeof(rtt));
        snprintf(name, sizeof(name), "%s%s", str_field(m, "name") ? str_field(m, "name") : "-",
                 json_is_true(json_object_get(m, "self")) ? " (self)" : "");
        return output_table_add(t, (const char *const[]) {
                name, str_field(m, "addr"), str_field(m, "state"), inc, since, rtt,
        });
}

/* A summary line under the table, as operators read it first: "5 members: 4 alive, 1 dead". */
static void print_summary(const json_t *members) {
        static const char *const states[] = { "alive", "suspect", "dead", "left" };
        size_t counts[ELEMENTSOF(states)] = { 0 }, i;
        const json_t *m;
        bool first = true;

        json_array_foreach(members, i, m) {
                const char *s = str_field(m, "state");

                for (size_t k = 0; s && k < ELEMENTSOF(states); k++)
                        if (strcmp(s, states[k]) == 0)
                                counts[k]++;
        }
        printf("\n%zu member%s:", json_array_size(members), json_array_size(members) == 1 ? "" : "s");
        for (size_t k = 0; k < ELEMENTSOF(states); k++) {
                if (!counts[k])
                        continue;
                printf("%s %zu %s", first ? "" : ",", counts[k], states[k]);
                first = false;
        }
        printf("\n");
}

int agentctl_members(struct agentctl *ctl, int argc, char **argv) {
        static const char *const headers[] = { "NAME", "ADDR", "STATE", "INCARNATION", "SINCE", "RTT" };
        _cleanup_table_ struct output_table *t = NULL;
        const json_t *members, *m;
        json_t *data = NULL;
        size_t i;
        int r;

        r = agentctl_parse_no_args(ctl, argc, argv);
        if (r != AGENTCTL_CONTINUE)
                return r;
        r = agentctl_call(ctl, "members", NULL, &data);
        if (r != 0)
                return r;

        members = json_object_get(data, "members");
        if (!json_is_array(members)) {
                json_decref(data);
                agentctl_error("members: malformed reply from agentd on %s", ctl->socket_path);
                return AGENTCTL_EXIT_ERROR;
        }
        if (ctl->json) {
                r = output_json(data, false);
                json_decref(data);
                return r < 0 ? AGENTCTL_EXIT_ERROR : AGENTCTL_EXIT_OK;
        }

        r = output_table_new(ELEMENTSOF(headers), headers, &t);
        if (r == 0)
                output_table_align_right(t, 3);
        json_array_foreach(members, i, m) {
                if (r < 0)
                        break;
                if (json_is_object(m))
                        r = add_member_row(t, m);
        }
        if (r == 0)
                r = output_table_flush(t, stdout);
        if (r == 0)
                print_summary(members);
        json_decref(data);
        if (r == -ENOMEM)
                agentctl_error("out of memory");
        return r < 0 ? AGENTCTL_EXIT_ERROR : AGENTCTL_EXIT_OK;
}

/*
 * The daemon refuses a node it does not know, and itself, with
 * invalid_argument; agentctl relays that as it is.
 */
int agentctl_force_leave(struct agentctl *ctl, int argc, char **argv) {
        json_t *args, *data = NULL;
        const char *node, *was;
        int r;

        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
                return agentctl_verb_help(ctl);
        if (argc < 2)
                return agentctl_usage_error(ctl, "which node? (agentctl force-leave NODE)");
        if (argv[1][0] == '-')
                return agentctl_usage_error(ctl, "unknown option '%s'", argv[1]);
        if (argc > 2)
                return agentctl_usage_error(ctl, "unexpected argument '%s'", argv[2]);
        node = argv[1];

        args = json_pack("{s:s}", "node", node);
        if (!args) {
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        r = agentctl_call(ctl, "force-leave", args, &data);
        json_decref(args);
        if (r != 0)
                return r;
        if (ctl->json) {
                r = output_json(data, false);
        } else {
                was = str_field(data, "previous_state");
                printf("%s is now marked left%s%s%s\n", node, was ? " (was " : "", was ? was : "", was ? ")" : "");
                r = fflush(stdout) == 0 ? 0 : -EIO;
        }
        json_decref(data);
        return r < 0 ? AGENTCTL_EXIT_ERROR : AGENTCTL_EXIT_OK;
}
