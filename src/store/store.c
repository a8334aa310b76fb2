/*
 * store.c — the SQLite store: open data_dir/mus2pic.db, run the migrations, and the shared
 * namespaced key/value cache with expiry.
 *
 * The connection is opened in serialised mode (SQLITE_OPEN_FULLMUTEX), so one handle may be
 * used by many threads; WAL mode plus a busy timeout lets several processes (CLI, server,
 * workers) share the file. Each operation holds the connection's mutex for its whole length so
 * that the error message it reports is its own.
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "store/migrations.h"

#define STORE_BUSY_TIMEOUT_MS 15000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

int m2p_store_open(const char *data_dir, m2p_store **out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "store: out is NULL");
    *out = NULL;
    if (!data_dir || !*data_dir)
        return m2p_error(M2P_EINVAL, "store: data folder is empty");
    int rc = mkdir_p(data_dir);
    if (rc)
        return rc;
    m2p_store *s = calloc(1, sizeof *s);
    size_t n = strlen(data_dir) + sizeof "/mus2pic.db";
    char *file = malloc(n);
    if (!s || !file || !(s->dir = strdup(data_dir))) {
        free(file);
        if (s)
            free(s->dir);
        free(s);
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    }
    snprintf(file, n, "%s/mus2pic.db", data_dir);
    int sr = sqlite3_open_v2(
        file, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (sr != SQLITE_OK) {
        rc = m2p_error(M2P_EIO, "store: cannot open %s: %s", file,
                       s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sr));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    /* journal_mode=WAL answers with the mode now in effect; anything else means the file
     * system cannot do WAL (e.g. some network mounts), which we report rather than run
     * silently with a rollback journal and writers blocking readers. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = m2p_error(M2P_EIO, "store: %s: cannot set WAL mode: %s", file, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        goto fail;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    int wal = mode && !strcmp((const char *)mode, "wal");
    sqlite3_finalize(st);
    if (!wal) {
        rc = m2p_error(M2P_EIO, "store: %s: the file system does not support WAL mode", file);
        goto fail;
    }
    if (sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", NULL, NULL,
                     NULL) != SQLITE_OK) {
        rc = m2p_error(M2P_EIO, "store: %s: %s", file, sqlite3_errmsg(s->db));
        goto fail;
    }
    rc = store_migrate(s->db);
    if (rc) {
        m2p_error_wrap(rc, "store %s", file);
        goto fail;
    }
    free(file);
    *out = s;
    return 0;
fail:
    free(file);
    m2p_store_close(s);
    return rc;
}

void m2p_store_close(m2p_store *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->dir);
    free(s);
}

static int check_args(m2p_store *s, const char *ns, const char *key)
{
    if (!s || !s->db)
        return m2p_error(M2P_EINVAL, "store: no store");
    if (!ns || !*ns || !key)
        return m2p_error(M2P_EINVAL, "store cache: namespace and key are required");
    return 0;
}

int store_cache_get(m2p_store *s, const char *ns, const char *key, char **value)
{
    if (value)
        *value = NULL;
    int rc = check_args(s, ns, key);
    if (rc)
        return rc;
    if (!value)
        return m2p_error(M2P_EINVAL, "store cache: value is NULL");
    sqlite3_mutex *mu = sqlite3_db_mutex(s->db);
    sqlite3_mutex_enter(mu);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT value FROM cache WHERE ns = ?1 AND key = ?2 AND"
                           " (expires_ms = 0 OR expires_ms > ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = m2p_error(M2P_EIO, "store cache get: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms());
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        char *copy = malloc((size_t)len + 1);
        if (!copy) {
            rc = m2p_error(M2P_ENOMEM, "store cache get: out of memory");
            goto out;
        }
        if (len)
            memcpy(copy, v, (size_t)len);
        copy[len] = '\0';
        *value = copy;
    } else if (sr == SQLITE_DONE) {
        rc = m2p_error(M2P_ENOTFOUND, "store cache: no entry %s/%s", ns, key);
    } else {
        rc = m2p_error(M2P_EIO, "store cache get: %s", sqlite3_errmsg(s->db));
    }
out:
    sqlite3_finalize(st);
    sqlite3_mutex_leave(mu);
    return rc;
}

int store_cache_put(m2p_store *s, const char *ns, const char *key, const char *value, int64_t ttl_s)
{
    int rc = check_args(s, ns, key);
    if (rc)
        return rc;
    if (!value)
        return m2p_error(M2P_EINVAL, "store cache put: value is NULL");
    if (ttl_s < 0)
        return m2p_error(M2P_EINVAL, "store cache put: ttl %lld s is negative", (long long)ttl_s);
    int64_t now = now_ms();
    int64_t expires = 0;
    if (ttl_s > 0)
        expires = ttl_s > (INT64_MAX - now) / 1000 ? 0 : now + ttl_s * 1000;
    sqlite3_mutex *mu = sqlite3_db_mutex(s->db);
    sqlite3_mutex_enter(mu);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO cache (ns, key, value, created_ms, expires_ms)"
                           " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (ns, key) DO UPDATE SET"
                           " value = excluded.value, created_ms = excluded.created_ms,"
                           " expires_ms = excluded.expires_ms",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = m2p_error(M2P_EIO, "store cache put: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, expires);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = m2p_error(M2P_EIO, "store cache put %s/%s: %s", ns, key, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    st = NULL;
    if (rc)
        goto out;
    /* Expired rows are dropped lazily by writers, so the table does not grow without bound. */
    if (sqlite3_prepare_v2(s->db, "DELETE FROM cache WHERE expires_ms > 0 AND expires_ms <= ?1", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = m2p_error(M2P_EIO, "store cache expire: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = m2p_error(M2P_EIO, "store cache expire: %s", sqlite3_errmsg(s->db));
out:
    sqlite3_finalize(st);
    sqlite3_mutex_leave(mu);
    return rc;
}

int store_exec(m2p_store *s, const char *sql)
{
    if (!s || !s->db || !sql)
        return m2p_error(M2P_EINVAL, "store exec: no store or no SQL");
    sqlite3_mutex *mu = sqlite3_db_mutex(s->db);
    sqlite3_mutex_enter(mu);
    char *err = NULL;
    int rc = 0;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
        rc = m2p_error(M2P_EIO, "store: %s", err ? err : sqlite3_errmsg(s->db));
    sqlite3_free(err);
    sqlite3_mutex_leave(mu);
    return rc;
}
