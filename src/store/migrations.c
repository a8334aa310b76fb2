/*
 * migrations.c — the schema of the store: ONE ordered list of migrations.
 *
 * To add tables, APPEND one entry at the end of `list` below:
 *
 *     {"jobs: job queue", "CREATE TABLE jobs (...); CREATE INDEX ...;"},
 *
 * That is the whole change. Never edit or reorder an entry that has shipped: a database
 * remembers how many entries it has applied (table schema_version), and on open every newer
 * entry runs, in order, inside one transaction, so a failing migration leaves the database as
 * it was. An entry's version is its 1-based position in the list.
 */
#include "store/migrations.h"

#include <stdio.h>
#include <time.h>

#include "core/error.h"

static const store_migration list[] = {
    /* 1: the shared key/value cache (band/song by video id, genre answers, ...). Times are
     * Unix milliseconds; expires_ms 0 = never. */
    {"cache: namespaced key/value cache with expiry",
     "CREATE TABLE cache (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
     " PRIMARY KEY (ns, key)) WITHOUT ROWID;"
     "CREATE INDEX cache_expires ON cache (expires_ms) WHERE expires_ms > 0;"},
    /* 2: the web app's job queue, results (PNG bytes + metadata) and batches (jobs_store.c).
     * kind: 0 analyze, 1 generate; state: queued|running|done|failed|canceled. */
    {"jobs, results, batches: the web app's persistent queue and gallery",
     "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,"
     " state TEXT NOT NULL, params TEXT NOT NULL, result TEXT, error TEXT,"
     " attempts INTEGER NOT NULL DEFAULT 0, batch_id INTEGER, batch_index INTEGER NOT NULL"
     " DEFAULT 0, parent_id INTEGER, created_ms INTEGER NOT NULL, started_ms INTEGER,"
     " finished_ms INTEGER);"
     "CREATE INDEX jobs_queue ON jobs (state, kind, id);"
     "CREATE INDEX jobs_batch ON jobs (batch_id, batch_index) WHERE batch_id IS NOT NULL;"
     "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL,"
     " variation INTEGER NOT NULL, seed INTEGER NOT NULL, width INTEGER NOT NULL,"
     " height INTEGER NOT NULL, seconds REAL NOT NULL, png BLOB NOT NULL, meta TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL);"
     "CREATE INDEX results_job ON results (job_id, variation);"
     "CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, params TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL);"},
    /* Append new migrations here (one line each). */
};

const store_migration *store_migrations(int *n)
{
    *n = (int)(sizeof list / sizeof list[0]);
    return list;
}

static int fail(sqlite3 *db, const char *what)
{
    return m2p_error(M2P_EIO, "store migration: %s: %s", what, sqlite3_errmsg(db));
}

int store_schema_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return fail(db, "reading schema_version");
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v < 0 ? fail(db, "reading schema_version") : v;
}

int store_migrate(sqlite3 *db)
{
    int n;
    const store_migration *m = store_migrations(&n);
    /* IMMEDIATE takes the write lock now: a second process waits (busy timeout), then sees the
     * version the first one wrote and has nothing left to do. */
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(db, "begin");
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        int r = fail(db, "creating schema_version");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    int have = store_schema_version(db);
    if (have < 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return have;
    }
    if (have > n) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return m2p_error(M2P_EUNSUPPORTED,
                         "store: the database has schema version %d but this build knows only "
                         "%d; it was written by a newer mus2pic",
                         have, n);
    }
    for (int v = have + 1; v <= n; v++) {
        const store_migration *e = &m[v - 1];
        char *err = NULL;
        if (sqlite3_exec(db, e->sql, NULL, NULL, &err) != SQLITE_OK) {
            m2p_error(M2P_EIO, "store migration %d (%s): %s", v, e->name, err ? err : "?");
            sqlite3_free(err);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return M2P_EIO;
        }
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO schema_version (version, name, applied_ms) VALUES "
                               "(?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK) {
            int r = fail(db, "recording version");
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_text(st, 2, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL) * 1000);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            int r = fail(db, "recording version");
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int r = fail(db, "commit");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    return 0;
}
