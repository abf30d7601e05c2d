/*
 * sim_join: 1,000 nodes join through one seed node and converge: every node
 * ends up seeing every other one alive. Prints the convergence time in
 * protocol periods and simulated seconds (and when 99% and 99.9% of all
 * views were alive, which shows the gossip epidemic apart from the periodic
 * push-pull that repairs the last few); fails when convergence takes longer
 * than the bound, or when anyone is ever suspected or declared dead on the
 * way (nobody is faulty, the network loses nothing).
 *
 * A second phase starts small clusters (10 and 30 nodes) all at once, the
 * way a fleet's agents come up together after a power cut or a deploy: every
 * node joins through node 0 within a few milliseconds of the others. Each
 * node must see every other alive within BURST_BOUND_US, far below the
 * push-pull interval, for every one of many seeds: an update that dies out
 * during the join burst would only be repaired by the next push-pull.
 */
#include <inttypes.h>
#include <stdio.h>

#include "sim.h"

#define JOIN_NODES 1000
/* Joins spread over this much virtual time: a fleet started by automation. */
#define JOIN_SPREAD_US (2 * SIM_USEC_PER_SEC)
/*
 * Convergence bound after the last node started, in protocol periods: 75
 * (15 s in lan) is half the periodic push-pull interval, so the bound holds
 * only if the join exchange and the gossip epidemic do the work themselves;
 * the periodic full-state repair must not be what converges the cluster.
 */
#define JOIN_BOUND_PERIODS 75

/*
 * Burst phase: cluster sizes, runs per size, mode and seed, and the bound.
 * 5 s is a sixth of lan's push-pull interval (30 s): only gossip meets it.
 */
static const uint32_t burst_sizes[] = { 10, 30 };
#define BURST_RUNS 100
#define BURST_BOUND_US (5 * SIM_USEC_PER_SEC)
/* Every node but the seed starts within this window. */
#define BURST_SPREAD_US (5 * SIM_USEC_PER_MSEC)

/*
 * Start modes. "together": the seed is up first, every other node starts
 * within BURST_SPREAD_US. "seed late": the seed comes up BURST_SEED_LATE_US
 * into the window, as when every agent of a fleet is started at once and the
 * seed binds its port last: the earliest joiners fail and retry after the
 * join backoff, one by one, while the others are already converged.
 */
struct burst_mode {
        const char *name;
        uint64_t seed_at_us;
};
#define BURST_SEED_LATE_US (3 * SIM_USEC_PER_MSEC)
static const struct burst_mode burst_modes[] = {
        { "together", 0 },
        { "seed late", BURST_SEED_LATE_US },
};

struct progress {
        uint64_t total;
        uint64_t t99, t999;
};

/* Records the first instants 99% and 99.9% of the views are alive; true at 100%. */
static bool converged(struct sim *s, void *userdata) {
        struct progress *pg = userdata;
        uint64_t a = sim_alive_views(s);

        if (!pg->t99 && a * 100 >= pg->total * 99)
                pg->t99 = sim_now(s);
        if (!pg->t999 && a * 1000 >= pg->total * 999)
                pg->t999 = sim_now(s);
        return a == pg->total && sim_converged(s);
}

static int run(uint64_t seed) {
        struct sim_params p;
        struct sim *s;
        const struct sim_stats *st;
        struct progress pg = { 0 };
        uint64_t pi, n = sim_scaled(JOIN_NODES, 10), last;
        int ret;

        sim_params_default(&p, "sim_join", seed, (uint32_t)n);
        if (sim_new(&p, &s) < 0)
                return 1;
        pi = sim_probe_interval(s);
        pg.total = n * (n - 1);
        if (!sim_start_all(s, JOIN_SPREAD_US))
                goto out;
        last = sim_last_start(s);
        if (!sim_run_while_not(s, last + JOIN_BOUND_PERIODS * pi, pi / 4, converged, &pg)) {
                sim_fail(s, "no convergence within %u periods after the last start: %" PRIu64 " of %" PRIu64
                         " views alive", JOIN_BOUND_PERIODS, sim_alive_views(s), pg.total);
                goto out;
        }
        st = sim_stats(s);
        printf("sim_join: %" PRIu64 " nodes converged %.2f s after the last start: %.1f periods of %.0f ms "
               "(bound %u); %.2f s from the first start\n",
               n, (double)(sim_now(s) - last) / 1e6, (double)(sim_now(s) - last) / (double)pi, (double)pi / 1e3,
               JOIN_BOUND_PERIODS, (double)sim_now(s) / 1e6);
        printf("sim_join:   99%% of views alive %.2f s after the last start (%.1f periods), 99.9%% after %.2f s "
               "(%.1f periods)\n",
               pg.t99 > last ? (double)(pg.t99 - last) / 1e6 : 0.0,
               pg.t99 > last ? (double)(pg.t99 - last) / (double)pi : 0.0,
               pg.t999 > last ? (double)(pg.t999 - last) / 1e6 : 0.0,
               pg.t999 > last ? (double)(pg.t999 - last) / (double)pi : 0.0);
        printf("sim_join:   udp %" PRIu64 " packets (%.1f per node per second, largest %" PRIu64
               " bytes), push-pull %" PRIu64 " (largest %" PRIu64 " bytes), suspicions %" PRIu64
               ", deaths %" PRIu64 "\n",
               st->udp_sent, (double)st->udp_sent / (double)n / ((double)sim_now(s) / 1e6),
               st->udp_max_bytes, st->tcp_sent, st->tcp_max_bytes, st->to_suspect, st->to_dead);
        if (st->to_dead)
                sim_fail(s, "%" PRIu64 " nodes were declared dead during a fault-free join", st->to_dead);
        else if (st->to_suspect)
                sim_fail(s, "%" PRIu64 " suspicions during a fault-free join", st->to_suspect);
        else if (st->decode_errors || st->receive_errors)
                sim_fail(s, "%" PRIu64 " decode and %" PRIu64 " receive errors", st->decode_errors,
                         st->receive_errors);
        sim_check_views(s);
out:
        ret = sim_failed(s) ? 1 : 0;
        sim_free(s);
        return ret;
}

static bool burst_converged(struct sim *s, void *userdata) {
        (void)userdata;
        return sim_converged(s);
}

/* Starts node 0 (alone) and every other node (joining through it) at at[i], in time order. */
static bool burst_start(struct sim *s, const uint64_t *at, uint32_t n) {
        bool started[64] = { false };

        for (uint32_t k = 0; k < n; k++) {
                uint32_t next = UINT32_MAX;

                for (uint32_t i = 0; i < n; i++)
                        if (!started[i] && (next == UINT32_MAX || at[i] < at[next]))
                                next = i;
                sim_run_until(s, at[next]);
                started[next] = true;
                if (sim_start(s, next, next == 0 ? -1 : 0) < 0) {
                        sim_fail(s, "starting node %u failed", next);
                        return false;
                }
        }
        return true;
}

/*
 * One burst start of n (<= 64) nodes: returns the convergence time after
 * the last start in µs, or UINT64_MAX after sim_fail() (which reports it).
 */
static uint64_t burst_once(uint64_t seed, uint32_t n, const struct burst_mode *mode) {
        struct sim_params p;
        struct sim *s;
        const struct sim_stats *st;
        uint64_t at[64], last = 0, t = UINT64_MAX;

        sim_params_default(&p, "sim_join_burst", seed, n);
        if (sim_new(&p, &s) < 0)
                return UINT64_MAX;
        for (uint32_t i = 0; i < n; i++) {
                at[i] = i == 0 ? mode->seed_at_us : 1 + sim_rng_below(sim_scenario_rng(s), BURST_SPREAD_US);
                if (at[i] > last)
                        last = at[i];
        }
        if (!burst_start(s, at, n))
                goto out;
        if (!sim_run_while_not(s, last + BURST_BOUND_US, 10 * SIM_USEC_PER_MSEC, burst_converged, NULL)) {
                sim_fail(s, "burst of %u nodes (%s): no convergence within %.1f s after the last start: %" PRIu64
                         " of %" PRIu64 " views alive", n, mode->name, (double)BURST_BOUND_US / 1e6,
                         sim_alive_views(s), (uint64_t)n * (n - 1));
                goto out;
        }
        st = sim_stats(s);
        if (st->to_suspect || st->to_dead)
                sim_fail(s, "burst of %u nodes (%s): %" PRIu64 " suspicions, %" PRIu64 " deaths", n, mode->name,
                         st->to_suspect, st->to_dead);
        else if (sim_check_views(s))
                t = sim_now(s) - last;
out:
        sim_free(s);
        return t;
}

/* BURST_RUNS starts per size and mode, each run with its own seed derived from `seed`. */
static int burst(uint64_t seed) {
        uint64_t times[BURST_RUNS];
        int ret = 0;

        for (size_t mi = 0; mi < sizeof(burst_modes) / sizeof(burst_modes[0]); mi++)
                for (size_t k = 0; k < sizeof(burst_sizes) / sizeof(burst_sizes[0]); k++) {
                        uint32_t n = burst_sizes[k];
                        size_t failed = 0, ok = 0;

                        for (uint64_t r = 0; r < BURST_RUNS; r++) {
                                uint64_t t = burst_once(seed * 1000003 + mi * 1000 + r, n, &burst_modes[mi]);

                                if (t == UINT64_MAX)
                                        failed++;
                                else
                                        times[ok++] = t;
                        }
                        printf("sim_join: burst of %u nodes (%s), %d runs: ", n, burst_modes[mi].name, BURST_RUNS);
                        if (ok > 0)
                                printf("converged p50 %.2f s, p99 %.2f s, max %.2f s after the last start; ",
                                       (double)sim_percentile(times, ok, 50) / 1e6,
                                       (double)sim_percentile(times, ok, 99) / 1e6,
                                       (double)sim_percentile(times, ok, 100) / 1e6);
                        printf("%zu over the %.0f s bound or faulty\n", failed, (double)BURST_BOUND_US / 1e6);
                        if (failed)
                                ret = 1;
                }
        return ret;
}

static int run_all(uint64_t seed) {
        int r = burst(seed);

        return run(seed) | r;
}

int main(void) {
        /* Two seeds: 1,000 cores is the heaviest scenario (about 4 s of CPU each). */
        static const uint64_t seeds[] = { 1, 2 };

        return sim_main("sim_join", seeds, sizeof(seeds) / sizeof(seeds[0]), run_all);
}
