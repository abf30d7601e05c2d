/*
 * The control socket server, in-process: each test runs ctl_new() on its own
 * libev loop in a background thread with a small echoing handler, then talks
 * to it over the real Unix socket, as agentctl (ctlproto_call) or as a raw,
 * possibly misbehaving client. Permission cases fork children that drop to
 * nobody, with or without the admin group, before they connect.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/ctl.h"
#include "../unit/unit.h"

#define NOBODY     ((uid_t) 65534)
#define NOGROUP    ((gid_t) 65534)
#define ADMIN_GID  ((gid_t) 4242)
/* Generous: only reached when something is broken, or on a very loaded machine. */
#define TIMEOUT_US (30 * 1000 * 1000)

static char *tmpdir;

/* --- the server under test ------------------------------------------------ */

#define MAX_LATE 8

/* A request the handler answers later, from a timer or when the test says so. */
struct late {
        void *owner;                    /* the struct server or struct fake */
        ev_timer timer;
        bool used;
        uint64_t id;
        json_t *reply;
};

struct server {
        char path[108];
        struct ev_loop *loop;
        ev_async stop;
        struct ctl *ctl;
        pthread_t thread;

        pthread_mutex_t lock;           /* guards what the loop thread records */
        unsigned denied;
        uid_t denied_uid;
        bool denied_admin;
        char denied_verb[CTL_MAX_VERB + 1];
        unsigned handled;

        struct late late[MAX_LATE];     /* loop thread only */
        ev_async release;               /* answers every held request */
        unsigned held;                  /* requests waiting for release */
        unsigned late_replies;          /* ctl_reply() calls made */
        int last_reply_rc;              /* what the last one returned */
        unsigned handled_at_reply;      /* handled when it was made */
};

/*
 * Echoes what it was given, plus who asked. Test hooks in args: "pad" (a
 * string of that many bytes in the reply), "return_null", "set_admin_gid".
 * status also reports the server's counters, as the agent's does.
 */
/* Sends a late request's reply and records what ctl_reply() made of it. */
static void late_answer(struct server *s, struct late *l) {
        unsigned handled;
        int r;

        /* Before the reply: sending it takes up the requests queued behind it. */
        pthread_mutex_lock(&s->lock);
        handled = s->handled;
        pthread_mutex_unlock(&s->lock);
        ev_timer_stop(s->loop, &l->timer);
        r = ctl_reply(s->ctl, l->id, l->reply);
        pthread_mutex_lock(&s->lock);
        s->late_replies++;
        s->last_reply_rc = r;
        s->handled_at_reply = handled;
        pthread_mutex_unlock(&s->lock);
        l->reply = NULL;
        l->used = false;
}

static void late_timer_cb(struct ev_loop *loop _unused_, ev_timer *w, int revents _unused_) {
        struct late *l = w->data;

        late_answer(l->owner, l);
}

static void release_cb(struct ev_loop *loop _unused_, ev_async *w, int revents _unused_) {
        struct server *s = w->data;

        for (size_t i = 0; i < MAX_LATE; i++)
                if (s->late[i].used && !ev_is_active(&s->late[i].timer))
                        late_answer(s, &s->late[i]);
        pthread_mutex_lock(&s->lock);
        s->held = 0;
        pthread_mutex_unlock(&s->lock);
}

/*
 * "later_ms": answer from a timer that many ms from now; "hold": answer when
 * the test calls server_release(). The reply is prepared now, as the agent's
 * would be from what it learns meanwhile.
 */
static json_t *answer_later(struct server *s, const struct ctl_caller *caller, json_t *reply, json_t *args) {
        json_t *ms = json_object_get(args, "later_ms");
        struct late *l = NULL;

        for (size_t i = 0; i < MAX_LATE && !l; i++)
                if (!s->late[i].used)
                        l = &s->late[i];
        if (!l) {
                json_decref(reply);
                return ctlproto_error(CTL_ERR_INTERNAL, "test server: too many late requests");
        }
        l->used = true;
        l->owner = s;
        l->id = caller->request_id;
        l->reply = reply;
        /* "later_null": the late answer is NULL, which the client must see as an internal error. */
        if (json_is_true(json_object_get(args, "later_null"))) {
                json_decref(reply);
                l->reply = NULL;
        }
        ev_timer_init(&l->timer, late_timer_cb, json_is_integer(ms) ? (double) json_integer_value(ms) / 1e3 : 0., 0.);
        l->timer.data = l;
        if (json_is_integer(ms))
                ev_timer_start(s->loop, &l->timer);
        else {
                pthread_mutex_lock(&s->lock);
                s->held++;
                pthread_mutex_unlock(&s->lock);
        }
        return ctl_reply_later();
}

static json_t *handler(const struct ctl_caller *caller, const struct ctl_verb *verb, json_t *args, void *userdata) {
        struct server *s = userdata;
        json_t *data, *pad, *gid, *reply;

        pthread_mutex_lock(&s->lock);
        s->handled++;
        pthread_mutex_unlock(&s->lock);

        if (json_is_true(json_object_get(args, "return_null")))
                return NULL;
        gid = json_object_get(args, "set_admin_gid");
        if (json_is_integer(gid))
                ctl_set_admin_gid(s->ctl, (gid_t) json_integer_value(gid));

        data = json_pack("{s:s, s:O, s:b, s:I, s:I, s:I, s:b, s:I}", "verb", verb->name, "args", args,
                         "admin", caller->admin, "uid", (json_int_t) caller->uid, "gid", (json_int_t) caller->gid,
                         "pid", (json_int_t) caller->pid, "mutating", verb->mutating,
                         "request_id", (json_int_t) caller->request_id);
        if (!data)
                return NULL;
        pad = json_object_get(args, "pad");
        if (json_is_integer(pad)) {
                size_t n = (size_t) json_integer_value(pad);
                char *p = malloc(n + 1);
                if (!p) {
                        json_decref(data);
                        return NULL;
                }
                memset(p, 'x', n);
                p[n] = '\0';
                json_object_set_new(data, "pad", json_string(p));
                free(p);
        }
        if (strcmp(verb->name, "status") == 0) {
                struct ctl_stats st;
                ctl_get_stats(s->ctl, &st);
                json_object_set_new(data, "control",
                                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
                                              "clients", (json_int_t) st.clients,
                                              "accepted", (json_int_t) st.accepted,
                                              "refused_busy", (json_int_t) st.refused_busy,
                                              "bad_requests", (json_int_t) st.bad_requests,
                                              "denied", (json_int_t) st.denied,
                                              "timeouts", (json_int_t) st.timeouts));
        }
        reply = ctlproto_ok(data);
        if (reply && (json_is_integer(json_object_get(args, "later_ms")) ||
                      json_is_true(json_object_get(args, "hold"))))
                return answer_later(s, caller, reply, args);
        return reply;
}

static void denied_cb(const struct ctl_caller *caller, const struct ctl_verb *verb, void *userdata) {
        struct server *s = userdata;

        pthread_mutex_lock(&s->lock);
        s->denied++;
        s->denied_uid = caller->uid;
        s->denied_admin = caller->admin;
        snprintf(s->denied_verb, sizeof s->denied_verb, "%s", verb->name);
        pthread_mutex_unlock(&s->lock);
}

static void stop_cb(struct ev_loop *loop, ev_async *w _unused_, int revents _unused_) {
        ev_break(loop, EVBREAK_ALL);
}

static void *server_thread(void *arg) {
        struct server *s = arg;

        ev_run(s->loop, 0);
        return NULL;
}

static struct ctl_options default_opts(void) {
        return (struct ctl_options) {
                .socket_gid = geteuid() == 0 ? NOGROUP : (gid_t) -1,
                .admin_gid = ADMIN_GID,
                .max_clients = 16,
                .idle_timeout_us = 2 * 1000 * 1000,
        };
}

/* Starts a server at tmpdir/NAME; returns ctl_new's result. */
static int server_start(struct server *s, const char *name, const struct ctl_options *o) {
        struct ctl_options opts = o ? *o : default_opts();
        int r;

        memset(s, 0, sizeof *s);
        snprintf(s->path, sizeof s->path, "%s/%s", tmpdir, name);
        pthread_mutex_init(&s->lock, NULL);
        s->loop = ev_loop_new(EVFLAG_AUTO);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s->loop);
        opts.path = s->path;
        r = ctl_new(s->loop, &opts, handler, denied_cb, s, &s->ctl);
        if (r < 0) {
                ev_loop_destroy(s->loop);
                pthread_mutex_destroy(&s->lock);
                return r;
        }
        ev_async_init(&s->stop, stop_cb);
        ev_async_start(s->loop, &s->stop);
        ev_async_init(&s->release, release_cb);
        s->release.data = s;
        ev_async_start(s->loop, &s->release);
        CU_ASSERT_FATAL(pthread_create(&s->thread, NULL, server_thread, s) == 0);
        return 0;
}

static void server_stop(struct server *s) {
        ev_async_send(s->loop, &s->stop);
        pthread_join(s->thread, NULL);
        /* Requests never answered: the agent would answer them; here they are dropped. */
        for (size_t i = 0; i < MAX_LATE; i++)
                if (s->late[i].used) {
                        ev_timer_stop(s->loop, &s->late[i].timer);
                        json_decref(s->late[i].reply);
                }
        ctl_free(s->ctl);
        ev_loop_destroy(s->loop);
        pthread_mutex_destroy(&s->lock);
}

/* --- clients -------------------------------------------------------------- */

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void msleep(unsigned ms) {
        usleep(ms * 1000);
}

struct conn {
        int fd;
        char *buf;
        size_t len, cap;
};

static int conn_open(struct conn *c, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 30 };

        memset(c, 0, sizeof *c);
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -errno;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;
                close(c->fd);
                c->fd = -1;
                return r;
        }
        return 0;
}

static void conn_close(struct conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
}

/* Sends everything; stops quietly when the server has gone (EPIPE). */
static ssize_t conn_send(struct conn *c, const char *p, size_t len) {
        size_t off = 0;

        while (off < len) {
                ssize_t n = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return off > 0 ? (ssize_t) off : -errno;
                }
                off += (size_t) n;
        }
        return (ssize_t) off;
}

static ssize_t conn_sends(struct conn *c, const char *s) {
        return conn_send(c, s, strlen(s));
}

/* Next reply line without its newline (caller frees), or NULL on EOF/timeout. */
static char *conn_line(struct conn *c) {
        for (;;) {
                char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
                ssize_t n;

                if (nl) {
                        size_t l = (size_t) (nl - c->buf);
                        char *line = strndup(c->buf, l);
                        c->len -= l + 1;
                        memmove(c->buf, nl + 1, c->len);
                        return line;
                }
                if (c->cap - c->len < 65536) {
                        c->cap = c->cap ? c->cap * 2 : 65536;
                        c->buf = realloc(c->buf, c->cap);
                        if (!c->buf)
                                abort();
                }
                n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return NULL;
                c->len += (size_t) n;
        }
}

/* True when the server closed the connection and sent nothing more. */
static bool conn_eof(struct conn *c) {
        char b;
        ssize_t n;

        if (c->len > 0)
                return false;
        do
                n = recv(c->fd, &b, 1, 0);
        while (n < 0 && errno == EINTR);
        return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* A JSON string's value, or a marker that cannot equal any expected string. */
static const char *jstr(const json_t *j) {
        return json_is_string(j) ? json_string_value(j) : "(not a string)";
}

/* "ok" for a success reply, the error code otherwise, "?" when malformed. */
static const char *reply_code(const char *line, char buf[static 64]) {
        json_t *j = line ? json_loads(line, 0, NULL) : NULL;
        const char *code;

        snprintf(buf, 64, "?");
        if (json_is_true(json_object_get(j, "ok")))
                snprintf(buf, 64, "ok");
        else if ((code = json_string_value(json_object_get(json_object_get(j, "error"), "code"))))
                snprintf(buf, 64, "%s", code);
        json_decref(j);
        return buf;
}

#define ASSERT_CODE(line, want)                                                          \
        do {                                                                             \
                char _b[64];                                                             \
                const char *_l = (line);                                                 \
                if (strcmp(reply_code(_l, _b), (want)) != 0)                             \
                        fprintf(stderr, "\n%s:%d: reply %s, want %s\n", __FILE__,        \
                                __LINE__, _l ? _l : "(none)", (want));                   \
                CU_ASSERT_STRING_EQUAL(reply_code(_l, _b), (want));                      \
        } while (0)

/* The "data" member of a success reply line (caller decrefs), or NULL. */
static json_t *reply_data(const char *line) {
        json_t *j = line ? json_loads(line, 0, NULL) : NULL, *d = NULL;

        if (json_is_true(json_object_get(j, "ok")))
                d = json_incref(json_object_get(j, "data"));
        json_decref(j);
        return d;
}

/* One round trip through the real client; returns the reply's data or NULL. */
static json_t *call_data(const char *path, const char *verb, json_t *args) {
        json_t *reply = NULL, *d;
        int r = ctlproto_call(path, verb, args, TIMEOUT_US, &reply);

        CU_ASSERT_EQUAL(r, 0);
        if (r < 0)
                return NULL;
        d = json_is_true(json_object_get(reply, "ok")) ? json_incref(json_object_get(reply, "data")) : NULL;
        json_decref(reply);
        return d;
}

static json_int_t stat_of(const char *path, const char *name) {
        json_t *d = call_data(path, "status", NULL);
        json_int_t v = json_integer_value(json_object_get(json_object_get(d, "control"), name));

        json_decref(d);
        return v;
}

/* Polls the server's counter until it reaches WANT (the server sees closes asynchronously). */
static bool wait_stat(const char *path, const char *name, json_int_t want) {
        for (int i = 0; i < 200; i++) {
                if (stat_of(path, name) == want)
                        return true;
                msleep(10);
        }
        return false;
}

/* --- tests ---------------------------------------------------------------- */

static void test_every_verb(void) {
        struct server s;
        size_t n;
        const struct ctl_verb *verbs = ctlproto_verbs(&n);

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "verbs.sock", NULL), 0);
        for (size_t i = 0; i < n; i++) {
                json_t *args = json_pack("{s:s, s:i, s:[i,s]}", "which", verbs[i].name, "i", (int) i,
                                         "list", 1, "two");
                json_t *d, *reply = NULL;

                if (verbs[i].mutating && geteuid() != 0) {
                        /* Not root and not in ADMIN_GID: refused (run as root to see it served). */
                        CU_ASSERT_EQUAL(ctlproto_call(s.path, verbs[i].name, args, TIMEOUT_US, &reply), 0);
                        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(json_object_get(reply, "error"),
                                                                                 "code")),
                                               CTL_ERR_PERMISSION_DENIED);
                        json_decref(reply);
                        json_decref(args);
                        continue;
                }
                d = call_data(s.path, verbs[i].name, args);
                CU_ASSERT_PTR_NOT_NULL_FATAL(d);
                CU_ASSERT_STRING_EQUAL(jstr(json_object_get(d, "verb")), verbs[i].name);
                CU_ASSERT(json_equal(json_object_get(d, "args"), args));
                CU_ASSERT_EQUAL(json_is_true(json_object_get(d, "mutating")), verbs[i].mutating);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(d, "uid")), (json_int_t) geteuid());
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(d, "gid")), (json_int_t) getegid());
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(d, "pid")), (json_int_t) getpid());
                CU_ASSERT_EQUAL(json_is_true(json_object_get(d, "admin")), geteuid() == 0);
                json_decref(d);
                json_decref(args);
        }
        /* No args at all reaches the handler as {}. */
        {
                json_t *d = call_data(s.path, "version", NULL), *empty = json_object();
                CU_ASSERT(json_equal(json_object_get(d, "args"), empty));
                json_decref(d);
                json_decref(empty);
        }
        server_stop(&s);
        CU_ASSERT_EQUAL(s.handled, geteuid() == 0 ? n + 1 : n);
}

static const struct {
        const char *name;
        const char *line;       /* sent with a newline appended */
        const char *code;
} bad_cases[] = {
        { "truncated JSON", "{\"verb\":", CTL_ERR_BAD_JSON },
        { "not JSON", "status", CTL_ERR_BAD_JSON },
        { "duplicate key", "{\"verb\":\"status\",\"verb\":\"status\"}", CTL_ERR_BAD_JSON },
        { "array", "[1,2]", CTL_ERR_BAD_REQUEST },
        { "string", "\"status\"", CTL_ERR_BAD_REQUEST },
        { "missing verb", "{\"args\":{}}", CTL_ERR_BAD_REQUEST },
        { "args not object", "{\"verb\":\"status\",\"args\":5}", CTL_ERR_BAD_REQUEST },
        { "extra key", "{\"verb\":\"status\",\"x\":1}", CTL_ERR_BAD_REQUEST },
        { "unknown verb", "{\"verb\":\"nope\"}", CTL_ERR_UNKNOWN_VERB },
        { "handler returned NULL", "{\"verb\":\"version\",\"args\":{\"return_null\":true}}", CTL_ERR_INTERNAL },
        { "good after all that", "{\"verb\":\"version\"}", "ok" },
};

/* Bad requests get an error each and the connection goes on serving. */
static void test_bad_requests(void) {
        struct server s;
        struct conn c;
        char *line;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "bad.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                char buf[256];
                snprintf(buf, sizeof buf, "%s\n", bad_cases[i].line);
                conn_sends(&c, buf);
                line = conn_line(&c);
                if (!line)
                        fprintf(stderr, "\ncase \"%s\": no reply\n", bad_cases[i].name);
                ASSERT_CODE(line, bad_cases[i].code);
                free(line);
        }
        /* A raw NUL inside a line is bad JSON, not a truncated request. */
        conn_send(&c, "{\"verb\":\"status\"}\0\n", 19);
        line = conn_line(&c);
        ASSERT_CODE(line, CTL_ERR_BAD_JSON);
        free(line);
        /* Blank lines get no reply: the next reply answers the next request. */
        conn_sends(&c, "\n\r\n  \n{\"verb\":\"status\"}\n");
        line = conn_line(&c);
        ASSERT_CODE(line, "ok");
        free(line);
        conn_close(&c);

        /* 9 parse errors + the NUL, per the server's own count; handler errors are not bad requests. */
        CU_ASSERT_EQUAL(stat_of(s.path, "bad_requests"), 10);
        server_stop(&s);
}

static char *padded_request(size_t len) {
        const char *req = "{\"verb\":\"version\"}";
        char *buf = malloc(len + 2);

        if (!buf)
                abort();
        memset(buf, ' ', len);
        memcpy(buf, req, strlen(req));
        buf[len] = '\n';
        buf[len + 1] = '\0';
        return buf;
}

/* Over the limit: too_large, then the connection closes; everyone else is still served. */
static void test_oversized(void) {
        struct server s;
        struct conn a, b, c;
        char *big, *line;
        size_t n = 70000;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "big.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&b, s.path), 0);

        /* A request of exactly the limit is fine. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        big = padded_request(CTL_MAX_REQUEST);
        CU_ASSERT_EQUAL(conn_sends(&c, big), CTL_MAX_REQUEST + 1);
        line = conn_line(&c);
        ASSERT_CODE(line, "ok");
        free(line);
        free(big);

        /* One byte more is not, even with the newline following. */
        big = padded_request(CTL_MAX_REQUEST + 1);
        conn_sends(&c, big);
        line = conn_line(&c);
        ASSERT_CODE(line, CTL_ERR_TOO_LARGE);
        free(line);
        CU_ASSERT(conn_eof(&c));
        conn_close(&c);
        free(big);

        /* A long line without any newline is cut off once it passes the limit. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&a, s.path), 0);
        big = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 'a', n);
        memcpy(big, "{\"verb\":\"status\",\"args\":{\"pad\":\"", 33);
        conn_send(&a, big, n);
        line = conn_line(&a);
        ASSERT_CODE(line, CTL_ERR_TOO_LARGE);
        CU_ASSERT(line && strstr(line, "65536 bytes"));
        free(line);
        CU_ASSERT(conn_eof(&a));
        conn_close(&a);
        free(big);

        /* The other client, connected all along, is served. */
        conn_sends(&b, "{\"verb\":\"version\"}\n");
        line = conn_line(&b);
        ASSERT_CODE(line, "ok");
        free(line);
        conn_close(&b);

        CU_ASSERT_EQUAL(stat_of(s.path, "bad_requests"), 2);
        server_stop(&s);
}

/* A reply too large for any client becomes an internal error instead. */
static void test_reply_too_large(void) {
        struct server s;
        json_t *args = json_pack("{s:I}", "pad", (json_int_t) CTL_MAX_REPLY + 1), *reply = NULL;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "hugereply.sock", NULL), 0);
        CU_ASSERT_EQUAL(ctlproto_call(s.path, "version", args, TIMEOUT_US, &reply), 0);
        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(json_object_get(reply, "error"), "code")),
                               CTL_ERR_INTERNAL);
        json_decref(reply);
        json_decref(args);
        server_stop(&s);
}

/* A silent client is told "timeout" and dropped; others are served meanwhile. */
static void test_idle_timeout(void) {
        struct ctl_options o = default_opts();
        struct server s;
        struct conn a, slow, b;
        uint64_t t0, dt;
        char *line;

        o.idle_timeout_us = 300 * 1000;
        CU_ASSERT_EQUAL_FATAL(server_start(&s, "idle.sock", &o), 0);
        t0 = now_us();
        CU_ASSERT_EQUAL_FATAL(conn_open(&a, s.path), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&slow, s.path), 0);
        conn_sends(&slow, "{\"verb\":");

        /* Served at once while a and slow sit there. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&b, s.path), 0);
        conn_sends(&b, "{\"verb\":\"version\"}\n");
        line = conn_line(&b);
        ASSERT_CODE(line, "ok");
        free(line);
        /* ... and a has not been answered yet: b did not wait for a's timeout. */
        {
                char ch;
                CU_ASSERT_EQUAL(recv(a.fd, &ch, 1, MSG_DONTWAIT), -1);
                CU_ASSERT_EQUAL(errno, EAGAIN);
        }

        /* Trickling bytes is not progress: only complete requests are. */
        for (int i = 0; i < 4; i++) {
                msleep(50);
                conn_sends(&slow, " ");
        }

        line = conn_line(&a);
        dt = now_us() - t0;
        ASSERT_CODE(line, CTL_ERR_TIMEOUT);
        free(line);
        CU_ASSERT(dt >= 280 * 1000);
        CU_ASSERT(dt < 10 * 1000 * 1000);
        CU_ASSERT(conn_eof(&a));

        line = conn_line(&slow);
        ASSERT_CODE(line, CTL_ERR_TIMEOUT);
        free(line);
        CU_ASSERT(conn_eof(&slow));

        /* b completed a request, so its clock restarted then; it times out later. */
        line = conn_line(&b);
        ASSERT_CODE(line, CTL_ERR_TIMEOUT);
        free(line);
        CU_ASSERT(conn_eof(&b));

        conn_close(&a);
        conn_close(&slow);
        conn_close(&b);
        CU_ASSERT_EQUAL(stat_of(s.path, "timeouts"), 3);
        server_stop(&s);
}

/* Over max_clients: a one-line refusal; a freed slot is usable again. */
static void test_too_many_clients(void) {
        struct ctl_options o = default_opts();
        struct server s;
        struct conn c[4], extra;
        json_t *reply = NULL;
        char *line;
        bool served = false;

        o.max_clients = 4;
        CU_ASSERT_EQUAL_FATAL(server_start(&s, "busy.sock", &o), 0);
        for (int i = 0; i < 4; i++) {
                CU_ASSERT_EQUAL_FATAL(conn_open(&c[i], s.path), 0);
                conn_sends(&c[i], "{\"verb\":\"version\"}\n");
                line = conn_line(&c[i]);
                ASSERT_CODE(line, "ok");
                free(line);
        }

        CU_ASSERT_EQUAL_FATAL(conn_open(&extra, s.path), 0);
        line = conn_line(&extra);
        ASSERT_CODE(line, CTL_ERR_TOO_MANY_CLIENTS);
        free(line);
        CU_ASSERT(conn_eof(&extra));
        conn_close(&extra);

        /* agentctl's view of the same: a reply, with the error code. */
        CU_ASSERT_EQUAL(ctlproto_call(s.path, "status", NULL, TIMEOUT_US, &reply), 0);
        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(json_object_get(reply, "error"), "code")),
                               CTL_ERR_TOO_MANY_CLIENTS);
        json_decref(reply);

        /* The four are still served. */
        for (int i = 0; i < 4; i++) {
                conn_sends(&c[i], "{\"verb\":\"status\"}\n");
                line = conn_line(&c[i]);
                ASSERT_CODE(line, "ok");
                free(line);
        }

        conn_close(&c[0]);
        for (int i = 0; i < 200 && !served; i++) {
                reply = NULL;
                if (ctlproto_call(s.path, "version", NULL, TIMEOUT_US, &reply) == 0 &&
                    json_is_true(json_object_get(reply, "ok")))
                        served = true;
                else
                        msleep(10);
                json_decref(reply);
        }
        CU_ASSERT(served);
        for (int i = 1; i < 4; i++)
                conn_close(&c[i]);
        CU_ASSERT(wait_stat(s.path, "clients", 1));
        CU_ASSERT(stat_of(s.path, "refused_busy") >= 2);
        server_stop(&s);
}

/* Requests written together are answered one by one, in order. */
static void test_pipelined(void) {
        struct server s;
        struct conn c;
        char *buf, *line;
        size_t off = 0;
        const int many = 500;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "pipe.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"n\":1}}\n"
                       "{\"verb\":\"nope\"}\n"
                       "{\"verb\":\"status\",\"args\":{\"n\":2}}\n"
                       "{\"verb\":\"events\",\"args\":{\"n\":3}}\n");
        for (int i = 0; i < 4; i++) {
                json_t *d;
                line = conn_line(&c);
                CU_ASSERT_PTR_NOT_NULL_FATAL(line);
                if (i == 1) {
                        ASSERT_CODE(line, CTL_ERR_UNKNOWN_VERB);
                } else {
                        d = reply_data(line);
                        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(d, "args"), "n")),
                                        i == 0 ? 1 : i);
                        json_decref(d);
                }
                free(line);
        }

        buf = malloc((size_t) many * 64);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        for (int i = 0; i < many; i++)
                off += (size_t) sprintf(buf + off, "{\"verb\":\"version\",\"args\":{\"n\":%d}}\n", i);
        CU_ASSERT_EQUAL(conn_send(&c, buf, off), (ssize_t) off);
        for (int i = 0; i < many; i++) {
                json_t *d;
                line = conn_line(&c);
                d = reply_data(line);
                if (json_integer_value(json_object_get(json_object_get(d, "args"), "n")) != i) {
                        CU_FAIL("pipelined reply out of order");
                        json_decref(d);
                        free(line);
                        break;
                }
                json_decref(d);
                free(line);
        }
        free(buf);
        conn_close(&c);
        server_stop(&s);
}

/* A request dribbled one byte per write, and two requests split mid-way. */
static void test_split_writes(void) {
        const char *req = "{\"verb\":\"events\",\"args\":{\"limit\":5}}\n";
        const char *two = "{\"verb\":\"version\"}\n{\"verb\":\"status\"}\n";
        struct server s;
        struct conn c;
        json_t *d;
        char *line;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "split.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        for (size_t i = 0; req[i]; i++) {
                conn_send(&c, req + i, 1);
                usleep(500);
        }
        line = conn_line(&c);
        d = reply_data(line);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(d, "args"), "limit")), 5);
        json_decref(d);
        free(line);

        conn_send(&c, two, 10);
        usleep(20000);
        conn_send(&c, two + 10, 15);
        usleep(20000);
        conn_sends(&c, two + 25);
        line = conn_line(&c);
        d = reply_data(line);
        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(d, "verb")), "version");
        json_decref(d);
        free(line);
        line = conn_line(&c);
        d = reply_data(line);
        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(d, "verb")), "status");
        json_decref(d);
        free(line);
        conn_close(&c);
        server_stop(&s);
}

/* Clients vanishing at awkward moments cost the server nothing. */
static void test_disconnects(void) {
        struct server s;
        struct conn c;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "gone.sock", NULL), 0);

        /* Mid-request. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"sta");
        conn_close(&c);

        /* A request, then gone before the (large) reply is written. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"pad\":1000000}}\n");
        conn_close(&c);

        /* Half-closed: the replies to what was sent still arrive, then EOF. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\"}\n{\"verb\":\"status\"}\n{\"verb\":\"ver");
        shutdown(c.fd, SHUT_WR);
        for (int i = 0; i < 2; i++) {
                char *line = conn_line(&c);
                ASSERT_CODE(line, "ok");
                free(line);
        }
        CU_ASSERT(conn_eof(&c));
        conn_close(&c);

        /* Still serving, and every connection above is gone. */
        CU_ASSERT(wait_stat(s.path, "clients", 1));
        server_stop(&s);
}

/*
 * A client that sends but never reads can make the server hold one reply and
 * one request's worth of input, no more: the server stops reading, so the
 * client's own writes block. Then everything is answered, in order.
 */
static void test_backlog_capped(void) {
        struct server s;
        struct conn c;
        char req[16 * 1024];
        size_t req_len, total = 0, rest = 0, got = 0;
        unsigned sent = 0, replies = 0;
        int n;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "backlog.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        n = snprintf(req, sizeof req, "{\"verb\":\"version\",\"args\":{\"pad\":262144,\"junk\":\"");
        memset(req + n, 'j', sizeof req - (size_t) n - 5);
        memcpy(req + sizeof req - 5, "\"}}\n", 5);
        req_len = strlen(req);

        for (;;) {
                ssize_t w = send(c.fd, req, req_len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w < 0) {
                        CU_ASSERT_EQUAL_FATAL(errno, EAGAIN);
                        break;
                }
                total += (size_t) w;
                sent++;
                if ((size_t) w < req_len) {
                        rest = req_len - (size_t) w;
                        break;
                }
                if (total > 64 * 1024 * 1024)
                        break;
        }
        /* Socket buffers and one request's input, far below what was asked for. */
        CU_ASSERT(total < 2 * 1024 * 1024);

        while (replies < sent) {
                struct pollfd p = { .fd = c.fd, .events = POLLIN | (rest ? POLLOUT : 0) };
                char buf[65536];
                ssize_t r;

                CU_ASSERT_FATAL(poll(&p, 1, 5000) > 0);
                if (rest && (p.revents & POLLOUT)) {
                        ssize_t w = send(c.fd, req + req_len - rest, rest, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (w > 0)
                                rest -= (size_t) w;
                }
                if (p.revents & POLLIN) {
                        r = recv(c.fd, buf, sizeof buf, 0);
                        CU_ASSERT_FATAL(r > 0);
                        for (ssize_t i = 0; i < r; i++)
                                if (buf[i] == '\n')
                                        replies++;
                        got += (size_t) r;
                }
        }
        CU_ASSERT_EQUAL(replies, sent);
        CU_ASSERT(got > (size_t) sent * 262144);
        conn_close(&c);
        server_stop(&s);
}

/* --- late replies --------------------------------------------------------- */

/* Reads one of the server's counters (guarded by its lock). */
static unsigned server_count(struct server *s, const unsigned *field) {
        unsigned v;

        pthread_mutex_lock(&s->lock);
        v = *field;
        pthread_mutex_unlock(&s->lock);
        return v;
}

/* Polls until *FIELD reaches WANT: the server thread gets there on its own time. */
static bool wait_count(struct server *s, const unsigned *field, unsigned want) {
        for (int i = 0; i < 3000; i++) {
                if (server_count(s, field) == want)
                        return true;
                msleep(10);
        }
        return false;
}

/* Answers every held request, from the loop thread, as the agent would. */
static void server_release(struct server *s) {
        ev_async_send(s->loop, &s->release);
}

static json_int_t data_int(const json_t *d, const char *key) {
        return json_integer_value(json_object_get(d, key));
}

static json_int_t args_n(const json_t *d) {
        return json_integer_value(json_object_get(json_object_get(d, "args"), "n"));
}

/* Nothing has arrived for C yet. */
static bool conn_quiet(struct conn *c) {
        char ch;

        if (c->len > 0)
                return false;
        return recv(c->fd, &ch, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

/*
 * A request answered late holds back the requests pipelined behind it: they
 * are not even handed to the handler until the late reply is out, and then
 * come in order. Other clients are served meanwhile. Request ids start at 1
 * and never repeat.
 */
static void test_late_pipelined(void) {
        struct server s;
        struct conn c;
        json_t *d;
        char *line;
        json_int_t prev_id = 0;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "late.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"hold\":true,\"n\":1}}\n"
                       "{\"verb\":\"version\",\"args\":{\"n\":2}}\n"
                       "{\"verb\":\"status\",\"args\":{\"n\":3}}\n");
        CU_ASSERT_FATAL(wait_count(&s, &s.held, 1));

        /* Another client is not held up by it. */
        d = call_data(s.path, "version", NULL);
        CU_ASSERT_PTR_NOT_NULL(d);
        CU_ASSERT_EQUAL(data_int(d, "request_id"), 2);
        json_decref(d);
        CU_ASSERT(conn_quiet(&c));
        CU_ASSERT_EQUAL(server_count(&s, &s.handled), 2);

        server_release(&s);
        for (int i = 1; i <= 3; i++) {
                line = conn_line(&c);
                ASSERT_CODE(line, "ok");
                d = reply_data(line);
                CU_ASSERT_EQUAL(args_n(d), i);
                CU_ASSERT(data_int(d, "request_id") > prev_id);
                if (i == 1)
                        CU_ASSERT_EQUAL(data_int(d, "request_id"), 1);
                prev_id = data_int(d, "request_id");
                json_decref(d);
                free(line);
        }
        /* The replies may be read before the server thread has noted sending them. */
        CU_ASSERT(wait_count(&s, &s.late_replies, 1));
        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.last_reply_rc, 0);
        /* The late request and the other client's, never the two queued behind it. */
        CU_ASSERT_EQUAL(s.handled_at_reply, 2);
        pthread_mutex_unlock(&s.lock);

        /* The connection goes on as before. */
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"n\":4}}\n");
        line = conn_line(&c);
        d = reply_data(line);
        CU_ASSERT_EQUAL(args_n(d), 4);
        json_decref(d);
        free(line);
        conn_close(&c);
        server_stop(&s);
}

/* The same, answered from an ev_timer in the loop, as a network round trip would be. */
static void test_late_timer(void) {
        struct server s;
        struct conn c;
        json_t *d;
        char *line;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "latetimer.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"later_ms\":200,\"n\":1}}\n"
                       "{\"verb\":\"version\",\"args\":{\"later_ms\":0,\"n\":2}}\n"
                       "{\"verb\":\"events\",\"args\":{\"n\":3}}\n"
                       "{\"verb\":\"version\",\"args\":{\"later_ms\":0,\"later_null\":true}}\n");
        for (int i = 1; i <= 3; i++) {
                line = conn_line(&c);
                ASSERT_CODE(line, "ok");
                d = reply_data(line);
                CU_ASSERT_EQUAL(args_n(d), i);
                CU_ASSERT_EQUAL(data_int(d, "request_id"), i);
                json_decref(d);
                free(line);
        }
        /* The replies may be read before the server thread has noted sending them. */
        line = conn_line(&c);
        ASSERT_CODE(line, CTL_ERR_INTERNAL);
        free(line);
        CU_ASSERT(wait_count(&s, &s.late_replies, 3));
        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.last_reply_rc, 0);
        pthread_mutex_unlock(&s.lock);
        conn_close(&c);
        server_stop(&s);
}

/*
 * A client that hangs up while its request waits: the reply finds nobody
 * (-ENOENT, and is freed: ASan would see a leak), nothing crashes, and the
 * server goes on. A client that only half-closed still gets its answer.
 */
static void test_late_disconnect(void) {
        struct server s;
        struct conn c;
        char *line;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "lategone.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"hold\":true,\"pad\":100000}}\n"
                       "{\"verb\":\"version\"}\n");
        CU_ASSERT_FATAL(wait_count(&s, &s.held, 1));
        conn_close(&c);
        /* Only the connection asking for the count is left. */
        CU_ASSERT(wait_stat(s.path, "clients", 1));
        server_release(&s);
        CU_ASSERT_FATAL(wait_count(&s, &s.late_replies, 1));
        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.last_reply_rc, -ENOENT);
        pthread_mutex_unlock(&s.lock);

        /* Half-closed: not gone, it is waiting for its replies. */
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"hold\":true}}\n{\"verb\":\"status\"}\n");
        shutdown(c.fd, SHUT_WR);
        CU_ASSERT_FATAL(wait_count(&s, &s.held, 1));
        /* Give the server every chance to see the EOF before the reply goes. */
        CU_ASSERT(wait_stat(s.path, "clients", 2));
        msleep(50);
        server_release(&s);
        for (int i = 0; i < 2; i++) {
                line = conn_line(&c);
                ASSERT_CODE(line, "ok");
                free(line);
        }
        CU_ASSERT(conn_eof(&c));
        conn_close(&c);
        CU_ASSERT(wait_count(&s, &s.late_replies, 2));
        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.last_reply_rc, 0);
        pthread_mutex_unlock(&s.lock);

        CU_ASSERT(wait_stat(s.path, "clients", 1));
        CU_ASSERT_EQUAL(ctl_reply(NULL, 1, json_object()), -EINVAL);
        server_stop(&s);
}

/*
 * The idle clock stops while the handler owns the request: a reply later
 * than the idle timeout is still delivered. The clock restarts with it.
 */
static void test_late_no_idle_timeout(void) {
        struct ctl_options o = default_opts();
        struct server s;
        struct conn c;
        char *line;

        o.idle_timeout_us = 200 * 1000;
        CU_ASSERT_EQUAL_FATAL(server_start(&s, "lateidle.sock", &o), 0);
        CU_ASSERT_EQUAL_FATAL(conn_open(&c, s.path), 0);
        conn_sends(&c, "{\"verb\":\"version\",\"args\":{\"later_ms\":1200}}\n");
        line = conn_line(&c);
        ASSERT_CODE(line, "ok");
        free(line);
        /* Then, with nothing more asked, the usual timeout. */
        line = conn_line(&c);
        ASSERT_CODE(line, CTL_ERR_TIMEOUT);
        free(line);
        CU_ASSERT(conn_eof(&c));
        conn_close(&c);
        CU_ASSERT_EQUAL(stat_of(s.path, "timeouts"), 1);
        server_stop(&s);
}

static void test_socket_file(void) {
        struct server s;
        struct stat st;

        CU_ASSERT_EQUAL_FATAL(server_start(&s, "mode.sock", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(lstat(s.path, &st), 0);
        CU_ASSERT(S_ISSOCK(st.st_mode));
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0660);
        if (geteuid() == 0)
                CU_ASSERT_EQUAL(st.st_gid, NOGROUP);
        server_stop(&s);
        /* Gone with the server. */
        CU_ASSERT_EQUAL(lstat(s.path, &st), -1);
        CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_stale_and_live(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct ctl_options o = default_opts();
        struct server s, t;
        struct ctl *c = NULL;
        struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
        char path[108], longpath[200];
        json_t *d;
        int fd;

        /* What a crashed agent leaves: a socket file nobody listens on. */
        snprintf(path, sizeof path, "%s/stale.sock", tmpdir);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0);
        close(fd);
        CU_ASSERT_EQUAL_FATAL(server_start(&s, "stale.sock", NULL), 0);
        d = call_data(s.path, "version", NULL);
        CU_ASSERT_PTR_NOT_NULL(d);
        json_decref(d);

        /* A live one is not taken over, and keeps working. */
        o.path = s.path;
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -EADDRINUSE);
        CU_ASSERT_PTR_NULL(c);
        d = call_data(s.path, "version", NULL);
        CU_ASSERT_PTR_NOT_NULL(d);
        json_decref(d);

        /*
         * Replaced under our feet (socket unlinked, another server at the same
         * path): stopping the first server must not remove the second's file.
         */
        CU_ASSERT_EQUAL(unlink(s.path), 0);
        CU_ASSERT_EQUAL_FATAL(server_start(&t, "stale.sock", NULL), 0);
        server_stop(&s);
        d = call_data(t.path, "version", NULL);
        CU_ASSERT_PTR_NOT_NULL(d);
        json_decref(d);
        server_stop(&t);
        CU_ASSERT_EQUAL(access(path, F_OK), -1);

        /* Somebody's regular file is never deleted. */
        snprintf(path, sizeof path, "%s/file", tmpdir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        o.path = path;
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -EEXIST);
        CU_ASSERT_EQUAL(access(path, F_OK), 0);
        unlink(path);

        memset(longpath, 'x', sizeof longpath - 1);
        longpath[0] = '/';
        longpath[sizeof longpath - 1] = '\0';
        o.path = longpath;
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -ENAMETOOLONG);
        o.path = "";
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -EINVAL);
        snprintf(path, sizeof path, "%s/x.sock", tmpdir);
        o.path = path;
        o.max_request = CTL_MAX_REQUEST + 1;
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -EINVAL);
        o.max_request = 0;
        CU_ASSERT_EQUAL(ctl_new(loop, &o, NULL, NULL, NULL, &c), -EINVAL);
        snprintf(path, sizeof path, "%s/no/such/dir.sock", tmpdir);
        CU_ASSERT_EQUAL(ctl_new(loop, &o, handler, NULL, NULL, &c), -ENOENT);
        CU_ASSERT_PTR_NULL(c);
        ctl_free(NULL);
        ev_loop_destroy(loop);
}

/* --- permissions (root only) ---------------------------------------------- */

/*
 * Runs REQUESTS (newline-separated, one reply each) as nobody with the given
 * primary and supplementary groups, from a forked child, and returns the
 * reply lines it saw, joined by newlines (caller frees).
 */
static char *run_as(const char *path, gid_t gid, const gid_t *groups, size_t n_groups, const char *requests,
                    unsigned n_replies) {
        int pfd[2], status;
        char *out = NULL;
        size_t len = 0;
        pid_t pid;

        CU_ASSERT_FATAL(pipe2(pfd, O_CLOEXEC) == 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                struct conn c;
                close(pfd[0]);
                if (setgroups(n_groups, groups) < 0 || setgid(gid) < 0 || setuid(NOBODY) < 0)
                        _exit(3);
                if (conn_open(&c, path) < 0)
                        _exit(4);
                if (conn_sends(&c, requests) < 0)
                        _exit(5);
                for (unsigned i = 0; i < n_replies; i++) {
                        char *line = conn_line(&c);
                        if (!line)
                                _exit(6);
                        if (write(pfd[1], line, strlen(line)) < 0 || write(pfd[1], "\n", 1) < 0)
                                _exit(7);
                        free(line);
                }
                _exit(0);
        }
        close(pfd[1]);
        for (;;) {
                char buf[4096];
                ssize_t n = read(pfd[0], buf, sizeof buf);
                if (n <= 0)
                        break;
                out = realloc(out, len + (size_t) n + 1);
                memcpy(out + len, buf, (size_t) n);
                len += (size_t) n;
                out[len] = '\0';
        }
        close(pfd[0]);
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "\nchild as nobody failed: status %d\n", status);
        return out ? out : strdup("");
}

static char *nth_line(const char *all, unsigned n) {
        const char *p = all;

        for (unsigned i = 0; i < n && p; i++) {
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return p ? strndup(p, strcspn(p, "\n")) : NULL;
}

static void test_permissions(void) {
        const char *reqs = "{\"verb\":\"reload\"}\n{\"verb\":\"status\"}\n";
        const gid_t admin[] = { ADMIN_GID }, nogroup[] = { NOGROUP };
        struct server s;
        char *out, *l;
        json_t *d, *args;

        CU_ASSERT_FATAL(chmod(tmpdir, 0711) == 0);
        CU_ASSERT_EQUAL_FATAL(server_start(&s, "perm.sock", NULL), 0);

        /* nobody, no admin group: reload refused, status served. */
        out = run_as(s.path, NOGROUP, NULL, 0, reqs, 2);
        l = nth_line(out, 0);
        ASSERT_CODE(l, CTL_ERR_PERMISSION_DENIED);
        CU_ASSERT(l && strstr(l, "reload"));
        free(l);
        l = nth_line(out, 1);
        d = reply_data(l);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(d, "uid")), NOBODY);
        CU_ASSERT_EQUAL(json_is_false(json_object_get(d, "admin")), true);
        json_decref(d);
        free(l);
        free(out);
        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.denied, 1);
        CU_ASSERT_EQUAL(s.denied_uid, NOBODY);
        CU_ASSERT_EQUAL(s.denied_admin, false);
        CU_ASSERT_STRING_EQUAL(s.denied_verb, "reload");
        CU_ASSERT_EQUAL(s.handled, 1);       /* the status, never the reload */
        pthread_mutex_unlock(&s.lock);

        /* Admin through a supplementary group. */
        out = run_as(s.path, NOGROUP, admin, 1, reqs, 2);
        l = nth_line(out, 0);
        ASSERT_CODE(l, "ok");
        d = reply_data(l);
        CU_ASSERT_STRING_EQUAL(jstr(json_object_get(d, "verb")), "reload");
        CU_ASSERT(json_is_true(json_object_get(d, "admin")));
        json_decref(d);
        free(l);
        free(out);

        /* Admin through the primary group (the socket's group supplementary). */
        out = run_as(s.path, ADMIN_GID, nogroup, 1, reqs, 2);
        l = nth_line(out, 0);
        ASSERT_CODE(l, "ok");
        free(l);
        free(out);

        /* A new admin group applies from the next request on. */
        args = json_pack("{s:i}", "set_admin_gid", (int) ADMIN_GID + 1);
        d = call_data(s.path, "version", args);
        json_decref(d);
        json_decref(args);
        out = run_as(s.path, NOGROUP, admin, 1, reqs, 2);
        l = nth_line(out, 0);
        ASSERT_CODE(l, CTL_ERR_PERMISSION_DENIED);
        free(l);
        free(out);
        args = json_pack("{s:i}", "set_admin_gid", -1);
        d = call_data(s.path, "version", args);
        json_decref(d);
        json_decref(args);
        out = run_as(s.path, ADMIN_GID, nogroup, 1, reqs, 2);
        l = nth_line(out, 0);
        ASSERT_CODE(l, CTL_ERR_PERMISSION_DENIED);
        free(l);
        free(out);

        /* Root is admin whatever the group. */
        d = call_data(s.path, "reload", NULL);
        CU_ASSERT(json_is_true(json_object_get(d, "admin")));
        json_decref(d);

        pthread_mutex_lock(&s.lock);
        CU_ASSERT_EQUAL(s.denied, 3);
        pthread_mutex_unlock(&s.lock);
        CU_ASSERT_EQUAL(stat_of(s.path, "denied"), 3);
        server_stop(&s);
        chmod(tmpdir, 0700);
}

/* --- a fake agent for agentctl's tests ------------------------------------ */

/*
 * `test_ctl --fake-agent SOCKET SCRIPT` serves canned replies on SOCKET
 * until SIGTERM, through the real ctl server, so tests/integ/agentctl.sh can
 * check agentctl's output for replies the real agent cannot produce on one
 * node (a published balancer table, a drain). SCRIPT is a JSON object: verb
 * -> list of {"args": {...}, "reply": {...}, "later_ms": N?}; the first case
 * whose args equal the request's exactly answers it (after later_ms, through
 * ctl_reply_later), so wrong arguments from agentctl show as an error.
 */
struct fake {
        struct ev_loop *loop;
        struct ctl *ctl;
        json_t *script;
        struct late late[MAX_LATE];
};

static void fake_timer_cb(struct ev_loop *loop _unused_, ev_timer *w, int revents _unused_) {
        struct late *l = w->data;
        struct fake *f = l->owner;

        if (ctl_reply(f->ctl, l->id, l->reply) < 0)
                fprintf(stderr, "fake agent: client %" PRIu64 " gone before its late reply\n", l->id);
        l->reply = NULL;
        l->used = false;
}

static json_t *fake_handler(const struct ctl_caller *caller, const struct ctl_verb *verb, json_t *args,
                            void *userdata) {
        struct fake *f = userdata;
        const json_t *cases = json_object_get(f->script, verb->name), *c;
        char *text;
        json_t *e;
        size_t i;

        json_array_foreach(cases, i, c) {
                const json_t *want = json_object_get(c, "args"), *ms = json_object_get(c, "later_ms");
                json_t *reply = json_deep_copy(json_object_get(c, "reply"));
                struct late *l = NULL;

                /* No "args" in the case: the request must have none. */
                if (want ? !json_equal(want, args) : json_object_size(args) > 0) {
                        json_decref(reply);
                        continue;
                }
                if (!json_is_integer(ms))
                        return reply;
                for (size_t k = 0; k < MAX_LATE && !l; k++)
                        if (!f->late[k].used)
                                l = &f->late[k];
                if (!l) {
                        json_decref(reply);
                        return NULL;
                }
                l->used = true;
                l->owner = f;
                l->id = caller->request_id;
                l->reply = reply;
                ev_timer_init(&l->timer, fake_timer_cb, (double) json_integer_value(ms) / 1e3, 0.);
                l->timer.data = l;
                ev_timer_start(f->loop, &l->timer);
                return ctl_reply_later();
        }
        text = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
        e = ctlproto_error(CTL_ERR_INVALID_ARGUMENT, "fake agent: no case for %s %s", verb->name,
                           text ? text : "?");
        free(text);
        return e;
}

static void fake_signal_cb(struct ev_loop *loop, ev_signal *w _unused_, int revents _unused_) {
        ev_break(loop, EVBREAK_ALL);
}

static int fake_agent(const char *path, const char *script_path) {
        struct ctl_options o = {
                .path = path,
                .socket_gid = (gid_t) -1,
                .admin_gid = getegid(),         /* whoever runs the test may drain */
        };
        struct fake f = { .loop = ev_default_loop(0) };
        json_error_t jerr;
        ev_signal term, intr;
        int r;

        f.script = json_load_file(script_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(f.script)) {
                fprintf(stderr, "fake agent: %s:%d: %s\n", script_path, jerr.line, jerr.text);
                return 1;
        }
        r = ctl_new(f.loop, &o, fake_handler, NULL, &f, &f.ctl);
        if (r < 0) {
                fprintf(stderr, "fake agent: %s: %s\n", path, strerror(-r));
                json_decref(f.script);
                return 1;
        }
        ev_signal_init(&term, fake_signal_cb, SIGTERM);
        ev_signal_start(f.loop, &term);
        ev_signal_init(&intr, fake_signal_cb, SIGINT);
        ev_signal_start(f.loop, &intr);
        ev_run(f.loop, 0);
        for (size_t k = 0; k < MAX_LATE; k++)
                if (f.late[k].used) {
                        ev_timer_stop(f.loop, &f.late[k].timer);
                        json_decref(f.late[k].reply);
                }
        ctl_free(f.ctl);
        json_decref(f.script);
        return 0;
}

static int suite_init(void) {
        tmpdir = unit_tmpdir();
        return 0;
}

static int suite_clean(void) {
        char cmd[512];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        free(tmpdir);
        return 0;
}

int main(int argc, char **argv) {
        CU_TestInfo tests[] = {
                { "every verb reaches the handler with its args", test_every_verb },
                { "bad requests answered, connection kept", test_bad_requests },
                { "oversized requests", test_oversized },
                { "reply over CTL_MAX_REPLY", test_reply_too_large },
                { "idle clients time out, others served", test_idle_timeout },
                { "too many clients", test_too_many_clients },
                { "pipelined requests in order", test_pipelined },
                { "requests split across writes", test_split_writes },
                { "clients disconnecting", test_disconnects },
                { "reply backlog capped", test_backlog_capped },
                { "late reply holds back pipelined requests", test_late_pipelined },
                { "late replies from a timer", test_late_timer },
                { "client gone before its late reply", test_late_disconnect },
                { "no idle timeout while a reply is late", test_late_no_idle_timeout },
                { "socket file mode and group", test_socket_file },
                { "stale, live and foreign socket paths", test_stale_and_live },
                CU_TEST_INFO_NULL,
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "ctl server", suite_init, suite_clean, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        if (argc == 4 && strcmp(argv[1], "--fake-agent") == 0)
                return fake_agent(argv[2], argv[3]);
        if (argc != 1) {
                fprintf(stderr, "usage: %s [--fake-agent SOCKET SCRIPT]\n", argv[0]);
                return 2;
        }
        if (geteuid() == 0)
                tests[ELEMENTSOF(tests) - 2] = (CU_TestInfo) { "permissions: non-admin, admin groups, reload",
                                                               test_permissions };
        else
                printf("skipping permission test: needs root\n");
        return unit_run(suites);
}
