/*
 * The per-host state database (SQLite): <state_dir>/state.db, WAL, one writer
 * (the loop thread). Writes are grouped: the first write of a loop iteration
 * opens a transaction and store_commit(), called once per iteration from an
 * ev_prepare watcher, ends it. This module never logs; it returns negative
 * errno and, where useful, a message in *ret_error.
 */
#ifndef AGENTD_STORE_H
#define AGENTD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"

/* The schema version this build writes; older files are migrated forward. */
#define STORE_SCHEMA_VERSION 3
#define STORE_DB_NAME "state.db"
/* Longest text field stored; longer ones are cut at a UTF-8 character boundary. */
#define STORE_FIELD_MAX 4096

struct store;

enum store_sync { STORE_SYNC_NORMAL, STORE_SYNC_FULL };

/* What store_open found and did; filled on success. */
struct store_open_info {
        bool recovered;             /* the old file failed quick_check and was moved aside */
        char corrupt_path[4096];    /* where it went, when recovered */
        char corrupt_reason[256];   /* what quick_check or open said */
        int from_version;           /* user_version found (0: new file) */
        int to_version;             /* user_version now (STORE_SCHEMA_VERSION) */
};

/*
 * Where a function takes ret_error, a failure stores a malloc'd message in
 * *ret_error (NULL if even that failed) for the caller to log and free; on
 * success *ret_error is left alone.
 *
 * Opens or creates DIR/state.db for writing: creates DIR (0750) when missing,
 * runs quick_check, moves a corrupt file aside as state.db.corrupt-<unixtime>
 * (with its -wal/-shm) and creates a fresh one, then migrates. A file whose
 * user_version is newer than this build knows is refused (-EPROTO): it was
 * written by a newer agentd and must not be downgraded silently.
 */
int store_open(const char *dir, enum store_sync sync, struct store **ret,
               struct store_open_info *ret_info, char **ret_error);

/*
 * Opens an existing database file read-only (agentctl events --db): no check,
 * no migration. A missing file is -ENOENT ("no such file: PATH"); a file that
 * is not an agentd database (schema version 0) or is newer than this build is
 * refused. Write calls on the result return -EROFS.
 */
int store_open_readonly(const char *path, struct store **ret, char **ret_error);

/* Commits any open transaction and closes. NULL-safe. */
void store_free(struct store *s);

/*
 * Queues one event in the current transaction (opened when none is). The
 * event's id is returned in *ret_id when ret_id is not NULL. ev->node must be
 * set; NULL subject/detail are stored as "". -EINVAL for a bad kind or a
 * missing node, -ERANGE for ts_us or term above INT64_MAX.
 */
int store_event_add(struct store *s, const struct event *ev, int64_t *ret_id);

/*
 * Ends the current transaction, if any. Returns 0 or negative errno. On
 * -EBUSY the transaction stays open for the next try; on any other failure it
 * is rolled back (those events are lost, the caller logs).
 */
int store_commit(struct store *s);

/* True while a transaction is open (writes are waiting for store_commit). */
bool store_in_transaction(const struct store *s);

/*
 * Retention: deletes events older than now_real_us - max_age_us (max_age 0:
 * no age limit) and then all but the newest max_rows (0: no count limit),
 * oldest first, at most STORE_PRUNE_BATCH rows per call so that one call
 * never holds the loop for long (deleting 10,000 rows takes tens of ms).
 * Runs in its own transaction. *ret_deleted gets the number removed; when it
 * equals STORE_PRUNE_BATCH there may be more to do, so call again soon.
 */
#define STORE_PRUNE_BATCH 10000
int store_prune(struct store *s, uint64_t now_real_us, uint64_t max_age_us,
                uint64_t max_rows, uint64_t *ret_deleted);

/* A stored event as read back; strings are valid during the callback only. */
struct store_event {
        int64_t id;
        uint64_t ts_us;
        const char *node;
        const char *kind;
        const char *subject;
        const char *detail;
        const char *service;
        const char *unit;
        uint64_t term;
};

struct store_event_filter {
        int64_t after_id;      /* only ids > after_id (0: all) */
        uint64_t since_us;     /* only ts >= since_us (0: all) */
        const char *kind;      /* NULL: every kind */
        uint32_t limit;        /* newest `limit` matches (0: no limit) */
};

/* Returns nonzero from the callback to stop early (that value is returned). */
typedef int (*store_event_cb)(const struct store_event *ev, void *userdata);

/*
 * Calls cb for every matching event, oldest first. Sees the writer's own
 * uncommitted events. cb must not call store_events_query again (-EBUSY).
 */
int store_events_query(struct store *s, const struct store_event_filter *f,
                       store_event_cb cb, void *userdata);

/* Number of rows in the events table. */
int store_events_count(struct store *s, uint64_t *ret_count);

/* Path of the open database file. */
const char *store_path(const struct store *s);

/*
 * For tests and diagnostics: reads an integer pragma of this connection
 * ("synchronous", "user_version", ...). The name must be [a-z_]+.
 */
int store_pragma_int(struct store *s, const char *pragma, int64_t *ret);

/*
 * For tests: creates PATH at schema VERSION (1..STORE_SCHEMA_VERSION) exactly
 * as that version of agentd would have, so migrations can be exercised.
 */
int store_create_at_version(const char *path, int version);

/*
 * State tables: state that must survive an agent restart, one table per
 * concern (DESIGN: breakers, ratelimits, backoff, election, members, the last
 * balancer table; `agent` holds the agent's own counters such as its
 * incarnation and boot epoch). Each row is a key and a value (JSON text by
 * convention, owned by the module that writes it) with the time it was
 * written. Writes join the current batch transaction like events do; a caller
 * that needs the row on disk before acting calls store_commit() itself.
 */
enum store_table {
        STORE_TABLE_BREAKERS,
        STORE_TABLE_RATELIMITS,
        STORE_TABLE_BACKOFF,
        STORE_TABLE_MEMBERS,
        STORE_TABLE_ELECTION,
        STORE_TABLE_BALANCER,
        STORE_TABLE_AGENT,
        _STORE_TABLE_MAX,
};

#define STORE_STATE_KEY_MAX 512
#define STORE_STATE_VALUE_MAX (1024 * 1024)

const char *store_table_to_string(enum store_table t);

/* Inserts or replaces KEY. -EINVAL for an empty or oversized key or value. */
int store_state_put(struct store *s, enum store_table t, const char *key, const char *value,
                    uint64_t now_real_us);
/* Removes KEY; removing a missing key is not an error. */
int store_state_delete(struct store *s, enum store_table t, const char *key);
/* Reads KEY into a malloc'd *ret_value; -ENOENT when absent. */
int store_state_get(struct store *s, enum store_table t, const char *key, char **ret_value,
                    uint64_t *ret_updated_us);

typedef int (*store_state_cb)(const char *key, const char *value, uint64_t updated_us, void *userdata);
/* Calls cb for every row, in key order; a nonzero return stops and is returned. */
int store_state_foreach(struct store *s, enum store_table t, store_state_cb cb, void *userdata);

#endif
