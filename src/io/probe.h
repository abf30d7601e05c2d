/*
 * Active health checks in the libev loop: `tcp` (a connect), `http` (one GET)
 * and `exec` (a program's exit code). A probe is one configured check; each
 * probe_start() makes exactly one attempt, bounded by the timeout, and reports
 * it once through the callback. The owner (the supervisor) starts it every
 * interval. Nothing blocks: sockets are non-blocking, the program is
 * posix_spawn()ed and reaped by an ev_child watcher. `systemd` checks are not
 * probes: their results come from D-Bus signals (io/systemd.h).
 *
 * Every resource an attempt can make us hold is bounded: one socket or one
 * child process per probe, a response buffer of max_response bytes. No logging:
 * the reason string says what happened.
 */
#ifndef AGENTD_PROBE_H
#define AGENTD_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct probe;

enum probe_type {
        PROBE_TCP,
        PROBE_HTTP,
        PROBE_EXEC,
        _PROBE_TYPE_MAX,
        _PROBE_TYPE_INVALID = -1,
};

/* Default and largest accepted response size of an http probe (headers + body). */
#define PROBE_RESPONSE_DEFAULT (64u * 1024u)
#define PROBE_RESPONSE_MAX (1024u * 1024u)
/* Bytes of a reason string, including the NUL. */
#define PROBE_REASON_MAX 160
/* Most words (program + arguments) an exec command may have. */
#define PROBE_ARGS_MAX 64
/* Longest exec command, http path and Host header accepted. */
#define PROBE_TEXT_MAX 4095

struct probe_options {
        enum probe_type type;
        const char *address;            /* tcp, http: an IPv4 or IPv6 literal (no brackets) */
        uint16_t port;                  /* tcp, http: 1..65535 */
        const char *path;               /* http: starts with '/', no spaces or control characters; NULL: "/" */
        const char *host_header;        /* http: Host value; NULL: address[:port] (port omitted when 80) */
        int status_min;                 /* http: accepted status range, 100..599; both 0: 200..399 */
        int status_max;
        const char *expect_body;        /* http: NULL or a substring the (decoded) body must contain */
        size_t max_response;            /* http: 0: PROBE_RESPONSE_DEFAULT; at most PROBE_RESPONSE_MAX */
        const char *command;            /* exec: program and arguments, split on spaces; PATH is searched */
        uint64_t timeout_us;            /* every type: > 0; the whole attempt */
};

/*
 * One attempt's outcome. `reason` is borrowed for the callback only. Success
 * reasons: "connected" (tcp), "HTTP 200" (http), "exit status 0" (exec).
 * Failure reasons include "connect: Connection refused", "timed out after 2s",
 * "HTTP 500", "HTTP 200, body does not contain the expected text",
 * "malformed response", "response too large", "connection closed early",
 * "spawn /x: No such file or directory", "exit status 1", "killed by signal 9".
 */
struct probe_result {
        bool ok;
        uint64_t latency_us;            /* probe_start() to the outcome (monotonic) */
        int http_status;                /* http: the status code when one was parsed, else 0 */
        const char *reason;
};

/*
 * Called once per attempt, from the loop (never from inside probe_start()).
 * The probe is idle again when it runs: the callback may probe_start() it
 * again or probe_free() it.
 */
typedef void (*probe_done_fn)(struct probe *p, const struct probe_result *r, void *userdata);

/*
 * Validates and copies the options (nothing is borrowed afterwards).
 * -EINVAL on a bad option (an address that is not an IP literal, a path with
 * spaces, an empty command, ...); an exec probe needs the default loop
 * (ev_child works only there): -EINVAL otherwise. -ENOMEM.
 */
int probe_new(struct ev_loop *loop, const struct probe_options *o, probe_done_fn done, void *userdata,
              struct probe **ret);

/*
 * Starts one attempt. -EBUSY when one is running. Errors of the attempt itself
 * (socket, spawn, connect) are results reported through the callback, not
 * return values; only -EBUSY is returned.
 */
int probe_start(struct probe *p);

/*
 * Abandons a running attempt without calling the callback: closes the socket,
 * or SIGKILLs the exec child's process group and leaves the reaping to libev
 * (the default loop reaps every child on SIGCHLD). No-op when idle.
 */
void probe_cancel(struct probe *p);

bool probe_running(const struct probe *p);

/* probe_cancel() and frees. NULL-safe; allowed inside the callback. */
void probe_free(struct probe *p);

enum probe_type probe_type(const struct probe *p);
/* "tcp", "http", "exec"; NULL when out of range. */
const char *probe_type_to_string(enum probe_type t);

#endif
