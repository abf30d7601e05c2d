/*
 * Store benchmark: events per second through the real write path
 * (store_event_add, store_commit once per simulated loop iteration of K
 * events), at synchronous NORMAL and FULL, and the cost of retention and
 * queries on a large table. It prints figures only; the aim (>= 100,000
 * events/s at NORMAL with batching) is judged by the reader, because timing
 * depends on the machine and must not fail a build.
 *
 * Usage: bench_store [--dir DIR] [--events N] [--rows N] [--seconds S]
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/event.h"
#include "io/store.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Process CPU time (user + system): unlike wall time, barely moved by other load on the machine. */
static double cpu_s(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
               (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static uint64_t wall_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) type;
        (void) ftw;
        return remove(path);
}

static void rm_rf(const char *dir) {
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *fs_name(const char *dir) {
        struct statfs sf;

        if (statfs(dir, &sf) < 0)
                return "unknown";
        switch ((unsigned long) sf.f_type) {
        case 0xef53: return "ext4";
        case 0x01021994: return "tmpfs (fsync is free: FULL figures are not disk figures)";
        case 0x58465342: return "xfs";
        case 0x9123683e: return "btrfs";
        case 0x794c7630: return "overlayfs";
        default: return "other";
        }
}

/* A realistic event: the strings a restart event would carry. */
static struct event sample_event(uint64_t i) {
        return (struct event) {
                .ts_us = wall_us(),
                .kind = (enum event_kind) (i % _EVENT_KIND_MAX),
                .node = "n1",
                .subject = "web@8080.service",
                .detail = "main process exited, code=exited, status=1/FAILURE",
                .service = "web",
                .unit = "web@8080.service",
                .term = 3,
        };
}

static void die(const char *what, int r, char *err) {
        fprintf(stderr, "bench_store: %s: %s%s%s\n", what, strerror(-r), err ? ": " : "", err ? err : "");
        free(err);
        exit(1);
}

static struct store *open_store(const char *dir, enum store_sync sync) {
        struct store_open_info info;
        struct store *s = NULL;
        char *err = NULL;
        int r = store_open(dir, sync, &s, &info, &err);

        if (r < 0)
                die("store_open", r, err);
        return s;
}

/*
 * Writes up to `events` events, committing every `k` (one loop iteration),
 * stopping early after `budget` seconds. Returns the events written and the
 * elapsed time, including the final commit.
 */
static uint64_t write_run(struct store *s, uint64_t events, uint64_t k, double budget,
                          double *ret_secs, double *ret_cpu) {
        double start = now_s(), cpu_start = cpu_s();
        uint64_t i;
        int r;

        for (i = 0; i < events;) {
                for (uint64_t j = 0; j < k && i < events; j++, i++) {
                        struct event ev = sample_event(i);

                        r = store_event_add(s, &ev, NULL);
                        if (r < 0)
                                die("store_event_add", r, NULL);
                }
                r = store_commit(s);
                if (r < 0)
                        die("store_commit", r, NULL);
                if (now_s() - start > budget)
                        break;
        }
        *ret_secs = now_s() - start;
        if (ret_cpu)
                *ret_cpu = cpu_s() - cpu_start;
        return i;
}

static void bench_writes(const char *base, uint64_t events, double budget) {
        static const uint64_t batches[] = { 1, 10, 100, 1000 };
        static const struct {
                enum store_sync sync;
                const char *name;
        } syncs[] = {
                { STORE_SYNC_NORMAL, "NORMAL" },
                { STORE_SYNC_FULL, "FULL" },
        };

        printf("\nWrites: store_event_add, store_commit every K events (K = events per loop iteration)\n");
        printf("%-8s %6s %10s %10s %9s %12s %12s %12s\n",
               "sync", "K", "events", "commits", "seconds", "events/s", "per cpu-s", "us/commit");
        for (size_t si = 0; si < ELEMENTSOF(syncs); si++) {
                for (size_t bi = 0; bi < ELEMENTSOF(batches); bi++) {
                        char dir[4096];
                        struct store *s;
                        uint64_t n, commits;
                        double secs, cpu;

                        snprintf(dir, sizeof(dir), "%s/w-%s-%" PRIu64, base, syncs[si].name, batches[bi]);
                        s = open_store(dir, syncs[si].sync);
                        n = write_run(s, events, batches[bi], budget, &secs, &cpu);
                        store_free(s);
                        commits = (n + batches[bi] - 1) / batches[bi];
                        printf("%-8s %6" PRIu64 " %10" PRIu64 " %10" PRIu64 " %9.3f %12.0f %12.0f %12.1f\n",
                               syncs[si].name, batches[bi], n, commits, secs, (double) n / secs,
                               (double) n / cpu, secs * 1e6 / (double) commits);
                        fflush(stdout);
                        rm_rf(dir);
                }
        }
}

static int count_cb(const struct store_event *ev, void *userdata) {
        (void) ev;
        (*(uint64_t *) userdata)++;
        return 0;
}

static void fill(struct store *s, uint64_t rows) {
        double secs;

        if (write_run(s, rows, 1000, 1e9, &secs, NULL) != rows) {
                fprintf(stderr, "bench_store: fill stopped early\n");
                exit(1);
        }
        printf("  filled %" PRIu64 " rows in %.2f s (%.0f events/s)\n", rows, secs, (double) rows / secs);
}

static void timed_prune(struct store *s, const char *what, uint64_t now, uint64_t max_age, uint64_t max_rows) {
        uint64_t deleted = 0, left = 0;
        double start = now_s(), secs;
        int r = store_prune(s, now, max_age, max_rows, &deleted);

        secs = now_s() - start;
        if (r < 0)
                die("store_prune", r, NULL);
        if (store_events_count(s, &left) < 0)
                die("store_events_count", -EIO, NULL);
        printf("  %-44s %10" PRIu64 " deleted %10" PRIu64 " left %10.1f ms\n", what, deleted, left, secs * 1e3);
}

static void bench_table(const char *base, uint64_t rows) {
        char dir[4096];
        struct store *s;
        uint64_t count = 0, got = 0, now;
        struct store_event_filter f = { .limit = 100 };
        double start;
        char label[128];

        snprintf(dir, sizeof(dir), "%s/table", base);
        printf("\nRetention and reads on %" PRIu64 " rows (synchronous NORMAL)\n", rows);
        s = open_store(dir, STORE_SYNC_NORMAL);
        fill(s, rows);

        start = now_s();
        if (store_events_count(s, &count) < 0)
                die("store_events_count", -EIO, NULL);
        printf("  %-44s %10" PRIu64 " rows %29.1f ms\n", "store_events_count", count, (now_s() - start) * 1e3);
        start = now_s();
        if (store_events_query(s, &f, count_cb, &got) < 0)
                die("store_events_query", -EIO, NULL);
        printf("  %-44s %10" PRIu64 " rows %29.1f ms\n", "query newest 100", got, (now_s() - start) * 1e3);
        got = 0;
        f.kind = "config_rejected";
        start = now_s();
        if (store_events_query(s, &f, count_cb, &got) < 0)
                die("store_events_query", -EIO, NULL);
        printf("  %-44s %10" PRIu64 " rows %29.1f ms\n", "query newest 100 of one kind", got, (now_s() - start) * 1e3);

        /* Steady state: the table at its cap, nothing or a little to delete. */
        timed_prune(s, "count cap = rows (nothing to delete)", 0, 0, rows);
        snprintf(label, sizeof(label), "count cap = rows - 1%% (steady state)");
        timed_prune(s, label, 0, 0, rows - rows / 100);
        /* Age: everything was written within the last seconds; delete nothing, then all but the newest. */
        now = wall_us();
        timed_prune(s, "age 1 day (nothing to delete)", now, USEC_PER_DAY, 0);
        timed_prune(s, "count cap = half the rows", 0, 0, rows / 2);
        store_free(s);
        s = open_store(dir, STORE_SYNC_NORMAL);
        now = wall_us();
        timed_prune(s, "age 1 us (delete everything, cold start)", now, 1, 0);
        store_free(s);
        rm_rf(dir);
}

static uint64_t parse_u64(const char *s, const char *what) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v == 0) {
                fprintf(stderr, "bench_store: bad %s: %s\n", what, s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "events", required_argument, NULL, 'e' },
                { "rows", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        uint64_t events = 300000, rows = 1000000;
        double budget = 3.0, load[1] = { -1 };
        char base[3072];
        int c, n;

        while ((c = getopt_long(argc, argv, "d:e:r:s:h", options, NULL)) >= 0) {
                switch (c) {
                case 'd': parent = optarg; break;
                case 'e': events = parse_u64(optarg, "--events"); break;
                case 'r': rows = parse_u64(optarg, "--rows"); break;
                case 's': budget = (double) parse_u64(optarg, "--seconds"); break;
                case 'h':
                        printf("usage: %s [--dir DIR] [--events N] [--rows N] [--seconds S]\n"
                               "  --dir      where to create the temporary databases (default $TMPDIR or /tmp)\n"
                               "  --events   events per write run (default 300000)\n"
                               "  --rows     table size for the retention and read figures (default 1000000)\n"
                               "  --seconds  time budget per write run (default 3)\n", argv[0]);
                        return 0;
                default:
                        return 2;
                }
        }

        n = snprintf(base, sizeof(base), "%s/agentd-bench.XXXXXX", parent);
        if (n < 0 || (size_t) n >= sizeof(base)) {
                fprintf(stderr, "bench_store: directory name too long: %s\n", parent);
                return 2;
        }
        if (!mkdtemp(base)) {
                fprintf(stderr, "bench_store: mkdtemp %s: %s\n", base, strerror(errno));
                return 1;
        }
        getloadavg(load, 1);
        printf("bench_store: %s, filesystem %s, load average %.2f on %ld CPUs\n",
               base, fs_name(base), load[0], sysconf(_SC_NPROCESSORS_ONLN));
        printf("event: 5 text fields (~110 bytes), one row in events + 2 index entries\n"
               "events/s is wall time; \"per cpu-s\" is events per second of this process's CPU time\n");
        bench_writes(base, events, budget);
        bench_table(base, rows);
        rm_rf(base);
        return 0;
}
