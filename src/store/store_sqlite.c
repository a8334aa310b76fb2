/*
 * store_sqlite.c — the SQLite backend's connection: open the database file (WAL mode), apply the
 * migrations, and the shared namespaced key/value cache with expiry. The job operations are in
 * jobs_store.c.
 *
 * WAL mode plus a busy timeout lets several processes (CLI, server) share the file; within one
 * process the store front (store.c) serialises the operations on a handle, so the error message
 * an operation reports is its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "store/migrations.h"
#include "store/store_internal.h"

#define STORE_BUSY_TIMEOUT_MS 15000

/* mkdir -p: every missing component of path, mode 0700 for new ones (the store may hold
 * prompts and API answers that are nobody else's business). */
static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return m2p_error(M2P_EIO, "store: cannot create folder %s: %s", path, strerror(e));
            }
            *c = save;
            if (!save)
                break;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return m2p_error(M2P_EIO, "store: %s is not a folder", path);
    return 0;
}

int store_sqlite_open(m2p_store *s, const char *file)
{
    if (!(s->where = strdup(file)))
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    char *slash = strrchr(s->where, '/');
    if (slash && slash != s->where) {
        *slash = '\0';
        int rc = mkdir_p(s->where);
        *slash = '/';
        if (rc)
            return rc;
    }
    s->be = &store_sqlite_backend;
    int sr = sqlite3_open_v2(
        file, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (sr != SQLITE_OK)
        return m2p_error(M2P_EIO, "store: cannot open %s: %s", file,
                         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sr));
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    /* journal_mode=WAL answers with the mode now in effect; anything else means the file
     * system cannot do WAL (e.g. some network mounts), which we report rather than run
     * silently with a rollback journal and writers blocking readers. */
    sqlite3_stmt *st = NULL;
    int step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK) {
        /* Switching a fresh file to WAL can answer SQLITE_BUSY at once, without the busy
         * handler, while another connection opens it too (four servers starting together
         * did): retry within the busy timeout. */
        for (int waited_ms = 0;; waited_ms += 10) {
            step = sqlite3_step(st);
            if ((step & 0xff) != SQLITE_BUSY || waited_ms >= STORE_BUSY_TIMEOUT_MS)
                break;
            sqlite3_reset(st);
            sqlite3_sleep(10);
        }
    }
    if (step != SQLITE_ROW) {
        int rc =
            m2p_error(M2P_EIO, "store: %s: cannot set WAL mode: %s", file, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return rc;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    int wal = mode && !strcmp((const char *)mode, "wal");
    sqlite3_finalize(st);
    if (!wal)
        return m2p_error(M2P_EIO, "store: %s: the file system does not support WAL mode", file);
    if (sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", NULL, NULL,
                     NULL) != SQLITE_OK)
        return m2p_error(M2P_EIO, "store: %s: %s", file, sqlite3_errmsg(s->db));
    int rc = store_sqlite_migrate(s);
    if (rc)
        return m2p_error_wrap(rc, "store %s", file);
    return 0;
}

void store_sqlite_close(m2p_store *s)
{
    if (s->db)
        sqlite3_close_v2(s->db);
    s->db = NULL;
}

static int fail(m2p_store *s, const char *what)
{
    return m2p_error(M2P_EIO, "store migration: %s: %s", what, sqlite3_errmsg(s->db));
}

int store_sqlite_schema_version(m2p_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return fail(s, "reading schema_version");
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v < 0 ? fail(s, "reading schema_version") : v;
}

static int rollback(m2p_store *s, int rc)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_sqlite_migrate(m2p_store *s)
{
    int n;
    const store_migration *m = store_migrations(STORE_SQLITE, &n);
    /* IMMEDIATE takes the write lock now: a second process waits (busy timeout), then sees the
     * version the first one wrote and has nothing left to do. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, "begin");
    if (sqlite3_exec(s->db,
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK)
        return rollback(s, fail(s, "creating schema_version"));
    int have = store_sqlite_schema_version(s);
    int rc = store_schema_check(have, n);
    if (rc)
        return rollback(s, rc);
    for (int v = have + 1; v <= n; v++) {
        const store_migration *e = &m[v - 1];
        char *err = NULL;
        if (sqlite3_exec(s->db, e->sql, NULL, NULL, &err) != SQLITE_OK) {
            m2p_error(M2P_EIO, "store migration %d (%s): %s", v, e->name, err ? err : "?");
            sqlite3_free(err);
            return rollback(s, M2P_EIO);
        }
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO schema_version (version, name, applied_ms) VALUES "
                               "(?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK)
            return rollback(s, fail(s, "recording version"));
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_text(st, 2, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, store_now_ms());
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rollback(s, fail(s, "recording version"));
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return rollback(s, fail(s, "commit"));
    return 0;
}

int store_sqlite_cache_get(m2p_store *s, const char *ns, const char *key, char **value)
{
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT value FROM cache WHERE ns = ?1 AND key = ?2 AND"
                           " (expires_ms = 0 OR expires_ms > ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        return m2p_error(M2P_EIO, "store cache get: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, store_now_ms());
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        char *copy = malloc((size_t)len + 1);
        if (!copy) {
            rc = m2p_error(M2P_ENOMEM, "store cache get: out of memory");
        } else {
            if (len)
                memcpy(copy, v, (size_t)len);
            copy[len] = '\0';
            *value = copy;
        }
    } else if (sr == SQLITE_DONE) {
        rc = m2p_error(M2P_ENOTFOUND, "store cache: no entry %s/%s", ns, key);
    } else {
        rc = m2p_error(M2P_EIO, "store cache get: %s", sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(st);
    return rc;
}

int store_sqlite_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                           int64_t ttl_s)
{
    int64_t now = store_now_ms(), expires = store_expires_ms(now, ttl_s);
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO cache (ns, key, value, created_ms, expires_ms)"
                           " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (ns, key) DO UPDATE SET"
                           " value = excluded.value, created_ms = excluded.created_ms,"
                           " expires_ms = excluded.expires_ms",
                           -1, &st, NULL) != SQLITE_OK)
        return m2p_error(M2P_EIO, "store cache put: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, expires);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = m2p_error(M2P_EIO, "store cache put %s/%s: %s", ns, key, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    if (rc)
        return rc;
    /* Expired rows are dropped lazily by writers, so the table does not grow without bound. */
    if (sqlite3_prepare_v2(s->db, "DELETE FROM cache WHERE expires_ms > 0 AND expires_ms <= ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return m2p_error(M2P_EIO, "store cache expire: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = m2p_error(M2P_EIO, "store cache expire: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
}

int store_sqlite_exec(m2p_store *s, const char *sql)
{
    char *err = NULL;
    int rc = 0;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
        rc = m2p_error(M2P_EIO, "store: %s", err ? err : sqlite3_errmsg(s->db));
    sqlite3_free(err);
    return rc;
}

int store_sqlite_scalar(m2p_store *s, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return m2p_error(M2P_EIO, "store: %s", sqlite3_errmsg(s->db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    int out = rc == SQLITE_ROW    ? 0
              : rc == SQLITE_DONE ? m2p_error(M2P_ENOTFOUND, "store: the query found no row")
                                  : m2p_error(M2P_EIO, "store: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return out;
}
