/*
 * sim_loss: 100 nodes, 5% random loss on every link for 30 simulated
 * minutes. Suspicions are allowed (and refuted); no node may ever be
 * declared dead by anyone, since every node is up the whole time. Prints how
 * many suspicions and refutations happened.
 */
#include <inttypes.h>
#include <stdio.h>

#include "sim.h"

#define LOSS_NODES 100
#define LOSS_RATE 0.05
#define LOSS_DURATION_US (30 * 60 * SIM_USEC_PER_SEC)

static void on_view(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view old, enum sim_view new,
                    uint64_t inc, void *userdata) {
        (void)old;
        (void)userdata;
        if (new == SIM_VIEW_DEAD || new == SIM_VIEW_LEFT)
                sim_fail(s, "n%u declared n%u %s (incarnation %" PRIu64 ") though it is up",
                         obs, subj, sim_view_to_string(new), inc);
}

static bool converged(struct sim *s, void *userdata) {
        (void)userdata;
        return sim_converged(s);
}

static int run(uint64_t seed) {
        struct sim_params p;
        struct sim *s;
        const struct sim_stats *st;
        uint64_t n = sim_scaled(LOSS_NODES, 5), dur = sim_scaled(LOSS_DURATION_US, 60 * SIM_USEC_PER_SEC);
        uint64_t sus0, ref0, t0, inc_sum = 0;
        int ret;

        sim_params_default(&p, "sim_loss", seed, (uint32_t)n);
        if (sim_new(&p, &s) < 0)
                return 1;
        sim_on_view(s, on_view, NULL);
        if (!sim_bootstrap(s, SIM_USEC_PER_SEC, 120 * SIM_USEC_PER_SEC))
                goto out;
        st = sim_stats(s);
        sus0 = st->to_suspect;
        ref0 = st->refutations;
        t0 = sim_now(s);
        sim_set_loss(s, LOSS_RATE);
        sim_run_for(s, dur);
        if (sim_failed(s))
                goto out;
        for (uint32_t i = 0; i < n; i++)
                inc_sum += sim_incarnation(s, i);
        printf("sim_loss: %" PRIu64 " nodes, %.0f%% loss for %.0f simulated minutes: %" PRIu64
               " suspicions, %" PRIu64 " refutations (sum of incarnations %" PRIu64 "), %" PRIu64
               " deaths\n",
               n, LOSS_RATE * 100, (double)(sim_now(s) - t0) / 60e6, st->to_suspect - sus0,
               st->refutations - ref0, inc_sum, st->to_dead);
        printf("sim_loss:   udp %" PRIu64 " sent, %" PRIu64 " lost (%.2f%%), %.1f packets per node per second\n",
               st->udp_sent, st->udp_lost, 100.0 * (double)st->udp_lost / (double)st->udp_sent,
               (double)st->udp_sent / (double)n / ((double)sim_now(s) / 1e6));
        /* Once the loss stops, every lingering suspicion must clear. */
        sim_set_loss(s, 0.0);
        if (!sim_run_while_not(s, sim_now(s) + 60 * SIM_USEC_PER_SEC, sim_probe_interval(s), converged, NULL))
                sim_fail(s, "views did not all return to alive within 60 s after the loss stopped");
        sim_check_views(s);
out:
        ret = sim_failed(s) ? 1 : 0;
        sim_free(s);
        return ret;
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2 };

        return sim_main("sim_loss", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
