/*
 * Load-balancing algorithms over one service's backend set.
 *
 * The table module hands a backend array to balance_build() (or
 * balance_update() on a new table version); all per-algorithm structures
 * are built then, so balance_pick() is cheap. A pick returns an index into
 * the array given at the last build. Only `up` backends with a weight above
 * zero are ever picked, by every algorithm: `draining` gets no new picks,
 * `down` and `ejected` none at all, and weight 0 means "no traffic".
 *
 * Algorithms (the names are the config's contract names):
 *   random      uniform over the eligible backends, weights ignored. O(1).
 *   roundrobin  the eligible backends in array order, weights ignored. O(1).
 *   wrr         nginx's smooth weighted round-robin: over one cycle of
 *               sum(weights)/gcd picks each backend gets exactly its share,
 *               interleaved (weights 5,1,1 give a a b a c a a). The cycle is
 *               precomputed at build when it is small enough (O(1) pick),
 *               otherwise each pick runs nginx's step on a kinetic
 *               tournament tree over the distinct weights (about
 *               O(log distinct weights)); see balance.c.
 *   wrandom     weighted random by Vose's alias method. O(1).
 *   wlc         weighted least connections: a backend with minimal
 *               active/weight (compared by cross-multiplication), ties to
 *               the lowest index. A binary heap: O(1) pick, O(log n) per
 *               balance_set_active()/balance_add_active().
 *   sourcehash  consistent hashing of a client key on a ring with virtual
 *               nodes proportional to weight, found through a direct-mapped
 *               index on the hash's top bits: O(1) expected per pick plus
 *               hashing the key (SipHash). Removing one of N backends remaps
 *               only the clients it had (~1/N); adding one takes ~1/(N+1).
 *
 * Pure: no I/O, no clock, no randomness of its own. Random algorithms take a
 * caller-supplied uniformly random 64-bit value per pick. Not thread-safe:
 * picks advance round-robin state.
 */
#ifndef AGENTD_BALANCE_H
#define AGENTD_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum balance_algorithm {
        BALANCE_RANDOM,
        BALANCE_ROUNDROBIN,
        BALANCE_WRR,
        BALANCE_WRANDOM,
        BALANCE_WLC,
        BALANCE_SOURCEHASH,
        _BALANCE_ALGORITHM_MAX,
        _BALANCE_ALGORITHM_INVALID = -1,
};

enum balance_state {
        BALANCE_UP,
        BALANCE_DRAINING,
        BALANCE_DOWN,
        BALANCE_EJECTED,
        _BALANCE_STATE_MAX,
        _BALANCE_STATE_INVALID = -1,
};

/* Most backends in one set; indices fit in 32 bits with room to spare. */
#define BALANCE_BACKENDS_MAX 65536u
/* Weights are 0..BALANCE_WEIGHT_MAX, as in the config. */
#define BALANCE_WEIGHT_MAX 10000u
/* Longest backend name (the ring identity for sourcehash), in bytes. */
#define BALANCE_NAME_MAX 255u
/* Active connection counts saturate here (keeps cross-products in 64 bits). */
#define BALANCE_ACTIVE_MAX UINT32_MAX
/* Longest sourcehash client key, in bytes (an address fits many times). */
#define BALANCE_KEY_MAX 1024u

/*
 * One backend as the table describes it. The strings are borrowed for the
 * duration of balance_build()/balance_update() only; the balancer keeps
 * neither them nor the array. `name` must be non-empty and unique in the
 * set: sourcehash places a backend on the ring by its name, so a backend
 * keeps its clients across table versions whatever its position.
 */
struct balance_backend {
        const char *name;               /* e.g. "n1/web@8081" */
        const char *address;            /* informational, may be NULL */
        uint16_t port;                  /* informational */
        uint32_t weight;                /* 0..BALANCE_WEIGHT_MAX */
        enum balance_state state;
        uint64_t active;                /* active connections (wlc); saturates */
};

struct balance;

/*
 * Builds a balancer for `backends` (n may be 0: every pick then fails).
 * Errors: -EINVAL for a bad algorithm, a NULL/empty/too long name, a weight
 * above BALANCE_WEIGHT_MAX or an unknown state; -EEXIST for a duplicate
 * name; -E2BIG for more than BALANCE_BACKENDS_MAX backends; -ENOMEM.
 * Cost: see balance.c's comments per algorithm (at most a few ms at 1,000
 * backends).
 */
int balance_build(enum balance_algorithm algorithm, const struct balance_backend *backends, size_t n,
                  struct balance **ret);

/*
 * Rebuilds for a new table version, same algorithm. Round-robin positions
 * carry over (modulo the new cycle) so frequent table changes do not favour
 * the first backends. Same errors as balance_build(); on error b is untouched.
 */
int balance_update(struct balance *b, const struct balance_backend *backends, size_t n);

void balance_free(struct balance *b);

/*
 * Picks a backend; writes its index (into the array of the last build) to
 * *ret_index. `rnd` must be a fresh uniformly random 64-bit value for
 * random and wrandom, and is ignored by the others. sourcehash hashes
 * key[0..key_len) (e.g. the client address text); with key == NULL it uses
 * rnd as the hash instead (a client without an address gets a random
 * backend). Returns 0, -EHOSTUNREACH when no backend is eligible, -EINVAL
 * for a key longer than BALANCE_KEY_MAX or bad arguments; *ret_index is
 * untouched on error.
 *
 * wlc does not count the connection it hands out: the caller reports it with
 * balance_add_active(b, i, +1) (and -1 when it ends) or the next table.
 */
int balance_pick(struct balance *b, uint64_t rnd, const void *key, size_t key_len, size_t *ret_index);

/*
 * Active connections of backend `index`, as in the last build's numbering.
 * Values saturate at 0 and BALANCE_ACTIVE_MAX. O(log n) for wlc, O(1)
 * otherwise. -EINVAL for an index out of range.
 */
int balance_set_active(struct balance *b, size_t index, uint64_t active);
int balance_add_active(struct balance *b, size_t index, int64_t delta);
uint64_t balance_get_active(const struct balance *b, size_t index);

enum balance_algorithm balance_algorithm(const struct balance *b);
/* Backends given at the last build, and how many of them can be picked. */
size_t balance_size(const struct balance *b);
size_t balance_eligible(const struct balance *b);

/*
 * The 64-bit hash sourcehash uses for client keys: SipHash-2-4 under a
 * fixed key, so every agent and every version maps a client the same way.
 */
uint64_t balance_hash(const void *data, size_t len);

/* "random", "roundrobin", "wrr", "wrandom", "wlc", "sourcehash"; NULL when out of range. */
const char *balance_algorithm_to_string(enum balance_algorithm a);
/* The inverse; _BALANCE_ALGORITHM_INVALID for an unknown name or NULL. */
enum balance_algorithm balance_algorithm_from_string(const char *s);
/* "up", "draining", "down", "ejected"; NULL when out of range. */
const char *balance_state_to_string(enum balance_state s);
enum balance_state balance_state_from_string(const char *s);

#endif
