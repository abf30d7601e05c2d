/*
 * The state database, on real SQLite files in private temporary directories:
 * creation and connection settings, migrations from every earlier schema
 * version, refusal of newer files, batching, retention, recovery from corrupt
 * files, queries and the read-only opener. A second, raw sqlite3 connection
 * is the independent witness of what actually reached the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/util.h"
#include "core/event.h"
#include "io/store.h"
#include "unit.h"

/* --- helpers ------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) type;
        (void) ftw;
        return remove(path);
}

static void rm_rf(char *dir) {
        if (dir)
                nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

static char *join(const char *a, const char *b) {
        char *r;

        if (asprintf(&r, "%s/%s", a, b) < 0)
                exit(99);
        return r;
}

static struct event mkevent(uint64_t ts, enum event_kind kind, const char *subject) {
        return (struct event) {
                .ts_us = ts,
                .kind = kind,
                .node = "n1",
                .subject = subject,
                .detail = "",
        };
}

static struct store *open_ok(const char *dir, enum store_sync sync, struct store_open_info *info) {
        struct store_open_info local;
        struct store *s = NULL;
        char *err = NULL;
        int r = store_open(dir, sync, &s, info ? info : &local, &err);

        if (r < 0)
                fprintf(stderr, "store_open(%s): %d %s\n", dir, r, err ? err : "(no message)");
        CU_ASSERT_EQUAL_FATAL(r, 0);
        CU_ASSERT_PTR_NULL(err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        return s;
}

/* Adds events with ts = ts0, ts0 + step, ... and checks the ids handed out. */
static void add_events(struct store *s, int n, uint64_t ts0, uint64_t step, int64_t first_id) {
        for (int i = 0; i < n; i++) {
                struct event ev = mkevent(ts0 + (uint64_t) i * step, EVENT_AGENT_STARTED, "x");
                int64_t id = -1;

                CU_ASSERT_EQUAL_FATAL(store_event_add(s, &ev, &id), 0);
                CU_ASSERT_EQUAL(id, first_id + i);
        }
}

static sqlite3 *raw_open(const char *path) {
        sqlite3 *db = NULL;

        CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        int64_t v = INT64_MIN;

        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* Returns the first column of the first row, malloc'd; "" when there is none. */
static char *raw_text(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        char *v;

        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                v = strdup((const char *) sqlite3_column_text(st, 0));
        else
                v = strdup("");
        sqlite3_finalize(st);
        if (!v)
                exit(99);
        return v;
}

/* The whole schema as one string, to compare a migrated file with a fresh one. */
static char *raw_schema(sqlite3 *db) {
        sqlite3_stmt *st = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db,
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
                -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                for (int i = 0; i < 4; i++) {
                        const char *t = (const char *) sqlite3_column_text(st, i);

                        fprintf(f, "%s%c", t ? t : "NULL", i == 3 ? '\n' : '|');
                }
        }
        sqlite3_finalize(st);
        fclose(f);
        return buf;
}

static int64_t raw_count(const char *path) {
        sqlite3 *db = raw_open(path);
        int64_t n = raw_int(db, "SELECT count(*) FROM events");

        sqlite3_close(db);
        return n;
}

static void write_file(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "we");

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL_FATAL(fwrite(data, 1, len, f), len);
        CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
}

/* Reads a whole (small) file; *ret_len gets its size. */
static char *read_file(const char *path, size_t *ret_len) {
        struct stat st;
        char *buf;
        FILE *f = fopen(path, "re");

        if (!f)
                return NULL;
        CU_ASSERT_EQUAL_FATAL(fstat(fileno(f), &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        CU_ASSERT_EQUAL_FATAL(fread(buf, 1, (size_t) st.st_size, f), (size_t) st.st_size);
        fclose(f);
        *ret_len = (size_t) st.st_size;
        return buf;
}

static bool exists(const char *path) {
        struct stat st;

        return lstat(path, &st) == 0;
}

/* Collects the ids a query delivers, in order. */
struct collected {
        int64_t ids[64];
        size_t n;
        int stop_after;        /* return 42 after this many (0: never) */
};

static int collect_cb(const struct store_event *ev, void *userdata) {
        struct collected *c = userdata;

        if (c->n < ELEMENTSOF(c->ids))
                c->ids[c->n] = ev->id;
        c->n++;
        if (c->stop_after > 0 && (int) c->n == c->stop_after)
                return 42;
        return 0;
}

static void assert_ids(struct store *s, const struct store_event_filter *f,
                       const int64_t *want, size_t nwant) {
        struct collected c = { .n = 0 };

        CU_ASSERT_EQUAL_FATAL(store_events_query(s, f, collect_cb, &c), 0);
        CU_ASSERT_EQUAL(c.n, nwant);
        for (size_t i = 0; i < nwant && i < c.n; i++)
                CU_ASSERT_EQUAL(c.ids[i], want[i]);
}

/* --- opening ------------------------------------------------------------- */

static void test_open_fresh(void) {
        char *tmp = unit_tmpdir(), *dir = join(tmp, "state"), *path = join(dir, STORE_DB_NAME);
        struct store_open_info info;
        struct stat st;
        uint64_t count = 99;
        struct store *s;
        sqlite3 *db;
        char *mode, *created;
        mode_t mask = umask(022);

        s = open_ok(dir, STORE_SYNC_NORMAL, &info);
        umask(mask);
        CU_ASSERT_FALSE(info.recovered);
        CU_ASSERT_EQUAL(info.from_version, 0);
        CU_ASSERT_EQUAL(info.to_version, STORE_SCHEMA_VERSION);
        CU_ASSERT_STRING_EQUAL(store_path(s), path);
        CU_ASSERT_FALSE(store_in_transaction(s));
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 0);

        /* Only the last component is created, mode 0750; the file is 0640. */
        CU_ASSERT_EQUAL_FATAL(stat(dir, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0750);
        CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);

        db = raw_open(path);
        mode = raw_text(db, "PRAGMA journal_mode");
        CU_ASSERT_STRING_EQUAL(mode, "wal");
        CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
        CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                    "AND name IN ('events_ts', 'events_kind_id')"), 2);
        created = raw_text(db, "SELECT value FROM meta WHERE key = 'created_at'");
        CU_ASSERT_EQUAL(strlen(created), strlen("2026-11-26T20:55:53.123Z"));
        free(created);
        free(mode);
        sqlite3_close(db);

        store_free(s);
        /* A second open finds the file current and changes nothing. */
        s = open_ok(dir, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_EQUAL(info.from_version, STORE_SCHEMA_VERSION);
        CU_ASSERT_FALSE(info.recovered);
        store_free(s);
        store_free(NULL);
        free(path);
        free(dir);
        rm_rf(tmp);
}

static void test_connection_settings(void) {
        static const struct {
                enum store_sync sync;
                int64_t synchronous;
        } cases[] = {
                { STORE_SYNC_NORMAL, 1 },
                { STORE_SYNC_FULL, 2 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *tmp = unit_tmpdir();
                struct store *s = open_ok(tmp, cases[i].sync, NULL);
                int64_t v = -1;

                CU_ASSERT_EQUAL(store_pragma_int(s, "synchronous", &v), 0);
                CU_ASSERT_EQUAL(v, cases[i].synchronous);
                CU_ASSERT_EQUAL(store_pragma_int(s, "foreign_keys", &v), 0);
                CU_ASSERT_EQUAL(v, 1);
                CU_ASSERT_EQUAL(store_pragma_int(s, "busy_timeout", &v), 0);
                CU_ASSERT_EQUAL(v, 5000);
                CU_ASSERT_EQUAL(store_pragma_int(s, "user_version", &v), 0);
                CU_ASSERT_EQUAL(v, STORE_SCHEMA_VERSION);
                /* The hook pastes the name into SQL: anything but a bare name is refused. */
                CU_ASSERT_EQUAL(store_pragma_int(s, "user_version; DROP TABLE events", &v), -EINVAL);
                CU_ASSERT_EQUAL(store_pragma_int(s, "", &v), -EINVAL);
                CU_ASSERT_EQUAL(store_pragma_int(s, "Synchronous", &v), -EINVAL);
                store_free(s);
                rm_rf(tmp);
        }
}

static void test_open_bad_arguments(void) {
        char *tmp = unit_tmpdir(), *file = join(tmp, "file"), *missing = join(tmp, "a/b");
        struct store *s = NULL;
        char *err = NULL;
        char *want;

        CU_ASSERT_EQUAL(store_open(NULL, STORE_SYNC_NORMAL, &s, NULL, &err), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(err);
        free(err);
        err = NULL;
        CU_ASSERT_EQUAL(store_open(tmp, (enum store_sync) 7, &s, NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL(store_open("", STORE_SYNC_NORMAL, &s, NULL, NULL), -EINVAL);

        /* A missing parent is not created. */
        CU_ASSERT_EQUAL(store_open(missing, STORE_SYNC_NORMAL, &s, NULL, &err), -ENOENT);
        CU_ASSERT_FATAL(asprintf(&want, "cannot create state directory %s: No such file or directory", missing) > 0);
        CU_ASSERT_STRING_EQUAL(err, want);
        free(want);
        free(err);
        err = NULL;

        write_file(file, "x", 1);
        CU_ASSERT_EQUAL(store_open(file, STORE_SYNC_NORMAL, &s, NULL, &err), -ENOTDIR);
        CU_ASSERT_FATAL(asprintf(&want, "%s: not a directory", file) > 0);
        CU_ASSERT_STRING_EQUAL(err, want);
        free(want);
        free(err);
        CU_ASSERT_PTR_NULL(s);

        free(file);
        free(missing);
        rm_rf(tmp);
}

/* --- migrations ---------------------------------------------------------- */

static void test_migrate_empty_file(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        struct store_open_info info;
        struct store *s;
        sqlite3 *db;

        write_file(path, "", 0);
        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_FALSE(info.recovered);
        CU_ASSERT_EQUAL(info.from_version, 0);
        CU_ASSERT_EQUAL(info.to_version, STORE_SCHEMA_VERSION);
        add_events(s, 1, 1000, 1, 1);
        CU_ASSERT_EQUAL(store_commit(s), 0);
        db = raw_open(path);
        CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
        CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM events"), 1);
        sqlite3_close(db);
        store_free(s);
        free(path);
        rm_rf(tmp);
}

struct one_event {
        size_t n;
        struct store_event ev;
        char node[32], kind[32], subject[32], detail[32], unit[32];
};

static int copy_cb(const struct store_event *ev, void *userdata) {
        struct one_event *o = userdata;

        o->n++;
        o->ev = *ev;
        snprintf(o->node, sizeof(o->node), "%s", ev->node);
        snprintf(o->kind, sizeof(o->kind), "%s", ev->kind);
        snprintf(o->subject, sizeof(o->subject), "%s", ev->subject);
        snprintf(o->detail, sizeof(o->detail), "%s", ev->detail);
        snprintf(o->unit, sizeof(o->unit), "%s", ev->unit ? ev->unit : "(null)");
        return 0;
}

/*
 * A file left by each earlier release, with an event in it, is migrated to
 * the current schema, keeps its event, and ends up with exactly the schema
 * of a freshly created file.
 */
static void test_migrate_from_each_version(void) {
        char *ftmp = unit_tmpdir(), *fresh_schema;
        struct store *s = open_ok(ftmp, STORE_SYNC_NORMAL, NULL);
        char *fpath = join(ftmp, STORE_DB_NAME);
        sqlite3 *db;

        store_free(s);
        db = raw_open(fpath);
        fresh_schema = raw_schema(db);
        sqlite3_close(db);

        for (int v = 1; v < STORE_SCHEMA_VERSION; v++) {
                char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME), *schema;
                struct store_open_info info;
                struct one_event o = { .n = 0 };

                CU_ASSERT_EQUAL_FATAL(store_create_at_version(path, v), 0);
                db = raw_open(path);
                CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), v);
                CU_ASSERT_EQUAL(sqlite3_exec(db,
                        "INSERT INTO events (ts, node, kind, subject, detail, service, unit, term) "
                        "VALUES (1234567, 'old', 'agent_started', 'subj', 'det', NULL, 'u.service', 7)",
                        NULL, NULL, NULL), SQLITE_OK);
                sqlite3_close(db);

                s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
                CU_ASSERT_EQUAL(info.from_version, v);
                CU_ASSERT_EQUAL(info.to_version, STORE_SCHEMA_VERSION);
                CU_ASSERT_FALSE(info.recovered);
                CU_ASSERT_EQUAL(store_events_query(s, NULL, copy_cb, &o), 0);
                CU_ASSERT_EQUAL(o.n, 1);
                CU_ASSERT_EQUAL(o.ev.id, 1);
                CU_ASSERT_EQUAL(o.ev.ts_us, 1234567);
                CU_ASSERT_STRING_EQUAL(o.node, "old");
                CU_ASSERT_STRING_EQUAL(o.kind, "agent_started");
                CU_ASSERT_STRING_EQUAL(o.subject, "subj");
                CU_ASSERT_STRING_EQUAL(o.detail, "det");
                CU_ASSERT_STRING_EQUAL(o.unit, "u.service");
                CU_ASSERT_EQUAL(o.ev.term, 7);
                /* New ids continue after the old ones. */
                add_events(s, 1, 2000000, 1, 2);
                store_free(s);

                db = raw_open(path);
                CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
                schema = raw_schema(db);
                CU_ASSERT_STRING_EQUAL(schema, fresh_schema);
                CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM events"), 2);
                free(schema);
                sqlite3_close(db);
                free(path);
                rm_rf(tmp);
        }
        free(fresh_schema);
        free(fpath);
        rm_rf(ftmp);
}

static void test_create_at_version(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        sqlite3 *db;

        CU_ASSERT_EQUAL(store_create_at_version(path, 0), -EINVAL);
        CU_ASSERT_EQUAL(store_create_at_version(path, STORE_SCHEMA_VERSION + 1), -EINVAL);
        CU_ASSERT_EQUAL(store_create_at_version(NULL, 1), -EINVAL);
        CU_ASSERT_EQUAL(store_create_at_version(path, STORE_SCHEMA_VERSION), 0);
        db = raw_open(path);
        CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
        sqlite3_close(db);
        /* An existing schema is never overwritten. */
        CU_ASSERT_EQUAL(store_create_at_version(path, 1), -EEXIST);
        free(path);
        rm_rf(tmp);
}

static void test_newer_version_refused(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME), *want;
        struct store *s = NULL;
        char *err = NULL;
        sqlite3 *db;
        char sql[64];

        CU_ASSERT_EQUAL_FATAL(store_create_at_version(path, STORE_SCHEMA_VERSION), 0);
        db = raw_open(path);
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);

        CU_ASSERT_EQUAL(store_open(tmp, STORE_SYNC_NORMAL, &s, NULL, &err), -EPROTO);
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_FATAL(asprintf(&want, "%s has schema version %d, this agentd knows up to %d; "
                                 "refusing to downgrade", path, STORE_SCHEMA_VERSION + 1,
                                 STORE_SCHEMA_VERSION) > 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(err);
        CU_ASSERT_STRING_EQUAL(err, want);
        free(want);
        free(err);

        /* Left exactly where it was: not migrated, not moved aside. */
        db = raw_open(path);
        CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION + 1);
        sqlite3_close(db);
        free(path);
        rm_rf(tmp);
}

/* --- writing ------------------------------------------------------------- */

static int64_t wal_frames(sqlite3 *db) {
        sqlite3_stmt *st = NULL;
        int64_t frames = -1;

        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                frames = sqlite3_column_int64(st, 1);
        sqlite3_finalize(st);
        return frames;
}

static void test_batching(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        sqlite3 *db = raw_open(path);
        uint64_t count = 0;

        CU_ASSERT_EQUAL(store_commit(s), 0);        /* nothing open: a no-op */
        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);

        add_events(s, 100, 1000, 10, 1);
        CU_ASSERT_TRUE(store_in_transaction(s));
        /* The writer sees its own batch; nobody else does yet. */
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 100);
        CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM events"), 0);
        CU_ASSERT_EQUAL(store_commit(s), 0);
        CU_ASSERT_FALSE(store_in_transaction(s));
        CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM events"), 100);

        /*
         * One transaction: the 100 rows arrive as a handful of WAL frames
         * (the pages touched once), where a commit per event would have
         * written at least one frame each.
         */
        int64_t batched = wal_frames(db);
        CU_ASSERT(batched > 0 && batched < 20);

        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
        for (int i = 0; i < 100; i++) {
                add_events(s, 1, 5000, 1, 101 + i);
                CU_ASSERT_EQUAL(store_commit(s), 0);
        }
        CU_ASSERT(wal_frames(db) >= 100);
        CU_ASSERT_EQUAL(raw_int(db, "SELECT count(*) FROM events"), 200);

        sqlite3_close(db);
        store_free(s);
        free(path);
        rm_rf(tmp);
}

static void test_free_commits(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME), *wal = join(tmp, STORE_DB_NAME "-wal");
        struct store *s = open_ok(tmp, STORE_SYNC_FULL, NULL);

        add_events(s, 5, 1000, 1, 1);
        CU_ASSERT_TRUE(store_in_transaction(s));
        store_free(s);
        CU_ASSERT_EQUAL(raw_count(path), 5);
        /* A clean close checkpoints and removes the WAL. */
        CU_ASSERT_FALSE(exists(wal));
        free(wal);
        free(path);
        rm_rf(tmp);
}

static void test_event_add_rejects(void) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        struct event ev = mkevent(1000, EVENT_AGENT_STARTED, "x");
        struct event bad;
        uint64_t count = 99;
        int64_t id = -7;

        bad = ev;
        bad.node = NULL;
        CU_ASSERT_EQUAL(store_event_add(s, &bad, &id), -EINVAL);
        bad = ev;
        bad.kind = _EVENT_KIND_MAX;
        CU_ASSERT_EQUAL(store_event_add(s, &bad, &id), -EINVAL);
        bad.kind = _EVENT_KIND_INVALID;
        CU_ASSERT_EQUAL(store_event_add(s, &bad, &id), -EINVAL);
        bad = ev;
        bad.ts_us = (uint64_t) INT64_MAX + 1;
        CU_ASSERT_EQUAL(store_event_add(s, &bad, &id), -ERANGE);
        bad = ev;
        bad.term = UINT64_MAX;
        CU_ASSERT_EQUAL(store_event_add(s, &bad, &id), -ERANGE);
        CU_ASSERT_EQUAL(store_event_add(s, NULL, &id), -EINVAL);
        CU_ASSERT_EQUAL(store_event_add(NULL, &ev, &id), -EINVAL);
        CU_ASSERT_EQUAL(id, -7);
        CU_ASSERT_FALSE(store_in_transaction(s));
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 0);

        /* NULL subject/detail are stored as "", and ret_id may be NULL. */
        ev.subject = NULL;
        ev.detail = NULL;
        CU_ASSERT_EQUAL(store_event_add(s, &ev, NULL), 0);
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 1);
        store_free(s);
        rm_rf(tmp);
}

struct lengths {
        size_t subject, detail;
        char last_detail_char[4];
};

static int lengths_cb(const struct store_event *ev, void *userdata) {
        struct lengths *l = userdata;

        l->subject = strlen(ev->subject);
        l->detail = strlen(ev->detail);
        memcpy(l->last_detail_char, ev->detail + l->detail - 2, 3);
        return 0;
}

static void test_field_truncation(void) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        struct event ev = mkevent(1000, EVENT_AGENT_STARTED, NULL);
        struct lengths l = { 0, 0, { 0 } };
        char *subject = malloc(STORE_FIELD_MAX + 100), *detail = malloc(6002);

        CU_ASSERT_PTR_NOT_NULL_FATAL(subject);
        CU_ASSERT_PTR_NOT_NULL_FATAL(detail);
        memset(subject, 'a', STORE_FIELD_MAX + 99);
        subject[STORE_FIELD_MAX + 99] = '\0';
        /* "x" then 3000 two-byte characters: byte 4096 is inside one of them. */
        detail[0] = 'x';
        for (int i = 0; i < 3000; i++)
                memcpy(detail + 1 + 2 * i, "\xc3\xa9", 2);
        detail[6001] = '\0';
        ev.subject = subject;
        ev.detail = detail;
        CU_ASSERT_EQUAL(store_event_add(s, &ev, NULL), 0);
        CU_ASSERT_EQUAL(store_events_query(s, NULL, lengths_cb, &l), 0);
        CU_ASSERT_EQUAL(l.subject, STORE_FIELD_MAX);
        CU_ASSERT_EQUAL(l.detail, STORE_FIELD_MAX - 1);
        CU_ASSERT_EQUAL(memcmp(l.last_detail_char, "\xc3\xa9", 3), 0);
        free(subject);
        free(detail);
        store_free(s);
        rm_rf(tmp);
}

/* --- retention ----------------------------------------------------------- */

/*
 * Ten events, ids 1..10 with ts 1000, 2000, ... 10000 µs, pruned at
 * now = 10500 µs.
 */
static void test_retention(void) {
        static const struct {
                const char *name;
                uint64_t max_age, max_rows;
                uint64_t deleted;
                int64_t remaining[10];
                size_t nremaining;
        } cases[] = {
                { "no limits",        0,     0,   0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "age: cutoff 5500", 5000,  0,   5, { 6, 7, 8, 9, 10 }, 5 },
                { "age: ts == cutoff kept", 5500, 0, 4, { 5, 6, 7, 8, 9, 10 }, 6 },
                { "age: all too old", 100,   0,   10, { 0 }, 0 },
                { "age above now",    20000, 0,   0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "rows: keep 3",     0,     3,   7, { 8, 9, 10 }, 3 },
                { "rows: keep 1",     0,     1,   9, { 10 }, 1 },
                { "rows: keep 9",     0,     9,   1, { 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 9 },
                { "rows: keep 10",    0,     10,  0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "rows: keep 1000",  0,     1000, 0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "rows: UINT64_MAX", 0,     UINT64_MAX, 0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "age then rows",    5000,  2,   8, { 9, 10 }, 2 },
                { "rows above age",   5000,  8,   5, { 6, 7, 8, 9, 10 }, 5 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
                struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
                uint64_t deleted = 12345;

                add_events(s, 10, 1000, 1000, 1);
                /* prune commits the open batch first, then runs on its own. */
                CU_ASSERT_TRUE(store_in_transaction(s));
                CU_ASSERT_EQUAL(store_prune(s, 10500, cases[i].max_age, cases[i].max_rows, &deleted), 0);
                CU_ASSERT_FALSE(store_in_transaction(s));
                if (deleted != cases[i].deleted)
                        fprintf(stderr, "retention case \"%s\": deleted %llu\n", cases[i].name,
                                (unsigned long long) deleted);
                CU_ASSERT_EQUAL(deleted, cases[i].deleted);
                assert_ids(s, NULL, cases[i].remaining, cases[i].nremaining);
                CU_ASSERT_EQUAL(raw_count(path), (int64_t) cases[i].nremaining);
                store_free(s);
                free(path);
                rm_rf(tmp);
        }
}

/*
 * Ids with gaps: the clock stepped back and forth, so an age prune removes
 * events from the middle of the id range. Odd ids are old (ts 1000), even
 * ids new (ts 9000); the age prune at now = 10000, max age 5000 leaves
 * 2, 4, 6, 8, 10, and the count limit must then count, not assume dense ids.
 */
static void test_retention_gaps(void) {
        static const struct {
                uint64_t max_rows;
                uint64_t deleted;
                int64_t remaining[5];
                size_t nremaining;
        } cases[] = {
                { 3, 7, { 6, 8, 10 }, 3 },
                { 5, 5, { 2, 4, 6, 8, 10 }, 5 },
                { 1, 9, { 10 }, 1 },
                { 6, 5, { 2, 4, 6, 8, 10 }, 5 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *tmp = unit_tmpdir();
                struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
                uint64_t deleted = 12345;

                for (int id = 1; id <= 10; id++) {
                        struct event ev = mkevent(id % 2 ? 1000 : 9000, EVENT_AGENT_STARTED, "x");
                        CU_ASSERT_EQUAL_FATAL(store_event_add(s, &ev, NULL), 0);
                }
                CU_ASSERT_EQUAL(store_prune(s, 10000, 5000, cases[i].max_rows, &deleted), 0);
                CU_ASSERT_EQUAL(deleted, cases[i].deleted);
                assert_ids(s, NULL, cases[i].remaining, cases[i].nremaining);
                /* Ids are never reused, even after the newest rows were deleted. */
                CU_ASSERT_EQUAL(store_prune(s, 10000, 1, 0, &deleted), 0);
                CU_ASSERT_EQUAL(deleted, cases[i].nremaining);
                add_events(s, 1, 20000, 1, 11);
                store_free(s);
                rm_rf(tmp);
        }
}

/* --- recovery ------------------------------------------------------------ */

static void assert_file_is(const char *path, const void *data, size_t len) {
        size_t got_len = 0;
        char *got = read_file(path, &got_len);

        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_EQUAL(got_len, len);
        if (got_len == len)
                CU_ASSERT_EQUAL(memcmp(got, data, len), 0);
        free(got);
}

/* The recovered store must be fully usable: write, commit, read back. */
static void assert_fresh_works(struct store *s, const char *path) {
        uint64_t count = 99;

        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 0);
        add_events(s, 3, 1000, 1, 1);
        CU_ASSERT_EQUAL(store_commit(s), 0);
        CU_ASSERT_EQUAL(raw_count(path), 3);
}

static void test_corrupt_garbage(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        char *wal = join(tmp, STORE_DB_NAME "-wal"), *prefix;
        char garbage[8192], walgarbage[100], side[4200];
        struct store_open_info info;
        struct store *s;
        long long t;
        char *end;

        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (char) (i * 7 + 13);
        memset(walgarbage, 'W', sizeof(walgarbage));
        write_file(path, garbage, sizeof(garbage));
        write_file(wal, walgarbage, sizeof(walgarbage));

        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_TRUE(info.recovered);
        CU_ASSERT_STRING_EQUAL(info.corrupt_reason, "file is not a database");
        CU_ASSERT_EQUAL(info.from_version, 0);
        CU_ASSERT_EQUAL(info.to_version, STORE_SCHEMA_VERSION);

        /* The name is PATH.corrupt-<unix seconds>, and the bytes are the original ones. */
        prefix = join(tmp, STORE_DB_NAME ".corrupt-");
        CU_ASSERT_EQUAL_FATAL(strncmp(info.corrupt_path, prefix, strlen(prefix)), 0);
        t = strtoll(info.corrupt_path + strlen(prefix), &end, 10);
        CU_ASSERT_EQUAL(*end, '\0');
        CU_ASSERT(t > 1700000000 && t <= (long long) time(NULL));
        assert_file_is(info.corrupt_path, garbage, sizeof(garbage));
        snprintf(side, sizeof(side), "%s-wal", info.corrupt_path);
        assert_file_is(side, walgarbage, sizeof(walgarbage));

        assert_fresh_works(s, path);
        store_free(s);
        free(prefix);
        free(wal);
        free(path);
        rm_rf(tmp);
}

/* A name already taken gets ".1": pre-take every name the next seconds could produce. */
static void test_corrupt_name_taken(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        struct store_open_info info;
        struct store *s;
        long long now = (long long) time(NULL);
        char taken[4200], want[8][4300];

        for (int i = 0; i < 8; i++) {
                snprintf(taken, sizeof(taken), "%s.corrupt-%lld", path, now + i);
                write_file(taken, "old", 3);
                snprintf(want[i], sizeof(want[i]), "%s.1", taken);
        }
        write_file(path, "not a database at all, clearly not: 0123456789abcdef0123456789abcdef"
                   "0123456789abcdef0123456789abcdef0123456789abcdef", 115);

        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_TRUE(info.recovered);
        bool matched = false;
        for (int i = 0; i < 8; i++)
                matched |= strcmp(info.corrupt_path, want[i]) == 0;
        CU_ASSERT_TRUE(matched);
        /* The file that held the name first is untouched. */
        snprintf(taken, sizeof(taken), "%s.corrupt-%lld", path, now);
        assert_file_is(taken, "old", 3);
        assert_fresh_works(s, path);
        store_free(s);
        free(path);
        rm_rf(tmp);
}

/*
 * Builds a real database with enough events to span many pages, closes it
 * (checkpointing the WAL into the file) and returns the page size.
 */
static int64_t build_database(const char *dir, const char *path, int events) {
        struct store *s = open_ok(dir, STORE_SYNC_NORMAL, NULL);
        sqlite3 *db;
        int64_t page_size;

        for (int i = 0; i < events; i++) {
                struct event ev = mkevent(1000 + (uint64_t) i, EVENT_CONFIG_RELOADED,
                                          "some subject text to fill the pages");
                CU_ASSERT_EQUAL_FATAL(store_event_add(s, &ev, NULL), 0);
        }
        store_free(s);
        db = raw_open(path);
        page_size = raw_int(db, "PRAGMA page_size");
        sqlite3_close(db);
        return page_size;
}

static char *raw_quick_check(const char *path) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char *r;

        CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                r = strdup((const char *) sqlite3_column_text(st, 0));
        else
                r = strdup(sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (!r)
                exit(99);
        return r;
}

/* A b-tree page overwritten in the middle of a valid file: the header is fine, quick_check is not. */
static void test_corrupt_page(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME), *check;
        struct store_open_info info;
        struct store *s;
        int64_t page_size = build_database(tmp, path, 3000);
        size_t len = 0;
        char *bytes = read_file(path, &len);
        size_t pages, victim;

        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        CU_ASSERT_FATAL(page_size >= 512);
        pages = len / (size_t) page_size;
        CU_ASSERT_FATAL(pages >= 10);
        victim = pages / 2;
        memset(bytes + victim * (size_t) page_size, 0x5a, (size_t) page_size);
        write_file(path, bytes, len);

        /* Precondition, checked independently: the damage is detectable. */
        check = raw_quick_check(path);
        CU_ASSERT_STRING_NOT_EQUAL_FATAL(check, "ok");
        free(check);

        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_TRUE(info.recovered);
        CU_ASSERT(strncmp(info.corrupt_reason, "quick_check: ", 13) == 0 ||
                  strstr(info.corrupt_reason, "malformed") != NULL);
        assert_file_is(info.corrupt_path, bytes, len);
        assert_fresh_works(s, path);
        store_free(s);
        free(bytes);
        free(path);
        rm_rf(tmp);
}

/*
 * A crash leaves committed events in the WAL, and the main file is damaged.
 * Both are set aside exactly as found: had closing the checking connection
 * checkpointed, the WAL would have been written into the corrupt file and
 * deleted, and the evidence with it.
 */
static void test_corrupt_with_wal(void) {
        char *tmp = unit_tmpdir(), *crash = join(tmp, "crash");
        char *path = join(tmp, STORE_DB_NAME), *wal = join(tmp, STORE_DB_NAME "-wal");
        char *cpath = join(crash, STORE_DB_NAME), *cwal = join(crash, STORE_DB_NAME "-wal");
        struct store_open_info info;
        char side[4200], *check;
        size_t len = 0, wal_len = 0;
        int64_t page_size = build_database(tmp, path, 3000);
        struct store *s;
        char *bytes, *wal_bytes;

        /* Commit a few more events and copy the files while the writer is still open. */
        s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        add_events(s, 10, 900000, 1, 3001);
        CU_ASSERT_EQUAL(store_commit(s), 0);
        bytes = read_file(path, &len);
        wal_bytes = read_file(wal, &wal_len);
        store_free(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        CU_ASSERT_PTR_NOT_NULL_FATAL(wal_bytes);
        CU_ASSERT_FATAL(wal_len > 32);

        CU_ASSERT_EQUAL_FATAL(mkdir(crash, 0750), 0);
        memset(bytes + (len / (size_t) page_size / 2) * (size_t) page_size, 0x5a, (size_t) page_size);
        write_file(cpath, bytes, len);
        write_file(cwal, wal_bytes, wal_len);
        check = raw_quick_check(cpath);
        CU_ASSERT_STRING_NOT_EQUAL_FATAL(check, "ok");
        free(check);
        /* raw_quick_check opened read-only: the copies are still as written. */
        assert_file_is(cpath, bytes, len);
        assert_file_is(cwal, wal_bytes, wal_len);

        s = open_ok(crash, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_TRUE(info.recovered);
        assert_file_is(info.corrupt_path, bytes, len);
        snprintf(side, sizeof(side), "%s-wal", info.corrupt_path);
        assert_file_is(side, wal_bytes, wal_len);
        assert_fresh_works(s, cpath);
        store_free(s);
        free(bytes);
        free(wal_bytes);
        free(cpath);
        free(cwal);
        free(path);
        free(wal);
        free(crash);
        rm_rf(tmp);
}

/* A file cut short (a half-written copy, a full disk at the wrong moment). */
static void test_corrupt_truncated(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME), *check;
        struct store_open_info info;
        struct store *s;
        int64_t page_size = build_database(tmp, path, 3000);
        size_t len = 0;
        char *bytes = read_file(path, &len);
        size_t keep;

        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        keep = (len / (size_t) page_size / 2) * (size_t) page_size;
        CU_ASSERT_EQUAL_FATAL(truncate(path, (off_t) keep), 0);
        check = raw_quick_check(path);
        CU_ASSERT_STRING_NOT_EQUAL_FATAL(check, "ok");
        free(check);

        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT_TRUE(info.recovered);
        assert_file_is(info.corrupt_path, bytes, keep);
        assert_fresh_works(s, path);
        store_free(s);
        free(bytes);
        free(path);
        rm_rf(tmp);
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/*
 * A file locked by another process is busy, not corrupt: the open waits for
 * the lock (busy_timeout) and must never move the file aside. The child
 * holds an exclusive lock for 300 ms.
 */
static void test_locked_not_moved(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, STORE_DB_NAME);
        struct store_open_info info;
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        int pipefd[2], status = -1;
        uint64_t start;
        char c = 0;
        pid_t pid;

        add_events(s, 2, 1000, 1, 1);
        store_free(s);
        CU_ASSERT_EQUAL_FATAL(pipe(pipefd), 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                sqlite3 *db = NULL;

                close(pipefd[0]);
                if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
                    sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;"
                                     "INSERT INTO events (ts, node, kind) VALUES (3, 'n', 'agent_started')",
                                 NULL, NULL, NULL) != SQLITE_OK)
                        _exit(1);
                if (write(pipefd[1], "L", 1) != 1)
                        _exit(1);
                usleep(300 * 1000);
                if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                        _exit(1);
                sqlite3_close(db);
                _exit(0);
        }
        close(pipefd[1]);
        CU_ASSERT_EQUAL_FATAL(read(pipefd[0], &c, 1), 1);
        close(pipefd[0]);

        start = now_ms();
        s = open_ok(tmp, STORE_SYNC_NORMAL, &info);
        CU_ASSERT(now_ms() - start >= 150);
        CU_ASSERT_FALSE(info.recovered);
        CU_ASSERT_EQUAL(info.from_version, STORE_SCHEMA_VERSION);
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* The same file, with the child's event in it. */
        CU_ASSERT_EQUAL(raw_count(path), 3);
        store_free(s);
        free(path);
        rm_rf(tmp);
}

/* --- queries ------------------------------------------------------------- */

/*
 * Ten events: id i has ts 100 * i; odd ids are agent_started, even ones
 * config_reloaded.
 */
static struct store *query_fixture(char **ret_tmp) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);

        for (int i = 1; i <= 10; i++) {
                struct event ev = mkevent((uint64_t) i * 100,
                                          i % 2 ? EVENT_AGENT_STARTED : EVENT_CONFIG_RELOADED, "s");
                int64_t id = 0;

                CU_ASSERT_EQUAL_FATAL(store_event_add(s, &ev, &id), 0);
                CU_ASSERT_EQUAL(id, i);
        }
        CU_ASSERT_EQUAL(store_commit(s), 0);
        *ret_tmp = tmp;
        return s;
}

static void test_query_filters(void) {
        static const struct {
                const char *name;
                struct store_event_filter f;
                int64_t want[10];
                size_t nwant;
        } cases[] = {
                { "everything",           { 0, 0, NULL, 0 },  { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "after_id 7",           { 7, 0, NULL, 0 },  { 8, 9, 10 }, 3 },
                { "after_id 10",          { 10, 0, NULL, 0 }, { 0 }, 0 },
                { "after_id negative",    { -5, 0, NULL, 2 }, { 9, 10 }, 2 },
                { "since 500",            { 0, 500, NULL, 0 }, { 5, 6, 7, 8, 9, 10 }, 6 },
                { "since 501",            { 0, 501, NULL, 0 }, { 6, 7, 8, 9, 10 }, 5 },
                { "since huge",           { 0, UINT64_MAX, NULL, 0 }, { 0 }, 0 },
                { "kind",                 { 0, 0, "config_reloaded", 0 }, { 2, 4, 6, 8, 10 }, 5 },
                { "unknown kind",         { 0, 0, "nope", 0 }, { 0 }, 0 },
                { "limit: newest 3",      { 0, 0, NULL, 3 },  { 8, 9, 10 }, 3 },
                { "limit above count",    { 0, 0, NULL, 50 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
                { "kind + limit",         { 0, 0, "config_reloaded", 2 }, { 8, 10 }, 2 },
                { "all four",             { 3, 200, "agent_started", 2 }, { 7, 9 }, 2 },
                { "after + since",        { 2, 700, NULL, 0 }, { 7, 8, 9, 10 }, 4 },
        };
        char *tmp;
        struct store *s = query_fixture(&tmp);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct collected c = { .n = 0 };

                CU_ASSERT_EQUAL(store_events_query(s, &cases[i].f, collect_cb, &c), 0);
                CU_ASSERT_EQUAL(c.n, cases[i].nwant);
                bool same = c.n == cases[i].nwant;
                for (size_t j = 0; same && j < c.n; j++)
                        same = c.ids[j] == cases[i].want[j];
                if (!same)
                        fprintf(stderr, "query case \"%s\": got %zu rows\n", cases[i].name, c.n);
                CU_ASSERT_TRUE(same);
        }
        store_free(s);
        rm_rf(tmp);
}

static void test_query_fields_and_stop(void) {
        char *tmp;
        struct store *s = query_fixture(&tmp);
        struct event ev = {
                .ts_us = 1795000000123456ULL,
                .kind = EVENT_STORE_RECOVERED,
                .node = "node-7",
                .subject = "state.db",
                .detail = "moved aside",
                .service = "web",
                .unit = "web@8080.service",
                .term = 42,
        };
        struct store_event_filter f = { .after_id = 10 };
        struct one_event o = { .n = 0 };
        struct collected c = { .stop_after = 3 };
        int64_t id = 0;

        CU_ASSERT_EQUAL(store_event_add(s, &ev, &id), 0);
        CU_ASSERT_EQUAL(id, 11);
        /* Read back before commit: the writer's queries see the open batch. */
        CU_ASSERT_EQUAL(store_events_query(s, &f, copy_cb, &o), 0);
        CU_ASSERT_EQUAL(o.n, 1);
        CU_ASSERT_EQUAL(o.ev.id, 11);
        CU_ASSERT_EQUAL(o.ev.ts_us, 1795000000123456ULL);
        CU_ASSERT_STRING_EQUAL(o.node, "node-7");
        CU_ASSERT_STRING_EQUAL(o.kind, "store_recovered");
        CU_ASSERT_STRING_EQUAL(o.subject, "state.db");
        CU_ASSERT_STRING_EQUAL(o.detail, "moved aside");
        CU_ASSERT_STRING_EQUAL(o.unit, "web@8080.service");
        CU_ASSERT_EQUAL(o.ev.term, 42);

        /* A nonzero callback result stops the walk and is returned as is. */
        CU_ASSERT_EQUAL(store_events_query(s, NULL, collect_cb, &c), 42);
        CU_ASSERT_EQUAL(c.n, 3);
        CU_ASSERT_EQUAL(c.ids[0], 1);
        CU_ASSERT_EQUAL(c.ids[2], 3);
        /* ...and leaves the statement ready for the next query. */
        c = (struct collected) { .n = 0 };
        CU_ASSERT_EQUAL(store_events_query(s, NULL, collect_cb, &c), 0);
        CU_ASSERT_EQUAL(c.n, 11);

        CU_ASSERT_EQUAL(store_events_query(s, NULL, NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL(store_events_query(NULL, NULL, collect_cb, &c), -EINVAL);
        store_free(s);
        rm_rf(tmp);
}

struct reenter {
        struct store *s;
        int inner;
};

static int reenter_cb(const struct store_event *ev, void *userdata) {
        struct reenter *r = userdata;
        struct collected c = { .n = 0 };

        (void) ev;
        r->inner = store_events_query(r->s, NULL, collect_cb, &c);
        return 1;
}

static void test_query_reentry_refused(void) {
        char *tmp;
        struct store *s = query_fixture(&tmp);
        struct reenter r = { .s = s, .inner = 0 };

        CU_ASSERT_EQUAL(store_events_query(s, NULL, reenter_cb, &r), 1);
        CU_ASSERT_EQUAL(r.inner, -EBUSY);
        store_free(s);
        rm_rf(tmp);
}

/* --- read-only ----------------------------------------------------------- */

static void expect_ro_error(const char *path, int want_r, const char *want_msg) {
        struct store *s = NULL;
        char *err = NULL;

        CU_ASSERT_EQUAL(store_open_readonly(path, &s, &err), want_r);
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(err);
        if (strcmp(err, want_msg) != 0)
                fprintf(stderr, "got \"%s\", want \"%s\"\n", err, want_msg);
        CU_ASSERT_STRING_EQUAL(err, want_msg);
        free(err);
}

static void test_readonly_refusals(void) {
        char *tmp = unit_tmpdir(), *missing = join(tmp, "nosuch.db"), *empty = join(tmp, "empty.db");
        char *junk = join(tmp, "junk.db"), *newer = join(tmp, "newer.db"), *msg;
        char garbage[4096];
        sqlite3 *db;
        char sql[64];

        CU_ASSERT_FATAL(asprintf(&msg, "no such file: %s", missing) > 0);
        expect_ro_error(missing, -ENOENT, msg);
        free(msg);

        write_file(empty, "", 0);
        CU_ASSERT_FATAL(asprintf(&msg, "%s: not an agentd state database (schema version 0)", empty) > 0);
        expect_ro_error(empty, -EINVAL, msg);
        free(msg);

        memset(garbage, 'g', sizeof(garbage));
        write_file(junk, garbage, sizeof(garbage));
        CU_ASSERT_FATAL(asprintf(&msg, "%s: file is not a database", junk) > 0);
        expect_ro_error(junk, -EBADMSG, msg);
        free(msg);
        /* Read-only means read-only: the junk was neither moved nor touched. */
        assert_file_is(junk, garbage, sizeof(garbage));

        CU_ASSERT_EQUAL_FATAL(store_create_at_version(newer, STORE_SCHEMA_VERSION), 0);
        db = raw_open(newer);
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 5);
        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        CU_ASSERT_FATAL(asprintf(&msg, "%s has schema version %d, this agentd knows up to %d",
                                 newer, STORE_SCHEMA_VERSION + 5, STORE_SCHEMA_VERSION) > 0);
        expect_ro_error(newer, -EPROTO, msg);
        free(msg);

        CU_ASSERT_FATAL(asprintf(&msg, "%s: not a regular file", tmp) > 0);
        expect_ro_error(tmp, -EISDIR, msg);
        free(msg);

        CU_ASSERT_EQUAL(store_open_readonly(NULL, &(struct store *) { NULL }, NULL), -EINVAL);

        free(missing);
        free(empty);
        free(junk);
        free(newer);
        rm_rf(tmp);
}

static void test_readonly_reads(void) {
        char *tmp;
        struct store *w = query_fixture(&tmp), *r = NULL;
        char *path = join(tmp, STORE_DB_NAME), *err = NULL;
        struct event ev = mkevent(5000, EVENT_AGENT_STOPPING, "later");
        uint64_t count = 0, deleted = 0;
        static const int64_t newest_two[] = { 9, 10 };
        static const int64_t started[] = { 1, 3, 5, 7, 9 };

        /* Alongside a running writer: only committed events are visible. */
        CU_ASSERT_EQUAL(store_event_add(w, &ev, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(store_open_readonly(path, &r, &err), 0);
        CU_ASSERT_PTR_NULL(err);
        CU_ASSERT_STRING_EQUAL(store_path(r), path);
        CU_ASSERT_EQUAL(store_events_count(r, &count), 0);
        CU_ASSERT_EQUAL(count, 10);
        assert_ids(r, &(struct store_event_filter) { .limit = 2 }, newest_two, 2);
        assert_ids(r, &(struct store_event_filter) { .kind = "agent_started" }, started, 5);
        CU_ASSERT_EQUAL(store_commit(w), 0);
        CU_ASSERT_EQUAL(store_events_count(r, &count), 0);
        CU_ASSERT_EQUAL(count, 11);

        /* Writes are refused without touching the file. */
        CU_ASSERT_EQUAL(store_event_add(r, &ev, NULL), -EROFS);
        CU_ASSERT_EQUAL(store_prune(r, 10000, 1, 1, &deleted), -EROFS);
        CU_ASSERT_EQUAL(store_commit(r), 0);
        CU_ASSERT_FALSE(store_in_transaction(r));
        store_free(r);
        store_free(w);

        /* And after the writer is gone. */
        CU_ASSERT_EQUAL_FATAL(store_open_readonly(path, &r, NULL), 0);
        CU_ASSERT_EQUAL(store_events_count(r, &count), 0);
        CU_ASSERT_EQUAL(count, 11);
        store_free(r);
        free(path);
        rm_rf(tmp);
}

/* A previous release's file is readable without migrating it. */
static void test_readonly_old_version(void) {
        char *tmp = unit_tmpdir(), *path = join(tmp, "v1.db");
        struct store *r = NULL;
        uint64_t count = 9;
        sqlite3 *db;

        CU_ASSERT_EQUAL_FATAL(store_create_at_version(path, 1), 0);
        db = raw_open(path);
        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "INSERT INTO events (ts, node, kind) "
                                               "VALUES (1, 'n', 'agent_started')",
                                           NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        CU_ASSERT_EQUAL_FATAL(store_open_readonly(path, &r, NULL), 0);
        CU_ASSERT_EQUAL(store_events_count(r, &count), 0);
        CU_ASSERT_EQUAL(count, 1);
        store_free(r);
        db = raw_open(path);
        CU_ASSERT_EQUAL(raw_int(db, "PRAGMA user_version"), 1);
        sqlite3_close(db);
        free(path);
        rm_rf(tmp);
}

/*
 * An operator without write access to the state directory (agentctl events
 * --db as a member of the agentd group) can still read a cleanly closed
 * database. Needs root to drop to another uid; skipped otherwise.
 */
static void test_readonly_unprivileged(void) {
        char *tmp, *path;
        struct store *w;
        int status = -1;
        pid_t pid;

        if (geteuid() != 0) {
                fprintf(stderr, "(skipped: needs root) ");
                return;
        }
        w = query_fixture(&tmp);
        path = join(tmp, STORE_DB_NAME);
        store_free(w);
        CU_ASSERT_EQUAL_FATAL(chmod(tmp, 0755), 0);
        CU_ASSERT_EQUAL_FATAL(chmod(path, 0644), 0);

        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                struct store *r = NULL;
                uint64_t count = 0;
                char *err = NULL;

                if (setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(2);
                if (access(tmp, W_OK) == 0)
                        _exit(3);
                if (store_open_readonly(path, &r, &err) < 0) {
                        fprintf(stderr, "unprivileged read-only open: %s\n", err ? err : "?");
                        _exit(4);
                }
                if (store_events_count(r, &count) < 0 || count != 10)
                        _exit(5);
                store_free(r);
                _exit(0);
        }
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT_TRUE(WIFEXITED(status));
        CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
        free(path);
        rm_rf(tmp);
}

static CU_TestInfo open_tests[] = {
        { "fresh database", test_open_fresh },
        { "connection settings", test_connection_settings },
        { "bad arguments", test_open_bad_arguments },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo migration_tests[] = {
        { "from an empty file", test_migrate_empty_file },
        { "from every earlier version", test_migrate_from_each_version },
        { "store_create_at_version", test_create_at_version },
        { "newer version refused", test_newer_version_refused },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo write_tests[] = {
        { "batching", test_batching },
        { "store_free commits", test_free_commits },
        { "event_add rejects bad input", test_event_add_rejects },
        { "long fields truncated", test_field_truncation },
        { "retention by age and count", test_retention },
        { "retention with id gaps", test_retention_gaps },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo recovery_tests[] = {
        { "garbage file", test_corrupt_garbage },
        { "corrupt name already taken", test_corrupt_name_taken },
        { "damaged page", test_corrupt_page },
        { "damaged file with a live WAL", test_corrupt_with_wal },
        { "truncated file", test_corrupt_truncated },
        { "locked file is not moved", test_locked_not_moved },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo query_tests[] = {
        { "filters", test_query_filters },
        { "fields and early stop", test_query_fields_and_stop },
        { "re-entry refused", test_query_reentry_refused },
        CU_TEST_INFO_NULL,
};

static CU_TestInfo readonly_tests[] = {
        { "refusals", test_readonly_refusals },
        { "reads", test_readonly_reads },
        { "old version", test_readonly_old_version },
        { "unprivileged reader", test_readonly_unprivileged },
        CU_TEST_INFO_NULL,
};

/* ---- state tables ---- */

struct state_rows {
        int n;
        char keys[8][32];
        char values[8][64];
        uint64_t updated[8];
};

static int state_collect_cb(const char *key, const char *value, uint64_t updated_us, void *userdata) {
        struct state_rows *rows = userdata;

        if (rows->n >= 8)
                return -E2BIG;
        snprintf(rows->keys[rows->n], sizeof(rows->keys[0]), "%s", key);
        snprintf(rows->values[rows->n], sizeof(rows->values[0]), "%s", value);
        rows->updated[rows->n] = updated_us;
        rows->n++;
        return 0;
}

static void test_state_put_get_delete(void) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        char *v = NULL;
        uint64_t upd = 0;

        for (int t = 0; t < _STORE_TABLE_MAX; t++) {
                CU_ASSERT_EQUAL(store_state_put(s, (enum store_table) t, "web@8080.service", "{\"a\":1}", 1000 + (uint64_t) t), 0);
                CU_ASSERT_EQUAL(store_state_get(s, (enum store_table) t, "web@8080.service", &v, &upd), 0);
                CU_ASSERT_STRING_EQUAL(v, "{\"a\":1}");
                CU_ASSERT_EQUAL(upd, 1000 + (uint64_t) t);
                free(v);
                v = NULL;
        }
        /* Replace, then delete; tables are independent of each other. */
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_BREAKERS, "web@8080.service", "{\"a\":2}", 2000), 0);
        CU_ASSERT_EQUAL(store_state_get(s, STORE_TABLE_BREAKERS, "web@8080.service", &v, NULL), 0);
        CU_ASSERT_STRING_EQUAL(v, "{\"a\":2}");
        free(v);
        v = NULL;
        CU_ASSERT_EQUAL(store_state_delete(s, STORE_TABLE_BREAKERS, "web@8080.service"), 0);
        CU_ASSERT_EQUAL(store_state_get(s, STORE_TABLE_BREAKERS, "web@8080.service", &v, NULL), -ENOENT);
        CU_ASSERT_PTR_NULL(v);
        CU_ASSERT_EQUAL(store_state_delete(s, STORE_TABLE_BREAKERS, "web@8080.service"), 0);
        CU_ASSERT_EQUAL(store_state_get(s, STORE_TABLE_BACKOFF, "web@8080.service", &v, NULL), 0);
        free(v);

        /* Survives close and reopen (the batch is committed on free). */
        store_free(s);
        s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        v = NULL;
        CU_ASSERT_EQUAL(store_state_get(s, STORE_TABLE_MEMBERS, "web@8080.service", &v, &upd), 0);
        CU_ASSERT_STRING_EQUAL(v, "{\"a\":1}");
        CU_ASSERT_EQUAL(upd, 1000 + STORE_TABLE_MEMBERS);
        free(v);
        store_free(s);
        rm_rf(tmp);
}

static void test_state_foreach_and_limits(void) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        struct state_rows rows = { 0 };
        char *big, *v = NULL, key[STORE_STATE_KEY_MAX + 2];

        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "n3", "c", 3), 0);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "n1", "a", 1), 0);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "n2", "b", 2), 0);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_AGENT, "incarnation", "7", 9), 0);
        CU_ASSERT_EQUAL(store_state_foreach(s, STORE_TABLE_MEMBERS, state_collect_cb, &rows), 0);
        CU_ASSERT_EQUAL_FATAL(rows.n, 3);
        CU_ASSERT_STRING_EQUAL(rows.keys[0], "n1");
        CU_ASSERT_STRING_EQUAL(rows.keys[2], "n3");
        CU_ASSERT_STRING_EQUAL(rows.values[1], "b");
        CU_ASSERT_EQUAL(rows.updated[2], 3);

        /* Bad input is refused and changes nothing. */
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "", "x", 1), -EINVAL);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, NULL, "x", 1), -EINVAL);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "k", NULL, 1), -EINVAL);
        CU_ASSERT_EQUAL(store_state_put(s, _STORE_TABLE_MAX, "k", "x", 1), -EINVAL);
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "k", "x", (uint64_t) INT64_MAX + 1), -ERANGE);
        memset(key, 'k', sizeof(key) - 1);
        key[sizeof(key) - 1] = '\0';
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, key, "x", 1), -EINVAL);
        big = malloc(STORE_STATE_VALUE_MAX + 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 'v', STORE_STATE_VALUE_MAX + 1);
        big[STORE_STATE_VALUE_MAX + 1] = '\0';
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "big", big, 1), -EINVAL);
        big[STORE_STATE_VALUE_MAX] = '\0';
        CU_ASSERT_EQUAL(store_state_put(s, STORE_TABLE_MEMBERS, "big", big, 1), 0);
        CU_ASSERT_EQUAL(store_state_get(s, STORE_TABLE_MEMBERS, "big", &v, NULL), 0);
        CU_ASSERT_EQUAL(strlen(v), STORE_STATE_VALUE_MAX);
        free(v);
        free(big);
        CU_ASSERT_STRING_EQUAL(store_table_to_string(STORE_TABLE_BALANCER), "balancer");
        CU_ASSERT_STRING_EQUAL(store_table_to_string(_STORE_TABLE_MAX), "invalid");
        store_free(s);
        rm_rf(tmp);
}

/* A large backlog is pruned in batches, oldest first, until the cap holds. */
static void test_retention_batches(void) {
        char *tmp = unit_tmpdir();
        struct store *s = open_ok(tmp, STORE_SYNC_NORMAL, NULL);
        const uint64_t n = STORE_PRUNE_BATCH * 2 + 500;
        uint64_t deleted = 0, count = 0;

        add_events(s, (int) n, 1000, 1, 1);
        CU_ASSERT_EQUAL_FATAL(store_commit(s), 0);
        /* By count: 2 full batches, then the rest. */
        CU_ASSERT_EQUAL(store_prune(s, 0, 0, 400, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, STORE_PRUNE_BATCH);
        CU_ASSERT_EQUAL(store_prune(s, 0, 0, 400, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, STORE_PRUNE_BATCH);
        CU_ASSERT_EQUAL(store_prune(s, 0, 0, 400, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, 100);
        CU_ASSERT_EQUAL(store_prune(s, 0, 0, 400, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, 0);
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 400);
        assert_ids(s, &(struct store_event_filter) { .limit = 1 }, (int64_t[]) { (int64_t) n }, 1);

        /* By age, in batches too: everything older than ts 1000 + n - 10. */
        add_events(s, (int) STORE_PRUNE_BATCH + 10, 1000 + n, 1, (int64_t) n + 1);
        CU_ASSERT_EQUAL_FATAL(store_commit(s), 0);
        CU_ASSERT_EQUAL(store_prune(s, 1000 + n + STORE_PRUNE_BATCH + 5 + 100, 100, 0, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, STORE_PRUNE_BATCH);
        CU_ASSERT_EQUAL(store_prune(s, 1000 + n + STORE_PRUNE_BATCH + 5 + 100, 100, 0, &deleted), 0);
        CU_ASSERT_EQUAL(deleted, 405);
        CU_ASSERT_EQUAL(store_events_count(s, &count), 0);
        CU_ASSERT_EQUAL(count, 5);
        store_free(s);
        rm_rf(tmp);
}

static CU_TestInfo state_tests[] = {
        { "retention in batches", test_retention_batches },
        { "put, get, delete in every table", test_state_put_get_delete },
        { "foreach order and input limits", test_state_foreach_and_limits },
        CU_TEST_INFO_NULL,
};

int main(void) {
        CU_SuiteInfo suites[] = {
                { "store open", NULL, NULL, NULL, NULL, open_tests },
                { "store migrations", NULL, NULL, NULL, NULL, migration_tests },
                { "store writes", NULL, NULL, NULL, NULL, write_tests },
                { "store recovery", NULL, NULL, NULL, NULL, recovery_tests },
                { "store queries", NULL, NULL, NULL, NULL, query_tests },
                { "store read-only", NULL, NULL, NULL, NULL, readonly_tests },
                { "store state tables", NULL, NULL, NULL, NULL, state_tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
