#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "agentd/agent.h"
#include "agentd/supervisor.h"
#include "agentd/gossip.h"
#include "agentd/balancer.h"
#include "agentd/leader.h"
#include "common/ctlproto.h"
#include "core/event.h"
#include "io/ctl.h"
#include "io/journal.h"
#include "io/store.h"

/* How often old events are pruned; also once right after start. */
#define AGENT_RETENTION_INTERVAL_S 300.0
#define AGENT_EVENTS_DEFAULT_LIMIT 100
#define AGENT_EVENTS_MAX_LIMIT 10000

/* Reasons `agentctl status` reports the agent as degraded (exit 3). */
enum agent_degraded {
        AGENT_DEGRADED_STORE_RECOVERED = 1 << 0,
        AGENT_DEGRADED_STORE_WRITE = 1 << 1,
};

struct agent {
        struct ev_loop *loop;
        char *config_path;
        struct agentd_config *config;

        struct store *store;
        struct store_open_info store_info;
        int lock_fd;

        struct ctl *ctl;
        /* hook: module pointers (supervisor, gossip) */
        struct supervisor *supervisor;
        struct gossip *gossip;
        struct leader *leader;
        struct balancer *balancer;

        ev_signal sigterm;
        ev_signal sigint;
        ev_signal sighup;
        ev_prepare commit;     /* group commit: once per loop iteration */
        ev_timer retention;
        ev_timer watchdog;

        uint64_t started_real_us;
        uint64_t started_mono_us;
        unsigned degraded;
        int exit_status;
        bool stopping;
};

static void agent_apply_logging(const struct agentd_config *c) {
        log_setup(c->log_target == CONFIG_LOG_JOURNAL ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR,
                  (int) c->log_level, c->node_name);
}

/*
 * Every operator-visible change goes through here: one row in the store and
 * one log entry. A store failure must not hide the event, so the log entry is
 * written whatever the store says, and the agent reports itself degraded.
 */
static void agent_emit(struct agent *a, enum event_kind kind, const char *subject,
                       const char *detail_fmt, ...) _printf_(4, 5);

static void agent_emit(struct agent *a, enum event_kind kind, const char *subject,
                       const char *detail_fmt, ...) {
        char detail[1024] = "";
        struct event ev = { .kind = kind, .subject = subject ? subject : "", .detail = detail };
        va_list ap;

        if (detail_fmt) {
                va_start(ap, detail_fmt);
                vsnprintf(detail, sizeof(detail), detail_fmt, ap);
                va_end(ap);
        }
        agent_emit_event(a, &ev);
}

void agent_emit_event(struct agent *a, const struct event *ev) {
        struct event e = *ev;

        if (!e.ts_us)
                e.ts_us = util_now_real_us();
        if (!e.node)
                e.node = a->config->node_name;
        log_event(&e);
        if (!a->store)
                return;
        int r = store_event_add(a->store, &e, NULL);
        if (r < 0) {
                if (!(a->degraded & AGENT_DEGRADED_STORE_WRITE))
                        log_error("cannot record event %s in %s: %s", event_kind_to_string(e.kind),
                                  store_path(a->store), strerror(-r));
                a->degraded |= AGENT_DEGRADED_STORE_WRITE;
        }
}

struct ev_loop *agent_loop(struct agent *a) {
        return a->loop;
}

struct store *agent_store(struct agent *a) {
        return a->store;
}

const struct agentd_config *agent_config(struct agent *a) {
        return a->config;
}

struct ctl *agent_ctl(struct agent *a) {
        return a->ctl;
}

int agent_resolve_group(const char *name, gid_t *ret_gid) {
        struct group grp, *result = NULL;
        char buf[16384];
        int r;

        if (!name) {
                *ret_gid = (gid_t) -1;
                return 0;
        }
        r = getgrnam_r(name, &grp, buf, sizeof(buf), &result);
        if (r != 0)
                return -r;
        if (!result)
                return -ENOENT;
        *ret_gid = result->gr_gid;
        return 0;
}

/* ---- control verbs ---------------------------------------------------- */

static json_t *verb_status(struct agent *a) {
        const struct agentd_config *c = a->config;
        struct ctl_stats st;
        uint64_t events = 0;
        char ts[UTIL_TS_MAX];
        json_t *degraded = json_array();

        if (a->degraded & AGENT_DEGRADED_STORE_RECOVERED)
                json_array_append_new(degraded, json_string("store_recovered"));
        if (a->degraded & AGENT_DEGRADED_STORE_WRITE)
                json_array_append_new(degraded, json_string("store_write_failed"));
        (void) store_events_count(a->store, &events);
        ctl_get_stats(a->ctl, &st);

        return json_pack("{s:s, s:s, s:n, s:I, s:s, s:o, s:s, s:i, s:s, s:I, s:s, s:s, s:b, s:s,"
                         " s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
                         "node", c->node_name,
                         "cluster", c->cluster_name,
                         "leader",
                         "term", (json_int_t) 0,
                         "state", json_array_size(degraded) ? "degraded" : "ok",
                         "degraded", degraded,
                         "version", PACKAGE_VERSION,
                         "pid", (int) getpid(),
                         "started_at", util_format_ts(a->started_real_us, ts),
                         "uptime_seconds", (json_int_t) ((util_now_mono_us() - a->started_mono_us) / USEC_PER_SEC),
                         "config", a->config_path,
                         "state_db", store_path(a->store),
                         "voter", c->voter,
                         "role", config_role_to_string(c->role),
                         "services", (json_int_t) c->n_services,
                         "events_stored", (json_int_t) events,
                         "plaintext", c->keyring == NULL,
                         "control",
                           "clients", (json_int_t) st.clients,
                           "accepted", (json_int_t) st.accepted,
                           "refused_busy", (json_int_t) st.refused_busy,
                           "bad_requests", (json_int_t) st.bad_requests,
                           "denied", (json_int_t) st.denied,
                           "timeouts", (json_int_t) st.timeouts);
}

/* Reads a non-negative integer argument; absent leaves *ret alone. */
static int arg_uint(json_t *args, const char *key, json_int_t max, json_int_t *ret) {
        json_t *v = json_object_get(args, key);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
                return -EINVAL;
        *ret = json_integer_value(v);
        return 0;
}

static json_t *verb_events(struct agent *a, json_t *args) {
        struct store_event_filter f = { .limit = AGENT_EVENTS_DEFAULT_LIMIT };
        json_int_t after_id = 0, since_us = 0, limit = AGENT_EVENTS_DEFAULT_LIMIT;
        const char *key;
        json_t *v, *list;
        int r;

        json_object_foreach(args, key, v) {
                if (strcmp(key, "after_id") && strcmp(key, "since_us") && strcmp(key, "kind") &&
                    strcmp(key, "limit"))
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "unknown argument \"%s\"", key);
        }
        if (arg_uint(args, "after_id", INT64_MAX, &after_id) < 0)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "after_id must be an integer >= 0");
        if (arg_uint(args, "since_us", INT64_MAX, &since_us) < 0)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "since_us must be an integer >= 0");
        if (arg_uint(args, "limit", AGENT_EVENTS_MAX_LIMIT, &limit) < 0 || limit < 1)
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "limit must be an integer from 1 to %d",
                                      AGENT_EVENTS_MAX_LIMIT);
        v = json_object_get(args, "kind");
        if (v) {
                if (!json_is_string(v) || event_kind_from_string(json_string_value(v)) < 0)
                        return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "kind must be a known event kind");
                f.kind = json_string_value(v);
        }
        f.after_id = after_id;
        f.since_us = (uint64_t) since_us;
        f.limit = (uint32_t) limit;

        list = json_array();
        if (!list)
                return NULL;
        r = store_events_query(a->store, &f, ctlproto_event_append, list);
        if (r < 0) {
                json_decref(list);
                return ctlproto_error(CTL_ERR_FAILED, "reading events from %s: %s",
                                      store_path(a->store), strerror(-r));
        }
        json_int_t last = after_id;
        size_t n = json_array_size(list);
        if (n > 0)
                last = json_integer_value(json_object_get(json_array_get(list, n - 1), "id"));
        return ctlproto_ok(json_pack("{s:o, s:I}", "events", list, "last_id", last));
}

/*
 * Loads the config file again and swaps it in when it is valid and only
 * changes what a running agent can apply; otherwise the old config stays in
 * force and the reason is recorded. Returns 0 or negative errno with a
 * malloc'd reason in *ret_error.
 */
static int agent_reload(struct agent *a, char **ret_error) {
        struct agentd_config *next = NULL;
        char *error = NULL;
        const char *key;
        gid_t admin_gid;
        int r;

        sd_notify(0, "RELOADING=1\nSTATUS=Reloading configuration");
        r = config_load(a->config_path, &next, &error);
        if (r < 0)
                goto refuse;
        key = config_diff_restart_key(a->config, next);
        if (key) {
                r = -EPERM;
                if (asprintf(&error, "%s: %s cannot change while agentd runs; restart agentd to apply it",
                             a->config_path, key) < 0)
                        error = NULL;
                goto refuse;
        }
        r = agent_resolve_group(next->admin_group, &admin_gid);
        if (r < 0) {
                if (asprintf(&error, "%s: control.admin_group: no such group \"%s\"", a->config_path,
                             next->admin_group) < 0)
                        error = NULL;
                goto refuse;
        }

        /*
         * hook: module reload. A module may refuse `next` here (returning with
         * `error` set and r < 0, then goto refuse) but only before it changed
         * anything; once every module accepted, the new config is applied.
         */
        if (a->gossip) {
                r = gossip_reload_prepare(a->gossip, next, &error);
                if (r < 0)
                        goto refuse;
        }

        config_free(a->config);
        a->config = next;
        if (a->gossip)
                gossip_reload_commit(a->gossip);
        agent_apply_logging(a->config);
        ctl_set_admin_gid(a->ctl, admin_gid);
        supervisor_reload(a->supervisor);
        if (a->balancer)
                balancer_reload(a->balancer);
        agent_emit(a, EVENT_CONFIG_RELOADED, a->config_path, "%zu services", a->config->n_services);
        sd_notify(0, "READY=1\nSTATUS=Serving");
        return 0;

refuse:
        config_free(next);
        if (!error)
                error = strdup("out of memory");
        agent_emit(a, EVENT_CONFIG_REJECTED, a->config_path, "%s; the previous configuration stays in force",
                   error ? error : "");
        sd_notify(0, "READY=1\nSTATUS=Serving (last reload refused)");
        *ret_error = error;
        return r;
}

static json_t *verb_reload(struct agent *a) {
        _cleanup_free_ char *error = NULL;

        if (agent_reload(a, &error) < 0)
                return ctlproto_error(CTL_ERR_FAILED, "%s", error ? error : "reload failed");
        return ctlproto_ok(json_pack("{s:s, s:b}", "config", a->config_path, "reloaded", 1));
}

/*
 * The verbs this agent serves. A module (supervisor, gossip, ...) adds its
 * verbs here as one row each; the control server has already checked that a
 * mutating verb comes from an admin, so handlers only validate arguments.
 */
typedef json_t *(*agent_verb_fn)(struct agent *a, const struct ctl_caller *caller, json_t *args);

static json_t *verb_status_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        json_t *st;

        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "status takes no arguments");
        st = verb_status(a);
        if (st && ((a->gossip && gossip_status(a->gossip, st) < 0) ||
                   (a->leader && leader_status(a->leader, st) < 0) ||
                   (a->balancer && balancer_status(a->balancer, st) < 0))) {
                json_decref(st);
                return NULL;
        }
        return ctlproto_ok(st);
}

static json_t *verb_events_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return verb_events(a, args);
}

static json_t *verb_reload_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        if (json_object_size(args))
                return ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "reload takes no arguments");
        return verb_reload(a);
}

static json_t *verb_version_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) a;
        (void) caller;
        (void) args;
        return ctlproto_ok(json_pack("{s:s, s:s}", "name", PACKAGE_NAME, "version", PACKAGE_VERSION));
}

static json_t *verb_members_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return gossip_verb_members(a->gossip, args);
}

static json_t *verb_force_leave_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return gossip_verb_force_leave(a->gossip, args);
}

static json_t *verb_leader_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return leader_verb(a->leader, args);
}

static json_t *verb_table_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return balancer_verb_table(a->balancer, args);
}

static json_t *verb_pick_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return balancer_verb_pick(a->balancer, args);
}

static json_t *verb_drain_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        return balancer_verb_drain(a->balancer, caller, args);
}

static json_t *verb_undrain_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        return balancer_verb_undrain(a->balancer, caller, args);
}

static json_t *verb_services_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return supervisor_verb_services(a->supervisor, args);
}

static json_t *verb_breakers_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        (void) caller;
        return supervisor_verb_breakers(a->supervisor, args);
}

static json_t *verb_restart_fn(struct agent *a, const struct ctl_caller *caller, json_t *args) {
        return supervisor_verb_restart(a->supervisor, caller, args);
}

static const struct {
        const char *name;
        agent_verb_fn fn;
} agent_verbs[] = {
        { "status", verb_status_fn },
        { "events", verb_events_fn },
        { "reload", verb_reload_fn },
        { "version", verb_version_fn },
        /* hook: module verbs */
        { "services", verb_services_fn },
        { "breakers", verb_breakers_fn },
        { "restart", verb_restart_fn },
        { "members", verb_members_fn },
        { "leader", verb_leader_fn },
        { "force-leave", verb_force_leave_fn },
        { "table", verb_table_fn },
        { "pick", verb_pick_fn },
        { "drain", verb_drain_fn },
        { "undrain", verb_undrain_fn },
};

static json_t *agent_ctl_handler(const struct ctl_caller *caller, const struct ctl_verb *verb,
                                 json_t *args, void *userdata) {
        struct agent *a = userdata;

        log_debug("control: %s from pid %d uid %u", verb->name, (int) caller->pid, (unsigned) caller->uid);
        for (size_t i = 0; i < ELEMENTSOF(agent_verbs); i++)
                if (strcmp(verb->name, agent_verbs[i].name) == 0)
                        return agent_verbs[i].fn(a, caller, args);
        return ctlproto_error(CTL_ERR_UNKNOWN_VERB, "verb \"%s\" is not served by this agent", verb->name);
}

static void agent_ctl_denied(const struct ctl_caller *caller, const struct ctl_verb *verb, void *userdata) {
        struct agent *a = userdata;

        agent_emit(a, EVENT_CTL_DENIED, verb->name, "uid %u gid %u pid %d is not root or in the admin group",
                   (unsigned) caller->uid, (unsigned) caller->gid, (int) caller->pid);
}

/* ---- loop callbacks -------------------------------------------------- */

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents) {
        struct agent *a = w->data;
        (void) revents;

        if (a->stopping)
                return;
        a->stopping = true;
        sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
        agent_emit(a, EVENT_AGENT_STOPPING, PACKAGE_NAME " " PACKAGE_VERSION, "signal %s", strsignal(w->signum));
        /* hook: module stop (a module that must say goodbye, such as gossip's leave, breaks the loop when done) */
        /* Keep this last: gossip breaks the loop itself once its goodbye is out. */
        if (a->gossip && gossip_leave(a->gossip) > 0)
                return;
        ev_break(loop, EVBREAK_ALL);
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents) {
        struct agent *a = w->data;
        _cleanup_free_ char *error = NULL;
        (void) loop;
        (void) revents;

        if (agent_reload(a, &error) < 0)
                log_error("reload refused: %s", error ? error : "unknown error");
        else
                log_info("configuration reloaded from %s", a->config_path);
}

/*
 * Runs right before the loop blocks, so every event recorded while handling
 * one batch of I/O lands in a single transaction.
 */
static void on_prepare_commit(struct ev_loop *loop, ev_prepare *w, int revents) {
        struct agent *a = w->data;
        int r;
        (void) loop;
        (void) revents;

        if (!store_in_transaction(a->store))
                return;
        r = store_commit(a->store);
        if (r < 0) {
                if (!(a->degraded & AGENT_DEGRADED_STORE_WRITE))
                        log_error("committing to %s failed: %s", store_path(a->store), strerror(-r));
                a->degraded |= AGENT_DEGRADED_STORE_WRITE;
        }
}

static void on_retention(struct ev_loop *loop, ev_timer *w, int revents) {
        struct agent *a = w->data;
        uint64_t deleted = 0;
        int r;
        (void) revents;

        r = store_prune(a->store, util_now_real_us(), a->config->events_max_age_us,
                        a->config->events_max_rows, &deleted);
        if (r < 0)
                log_error("pruning old events in %s failed: %s", store_path(a->store), strerror(-r));
        else if (deleted > 0)
                log_info("retention: removed %" PRIu64 " old events", deleted);
        /*
         * A full batch means more is waiting (say after events_max_rows was
         * lowered): continue shortly, in steps, rather than stall the loop
         * that also answers gossip probes.
         */
        ev_timer_stop(loop, w);
        ev_timer_set(w, r == 0 && deleted >= STORE_PRUNE_BATCH ? 0.1 : AGENT_RETENTION_INTERVAL_S,
                     AGENT_RETENTION_INTERVAL_S);
        ev_timer_start(loop, w);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents) {
        (void) loop;
        (void) w;
        (void) revents;
        sd_notify(0, "WATCHDOG=1");
}

/* ---- setup ----------------------------------------------------------- */

static int make_dir(const char *path, mode_t mode) {
        if (mkdir(path, mode) == 0 || errno == EEXIST)
                return 0;
        return -errno;
}

/* Creates the parent directory of PATH (one level) when it is missing. */
static int make_parent_dir(const char *path, mode_t mode) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        return make_dir(dir, mode);
}

/*
 * Two agents writing one state directory would corrupt each other's view of
 * the world, so the directory is locked for the agent's lifetime.
 */
static int lock_state_dir(const char *dir, int *ret_fd) {
        char path[4200];
        int fd;

        snprintf(path, sizeof(path), "%s/agentd.lock", dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = -errno;
                close(fd);
                return r == -EWOULDBLOCK ? -EBUSY : r;
        }
        *ret_fd = fd;
        return 0;
}

int agent_new(const char *config_path, struct agentd_config *config, struct agent **ret) {
        struct agent *a;
        struct ctl_options copts = { 0 };
        _cleanup_free_ char *store_error = NULL;
        gid_t socket_gid, admin_gid;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a) {
                config_free(config);
                return -ENOMEM;
        }
        a->config = config;
        a->lock_fd = -1;
        a->started_real_us = util_now_real_us();
        a->started_mono_us = util_now_mono_us();
        /* Events and status name the file absolutely, whatever the cwd was. */
        a->config_path = realpath(config_path, NULL);
        if (!a->config_path)
                a->config_path = strdup(config_path);
        if (!a->config_path) {
                r = -ENOMEM;
                goto fail;
        }
        agent_apply_logging(config);

        r = agent_resolve_group(config->control_group, &socket_gid);
        if (r < 0) {
                log_error("%s: control.group: no such group \"%s\"", config_path, config->control_group);
                goto fail;
        }
        r = agent_resolve_group(config->admin_group, &admin_gid);
        if (r < 0) {
                log_error("%s: control.admin_group: no such group \"%s\"", config_path, config->admin_group);
                goto fail;
        }

        r = make_dir(config->state_dir, 0750);
        if (r < 0) {
                log_error("cannot create state directory %s: %s", config->state_dir, strerror(-r));
                goto fail;
        }
        r = lock_state_dir(config->state_dir, &a->lock_fd);
        if (r == -EBUSY) {
                log_error("another agentd is running with state directory %s", config->state_dir);
                goto fail;
        }
        if (r < 0) {
                log_error("cannot lock state directory %s: %s", config->state_dir, strerror(-r));
                goto fail;
        }

        r = store_open(config->state_dir,
                       config->synchronous == CONFIG_SYNC_FULL ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
                       &a->store, &a->store_info, &store_error);
        if (r < 0) {
                log_error("cannot open state database in %s: %s", config->state_dir,
                          store_error ? store_error : strerror(-r));
                goto fail;
        }
        if (a->store_info.recovered) {
                a->degraded |= AGENT_DEGRADED_STORE_RECOVERED;
                log_error("state database was corrupt (%s); moved aside to %s, starting with fresh state",
                          a->store_info.corrupt_reason, a->store_info.corrupt_path);
        }
        if (a->store_info.from_version != a->store_info.to_version && a->store_info.from_version != 0)
                log_notice("state database migrated from schema %d to %d", a->store_info.from_version,
                           a->store_info.to_version);

        a->loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOENV);
        if (!a->loop) {
                log_error("cannot initialise the event loop");
                r = -ENOMEM;
                goto fail;
        }

        r = make_parent_dir(config->control_socket, 0755);
        if (r < 0) {
                log_error("cannot create the directory of %s: %s", config->control_socket, strerror(-r));
                goto fail;
        }
        copts.path = config->control_socket;
        copts.socket_gid = socket_gid;
        copts.admin_gid = admin_gid;
        r = ctl_new(a->loop, &copts, agent_ctl_handler, agent_ctl_denied, a, &a->ctl);
        if (r == -EADDRINUSE) {
                log_error("control socket %s is in use by another process", config->control_socket);
                goto fail;
        }
        if (r < 0) {
                log_error("cannot listen on control socket %s: %s", config->control_socket, strerror(-r));
                goto fail;
        }

        /* hook: module start */
        /* A recovered database lost the restart history: the supervisor starts fail-safe. */
        r = supervisor_new(a, a->store_info.recovered, &a->supervisor);
        if (r < 0)
                goto fail;
        r = gossip_new(a, &a->gossip);
        if (r < 0)
                goto fail;
        r = leader_new(a, a->gossip, &a->leader);
        if (r < 0)
                goto fail;
        r = balancer_new(a, a->gossip, a->leader, a->supervisor, &a->balancer);
        if (r < 0)
                goto fail;

        ev_signal_init(&a->sigterm, on_stop_signal, SIGTERM);
        ev_signal_init(&a->sigint, on_stop_signal, SIGINT);
        ev_signal_init(&a->sighup, on_sighup, SIGHUP);
        ev_prepare_init(&a->commit, on_prepare_commit);
        ev_timer_init(&a->retention, on_retention, 1.0, AGENT_RETENTION_INTERVAL_S);
        a->sigterm.data = a->sigint.data = a->sighup.data = a;
        a->commit.data = a->retention.data = a->watchdog.data = a;
        ev_signal_start(a->loop, &a->sigterm);
        ev_signal_start(a->loop, &a->sigint);
        ev_signal_start(a->loop, &a->sighup);
        ev_prepare_start(a->loop, &a->commit);
        ev_timer_start(a->loop, &a->retention);

        *ret = a;
        return 0;

fail:
        agent_free(a);
        return r;
}

int agent_run(struct agent *a) {
        uint64_t watchdog_us = 0;

        if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0) {
                ev_timer_init(&a->watchdog, on_watchdog, 0., (double) watchdog_us / 2e6);
                ev_timer_again(a->loop, &a->watchdog);
        }
        if (a->store_info.recovered)
                agent_emit(a, EVENT_STORE_RECOVERED, a->store_info.corrupt_path, "%s",
                           a->store_info.corrupt_reason);
        agent_emit(a, EVENT_AGENT_STARTED, PACKAGE_NAME " " PACKAGE_VERSION,
                   "pid %d, config %s, %zu services", (int) getpid(), a->config_path, a->config->n_services);
        sd_notifyf(0, "READY=1\nSTATUS=Serving on %s\nMAINPID=%d", a->config->control_socket, (int) getpid());

        ev_run(a->loop, 0);

        /* Let the final event reach the disk before the process ends. */
        if (store_in_transaction(a->store) && store_commit(a->store) < 0)
                log_error("final commit to %s failed", store_path(a->store));
        log_info("agentd stopped");
        return a->exit_status;
}

void agent_free(struct agent *a) {
        if (!a)
                return;
        if (a->loop) {
                ev_signal_stop(a->loop, &a->sigterm);
                ev_signal_stop(a->loop, &a->sigint);
                ev_signal_stop(a->loop, &a->sighup);
                ev_prepare_stop(a->loop, &a->commit);
                ev_timer_stop(a->loop, &a->retention);
                ev_timer_stop(a->loop, &a->watchdog);
        }
        /* hook: module free (before the store and the loop go) */
        balancer_free(a->balancer);
        supervisor_free(a->supervisor);
        leader_free(a->leader);
        gossip_free(a->gossip);
        ctl_free(a->ctl);
        store_free(a->store);
        if (a->lock_fd >= 0)
                close(a->lock_fd);
        if (a->loop)
                ev_loop_destroy(a->loop);
        config_free(a->config);
        free(a->config_path);
        free(a);
}
