/*
 * Replica placement: table-driven scenarios with the exact orders expected
 * (failover with spread and least load, N=3 on 5 hosts, ineligible hosts,
 * no eligible host, a returning host, pending orders and their timeout,
 * static instances, unique ports and names), exact causes and notes,
 * independence from input order, the order cap, validation, fencing and
 * printers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/placement.h"
#include "unit.h"

#define UP PLACEMENT_HOST_UP
#define SU PLACEMENT_HOST_SUSPECT
#define DN PLACEMENT_HOST_DOWN
#define ST PLACEMENT_STATIC
#define PL PLACEMENT_PLACED
#define PEND PLACEMENT_PENDING
#define OK PLACEMENT_HEALTHY
#define BAD PLACEMENT_UNHEALTHY
#define FAIL PLACEMENT_FAILED
#define STOPPING PLACEMENT_STOPPING
#define START PLACEMENT_ORDER_START
#define STOP PLACEMENT_ORDER_STOP
#define R_MISSING PLACEMENT_REASON_MISSING
#define R_DEAD PLACEMENT_REASON_HOST_DEAD
#define R_TIMEOUT PLACEMENT_REASON_TIMEOUT
#define R_FAILED PLACEMENT_REASON_FAILED
#define R_SURPLUS PLACEMENT_REASON_SURPLUS

#define TIMEOUT (30 * USEC_PER_SEC)
#define TERM 7

struct hspec {
        const char *name;
        enum placement_host_state state;
        bool draining, witness;
        const char *services[3];        /* NULL-terminated */
};

struct ispec {
        const char *service, *node, *unit;
        uint16_t port;
        enum placement_origin origin;
        enum placement_instance_state state;
        uint64_t at;
};

struct ospec {
        enum placement_order_kind kind;
        const char *node, *unit;
        uint16_t port;
        enum placement_reason reason;
        const char *replaces_node, *replaces_unit;      /* NULL: none */
};

struct nspec {
        enum placement_note_kind kind;
        const char *text;
};

#define WEB(n) { "web", "web@.service", (n), 8080, 8089 }
#define DB(n) { "db", "db@.service", (n), 5432, 5439 }
#define W { "web", NULL }
#define WD { "web", "db", NULL }

static const struct {
        const char *name;
        struct placement_service services[3];   /* name NULL ends */
        struct hspec hosts[8];                  /* name NULL ends */
        struct ispec instances[10];             /* service NULL ends */
        uint64_t now;
        struct ospec want[6];                   /* node NULL ends */
        struct nspec notes[2];                  /* text NULL ends */
} cases[] = {
        {
                "N=3 on 5 hosts: spread over the least loaded, ties by name",
                { WEB(3), DB(0) },
                { { "n1", UP, 0, 0, WD }, { "n2", UP, 0, 0, WD }, { "n3", UP, 0, 0, WD }, { "n4", UP, 0, 0, WD },
                  { "n5", UP, 0, 0, WD } },
                { { "db", "n1", "db.service", 5432, ST, OK, 0 }, { "db", "n3", "db.service", 5432, ST, OK, 0 } },
                1000,
                { { START, "n2", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n4", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n5", "web@8080.service", 8080, R_MISSING, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "a dead host's replicas go to the least loaded eligible hosts, spread",
                { WEB(3), DB(0) },
                { { "n1", UP, 0, 0, WD }, { "n2", DN, 0, 0, WD }, { "n3", DN, 0, 0, WD }, { "n4", UP, 0, 0, WD },
                  { "n5", UP, 0, 0, WD } },
                { { "web", "n1", "web@8080.service", 8080, PL, OK, 10 },
                  { "web", "n2", "web@8080.service", 8080, PL, OK, 11 },
                  { "web", "n3", "web@8080.service", 8080, PL, OK, 12 },
                  { "db", "n4", "db.service", 5432, ST, OK, 0 } },
                1000,
                { { START, "n5", "web@8080.service", 8080, R_DEAD, "n2", "web@8080.service" },
                  { START, "n4", "web@8080.service", 8080, R_DEAD, "n3", "web@8080.service" } },
                { { 0, NULL } },
        },
        {
                "spread first, then a second instance per host on the next port",
                { WEB(3) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, { "db", NULL } } },
                { { NULL } },
                1000,
                { { START, "n1", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n2", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n1", "web@8081.service", 8081, R_MISSING, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "witness, draining, unlisted, suspect and down hosts are never chosen",
                { WEB(2) },
                { { "n1", UP, 0, 1, W }, { "n2", UP, 1, 0, W }, { "n3", UP, 0, 0, { "db", NULL } },
                  { "n4", SU, 0, 0, W }, { "n5", DN, 0, 0, W }, { "n6", UP, 0, 0, W } },
                { { NULL } },
                1000,
                { { START, "n6", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n6", "web@8081.service", 8081, R_MISSING, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "no eligible host: nothing placed, and a clear note",
                { WEB(3) },
                { { "n1", UP, 1, 0, W }, { "n2", UP, 1, 0, W }, { "n3", UP, 0, 1, W }, { "n4", DN, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n4", "web@8080.service", 8080, PL, OK, 5 } },
                1000,
                { { 0 } },
                { { PLACEMENT_NOTE_NO_HOST, "no eligible host for web: 2 of 3 replicas running" } },
        },
        {
                "a returning host's instance is the oldest: it is stopped, not the replacement",
                { WEB(3) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, W }, { "n5", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n3", "web@8080.service", 8080, PL, OK, 12 },
                  { "web", "n5", "web@8080.service", 8080, PL, PEND, 50 } },
                1000,
                { { STOP, "n3", "web@8080.service", 8080, R_SURPLUS, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "surplus: placed instances stopped oldest placement first",
                { WEB(2) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, W }, { "n4", SU, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, PL, OK, 40 },
                  { "web", "n2", "web@8080.service", 8080, PL, OK, 20 },
                  { "web", "n3", "web@8080.service", 8080, PL, BAD, 30 },
                  { "web", "n4", "web@8080.service", 8080, PL, OK, 20 } },
                1000,
                { { STOP, "n2", "web@8080.service", 8080, R_SURPLUS, NULL, NULL },
                  { STOP, "n4", "web@8080.service", 8080, R_SURPLUS, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "a pending order counts until its timeout: no over-placement",
                { WEB(3) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, W }, { "n4", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n3", "web@8080.service", 8080, PL, PEND, 100 } },
                100 + TIMEOUT - 1,
                { { 0 } },
                { { 0, NULL } },
        },
        {
                "a timed-out order is stopped and re-placed elsewhere, though that host is less loaded",
                { WEB(3), DB(0) },
                { { "n1", UP, 0, 0, WD }, { "n2", UP, 0, 0, WD }, { "n3", UP, 0, 0, WD }, { "n4", UP, 0, 0, WD } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n3", "web@8080.service", 8080, PL, PEND, 100 },
                  { "db", "n4", "db.service", 5432, ST, OK, 0 } },
                100 + TIMEOUT,
                { { STOP, "n3", "web@8080.service", 8080, R_TIMEOUT, NULL, NULL },
                  { START, "n4", "web@8080.service", 8080, R_TIMEOUT, "n3", "web@8080.service" } },
                { { 0, NULL } },
        },
        {
                "failed instances: a placed one is stopped, a static one only replaced",
                { WEB(3) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, FAIL, 0 },
                  { "web", "n2", "web@8080.service", 8080, PL, FAIL, 10 },
                  { "web", "n3", "web@8080.service", 8080, PL, OK, 20 } },
                1000,
                { { STOP, "n2", "web@8080.service", 8080, R_FAILED, NULL, NULL },
                  { START, "n1", "web@8081.service", 8081, R_FAILED, "n1", "web@8080.service" },
                  { START, "n2", "web@8081.service", 8081, R_FAILED, "n2", "web@8080.service" } },
                { { 0, NULL } },
        },
        {
                "static instances are never stopped, even above N",
                { WEB(1) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W }, { "n3", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n3", "web@8080.service", 8080, PL, OK, 5 } },
                1000,
                { { STOP, "n3", "web@8080.service", 8080, R_SURPLUS, NULL, NULL } },
                { { PLACEMENT_NOTE_STATIC_SURPLUS,
                    "web: 2 of 1 replicas running; 2 static instances are never stopped by placement" } },
        },
        {
                "replicas = 0: static instances only, placed ones stopped",
                { WEB(0) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8081.service", 8081, PL, OK, 5 },
                  { "web", "n2", "web@8082.service", 8082, PL, STOPPING, 6 } },
                1000,
                { { STOP, "n2", "web@8081.service", 8081, R_SURPLUS, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "ports and unit names never collide on a host, whatever uses them",
                { WEB(4) },
                { { "n1", UP, 0, 0, W }, { "n2", UP, 0, 0, { "db", NULL } } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "db", "n1", "db.service", 8081, ST, OK, 0 },
                  { "web", "n1", "web@8082.service", 8082, PL, STOPPING, 3 },
                  { "web", "n1", "web@8084.service", 9000, ST, OK, 0 },
                  { "web", "n1", "web@8086.service", 8086, PL, FAIL, 4 } },
                1000,
                { { STOP, "n1", "web@8086.service", 8086, R_FAILED, NULL, NULL },
                  { START, "n1", "web@8083.service", 8083, R_FAILED, "n1", "web@8086.service" },
                  { START, "n1", "web@8085.service", 8085, R_MISSING, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "no free port on any eligible host",
                { { "web", "web@.service", 3, 8080, 8081 } },
                { { "n1", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n1", "web@8081.service", 8081, PL, OK, 0 } },
                1000,
                { { 0 } },
                { { PLACEMENT_NOTE_NO_PORT, "no free port in 8080-8081 on any eligible host for web: 2 of 3 replicas running" } },
        },
        {
                "services in input order share the load",
                { WEB(2), DB(1) },
                { { "n1", UP, 0, 0, WD }, { "n2", UP, 0, 0, WD }, { "n3", UP, 0, 0, WD } },
                { { NULL } },
                1000,
                { { START, "n1", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n2", "web@8080.service", 8080, R_MISSING, NULL, NULL },
                  { START, "n3", "db@5432.service", 5432, R_MISSING, NULL, NULL } },
                { { 0, NULL } },
        },
        {
                "a host unknown to membership counts as down; a suspect host's instance still counts",
                { WEB(3) },
                { { "n1", UP, 0, 0, W }, { "n2", SU, 0, 0, W }, { "n3", UP, 0, 0, W } },
                { { "web", "n1", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n2", "web@8080.service", 8080, ST, OK, 0 },
                  { "web", "n9", "web@8080.service", 8080, PL, OK, 1 },
                  { "other", "n3", "other.service", 1, PL, FAIL, 1 } },
                1000,
                { { START, "n3", "web@8080.service", 8080, R_DEAD, "n9", "web@8080.service" } },
                { { 0, NULL } },
        },
};

/* Turns a case into placement_input; reverse lists hosts and instances backwards. */
static size_t build(size_t c, bool reverse, struct placement_host *hosts, struct placement_instance *insts,
                    struct placement_input *in) {
        size_t ns = 0, nh = 0, ni = 0;

        while (ns < ELEMENTSOF(cases[c].services) && cases[c].services[ns].name)
                ns++;
        while (nh < ELEMENTSOF(cases[c].hosts) && cases[c].hosts[nh].name)
                nh++;
        while (ni < ELEMENTSOF(cases[c].instances) && cases[c].instances[ni].service)
                ni++;
        for (size_t i = 0; i < nh; i++) {
                const struct hspec *h = &cases[c].hosts[reverse ? nh - 1 - i : i];
                size_t n = 0;

                while (h->services[n])
                        n++;
                hosts[i] = (struct placement_host) {
                        .name = h->name, .state = h->state, .draining = h->draining, .witness = h->witness,
                        .services = h->services, .n_services = n,
                };
        }
        for (size_t i = 0; i < ni; i++) {
                const struct ispec *x = &cases[c].instances[reverse ? ni - 1 - i : i];

                insts[i] = (struct placement_instance) {
                        .service = x->service, .node = x->node, .unit = x->unit, .port = x->port,
                        .origin = x->origin, .state = x->state, .placed_at_us = x->at,
                };
        }
        *in = (struct placement_input) {
                .term = TERM, .now_us = cases[c].now, .pending_timeout_us = TIMEOUT,
                .services = cases[c].services, .n_services = ns,
                .hosts = hosts, .n_hosts = nh, .instances = insts, .n_instances = ni,
        };
        return ns;
}

static void check_case(size_t c, bool reverse) {
        struct placement_host hosts[8];
        struct placement_instance insts[10];
        struct placement_input in;
        struct placement_plan plan;
        char error[128] = "";
        size_t nw = 0, nn = 0;

        build(c, reverse, hosts, insts, &in);
        while (nw < ELEMENTSOF(cases[c].want) && cases[c].want[nw].node)
                nw++;
        while (nn < ELEMENTSOF(cases[c].notes) && cases[c].notes[nn].text)
                nn++;
        CU_ASSERT_EQUAL_FATAL(placement_plan(&in, &plan, error, sizeof(error)), 0);
        if (plan.n_orders != nw || plan.n_notes != nn) {
                fprintf(stderr, "\n%s%s: %zu orders, %zu notes\n", cases[c].name, reverse ? " (reversed)" : "",
                        plan.n_orders, plan.n_notes);
                for (size_t i = 0; i < plan.n_orders; i++)
                        fprintf(stderr, "  %s %s %s: %s\n", placement_order_kind_to_string(plan.orders[i].kind),
                                plan.orders[i].node, plan.orders[i].unit, plan.orders[i].cause);
                for (size_t i = 0; i < plan.n_notes; i++)
                        fprintf(stderr, "  note: %s\n", plan.notes[i].text);
        }
        CU_ASSERT_EQUAL(plan.n_orders, nw);
        CU_ASSERT_EQUAL(plan.n_notes, nn);
        for (size_t i = 0; i < nw && i < plan.n_orders; i++) {
                const struct placement_order *o = &plan.orders[i];
                const struct ospec *w = &cases[c].want[i];

                if (o->kind != w->kind || strcmp(o->node, w->node) || strcmp(o->unit, w->unit) || o->port != w->port ||
                    o->reason != w->reason)
                        fprintf(stderr, "\n%s: order %zu is %s %s %s %u %s (%s)\n", cases[c].name, i,
                                placement_order_kind_to_string(o->kind), o->node, o->unit, o->port,
                                placement_reason_to_string(o->reason), o->cause);
                CU_ASSERT_EQUAL(o->kind, w->kind);
                CU_ASSERT_STRING_EQUAL(o->node, w->node);
                CU_ASSERT_STRING_EQUAL(o->unit, w->unit);
                CU_ASSERT_EQUAL(o->port, w->port);
                CU_ASSERT_EQUAL(o->reason, w->reason);
                CU_ASSERT_STRING_EQUAL(o->service, strncmp(o->unit, "db", 2) == 0 ? "db" : "web");
                CU_ASSERT_STRING_EQUAL(o->replaces_node, w->replaces_node ? w->replaces_node : "");
                CU_ASSERT_STRING_EQUAL(o->replaces_unit, w->replaces_unit ? w->replaces_unit : "");
                CU_ASSERT_EQUAL(o->term, TERM);
                CU_ASSERT_TRUE(o->cause[0] != '\0');
                CU_ASSERT_TRUE(placement_order_valid(o, TERM));
        }
        for (size_t i = 0; i < nn && i < plan.n_notes; i++) {
                CU_ASSERT_EQUAL(plan.notes[i].kind, cases[c].notes[i].kind);
                CU_ASSERT_STRING_EQUAL(plan.notes[i].text, cases[c].notes[i].text);
        }
        /* The ports and unit names of every start are free on their host. */
        for (size_t i = 0; i < plan.n_orders; i++) {
                const struct placement_order *o = &plan.orders[i];

                if (o->kind != START)
                        continue;
                for (size_t j = 0; j < in.n_instances; j++)
                        if (strcmp(insts[j].node, o->node) == 0) {
                                CU_ASSERT_NOT_EQUAL(insts[j].port, o->port);
                                CU_ASSERT_STRING_NOT_EQUAL(insts[j].unit, o->unit);
                        }
                for (size_t j = 0; j < i; j++)
                        if (plan.orders[j].kind == START && strcmp(plan.orders[j].node, o->node) == 0) {
                                CU_ASSERT_NOT_EQUAL(plan.orders[j].port, o->port);
                                CU_ASSERT_STRING_NOT_EQUAL(plan.orders[j].unit, o->unit);
                        }
        }
        placement_plan_free(&plan);
        CU_ASSERT_PTR_NULL(plan.orders);
        CU_ASSERT_EQUAL(plan.n_orders, 0);
}

static void test_cases(void) {
        for (size_t c = 0; c < ELEMENTSOF(cases); c++)
                check_case(c, false);
}

/* Host and instance order in the input changes nothing. */
static void test_input_order(void) {
        for (size_t c = 0; c < ELEMENTSOF(cases); c++)
                check_case(c, true);
}

/* Runs case c and returns the cause of order i (or note i when note is set). */
static void expect_text(size_t c, uint64_t now, size_t i, bool is_note, const char *want) {
        struct placement_host hosts[8];
        struct placement_instance insts[10];
        struct placement_input in;
        struct placement_plan plan;

        build(c, false, hosts, insts, &in);
        in.now_us = now;
        CU_ASSERT_EQUAL_FATAL(placement_plan(&in, &plan, NULL, 0), 0);
        if (is_note) {
                CU_ASSERT_FATAL(i < plan.n_notes);
                CU_ASSERT_STRING_EQUAL(plan.notes[i].text, want);
        } else {
                CU_ASSERT_FATAL(i < plan.n_orders);
                CU_ASSERT_STRING_EQUAL(plan.orders[i].cause, want);
                if (strcmp(plan.orders[i].cause, want) != 0)
                        fprintf(stderr, "\ngot: %s\n", plan.orders[i].cause);
        }
        placement_plan_free(&plan);
}

static size_t case_named(const char *prefix) {
        for (size_t c = 0; c < ELEMENTSOF(cases); c++)
                if (strncmp(cases[c].name, prefix, strlen(prefix)) == 0)
                        return c;
        CU_FAIL_FATAL("no such case");
        return 0;
}

static void test_causes(void) {
        expect_text(case_named("N=3 on 5 hosts"), 1000, 0, false,
                    "web: 0 of 3 replicas running; web@8080.service on n2");
        expect_text(case_named("N=3 on 5 hosts"), 1000, 2, false,
                    "web: 2 of 3 replicas running; web@8080.service on n5");
        expect_text(case_named("a dead host's"), 1000, 0, false,
                    "web: 1 of 3 replicas running; web@8080.service on n5 replaces web@8080.service on n2 (host down)");
        expect_text(case_named("a dead host's"), 1000, 1, false,
                    "web: 2 of 3 replicas running; web@8080.service on n4 replaces web@8080.service on n3 (host down)");
        expect_text(case_named("a timed-out order"), 100 + TIMEOUT, 0, false,
                    "web: web@8080.service on n3 not healthy 30000ms after its start order");
        expect_text(case_named("a timed-out order"), 100 + TIMEOUT, 1, false,
                    "web: 2 of 3 replicas running; web@8080.service on n4 replaces web@8080.service on n3 "
                    "(not healthy 30000ms after its start order)");
        expect_text(case_named("a returning host's"), 1000, 0, false,
                    "web: 4 of 3 replicas running; stops the oldest placement, web@8080.service on n3");
        expect_text(case_named("failed instances"), 1000, 0, false, "web: web@8080.service on n2 failed");
        expect_text(case_named("replicas = 0"), 1000, 0, false,
                    "web: replicas = 0, static instances only; stops web@8081.service on n2");
        expect_text(case_named("no eligible host"), 1000, 0, true, "no eligible host for web: 2 of 3 replicas running");
}

/*
 * The orders of one plan, applied (starts become healthy, stops disappear),
 * make the next plan empty: placement converges instead of flapping.
 */
static void test_converges(void) {
        static const char *const web[] = { "web" };
        struct placement_host hosts[5];
        struct placement_instance insts[16];
        char units[16][PLACEMENT_UNIT_MAX + 1], nodes[5][8];
        struct placement_service svc = WEB(3);
        struct placement_input in = {
                .term = TERM, .now_us = 1000, .pending_timeout_us = TIMEOUT, .services = &svc, .n_services = 1,
                .hosts = hosts, .n_hosts = 5, .instances = insts, .n_instances = 0,
        };
        struct placement_plan plan;

        for (size_t i = 0; i < 5; i++) {
                snprintf(nodes[i], sizeof(nodes[i]), "n%zu", i + 1);
                hosts[i] = (struct placement_host) { .name = nodes[i], .state = UP, .services = web, .n_services = 1 };
        }
        for (int round = 0; round < 4; round++) {
                size_t n_start = 0;

                /* Round 1: n1 dies; round 2: it returns with its instance; round 3: steady. */
                if (round == 1)
                        hosts[0].state = DN;
                if (round == 2)
                        hosts[0].state = UP;
                CU_ASSERT_EQUAL_FATAL(placement_plan(&in, &plan, NULL, 0), 0);
                for (size_t i = 0; i < plan.n_orders; i++) {
                        const struct placement_order *o = &plan.orders[i];

                        if (o->kind == START) {
                                CU_ASSERT_FATAL(in.n_instances < ELEMENTSOF(insts));
                                snprintf(units[in.n_instances], sizeof(units[0]), "%s", o->unit);
                                insts[in.n_instances] = (struct placement_instance) {
                                        .service = "web", .node = hosts[o->node[1] - '1'].name,
                                        .unit = units[in.n_instances], .port = o->port, .origin = PL,
                                        .state = OK, .placed_at_us = in.now_us,
                                };
                                in.n_instances++;
                                n_start++;
                        } else {
                                for (size_t j = 0; j < in.n_instances; j++)
                                        if (strcmp(insts[j].node, o->node) == 0 && strcmp(insts[j].unit, o->unit) == 0) {
                                                insts[j] = insts[--in.n_instances];
                                                if (j < in.n_instances)
                                                        snprintf(units[j], sizeof(units[0]), "%s", insts[j].unit);
                                                insts[j].unit = units[j];
                                                break;
                                        }
                        }
                }
                switch (round) {
                case 0:
                        CU_ASSERT_EQUAL(plan.n_orders, 3);
                        CU_ASSERT_EQUAL(n_start, 3);
                        break;
                case 1:
                        CU_ASSERT_EQUAL(plan.n_orders, 1);
                        CU_ASSERT_STRING_EQUAL(plan.orders[0].node, "n4");
                        CU_ASSERT_EQUAL(plan.orders[0].reason, R_DEAD);
                        break;
                case 2:
                        /* n1's instance is back and the oldest: it is the one stopped. */
                        CU_ASSERT_EQUAL_FATAL(plan.n_orders, 1);
                        CU_ASSERT_EQUAL(plan.orders[0].kind, STOP);
                        CU_ASSERT_STRING_EQUAL(plan.orders[0].node, "n1");
                        break;
                default:
                        CU_ASSERT_EQUAL(plan.n_orders, 0);
                        break;
                }
                placement_plan_free(&plan);
                in.now_us += USEC_PER_SEC;
        }
        CU_ASSERT_EQUAL(in.n_instances, 3);
}

/* More orders than PLACEMENT_ORDERS_MAX: the plan stops there and says so. */
static void test_truncated(void) {
        static const char *const svc_names[] = { "a", "b", "c", "d", "e" };
        static const char *const templates[] = { "a@.service", "b@.service", "c@.service", "d@.service", "e@.service" };
        struct placement_service svcs[5];
        struct placement_host host = { .name = "n1", .state = UP, .services = svc_names, .n_services = 5 };
        struct placement_input in = {
                .term = 1, .services = svcs, .n_services = 5, .hosts = &host, .n_hosts = 1,
        };
        struct placement_plan plan;

        for (size_t i = 0; i < 5; i++)
                svcs[i] = (struct placement_service) { svc_names[i], templates[i], PLACEMENT_REPLICAS_MAX,
                                                        (uint16_t) (10000 + i * 1000), (uint16_t) (10999 + i * 1000) };
        CU_ASSERT_EQUAL_FATAL(placement_plan(&in, &plan, NULL, 0), 0);
        CU_ASSERT_EQUAL(plan.n_orders, PLACEMENT_ORDERS_MAX);
        CU_ASSERT_EQUAL_FATAL(plan.n_notes, 1);
        CU_ASSERT_EQUAL(plan.notes[0].kind, PLACEMENT_NOTE_TRUNCATED);
        CU_ASSERT_STRING_EQUAL(plan.notes[0].text, "plan stopped at 4096 orders; the rest follows in the next plan");
        CU_ASSERT_STRING_EQUAL(plan.orders[0].unit, "a@10000.service");
        CU_ASSERT_STRING_EQUAL(plan.orders[PLACEMENT_ORDERS_MAX - 1].unit, "e@14095.service");
        placement_plan_free(&plan);
}

static void test_invalid(void) {
        static const char *const web[] = { "web" };
        static const struct {
                struct placement_service svc;
                struct placement_host host;
                struct placement_instance inst[2];
                size_t ni;
                uint64_t term;
                int ret;
                const char *error;
        } cases_bad[] = {
                { WEB(3), { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 0, -EINVAL,
                  "term 0: only an elected leader places instances" },
                { { "web", "web@8080.service", 1, 1, 2 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "web: bad template unit (use e.g. \"web@.service\")" },
                { { "web", NULL, 1, 1, 2 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "web: bad template unit (use e.g. \"web@.service\")" },
                { { "web", "web@.service", 1, 0, 2 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "web: bad port range 0-2" },
                { { "web", "web@.service", 1, 90, 80 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "web: bad port range 90-80" },
                { { "web", "web@.service", PLACEMENT_REPLICAS_MAX + 1, 80, 90 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } },
                  0, 1, -EINVAL, "web: replicas 1001 above 1000" },
                { { "", "web@.service", 1, 80, 90 }, { "n1", UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "services[0]: bad name" },
                { WEB(1), { "n1", (enum placement_host_state) 9, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL,
                  "n1: bad host state 9" },
                { WEB(1), { NULL, UP, 0, 0, web, 1 }, { { 0 } }, 0, 1, -EINVAL, "hosts[0]: bad name" },
                { WEB(1), { "n1", UP, 0, 0, NULL, 1 }, { { 0 } }, 0, 1, -EINVAL, "n1: bad service list" },
                { WEB(1), { "n1", UP, 0, 0, web, 1 },
                  { { "web", "n1", "web@.service", 80, ST, OK, 0 } }, 1, 1, -EINVAL,
                  "instances[0]: bad service, node or unit name" },
                { WEB(1), { "n1", UP, 0, 0, web, 1 },
                  { { "web", "n1", "web@80.service", 80, (enum placement_origin) 2, OK, 0 } }, 1, 1, -EINVAL,
                  "web@80.service on n1: bad origin or state" },
                { WEB(1), { "n1", UP, 0, 0, web, 1 },
                  { { "web", "n1", "web@80.service", 80, ST, OK, 0 }, { "web", "n1", "web@80.service", 81, PL, OK, 0 } },
                  2, 1, -EINVAL, "instance web@80.service on n1 listed twice" },
        };
        struct placement_plan plan = { .n_orders = 12345 };
        struct placement_service two[2] = { WEB(1), WEB(2) };
        struct placement_host two_hosts[2] = { { "n1", UP, 0, 0, web, 1 }, { "n1", DN, 0, 0, web, 1 } };
        char error[160];

        for (size_t i = 0; i < ELEMENTSOF(cases_bad); i++) {
                struct placement_input in = {
                        .term = cases_bad[i].term, .services = &cases_bad[i].svc, .n_services = 1,
                        .hosts = &cases_bad[i].host, .n_hosts = 1, .instances = cases_bad[i].inst,
                        .n_instances = cases_bad[i].ni,
                };

                error[0] = '\0';
                CU_ASSERT_EQUAL(placement_plan(&in, &plan, error, sizeof(error)), cases_bad[i].ret);
                CU_ASSERT_STRING_EQUAL(error, cases_bad[i].error);
                CU_ASSERT_EQUAL(plan.n_orders, 12345);
        }
        CU_ASSERT_EQUAL(placement_plan(&(struct placement_input) { .term = 1, .services = two, .n_services = 2 }, &plan,
                                       error, sizeof(error)), -EINVAL);
        CU_ASSERT_STRING_EQUAL(error, "service web listed twice");
        CU_ASSERT_EQUAL(placement_plan(&(struct placement_input) { .term = 1, .hosts = two_hosts, .n_hosts = 2 }, &plan,
                                       error, sizeof(error)), -EINVAL);
        CU_ASSERT_STRING_EQUAL(error, "host n1 listed twice");
        CU_ASSERT_EQUAL(placement_plan(&(struct placement_input) { .term = 1, .n_hosts = PLACEMENT_HOSTS_MAX + 1 },
                                       &plan, NULL, 0), -E2BIG);
        CU_ASSERT_EQUAL(placement_plan(&(struct placement_input) { .term = 1, .n_hosts = 1 }, &plan, NULL, 0), -EINVAL);
        CU_ASSERT_EQUAL(placement_plan(NULL, &plan, NULL, 0), -EINVAL);
        CU_ASSERT_EQUAL(plan.n_orders, 12345);
        /* An empty cluster is no error: nothing to do. */
        CU_ASSERT_EQUAL(placement_plan(&(struct placement_input) { .term = 1 }, &plan, NULL, 0), 0);
        CU_ASSERT_EQUAL(plan.n_orders, 0);
        CU_ASSERT_EQUAL(plan.n_notes, 0);
        placement_plan_free(&plan);
        placement_plan_free(NULL);
}

static void test_fencing(void) {
        struct placement_order o = {
                .kind = START, .reason = R_MISSING, .term = 5, .node = "n2", .service = "web",
                .unit = "web@8080.service", .port = 8080,
        };
        static const struct {
                uint64_t current;
                int ret;
        } terms[] = {
                { 0, 0 }, { 4, 0 }, { 5, 0 }, { 6, -ESTALE }, { UINT64_MAX, -ESTALE },
        };

        for (size_t i = 0; i < ELEMENTSOF(terms); i++) {
                CU_ASSERT_EQUAL(placement_order_check(&o, terms[i].current), terms[i].ret);
                CU_ASSERT_EQUAL(placement_order_valid(&o, terms[i].current), terms[i].ret == 0);
        }

        struct placement_order bad;

        bad = o, bad.term = 0;
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, bad.kind = (enum placement_order_kind) 2;
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, bad.reason = (enum placement_reason) -1;
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, bad.node[0] = '\0';
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, snprintf(bad.unit, sizeof(bad.unit), "web@.service");
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, snprintf(bad.unit, sizeof(bad.unit), "../web.service");
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, memset(bad.unit, 'a', sizeof(bad.unit));
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, memset(bad.node, 'a', sizeof(bad.node));
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad = o, bad.port = 0;
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), -EINVAL);
        bad.kind = STOP;        /* a stop needs no port */
        CU_ASSERT_EQUAL(placement_order_check(&bad, 0), 0);
        CU_ASSERT_EQUAL(placement_order_check(NULL, 0), -EINVAL);
        CU_ASSERT_FALSE(placement_order_valid(NULL, 0));
}

static void test_printers(void) {
        CU_ASSERT_STRING_EQUAL(placement_host_state_to_string(UP), "up");
        CU_ASSERT_STRING_EQUAL(placement_host_state_to_string(SU), "suspect");
        CU_ASSERT_STRING_EQUAL(placement_host_state_to_string(DN), "down");
        CU_ASSERT_PTR_NULL(placement_host_state_to_string(_PLACEMENT_HOST_STATE_MAX));
        CU_ASSERT_PTR_NULL(placement_host_state_to_string(_PLACEMENT_HOST_STATE_INVALID));
        CU_ASSERT_STRING_EQUAL(placement_origin_to_string(ST), "static");
        CU_ASSERT_STRING_EQUAL(placement_origin_to_string(PL), "placed");
        CU_ASSERT_PTR_NULL(placement_origin_to_string(_PLACEMENT_ORIGIN_MAX));
        CU_ASSERT_PTR_NULL(placement_origin_to_string(_PLACEMENT_ORIGIN_INVALID));
        CU_ASSERT_STRING_EQUAL(placement_instance_state_to_string(PEND), "pending");
        CU_ASSERT_STRING_EQUAL(placement_instance_state_to_string(OK), "healthy");
        CU_ASSERT_STRING_EQUAL(placement_instance_state_to_string(BAD), "unhealthy");
        CU_ASSERT_STRING_EQUAL(placement_instance_state_to_string(FAIL), "failed");
        CU_ASSERT_STRING_EQUAL(placement_instance_state_to_string(STOPPING), "stopping");
        CU_ASSERT_PTR_NULL(placement_instance_state_to_string(_PLACEMENT_INSTANCE_STATE_MAX));
        CU_ASSERT_PTR_NULL(placement_instance_state_to_string(_PLACEMENT_INSTANCE_STATE_INVALID));
        CU_ASSERT_STRING_EQUAL(placement_order_kind_to_string(START), "start");
        CU_ASSERT_STRING_EQUAL(placement_order_kind_to_string(STOP), "stop");
        CU_ASSERT_PTR_NULL(placement_order_kind_to_string(_PLACEMENT_ORDER_KIND_MAX));
        CU_ASSERT_PTR_NULL(placement_order_kind_to_string(_PLACEMENT_ORDER_KIND_INVALID));
        CU_ASSERT_STRING_EQUAL(placement_reason_to_string(R_MISSING), "missing");
        CU_ASSERT_STRING_EQUAL(placement_reason_to_string(R_DEAD), "host_dead");
        CU_ASSERT_STRING_EQUAL(placement_reason_to_string(R_TIMEOUT), "timeout");
        CU_ASSERT_STRING_EQUAL(placement_reason_to_string(R_FAILED), "failed");
        CU_ASSERT_STRING_EQUAL(placement_reason_to_string(R_SURPLUS), "surplus");
        CU_ASSERT_PTR_NULL(placement_reason_to_string(_PLACEMENT_REASON_MAX));
        CU_ASSERT_PTR_NULL(placement_reason_to_string(_PLACEMENT_REASON_INVALID));
        CU_ASSERT_STRING_EQUAL(placement_note_kind_to_string(PLACEMENT_NOTE_NO_HOST), "no_host");
        CU_ASSERT_STRING_EQUAL(placement_note_kind_to_string(PLACEMENT_NOTE_NO_PORT), "no_port");
        CU_ASSERT_STRING_EQUAL(placement_note_kind_to_string(PLACEMENT_NOTE_STATIC_SURPLUS), "static_surplus");
        CU_ASSERT_STRING_EQUAL(placement_note_kind_to_string(PLACEMENT_NOTE_TRUNCATED), "truncated");
        CU_ASSERT_PTR_NULL(placement_note_kind_to_string(_PLACEMENT_NOTE_KIND_MAX));
        CU_ASSERT_PTR_NULL(placement_note_kind_to_string(_PLACEMENT_NOTE_KIND_INVALID));
}

int main(void) {
        CU_TestInfo tests[] = {
                { "scenarios", test_cases },
                { "input order does not matter", test_input_order },
                { "causes and notes", test_causes },
                { "converges without flapping", test_converges },
                { "order cap", test_truncated },
                { "invalid input", test_invalid },
                { "fencing by term", test_fencing },
                { "printers", test_printers },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "placement", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
