/*
 * The control protocol, shared by agentd's control socket and agentctl.
 *
 * A connection carries newline-terminated JSON documents: a request
 *   {"verb": "status", "args": {...}}
 * and, for each request, one reply
 *   {"ok": true,  "data": {...}}
 *   {"ok": false, "error": {"code": "unknown_verb", "message": "..."}}
 * in order. Requests are capped at CTL_MAX_REQUEST bytes; doc/agentctl.8 and
 * doc/ARCHITECTURE.md describe the verbs and error codes.
 */
#ifndef AGENTD_CTLPROTO_H
#define AGENTD_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/util.h"

#define CTL_MAX_REQUEST   (64 * 1024)
#define CTL_MAX_REPLY     (16 * 1024 * 1024)
#define CTL_MAX_VERB      32

/* Error codes (contract: clients match on them). */
#define CTL_ERR_BAD_JSON          "bad_json"
#define CTL_ERR_BAD_REQUEST       "bad_request"
#define CTL_ERR_TOO_LARGE         "too_large"
#define CTL_ERR_UNKNOWN_VERB      "unknown_verb"
#define CTL_ERR_INVALID_ARGUMENT  "invalid_argument"
#define CTL_ERR_PERMISSION_DENIED "permission_denied"
#define CTL_ERR_TIMEOUT           "timeout"
#define CTL_ERR_TOO_MANY_CLIENTS  "too_many_clients"
#define CTL_ERR_FAILED            "failed"
#define CTL_ERR_INTERNAL          "internal"

struct ctl_verb {
        const char *name;
        bool mutating;          /* needs root or the admin group */
        const char *summary;
};

/* The verbs the daemon answers; NULL when NAME is not one of them. */
const struct ctl_verb *ctlproto_verb_lookup(const char *name);
const struct ctl_verb *ctlproto_verbs(size_t *ret_n);

struct ctl_request {
        const struct ctl_verb *verb;     /* NULL: unknown verb */
        char verb_name[CTL_MAX_VERB + 1];
        json_t *args;                    /* always an object; owned */
};

/*
 * Decodes one request (without its newline). Returns 0, or a negative errno
 * with *ret_code set to one of the CTL_ERR_* codes and ret_msg to a message:
 * -EBADMSG bad JSON, -EINVAL not a request object, -EMSGSIZE too large,
 * -ENOENT unknown verb. *ret is untouched on failure.
 */
int ctlproto_parse_request(const char *buf, size_t len, struct ctl_request *ret,
                           const char **ret_code, char *ret_msg, size_t msg_len);
void ctlproto_request_done(struct ctl_request *r);

/* Reply builders. ctlproto_ok steals `data` (NULL: an empty object). */
json_t *ctlproto_ok(json_t *data);
json_t *ctlproto_error(const char *code, const char *fmt, ...) _printf_(2, 3);

struct store_event;
/*
 * Appends the protocol's JSON form of a stored event to the array `list`
 * (id, ts, ts_us, node, kind, subject, detail, service, unit, term). Has the
 * shape of a store_event_cb so it can be passed to store_events_query().
 * Returns 0 or -ENOMEM.
 */
int ctlproto_event_append(const struct store_event *ev, void *list);

/* Serializes a reply or request as one compact line ending in '\n'. */
char *ctlproto_dump(const json_t *doc, size_t *ret_len);

/*
 * Client side: connect to SOCKET_PATH, send {"verb":VERB,"args":ARGS}, wait up
 * to timeout_us for the reply. Returns 0 with *ret_reply set (the whole reply
 * document, ok or not), or a negative errno: -ENOENT / -ECONNREFUSED when no
 * daemon listens, -EACCES when the socket refuses us, -ETIMEDOUT, -EBADMSG on
 * an unparsable reply, -EMSGSIZE when the reply exceeds CTL_MAX_REPLY.
 * Also: -ENAMETOOLONG for a path that does not fit a sockaddr_un, -EMSGSIZE
 * for a request over CTL_MAX_REQUEST, -ECONNRESET when the daemon closes
 * without replying, -EINVAL for bad arguments. A reply that parses but lacks
 * "ok" (or "data" / "error".{"code","message"}) counts as unparsable.
 * ARGS is borrowed (NULL: {}); timeout_us 0 waits without limit.
 */
int ctlproto_call(const char *socket_path, const char *verb, json_t *args,
                  uint64_t timeout_us, json_t **ret_reply);

#endif
