/*
 * sim_crash: in a converged cluster of 100, one node crashes. Every survivor
 * must mark it dead within the bound, and nobody else may be declared dead.
 * Prints the distribution over survivors of the time from the crash to the
 * first suspicion and to the death.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

#define CRASH_NODES 100
/*
 * Every survivor must know within: 10 periods for someone's probe to find
 * the dead node (with 99 probers each period misses it with probability
 * about 1/e, so 10 periods fail once in 20,000 runs), plus Lifeguard's
 * longest suspicion timeout, plus a second for the gossip to reach everyone.
 */
static uint64_t crash_bound(const struct sim *s) {
        return 10 * sim_probe_interval(s) + sim_suspicion_max(s) + SIM_USEC_PER_SEC;
}

struct crash {
        uint32_t victim;
        uint64_t crashed_at;
        uint64_t *suspect_at;   /* per observer, 0: not yet */
        uint64_t *dead_at;
        uint32_t n_dead;
        uint64_t other_dead;    /* anyone else declared dead after the crash */
};

static void on_view(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view old, enum sim_view new,
                    uint64_t inc, void *userdata) {
        struct crash *c = userdata;

        (void)old;
        (void)inc;
        if (!c->crashed_at)
                return;
        if (subj != c->victim) {
                if (new == SIM_VIEW_DEAD) {
                        c->other_dead++;
                        sim_fail(s, "n%u declared n%u dead, which is up", obs, subj);
                }
                return;
        }
        if (new == SIM_VIEW_SUSPECT && !c->suspect_at[obs])
                c->suspect_at[obs] = sim_now(s) - c->crashed_at;
        if (new == SIM_VIEW_DEAD && !c->dead_at[obs]) {
                c->dead_at[obs] = sim_now(s) - c->crashed_at;
                c->n_dead++;
        }
        if (new == SIM_VIEW_ALIVE && c->dead_at[obs])
                sim_fail(s, "n%u revived crashed n%u", obs, subj);
}

static bool all_dead(struct sim *s, void *userdata) {
        struct crash *c = userdata;

        return c->n_dead == sim_nodes(s) - 1;
}

static void print_dist(const char *what, uint64_t *v, size_t n) {
        uint64_t max = 0;

        for (size_t k = 0; k < n; k++)
                if (v[k] > max)
                        max = v[k];
        printf("sim_crash:   %-8s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (%zu observers)\n", what,
               (double)sim_percentile(v, n, 50) / 1e3, (double)sim_percentile(v, n, 99) / 1e3,
               (double)max / 1e3, n);
}

static int run(uint64_t seed) {
        struct sim_params p;
        struct sim *s;
        struct crash c = { 0 };
        uint64_t n = sim_scaled(CRASH_NODES, 5), *v, bound;
        size_t nv;
        int ret;

        sim_params_default(&p, "sim_crash", seed, (uint32_t)n);
        if (sim_new(&p, &s) < 0)
                return 1;
        c.suspect_at = calloc(n, sizeof(uint64_t));
        c.dead_at = calloc(n, sizeof(uint64_t));
        v = calloc(n, sizeof(uint64_t));
        if (!c.suspect_at || !c.dead_at || !v)
                abort();
        sim_on_view(s, on_view, &c);
        bound = crash_bound(s);
        if (!sim_bootstrap(s, SIM_USEC_PER_SEC, 120 * SIM_USEC_PER_SEC))
                goto out;
        /* Let the join gossip die down so that the crash meets a quiet cluster. */
        sim_run_for(s, 20 * sim_probe_interval(s));
        c.victim = (uint32_t)sim_rng_below(sim_scenario_rng(s), n);
        c.crashed_at = sim_now(s);
        sim_crash(s, c.victim);
        sim_run_while_not(s, c.crashed_at + bound, 10 * SIM_USEC_PER_MSEC, all_dead, &c);
        if (sim_failed(s))
                goto out;
        printf("sim_crash: n%u crashed in a cluster of %" PRIu64 "; %u of %" PRIu64
               " survivors marked it dead within %.1f s\n",
               c.victim, n, c.n_dead, n - 1, (double)bound / 1e6);
        nv = 0;
        for (uint32_t i = 0; i < n; i++)
                if (i != c.victim && c.suspect_at[i])
                        v[nv++] = c.suspect_at[i];
        print_dist("suspect", v, nv);
        nv = 0;
        for (uint32_t i = 0; i < n; i++)
                if (i != c.victim && c.dead_at[i])
                        v[nv++] = c.dead_at[i];
        print_dist("dead", v, nv);
        if (c.n_dead != n - 1)
                sim_fail(s, "only %u of %" PRIu64 " survivors marked n%u dead within %.1f s", c.n_dead,
                         n - 1, c.victim, (double)bound / 1e6);
        /* Nothing may bring it back or take anyone else down afterwards. */
        sim_run_for(s, 30 * SIM_USEC_PER_SEC);
        for (uint32_t i = 0; i < n && !sim_failed(s); i++)
                if (i != c.victim && sim_view(s, i, c.victim) != SIM_VIEW_DEAD)
                        sim_fail(s, "n%u sees crashed n%u as %s at the end", i, c.victim,
                                 sim_view_to_string(sim_view(s, i, c.victim)));
        if (!sim_failed(s) && sim_stats(s)->false_dead)
                sim_fail(s, "%" PRIu64 " false deaths", sim_stats(s)->false_dead);
        sim_check_views(s);
out:
        ret = sim_failed(s) ? 1 : 0;
        free(c.suspect_at);
        free(c.dead_at);
        free(v);
        sim_free(s);
        return ret;
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2, 3, 4, 5 };

        return sim_main("sim_crash", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
