/*
 * The systemd adapter: sd-bus driven by the agent's libev loop. The bus fd is
 * an ev_io, sd-bus's timeout an ev_timer, and every D-Bus call is
 * asynchronous, so the loop never blocks on the bus. It watches units (their
 * state comes from PropertiesChanged signals after one GetAll, never from
 * polling), starts/stops/restarts them and follows each job to its JobRemoved
 * result, and keeps all of that working across a bus that goes away: the
 * connection is re-established with backoff (100 ms doubling to 5 s), Subscribe
 * and the matches are restored and the watched units re-read.
 *
 * This module never logs: what went wrong is handed to the callbacks as text.
 * Callbacks run from inside the loop; they may call any function here except
 * systemd_free().
 */
#ifndef AGENTD_SYSTEMD_H
#define AGENTD_SYSTEMD_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

/* Bounds on what configuration or callers can make the adapter hold. */
#define SYSTEMD_MAX_UNITS 256           /* watched units (one match rule each) */
#define SYSTEMD_MAX_JOBS 256            /* start/stop/restart calls not yet finished */
#define SYSTEMD_UNIT_NAME_MAX 255       /* systemd's own limit on unit names */
#define SYSTEMD_STATE_MAX 32            /* longest state string kept ("deactivating"...) */
#define SYSTEMD_ERROR_MAX 256           /* longest error text handed to a callback */

/* Reconnect backoff: first retry after MIN, doubling up to MAX. */
#define SYSTEMD_RECONNECT_MIN_US (100 * UINT64_C(1000))
#define SYSTEMD_RECONNECT_MAX_US (5 * UINT64_C(1000000))

struct systemd;

enum systemd_bus {
        SYSTEMD_BUS_SYSTEM,
        SYSTEMD_BUS_USER,       /* the session bus of $XDG_RUNTIME_DIR/bus (or $DBUS_SESSION_BUS_ADDRESS) */
};

enum systemd_job_kind {
        SYSTEMD_JOB_START,
        SYSTEMD_JOB_STOP,
        SYSTEMD_JOB_RESTART,
};

/*
 * How a start/stop/restart ended. The first six are systemd's JobRemoved
 * results; OTHER is any further JobRemoved result (the text says which).
 * REFUSED: the manager answered the call with an error (no such unit, masked,
 * access denied...), no job was queued. UNKNOWN: the bus went away or the call
 * timed out before we learnt the outcome; the job may or may not have run,
 * so this is never to be read as a failure of the unit.
 */
enum systemd_job_result {
        SYSTEMD_RESULT_DONE,
        SYSTEMD_RESULT_CANCELED,
        SYSTEMD_RESULT_TIMEOUT,
        SYSTEMD_RESULT_FAILED,
        SYSTEMD_RESULT_DEPENDENCY,
        SYSTEMD_RESULT_SKIPPED,
        SYSTEMD_RESULT_OTHER,
        SYSTEMD_RESULT_REFUSED,
        SYSTEMD_RESULT_UNKNOWN,
};

/*
 * What is known of a watched unit. Strings are "" until read. The Service
 * fields stay 0/"" for units that are not services (has_service false).
 */
struct systemd_unit_state {
        const char *name;
        bool loaded;                            /* at least one GetAll answered */
        char load_state[SYSTEMD_STATE_MAX];     /* "loaded", "not-found", "masked", "error"... */
        char active_state[SYSTEMD_STATE_MAX];   /* "active", "inactive", "failed", "activating"... */
        char sub_state[SYSTEMD_STATE_MAX];      /* "running", "dead", "auto-restart"... */
        uint64_t state_change_us;               /* StateChangeTimestampMonotonic (CLOCK_MONOTONIC µs) */
        bool has_service;
        uint32_t main_pid;                      /* 0: none */
        char result[SYSTEMD_STATE_MAX];         /* Service Result: "success", "signal", "exit-code"... */
        uint32_t n_restarts;                    /* restarts systemd did by itself (Restart=) */
        char restart[SYSTEMD_STATE_MAX];        /* Restart= setting: "no", "always", "on-failure"... */
        uint64_t restart_us;                    /* RestartSec= */
};

struct systemd_callbacks {
        /*
         * The manager is reachable and Subscribe and every match are in place
         * (the watched units are being re-read). RECONNECTED: it was reachable
         * before and bus_lost was reported since — the owner emits bus_reconnected.
         */
        void (*bus_ready)(struct systemd *sd, bool reconnected, void *userdata);
        /*
         * The manager stopped being reachable: our connection dropped (dbus
         * restarted) or the manager left the bus (daemon-reexec), or, before
         * the first bus_ready, connecting failed. Once per outage, not per retry.
         */
        void (*bus_lost)(struct systemd *sd, const char *reason, void *userdata);
        /* A watched unit's state changed (or was read afresh). */
        void (*unit_changed)(struct systemd *sd, const struct systemd_unit_state *state, void *userdata);
        /*
         * Watching UNIT ran into a problem: -ENOENT "unit X not found" (its
         * LoadState is not-found; reported once until it loads), or the bus
         * refused a call (-EACCES, -EINVAL for a name systemd rejects, ...).
         * The unit stays watched: a daemon-reload that creates it is picked up.
         */
        void (*unit_error)(struct systemd *sd, const char *unit, int error, const char *message,
                           void *userdata);
        /*
         * A start/stop/restart finished. TEXT is systemd's result string for
         * the JobRemoved results, else the error or the reason it is unknown.
         */
        void (*job_done)(struct systemd *sd, uint64_t cookie, const char *unit,
                         enum systemd_job_result result, const char *text, void *userdata);
};

/*
 * Opens the bus and starts the handshake (returns at once; bus_ready follows
 * from the loop). A bus that cannot be opened now is not an error: it is
 * reported through bus_lost and retried with backoff. Fails only on bad
 * arguments (-EINVAL) or -ENOMEM. CALLBACKS is copied; any member may be NULL.
 */
int systemd_new(struct ev_loop *loop, enum systemd_bus bus, const struct systemd_callbacks *callbacks,
                void *userdata, struct systemd **ret);

/* Drops the connection and every watch and job without calling back. NULL-safe. */
void systemd_free(struct systemd *sd);

/*
 * Starts watching UNIT: its state is read once and then followed through
 * signals; unit_changed reports it. Watching an already watched unit is a
 * no-op. -EINVAL: not a valid unit name; -ENOSPC: SYSTEMD_MAX_UNITS reached.
 */
int systemd_watch(struct systemd *sd, const char *unit);

/* Stops watching UNIT (its in-flight reads are cancelled). -ENOENT if not watched. */
int systemd_unwatch(struct systemd *sd, const char *unit);

/* Re-reads UNIT's properties (asynchronously; unit_changed follows). -ENOENT if not watched. */
int systemd_refresh(struct systemd *sd, const char *unit);

/*
 * The last known state of a watched unit, valid until the next call into this
 * module or return to the loop. -ENOENT: not watched.
 */
int systemd_unit_state(const struct systemd *sd, const char *unit, const struct systemd_unit_state **ret);

/*
 * Queues a job for UNIT with mode "replace" and follows it to its end;
 * job_done reports it with the cookie stored in *ret_cookie (never 0).
 * -ENOTCONN: the manager is not reachable right now (nothing was sent);
 * -EINVAL: bad unit name; -EBUSY: SYSTEMD_MAX_JOBS jobs are in flight.
 */
int systemd_job(struct systemd *sd, enum systemd_job_kind kind, const char *unit, uint64_t *ret_cookie);
int systemd_start_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie);
int systemd_stop_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie);
int systemd_restart_unit(struct systemd *sd, const char *unit, uint64_t *ret_cookie);

struct systemd_status {
        bool connected;          /* we have a bus connection */
        bool ready;              /* ... and the manager is on it, subscribed */
        unsigned watched;
        unsigned jobs;           /* start/stop/restart not finished */
        uint64_t reconnects;     /* bus_ready(reconnected = true) so far */
        char last_error[SYSTEMD_ERROR_MAX];      /* why the bus was last lost, "" if never */
};
void systemd_get_status(const struct systemd *sd, struct systemd_status *ret);

/* Valid unit names: [A-Za-z0-9:_.\\@-], with a type suffix, at most 255 chars. */
bool systemd_unit_name_valid(const char *unit);

const char *systemd_job_result_to_string(enum systemd_job_result r);
const char *systemd_job_kind_to_string(enum systemd_job_kind k);

#endif
