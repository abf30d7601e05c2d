/*
 * udptool: a small UDP helper for the multi-host tests, so they need no
 * tcpdump or netcat.
 *
 *   udptool capture PORT COUNT FILE [TIMEOUT_S]
 *       records the payloads of the next COUNT UDP datagrams that reach this
 *       network namespace for destination PORT (a raw socket sees a copy of
 *       each one; the agent still gets the original) into FILE, then exits 0.
 *       Exits 1 when fewer arrived within TIMEOUT_S (default 30).
 *   udptool replay FILE HOST:PORT
 *       sends every recorded payload, verbatim and in order, to HOST:PORT.
 *   udptool send HOST:PORT TEXT
 *       sends one datagram holding TEXT.
 *   udptool recv PORT [TIMEOUT_S]
 *       binds PORT, prints the first datagram's payload, exits 0 (1 on timeout).
 *
 * FILE holds records of a 4-byte big-endian length and the payload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DATAGRAM 65536

static void die(const char *fmt, const char *arg) {
        fprintf(stderr, "udptool: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(1);
}

static int usage(void) {
        fprintf(stderr,
                "usage: udptool capture PORT COUNT FILE [TIMEOUT_S]\n"
                "       udptool replay FILE HOST:PORT\n"
                "       udptool send HOST:PORT TEXT\n"
                "       udptool recv PORT [TIMEOUT_S]\n");
        return 2;
}

static long parse_num(const char *s, long min, long max) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                die("bad number '%s'", s);
        return v;
}

/* IPv4 "a.b.c.d:port" only: the test bed is IPv4. */
static struct sockaddr_in parse_addr(const char *s) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        char host[64];
        const char *colon = strrchr(s, ':');

        if (!colon || (size_t) (colon - s) >= sizeof(host))
                die("bad address '%s' (use IP:PORT)", s);
        memcpy(host, s, (size_t) (colon - s));
        host[colon - s] = '\0';
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                die("bad address '%s' (use IP:PORT)", s);
        sa.sin_port = htons((uint16_t) parse_num(colon + 1, 1, 65535));
        return sa;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_capture(int argc, char **argv) {
        static unsigned char buf[MAX_DATAGRAM];
        uint16_t port;
        long count, got = 0;
        int64_t deadline;
        FILE *f;
        int fd;

        if (argc < 5 || argc > 6)
                return usage();
        port = (uint16_t) parse_num(argv[2], 1, 65535);
        count = parse_num(argv[3], 1, 100000);
        deadline = now_ms() + 1000 * (argc == 6 ? parse_num(argv[5], 1, 3600) : 30);

        fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
        if (fd < 0)
                die("raw socket: %s (needs root)", strerror(errno));
        f = fopen(argv[4], "wb");
        if (!f)
                die("cannot write %s", argv[4]);

        while (got < count) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - now_ms();
                const struct iphdr *ip = (const void *) buf;
                const struct udphdr *udp;
                size_t ihl, ulen;
                ssize_t n;
                uint32_t be;

                if (left <= 0)
                        break;
                if (poll(&p, 1, (int) left) <= 0)
                        continue;
                n = recv(fd, buf, sizeof(buf), 0);
                if (n < (ssize_t) sizeof(struct iphdr))
                        continue;
                ihl = (size_t) ip->ihl * 4;
                if (ihl < sizeof(struct iphdr) || (size_t) n < ihl + sizeof(struct udphdr))
                        continue;
                udp = (const void *) (buf + ihl);
                if (ntohs(udp->dest) != port)
                        continue;
                ulen = ntohs(udp->len);
                if (ulen < sizeof(struct udphdr) || ihl + ulen > (size_t) n)
                        continue;
                ulen -= sizeof(struct udphdr);
                be = htonl((uint32_t) ulen);
                if (fwrite(&be, 4, 1, f) != 1 || fwrite(buf + ihl + sizeof(struct udphdr), 1, ulen, f) != ulen)
                        die("writing %s failed", argv[4]);
                got++;
        }
        if (fclose(f) != 0)
                die("writing %s failed", argv[4]);
        close(fd);
        fprintf(stderr, "udptool: captured %ld of %ld datagrams\n", got, count);
        return got == count ? 0 : 1;
}

static int cmd_replay(int argc, char **argv) {
        static unsigned char buf[MAX_DATAGRAM];
        struct sockaddr_in to;
        long sent = 0;
        FILE *f;
        int fd;

        if (argc != 4)
                return usage();
        to = parse_addr(argv[3]);
        f = fopen(argv[2], "rb");
        if (!f)
                die("cannot read %s", argv[2]);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket: %s", strerror(errno));
        for (;;) {
                uint32_t be;
                size_t len;

                if (fread(&be, 4, 1, f) != 1)
                        break;
                len = ntohl(be);
                if (len > sizeof(buf) || fread(buf, 1, len, f) != len)
                        die("%s is truncated or corrupt", argv[2]);
                if (sendto(fd, buf, len, 0, (const struct sockaddr *) &to, sizeof(to)) < 0)
                        die("sendto: %s", strerror(errno));
                sent++;
        }
        fclose(f);
        close(fd);
        printf("%ld\n", sent);
        return 0;
}

static int cmd_send(int argc, char **argv) {
        struct sockaddr_in to;
        int fd;

        if (argc != 4)
                return usage();
        to = parse_addr(argv[2]);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket: %s", strerror(errno));
        if (sendto(fd, argv[3], strlen(argv[3]), 0, (const struct sockaddr *) &to, sizeof(to)) < 0)
                die("sendto: %s", strerror(errno));
        close(fd);
        return 0;
}

static int cmd_recv(int argc, char **argv) {
        static char buf[MAX_DATAGRAM + 1];
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        struct pollfd p;
        ssize_t n;
        int fd;

        if (argc < 3 || argc > 4)
                return usage();
        sa.sin_port = htons((uint16_t) parse_num(argv[2], 1, 65535));
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (const struct sockaddr *) &sa, sizeof(sa)) < 0)
                die("bind: %s", strerror(errno));
        p = (struct pollfd) { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 1000 * (int) (argc == 4 ? parse_num(argv[3], 1, 3600) : 10)) <= 0)
                return 1;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0)
                die("recv: %s", strerror(errno));
        fwrite(buf, 1, (size_t) n, stdout);
        putchar('\n');
        close(fd);
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2)
                return usage();
        if (strcmp(argv[1], "capture") == 0)
                return cmd_capture(argc, argv);
        if (strcmp(argv[1], "replay") == 0)
                return cmd_replay(argc, argv);
        if (strcmp(argv[1], "send") == 0)
                return cmd_send(argc, argv);
        if (strcmp(argv[1], "recv") == 0)
                return cmd_recv(argc, argv);
        return usage();
}
