/*
 * Replay protection (pure core): every sender stamps its packets with
 * (boot epoch, sequence); a receiver keeps, per sender id, the newest epoch
 * and a sliding window of REPLAY_WINDOW sequence numbers and accepts each
 * (epoch, sequence) once.
 *
 *  - a newer epoch (the sender restarted) resets the sender's window;
 *  - an older epoch is rejected;
 *  - within the epoch, a sequence above the highest seen moves the window,
 *    one inside the window is accepted once, one below it is rejected.
 *
 * Call replay_check only AFTER the packet has authenticated (crypto_open):
 * then only holders of a cluster key can create or move entries, so a
 * spoofed sender id can neither evict a real one nor advance its window.
 * (In plaintext mode nothing is authenticated and the table only stops
 * accidental duplicates.)
 *
 * The table holds at most max_senders entries, all allocated by
 * replay_new; a new sender beyond that evicts the least recently seen one,
 * so no input grows memory. An evicted sender comes back as new: its old
 * packets would be accepted again, which is why the cap must exceed the
 * cluster size (the default 4096 does for any cluster agentd targets).
 */
#ifndef AGENTD_REPLAY_H
#define AGENTD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Window width in sequence numbers (bits per sender). */
#define REPLAY_WINDOW 1024
/* Default and largest sender table sizes. */
#define REPLAY_SENDERS_DEFAULT 4096
#define REPLAY_SENDERS_MAX 65536

struct replay;

enum replay_verdict {
        REPLAY_ACCEPTED,     /* first time seen, within the current epoch */
        REPLAY_NEW_SENDER,   /* accepted: sender not in the table (new or evicted) */
        REPLAY_NEW_EPOCH,    /* accepted: newer boot epoch, window reset */
        REPLAY_DUPLICATE,    /* rejected: this (epoch, sequence) was seen */
        REPLAY_TOO_OLD,      /* rejected: sequence below the window */
        REPLAY_OLD_EPOCH,    /* rejected: epoch older than the sender's newest */
        _REPLAY_VERDICT_MAX,
};

/* "accepted", "new_sender", "new_epoch", "duplicate", "too_old", "old_epoch"; NULL out of range. */
const char *replay_verdict_to_string(enum replay_verdict v);

/* True for the three accepting verdicts. */
static inline bool replay_accepted(enum replay_verdict v) {
        return v == REPLAY_ACCEPTED || v == REPLAY_NEW_SENDER || v == REPLAY_NEW_EPOCH;
}

/*
 * Creates a table for at most max_senders senders (1..REPLAY_SENDERS_MAX;
 * 0 means REPLAY_SENDERS_DEFAULT). Returns 0, -EINVAL or -ENOMEM.
 */
int replay_new(size_t max_senders, struct replay **ret);

/* NULL-safe. */
void replay_free(struct replay *r);

/*
 * Checks (sender, epoch, seq) and records it when accepted; marks the
 * sender most recently seen whenever it is in the table. Never fails and
 * never allocates.
 */
enum replay_verdict replay_check(struct replay *r, uint64_t sender, uint64_t epoch, uint64_t seq);

/* Senders currently in the table. */
size_t replay_count(const struct replay *r);

/*
 * Looks a sender up without touching it: its epoch and highest sequence.
 * Returns false when the sender is not in the table (outputs untouched).
 */
bool replay_lookup(const struct replay *r, uint64_t sender, uint64_t *ret_epoch, uint64_t *ret_top);

#endif
