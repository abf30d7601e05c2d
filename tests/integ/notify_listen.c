/*
 * A stand-in for systemd's notification socket: binds a datagram socket at
 * PATH and prints each sd_notify() message it receives as one line (the
 * message's newlines shown as '|'), until SECONDS pass or a message contains
 * STOPPING=1. Used by notify.sh to check what agentd tells systemd.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[4097];
        double seconds;
        struct timespec start, now;
        int fd;

        if (argc != 3) {
                fprintf(stderr, "usage: notify_listen PATH SECONDS\n");
                return 2;
        }
        seconds = atof(argv[2]);
        if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "path too long\n");
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                perror("notify_listen: bind");
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                clock_gettime(CLOCK_MONOTONIC, &now);
                double left = seconds - ((double) (now.tv_sec - start.tv_sec) +
                                         (double) (now.tv_nsec - start.tv_nsec) / 1e9);
                if (left <= 0)
                        break;
                int r = poll(&p, 1, (int) (left * 1000) + 1);
                if (r < 0 && errno != EINTR)
                        return 1;
                if (r <= 0)
                        continue;
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0)
                        continue;
                buf[n] = '\0';
                int stopping = strstr(buf, "STOPPING=1") != NULL;
                for (char *c = buf; *c; c++)
                        if (*c == '\n')
                                *c = '|';
                printf("%s\n", buf);
                if (stopping)
                        break;
        }
        unlink(sa.sun_path);
        return 0;
}
