/*
 * The deterministic simulator: many real membership cores (src/core/
 * membership.c) in one process, on a virtual clock and a virtual network,
 * everything drawn from one seed so that a failing run reproduces exactly.
 *
 * Time is a global virtual clock in µs starting at 0. Each node sees it
 * through its own monotonic offset (hosts' CLOCK_MONOTONIC values are
 * unrelated), so a core that compared times across nodes would be caught.
 *
 * Events sit in one priority queue ordered by (time, insertion sequence):
 * packet deliveries and node wakeups at each core's next deadline. Nothing
 * else decides an order, so two runs with the same seed are identical.
 *
 * The network: every UDP packet is really encoded with src/core/wire.c and
 * decoded again at the receiver. A link has a fixed base latency drawn from
 * the seed, plus uniform jitter per packet; a loss probability drops UDP
 * packets; partition groups cannot reach each other. Push-pull (TCP) is
 * modelled as reliable delivery after a connection handshake (three one-way
 * latencies), unless a partition or a crash is in the way; an exchange that
 * gets no answer within conn_timeout (5 s, the agent's net default) fails
 * for the initiator, and an answer after that is discarded.
 *
 * Node faults:
 *   crashed - drops everything, processes nothing, forever.
 *   paused  - a SIGSTOPped process: it processes nothing and sends nothing.
 *             Packets for it wait in a bounded receive queue like a socket
 *             buffer (SIM_PAUSE_QUEUE_MAX packets, then dropped). On resume
 *             it first runs its overdue tick with the real clock jump (libev
 *             runs expired timers before the pending I/O of the same
 *             iteration), then reads the queued packets in arrival order.
 *
 * Recorders: every observer's view of every subject (alive, suspect, dead,
 * left, with the incarnation) is kept in a matrix updated from the core's
 * own state-change outputs (and checked against the cores' query interface),
 * with counters and a ring of recent transitions that is written to
 * /tmp/sim_<scenario>_<seed>.trace when a run fails.
 *
 * Environment of every scenario program:
 *   SIM_SEED=S[,S...]  run these seeds (decimal or 0x-hex) instead of the defaults
 *   SIM_SCALE=F        0 < F <= 1: fewer nodes and shorter runs (ASan, valgrind)
 *   SIM_TRACE=1        view changes and scenario actions on stderr
 *   SIM_TRACE=2        ... and every packet a core reads, decoded
 *
 * Nodes are named n0..n<N-1> and live at 10.x.y.z:7946 (z.y.x = the index).
 */
#ifndef AGENTD_SIM_H
#define AGENTD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_USEC_PER_MSEC UINT64_C(1000)
#define SIM_USEC_PER_SEC  UINT64_C(1000000)

/* Packets a paused node's socket buffer holds; later ones are dropped. */
#define SIM_PAUSE_QUEUE_MAX 512

/* A seed's PRNG stream (xoshiro256**), seeded through splitmix64. */
struct sim_rng {
        uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double sim_rng_double(struct sim_rng *r);

/* What one observer believes about one subject. */
enum sim_view {
        SIM_VIEW_NONE,          /* never heard of it */
        SIM_VIEW_ALIVE,
        SIM_VIEW_SUSPECT,
        SIM_VIEW_DEAD,
        SIM_VIEW_LEFT,
        _SIM_VIEW_MAX,
};

const char *sim_view_to_string(enum sim_view v);

/* What a node really is (the ground truth the checkers compare against). */
enum sim_node_state {
        SIM_NODE_OFF,           /* not started yet */
        SIM_NODE_UP,
        SIM_NODE_PAUSED,
        SIM_NODE_CRASHED,
};

struct sim;

/*
 * Called for every view change, after the matrix is updated. Scenarios use
 * it for their own invariants and timings.
 */
typedef void (*sim_view_fn)(struct sim *s, uint32_t observer, uint32_t subject,
                            enum sim_view old, enum sim_view new, uint64_t incarnation,
                            void *userdata);

/*
 * A packet as it crossed the network: its encoded body and, for UDP, the
 * envelope stamp (boot epoch, sequence) its sender put on it. tcp marks a
 * push-pull body (the frame header removed), reply its answer half.
 */
struct sim_packet_info {
        uint32_t from, to;
        bool tcp, reply;
        uint64_t epoch, seq;
        const uint8_t *buf;
        size_t len;
};

/*
 * Called for every packet a node sends (UDP and push-pull), before the
 * network decides its fate. Scenarios record packets here (copying buf) to
 * replay them.
 */
typedef void (*sim_tap_fn)(struct sim *s, const struct sim_packet_info *pkt, void *userdata);

struct sim_params {
        const char *name;               /* scenario name, for reports and trace files */
        uint64_t seed;
        uint32_t nodes;
        uint64_t latency_us;            /* one-way base latency of the fastest link */
        uint64_t latency_spread_us;     /* links' base latencies are spread over this much more */
        uint64_t jitter_us;             /* per packet, uniform in [0, jitter] */
        double loss;                    /* UDP loss probability per packet */
        uint64_t conn_timeout_us;       /* a push-pull exchange without an answer by then has failed */
        const char *profile;            /* membership timing profile name, NULL: the default ("lan") */
        bool replay_window;             /* receivers run src/core/replay.c on envelope stamps, as the agent does */
        bool app_only;                  /* no membership cores: nodes run only the scenario's sim_app_ops */
};

/* Sensible LAN-like network: 100-300 µs links, 100 µs jitter, no loss. */
void sim_params_default(struct sim_params *p, const char *name, uint64_t seed, uint32_t nodes);

/* Creates the simulation; no node runs until started. Returns 0 or -errno. */
int sim_new(const struct sim_params *p, struct sim **ret);
void sim_free(struct sim *s);

uint64_t sim_now(const struct sim *s);
uint32_t sim_nodes(const struct sim *s);
const char *sim_name(const struct sim *s);
uint64_t sim_seed(const struct sim *s);
/* The probe interval of the cores' profile, for converting to periods. */
uint64_t sim_probe_interval(const struct sim *s);
/* The timings every core runs with (the profile's defaults). */
struct membership_config;
const struct membership_config *sim_config(const struct sim *s);
/*
 * The longest suspicion timeout the cores use in a cluster of this size
 * (Lifeguard's starting value, before any confirmation shrinks it).
 */
uint64_t sim_suspicion_max(const struct sim *s);

/*
 * Starts node i at the current virtual time. With join >= 0 it joins the
 * cluster through that node; with join < 0 it starts alone (a seed node).
 */
int sim_start(struct sim *s, uint32_t i, int64_t join);

/* Faults. */
void sim_crash(struct sim *s, uint32_t i);
void sim_pause(struct sim *s, uint32_t i);
void sim_resume(struct sim *s, uint32_t i);
void sim_set_loss(struct sim *s, double loss);
/* group[i] is node i's partition group; nodes in different groups cannot talk. NULL heals. */
void sim_partition(struct sim *s, const uint32_t *group);
bool sim_can_talk(const struct sim *s, uint32_t a, uint32_t b);
enum sim_node_state sim_node_state(const struct sim *s, uint32_t i);

/*
 * Sends a recorded packet again, with its original envelope stamp, from its
 * original sender to its original receiver: it arrives after the link
 * latency and meets the receiver's replay window (when enabled) like any
 * packet; loss and partitions spare it. For replay attacks. With seq == 0
 * the sender stamps it afresh instead: an old body that reaches the core
 * through the window, like a long-delayed packet. UDP only.
 */
void sim_inject(struct sim *s, const struct sim_packet_info *pkt);

/*
 * Hands a recorded body straight to the receiver's core now, bypassing the
 * network and the replay window: the core-level re-delivery of an old
 * message. A push-pull request body is merged (no answer is sent), a reply
 * body is offered as the answer of an exchange. Returns what the core said
 * (0 or -errno).
 */
int sim_deliver_now(struct sim *s, const struct sim_packet_info *pkt);

/*
 * A scenario's own protocol on the simulated nodes (e.g. the election core),
 * alongside or (params.app_only) instead of the membership cores. Messages
 * are opaque datagrams over the same links as UDP: latency, jitter, loss,
 * partitions, paused receivers' bounded queues and crashed receivers apply.
 * deadline() returns the node's next timer in VIRTUAL time (UINT64_MAX:
 * none); tick() runs when it is due; receive() gets each datagram. After
 * each callback the node's wakeup is rescheduled; a scenario that changes a
 * node's timers outside a callback calls sim_app_reschedule(). Callbacks
 * only run for up nodes; a resumed node gets tick() first, then its queue.
 */
struct sim_app_ops {
        void (*receive)(struct sim *s, uint32_t to, uint32_t from, const uint8_t *buf, size_t len, void *userdata);
        void (*tick)(struct sim *s, uint32_t i, void *userdata);
        uint64_t (*deadline)(struct sim *s, uint32_t i, void *userdata);
};
void sim_on_app(struct sim *s, const struct sim_app_ops *ops, void *userdata);
void sim_app_send(struct sim *s, uint32_t from, uint32_t to, const void *buf, size_t len);
void sim_app_reschedule(struct sim *s, uint32_t i);
/* Node i's CLOCK_MONOTONIC (virtual time + its private offset). */
uint64_t sim_local_now(const struct sim *s, uint32_t i);
/*
 * Brings a crashed node back up (app_only simulations: the scenario reloads
 * the node's state from what it persisted). -EOPNOTSUPP with membership
 * cores, -EINVAL when the node is not crashed.
 */
int sim_restart(struct sim *s, uint32_t i);

/* Runs events up to and including time t, then sets the clock to t. */
void sim_run_until(struct sim *s, uint64_t t);
void sim_run_for(struct sim *s, uint64_t d);

/*
 * Runs until cond() is true, checking every `step` µs of virtual time, or
 * until `deadline`. Returns true when the condition held (the clock is then
 * at the first check where it did).
 */
bool sim_run_while_not(struct sim *s, uint64_t deadline, uint64_t step,
                       bool (*cond)(struct sim *s, void *userdata), void *userdata);

/*
 * Starts all nodes: node 0 alone at the current time, every other one
 * joining through node 0 at a time spread uniformly over `spread_us`. The
 * clock is at the last start when it returns; false after sim_fail().
 */
bool sim_start_all(struct sim *s, uint64_t spread_us);
/* When sim_start_all() started its last node. */
uint64_t sim_last_start(const struct sim *s);

/*
 * sim_start_all(), then runs until the cluster has converged, at most
 * `limit_us` after the last start. Returns the virtual time of convergence,
 * or 0 after sim_fail().
 */
uint64_t sim_bootstrap(struct sim *s, uint64_t spread_us, uint64_t limit_us);

/* A PRNG stream for the scenario's own choices (which node to crash...). */
struct sim_rng *sim_scenario_rng(struct sim *s);

/* Recorders. */
enum sim_view sim_view(const struct sim *s, uint32_t observer, uint32_t subject);
uint64_t sim_view_incarnation(const struct sim *s, uint32_t observer, uint32_t subject);
uint64_t sim_view_since(const struct sim *s, uint32_t observer, uint32_t subject);
/* Every up (not crashed, not paused, started) node sees every other up node alive. */
bool sim_converged(const struct sim *s);
/* How many (observer, subject) pairs are alive, over observers that are up; O(nodes). */
uint64_t sim_alive_views(const struct sim *s);
/* How many (observer, subject) pairs are in view v, among started observers. */
uint64_t sim_count_view(const struct sim *s, enum sim_view v);
/* The node's own incarnation as its core reports it. */
uint64_t sim_incarnation(const struct sim *s, uint32_t i);
/*
 * Compares the recorded views with what every running core reports through
 * its query interface; a mismatch fails the run. Returns !sim_failed().
 */
bool sim_check_views(struct sim *s);
/* The core's own counters summed over all nodes. */
struct membership_counters;
void sim_core_counters(const struct sim *s, struct membership_counters *ret);
/* The core of node i (for scenario-specific queries; NULL before start). */
struct membership *sim_core(struct sim *s, uint32_t i);

struct sim_stats {
        uint64_t udp_sent, udp_lost, udp_partitioned, udp_delivered, udp_dropped_dead, udp_queue_full;
        uint64_t udp_bytes, udp_max_bytes;
        uint64_t tcp_sent, tcp_failed, tcp_bytes, tcp_max_bytes;
        uint64_t tcp_timeouts, tcp_late;    /* exchanges failed by their timer; answers after it */
        uint64_t decode_errors, receive_errors, unknown_addr;
        uint64_t replays_dropped;       /* by the receivers' replay windows */
        uint64_t injected;
        uint64_t ticks;
        uint64_t to_suspect, to_dead, to_alive_from_suspect, to_alive_from_dead, to_left;
        uint64_t false_dead;            /* an up node marked dead while nothing kept it from being heard */
        uint64_t refutations;           /* a node raised its own incarnation */
        uint64_t app_sent, app_delivered, app_dropped; /* sim_app_send() datagrams */
};
const struct sim_stats *sim_stats(const struct sim *s);

void sim_on_view(struct sim *s, sim_view_fn fn, void *userdata);
void sim_on_tap(struct sim *s, sim_tap_fn fn, void *userdata);

/*
 * Failure reporting. sim_fail() records the first failure of the run with a
 * printf-style reason, prints it with the seed and the command that
 * reproduces it, and writes the recent transition trace to
 * /tmp/sim_<name>_<seed>.trace. sim_failed() says whether one happened.
 */
void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool sim_failed(const struct sim *s);
/* Appends a free-form line to the trace (scenario actions). */
void sim_note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Scenario driver helpers. sim_seeds() returns the seeds to run: SIM_SEED
 * (one value or a comma-separated list, decimal or 0x-hex) when set, else
 * the defaults. sim_scale() is SIM_SCALE (default 1.0, for ASan runs);
 * sim_scaled() applies it with a floor.
 */
size_t sim_seeds(const uint64_t *defaults, size_t n_defaults, uint64_t *ret, size_t max);
double sim_scale(void);
uint64_t sim_scaled(uint64_t v, uint64_t min);

/*
 * Runs run(seed) for every seed, prints "NAME: K seeds passed" or the
 * failures, and returns the process exit status (0 or 1).
 */
int sim_main(const char *name, const uint64_t *defaults, size_t n_defaults,
             int (*run)(uint64_t seed));

/* Sorts v and returns the p-th percentile (0..100), nearest rank. */
uint64_t sim_percentile(uint64_t *v, size_t n, double p);
/* Wall-clock seconds since some fixed point, for printing run times only. */
double sim_wall_seconds(void);

#endif
