/*
 * The table sync codec, see sync.h and doc/PROTOCOL.md ("Table sync
 * bodies"). One validator per body states every rule once: the encoder
 * refuses (-EINVAL) exactly what the decoder refuses (-EBADMSG), so anything
 * that decodes re-encodes to the same bytes. Each body has one writer
 * function, run twice for the allocated bodies: first without a buffer to
 * measure, then to write. The reader checks the remaining length before
 * every read, and a count is checked against its cap and against what the
 * remaining bytes can hold before anything is allocated for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/sync.h"
#include "core/wire.h"

#define ERRNO_MAX 4095                  /* results are 0 or -1..-ERRNO_MAX */

/* The fewest bytes one list entry can take (every string one byte), to bound counts by the input. */
#define SPEC_MIN (2 + 1 + 2 + 1 + 2 + 2)                                /* name, algorithm, replicas, template, ports */
#define INSTANCE_MIN (2 + 1 + 2 + 2 + 2 + 2 + 1 + 1 + 8 + 1 + 1 + 8)   /* see put_instance() */
#define ASSIGNED_MIN (2 + 2 + 2 + 8)                                    /* service, unit, port, placed_at */

/* --- writer ------------------------------------------------------------------ */

/*
 * Without a buffer (p == NULL) the writer only counts, which is how the
 * allocating encoders size their buffer. With one, it never writes past
 * size; off keeps counting, so off > size afterwards means "did not fit".
 */
struct writer {
        uint8_t *p;
        size_t size;
        size_t off;
};

static void put_bytes(struct writer *w, const void *src, size_t n) {
        if (w->p && w->off <= w->size && n <= w->size - w->off)
                memcpy(w->p + w->off, src, n);
        w->off += n;
}

static void put_be(struct writer *w, uint64_t v, int bytes) {
        uint8_t b[8];

        for (int i = 0; i < bytes; i++)
                b[i] = (uint8_t) (v >> (8 * (bytes - 1 - i)));
        put_bytes(w, b, (size_t) bytes);
}

/* The validators have checked that every string is shorter than 256 bytes. */
static void put_str(struct writer *w, const char *s) {
        size_t n = strlen(s);

        put_be(w, n, 1);
        put_bytes(w, s, n);
}

static void put_header(struct writer *w, uint8_t type) {
        put_be(w, WIRE_VERSION, 1);
        put_be(w, type, 1);
}

/* --- reader ------------------------------------------------------------------ */

struct reader {
        const uint8_t *p;
        size_t len;
        size_t off;
};

static size_t left(const struct reader *r) {
        return r->len - r->off;
}

static bool get_be(struct reader *r, int bytes, uint64_t *ret) {
        uint64_t v = 0;

        if (left(r) < (size_t) bytes)
                return false;
        for (int i = 0; i < bytes; i++)
                v = v << 8 | r->p[r->off++];
        *ret = v;
        return true;
}

/*
 * A length-prefixed string into buf (size bytes, NUL included). Content
 * rules are the validators'; an embedded NUL is refused here because it
 * would make the string re-encode shorter.
 */
static bool get_str(struct reader *r, char *buf, size_t size) {
        uint64_t n;

        if (!get_be(r, 1, &n) || n >= size || left(r) < n || memchr(r->p + r->off, '\0', n))
                return false;
        memcpy(buf, r->p + r->off, n);
        buf[n] = '\0';
        r->off += n;
        return true;
}

static bool get_bool(struct reader *r, bool *ret) {
        uint64_t v;

        if (!get_be(r, 1, &v) || v > 1)
                return false;
        *ret = v;
        return true;
}

/* Enums travel as one byte; the validators check the range. */
static bool get_enum(struct reader *r, int *ret) {
        uint64_t v;

        if (!get_be(r, 1, &v))
                return false;
        *ret = (int) v;
        return true;
}

/* Version and type: -EPROTONOSUPPORT for another version, -EBADMSG for a short body or another type. */
static int get_header(struct reader *r, uint8_t type) {
        if (r->len < 1)
                return -EBADMSG;
        if (r->p[0] != WIRE_VERSION)
                return -EPROTONOSUPPORT;
        if (r->len < 2 || r->p[1] != type)
                return -EBADMSG;
        r->off = 2;
        return 0;
}

/*
 * A list count: -E2BIG above its cap, -EBADMSG when the remaining bytes
 * cannot hold that many entries of at least min bytes each.
 */
static int get_count(struct reader *r, size_t cap, size_t min, size_t *ret) {
        uint64_t n;

        if (!get_be(r, 2, &n))
                return -EBADMSG;
        if (n > cap)
                return -E2BIG;
        if (n > left(r) / min)
                return -EBADMSG;
        *ret = (size_t) n;
        return 0;
}

/* --- validation ---------------------------------------------------------------- */

static bool valid_node(const char *s) {
        return wire_name_valid(s, strnlen(s, TABLE_NODE_MAX));
}

/* A unit in a field of `size` bytes: NUL-terminated there, and valid for placement. */
static bool valid_unit(const char *s, size_t size) {
        return strnlen(s, size) < size && placement_unit_valid(s);
}

static bool valid_template(const char *s) {
        return strnlen(s, SYNC_UNIT_MAX) < SYNC_UNIT_MAX && placement_template_valid(s);
}

static bool valid_algorithm(enum balance_algorithm a) {
        return a >= 0 && a < _BALANCE_ALGORITHM_MAX;
}

static bool valid_spec(const struct sync_service_spec *s) {
        if (!table_service_name_valid(s->name) || !valid_algorithm(s->algorithm) ||
            s->replicas > PLACEMENT_REPLICAS_MAX)
                return false;
        if (s->template_unit[0] == '\0')
                return s->port_min == 0 && s->port_max == 0;
        return valid_template(s->template_unit) && s->port_min >= 1 && s->port_min <= s->port_max;
}

static bool valid_instance(const struct sync_instance *i) {
        return table_instance_validate(&i->inst, NULL) == 0 && valid_unit(i->inst.instance, TABLE_INSTANCE_MAX) &&
               i->origin >= 0 && i->origin < _PLACEMENT_ORIGIN_MAX && i->state >= 0 &&
               i->state < _PLACEMENT_INSTANCE_STATE_MAX && (i->origin != PLACEMENT_STATIC || i->placed_at_us == 0);
}

/* Quadratic duplicate checks below are bounded by the list caps (256 entries). */
static bool valid_report(const struct sync_report *r) {
        if (!valid_node(r->node) || (r->table_version == 0) != (r->table_term == 0) ||
            (r->table_version == 0 && r->table_digest != 0))
                return false;
        if (r->n_services > SYNC_SERVICES_MAX || (r->n_services > 0 && !r->services) ||
            r->n_instances > TABLE_REPORT_INSTANCES_MAX || (r->n_instances > 0 && !r->instances))
                return false;
        for (size_t i = 0; i < r->n_services; i++) {
                if (!valid_spec(&r->services[i]))
                        return false;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->services[i].name, r->services[j].name) == 0)
                                return false;
        }
        for (size_t i = 0; i < r->n_instances; i++) {
                const struct table_instance *a = &r->instances[i].inst;

                if (!valid_instance(&r->instances[i]))
                        return false;
                for (size_t j = 0; j < i; j++) {
                        const struct table_instance *b = &r->instances[j].inst;

                        if (strcmp(a->service, b->service) == 0 && strcmp(a->instance, b->instance) == 0)
                                return false;
                }
        }
        return true;
}

static bool valid_update(const struct sync_update *u) {
        if (!valid_node(u->leader) || u->term == 0 || u->table_len > TABLE_FRAME_MAX ||
            (u->table_len > 0 && !u->table) || (!u->has_assignment && u->n_assigned > 0) ||
            u->n_assigned > SYNC_ASSIGNED_MAX || (u->n_assigned > 0 && !u->assigned))
                return false;
        for (size_t i = 0; i < u->n_assigned; i++) {
                const struct sync_assigned *a = &u->assigned[i];

                if (!table_service_name_valid(a->service) || !valid_unit(a->unit, SYNC_UNIT_MAX) || a->port == 0)
                        return false;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(a->unit, u->assigned[j].unit) == 0)
                                return false;
        }
        return true;
}

static bool valid_announce(const struct sync_announce *a) {
        return valid_node(a->leader) && a->term >= 1 && a->version >= 1;
}

static bool valid_drain(const struct sync_drain *d) {
        return valid_node(d->from) && valid_node(d->node);
}

static bool valid_drain_ack(const struct sync_drain_ack *a) {
        return valid_node(a->from) && a->result <= 0 && a->result >= -ERRNO_MAX;
}

/* --- bodies -------------------------------------------------------------------- */

uint8_t sync_body_type(const uint8_t *buf, size_t len) {
        if (!buf || len < 2 || buf[0] != WIRE_VERSION || buf[1] < SYNC_TYPE_REPORT || buf[1] > SYNC_TYPE_DRAIN_ACK)
                return 0;
        return buf[1];
}

/*
 * The datagram encoders: validate, write into buf, and refuse a body that
 * did not fit in size (or in SYNC_DATAGRAM_MAX) after the fact.
 */
static int finish_datagram(const struct writer *w, size_t *ret_len) {
        if (w->off > w->size || w->off > SYNC_DATAGRAM_MAX)
                return -EMSGSIZE;
        *ret_len = w->off;
        return 0;
}

/* The allocating encoders: measure, check the cap, allocate, write. */
static int encode_alloc(void (*put)(struct writer *, const void *), const void *body, size_t cap, uint8_t **ret_buf,
                        size_t *ret_len) {
        struct writer w = { 0 };

        put(&w, body);
        if (w.off > cap)
                return -EMSGSIZE;
        w.size = w.off;
        w.off = 0;
        w.p = malloc(w.size);
        if (!w.p)
                return -ENOMEM;
        put(&w, body);
        *ret_buf = w.p;
        *ret_len = w.off;
        return 0;
}

/* service, algorithm, unit, address, port, weight, healthy, breaker, active, origin, state, placed_at */
static void put_instance(struct writer *w, const struct sync_instance *i) {
        put_str(w, i->inst.service);
        put_be(w, (uint64_t) i->inst.algorithm, 1);
        put_str(w, i->inst.instance);
        put_str(w, i->inst.address);
        put_be(w, i->inst.port, 2);
        put_be(w, i->inst.weight, 2);
        put_be(w, i->inst.healthy, 1);
        put_be(w, (uint64_t) i->inst.breaker, 1);
        put_be(w, i->inst.active, 8);
        put_be(w, (uint64_t) i->origin, 1);
        put_be(w, (uint64_t) i->state, 1);
        put_be(w, i->placed_at_us, 8);
}

static void put_report(struct writer *w, const void *body) {
        const struct sync_report *r = body;

        put_header(w, SYNC_TYPE_REPORT);
        put_str(w, r->node);
        put_be(w, r->term_seen, 8);
        put_be(w, r->table_term, 8);
        put_be(w, r->table_version, 8);
        put_be(w, r->table_digest, 8);
        put_be(w, r->witness, 1);
        put_be(w, r->drain_until_us, 8);
        put_be(w, r->n_services, 2);
        for (size_t i = 0; i < r->n_services; i++) {
                const struct sync_service_spec *s = &r->services[i];

                put_str(w, s->name);
                put_be(w, (uint64_t) s->algorithm, 1);
                put_be(w, s->replicas, 2);
                put_str(w, s->template_unit);
                put_be(w, s->port_min, 2);
                put_be(w, s->port_max, 2);
        }
        put_be(w, r->n_instances, 2);
        for (size_t i = 0; i < r->n_instances; i++)
                put_instance(w, &r->instances[i]);
}

void sync_report_done(struct sync_report *r) {
        if (!r)
                return;
        free(r->services);
        free(r->instances);
        r->services = NULL;
        r->instances = NULL;
        r->n_services = 0;
        r->n_instances = 0;
}

int sync_report_encode(const struct sync_report *r, uint8_t **ret_buf, size_t *ret_len) {
        if (!r || !ret_buf || !ret_len || !valid_report(r))
                return -EINVAL;
        return encode_alloc(put_report, r, SYNC_REPORT_MAX, ret_buf, ret_len);
}

static bool get_spec(struct reader *rd, struct sync_service_spec *s) {
        uint64_t replicas, port_min, port_max;
        int algorithm;

        if (!get_str(rd, s->name, sizeof(s->name)) || !get_enum(rd, &algorithm) || !get_be(rd, 2, &replicas) ||
            !get_str(rd, s->template_unit, sizeof(s->template_unit)) || !get_be(rd, 2, &port_min) ||
            !get_be(rd, 2, &port_max))
                return false;
        s->algorithm = (enum balance_algorithm) algorithm;
        s->replicas = (uint16_t) replicas;
        s->port_min = (uint16_t) port_min;
        s->port_max = (uint16_t) port_max;
        return true;
}

static bool get_instance(struct reader *rd, struct sync_instance *i) {
        struct table_instance *t = &i->inst;
        uint64_t port, weight;
        int algorithm, breaker, origin, state;

        if (!get_str(rd, t->service, sizeof(t->service)) || !get_enum(rd, &algorithm) ||
            !get_str(rd, t->instance, sizeof(t->instance)) || !get_str(rd, t->address, sizeof(t->address)) ||
            !get_be(rd, 2, &port) || !get_be(rd, 2, &weight) || !get_bool(rd, &t->healthy) ||
            !get_enum(rd, &breaker) || !get_be(rd, 8, &t->active) || !get_enum(rd, &origin) ||
            !get_enum(rd, &state) || !get_be(rd, 8, &i->placed_at_us))
                return false;
        t->algorithm = (enum balance_algorithm) algorithm;
        t->port = (uint16_t) port;
        t->weight = (uint32_t) weight;
        t->breaker = (enum breaker_state) breaker;
        i->origin = (enum placement_origin) origin;
        i->state = (enum placement_instance_state) state;
        return true;
}

int sync_report_decode(const uint8_t *buf, size_t len, struct sync_report *ret) {
        struct reader rd = { .p = buf, .len = len };
        struct sync_report r = { 0 };
        int e;

        if (!buf || !ret)
                return -EINVAL;
        if (len > SYNC_REPORT_MAX)
                return -E2BIG;
        e = get_header(&rd, SYNC_TYPE_REPORT);
        if (e < 0)
                return e;
        e = -EBADMSG;
        if (!get_str(&rd, r.node, sizeof(r.node)) || !get_be(&rd, 8, &r.term_seen) ||
            !get_be(&rd, 8, &r.table_term) || !get_be(&rd, 8, &r.table_version) ||
            !get_be(&rd, 8, &r.table_digest) || !get_bool(&rd, &r.witness) || !get_be(&rd, 8, &r.drain_until_us))
                goto fail;
        e = get_count(&rd, SYNC_SERVICES_MAX, SPEC_MIN, &r.n_services);
        if (e < 0)
                goto fail;
        if (r.n_services > 0) {
                r.services = calloc(r.n_services, sizeof(*r.services));
                if (!r.services) {
                        e = -ENOMEM;
                        goto fail;
                }
        }
        e = -EBADMSG;
        for (size_t i = 0; i < r.n_services; i++)
                if (!get_spec(&rd, &r.services[i]))
                        goto fail;
        e = get_count(&rd, TABLE_REPORT_INSTANCES_MAX, INSTANCE_MIN, &r.n_instances);
        if (e < 0)
                goto fail;
        if (r.n_instances > 0) {
                r.instances = calloc(r.n_instances, sizeof(*r.instances));
                if (!r.instances) {
                        e = -ENOMEM;
                        goto fail;
                }
        }
        e = -EBADMSG;
        for (size_t i = 0; i < r.n_instances; i++)
                if (!get_instance(&rd, &r.instances[i]))
                        goto fail;
        if (left(&rd) != 0 || !valid_report(&r))
                goto fail;
        *ret = r;
        return 0;
fail:
        sync_report_done(&r);
        return e;
}

static void put_update(struct writer *w, const void *body) {
        const struct sync_update *u = body;

        put_header(w, SYNC_TYPE_UPDATE);
        put_str(w, u->leader);
        put_be(w, u->term, 8);
        put_be(w, u->table_len, 4);
        if (u->table_len > 0)
                put_bytes(w, u->table, u->table_len);
        put_be(w, u->has_assignment, 1);
        put_be(w, u->n_assigned, 2);
        for (size_t i = 0; i < u->n_assigned; i++) {
                const struct sync_assigned *a = &u->assigned[i];

                put_str(w, a->service);
                put_str(w, a->unit);
                put_be(w, a->port, 2);
                put_be(w, a->placed_at_us, 8);
        }
}

void sync_update_done(struct sync_update *u) {
        if (!u)
                return;
        free(u->assigned);
        u->assigned = NULL;
        u->n_assigned = 0;
}

int sync_update_encode(const struct sync_update *u, uint8_t **ret_buf, size_t *ret_len) {
        if (!u || !ret_buf || !ret_len || !valid_update(u))
                return -EINVAL;
        return encode_alloc(put_update, u, SYNC_UPDATE_MAX, ret_buf, ret_len);
}

int sync_update_decode(const uint8_t *buf, size_t len, struct sync_update *ret) {
        struct reader rd = { .p = buf, .len = len };
        struct sync_update u = { 0 };
        uint64_t table_len;
        int e;

        if (!buf || !ret)
                return -EINVAL;
        if (len > SYNC_UPDATE_MAX)
                return -E2BIG;
        e = get_header(&rd, SYNC_TYPE_UPDATE);
        if (e < 0)
                return e;
        if (!get_str(&rd, u.leader, sizeof(u.leader)) || !get_be(&rd, 8, &u.term) || !get_be(&rd, 4, &table_len))
                return -EBADMSG;
        if (table_len > TABLE_FRAME_MAX)
                return -E2BIG;
        if (table_len > left(&rd))
                return -EBADMSG;
        u.table = table_len > 0 ? buf + rd.off : NULL;
        u.table_len = (size_t) table_len;
        rd.off += u.table_len;
        if (!get_bool(&rd, &u.has_assignment))
                return -EBADMSG;
        e = get_count(&rd, SYNC_ASSIGNED_MAX, ASSIGNED_MIN, &u.n_assigned);
        if (e < 0)
                return e;
        if (u.n_assigned > 0) {
                u.assigned = calloc(u.n_assigned, sizeof(*u.assigned));
                if (!u.assigned)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < u.n_assigned; i++) {
                struct sync_assigned *a = &u.assigned[i];
                uint64_t port;

                if (!get_str(&rd, a->service, sizeof(a->service)) || !get_str(&rd, a->unit, sizeof(a->unit)) ||
                    !get_be(&rd, 2, &port) || !get_be(&rd, 8, &a->placed_at_us))
                        goto fail;
                a->port = (uint16_t) port;
        }
        if (left(&rd) != 0 || !valid_update(&u))
                goto fail;
        *ret = u;
        return 0;
fail:
        sync_update_done(&u);
        return -EBADMSG;
}

int sync_announce_encode(const struct sync_announce *a, uint8_t *buf, size_t size, size_t *ret_len) {
        struct writer w = { .p = buf, .size = size };

        if (!a || !buf || !ret_len || !valid_announce(a))
                return -EINVAL;
        put_header(&w, SYNC_TYPE_ANNOUNCE);
        put_str(&w, a->leader);
        put_be(&w, a->term, 8);
        put_be(&w, a->version, 8);
        put_be(&w, a->digest, 8);
        return finish_datagram(&w, ret_len);
}

int sync_announce_decode(const uint8_t *buf, size_t len, struct sync_announce *ret) {
        struct reader rd = { .p = buf, .len = len };
        struct sync_announce a = { 0 };
        int e;

        if (!buf || !ret)
                return -EINVAL;
        if (len > SYNC_DATAGRAM_MAX)
                return -E2BIG;
        e = get_header(&rd, SYNC_TYPE_ANNOUNCE);
        if (e < 0)
                return e;
        if (!get_str(&rd, a.leader, sizeof(a.leader)) || !get_be(&rd, 8, &a.term) || !get_be(&rd, 8, &a.version) ||
            !get_be(&rd, 8, &a.digest) || left(&rd) != 0 || !valid_announce(&a))
                return -EBADMSG;
        *ret = a;
        return 0;
}

int sync_drain_encode(const struct sync_drain *d, uint8_t *buf, size_t size, size_t *ret_len) {
        struct writer w = { .p = buf, .size = size };

        if (!d || !buf || !ret_len || !valid_drain(d))
                return -EINVAL;
        put_header(&w, SYNC_TYPE_DRAIN);
        put_str(&w, d->from);
        put_str(&w, d->node);
        put_be(&w, d->nonce, 8);
        put_be(&w, d->until_us, 8);
        return finish_datagram(&w, ret_len);
}

int sync_drain_decode(const uint8_t *buf, size_t len, struct sync_drain *ret) {
        struct reader rd = { .p = buf, .len = len };
        struct sync_drain d = { 0 };
        int e;

        if (!buf || !ret)
                return -EINVAL;
        if (len > SYNC_DATAGRAM_MAX)
                return -E2BIG;
        e = get_header(&rd, SYNC_TYPE_DRAIN);
        if (e < 0)
                return e;
        if (!get_str(&rd, d.from, sizeof(d.from)) || !get_str(&rd, d.node, sizeof(d.node)) ||
            !get_be(&rd, 8, &d.nonce) || !get_be(&rd, 8, &d.until_us) || left(&rd) != 0 || !valid_drain(&d))
                return -EBADMSG;
        *ret = d;
        return 0;
}

int sync_drain_ack_encode(const struct sync_drain_ack *a, uint8_t *buf, size_t size, size_t *ret_len) {
        struct writer w = { .p = buf, .size = size };

        if (!a || !buf || !ret_len || !valid_drain_ack(a))
                return -EINVAL;
        put_header(&w, SYNC_TYPE_DRAIN_ACK);
        put_str(&w, a->from);
        put_be(&w, a->nonce, 8);
        put_be(&w, (uint32_t) a->result, 4);     /* two's complement */
        return finish_datagram(&w, ret_len);
}

int sync_drain_ack_decode(const uint8_t *buf, size_t len, struct sync_drain_ack *ret) {
        struct reader rd = { .p = buf, .len = len };
        struct sync_drain_ack a = { 0 };
        uint64_t result;
        int e;

        if (!buf || !ret)
                return -EINVAL;
        if (len > SYNC_DATAGRAM_MAX)
                return -E2BIG;
        e = get_header(&rd, SYNC_TYPE_DRAIN_ACK);
        if (e < 0)
                return e;
        if (!get_str(&rd, a.from, sizeof(a.from)) || !get_be(&rd, 8, &a.nonce) || !get_be(&rd, 4, &result) ||
            left(&rd) != 0)
                return -EBADMSG;
        /* Only 0 and -1..-ERRNO_MAX are valid: anything at or above 2^31 is a negative number. */
        a.result = result >= UINT64_C(0x80000000) ? (int32_t) ((int64_t) result - (INT64_C(1) << 32))
                                                  : (int32_t) result;
        if (!valid_drain_ack(&a))
                return -EBADMSG;
        *ret = a;
        return 0;
}

int sync_report_to_table(const struct sync_report *r, struct table_report *ret) {
        struct table_instance *v;

        if (!r || !ret || (r->n_instances > 0 && !r->instances))
                return -EINVAL;
        v = calloc(r->n_instances > 0 ? r->n_instances : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_instances; i++)
                v[i] = r->instances[i].inst;
        *ret = (struct table_report) { .n_instances = r->n_instances, .instances = v };
        memcpy(ret->node, r->node, sizeof(ret->node));
        ret->node[sizeof(ret->node) - 1] = '\0';
        return 0;
}
