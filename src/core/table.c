/*
 * The balancer table, see table.h. Building sorts the inputs' names once so
 * that every lookup is a binary search: a build is O((members + drains +
 * backends) log n). Encoding and decoding share one field order, and the decoder demands
 * the canonical form so that a decoded set re-encodes byte for byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/table.h"

#define FORMAT_MAGIC "AGTB"
#define FORMAT_VERSION 2
#define HEADER_SIZE (4 + 1 + 8 + 8 + 2)
#define SERVICE_FIXED (1 + 1 + 2)                       /* name length, algorithm, backend count */
#define BACKEND_FIXED (1 + 1 + 1 + 2 + 2 + 1 + 8)       /* 3 lengths, port, weight, state, active */
#define BACKEND_MIN (BACKEND_FIXED + 3)                 /* every string at least one byte */

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

struct table_builder {
        struct table_set *current;
};

/* --- validation ------------------------------------------------------------ */

static bool valid_text(const char *s, size_t max) {
        size_t n = 0;

        for (; s[n] && n < max; n++)
                if ((unsigned char) s[n] <= 0x20 || (unsigned char) s[n] >= 0x7f)
                        return false;
        return n > 0 && n < max;
}

/* The config's service name rule (util_valid_name(), which core cannot link). */
static bool valid_service(const char *s) {
        size_t n = 0;

        for (; s[n] && n < TABLE_SERVICE_MAX; n++) {
                char c = s[n];

                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (n > 0 && (c == '_' || c == '-'))))
                        return false;
        }
        return n > 0 && n < TABLE_SERVICE_MAX;
}

bool table_service_name_valid(const char *name) {
        return name && valid_service(name);
}

static bool valid_algorithm(enum balance_algorithm a) {
        return a >= 0 && a < _BALANCE_ALGORITHM_MAX;
}

static bool valid_node(const char *s) {
        return s && valid_text(s, TABLE_NODE_MAX);
}

int table_instance_validate(const struct table_instance *i, const char **ret_reason) {
        const char *why = NULL;

        if (!i)
                why = "no instance";
        else if (!valid_service(i->service))
                why = "bad service name";
        else if (!valid_algorithm(i->algorithm))
                why = "bad algorithm";
        else if (!valid_text(i->instance, TABLE_INSTANCE_MAX))
                why = "bad instance name";
        else if (!valid_text(i->address, TABLE_ADDRESS_MAX))
                why = "bad address";
        else if (i->port == 0)
                why = "port 0";
        else if (i->weight > BALANCE_WEIGHT_MAX)
                why = "weight above maximum";
        else if (i->breaker < 0 || i->breaker >= _BREAKER_STATE_MAX)
                why = "bad breaker state";
        if (why) {
                if (ret_reason)
                        *ret_reason = why;
                return -EINVAL;
        }
        return 0;
}

int table_report_validate(const struct table_report *r, const char **ret_reason) {
        int ret;

        if (!r || !valid_node(r->node)) {
                if (ret_reason)
                        *ret_reason = "bad node name";
                return -EINVAL;
        }
        if (r->n_instances > TABLE_REPORT_INSTANCES_MAX) {
                if (ret_reason)
                        *ret_reason = "too many instances";
                return -EINVAL;
        }
        if (r->n_instances > 0 && !r->instances) {
                if (ret_reason)
                        *ret_reason = "no instances array";
                return -EINVAL;
        }
        for (size_t i = 0; i < r->n_instances; i++) {
                ret = table_instance_validate(&r->instances[i], ret_reason);
                if (ret < 0)
                        return ret;
                /* Quadratic, but bounded by TABLE_REPORT_INSTANCES_MAX. */
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->instances[i].service, r->instances[j].service) == 0 &&
                            strcmp(r->instances[i].instance, r->instances[j].instance) == 0) {
                                if (ret_reason)
                                        *ret_reason = "instance reported twice";
                                return -EEXIST;
                        }
        }
        return 0;
}

/* --- sets -------------------------------------------------------------------- */

void table_set_free(struct table_set *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_services; i++)
                free(t->services[i].backends);
        free(t->services);
        free(t);
}

int table_set_dup(const struct table_set *t, struct table_set **ret) {
        struct table_set *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct table_set) { .term = t->term, .version = t->version, .digest = t->digest };
        if (t->n_services > 0) {
                c->services = calloc(t->n_services, sizeof(*c->services));
                if (!c->services) {
                        free(c);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < t->n_services; i++) {
                const struct table_service *s = &t->services[i];

                c->services[i] = *s;
                c->services[i].backends = calloc(s->n_backends ? s->n_backends : 1, sizeof(*s->backends));
                if (!c->services[i].backends) {
                        c->n_services = i;
                        table_set_free(c);
                        return -ENOMEM;
                }
                memcpy(c->services[i].backends, s->backends, s->n_backends * sizeof(*s->backends));
                c->n_services = i + 1;
        }
        *ret = c;
        return 0;
}

static int service_name_cmp(const void *key, const void *elem) {
        return strcmp(key, ((const struct table_service *) elem)->name);
}

const struct table_service *table_find(const struct table_set *t, const char *name) {
        if (!t || !name || t->n_services == 0)
                return NULL;
        return bsearch(name, t->services, t->n_services, sizeof(*t->services), service_name_cmp);
}

static bool same_backend(const struct table_backend *a, const struct table_backend *b) {
        return strcmp(a->node, b->node) == 0 && strcmp(a->instance, b->instance) == 0 &&
               strcmp(a->address, b->address) == 0 && a->port == b->port && a->weight == b->weight &&
               a->state == b->state;
}

bool table_same_content(const struct table_set *a, const struct table_set *b) {
        if (!a || !b)
                return a == b;
        if (a->n_services != b->n_services)
                return false;
        for (size_t i = 0; i < a->n_services; i++) {
                const struct table_service *x = &a->services[i], *y = &b->services[i];

                if (strcmp(x->name, y->name) != 0 || x->algorithm != y->algorithm || x->n_backends != y->n_backends)
                        return false;
                for (size_t j = 0; j < x->n_backends; j++)
                        if (!same_backend(&x->backends[j], &y->backends[j]))
                                return false;
        }
        return true;
}

/* --- digests ----------------------------------------------------------------- */

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
        const unsigned char *c = p;

        for (size_t i = 0; i < n; i++) {
                h ^= c[i];
                h *= FNV_PRIME;
        }
        return h;
}

/* Strings go in with their NUL so that ("ab","c") and ("a","bc") differ. */
static uint64_t fnv_str(uint64_t h, const char *s) {
        return fnv_bytes(h, s, strlen(s) + 1);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
        unsigned char b[8];

        for (int i = 0; i < 8; i++)
                b[i] = (unsigned char) (v >> (56 - 8 * i));
        return fnv_bytes(h, b, sizeof(b));
}

static void compute_digests(struct table_set *t) {
        uint64_t all = FNV_OFFSET;

        for (size_t i = 0; i < t->n_services; i++) {
                struct table_service *s = &t->services[i];
                uint64_t h = fnv_str(FNV_OFFSET, s->name);

                h = fnv_u64(h, (uint64_t) s->algorithm);
                h = fnv_u64(h, s->n_backends);
                for (size_t j = 0; j < s->n_backends; j++) {
                        const struct table_backend *b = &s->backends[j];

                        h = fnv_str(h, b->node);
                        h = fnv_str(h, b->instance);
                        h = fnv_str(h, b->address);
                        h = fnv_u64(h, b->port);
                        h = fnv_u64(h, b->weight);
                        h = fnv_u64(h, (uint64_t) b->state);
                }
                s->digest = h;
                all = fnv_u64(fnv_str(all, s->name), h);
        }
        t->digest = all;
}

/* --- building ------------------------------------------------------------------ */

uint64_t table_drains_next_expiry(const struct table_drain *drains, size_t n, uint64_t now) {
        uint64_t next = UINT64_MAX;

        for (size_t i = 0; i < n; i++)
                if (drains[i].until_us != TABLE_DRAIN_FOREVER && drains[i].until_us > now &&
                    drains[i].until_us < next)
                        next = drains[i].until_us;
        return next;
}

static int member_cmp(const void *a, const void *b) {
        return strcmp((*(const struct table_member *const *) a)->name,
                      (*(const struct table_member *const *) b)->name);
}

static int member_key_cmp(const void *key, const void *elem) {
        return strcmp(key, (*(const struct table_member *const *) elem)->name);
}

static int report_cmp(const void *a, const void *b) {
        return strcmp((*(const struct table_report *const *) a)->node,
                      (*(const struct table_report *const *) b)->node);
}

/* A backend under construction, pointing into the inputs. */
struct draft {
        const char *node;
        const struct table_instance *inst;
        enum balance_state state;
};

static int draft_cmp(const void *a, const void *b) {
        const struct draft *x = a, *y = b;
        int c = strcmp(x->inst->service, y->inst->service);

        if (c == 0)
                c = strcmp(x->node, y->node);
        if (c == 0)
                c = strcmp(x->inst->instance, y->inst->instance);
        return c;
}

static int drain_cmp(const void *a, const void *b) {
        return strcmp((*(const struct table_drain *const *) a)->node,
                      (*(const struct table_drain *const *) b)->node);
}

static int drain_key_cmp(const void *key, const void *elem) {
        return strcmp(key, (*(const struct table_drain *const *) elem)->node);
}

/*
 * drains[] is sorted by node. A node may be drained more than once: it is
 * draining while any of its drains runs, so look at all of them.
 */
static bool node_draining(const struct table_drain *const *drains, size_t n, const char *node, uint64_t now) {
        const struct table_drain *const *d = n > 0 ? bsearch(node, drains, n, sizeof(*drains), drain_key_cmp) : NULL;
        size_t lo, hi;

        if (!d)
                return false;
        for (lo = (size_t) (d - drains); lo > 0 && strcmp(drains[lo - 1]->node, node) == 0; lo--)
                ;
        for (hi = lo; hi < n && strcmp(drains[hi]->node, node) == 0; hi++)
                if (now < drains[hi]->until_us)
                        return true;
        return false;
}

static enum balance_state backend_state(const struct table_member *m, bool draining,
                                        const struct table_instance *inst) {
        if (!m || m->state == MEMBERSHIP_DEAD || m->state == MEMBERSHIP_LEFT || !inst->healthy)
                return BALANCE_DOWN;
        if (inst->breaker != BREAKER_CLOSED)
                return BALANCE_EJECTED;
        if (draining)
                return BALANCE_DRAINING;
        return BALANCE_UP;
}

static size_t encoded_size(const struct table_set *t) {
        size_t n = HEADER_SIZE;

        for (size_t i = 0; i < t->n_services; i++) {
                const struct table_service *s = &t->services[i];

                n += SERVICE_FIXED + strlen(s->name);
                for (size_t j = 0; j < s->n_backends; j++)
                        n += BACKEND_FIXED + strlen(s->backends[j].node) + strlen(s->backends[j].instance) +
                             strlen(s->backends[j].address);
        }
        return n;
}

static int validate_input(const struct table_input *in) {
        if (!in || (in->n_members > 0 && !in->members) || (in->n_reports > 0 && !in->reports) ||
            (in->n_drains > 0 && !in->drains))
                return -EINVAL;
        for (size_t i = 0; i < in->n_members; i++)
                if (!valid_node(in->members[i].name) || in->members[i].state < MEMBERSHIP_ALIVE ||
                    in->members[i].state > MEMBERSHIP_LEFT)
                        return -EINVAL;
        for (size_t i = 0; i < in->n_drains; i++)
                if (!valid_node(in->drains[i].node))
                        return -EINVAL;
        for (size_t i = 0; i < in->n_reports; i++) {
                int r = table_report_validate(&in->reports[i], NULL);

                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * Computes the content of the table for `in` (term and version 0). The
 * drafts are sorted by (service, node, instance), so cutting them into
 * services gives both orders at once.
 */
static int build_content(const struct table_input *in, struct table_set **ret) {
        const struct table_member **members = NULL;
        const struct table_report **reports = NULL;
        const struct table_drain **drains = NULL;
        struct draft *drafts = NULL;
        struct table_set *t = NULL;
        size_t n_drafts = 0, total = 0;
        int r;

        r = validate_input(in);
        if (r < 0)
                return r;
        for (size_t i = 0; i < in->n_reports; i++)
                total += in->reports[i].n_instances;
        if (total > TABLE_BACKENDS_TOTAL_MAX)
                return -E2BIG;

        r = -ENOMEM;
        members = calloc(in->n_members + 1, sizeof(*members));
        reports = calloc(in->n_reports + 1, sizeof(*reports));
        drains = calloc(in->n_drains + 1, sizeof(*drains));
        drafts = calloc(total + 1, sizeof(*drafts));
        t = calloc(1, sizeof(*t));
        if (!members || !reports || !drains || !drafts || !t)
                goto out;

        for (size_t i = 0; i < in->n_members; i++)
                members[i] = &in->members[i];
        qsort(members, in->n_members, sizeof(*members), member_cmp);
        for (size_t i = 0; i + 1 < in->n_members; i++)
                if (strcmp(members[i]->name, members[i + 1]->name) == 0) {
                        r = -EEXIST;
                        goto out;
                }
        for (size_t i = 0; i < in->n_reports; i++)
                reports[i] = &in->reports[i];
        qsort(reports, in->n_reports, sizeof(*reports), report_cmp);
        for (size_t i = 0; i + 1 < in->n_reports; i++)
                if (strcmp(reports[i]->node, reports[i + 1]->node) == 0) {
                        r = -EEXIST;
                        goto out;
                }

        for (size_t i = 0; i < in->n_drains; i++)
                drains[i] = &in->drains[i];
        qsort(drains, in->n_drains, sizeof(*drains), drain_cmp);

        for (size_t i = 0; i < in->n_reports; i++) {
                const struct table_report *rep = reports[i];
                bool draining = node_draining(drains, in->n_drains, rep->node, in->now);
                const struct table_member *const *m =
                        in->n_members > 0 ? bsearch(rep->node, members, in->n_members, sizeof(*members),
                                                    member_key_cmp)
                                          : NULL;

                for (size_t j = 0; j < rep->n_instances; j++)
                        drafts[n_drafts++] = (struct draft) {
                                .node = rep->node,
                                .inst = &rep->instances[j],
                                .state = backend_state(m ? *m : NULL, draining, &rep->instances[j]),
                        };
        }
        qsort(drafts, n_drafts, sizeof(*drafts), draft_cmp);

        for (size_t i = 0, j; i < n_drafts; i = j) {
                struct table_service *s;

                for (j = i + 1; j < n_drafts && strcmp(drafts[j].inst->service, drafts[i].inst->service) == 0; j++)
                        ;
                if (j - i > TABLE_BACKENDS_MAX || t->n_services >= TABLE_SERVICES_MAX) {
                        r = -E2BIG;
                        goto out;
                }
                if (!t->services) {
                        t->services = calloc(TABLE_SERVICES_MAX, sizeof(*t->services));
                        if (!t->services)
                                goto out;
                }
                s = &t->services[t->n_services];
                s->backends = calloc(j - i, sizeof(*s->backends));
                if (!s->backends)
                        goto out;
                t->n_services++;
                snprintf(s->name, sizeof(s->name), "%s", drafts[i].inst->service);
                /* drafts[i] is the service's first backend in (node, instance) order. */
                s->algorithm = drafts[i].inst->algorithm;
                s->n_backends = j - i;
                for (size_t k = i; k < j; k++) {
                        const struct table_instance *inst = drafts[k].inst;
                        struct table_backend *b = &s->backends[k - i];

                        snprintf(b->node, sizeof(b->node), "%s", drafts[k].node);
                        snprintf(b->instance, sizeof(b->instance), "%s", inst->instance);
                        snprintf(b->address, sizeof(b->address), "%s", inst->address);
                        b->port = inst->port;
                        b->weight = inst->weight;
                        b->state = drafts[k].state;
                        b->active = inst->active;
                }
        }
        if (encoded_size(t) > TABLE_FRAME_MAX) {
                r = -EMSGSIZE;
                goto out;
        }
        compute_digests(t);
        *ret = t;
        t = NULL;
        r = 0;
out:
        table_set_free(t);
        free(drafts);
        free(drains);
        free(reports);
        free(members);
        return r;
}

int table_builder_new(struct table_builder **ret) {
        struct table_builder *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        *ret = b;
        return 0;
}

void table_builder_free(struct table_builder *b) {
        if (!b)
                return;
        table_set_free(b->current);
        free(b);
}

const struct table_set *table_builder_current(const struct table_builder *b) {
        return b ? b->current : NULL;
}

int table_builder_build(struct table_builder *b, uint64_t term, const struct table_input *in,
                        bool *ret_changed) {
        struct table_set *t = NULL;
        int r;

        if (!b || term == 0)
                return -EINVAL;
        if (b->current && term < b->current->term)
                return -ESTALE;
        r = build_content(in, &t);
        if (r < 0)
                return r;
        if (b->current && term == b->current->term && table_same_content(b->current, t)) {
                table_set_free(t);
                if (ret_changed)
                        *ret_changed = false;
                return 0;
        }
        t->term = term;
        t->version = b->current && term == b->current->term ? b->current->version + 1 : 1;
        table_set_free(b->current);
        b->current = t;
        if (ret_changed)
                *ret_changed = true;
        return 0;
}

/* --- follower ----------------------------------------------------------------- */

const char *table_apply_result_to_string(enum table_apply_result r) {
        static const char *const names[_TABLE_APPLY_MAX] = {
                [TABLE_APPLY_ACCEPTED] = "accepted",
                [TABLE_APPLY_STALE] = "stale",
                [TABLE_APPLY_FENCED] = "fenced",
        };

        return r >= 0 && r < _TABLE_APPLY_MAX ? names[r] : NULL;
}

enum table_apply_result table_apply_check(const struct table_set *local, const struct table_set *incoming,
                                          uint64_t highest_term) {
        if (incoming->term < highest_term)
                return TABLE_APPLY_FENCED;
        if (local && (incoming->term < local->term ||
                      (incoming->term == local->term && incoming->version <= local->version)))
                return TABLE_APPLY_STALE;
        return TABLE_APPLY_ACCEPTED;
}

enum table_apply_result table_apply(struct table_set **local, struct table_set *incoming, uint64_t highest_term) {
        enum table_apply_result r = table_apply_check(*local, incoming, highest_term);

        if (r == TABLE_APPLY_ACCEPTED) {
                table_set_free(*local);
                *local = incoming;
        }
        return r;
}

/* --- encoding ------------------------------------------------------------------ */

struct writer {
        uint8_t *p;
        size_t off;
};

static void put_u8(struct writer *w, uint8_t v) {
        w->p[w->off++] = v;
}

static void put_be(struct writer *w, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--)
                put_u8(w, (uint8_t) (v >> (8 * i)));
}

static void put_str(struct writer *w, const char *s) {
        size_t n = strlen(s);

        put_u8(w, (uint8_t) n);
        memcpy(w->p + w->off, s, n);
        w->off += n;
}

static bool valid_backend(const struct table_backend *b) {
        return valid_node(b->node) && valid_text(b->instance, TABLE_INSTANCE_MAX) &&
               valid_text(b->address, TABLE_ADDRESS_MAX) && b->port > 0 && b->weight <= BALANCE_WEIGHT_MAX &&
               b->state >= 0 && b->state < _BALANCE_STATE_MAX;
}

static int backend_cmp(const struct table_backend *a, const struct table_backend *b) {
        int c = strcmp(a->node, b->node);

        return c ? c : strcmp(a->instance, b->instance);
}

/* The invariants table_decode() demands, so that encode never writes what decode refuses. */
static bool valid_set(const struct table_set *t) {
        size_t total = 0;

        if (t->version == 0 || t->n_services > TABLE_SERVICES_MAX || (t->n_services > 0 && !t->services))
                return false;
        for (size_t i = 0; i < t->n_services; i++) {
                const struct table_service *s = &t->services[i];

                total += s->n_backends;
                if (!valid_service(s->name) || !valid_algorithm(s->algorithm) || s->n_backends == 0 ||
                    s->n_backends > TABLE_BACKENDS_MAX ||
                    total > TABLE_BACKENDS_TOTAL_MAX || !s->backends ||
                    (i > 0 && strcmp(t->services[i - 1].name, s->name) >= 0))
                        return false;
                for (size_t j = 0; j < s->n_backends; j++)
                        if (!valid_backend(&s->backends[j]) ||
                            (j > 0 && backend_cmp(&s->backends[j - 1], &s->backends[j]) >= 0))
                                return false;
        }
        return true;
}

int table_encode(const struct table_set *t, uint8_t **ret_buf, size_t *ret_len) {
        struct writer w = { 0 };
        size_t size;

        if (!t || !ret_buf || !ret_len || !valid_set(t))
                return -EINVAL;
        size = encoded_size(t);
        if (size > TABLE_FRAME_MAX)
                return -EMSGSIZE;
        w.p = malloc(size);
        if (!w.p)
                return -ENOMEM;
        memcpy(w.p, FORMAT_MAGIC, 4);
        w.off = 4;
        put_u8(&w, FORMAT_VERSION);
        put_be(&w, t->term, 8);
        put_be(&w, t->version, 8);
        put_be(&w, t->n_services, 2);
        for (size_t i = 0; i < t->n_services; i++) {
                const struct table_service *s = &t->services[i];

                put_str(&w, s->name);
                put_u8(&w, (uint8_t) s->algorithm);
                put_be(&w, s->n_backends, 2);
                for (size_t j = 0; j < s->n_backends; j++) {
                        const struct table_backend *b = &s->backends[j];

                        put_str(&w, b->node);
                        put_str(&w, b->instance);
                        put_str(&w, b->address);
                        put_be(&w, b->port, 2);
                        put_be(&w, b->weight, 2);
                        put_u8(&w, (uint8_t) b->state);
                        put_be(&w, b->active, 8);
                }
        }
        *ret_buf = w.p;
        *ret_len = w.off;
        return 0;
}

struct reader {
        const uint8_t *p;
        size_t len;
        size_t off;
};

static bool get_be(struct reader *r, int bytes, uint64_t *ret) {
        uint64_t v = 0;

        if (r->len - r->off < (size_t) bytes)
                return false;
        for (int i = 0; i < bytes; i++)
                v = v << 8 | r->p[r->off++];
        *ret = v;
        return true;
}

/* Reads a length-prefixed string into buf (size max, NUL included); the caller validates it. */
static bool get_str(struct reader *r, char *buf, size_t max) {
        uint64_t n = 0;

        if (!get_be(r, 1, &n) || n == 0 || n >= max || r->len - r->off < n)
                return false;
        memcpy(buf, r->p + r->off, n);
        buf[n] = '\0';
        r->off += n;
        /* An embedded NUL would shorten the string and break canonical re-encoding. */
        return strlen(buf) == n;
}

static bool get_backend(struct reader *r, struct table_backend *b) {
        uint64_t port = 0, weight = 0, state = 0, active = 0;

        if (!get_str(r, b->node, sizeof(b->node)) || !get_str(r, b->instance, sizeof(b->instance)) ||
            !get_str(r, b->address, sizeof(b->address)) || !get_be(r, 2, &port) || !get_be(r, 2, &weight) ||
            !get_be(r, 1, &state) || !get_be(r, 8, &active))
                return false;
        if (state >= _BALANCE_STATE_MAX)
                return false;
        b->port = (uint16_t) port;
        b->weight = (uint32_t) weight;
        b->state = (enum balance_state) state;
        b->active = active;
        return valid_backend(b);
}

int table_decode(const uint8_t *buf, size_t len, struct table_set **ret) {
        struct reader rd = { .p = buf, .len = len };
        struct table_set *t;
        uint64_t format = 0, n_services = 0, total = 0;
        int r = -EBADMSG;

        if (!buf || !ret)
                return -EINVAL;
        if (len > TABLE_FRAME_MAX)
                return -E2BIG;
        if (len < HEADER_SIZE || memcmp(buf, FORMAT_MAGIC, 4) != 0)
                return -EBADMSG;
        rd.off = 4;
        (void) get_be(&rd, 1, &format);
        if (format != FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        (void) get_be(&rd, 8, &t->term);
        (void) get_be(&rd, 8, &t->version);
        (void) get_be(&rd, 2, &n_services);
        /* Bound the allocation by what the remaining bytes can hold. */
        if (t->version == 0 || n_services > TABLE_SERVICES_MAX ||
            n_services > (len - rd.off) / (SERVICE_FIXED + 1 + BACKEND_MIN))
                goto fail;
        if (n_services > 0) {
                t->services = calloc(n_services, sizeof(*t->services));
                if (!t->services) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        for (size_t i = 0; i < n_services; i++) {
                struct table_service *s = &t->services[i];
                uint64_t n_backends = 0, algorithm = 0;

                if (!get_str(&rd, s->name, sizeof(s->name)) || !valid_service(s->name) ||
                    (i > 0 && strcmp(t->services[i - 1].name, s->name) >= 0) || !get_be(&rd, 1, &algorithm) ||
                    algorithm >= _BALANCE_ALGORITHM_MAX || !get_be(&rd, 2, &n_backends) ||
                    n_backends == 0 || n_backends > TABLE_BACKENDS_MAX ||
                    n_backends > TABLE_BACKENDS_TOTAL_MAX - total || n_backends > (len - rd.off) / BACKEND_MIN)
                        goto fail;
                s->backends = calloc(n_backends, sizeof(*s->backends));
                if (!s->backends) {
                        r = -ENOMEM;
                        goto fail;
                }
                t->n_services = i + 1;
                s->n_backends = n_backends;
                s->algorithm = (enum balance_algorithm) algorithm;
                total += n_backends;
                for (size_t j = 0; j < n_backends; j++)
                        if (!get_backend(&rd, &s->backends[j]) ||
                            (j > 0 && backend_cmp(&s->backends[j - 1], &s->backends[j]) >= 0))
                                goto fail;
        }
        if (rd.off != len)
                goto fail;
        compute_digests(t);
        *ret = t;
        return 0;
fail:
        table_set_free(t);
        return r;
}

void table_service_to_balance(const struct table_service *s, struct balance_backend *out,
                              char (*names)[TABLE_BACKEND_NAME_MAX]) {
        for (size_t i = 0; i < s->n_backends; i++) {
                const struct table_backend *b = &s->backends[i];

                snprintf(names[i], TABLE_BACKEND_NAME_MAX, "%s/%s", b->node, b->instance);
                out[i] = (struct balance_backend) {
                        .name = names[i],
                        .address = b->address,
                        .port = b->port,
                        .weight = b->weight,
                        .state = b->state,
                        .active = b->active,
                };
        }
}

/* --- diff -------------------------------------------------------------------- */

static int push_change(struct table_change **v, size_t *n, size_t *cap, const char *service,
                       const struct table_backend *b, enum balance_state from, enum balance_state to) {
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 16;
                struct table_change *nv = realloc(*v, c * sizeof(**v));

                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = c;
        }
        struct table_change *c = &(*v)[(*n)++];

        *c = (struct table_change) { .from = from, .to = to };
        snprintf(c->service, sizeof(c->service), "%s", service);
        snprintf(c->node, sizeof(c->node), "%s", b->node);
        snprintf(c->instance, sizeof(c->instance), "%s", b->instance);
        return 0;
}

static const struct table_service EMPTY_SERVICE;

int table_diff(const struct table_set *old, const struct table_set *new, struct table_change **ret,
               size_t *ret_n) {
        struct table_change *v = NULL;
        size_t n = 0, cap = 0;
        size_t no = old ? old->n_services : 0, nn = new ? new->n_services : 0;
        size_t i = 0, j = 0;
        int r = 0;

        /* A merge over the two sorted service lists, then over each pair's sorted backends. */
        while (r == 0 && (i < no || j < nn)) {
                int c = i == no ? 1 : j == nn ? -1 : strcmp(old->services[i].name, new->services[j].name);
                const struct table_service *a = c <= 0 ? &old->services[i] : &EMPTY_SERVICE;
                const struct table_service *b = c >= 0 ? &new->services[j] : &EMPTY_SERVICE;
                const char *name = c <= 0 ? a->name : b->name;
                size_t x = 0, y = 0;

                while (r == 0 && (x < a->n_backends || y < b->n_backends)) {
                        int d = x == a->n_backends ? 1
                                : y == b->n_backends ? -1
                                : backend_cmp(&a->backends[x], &b->backends[y]);

                        if (d < 0)
                                r = push_change(&v, &n, &cap, name, &a->backends[x], a->backends[x].state,
                                                _BALANCE_STATE_INVALID);
                        else if (d > 0)
                                r = push_change(&v, &n, &cap, name, &b->backends[y], _BALANCE_STATE_INVALID,
                                                b->backends[y].state);
                        else if (a->backends[x].state != b->backends[y].state)
                                r = push_change(&v, &n, &cap, name, &b->backends[y], a->backends[x].state,
                                                b->backends[y].state);
                        if (d <= 0)
                                x++;
                        if (d >= 0)
                                y++;
                }
                if (c <= 0)
                        i++;
                if (c >= 0)
                        j++;
        }
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

size_t table_format_down(const struct table_change *changes, size_t n, const char *node, char *buf,
                         size_t len) {
        size_t listed = 0, off = 0, budget;

        if (!buf || len < 4)
                return 0;
        /* Entries are written only with room left for "..." after them. */
        budget = len - 3;
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                const struct table_change *c = &changes[i];
                const char *what;
                size_t ilen = strlen(c->instance);
                int w;

                if (c->to == BALANCE_DOWN)
                        what = "down";
                else if (c->to == BALANCE_EJECTED)
                        what = "ejected";
                else if (c->to == _BALANCE_STATE_INVALID)
                        what = "removed";
                else
                        continue;
                if (c->from == c->to || (node && strcmp(node, c->node) != 0))
                        continue;
                if (ilen > 8 && strcmp(c->instance + ilen - 8, ".service") == 0)
                        ilen -= 8;
                w = snprintf(buf + off, budget - off, "%s%.*s on %s %s", listed ? "; " : "", (int) ilen,
                             c->instance, c->node, what);
                if (w < 0 || (size_t) w >= budget - off) {
                        memcpy(buf + off, "...", 4);
                        break;
                }
                off += (size_t) w;
                listed++;
        }
        return listed;
}
