/*
 * testsvc: a small HTTP service whose behaviour a test changes while it runs,
 * so agentd's checks and restarts can be exercised against a real process
 * under a real systemd (the CI machines have no python).
 *
 *   testsvc --port PORT [--address ADDR] [--mode MODE] [--control FILE]
 *           [--die-after DURATION_MS] [--pidfile FILE]
 *
 * MODE is what every request gets:
 *   ok       200 "ok"                       error    500 "error"
 *   hang     accepted, never answered       garbage  bytes that are not HTTP
 *   crash    the process kills itself (SIGKILL) at the next request
 *   exit     exit 1 at once, before listening (a unit in a crash loop)
 *
 * The mode can change at run time, per process, so a restarted service comes
 * back healthy without the test racing to reset anything:
 *   - signals: SIGUSR1 -> error, SIGUSR2 -> hang, SIGHUP -> ok, SIGTERM -> exit 0;
 *   - the control file, re-read at start and on every request: one line
 *     "MODE" (every process) or "MODE PID" (only the process with that pid;
 *     others behave as "ok"). A missing or empty file means --mode.
 * --die-after makes the process exit 3 that many milliseconds after start
 * (a service that crashes later). The pid and the address are printed on
 * standard output once listening.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Connections held at once; the oldest hung one is dropped past this. */
#define MAX_CONNS 256
#define REQ_MAX 8192

enum mode { MODE_OK, MODE_ERROR, MODE_HANG, MODE_GARBAGE, MODE_CRASH, MODE_EXIT, _MODE_MAX };

static const char *const mode_names[_MODE_MAX] = {
        [MODE_OK] = "ok", [MODE_ERROR] = "error", [MODE_HANG] = "hang",
        [MODE_GARBAGE] = "garbage", [MODE_CRASH] = "crash", [MODE_EXIT] = "exit",
};

struct conn {
        int fd;
        size_t len;
        bool hung;        /* answered by never answering */
        char buf[REQ_MAX];
};

static volatile sig_atomic_t signal_mode = -1;
static volatile sig_atomic_t stop;

static int mode_from_string(const char *s, size_t len) {
        for (int i = 0; i < _MODE_MAX; i++)
                if (strlen(mode_names[i]) == len && strncmp(mode_names[i], s, len) == 0)
                        return i;
        return -1;
}

static void on_signal(int sig) {
        switch (sig) {
        case SIGUSR1:
                signal_mode = MODE_ERROR;
                break;
        case SIGUSR2:
                signal_mode = MODE_HANG;
                break;
        case SIGHUP:
                signal_mode = MODE_OK;
                break;
        default:
                stop = 1;
                break;
        }
}

/*
 * The mode for this process now: a signal overrides everything; otherwise the
 * control file when it names a mode (for everyone, or for this pid), else the
 * command line's.
 */
static enum mode current_mode(const char *control, enum mode dflt) {
        char line[128];
        FILE *f;

        if (signal_mode >= 0)
                return (enum mode) signal_mode;
        if (!control)
                return dflt;
        f = fopen(control, "re");
        if (!f)
                return dflt;
        if (!fgets(line, sizeof(line), f)) {
                fclose(f);
                return dflt;
        }
        fclose(f);

        char *p = line, *end;
        while (*p == ' ' || *p == '\t')
                p++;
        size_t n = strcspn(p, " \t\r\n");
        int m = mode_from_string(p, n);
        if (m < 0)
                return dflt;
        p += n;
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p >= '0' && *p <= '9') {
                long pid = strtol(p, &end, 10);
                if (pid != (long) getpid())
                        return MODE_OK;
        }
        return (enum mode) m;
}

static void write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return;
                s += w;
                n -= (size_t) w;
        }
}

static void reply(int fd, int status, const char *reason, const char *body) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf),
                         "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         status, reason, strlen(body), body);
        write_all(fd, buf, (size_t) n);
}

static void conn_close(struct conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->len = 0;
        c->hung = false;
}

/* Answers a complete request. Returns true when the connection stays open (hang). */
static bool answer(struct conn *c, const char *control, enum mode dflt) {
        static const char garbage[] = "\x16\x03\x01\xff\xfeNOT-HTTP \x01\x02\x03 garbage\r\n\r\n";

        switch (current_mode(control, dflt)) {
        case MODE_OK:
                reply(c->fd, 200, "OK", "ok\n");
                return false;
        case MODE_ERROR:
                reply(c->fd, 500, "Internal Server Error", "error\n");
                return false;
        case MODE_HANG:
                return true;
        case MODE_GARBAGE:
                write_all(c->fd, garbage, sizeof(garbage) - 1);
                return false;
        case MODE_CRASH:
                fprintf(stderr, "testsvc: pid %d crashing (mode crash)\n", (int) getpid());
                kill(getpid(), SIGKILL);
                _exit(137);
        case MODE_EXIT:
        default:
                _exit(1);
        }
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void usage(FILE *f) {
        fprintf(f, "usage: testsvc --port PORT [--address ADDR] [--mode ok|error|hang|garbage|crash|exit]\n"
                   "               [--control FILE] [--die-after MS] [--pidfile FILE]\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "port",      required_argument, NULL, 'p' },
                { "address",   required_argument, NULL, 'a' },
                { "mode",      required_argument, NULL, 'm' },
                { "control",   required_argument, NULL, 'c' },
                { "die-after", required_argument, NULL, 'd' },
                { "pidfile",   required_argument, NULL, 'P' },
                { "help",      no_argument,       NULL, 'h' },
                {}
        };
        static struct conn conns[MAX_CONNS];
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        const char *control = NULL, *pidfile = NULL;
        enum mode dflt = MODE_OK;
        long port = 0, die_after = 0;
        uint64_t started;
        struct sigaction act = { .sa_handler = on_signal };
        int c, lfd, one = 1, m;

        while ((c = getopt_long(argc, argv, "p:a:m:c:d:P:h", options, NULL)) != -1) {
                switch (c) {
                case 'p':
                        port = strtol(optarg, NULL, 10);
                        break;
                case 'a':
                        if (inet_pton(AF_INET, optarg, &sa.sin_addr) != 1) {
                                fprintf(stderr, "testsvc: bad IPv4 address %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'm':
                        m = mode_from_string(optarg, strlen(optarg));
                        if (m < 0) {
                                fprintf(stderr, "testsvc: unknown mode %s\n", optarg);
                                return 2;
                        }
                        dflt = (enum mode) m;
                        break;
                case 'c':
                        control = optarg;
                        break;
                case 'd':
                        die_after = strtol(optarg, NULL, 10);
                        break;
                case 'P':
                        pidfile = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (port < 1 || port > 65535 || optind != argc) {
                usage(stderr);
                return 2;
        }

        if (current_mode(control, dflt) == MODE_EXIT) {
                fprintf(stderr, "testsvc: pid %d exiting at start (mode exit)\n", (int) getpid());
                return 1;
        }

        sigemptyset(&act.sa_mask);
        sigaction(SIGUSR1, &act, NULL);
        sigaction(SIGUSR2, &act, NULL);
        sigaction(SIGHUP, &act, NULL);
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        signal(SIGPIPE, SIG_IGN);

        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (lfd < 0) {
                perror("testsvc: socket");
                return 1;
        }
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sa.sin_port = htons((uint16_t) port);
        if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0) {
                fprintf(stderr, "testsvc: cannot listen on port %ld: %s\n", port, strerror(errno));
                return 1;
        }
        if (pidfile) {
                FILE *f = fopen(pidfile, "we");
                if (f) {
                        fprintf(f, "%d\n", (int) getpid());
                        fclose(f);
                }
        }
        printf("testsvc: pid %d listening on %s:%ld mode %s\n", (int) getpid(),
               inet_ntoa(sa.sin_addr), port, mode_names[dflt]);
        fflush(stdout);

        for (size_t i = 0; i < MAX_CONNS; i++)
                conns[i].fd = -1;
        started = now_ms();

        while (!stop) {
                struct pollfd pfd[MAX_CONNS + 1];
                size_t idx[MAX_CONNS + 1];
                nfds_t n = 0;
                int timeout = -1, r;

                if (die_after > 0) {
                        uint64_t el = now_ms() - started;
                        if (el >= (uint64_t) die_after) {
                                fprintf(stderr, "testsvc: pid %d dying after %ld ms (--die-after)\n",
                                        (int) getpid(), die_after);
                                return 3;
                        }
                        timeout = (int) ((uint64_t) die_after - el);
                }

                pfd[n++] = (struct pollfd) { .fd = lfd, .events = POLLIN };
                for (size_t i = 0; i < MAX_CONNS; i++) {
                        if (conns[i].fd < 0)
                                continue;
                        idx[n] = i;
                        pfd[n++] = (struct pollfd) { .fd = conns[i].fd, .events = POLLIN };
                }
                r = poll(pfd, n, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("testsvc: poll");
                        return 1;
                }

                for (nfds_t k = 1; k < n; k++) {
                        struct conn *cn = &conns[idx[k]];
                        ssize_t got;

                        if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        if (cn->hung) {
                                /* Drain and ignore; close when the client gives up. */
                                char sink[512];
                                got = read(cn->fd, sink, sizeof(sink));
                                if (got <= 0 && !(got < 0 && errno == EINTR))
                                        conn_close(cn);
                                continue;
                        }
                        got = read(cn->fd, cn->buf + cn->len, sizeof(cn->buf) - 1 - cn->len);
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0) {
                                conn_close(cn);
                                continue;
                        }
                        cn->len += (size_t) got;
                        cn->buf[cn->len] = '\0';
                        if (!strstr(cn->buf, "\r\n\r\n") && !strstr(cn->buf, "\n\n") &&
                            cn->len < sizeof(cn->buf) - 1)
                                continue;
                        if (answer(cn, control, dflt))
                                cn->hung = true;
                        else
                                conn_close(cn);
                }

                if (pfd[0].revents & POLLIN) {
                        for (;;) {
                                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                                size_t slot = MAX_CONNS;

                                if (fd < 0)
                                        break;
                                for (size_t i = 0; i < MAX_CONNS; i++)
                                        if (conns[i].fd < 0) {
                                                slot = i;
                                                break;
                                        }
                                if (slot == MAX_CONNS) {
                                        /* Full: drop a hung connection, or refuse this one. */
                                        for (size_t i = 0; i < MAX_CONNS; i++)
                                                if (conns[i].hung) {
                                                        conn_close(&conns[i]);
                                                        slot = i;
                                                        break;
                                                }
                                }
                                if (slot == MAX_CONNS) {
                                        close(fd);
                                        continue;
                                }
                                conns[slot].fd = fd;
                                conns[slot].len = 0;
                                conns[slot].hung = false;
                        }
                }
        }
        fprintf(stderr, "testsvc: pid %d stopping\n", (int) getpid());
        return 0;
}
