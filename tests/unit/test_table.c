/*
 * The balancer table: backend states from member states, drains (exact TTL
 * expiry), health and breaker; deterministic order; version bumps only on
 * change; digests; the follower's accepted/stale/fenced rule; the binary
 * form (round trip, every truncation and each malformation refused); diff
 * and the failover detail text.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/table.h"
#include "unit.h"

#define UP BALANCE_UP
#define DR BALANCE_DRAINING
#define DN BALANCE_DOWN
#define EJ BALANCE_EJECTED
#define NONE _BALANCE_STATE_INVALID

#define N_REPORTS 20
static struct table_report reports[N_REPORTS];
static struct table_instance pool[N_REPORTS][TABLE_REPORT_INSTANCES_MAX];

/*
 * Empties a report. reports[k] always gets pool[k] back (a test may have
 * copied another report over it); any other report keeps its own array.
 */
static void report_init(struct table_report *r, const char *node) {
        struct table_instance *inst = r->instances;

        for (size_t k = 0; k < N_REPORTS; k++)
                if (r == &reports[k])
                        inst = pool[k];
        memset(r, 0, sizeof(*r));
        r->instances = inst;
        snprintf(r->node, sizeof(r->node), "%s", node);
}

static struct table_instance *add_instance(struct table_report *r, const char *service, const char *instance,
                                           uint16_t port, uint32_t weight) {
        struct table_instance *i = &r->instances[r->n_instances++];

        *i = (struct table_instance) { .port = port, .weight = weight, .healthy = true, .breaker = BREAKER_CLOSED };
        snprintf(i->service, sizeof(i->service), "%s", service);
        snprintf(i->instance, sizeof(i->instance), "%s", instance);
        snprintf(i->address, sizeof(i->address), "127.0.0.1");
        return i;
}

static void test_printers(void) {
        CU_ASSERT_STRING_EQUAL(table_apply_result_to_string(TABLE_APPLY_ACCEPTED), "accepted");
        CU_ASSERT_STRING_EQUAL(table_apply_result_to_string(TABLE_APPLY_STALE), "stale");
        CU_ASSERT_STRING_EQUAL(table_apply_result_to_string(TABLE_APPLY_FENCED), "fenced");
        CU_ASSERT_PTR_NULL(table_apply_result_to_string(_TABLE_APPLY_MAX));
        CU_ASSERT_PTR_NULL(table_apply_result_to_string((enum table_apply_result) -1));
}

static void test_validation(void) {
        static const struct {
                const char *service, *instance, *address;
                uint16_t port;
                uint32_t weight;
                int breaker;
                int ret;
                const char *reason;
        } cases[] = {
                { "web", "web@8080.service", "127.0.0.1", 8080, 10, BREAKER_CLOSED, 0, NULL },
                { "a-b_c9", "x", "h", 1, BALANCE_WEIGHT_MAX, BREAKER_HALF_OPEN, 0, NULL },
                { "Web", "x", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad service name" },
                { "-web", "x", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad service name" },
                { "", "x", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad service name" },
                { "web", "", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad instance name" },
                { "web", "a b", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad instance name" },
                { "web", "x", "", 1, 1, BREAKER_CLOSED, -EINVAL, "bad address" },
                { "web", "x", "h\x7f", 1, 1, BREAKER_CLOSED, -EINVAL, "bad address" },
                { "web", "x", "h", 0, 1, BREAKER_CLOSED, -EINVAL, "port 0" },
                { "web", "x", "h", 1, BALANCE_WEIGHT_MAX + 1, BREAKER_CLOSED, -EINVAL, "weight above maximum" },
                { "web", "x", "h", 1, 1, _BREAKER_STATE_MAX, -EINVAL, "bad breaker state" },
                { "web", "x", "h", 1, 1, -1, -EINVAL, "bad breaker state" },
                { "web", "x", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad algorithm" },
                { "web", "x", "h", 1, 1, BREAKER_CLOSED, -EINVAL, "bad algorithm" },
        };
        /* The last two cases: algorithm _BALANCE_ALGORITHM_MAX, then -1; the others a valid one. */
        static const int algorithms[] = { [ELEMENTSOF(cases) - 2] = _BALANCE_ALGORITHM_MAX,
                                          [ELEMENTSOF(cases) - 1] = -1 };
        struct table_report *r = &reports[0];
        const char *why;

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                struct table_instance i = {
                        .port = cases[k].port, .weight = cases[k].weight,
                        .breaker = (enum breaker_state) cases[k].breaker, .healthy = true,
                        .algorithm = (enum balance_algorithm) (algorithms[k] ? algorithms[k] : (int) (k % 6)),
                };

                snprintf(i.service, sizeof(i.service), "%s", cases[k].service);
                snprintf(i.instance, sizeof(i.instance), "%s", cases[k].instance);
                snprintf(i.address, sizeof(i.address), "%s", cases[k].address);
                why = NULL;
                CU_ASSERT_EQUAL(table_instance_validate(&i, &why), cases[k].ret);
                if (cases[k].reason) {
                        CU_ASSERT_STRING_EQUAL(why, cases[k].reason);
                } else {
                        CU_ASSERT_PTR_NULL(why);
                }
        }

        /* Names at and over their limits. */
        struct table_instance big = { .port = 1, .weight = 1 };
        snprintf(big.address, sizeof(big.address), "h");
        memset(big.service, 'a', TABLE_SERVICE_MAX - 2);
        memset(big.instance, 'i', TABLE_INSTANCE_MAX - 1);
        CU_ASSERT_EQUAL(table_instance_validate(&big, NULL), 0);
        memset(big.service, 'a', TABLE_SERVICE_MAX);   /* no NUL inside the field */
        CU_ASSERT_EQUAL(table_instance_validate(&big, NULL), -EINVAL);

        report_init(r, "n1");
        add_instance(r, "web", "web@1.service", 1, 1);
        add_instance(r, "api", "web@1.service", 1, 1);
        CU_ASSERT_EQUAL(table_report_validate(r, &why), 0);
        add_instance(r, "web", "web@1.service", 2, 1);
        CU_ASSERT_EQUAL(table_report_validate(r, &why), -EEXIST);
        CU_ASSERT_STRING_EQUAL(why, "instance reported twice");
        r->n_instances = TABLE_REPORT_INSTANCES_MAX + 1;
        CU_ASSERT_EQUAL(table_report_validate(r, &why), -EINVAL);
        CU_ASSERT_STRING_EQUAL(why, "too many instances");
        r->n_instances = TABLE_REPORT_INSTANCES_MAX;
        for (size_t k = 0; k < TABLE_REPORT_INSTANCES_MAX; k++) {
                r->instances[k] = r->instances[0];
                snprintf(r->instances[k].instance, TABLE_INSTANCE_MAX, "web@%zu.service", k);
        }
        CU_ASSERT_EQUAL(table_report_validate(r, &why), 0);
        r->instances = NULL;
        CU_ASSERT_EQUAL(table_report_validate(r, &why), -EINVAL);
        CU_ASSERT_STRING_EQUAL(why, "no instances array");
        r->n_instances = 0;
        CU_ASSERT_EQUAL(table_report_validate(r, &why), 0);
        report_init(r, "");
        CU_ASSERT_EQUAL(table_report_validate(r, &why), -EINVAL);
        CU_ASSERT_STRING_EQUAL(why, "bad node name");
        report_init(r, "n 1");
        CU_ASSERT_EQUAL(table_report_validate(r, NULL), -EINVAL);
}

/* Builds a one-backend table under term 1 and returns that backend's state. */
static enum balance_state one_state(const struct table_member *m, const struct table_drain *d, size_t n_drains,
                                    uint64_t now, bool healthy, enum breaker_state br) {
        struct table_builder *b;
        struct table_instance *i;
        enum balance_state s = NONE;

        report_init(&reports[0], "n1");
        i = add_instance(&reports[0], "web", "web@8080.service", 8080, 10);
        i->healthy = healthy;
        i->breaker = br;
        struct table_input in = {
                .now = now, .members = m, .n_members = m ? 1 : 0, .reports = reports, .n_reports = 1,
                .drains = d, .n_drains = n_drains,
        };
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        if (table_builder_build(b, 1, &in, NULL) == 0) {
                const struct table_set *t = table_builder_current(b);

                CU_ASSERT_EQUAL(t->n_services, 1);
                CU_ASSERT_EQUAL(t->services[0].n_backends, 1);
                s = t->services[0].backends[0].state;
        }
        table_builder_free(b);
        return s;
}

static void test_states(void) {
        enum { NO_MEMBER = 0 };
        static const struct {
                int member;             /* membership_state, or NO_MEMBER */
                int drain;              /* 0 none, 1 until 2000, 2 forever, 3 until 1000 (== now), 4 expired */
                bool healthy;
                enum breaker_state breaker;
                enum balance_state expect;
        } cases[] = {
                { MEMBERSHIP_ALIVE, 0, true, BREAKER_CLOSED, UP },
                { MEMBERSHIP_SUSPECT, 0, true, BREAKER_CLOSED, UP },
                { MEMBERSHIP_DEAD, 0, true, BREAKER_CLOSED, DN },
                { MEMBERSHIP_LEFT, 0, true, BREAKER_CLOSED, DN },
                { NO_MEMBER, 0, true, BREAKER_CLOSED, DN },
                { MEMBERSHIP_ALIVE, 0, false, BREAKER_CLOSED, DN },
                { MEMBERSHIP_ALIVE, 0, true, BREAKER_OPEN, EJ },
                { MEMBERSHIP_ALIVE, 0, true, BREAKER_HALF_OPEN, EJ },
                { MEMBERSHIP_ALIVE, 0, false, BREAKER_OPEN, DN },
                { MEMBERSHIP_SUSPECT, 0, true, BREAKER_OPEN, EJ },
                { MEMBERSHIP_ALIVE, 1, true, BREAKER_CLOSED, DR },
                { MEMBERSHIP_ALIVE, 2, true, BREAKER_CLOSED, DR },
                { MEMBERSHIP_ALIVE, 3, true, BREAKER_CLOSED, UP },
                { MEMBERSHIP_ALIVE, 4, true, BREAKER_CLOSED, UP },
                { MEMBERSHIP_SUSPECT, 1, true, BREAKER_CLOSED, DR },
                { MEMBERSHIP_DEAD, 1, true, BREAKER_CLOSED, DN },
                { MEMBERSHIP_ALIVE, 1, false, BREAKER_CLOSED, DN },
                { MEMBERSHIP_ALIVE, 1, true, BREAKER_OPEN, EJ },
        };
        static const uint64_t untils[] = { 0, 2000, TABLE_DRAIN_FOREVER, 1000, 999 };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                struct table_member m = { .name = "n1", .state = (enum membership_state) cases[k].member };
                struct table_drain d = { .node = "n1", .until_us = untils[cases[k].drain] };
                enum balance_state s = one_state(cases[k].member == NO_MEMBER ? NULL : &m, &d,
                                                 cases[k].drain ? 1 : 0, 1000, cases[k].healthy,
                                                 cases[k].breaker);

                if (s != cases[k].expect)
                        fprintf(stderr, "case %zu: got %s, want %s\n", k, balance_state_to_string(s),
                                balance_state_to_string(cases[k].expect));
                CU_ASSERT_EQUAL(s, cases[k].expect);
        }
}

static void test_drain_expiry(void) {
        struct table_member m = { .name = "n1", .state = MEMBERSHIP_ALIVE };
        struct table_drain d[] = {
                { .node = "n1", .until_us = 5000 },
                { .node = "n2", .until_us = 3000 },
                { .node = "n3", .until_us = TABLE_DRAIN_FOREVER },
        };

        CU_ASSERT_EQUAL(one_state(&m, d, 1, 4999, true, BREAKER_CLOSED), DR);
        CU_ASSERT_EQUAL(one_state(&m, d, 1, 5000, true, BREAKER_CLOSED), UP);
        CU_ASSERT_EQUAL(one_state(&m, d, 1, 5001, true, BREAKER_CLOSED), UP);
        /* Another node's drain does not touch n1; a node drained twice: the latest until wins. */
        CU_ASSERT_EQUAL(one_state(&m, d + 1, 2, 0, true, BREAKER_CLOSED), UP);
        struct table_drain twice[] = { { .node = "n1", .until_us = 10 }, { .node = "n1", .until_us = 20 } };
        CU_ASSERT_EQUAL(one_state(&m, twice, 2, 15, true, BREAKER_CLOSED), DR);
        CU_ASSERT_EQUAL(one_state(&m, twice, 2, 20, true, BREAKER_CLOSED), UP);
        struct table_drain mixed[] = {
                { .node = "n2", .until_us = 100 }, { .node = "n1", .until_us = 20 }, { .node = "n0", .until_us = 100 },
                { .node = "n1", .until_us = 10 }, { .node = "n10", .until_us = 100 }, { .node = "n1", .until_us = 30 },
        };
        CU_ASSERT_EQUAL(one_state(&m, mixed, 6, 29, true, BREAKER_CLOSED), DR);
        CU_ASSERT_EQUAL(one_state(&m, mixed, 6, 30, true, BREAKER_CLOSED), UP);
        CU_ASSERT_EQUAL(one_state(&m, mixed, 5, 20, true, BREAKER_CLOSED), UP);
        CU_ASSERT_EQUAL(one_state(&m, mixed, 5, 19, true, BREAKER_CLOSED), DR);

        CU_ASSERT_EQUAL(table_drains_next_expiry(d, 3, 0), 3000);
        CU_ASSERT_EQUAL(table_drains_next_expiry(d, 3, 2999), 3000);
        CU_ASSERT_EQUAL(table_drains_next_expiry(d, 3, 3000), 5000);
        CU_ASSERT_EQUAL(table_drains_next_expiry(d, 3, 5000), UINT64_MAX);
        CU_ASSERT_EQUAL(table_drains_next_expiry(NULL, 0, 0), UINT64_MAX);
}

/* Three nodes: n1 and n2 run web and api, n3 runs web. */
static void three_nodes(void) {
        report_init(&reports[0], "n1");
        add_instance(&reports[0], "web", "web@8081.service", 8081, 10);
        add_instance(&reports[0], "web", "web@8080.service", 8080, 10);
        add_instance(&reports[0], "api", "api@9000.service", 9000, 5);
        report_init(&reports[1], "n2");
        add_instance(&reports[1], "web", "web@8080.service", 8080, 10);
        add_instance(&reports[1], "api", "api@9000.service", 9000, 5);
        report_init(&reports[2], "n3");
        add_instance(&reports[2], "web", "web@8080.service", 8080, 10);
}

static struct table_member members3[] = {
        { "n1", MEMBERSHIP_ALIVE }, { "n2", MEMBERSHIP_ALIVE }, { "n3", MEMBERSHIP_ALIVE },
};

static struct table_input input3(void) {
        return (struct table_input) {
                .now = 1000, .members = members3, .n_members = 3, .reports = reports, .n_reports = 3,
        };
}

static void test_order(void) {
        static const char *const web[][2] = {
                { "n1", "web@8080.service" }, { "n1", "web@8081.service" },
                { "n2", "web@8080.service" }, { "n3", "web@8080.service" },
        };
        struct table_builder *a, *b;
        struct table_input in;
        const struct table_set *ta, *tb;
        struct table_report tmp;

        three_nodes();
        /* web's first backend in (node, instance) order is n1's web@8080, the second in n1's report. */
        reports[0].instances[0].algorithm = BALANCE_WRR;
        reports[0].instances[1].algorithm = BALANCE_WLC;
        reports[2].instances[0].algorithm = BALANCE_SOURCEHASH;
        reports[1].instances[1].algorithm = BALANCE_WRANDOM;    /* n2's api; n1's api is random */
        in = input3();
        CU_ASSERT_FATAL(table_builder_new(&a) == 0);
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        CU_ASSERT_EQUAL_FATAL(table_builder_build(a, 1, &in, NULL), 0);
        ta = table_builder_current(a);
        CU_ASSERT_EQUAL(ta->term, 1);
        CU_ASSERT_EQUAL(ta->version, 1);
        CU_ASSERT_EQUAL_FATAL(ta->n_services, 2);
        CU_ASSERT_STRING_EQUAL(ta->services[0].name, "api");
        CU_ASSERT_STRING_EQUAL(ta->services[1].name, "web");
        CU_ASSERT_EQUAL(ta->services[0].n_backends, 2);
        CU_ASSERT_EQUAL_FATAL(ta->services[1].n_backends, 4);
        for (size_t i = 0; i < 4; i++) {
                CU_ASSERT_STRING_EQUAL(ta->services[1].backends[i].node, web[i][0]);
                CU_ASSERT_STRING_EQUAL(ta->services[1].backends[i].instance, web[i][1]);
                CU_ASSERT_EQUAL(ta->services[1].backends[i].state, UP);
        }
        CU_ASSERT_EQUAL(ta->services[1].backends[1].port, 8081);
        CU_ASSERT_EQUAL(ta->services[0].backends[0].weight, 5);
        CU_ASSERT_PTR_EQUAL(table_find(ta, "web"), &ta->services[1]);
        CU_ASSERT_PTR_EQUAL(table_find(ta, "api"), &ta->services[0]);
        CU_ASSERT_PTR_NULL(table_find(ta, "db"));
        CU_ASSERT_EQUAL(ta->services[0].algorithm, BALANCE_RANDOM);
        CU_ASSERT_EQUAL(ta->services[1].algorithm, BALANCE_WLC);

        /* The same input in another order gives the same table. */
        tmp = reports[0];
        reports[0] = reports[2];
        reports[2] = tmp;
        struct table_instance ti = reports[2].instances[0];
        reports[2].instances[0] = reports[2].instances[2];
        reports[2].instances[2] = ti;
        struct table_member rev[] = { members3[2], members3[0], members3[1] };
        in.members = rev;
        CU_ASSERT_EQUAL_FATAL(table_builder_build(b, 1, &in, NULL), 0);
        tb = table_builder_current(b);
        CU_ASSERT_EQUAL(tb->services[1].algorithm, BALANCE_WLC);
        CU_ASSERT_TRUE(table_same_content(ta, tb));
        CU_ASSERT_EQUAL(ta->digest, tb->digest);

        uint8_t *ea, *eb;
        size_t la, lb;
        CU_ASSERT_EQUAL_FATAL(table_encode(ta, &ea, &la), 0);
        CU_ASSERT_EQUAL_FATAL(table_encode(tb, &eb, &lb), 0);
        CU_ASSERT_EQUAL(la, lb);
        CU_ASSERT_EQUAL(memcmp(ea, eb, la), 0);
        free(ea);
        free(eb);
        table_builder_free(a);
        table_builder_free(b);
}

static void test_build_errors(void) {
        struct table_builder *b;
        struct table_input in;
        struct table_member dup[] = { { "n1", MEMBERSHIP_ALIVE }, { "n1", MEMBERSHIP_DEAD } };
        struct table_member bad[] = { { "n1", (enum membership_state) 0 } };
        struct table_drain baddrain[] = { { "", 1 } };

        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        three_nodes();
        in = input3();
        CU_ASSERT_EQUAL(table_builder_build(b, 0, &in, NULL), -EINVAL);
        CU_ASSERT_EQUAL(table_builder_build(b, 1, NULL, NULL), -EINVAL);
        in.members = dup;
        in.n_members = 2;
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), -EEXIST);
        in.members = bad;
        in.n_members = 1;
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), -EINVAL);
        in = input3();
        in.drains = baddrain;
        in.n_drains = 1;
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), -EINVAL);
        in = input3();
        reports[1] = reports[0];
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), -EEXIST);
        CU_ASSERT_PTR_NULL(table_builder_current(b));

        /* 17 nodes x 64 instances of one service: more than TABLE_BACKENDS_MAX. */
        for (size_t n = 0; n < 17; n++) {
                char node[8];

                snprintf(node, sizeof(node), "n%zu", n);
                report_init(&reports[n], node);
                for (unsigned i = 0; i < 64; i++) {
                        char inst[32];

                        snprintf(inst, sizeof(inst), "web@%u.service", 8000 + i);
                        add_instance(&reports[n], "web", inst, (uint16_t) (8000 + i), 1);
                }
        }
        in = (struct table_input) { .reports = reports, .n_reports = 16 };
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), 0);
        CU_ASSERT_EQUAL(table_builder_current(b)->services[0].n_backends, 1024);
        in.n_reports = 17;
        CU_ASSERT_EQUAL(table_builder_build(b, 1, &in, NULL), -E2BIG);
        CU_ASSERT_EQUAL(table_builder_current(b)->version, 1);

        /* 65 nodes x 256 instances, one service each: more than TABLE_BACKENDS_TOTAL_MAX in all. */
        size_t n_many = TABLE_BACKENDS_TOTAL_MAX / TABLE_REPORT_INSTANCES_MAX + 1;
        struct table_report *many = calloc(n_many, sizeof(*many));
        struct table_instance *many_inst = calloc(n_many * TABLE_REPORT_INSTANCES_MAX, sizeof(*many_inst));
        CU_ASSERT_FATAL(many != NULL && many_inst != NULL);
        for (size_t n = 0; n < n_many; n++) {
                char node[8], svc[8];

                snprintf(node, sizeof(node), "n%zu", n);
                snprintf(svc, sizeof(svc), "s%zu", n);
                many[n].instances = many_inst + n * TABLE_REPORT_INSTANCES_MAX;
                report_init(&many[n], node);
                for (unsigned i = 0; i < TABLE_REPORT_INSTANCES_MAX; i++) {
                        char inst[32];

                        snprintf(inst, sizeof(inst), "i%u", i);
                        add_instance(&many[n], svc, inst, 1, 1);
                }
        }
        in = (struct table_input) { .reports = many, .n_reports = n_many - 1 };
        CU_ASSERT_EQUAL(table_builder_build(b, 2, &in, NULL), 0);
        CU_ASSERT_EQUAL(table_builder_current(b)->n_services, n_many - 1);
        in.n_reports = n_many;
        CU_ASSERT_EQUAL(table_builder_build(b, 2, &in, NULL), -E2BIG);
        free(many_inst);
        free(many);
        table_builder_free(b);
}

/*
 * Encodes by hand n_services services "s000".. of per_service backends
 * ("n0000".., instance "i", address "a"), to test the decoder's caps.
 */
static uint8_t *hand_encode(size_t n_services, size_t per_service, size_t *ret_len) {
        size_t len = 23 + n_services * (1 + 4 + 1 + 2 + per_service * (1 + 5 + 1 + 1 + 1 + 1 + 13));
        uint8_t *p = calloc(1, len), *w = p;

        CU_ASSERT_FATAL(p != NULL);
        memcpy(w, "AGTB\x02", 5);
        w += 5;
        w[7] = 1;                               /* term 1 */
        w[15] = 1;                              /* version 1 */
        w[16] = (uint8_t) (n_services >> 8);
        w[17] = (uint8_t) n_services;
        w += 18;
        for (size_t i = 0; i < n_services; i++) {
                *w++ = 4;
                w += sprintf((char *) w, "s%03zu", i);
                *w++ = BALANCE_WLC;
                *w++ = (uint8_t) (per_service >> 8);
                *w++ = (uint8_t) per_service;
                for (size_t j = 0; j < per_service; j++) {
                        *w++ = 5;
                        w += sprintf((char *) w, "n%04zu", j);
                        memcpy(w, "\001i\001a\000\001\000\001\000", 9);      /* port 1, weight 1, up */
                        w += 9 + 8;                                             /* active 0 */
                }
        }
        CU_ASSERT_EQUAL(w - p, (ptrdiff_t) len);
        *ret_len = len;
        return p;
}

static void test_decode_caps(void) {
        struct table_set *t = NULL;
        uint8_t *p, *q;
        size_t len, len2;

        p = hand_encode(TABLE_BACKENDS_TOTAL_MAX / TABLE_BACKENDS_MAX, TABLE_BACKENDS_MAX, &len);
        CU_ASSERT_EQUAL_FATAL(table_decode(p, len, &t), 0);
        CU_ASSERT_EQUAL(t->n_services, 16);
        CU_ASSERT_EQUAL(t->services[15].n_backends, 1024);
        CU_ASSERT_EQUAL(table_encode(t, &q, &len2), 0);
        CU_ASSERT_EQUAL(len2, len);
        CU_ASSERT_EQUAL(memcmp(p, q, len), 0);
        free(q);
        /* One backend more in all: refused by both sides. */
        t->services[15].n_backends++;
        t->services[15].backends = realloc(t->services[15].backends, 1025 * sizeof(struct table_backend));
        CU_ASSERT_FATAL(t->services[15].backends != NULL);
        t->services[15].backends[1024] = t->services[15].backends[1023];
        snprintf(t->services[15].backends[1024].node, TABLE_NODE_MAX, "n9999");
        CU_ASSERT_EQUAL(table_encode(t, &q, &len2), -EINVAL);
        table_set_free(t);
        free(p);

        p = hand_encode(TABLE_BACKENDS_TOTAL_MAX / TABLE_BACKENDS_MAX + 1, TABLE_BACKENDS_MAX, &len);
        t = NULL;
        CU_ASSERT_EQUAL(table_decode(p, len, &t), -EBADMSG);
        CU_ASSERT_PTR_NULL(t);
        free(p);
        p = hand_encode(1, TABLE_BACKENDS_MAX + 1, &len);
        CU_ASSERT_EQUAL(table_decode(p, len, &t), -EBADMSG);
        free(p);
}

static void test_to_balance(void) {
        struct table_builder *b;
        struct table_input in;
        const struct table_service *s;
        struct balance_backend out[4];
        char names[4][TABLE_BACKEND_NAME_MAX];
        struct balance *bal;
        size_t idx = 99;

        three_nodes();
        members3[0].state = MEMBERSHIP_DEAD;
        in = input3();
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        CU_ASSERT_FATAL(table_builder_build(b, 1, &in, NULL) == 0);
        members3[0].state = MEMBERSHIP_ALIVE;
        s = table_find(table_builder_current(b), "web");
        CU_ASSERT_FATAL(s && s->n_backends == 4);
        table_service_to_balance(s, out, names);
        CU_ASSERT_STRING_EQUAL(out[1].name, "n1/web@8081.service");
        CU_ASSERT_STRING_EQUAL(out[3].name, "n3/web@8080.service");
        CU_ASSERT_EQUAL(out[1].state, DN);
        CU_ASSERT_EQUAL(out[3].port, 8080);
        CU_ASSERT_EQUAL(out[3].weight, 10);
        CU_ASSERT_EQUAL_FATAL(balance_build(BALANCE_ROUNDROBIN, out, 4, &bal), 0);
        CU_ASSERT_EQUAL(balance_eligible(bal), 2);
        CU_ASSERT_EQUAL(balance_pick(bal, 0, NULL, 0, &idx), 0);
        CU_ASSERT_EQUAL(idx, 2);
        CU_ASSERT_EQUAL(balance_pick(bal, 0, NULL, 0, &idx), 0);
        CU_ASSERT_EQUAL(idx, 3);
        balance_free(bal);
        table_builder_free(b);
}

static void test_versions(void) {
        struct table_builder *b;
        struct table_input in;
        const struct table_set *t;
        uint64_t d1, web1, api1;
        bool changed = false;

        three_nodes();
        in = input3();
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->term, 3);
        CU_ASSERT_EQUAL(t->version, 1);
        d1 = t->digest;
        api1 = table_find(t, "api")->digest;
        web1 = table_find(t, "web")->digest;
        CU_ASSERT_NOT_EQUAL(api1, web1);

        /* Same input, and only active counts or `now` changing: no new version. */
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_FALSE(changed);
        reports[0].instances[0].active = 77;
        in.now = 99999;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_FALSE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->version, 1);
        CU_ASSERT_EQUAL(t->digest, d1);

        /* n3 suspect: still no change. */
        members3[2].state = MEMBERSHIP_SUSPECT;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_FALSE(changed);

        /* n3 dead: version 2, web's digest changes, api's does not. */
        members3[2].state = MEMBERSHIP_DEAD;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->version, 2);
        CU_ASSERT_EQUAL(table_find(t, "web")->backends[3].state, DN);
        CU_ASSERT_EQUAL(table_find(t, "web")->backends[3].active, 0);
        CU_ASSERT_EQUAL(table_find(t, "web")->backends[1].active, 77);   /* n1 web@8081 */
        CU_ASSERT_NOT_EQUAL(table_find(t, "web")->digest, web1);
        CU_ASSERT_EQUAL(table_find(t, "api")->digest, api1);
        CU_ASSERT_NOT_EQUAL(t->digest, d1);

        /*
         * The algorithm of a service's first backend (n1's api) is content;
         * another backend's (n2's api) is not looked at.
         */
        reports[1].instances[1].algorithm = BALANCE_SOURCEHASH;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_FALSE(changed);
        reports[0].instances[2].algorithm = BALANCE_WLC;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->version, 3);
        CU_ASSERT_EQUAL(table_find(t, "api")->algorithm, BALANCE_WLC);
        CU_ASSERT_NOT_EQUAL(table_find(t, "api")->digest, api1);
        CU_ASSERT_NOT_EQUAL(t->digest, d1);
        reports[0].instances[2].algorithm = BALANCE_RANDOM;
        reports[1].instances[1].algorithm = BALANCE_RANDOM;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        CU_ASSERT_EQUAL(table_builder_current(b)->version, 4);
        CU_ASSERT_EQUAL(table_find(table_builder_current(b), "api")->digest, api1);

        /* A weight change is a change too. */
        reports[1].instances[1].weight = 6;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->version, 5);
        CU_ASSERT_NOT_EQUAL(table_find(t, "api")->digest, api1);

        /* Back to the first content: a new version, the first digest again. */
        reports[1].instances[1].weight = 5;
        members3[2].state = MEMBERSHIP_ALIVE;
        CU_ASSERT_EQUAL(table_builder_build(b, 3, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->version, 6);
        CU_ASSERT_EQUAL(t->digest, d1);

        /* A new term publishes (term, 1) even unchanged; an older term is refused. */
        CU_ASSERT_EQUAL(table_builder_build(b, 5, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->term, 5);
        CU_ASSERT_EQUAL(t->version, 1);
        CU_ASSERT_EQUAL(t->digest, d1);
        changed = true;
        CU_ASSERT_EQUAL(table_builder_build(b, 4, &in, &changed), -ESTALE);
        CU_ASSERT_TRUE(changed);        /* untouched */
        CU_ASSERT_EQUAL(table_builder_current(b)->term, 5);

        /* No reports at all: an empty set is a change. */
        in.n_reports = 0;
        CU_ASSERT_EQUAL(table_builder_build(b, 5, &in, &changed), 0);
        CU_ASSERT_TRUE(changed);
        t = table_builder_current(b);
        CU_ASSERT_EQUAL(t->n_services, 0);
        CU_ASSERT_EQUAL(t->version, 2);
        CU_ASSERT_NOT_EQUAL(t->digest, d1);
        table_builder_free(b);
}

static struct table_set *set_at(uint64_t term, uint64_t version) {
        struct table_set *t = calloc(1, sizeof(*t));

        CU_ASSERT_FATAL(t != NULL);
        t->term = term;
        t->version = version;
        return t;
}

static void test_apply(void) {
        static const struct {
                bool have_local;
                uint64_t lterm, lversion, iterm, iversion, highest;
                enum table_apply_result expect;
        } cases[] = {
                { false, 0, 0, 1, 1, 0, TABLE_APPLY_ACCEPTED },
                { false, 0, 0, 1, 1, 2, TABLE_APPLY_FENCED },
                { true, 2, 5, 2, 6, 2, TABLE_APPLY_ACCEPTED },
                { true, 2, 5, 2, 5, 2, TABLE_APPLY_STALE },
                { true, 2, 5, 2, 4, 2, TABLE_APPLY_STALE },
                { true, 2, 5, 3, 1, 2, TABLE_APPLY_ACCEPTED },
                { true, 2, 5, 3, 1, 3, TABLE_APPLY_ACCEPTED },
                { true, 2, 5, 1, 9, 1, TABLE_APPLY_STALE },
                { true, 2, 5, 1, 9, 2, TABLE_APPLY_FENCED },
                { true, 2, 5, 2, 6, 3, TABLE_APPLY_FENCED },      /* newer than local, older than seen */
                { true, 1, 1, 2, 1, 3, TABLE_APPLY_FENCED },
                { true, 2, 5, 4, 1, 3, TABLE_APPLY_ACCEPTED },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                struct table_set *local = cases[k].have_local ? set_at(cases[k].lterm, cases[k].lversion) : NULL;
                struct table_set *in = set_at(cases[k].iterm, cases[k].iversion);
                struct table_set *before = local;
                enum table_apply_result r;

                CU_ASSERT_EQUAL(table_apply_check(local, in, cases[k].highest), cases[k].expect);
                r = table_apply(&local, in, cases[k].highest);
                CU_ASSERT_EQUAL(r, cases[k].expect);
                if (r == TABLE_APPLY_ACCEPTED) {
                        CU_ASSERT_PTR_EQUAL(local, in);
                } else {
                        CU_ASSERT_PTR_EQUAL(local, before);
                        table_set_free(in);
                }
                table_set_free(local);
        }
}

/* A small valid set: two services with distinct states, built then encoded. */
static int sample(struct table_builder **ret_b, uint8_t **ret_buf, size_t *ret_len) {
        struct table_drain d = { "n2", TABLE_DRAIN_FOREVER };
        struct table_input in;

        three_nodes();
        reports[0].instances[2].breaker = BREAKER_OPEN;
        reports[0].instances[2].algorithm = BALANCE_WLC;        /* n1's api: api's first backend */
        reports[1].instances[1].algorithm = BALANCE_WRR;        /* n2's api: not first, ignored */
        reports[2].instances[0].algorithm = BALANCE_SOURCEHASH; /* n3's web: not first, ignored */
        reports[1].instances[0].active = UINT64_C(0x0102030405060708);
        members3[2].state = MEMBERSHIP_DEAD;
        in = input3();
        in.drains = &d;
        in.n_drains = 1;
        CU_ASSERT_FATAL(table_builder_new(ret_b) == 0);
        CU_ASSERT_FATAL(table_builder_build(*ret_b, 7, &in, NULL) == 0);
        members3[2].state = MEMBERSHIP_ALIVE;
        return table_encode(table_builder_current(*ret_b), ret_buf, ret_len);
}

static void test_codec(void) {
        struct table_builder *b;
        struct table_set *t, *c;
        uint8_t *buf, *buf2, *big;
        size_t len, len2;
        const struct table_set *orig;

        CU_ASSERT_EQUAL_FATAL(sample(&b, &buf, &len), 0);
        orig = table_builder_current(b);
        /* header 23 + api (1+3+1+2 + 2 x (1+2+1+16+1+9+13)) + web (1+3+1+2 + 4 x (1+2+1+16+1+9+13)). */
        CU_ASSERT_EQUAL(len, 23 + 7 + 2 * 43 + 7 + 4 * 43);
        CU_ASSERT_EQUAL(memcmp(buf, "AGTB\x02", 5), 0);
        CU_ASSERT_EQUAL(memcmp(buf + 23, "\x03" "api" "\x04" "\x00\x02", 7), 0);    /* api, wlc, 2 backends */
        CU_ASSERT_EQUAL(orig->services[0].algorithm, BALANCE_WLC);
        CU_ASSERT_EQUAL(orig->services[1].algorithm, BALANCE_RANDOM);

        CU_ASSERT_EQUAL_FATAL(table_decode(buf, len, &t), 0);
        CU_ASSERT_EQUAL(t->term, 7);
        CU_ASSERT_EQUAL(t->version, 1);
        CU_ASSERT_TRUE(table_same_content(t, orig));
        CU_ASSERT_EQUAL(t->digest, orig->digest);
        CU_ASSERT_EQUAL(t->services[0].digest, orig->services[0].digest);
        CU_ASSERT_EQUAL(table_find(t, "api")->algorithm, BALANCE_WLC);
        CU_ASSERT_EQUAL(table_find(t, "web")->algorithm, BALANCE_RANDOM);
        CU_ASSERT_EQUAL(table_find(t, "api")->backends[0].state, EJ);
        CU_ASSERT_EQUAL(table_find(t, "api")->backends[1].state, DR);
        CU_ASSERT_EQUAL(table_find(t, "web")->backends[3].state, DN);
        CU_ASSERT_EQUAL(table_find(t, "web")->backends[2].active, UINT64_C(0x0102030405060708));
        CU_ASSERT_STRING_EQUAL(table_find(t, "web")->backends[2].address, "127.0.0.1");
        CU_ASSERT_EQUAL(table_encode(t, &buf2, &len2), 0);
        CU_ASSERT_EQUAL(len2, len);
        CU_ASSERT_EQUAL(memcmp(buf, buf2, len), 0);
        free(buf2);

        /* A copy is equal and independent. */
        CU_ASSERT_EQUAL_FATAL(table_set_dup(t, &c), 0);
        CU_ASSERT_TRUE(table_same_content(c, t));
        CU_ASSERT_EQUAL(c->digest, t->digest);
        CU_ASSERT_PTR_NOT_EQUAL(c->services[1].backends, t->services[1].backends);
        table_set_free(c);
        table_set_free(t);

        /* Every truncation, and one byte too many, is refused. */
        for (size_t n = 0; n < len; n++) {
                t = NULL;
                CU_ASSERT_EQUAL(table_decode(buf, n, &t), -EBADMSG);
                CU_ASSERT_PTR_NULL(t);
        }
        buf2 = malloc(len + 1);
        CU_ASSERT_FATAL(buf2 != NULL);
        memcpy(buf2, buf, len);
        buf2[len] = 0;
        CU_ASSERT_EQUAL(table_decode(buf2, len + 1, &t), -EBADMSG);
        free(buf2);

        /*
         * Single malformations at known offsets: the header is 23 bytes, then
         * "api" (23: length, 24..26: name, 27: algorithm, 28..29: count) and
         * its first backend at 30 (node length, "n1" at 31..32, instance
         * length 33, address length 50, port 60..61, weight 62..63, state 64).
         */
        static const struct {
                size_t off;
                uint8_t value;
                int off2;               /* a second byte to set, or -1 */
                uint8_t value2;
                int ret;
        } cases[] = {
                { 0, 'X', -1, 0, -EBADMSG },                    /* magic */
                { 4, 1, -1, 0, -EPROTONOSUPPORT },              /* format 1: no algorithm byte */
                { 4, 3, -1, 0, -EPROTONOSUPPORT },              /* format */
                { 4, 0, -1, 0, -EPROTONOSUPPORT },
                { 20, 0, -1, 0, -EBADMSG },                     /* version 0 */
                { 21, 1, -1, 0, -EBADMSG },                     /* 258 services */
                { 22, 3, -1, 0, -EBADMSG },                     /* 3 services, 2 there */
                { 22, 1, -1, 0, -EBADMSG },                     /* 1 service: trailing bytes */
                { 23, 0, -1, 0, -EBADMSG },                     /* empty service name */
                { 23, 0x40, -1, 0, -EBADMSG },                  /* 64-byte service name */
                { 24, 'A', -1, 0, -EBADMSG },                   /* upper case */
                { 24, 'x', -1, 0, -EBADMSG },                   /* "xpi" > "web": unsorted */
                { 27, _BALANCE_ALGORITHM_MAX, -1, 0, -EBADMSG }, /* algorithm out of range */
                { 27, 0xff, -1, 0, -EBADMSG },
                { 29, 0, -1, 0, -EBADMSG },                     /* api with no backend */
                { 29, 1, -1, 0, -EBADMSG },                     /* api with 1 backend: the rest misparses */
                { 28, 4, 29, 1, -EBADMSG },                     /* 1025 backends */
                { 30, 0, -1, 0, -EBADMSG },                     /* empty node name */
                { 30, 65, -1, 0, -EBADMSG },                    /* 65-byte node name */
                { 31, 0, -1, 0, -EBADMSG },                     /* NUL inside the node name */
                { 31, ' ', -1, 0, -EBADMSG },                   /* space in the node name */
                { 32, '2', -1, 0, -EBADMSG },                   /* n2, n2: twice */
                { 32, '3', -1, 0, -EBADMSG },                   /* n3 before n2: unsorted */
                { 33, 0, -1, 0, -EBADMSG },                     /* empty instance */
                { 50, 0, -1, 0, -EBADMSG },                     /* empty address */
                { 51, 0x7f, -1, 0, -EBADMSG },                  /* DEL in the address */
                { 60, 0, 61, 0, -EBADMSG },                     /* port 0 */
                { 62, 0x27, 63, 0x11, -EBADMSG },               /* weight 10001 */
                { 64, 4, -1, 0, -EBADMSG },                     /* state out of range */
                { 64, 0xff, -1, 0, -EBADMSG },
        };
        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                uint8_t *m = malloc(len);
                int r;

                CU_ASSERT_FATAL(m != NULL);
                memcpy(m, buf, len);
                m[cases[k].off] = cases[k].value;
                if (cases[k].off2 >= 0)
                        m[cases[k].off2] = cases[k].value2;
                CU_ASSERT_NOT_EQUAL(memcmp(m, buf, len), 0);
                t = NULL;
                r = table_decode(m, len, &t);
                if (r != cases[k].ret)
                        fprintf(stderr, "malformation %zu (offset %zu): %d\n", k, cases[k].off, r);
                CU_ASSERT_EQUAL(r, cases[k].ret);
                CU_ASSERT_PTR_NULL(t);
                free(m);
        }
        /* The weight limit itself is fine, and so is every algorithm (a new digest each). */
        big = malloc(len);
        CU_ASSERT_FATAL(big != NULL);
        memcpy(big, buf, len);
        big[62] = 0x27;
        big[63] = 0x10;
        CU_ASSERT_EQUAL(table_decode(big, len, &t), 0);
        CU_ASSERT_EQUAL(t->services[0].backends[0].weight, BALANCE_WEIGHT_MAX);
        table_set_free(t);
        memcpy(big, buf, len);
        uint64_t digests[_BALANCE_ALGORITHM_MAX];
        for (int a = 0; a < _BALANCE_ALGORITHM_MAX; a++) {
                big[27] = (uint8_t) a;
                CU_ASSERT_EQUAL_FATAL(table_decode(big, len, &t), 0);
                CU_ASSERT_EQUAL(t->services[0].algorithm, a);
                digests[a] = t->services[0].digest;
                for (int k = 0; k < a; k++)
                        CU_ASSERT_NOT_EQUAL(digests[k], digests[a]);
                CU_ASSERT_EQUAL(t->services[1].digest, orig->services[1].digest);
                CU_ASSERT_EQUAL(table_same_content(t, orig), a == BALANCE_WLC);
                CU_ASSERT_EQUAL(t->digest == orig->digest, a == BALANCE_WLC);
                CU_ASSERT_EQUAL_FATAL(table_encode(t, &buf2, &len2), 0);
                CU_ASSERT_EQUAL(len2, len);
                CU_ASSERT_EQUAL(memcmp(buf2, big, len), 0);
                free(buf2);
                table_set_free(t);
        }
        free(big);

        /* Over the frame cap, before reading anything. */
        big = calloc(1, (size_t) TABLE_FRAME_MAX + 1);
        CU_ASSERT_FATAL(big != NULL);
        memcpy(big, buf, len);
        CU_ASSERT_EQUAL(table_decode(big, (size_t) TABLE_FRAME_MAX + 1, &t), -E2BIG);
        free(big);

        /* An empty set round-trips; encode refuses what decode would refuse. */
        struct table_set *e = set_at(1, 1);
        CU_ASSERT_EQUAL(table_encode(e, &buf2, &len2), 0);
        CU_ASSERT_EQUAL(len2, 23);
        CU_ASSERT_EQUAL(table_decode(buf2, len2, &t), 0);
        CU_ASSERT_EQUAL(t->n_services, 0);
        table_set_free(t);
        free(buf2);
        e->version = 0;
        CU_ASSERT_EQUAL(table_encode(e, &buf2, &len2), -EINVAL);
        table_set_free(e);

        CU_ASSERT_EQUAL_FATAL(table_decode(buf, len, &t), 0);
        t->services[1].backends[0].weight = BALANCE_WEIGHT_MAX + 1;
        CU_ASSERT_EQUAL(table_encode(t, &buf2, &len2), -EINVAL);
        t->services[1].backends[0].weight = 1;
        t->services[1].algorithm = _BALANCE_ALGORITHM_MAX;
        CU_ASSERT_EQUAL(table_encode(t, &buf2, &len2), -EINVAL);
        t->services[1].algorithm = (enum balance_algorithm) -1;
        CU_ASSERT_EQUAL(table_encode(t, &buf2, &len2), -EINVAL);
        t->services[1].algorithm = BALANCE_WRR;
        snprintf(t->services[1].backends[0].node, TABLE_NODE_MAX, "n9");        /* unsorted */
        CU_ASSERT_EQUAL(table_encode(t, &buf2, &len2), -EINVAL);
        table_set_free(t);

        free(buf);
        table_builder_free(b);
}

static void test_diff(void) {
        struct table_builder *b;
        struct table_set *v1, *v2;
        struct table_change *ch;
        struct table_input in;
        size_t n;
        char text[TABLE_DETAIL_MAX];

        three_nodes();
        in = input3();
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        CU_ASSERT_FATAL(table_builder_build(b, 1, &in, NULL) == 0);
        CU_ASSERT_FATAL(table_set_dup(table_builder_current(b), &v1) == 0);

        /* n2 dies, n1's web@8081 is ejected, n3 gains api@9001, n1 loses api. */
        members3[1].state = MEMBERSHIP_DEAD;
        reports[0].instances[0].breaker = BREAKER_OPEN;
        reports[0].n_instances = 2;
        add_instance(&reports[2], "api", "api@9001.service", 9001, 1);
        CU_ASSERT_FATAL(table_builder_build(b, 1, &in, NULL) == 0);
        CU_ASSERT_FATAL(table_set_dup(table_builder_current(b), &v2) == 0);
        members3[1].state = MEMBERSHIP_ALIVE;

        static const struct {
                const char *service, *node, *instance;
                enum balance_state from, to;
        } want[] = {
                { "api", "n1", "api@9000.service", UP, NONE },
                { "api", "n2", "api@9000.service", UP, DN },
                { "api", "n3", "api@9001.service", NONE, UP },
                { "web", "n1", "web@8081.service", UP, EJ },
                { "web", "n2", "web@8080.service", UP, DN },
        };
        CU_ASSERT_EQUAL_FATAL(table_diff(v1, v2, &ch, &n), 0);
        CU_ASSERT_EQUAL_FATAL(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n; i++) {
                CU_ASSERT_STRING_EQUAL(ch[i].service, want[i].service);
                CU_ASSERT_STRING_EQUAL(ch[i].node, want[i].node);
                CU_ASSERT_STRING_EQUAL(ch[i].instance, want[i].instance);
                CU_ASSERT_EQUAL(ch[i].from, want[i].from);
                CU_ASSERT_EQUAL(ch[i].to, want[i].to);
        }

        CU_ASSERT_EQUAL(table_format_down(ch, n, NULL, text, sizeof(text)), 4);
        CU_ASSERT_STRING_EQUAL(text, "api@9000 on n1 removed; api@9000 on n2 down; web@8081 on n1 ejected; "
                                     "web@8080 on n2 down");
        CU_ASSERT_EQUAL(table_format_down(ch, n, "n2", text, sizeof(text)), 2);
        CU_ASSERT_STRING_EQUAL(text, "api@9000 on n2 down; web@8080 on n2 down");
        CU_ASSERT_EQUAL(table_format_down(ch, n, "n3", text, sizeof(text)), 0);
        CU_ASSERT_STRING_EQUAL(text, "");
        /* Truncation keeps whole entries and marks the cut. */
        CU_ASSERT_EQUAL(table_format_down(ch, n, "n2", text, 30), 1);
        CU_ASSERT_STRING_EQUAL(text, "api@9000 on n2 down...");
        CU_ASSERT_EQUAL(table_format_down(ch, n, "n2", text, 8), 0);
        CU_ASSERT_STRING_EQUAL(text, "...");
        CU_ASSERT_EQUAL(table_format_down(ch, n, NULL, text, 3), 0);
        free(ch);

        /* The reverse direction, from nothing, and no change. */
        CU_ASSERT_EQUAL_FATAL(table_diff(v2, v1, &ch, &n), 0);
        CU_ASSERT_EQUAL(n, 5);
        CU_ASSERT_EQUAL(ch[0].from, NONE);
        CU_ASSERT_EQUAL(ch[0].to, UP);
        free(ch);
        CU_ASSERT_EQUAL_FATAL(table_diff(NULL, v1, &ch, &n), 0);
        CU_ASSERT_EQUAL(n, 6);
        free(ch);
        CU_ASSERT_EQUAL_FATAL(table_diff(v1, v1, &ch, &n), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_PTR_NULL(ch);

        table_set_free(v1);
        table_set_free(v2);
        table_builder_free(b);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "printers", test_printers },
                { "validation", test_validation },
                { "backend states", test_states },
                { "drain expiry", test_drain_expiry },
                { "deterministic order", test_order },
                { "build errors", test_build_errors },
                { "decode caps", test_decode_caps },
                { "to balance", test_to_balance },
                { "versions and digests", test_versions },
                { "apply: accepted, stale, fenced", test_apply },
                { "encode and decode", test_codec },
                { "diff and failover text", test_diff },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "table", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
