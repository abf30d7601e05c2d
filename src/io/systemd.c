#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <systemd/sd-bus.h>

#include "common/util.h"
#include "io/systemd.h"

#define SD_DEST           "org.freedesktop.systemd1"
#define SD_PATH           "/org/freedesktop/systemd1"
#define SD_MANAGER        "org.freedesktop.systemd1.Manager"
#define SD_UNIT_IFACE     "org.freedesktop.systemd1.Unit"
#define SD_SERVICE_IFACE  "org.freedesktop.systemd1.Service"
#define SD_JOB_IFACE      "org.freedesktop.systemd1.Job"
#define DBUS_PROPERTIES   "org.freedesktop.DBus.Properties"

/* Messages handled per wakeup before yielding to the rest of the loop. */
#define SYSTEMD_PROCESS_BURST 64
/* JobRemoved signals remembered for jobs whose call reply is still on its way. */
#define SYSTEMD_EARLY_JOBS 16
/* How long a method call may go unanswered before it is "unknown". */
#define SYSTEMD_CALL_TIMEOUT_US (25 * USEC_PER_SEC)
/*
 * A new connection must answer GetNameOwner within this time, or it is
 * dropped and made again. sd-bus's own authentication timeout is 90 s, far
 * too long to sit on a connection nobody accepted (a bus socket whose
 * daemon did not start).
 */
#define SYSTEMD_HANDSHAKE_US (10 * USEC_PER_SEC)
/* Longest object path we keep (unit paths are escaped names, at most ~3x). */
#define SYSTEMD_PATH_MAX 1024

enum bus_state {
        BUS_DOWN,       /* no connection; a retry is scheduled */
        BUS_WAITING,    /* connected, waiting for org.freedesktop.systemd1 */
        BUS_READY,      /* the manager is there and we are subscribed */
};

struct unit {
        TAILQ_ENTRY(unit) entry;
        struct systemd *sd;
        char *name;
        char *path;                     /* object path, once LoadUnit answered */
        sd_bus_slot *match;             /* PropertiesChanged on path */
        sd_bus_slot *call;              /* LoadUnit or GetAll in flight */
        bool reread;                    /* another read asked for while one is in flight */
        bool problem_reported;          /* unit_error sent for the current load state */
        bool gone;                      /* unwatched from a callback: freed by unit_reap() */
        struct systemd_unit_state st;
};

struct job {
        TAILQ_ENTRY(job) entry;
        struct systemd *sd;
        uint64_t cookie;
        enum systemd_job_kind kind;
        char *unit;
        char *path;                     /* job object, once the call answered */
        sd_bus_slot *call;              /* the method call, or a check after reconnect */
};

TAILQ_HEAD(unit_list, unit);
TAILQ_HEAD(job_list, job);

struct early_job {
        char *path;
        char *result;
};

struct systemd {
        struct ev_loop *loop;
        enum systemd_bus bus_kind;
        struct systemd_callbacks cb;
        void *userdata;

        sd_bus *bus;
        enum bus_state state;
        bool dead;                      /* connection unusable: drop it after processing */
        ev_io io;
        ev_timer timeout;               /* sd-bus's own timeouts (method calls, auth) */
        uint64_t timeout_at;            /* the deadline timeout is armed for */
        ev_prepare prepare;             /* re-arms io and timeout before the loop sleeps */
        ev_idle more;                   /* more messages queued than one burst handles */
        ev_timer retry;                 /* reconnect backoff */
        ev_timer handshake;             /* the new connection's first answer is due */
        uint64_t backoff_us;

        sd_bus_slot *match_owner;       /* NameOwnerChanged for org.freedesktop.systemd1 */
        sd_bus_slot *match_jobs;        /* JobRemoved */
        sd_bus_slot *match_reload;      /* Reloading */
        sd_bus_slot *owner_call;        /* GetNameOwner */
        sd_bus_slot *subscribe_call;

        bool ever_ready;
        bool lost_reported;             /* bus_lost sent for the current outage */
        uint64_t reconnects;
        char last_error[SYSTEMD_ERROR_MAX];

        struct unit_list units;
        unsigned n_units;               /* not counting gone ones */
        bool have_gone;
        struct job_list jobs;
        unsigned n_jobs;
        uint64_t next_cookie;
        struct early_job early[SYSTEMD_EARLY_JOBS];
        unsigned early_next;
};

static void bus_message_unrefp(sd_bus_message **m) {
        if (*m)
                sd_bus_message_unref(*m);
}

#define _cleanup_bus_message_ _cleanup_(bus_message_unrefp)

/*
 * Sends one method call without waiting; the reply (or an error, or NoReply
 * after SYSTEMD_CALL_TIMEOUT_US) goes to HANDLER from the loop.
 */
static int call_async(struct systemd *sd, sd_bus_slot **ret_slot, const char *dest, const char *path,
                      const char *iface, const char *member, sd_bus_message_handler_t handler,
                      void *userdata, const char *types, ...) {
        _cleanup_bus_message_ sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(sd->bus, &m, dest, path, iface, member);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return sd_bus_call_async(sd->bus, ret_slot, m, handler, userdata, SYSTEMD_CALL_TIMEOUT_US);
}

static void bus_connect(struct systemd *sd);
static void bus_lost(struct systemd *sd, const char *reason);
static void bus_process(struct systemd *sd);
static void unit_read(struct unit *u);
static void unit_reap(struct systemd *sd);

static const char *const job_result_names[] = {
        [SYSTEMD_RESULT_DONE] = "done",
        [SYSTEMD_RESULT_CANCELED] = "canceled",
        [SYSTEMD_RESULT_TIMEOUT] = "timeout",
        [SYSTEMD_RESULT_FAILED] = "failed",
        [SYSTEMD_RESULT_DEPENDENCY] = "dependency",
        [SYSTEMD_RESULT_SKIPPED] = "skipped",
        [SYSTEMD_RESULT_OTHER] = "other",
        [SYSTEMD_RESULT_REFUSED] = "refused",
        [SYSTEMD_RESULT_UNKNOWN] = "unknown",
};

const char *systemd_job_result_to_string(enum systemd_job_result r) {
        if ((unsigned) r >= ELEMENTSOF(job_result_names))
                return "invalid";
        return job_result_names[r];
}

const char *systemd_job_kind_to_string(enum systemd_job_kind k) {
        switch (k) {
        case SYSTEMD_JOB_START:
                return "start";
        case SYSTEMD_JOB_STOP:
                return "stop";
        case SYSTEMD_JOB_RESTART:
                return "restart";
        }
        return "invalid";
}

/* The JobRemoved result strings we name; any other is OTHER with its text. */
static enum systemd_job_result job_result_from_string(const char *s) {
        for (unsigned i = 0; i <= SYSTEMD_RESULT_SKIPPED; i++)
                if (strcmp(s, job_result_names[i]) == 0)
                        return (enum systemd_job_result) i;
        return SYSTEMD_RESULT_OTHER;
}

/*
 * The same rule systemd applies (unit_name_is_valid), so a name we accept is
 * one the manager can load: "prefix[@instance].type", characters from
 * [A-Za-z0-9:_.\\@-], a non-empty type after the last dot.
 */
bool systemd_unit_name_valid(const char *unit) {
        const char *dot;
        size_t n;

        if (!unit)
                return false;
        n = strlen(unit);
        if (n == 0 || n > SYSTEMD_UNIT_NAME_MAX)
                return false;
        for (const char *p = unit; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == ':' || c == '-' || c == '_' || c == '.' || c == '\\' || c == '@'))
                        return false;
        }
        dot = strrchr(unit, '.');
        if (!dot || dot == unit || dot[1] == '\0')
                return false;
        if (unit[0] == '@')
                return false;
        return true;
}

static void copy_text(char *dst, size_t len, const char *src) {
        snprintf(dst, len, "%s", src ? src : "");
}

_printf_(3, 4)
static void format_text(char *dst, size_t len, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(dst, len, fmt, ap);
        va_end(ap);
}

/* "name: message" of a D-Bus error, for callbacks. */
static void error_text(char *dst, size_t len, const sd_bus_error *e, int r) {
        if (e && sd_bus_error_is_set(e))
                format_text(dst, len, "%s", e->message ? e->message : e->name);
        else
                format_text(dst, len, "%s", strerror(r < 0 ? -r : r));
}

/* --- libev glue --------------------------------------------------------- */

/*
 * Before the loop sleeps: wait for what sd-bus wants on its fd, and wake for
 * its next timeout (absolute CLOCK_MONOTONIC µs). A timeout of 0 means
 * messages are already queued: process them without waiting.
 */
static void bus_rearm(struct systemd *sd) {
        uint64_t until = UINT64_MAX;
        int fd, events, want = 0;

        if (!sd->bus)
                return;
        fd = sd_bus_get_fd(sd->bus);
        events = sd_bus_get_events(sd->bus);
        if (fd < 0 || events < 0) {
                sd->dead = true;
                ev_idle_start(sd->loop, &sd->more);
                return;
        }
        if (events & POLLIN)
                want |= EV_READ;
        if (events & POLLOUT)
                want |= EV_WRITE;
        if (fd != sd->io.fd || want != (sd->io.events & (EV_READ | EV_WRITE)) || !ev_is_active(&sd->io)) {
                ev_io_stop(sd->loop, &sd->io);
                ev_io_set(&sd->io, fd, want);
                if (want)
                        ev_io_start(sd->loop, &sd->io);
        }

        if (sd_bus_get_timeout(sd->bus, &until) < 0)
                until = UINT64_MAX;
        if (until == 0) {
                ev_idle_start(sd->loop, &sd->more);
                return;
        }
        if (until == UINT64_MAX) {
                ev_timer_stop(sd->loop, &sd->timeout);
                sd->timeout_at = UINT64_MAX;
                return;
        }
        if (until != sd->timeout_at || !ev_is_active(&sd->timeout)) {
                uint64_t now = util_now_mono_us();
                double delay = until > now ? (double) (until - now) / 1e6 : 0.;

                ev_timer_stop(sd->loop, &sd->timeout);
                ev_timer_set(&sd->timeout, delay, 0.);
                ev_timer_start(sd->loop, &sd->timeout);
                sd->timeout_at = until;
        }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
        struct systemd *sd = w->data;

        (void) loop;
        (void) revents;
        unit_reap(sd);
        bus_rearm(sd);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) {
        (void) loop;
        (void) revents;
        bus_process(w->data);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
        struct systemd *sd = w->data;

        (void) loop;
        (void) revents;
        sd->timeout_at = UINT64_MAX;
        bus_process(sd);
}

static void on_more(struct ev_loop *loop, ev_idle *w, int revents) {
        (void) revents;
        ev_idle_stop(loop, w);
        bus_process(w->data);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
        (void) loop;
        (void) revents;
        bus_connect(w->data);
}

static void on_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
        struct systemd *sd = w->data;
        char text[SYSTEMD_ERROR_MAX];

        (void) loop;
        (void) revents;
        format_text(text, sizeof(text), "the %s bus did not answer within %" PRIu64 " s",
                    sd->bus_kind == SYSTEMD_BUS_USER ? "user" : "system",
                    SYSTEMD_HANDSHAKE_US / USEC_PER_SEC);
        bus_lost(sd, text);
}

/* --- jobs --------------------------------------------------------------- */

static void job_free(struct job *j) {
        if (!j)
                return;
        sd_bus_slot_unref(j->call);
        free(j->unit);
        free(j->path);
        free(j);
}

/* Ends a job: unlinked first, so the callback may queue new ones. */
static void job_finish(struct job *j, enum systemd_job_result result, const char *text) {
        struct systemd *sd = j->sd;

        TAILQ_REMOVE(&sd->jobs, j, entry);
        sd->n_jobs--;
        j->call = sd_bus_slot_unref(j->call);
        if (sd->cb.job_done)
                sd->cb.job_done(sd, j->cookie, j->unit, result, text, sd->userdata);
        job_free(j);
}

static struct job *job_by_path(struct systemd *sd, const char *path) {
        struct job *j;

        TAILQ_FOREACH(j, &sd->jobs, entry)
                if (j->path && strcmp(j->path, path) == 0)
                        return j;
        return NULL;
}

static bool jobs_awaiting_reply(struct systemd *sd) {
        struct job *j;

        TAILQ_FOREACH(j, &sd->jobs, entry)
                if (!j->path)
                        return true;
        return false;
}

static void early_clear(struct systemd *sd) {
        for (unsigned i = 0; i < SYSTEMD_EARLY_JOBS; i++) {
                free(sd->early[i].path);
                free(sd->early[i].result);
                sd->early[i].path = sd->early[i].result = NULL;
        }
}

/*
 * A JobRemoved for a job we do not know yet: its call's reply may still be
 * behind it, so remember it briefly (a small ring, oldest dropped).
 */
static void early_remember(struct systemd *sd, const char *path, const char *result) {
        struct early_job *e = &sd->early[sd->early_next];
        char *p = strdup(path), *r = strdup(result);

        if (!p || !r) {
                free(p);
                free(r);
                return;
        }
        free(e->path);
        free(e->result);
        e->path = p;
        e->result = r;
        sd->early_next = (sd->early_next + 1) % SYSTEMD_EARLY_JOBS;
}

static bool early_take(struct systemd *sd, const char *path, char *ret_result, size_t len) {
        for (unsigned i = 0; i < SYSTEMD_EARLY_JOBS; i++) {
                struct early_job *e = &sd->early[i];

                if (e->path && strcmp(e->path, path) == 0) {
                        copy_text(ret_result, len, e->result);
                        free(e->path);
                        free(e->result);
                        e->path = e->result = NULL;
                        return true;
                }
        }
        return false;
}

/*
 * Errors that say the call never got an answer from the manager (it went
 * away, the connection dropped, the call timed out): the job may or may not
 * exist, so the outcome is unknown — never "failed".
 */
static bool error_means_unknown(sd_bus_message *m) {
        static const char *const names[] = {
                SD_BUS_ERROR_NO_REPLY,
                SD_BUS_ERROR_SERVICE_UNKNOWN,
                SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                SD_BUS_ERROR_DISCONNECTED,
                SD_BUS_ERROR_TIMEOUT,
                SD_BUS_ERROR_NO_SERVER,
                SD_BUS_ERROR_IO_ERROR,
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (sd_bus_message_is_method_error(m, names[i]))
                        return true;
        return false;
}

static int on_job_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct job *j = userdata;
        struct systemd *sd = j->sd;
        char text[SYSTEMD_ERROR_MAX], result[SYSTEMD_STATE_MAX];
        const char *path = NULL;
        int r;

        (void) ret_error;
        j->call = sd_bus_slot_unref(j->call);
        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(m);

                error_text(text, sizeof(text), e, sd_bus_message_get_errno(m));
                if (error_means_unknown(m) || sd->state != BUS_READY)
                        job_finish(j, SYSTEMD_RESULT_UNKNOWN, text);
                else
                        job_finish(j, SYSTEMD_RESULT_REFUSED, text);
                return 0;
        }
        r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || !path || strlen(path) >= SYSTEMD_PATH_MAX) {
                job_finish(j, SYSTEMD_RESULT_UNKNOWN, "malformed reply from the manager");
                return 0;
        }
        if (early_take(sd, path, result, sizeof(result))) {
                job_finish(j, job_result_from_string(result), result);
                return 0;
        }
        j->path = strdup(path);
        if (!j->path)
                job_finish(j, SYSTEMD_RESULT_UNKNOWN, "out of memory");
        return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;
        const char *path, *unit, *result;
        struct job *j;
        uint32_t id;

        (void) ret_error;
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        j = job_by_path(sd, path);
        if (j)
                job_finish(j, job_result_from_string(result), result);
        else if (jobs_awaiting_reply(sd))
                early_remember(sd, path, result);
        return 0;
}

/*
 * After an outage, a job we were following may have ended unseen. Its object
 * still existing means it is still queued or running and its JobRemoved is
 * still to come; an error means it is gone and we cannot know how it ended.
 */
static int on_job_check(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct job *j = userdata;

        (void) ret_error;
        j->call = sd_bus_slot_unref(j->call);
        if (!sd_bus_message_is_method_error(m, NULL))
                return 0;
        job_finish(j, SYSTEMD_RESULT_UNKNOWN, "the job ended while the bus was down");
        return 0;
}

static void job_check(struct job *j) {
        struct systemd *sd = j->sd;
        int r;

        if (!j->path || j->call)
                return;
        r = call_async(sd, &j->call, SD_DEST, j->path, DBUS_PROPERTIES, "Get",
                       on_job_check, j, "ss", SD_JOB_IFACE, "State");
        if (r < 0)
                job_finish(j, SYSTEMD_RESULT_UNKNOWN, "cannot check the job after reconnecting");
}

int systemd_job(struct systemd *sd, enum systemd_job_kind kind, const char *unit, uint64_t *ret_cookie) {
        static const char *const methods[] = {
                [SYSTEMD_JOB_START] = "StartUnit",
                [SYSTEMD_JOB_STOP] = "StopUnit",
                [SYSTEMD_JOB_RESTART] = "RestartUnit",
        };
        struct job *j;
        int r;

        if (!sd || (unsigned) kind >= ELEMENTSOF(methods) || !systemd_unit_name_valid(unit))
                return -EINVAL;
        if (sd->state != BUS_READY || sd->dead)
                return -ENOTCONN;
        if (sd->n_jobs >= SYSTEMD_MAX_JOBS)
                return -EBUSY;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->sd = sd;
        j->kind = kind;
        j->unit = strdup(unit);
        if (!j->unit) {
                job_free(j);
                return -ENOMEM;
        }
        r = call_async(sd, &j->call, SD_DEST, SD_PATH, SD_MANAGER, methods[kind],
                       on_job_reply, j, "ss", unit, "replace");
        if (r < 0) {
                job_free(j);
                return r;
        }
        j->cookie = ++sd->next_cookie;
        TAILQ_INSERT_TAIL(&sd->jobs, j, entry);
        sd->n_jobs++;
        if (ret_cookie)
                *ret_cookie = j->cookie;
        return 0;
}

int systemd_start_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie) {
        return systemd_job(sd, SYSTEMD_JOB_START, unit, ret_cookie);
}

int systemd_stop_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie) {
        return systemd_job(sd, SYSTEMD_JOB_STOP, unit, ret_cookie);
}

int systemd_restart_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie) {
        return systemd_job(sd, SYSTEMD_JOB_RESTART, unit, ret_cookie);
}

/* --- units -------------------------------------------------------------- */

static struct unit *unit_find(const struct systemd *sd, const char *name) {
        struct unit *u;

        TAILQ_FOREACH(u, &sd->units, entry)
                if (!u->gone && strcmp(u->name, name) == 0)
                        return u;
        return NULL;
}

static void unit_free(struct unit *u) {
        if (!u)
                return;
        sd_bus_slot_unref(u->match);
        sd_bus_slot_unref(u->call);
        free(u->name);
        free(u->path);
        free(u);
}

/* Frees units unwatched while a callback may still have held them. */
static void unit_reap(struct systemd *sd) {
        struct unit *u, *un;

        if (!sd->have_gone)
                return;
        for (u = TAILQ_FIRST(&sd->units); u; u = un) {
                un = TAILQ_NEXT(u, entry);
                if (!u->gone)
                        continue;
                TAILQ_REMOVE(&sd->units, u, entry);
                unit_free(u);
        }
        sd->have_gone = false;
}

static int message_errno(sd_bus_message *m) {
        int e = sd_bus_message_get_errno(m);

        return e > 0 ? -e : -EIO;
}

static void unit_report_error(struct unit *u, int error, const char *message) {
        struct systemd *sd = u->sd;

        if (!u->gone && sd->cb.unit_error)
                sd->cb.unit_error(sd, u->name, error, message, sd->userdata);
}

/* Reads a string variant into a fixed field; true when the value changed. */
static int read_string_prop(sd_bus_message *m, char *field, size_t len, bool *changed) {
        char buf[SYSTEMD_STATE_MAX];
        const char *s;
        int r;

        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        copy_text(buf, sizeof(buf), s);
        if (strncmp(buf, field, len) != 0) {
                copy_text(field, len, buf);
                *changed = true;
        }
        return 0;
}

static int read_u32_prop(sd_bus_message *m, uint32_t *field, bool *changed) {
        uint32_t v;
        int r;

        r = sd_bus_message_read(m, "v", "u", &v);
        if (r < 0)
                return r;
        if (v != *field) {
                *field = v;
                *changed = true;
        }
        return 0;
}

static int read_u64_prop(sd_bus_message *m, uint64_t *field, bool *changed) {
        uint64_t v;
        int r;

        r = sd_bus_message_read(m, "v", "t", &v);
        if (r < 0)
                return r;
        if (v != *field) {
                *field = v;
                *changed = true;
        }
        return 0;
}

/*
 * Reads an a{sv} of unit properties (GetAll with every interface, or one
 * interface's PropertiesChanged) into the cached state. Properties we do not
 * track are skipped; a property of an unexpected type is a malformed message.
 */
static int unit_read_props(struct unit *u, sd_bus_message *m, bool *changed, bool *service) {
        struct systemd_unit_state *st = &u->st;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "LoadState") == 0)
                        r = read_string_prop(m, st->load_state, sizeof(st->load_state), changed);
                else if (strcmp(key, "ActiveState") == 0)
                        r = read_string_prop(m, st->active_state, sizeof(st->active_state), changed);
                else if (strcmp(key, "SubState") == 0)
                        r = read_string_prop(m, st->sub_state, sizeof(st->sub_state), changed);
                else if (strcmp(key, "StateChangeTimestampMonotonic") == 0)
                        r = read_u64_prop(m, &st->state_change_us, changed);
                else if (strcmp(key, "MainPID") == 0) {
                        r = read_u32_prop(m, &st->main_pid, changed);
                        *service = true;
                } else if (strcmp(key, "Result") == 0)
                        r = read_string_prop(m, st->result, sizeof(st->result), changed);
                else if (strcmp(key, "NRestarts") == 0) {
                        r = read_u32_prop(m, &st->n_restarts, changed);
                        *service = true;
                } else if (strcmp(key, "Restart") == 0) {
                        r = read_string_prop(m, st->restart, sizeof(st->restart), changed);
                        *service = true;
                } else if (strcmp(key, "RestartUSec") == 0) {
                        r = read_u64_prop(m, &st->restart_us, changed);
                        *service = true;
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/*
 * Tells the owner about a problem with the unit's load state once per state,
 * so a unit that stays not-found is one message, not one per re-read.
 */
static void unit_check_load_state(struct unit *u) {
        char text[SYSTEMD_ERROR_MAX];
        const char *ls = u->st.load_state;
        int error = 0;

        if (strcmp(ls, "not-found") == 0) {
                error = -ENOENT;
                format_text(text, sizeof(text), "unit %s not found", u->name);
        } else if (strcmp(ls, "masked") == 0) {
                error = -ERFKILL;
                format_text(text, sizeof(text), "unit %s is masked", u->name);
        } else if (strcmp(ls, "error") == 0 || strcmp(ls, "bad-setting") == 0) {
                error = -ENOEXEC;
                format_text(text, sizeof(text), "unit %s failed to load (%s)", u->name, ls);
        }
        if (error == 0) {
                u->problem_reported = false;
                return;
        }
        if (u->problem_reported)
                return;
        u->problem_reported = true;
        unit_report_error(u, error, text);
}

static void unit_report(struct unit *u) {
        struct systemd *sd = u->sd;

        if (!u->gone && sd->cb.unit_changed)
                sd->cb.unit_changed(sd, &u->st, sd->userdata);
}

static int on_unit_getall(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct unit *u = userdata;
        char text[SYSTEMD_ERROR_MAX];
        bool changed = false, service = false, first;
        int r;

        (void) ret_error;
        u->call = sd_bus_slot_unref(u->call);
        if (sd_bus_message_is_method_error(m, NULL)) {
                /* The manager going away cancels reads: bus_ready() redoes them. */
                if (!error_means_unknown(m)) {
                        error_text(text, sizeof(text), sd_bus_message_get_error(m),
                                   sd_bus_message_get_errno(m));
                        unit_report_error(u, message_errno(m), text);
                }
                return 0;
        }
        first = !u->st.loaded;
        r = unit_read_props(u, m, &changed, &service);
        if (r < 0) {
                format_text(text, sizeof(text), "malformed properties of unit %s: %s", u->name,
                            strerror(-r));
                unit_report_error(u, -EBADMSG, text);
                return 0;
        }
        u->st.loaded = true;
        if (service && !u->st.has_service) {
                u->st.has_service = true;
                changed = true;
        }
        if (u->reread) {
                u->reread = false;
                unit_read(u);
        }
        /* The callbacks come last: they may unwatch the unit. */
        unit_check_load_state(u);
        if (changed || first)
                unit_report(u);
        return 0;
}

static int on_unit_props_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct unit *u = userdata;
        bool changed = false, service = false, stale = false;
        const char *iface, *key;
        int r;

        (void) ret_error;
        if (sd_bus_message_read(m, "s", &iface) < 0)
                return 0;
        if (strcmp(iface, SD_UNIT_IFACE) != 0 && strcmp(iface, SD_SERVICE_IFACE) != 0)
                return 0;
        r = unit_read_props(u, m, &changed, &service);
        if (r < 0) {
                unit_read(u);
                return 0;
        }
        /* Properties only invalidated (value not sent) are fetched afresh. */
        if (sd_bus_message_enter_container(m, 'a', "s") > 0) {
                while (sd_bus_message_read(m, "s", &key) > 0)
                        if (strcmp(key, "ActiveState") == 0 || strcmp(key, "SubState") == 0 ||
                            strcmp(key, "MainPID") == 0 || strcmp(key, "Result") == 0 ||
                            strcmp(key, "NRestarts") == 0 || strcmp(key, "LoadState") == 0)
                                stale = true;
                (void) sd_bus_message_exit_container(m);
        }
        if (service && !u->st.has_service) {
                u->st.has_service = true;
                changed = true;
        }
        if (stale || !u->st.loaded)
                unit_read(u);
        if (changed && u->st.loaded) {
                unit_check_load_state(u);
                unit_report(u);
        }
        return 0;
}

static void unit_getall(struct unit *u) {
        struct systemd *sd = u->sd;
        char text[SYSTEMD_ERROR_MAX];
        int r;

        r = call_async(sd, &u->call, SD_DEST, u->path, DBUS_PROPERTIES, "GetAll",
                       on_unit_getall, u, "s", "");
        if (r < 0) {
                format_text(text, sizeof(text), "cannot read unit %s: %s", u->name, strerror(-r));
                unit_report_error(u, r, text);
        }
}

static int on_unit_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct unit *u = userdata;
        char text[SYSTEMD_ERROR_MAX], why[SYSTEMD_ERROR_MAX];

        (void) ret_error;
        if (!sd_bus_message_is_method_error(m, NULL))
                return 0;
        /* Without the match we would miss changes: say so, and retry on the next read. */
        error_text(why, sizeof(why), sd_bus_message_get_error(m), sd_bus_message_get_errno(m));
        format_text(text, sizeof(text), "cannot follow unit %s: %s", u->name, why);
        u->match = sd_bus_slot_unref(u->match);
        unit_report_error(u, -EIO, text);
        return 0;
}

static int on_unit_loaded(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct unit *u = userdata;
        struct systemd *sd = u->sd;
        char text[SYSTEMD_ERROR_MAX];
        const char *path;
        int r;

        (void) ret_error;
        u->call = sd_bus_slot_unref(u->call);
        if (sd_bus_message_is_method_error(m, NULL)) {
                if (!error_means_unknown(m)) {
                        error_text(text, sizeof(text), sd_bus_message_get_error(m),
                                   sd_bus_message_get_errno(m));
                        unit_report_error(u, message_errno(m), text);
                }
                return 0;
        }
        if (sd_bus_message_read(m, "o", &path) < 0 || strlen(path) >= SYSTEMD_PATH_MAX) {
                format_text(text, sizeof(text), "malformed LoadUnit reply for %s", u->name);
                unit_report_error(u, -EBADMSG, text);
                return 0;
        }
        if (!u->path || strcmp(u->path, path) != 0) {
                char *p = strdup(path);

                if (!p) {
                        unit_report_error(u, -ENOMEM, "out of memory");
                        return 0;
                }
                free(u->path);
                u->path = p;
                u->match = sd_bus_slot_unref(u->match);
        }
        /*
         * The AddMatch goes out before the GetAll, and the bus handles one
         * connection's messages in order: no change can slip between the
         * snapshot and the first signal.
         */
        if (!u->match) {
                r = sd_bus_match_signal_async(sd->bus, &u->match, SD_DEST, u->path, DBUS_PROPERTIES,
                                              "PropertiesChanged", on_unit_props_changed,
                                              on_unit_match_installed, u);
                if (r < 0) {
                        format_text(text, sizeof(text), "cannot follow unit %s: %s", u->name, strerror(-r));
                        unit_report_error(u, r, text);
                        return 0;
                }
        }
        u->reread = false;
        unit_getall(u);
        return 0;
}

/*
 * Reads the unit's state: the first time (or after the connection was
 * replaced) through LoadUnit, which also gives the object path to follow;
 * later with GetAll alone. One read per unit is in flight at most.
 */
static void unit_read(struct unit *u) {
        struct systemd *sd = u->sd;
        char text[SYSTEMD_ERROR_MAX];
        int r;

        if (sd->state != BUS_READY || sd->dead || u->gone)
                return;
        if (u->call) {
                u->reread = true;
                return;
        }
        if (u->path && u->match) {
                unit_getall(u);
                return;
        }
        r = call_async(sd, &u->call, SD_DEST, SD_PATH, SD_MANAGER, "LoadUnit",
                       on_unit_loaded, u, "s", u->name);
        if (r < 0) {
                format_text(text, sizeof(text), "cannot load unit %s: %s", u->name, strerror(-r));
                unit_report_error(u, r, text);
        }
}

int systemd_watch(struct systemd *sd, const char *unit) {
        struct unit *u;

        if (!sd || !systemd_unit_name_valid(unit))
                return -EINVAL;
        if (unit_find(sd, unit))
                return 0;
        if (sd->n_units >= SYSTEMD_MAX_UNITS)
                return -ENOSPC;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->sd = sd;
        u->name = strdup(unit);
        if (!u->name) {
                unit_free(u);
                return -ENOMEM;
        }
        u->st.name = u->name;
        TAILQ_INSERT_TAIL(&sd->units, u, entry);
        sd->n_units++;
        unit_read(u);
        return 0;
}

int systemd_unwatch(struct systemd *sd, const char *unit) {
        struct unit *u;

        if (!sd || !unit)
                return -EINVAL;
        u = unit_find(sd, unit);
        if (!u)
                return -ENOENT;
        /* Freed later: a callback running for this very unit may be our caller. */
        u->gone = true;
        u->match = sd_bus_slot_unref(u->match);
        u->call = sd_bus_slot_unref(u->call);
        sd->n_units--;
        sd->have_gone = true;
        return 0;
}

int systemd_refresh(struct systemd *sd, const char *unit) {
        struct unit *u;

        if (!sd || !unit)
                return -EINVAL;
        u = unit_find(sd, unit);
        if (!u)
                return -ENOENT;
        unit_read(u);
        return 0;
}

int systemd_unit_state(const struct systemd *sd, const char *unit, const struct systemd_unit_state **ret) {
        struct unit *u;

        if (!sd || !unit || !ret)
                return -EINVAL;
        u = unit_find(sd, unit);
        if (!u)
                return -ENOENT;
        *ret = &u->st;
        return 0;
}

/* --- the connection ----------------------------------------------------- */

static void report_lost(struct systemd *sd, const char *reason) {
        copy_text(sd->last_error, sizeof(sd->last_error), reason);
        if (sd->lost_reported)
                return;
        sd->lost_reported = true;
        if (sd->cb.bus_lost)
                sd->cb.bus_lost(sd, sd->last_error, sd->userdata);
}

/*
 * Subscribed, matches in place: the watched units are read afresh (changes
 * during the outage were not signalled to us), and jobs we were following
 * are checked, since their JobRemoved may have been sent to nobody.
 */
static void bus_ready(struct systemd *sd) {
        bool reconnected = sd->ever_ready;
        struct unit *u;
        struct job *j, *jn;

        sd->state = BUS_READY;
        sd->backoff_us = SYSTEMD_RECONNECT_MIN_US;
        sd->ever_ready = true;
        sd->lost_reported = false;
        if (reconnected)
                sd->reconnects++;
        TAILQ_FOREACH(u, &sd->units, entry) {
                u->call = sd_bus_slot_unref(u->call);
                u->reread = false;
        }
        /* Units are only freed by unit_reap(), so this walk survives callbacks. */
        TAILQ_FOREACH(u, &sd->units, entry)
                unit_read(u);
        for (j = TAILQ_FIRST(&sd->jobs); j; j = jn) {
                jn = TAILQ_NEXT(j, entry);
                job_check(j);
        }
        if (sd->cb.bus_ready)
                sd->cb.bus_ready(sd, reconnected, sd->userdata);
}

static int on_subscribed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;
        char text[SYSTEMD_ERROR_MAX], why[SYSTEMD_ERROR_MAX];

        (void) ret_error;
        sd->subscribe_call = sd_bus_slot_unref(sd->subscribe_call);
        /* A manager that kept our subscription across a reexec says so: fine. */
        if (sd_bus_message_is_method_error(m, NULL) &&
            !sd_bus_message_is_method_error(m, "org.freedesktop.systemd1.AlreadySubscribed")) {
                error_text(why, sizeof(why), sd_bus_message_get_error(m), sd_bus_message_get_errno(m));
                format_text(text, sizeof(text), "Subscribe failed: %s", why);
                report_lost(sd, text);
                sd->dead = true;
                return 0;
        }
        if (sd->state == BUS_WAITING)
                bus_ready(sd);
        return 0;
}

static void manager_appeared(struct systemd *sd) {
        int r;

        if (sd->subscribe_call)
                return;
        r = call_async(sd, &sd->subscribe_call, SD_DEST, SD_PATH, SD_MANAGER,
                       "Subscribe", on_subscribed, sd, "");
        if (r < 0) {
                char text[SYSTEMD_ERROR_MAX];

                format_text(text, sizeof(text), "Subscribe failed: %s", strerror(-r));
                report_lost(sd, text);
                sd->dead = true;
        }
}

/*
 * The manager left the bus (daemon-reexec, or it exited) while our own
 * connection stays: our matches live on in the bus daemon, reads in flight
 * are void. Calls in flight get an error reply from the bus daemon, which
 * makes them "unknown".
 */
static void manager_gone(struct systemd *sd, const char *why) {
        struct unit *u;

        sd->state = BUS_WAITING;
        sd->subscribe_call = sd_bus_slot_unref(sd->subscribe_call);
        TAILQ_FOREACH(u, &sd->units, entry) {
                u->call = sd_bus_slot_unref(u->call);
                u->reread = false;
        }
        report_lost(sd, why);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;
        const char *name, *old_owner, *new_owner;

        (void) ret_error;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (strcmp(name, SD_DEST) != 0)
                return 0;
        if (sd->state == BUS_READY && old_owner[0])
                manager_gone(sd, "the systemd manager left the bus (daemon-reexec or exit)");
        if (new_owner[0] && sd->state == BUS_WAITING)
                manager_appeared(sd);
        return 0;
}

static int on_owner_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;

        (void) ret_error;
        sd->owner_call = sd_bus_slot_unref(sd->owner_call);
        ev_timer_stop(sd->loop, &sd->handshake);
        if (sd_bus_message_is_method_error(m, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                /* Not on the bus yet: NameOwnerChanged will tell us when it is. */
                report_lost(sd, "the systemd manager is not on the bus");
                return 0;
        }
        if (sd_bus_message_is_method_error(m, NULL)) {
                char text[SYSTEMD_ERROR_MAX], why[SYSTEMD_ERROR_MAX];

                error_text(why, sizeof(why), sd_bus_message_get_error(m), sd_bus_message_get_errno(m));
                format_text(text, sizeof(text), "GetNameOwner failed: %s", why);
                report_lost(sd, text);
                sd->dead = true;
                return 0;
        }
        if (sd->state == BUS_WAITING)
                manager_appeared(sd);
        return 0;
}

/* After a daemon-reload, units may have appeared, vanished or changed settings. */
static int on_reloading(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;
        struct unit *u;
        int active;

        (void) ret_error;
        if (sd_bus_message_read(m, "b", &active) < 0 || active)
                return 0;
        TAILQ_FOREACH(u, &sd->units, entry)
                unit_read(u);
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd *sd = userdata;
        char text[SYSTEMD_ERROR_MAX], why[SYSTEMD_ERROR_MAX];

        (void) ret_error;
        if (!sd_bus_message_is_method_error(m, NULL))
                return 0;
        /* A connection that is closing says NoReply: that loss is handled elsewhere. */
        if (error_means_unknown(m)) {
                sd->dead = true;
                return 0;
        }
        error_text(why, sizeof(why), sd_bus_message_get_error(m), sd_bus_message_get_errno(m));
        format_text(text, sizeof(text), "cannot add a match on the bus: %s", why);
        report_lost(sd, text);
        sd->dead = true;
        return 0;
}

/*
 * Drops the connection: every slot first (a slot must not outlive its
 * bus unreferenced), jobs still waiting for their call's reply end as
 * "unknown", jobs with a job path stay to be checked after reconnecting.
 */
static void bus_drop(struct systemd *sd) {
        struct unit *u;
        struct job *j, *jn;

        ev_io_stop(sd->loop, &sd->io);
        ev_timer_stop(sd->loop, &sd->timeout);
        ev_idle_stop(sd->loop, &sd->more);
        ev_timer_stop(sd->loop, &sd->handshake);
        sd->timeout_at = UINT64_MAX;
        sd->match_owner = sd_bus_slot_unref(sd->match_owner);
        sd->match_jobs = sd_bus_slot_unref(sd->match_jobs);
        sd->match_reload = sd_bus_slot_unref(sd->match_reload);
        sd->owner_call = sd_bus_slot_unref(sd->owner_call);
        sd->subscribe_call = sd_bus_slot_unref(sd->subscribe_call);
        TAILQ_FOREACH(u, &sd->units, entry) {
                u->call = sd_bus_slot_unref(u->call);
                u->match = sd_bus_slot_unref(u->match);
                u->reread = false;
        }
        for (j = TAILQ_FIRST(&sd->jobs); j; j = jn) {
                jn = TAILQ_NEXT(j, entry);
                j->call = sd_bus_slot_unref(j->call);
        }
        if (sd->bus) {
                sd_bus_close(sd->bus);
                sd->bus = sd_bus_unref(sd->bus);
        }
        sd->state = BUS_DOWN;
        sd->dead = false;
        early_clear(sd);
}

static void bus_schedule_retry(struct systemd *sd) {
        ev_timer_stop(sd->loop, &sd->retry);
        ev_timer_set(&sd->retry, (double) sd->backoff_us / 1e6, 0.);
        ev_timer_start(sd->loop, &sd->retry);
        sd->backoff_us *= 2;
        if (sd->backoff_us > SYSTEMD_RECONNECT_MAX_US)
                sd->backoff_us = SYSTEMD_RECONNECT_MAX_US;
}

/* Ends every job still waiting for its call's reply: we will never get it. */
static void bus_fail_unanswered(struct systemd *sd) {
        struct job *j, *jn;

        for (j = TAILQ_FIRST(&sd->jobs); j; j = jn) {
                jn = TAILQ_NEXT(j, entry);
                if (!j->path)
                        job_finish(j, SYSTEMD_RESULT_UNKNOWN, "the bus connection was lost before the reply");
        }
}

static void bus_lost(struct systemd *sd, const char *reason) {
        bus_drop(sd);
        report_lost(sd, reason);
        bus_fail_unanswered(sd);
        bus_schedule_retry(sd);
}

static void bus_process(struct systemd *sd) {
        char text[SYSTEMD_ERROR_MAX];
        int r = 0;

        for (unsigned i = 0; sd->bus && !sd->dead && i < SYSTEMD_PROCESS_BURST; i++) {
                r = sd_bus_process(sd->bus, NULL);
                if (r <= 0)
                        break;
        }
        if (!sd->bus)
                return;
        if (r < 0 || sd->dead || !sd_bus_is_open(sd->bus)) {
                if (r < 0)
                        format_text(text, sizeof(text), "the bus connection was lost: %s", strerror(-r));
                else if (sd->dead && sd->last_error[0] && sd->lost_reported)
                        copy_text(text, sizeof(text), sd->last_error);
                else
                        copy_text(text, sizeof(text), "the bus connection was lost");
                /*
                 * A closing connection still delivers synthesized error replies
                 * to pending calls; keep processing until it says it is done.
                 */
                if (r > 0 && !sd->dead) {
                        ev_idle_start(sd->loop, &sd->more);
                        return;
                }
                bus_lost(sd, text);
                return;
        }
        if (r > 0)
                ev_idle_start(sd->loop, &sd->more);
        bus_rearm(sd);
}

static int bus_open(struct systemd *sd, sd_bus **ret) {
        if (sd->bus_kind == SYSTEMD_BUS_USER)
                return sd_bus_open_user(ret);
        return sd_bus_open_system(ret);
}

/*
 * One connection attempt: open (non-blocking; authentication continues in
 * the loop), add the matches, then ask who owns org.freedesktop.systemd1.
 * The matches go out before GetNameOwner, so no owner change is missed.
 */
static void bus_connect(struct systemd *sd) {
        char text[SYSTEMD_ERROR_MAX];
        const char *where;
        int r;

        where = sd->bus_kind == SYSTEMD_BUS_USER ? "user" : "system";
        r = bus_open(sd, &sd->bus);
        if (r < 0) {
                sd->bus = NULL;
                format_text(text, sizeof(text), "cannot connect to the %s bus: %s", where, strerror(-r));
                goto fail;
        }
        sd->state = BUS_WAITING;
        r = sd_bus_add_match_async(sd->bus, &sd->match_owner,
                                   "type='signal',sender='org.freedesktop.DBus',"
                                   "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                                   "member='NameOwnerChanged',arg0='" SD_DEST "'",
                                   on_owner_changed, on_match_installed, sd);
        if (r >= 0)
                r = sd_bus_match_signal_async(sd->bus, &sd->match_jobs, SD_DEST, SD_PATH, SD_MANAGER,
                                              "JobRemoved", on_job_removed, on_match_installed, sd);
        if (r >= 0)
                r = sd_bus_match_signal_async(sd->bus, &sd->match_reload, SD_DEST, SD_PATH, SD_MANAGER,
                                              "Reloading", on_reloading, on_match_installed, sd);
        if (r >= 0)
                r = call_async(sd, &sd->owner_call, "org.freedesktop.DBus",
                               "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", on_owner_reply, sd, "s", SD_DEST);
        if (r < 0) {
                format_text(text, sizeof(text), "cannot set up the %s bus connection: %s", where,
                            strerror(-r));
                bus_drop(sd);
                goto fail;
        }
        ev_timer_set(&sd->handshake, (double) SYSTEMD_HANDSHAKE_US / 1e6, 0.);
        ev_timer_start(sd->loop, &sd->handshake);
        bus_rearm(sd);
        return;
fail:
        report_lost(sd, text);
        bus_fail_unanswered(sd);
        bus_schedule_retry(sd);
}

int systemd_new(struct ev_loop *loop, enum systemd_bus bus, const struct systemd_callbacks *callbacks,
                void *userdata, struct systemd **ret) {
        struct systemd *sd;

        if (!loop || !ret || (bus != SYSTEMD_BUS_SYSTEM && bus != SYSTEMD_BUS_USER))
                return -EINVAL;
        sd = calloc(1, sizeof(*sd));
        if (!sd)
                return -ENOMEM;
        sd->loop = loop;
        sd->bus_kind = bus;
        if (callbacks)
                sd->cb = *callbacks;
        sd->userdata = userdata;
        sd->backoff_us = SYSTEMD_RECONNECT_MIN_US;
        sd->timeout_at = UINT64_MAX;
        TAILQ_INIT(&sd->units);
        TAILQ_INIT(&sd->jobs);
        ev_io_init(&sd->io, on_io, -1, 0);
        sd->io.data = sd;
        ev_timer_init(&sd->timeout, on_timeout, 0., 0.);
        sd->timeout.data = sd;
        ev_prepare_init(&sd->prepare, on_prepare);
        sd->prepare.data = sd;
        ev_idle_init(&sd->more, on_more);
        sd->more.data = sd;
        ev_timer_init(&sd->retry, on_retry, 0., 0.);
        sd->retry.data = sd;
        ev_timer_init(&sd->handshake, on_handshake_timeout, 0., 0.);
        sd->handshake.data = sd;
        ev_prepare_start(loop, &sd->prepare);
        /* The first attempt runs from the loop, so its outcome reaches the callbacks. */
        ev_timer_set(&sd->retry, 0., 0.);
        ev_timer_start(loop, &sd->retry);
        *ret = sd;
        return 0;
}

void systemd_free(struct systemd *sd) {
        struct unit *u;
        struct job *j;

        if (!sd)
                return;
        bus_drop(sd);
        ev_prepare_stop(sd->loop, &sd->prepare);
        ev_timer_stop(sd->loop, &sd->retry);
        while ((u = TAILQ_FIRST(&sd->units))) {
                TAILQ_REMOVE(&sd->units, u, entry);
                unit_free(u);
        }
        while ((j = TAILQ_FIRST(&sd->jobs))) {
                TAILQ_REMOVE(&sd->jobs, j, entry);
                job_free(j);
        }
        free(sd);
}

void systemd_get_status(const struct systemd *sd, struct systemd_status *ret) {
        if (!sd || !ret)
                return;
        *ret = (struct systemd_status) {
                .connected = sd->bus != NULL,
                .ready = sd->state == BUS_READY,
                .watched = sd->n_units,
                .jobs = sd->n_jobs,
                .reconnects = sd->reconnects,
        };
        copy_text(ret->last_error, sizeof(ret->last_error), sd->last_error);
}
