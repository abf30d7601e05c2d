/*
 * Gossip: the membership core in the agent's loop. See gossip.h for what
 * goes where; this file is the plumbing between the core's inputs and
 * outputs and the adapters (net, crypto, replay, store).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "agentd/agent.h"
#include "agentd/gossip.h"
#include "common/ctlproto.h"
#include "core/membership.h"
#include "core/replay.h"
#include "core/sync.h"
#include "core/wire.h"
#include "io/crypto.h"
#include "io/journal.h"
#include "io/net.h"
#include "io/store.h"

/* Keys in the store. */
#define GOSSIP_STORE_SELF "gossip"

/*
 * Push-pull exchanges we start at once: a whole join (every seed together)
 * plus the periodic ones. Peers' exchanges with us are capped separately
 * (NET_CONNS_DEFAULT), since those are theirs to open.
 */
#define GOSSIP_PENDING_MAX (MEMBERSHIP_SEEDS_MAX + NET_CONNS_DEFAULT)
/* Inbound TCP exchanges at once: push-pulls plus every agent's report to a new leader. */
#define GOSSIP_INBOUND_MAX 128
/* Cookies of sync exchanges have this bit set; push-pull cookies never do. */
#define GOSSIP_SYNC_COOKIE (UINT64_C(1) << 63)
/* Seeds for a join: configured ones first, then remembered members. */
#define GOSSIP_SEEDS_MAX MEMBERSHIP_SEEDS_MAX
/* Largest UDP datagram we read; bigger ones are dropped by net and counted. */
#define GOSSIP_DATAGRAM_MAX (WIRE_BUDGET_MAX + CRYPTO_OVERHEAD_ENCRYPTED)

/*
 * Why a packet or frame was dropped before the core saw it. The first
 * _CRYPTO_REJECT_MAX values are crypto's own reasons, by their number.
 */
enum gossip_reject {
        GOSSIP_REJECT_REPLAY_DUPLICATE = _CRYPTO_REJECT_MAX,
        GOSSIP_REJECT_REPLAY_TOO_OLD,
        GOSSIP_REJECT_REPLAY_OLD_EPOCH,
        GOSSIP_REJECT_MALFORMED,
        _GOSSIP_REJECT_MAX,
};

struct pending_exchange {
        bool used;
        uint64_t cookie;
        struct wire_addr to;
};

struct gossip {
        struct agent *agent;
        struct ev_loop *loop;
        struct membership *m;
        struct net *net;
        struct replay *replay;
        struct crypto_keyring *kr;      /* NULL: plaintext */
        char *cluster;
        uint64_t sender_id;
        uint64_t epoch;
        uint64_t seq;
        uint64_t rng;
        uint64_t started_mono_us;       /* stands in for our own "last change" */

        /* What the last successful gossip_reload_prepare checked. */
        bool next_ready;
        struct membership_config next_cfg;
        struct crypto_keyring *next_kr;
        bool next_plaintext;

        ev_timer tick;
        ev_timer reject_timer;
        ev_timer plaintext_timer;
        ev_timer leave_timer;
        bool leaving;

        uint64_t rejected[_GOSSIP_REJECT_MAX];          /* since start */
        uint64_t rejected_window[_GOSSIP_REJECT_MAX];   /* since the last summary */
        struct net_addr last_reject_from;
        uint64_t last_summary_us;
        bool summary_due;

        struct pending_exchange pending[GOSSIP_PENDING_MAX];
        uint64_t next_cookie;

        gossip_election_fn on_election;
        gossip_change_fn on_change;
        void *election_userdata;

        struct gossip_sync_handlers sync;
        size_t sync_pending;            /* our sync exchanges in flight */

        uint8_t body[GOSSIP_DATAGRAM_MAX];
        uint8_t packet[WIRE_BUDGET_MAX + CRYPTO_OVERHEAD_ENCRYPTED];
};

static void gossip_drain(struct gossip *g);
static int sync_request(struct gossip *g, const uint8_t *body, size_t blen, uint8_t **ret_reply,
                        size_t *ret_reply_len);

/* ---- small helpers ------------------------------------------------------ */

/* splitmix64: probe order and jitter need spread, not secrecy. */
static uint64_t rng_next(void *ctx) {
        struct gossip *g = ctx;

        return util_splitmix64(&g->rng);
}

static const char *reject_to_string(int r) {
        switch (r) {
        case GOSSIP_REJECT_REPLAY_DUPLICATE:
                return "replay_duplicate";
        case GOSSIP_REJECT_REPLAY_TOO_OLD:
                return "replay_too_old";
        case GOSSIP_REJECT_REPLAY_OLD_EPOCH:
                return "replay_old_epoch";
        case GOSSIP_REJECT_MALFORMED:
                return "malformed";
        default:
                return crypto_reject_to_string((enum crypto_reject) r);
        }
}

static bool net_to_wire(const struct net_addr *n, struct wire_addr *ret) {
        if (n->ss.ss_family == AF_INET) {
                const struct sockaddr_in *in4 = (const struct sockaddr_in *) &n->ss;

                *ret = wire_addr_ipv4((const uint8_t *) &in4->sin_addr, ntohs(in4->sin_port));
                return true;
        }
        if (n->ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &n->ss;

                *ret = wire_addr_ipv6((const uint8_t *) &in6->sin6_addr, ntohs(in6->sin6_port));
                return true;
        }
        return false;
}

static bool wire_to_net(const struct wire_addr *w, struct net_addr *ret) {
        memset(ret, 0, sizeof(*ret));
        if (w->family == WIRE_AF_INET) {
                struct sockaddr_in *in4 = (struct sockaddr_in *) &ret->ss;

                in4->sin_family = AF_INET;
                in4->sin_port = htons(w->port);
                memcpy(&in4->sin_addr, w->ip, 4);
                ret->len = sizeof(*in4);
                return true;
        }
        if (w->family == WIRE_AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ret->ss;

                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(w->port);
                memcpy(&in6->sin6_addr, w->ip, 16);
                ret->len = sizeof(*in6);
                return true;
        }
        return false;
}

/* Monotonic µs of the core -> wall-clock µs for events, the store and agentctl. */
static uint64_t mono_to_real(uint64_t mono_us) {
        uint64_t now_mono = util_now_mono_us(), now_real = util_now_real_us();
        uint64_t ago = now_mono > mono_us ? now_mono - mono_us : 0;

        return now_real > ago ? now_real - ago : 0;
}

/* ---- rejected packets ------------------------------------------------------ */

static void on_reject_summary(struct ev_loop *loop, ev_timer *w, int revents) {
        struct gossip *g = w->data;
        char detail[1024], from[NET_ADDR_STRLEN];
        uint64_t total = 0, top_n = 0;
        bool first = true;
        int top = 0;
        size_t o;
        (void) loop;
        (void) revents;

        for (int i = 0; i < _GOSSIP_REJECT_MAX; i++) {
                total += g->rejected_window[i];
                if (g->rejected_window[i] > top_n) {
                        top_n = g->rejected_window[i];
                        top = i;
                }
        }
        g->summary_due = false;
        g->last_summary_us = util_now_mono_us();
        if (total == 0)
                return;
        o = (size_t) snprintf(detail, sizeof(detail), "%" PRIu64 " packet%s rejected:", total, total == 1 ? "" : "s");
        for (int i = 0; i < _GOSSIP_REJECT_MAX && o < sizeof(detail); i++) {
                if (!g->rejected_window[i])
                        continue;
                o += (size_t) snprintf(detail + o, sizeof(detail) - o, "%s %s %" PRIu64, first ? "" : ",",
                                       reject_to_string(i), g->rejected_window[i]);
                first = false;
        }
        if (o < sizeof(detail))
                snprintf(detail + o, sizeof(detail) - o, "; last from %s",
                         net_addr_to_string(&g->last_reject_from, from, sizeof(from)));
        memset(g->rejected_window, 0, sizeof(g->rejected_window));
        agent_emit_event(g->agent, &(struct event) {
                .kind = EVENT_PACKET_REJECTED,
                .subject = reject_to_string(top),
                .detail = detail,
        });
}

/*
 * Counts a dropped packet. Someone sending garbage (or a node with the wrong
 * key) can make thousands a second: the event is a summary, at most one per
 * GOSSIP_REJECT_SUMMARY_US, the first one right away.
 */
static void reject(struct gossip *g, int reason, const struct net_addr *from) {
        uint64_t now, due;

        g->rejected[reason]++;
        g->rejected_window[reason]++;
        if (from)
                g->last_reject_from = *from;
        if (g->summary_due)
                return;
        now = util_now_mono_us();
        due = g->last_summary_us ? g->last_summary_us + GOSSIP_REJECT_SUMMARY_US : now;
        ev_timer_set(&g->reject_timer, due > now ? (double) (due - now) / 1e6 : 0., 0.);
        ev_timer_start(g->loop, &g->reject_timer);
        g->summary_due = true;
}

static void count_crypto_reject(struct gossip *g, int r, const struct net_addr *from) {
        enum crypto_reject why = crypto_reject_from_errno(r);

        if (why <= CRYPTO_REJECT_NONE || why >= _CRYPTO_REJECT_MAX)
                why = CRYPTO_REJECT_OTHER;
        reject(g, (int) why, from);
}

/* Only authenticated stamps get here (see core/replay.h). */
static bool replay_ok(struct gossip *g, const struct crypto_header *h, const struct net_addr *from) {
        switch (replay_check(g->replay, h->sender_id, h->epoch, h->seq)) {
        case REPLAY_DUPLICATE:
                reject(g, GOSSIP_REJECT_REPLAY_DUPLICATE, from);
                return false;
        case REPLAY_TOO_OLD:
                reject(g, GOSSIP_REJECT_REPLAY_TOO_OLD, from);
                return false;
        case REPLAY_OLD_EPOCH:
                reject(g, GOSSIP_REJECT_REPLAY_OLD_EPOCH, from);
                return false;
        default:
                return true;
        }
}

/* ---- sending --------------------------------------------------------------- */

static int seal(struct gossip *g, const uint8_t *body, size_t len, uint8_t *out, size_t cap, size_t *ret_len) {
        return crypto_seal(g->kr, g->cluster, g->sender_id, g->epoch, ++g->seq, body, len, out, cap, ret_len);
}

static void send_body(struct gossip *g, const struct wire_addr *to, const uint8_t *body, size_t len) {
        struct net_addr addr;
        size_t plen;

        if (!wire_to_net(to, &addr))
                return;
        if (seal(g, body, len, g->packet, sizeof(g->packet), &plen) < 0)
                return;
        /* A full socket buffer or an unreachable peer is loss, which SWIM handles. */
        (void) net_send(g->net, &addr, g->packet, plen);
}

static struct pending_exchange *pending_find(struct gossip *g, uint64_t cookie) {
        for (size_t i = 0; i < ELEMENTSOF(g->pending); i++)
                if (g->pending[i].used && g->pending[i].cookie == cookie)
                        return &g->pending[i];
        return NULL;
}

/* Starts one push-pull exchange; a negative errno means it never started. */
static int start_pushpull(struct gossip *g, const struct wire_addr *to, bool join) {
        _cleanup_free_ uint8_t *body = NULL, *frame = NULL;
        struct pending_exchange *p = NULL;
        struct net_addr addr;
        size_t len = 0, flen, cap;
        int r;

        if (!wire_to_net(to, &addr))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(g->pending) && !p; i++)
                if (!g->pending[i].used)
                        p = &g->pending[i];
        if (!p)
                return -EBUSY;
        r = membership_pushpull_export(g->m, join, false, &body, &len);
        if (r < 0)
                return r;
        cap = len + CRYPTO_OVERHEAD_ENCRYPTED;
        frame = malloc(cap);
        if (!frame)
                return -ENOMEM;
        r = seal(g, body, len, frame, cap, &flen);
        if (r < 0)
                return r;
        r = net_exchange(g->net, &addr, frame, flen, ++g->next_cookie);
        if (r < 0)
                return r;
        *p = (struct pending_exchange) { .used = true, .cookie = g->next_cookie, .to = *to };
        return 0;
}

/* ---- outputs ---------------------------------------------------------------- */

static void emit_member_event(struct gossip *g, const struct membership_output *o) {
        char detail[512], addr[WIRE_ADDR_STRLEN];

        if (o->event.kind == EVENT_MEMBER_JOINED)
                snprintf(detail, sizeof(detail), "%s at %s, incarnation %" PRIu64 "%s%s",
                         membership_state_to_string(o->event.to_state),
                         wire_addr_to_string(&o->event.addr, addr), o->event.incarnation,
                         o->event.cause[0] ? ": " : "", o->event.cause);
        else
                snprintf(detail, sizeof(detail), "%s -> %s at %s, incarnation %" PRIu64 "%s%s",
                         membership_state_to_string(o->event.from_state),
                         membership_state_to_string(o->event.to_state),
                         wire_addr_to_string(&o->event.addr, addr), o->event.incarnation,
                         o->event.cause[0] ? ": " : "", o->event.cause);
        agent_emit_event(g->agent, &(struct event) {
                .kind = o->event.kind,
                .subject = o->event.name,
                .detail = detail,
        });
}

/* The agent's own row: incarnation and boot epoch, so neither ever goes back. */
static int persist_self(struct gossip *g, bool now) {
        struct store *s = agent_store(g->agent);
        _cleanup_free_ char *text = NULL;
        json_t *o;
        int r;

        o = json_pack("{s:I, s:I}", "incarnation", (json_int_t) membership_incarnation(g->m),
                      "boot_epoch", (json_int_t) g->epoch);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        r = store_state_put(s, STORE_TABLE_AGENT, GOSSIP_STORE_SELF, text, util_now_real_us());
        if (r >= 0 && now)
                r = store_commit(s);
        return r;
}

static void persist_member(struct gossip *g, const char *name, bool removed) {
        struct store *s = agent_store(g->agent);
        struct membership_member_info info;
        _cleanup_free_ char *text = NULL;
        char addr[WIRE_ADDR_STRLEN];
        json_t *o;
        int r;

        if (removed || membership_member_get(g->m, name, &info) < 0) {
                r = store_state_delete(s, STORE_TABLE_MEMBERS, name);
                goto done;
        }
        if (info.self)
                return;
        o = json_pack("{s:s, s:s, s:I, s:I}", "addr", wire_addr_to_string(&info.addr, addr),
                      "state", membership_state_to_string(info.state),
                      "incarnation", (json_int_t) info.incarnation,
                      "changed_us", (json_int_t) mono_to_real(info.state_changed_us));
        if (!o)
                return;
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return;
        r = store_state_put(s, STORE_TABLE_MEMBERS, name, text, util_now_real_us());
done:
        if (r < 0)
                log_error("gossip: cannot record member %s in the state database: %s", name, strerror(-r));
}

static void arm_tick(struct gossip *g) {
        uint64_t deadline = membership_next_deadline(g->m), now = util_now_mono_us();

        ev_timer_stop(g->loop, &g->tick);
        if (deadline == UINT64_MAX)
                return;
        ev_timer_set(&g->tick, deadline > now ? (double) (deadline - now) / 1e6 : 0., 0.);
        ev_timer_start(g->loop, &g->tick);
}

/*
 * Runs every output the core produced. Exchanges that cannot even start
 * are reported back as failed, but only after the outputs are cleared (an
 * input invalidates them), and then their own outputs are drained too.
 */
static void gossip_drain(struct gossip *g) {
        bool changed = false;

        for (int round = 0; round < 16; round++) {
                const struct membership_output *outs;
                struct wire_addr failed[GOSSIP_PENDING_MAX];
                size_t n, n_failed = 0, n_lost = 0;
                uint64_t now;

                n = membership_outputs(g->m, &outs);
                if (n == 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        const struct membership_output *o = &outs[i];

                        switch (o->type) {
                        case MEMBERSHIP_OUT_SEND:
                                send_body(g, &o->send.to, o->send.data, o->send.len);
                                break;
                        case MEMBERSHIP_OUT_PUSHPULL:
                                if (start_pushpull(g, &o->pushpull.to, o->pushpull.join) < 0) {
                                        if (n_failed < ELEMENTSOF(failed))
                                                failed[n_failed++] = o->pushpull.to;
                                        else
                                                n_lost++;
                                }
                                break;
                        case MEMBERSHIP_OUT_EVENT:
                                emit_member_event(g, o);
                                changed = true;
                                break;
                        case MEMBERSHIP_OUT_PERSIST:
                                changed = true;
                                if (o->persist.what == MEMBERSHIP_PERSIST_SELF) {
                                        int r = persist_self(g, true);

                                        if (r < 0)
                                                log_error("gossip: cannot persist incarnation %" PRIu64 ": %s",
                                                          membership_incarnation(g->m), strerror(-r));
                                } else
                                        persist_member(g, o->persist.name,
                                                       o->persist.what == MEMBERSHIP_PERSIST_REMOVED);
                                break;
                        }
                }
                membership_outputs_clear(g->m);
                if (n_lost)
                        log_debug("gossip: %zu push-pull exchanges could not start", n_lost + n_failed);
                /* The outputs are gone now; reporting a failure is an input of its own. */
                now = util_now_mono_us();
                for (size_t i = 0; i < n_failed; i++)
                        membership_pushpull_failed(g->m, now, &failed[i]);
        }
        arm_tick(g);
        if (changed && g->on_change)
                g->on_change(g->election_userdata);
        if (changed && g->sync.on_change)
                g->sync.on_change(g->sync.userdata);
        if (g->leaving && membership_leave_done(g->m))
                ev_break(g->loop, EVBREAK_ALL);
}

/* ---- inputs ----------------------------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
        struct gossip *g = w->data;
        (void) loop;
        (void) revents;

        membership_tick(g->m, util_now_mono_us());
        gossip_drain(g);
}

static void on_datagram(const uint8_t *buf, size_t len, const struct net_addr *from, void *userdata) {
        struct gossip *g = userdata;
        struct crypto_header h;
        struct wire_addr wfrom;
        size_t blen;
        int r;

        r = crypto_open(g->kr, g->cluster, buf, len, &h, g->body, sizeof(g->body), &blen);
        if (r < 0) {
                count_crypto_reject(g, r, from);
                return;
        }
        if (!replay_ok(g, &h, from))
                return;
        if (!net_to_wire(from, &wfrom))
                return;
        if (wire_is_election(g->body, blen)) {
                if (g->on_election)
                        g->on_election(g->body, blen, g->election_userdata);
                return;
        }
        if (sync_body_type(g->body, blen)) {
                if (g->sync.on_datagram)
                        g->sync.on_datagram(g->body, blen, g->sync.userdata);
                return;
        }
        r = membership_receive_packet(g->m, util_now_mono_us(), &wfrom, g->body, blen);
        if (r < 0)
                reject(g, GOSSIP_REJECT_MALFORMED, from);
        gossip_drain(g);
}

/* Opens a TCP frame into a malloc'd body; false (counted) when it is refused. */
static bool open_frame(struct gossip *g, const uint8_t *frame, size_t len, const struct net_addr *from,
                       uint8_t **ret_body, size_t *ret_len) {
        _cleanup_free_ uint8_t *body = malloc(len ? len : 1);
        struct crypto_header h;
        int r;

        if (!body)
                return false;
        r = crypto_open(g->kr, g->cluster, frame, len, &h, body, len, ret_len);
        if (r < 0) {
                count_crypto_reject(g, r, from);
                return false;
        }
        if (!replay_ok(g, &h, from))
                return false;
        *ret_body = body;
        body = NULL;
        return true;
}

static int on_frame(const uint8_t *frame, size_t len, const struct net_addr *from, uint8_t **ret_reply,
                    size_t *ret_reply_len, void *userdata) {
        struct gossip *g = userdata;
        _cleanup_free_ uint8_t *body = NULL, *reply = NULL, *out = NULL;
        struct wire_addr wfrom;
        size_t blen = 0, rlen = 0, olen = 0;
        int r;

        if (g->leaving)
                return -ESHUTDOWN;
        if (!open_frame(g, frame, len, from, &body, &blen))
                return -EBADMSG;
        if (!net_to_wire(from, &wfrom))
                return -EAFNOSUPPORT;
        if (sync_body_type(body, blen))
                return sync_request(g, body, blen, ret_reply, ret_reply_len);
        r = membership_pushpull_receive(g->m, util_now_mono_us(), &wfrom, body, blen);
        if (r < 0) {
                reject(g, GOSSIP_REJECT_MALFORMED, from);
                gossip_drain(g);
                return r;
        }
        r = membership_pushpull_export(g->m, false, true, &reply, &rlen);
        if (r >= 0) {
                out = malloc(rlen + CRYPTO_OVERHEAD_ENCRYPTED);
                r = out ? seal(g, reply, rlen, out, rlen + CRYPTO_OVERHEAD_ENCRYPTED, &olen) : -ENOMEM;
        }
        gossip_drain(g);
        if (r < 0)
                return r;
        *ret_reply = out;
        *ret_reply_len = olen;
        out = NULL;
        return 0;
}

/*
 * A sync request: the handler's reply body is sealed like a push-pull
 * reply. Without a handler (a module not running) the connection closes.
 */
static int sync_request(struct gossip *g, const uint8_t *body, size_t blen, uint8_t **ret_reply,
                        size_t *ret_reply_len) {
        _cleanup_free_ uint8_t *reply = NULL, *out = NULL;
        size_t rlen = 0, olen = 0;
        int r;

        if (!g->sync.on_request)
                return -EOPNOTSUPP;
        r = g->sync.on_request(body, blen, &reply, &rlen, g->sync.userdata);
        if (r < 0)
                return r;
        out = malloc(rlen + CRYPTO_OVERHEAD_ENCRYPTED);
        if (!out)
                return -ENOMEM;
        r = seal(g, reply, rlen, out, rlen + CRYPTO_OVERHEAD_ENCRYPTED, &olen);
        if (r < 0)
                return r;
        *ret_reply = out;
        *ret_reply_len = olen;
        out = NULL;
        return 0;
}

static void sync_reply(struct gossip *g, uint64_t cookie, int result, const uint8_t *frame, size_t len) {
        _cleanup_free_ uint8_t *body = NULL;
        size_t blen = 0;

        if (g->sync_pending > 0)
                g->sync_pending--;
        if (!g->sync.on_reply)
                return;
        if (result == 0) {
                /* The reply comes over our own connection: no address to check it against. */
                struct net_addr none = {};

                if (!open_frame(g, frame, len, &none, &body, &blen))
                        result = -EBADMSG;
        }
        g->sync.on_reply(cookie & ~GOSSIP_SYNC_COOKIE, result, body, blen, g->sync.userdata);
}

static void on_reply(uint64_t cookie, int result, const uint8_t *frame, size_t len, void *userdata) {
        struct gossip *g = userdata;
        struct pending_exchange *p;
        _cleanup_free_ uint8_t *body = NULL;
        struct wire_addr to;
        struct net_addr from;
        size_t blen = 0;

        if (cookie & GOSSIP_SYNC_COOKIE) {
                sync_reply(g, cookie, result, frame, len);
                return;
        }
        p = pending_find(g, cookie);
        if (!p)
                return;
        to = p->to;
        p->used = false;
        if (result == 0 && wire_to_net(&to, &from) && open_frame(g, frame, len, &from, &body, &blen)) {
                /* A body the core refuses counts as a failed exchange there already. */
                if (membership_pushpull_result(g->m, util_now_mono_us(), &to, body, blen) < 0)
                        reject(g, GOSSIP_REJECT_MALFORMED, &from);
        } else
                membership_pushpull_failed(g->m, util_now_mono_us(), &to);
        gossip_drain(g);
}

/* ---- timers ----------------------------------------------------------------- */

static void warn_plaintext(void) {
        log_warning("gossip: cluster traffic is NOT encrypted or authenticated (no cluster.keyring); "
                    "anyone who can reach this port can join the cluster or forge its state");
}

static void on_plaintext_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        (void) loop;
        (void) w;
        (void) revents;
        warn_plaintext();
}

static void on_leave_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
        (void) w;
        (void) revents;
        log_notice("gossip: leave not fully acknowledged within %.1fs; stopping anyway",
                   (double) GOSSIP_LEAVE_TIMEOUT_US / 1e6);
        ev_break(loop, EVBREAK_ALL);
}

/* ---- configuration ---------------------------------------------------------- */

static const enum membership_profile profile_map[] = {
        [CONFIG_PROFILE_LAN] = MEMBERSHIP_PROFILE_LAN,
        [CONFIG_PROFILE_LOCAL] = MEMBERSHIP_PROFILE_LOCAL,
        [CONFIG_PROFILE_WAN] = MEMBERSHIP_PROFILE_WAN,
};

/* The profile's timings with the gossip { } overrides on top. */
static int build_membership_config(const struct agentd_config *c, struct membership_config *ret, char **ret_error) {
        const struct config_gossip *o = &c->gossip;
        struct membership_config cfg;
        const char *reason = NULL;

        if ((size_t) c->profile >= ELEMENTSOF(profile_map) ||
            membership_profile_defaults(profile_map[c->profile], &cfg) < 0) {
                if (asprintf(ret_error, "%s: cluster.profile: unknown profile", c->path) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        if (o->probe_interval_us)
                cfg.probe_interval_us = o->probe_interval_us;
        if (o->probe_timeout_us)
                cfg.probe_timeout_us = o->probe_timeout_us;
        if (o->indirect_checks != CONFIG_GOSSIP_UNSET)
                cfg.indirect_checks = (unsigned) o->indirect_checks;
        if (o->suspicion_mult != CONFIG_GOSSIP_UNSET)
                cfg.suspicion_mult = (unsigned) o->suspicion_mult;
        if (o->suspicion_max_timeout_mult != CONFIG_GOSSIP_UNSET)
                cfg.suspicion_max_timeout_mult = (unsigned) o->suspicion_max_timeout_mult;
        if (o->retransmit_mult != CONFIG_GOSSIP_UNSET)
                cfg.retransmit_mult = (unsigned) o->retransmit_mult;
        if (o->gossip_interval_us)
                cfg.gossip_interval_us = o->gossip_interval_us;
        if (o->gossip_nodes != CONFIG_GOSSIP_UNSET)
                cfg.gossip_nodes = (unsigned) o->gossip_nodes;
        if (o->pushpull_interval_us)
                cfg.pushpull_interval_us = o->pushpull_interval_us;
        if (o->dead_reprobe_interval_us)
                cfg.dead_reprobe_interval_us = o->dead_reprobe_interval_us;
        /* The envelope's worst case, so the budget holds whether or not a keyring is loaded. */
        cfg.packet_budget = (size_t) o->mtu - CRYPTO_OVERHEAD_ENCRYPTED;
        if (cfg.packet_budget > WIRE_BUDGET_MAX)
                cfg.packet_budget = WIRE_BUDGET_MAX;
        if (membership_config_validate(&cfg, &reason) < 0) {
                if (asprintf(ret_error, "%s: gossip: %s (profile \"%s\" with the gossip { } overrides)", c->path,
                             reason ? reason : "invalid timings", config_profile_to_string(c->profile)) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        *ret = cfg;
        return 0;
}

static int load_keyring(const struct agentd_config *c, struct crypto_keyring **ret, char **ret_error) {
        if (!c->keyring) {
                *ret = NULL;
                return 0;
        }
        return crypto_keyring_load(c->keyring, ret, ret_error);
}

int gossip_reload_prepare(struct gossip *g, const struct agentd_config *next, char **ret_error) {
        struct crypto_keyring *kr = NULL;
        struct membership_config cfg;
        int r;

        r = build_membership_config(next, &cfg, ret_error);
        if (r < 0)
                return r;
        r = load_keyring(next, &kr, ret_error);
        if (r < 0)
                return r;
        crypto_keyring_free(g->next_kr);
        g->next_kr = kr;
        g->next_cfg = cfg;
        g->next_plaintext = next->keyring == NULL;
        g->next_ready = true;
        return 0;
}

void gossip_reload_commit(struct gossip *g) {
        bool was_plaintext = g->kr == NULL;
        int r;

        if (!g->next_ready)
                return;
        g->next_ready = false;
        r = membership_set_config(g->m, &g->next_cfg);
        if (r < 0)
                log_error("gossip: new timings refused by the membership core: %s", strerror(-r));
        crypto_keyring_free(g->kr);
        g->kr = g->next_kr;
        g->next_kr = NULL;
        if (g->kr)
                log_info("gossip: keyring reloaded: %zu key%s, primary key id %08" PRIx32,
                         crypto_keyring_count(g->kr), crypto_keyring_count(g->kr) == 1 ? "" : "s",
                         crypto_keyring_key_id(g->kr, 0));
        if (g->next_plaintext && !was_plaintext) {
                warn_plaintext();
                ev_timer_again(g->loop, &g->plaintext_timer);
        } else if (!g->next_plaintext)
                ev_timer_stop(g->loop, &g->plaintext_timer);
        arm_tick(g);
}

/* ---- start ------------------------------------------------------------------ */

/*
 * The boot epoch goes up at every start, even when the state database was
 * lost: it is at least the wall clock in seconds, so peers that remember an
 * older epoch of ours never take this run's packets for replays.
 */
static int load_self(struct gossip *g, uint64_t *ret_incarnation) {
        struct store *s = agent_store(g->agent);
        _cleanup_free_ char *text = NULL;
        uint64_t epoch = 0, inc = 0, wall = util_now_real_us() / USEC_PER_SEC;
        json_t *o;
        int r;

        r = store_state_get(s, STORE_TABLE_AGENT, GOSSIP_STORE_SELF, &text, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0) {
                o = json_loads(text, 0, NULL);
                if (json_is_integer(json_object_get(o, "boot_epoch")) &&
                    json_integer_value(json_object_get(o, "boot_epoch")) >= 0)
                        epoch = (uint64_t) json_integer_value(json_object_get(o, "boot_epoch"));
                if (json_is_integer(json_object_get(o, "incarnation")) &&
                    json_integer_value(json_object_get(o, "incarnation")) >= 0)
                        inc = (uint64_t) json_integer_value(json_object_get(o, "incarnation"));
                json_decref(o);
        }
        g->epoch = epoch + 1 > wall ? epoch + 1 : wall;
        *ret_incarnation = inc;
        return 0;
}

struct seed_list {
        struct wire_addr addrs[GOSSIP_SEEDS_MAX];
        size_t n;
};

static void seed_add(struct seed_list *l, const struct wire_addr *a) {
        if (l->n >= ELEMENTSOF(l->addrs))
                return;
        for (size_t i = 0; i < l->n; i++)
                if (wire_addr_equal(&l->addrs[i], a))
                        return;
        l->addrs[l->n++] = *a;
}

/* Remembered members (not those that left) as extra seeds for a rejoin. */
static int seed_from_store(const char *key, const char *value, uint64_t updated_us, void *userdata) {
        struct seed_list *l = userdata;
        struct net_addr na;
        struct wire_addr wa;
        json_t *o;
        const char *addr, *state;
        (void) key;
        (void) updated_us;

        o = json_loads(value, 0, NULL);
        addr = json_string_value(json_object_get(o, "addr"));
        state = json_string_value(json_object_get(o, "state"));
        if (addr && state && strcmp(state, "left") != 0 && net_addr_parse(addr, &na) == 0 && net_to_wire(&na, &wa))
                seed_add(l, &wa);
        json_decref(o);
        return 0;
}

/*
 * The address we tell others to reach us at. A wildcard bind says nothing,
 * so we ask the kernel which source address it would use towards the first
 * join address (a connected UDP socket sends nothing).
 */
static int advertise_address(const struct agentd_config *c, struct net *n, struct wire_addr *ret) {
        struct net_addr a, dst, src = { .len = sizeof(src.ss) };
        int fd;

        if (net_addr_parse(c->node_bind, &a) < 0)
                return -EINVAL;
        if (!((a.ss.ss_family == AF_INET &&
               ((struct sockaddr_in *) &a.ss)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
              (a.ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *) &a.ss)->sin6_addr)))) {
                if (a.ss.ss_family == AF_INET)
                        ((struct sockaddr_in *) &a.ss)->sin_port = htons(net_local_port(n));
                return net_to_wire(&a, ret) ? 0 : -EINVAL;
        }
        if (c->n_join == 0 || net_addr_resolve(c->join[0], &dst) < 0 || dst.ss.ss_family != a.ss.ss_family)
                return -EADDRNOTAVAIL;
        fd = socket(dst.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) &dst.ss, dst.len) < 0 ||
            getsockname(fd, (struct sockaddr *) &src.ss, &src.len) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        close(fd);
        if (src.ss.ss_family == AF_INET)
                ((struct sockaddr_in *) &src.ss)->sin_port = htons(net_local_port(n));
        else
                ((struct sockaddr_in6 *) &src.ss)->sin6_port = htons(net_local_port(n));
        return net_to_wire(&src, ret) ? 0 : -EINVAL;
}

static void start_join(struct gossip *g, const struct agentd_config *c) {
        struct seed_list seeds = {};
        size_t configured;
        int r;

        for (size_t i = 0; i < c->n_join; i++) {
                struct net_addr na;
                struct wire_addr wa;

                r = net_addr_resolve(c->join[i], &na);
                if (r < 0 || !net_to_wire(&na, &wa)) {
                        log_warning("gossip: cluster.join: cannot resolve %s; skipping it", c->join[i]);
                        continue;
                }
                seed_add(&seeds, &wa);
        }
        configured = seeds.n;
        (void) store_state_foreach(agent_store(g->agent), STORE_TABLE_MEMBERS, seed_from_store, &seeds);
        if (seeds.n == 0) {
                log_info("gossip: no one to join (cluster.join is empty and no members are remembered); "
                         "waiting for others to join us");
                return;
        }
        log_info("gossip: joining through %zu configured and %zu remembered address%s", configured,
                 seeds.n - configured, seeds.n - configured == 1 ? "" : "es");
        /* Our own address among the seeds is the core's to skip; if it was the only one, we found the cluster. */
        r = membership_join(g->m, util_now_mono_us(), seeds.addrs, seeds.n);
        if (r < 0)
                log_error("gossip: cannot start joining: %s", strerror(-r));
        else if (membership_joined(g->m))
                log_info("gossip: cluster.join names only this node: founding the cluster");
}

int gossip_new(struct agent *a, struct gossip **ret) {
        const struct agentd_config *c = agent_config(a);
        struct net_options nopts = {
                .host = c->bind_host,
                .port = c->bind_port,
                .max_datagram = GOSSIP_DATAGRAM_MAX,
                .max_frame = CRYPTO_FRAME_MAX,
                .max_outbound = GOSSIP_PENDING_MAX + GOSSIP_SYNC_PENDING_MAX,
                /* Every agent reports to the leader at once after an election. */
                .max_conns = GOSSIP_INBOUND_MAX,
        };
        struct net_callbacks ncb = { .datagram = on_datagram, .frame = on_frame, .reply = on_reply };
        struct membership_config cfg;
        struct membership_rng rng;
        struct wire_addr self;
        _cleanup_free_ char *error = NULL;
        char addr[WIRE_ADDR_STRLEN];
        uint64_t incarnation = 0;
        uint8_t meta[1];
        struct gossip *g;
        int r;

        r = crypto_init();
        if (r < 0) {
                log_error("gossip: cannot initialise libsodium");
                return r;
        }
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->agent = a;
        g->loop = agent_loop(a);
        g->started_mono_us = util_now_mono_us();
        ev_timer_init(&g->tick, on_tick, 0., 0.);
        ev_timer_init(&g->reject_timer, on_reject_summary, 0., 0.);
        ev_timer_init(&g->plaintext_timer, on_plaintext_timer, 0.,
                      (double) GOSSIP_PLAINTEXT_WARN_US / 1e6);
        ev_timer_init(&g->leave_timer, on_leave_timeout, (double) GOSSIP_LEAVE_TIMEOUT_US / 1e6, 0.);
        g->tick.data = g->reject_timer.data = g->plaintext_timer.data = g->leave_timer.data = g;
        if (getrandom(&g->rng, sizeof(g->rng), 0) != sizeof(g->rng))
                g->rng = util_now_real_us() ^ ((uint64_t) getpid() << 32);

        g->cluster = strdup(c->cluster_name);
        if (!g->cluster) {
                r = -ENOMEM;
                goto fail;
        }
        g->sender_id = crypto_sender_id(c->node_name);

        r = build_membership_config(c, &cfg, &error);
        if (r < 0) {
                log_error("%s", error ? error : "gossip: invalid timings");
                goto fail;
        }
        r = load_keyring(c, &g->kr, &error);
        if (r < 0) {
                log_error("cluster.keyring: %s", error ? error : strerror(-r));
                goto fail;
        }
        if (!g->kr) {
                warn_plaintext();
                ev_timer_again(g->loop, &g->plaintext_timer);
        } else
                log_info("gossip: keyring %s: %zu key%s, primary key id %08" PRIx32, c->keyring,
                         crypto_keyring_count(g->kr), crypto_keyring_count(g->kr) == 1 ? "" : "s",
                         crypto_keyring_key_id(g->kr, 0));

        r = replay_new(0, &g->replay);
        if (r < 0)
                goto fail;
        r = load_self(g, &incarnation);
        if (r < 0) {
                log_error("gossip: cannot read the persisted incarnation: %s", strerror(-r));
                goto fail;
        }

        ncb.userdata = g;
        r = net_new(g->loop, &nopts, &ncb, &g->net);
        if (r < 0) {
                log_error("gossip: cannot bind %s (UDP and TCP): %s", c->node_bind, strerror(-r));
                goto fail;
        }
        r = advertise_address(c, g->net, &self);
        if (r < 0) {
                log_error("gossip: node.bind %s is a wildcard and no route to cluster.join tells which "
                          "address to advertise; bind a specific address", c->node_bind);
                goto fail;
        }

        rng = (struct membership_rng) { .next = rng_next, .ctx = g };
        meta[0] = !c->voter ? GOSSIP_META_ROLE_NONVOTER :
                  c->role == CONFIG_ROLE_WITNESS ? GOSSIP_META_ROLE_WITNESS : GOSSIP_META_ROLE_VOTER;
        r = membership_new(&cfg, c->node_name, &self, incarnation, meta, sizeof(meta), &rng, &g->m);
        if (r < 0) {
                log_error("gossip: cannot start the membership core: %s", strerror(-r));
                goto fail;
        }
        /* On disk before the first packet, so no epoch is ever used twice. */
        r = persist_self(g, true);
        if (r < 0) {
                log_error("gossip: cannot persist the boot epoch: %s", strerror(-r));
                goto fail;
        }
        log_info("gossip: %s at %s, incarnation %" PRIu64 ", boot epoch %" PRIu64 ", profile %s, %s",
                 c->node_name, wire_addr_to_string(&self, addr), incarnation, g->epoch,
                 config_profile_to_string(c->profile), g->kr ? "encrypted" : "plaintext");

        start_join(g, c);
        gossip_drain(g);
        *ret = g;
        return 0;
fail:
        gossip_free(g);
        return r;
}

void gossip_free(struct gossip *g) {
        if (!g)
                return;
        ev_timer_stop(g->loop, &g->tick);
        ev_timer_stop(g->loop, &g->reject_timer);
        ev_timer_stop(g->loop, &g->plaintext_timer);
        ev_timer_stop(g->loop, &g->leave_timer);
        net_free(g->net);
        membership_free(g->m);
        replay_free(g->replay);
        crypto_keyring_free(g->kr);
        crypto_keyring_free(g->next_kr);
        free(g->cluster);
        free(g);
}

int gossip_leave(struct gossip *g) {
        int r;

        if (!g)
                return 0;
        if (g->leaving)
                return 1;
        r = membership_leave(g->m, util_now_mono_us());
        if (r < 0)
                return 0;
        g->leaving = true;
        log_info("gossip: leaving the cluster");
        ev_timer_start(g->loop, &g->leave_timer);
        gossip_drain(g);
        return 1;
}

/* ---- control verbs ------------------------------------------------------------ */

static int cmp_info(const void *a, const void *b) {
        const struct membership_member_info *x = a, *y = b;

        return strcmp(x->name, y->name);
}

json_t *gossip_verb_members(struct gossip *g, json_t *args) {
        _cleanup_free_ struct membership_member_info *infos = NULL;
        size_t slots = membership_slots(g->m), n = 0;
        uint64_t now_mono = util_now_mono_us(), now_real = util_now_real_us();
        json_t *list;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "members takes no arguments");
        infos = calloc(slots ? slots : 1, sizeof(*infos));
        list = json_array();
        if (!infos || !list) {
                json_decref(list);
                return NULL;
        }
        for (size_t i = 0; i < slots; i++)
                if (membership_member_at(g->m, i, &infos[n]) == 0)
                        n++;
        qsort(infos, n, sizeof(*infos), cmp_info);
        for (size_t i = 0; i < n; i++) {
                const struct membership_member_info *m = &infos[i];
                /* The core knows no time before its first input: our own entry dates from start. */
                uint64_t changed = m->self && !m->state_changed_us ? g->started_mono_us : m->state_changed_us;
                uint64_t ago = now_mono > changed ? now_mono - changed : 0;
                uint64_t real = now_real > ago ? now_real - ago : 0;
                char addr[WIRE_ADDR_STRLEN], ts[UTIL_TS_MAX];
                json_t *o;

                o = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:I, s:I, s:o}",
                              "name", m->name,
                              "addr", wire_addr_to_string(&m->addr, addr),
                              "state", membership_state_to_string(m->state),
                              "incarnation", (json_int_t) m->incarnation,
                              "self", m->self,
                              "last_change", util_format_ts(real, ts),
                              "last_change_us", (json_int_t) real,
                              "last_change_ago_us", (json_int_t) ago,
                              "rtt_us", m->rtt_us ? json_integer(m->rtt_us) : json_null());
                if (!o || json_array_append_new(list, o) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return ctlproto_ok(json_pack("{s:o}", "members", list));
}

json_t *gossip_verb_force_leave(struct gossip *g, json_t *args) {
        struct membership_member_info info;
        const char *key, *node;
        const char *was;
        json_t *v;
        int r;

        json_object_foreach(args, key, v) {
                if (strcmp(key, "node") != 0)
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        }
        node = json_string_value(json_object_get(args, "node"));
        if (!node || !*node)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "force-leave needs \"node\": the member's name");
        if (membership_member_get(g->m, node, &info) < 0)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "no member named \"%.64s\"", node);
        was = membership_state_to_string(info.state);
        r = membership_force_leave(g->m, util_now_mono_us(), node);
        switch (r) {
        case 0:
                break;
        case -EINVAL:
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "%s is this node; stop it with SIGTERM to leave",
                                      node);
        case -EBUSY:
                return ctlproto_error(CTL_ERR_FAILED, "%s is alive; only a suspect or dead member can be forced "
                                      "to leave", node);
        case -EALREADY:
                return ctlproto_error(CTL_ERR_FAILED, "%s has already left", node);
        case -ENOENT:
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "no member named \"%.64s\"", node);
        default:
                return ctlproto_error(CTL_ERR_FAILED, "force-leave of %s failed: %s", node, strerror(-r));
        }
        log_notice("gossip: %s forced to leave by an operator (was %s)", node, was);
        gossip_drain(g);
        return ctlproto_ok(json_pack("{s:s, s:s, s:s}", "node", node, "previous_state", was, "state", "left"));
}

int gossip_status(struct gossip *g, json_t *status) {
        struct membership_census census;
        struct net_stats ns;
        uint64_t total = 0;
        json_t *reasons, *members, *gossip;

        membership_census(g->m, &census);
        net_get_stats(g->net, &ns);
        reasons = json_object();
        if (!reasons)
                return -ENOMEM;
        for (int i = 0; i < _GOSSIP_REJECT_MAX; i++) {
                total += g->rejected[i];
                if (g->rejected[i] &&
                    json_object_set_new(reasons, reject_to_string(i), json_integer((json_int_t) g->rejected[i])) < 0) {
                        json_decref(reasons);
                        return -ENOMEM;
                }
        }
        members = json_pack("{s:I, s:I, s:I, s:I}", "alive", (json_int_t) census.alive,
                            "suspect", (json_int_t) census.suspect, "dead", (json_int_t) census.dead,
                            "left", (json_int_t) census.left);
        gossip = json_pack("{s:I, s:I, s:b, s:b, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                           "incarnation", (json_int_t) membership_incarnation(g->m),
                           "boot_epoch", (json_int_t) g->epoch,
                           "joined", membership_joined(g->m),
                           "encrypted", g->kr != NULL,
                           "keys", (json_int_t) (g->kr ? crypto_keyring_count(g->kr) : 0),
                           "leaving", g->leaving,
                           "health_score", (json_int_t) membership_health_score(g->m),
                           "packets_sent", (json_int_t) ns.udp_sent,
                           "packets_received", (json_int_t) ns.udp_received,
                           "bytes_sent", (json_int_t) (ns.udp_sent_bytes + ns.tcp_sent_bytes),
                           "bytes_received", (json_int_t) (ns.udp_received_bytes + ns.tcp_received_bytes),
                           "pushpull_connects", (json_int_t) ns.tcp_connects,
                           "pushpull_accepted", (json_int_t) ns.tcp_accepted,
                           "rejected", (json_int_t) total,
                           "rejected_by_reason", reasons);
        /* set_new takes its reference even when it fails, and refuses NULL. */
        if (json_object_set_new(status, "members", members) < 0) {
                json_decref(gossip);
                return -ENOMEM;
        }
        if (json_object_set_new(status, "gossip", gossip) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- election transport --------------------------------------------------------- */

void gossip_set_election_handlers(struct gossip *g, gossip_election_fn on_body, gossip_change_fn on_change,
                                  void *userdata) {
        g->on_election = on_body;
        g->on_change = on_change;
        g->election_userdata = userdata;
}

int gossip_send_to(struct gossip *g, const char *name, const uint8_t *body, size_t len) {
        struct membership_member_info info;

        if (membership_member_get(g->m, name, &info) < 0 || info.state == MEMBERSHIP_LEFT)
                return -ENOENT;
        if (!wire_addr_valid(&info.addr))
                return -EINVAL;
        send_body(g, &info.addr, body, len);
        return 0;
}

const struct membership *gossip_membership(const struct gossip *g) {
        return g->m;
}

/* ---- table sync transport -------------------------------------------------------- */

void gossip_set_sync_handlers(struct gossip *g, const struct gossip_sync_handlers *h) {
        g->sync = h ? *h : (struct gossip_sync_handlers) {};
}

int gossip_sync_exchange(struct gossip *g, const char *name, const uint8_t *body, size_t len, uint64_t *ret_cookie) {
        _cleanup_free_ uint8_t *frame = NULL;
        struct membership_member_info info;
        struct net_addr addr;
        size_t flen, cap = len + CRYPTO_OVERHEAD_ENCRYPTED;
        uint64_t cookie;
        int r;

        if (membership_member_get(g->m, name, &info) < 0 || info.state == MEMBERSHIP_LEFT)
                return -ENOENT;
        if (!wire_addr_valid(&info.addr) || !wire_to_net(&info.addr, &addr))
                return -EINVAL;
        if (g->sync_pending >= GOSSIP_SYNC_PENDING_MAX)
                return -EBUSY;
        frame = malloc(cap);
        if (!frame)
                return -ENOMEM;
        r = seal(g, body, len, frame, cap, &flen);
        if (r < 0)
                return r;
        cookie = ++g->next_cookie | GOSSIP_SYNC_COOKIE;
        r = net_exchange(g->net, &addr, frame, flen, cookie);
        if (r < 0)
                return r;
        g->sync_pending++;
        *ret_cookie = cookie & ~GOSSIP_SYNC_COOKIE;
        return 0;
}
