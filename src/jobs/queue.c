/*
 * queue.c — the worker pool over the persistent jobs table (see queue.h).
 *
 * Workers sleep on a condition variable per kind and also poll once a second, so a job queued by
 * another process sharing the database (or left queued by a crash) is picked up too. Claiming is
 * a transaction in the store, so the table, not memory, decides who runs what. A claim is a
 * lease: the heartbeat thread renews the running jobs' leases every third of the lease, learns
 * of cancel requests from other nodes, requeues jobs whose lease expired elsewhere and records
 * this worker in the workers table. Cancellation of a running job is an atomic flag the runner's
 * callbacks read; a finished job wakes jobs_wait callers. With a PostgreSQL store, every event
 * is also written for the other nodes (runner.c), and the relay thread puts theirs on this bus.
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
#include "store/store.h"

_Static_assert((int)JOBS_ANALYZE == (int)STORE_JOB_ANALYZE &&
                   (int)JOBS_GENERATE == (int)STORE_JOB_GENERATE,
               "the job kinds of jobs/queue.h are the store's");

jobs_config jobs_default_config(void)
{
    jobs_config c;
    memset(&c, 0, sizeof c);
    c.data_dir = "data";
    c.analysis_workers = 2;
    c.max_queued = 200;
    c.max_attempts = 2;
    c.preview = M2P_PREVIEW_AUTO; /* TAESD when the model cache has it, else latent RGB */
    c.lease_ms = 30000;
    c.run_jobs = 1;
    c.kinds = 1 << STORE_JOB_ANALYZE | 1 << STORE_JOB_GENERATE;
    c.generate_workers = 1;
    return c;
}

static void *worker_main(void *arg)
{
    worker_slot *slot = arg;
    jobs *q = slot->q;
    store_lease lease = {.worker = q->name, .lease_ms = q->cfg.lease_ms, .models = q->cfg.models};
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        pthread_mutex_unlock(&q->lock);
        store_job job;
        int rc = store_job_claim(q->store, slot->kind, &lease, &job);
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
        slot->attempt = job.attempts;
        atomic_store(&slot->cancel, job.cancel_requested);
        atomic_store(&slot->lost, 0);
        pthread_mutex_unlock(&q->lock);
        M2P_LOGI("job %lld: %s, attempt %d, run by %s", (long long)job.id,
                 store_job_kind_name(job.kind), job.attempts, q->name);

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
        slot->attempt = 0;
        atomic_store(&slot->cancel, 0);
        atomic_store(&slot->lost, 0);
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void add_ms(struct timespec *ts, int ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void kinds_text(int kinds, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", kinds & 1 << STORE_JOB_GENERATE ? "generate" : "",
             (kinds & 3) == 3 ? "," : "", kinds & 1 << STORE_JOB_ANALYZE ? "analyze" : "");
}

/* Every third of a lease: renew the running jobs' leases (and pick up cancel requests), requeue
 * jobs whose lease expired on other workers, and record this worker. */
static void *heartbeat_main(void *arg)
{
    jobs *q = arg;
    int period = q->cfg.lease_ms / 3 > 50 ? q->cfg.lease_ms / 3 : 50;
    int was_down = 0;
    pthread_mutex_lock(&q->lock);
    /* Not q->stop: runners that are stopping still hold their leases until they have handed
     * their jobs back, which can take a step of the model; jobs_stop ends this loop after them. */
    while (!q->beat_stop) {
        int64_t ids[JOBS_MAX_WORKERS];
        int attempts[JOBS_MAX_WORKERS], n = 0;
        for (int i = 0; i < q->n_slots; i++)
            if (q->slots[i].running) {
                ids[n] = q->slots[i].running;
                attempts[n++] = q->slots[i].attempt;
            }
        pthread_mutex_unlock(&q->lock);
        int down = 0;
        for (int i = 0; i < n; i++) {
            store_job held = {.id = ids[i], .attempts = attempts[i]};
            int cancel = 0;
            int rc = store_job_renew(q->store, &held, q->cfg.lease_ms, &cancel);
            pthread_mutex_lock(&q->lock);
            for (int k = 0; k < q->n_slots; k++) {
                worker_slot *sl = &q->slots[k];
                if (sl->running != ids[i] || sl->attempt != attempts[i])
                    continue;
                if (rc == M2P_ENOTFOUND)
                    atomic_store(&sl->lost, 1);
                else if (!rc && cancel)
                    atomic_store(&sl->cancel, 1);
            }
            pthread_mutex_unlock(&q->lock);
            if (rc == M2P_ENOTFOUND)
                M2P_LOGW("job %lld: %s; stopping it", (long long)ids[i], m2p_errmsg());
            else if (rc)
                down = 1;
        }
        /* Only nodes that run jobs requeue others' expired ones: their --max-attempts rules. */
        int requeued = 0, failed = 0;
        if (q->cfg.run_jobs &&
            store_jobs_recover(q->store, q->cfg.max_attempts, NULL, &requeued, &failed))
            down = 1;
        else if (requeued || failed)
            M2P_LOGW("jobs: %d job(s) whose worker stopped renewing its lease queued again, "
                     "%d failed after %d attempts",
                     requeued, failed, q->cfg.max_attempts);
        if (q->cfg.run_jobs) {
            store_worker w = {
                .pid = (int)getpid(), .started_ms = q->started_ms, .job = n ? ids[0] : 0};
            snprintf(w.name, sizeof w.name, "%s", q->name);
            snprintf(w.host, sizeof w.host, "%s", q->host);
            kinds_text(q->cfg.kinds, w.kinds, sizeof w.kinds);
            snprintf(w.models, sizeof w.models, "%s", q->cfg.models ? q->cfg.models : "");
            if (store_worker_beat(q->store, &w))
                down = 1;
        }
        if (down && !was_down)
            M2P_LOGW("jobs: the store is unreachable (%s); retrying", m2p_errmsg());
        else if (!down && was_down)
            M2P_LOGW("jobs: the store is reachable again");
        was_down = down;
        pthread_mutex_lock(&q->lock);
        if (q->beat_stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        add_ms(&ts, period);
        pthread_cond_timedwait(&q->beat, &q->lock, &ts);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* Other nodes' events (PostgreSQL NOTIFY) -> this node's bus, so its WebSocket clients see jobs
 * that run elsewhere. Events this node wrote itself are already on its bus. */
static void *relay_main(void *arg)
{
    jobs *q = arg;
    store_listener *l = NULL;
    if (store_listener_open(q->cfg.store_url, &l)) {
        M2P_LOGW("jobs: no progress from other nodes: %s", m2p_errmsg());
        return NULL;
    }
    while (!atomic_load(&q->stop)) {
        int64_t job = 0;
        char *text = NULL;
        if (store_listener_wait(l, 250, &job, &text) || !text)
            continue;
        json_error_t err;
        json_t *env = json_loads(text, 0, &err);
        free(text);
        const char *node = json_string_value(json_object_get(env, "node"));
        json_t *event = json_object_get(env, "event");
        if (!env || !node || !event || !strcmp(node, q->node)) {
            json_decref(env);
            continue;
        }
        int kind = (int)json_integer_value(json_object_get(env, "kind"));
        int variation = (int)json_integer_value(json_object_get(env, "variation"));
        char *js = json_dumps(event, JSON_COMPACT);
        json_t *arr = json_object_get(env, "orig");
        char *o[32] = {0};
        int n = 0;
        for (size_t i = 0; i < json_array_size(arr) && n < 32; i++)
            if ((o[n] = json_dumps(json_array_get(arr, i), JSON_COMPACT)))
                n++;
        if (js)
            progress_publish(q->bus, job, kind, variation, js, (const char *const *)o, n);
        free(js);
        for (int i = 0; i < n; i++)
            free(o[i]);
        json_decref(env);
        if (kind == PROGRESS_DONE || kind == PROGRESS_ERROR) {
            pthread_mutex_lock(&q->lock);
            pthread_cond_broadcast(&q->done);
            pthread_mutex_unlock(&q->lock);
        }
    }
    store_listener_close(l);
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
    if (q->cfg.generate_workers < 1)
        q->cfg.generate_workers = 1;
    if (q->cfg.analysis_workers + q->cfg.generate_workers > JOBS_MAX_WORKERS)
        q->cfg.analysis_workers = JOBS_MAX_WORKERS - q->cfg.generate_workers;
    if (q->cfg.max_attempts < 1)
        q->cfg.max_attempts = 1;
    if (q->cfg.lease_ms < 100)
        q->cfg.lease_ms = 100;
    if (!(q->cfg.kinds & 3))
        q->cfg.kinds = 3;
    q->store = store;
    q->bus = bus;
    q->models = models;
    q->remote = !strcmp(store_backend_name(store), "postgresql");
    q->started_ms = (int64_t)time(NULL) * 1000;
    if (gethostname(q->host, sizeof q->host) != 0 || !q->host[0])
        snprintf(q->host, sizeof q->host, "localhost");
    q->host[sizeof q->host - 1] = 0;
    /* The default name is the host's: a node that restarts recognises the jobs it held. */
    snprintf(q->name, sizeof q->name, "%s",
             cfg->worker_name && *cfg->worker_name ? cfg->worker_name : q->host);
    snprintf(q->node, sizeof q->node, "%s/%d/%lld", q->host, (int)getpid(),
             (long long)q->started_ms);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/uploads", q->data_dir);
    int rc = mkdir_p(dir);
    /* The analysis' caches (genres, band/song) live where the jobs do: shared on PostgreSQL. */
    if (!rc)
        rc = m2p_store_open(cfg->store_url && *cfg->store_url ? cfg->store_url : q->data_dir,
                            &q->cache);
    if (rc) {
        free(q);
        return rc;
    }
    int requeued = 0, failed = 0;
    if ((rc = store_jobs_recover(store, q->cfg.max_attempts, q->cfg.run_jobs ? q->name : NULL,
                                 &requeued, &failed))) {
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
    pthread_cond_init(&q->beat, NULL);
    int n_gen = q->cfg.kinds & 1 << STORE_JOB_GENERATE ? q->cfg.generate_workers : 0;
    int n_an = q->cfg.kinds & 1 << STORE_JOB_ANALYZE ? q->cfg.analysis_workers : 0;
    if (!q->cfg.run_jobs)
        n_gen = n_an = 0;
    for (int i = 0; i < n_gen + n_an; i++) {
        worker_slot *s = &q->slots[i];
        s->q = q;
        s->kind = i < n_gen ? STORE_JOB_GENERATE : STORE_JOB_ANALYZE;
        if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
            jobs_stop(q);
            return m2p_error(M2P_ENOMEM, "cannot start worker threads");
        }
        q->n_slots = i + 1;
    }
    if (pthread_create(&q->heartbeat, NULL, heartbeat_main, q) != 0) {
        jobs_stop(q);
        return m2p_error(M2P_ENOMEM, "cannot start the heartbeat thread");
    }
    q->heartbeat_started = 1;
    if (q->remote && cfg->store_url && cfg->progress_from_others) {
        if (pthread_create(&q->relay, NULL, relay_main, q) != 0) {
            jobs_stop(q);
            return m2p_error(M2P_ENOMEM, "cannot start the progress relay thread");
        }
        q->relay_started = 1;
    }
    *out = q;
    return 0;
}

void jobs_request_stop(jobs *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    /* Not a cancel: each runner hands its job back to the queue (jobs_interrupted). */
    atomic_store(&q->stop, 1);
    pthread_cond_broadcast(&q->work[0]);
    pthread_cond_broadcast(&q->work[1]);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
}

void jobs_stop(jobs *q)
{
    if (!q)
        return;
    jobs_request_stop(q);
    for (int i = 0; i < q->n_slots; i++)
        pthread_join(q->slots[i].thread, NULL);
    pthread_mutex_lock(&q->lock);
    q->beat_stop = 1;
    pthread_cond_broadcast(&q->beat);
    pthread_mutex_unlock(&q->lock);
    if (q->heartbeat_started)
        pthread_join(q->heartbeat, NULL);
    if (q->relay_started)
        pthread_join(q->relay, NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->work[0]);
    pthread_cond_destroy(&q->work[1]);
    pthread_cond_destroy(&q->done);
    pthread_cond_destroy(&q->beat);
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

int jobs_submit_batch(jobs *q, const char *params, int kind, const char *const *job_params, int n,
                      int64_t *batch_id, int64_t *ids)
{
    int rc = store_batch_submit(q->store, params, kind, job_params, n, batch_id, ids);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        jobs_publish_stage(q, ids[i], "queued", -1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->work[kind == STORE_JOB_GENERATE]);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

/* A job that will never run (canceled while queued, deleted) lets go of its upload's shared
 * copy (PostgreSQL, params "audio_key"; run_analyze drops it for a job that ran). */
static void drop_shared_upload(jobs *q, const store_job *j)
{
    if (!q->remote || j->kind != STORE_JOB_ANALYZE || !j->params)
        return;
    json_t *p = json_loads(j->params, 0, NULL);
    json_t *k = json_object_get(p, "audio_key");
    if (json_is_string(k) && store_audio_delete(q->store, json_string_value(k)))
        M2P_LOGW("job %lld: the shared upload %s stays in the store: %s", (long long)j->id,
                 json_string_value(k), m2p_errmsg());
    json_decref(p);
}

int jobs_cancel(jobs *q, int64_t id, int *now)
{
    *now = 0;
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_slots; i++) {
        if (q->slots[i].running == id) {
            atomic_store(&q->slots[i].cancel, 1);
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&q->lock);
    store_job j;
    int rc = store_job_get(q->store, id, &j);
    if (rc)
        return rc;
    char state[12];
    snprintf(state, sizeof state, "%s", j.state);
    /* Running on another node: its heartbeat reads the request within a third of a lease. */
    if (!strcmp(state, "running") && store_job_request_cancel(q->store, id) == 0) {
        store_job_clear(&j);
        return 0;
    }
    if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0) {
        store_job_clear(&j);
        return m2p_error(M2P_EINVAL, "job %lld is already %s", (long long)id, state);
    }
    if (store_job_fail(q->store, id, 0, "canceled by request", 1)) {
        store_job_clear(&j);
        return m2p_error(M2P_EINVAL, "job %lld is no longer queued", (long long)id);
    }
    drop_shared_upload(q, &j);
    store_job_clear(&j);
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
    int here = 0;
    for (int i = 0; i < q->n_slots; i++)
        if (q->slots[i].running == id) {
            atomic_store(&q->slots[i].cancel, 1);
            here = 1;
        }
    pthread_mutex_unlock(&q->lock);
    if (!here)
        store_job_request_cancel(q->store, id); /* running elsewhere: its lease is lost anyway */
    store_job j;
    int have = store_job_get(q->store, id, &j) == 0;
    int rc = store_job_delete(q->store, id);
    if (have) {
        if (!rc)
            drop_shared_upload(q, &j);
        store_job_clear(&j);
    }
    if (!rc)
        progress_forget(q->bus, id);
    return rc;
}

static int terminal(const char *state)
{
    return !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "canceled");
}

/* The store's row until it is terminal; then it moves into the caller's record. */
static int wait_get(jobs *q, int64_t id, store_job *j, int *done)
{
    int rc = store_job_get(q->store, id, j);
    *done = !rc && terminal(j->state);
    return rc;
}

int jobs_wait(jobs *q, int64_t id, int timeout_ms, jobs_record *out)
{
    memset(out, 0, sizeof *out);
    store_job j;
    int done = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        int rc = wait_get(q, id, &j, &done);
        if (rc)
            return rc;
        if (done) {
            jobs_record_take(out, &j);
            return 0;
        }
        store_job_clear(&j);
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
            if ((rc = wait_get(q, id, &j, &done)))
                return rc;
            if (done) {
                jobs_record_take(out, &j);
                return 0;
            }
            rc = m2p_error(M2P_ETIMEOUT, "job %lld is still %s", (long long)id, j.state);
            store_job_clear(&j);
            return rc;
        }
    }
}

void jobs_get_stats(jobs *q, jobs_stats *out)
{
    memset(out, 0, sizeof *out);
    store_job_count(q->store, "queued", -1, &out->queued);
    store_job_count(q->store, "running", -1, &out->running);
    store_job_count(q->store, "done", -1, &out->done);
    store_job_count(q->store, "failed", -1, &out->failed);
}

char *jobs_workers_json(jobs *q)
{
    store_worker *w = NULL;
    int n = 0;
    json_t *arr = json_array();
    if (store_workers_list(q->store, (int64_t)time(NULL) * 1000 - 3LL * q->cfg.lease_ms, &w, &n) ==
        0) {
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:I}", "name",
                                                 w[i].name, "host", w[i].host, "pid", w[i].pid,
                                                 "kinds", w[i].kinds, "models", w[i].models, "job",
                                                 (json_int_t)w[i].job, "seen_ms",
                                                 (json_int_t)w[i].seen_ms));
    }
    free(w);
    char *s = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return s;
}
