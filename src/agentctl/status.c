/*
 * agentctl status and agentctl version: what the local agent is and how it
 * is doing.
 */
#include <errno.h>
#include <string.h>

#include "agentctl/agentctl.h"

/* Field accessors that tolerate a daemon newer or older than this agentctl. */
static const char *str_field(const json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));

        return s ? s : "-";
}

static const char *int_field(const json_t *o, const char *key, char *buf, size_t len) {
        const json_t *v = json_object_get(o, key);

        if (!json_is_integer(v))
                return "-";
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
}

static const char *bool_field(const json_t *o, const char *key) {
        const json_t *v = json_object_get(o, key);

        if (!json_is_boolean(v))
                return "-";
        return json_is_true(v) ? "yes" : "no";
}

/* "degraded (store_recovered, ...)" so the reason is on the same line as the state. */
static int add_state(struct output_table *t, const json_t *data) {
        const char *state = str_field(data, "state");
        const json_t *reasons = json_object_get(data, "degraded");
        _cleanup_free_ char *list = NULL;
        size_t len = 0, i;
        const json_t *v;
        FILE *f;

        if (!json_is_array(reasons) || json_array_size(reasons) == 0)
                return output_kv(t, "state", "%s", state);

        f = open_memstream(&list, &len);
        if (!f)
                return -ENOMEM;
        json_array_foreach(reasons, i, v)
                fprintf(f, "%s%s", i > 0 ? ", " : "", json_is_string(v) ? json_string_value(v) : "?");
        if (fclose(f) != 0)
                return -ENOMEM;
        return output_kv(t, "state", "%s (%s)", state, list);
}

static int add_uptime(struct output_table *t, const json_t *data) {
        const json_t *up = json_object_get(data, "uptime_seconds");
        const char *since = json_string_value(json_object_get(data, "started_at"));
        char buf[64];

        if (!json_is_integer(up) || json_integer_value(up) < 0)
                return output_kv(t, "uptime", "-");
        output_format_seconds((uint64_t) json_integer_value(up), buf, sizeof(buf));
        if (since)
                return output_kv(t, "uptime", "%s (since %s)", buf, since);
        return output_kv(t, "uptime", "%s", buf);
}

static int add_control(struct output_table *t, const json_t *data) {
        static const struct {
                const char *key;
                const char *label;
        } counters[] = {
                { "clients",      "connected" },
                { "accepted",     "accepted" },
                { "refused_busy", "refused busy" },
                { "bad_requests", "bad requests" },
                { "denied",       "denied" },
                { "timeouts",     "timed out" },
        };
        const json_t *control = json_object_get(data, "control");
        _cleanup_free_ char *line = NULL;
        size_t len = 0;
        bool first = true;
        FILE *f;

        if (!json_is_object(control))
                return 0;
        f = open_memstream(&line, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(counters); i++) {
                const json_t *v = json_object_get(control, counters[i].key);

                if (!json_is_integer(v))
                        continue;
                fprintf(f, "%s%" JSON_INTEGER_FORMAT " %s", first ? "" : ", ",
                        json_integer_value(v), counters[i].label);
                first = false;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (first)
                return 0;
        return output_kv(t, "control", "%s", line);
}

/* "3 of 5 voters alive, 3 needed": why there is or is not a leader. */
static int add_quorum(struct output_table *t, const json_t *data) {
        const json_t *q = json_object_get(data, "quorum");
        json_int_t have, need;

        if (!output_field_int(q, "have", &have) || !output_field_int(q, "need", &need))
                return 0;
        return output_kv(t, "quorum", "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " needed%s", have, need,
                         have < need ? " (lost)" : "");
}

/* "4 alive, 1 dead (12 packets rejected)": the cluster at a glance. */
static int add_members(struct output_table *t, const json_t *data) {
        static const char *const states[] = { "alive", "suspect", "dead", "left" };
        const json_t *members = json_object_get(data, "members");
        const json_t *gossip = json_object_get(data, "gossip");
        const json_t *rejected = json_object_get(gossip, "rejected");
        _cleanup_free_ char *line = NULL;
        size_t len = 0;
        bool first = true;
        FILE *f;

        if (!json_is_object(members))
                return 0;
        f = open_memstream(&line, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(states); i++) {
                const json_t *v = json_object_get(members, states[i]);

                /* Alive always shows; the others only when there are some. */
                if (!json_is_integer(v) || (i > 0 && json_integer_value(v) == 0))
                        continue;
                fprintf(f, "%s%" JSON_INTEGER_FORMAT " %s", first ? "" : ", ", json_integer_value(v), states[i]);
                first = false;
        }
        if (json_is_integer(rejected) && json_integer_value(rejected) > 0)
                fprintf(f, " (%" JSON_INTEGER_FORMAT " packets rejected)", json_integer_value(rejected));
        if (fclose(f) != 0)
                return -ENOMEM;
        return output_kv(t, "members", "%s", line);
}

/*
 * "term 3 version 7 (current), 2 services": the balancer table this agent
 * holds. Agents older than the balancer send no "table": no line then.
 */
static int add_table(struct output_table *t, const json_t *data) {
        const json_t *table = json_object_get(data, "table");
        json_int_t term = 0, version = 0, services = 0;

        if (!json_is_object(table))
                return 0;
        (void) output_field_int(table, "term", &term);
        (void) output_field_int(table, "version", &version);
        (void) output_field_int(table, "services", &services);
        return output_kv(t, "table", "term %" JSON_INTEGER_FORMAT " version %" JSON_INTEGER_FORMAT " (%s), %"
                         JSON_INTEGER_FORMAT " service%s", term, version,
                         json_is_true(json_object_get(table, "current")) ? "current" : "NOT current", services,
                         services == 1 ? "" : "s");
}

static int print_status(const json_t *data) {
        _cleanup_table_ struct output_table *t = NULL;
        const json_t *leader = json_object_get(data, "leader");
        const json_t *plaintext = json_object_get(data, "plaintext");
        char b1[32], b2[32];
        int r;

        r = output_table_new(2, NULL, &t);
        if (r < 0)
                return r;
        if ((r = output_kv(t, "node", "%s", str_field(data, "node"))) < 0 ||
            (r = output_kv(t, "cluster", "%s", str_field(data, "cluster"))) < 0 ||
            (r = add_state(t, data)) < 0 ||
            (r = output_kv(t, "leader", "%s", json_is_string(leader) ? json_string_value(leader) : "none")) < 0 ||
            (r = output_kv(t, "term", "%s", int_field(data, "term", b1, sizeof(b1)))) < 0 ||
            (r = add_quorum(t, data)) < 0 ||
            (r = add_table(t, data)) < 0 ||
            (r = output_kv(t, "version", "%s", str_field(data, "version"))) < 0 ||
            (r = output_kv(t, "pid", "%s", int_field(data, "pid", b2, sizeof(b2)))) < 0 ||
            (r = add_uptime(t, data)) < 0 ||
            (r = output_kv(t, "config", "%s", str_field(data, "config"))) < 0 ||
            (r = output_kv(t, "state db", "%s", str_field(data, "state_db"))) < 0 ||
            (r = output_kv(t, "voter", "%s", bool_field(data, "voter"))) < 0 ||
            (r = output_kv(t, "role", "%s", str_field(data, "role"))) < 0 ||
            (r = output_kv(t, "services", "%s", int_field(data, "services", b1, sizeof(b1)))) < 0 ||
            (r = output_kv(t, "events stored", "%s", int_field(data, "events_stored", b2, sizeof(b2)))) < 0 ||
            (r = add_control(t, data)) < 0 ||
            (r = add_members(t, data)) < 0)
                return r;
        if (json_is_true(plaintext) &&
            (r = output_kv(t, "warning", "cluster traffic is not encrypted (no cluster.keyring)")) < 0)
                return r;
        return output_table_flush(t, stdout);
}

/* Exits 3 when the agent answers but says it is degraded, in text and JSON alike. */
int agentctl_status(struct agentctl *ctl, int argc, char **argv) {
        json_t *data = NULL;
        const char *state;
        int r;

        r = agentctl_fetch(ctl, argc, argv, "status", &data);
        if (r != AGENTCTL_CONTINUE)
                return r;

        r = ctl->json ? output_json(data, false) : print_status(data);
        state = json_string_value(json_object_get(data, "state"));
        if (r == 0 && state && strcmp(state, "degraded") == 0)
                r = AGENTCTL_EXIT_DEGRADED;
        json_decref(data);
        return r < 0 ? agentctl_exit_status(r) : r;
}

/*
 * Always exits 0 when agentctl itself is fine: "which versions are these"
 * must be answerable while the daemon is down, which is when it is asked.
 */
int agentctl_version(struct agentctl *ctl, int argc, char **argv) {
        _cleanup_free_ char *err = NULL;
        _cleanup_table_ struct output_table *t = NULL;
        json_t *data = NULL, *doc;
        const char *daemon = NULL;
        int r, rq;

        r = agentctl_parse_no_args(ctl, argc, argv);
        if (r != AGENTCTL_CONTINUE)
                return r;

        rq = agentctl_request(ctl, "version", NULL, &data, &err);
        if (rq == -ENOMEM) {
                agentctl_error("out of memory");
                return AGENTCTL_EXIT_ERROR;
        }
        if (rq == 0)
                daemon = json_string_value(json_object_get(data, "version"));

        if (ctl->json) {
                doc = json_pack("{s:s, s:s?}", "agentctl", PACKAGE_VERSION, "agentd", daemon);
                json_decref(data);
                if (!doc) {
                        agentctl_error("out of memory");
                        return AGENTCTL_EXIT_ERROR;
                }
                r = output_json(doc, false);
                json_decref(doc);
                return agentctl_exit_status(r);
        }

        r = output_table_new(2, NULL, &t);
        if (r == 0)
                r = output_kv(t, "agentctl", "%s", PACKAGE_VERSION);
        if (r == 0) {
                if (daemon)
                        r = output_kv(t, "agentd", "%s", daemon);
                else if (rq == -ENOENT || rq == -ECONNREFUSED || rq == -ENOTDIR)
                        r = output_kv(t, "agentd", "not running (%s)", ctl->socket_path);
                else if (rq == 0)
                        r = output_kv(t, "agentd", "unknown (no version in the reply)");
                else
                        r = output_kv(t, "agentd", "unknown (%s)", err);
        }
        json_decref(data);
        if (r == 0)
                r = output_table_flush(t, stdout);
        return agentctl_exit_status(r);
}
