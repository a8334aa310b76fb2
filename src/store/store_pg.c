/*
 * store_pg.c — the PostgreSQL backend's connection (libpq): connect from a postgresql:// URI,
 * reconnect with backoff after the server went away, run statements with parameters, apply the
 * migrations under an advisory lock, the namespaced cache, progress events for other nodes
 * (a row in events plus NOTIFY m2p_events) and shared audio files (uploads, downloads) in
 * 1 MiB chunk rows. The job operations are in jobs_pg.c.
 *
 * Reconnecting: a call that finds the connection broken returns M2P_EBUSY ("the database at ...
 * is unreachable") at once while a retry is not due, else tries PQreset; the wait doubles from
 * 100 ms to 5 s. Nothing is retried behind the caller's back: a statement whose connection broke
 * may or may not have committed, and only the caller knows how to check (jobs read the row back).
 * References: libpq "Connection Control Functions", "Command Execution Functions",
 * "Asynchronous Notification"; PostgreSQL "Advisory Locks".
 */
#define _GNU_SOURCE
#include "store/pg_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "store/migrations.h"

/* pg_advisory_xact_lock key for migrations: "m2pmigr" as digits, any fixed number works. */
#define PG_MIGRATION_LOCK 7236501
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
#define PG_CONNECT_TIMEOUT_S "5"

void pgp_i64(pgp *p, int64_t x)
{
    snprintf(p->buf[p->n], sizeof p->buf[p->n], "%lld", (long long)x);
    p->v[p->n] = p->buf[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

void pgp_str(pgp *p, const char *x)
{
    p->v[p->n] = x;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

void pgp_bin(pgp *p, const void *data, size_t n)
{
    p->v[p->n] = data;
    p->len[p->n] = (int)n;
    p->fmt[p->n] = 1;
    p->n++;
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *pg_strdup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

/* The URL without its password (postgresql://user:secret@host -> postgresql://user:***@host). */
static char *redact(const char *url)
{
    char *c = strdup(url);
    if (!c)
        return NULL;
    char *scheme = strstr(c, "://");
    char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (at && colon && colon < at) {
        memmove(colon + 4, at, strlen(at) + 1);
        memcpy(colon, ":***", 4);
    }
    char *pw = strstr(c, "password=");
    if (pw) {
        char *end = strchr(pw, '&');
        size_t rest = end ? strlen(end) + 1 : 1;
        memmove(pw + 12, end ? end : pw + strlen(pw), rest);
        memcpy(pw + 9, "***", 3);
    }
    return c;
}

static int unreachable(m2p_store *s, const char *what)
{
    return m2p_error(M2P_EBUSY,
                     "store: %s: the database at %s is unreachable (%s); retry in a moment", what,
                     s->where, s->pg ? PQerrorMessage(s->pg) : "no connection");
}

/* Make sure the connection is up: reconnect when due, else say it is down. */
static int pg_ready(m2p_store *s, const char *what)
{
    if (PQstatus(s->pg) == CONNECTION_OK)
        return 0;
    int64_t now = store_now_ms();
    if (now < s->next_retry_ms)
        return unreachable(s, what);
    PQreset(s->pg);
    if (PQstatus(s->pg) == CONNECTION_OK) {
        M2P_LOGW("store: reconnected to %s", s->where);
        s->backoff_ms = 0;
        return 0;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
    if (s->backoff_ms > PG_BACKOFF_MAX_MS)
        s->backoff_ms = PG_BACKOFF_MAX_MS;
    s->next_retry_ms = now + s->backoff_ms;
    M2P_LOGW("store: cannot reach %s; next try in %d ms", s->where, s->backoff_ms);
    return unreachable(s, what);
}

int pg_run(m2p_store *s, const char *sql, const pgp *p, int binary, PGresult **res,
           const char *what)
{
    *res = NULL;
    int rc = pg_ready(s, what);
    if (rc)
        return rc;
    PGresult *r = PQexecParams(s->pg, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, binary);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *res = r;
        return 0;
    }
    if (PQstatus(s->pg) != CONNECTION_OK) {
        PQclear(r);
        s->next_retry_ms = 0; /* try at once on the next call, then back off */
        M2P_LOGW("store: lost the connection to %s during %s", s->where, what);
        return unreachable(s, what);
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* 57P01 admin shutdown etc.: the server is going away under us. */
    int busy = state && (!strncmp(state, "57P", 3) || !strncmp(state, "08", 2));
    rc = m2p_error(busy ? M2P_EBUSY : M2P_EIO, "store: %s: %s", what,
                   r ? PQresultErrorMessage(r) : PQerrorMessage(s->pg));
    PQclear(r);
    return rc;
}

int pg_cmd(m2p_store *s, const char *sql, const pgp *p, int *changes, const char *what)
{
    PGresult *r = NULL;
    int rc = pg_run(s, sql, p, 0, &r, what);
    if (rc)
        return rc;
    if (changes)
        *changes = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

int pg_begin(m2p_store *s)
{
    return pg_cmd(s, "BEGIN", NULL, NULL, "begin");
}

int pg_commit(m2p_store *s)
{
    int rc = pg_cmd(s, "COMMIT", NULL, NULL, "commit");
    return rc ? pg_rollback(s, rc) : 0;
}

int pg_rollback(m2p_store *s, int rc)
{
    if (PQstatus(s->pg) == CONNECTION_OK)
        PQclear(PQexec(s->pg, "ROLLBACK"));
    return rc;
}

/* Connect with a 5 s connect_timeout unless the URL sets one: a reconnect (PQreset) happens
 * under the store's lock, so a host that does not answer must not hold every request for the
 * kernel's TCP timeout (minutes); they get 503 instead. */
static PGconn *pg_connect(const char *url)
{
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {PG_CONNECT_TIMEOUT_S, url, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation already exists, skipping" and the like */
}

int store_pg_open(m2p_store *s, const char *url)
{
    if (!(s->where = redact(url)))
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    s->be = &store_pg_backend;
    s->pg = pg_connect(url);
    if (!s->pg)
        return m2p_error(M2P_ENOMEM, "store: out of memory connecting to %s", s->where);
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(s->pg));
        msg[strcspn(msg, "\n")] = 0;
        return m2p_error(M2P_EBUSY,
                         "store: cannot connect to %s: %s; check that PostgreSQL runs there and "
                         "the URL (postgresql://user@host:port/db or "
                         "postgresql:///db?host=/socket/dir&port=5432)",
                         s->where, msg);
    }
    PQsetNoticeProcessor(s->pg, quiet_notice, NULL);
    int rc = store_pg_migrate(s);
    return rc ? m2p_error_wrap(rc, "store %s", s->where) : 0;
}

void store_pg_close(m2p_store *s)
{
    if (s->pg)
        PQfinish(s->pg);
    s->pg = NULL;
}

int store_pg_exec(m2p_store *s, const char *sql)
{
    int rc = pg_ready(s, "exec");
    if (rc)
        return rc;
    /* PQexec runs several ;-separated statements (no parameters), like sqlite3_exec. */
    PGresult *r = PQexec(s->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = m2p_error(PQstatus(s->pg) == CONNECTION_OK ? M2P_EIO : M2P_EBUSY, "store: %s",
                       PQerrorMessage(s->pg));
    PQclear(r);
    return rc;
}

int store_pg_scalar(m2p_store *s, const char *sql, int64_t *v)
{
    PGresult *r = NULL;
    int rc = pg_run(s, sql, NULL, 0, &r, "query");
    if (rc)
        return rc;
    if (PQntuples(r) < 1 || PQnfields(r) < 1)
        rc = m2p_error(M2P_ENOTFOUND, "store: the query found no row");
    else
        *v = pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int store_pg_schema_version(m2p_store *s)
{
    int64_t v = 0;
    int rc = store_pg_scalar(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &v);
    return rc ? rc : (int)v;
}

int store_pg_migrate(m2p_store *s)
{
    int n;
    const store_migration *m = store_migrations(STORE_POSTGRESQL, &n);
    int rc = pg_begin(s);
    if (rc)
        return rc;
    /* The transaction-level advisory lock makes a second node wait here until the first one
     * committed; it then reads the new version and has nothing left to do. */
    pgp p = {0};
    pgp_i64(&p, PG_MIGRATION_LOCK);
    if ((rc = pg_cmd(s, "SELECT pg_advisory_xact_lock($1::bigint)", &p, NULL, "migration lock")) ||
        (rc = pg_cmd(s,
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
                     NULL, NULL, "creating schema_version")))
        return pg_rollback(s, rc);
    int have = store_pg_schema_version(s);
    if ((rc = store_schema_check(have, n)))
        return pg_rollback(s, rc);
    for (int v = have + 1; v <= n; v++) {
        PGresult *r = PQexec(s->pg, m[v - 1].sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = m2p_error(M2P_EIO, "store migration %d (%s): %s", v, m[v - 1].name,
                           PQerrorMessage(s->pg));
            PQclear(r);
            return pg_rollback(s, rc);
        }
        PQclear(r);
        pgp q = {0};
        pgp_i64(&q, v);
        pgp_str(&q, m[v - 1].name);
        pgp_i64(&q, store_now_ms());
        if ((rc = pg_cmd(s, "INSERT INTO schema_version VALUES ($1, $2, $3)", &q, NULL,
                         "recording version")))
            return pg_rollback(s, rc);
    }
    return pg_commit(s);
}

int store_pg_cache_get(m2p_store *s, const char *ns, const char *key, char **value)
{
    pgp p = {0};
    pgp_str(&p, ns);
    pgp_str(&p, key);
    pgp_i64(&p, store_now_ms());
    PGresult *r = NULL;
    int rc = pg_run(s,
                    "SELECT value FROM cache WHERE ns = $1 AND key = $2 AND"
                    " (expires_ms = 0 OR expires_ms > $3)",
                    &p, 0, &r, "cache get");
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = m2p_error(M2P_ENOTFOUND, "store cache: no entry %s/%s", ns, key);
    else if (!(*value = pg_strdup(r, 0, 0)))
        rc = m2p_error(M2P_ENOMEM, "store cache get: out of memory");
    PQclear(r);
    return rc;
}

int store_pg_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                       int64_t ttl_s)
{
    int64_t now = store_now_ms(), expires = store_expires_ms(now, ttl_s);
    pgp p = {0};
    pgp_str(&p, ns);
    pgp_str(&p, key);
    pgp_str(&p, value);
    pgp_i64(&p, now);
    pgp_i64(&p, expires);
    int rc = pg_cmd(s,
                    "INSERT INTO cache (ns, key, value, created_ms, expires_ms) VALUES"
                    " ($1, $2, $3, $4, $5) ON CONFLICT (ns, key) DO UPDATE SET value ="
                    " excluded.value, created_ms = excluded.created_ms, expires_ms ="
                    " excluded.expires_ms",
                    &p, NULL, "cache put");
    if (rc)
        return rc;
    /* Expired rows are dropped lazily by writers, so the table does not grow without bound. */
    pgp q = {0};
    pgp_i64(&q, now);
    return pg_cmd(s, "DELETE FROM cache WHERE expires_ms > 0 AND expires_ms <= $1", &q, NULL,
                  "cache expire");
}

/* Events older than this are dropped by writers: a subscriber that joins later reads the job's
 * state from the jobs table instead. */
#define PG_EVENT_KEEP_MS (10 * 60 * 1000)

int store_pg_event_put(m2p_store *s, int64_t job, const char *event, int64_t *id)
{
    pgp p = {0};
    pgp_i64(&p, job);
    pgp_str(&p, event);
    pgp_i64(&p, store_now_ms());
    PGresult *r = NULL;
    /* One statement: the row and its announcement commit together. */
    int rc = pg_run(s,
                    "WITH e AS (INSERT INTO events (job_id, event, created_ms) VALUES"
                    " ($1, $2, $3) RETURNING id, job_id) SELECT id, pg_notify('m2p_events',"
                    " job_id::text || ':' || id::text) FROM e",
                    &p, 0, &r, "publishing an event");
    if (rc)
        return rc;
    *id = PQntuples(r) ? pg_i64(r, 0, 0) : 0;
    PQclear(r);
    if (*id % 500 == 0) {
        pgp q = {0};
        pgp_i64(&q, store_now_ms() - PG_EVENT_KEEP_MS);
        pg_cmd(s, "DELETE FROM events WHERE created_ms < $1", &q, NULL, "dropping old events");
    }
    return 0;
}

/* Shared audio files (store.h): chunk rows under one audio_files row, written in one
 * transaction so that a reader sees all of a file or none of it. */
int store_pg_audio_put(m2p_store *s, const char *key, const char *path, int64_t max_bytes,
                       int64_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return m2p_error(M2P_EIO, "store audio: cannot read %s: %s", path, strerror(errno));
    uint8_t *buf = malloc(STORE_AUDIO_CHUNK);
    if (!buf) {
        fclose(f);
        return m2p_error(M2P_ENOMEM, "store audio: out of memory");
    }
    int rc = pg_begin(s);
    if (rc) {
        free(buf);
        fclose(f);
        return rc;
    }
    pgp p = {0};
    pgp_str(&p, key);
    if (!(rc = pg_cmd(s, "DELETE FROM audio_chunks WHERE key = $1", &p, NULL, "storing audio")))
        rc = pg_cmd(s, "DELETE FROM audio_files WHERE key = $1", &p, NULL, "storing audio");
    int64_t total = 0;
    int seq = 0;
    while (!rc) {
        size_t n = fread(buf, 1, STORE_AUDIO_CHUNK, f);
        if (n == 0) {
            if (ferror(f))
                rc = m2p_error(M2P_EIO, "store audio: cannot read %s", path);
            break;
        }
        total += (int64_t)n;
        if (max_bytes > 0 && total > max_bytes) {
            rc = m2p_error(M2P_ETOOBIG, "store audio: %s is over the limit of %lld bytes", path,
                           (long long)max_bytes);
            break;
        }
        pgp q = {0};
        pgp_str(&q, key);
        pgp_i64(&q, seq++);
        pgp_bin(&q, buf, n);
        rc = pg_cmd(s, "INSERT INTO audio_chunks (key, seq, data) VALUES ($1, $2, $3)", &q, NULL,
                    "storing audio");
    }
    free(buf);
    fclose(f);
    if (!rc) {
        pgp q = {0};
        pgp_str(&q, key);
        pgp_i64(&q, total);
        pgp_i64(&q, seq);
        pgp_i64(&q, store_now_ms());
        rc = pg_cmd(s,
                    "INSERT INTO audio_files (key, size, chunks, created_ms) VALUES"
                    " ($1, $2, $3, $4)",
                    &q, NULL, "storing audio");
    }
    if (rc)
        return pg_rollback(s, rc);
    if ((rc = pg_commit(s)))
        return rc;
    *size = total;
    return 0;
}

int store_pg_audio_get(m2p_store *s, const char *key, const char *path, int64_t *size)
{
    *size = 0;
    pgp p = {0};
    pgp_str(&p, key);
    PGresult *r = NULL;
    int rc = pg_run(s, "SELECT size, chunks FROM audio_files WHERE key = $1", &p, 0, &r,
                    "reading audio");
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return m2p_error(M2P_ENOTFOUND, "store audio: no file %s in the store", key);
    }
    int64_t want = pg_i64(r, 0, 0), chunks = pg_i64(r, 0, 1);
    PQclear(r);
    size_t n = strlen(path) + sizeof ".part";
    char *part = malloc(n);
    if (!part)
        return m2p_error(M2P_ENOMEM, "store audio: out of memory");
    snprintf(part, n, "%s.part", path);
    FILE *f = fopen(part, "wb");
    if (!f) {
        rc = m2p_error(M2P_EIO, "store audio: cannot write %s: %s", part, strerror(errno));
        free(part);
        return rc;
    }
    int64_t total = 0;
    for (int64_t seq = 0; !rc && seq < chunks; seq++) {
        pgp q = {0};
        pgp_str(&q, key);
        pgp_i64(&q, seq);
        if ((rc = pg_run(s, "SELECT data FROM audio_chunks WHERE key = $1 AND seq = $2", &q, 1, &r,
                         "reading audio")))
            break;
        if (PQntuples(r) == 0) {
            rc = m2p_error(M2P_ENOTFOUND, "store audio: %s lost chunk %lld (deleted meanwhile?)",
                           key, (long long)seq);
        } else {
            size_t len = (size_t)PQgetlength(r, 0, 0);
            if (fwrite(PQgetvalue(r, 0, 0), 1, len, f) != len)
                rc = m2p_error(M2P_EIO, "store audio: cannot write %s: %s", part, strerror(errno));
            total += (int64_t)len;
        }
        PQclear(r);
    }
    if (fclose(f) != 0 && !rc)
        rc = m2p_error(M2P_EIO, "store audio: cannot write %s: %s", part, strerror(errno));
    if (!rc && total != want)
        rc = m2p_error(M2P_EIO, "store audio: %s has %lld bytes, its row says %lld", key,
                       (long long)total, (long long)want);
    if (!rc && rename(part, path) != 0)
        rc = m2p_error(M2P_EIO, "store audio: cannot rename %s: %s", part, strerror(errno));
    if (rc)
        unlink(part);
    free(part);
    if (!rc)
        *size = total;
    return rc;
}

int store_pg_audio_delete(m2p_store *s, const char *key)
{
    int rc = pg_begin(s);
    if (rc)
        return rc;
    pgp p = {0};
    pgp_str(&p, key);
    if ((rc = pg_cmd(s, "DELETE FROM audio_files WHERE key = $1", &p, NULL, "deleting audio")) ||
        (rc = pg_cmd(s, "DELETE FROM audio_chunks WHERE key = $1", &p, NULL, "deleting audio")))
        return pg_rollback(s, rc);
    return pg_commit(s);
}

int store_pg_audio_trim(m2p_store *s, const char *prefix, int64_t max_bytes, int *removed)
{
    int rc = pg_begin(s);
    if (rc)
        return rc;
    pgp p = {0};
    pgp_str(&p, prefix);
    pgp_i64(&p, max_bytes);
    /* newest first; a file goes when it and the newer ones are over the limit */
    const char *victims =
        "SELECT key FROM (SELECT key, SUM(size) OVER (ORDER BY created_ms DESC, key) AS total"
        " FROM audio_files WHERE starts_with(key, $1)) f WHERE total > $2";
    char sql[512];
    snprintf(sql, sizeof sql, "DELETE FROM audio_chunks WHERE key IN (%s)", victims);
    if ((rc = pg_cmd(s, sql, &p, NULL, "trimming shared audio")))
        return pg_rollback(s, rc);
    snprintf(sql, sizeof sql, "DELETE FROM audio_files WHERE key IN (%s)", victims);
    if ((rc = pg_cmd(s, sql, &p, removed, "trimming shared audio")))
        return pg_rollback(s, rc);
    return pg_commit(s);
}

/* store_listener (store.h): its own connection, LISTEN m2p_events. A notification only says
 * "there is more": the listener reads every event after the last one it handed out, so the events
 * written while it was reconnecting are delivered too (the table keeps them for 10 minutes). */
struct store_listener {
    char *url, *where;
    PGconn *c;
    int backoff_ms;
    int64_t last_id;   /* the last event handed out (-1: not yet known) */
    PGresult *pending; /* events read but not yet handed out */
    int next;
};

int store_listener_open(const char *url, store_listener **out)
{
    *out = NULL;
    if (store_url_kind(url) != STORE_POSTGRESQL)
        return m2p_error(M2P_EUNSUPPORTED, "store: only a PostgreSQL store has a listener");
    store_listener *l = calloc(1, sizeof *l);
    if (!l || !(l->url = strdup(url)) || !(l->where = redact(url))) {
        if (l)
            free(l->url);
        free(l);
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    }
    l->last_id = -1;
    *out = l;
    return 0;
}

static void listener_drop(store_listener *l)
{
    if (l->c)
        PQfinish(l->c);
    l->c = NULL;
}

/* Events after last_id into pending (0, or -1 when the connection failed). */
static int listener_fetch(store_listener *l)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)l->last_id);
    const char *v[1] = {ids};
    PGresult *r = PQexecParams(l->c,
                               "SELECT id, job_id, event FROM events WHERE id > $1 ORDER BY id"
                               " LIMIT 1000",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        listener_drop(l);
        return -1;
    }
    PQclear(l->pending);
    l->pending = r;
    l->next = 0;
    return 0;
}

static int listener_connect(store_listener *l)
{
    if (l->c && PQstatus(l->c) == CONNECTION_OK)
        return 0;
    listener_drop(l);
    l->c = pg_connect(l->url);
    if (l->c && PQstatus(l->c) == CONNECTION_OK) {
        PGresult *r = PQexec(l->c, "LISTEN m2p_events");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (ok && l->last_id < 0) { /* first connection: from now on, not the history */
            r = PQexec(l->c, "SELECT COALESCE(MAX(id), 0) FROM events");
            ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
            if (ok)
                l->last_id = pg_i64(r, 0, 0);
            PQclear(r);
        } else if (ok) { /* after an outage: what was written meanwhile */
            ok = listener_fetch(l) == 0;
        }
        if (ok) {
            if (l->backoff_ms)
                M2P_LOGW("store: progress listener reconnected to %s", l->where);
            l->backoff_ms = 0;
            return 0;
        }
    }
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
    if (l->backoff_ms > PG_BACKOFF_MAX_MS)
        l->backoff_ms = PG_BACKOFF_MAX_MS;
    M2P_LOGW("store: progress listener cannot reach %s (%s); next try in %d ms", l->where,
             l->c ? PQerrorMessage(l->c) : "out of memory", l->backoff_ms);
    listener_drop(l);
    return m2p_error(M2P_EBUSY, "store: %s is unreachable", l->where);
}

int store_listener_wait(store_listener *l, int timeout_ms, int64_t *job, char **event)
{
    *job = 0;
    *event = NULL;
    for (int round = 0; round < 3; round++) {
        if (l->pending && l->next < PQntuples(l->pending)) {
            int i = l->next++;
            l->last_id = pg_i64(l->pending, i, 0);
            *job = pg_i64(l->pending, i, 1);
            if (!(*event = strdup(PQgetvalue(l->pending, i, 2))))
                return m2p_error(M2P_ENOMEM, "store: out of memory");
            return 0;
        }
        if (listener_connect(l)) {
            poll(NULL, 0, l->backoff_ms < timeout_ms ? l->backoff_ms : timeout_ms);
            return M2P_EBUSY;
        }
        if (l->pending && l->next < PQntuples(l->pending))
            continue; /* caught up after a reconnect */
        if (!PQconsumeInput(l->c)) {
            listener_drop(l);
            return m2p_error(M2P_EBUSY, "store: lost the progress listener's connection");
        }
        int notified = 0;
        for (PGnotify *n; (n = PQnotifies(l->c)); PQfreemem(n))
            notified = 1;
        if (notified) {
            if (listener_fetch(l))
                return m2p_error(M2P_EBUSY, "store: lost the progress listener's connection");
            continue;
        }
        if (round > 0)
            break;
        struct pollfd pfd = {.fd = PQsocket(l->c), .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return M2P_ETIMEOUT;
    }
    return M2P_ETIMEOUT;
}

void store_listener_close(store_listener *l)
{
    if (!l)
        return;
    listener_drop(l);
    PQclear(l->pending);
    free(l->url);
    free(l->where);
    free(l);
}
