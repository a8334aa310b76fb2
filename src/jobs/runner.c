/*
 * runner.c — what the queue gives a job runner (run_analyze.c, run_generate.c): publishing its
 * events (on this node's bus and, with a PostgreSQL store, for the other nodes: the queue's
 * relay thread puts theirs on this bus), failing or handing back a job, writing its outcome
 * through a store outage, and the stop check its callbacks ask. The calls go one way: the
 * queue (queue.c) claims a job and calls its runner; the runners call only these, never the
 * queue's own functions (queue_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "jobs/queue_internal.h"
#include "store/store.h"

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
    if (json && q->remote) {
        /* The other nodes get {node, kind, variation, event, orig} (relay_main below). */
        json_t *env = json_object(), *arr = json_array();
        if (env && arr) {
            json_object_set_new(env, "node", json_string(q->node));
            json_object_set_new(env, "kind", json_integer(kind));
            json_object_set_new(env, "variation", json_integer(variation));
            json_object_set(env, "event", event);
            for (int i = 0; i < n_orig; i++)
                if (orig[i])
                    json_array_append(arr, orig[i]);
            json_object_set(env, "orig", arr);
        }
        json_decref(arr);
        char *es = env ? json_dumps(env, JSON_COMPACT) : NULL;
        int64_t id = 0;
        int failed = !es || store_event_put(q->store, job, es, &id) != 0;
        /* Say so once per outage, not once per step. */
        if (atomic_exchange(&q->relay_failing, failed) != failed && failed)
            M2P_LOGW("job %lld: events do not reach the other nodes: %s", (long long)job,
                     es ? m2p_errmsg() : "out of memory");
        free(es);
        json_decref(env);
    }
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

void jobs_fail(jobs *q, int64_t job, int attempt, const char *message, int canceled)
{
    if (store_job_fail(q->store, job, attempt, message, canceled)) {
        /* The lease is gone (another worker has the job now): say so, publish nothing. */
        M2P_LOGW("job %lld: %s; this outcome (%s) is dropped", (long long)job, m2p_errmsg(),
                 message);
        return;
    }
    M2P_LOGI("job %lld %s: %s", (long long)job, canceled ? "canceled" : "failed", message);
    json_t *e = json_pack("{s:s, s:I, s:s, s:b}", "type", "error", "job", (json_int_t)job,
                          "message", message, "canceled", canceled);
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", message);
    jobs_publish(q, job, PROGRESS_ERROR, -1, e, &o, 1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
}

int jobs_should_stop(const worker_slot *slot)
{
    return atomic_load(&slot->cancel) || atomic_load(&slot->lost) || atomic_load(&slot->q->stop);
}

void jobs_interrupted(jobs *q, worker_slot *slot, const store_job *job)
{
    if (atomic_load(&slot->lost)) {
        M2P_LOGW("job %lld: attempt %d lost its lease (another worker may run it now); its "
                 "outcome is dropped",
                 (long long)job->id, job->attempts);
    } else if (atomic_load(&slot->cancel)) {
        jobs_fail(q, job->id, job->attempts, "canceled by request", 1);
    } else if (store_job_release(q->store, job) == 0) {
        M2P_LOGI("job %lld: handed back to the queue (this worker is stopping)",
                 (long long)job->id);
        jobs_publish_stage(q, job->id, "queued", -1);
    } else {
        /* Not even that: its lease expires and the next worker takes it. */
        M2P_LOGW("job %lld: could not hand it back (%s); it runs again once its lease expires",
                 (long long)job->id, m2p_errmsg());
    }
}

int jobs_write_outcome(jobs *q, const store_job *job,
                       int (*write)(jobs *q, const store_job *job, void *ud), void *ud)
{
    int64_t give_up = (int64_t)time(NULL) * 1000 + q->cfg.lease_ms;
    int wait_ms = 100, retried = 0;
    for (;;) {
        int rc = write(q, job, ud);
        if (rc == M2P_ENOTFOUND && retried) {
            store_job now;
            if (store_job_get(q->store, job->id, &now) == 0) {
                int mine = !strcmp(now.state, "done") && now.attempts == job->attempts &&
                           !strcmp(now.worker, q->name);
                store_job_clear(&now);
                if (mine)
                    return 0;
            }
        }
        if (rc != M2P_EBUSY || (int64_t)time(NULL) * 1000 >= give_up)
            return rc;
        if (!retried)
            M2P_LOGW("job %lld: cannot write its outcome yet (%s); retrying", (long long)job->id,
                     m2p_errmsg());
        retried = 1;
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        wait_ms = wait_ms * 2 > 2000 ? 2000 : wait_ms * 2;
    }
}
