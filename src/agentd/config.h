/*
 * The agent's configuration: libconfig text -> one immutable struct. A loaded
 * config is never modified; a reload builds a new one, compares it with the
 * old (config_diff_restart_key) and swaps the pointer.
 */
#ifndef AGENTD_CONFIG_H
#define AGENTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"
#include "core/election.h"

enum config_role { CONFIG_ROLE_MEMBER, CONFIG_ROLE_WITNESS, _CONFIG_ROLE_MAX };
enum config_profile { CONFIG_PROFILE_LAN, CONFIG_PROFILE_LOCAL, CONFIG_PROFILE_WAN, _CONFIG_PROFILE_MAX };
enum config_sync { CONFIG_SYNC_NORMAL, CONFIG_SYNC_FULL, _CONFIG_SYNC_MAX };
enum config_bus { CONFIG_BUS_SYSTEM, CONFIG_BUS_USER, _CONFIG_BUS_MAX };
enum config_log_target { CONFIG_LOG_JOURNAL, CONFIG_LOG_STDERR, _CONFIG_LOG_TARGET_MAX };
/* Values are syslog priorities: a message is logged when its priority <= level. */
enum config_log_level {
        CONFIG_LOG_ERR = 3, CONFIG_LOG_WARNING = 4, CONFIG_LOG_NOTICE = 5,
        CONFIG_LOG_INFO = 6, CONFIG_LOG_DEBUG = 7,
};
enum config_algorithm {
        CONFIG_ALG_RANDOM, CONFIG_ALG_ROUNDROBIN, CONFIG_ALG_WRR,
        CONFIG_ALG_WRANDOM, CONFIG_ALG_WLC, CONFIG_ALG_SOURCEHASH, _CONFIG_ALG_MAX,
};
enum config_check_type {
        CONFIG_CHECK_SYSTEMD, CONFIG_CHECK_TCP, CONFIG_CHECK_HTTP, CONFIG_CHECK_EXEC, _CONFIG_CHECK_MAX,
};

/* Limits an outsider (the config author) cannot exceed. */
#define CONFIG_MAX_SERVICES 256 /* one D-Bus match each: see SYSTEMD_MAX_UNITS */
#define CONFIG_MAX_JOIN 64
#define CONFIG_MAX_WEIGHT 10000
#define CONFIG_MAX_REPLICAS 1000
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)  /* bytes of config text */
#define CONFIG_MAX_PATH 4095                /* cluster.keyring, check.command */
/* node.state_dir is shorter so "<state_dir>/state.db.corrupt-<time>" still fits PATH_MAX. */
#define CONFIG_MAX_STATE_DIR 4000

struct config_check {
        enum config_check_type type;
        char *path;          /* http: request path, default "/" */
        char *expect_body;   /* http: optional substring the body must contain */
        int status_min;      /* http: accepted status range, default 200..399 */
        int status_max;
        char *command;       /* exec: program and arguments, split on spaces */
        uint64_t interval_us;
        uint64_t timeout_us;
        int rise;
        int fall;
};

struct config_restart {
        int limit;
        uint64_t window_us;
        uint64_t backoff_us;
        uint64_t backoff_max_us;
};

struct config_breaker {
        int failures;
        uint64_t open_for_us;
        int half_open_probes;
};

struct config_service {
        char *name;
        char *unit;
        char *address;
        uint16_t port;
        int weight;
        enum config_algorithm algorithm;
        int replicas;
        /*
         * Placement (replicas >= 1): the template the leader's placed
         * instances are made from ("web@.service"; port P gives
         * "web@P.service") and the ports they may use. NULL and 0, 0 when
         * replicas is 0. A unit that is itself the template runs no static
         * instance here (config_service_has_static()).
         */
        char *template_unit;
        uint16_t port_min, port_max;
        struct config_check check;
        struct config_restart restart;
        struct config_breaker breaker;
        int line; /* where the service was defined, for later messages */
};

/*
 * gossip { }: overrides of the timings cluster.profile sets (the profiles
 * themselves live in core/membership.c). A duration of 0 and an integer of
 * -1 mean "not set: the profile's value".
 */
#define CONFIG_GOSSIP_UNSET (-1)
#define CONFIG_GOSSIP_MTU_DEFAULT 1400
struct config_gossip {
        uint64_t probe_interval_us;
        uint64_t probe_timeout_us;
        int indirect_checks;
        int suspicion_mult;
        int suspicion_max_timeout_mult;
        int retransmit_mult;
        uint64_t gossip_interval_us;
        int gossip_nodes;
        uint64_t pushpull_interval_us;
        uint64_t dead_reprobe_interval_us;
        int mtu;                /* bytes of one UDP packet, envelope included; always set */
};

struct agentd_config {
        char *path;

        /* node */
        char *node_name;
        char *node_bind;        /* "host:port" as written */
        char *bind_host;
        uint16_t bind_port;
        char *state_dir;
        bool voter;
        enum config_role role;

        /* cluster */
        char *cluster_name;
        char **join;            /* "host:port" strings */
        size_t n_join;
        char *keyring;          /* NULL: plaintext */
        enum config_profile profile;
        struct config_gossip gossip;
        struct election_config election;       /* cluster.election, validated */

        /* control */
        char *control_socket;
        char *control_group;    /* NULL: the agent's own group */
        char *admin_group;      /* NULL: only root is admin */

        /* store */
        enum config_sync synchronous;
        uint64_t events_max_age_us;
        uint64_t events_max_rows;

        /* systemd */
        enum config_bus bus;

        /* log */
        enum config_log_target log_target;
        enum config_log_level log_level;

        struct config_service *services;
        size_t n_services;
};

/*
 * Loads and validates PATH. On failure returns a negative errno and sets
 * *ret_error to a malloc'd "FILE:LINE: message" (FILE: message when no line
 * applies); *ret is untouched. Group names are only checked for syntax here;
 * resolving them is the agent's job at start.
 */
int config_load(const char *path, struct agentd_config **ret, char **ret_error);

/* Same, from a string; FILE in messages is `name`. Used by tests and fuzzers. */
int config_load_string(const char *text, const char *name, struct agentd_config **ret, char **ret_error);

void config_free(struct agentd_config *c);

/*
 * Returns the dotted name of the first setting whose change needs a restart
 * (node.name, node.bind, node.state_dir, control.socket, ...), or NULL when NEW
 * can be applied to a running agent that loaded OLD.
 */
const char *config_diff_restart_key(const struct agentd_config *old, const struct agentd_config *new);

/*
 * False for a service whose unit is a bare template ("web@.service"): this
 * host runs no configured instance of it, only the ones the leader places.
 */
bool config_service_has_static(const struct config_service *s);

const char *config_role_to_string(enum config_role r);
const char *config_profile_to_string(enum config_profile p);
const char *config_sync_to_string(enum config_sync s);
const char *config_bus_to_string(enum config_bus b);
const char *config_log_target_to_string(enum config_log_target t);
const char *config_log_level_to_string(enum config_log_level l);
const char *config_algorithm_to_string(enum config_algorithm a);
const char *config_check_type_to_string(enum config_check_type t);

#endif
