/*
 * Configuration loader: libconfig text -> struct agentd_config.
 *
 * The loader is strict on purpose. A daemon that keeps services alive must
 * not run on a config it misread, so every key is checked for existence, type
 * and range, and the first problem is returned as "FILE:LINE: message" with
 * the dotted name of the key (e.g. services[0].check.interval). Nothing here
 * logs; the caller prints the message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "agentd/config.h"

/* ---- defaults and limits ----------------------------------------------- */

#define DEFAULT_STATE_DIR       "/var/lib/agentd"
#define DEFAULT_CONTROL_SOCKET  "/run/agentd/agentd.sock"

/* Lengths of the strings a config may hold, in bytes. */
#define NAME_MAX_LEN    63      /* util_valid_name */
#define GROUP_MAX_LEN   32      /* as useradd(8) */
#define UNIT_MAX_LEN    255     /* systemd's UNIT_NAME_MAX */
#define HTTP_PATH_MAX   1024
#define BODY_MAX        1024
/* The socket path must fit sockaddr_un.sun_path with its NUL. */
#define SOCKET_MAX_LEN  (sizeof(((struct sockaddr_un *) 0)->sun_path) - 1)

/* Brackets a config may nest; agentd's own keys need 3 (services, a service, check). */
#define NESTING_MAX     16
#define STR_(x) #x
#define STR(x) STR_(x)

/* Overflowing integer literals remembered per load; more than this is an error by itself. */
#define OVERFLOWS_MAX   64

/* Ranges of every bounded value; the man page documents the same numbers. */
#define CHECK_INTERVAL_MIN      (10 * USEC_PER_MSEC)
#define CHECK_INTERVAL_MAX      USEC_PER_HOUR
#define CHECK_INTERVAL_DEFAULT  (2 * USEC_PER_SEC)
#define CHECK_TIMEOUT_MIN       USEC_PER_MSEC
#define CHECK_TIMEOUT_MAX       USEC_PER_HOUR
#define CHECK_TIMEOUT_DEFAULT   USEC_PER_SEC
#define CHECK_RISE_DEFAULT      2
#define CHECK_FALL_DEFAULT      3
#define CHECK_RISEFALL_MAX      100
#define STATUS_MIN              100
#define STATUS_MAX              599
#define STATUS_MIN_DEFAULT      200
#define STATUS_MAX_DEFAULT      399
#define RESTART_LIMIT_DEFAULT   5
#define RESTART_LIMIT_MAX       1000
#define RESTART_WINDOW_MIN      USEC_PER_SEC
#define RESTART_WINDOW_MAX      USEC_PER_DAY
#define RESTART_WINDOW_DEFAULT  (60 * USEC_PER_SEC)
#define BACKOFF_MIN             USEC_PER_MSEC
#define BACKOFF_MAX             USEC_PER_HOUR
#define BACKOFF_DEFAULT         (100 * USEC_PER_MSEC)
#define BACKOFF_CAP_MIN         USEC_PER_MSEC
#define BACKOFF_CAP_MAX         USEC_PER_DAY
#define BACKOFF_CAP_DEFAULT     (30 * USEC_PER_SEC)
#define BREAKER_FAILURES_DEFAULT 5
#define BREAKER_FAILURES_MAX    1000
#define BREAKER_OPEN_MIN        (10 * USEC_PER_MSEC)
#define BREAKER_OPEN_MAX        USEC_PER_DAY
#define BREAKER_OPEN_DEFAULT    (10 * USEC_PER_SEC)
#define BREAKER_PROBES_DEFAULT  1
#define BREAKER_PROBES_MAX      100
#define WEIGHT_DEFAULT          1
#define EVENTS_AGE_MIN          USEC_PER_MIN
#define EVENTS_AGE_MAX          (3650 * USEC_PER_DAY)
#define EVENTS_AGE_DEFAULT      (30 * USEC_PER_DAY)
#define EVENTS_ROWS_MIN         1
#define EVENTS_ROWS_MAX         1000000000
#define EVENTS_ROWS_DEFAULT     1000000
/* gossip { }: wide enough for any sane cluster, narrow enough to catch a unit typo. */
#define GOSSIP_PERIOD_MIN       (10 * USEC_PER_MSEC)
#define GOSSIP_PERIOD_MAX       USEC_PER_MIN
#define GOSSIP_TIMEOUT_MIN      USEC_PER_MSEC
#define GOSSIP_SYNC_MIN         USEC_PER_SEC
#define GOSSIP_REPROBE_MIN      (100 * USEC_PER_MSEC)
#define GOSSIP_SYNC_MAX         USEC_PER_DAY
#define GOSSIP_INDIRECT_MAX     16
#define GOSSIP_MULT_MAX         100
#define GOSSIP_NODES_MAX        16
#define GOSSIP_RETRANSMIT_MAX   16
/* An MTU below 512 bytes leaves no room for a ping-req once the envelope is on. */
#define GOSSIP_MTU_MIN          512
#define GOSSIP_MTU_MAX          65000
/* cluster.election: each value alone; how they fit together is election_config_validate()'s. */
#define ELECTION_TIME_MIN       USEC_PER_MSEC
#define ELECTION_TIME_MAX       USEC_PER_HOUR
/* replica_ports default: [port, port + 99]. */
#define REPLICA_PORTS_SPAN      99
/*
 * A placed instance's unit (the template with a port of up to 5 digits)
 * must fit a balancer table's instance name (TABLE_INSTANCE_MAX - 1).
 */
#define PLACED_UNIT_MAX         127

/* Longest dotted key name we build: "services[1023].restart.backoff_max". */
#define WHERE_MAX 96

/* ---- enum names ---------------------------------------------------------- */

struct enum_name {
        const char *name;
        int value;
};

static const struct enum_name role_names[] = {
        { "member", CONFIG_ROLE_MEMBER },
        { "witness", CONFIG_ROLE_WITNESS },
};
static const struct enum_name profile_names[] = {
        { "lan", CONFIG_PROFILE_LAN },
        { "local", CONFIG_PROFILE_LOCAL },
        { "wan", CONFIG_PROFILE_WAN },
};
static const struct enum_name sync_names[] = {
        { "normal", CONFIG_SYNC_NORMAL },
        { "full", CONFIG_SYNC_FULL },
};
static const struct enum_name bus_names[] = {
        { "system", CONFIG_BUS_SYSTEM },
        { "user", CONFIG_BUS_USER },
};
static const struct enum_name log_target_names[] = {
        { "journal", CONFIG_LOG_JOURNAL },
        { "stderr", CONFIG_LOG_STDERR },
};
static const struct enum_name log_level_names[] = {
        { "err", CONFIG_LOG_ERR },
        { "warning", CONFIG_LOG_WARNING },
        { "notice", CONFIG_LOG_NOTICE },
        { "info", CONFIG_LOG_INFO },
        { "debug", CONFIG_LOG_DEBUG },
};
static const struct enum_name algorithm_names[] = {
        { "random", CONFIG_ALG_RANDOM },
        { "roundrobin", CONFIG_ALG_ROUNDROBIN },
        { "wrr", CONFIG_ALG_WRR },
        { "wrandom", CONFIG_ALG_WRANDOM },
        { "wlc", CONFIG_ALG_WLC },
        { "sourcehash", CONFIG_ALG_SOURCEHASH },
};
static const struct enum_name check_type_names[] = {
        { "systemd", CONFIG_CHECK_SYSTEMD },
        { "tcp", CONFIG_CHECK_TCP },
        { "http", CONFIG_CHECK_HTTP },
        { "exec", CONFIG_CHECK_EXEC },
};

static const char *enum_to_string(const struct enum_name *names, size_t n, int value) {
        for (size_t i = 0; i < n; i++)
                if (names[i].value == value)
                        return names[i].name;
        return "invalid";
}

const char *config_role_to_string(enum config_role r) {
        return enum_to_string(role_names, ELEMENTSOF(role_names), (int) r);
}

const char *config_profile_to_string(enum config_profile p) {
        return enum_to_string(profile_names, ELEMENTSOF(profile_names), (int) p);
}

const char *config_sync_to_string(enum config_sync s) {
        return enum_to_string(sync_names, ELEMENTSOF(sync_names), (int) s);
}

const char *config_bus_to_string(enum config_bus b) {
        return enum_to_string(bus_names, ELEMENTSOF(bus_names), (int) b);
}

const char *config_log_target_to_string(enum config_log_target t) {
        return enum_to_string(log_target_names, ELEMENTSOF(log_target_names), (int) t);
}

const char *config_log_level_to_string(enum config_log_level l) {
        return enum_to_string(log_level_names, ELEMENTSOF(log_level_names), (int) l);
}

const char *config_algorithm_to_string(enum config_algorithm a) {
        return enum_to_string(algorithm_names, ELEMENTSOF(algorithm_names), (int) a);
}

const char *config_check_type_to_string(enum config_check_type t) {
        return enum_to_string(check_type_names, ELEMENTSOF(check_type_names), (int) t);
}

/* ---- the keys each group accepts ------------------------------------------ */

static const char *const root_keys[] = {
        "node", "cluster", "gossip", "control", "store", "systemd", "log", "services", NULL,
};
static const char *const node_keys[] = { "name", "bind", "state_dir", "voter", "role", NULL };
static const char *const cluster_keys[] = { "name", "join", "keyring", "profile", "election", NULL };
static const char *const election_keys[] = { "timeout_min", "timeout_max", "heartbeat", "lease", "lease_guard", NULL };
static const char *const gossip_keys[] = {
        "probe_interval", "probe_timeout", "indirect_checks", "suspicion_mult",
        "suspicion_max_timeout_mult", "retransmit_mult", "gossip_interval", "gossip_nodes",
        "pushpull_interval", "dead_reprobe_interval", "mtu", NULL,
};
static const char *const control_keys[] = { "socket", "group", "admin_group", NULL };
static const char *const store_keys[] = { "synchronous", "events_max_age", "events_max_rows", NULL };
static const char *const systemd_keys[] = { "bus", NULL };
static const char *const log_keys[] = { "target", "level", NULL };
static const char *const service_keys[] = {
        "name", "unit", "address", "port", "weight", "algorithm", "replicas", "replica_ports",
        "check", "restart", "breaker", NULL,
};
static const char *const check_group_keys[] = {
        "type", "path", "expect_body", "status_min", "status_max", "command",
        "interval", "timeout", "rise", "fall", NULL,
};
static const char *const restart_keys[] = { "limit", "window", "backoff", "backoff_max", NULL };
static const char *const breaker_keys[] = { "failures", "open_for", "half_open_probes", NULL };

/* ---- parser state and error reporting ------------------------------------ */

/*
 * libconfig 1.5 stores a decimal literal that does not fit an int as its low
 * 32 bits ("port = 4294967376;" reads as 80) and saturates 64-bit ones, all
 * without an error. The pre-scan remembers every such literal with the value
 * libconfig will report, so the typed getter can recognise it and refuse it.
 */
struct overflow {
        unsigned line;          /* line of the literal */
        unsigned name_line;     /* line of the setting name before it */
        long long seen;         /* what libconfig stores for it */
        bool is64;
        char name[33];          /* that setting name, when it is short enough to be one of ours */
        char text[40];
};

struct parser {
        const char *file;
        char *error;
        const char *stop;       /* where the pre-scan found a problem, or NULL */
        unsigned stop_line;
        struct overflow overflows[OVERFLOWS_MAX];
        size_t n_overflows;
};

static unsigned line_of(const config_setting_t *s) {
        unsigned l = s ? config_setting_source_line(s) : 0;
        return l ? l : 1;
}

/*
 * Records the first error as "FILE:LINE: message" and returns -EINVAL, so
 * every check can be written `return fail(...)`.
 */
_printf_(3, 4)
static int fail(struct parser *p, unsigned line, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;
        int r;

        if (p->error)
                return -EINVAL;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = asprintf(&p->error, "%s:%u: %s", p->file, line, msg);
        free(msg);
        if (r < 0) {
                p->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/*
 * Quotes a value for an error message: one line, printable, at most about
 * 64 bytes, so a hostile or binary value cannot garble the log.
 */
static const char *quote(const char *s, char *buf, size_t len) {
        size_t o = 0;

        buf[o++] = '"';
        for (; *s && o + 8 < len; s++) {
                unsigned char c = (unsigned char) *s;

                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c < 0x20 || c == 0x7f) {
                        o += (size_t) snprintf(buf + o, len - o, "\\x%02x", c);
                } else
                        buf[o++] = (char) c;
        }
        if (*s) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}
#define QUOTE_MAX 80
#define Q(s) quote((s), (char[QUOTE_MAX]){ 0 }, QUOTE_MAX)

/*
 * Builds "where.key" (or just "key" at the top level) for messages. Every
 * name is ours and short, so WHERE_MAX is never reached; if it were, the
 * name would be cut, not overrun.
 */
static const char *key_path(const char *where, const char *key, char buf[static WHERE_MAX]) {
        size_t o = 0;

        for (; where && *where && o < WHERE_MAX - 2; where++)
                buf[o++] = *where;
        if (o > 0)
                buf[o++] = '.';
        for (; *key && o < WHERE_MAX - 1; key++)
                buf[o++] = *key;
        buf[o] = '\0';
        return buf;
}
#define KEY(where, key) key_path((where), (key), (char[WHERE_MAX]){ 0 })

static const char *fmt_duration(uint64_t us, char buf[static 32]) {
        return util_format_duration(us, buf, 32);
}
#define DUR(us) fmt_duration((us), (char[32]){ 0 })

/* ---- did you mean -------------------------------------------------------- */

/* Optimal string alignment distance, enough to catch a swapped or missing letter. */
static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t d[33][33];

        if (la > 32 || lb > 32)
                return SIZE_MAX;
        for (size_t i = 0; i <= la; i++)
                d[i][0] = i;
        for (size_t j = 0; j <= lb; j++)
                d[0][j] = j;
        for (size_t i = 1; i <= la; i++)
                for (size_t j = 1; j <= lb; j++) {
                        size_t cost = tolower((unsigned char) a[i - 1]) != b[j - 1];
                        size_t v = d[i - 1][j] + 1;

                        if (d[i][j - 1] + 1 < v)
                                v = d[i][j - 1] + 1;
                        if (d[i - 1][j - 1] + cost < v)
                                v = d[i - 1][j - 1] + cost;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            d[i - 2][j - 2] + 1 < v)
                                v = d[i - 2][j - 2] + 1;
                        d[i][j] = v;
                }
        return d[la][lb];
}

static const char *suggest(const char *name, const char *const *keys) {
        const char *best = NULL;
        size_t best_d = 3;

        for (size_t i = 0; keys[i]; i++) {
                size_t d = edit_distance(name, keys[i]);

                if (d < best_d && d < strlen(keys[i])) {
                        best = keys[i];
                        best_d = d;
                }
        }
        return best;
}

/* ---- typed getters --------------------------------------------------------
 * Each returns 1 when the key is set (and *ret was written), 0 when it is
 * absent (and *ret keeps the default the caller put there), or -EINVAL with
 * the error recorded.
 */

static int check_unknown_keys(struct parser *p, const config_setting_t *g, const char *where, const char *const *keys) {
        int n = config_setting_length(g);

        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(g, (unsigned) i);
                const char *name = config_setting_name(s);
                const char *hint;
                bool known = false;

                if (!name)
                        continue;
                for (size_t k = 0; keys[k] && !known; k++)
                        known = strcmp(name, keys[k]) == 0;
                if (known)
                        continue;
                hint = suggest(name, keys);
                return fail(p, line_of(s), "unknown key \"%s\" %s%s%s%s%s", name,
                            where ? "in " : "at top level", where ? where : "",
                            hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        }
        return 0;
}

static int get_group(struct parser *p, const config_setting_t *parent, const char *where, const char *key,
                     bool required, const char *const *keys, const config_setting_t **ret) {
        const config_setting_t *s = config_setting_get_member(parent, key);
        const char *path = KEY(where, key);

        if (!s) {
                /* Only top-level groups are required, so there is no enclosing group to name. */
                if (required)
                        return fail(p, line_of(parent), "missing required group \"%s\"", key);
                *ret = NULL;
                return 0;
        }
        if (!config_setting_is_group(s))
                return fail(p, line_of(s), "%s: expected a group { ... }", path);
        *ret = s;
        return check_unknown_keys(p, s, path, keys) < 0 ? -EINVAL : 1;
}

/* Finds the overflow record for an integer setting, if its literal overflowed. */
static struct overflow *find_overflow(struct parser *p, const config_setting_t *s) {
        bool is64 = config_setting_type(s) == CONFIG_TYPE_INT64;
        long long v = is64 ? config_setting_get_int64(s) : config_setting_get_int(s);
        unsigned line = config_setting_source_line(s);
        /* An array element has no name of its own: the pre-scan saw the array's. */
        const char *name = config_setting_name(s) ?: config_setting_name(config_setting_parent(s));

        if (!name)
                return NULL;

        for (size_t i = 0; i < p->n_overflows; i++) {
                struct overflow *o = &p->overflows[i];

                if (o->is64 == is64 && o->seen == v && (o->line == line || o->name_line == line) &&
                    strcmp(o->name, name) == 0)
                        return o;
        }
        return NULL;
}

/* One integer setting S, named PATH in messages; 1 or -EINVAL. */
static int get_int_setting(struct parser *p, const config_setting_t *s, const char *path, long long min,
                           long long max, long long *ret) {
        const struct overflow *o;
        long long v;

        if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
                return fail(p, line_of(s), "%s: expected an integer", path);
        o = find_overflow(p, s);
        if (o)
                return fail(p, line_of(s), "%s: %s is out of range (%lld..%lld)", path, o->text, min, max);
        v = config_setting_type(s) == CONFIG_TYPE_INT64 ? config_setting_get_int64(s) : config_setting_get_int(s);
        if (v < min || v > max)
                return fail(p, line_of(s), "%s: %lld is out of range (%lld..%lld)", path, v, min, max);
        *ret = v;
        return 1;
}

static int get_int(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                   long long min, long long max, long long *ret) {
        const config_setting_t *s = config_setting_get_member(g, key);

        if (!s)
                return 0;
        return get_int_setting(p, s, KEY(where, key), min, max, ret);
}

/* Same, for the many keys whose range fits an int. */
static int get_int32(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                     int min, int max, int *ret) {
        long long v = 0;
        int r = get_int(p, g, where, key, min, max, &v);

        if (r > 0)
                *ret = (int) v;
        return r;
}

static int get_bool(struct parser *p, const config_setting_t *g, const char *where, const char *key, bool *ret) {
        const config_setting_t *s = config_setting_get_member(g, key);

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return fail(p, line_of(s), "%s: expected a boolean", KEY(where, key));
        *ret = config_setting_get_bool(s);
        return 1;
}

/*
 * Strings are limited in length and may not hold control characters: every
 * value ends up in logs, file names or the control protocol.
 */
static int get_string(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                      size_t max_len, const char **ret) {
        const config_setting_t *s = config_setting_get_member(g, key);
        const char *path = KEY(where, key);
        const char *v;
        size_t len;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(p, line_of(s), "%s: expected a string", path);
        v = config_setting_get_string(s);
        len = strlen(v);
        if (len == 0)
                return fail(p, line_of(s), "%s: must not be empty", path);
        if (len > max_len)
                return fail(p, line_of(s), "%s: too long (%zu bytes, max %zu)", path, len, max_len);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) v[i] < 0x20 || v[i] == 0x7f)
                        return fail(p, line_of(s), "%s: contains a control character", path);
        *ret = v;
        return 1;
}

static int get_required_string(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                               size_t max_len, const char **ret) {
        int r = get_string(p, g, where, key, max_len, ret);

        if (r == 0)
                return fail(p, line_of(g), "missing required key \"%s\" in %s", key, where);
        return r;
}

static int get_duration(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                        uint64_t min, uint64_t max, uint64_t *ret) {
        const config_setting_t *s = config_setting_get_member(g, key);
        const char *path = KEY(where, key);
        const char *v;
        uint64_t us;
        int r;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(p, line_of(s), "%s: expected a duration string such as \"10s\"", path);
        v = config_setting_get_string(s);
        r = util_parse_duration(v, &us);
        if (r == -ERANGE || (r == 0 && (us < min || us > max)))
                return fail(p, line_of(s), "%s: %s is out of range (%s..%s)", path, Q(v), DUR(min), DUR(max));
        if (r < 0)
                return fail(p, line_of(s), "%s: bad duration %s (use e.g. \"250ms\", \"10s\")", path, Q(v));
        *ret = us;
        return 1;
}

static int get_enum(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                    const struct enum_name *names, size_t n, int *ret) {
        const config_setting_t *s = config_setting_get_member(g, key);
        const char *path = KEY(where, key);
        char allowed[128] = "";
        const char *v;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(p, line_of(s), "%s: expected a string", path);
        v = config_setting_get_string(s);
        for (size_t i = 0; i < n; i++)
                if (strcmp(v, names[i].name) == 0) {
                        *ret = names[i].value;
                        return 1;
                }
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        strcat(allowed, ", ");
                strcat(allowed, names[i].name);
        }
        return fail(p, line_of(s), "%s: bad value %s (use one of: %s)", path, Q(v), allowed);
}

/* ---- value checks -------------------------------------------------------- */

static int check_name(struct parser *p, const config_setting_t *s, const char *path, const char *v) {
        if (util_valid_name(v))
                return 0;
        return fail(p, line_of(s), "%s: bad name %s (use 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit)",
                    path, Q(v));
}

static int check_abs_path(struct parser *p, const config_setting_t *s, const char *path, const char *v) {
        if (v[0] == '/')
                return 0;
        return fail(p, line_of(s), "%s: must be an absolute path (got %s)", path, Q(v));
}

/* Group names as useradd(8) accepts them; a leading digit would read as a gid. */
static bool valid_group_name(const char *s) {
        if (!(isalpha((unsigned char) s[0]) || s[0] == '_'))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '_' && *s != '-' && *s != '.')
                        return false;
        return true;
}

enum unit_kind { UNIT_BAD, UNIT_PLAIN, UNIT_INSTANCE, UNIT_TEMPLATE };

/*
 * A unit agentd can restart: "name.service" or an instance of a template,
 * "name@instance.service". A bare template ("name@.service") cannot be
 * started itself; it is only accepted where placed instances are made from
 * it (replicas >= 1).
 */
static enum unit_kind unit_kind(const char *s) {
        static const char suffix[] = ".service";
        size_t len = strlen(s), n = len - (sizeof(suffix) - 1);
        const char *at = NULL;

        if (len <= sizeof(suffix) - 1 || strcmp(s + n, suffix) != 0)
                return UNIT_BAD;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (c == '@') {
                        if (at)
                                return UNIT_BAD;
                        at = s + i;
                } else if (!isalnum((unsigned char) c) && !strchr(":_.-\\", c))
                        return UNIT_BAD;
        }
        if (!at)
                return UNIT_PLAIN;
        if (at == s)
                return UNIT_BAD;
        return at == s + n - 1 ? UNIT_TEMPLATE : UNIT_INSTANCE;
}

/*
 * Normalises an address for duplicate detection: IP literals in their
 * canonical form, names in lower case without the trailing dot.
 */
static void canonical_hostport(const char *host, uint16_t port, char buf[static UTIL_HOSTPORT_MAX + 8]) {
        unsigned char addr[sizeof(struct in6_addr)];
        char text[INET6_ADDRSTRLEN];
        size_t len;

        if (inet_pton(AF_INET, host, addr) == 1 && inet_ntop(AF_INET, addr, text, sizeof(text)))
                snprintf(buf, UTIL_HOSTPORT_MAX + 8, "%s:%u", text, port);
        else if (inet_pton(AF_INET6, host, addr) == 1 && inet_ntop(AF_INET6, addr, text, sizeof(text)))
                snprintf(buf, UTIL_HOSTPORT_MAX + 8, "[%s]:%u", text, port);
        else {
                len = strlen(host);
                if (len > 0 && host[len - 1] == '.')
                        len--;
                snprintf(buf, UTIL_HOSTPORT_MAX + 8, "%.*s:%u", (int) len, host, port);
                for (char *c = buf; *c; c++)
                        *c = (char) tolower((unsigned char) *c);
        }
}

/* ---- the pre-scan ---------------------------------------------------------- */

static bool at(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_name_char(char c) {
        return isalnum((unsigned char) c) || c == '_' || c == '-' || c == '*';
}

/* The last name seen by the pre-scan, i.e. the key an integer literal is assigned to. */
struct scan_name {
        unsigned line;
        const char *start;
        size_t len;
};

static void note_overflow(struct parser *p, const struct scan_name *name, unsigned line, const char *start,
                          size_t len, long long seen, bool is64) {
        struct overflow *o;

        if (p->n_overflows >= OVERFLOWS_MAX) {
                p->n_overflows++;
                return;
        }
        o = &p->overflows[p->n_overflows++];
        o->line = line;
        o->name_line = name->line;
        if (name->len < sizeof(o->name))
                snprintf(o->name, sizeof(o->name), "%.*s", (int) name->len, name->start);
        o->seen = seen;
        o->is64 = is64;
        if (len >= sizeof(o->text))
                snprintf(o->text, sizeof(o->text), "%.*s...", (int) (sizeof(o->text) - 4), start);
        else
                snprintf(o->text, sizeof(o->text), "%.*s", (int) len, start);
}

/*
 * Reads one number token the way libconfig's scanner does and, when it is an
 * integer that libconfig would silently truncate, remembers it. Returns the
 * end of the token.
 */
static const char *scan_number(struct parser *p, const char *s, unsigned line, const struct scan_name *name) {
        const char *start = s, *digits;
        bool hex = false, is64 = false, overflow;
        size_t len;

        if (*s == '+' || *s == '-')
                s++;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit((unsigned char) s[2]) && s == start) {
                hex = true;
                s += 2;
                while (isxdigit((unsigned char) *s))
                        s++;
        } else {
                digits = s;
                while (isdigit((unsigned char) *s))
                        s++;
                if (*s == '.' || ((*s == 'e' || *s == 'E') && s > digits &&
                                  (isdigit((unsigned char) s[1]) ||
                                   ((s[1] == '+' || s[1] == '-') && isdigit((unsigned char) s[2]))))) {
                        /* A float: libconfig reads those with strtod, which does not wrap. */
                        if (*s == '.')
                                s++;
                        while (isdigit((unsigned char) *s))
                                s++;
                        if ((*s == 'e' || *s == 'E') &&
                            (isdigit((unsigned char) s[1]) ||
                             ((s[1] == '+' || s[1] == '-') && isdigit((unsigned char) s[2])))) {
                                s += 2;
                                while (isdigit((unsigned char) *s))
                                        s++;
                        }
                        return s;
                }
                if (s == digits)
                        return s;
        }
        if (*s == 'L') {
                is64 = true;
                s++;
                if (*s == 'L')
                        s++;
        }
        len = (size_t) (s - start);

        /* strtoll and strtoull stop at the suffix; they saturate where libconfig's conversion does. */
        errno = 0;
        if (hex) {
                unsigned long long u = strtoull(start, NULL, 16);

                /* Bit patterns above the signed maximum come out negative: never what was meant. */
                overflow = errno == ERANGE || u > (is64 ? (unsigned long long) LLONG_MAX : INT_MAX);
                if (overflow)
                        note_overflow(p, name, line, start, len,
                                      is64 ? (long long) u : (long long) (int) (unsigned) u, is64);
        } else {
                long long v = strtoll(start, NULL, 10);

                overflow = errno == ERANGE || (!is64 && (v < INT_MIN || v > INT_MAX));
                if (overflow)
                        note_overflow(p, name, line, start, len,
                                      is64 ? v : (long long) (int) (unsigned) (unsigned long long) v, is64);
        }
        return s;
}

/*
 * Records a problem the pre-scan found at TOKEN (on line TOKEN_LINE),
 * reported on REPORT_LINE; see prefer_earlier_error().
 */
static int stop(struct parser *p, const char *token, unsigned token_line, unsigned report_line, const char *msg) {
        p->stop = token;
        p->stop_line = token_line;
        return fail(p, report_line, "%s", msg);
}

/*
 * The pre-scan stops at the first lexical problem, but libconfig may find a
 * syntax error earlier in the file. Whichever comes first is reported, as
 * someone fixing errors from the top expects. The text before the problem
 * is free of everything that made the pre-scan stop, so libconfig can read
 * it safely.
 */
static void prefer_earlier_error(struct parser *p, const char *text) {
        char *head = strndup(text, (size_t) (p->stop - text));
        config_t cf;

        if (!head)
                return;
        config_init(&cf);
        if (config_read_string(&cf, head) != CONFIG_TRUE && config_error_line(&cf) > 0 &&
            (unsigned) config_error_line(&cf) < p->stop_line) {
                const char *what = config_error_text(&cf);

                free(p->error);
                p->error = NULL;
                (void) fail(p, (unsigned) config_error_line(&cf), "%s", what ? what : "syntax error");
        }
        config_destroy(&cf);
        free(head);
}

/*
 * One pass over the text before libconfig sees it: refuses @include (a config
 * is one file, and a string must never make the loader open other files) and
 * notes integer literals that libconfig would silently truncate. The lexical
 * rules follow libconfig's scanner: comments (#, //, slash-star), strings with
 * backslash escapes, names of [A-Za-z*][-A-Za-z0-9_*]*.
 *
 * It also reports, as libconfig would, the syntax errors during which
 * libconfig 1.5 leaks memory: text ending inside a string or comment, and a
 * string where no value can start (e.g. `name "x"`). A daemon that is sent a
 * bad config on every reload must not grow.
 */
static int prescan(struct parser *p, const char *s) {
        struct scan_name name = { 1, "", 0 };
        unsigned line = 1;
        bool bol = true;
        char prev = 0;  /* the previous token: its character, 'n' a name, '0' a number, '"' a string */
        char open[NESTING_MAX + 1] = "{";       /* the enclosing brackets; the top level is a group */
        size_t depth = 0;

        while (*s) {
                char c = *s;

                if (c == '\n') {
                        line++;
                        bol = true;
                        s++;
                        continue;
                }
                if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
                        s++;
                        continue;
                }
                if (bol && at(s, "@include"))
                        return stop(p, s, line, line,
                                    "@include is not supported; keep the whole configuration in one file");
                bol = false;
                if (c == '#' || at(s, "//")) {
                        while (*s && *s != '\n')
                                s++;
                } else if (at(s, "/*")) {
                        const char *token = s;
                        unsigned start = line;

                        for (s += 2; *s && !at(s, "*/"); s++)
                                if (*s == '\n')
                                        line++;
                        if (!*s)
                                return stop(p, token, start, start, "unterminated comment (missing \"*/\")");
                        s += 2;
                } else if (c == '"') {
                        const char *token = s;
                        unsigned start = line;

                        for (s++; *s && *s != '"'; s++) {
                                if (*s == '\\' && s[1])
                                        s++;
                                if (*s == '\n')
                                        line++;
                        }
                        if (!*s)
                                return stop(p, token, start, start, "unterminated string (missing closing '\"')");
                        s++;
                        /*
                         * A value starts after "=", ":", "(", "[", and after "," in a
                         * list or array (in a group, "," ends a setting); strings join up.
                         */
                        if (!prev || !(strchr("=:([\"", prev) || (prev == ',' && open[depth] != '{')))
                                return stop(p, token, start, line, "syntax error");
                        prev = '"';
                } else if (isalpha((unsigned char) c) || c == '*') {
                        name.line = line;
                        name.start = s;
                        while (is_name_char(*s))
                                s++;
                        name.len = (size_t) (s - name.start);
                        prev = 'n';
                } else if (isdigit((unsigned char) c) || c == '.' ||
                           ((c == '-' || c == '+') && (isdigit((unsigned char) s[1]) || s[1] == '.'))) {
                        const char *end = scan_number(p, s, line, &name);

                        s = end > s ? end : s + 1;
                        prev = '0';
                } else {
                        if (c == '{' || c == '(' || c == '[') {
                                if (depth >= NESTING_MAX)
                                        return stop(p, s, line, line,
                                                    "nested too deeply (more than " STR(NESTING_MAX) " levels)");
                                open[++depth] = c;
                        } else if ((c == '}' || c == ')' || c == ']') && depth > 0)
                                depth--;
                        prev = c;
                        s++;
                }
        }
        if (p->n_overflows > OVERFLOWS_MAX)
                return fail(p, p->overflows[0].line, "%s is out of range (and %zu more integers like it)",
                            p->overflows[0].text, p->n_overflows - 1);
        return 0;
}

/* ---- the sections ---------------------------------------------------------- */

static int dup_string(const char *v, char **ret) {
        char *d = strdup(v);

        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

static int parse_node(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *g = NULL;
        char host[UTIL_HOSTPORT_MAX];
        const char *v;
        uint16_t port;
        int role = CONFIG_ROLE_MEMBER;
        int r;

        r = get_group(p, root, NULL, "node", true, node_keys, &g);
        if (r < 0)
                return r;

        if (get_required_string(p, g, "node", "name", NAME_MAX_LEN, &v) < 0 ||
            check_name(p, config_setting_get_member(g, "name"), "node.name", v) < 0)
                return -EINVAL;
        if (dup_string(v, &c->node_name) < 0)
                return -ENOMEM;

        if (get_required_string(p, g, "node", "bind", UTIL_HOSTPORT_MAX, &v) < 0)
                return -EINVAL;
        if (util_parse_hostport(v, host, &port) < 0)
                return fail(p, line_of(config_setting_get_member(g, "bind")),
                            "node.bind: bad address %s (use \"IP:port\", e.g. \"127.0.0.1:7946\" or \"[::1]:7946\")",
                            Q(v));
        if (!util_is_ip_literal(host))
                return fail(p, line_of(config_setting_get_member(g, "bind")),
                            "node.bind: %s is not an IP address (agentd binds to an address, not a name)", Q(host));
        if (dup_string(v, &c->node_bind) < 0 || dup_string(host, &c->bind_host) < 0)
                return -ENOMEM;
        c->bind_port = port;

        v = DEFAULT_STATE_DIR;
        r = get_string(p, g, "node", "state_dir", CONFIG_MAX_STATE_DIR, &v);
        if (r < 0 || (r > 0 && check_abs_path(p, config_setting_get_member(g, "state_dir"), "node.state_dir", v) < 0))
                return -EINVAL;
        if (dup_string(v, &c->state_dir) < 0)
                return -ENOMEM;

        c->voter = true;
        if (get_bool(p, g, "node", "voter", &c->voter) < 0)
                return -EINVAL;
        r = get_enum(p, g, "node", "role", role_names, ELEMENTSOF(role_names), &role);
        if (r < 0)
                return r;
        c->role = (enum config_role) role;
        /* A witness exists only to vote; one that cannot vote would do nothing at all. */
        if (c->role == CONFIG_ROLE_WITNESS && !c->voter)
                return fail(p, line_of(config_setting_get_member(g, "voter")),
                            "node.voter: a witness must be a voter (role = \"witness\" needs voter = true)");
        return 0;
}

static int parse_join(struct parser *p, const config_setting_t *g, struct agentd_config *c) {
        const config_setting_t *s = config_setting_get_member(g, "join");
        char canon[CONFIG_MAX_JOIN][UTIL_HOSTPORT_MAX + 8];
        int n;

        if (!s)
                return 0;
        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return fail(p, line_of(s), "cluster.join: expected a list of \"host:port\" strings");
        n = config_setting_length(s);
        if (n > CONFIG_MAX_JOIN)
                return fail(p, line_of(s), "cluster.join: too many addresses (%d, max %d)", n, CONFIG_MAX_JOIN);
        c->join = calloc((size_t) n + 1, sizeof(char *));
        if (!c->join)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                char host[UTIL_HOSTPORT_MAX];
                const char *v;
                uint16_t port;

                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                        return fail(p, line_of(e), "cluster.join[%d]: expected a \"host:port\" string", i);
                v = config_setting_get_string(e);
                if (util_parse_hostport(v, host, &port) < 0)
                        return fail(p, line_of(e),
                                    "cluster.join[%d]: bad address %s (use \"host:port\", e.g. \"10.0.0.2:7946\")",
                                    i, Q(v));
                canonical_hostport(host, port, canon[i]);
                for (int j = 0; j < i; j++)
                        if (strcmp(canon[i], canon[j]) == 0)
                                return fail(p, line_of(e), "cluster.join[%d]: duplicate address %s (same as join[%d])",
                                            i, Q(v), j);
                if (dup_string(v, &c->join[i]) < 0)
                        return -ENOMEM;
                c->n_join++;
        }
        return 0;
}

/*
 * cluster.election: each timing on its own, then how they fit together as
 * the election core sees it. Its reason names no key, so the message points
 * at the key the reason is about when that key is set, else at the group.
 */
static int parse_election(struct parser *p, const config_setting_t *cluster, struct agentd_config *c) {
        static const struct {
                const char *reason_prefix;
                const char *key;
        } blame[] = {
                { "lease guard", "lease_guard" },
                { "lease", "lease" },
                { "heartbeat", "heartbeat" },
                { "election timeout must be at least", "timeout_min" },
                { "election timeout range", "timeout_max" },
        };
        struct election_config *e = &c->election;
        const config_setting_t *g = NULL, *at;
        const char *reason = NULL;
        int r;

        election_config_defaults(e);
        r = get_group(p, cluster, "cluster", "election", false, election_keys, &g);
        if (r <= 0)
                return r;
        if (get_duration(p, g, "cluster.election", "timeout_min", ELECTION_TIME_MIN, ELECTION_TIME_MAX,
                         &e->election_timeout_min_us) < 0 ||
            get_duration(p, g, "cluster.election", "timeout_max", ELECTION_TIME_MIN, ELECTION_TIME_MAX,
                         &e->election_timeout_max_us) < 0 ||
            get_duration(p, g, "cluster.election", "heartbeat", ELECTION_TIME_MIN, ELECTION_TIME_MAX,
                         &e->heartbeat_interval_us) < 0 ||
            get_duration(p, g, "cluster.election", "lease", ELECTION_TIME_MIN, ELECTION_TIME_MAX, &e->lease_us) < 0 ||
            get_duration(p, g, "cluster.election", "lease_guard", 0, ELECTION_TIME_MAX, &e->lease_guard_us) < 0)
                return -EINVAL;
        if (election_config_validate(e, &reason) == 0)
                return 0;
        at = g;
        for (size_t i = 0; i < ELEMENTSOF(blame); i++)
                if (strncmp(reason, blame[i].reason_prefix, strlen(blame[i].reason_prefix)) == 0) {
                        at = config_setting_get_member(g, blame[i].key) ?: g;
                        break;
                }
        return fail(p, line_of(at), "cluster.election: %s (timeout_min %s, timeout_max %s, heartbeat %s, lease %s, "
                    "lease_guard %s)", reason, DUR(e->election_timeout_min_us), DUR(e->election_timeout_max_us),
                    DUR(e->heartbeat_interval_us), DUR(e->lease_us), DUR(e->lease_guard_us));
}

static int parse_cluster(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *g = NULL;
        const char *v;
        int profile = CONFIG_PROFILE_LAN;
        int r;

        r = get_group(p, root, NULL, "cluster", true, cluster_keys, &g);
        if (r < 0)
                return r;

        if (get_required_string(p, g, "cluster", "name", NAME_MAX_LEN, &v) < 0 ||
            check_name(p, config_setting_get_member(g, "name"), "cluster.name", v) < 0)
                return -EINVAL;
        if (dup_string(v, &c->cluster_name) < 0)
                return -ENOMEM;

        r = parse_join(p, g, c);
        if (r < 0)
                return r;

        r = get_string(p, g, "cluster", "keyring", CONFIG_MAX_PATH, &v);
        if (r < 0 || (r > 0 && check_abs_path(p, config_setting_get_member(g, "keyring"), "cluster.keyring", v) < 0))
                return -EINVAL;
        if (r > 0 && dup_string(v, &c->keyring) < 0)
                return -ENOMEM;

        r = get_enum(p, g, "cluster", "profile", profile_names, ELEMENTSOF(profile_names), &profile);
        if (r < 0)
                return r;
        c->profile = (enum config_profile) profile;
        return parse_election(p, g, c);
}

/*
 * Only ranges are checked here; whether the timings fit together (a probe
 * timeout shorter than the probe interval, even when only one of them is
 * overridden) is decided against the profile by the gossip module at start
 * and on reload, which names the key in its refusal.
 */
static int parse_gossip(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        struct config_gossip *gs = &c->gossip;
        const config_setting_t *g = NULL;
        long long mtu = CONFIG_GOSSIP_MTU_DEFAULT;
        int r;

        *gs = (struct config_gossip) {
                .indirect_checks = CONFIG_GOSSIP_UNSET,
                .suspicion_mult = CONFIG_GOSSIP_UNSET,
                .suspicion_max_timeout_mult = CONFIG_GOSSIP_UNSET,
                .retransmit_mult = CONFIG_GOSSIP_UNSET,
                .gossip_nodes = CONFIG_GOSSIP_UNSET,
                .mtu = CONFIG_GOSSIP_MTU_DEFAULT,
        };
        r = get_group(p, root, NULL, "gossip", false, gossip_keys, &g);
        if (r <= 0)
                return r;
        if (get_duration(p, g, "gossip", "probe_interval", GOSSIP_PERIOD_MIN, GOSSIP_PERIOD_MAX,
                         &gs->probe_interval_us) < 0 ||
            get_duration(p, g, "gossip", "probe_timeout", GOSSIP_TIMEOUT_MIN, GOSSIP_PERIOD_MAX,
                         &gs->probe_timeout_us) < 0 ||
            get_int32(p, g, "gossip", "indirect_checks", 0, GOSSIP_INDIRECT_MAX, &gs->indirect_checks) < 0 ||
            get_int32(p, g, "gossip", "suspicion_mult", 1, GOSSIP_MULT_MAX, &gs->suspicion_mult) < 0 ||
            get_int32(p, g, "gossip", "suspicion_max_timeout_mult", 1, GOSSIP_MULT_MAX,
                      &gs->suspicion_max_timeout_mult) < 0 ||
            get_int32(p, g, "gossip", "retransmit_mult", 1, GOSSIP_RETRANSMIT_MAX, &gs->retransmit_mult) < 0 ||
            get_duration(p, g, "gossip", "gossip_interval", GOSSIP_PERIOD_MIN, GOSSIP_PERIOD_MAX,
                         &gs->gossip_interval_us) < 0 ||
            get_int32(p, g, "gossip", "gossip_nodes", 0, GOSSIP_NODES_MAX, &gs->gossip_nodes) < 0 ||
            get_duration(p, g, "gossip", "pushpull_interval", GOSSIP_SYNC_MIN, GOSSIP_SYNC_MAX,
                         &gs->pushpull_interval_us) < 0 ||
            get_duration(p, g, "gossip", "dead_reprobe_interval", GOSSIP_REPROBE_MIN, GOSSIP_SYNC_MAX,
                         &gs->dead_reprobe_interval_us) < 0 ||
            get_int(p, g, "gossip", "mtu", GOSSIP_MTU_MIN, GOSSIP_MTU_MAX, &mtu) < 0)
                return -EINVAL;
        gs->mtu = (int) mtu;
        if (gs->probe_interval_us && gs->probe_timeout_us && gs->probe_timeout_us >= gs->probe_interval_us)
                return fail(p, line_of(config_setting_get_member(g, "probe_timeout")),
                            "gossip.probe_timeout: %s must be shorter than gossip.probe_interval (%s)",
                            DUR(gs->probe_timeout_us), DUR(gs->probe_interval_us));
        return 0;
}

static int parse_group_name(struct parser *p, const config_setting_t *g, const char *key, char **ret) {
        const char *v;
        int r;

        if (!g)
                return 0;
        r = get_string(p, g, "control", key, GROUP_MAX_LEN, &v);
        if (r <= 0)
                return r;
        if (!valid_group_name(v))
                return fail(p, line_of(config_setting_get_member(g, key)),
                            "control.%s: bad group name %s "
                            "(use letters, digits, '_', '-', '.', starting with a letter)",
                            key, Q(v));
        return dup_string(v, ret);
}

static int parse_control(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *g = NULL;
        const char *v = DEFAULT_CONTROL_SOCKET;
        int r;

        r = get_group(p, root, NULL, "control", false, control_keys, &g);
        if (r < 0)
                return r;
        if (g) {
                r = get_string(p, g, "control", "socket", CONFIG_MAX_PATH, &v);
                if (r < 0)
                        return r;
                if (r > 0) {
                        const config_setting_t *s = config_setting_get_member(g, "socket");

                        if (check_abs_path(p, s, "control.socket", v) < 0)
                                return -EINVAL;
                        if (strlen(v) > SOCKET_MAX_LEN)
                                return fail(p, line_of(s),
                                            "control.socket: too long for a Unix socket (%zu bytes, max %zu)",
                                            strlen(v), SOCKET_MAX_LEN);
                }
        }
        if (dup_string(v, &c->control_socket) < 0)
                return -ENOMEM;
        r = parse_group_name(p, g, "group", &c->control_group);
        if (r < 0)
                return r;
        return parse_group_name(p, g, "admin_group", &c->admin_group);
}

static int parse_store(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *g = NULL;
        long long rows = EVENTS_ROWS_DEFAULT;
        int sync = CONFIG_SYNC_NORMAL;
        int r;

        c->synchronous = CONFIG_SYNC_NORMAL;
        c->events_max_age_us = EVENTS_AGE_DEFAULT;
        c->events_max_rows = EVENTS_ROWS_DEFAULT;
        r = get_group(p, root, NULL, "store", false, store_keys, &g);
        if (r <= 0)
                return r;
        if (get_enum(p, g, "store", "synchronous", sync_names, ELEMENTSOF(sync_names), &sync) < 0 ||
            get_duration(p, g, "store", "events_max_age", EVENTS_AGE_MIN, EVENTS_AGE_MAX, &c->events_max_age_us) < 0 ||
            get_int(p, g, "store", "events_max_rows", EVENTS_ROWS_MIN, EVENTS_ROWS_MAX, &rows) < 0)
                return -EINVAL;
        c->synchronous = (enum config_sync) sync;
        c->events_max_rows = (uint64_t) rows;
        return 0;
}

static int parse_systemd_log(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *g = NULL;
        int bus = CONFIG_BUS_SYSTEM, target = CONFIG_LOG_JOURNAL, level = CONFIG_LOG_INFO;
        int r;

        r = get_group(p, root, NULL, "systemd", false, systemd_keys, &g);
        if (r < 0)
                return r;
        if (g && get_enum(p, g, "systemd", "bus", bus_names, ELEMENTSOF(bus_names), &bus) < 0)
                return -EINVAL;
        c->bus = (enum config_bus) bus;

        r = get_group(p, root, NULL, "log", false, log_keys, &g);
        if (r < 0)
                return r;
        if (g && (get_enum(p, g, "log", "target", log_target_names, ELEMENTSOF(log_target_names), &target) < 0 ||
                  get_enum(p, g, "log", "level", log_level_names, ELEMENTSOF(log_level_names), &level) < 0))
                return -EINVAL;
        c->log_target = (enum config_log_target) target;
        c->log_level = (enum config_log_level) level;
        return 0;
}

/* Fails when KEY is set in a check of a type that does not use it. */
static int check_only_for(struct parser *p, const config_setting_t *g, const char *where, const char *key,
                          enum config_check_type wanted, enum config_check_type type) {
        const config_setting_t *s = g ? config_setting_get_member(g, key) : NULL;

        if (!s || type == wanted)
                return 0;
        return fail(p, line_of(s), "%s: only used by %s checks (this check's type is \"%s\")", KEY(where, key),
                    config_check_type_to_string(wanted), config_check_type_to_string(type));
}

static int parse_check(struct parser *p, const config_setting_t *svc, const char *where_svc,
                       struct config_check *k) {
        const config_setting_t *g = NULL;
        char where[WHERE_MAX];
        const char *v;
        int type = CONFIG_CHECK_SYSTEMD;
        int r;

        key_path(where_svc, "check", where);
        k->type = CONFIG_CHECK_SYSTEMD;
        k->interval_us = CHECK_INTERVAL_DEFAULT;
        k->timeout_us = CHECK_TIMEOUT_DEFAULT;
        k->rise = CHECK_RISE_DEFAULT;
        k->fall = CHECK_FALL_DEFAULT;
        k->status_min = STATUS_MIN_DEFAULT;
        k->status_max = STATUS_MAX_DEFAULT;

        r = get_group(p, svc, where_svc, "check", false, check_group_keys, &g);
        if (r <= 0)
                return r;
        if (get_enum(p, g, where, "type", check_type_names, ELEMENTSOF(check_type_names), &type) < 0)
                return -EINVAL;
        k->type = (enum config_check_type) type;

        if (check_only_for(p, g, where, "path", CONFIG_CHECK_HTTP, k->type) < 0 ||
            check_only_for(p, g, where, "expect_body", CONFIG_CHECK_HTTP, k->type) < 0 ||
            check_only_for(p, g, where, "status_min", CONFIG_CHECK_HTTP, k->type) < 0 ||
            check_only_for(p, g, where, "status_max", CONFIG_CHECK_HTTP, k->type) < 0 ||
            check_only_for(p, g, where, "command", CONFIG_CHECK_EXEC, k->type) < 0)
                return -EINVAL;

        r = get_duration(p, g, where, "interval", CHECK_INTERVAL_MIN, CHECK_INTERVAL_MAX, &k->interval_us);
        if (r < 0)
                return r;
        r = get_duration(p, g, where, "timeout", CHECK_TIMEOUT_MIN, CHECK_TIMEOUT_MAX, &k->timeout_us);
        if (r < 0)
                return r;
        if (r == 0) {
                /* A short interval without an explicit timeout gets a timeout that fits it. */
                if (k->timeout_us > k->interval_us)
                        k->timeout_us = k->interval_us;
        } else if (k->timeout_us > k->interval_us)
                return fail(p, line_of(config_setting_get_member(g, "timeout")),
                            "%s.timeout: %s is longer than the interval (%s)", where, DUR(k->timeout_us),
                            DUR(k->interval_us));
        if (get_int32(p, g, where, "rise", 1, CHECK_RISEFALL_MAX, &k->rise) < 0 ||
            get_int32(p, g, where, "fall", 1, CHECK_RISEFALL_MAX, &k->fall) < 0)
                return -EINVAL;

        if (k->type == CONFIG_CHECK_HTTP) {
                v = "/";
                r = get_string(p, g, where, "path", HTTP_PATH_MAX, &v);
                if (r < 0)
                        return r;
                if (v[0] != '/' || strchr(v, ' '))
                        return fail(p, line_of(config_setting_get_member(g, "path")),
                                    "%s.path: must start with '/' and contain no spaces (got %s)", where, Q(v));
                if (dup_string(v, &k->path) < 0)
                        return -ENOMEM;
                r = get_string(p, g, where, "expect_body", BODY_MAX, &v);
                if (r < 0)
                        return r;
                if (r > 0 && dup_string(v, &k->expect_body) < 0)
                        return -ENOMEM;
                if (get_int32(p, g, where, "status_min", STATUS_MIN, STATUS_MAX, &k->status_min) < 0 ||
                    get_int32(p, g, where, "status_max", STATUS_MIN, STATUS_MAX, &k->status_max) < 0)
                        return -EINVAL;
                if (k->status_min > k->status_max)
                        return fail(p, line_of(config_setting_get_member(g, "status_max") ?:
                                               config_setting_get_member(g, "status_min")),
                                    "%s: status_min %d is above status_max %d", where, k->status_min, k->status_max);
        }

        if (k->type == CONFIG_CHECK_EXEC) {
                r = get_string(p, g, where, "command", CONFIG_MAX_PATH, &v);
                if (r < 0)
                        return r;
                if (r == 0)
                        return fail(p, line_of(g), "%s: an exec check needs a command", where);
                if (v[0] != '/')
                        return fail(p, line_of(config_setting_get_member(g, "command")),
                                    "%s.command: must start with the program's absolute path (got %s)", where, Q(v));
                if (dup_string(v, &k->command) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int parse_restart(struct parser *p, const config_setting_t *svc, const char *where_svc,
                         struct config_restart *rs) {
        const config_setting_t *g = NULL;
        char where[WHERE_MAX];
        int r, has_backoff, has_max;

        key_path(where_svc, "restart", where);
        rs->limit = RESTART_LIMIT_DEFAULT;
        rs->window_us = RESTART_WINDOW_DEFAULT;
        rs->backoff_us = BACKOFF_DEFAULT;
        rs->backoff_max_us = BACKOFF_CAP_DEFAULT;

        r = get_group(p, svc, where_svc, "restart", false, restart_keys, &g);
        if (r <= 0)
                return r;
        if (get_int32(p, g, where, "limit", 1, RESTART_LIMIT_MAX, &rs->limit) < 0 ||
            get_duration(p, g, where, "window", RESTART_WINDOW_MIN, RESTART_WINDOW_MAX, &rs->window_us) < 0)
                return -EINVAL;
        has_backoff = get_duration(p, g, where, "backoff", BACKOFF_MIN, BACKOFF_MAX, &rs->backoff_us);
        if (has_backoff < 0)
                return has_backoff;
        has_max = get_duration(p, g, where, "backoff_max", BACKOFF_CAP_MIN, BACKOFF_CAP_MAX, &rs->backoff_max_us);
        if (has_max < 0)
                return has_max;
        if (rs->backoff_us > rs->backoff_max_us) {
                /* Only two explicit values can disagree; a default yields to the one that was set. */
                if (has_backoff && has_max)
                        return fail(p, line_of(config_setting_get_member(g, "backoff")),
                                    "%s.backoff: %s is longer than backoff_max (%s)", where, DUR(rs->backoff_us),
                                    DUR(rs->backoff_max_us));
                if (has_backoff)
                        rs->backoff_max_us = rs->backoff_us;
                else
                        rs->backoff_us = rs->backoff_max_us;
        }
        return 0;
}

static int parse_breaker(struct parser *p, const config_setting_t *svc, const char *where_svc,
                         struct config_breaker *b) {
        const config_setting_t *g = NULL;
        char where[WHERE_MAX];
        int r;

        key_path(where_svc, "breaker", where);
        b->failures = BREAKER_FAILURES_DEFAULT;
        b->open_for_us = BREAKER_OPEN_DEFAULT;
        b->half_open_probes = BREAKER_PROBES_DEFAULT;

        r = get_group(p, svc, where_svc, "breaker", false, breaker_keys, &g);
        if (r <= 0)
                return r;
        if (get_int32(p, g, where, "failures", 1, BREAKER_FAILURES_MAX, &b->failures) < 0 ||
            get_duration(p, g, where, "open_for", BREAKER_OPEN_MIN, BREAKER_OPEN_MAX, &b->open_for_us) < 0 ||
            get_int32(p, g, where, "half_open_probes", 1, BREAKER_PROBES_MAX, &b->half_open_probes) < 0)
                return -EINVAL;
        return 0;
}

/* [MIN, MAX] of replica_ports into *lo and *hi. */
static int parse_replica_ports(struct parser *p, const config_setting_t *s, const char *where, long long *lo,
                               long long *hi) {
        long long v[2];

        if ((!config_setting_is_array(s) && !config_setting_is_list(s)) || config_setting_length(s) != 2)
                return fail(p, line_of(s), "%s.replica_ports: expected [MIN, MAX], two ports such as [%lld, %lld]",
                            where, *lo, *hi);
        for (int i = 0; i < 2; i++) {
                char path[WHERE_MAX + 24];

                snprintf(path, sizeof(path), "%.*s.replica_ports[%d]", WHERE_MAX - 1, where, i);
                if (get_int_setting(p, config_setting_get_elem(s, (unsigned) i), path, 1, 65535, &v[i]) < 0)
                        return -EINVAL;
        }
        if (v[0] > v[1])
                return fail(p, line_of(s), "%s.replica_ports: MIN %lld is above MAX %lld", where, v[0], v[1]);
        *lo = v[0];
        *hi = v[1];
        return 0;
}

/*
 * replicas and the unit decide together whether the leader may place
 * instances of this service here, and from which template: a plain unit
 * cannot be multiplied, and a bare template cannot run by itself.
 */
static int parse_placement(struct parser *p, const config_setting_t *g, const char *where,
                           struct config_service *svc) {
        const config_setting_t *unit = config_setting_get_member(g, "unit");
        const config_setting_t *ports = config_setting_get_member(g, "replica_ports");
        enum unit_kind kind = unit_kind(svc->unit);
        const char *at = strchr(svc->unit, '@');
        int prefix = (int) (at ? at - svc->unit : (ptrdiff_t) strlen(svc->unit) - (ptrdiff_t) strlen(".service"));
        long long lo = svc->port, hi = svc->port + REPLICA_PORTS_SPAN;
        int r;

        if (hi > 65535)
                hi = 65535;
        if (svc->replicas == 0) {
                if (kind == UNIT_TEMPLATE)
                        return fail(p, line_of(unit),
                                    "%s.unit: %s is a template, which only replicas >= 1 can use "
                                    "(or name an instance such as \"%.*s@%u.service\")",
                                    where, Q(svc->unit), prefix, svc->unit, svc->port);
                if (ports)
                        return fail(p, line_of(ports), "%s.replica_ports: replica_ports needs replicas >= 1", where);
                return 0;
        }
        if (kind == UNIT_PLAIN)
                return fail(p, line_of(config_setting_get_member(g, "replicas")),
                            "%s.replicas: replicas needs a template unit such as \"%.*s@.service\" or "
                            "\"%.*s@%u.service\"",
                            where, prefix, svc->unit, prefix, svc->unit, svc->port);
        if ((size_t) prefix + sizeof("@65535.service") - 1 > PLACED_UNIT_MAX)
                return fail(p, line_of(unit),
                            "%s.unit: name too long for placed instances (\"%.*s@PORT.service\" must fit %d bytes)",
                            where, prefix > 32 ? 32 : prefix, svc->unit, PLACED_UNIT_MAX);
        if (ports) {
                r = parse_replica_ports(p, ports, where, &lo, &hi);
                if (r < 0)
                        return r;
        }
        if (asprintf(&svc->template_unit, "%.*s@.service", prefix, svc->unit) < 0) {
                svc->template_unit = NULL;
                return -ENOMEM;
        }
        svc->port_min = (uint16_t) lo;
        svc->port_max = (uint16_t) hi;
        return 0;
}

static int parse_service(struct parser *p, const config_setting_t *g, size_t idx, struct config_service *svc) {
        char where[WHERE_MAX];
        const char *v;
        long long port = 0;
        int alg = CONFIG_ALG_WRR;
        int r;

        snprintf(where, sizeof(where), "services[%zu]", idx);
        svc->line = (int) line_of(g);
        if (!config_setting_is_group(g))
                return fail(p, line_of(g), "%s: expected a group { name = ...; ... }", where);
        if (check_unknown_keys(p, g, where, service_keys) < 0)
                return -EINVAL;

        if (get_required_string(p, g, where, "name", NAME_MAX_LEN, &v) < 0 ||
            check_name(p, config_setting_get_member(g, "name"), KEY(where, "name"), v) < 0)
                return -EINVAL;
        if (dup_string(v, &svc->name) < 0)
                return -ENOMEM;

        if (get_required_string(p, g, where, "unit", UNIT_MAX_LEN, &v) < 0)
                return -EINVAL;
        if (unit_kind(v) == UNIT_BAD)
                return fail(p, line_of(config_setting_get_member(g, "unit")),
                            "%s.unit: bad unit name %s (use e.g. \"web.service\" or \"web@8080.service\")",
                            where, Q(v));
        if (dup_string(v, &svc->unit) < 0)
                return -ENOMEM;

        if (get_required_string(p, g, where, "address", INET6_ADDRSTRLEN, &v) < 0)
                return -EINVAL;
        if (!util_is_ip_literal(v))
                return fail(p, line_of(config_setting_get_member(g, "address")),
                            "%s.address: %s is not an IP address (use e.g. \"127.0.0.1\" or \"::1\")", where, Q(v));
        if (dup_string(v, &svc->address) < 0)
                return -ENOMEM;

        r = get_int(p, g, where, "port", 1, 65535, &port);
        if (r < 0)
                return r;
        if (r == 0)
                return fail(p, line_of(g), "missing required key \"port\" in %s", where);
        svc->port = (uint16_t) port;

        svc->weight = WEIGHT_DEFAULT;
        svc->replicas = 0;
        if (get_int32(p, g, where, "weight", 0, CONFIG_MAX_WEIGHT, &svc->weight) < 0 ||
            get_enum(p, g, where, "algorithm", algorithm_names, ELEMENTSOF(algorithm_names), &alg) < 0 ||
            get_int32(p, g, where, "replicas", 0, CONFIG_MAX_REPLICAS, &svc->replicas) < 0)
                return -EINVAL;
        svc->algorithm = (enum config_algorithm) alg;
        r = parse_placement(p, g, where, svc);
        if (r < 0)
                return r;

        r = parse_check(p, g, where, &svc->check);
        if (r < 0)
                return r;
        r = parse_restart(p, g, where, &svc->restart);
        if (r < 0)
                return r;
        return parse_breaker(p, g, where, &svc->breaker);
}

static int parse_services(struct parser *p, const config_setting_t *root, struct agentd_config *c) {
        const config_setting_t *s = config_setting_get_member(root, "services");
        int n;

        if (!s)
                return 0;
        /* An empty "[]" is an empty array to libconfig; accept it as no services. */
        if (!config_setting_is_list(s) && !(config_setting_is_array(s) && config_setting_length(s) == 0))
                return fail(p, line_of(s), "services: expected a list ( { ... }, { ... } )");
        n = config_setting_length(s);
        if (n > CONFIG_MAX_SERVICES)
                return fail(p, line_of(s), "services: too many services (%d, max %d)", n, CONFIG_MAX_SERVICES);
        if (n > 0 && c->role == CONFIG_ROLE_WITNESS)
                return fail(p, line_of(s), "services: a witness runs no services (node.role is \"witness\")");
        if (n == 0)
                return 0;
        c->services = calloc((size_t) n, sizeof(struct config_service));
        if (!c->services)
                return -ENOMEM;

        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                struct config_service *svc = &c->services[i];
                int r;

                /* Counted first, so config_free releases what a failed parse left behind. */
                c->n_services++;
                r = parse_service(p, e, (size_t) i, svc);
                if (r < 0)
                        return r;
                for (int j = 0; j < i; j++) {
                        const struct config_service *o = &c->services[j];

                        if (strcmp(o->name, svc->name) == 0)
                                return fail(p, line_of(config_setting_get_member(e, "name")),
                                            "services[%d].name: duplicate service name \"%s\" "
                                            "(also services[%d], line %d)",
                                            i, svc->name, j, o->line);
                        if (strcmp(o->unit, svc->unit) == 0)
                                return fail(p, line_of(config_setting_get_member(e, "unit")),
                                            "services[%d].unit: unit \"%s\" is already used by "
                                            "service \"%s\" (line %d)",
                                            i, svc->unit, o->name, o->line);
                        /* Else a placed "web@8081.service" could belong to either service. */
                        if (o->template_unit && svc->template_unit && strcmp(o->template_unit, svc->template_unit) == 0)
                                return fail(p, line_of(config_setting_get_member(e, "unit")),
                                            "services[%d].unit: template \"%s\" is already used by "
                                            "service \"%s\" (line %d), which also has replicas",
                                            i, svc->template_unit, o->name, o->line);
                }
        }
        return 0;
}

/* ---- entry points ---------------------------------------------------------- */

/*
 * The whole load, on text that is known to be NUL-terminated and bounded.
 * Order matters only for which error is reported first: syntax, then each
 * section in file order of importance, then cross-section rules.
 */
static int load_text(const char *text, const char *file, struct agentd_config **ret, char **ret_error) {
        struct parser *p;
        struct agentd_config *c = NULL;
        config_t cf;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->file = file;

        r = prescan(p, text);
        if (r < 0) {
                if (p->stop)
                        prefer_earlier_error(p, text);
                goto finish;
        }

        config_init(&cf);
        config_set_auto_convert(&cf, CONFIG_FALSE);
        if (config_read_string(&cf, text) != CONFIG_TRUE) {
                const char *what = config_error_text(&cf);

                r = fail(p, config_error_line(&cf) > 0 ? (unsigned) config_error_line(&cf) : 1, "%s",
                         what ? what : "syntax error");
                config_destroy(&cf);
                goto finish;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                goto destroy;
        }
        r = dup_string(file, &c->path);
        if (r < 0)
                goto destroy;

        r = check_unknown_keys(p, config_root_setting(&cf), NULL, root_keys);
        if (r >= 0)
                r = parse_node(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_cluster(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_gossip(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_control(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_store(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_systemd_log(p, config_root_setting(&cf), c);
        if (r >= 0)
                r = parse_services(p, config_root_setting(&cf), c);
        /*
         * Every integer the config uses went through get_int, which refuses
         * the truncated ones; anything left over sits where no integer is read.
         * Refuse it anyway rather than trust the analysis above.
         */
        if (r >= 0 && p->n_overflows > 0)
                r = fail(p, p->overflows[0].line, "%s is out of range", p->overflows[0].text);

destroy:
        config_destroy(&cf);
finish:
        if (r < 0) {
                config_free(c);
                if (ret_error) {
                        *ret_error = p->error;
                        p->error = NULL;
                }
                free(p->error);
                free(p);
                return r;
        }
        free(p);
        *ret = c;
        return 0;
}

static int fail_file(const char *path, char **ret_error, int r, const char *fmt, ...) _printf_(4, 5);
static int fail_file(const char *path, char **ret_error, int r, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;

        if (!ret_error)
                return r;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg || asprintf(ret_error, "%s: %s", path, msg) < 0)
                *ret_error = NULL;
        free(msg);
        return r;
}

int config_load_string(const char *text, const char *name, struct agentd_config **ret, char **ret_error) {
        if (!name)
                name = "<string>";
        if (!text || !ret)
                return fail_file(name, ret_error, -EINVAL, "no configuration text");
        if (strnlen(text, CONFIG_MAX_FILE_SIZE + 1) > CONFIG_MAX_FILE_SIZE)
                return fail_file(name, ret_error, -EFBIG, "too large (max %d bytes)", CONFIG_MAX_FILE_SIZE);
        return load_text(text, name, ret, ret_error);
}

/*
 * Reads the file into memory ourselves (rather than config_read_file) to
 * bound its size, to refuse what is not a regular file before blocking on a
 * FIFO, and to catch NUL bytes, after which libconfig would silently stop.
 */
int config_load(const char *path, struct agentd_config **ret, char **ret_error) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t len = 0;
        const char *nul;

        if (!path || !ret)
                return fail_file(path ? path : "<null>", ret_error, -EINVAL, "no configuration file given");
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail_file(path, ret_error, -errno, "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return fail_file(path, ret_error, -errno, "cannot stat: %s", strerror(errno));
        if (S_ISDIR(st.st_mode))
                return fail_file(path, ret_error, -EISDIR, "is a directory, not a configuration file");
        if (!S_ISREG(st.st_mode))
                return fail_file(path, ret_error, -EINVAL, "not a regular file");
        if (st.st_size > CONFIG_MAX_FILE_SIZE)
                return fail_file(path, ret_error, -EFBIG, "too large (%lld bytes, max %d)", (long long) st.st_size,
                                 CONFIG_MAX_FILE_SIZE);

        /* One byte more than allowed, to notice a file that grew since fstat. */
        text = malloc(CONFIG_MAX_FILE_SIZE + 2);
        if (!text)
                return fail_file(path, ret_error, -ENOMEM, "out of memory");
        for (;;) {
                ssize_t n = read(fd, text + len, CONFIG_MAX_FILE_SIZE + 1 - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail_file(path, ret_error, -errno, "cannot read: %s", strerror(errno));
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > CONFIG_MAX_FILE_SIZE)
                        return fail_file(path, ret_error, -EFBIG, "too large (max %d bytes)", CONFIG_MAX_FILE_SIZE);
        }
        text[len] = '\0';

        nul = memchr(text, '\0', len);
        if (nul) {
                unsigned line = 1;

                for (const char *c = text; c < nul; c++)
                        line += *c == '\n';
                if (ret_error && asprintf(ret_error, "%s:%u: NUL byte in file", path, line) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        return load_text(text, path, ret, ret_error);
}

static void free_service(struct config_service *s) {
        free(s->name);
        free(s->unit);
        free(s->template_unit);
        free(s->address);
        free(s->check.path);
        free(s->check.expect_body);
        free(s->check.command);
}

void config_free(struct agentd_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->node_name);
        free(c->node_bind);
        free(c->bind_host);
        free(c->state_dir);
        free(c->cluster_name);
        for (size_t i = 0; i < c->n_join; i++)
                free(c->join[i]);
        free(c->join);
        free(c->keyring);
        free(c->control_socket);
        free(c->control_group);
        free(c->admin_group);
        for (size_t i = 0; i < c->n_services; i++)
                free_service(&c->services[i]);
        free(c->services);
        free(c);
}

static bool streq_null(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/*
 * These settings are baked into what the running agent already holds open
 * or has announced to the cluster (its identity, listening sockets, state
 * database, bus connection, vote); everything else is re-read on reload.
 */
const char *config_diff_restart_key(const struct agentd_config *old, const struct agentd_config *new) {
        if (!old || !new)
                return NULL;
        if (!streq_null(old->node_name, new->node_name))
                return "node.name";
        if (!streq_null(old->bind_host, new->bind_host) || old->bind_port != new->bind_port)
                return "node.bind";
        if (!streq_null(old->state_dir, new->state_dir))
                return "node.state_dir";
        if (old->voter != new->voter)
                return "node.voter";
        if (old->role != new->role)
                return "node.role";
        if (!streq_null(old->cluster_name, new->cluster_name))
                return "cluster.name";
        if (!streq_null(old->control_socket, new->control_socket))
                return "control.socket";
        if (!streq_null(old->control_group, new->control_group))
                return "control.group";
        if (old->bus != new->bus)
                return "systemd.bus";
        /* The election core is built once, with these, at start. */
        if (old->election.election_timeout_min_us != new->election.election_timeout_min_us)
                return "cluster.election.timeout_min";
        if (old->election.election_timeout_max_us != new->election.election_timeout_max_us)
                return "cluster.election.timeout_max";
        if (old->election.heartbeat_interval_us != new->election.heartbeat_interval_us)
                return "cluster.election.heartbeat";
        if (old->election.lease_us != new->election.lease_us)
                return "cluster.election.lease";
        if (old->election.lease_guard_us != new->election.lease_guard_us)
                return "cluster.election.lease_guard";
        return NULL;
}

bool config_service_has_static(const struct config_service *s) {
        return !(s->template_unit && strcmp(s->unit, s->template_unit) == 0);
}
