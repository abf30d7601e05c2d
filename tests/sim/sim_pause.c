/*
 * sim_pause: one node of a converged cluster is paused (SIGSTOP: it runs
 * nothing and sends nothing, its socket buffer fills) for 3 s, then resumed
 * with the real clock jump. Lifeguard must keep the resumed node from
 * causing false suspicion of others: nobody other than the paused node is
 * ever suspected or declared dead by anyone. The paused node must refute its
 * own suspicion (its incarnation rises) and end up alive everywhere.
 */
#include <inttypes.h>
#include <stdio.h>

#include "sim.h"

#define PAUSE_NODES 50
#define PAUSE_US (3 * SIM_USEC_PER_SEC)
/* After resume, everybody must see the paused node alive within this. */
#define PAUSE_RECOVER_BOUND_US (10 * SIM_USEC_PER_SEC)

struct pause {
        uint32_t x;
        bool armed;
        uint32_t suspected_x, dead_x;
        uint64_t first_suspect, first_dead;
};

static void on_view(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view old, enum sim_view new,
                    uint64_t inc, void *userdata) {
        struct pause *ps = userdata;

        (void)old;
        (void)inc;
        if (!ps->armed)
                return;
        if (subj != ps->x) {
                if (new == SIM_VIEW_SUSPECT || new == SIM_VIEW_DEAD || new == SIM_VIEW_LEFT)
                        sim_fail(s, "n%u marked n%u %s around the pause of n%u", obs, subj,
                                 sim_view_to_string(new), ps->x);
                return;
        }
        if (new == SIM_VIEW_SUSPECT) {
                if (!ps->suspected_x++)
                        ps->first_suspect = sim_now(s);
        }
        if (new == SIM_VIEW_DEAD) {
                if (!ps->dead_x++)
                        ps->first_dead = sim_now(s);
        }
}

static bool x_alive_everywhere(struct sim *s, void *userdata) {
        const struct pause *ps = userdata;

        for (uint32_t i = 0; i < sim_nodes(s); i++)
                if (i != ps->x && sim_view(s, i, ps->x) != SIM_VIEW_ALIVE)
                        return false;
        return true;
}

static int run(uint64_t seed) {
        struct sim_params p;
        struct sim *s;
        struct pause ps = { 0 };
        uint64_t n = sim_scaled(PAUSE_NODES, 5), inc0, inc1, t_pause, t_resume;
        int ret;

        sim_params_default(&p, "sim_pause", seed, (uint32_t)n);
        if (sim_new(&p, &s) < 0)
                return 1;
        sim_on_view(s, on_view, &ps);
        if (!sim_bootstrap(s, SIM_USEC_PER_SEC, 120 * SIM_USEC_PER_SEC))
                goto out;
        sim_run_for(s, 20 * sim_probe_interval(s));
        ps.x = (uint32_t)sim_rng_below(sim_scenario_rng(s), n);
        inc0 = sim_incarnation(s, ps.x);
        ps.armed = true;
        t_pause = sim_now(s);
        sim_pause(s, ps.x);
        sim_run_for(s, PAUSE_US);
        t_resume = sim_now(s);
        sim_resume(s, ps.x);
        if (!sim_run_while_not(s, t_resume + PAUSE_RECOVER_BOUND_US, 10 * SIM_USEC_PER_MSEC,
                               x_alive_everywhere, &ps)) {
                sim_fail(s, "n%u was not alive everywhere %.1f s after its resume", ps.x,
                         (double)PAUSE_RECOVER_BOUND_US / 1e6);
                goto out;
        }
        printf("sim_pause: n%u paused %.1f s in a cluster of %" PRIu64 ": %u suspicions of it (first after %.0f ms), "
               "%u deaths (first after %.0f ms); alive everywhere %.0f ms after resume\n",
               ps.x, (double)PAUSE_US / 1e6, n, ps.suspected_x,
               ps.suspected_x ? (double)(ps.first_suspect - t_pause) / 1e3 : 0.0, ps.dead_x,
               ps.dead_x ? (double)(ps.first_dead - t_pause) / 1e3 : 0.0,
               (double)(sim_now(s) - t_resume) / 1e3);
        /* Stay a while: nothing may flare up later either. */
        sim_run_for(s, 30 * SIM_USEC_PER_SEC);
        inc1 = sim_incarnation(s, ps.x);
        printf("sim_pause:   n%u incarnation %" PRIu64 " -> %" PRIu64 "; other suspicions 0, false deaths %" PRIu64 "\n",
               ps.x, inc0, inc1, sim_stats(s)->false_dead - ps.dead_x);
        if (sim_failed(s))
                goto out;
        if (!ps.suspected_x)
                sim_fail(s, "nobody suspected n%u during a %.1f s pause: the scenario tested nothing",
                         ps.x, (double)PAUSE_US / 1e6);
        else if (inc1 <= inc0)
                sim_fail(s, "n%u was suspected but its incarnation did not rise (%" PRIu64 ")", ps.x, inc1);
        else if (!x_alive_everywhere(s, &ps))
                sim_fail(s, "n%u is not alive everywhere at the end", ps.x);
        else if (!sim_converged(s))
                sim_fail(s, "the cluster is not converged at the end");
        sim_check_views(s);
out:
        ret = sim_failed(s) ? 1 : 0;
        sim_free(s);
        return ret;
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2, 3, 4, 5 };

        return sim_main("sim_pause", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
