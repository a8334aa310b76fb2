/*
 * records.c — the web app's rows through the queue handle (records.h): the server asks jobs
 * and jobs asks the store (src/store/jobs_store.h), so the server never sees the store's calls
 * or its row type. A job's row moves into a jobs_record without a copy (its strings change
 * owner); the API's JSON shapes of a job are built here. Uploads are remembered in the store's
 * cache table under "upload_analysis" (key -> job id); their shared copies (PostgreSQL) stream
 * on a connection of their own.
 */
#include "jobs/records.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json_limit.h"
#include "jobs/queue_internal.h"
#include "store/jobs_store.h"
#include "store/store.h"

#define RECORDS_UPLOAD_NS "upload_analysis"

void jobs_record_clear(jobs_record *r)
{
    if (!r)
        return;
    free(r->params);
    free(r->result);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void jobs_record_take(jobs_record *out, store_job *j)
{
    memset(out, 0, sizeof *out);
    out->id = j->id;
    out->kind = j->kind; /* STORE_JOB_* are JOBS_* (queue.c checks) */
    snprintf(out->state, sizeof out->state, "%s", j->state);
    out->params = j->params;
    out->result = j->result;
    out->error = j->error;
    j->params = j->result = j->error = NULL;
    out->attempts = j->attempts;
    out->batch_id = j->batch_id;
    out->batch_index = j->batch_index;
    out->parent_id = j->parent_id;
    out->created_ms = j->created_ms;
    out->started_ms = j->started_ms;
    out->finished_ms = j->finished_ms;
    snprintf(out->worker, sizeof out->worker, "%s", j->worker);
    store_job_clear(j);
}

/* ---- jobs ---- */

int jobs_job_get(jobs *q, int64_t id, jobs_record *out)
{
    memset(out, 0, sizeof *out);
    store_job j;
    int rc = store_job_get(q->store, id, &j);
    if (!rc)
        jobs_record_take(out, &j);
    return rc;
}

static json_t *parse_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *v = m2p_json_loads(s, 0, NULL);
    return v ? v : json_string(s);
}

static json_t *job_object(const jobs_record *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "kind", json_string(store_job_kind_name(j->kind)));
    json_object_set_new(o, "state", json_string(j->state));
    json_object_set_new(o, "params", parse_or_null(j->params));
    json_object_set_new(o, "result", parse_or_null(j->result));
    json_object_set_new(o, "error", j->error ? json_string(j->error) : json_null());
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "worker", j->worker[0] ? json_string(j->worker) : json_null());
    json_object_set_new(o, "batch_id", j->batch_id ? json_integer(j->batch_id) : json_null());
    json_object_set_new(o, "parent_id", j->parent_id ? json_integer(j->parent_id) : json_null());
    json_object_set_new(o, "created_ms", json_integer(j->created_ms));
    json_object_set_new(o, "started_ms", j->started_ms ? json_integer(j->started_ms) : json_null());
    json_object_set_new(o, "finished_ms",
                        j->finished_ms ? json_integer(j->finished_ms) : json_null());
    return o;
}

char *jobs_job_json(const jobs_record *j)
{
    json_t *o = job_object(j);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *jobs_state_event(const jobs_record *j)
{
    json_t *o = json_pack("{s:s, s:I, s:o}", "type", "state", "job", (json_int_t)j->id, "state",
                          job_object(j));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int jobs_count(jobs *q, const char *state, int kind, int64_t *n)
{
    return store_job_count(q->store, state, kind, n);
}

int jobs_last_generation(jobs *q, const char *model, jobs_record *out)
{
    memset(out, 0, sizeof *out);
    store_job j;
    int rc = store_last_generation(q->store, model, &j);
    if (!rc)
        jobs_record_take(out, &j);
    return rc;
}

/* ---- results ---- */

int jobs_result_png(jobs *q, int64_t id, uint8_t **png, size_t *len)
{
    return store_result_png(q->store, id, png, len);
}

int jobs_result_delete(jobs *q, int64_t id)
{
    return store_result_delete(q->store, id);
}

int jobs_gallery(jobs *q, int offset, int limit, char **json, int64_t *total)
{
    return store_gallery(q->store, offset, limit, json, total);
}

/* ---- batches ---- */

int jobs_batch_get(jobs *q, int64_t id, char **params, int64_t *created_ms)
{
    return store_batch_get(q->store, id, params, created_ms);
}

int jobs_batches_list(jobs *q, int offset, int limit, int64_t **ids, int *n)
{
    return store_batches_list(q->store, offset, limit, ids, n);
}

int jobs_batch_jobs(jobs *q, int64_t batch_id, jobs_record **out, int *n)
{
    *out = NULL;
    *n = 0;
    store_job *rows = NULL;
    int nr = 0;
    int rc = store_jobs_of_batch(q->store, batch_id, &rows, &nr);
    if (rc)
        return rc;
    jobs_record *r = nr > 0 ? calloc((size_t)nr, sizeof *r) : NULL;
    if (nr > 0 && !r)
        rc = m2p_error(M2P_ENOMEM, "out of memory reading batch %lld", (long long)batch_id);
    for (int i = 0; i < nr; i++) {
        if (r)
            jobs_record_take(&r[i], &rows[i]);
        else
            store_job_clear(&rows[i]);
    }
    free(rows);
    if (rc)
        return rc;
    *out = r;
    *n = nr;
    return 0;
}

/* ---- uploads ---- */

int jobs_upload_find(jobs *q, const char *key, int64_t *id, char *state, size_t len)
{
    char *v = NULL;
    if (store_cache_get(q->store, RECORDS_UPLOAD_NS, key, &v))
        return 0;
    long long jid = strtoll(v, NULL, 10);
    free(v);
    store_job j;
    if (jid <= 0 || store_job_get(q->store, jid, &j))
        return 0;
    int live =
        !strcmp(j.state, "queued") || !strcmp(j.state, "running") || !strcmp(j.state, "done");
    snprintf(state, len, "%s", j.state);
    store_job_clear(&j);
    *id = jid;
    return live;
}

int jobs_upload_remember(jobs *q, const char *key, int64_t id)
{
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    return store_cache_put(q->store, RECORDS_UPLOAD_NS, key, idtext, 0);
}

int jobs_audio_put(jobs *q, const char *key, const char *path, int64_t max_bytes, int64_t *size)
{
    *size = 0;
    if (!q->cfg.store_url || !*q->cfg.store_url)
        return m2p_error(M2P_EUNSUPPORTED, "shared uploads need a PostgreSQL store (--store)");
    m2p_store *own = NULL;
    int rc = m2p_store_open(q->cfg.store_url, &own);
    if (!rc)
        rc = store_audio_put(own, key, path, max_bytes, size);
    m2p_store_close(own);
    return rc;
}

int jobs_audio_delete(jobs *q, const char *key)
{
    return store_audio_delete(q->store, key);
}

/* ---- the store ---- */

const char *jobs_store_backend(jobs *q)
{
    return store_backend_name(q->store);
}
