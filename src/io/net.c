/*
 * UDP and TCP for gossip in the agent's libev loop. See net.h for the
 * contract; this file only adds how connections move through their states.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "io/net.h"

#define NET_PREFIX 4
#define NET_LISTEN_BACKLOG 64

enum conn_state {
        CONN_CONNECTING,        /* client: waiting for connect() to finish */
        CONN_WRITING,           /* sending our frame (client) or reply (server) */
        CONN_READING,           /* waiting for the peer's frame */
};

struct conn {
        struct net *net;
        struct conn *prev, *next;
        bool inbound;
        enum conn_state state;
        int fd;
        ev_io io;
        ev_timer timer;
        struct net_addr peer;
        uint64_t cookie;

        /* Outgoing: prefix and frame in one buffer. */
        uint8_t *out;
        size_t out_len, out_off;

        /* Incoming: the prefix, then a buffer that grows as bytes arrive. */
        uint8_t prefix[NET_PREFIX];
        size_t prefix_got;
        size_t in_len;          /* announced frame length */
        uint8_t *in;
        size_t in_cap, in_got;
};

struct net {
        struct ev_loop *loop;
        struct net_options opts;
        struct net_callbacks cb;
        int udp_fd;
        int tcp_fd;
        ev_io udp_io;
        ev_io tcp_io;
        uint16_t port;
        int family;
        struct net_addr local;  /* what we bound, for outgoing TCP sources */
        uint8_t *dgram;         /* receive buffer: max_datagram + 1 */
        struct conn *conns;
        struct net_stats stats;
};

/* ---- addresses ---------------------------------------------------------- */

static int addr_from_literal(const char *host, uint16_t port, struct net_addr *ret) {
        struct net_addr a = { 0 };
        struct sockaddr_in *in4 = (struct sockaddr_in *) &a.ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &a.ss;

        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons(port);
                a.len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                a.len = sizeof(*in6);
        } else
                return -EINVAL;
        *ret = a;
        return 0;
}

int net_addr_parse(const char *hostport, struct net_addr *ret) {
        char host[UTIL_HOSTPORT_MAX];
        uint16_t port;

        if (!hostport || util_parse_hostport(hostport, host, &port) < 0)
                return -EINVAL;
        return addr_from_literal(host, port, ret);
}

int net_addr_resolve(const char *hostport, struct net_addr *ret) {
        struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_family = AF_UNSPEC };
        struct addrinfo *res = NULL;
        char host[UTIL_HOSTPORT_MAX];
        uint16_t port;
        int r;

        if (!hostport || util_parse_hostport(hostport, host, &port) < 0)
                return -EINVAL;
        if (addr_from_literal(host, port, ret) == 0)
                return 0;
        r = getaddrinfo(host, NULL, &hints, &res);
        if (r != 0 || !res)
                return -EHOSTUNREACH;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    ai->ai_addrlen > sizeof(ret->ss))
                        continue;
                memset(ret, 0, sizeof(*ret));
                memcpy(&ret->ss, ai->ai_addr, ai->ai_addrlen);
                ret->len = ai->ai_addrlen;
                if (ai->ai_family == AF_INET)
                        ((struct sockaddr_in *) &ret->ss)->sin_port = htons(port);
                else
                        ((struct sockaddr_in6 *) &ret->ss)->sin6_port = htons(port);
                freeaddrinfo(res);
                return 0;
        }
        freeaddrinfo(res);
        return -EHOSTUNREACH;
}

const char *net_addr_to_string(const struct net_addr *a, char *buf, size_t len) {
        char ip[INET6_ADDRSTRLEN] = "?";

        if (a->ss.ss_family == AF_INET) {
                const struct sockaddr_in *in4 = (const struct sockaddr_in *) &a->ss;

                inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
                snprintf(buf, len, "%s:%u", ip, ntohs(in4->sin_port));
        } else if (a->ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &a->ss;

                inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
        } else
                snprintf(buf, len, "?");
        return buf;
}

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b) {
        if (a->ss.ss_family != b->ss.ss_family)
                return false;
        if (a->ss.ss_family == AF_INET) {
                const struct sockaddr_in *x = (const struct sockaddr_in *) &a->ss;
                const struct sockaddr_in *y = (const struct sockaddr_in *) &b->ss;

                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        if (a->ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) &a->ss;
                const struct sockaddr_in6 *y = (const struct sockaddr_in6 *) &b->ss;

                return x->sin6_port == y->sin6_port &&
                       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
        }
        return false;
}

/* ---- UDP ---------------------------------------------------------------- */

/*
 * Reads at most recv_batch datagrams per wakeup, so a flood on the gossip
 * port cannot starve the control socket or the timers; the rest waits for
 * the next loop iteration.
 */
static void on_udp(struct ev_loop *loop, ev_io *w, int revents) {
        struct net *n = w->data;
        (void) loop;
        (void) revents;

        for (unsigned i = 0; i < n->opts.recv_batch; i++) {
                struct net_addr from = { .len = sizeof(from.ss) };
                ssize_t len;

                len = recvfrom(n->udp_fd, n->dgram, n->opts.max_datagram + 1, MSG_TRUNC,
                               (struct sockaddr *) &from.ss, &from.len);
                if (len < 0)
                        return;  /* EAGAIN, or an ICMP error queued by an earlier send */
                if ((size_t) len > n->opts.max_datagram) {
                        n->stats.udp_oversized++;
                        continue;
                }
                n->stats.udp_received++;
                n->stats.udp_received_bytes += (uint64_t) len;
                n->cb.datagram(n->dgram, (size_t) len, &from, n->cb.userdata);
        }
}

int net_send(struct net *n, const struct net_addr *to, const void *buf, size_t len) {
        if (len > n->opts.max_datagram) {
                n->stats.udp_send_errors++;
                return -EMSGSIZE;
        }
        if (sendto(n->udp_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *) &to->ss,
                   to->len) < 0) {
                int r = errno == EWOULDBLOCK ? -EAGAIN : -errno;

                n->stats.udp_send_errors++;
                return r;
        }
        n->stats.udp_sent++;
        n->stats.udp_sent_bytes += len;
        return 0;
}

/* ---- TCP connections ------------------------------------------------------ */

static void conn_free(struct conn *c) {
        struct net *n = c->net;

        ev_io_stop(n->loop, &c->io);
        ev_timer_stop(n->loop, &c->timer);
        if (c->fd >= 0)
                close(c->fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                n->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->inbound)
                n->stats.tcp_inbound--;
        else
                n->stats.tcp_outbound--;
        free(c->out);
        free(c->in);
        free(c);
}

/* Ends a connection; a client's owner learns the outcome. */
static void conn_finish(struct conn *c, int result) {
        struct net *n = c->net;

        if (result < 0)
                n->stats.tcp_failed++;
        if (!c->inbound && n->cb.reply)
                n->cb.reply(c->cookie, result, result == 0 ? c->in : NULL, result == 0 ? c->in_got : 0,
                            n->cb.userdata);
        conn_free(c);
}

static void conn_watch(struct conn *c, int events) {
        ev_io_stop(c->net->loop, &c->io);
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(c->net->loop, &c->io);
}

static int conn_set_output(struct conn *c, const void *frame, size_t len) {
        c->out = malloc(NET_PREFIX + len);
        if (!c->out)
                return -ENOMEM;
        c->out[0] = (uint8_t) (len >> 24);
        c->out[1] = (uint8_t) (len >> 16);
        c->out[2] = (uint8_t) (len >> 8);
        c->out[3] = (uint8_t) len;
        if (len)
                memcpy(c->out + NET_PREFIX, frame, len);
        c->out_len = NET_PREFIX + len;
        c->out_off = 0;
        return 0;
}

/* The server has its frame: ask the owner for a reply and start sending it. */
static void conn_serve(struct conn *c) {
        struct net *n = c->net;
        uint8_t *reply = NULL;
        size_t reply_len = 0;
        int r;

        r = n->cb.frame(c->in, c->in_got, &c->peer, &reply, &reply_len, n->cb.userdata);
        if (r < 0) {
                free(reply);
                conn_finish(c, r);
                return;
        }
        if (reply_len > n->opts.max_frame) {
                free(reply);
                n->stats.tcp_oversized++;
                conn_finish(c, -EMSGSIZE);
                return;
        }
        r = conn_set_output(c, reply, reply_len);
        free(reply);
        if (r < 0) {
                conn_finish(c, r);
                return;
        }
        c->state = CONN_WRITING;
        conn_watch(c, EV_WRITE);
}

/*
 * Reads what is there. The frame buffer grows by doubling up to the
 * announced length, so a peer that announces 4 MiB and sends 10 bytes costs
 * us a few hundred bytes, not 4 MiB. Returns 1 when the frame is complete,
 * 0 to wait for more, or a negative errno.
 */
static int conn_read(struct conn *c) {
        struct net *n = c->net;

        for (;;) {
                ssize_t got;

                if (c->prefix_got < NET_PREFIX) {
                        got = recv(c->fd, c->prefix + c->prefix_got, NET_PREFIX - c->prefix_got, 0);
                } else {
                        if (c->in_got == c->in_len)
                                return 1;
                        if (c->in_got == c->in_cap) {
                                size_t cap = c->in_cap ? c->in_cap * 2 : 512;
                                uint8_t *p;

                                if (cap > c->in_len)
                                        cap = c->in_len;
                                p = realloc(c->in, cap);
                                if (!p)
                                        return -ENOMEM;
                                c->in = p;
                                c->in_cap = cap;
                        }
                        got = recv(c->fd, c->in + c->in_got, c->in_cap - c->in_got, 0);
                }
                if (got < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : (errno == EINTR ? 0 : -errno);
                if (got == 0)
                        return -ECONNRESET;
                n->stats.tcp_received_bytes += (uint64_t) got;
                if (c->prefix_got < NET_PREFIX) {
                        c->prefix_got += (size_t) got;
                        if (c->prefix_got < NET_PREFIX)
                                continue;
                        c->in_len = (size_t) c->prefix[0] << 24 | (size_t) c->prefix[1] << 16 |
                                    (size_t) c->prefix[2] << 8 | (size_t) c->prefix[3];
                        if (c->in_len > n->opts.max_frame) {
                                n->stats.tcp_oversized++;
                                return -EMSGSIZE;
                        }
                        if (c->in_len == 0)
                                return 1;
                } else
                        c->in_got += (size_t) got;
        }
}

static int conn_write(struct conn *c) {
        while (c->out_off < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

                if (w < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
                c->out_off += (size_t) w;
                c->net->stats.tcp_sent_bytes += (uint64_t) w;
        }
        return 1;
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents) {
        struct conn *c = w->data;
        int r, err = 0;
        socklen_t elen = sizeof(err);
        (void) loop;
        (void) revents;

        switch (c->state) {
        case CONN_CONNECTING:
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        err = errno;
                if (err) {
                        conn_finish(c, -err);
                        return;
                }
                c->state = CONN_WRITING;
                __attribute__((fallthrough));
        case CONN_WRITING:
                r = conn_write(c);
                if (r < 0) {
                        conn_finish(c, r);
                        return;
                }
                if (r == 0)
                        return;
                if (c->inbound) {
                        /* The reply is out: the exchange is over. */
                        conn_finish(c, 0);
                        return;
                }
                c->state = CONN_READING;
                conn_watch(c, EV_READ);
                return;
        case CONN_READING:
                r = conn_read(c);
                if (r < 0) {
                        conn_finish(c, r);
                        return;
                }
                if (r == 0)
                        return;
                if (c->inbound)
                        conn_serve(c);
                else
                        conn_finish(c, 0);
                return;
        }
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
        struct conn *c = w->data;
        (void) loop;
        (void) revents;

        c->net->stats.tcp_timeouts++;
        conn_finish(c, -ETIMEDOUT);
}

static struct conn *conn_new(struct net *n, int fd, bool inbound) {
        struct conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->net = n;
        c->fd = fd;
        c->inbound = inbound;
        ev_io_init(&c->io, on_conn_io, fd, EV_READ);
        ev_timer_init(&c->timer, on_conn_timeout, (double) n->opts.conn_timeout_us / 1e6, 0.);
        c->io.data = c->timer.data = c;
        c->next = n->conns;
        if (n->conns)
                n->conns->prev = c;
        n->conns = c;
        if (inbound)
                n->stats.tcp_inbound++;
        else
                n->stats.tcp_outbound++;
        ev_timer_start(n->loop, &c->timer);
        return c;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
        struct net *n = w->data;
        (void) loop;
        (void) revents;

        /* Bounded like the UDP side, for the same reason. */
        for (unsigned i = 0; i < n->opts.recv_batch; i++) {
                struct net_addr peer = { .len = sizeof(peer.ss) };
                struct conn *c;
                int fd;

                fd = accept4(n->tcp_fd, (struct sockaddr *) &peer.ss, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                if (n->stats.tcp_inbound >= n->opts.max_conns) {
                        n->stats.tcp_refused_busy++;
                        close(fd);
                        continue;
                }
                c = conn_new(n, fd, true);
                if (!c) {
                        close(fd);
                        continue;
                }
                n->stats.tcp_accepted++;
                c->peer = peer;
                c->state = CONN_READING;
                ev_io_start(n->loop, &c->io);
        }
}

int net_exchange(struct net *n, const struct net_addr *to, const void *frame, size_t len, uint64_t cookie) {
        struct conn *c;
        int fd, r;

        if (!n || !to || (len && !frame))
                return -EINVAL;
        if (len > n->opts.max_frame)
                return -EMSGSIZE;
        if (n->stats.tcp_outbound >= n->opts.max_outbound)
                return -EBUSY;
        fd = socket(to->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Leave from the address we gossip on, so the peer sees the same host either way. */
        if (n->local.ss.ss_family == to->ss.ss_family) {
                struct net_addr src = n->local;

                if (src.ss.ss_family == AF_INET)
                        ((struct sockaddr_in *) &src.ss)->sin_port = 0;
                else
                        ((struct sockaddr_in6 *) &src.ss)->sin6_port = 0;
                (void) bind(fd, (const struct sockaddr *) &src.ss, src.len);
        }
        c = conn_new(n, fd, false);
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->peer = *to;
        c->cookie = cookie;
        r = conn_set_output(c, frame, len);
        if (r < 0)
                goto fail;
        n->stats.tcp_connects++;
        if (connect(fd, (const struct sockaddr *) &to->ss, to->len) < 0 && errno != EINPROGRESS) {
                r = -errno;
                goto fail;
        }
        c->state = CONN_CONNECTING;
        conn_watch(c, EV_WRITE);
        return 0;
fail:
        n->stats.tcp_failed++;
        conn_free(c);
        return r;
}

/* ---- setup -------------------------------------------------------------- */

static int bind_socket(int type, const struct net_addr *a) {
        int fd, one = 1;

        fd = socket(a->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (type == SOCK_STREAM)
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->ss.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *) &a->ss, a->len) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

int net_new(struct ev_loop *loop, const struct net_options *opts, const struct net_callbacks *cb,
            struct net **ret) {
        struct net *n;
        struct net_addr a;
        int r;

        if (!loop || !opts || !opts->host || !cb || !cb->datagram || !cb->frame || !ret)
                return -EINVAL;
        if (opts->max_datagram > NET_DATAGRAM_MAX)
                return -EINVAL;
        r = addr_from_literal(opts->host, opts->port, &a);
        if (r < 0)
                return r;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->loop = loop;
        n->opts = *opts;
        n->opts.host = NULL;
        n->cb = *cb;
        n->udp_fd = n->tcp_fd = -1;
        if (!n->opts.max_datagram)
                n->opts.max_datagram = NET_DATAGRAM_DEFAULT;
        if (!n->opts.recv_batch)
                n->opts.recv_batch = NET_RECV_BATCH_DEFAULT;
        if (!n->opts.max_frame)
                n->opts.max_frame = NET_FRAME_MAX_DEFAULT;
        if (!n->opts.max_conns)
                n->opts.max_conns = NET_CONNS_DEFAULT;
        if (!n->opts.max_outbound)
                n->opts.max_outbound = n->opts.max_conns;
        if (!n->opts.conn_timeout_us)
                n->opts.conn_timeout_us = NET_CONN_TIMEOUT_DEFAULT_US;
        n->dgram = malloc(n->opts.max_datagram + 1);
        if (!n->dgram) {
                r = -ENOMEM;
                goto fail;
        }

        r = bind_socket(SOCK_DGRAM, &a);
        if (r < 0)
                goto fail;
        n->udp_fd = r;
        /* Port 0: TCP takes the port the kernel gave UDP. */
        {
                struct net_addr bound = { .len = sizeof(bound.ss) };

                if (getsockname(n->udp_fd, (struct sockaddr *) &bound.ss, &bound.len) < 0) {
                        r = -errno;
                        goto fail;
                }
                a = bound;
                n->local = bound;
                n->port = ntohs(bound.ss.ss_family == AF_INET ? ((struct sockaddr_in *) &bound.ss)->sin_port
                                                              : ((struct sockaddr_in6 *) &bound.ss)->sin6_port);
        }
        r = bind_socket(SOCK_STREAM, &a);
        if (r < 0)
                goto fail;
        n->tcp_fd = r;
        if (listen(n->tcp_fd, NET_LISTEN_BACKLOG) < 0) {
                r = -errno;
                goto fail;
        }
        /* A wildcard bind must not be used as the source of outgoing connections. */
        if ((a.ss.ss_family == AF_INET &&
             ((struct sockaddr_in *) &a.ss)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
            (a.ss.ss_family == AF_INET6 &&
             IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *) &a.ss)->sin6_addr)))
                n->local.ss.ss_family = AF_UNSPEC;

        ev_io_init(&n->udp_io, on_udp, n->udp_fd, EV_READ);
        ev_io_init(&n->tcp_io, on_accept, n->tcp_fd, EV_READ);
        n->udp_io.data = n->tcp_io.data = n;
        ev_io_start(loop, &n->udp_io);
        ev_io_start(loop, &n->tcp_io);
        *ret = n;
        return 0;
fail:
        net_free(n);
        return r;
}

void net_free(struct net *n) {
        if (!n)
                return;
        while (n->conns)
                conn_free(n->conns);
        ev_io_stop(n->loop, &n->udp_io);
        ev_io_stop(n->loop, &n->tcp_io);
        if (n->udp_fd >= 0)
                close(n->udp_fd);
        if (n->tcp_fd >= 0)
                close(n->tcp_fd);
        free(n->dgram);
        free(n);
}

uint16_t net_local_port(const struct net *n) {
        return n->port;
}

void net_get_stats(const struct net *n, struct net_stats *ret) {
        *ret = n->stats;
}
