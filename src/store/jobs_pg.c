/*
 * jobs_pg.c — jobs, results, batches and workers in PostgreSQL (see jobs_store.h for the state
 * machine and the lease), and the PostgreSQL backend's table of operations.
 *
 * Claiming is one statement: UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1),
 * so workers on many machines take different rows without waiting on each other. Writing a
 * generation's results first locks the job row and checks the lease (same attempt, still
 * running) inside the transaction, so a late worker writes nothing. PNGs are bytea, sent and
 * read in binary. Reference: PostgreSQL "SELECT ... The Locking Clause" (SKIP LOCKED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "store/pg_internal.h"

#define JOB_COLUMNS                                                                                \
    "id, kind, state, params, result, error, attempts, batch_id, batch_index, parent_id,"          \
    " created_ms, started_ms, finished_ms, worker, lease_until_ms, cancel_requested"

static void job_from_row(const PGresult *r, int i, store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = pg_i64(r, i, 0);
    j->kind = (int)pg_i64(r, i, 1);
    snprintf(j->state, sizeof j->state, "%s", PQgetvalue(r, i, 2));
    j->params = pg_strdup(r, i, 3);
    j->result = pg_strdup(r, i, 4);
    j->error = pg_strdup(r, i, 5);
    j->attempts = (int)pg_i64(r, i, 6);
    j->batch_id = pg_i64(r, i, 7);
    j->batch_index = (int)pg_i64(r, i, 8);
    j->parent_id = pg_i64(r, i, 9);
    j->created_ms = pg_i64(r, i, 10);
    j->started_ms = pg_i64(r, i, 11);
    j->finished_ms = pg_i64(r, i, 12);
    snprintf(j->worker, sizeof j->worker, "%s", PQgetvalue(r, i, 13));
    j->lease_until_ms = pg_i64(r, i, 14);
    j->cancel_requested = (int)pg_i64(r, i, 15);
}

/* Rows -> jobs (*out malloc'd). */
static int jobs_from_result(PGresult *r, store_job **out, int *n)
{
    int rows = PQntuples(r);
    *out = NULL;
    *n = 0;
    if (rows == 0)
        return 0;
    store_job *v = calloc((size_t)rows, sizeof *v);
    if (!v)
        return m2p_error(M2P_ENOMEM, "store: out of memory reading jobs");
    for (int i = 0; i < rows; i++)
        job_from_row(r, i, &v[i]);
    *out = v;
    *n = rows;
    return 0;
}

/* The INSERT of a queued job (with max_queued > 0, only while fewer jobs wait); *id = 0 when
 * the queue was full. */
static int insert_job(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                      int64_t parent_id, int max_queued, int64_t *id)
{
    pgp p = {0};
    pgp_i64(&p, kind);
    pgp_str(&p, params);
    if (batch_id > 0)
        pgp_i64(&p, batch_id);
    else
        pgp_str(&p, NULL);
    pgp_i64(&p, batch_index);
    if (parent_id > 0)
        pgp_i64(&p, parent_id);
    else
        pgp_str(&p, NULL);
    pgp_i64(&p, store_now_ms());
    pgp_i64(&p, max_queued);
    PGresult *r = NULL;
    /* The count and the insert are one statement; two nodes racing for the last free place may
     * both get it, which only lets the queue go one over its limit. */
    int rc = pg_run(s,
                    "INSERT INTO jobs (kind, state, params, batch_id, batch_index, parent_id,"
                    " created_ms) SELECT $1, 'queued', $2, $3, $4, $5, $6 WHERE $7 <= 0 OR"
                    " (SELECT COUNT(*) FROM jobs WHERE state = 'queued') < $7 RETURNING id",
                    &p, 0, &r, "inserting a job");
    if (rc)
        return rc;
    *id = PQntuples(r) ? pg_i64(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

static int job_create(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                      int64_t parent_id, int max_queued, int64_t *id)
{
    int64_t got = 0;
    int rc = insert_job(s, kind, params, batch_id, batch_index, parent_id, max_queued, &got);
    if (rc)
        return rc;
    if (!got)
        return m2p_error(M2P_EBUSY, "the queue is full (%d jobs waiting); try again later",
                         max_queued);
    *id = got;
    return 0;
}

static int one_job(m2p_store *s, const char *sql, const pgp *p, store_job *out, int *found,
                   const char *what)
{
    PGresult *r = NULL;
    int rc = pg_run(s, sql, p, 0, &r, what);
    if (rc)
        return rc;
    *found = PQntuples(r) > 0;
    if (*found)
        job_from_row(r, 0, out);
    PQclear(r);
    return 0;
}

static int job_get(m2p_store *s, int64_t id, store_job *out)
{
    pgp p = {0};
    pgp_i64(&p, id);
    int found = 0;
    int rc = one_job(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1", &p, out, &found,
                     "reading a job");
    if (!rc && !found)
        rc = store_not_found("job", id);
    return rc;
}

static int job_claim(m2p_store *s, int kind, const store_lease *lease, store_job *out)
{
    int64_t now = store_now_ms();
    pgp p = {0};
    pgp_i64(&p, kind);
    pgp_str(&p, lease->models && *lease->models ? lease->models : NULL);
    pgp_i64(&p, now);
    pgp_str(&p, lease->worker);
    pgp_i64(&p, now + lease->lease_ms);
    int found = 0;
    int rc = one_job(
        s,
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_ms = $3,"
        " worker = $4, lease_until_ms = $5, cancel_requested = 0 WHERE id = (SELECT id FROM jobs"
        " WHERE state = 'queued' AND kind = $1 AND ($1 <> 1 OR $2::text IS NULL OR"
        " (params::jsonb ->> 'model') = ANY (string_to_array($2::text, ','))) ORDER BY id"
        " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " JOB_COLUMNS,
        &p, out, &found, "claiming a job");
    if (rc)
        return rc;
    return found ? 0 : M2P_ENOTFOUND;
}

#define HELD "id = $1 AND state = 'running' AND attempts = $2"

static int job_renew(m2p_store *s, const store_job *job, int lease_ms, int *cancel)
{
    pgp p = {0};
    pgp_i64(&p, job->id);
    pgp_i64(&p, job->attempts);
    pgp_i64(&p, store_now_ms() + lease_ms);
    PGresult *r = NULL;
    int rc =
        pg_run(s, "UPDATE jobs SET lease_until_ms = $3 WHERE " HELD " RETURNING cancel_requested",
               &p, 0, &r, "renewing a lease");
    if (rc)
        return rc;
    if (PQntuples(r) == 1)
        *cancel = pg_i64(r, 0, 0) != 0;
    else
        rc = m2p_error(M2P_ENOTFOUND, "job %lld: the lease of attempt %d was lost",
                       (long long)job->id, job->attempts);
    PQclear(r);
    return rc;
}

static int job_release(m2p_store *s, const store_job *job)
{
    pgp p = {0};
    pgp_i64(&p, job->id);
    pgp_i64(&p, job->attempts);
    int n = 0;
    int rc = pg_cmd(s, "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE " HELD, &p,
                    &n, "handing a job back");
    if (!rc && n != 1)
        rc = m2p_error(M2P_ENOTFOUND, "job %lld is no longer held by attempt %d",
                       (long long)job->id, job->attempts);
    return rc;
}

static int finish_stmt(m2p_store *s, const store_job *job, const char *result)
{
    pgp p = {0};
    pgp_i64(&p, job->id);
    pgp_i64(&p, job->attempts);
    pgp_str(&p, result);
    pgp_i64(&p, store_now_ms());
    int n = 0;
    int rc = pg_cmd(s,
                    "UPDATE jobs SET state = 'done', result = $3, error = NULL, finished_ms = $4,"
                    " lease_until_ms = NULL WHERE " HELD,
                    &p, &n, "finishing a job");
    if (!rc && n != 1)
        rc = m2p_error(M2P_ENOTFOUND,
                       "job %lld: attempt %d no longer holds it (its lease expired or it was "
                       "canceled); its result was not written",
                       (long long)job->id, job->attempts);
    return rc;
}

static int job_finish(m2p_store *s, const store_job *job, const char *result)
{
    return finish_stmt(s, job, result);
}

/* A batch item's analysis and the generation it leads to commit together (see jobs_store.c). */
static int job_finish_and_queue(m2p_store *s, const store_job *job, const char *result, int kind,
                                const char *params, int64_t *id)
{
    int rc = pg_begin(s);
    if (rc)
        return rc;
    if ((rc = finish_stmt(s, job, result)) ||
        (rc = insert_job(s, kind, params, job->batch_id, job->batch_index, job->id, 0, id)))
        return pg_rollback(s, rc);
    return pg_commit(s);
}

static int job_fail(m2p_store *s, int64_t id, int attempt, const char *error, int canceled)
{
    pgp p = {0};
    pgp_str(&p, canceled ? "canceled" : "failed");
    pgp_str(&p, error);
    pgp_i64(&p, store_now_ms());
    pgp_i64(&p, id);
    pgp_i64(&p, attempt);
    int n = 0;
    int rc = pg_cmd(s,
                    "UPDATE jobs SET state = $1, error = $2, finished_ms = $3, lease_until_ms ="
                    " NULL WHERE id = $4 AND ($5 = 0 AND state IN ('queued', 'running') OR"
                    " state = 'running' AND attempts = $5)",
                    &p, &n, "failing a job");
    if (!rc && n != 1)
        rc = m2p_error(M2P_ENOTFOUND, "job %lld is not queued or running (attempt %d)",
                       (long long)id, attempt);
    return rc;
}

static int job_request_cancel(m2p_store *s, int64_t id)
{
    pgp p = {0};
    pgp_i64(&p, id);
    int n = 0;
    int rc = pg_cmd(s, "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'",
                    &p, &n, "canceling a job");
    if (!rc && n != 1)
        rc = m2p_error(M2P_EINVAL, "job %lld is not running", (long long)id);
    return rc;
}

static int job_delete(m2p_store *s, int64_t id)
{
    pgp p = {0};
    pgp_i64(&p, id);
    int rc = pg_begin(s), n = 0;
    if (rc)
        return rc;
    if ((rc = pg_cmd(s, "DELETE FROM results WHERE job_id = $1", &p, NULL, "deleting results")) ||
        (rc = pg_cmd(s, "DELETE FROM jobs WHERE id = $1", &p, &n, "deleting a job")))
        return pg_rollback(s, rc);
    if (n != 1)
        return pg_rollback(s, store_not_found("job", id));
    return pg_commit(s);
}

static int job_count(m2p_store *s, const char *state, int kind, int64_t *n)
{
    pgp p = {0};
    pgp_str(&p, state);
    pgp_i64(&p, kind);
    PGresult *r = NULL;
    int rc = pg_run(s,
                    "SELECT COUNT(*) FROM jobs WHERE ($1::text IS NULL OR state = $1) AND"
                    " ($2 < 0 OR kind = $2)",
                    &p, 0, &r, "counting jobs");
    if (rc)
        return rc;
    *n = pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

#define STALE                                                                                      \
    " state = 'running' AND (lease_until_ms IS NULL OR lease_until_ms < $1 OR worker ="            \
    " $2::text)"

static int jobs_recover(m2p_store *s, int max_attempts, const char *worker, int *requeued,
                        int *failed)
{
    static const char *const sql[3] = {
        "UPDATE jobs SET state = 'canceled', error = 'canceled by request', finished_ms = $1,"
        " lease_until_ms = NULL WHERE" STALE " AND cancel_requested = 1",
        "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE" STALE " AND attempts < $3",
        "UPDATE jobs SET state = 'failed', finished_ms = $1, lease_until_ms = NULL, error ="
        " format('the server stopped while this job was running on worker %s (%s attempts); it was "
        "not retried again',"
        " COALESCE(worker, '?'), attempts) WHERE" STALE,
    };
    /* one "now" for all three statements, as in jobs_store.c */
    int64_t now = store_now_ms();
    int rc = pg_begin(s), n[3] = {0};
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++) {
        pgp p = {0};
        pgp_i64(&p, now);
        pgp_str(&p, worker);
        if (i == 1)
            pgp_i64(&p, max_attempts);
        if ((rc = pg_cmd(s, sql[i], &p, &n[i], "recovering jobs")))
            return pg_rollback(s, rc);
    }
    if ((rc = pg_commit(s)))
        return rc;
    *requeued = n[1];
    *failed = n[2];
    return 0;
}

static int jobs_query(m2p_store *s, const char *sql, const pgp *p, store_job **out, int *n,
                      const char *what)
{
    *out = NULL;
    *n = 0;
    PGresult *r = NULL;
    int rc = pg_run(s, sql, p, 0, &r, what);
    if (rc)
        return rc;
    rc = jobs_from_result(r, out, n);
    PQclear(r);
    return rc;
}

static int jobs_in_state(m2p_store *s, const char *state, store_job **out, int *n)
{
    pgp p = {0};
    pgp_str(&p, state);
    return jobs_query(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE state = $1 ORDER BY id", &p, out,
                      n, "listing jobs");
}

static int jobs_of_batch(m2p_store *s, int64_t batch_id, store_job **out, int *n)
{
    pgp p = {0};
    pgp_i64(&p, batch_id);
    return jobs_query(s,
                      "SELECT " JOB_COLUMNS " FROM jobs WHERE batch_id = $1 ORDER BY batch_index,"
                      " id",
                      &p, out, n, "reading a batch");
}

static int last_generation(m2p_store *s, const char *model, store_job *out)
{
    pgp p = {0};
    pgp_i64(&p, STORE_JOB_GENERATE);
    pgp_str(&p, model);
    int found = 0;
    int rc = one_job(s,
                     "SELECT " JOB_COLUMNS " FROM jobs WHERE kind = $1 AND state = 'done' AND"
                     " (params::jsonb ->> 'model') = $2 ORDER BY finished_ms DESC, id DESC LIMIT 1",
                     &p, out, &found, "reading the last generation");
    if (!rc && !found)
        rc = m2p_error(M2P_ENOTFOUND, "no generation with model %s has finished", model);
    return rc;
}

static int finish_with_results(m2p_store *s, const store_job *job, const char *meta,
                               const store_result *r, int n,
                               char *(*make_result)(const int64_t *ids, int n, void *ud), void *ud)
{
    int64_t ids[16];
    int rc = pg_begin(s);
    if (rc)
        return rc;
    /* Lock the row and check the lease before writing anything. */
    pgp h = {0};
    pgp_i64(&h, job->id);
    pgp_i64(&h, job->attempts);
    PGresult *res = NULL;
    if ((rc = pg_run(s, "SELECT 1 FROM jobs WHERE " HELD " FOR UPDATE", &h, 0, &res,
                     "checking the lease")))
        return pg_rollback(s, rc);
    int held = PQntuples(res) == 1;
    PQclear(res);
    if (!held)
        return pg_rollback(s, m2p_error(M2P_ENOTFOUND,
                                        "job %lld: attempt %d no longer holds it (its lease "
                                        "expired or it was canceled); its result was not written",
                                        (long long)job->id, job->attempts));
    int64_t t = store_now_ms();
    for (int i = 0; i < n; i++) {
        pgp p = {0};
        pgp_i64(&p, job->id);
        pgp_i64(&p, r[i].variation);
        pgp_i64(&p, (int64_t)r[i].seed);
        pgp_i64(&p, r[i].width);
        pgp_i64(&p, r[i].height);
        snprintf(p.buf[5], sizeof p.buf[5], "%.6f", r[i].seconds);
        p.v[5] = p.buf[5];
        p.n = 6;
        pgp_bin(&p, r[i].png, r[i].png_len);
        pgp_str(&p, meta ? meta : "{}");
        pgp_i64(&p, t);
        if ((rc = pg_run(s,
                         "INSERT INTO results (job_id, variation, seed, width, height, seconds,"
                         " png, meta, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                         " RETURNING id",
                         &p, 0, &res, "storing a result")))
            return pg_rollback(s, rc);
        ids[i] = pg_i64(res, 0, 0);
        PQclear(res);
    }
    char *result = make_result(ids, n, ud);
    if (!result)
        return pg_rollback(s, m2p_error(M2P_ENOMEM, "store: out of memory building a result"));
    rc = finish_stmt(s, job, result);
    free(result);
    if (rc)
        return pg_rollback(s, rc);
    return pg_commit(s);
}

/* The row of sql (one $1 for id) with that id: 0 with *r holding it (the caller clears it),
 * else the error (store_not_found for none), nothing left to clear. */
static int row_by_id(m2p_store *s, const char *sql, int64_t id, int binary, const char *thing,
                     PGresult **r, const char *what)
{
    pgp p = {0};
    pgp_i64(&p, id);
    int rc = pg_run(s, sql, &p, binary, r, what);
    if (rc)
        return rc;
    if (PQntuples(*r) > 0)
        return 0;
    PQclear(*r);
    *r = NULL;
    return store_not_found(thing, id);
}

static int result_png(m2p_store *s, int64_t id, uint8_t **png, size_t *len)
{
    PGresult *r = NULL;
    int rc = row_by_id(s, "SELECT png FROM results WHERE id = $1", id, 1, "image", &r,
                       "reading an image");
    if (rc)
        return rc;
    int n = PQgetlength(r, 0, 0);
    *png = malloc(n > 0 ? (size_t)n : 1);
    if (!*png) {
        PQclear(r);
        return m2p_error(M2P_ENOMEM, "store: out of memory reading an image");
    }
    if (n > 0)
        memcpy(*png, PQgetvalue(r, 0, 0), (size_t)n);
    *len = (size_t)n;
    PQclear(r);
    return 0;
}

static int result_delete(m2p_store *s, int64_t id)
{
    pgp p = {0};
    pgp_i64(&p, id);
    int n = 0;
    int rc = pg_cmd(s, "DELETE FROM results WHERE id = $1", &p, &n, "deleting an image");
    if (!rc && n != 1)
        rc = store_not_found("image", id);
    return rc;
}

static int gallery(m2p_store *s, int offset, int limit, char **json, int64_t *total)
{
    *json = NULL;
    PGresult *r = NULL;
    int rc = pg_run(s, "SELECT COUNT(*) FROM results", NULL, 0, &r, "reading the gallery");
    if (rc)
        return rc;
    *total = pg_i64(r, 0, 0);
    PQclear(r);
    pgp p = {0};
    pgp_i64(&p, limit);
    pgp_i64(&p, offset);
    if ((rc = pg_run(s,
                     "SELECT id, job_id, variation, seed, width, height, seconds, created_ms,"
                     " meta FROM results ORDER BY id DESC LIMIT $1 OFFSET $2",
                     &p, 0, &r, "reading the gallery")))
        return rc;
    m2p_buf b;
    m2p_buf_init(&b, 0);
    int bad = m2p_buf_puts(&b, "[");
    for (int i = 0; !bad && i < PQntuples(r); i++) {
        store_result_row row = {
            .id = pg_i64(r, i, 0),
            .job_id = pg_i64(r, i, 1),
            .variation = (int)pg_i64(r, i, 2),
            .seed = (uint64_t)pg_i64(r, i, 3),
            .width = (int)pg_i64(r, i, 4),
            .height = (int)pg_i64(r, i, 5),
            .seconds = strtod(PQgetvalue(r, i, 6), NULL),
            .created_ms = pg_i64(r, i, 7),
            .meta = PQgetvalue(r, i, 8),
        };
        bad = store_gallery_add(&b, &row);
    }
    PQclear(r);
    if (bad || (bad = m2p_buf_puts(&b, "]"))) {
        m2p_buf_free(&b);
        return m2p_error_wrap(bad, "store: building the gallery");
    }
    *json = m2p_buf_detach(&b);
    return *json ? 0 : m2p_error(M2P_ENOMEM, "store: out of memory building the gallery");
}

static int ids_query(m2p_store *s, const char *sql, const pgp *p, int64_t **ids, int *n,
                     const char *what)
{
    *ids = NULL;
    *n = 0;
    PGresult *r = NULL;
    int rc = pg_run(s, sql, p, 0, &r, what);
    if (rc)
        return rc;
    int rows = PQntuples(r);
    if (rows > 0) {
        if (!(*ids = malloc((size_t)rows * sizeof **ids))) {
            PQclear(r);
            return m2p_error(M2P_ENOMEM, "store: out of memory (%s)", what);
        }
        for (int i = 0; i < rows; i++)
            (*ids)[i] = pg_i64(r, i, 0);
        *n = rows;
    }
    PQclear(r);
    return 0;
}

static int results_of_job(m2p_store *s, int64_t job_id, int64_t **ids, int *n)
{
    pgp p = {0};
    pgp_i64(&p, job_id);
    return ids_query(s, "SELECT id FROM results WHERE job_id = $1 ORDER BY variation, id", &p, ids,
                     n, "reading a job's images");
}

static int batch_create(m2p_store *s, const char *params, int64_t *id)
{
    pgp p = {0};
    pgp_str(&p, params);
    pgp_i64(&p, store_now_ms());
    PGresult *r = NULL;
    int rc = pg_run(s, "INSERT INTO batches (params, created_ms) VALUES ($1, $2) RETURNING id", &p,
                    0, &r, "creating a batch");
    if (rc)
        return rc;
    *id = pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* A batch and its first jobs commit together (see jobs_store.c). */
static int batch_submit(m2p_store *s, const char *params, int kind, const char *const *job_params,
                        int n, int64_t *id, int64_t *job_ids)
{
    int rc = pg_begin(s);
    if (rc)
        return rc;
    if ((rc = batch_create(s, params, id)))
        return pg_rollback(s, rc);
    for (int i = 0; i < n; i++)
        if ((rc = insert_job(s, kind, job_params[i], *id, i, 0, 0, &job_ids[i])))
            return pg_rollback(s, rc);
    return pg_commit(s);
}

static int batch_get(m2p_store *s, int64_t id, char **params, int64_t *created_ms)
{
    PGresult *r = NULL;
    int rc = row_by_id(s, "SELECT params, created_ms FROM batches WHERE id = $1", id, 0, "batch",
                       &r, "reading a batch");
    if (rc)
        return rc;
    *params = pg_strdup(r, 0, 0);
    if (created_ms)
        *created_ms = pg_i64(r, 0, 1);
    PQclear(r);
    return *params ? 0 : m2p_error(M2P_ENOMEM, "store: out of memory reading a batch");
}

static int batches_list(m2p_store *s, int offset, int limit, int64_t **ids, int *n)
{
    pgp p = {0};
    pgp_i64(&p, limit);
    pgp_i64(&p, offset);
    return ids_query(s, "SELECT id FROM batches ORDER BY id DESC LIMIT $1 OFFSET $2", &p, ids, n,
                     "listing batches");
}

static int worker_beat(m2p_store *s, const store_worker *w)
{
    pgp p = {0};
    pgp_str(&p, w->name);
    pgp_str(&p, w->host);
    pgp_i64(&p, w->pid);
    pgp_str(&p, w->kinds);
    pgp_str(&p, w->models);
    if (w->job)
        pgp_i64(&p, w->job);
    else
        pgp_str(&p, NULL);
    pgp_i64(&p, w->started_ms);
    pgp_i64(&p, store_now_ms());
    return pg_cmd(s,
                  "INSERT INTO workers (name, host, pid, kinds, models, job, started_ms, seen_ms)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET"
                  " host = excluded.host, pid = excluded.pid, kinds = excluded.kinds, models ="
                  " excluded.models, job = excluded.job, started_ms = excluded.started_ms,"
                  " seen_ms = excluded.seen_ms",
                  &p, NULL, "recording a worker");
}

static int workers_list(m2p_store *s, int64_t since, store_worker **out, int *n)
{
    *out = NULL;
    *n = 0;
    pgp p = {0};
    pgp_i64(&p, since);
    PGresult *r = NULL;
    int rc = pg_run(s,
                    "SELECT name, host, pid, kinds, models, job, started_ms, seen_ms FROM workers"
                    " WHERE seen_ms >= $1 ORDER BY name",
                    &p, 0, &r, "listing workers");
    if (rc)
        return rc;
    int rows = PQntuples(r);
    store_worker *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
    if (rows && !v) {
        PQclear(r);
        return m2p_error(M2P_ENOMEM, "store: out of memory listing workers");
    }
    for (int i = 0; i < rows; i++) {
        snprintf(v[i].name, sizeof v[i].name, "%s", PQgetvalue(r, i, 0));
        snprintf(v[i].host, sizeof v[i].host, "%s", PQgetvalue(r, i, 1));
        v[i].pid = (int)pg_i64(r, i, 2);
        snprintf(v[i].kinds, sizeof v[i].kinds, "%s", PQgetvalue(r, i, 3));
        snprintf(v[i].models, sizeof v[i].models, "%s", PQgetvalue(r, i, 4));
        v[i].job = pg_i64(r, i, 5);
        v[i].started_ms = pg_i64(r, i, 6);
        v[i].seen_ms = pg_i64(r, i, 7);
    }
    PQclear(r);
    *out = v;
    *n = rows;
    return 0;
}

static int queue_depth(m2p_store *s, char **json)
{
    *json = NULL;
    PGresult *r = NULL;
    int rc = pg_run(s, "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state", NULL, 0, &r,
                    "counting jobs");
    if (rc)
        return rc;
    int64_t counts[2][5] = {{0}};
    for (int row = 0; row < PQntuples(r); row++) {
        int k = pg_i64(r, row, 0) == STORE_JOB_GENERATE;
        int i = store_state_index(PQgetvalue(r, row, 1));
        if (i >= 0)
            counts[k][i] = pg_i64(r, row, 2);
    }
    PQclear(r);
    return store_depth_json(counts, json);
}

const store_backend store_pg_backend = {
    .name = "postgresql",
    .close = store_pg_close,
    .exec = store_pg_exec,
    .scalar = store_pg_scalar,
    .migrate = store_pg_migrate,
    .schema_version = store_pg_schema_version,
    .cache_get = store_pg_cache_get,
    .cache_put = store_pg_cache_put,
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
    .event_put = store_pg_event_put,
    .audio_put = store_pg_audio_put,
    .audio_get = store_pg_audio_get,
    .audio_delete = store_pg_audio_delete,
    .audio_trim = store_pg_audio_trim,
};
