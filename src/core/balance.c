/*
 * The load-balancing algorithms, see balance.h. Everything that depends on
 * the backend set is computed in build(); picks only read it (and advance a
 * position). Indices are uint32_t: BALANCE_BACKENDS_MAX keeps them small.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/balance.h"

/*
 * wrr precomputes one whole cycle (sum of weights / gcd picks) when it has
 * at most WRR_CYCLE_MAX entries (4 MiB) and simulating it costs at most
 * WRR_BUILD_MAX class steps (~10 ms); otherwise each pick runs one step on
 * the tournament tree (kin_step()).
 */
#define WRR_CYCLE_MAX (UINT64_C(1) << 20)
#define WRR_BUILD_MAX (UINT64_C(1) << 24)

/*
 * sourcehash ring: at most RING_POINTS_MAX virtual nodes (4 MiB) and at most
 * 2^RING_SCALE_MAX of them per unit of weight (256 for a weight-1 backend
 * gives each backend its share within a few percent).
 */
#define RING_POINTS_MAX (UINT64_C(1) << 18)
#define RING_POINTS_PER_BACKEND 256
#define RING_SCALE_MAX 8
#define RING_SCALE_MIN (-14)    /* 10000 >> 14 == 0: one point per backend */

/*
 * SipHash key for balance_hash(). It is the reference test key on purpose:
 * the mapping must be identical on every agent and across versions, it is
 * not a secret (clients do not choose their addresses), and test vectors
 * prove the implementation. Never change it: every client would move.
 */
#define SIP_K0 UINT64_C(0x0706050403020100)
#define SIP_K1 UINT64_C(0x0f0e0d0c0b0a0908)

#define NO_POS UINT32_MAX

/*
 * nginx's smooth weighted round-robin keeps one current weight per backend.
 * Backends of equal weight move in lockstep except that a pick lowers one of
 * them by the total, so they are picked in rotation (lowest index first);
 * one class per distinct weight therefore carries the same information:
 * `level` is the current weight of the members not yet picked this round,
 * the `next` members before them sit at level - total.
 */
struct wrr_class {
        int64_t level;
        uint32_t weight;        /* divided by the gcd of all weights */
        uint32_t first;         /* into members[] */
        uint32_t count;
        uint32_t next;
};

/* One alias-table column: its own backend with probability threshold/2^32, else `other`. */
struct alias_slot {
        uint64_t threshold;
        uint32_t self;
        uint32_t other;
};

struct ring_point {
        uint64_t hash;
        uint32_t backend;
};

struct balance {
        enum balance_algorithm algorithm;
        size_t n;
        uint32_t *weight;               /* [n] */
        uint64_t *active;               /* [n] */
        uint32_t *eligible;             /* [m]: up, weight > 0, array order */
        size_t m;

        size_t rr_next;                 /* roundrobin */

        struct wrr_class *classes;      /* wrr */
        size_t n_classes;
        uint32_t *members;              /* [m], grouped by class, index order within */
        int64_t wrr_total;
        uint32_t *cycle;                /* NULL: step at each pick */
        size_t cycle_len, cycle_pos;
        uint32_t *kin_win;              /* wrr without a cycle: [2*kin_size] tournament winners */
        int64_t *kin_until;             /* [2*kin_size] step at which a node must be recomputed */
        size_t kin_size;                /* leaves, a power of two >= n_classes */
        int64_t kin_step;               /* steps since the cycle began */

        struct alias_slot *alias;       /* wrandom: [m] */

        uint32_t *heap;                 /* wlc: [m] min-heap of backend indices */
        uint32_t *heap_pos;             /* wlc: [n] position in heap or NO_POS */

        struct ring_point *ring;        /* sourcehash: sorted by hash */
        size_t n_ring;
        uint32_t *ring_index;           /* [2^bits + 1]: first point of each hash bucket */
        unsigned ring_shift;            /* 64 - bits */
};

static const char *const algorithm_names[_BALANCE_ALGORITHM_MAX] = {
        [BALANCE_RANDOM] = "random",
        [BALANCE_ROUNDROBIN] = "roundrobin",
        [BALANCE_WRR] = "wrr",
        [BALANCE_WRANDOM] = "wrandom",
        [BALANCE_WLC] = "wlc",
        [BALANCE_SOURCEHASH] = "sourcehash",
};

static const char *const state_names[_BALANCE_STATE_MAX] = {
        [BALANCE_UP] = "up",
        [BALANCE_DRAINING] = "draining",
        [BALANCE_DOWN] = "down",
        [BALANCE_EJECTED] = "ejected",
};

const char *balance_algorithm_to_string(enum balance_algorithm a) {
        return a >= 0 && a < _BALANCE_ALGORITHM_MAX ? algorithm_names[a] : NULL;
}

enum balance_algorithm balance_algorithm_from_string(const char *s) {
        if (s)
                for (int i = 0; i < _BALANCE_ALGORITHM_MAX; i++)
                        if (strcmp(s, algorithm_names[i]) == 0)
                                return (enum balance_algorithm) i;
        return _BALANCE_ALGORITHM_INVALID;
}

const char *balance_state_to_string(enum balance_state s) {
        return s >= 0 && s < _BALANCE_STATE_MAX ? state_names[s] : NULL;
}

enum balance_state balance_state_from_string(const char *s) {
        if (s)
                for (int i = 0; i < _BALANCE_STATE_MAX; i++)
                        if (strcmp(s, state_names[i]) == 0)
                                return (enum balance_state) i;
        return _BALANCE_STATE_INVALID;
}

/* --- SipHash-2-4 ----------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                        \
        do {                                                                            \
                v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);               \
                v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                  \
                v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                  \
                v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);               \
        } while (0)

static uint64_t load_le64(const uint8_t *p) {
        uint64_t v = 0;

        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

uint64_t balance_hash(const void *data, size_t len) {
        const uint8_t *p = data;
        uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ SIP_K0, v1 = UINT64_C(0x646f72616e646f6d) ^ SIP_K1,
                 v2 = UINT64_C(0x6c7967656e657261) ^ SIP_K0, v3 = UINT64_C(0x7465646279746573) ^ SIP_K1;
        uint64_t last = (uint64_t) len << 56;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                uint64_t m = load_le64(p + i);

                v3 ^= m;
                SIPROUND;
                SIPROUND;
                v0 ^= m;
        }
        for (unsigned k = 0; i < len; i++, k++)
                last |= (uint64_t) p[i] << (8 * k);
        v3 ^= last;
        SIPROUND;
        SIPROUND;
        v0 ^= last;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}

/* --- helpers --------------------------------------------------------------- */

/* Maps a uniform 32-bit value onto 0..m-1 without division (Lemire). */
static inline uint32_t scale32(uint32_t r, size_t m) {
        return (uint32_t) (((uint64_t) r * m) >> 32);
}

static void internals_free(struct balance *b) {
        free(b->weight);
        free(b->active);
        free(b->eligible);
        free(b->classes);
        free(b->members);
        free(b->cycle);
        free(b->kin_win);
        free(b->kin_until);
        free(b->alias);
        free(b->heap);
        free(b->heap_pos);
        free(b->ring);
        free(b->ring_index);
}

void balance_free(struct balance *b) {
        if (!b)
                return;
        internals_free(b);
        free(b);
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int validate(const struct balance_backend *backends, size_t n) {
        const char **names;
        int r = 0;

        if (n > BALANCE_BACKENDS_MAX)
                return -E2BIG;
        if (n > 0 && !backends)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                const struct balance_backend *e = &backends[i];

                if (!e->name || !e->name[0] || strlen(e->name) > BALANCE_NAME_MAX ||
                    e->weight > BALANCE_WEIGHT_MAX || (int) e->state < 0 || e->state >= _BALANCE_STATE_MAX)
                        return -EINVAL;
        }
        if (n < 2)
                return 0;
        names = malloc(n * sizeof(*names));
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                names[i] = backends[i].name;
        qsort(names, n, sizeof(*names), cmp_name);
        for (size_t i = 1; i < n; i++)
                if (strcmp(names[i - 1], names[i]) == 0) {
                        r = -EEXIST;
                        break;
                }
        free(names);
        return r;
}

/* --- wrr ------------------------------------------------------------------- */

static uint64_t gcd64(uint64_t a, uint64_t b) {
        while (b) {
                uint64_t t = a % b;

                a = b;
                b = t;
        }
        return a;
}

/*
 * One step of nginx's algorithm: every current weight grows by its weight,
 * the largest wins (the lowest index among equals) and drops by the total.
 * O(number of distinct weights).
 */
static uint32_t wrr_step(struct balance *b) {
        struct wrr_class *best = NULL;
        uint32_t idx;

        for (size_t i = 0; i < b->n_classes; i++) {
                struct wrr_class *c = &b->classes[i];

                c->level += c->weight;
                if (!best || c->level > best->level ||
                    (c->level == best->level && b->members[c->first + c->next] < b->members[best->first + best->next]))
                        best = c;
        }
        idx = b->members[best->first + best->next];
        if (++best->next == best->count) {
                best->next = 0;
                best->level -= b->wrr_total;
        }
        return idx;
}

static void wrr_reset(struct balance *b) {
        for (size_t i = 0; i < b->n_classes; i++) {
                b->classes[i].level = 0;
                b->classes[i].next = 0;
        }
}

/*
 * When the cycle is too long to precompute, the same step runs on a kinetic
 * tournament tree over the classes instead of scanning them all: class c's
 * current weight at step s is level + s*weight (a line in s), every inner
 * node keeps the winner of its subtree and the first step at which its loser
 * would overtake it (or a child's result change), and a step recomputes only
 * the nodes whose time has come plus the picked class's path. O(log D) per
 * pick in practice for D distinct weights; the tree is rebuilt (O(D)) once
 * per cycle, when every current weight is back to zero, which also keeps
 * s*weight small.
 */
static inline int64_t kin_value(const struct balance *b, uint32_t c, int64_t s) {
        return b->classes[c].level + s * (int64_t) b->classes[c].weight;
}

static inline uint32_t kin_key(const struct balance *b, uint32_t c) {
        return b->members[b->classes[c].first + b->classes[c].next];
}

/* The first step after s at which loser l beats winner w (INT64_MAX: never, unless picked). */
static int64_t kin_overtake(const struct balance *b, uint32_t w, uint32_t l, int64_t s) {
        int64_t d = (int64_t) b->classes[l].weight - (int64_t) b->classes[w].weight;
        int64_t diff = kin_value(b, w, s) - kin_value(b, l, s);

        if (d <= 0)
                return INT64_MAX;
        if (kin_key(b, l) < kin_key(b, w))
                return s + (diff + d - 1) / d;  /* a tie is enough */
        return s + diff / d + 1;
}

static void kin_node(struct balance *b, size_t i, int64_t s) {
        uint32_t l = b->kin_win[2 * i], r = b->kin_win[2 * i + 1], w, lo;
        int64_t u = b->kin_until[2 * i] < b->kin_until[2 * i + 1] ? b->kin_until[2 * i] : b->kin_until[2 * i + 1];
        int64_t vl, vr, t;

        if (l == NO_POS || r == NO_POS) {
                b->kin_win[i] = l == NO_POS ? r : l;
                b->kin_until[i] = u;
                return;
        }
        vl = kin_value(b, l, s);
        vr = kin_value(b, r, s);
        if (vl > vr || (vl == vr && kin_key(b, l) < kin_key(b, r))) {
                w = l;
                lo = r;
        } else {
                w = r;
                lo = l;
        }
        t = kin_overtake(b, w, lo, s);
        b->kin_win[i] = w;
        b->kin_until[i] = t < u ? t : u;
}

static void kin_fix(struct balance *b, size_t i, int64_t s) {
        if (b->kin_until[i] > s || i >= b->kin_size)
                return;
        kin_fix(b, 2 * i, s);
        kin_fix(b, 2 * i + 1, s);
        kin_node(b, i, s);
}

static void kin_rebuild(struct balance *b) {
        for (size_t i = 0; i < b->kin_size; i++) {
                b->kin_win[b->kin_size + i] = i < b->n_classes ? (uint32_t) i : NO_POS;
                b->kin_until[b->kin_size + i] = INT64_MAX;
        }
        for (size_t i = b->kin_size; i-- > 1;)
                kin_node(b, i, b->kin_step);
}

static int kin_build(struct balance *b) {
        b->kin_size = 1;
        while (b->kin_size < b->n_classes)
                b->kin_size *= 2;
        b->kin_win = malloc(2 * b->kin_size * sizeof(*b->kin_win));
        b->kin_until = malloc(2 * b->kin_size * sizeof(*b->kin_until));
        if (!b->kin_win || !b->kin_until)
                return -ENOMEM;
        b->kin_step = 0;
        kin_rebuild(b);
        return 0;
}

static uint32_t kin_step(struct balance *b) {
        int64_t s = ++b->kin_step;
        uint32_t c, idx;
        struct wrr_class *best;

        kin_fix(b, 1, s);
        c = b->kin_win[1];
        best = &b->classes[c];
        idx = kin_key(b, c);
        if (++best->next == best->count) {
                best->next = 0;
                best->level -= b->wrr_total;
        }
        if (s == b->wrr_total) {
                /* End of the cycle: every current weight is zero again. */
                for (size_t i = 0; i < b->n_classes; i++)
                        b->classes[i].level += s * (int64_t) b->classes[i].weight;
                b->kin_step = 0;
                kin_rebuild(b);
        } else
                for (size_t i = (b->kin_size + c) / 2; i >= 1; i /= 2)
                        kin_node(b, i, s);
        return idx;
}

/*
 * Groups the eligible backends by weight (divided by their gcd, which leaves
 * nginx's sequence unchanged and shortens the cycle), then simulates one
 * cycle when it is affordable: O(cycle * distinct weights) once, O(1) per
 * pick. Otherwise it builds the tournament tree: O(distinct weights).
 */
static int wrr_build(struct balance *b) {
        uint64_t g = 0, total = 0, *keys;
        size_t k;

        if (b->m == 0)
                return 0;
        for (size_t i = 0; i < b->m; i++)
                g = gcd64(g, b->weight[b->eligible[i]]);
        keys = malloc(b->m * sizeof(*keys));
        b->members = malloc(b->m * sizeof(*b->members));
        b->classes = malloc(b->m * sizeof(*b->classes));
        if (!keys || !b->members || !b->classes) {
                free(keys);
                return -ENOMEM;
        }
        for (size_t i = 0; i < b->m; i++) {
                uint64_t w = b->weight[b->eligible[i]] / g;

                total += w;
                keys[i] = w << 32 | b->eligible[i];
        }
        qsort(keys, b->m, sizeof(*keys), cmp_u64);
        k = 0;
        for (size_t i = 0; i < b->m; i++) {
                uint32_t w = (uint32_t) (keys[i] >> 32);

                b->members[i] = (uint32_t) keys[i];
                if (k == 0 || b->classes[k - 1].weight != w)
                        b->classes[k++] = (struct wrr_class) { .weight = w, .first = (uint32_t) i };
                b->classes[k - 1].count++;
        }
        free(keys);
        b->n_classes = k;
        b->wrr_total = (int64_t) total;

        if (total <= WRR_CYCLE_MAX && total * k <= WRR_BUILD_MAX) {
                b->cycle = malloc(total * sizeof(*b->cycle));
                if (!b->cycle)
                        return -ENOMEM;
                for (uint64_t i = 0; i < total; i++)
                        b->cycle[i] = wrr_step(b);
                b->cycle_len = total;
                wrr_reset(b);
                return 0;
        }
        return kin_build(b);
}

/* --- wrandom --------------------------------------------------------------- */

/*
 * Vose's alias method in exact integers: column i holds weight*m out of
 * total, overfull columns top up underfull ones. O(m) build, O(1) pick.
 */
static int alias_build(struct balance *b) {
        uint64_t total = 0, *p;
        uint32_t *small, *large;
        size_t ns = 0, nl = 0;
        int r = 0;

        if (b->m == 0)
                return 0;
        b->alias = calloc(b->m, sizeof(*b->alias));
        p = malloc(b->m * sizeof(*p));
        small = malloc(b->m * sizeof(*small));
        large = malloc(b->m * sizeof(*large));
        if (!b->alias || !p || !small || !large) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < b->m; i++)
                total += b->weight[b->eligible[i]];
        for (size_t i = 0; i < b->m; i++) {
                p[i] = (uint64_t) b->weight[b->eligible[i]] * b->m;
                if (p[i] < total)
                        small[ns++] = (uint32_t) i;
                else
                        large[nl++] = (uint32_t) i;
        }
        while (ns > 0 && nl > 0) {
                uint32_t s = small[--ns], l = large[--nl];

                b->alias[s] = (struct alias_slot) { .threshold = (p[s] << 32) / total,
                                                    .self = b->eligible[s], .other = b->eligible[l] };
                p[l] -= total - p[s];
                if (p[l] < total)
                        small[ns++] = l;
                else
                        large[nl++] = l;
        }
        /* What remains is full (exactly, or by rounding): always itself. */
        while (nl > 0) {
                uint32_t l = large[--nl];

                b->alias[l] = (struct alias_slot) { .threshold = UINT64_C(1) << 32, .self = b->eligible[l],
                                                    .other = b->eligible[l] };
        }
        while (ns > 0) {
                uint32_t s = small[--ns];

                b->alias[s] = (struct alias_slot) { .threshold = UINT64_C(1) << 32, .self = b->eligible[s],
                                                    .other = b->eligible[s] };
        }
out:
        free(p);
        free(small);
        free(large);
        return r;
}

/* --- wlc ------------------------------------------------------------------- */

/* a/wa < b/wb as a*wb < b*wa: exact, and both products fit in 64 bits. */
static inline bool wlc_less(const struct balance *b, uint32_t x, uint32_t y) {
        uint64_t l = b->active[x] * b->weight[y], r = b->active[y] * b->weight[x];

        return l < r || (l == r && x < y);
}

static void heap_place(struct balance *b, size_t pos, uint32_t idx) {
        b->heap[pos] = idx;
        b->heap_pos[idx] = (uint32_t) pos;
}

static void heap_sift_up(struct balance *b, size_t pos) {
        uint32_t idx = b->heap[pos];

        while (pos > 0) {
                size_t parent = (pos - 1) / 2;

                if (!wlc_less(b, idx, b->heap[parent]))
                        break;
                heap_place(b, pos, b->heap[parent]);
                pos = parent;
        }
        heap_place(b, pos, idx);
}

static void heap_sift_down(struct balance *b, size_t pos) {
        uint32_t idx = b->heap[pos];

        for (;;) {
                size_t c = 2 * pos + 1;

                if (c >= b->m)
                        break;
                if (c + 1 < b->m && wlc_less(b, b->heap[c + 1], b->heap[c]))
                        c++;
                if (!wlc_less(b, b->heap[c], idx))
                        break;
                heap_place(b, pos, b->heap[c]);
                pos = c;
        }
        heap_place(b, pos, idx);
}

/* Floyd's heap construction: O(m). */
static int wlc_build(struct balance *b) {
        b->heap_pos = malloc((b->n ? b->n : 1) * sizeof(*b->heap_pos));
        b->heap = malloc((b->m ? b->m : 1) * sizeof(*b->heap));
        if (!b->heap_pos || !b->heap)
                return -ENOMEM;
        for (size_t i = 0; i < b->n; i++)
                b->heap_pos[i] = NO_POS;
        for (size_t i = 0; i < b->m; i++)
                heap_place(b, i, b->eligible[i]);
        for (size_t i = b->m / 2; i-- > 0;)
                heap_sift_down(b, i);
        return 0;
}

/* --- sourcehash ------------------------------------------------------------ */

/* Virtual nodes of a backend of weight w at scale s: w*2^s, or ceil(w/2^-s). */
static uint64_t ring_points_of(uint32_t w, int s) {
        if (s >= 0)
                return (uint64_t) w << s;
        return ((uint64_t) w + (UINT64_C(1) << -s) - 1) >> -s;
}

/*
 * A backend's points are hash(name, j) for j below its count, so they do not
 * depend on the other backends: removing one removes only its arcs. The
 * scale (points per unit of weight) is the largest power of two, up to
 * 2^RING_SCALE_MAX, that keeps the ring within RING_POINTS_PER_BACKEND per
 * backend on average and RING_POINTS_MAX in all: equal weights get 256
 * points each whatever their number (up to 1,024 backends); otherwise the
 * scale changes only when the total weight or the count crosses a power of
 * two, and then every backend keeps a prefix or superset of its points.
 * Build: hashing every point, then a counting sort on the top bits of the
 * hash (which is also the lookup index) and insertion sort within buckets
 * (about one point each): O(P) for P points. Pick: O(1) expected.
 */
static int ring_build(struct balance *b, const struct balance_backend *backends) {
        uint64_t total = 0, cap;
        unsigned bits = 1;
        size_t buckets, k = 0;
        struct ring_point *tmp;
        int s;

        if (b->m == 0)
                return 0;
        cap = (uint64_t) b->m * RING_POINTS_PER_BACKEND;
        if (cap > RING_POINTS_MAX)
                cap = RING_POINTS_MAX;
        for (s = RING_SCALE_MAX; s > RING_SCALE_MIN; s--) {
                total = 0;
                for (size_t i = 0; i < b->m; i++)
                        total += ring_points_of(b->weight[b->eligible[i]], s);
                if (total <= cap)
                        break;
        }
        if (s == RING_SCALE_MIN)
                total = b->m;   /* one point each; m <= BALANCE_BACKENDS_MAX < RING_POINTS_MAX */
        tmp = malloc(total * sizeof(*tmp));
        b->ring = malloc(total * sizeof(*b->ring));
        if (!tmp || !b->ring) {
                free(tmp);
                return -ENOMEM;
        }
        for (size_t i = 0; i < b->m; i++) {
                uint32_t idx = b->eligible[i];
                size_t len = strlen(backends[idx].name);
                uint64_t count = ring_points_of(b->weight[idx], s);
                uint8_t buf[BALANCE_NAME_MAX + 4];

                memcpy(buf, backends[idx].name, len);
                for (uint64_t j = 0; j < count; j++) {
                        buf[len] = (uint8_t) j;
                        buf[len + 1] = (uint8_t) (j >> 8);
                        buf[len + 2] = (uint8_t) (j >> 16);
                        buf[len + 3] = (uint8_t) (j >> 24);
                        tmp[k++] = (struct ring_point) { .hash = balance_hash(buf, len + 4), .backend = idx };
                }
        }
        b->n_ring = k;

        while ((UINT64_C(1) << bits) < k)
                bits++;
        buckets = (size_t) 1 << bits;
        b->ring_shift = 64 - bits;
        b->ring_index = calloc(buckets + 1, sizeof(*b->ring_index));
        if (!b->ring_index) {
                free(tmp);
                return -ENOMEM;
        }
        /* Counting sort by bucket: ring_index[x] ends up as the first point of bucket x. */
        for (size_t i = 0; i < k; i++)
                b->ring_index[(tmp[i].hash >> b->ring_shift) + 1]++;
        for (size_t x = 1; x <= buckets; x++)
                b->ring_index[x] += b->ring_index[x - 1];
        for (size_t i = 0; i < k; i++) {
                uint64_t x = tmp[i].hash >> b->ring_shift;

                b->ring[b->ring_index[x]++] = tmp[i];
        }
        free(tmp);
        /* The placement loop advanced every start to the next bucket's: shift back. */
        memmove(b->ring_index + 1, b->ring_index, buckets * sizeof(*b->ring_index));
        b->ring_index[0] = 0;
        /* Within a bucket by (hash, backend): the order is the same on every agent. */
        for (size_t x = 0; x < buckets; x++)
                for (uint32_t i = b->ring_index[x] + 1; i < b->ring_index[x + 1]; i++) {
                        struct ring_point p = b->ring[i];
                        uint32_t j = i;

                        for (; j > b->ring_index[x] && (b->ring[j - 1].hash > p.hash ||
                                                        (b->ring[j - 1].hash == p.hash && b->ring[j - 1].backend > p.backend));
                             j--)
                                b->ring[j] = b->ring[j - 1];
                        b->ring[j] = p;
                }
        return 0;
}

/* The first point at or after h, wrapping around. */
static uint32_t ring_lookup(const struct balance *b, uint64_t h) {
        uint64_t bucket = h >> b->ring_shift;
        uint32_t i = b->ring_index[bucket], end = b->ring_index[bucket + 1];

        while (i < end && b->ring[i].hash < h)
                i++;
        if (i == b->n_ring)
                i = 0;
        return b->ring[i].backend;
}

/* --- build, update, pick --------------------------------------------------- */

static int build(struct balance *b, enum balance_algorithm algorithm, const struct balance_backend *backends,
                 size_t n) {
        int r;

        *b = (struct balance) { .algorithm = algorithm, .n = n };
        /* Allocate at least one element so malloc(0) never looks like a failure. */
        b->weight = malloc((n ? n : 1) * sizeof(*b->weight));
        b->active = malloc((n ? n : 1) * sizeof(*b->active));
        b->eligible = malloc((n ? n : 1) * sizeof(*b->eligible));
        if (!b->weight || !b->active || !b->eligible)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                b->weight[i] = backends[i].weight;
                b->active[i] = backends[i].active > BALANCE_ACTIVE_MAX ? BALANCE_ACTIVE_MAX : backends[i].active;
                if (backends[i].state == BALANCE_UP && backends[i].weight > 0)
                        b->eligible[b->m++] = (uint32_t) i;
        }
        switch (algorithm) {
        case BALANCE_WRR:
                r = wrr_build(b);
                break;
        case BALANCE_WRANDOM:
                r = alias_build(b);
                break;
        case BALANCE_WLC:
                r = wlc_build(b);
                break;
        case BALANCE_SOURCEHASH:
                r = ring_build(b, backends);
                break;
        default:
                r = 0;
                break;
        }
        return r;
}

int balance_build(enum balance_algorithm algorithm, const struct balance_backend *backends, size_t n,
                  struct balance **ret) {
        struct balance *b;
        int r;

        if (!ret || (int) algorithm < 0 || algorithm >= _BALANCE_ALGORITHM_MAX)
                return -EINVAL;
        r = validate(backends, n);
        if (r < 0)
                return r;
        b = malloc(sizeof(*b));
        if (!b)
                return -ENOMEM;
        r = build(b, algorithm, backends, n);
        if (r < 0) {
                balance_free(b);
                return r;
        }
        *ret = b;
        return 0;
}

int balance_update(struct balance *b, const struct balance_backend *backends, size_t n) {
        struct balance nb;
        int r;

        if (!b)
                return -EINVAL;
        r = validate(backends, n);
        if (r < 0)
                return r;
        r = build(&nb, b->algorithm, backends, n);
        if (r < 0) {
                internals_free(&nb);
                return r;
        }
        nb.rr_next = nb.m ? b->rr_next % nb.m : 0;
        nb.cycle_pos = nb.cycle_len ? b->cycle_pos % nb.cycle_len : 0;
        internals_free(b);
        *b = nb;
        return 0;
}

int balance_pick(struct balance *b, uint64_t rnd, const void *key, size_t key_len, size_t *ret_index) {
        uint32_t idx;

        if (!b || !ret_index || key_len > BALANCE_KEY_MAX || (!key && key_len > 0))
                return -EINVAL;
        if (b->m == 0)
                return -EHOSTUNREACH;
        switch (b->algorithm) {
        case BALANCE_RANDOM:
                idx = b->eligible[scale32((uint32_t) (rnd >> 32), b->m)];
                break;
        case BALANCE_ROUNDROBIN:
                idx = b->eligible[b->rr_next];
                if (++b->rr_next == b->m)
                        b->rr_next = 0;
                break;
        case BALANCE_WRR:
                if (b->cycle) {
                        idx = b->cycle[b->cycle_pos];
                        if (++b->cycle_pos == b->cycle_len)
                                b->cycle_pos = 0;
                } else
                        idx = kin_step(b);
                break;
        case BALANCE_WRANDOM: {
                /* The column from the high half, the coin from the low half: independent bits. */
                const struct alias_slot *a = &b->alias[scale32((uint32_t) (rnd >> 32), b->m)];

                idx = (uint32_t) rnd < a->threshold ? a->self : a->other;
                break;
        }
        case BALANCE_WLC:
                idx = b->heap[0];
                break;
        case BALANCE_SOURCEHASH:
                idx = ring_lookup(b, key ? balance_hash(key, key_len) : rnd);
                break;
        default:
                return -EINVAL;
        }
        *ret_index = idx;
        return 0;
}

int balance_set_active(struct balance *b, size_t index, uint64_t active) {
        uint64_t old;

        if (!b || index >= b->n)
                return -EINVAL;
        old = b->active[index];
        b->active[index] = active > BALANCE_ACTIVE_MAX ? BALANCE_ACTIVE_MAX : active;
        if (b->heap_pos && b->heap_pos[index] != NO_POS) {
                if (b->active[index] < old)
                        heap_sift_up(b, b->heap_pos[index]);
                else
                        heap_sift_down(b, b->heap_pos[index]);
        }
        return 0;
}

int balance_add_active(struct balance *b, size_t index, int64_t delta) {
        uint64_t a;

        if (!b || index >= b->n)
                return -EINVAL;
        a = b->active[index];
        if (delta < 0)
                a = (uint64_t) -(delta + 1) >= a ? 0 : a - (uint64_t) -(delta + 1) - 1;
        else
                a += (uint64_t) delta > BALANCE_ACTIVE_MAX ? BALANCE_ACTIVE_MAX : (uint64_t) delta;
        return balance_set_active(b, index, a);
}

uint64_t balance_get_active(const struct balance *b, size_t index) {
        return b && index < b->n ? b->active[index] : 0;
}

enum balance_algorithm balance_algorithm(const struct balance *b) {
        return b ? b->algorithm : _BALANCE_ALGORITHM_INVALID;
}

size_t balance_size(const struct balance *b) {
        return b ? b->n : 0;
}

size_t balance_eligible(const struct balance *b) {
        return b ? b->m : 0;
}
