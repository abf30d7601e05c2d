/*
 * The table sync codec: round trips of every body (small and at every cap),
 * the exact bytes of a reference ANNOUNCE (doc/PROTOCOL.md), every
 * truncation of every valid body refused, and every rejection class: for
 * each invalid struct the encoder says -EINVAL and the same struct written
 * by this file's own spec-following writer (raw_*, no validation) is
 * refused by the decoder with the documented errno.
 *
 * With SYNC_WRITE_CORPUS=DIR set, the valid bodies are also written to
 * DIR/sync/ as the fuzzer's seed corpus.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "core/sync.h"
#include "core/wire.h"
#include "unit.h"

/* --- a writer that follows doc/PROTOCOL.md and validates nothing ------------------ */

struct raw {
        uint8_t *p;
        size_t len, cap;
};

static void raw_bytes(struct raw *w, const void *src, size_t n) {
        if (w->len + n > w->cap) {
                w->cap = (w->len + n) * 2;
                w->p = realloc(w->p, w->cap);
                CU_ASSERT_FATAL(w->p != NULL);
        }
        memcpy(w->p + w->len, src, n);
        w->len += n;
}

static void raw_be(struct raw *w, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--) {
                uint8_t b = (uint8_t) (v >> (8 * i));

                raw_bytes(w, &b, 1);
        }
}

static void raw_str(struct raw *w, const char *s) {
        raw_be(w, strlen(s), 1);
        raw_bytes(w, s, strlen(s));
}

static void raw_report(struct raw *w, const struct sync_report *r, size_t n_services, size_t n_instances) {
        raw_be(w, WIRE_VERSION, 1);
        raw_be(w, SYNC_TYPE_REPORT, 1);
        raw_str(w, r->node);
        raw_be(w, r->term_seen, 8);
        raw_be(w, r->table_term, 8);
        raw_be(w, r->table_version, 8);
        raw_be(w, r->table_digest, 8);
        raw_be(w, r->witness, 1);
        raw_be(w, r->drain_until_us, 8);
        raw_be(w, n_services, 2);
        for (size_t i = 0; i < r->n_services; i++) {
                const struct sync_service_spec *s = &r->services[i];

                raw_str(w, s->name);
                raw_be(w, (uint8_t) s->algorithm, 1);
                raw_be(w, s->replicas, 2);
                raw_str(w, s->template_unit);
                raw_be(w, s->port_min, 2);
                raw_be(w, s->port_max, 2);
        }
        raw_be(w, n_instances, 2);
        for (size_t i = 0; i < r->n_instances; i++) {
                const struct sync_instance *x = &r->instances[i];

                raw_str(w, x->inst.service);
                raw_be(w, (uint8_t) x->inst.algorithm, 1);
                raw_str(w, x->inst.instance);
                raw_str(w, x->inst.address);
                raw_be(w, x->inst.port, 2);
                raw_be(w, x->inst.weight, 2);
                raw_be(w, x->inst.healthy, 1);
                raw_be(w, (uint8_t) x->inst.breaker, 1);
                raw_be(w, x->inst.active, 8);
                raw_be(w, (uint8_t) x->origin, 1);
                raw_be(w, (uint8_t) x->state, 1);
                raw_be(w, x->placed_at_us, 8);
        }
}

static void raw_update(struct raw *w, const struct sync_update *u) {
        raw_be(w, WIRE_VERSION, 1);
        raw_be(w, SYNC_TYPE_UPDATE, 1);
        raw_str(w, u->leader);
        raw_be(w, u->term, 8);
        raw_be(w, u->table_len, 4);
        raw_bytes(w, u->table, u->table_len);
        raw_be(w, u->has_assignment, 1);
        raw_be(w, u->n_assigned, 2);
        for (size_t i = 0; i < u->n_assigned; i++) {
                raw_str(w, u->assigned[i].service);
                raw_str(w, u->assigned[i].unit);
                raw_be(w, u->assigned[i].port, 2);
                raw_be(w, u->assigned[i].placed_at_us, 8);
        }
}

static void raw_announce(struct raw *w, const struct sync_announce *a) {
        raw_be(w, WIRE_VERSION, 1);
        raw_be(w, SYNC_TYPE_ANNOUNCE, 1);
        raw_str(w, a->leader);
        raw_be(w, a->term, 8);
        raw_be(w, a->version, 8);
        raw_be(w, a->digest, 8);
}

static void raw_drain(struct raw *w, const struct sync_drain *d) {
        raw_be(w, WIRE_VERSION, 1);
        raw_be(w, SYNC_TYPE_DRAIN, 1);
        raw_str(w, d->from);
        raw_str(w, d->node);
        raw_be(w, d->nonce, 8);
        raw_be(w, d->until_us, 8);
}

static void raw_drain_ack(struct raw *w, const struct sync_drain_ack *a) {
        raw_be(w, WIRE_VERSION, 1);
        raw_be(w, SYNC_TYPE_DRAIN_ACK, 1);
        raw_str(w, a->from);
        raw_be(w, a->nonce, 8);
        raw_be(w, (uint32_t) a->result, 4);
}

/* --- decoding any body ------------------------------------------------------------- */

/* Decodes buf as a body of `type`, re-encodes what decoded and checks the bytes are the same. */
static int decode_check(uint8_t type, const uint8_t *buf, size_t len) {
        uint8_t out[SYNC_DATAGRAM_MAX], *big = NULL;
        size_t n = 0;
        int r, e = 0;

        switch (type) {
        case SYNC_TYPE_REPORT: {
                struct sync_report x;

                r = sync_report_decode(buf, len, &x);
                if (r == 0) {
                        e = sync_report_encode(&x, &big, &n);
                        sync_report_done(&x);
                        CU_ASSERT_PTR_NULL(x.services);
                        CU_ASSERT_PTR_NULL(x.instances);
                }
                break;
        }
        case SYNC_TYPE_UPDATE: {
                struct sync_update x;

                r = sync_update_decode(buf, len, &x);
                if (r == 0) {
                        e = sync_update_encode(&x, &big, &n);
                        sync_update_done(&x);
                        CU_ASSERT_PTR_NULL(x.assigned);
                }
                break;
        }
        case SYNC_TYPE_ANNOUNCE: {
                struct sync_announce x;

                r = sync_announce_decode(buf, len, &x);
                if (r == 0)
                        e = sync_announce_encode(&x, out, sizeof(out), &n);
                break;
        }
        case SYNC_TYPE_DRAIN: {
                struct sync_drain x;

                r = sync_drain_decode(buf, len, &x);
                if (r == 0)
                        e = sync_drain_encode(&x, out, sizeof(out), &n);
                break;
        }
        case SYNC_TYPE_DRAIN_ACK: {
                struct sync_drain_ack x;

                r = sync_drain_ack_decode(buf, len, &x);
                if (r == 0)
                        e = sync_drain_ack_encode(&x, out, sizeof(out), &n);
                break;
        }
        default:
                CU_FAIL("unknown type");
                return -EINVAL;
        }
        if (r == 0) {
                CU_ASSERT_EQUAL(e, 0);
                CU_ASSERT_EQUAL(n, len);
                if (e == 0 && n == len)
                        CU_ASSERT_EQUAL(memcmp(big ? big : out, buf, len), 0);
        }
        free(big);
        return r;
}

/* Every proper prefix is -EBADMSG, one byte more is -EBADMSG, the whole decodes. */
static void check_truncations(uint8_t type, const uint8_t *buf, size_t len) {
        uint8_t *more = malloc(len + 1);
        size_t bad = 0;

        CU_ASSERT_FATAL(more != NULL);
        CU_ASSERT_EQUAL(decode_check(type, buf, len), 0);
        for (size_t n = 0; n < len; n++) {
                uint8_t *prefix = malloc(n ? n : 1);    /* exactly n bytes, so ASan sees any overread */

                CU_ASSERT_FATAL(prefix != NULL);
                memcpy(prefix, buf, n);
                if (decode_check(type, prefix, n) != -EBADMSG)
                        bad++;
                free(prefix);
        }
        CU_ASSERT_EQUAL(bad, 0);
        memcpy(more, buf, len);
        more[len] = 0;
        CU_ASSERT_EQUAL(decode_check(type, more, len + 1), -EBADMSG);
        /* Another version, another (sync or not) type. */
        more[0] = 2;
        CU_ASSERT_EQUAL(decode_check(type, more, len), -EPROTONOSUPPORT);
        more[0] = 0;
        CU_ASSERT_EQUAL(decode_check(type, more, len), -EPROTONOSUPPORT);
        more[0] = WIRE_VERSION;
        more[1] = type == SYNC_TYPE_DRAIN_ACK ? SYNC_TYPE_REPORT : (uint8_t) (type + 1);
        CU_ASSERT_EQUAL(decode_check(type, more, len), -EBADMSG);
        more[1] = WIRE_ELECTION_TYPE;
        CU_ASSERT_EQUAL(decode_check(type, more, len), -EBADMSG);
        free(more);
}

static const char *corpus_dir;

static void write_seed(const char *name, const uint8_t *buf, size_t len) {
        char path[4096];
        FILE *f;

        if (!corpus_dir)
                return;
        snprintf(path, sizeof(path), "%s/sync", corpus_dir);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/sync/%s", corpus_dir, name);
        f = fopen(path, "wb");
        CU_ASSERT_FATAL(f != NULL);
        CU_ASSERT_EQUAL(fwrite(buf, 1, len, f), len);
        fclose(f);
}

/* --- samples ------------------------------------------------------------------------- */

static struct sync_service_spec specs[SYNC_SERVICES_MAX + 1];
static struct sync_instance insts[TABLE_REPORT_INSTANCES_MAX + 1];
static struct sync_assigned assigned[SYNC_ASSIGNED_MAX + 1];

static void set(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src);
}

static struct sync_instance instance(const char *service, enum balance_algorithm a, const char *unit, uint16_t port,
                                     enum placement_origin origin, uint64_t placed_at) {
        struct sync_instance i = {
                .inst = { .algorithm = a, .port = port, .weight = 10, .healthy = true, .breaker = BREAKER_CLOSED,
                          .active = 3 },
                .origin = origin,
                .state = PLACEMENT_HEALTHY,
                .placed_at_us = placed_at,
        };

        set(i.inst.service, sizeof(i.inst.service), service);
        set(i.inst.instance, sizeof(i.inst.instance), unit);
        set(i.inst.address, sizeof(i.inst.address), "10.0.0.1");
        return i;
}

/* n1 runs web (wrr, 3 replicas from web@.service on 8080..8089) and api (wlc, static only). */
static struct sync_report sample_report(void) {
        specs[0] = (struct sync_service_spec) { .name = "web", .algorithm = BALANCE_WRR, .replicas = 3,
                                                .template_unit = "web@.service", .port_min = 8080, .port_max = 8089 };
        specs[1] = (struct sync_service_spec) { .name = "api", .algorithm = BALANCE_WLC };
        insts[0] = instance("web", BALANCE_WRR, "web@8080.service", 8080, PLACEMENT_STATIC, 0);
        insts[1] = instance("web", BALANCE_WRR, "web@8081.service", 8081, PLACEMENT_PLACED, 1795000000000000);
        insts[2] = instance("api", BALANCE_WLC, "api.service", 9000, PLACEMENT_STATIC, 0);
        insts[2].inst.healthy = false;
        insts[2].inst.breaker = BREAKER_HALF_OPEN;
        insts[2].state = PLACEMENT_UNHEALTHY;
        return (struct sync_report) {
                .node = "n1", .term_seen = 5, .table_term = 5, .table_version = 3,
                .table_digest = UINT64_C(0x1122334455667788), .witness = false, .drain_until_us = TABLE_DRAIN_FOREVER,
                .n_services = 2, .services = specs, .n_instances = 3, .instances = insts,
        };
}

static const uint8_t table_bytes[] = "AGTB\x02 not decoded by sync";

static struct sync_update sample_update(void) {
        assigned[0] = (struct sync_assigned) { .service = "web", .unit = "web@8081.service", .port = 8081,
                                               .placed_at_us = 1795000000000000 };
        assigned[1] = (struct sync_assigned) { .service = "web", .unit = "web@8082.service", .port = 8082,
                                               .placed_at_us = 1795000000000001 };
        return (struct sync_update) {
                .leader = "n2", .term = 7, .table = table_bytes, .table_len = sizeof(table_bytes) - 1,
                .has_assignment = true, .n_assigned = 2, .assigned = assigned,
        };
}

static const struct sync_announce announce0 = { .leader = "n1", .term = 3, .version = 7,
                                                .digest = UINT64_C(0x0123456789abcdef) };
static const struct sync_drain drain0 = { .from = "n1", .node = "n2", .nonce = 42, .until_us = 1795000000000000 };
static const struct sync_drain_ack ack0 = { .from = "n2", .nonce = 42, .result = -EBUSY };

/* Field by field: padding and the bytes after a string's NUL are not content. */
static bool spec_equal(const struct sync_service_spec *a, const struct sync_service_spec *b) {
        return strcmp(a->name, b->name) == 0 && a->algorithm == b->algorithm && a->replicas == b->replicas &&
               strcmp(a->template_unit, b->template_unit) == 0 && a->port_min == b->port_min &&
               a->port_max == b->port_max;
}

static bool assigned_equal(const struct sync_assigned *a, const struct sync_assigned *b) {
        return strcmp(a->service, b->service) == 0 && strcmp(a->unit, b->unit) == 0 && a->port == b->port &&
               a->placed_at_us == b->placed_at_us;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_body_type(void) {
        static const struct {
                uint8_t bytes[2];
                size_t len;
                uint8_t want;
        } cases[] = {
                { { 1, 0x21 }, 2, 0x21 }, { { 1, 0x25 }, 2, 0x25 }, { { 1, 0x23 }, 2, 0x23 },
                { { 1, 0x20 }, 2, 0 },    { { 1, 0x26 }, 2, 0 },    { { 1, 0x10 }, 2, 0 },
                { { 1, 0x01 }, 2, 0 },    { { 2, 0x21 }, 2, 0 },    { { 0, 0x21 }, 2, 0 },
                { { 1, 0x21 }, 1, 0 },    { { 1, 0x21 }, 0, 0 },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++)
                CU_ASSERT_EQUAL(sync_body_type(cases[k].bytes, cases[k].len), cases[k].want);
        CU_ASSERT_EQUAL(sync_body_type(NULL, 2), 0);
}

/* The golden vector of doc/PROTOCOL.md. */
static void test_golden(void) {
        static const uint8_t want[] = {
                0x01, 0x23, 0x02, 'n', '1',
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        };
        uint8_t buf[SYNC_DATAGRAM_MAX];
        struct sync_announce a;
        size_t len = 0;

        CU_ASSERT_EQUAL_FATAL(sync_announce_encode(&announce0, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL_FATAL(len, sizeof(want));
        CU_ASSERT_EQUAL(memcmp(buf, want, len), 0);
        CU_ASSERT_EQUAL(sync_body_type(buf, len), SYNC_TYPE_ANNOUNCE);
        CU_ASSERT_EQUAL_FATAL(sync_announce_decode(want, sizeof(want), &a), 0);
        CU_ASSERT_STRING_EQUAL(a.leader, "n1");
        CU_ASSERT_EQUAL(a.term, 3);
        CU_ASSERT_EQUAL(a.version, 7);
        CU_ASSERT_EQUAL(a.digest, UINT64_C(0x0123456789abcdef));
        /* One byte short of room, and exactly enough. */
        CU_ASSERT_EQUAL(sync_announce_encode(&announce0, buf, sizeof(want) - 1, &len), -EMSGSIZE);
        CU_ASSERT_EQUAL(sync_announce_encode(&announce0, buf, sizeof(want), &len), 0);
        write_seed("announce", want, sizeof(want));
}

static void test_report(void) {
        struct sync_report r = sample_report(), d;
        struct table_report t;
        struct raw raw = { 0 };
        uint8_t *buf;
        size_t len;

        CU_ASSERT_EQUAL_FATAL(sync_report_encode(&r, &buf, &len), 0);
        /* The library writes what the spec says, byte for byte. */
        raw_report(&raw, &r, r.n_services, r.n_instances);
        CU_ASSERT_EQUAL(raw.len, len);
        CU_ASSERT_EQUAL(memcmp(raw.p, buf, len), 0);
        free(raw.p);
        CU_ASSERT_EQUAL(sync_body_type(buf, len), SYNC_TYPE_REPORT);

        CU_ASSERT_EQUAL_FATAL(sync_report_decode(buf, len, &d), 0);
        CU_ASSERT_STRING_EQUAL(d.node, "n1");
        CU_ASSERT_EQUAL(d.term_seen, 5);
        CU_ASSERT_EQUAL(d.table_term, 5);
        CU_ASSERT_EQUAL(d.table_version, 3);
        CU_ASSERT_EQUAL(d.table_digest, UINT64_C(0x1122334455667788));
        CU_ASSERT_FALSE(d.witness);
        CU_ASSERT_EQUAL(d.drain_until_us, TABLE_DRAIN_FOREVER);
        CU_ASSERT_EQUAL_FATAL(d.n_services, 2);
        CU_ASSERT_TRUE(spec_equal(&d.services[0], &specs[0]));
        CU_ASSERT_TRUE(spec_equal(&d.services[1], &specs[1]));
        CU_ASSERT_STRING_EQUAL(d.services[0].template_unit, "web@.service");
        CU_ASSERT_EQUAL(d.services[0].port_max, 8089);
        CU_ASSERT_EQUAL_FATAL(d.n_instances, 3);
        for (size_t i = 0; i < 3; i++) {
                CU_ASSERT_STRING_EQUAL(d.instances[i].inst.service, insts[i].inst.service);
                CU_ASSERT_STRING_EQUAL(d.instances[i].inst.instance, insts[i].inst.instance);
                CU_ASSERT_STRING_EQUAL(d.instances[i].inst.address, insts[i].inst.address);
                CU_ASSERT_EQUAL(d.instances[i].inst.algorithm, insts[i].inst.algorithm);
                CU_ASSERT_EQUAL(d.instances[i].inst.port, insts[i].inst.port);
                CU_ASSERT_EQUAL(d.instances[i].inst.weight, insts[i].inst.weight);
                CU_ASSERT_EQUAL(d.instances[i].inst.healthy, insts[i].inst.healthy);
                CU_ASSERT_EQUAL(d.instances[i].inst.breaker, insts[i].inst.breaker);
                CU_ASSERT_EQUAL(d.instances[i].inst.active, insts[i].inst.active);
                CU_ASSERT_EQUAL(d.instances[i].origin, insts[i].origin);
                CU_ASSERT_EQUAL(d.instances[i].state, insts[i].state);
                CU_ASSERT_EQUAL(d.instances[i].placed_at_us, insts[i].placed_at_us);
        }
        CU_ASSERT_EQUAL(d.instances[2].inst.algorithm, BALANCE_WLC);
        CU_ASSERT_EQUAL(d.instances[1].placed_at_us, 1795000000000000);

        /* The table builder's view. */
        CU_ASSERT_EQUAL_FATAL(sync_report_to_table(&d, &t), 0);
        CU_ASSERT_STRING_EQUAL(t.node, "n1");
        CU_ASSERT_EQUAL_FATAL(t.n_instances, 3);
        CU_ASSERT_STRING_EQUAL(t.instances[1].instance, "web@8081.service");
        CU_ASSERT_EQUAL(t.instances[1].port, 8081);
        CU_ASSERT_EQUAL(t.instances[2].algorithm, BALANCE_WLC);
        CU_ASSERT_FALSE(t.instances[2].healthy);
        CU_ASSERT_EQUAL(table_report_validate(&t, NULL), 0);
        free(t.instances);
        sync_report_done(&d);
        CU_ASSERT_EQUAL(d.n_services, 0);
        CU_ASSERT_EQUAL(d.n_instances, 0);
        sync_report_done(NULL);

        check_truncations(SYNC_TYPE_REPORT, buf, len);
        write_seed("report", buf, len);
        free(buf);

        /* Nothing at all: no services, no instances, no table; a witness draining until a time. */
        r = (struct sync_report) { .node = "w1", .witness = true, .drain_until_us = 1 };
        CU_ASSERT_EQUAL_FATAL(sync_report_encode(&r, &buf, &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 3 + 32 + 1 + 8 + 2 + 2);
        CU_ASSERT_EQUAL_FATAL(sync_report_decode(buf, len, &d), 0);
        CU_ASSERT_TRUE(d.witness);
        CU_ASSERT_EQUAL(d.drain_until_us, 1);
        CU_ASSERT_PTR_NULL(d.services);
        CU_ASSERT_PTR_NULL(d.instances);
        CU_ASSERT_EQUAL_FATAL(sync_report_to_table(&d, &t), 0);
        CU_ASSERT_EQUAL(t.n_instances, 0);
        free(t.instances);
        check_truncations(SYNC_TYPE_REPORT, buf, len);
        write_seed("report-empty", buf, len);
        free(buf);
}

static void fill(char *dst, size_t n, char c) {
        memset(dst, c, n);
        dst[n] = '\0';
}

/* Every count at its cap and every string at its longest. */
static void test_report_max(void) {
        struct sync_report r = { .table_term = 1, .table_version = 1, .drain_until_us = 5 }, d;
        uint8_t *buf;
        size_t len;

        fill(r.node, WIRE_NAME_MAX, 'n');
        for (size_t i = 0; i < SYNC_SERVICES_MAX; i++) {
                struct sync_service_spec *s = &specs[i];

                *s = (struct sync_service_spec) { .algorithm = BALANCE_SOURCEHASH, .replicas = PLACEMENT_REPLICAS_MAX,
                                                  .port_min = 1, .port_max = 65535 };
                fill(s->name, TABLE_SERVICE_MAX - 1, 's');
                snprintf(s->name, sizeof(s->name), "s%03zu", i);
                s->name[4] = 's';       /* back to full length: "sNNNs..." */
                fill(s->template_unit, 250 - 9, 't');
                strcat(s->template_unit, "@.service");
                CU_ASSERT_EQUAL(strlen(s->template_unit), 250);
        }
        for (size_t i = 0; i < TABLE_REPORT_INSTANCES_MAX; i++) {
                struct sync_instance *x = &insts[i];
                char unit[TABLE_INSTANCE_MAX];

                fill(unit, TABLE_INSTANCE_MAX - 1, 'u');
                memcpy(unit, "web@", 4);
                snprintf(unit + 4, 4, "%03zu", i);
                unit[7] = 'u';
                memcpy(unit + TABLE_INSTANCE_MAX - 1 - 8, ".service", 8);
                *x = instance(specs[0].name, BALANCE_SOURCEHASH, unit, 65535, PLACEMENT_PLACED, UINT64_MAX);
                fill(x->inst.address, TABLE_ADDRESS_MAX - 1, 'a');
                x->inst.weight = BALANCE_WEIGHT_MAX;
                x->inst.active = UINT64_MAX;
                x->inst.breaker = BREAKER_OPEN;
                x->state = PLACEMENT_STOPPING;
                CU_ASSERT_EQUAL(strlen(x->inst.instance), TABLE_INSTANCE_MAX - 1);
        }
        r.n_services = SYNC_SERVICES_MAX;
        r.services = specs;
        r.n_instances = TABLE_REPORT_INSTANCES_MAX;
        r.instances = insts;
        r.term_seen = r.table_digest = UINT64_MAX;
        CU_ASSERT_EQUAL_FATAL(sync_report_encode(&r, &buf, &len), 0);
        CU_ASSERT(len < SYNC_REPORT_MAX);
        CU_ASSERT_EQUAL(len, 2 + 65 + 40 + 1 + 2 + 256 * (64 + 1 + 2 + 251 + 4) + 2 +
                                     256 * (64 + 1 + 128 + 254 + 2 + 2 + 1 + 1 + 8 + 1 + 1 + 8));
        CU_ASSERT_EQUAL_FATAL(sync_report_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL(d.n_services, SYNC_SERVICES_MAX);
        CU_ASSERT_EQUAL(d.n_instances, TABLE_REPORT_INSTANCES_MAX);
        for (size_t i = 0; i < SYNC_SERVICES_MAX; i++)
                CU_ASSERT_TRUE_FATAL(spec_equal(&d.services[i], &specs[i]));
        CU_ASSERT_STRING_EQUAL(d.instances[255].inst.instance, insts[255].inst.instance);
        CU_ASSERT_EQUAL(d.instances[255].placed_at_us, UINT64_MAX);
        CU_ASSERT_EQUAL(decode_check(SYNC_TYPE_REPORT, buf, len), 0);
        sync_report_done(&d);
        free(buf);

        /* One more of either: refused both ways (-E2BIG for the count itself). */
        struct raw raw = { 0 };
        specs[SYNC_SERVICES_MAX] = specs[0];
        snprintf(specs[SYNC_SERVICES_MAX].name, TABLE_SERVICE_MAX, "extra");
        r.n_services = SYNC_SERVICES_MAX + 1;
        CU_ASSERT_EQUAL(sync_report_encode(&r, &buf, &len), -EINVAL);
        raw_report(&raw, &r, r.n_services, r.n_instances);
        CU_ASSERT_EQUAL(sync_report_decode(raw.p, raw.len, &d), -E2BIG);
        free(raw.p);
        r.n_services = SYNC_SERVICES_MAX;
        insts[TABLE_REPORT_INSTANCES_MAX] = insts[0];
        snprintf(insts[TABLE_REPORT_INSTANCES_MAX].inst.instance, TABLE_INSTANCE_MAX, "extra.service");
        r.n_instances = TABLE_REPORT_INSTANCES_MAX + 1;
        CU_ASSERT_EQUAL(sync_report_encode(&r, &buf, &len), -EINVAL);
        raw = (struct raw) { 0 };
        raw_report(&raw, &r, r.n_services, r.n_instances);
        CU_ASSERT_EQUAL(sync_report_decode(raw.p, raw.len, &d), -E2BIG);
        free(raw.p);

        /* Over the body cap, before reading anything. */
        buf = calloc(1, (size_t) SYNC_REPORT_MAX + 1);
        CU_ASSERT_FATAL(buf != NULL);
        buf[0] = WIRE_VERSION;
        buf[1] = SYNC_TYPE_REPORT;
        CU_ASSERT_EQUAL(sync_report_decode(buf, (size_t) SYNC_REPORT_MAX + 1, &d), -E2BIG);
        free(buf);
}

/* One invalid report per row: what to break, and the decoder's answer to the raw bytes. */
enum report_bad {
        RB_NODE_EMPTY, RB_NODE_SPACE, RB_NODE_PRINTABLE, RB_TABLE_TERM0, RB_TABLE_VERSION0, RB_TABLE_DIGEST,
        RB_SVC_NAME, RB_SVC_DUP, RB_SVC_ALGO, RB_SVC_ALGO_NEG, RB_SVC_REPLICAS, RB_TPL_NO_AT, RB_TPL_INSTANCE,
        RB_TPL_EMPTY_NAME, RB_TPL_SUFFIX, RB_TPL_LONG, RB_TPL_PORTS_ZERO, RB_NO_TPL_PORTS, RB_PORT_MIN0,
        RB_PORT_ORDER, RB_INST_SERVICE, RB_INST_UNIT_SUFFIX, RB_INST_UNIT_CHAR, RB_INST_UNIT_AT, RB_INST_ADDRESS,
        RB_INST_PORT, RB_INST_WEIGHT, RB_INST_BREAKER, RB_INST_ALGO, RB_INST_ORIGIN, RB_INST_STATE,
        RB_STATIC_PLACED_AT, RB_INST_DUP, _RB_MAX,
};

static void break_report(struct sync_report *r, enum report_bad k) {
        struct sync_service_spec *s = &r->services[0];
        struct sync_instance *x = &r->instances[0];

        switch (k) {
        case RB_NODE_EMPTY: set(r->node, sizeof(r->node), ""); break;
        case RB_NODE_SPACE: set(r->node, sizeof(r->node), "n 1"); break;
        case RB_NODE_PRINTABLE: set(r->node, sizeof(r->node), "n1/x"); break;  /* table allows it; wire not */
        case RB_TABLE_TERM0: r->table_term = 0; break;
        case RB_TABLE_VERSION0: r->table_version = 0; break;
        case RB_TABLE_DIGEST: r->table_term = r->table_version = 0; break;     /* digest without a table */
        case RB_SVC_NAME: set(s->name, sizeof(s->name), "Web"); break;
        case RB_SVC_DUP: set(r->services[1].name, sizeof(s->name), "web"); break;
        case RB_SVC_ALGO: s->algorithm = _BALANCE_ALGORITHM_MAX; break;
        case RB_SVC_ALGO_NEG: s->algorithm = (enum balance_algorithm) -1; break;
        case RB_SVC_REPLICAS: s->replicas = PLACEMENT_REPLICAS_MAX + 1; break;
        case RB_TPL_NO_AT: set(s->template_unit, sizeof(s->template_unit), "web.service"); break;
        case RB_TPL_INSTANCE: set(s->template_unit, sizeof(s->template_unit), "web@1.service"); break;
        case RB_TPL_EMPTY_NAME: set(s->template_unit, sizeof(s->template_unit), "@.service"); break;
        case RB_TPL_SUFFIX: set(s->template_unit, sizeof(s->template_unit), "web@.socket"); break;
        case RB_TPL_LONG:
                fill(s->template_unit, 251 - 9, 't');
                strcat(s->template_unit, "@.service");
                break;
        case RB_TPL_PORTS_ZERO: s->port_min = s->port_max = 0; break;
        case RB_NO_TPL_PORTS: r->services[1].port_min = r->services[1].port_max = 1; break;
        case RB_PORT_MIN0: s->port_min = 0; break;
        case RB_PORT_ORDER: s->port_min = 8090; break;
        case RB_INST_SERVICE: set(x->inst.service, sizeof(x->inst.service), "-web"); break;
        case RB_INST_UNIT_SUFFIX: set(x->inst.instance, sizeof(x->inst.instance), "web@8080"); break;
        case RB_INST_UNIT_CHAR: set(x->inst.instance, sizeof(x->inst.instance), "web#8080.service"); break;
        case RB_INST_UNIT_AT: set(x->inst.instance, sizeof(x->inst.instance), "web@.service"); break;
        case RB_INST_ADDRESS: set(x->inst.address, sizeof(x->inst.address), ""); break;
        case RB_INST_PORT: x->inst.port = 0; break;
        case RB_INST_WEIGHT: x->inst.weight = BALANCE_WEIGHT_MAX + 1; break;
        case RB_INST_BREAKER: x->inst.breaker = _BREAKER_STATE_MAX; break;
        case RB_INST_ALGO: x->inst.algorithm = _BALANCE_ALGORITHM_MAX; break;
        case RB_INST_ORIGIN: x->origin = _PLACEMENT_ORIGIN_MAX; break;
        case RB_INST_STATE: x->state = _PLACEMENT_INSTANCE_STATE_MAX; break;
        case RB_STATIC_PLACED_AT: x->placed_at_us = 1; break;
        case RB_INST_DUP: set(r->instances[1].inst.instance, sizeof(x->inst.instance), "web@8080.service"); break;
        case _RB_MAX: break;
        }
}

static void test_report_rejections(void) {
        for (int k = 0; k < _RB_MAX; k++) {
                struct sync_report r = sample_report(), d;
                struct raw raw = { 0 };
                uint8_t *buf = NULL;
                size_t len;
                int e, f;

                break_report(&r, (enum report_bad) k);
                e = sync_report_encode(&r, &buf, &len);
                raw_report(&raw, &r, r.n_services, r.n_instances);
                f = sync_report_decode(raw.p, raw.len, &d);
                if (e != -EINVAL || f != -EBADMSG)
                        fprintf(stderr, "report case %d: encode %d, decode %d\n", k, e, f);
                CU_ASSERT_EQUAL(e, -EINVAL);
                CU_ASSERT_PTR_NULL(buf);
                CU_ASSERT_EQUAL(f, -EBADMSG);
                free(raw.p);
        }

        /* The same unit under two services is two instances; a PLACED one may say placed_at 0. */
        struct sync_report r = sample_report(), d;
        uint8_t *buf;
        size_t len;

        set(insts[2].inst.instance, sizeof(insts[2].inst.instance), "web@8080.service");
        insts[1].placed_at_us = 0;
        CU_ASSERT_EQUAL(sync_report_encode(&r, &buf, &len), 0);
        CU_ASSERT_EQUAL(decode_check(SYNC_TYPE_REPORT, buf, len), 0);
        free(buf);

        /* Byte-level malformations of the sample: offsets from the layout. */
        r = sample_report();
        CU_ASSERT_EQUAL_FATAL(sync_report_encode(&r, &buf, &len), 0);
        static const struct {
                size_t off;
                uint8_t value;
                int ret;
        } bytes[] = {
                { 2, 0, -EBADMSG },     /* empty node: the rest misparses */
                { 2, 65, -EBADMSG },    /* node longer than the rest */
                { 3, 0, -EBADMSG },     /* NUL in the node */
                { 37, 2, -EBADMSG },    /* witness flag 2 */
                { 37, 0xff, -EBADMSG },
                { 46, 0x01, -E2BIG },   /* 258 services */
                { 47, 3, -EBADMSG },    /* 3 services claimed, 2 there */
                { 47, 200, -EBADMSG },  /* more than the bytes left can hold: refused before allocating */
        };
        for (size_t k = 0; k < ELEMENTSOF(bytes); k++) {
                uint8_t *m = malloc(len);

                CU_ASSERT_FATAL(m != NULL);
                memcpy(m, buf, len);
                m[bytes[k].off] = bytes[k].value;
                CU_ASSERT_EQUAL(sync_report_decode(m, len, &d), bytes[k].ret);
                free(m);
        }
        CU_ASSERT_EQUAL(buf[46], 0);
        CU_ASSERT_EQUAL(buf[47], 2);
        /* The instance count (2 bytes before the first instance's "\x03web") and its healthy byte. */
        size_t icount = len;
        for (size_t i = 48; i + 7 <= len; i++)
                if (memcmp(buf + i, "\x00\x03\x03web\x02", 7) == 0) {
                        icount = i;
                        break;
                }
        CU_ASSERT_FATAL(icount < len);
        CU_ASSERT_EQUAL(buf[icount + 1], 3);
        uint8_t *m = malloc(len);
        CU_ASSERT_FATAL(m != NULL);
        memcpy(m, buf, len);
        m[icount] = 1;                                  /* 259 instances */
        CU_ASSERT_EQUAL(sync_report_decode(m, len, &d), -E2BIG);
        m[icount] = 0;
        m[icount + 1] = 100;                            /* 100 instances cannot fit in what is left */
        CU_ASSERT_EQUAL(sync_report_decode(m, len, &d), -EBADMSG);
        memcpy(m, buf, len);
        /* healthy: after "\x03web" wrr "\x10web@8080.service" "\x0810.0.0.1" port weight. */
        size_t healthy = icount + 2 + 4 + 1 + 17 + 9 + 2 + 2;
        CU_ASSERT_EQUAL(m[healthy], 1);
        m[healthy] = 2;
        CU_ASSERT_EQUAL(sync_report_decode(m, len, &d), -EBADMSG);
        m[healthy] = 0;                                 /* a valid variant: unhealthy */
        CU_ASSERT_EQUAL(decode_check(SYNC_TYPE_REPORT, m, len), 0);
        free(m);
        free(buf);
}

static void test_update(void) {
        struct sync_update u = sample_update(), d;
        struct raw raw = { 0 };
        uint8_t *buf;
        size_t len;

        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        raw_update(&raw, &u);
        CU_ASSERT_EQUAL(raw.len, len);
        CU_ASSERT_EQUAL(memcmp(raw.p, buf, len), 0);
        free(raw.p);
        CU_ASSERT_EQUAL(sync_body_type(buf, len), SYNC_TYPE_UPDATE);
        CU_ASSERT_EQUAL_FATAL(sync_update_decode(buf, len, &d), 0);
        CU_ASSERT_STRING_EQUAL(d.leader, "n2");
        CU_ASSERT_EQUAL(d.term, 7);
        CU_ASSERT_EQUAL_FATAL(d.table_len, sizeof(table_bytes) - 1);
        CU_ASSERT_PTR_EQUAL(d.table, buf + 2 + 3 + 8 + 4);     /* borrowed from the buffer */
        CU_ASSERT_EQUAL(memcmp(d.table, table_bytes, d.table_len), 0);
        CU_ASSERT_TRUE(d.has_assignment);
        CU_ASSERT_EQUAL_FATAL(d.n_assigned, 2);
        CU_ASSERT_TRUE(assigned_equal(&d.assigned[0], &assigned[0]));
        CU_ASSERT_TRUE(assigned_equal(&d.assigned[1], &assigned[1]));
        CU_ASSERT_EQUAL(d.assigned[1].port, 8082);
        sync_update_done(&d);
        CU_ASSERT_EQUAL(d.n_assigned, 0);
        sync_update_done(NULL);
        check_truncations(SYNC_TYPE_UPDATE, buf, len);
        write_seed("update", buf, len);
        free(buf);

        /* No table, no assignment; an empty complete assignment ("stop everything placed"). */
        u = (struct sync_update) { .leader = "n2", .term = 1 };
        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 3 + 8 + 4 + 1 + 2);
        CU_ASSERT_EQUAL_FATAL(sync_update_decode(buf, len, &d), 0);
        CU_ASSERT_PTR_NULL(d.table);
        CU_ASSERT_EQUAL(d.table_len, 0);
        CU_ASSERT_FALSE(d.has_assignment);
        CU_ASSERT_PTR_NULL(d.assigned);
        check_truncations(SYNC_TYPE_UPDATE, buf, len);
        write_seed("update-empty", buf, len);
        free(buf);
        u.has_assignment = true;
        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        CU_ASSERT_EQUAL_FATAL(sync_update_decode(buf, len, &d), 0);
        CU_ASSERT_TRUE(d.has_assignment);
        CU_ASSERT_EQUAL(d.n_assigned, 0);
        write_seed("update-stop-all", buf, len);
        free(buf);

        /* A real table set rides along untouched: the receiver decodes it. */
        struct table_instance ti[] = { insts[0].inst, insts[1].inst };
        struct table_report rep = { .node = "n1", .n_instances = 2, .instances = ti };
        struct table_member m = { .name = "n1", .state = MEMBERSHIP_ALIVE };
        struct table_input in = { .members = &m, .n_members = 1, .reports = &rep, .n_reports = 1 };
        struct table_builder *b;
        struct table_set *t;
        uint8_t *tb;
        size_t tlen;

        (void) sample_report();
        CU_ASSERT_FATAL(table_builder_new(&b) == 0);
        CU_ASSERT_EQUAL_FATAL(table_builder_build(b, 7, &in, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(table_encode(table_builder_current(b), &tb, &tlen), 0);
        u = sample_update();
        u.table = tb;
        u.table_len = tlen;
        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        CU_ASSERT_EQUAL_FATAL(sync_update_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL_FATAL(table_decode(d.table, d.table_len, &t), 0);
        CU_ASSERT_EQUAL(t->digest, table_builder_current(b)->digest);
        CU_ASSERT_EQUAL(table_find(t, "web")->algorithm, BALANCE_WRR);
        table_set_free(t);
        sync_update_done(&d);
        write_seed("update-table", buf, len);
        free(buf);
        free(tb);
        table_builder_free(b);
}

static void test_update_max(void) {
        struct sync_update u = { .term = UINT64_MAX, .has_assignment = true }, d;
        struct raw raw = { 0 };
        uint8_t *table, *buf;
        size_t len;

        fill(u.leader, WIRE_NAME_MAX, 'L');
        table = malloc(TABLE_FRAME_MAX + 1);
        CU_ASSERT_FATAL(table != NULL);
        memset(table, 0xa5, TABLE_FRAME_MAX + 1);
        u.table = table;
        u.table_len = TABLE_FRAME_MAX;
        for (size_t i = 0; i < SYNC_ASSIGNED_MAX; i++) {
                struct sync_assigned *a = &assigned[i];

                *a = (struct sync_assigned) { .port = (uint16_t) (65535 - i), .placed_at_us = UINT64_MAX };
                fill(a->service, TABLE_SERVICE_MAX - 1, 'w');
                fill(a->unit, 255, 'u');
                snprintf(a->unit, 12, "web@%05zuuu", i);
                a->unit[11] = 'u';
                memcpy(a->unit + 255 - 8, ".service", 9);
        }
        u.n_assigned = SYNC_ASSIGNED_MAX;
        u.assigned = assigned;
        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 65 + 8 + 4 + TABLE_FRAME_MAX + 1 + 2 + 256 * (64 + 256 + 2 + 8));
        CU_ASSERT(len <= SYNC_UPDATE_MAX);
        CU_ASSERT_EQUAL_FATAL(sync_update_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL(d.table_len, TABLE_FRAME_MAX);
        CU_ASSERT_EQUAL(d.n_assigned, SYNC_ASSIGNED_MAX);
        CU_ASSERT_EQUAL(strlen(d.assigned[7].unit), 255);
        for (size_t i = 0; i < SYNC_ASSIGNED_MAX; i++)
                CU_ASSERT_TRUE_FATAL(assigned_equal(&d.assigned[i], &assigned[i]));
        sync_update_done(&d);
        CU_ASSERT_EQUAL(decode_check(SYNC_TYPE_UPDATE, buf, len), 0);
        free(buf);

        /* One table byte more, one assignment more: refused both ways. */
        u.table_len = TABLE_FRAME_MAX + 1;
        CU_ASSERT_EQUAL(sync_update_encode(&u, &buf, &len), -EINVAL);
        raw_update(&raw, &u);
        CU_ASSERT_EQUAL(sync_update_decode(raw.p, raw.len, &d), -E2BIG);
        free(raw.p);
        u.table_len = 0;
        assigned[SYNC_ASSIGNED_MAX] = assigned[0];
        assigned[SYNC_ASSIGNED_MAX].unit[5] = 'x';
        u.n_assigned = SYNC_ASSIGNED_MAX + 1;
        CU_ASSERT_EQUAL(sync_update_encode(&u, &buf, &len), -EINVAL);
        raw = (struct raw) { 0 };
        raw_update(&raw, &u);
        CU_ASSERT_EQUAL(sync_update_decode(raw.p, raw.len, &d), -E2BIG);
        free(raw.p);
        free(table);

        buf = calloc(1, (size_t) SYNC_UPDATE_MAX + 1);
        CU_ASSERT_FATAL(buf != NULL);
        buf[0] = WIRE_VERSION;
        buf[1] = SYNC_TYPE_UPDATE;
        CU_ASSERT_EQUAL(sync_update_decode(buf, (size_t) SYNC_UPDATE_MAX + 1, &d), -E2BIG);
        free(buf);
}

static void test_update_rejections(void) {
        enum { LEADER, LEADER_EMPTY, TERM0, NO_ASSIGNMENT_LIST, SERVICE, UNIT_TEMPLATE, UNIT_SUFFIX, UNIT_TWO_AT,
               PORT0, DUP_UNIT, _MAX };

        for (int k = 0; k < _MAX; k++) {
                struct sync_update u = sample_update(), d;
                struct raw raw = { 0 };
                uint8_t *buf = NULL;
                size_t len;
                int e, f;

                switch (k) {
                case LEADER: set(u.leader, sizeof(u.leader), "n2:1"); break;
                case LEADER_EMPTY: set(u.leader, sizeof(u.leader), ""); break;
                case TERM0: u.term = 0; break;
                case NO_ASSIGNMENT_LIST: u.has_assignment = false; break;
                case SERVICE: set(assigned[1].service, sizeof(assigned[1].service), "we b"); break;
                case UNIT_TEMPLATE: set(assigned[1].unit, sizeof(assigned[1].unit), "web@.service"); break;
                case UNIT_SUFFIX: set(assigned[1].unit, sizeof(assigned[1].unit), "web@8082.socket"); break;
                case UNIT_TWO_AT: set(assigned[1].unit, sizeof(assigned[1].unit), "web@a@b.service"); break;
                case PORT0: assigned[1].port = 0; break;
                case DUP_UNIT: set(assigned[1].unit, sizeof(assigned[1].unit), "web@8081.service"); break;
                }
                e = sync_update_encode(&u, &buf, &len);
                raw_update(&raw, &u);
                f = sync_update_decode(raw.p, raw.len, &d);
                if (e != -EINVAL || f != -EBADMSG)
                        fprintf(stderr, "update case %d: encode %d, decode %d\n", k, e, f);
                CU_ASSERT_EQUAL(e, -EINVAL);
                CU_ASSERT_PTR_NULL(buf);
                CU_ASSERT_EQUAL(f, -EBADMSG);
                free(raw.p);
        }

        /* Byte level: the flag, and a table length beyond the body. */
        struct sync_update u = sample_update(), d;
        uint8_t *buf;
        size_t len, flag = 2 + 3 + 8 + 4 + sizeof(table_bytes) - 1;

        CU_ASSERT_EQUAL_FATAL(sync_update_encode(&u, &buf, &len), 0);
        CU_ASSERT_EQUAL(buf[flag], 1);
        buf[flag] = 2;
        CU_ASSERT_EQUAL(sync_update_decode(buf, len, &d), -EBADMSG);
        buf[flag] = 1;
        buf[2 + 3 + 8 + 2] = 0x10;      /* 4 KiB of table claimed, far fewer bytes left */
        CU_ASSERT_EQUAL(sync_update_decode(buf, len, &d), -EBADMSG);
        buf[2 + 3 + 8 + 2] = 0;
        buf[flag + 2] = 200;            /* 200 assignments cannot fit in what is left */
        CU_ASSERT_EQUAL(sync_update_decode(buf, len, &d), -EBADMSG);
        buf[flag + 2] = 2;
        CU_ASSERT_EQUAL(decode_check(SYNC_TYPE_UPDATE, buf, len), 0);
        free(buf);
}

static void test_datagrams(void) {
        uint8_t buf[SYNC_DATAGRAM_MAX];
        struct sync_announce a;
        struct sync_drain d;
        struct sync_drain_ack k;
        struct raw raw = { 0 };
        size_t len;

        /* DRAIN: set until a time, and undrain. */
        CU_ASSERT_EQUAL_FATAL(sync_drain_encode(&drain0, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 3 + 3 + 8 + 8);
        raw_drain(&raw, &drain0);
        CU_ASSERT_EQUAL(raw.len, len);
        CU_ASSERT_EQUAL(memcmp(raw.p, buf, len), 0);
        free(raw.p);
        CU_ASSERT_EQUAL_FATAL(sync_drain_decode(buf, len, &d), 0);
        CU_ASSERT_STRING_EQUAL(d.from, "n1");
        CU_ASSERT_STRING_EQUAL(d.node, "n2");
        CU_ASSERT_EQUAL(d.nonce, 42);
        CU_ASSERT_EQUAL(d.until_us, 1795000000000000);
        check_truncations(SYNC_TYPE_DRAIN, buf, len);
        write_seed("drain", buf, len);
        struct sync_drain undrain = drain0;
        undrain.until_us = SYNC_DRAIN_NONE;
        fill(undrain.from, WIRE_NAME_MAX, 'f');
        fill(undrain.node, WIRE_NAME_MAX, 'N');
        CU_ASSERT_EQUAL_FATAL(sync_drain_encode(&undrain, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 65 + 65 + 16);
        CU_ASSERT_EQUAL_FATAL(sync_drain_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL(d.until_us, 0);
        CU_ASSERT_EQUAL(d.nonce, 42);
        CU_ASSERT_STRING_EQUAL(d.from, undrain.from);
        CU_ASSERT_STRING_EQUAL(d.node, undrain.node);
        write_seed("undrain", buf, len);
        CU_ASSERT_EQUAL(sync_drain_encode(&undrain, buf, len - 1, &len), -EMSGSIZE);

        /* DRAIN_ACK: results 0, -1, -4095 and the errno given. */
        static const int32_t results[] = { 0, -1, -EBUSY, -4095 };
        for (size_t i = 0; i < ELEMENTSOF(results); i++) {
                struct sync_drain_ack x = ack0;

                x.result = results[i];
                CU_ASSERT_EQUAL_FATAL(sync_drain_ack_encode(&x, buf, sizeof(buf), &len), 0);
                CU_ASSERT_EQUAL(len, 2 + 3 + 8 + 4);
                CU_ASSERT_EQUAL_FATAL(sync_drain_ack_decode(buf, len, &k), 0);
                CU_ASSERT_EQUAL(k.result, results[i]);
                CU_ASSERT_STRING_EQUAL(k.from, "n2");
                CU_ASSERT_EQUAL(k.nonce, 42);
        }
        CU_ASSERT_EQUAL_FATAL(sync_drain_ack_encode(&ack0, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(memcmp(buf + len - 4, "\xff\xff\xff\xf0", 4), 0);      /* -EBUSY (-16) */
        check_truncations(SYNC_TYPE_DRAIN_ACK, buf, len);
        write_seed("drain-ack", buf, len);

        /* ANNOUNCE at its longest. */
        struct sync_announce big = { .term = UINT64_MAX, .version = UINT64_MAX, .digest = UINT64_MAX };
        fill(big.leader, WIRE_NAME_MAX, '9');
        CU_ASSERT_EQUAL_FATAL(sync_announce_encode(&big, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(len, 2 + 65 + 24);
        CU_ASSERT_EQUAL_FATAL(sync_announce_decode(buf, len, &a), 0);
        CU_ASSERT_STRING_EQUAL(a.leader, big.leader);
        CU_ASSERT_EQUAL(a.term, UINT64_MAX);
        CU_ASSERT_EQUAL(a.version, UINT64_MAX);
        CU_ASSERT_EQUAL(a.digest, UINT64_MAX);
        check_truncations(SYNC_TYPE_ANNOUNCE, buf, len);
        write_seed("announce-max", buf, len);

        /* Invalid structs: -EINVAL to encode, -EBADMSG from the raw bytes. */
        struct sync_announce bad_a[] = {
                { .leader = "", .term = 1, .version = 1 },
                { .leader = "n 1", .term = 1, .version = 1 },
                { .leader = "n1", .term = 0, .version = 1 },
                { .leader = "n1", .term = 1, .version = 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_a); i++) {
                raw = (struct raw) { 0 };
                CU_ASSERT_EQUAL(sync_announce_encode(&bad_a[i], buf, sizeof(buf), &len), -EINVAL);
                raw_announce(&raw, &bad_a[i]);
                CU_ASSERT_EQUAL(sync_announce_decode(raw.p, raw.len, &a), -EBADMSG);
                free(raw.p);
        }
        struct sync_drain bad_d[] = {
                { .from = "", .node = "n2" },
                { .from = "n1", .node = "" },
                { .from = "n1", .node = "n\x01" },
                { .from = "n\xe9", .node = "n2" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_d); i++) {
                raw = (struct raw) { 0 };
                CU_ASSERT_EQUAL(sync_drain_encode(&bad_d[i], buf, sizeof(buf), &len), -EINVAL);
                raw_drain(&raw, &bad_d[i]);
                CU_ASSERT_EQUAL(sync_drain_decode(raw.p, raw.len, &d), -EBADMSG);
                free(raw.p);
        }
        struct sync_drain_ack bad_k[] = {
                { .from = "n2", .result = 1 },
                { .from = "n2", .result = -4096 },
                { .from = "n2", .result = INT32_MIN },
                { .from = "n2", .result = INT32_MAX },
                { .from = "", .result = 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_k); i++) {
                raw = (struct raw) { 0 };
                CU_ASSERT_EQUAL(sync_drain_ack_encode(&bad_k[i], buf, sizeof(buf), &len), -EINVAL);
                raw_drain_ack(&raw, &bad_k[i]);
                CU_ASSERT_EQUAL(sync_drain_ack_decode(raw.p, raw.len, &k), -EBADMSG);
                free(raw.p);
        }

        /* Datagrams over SYNC_DATAGRAM_MAX are refused before reading. */
        uint8_t huge[SYNC_DATAGRAM_MAX + 1] = { WIRE_VERSION, SYNC_TYPE_ANNOUNCE };
        CU_ASSERT_EQUAL(sync_announce_decode(huge, sizeof(huge), &a), -E2BIG);
        huge[1] = SYNC_TYPE_DRAIN;
        CU_ASSERT_EQUAL(sync_drain_decode(huge, sizeof(huge), &d), -E2BIG);
        huge[1] = SYNC_TYPE_DRAIN_ACK;
        CU_ASSERT_EQUAL(sync_drain_ack_decode(huge, sizeof(huge), &k), -E2BIG);
}

/* Decoders leave *ret alone on failure and refuse NULL arguments. */
static void test_untouched(void) {
        struct sync_report r, sample = sample_report();
        struct sync_announce a;
        uint8_t *buf;
        size_t len;

        memset(&r, 0x5a, sizeof(r));
        memset(&a, 0x5a, sizeof(a));
        CU_ASSERT_EQUAL_FATAL(sync_report_encode(&sample, &buf, &len), 0);
        CU_ASSERT_EQUAL(sync_report_decode(buf, len - 1, &r), -EBADMSG);
        for (size_t i = 0; i < sizeof(r); i++)
                CU_ASSERT_EQUAL_FATAL(((uint8_t *) &r)[i], 0x5a);
        CU_ASSERT_EQUAL(sync_announce_decode(buf, len, &a), -EBADMSG);
        for (size_t i = 0; i < sizeof(a); i++)
                CU_ASSERT_EQUAL_FATAL(((uint8_t *) &a)[i], 0x5a);
        CU_ASSERT_EQUAL(sync_report_decode(NULL, 0, &r), -EINVAL);
        CU_ASSERT_EQUAL(sync_report_decode(buf, len, NULL), -EINVAL);
        CU_ASSERT_EQUAL(sync_report_encode(NULL, &buf, &len), -EINVAL);
        free(buf);
}

int main(void) {
        CU_TestInfo tests[] = {
                { "body type", test_body_type },
                { "announce golden vector", test_golden },
                { "report round trip", test_report },
                { "report at its caps", test_report_max },
                { "report rejections", test_report_rejections },
                { "update round trip", test_update },
                { "update at its caps", test_update_max },
                { "update rejections", test_update_rejections },
                { "datagrams", test_datagrams },
                { "outputs untouched on failure", test_untouched },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "sync", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        corpus_dir = getenv("SYNC_WRITE_CORPUS");
        return unit_run(suites);
}
