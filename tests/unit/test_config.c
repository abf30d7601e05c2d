/*
 * Unit tests for src/agentd/config.c: a full config read back value by
 * value, the defaults, one bad input per class of error with its exact
 * "FILE:LINE: message", file handling, and the reload rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "agentd/config.h"
#include "unit.h"

/* The smallest valid config; most bad-input cases start from it. */
#define NODE    "node = { name = \"n1\"; bind = \"127.0.0.1:7946\"; };\n"
#define CLUSTER "cluster = { name = \"demo\"; };\n"
#define BASE    NODE CLUSTER
/* A valid service entry, to be completed with more keys. */
#define SVC(extra) \
        "services = (\n{ name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 80;\n" extra " }\n);\n"

/* The same with a template instance, for the placement keys. */
#define TSVC(extra) \
        "services = (\n{ name = \"web\"; unit = \"web@80.service\"; address = \"10.0.0.1\"; port = 80;\n" extra " }\n);\n"

static const char full_config[] =
        "# every key, none at its default\n"
        "node = {\n"
        "        name = \"node-1\";\n"
        "        bind = \"[::1]:7000\";\n"
        "        state_dir = \"/srv/agentd\";\n"
        "        voter = false;\n"
        "        role = \"member\";\n"
        "};\n"
        "cluster = {\n"
        "        name = \"prod_eu\";\n"
        "        join = [ \"10.0.0.2:7946\", \"node3.example.com:7946\", \"[fd00::3]:7946\" ];\n"
        "        keyring = \"/etc/agentd/keyring\";\n"
        "        profile = \"wan\";\n"
        "};\n"
        "control = { socket = \"/run/a.sock\"; group = \"agentd\"; admin_group = \"wheel\"; };\n"
        "store = { synchronous = \"full\"; events_max_age = \"7d\"; events_max_rows = 5000L; };\n"
        "systemd = { bus = \"user\"; };\n"
        "log = { target = \"stderr\"; level = \"debug\"; };\n"
        "services = (\n"
        "  { name = \"web\"; unit = \"web@8080.service\"; address = \"127.0.0.1\"; port = 0x1F90;\n"
        "    weight = 10; algorithm = \"sourcehash\"; replicas = 3;\n"
        "    check = { type = \"http\"; path = \"/health?full=1\"; expect_body = \"ok\"; status_min = 200;\n"
        "              status_max = 204; interval = \"1.5s\"; timeout = \"250ms\"; rise = 4; fall = 5; };\n"
        "    restart = { limit = 7; window = \"2m\"; backoff = \"50ms\"; backoff_max = \"1h\"; };\n"
        "    breaker = { failures = 9; open_for = \"30s\"; half_open_probes = 2; }; },\n"
        "  { name = \"db\"; unit = \"db.service\"; address = \"::1\"; port = 5432;\n"
        "    check = { type = \"exec\"; command = \"/usr/bin/pg_isready -q\"; interval = \"5s\"; }; },\n"
        "  { name = \"cache\"; unit = \"cache.service\"; address = \"10.0.0.1\"; port = 11211; weight = 0;\n"
        "    algorithm = \"wlc\"; check = { type = \"tcp\"; }; }\n"
        ");\n";

static bool streq_null(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static struct agentd_config *load_ok(const char *text) {
        struct agentd_config *c = NULL;
        char *error = NULL;
        int r = config_load_string(text, "t.conf", &c, &error);

        if (r < 0)
                fprintf(stderr, "\n  unexpected error %d: %s\n", r, error ? error : "(none)");
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_PTR_NULL(error);
        free(error);
        return c;
}

static void test_full(void) {
        struct agentd_config *c = load_ok(full_config);
        const struct config_service *s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(c->path, "t.conf");
        CU_ASSERT_STRING_EQUAL(c->node_name, "node-1");
        CU_ASSERT_STRING_EQUAL(c->node_bind, "[::1]:7000");
        CU_ASSERT_STRING_EQUAL(c->bind_host, "::1");
        CU_ASSERT_EQUAL(c->bind_port, 7000);
        CU_ASSERT_STRING_EQUAL(c->state_dir, "/srv/agentd");
        CU_ASSERT_FALSE(c->voter);
        CU_ASSERT_EQUAL(c->role, CONFIG_ROLE_MEMBER);
        CU_ASSERT_STRING_EQUAL(c->cluster_name, "prod_eu");
        CU_ASSERT_EQUAL_FATAL(c->n_join, 3);
        CU_ASSERT_STRING_EQUAL(c->join[0], "10.0.0.2:7946");
        CU_ASSERT_STRING_EQUAL(c->join[1], "node3.example.com:7946");
        CU_ASSERT_STRING_EQUAL(c->join[2], "[fd00::3]:7946");
        CU_ASSERT_STRING_EQUAL(c->keyring, "/etc/agentd/keyring");
        CU_ASSERT_EQUAL(c->profile, CONFIG_PROFILE_WAN);
        CU_ASSERT_STRING_EQUAL(c->control_socket, "/run/a.sock");
        CU_ASSERT_STRING_EQUAL(c->control_group, "agentd");
        CU_ASSERT_STRING_EQUAL(c->admin_group, "wheel");
        CU_ASSERT_EQUAL(c->synchronous, CONFIG_SYNC_FULL);
        CU_ASSERT_EQUAL(c->events_max_age_us, 7 * USEC_PER_DAY);
        CU_ASSERT_EQUAL(c->events_max_rows, 5000);
        CU_ASSERT_EQUAL(c->bus, CONFIG_BUS_USER);
        CU_ASSERT_EQUAL(c->log_target, CONFIG_LOG_STDERR);
        CU_ASSERT_EQUAL(c->log_level, CONFIG_LOG_DEBUG);
        CU_ASSERT_EQUAL_FATAL(c->n_services, 3);

        s = &c->services[0];
        CU_ASSERT_STRING_EQUAL(s->name, "web");
        CU_ASSERT_STRING_EQUAL(s->unit, "web@8080.service");
        CU_ASSERT_STRING_EQUAL(s->address, "127.0.0.1");
        CU_ASSERT_EQUAL(s->port, 8080);
        CU_ASSERT_EQUAL(s->weight, 10);
        CU_ASSERT_EQUAL(s->algorithm, CONFIG_ALG_SOURCEHASH);
        CU_ASSERT_EQUAL(s->replicas, 3);
        CU_ASSERT_STRING_EQUAL(s->template_unit, "web@.service");
        CU_ASSERT_EQUAL(s->port_min, 8080);
        CU_ASSERT_EQUAL(s->port_max, 8179);
        CU_ASSERT_TRUE(config_service_has_static(s));
        CU_ASSERT_EQUAL(s->line, 20);
        CU_ASSERT_EQUAL(s->check.type, CONFIG_CHECK_HTTP);
        CU_ASSERT_STRING_EQUAL(s->check.path, "/health?full=1");
        CU_ASSERT_STRING_EQUAL(s->check.expect_body, "ok");
        CU_ASSERT_PTR_NULL(s->check.command);
        CU_ASSERT_EQUAL(s->check.status_min, 200);
        CU_ASSERT_EQUAL(s->check.status_max, 204);
        CU_ASSERT_EQUAL(s->check.interval_us, 1500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(s->check.timeout_us, 250 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(s->check.rise, 4);
        CU_ASSERT_EQUAL(s->check.fall, 5);
        CU_ASSERT_EQUAL(s->restart.limit, 7);
        CU_ASSERT_EQUAL(s->restart.window_us, 2 * USEC_PER_MIN);
        CU_ASSERT_EQUAL(s->restart.backoff_us, 50 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(s->restart.backoff_max_us, USEC_PER_HOUR);
        CU_ASSERT_EQUAL(s->breaker.failures, 9);
        CU_ASSERT_EQUAL(s->breaker.open_for_us, 30 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->breaker.half_open_probes, 2);

        s = &c->services[1];
        CU_ASSERT_STRING_EQUAL(s->name, "db");
        CU_ASSERT_STRING_EQUAL(s->address, "::1");
        CU_ASSERT_EQUAL(s->line, 26);
        CU_ASSERT_EQUAL(s->check.type, CONFIG_CHECK_EXEC);
        CU_ASSERT_STRING_EQUAL(s->check.command, "/usr/bin/pg_isready -q");
        CU_ASSERT_PTR_NULL(s->check.path);
        CU_ASSERT_EQUAL(s->check.interval_us, 5 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->check.timeout_us, USEC_PER_SEC);

        s = &c->services[2];
        CU_ASSERT_EQUAL(s->weight, 0);
        CU_ASSERT_EQUAL(s->algorithm, CONFIG_ALG_WLC);
        CU_ASSERT_EQUAL(s->check.type, CONFIG_CHECK_TCP);
        CU_ASSERT_PTR_NULL(s->check.path);
        config_free(c);
}

static void test_defaults(void) {
        struct agentd_config *c = load_ok(BASE SVC(""));
        const struct config_service *s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(c->state_dir, "/var/lib/agentd");
        CU_ASSERT_TRUE(c->voter);
        CU_ASSERT_EQUAL(c->role, CONFIG_ROLE_MEMBER);
        CU_ASSERT_EQUAL(c->n_join, 0);
        CU_ASSERT_PTR_NULL(c->keyring);
        CU_ASSERT_EQUAL(c->profile, CONFIG_PROFILE_LAN);
        CU_ASSERT_STRING_EQUAL(c->control_socket, "/run/agentd/agentd.sock");
        CU_ASSERT_PTR_NULL(c->control_group);
        CU_ASSERT_PTR_NULL(c->admin_group);
        CU_ASSERT_EQUAL(c->synchronous, CONFIG_SYNC_NORMAL);
        CU_ASSERT_EQUAL(c->events_max_age_us, 30 * USEC_PER_DAY);
        CU_ASSERT_EQUAL(c->events_max_rows, 1000000);
        CU_ASSERT_EQUAL(c->bus, CONFIG_BUS_SYSTEM);
        CU_ASSERT_EQUAL(c->log_target, CONFIG_LOG_JOURNAL);
        CU_ASSERT_EQUAL(c->log_level, CONFIG_LOG_INFO);
        CU_ASSERT_EQUAL_FATAL(c->n_services, 1);

        s = &c->services[0];
        CU_ASSERT_EQUAL(s->weight, 1);
        CU_ASSERT_EQUAL(s->algorithm, CONFIG_ALG_WRR);
        CU_ASSERT_EQUAL(s->replicas, 0);
        CU_ASSERT_PTR_NULL(s->template_unit);
        CU_ASSERT_EQUAL(s->port_min, 0);
        CU_ASSERT_EQUAL(s->port_max, 0);
        CU_ASSERT_TRUE(config_service_has_static(s));
        CU_ASSERT_EQUAL(c->election.election_timeout_min_us, 1500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->election.election_timeout_max_us, 3 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(c->election.heartbeat_interval_us, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->election.lease_us, USEC_PER_SEC);
        CU_ASSERT_EQUAL(c->election.lease_guard_us, 50 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(s->check.type, CONFIG_CHECK_SYSTEMD);
        CU_ASSERT_PTR_NULL(s->check.path);
        CU_ASSERT_PTR_NULL(s->check.expect_body);
        CU_ASSERT_PTR_NULL(s->check.command);
        CU_ASSERT_EQUAL(s->check.interval_us, 2 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->check.timeout_us, USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->check.rise, 2);
        CU_ASSERT_EQUAL(s->check.fall, 3);
        CU_ASSERT_EQUAL(s->check.status_min, 200);
        CU_ASSERT_EQUAL(s->check.status_max, 399);
        CU_ASSERT_EQUAL(s->restart.limit, 5);
        CU_ASSERT_EQUAL(s->restart.window_us, 60 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->restart.backoff_us, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(s->restart.backoff_max_us, 30 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->breaker.failures, 5);
        CU_ASSERT_EQUAL(s->breaker.open_for_us, 10 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(s->breaker.half_open_probes, 1);
        config_free(c);

        /* Without a services list there are none; an empty one is the same. */
        c = load_ok(BASE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->n_services, 0);
        CU_ASSERT_PTR_NULL(c->services);
        config_free(c);
        c = load_ok(BASE "services = ( );");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->n_services, 0);
        config_free(c);
        c = load_ok(BASE "services = [ ];");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->n_services, 0);
        config_free(c);

        /* A witness votes and runs nothing. */
        c = load_ok("node = { name = \"w\"; bind = \"0.0.0.0:7946\"; role = \"witness\"; };\n" CLUSTER);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->role, CONFIG_ROLE_WITNESS);
        CU_ASSERT_TRUE(c->voter);
        config_free(c);
}

/* A value left at its default bends to an explicit one it would contradict. */
static void test_adapted_defaults(void) {
        struct agentd_config *c;

        c = load_ok(BASE SVC("check = { interval = \"500ms\"; };"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->services[0].check.interval_us, 500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->services[0].check.timeout_us, 500 * USEC_PER_MSEC);
        config_free(c);

        c = load_ok(BASE SVC("restart = { backoff = \"2m\"; };"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->services[0].restart.backoff_us, 2 * USEC_PER_MIN);
        CU_ASSERT_EQUAL(c->services[0].restart.backoff_max_us, 2 * USEC_PER_MIN);
        config_free(c);

        c = load_ok(BASE SVC("restart = { backoff_max = \"50ms\"; };"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->services[0].restart.backoff_us, 50 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->services[0].restart.backoff_max_us, 50 * USEC_PER_MSEC);
        config_free(c);

        /* Equal values are fine; so are 64-bit and hex integers in range. */
        c = load_ok(BASE TSVC("check = { interval = \"1s\"; timeout = \"1s\"; }; weight = 5L; replicas = 0x10;"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->services[0].weight, 5);
        CU_ASSERT_EQUAL(c->services[0].replicas, 16);
        config_free(c);

        /* Legal extremes of each range. */
        c = load_ok(BASE TSVC("weight = 10000; replicas = 1000;"
                             "check = { interval = \"1h\"; timeout = \"1ms\"; rise = 100; fall = 1; };"
                             "restart = { limit = 1000; window = \"1d\"; backoff = \"1ms\"; backoff_max = \"1d\"; };"
                             "breaker = { failures = 1; open_for = \"10ms\"; half_open_probes = 100; };"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->services[0].check.timeout_us, USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->services[0].restart.backoff_max_us, USEC_PER_DAY);
        config_free(c);
}

struct bad_case {
        const char *text;
        const char *error;
};

static const struct bad_case bad_cases[] = {
        /* syntax, as libconfig reports it */
        { "node = { name = \"n1\" bind };\n",
          "t.conf:1: syntax error" },
        { NODE "cluster = {\n  name = ;\n};\n",
          "t.conf:3: syntax error" },
        { NODE "cluster = { name = \"demo\";\n name = \"again\"; };\n",
          "t.conf:3: duplicate setting name" },
        { NODE CLUSTER "log = { level = \"info\n};\n",
          "t.conf:3: unterminated string (missing closing '\"')" },
        { NODE CLUSTER "log = { level = \"info\\\"; };\n",
          "t.conf:3: unterminated string (missing closing '\"')" },
        /* a syntax error before a lexical problem is reported first */
        { NODE CLUSTER "log = = 5;\nx \"y\";\n",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "log = { level = \"info\" ;; };\n@include \"x\"\n",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "log = { level = \"info\" ;; };\n\"x\n",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "log = { level = \"info\" }; x \"y\";\n",
          "t.conf:3: syntax error" },
        /* a string where no value starts (libconfig would leak it) */
        { NODE CLUSTER "log = { level\n \"info\"; };\n",
          "t.conf:4: syntax error" },
        { NODE CLUSTER "log = { \"level\" = \"info\"; };\n",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "log = { level = \"info\", \"x\" };\n",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "e:1,\"\"",
          "t.conf:3: syntax error" },
        { NODE CLUSTER "a = ( { b = [ ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ) ) ) ) ) ) ) ) ) ) ) ) ) ) ) ] } );\n",
          "t.conf:3: nested too deeply (more than 16 levels)" },
        { NODE "cluster = { name = \"demo\"; join = [ \"10.0.0.1:1\" \"10.0.0.1:2\" ]; };\n",
          "t.conf:2: cluster.join[0]: bad address \"10.0.0.1:110.0.0.1:2\" (use \"host:port\", e.g. \"10.0.0.2:7946\")" },
        { NODE CLUSTER "/* log = {\n level = \"info\"; };\n",
          "t.conf:3: unterminated comment (missing \"*/\")" },
        { NODE CLUSTER "log = { level = \"in\\\\\"; };\n",
          "t.conf:3: log.level: bad value \"in\\\\\" (use one of: err, warning, notice, info, debug)" },
        { NODE CLUSTER "\n  @include \"/etc/passwd\"\n",
          "t.conf:4: @include is not supported; keep the whole configuration in one file" },

        /* unknown keys, at every level */
        { BASE "nodes = { };\n",
          "t.conf:3: unknown key \"nodes\" at top level (did you mean \"node\"?)" },
        { "node = {\n  nmae = \"n1\";\n};\n" CLUSTER,
          "t.conf:2: unknown key \"nmae\" in node (did you mean \"name\"?)" },
        { BASE "control = { frobnicate = 1; };\n",
          "t.conf:3: unknown key \"frobnicate\" in control" },
        { BASE "store = { events_max_ages = \"1d\"; };\n",
          "t.conf:3: unknown key \"events_max_ages\" in store (did you mean \"events_max_age\"?)" },
        { BASE "systemd = { buss = \"user\"; };\n",
          "t.conf:3: unknown key \"buss\" in systemd (did you mean \"bus\"?)" },
        { BASE "log = { levle = \"info\"; };\n",
          "t.conf:3: unknown key \"levle\" in log (did you mean \"level\"?)" },
        { NODE "cluster = { name = \"demo\"; seeds = [ ]; };\n",
          "t.conf:2: unknown key \"seeds\" in cluster" },
        { BASE SVC("prot = 80;"),
          "t.conf:5: unknown key \"prot\" in services[0] (did you mean \"port\"?)" },
        { BASE SVC("check = {\n intervall = \"1s\"; };"),
          "t.conf:6: unknown key \"intervall\" in services[0].check (did you mean \"interval\"?)" },
        { BASE SVC("restart = { limt = 1; };"),
          "t.conf:5: unknown key \"limt\" in services[0].restart (did you mean \"limit\"?)" },
        { BASE SVC("breaker = { open = \"1s\"; };"),
          "t.conf:5: unknown key \"open\" in services[0].breaker" },

        /* missing required keys and groups */
        { CLUSTER,
          "t.conf:1: missing required group \"node\"" },
        { "",
          "t.conf:1: missing required group \"node\"" },
        { NODE,
          "t.conf:1: missing required group \"cluster\"" },
        { "node = {\n  bind = \"127.0.0.1:7946\";\n};\n" CLUSTER,
          "t.conf:1: missing required key \"name\" in node" },
        { "node = { name = \"n1\"; };\n" CLUSTER,
          "t.conf:1: missing required key \"bind\" in node" },
        { NODE "\ncluster = { };\n",
          "t.conf:3: missing required key \"name\" in cluster" },
        { BASE "services = (\n { name = \"web\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: missing required key \"unit\" in services[0]" },
        { BASE "services = (\n { unit = \"web.service\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: missing required key \"name\" in services[0]" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; port = 80; }\n);\n",
          "t.conf:4: missing required key \"address\" in services[0]" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; }\n);\n",
          "t.conf:4: missing required key \"port\" in services[0]" },

        /* wrong types */
        { "node = 5;\n" CLUSTER,
          "t.conf:1: node: expected a group { ... }" },
        { NODE "cluster = ( );\n",
          "t.conf:2: cluster: expected a group { ... }" },
        { "node = { name = \"n1\"; bind = \"127.0.0.1:7946\";\n voter = 1; };\n" CLUSTER,
          "t.conf:2: node.voter: expected a boolean" },
        { "node = { name = \"n1\"; bind = \"127.0.0.1:7946\";\n voter = \"yes\"; };\n" CLUSTER,
          "t.conf:2: node.voter: expected a boolean" },
        { "node = { name = n1; bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: syntax error" },
        { "node = { name = 1; bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.name: expected a string" },
        { "node = { name = \"n1\"; bind = 7946; };\n" CLUSTER,
          "t.conf:1: node.bind: expected a string" },
        { "node = { name = \"n1\"; bind = \"127.0.0.1:7946\"; role = true; };\n" CLUSTER,
          "t.conf:1: node.role: expected a string" },
        { BASE "store = { events_max_rows = 1.5; };\n",
          "t.conf:3: store.events_max_rows: expected an integer" },
        { BASE "store = { events_max_rows = \"100\"; };\n",
          "t.conf:3: store.events_max_rows: expected an integer" },
        { BASE "store = { events_max_age = 86400; };\n",
          "t.conf:3: store.events_max_age: expected a duration string such as \"10s\"" },
        { BASE "control = [ \"x\" ];\n",
          "t.conf:3: control: expected a group { ... }" },
        { NODE "cluster = { name = \"demo\"; join = \"10.0.0.1:7946\"; };\n",
          "t.conf:2: cluster.join: expected a list of \"host:port\" strings" },
        { NODE "cluster = { name = \"demo\"; join = ( \"10.0.0.1:7946\",\n 7946 ); };\n",
          "t.conf:3: cluster.join[1]: expected a \"host:port\" string" },
        { BASE "services = { name = \"web\"; };\n",
          "t.conf:3: services: expected a list ( { ... }, { ... } )" },
        { BASE "services = [ \"web\" ];\n",
          "t.conf:3: services: expected a list ( { ... }, { ... } )" },
        { BASE "services = (\n \"web\" );\n",
          "t.conf:4: services[0]: expected a group { name = ...; ... }" },
        { BASE SVC("check = \"http\";"),
          "t.conf:5: services[0].check: expected a group { ... }" },
        { BASE SVC("weight = \"10\";"),
          "t.conf:5: services[0].weight: expected an integer" },

        /* names */
        { "node = { name = \"N1\"; bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.name: bad name \"N1\" (use 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit)" },
        { "node = { name = \"\"; bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.name: must not be empty" },
        { "node = { name = \"n\\tx\"; bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.name: contains a control character" },
        { "node = { name = \"a123456789012345678901234567890123456789012345678901234567890123\";"
          " bind = \"127.0.0.1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.name: too long (64 bytes, max 63)" },
        { NODE "cluster = { name = \"-demo\"; };\n",
          "t.conf:2: cluster.name: bad name \"-demo\" (use 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit)" },
        { BASE "services = (\n { name = \"my web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].name: bad name \"my web\" (use 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit)" },

        /* addresses */
        { "node = { name = \"n1\"; bind = \"127.0.0.1\"; };\n" CLUSTER,
          "t.conf:1: node.bind: bad address \"127.0.0.1\" (use \"IP:port\", e.g. \"127.0.0.1:7946\" or \"[::1]:7946\")" },
        { "node = { name = \"n1\"; bind = \"127.0.0.1:0\"; };\n" CLUSTER,
          "t.conf:1: node.bind: bad address \"127.0.0.1:0\" (use \"IP:port\", e.g. \"127.0.0.1:7946\" or \"[::1]:7946\")" },
        { "node = { name = \"n1\"; bind = \"::1:7946\"; };\n" CLUSTER,
          "t.conf:1: node.bind: bad address \"::1:7946\" (use \"IP:port\", e.g. \"127.0.0.1:7946\" or \"[::1]:7946\")" },
        { "node = { name = \"n1\"; bind = \"localhost:7946\"; };\n" CLUSTER,
          "t.conf:1: node.bind: \"localhost\" is not an IP address (agentd binds to an address, not a name)" },
        { NODE "cluster = { name = \"demo\"; join = [\n \"10.0.0.1:7946\",\n \"10.0.0.1\" ]; };\n",
          "t.conf:4: cluster.join[1]: bad address \"10.0.0.1\" (use \"host:port\", e.g. \"10.0.0.2:7946\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"web.local\"; port = 80; }\n);\n",
          "t.conf:4: services[0].address: \"web.local\" is not an IP address (use e.g. \"127.0.0.1\" or \"::1\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1:80\"; port = 80; }\n);\n",
          "t.conf:4: services[0].address: \"10.0.0.1:80\" is not an IP address (use e.g. \"127.0.0.1\" or \"::1\")" },

        /* out of range */
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 70000; }\n);\n",
          "t.conf:4: services[0].port: 70000 is out of range (1..65535)" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 0; }\n);\n",
          "t.conf:4: services[0].port: 0 is out of range (1..65535)" },
        /* libconfig alone would read these as 80: the low 32 bits. */
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 4294967376; }\n);\n",
          "t.conf:4: services[0].port: 4294967376 is out of range (1..65535)" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\";\n port = 0x100000050; }\n);\n",
          "t.conf:5: services[0].port: 0x100000050 is out of range (1..65535)" },
        { BASE "store = {\n events_max_rows =\n 5000000000; };\n",
          "t.conf:4: store.events_max_rows: 5000000000 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 5000000000L; };\n",
          "t.conf:3: store.events_max_rows: 5000000000 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 99999999999999999999L; };\n",
          "t.conf:3: store.events_max_rows: 99999999999999999999L is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = -99999999999; };\n",
          "t.conf:3: store.events_max_rows: -99999999999 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = -99999999999999999999999; };\n",
          "t.conf:3: store.events_max_rows: -99999999999999999999999 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 0x80000000; };\n",
          "t.conf:3: store.events_max_rows: 0x80000000 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 0xFFFFFFFFFFFFFFFFFFFFL; };\n",
          "t.conf:3: store.events_max_rows: 0xFFFFFFFFFFFFFFFFFFFFL is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 0x8000000000000000L; };\n",
          "t.conf:3: store.events_max_rows: 0x8000000000000000L is out of range (1..1000000000)" },
        /* Two on one line: each is matched to its own setting. */
        { BASE TSVC("weight = 4294967297; replicas = 1;"),
          "t.conf:5: services[0].weight: 4294967297 is out of range (0..10000)" },
        { BASE SVC("replicas = 4294967297; weight = 1;"),
          "t.conf:5: services[0].replicas: 4294967297 is out of range (0..1000)" },
        { BASE "store = { events_max_rows = -1; };\n",
          "t.conf:3: store.events_max_rows: -1 is out of range (1..1000000000)" },
        { BASE "store = { events_max_rows = 0; };\n",
          "t.conf:3: store.events_max_rows: 0 is out of range (1..1000000000)" },
        { BASE SVC("weight = 10001;"),
          "t.conf:5: services[0].weight: 10001 is out of range (0..10000)" },
        { BASE SVC("weight = -1;"),
          "t.conf:5: services[0].weight: -1 is out of range (0..10000)" },
        { BASE SVC("replicas = 1001;"),
          "t.conf:5: services[0].replicas: 1001 is out of range (0..1000)" },
        { BASE SVC("check = { rise = 0; };"),
          "t.conf:5: services[0].check.rise: 0 is out of range (1..100)" },
        { BASE SVC("check = { fall = 101; };"),
          "t.conf:5: services[0].check.fall: 101 is out of range (1..100)" },
        { BASE SVC("check = { type = \"http\"; status_min = 99; };"),
          "t.conf:5: services[0].check.status_min: 99 is out of range (100..599)" },
        { BASE SVC("restart = { limit = 0; };"),
          "t.conf:5: services[0].restart.limit: 0 is out of range (1..1000)" },
        { BASE SVC("breaker = { failures = 0; };"),
          "t.conf:5: services[0].breaker.failures: 0 is out of range (1..1000)" },
        { BASE SVC("breaker = { half_open_probes = 101; };"),
          "t.conf:5: services[0].breaker.half_open_probes: 101 is out of range (1..100)" },

        /* durations */
        { BASE SVC("check = {\n interval = \"10 parsecs\"; };"),
          "t.conf:6: services[0].check.interval: bad duration \"10 parsecs\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"10\"; };"),
          "t.conf:5: services[0].check.interval: bad duration \"10\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"\"; };"),
          "t.conf:5: services[0].check.interval: bad duration \"\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"-1s\"; };"),
          "t.conf:5: services[0].check.interval: bad duration \"-1s\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"5x\"; };"),
          "t.conf:5: services[0].check.interval: bad duration \"5x\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"1\\n0s\"; };"),
          "t.conf:5: services[0].check.interval: bad duration \"1\\x0a0s\" (use e.g. \"250ms\", \"10s\")" },
        { BASE SVC("check = { interval = \"5ms\"; };"),
          "t.conf:5: services[0].check.interval: \"5ms\" is out of range (10ms..1h)" },
        { BASE SVC("check = { interval = \"999999999999d\"; };"),
          "t.conf:5: services[0].check.interval: \"999999999999d\" is out of range (10ms..1h)" },
        { BASE SVC("restart = { window = \"0s\"; };"),
          "t.conf:5: services[0].restart.window: \"0s\" is out of range (1s..1d)" },
        { BASE SVC("breaker = { open_for = \"1ms\"; };"),
          "t.conf:5: services[0].breaker.open_for: \"1ms\" is out of range (10ms..1d)" },
        { BASE "store = { events_max_age = \"10s\"; };\n",
          "t.conf:3: store.events_max_age: \"10s\" is out of range (1m..3650d)" },
        { BASE SVC("check = { interval = \"1s\";\n timeout = \"2s\"; };"),
          "t.conf:6: services[0].check.timeout: 2s is longer than the interval (1s)" },
        { BASE SVC("restart = {\n backoff = \"1m\"; backoff_max = \"30s\"; };"),
          "t.conf:6: services[0].restart.backoff: 1m is longer than backoff_max (30s)" },

        /* enums */
        { "node = { name = \"n1\"; bind = \"127.0.0.1:7946\"; role = \"leader\"; };\n" CLUSTER,
          "t.conf:1: node.role: bad value \"leader\" (use one of: member, witness)" },
        { NODE "cluster = { name = \"demo\"; profile = \"LAN\"; };\n",
          "t.conf:2: cluster.profile: bad value \"LAN\" (use one of: lan, local, wan)" },
        { BASE "store = { synchronous = \"off\"; };\n",
          "t.conf:3: store.synchronous: bad value \"off\" (use one of: normal, full)" },
        { BASE "systemd = { bus = \"session\"; };\n",
          "t.conf:3: systemd.bus: bad value \"session\" (use one of: system, user)" },
        { BASE "log = { target = \"syslog\"; };\n",
          "t.conf:3: log.target: bad value \"syslog\" (use one of: journal, stderr)" },
        { BASE "log = { level = \"verbose\"; };\n",
          "t.conf:3: log.level: bad value \"verbose\" (use one of: err, warning, notice, info, debug)" },
        { BASE SVC("algorithm = \"leastconn\";"),
          "t.conf:5: services[0].algorithm: bad value \"leastconn\" (use one of: random, roundrobin, wrr, wrandom, wlc, sourcehash)" },
        { BASE SVC("check = { type = \"ping\"; };"),
          "t.conf:5: services[0].check.type: bad value \"ping\" (use one of: systemd, tcp, http, exec)" },
        { BASE SVC("check = { type = \"\"; };"),
          "t.conf:5: services[0].check.type: bad value \"\" (use one of: systemd, tcp, http, exec)" },

        /* paths */
        { "node = { name = \"n1\"; bind = \"127.0.0.1:7946\"; state_dir = \"var/lib/agentd\"; };\n" CLUSTER,
          "t.conf:1: node.state_dir: must be an absolute path (got \"var/lib/agentd\")" },
        { NODE "cluster = { name = \"demo\"; keyring = \"keyring\"; };\n",
          "t.conf:2: cluster.keyring: must be an absolute path (got \"keyring\")" },
        { BASE "control = { socket = \"agentd.sock\"; };\n",
          "t.conf:3: control.socket: must be an absolute path (got \"agentd.sock\")" },
        { BASE "control = { socket = \"/run/agentd/0123456789012345678901234567890123456789"
               "012345678901234567890123456789012345678901234567890123456789.sock\"; };\n",
          "t.conf:3: control.socket: too long for a Unix socket (117 bytes, max 107)" },
        { BASE "control = { group = \"1adm\"; };\n",
          "t.conf:3: control.group: bad group name \"1adm\" (use letters, digits, '_', '-', '.', starting with a letter)" },
        { BASE "control = { admin_group = \"a b\"; };\n",
          "t.conf:3: control.admin_group: bad group name \"a b\" (use letters, digits, '_', '-', '.', starting with a letter)" },
        { BASE "control = { admin_group = \"a23456789012345678901234567890123\"; };\n",
          "t.conf:3: control.admin_group: too long (33 bytes, max 32)" },

        /* units */
        { BASE "services = (\n { name = \"web\"; unit = \"web\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].unit: bad unit name \"web\" (use e.g. \"web.service\" or \"web@8080.service\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.socket\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].unit: bad unit name \"web.socket\" (use e.g. \"web.service\" or \"web@8080.service\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"web@.service\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].unit: \"web@.service\" is a template, which only replicas >= 1 can use "
          "(or name an instance such as \"web@80.service\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"@1.service\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].unit: bad unit name \"@1.service\" (use e.g. \"web.service\" or \"web@8080.service\")" },
        { BASE "services = (\n { name = \"web\"; unit = \"a/b.service\"; address = \"10.0.0.1\"; port = 80; }\n);\n",
          "t.conf:4: services[0].unit: bad unit name \"a/b.service\" (use e.g. \"web.service\" or \"web@8080.service\")" },

        /* placement: replicas, the template and replica_ports */
        { BASE SVC("replicas = 2;"),
          "t.conf:5: services[0].replicas: replicas needs a template unit such as \"web@.service\" or "
          "\"web@80.service\"" },
        { BASE SVC("\nreplica_ports = [ 80, 90 ];"),
          "t.conf:6: services[0].replica_ports: replica_ports needs replicas >= 1" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 90, 80 ];"),
          "t.conf:6: services[0].replica_ports: MIN 90 is above MAX 80" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 0, 80 ];"),
          "t.conf:6: services[0].replica_ports[0]: 0 is out of range (1..65535)" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 80, 65536 ];"),
          "t.conf:6: services[0].replica_ports[1]: 65536 is out of range (1..65535)" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 90, 4294967376 ];"),
          "t.conf:6: services[0].replica_ports[1]: 4294967376 is out of range (1..65535)" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 80 ];"),
          "t.conf:6: services[0].replica_ports: expected [MIN, MAX], two ports such as [80, 179]" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ 80, 90, 100 ];"),
          "t.conf:6: services[0].replica_ports: expected [MIN, MAX], two ports such as [80, 179]" },
        { BASE TSVC("replicas = 1;\n replica_ports = [ \"80\", \"90\" ];"),
          "t.conf:6: services[0].replica_ports[0]: expected an integer" },
        { BASE TSVC("replicas = 1;\n replica_ports = 80;"),
          "t.conf:6: services[0].replica_ports: expected [MIN, MAX], two ports such as [80, 179]" },
        { BASE "services = (\n { name = \"web\"; unit = \"web@.service\"; address = \"10.0.0.1\"; port = 80;"
               " replicas = 1; },\n { name = \"api\"; unit = \"web@81.service\"; address = \"10.0.0.1\";"
               " port = 81; replicas = 2; }\n);\n",
          "t.conf:5: services[1].unit: template \"web@.service\" is already used by service \"web\" (line 4), "
          "which also has replicas" },
        { BASE "services = (\n { name = \"web\"; unit = \"a1234567890123456789012345678901234567890123456789"
               "01234567890123456789012345678901234567890123456789012345678901234567890123456789@.service\";"
               " address = \"10.0.0.1\"; port = 80; replicas = 1; }\n);\n",
          "t.conf:4: services[0].unit: name too long for placed instances "
          "(\"a1234567890123456789012345678901@PORT.service\" must fit 127 bytes)" },

        /* cluster.election: one range, then how the timings fit together */
        { NODE "cluster = { name = \"demo\";\n election = { lease = \"0ms\"; }; };\n",
          "t.conf:3: cluster.election.lease: \"0ms\" is out of range (1ms..1h)" },
        { NODE "cluster = { name = \"demo\";\n election = { heartbeat = \"soon\"; }; };\n",
          "t.conf:3: cluster.election.heartbeat: bad duration \"soon\" (use e.g. \"250ms\", \"10s\")" },
        { NODE "cluster = { name = \"demo\";\n election = { hearbeat = \"1s\"; }; };\n",
          "t.conf:3: unknown key \"hearbeat\" in cluster.election (did you mean \"heartbeat\"?)" },
        { NODE "cluster = { name = \"demo\";\n election = 5; };\n",
          "t.conf:3: cluster.election: expected a group { ... }" },
        { NODE "cluster = { name = \"demo\"; election = {\n lease = \"1s\";\n lease_guard = \"1s\"; }; };\n",
          "t.conf:4: cluster.election: lease guard must be shorter than the lease (timeout_min 1500ms, "
          "timeout_max 3s, heartbeat 100ms, lease 1s, lease_guard 1s)" },
        { NODE "cluster = { name = \"demo\"; election = {\n heartbeat = \"950ms\"; }; };\n",
          "t.conf:3: cluster.election: heartbeat interval must be positive and shorter than the lease minus "
          "its guard (timeout_min 1500ms, timeout_max 3s, heartbeat 950ms, lease 1s, lease_guard 50ms)" },
        { NODE "cluster = { name = \"demo\"; election = {\n\n timeout_min = \"500ms\"; }; };\n",
          "t.conf:4: cluster.election: election timeout must be at least the lease (timeout_min 500ms, "
          "timeout_max 3s, heartbeat 100ms, lease 1s, lease_guard 50ms)" },
        { NODE "cluster = { name = \"demo\"; election = {\n timeout_min = \"3s\";\n timeout_max = \"3s\"; }; };\n",
          "t.conf:4: cluster.election: election timeout range must be non-empty and at most 1h (timeout_min 3s, "
          "timeout_max 3s, heartbeat 100ms, lease 1s, lease_guard 50ms)" },
        { NODE "cluster = { name = \"demo\";\n election = { timeout_min = \"5s\"; }; };\n",
          "t.conf:3: cluster.election: election timeout range must be non-empty and at most 1h (timeout_min 5s, "
          "timeout_max 3s, heartbeat 100ms, lease 1s, lease_guard 50ms)" },

        /* checks: keys that belong to another type, and what a type needs */
        { BASE SVC("check = { type = \"tcp\";\n path = \"/health\"; };"),
          "t.conf:6: services[0].check.path: only used by http checks (this check's type is \"tcp\")" },
        { BASE SVC("check = { path = \"/health\"; };"),
          "t.conf:5: services[0].check.path: only used by http checks (this check's type is \"systemd\")" },
        { BASE SVC("check = { type = \"http\"; command = \"/bin/true\"; };"),
          "t.conf:5: services[0].check.command: only used by exec checks (this check's type is \"http\")" },
        { BASE SVC("check = { type = \"exec\"; expect_body = \"ok\"; };"),
          "t.conf:5: services[0].check.expect_body: only used by http checks (this check's type is \"exec\")" },
        { BASE SVC("check = {\n type = \"exec\"; };"),
          "t.conf:5: services[0].check: an exec check needs a command" },
        { BASE SVC("check = { type = \"exec\"; command = \"pg_isready\"; };"),
          "t.conf:5: services[0].check.command: must start with the program's absolute path (got \"pg_isready\")" },
        { BASE SVC("check = { type = \"http\"; path = \"health\"; };"),
          "t.conf:5: services[0].check.path: must start with '/' and contain no spaces (got \"health\")" },
        { BASE SVC("check = { type = \"http\"; path = \"/a b\"; };"),
          "t.conf:5: services[0].check.path: must start with '/' and contain no spaces (got \"/a b\")" },
        { BASE SVC("check = { type = \"http\"; status_min = 300;\n status_max = 299; };"),
          "t.conf:6: services[0].check: status_min 300 is above status_max 299" },
        { BASE SVC("check = { type = \"http\"; status_min = 400; };"),
          "t.conf:5: services[0].check: status_min 400 is above status_max 399" },

        /* duplicates */
        { NODE "cluster = { name = \"demo\"; join = [ \"10.0.0.1:7946\",\n \"10.0.0.1:07946\" ]; };\n",
          "t.conf:3: cluster.join[1]: duplicate address \"10.0.0.1:07946\" (same as join[0])" },
        { NODE "cluster = { name = \"demo\"; join = [ \"[fd00::1]:7946\", \"[fd00:0::1]:7946\" ]; };\n",
          "t.conf:2: cluster.join[1]: duplicate address \"[fd00:0::1]:7946\" (same as join[0])" },
        { NODE "cluster = { name = \"demo\"; join = [ \"Node2.example.com:7946\", \"node2.example.com.:7946\" ]; };\n",
          "t.conf:2: cluster.join[1]: duplicate address \"node2.example.com.:7946\" (same as join[0])" },
        { BASE "services = (\n { name = \"web\"; unit = \"web@1.service\"; address = \"10.0.0.1\"; port = 80; },\n"
               " { name = \"web\"; unit = \"web@2.service\"; address = \"10.0.0.1\"; port = 81; }\n);\n",
          "t.conf:5: services[1].name: duplicate service name \"web\" (also services[0], line 4)" },
        { BASE "services = (\n { name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\"; port = 80; },\n"
               " { name = \"api\";\n unit = \"web.service\"; address = \"10.0.0.1\"; port = 81; }\n);\n",
          "t.conf:6: services[1].unit: unit \"web.service\" is already used by service \"web\" (line 4)" },

        /* roles */
        { "node = { name = \"w\"; bind = \"127.0.0.1:7946\"; role = \"witness\";\n voter = false; };\n" CLUSTER,
          "t.conf:2: node.voter: a witness must be a voter (role = \"witness\" needs voter = true)" },
        { "node = { name = \"w\"; bind = \"127.0.0.1:7946\"; role = \"witness\"; };\n" CLUSTER SVC(""),
          "t.conf:3: services: a witness runs no services (node.role is \"witness\")" },
};

static void test_bad(void) {
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                struct agentd_config *c = (struct agentd_config *) 0x1;
                char *error = NULL;
                int r = config_load_string(bad_cases[i].text, "t.conf", &c, &error);

                if (r >= 0 || !error || strcmp(error, bad_cases[i].error) != 0)
                        fprintf(stderr, "\n  case %zu:\n    want: %s\n    got:  %s (r=%d)\n", i, bad_cases[i].error,
                                error ? error : "(null)", r);
                CU_ASSERT(r < 0);
                CU_ASSERT_PTR_EQUAL(c, (struct agentd_config *) 0x1); /* untouched on failure */
                CU_ASSERT_PTR_NOT_NULL(error);
                if (error)
                        CU_ASSERT_STRING_EQUAL(error, bad_cases[i].error);
                free(error);
        }
}

/* Builds a config with N services or N join addresses, past the limits. */
static void test_limits(void) {
        size_t cap = 200 * (CONFIG_MAX_SERVICES + 1) + 256;
        char *text = malloc(cap), *error = NULL;
        struct agentd_config *c = NULL;
        size_t o;
        int r;

        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        o = (size_t) snprintf(text, cap, BASE "services = (\n");
        for (int i = 0; i < CONFIG_MAX_SERVICES; i++)
                o += (size_t) snprintf(text + o, cap - o,
                                       "%s{ name = \"s%d\"; unit = \"s@%d.service\"; address = \"10.0.0.1\";"
                                       " port = %d; }\n",
                                       i ? "," : "", i, i, 1000 + i);
        strcpy(text + o, ");\n");
        r = config_load_string(text, "t.conf", &c, &error);
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_PTR_NULL(error);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->n_services, CONFIG_MAX_SERVICES);
        CU_ASSERT_STRING_EQUAL(c->services[CONFIG_MAX_SERVICES - 1].unit, "s@255.service");
        config_free(c);
        c = NULL;

        o += (size_t) snprintf(text + o, cap - o,
                               ",{ name = \"x\"; unit = \"x.service\"; address = \"10.0.0.1\"; port = 1; }\n");
        strcpy(text + o, ");\n");
        r = config_load_string(text, "t.conf", &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, "t.conf:3: services: too many services (257, max 256)");
        free(error);
        error = NULL;

        o = (size_t) snprintf(text, cap, NODE "cluster = { name = \"demo\"; join = [ ");
        for (int i = 0; i <= CONFIG_MAX_JOIN; i++)
                o += (size_t) snprintf(text + o, cap - o, "%s\"10.0.0.1:%d\"", i ? ", " : "", 1000 + i);
        strcpy(text + o, " ]; };\n");
        r = config_load_string(text, "t.conf", &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, "t.conf:2: cluster.join: too many addresses (65, max 64)");
        free(error);
        error = NULL;

        /* More text than a config may hold is refused before parsing. */
        free(text);
        text = malloc(CONFIG_MAX_FILE_SIZE + 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        memset(text, '#', CONFIG_MAX_FILE_SIZE + 1);
        text[CONFIG_MAX_FILE_SIZE + 1] = '\0';
        r = config_load_string(text, "t.conf", &c, &error);
        CU_ASSERT_EQUAL(r, -EFBIG);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, "t.conf: too large (max 1048576 bytes)");
        free(error);
        free(text);
}

/* Writes LEN bytes of TEXT (all of it when LEN is 0) to DIR/NAME; returns the path. */
static char *write_file(const char *dir, const char *name, const char *text, size_t len) {
        char *path = NULL;
        FILE *f;

        if (len == 0)
                len = strlen(text);
        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", dir, name) > 0);
        f = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(text, 1, len, f), len);
        fclose(f);
        return path;
}

static void test_files(void) {
        _cleanup_free_ char *dir = unit_tmpdir();
        struct agentd_config *c = NULL;
        char *error = NULL, *path, *want = NULL, *big;
        int r;

        /* A good file: FILE in the config is the path as given. */
        path = write_file(dir, "good.conf", full_config, 0);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_PTR_NULL(error);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(c->path, path);
        CU_ASSERT_EQUAL(c->n_services, 3);
        config_free(c);
        c = NULL;
        unlink(path);
        free(path);

        /* A syntax error names the file as given and libconfig's line. */
        path = write_file(dir, "syntax.conf", BASE "\n\nlog = { level = \"info\" ;; };\n", 0);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_FATAL(asprintf(&want, "%s:5: syntax error", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        unlink(path);
        free(path);

        /* A semantic error, same. */
        path = write_file(dir, "bad.conf", BASE "store = {\n  events_max_age = \"10 parsecs\";\n};\n", 0);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_FATAL(asprintf(&want, "%s:4: store.events_max_age: bad duration \"10 parsecs\""
                                 " (use e.g. \"250ms\", \"10s\")", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        unlink(path);
        free(path);

        /* A NUL byte would silently end the file for libconfig. */
        path = write_file(dir, "nul.conf", BASE "\0log = { };\n", sizeof(BASE "\0log = { };\n") - 1);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_FATAL(asprintf(&want, "%s:3: NUL byte in file", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        unlink(path);
        free(path);

        /* Too large. */
        big = malloc(CONFIG_MAX_FILE_SIZE + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, '\n', CONFIG_MAX_FILE_SIZE + 1);
        path = write_file(dir, "big.conf", big, CONFIG_MAX_FILE_SIZE + 1);
        free(big);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -EFBIG);
        CU_ASSERT_FATAL(asprintf(&want, "%s: too large (1048577 bytes, max 1048576)", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        unlink(path);
        free(path);

        /* Missing file, directory: no line applies. */
        CU_ASSERT_FATAL(asprintf(&path, "%s/missing.conf", dir) > 0);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -ENOENT);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_FATAL(asprintf(&want, "%s: cannot open: No such file or directory", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        free(path);

        r = config_load(dir, &c, &error);
        CU_ASSERT_EQUAL(r, -EISDIR);
        CU_ASSERT_FATAL(asprintf(&want, "%s: is a directory, not a configuration file", dir) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;

        /* Not a regular file: must not block on a FIFO. */
        CU_ASSERT_FATAL(asprintf(&path, "%s/fifo", dir) > 0);
        CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
        r = config_load(path, &c, &error);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_FATAL(asprintf(&want, "%s: not a regular file", path) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_STRING_EQUAL(error, want);
        free(want);
        free(error);
        error = NULL;
        unlink(path);
        free(path);

        /* The error is optional. */
        r = config_load("/nonexistent/agentd.conf", &c, NULL);
        CU_ASSERT_EQUAL(r, -ENOENT);
        r = config_load_string("node = 5;", "x", &c, NULL);
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_PTR_NULL(c);

        CU_ASSERT_EQUAL(rmdir(dir), 0);
}

/* The example shipped in etc/ must load as it is. */
static void test_example(void) {
        const char *top = getenv("top_srcdir");
        struct agentd_config *c = NULL;
        char *path = NULL, *error = NULL;
        int r;

        CU_ASSERT_FATAL(asprintf(&path, "%s/etc/agentd.conf", top ? top : "..") > 0);
        r = config_load(path, &c, &error);
        if (r < 0)
                fprintf(stderr, "\n  %s\n", error ? error : "(no message)");
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_PTR_NULL(error);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(c->node_name, "n1");
        CU_ASSERT_STRING_EQUAL(c->node_bind, "127.0.0.1:7946");
        CU_ASSERT_STRING_EQUAL(c->state_dir, "/var/lib/agentd");
        CU_ASSERT_STRING_EQUAL(c->control_socket, "/run/agentd/agentd.sock");
        CU_ASSERT_EQUAL_FATAL(c->n_services, 1);
        CU_ASSERT_STRING_EQUAL(c->services[0].name, "web");
        CU_ASSERT_STRING_EQUAL(c->services[0].unit, "web@8080.service");
        CU_ASSERT_EQUAL(c->services[0].check.type, CONFIG_CHECK_HTTP);
        CU_ASSERT_PTR_NULL(c->services[0].template_unit);
        CU_ASSERT_EQUAL(c->election.election_timeout_min_us, 1500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->election.lease_guard_us, 50 * USEC_PER_MSEC);
        config_free(c);
        free(error);
        free(path);
}

/*
 * One slot per key the diff cares about, with its base value; a case replaces
 * the slot whose key it starts with. "cname" stands for cluster.name so that
 * it differs from node.name here; it is written out as "name".
 */
static const char *const diff_keys[] = {
        "name", "bind", "state_dir", "voter", "role", "cname", "socket", "group", "bus",
        "admin_group", "join", "keyring", "profile", "synchronous", "events_max_rows", "level",
        "target", "weight",
};
static const char *const diff_base[] = {
        "name = \"n1\"", "bind = \"127.0.0.1:7946\"", "state_dir = \"/var/lib/agentd\"", "voter = true",
        "role = \"member\"", "cname = \"demo\"", "socket = \"/run/a.sock\"", "group = \"agentd\"",
        "bus = \"system\"", "admin_group = \"wheel\"", "join = [ ]", "keyring = \"/etc/j\"",
        "profile = \"lan\"", "synchronous = \"normal\"", "events_max_rows = 100", "level = \"info\"",
        "target = \"journal\"", "weight = 1",
};

static struct agentd_config *diff_config(const char *change) {
        const char *v[ELEMENTSOF(diff_keys)];
        struct agentd_config *c;
        char *text = NULL;
        bool witness;

        for (size_t k = 0; k < ELEMENTSOF(diff_keys); k++) {
                size_t n = strlen(diff_keys[k]);

                v[k] = diff_base[k];
                if (change && strncmp(change, diff_keys[k], n) == 0 && change[n] == ' ')
                        v[k] = change;
        }
        /* A witness may not list services. */
        witness = strstr(v[4], "witness") != NULL;
        CU_ASSERT_FATAL(asprintf(&text,
                                 "node = { %s; %s; %s; %s; %s; };\n"
                                 "cluster = { %s; %s; %s; %s; };\n"
                                 "control = { %s; %s; %s; };\n"
                                 "store = { %s; %s; };\n"
                                 "systemd = { %s; };\n"
                                 "log = { %s; %s; };\n"
                                 "services = ( %s%s%s );\n",
                                 v[0], v[1], v[2], v[3], v[4], v[5] + 1, v[10], v[11], v[12], v[6], v[7], v[9],
                                 v[13], v[14], v[8], v[15], v[16],
                                 witness ? "" : "{ name = \"web\"; unit = \"web.service\"; address = \"10.0.0.1\";"
                                                " port = 80; ",
                                 witness ? "" : v[17], witness ? "" : "; }") > 0);
        c = load_ok(text);
        free(text);
        return c;
}

static void test_diff(void) {
        static const struct {
                const char *change;
                const char *key;        /* NULL: applies on reload */
        } cases[] = {
                { "name = \"n2\"",                      "node.name" },
                { "bind = \"127.0.0.1:7947\"",          "node.bind" },
                { "bind = \"127.0.0.2:7946\"",          "node.bind" },
                { "state_dir = \"/srv\"",               "node.state_dir" },
                { "voter = false",                      "node.voter" },
                { "role = \"witness\"",                 "node.role" },
                { "cname = \"other\"",                  "cluster.name" },
                { "socket = \"/run/b.sock\"",           "control.socket" },
                { "group = \"adm\"",                    "control.group" },
                { "bus = \"user\"",                     "systemd.bus" },
                { "admin_group = \"adm\"",              NULL },
                { "join = [ \"10.0.0.9:7946\" ]",       NULL },
                { "keyring = \"/etc/k\"",               NULL },
                { "profile = \"wan\"",                  NULL },
                { "synchronous = \"full\"",             NULL },
                { "events_max_rows = 10",               NULL },
                { "level = \"debug\"",                  NULL },
                { "target = \"stderr\"",                NULL },
                { "weight = 7",                         NULL },
        };
        struct agentd_config *base = diff_config(NULL), *next;

        CU_ASSERT_EQUAL_FATAL(ELEMENTSOF(diff_keys), ELEMENTSOF(diff_base));
        CU_ASSERT_PTR_NOT_NULL_FATAL(base);

        next = diff_config(NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(next);
        CU_ASSERT_PTR_NULL(config_diff_restart_key(base, next));
        config_free(next);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *got;

                next = diff_config(cases[i].change);
                CU_ASSERT_PTR_NOT_NULL_FATAL(next);
                got = config_diff_restart_key(base, next);
                if (!streq_null(got, cases[i].key))
                        fprintf(stderr, "\n  case %s: got %s\n", cases[i].change, got ? got : "(null)");
                CU_ASSERT_TRUE(streq_null(got, cases[i].key));
                /* The other direction gives the same answer. */
                CU_ASSERT_TRUE(streq_null(config_diff_restart_key(next, base), cases[i].key));
                config_free(next);
        }
        CU_ASSERT_PTR_NULL(config_diff_restart_key(NULL, base));
        CU_ASSERT_PTR_NULL(config_diff_restart_key(base, NULL));
        config_free(base);
}

/* replicas with a template: what the leader may place here, and whether a static instance runs. */
static void test_placement(void) {
        static const struct {
                const char *text;
                const char *unit, *template_unit;
                bool has_static;
                uint16_t port_min, port_max;
        } cases[] = {
                /* an instance plus placed ones; default range [port, port + 99] */
                { BASE TSVC("replicas = 2;"), "web@80.service", "web@.service", true, 80, 179 },
                /* template only: no static instance here */
                { BASE "services = ( { name = \"web\"; unit = \"web@.service\"; address = \"10.0.0.1\";"
                       " port = 8080; replicas = 3; } );\n", "web@.service", "web@.service", false, 8080, 8179 },
                /* explicit range, 64-bit and hex literals */
                { BASE TSVC("replicas = 1; replica_ports = ( 9000L, 0x2328 );"), "web@80.service", "web@.service",
                  true, 9000, 9000 },
                { BASE TSVC("replicas = 1; replica_ports = [ 1, 65535 ];"), "web@80.service", "web@.service",
                  true, 1, 65535 },
                /* the default range stops at 65535 */
                { BASE "services = ( { name = \"web\"; unit = \"a.b-c@x.y.service\"; address = \"::1\";"
                       " port = 65500; replicas = 1; } );\n", "a.b-c@x.y.service", "a.b-c@.service", true, 65500,
                  65535 },
                /* replicas = 0: no placement, whatever the unit */
                { BASE TSVC("replicas = 0;"), "web@80.service", NULL, true, 0, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct agentd_config *c = load_ok(cases[i].text);
                const struct config_service *s;

                CU_ASSERT_PTR_NOT_NULL_FATAL(c);
                CU_ASSERT_EQUAL_FATAL(c->n_services, 1);
                s = &c->services[0];
                CU_ASSERT_STRING_EQUAL(s->unit, cases[i].unit);
                CU_ASSERT_TRUE(streq_null(s->template_unit, cases[i].template_unit));
                CU_ASSERT_EQUAL(config_service_has_static(s), cases[i].has_static);
                CU_ASSERT_EQUAL(s->port_min, cases[i].port_min);
                CU_ASSERT_EQUAL(s->port_max, cases[i].port_max);
                config_free(c);
        }
}

/* cluster.election: values read back, and every change needs a restart. */
static void test_election(void) {
        static const struct {
                const char *change;
                const char *key;
        } diffs[] = {
                { "timeout_min = \"2s\";", "cluster.election.timeout_min" },
                { "timeout_max = \"4s\";", "cluster.election.timeout_max" },
                { "heartbeat = \"200ms\";", "cluster.election.heartbeat" },
                { "lease = \"1200ms\";", "cluster.election.lease" },
                { "lease_guard = \"0ms\";", "cluster.election.lease_guard" },
        };
        struct agentd_config *base, *c;
        char *text = NULL;

        c = load_ok(NODE "cluster = { name = \"demo\"; election = { timeout_min = \"3s\"; timeout_max = \"6s\";"
                    " heartbeat = \"250ms\"; lease = \"2s\"; lease_guard = \"100ms\"; }; };\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->election.election_timeout_min_us, 3 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(c->election.election_timeout_max_us, 6 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(c->election.heartbeat_interval_us, 250 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(c->election.lease_us, 2 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(c->election.lease_guard_us, 100 * USEC_PER_MSEC);
        config_free(c);

        /* An empty group is the defaults, and no change from the absent group. */
        base = load_ok(BASE);
        c = load_ok(NODE "cluster = { name = \"demo\"; election = { }; };\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(base);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->election.lease_us, USEC_PER_SEC);
        CU_ASSERT_PTR_NULL(config_diff_restart_key(base, c));
        config_free(c);

        for (size_t i = 0; i < ELEMENTSOF(diffs); i++) {
                CU_ASSERT_FATAL(asprintf(&text, NODE "cluster = { name = \"demo\"; election = { %s }; };\n",
                                         diffs[i].change) > 0);
                c = load_ok(text);
                free(text);
                CU_ASSERT_PTR_NOT_NULL_FATAL(c);
                CU_ASSERT_TRUE(streq_null(config_diff_restart_key(base, c), diffs[i].key));
                CU_ASSERT_TRUE(streq_null(config_diff_restart_key(c, base), diffs[i].key));
                config_free(c);
        }
        config_free(base);
}

/* gossip { }: overrides read back exactly, unset ones stay unset, and each range is enforced. */
static void test_gossip(void) {
        static const struct bad_case bad[] = {
                { BASE "gossip = {\n probe_interval = \"5ms\"; };\n",
                  "t.conf:4: gossip.probe_interval: \"5ms\" is out of range (10ms..1m)" },
                { BASE "gossip = { probe_timeout = \"0s\"; };\n",
                  "t.conf:3: gossip.probe_timeout: \"0s\" is out of range (1ms..1m)" },
                { BASE "gossip = { indirect_checks = 17; };\n",
                  "t.conf:3: gossip.indirect_checks: 17 is out of range (0..16)" },
                { BASE "gossip = { suspicion_mult = 0; };\n",
                  "t.conf:3: gossip.suspicion_mult: 0 is out of range (1..100)" },
                { BASE "gossip = { retransmit_mult = \"4\"; };\n",
                  "t.conf:3: gossip.retransmit_mult: expected an integer" },
                { BASE "gossip = { gossip_nodes = 17; };\n",
                  "t.conf:3: gossip.gossip_nodes: 17 is out of range (0..16)" },
                { BASE "gossip = { retransmit_mult = 17; };\n",
                  "t.conf:3: gossip.retransmit_mult: 17 is out of range (1..16)" },
                { BASE "gossip = { pushpull_interval = \"500ms\"; };\n",
                  "t.conf:3: gossip.pushpull_interval: \"500ms\" is out of range (1s..1d)" },
                { BASE "gossip = { dead_reprobe_interval = \"2d\"; };\n",
                  "t.conf:3: gossip.dead_reprobe_interval: \"2d\" is out of range (100ms..1d)" },
                { BASE "gossip = { mtu = 511; };\n",
                  "t.conf:3: gossip.mtu: 511 is out of range (512..65000)" },
                { BASE "gossip = { mtu = 65001; };\n",
                  "t.conf:3: gossip.mtu: 65001 is out of range (512..65000)" },
                { BASE "gossip = { probe_interval = \"200ms\";\n probe_timeout = \"200ms\"; };\n",
                  "t.conf:4: gossip.probe_timeout: 200ms must be shorter than gossip.probe_interval (200ms)" },
                { BASE "gossip = { probe_intreval = \"1s\"; };\n",
                  "t.conf:3: unknown key \"probe_intreval\" in gossip (did you mean \"probe_interval\"?)" },
                { BASE "gossip = 5;\n",
                  "t.conf:3: gossip: expected a group { ... }" },
        };
        struct agentd_config *c;
        const struct config_gossip *g;

        c = load_ok(BASE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        g = &c->gossip;
        CU_ASSERT_EQUAL(g->probe_interval_us, 0);
        CU_ASSERT_EQUAL(g->probe_timeout_us, 0);
        CU_ASSERT_EQUAL(g->indirect_checks, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(g->suspicion_mult, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(g->suspicion_max_timeout_mult, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(g->retransmit_mult, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(g->gossip_interval_us, 0);
        CU_ASSERT_EQUAL(g->gossip_nodes, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(g->pushpull_interval_us, 0);
        CU_ASSERT_EQUAL(g->dead_reprobe_interval_us, 0);
        CU_ASSERT_EQUAL(g->mtu, 1400);
        config_free(c);

        c = load_ok(BASE "gossip = { probe_interval = \"1s\"; probe_timeout = \"300ms\"; indirect_checks = 0;\n"
                    " suspicion_mult = 5; suspicion_max_timeout_mult = 7; retransmit_mult = 3;\n"
                    " gossip_interval = \"50ms\"; gossip_nodes = 0; pushpull_interval = \"1m\";\n"
                    " dead_reprobe_interval = \"10s\"; mtu = 9000; };\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        g = &c->gossip;
        CU_ASSERT_EQUAL(g->probe_interval_us, USEC_PER_SEC);
        CU_ASSERT_EQUAL(g->probe_timeout_us, 300 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(g->indirect_checks, 0);
        CU_ASSERT_EQUAL(g->suspicion_mult, 5);
        CU_ASSERT_EQUAL(g->suspicion_max_timeout_mult, 7);
        CU_ASSERT_EQUAL(g->retransmit_mult, 3);
        CU_ASSERT_EQUAL(g->gossip_interval_us, 50 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(g->gossip_nodes, 0);
        CU_ASSERT_EQUAL(g->pushpull_interval_us, USEC_PER_MIN);
        CU_ASSERT_EQUAL(g->dead_reprobe_interval_us, 10 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(g->mtu, 9000);
        config_free(c);

        /* An empty group is no override at all. */
        c = load_ok(BASE "gossip = { };\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->gossip.indirect_checks, CONFIG_GOSSIP_UNSET);
        CU_ASSERT_EQUAL(c->gossip.mtu, 1400);
        config_free(c);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *error = NULL;
                int r;

                c = NULL;
                r = config_load_string(bad[i].text, "t.conf", &c, &error);
                if (r >= 0 || !error || strcmp(error, bad[i].error) != 0)
                        fprintf(stderr, "\n  gossip case %zu:\n    want: %s\n    got:  %s (r=%d)\n", i, bad[i].error,
                                error ? error : "(null)", r);
                CU_ASSERT_EQUAL(r, -EINVAL);
                CU_ASSERT_PTR_NULL(c);
                CU_ASSERT_PTR_NOT_NULL(error);
                if (error)
                        CU_ASSERT_STRING_EQUAL(error, bad[i].error);
                free(error);
        }
}

static void test_to_string(void) {
        CU_ASSERT_STRING_EQUAL(config_role_to_string(CONFIG_ROLE_MEMBER), "member");
        CU_ASSERT_STRING_EQUAL(config_role_to_string(CONFIG_ROLE_WITNESS), "witness");
        CU_ASSERT_STRING_EQUAL(config_role_to_string(_CONFIG_ROLE_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_profile_to_string(CONFIG_PROFILE_LAN), "lan");
        CU_ASSERT_STRING_EQUAL(config_profile_to_string(CONFIG_PROFILE_LOCAL), "local");
        CU_ASSERT_STRING_EQUAL(config_profile_to_string(CONFIG_PROFILE_WAN), "wan");
        CU_ASSERT_STRING_EQUAL(config_profile_to_string(_CONFIG_PROFILE_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_sync_to_string(CONFIG_SYNC_NORMAL), "normal");
        CU_ASSERT_STRING_EQUAL(config_sync_to_string(CONFIG_SYNC_FULL), "full");
        CU_ASSERT_STRING_EQUAL(config_sync_to_string(_CONFIG_SYNC_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_bus_to_string(CONFIG_BUS_SYSTEM), "system");
        CU_ASSERT_STRING_EQUAL(config_bus_to_string(CONFIG_BUS_USER), "user");
        CU_ASSERT_STRING_EQUAL(config_bus_to_string(_CONFIG_BUS_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_log_target_to_string(CONFIG_LOG_JOURNAL), "journal");
        CU_ASSERT_STRING_EQUAL(config_log_target_to_string(CONFIG_LOG_STDERR), "stderr");
        CU_ASSERT_STRING_EQUAL(config_log_target_to_string(_CONFIG_LOG_TARGET_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string(CONFIG_LOG_ERR), "err");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string(CONFIG_LOG_WARNING), "warning");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string(CONFIG_LOG_NOTICE), "notice");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string(CONFIG_LOG_INFO), "info");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string(CONFIG_LOG_DEBUG), "debug");
        CU_ASSERT_STRING_EQUAL(config_log_level_to_string((enum config_log_level) 2), "invalid");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_RANDOM), "random");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_ROUNDROBIN), "roundrobin");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_WRR), "wrr");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_WRANDOM), "wrandom");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_WLC), "wlc");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(CONFIG_ALG_SOURCEHASH), "sourcehash");
        CU_ASSERT_STRING_EQUAL(config_algorithm_to_string(_CONFIG_ALG_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(config_check_type_to_string(CONFIG_CHECK_SYSTEMD), "systemd");
        CU_ASSERT_STRING_EQUAL(config_check_type_to_string(CONFIG_CHECK_TCP), "tcp");
        CU_ASSERT_STRING_EQUAL(config_check_type_to_string(CONFIG_CHECK_HTTP), "http");
        CU_ASSERT_STRING_EQUAL(config_check_type_to_string(CONFIG_CHECK_EXEC), "exec");
        CU_ASSERT_STRING_EQUAL(config_check_type_to_string(_CONFIG_CHECK_MAX), "invalid");

        config_free(NULL);
}

int main(void) {
        static CU_TestInfo tests[] = {
                { "full", test_full },
                { "defaults", test_defaults },
                { "adapted_defaults", test_adapted_defaults },
                { "bad", test_bad },
                { "limits", test_limits },
                { "files", test_files },
                { "example", test_example },
                { "diff", test_diff },
                { "gossip", test_gossip },
                { "placement", test_placement },
                { "election", test_election },
                { "to_string", test_to_string },
                CU_TEST_INFO_NULL,
        };
        static CU_SuiteInfo suites[] = {
                { "config", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
