/*
 * sim_stale: old messages never undo newer knowledge.
 *
 * Every packet (UDP and push-pull) of a 20-node cluster is recorded from the
 * first join on, through an episode where node P is paused long enough to be
 * suspected (and maybe declared dead) and refutes, up to the crash of node V
 * and its death everywhere. Then:
 *
 *  A. the network replays every recorded UDP packet with its original
 *     envelope stamp: the receivers' replay windows must drop every one;
 *  B. the recorded bodies that carry "V alive" are sent again by their
 *     original senders with fresh stamps (a long-delayed packet gets through
 *     the window): V must stay dead everywhere;
 *  C. every recorded body, UDP and push-pull, is re-delivered straight to its
 *     receiver's core in the original order (no window at all): no view may
 *     change, no incarnation may move, V stays dead.
 *
 * After each phase the cluster runs on for a while and must stay exactly as
 * it was: everyone alive, V dead everywhere.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"
#include "sim.h"

#define STALE_NODES 20
#define STALE_RECORD_MAX 400000

struct rec {
        struct sim_packet_info info;    /* info.buf is `copy` */
        uint8_t *copy;
        bool alive_v;           /* the body carries an alive update (or record) for V */
};

struct stale {
        bool recording;
        struct rec *rec;
        size_t n_rec, n_alive_v;
        uint32_t v, p;
        char v_name[16];
        bool watch;             /* count view changes from now on */
        uint64_t changes;
        uint64_t revived;
};

/* Does this body announce V alive? Push-pull bodies are walked record by record. */
static bool carries_alive(const struct sim_packet_info *info, const char *name) {
        size_t nl = strlen(name);

        if (!info->tcp) {
                struct wire_msg m;

                if (wire_decode(info->buf, info->len, &m) < 0)
                        return false;
                for (size_t k = 0; k < m.n_updates; k++)
                        if (m.updates[k].kind == WIRE_STATE_ALIVE && m.updates[k].name_len == nl &&
                            memcmp(m.updates[k].name, name, nl) == 0)
                                return true;
                return false;
        } else {
                struct wire_pushpull_header h;
                struct wire_pushpull_reader r;
                struct wire_member mb;

                if (wire_pushpull_open(info->buf, info->len, &h, &r) < 0)
                        return false;
                while (wire_pushpull_next(&r, &mb) > 0)
                        if (mb.state == WIRE_STATE_ALIVE && mb.name_len == nl && memcmp(mb.name, name, nl) == 0)
                                return true;
                return false;
        }
}

static void on_tap(struct sim *s, const struct sim_packet_info *info, void *userdata) {
        struct stale *st = userdata;
        struct rec *r;
        uint8_t *copy;

        if (!st->recording)
                return;
        if (st->n_rec == STALE_RECORD_MAX) {
                sim_fail(s, "more than %u packets recorded", STALE_RECORD_MAX);
                return;
        }
        copy = malloc(info->len ? info->len : 1);
        if (!copy)
                abort();
        memcpy(copy, info->buf, info->len);
        r = &st->rec[st->n_rec++];
        r->info = *info;
        r->info.buf = copy;
        r->copy = copy;
        r->alive_v = carries_alive(info, st->v_name);
        st->n_alive_v += r->alive_v;
}

static void on_view(struct sim *s, uint32_t obs, uint32_t subj, enum sim_view old, enum sim_view new,
                    uint64_t inc, void *userdata) {
        struct stale *st = userdata;

        if (subj == st->v && old == SIM_VIEW_DEAD && new != SIM_VIEW_DEAD) {
                st->revived++;
                sim_fail(s, "n%u revived dead n%u: %s -> %s (incarnation %" PRIu64 ")", obs, subj,
                         sim_view_to_string(old), sim_view_to_string(new), inc);
        }
        if (st->watch) {
                st->changes++;
                sim_fail(s, "a stale message changed n%u's view of n%u: %s -> %s (incarnation %" PRIu64 ")",
                         obs, subj, sim_view_to_string(old), sim_view_to_string(new), inc);
        }
}

static bool p_alive_everywhere(struct sim *s, void *userdata) {
        const struct stale *st = userdata;

        for (uint32_t i = 0; i < sim_nodes(s); i++)
                if (i != st->p && sim_view(s, i, st->p) != SIM_VIEW_ALIVE)
                        return false;
        return true;
}

static bool v_dead_everywhere(struct sim *s, void *userdata) {
        const struct stale *st = userdata;

        for (uint32_t i = 0; i < sim_nodes(s); i++)
                if (i != st->v && sim_view(s, i, st->v) != SIM_VIEW_DEAD)
                        return false;
        return true;
}

/* Views and incarnations of every live pair, to compare after a phase. */
struct snapshot {
        uint8_t *view;
        uint64_t *inc, *self_inc;
};

static void snap(struct sim *s, struct snapshot *sn) {
        uint32_t n = sim_nodes(s);

        for (uint32_t i = 0; i < n; i++) {
                sn->self_inc[i] = sim_incarnation(s, i);
                for (uint32_t j = 0; j < n; j++) {
                        sn->view[i * n + j] = (uint8_t)sim_view(s, i, j);
                        sn->inc[i * n + j] = sim_view_incarnation(s, i, j);
                }
        }
}

static void compare(struct sim *s, const struct snapshot *sn, const char *phase, uint32_t v) {
        uint32_t n = sim_nodes(s);

        for (uint32_t i = 0; i < n && !sim_failed(s); i++) {
                if (i == v)
                        continue;
                if (sim_incarnation(s, i) != sn->self_inc[i])
                        sim_fail(s, "%s: n%u's incarnation moved %" PRIu64 " -> %" PRIu64, phase, i,
                                 sn->self_inc[i], sim_incarnation(s, i));
                for (uint32_t j = 0; j < n && !sim_failed(s); j++)
                        if (sim_view(s, i, j) != sn->view[i * n + j] ||
                            sim_view_incarnation(s, i, j) != sn->inc[i * n + j])
                                sim_fail(s, "%s: n%u's view of n%u moved from %s/%" PRIu64 " to %s/%" PRIu64, phase,
                                         i, j, sim_view_to_string(sn->view[i * n + j]), sn->inc[i * n + j],
                                         sim_view_to_string(sim_view(s, i, j)), sim_view_incarnation(s, i, j));
        }
        sim_check_views(s);
}

static int run(uint64_t seed) {
        struct sim_params prm;
        struct sim *s;
        struct stale st = { 0 };
        struct snapshot sn;
        uint64_t n = sim_scaled(STALE_NODES, 4), inc_p0, dropped0;
        size_t injected = 0, fresh = 0, direct = 0, refused = 0;
        int ret;

        sim_params_default(&prm, "sim_stale", seed, (uint32_t)n);
        prm.replay_window = true;
        if (sim_new(&prm, &s) < 0)
                return 1;
        st.rec = calloc(STALE_RECORD_MAX, sizeof(*st.rec));
        sn.view = calloc(n * n, 1);
        sn.inc = calloc(n * n, sizeof(uint64_t));
        sn.self_inc = calloc(n, sizeof(uint64_t));
        if (!st.rec || !sn.view || !sn.inc || !sn.self_inc)
                abort();
        st.v = 1 + (uint32_t)sim_rng_below(sim_scenario_rng(s), n - 1);
        do
                st.p = 1 + (uint32_t)sim_rng_below(sim_scenario_rng(s), n - 1);
        while (st.p == st.v);
        snprintf(st.v_name, sizeof(st.v_name), "n%u", st.v);
        sim_on_tap(s, on_tap, &st);
        sim_on_view(s, on_view, &st);
        st.recording = true;
        if (!sim_bootstrap(s, SIM_USEC_PER_SEC, 60 * SIM_USEC_PER_SEC))
                goto out;
        sim_run_for(s, 20 * sim_probe_interval(s));

        /* P is paused long enough to be suspected, then refutes. */
        inc_p0 = sim_incarnation(s, st.p);
        sim_pause(s, st.p);
        sim_run_for(s, 3 * SIM_USEC_PER_SEC);
        sim_resume(s, st.p);
        if (!sim_run_while_not(s, sim_now(s) + 30 * SIM_USEC_PER_SEC, 10 * SIM_USEC_PER_MSEC, p_alive_everywhere, &st)) {
                sim_fail(s, "paused n%u did not come back alive everywhere", st.p);
                goto out;
        }
        sim_run_for(s, 20 * sim_probe_interval(s));

        /* V crashes and is declared dead everywhere. */
        sim_crash(s, st.v);
        if (!sim_run_while_not(s, sim_now(s) + 30 * SIM_USEC_PER_SEC, 10 * SIM_USEC_PER_MSEC, v_dead_everywhere, &st)) {
                sim_fail(s, "crashed n%u is not dead everywhere after 30 s", st.v);
                goto out;
        }
        /* Let the dead gossip settle so that only stale messages could move anything. */
        sim_run_for(s, 10 * SIM_USEC_PER_SEC);
        st.recording = false;
        if (!sim_converged(s) || !v_dead_everywhere(s, &st)) {
                sim_fail(s, "the cluster did not settle before the replays");
                goto out;
        }
        printf("sim_stale: recorded %zu packets (%zu announce n%u alive); n%u paused and refuted "
               "(incarnation %" PRIu64 " -> %" PRIu64 "); n%u crashed and dead everywhere\n",
               st.n_rec, st.n_alive_v, st.v, st.p, inc_p0, sim_incarnation(s, st.p), st.v);
        if (st.n_alive_v == 0 || sim_incarnation(s, st.p) <= inc_p0) {
                sim_fail(s, "the recording holds no stale alive for n%u or n%u never refuted: nothing to test",
                         st.v, st.p);
                goto out;
        }

        /* A: replays with their original stamps never reach a core. */
        sim_note(s, "phase A: replaying %zu packets with their stamps", st.n_rec);
        snap(s, &sn);
        st.watch = true;
        dropped0 = sim_stats(s)->replays_dropped;
        for (size_t k = 0; k < st.n_rec; k++)
                if (!st.rec[k].info.tcp && st.rec[k].info.to != st.v) {
                        sim_inject(s, &st.rec[k].info);
                        injected++;
                }
        sim_run_for(s, 10 * SIM_USEC_PER_SEC);
        printf("sim_stale: A: %zu recorded packets replayed with their stamps: %" PRIu64 " dropped by the "
               "replay windows\n", injected, sim_stats(s)->replays_dropped - dropped0);
        if (sim_stats(s)->replays_dropped - dropped0 != injected)
                sim_fail(s, "A: %" PRIu64 " of %zu replays got through the replay windows",
                         injected - (sim_stats(s)->replays_dropped - dropped0), injected);
        compare(s, &sn, "A", st.v);
        if (sim_failed(s))
                goto out;

        /* B: stale "V alive" bodies that get through the window (fresh stamps). */
        sim_note(s, "phase B: stale alive of n%u with fresh stamps", st.v);
        for (size_t k = 0; k < st.n_rec; k++)
                if (st.rec[k].alive_v && !st.rec[k].info.tcp && st.rec[k].info.to != st.v &&
                    st.rec[k].info.from != st.v) {
                        struct sim_packet_info pi = st.rec[k].info;

                        pi.seq = 0;
                        sim_inject(s, &pi);
                        fresh++;
                }
        sim_run_for(s, 10 * SIM_USEC_PER_SEC);
        printf("sim_stale: B: %zu stale bodies announcing n%u alive delivered through the windows: "
               "n%u still dead everywhere\n", fresh, st.v, st.v);
        if (!v_dead_everywhere(s, &st))
                sim_fail(s, "B: n%u is not dead everywhere after stale alive messages", st.v);
        compare(s, &sn, "B", st.v);
        if (sim_failed(s))
                goto out;

        /* C: every recorded body straight into its receiver's core, in order. */
        sim_note(s, "phase C: re-delivering every recorded body to the cores");
        for (size_t k = 0; k < st.n_rec && !sim_failed(s); k++) {
                const struct sim_packet_info *pi = &st.rec[k].info;

                if (pi->to == st.v)
                        continue;
                if (sim_deliver_now(s, pi) < 0)
                        refused++;
                direct++;
        }
        compare(s, &sn, "C (at once)", st.v);
        sim_run_for(s, 10 * SIM_USEC_PER_SEC);
        printf("sim_stale: C: %zu recorded bodies (UDP and push-pull) re-delivered to the cores "
               "(%zu refused by them): no view or incarnation moved; n%u still dead everywhere\n",
               direct, refused, st.v);
        compare(s, &sn, "C", st.v);
out:
        ret = sim_failed(s) ? 1 : 0;
        for (size_t k = 0; k < st.n_rec; k++)
                free(st.rec[k].copy);
        free(st.rec);
        free(sn.view);
        free(sn.inc);
        free(sn.self_inc);
        sim_free(s);
        return ret;
}

int main(void) {
        static const uint64_t seeds[] = { 1, 2, 3 };

        return sim_main("sim_stale", seeds, sizeof(seeds) / sizeof(seeds[0]), run);
}
