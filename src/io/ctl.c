#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/ctl.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define CTL_DEFAULT_MAX_CLIENTS 64
#define CTL_DEFAULT_IDLE_US     (10 * USEC_PER_SEC)
#define CTL_LISTEN_BACKLOG      128
#define CTL_READ_CHUNK          4096
/* More supplementary groups than this and only uid and primary gid count. */
#define CTL_MAX_PEER_GROUPS     1024
/* accept() ran out of descriptors: wait this long (s) before trying again. */
#define CTL_ACCEPT_PAUSE        0.1
/* Connections accepted per wakeup, so a flood cannot starve the clients. */
#define CTL_ACCEPT_BURST        16

struct ctl_client {
        TAILQ_ENTRY(ctl_client) entry;
        struct ctl *ctl;
        int fd;
        ev_io rio;
        ev_io wio;
        ev_timer idle;

        struct ctl_caller caller;       /* admin is recomputed per request */
        gid_t *groups;                  /* supplementary groups at connect */
        size_t n_groups;

        char *in;                       /* at most max_request + 1 bytes */
        size_t in_len, in_cap;
        char *out;                      /* the one reply being written */
        size_t out_len, out_off;

        bool eof;                       /* the client shut down its side */
        bool closing;                   /* close once out is flushed */
        bool broken;                    /* unusable: close now */
        bool waiting;                   /* its request awaits ctl_reply() */
        uint64_t pending_id;            /* that request's id, while waiting */
};

TAILQ_HEAD(ctl_client_list, ctl_client);

struct ctl {
        struct ev_loop *loop;
        int fd;
        ev_io accept_io;
        ev_timer accept_pause;

        char *path;
        dev_t dev;                      /* identity of the socket we bound */
        ino_t ino;

        ctl_handler_fn handler;
        ctl_denied_fn denied;
        void *userdata;

        gid_t admin_gid;
        unsigned max_clients;
        uint64_t idle_timeout_us;
        size_t max_request;

        char *busy_line;                /* the too_many_clients reply */
        size_t busy_len;

        struct ctl_client_list clients;
        struct ctl_stats stats;
        uint64_t next_request_id;       /* the id the next request gets */
};

/*
 * What ctl_reply_later() returns: an address no JSON value can have, so a
 * handler's answer can be told from it by comparison alone. It is never
 * dereferenced, serialized or released.
 */
static char late_token;
#define CTL_LATE ((json_t *) (void *) &late_token)

static void client_update(struct ctl_client *cl);

static bool caller_is_admin(const struct ctl *c, const struct ctl_client *cl) {
        if (cl->caller.uid == 0)
                return true;
        if (c->admin_gid == (gid_t) -1)
                return false;
        if (cl->caller.gid == c->admin_gid)
                return true;
        for (size_t i = 0; i < cl->n_groups; i++)
                if (cl->groups[i] == c->admin_gid)
                        return true;
        return false;
}

/*
 * The peer's supplementary groups as the kernel recorded them at connect().
 * The list is bounded: a caller with more groups than we are willing to hold
 * gets none recorded, which can only cost it admin rights, never grant them.
 */
static void peer_groups(int fd, gid_t **ret_groups, size_t *ret_n) {
        size_t n = 64;

        *ret_groups = NULL;
        *ret_n = 0;
        for (;;) {
                socklen_t len = (socklen_t) (n * sizeof(gid_t));
                gid_t *g = malloc(n * sizeof(gid_t));

                if (!g)
                        return;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
                        *ret_groups = g;
                        *ret_n = len / sizeof(gid_t);
                        return;
                }
                free(g);
                /* On ERANGE the kernel reports the size it needs in len. */
                if (errno != ERANGE || len / sizeof(gid_t) <= n ||
                    len / sizeof(gid_t) > CTL_MAX_PEER_GROUPS)
                        return;
                n = len / sizeof(gid_t);
        }
}

static void client_free(struct ctl_client *cl) {
        struct ctl *c = cl->ctl;

        ev_io_stop(c->loop, &cl->rio);
        ev_io_stop(c->loop, &cl->wio);
        ev_timer_stop(c->loop, &cl->idle);
        TAILQ_REMOVE(&c->clients, cl, entry);
        c->stats.clients--;
        close(cl->fd);
        free(cl->groups);
        free(cl->in);
        free(cl->out);
        free(cl);
}

/*
 * Writes as much of the pending reply as the socket takes. Progress counts as
 * activity: a client reading a large reply slowly is not idle, but once the
 * connection is closing nothing may extend its life.
 */
static int client_flush(struct ctl_client *cl) {
        bool progress = false;

        while (cl->out_off < cl->out_len) {
                ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                cl->out_off += (size_t) n;
                progress = true;
        }
        if (progress && !cl->closing)
                ev_timer_again(cl->ctl->loop, &cl->idle);
        if (cl->out_off == cl->out_len) {
                free(cl->out);
                cl->out = NULL;
                cl->out_len = cl->out_off = 0;
        }
        return 0;
}

/*
 * Makes REPLY (stolen) the client's pending output. A reply that cannot be
 * serialized or that no client would accept (over CTL_MAX_REPLY) is replaced
 * by an internal error, so every request still gets exactly one answer.
 */
static void client_queue(struct ctl_client *cl, json_t *reply) {
        char *line = NULL;
        size_t len = 0;

        if (reply)
                line = ctlproto_dump(reply, &len);
        json_decref(reply);
        if (line && len - 1 > CTL_MAX_REPLY) {
                json_t *e = ctlproto_error(CTL_ERR_INTERNAL, "reply of %zu bytes exceeds the limit of %d bytes",
                                           len - 1, CTL_MAX_REPLY);
                free(line);
                line = e ? ctlproto_dump(e, &len) : NULL;
                json_decref(e);
        } else if (!line) {
                json_t *e = ctlproto_error(CTL_ERR_INTERNAL, "the reply could not be built");
                line = e ? ctlproto_dump(e, &len) : NULL;
                json_decref(e);
        }
        if (!line) {
                cl->broken = true;
                return;
        }
        free(cl->out);
        cl->out = line;
        cl->out_len = len;
        cl->out_off = 0;
}

static bool line_blank(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

static void client_handle_line(struct ctl_client *cl, const char *line, size_t len) {
        struct ctl *c = cl->ctl;
        struct ctl_request req;
        struct ctl_caller caller;
        const char *code = CTL_ERR_INTERNAL;
        char msg[512];
        json_t *reply;
        int r;

        /* An empty line is a typing slip in an interactive session, not a request. */
        if (line_blank(line, len))
                return;
        ev_timer_again(c->loop, &cl->idle);

        r = ctlproto_parse_request(line, len, &req, &code, msg, sizeof msg);
        if (r < 0) {
                c->stats.bad_requests++;
                client_queue(cl, ctlproto_error(code, "%s", msg));
                return;
        }

        caller = cl->caller;
        caller.admin = caller_is_admin(c, cl);
        caller.request_id = c->next_request_id++;
        if (req.verb->mutating && !caller.admin) {
                c->stats.denied++;
                client_queue(cl, ctlproto_error(CTL_ERR_PERMISSION_DENIED,
                                                "\"%s\" changes the agent: it needs root or the admin group",
                                                req.verb->name));
                if (!cl->broken && client_flush(cl) < 0)
                        cl->broken = true;
                if (c->denied)
                        c->denied(&caller, req.verb, c->userdata);
                ctlproto_request_done(&req);
                return;
        }

        reply = c->handler(&caller, req.verb, req.args, c->userdata);
        if (reply == CTL_LATE) {
                /* The handler owns the deadline now; idle time resumes with the reply. */
                cl->waiting = true;
                cl->pending_id = caller.request_id;
                ev_timer_stop(c->loop, &cl->idle);
                ctlproto_request_done(&req);
                return;
        }
        if (!reply)
                reply = ctlproto_error(CTL_ERR_INTERNAL, "\"%s\" failed inside the agent", req.verb->name);
        client_queue(cl, reply);
        ctlproto_request_done(&req);
}

static void client_too_large(struct ctl_client *cl) {
        struct ctl *c = cl->ctl;

        c->stats.bad_requests++;
        client_queue(cl, ctlproto_error(CTL_ERR_TOO_LARGE, "request exceeds the limit of %zu bytes",
                                        c->max_request));
        cl->closing = true;
        cl->in_len = 0;
}

/*
 * A client that half-closed (shutdown SHUT_WR) still reads its replies; one
 * that closed its socket cannot. The kernel tells them apart on our end of a
 * Unix stream socket: only a full close makes it report a hangup.
 */
static bool client_hung_up(const struct ctl_client *cl) {
        struct pollfd p = { .fd = cl->fd, .events = POLLOUT };

        if (poll(&p, 1, 0) < 0)
                return false;
        return (p.revents & (POLLHUP | POLLERR)) != 0;
}

/*
 * The one place that moves a client forward: flush pending output, answer
 * buffered requests one at a time, then decide which watchers run. A request
 * is only taken up once the previous reply has left, so a client that never
 * reads holds at most one reply and max_request bytes of input; its socket
 * buffers fill and its own writes block. May free cl.
 */
static void client_update(struct ctl_client *cl) {
        struct ctl *c = cl->ctl;

        for (;;) {
                char *nl;
                size_t line_len;

                if (cl->broken)
                        goto destroy;
                if (cl->out) {
                        if (client_flush(cl) < 0)
                                goto destroy;
                        if (cl->out)
                                break;
                }
                if (cl->closing || cl->waiting)
                        break;

                nl = cl->in_len > 0 ? memchr(cl->in, '\n', cl->in_len) : NULL;
                if (!nl) {
                        if (cl->in_len > c->max_request)
                                client_too_large(cl);
                        else
                                break;
                        continue;
                }
                line_len = (size_t) (nl - cl->in);
                if (line_len > c->max_request) {
                        client_too_large(cl);
                        continue;
                }
                client_handle_line(cl, cl->in, line_len);
                cl->in_len -= line_len + 1;
                memmove(cl->in, nl + 1, cl->in_len);
        }

        if (cl->waiting) {
                /*
                 * Reading goes on while there is room, only to notice a client
                 * that hangs up: its pending request is then forgotten. What it
                 * sent meanwhile is answered after the late reply, in order. One
                 * that filled its input buffer is found gone when the reply is
                 * written instead.
                 */
                if (cl->eof && client_hung_up(cl))
                        goto destroy;
                ev_io_stop(c->loop, &cl->wio);
                if (!cl->eof && cl->in_len <= c->max_request)
                        ev_io_start(c->loop, &cl->rio);
                else
                        ev_io_stop(c->loop, &cl->rio);
                return;
        }

        /* At EOF an unterminated tail is not a request: the client gave up on it. */
        if (!cl->out && (cl->closing || cl->eof))
                goto destroy;

        if (cl->out)
                ev_io_start(c->loop, &cl->wio);
        else
                ev_io_stop(c->loop, &cl->wio);
        if (!cl->out && !cl->closing && !cl->eof)
                ev_io_start(c->loop, &cl->rio);
        else
                ev_io_stop(c->loop, &cl->rio);
        return;

destroy:
        client_free(cl);
}

static void client_read_cb(struct ev_loop *loop _unused_, ev_io *w, int revents _unused_) {
        struct ctl_client *cl = w->data;
        size_t max = cl->ctl->max_request + 1;
        ssize_t n;

        if (cl->in_len == cl->in_cap) {
                size_t ncap = cl->in_cap ? cl->in_cap * 2 : CTL_READ_CHUNK;
                char *nin;

                if (ncap > max)
                        ncap = max;
                /* Cannot happen: a full buffer without a newline is too_large. */
                if (ncap <= cl->in_cap) {
                        cl->broken = true;
                        client_update(cl);
                        return;
                }
                nin = realloc(cl->in, ncap);
                if (!nin) {
                        cl->broken = true;
                        client_update(cl);
                        return;
                }
                cl->in = nin;
                cl->in_cap = ncap;
        }

        n = recv(cl->fd, cl->in + cl->in_len, cl->in_cap - cl->in_len, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                cl->broken = true;
        } else if (n == 0)
                cl->eof = true;
        else
                cl->in_len += (size_t) n;
        client_update(cl);
}

static void client_write_cb(struct ev_loop *loop _unused_, ev_io *w, int revents _unused_) {
        client_update(w->data);
}

/*
 * A client that completed no request in time is told why before it is cut
 * off. If it is not even reading what we already sent, it gets one more idle
 * period to take it, then the connection is dropped.
 */
static void client_idle_cb(struct ev_loop *loop, ev_timer *w, int revents _unused_) {
        struct ctl_client *cl = w->data;
        struct ctl *c = cl->ctl;

        if (cl->closing) {
                client_free(cl);
                return;
        }
        c->stats.timeouts++;
        if (!cl->out)
                client_queue(cl, ctlproto_error(CTL_ERR_TIMEOUT, "no complete request within %" PRIu64 " ms",
                                                c->idle_timeout_us / USEC_PER_MSEC));
        cl->closing = true;
        cl->in_len = 0;
        ev_timer_again(loop, &cl->idle);
        client_update(cl);
}

static void client_new(struct ctl *c, int fd) {
        struct ctl_client *cl;
        struct ucred cred;
        socklen_t len = sizeof cred;

        /* Without credentials there is no way to decide what the caller may do. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred) {
                close(fd);
                return;
        }
        cl = calloc(1, sizeof *cl);
        if (!cl) {
                close(fd);
                return;
        }
        cl->ctl = c;
        cl->fd = fd;
        cl->caller = (struct ctl_caller) { .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
        peer_groups(fd, &cl->groups, &cl->n_groups);

        ev_io_init(&cl->rio, client_read_cb, fd, EV_READ);
        cl->rio.data = cl;
        ev_io_init(&cl->wio, client_write_cb, fd, EV_WRITE);
        cl->wio.data = cl;
        ev_timer_init(&cl->idle, client_idle_cb, 0., (ev_tstamp) c->idle_timeout_us / 1e6);
        cl->idle.data = cl;

        TAILQ_INSERT_TAIL(&c->clients, cl, entry);
        c->stats.clients++;
        c->stats.accepted++;
        ev_io_start(c->loop, &cl->rio);
        ev_timer_again(c->loop, &cl->idle);
}

/*
 * Over the limit the connection is still accepted, so the caller learns why
 * instead of hanging in the backlog. The reply is tiny and the socket fresh,
 * so one non-blocking send either fits or the client loses only the reason.
 */
static void refuse_busy(struct ctl *c, int fd) {
        c->stats.refused_busy++;
        if (c->busy_line)
                (void) send(fd, c->busy_line, c->busy_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents _unused_) {
        struct ctl *c = w->data;

        ev_timer_stop(loop, &c->accept_pause);
        ev_io_start(loop, &c->accept_io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents _unused_) {
        struct ctl *c = w->data;

        for (int i = 0; i < CTL_ACCEPT_BURST; i++) {
                int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                        switch (errno) {
                        case EINTR:
                        case ECONNABORTED:
                        case EPROTO:
                                continue;
                        case EMFILE:
                        case ENFILE:
                        case ENOBUFS:
                        case ENOMEM:
                                /*
                                 * The pending connection stays in the backlog and
                                 * the listener stays readable: without a pause
                                 * the loop would spin on it.
                                 */
                                ev_io_stop(loop, &c->accept_io);
                                ev_timer_set(&c->accept_pause, CTL_ACCEPT_PAUSE, 0.);
                                ev_timer_start(loop, &c->accept_pause);
                                return;
                        default:
                                return;
                        }
                }
                if (c->stats.clients >= c->max_clients)
                        refuse_busy(c, fd);
                else
                        client_new(c, fd);
        }
}

/*
 * The umask decides the mode bind() gives the socket file; setting it for
 * the call makes the file 0660 from its first instant instead of briefly
 * wider until a chmod.
 */
static int bind_0660(int fd, const struct sockaddr_un *sa) {
        mode_t old = umask(0117);
        int r = bind(fd, (const struct sockaddr *) sa, sizeof *sa);
        int e = errno;

        umask(old);
        return r < 0 ? -e : 0;
}

/*
 * A socket file left by a crashed agent refuses connections and may be
 * replaced; one that answers belongs to a running agent and must not be; and
 * a path that is not a socket at all is somebody's file we must not delete.
 */
static int remove_stale(const char *path, const struct sockaddr_un *sa) {
        _cleanup_close_ int probe = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0)
                return -errno;
        if (connect(probe, (const struct sockaddr *) sa, sizeof *sa) == 0)
                return -EADDRINUSE;
        switch (errno) {
        case EAGAIN:            /* listening, backlog full */
                return -EADDRINUSE;
        case ECONNREFUSED:
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        default:
                return -errno;
        }
}

static int ctl_listen(struct ctl *c, gid_t socket_gid) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int r;

        strcpy(sa.sun_path, c->path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        r = bind_0660(fd, &sa);
        if (r == -EADDRINUSE) {
                r = remove_stale(c->path, &sa);
                if (r < 0)
                        return r;
                r = bind_0660(fd, &sa);
        }
        if (r < 0)
                return r;

        if (lstat(c->path, &st) < 0) {
                r = -errno;
                goto fail;
        }
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        if ((st.st_mode & 07777) != 0660 && chmod(c->path, 0660) < 0) {
                r = -errno;
                goto fail;
        }
        if (socket_gid != (gid_t) -1 && lchown(c->path, (uid_t) -1, socket_gid) < 0) {
                r = -errno;
                goto fail;
        }
        if (listen(fd, CTL_LISTEN_BACKLOG) < 0) {
                r = -errno;
                goto fail;
        }
        c->fd = fd;
        fd = -1;
        return 0;

fail:
        unlink(c->path);
        return r;
}

int ctl_new(struct ev_loop *loop, const struct ctl_options *opts, ctl_handler_fn handler,
            ctl_denied_fn denied, void *userdata, struct ctl **ret) {
        struct sockaddr_un sa;
        struct ctl *c;
        json_t *busy;
        int r;

        if (!loop || !opts || !opts->path || !handler || !ret)
                return -EINVAL;
        if (opts->path[0] == '\0' || opts->max_request > CTL_MAX_REQUEST)
                return -EINVAL;
        if (strlen(opts->path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->loop = loop;
        c->fd = -1;
        c->handler = handler;
        c->denied = denied;
        c->userdata = userdata;
        c->admin_gid = opts->admin_gid;
        c->max_clients = opts->max_clients ? opts->max_clients : CTL_DEFAULT_MAX_CLIENTS;
        c->idle_timeout_us = opts->idle_timeout_us ? opts->idle_timeout_us : CTL_DEFAULT_IDLE_US;
        c->max_request = opts->max_request ? opts->max_request : CTL_MAX_REQUEST;
        c->next_request_id = 1;
        TAILQ_INIT(&c->clients);

        c->path = strdup(opts->path);
        busy = ctlproto_error(CTL_ERR_TOO_MANY_CLIENTS, "the control socket serves at most %u clients at once",
                              c->max_clients);
        if (busy)
                c->busy_line = ctlproto_dump(busy, &c->busy_len);
        json_decref(busy);
        if (!c->path || !c->busy_line) {
                r = -ENOMEM;
                goto fail;
        }

        r = ctl_listen(c, opts->socket_gid);
        if (r < 0)
                goto fail;

        ev_io_init(&c->accept_io, accept_cb, c->fd, EV_READ);
        c->accept_io.data = c;
        ev_init(&c->accept_pause, accept_pause_cb);
        c->accept_pause.data = c;
        ev_io_start(loop, &c->accept_io);

        *ret = c;
        return 0;

fail:
        free(c->busy_line);
        free(c->path);
        free(c);
        return r;
}

void ctl_free(struct ctl *c) {
        struct ctl_client *cl;
        struct stat st;

        if (!c)
                return;
        while ((cl = TAILQ_FIRST(&c->clients)))
                client_free(cl);
        ev_io_stop(c->loop, &c->accept_io);
        ev_timer_stop(c->loop, &c->accept_pause);

        /* Another agent may have replaced our socket since: leave theirs alone. */
        if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == c->dev && st.st_ino == c->ino)
                unlink(c->path);
        if (c->fd >= 0)
                close(c->fd);
        free(c->busy_line);
        free(c->path);
        free(c);
}

json_t *ctl_reply_later(void) {
        return CTL_LATE;
}

/*
 * Request ids are never reused, so an id whose client has gone matches
 * nothing, even if a new client took its place in the list meanwhile.
 */
int ctl_reply(struct ctl *c, uint64_t request_id, json_t *reply) {
        struct ctl_client *cl;

        if (reply == CTL_LATE)
                reply = NULL;
        if (!c) {
                json_decref(reply);
                return -EINVAL;
        }
        TAILQ_FOREACH(cl, &c->clients, entry)
                if (cl->waiting && cl->pending_id == request_id)
                        break;
        if (!cl) {
                json_decref(reply);
                return -ENOENT;
        }
        if (!reply)
                reply = ctlproto_error(CTL_ERR_INTERNAL, "the agent gave no answer to the request");
        cl->waiting = false;
        cl->pending_id = 0;
        client_queue(cl, reply);
        ev_timer_again(c->loop, &cl->idle);
        client_update(cl);
        return 0;
}

void ctl_set_admin_gid(struct ctl *c, gid_t admin_gid) {
        if (c)
                c->admin_gid = admin_gid;
}

void ctl_get_stats(const struct ctl *c, struct ctl_stats *ret) {
        if (!c || !ret)
                return;
        *ret = c->stats;
}
