/*
 * The control socket server: a Unix stream socket (mode 0660) in the agent's
 * libev loop. It frames and decodes requests (common/ctlproto.h), decides from
 * SO_PEERCRED / SO_PEERGROUPS whether the caller may use a mutating verb, and
 * hands permitted requests to the agent's handler. Every resource a client can
 * make it allocate is capped: connections, request size, reply backlog, idle time.
 */
#ifndef AGENTD_CTL_H
#define AGENTD_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <jansson.h>

#include "common/ctlproto.h"

struct ctl;

struct ctl_caller {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        bool admin;   /* root, or in the admin group (primary or supplementary) */
        uint64_t request_id;    /* unique per request: the key for ctl_reply() */
};

/*
 * Answers one permitted request: returns a complete reply document
 * (ctlproto_ok / ctlproto_error), owned by the caller afterwards. ARGS is
 * borrowed (an object, possibly empty). NULL makes the client get an
 * "internal" error. A handler must not call ctl_free().
 */
typedef json_t *(*ctl_handler_fn)(const struct ctl_caller *caller, const struct ctl_verb *verb,
                                  json_t *args, void *userdata);
/* Told when a non-admin asked for a mutating verb (after the refusal is sent). */
typedef void (*ctl_denied_fn)(const struct ctl_caller *caller, const struct ctl_verb *verb, void *userdata);

struct ctl_options {
        const char *path;
        gid_t socket_gid;          /* (gid_t) -1: leave the socket's group alone */
        gid_t admin_gid;           /* (gid_t) -1: only root is admin */
        unsigned max_clients;      /* 0: default 64 */
        uint64_t idle_timeout_us;  /* 0: default 10 s without a complete request */
        size_t max_request;        /* 0: CTL_MAX_REQUEST */
};

/*
 * Binds and listens. A stale socket file (nobody listening) is replaced; a
 * live one is not (-EADDRINUSE): two agents must never share a socket. A path
 * that exists but is not a socket is left alone (-EEXIST); one too long for
 * a sockaddr_un is -ENAMETOOLONG; max_request over CTL_MAX_REQUEST is -EINVAL.
 */
int ctl_new(struct ev_loop *loop, const struct ctl_options *opts, ctl_handler_fn handler,
            ctl_denied_fn denied, void *userdata, struct ctl **ret);

/* Closes every connection, the listener, and unlinks the socket. NULL-safe. */
void ctl_free(struct ctl *c);

/*
 * Late replies. A handler that can only answer after some network round
 * trip returns ctl_reply_later() and keeps caller->request_id; until
 * ctl_reply() is called for it the client's further requests wait (its idle
 * timeout does not run: the handler owns the deadline and must answer).
 * ctl_reply() steals reply (NULL: an "internal" error is sent) and returns
 * 0, or -ENOENT when the client has gone meanwhile (the reply is dropped).
 */
json_t *ctl_reply_later(void);
int ctl_reply(struct ctl *c, uint64_t request_id, json_t *reply);

/* On reload: a new admin group takes effect for requests from now on. */
void ctl_set_admin_gid(struct ctl *c, gid_t admin_gid);

struct ctl_stats {
        uint64_t accepted;
        uint64_t refused_busy;     /* over max_clients */
        uint64_t bad_requests;
        uint64_t denied;
        uint64_t timeouts;
        unsigned clients;
};
void ctl_get_stats(const struct ctl *c, struct ctl_stats *ret);

#endif
