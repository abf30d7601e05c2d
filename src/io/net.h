/*
 * The gossip transport (libev): one UDP socket for probes and piggybacked
 * updates, and a TCP listener on the same address and port for push-pull
 * full-state exchanges. Bytes in, bytes out: this module knows nothing of
 * envelopes or messages, and never logs; it counts what it drops.
 *
 * TCP carries frames: a 4-byte big-endian length, then that many bytes
 * (the same framing as crypto_frame_prefix, so a frame is exactly one
 * envelope). An exchange is one frame each way: the client sends its frame,
 * the server answers with one frame, both close. Every resource a peer can
 * make us hold is capped: the frame size (checked on the length prefix,
 * before any allocation, and buffers grow only as bytes actually arrive),
 * the number of concurrent connections each way, and the time one exchange
 * may take.
 */
#ifndef AGENTD_NET_H
#define AGENTD_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#define NET_DATAGRAM_DEFAULT 1500          /* bytes of UDP payload accepted */
#define NET_DATAGRAM_MAX 65507
#define NET_RECV_BATCH_DEFAULT 64          /* datagrams read per loop wakeup */
#define NET_FRAME_MAX_DEFAULT (UINT32_C(4) << 20)
#define NET_CONNS_DEFAULT 16               /* concurrent TCP exchanges, each way */
#define NET_CONN_TIMEOUT_DEFAULT_US (UINT64_C(5) * 1000000)

struct net;

/* A peer address as the kernel gives it, with its length. */
struct net_addr {
        struct sockaddr_storage ss;
        socklen_t len;
};

/*
 * Called for every datagram read, with a buffer valid during the call only.
 * `from` is the sender's address.
 */
typedef void (*net_datagram_fn)(const uint8_t *buf, size_t len, const struct net_addr *from, void *userdata);

/*
 * Server side of an exchange: called with the client's frame (valid during
 * the call). Returns 0 with a malloc'd reply in *ret_reply (ownership passes
 * to net; a zero-length reply is allowed), or a negative errno to close the
 * connection without answering.
 */
typedef int (*net_frame_fn)(const uint8_t *frame, size_t len, const struct net_addr *from,
                            uint8_t **ret_reply, size_t *ret_reply_len, void *userdata);

/*
 * Client side: the outcome of net_exchange() with the given cookie. result
 * 0: the server's frame (valid during the call); otherwise a negative errno
 * (-ETIMEDOUT, -ECONNREFUSED, -EMSGSIZE for an oversized frame, -ECONNRESET
 * when the server closed early, ...). Never called from within net_exchange
 * itself, nor from net_free.
 */
typedef void (*net_reply_fn)(uint64_t cookie, int result, const uint8_t *frame, size_t len, void *userdata);

struct net_options {
        const char *host;            /* IP literal to bind ("0.0.0.0", "::", "10.0.0.1") */
        uint16_t port;               /* 0: the kernel picks (net_local_port tells) */
        size_t max_datagram;         /* 0: NET_DATAGRAM_DEFAULT; larger ones are dropped */
        unsigned recv_batch;         /* 0: NET_RECV_BATCH_DEFAULT */
        size_t max_frame;            /* 0: NET_FRAME_MAX_DEFAULT */
        unsigned max_conns;          /* 0: NET_CONNS_DEFAULT inbound exchanges at once */
        unsigned max_outbound;       /* 0: max_conns; ours go only where we choose */
        uint64_t conn_timeout_us;    /* 0: NET_CONN_TIMEOUT_DEFAULT_US, whole exchange */
};

struct net_callbacks {
        net_datagram_fn datagram;
        net_frame_fn frame;
        net_reply_fn reply;
        void *userdata;
};

/*
 * Binds UDP and TCP to host:port and starts reading. Returns 0, -EINVAL
 * (not an IP literal, bad option), -EADDRINUSE, -EADDRNOTAVAIL, or another
 * errno from socket/bind/listen.
 */
int net_new(struct ev_loop *loop, const struct net_options *opts, const struct net_callbacks *cb,
            struct net **ret);

/* Closes both sockets and every connection (no callback runs). NULL-safe. */
void net_free(struct net *n);

/* The bound port (useful with port 0). */
uint16_t net_local_port(const struct net *n);

/*
 * Sends one datagram. Returns 0, -EMSGSIZE over max_datagram, -EAGAIN when
 * the socket buffer is full (the datagram is dropped, as the network might),
 * or another errno from sendto. Counted either way.
 */
int net_send(struct net *n, const struct net_addr *to, const void *buf, size_t len);

/*
 * Starts an exchange: connects to `to`, sends `frame` (copied), waits for one
 * frame back; the outcome arrives through the reply callback with `cookie`.
 * Returns 0, -EBUSY when max_outbound exchanges are already in flight,
 * -EMSGSIZE over max_frame, or an errno from socket/connect.
 */
int net_exchange(struct net *n, const struct net_addr *to, const void *frame, size_t len, uint64_t cookie);

/*
 * Parses "IP:port" or "[IPv6]:port" into an address (no DNS). Returns 0 or
 * -EINVAL.
 */
int net_addr_parse(const char *hostport, struct net_addr *ret);

/*
 * Resolves "host:port" where host may be a DNS name (getaddrinfo; blocks,
 * so callers use it only for configured join addresses). Returns 0,
 * -EINVAL, or -EHOSTUNREACH when the name does not resolve.
 */
int net_addr_resolve(const char *hostport, struct net_addr *ret);

/* "10.0.0.1:7946" or "[::1]:7946" into buf (NET_ADDR_STRLEN bytes suffice). */
#define NET_ADDR_STRLEN 56
const char *net_addr_to_string(const struct net_addr *a, char *buf, size_t len);

/* True when both are the same IP and port. */
bool net_addr_equal(const struct net_addr *a, const struct net_addr *b);

struct net_stats {
        uint64_t udp_sent;            /* datagrams and their bytes */
        uint64_t udp_sent_bytes;
        uint64_t udp_send_errors;     /* sendto failed (incl. full buffer) */
        uint64_t udp_received;
        uint64_t udp_received_bytes;
        uint64_t udp_oversized;       /* dropped: larger than max_datagram */
        uint64_t tcp_accepted;
        uint64_t tcp_refused_busy;    /* inbound over max_conns: closed at once */
        uint64_t tcp_connects;
        uint64_t tcp_failed;          /* exchanges that ended in an error, either side */
        uint64_t tcp_timeouts;
        uint64_t tcp_oversized;       /* frames announced above max_frame */
        uint64_t tcp_sent_bytes;
        uint64_t tcp_received_bytes;
        unsigned tcp_inbound;         /* in flight now */
        unsigned tcp_outbound;
};
void net_get_stats(const struct net *n, struct net_stats *ret);

#endif
