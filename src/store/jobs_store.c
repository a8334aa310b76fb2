/*
 * jobs_store.c — jobs, results and batches in SQLite (see jobs_store.h for the state machine).
 *
 * Each function prepares its statement, runs it and finalizes it: the handle is shared by the
 * HTTP threads and the workers, and SQLite's serialised mode plus the store's busy timeout make
 * that safe. Multi-statement changes (claim, finish with results) run in IMMEDIATE transactions
 * so a concurrent writer waits instead of failing half way. Times are Unix milliseconds.
 */
#include "store/jobs_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

/* One SQLite connection is shared by the HTTP threads and the workers, and a transaction belongs
 * to the connection, not the thread: without this lock another thread's statement could land
 * inside our BEGIN ... COMMIT (or its BEGIN fail). Other modules use their own m2p_store handle. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int db_fail(m2p_store *s, const char *what)
{
    return m2p_error(M2P_EIO, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

const char *store_job_kind_name(int kind)
{
    return kind == STORE_JOB_GENERATE ? "generate" : "analyze";
}

void store_job_clear(store_job *j)
{
    if (!j)
        return;
    free(j->params);
    free(j->result);
    free(j->error);
    memset(j, 0, sizeof *j);
}

#define JOB_COLUMNS                                                                                \
    "id, kind, state, params, result, error, attempts, batch_id, batch_index, parent_id,"          \
    " created_ms, started_ms, finished_ms"

static void job_from_row(sqlite3_stmt *st, store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->kind = sqlite3_column_int(st, 1);
    const unsigned char *state = sqlite3_column_text(st, 2);
    snprintf(j->state, sizeof j->state, "%s", state ? (const char *)state : "");
    j->params = col_text(st, 3);
    j->result = col_text(st, 4);
    j->error = col_text(st, 5);
    j->attempts = sqlite3_column_int(st, 6);
    j->batch_id = sqlite3_column_int64(st, 7);
    j->batch_index = sqlite3_column_int(st, 8);
    j->parent_id = sqlite3_column_int64(st, 9);
    j->created_ms = sqlite3_column_int64(st, 10);
    j->started_ms = sqlite3_column_int64(st, 11);
    j->finished_ms = sqlite3_column_int64(st, 12);
}

static int begin(m2p_store *s)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, "begin");
    return 0;
}

static int rollback(m2p_store *s, int rc)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int commit(m2p_store *s)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "commit"));
    return 0;
}

static int store_job_create_locked(m2p_store *s, int kind, const char *params, int64_t batch_id,
                                   int batch_index, int64_t parent_id, int max_queued, int64_t *id)
{
    int rc = begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (max_queued > 0) {
        if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'", -1, &st,
                               NULL) != SQLITE_OK)
            return rollback(s, db_fail(s, "counting queued jobs"));
        int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (n >= max_queued)
            return rollback(s, m2p_error(M2P_EBUSY,
                                         "the queue is full (%d jobs waiting); try "
                                         "again later",
                                         max_queued));
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO jobs (kind, state, params, batch_id, batch_index,"
                           " parent_id, created_ms) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "inserting a job"));
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_text(st, 2, params, -1, SQLITE_TRANSIENT);
    if (batch_id > 0)
        sqlite3_bind_int64(st, 3, batch_id);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, batch_index);
    if (parent_id > 0)
        sqlite3_bind_int64(st, 5, parent_id);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_fail(s, "inserting a job"));
    *id = sqlite3_last_insert_rowid(s->db);
    return commit(s);
}

static int store_job_get_locked(m2p_store *s, int64_t id, store_job *out);

static int store_job_claim_locked(m2p_store *s, int kind, store_job *out)
{
    int rc = begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id FROM jobs WHERE state = 'queued' AND kind = ? ORDER BY id"
                           " LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "claiming a job"));
    sqlite3_bind_int(st, 1, kind);
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (!id) {
        rollback(s, 0);
        return M2P_ENOTFOUND;
    }
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                           " started_ms = ? WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "claiming a job"));
    sqlite3_bind_int64(st, 1, now_ms());
    sqlite3_bind_int64(st, 2, id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_fail(s, "claiming a job"));
    if ((rc = commit(s)))
        return rc;
    return store_job_get_locked(s, id, out);
}

static int store_job_get_locked(m2p_store *s, int64_t id, store_job *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(s, "reading a job");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job_from_row(st, out);
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return m2p_error(M2P_ENOTFOUND, "job %lld does not exist", (long long)id);
    return db_fail(s, "reading a job");
}

static int finish_stmt(m2p_store *s, int64_t id, const char *result)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state = 'done', result = ?, error = NULL,"
                           " finished_ms = ? WHERE id = ? AND state = 'running'",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "finishing a job");
    sqlite3_bind_text(st, 1, result, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_ms());
    sqlite3_bind_int64(st, 3, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, "finishing a job");
    if (sqlite3_changes(s->db) != 1)
        return m2p_error(M2P_ENOTFOUND, "job %lld is no longer running", (long long)id);
    return 0;
}

static int store_job_finish_locked(m2p_store *s, int64_t id, const char *result)
{
    return finish_stmt(s, id, result);
}

static int store_job_fail_locked(m2p_store *s, int64_t id, const char *error, int canceled)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state = ?, error = ?, finished_ms = ?"
                           " WHERE id = ? AND state IN ('queued', 'running')",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "failing a job");
    sqlite3_bind_text(st, 1, canceled ? "canceled" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, error ? error : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now_ms());
    sqlite3_bind_int64(st, 4, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, "failing a job");
    if (sqlite3_changes(s->db) != 1)
        return m2p_error(M2P_ENOTFOUND, "job %lld is not queued or running", (long long)id);
    return 0;
}

static int exec_id(m2p_store *s, const char *sql, int64_t id, const char *what)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, what);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(s, what);
}

static int store_job_delete_locked(m2p_store *s, int64_t id)
{
    int rc = begin(s);
    if (rc)
        return rc;
    if ((rc = exec_id(s, "DELETE FROM results WHERE job_id = ?", id, "deleting results")))
        return rollback(s, rc);
    if ((rc = exec_id(s, "DELETE FROM jobs WHERE id = ?", id, "deleting a job")))
        return rollback(s, rc);
    if (sqlite3_changes(s->db) != 1)
        return rollback(s, m2p_error(M2P_ENOTFOUND, "job %lld does not exist", (long long)id));
    return commit(s);
}

static int store_job_count_locked(m2p_store *s, const char *state, int kind, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT COUNT(*) FROM jobs WHERE (?1 IS NULL OR state = ?1)"
                           " AND (?2 < 0 OR kind = ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "counting jobs");
    if (state)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int(st, 2, kind);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(s, "counting jobs");
}

static int store_jobs_recover_locked(m2p_store *s, int max_attempts, int *requeued, int *failed)
{
    int rc = begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state = 'queued' WHERE state = 'running'"
                           " AND attempts < ?",
                           -1, &st, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "recovering jobs"));
    sqlite3_bind_int(st, 1, max_attempts);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_fail(s, "recovering jobs"));
    int nq = sqlite3_changes(s->db);
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state = 'failed', finished_ms = ?, error ="
                           " printf('the server stopped while this job was running (%d attempts);"
                           " it was not retried again', attempts) WHERE state = 'running'",
                           -1, &st, NULL) != SQLITE_OK)
        return rollback(s, db_fail(s, "recovering jobs"));
    sqlite3_bind_int64(st, 1, now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_fail(s, "recovering jobs"));
    int nf = sqlite3_changes(s->db);
    if ((rc = commit(s)))
        return rc;
    if (requeued)
        *requeued = nq;
    if (failed)
        *failed = nf;
    return 0;
}

/* Rows of a prepared statement -> jobs (st finalized). */
static int jobs_from_stmt(m2p_store *s, sqlite3_stmt *st, store_job **out, int *n)
{
    int cap = 0, rc;
    store_job *v = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            store_job *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                for (int i = 0; i < *n; i++)
                    store_job_clear(&v[i]);
                free(v);
                sqlite3_finalize(st);
                *n = 0;
                return m2p_error(M2P_ENOMEM, "store: out of memory reading jobs");
            }
            v = nv;
        }
        job_from_row(st, &v[(*n)++]);
    }
    sqlite3_finalize(st);
    *out = v;
    return rc == SQLITE_DONE ? 0 : db_fail(s, "reading jobs");
}

static int store_jobs_of_batch_locked(m2p_store *s, int64_t batch_id, store_job **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE batch_id = ?"
                           " ORDER BY batch_index, id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "reading a batch");
    sqlite3_bind_int64(st, 1, batch_id);
    return jobs_from_stmt(s, st, out, n);
}

static int store_jobs_in_state_locked(m2p_store *s, const char *state, store_job **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT " JOB_COLUMNS " FROM jobs WHERE state = ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "listing jobs");
    sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    return jobs_from_stmt(s, st, out, n);
}

static int store_last_generation_locked(m2p_store *s, const char *model, store_job *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE kind = ? AND state = 'done'"
                           " AND json_extract(params, '$.model') = ? ORDER BY finished_ms DESC,"
                           " id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "reading the last generation");
    sqlite3_bind_int(st, 1, STORE_JOB_GENERATE);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_TRANSIENT);
    store_job *v = NULL;
    int n = 0, rc = jobs_from_stmt(s, st, &v, &n);
    if (!rc && n == 0)
        rc = m2p_error(M2P_ENOTFOUND, "no generation with model %s has finished", model);
    if (!rc)
        *out = v[0];
    free(v);
    return rc;
}

static int store_job_finish_with_results_locked(
    m2p_store *s, int64_t job_id, const char *meta, const store_result *r, int n,
    char *(*make_result)(const int64_t *ids, int n, void *ud), void *ud)
{
    int64_t ids[16];
    if (n < 0 || n > 16)
        return m2p_error(M2P_EINVAL, "store: %d results (at most 16)", n);
    int rc = begin(s);
    if (rc)
        return rc;
    int64_t t = now_ms();
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO results (job_id, variation, seed, width, height,"
                               " seconds, png, meta, created_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK)
            return rollback(s, db_fail(s, "storing a result"));
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int(st, 2, r[i].variation);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r[i].seed);
        sqlite3_bind_int(st, 4, r[i].width);
        sqlite3_bind_int(st, 5, r[i].height);
        sqlite3_bind_double(st, 6, r[i].seconds);
        sqlite3_bind_blob(st, 7, r[i].png, (int)r[i].png_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, meta ? meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, t);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rollback(s, db_fail(s, "storing a result"));
        ids[i] = sqlite3_last_insert_rowid(s->db);
    }
    char *result = make_result(ids, n, ud);
    if (!result)
        return rollback(s, m2p_error(M2P_ENOMEM, "store: out of memory building a result"));
    rc = finish_stmt(s, job_id, result);
    free(result);
    if (rc)
        return rollback(s, rc);
    return commit(s);
}

static int store_result_png_locked(m2p_store *s, int64_t id, uint8_t **png, size_t *len)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT png FROM results WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(s, "reading an image");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE
                   ? m2p_error(M2P_ENOTFOUND, "image %lld does not exist", (long long)id)
                   : db_fail(s, "reading an image");
    }
    int n = sqlite3_column_bytes(st, 0);
    const void *b = sqlite3_column_blob(st, 0);
    *png = malloc(n > 0 ? (size_t)n : 1);
    if (!*png) {
        sqlite3_finalize(st);
        return m2p_error(M2P_ENOMEM, "store: out of memory reading an image");
    }
    if (n > 0)
        memcpy(*png, b, (size_t)n);
    *len = (size_t)n;
    sqlite3_finalize(st);
    return 0;
}

static int store_result_delete_locked(m2p_store *s, int64_t id)
{
    int rc = exec_id(s, "DELETE FROM results WHERE id = ?", id, "deleting an image");
    if (rc)
        return rc;
    if (sqlite3_changes(s->db) != 1)
        return m2p_error(M2P_ENOTFOUND, "image %lld does not exist", (long long)id);
    return 0;
}

/* Appends s to a growing buffer; returns 0 or -1 on allocation failure. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int sb_str(sbuf *b, const char *s)
{
    return sb_add(b, s, strlen(s));
}

static int store_gallery_locked(m2p_store *s, int offset, int limit, char **json, int64_t *total)
{
    *json = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM results", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "reading the gallery");
    *total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    /* meta is JSON written by this program (validated on the way in), so it is spliced in. */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, job_id, variation, seed, width, height, seconds,"
                           " created_ms, meta FROM results ORDER BY id DESC LIMIT ? OFFSET ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "reading the gallery");
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    sbuf b = {0};
    int rc, first = 1, bad = sb_str(&b, "[");
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char head[512];
        long long id = sqlite3_column_int64(st, 0);
        snprintf(head, sizeof head,
                 "%s{\"id\":%lld,\"job_id\":%lld,\"variation\":%d,\"seed\":%llu,\"width\":%d,"
                 "\"height\":%d,\"seconds\":%.3f,\"created_ms\":%lld,"
                 "\"url\":\"/api/images/%lld.png\",\"meta\":",
                 first ? "" : ",", id, (long long)sqlite3_column_int64(st, 1),
                 sqlite3_column_int(st, 2), (unsigned long long)sqlite3_column_int64(st, 3),
                 sqlite3_column_int(st, 4), sqlite3_column_int(st, 5), sqlite3_column_double(st, 6),
                 (long long)sqlite3_column_int64(st, 7), id);
        const char *meta = (const char *)sqlite3_column_text(st, 8);
        bad = sb_str(&b, head) || sb_str(&b, meta && *meta ? meta : "{}") || sb_str(&b, "}");
        first = 0;
    }
    sqlite3_finalize(st);
    if (bad || sb_str(&b, "]")) {
        free(b.p);
        return m2p_error(M2P_ENOMEM, "store: out of memory building the gallery");
    }
    *json = b.p;
    return 0;
}

static int ids_query(m2p_store *s, const char *sql, int64_t a, int use_b, int b, int c,
                     int64_t **ids, int *n, const char *what)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, what);
    if (use_b) {
        sqlite3_bind_int(st, 1, b);
        sqlite3_bind_int(st, 2, c);
    } else {
        sqlite3_bind_int64(st, 1, a);
    }
    int cap = 0, rc;
    int64_t *v = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(v);
                sqlite3_finalize(st);
                *n = 0;
                return m2p_error(M2P_ENOMEM, "store: out of memory (%s)", what);
            }
            v = nv;
        }
        v[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    *ids = v;
    return rc == SQLITE_DONE ? 0 : db_fail(s, what);
}

static int store_results_of_job_locked(m2p_store *s, int64_t job_id, int64_t **ids, int *n)
{
    return ids_query(s, "SELECT id FROM results WHERE job_id = ? ORDER BY variation, id", job_id, 0,
                     0, 0, ids, n, "reading a job's images");
}

static int store_batch_create_locked(m2p_store *s, const char *params, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO batches (params, created_ms) VALUES (?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(s, "creating a batch");
    sqlite3_bind_text(st, 1, params, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, "creating a batch");
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int store_batch_get_locked(m2p_store *s, int64_t id, char **params, int64_t *created_ms)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT params, created_ms FROM batches WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(s, "reading a batch");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE
                   ? m2p_error(M2P_ENOTFOUND, "batch %lld does not exist", (long long)id)
                   : db_fail(s, "reading a batch");
    }
    *params = col_text(st, 0);
    if (created_ms)
        *created_ms = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return *params ? 0 : m2p_error(M2P_ENOMEM, "store: out of memory reading a batch");
}

static int store_batches_list_locked(m2p_store *s, int offset, int limit, int64_t **ids, int *n)
{
    return ids_query(s, "SELECT id FROM batches ORDER BY id DESC LIMIT ? OFFSET ?", 0, 1, limit,
                     offset, ids, n, "listing batches");
}

/* Public entry points: each holds the lock for its whole run (see the top of the file). */
int store_job_create(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                     int64_t parent_id, int max_queued, int64_t *id)
{
    pthread_mutex_lock(&lock);
    int rc =
        store_job_create_locked(s, kind, params, batch_id, batch_index, parent_id, max_queued, id);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_claim(m2p_store *s, int kind, store_job *out)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_claim_locked(s, kind, out);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_get(m2p_store *s, int64_t id, store_job *out)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_get_locked(s, id, out);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_finish(m2p_store *s, int64_t id, const char *result)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_finish_locked(s, id, result);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_fail(m2p_store *s, int64_t id, const char *error, int canceled)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_fail_locked(s, id, error, canceled);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_delete(m2p_store *s, int64_t id)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_delete_locked(s, id);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_count(m2p_store *s, const char *state, int kind, int64_t *n)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_count_locked(s, state, kind, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_jobs_recover(m2p_store *s, int max_attempts, int *requeued, int *failed)
{
    pthread_mutex_lock(&lock);
    int rc = store_jobs_recover_locked(s, max_attempts, requeued, failed);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_jobs_in_state(m2p_store *s, const char *state, store_job **out, int *n)
{
    pthread_mutex_lock(&lock);
    int rc = store_jobs_in_state_locked(s, state, out, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_jobs_of_batch(m2p_store *s, int64_t batch_id, store_job **out, int *n)
{
    pthread_mutex_lock(&lock);
    int rc = store_jobs_of_batch_locked(s, batch_id, out, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_last_generation(m2p_store *s, const char *model, store_job *out)
{
    pthread_mutex_lock(&lock);
    int rc = store_last_generation_locked(s, model, out);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_job_finish_with_results(m2p_store *s, int64_t job_id, const char *meta,
                                  const store_result *r, int n,
                                  char *(*make_result)(const int64_t *ids, int n, void *ud),
                                  void *ud)
{
    pthread_mutex_lock(&lock);
    int rc = store_job_finish_with_results_locked(s, job_id, meta, r, n, make_result, ud);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_result_png(m2p_store *s, int64_t id, uint8_t **png, size_t *len)
{
    pthread_mutex_lock(&lock);
    int rc = store_result_png_locked(s, id, png, len);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_result_delete(m2p_store *s, int64_t id)
{
    pthread_mutex_lock(&lock);
    int rc = store_result_delete_locked(s, id);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_gallery(m2p_store *s, int offset, int limit, char **json, int64_t *total)
{
    pthread_mutex_lock(&lock);
    int rc = store_gallery_locked(s, offset, limit, json, total);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_results_of_job(m2p_store *s, int64_t job_id, int64_t **ids, int *n)
{
    pthread_mutex_lock(&lock);
    int rc = store_results_of_job_locked(s, job_id, ids, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_batch_create(m2p_store *s, const char *params, int64_t *id)
{
    pthread_mutex_lock(&lock);
    int rc = store_batch_create_locked(s, params, id);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_batch_get(m2p_store *s, int64_t id, char **params, int64_t *created_ms)
{
    pthread_mutex_lock(&lock);
    int rc = store_batch_get_locked(s, id, params, created_ms);
    pthread_mutex_unlock(&lock);
    return rc;
}

int store_batches_list(m2p_store *s, int offset, int limit, int64_t **ids, int *n)
{
    pthread_mutex_lock(&lock);
    int rc = store_batches_list_locked(s, offset, limit, ids, n);
    pthread_mutex_unlock(&lock);
    return rc;
}
