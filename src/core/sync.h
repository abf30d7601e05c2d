/*
 * The table sync protocol (pure codec): what agents and the leader say to
 * each other about instances, balancer tables, placements and drains. The
 * bodies travel inside the same sealed envelope as gossip (io/crypto) and
 * share its first two bytes (version, type); see doc/PROTOCOL.md, "Table
 * sync bodies".
 *
 *   REPORT    agent -> leader, TCP exchange request (or reply to an UPDATE):
 *             the agent's instances, the services it may run, its drain
 *             and the table version it holds.
 *   UPDATE    leader -> agent, TCP exchange request (or reply to a REPORT):
 *             the leader's term, optionally the encoded table set
 *             (core/table.h) and optionally the placed instances this agent
 *             must run (its assignment).
 *   ANNOUNCE  leader -> every member, UDP: (term, version, digest) of the
 *             current table, so an agent that missed an UPDATE pulls it.
 *   DRAIN     any agent -> the drained node, UDP: set or clear its drain.
 *   DRAIN_ACK the drained node -> the requester, UDP: applied (or why not).
 *
 * Every decoder validates everything (names, counts against their caps,
 * enum ranges, no trailing bytes) and never reads past len. Pure: no I/O,
 * no clock, no logging.
 */
#ifndef AGENTD_SYNC_H
#define AGENTD_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/balance.h"
#include "core/placement.h"
#include "core/table.h"

/* Type bytes (byte 1 of a body; byte 0 is WIRE_VERSION). */
#define SYNC_TYPE_REPORT 0x21
#define SYNC_TYPE_UPDATE 0x22
#define SYNC_TYPE_ANNOUNCE 0x23
#define SYNC_TYPE_DRAIN 0x24
#define SYNC_TYPE_DRAIN_ACK 0x25

/* Caps on what one peer can make us hold. */
#define SYNC_SERVICES_MAX 256           /* service specs in one report (CONFIG_MAX_SERVICES) */
#define SYNC_ASSIGNED_MAX 256           /* placed instances in one assignment (SYSTEMD_MAX_UNITS) */
#define SYNC_REPORT_MAX (UINT32_C(1) << 20)     /* an encoded REPORT, bytes */
#define SYNC_UPDATE_MAX (TABLE_FRAME_MAX + (UINT32_C(1) << 20)) /* an encoded UPDATE, bytes */
#define SYNC_DATAGRAM_MAX 512           /* ANNOUNCE, DRAIN, DRAIN_ACK */
#define SYNC_UNIT_MAX 256               /* unit names, NUL included (PLACEMENT_UNIT_MAX + 1) */

/* A drain `until` meaning "no drain" (0) and "until undrain" (TABLE_DRAIN_FOREVER). */
#define SYNC_DRAIN_NONE 0

/* A service an agent may run, as its config describes it. */
struct sync_service_spec {
        char name[TABLE_SERVICE_MAX];
        enum balance_algorithm algorithm;
        uint16_t replicas;                      /* 0..PLACEMENT_REPLICAS_MAX */
        char template_unit[SYNC_UNIT_MAX];      /* "web@.service", or "" (no placement here) */
        uint16_t port_min, port_max;            /* 0, 0 without a template; else 1 <= min <= max */
};

/* One instance in a report: the table's view plus the placement's. */
struct sync_instance {
        struct table_instance inst;             /* inst.instance is the unit */
        enum placement_origin origin;
        enum placement_instance_state state;
        uint64_t placed_at_us;                  /* PLACED: CLOCK_REALTIME µs of the order; else 0 */
};

struct sync_report {
        char node[TABLE_NODE_MAX];
        uint64_t term_seen;                     /* highest election term this agent has seen */
        uint64_t table_term, table_version, table_digest;       /* what it holds; 0, 0, 0: nothing */
        bool witness;
        uint64_t drain_until_us;                /* CLOCK_REALTIME µs; SYNC_DRAIN_NONE; TABLE_DRAIN_FOREVER */
        size_t n_services;
        struct sync_service_spec *services;     /* no name twice; <= SYNC_SERVICES_MAX */
        size_t n_instances;
        struct sync_instance *instances;        /* no (service, unit) twice; <= TABLE_REPORT_INSTANCES_MAX */
};

/* Frees what a decoder allocated in r (services, instances) and zeroes them. NULL-safe. */
void sync_report_done(struct sync_report *r);

/* A placed instance the leader wants this agent to run. */
struct sync_assigned {
        char service[TABLE_SERVICE_MAX];
        char unit[SYNC_UNIT_MAX];
        uint16_t port;
        uint64_t placed_at_us;                  /* CLOCK_REALTIME µs */
};

/*
 * The leader's message. table/table_len borrow from the decoded buffer (the
 * bytes of table_encode(); table_len 0: no table). With has_assignment
 * false the receiver leaves its placed instances alone; with it true the
 * list is complete: placed instances not in it are to be stopped.
 */
struct sync_update {
        char leader[TABLE_NODE_MAX];
        uint64_t term;                          /* >= 1 */
        const uint8_t *table;
        size_t table_len;                       /* 0..TABLE_FRAME_MAX */
        bool has_assignment;
        size_t n_assigned;
        struct sync_assigned *assigned;         /* no unit twice; <= SYNC_ASSIGNED_MAX */
};

/* Frees what a decoder allocated in u (assigned) and zeroes it. NULL-safe. */
void sync_update_done(struct sync_update *u);

struct sync_announce {
        char leader[TABLE_NODE_MAX];
        uint64_t term, version, digest;
};

struct sync_drain {
        char from[TABLE_NODE_MAX];              /* who asks (the ack goes there) */
        char node[TABLE_NODE_MAX];              /* who is to drain */
        uint64_t nonce;                         /* echoed in the ack */
        uint64_t until_us;                      /* CLOCK_REALTIME µs; SYNC_DRAIN_NONE: undrain */
};

struct sync_drain_ack {
        char from[TABLE_NODE_MAX];              /* the drained node */
        uint64_t nonce;
        int32_t result;                         /* 0 or a negative errno */
};

/* The type byte of a body that looks like a sync body (version 1, 0x21..0x25), else 0. */
uint8_t sync_body_type(const uint8_t *buf, size_t len);

/*
 * Encoders return a malloc'd buffer (REPORT, UPDATE) or write into buf
 * (datagrams): 0, -EINVAL for an invalid struct (the same rules the decoder
 * enforces), -EMSGSIZE when it would exceed the cap or size, -ENOMEM.
 * Decoders: 0, -EPROTONOSUPPORT for another version, -EBADMSG for anything
 * malformed, -E2BIG over the cap (the body's length, a list count's or
 * table_len's), -ENOMEM; *ret untouched on failure. A count within its cap
 * that claims more entries than the remaining bytes can hold is -EBADMSG,
 * before anything is allocated.
 * REPORT and UPDATE decoders allocate the arrays (free them with
 * sync_report_done() / sync_update_done()); encoders only read them.
 */
int sync_report_encode(const struct sync_report *r, uint8_t **ret_buf, size_t *ret_len);
int sync_report_decode(const uint8_t *buf, size_t len, struct sync_report *ret);
int sync_update_encode(const struct sync_update *u, uint8_t **ret_buf, size_t *ret_len);
int sync_update_decode(const uint8_t *buf, size_t len, struct sync_update *ret);
int sync_announce_encode(const struct sync_announce *a, uint8_t *buf, size_t size, size_t *ret_len);
int sync_announce_decode(const uint8_t *buf, size_t len, struct sync_announce *ret);
int sync_drain_encode(const struct sync_drain *d, uint8_t *buf, size_t size, size_t *ret_len);
int sync_drain_decode(const uint8_t *buf, size_t len, struct sync_drain *ret);
int sync_drain_ack_encode(const struct sync_drain_ack *a, uint8_t *buf, size_t size, size_t *ret_len);
int sync_drain_ack_decode(const uint8_t *buf, size_t len, struct sync_drain_ack *ret);

/*
 * The report as the table builder wants it: ret->instances is a malloc'd
 * copy of the table_instance fields (free() it). 0 or -ENOMEM.
 */
int sync_report_to_table(const struct sync_report *r, struct table_report *ret);

#endif
