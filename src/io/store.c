/*
 * The state database adapter: the only file that talks to SQLite. It opens
 * and checks <state_dir>/state.db, moves a corrupt file aside, migrates the
 * schema forward one transaction per step, and groups event writes into one
 * transaction per loop iteration. It never logs: failures come back as
 * negative errno plus, where the signature allows, SQLite's own message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/util.h"
#include "io/store.h"

/* How long a statement waits for another connection's lock before -EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* WAL bytes kept on disk after a checkpoint; beyond this the file is truncated. */
#define STORE_JOURNAL_SIZE_LIMIT (16 * 1024 * 1024)
/* Names tried for a corrupt file in the same second before giving up. */
#define STORE_CORRUPT_TRIES 1000
/* Room left after the database path for ".corrupt-<time>.<n>" and "-journal". */
#define STORE_PATH_SLACK 64

/*
 * The schema, one step per version. Step i turns a file at user_version i
 * into one at i + 1; the array index is therefore the version a step starts
 * from, and a step's SQL must never change once released, because files
 * written by that release are migrated through it.
 */
static const char *const migrations[] = {
        /* 0 -> 1: the event log. */
        "CREATE TABLE events ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  ts INTEGER NOT NULL,"
        "  node TEXT NOT NULL,"
        "  kind TEXT NOT NULL,"
        "  subject TEXT NOT NULL DEFAULT '',"
        "  detail TEXT NOT NULL DEFAULT '',"
        "  service TEXT,"
        "  unit TEXT,"
        "  term INTEGER NOT NULL DEFAULT 0"
        ");",
        /* 1 -> 2: indexes for retention by age and queries by kind; file metadata. */
        "CREATE INDEX events_ts ON events (ts);"
        "CREATE INDEX events_kind_id ON events (kind, id);"
        "CREATE TABLE meta ("
        "  key TEXT PRIMARY KEY,"
        "  value TEXT NOT NULL"
        ");"
        "INSERT INTO meta (key, value)"
        "  VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));",
        /*
         * 2 -> 3: state that must survive an agent restart. Every table has the
         * same shape (a key, a JSON value, when it was written) so one code path
         * serves them all, and each stays readable with the sqlite3 shell.
         */
        "CREATE TABLE breakers (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE ratelimits (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE backoff (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE members (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE election (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE balancer (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE agent (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);",
};

_Static_assert(ELEMENTSOF(migrations) == STORE_SCHEMA_VERSION,
               "one migration step per schema version");

enum stmt_id {
        /* Read statements: prepared for read-only connections too. */
        STMT_QUERY_ALL,
        STMT_QUERY_KIND,
        STMT_COUNT,
        _STMT_READ_MAX,
        /* Write statements: prepared only for the writer. */
        STMT_BEGIN = _STMT_READ_MAX,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_INSERT,
        STMT_PRUNE_AGE,
        STMT_ID_SPAN,
        STMT_PRUNE_OLDEST,
        _STMT_MAX,
};

/*
 * The queries select the newest `limit` matches in the inner query (walking
 * ids downwards, or the kind index downwards) and hand them out oldest first
 * from the outer one. LIMIT -1 means no limit. The kind filter has its own
 * statement so that it can use the (kind, id) index.
 */
#define QUERY_COLUMNS "id, ts, node, kind, subject, detail, service, unit, term"
static const char *const stmt_sql[_STMT_MAX] = {
        [STMT_QUERY_ALL] =
                "SELECT " QUERY_COLUMNS " FROM ("
                "  SELECT " QUERY_COLUMNS " FROM events"
                "  WHERE id > ?1 AND ts >= ?2 ORDER BY id DESC LIMIT ?3"
                ") ORDER BY id ASC",
        [STMT_QUERY_KIND] =
                "SELECT " QUERY_COLUMNS " FROM ("
                "  SELECT " QUERY_COLUMNS " FROM events"
                "  WHERE kind = ?4 AND id > ?1 AND ts >= ?2 ORDER BY id DESC LIMIT ?3"
                ") ORDER BY id ASC",
        [STMT_COUNT] = "SELECT count(*) FROM events",
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
        [STMT_INSERT] =
                "INSERT INTO events (ts, node, kind, subject, detail, service, unit, term)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [STMT_PRUNE_AGE] = "DELETE FROM events WHERE id IN ("
                           "  SELECT id FROM events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        /* Two subqueries: SQLite answers each of min() and max() from the b-tree's edge. */
        [STMT_ID_SPAN] = "SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)",
        /* Deletes the ?1 + 1 oldest events: walks only those, not the rows kept. */
        [STMT_PRUNE_OLDEST] =
                "DELETE FROM events WHERE id <= ("
                "  SELECT id FROM events ORDER BY id ASC LIMIT 1 OFFSET ?1)",
};

enum state_op { STATE_PUT, STATE_GET, STATE_DELETE, STATE_LIST, _STATE_OP_MAX };

struct store {
        sqlite3 *db;
        char *path;
        bool readonly;
        sqlite3_stmt *stmt[_STMT_MAX];
        /* State-table statements, prepared on first use. */
        sqlite3_stmt *state_stmt[_STORE_TABLE_MAX][_STATE_OP_MAX];
};

/*
 * Maps an SQLite result code to a negative errno. The OS error behind an I/O
 * or open failure is consulted where it tells the caller something a bare
 * -EIO would not (a full disk, a missing file, a permission problem).
 */
static int errno_from_sqlite(sqlite3 *db, int rc) {
        int sys = db ? sqlite3_system_errno(db) : 0;

        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                if (sys == ENOENT || sys == ENOTDIR)
                        return -ENOENT;
                if (sys == EISDIR)
                        return -EISDIR;
                return -EACCES;
        case SQLITE_IOERR:
                if (rc == SQLITE_IOERR_NOMEM)
                        return -ENOMEM;
                if (sys == ENOSPC || sys == EDQUOT)
                        return -ENOSPC;
                return -EIO;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_NOLFS:
                return -EFBIG;
        case SQLITE_INTERRUPT:
                return -EINTR;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
        case SQLITE_MISUSE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/*
 * Replaces the pending message in *err. Internal code keeps one message per
 * public call and hands it over (or frees it) at the end, so a message is
 * never leaked or overwritten unseen.
 */
_printf_(2, 3)
static void set_error(char **err, const char *fmt, ...) {
        va_list ap;
        char *m;

        if (!err)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        free(*err);
        *err = m;
}

static void hand_over_error(char **err, char **ret_error) {
        if (ret_error)
                *ret_error = *err;
        else
                free(*err);
        *err = NULL;
}

/* Runs SQL that returns no rows of interest, reporting failure as "PATH: what: message". */
static int exec_sql(sqlite3 *db, const char *sql, const char *path, const char *what, char **err) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

        if (rc != SQLITE_OK) {
                set_error(err, "%s: %s: %s", path, what, sqlite3_errmsg(db));
                return errno_from_sqlite(db, rc);
        }
        return 0;
}

/*
 * Runs a single-value query such as "PRAGMA user_version" into *ret. Failure
 * reads "PATH: what: message", or "PATH: message" when what is NULL.
 */
static int query_int(sqlite3 *db, const char *sql, int64_t *ret, const char *path,
                     const char *what, char **err) {
        sqlite3_stmt *st = NULL;
        int rc, r;

        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
                return 0;
        }
        if (rc == SQLITE_DONE) {
                set_error(err, "%s: %s%sno result", path, what ? what : "", what ? ": " : "");
                r = -ENODATA;
        } else {
                set_error(err, "%s: %s%s%s", path, what ? what : "", what ? ": " : "", sqlite3_errmsg(db));
                r = errno_from_sqlite(db, rc);
        }
        sqlite3_finalize(st);
        return r;
}

/* Like query_int, for a text result copied into buf. */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t size, const char *path,
                      const char *what, char **err) {
        sqlite3_stmt *st = NULL;
        int rc, r;

        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);

                snprintf(buf, size, "%s", t ? (const char *) t : "");
                sqlite3_finalize(st);
                return 0;
        }
        if (rc == SQLITE_DONE) {
                set_error(err, "%s: %s%sno result", path, what ? what : "", what ? ": " : "");
                r = -ENODATA;
        } else {
                set_error(err, "%s: %s%s%s", path, what ? what : "", what ? ": " : "", sqlite3_errmsg(db));
                r = errno_from_sqlite(db, rc);
        }
        sqlite3_finalize(st);
        return r;
}

/*
 * By default every connection starts with a bulk allocation for 20 cache
 * pages (about 85 KiB) whether it ever reads that many: the agent's one
 * connection to a small database would keep most of it resident for
 * nothing. Without it, pages are allocated one by one as the cache fills,
 * up to the same cache_size. Only possible before SQLite initialises;
 * afterwards (someone else in the process opened a database first) the call
 * fails harmlessly and the default stays.
 */
static void configure_sqlite(void) {
        static bool done = false;

        if (done)
                return;
        done = true;
        (void) sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

static int open_db(const char *name, int flags, const char *path, sqlite3 **ret, char **err) {
        sqlite3 *db = NULL;
        int rc;

        configure_sqlite();
        rc = sqlite3_open_v2(name, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                int r = errno_from_sqlite(db, rc);
                int sys = db ? sqlite3_system_errno(db) : 0;

                if (sys > 0)
                        set_error(err, "%s: %s (%s)", path,
                                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), strerror(sys));
                else
                        set_error(err, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                sqlite3_close_v2(db);
                return r;
        }
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
        *ret = db;
        return 0;
}

/*
 * Creates the state directory itself, never its parents: a missing parent
 * usually means a typo in node.state_dir, which should be an error rather
 * than a new directory tree somewhere unexpected.
 */
static int ensure_dir(const char *dir, char **err) {
        struct stat st;

        if (mkdir(dir, 0750) == 0)
                return 0;
        if (errno != EEXIST) {
                int r = -errno;

                set_error(err, "cannot create state directory %s: %s", dir, strerror(-r));
                return r;
        }
        if (stat(dir, &st) < 0) {
                int r = -errno;

                set_error(err, "%s: %s", dir, strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                set_error(err, "%s: not a directory", dir);
                return -ENOTDIR;
        }
        return 0;
}

/*
 * Creates the file with mode 0640 before SQLite sees it (SQLite would use
 * 0644, and gives its -wal and -shm files the main file's mode). Opening it
 * for writing here also catches a file we may not write, which SQLite would
 * otherwise open read-only without saying so.
 */
static int precreate(const char *path, char **err) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

        if (fd < 0) {
                int r = -errno;

                set_error(err, "%s: %s", path, strerror(-r));
                return r;
        }
        close(fd);
        return 0;
}

/*
 * Runs quick_check. Returns 0 when the file is sound, 1 when it is corrupt
 * (with the reason in `reason`), or a negative errno when the check itself
 * could not run: a locked or unreadable file is not a corrupt one and must
 * not be moved aside.
 */
static int run_quick_check(sqlite3 *db, const char *path, char *reason, size_t size, char **err) {
        sqlite3_stmt *st = NULL;
        int rc, r;

        rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *t = (const char *) sqlite3_column_text(st, 0);

                if (t && strcmp(t, "ok") == 0) {
                        sqlite3_finalize(st);
                        return 0;
                }
                snprintf(reason, size, "quick_check: %s", t ? t : "no result");
                sqlite3_finalize(st);
                return 1;
        }
        if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
                snprintf(reason, size, "%s", sqlite3_errmsg(db));
                sqlite3_finalize(st);
                return 1;
        }
        if (rc == SQLITE_DONE) {
                set_error(err, "%s: quick_check returned nothing", path);
                r = -EIO;
        } else {
                set_error(err, "%s: quick_check: %s", path, sqlite3_errmsg(db));
                r = errno_from_sqlite(db, rc);
        }
        sqlite3_finalize(st);
        return r;
}

/*
 * The check reads every page of the file once. With the normal cache
 * (cache_size, 2 MiB by default) it would leave the cache full of pages the
 * agent, which mostly appends, does not read again, and the heap grown to
 * match for good: a database of a few MiB cost the agent over 1 MiB of RSS.
 * A small cache (256 KiB) for the check, the previous size back afterwards (both best
 * effort: a file too damaged to answer the pragma is the check's to report).
 */
static int check_integrity(sqlite3 *db, const char *path, char *reason, size_t size, char **err) {
        char sql[64];
        int64_t cache = 0;
        bool restore;
        int r;

        restore = query_int(db, "PRAGMA cache_size", &cache, path, NULL, NULL) == 0 &&
                  sqlite3_exec(db, "PRAGMA cache_size = -256", NULL, NULL, NULL) == SQLITE_OK;
        r = run_quick_check(db, path, reason, size, err);
        if (restore) {
                snprintf(sql, sizeof(sql), "PRAGMA cache_size = %lld", (long long) cache);
                (void) sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        return r;
}

/* rename() that never replaces an existing target. */
static int rename_noreplace(const char *from, const char *to) {
        struct stat st;

        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        /*
         * The filesystem cannot do it atomically. The state directory belongs
         * to this agent alone, so checking first is good enough there.
         */
        if (lstat(to, &st) == 0)
                return -EEXIST;
        if (errno != ENOENT)
                return -errno;
        if (rename(from, to) < 0)
                return -errno;
        return 0;
}

/*
 * Moves a corrupt database aside as PATH.corrupt-<unix time> (".N" appended
 * when that name is taken), with its -wal, -shm and -journal files renamed
 * to match, so that the set can still be examined with sqlite3 later. A
 * sidecar that cannot be moved is deleted: left behind, an old WAL would be
 * replayed into the fresh database.
 */
static int move_aside(const char *path, char *target, size_t size, char **err) {
        static const char *const sidecars[] = { "-wal", "-shm", "-journal" };
        long long now = (long long) time(NULL);
        int r = -EEXIST;

        for (unsigned i = 0; i < STORE_CORRUPT_TRIES; i++) {
                int n;

                if (i == 0)
                        n = snprintf(target, size, "%s.corrupt-%lld", path, now);
                else
                        n = snprintf(target, size, "%s.corrupt-%lld.%u", path, now, i);
                if (n < 0 || (size_t) n >= size) {
                        set_error(err, "%s: name for the corrupt copy is too long", path);
                        return -ENAMETOOLONG;
                }
                r = rename_noreplace(path, target);
                if (r != -EEXIST)
                        break;
        }
        if (r < 0) {
                set_error(err, "%s: cannot move corrupt database aside: %s", path, strerror(-r));
                return r;
        }

        for (size_t i = 0; i < ELEMENTSOF(sidecars); i++) {
                char from[PATH_MAX + 16], to[PATH_MAX + 16];

                snprintf(from, sizeof(from), "%s%s", path, sidecars[i]);
                snprintf(to, sizeof(to), "%s%s", target, sidecars[i]);
                if (rename(from, to) == 0 || errno == ENOENT)
                        continue;
                if (unlink(from) == 0 || errno == ENOENT)
                        continue;
                r = -errno;
                set_error(err, "%s: cannot remove stale %s: %s", path, from, strerror(-r));
                return r;
        }
        return 0;
}

static int refuse_newer(const char *path, int64_t version, char **err) {
        set_error(err, "%s has schema version %lld, this agentd knows up to %d; refusing to downgrade",
                  path, (long long) version, STORE_SCHEMA_VERSION);
        return -EPROTO;
}

/*
 * Brings the file from its user_version up to `target`, one transaction per
 * step: a crash or a failed step leaves the file at the last complete
 * version, and the next start continues from there. The version is read
 * inside the write transaction, so two processes cannot run a step twice.
 */
static int migrate(sqlite3 *db, int target, const char *path, int *ret_from, char **err) {
        int from = -1;

        for (;;) {
                char bump[64];
                int64_t v;
                int r;

                r = exec_sql(db, "BEGIN IMMEDIATE", path, "migration", err);
                if (r < 0)
                        return r;
                r = query_int(db, "PRAGMA user_version", &v, path, "migration", err);
                if (r < 0)
                        goto rollback;
                if (v < 0 || v > STORE_SCHEMA_VERSION) {
                        r = refuse_newer(path, v, err);
                        goto rollback;
                }
                if (from < 0)
                        from = (int) v;
                if (v >= target) {
                        r = exec_sql(db, "COMMIT", path, "migration", err);
                        if (r < 0)
                                goto rollback;
                        break;
                }
                if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
                        set_error(err, "%s: migrating to schema version %lld: %s",
                                  path, (long long) v + 1, sqlite3_errmsg(db));
                        r = errno_from_sqlite(db, sqlite3_errcode(db));
                        goto rollback;
                }
                snprintf(bump, sizeof(bump), "PRAGMA user_version = %lld", (long long) v + 1);
                r = exec_sql(db, bump, path, "migration", err);
                if (r < 0)
                        goto rollback;
                r = exec_sql(db, "COMMIT", path, "migration", err);
                if (r < 0)
                        goto rollback;
                continue;
        rollback:
                if (!sqlite3_get_autocommit(db))
                        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                return r;
        }
        if (ret_from)
                *ret_from = from;
        return 0;
}

/* Connection settings for the writer; WAL is refused loudly rather than silently missing. */
static int configure(sqlite3 *db, enum store_sync sync, const char *path, char **err) {
        char mode[32], sql[64];
        int r;

        r = query_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), path,
                       "setting WAL journal mode", err);
        if (r < 0)
                return r;
        if (strcasecmp(mode, "wal") != 0) {
                set_error(err, "%s: cannot use WAL journal mode (SQLite kept \"%s\")", path, mode);
                return -EOPNOTSUPP;
        }
        r = exec_sql(db, sync == STORE_SYNC_FULL ? "PRAGMA synchronous = FULL"
                                                 : "PRAGMA synchronous = NORMAL",
                     path, "setting synchronous", err);
        if (r < 0)
                return r;
        r = exec_sql(db, "PRAGMA foreign_keys = ON", path, "enabling foreign keys", err);
        if (r < 0)
                return r;
        snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d", STORE_JOURNAL_SIZE_LIMIT);
        return exec_sql(db, sql, path, "setting journal_size_limit", err);
}

static int prepare_statements(struct store *s, char **err) {
        enum stmt_id last = s->readonly ? _STMT_READ_MAX : _STMT_MAX;

        for (int i = 0; i < (int) last; i++) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->stmt[i], NULL);
                if (rc != SQLITE_OK) {
                        set_error(err, "%s: preparing statement: %s", s->path, sqlite3_errmsg(s->db));
                        return errno_from_sqlite(s->db, rc);
                }
        }
        return 0;
}

static struct store *store_new(const char *path, bool readonly) {
        struct store *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->path = strdup(path);
        if (!s->path) {
                free(s);
                return NULL;
        }
        s->readonly = readonly;
        return s;
}

int store_open(const char *dir, enum store_sync sync, struct store **ret,
               struct store_open_info *ret_info, char **ret_error) {
        struct store_open_info info = { 0 };
        struct store *s = NULL;
        char *err = NULL;
        char path[PATH_MAX];
        int64_t version;
        int n, r;

        if (!dir || !*dir || !ret || (sync != STORE_SYNC_NORMAL && sync != STORE_SYNC_FULL)) {
                set_error(&err, "store_open: invalid arguments");
                r = -EINVAL;
                goto fail;
        }
        n = snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME);
        if (n < 0 || (size_t) n + STORE_PATH_SLACK >= sizeof(info.corrupt_path)) {
                set_error(&err, "%s: state directory path is too long", dir);
                r = -ENAMETOOLONG;
                goto fail;
        }
        r = ensure_dir(dir, &err);
        if (r < 0)
                goto fail;
        s = store_new(path, false);
        if (!s) {
                set_error(&err, "%s: out of memory", path);
                r = -ENOMEM;
                goto fail;
        }

        r = precreate(path, &err);
        if (r < 0)
                goto fail;
        r = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, path, &s->db, &err);
        if (r < 0)
                goto fail;
        /*
         * Until the file has passed its check, closing must not checkpoint:
         * that would write a corrupt file's WAL into it and destroy the
         * evidence we are about to set aside.
         */
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        r = check_integrity(s->db, path, info.corrupt_reason, sizeof(info.corrupt_reason), &err);
        if (r < 0)
                goto fail;
        if (r == 1) {
                sqlite3_close_v2(s->db);
                s->db = NULL;
                r = move_aside(path, info.corrupt_path, sizeof(info.corrupt_path), &err);
                if (r < 0)
                        goto fail;
                info.recovered = true;
                r = precreate(path, &err);
                if (r < 0)
                        goto fail;
                r = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, path, &s->db, &err);
                if (r < 0)
                        goto fail;
                r = check_integrity(s->db, path, info.corrupt_reason, sizeof(info.corrupt_reason), &err);
                if (r < 0)
                        goto fail;
                if (r == 1) {
                        set_error(&err, "%s: fresh database fails its check: %s", path, info.corrupt_reason);
                        r = -EIO;
                        goto fail;
                }
        }

        /* Refuse a newer file before changing anything in it, even its journal mode. */
        r = query_int(s->db, "PRAGMA user_version", &version, path, "reading schema version", &err);
        if (r < 0)
                goto fail;
        if (version < 0 || version > STORE_SCHEMA_VERSION) {
                r = refuse_newer(path, version, &err);
                goto fail;
        }
        r = configure(s->db, sync, path, &err);
        if (r < 0)
                goto fail;
        r = migrate(s->db, STORE_SCHEMA_VERSION, path, &info.from_version, &err);
        if (r < 0)
                goto fail;
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
        r = prepare_statements(s, &err);
        if (r < 0)
                goto fail;
        /*
         * The cache now holds what the integrity check and the migrations
         * read last, pages the running agent, which mostly appends, will not
         * read again soon: hand them back rather than keep them resident for
         * good (about 50-90 KiB); the cache refills with what is used.
         */
        (void) sqlite3_db_release_memory(s->db);

        info.to_version = STORE_SCHEMA_VERSION;
        free(err);
        *ret = s;
        if (ret_info)
                *ret_info = info;
        return 0;

fail:
        store_free(s);
        hand_over_error(&err, ret_error);
        return r;
}

/*
 * Builds "file:PATH?immutable=1" with the path percent-encoded, for the
 * read-only fallback below. An absolute path gets an empty authority
 * ("file:///..."), so that a path starting with "//" is not read as a host.
 */
static char *immutable_uri(const char *path) {
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(path);
        char *uri = malloc(len * 3 + sizeof("file://?immutable=1"));
        char *p;

        if (!uri)
                return NULL;
        p = stpcpy(uri, path[0] == '/' ? "file://" : "file:");
        for (const unsigned char *c = (const unsigned char *) path; *c; c++) {
                if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                    strchr("/._-~", *c))
                        *p++ = (char) *c;
                else {
                        *p++ = '%';
                        *p++ = hex[*c >> 4];
                        *p++ = hex[*c & 0xf];
                }
        }
        strcpy(p, "?immutable=1");
        return uri;
}

/*
 * Opens the file read-only and reads its user_version. A WAL database can
 * only be read when its -shm file exists or can be created; a caller without
 * write access to the directory of a cleanly closed database (no -wal file,
 * so nothing to miss) is served by opening it as immutable instead.
 */
static int open_readonly_db(struct store *s, int64_t *ret_version, char **err) {
        char wal[PATH_MAX + 8];
        char *uri;
        int r;

        r = open_db(s->path, SQLITE_OPEN_READONLY, s->path, &s->db, err);
        if (r < 0)
                return r;
        r = query_int(s->db, "PRAGMA user_version", ret_version, s->path, NULL, err);
        if (r != -EACCES && r != -ENOENT)
                return r;

        snprintf(wal, sizeof(wal), "%s-wal", s->path);
        if (access(wal, F_OK) == 0 || errno != ENOENT)
                return r;
        uri = immutable_uri(s->path);
        if (!uri) {
                set_error(err, "%s: out of memory", s->path);
                return -ENOMEM;
        }
        sqlite3_close_v2(s->db);
        s->db = NULL;
        /* The first attempt's message is moot now; the retry reports its own. */
        free(*err);
        *err = NULL;
        r = open_db(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, s->path, &s->db, err);
        free(uri);
        if (r < 0)
                return r;
        return query_int(s->db, "PRAGMA user_version", ret_version, s->path, NULL, err);
}

int store_open_readonly(const char *path, struct store **ret, char **ret_error) {
        struct store *s = NULL;
        char *err = NULL;
        struct stat st;
        int64_t version;
        int r;

        if (!path || !*path || !ret) {
                set_error(&err, "store_open_readonly: invalid arguments");
                r = -EINVAL;
                goto fail;
        }
        if (strlen(path) >= PATH_MAX) {
                set_error(&err, "path too long: %s", path);
                r = -ENAMETOOLONG;
                goto fail;
        }
        if (stat(path, &st) < 0) {
                r = -errno;
                if (r == -ENOENT)
                        set_error(&err, "no such file: %s", path);
                else
                        set_error(&err, "%s: %s", path, strerror(-r));
                goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
                set_error(&err, "%s: not a regular file", path);
                r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                goto fail;
        }
        s = store_new(path, true);
        if (!s) {
                set_error(&err, "%s: out of memory", path);
                r = -ENOMEM;
                goto fail;
        }
        r = open_readonly_db(s, &version, &err);
        if (r < 0)
                goto fail;
        if (version == 0) {
                set_error(&err, "%s: not an agentd state database (schema version 0)", path);
                r = -EINVAL;
                goto fail;
        }
        if (version < 0 || version > STORE_SCHEMA_VERSION) {
                set_error(&err, "%s has schema version %lld, this agentd knows up to %d",
                          path, (long long) version, STORE_SCHEMA_VERSION);
                r = -EPROTO;
                goto fail;
        }
        r = prepare_statements(s, &err);
        if (r < 0)
                goto fail;
        free(err);
        *ret = s;
        return 0;

fail:
        store_free(s);
        hand_over_error(&err, ret_error);
        return r;
}

/* Steps a statement that returns no rows and resets it. */
static int run_stmt(struct store *s, enum stmt_id id) {
        sqlite3_stmt *st = s->stmt[id];
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(s->db, rc);
        return 0;
}

/*
 * Every write joins the batch of the current loop iteration: the first one
 * opens the transaction that store_commit() ends.
 */
static int begin_batch(struct store *s) {
        if (!sqlite3_get_autocommit(s->db))
                return 0;
        return run_stmt(s, STMT_BEGIN);
}

/* Undoes an open transaction after a failure; the failure is what gets reported. */
static void rollback(struct store *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) run_stmt(s, STMT_ROLLBACK);
}

void store_free(struct store *s) {
        if (!s)
                return;
        if (s->db && !s->readonly && s->stmt[STMT_COMMIT])
                (void) store_commit(s);
        for (size_t i = 0; i < ELEMENTSOF(s->stmt); i++)
                sqlite3_finalize(s->stmt[i]);
        for (size_t t = 0; t < _STORE_TABLE_MAX; t++)
                for (size_t o = 0; o < _STATE_OP_MAX; o++)
                        sqlite3_finalize(s->state_stmt[t][o]);
        /* With every statement finalized, this closes (and rolls back) at once. */
        sqlite3_close_v2(s->db);
        free(s->path);
        free(s);
}

/*
 * Binds a text field, cut to STORE_FIELD_MAX bytes at a UTF-8 character
 * boundary: a caller passing along outside text (a unit's status line, a
 * peer's message) must not be able to grow rows without bound, and keeping
 * a shortened event beats losing it.
 */
static int bind_text(sqlite3_stmt *st, int idx, const char *t) {
        size_t n;

        if (!t)
                return sqlite3_bind_null(st, idx);
        n = strnlen(t, STORE_FIELD_MAX + 1);
        if (n > STORE_FIELD_MAX) {
                n = STORE_FIELD_MAX;
                while (n > 0 && ((unsigned char) t[n] & 0xc0) == 0x80)
                        n--;
        }
        return sqlite3_bind_text(st, idx, t, (int) n, SQLITE_STATIC);
}

int store_event_add(struct store *s, const struct event *ev, int64_t *ret_id) {
        sqlite3_stmt *st;
        int rc, r;

        if (!s || !ev || !ev->node || (int) ev->kind < 0 || ev->kind >= _EVENT_KIND_MAX)
                return -EINVAL;
        if (s->readonly)
                return -EROFS;
        if (ev->ts_us > INT64_MAX || ev->term > INT64_MAX)
                return -ERANGE;

        r = begin_batch(s);
        if (r < 0)
                return r;

        st = s->stmt[STMT_INSERT];
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64) ev->ts_us);
        if (rc == SQLITE_OK)
                rc = bind_text(st, 2, ev->node);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 3, event_kind_to_string(ev->kind), -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = bind_text(st, 4, ev->subject ? ev->subject : "");
        if (rc == SQLITE_OK)
                rc = bind_text(st, 5, ev->detail ? ev->detail : "");
        if (rc == SQLITE_OK)
                rc = bind_text(st, 6, ev->service);
        if (rc == SQLITE_OK)
                rc = bind_text(st, 7, ev->unit);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 8, (sqlite3_int64) ev->term);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        /* The bindings point into the caller's strings: drop them before returning. */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(s->db, rc);
        if (ret_id)
                *ret_id = (int64_t) sqlite3_last_insert_rowid(s->db);
        return 0;
}

/*
 * A busy COMMIT leaves the transaction open and is retried at the next
 * iteration; any other failure rolls back, so that one bad batch (a full
 * disk) does not grow into an ever larger transaction. The caller logs.
 */
int store_commit(struct store *s) {
        int rc;

        if (!s)
                return -EINVAL;
        if (s->readonly || sqlite3_get_autocommit(s->db))
                return 0;
        rc = sqlite3_step(s->stmt[STMT_COMMIT]);
        sqlite3_reset(s->stmt[STMT_COMMIT]);
        if (rc == SQLITE_DONE)
                return 0;
        if ((rc & 0xff) != SQLITE_BUSY) {
                int r = errno_from_sqlite(s->db, rc);

                rollback(s);
                return r;
        }
        return errno_from_sqlite(s->db, rc);
}

bool store_in_transaction(const struct store *s) {
        return s && s->db && !sqlite3_get_autocommit(s->db);
}

static sqlite3_int64 clamp_i64(uint64_t v) {
        return v > INT64_MAX ? INT64_MAX : (sqlite3_int64) v;
}

/* Binds one integer and steps a DELETE; adds the rows removed to *deleted. */
static int run_delete(struct store *s, enum stmt_id id, sqlite3_int64 arg, sqlite3_int64 limit,
                      uint64_t *deleted) {
        sqlite3_stmt *st = s->stmt[id];
        int rc;

        rc = sqlite3_bind_int64(st, 1, arg);
        if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2)
                rc = sqlite3_bind_int64(st, 2, limit);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(s->db, rc);
        *deleted += (uint64_t) sqlite3_changes(s->db);
        return 0;
}

/* Steps a statement that yields one row of two integers (NULL reads as 0). */
static int query_pair(struct store *s, enum stmt_id id, int64_t *ret_a, int64_t *ret_b) {
        sqlite3_stmt *st = s->stmt[id];
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW) {
                *ret_a = sqlite3_column_int64(st, 0);
                *ret_b = sqlite3_column_count(st) > 1 ? sqlite3_column_int64(st, 1) : 0;
                sqlite3_reset(st);
                return 0;
        }
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENODATA : errno_from_sqlite(s->db, rc);
}

/*
 * Keeps the newest max_rows events. Runs at every prune, so the usual cases
 * must be cheap on a large table: when the id span already fits the cap
 * nothing is counted at all, and otherwise only the excess oldest rows are
 * walked (count(*) reads the smallest index, not the rows).
 */
static int prune_rows(struct store *s, uint64_t max_rows, uint64_t budget, uint64_t *deleted) {
        int64_t lo, hi, n, unused;
        int r;

        r = query_pair(s, STMT_ID_SPAN, &lo, &hi);
        if (r < 0)
                return r;
        /* hi >= lo always; unsigned arithmetic keeps even odd negative ids defined. */
        if ((uint64_t) hi - (uint64_t) lo < max_rows)
                return 0;
        r = query_pair(s, STMT_COUNT, &n, &unused);
        if (r < 0)
                return r;
        if (n <= 0 || (uint64_t) n <= max_rows || budget == 0)
                return 0;
        uint64_t excess = (uint64_t) n - max_rows;
        if (excess > budget)
                excess = budget;
        return run_delete(s, STMT_PRUNE_OLDEST, (sqlite3_int64) (excess - 1), 0, deleted);
}

int store_prune(struct store *s, uint64_t now_real_us, uint64_t max_age_us,
                uint64_t max_rows, uint64_t *ret_deleted) {
        uint64_t deleted = 0;
        int r;

        if (!s)
                return -EINVAL;
        if (s->readonly)
                return -EROFS;
        r = store_commit(s);
        if (r < 0)
                return r;
        if (max_age_us == 0 && max_rows == 0) {
                if (ret_deleted)
                        *ret_deleted = 0;
                return 0;
        }

        r = run_stmt(s, STMT_BEGIN);
        if (r < 0)
                return r;
        if (max_age_us > 0 && now_real_us > max_age_us) {
                r = run_delete(s, STMT_PRUNE_AGE, clamp_i64(now_real_us - max_age_us), STORE_PRUNE_BATCH,
                               &deleted);
                if (r < 0)
                        goto fail;
        }
        if (max_rows > 0) {
                r = prune_rows(s, max_rows, STORE_PRUNE_BATCH - deleted, &deleted);
                if (r < 0)
                        goto fail;
        }
        r = run_stmt(s, STMT_COMMIT);
        if (r < 0)
                goto fail;
        if (ret_deleted)
                *ret_deleted = deleted;
        return 0;

fail:
        rollback(s);
        return r;
}

static const char *column_text(sqlite3_stmt *st, int col) {
        return (const char *) sqlite3_column_text(st, col);
}

int store_events_query(struct store *s, const struct store_event_filter *f,
                       store_event_cb cb, void *userdata) {
        static const struct store_event_filter all = { 0 };
        sqlite3_stmt *st;
        int rc, r = 0;

        if (!s || !cb)
                return -EINVAL;
        if (!f)
                f = &all;
        st = s->stmt[f->kind ? STMT_QUERY_KIND : STMT_QUERY_ALL];
        /* A callback that queries again would clobber the running statement. */
        if (sqlite3_stmt_busy(st))
                return -EBUSY;

        rc = sqlite3_bind_int64(st, 1, f->after_id);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, clamp_i64(f->since_us));
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 3, f->limit > 0 ? (sqlite3_int64) f->limit : -1);
        if (rc == SQLITE_OK && f->kind)
                rc = sqlite3_bind_text(st, 4, f->kind, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                goto done;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *node = column_text(st, 2), *kind = column_text(st, 3);
                const char *subject = column_text(st, 4), *detail = column_text(st, 5);
                sqlite3_int64 ts = sqlite3_column_int64(st, 1), term = sqlite3_column_int64(st, 8);
                struct store_event e = {
                        .id = sqlite3_column_int64(st, 0),
                        .ts_us = ts > 0 ? (uint64_t) ts : 0,
                        .node = node ? node : "",
                        .kind = kind ? kind : "",
                        .subject = subject ? subject : "",
                        .detail = detail ? detail : "",
                        .service = column_text(st, 6),
                        .unit = column_text(st, 7),
                        .term = term > 0 ? (uint64_t) term : 0,
                };

                r = cb(&e, userdata);
                if (r != 0)
                        break;
        }
done:
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (r != 0)
                return r;
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(s->db, rc);
        return 0;
}

int store_events_count(struct store *s, uint64_t *ret_count) {
        sqlite3_stmt *st;
        int rc;

        if (!s || !ret_count)
                return -EINVAL;
        st = s->stmt[STMT_COUNT];
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                sqlite3_int64 n = sqlite3_column_int64(st, 0);

                sqlite3_reset(st);
                *ret_count = n > 0 ? (uint64_t) n : 0;
                return 0;
        }
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENODATA : errno_from_sqlite(s->db, rc);
}

const char *store_path(const struct store *s) {
        return s ? s->path : NULL;
}

int store_pragma_int(struct store *s, const char *pragma, int64_t *ret) {
        char sql[64];
        size_t n;
        int r;

        if (!s || !pragma || !ret)
                return -EINVAL;
        /* The name is pasted into SQL: only a bare identifier is accepted. */
        n = strspn(pragma, "abcdefghijklmnopqrstuvwxyz_");
        if (n == 0 || n > 32 || pragma[n] != '\0')
                return -EINVAL;
        snprintf(sql, sizeof(sql), "PRAGMA %s", pragma);
        r = query_int(s->db, sql, ret, s->path, NULL, NULL);
        return r;
}

int store_create_at_version(const char *path, int version) {
        sqlite3 *db = NULL;
        int64_t current;
        int r;

        if (!path || !*path || version < 1 || version > STORE_SCHEMA_VERSION)
                return -EINVAL;
        r = precreate(path, NULL);
        if (r < 0)
                return r;
        r = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, path, &db, NULL);
        if (r < 0)
                return r;
        r = query_int(db, "PRAGMA user_version", &current, path, NULL, NULL);
        if (r == 0 && current != 0)
                r = -EEXIST;
        if (r == 0)
                r = configure(db, STORE_SYNC_NORMAL, path, NULL);
        if (r == 0)
                r = migrate(db, version, path, NULL, NULL);
        sqlite3_close_v2(db);
        return r;
}

/* ---- state tables ------------------------------------------------------ */

static const char *const table_names[_STORE_TABLE_MAX] = {
        [STORE_TABLE_BREAKERS] = "breakers",
        [STORE_TABLE_RATELIMITS] = "ratelimits",
        [STORE_TABLE_BACKOFF] = "backoff",
        [STORE_TABLE_MEMBERS] = "members",
        [STORE_TABLE_ELECTION] = "election",
        [STORE_TABLE_BALANCER] = "balancer",
        [STORE_TABLE_AGENT] = "agent",
};

const char *store_table_to_string(enum store_table t) {
        if ((int) t < 0 || t >= _STORE_TABLE_MAX)
                return "invalid";
        return table_names[t];
}

static int state_stmt(struct store *s, enum store_table t, enum state_op op, sqlite3_stmt **ret) {
        static const char *const fmt[_STATE_OP_MAX] = {
                [STATE_PUT] = "INSERT INTO %s (key, value, updated_at) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                              " updated_at = excluded.updated_at",
                [STATE_GET] = "SELECT value, updated_at FROM %s WHERE key = ?1",
                [STATE_DELETE] = "DELETE FROM %s WHERE key = ?1",
                [STATE_LIST] = "SELECT key, value, updated_at FROM %s ORDER BY key",
        };
        char sql[256];
        int rc;

        if ((int) t < 0 || t >= _STORE_TABLE_MAX)
                return -EINVAL;
        if (!s->state_stmt[t][op]) {
                snprintf(sql, sizeof(sql), fmt[op], table_names[t]);
                rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->state_stmt[t][op], NULL);
                if (rc != SQLITE_OK)
                        return errno_from_sqlite(s->db, rc);
        }
        *ret = s->state_stmt[t][op];
        return 0;
}

static bool state_key_ok(const char *key) {
        return key && *key && strnlen(key, STORE_STATE_KEY_MAX + 1) <= STORE_STATE_KEY_MAX;
}

int store_state_put(struct store *s, enum store_table t, const char *key, const char *value,
                    uint64_t now_real_us) {
        sqlite3_stmt *st;
        int rc, r;

        if (!s || !state_key_ok(key) || !value || strnlen(value, STORE_STATE_VALUE_MAX + 1) > STORE_STATE_VALUE_MAX)
                return -EINVAL;
        if (s->readonly)
                return -EROFS;
        if (now_real_us > INT64_MAX)
                return -ERANGE;
        r = state_stmt(s, t, STATE_PUT, &st);
        if (r < 0)
                return r;
        r = begin_batch(s);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 3, (sqlite3_int64) now_real_us);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(s->db, rc);
}

int store_state_delete(struct store *s, enum store_table t, const char *key) {
        sqlite3_stmt *st;
        int rc, r;

        if (!s || !state_key_ok(key))
                return -EINVAL;
        if (s->readonly)
                return -EROFS;
        r = state_stmt(s, t, STATE_DELETE, &st);
        if (r < 0)
                return r;
        r = begin_batch(s);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(s->db, rc);
}

int store_state_get(struct store *s, enum store_table t, const char *key, char **ret_value,
                    uint64_t *ret_updated_us) {
        sqlite3_stmt *st;
        int rc, r;

        if (!s || !state_key_ok(key) || !ret_value)
                return -EINVAL;
        r = state_stmt(s, t, STATE_GET, &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *v = (const char *) sqlite3_column_text(st, 0);
                sqlite3_int64 u = sqlite3_column_int64(st, 1);
                char *copy = strdup(v ? v : "");

                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                if (!copy)
                        return -ENOMEM;
                *ret_value = copy;
                if (ret_updated_us)
                        *ret_updated_us = u > 0 ? (uint64_t) u : 0;
                return 0;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE ? -ENOENT : errno_from_sqlite(s->db, rc);
}

int store_state_foreach(struct store *s, enum store_table t, store_state_cb cb, void *userdata) {
        sqlite3_stmt *st;
        int rc, r;

        if (!s || !cb)
                return -EINVAL;
        r = state_stmt(s, t, STATE_LIST, &st);
        if (r < 0)
                return r;
        /* A callback that lists the same table again would clobber this statement. */
        if (sqlite3_stmt_busy(st))
                return -EBUSY;
        r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *k = (const char *) sqlite3_column_text(st, 0);
                const char *v = (const char *) sqlite3_column_text(st, 1);
                sqlite3_int64 u = sqlite3_column_int64(st, 2);

                r = cb(k ? k : "", v ? v : "", u > 0 ? (uint64_t) u : 0, userdata);
                if (r != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = errno_from_sqlite(s->db, rc);
        sqlite3_reset(st);
        return r;
}
