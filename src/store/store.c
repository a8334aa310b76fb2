/*
 * store.c — the store front: m2p_store_open picks the backend from the URL (store.h), and every
 * store function takes the handle's lock and calls the backend's operation
 * (store_internal.h: SQLite in store_sqlite.c + jobs_store.c, PostgreSQL in store_pg.c +
 * jobs_pg.c).
 *
 * The lock lives in the handle because the state it guards does: a connection runs one
 * statement or transaction at a time, whichever thread asks. It is recursive so that a backend
 * may call back into the front (e.g. a claim reading the job it claimed).
 */
#define _GNU_SOURCE
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_not_found(const char *thing, int64_t id)
{
    return m2p_error(M2P_ENOTFOUND, "%s %lld does not exist", thing, (long long)id);
}

int64_t store_expires_ms(int64_t now, int64_t ttl_s)
{
    if (ttl_s <= 0 || ttl_s > (INT64_MAX - now) / 1000)
        return 0;
    return now + ttl_s * 1000;
}

int store_gallery_add(m2p_buf *b, const store_result_row *r)
{
    /* meta is spliced in: it is JSON this program wrote and validated on the way in. */
    return m2p_buf_printf(b,
                          "%s{\"id\":%lld,\"job_id\":%lld,\"variation\":%d,\"seed\":%llu,"
                          "\"width\":%d,\"height\":%d,\"seconds\":%.3f,\"created_ms\":%lld,"
                          "\"url\":\"/api/images/%lld.png\",\"meta\":%s}",
                          b->len > 1 ? "," : "", (long long)r->id, (long long)r->job_id,
                          r->variation, (unsigned long long)r->seed, r->width, r->height,
                          r->seconds, (long long)r->created_ms, (long long)r->id,
                          r->meta && *r->meta ? r->meta : "{}");
}

static const char *const states[5] = {"queued", "running", "done", "failed", "canceled"};

int store_state_index(const char *state)
{
    for (int i = 0; state && i < 5; i++)
        if (!strcmp(state, states[i]))
            return i;
    return -1;
}

int store_depth_json(const int64_t counts[2][5], char **json)
{
    char buf[512];
    int o = snprintf(buf, sizeof buf, "{");
    for (int k = 0; k < 2; k++) {
        o += snprintf(buf + o, sizeof buf - (size_t)o, "%s\"%s\":{", k ? "," : "",
                      store_job_kind_name(k));
        for (int i = 0; i < 5; i++)
            o += snprintf(buf + o, sizeof buf - (size_t)o, "%s\"%s\":%lld", i ? "," : "", states[i],
                          (long long)counts[k][i]);
        o += snprintf(buf + o, sizeof buf - (size_t)o, "}");
    }
    snprintf(buf + o, sizeof buf - (size_t)o, "}");
    if (!(*json = strdup(buf)))
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    return 0;
}

int store_url_kind(const char *url)
{
    if (url && (!strncmp(url, "postgresql:", 11) || !strncmp(url, "postgres:", 9)))
        return STORE_POSTGRESQL;
    return STORE_SQLITE;
}

int m2p_store_open(const char *url, m2p_store **out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "store: out is NULL");
    *out = NULL;
    if (!url || !*url)
        return m2p_error(M2P_EINVAL, "store: data folder is empty");
    m2p_store *s = calloc(1, sizeof *s);
    if (!s)
        return m2p_error(M2P_ENOMEM, "store: out of memory");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(&s->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) {
        free(s);
        return m2p_error(M2P_ENOMEM, "store: cannot create a lock");
    }
    if (store_url_kind(url) == STORE_POSTGRESQL)
        rc = store_pg_open(s, url);
    else if (!strncmp(url, "sqlite:", 7))
        rc = url[7] ? store_sqlite_open(s, url + 7)
                    : m2p_error(M2P_EINVAL, "store: sqlite: needs a file (sqlite:PATH)");
    else {
        size_t n = strlen(url) + sizeof "/mus2pic.db";
        char *file = malloc(n);
        if (!file) {
            rc = m2p_error(M2P_ENOMEM, "store: out of memory");
        } else {
            snprintf(file, n, "%s/mus2pic.db", url);
            rc = store_sqlite_open(s, file);
            free(file);
        }
    }
    if (rc) {
        m2p_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void m2p_store_close(m2p_store *s)
{
    if (!s)
        return;
    if (s->be)
        s->be->close(s);
    free(s->where);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *store_backend_name(m2p_store *s)
{
    return s && s->be ? s->be->name : "none";
}

const char *store_where(m2p_store *s)
{
    return s && s->where ? s->where : "";
}

/* Every operation below: check the handle, lock it, run the backend's function, unlock. */
#define STORE_CALL(s, op, ...)                                                                     \
    do {                                                                                           \
        if (!(s) || !(s)->be)                                                                      \
            return m2p_error(M2P_EINVAL, "store: no store");                                       \
        pthread_mutex_lock(&(s)->lock);                                                            \
        int rc_ = (s)->be->op(s, __VA_ARGS__);                                                     \
        pthread_mutex_unlock(&(s)->lock);                                                          \
        return rc_;                                                                                \
    } while (0)

static int cache_args(m2p_store *s, const char *ns, const char *key)
{
    if (!s || !s->be)
        return m2p_error(M2P_EINVAL, "store: no store");
    if (!ns || !*ns || !key)
        return m2p_error(M2P_EINVAL, "store cache: namespace and key are required");
    return 0;
}

int store_cache_get(m2p_store *s, const char *ns, const char *key, char **value)
{
    if (value)
        *value = NULL;
    int rc = cache_args(s, ns, key);
    if (rc)
        return rc;
    if (!value)
        return m2p_error(M2P_EINVAL, "store cache: value is NULL");
    STORE_CALL(s, cache_get, ns, key, value);
}

int store_cache_put(m2p_store *s, const char *ns, const char *key, const char *value, int64_t ttl_s)
{
    int rc = cache_args(s, ns, key);
    if (rc)
        return rc;
    if (!value)
        return m2p_error(M2P_EINVAL, "store cache put: value is NULL");
    if (ttl_s < 0)
        return m2p_error(M2P_EINVAL, "store cache put: ttl %lld s is negative", (long long)ttl_s);
    STORE_CALL(s, cache_put, ns, key, value, ttl_s);
}

int store_exec(m2p_store *s, const char *sql)
{
    if (!sql)
        return m2p_error(M2P_EINVAL, "store exec: no SQL");
    STORE_CALL(s, exec, sql);
}

int store_scalar(m2p_store *s, const char *sql, int64_t *v)
{
    if (!sql || !v)
        return m2p_error(M2P_EINVAL, "store scalar: no SQL or no output");
    STORE_CALL(s, scalar, sql, v);
}

int store_migrate(m2p_store *s)
{
    if (!s || !s->be)
        return m2p_error(M2P_EINVAL, "store: no store");
    pthread_mutex_lock(&s->lock);
    int rc = s->be->migrate(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_schema_version(m2p_store *s)
{
    if (!s || !s->be)
        return m2p_error(M2P_EINVAL, "store: no store");
    pthread_mutex_lock(&s->lock);
    int rc = s->be->schema_version(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_event_put(m2p_store *s, int64_t job, const char *event, int64_t *id)
{
    if (!event || !id)
        return m2p_error(M2P_EINVAL, "store event: no event");
    STORE_CALL(s, event_put, job, event, id);
}

/* Shared audio: the key is a file name's worth of [A-Za-z0-9._-], so it can name a folder. */
static int audio_args(m2p_store *s, const char *key)
{
    if (!s || !s->be)
        return m2p_error(M2P_EINVAL, "store: no store");
    if (!s->be->audio_put)
        return m2p_error(M2P_EUNSUPPORTED,
                         "store: shared audio files need a PostgreSQL store (--store "
                         "postgresql://...); a %s store keeps them in the data folder",
                         s->be->name);
    size_t n = key ? strlen(key) : 0;
    if (!n || n > 100 || key[0] == '.' ||
        strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                    "OPQRSTUVWXYZ0123456789._-") != n)
        return m2p_error(M2P_EINVAL, "store audio: the key '%s' is not a plain name",
                         key ? key : "");
    return 0;
}

int store_audio_put(m2p_store *s, const char *key, const char *path, int64_t max_bytes,
                    int64_t *size)
{
    int rc = audio_args(s, key);
    if (rc)
        return rc;
    if (!path || !size)
        return m2p_error(M2P_EINVAL, "store audio put: no file");
    STORE_CALL(s, audio_put, key, path, max_bytes, size);
}

int store_audio_get(m2p_store *s, const char *key, const char *path, int64_t *size)
{
    int rc = audio_args(s, key);
    if (rc)
        return rc;
    if (!path || !size)
        return m2p_error(M2P_EINVAL, "store audio get: no file");
    STORE_CALL(s, audio_get, key, path, size);
}

int store_audio_delete(m2p_store *s, const char *key)
{
    int rc = audio_args(s, key);
    if (rc)
        return rc;
    STORE_CALL(s, audio_delete, key);
}

int store_audio_trim(m2p_store *s, const char *prefix, int64_t max_bytes, int *removed)
{
    int n = 0;
    if (!removed)
        removed = &n;
    *removed = 0;
    int rc = audio_args(s, prefix);
    if (rc)
        return rc;
    if (max_bytes < 0)
        return m2p_error(M2P_EINVAL, "store audio trim: the limit is negative");
    STORE_CALL(s, audio_trim, prefix, max_bytes, removed);
}

/* jobs_store.h */
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

int store_job_create(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                     int64_t parent_id, int max_queued, int64_t *id)
{
    if (!params || !id)
        return m2p_error(M2P_EINVAL, "store: a job needs parameters");
    STORE_CALL(s, job_create, kind, params, batch_id, batch_index, parent_id, max_queued, id);
}

int store_job_claim(m2p_store *s, int kind, const store_lease *lease, store_job *out)
{
    if (!lease || !lease->worker || !*lease->worker || lease->lease_ms <= 0 || !out)
        return m2p_error(M2P_EINVAL, "store: a claim needs a worker name and a lease");
    STORE_CALL(s, job_claim, kind, lease, out);
}

int store_job_renew(m2p_store *s, const store_job *job, int lease_ms, int *cancel)
{
    int ignored;
    STORE_CALL(s, job_renew, job, lease_ms, cancel ? cancel : &ignored);
}

int store_job_release(m2p_store *s, const store_job *job)
{
    STORE_CALL(s, job_release, job);
}

int store_job_get(m2p_store *s, int64_t id, store_job *out)
{
    STORE_CALL(s, job_get, id, out);
}

int store_job_finish(m2p_store *s, const store_job *job, const char *result)
{
    if (!job || !result)
        return m2p_error(M2P_EINVAL, "store: finishing needs the job and its result");
    STORE_CALL(s, job_finish, job, result);
}

int store_job_finish_and_queue(m2p_store *s, const store_job *job, const char *result, int kind,
                               const char *params, int64_t *id)
{
    if (!job || !result || !params || !id)
        return m2p_error(M2P_EINVAL, "store: finishing needs the job, its result and the next job");
    STORE_CALL(s, job_finish_and_queue, job, result, kind, params, id);
}

int store_job_fail(m2p_store *s, int64_t id, int attempt, const char *error, int canceled)
{
    STORE_CALL(s, job_fail, id, attempt, error ? error : "", canceled);
}

int store_job_request_cancel(m2p_store *s, int64_t id)
{
    STORE_CALL(s, job_request_cancel, id);
}

int store_job_delete(m2p_store *s, int64_t id)
{
    STORE_CALL(s, job_delete, id);
}

int store_job_count(m2p_store *s, const char *state, int kind, int64_t *n)
{
    STORE_CALL(s, job_count, state, kind, n);
}

int store_jobs_recover(m2p_store *s, int max_attempts, const char *worker, int *requeued,
                       int *failed)
{
    int a = 0, b = 0;
    STORE_CALL(s, jobs_recover, max_attempts, worker, requeued ? requeued : &a,
               failed ? failed : &b);
}

int store_jobs_in_state(m2p_store *s, const char *state, store_job **out, int *n)
{
    STORE_CALL(s, jobs_in_state, state, out, n);
}

int store_jobs_of_batch(m2p_store *s, int64_t batch_id, store_job **out, int *n)
{
    STORE_CALL(s, jobs_of_batch, batch_id, out, n);
}

int store_last_generation(m2p_store *s, const char *model, store_job *out)
{
    STORE_CALL(s, last_generation, model, out);
}

int store_job_finish_with_results(m2p_store *s, const store_job *job, const char *meta,
                                  const store_result *r, int n,
                                  char *(*make_result)(const int64_t *ids, int n, void *ud),
                                  void *ud)
{
    if (!job || n < 0 || n > 16 || (n && !r) || !make_result)
        return m2p_error(M2P_EINVAL, "store: %d results (at most 16)", n);
    STORE_CALL(s, finish_with_results, job, meta, r, n, make_result, ud);
}

int store_result_png(m2p_store *s, int64_t id, uint8_t **png, size_t *len)
{
    STORE_CALL(s, result_png, id, png, len);
}

int store_result_delete(m2p_store *s, int64_t id)
{
    STORE_CALL(s, result_delete, id);
}

int store_gallery(m2p_store *s, int offset, int limit, char **json, int64_t *total)
{
    STORE_CALL(s, gallery, offset, limit, json, total);
}

int store_results_of_job(m2p_store *s, int64_t job_id, int64_t **ids, int *n)
{
    STORE_CALL(s, results_of_job, job_id, ids, n);
}

int store_batch_create(m2p_store *s, const char *params, int64_t *id)
{
    STORE_CALL(s, batch_create, params, id);
}

int store_batch_submit(m2p_store *s, const char *params, int kind, const char *const *job_params,
                       int n, int64_t *id, int64_t *job_ids)
{
    if (!params || n < 0 || (n && (!job_params || !job_ids)) || !id)
        return m2p_error(M2P_EINVAL, "store: a batch needs its parameters and its jobs'");
    for (int i = 0; i < n; i++)
        if (!job_params[i])
            return m2p_error(M2P_EINVAL, "store: batch job %d has no parameters", i);
    STORE_CALL(s, batch_submit, params, kind, job_params, n, id, job_ids);
}

int store_batch_get(m2p_store *s, int64_t id, char **params, int64_t *created_ms)
{
    STORE_CALL(s, batch_get, id, params, created_ms);
}

int store_batches_list(m2p_store *s, int offset, int limit, int64_t **ids, int *n)
{
    STORE_CALL(s, batches_list, offset, limit, ids, n);
}

int store_worker_beat(m2p_store *s, const store_worker *w)
{
    if (!w || !w->name[0])
        return m2p_error(M2P_EINVAL, "store: a worker needs a name");
    STORE_CALL(s, worker_beat, w);
}

int store_workers_list(m2p_store *s, int64_t seen_since_ms, store_worker **out, int *n)
{
    STORE_CALL(s, workers_list, seen_since_ms, out, n);
}

int store_queue_depth(m2p_store *s, char **json)
{
    STORE_CALL(s, queue_depth, json);
}
