/*
 * The simulator's engine: PRNG, event queue, virtual network, node faults,
 * recorders and the scenario driver. See sim.h for the model.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/membership.h"
#include "core/replay.h"
#include "core/wire.h"
#include "sim.h"

/* --- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* Mixes two values into one, for per-link constants that need no storage. */
static uint64_t mix2(uint64_t a, uint64_t b) {
        uint64_t x = a ^ (b * UINT64_C(0xd1b54a32d192ed03));

        return splitmix64(&x);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream) {
        uint64_t x = mix2(seed, stream + 1);

        for (size_t i = 0; i < 4; i++)
                r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r) {
        uint64_t *s = r->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

/* Lemire's multiply-shift with rejection: unbiased for any n. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n) {
        unsigned __int128 m;
        uint64_t lo;

        if (n <= 1)
                return 0;
        m = (unsigned __int128)sim_rng_next(r) * n;
        lo = (uint64_t)m;
        if (lo < n) {
                uint64_t t = -n % n;

                while (lo < t) {
                        m = (unsigned __int128)sim_rng_next(r) * n;
                        lo = (uint64_t)m;
                }
        }
        return (uint64_t)(m >> 64);
}

double sim_rng_double(struct sim_rng *r) {
        return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

/* --- small helpers ------------------------------------------------------- */

static const char *const view_names[_SIM_VIEW_MAX] = {
        [SIM_VIEW_NONE] = "none",
        [SIM_VIEW_ALIVE] = "alive",
        [SIM_VIEW_SUSPECT] = "suspect",
        [SIM_VIEW_DEAD] = "dead",
        [SIM_VIEW_LEFT] = "left",
};

const char *sim_view_to_string(enum sim_view v) {
        if ((unsigned)v >= _SIM_VIEW_MAX)
                return "?";
        return view_names[v];
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

uint64_t sim_percentile(uint64_t *v, size_t n, double p) {
        size_t rank;
        double r;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), cmp_u64);
        r = p / 100.0 * (double)n;
        rank = (size_t)r;
        if ((double)rank < r)
                rank++;
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1];
}

double sim_wall_seconds(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the simulation ------------------------------------------------------ */

enum pkt_kind {
        PKT_UDP,
        PKT_TCP,        /* a push-pull frame, reliable */
        PKT_TCP_FAIL,   /* the exchange's timer: fails it unless the answer came */
        PKT_APP,        /* an opaque datagram of the scenario's own protocol (sim_app_send) */
};

struct sim_pkt {
        uint32_t from, to;
        enum pkt_kind kind;
        uint64_t sent_at;
        uint64_t conn;          /* push-pull connection id (TCP), 0 for UDP */
        bool reply;             /* TCP: the answer of an exchange */
        bool injected;          /* replayed by a scenario: no loss, no partition */
        uint64_t epoch, seq;    /* the sender's envelope stamp (UDP) */
        size_t len;
        uint8_t data[];
};

enum ev_kind {
        EV_WAKE,
        EV_DELIVER,
};

struct sim_ev {
        uint64_t at;
        uint64_t seq;
        enum ev_kind kind;
        uint32_t node;
        uint64_t gen;
        struct sim_pkt *pkt;
};

struct sim_node {
        struct membership *m;
        enum sim_node_state state;
        uint64_t clock_offset;          /* node-local monotonic = virtual + offset */
        struct sim_rng rng;
        uint64_t wake_at;
        uint64_t wake_gen;
        bool wake_queued;
        uint64_t spin_at;               /* detects a core that never moves its deadline */
        uint32_t spin_count;
        struct replay *replay;          /* receive-side replay window (params.replay_window) */
        uint64_t epoch, seq;            /* our envelope stamps */
        uint64_t incarnation;           /* last seen: it must never go back */
        struct sim_pkt **queue;         /* receive queue while paused */
        size_t n_queue;
        uint32_t group;
        char name[16];
};

enum trace_kind { TRACE_VIEW, TRACE_NOTE };

struct trace_rec {
        uint64_t t;
        enum trace_kind kind;
        uint32_t obs, subj;
        uint8_t old, new;
        uint64_t inc;
        char note[96];
};

#define TRACE_RING 32768

struct sim {
        struct sim_params p;
        uint64_t now;
        uint64_t seq;
        struct sim_ev *heap;
        size_t n_heap, cap_heap;
        struct sim_rng net_rng;
        struct sim_rng scen_rng;
        struct sim_node *node;
        uint32_t n;
        bool partitioned;
        uint64_t next_conn;
        uint8_t *conn_open;             /* per exchange id: 1 while the initiator waits */
        size_t cap_conn;
        uint64_t probe_interval;
        struct membership_config cfg;
        uint64_t last_start;

        uint8_t *view;                  /* n*n enum sim_view */
        uint64_t *view_inc;
        uint64_t *view_since;
        uint32_t *alive_seen;           /* per observer: subjects seen alive */

        struct sim_stats st;
        sim_view_fn view_fn;
        void *view_ud;
        sim_tap_fn tap_fn;
        void *tap_ud;

        struct trace_rec *ring;
        size_t ring_next;
        uint64_t ring_total;
        int trace_level;

        struct sim_app_ops app;
        void *app_ud;

        bool failed;
        char fail_reason[512];
};

/* Glue to the real core, at the end of this file. */
static int core_new(struct sim *s, uint32_t i);
static void core_free(struct sim *s, uint32_t i);
static int core_start(struct sim *s, uint32_t i, int64_t join);
static void core_tick(struct sim *s, uint32_t i);
static int core_receive(struct sim *s, uint32_t i, const struct sim_pkt *pkt);
static void core_connect_failed(struct sim *s, uint32_t i, const struct sim_pkt *pkt);
static uint64_t core_deadline(struct sim *s, uint32_t i);
static void core_drain(struct sim *s, uint32_t i);
static uint64_t core_incarnation(const struct sim *s, uint32_t i);
static uint64_t core_probe_interval(const struct sim *s);

void sim_params_default(struct sim_params *p, const char *name, uint64_t seed, uint32_t nodes) {
        *p = (struct sim_params) {
                .name = name,
                .seed = seed,
                .nodes = nodes,
                .latency_us = 100,
                .latency_spread_us = 200,
                .jitter_us = 100,
                .loss = 0.0,
                .conn_timeout_us = 5 * SIM_USEC_PER_SEC,
        };
}

uint64_t sim_now(const struct sim *s) { return s->now; }
uint32_t sim_nodes(const struct sim *s) { return s->n; }
const char *sim_name(const struct sim *s) { return s->p.name; }
uint64_t sim_seed(const struct sim *s) { return s->p.seed; }
uint64_t sim_probe_interval(const struct sim *s) { return s->probe_interval; }
const struct membership_config *sim_config(const struct sim *s) { return &s->cfg; }

/*
 * As membership.h documents it: mult * max(1, log10 n) * interval, times the
 * max multiplier; log10 rounded up, since this only sizes bounds (and the
 * tests link no libm).
 */
uint64_t sim_suspicion_max(const struct sim *s) {
        uint64_t lg = 0;

        for (uint64_t p = 1; p < s->n; p *= 10)
                lg++;
        if (lg < 1)
                lg = 1;
        return s->cfg.suspicion_mult * lg * s->cfg.probe_interval_us * s->cfg.suspicion_max_timeout_mult;
}
const struct sim_stats *sim_stats(const struct sim *s) { return &s->st; }

void sim_on_view(struct sim *s, sim_view_fn fn, void *userdata) {
        s->view_fn = fn;
        s->view_ud = userdata;
}

void sim_on_tap(struct sim *s, sim_tap_fn fn, void *userdata) {
        s->tap_fn = fn;
        s->tap_ud = userdata;
}

/* --- trace --------------------------------------------------------------- */

static struct trace_rec *trace_push(struct sim *s) {
        struct trace_rec *r = &s->ring[s->ring_next];

        s->ring_next = (s->ring_next + 1) % TRACE_RING;
        s->ring_total++;
        memset(r, 0, sizeof(*r));
        r->t = s->now;
        return r;
}

static void trace_format(const struct sim *s, const struct trace_rec *r, FILE *f) {
        if (r->kind == TRACE_NOTE)
                fprintf(f, "%12.6f  %s\n", (double)r->t / 1e6, r->note);
        else
                fprintf(f, "%12.6f  %s sees %s: %s -> %s (incarnation %" PRIu64 ")\n",
                        (double)r->t / 1e6, s->node[r->obs].name, s->node[r->subj].name,
                        sim_view_to_string(r->old), sim_view_to_string(r->new), r->inc);
}

void sim_note(struct sim *s, const char *fmt, ...) {
        struct trace_rec *r = trace_push(s);
        va_list ap;

        r->kind = TRACE_NOTE;
        va_start(ap, fmt);
        vsnprintf(r->note, sizeof(r->note), fmt, ap);
        va_end(ap);
        if (s->trace_level > 0)
                trace_format(s, r, stderr);
}

/* "SIM_SCALE=0.1 " when the run was scaled, so the reproducing command is exact. */
static const char *scale_env(void) {
        static char buf[64];
        const char *e = getenv("SIM_SCALE");

        if (!e || !*e || sim_scale() == 1.0)
                return "";
        snprintf(buf, sizeof(buf), "SIM_SCALE=%s ", e);
        return buf;
}

static void trace_dump(const struct sim *s, const char *path) {
        FILE *f = fopen(path, "w");
        size_t n = s->ring_total < TRACE_RING ? (size_t)s->ring_total : TRACE_RING;
        size_t start = (s->ring_next + TRACE_RING - n) % TRACE_RING;

        if (!f)
                return;
        fprintf(f, "# %s seed=0x%016" PRIx64 " nodes=%u: %s\n", s->p.name, s->p.seed, s->n,
                s->fail_reason);
        fprintf(f, "# reproduce: %sSIM_SEED=0x%016" PRIx64 " ./tests/sim/%s\n", scale_env(), s->p.seed,
                s->p.name);
        fprintf(f, "# last %zu of %" PRIu64 " trace records (view changes and scenario notes)\n",
                n, s->ring_total);
        for (size_t k = 0; k < n; k++)
                trace_format(s, &s->ring[(start + k) % TRACE_RING], f);
        fclose(f);
}

void sim_fail(struct sim *s, const char *fmt, ...) {
        char path[256];
        va_list ap;

        if (s->failed)
                return;
        s->failed = true;
        va_start(ap, fmt);
        vsnprintf(s->fail_reason, sizeof(s->fail_reason), fmt, ap);
        va_end(ap);
        snprintf(path, sizeof(path), "/tmp/sim_%s_%016" PRIx64 ".trace", s->p.name, s->p.seed);
        sim_note(s, "FAIL: %s", s->fail_reason);
        trace_dump(s, path);
        printf("FAIL %s seed=0x%016" PRIx64 " at t=%.6fs: %s\n", s->p.name, s->p.seed,
               (double)s->now / 1e6, s->fail_reason);
        printf("  reproduce: %sSIM_SEED=0x%016" PRIx64 " ./tests/sim/%s   (trace: %s)\n",
               scale_env(), s->p.seed, s->p.name, path);
        fflush(stdout);
}

bool sim_failed(const struct sim *s) {
        return s->failed;
}

/* --- event queue: a binary min-heap on (at, seq) --------------------------- */

static bool ev_before(const struct sim_ev *a, const struct sim_ev *b) {
        return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct sim_ev ev) {
        size_t i;

        if (s->n_heap == s->cap_heap) {
                size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
                struct sim_ev *h = realloc(s->heap, cap * sizeof(*h));

                if (!h)
                        abort();
                s->heap = h;
                s->cap_heap = cap;
        }
        ev.seq = s->seq++;
        i = s->n_heap++;
        while (i > 0) {
                size_t parent = (i - 1) / 2;

                if (!ev_before(&ev, &s->heap[parent]))
                        break;
                s->heap[i] = s->heap[parent];
                i = parent;
        }
        s->heap[i] = ev;
}

static struct sim_ev heap_pop(struct sim *s) {
        struct sim_ev top = s->heap[0], last = s->heap[--s->n_heap];
        size_t i = 0;

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= s->n_heap)
                        break;
                if (c + 1 < s->n_heap && ev_before(&s->heap[c + 1], &s->heap[c]))
                        c++;
                if (!ev_before(&s->heap[c], &last))
                        break;
                s->heap[i] = s->heap[c];
                i = c;
        }
        if (s->n_heap > 0)
                s->heap[i] = last;
        return top;
}

/* --- lifecycle ----------------------------------------------------------- */

int sim_new(const struct sim_params *p, struct sim **ret) {
        struct sim *s;
        const char *t;
        size_t nn;

        if (!p || p->nodes == 0 || p->nodes > 100000 || p->loss < 0.0 || p->loss > 1.0)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->p = *p;
        s->n = p->nodes;
        nn = (size_t)s->n * s->n;
        s->node = calloc(s->n, sizeof(*s->node));
        s->view = calloc(nn, 1);
        s->view_inc = calloc(nn, sizeof(*s->view_inc));
        s->view_since = calloc(nn, sizeof(*s->view_since));
        s->alive_seen = calloc(s->n, sizeof(*s->alive_seen));
        s->ring = calloc(TRACE_RING, sizeof(*s->ring));
        if (!s->node || !s->view || !s->view_inc || !s->view_since || !s->alive_seen || !s->ring) {
                sim_free(s);
                return -ENOMEM;
        }
        t = getenv("SIM_TRACE");
        s->trace_level = t ? atoi(t) : 0;
        /* Stream 0 is the network; node i draws from stream i + 1. */
        sim_rng_seed(&s->net_rng, p->seed, 0);
        sim_rng_seed(&s->scen_rng, p->seed, UINT64_C(1) << 40);
        for (uint32_t i = 0; i < s->n; i++) {
                struct sim_node *n = &s->node[i];

                sim_rng_seed(&n->rng, p->seed, (uint64_t)i + 1);
                /* Up to a day of unrelated uptime per host, never zero. */
                n->clock_offset = SIM_USEC_PER_SEC + sim_rng_below(&n->rng, UINT64_C(86400) * SIM_USEC_PER_SEC);
                snprintf(n->name, sizeof(n->name), "n%u", i);
                n->state = SIM_NODE_OFF;
        }
        {
                enum membership_profile prof = MEMBERSHIP_PROFILE_LAN;

                if (p->profile && (int)(prof = membership_profile_from_string(p->profile)) < 0) {
                        sim_free(s);
                        return -EINVAL;
                }
                if (membership_profile_defaults(prof, &s->cfg) < 0) {
                        sim_free(s);
                        return -EINVAL;
                }
                /* Every node of the simulation must fit, whatever the profile's cap. */
                if (s->cfg.max_members < s->n)
                        s->cfg.max_members = s->n;
        }
        s->probe_interval = core_probe_interval(s);
        *ret = s;
        return 0;
}

void sim_free(struct sim *s) {
        if (!s)
                return;
        for (size_t k = 0; k < s->n_heap; k++)
                free(s->heap[k].pkt);
        free(s->heap);
        free(s->conn_open);
        if (s->node)
                for (uint32_t i = 0; i < s->n; i++) {
                        core_free(s, i);
                        for (size_t k = 0; k < s->node[i].n_queue; k++)
                                free(s->node[i].queue[k]);
                        free(s->node[i].queue);
                }
        free(s->node);
        free(s->view);
        free(s->view_inc);
        free(s->view_since);
        free(s->alive_seen);
        free(s->ring);
        free(s);
}

/* --- scheduling ---------------------------------------------------------- */

/* Keeps exactly one live wakeup per node, at its core's next deadline. */
static void node_reschedule(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];
        uint64_t d;

        if (n->state != SIM_NODE_UP)
                return;
        d = n->m ? core_deadline(s, i) : UINT64_MAX;
        if (s->app.deadline) {
                uint64_t a = s->app.deadline(s, i, s->app_ud);

                if (a < d)
                        d = a;
        }
        if (d == UINT64_MAX)
                return;
        if (d < s->now)
                d = s->now;
        if (n->wake_queued && n->wake_at == d)
                return;
        n->wake_gen++;
        n->wake_at = d;
        n->wake_queued = true;
        heap_push(s, (struct sim_ev) { .at = d, .kind = EV_WAKE, .node = i, .gen = n->wake_gen });
}

static uint64_t link_latency(struct sim *s, uint32_t a, uint32_t b) {
        uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
        uint64_t base = s->p.latency_us;

        if (s->p.latency_spread_us)
                base += mix2(s->p.seed ^ UINT64_C(0x6c696e6b), ((uint64_t)lo << 32) | hi) %
                        (s->p.latency_spread_us + 1);
        if (s->p.jitter_us)
                base += sim_rng_below(&s->net_rng, s->p.jitter_us + 1);
        return base;
}

bool sim_can_talk(const struct sim *s, uint32_t a, uint32_t b) {
        return !s->partitioned || s->node[a].group == s->node[b].group;
}

static struct sim_pkt *pkt_new(uint32_t from, uint32_t to, enum pkt_kind kind, const uint8_t *buf, size_t len) {
        struct sim_pkt *p = malloc(sizeof(*p) + len);

        if (!p)
                abort();
        *p = (struct sim_pkt) { .from = from, .to = to, .kind = kind, .len = len };
        if (len)
                memcpy(p->data, buf, len);
        return p;
}

/*
 * The network's decision on a UDP packet happens at send time (loss, a
 * partition in the way) and again at delivery (a partition raised while it
 * was in flight, a crashed or paused receiver).
 */
static void net_send_udp(struct sim *s, uint32_t from, uint32_t to, const uint8_t *buf, size_t len) {
        struct sim_node *src = &s->node[from];
        struct sim_packet_info info = {
                .from = from, .to = to, .epoch = src->epoch, .seq = ++src->seq, .buf = buf, .len = len,
        };
        struct sim_pkt *p;

        s->st.udp_sent++;
        s->st.udp_bytes += len;
        if (len > s->st.udp_max_bytes)
                s->st.udp_max_bytes = len;
        if (s->tap_fn)
                s->tap_fn(s, &info, s->tap_ud);
        if (!sim_can_talk(s, from, to)) {
                s->st.udp_partitioned++;
                return;
        }
        if (s->p.loss > 0.0 && sim_rng_double(&s->net_rng) < s->p.loss) {
                s->st.udp_lost++;
                return;
        }
        p = pkt_new(from, to, PKT_UDP, buf, len);
        p->sent_at = s->now;
        p->epoch = info.epoch;
        p->seq = info.seq;
        heap_push(s, (struct sim_ev) { .at = s->now + link_latency(s, from, to), .kind = EV_DELIVER, .node = to, .pkt = p });
}

/* A new exchange id, marked open; its timer is armed by the caller. */
static uint64_t conn_new(struct sim *s) {
        uint64_t c = ++s->next_conn;

        if (c >= s->cap_conn) {
                size_t cap = s->cap_conn ? s->cap_conn * 2 : 4096;
                uint8_t *o = realloc(s->conn_open, cap);

                if (!o)
                        abort();
                memset(o + s->cap_conn, 0, cap - s->cap_conn);
                s->conn_open = o;
                s->cap_conn = cap;
        }
        s->conn_open[c] = 1;
        return c;
}

/*
 * A push-pull frame. The request arrives after the handshake (three one-way
 * latencies); the reply after one more. Every exchange has one timer for
 * the whole exchange, like the agent's net adapter: when no answer came by
 * then (peer crashed, partitioned, paused, or the answer is still queued)
 * the initiator hears of the failure, and a later answer is thrown away as
 * the closed connection would. A responder still reads and merges a request
 * it finds late (a paused process does on resume).
 */
static void net_send_tcp(struct sim *s, uint32_t from, uint32_t to, uint64_t conn, bool reply,
                         const uint8_t *buf, size_t len) {
        struct sim_node *dst = &s->node[to];
        struct sim_pkt *p;
        uint64_t lat;

        s->st.tcp_sent++;
        s->st.tcp_bytes += len;
        if (len > s->st.tcp_max_bytes)
                s->st.tcp_max_bytes = len;
        if (!reply) {
                p = pkt_new(to, from, PKT_TCP_FAIL, NULL, 0);
                p->conn = conn;
                heap_push(s, (struct sim_ev) { .at = s->now + s->p.conn_timeout_us,
                                               .kind = EV_DELIVER, .node = from, .pkt = p });
        }
        if (!sim_can_talk(s, from, to) || dst->state == SIM_NODE_CRASHED || dst->state == SIM_NODE_OFF) {
                s->st.tcp_failed++;
                return;
        }
        lat = link_latency(s, from, to);
        if (!reply)
                lat *= 3;
        p = pkt_new(from, to, PKT_TCP, buf, len);
        p->conn = conn;
        p->reply = reply;
        p->sent_at = s->now;
        heap_push(s, (struct sim_ev) { .at = s->now + lat, .kind = EV_DELIVER, .node = to, .pkt = p });
}

void sim_inject(struct sim *s, const struct sim_packet_info *info) {
        struct sim_pkt *p;

        if (info->tcp)
                return;
        p = pkt_new(info->from, info->to, PKT_UDP, info->buf, info->len);
        p->injected = true;
        p->sent_at = s->now;
        p->epoch = info->epoch;
        p->seq = info->seq;
        if (info->seq == 0) {
                p->epoch = s->node[info->from].epoch;
                p->seq = ++s->node[info->from].seq;
        }
        s->st.injected++;
        if (s->trace_level > 1)
                sim_note(s, "inject %zu bytes %s -> %s (stamp %" PRIu64 ".%" PRIu64 ")", info->len,
                         s->node[info->from].name, s->node[info->to].name, info->epoch, info->seq);
        heap_push(s, (struct sim_ev) { .at = s->now + link_latency(s, info->from, info->to),
                                       .kind = EV_DELIVER, .node = info->to, .pkt = p });
}

/*
 * SIM_TRACE=2: one stderr line per packet a core reads, decoded, so that a
 * failing seed can be followed message by message.
 */
static void trace_packet(const struct sim *s, const struct sim_pkt *p) {
        struct wire_msg m;
        struct wire_pushpull_header h;
        struct wire_pushpull_reader r;

        fprintf(stderr, "%12.6f  %s -> %s ", (double)s->now / 1e6, s->node[p->from].name, s->node[p->to].name);
        if (p->kind == PKT_TCP_FAIL) {
                fprintf(stderr, "push-pull exchange timer\n");
                return;
        }
        if (p->kind == PKT_APP) {
                fprintf(stderr, "app message, %zu bytes\n", p->len);
                return;
        }
        if (p->kind == PKT_TCP) {
                if (p->len < WIRE_FRAME_HEADER_SIZE ||
                    wire_pushpull_open(p->data + WIRE_FRAME_HEADER_SIZE, p->len - WIRE_FRAME_HEADER_SIZE, &h, &r) < 0)
                        fprintf(stderr, "push-pull (undecodable, %zu bytes)\n", p->len);
                else
                        fprintf(stderr, "push-pull %s%s, %u members, %zu bytes\n", h.reply ? "reply" : "push",
                                h.join ? " (join)" : "", h.n_members, p->len);
                return;
        }
        if (wire_decode(p->data, p->len, &m) < 0) {
                fprintf(stderr, "udp (undecodable, %zu bytes)%s\n", p->len, p->injected ? " injected" : "");
                return;
        }
        fprintf(stderr, "%s seq %u", wire_msg_type_to_string(m.type), m.seq);
        if (m.target_len)
                fprintf(stderr, " target %.*s", m.target_len, m.target);
        for (size_t k = 0; k < m.n_updates; k++)
                fprintf(stderr, "%s %s %.*s/%" PRIu64, k ? "," : " |", wire_state_to_string(m.updates[k].kind),
                        m.updates[k].name_len, m.updates[k].name, m.updates[k].incarnation);
        fprintf(stderr, "%s\n", p->injected ? " (injected)" : "");
}

/* Runs one packet through the receiver's core (it is up). */
static void node_receive(struct sim *s, uint32_t i, struct sim_pkt *p) {
        if (s->trace_level > 1)
                trace_packet(s, p);
        if (p->kind == PKT_APP) {
                s->st.app_delivered++;
                if (s->app.receive)
                        s->app.receive(s, i, p->from, p->data, p->len, s->app_ud);
                node_reschedule(s, i);
                return;
        }
        if (p->kind == PKT_TCP_FAIL || (p->kind == PKT_TCP && p->reply)) {
                /* Whichever of the answer and the timer comes first ends the exchange. */
                if (!s->conn_open[p->conn]) {
                        if (p->kind == PKT_TCP)
                                s->st.tcp_late++;
                        return;
                }
                s->conn_open[p->conn] = 0;
        }
        if (p->kind == PKT_TCP_FAIL) {
                s->st.tcp_timeouts++;
                core_connect_failed(s, i, p);
        } else if (core_receive(s, i, p) < 0)
                s->st.receive_errors++;
        core_drain(s, i);
        node_reschedule(s, i);
}

/* The agent checks the envelope stamp after decryption, before the core sees the body. */
static bool replay_pass(struct sim *s, const struct sim_pkt *p) {
        struct sim_node *n = &s->node[p->to];

        if (!n->replay)
                return true;
        if (replay_accepted(replay_check(n->replay, p->from, p->epoch, p->seq)))
                return true;
        s->st.replays_dropped++;
        return false;
}

static void deliver(struct sim *s, struct sim_pkt *p) {
        struct sim_node *n = &s->node[p->to];

        if (n->state == SIM_NODE_CRASHED || n->state == SIM_NODE_OFF) {
                s->st.udp_dropped_dead += p->kind == PKT_UDP;
                s->st.app_dropped += p->kind == PKT_APP;
                free(p);
                return;
        }
        if ((p->kind == PKT_UDP || p->kind == PKT_APP) && !p->injected && !sim_can_talk(s, p->from, p->to)) {
                if (p->kind == PKT_UDP)
                        s->st.udp_partitioned++;
                else
                        s->st.app_dropped++;
                free(p);
                return;
        }
        if (n->state == SIM_NODE_PAUSED) {
                if ((p->kind == PKT_UDP || p->kind == PKT_APP) && n->n_queue >= SIM_PAUSE_QUEUE_MAX) {
                        if (p->kind == PKT_UDP)
                                s->st.udp_queue_full++;
                        else
                                s->st.app_dropped++;
                        free(p);
                        return;
                }
                if (n->n_queue % 64 == 0) {
                        struct sim_pkt **q = realloc(n->queue, (n->n_queue + 64) * sizeof(*q));

                        if (!q)
                                abort();
                        n->queue = q;
                }
                n->queue[n->n_queue++] = p;
                return;
        }
        if (p->kind == PKT_UDP && !replay_pass(s, p)) {
                free(p);
                return;
        }
        if (p->kind == PKT_UDP)
                s->st.udp_delivered++;
        node_receive(s, p->to, p);
        free(p);
}

static void wake(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];

        if (n->spin_at == s->now) {
                if (++n->spin_count == 10000)
                        sim_fail(s, "%s ticked 10000 times at the same instant: its deadline never moves",
                                 n->name);
        } else {
                n->spin_at = s->now;
                n->spin_count = 0;
        }
        s->st.ticks++;
        if (n->m) {
                core_tick(s, i);
                core_drain(s, i);
        }
        if (s->app.tick && n->state == SIM_NODE_UP)
                s->app.tick(s, i, s->app_ud);
        node_reschedule(s, i);
}

void sim_run_until(struct sim *s, uint64_t t) {
        while (s->n_heap > 0 && s->heap[0].at <= t && !s->failed) {
                struct sim_ev ev = heap_pop(s);

                s->now = ev.at;
                if (ev.kind == EV_WAKE) {
                        struct sim_node *n = &s->node[ev.node];

                        if (ev.gen != n->wake_gen || !n->wake_queued)
                                continue;
                        n->wake_queued = false;
                        if (n->state == SIM_NODE_UP)
                                wake(s, ev.node);
                } else {
                        deliver(s, ev.pkt);
                }
        }
        if (t > s->now)
                s->now = t;
}

void sim_run_for(struct sim *s, uint64_t d) {
        sim_run_until(s, s->now + d);
}

bool sim_run_while_not(struct sim *s, uint64_t deadline, uint64_t step,
                       bool (*cond)(struct sim *s, void *userdata), void *userdata) {
        for (;;) {
                if (cond(s, userdata))
                        return true;
                if (s->now >= deadline || s->failed)
                        return false;
                sim_run_until(s, s->now + step < deadline ? s->now + step : deadline);
        }
}

/* --- node control -------------------------------------------------------- */

int sim_start(struct sim *s, uint32_t i, int64_t join) {
        struct sim_node *n = &s->node[i];
        int r;

        if (i >= s->n || n->state != SIM_NODE_OFF || (join >= 0 && (uint64_t)join >= s->n))
                return -EINVAL;
        if (s->p.app_only) {
                n->state = SIM_NODE_UP;
                node_reschedule(s, i);
                return 0;
        }
        r = core_new(s, i);
        if (r < 0)
                return r;
        n->state = SIM_NODE_UP;
        r = core_start(s, i, join);
        if (r < 0)
                return r;
        core_drain(s, i);
        node_reschedule(s, i);
        return 0;
}

void sim_crash(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];

        sim_note(s, "crash %s", n->name);
        n->state = SIM_NODE_CRASHED;
        n->wake_queued = false;
        for (size_t k = 0; k < n->n_queue; k++)
                free(n->queue[k]);
        n->n_queue = 0;
}

int sim_restart(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];

        if (!s->p.app_only)
                return -EOPNOTSUPP;
        if (i >= s->n || n->state != SIM_NODE_CRASHED)
                return -EINVAL;
        sim_note(s, "restart %s", n->name);
        n->state = SIM_NODE_UP;
        n->wake_queued = false;
        node_reschedule(s, i);
        return 0;
}

void sim_on_app(struct sim *s, const struct sim_app_ops *ops, void *userdata) {
        s->app = ops ? *ops : (struct sim_app_ops) { 0 };
        s->app_ud = userdata;
}

void sim_app_reschedule(struct sim *s, uint32_t i) {
        node_reschedule(s, i);
}

uint64_t sim_local_now(const struct sim *s, uint32_t i) {
        return s->now + s->node[i].clock_offset;
}

/* Like a UDP packet: latency, jitter, loss and partitions apply; no replay window, no tap. */
void sim_app_send(struct sim *s, uint32_t from, uint32_t to, const void *buf, size_t len) {
        struct sim_pkt *p;

        if (from >= s->n || to >= s->n)
                return;
        s->st.app_sent++;
        if (!sim_can_talk(s, from, to) || (s->p.loss > 0.0 && sim_rng_double(&s->net_rng) < s->p.loss)) {
                s->st.app_dropped++;
                return;
        }
        p = pkt_new(from, to, PKT_APP, buf, len);
        p->sent_at = s->now;
        heap_push(s, (struct sim_ev) { .at = s->now + link_latency(s, from, to), .kind = EV_DELIVER, .node = to, .pkt = p });
}

void sim_pause(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];

        if (n->state != SIM_NODE_UP)
                return;
        sim_note(s, "pause %s", n->name);
        n->state = SIM_NODE_PAUSED;
        n->wake_queued = false;
}

void sim_resume(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];
        struct sim_pkt **q = n->queue;
        size_t nq = n->n_queue;

        if (n->state != SIM_NODE_PAUSED)
                return;
        sim_note(s, "resume %s (%zu packets queued)", n->name, nq);
        n->state = SIM_NODE_UP;
        n->queue = NULL;
        n->n_queue = 0;
        /* Overdue timers first, then the socket backlog, as libev would. */
        wake(s, i);
        for (size_t k = 0; k < nq; k++) {
                if (n->state == SIM_NODE_UP && (q[k]->kind != PKT_UDP || replay_pass(s, q[k]))) {
                        if (q[k]->kind == PKT_UDP)
                                s->st.udp_delivered++;
                        node_receive(s, i, q[k]);
                }
                free(q[k]);
        }
        free(q);
}

void sim_set_loss(struct sim *s, double loss) {
        sim_note(s, "loss %.3f", loss);
        s->p.loss = loss;
}

void sim_partition(struct sim *s, const uint32_t *group) {
        if (!group) {
                sim_note(s, "heal partition");
                s->partitioned = false;
                return;
        }
        sim_note(s, "partition");
        for (uint32_t i = 0; i < s->n; i++)
                s->node[i].group = group[i];
        s->partitioned = true;
}

enum sim_node_state sim_node_state(const struct sim *s, uint32_t i) {
        return s->node[i].state;
}

uint64_t sim_last_start(const struct sim *s) {
        return s->last_start;
}

struct sim_rng *sim_scenario_rng(struct sim *s) {
        return &s->scen_rng;
}

static bool cond_converged(struct sim *s, void *userdata) {
        (void)userdata;
        return sim_converged(s);
}

bool sim_start_all(struct sim *s, uint64_t spread_us) {
        uint64_t t0 = s->now, *at;
        uint32_t *order;
        uint64_t last = t0;
        int r;

        at = calloc(s->n, sizeof(*at));
        order = calloc(s->n, sizeof(*order));
        if (!at || !order)
                abort();
        for (uint32_t i = 0; i < s->n; i++) {
                at[i] = i == 0 ? t0 : t0 + 1 + sim_rng_below(&s->scen_rng, spread_us + 1);
                order[i] = i;
        }
        /* Start order by time; insertion sort keeps ties in index order. */
        for (uint32_t i = 1; i < s->n; i++) {
                uint32_t x = order[i], j = i;

                while (j > 0 && at[order[j - 1]] > at[x]) {
                        order[j] = order[j - 1];
                        j--;
                }
                order[j] = x;
        }
        for (uint32_t k = 0; k < s->n && !s->failed; k++) {
                uint32_t i = order[k];

                sim_run_until(s, at[i]);
                r = sim_start(s, i, i == 0 ? -1 : 0);
                if (r < 0)
                        sim_fail(s, "starting %s failed: %s", s->node[i].name, strerror(-r));
                last = at[i];
        }
        free(at);
        free(order);
        s->last_start = last;
        if (s->failed)
                return false;
        sim_note(s, "all %u nodes started", s->n);
        return true;
}

uint64_t sim_bootstrap(struct sim *s, uint64_t spread_us, uint64_t limit_us) {
        uint64_t last;

        if (!sim_start_all(s, spread_us))
                return 0;
        last = s->last_start;
        if (!sim_run_while_not(s, last + limit_us, s->probe_interval / 4 ? s->probe_interval / 4 : 1000,
                               cond_converged, NULL)) {
                if (!s->failed)
                        sim_fail(s, "no convergence within %.1f s after the last start: "
                                 "%" PRIu64 " of %" PRIu64 " views alive",
                                 (double)limit_us / 1e6, sim_count_view(s, SIM_VIEW_ALIVE),
                                 (uint64_t)s->n * (s->n - 1));
                return 0;
        }
        if (!sim_check_views(s))
                return 0;
        return s->now;
}

/* --- recorders ----------------------------------------------------------- */

/*
 * Called by the glue for every state change a core reports about a member.
 * A change to "dead" of a node that is really up and reachable from the
 * observer is counted as a false death; scenarios decide what that means.
 */
static void view_set(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view v, uint64_t inc) {
        size_t k = (size_t)obs * s->n + subj;
        enum sim_view old = s->view[k];
        struct trace_rec *r;

        if (old == v && s->view_inc[k] == inc)
                return;
        s->view_inc[k] = inc;
        if (old == v)
                return;
        s->view[k] = (uint8_t)v;
        s->view_since[k] = s->now;
        if (subj != obs) {
                if (old == SIM_VIEW_ALIVE)
                        s->alive_seen[obs]--;
                if (v == SIM_VIEW_ALIVE)
                        s->alive_seen[obs]++;
        }
        switch (v) {
        case SIM_VIEW_SUSPECT:
                s->st.to_suspect++;
                break;
        case SIM_VIEW_DEAD:
                s->st.to_dead++;
                if ((s->node[subj].state == SIM_NODE_UP || s->node[subj].state == SIM_NODE_PAUSED) &&
                    sim_can_talk(s, obs, subj))
                        s->st.false_dead++;
                break;
        case SIM_VIEW_ALIVE:
                if (old == SIM_VIEW_SUSPECT)
                        s->st.to_alive_from_suspect++;
                else if (old == SIM_VIEW_DEAD)
                        s->st.to_alive_from_dead++;
                break;
        case SIM_VIEW_LEFT:
                s->st.to_left++;
                break;
        default:
                break;
        }
        r = trace_push(s);
        r->kind = TRACE_VIEW;
        r->obs = obs;
        r->subj = subj;
        r->old = (uint8_t)old;
        r->new = (uint8_t)v;
        r->inc = inc;
        if (s->trace_level > 0)
                trace_format(s, r, stderr);
        if (s->view_fn)
                s->view_fn(s, obs, subj, old, v, inc, s->view_ud);
}

enum sim_view sim_view(const struct sim *s, uint32_t observer, uint32_t subject) {
        return s->view[(size_t)observer * s->n + subject];
}

uint64_t sim_view_incarnation(const struct sim *s, uint32_t observer, uint32_t subject) {
        return s->view_inc[(size_t)observer * s->n + subject];
}

uint64_t sim_view_since(const struct sim *s, uint32_t observer, uint32_t subject) {
        return s->view_since[(size_t)observer * s->n + subject];
}

bool sim_converged(const struct sim *s) {
        uint32_t up = 0;

        for (uint32_t i = 0; i < s->n; i++)
                up += s->node[i].state == SIM_NODE_UP;
        /* Cheap rejection on the counters first; the full check only at the end. */
        for (uint32_t i = 0; i < s->n; i++)
                if (s->node[i].state == SIM_NODE_UP && s->alive_seen[i] + 1 < up)
                        return false;
        for (uint32_t i = 0; i < s->n; i++) {
                if (s->node[i].state != SIM_NODE_UP)
                        continue;
                for (uint32_t j = 0; j < s->n; j++)
                        if (j != i && s->node[j].state == SIM_NODE_UP && sim_view(s, i, j) != SIM_VIEW_ALIVE)
                                return false;
        }
        return true;
}

uint64_t sim_alive_views(const struct sim *s) {
        uint64_t c = 0;

        for (uint32_t i = 0; i < s->n; i++)
                if (s->node[i].state == SIM_NODE_UP)
                        c += s->alive_seen[i];
        return c;
}

uint64_t sim_count_view(const struct sim *s, enum sim_view v) {
        uint64_t c = 0;

        for (uint32_t i = 0; i < s->n; i++) {
                if (s->node[i].state == SIM_NODE_OFF)
                        continue;
                for (uint32_t j = 0; j < s->n; j++)
                        c += j != i && sim_view(s, i, j) == v;
        }
        return c;
}

uint64_t sim_incarnation(const struct sim *s, uint32_t i) {
        return core_incarnation(s, i);
}

/* --- scenario driver ----------------------------------------------------- */

size_t sim_seeds(const uint64_t *defaults, size_t n_defaults, uint64_t *ret, size_t max) {
        const char *e = getenv("SIM_SEED");
        size_t n = 0;

        if (e && *e) {
                const char *p = e;

                while (*p && n < max) {
                        char *end;
                        unsigned long long v;

                        errno = 0;
                        v = strtoull(p, &end, 0);
                        if (end == p || errno) {
                                fprintf(stderr, "SIM_SEED: cannot parse \"%s\"\n", e);
                                exit(2);
                        }
                        ret[n++] = v;
                        p = end;
                        while (*p == ',' || *p == ' ')
                                p++;
                }
                return n;
        }
        for (size_t k = 0; k < n_defaults && k < max; k++)
                ret[n++] = defaults[k];
        return n;
}

double sim_scale(void) {
        const char *e = getenv("SIM_SCALE");
        double v;

        if (!e || !*e)
                return 1.0;
        v = strtod(e, NULL);
        return v > 0.0 && v <= 1.0 ? v : 1.0;
}

uint64_t sim_scaled(uint64_t v, uint64_t min) {
        uint64_t r = (uint64_t)((double)v * sim_scale() + 0.5);

        return r < min ? min : r;
}

int sim_main(const char *name, const uint64_t *defaults, size_t n_defaults, int (*run)(uint64_t seed)) {
        uint64_t seeds[64];
        size_t n = sim_seeds(defaults, n_defaults, seeds, sizeof(seeds) / sizeof(seeds[0]));
        size_t failed = 0;
        double t0 = sim_wall_seconds();

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (sim_scale() != 1.0)
                printf("%s: SIM_SCALE=%g (sizes scaled down)\n", name, sim_scale());
        for (size_t k = 0; k < n; k++) {
                double t = sim_wall_seconds();
                int r = run(seeds[k]);

                printf("%s: seed 0x%016" PRIx64 " %s (%.2f s wall)\n", name, seeds[k],
                       r == 0 ? "passed" : "FAILED", sim_wall_seconds() - t);
                if (r != 0)
                        failed++;
        }
        if (failed) {
                printf("%s: %zu of %zu seeds FAILED (%.1f s wall)\n", name, failed, n, sim_wall_seconds() - t0);
                return 1;
        }
        printf("%s: %zu seeds passed (%.1f s wall)\n", name, n, sim_wall_seconds() - t0);
        return 0;
}

/* --- glue to the real core ------------------------------------------------ */

static uint64_t rng_next(void *ctx) {
        return sim_rng_next(ctx);
}

static struct wire_addr node_addr(uint32_t i) {
        const uint8_t ip[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };

        return wire_addr_ipv4(ip, 7946);
}

/* The node behind a 10.x.y.z:7946 address; -1 for anything else. */
static int64_t addr_node(const struct sim *s, const struct wire_addr *a) {
        uint32_t i;

        if (a->family != WIRE_AF_INET || a->ip[0] != 10 || a->port != 7946)
                return -1;
        i = ((uint32_t)a->ip[1] << 16) | ((uint32_t)a->ip[2] << 8) | a->ip[3];
        return i < s->n ? (int64_t)i : -1;
}

/* Node names are "n<index>"; anything else is nobody we simulate. */
static int64_t name_node(const struct sim *s, const char *name) {
        char *end;
        unsigned long v;

        if (name[0] != 'n' || name[1] < '0' || name[1] > '9')
                return -1;
        v = strtoul(name + 1, &end, 10);
        if (*end || v >= s->n)
                return -1;
        return (int64_t)v;
}

static uint64_t local_now(const struct sim *s, uint32_t i) {
        return s->now + s->node[i].clock_offset;
}

static enum sim_view view_of(enum membership_state st) {
        switch (st) {
        case MEMBERSHIP_ALIVE:
                return SIM_VIEW_ALIVE;
        case MEMBERSHIP_SUSPECT:
                return SIM_VIEW_SUSPECT;
        case MEMBERSHIP_DEAD:
                return SIM_VIEW_DEAD;
        case MEMBERSHIP_LEFT:
                return SIM_VIEW_LEFT;
        }
        return SIM_VIEW_NONE;
}

static uint64_t core_probe_interval(const struct sim *s) {
        return s->cfg.probe_interval_us;
}

static int core_new(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];
        struct membership_rng rng = { .next = rng_next, .ctx = &n->rng };
        struct wire_addr a = node_addr(i);
        int r;

        r = membership_new(&s->cfg, n->name, &a, 0, NULL, 0, &rng, &n->m);
        if (r < 0)
                return r;
        if (s->p.replay_window) {
                r = replay_new(s->n + 1, &n->replay);
                if (r < 0)
                        return r;
        }
        /* A boot epoch as the agent would persist it; sequences start over per boot. */
        n->epoch = 1 + sim_rng_below(&n->rng, 1000000);
        n->seq = 0;
        return 0;
}

static void core_free(struct sim *s, uint32_t i) {
        membership_free(s->node[i].m);
        s->node[i].m = NULL;
        replay_free(s->node[i].replay);
        s->node[i].replay = NULL;
}

static int core_start(struct sim *s, uint32_t i, int64_t join) {
        struct wire_addr a;

        if (join < 0)
                return 0;
        a = node_addr((uint32_t)join);
        return membership_join(s->node[i].m, local_now(s, i), &a, 1);
}

static void core_tick(struct sim *s, uint32_t i) {
        membership_tick(s->node[i].m, local_now(s, i));
}

static uint64_t core_deadline(struct sim *s, uint32_t i) {
        const struct sim_node *n = &s->node[i];
        uint64_t d = membership_next_deadline(n->m);

        if (d == UINT64_MAX)
                return d;
        return d > n->clock_offset ? d - n->clock_offset : 0;
}

static uint64_t core_incarnation(const struct sim *s, uint32_t i) {
        return s->node[i].m ? membership_incarnation(s->node[i].m) : 0;
}

/* Sends our full state (a framed push-pull body) to j. */
static void send_pushpull(struct sim *s, uint32_t i, uint32_t j, uint64_t conn, bool join, bool reply) {
        uint8_t *body = NULL, *frame;
        size_t len = 0;
        int r;

        r = membership_pushpull_export(s->node[i].m, join, reply, &body, &len);
        if (r < 0 || len > WIRE_PUSHPULL_MAX) {
                sim_fail(s, "%s: push-pull export failed: %s (%zu bytes)", s->node[i].name,
                         r < 0 ? strerror(-r) : "too big", len);
                free(body);
                return;
        }
        frame = malloc(WIRE_FRAME_HEADER_SIZE + len);
        if (!frame)
                abort();
        wire_frame_header_encode((uint32_t)len, frame);
        memcpy(frame + WIRE_FRAME_HEADER_SIZE, body, len);
        if (s->tap_fn) {
                struct sim_packet_info info = {
                        .from = i, .to = j, .tcp = true, .reply = reply, .buf = body, .len = len,
                };

                s->tap_fn(s, &info, s->tap_ud);
        }
        net_send_tcp(s, i, j, conn, reply, frame, WIRE_FRAME_HEADER_SIZE + len);
        free(frame);
        free(body);
}

static void core_drain(struct sim *s, uint32_t i) {
        struct sim_node *n = &s->node[i];
        const struct membership_output *out;
        size_t nout = membership_outputs(n->m, &out);
        uint64_t inc;

        for (size_t k = 0; k < nout; k++) {
                const struct membership_output *o = &out[k];
                int64_t j;

                switch (o->type) {
                case MEMBERSHIP_OUT_SEND:
                        j = addr_node(s, &o->send.to);
                        if (j < 0 || (uint32_t)j == i) {
                                s->st.unknown_addr++;
                                break;
                        }
                        if (o->send.len > s->cfg.packet_budget)
                                sim_fail(s, "%s sent a %zu-byte body over its %zu-byte budget", n->name,
                                         o->send.len, s->cfg.packet_budget);
                        net_send_udp(s, i, (uint32_t)j, o->send.data, o->send.len);
                        break;
                case MEMBERSHIP_OUT_PUSHPULL:
                        j = addr_node(s, &o->pushpull.to);
                        if (j < 0 || (uint32_t)j == i) {
                                s->st.unknown_addr++;
                                break;
                        }
                        send_pushpull(s, i, (uint32_t)j, conn_new(s), o->pushpull.join, false);
                        break;
                case MEMBERSHIP_OUT_EVENT:
                        if (o->event.kind == EVENT_MEMBER_REFUTED) {
                                s->st.refutations++;
                                break;
                        }
                        j = name_node(s, o->event.name);
                        if (j < 0) {
                                sim_fail(s, "%s reported an event about unknown member \"%s\"", n->name,
                                         o->event.name);
                                break;
                        }
                        if ((uint32_t)j != i)
                                view_set(s, i, (uint32_t)j, view_of(o->event.to_state), o->event.incarnation);
                        break;
                case MEMBERSHIP_OUT_PERSIST:
                        if (o->persist.what == MEMBERSHIP_PERSIST_REMOVED) {
                                j = name_node(s, o->persist.name);
                                if (j >= 0 && (uint32_t)j != i)
                                        view_set(s, i, (uint32_t)j, SIM_VIEW_NONE, 0);
                        }
                        break;
                }
        }
        membership_outputs_clear(n->m);
        /* Our incarnation must never go back. */
        inc = membership_incarnation(n->m);
        if (inc < n->incarnation)
                sim_fail(s, "%s's incarnation went back from %" PRIu64 " to %" PRIu64, n->name,
                         n->incarnation, inc);
        n->incarnation = inc;
}

static int core_receive(struct sim *s, uint32_t i, const struct sim_pkt *p) {
        struct sim_node *n = &s->node[i];
        struct wire_addr from = node_addr(p->from);
        uint32_t flen;
        const uint8_t *body;
        size_t blen;
        int r;

        if (p->kind == PKT_UDP) {
                r = membership_receive_packet(n->m, local_now(s, i), &from, p->data, p->len);
                if (r < 0) {
                        s->st.decode_errors += r != -EINVAL;
                        if (s->trace_level > 0)
                                sim_note(s, "%s: packet from %s refused: %s", n->name, s->node[p->from].name,
                                         strerror(-r));
                }
                return r == -EINVAL ? r : 0;
        }
        /* TCP: the frame header, then the push-pull body. */
        r = p->len >= WIRE_FRAME_HEADER_SIZE ? wire_frame_header_decode(p->data, WIRE_PUSHPULL_MAX, &flen) : -EBADMSG;
        if (r < 0 || flen != p->len - WIRE_FRAME_HEADER_SIZE) {
                s->st.decode_errors++;
                sim_fail(s, "%s: bad push-pull frame from %s", n->name, s->node[p->from].name);
                return -EBADMSG;
        }
        body = p->data + WIRE_FRAME_HEADER_SIZE;
        blen = flen;
        if (p->reply) {
                r = membership_pushpull_result(n->m, local_now(s, i), &from, body, blen);
                if (r < 0)
                        sim_fail(s, "%s: push-pull answer from %s refused: %s", n->name, s->node[p->from].name,
                                 strerror(-r));
                return r;
        }
        r = membership_pushpull_receive(n->m, local_now(s, i), &from, body, blen);
        if (r < 0) {
                sim_fail(s, "%s: push-pull from %s refused: %s", n->name, s->node[p->from].name, strerror(-r));
                return r;
        }
        /* Drain what the merge produced before exporting the answer (outputs are per input). */
        core_drain(s, i);
        send_pushpull(s, i, p->from, p->conn, false, true);
        return 0;
}

static void core_connect_failed(struct sim *s, uint32_t i, const struct sim_pkt *p) {
        struct wire_addr to = node_addr(p->from);

        membership_pushpull_failed(s->node[i].m, local_now(s, i), &to);
}

int sim_deliver_now(struct sim *s, const struct sim_packet_info *info) {
        struct sim_node *n = &s->node[info->to];
        struct wire_addr from = node_addr(info->from);
        int r;

        if (n->state != SIM_NODE_UP)
                return -EHOSTDOWN;
        if (!info->tcp)
                r = membership_receive_packet(n->m, local_now(s, info->to), &from, info->buf, info->len);
        else if (info->reply)
                r = membership_pushpull_result(n->m, local_now(s, info->to), &from, info->buf, info->len);
        else
                r = membership_pushpull_receive(n->m, local_now(s, info->to), &from, info->buf, info->len);
        core_drain(s, info->to);
        node_reschedule(s, info->to);
        return r;
}

struct membership *sim_core(struct sim *s, uint32_t i) {
        return s->node[i].m;
}

void sim_core_counters(const struct sim *s, struct membership_counters *ret) {
        struct membership_counters sum = { 0 }, c;

        for (uint32_t i = 0; i < s->n; i++) {
                if (!s->node[i].m)
                        continue;
                membership_get_counters(s->node[i].m, &c);
                for (size_t k = 0; k < sizeof(c) / sizeof(uint64_t); k++)
                        ((uint64_t *)&sum)[k] += ((const uint64_t *)&c)[k];
        }
        *ret = sum;
}

bool sim_check_views(struct sim *s) {
        for (uint32_t i = 0; i < s->n && !s->failed; i++) {
                struct sim_node *n = &s->node[i];

                if (n->state != SIM_NODE_UP && n->state != SIM_NODE_PAUSED)
                        continue;
                for (uint32_t j = 0; j < s->n && !s->failed; j++) {
                        struct membership_member_info mi;
                        enum sim_view want;

                        if (j == i)
                                continue;
                        want = membership_member_get(n->m, s->node[j].name, &mi) < 0 ? SIM_VIEW_NONE
                                                                                      : view_of(mi.state);
                        if (want != sim_view(s, i, j))
                                sim_fail(s, "%s's core says %s is %s but its events said %s", n->name,
                                         s->node[j].name, sim_view_to_string(want),
                                         sim_view_to_string(sim_view(s, i, j)));
                }
        }
        return !s->failed;
}
