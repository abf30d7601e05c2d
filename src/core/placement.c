/*
 * Replica placement, see placement.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/placement.h"

#define NONE ((size_t) -1)

static const char *const host_state_names[_PLACEMENT_HOST_STATE_MAX] = {
        [PLACEMENT_HOST_UP] = "up",
        [PLACEMENT_HOST_SUSPECT] = "suspect",
        [PLACEMENT_HOST_DOWN] = "down",
};

static const char *const origin_names[_PLACEMENT_ORIGIN_MAX] = {
        [PLACEMENT_STATIC] = "static",
        [PLACEMENT_PLACED] = "placed",
};

static const char *const instance_state_names[_PLACEMENT_INSTANCE_STATE_MAX] = {
        [PLACEMENT_PENDING] = "pending",
        [PLACEMENT_HEALTHY] = "healthy",
        [PLACEMENT_UNHEALTHY] = "unhealthy",
        [PLACEMENT_FAILED] = "failed",
        [PLACEMENT_STOPPING] = "stopping",
};

static const char *const order_kind_names[_PLACEMENT_ORDER_KIND_MAX] = {
        [PLACEMENT_ORDER_START] = "start",
        [PLACEMENT_ORDER_STOP] = "stop",
};

static const char *const reason_names[_PLACEMENT_REASON_MAX] = {
        [PLACEMENT_REASON_MISSING] = "missing",
        [PLACEMENT_REASON_HOST_DEAD] = "host_dead",
        [PLACEMENT_REASON_TIMEOUT] = "timeout",
        [PLACEMENT_REASON_FAILED] = "failed",
        [PLACEMENT_REASON_SURPLUS] = "surplus",
};

static const char *const note_kind_names[_PLACEMENT_NOTE_KIND_MAX] = {
        [PLACEMENT_NOTE_NO_HOST] = "no_host",
        [PLACEMENT_NOTE_NO_PORT] = "no_port",
        [PLACEMENT_NOTE_STATIC_SURPLUS] = "static_surplus",
        [PLACEMENT_NOTE_TRUNCATED] = "truncated",
};

#define NAME_OF(table, v) ((int) (v) >= 0 && (size_t) (v) < sizeof(table) / sizeof((table)[0]) ? (table)[v] : NULL)

const char *placement_host_state_to_string(enum placement_host_state s) {
        return NAME_OF(host_state_names, s);
}

const char *placement_origin_to_string(enum placement_origin o) {
        return NAME_OF(origin_names, o);
}

const char *placement_instance_state_to_string(enum placement_instance_state s) {
        return NAME_OF(instance_state_names, s);
}

const char *placement_order_kind_to_string(enum placement_order_kind k) {
        return NAME_OF(order_kind_names, k);
}

const char *placement_reason_to_string(enum placement_reason r) {
        return NAME_OF(reason_names, r);
}

const char *placement_note_kind_to_string(enum placement_note_kind k) {
        return NAME_OF(note_kind_names, k);
}

/* What placement knows about one host while planning; sorted by name. */
struct host {
        const struct placement_host *p;
        size_t first, n;                /* its instances in the by-node array */
        unsigned load;                  /* counted instances of any service, plus this plan's starts */
        unsigned svc_count;             /* counted instances of the service being planned */
        unsigned svc_failed;            /* failed / timed-out ones of that service */
        bool eligible;                  /* for the service being planned */
        bool no_port;                   /* no free port for it */
};

/* One input instance with what planning derived from it. */
struct inst {
        const struct placement_instance *p;
        size_t svc;                     /* index into in->services, NONE: not ours */
        size_t host;                    /* index into the sorted hosts, NONE: unknown */
        bool counts;
        bool stop;                      /* a failed or timed-out placed instance to stop */
        int lost;                       /* enum placement_reason of a lost instance, or -1 */
};

struct planner {
        const struct placement_input *in;
        struct host *hosts;
        struct inst *insts;
        struct inst **by_node;          /* (node, unit) order */
        struct inst **by_svc;           /* (service, placed_at, node, unit) order */
        uint64_t ports[65536 / 64];     /* scratch for port_for(): ports in use on a host */
        size_t *order_host;             /* host index of each order */
        struct placement_order *orders;
        size_t n_orders, max_orders;
        struct placement_note *notes;
        size_t n_notes;
        bool truncated;
};

static int invalid(char *error, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int invalid(char *error, size_t len, const char *fmt, ...) {
        va_list ap;

        if (error && len > 0) {
                va_start(ap, fmt);
                vsnprintf(error, len, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static bool valid_name(const char *s) {
        size_t len;

        if (!s)
                return false;
        len = strnlen(s, PLACEMENT_NAME_MAX + 1);
        return len >= 1 && len <= PLACEMENT_NAME_MAX;
}

static bool unit_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(":_.-\\", c);
}

bool placement_unit_valid(const char *s) {
        static const char suffix[] = ".service";
        size_t len, n;
        bool at = false;

        if (!s)
                return false;
        len = strnlen(s, PLACEMENT_UNIT_MAX + 1);
        if (len > PLACEMENT_UNIT_MAX || len <= sizeof(suffix) - 1)
                return false;
        n = len - (sizeof(suffix) - 1);
        if (strcmp(s + n, suffix) != 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '@') {
                        if (at || i == 0 || i == n - 1)
                                return false;
                        at = true;
                } else if (!unit_char(s[i]))
                        return false;
        }
        return true;
}

bool placement_template_valid(const char *s) {
        static const char suffix[] = "@.service";
        size_t len, n;

        if (!s)
                return false;
        len = strnlen(s, PLACEMENT_UNIT_MAX + 1);
        if (len <= sizeof(suffix) - 1 || len + 5 > PLACEMENT_UNIT_MAX)
                return false;
        n = len - (sizeof(suffix) - 1);
        if (strcmp(s + n, suffix) != 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!unit_char(s[i]) || s[i] == '@')
                        return false;
        return true;
}

static int cmp_host(const void *a, const void *b) {
        return strcmp(((const struct host *) a)->p->name, ((const struct host *) b)->p->name);
}

static int cmp_host_key(const void *key, const void *elem) {
        return strcmp(key, ((const struct host *) elem)->p->name);
}

static int cmp_svc_ptr(const void *a, const void *b) {
        return strcmp((*(const struct placement_service *const *) a)->name,
                      (*(const struct placement_service *const *) b)->name);
}

static int cmp_svc_key(const void *key, const void *elem) {
        return strcmp(key, (*(const struct placement_service *const *) elem)->name);
}

static int cmp_by_node(const void *a, const void *b) {
        const struct inst *x = *(struct inst *const *) a, *y = *(struct inst *const *) b;
        int r = strcmp(x->p->node, y->p->node);

        return r ? r : strcmp(x->p->unit, y->p->unit);
}

/* Oldest placement first within a service: the order of surplus stops. */
static int cmp_by_svc(const void *a, const void *b) {
        const struct inst *x = *(struct inst *const *) a, *y = *(struct inst *const *) b;

        if (x->svc != y->svc)
                return x->svc < y->svc ? -1 : 1;
        if (x->p->placed_at_us != y->p->placed_at_us)
                return x->p->placed_at_us < y->p->placed_at_us ? -1 : 1;
        return cmp_by_node(a, b);
}

static int validate(const struct placement_input *in, char *error, size_t len) {
        if (in->term == 0)
                return invalid(error, len, "term 0: only an elected leader places instances");
        if (in->n_services > PLACEMENT_SERVICES_MAX || in->n_hosts > PLACEMENT_HOSTS_MAX ||
            in->n_instances > PLACEMENT_INSTANCES_MAX) {
                invalid(error, len, "too many services, hosts or instances (limits %d, %d, %d)",
                        PLACEMENT_SERVICES_MAX, PLACEMENT_HOSTS_MAX, PLACEMENT_INSTANCES_MAX);
                return -E2BIG;
        }
        if ((in->n_services && !in->services) || (in->n_hosts && !in->hosts) || (in->n_instances && !in->instances))
                return invalid(error, len, "missing array");
        for (size_t i = 0; i < in->n_services; i++) {
                const struct placement_service *s = &in->services[i];

                if (!valid_name(s->name))
                        return invalid(error, len, "services[%zu]: bad name", i);
                if (s->replicas > PLACEMENT_REPLICAS_MAX)
                        return invalid(error, len, "%s: replicas %u above %d", s->name, s->replicas,
                                       PLACEMENT_REPLICAS_MAX);
                if (s->replicas == 0 && !s->template_unit)
                        continue;
                if (!placement_template_valid(s->template_unit))
                        return invalid(error, len, "%s: bad template unit (use e.g. \"web@.service\")", s->name);
                if (s->port_min == 0 || s->port_min > s->port_max)
                        return invalid(error, len, "%s: bad port range %u-%u", s->name, s->port_min, s->port_max);
        }
        for (size_t i = 0; i < in->n_hosts; i++) {
                const struct placement_host *h = &in->hosts[i];

                if (!valid_name(h->name))
                        return invalid(error, len, "hosts[%zu]: bad name", i);
                if ((unsigned) h->state >= _PLACEMENT_HOST_STATE_MAX)
                        return invalid(error, len, "%s: bad host state %d", h->name, (int) h->state);
                if (h->n_services > PLACEMENT_SERVICES_MAX || (h->n_services && !h->services))
                        return invalid(error, len, "%s: bad service list", h->name);
                for (size_t j = 0; j < h->n_services; j++)
                        if (!h->services[j])
                                return invalid(error, len, "%s: services[%zu] is NULL", h->name, j);
        }
        for (size_t i = 0; i < in->n_instances; i++) {
                const struct placement_instance *x = &in->instances[i];

                if (!valid_name(x->service) || !valid_name(x->node) || !placement_unit_valid(x->unit))
                        return invalid(error, len, "instances[%zu]: bad service, node or unit name", i);
                if ((unsigned) x->origin >= _PLACEMENT_ORIGIN_MAX ||
                    (unsigned) x->state >= _PLACEMENT_INSTANCE_STATE_MAX)
                        return invalid(error, len, "%s on %s: bad origin or state", x->unit, x->node);
        }
        return 0;
}

/* Decides whether an instance counts towards N, is lost, or must be stopped. */
static void classify(const struct placement_input *in, struct host *hosts, struct inst *x) {
        const struct placement_instance *p = x->p;
        bool reachable = x->host != NONE && hosts[x->host].p->state != PLACEMENT_HOST_DOWN;

        x->lost = -1;
        if (p->state == PLACEMENT_STOPPING)
                return;
        if (!reachable) {
                x->lost = PLACEMENT_REASON_HOST_DEAD;
                return;
        }
        if (p->state == PLACEMENT_FAILED) {
                x->lost = PLACEMENT_REASON_FAILED;
        } else if (p->origin == PLACEMENT_PLACED && p->state == PLACEMENT_PENDING && in->pending_timeout_us > 0 &&
                   in->now_us >= p->placed_at_us && in->now_us - p->placed_at_us >= in->pending_timeout_us) {
                x->lost = PLACEMENT_REASON_TIMEOUT;
        } else {
                x->counts = true;
                hosts[x->host].load++;
                return;
        }
        x->stop = p->origin == PLACEMENT_PLACED;
}

static void note(struct planner *pl, enum placement_note_kind kind, const char *service, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void note(struct planner *pl, enum placement_note_kind kind, const char *service, const char *fmt, ...) {
        struct placement_note *n = &pl->notes[pl->n_notes++];
        va_list ap;

        n->kind = kind;
        snprintf(n->service, sizeof(n->service), "%s", service ? service : "");
        va_start(ap, fmt);
        vsnprintf(n->text, sizeof(n->text), fmt, ap);
        va_end(ap);
}

/* The next order slot, NULL (and a TRUNCATED note, once) when the plan is full. */
static struct placement_order *order_new(struct planner *pl, enum placement_order_kind kind,
                                         enum placement_reason reason, const char *service, size_t host) {
        struct placement_order *o;

        if (pl->n_orders >= pl->max_orders) {
                if (!pl->truncated)
                        note(pl, PLACEMENT_NOTE_TRUNCATED, NULL,
                             "plan stopped at %zu orders; the rest follows in the next plan", pl->max_orders);
                pl->truncated = true;
                return NULL;
        }
        pl->order_host[pl->n_orders] = host;
        o = &pl->orders[pl->n_orders++];
        *o = (struct placement_order) { .kind = kind, .reason = reason, .term = pl->in->term };
        snprintf(o->node, sizeof(o->node), "%s", pl->hosts[host].p->name);
        snprintf(o->service, sizeof(o->service), "%s", service);
        return o;
}

static bool stop_instance(struct planner *pl, const struct inst *x, enum placement_reason reason, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static bool stop_instance(struct planner *pl, const struct inst *x, enum placement_reason reason, const char *fmt, ...) {
        struct placement_order *o = order_new(pl, PLACEMENT_ORDER_STOP, reason, x->p->service, x->host);
        va_list ap;

        if (!o)
                return false;
        snprintf(o->unit, sizeof(o->unit), "%s", x->p->unit);
        o->port = x->p->port;
        va_start(ap, fmt);
        vsnprintf(o->cause, sizeof(o->cause), fmt, ap);
        va_end(ap);
        return true;
}

static bool unit_taken(const struct planner *pl, size_t h, const char *unit) {
        const struct host *host = &pl->hosts[h];

        for (size_t i = 0; i < host->n; i++)
                if (strcmp(pl->by_node[host->first + i]->p->unit, unit) == 0)
                        return true;
        for (size_t i = 0; i < pl->n_orders; i++)
                if (pl->order_host[i] == h && strcmp(pl->orders[i].unit, unit) == 0)
                        return true;
        return false;
}

/*
 * The lowest port of the service's range free on host h (no instance of any
 * service in any state uses it, nor a start of this plan) whose unit name is
 * free there too. Writes the unit name; 0 when there is none.
 */
static uint16_t port_for(struct planner *pl, const struct placement_service *s, size_t h,
                         char unit[static PLACEMENT_UNIT_MAX + 1]) {
        const struct host *host = &pl->hosts[h];
        size_t prefix = strlen(s->template_unit) - strlen(".service");
        uint16_t p;

        memset(pl->ports, 0, sizeof(pl->ports));
        for (size_t i = 0; i < host->n; i++) {
                p = pl->by_node[host->first + i]->p->port;
                pl->ports[p / 64] |= UINT64_C(1) << (p % 64);
        }
        for (size_t i = 0; i < pl->n_orders; i++)
                if (pl->order_host[i] == h) {
                        p = pl->orders[i].port;
                        pl->ports[p / 64] |= UINT64_C(1) << (p % 64);
                }
        for (uint32_t port = s->port_min; port <= s->port_max; port++) {
                if (pl->ports[port / 64] & (UINT64_C(1) << (port % 64)))
                        continue;
                snprintf(unit, PLACEMENT_UNIT_MAX + 1, "%.*s%" PRIu32 ".service", (int) prefix, s->template_unit,
                         port);
                if (!unit_taken(pl, h, unit))
                        return (uint16_t) port;
        }
        return 0;
}

/* Causes can be long with long unit names; cutting one short is harmless. */
static void set_cause(struct placement_order *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_cause(struct placement_order *o, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(o->cause, sizeof(o->cause), fmt, ap);
        va_end(ap);
}

/* Ranks hosts for a new instance: see placement.h. True when a is better than b. */
static bool better(const struct host *a, const struct host *b) {
        if (a->svc_count != b->svc_count)
                return a->svc_count < b->svc_count;
        if ((a->svc_failed > 0) != (b->svc_failed > 0))
                return a->svc_failed == 0;
        if (a->load != b->load)
                return a->load < b->load;
        return false;   /* hosts are sorted by name: the earlier one wins */
}

static bool lists_service(const struct placement_host *h, const char *service) {
        for (size_t i = 0; i < h->n_services; i++)
                if (strcmp(h->services[i], service) == 0)
                        return true;
        return false;
}

static void lost_why(const struct placement_input *in, const struct inst *x, char *buf, size_t len) {
        switch (x->lost) {
        case PLACEMENT_REASON_HOST_DEAD:
                snprintf(buf, len, "host down");
                break;
        case PLACEMENT_REASON_TIMEOUT:
                snprintf(buf, len, "not healthy %" PRIu64 "ms after its start order", in->pending_timeout_us / 1000);
                break;
        default:
                snprintf(buf, len, "failed");
                break;
        }
}

/* Starts the missing replicas of service si; running is how many count now. */
static void place(struct planner *pl, size_t si, struct inst **list, size_t n, unsigned running) {
        const struct placement_service *s = &pl->in->services[si];
        size_t n_eligible = 0, next_lost = 0;

        for (size_t h = 0; h < pl->in->n_hosts; h++) {
                struct host *host = &pl->hosts[h];

                host->eligible = host->p->state == PLACEMENT_HOST_UP && !host->p->draining && !host->p->witness &&
                                 lists_service(host->p, s->name);
                host->no_port = false;
                n_eligible += host->eligible;
        }
        if (n_eligible == 0) {
                note(pl, PLACEMENT_NOTE_NO_HOST, s->name, "no eligible host for %s: %u of %u replicas running",
                     s->name, running, s->replicas);
                return;
        }
        while (running < s->replicas) {
                char unit[PLACEMENT_UNIT_MAX + 1], why[96];
                struct placement_order *o;
                const struct inst *lost = NULL;
                size_t best = NONE;
                uint16_t port = 0;

                while (!port) {
                        best = NONE;
                        for (size_t h = 0; h < pl->in->n_hosts; h++)
                                if (pl->hosts[h].eligible && !pl->hosts[h].no_port &&
                                    (best == NONE || better(&pl->hosts[h], &pl->hosts[best])))
                                        best = h;
                        if (best == NONE)
                                break;
                        port = port_for(pl, s, best, unit);
                        if (!port)
                                pl->hosts[best].no_port = true;
                }
                if (best == NONE) {
                        note(pl, PLACEMENT_NOTE_NO_PORT, s->name,
                             "no free port in %u-%u on any eligible host for %s: %u of %u replicas running",
                             s->port_min, s->port_max, s->name, running, s->replicas);
                        return;
                }
                while (next_lost < n && list[next_lost]->lost < 0)
                        next_lost++;
                if (next_lost < n)
                        lost = list[next_lost++];
                o = order_new(pl, PLACEMENT_ORDER_START, lost ? (enum placement_reason) lost->lost
                                                              : PLACEMENT_REASON_MISSING, s->name, best);
                if (!o)
                        return;
                snprintf(o->unit, sizeof(o->unit), "%s", unit);
                o->port = port;
                if (lost) {
                        snprintf(o->replaces_node, sizeof(o->replaces_node), "%s", lost->p->node);
                        snprintf(o->replaces_unit, sizeof(o->replaces_unit), "%s", lost->p->unit);
                        lost_why(pl->in, lost, why, sizeof(why));
                        set_cause(o, "%s: %u of %u replicas running; %s on %s replaces %s on %s (%s)", s->name, running, s->replicas, o->unit, o->node, o->replaces_unit,
                                 o->replaces_node, why);
                } else
                        set_cause(o, "%s: %u of %u replicas running; %s on %s", s->name, running, s->replicas, o->unit, o->node);
                pl->hosts[best].svc_count++;
                pl->hosts[best].load++;
                running++;
        }
}

/* All decisions for service si, whose instances are list[0..n) (oldest first). */
static void plan_service(struct planner *pl, size_t si, struct inst **list, size_t n) {
        const struct placement_service *s = &pl->in->services[si];
        unsigned running = 0, surplus, statics = 0;

        for (size_t i = 0; i < n; i++) {
                struct inst *x = list[i];

                if (x->counts) {
                        running++;
                        pl->hosts[x->host].svc_count++;
                        statics += x->p->origin == PLACEMENT_STATIC;
                }
                if (x->lost == PLACEMENT_REASON_FAILED || x->lost == PLACEMENT_REASON_TIMEOUT)
                        pl->hosts[x->host].svc_failed++;
        }
        for (size_t i = 0; i < n; i++) {
                const struct inst *x = list[i];

                if (!x->stop)
                        continue;
                if (x->lost == PLACEMENT_REASON_TIMEOUT) {
                        if (!stop_instance(pl, x, PLACEMENT_REASON_TIMEOUT,
                                           "%s: %s on %s not healthy %" PRIu64 "ms after its start order", s->name,
                                           x->p->unit, x->p->node, pl->in->pending_timeout_us / 1000))
                                goto done;
                } else if (!stop_instance(pl, x, PLACEMENT_REASON_FAILED, "%s: %s on %s failed", s->name, x->p->unit,
                                          x->p->node))
                        goto done;
        }

        if (running < s->replicas)
                place(pl, si, list, n, running);
        else if (running > s->replicas) {
                surplus = running - s->replicas;
                for (size_t i = 0; i < n && surplus > 0; i++) {
                        const struct inst *x = list[i];

                        if (!x->counts || x->p->origin != PLACEMENT_PLACED)
                                continue;
                        if (s->replicas == 0) {
                                if (!stop_instance(pl, x, PLACEMENT_REASON_SURPLUS,
                                                   "%s: replicas = 0, static instances only; stops %s on %s",
                                                   s->name, x->p->unit, x->p->node))
                                        goto done;
                        } else if (!stop_instance(pl, x, PLACEMENT_REASON_SURPLUS,
                                                  "%s: %u of %u replicas running; stops the oldest placement, %s on %s",
                                                  s->name, s->replicas + surplus, s->replicas, x->p->unit,
                                                  x->p->node))
                                goto done;
                        surplus--;
                }
                if (surplus > 0 && s->replicas > 0)
                        note(pl, PLACEMENT_NOTE_STATIC_SURPLUS, s->name,
                             "%s: %u of %u replicas running; %u static instances are never stopped by placement",
                             s->name, s->replicas + surplus, s->replicas, statics);
        }
done:
        for (size_t i = 0; i < n; i++)
                if (list[i]->host != NONE) {
                        pl->hosts[list[i]->host].svc_count = 0;
                        pl->hosts[list[i]->host].svc_failed = 0;
                }
        for (size_t i = 0; i < pl->n_orders; i++)
                pl->hosts[pl->order_host[i]].svc_count = 0;
}

static void planner_free(struct planner *pl) {
        free(pl->hosts);
        free(pl->insts);
        free(pl->by_node);
        free(pl->by_svc);
        free(pl->order_host);
        free(pl->orders);
        free(pl->notes);
}

/* Sorts and indexes the input; -EINVAL for duplicates. */
static int index_input(struct planner *pl, const struct placement_service **svcs, char *error, size_t len) {
        const struct placement_input *in = pl->in;

        for (size_t i = 0; i < in->n_services; i++)
                svcs[i] = &in->services[i];
        qsort(svcs, in->n_services, sizeof(svcs[0]), cmp_svc_ptr);
        for (size_t i = 1; i < in->n_services; i++)
                if (strcmp(svcs[i - 1]->name, svcs[i]->name) == 0)
                        return invalid(error, len, "service %s listed twice", svcs[i]->name);

        for (size_t i = 0; i < in->n_hosts; i++)
                pl->hosts[i].p = &in->hosts[i];
        qsort(pl->hosts, in->n_hosts, sizeof(pl->hosts[0]), cmp_host);
        for (size_t i = 1; i < in->n_hosts; i++)
                if (strcmp(pl->hosts[i - 1].p->name, pl->hosts[i].p->name) == 0)
                        return invalid(error, len, "host %s listed twice", pl->hosts[i].p->name);

        for (size_t i = 0; i < in->n_instances; i++) {
                struct inst *x = &pl->insts[i];
                const struct placement_service *const *s;
                const struct host *h;

                x->p = &in->instances[i];
                s = bsearch(x->p->service, svcs, in->n_services, sizeof(svcs[0]), cmp_svc_key);
                x->svc = s ? (size_t) (*s - in->services) : NONE;
                h = bsearch(x->p->node, pl->hosts, in->n_hosts, sizeof(pl->hosts[0]), cmp_host_key);
                x->host = h ? (size_t) (h - pl->hosts) : NONE;
                pl->by_node[i] = pl->by_svc[i] = x;
        }
        qsort(pl->by_node, in->n_instances, sizeof(pl->by_node[0]), cmp_by_node);
        for (size_t i = 0; i < in->n_instances; i++) {
                struct inst *x = pl->by_node[i];

                if (i > 0 && cmp_by_node(&pl->by_node[i - 1], &pl->by_node[i]) == 0)
                        return invalid(error, len, "instance %s on %s listed twice", x->p->unit, x->p->node);
                if (x->host == NONE)
                        continue;
                if (pl->hosts[x->host].n == 0)
                        pl->hosts[x->host].first = i;
                pl->hosts[x->host].n++;
        }
        for (size_t i = 0; i < in->n_instances; i++)
                classify(in, pl->hosts, &pl->insts[i]);
        qsort(pl->by_svc, in->n_instances, sizeof(pl->by_svc[0]), cmp_by_svc);
        return 0;
}

int placement_plan(const struct placement_input *in, struct placement_plan *ret, char *error, size_t error_len) {
        const struct placement_service **svcs = NULL;
        struct planner pl = { .in = in };
        size_t bound, k = 0;
        int r;

        if (!in || !ret)
                return invalid(error, error_len, "missing input or result");
        r = validate(in, error, error_len);
        if (r < 0)
                return r;

        bound = in->n_instances;
        for (size_t i = 0; i < in->n_services; i++)
                bound += in->services[i].replicas;
        pl.max_orders = bound < PLACEMENT_ORDERS_MAX ? bound : PLACEMENT_ORDERS_MAX;
        svcs = calloc(in->n_services + 1, sizeof(*svcs));
        pl.hosts = calloc(in->n_hosts + 1, sizeof(*pl.hosts));
        pl.insts = calloc(in->n_instances + 1, sizeof(*pl.insts));
        pl.by_node = calloc(in->n_instances + 1, sizeof(*pl.by_node));
        pl.by_svc = calloc(in->n_instances + 1, sizeof(*pl.by_svc));
        pl.order_host = calloc(pl.max_orders + 1, sizeof(*pl.order_host));
        pl.orders = calloc(pl.max_orders + 1, sizeof(*pl.orders));
        pl.notes = calloc(in->n_services + 2, sizeof(*pl.notes));
        if (!svcs || !pl.hosts || !pl.insts || !pl.by_node || !pl.by_svc || !pl.order_host ||
            !pl.orders || !pl.notes) {
                r = -ENOMEM;
                goto fail;
        }
        r = index_input(&pl, svcs, error, error_len);
        if (r < 0)
                goto fail;

        for (size_t si = 0; si < in->n_services && !pl.truncated; si++) {
                size_t first;

                while (k < in->n_instances && pl.by_svc[k]->svc < si)
                        k++;
                first = k;
                while (k < in->n_instances && pl.by_svc[k]->svc == si)
                        k++;
                plan_service(&pl, si, pl.by_svc + first, k - first);
        }

        *ret = (struct placement_plan) {
                .orders = pl.orders,
                .n_orders = pl.n_orders,
                .notes = pl.notes,
                .n_notes = pl.n_notes,
        };
        pl.orders = NULL;
        pl.notes = NULL;
        r = 0;
fail:
        free(svcs);
        planner_free(&pl);
        return r;
}

void placement_plan_free(struct placement_plan *p) {
        if (!p)
                return;
        free(p->orders);
        free(p->notes);
        *p = (struct placement_plan) { 0 };
}

int placement_order_check(const struct placement_order *o, uint64_t current_term) {
        if (!o || (unsigned) o->kind >= _PLACEMENT_ORDER_KIND_MAX || (unsigned) o->reason >= _PLACEMENT_REASON_MAX ||
            o->term == 0)
                return -EINVAL;
        if (!valid_name(o->node) || strnlen(o->node, sizeof(o->node)) == sizeof(o->node) ||
            strnlen(o->unit, sizeof(o->unit)) == sizeof(o->unit) || !placement_unit_valid(o->unit))
                return -EINVAL;
        if (o->kind == PLACEMENT_ORDER_START && o->port == 0)
                return -EINVAL;
        if (o->term < current_term)
                return -ESTALE;
        return 0;
}

bool placement_order_valid(const struct placement_order *o, uint64_t current_term) {
        return placement_order_check(o, current_term) == 0;
}
