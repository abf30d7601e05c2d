#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include "common/ctlproto.h"
#include "io/store.h"

/*
 * The verbs, in the order agentctl lists them. Whether a verb is mutating is
 * decided here, in the one table both sides share, so the server's permission
 * check and the CLI's help can never disagree.
 */
static const struct ctl_verb verbs[] = {
        { "status",  false, "show the agent's state, identity and counters" },
        { "events",  false, "list stored events, oldest first" },
        { "services", false, "list the supervised service instances and their health" },
        { "breakers", false, "list the circuit breaker of each service instance" },
        { "restart", true,  "restart a supervised unit through systemd" },
        { "members", false, "list the cluster's members as gossip sees them" },
        { "leader",  false, "show the leader, term, election state and quorum" },
        { "table",   false, "show the balancer table the leader published, per service" },
        { "pick",    false, "show which backend the balancer would give a client now" },
        { "drain",   true,  "stop sending new traffic to a node's backends" },
        { "undrain", true,  "let a drained node's backends take traffic again" },
        { "force-leave", true, "mark a member that will not come back as left" },
        { "reload",  true,  "reload the configuration file" },
        { "version", false, "show the daemon's name and version" },
};

const struct ctl_verb *ctlproto_verbs(size_t *ret_n) {
        if (ret_n)
                *ret_n = ELEMENTSOF(verbs);
        return verbs;
}

const struct ctl_verb *ctlproto_verb_lookup(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one. Overlong forms, surrogates and code points past
 * U+10FFFF are invalid, exactly as jansson judges them.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
        unsigned c = s[0];
        size_t len;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        return len;
}

/*
 * Messages quote client input and may have been cut mid-character by a
 * bounded buffer; jansson refuses to build a string from invalid UTF-8, which
 * would turn a helpful error reply into no reply at all. Bad bytes become '?'.
 */
static void utf8_scrub(char *s) {
        unsigned char *p = (unsigned char *) s;
        size_t n = strlen(s);

        while (n > 0) {
                size_t l = utf8_seq_len(p, n);
                if (l == 0) {
                        *p = '?';
                        l = 1;
                }
                p += l;
                n -= l;
        }
}

static bool verb_name_valid(const char *s, size_t len) {
        if (len == 0 || len > CTL_MAX_VERB)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

static int parse_fail(int r, const char *code, const char **ret_code, char *ret_msg, size_t msg_len,
                      const char *fmt, ...) _printf_(6, 7);

static int parse_fail(int r, const char *code, const char **ret_code, char *ret_msg, size_t msg_len,
                      const char *fmt, ...) {
        va_list ap;

        if (ret_code)
                *ret_code = code;
        if (ret_msg && msg_len > 0) {
                va_start(ap, fmt);
                vsnprintf(ret_msg, msg_len, fmt, ap);
                va_end(ap);
                utf8_scrub(ret_msg);
        }
        return r;
}

int ctlproto_parse_request(const char *buf, size_t len, struct ctl_request *ret,
                           const char **ret_code, char *ret_msg, size_t msg_len) {
        json_error_t jerr;
        json_t *root, *verb = NULL, *args = NULL, *v;
        const char *key, *name;
        size_t name_len;
        int r;

        if (!ret || (!buf && len > 0))
                return parse_fail(-EINVAL, CTL_ERR_INTERNAL, ret_code, ret_msg, msg_len,
                                  "invalid call");
        if (len > CTL_MAX_REQUEST)
                return parse_fail(-EMSGSIZE, CTL_ERR_TOO_LARGE, ret_code, ret_msg, msg_len,
                                  "request of %zu bytes exceeds the limit of %d bytes",
                                  len, CTL_MAX_REQUEST);
        /* jansson would stop at a NUL and accept what came before it. */
        if (len > 0 && memchr(buf, '\0', len))
                return parse_fail(-EBADMSG, CTL_ERR_BAD_JSON, ret_code, ret_msg, msg_len,
                                  "invalid JSON: NUL byte at position %zu",
                                  (size_t) ((const char *) memchr(buf, '\0', len) - buf));

        /*
         * JSON_DECODE_ANY so that a well-formed scalar is reported as the wrong
         * kind of request rather than as broken JSON.
         */
        root = json_loadb(len > 0 ? buf : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root)
                return parse_fail(-EBADMSG, CTL_ERR_BAD_JSON, ret_code, ret_msg, msg_len,
                                  "invalid JSON at position %d: %s", jerr.position, jerr.text);

        if (!json_is_object(root)) {
                r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                               "a request must be a JSON object");
                goto out;
        }
        json_object_foreach(root, key, v) {
                if (strcmp(key, "verb") == 0)
                        verb = v;
                else if (strcmp(key, "args") == 0)
                        args = v;
                else {
                        r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                                       "unknown request key \"%.64s\" (only \"verb\" and \"args\")", key);
                        goto out;
                }
        }
        if (!verb) {
                r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                               "missing \"verb\"");
                goto out;
        }
        if (!json_is_string(verb)) {
                r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                               "\"verb\" must be a string");
                goto out;
        }
        name = json_string_value(verb);
        name_len = json_string_length(verb);
        if (!verb_name_valid(name, name_len)) {
                r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                               "\"verb\" must be 1..%d characters of a-z, '_' and '-'", CTL_MAX_VERB);
                goto out;
        }
        if (args && !json_is_object(args)) {
                r = parse_fail(-EINVAL, CTL_ERR_BAD_REQUEST, ret_code, ret_msg, msg_len,
                               "\"args\" must be an object");
                goto out;
        }
        if (!ctlproto_verb_lookup(name)) {
                r = parse_fail(-ENOENT, CTL_ERR_UNKNOWN_VERB, ret_code, ret_msg, msg_len,
                               "unknown verb \"%s\"", name);
                goto out;
        }

        args = args ? json_incref(args) : json_object();
        if (!args) {
                r = parse_fail(-ENOMEM, CTL_ERR_INTERNAL, ret_code, ret_msg, msg_len, "out of memory");
                goto out;
        }
        *ret = (struct ctl_request) {
                .verb = ctlproto_verb_lookup(name),
                .args = args,
        };
        memcpy(ret->verb_name, name, name_len);
        ret->verb_name[name_len] = '\0';
        r = 0;
out:
        json_decref(root);
        return r;
}

void ctlproto_request_done(struct ctl_request *r) {
        if (!r)
                return;
        json_decref(r->args);
        r->args = NULL;
        r->verb = NULL;
}

int ctlproto_event_append(const struct store_event *ev, void *list) {
        char ts[UTIL_TS_MAX];
        json_t *o;

        o = json_pack("{s:I, s:s, s:I, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:I}",
                      "id", (json_int_t) ev->id,
                      "ts", util_format_ts(ev->ts_us, ts),
                      "ts_us", (json_int_t) ev->ts_us,
                      "node", ev->node,
                      "kind", ev->kind,
                      "subject", ev->subject,
                      "detail", ev->detail,
                      "service", ev->service,
                      "unit", ev->unit,
                      "term", (json_int_t) ev->term);
        if (!o || json_array_append_new(list, o) < 0)
                return -ENOMEM;
        return 0;
}

json_t *ctlproto_ok(json_t *data) {
        json_t *doc;

        if (!data)
                data = json_object();
        doc = json_object();
        if (!doc || !data) {
                json_decref(doc);
                json_decref(data);
                return NULL;
        }
        if (json_object_set_new(doc, "ok", json_true()) < 0 ||
            json_object_set_new(doc, "data", data) < 0) {
                json_decref(doc);
                return NULL;
        }
        return doc;
}

json_t *ctlproto_error(const char *code, const char *fmt, ...) {
        char msg[4096];
        json_t *doc, *err;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        utf8_scrub(msg);

        err = json_pack("{s:s, s:s}", "code", code ? code : CTL_ERR_INTERNAL, "message", msg);
        if (!err)
                return NULL;
        doc = json_object();
        if (!doc) {
                json_decref(err);
                return NULL;
        }
        if (json_object_set_new(doc, "ok", json_false()) < 0 ||
            json_object_set_new(doc, "error", err) < 0) {
                json_decref(doc);
                return NULL;
        }
        return doc;
}

char *ctlproto_dump(const json_t *doc, size_t *ret_len) {
        char *s, *line;
        size_t len;

        if (!doc)
                return NULL;
        s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
                return NULL;
        /* Strings never hold a raw NUL: jansson escapes it, so strlen is exact. */
        len = strlen(s);
        line = realloc(s, len + 2);
        if (!line) {
                free(s);
                return NULL;
        }
        line[len] = '\n';
        line[len + 1] = '\0';
        if (ret_len)
                *ret_len = len + 1;
        return line;
}

/* --- client --------------------------------------------------------------- */

static uint64_t mono_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Waits for EVENTS on fd until the deadline (UINT64_MAX: forever). Rounds the
 * remaining time up to whole milliseconds so a short remainder does not turn
 * into a busy loop of zero-timeout polls.
 */
static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = -1, n;

                if (deadline != UINT64_MAX) {
                        uint64_t now = mono_us(), left;
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        left = (deadline - now + 999) / 1000;
                        ms = left > INT_MAX ? INT_MAX : (int) left;
                }
                n = poll(&p, 1, ms);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n > 0)
                        return 0;
        }
}

/*
 * A Unix stream connect blocks while the listener's backlog is full, and it
 * honours SO_SNDTIMEO while it does (failing with EAGAIN), which is the only
 * way to bound that wait: a non-blocking connect cannot be polled for it.
 */
static int connect_deadline(int fd, const struct sockaddr_un *sa, uint64_t deadline) {
        if (deadline != UINT64_MAX) {
                uint64_t now = mono_us(), left = deadline > now ? deadline - now : 1;
                struct timeval tv = {
                        .tv_sec = (time_t) (left / USEC_PER_SEC),
                        .tv_usec = (suseconds_t) (left % USEC_PER_SEC),
                };
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
                        return -errno;
        }
        for (;;) {
                if (connect(fd, (const struct sockaddr *) sa, sizeof *sa) == 0)
                        return 0;
                switch (errno) {
                case EINTR:
                        continue;
                case EISCONN:
                        return 0;
                case EAGAIN:
                        return -ETIMEDOUT;
                case EPERM:
                        return -EACCES;
                default:
                        return -errno;
                }
        }
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline) {
        size_t off = 0;

        while (off < len) {
                ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        int r;
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                off += (size_t) n;
        }
        return 0;
}

/*
 * Reads one newline-terminated line of at most CTL_MAX_REPLY bytes. The
 * buffer grows geometrically so small replies cost one small allocation.
 */
static int recv_line(int fd, uint64_t deadline, char **ret_buf, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        const size_t max = (size_t) CTL_MAX_REPLY + 1;

        for (;;) {
                ssize_t n;
                char *nl;

                if (len == cap) {
                        size_t ncap;
                        char *nbuf;
                        if (cap >= max)
                                return -EMSGSIZE;
                        ncap = cap ? cap * 2 : 4096;
                        if (ncap > max)
                                ncap = max;
                        nbuf = realloc(buf, ncap);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                        cap = ncap;
                }
                n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
                if (n < 0) {
                        int r;
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        r = wait_fd(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n == 0)
                        /* Closed before a whole line: nothing or a torn reply. */
                        return len == 0 ? -ECONNRESET : -EBADMSG;
                nl = memchr(buf + len, '\n', (size_t) n);
                len += (size_t) n;
                if (nl) {
                        *ret_len = (size_t) (nl - buf);
                        *ret_buf = buf;
                        buf = NULL;
                        return 0;
                }
        }
}

/*
 * A reply is only usable when it has the shape every caller relies on, so a
 * document that parses but lacks "ok", or an error without a code, is as
 * unusable as garbage.
 */
static bool reply_valid(const json_t *reply) {
        const json_t *ok, *err;

        if (!json_is_object(reply))
                return false;
        ok = json_object_get(reply, "ok");
        if (json_is_true(ok))
                return json_object_get(reply, "data") != NULL;
        if (!json_is_false(ok))
                return false;
        err = json_object_get(reply, "error");
        return json_is_object(err) &&
               json_is_string(json_object_get(err, "code")) &&
               json_is_string(json_object_get(err, "message"));
}

int ctlproto_call(const char *socket_path, const char *verb, json_t *args,
                  uint64_t timeout_us, json_t **ret_reply) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *line = NULL, *reply_buf = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t line_len, reply_len = 0;
        uint64_t deadline;
        json_t *req, *reply, *v;
        json_error_t jerr;
        int r, send_r;

        if (!socket_path || !verb || !ret_reply || (args && !json_is_object(args)))
                return -EINVAL;
        if (socket_path[0] == '\0')
                return -EINVAL;
        if (strlen(socket_path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);

        deadline = UINT64_MAX;
        if (timeout_us > 0) {
                uint64_t now = mono_us();
                deadline = timeout_us > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + timeout_us;
        }

        /* json_string refuses invalid UTF-8, which no verb can contain. */
        v = json_string(verb);
        if (!v)
                return -EINVAL;
        req = json_object();
        if (!req || json_object_set_new(req, "verb", v) < 0 ||
            json_object_set_new(req, "args", args ? json_incref(args) : json_object()) < 0) {
                json_decref(req);
                return -ENOMEM;
        }
        line = ctlproto_dump(req, &line_len);
        json_decref(req);
        if (!line)
                return -ENOMEM;
        if (line_len - 1 > CTL_MAX_REQUEST)
                return -EMSGSIZE;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = connect_deadline(fd, &sa, deadline);
        if (r < 0)
                return r;

        /*
         * A server that refuses us (too many clients) writes its error and
         * closes without reading: a failed send is then not the end, the
         * explanation may already be waiting to be read.
         */
        send_r = send_all(fd, line, line_len, deadline);
        if (send_r < 0 && send_r != -EPIPE && send_r != -ECONNRESET)
                return send_r;

        r = recv_line(fd, deadline, &reply_buf, &reply_len);
        if (r < 0)
                return r;

        reply = json_loadb(reply_buf, reply_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!reply)
                return -EBADMSG;
        if (!reply_valid(reply)) {
                json_decref(reply);
                return -EBADMSG;
        }
        *ret_reply = reply;
        return 0;
}
