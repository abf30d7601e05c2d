/*
 * The balancer table (pure core), as in DESIGN.md "Leader, balancer table,
 * failover".
 *
 * Every agent gossips a report of its local instances (struct
 * table_report). The leader feeds the current members, the latest report of
 * each node and the drains to table_builder_build(), which computes for
 * every service the list of backends and their state, and publishes a new
 * table set under (term, version) only when the content changed. Agents
 * compare (term, version, digest) announced on the gossip with what they
 * hold and pull on a mismatch; table_apply() accepts an incoming set only
 * when it is newer and not from a fenced (older) term. table_encode() and
 * table_decode() give the one canonical binary form used for transport and
 * persistence; table_diff() lists what changed between two versions for the
 * `failover` event.
 *
 * Backend state (enum balance_state, printed by balance_state_to_string()),
 * worst first:
 *   down      the node is dead, has left or is unknown to membership, or
 *             the instance's own health check says it is down: it cannot
 *             serve at all.
 *   ejected   the node is fine and the instance is healthy, but its circuit
 *             breaker is open or half-open: the breaker, not the balancer,
 *             decides when it serves again (half-open probes come from the
 *             health checks), so it gets no picks until the breaker closes.
 *   draining  the node is draining (operator request, until the drain's
 *             `until` time, exclusive, or forever): no new picks.
 *   up        everything else. A suspect node keeps its backends up: a
 *             suspicion is not a death, and flapping tables on every
 *             suspicion would hurt more than a few failed connections.
 *
 * Determinism: services are sorted by name and backends by (node, instance)
 * (byte order), so identical inputs give identical tables, encodings and
 * digests on every agent.
 *
 * Digests: a 64-bit FNV-1a hash of each service's content and one over all
 * services (names and digests). The content is everything except the
 * `active` connection counts, which are a hint that rides along with real
 * changes: they never bump the version on their own, or every connection
 * would publish a table. Digests do not cover (term, version) either, so two
 * agents can see that equal content arrived under different versions.
 *
 * Pure: no I/O, no clock, no logging. `now` (CLOCK_MONOTONIC µs) is an input.
 */
#ifndef AGENTD_TABLE_H
#define AGENTD_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/balance.h"
#include "core/breaker.h"
#include "core/membership.h"

/* String sizes, NUL included. */
#define TABLE_NODE_MAX 65               /* 1..64 bytes, printable ASCII (as WIRE_NAME_MAX) */
#define TABLE_SERVICE_MAX 64            /* 1..63 bytes of [a-z0-9_-], starting with a letter or digit */
#define TABLE_INSTANCE_MAX 128          /* 1..127 bytes, printable ASCII (e.g. "web@8080.service") */
#define TABLE_ADDRESS_MAX 254           /* 1..253 bytes, printable ASCII (IP literal or DNS name) */

/* Bounds on what a report or a peer can make us hold. */
#define TABLE_REPORT_INSTANCES_MAX 256  /* instances in one node's report (SYSTEMD_MAX_UNITS) */
#define TABLE_BACKENDS_MAX 1024         /* backends of one service */
#define TABLE_SERVICES_MAX 256          /* services in one table set */
#define TABLE_BACKENDS_TOTAL_MAX 16384  /* backends in one table set (a decode holds at most ~8 MB) */
#define TABLE_FRAME_MAX (UINT32_C(1) << 20) /* an encoded table set, bytes (1 MiB) */
#define TABLE_DETAIL_MAX 1024           /* table_format_down() output suggested size */

/* A drain with this `until` never expires (until undrain). */
#define TABLE_DRAIN_FOREVER UINT64_MAX

/* One local instance, as its agent reports it on the gossip. */
struct table_instance {
        char service[TABLE_SERVICE_MAX];
        enum balance_algorithm algorithm;       /* what the reporting host's config gives the service */
        char instance[TABLE_INSTANCE_MAX];      /* the unit, e.g. "web@8080.service" */
        char address[TABLE_ADDRESS_MAX];
        uint16_t port;                          /* 1..65535 */
        uint32_t weight;                        /* 0..BALANCE_WEIGHT_MAX */
        bool healthy;                           /* health check: up (true) or down */
        enum breaker_state breaker;
        uint64_t active;                        /* active connections */
};

/* One node's report: every instance it runs. */
struct table_report {
        char node[TABLE_NODE_MAX];
        size_t n_instances;                     /* 0..TABLE_REPORT_INSTANCES_MAX */
        struct table_instance *instances;       /* caller-owned, n_instances entries */
};

/*
 * Checks every field: names and their characters, algorithm, port, weight,
 * breaker state, n_instances (and a non-NULL array when it is not 0), and no
 * (service, instance) twice. Returns 0, or -EINVAL (-EEXIST for a
 * duplicate) with a static reason in *ret_reason (may be NULL).
 */
int table_instance_validate(const struct table_instance *i, const char **ret_reason);
int table_report_validate(const struct table_report *r, const char **ret_reason);

/* The service name rule of table_instance_validate() (1..63 bytes of [a-z0-9_-], not starting with _ or -). */
bool table_service_name_valid(const char *name);

/* A member as membership sees it. */
struct table_member {
        const char *name;
        enum membership_state state;
};

/* A drained node: draining while now < until_us (TABLE_DRAIN_FOREVER: always). */
struct table_drain {
        const char *node;
        uint64_t until_us;
};

/* Everything the leader builds a table from. */
struct table_input {
        uint64_t now;
        const struct table_member *members;     /* no name twice */
        size_t n_members;
        const struct table_report *reports;     /* the latest per node; no node twice */
        size_t n_reports;
        const struct table_drain *drains;       /* a node twice: draining while any of them runs */
        size_t n_drains;
};

/*
 * The earliest drain end after `now` (when the builder must run again for
 * the table to change by itself), or UINT64_MAX when none is pending.
 */
uint64_t table_drains_next_expiry(const struct table_drain *drains, size_t n, uint64_t now);

struct table_backend {
        char node[TABLE_NODE_MAX];
        char instance[TABLE_INSTANCE_MAX];
        char address[TABLE_ADDRESS_MAX];
        uint16_t port;
        uint32_t weight;
        enum balance_state state;
        uint64_t active;                        /* a hint: not in the digest */
};

struct table_service {
        char name[TABLE_SERVICE_MAX];
        enum balance_algorithm algorithm;       /* its first backend's, in (node, instance) order */
        uint64_t digest;
        size_t n_backends;                      /* 1..TABLE_BACKENDS_MAX */
        struct table_backend *backends;         /* sorted by (node, instance) */
};

/* A published table: every service, under one (term, version). Read-only for callers. */
struct table_set {
        uint64_t term;
        uint64_t version;                       /* >= 1 in a published set */
        uint64_t digest;                        /* over every service */
        size_t n_services;
        struct table_service *services;         /* sorted by name */
};

void table_set_free(struct table_set *t);       /* NULL-safe */
static inline void table_set_freep(struct table_set **t) { table_set_free(*t); }

/* A deep copy. -ENOMEM. */
int table_set_dup(const struct table_set *t, struct table_set **ret);

/* The service called `name`, or NULL. O(log services). */
const struct table_service *table_find(const struct table_set *t, const char *name);

/* True when a and b have the same content (every field but active, digests, term and version). */
bool table_same_content(const struct table_set *a, const struct table_set *b);

/*
 * The leader's builder: remembers the last published set so that it only
 * publishes a new version when the content changed.
 */
struct table_builder;

int table_builder_new(struct table_builder **ret);     /* -ENOMEM */
void table_builder_free(struct table_builder *b);      /* NULL-safe */

/*
 * Builds the table set for `in` under `term` (>= 1). Versions: the first
 * build, and the first in a newer term, publish (term, 1) - a new leader
 * always publishes under its own term, even with unchanged content; in the
 * same term the version goes up by one only when the content differs from
 * the current set (*ret_changed says whether it did; may be NULL).
 * A report from a node no member has, and instances of dead or left
 * members, give `down` backends. Services without backends are left out.
 * A service's algorithm is the one its first backend in (node, instance)
 * order reports: hosts whose configs disagree still give every agent the
 * same table, and a fixed rule beats a vote nobody can predict.
 * Errors (nothing changes): -EINVAL for a bad input or member/drain name
 * (reports as table_report_validate()), -EEXIST for a member or report node
 * twice, -ESTALE for a term older than the current set's, -E2BIG when a
 * service would have more than TABLE_BACKENDS_MAX backends or there would be
 * more than TABLE_SERVICES_MAX services or TABLE_BACKENDS_TOTAL_MAX
 * backends in all, -EMSGSIZE when the set would not
 * encode within TABLE_FRAME_MAX, -ENOMEM.
 */
int table_builder_build(struct table_builder *b, uint64_t term, const struct table_input *in,
                        bool *ret_changed);

/* The current published set (owned by the builder), or NULL before the first build. */
const struct table_set *table_builder_current(const struct table_builder *b);

enum table_apply_result {
        TABLE_APPLY_ACCEPTED,   /* newer (term, version), term not fenced: take it */
        TABLE_APPLY_STALE,      /* not newer than what we have */
        TABLE_APPLY_FENCED,     /* from a term older than the highest term seen */
        _TABLE_APPLY_MAX,
};
const char *table_apply_result_to_string(enum table_apply_result r); /* "accepted", "stale", "fenced" */

/*
 * The follower's rule. `local` may be NULL (no table yet); `highest_term` is
 * the highest term this agent has seen (election). Fencing is checked first:
 * incoming->term < highest_term is FENCED even when local is older still.
 */
enum table_apply_result table_apply_check(const struct table_set *local, const struct table_set *incoming,
                                          uint64_t highest_term);

/*
 * table_apply_check(), and on ACCEPTED frees *local and stores incoming in it
 * (taking ownership). On STALE and FENCED nothing changes and the caller
 * still owns incoming.
 */
enum table_apply_result table_apply(struct table_set **local, struct table_set *incoming, uint64_t highest_term);

/*
 * Canonical binary form (big-endian): "AGTB", format 2, term u64, version
 * u64, service count u16, then per service name (u8 length + bytes),
 * algorithm u8 (enum balance_algorithm), backend count u16, and per backend
 * node, instance, address (u8 length + bytes), port u16, weight u16, state
 * u8, active u64. Digests are not sent; the decoder recomputes them. Format
 * 1 (no algorithm byte) was never deployed and is refused like any other
 * format number.
 *
 * table_encode() returns a malloc'd buffer of at most TABLE_FRAME_MAX bytes:
 * 0, -EINVAL for an invalid set, -EMSGSIZE over the cap, -ENOMEM.
 *
 * table_decode() accepts exactly the canonical form of a valid set (every
 * string validated, services and backends strictly sorted, so nothing twice,
 * at least one backend per service, every count within its cap, version
 * >= 1, no trailing bytes):
 * 0, -E2BIG for len > TABLE_FRAME_MAX, -EPROTONOSUPPORT for another format
 * number, -EBADMSG for anything else malformed, -ENOMEM. A decoded set
 * re-encodes to the same bytes.
 */
int table_encode(const struct table_set *t, uint8_t **ret_buf, size_t *ret_len);
int table_decode(const uint8_t *buf, size_t len, struct table_set **ret);

/* "node/instance": a backend's unique name for balance_build() (sourcehash's ring identity). */
#define TABLE_BACKEND_NAME_MAX (TABLE_NODE_MAX + TABLE_INSTANCE_MAX)

/*
 * Describes service s for balance_build(): out[i] and names[i] for every
 * backend i (both arrays of s->n_backends entries, caller-owned); out[i].name
 * points into names[i], so pick indices are backend indices of s.
 */
void table_service_to_balance(const struct table_service *s, struct balance_backend *out,
                              char (*names)[TABLE_BACKEND_NAME_MAX]);

/* One backend whose state changed between two versions. */
struct table_change {
        char service[TABLE_SERVICE_MAX];
        char node[TABLE_NODE_MAX];
        char instance[TABLE_INSTANCE_MAX];
        enum balance_state from;        /* _BALANCE_STATE_INVALID: new backend */
        enum balance_state to;          /* _BALANCE_STATE_INVALID: removed */
};

/*
 * The backends that were added, removed or changed state from `old` to
 * `new` (either may be NULL: empty), in (service, node, instance) order, as
 * a malloc'd array (NULL when there are none). 0 or -ENOMEM.
 */
int table_diff(const struct table_set *old, const struct table_set *new, struct table_change **ret,
               size_t *ret_n);

/*
 * The failover part of a diff as text for an event detail: every change to
 * `down` or `ejected`, and every removal, as "INSTANCE on NODE STATE"
 * ("removed" for a removal), separated by "; ". When `node` is not NULL only
 * that node's backends are listed. A ".service" suffix is left out of the
 * instance name. When not all fit in buf, the text ends with "..." after
 * the last entry that fits. Returns the number of entries written in full;
 * len < 4 writes nothing and returns 0.
 */
size_t table_format_down(const struct table_change *changes, size_t n, const char *node, char *buf,
                         size_t len);

#endif
