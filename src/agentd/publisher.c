/*
 * The publisher: the active leader's half of the balancer (see
 * publisher.h). It keeps the latest report of every node, and whenever an
 * input changed runs replica placement (core/placement.c) and the table
 * builder (core/table.c), turns their decisions into events, and pushes new
 * table versions and changed assignments to the nodes (TCP exchanges
 * through gossip); it announces (term, version, digest) to every member.
 * The follower's half, and the timers, are in balancer.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jansson.h>

#include "agentd/agent.h"
#include "agentd/gossip.h"
#include "agentd/publisher.h"
#include "core/membership.h"
#include "core/placement.h"
#include "core/sync.h"
#include "core/table.h"
#include "io/journal.h"
#include "io/store.h"

/* The leader announces (term, version, digest) this often, and after every publication. */
#define ANNOUNCE_INTERVAL_US (1 * USEC_PER_SEC)
/* A new leader waits this long for reports before its first table (unless all arrived). */
#define SETTLE_US (1 * USEC_PER_SEC)
/* A placed instance not reported healthy this long after its order is re-placed. */
#define PENDING_TIMEOUT_US (60 * USEC_PER_SEC)
/* A failed push is retried after this long. */
#define PUSH_RETRY_US (200 * USEC_PER_MSEC)
/* Longest event detail we compose. */
#define DETAIL_MAX 2048

/* The leader's view of one node. */
struct peer {
        char name[TABLE_NODE_MAX];
        struct sync_report report;      /* the latest (decoded arrays owned) */
        bool synthetic;                 /* a stand-in made from the previous table: never reported */
        bool confirmed;                 /* reported during this leadership: may get assignments */
        struct sync_assigned *assigned; /* what it must run (valid when confirmed) */
        size_t n_assigned;
        bool assign_dirty;              /* the assignment changed since the last push */
        uint64_t pushed_term, pushed_version;   /* the table it acknowledged holding */
        bool push_inflight;
        uint64_t push_cookie;
        uint64_t push_retry_mono;
};

struct publisher {
        struct agent *agent;
        struct gossip *g;
        struct publisher_callbacks cb;
        char self[TABLE_NODE_MAX];      /* our node name (a copy: a reload replaces the config) */

        bool leading;
        uint64_t lead_term;
        uint64_t lead_since_mono;
        bool settled;
        bool rebuild_due;
        uint64_t input_mono;            /* when the newest input arrived */
        uint64_t announce_next_mono;
        uint64_t drain_expiry_real;     /* next drain end to rebuild at */
        struct table_builder *builder;
        struct peer **peers;
        size_t n_peers;
        char **dead_seen;               /* nodes whose death was told as a failover */
        size_t n_dead_seen;
};

static struct peer *peer_find(struct publisher *pb, const char *name) {
        for (size_t i = 0; i < pb->n_peers; i++)
                if (strcmp(pb->peers[i]->name, name) == 0)
                        return pb->peers[i];
        return NULL;
}

static struct peer *peer_get(struct publisher *pb, const char *name) {
        struct peer *p = peer_find(pb, name), **np;

        if (p)
                return p;
        if (pb->n_peers >= PLACEMENT_HOSTS_MAX)
                return NULL;
        np = realloc(pb->peers, (pb->n_peers + 1) * sizeof(*np));
        if (!np)
                return NULL;
        pb->peers = np;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        snprintf(p->name, sizeof(p->name), "%s", name);
        pb->peers[pb->n_peers++] = p;
        return p;
}

static void peer_free(struct peer *p) {
        if (!p)
                return;
        sync_report_done(&p->report);
        free(p->assigned);
        free(p);
}

static void peers_clear(struct publisher *pb) {
        for (size_t i = 0; i < pb->n_peers; i++)
                peer_free(pb->peers[i]);
        free(pb->peers);
        pb->peers = NULL;
        pb->n_peers = 0;
}

/*
 * The first report of a node in this leadership sets its assignment: the
 * placed instances it runs (not the ones it is stopping). From then on only
 * the leader's own orders change it.
 */
static int peer_confirm(struct peer *p) {
        size_t n = 0;

        free(p->assigned);
        p->assigned = NULL;
        p->n_assigned = 0;
        if (p->report.n_instances) {
                p->assigned = calloc(p->report.n_instances, sizeof(*p->assigned));
                if (!p->assigned)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < p->report.n_instances && n < SYNC_ASSIGNED_MAX; i++) {
                const struct sync_instance *in = &p->report.instances[i];

                if (in->origin != PLACEMENT_PLACED || in->state == PLACEMENT_STOPPING)
                        continue;
                snprintf(p->assigned[n].service, sizeof(p->assigned[n].service), "%s", in->inst.service);
                snprintf(p->assigned[n].unit, sizeof(p->assigned[n].unit), "%s", in->inst.instance);
                p->assigned[n].port = in->inst.port;
                p->assigned[n].placed_at_us = in->placed_at_us;
                n++;
        }
        p->n_assigned = n;
        p->confirmed = true;
        p->assign_dirty = true;
        return 0;
}

/* Stores a report (ownership of its arrays moves to the peer). */
/* The report's bytes without what changes on every exchange (held table, term seen). */
static int report_content(const struct sync_report *r, uint8_t **ret, size_t *ret_len) {
        struct sync_report c = *r;

        c.table_term = c.table_version = c.table_digest = 0;
        c.term_seen = 0;
        return sync_report_encode(&c, ret, ret_len);
}

/* True when a and b say the same about the node's instances, services and drain. */
static bool report_same(const struct sync_report *a, const struct sync_report *b) {
        _cleanup_free_ uint8_t *x = NULL, *y = NULL;
        size_t xl, yl;

        return report_content(a, &x, &xl) == 0 && report_content(b, &y, &yl) == 0 && xl == yl &&
               memcmp(x, y, xl) == 0;
}

static void take_report(struct publisher *pb, struct sync_report *r) {
        struct peer *p = peer_get(pb, r->node);
        bool same;

        if (!p) {
                log_error("balancer: no room for the report of %s", r->node);
                sync_report_done(r);
                return;
        }
        /*
         * A report that repeats what we know (the periodic refresh, the reply
         * to a push) is no new input: it must not trigger a rebuild, nor hold
         * one back until the next quorum round.
         */
        same = !p->synthetic && p->confirmed && report_same(&p->report, r);
        sync_report_done(&p->report);
        p->report = *r;
        *r = (struct sync_report) {};
        p->synthetic = false;
        p->pushed_term = p->report.table_term;
        p->pushed_version = p->report.table_version;
        if (!p->confirmed && peer_confirm(p) < 0)
                log_error("balancer: out of memory taking the report of %s", p->name);
        if (!same) {
                pb->rebuild_due = true;
                pb->input_mono = util_now_mono_us();
        }
        pb->cb.schedule(pb->cb.userdata);
}

/*
 * A new leader has no reports yet, but it holds the previous table: every
 * node in it gets a stand-in report made of its backends, so that a node
 * which died meanwhile still shows as down (and its instances are
 * replaced) instead of silently vanishing from the next table.
 */
static void peers_seed_from_table(struct publisher *pb, const struct table_set *held) {
        if (!held)
                return;
        for (size_t s = 0; s < held->n_services; s++) {
                const struct table_service *sv = &held->services[s];

                for (size_t i = 0; i < sv->n_backends; i++) {
                        const struct table_backend *bk = &sv->backends[i];
                        struct peer *p = peer_find(pb, bk->node);
                        struct sync_instance *ni, *in;

                        if (p && !p->synthetic)
                                continue;
                        if (!p) {
                                p = peer_get(pb, bk->node);
                                if (!p)
                                        return;
                                snprintf(p->report.node, sizeof(p->report.node), "%s", bk->node);
                                p->synthetic = true;
                        }
                        if (!p->synthetic || p->report.n_instances >= TABLE_REPORT_INSTANCES_MAX)
                                continue;
                        ni = realloc(p->report.instances, (p->report.n_instances + 1) * sizeof(*ni));
                        if (!ni)
                                return;
                        p->report.instances = ni;
                        in = &ni[p->report.n_instances++];
                        /*
                         * The table does not say whether a backend was placed. Taking
                         * it as placed, and the oldest of all, is the safe guess: a
                         * surplus is then resolved against it (and the order to stop
                         * it waits for its node's real report), never against a
                         * replacement this leader placed.
                         */
                        *in = (struct sync_instance) {
                                .origin = PLACEMENT_PLACED,
                                .placed_at_us = 0,
                                .state = bk->state == BALANCE_DOWN ? PLACEMENT_UNHEALTHY : PLACEMENT_HEALTHY,
                        };
                        snprintf(in->inst.service, sizeof(in->inst.service), "%s", sv->name);
                        snprintf(in->inst.instance, sizeof(in->inst.instance), "%s", bk->instance);
                        snprintf(in->inst.address, sizeof(in->inst.address), "%s", bk->address);
                        in->inst.port = bk->port;
                        in->inst.weight = bk->weight;
                        in->inst.healthy = bk->state != BALANCE_DOWN;
                        in->inst.breaker = bk->state == BALANCE_EJECTED ? BREAKER_OPEN : BREAKER_CLOSED;
                        in->inst.algorithm = sv->algorithm;
                }
        }
}

static int update_encode(struct publisher *pb, struct peer *p, bool with_table, uint8_t **ret, size_t *ret_len) {
        const struct table_set *cur = table_builder_current(pb->builder);
        _cleanup_free_ uint8_t *tbuf = NULL;
        struct sync_update u = {};
        size_t tlen = 0;
        int r;

        snprintf(u.leader, sizeof(u.leader), "%s", pb->self);
        u.term = pb->lead_term;
        if (with_table && cur) {
                r = table_encode(cur, &tbuf, &tlen);
                if (r < 0)
                        return r;
                u.table = tbuf;
                u.table_len = tlen;
        }
        if (p && p->confirmed) {
                u.has_assignment = true;
                u.assigned = p->assigned;
                u.n_assigned = p->n_assigned;
        }
        return sync_update_encode(&u, ret, ret_len);
}

static bool peer_needs_table(struct publisher *pb, const struct peer *p) {
        const struct table_set *cur = table_builder_current(pb->builder);

        return cur && (p->pushed_term != cur->term || p->pushed_version != cur->version);
}

static bool member_reachable(struct publisher *pb, const char *name) {
        struct membership_member_info info;

        return membership_member_get(gossip_membership(pb->g), name, &info) == 0 &&
               (info.state == MEMBERSHIP_ALIVE || info.state == MEMBERSHIP_SUSPECT);
}

/* Pushes the table and assignment to every node that lacks them (one exchange each at a time). */
static void push_all(struct publisher *pb) {
        uint64_t now = util_now_mono_us();

        for (size_t i = 0; i < pb->n_peers; i++) {
                struct peer *p = pb->peers[i];
                _cleanup_free_ uint8_t *body = NULL;
                size_t len;
                int r;

                if (p->synthetic || p->push_inflight || now < p->push_retry_mono)
                        continue;
                if (!peer_needs_table(pb, p) && !(p->confirmed && p->assign_dirty))
                        continue;
                if (strcmp(p->name, pb->self) == 0) {
                        /* Our own UPDATE is applied in place. */
                        struct sync_update u = {};
                        _cleanup_free_ uint8_t *tb = NULL;
                        const struct table_set *cur = table_builder_current(pb->builder);
                        size_t tl = 0;

                        snprintf(u.leader, sizeof(u.leader), "%s", pb->self);
                        u.term = pb->lead_term;
                        if (cur && table_encode(cur, &tb, &tl) == 0) {
                                u.table = tb;
                                u.table_len = tl;
                        }
                        if (p->confirmed) {
                                u.has_assignment = true;
                                u.assigned = p->assigned;
                                u.n_assigned = p->n_assigned;
                        }
                        pb->cb.apply_self(&u, pb->cb.userdata);
                        p->assign_dirty = false;
                        if (cur) {
                                p->pushed_term = cur->term;
                                p->pushed_version = cur->version;
                        }
                        continue;
                }
                if (!member_reachable(pb, p->name))
                        continue;
                r = update_encode(pb, p, peer_needs_table(pb, p), &body, &len);
                if (r < 0) {
                        log_error("balancer: cannot encode the update for %s: %s", p->name, strerror(-r));
                        continue;
                }
                r = gossip_sync_exchange(pb->g, p->name, body, len, &p->push_cookie);
                if (r < 0) {
                        log_debug("balancer: cannot push to %s: %s", p->name, strerror(-r));
                        p->push_retry_mono = now + PUSH_RETRY_US;
                        continue;
                }
                p->push_inflight = true;
                p->assign_dirty = false;
        }
}

static void announce(struct publisher *pb) {
        const struct table_set *cur = table_builder_current(pb->builder);
        const struct membership *m = gossip_membership(pb->g);
        struct sync_announce a = {};
        uint8_t buf[SYNC_DATAGRAM_MAX];
        size_t len;

        if (!cur)
                return;
        snprintf(a.leader, sizeof(a.leader), "%s", pb->self);
        a.term = cur->term;
        a.version = cur->version;
        a.digest = cur->digest;
        if (sync_announce_encode(&a, buf, sizeof(buf), &len) < 0)
                return;
        for (size_t i = 0; i < membership_slots(m); i++) {
                struct membership_member_info info;

                if (membership_member_at(m, i, &info) < 0 || info.self ||
                    (info.state != MEMBERSHIP_ALIVE && info.state != MEMBERSHIP_SUSPECT))
                        continue;
                (void) gossip_send_to(pb->g, info.name, buf, len);
        }
        pb->announce_next_mono = util_now_mono_us() + ANNOUNCE_INTERVAL_US;
}

static bool dead_seen(struct publisher *pb, const char *node) {
        for (size_t i = 0; i < pb->n_dead_seen; i++)
                if (strcmp(pb->dead_seen[i], node) == 0)
                        return true;
        return false;
}

static void dead_seen_set(struct publisher *pb, const char *node, bool dead) {
        for (size_t i = 0; i < pb->n_dead_seen; i++)
                if (strcmp(pb->dead_seen[i], node) == 0) {
                        if (!dead) {
                                free(pb->dead_seen[i]);
                                pb->dead_seen[i] = pb->dead_seen[--pb->n_dead_seen];
                        }
                        return;
                }
        if (dead) {
                char **n = realloc(pb->dead_seen, (pb->n_dead_seen + 1) * sizeof(*n));
                char *d = strdup(node);

                if (!n || !d) {
                        free(d);
                        if (n)
                                pb->dead_seen = n;
                        return;
                }
                pb->dead_seen = n;
                pb->dead_seen[pb->n_dead_seen++] = d;
        }
}

static enum placement_host_state host_state(enum membership_state s) {
        switch (s) {
        case MEMBERSHIP_ALIVE:
                return PLACEMENT_HOST_UP;
        case MEMBERSHIP_SUSPECT:
                return PLACEMENT_HOST_SUSPECT;
        default:
                return PLACEMENT_HOST_DOWN;
        }
}

/* Everything one build needs, gathered from membership and the peers. */
struct build_ctx {
        struct table_member *members;
        size_t n_members;
        struct table_report *reports;
        size_t n_reports;
        struct table_drain *drains;
        size_t n_drains;
};

static void build_ctx_done(struct build_ctx *c) {
        for (size_t i = 0; i < c->n_reports; i++)
                free(c->reports[i].instances);
        free(c->members);
        free(c->reports);
        free(c->drains);
}

static int build_ctx_fill(struct publisher *pb, struct build_ctx *c) {
        const struct membership *m = gossip_membership(pb->g);
        size_t slots = membership_slots(m);
        int r;

        c->members = calloc(slots ? slots : 1, sizeof(*c->members));
        c->reports = calloc(pb->n_peers ? pb->n_peers : 1, sizeof(*c->reports));
        c->drains = calloc(pb->n_peers ? pb->n_peers : 1, sizeof(*c->drains));
        if (!c->members || !c->reports || !c->drains)
                return -ENOMEM;
        for (size_t i = 0; i < slots; i++) {
                struct membership_member_info info;

                if (membership_member_at(m, i, &info) < 0)
                        continue;
                c->members[c->n_members++] = (struct table_member) { .name = info.name, .state = info.state };
        }
        for (size_t i = 0; i < pb->n_peers; i++) {
                struct peer *p = pb->peers[i];

                r = sync_report_to_table(&p->report, &c->reports[c->n_reports]);
                if (r < 0)
                        return r;
                c->n_reports++;
                if (p->report.drain_until_us != SYNC_DRAIN_NONE)
                        c->drains[c->n_drains++] = (struct table_drain) {
                                .node = p->name, .until_us = p->report.drain_until_us };
        }
        return 0;
}

struct cause_search {
        const char *node;
        char *buf;
        size_t len;
        bool found;
};

static int cause_cb(const struct store_event *ev, void *userdata) {
        struct cause_search *c = userdata;

        /* Oldest first: the last match is the newest verdict. */
        if (ev->subject && strcmp(ev->subject, c->node) == 0) {
                snprintf(c->buf, c->len, "%s", ev->detail ? ev->detail : "");
                c->found = true;
        }
        return 0;
}

/*
 * The suspicion that led to a death, as membership recorded it in its
 * member_dead (or member_left) event: who suspected, and why it stuck.
 */
static bool membership_cause(struct publisher *pb, const char *node, char *buf, size_t len) {
        static const char *const kinds[] = { "member_dead", "member_left" };
        struct cause_search c = { .node = node, .buf = buf, .len = len };

        for (size_t i = 0; i < ELEMENTSOF(kinds) && !c.found; i++) {
                struct store_event_filter f = { .kind = kinds[i], .limit = 256 };

                (void) store_events_query(agent_store(pb->agent), &f, cause_cb, &c);
        }
        return c.found;
}

/* Tells the story of each newly dead node: its backends now down, and what replaces them. */
static void emit_failovers(struct publisher *pb, const struct table_change *changes, size_t n_changes,
                           const struct placement_plan *plan) {
        const struct membership *m = gossip_membership(pb->g);

        for (size_t i = 0; i < pb->n_peers; i++) {
                struct peer *p = pb->peers[i];
                struct membership_member_info info;
                char detail[DETAIL_MAX], down[DETAIL_MAX / 2], since[UTIL_TS_MAX], cause[512];
                size_t len, n_down, n_repl;
                bool dead;

                dead = membership_member_get(m, p->name, &info) < 0 || info.state == MEMBERSHIP_DEAD ||
                       info.state == MEMBERSHIP_LEFT;
                if (!dead) {
                        dead_seen_set(pb, p->name, false);
                        continue;
                }
                if (dead_seen(pb, p->name))
                        continue;
                dead_seen_set(pb, p->name, true);
                n_down = table_format_down(changes, n_changes, p->name, down, sizeof(down));
                n_repl = 0;
                for (size_t k = 0; plan && k < plan->n_orders; k++)
                        n_repl += plan->orders[k].kind == PLACEMENT_ORDER_START &&
                                  strcmp(plan->orders[k].replaces_node, p->name) == 0;
                /* A node that served nothing (a witness, say) fails nothing over. */
                if (n_down == 0 && n_repl == 0)
                        continue;
                if (membership_member_get(m, p->name, &info) < 0)
                        len = (size_t) snprintf(detail, sizeof(detail), "%s is unknown to membership", p->name);
                else
                        len = (size_t) snprintf(detail, sizeof(detail),
                                                "%s is %s since %s (incarnation %" PRIu64 ")", p->name,
                                                membership_state_to_string(info.state),
                                                util_format_ts(util_now_real_us() -
                                                               (util_now_mono_us() - MIN(util_now_mono_us(), info.state_changed_us)),
                                                               since),
                                                info.incarnation);
                if (membership_cause(pb, p->name, cause, sizeof(cause)))
                        len += (size_t) snprintf(detail + MIN(len, sizeof(detail)),
                                                 sizeof(detail) - MIN(len, sizeof(detail)), "; membership: %s", cause);
                len += (size_t) snprintf(detail + MIN(len, sizeof(detail)), sizeof(detail) - MIN(len, sizeof(detail)),
                                         "; down: %s", n_down ? down : "no backends");
                for (size_t k = 0; plan && k < plan->n_orders; k++) {
                        const struct placement_order *o = &plan->orders[k];

                        if (o->kind != PLACEMENT_ORDER_START || strcmp(o->replaces_node, p->name) != 0)
                                continue;
                        len += (size_t) snprintf(detail + MIN(len, sizeof(detail)),
                                                 sizeof(detail) - MIN(len, sizeof(detail)),
                                                 "; replacing %s with %s on %s", o->replaces_unit, o->unit, o->node);
                }
                agent_emit_event(pb->agent, &(struct event) {
                        .kind = EVENT_FAILOVER,
                        .subject = p->name,
                        .detail = detail,
                        .term = pb->lead_term,
                });
        }
}

static ssize_t assigned_index(const struct peer *p, const char *unit) {
        for (size_t i = 0; i < p->n_assigned; i++)
                if (strcmp(p->assigned[i].unit, unit) == 0)
                        return (ssize_t) i;
        return -1;
}

static struct sync_assigned *assigned_find(struct peer *p, const char *unit) {
        ssize_t i = assigned_index(p, unit);

        return i < 0 ? NULL : &p->assigned[i];
}

static const struct sync_instance *reported_find(const struct peer *p, const char *service, const char *unit) {
        for (size_t i = 0; i < p->report.n_instances; i++)
                if (strcmp(p->report.instances[i].inst.instance, unit) == 0 &&
                    strcmp(p->report.instances[i].inst.service, service) == 0)
                        return &p->report.instances[i];
        return NULL;
}

/* Backing storage for one placement input (the input's pointers point here). */
struct plan_ctx {
        struct placement_service *services;
        size_t n_services;
        struct placement_host *hosts;
        size_t n_hosts;
        const char **host_services;     /* every host's service names, concatenated */
        struct placement_instance *instances;
        size_t n_instances;
};

static void plan_ctx_done(struct plan_ctx *c) {
        free(c->services);
        free(c->hosts);
        free(c->host_services);
        free(c->instances);
}

/*
 * The services to plan are those some confirmed host may run with a
 * template; their replica count and template come from the first such host
 * by name (hosts should agree; the first wins so every leader decides alike).
 */
static int plan_ctx_fill(struct publisher *pb, struct plan_ctx *c) {
        const struct membership *m = gossip_membership(pb->g);
        size_t total_specs = 0, total_inst = 0, k = 0;

        for (size_t i = 0; i < pb->n_peers; i++) {
                total_specs += pb->peers[i]->report.n_services;
                total_inst += pb->peers[i]->report.n_instances + pb->peers[i]->n_assigned;
        }
        c->services = calloc(total_specs ? total_specs : 1, sizeof(*c->services));
        c->hosts = calloc(pb->n_peers ? pb->n_peers : 1, sizeof(*c->hosts));
        c->host_services = calloc(total_specs ? total_specs : 1, sizeof(*c->host_services));
        c->instances = calloc(total_inst ? total_inst : 1, sizeof(*c->instances));
        if (!c->services || !c->hosts || !c->host_services || !c->instances)
                return -ENOMEM;

        for (size_t i = 0; i < pb->n_peers; i++) {
                const struct peer *p = pb->peers[i];
                struct membership_member_info info;
                struct placement_host *h = &c->hosts[c->n_hosts];

                h->name = p->name;
                h->state = membership_member_get(m, p->name, &info) < 0 ? PLACEMENT_HOST_DOWN : host_state(info.state);
                /* A host we have no real report from in this leadership gets nothing new. */
                if (!p->confirmed && h->state == PLACEMENT_HOST_UP)
                        h->state = PLACEMENT_HOST_SUSPECT;
                h->draining = p->report.drain_until_us != SYNC_DRAIN_NONE &&
                              (p->report.drain_until_us == TABLE_DRAIN_FOREVER ||
                               p->report.drain_until_us > util_now_real_us());
                h->witness = p->report.witness;
                h->services = &c->host_services[k];
                for (size_t s = 0; s < p->report.n_services; s++) {
                        const struct sync_service_spec *sp = &p->report.services[s];
                        bool known = false;

                        if (!sp->template_unit[0] || sp->replicas == 0)
                                continue;
                        c->host_services[k++] = sp->name;
                        h->n_services++;
                        for (size_t j = 0; j < c->n_services && !known; j++)
                                known = strcmp(c->services[j].name, sp->name) == 0;
                        if (known)
                                continue;
                        c->services[c->n_services++] = (struct placement_service) {
                                .name = sp->name,
                                .template_unit = sp->template_unit,
                                .replicas = sp->replicas,
                                .port_min = sp->port_min,
                                .port_max = sp->port_max,
                        };
                }
                c->n_hosts++;

                /* Reported instances; placed ones the leader no longer assigns are being stopped. */
                for (size_t j = 0; j < p->report.n_instances; j++) {
                        const struct sync_instance *in = &p->report.instances[j];
                        enum placement_instance_state st = in->state;

                        if (in->origin == PLACEMENT_PLACED && p->confirmed && assigned_index(p, in->inst.instance) < 0)
                                st = PLACEMENT_STOPPING;
                        c->instances[c->n_instances++] = (struct placement_instance) {
                                .service = in->inst.service,
                                .node = p->name,
                                .unit = in->inst.instance,
                                .port = in->inst.port,
                                .origin = in->origin,
                                .state = st,
                                .placed_at_us = in->placed_at_us,
                        };
                }
                /* Assigned but not reported yet: pending since the order. */
                for (size_t j = 0; p->confirmed && j < p->n_assigned; j++) {
                        const struct sync_assigned *a = &p->assigned[j];

                        if (reported_find(p, a->service, a->unit))
                                continue;
                        c->instances[c->n_instances++] = (struct placement_instance) {
                                .service = a->service,
                                .node = p->name,
                                .unit = a->unit,
                                .port = a->port,
                                .origin = PLACEMENT_PLACED,
                                .state = PLACEMENT_PENDING,
                                .placed_at_us = a->placed_at_us,
                        };
                }
        }
        return 0;
}

static void emit_order(struct publisher *pb, const struct placement_order *o) {
        char detail[DETAIL_MAX];

        snprintf(detail, sizeof(detail), "%s %s on %s: %s", o->kind == PLACEMENT_ORDER_START ? "start" : "stop",
                 o->unit, o->node, o->cause);
        agent_emit_event(pb->agent, &(struct event) {
                .kind = o->kind == PLACEMENT_ORDER_START ? EVENT_INSTANCE_PLACED : EVENT_INSTANCE_STOPPED,
                .subject = o->unit,
                .detail = detail,
                .service = o->service,
                .unit = o->unit,
                .term = o->term,
        });
}

/*
 * The instance a start replaces is no longer the lost node's to run: when
 * that node comes back, what it still runs is surplus to the assignment and
 * gets stopped, instead of being pushed to it again (and restarted there).
 */
static void forget_replaced(struct publisher *pb, const struct placement_order *o) {
        struct peer *lost;
        struct sync_assigned *a;

        if (!o->replaces_node[0] || !(lost = peer_find(pb, o->replaces_node)) || !lost->confirmed)
                return;
        a = assigned_find(lost, o->replaces_unit);
        if (!a)
                return;
        *a = lost->assigned[--lost->n_assigned];
        lost->assign_dirty = true;
}

/* Carries out the plan on the peers' assignments; they are pushed next. */
static void apply_plan(struct publisher *pb, const struct placement_plan *plan) {
        for (size_t i = 0; i < plan->n_orders; i++) {
                const struct placement_order *o = &plan->orders[i];
                struct peer *p = peer_find(pb, o->node);

                if (!p || !p->confirmed)
                        continue;
                if (o->kind == PLACEMENT_ORDER_START) {
                        struct sync_assigned *na;

                        if (assigned_find(p, o->unit) || p->n_assigned >= SYNC_ASSIGNED_MAX)
                                continue;
                        na = realloc(p->assigned, (p->n_assigned + 1) * sizeof(*na));
                        if (!na)
                                continue;
                        p->assigned = na;
                        na = &p->assigned[p->n_assigned++];
                        *na = (struct sync_assigned) { .port = o->port, .placed_at_us = util_now_real_us() };
                        /* Placement's names are as long as or longer than ours; valid ones fit. */
                        snprintf(na->service, sizeof(na->service), "%.*s", (int) sizeof(na->service) - 1, o->service);
                        snprintf(na->unit, sizeof(na->unit), "%.*s", (int) sizeof(na->unit) - 1, o->unit);
                        forget_replaced(pb, o);
                } else {
                        struct sync_assigned *a = assigned_find(p, o->unit);

                        if (!a)
                                continue;
                        *a = p->assigned[--p->n_assigned];
                }
                p->assign_dirty = true;
                emit_order(pb, o);
        }
        for (size_t i = 0; i < plan->n_notes; i++)
                log_warning("balancer: %s: %s", plan->notes[i].service, plan->notes[i].text);
}

/*
 * A node membership has forgotten (left and reaped, or never known) has
 * nothing more to say: its backends leave the table instead of staying
 * down forever, and its slot is freed.
 */
static void peers_forget_unknown(struct publisher *pb) {
        struct membership_member_info info;

        for (size_t i = 0; i < pb->n_peers;) {
                struct peer *p = pb->peers[i];

                if (strcmp(p->name, pb->self) == 0 || membership_member_get(gossip_membership(pb->g), p->name, &info) == 0) {
                        i++;
                        continue;
                }
                log_info("balancer: forgetting %s, which membership no longer knows", p->name);
                peer_free(p);
                pb->peers[i] = pb->peers[--pb->n_peers];
        }
}

static void rebuild(struct publisher *pb) {
        _cleanup_(table_set_freep) struct table_set *old = NULL;
        struct build_ctx bc = {};
        struct plan_ctx pc = {};
        struct placement_plan plan = {};
        struct table_change *changes = NULL;
        size_t n_changes = 0;
        bool changed = false, planned = false;
        char error[256];
        int r;

        pb->rebuild_due = false;
        peers_forget_unknown(pb);
        if (table_builder_current(pb->builder) && table_set_dup(table_builder_current(pb->builder), &old) < 0)
                return;
        r = build_ctx_fill(pb, &bc);
        if (r < 0)
                goto out;

        /* Placement first, so that the failover event can name the replacements. */
        r = plan_ctx_fill(pb, &pc);
        if (r == 0 && pc.n_services > 0) {
                struct placement_input in = {
                        .term = pb->lead_term,
                        .now_us = util_now_real_us(),
                        .pending_timeout_us = PENDING_TIMEOUT_US,
                        .services = pc.services,
                        .n_services = pc.n_services,
                        .hosts = pc.hosts,
                        .n_hosts = pc.n_hosts,
                        .instances = pc.instances,
                        .n_instances = pc.n_instances,
                };

                r = placement_plan(&in, &plan, error, sizeof(error));
                if (r < 0)
                        log_error("balancer: placement refused its input: %s (%s)", strerror(-r),
                                  r == -EINVAL ? error : "limits");
                else
                        planned = true;
        }

        {
                struct table_input in = {
                        .now = util_now_real_us(),
                        .members = bc.members,
                        .n_members = bc.n_members,
                        .reports = bc.reports,
                        .n_reports = bc.n_reports,
                        .drains = bc.drains,
                        .n_drains = bc.n_drains,
                };

                r = table_builder_build(pb->builder, pb->lead_term, &in, &changed);
                if (r < 0) {
                        log_error("balancer: cannot build the table: %s", strerror(-r));
                        goto out;
                }
                pb->drain_expiry_real = table_drains_next_expiry(bc.drains, bc.n_drains, in.now);
        }
        if (changed) {
                const struct table_set *cur = table_builder_current(pb->builder);
                char subject[64], detail[DETAIL_MAX], down[DETAIL_MAX / 2];
                size_t n_down;

                if (table_diff(old, cur, &changes, &n_changes) < 0)
                        n_changes = 0;
                n_down = table_format_down(changes, n_changes, NULL, down, sizeof(down));
                snprintf(subject, sizeof(subject), "%" PRIu64 ".%" PRIu64, cur->term, cur->version);
                snprintf(detail, sizeof(detail), "table %s: %zu services, %zu backend changes%s%s", subject,
                         cur->n_services, n_changes, n_down ? "; out of service: " : "", n_down ? down : "");
                agent_emit_event(pb->agent, &(struct event) {
                        .kind = EVENT_TABLE_PUBLISHED,
                        .subject = subject,
                        .detail = detail,
                        .term = cur->term,
                });
        }
        emit_failovers(pb, changes, n_changes, planned ? &plan : NULL);
        if (planned)
                apply_plan(pb, &plan);
        push_all(pb);
        if (changed)
                announce(pb);
out:
        free(changes);
        placement_plan_free(&plan);
        plan_ctx_done(&pc);
        build_ctx_done(&bc);
}


/* Settled: every reachable member has reported in this leadership, or SETTLE_US passed. */
static bool settle_check(struct publisher *pb) {
        const struct membership *m = gossip_membership(pb->g);

        if (pb->settled)
                return true;
        if (util_now_mono_us() - pb->lead_since_mono < SETTLE_US)
                for (size_t i = 0; i < membership_slots(m); i++) {
                        struct membership_member_info info;
                        struct peer *p;

                        if (membership_member_at(m, i, &info) < 0 || info.state != MEMBERSHIP_ALIVE)
                                continue;
                        p = peer_find(pb, info.name);
                        if (!p || !p->confirmed)
                                return false;
                }
        pb->settled = true;
        return true;
}


/* ---- the interface ------------------------------------------------------------------- */

int publisher_new(struct agent *a, struct gossip *g, const struct publisher_callbacks *cb, struct publisher **ret) {
        struct publisher *pb = calloc(1, sizeof(*pb));

        if (!pb)
                return -ENOMEM;
        pb->agent = a;
        pb->g = g;
        pb->cb = *cb;
        snprintf(pb->self, sizeof(pb->self), "%s", agent_config(a)->node_name);
        pb->drain_expiry_real = UINT64_MAX;
        *ret = pb;
        return 0;
}

void publisher_free(struct publisher *pb) {
        if (!pb)
                return;
        publisher_stop(pb);
        for (size_t i = 0; i < pb->n_dead_seen; i++)
                free(pb->dead_seen[i]);
        free(pb->dead_seen);
        free(pb);
}

int publisher_start(struct publisher *pb, uint64_t term, const struct table_set *held) {
        struct table_builder *builder;
        int r;

        r = table_builder_new(&builder);
        if (r < 0)
                return r;
        table_builder_free(pb->builder);
        pb->builder = builder;
        pb->leading = true;
        pb->lead_term = term;
        pb->lead_since_mono = util_now_mono_us();
        pb->settled = false;
        pb->rebuild_due = true;
        pb->input_mono = pb->lead_since_mono;
        pb->drain_expiry_real = UINT64_MAX;
        for (size_t i = 0; i < pb->n_peers; i++) {
                pb->peers[i]->confirmed = false;
                pb->peers[i]->pushed_term = pb->peers[i]->pushed_version = 0;
        }
        peers_seed_from_table(pb, held);
        return 0;
}

void publisher_stop(struct publisher *pb) {
        pb->leading = false;
        table_builder_free(pb->builder);
        pb->builder = NULL;
        peers_clear(pb);
}

bool publisher_leading(const struct publisher *pb) {
        return pb->leading;
}

uint64_t publisher_term(const struct publisher *pb) {
        return pb->leading ? pb->lead_term : 0;
}

const struct table_set *publisher_current(const struct publisher *pb) {
        return pb->builder ? table_builder_current(pb->builder) : NULL;
}

int publisher_take_report(struct publisher *pb, struct sync_report *r) {
        if (!pb->leading)
                return -EAGAIN;
        /* Only members get a slot: what we hold per node is bounded by the member list. */
        if (strcmp(r->node, pb->self) != 0 && !member_reachable(pb, r->node))
                return -EPERM;
        take_report(pb, r);
        return 0;
}

int publisher_reply(struct publisher *pb, const char *node, uint8_t **ret, size_t *ret_len) {
        const struct table_set *cur = publisher_current(pb);
        struct peer *p = peer_find(pb, node);
        bool with_table;
        int r;

        if (!pb->leading || !p)
                return -EAGAIN;
        with_table = peer_needs_table(pb, p);
        r = update_encode(pb, p, with_table, ret, ret_len);
        if (r < 0)
                return r;
        p->assign_dirty = false;
        if (with_table && cur) {
                p->pushed_term = cur->term;
                p->pushed_version = cur->version;
        }
        return 0;
}

bool publisher_exchange_done(struct publisher *pb, uint64_t cookie, int result, const uint8_t *body, size_t len) {
        for (size_t i = 0; i < pb->n_peers; i++) {
                struct peer *p = pb->peers[i];
                _cleanup_free_ struct sync_report *rep = NULL;

                if (!p->push_inflight || p->push_cookie != cookie)
                        continue;
                p->push_inflight = false;
                rep = calloc(1, sizeof(*rep));
                if (result == 0 && rep && sync_report_decode(body, len, rep) == 0 && strcmp(rep->node, p->name) == 0) {
                        take_report(pb, rep);
                } else {
                        if (rep)
                                sync_report_done(rep);
                        log_debug("balancer: push to %s failed: %s", p->name, strerror(result < 0 ? -result : EBADMSG));
                        p->assign_dirty = true;
                        p->push_retry_mono = util_now_mono_us() + PUSH_RETRY_US;
                }
                pb->cb.schedule(pb->cb.userdata);
                return true;
        }
        return false;
}

void publisher_members_changed(struct publisher *pb) {
        pb->rebuild_due = true;
        pb->input_mono = util_now_mono_us();
}

void publisher_step(struct publisher *pb, uint64_t quorum_round) {
        uint64_t now = util_now_mono_us();

        if (!pb->leading)
                return;
        if (pb->drain_expiry_real != UINT64_MAX && util_now_real_us() >= pb->drain_expiry_real)
                pb->rebuild_due = true;
        if (settle_check(pb) && (pb->rebuild_due || !table_builder_current(pb->builder)) &&
            quorum_round >= pb->input_mono)
                rebuild(pb);
        else if (pb->settled)
                push_all(pb);
        if (table_builder_current(pb->builder) && now >= pb->announce_next_mono)
                announce(pb);
}
