/*
 * Leader: the election core in the agent's loop. See leader.h. This file is
 * plumbing: inputs are timer expiries, election bodies from gossip and
 * membership changes; outputs are drained strictly in order, because a
 * PERSIST must be on disk before the SEND that follows it (a vote must
 * never be sent that a crash could make us forget).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <ev.h>
#include <jansson.h>

#include "agentd/agent.h"
#include "agentd/gossip.h"
#include "agentd/leader.h"
#include "common/ctlproto.h"
#include "core/election.h"
#include "core/membership.h"
#include "core/wire.h"
#include "io/journal.h"
#include "io/store.h"

struct leader {
        struct agent *agent;
        struct gossip *gossip;
        struct election *e;
        uint64_t rng;
        ev_timer timer;

        /* What the change handler was last told about. */
        void (*on_change)(void *userdata);
        void *change_userdata;
        char seen_leader[ELECTION_NAME_MAX];
        uint64_t seen_term;
        bool seen_active;
        uint64_t seen_round;

        /* The member list last given to the core (sorted by name), to pass only real changes. */
        struct election_member *members;
        char (*names)[ELECTION_NAME_MAX];
        size_t n_members;
};

/* splitmix64: election timeouts need spread, not secrecy. */
static uint64_t rng_next(void *ctx) {
        struct leader *l = ctx;

        return util_splitmix64(&l->rng);
}

static enum election_role role_from_meta(const uint8_t *meta, size_t len) {
        /* A member that announces no role (or one we do not know) never counts as a voter. */
        if (len < 1)
                return ELECTION_ROLE_NONVOTER;
        switch (meta[0]) {
        case GOSSIP_META_ROLE_VOTER:
                return ELECTION_ROLE_VOTER;
        case GOSSIP_META_ROLE_WITNESS:
                return ELECTION_ROLE_WITNESS;
        default:
                return ELECTION_ROLE_NONVOTER;
        }
}

static int persist(struct leader *l, uint64_t term, const char *vote) {
        struct store *s = agent_store(l->agent);
        _cleanup_free_ char *text = NULL;
        json_t *o;
        int r;

        o = json_pack("{s:I, s:s?}", "term", (json_int_t) term, "vote", vote && vote[0] ? vote : NULL);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        r = store_state_put(s, STORE_TABLE_ELECTION, LEADER_STORE_KEY, text, util_now_real_us());
        if (r < 0)
                return r;
        return store_commit(s);
}

static void send_msg(struct leader *l, const struct election_output *o) {
        struct wire_election w = {
                .kind = (uint8_t) o->msg.type,
                .granted = o->msg.granted,
                .term = o->msg.term,
                .round = o->msg.round,
                .from = o->msg.from,
                .from_len = (uint8_t) strnlen(o->msg.from, WIRE_NAME_MAX + 1),
        };
        uint8_t body[WIRE_ELECTION_MAX];
        size_t len;

        if (wire_election_encode(&w, body, sizeof(body), &len) < 0)
                return;
        /* An unknown or departed member is loss, which the protocol tolerates. */
        (void) gossip_send_to(l->gossip, o->to, body, len);
}

/* Tells the balancer when leader, term, our activity or our lease changed since it last heard. */
static void notify(struct leader *l) {
        const char *name = election_leader(l->e);
        bool active = election_is_active(l->e, util_now_mono_us());

        /* A renewed lease counts too: the balancer may be waiting for a quorum round. */
        if (strcmp(name ? name : "", l->seen_leader) == 0 && election_term(l->e) == l->seen_term &&
            active == l->seen_active && election_quorum_round(l->e) == l->seen_round)
                return;
        l->seen_round = election_quorum_round(l->e);
        snprintf(l->seen_leader, sizeof(l->seen_leader), "%s", name ? name : "");
        l->seen_term = election_term(l->e);
        l->seen_active = active;
        if (l->on_change)
                l->on_change(l->change_userdata);
}

static void arm(struct leader *l) {
        uint64_t deadline = election_next_deadline(l->e), now = util_now_mono_us();

        ev_timer_stop(agent_loop(l->agent), &l->timer);
        if (deadline == UINT64_MAX)
                return;
        ev_timer_set(&l->timer, deadline > now ? (double) (deadline - now) / 1e6 : 0., 0.);
        ev_timer_start(agent_loop(l->agent), &l->timer);
}

/*
 * Walks the outputs in order. When a PERSIST cannot be committed, the rest
 * of the list is dropped: sending what depends on an unwritten vote could
 * make us vote twice in a term after a crash, while dropping it is loss.
 */
static void drain(struct leader *l) {
        const struct election_output *outs;
        size_t n;

        outs = election_outputs(l->e, &n);
        for (size_t i = 0; i < n; i++) {
                const struct election_output *o = &outs[i];
                int r;

                switch (o->kind) {
                case ELECTION_OUT_PERSIST:
                        r = persist(l, o->term, o->vote);
                        if (r < 0) {
                                log_error("leader: cannot persist term %" PRIu64 ": %s; dropping %zu messages",
                                          o->term, strerror(-r), n - i - 1);
                                i = n;
                        }
                        break;
                case ELECTION_OUT_SEND:
                        send_msg(l, o);
                        break;
                case ELECTION_OUT_EVENT:
                        agent_emit_event(l->agent, &(struct event) {
                                .kind = o->event,
                                .subject = o->subject[0] ? o->subject : NULL,
                                .detail = o->detail,
                                .term = o->term,
                        });
                        break;
                default:
                        break;
                }
        }
        election_outputs_clear(l->e);
        arm(l);
        notify(l);
}

static int cmp_member(const void *a, const void *b) {
        const struct election_member *x = a, *y = b;

        return strcmp(x->name, y->name);
}

/*
 * Gives the core the members that joined and have not left (dead ones
 * too: they count until force-leave), but only when names or roles really
 * changed: a new list voids the acknowledgements gathered so far. The
 * membership core lists ourselves too, so n <= 1 means we know no one.
 */
static void refresh_members(struct leader *l) {
        const struct membership *m = gossip_membership(l->gossip);
        size_t slots = membership_slots(m), n = 0;
        struct election_member *list;
        char (*names)[ELECTION_NAME_MAX];
        bool same;
        int r;

        list = calloc(slots ? slots : 1, sizeof(*list));
        names = calloc(slots ? slots : 1, sizeof(*names));
        if (!list || !names) {
                free(list);
                free(names);
                return;
        }
        for (size_t i = 0; i < slots && n < ELECTION_MEMBERS_MAX; i++) {
                struct membership_member_info info;

                if (membership_member_at(m, i, &info) < 0 || info.state == MEMBERSHIP_LEFT)
                        continue;
                snprintf(names[n], sizeof(names[n]), "%s", info.name);
                list[n].name = names[n];
                list[n].role = role_from_meta(info.meta, info.meta_len);
                n++;
        }
        /*
         * A node that has neither joined a cluster nor heard from anyone
         * would see a voter set of one, itself, and elect itself: a split
         * brain the moment it meets the real cluster. Until then it gets no
         * voter set at all (so it neither votes nor campaigns). A node whose
         * only seed is itself counts as joined: it founds the cluster.
         */
        if (!membership_joined(m) && n <= 1)
                n = 0;
        qsort(list, n, sizeof(*list), cmp_member);
        same = n == l->n_members;
        for (size_t i = 0; same && i < n; i++)
                same = list[i].role == l->members[i].role && strcmp(list[i].name, l->members[i].name) == 0;
        if (same && l->members) {
                free(list);
                free(names);
                return;
        }
        r = election_set_members(l->e, list, n, util_now_mono_us());
        if (r < 0) {
                log_error("leader: cannot set %zu members: %s", n, strerror(-r));
                free(list);
                free(names);
                return;
        }
        free(l->members);
        free(l->names);
        /* list[] points into names[]; both move to the leader together. */
        l->members = list;
        l->names = names;
        l->n_members = n;
        drain(l);
}

static void on_change(void *userdata) {
        refresh_members(userdata);
}

static void on_body(const uint8_t *body, size_t len, void *userdata) {
        struct leader *l = userdata;
        struct wire_election w;
        struct election_msg msg = {};
        int r;

        r = wire_election_decode(body, len, &w);
        if (r < 0) {
                log_debug("leader: malformed election body (%zu bytes): %s", len, strerror(-r));
                return;
        }
        msg.type = (enum election_msg_type) w.kind;
        msg.term = w.term;
        msg.granted = w.granted;
        msg.round = w.round;
        memcpy(msg.from, w.from, w.from_len);
        msg.from[w.from_len] = '\0';
        r = election_receive(l->e, &msg, util_now_mono_us());
        if (r == -ENOENT) {
                /* A member gossip has just learned of: catch up, then try once more. */
                refresh_members(l);
                r = election_receive(l->e, &msg, util_now_mono_us());
        }
        if (r < 0 && r != -ESTALE && r != -ENOENT)
                log_debug("leader: %s from %s refused: %s", election_msg_type_to_string(msg.type), msg.from,
                          strerror(-r));
        drain(l);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        struct leader *l = w->data;
        (void) loop;
        (void) revents;

        election_tick(l->e, util_now_mono_us());
        drain(l);
}

/* Reads the persisted (term, vote); a missing row is a new node, a bad one an error. */
static int load(struct leader *l, uint64_t *ret_term, char ret_vote[static ELECTION_NAME_MAX]) {
        _cleanup_free_ char *text = NULL;
        json_t *o, *jt, *jv;
        int r;

        r = store_state_get(agent_store(l->agent), STORE_TABLE_ELECTION, LEADER_STORE_KEY, &text, NULL);
        if (r == -ENOENT) {
                *ret_term = 0;
                ret_vote[0] = '\0';
                return 0;
        }
        if (r < 0)
                return r;
        o = json_loads(text, 0, NULL);
        jt = o ? json_object_get(o, "term") : NULL;
        jv = o ? json_object_get(o, "vote") : NULL;
        if (!json_is_integer(jt) || json_integer_value(jt) < 0 || (jv && !json_is_null(jv) && !json_is_string(jv)) ||
            (json_is_string(jv) && strlen(json_string_value(jv)) >= ELECTION_NAME_MAX)) {
                json_decref(o);
                return -EBADMSG;
        }
        *ret_term = (uint64_t) json_integer_value(jt);
        snprintf(ret_vote, ELECTION_NAME_MAX, "%s", json_is_string(jv) ? json_string_value(jv) : "");
        json_decref(o);
        return 0;
}

int leader_new(struct agent *a, struct gossip *g, struct leader **ret) {
        const struct agentd_config *c = agent_config(a);
        struct election_config cfg;
        struct election_rng rng;
        char vote[ELECTION_NAME_MAX];
        uint64_t term;
        struct leader *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l) {
                log_error("leader: out of memory");
                return -ENOMEM;
        }
        l->agent = a;
        l->gossip = g;
        if (getrandom(&l->rng, sizeof(l->rng), 0) != sizeof(l->rng))
                l->rng = util_now_mono_us();
        r = load(l, &term, vote);
        if (r < 0) {
                /* Starting from term 0 could make us vote twice in a term: refuse to start. */
                log_error("leader: cannot load the persisted term and vote: %s", strerror(-r));
                free(l);
                return r;
        }
        cfg = c->election;      /* cluster.election, validated by the config loader */
        rng = (struct election_rng) { .next = rng_next, .ctx = l };
        r = election_new(&cfg, c->node_name, term, vote[0] ? vote : NULL, &rng, util_now_mono_us(), &l->e);
        if (r < 0) {
                log_error("leader: cannot start the election core: %s", strerror(-r));
                free(l);
                return r;
        }
        ev_init(&l->timer, on_timer);
        l->timer.data = l;
        gossip_set_election_handlers(g, on_body, on_change, l);
        refresh_members(l);
        drain(l);
        log_info("leader: following from term %" PRIu64 " as %s", term,
                 !c->voter ? "non-voter" : c->role == CONFIG_ROLE_WITNESS ? "witness" : "voter");
        *ret = l;
        return 0;
}

void leader_free(struct leader *l) {
        if (!l)
                return;
        ev_timer_stop(agent_loop(l->agent), &l->timer);
        gossip_set_election_handlers(l->gossip, NULL, NULL, NULL);
        election_free(l->e);
        free(l->members);
        free(l->names);
        free(l);
}

/*
 * "have" counts the voters (ourselves included) the membership core holds
 * alive: the ones a vote or a lease renewal could come from right now.
 */
static size_t voters_alive(struct leader *l) {
        size_t have = 0;

        for (size_t i = 0; i < l->n_members; i++) {
                struct membership_member_info info;

                if (l->members[i].role == ELECTION_ROLE_NONVOTER)
                        continue;
                if (membership_member_get(gossip_membership(l->gossip), l->members[i].name, &info) == 0 &&
                    info.state == MEMBERSHIP_ALIVE)
                        have++;
        }
        return have;
}

static json_t *quorum_json(struct leader *l) {
        size_t voters, need;

        election_quorum(l->e, &voters, &need);
        return json_pack("{s:I, s:I, s:I}", "have", (json_int_t) voters_alive(l), "need", (json_int_t) need,
                         "voters", (json_int_t) voters);
}

json_t *leader_verb(struct leader *l, json_t *args) {
        const char *name;
        json_t *q;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "leader takes no arguments");
        name = election_leader(l->e);
        q = quorum_json(l);
        if (!q)
                return NULL;
        return ctlproto_ok(json_pack("{s:s?, s:I, s:s, s:o, s:b, s:b, s:s}",
                                     "leader", name,
                                     "term", (json_int_t) election_term(l->e),
                                     "state", election_state_to_string(election_state(l->e)),
                                     "quorum", q,
                                     "voter", election_is_voter(l->e),
                                     "active", election_is_active(l->e, util_now_mono_us()),
                                     "node", membership_name(gossip_membership(l->gossip))));
}

int leader_status(struct leader *l, json_t *status) {
        const char *name = election_leader(l->e);
        json_t *q = quorum_json(l);

        if (!q || json_object_set_new(status, "quorum", q) < 0 ||
            json_object_set_new(status, "leader", name ? json_string(name) : json_null()) < 0 ||
            json_object_set_new(status, "term", json_integer((json_int_t) election_term(l->e))) < 0)
                return -ENOMEM;
        return 0;
}

const char *leader_current(struct leader *l) {
        return election_leader(l->e);
}

uint64_t leader_term(struct leader *l) {
        return election_term(l->e);
}

uint64_t leader_quorum_round(struct leader *l) {
        return election_quorum_round(l->e);
}

bool leader_active(struct leader *l) {
        return election_is_active(l->e, util_now_mono_us());
}

bool leader_accepts(struct leader *l, uint64_t term) {
        return election_accepts(l->e, term);
}

void leader_set_change_handler(struct leader *l, void (*fn)(void *userdata), void *userdata) {
        l->on_change = fn;
        l->change_userdata = userdata;
}
