/*
 * run_analyze.c — one analysis job: source (URL or uploaded file) -> m2p_analyze (fetch, decode,
 * features, band/song, genre, prompts) -> the analysis JSON as the job's result.
 *
 * Download percentages and the analyser's stages become bus events. When the request named the
 * band or song (the page's "verify" step), the chosen prompt is rebuilt with those names. A job
 * of a batch then queues its generation with the batch's parameters and the chosen prompt, in
 * the transaction that commits its result (store_job_finish_and_queue).
 * An uploaded file is removed once its job has finished (its result keeps the features and the
 * file's content hash as the source id). On a PostgreSQL store the web node put the file's bytes
 * in the store (params "audio_key"): this node copies them into its own --data first, and the
 * store's copy goes when the job has ended. A URL's download is shared the same way (the shared
 * level of the audio cache), so a second node analysing it downloads nothing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "jobs/queue_internal.h"
#include "store/store.h"

typedef struct an_ctx {
    jobs *q;
    int64_t job;
    worker_slot *slot; /* jobs_should_stop(slot): a nonzero answer stops m2p_analyze */
    int last_percent;
    char last_stage[32];
} an_ctx;

static int on_download(double percent, void *ud)
{
    an_ctx *c = ud;
    int p = percent < 0 ? -1 : (int)floor(percent);
    if (p == c->last_percent)
        return jobs_should_stop(c->slot);
    c->last_percent = p;
    jobs_publish_stage(c->q, c->job, "download", p < 0 ? -1 : (double)p);
    return jobs_should_stop(c->slot);
}

/* The analyser's stages: "downloading" (fraction), "decoding", "analysing", "genre",
 * "prompts". The download becomes the "download" event with a whole percentage. */
static int on_stage(const char *stage, double fraction, void *ud)
{
    an_ctx *c = ud;
    if (!stage)
        return jobs_should_stop(c->slot);
    if (!strcmp(stage, "downloading"))
        return on_download(fraction < 0 ? -1 : fraction * 100, ud);
    if (!strcmp(stage, c->last_stage))
        return jobs_should_stop(c->slot);
    snprintf(c->last_stage, sizeof c->last_stage, "%s", stage);
    jobs_publish_stage(c->q, c->job, stage, -1);
    return jobs_should_stop(c->slot);
}

static const char *str(json_t *o, const char *k, const char *def)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && json_string_length(v) ? json_string_value(v) : def;
}

/* The features a gallery entry keeps: the scalar ones (no envelope, beats or MFCC arrays). */
static json_t *features_summary(json_t *features)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(features, k, v)
    {
        if (!json_is_array(v) && !json_is_object(v))
            json_object_set(out, k, v);
    }
    return out;
}

/* The parameters of a batch item's generation (malloc'd JSON; NULL when out of memory): the
 * batch's generation settings with the analysis' prompt, features and source. */
static char *batch_generation_params(const store_job *job, json_t *params, json_t *result)
{
    json_t *gen = json_deep_copy(json_object_get(params, "generate"));
    if (!json_is_object(gen)) {
        json_decref(gen);
        gen = json_object();
    }
    if (!gen)
        return NULL;
    json_object_set(gen, "prompt", json_object_get(result, "prompt"));
    json_object_set(gen, "negative_prompt", json_object_get(result, "negative_prompt"));
    json_t *f = json_object_get(result, "features");
    if (json_is_object(f))
        json_object_set_new(gen, "features", features_summary(f));
    json_object_set_new(gen, "source",
                        json_pack("{s:s?, s:O?, s:O?, s:O?}", "url", str(params, "source", NULL),
                                  "band", json_object_get(result, "band"), "song",
                                  json_object_get(result, "song"), "genre",
                                  json_object_get(result, "genre")));
    if (!json_object_get(gen, "seed")) {
        /* One seed per item, chosen now so a retry after a restart draws the same image. */
        uint64_t seed =
            ((uint64_t)time(NULL) * 2654435761u + (uint64_t)job->id * 40503u) & 0xffffffffu;
        json_object_set_new(gen, "seed", json_integer((json_int_t)seed));
    }
    char *s = json_dumps(gen, JSON_COMPACT);
    json_decref(gen);
    return s;
}

/* A new queued generation: its "queued" event and a wake-up for the generation workers. */
static void announce_generation(jobs *q, int64_t id)
{
    jobs_publish_stage(q, id, "queued", -1);
    pthread_mutex_lock(&q->lock);
    pthread_cond_signal(&q->work[1]);
    pthread_mutex_unlock(&q->lock);
}

/* An upload's message names the file as the user sent it, never the server's folder for it:
 * a leading "PATH: " goes, every other PATH becomes the file's name. */
static void upload_message(char *msg, size_t len, const char *path)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t pn = strlen(path);
    if (!pn)
        return;
    char out[1024];
    const char *s = msg;
    if (!strncmp(s, path, pn) && !strncmp(s + pn, ": ", 2))
        s += pn + 2;
    size_t k = 0;
    while (*s && k + 1 < sizeof out) {
        if (!strncmp(s, path, pn)) {
            int w = snprintf(out + k, sizeof out - k, "%s", name);
            k = w < 0 ? k : k + (size_t)w < sizeof out ? k + (size_t)w : sizeof out - 1;
            s += pn;
        } else {
            out[k++] = *s++;
        }
    }
    out[k] = 0;
    snprintf(msg, len, "%s", out);
}

/* Rebuild the chosen prompt (with the band/song the user confirmed) into result. */
static int choose_prompt(const m2p_analysis *a, int version, const char *band, const char *song,
                         json_t *result)
{
    char *prompt = NULL, *neg = NULL;
    int rc = m2p_prompt_build(version, &a->features, band, song, a->genre_raw, &prompt, &neg);
    if (rc)
        return rc;
    json_object_set_new(result, "prompt", json_string(prompt));
    json_object_set_new(result, "negative_prompt", json_string(neg ? neg : ""));
    json_object_set_new(result, "prompt_version", json_integer(version));
    free(prompt);
    free(neg);
    return 0;
}

/* data/uploads/up-XXXX/<name>: the file, then its private folder. */
static void remove_upload_file(int upload, const char *source)
{
    if (!upload || !source[0])
        return;
    unlink(source);
    char dir[1600];
    snprintf(dir, sizeof dir, "%s", source);
    char *slash = strrchr(dir, '/');
    if (slash && strstr(dir, "/uploads/up-")) {
        *slash = 0;
        rmdir(dir);
    }
}

/* An upload kept in the shared store (PostgreSQL: the web node that received it may be another
 * host) is copied to <data>/uploads/<key>/<its name> for the analyser, on a connection of its
 * own (the node's shared one renews the leases: a long copy must not hold it). While the store
 * is unreachable the copy is retried with backoff for up to one lease. */
static int fetch_upload(jobs *q, worker_slot *slot, int64_t job, const char *key,
                        const char *source, char *path, size_t len)
{
    const char *name = strrchr(source, '/');
    name = name && name[1] ? name + 1 : "upload";
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/uploads", q->data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dir, sizeof dir, "%s/uploads/%s", q->data_dir, key);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "cannot create %s: %s", dir, strerror(errno));
    if (snprintf(path, len, "%s/%s", dir, name) >= (int)len)
        return m2p_error(M2P_EINVAL, "the upload's local name is too long");
    int64_t size = 0, give_up = (int64_t)time(NULL) * 1000 + q->cfg.lease_ms;
    int wait_ms = 100, rc;
    for (;;) {
        m2p_store *own = NULL;
        rc = q->cfg.store_url ? m2p_store_open(q->cfg.store_url, &own)
                              : m2p_error(M2P_EUNSUPPORTED, "no shared store to fetch from");
        if (!rc)
            rc = store_audio_get(own, key, path, &size);
        m2p_store_close(own);
        if (rc != M2P_EBUSY || (int64_t)time(NULL) * 1000 >= give_up || jobs_should_stop(slot))
            break;
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        wait_ms = wait_ms < 1600 ? wait_ms * 2 : wait_ms;
    }
    if (rc) {
        rmdir(dir);
        return rc;
    }
    M2P_LOGI("job %lld: fetched the upload %s (%lld bytes) from the store", (long long)job, key,
             (long long)size);
    return 0;
}

/* The shared level of the download cache (m2p_fetch_params.shared_get/put) on a PostgreSQL
 * store: the entry's bytes are the shared file "dl-<key>", its index the cache row
 * audio_shared/<key> = {"file": "audio.EXT", "info": {...}} written after the bytes, so an
 * index row never names missing bytes for long (a trim may still race a reader: it then
 * downloads). Both use a connection of their own, as fetch_upload does. The shared copies are
 * kept under the node's audio cache limit, oldest out first. */
#define SHARED_NS "audio_shared"

static int shared_key(const char *key, char *out, size_t len)
{
    return snprintf(out, len, "dl-%s", key) < (int)len
               ? 0
               : m2p_error(M2P_EINVAL, "the cache key %s is too long to share", key);
}

static int shared_get(void *ud, const char *key, const char *dir, char *file, size_t file_len,
                      char **info_json)
{
    jobs *q = ud;
    char bkey[160];
    int rc = shared_key(key, bkey, sizeof bkey);
    m2p_store *own = NULL;
    if (!rc)
        rc = m2p_store_open(q->cfg.store_url, &own);
    char *v = NULL;
    if (!rc)
        rc = store_cache_get(own, SHARED_NS, key, &v);
    json_t *o = v ? json_loads(v, 0, NULL) : NULL;
    free(v);
    const char *name = str(o, "file", "");
    json_t *info = json_object_get(o, "info");
    if (!rc && (strncmp(name, "audio.", 6) != 0 || strchr(name, '/') || !json_is_object(info)))
        rc = m2p_error(M2P_EFORMAT, "the shared index entry of %s is not valid", key);
    if (!rc && snprintf(file, file_len, "%s/%s", dir, name) >= (int)file_len)
        rc = m2p_error(M2P_EINVAL, "the folder name %s is too long", dir);
    int64_t size = 0;
    if (!rc)
        rc = store_audio_get(own, bkey, file, &size);
    if (!rc && !(*info_json = json_dumps(info, JSON_COMPACT)))
        rc = m2p_error(M2P_ENOMEM, "out of memory");
    json_decref(o);
    m2p_store_close(own);
    return rc;
}

static int shared_put(void *ud, const char *key, const char *file, const char *info_json)
{
    jobs *q = ud;
    char bkey[160];
    int rc = shared_key(key, bkey, sizeof bkey);
    m2p_store *own = NULL;
    if (!rc)
        rc = m2p_store_open(q->cfg.store_url, &own);
    const char *name = strrchr(file, '/');
    name = name ? name + 1 : file;
    int64_t limit = q->cfg.audio_cache_limit > 0 ? q->cfg.audio_cache_limit
                                                 : m2p_fetch_default_params().cache_limit;
    int64_t size = 0;
    if (!rc)
        rc = store_audio_put(own, bkey, file, limit, &size);
    json_t *info = rc ? NULL : json_loads(info_json, 0, NULL);
    json_t *o = info ? json_pack("{s:s, s:o}", "file", name, "info", info) : NULL;
    char *v = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!rc && !v)
        rc = m2p_error(M2P_ENOMEM, "out of memory indexing %s", key);
    if (!rc)
        rc = store_cache_put(own, SHARED_NS, key, v, 0);
    free(v);
    int removed = 0;
    if (!rc && !store_audio_trim(own, "dl-", limit, &removed) && removed)
        M2P_LOGI("cache: %d shared download(s) removed to stay under %lld bytes", removed,
                 (long long)limit);
    m2p_store_close(own);
    return rc;
}

/* The job's end is committed (or it will never run again): the upload goes, here and, when it
 * was shared, from the store. */
static void drop_upload(jobs *q, int upload, const char *source, const char *key)
{
    remove_upload_file(upload, source);
    if (key && store_audio_delete(q->store, key))
        M2P_LOGW("the shared upload %s stays in the store: %s", key, m2p_errmsg());
}

/* The outcome to commit: the result, and for a batch item the generation queued with it in the
 * same transaction (a crash between the two left the item done with nothing after it). */
typedef struct an_outcome {
    const char *result;
    const char *next_params; /* NULL: not a batch item */
    int64_t next_id;
} an_outcome;

static int write_result(jobs *q, const store_job *job, void *ud)
{
    an_outcome *o = ud;
    if (!o->next_params)
        return store_job_finish(q->store, job, o->result);
    return store_job_finish_and_queue(q->store, job, o->result, STORE_JOB_GENERATE, o->next_params,
                                      &o->next_id);
}

void run_analyze(jobs *q, worker_slot *slot, const store_job *job)
{
    json_t *p = json_loads(job->params, 0, NULL);
    if (!json_is_object(p)) {
        json_decref(p);
        jobs_fail(q, job->id, job->attempts, "the job's parameters are not a JSON object", 0);
        return;
    }
    const char *source = str(p, "source", "");
    int upload = json_is_true(json_object_get(p, "upload"));
    const char *key = upload ? str(p, "audio_key", NULL) : NULL;
    json_t *dv = json_object_get(p, "duration");
    double duration = json_is_number(dv) ? json_number_value(dv) : 60;
    json_t *vv = json_object_get(p, "prompt_version");
    int version = json_is_integer(vv) ? (int)json_integer_value(vv) : M2P_PROMPT_V4;

    an_ctx c = {.q = q, .job = job->id, .slot = slot, .last_percent = -2};
    char cache_dir[1200];
    snprintf(cache_dir, sizeof cache_dir, "%s/cache/audio", q->data_dir);
    m2p_fetch_params fp = m2p_fetch_default_params();
    fp.cache_dir = cache_dir;
    if (q->cfg.audio_cache_limit > 0)
        fp.cache_limit = q->cfg.audio_cache_limit;
    fp.progress = on_download;
    fp.user_data = &c;
    if (q->remote && q->cfg.store_url) {
        fp.shared_get = shared_get;
        fp.shared_put = shared_put;
        fp.shared_ud = q;
    }
    m2p_analysis_params ap = m2p_analysis_default_params();
    ap.duration_s = duration;
    ap.progress = on_stage;
    ap.user_data = &c;
    m2p_genre_params gp = m2p_genre_default_params();
    if (q->cfg.genre_offline)
        gp.offline = 1;

    char local[1500];
    if (key) {
        jobs_publish_stage(q, job->id, "download", 0);
        int frc = fetch_upload(q, slot, job->id, key, source, local, sizeof local);
        if (frc == M2P_ENOTFOUND) {
            jobs_fail(q, job->id, job->attempts,
                      "the uploaded file is no longer in the store; upload it again", 0);
            json_decref(p);
            return;
        }
        if (frc) {
            /* The store is down or this node cannot write the copy: another attempt (here or
             * on another worker) may succeed, so the job goes back rather than failing. */
            M2P_LOGW("job %lld: cannot fetch the upload %s: %s", (long long)job->id, key,
                     m2p_errmsg());
            if (!atomic_load(&slot->lost) && !atomic_load(&slot->cancel) &&
                store_job_release(q->store, job) == 0)
                jobs_publish_stage(q, job->id, "queued", -1);
            else
                jobs_interrupted(q, slot, job);
            json_decref(p);
            return;
        }
        source = local;
    }
    jobs_publish_stage(q, job->id, upload ? "decoding" : "download", upload ? -1 : 0);
    m2p_analysis a;
    memset(&a, 0, sizeof a);
    m2p_cache cache = m2p_store_cache(q->cache);
    int rc = m2p_analyze(source, &fp, &ap, &gp, q->cache ? &cache : NULL, &a);
    char msg[1024] = "";
    json_t *result = NULL;
    /* Stopped by its callback: canceled, lease lost, or handed back because the queue stops. */
    int interrupted = jobs_should_stop(slot) && (rc == M2P_ECANCELED || atomic_load(&slot->cancel) ||
                                                 atomic_load(&slot->lost));
    if (interrupted) {
        msg[0] = 0;
    } else if (rc) {
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        if (upload)
            upload_message(msg, sizeof msg, source);
    } else {
        char *js = m2p_analysis_to_json(&a);
        result = js ? json_loads(js, 0, NULL) : NULL;
        free(js);
        if (!json_is_object(result)) {
            snprintf(msg, sizeof msg, "the analysis could not be written as JSON");
        } else {
            const char *band = str(p, "band", a.band), *song = str(p, "song", a.song);
            json_object_set_new(result, "band", json_string(band));
            json_object_set_new(result, "song", json_string(song));
            if (choose_prompt(&a, version, band, song, result))
                snprintf(msg, sizeof msg, "building the prompt: %s", m2p_errmsg());
        }
    }
    m2p_analysis_free(&a);

    /* The upload is removed only once the job's end is committed: a crash before that retries
     * the job, which needs the file; so does a job handed back or run again by another worker. */
    if (interrupted) {
        json_decref(result);
        json_decref(p);
        int canceled = atomic_load(&slot->cancel);
        jobs_interrupted(q, slot, job);
        if (canceled)
            drop_upload(q, upload, source, key);
        else if (key)
            remove_upload_file(upload, source); /* the store keeps it for the next attempt */
        return;
    }
    if (msg[0]) {
        jobs_fail(q, job->id, job->attempts, msg, 0);
        drop_upload(q, upload, source, key);
        json_decref(result);
        json_decref(p);
        return;
    }
    char *rs = json_dumps(result, JSON_COMPACT);
    char *next = job->batch_id ? batch_generation_params(job, p, result) : NULL;
    an_outcome out = {rs, next, 0};
    if (rs && (next || !job->batch_id))
        rc = jobs_write_outcome(q, job, write_result, &out);
    else
        rc = m2p_error(M2P_ENOMEM, "out of memory writing the analysis' result");
    free(rs);
    free(next);
    if (rc == M2P_ENOTFOUND) {
        M2P_LOGW("job %lld: late result refused: %s", (long long)job->id, m2p_errmsg());
        if (key)
            remove_upload_file(upload, source); /* this copy only: the job is another's now */
        json_decref(result);
        json_decref(p);
        return;
    }
    if (rc) {
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        jobs_fail(q, job->id, job->attempts, msg, 0);
        drop_upload(q, upload, source, key);
        json_decref(result);
        json_decref(p);
        return;
    }
    drop_upload(q, upload, source, key);
    if (out.next_id)
        announce_generation(q, out.next_id);

    json_t *e = json_pack("{s:s, s:I, s:s, s:O}", "type", "done", "job", (json_int_t)job->id,
                          "kind", "analyze", "result", result);
    jobs_publish(q, job->id, PROGRESS_DONE, -1, e, NULL, 0);
    json_decref(result);
    json_decref(p);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->lock);
}
