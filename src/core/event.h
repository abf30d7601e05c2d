/*
 * Event kinds and the event record. Every state change the agent wants an
 * operator to see is one event: it is written to the store and to the log.
 * The kind names are a contract (agentctl events --kind, journald AGENT_KIND),
 * as are the MESSAGE_IDs listed in contrib/agentd.catalog.
 */
#ifndef AGENTD_EVENT_H
#define AGENTD_EVENT_H

#include <stdint.h>

enum event_kind {
        EVENT_AGENT_STARTED,
        EVENT_AGENT_STOPPING,
        EVENT_CONFIG_RELOADED,
        EVENT_CONFIG_REJECTED,
        EVENT_STORE_RECOVERED,
        EVENT_CTL_DENIED,
        EVENT_CHECK_FAILED,
        EVENT_CHECK_RECOVERED,
        EVENT_UNIT_RESTARTED,
        EVENT_RESTART_SUPPRESSED,
        EVENT_INSTANCE_QUARANTINED,
        EVENT_BREAKER_OPENED,
        EVENT_BREAKER_HALF_OPEN,
        EVENT_BREAKER_CLOSED,
        EVENT_BUS_RECONNECTED,
        EVENT_MEMBER_JOINED,
        EVENT_MEMBER_SUSPECT,
        EVENT_MEMBER_ALIVE,
        EVENT_MEMBER_DEAD,
        EVENT_MEMBER_LEFT,
        EVENT_MEMBER_REFUTED,
        EVENT_PACKET_REJECTED,
        EVENT_LEADER_ELECTED,
        EVENT_LEADER_LOST,
        EVENT_QUORUM_LOST,
        EVENT_QUORUM_REGAINED,
        EVENT_FAILOVER,
        EVENT_TABLE_PUBLISHED,
        EVENT_INSTANCE_PLACED,
        EVENT_INSTANCE_STOPPED,
        _EVENT_KIND_MAX,
        _EVENT_KIND_INVALID = -1,
};

/* Syslog-compatible priorities, so core code needs no <syslog.h>. */
enum event_priority {
        EVENT_PRIO_ERR = 3,
        EVENT_PRIO_WARNING = 4,
        EVENT_PRIO_NOTICE = 5,
        EVENT_PRIO_INFO = 6,
        EVENT_PRIO_DEBUG = 7,
};

/*
 * One event. Strings are borrowed for the duration of the call that takes the
 * event; NULL means "does not apply". ts_us is CLOCK_REALTIME in µs.
 */
struct event {
        uint64_t ts_us;
        enum event_kind kind;
        const char *node;
        const char *subject;
        const char *detail;
        const char *service;
        const char *unit;
        uint64_t term; /* 0: no term applies */
};

const char *event_kind_to_string(enum event_kind k);
enum event_kind event_kind_from_string(const char *s);
/* 32 lowercase hex digits, the journald MESSAGE_ID of the kind. */
const char *event_kind_message_id(enum event_kind k);
enum event_priority event_kind_priority(enum event_kind k);
/* One-line description, used by the catalog test and agentctl help. */
const char *event_kind_description(enum event_kind k);

#endif
