/*
 * Probes against real local servers: tcp and http checks talk to listeners on
 * 127.0.0.1 ephemeral ports served by threads of this process (scripted to
 * answer, hang, close early or send garbage); exec checks spawn real programs
 * and scripts. Every test runs the default libev loop until the expected
 * results are in, under a generous guard timer, and checks that no child
 * process is left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "io/probe.h"
#include "../unit/unit.h"

/* Generous: only reached when something is broken, or on a very loaded machine. */
#define GUARD_S 30.0
/* The timeout of checks expected to time out; short, since they always take it. */
#define SHORT_US (300 * USEC_PER_MSEC)
/* The timeout of checks expected to finish: far longer than they need. */
#define LONG_US (20 * USEC_PER_SEC)

static struct ev_loop *loop;
static char *tmpdir;
/* Everything the tests create in tmpdir, removed at the end. */
static const char *const tmpfiles[] = { "sig.sh", "fds.sh", "group.sh", "grandchild.pid" };

/* --- scripted servers ------------------------------------------------------- */

enum srv_mode {
        SRV_RESPOND,            /* send `response`, close */
        SRV_RESPOND_KEEP,       /* send `response`, keep the connection open until the client closes */
        SRV_HANG,               /* read the request, never answer */
        SRV_CLOSE,              /* read the request, close */
};

struct server {
        int fd;
        uint16_t port;
        pthread_t thread;
        enum srv_mode mode;
        const char *response;
        size_t response_len;
        atomic_bool stop;
        atomic_int served;
        pthread_mutex_t lock;
        char request[2048];     /* the last request head received */
};

/* Waits for fd to become readable, giving up when the server is told to stop. */
static bool wait_readable(struct server *s, int fd) {
        while (!atomic_load(&s->stop)) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                int r = poll(&pfd, 1, 50);
                if (r > 0)
                        return true;
                if (r < 0 && errno != EINTR)
                        return false;
        }
        return false;
}

static void serve_one(struct server *s, int c) {
        char req[2048];
        size_t len = 0;

        /* The request head, up to the blank line. */
        while (len < sizeof(req) - 1 && wait_readable(s, c)) {
                ssize_t n = recv(c, req + len, sizeof(req) - 1 - len, 0);
                if (n <= 0)
                        break;
                len += (size_t) n;
                req[len] = '\0';
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        req[len] = '\0';
        pthread_mutex_lock(&s->lock);
        memcpy(s->request, req, len + 1);
        pthread_mutex_unlock(&s->lock);

        switch (s->mode) {
        case SRV_RESPOND:
        case SRV_RESPOND_KEEP:
                for (size_t off = 0; off < s->response_len;) {
                        ssize_t n = send(c, s->response + off, s->response_len - off, MSG_NOSIGNAL);
                        if (n <= 0)
                                break;
                        off += (size_t) n;
                }
                if (s->mode == SRV_RESPOND)
                        break;
                /* fall through: keep it open */
        case SRV_HANG:
                while (wait_readable(s, c)) {
                        char b[256];
                        if (recv(c, b, sizeof(b), 0) <= 0)
                                break;
                }
                break;
        case SRV_CLOSE:
                break;
        }
        close(c);
        atomic_fetch_add(&s->served, 1);
}

static void *server_main(void *arg) {
        struct server *s = arg;

        while (wait_readable(s, s->fd)) {
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                serve_one(s, c);
        }
        return NULL;
}

static int listen_local(int backlog, uint16_t *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0);
        if (backlog >= 0)
                CU_ASSERT_FATAL(listen(fd, backlog) == 0);
        CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *) &a, &l) == 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

static struct server *server_start(enum srv_mode mode, const char *response, size_t response_len) {
        struct server *s = calloc(1, sizeof(*s));
        sigset_t all, old;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        s->mode = mode;
        s->response = response;
        s->response_len = response ? (response_len ? response_len : strlen(response)) : 0;
        pthread_mutex_init(&s->lock, NULL);
        s->fd = listen_local(64, &s->port);
        /* Server threads take no signals: SIGCHLD belongs to libev in the main thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        CU_ASSERT_FATAL(pthread_create(&s->thread, NULL, server_main, s) == 0);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return s;
}

/*
 * The server thread counts a connection after closing it, so the client can
 * see its answer before the count moves: wait (bounded) for the count.
 */
static int served_eventually(struct server *s, int want) {
        for (int i = 0; i < 500 && atomic_load(&s->served) < want; i++)
                usleep(10000);
        return atomic_load(&s->served);
}

static void server_stop(struct server *s) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

/* --- running probes ------------------------------------------------------------ */

struct outcome {
        bool done;
        bool ok;
        int status;
        uint64_t latency_us;
        char reason[PROBE_REASON_MAX];
        unsigned calls;
};

static unsigned n_done, n_want;
static bool guard_fired;

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents) {
        (void) w;
        (void) revents;
        guard_fired = true;
        ev_break(l, EVBREAK_ALL);
}

static void done_cb(struct probe *p, const struct probe_result *r, void *userdata) {
        struct outcome *o = userdata;

        (void) p;
        o->done = true;
        o->calls++;
        o->ok = r->ok;
        o->status = r->http_status;
        o->latency_us = r->latency_us;
        snprintf(o->reason, sizeof(o->reason), "%s", r->reason);
        CU_ASSERT_FALSE(probe_running(p));
        if (++n_done >= n_want)
                ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until `want` results are in (or the guard fires, which fails the test). */
static void run_until(unsigned want) {
        ev_timer guard;

        n_want = want;
        guard_fired = false;
        ev_timer_init(&guard, guard_cb, GUARD_S, 0.);
        ev_timer_start(loop, &guard);
        if (n_done < n_want)
                ev_run(loop, 0);
        ev_timer_stop(loop, &guard);
        CU_ASSERT_FALSE(guard_fired);
}

/* One attempt of a probe with these options; the result is never delivered from inside probe_start(). */
static void run_one(const struct probe_options *o, struct outcome *out) {
        struct probe *p = NULL;

        memset(out, 0, sizeof(*out));
        n_done = 0;
        CU_ASSERT_EQUAL_FATAL(probe_new(loop, o, done_cb, out, &p), 0);
        CU_ASSERT_EQUAL(probe_start(p), 0);
        CU_ASSERT_FALSE(out->done);
        CU_ASSERT_TRUE(probe_running(p));
        CU_ASSERT_EQUAL(probe_start(p), -EBUSY);
        run_until(1);
        CU_ASSERT_EQUAL(out->calls, 1);
        CU_ASSERT_FALSE(probe_running(p));
        probe_free(p);
}

/* Runs the loop for a while without waiting for anything, so pending SIGCHLDs are processed. */
static void spin(double seconds) {
        ev_timer t;

        ev_timer_init(&t, guard_cb, seconds, 0.);
        ev_timer_start(loop, &t);
        ev_run(loop, 0);
        ev_timer_stop(loop, &t);
        guard_fired = false;
}

/* True when this process has no child at all: none running, no zombie. Polls for a few seconds. */
static bool no_children(void) {
        for (int i = 0; i < 100; i++) {
                errno = 0;
                if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
                        return true;
                spin(0.05);
        }
        return false;
}

static struct probe_options http_opts(uint16_t port) {
        return (struct probe_options) {
                .type = PROBE_HTTP,
                .address = "127.0.0.1",
                .port = port,
                .path = "/health",
                .timeout_us = LONG_US,
        };
}

/* --- tcp ---------------------------------------------------------------------- */

static void test_tcp_ok(void) {
        uint16_t port;
        int fd = listen_local(16, &port);
        struct outcome o;

        /* The kernel completes the handshake; nobody needs to accept. */
        run_one(&(struct probe_options) { .type = PROBE_TCP, .address = "127.0.0.1", .port = port, .timeout_us = LONG_US }, &o);
        CU_ASSERT_TRUE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "connected");
        CU_ASSERT_TRUE(o.latency_us < LONG_US);
        close(fd);
}

static void test_tcp_ipv6(void) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct outcome o;

        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
                /* No IPv6 on this host's loopback: nothing to test. */
                fprintf(stderr, "(no ::1) ");
                if (fd >= 0)
                        close(fd);
                return;
        }
        CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *) &a, &l) == 0);
        run_one(&(struct probe_options) { .type = PROBE_TCP, .address = "::1", .port = ntohs(a.sin6_port), .timeout_us = LONG_US }, &o);
        CU_ASSERT_TRUE(o.ok);
        close(fd);
}

static void test_tcp_refused(void) {
        uint16_t port;
        /* Bound (so the port stays ours) but not listening: the connect is refused. */
        int fd = listen_local(-1, &port);
        struct outcome o;

        run_one(&(struct probe_options) { .type = PROBE_TCP, .address = "127.0.0.1", .port = port, .timeout_us = LONG_US }, &o);
        CU_ASSERT_FALSE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "connect: Connection refused");
        close(fd);
}

static void test_tcp_timeout(void) {
        uint16_t port;
        int fd = listen_local(0, &port), fillers[4];
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port) };
        struct outcome o;

        /* Fill the accept queue of a listener that never accepts: further SYNs are dropped, connects hang. */
        for (size_t i = 0; i < ELEMENTSOF(fillers); i++) {
                fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                CU_ASSERT_FATAL(fillers[i] >= 0);
                (void) connect(fillers[i], (struct sockaddr *) &a, sizeof(a));
        }
        spin(0.1);
        run_one(&(struct probe_options) { .type = PROBE_TCP, .address = "127.0.0.1", .port = port, .timeout_us = SHORT_US }, &o);
        CU_ASSERT_FALSE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "timed out after 300ms");
        CU_ASSERT_TRUE(o.latency_us >= SHORT_US - USEC_PER_MSEC);
        for (size_t i = 0; i < ELEMENTSOF(fillers); i++)
                close(fillers[i]);
        close(fd);
}

/* --- http ---------------------------------------------------------------------- */

#define OK_RESPONSE "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nstatus: ready"

static void test_http_ok_and_request(void) {
        struct server *s = server_start(SRV_RESPOND, OK_RESPONSE, 0);
        struct probe_options po = http_opts(s->port);
        struct outcome o;
        char expect[128];

        run_one(&po, &o);
        CU_ASSERT_TRUE(o.ok);
        CU_ASSERT_EQUAL(o.status, 200);
        CU_ASSERT_STRING_EQUAL(o.reason, "HTTP 200");

        /* The request: GET path HTTP/1.1, Host, Connection: close. */
        snprintf(expect, sizeof(expect), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", (unsigned) s->port);
        pthread_mutex_lock(&s->lock);
        CU_ASSERT_EQUAL(strncmp(s->request, expect, strlen(expect)), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(s->request, "\r\nConnection: close\r\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(s->request, "\r\nUser-Agent: agentd/" PACKAGE_VERSION "\r\n"));
        CU_ASSERT_EQUAL(strlen(s->request) - (size_t) (strstr(s->request, "\r\n\r\n") - s->request), 4);
        pthread_mutex_unlock(&s->lock);

        /* A Host override and the default path. */
        po.host_header = "web.example";
        po.path = NULL;
        run_one(&po, &o);
        CU_ASSERT_TRUE(o.ok);
        pthread_mutex_lock(&s->lock);
        CU_ASSERT_EQUAL(strncmp(s->request, "GET / HTTP/1.1\r\nHost: web.example\r\n", 35), 0);
        pthread_mutex_unlock(&s->lock);
        server_stop(s);
}

static void test_http_status(void) {
        static const struct {
                const char *response;
                int min, max;
                bool ok;
                int status;
                const char *reason;
        } cases[] = {
                { "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", 0, 0, false, 500, "HTTP 500" },
                { "HTTP/1.1 503 Unavailable\r\n\r\n", 0, 0, false, 503, "HTTP 503" },
                { "HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", 0, 0, true, 301, "HTTP 301" },
                { "HTTP/1.1 399 Odd\r\nContent-Length: 0\r\n\r\n", 0, 0, true, 399, "HTTP 399" },
                { "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n", 0, 0, false, 400, "HTTP 400" },
                { "HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n", 200, 299, false, 301, "HTTP 301" },
                { "HTTP/1.1 500 Expected\r\nContent-Length: 0\r\n\r\n", 500, 599, true, 500, "HTTP 500" },
                { "HTTP/1.1 204 No Content\r\n\r\n", 200, 204, true, 204, "HTTP 204" },
                { "HTTP/1.0 200 OK\r\n\r\nbody until close", 0, 0, true, 200, "HTTP 200" },
                { "HTTP/1.1 200 OK\n\nbare newlines", 0, 0, true, 200, "HTTP 200" },
                { "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 0, 0, true, 200, "HTTP 200" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct server *s = server_start(SRV_RESPOND, cases[i].response, 0);
                struct probe_options po = http_opts(s->port);
                struct outcome o;

                po.status_min = cases[i].min;
                po.status_max = cases[i].max;
                run_one(&po, &o);
                if (o.ok != cases[i].ok || strcmp(o.reason, cases[i].reason) != 0)
                        fprintf(stderr, "\n  case %zu: ok %d reason \"%s\"\n", i, o.ok, o.reason);
                CU_ASSERT_EQUAL(o.ok, cases[i].ok);
                CU_ASSERT_EQUAL(o.status, cases[i].status);
                CU_ASSERT_STRING_EQUAL(o.reason, cases[i].reason);
                server_stop(s);
        }
}

static void test_http_body(void) {
        static const struct {
                const char *response;
                const char *expect;
                bool ok;
                const char *reason;
        } cases[] = {
                { OK_RESPONSE, "ready", true, "HTTP 200" },
                { OK_RESPONSE, "status: ready", true, "HTTP 200" },
                { OK_RESPONSE, "not ready", false, "HTTP 200, body does not contain the expected text" },
                /* Only the body counts, not the headers. */
                { OK_RESPONSE, "text/plain", false, "HTTP 200, body does not contain the expected text" },
                /* Only Content-Length bytes of body count. */
                { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nreadyXX", "ready", false,
                  "HTTP 200, body does not contain the expected text" },
                /* Chunked: the text is split over two chunks, found after decoding. */
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nrea\r\n4;ext=1\r\ndy!!\r\n0\r\n\r\n", "ready", true,
                  "HTTP 200" },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nready\r\n0\r\nX-Trailer: 1\r\n\r\n", "ready", true,
                  "HTTP 200" },
                /* A status outside the range fails on the status, whatever the body. */
                { "HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nready", "ready", false, "HTTP 500" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct server *s = server_start(SRV_RESPOND, cases[i].response, 0);
                struct probe_options po = http_opts(s->port);
                struct outcome o;

                po.expect_body = cases[i].expect;
                run_one(&po, &o);
                if (o.ok != cases[i].ok || strcmp(o.reason, cases[i].reason) != 0)
                        fprintf(stderr, "\n  case %zu: ok %d reason \"%s\"\n", i, o.ok, o.reason);
                CU_ASSERT_EQUAL(o.ok, cases[i].ok);
                CU_ASSERT_STRING_EQUAL(o.reason, cases[i].reason);
                server_stop(s);
        }
}

static void test_http_bad_responses(void) {
        static const struct {
                enum srv_mode mode;
                const char *response;
                const char *reason;
        } cases[] = {
                { SRV_RESPOND, "SSH-2.0-OpenSSH_9.2\r\n", "malformed response" },
                { SRV_RESPOND_KEEP, "garbage", "malformed response" },     /* recognised without waiting for the end */
                { SRV_RESPOND, "HTTP/1.1 2000 OK\r\n\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 abc OK\r\n\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/2 200\r\n\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed response" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "malformed response" },
                { SRV_CLOSE, NULL, "connection closed early" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-", "connection closed early" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..", "connection closed early" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nready\r\n", "connection closed early" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", "response too large" },
                { SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "response too large" },
                { SRV_HANG, NULL, "timed out after 300ms" },
                /* Headers complete, no length, never closed: waits for the end, which never comes. */
                { SRV_RESPOND_KEEP, "HTTP/1.1 200 OK\r\n\r\npartial", "timed out after 300ms" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct server *s = server_start(cases[i].mode, cases[i].response, 0);
                struct probe_options po = http_opts(s->port);
                struct outcome o;

                po.timeout_us = SHORT_US;
                /* The cases that must not time out get the long timeout: their reason proves they did not. */
                if (strncmp(cases[i].reason, "timed out", 9) != 0)
                        po.timeout_us = LONG_US;
                run_one(&po, &o);
                if (o.ok || strcmp(o.reason, cases[i].reason) != 0)
                        fprintf(stderr, "\n  case %zu: ok %d reason \"%s\"\n", i, o.ok, o.reason);
                CU_ASSERT_FALSE(o.ok);
                CU_ASSERT_STRING_EQUAL(o.reason, cases[i].reason);
                server_stop(s);
        }
}

/* A server that keeps the connection open after a complete Content-Length response: no timeout needed. */
static void test_http_keepalive_server(void) {
        struct server *s = server_start(SRV_RESPOND_KEEP, OK_RESPONSE, 0);
        struct probe_options po = http_opts(s->port);
        struct outcome o;

        run_one(&po, &o);
        CU_ASSERT_TRUE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "HTTP 200");
        server_stop(s);
}

static void test_http_size_cap(void) {
        const size_t big = 200 * 1024;
        char *resp = malloc(big);
        const char *head = "HTTP/1.1 200 OK\r\n\r\n";
        struct outcome o;

        CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
        /* No length, streamed until close: cut at the cap. */
        memcpy(resp, head, strlen(head));
        memset(resp + strlen(head), 'x', big - strlen(head));
        {
                struct server *s = server_start(SRV_RESPOND, resp, big);
                struct probe_options po = http_opts(s->port);

                run_one(&po, &o);
                CU_ASSERT_FALSE(o.ok);
                CU_ASSERT_STRING_EQUAL(o.reason, "response too large");
                server_stop(s);
        }
        /* Exactly the cap is fine; one byte more is not. */
        for (int extra = 0; extra <= 1; extra++) {
                size_t total = 1024 + (size_t) extra;
                struct server *s;
                struct probe_options po;

                memset(resp + strlen(head), 'y', total - strlen(head));
                s = server_start(SRV_RESPOND, resp, total);
                po = http_opts(s->port);
                po.max_response = 1024;
                po.expect_body = "yyy";
                run_one(&po, &o);
                CU_ASSERT_EQUAL(o.ok, extra == 0);
                CU_ASSERT_STRING_EQUAL(o.reason, extra == 0 ? "HTTP 200" : "response too large");
                server_stop(s);
        }
        free(resp);
}

static void test_http_refused(void) {
        uint16_t port;
        int fd = listen_local(-1, &port);
        struct probe_options po = http_opts(port);
        struct outcome o;

        run_one(&po, &o);
        CU_ASSERT_FALSE(o.ok);
        CU_ASSERT_EQUAL(o.status, 0);
        CU_ASSERT_STRING_EQUAL(o.reason, "connect: Connection refused");
        close(fd);
}

/* --- exec ---------------------------------------------------------------------- */

static char *write_script(const char *name, const char *body) {
        char *path;
        FILE *f;

        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", tmpdir, name) > 0);
        f = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs(body, f);
        fclose(f);
        CU_ASSERT_FATAL(chmod(path, 0755) == 0);
        return path;
}

static void test_exec_basic(void) {
        char *sig = write_script("sig.sh", "#!/bin/sh\nkill -TERM $$\nsleep 5\n");
        char sigcmd[512];
        struct {
                const char *command;
                bool ok;
                const char *reason;
        } cases[] = {
                { "/bin/true", true, "exit status 0" },
                { "/bin/false", false, "exit status 1" },
                { "true", true, "exit status 0" },      /* PATH is searched */
                { "/usr/bin/test  1 -eq 1", true, "exit status 0" },   /* runs of spaces split once */
                { "/usr/bin/test 1 -eq 2", false, "exit status 1" },
                { "/bin/sh -c false", false, "exit status 1" },
                { "/nonexistent/prog --flag", false, "spawn /nonexistent/prog: No such file or directory" },
                { sigcmd, false, "killed by signal 15" },
        };

        snprintf(sigcmd, sizeof(sigcmd), "%s", sig);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct outcome o;

                run_one(&(struct probe_options) { .type = PROBE_EXEC, .command = cases[i].command, .timeout_us = LONG_US }, &o);
                if (o.ok != cases[i].ok || strcmp(o.reason, cases[i].reason) != 0)
                        fprintf(stderr, "\n  %s: ok %d reason \"%s\"\n", cases[i].command, o.ok, o.reason);
                CU_ASSERT_EQUAL(o.ok, cases[i].ok);
                CU_ASSERT_STRING_EQUAL(o.reason, cases[i].reason);
        }
        CU_ASSERT_TRUE(no_children());
        free(sig);
}

/* The child sees /dev/null on 0, 1, 2 and none of our other descriptors. */
static void test_exec_environment(void) {
        char *script = write_script("fds.sh",
                                    "#!/bin/sh\n"
                                    "[ \"$(readlink /proc/$$/fd/0)\" = /dev/null ] || exit 10\n"
                                    "[ \"$(readlink /proc/$$/fd/1)\" = /dev/null ] || exit 11\n"
                                    "[ \"$(readlink /proc/$$/fd/2)\" = /dev/null ] || exit 12\n"
                                    "[ -e /proc/$$/fd/57 ] && exit 13\n"
                                    "echo noise; echo noise >&2\n"
                                    "exit 0\n");
        int fd = open("/dev/zero", O_RDONLY);   /* deliberately without O_CLOEXEC */
        struct outcome o;

        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(dup2(fd, 57) == 57);
        run_one(&(struct probe_options) { .type = PROBE_EXEC, .command = script, .timeout_us = LONG_US }, &o);
        CU_ASSERT_TRUE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "exit status 0");
        close(57);
        close(fd);
        free(script);
}

static void test_exec_timeout(void) {
        struct outcome o;

        run_one(&(struct probe_options) { .type = PROBE_EXEC, .command = "/bin/sleep 10", .timeout_us = SHORT_US }, &o);
        CU_ASSERT_FALSE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "timed out after 300ms");
        CU_ASSERT_TRUE(o.latency_us >= SHORT_US - USEC_PER_MSEC && o.latency_us < 9 * USEC_PER_SEC);
        /* Reaped before the result was reported: no zombie, no running child, right now. */
        errno = 0;
        CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
        CU_ASSERT_EQUAL(errno, ECHILD);
}

/* What the program started dies with it: the whole process group is killed at the timeout. */
static void test_exec_timeout_group(void) {
        char pidfile[512], cmd[600], buf[64], proc[64];
        char *script;
        struct outcome o;
        FILE *f;
        pid_t grandchild;
        bool gone = false;

        snprintf(pidfile, sizeof(pidfile), "%s/grandchild.pid", tmpdir);
        snprintf(cmd, sizeof(cmd), "#!/bin/sh\n/bin/sleep 30 &\necho $! > %s\nwait\n", pidfile);
        script = write_script("group.sh", cmd);
        run_one(&(struct probe_options) { .type = PROBE_EXEC, .command = script, .timeout_us = 500 * USEC_PER_MSEC }, &o);
        CU_ASSERT_FALSE(o.ok);
        CU_ASSERT_STRING_EQUAL(o.reason, "timed out after 500ms");
        f = fopen(pidfile, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_FATAL(fgets(buf, sizeof(buf), f) != NULL);
        fclose(f);
        grandchild = (pid_t) atoi(buf);
        CU_ASSERT_FATAL(grandchild > 1);
        /* Gone, or a zombie waiting for its new parent (init) to reap it. */
        snprintf(proc, sizeof(proc), "/proc/%d/stat", (int) grandchild);
        for (int i = 0; i < 100 && !gone; i++) {
                char st[512] = "";
                f = fopen(proc, "r");
                if (!f) {
                        gone = true;
                        break;
                }
                if (fgets(st, sizeof(st), f) && strstr(st, ") Z "))
                        gone = true;
                fclose(f);
                if (!gone)
                        spin(0.05);
        }
        CU_ASSERT_TRUE(gone);
        CU_ASSERT_TRUE(no_children());
        free(script);
}

/* --- life cycle ---------------------------------------------------------------- */

static void test_cancel(void) {
        struct outcome o = { .done = false };
        struct probe *p = NULL;

        n_done = 0;
        CU_ASSERT_EQUAL_FATAL(probe_new(loop, &(struct probe_options) { .type = PROBE_EXEC, .command = "/bin/sleep 10", .timeout_us = LONG_US },
                                        done_cb, &o, &p), 0);
        CU_ASSERT_EQUAL(probe_start(p), 0);
        spin(0.05);
        probe_cancel(p);
        CU_ASSERT_FALSE(probe_running(p));
        /* Killed and reaped (now or by libev's SIGCHLD handler); never reported. */
        CU_ASSERT_TRUE(no_children());
        CU_ASSERT_FALSE(o.done);
        /* It can run again afterwards. */
        CU_ASSERT_EQUAL(probe_start(p), 0);
        probe_free(p);  /* freeing a running probe cancels it */
        CU_ASSERT_TRUE(no_children());
        CU_ASSERT_FALSE(o.done);
        probe_cancel(NULL);
        probe_free(NULL);
}

static unsigned again_left;

/* Starts the same probe again from its own callback, then frees it from there. */
static void again_cb(struct probe *p, const struct probe_result *r, void *userdata) {
        unsigned *count = userdata;

        CU_ASSERT_TRUE(r->ok);
        (*count)++;
        if (--again_left > 0) {
                CU_ASSERT_EQUAL(probe_start(p), 0);
                return;
        }
        probe_free(p);
        n_done++;
        ev_break(loop, EVBREAK_ALL);
}

static void test_restart_and_free_in_callback(void) {
        struct server *s = server_start(SRV_RESPOND, OK_RESPONSE, 0);
        struct probe_options po = http_opts(s->port);
        struct probe *p = NULL;
        unsigned count = 0;

        n_done = 0;
        again_left = 5;
        CU_ASSERT_EQUAL_FATAL(probe_new(loop, &po, again_cb, &count, &p), 0);
        CU_ASSERT_EQUAL(probe_start(p), 0);
        run_until(1);
        CU_ASSERT_EQUAL(count, 5);
        CU_ASSERT_EQUAL(served_eventually(s, 5), 5);
        server_stop(s);

        /* The same with exec probes. */
        count = 0;
        n_done = 0;
        again_left = 4;
        CU_ASSERT_EQUAL_FATAL(probe_new(loop, &(struct probe_options) { .type = PROBE_EXEC, .command = "/bin/true", .timeout_us = LONG_US },
                                        again_cb, &count, &p), 0);
        CU_ASSERT_EQUAL(probe_start(p), 0);
        run_until(1);
        CU_ASSERT_EQUAL(count, 4);
        CU_ASSERT_TRUE(no_children());
}

static void test_parallel(void) {
        enum { N_TRUE = 40, N_FALSE = 10, N_HTTP = 20, N_SLEEP = 5, N = N_TRUE + N_FALSE + N_HTTP + N_SLEEP };
        struct server *s = server_start(SRV_RESPOND, OK_RESPONSE, 0);
        struct probe *probes[N];
        struct outcome *out = calloc(N, sizeof(*out));

        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        n_done = 0;
        for (unsigned i = 0; i < N; i++) {
                struct probe_options po;

                if (i < N_TRUE)
                        po = (struct probe_options) { .type = PROBE_EXEC, .command = "/bin/true", .timeout_us = LONG_US };
                else if (i < N_TRUE + N_FALSE)
                        po = (struct probe_options) { .type = PROBE_EXEC, .command = "/bin/false", .timeout_us = LONG_US };
                else if (i < N_TRUE + N_FALSE + N_HTTP)
                        po = http_opts(s->port);
                else
                        po = (struct probe_options) { .type = PROBE_EXEC, .command = "/bin/sleep 10", .timeout_us = SHORT_US };
                CU_ASSERT_EQUAL_FATAL(probe_new(loop, &po, done_cb, &out[i], &probes[i]), 0);
                CU_ASSERT_EQUAL(probe_start(probes[i]), 0);
        }
        run_until(N);
        CU_ASSERT_EQUAL(n_done, N);
        for (unsigned i = 0; i < N; i++) {
                CU_ASSERT_EQUAL(out[i].calls, 1);
                const char *want = i < N_TRUE ? "exit status 0" :
                                   i < N_TRUE + N_FALSE ? "exit status 1" :
                                   i < N_TRUE + N_FALSE + N_HTTP ? "HTTP 200" : "timed out after 300ms";

                CU_ASSERT_EQUAL(out[i].ok, i < N_TRUE || (i >= N_TRUE + N_FALSE && i < N_TRUE + N_FALSE + N_HTTP));
                CU_ASSERT_STRING_EQUAL(out[i].reason, want);
                probe_free(probes[i]);
        }
        CU_ASSERT_EQUAL(served_eventually(s, N_HTTP), N_HTTP);
        CU_ASSERT_TRUE(no_children());
        free(out);
        server_stop(s);
}

/* --- options --------------------------------------------------------------------- */

static void test_options(void) {
        char longpath[PROBE_TEXT_MAX + 2], manyargs[PROBE_ARGS_MAX * 3 + 16];
        struct {
                struct probe_options o;
                int ret;
        } cases[] = {
                { { .type = PROBE_TCP, .address = "127.0.0.1", .port = 80, .timeout_us = 1 }, 0 },
                { { .type = PROBE_TCP, .address = "::1", .port = 80, .timeout_us = 1 }, 0 },
                { { .type = PROBE_TCP, .address = "localhost", .port = 80, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_TCP, .address = "[::1]", .port = 80, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_TCP, .address = NULL, .port = 80, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_TCP, .address = "127.0.0.1", .port = 0, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_TCP, .address = "127.0.0.1", .port = 80, .timeout_us = 0 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .timeout_us = 1 }, 0 },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .path = "health", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .path = "/a b", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .path = "/a\r\nX: y", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .path = longpath, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .host_header = "a\nb", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .host_header = "", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .status_min = 99, .status_max = 200, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .status_min = 300, .status_max = 200, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .status_min = 200, .status_max = 600, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .expect_body = "", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .max_response = PROBE_RESPONSE_MAX + 1, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_HTTP, .address = "127.0.0.1", .port = 80, .max_response = 4, .expect_body = "12345", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_EXEC, .command = "/bin/true", .timeout_us = 1 }, 0 },
                { { .type = PROBE_EXEC, .command = "", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_EXEC, .command = "    ", .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_EXEC, .command = NULL, .timeout_us = 1 }, -EINVAL },
                { { .type = PROBE_EXEC, .command = manyargs, .timeout_us = 1 }, -EINVAL },
                { { .type = (enum probe_type) 9, .timeout_us = 1 }, -EINVAL },
                { { .type = _PROBE_TYPE_INVALID, .timeout_us = 1 }, -EINVAL },
        };
        struct ev_loop *other = ev_loop_new(EVFLAG_AUTO);
        struct probe *p;
        size_t off = 0;

        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        off += (size_t) snprintf(manyargs, sizeof(manyargs), "/bin/true");
        for (int i = 0; i < PROBE_ARGS_MAX; i++)
                off += (size_t) snprintf(manyargs + off, sizeof(manyargs) - off, " x");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                p = NULL;
                r = probe_new(loop, &cases[i].o, done_cb, NULL, &p);
                if (r != cases[i].ret)
                        fprintf(stderr, "\n  case %zu: %d\n", i, r);
                CU_ASSERT_EQUAL(r, cases[i].ret);
                if (r == 0) {
                        CU_ASSERT_EQUAL(probe_type(p), cases[i].o.type);
                        probe_free(p);
                } else {
                        CU_ASSERT_PTR_NULL(p);
                }
        }
        /* ev_child works only in the default loop. */
        CU_ASSERT_PTR_NOT_NULL_FATAL(other);
        CU_ASSERT_EQUAL(probe_new(other, &(struct probe_options) { .type = PROBE_EXEC, .command = "/bin/true", .timeout_us = 1 },
                                  done_cb, NULL, &p), -EINVAL);
        CU_ASSERT_EQUAL(probe_new(other, &(struct probe_options) { .type = PROBE_TCP, .address = "127.0.0.1", .port = 1, .timeout_us = 1 },
                                  done_cb, NULL, &p), 0);
        probe_free(p);
        ev_loop_destroy(other);
        CU_ASSERT_EQUAL(probe_new(loop, &cases[0].o, NULL, NULL, &p), -EINVAL);

        CU_ASSERT_STRING_EQUAL(probe_type_to_string(PROBE_TCP), "tcp");
        CU_ASSERT_STRING_EQUAL(probe_type_to_string(PROBE_HTTP), "http");
        CU_ASSERT_STRING_EQUAL(probe_type_to_string(PROBE_EXEC), "exec");
        CU_ASSERT_PTR_NULL(probe_type_to_string(_PROBE_TYPE_MAX));
}

int main(void) {
        CU_TestInfo tests[] = {
                { "tcp: connected", test_tcp_ok },
                { "tcp: ipv6", test_tcp_ipv6 },
                { "tcp: refused", test_tcp_refused },
                { "tcp: timeout (full backlog)", test_tcp_timeout },
                { "http: 200 and the request sent", test_http_ok_and_request },
                { "http: status ranges", test_http_status },
                { "http: body match", test_http_body },
                { "http: garbage, early close, too large, hang", test_http_bad_responses },
                { "http: server keeps the connection open", test_http_keepalive_server },
                { "http: size cap", test_http_size_cap },
                { "http: refused", test_http_refused },
                { "exec: exit codes, missing program, signals", test_exec_basic },
                { "exec: stdio and descriptors", test_exec_environment },
                { "exec: killed at timeout and reaped", test_exec_timeout },
                { "exec: timeout kills the process group", test_exec_timeout_group },
                { "cancel and free while running", test_cancel },
                { "restart and free from the callback", test_restart_and_free_in_callback },
                { "many probes in parallel", test_parallel },
                { "options", test_options },
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "probe", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };
        int r;

        /* A probe writing to a peer that has gone must not kill the test. */
        signal(SIGPIPE, SIG_IGN);
        loop = ev_default_loop(0);
        tmpdir = unit_tmpdir();
        r = unit_run(suites);
        for (size_t i = 0; i < ELEMENTSOF(tmpfiles); i++) {
                char path[600];
                snprintf(path, sizeof(path), "%s/%s", tmpdir, tmpfiles[i]);
                (void) unlink(path);
        }
        if (rmdir(tmpdir) < 0)
                fprintf(stderr, "could not remove %s: %s\n", tmpdir, strerror(errno));
        free(tmpdir);
        return r;
}
