/*
 * The balancer module: see balancer.h. Two roles share this file because
 * they share the table and the report:
 *
 *  - every agent ("follower" below, the leader included) holds the last
 *    accepted table set (persisted, served by `pick`), reports its
 *    instances to the leader, applies the leader's UPDATEs (tables and its
 *    assignment of placed instances, both fenced by term) and carries out
 *    drains asked of it;
 *  - the active leader keeps the latest report of every node, builds the
 *    table (core/table.c), plans replicas (core/placement.c), turns the
 *    decisions into events and pushes UPDATEs.
 *
 * Decisions stay in the pure cores; this file collects their inputs, runs
 * them when an input changed (coalesced to once per loop iteration by a
 * zero-delay timer) and does the I/O.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include <ev.h>
#include <jansson.h>
#include <sodium.h>

#include "agentd/agent.h"
#include "agentd/balancer.h"
#include "agentd/gossip.h"
#include "agentd/leader.h"
#include "agentd/supervisor.h"
#include "common/ctlproto.h"
#include "core/balance.h"
#include "core/membership.h"
#include "core/placement.h"
#include "core/sync.h"
#include "core/table.h"
#include "io/journal.h"
#include "io/store.h"

/* The leader announces (term, version, digest) this often, and after every publication. */
#define ANNOUNCE_INTERVAL_US (1 * USEC_PER_SEC)
/* An agent re-sends its report this often even without a change (anti-entropy). */
#define REPORT_REFRESH_US (10 * USEC_PER_SEC)
/* Retry of a failed report exchange: doubling from MIN up to MAX. */
#define REPORT_RETRY_MIN_US (100 * USEC_PER_MSEC)
#define REPORT_RETRY_MAX_US (2 * USEC_PER_SEC)
/* A new leader waits this long for reports before its first table (unless all arrived). */
#define SETTLE_US (1 * USEC_PER_SEC)
/* A placed instance not reported healthy this long after its order is re-placed. */
#define PENDING_TIMEOUT_US (60 * USEC_PER_SEC)
/* Drain requests to another node: resent every RESEND, given up after TIMEOUT. */
#define DRAIN_RESEND_US (300 * USEC_PER_MSEC)
#define DRAIN_TIMEOUT_US (3 * USEC_PER_SEC)
#define DRAINS_PENDING_MAX 16
/* Housekeeping period. */
#define TICK_US (100 * USEC_PER_MSEC)
/* Longest event detail we compose. */
#define DETAIL_MAX 2048

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* The leader's view of one node. */
struct peer {
        char name[TABLE_NODE_MAX];
        struct sync_report report;      /* the latest (decoded arrays owned) */
        bool have_report;
        bool synthetic;                 /* made from the previous table, not reported in this leadership */
        bool confirmed;                 /* reported during this leadership: may get assignments */
        struct sync_assigned *assigned; /* what it must run (valid when confirmed) */
        size_t n_assigned;
        bool assign_dirty;              /* the assignment changed since the last push */
        uint64_t pushed_term, pushed_version;   /* the table it acknowledged holding */
        bool push_inflight;
        uint64_t push_cookie;
        uint64_t push_retry_mono;
};

struct pending_drain {
        bool used;
        uint64_t nonce;
        uint64_t request_id;
        char node[TABLE_NODE_MAX];
        uint64_t until_us;
        uint64_t deadline_mono, resend_mono;
};

/* A picker per service of the held table, built on first use after each change. */
struct picker {
        struct balance *bal;
        struct balance_backend *bk;
        char (*names)[TABLE_BACKEND_NAME_MAX];
};

struct balancer {
        struct agent *agent;
        struct gossip *g;
        struct leader *l;
        struct supervisor *sup;
        struct ev_loop *loop;
        uint64_t rng;

        ev_timer tick;
        ev_timer kick;                  /* zero delay: coalesces report and rebuild requests */

        /* ---- every agent ---- */
        struct table_set *table;        /* held and persisted; NULL: none yet */
        struct picker *pickers;         /* one per table service */
        uint64_t drain_until_us;        /* our drain, CLOCK_REALTIME; SYNC_DRAIN_NONE */

        char ann_leader[TABLE_NODE_MAX];
        uint64_t ann_term, ann_version, ann_digest;

        bool report_due;
        bool report_inflight;
        uint64_t report_cookie;
        char reported_to[TABLE_NODE_MAX];
        uint64_t reported_term;
        uint64_t report_next_mono;      /* refresh or retry */
        uint64_t report_backoff_us;
        bool report_failing;            /* the last exchange failed: wait for report_next_mono */

        struct pending_drain drains[DRAINS_PENDING_MAX];

        /* ---- leader ---- */
        bool leading;                   /* active leader of lead_term */
        uint64_t lead_term;
        uint64_t lead_since_mono;
        bool settled;
        bool rebuild_due;
        uint64_t announce_next_mono;
        uint64_t drain_expiry_real;     /* next drain end to rebuild at */
        struct table_builder *builder;
        struct peer **peers;
        size_t n_peers;
        char **dead_seen;               /* nodes whose death was told as a failover */
        size_t n_dead_seen;
};

static void schedule(struct balancer *b);
static void report_soon(struct balancer *b, bool leader_changed);

/* ---- small helpers --------------------------------------------------------------- */

static const char *self_name(struct balancer *b) {
        return agent_config(b->agent)->node_name;
}

static bool is_self(struct balancer *b, const char *name) {
        return name && strcmp(name, self_name(b)) == 0;
}

static void hex64(uint64_t v, char buf[static 17]) {
        snprintf(buf, 17, "%016" PRIx64, v);
}

static enum balance_algorithm algorithm_of(enum config_algorithm a) {
        return balance_algorithm_from_string(config_algorithm_to_string(a));
}

static void pickers_free(struct balancer *b) {
        if (!b->pickers)
                return;
        for (size_t i = 0; b->table && i < b->table->n_services; i++) {
                balance_free(b->pickers[i].bal);
                free(b->pickers[i].bk);
                free(b->pickers[i].names);
        }
        free(b->pickers);
        b->pickers = NULL;
}

/* ---- the held table ---------------------------------------------------------------- */

static int persist_table(struct balancer *b) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *hex = NULL, *text = NULL;
        size_t len;
        json_t *o;
        int r;

        r = table_encode(b->table, &buf, &len);
        if (r < 0)
                return r;
        hex = malloc(len * 2 + 1);
        if (!hex)
                return -ENOMEM;
        sodium_bin2hex(hex, len * 2 + 1, buf, len);
        o = json_pack("{s:I, s:I, s:s}", "term", (json_int_t) b->table->term, "version",
                      (json_int_t) b->table->version, "table", hex);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        return store_state_put(agent_store(b->agent), STORE_TABLE_BALANCER, BALANCER_STORE_TABLE_KEY, text,
                               util_now_real_us());
}

static int load_table(struct balancer *b, struct table_set **ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uint8_t *bin = NULL;
        const char *hex;
        size_t hlen, blen;
        json_t *o;
        int r;

        r = store_state_get(agent_store(b->agent), STORE_TABLE_BALANCER, BALANCER_STORE_TABLE_KEY, &text, NULL);
        if (r < 0)
                return r;
        o = json_loads(text, 0, NULL);
        hex = o ? json_string_value(json_object_get(o, "table")) : NULL;
        if (!hex) {
                json_decref(o);
                return -EBADMSG;
        }
        hlen = strlen(hex);
        bin = malloc(hlen / 2 + 1);
        if (!bin || sodium_hex2bin(bin, hlen / 2 + 1, hex, hlen, NULL, &blen, NULL) != 0) {
                json_decref(o);
                return bin ? -EBADMSG : -ENOMEM;
        }
        json_decref(o);
        return table_decode(bin, blen, ret);
}

/* Takes `t` as the held table (ownership moves), persists it and drops the pickers. */
static void hold_table(struct balancer *b, struct table_set *t) {
        int r;

        pickers_free(b);
        table_set_free(b->table);
        b->table = t;
        r = persist_table(b);
        if (r < 0)
                log_error("balancer: cannot persist table %" PRIu64 ".%" PRIu64 ": %s", t->term, t->version,
                          strerror(-r));
}

/* ---- the report ------------------------------------------------------------------------ */

static void report_free(struct sync_report *r) {
        sync_report_done(r);
}

/* Our own report: the supervisor's instances, our service specs, drain and table. */
static int report_build(struct balancer *b, struct sync_report *ret) {
        const struct agentd_config *c = agent_config(b->agent);
        struct sync_report r = {};
        int k;

        snprintf(r.node, sizeof(r.node), "%s", c->node_name);
        r.term_seen = leader_term(b->l);
        if (b->table) {
                r.table_term = b->table->term;
                r.table_version = b->table->version;
                r.table_digest = b->table->digest;
        }
        r.witness = c->role == CONFIG_ROLE_WITNESS;
        r.drain_until_us = b->drain_until_us;
        if (c->n_services) {
                r.services = calloc(c->n_services, sizeof(*r.services));
                if (!r.services)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_services && r.n_services < SYNC_SERVICES_MAX; i++) {
                const struct config_service *s = &c->services[i];
                struct sync_service_spec *sp = &r.services[r.n_services];
                bool dup = false;

                for (size_t j = 0; j < r.n_services && !dup; j++)
                        dup = strcmp(r.services[j].name, s->name) == 0;
                if (dup)
                        continue;
                snprintf(sp->name, sizeof(sp->name), "%s", s->name);
                sp->algorithm = algorithm_of(s->algorithm);
                sp->replicas = (uint16_t) s->replicas;
                if (s->replicas > 0 && s->template_unit) {
                        snprintf(sp->template_unit, sizeof(sp->template_unit), "%s", s->template_unit);
                        sp->port_min = s->port_min;
                        sp->port_max = s->port_max;
                }
                r.n_services++;
        }
        if (b->sup) {
                k = supervisor_report(b->sup, &r.instances, &r.n_instances);
                if (k < 0) {
                        sync_report_done(&r);
                        return k;
                }
                if (r.n_instances > TABLE_REPORT_INSTANCES_MAX)
                        r.n_instances = TABLE_REPORT_INSTANCES_MAX;
        }
        *ret = r;
        return 0;
}

/* ---- leader: peers ------------------------------------------------------------------------ */

static struct peer *peer_find(struct balancer *b, const char *name) {
        for (size_t i = 0; i < b->n_peers; i++)
                if (strcmp(b->peers[i]->name, name) == 0)
                        return b->peers[i];
        return NULL;
}

static struct peer *peer_get(struct balancer *b, const char *name) {
        struct peer *p = peer_find(b, name), **np;

        if (p)
                return p;
        if (b->n_peers >= PLACEMENT_HOSTS_MAX)
                return NULL;
        np = realloc(b->peers, (b->n_peers + 1) * sizeof(*np));
        if (!np)
                return NULL;
        b->peers = np;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        snprintf(p->name, sizeof(p->name), "%s", name);
        b->peers[b->n_peers++] = p;
        return p;
}

static void peer_free(struct peer *p) {
        if (!p)
                return;
        report_free(&p->report);
        free(p->assigned);
        free(p);
}

static void peers_clear(struct balancer *b) {
        for (size_t i = 0; i < b->n_peers; i++)
                peer_free(b->peers[i]);
        free(b->peers);
        b->peers = NULL;
        b->n_peers = 0;
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
static void peer_take_report(struct balancer *b, struct sync_report *r) {
        struct peer *p = peer_get(b, r->node);

        if (!p) {
                log_error("balancer: no room for the report of %s", r->node);
                report_free(r);
                return;
        }
        report_free(&p->report);
        p->report = *r;
        *r = (struct sync_report) {};
        p->have_report = true;
        p->synthetic = false;
        p->pushed_term = p->report.table_term;
        p->pushed_version = p->report.table_version;
        if (b->leading && !p->confirmed && peer_confirm(p) < 0)
                log_error("balancer: out of memory taking the report of %s", p->name);
        b->rebuild_due = true;
        schedule(b);
}

/*
 * A new leader has no reports yet, but it holds the previous table: every
 * node in it gets a stand-in report made of its backends, so that a node
 * which died meanwhile still shows as down (and its instances are
 * replaced) instead of silently vanishing from the next table.
 */
static void peers_seed_from_table(struct balancer *b) {
        if (!b->table)
                return;
        for (size_t s = 0; s < b->table->n_services; s++) {
                const struct table_service *sv = &b->table->services[s];

                for (size_t i = 0; i < sv->n_backends; i++) {
                        const struct table_backend *bk = &sv->backends[i];
                        struct peer *p = peer_find(b, bk->node);
                        struct sync_instance *ni, *in;

                        if (p && p->have_report && !p->synthetic)
                                continue;
                        if (!p) {
                                p = peer_get(b, bk->node);
                                if (!p)
                                        return;
                                snprintf(p->report.node, sizeof(p->report.node), "%s", bk->node);
                                p->have_report = true;
                                p->synthetic = true;
                        }
                        if (!p->synthetic || p->report.n_instances >= TABLE_REPORT_INSTANCES_MAX)
                                continue;
                        ni = realloc(p->report.instances, (p->report.n_instances + 1) * sizeof(*ni));
                        if (!ni)
                                return;
                        p->report.instances = ni;
                        in = &ni[p->report.n_instances++];
                        *in = (struct sync_instance) {
                                .origin = PLACEMENT_STATIC,
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

/* ---- leader: pushing ---------------------------------------------------------------------- */

static int update_encode(struct balancer *b, struct peer *p, bool with_table, uint8_t **ret, size_t *ret_len) {
        const struct table_set *cur = table_builder_current(b->builder);
        _cleanup_free_ uint8_t *tbuf = NULL;
        struct sync_update u = {};
        size_t tlen = 0;
        int r;

        snprintf(u.leader, sizeof(u.leader), "%s", self_name(b));
        u.term = b->lead_term;
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

static bool peer_needs_table(struct balancer *b, const struct peer *p) {
        const struct table_set *cur = table_builder_current(b->builder);

        return cur && (p->pushed_term != cur->term || p->pushed_version != cur->version);
}

static bool member_reachable(struct balancer *b, const char *name) {
        struct membership_member_info info;

        return membership_member_get(gossip_membership(b->g), name, &info) == 0 &&
               (info.state == MEMBERSHIP_ALIVE || info.state == MEMBERSHIP_SUSPECT);
}

static void apply_update(struct balancer *b, const struct sync_update *u);

/* Pushes the table and assignment to every node that lacks them (one exchange each at a time). */
static void push_all(struct balancer *b) {
        uint64_t now = util_now_mono_us();

        for (size_t i = 0; i < b->n_peers; i++) {
                struct peer *p = b->peers[i];
                _cleanup_free_ uint8_t *body = NULL;
                size_t len;
                int r;

                if (!p->have_report || p->synthetic || p->push_inflight || now < p->push_retry_mono)
                        continue;
                if (!peer_needs_table(b, p) && !(p->confirmed && p->assign_dirty))
                        continue;
                if (is_self(b, p->name)) {
                        /* Our own UPDATE is applied in place. */
                        struct sync_update u = {};
                        _cleanup_free_ uint8_t *tb = NULL;
                        const struct table_set *cur = table_builder_current(b->builder);
                        size_t tl = 0;

                        snprintf(u.leader, sizeof(u.leader), "%s", self_name(b));
                        u.term = b->lead_term;
                        if (cur && table_encode(cur, &tb, &tl) == 0) {
                                u.table = tb;
                                u.table_len = tl;
                        }
                        if (p->confirmed) {
                                u.has_assignment = true;
                                u.assigned = p->assigned;
                                u.n_assigned = p->n_assigned;
                        }
                        apply_update(b, &u);
                        p->assign_dirty = false;
                        if (cur) {
                                p->pushed_term = cur->term;
                                p->pushed_version = cur->version;
                        }
                        continue;
                }
                if (!member_reachable(b, p->name))
                        continue;
                r = update_encode(b, p, peer_needs_table(b, p), &body, &len);
                if (r < 0) {
                        log_error("balancer: cannot encode the update for %s: %s", p->name, strerror(-r));
                        continue;
                }
                r = gossip_sync_exchange(b->g, p->name, body, len, &p->push_cookie);
                if (r < 0) {
                        log_debug("balancer: cannot push to %s: %s", p->name, strerror(-r));
                        p->push_retry_mono = now + REPORT_RETRY_MIN_US;
                        continue;
                }
                p->push_inflight = true;
                p->assign_dirty = false;
        }
}

static void announce(struct balancer *b) {
        const struct table_set *cur = table_builder_current(b->builder);
        const struct membership *m = gossip_membership(b->g);
        struct sync_announce a = {};
        uint8_t buf[SYNC_DATAGRAM_MAX];
        size_t len;

        if (!cur)
                return;
        snprintf(a.leader, sizeof(a.leader), "%s", self_name(b));
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
                (void) gossip_send_to(b->g, info.name, buf, len);
        }
        b->announce_next_mono = util_now_mono_us() + ANNOUNCE_INTERVAL_US;
}

/* ---- leader: building and planning -------------------------------------------------------- */

static bool dead_seen(struct balancer *b, const char *node) {
        for (size_t i = 0; i < b->n_dead_seen; i++)
                if (strcmp(b->dead_seen[i], node) == 0)
                        return true;
        return false;
}

static void dead_seen_set(struct balancer *b, const char *node, bool dead) {
        for (size_t i = 0; i < b->n_dead_seen; i++)
                if (strcmp(b->dead_seen[i], node) == 0) {
                        if (!dead) {
                                free(b->dead_seen[i]);
                                b->dead_seen[i] = b->dead_seen[--b->n_dead_seen];
                        }
                        return;
                }
        if (dead) {
                char **n = realloc(b->dead_seen, (b->n_dead_seen + 1) * sizeof(*n));
                char *d = strdup(node);

                if (!n || !d) {
                        free(d);
                        if (n)
                                b->dead_seen = n;
                        return;
                }
                b->dead_seen = n;
                b->dead_seen[b->n_dead_seen++] = d;
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

static int build_ctx_fill(struct balancer *b, struct build_ctx *c) {
        const struct membership *m = gossip_membership(b->g);
        size_t slots = membership_slots(m);
        int r;

        c->members = calloc(slots ? slots : 1, sizeof(*c->members));
        c->reports = calloc(b->n_peers ? b->n_peers : 1, sizeof(*c->reports));
        c->drains = calloc(b->n_peers ? b->n_peers : 1, sizeof(*c->drains));
        if (!c->members || !c->reports || !c->drains)
                return -ENOMEM;
        for (size_t i = 0; i < slots; i++) {
                struct membership_member_info info;

                if (membership_member_at(m, i, &info) < 0)
                        continue;
                c->members[c->n_members++] = (struct table_member) { .name = info.name, .state = info.state };
        }
        for (size_t i = 0; i < b->n_peers; i++) {
                struct peer *p = b->peers[i];

                if (!p->have_report)
                        continue;
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

/* Tells the story of each newly dead node: its backends now down, and what replaces them. */
static void emit_failovers(struct balancer *b, const struct table_change *changes, size_t n_changes,
                           const struct placement_plan *plan) {
        const struct membership *m = gossip_membership(b->g);

        for (size_t i = 0; i < b->n_peers; i++) {
                struct peer *p = b->peers[i];
                struct membership_member_info info;
                char detail[DETAIL_MAX], down[DETAIL_MAX / 2], since[UTIL_TS_MAX];
                size_t len, n_down, n_repl;
                bool dead;

                dead = membership_member_get(m, p->name, &info) < 0 || info.state == MEMBERSHIP_DEAD ||
                       info.state == MEMBERSHIP_LEFT;
                if (!dead) {
                        dead_seen_set(b, p->name, false);
                        continue;
                }
                if (dead_seen(b, p->name))
                        continue;
                dead_seen_set(b, p->name, true);
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
                                                "%s is %s since %s (incarnation %" PRIu64 "%s)", p->name,
                                                membership_state_to_string(info.state),
                                                util_format_ts(util_now_real_us() -
                                                               (util_now_mono_us() - MIN(util_now_mono_us(), info.state_changed_us)),
                                                               since),
                                                info.incarnation,
                                                info.state == MEMBERSHIP_DEAD ?
                                                ", declared dead when its suspicion ran out unrefuted" : ", left");
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
                agent_emit_event(b->agent, &(struct event) {
                        .kind = EVENT_FAILOVER,
                        .subject = p->name,
                        .detail = detail,
                        .term = b->lead_term,
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
static int plan_ctx_fill(struct balancer *b, struct plan_ctx *c) {
        const struct membership *m = gossip_membership(b->g);
        size_t total_specs = 0, total_inst = 0, k = 0;

        for (size_t i = 0; i < b->n_peers; i++) {
                total_specs += b->peers[i]->report.n_services;
                total_inst += b->peers[i]->report.n_instances + b->peers[i]->n_assigned;
        }
        c->services = calloc(total_specs ? total_specs : 1, sizeof(*c->services));
        c->hosts = calloc(b->n_peers ? b->n_peers : 1, sizeof(*c->hosts));
        c->host_services = calloc(total_specs ? total_specs : 1, sizeof(*c->host_services));
        c->instances = calloc(total_inst ? total_inst : 1, sizeof(*c->instances));
        if (!c->services || !c->hosts || !c->host_services || !c->instances)
                return -ENOMEM;

        for (size_t i = 0; i < b->n_peers; i++) {
                const struct peer *p = b->peers[i];
                struct membership_member_info info;
                struct placement_host *h = &c->hosts[c->n_hosts];

                if (!p->have_report)
                        continue;
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

static void emit_order(struct balancer *b, const struct placement_order *o) {
        char detail[DETAIL_MAX];

        snprintf(detail, sizeof(detail), "%s %s on %s: %s", o->kind == PLACEMENT_ORDER_START ? "start" : "stop",
                 o->unit, o->node, o->cause);
        agent_emit_event(b->agent, &(struct event) {
                .kind = o->kind == PLACEMENT_ORDER_START ? EVENT_INSTANCE_PLACED : EVENT_INSTANCE_STOPPED,
                .subject = o->unit,
                .detail = detail,
                .service = o->service,
                .unit = o->unit,
                .term = o->term,
        });
}

/* Carries out the plan on the peers' assignments; they are pushed next. */
static void apply_plan(struct balancer *b, const struct placement_plan *plan) {
        for (size_t i = 0; i < plan->n_orders; i++) {
                const struct placement_order *o = &plan->orders[i];
                struct peer *p = peer_find(b, o->node);

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
                } else {
                        struct sync_assigned *a = assigned_find(p, o->unit);

                        if (!a)
                                continue;
                        *a = p->assigned[--p->n_assigned];
                }
                p->assign_dirty = true;
                emit_order(b, o);
        }
        for (size_t i = 0; i < plan->n_notes; i++)
                log_warning("balancer: %s: %s", plan->notes[i].service, plan->notes[i].text);
}

/*
 * A node membership has forgotten (left and reaped, or never known) has
 * nothing more to say: its backends leave the table instead of staying
 * down forever, and its slot is freed.
 */
static void peers_forget_unknown(struct balancer *b) {
        struct membership_member_info info;

        for (size_t i = 0; i < b->n_peers;) {
                struct peer *p = b->peers[i];

                if (is_self(b, p->name) || membership_member_get(gossip_membership(b->g), p->name, &info) == 0) {
                        i++;
                        continue;
                }
                log_info("balancer: forgetting %s, which membership no longer knows", p->name);
                peer_free(p);
                b->peers[i] = b->peers[--b->n_peers];
        }
}

static void rebuild(struct balancer *b) {
        _cleanup_(table_set_freep) struct table_set *old = NULL;
        struct build_ctx bc = {};
        struct plan_ctx pc = {};
        struct placement_plan plan = {};
        struct table_change *changes = NULL;
        size_t n_changes = 0;
        bool changed = false, planned = false;
        char error[256];
        int r;

        b->rebuild_due = false;
        peers_forget_unknown(b);
        if (table_builder_current(b->builder) && table_set_dup(table_builder_current(b->builder), &old) < 0)
                return;
        r = build_ctx_fill(b, &bc);
        if (r < 0)
                goto out;

        /* Placement first, so that the failover event can name the replacements. */
        r = plan_ctx_fill(b, &pc);
        if (r == 0 && pc.n_services > 0) {
                struct placement_input in = {
                        .term = b->lead_term,
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

                r = table_builder_build(b->builder, b->lead_term, &in, &changed);
                if (r < 0) {
                        log_error("balancer: cannot build the table: %s", strerror(-r));
                        goto out;
                }
                b->drain_expiry_real = table_drains_next_expiry(bc.drains, bc.n_drains, in.now);
        }
        if (changed) {
                const struct table_set *cur = table_builder_current(b->builder);
                char subject[64], detail[DETAIL_MAX], down[DETAIL_MAX / 2];
                size_t n_down;

                if (table_diff(old, cur, &changes, &n_changes) < 0)
                        n_changes = 0;
                n_down = table_format_down(changes, n_changes, NULL, down, sizeof(down));
                snprintf(subject, sizeof(subject), "%" PRIu64 ".%" PRIu64, cur->term, cur->version);
                snprintf(detail, sizeof(detail), "table %s: %zu services, %zu backend changes%s%s", subject,
                         cur->n_services, n_changes, n_down ? "; out of service: " : "", n_down ? down : "");
                agent_emit_event(b->agent, &(struct event) {
                        .kind = EVENT_TABLE_PUBLISHED,
                        .subject = subject,
                        .detail = detail,
                        .term = cur->term,
                });
        }
        emit_failovers(b, changes, n_changes, planned ? &plan : NULL);
        if (planned)
                apply_plan(b, &plan);
        push_all(b);
        if (changed)
                announce(b);
out:
        free(changes);
        placement_plan_free(&plan);
        plan_ctx_done(&pc);
        build_ctx_done(&bc);
}

/* Starts or stops leading, as the election says. */
static void leadership_check(struct balancer *b) {
        bool lead = leader_active(b->l) && is_self(b, leader_current(b->l));
        uint64_t term = leader_term(b->l);

        if (lead && (!b->leading || b->lead_term != term)) {
                log_info("balancer: leading in term %" PRIu64 ": building tables once reports arrive", term);
                b->leading = true;
                b->lead_term = term;
                b->lead_since_mono = util_now_mono_us();
                b->settled = false;
                table_builder_free(b->builder);
                b->builder = NULL;
                if (table_builder_new(&b->builder) < 0) {
                        log_error("balancer: out of memory");
                        b->leading = false;
                        return;
                }
                for (size_t i = 0; i < b->n_peers; i++) {
                        b->peers[i]->confirmed = false;
                        b->peers[i]->pushed_term = b->peers[i]->pushed_version = 0;
                }
                peers_seed_from_table(b);
                report_soon(b, true);
        } else if (!lead && b->leading) {
                log_info("balancer: no longer leading term %" PRIu64, b->lead_term);
                b->leading = false;
                table_builder_free(b->builder);
                b->builder = NULL;
                peers_clear(b);
        }
}

/* Settled: every reachable member has reported in this leadership, or SETTLE_US passed. */
static bool settle_check(struct balancer *b) {
        const struct membership *m = gossip_membership(b->g);

        if (b->settled)
                return true;
        if (util_now_mono_us() - b->lead_since_mono < SETTLE_US)
                for (size_t i = 0; i < membership_slots(m); i++) {
                        struct membership_member_info info;
                        struct peer *p;

                        if (membership_member_at(m, i, &info) < 0 || info.state != MEMBERSHIP_ALIVE)
                                continue;
                        p = peer_find(b, info.name);
                        if (!p || !p->confirmed)
                                return false;
                }
        b->settled = true;
        return true;
}

/* ---- follower: applying updates --------------------------------------------------------- */

static void apply_update(struct balancer *b, const struct sync_update *u) {
        if (!leader_accepts(b->l, u->term)) {
                log_debug("balancer: update of term %" PRIu64 " from %s fenced (term %" PRIu64 ")", u->term,
                          u->leader, leader_term(b->l));
                return;
        }
        if (u->table_len) {
                struct table_set *t = NULL;
                enum table_apply_result res;
                int r = table_decode(u->table, u->table_len, &t);

                if (r < 0) {
                        log_warning("balancer: table from %s does not decode: %s", u->leader, strerror(-r));
                        return;
                }
                res = table_apply_check(b->table, t, leader_term(b->l));
                if (res == TABLE_APPLY_ACCEPTED) {
                        log_debug("balancer: table %" PRIu64 ".%" PRIu64 " from %s accepted", t->term, t->version,
                                  u->leader);
                        hold_table(b, t);
                } else {
                        log_debug("balancer: table %" PRIu64 ".%" PRIu64 " from %s %s", t->term, t->version, u->leader,
                                  table_apply_result_to_string(res));
                        table_set_free(t);
                        if (res == TABLE_APPLY_FENCED)
                                return;
                }
        }
        if (u->has_assignment && b->sup) {
                int r = supervisor_assign(b->sup, u->assigned, u->n_assigned, u->term);

                if (r < 0 && r != -ESTALE)
                        log_error("balancer: cannot apply the assignment of term %" PRIu64 ": %s", u->term,
                                  strerror(-r));
        }
}

/* ---- follower: reporting ---------------------------------------------------------------- */

/* Something in our report changed, or the leader did: report soon (at once unless backing off). */
static void report_soon(struct balancer *b, bool leader_changed) {
        b->report_due = true;
        if (leader_changed) {
                b->report_failing = false;
                b->report_backoff_us = REPORT_RETRY_MIN_US;
        }
        if (!b->report_failing)
                b->report_next_mono = 0;
        schedule(b);
}

static void report_failed(struct balancer *b) {
        b->report_due = true;
        b->report_failing = true;
        b->reported_to[0] = '\0';
        b->report_next_mono = util_now_mono_us() + b->report_backoff_us;
        b->report_backoff_us = MIN(b->report_backoff_us * 2, REPORT_RETRY_MAX_US);
}

static void send_report(struct balancer *b) {
        const char *leader = leader_current(b->l);
        _cleanup_free_ uint8_t *body = NULL;
        struct sync_report r = {};
        size_t len;
        int k;

        if (!leader || b->report_inflight)
                return;
        k = report_build(b, &r);
        if (k < 0) {
                log_error("balancer: cannot build our report: %s", strerror(-k));
                return;
        }
        if (is_self(b, leader)) {
                b->report_due = false;
                snprintf(b->reported_to, sizeof(b->reported_to), "%s", leader);
                b->reported_term = leader_term(b->l);
                b->report_next_mono = util_now_mono_us() + REPORT_REFRESH_US;
                if (b->leading)
                        peer_take_report(b, &r);
                report_free(&r);
                return;
        }
        k = sync_report_encode(&r, &body, &len);
        report_free(&r);
        if (k < 0) {
                log_error("balancer: cannot encode our report: %s", strerror(-k));
                return;
        }
        k = gossip_sync_exchange(b->g, leader, body, len, &b->report_cookie);
        if (k < 0) {
                log_debug("balancer: cannot report to %s: %s", leader, strerror(-k));
                report_failed(b);
                return;
        }
        b->report_due = false;
        b->report_inflight = true;
        snprintf(b->reported_to, sizeof(b->reported_to), "%s", leader);
        b->reported_term = leader_term(b->l);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void step(struct balancer *b) {
        uint64_t now = util_now_mono_us();
        const char *leader;

        leadership_check(b);
        leader = leader_current(b->l);
        if (leader && !b->report_failing &&
            (strcmp(leader, b->reported_to) != 0 || leader_term(b->l) != b->reported_term))
                report_soon(b, true);
        if (now >= b->report_next_mono)
                b->report_due = true;
        if (b->report_due && !b->report_inflight && now >= b->report_next_mono)
                send_report(b);

        if (b->leading) {
                if (b->drain_expiry_real != UINT64_MAX && util_now_real_us() >= b->drain_expiry_real)
                        b->rebuild_due = true;
                if (settle_check(b) && (b->rebuild_due || !table_builder_current(b->builder)))
                        rebuild(b);
                else if (b->settled)
                        push_all(b);
                if (table_builder_current(b->builder) && now >= b->announce_next_mono)
                        announce(b);
        }
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents) {
        struct balancer *b = w->data;
        (void) loop;
        (void) revents;

        step(b);
}

static void schedule(struct balancer *b) {
        if (!ev_is_active(&b->kick)) {
                ev_timer_set(&b->kick, 0., 0.);
                ev_timer_start(b->loop, &b->kick);
        }
}

static void drains_tick(struct balancer *b);

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
        struct balancer *b = w->data;
        (void) loop;
        (void) revents;

        drains_tick(b);
        step(b);
}

static void on_leader_change(void *userdata) {
        struct balancer *b = userdata;

        report_soon(b, true);
}

static void on_members_change(void *userdata) {
        struct balancer *b = userdata;

        b->rebuild_due = true;
        schedule(b);
}

static void on_report_change(void *userdata) {
        report_soon(userdata, false);
}

/* ---- transport handlers ---------------------------------------------------------------------- */

static void drain_set(struct balancer *b, uint64_t until);
static void drain_acked(struct balancer *b, const struct sync_drain_ack *a);

static void on_datagram(const uint8_t *body, size_t len, void *userdata) {
        struct balancer *b = userdata;

        switch (sync_body_type(body, len)) {
        case SYNC_TYPE_ANNOUNCE: {
                struct sync_announce a;

                if (sync_announce_decode(body, len, &a) < 0 || !leader_accepts(b->l, a.term))
                        return;
                snprintf(b->ann_leader, sizeof(b->ann_leader), "%s", a.leader);
                b->ann_term = a.term;
                b->ann_version = a.version;
                b->ann_digest = a.digest;
                if (!b->table || b->table->term != a.term || b->table->version != a.version)
                        /* We missed a push: our report's reply carries the table. */
                        report_soon(b, false);
                return;
        }
        case SYNC_TYPE_DRAIN: {
                struct sync_drain d;
                struct sync_drain_ack a = {};
                uint8_t buf[SYNC_DATAGRAM_MAX];
                size_t alen;

                if (sync_drain_decode(body, len, &d) < 0)
                        return;
                snprintf(a.from, sizeof(a.from), "%s", self_name(b));
                a.nonce = d.nonce;
                if (!is_self(b, d.node))
                        a.result = -EXDEV;
                else
                        drain_set(b, d.until_us);
                if (sync_drain_ack_encode(&a, buf, sizeof(buf), &alen) == 0)
                        (void) gossip_send_to(b->g, d.from, buf, alen);
                return;
        }
        case SYNC_TYPE_DRAIN_ACK: {
                struct sync_drain_ack a;

                if (sync_drain_ack_decode(body, len, &a) == 0)
                        drain_acked(b, &a);
                return;
        }
        default:
                return;
        }
}

static int on_request(const uint8_t *body, size_t len, uint8_t **ret_reply, size_t *ret_len, void *userdata) {
        struct balancer *b = userdata;
        int r;

        switch (sync_body_type(body, len)) {
        case SYNC_TYPE_REPORT: {
                _cleanup_free_ struct sync_report *rep = calloc(1, sizeof(*rep));
                char name[TABLE_NODE_MAX];
                struct peer *p;
                bool with_table;

                if (!rep)
                        return -ENOMEM;
                r = sync_report_decode(body, len, rep);
                if (r < 0) {
                        log_debug("balancer: malformed report (%zu bytes): %s", len, strerror(-r));
                        return r;
                }
                /* Only the active leader takes reports; the reporter retries where the election points. */
                leadership_check(b);
                if (!b->leading) {
                        report_free(rep);
                        return -EAGAIN;
                }
                /* Only members get a slot: what we hold per node is bounded by the member list. */
                if (!member_reachable(b, rep->node)) {
                        log_debug("balancer: report from %s, which is not an alive member: ignored", rep->node);
                        report_free(rep);
                        return -EPERM;
                }
                snprintf(name, sizeof(name), "%s", rep->node);
                peer_take_report(b, rep);
                p = peer_find(b, name);
                if (!p)
                        return -ENOMEM;
                with_table = peer_needs_table(b, p);
                r = update_encode(b, p, with_table, ret_reply, ret_len);
                if (r == 0) {
                        const struct table_set *cur = table_builder_current(b->builder);

                        p->assign_dirty = false;
                        if (with_table && cur) {
                                p->pushed_term = cur->term;
                                p->pushed_version = cur->version;
                        }
                }
                return r;
        }
        case SYNC_TYPE_UPDATE: {
                _cleanup_free_ struct sync_update *u = calloc(1, sizeof(*u));
                struct sync_report rep = {};

                if (!u)
                        return -ENOMEM;
                r = sync_update_decode(body, len, u);
                if (r < 0) {
                        log_debug("balancer: malformed update (%zu bytes): %s", len, strerror(-r));
                        return r;
                }
                apply_update(b, u);
                sync_update_done(u);
                /* The reply is our report, so the leader learns at once what we now hold and run. */
                r = report_build(b, &rep);
                if (r < 0)
                        return r;
                r = sync_report_encode(&rep, ret_reply, ret_len);
                report_free(&rep);
                return r;
        }
        default:
                return -EBADMSG;
        }
}

static void on_reply(uint64_t cookie, int result, const uint8_t *body, size_t len, void *userdata) {
        struct balancer *b = userdata;
        int r;

        if (b->report_inflight && cookie == b->report_cookie) {
                _cleanup_free_ struct sync_update *u = calloc(1, sizeof(*u));

                b->report_inflight = false;
                if (result == 0 && u && (r = sync_update_decode(body, len, u)) == 0) {
                        apply_update(b, u);
                        sync_update_done(u);
                        b->report_backoff_us = REPORT_RETRY_MIN_US;
                        b->report_failing = false;
                        if (!b->report_due)
                                b->report_next_mono = util_now_mono_us() + REPORT_REFRESH_US;
                } else {
                        log_debug("balancer: report to %s failed: %s", b->reported_to,
                                  strerror(result < 0 ? -result : EBADMSG));
                        report_failed(b);
                }
                schedule(b);
                return;
        }
        for (size_t i = 0; i < b->n_peers; i++) {
                struct peer *p = b->peers[i];
                _cleanup_free_ struct sync_report *rep = NULL;

                if (!p->push_inflight || p->push_cookie != cookie)
                        continue;
                p->push_inflight = false;
                rep = calloc(1, sizeof(*rep));
                if (result == 0 && rep && sync_report_decode(body, len, rep) == 0 && strcmp(rep->node, p->name) == 0) {
                        peer_take_report(b, rep);
                } else {
                        if (rep)
                                report_free(rep);
                        log_debug("balancer: push to %s failed: %s", p->name, strerror(result < 0 ? -result : EBADMSG));
                        p->assign_dirty = true;
                        p->push_retry_mono = util_now_mono_us() + REPORT_RETRY_MIN_US * 2;
                }
                schedule(b);
                return;
        }
}

/* ---- drains ------------------------------------------------------------------------------------ */

static int persist_drain(struct balancer *b) {
        char text[64];

        if (b->drain_until_us == SYNC_DRAIN_NONE)
                return store_state_delete(agent_store(b->agent), STORE_TABLE_BALANCER, BALANCER_STORE_DRAIN_KEY);
        snprintf(text, sizeof(text), "{\"until_us\":%" PRIu64 "}", b->drain_until_us == TABLE_DRAIN_FOREVER ? 0 :
                 b->drain_until_us);
        return store_state_put(agent_store(b->agent), STORE_TABLE_BALANCER, BALANCER_STORE_DRAIN_KEY, text,
                               util_now_real_us());
}

static void drain_set(struct balancer *b, uint64_t until) {
        char ts[UTIL_TS_MAX];
        int r;

        if (b->drain_until_us == until)
                return;
        b->drain_until_us = until;
        r = persist_drain(b);
        if (r < 0)
                log_error("balancer: cannot persist the drain: %s", strerror(-r));
        if (until == SYNC_DRAIN_NONE)
                log_notice("balancer: undrained: this node takes new traffic again");
        else if (until == TABLE_DRAIN_FOREVER)
                log_notice("balancer: draining until undrain: no new traffic for this node's backends");
        else
                log_notice("balancer: draining until %s: no new traffic for this node's backends",
                           util_format_ts(until, ts));
        on_report_change(b);
}

static json_t *drain_reply(struct balancer *b, const char *node, uint64_t until) {
        char ts[UTIL_TS_MAX];
        (void) b;

        if (until == SYNC_DRAIN_NONE)
                return ctlproto_ok(json_pack("{s:s, s:b}", "node", node, "draining", false));
        return ctlproto_ok(json_pack("{s:s, s:b, s:s?, s:o}", "node", node, "draining", true, "until",
                                     until == TABLE_DRAIN_FOREVER ? NULL : util_format_ts(until, ts), "until_us",
                                     until == TABLE_DRAIN_FOREVER ? json_null() : json_integer((json_int_t) until)));
}

static void drain_send(struct balancer *b, struct pending_drain *d) {
        struct sync_drain m = {};
        uint8_t buf[SYNC_DATAGRAM_MAX];
        size_t len;

        snprintf(m.from, sizeof(m.from), "%s", self_name(b));
        snprintf(m.node, sizeof(m.node), "%s", d->node);
        m.nonce = d->nonce;
        m.until_us = d->until_us;
        if (sync_drain_encode(&m, buf, sizeof(buf), &len) == 0)
                (void) gossip_send_to(b->g, d->node, buf, len);
        d->resend_mono = util_now_mono_us() + DRAIN_RESEND_US;
}

static void drain_acked(struct balancer *b, const struct sync_drain_ack *a) {
        for (size_t i = 0; i < DRAINS_PENDING_MAX; i++) {
                struct pending_drain *d = &b->drains[i];
                json_t *reply;

                if (!d->used || d->nonce != a->nonce || strcmp(d->node, a->from) != 0)
                        continue;
                d->used = false;
                if (a->result < 0)
                        reply = ctlproto_error(CTL_ERR_FAILED, "%s refused the drain: %s", d->node,
                                               strerror(-a->result));
                else
                        reply = drain_reply(b, d->node, d->until_us);
                (void) ctl_reply(agent_ctl(b->agent), d->request_id, reply);
                return;
        }
}

static void drains_tick(struct balancer *b) {
        uint64_t now = util_now_mono_us();

        for (size_t i = 0; i < DRAINS_PENDING_MAX; i++) {
                struct pending_drain *d = &b->drains[i];

                if (!d->used)
                        continue;
                if (now >= d->deadline_mono) {
                        d->used = false;
                        (void) ctl_reply(agent_ctl(b->agent), d->request_id,
                                         ctlproto_error(CTL_ERR_TIMEOUT,
                                                        "%s did not confirm within %u s; the drain may or may not have "
                                                        "been applied (see agentctl table)",
                                                        d->node, (unsigned) (DRAIN_TIMEOUT_US / USEC_PER_SEC)));
                } else if (now >= d->resend_mono)
                        drain_send(b, d);
        }
}

static json_t *drain_verb(struct balancer *b, const struct ctl_caller *caller, json_t *args, bool undrain) {
        struct membership_member_info info;
        const char *node = NULL;
        json_int_t ttl = 0;
        uint64_t until;
        json_t *jn, *jt;
        struct pending_drain *d = NULL;
        const char *key;
        json_t *v;

        json_object_foreach(args, key, v)
                if (strcmp(key, "node") != 0 && (undrain || strcmp(key, "ttl_us") != 0))
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        jn = json_object_get(args, "node");
        jt = json_object_get(args, "ttl_us");
        if (!json_is_string(jn))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"node\" (a member name) is required");
        node = json_string_value(jn);
        if (jt && (!json_is_integer(jt) || json_integer_value(jt) <= 0 ||
                   json_integer_value(jt) > (json_int_t) (365 * USEC_PER_DAY)))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"ttl_us\" must be 1 µs to 365 days");
        ttl = jt ? json_integer_value(jt) : 0;
        until = undrain ? SYNC_DRAIN_NONE : ttl ? util_now_real_us() + (uint64_t) ttl : TABLE_DRAIN_FOREVER;

        if (is_self(b, node)) {
                drain_set(b, until);
                return drain_reply(b, node, until);
        }
        if (membership_member_get(gossip_membership(b->g), node, &info) < 0)
                return ctlproto_error(CTL_ERR_FAILED, "no member called \"%s\"", node);
        if (info.state == MEMBERSHIP_DEAD || info.state == MEMBERSHIP_LEFT)
                return ctlproto_error(CTL_ERR_FAILED, "%s is %s: its backends are down already, nothing to %s", node,
                                      membership_state_to_string(info.state), undrain ? "undrain" : "drain");
        for (size_t i = 0; i < DRAINS_PENDING_MAX && !d; i++)
                if (!b->drains[i].used)
                        d = &b->drains[i];
        if (!d)
                return ctlproto_error(CTL_ERR_FAILED, "too many drains in flight (%d); try again", DRAINS_PENDING_MAX);
        *d = (struct pending_drain) {
                .used = true,
                .nonce = util_splitmix64(&b->rng),
                .request_id = caller->request_id,
                .until_us = until,
                .deadline_mono = util_now_mono_us() + DRAIN_TIMEOUT_US,
        };
        snprintf(d->node, sizeof(d->node), "%s", node);
        drain_send(b, d);
        return ctl_reply_later();
}

json_t *balancer_verb_drain(struct balancer *b, const struct ctl_caller *caller, json_t *args) {
        return drain_verb(b, caller, args, false);
}

json_t *balancer_verb_undrain(struct balancer *b, const struct ctl_caller *caller, json_t *args) {
        return drain_verb(b, caller, args, true);
}

/* ---- table and pick ------------------------------------------------------------------------------ */

/* The held table is current when it is what the leader we follow announced (or built, if it is us). */
static bool table_current(struct balancer *b) {
        const char *leader = leader_current(b->l);

        if (!b->table || !leader)
                return false;
        if (b->leading) {
                const struct table_set *cur = table_builder_current(b->builder);

                return cur && cur->term == b->table->term && cur->version == b->table->version;
        }
        return strcmp(leader, b->ann_leader) == 0 && b->ann_term == b->table->term &&
               b->ann_version == b->table->version && b->ann_digest == b->table->digest;
}

static json_t *service_json(const struct table_service *s) {
        char digest[17];
        json_t *bks = json_array(), *o;

        if (!bks)
                return NULL;
        for (size_t i = 0; i < s->n_backends; i++) {
                const struct table_backend *bk = &s->backends[i];

                if (json_array_append_new(bks, json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:I}", "node", bk->node,
                                                         "instance", bk->instance, "address", bk->address, "port",
                                                         (int) bk->port, "weight", (json_int_t) bk->weight, "state",
                                                         balance_state_to_string(bk->state), "active",
                                                         (json_int_t) bk->active)) < 0) {
                        json_decref(bks);
                        return NULL;
                }
        }
        hex64(s->digest, digest);
        o = json_pack("{s:s, s:s, s:s, s:o}", "name", s->name, "algorithm", balance_algorithm_to_string(s->algorithm),
                      "digest", digest, "backends", bks);
        return o;
}

json_t *balancer_verb_table(struct balancer *b, json_t *args) {
        const char *want = NULL, *key, *leader = leader_current(b->l);
        json_t *services, *v;
        char digest[17];

        json_object_foreach(args, key, v)
                if (strcmp(key, "service") != 0)
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        v = json_object_get(args, "service");
        if (v && !json_is_string(v))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"service\" must be a string");
        want = v ? json_string_value(v) : NULL;
        if (want && (!b->table || !table_find(b->table, want)))
                return ctlproto_error(CTL_ERR_FAILED, "no service \"%s\" in the table", want);
        services = json_array();
        if (!services)
                return NULL;
        for (size_t i = 0; b->table && i < b->table->n_services; i++) {
                if (want && strcmp(want, b->table->services[i].name) != 0)
                        continue;
                if (json_array_append_new(services, service_json(&b->table->services[i])) < 0) {
                        json_decref(services);
                        return NULL;
                }
        }
        hex64(b->table ? b->table->digest : 0, digest);
        return ctlproto_ok(json_pack("{s:I, s:I, s:s, s:s?, s:b, s:o}", "term",
                                     (json_int_t) (b->table ? b->table->term : 0), "version",
                                     (json_int_t) (b->table ? b->table->version : 0), "digest", digest, "leader", leader,
                                     "current", table_current(b), "services", services));
}

static int picker_get(struct balancer *b, size_t idx, struct picker **ret) {
        const struct table_service *s = &b->table->services[idx];
        struct picker *p;
        int r;

        if (!b->pickers) {
                b->pickers = calloc(b->table->n_services, sizeof(*b->pickers));
                if (!b->pickers)
                        return -ENOMEM;
        }
        p = &b->pickers[idx];
        if (!p->bal) {
                p->bk = calloc(s->n_backends, sizeof(*p->bk));
                p->names = calloc(s->n_backends, sizeof(*p->names));
                if (!p->bk || !p->names)
                        return -ENOMEM;
                table_service_to_balance(s, p->bk, p->names);
                r = balance_build(s->algorithm, p->bk, s->n_backends, &p->bal);
                if (r < 0)
                        return r;
        }
        *ret = p;
        return 0;
}

json_t *balancer_verb_pick(struct balancer *b, json_t *args) {
        const char *service, *client = NULL, *key;
        const struct table_service *s;
        struct picker *p;
        unsigned char addr[sizeof(struct in6_addr)];
        size_t idx, key_len = 0, counts[_BALANCE_STATE_MAX] = {};
        json_t *v;
        int r;

        json_object_foreach(args, key, v)
                if (strcmp(key, "service") != 0 && strcmp(key, "client") != 0)
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        v = json_object_get(args, "service");
        if (!json_is_string(v))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"service\" (a service name) is required");
        service = json_string_value(v);
        v = json_object_get(args, "client");
        if (v) {
                if (!json_is_string(v))
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"client\" must be an IP address");
                client = json_string_value(v);
                /* Hash the address's bytes, so "::ffff:1.2.3.4"-style spellings of one client agree. */
                if (inet_pton(AF_INET, client, addr) == 1)
                        key_len = 4;
                else if (inet_pton(AF_INET6, client, addr) == 1)
                        key_len = 16;
                else
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "\"client\": %s is not an IP address", client);
        }
        s = b->table ? table_find(b->table, service) : NULL;
        if (!s)
                return ctlproto_error(CTL_ERR_FAILED, "no service \"%s\" in the table%s", service,
                                      b->table ? "" : " (no leader has published one yet)");
        idx = (size_t) (s - b->table->services);
        r = picker_get(b, idx, &p);
        if (r < 0)
                return ctlproto_error(CTL_ERR_INTERNAL, "cannot build the %s balancer: %s", service, strerror(-r));
        r = balance_pick(p->bal, util_splitmix64(&b->rng), client ? addr : NULL, key_len, &idx);
        if (r == -EHOSTUNREACH) {
                for (size_t i = 0; i < s->n_backends; i++)
                        counts[s->backends[i].state]++;
                return ctlproto_error(CTL_ERR_FAILED,
                                      "no backend of \"%s\" can take traffic (%zu up with weight 0 or none, %zu draining, "
                                      "%zu down, %zu ejected)",
                                      service, counts[BALANCE_UP], counts[BALANCE_DRAINING], counts[BALANCE_DOWN],
                                      counts[BALANCE_EJECTED]);
        }
        if (r < 0)
                return ctlproto_error(CTL_ERR_INTERNAL, "pick failed: %s", strerror(-r));
        return ctlproto_ok(json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:I}", "service", service, "algorithm",
                                     balance_algorithm_to_string(s->algorithm), "node", s->backends[idx].node,
                                     "instance", s->backends[idx].instance, "address", s->backends[idx].address,
                                     "port", (int) s->backends[idx].port, "state",
                                     balance_state_to_string(s->backends[idx].state), "term",
                                     (json_int_t) b->table->term, "version", (json_int_t) b->table->version));
}

int balancer_status(struct balancer *b, json_t *status) {
        char digest[17];
        json_t *o;

        hex64(b->table ? b->table->digest : 0, digest);
        o = json_pack("{s:I, s:I, s:s, s:I, s:b, s:s?, s:b}", "term", (json_int_t) (b->table ? b->table->term : 0),
                      "version", (json_int_t) (b->table ? b->table->version : 0), "digest", digest, "services",
                      (json_int_t) (b->table ? b->table->n_services : 0), "current", table_current(b), "leader",
                      leader_current(b->l), "draining", b->drain_until_us != SYNC_DRAIN_NONE);
        if (!o || json_object_set_new(status, "table", o) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- life cycle ---------------------------------------------------------------------------------- */

static void load_drain(struct balancer *b) {
        _cleanup_free_ char *text = NULL;
        json_t *o, *u;

        if (store_state_get(agent_store(b->agent), STORE_TABLE_BALANCER, BALANCER_STORE_DRAIN_KEY, &text, NULL) < 0)
                return;
        o = json_loads(text, 0, NULL);
        u = o ? json_object_get(o, "until_us") : NULL;
        if (json_is_integer(u) && json_integer_value(u) >= 0)
                b->drain_until_us = json_integer_value(u) == 0 ? TABLE_DRAIN_FOREVER : (uint64_t) json_integer_value(u);
        else
                log_warning("balancer: ignoring a malformed persisted drain");
        json_decref(o);
}

int balancer_new(struct agent *a, struct gossip *g, struct leader *l, struct supervisor *sup, struct balancer **ret) {
        struct gossip_sync_handlers h;
        struct balancer *b;
        struct table_set *t = NULL;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b) {
                log_error("balancer: out of memory");
                return -ENOMEM;
        }
        b->agent = a;
        b->g = g;
        b->l = l;
        b->sup = sup;
        b->loop = agent_loop(a);
        b->report_backoff_us = REPORT_RETRY_MIN_US;
        b->drain_expiry_real = UINT64_MAX;
        if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng))
                b->rng = util_now_mono_us();

        r = load_table(b, &t);
        if (r == 0) {
                b->table = t;
                log_info("balancer: serving table %" PRIu64 ".%" PRIu64 " (%zu services) from the last run", t->term,
                         t->version, t->n_services);
        } else if (r != -ENOENT)
                log_warning("balancer: the persisted table is unusable (%s); waiting for the leader's", strerror(-r));
        load_drain(b);

        ev_init(&b->kick, on_kick);
        b->kick.data = b;
        ev_timer_init(&b->tick, on_tick, (double) TICK_US / 1e6, (double) TICK_US / 1e6);
        b->tick.data = b;
        ev_timer_start(b->loop, &b->tick);

        h = (struct gossip_sync_handlers) {
                .on_datagram = on_datagram,
                .on_request = on_request,
                .on_reply = on_reply,
                .on_change = on_members_change,
                .userdata = b,
        };
        gossip_set_sync_handlers(g, &h);
        leader_set_change_handler(l, on_leader_change, b);
        if (sup)
                supervisor_set_report_handler(sup, on_report_change, b);
        b->report_due = true;
        schedule(b);
        *ret = b;
        return 0;
}

void balancer_reload(struct balancer *b) {
        on_report_change(b);
}

void balancer_free(struct balancer *b) {
        if (!b)
                return;
        ev_timer_stop(b->loop, &b->tick);
        ev_timer_stop(b->loop, &b->kick);
        gossip_set_sync_handlers(b->g, NULL);
        leader_set_change_handler(b->l, NULL, NULL);
        if (b->sup)
                supervisor_set_report_handler(b->sup, NULL, NULL);
        for (size_t i = 0; i < DRAINS_PENDING_MAX; i++)
                if (b->drains[i].used)
                        (void) ctl_reply(agent_ctl(b->agent), b->drains[i].request_id,
                                         ctlproto_error(CTL_ERR_FAILED, "the agent is stopping"));
        peers_clear(b);
        for (size_t i = 0; i < b->n_dead_seen; i++)
                free(b->dead_seen[i]);
        free(b->dead_seen);
        table_builder_free(b->builder);
        pickers_free(b);
        table_set_free(b->table);
        free(b);
}
