/*
 * queue.c — the worker pool over the persistent jobs table (see queue.h).
 *
 * Workers sleep on a condition variable per kind and also poll once a second, so a job queued by
 * another process sharing the database (or left queued by a crash) is picked up too. Claiming is
 * a transaction in the store, so the table, not memory, decides who runs what. Cancellation of a
 * running job is a flag the runner's step callback reads; a finished job wakes jobs_wait callers.
 */
#include "jobs/queue_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_limit.h"

jobs_config jobs_default_config(void)
{
    jobs_config c;
    memset(&c, 0, sizeof c);
    c.data_dir = "data";
    c.analysis_workers = 2;
    c.max_queued = 200;
    c.max_attempts = 2;
    c.preview = M2P_PREVIEW_LATENT_RGB;
    return c;
}

char *jobs_base64(const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

void jobs_publish(jobs *q, int64_t job, int kind, int variation, json_t *event, json_t *const *orig,
                  int n_orig)
{
    char *json = event ? json_dumps(event, JSON_COMPACT) : NULL;
    char *o[32] = {0};
    int n = 0;
    for (int i = 0; i < n_orig && i < 32; i++)
        if (orig[i] && (o[n] = json_dumps(orig[i], JSON_COMPACT)))
            n++;
    if (json)
        progress_publish(q->bus, job, kind, variation, json, (const char *const *)o, n);
    free(json);
    for (int i = 0; i < n; i++)
        free(o[i]);
    json_decref(event);
    for (int i = 0; i < n_orig; i++)
        json_decref(orig[i]);
}

void jobs_publish_stage(jobs *q, int64_t job, const char *stage, double percent)
{
    json_t *e =
        json_pack("{s:s, s:I, s:s}", "type", "stage", "job", (json_int_t)job, "stage", stage);
    if (e && percent >= 0)
        json_object_set_new(e, "percent", json_real(percent));
    jobs_publish(q, job, PROGRESS_STAGE, -1, e, NULL, 0);
}

void jobs_fail(jobs *q, int64_t job, const char *message, int canceled)
{
    M2P_LOGI("job %lld %s: %s", (long long)job, canceled ? "canceled" : "failed", message);
    if (store_job_fail(q->store, job, message, canceled))
        M2P_LOGW("job %lld: %s", (long long)job, m2p_errmsg());
    json_t *e = json_pack("{s:s, s:I, s:s, s:b}", "type", "error", "job", (json_int_t)job,
                          "message", message, "canceled", canceled);
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", message);
    jobs_publish(q, job, PROGRESS_ERROR, -1, e, &o, 1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
}

static void *worker_main(void *arg)
{
    worker_slot *slot = arg;
    jobs *q = slot->q;
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        pthread_mutex_unlock(&q->lock);
        store_job job;
        int rc = store_job_claim(q->store, slot->kind, &job);
        pthread_mutex_lock(&q->lock);
        if (rc == M2P_ENOTFOUND || rc < 0) {
            if (rc < 0 && rc != M2P_ENOTFOUND)
                M2P_LOGW("worker: %s", m2p_errmsg());
            if (q->stop)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&q->work[slot->kind], &q->lock, &ts);
            continue;
        }
        slot->running = job.id;
        slot->cancel = 0;
        pthread_mutex_unlock(&q->lock);

        /* serve -v: what the workers do, next to the requests */
        M2P_LOGI("job %lld (%s) started", (long long)job.id, store_job_kind_name(job.kind));
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (slot->kind == STORE_JOB_GENERATE)
            run_generate(q, slot, &job);
        else
            run_analyze(q, slot, &job);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        M2P_LOGI("job %lld (%s) ended after %.1f s", (long long)job.id,
                 store_job_kind_name(job.kind),
                 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
        store_job_clear(&job);

        pthread_mutex_lock(&q->lock);
        slot->running = 0;
        slot->cancel = 0;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static int mkdir_p(const char *dir)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return m2p_error(M2P_EIO, "cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

/* Remove upload folders (data/uploads/up-*) that no queued job reads any more: left by a job
 * that failed after a crash, or by a crash between storing an upload and queueing its job. */
static void sweep_uploads(jobs *q)
{
    store_job *queued = NULL;
    int n = 0;
    if (store_jobs_in_state(q->store, "queued", &queued, &n))
        return;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/uploads", q->data_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "up-", 3) != 0)
            continue;
        char sub[1500];
        snprintf(sub, sizeof sub, "%s/%s/", dir, e->d_name);
        int used = 0;
        for (int i = 0; i < n && !used; i++)
            used = queued[i].params && strstr(queued[i].params, e->d_name) != NULL;
        if (used)
            continue;
        DIR *sd = opendir(sub);
        struct dirent *f;
        while (sd && (f = readdir(sd))) {
            if (!strcmp(f->d_name, ".") || !strcmp(f->d_name, ".."))
                continue;
            char file[1800];
            snprintf(file, sizeof file, "%s%s", sub, f->d_name);
            unlink(file);
        }
        if (sd)
            closedir(sd);
        sub[strlen(sub) - 1] = 0;
        if (rmdir(sub) == 0)
            M2P_LOGI("jobs: removed the unused upload %s", sub);
    }
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++)
        store_job_clear(&queued[i]);
    free(queued);
}

int jobs_start(const jobs_config *cfg, m2p_store *store, progress_bus *bus, model_cache *models,
               jobs **out)
{
    *out = NULL;
    jobs *q = calloc(1, sizeof *q);
    if (!q)
        return m2p_error(M2P_ENOMEM, "out of memory");
    q->cfg = *cfg;
    snprintf(q->data_dir, sizeof q->data_dir, "%s", cfg->data_dir ? cfg->data_dir : "data");
    q->cfg.data_dir = q->data_dir;
    if (q->cfg.analysis_workers < 1)
        q->cfg.analysis_workers = 1;
    if (q->cfg.analysis_workers > JOBS_MAX_WORKERS - 1)
        q->cfg.analysis_workers = JOBS_MAX_WORKERS - 1;
    if (q->cfg.max_attempts < 1)
        q->cfg.max_attempts = 1;
    q->store = store;
    q->bus = bus;
    q->models = models;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/uploads", q->data_dir);
    int rc = mkdir_p(dir);
    if (!rc)
        rc = m2p_store_open(q->data_dir, &q->cache);
    if (rc) {
        free(q);
        return rc;
    }
    int requeued = 0, failed = 0;
    if ((rc = store_jobs_recover(store, q->cfg.max_attempts, &requeued, &failed))) {
        m2p_store_close(q->cache);
        free(q);
        return rc;
    }
    if (requeued || failed)
        M2P_LOGW("jobs: after a restart, %d interrupted job(s) queued again, %d failed", requeued,
                 failed);
    sweep_uploads(q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work[0], NULL);
    pthread_cond_init(&q->work[1], NULL);
    pthread_cond_init(&q->done, NULL);
    q->n_slots = q->cfg.analysis_workers + 1;
    for (int i = 0; i < q->n_slots; i++) {
        worker_slot *s = &q->slots[i];
        s->q = q;
        s->kind = i == 0 ? STORE_JOB_GENERATE : STORE_JOB_ANALYZE;
        if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
            q->n_slots = i;
            jobs_stop(q);
            return m2p_error(M2P_ENOMEM, "cannot start worker threads");
        }
    }
    *out = q;
    return 0;
}

void jobs_stop(jobs *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    for (int i = 0; i < q->n_slots; i++)
        q->slots[i].cancel = 1;
    pthread_cond_broadcast(&q->work[0]);
    pthread_cond_broadcast(&q->work[1]);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_slots; i++)
        pthread_join(q->slots[i].thread, NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->work[0]);
    pthread_cond_destroy(&q->work[1]);
    pthread_cond_destroy(&q->done);
    m2p_store_close(q->cache);
    free(q);
}

int jobs_submit(jobs *q, int kind, const char *params, int64_t batch_id, int batch_index,
                int64_t parent_id, int64_t *id)
{
    int rc = store_job_create(q->store, kind, params, batch_id, batch_index, parent_id,
                              q->cfg.max_queued, id);
    if (rc)
        return rc;
    jobs_publish_stage(q, *id, "queued", -1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_signal(&q->work[kind == STORE_JOB_GENERATE]);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int jobs_cancel(jobs *q, int64_t id, int *now)
{
    *now = 0;
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_slots; i++) {
        if (q->slots[i].running == id) {
            q->slots[i].cancel = 1;
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&q->lock);
    store_job j;
    int rc = store_job_get(q->store, id, &j);
    if (rc)
        return rc;
    int queued = !strcmp(j.state, "queued");
    char state[12];
    snprintf(state, sizeof state, "%s", j.state);
    store_job_clear(&j);
    if (!queued)
        return m2p_error(M2P_EINVAL, "job %lld is already %s", (long long)id, state);
    if (store_job_fail(q->store, id, "canceled by request", 1))
        return m2p_error(M2P_EINVAL, "job %lld is no longer queued", (long long)id);
    json_t *e = json_pack("{s:s, s:I, s:s, s:b}", "type", "error", "job", (json_int_t)id, "message",
                          "canceled by request", "canceled", 1);
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", "canceled by request");
    jobs_publish(q, id, PROGRESS_ERROR, -1, e, &o, 1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
    *now = 1;
    return 0;
}

int jobs_delete(jobs *q, int64_t id)
{
    /* A running job is told to stop; its runner then finds the row gone and stores nothing. */
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_slots; i++)
        if (q->slots[i].running == id)
            q->slots[i].cancel = 1;
    pthread_mutex_unlock(&q->lock);
    int rc = store_job_delete(q->store, id);
    if (!rc)
        progress_forget(q->bus, id);
    return rc;
}

static int terminal(const char *state)
{
    return !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "canceled");
}

int jobs_wait(jobs *q, int64_t id, int timeout_ms, store_job *out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        int rc = store_job_get(q->store, id, out);
        if (rc)
            return rc;
        if (terminal(out->state))
            return 0;
        store_job_clear(out);
        pthread_mutex_lock(&q->lock);
        /* Wake on any finished job, and at least every 500 ms (another process may run it). */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (ts.tv_sec > deadline.tv_sec ||
            (ts.tv_sec == deadline.tv_sec && ts.tv_nsec > deadline.tv_nsec))
            ts = deadline;
        int stop = q->stop;
        if (!stop)
            pthread_cond_timedwait(&q->done, &q->lock, &ts);
        pthread_mutex_unlock(&q->lock);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (stop || now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
            rc = store_job_get(q->store, id, out);
            if (rc)
                return rc;
            if (terminal(out->state))
                return 0;
            return m2p_error(M2P_ETIMEOUT, "job %lld is still %s", (long long)id, out->state);
        }
    }
}

static json_t *parse_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *v = m2p_json_loads(s, 0, NULL);
    return v ? v : json_string(s);
}

static json_t *job_object(const store_job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "kind", json_string(store_job_kind_name(j->kind)));
    json_object_set_new(o, "state", json_string(j->state));
    json_object_set_new(o, "params", parse_or_null(j->params));
    json_object_set_new(o, "result", parse_or_null(j->result));
    json_object_set_new(o, "error", j->error ? json_string(j->error) : json_null());
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "batch_id", j->batch_id ? json_integer(j->batch_id) : json_null());
    json_object_set_new(o, "parent_id", j->parent_id ? json_integer(j->parent_id) : json_null());
    json_object_set_new(o, "created_ms", json_integer(j->created_ms));
    json_object_set_new(o, "started_ms", j->started_ms ? json_integer(j->started_ms) : json_null());
    json_object_set_new(o, "finished_ms",
                        j->finished_ms ? json_integer(j->finished_ms) : json_null());
    return o;
}

char *jobs_job_json(const store_job *j)
{
    json_t *o = job_object(j);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *jobs_state_event(const store_job *j)
{
    json_t *o = json_pack("{s:s, s:I, s:o}", "type", "state", "job", (json_int_t)j->id, "state",
                          job_object(j));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void jobs_get_stats(jobs *q, jobs_stats *out)
{
    memset(out, 0, sizeof *out);
    store_job_count(q->store, "queued", -1, &out->queued);
    store_job_count(q->store, "running", -1, &out->running);
    store_job_count(q->store, "done", -1, &out->done);
    store_job_count(q->store, "failed", -1, &out->failed);
}
