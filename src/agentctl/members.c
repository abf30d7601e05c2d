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

        /* Anything else in the list is from a daemon this agentctl cannot read: skip it. */
        if (!json_is_object(m))
                return 0;
        if (output_field_int(m, "incarnation", &v))
                snprintf(inc, sizeof(inc), "%" JSON_INTEGER_FORMAT, v);
        if (output_field_int(m, "last_change_ago_us", &v) && v >= 0)
                snprintf(since, sizeof(since), "%s ago", format_span((uint64_t) v, span, sizeof(span)));
        if (output_field_int(m, "rtt_us", &v) && v >= 0)
                format_rtt((uint64_t) v, rtt, sizeof(rtt));
        snprintf(name, sizeof(name), "%s%s", output_field_str(m, "name") ? output_field_str(m, "name") : "-",
                 json_is_true(json_object_get(m, "self")) ? " (self)" : "");
        return output_table_add(t, (const char *const[]) {
                name, output_field_str(m, "addr"), output_field_str(m, "state"), inc, since, rtt,
        });
}

/* A summary line under the table, as operators read it first: "5 members: 4 alive, 1 dead". */
static void print_summary(const json_t *members) {
        static const char *const states[] = { "alive", "suspect", "dead", "left" };
        size_t counts[ELEMENTSOF(states)] = { 0 }, i;
        const json_t *m;
        bool first = true;

        json_array_foreach(members, i, m) {
                const char *s = output_field_str(m, "state");

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
        static const struct agentctl_list list = {
                .verb = "members",
                .key = "members",
                .n_cols = ELEMENTSOF(headers),
                .headers = headers,
                .right = 1u << 3,               /* INCARNATION */
                .json_needs_list = true,
                .add_row = add_member_row,
                .summary = print_summary,
        };

        return agentctl_list(ctl, argc, argv, &list);
}

/*
 * agentctl leader: who leads in which term, and whether a quorum of voters
 * is there to elect or keep one. --json prints the daemon's data as is.
 */
int agentctl_leader(struct agentctl *ctl, int argc, char **argv) {
        _cleanup_table_ struct output_table *t = NULL;
        const json_t *q;
        json_int_t term = 0, have = 0, need = 0;
        const char *leader;
        json_t *data = NULL;
        int r;

        r = agentctl_fetch(ctl, argc, argv, "leader", &data);
        if (r != AGENTCTL_CONTINUE)
                return r;
        if (ctl->json) {
                r = output_json(data, false);
                json_decref(data);
                return agentctl_exit_status(r);
        }
        leader = output_field_str(data, "leader");
        (void) output_field_int(data, "term", &term);
        q = json_object_get(data, "quorum");
        r = output_table_new(2, NULL, &t);
        if (r == 0)
                r = output_kv(t, "leader", "%s", leader ? leader : "none");
        if (r == 0)
                r = output_kv(t, "term", "%" JSON_INTEGER_FORMAT, term);
        if (r == 0)
                r = output_kv(t, "state", "%s", output_field_str(data, "state") ? output_field_str(data, "state") : "-");
        if (r == 0 && output_field_int(q, "have", &have) && output_field_int(q, "need", &need))
                r = output_kv(t, "quorum", "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " needed%s", have,
                              need, have < need ? " (lost)" : "");
        if (r == 0)
                r = output_kv(t, "voter", "%s", json_is_true(json_object_get(data, "voter")) ? "yes" : "no");
        if (r == 0)
                r = output_kv(t, "active", "%s", json_is_true(json_object_get(data, "active")) ? "yes" : "no");
        if (r == 0)
                r = output_table_flush(t, stdout);
        json_decref(data);
        return agentctl_exit_status(r);
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
                was = output_field_str(data, "previous_state");
                printf("%s is now marked left%s%s%s\n", node, was ? " (was " : "", was ? was : "", was ? ")" : "");
                r = fflush(stdout) == 0 ? 0 : -EIO;
        }
        json_decref(data);
        return agentctl_exit_status(r);
}
