/*
 * The balancer module: see balancer.h. This file is every agent's side (the
 * leader's included): it holds the last accepted table set (persisted,
 * served by `pick`), reports its instances to the leader, applies the
 * leader's UPDATEs (tables and the assignment of placed instances, both
 * fenced by term), carries out drains asked of it, and runs the timers. What
 * only the active leader does - building, planning, pushing, announcing -
 * is in publisher.c, which this file starts and stops as the election says.
 *
 * Decisions stay in the pure cores; inputs only set flags and arm a
 * zero-delay timer, so one loop iteration runs the decisions once however
 * many inputs arrived, and this file does the I/O.
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
#include "agentd/publisher.h"
#include "agentd/supervisor.h"
#include "common/ctlproto.h"
#include "core/balance.h"
#include "core/membership.h"
#include "core/sync.h"
#include "core/table.h"
#include "io/journal.h"
#include "io/store.h"

/* An agent re-sends its report this often even without a change (anti-entropy). */
#define REPORT_REFRESH_US (10 * USEC_PER_SEC)
/* Retry of a failed report exchange: doubling from MIN up to MAX. */
#define REPORT_RETRY_MIN_US (100 * USEC_PER_MSEC)
#define REPORT_RETRY_MAX_US (2 * USEC_PER_SEC)
/* Drain requests to another node: resent every RESEND, given up after TIMEOUT. */
#define DRAIN_RESEND_US (300 * USEC_PER_MSEC)
#define DRAIN_TIMEOUT_US (3 * USEC_PER_SEC)
#define DRAINS_PENDING_MAX 16
/* Housekeeping period. */
#define TICK_US (100 * USEC_PER_MSEC)

/* A drain asked of another node, waiting for its DRAIN_ACK (the control reply waits too). */
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
        uint64_t report_next_mono;      /* refresh or retry */
        uint64_t report_backoff_us;
        bool report_failing;            /* the last exchange failed: wait for report_next_mono */
        char seen_leader[TABLE_NODE_MAX];       /* the leader and term step() last saw */
        uint64_t seen_term;

        struct pending_drain drains[DRAINS_PENDING_MAX];

        /* ---- leader ---- */
        struct publisher *pub;

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









/* ---- leader: pushing ---------------------------------------------------------------------- */




static void apply_update(struct balancer *b, const struct sync_update *u);



/* ---- leader: building and planning -------------------------------------------------------- */




















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
                b->report_next_mono = util_now_mono_us() + REPORT_REFRESH_US;
                (void) publisher_take_report(b->pub, &r);
                sync_report_done(&r);
                return;
        }
        k = sync_report_encode(&r, &body, &len);
        sync_report_done(&r);
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
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* Starts or stops publishing, as the election says: only the active leader publishes. */
static void leadership_check(struct balancer *b) {
        bool lead = leader_active(b->l) && is_self(b, leader_current(b->l));
        uint64_t term = leader_term(b->l);
        int r;

        if (lead && publisher_term(b->pub) != term) {
                log_info("balancer: leading in term %" PRIu64 ": building tables once reports arrive", term);
                r = publisher_start(b->pub, term, b->table);
                if (r < 0) {
                        log_error("balancer: cannot start publishing: %s", strerror(-r));
                        return;
                }
                report_soon(b, true);
        } else if (!lead && publisher_leading(b->pub)) {
                log_info("balancer: no longer leading term %" PRIu64, publisher_term(b->pub));
                publisher_stop(b->pub);
        }
}

static void step(struct balancer *b) {
        uint64_t now = util_now_mono_us();
        const char *leader;

        leadership_check(b);
        leader = leader_current(b->l);
        /* A new leader or term: it needs our report now, whatever the backoff said. */
        if (strcmp(leader ? leader : "", b->seen_leader) != 0 || leader_term(b->l) != b->seen_term) {
                snprintf(b->seen_leader, sizeof(b->seen_leader), "%s", leader ? leader : "");
                b->seen_term = leader_term(b->l);
                if (leader)
                        report_soon(b, true);
        }
        if (now >= b->report_next_mono)
                b->report_due = true;
        if (b->report_due && !b->report_inflight && now >= b->report_next_mono)
                send_report(b);

        publisher_step(b->pub, leader_quorum_round(b->l));
}

static void on_apply_self(const struct sync_update *u, void *userdata) {
        apply_update(userdata, u);
}

static void on_schedule(void *userdata) {
        schedule(userdata);
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

/* Leader, term, activity or lease changed: step() sorts out what that means. */
static void on_leader_change(void *userdata) {
        schedule(userdata);
}

static void on_members_change(void *userdata) {
        struct balancer *b = userdata;

        publisher_members_changed(b->pub);
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

                if (!rep)
                        return -ENOMEM;
                r = sync_report_decode(body, len, rep);
                if (r < 0) {
                        log_debug("balancer: malformed report (%zu bytes): %s", len, strerror(-r));
                        return r;
                }
                /* Only the active leader takes reports; the reporter retries where the election points. */
                leadership_check(b);
                snprintf(name, sizeof(name), "%s", rep->node);
                r = publisher_take_report(b->pub, rep);
                if (r < 0) {
                        if (r == -EPERM)
                                log_debug("balancer: report from %s, which is not an alive member: ignored", name);
                        sync_report_done(rep);
                        return r;
                }
                return publisher_reply(b->pub, name, ret_reply, ret_len);
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
                sync_report_done(&rep);
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
        (void) publisher_exchange_done(b->pub, cookie, result, body, len);
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
        if (publisher_leading(b->pub)) {
                const struct table_set *cur = publisher_current(b->pub);

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
        if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng))
                b->rng = util_now_mono_us();

        r = publisher_new(a, g, &(struct publisher_callbacks) {
                .apply_self = on_apply_self, .schedule = on_schedule, .userdata = b }, &b->pub);
        if (r < 0) {
                log_error("balancer: out of memory");
                free(b);
                return r;
        }
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
        publisher_free(b->pub);
        pickers_free(b);
        table_set_free(b->table);
        free(b);
}
