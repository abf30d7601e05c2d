#include <string.h>

#include "core/event.h"

/*
 * One row per kind. The MESSAGE_IDs are fixed forever once released: tools
 * filter the journal on them, and contrib/agentd.catalog documents each one
 * (tests/unit/test_event.c checks that the two agree).
 */
static const struct {
        const char *name;
        const char *message_id;
        enum event_priority priority;
        const char *description;
} kinds[_EVENT_KIND_MAX] = {
        [EVENT_AGENT_STARTED]   = { "agent_started",   "9c4ef0ff83374e3f97cf4615e58b9fd9", EVENT_PRIO_NOTICE,
                                    "the agent started and is serving" },
        [EVENT_AGENT_STOPPING]  = { "agent_stopping",  "c164120e596847a584fd4c7468292b35", EVENT_PRIO_NOTICE,
                                    "the agent received a stop signal and is shutting down" },
        [EVENT_CONFIG_RELOADED] = { "config_reloaded", "b2cfccffa7e54da7b1f8a1974b37711a", EVENT_PRIO_NOTICE,
                                    "a new configuration was loaded and is in force" },
        [EVENT_CONFIG_REJECTED] = { "config_rejected", "fc7150d4b34f4a81a3595c1b94771667", EVENT_PRIO_ERR,
                                    "a reload was refused; the previous configuration stays in force" },
        [EVENT_STORE_RECOVERED] = { "store_recovered", "75395f882dad45ab9e464a47befd9efb", EVENT_PRIO_ERR,
                                    "the state database was corrupt, moved aside and created anew" },
        [EVENT_CTL_DENIED]      = { "ctl_denied",      "6db75d028d2547399a83b2dfa7a5afa1", EVENT_PRIO_WARNING,
                                    "a control client without admin rights asked for a mutating verb" },
        [EVENT_CHECK_FAILED] = { "check_failed", "0df8c1d2c47e407f84f437074df7b5c8", EVENT_PRIO_WARNING,
                "a health check of a local instance failed enough times in a row to mark it unhealthy" },
        [EVENT_CHECK_RECOVERED] = { "check_recovered", "7aaf33d682d04fd3a1293e08ecf2d858", EVENT_PRIO_NOTICE,
                "a local instance passed its health check enough times in a row to be healthy again" },
        [EVENT_UNIT_RESTARTED] = { "unit_restarted", "9e605aa4de3d45c7a607c6412a8f2d30", EVENT_PRIO_WARNING,
                "agentd restarted a unit through systemd; the detail has why, the attempt, the job result and the old and new MainPID" },
        [EVENT_RESTART_SUPPRESSED] = { "restart_suppressed", "f8aae84817f048049bb7b3c37f60cbf1", EVENT_PRIO_WARNING,
                "a restart was held back by backoff, by the restart rate limit, or because systemd is already restarting the unit" },
        [EVENT_INSTANCE_QUARANTINED] = { "instance_quarantined", "b4a9c12bfbb34224b830f209b15ce10c", EVENT_PRIO_ERR,
                "an instance exceeded its restart rate limit: it stays out of rotation and is retried at the backoff cap" },
        [EVENT_BREAKER_OPENED] = { "breaker_opened", "7a3fa7d5675842deb6841d9ccb7711fc", EVENT_PRIO_WARNING,
                "a backend's circuit breaker opened after consecutive failures" },
        [EVENT_BREAKER_HALF_OPEN] = { "breaker_half_open", "eba6565c2a31488f9d77a44a382f2935", EVENT_PRIO_NOTICE,
                "a backend's circuit breaker is letting probes through to test recovery" },
        [EVENT_BREAKER_CLOSED] = { "breaker_closed", "c009a41e827345c3961d63b0a4fdf3ee", EVENT_PRIO_NOTICE,
                "a backend's circuit breaker closed again after successful probes" },
        [EVENT_BUS_RECONNECTED] = { "bus_reconnected", "284c25dc50624313b3a4cd54ea611451", EVENT_PRIO_NOTICE,
                "the D-Bus connection to systemd was lost and has been re-established with its subscriptions" },
        [EVENT_MEMBER_JOINED] = { "member_joined", "06512150e18047d79bb72be7ed6c8967", EVENT_PRIO_NOTICE,
                "a member joined the cluster" },
        [EVENT_MEMBER_SUSPECT] = { "member_suspect", "57d2fd33b1284d7cb41feee973647674", EVENT_PRIO_WARNING,
                "a member did not answer probes and is suspected to have failed" },
        [EVENT_MEMBER_ALIVE] = { "member_alive", "b8302bfb349f437d9780c5b61e503911", EVENT_PRIO_NOTICE,
                "a suspect or dead member is alive again" },
        [EVENT_MEMBER_DEAD] = { "member_dead", "b515905ca3644c9e9196701539f04532", EVENT_PRIO_ERR,
                "a member was declared dead" },
        [EVENT_MEMBER_LEFT] = { "member_left", "12adad0606a0429c994591d4fd4a824c", EVENT_PRIO_NOTICE,
                "a member left the cluster gracefully, or was removed with agentctl force-leave" },
        [EVENT_MEMBER_REFUTED] = { "member_refuted", "1d8660b448f84d2395f5a99ddbde7eec", EVENT_PRIO_WARNING,
                "this agent was suspected by others and refuted it by raising its incarnation" },
        [EVENT_PACKET_REJECTED] = { "packet_rejected", "7ffa7ab31782419687d6bea36e25e287", EVENT_PRIO_WARNING,
                "gossip packets were dropped (authentication failure, replay, malformed); a rate-limited summary with why and how many" },
        [EVENT_LEADER_ELECTED] = { "leader_elected", "2ec5d52654fe4ea79038c2d0864d1f19", EVENT_PRIO_NOTICE,
                "a leader was elected for a new term" },
        [EVENT_LEADER_LOST] = { "leader_lost", "f6f19e11585147f0bbbbf72d0dcf900a", EVENT_PRIO_WARNING,
                "the leader stepped down or was lost; the detail says why" },
        [EVENT_QUORUM_LOST] = { "quorum_lost", "32d2b19458094d0580fa71119ea97dd1", EVENT_PRIO_ERR,
                "this agent cannot reach a majority of the voters; no cluster decision is made on its side" },
        [EVENT_QUORUM_REGAINED] = { "quorum_regained", "ffa89fca71134aadab0b2af867b20275", EVENT_PRIO_NOTICE,
                "a majority of the voters is reachable again" },
        [EVENT_FAILOVER] = { "failover", "81e542c9da604ea9b2de3b31df215223", EVENT_PRIO_WARNING,
                "the leader took a host's backends out of the table and placed replacements; the detail tells which and why" },
        [EVENT_TABLE_PUBLISHED] = { "table_published", "718c57e8c3e84723b978f52bc83c0db7", EVENT_PRIO_INFO,
                "the leader published a new version of a service's balancer table" },
        [EVENT_INSTANCE_PLACED] = { "instance_placed", "0d3e466394f64da5a6bfe174188a4afe", EVENT_PRIO_NOTICE,
                "the leader placed a replica of a service on a host" },
        [EVENT_INSTANCE_STOPPED] = { "instance_stopped", "4d609a4b4ca34295aa25790e5bb412be", EVENT_PRIO_NOTICE,
                "a surplus replica of a service was stopped" },
};

const char *event_kind_to_string(enum event_kind k) {
        if (k < 0 || k >= _EVENT_KIND_MAX)
                return "invalid";
        return kinds[k].name;
}

enum event_kind event_kind_from_string(const char *s) {
        if (!s)
                return _EVENT_KIND_INVALID;
        for (int k = 0; k < _EVENT_KIND_MAX; k++)
                if (strcmp(kinds[k].name, s) == 0)
                        return (enum event_kind) k;
        return _EVENT_KIND_INVALID;
}

const char *event_kind_message_id(enum event_kind k) {
        if (k < 0 || k >= _EVENT_KIND_MAX)
                return NULL;
        return kinds[k].message_id;
}

enum event_priority event_kind_priority(enum event_kind k) {
        if (k < 0 || k >= _EVENT_KIND_MAX)
                return EVENT_PRIO_ERR;
        return kinds[k].priority;
}

const char *event_kind_description(enum event_kind k) {
        if (k < 0 || k >= _EVENT_KIND_MAX)
                return NULL;
        return kinds[k].description;
}
