/*
 * SWIM failure detection with Lifeguard, as a pure state machine. See
 * membership.h for the contract and doc/PROTOCOL.md for the protocol.
 *
 * Members live in slots that never move (a free slot is reused), so every
 * cross-reference (probe order, broadcast queue, suspicion list) is a slot
 * index. Slot 0 is this node. A name hash table maps names to slots.
 *
 * The broadcast queue holds at most one pending update per member: the
 * member's current state. Queued members sit in a bucket per transmit count,
 * so filling a packet takes the least-sent updates first in O(updates).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/membership.h"

#define NONE UINT32_MAX
#define SELF 0u
/* Transmit-count buckets; the retransmit limit is capped below this. */
#define BUCKETS 128
/* Most confirmations a suspicion tracks (cfg.suspicion_confirmations cap). */
#define CONFIRM_MAX 16
/* Smallest possible encoded update; a packet with less room left is full. */
#define UPDATE_MIN 4
#define REAP_CHECK_US (10 * UINT64_C(1000000))
/* Probe intervals an unknown prober has to become known before we push-pull with it. */
#define STRANGER_GRACE_PERIODS 10

struct suspicion {
        uint64_t start;
        uint64_t deadline;
        uint64_t min_us;
        uint64_t max_us;
        unsigned k;                     /* expected confirmations */
        unsigned n_suspectors;          /* distinct suspectors seen, first included */
        bool extended;                  /* one grace period given after a stall */
        uint64_t suspectors[CONFIRM_MAX + 1];   /* name hashes */
        char origin[WIRE_NAME_MAX + 1]; /* the first suspector */
        char from[WIRE_NAME_MAX + 1];   /* the latest, re-gossiped as `from` */
};

struct member {
        char name[WIRE_NAME_MAX + 1];
        uint8_t name_len;
        uint8_t state;                  /* enum membership_state; 0: free slot */
        uint8_t transmits;              /* of the queued update */
        bool queued;
        uint16_t meta_len;
        uint32_t rtt_us;
        uint32_t order_pos;             /* index in m->order (NONE for self) */
        uint32_t bq_prev, bq_next;
        uint32_t dead_from;             /* slot that declared it dead (NONE: us) */
        uint32_t susp_pos;              /* index in m->suspects */
        uint64_t incarnation;
        uint64_t state_change;
        struct wire_addr addr;
        uint8_t *meta;
        struct suspicion *susp;
};

struct probe {
        bool active;
        bool indirect;                  /* ping-reqs went out */
        bool acked;
        uint32_t target;
        uint32_t seq;
        unsigned expected_nacks;
        unsigned nacks;
        uint64_t sent;
        uint64_t timeout_at;
        uint64_t end_at;
};

struct relay {
        bool used;
        bool nacked;
        uint32_t seq;                   /* our ping to the target */
        uint32_t req_seq;               /* the requester's probe */
        struct wire_addr req_addr;
        uint64_t nack_at;
        uint64_t expire_at;
};

struct hent {
        uint32_t slot;                  /* NONE: empty */
        uint32_t h;                     /* name_hash32() */
};

struct membership {
        struct membership_config cfg;
        struct membership_rng rng;
        bool started;
        bool leaving;
        bool joining;
        bool joined;
        unsigned score;                 /* Lifeguard local health */
        uint32_t seq;

        struct member *members;
        uint32_t n_slots;               /* slots in use or free, high-water mark */
        uint32_t cap_slots;
        uint32_t *free_slots;
        uint32_t n_free;
        struct hent *hash;              /* size hash_mask + 1 */
        uint32_t hash_mask;
        uint32_t *order;                /* probe order: every slot but self */
        uint32_t n_order;
        uint32_t order_idx;
        uint32_t *suspects;
        uint32_t n_suspects;
        struct relay *relays;           /* MEMBERSHIP_RELAYS_MAX, allocated on first use */
        uint32_t n_relays;              /* entries in use */
        uint64_t deadline;              /* cached membership_next_deadline() */
        uint32_t bq_head[BUCKETS];
        uint32_t n_queued;
        struct membership_census census;

        struct probe probe;
        uint64_t next_probe_at;
        uint64_t next_gossip_at;
        uint64_t next_pushpull_at;
        uint64_t next_reprobe_at;
        uint64_t next_reap_at;
        uint64_t next_stranger_at;      /* earliest next stranger_note() */
        uint64_t stranger_check_at;     /* when the noted stranger is checked again */
        bool stranger_pending;
        struct wire_addr stranger_addr; /* a prober no live member matched */
        uint64_t next_join_at;
        uint64_t join_backoff;
        struct wire_addr seeds[MEMBERSHIP_SEEDS_MAX];
        size_t n_seeds;

        struct membership_output *out;
        size_t *out_off;                /* send data offset in the arena */
        size_t n_out;
        size_t cap_out;
        uint8_t *arena;
        size_t arena_used;
        size_t arena_cap;

        struct membership_counters counters;
};

/* --- profiles and config ------------------------------------------------- */

static const char *const profile_names[_MEMBERSHIP_PROFILE_MAX] = {
        [MEMBERSHIP_PROFILE_LAN] = "lan",
        [MEMBERSHIP_PROFILE_LOCAL] = "local",
        [MEMBERSHIP_PROFILE_WAN] = "wan",
};

const char *membership_profile_to_string(enum membership_profile p) {
        if ((int)p < 0 || p >= _MEMBERSHIP_PROFILE_MAX)
                return NULL;
        return profile_names[p];
}

enum membership_profile membership_profile_from_string(const char *s) {
        for (int i = 0; s && i < _MEMBERSHIP_PROFILE_MAX; i++)
                if (strcmp(s, profile_names[i]) == 0)
                        return (enum membership_profile)i;
        return (enum membership_profile)-1;
}

/*
 * The lan numbers are chosen for "a crash is known everywhere within ~1.5 s
 * with 30 nodes, 5% loss never kills": a probe every 200 ms finds the dead
 * node within ~1 interval, two independent suspicions shrink the suspicion
 * timeout to its 0.6 s minimum, and gossip every 100 ms spreads the verdict
 * in a few hops. A lone false suspicion under loss waits the 4x maximum
 * (2.4 s at n = 30), ample time for the refutation to travel both ways.
 */
int membership_profile_defaults(enum membership_profile p, struct membership_config *ret) {
        struct membership_config c = {
                .probe_interval_us = 200 * UINT64_C(1000),
                .probe_timeout_us = 100 * UINT64_C(1000),
                .indirect_checks = 3,
                .suspicion_mult = 2,
                .suspicion_max_timeout_mult = 4,
                .suspicion_confirmations = 2,
                .retransmit_mult = 4,
                .gossip_interval_us = 100 * UINT64_C(1000),
                .gossip_nodes = 3,
                .pushpull_interval_us = 30 * UINT64_C(1000000),
                .dead_reprobe_interval_us = 5 * UINT64_C(1000000),
                .left_reap_us = 24 * 3600 * UINT64_C(1000000),
                .join_backoff_us = 1 * UINT64_C(1000000),
                .join_backoff_max_us = 30 * UINT64_C(1000000),
                .awareness_max = 8,
                .packet_budget = WIRE_BUDGET_DEFAULT,
                .max_members = MEMBERSHIP_MEMBERS_MAX,
        };

        switch (p) {
        case MEMBERSHIP_PROFILE_LAN:
                break;
        case MEMBERSHIP_PROFILE_LOCAL:
                c.probe_interval_us = 100 * UINT64_C(1000);
                c.probe_timeout_us = 50 * UINT64_C(1000);
                c.gossip_interval_us = 50 * UINT64_C(1000);
                c.pushpull_interval_us = 15 * UINT64_C(1000000);
                c.dead_reprobe_interval_us = 2 * UINT64_C(1000000);
                c.join_backoff_us = 200 * UINT64_C(1000);
                c.join_backoff_max_us = 5 * UINT64_C(1000000);
                break;
        case MEMBERSHIP_PROFILE_WAN:
                c.probe_interval_us = 1 * UINT64_C(1000000);
                c.probe_timeout_us = 500 * UINT64_C(1000);
                c.suspicion_mult = 4;
                c.suspicion_max_timeout_mult = 6;
                c.suspicion_confirmations = 3;
                c.gossip_interval_us = 200 * UINT64_C(1000);
                c.gossip_nodes = 4;
                c.pushpull_interval_us = 60 * UINT64_C(1000000);
                c.dead_reprobe_interval_us = 30 * UINT64_C(1000000);
                c.join_backoff_us = 2 * UINT64_C(1000000);
                c.join_backoff_max_us = 60 * UINT64_C(1000000);
                break;
        default:
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

int membership_config_validate(const struct membership_config *c, const char **ret_reason) {
        const char *why = NULL;

        if (!c)
                why = "no config";
        else if (c->probe_interval_us < 10 * UINT64_C(1000) || c->probe_interval_us > 60 * UINT64_C(1000000))
                why = "probe_interval must be 10ms..60s";
        else if (c->probe_timeout_us < 1000 || c->probe_timeout_us >= c->probe_interval_us)
                why = "probe_timeout must be at least 1ms and below probe_interval";
        else if (c->indirect_checks > 16)
                why = "indirect_checks must be 0..16";
        else if (c->suspicion_mult < 1 || c->suspicion_mult > 100)
                why = "suspicion_mult must be 1..100";
        else if (c->suspicion_max_timeout_mult < 1 || c->suspicion_max_timeout_mult > 100)
                why = "suspicion_max_timeout_mult must be 1..100";
        else if (c->suspicion_confirmations > CONFIRM_MAX)
                why = "suspicion_confirmations must be 0..16";
        else if (c->retransmit_mult < 1 || c->retransmit_mult > 16)
                why = "retransmit_mult must be 1..16";
        else if (c->gossip_nodes > 16)
                why = "gossip_nodes must be 0..16";
        else if (c->gossip_nodes > 0 &&
                 (c->gossip_interval_us < 1000 || c->gossip_interval_us > 60 * UINT64_C(1000000)))
                why = "gossip_interval must be 1ms..60s";
        else if (c->pushpull_interval_us != 0 && c->pushpull_interval_us < UINT64_C(1000000))
                why = "pushpull_interval must be 0 (off) or at least 1s";
        else if (c->dead_reprobe_interval_us != 0 && c->dead_reprobe_interval_us < 100 * UINT64_C(1000))
                why = "dead_reprobe_interval must be 0 (off) or at least 100ms";
        else if (c->left_reap_us < UINT64_C(1000000))
                why = "left_reap must be at least 1s";
        else if (c->join_backoff_us < 10 * UINT64_C(1000) || c->join_backoff_max_us < c->join_backoff_us ||
                 c->join_backoff_max_us > 3600 * UINT64_C(1000000))
                why = "join_backoff must be at least 10ms and at most join_backoff_max (at most 1h)";
        else if (c->awareness_max < 1 || c->awareness_max > 16)
                why = "awareness_max must be 1..16";
        else if (c->packet_budget < WIRE_BUDGET_MIN || c->packet_budget > WIRE_BUDGET_MAX)
                why = "packet_budget out of range";
        else if (c->max_members < 2 || c->max_members > MEMBERSHIP_MEMBERS_MAX)
                why = "max_members must be 2..10000";
        if (ret_reason)
                *ret_reason = why;
        return why ? -EINVAL : 0;
}

const char *membership_state_to_string(enum membership_state s) {
        return wire_state_to_string((enum wire_state)s);
}

/* --- small helpers ---------------------------------------------------------- */

static uint64_t rng_u64(struct membership *m) {
        return m->rng.next(m->rng.ctx);
}

/* Uniform in [0, n), n > 0 (multiply-shift: no modulo bias worth the name). */
static uint32_t rng_below(struct membership *m, uint32_t n) {
        return (uint32_t)(((unsigned __int128)rng_u64(m) * n) >> 64);
}

static uint64_t rng_below64(struct membership *m, uint64_t n) {
        if (n == 0)
                return 0;
        return (uint64_t)(((unsigned __int128)rng_u64(m) * n) >> 64);
}

static uint64_t hash_name(const char *name, size_t len) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t)name[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* log2(x) in 16.16 fixed point for x >= 1: core code links no libm. */
static uint64_t log2_q16(uint64_t x) {
        unsigned msb = 63 - (unsigned)__builtin_clzll(x);
        uint64_t r = (uint64_t)msb << 16;
        /* y in [1, 2) as Q31 */
        uint64_t y = msb >= 31 ? x >> (msb - 31) : x << (31 - msb);

        for (int bit = 15; bit >= 0; bit--) {
                y = (y * y) >> 31;
                if (y >= (UINT64_C(1) << 32)) {
                        y >>= 1;
                        r |= UINT64_C(1) << bit;
                }
        }
        return r;
}

static uint64_t min64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}

static inline struct member *slot_member(struct membership *m, uint32_t slot) {
        return &m->members[slot];
}

static struct member *self_member(struct membership *m) {
        return &m->members[SELF];
}

/* Timings stretched by the local health multiplier (Lifeguard). */
static uint64_t scaled(const struct membership *m, uint64_t us) {
        return us * (m->score + 1);
}

static void awareness_delta(struct membership *m, int delta) {
        int s = (int)m->score + delta;

        if (s < 0)
                s = 0;
        if (s > (int)m->cfg.awareness_max - 1)
                s = (int)m->cfg.awareness_max - 1;
        m->score = (unsigned)s;
}

/* Members that take part: alive and suspect, self included unless it left. */
static size_t n_live(const struct membership *m) {
        return m->census.alive + m->census.suspect;
}

/*
 * ceil(retransmit_mult * ln(n + 1)): an update every member relays that many
 * times misses a given member with probability about e^-limit, so the
 * natural log (not memberlist's log10) keeps small clusters reliable too.
 */
static unsigned transmit_limit(const struct membership *m) {
        /* ln 2 in Q16 is 45426.09; log2_q16 * ln2_q16 is Q32. */
        uint64_t q32 = (uint64_t)m->cfg.retransmit_mult * log2_q16(n_live(m) + 1) * 45426;
        unsigned limit = (unsigned)((q32 + UINT32_MAX) >> 32);

        if (limit < 1)
                limit = 1;
        return limit >= BUCKETS ? BUCKETS - 1 : limit;
}

/* --- output list ------------------------------------------------------------ */

static struct membership_output *out_push(struct membership *m, enum membership_output_type type) {
        if (m->n_out == m->cap_out) {
                size_t cap = m->cap_out ? m->cap_out * 2 : 16;
                struct membership_output *o = realloc(m->out, cap * sizeof(*o));
                size_t *off;

                if (!o)
                        return NULL;
                m->out = o;
                off = realloc(m->out_off, cap * sizeof(*off));
                if (!off)
                        return NULL;
                m->out_off = off;
                m->cap_out = cap;
        }
        m->out_off[m->n_out] = SIZE_MAX;
        memset(&m->out[m->n_out], 0, sizeof(m->out[0]));
        m->out[m->n_out].type = type;
        return &m->out[m->n_out++];
}

/* Called at the end of every input: the arena may have moved. */
static void out_fixup(struct membership *m) {
        for (size_t i = 0; i < m->n_out; i++)
                if (m->out[i].type == MEMBERSHIP_OUT_SEND && m->out_off[i] != SIZE_MAX)
                        m->out[i].send.data = m->arena + m->out_off[i];
}

static uint8_t *arena_reserve(struct membership *m, size_t n) {
        if (m->arena_cap - m->arena_used < n) {
                size_t cap = m->arena_cap ? m->arena_cap : 4096;
                uint8_t *a;

                while (cap - m->arena_used < n)
                        cap *= 2;
                a = realloc(m->arena, cap);
                if (!a)
                        return NULL;
                m->arena = a;
                m->arena_cap = cap;
        }
        return m->arena + m->arena_used;
}

static void copy_name(char dst[static WIRE_NAME_MAX + 1], const char *src, size_t len) {
        memcpy(dst, src, len);
        dst[len] = '\0';
}

static void emit_event(struct membership *m, enum event_kind kind, uint32_t slot, enum membership_state from,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void emit_event(struct membership *m, enum event_kind kind, uint32_t slot, enum membership_state from,
                       const char *fmt, ...) {
        struct membership_output *o = out_push(m, MEMBERSHIP_OUT_EVENT);
        struct member *mem = slot_member(m, slot);
        va_list ap;

        if (!o)
                return;
        o->event.kind = kind;
        copy_name(o->event.name, mem->name, mem->name_len);
        o->event.addr = mem->addr;
        o->event.incarnation = mem->incarnation;
        o->event.from_state = from;
        o->event.to_state = (enum membership_state)mem->state;
        va_start(ap, fmt);
        vsnprintf(o->event.cause, sizeof(o->event.cause), fmt, ap);
        va_end(ap);
}

static void emit_persist(struct membership *m, enum membership_persist what, uint32_t slot) {
        struct membership_output *o = out_push(m, MEMBERSHIP_OUT_PERSIST);

        if (!o)
                return;
        o->persist.what = what;
        if (what != MEMBERSHIP_PERSIST_SELF)
                copy_name(o->persist.name, slot_member(m, slot)->name, slot_member(m, slot)->name_len);
}

static void emit_pushpull(struct membership *m, const struct wire_addr *to, bool join) {
        struct membership_output *o = out_push(m, MEMBERSHIP_OUT_PUSHPULL);

        if (!o)
                return;
        o->pushpull.to = *to;
        o->pushpull.join = join;
        m->counters.pushpulls_started++;
}

/* --- name table ----------------------------------------------------------- */

/* 32 bits of the name hash: the table keeps them to skip most name compares. */
static uint32_t name_hash32(const char *name, size_t len) {
        uint64_t h = hash_name(name, len);

        return (uint32_t)(h ^ (h >> 32));
}

static uint32_t find_slot(const struct membership *m, const char *name, size_t len) {
        uint32_t h = name_hash32(name, len), i = h & m->hash_mask;

        for (;;) {
                const struct hent *e = &m->hash[i];

                if (e->slot == NONE)
                        return NONE;
                if (e->h == h && m->members[e->slot].name_len == len &&
                    memcmp(m->members[e->slot].name, name, len) == 0)
                        return e->slot;
                i = (i + 1) & m->hash_mask;
        }
}

static void hash_insert(struct membership *m, uint32_t slot) {
        const struct member *mem = &m->members[slot];
        uint32_t h = name_hash32(mem->name, mem->name_len), i = h & m->hash_mask;

        while (m->hash[i].slot != NONE)
                i = (i + 1) & m->hash_mask;
        m->hash[i] = (struct hent){ .slot = slot, .h = h };
}

/* Linear-probing deletion with backward shift, so lookups need no tombstones. */
static void hash_delete(struct membership *m, uint32_t slot) {
        const struct member *mem = &m->members[slot];
        uint32_t i = name_hash32(mem->name, mem->name_len) & m->hash_mask, j;

        while (m->hash[i].slot != slot) {
                if (m->hash[i].slot == NONE)
                        return;
                i = (i + 1) & m->hash_mask;
        }
        j = i;
        for (;;) {
                uint32_t k;

                j = (j + 1) & m->hash_mask;
                if (m->hash[j].slot == NONE)
                        break;
                k = m->hash[j].h & m->hash_mask;
                /* Leave entries whose home lies cyclically in (i, j]. */
                if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                        continue;
                m->hash[i] = m->hash[j];
                i = j;
        }
        m->hash[i].slot = NONE;
}

/* Sizes the table to at least twice the slots and reinserts everything. */
static int hash_rebuild(struct membership *m, uint32_t want_slots) {
        uint32_t size = 16;
        struct hent *h;

        while (size < 2 * want_slots)
                size *= 2;
        h = malloc(size * sizeof(*h));
        if (!h)
                return -ENOMEM;
        for (uint32_t i = 0; i < size; i++)
                h[i].slot = NONE;
        free(m->hash);
        m->hash = h;
        m->hash_mask = size - 1;
        for (uint32_t s = 0; s < m->n_slots; s++)
                if (m->members[s].state != 0)
                        hash_insert(m, s);
        return 0;
}

/* --- broadcast queue -------------------------------------------------------- */

static void bq_unlink(struct membership *m, uint32_t slot) {
        struct member *mem = slot_member(m, slot);

        if (!mem->queued)
                return;
        if (mem->bq_prev != NONE)
                slot_member(m, mem->bq_prev)->bq_next = mem->bq_next;
        else
                m->bq_head[mem->transmits] = mem->bq_next;
        if (mem->bq_next != NONE)
                slot_member(m, mem->bq_next)->bq_prev = mem->bq_prev;
        mem->queued = false;
        m->n_queued--;
}

static void bq_link(struct membership *m, uint32_t slot, uint8_t transmits) {
        struct member *mem = slot_member(m, slot);

        mem->transmits = transmits;
        mem->bq_prev = NONE;
        mem->bq_next = m->bq_head[transmits];
        if (mem->bq_next != NONE)
                slot_member(m, mem->bq_next)->bq_prev = slot;
        m->bq_head[transmits] = slot;
        mem->queued = true;
        m->n_queued++;
}

/* Queues the member's current state as news: it goes out first. */
static void bq_push(struct membership *m, uint32_t slot) {
        bq_unlink(m, slot);
        bq_link(m, slot, 0);
}

/* --- slots, probe order, suspicion list -------------------------------------- */

static void order_add(struct membership *m, uint32_t slot) {
        /* A newcomer goes to a random place so it is probed within about one round. */
        uint32_t pos = rng_below(m, m->n_order + 1);

        if (pos < m->n_order) {
                uint32_t moved = m->order[pos];

                m->order[m->n_order] = moved;
                slot_member(m, moved)->order_pos = m->n_order;
        }
        m->order[pos] = slot;
        slot_member(m, slot)->order_pos = pos;
        m->n_order++;
}

static void order_remove(struct membership *m, uint32_t slot) {
        uint32_t pos = slot_member(m, slot)->order_pos, last = m->n_order - 1;

        m->order[pos] = m->order[last];
        slot_member(m, m->order[pos])->order_pos = pos;
        m->n_order--;
        slot_member(m, slot)->order_pos = NONE;
        if (m->order_idx > m->n_order)
                m->order_idx = m->n_order;
}

static void census_add(struct membership *m, uint8_t state, int delta) {
        size_t *c = NULL;

        switch (state) {
        case MEMBERSHIP_ALIVE:
                c = &m->census.alive;
                break;
        case MEMBERSHIP_SUSPECT:
                c = &m->census.suspect;
                break;
        case MEMBERSHIP_DEAD:
                c = &m->census.dead;
                break;
        case MEMBERSHIP_LEFT:
                c = &m->census.left;
                break;
        default:
                return;
        }
        *c = (size_t)((ptrdiff_t)*c + delta);
}

static void suspicion_clear(struct membership *m, uint32_t slot) {
        struct member *mem = slot_member(m, slot);
        uint32_t pos, last;

        if (!mem->susp)
                return;
        pos = mem->susp_pos;
        last = m->n_suspects - 1;
        m->suspects[pos] = m->suspects[last];
        slot_member(m, m->suspects[pos])->susp_pos = pos;
        m->n_suspects--;
        free(mem->susp);
        mem->susp = NULL;
        mem->susp_pos = NONE;
}

static void set_state(struct membership *m, uint64_t now, uint32_t slot, enum membership_state s) {
        struct member *mem = slot_member(m, slot);

        if (mem->state == s)
                return;
        census_add(m, mem->state, -1);
        census_add(m, (uint8_t)s, +1);
        mem->state = (uint8_t)s;
        mem->state_change = now;
        if (s != MEMBERSHIP_SUSPECT)
                suspicion_clear(m, slot);
}

static int set_meta(struct member *mem, const uint8_t *meta, size_t len) {
        uint8_t *copy = NULL;

        if (len == mem->meta_len && (len == 0 || memcmp(mem->meta, meta, len) == 0))
                return 0;
        if (len > 0) {
                copy = malloc(len);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, meta, len);
        }
        free(mem->meta);
        mem->meta = copy;
        mem->meta_len = (uint16_t)len;
        return 0;
}

/* Grows the slot arrays so one more member fits; returns the slot or NONE. */
static uint32_t slot_alloc(struct membership *m) {
        uint32_t slot;

        if (m->n_free > 0)
                return m->free_slots[--m->n_free];
        if (m->n_slots == m->cap_slots) {
                uint32_t cap = m->cap_slots ? m->cap_slots * 2 : 16;
                struct member *mem;
                uint32_t *o, *s, *f;

                if (cap > m->cfg.max_members)
                        cap = (uint32_t)m->cfg.max_members;
                if (cap <= m->n_slots)
                        return NONE;
                mem = realloc(m->members, cap * sizeof(*mem));
                if (!mem)
                        return NONE;
                m->members = mem;
                o = realloc(m->order, cap * sizeof(*o));
                if (!o)
                        return NONE;
                m->order = o;
                s = realloc(m->suspects, cap * sizeof(*s));
                if (!s)
                        return NONE;
                m->suspects = s;
                f = realloc(m->free_slots, cap * sizeof(*f));
                if (!f)
                        return NONE;
                m->free_slots = f;
                m->cap_slots = cap;
                if (hash_rebuild(m, cap) < 0)
                        return NONE;
        }
        slot = m->n_slots++;
        m->members[slot].state = 0;
        return slot;
}

static void member_remove(struct membership *m, uint32_t slot) {
        struct member *mem = slot_member(m, slot);

        emit_persist(m, MEMBERSHIP_PERSIST_REMOVED, slot);
        bq_unlink(m, slot);
        suspicion_clear(m, slot);
        order_remove(m, slot);
        census_add(m, mem->state, -1);
        if (m->probe.active && m->probe.target == slot)
                m->probe.active = false;
        /*
         * Others may still name this slot as the one that declared them dead;
         * that name is informational only, so a reused slot is harmless.
         */
        hash_delete(m, slot);
        free(mem->meta);
        memset(mem, 0, sizeof(*mem));
        m->free_slots[m->n_free++] = slot;
}

/* Forgets the member that left longest ago; false when none has left. */
static bool reap_oldest_left(struct membership *m) {
        uint32_t best = NONE;

        for (uint32_t s = 1; s < m->n_slots; s++)
                if (m->members[s].state == MEMBERSHIP_LEFT &&
                    (best == NONE || m->members[s].state_change < m->members[best].state_change))
                        best = s;
        if (best == NONE)
                return false;
        member_remove(m, best);
        return true;
}

static uint32_t member_add(struct membership *m, uint64_t now, const struct wire_update *u) {
        uint32_t slot;
        struct member *mem;

        if (m->census.alive + m->census.suspect + m->census.dead + m->census.left >= m->cfg.max_members &&
            !reap_oldest_left(m)) {
                m->counters.updates_dropped++;
                return NONE;
        }
        slot = slot_alloc(m);
        if (slot == NONE) {
                m->counters.updates_dropped++;
                return NONE;
        }
        mem = slot_member(m, slot);
        memset(mem, 0, sizeof(*mem));
        copy_name(mem->name, u->name, u->name_len);
        mem->name_len = u->name_len;
        mem->incarnation = u->incarnation;
        mem->addr = u->addr;
        mem->order_pos = NONE;
        mem->susp_pos = NONE;
        mem->dead_from = NONE;
        mem->bq_prev = mem->bq_next = NONE;
        if (set_meta(mem, u->meta, u->meta_len) < 0) {
                m->free_slots[m->n_free++] = slot;
                m->counters.updates_dropped++;
                return NONE;
        }
        mem->state = MEMBERSHIP_ALIVE;
        mem->state_change = now;
        census_add(m, MEMBERSHIP_ALIVE, +1);
        hash_insert(m, slot);
        order_add(m, slot);
        return slot;
}

/* --- packets --------------------------------------------------------------- */

static const char *dead_from_name(struct membership *m, const struct member *mem, uint8_t *ret_len) {
        const struct member *f = mem->dead_from != NONE ? slot_member(m, mem->dead_from) : self_member(m);

        if (f->state == 0)
                f = self_member(m);
        *ret_len = f->name_len;
        return f->name;
}

/* The member's current state as a gossip update (borrowing its storage). */
static void member_update(struct membership *m, uint32_t slot, struct wire_update *u) {
        struct member *mem = slot_member(m, slot);

        *u = (struct wire_update){
                .kind = mem->state,
                .name = mem->name,
                .name_len = mem->name_len,
                .incarnation = mem->incarnation,
        };
        switch (mem->state) {
        case MEMBERSHIP_ALIVE:
                u->addr = mem->addr;
                u->meta = mem->meta;
                u->meta_len = mem->meta_len;
                break;
        case MEMBERSHIP_SUSPECT:
                u->from = mem->susp ? mem->susp->from : self_member(m)->name;
                u->from_len = (uint8_t)strlen(u->from);
                break;
        case MEMBERSHIP_DEAD:
                u->from = dead_from_name(m, mem, &u->from_len);
                break;
        default:
                break;
        }
}

/*
 * Fills msg with queued updates, least-transmitted first, up to the packet
 * budget, encodes it into the output arena and emits a SEND. `buddy`, when
 * it is a suspect, gets its own suspicion first (Lifeguard's buddy system:
 * a suspected member learns it from the very probe that tests it).
 */
static void send_packet(struct membership *m, const struct wire_addr *to, struct wire_msg *msg, uint32_t buddy) {
        uint32_t picked[WIRE_UPDATES_MAX];
        size_t n_picked = 0, used, budget = m->cfg.packet_budget, len;
        unsigned limit = transmit_limit(m);
        struct membership_output *o;
        uint8_t *buf;
        bool buddy_in = false;

        msg->n_updates = 0;
        used = wire_msg_header_size(msg);
        if (used == 0 || used > budget)
                return;
        if (buddy != NONE && slot_member(m, buddy)->state == MEMBERSHIP_SUSPECT) {
                struct wire_update *u = &msg->updates[msg->n_updates];

                member_update(m, buddy, u);
                used += wire_update_size(u);
                msg->n_updates++;
                buddy_in = true;
        }
        for (unsigned t = 0; t < BUCKETS && msg->n_updates < WIRE_UPDATES_MAX; t++) {
                for (uint32_t s = m->bq_head[t]; s != NONE && msg->n_updates < WIRE_UPDATES_MAX;
                     s = slot_member(m, s)->bq_next) {
                        struct wire_update *u = &msg->updates[msg->n_updates];
                        size_t sz;

                        if (budget - used < UPDATE_MIN)
                                break;
                        if (buddy_in && s == buddy)
                                continue;
                        member_update(m, s, u);
                        sz = wire_update_size(u);
                        if (sz == 0 || used + sz > budget)
                                continue;
                        used += sz;
                        msg->n_updates++;
                        picked[n_picked++] = s;
                }
                if (budget - used < UPDATE_MIN)
                        break;
        }

        buf = arena_reserve(m, used);
        if (!buf || wire_encode(msg, buf, used, &len) < 0)
                return;
        o = out_push(m, MEMBERSHIP_OUT_SEND);
        if (!o)
                return;
        m->out_off[m->n_out - 1] = m->arena_used;
        m->arena_used += len;
        o->send.to = *to;
        o->send.msg_type = msg->type;
        o->send.len = len;
        m->counters.msgs_sent++;
        m->counters.bytes_sent += len;
        m->counters.updates_sent += msg->n_updates;

        for (size_t i = 0; i < n_picked; i++) {
                struct member *mem = slot_member(m, picked[i]);
                unsigned t = mem->transmits + 1u;

                bq_unlink(m, picked[i]);
                if (t < limit)
                        bq_link(m, picked[i], (uint8_t)t);
        }
}

static void send_simple(struct membership *m, const struct wire_addr *to, enum wire_msg_type type, uint32_t seq,
                        uint32_t target, uint32_t buddy) {
        struct wire_msg msg;

        msg.type = (uint8_t)type;
        msg.seq = seq;
        msg.target = NULL;
        msg.target_len = 0;
        msg.target_addr = (struct wire_addr){};
        if (target != NONE) {
                msg.target = slot_member(m, target)->name;
                msg.target_len = slot_member(m, target)->name_len;
                msg.target_addr = slot_member(m, target)->addr;
        }
        send_packet(m, to, &msg, buddy);
}

/* Up to k distinct random members in `state_mask` states, not `skip`. */
static size_t random_members(struct membership *m, unsigned state_mask, uint32_t skip, uint32_t *ret, size_t k) {
        size_t n = 0;

        if (m->n_order == 0 || k == 0)
                return 0;
        /* Random picks first (cheap when most members qualify), then a sweep. */
        for (uint32_t tries = 0; tries < 3 * k + 3 && n < k; tries++) {
                uint32_t s = m->order[rng_below(m, m->n_order)];
                bool dup = false;

                if (s == skip || !(state_mask & (1u << slot_member(m, s)->state)))
                        continue;
                for (size_t i = 0; i < n; i++)
                        dup |= ret[i] == s;
                if (!dup)
                        ret[n++] = s;
        }
        if (n < k) {
                uint32_t start = rng_below(m, m->n_order);

                for (uint32_t i = 0; i < m->n_order && n < k; i++) {
                        uint32_t s = m->order[(start + i) % m->n_order];
                        bool dup = false;

                        if (s == skip || !(state_mask & (1u << slot_member(m, s)->state)))
                                continue;
                        for (size_t j = 0; j < n; j++)
                                dup |= ret[j] == s;
                        if (!dup)
                                ret[n++] = s;
                }
        }
        return n;
}

#define MASK_ALIVE (1u << MEMBERSHIP_ALIVE)
#define MASK_LIVE ((1u << MEMBERSHIP_ALIVE) | (1u << MEMBERSHIP_SUSPECT))
#define MASK_DEAD (1u << MEMBERSHIP_DEAD)

/* --- state changes ----------------------------------------------------------- */

static void refute(struct membership *m, uint64_t now, uint64_t heard, const char *what, const char *by,
                   size_t by_len) {
        struct member *me = self_member(m);
        uint64_t old = me->incarnation;

        me->incarnation = (heard > old ? heard : old) + 1;
        m->counters.refutations++;
        awareness_delta(m, +1);
        emit_event(m, EVENT_MEMBER_REFUTED, SELF, MEMBERSHIP_ALIVE, "%s at incarnation %llu by %.*s; now %llu", what,
                   (unsigned long long)heard, (int)by_len, by, (unsigned long long)me->incarnation);
        emit_persist(m, MEMBERSHIP_PERSIST_SELF, SELF);
        bq_push(m, SELF);
        (void)now;
}

static void apply_alive(struct membership *m, uint64_t now, const struct wire_update *u, bool gossip) {
        uint32_t slot = find_slot(m, u->name, u->name_len);
        struct member *mem;
        enum membership_state old;
        bool changed;

        if (slot == SELF) {
                /* Someone holds a newer alive of ours than we do (we lost it): go above. */
                if (!m->leaving && u->incarnation > self_member(m)->incarnation)
                        refute(m, now, u->incarnation, "alive from an earlier run", "a peer", 6);
                return;
        }
        if (slot == NONE) {
                slot = member_add(m, now, u);
                if (slot == NONE)
                        return;
                emit_event(m, EVENT_MEMBER_JOINED, slot, MEMBERSHIP_ALIVE, "joined at incarnation %llu",
                           (unsigned long long)u->incarnation);
                emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
                if (gossip)
                        bq_push(m, slot);
                return;
        }
        mem = slot_member(m, slot);
        /* For one incarnation suspect, dead and left all beat alive. */
        if (u->incarnation <= mem->incarnation)
                return;
        old = (enum membership_state)mem->state;
        changed = !wire_addr_equal(&mem->addr, &u->addr);
        mem->incarnation = u->incarnation;
        mem->addr = u->addr;
        (void)set_meta(mem, u->meta, u->meta_len);
        set_state(m, now, slot, MEMBERSHIP_ALIVE);
        if (old == MEMBERSHIP_LEFT)
                emit_event(m, EVENT_MEMBER_JOINED, slot, old, "rejoined at incarnation %llu",
                           (unsigned long long)u->incarnation);
        else if (old == MEMBERSHIP_SUSPECT)
                emit_event(m, EVENT_MEMBER_ALIVE, slot, old, "refuted suspicion with incarnation %llu",
                           (unsigned long long)u->incarnation);
        else if (old == MEMBERSHIP_DEAD)
                emit_event(m, EVENT_MEMBER_ALIVE, slot, old, "alive again at incarnation %llu",
                           (unsigned long long)u->incarnation);
        else if (changed) {
                char a[WIRE_ADDR_STRLEN];

                emit_event(m, EVENT_MEMBER_ALIVE, slot, old, "moved to %s at incarnation %llu",
                           wire_addr_to_string(&u->addr, a), (unsigned long long)u->incarnation);
        }
        emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
        if (gossip)
                bq_push(m, slot);
}

/*
 * Lifeguard's dynamic suspicion timeout: max when only the first suspector
 * speaks, falling logarithmically to min as c of the k expected independent
 * confirmations arrive.
 */
static uint64_t suspicion_timeout(const struct suspicion *s) {
        unsigned c = s->n_suspectors - 1;
        uint64_t span, frac;

        if (s->k == 0 || c >= s->k)
                return s->min_us;
        span = s->max_us - s->min_us;
        frac = (log2_q16(c + 1) << 16) / log2_q16(s->k + 1);    /* Q16 in [0, 1) */
        return s->max_us - (uint64_t)(((unsigned __int128)span * frac) >> 16);
}

static void suspicion_start(struct membership *m, uint64_t now, uint32_t slot, const char *from, size_t from_len) {
        struct suspicion *s = calloc(1, sizeof(*s));
        struct member *mem = slot_member(m, slot);
        uint64_t n = n_live(m), scale;

        if (!s)
                return;
        /* min = mult * max(1, log10 n) * interval, with log10 in Q16. */
        scale = n > 10 ? (log2_q16(n) << 16) / log2_q16(10) : UINT64_C(1) << 16;
        s->min_us = (uint64_t)(((unsigned __int128)m->cfg.suspicion_mult * scale * m->cfg.probe_interval_us) >> 16);
        s->max_us = s->min_us * m->cfg.suspicion_max_timeout_mult;
        s->k = m->cfg.suspicion_confirmations;
        if (n < 2 || n - 2 < s->k)
                s->k = 0;
        s->start = now;
        s->n_suspectors = 1;
        s->suspectors[0] = hash_name(from, from_len);
        copy_name(s->origin, from, from_len);
        copy_name(s->from, from, from_len);
        s->deadline = now + suspicion_timeout(s);
        mem->susp = s;
        mem->susp_pos = m->n_suspects;
        m->suspects[m->n_suspects++] = slot;
}

/* A further suspector: true when it is new (and so worth re-gossiping). */
static bool suspicion_confirm(struct suspicion *s, const char *from, size_t from_len) {
        uint64_t h = hash_name(from, from_len);

        for (unsigned i = 0; i < s->n_suspectors; i++)
                if (s->suspectors[i] == h)
                        return false;
        if (s->n_suspectors > s->k)
                return false;   /* already at the minimum */
        s->suspectors[s->n_suspectors++] = h;
        copy_name(s->from, from, from_len);
        s->deadline = s->start + suspicion_timeout(s);
        return true;
}

/*
 * `cause` explains a suspicion we raise ourselves; NULL means we heard it
 * from `u->from`.
 */
static void apply_suspect(struct membership *m, uint64_t now, const struct wire_update *u, const char *cause) {
        uint32_t slot = find_slot(m, u->name, u->name_len);
        struct member *mem;
        enum membership_state old;

        if (slot == SELF) {
                if (!m->leaving && u->incarnation >= self_member(m)->incarnation)
                        refute(m, now, u->incarnation, u->kind == WIRE_STATE_DEAD ? "declared dead" : "suspected",
                               u->from, u->from_len);
                return;
        }
        if (slot == NONE)
                return;
        mem = slot_member(m, slot);
        if (u->incarnation < mem->incarnation || mem->state == MEMBERSHIP_DEAD || mem->state == MEMBERSHIP_LEFT)
                return;
        if (mem->state == MEMBERSHIP_SUSPECT && u->incarnation == mem->incarnation) {
                if (mem->susp && suspicion_confirm(mem->susp, u->from, u->from_len))
                        bq_push(m, slot);
                return;
        }
        old = (enum membership_state)mem->state;
        suspicion_clear(m, slot);
        mem->incarnation = u->incarnation;
        set_state(m, now, slot, MEMBERSHIP_SUSPECT);
        suspicion_start(m, now, slot, u->from, u->from_len);
        m->counters.suspicions++;
        if (cause)
                emit_event(m, EVENT_MEMBER_SUSPECT, slot, old, "%s", cause);
        else
                emit_event(m, EVENT_MEMBER_SUSPECT, slot, old, "suspected by %.*s", (int)u->from_len, u->from);
        emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
        bq_push(m, slot);
}

static void apply_dead(struct membership *m, uint64_t now, const struct wire_update *u) {
        uint32_t slot = find_slot(m, u->name, u->name_len);
        struct member *mem;
        enum membership_state old;

        if (slot == SELF) {
                if (!m->leaving && u->incarnation >= self_member(m)->incarnation)
                        refute(m, now, u->incarnation, "declared dead", u->from, u->from_len);
                return;
        }
        if (slot == NONE)
                return;
        mem = slot_member(m, slot);
        if (u->incarnation < mem->incarnation || mem->state == MEMBERSHIP_DEAD || mem->state == MEMBERSHIP_LEFT)
                return;
        old = (enum membership_state)mem->state;
        mem->incarnation = u->incarnation;
        mem->dead_from = find_slot(m, u->from, u->from_len);
        set_state(m, now, slot, MEMBERSHIP_DEAD);
        m->counters.deaths++;
        emit_event(m, EVENT_MEMBER_DEAD, slot, old, "declared dead by %.*s", (int)u->from_len, u->from);
        emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
        bq_push(m, slot);
}

static void apply_left(struct membership *m, uint64_t now, const struct wire_update *u, const char *cause) {
        uint32_t slot = find_slot(m, u->name, u->name_len);
        struct member *mem;
        enum membership_state old;

        if (slot == SELF) {
                if (!m->leaving && u->incarnation >= self_member(m)->incarnation)
                        refute(m, now, u->incarnation, "reported left", "a peer", 6);
                return;
        }
        if (slot == NONE)
                return;
        mem = slot_member(m, slot);
        if (u->incarnation < mem->incarnation || mem->state == MEMBERSHIP_LEFT)
                return;
        old = (enum membership_state)mem->state;
        mem->incarnation = u->incarnation;
        set_state(m, now, slot, MEMBERSHIP_LEFT);
        emit_event(m, EVENT_MEMBER_LEFT, slot, old, "%s", cause ? cause : "left the cluster");
        emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
        bq_push(m, slot);
}

static void apply_update(struct membership *m, uint64_t now, const struct wire_update *u) {
        switch (u->kind) {
        case WIRE_STATE_ALIVE:
                apply_alive(m, now, u, true);
                break;
        case WIRE_STATE_SUSPECT:
                apply_suspect(m, now, u, NULL);
                break;
        case WIRE_STATE_DEAD:
                apply_dead(m, now, u);
                break;
        case WIRE_STATE_LEFT:
                apply_left(m, now, u, NULL);
                break;
        default:
                break;
        }
}

/* --- lifecycle ---------------------------------------------------------------- */

int membership_new(const struct membership_config *cfg, const char *name, const struct wire_addr *addr,
                   uint64_t incarnation, const uint8_t *meta, size_t meta_len, const struct membership_rng *rng,
                   struct membership **ret) {
        struct membership *m;
        struct wire_update u;
        size_t len;

        if (!ret || !name || !addr || !rng || !rng->next || membership_config_validate(cfg, NULL) < 0)
                return -EINVAL;
        len = strnlen(name, WIRE_NAME_MAX + 1);
        if (!wire_name_valid(name, len) || !wire_addr_valid(addr) || meta_len > WIRE_META_MAX ||
            (meta_len > 0 && !meta))
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->cfg = *cfg;
        m->rng = *rng;
        m->probe.target = NONE;
        for (unsigned i = 0; i < BUCKETS; i++)
                m->bq_head[i] = NONE;
        if (hash_rebuild(m, 16) < 0) {
                free(m);
                return -ENOMEM;
        }
        u = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .name = name, .name_len = (uint8_t)len,
                                  .incarnation = incarnation, .addr = *addr, .meta = meta,
                                  .meta_len = (uint16_t)meta_len };
        if (slot_alloc(m) != SELF) {
                membership_free(m);
                return -ENOMEM;
        }
        {
                struct member *me = self_member(m);

                memset(me, 0, sizeof(*me));
                copy_name(me->name, name, len);
                me->name_len = (uint8_t)len;
                me->incarnation = incarnation;
                me->addr = *addr;
                me->order_pos = me->susp_pos = me->dead_from = NONE;
                me->bq_prev = me->bq_next = NONE;
                me->state = MEMBERSHIP_ALIVE;
                census_add(m, MEMBERSHIP_ALIVE, +1);
                if (set_meta(me, u.meta, u.meta_len) < 0) {
                        membership_free(m);
                        return -ENOMEM;
                }
                hash_insert(m, SELF);
        }
        /* Our own alive is the first news we have for anyone we meet. */
        bq_push(m, SELF);
        m->seq = (uint32_t)rng_u64(m);
        *ret = m;
        return 0;
}

void membership_free(struct membership *m) {
        if (!m)
                return;
        for (uint32_t s = 0; s < m->n_slots; s++) {
                free(m->members[s].meta);
                free(m->members[s].susp);
        }
        free(m->members);
        free(m->free_slots);
        free(m->hash);
        free(m->order);
        free(m->suspects);
        free(m->relays);
        free(m->out);
        free(m->out_off);
        free(m->arena);
        free(m);
}

int membership_set_config(struct membership *m, const struct membership_config *cfg) {
        if (!m || membership_config_validate(cfg, NULL) < 0)
                return -EINVAL;
        /* Never below the members we already hold. */
        if (cfg->max_members < m->n_slots - m->n_free)
                return -EINVAL;
        m->cfg = *cfg;
        awareness_delta(m, 0);
        return 0;
}

/* The first input fixes the time base; jitter keeps nodes from probing in lockstep. */
static void start(struct membership *m, uint64_t now) {
        if (m->started)
                return;
        m->started = true;
        m->next_probe_at = now + rng_below64(m, m->cfg.probe_interval_us);
        m->next_gossip_at = now;
        m->next_pushpull_at = now + m->cfg.pushpull_interval_us + rng_below64(m, m->cfg.pushpull_interval_us / 2 + 1);
        m->next_reprobe_at = now + m->cfg.dead_reprobe_interval_us +
                             rng_below64(m, m->cfg.dead_reprobe_interval_us / 2 + 1);
        m->next_reap_at = now + REAP_CHECK_US;
}

static uint64_t compute_deadline(const struct membership *m);

/* Ends every public input: send buffers get their final addresses, the deadline is recomputed. */
static void finish(struct membership *m) {
        out_fixup(m);
        m->deadline = compute_deadline(m);
}

/* --- probing ------------------------------------------------------------------ */

static uint32_t next_probe_target(struct membership *m) {
        for (uint32_t i = 0; i <= m->n_order; i++) {
                uint32_t s;

                if (m->order_idx >= m->n_order) {
                        /* A new round in a new random order (Fisher-Yates). */
                        for (uint32_t j = m->n_order; j > 1; j--) {
                                uint32_t k = rng_below(m, j), t = m->order[j - 1];

                                m->order[j - 1] = m->order[k];
                                m->order[k] = t;
                                slot_member(m, m->order[j - 1])->order_pos = j - 1;
                                slot_member(m, m->order[k])->order_pos = k;
                        }
                        m->order_idx = 0;
                        if (m->n_order == 0)
                                return NONE;
                }
                s = m->order[m->order_idx++];
                if (slot_member(m, s)->state == MEMBERSHIP_ALIVE || slot_member(m, s)->state == MEMBERSHIP_SUSPECT)
                        return s;
        }
        return NONE;
}

static void probe_start(struct membership *m, uint64_t now) {
        uint64_t interval = scaled(m, m->cfg.probe_interval_us);
        uint32_t target;

        m->next_probe_at = now + interval;
        target = next_probe_target(m);
        if (target == NONE)
                return;
        m->probe = (struct probe){
                .active = true,
                .target = target,
                .seq = ++m->seq,
                .sent = now,
                .timeout_at = now + scaled(m, m->cfg.probe_timeout_us),
                .end_at = now + interval,
        };
        m->counters.probes++;
        send_simple(m, &slot_member(m, target)->addr, WIRE_MSG_PING, m->probe.seq, target, target);
}

static void probe_indirect(struct membership *m) {
        uint32_t relays[16];
        size_t n;

        m->probe.indirect = true;
        n = random_members(m, MASK_ALIVE, m->probe.target, relays, m->cfg.indirect_checks);
        m->probe.expected_nacks = (unsigned)n;
        for (size_t i = 0; i < n; i++) {
                send_simple(m, &slot_member(m, relays[i])->addr, WIRE_MSG_PING_REQ, m->probe.seq, m->probe.target,
                            NONE);
                m->counters.ping_reqs_sent++;
        }
}

static void probe_finish(struct membership *m, uint64_t now) {
        struct probe *p = &m->probe;
        struct member *t = slot_member(m, p->target);
        struct wire_update u;
        char cause[MEMBERSHIP_CAUSE_MAX];

        p->active = false;
        if (p->acked || (t->state != MEMBERSHIP_ALIVE && t->state != MEMBERSHIP_SUSPECT))
                return;
        /*
         * We ran a full probe timeout late: the loop was stalled, so the ack
         * may be waiting unread. Judging the target now would blame it for
         * our own slowness; count it against our health instead.
         */
        if (now > p->end_at + scaled(m, m->cfg.probe_timeout_us)) {
                m->counters.probes_void++;
                awareness_delta(m, +1);
                return;
        }
        m->counters.probes_failed++;
        /* Lifeguard: missing nacks mean our own network or CPU is the problem. */
        awareness_delta(m, p->expected_nacks > 0 ? (int)(p->expected_nacks - p->nacks) : 1);
        if (p->expected_nacks > 0)
                snprintf(cause, sizeof(cause), "no ack from %s after %u indirect probes (%u nacks)", t->name,
                         p->expected_nacks, p->nacks);
        else
                snprintf(cause, sizeof(cause), "no ack from %s (no member to probe it indirectly)", t->name);
        u = (struct wire_update){ .kind = WIRE_STATE_SUSPECT, .name = t->name, .name_len = t->name_len,
                                  .incarnation = t->incarnation, .from = self_member(m)->name,
                                  .from_len = self_member(m)->name_len };
        apply_suspect(m, now, &u, cause);
}

static void on_ack(struct membership *m, uint64_t now, uint32_t seq) {
        struct probe *p = &m->probe;

        if (p->active && !p->acked && seq == p->seq) {
                struct member *t = slot_member(m, p->target);

                p->acked = true;
                if (!p->indirect) {
                        uint64_t rtt = now - p->sent;

                        if (rtt > UINT32_MAX)
                                rtt = UINT32_MAX;
                        t->rtt_us = t->rtt_us == 0 ? (uint32_t)rtt : (uint32_t)((7 * (uint64_t)t->rtt_us + rtt) / 8);
                        if (t->rtt_us == 0)
                                t->rtt_us = 1;
                        m->counters.probes_acked++;
                        awareness_delta(m, -1);
                } else
                        m->counters.probes_indirect_acked++;
                return;
        }
        for (uint32_t i = 0; m->n_relays > 0 && i < MEMBERSHIP_RELAYS_MAX; i++) {
                struct relay *r = &m->relays[i];

                if (r->used && r->seq == seq) {
                        send_simple(m, &r->req_addr, WIRE_MSG_ACK, r->req_seq, NONE, NONE);
                        r->used = false;
                        m->n_relays--;
                        return;
                }
        }
        m->counters.msgs_ignored++;
}

static void on_ping_req(struct membership *m, uint64_t now, const struct wire_addr *from, const struct wire_msg *msg) {
        struct relay *r = NULL;
        uint64_t timeout = scaled(m, m->cfg.probe_timeout_us);
        struct wire_msg ping;

        if (msg->target_len == self_member(m)->name_len &&
            memcmp(msg->target, self_member(m)->name, msg->target_len) == 0) {
                send_simple(m, from, WIRE_MSG_ACK, msg->seq, NONE, NONE);
                return;
        }
        if (!m->relays) {
                m->relays = calloc(MEMBERSHIP_RELAYS_MAX, sizeof(*m->relays));
                if (!m->relays)
                        return;
        }
        for (uint32_t i = 0; i < MEMBERSHIP_RELAYS_MAX && !r; i++)
                if (!m->relays[i].used)
                        r = &m->relays[i];
        if (!r) {
                m->counters.ping_reqs_dropped++;
                return;
        }
        *r = (struct relay){
                .used = true,
                .seq = ++m->seq,
                .req_seq = msg->seq,
                .req_addr = *from,
                /* Nack early enough that it reaches the requester before its probe ends. */
                .nack_at = now + timeout * 4 / 5,
                .expire_at = now + 2 * timeout,
        };
        m->n_relays++;
        m->counters.ping_reqs_relayed++;
        ping = (struct wire_msg){ .type = WIRE_MSG_PING, .seq = r->seq, .target = msg->target,
                                  .target_len = msg->target_len };
        send_packet(m, &msg->target_addr, &ping, find_slot(m, msg->target, msg->target_len));
}

/* True when a live member (alive or suspect) has this address. */
static bool addr_known(const struct membership *m, const struct wire_addr *a) {
        if (wire_addr_equal(a, &m->members[SELF].addr))
                return true;
        for (uint32_t i = 0; i < m->n_order; i++) {
                const struct member *mem = &m->members[m->order[i]];

                if ((mem->state == MEMBERSHIP_ALIVE || mem->state == MEMBERSHIP_SUSPECT) &&
                    wire_addr_equal(&mem->addr, a))
                        return true;
        }
        return false;
}

/*
 * A ping for us from an address no live member has: the prober knows us,
 * but its own alive has not reached us, and pings carry no sender name.
 * Normally its news is just still on its way (a join burst); but when every
 * copy of it was spent before anyone told us (an epidemic that died out, a
 * lost packet), only a push-pull repairs it. So the address is remembered,
 * and if it is still a stranger STRANGER_GRACE_PERIODS probe intervals later
 * (long after a join burst's gossip has settled) we push-pull with it, which
 * merges both full states: the gap closes within one of the prober's probe
 * rounds plus the grace, not at the next periodic push-pull. One stranger is
 * tracked at a time and at most one such push-pull runs per grace, so a
 * flood of foreign pings cannot turn us into a push-pull source.
 */
static void stranger_note(struct membership *m, uint64_t now, const struct wire_addr *from) {
        if (m->leaving || m->stranger_pending || now < m->next_stranger_at || addr_known(m, from))
                return;
        m->stranger_pending = true;
        m->stranger_addr = *from;
        m->stranger_check_at = now + STRANGER_GRACE_PERIODS * scaled(m, m->cfg.probe_interval_us);
}

static void tick_stranger(struct membership *m, uint64_t now) {
        if (!m->stranger_pending || now < m->stranger_check_at)
                return;
        m->stranger_pending = false;
        m->next_stranger_at = now + STRANGER_GRACE_PERIODS * scaled(m, m->cfg.probe_interval_us);
        if (m->leaving || addr_known(m, &m->stranger_addr))
                return;
        m->counters.strangers_synced++;
        emit_pushpull(m, &m->stranger_addr, false);
}

/* --- timers ------------------------------------------------------------------- */

static void tick_relays(struct membership *m, uint64_t now) {
        for (uint32_t i = 0; m->n_relays > 0 && i < MEMBERSHIP_RELAYS_MAX; i++) {
                struct relay *r = &m->relays[i];

                if (!r->used)
                        continue;
                if (!r->nacked && now >= r->nack_at) {
                        r->nacked = true;
                        m->counters.nacks_sent++;
                        send_simple(m, &r->req_addr, WIRE_MSG_NACK, r->req_seq, NONE, NONE);
                }
                if (now >= r->expire_at) {
                        r->used = false;
                        m->n_relays--;
                }
        }
}

static void tick_suspicions(struct membership *m, uint64_t now) {
        for (uint32_t i = m->n_suspects; i-- > 0;) {
                uint32_t slot = m->suspects[i];
                struct member *mem = slot_member(m, slot);
                struct suspicion *s = mem->susp;
                char origin[WIRE_NAME_MAX + 1];
                unsigned confirmations, k;
                uint64_t took;

                if (now < s->deadline)
                        continue;
                /* Stalled past the deadline: refutations may be unread; one grace period. */
                if (!s->extended && now > s->deadline + scaled(m, m->cfg.probe_timeout_us)) {
                        s->extended = true;
                        s->deadline = now + m->cfg.probe_interval_us;
                        continue;
                }
                took = now - s->start;
                confirmations = s->n_suspectors - 1;
                k = s->k;
                memcpy(origin, s->origin, sizeof(origin));
                mem->dead_from = NONE;
                set_state(m, now, slot, MEMBERSHIP_DEAD);
                m->counters.deaths++;
                emit_event(m, EVENT_MEMBER_DEAD, slot, MEMBERSHIP_SUSPECT,
                           "suspected by %s; no refutation within %llu.%03llus (%u of %u confirmations)", origin,
                           (unsigned long long)(took / 1000000), (unsigned long long)(took / 1000 % 1000),
                           confirmations, k);
                emit_persist(m, MEMBERSHIP_PERSIST_MEMBER, slot);
                bq_push(m, slot);
        }
}

static void tick_gossip(struct membership *m, uint64_t now) {
        uint32_t to[16];
        size_t n;

        if (m->cfg.gossip_nodes == 0 || m->n_queued == 0 || now < m->next_gossip_at)
                return;
        m->next_gossip_at = now + m->cfg.gossip_interval_us;
        n = random_members(m, MASK_LIVE, NONE, to, m->cfg.gossip_nodes);
        for (size_t i = 0; i < n && m->n_queued > 0; i++) {
                struct wire_msg msg = { .type = WIRE_MSG_GOSSIP };

                send_packet(m, &slot_member(m, to[i])->addr, &msg, to[i]);
        }
}

/* memberlist's scaling: clusters above 32 members push-pull less often. */
static uint64_t pushpull_interval(const struct membership *m) {
        size_t n = n_live(m);
        uint64_t mult = 1;

        if (n > 32)
                mult = ((log2_q16(n) - log2_q16(32) + 0xffff) >> 16) + 1;
        return m->cfg.pushpull_interval_us * mult;
}

static void tick_pushpull(struct membership *m, uint64_t now) {
        uint32_t peer;

        if (m->cfg.pushpull_interval_us > 0 && now >= m->next_pushpull_at) {
                m->next_pushpull_at = now + pushpull_interval(m);
                if (!m->leaving && random_members(m, MASK_ALIVE, NONE, &peer, 1) == 1)
                        emit_pushpull(m, &slot_member(m, peer)->addr, false);
        }
        if (m->cfg.dead_reprobe_interval_us > 0 && now >= m->next_reprobe_at) {
                m->next_reprobe_at = now + m->cfg.dead_reprobe_interval_us;
                if (!m->leaving && random_members(m, MASK_DEAD, NONE, &peer, 1) == 1)
                        emit_pushpull(m, &slot_member(m, peer)->addr, false);
        }
}

static void join_attempt(struct membership *m, uint64_t now) {
        uint64_t b = m->join_backoff;

        for (size_t i = 0; i < m->n_seeds; i++)
                emit_pushpull(m, &m->seeds[i], true);
        m->next_join_at = now + b + rng_below64(m, b / 4 + 1);
        m->join_backoff = min64(b * 2, m->cfg.join_backoff_max_us);
}

static void tick_reap(struct membership *m, uint64_t now) {
        if (now < m->next_reap_at)
                return;
        m->next_reap_at = now + REAP_CHECK_US;
        for (uint32_t s = 1; s < m->n_slots; s++)
                if (m->members[s].state == MEMBERSHIP_LEFT && now - m->members[s].state_change >= m->cfg.left_reap_us)
                        member_remove(m, s);
}

void membership_tick(struct membership *m, uint64_t now) {
        if (!m)
                return;
        start(m, now);
        tick_relays(m, now);
        if (m->probe.active) {
                if (!m->probe.acked && !m->probe.indirect && now >= m->probe.timeout_at && now < m->probe.end_at)
                        probe_indirect(m);
                if (now >= m->probe.end_at)
                        probe_finish(m, now);
        }
        if (!m->leaving && now >= m->next_probe_at)
                probe_start(m, now);
        tick_suspicions(m, now);
        tick_gossip(m, now);
        tick_pushpull(m, now);
        tick_stranger(m, now);
        if (m->joining && !m->joined && now >= m->next_join_at)
                join_attempt(m, now);
        tick_reap(m, now);
        finish(m);
}

static uint64_t compute_deadline(const struct membership *m) {
        uint64_t d = UINT64_MAX;
        bool others = m->n_order > 0 && n_live(m) > (m->leaving ? 0u : 1u);

        if (!m->started)
                return 0;
        if (!m->leaving && m->n_order > 0)
                d = min64(d, m->next_probe_at);
        if (m->probe.active)
                d = min64(d, (m->probe.acked || m->probe.indirect) ? m->probe.end_at
                                                                     : min64(m->probe.timeout_at, m->probe.end_at));
        if (m->cfg.gossip_nodes > 0 && m->n_queued > 0 && others)
                d = min64(d, m->next_gossip_at);
        if (m->cfg.pushpull_interval_us > 0 && !m->leaving && m->census.alive > 1)
                d = min64(d, m->next_pushpull_at);
        if (m->cfg.dead_reprobe_interval_us > 0 && !m->leaving && m->census.dead > 0)
                d = min64(d, m->next_reprobe_at);
        if (m->joining && !m->joined)
                d = min64(d, m->next_join_at);
        if (m->stranger_pending)
                d = min64(d, m->stranger_check_at);
        if (m->census.left > (m->leaving ? 1u : 0u))
                d = min64(d, m->next_reap_at);
        for (uint32_t i = 0; i < m->n_suspects; i++)
                d = min64(d, m->members[m->suspects[i]].susp->deadline);
        for (uint32_t i = 0; m->n_relays > 0 && i < MEMBERSHIP_RELAYS_MAX; i++)
                if (m->relays[i].used)
                        d = min64(d, m->relays[i].nacked ? m->relays[i].expire_at : m->relays[i].nack_at);
        return d;
}

uint64_t membership_next_deadline(const struct membership *m) {
        if (!m || !m->started)
                return 0;
        return m->deadline;
}

/* --- receiving ------------------------------------------------------------------ */

static bool msg_valid(const struct wire_msg *msg) {
        if (!msg || msg->n_updates > WIRE_UPDATES_MAX || wire_msg_header_size(msg) == 0)
                return false;
        for (size_t i = 0; i < msg->n_updates; i++)
                if (wire_update_size(&msg->updates[i]) == 0)
                        return false;
        return true;
}

int membership_receive(struct membership *m, uint64_t now, const struct wire_addr *from, const struct wire_msg *msg) {
        if (!m || !from || !wire_addr_valid(from) || !msg_valid(msg))
                return -EINVAL;
        start(m, now);
        m->counters.msgs_received++;
        m->counters.updates_received += msg->n_updates;
        /* Updates first: a ping that tells us we are suspected gets our refutation in its ack. */
        for (size_t i = 0; i < msg->n_updates; i++)
                apply_update(m, now, &msg->updates[i]);
        switch (msg->type) {
        case WIRE_MSG_PING:
                if (msg->target_len != self_member(m)->name_len ||
                    memcmp(msg->target, self_member(m)->name, msg->target_len) != 0) {
                        m->counters.msgs_ignored++;
                        break;
                }
                send_simple(m, from, WIRE_MSG_ACK, msg->seq, NONE, NONE);
                stranger_note(m, now, from);
                break;
        case WIRE_MSG_ACK:
                on_ack(m, now, msg->seq);
                break;
        case WIRE_MSG_NACK:
                if (m->probe.active && msg->seq == m->probe.seq && m->probe.nacks < m->probe.expected_nacks) {
                        m->probe.nacks++;
                        m->counters.nacks_received++;
                } else
                        m->counters.msgs_ignored++;
                break;
        case WIRE_MSG_PING_REQ:
                on_ping_req(m, now, from, msg);
                break;
        default:
                break;
        }
        finish(m);
        return 0;
}

int membership_receive_packet(struct membership *m, uint64_t now, const struct wire_addr *from, const uint8_t *buf,
                              size_t len) {
        struct wire_msg msg;
        int r;

        r = wire_decode(buf, len, &msg);
        if (r < 0)
                return r;
        return membership_receive(m, now, from, &msg);
}

/* --- join, push-pull, leave ------------------------------------------------------- */

int membership_join(struct membership *m, uint64_t now, const struct wire_addr *addrs, size_t n) {
        if (!m || !addrs || n == 0 || n > MEMBERSHIP_SEEDS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!wire_addr_valid(&addrs[i]))
                        return -EINVAL;
        start(m, now);
        m->n_seeds = 0;
        for (size_t i = 0; i < n; i++)
                if (!wire_addr_equal(&addrs[i], &self_member(m)->addr))
                        m->seeds[m->n_seeds++] = addrs[i];
        if (m->n_seeds == 0) {
                m->joined = true;
                m->joining = false;
                finish(m);
                return 0;
        }
        m->joined = false;
        m->joining = true;
        m->join_backoff = m->cfg.join_backoff_us;
        join_attempt(m, now);
        finish(m);
        return 0;
}

bool membership_joined(const struct membership *m) {
        return m && m->joined;
}

static int pushpull_merge(struct membership *m, uint64_t now, const uint8_t *body, size_t len) {
        struct wire_pushpull_header h;
        struct wire_pushpull_reader rd;
        struct wire_member rec;
        int r;

        r = wire_pushpull_open(body, len, &h, &rd);
        if (r < 0)
                return r;
        while (wire_pushpull_next(&rd, &rec) > 0) {
                struct wire_update u = {
                        .kind = rec.state,
                        .name = rec.name,
                        .name_len = rec.name_len,
                        .incarnation = rec.incarnation,
                        .addr = rec.addr,
                        .meta = rec.meta,
                        .meta_len = rec.meta_len,
                        .from = h.from,
                        .from_len = h.from_len,
                };
                switch (rec.state) {
                case WIRE_STATE_ALIVE:
                        /*
                         * News from a push-pull is gossiped on like any
                         * other: after a mass join, the members that learned
                         * an early joiner from the seed's snapshot are the
                         * only ones that can tell the joiners before it.
                         */
                        apply_alive(m, now, &u, true);
                        break;
                case WIRE_STATE_SUSPECT:
                case WIRE_STATE_DEAD:
                        /* A remote verdict is only a suspicion here: the member may refute. */
                        u.kind = WIRE_STATE_SUSPECT;
                        apply_suspect(m, now, &u, NULL);
                        break;
                case WIRE_STATE_LEFT:
                        apply_left(m, now, &u, NULL);
                        break;
                default:
                        break;
                }
        }
        return 0;
}

int membership_pushpull_result(struct membership *m, uint64_t now, const struct wire_addr *to, const uint8_t *body,
                               size_t len) {
        int r;

        if (!m || !to || !body)
                return -EINVAL;
        start(m, now);
        r = pushpull_merge(m, now, body, len);
        if (r < 0) {
                m->counters.pushpulls_failed++;
                finish(m);
                return r;
        }
        m->counters.pushpulls_ok++;
        if (m->joining) {
                m->joining = false;
                m->joined = true;
        }
        finish(m);
        return 0;
}

void membership_pushpull_failed(struct membership *m, uint64_t now, const struct wire_addr *to) {
        if (!m)
                return;
        (void)to;
        start(m, now);
        m->counters.pushpulls_failed++;
        finish(m);
}

int membership_pushpull_receive(struct membership *m, uint64_t now, const struct wire_addr *from,
                                const uint8_t *body, size_t len) {
        int r;

        if (!m || !from || !body)
                return -EINVAL;
        start(m, now);
        r = pushpull_merge(m, now, body, len);
        if (r == 0)
                m->counters.pushpulls_served++;
        finish(m);
        return r;
}

static void member_record(const struct member *mem, struct wire_member *rec) {
        *rec = (struct wire_member){
                .state = mem->state,
                .name = mem->name,
                .name_len = mem->name_len,
                .incarnation = mem->incarnation,
                .addr = mem->addr,
                .meta = mem->meta,
                .meta_len = mem->meta_len,
        };
}

int membership_pushpull_export(const struct membership *m, bool join, bool reply, uint8_t **ret_body,
                               size_t *ret_len) {
        const struct member *me;
        struct wire_pushpull_header h;
        struct wire_member rec;
        size_t size, off;
        uint8_t *buf;
        uint32_t n = 0;
        int r;

        if (!m || !ret_body || !ret_len)
                return -EINVAL;
        me = &m->members[SELF];
        for (uint32_t s = 0; s < m->n_slots; s++)
                n += m->members[s].state != 0;
        h = (struct wire_pushpull_header){ .join = join, .reply = reply, .from = me->name, .from_len = me->name_len,
                                           .n_members = n };
        size = wire_pushpull_header_size(&h);
        for (uint32_t s = 0; s < m->n_slots; s++) {
                if (m->members[s].state == 0)
                        continue;
                member_record(&m->members[s], &rec);
                size += wire_member_size(&rec);
        }
        if (size > WIRE_PUSHPULL_MAX)
                return -E2BIG;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        r = wire_pushpull_encode_header(&h, buf, size);
        if (r < 0) {
                free(buf);
                return r;
        }
        off = (size_t)r;
        for (uint32_t s = 0; s < m->n_slots; s++) {
                if (m->members[s].state == 0)
                        continue;
                member_record(&m->members[s], &rec);
                r = wire_member_encode(&rec, buf + off, size - off);
                if (r < 0) {
                        free(buf);
                        return r;
                }
                off += (size_t)r;
        }
        *ret_body = buf;
        *ret_len = off;
        return 0;
}

int membership_leave(struct membership *m, uint64_t now) {
        if (!m)
                return -EINVAL;
        if (m->leaving)
                return -EALREADY;
        start(m, now);
        m->leaving = true;
        m->joining = false;
        m->probe.active = false;
        set_state(m, now, SELF, MEMBERSHIP_LEFT);
        emit_persist(m, MEMBERSHIP_PERSIST_SELF, SELF);
        bq_push(m, SELF);
        /* Tell a few members right away instead of waiting for the next gossip round. */
        m->next_gossip_at = now;
        tick_gossip(m, now);
        finish(m);
        return 0;
}

bool membership_leave_done(const struct membership *m) {
        if (!m || !m->leaving)
                return false;
        return !m->members[SELF].queued || m->census.alive + m->census.suspect == 0;
}

int membership_force_leave(struct membership *m, uint64_t now, const char *name) {
        size_t len;
        uint32_t slot;
        struct wire_update u;

        if (!m || !name)
                return -EINVAL;
        len = strnlen(name, WIRE_NAME_MAX + 1);
        if (!wire_name_valid(name, len))
                return -EINVAL;
        slot = find_slot(m, name, len);
        if (slot == SELF)
                return -EINVAL;
        if (slot == NONE)
                return -ENOENT;
        switch (slot_member(m, slot)->state) {
        case MEMBERSHIP_ALIVE:
                return -EBUSY;
        case MEMBERSHIP_LEFT:
                return -EALREADY;
        default:
                break;
        }
        start(m, now);
        u = (struct wire_update){ .kind = WIRE_STATE_LEFT,
                                  .name = slot_member(m, slot)->name,
                                  .name_len = slot_member(m, slot)->name_len,
                                  .incarnation = slot_member(m, slot)->incarnation };
        apply_left(m, now, &u, "force-left by the operator");
        finish(m);
        return 0;
}

int membership_set_meta(struct membership *m, uint64_t now, const uint8_t *meta, size_t meta_len) {
        struct member *me;

        if (!m || meta_len > WIRE_META_MAX || (meta_len > 0 && !meta))
                return -EINVAL;
        start(m, now);
        me = self_member(m);
        if (set_meta(me, meta, meta_len) < 0)
                return -ENOMEM;
        me->incarnation++;
        emit_persist(m, MEMBERSHIP_PERSIST_SELF, SELF);
        if (!m->leaving)
                bq_push(m, SELF);
        finish(m);
        return 0;
}

/* --- outputs and queries ------------------------------------------------------------ */

size_t membership_outputs(const struct membership *m, const struct membership_output **ret) {
        if (!m || !ret)
                return 0;
        *ret = m->out;
        return m->n_out;
}

void membership_outputs_clear(struct membership *m) {
        if (!m)
                return;
        m->n_out = 0;
        m->arena_used = 0;
        /*
         * A burst (learning a thousand members at once) grows these; a
         * simulator runs thousands of cores, so give bursts back.
         */
        if (m->arena_cap > 16 * 1024) {
                free(m->arena);
                m->arena = NULL;
                m->arena_cap = 0;
        }
        if (m->cap_out > 64) {
                free(m->out);
                free(m->out_off);
                m->out = NULL;
                m->out_off = NULL;
                m->cap_out = 0;
        }
}

size_t membership_slots(const struct membership *m) {
        return m ? m->n_slots : 0;
}

int membership_member_at(const struct membership *m, size_t i, struct membership_member_info *ret) {
        const struct member *mem;

        if (!m || !ret)
                return -EINVAL;
        if (i >= m->n_slots || m->members[i].state == 0)
                return -ENOENT;
        mem = &m->members[i];
        *ret = (struct membership_member_info){
                .name = mem->name,
                .addr = mem->addr,
                .state = (enum membership_state)mem->state,
                .incarnation = mem->incarnation,
                .state_changed_us = mem->state_change,
                .rtt_us = mem->rtt_us,
                .meta = mem->meta,
                .meta_len = mem->meta_len,
                .self = i == SELF,
        };
        return 0;
}

int membership_member_get(const struct membership *m, const char *name, struct membership_member_info *ret) {
        size_t len;
        uint32_t slot;

        if (!m || !name || !ret)
                return -EINVAL;
        len = strnlen(name, WIRE_NAME_MAX + 1);
        if (!wire_name_valid(name, len))
                return -ENOENT;
        slot = find_slot(m, name, len);
        if (slot == NONE)
                return -ENOENT;
        return membership_member_at(m, slot, ret);
}

void membership_census(const struct membership *m, struct membership_census *ret) {
        if (m && ret)
                *ret = m->census;
}

const char *membership_name(const struct membership *m) {
        return m ? m->members[SELF].name : NULL;
}

uint64_t membership_incarnation(const struct membership *m) {
        return m ? m->members[SELF].incarnation : 0;
}

unsigned membership_health_score(const struct membership *m) {
        return m ? m->score : 0;
}

void membership_get_counters(const struct membership *m, struct membership_counters *ret) {
        if (m && ret)
                *ret = m->counters;
}
