/*
 * sim_join: 1,000 nodes join through one seed node and converge: every node
 * ends up seeing every other one alive. Prints the convergence time in
 * protocol periods and simulated seconds (and when 99% and 99.9% of all
 * views were alive, which shows the gossip epidemic apart from the periodic
 * push-pull that repairs the last few); fails when convergence takes longer
 * than the bound, or when anyone is ever suspected or declared dead on the
 * way (nobody is faulty, the network loses nothing).
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

int main(void) {
        /* Two seeds: 1,000 cores is the heaviest scenario (about 4 s of CPU each). */
        static const uint64_t seeds[] = { 1, 2 };

        return sim_main("sim_join", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
