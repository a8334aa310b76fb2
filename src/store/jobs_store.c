/*
 * jobs_store.c — jobs, results, batches and workers in SQLite (see jobs_store.h for the state
 * machine and the lease), and the SQLite backend's table of operations.
 *
 * Each function prepares its statement, runs it and finalizes it; the store front holds the
 * handle's lock around each call (store.c), so a transaction here is never interleaved with
 * another thread's statement. Multi-statement changes (claim, finish with results, recovery) run
 * in IMMEDIATE transactions so a writer in another process waits instead of failing half way.
 * Times are Unix milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/error.h"
#include "store/store_internal.h"

static int db_fail(m2p_store *s, const char *what)
{
    return m2p_error(M2P_EIO, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

#define JOB_COLUMNS                                                                                \
    "id, kind, state, params, result, error, attempts, batch_id, batch_index, parent_id,"          \
    " created_ms, started_ms, finished_ms, worker, lease_until_ms, cancel_requested"

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
    const unsigned char *w = sqlite3_column_text(st, 13);
    snprintf(j->worker, sizeof j->worker, "%s", w ? (const char *)w : "");
    j->lease_until_ms = sqlite3_column_int64(st, 14);
    j->cancel_requested = sqlite3_column_int(st, 15);
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

static int prepare(m2p_store *s, const char *sql, sqlite3_stmt **st, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : db_fail(s, what);
}

/* The row of sql (one ? for id) with that id: 0 with *st on it (the caller reads and finalizes
 * it), else the error (M2P_ENOTFOUND "<thing> <id> does not exist"), nothing left open. */
static int row_by_id(m2p_store *s, const char *sql, int64_t id, const char *thing,
                     sqlite3_stmt **st, const char *what)
{
    int rc = prepare(s, sql, st, what);
    if (rc)
        return rc;
    sqlite3_bind_int64(*st, 1, id);
    rc = sqlite3_step(*st);
    if (rc == SQLITE_ROW)
        return 0;
    sqlite3_finalize(*st);
    *st = NULL;
    return rc == SQLITE_DONE ? store_not_found(thing, id) : db_fail(s, what);
}

/* Step a statement without rows and finalize it; *changes (if given) gets the rows changed. */
static int run(m2p_store *s, sqlite3_stmt *st, int *changes, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, what);
    if (changes)
        *changes = sqlite3_changes(s->db);
    return 0;
}

/* The INSERT of a queued job, inside the caller's transaction. */
static int insert_job(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                      int64_t parent_id, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "INSERT INTO jobs (kind, state, params, batch_id, batch_index,"
                     " parent_id, created_ms) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                     &st, "inserting a job");
    if (rc)
        return rc;
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
    sqlite3_bind_int64(st, 6, store_now_ms());
    if ((rc = run(s, st, NULL, "inserting a job")))
        return rc;
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int job_create(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                      int64_t parent_id, int max_queued, int64_t *id)
{
    int rc = begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (max_queued > 0) {
        if ((rc = prepare(s, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'", &st,
                          "counting queued jobs")))
            return rollback(s, rc);
        /* a failed step (out of memory) may have ended the transaction: the insert would then
         * commit on its own and the COMMIT fail (found by tests/inject/test_alloc_request) */
        int step = sqlite3_step(st);
        int64_t n = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (step != SQLITE_ROW)
            return rollback(s, db_fail(s, "counting queued jobs"));
        if (n >= max_queued)
            return rollback(s, m2p_error(M2P_EBUSY,
                                         "the queue is full (%d jobs waiting); try "
                                         "again later",
                                         max_queued));
    }
    if ((rc = insert_job(s, kind, params, batch_id, batch_index, parent_id, id)))
        return rollback(s, rc);
    return commit(s);
}

static int job_get(m2p_store *s, int64_t id, store_job *out)
{
    sqlite3_stmt *st = NULL;
    int rc = row_by_id(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", id, "job", &st,
                       "reading a job");
    if (rc)
        return rc;
    job_from_row(st, out);
    sqlite3_finalize(st);
    return 0;
}

static int job_claim(m2p_store *s, int kind, const store_lease *lease, store_job *out)
{
    int rc = begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* A generation is only for a worker that has its model (json params.model in the list). */
    if ((rc = prepare(s,
                      "SELECT id FROM jobs WHERE state = 'queued' AND kind = ?1 AND (?1 <> 1 OR"
                      " ?2 IS NULL OR instr(',' || ?2 || ',', ',' ||"
                      " json_extract(params, '$.model') || ',') > 0) ORDER BY id LIMIT 1",
                      &st, "claiming a job")))
        return rollback(s, rc);
    sqlite3_bind_int(st, 1, kind);
    if (lease->models && *lease->models)
        sqlite3_bind_text(st, 2, lease->models, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (!id) {
        rollback(s, 0);
        return M2P_ENOTFOUND;
    }
    int64_t now = store_now_ms();
    if ((rc = prepare(s,
                      "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                      " started_ms = ?, worker = ?, lease_until_ms = ?, cancel_requested = 0"
                      " WHERE id = ?",
                      &st, "claiming a job")))
        return rollback(s, rc);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, lease->worker, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now + lease->lease_ms);
    sqlite3_bind_int64(st, 4, id);
    if ((rc = run(s, st, NULL, "claiming a job")) || (rc = job_get(s, id, out)))
        return rollback(s, rc);
    if ((rc = commit(s)))
        store_job_clear(out);
    return rc;
}

/* The WHERE clause that says "this claim still holds the job": ?A is the id, ?B the attempt. */
#define HELD(a, b) "id = ?" #a " AND state = 'running' AND attempts = ?" #b

static int job_renew(m2p_store *s, const store_job *job, int lease_ms, int *cancel)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(
        s, "UPDATE jobs SET lease_until_ms = ?3 WHERE " HELD(1, 2) " RETURNING cancel_requested",
        &st, "renewing a lease");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job->id);
    sqlite3_bind_int(st, 2, job->attempts);
    sqlite3_bind_int64(st, 3, store_now_ms() + lease_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *cancel = sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return m2p_error(M2P_ENOTFOUND, "job %lld: the lease of attempt %d was lost",
                         (long long)job->id, job->attempts);
    return db_fail(s, "renewing a lease");
}

static int job_release(m2p_store *s, const store_job *job)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE " HELD(1, 2),
                     &st, "handing a job back");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job->id);
    sqlite3_bind_int(st, 2, job->attempts);
    int n = 0;
    if ((rc = run(s, st, &n, "handing a job back")))
        return rc;
    return n == 1 ? 0
                  : m2p_error(M2P_ENOTFOUND, "job %lld is no longer held by attempt %d",
                              (long long)job->id, job->attempts);
}

static int finish_stmt(m2p_store *s, const store_job *job, const char *result)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "UPDATE jobs SET state = 'done', result = ?3, error = NULL,"
                     " finished_ms = ?4, lease_until_ms = NULL WHERE " HELD(1, 2),
                     &st, "finishing a job");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job->id);
    sqlite3_bind_int(st, 2, job->attempts);
    sqlite3_bind_text(st, 3, result, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, store_now_ms());
    int n = 0;
    if ((rc = run(s, st, &n, "finishing a job")))
        return rc;
    if (n != 1)
        return m2p_error(M2P_ENOTFOUND,
                         "job %lld: attempt %d no longer holds it (its lease expired or it was "
                         "canceled); its result was not written",
                         (long long)job->id, job->attempts);
    return 0;
}

static int job_finish(m2p_store *s, const store_job *job, const char *result)
{
    return finish_stmt(s, job, result);
}

/* A batch item's analysis and the generation it leads to commit together: a crash between the
 * two would otherwise leave the item done with nothing queued after it. */
static int job_finish_and_queue(m2p_store *s, const store_job *job, const char *result, int kind,
                                const char *params, int64_t *id)
{
    int rc = begin(s);
    if (rc)
        return rc;
    if ((rc = finish_stmt(s, job, result)) ||
        (rc = insert_job(s, kind, params, job->batch_id, job->batch_index, job->id, id)))
        return rollback(s, rc);
    return commit(s);
}

static int job_fail(m2p_store *s, int64_t id, int attempt, const char *error, int canceled)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "UPDATE jobs SET state = ?1, error = ?2, finished_ms = ?3,"
                     " lease_until_ms = NULL WHERE id = ?4 AND (?5 = 0 AND state IN ('queued',"
                     " 'running') OR state = 'running' AND attempts = ?5)",
                     &st, "failing a job");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, canceled ? "canceled" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, store_now_ms());
    sqlite3_bind_int64(st, 4, id);
    sqlite3_bind_int(st, 5, attempt);
    int n = 0;
    if ((rc = run(s, st, &n, "failing a job")))
        return rc;
    if (n != 1)
        return m2p_error(M2P_ENOTFOUND, "job %lld is not queued or running (attempt %d)",
                         (long long)id, attempt);
    return 0;
}

static int job_request_cancel(m2p_store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'",
                     &st, "canceling a job");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int n = 0;
    if ((rc = run(s, st, &n, "canceling a job")))
        return rc;
    return n == 1 ? 0 : m2p_error(M2P_EINVAL, "job %lld is not running", (long long)id);
}

static int exec_id(m2p_store *s, const char *sql, int64_t id, int *changes, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, sql, &st, what);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return run(s, st, changes, what);
}

static int job_delete(m2p_store *s, int64_t id)
{
    int rc = begin(s), n = 0;
    if (rc)
        return rc;
    if ((rc = exec_id(s, "DELETE FROM results WHERE job_id = ?", id, NULL, "deleting results")))
        return rollback(s, rc);
    if ((rc = exec_id(s, "DELETE FROM jobs WHERE id = ?", id, &n, "deleting a job")))
        return rollback(s, rc);
    if (n != 1)
        return rollback(s, store_not_found("job", id));
    return commit(s);
}

static int job_count(m2p_store *s, const char *state, int kind, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "SELECT COUNT(*) FROM jobs WHERE (?1 IS NULL OR state = ?1)"
                     " AND (?2 < 0 OR kind = ?2)",
                     &st, "counting jobs");
    if (rc)
        return rc;
    if (state)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int(st, 2, kind);
    rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(s, "counting jobs");
}

/* "Running but not really": the lease ran out (or there is none), or its worker restarted. */
#define STALE                                                                                      \
    " state = 'running' AND (lease_until_ms IS NULL OR lease_until_ms < ?1 OR worker = ?2)"

static int jobs_recover(m2p_store *s, int max_attempts, const char *worker, int *requeued,
                        int *failed)
{
    static const char *const sql[3] = {
        /* a stale job someone asked to stop is simply canceled */
        "UPDATE jobs SET state = 'canceled', error = 'canceled by request', finished_ms = ?1,"
        " lease_until_ms = NULL WHERE" STALE " AND cancel_requested = 1",
        "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE" STALE " AND attempts < ?3",
        "UPDATE jobs SET state = 'failed', finished_ms = ?1, lease_until_ms = NULL, error ="
        " printf('the server stopped while this job was running on worker %s (%d attempts); it was "
        "not retried again',"
        " COALESCE(worker, '?'), attempts) WHERE" STALE,
    };
    /* one "now" for all three: a lease expiring between the statements would otherwise skip the
       requeue and fail a job that had attempts left */
    int64_t now = store_now_ms();
    int rc = begin(s), n[3] = {0};
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st = NULL;
        if ((rc = prepare(s, sql[i], &st, "recovering jobs")))
            return rollback(s, rc);
        sqlite3_bind_int64(st, 1, now);
        if (worker)
            sqlite3_bind_text(st, 2, worker, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 2);
        if (i == 1)
            sqlite3_bind_int(st, 3, max_attempts);
        if ((rc = run(s, st, &n[i], "recovering jobs")))
            return rollback(s, rc);
    }
    if ((rc = commit(s)))
        return rc;
    *requeued = n[1];
    *failed = n[2];
    return 0;
}

/* Every row of st (finalized here) read by row() into v, an array of the row's type; on a failure
 * v is emptied, clear() (when given) run on each row read. */
static int rows_read(m2p_store *s, sqlite3_stmt *st, m2p_vec *v,
                     void (*row)(sqlite3_stmt *st, void *item), void (*clear)(void *item),
                     const char *what)
{
    int rc, bad = 0;
    union { /* one row of any type read here, aligned for each */
        store_job job;
        store_worker worker;
        int64_t id;
    } item;
    M2P_ASSERT(v->elem <= sizeof item);
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        row(st, &item);
        if ((bad = m2p_vec_push(v, &item)) && clear)
            clear(&item);
    }
    sqlite3_finalize(st);
    if (bad || rc != SQLITE_DONE) {
        for (size_t i = 0; clear && i < v->n; i++)
            clear((char *)v->data + i * v->elem);
        m2p_vec_free(v);
        return bad ? m2p_error_wrap(bad, "store: %s", what) : db_fail(s, what);
    }
    return 0;
}

/* What rows_read gathered, for the caller (free() it; NULL when none), and its count. */
static void *rows_take(m2p_vec *v, int *n)
{
    size_t got;
    void *d = m2p_vec_detach(v, &got);
    *n = (int)got;
    return d;
}

static void job_row(sqlite3_stmt *st, void *item)
{
    job_from_row(st, item);
}

static void job_clear(void *item)
{
    store_job_clear(item);
}

/* Rows of a prepared statement -> jobs (st finalized). */
static int jobs_from_stmt(m2p_store *s, sqlite3_stmt *st, store_job **out, int *n)
{
    m2p_vec v;
    m2p_vec_init(&v, sizeof(store_job), STORE_MAX_ROWS);
    int rc = rows_read(s, st, &v, job_row, job_clear, "reading jobs");
    *out = rows_take(&v, n);
    return rc;
}

static int jobs_of_batch(m2p_store *s, int64_t batch_id, store_job **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc =
        prepare(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE batch_id = ? ORDER BY batch_index, id",
                &st, "reading a batch");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, batch_id);
    return jobs_from_stmt(s, st, out, n);
}

static int jobs_in_state(m2p_store *s, const char *state, store_job **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE state = ? ORDER BY id", &st,
                     "listing jobs");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    return jobs_from_stmt(s, st, out, n);
}

static int last_generation(m2p_store *s, const char *model, store_job *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "SELECT " JOB_COLUMNS " FROM jobs WHERE kind = ? AND state = 'done'"
                     " AND json_extract(params, '$.model') = ? ORDER BY finished_ms DESC,"
                     " id DESC LIMIT 1",
                     &st, "reading the last generation");
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, STORE_JOB_GENERATE);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_TRANSIENT);
    store_job *v = NULL;
    int n = 0;
    rc = jobs_from_stmt(s, st, &v, &n);
    if (!rc && n == 0)
        rc = m2p_error(M2P_ENOTFOUND, "no generation with model %s has finished", model);
    if (!rc)
        *out = v[0];
    free(v);
    return rc;
}

static int finish_with_results(m2p_store *s, const store_job *job, const char *meta,
                               const store_result *r, int n,
                               char *(*make_result)(const int64_t *ids, int n, void *ud), void *ud)
{
    int64_t ids[16];
    int rc = begin(s);
    if (rc)
        return rc;
    int64_t t = store_now_ms();
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = NULL;
        if ((rc = prepare(s,
                          "INSERT INTO results (job_id, variation, seed, width, height,"
                          " seconds, png, meta, created_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                          &st, "storing a result")))
            return rollback(s, rc);
        sqlite3_bind_int64(st, 1, job->id);
        sqlite3_bind_int(st, 2, r[i].variation);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r[i].seed);
        sqlite3_bind_int(st, 4, r[i].width);
        sqlite3_bind_int(st, 5, r[i].height);
        sqlite3_bind_double(st, 6, r[i].seconds);
        sqlite3_bind_blob(st, 7, r[i].png, (int)r[i].png_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, meta ? meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, t);
        if ((rc = run(s, st, NULL, "storing a result")))
            return rollback(s, rc);
        ids[i] = sqlite3_last_insert_rowid(s->db);
    }
    char *result = make_result(ids, n, ud);
    if (!result)
        return rollback(s, m2p_error(M2P_ENOMEM, "store: out of memory building a result"));
    rc = finish_stmt(s, job, result);
    free(result);
    if (rc)
        return rollback(s, rc);
    return commit(s);
}

static int result_png(m2p_store *s, int64_t id, uint8_t **png, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc =
        row_by_id(s, "SELECT png FROM results WHERE id = ?", id, "image", &st, "reading an image");
    if (rc)
        return rc;
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

static int result_delete(m2p_store *s, int64_t id)
{
    int n = 0;
    int rc = exec_id(s, "DELETE FROM results WHERE id = ?", id, &n, "deleting an image");
    if (rc)
        return rc;
    return n == 1 ? 0 : store_not_found("image", id);
}

static int gallery(m2p_store *s, int offset, int limit, char **json, int64_t *total)
{
    *json = NULL;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT COUNT(*) FROM results", &st, "reading the gallery");
    if (rc)
        return rc;
    *total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    /* meta is JSON written by this program (validated on the way in), so it is spliced in. */
    if ((rc = prepare(s,
                      "SELECT id, job_id, variation, seed, width, height, seconds,"
                      " created_ms, meta FROM results ORDER BY id DESC LIMIT ? OFFSET ?",
                      &st, "reading the gallery")))
        return rc;
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    m2p_buf b;
    m2p_buf_init(&b, 0);
    int bad = m2p_buf_puts(&b, "[");
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_result_row row = {
            .id = sqlite3_column_int64(st, 0),
            .job_id = sqlite3_column_int64(st, 1),
            .variation = sqlite3_column_int(st, 2),
            .seed = (uint64_t)sqlite3_column_int64(st, 3),
            .width = sqlite3_column_int(st, 4),
            .height = sqlite3_column_int(st, 5),
            .seconds = sqlite3_column_double(st, 6),
            .created_ms = sqlite3_column_int64(st, 7),
            .meta = (const char *)sqlite3_column_text(st, 8),
        };
        bad = store_gallery_add(&b, &row);
    }
    sqlite3_finalize(st);
    if (bad || (bad = m2p_buf_puts(&b, "]"))) {
        m2p_buf_free(&b);
        return m2p_error_wrap(bad, "store: building the gallery");
    }
    *json = m2p_buf_detach(&b);
    return *json ? 0 : m2p_error(M2P_ENOMEM, "store: out of memory building the gallery");
}

static void id_row(sqlite3_stmt *st, void *item)
{
    int64_t id = sqlite3_column_int64(st, 0);
    memcpy(item, &id, sizeof id);
}

static int ids_query(m2p_store *s, sqlite3_stmt *st, int64_t **ids, int *n, const char *what)
{
    m2p_vec v;
    m2p_vec_init(&v, sizeof(int64_t), STORE_MAX_ROWS);
    int rc = rows_read(s, st, &v, id_row, NULL, what);
    *ids = rows_take(&v, n);
    return rc;
}

static int results_of_job(m2p_store *s, int64_t job_id, int64_t **ids, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT id FROM results WHERE job_id = ? ORDER BY variation, id", &st,
                     "reading a job's images");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    return ids_query(s, st, ids, n, "reading a job's images");
}

static int batch_create(m2p_store *s, const char *params, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "INSERT INTO batches (params, created_ms) VALUES (?, ?)", &st,
                     "creating a batch");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, params, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, store_now_ms());
    if ((rc = run(s, st, NULL, "creating a batch")))
        return rc;
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

/* A batch and its first jobs commit together: a crash between the two left a batch "running"
 * with items that never start. */
static int batch_submit(m2p_store *s, const char *params, int kind, const char *const *job_params,
                        int n, int64_t *id, int64_t *job_ids)
{
    int rc = begin(s);
    if (rc)
        return rc;
    if ((rc = batch_create(s, params, id)))
        return rollback(s, rc);
    for (int i = 0; i < n; i++)
        if ((rc = insert_job(s, kind, job_params[i], *id, i, 0, &job_ids[i])))
            return rollback(s, rc);
    return commit(s);
}

static int batch_get(m2p_store *s, int64_t id, char **params, int64_t *created_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = row_by_id(s, "SELECT params, created_ms FROM batches WHERE id = ?", id, "batch", &st,
                       "reading a batch");
    if (rc)
        return rc;
    *params = col_text(st, 0);
    if (created_ms)
        *created_ms = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return *params ? 0 : m2p_error(M2P_ENOMEM, "store: out of memory reading a batch");
}

static int batches_list(m2p_store *s, int offset, int limit, int64_t **ids, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT id FROM batches ORDER BY id DESC LIMIT ? OFFSET ?", &st,
                     "listing batches");
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    return ids_query(s, st, ids, n, "listing batches");
}

static int worker_beat(m2p_store *s, const store_worker *w)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "INSERT INTO workers (name, host, pid, kinds, models, job, started_ms,"
                     " seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO"
                     " UPDATE SET host = excluded.host, pid = excluded.pid, kinds ="
                     " excluded.kinds, models = excluded.models, job = excluded.job, started_ms ="
                     " excluded.started_ms, seen_ms = excluded.seen_ms",
                     &st, "recording a worker");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, w->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, w->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, w->pid);
    sqlite3_bind_text(st, 4, w->kinds, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, w->models, -1, SQLITE_STATIC);
    if (w->job)
        sqlite3_bind_int64(st, 6, w->job);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, w->started_ms);
    sqlite3_bind_int64(st, 8, store_now_ms());
    return run(s, st, NULL, "recording a worker");
}

static void worker_row(sqlite3_stmt *st, void *item)
{
    store_worker *w = item;
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(w->host, sizeof w->host, "%s", (const char *)sqlite3_column_text(st, 1));
    w->pid = sqlite3_column_int(st, 2);
    snprintf(w->kinds, sizeof w->kinds, "%s", (const char *)sqlite3_column_text(st, 3));
    snprintf(w->models, sizeof w->models, "%s", (const char *)sqlite3_column_text(st, 4));
    w->job = sqlite3_column_int64(st, 5);
    w->started_ms = sqlite3_column_int64(st, 6);
    w->seen_ms = sqlite3_column_int64(st, 7);
}

static int workers_list(m2p_store *s, int64_t since, store_worker **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "SELECT name, host, pid, kinds, models, job, started_ms, seen_ms FROM"
                     " workers WHERE seen_ms >= ? ORDER BY name",
                     &st, "listing workers");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, since);
    m2p_vec v;
    m2p_vec_init(&v, sizeof(store_worker), STORE_MAX_ROWS);
    rc = rows_read(s, st, &v, worker_row, NULL, "listing workers");
    *out = rows_take(&v, n);
    return rc;
}

static int queue_depth(m2p_store *s, char **json)
{
    *json = NULL;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY 1, 2",
                     &st, "counting jobs");
    if (rc)
        return rc;
    int64_t counts[2][5] = {{0}};
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0) == STORE_JOB_GENERATE;
        int i = store_state_index((const char *)sqlite3_column_text(st, 1));
        if (i >= 0)
            counts[k][i] = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, "counting jobs");
    return store_depth_json(counts, json);
}

static int event_put(m2p_store *s, int64_t job, const char *event, int64_t *id)
{
    (void)s;
    (void)job;
    (void)event;
    (void)id;
    return m2p_error(M2P_EUNSUPPORTED,
                     "store: progress for other nodes needs a PostgreSQL store (--store "
                     "postgresql://...)");
}

const store_backend store_sqlite_backend = {
    .name = "sqlite",
    .close = store_sqlite_close,
    .exec = store_sqlite_exec,
    .scalar = store_sqlite_scalar,
    .migrate = store_sqlite_migrate,
    .schema_version = store_sqlite_schema_version,
    .cache_get = store_sqlite_cache_get,
    .cache_put = store_sqlite_cache_put,
    .job_create = job_create,
    .job_claim = job_claim,
    .job_renew = job_renew,
    .job_release = job_release,
    .job_get = job_get,
    .job_finish = job_finish,
    .job_finish_and_queue = job_finish_and_queue,
    .job_fail = job_fail,
    .job_request_cancel = job_request_cancel,
    .job_delete = job_delete,
    .job_count = job_count,
    .jobs_recover = jobs_recover,
    .jobs_in_state = jobs_in_state,
    .jobs_of_batch = jobs_of_batch,
    .last_generation = last_generation,
    .finish_with_results = finish_with_results,
    .result_png = result_png,
    .result_delete = result_delete,
    .gallery = gallery,
    .results_of_job = results_of_job,
    .batch_create = batch_create,
    .batch_submit = batch_submit,
    .batch_get = batch_get,
    .batches_list = batches_list,
    .worker_beat = worker_beat,
    .workers_list = workers_list,
    .queue_depth = queue_depth,
    .event_put = event_put,
};
