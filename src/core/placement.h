/*
 * Replica placement: what the leader orders so that every service with
 * `replicas = N` has N instances cluster-wide. One call, placement_plan(),
 * looks at the whole picture (services, hosts, instances) and returns the
 * start and stop orders that move it towards the goal, each with the term of
 * the deciding leader and a human-readable cause for the instance_placed,
 * instance_stopped and failover events. The caller keeps the instance list:
 * after sending a start order it adds the instance as PENDING with
 * placed_at_us = now; after a stop order it marks the instance STOPPING.
 *
 * Counting. An instance counts towards N when its host is up or suspect (a
 * suspicion alone is no reason to fail over) and it is pending, healthy or
 * unhealthy (self-healing on its host deals with that). It does not count when
 * its host is down or unknown, when it failed, when it is being stopped, or
 * when it is a placed instance still pending pending_timeout_us after its
 * order: such an order is considered failed, gets a stop order and is
 * re-placed, elsewhere if possible.
 *
 * Placing. Missing replicas go, one at a time, to eligible hosts: up (not
 * suspect or down), not draining, not a witness, and listing the service.
 * Hosts are ranked by: fewest instances of this service (spread), no failure
 * of this service there (a failed or timed-out instance: re-place elsewhere
 * when spread allows), fewest counted instances of any service (least
 * loaded), then name (byte order), so the result is deterministic. The new
 * instance is the service's template with the lowest port of [port_min,
 * port_max] that no instance on that host uses (any service, any state) and
 * whose unit name is free there: "web@.service" and port 8081 give
 * "web@8081.service". A host without a free port is skipped. A start names
 * the lost instance it replaces (lost instances are taken oldest first), and
 * its reason says how it was lost: HOST_DEAD starts are the failover.
 *
 * Surplus. With more than N counted instances, placed instances are stopped,
 * oldest placement first (placed_at_us, then node, then unit). Static
 * instances (listed in a host's config) are never stopped by placement, and
 * nothing is moved back when a host returns: its instances are just counted
 * again, and being the oldest they are the ones stopped (a returning static
 * instance makes a placed one surplus instead). With N = 0 the service runs
 * only its static instances: every placed instance is surplus. More static
 * instances than N are left running, with a STATIC_SURPLUS note.
 *
 * Load is derived, not given: the counted instances (any service) on a host,
 * plus the starts of this plan, so services planned later see the starts of
 * those planned earlier.
 *
 * Instances of services not in the input are left alone. Pure: no clock,
 * no I/O, no randomness; now_us and placed_at_us are on the caller's clock,
 * which should be CLOCK_REALTIME µs carried with the instance (gossip, store)
 * so that a new leader ages and orders the previous leader's placements too.
 */
#ifndef AGENTD_PLACEMENT_H
#define AGENTD_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLACEMENT_NAME_MAX 64           /* node and service names, bytes (WIRE_NAME_MAX) */
#define PLACEMENT_UNIT_MAX 255          /* systemd's UNIT_NAME_MAX */
#define PLACEMENT_CAUSE_MAX 512         /* cause and note text, NUL included (longer is cut) */
#define PLACEMENT_SERVICES_MAX 1024
#define PLACEMENT_HOSTS_MAX 10000
#define PLACEMENT_INSTANCES_MAX 100000
#define PLACEMENT_REPLICAS_MAX 1000
/* Orders per plan; the rest waits for the next plan (a TRUNCATED note says so). */
#define PLACEMENT_ORDERS_MAX 4096

enum placement_host_state {
        PLACEMENT_HOST_UP,
        PLACEMENT_HOST_SUSPECT,         /* instances count; gets no new ones */
        PLACEMENT_HOST_DOWN,            /* dead or left: instances do not count */
        _PLACEMENT_HOST_STATE_MAX,
        _PLACEMENT_HOST_STATE_INVALID = -1,
};

enum placement_origin {
        PLACEMENT_STATIC,               /* listed in its host's config: never stopped here */
        PLACEMENT_PLACED,               /* started by a leader's order */
        _PLACEMENT_ORIGIN_MAX,
        _PLACEMENT_ORIGIN_INVALID = -1,
};

enum placement_instance_state {
        PLACEMENT_PENDING,              /* ordered / starting, not yet reported healthy */
        PLACEMENT_HEALTHY,
        PLACEMENT_UNHEALTHY,            /* being healed on its host: still counts */
        PLACEMENT_FAILED,               /* start failed or gave up: does not count */
        PLACEMENT_STOPPING,             /* stop ordered: does not count, keeps its port */
        _PLACEMENT_INSTANCE_STATE_MAX,
        _PLACEMENT_INSTANCE_STATE_INVALID = -1,
};

enum placement_order_kind {
        PLACEMENT_ORDER_START,
        PLACEMENT_ORDER_STOP,
        _PLACEMENT_ORDER_KIND_MAX,
        _PLACEMENT_ORDER_KIND_INVALID = -1,
};

/* Why an order was given; a start that replaces a lost instance says how it was lost. */
enum placement_reason {
        PLACEMENT_REASON_MISSING,       /* start: fewer than N, no lost instance to name */
        PLACEMENT_REASON_HOST_DEAD,     /* start: replaces an instance on a down host (failover) */
        PLACEMENT_REASON_TIMEOUT,       /* start: replaces, stop: a pending order that timed out */
        PLACEMENT_REASON_FAILED,        /* start: replaces, stop: a failed placed instance */
        PLACEMENT_REASON_SURPLUS,       /* stop: more than N */
        _PLACEMENT_REASON_MAX,
        _PLACEMENT_REASON_INVALID = -1,
};

enum placement_note_kind {
        PLACEMENT_NOTE_NO_HOST,         /* replicas missing, no eligible host */
        PLACEMENT_NOTE_NO_PORT,         /* replicas missing, no free port on any eligible host */
        PLACEMENT_NOTE_STATIC_SURPLUS,  /* more static instances than N: left running */
        PLACEMENT_NOTE_TRUNCATED,       /* PLACEMENT_ORDERS_MAX reached: more next time */
        _PLACEMENT_NOTE_KIND_MAX,
        _PLACEMENT_NOTE_KIND_INVALID = -1,
};

struct placement_service {
        const char *name;               /* 1..PLACEMENT_NAME_MAX bytes */
        const char *template_unit;      /* "web@.service"; may be NULL when replicas == 0 */
        unsigned replicas;              /* N, 0..PLACEMENT_REPLICAS_MAX; 0: static instances only */
        uint16_t port_min, port_max;    /* ports of new instances, 1 <= min <= max */
};

struct placement_host {
        const char *name;               /* unique, 1..PLACEMENT_NAME_MAX bytes */
        enum placement_host_state state;
        bool draining;
        bool witness;                   /* role = "witness": runs no services */
        const char *const *services;    /* names of the services its config lists */
        size_t n_services;
};

struct placement_instance {
        const char *service;
        const char *node;               /* a host not in the input counts as down */
        const char *unit;               /* unique per node */
        uint16_t port;
        enum placement_origin origin;
        enum placement_instance_state state;
        uint64_t placed_at_us;          /* PLACED: when ordered, caller's clock */
};

struct placement_input {
        uint64_t term;                  /* the deciding leader's term, >= 1 */
        uint64_t now_us;
        uint64_t pending_timeout_us;    /* 0: pending orders never time out */
        const struct placement_service *services;       /* planned in this order */
        size_t n_services;
        const struct placement_host *hosts;
        size_t n_hosts;
        const struct placement_instance *instances;
        size_t n_instances;
};

struct placement_order {
        enum placement_order_kind kind;
        enum placement_reason reason;
        uint64_t term;
        char node[PLACEMENT_NAME_MAX + 1];
        char service[PLACEMENT_NAME_MAX + 1];
        char unit[PLACEMENT_UNIT_MAX + 1];
        uint16_t port;
        char replaces_node[PLACEMENT_NAME_MAX + 1];     /* start replacing a lost instance, else "" */
        char replaces_unit[PLACEMENT_UNIT_MAX + 1];
        char cause[PLACEMENT_CAUSE_MAX];
};

struct placement_note {
        enum placement_note_kind kind;
        char service[PLACEMENT_NAME_MAX + 1];
        char text[PLACEMENT_CAUSE_MAX];
};

/*
 * Orders in service order; per service: stops of failed and timed-out
 * placed instances, then starts, then surplus stops.
 */
struct placement_plan {
        struct placement_order *orders;
        size_t n_orders;
        struct placement_note *notes;
        size_t n_notes;
};

/*
 * Computes the orders for in. Returns 0 and fills *ret (free it with
 * placement_plan_free()); -EINVAL for a bad input with the reason in
 * error[0..error_len) (error may be NULL), -E2BIG over a *_MAX limit,
 * -ENOMEM. *ret is untouched on failure.
 */
int placement_plan(const struct placement_input *in, struct placement_plan *ret, char *error, size_t error_len);

void placement_plan_free(struct placement_plan *p);

/*
 * Fencing on the agent: 0 when the order may be acted on, -ESTALE when it
 * comes from a term older than current_term, -EINVAL when it is malformed
 * (unknown kind, empty node, bad unit name, start without a port, term 0).
 * The agent also checks that order->node is itself.
 */
int placement_order_check(const struct placement_order *order, uint64_t current_term);
/* placement_order_check() == 0. */
bool placement_order_valid(const struct placement_order *order, uint64_t current_term);

/*
 * Unit names placement (and the sync protocol) accepts: a service unit
 * "name.service" or "name@instance.service" with systemd's characters, at
 * most PLACEMENT_UNIT_MAX bytes; a template "name@.service" short enough
 * that "name@65535.service" is still a unit name. NULL is not valid.
 */
bool placement_unit_valid(const char *s);
bool placement_template_valid(const char *s);

/* Printers: a static string, NULL when out of range. */
const char *placement_host_state_to_string(enum placement_host_state s);
const char *placement_origin_to_string(enum placement_origin o);
const char *placement_instance_state_to_string(enum placement_instance_state s);
const char *placement_order_kind_to_string(enum placement_order_kind k);
const char *placement_reason_to_string(enum placement_reason r);
const char *placement_note_kind_to_string(enum placement_note_kind k);

#endif
