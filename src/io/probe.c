/*
 * Active health checks (tcp, http, exec) in the libev loop. One attempt at a
 * time per probe; each attempt owns at most one socket or one child process
 * and one response buffer, all released before the callback runs (except a
 * response buffer of at most PROBE_BUF_KEEP bytes, kept for the next attempt).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "io/probe.h"

extern char **environ;

/* How long a SIGKILLed exec child gets to be reaped before the attempt is reported anyway. */
#define PROBE_REAP_GRACE 1.0

/*
 * The response buffer starts this small and doubles up to max_response + 1
 * only when a response is that long: health answers are mostly a few hundred
 * bytes. A buffer this size is kept between attempts, so a probe that runs
 * every interval allocates nothing and the heap does not grow and shrink
 * (brk calls and page faults) with every round of checks.
 */
#define PROBE_BUF_KEEP 1024u

enum stage {
        STAGE_IDLE,
        STAGE_CONNECTING,
        STAGE_SENDING,
        STAGE_READING,
        STAGE_CHILD,            /* exec child running */
        STAGE_KILLED,           /* exec child SIGKILLed at the timeout, waiting to reap it */
        STAGE_DEFERRED,         /* result known inside probe_start(): delivered from the loop */
};

struct probe {
        struct ev_loop *loop;
        enum probe_type type;
        probe_done_fn done;
        void *userdata;
        uint64_t timeout_us;

        /* tcp, http */
        struct sockaddr_storage addr;
        socklen_t addrlen;

        /* http */
        char *request;
        size_t request_len;
        int status_min, status_max;
        char *expect_body;
        size_t expect_len;
        size_t max_response;

        /* exec */
        char *command;          /* the words, NUL-separated in place; argv points into it */
        char **argv;

        /* the running attempt */
        enum stage stage;
        uint64_t started_us;
        int fd;
        ev_io io;
        ev_timer timer;
        ev_child child;
        pid_t pid;
        size_t sent;
        char *buf;
        size_t cap;             /* bytes allocated at buf */
        size_t len;
        bool reset_on_close;    /* a complete response was read: close with a reset (see teardown) */

        /* a result waiting to be delivered (STAGE_DEFERRED, STAGE_KILLED) */
        bool ok;
        int http_status;
        char reason[PROBE_REASON_MAX];
};

static const char *const type_names[_PROBE_TYPE_MAX] = {
        [PROBE_TCP] = "tcp",
        [PROBE_HTTP] = "http",
        [PROBE_EXEC] = "exec",
};

const char *probe_type_to_string(enum probe_type t) {
        if (t < 0 || t >= _PROBE_TYPE_MAX)
                return NULL;
        return type_names[t];
}

enum probe_type probe_type(const struct probe *p) {
        return p->type;
}

bool probe_running(const struct probe *p) {
        return p->stage != STAGE_IDLE;
}

/* --- option checks -------------------------------------------------------- */

/* Request-line and header text: visible ASCII only, so nothing can inject a header or split the request. */
static bool visible_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

static int parse_address(struct probe *p, const char *address, uint16_t port) {
        struct sockaddr_in *a4 = (struct sockaddr_in *) &p->addr;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) &p->addr;

        if (!address || port == 0)
                return -EINVAL;
        memset(&p->addr, 0, sizeof(p->addr));
        if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons(port);
                p->addrlen = sizeof(*a4);
                return 0;
        }
        if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(port);
                p->addrlen = sizeof(*a6);
                return 0;
        }
        return -EINVAL;
}

static int build_request(struct probe *p, const struct probe_options *o) {
        const char *path = o->path ? o->path : "/";
        char host[UTIL_HOSTPORT_MAX + 8];
        int n;

        if (path[0] != '/' || strlen(path) > PROBE_TEXT_MAX || !visible_ascii(path))
                return -EINVAL;
        if (o->host_header) {
                if (o->host_header[0] == '\0' || strlen(o->host_header) > PROBE_TEXT_MAX ||
                    !visible_ascii(o->host_header))
                        return -EINVAL;
                n = 0;
        } else {
                bool v6 = p->addr.ss_family == AF_INET6;
                if (o->port == 80)
                        n = snprintf(host, sizeof(host), "%s%s%s", v6 ? "[" : "", o->address, v6 ? "]" : "");
                else
                        n = snprintf(host, sizeof(host), "%s%s%s:%u", v6 ? "[" : "", o->address, v6 ? "]" : "",
                                     (unsigned) o->port);
                if (n < 0 || (size_t) n >= sizeof(host))
                        return -EINVAL;
        }
        n = asprintf(&p->request,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: agentd/" PACKAGE_VERSION "\r\n"
                     "Accept: */*\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     path, o->host_header ? o->host_header : host);
        if (n < 0) {
                p->request = NULL;
                return -ENOMEM;
        }
        p->request_len = (size_t) n;
        return 0;
}

/* Splits the command on spaces (runs of spaces count as one) into an argv pointing into p->command. */
static int split_command(struct probe *p, const char *command) {
        size_t n = 0;
        char *s;

        if (!command || strlen(command) > PROBE_TEXT_MAX)
                return -EINVAL;
        p->command = strdup(command);
        p->argv = calloc(PROBE_ARGS_MAX + 1, sizeof(char *));
        if (!p->command || !p->argv)
                return -ENOMEM;
        for (s = p->command; *s;) {
                if (*s == ' ') {
                        *s++ = '\0';
                        continue;
                }
                if (n == PROBE_ARGS_MAX)
                        return -EINVAL;
                p->argv[n++] = s;
                while (*s && *s != ' ')
                        s++;
        }
        return n == 0 ? -EINVAL : 0;
}

int probe_new(struct ev_loop *loop, const struct probe_options *o, probe_done_fn done, void *userdata,
              struct probe **ret) {
        struct probe *p;
        int r = -EINVAL;

        if (!loop || !o || !done || !ret || o->timeout_us == 0 || o->timeout_us > UINT64_C(86400) * USEC_PER_SEC)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->loop = loop;
        p->type = o->type;
        p->done = done;
        p->userdata = userdata;
        p->timeout_us = o->timeout_us;
        p->fd = -1;
        p->stage = STAGE_IDLE;

        switch (o->type) {
        case PROBE_TCP:
                r = parse_address(p, o->address, o->port);
                break;
        case PROBE_HTTP:
                r = parse_address(p, o->address, o->port);
                if (r < 0)
                        break;
                p->status_min = o->status_min;
                p->status_max = o->status_max;
                if (p->status_min == 0 && p->status_max == 0) {
                        p->status_min = 200;
                        p->status_max = 399;
                }
                p->max_response = o->max_response ? o->max_response : PROBE_RESPONSE_DEFAULT;
                if (p->status_min < 100 || p->status_max > 599 || p->status_min > p->status_max ||
                    p->max_response > PROBE_RESPONSE_MAX) {
                        r = -EINVAL;
                        break;
                }
                if (o->expect_body) {
                        p->expect_len = strlen(o->expect_body);
                        if (p->expect_len == 0 || p->expect_len > p->max_response) {
                                r = -EINVAL;
                                break;
                        }
                        p->expect_body = strdup(o->expect_body);
                        if (!p->expect_body) {
                                r = -ENOMEM;
                                break;
                        }
                }
                r = build_request(p, o);
                break;
        case PROBE_EXEC:
                /* libev delivers child exits only to the default loop. */
                if (!ev_is_default_loop(loop)) {
                        r = -EINVAL;
                        break;
                }
                r = split_command(p, o->command);
                break;
        default:
                r = -EINVAL;
                break;
        }
        if (r < 0) {
                probe_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

/* --- finishing an attempt ----------------------------------------------------- */

static void set_result(struct probe *p, bool ok, int status, const char *fmt, ...) _printf_(4, 5);
static void set_result(struct probe *p, bool ok, int status, const char *fmt, ...) {
        va_list ap;

        p->ok = ok;
        p->http_status = status;
        va_start(ap, fmt);
        vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
        va_end(ap);
}

static void set_timeout_result(struct probe *p) {
        char d[32];

        set_result(p, false, 0, "timed out after %s", util_format_duration(p->timeout_us, d, sizeof(d)));
}

/* Releases everything the attempt holds. An exec child still running is killed (see probe_cancel). */
static void teardown(struct probe *p) {
        ev_io_stop(p->loop, &p->io);
        ev_timer_stop(p->loop, &p->timer);
        if (p->fd >= 0) {
                /*
                 * Once the whole response is in, nothing more is to be said on
                 * the connection: an abortive close (a reset rather than a FIN)
                 * spares both ends the closing handshake, and whichever end
                 * closed first the TIME_WAIT socket it would keep for a minute
                 * after every check. It is safe for a health check because the
                 * server has already sent its whole answer and we want nothing
                 * more: at worst it sees "connection reset" on a socket it was
                 * about to close. Never done before the response is complete,
                 * so no request or answer is cut short.
                 */
                if (p->reset_on_close)
                        (void) setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &(struct linger) { .l_onoff = 1, .l_linger = 0 },
                                          sizeof(struct linger));
                close(p->fd);
                p->fd = -1;
        }
        p->reset_on_close = false;
        if (p->pid > 0) {
                if (ev_is_pending(&p->child)) {
                        /* libev already reaped it; the exit status is simply not wanted any more. */
                        ev_clear_pending(p->loop, &p->child);
                } else {
                        kill(-p->pid, SIGKILL);
                        kill(p->pid, SIGKILL);
                        /* Reap it now if it is already gone; else libev's SIGCHLD handler, which reaps every child, will. */
                        (void) waitpid(p->pid, NULL, WNOHANG);
                }
                ev_child_stop(p->loop, &p->child);
                p->pid = 0;
        }
        if (p->cap > PROBE_BUF_KEEP) {
                free(p->buf);
                p->buf = NULL;
                p->cap = 0;
        }
        p->len = 0;
        p->sent = 0;
        p->stage = STAGE_IDLE;
}

/* Delivers the stored result. Touches nothing after the callback: it may free the probe. */
static void finish(struct probe *p) {
        struct probe_result r = {
                .ok = p->ok,
                .http_status = p->http_status,
                .reason = p->reason,
        };
        uint64_t now = util_now_mono_us();

        r.latency_us = now > p->started_us ? now - p->started_us : 0;
        teardown(p);
        p->done(p, &r, p->userdata);
}

static void finish_with(struct probe *p, bool ok, int status, const char *fmt, ...) _printf_(4, 5);
static void finish_with(struct probe *p, bool ok, int status, const char *fmt, ...) {
        va_list ap;

        p->ok = ok;
        p->http_status = status;
        va_start(ap, fmt);
        vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
        va_end(ap);
        finish(p);
}

/* A result known before the loop ran (spawn or socket errors): delivered from a zero timer, never re-entrantly. */
static void defer(struct probe *p) {
        ev_io_stop(p->loop, &p->io);
        ev_timer_stop(p->loop, &p->timer);
        p->stage = STAGE_DEFERRED;
        ev_timer_set(&p->timer, 0., 0.);
        ev_timer_start(p->loop, &p->timer);
}

/* --- http response parsing ------------------------------------------------------ */

enum parse_result { PARSE_MORE, PARSE_DONE, PARSE_MALFORMED, PARSE_TOO_LARGE };

struct response {
        int status;
        size_t header_end;      /* offset of the body */
        bool chunked;
        bool has_length;
        size_t length;
        const char *body;       /* PARSE_DONE: the (decoded) body */
        size_t body_len;
};

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m) {
        if (m == 0)
                return hay;
        for (size_t i = 0; i + m <= n; i++)
                if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
                        return hay + i;
        return NULL;
}

/* The end of the header block (the offset after the blank line), or 0 while it has not arrived. */
static size_t header_end(const char *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (b[i] != '\n')
                        continue;
                if (i + 1 < n && b[i + 1] == '\n')
                        return i + 2;
                if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
                        return i + 3;
        }
        return 0;
}

static bool is_token_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parses "HTTP/1.x NNN ..." and the header lines in b[0..end). */
static enum parse_result parse_head(const char *b, size_t end, size_t max, struct response *resp) {
        size_t i = 0, eol;

        if (end < 14 || memcmp(b, "HTTP/1.", 7) != 0 || b[7] < '0' || b[7] > '9' || b[8] != ' ')
                return PARSE_MALFORMED;
        for (i = 9; i < 12; i++)
                if (b[i] < '0' || b[i] > '9')
                        return PARSE_MALFORMED;
        resp->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
        if (resp->status < 100 || (b[12] != ' ' && b[12] != '\r' && b[12] != '\n'))
                return PARSE_MALFORMED;

        /* Header lines: "name: value", name a token. */
        for (i = 12; b[i] != '\n'; i++)
                ;
        for (i++; i < end; i = eol + 1) {
                const char *line = b + i, *colon;
                size_t len;

                for (eol = i; b[eol] != '\n'; eol++)
                        ;
                len = eol - i;
                if (len > 0 && line[len - 1] == '\r')
                        len--;
                if (len == 0)
                        break;
                colon = memchr(line, ':', len);
                if (!colon || colon == line)
                        return PARSE_MALFORMED;
                for (const char *c = line; c < colon; c++)
                        if (!is_token_char(*c))
                                return PARSE_MALFORMED;
                {
                        size_t nlen = (size_t) (colon - line), vlen = len - nlen - 1;
                        const char *v = colon + 1;

                        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                                v++;
                                vlen--;
                        }
                        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                                vlen--;
                        if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
                                size_t value = 0;

                                if (vlen == 0 || resp->has_length)
                                        return PARSE_MALFORMED;
                                for (size_t k = 0; k < vlen; k++) {
                                        if (v[k] < '0' || v[k] > '9')
                                                return PARSE_MALFORMED;
                                        if (value > max)
                                                return PARSE_TOO_LARGE;
                                        value = value * 10 + (size_t) (v[k] - '0');
                                }
                                resp->has_length = true;
                                resp->length = value;
                        } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
                                if (find_bytes(v, vlen, "chunked", 7))
                                        resp->chunked = true;
                        }
                }
        }
        resp->header_end = end;
        return PARSE_DONE;
}

/*
 * Walks a chunked body in b[0..n). With `out` it also decodes it there (in
 * place: the output never overtakes the input). PARSE_MORE while incomplete.
 */
static enum parse_result walk_chunks(char *b, size_t n, size_t *ret_len, bool decode) {
        size_t i = 0, out = 0;

        for (;;) {
                size_t size = 0, digits = 0;

                while (i < n && ((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f') ||
                                 (b[i] >= 'A' && b[i] <= 'F'))) {
                        int d = b[i] <= '9' ? b[i] - '0' : (b[i] | 0x20) - 'a' + 10;
                        if (size > (SIZE_MAX >> 4))
                                return PARSE_TOO_LARGE;
                        size = size * 16 + (size_t) d;
                        digits++;
                        i++;
                }
                if (i >= n)
                        return PARSE_MORE;
                if (digits == 0)
                        return PARSE_MALFORMED;
                /* Chunk extensions (";name=value") are skipped up to the end of the line. */
                while (i < n && b[i] != '\n')
                        i++;
                if (i >= n)
                        return PARSE_MORE;
                i++;
                if (size == 0) {
                        /* Trailers, then the blank line. */
                        for (;;) {
                                size_t start = i;
                                while (i < n && b[i] != '\n')
                                        i++;
                                if (i >= n)
                                        return PARSE_MORE;
                                i++;
                                if (i - start == 1 || (i - start == 2 && b[start] == '\r')) {
                                        *ret_len = out;
                                        return PARSE_DONE;
                                }
                        }
                }
                if (size > n - i)
                        return PARSE_MORE;
                if (decode)
                        memmove(b + out, b + i, size);
                out += size;
                i += size;
                if (i < n && b[i] == '\r')
                        i++;
                if (i >= n)
                        return PARSE_MORE;
                if (b[i] != '\n')
                        return PARSE_MALFORMED;
                i++;
        }
}

/* Is the response in p->buf complete (eof: the peer has closed)? Fills resp when PARSE_DONE. */
static enum parse_result parse_response(struct probe *p, bool eof, struct response *resp) {
        size_t end, len;
        enum parse_result r;

        /* Garbage is recognised as soon as its first bytes are in, rather than at the timeout. */
        len = p->len < 5 ? p->len : 5;
        if (memcmp(p->buf, "HTTP/", len) != 0)
                return PARSE_MALFORMED;
        end = header_end(p->buf, p->len);
        if (end == 0)
                return PARSE_MORE;
        *resp = (struct response) { .status = 0 };
        r = parse_head(p->buf, end, p->max_response, resp);
        if (r != PARSE_DONE)
                return r;

        /* No body for 1xx, 204 and 304. */
        if (resp->status < 200 || resp->status == 204 || resp->status == 304) {
                resp->body = p->buf + end;
                resp->body_len = 0;
                return PARSE_DONE;
        }
        if (resp->chunked) {
                size_t body_len;
                r = walk_chunks(p->buf + end, p->len - end, &body_len, false);
                if (r != PARSE_DONE)
                        return r;
                walk_chunks(p->buf + end, p->len - end, &body_len, true);
                resp->body = p->buf + end;
                resp->body_len = body_len;
                return PARSE_DONE;
        }
        if (resp->has_length) {
                if (resp->length > p->max_response - end)
                        return PARSE_TOO_LARGE;
                if (p->len - end < resp->length)
                        return PARSE_MORE;
                resp->body = p->buf + end;
                resp->body_len = resp->length;
                return PARSE_DONE;
        }
        if (!eof)
                return PARSE_MORE;
        resp->body = p->buf + end;
        resp->body_len = p->len - end;
        return PARSE_DONE;
}

static void judge_response(struct probe *p, const struct response *resp) {
        if (resp->status < p->status_min || resp->status > p->status_max) {
                finish_with(p, false, resp->status, "HTTP %d", resp->status);
                return;
        }
        if (p->expect_body && !find_bytes(resp->body, resp->body_len, p->expect_body, p->expect_len)) {
                finish_with(p, false, resp->status, "HTTP %d, body does not contain the expected text", resp->status);
                return;
        }
        finish_with(p, true, resp->status, "HTTP %d", resp->status);
}

/* --- socket I/O ------------------------------------------------------------------- */

/* Makes room for more of the response: doubles the buffer, up to max_response + 1 bytes. */
static int grow_buffer(struct probe *p) {
        /* One byte of room past the cap tells "exactly the cap" from "more than the cap". */
        size_t limit = p->max_response + 1, cap;
        char *b;

        if (p->cap >= limit)
                return -EFBIG;
        cap = p->cap ? p->cap * 2 : PROBE_BUF_KEEP;
        if (cap > limit)
                cap = limit;
        b = realloc(p->buf, cap);
        if (!b)
                return -ENOMEM;
        p->buf = b;
        p->cap = cap;
        return 0;
}

static void on_readable(struct probe *p) {
        struct response resp;
        enum parse_result r;
        bool eof = false;

        for (;;) {
                size_t room;
                ssize_t n;

                if (p->len == p->cap) {
                        int g = grow_buffer(p);
                        if (g == -EFBIG) {
                                finish_with(p, false, 0, "response too large");
                                return;
                        }
                        if (g < 0) {
                                finish_with(p, false, 0, "recv: %s", strerror(-g));
                                return;
                        }
                }
                room = p->cap - p->len;
                n = recv(p->fd, p->buf + p->len, room, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        if (p->len == 0) {
                                finish_with(p, false, 0, "recv: %s", strerror(errno));
                                return;
                        }
                        /* A reset after a complete response still counts; judge what arrived. */
                        eof = true;
                        break;
                }
                if (n == 0) {
                        eof = true;
                        break;
                }
                p->len += (size_t) n;
                /*
                 * A stream socket hands over all it holds, up to the room
                 * given: less than that means it is drained for now. Judging
                 * here saves the recv() that would only say EAGAIN; when the
                 * response is not complete yet, the socket stays watched and
                 * the rest (or the close) is read when it comes.
                 */
                if ((size_t) n < room)
                        break;
        }

        if (p->len > p->max_response) {
                finish_with(p, false, 0, "response too large");
                return;
        }
        if (p->len == 0) {
                if (eof)
                        finish_with(p, false, 0, "connection closed early");
                return;
        }
        r = parse_response(p, eof, &resp);
        switch (r) {
        case PARSE_DONE:
                p->reset_on_close = true;
                judge_response(p, &resp);
                return;
        case PARSE_MALFORMED:
                finish_with(p, false, 0, "malformed response");
                return;
        case PARSE_TOO_LARGE:
                finish_with(p, false, 0, "response too large");
                return;
        default:
                if (eof)
                        finish_with(p, false, 0, "connection closed early");
                return;
        }
}

static void on_writable(struct probe *p) {
        if (p->stage == STAGE_CONNECTING) {
                int err = 0;
                socklen_t l = sizeof(err);

                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                        err = errno;
                if (err == EINPROGRESS)
                        return;
                if (err != 0) {
                        finish_with(p, false, 0, "connect: %s", strerror(err));
                        return;
                }
                if (p->type == PROBE_TCP) {
                        finish_with(p, true, 0, "connected");
                        return;
                }
                p->stage = STAGE_SENDING;
        }

        while (p->sent < p->request_len) {
                ssize_t n = send(p->fd, p->request + p->sent, p->request_len - p->sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        finish_with(p, false, 0, "send: %s", strerror(errno));
                        return;
                }
                p->sent += (size_t) n;
        }
        p->stage = STAGE_READING;
        ev_io_stop(p->loop, &p->io);
        ev_io_set(&p->io, p->fd, EV_READ);
        ev_io_start(p->loop, &p->io);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
        struct probe *p = w->data;

        (void) loop;
        if (p->stage == STAGE_READING) {
                if (revents & EV_READ)
                        on_readable(p);
        } else if (revents & EV_WRITE)
                on_writable(p);
}

/* Watches the socket for what the current stage waits for. */
static void watch_socket(struct probe *p, int events) {
        ev_io_set(&p->io, p->fd, events);
        ev_io_start(p->loop, &p->io);
}

/*
 * The request goes out at once when the connection is already up, which on
 * loopback and most LANs it is by the time connect() returns: that saves a
 * loop wakeup, the SO_ERROR query and a change of the watched events per
 * check. send() on a socket still connecting says EAGAIN (then writability
 * tells when, as usual); on one whose connect failed it returns that error.
 * Returns 0 or a negative errno (of the send when the stage is STAGE_SENDING,
 * else of the connect).
 */
static int send_early(struct probe *p) {
        ssize_t n;

        do
                n = send(p->fd, p->request, p->request_len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        p->stage = STAGE_CONNECTING;
                        watch_socket(p, EV_WRITE);
                        return 0;
                }
                /*
                 * Mostly the connect's own failure (refused, unreachable, ...),
                 * reported as one; a connection that came up and was dropped
                 * at once fails the send (the stage tells probe_start()).
                 */
                if (errno == EPIPE || errno == ECONNRESET)
                        p->stage = STAGE_SENDING;
                return -errno;
        }
        p->sent = (size_t) n;
        if (p->sent < p->request_len) {
                p->stage = STAGE_SENDING;
                watch_socket(p, EV_WRITE);
                return 0;
        }
        p->stage = STAGE_READING;
        watch_socket(p, EV_READ);
        return 0;
}

static int start_socket(struct probe *p) {
        int r;

        p->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0)
                return -errno;
        if (p->type == PROBE_HTTP && !p->buf) {
                r = grow_buffer(p);
                if (r < 0)
                        return r;
        }
        do
                r = connect(p->fd, (struct sockaddr *) &p->addr, p->addrlen);
        while (r < 0 && errno == EINTR);
        if (r < 0 && errno != EINPROGRESS)
                return -errno;
        if (p->type == PROBE_HTTP)
                return send_early(p);
        /* Connected at once or not, writability says when; SO_ERROR tells which. */
        p->stage = STAGE_CONNECTING;
        watch_socket(p, EV_WRITE);
        return 0;
}

/* --- exec --------------------------------------------------------------------------- */

static void child_cb(struct ev_loop *loop, ev_child *w, int revents) {
        struct probe *p = w->data;
        int st = w->rstatus;

        (void) revents;
        ev_child_stop(loop, w);
        p->pid = 0;     /* reaped by libev */
        if (p->stage == STAGE_KILLED) {
                finish(p);      /* the timeout result is already stored */
                return;
        }
        if (WIFEXITED(st))
                finish_with(p, WEXITSTATUS(st) == 0, 0, "exit status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                finish_with(p, false, 0, "killed by signal %d", WTERMSIG(st));
        else
                finish_with(p, false, 0, "wait status %d", st);
}

static int start_child(struct probe *p) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t mask, def;
        int r;

        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        /* No terminal, no output into the agent's journal stream, no inherited descriptors. */
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
        /*
         * Its own process group, so the timeout's SIGKILL also reaches what it
         * started; signals unblocked and at their defaults whatever the agent set.
         */
        sigemptyset(&mask);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGHUP);
        sigaddset(&def, SIGINT);
        sigaddset(&def, SIGQUIT);
        sigaddset(&def, SIGTERM);
        sigaddset(&def, SIGCHLD);
        sigaddset(&def, SIGUSR1);
        sigaddset(&def, SIGUSR2);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                            POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setpgroup(&attr, 0);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &mask);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &def);
        if (r == 0)
                r = posix_spawnp(&p->pid, p->argv[0], &fa, &attr, p->argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0) {
                p->pid = 0;
                return -r;
        }
        /* Started before the loop runs again, so the exit cannot be missed. */
        ev_child_set(&p->child, p->pid, 0);
        ev_child_start(p->loop, &p->child);
        p->stage = STAGE_CHILD;
        return 0;
}

/* --- timer: timeout, reap grace, deferred results ---------------------------------- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct probe *p = w->data;

        (void) loop;
        (void) revents;
        switch (p->stage) {
        case STAGE_DEFERRED:
                finish(p);
                return;
        case STAGE_CHILD:
                /* Kill it and wait (briefly) for the reap, so the probe never leaves a zombie behind. */
                set_timeout_result(p);
                kill(-p->pid, SIGKILL);
                kill(p->pid, SIGKILL);
                p->stage = STAGE_KILLED;
                ev_timer_set(&p->timer, PROBE_REAP_GRACE, 0.);
                ev_timer_start(p->loop, &p->timer);
                return;
        case STAGE_KILLED:
                /* Not reaped within the grace (stuck in the kernel): report; libev reaps it when it dies. */
                snprintf(p->reason + strlen(p->reason), sizeof(p->reason) - strlen(p->reason), " (not reaped yet)");
                finish(p);
                return;
        default:
                set_timeout_result(p);
                finish(p);
                return;
        }
}

int probe_start(struct probe *p) {
        int r;

        if (p->stage != STAGE_IDLE)
                return -EBUSY;
        p->started_us = util_now_mono_us();
        p->ok = false;
        p->http_status = 0;
        p->reason[0] = '\0';
        p->len = 0;
        p->sent = 0;
        ev_init(&p->io, io_cb);
        p->io.data = p;
        ev_init(&p->timer, timer_cb);
        p->timer.data = p;
        ev_init(&p->child, child_cb);
        p->child.data = p;

        if (p->type == PROBE_EXEC) {
                r = start_child(p);
                if (r < 0) {
                        set_result(p, false, 0, "spawn %s: %s", p->argv[0], strerror(-r));
                        defer(p);
                        return 0;
                }
        } else {
                r = start_socket(p);
                if (r < 0) {
                        const char *what = p->stage == STAGE_SENDING ? "send" : "connect";

                        if (p->fd >= 0) {
                                close(p->fd);
                                p->fd = -1;
                        }
                        set_result(p, false, 0, "%s: %s", what, strerror(-r));
                        defer(p);
                        return 0;
                }
        }
        /* The timeout counts from now, not from the start of this loop iteration. */
        ev_now_update(p->loop);
        ev_timer_set(&p->timer, (double) p->timeout_us / 1e6, 0.);
        ev_timer_start(p->loop, &p->timer);
        return 0;
}

void probe_cancel(struct probe *p) {
        if (!p || p->stage == STAGE_IDLE)
                return;
        teardown(p);
}

void probe_free(struct probe *p) {
        if (!p)
                return;
        probe_cancel(p);
        free(p->buf);
        free(p->request);
        free(p->expect_body);
        free(p->command);
        free(p->argv);
        free(p);
}
