/*
 * sim_partition: a converged cluster of 100 splits 50/50. Each half must
 * mark every member of the other half dead (and nobody on its own side),
 * then the partition heals and the halves must merge back on their own (dead
 * members re-probed, push-pull) within the bound, with no operator action.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/membership.h"
#include "sim.h"

#define PART_NODES 100
/* Every cross view must be dead within this after the split. */
#define PART_SPLIT_BOUND_US (30 * SIM_USEC_PER_SEC)

/*
 * Everyone must see everyone alive within four dead re-probe intervals
 * after the heal (20 s in lan), and never later than 20 s. The periodic
 * push-pull only picks live members, so this holds only if dead members are
 * really re-probed.
 */
static uint64_t merge_bound(const struct sim *s) {
        uint64_t b = 4 * sim_config(s)->dead_reprobe_interval_us;

        return b && b < 20 * SIM_USEC_PER_SEC ? b : 20 * SIM_USEC_PER_SEC;
}

struct part {
        uint32_t *group;
        bool split;
        uint64_t cross_dead;    /* cross-partition views currently dead */
        uint64_t cross_pairs;
        uint64_t t_split;
        uint64_t *dead_at;      /* time of each cross view's first death, for the distribution */
        size_t n_dead_at;
};

static void on_view(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view old, enum sim_view new,
                    uint64_t inc, void *userdata) {
        struct part *pt = userdata;

        (void)inc;
        if (!pt->group || pt->group[obs] == pt->group[subj]) {
                if (new == SIM_VIEW_DEAD || new == SIM_VIEW_LEFT)
                        sim_fail(s, "n%u declared n%u %s, on its own side", obs, subj, sim_view_to_string(new));
                return;
        }
        if (old == SIM_VIEW_DEAD)
                pt->cross_dead--;
        if (new == SIM_VIEW_DEAD) {
                pt->cross_dead++;
                if (pt->split && pt->n_dead_at < pt->cross_pairs)
                        pt->dead_at[pt->n_dead_at++] = sim_now(s) - pt->t_split;
        }
}

static bool all_cross_dead(struct sim *s, void *userdata) {
        struct part *pt = userdata;

        (void)s;
        return pt->cross_dead == pt->cross_pairs;
}

static bool converged(struct sim *s, void *userdata) {
        (void)userdata;
        return sim_converged(s);
}

static int run(uint64_t seed) {
        struct sim_params p;
        struct sim *s;
        struct part pt = { 0 };
        uint64_t n = sim_scaled(PART_NODES, 4), t_heal, sus0;
        uint32_t *perm, half;
        int ret;

        sim_params_default(&p, "sim_partition", seed, (uint32_t)n);
        if (sim_new(&p, &s) < 0)
                return 1;
        pt.group = calloc(n, sizeof(uint32_t));
        perm = calloc(n, sizeof(uint32_t));
        half = (uint32_t)(n / 2);
        pt.cross_pairs = 2 * (uint64_t)half * (n - half);
        pt.dead_at = calloc(pt.cross_pairs, sizeof(uint64_t));
        if (!pt.group || !perm || !pt.dead_at)
                abort();
        /* A random half: a Fisher-Yates shuffle of the node numbers. */
        for (uint32_t i = 0; i < n; i++)
                perm[i] = i;
        for (uint32_t i = (uint32_t)n - 1; i > 0; i--) {
                uint32_t j = (uint32_t)sim_rng_below(sim_scenario_rng(s), i + 1), t = perm[i];

                perm[i] = perm[j];
                perm[j] = t;
        }
        for (uint32_t k = 0; k < n; k++)
                pt.group[perm[k]] = k < half ? 0 : 1;
        free(perm);
        sim_on_view(s, on_view, &pt);
        /* During bootstrap every pair counts as "same side" for the checker. */
        {
                uint32_t *g = pt.group;

                pt.group = NULL;
                if (!sim_bootstrap(s, SIM_USEC_PER_SEC, 120 * SIM_USEC_PER_SEC)) {
                        pt.group = g;
                        goto out;
                }
                pt.group = g;
        }
        sim_run_for(s, 20 * sim_probe_interval(s));
        sus0 = sim_stats(s)->to_suspect;
        pt.split = true;
        pt.t_split = sim_now(s);
        sim_partition(s, pt.group);
        if (!sim_run_while_not(s, pt.t_split + PART_SPLIT_BOUND_US, 10 * SIM_USEC_PER_MSEC, all_cross_dead, &pt)) {
                sim_fail(s, "only %" PRIu64 " of %" PRIu64 " cross-partition views dead %.0f s after the split",
                         pt.cross_dead, pt.cross_pairs, (double)PART_SPLIT_BOUND_US / 1e6);
                goto out;
        }
        printf("sim_partition: %" PRIu64 " nodes split %u|%" PRIu64 ": all %" PRIu64
               " cross views dead after %.2f s (per view p50 %.2f s, p99 %.2f s); "
               "%" PRIu64 " suspicions, 0 false deaths on either side\n",
               n, half, n - half, pt.cross_pairs, (double)(sim_now(s) - pt.t_split) / 1e6,
               (double)sim_percentile(pt.dead_at, pt.n_dead_at, 50) / 1e6,
               (double)sim_percentile(pt.dead_at, pt.n_dead_at, 99) / 1e6, sim_stats(s)->to_suspect - sus0);
        pt.split = false;
        /* Let the dead state settle in a little before healing. */
        sim_run_for(s, 5 * SIM_USEC_PER_SEC);
        t_heal = sim_now(s);
        sim_partition(s, NULL);
        if (!sim_run_while_not(s, t_heal + merge_bound(s), 10 * SIM_USEC_PER_MSEC, converged, NULL)) {
                sim_fail(s, "not merged %.0f s after the heal: %" PRIu64 " cross views still dead",
                         (double)merge_bound(s) / 1e6, pt.cross_dead);
                goto out;
        }
        printf("sim_partition: healed: merged (everyone sees everyone alive) %.2f s after the heal "
               "(%.1f periods; bound %.0f s)\n",
               (double)(sim_now(s) - t_heal) / 1e6, (double)(sim_now(s) - t_heal) / (double)sim_probe_interval(s),
               (double)merge_bound(s) / 1e6);
        /* And it stays merged. */
        sim_run_for(s, 30 * SIM_USEC_PER_SEC);
        if (!sim_failed(s) && !sim_converged(s))
                sim_fail(s, "the merged cluster fell apart again");
        sim_check_views(s);
out:
        ret = sim_failed(s) ? 1 : 0;
        free(pt.group);
        free(pt.dead_at);
        sim_free(s);
        return ret;
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2, 3 };

        return sim_main("sim_partition", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
