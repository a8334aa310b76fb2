/*
 * run_analyze.c — one analysis job: source (URL or uploaded file) -> m2p_analyze (fetch, decode,
 * features, band/song, genre, prompts) -> the analysis JSON as the job's result.
 *
 * Download percentages and the analyser's stages become bus events. When the request named the
 * band or song (the page's "verify" step), the chosen prompt is rebuilt with those names. A job
 * of a batch then queues its generation with the batch's parameters and the chosen prompt, in
 * the transaction that commits its result (store_job_finish_and_queue).
 * An uploaded file is removed once its job has finished (its result keeps the features and the
 * file's content hash as the source id).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "jobs/queue_internal.h"

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
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", source);
    char *slash = strrchr(dir, '/');
    if (slash && strstr(dir, "/uploads/up-")) {
        *slash = 0;
        rmdir(dir);
    }
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
    m2p_analysis_params ap = m2p_analysis_default_params();
    ap.duration_s = duration;
    ap.progress = on_stage;
    ap.user_data = &c;
    m2p_genre_params gp = m2p_genre_default_params();
    if (q->cfg.genre_offline)
        gp.offline = 1;

    jobs_publish_stage(q, job->id, upload ? "decoding" : "download", upload ? -1 : 0);
    m2p_analysis a;
    memset(&a, 0, sizeof a);
    int rc = m2p_analyze(source, &fp, &ap, &gp, q->cache, &a);
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
            remove_upload_file(upload, source);
        return;
    }
    if (msg[0]) {
        jobs_fail(q, job->id, job->attempts, msg, 0);
        remove_upload_file(upload, source);
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
        json_decref(result);
        json_decref(p);
        return;
    }
    if (rc) {
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        jobs_fail(q, job->id, job->attempts, msg, 0);
        remove_upload_file(upload, source);
        json_decref(result);
        json_decref(p);
        return;
    }
    remove_upload_file(upload, source);
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
