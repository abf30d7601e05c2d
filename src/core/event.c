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
