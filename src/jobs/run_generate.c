/*
 * run_generate.c — one generation job: params JSON -> model (LRU cache) -> m2p_generate with a
 * step callback -> PNGs -> results rows + job done, in one transaction.
 *
 * The step callback turns engine reports into bus events: "encoding", a step event per variation
 * (step s/t, elapsed, ETA, a base64 PNG preview: TAESD when the model has it, else latent->RGB)
 * and "decoding_image"; and,
 * for clients of the original protocol, its {type:"progress"} message per variation per step
 * (progress = (i/n + k/(s*n))*100 capped at 99, i 0-based, as the original computed it).
 * It returns nonzero when the job must stop (canceled, lease lost, queue stopping), which stops
 * the engine at that step; jobs_interrupted then writes the matching outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "jobs/queue_internal.h"
#include "sd/pipeline.h"

typedef struct gen_ctx {
    jobs *q;
    worker_slot *slot;
    int64_t job;
    int variations, steps;
    uint64_t seed;
} gen_ctx;

static double num(json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

static const char *str(json_t *o, const char *k, const char *def)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

static void publish_step(gen_ctx *c, const m2p_step_info *info, int v)
{
    json_t *e = json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:f}", "type", "step", "job",
                          (json_int_t)c->job, "variation", v + 1, "variations", c->variations,
                          "step", info->step, "steps", info->steps, "elapsed", info->elapsed_s);
    if (!e)
        return;
    double per_step = info->step > 0 ? info->elapsed_s / info->step : 0;
    json_object_set_new(e, "eta", json_real(per_step * (info->steps - info->step)));
    int k = v - info->variation_first;
    if (info->preview_rgb && info->preview_w > 0 && info->preview_h > 0) {
        size_t plane = (size_t)info->preview_w * info->preview_h * 3;
        uint8_t *png = NULL;
        size_t len = 0;
        if (m2p_png_encode(info->preview_rgb + (size_t)k * plane, info->preview_w, info->preview_h,
                           &png, &len) == 0) {
            char *b64 = jobs_base64(png, len);
            if (b64) {
                size_t n = strlen(b64) + 32;
                char *uri = malloc(n);
                if (uri) {
                    snprintf(uri, n, "data:image/png;base64,%s", b64);
                    json_object_set_new(e, "preview", json_string(uri));
                    free(uri);
                }
                free(b64);
            }
            free(png);
        }
    }
    double p =
        ((double)v / c->variations + (double)info->step / ((double)info->steps * c->variations)) *
        100.0;
    if (p > 99)
        p = 99;
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:f}", "type", "progress", "variation", v + 1,
                          "total_variations", c->variations, "step", info->step, "total_steps",
                          info->steps, "progress", p);
    jobs_publish(c->q, c->job, PROGRESS_STEP, v, e, &o, 1);
}

static int on_step(const m2p_step_info *info, void *ud)
{
    gen_ctx *c = ud;
    if (info->stage == M2P_STAGE_ENCODE) {
        jobs_publish_stage(c->q, c->job, "encoding", -1);
    } else if (info->stage == M2P_STAGE_STEP) {
        for (int v = info->variation_first;
             v < info->variation_first + info->variation_count && v < c->variations; v++)
            publish_step(c, info, v);
    } else if (info->stage == M2P_STAGE_DECODE) {
        jobs_publish_stage(c->q, c->job, "decoding_image", -1);
    }
    return jobs_should_stop(c->slot);
}

typedef struct finish_ud {
    const char *params;
    const store_result *res;
    int64_t job;
    const m2p_image *img;
    int n;
    double total;
    uint64_t seed;
    const char *artist, *song; /* for the download names */
    json_t *images; /* out: the images array, for the done event */
    json_t *times;
} finish_ud;

static char *make_result(const int64_t *ids, int n, void *ud)
{
    finish_ud *f = ud;
    json_t *images = json_array(), *times = json_array();
    for (int i = 0; i < n; i++) {
        char url[64], name[160];
        snprintf(url, sizeof url, "/api/images/%lld.png", (long long)ids[i]);
        m2p_poster_filename(f->artist, f->song, f->img[i].seed, name, sizeof name);
        json_array_append_new(
            images, json_pack("{s:I, s:s, s:s, s:i, s:I, s:f, s:i, s:i}", "id", (json_int_t)ids[i],
                              "url", url, "filename", name, "variation", i + 1, "seed",
                              (json_int_t)f->img[i].seed, "seconds", f->img[i].seconds, "width",
                              f->img[i].width, "height", f->img[i].height));
        json_array_append_new(times, json_real(f->img[i].seconds));
    }
    json_t *r =
        json_pack("{s:O, s:i, s:O, s:f, s:I}", "images", images, "count", n, "generation_times",
                  times, "total_time", f->total, "seed", (json_int_t)f->seed);
    char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    f->images = images;
    f->times = times;
    return s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int write_results(jobs *q, const store_job *job, void *ud)
{
    finish_ud *f = ud;
    json_decref(f->images); /* from an earlier try whose transaction did not commit */
    json_decref(f->times);
    f->images = f->times = NULL;
    return store_job_finish_with_results(q->store, job, f->params, f->res, f->n, make_result, f);
}

void run_generate(jobs *q, worker_slot *slot, const store_job *job)
{
    json_error_t jerr;
    json_t *p = json_loads(job->params, 0, &jerr);
    if (!json_is_object(p)) {
        json_decref(p);
        jobs_fail(q, job->id, job->attempts, "the job's parameters are not a JSON object", 0);
        return;
    }
    gen_ctx c = {.q = q, .slot = slot, .job = job->id};
    m2p_gen_params gp = m2p_gen_default_params();
    gp.prompt = str(p, "prompt", "");
    gp.negative_prompt = str(p, "negative_prompt", NULL);
    gp.steps = (int)num(p, "steps", 0);
    gp.guidance = (float)num(p, "guidance", gp.guidance);
    gp.width = (int)num(p, "width", gp.width);
    gp.height = (int)num(p, "height", gp.height);
    gp.variations = (int)num(p, "variations", 1);
    gp.seed = (uint64_t)num(p, "seed", 0);
    gp.preview = q->cfg.preview;
    gp.callback = on_step;
    gp.user_data = &c;
    const char *model_name = str(p, "model", "");

    if (gp.variations < 1 || gp.variations > 16) {
        json_decref(p);
        jobs_fail(q, job->id, job->attempts, "variations out of range", 0);
        return;
    }
    c.variations = gp.variations;
    c.seed = gp.seed;

    if (!model_cache_is_loaded(q->models, model_name))
        jobs_publish_stage(q, job->id, "loading_model", -1);
    m2p_model *model = NULL;
    int rc = model_cache_get(q->models, model_name, &model);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        json_decref(p);
        jobs_fail(q, job->id, job->attempts, msg, 0);
        return;
    }
    /* latent RGB (the default) becomes a real preview when the model came with its TAESD */
    if (gp.preview == M2P_PREVIEW_LATENT_RGB && pipeline_taesd(model))
        gp.preview = M2P_PREVIEW_TAESD;
    m2p_image img[16];
    memset(img, 0, sizeof img);
    double t0 = now_s();
    rc = m2p_generate(model, &gp, img);
    double total = now_s() - t0;
    model_cache_release(q->models, model); /* from here on the cache may evict it */
    if (rc == M2P_ECANCELED && jobs_should_stop(slot)) {
        json_decref(p);
        jobs_interrupted(q, slot, job);
        return;
    }
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        json_decref(p);
        jobs_fail(q, job->id, job->attempts, msg, 0);
        return;
    }

    store_result res[16];
    uint8_t *png[16] = {0};
    int ok = 1;
    /* Each PNG says how it was made (text chunks: prompt, seed, steps, size, model, song). */
    json_t *src = json_object_get(p, "source");
    m2p_png_meta meta = {.prompt = gp.prompt,
                         .negative_prompt = gp.negative_prompt,
                         .model = model_name,
                         .steps = gp.steps,
                         .guidance = gp.guidance,
                         .artist = str(src, "band", NULL),
                         .song = str(src, "song", NULL)};
    for (int i = 0; i < gp.variations; i++) {
        size_t len = 0;
        meta.seed = img[i].seed;
        meta.sampler = img[i].sampler; /* what ran, not the default "LCM" */
        if (img[i].steps > 0)
            meta.steps = img[i].steps;
        meta.width = img[i].width;
        meta.height = img[i].height;
        if (m2p_png_encode_meta(img[i].rgb, img[i].width, img[i].height, &meta, &png[i], &len)) {
            ok = 0;
            break;
        }
        res[i] = (store_result){.variation = i,
                                .seed = img[i].seed,
                                .width = img[i].width,
                                .height = img[i].height,
                                .seconds = img[i].seconds,
                                .png = png[i],
                                .png_len = len};
    }
    finish_ud f = {.job = job->id,
                   .img = img,
                   .n = gp.variations,
                   .total = total,
                   .seed = gp.seed,
                   .artist = meta.artist,
                   .song = meta.song};
    char msg[1024] = "";
    int late = 0;
    if (!ok) {
        snprintf(msg, sizeof msg, "PNG encoding failed: %s", m2p_errmsg());
    } else {
        /* The result rows carry the job's parameters (prompt, model, seed, features, source)
         * so the gallery shows them without the job. */
        f.params = job->params;
        f.res = res;
        rc = jobs_write_outcome(q, job, write_results, &f);
        if ((late = rc == M2P_ENOTFOUND)) /* another worker has (or had) the job */
            M2P_LOGW("job %lld: late result refused: %s", (long long)job->id, m2p_errmsg());
        else if (rc)
            snprintf(msg, sizeof msg, "%s", m2p_errmsg());
    }
    for (int i = 0; i < gp.variations; i++) {
        free(png[i]);
        m2p_image_free(&img[i]);
    }
    json_decref(p);
    if (msg[0] || late) {
        json_decref(f.images);
        json_decref(f.times);
        if (!late)
            jobs_fail(q, job->id, job->attempts, msg, 0);
        return;
    }

    /* Done: this server's event, then the original's generation_time per variation and its
     * complete message. */
    json_t *e = json_pack("{s:s, s:I, s:O, s:I, s:O, s:f}", "type", "done", "job",
                          (json_int_t)job->id, "images", f.images, "seed", (json_int_t)f.seed,
                          "generation_times", f.times, "total_time", total);
    json_t *orig[17];
    int n = 0;
    for (size_t i = 0; i < json_array_size(f.times) && n < 16; i++)
        orig[n++] = json_pack("{s:s, s:i, s:O}", "type", "generation_time", "variation", (int)i + 1,
                              "time", json_array_get(f.times, i));
    orig[n++] =
        json_pack("{s:s, s:i, s:O, s:i, s:O, s:f, s:I}", "type", "complete", "progress", 100,
                  "images", f.images, "count", (int)json_array_size(f.images), "generation_times",
                  f.times, "total_time", total, "seed", (json_int_t)f.seed);
    jobs_publish(q, job->id, PROGRESS_DONE, -1, e, orig, n);
    json_decref(f.images);
    json_decref(f.times);
}
