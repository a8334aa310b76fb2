/*
 * pipeline.c — the LCM text-to-image pipeline, as diffusers 0.26 LatentConsistencyModelPipeline:
 *   prompt -> CLIP tokenizer (77 ids) -> text encoder (last_hidden_state)
 *   guidance w -> timestep_cond (w-embedding; LCM uses no classifier-free guidance, so the
 *     negative prompt is accepted and ignored, as diffusers does)
 *   latents (Philox stream of seed + i per variation, or given) -> for each LCM timestep: one
 *     UNet pass over all variations as one batch, scheduler step (noise from each variation's
 *     stream, or given), step callback (progress, preview, cancel)
 *   final denoised / scaling_factor -> VAE decoder (or TAESD) -> clamp(x/2+0.5) -> RGB8.
 * Also the model handle: resolve, model_index.json, the parts' loaders (components.h).
 */
#define _GNU_SOURCE
#include "sd/pipeline.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "sd/nn.h"
#include "sd/scheduler_lcm.h"
#include "tensor/ops.h"

#define LCM_DEFAULT_STEPS 8 /* the original app's default for lcm (model-registry.json) */
#define MAX_STEPS 50
#define MAX_VARIATIONS 8

struct m2p_model {
    char path[4096];
    m2p_model_params params;
    clip_tokenizer *tok;
    clip_text *text;
    unet *unet;
    vae *vae;
    taesd *taesd;
    lcm_config sched;
    nn_arena scratch; /* shared by the four networks: they run one after another */
    size_t memory;
    sd_tap tap;
    void *tap_ud;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

m2p_model_params m2p_model_default_params(void)
{
    return (m2p_model_params){
        .n_threads = 0, .compute_dtype = M2P_DTYPE_F32, .load_vae = 1, .taesd = NULL};
}

m2p_gen_params m2p_gen_default_params(void)
{
    return (m2p_gen_params){
        .prompt = "",
        .negative_prompt = NULL,
        .steps = 0,
        .guidance = 8.5f,
        .width = 512,
        .height = 512,
        .seed = 0,
        .variations = 1,
        .preview = M2P_PREVIEW_NONE,
    };
}

static void set_threads(int n)
{
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    op_set_threads(n);
}

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* model_index.json: a pipeline this engine runs, with the parts it needs. */
static int check_index(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return m2p_error(M2P_ENOTFOUND, "%s: missing (not a diffusers model folder)", path);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return m2p_error(M2P_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    int rc = 0;
    const char *cls = json_string_value(json_object_get(root, "_class_name"));
    if (!json_is_object(root) || !cls) {
        rc = m2p_error(M2P_EFORMAT, "%s: no _class_name", path);
    } else if (strstr(cls, "XL") || strstr(cls, "Kandinsky") || strstr(cls, "Video") ||
               strstr(cls, "Flux") || strstr(cls, "StableDiffusion3")) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: %s is not supported by this version (SD 1.x + LCM)",
                       path, cls);
    } else {
        const char *parts[] = {"text_encoder", "tokenizer", "unet", "vae", "scheduler"};
        for (int i = 0; i < 5 && !rc; i++) {
            json_t *p = json_object_get(root, parts[i]);
            if (!json_is_array(p) || json_is_null(json_array_get(p, 1)))
                rc = m2p_error(M2P_EFORMAT, "%s: no '%s' part", path, parts[i]);
        }
    }
    json_decref(root);
    return rc;
}

static size_t used_bytes(weights *w, int dtype)
{
    if (!w)
        return 0;
    st_file *f = weights_file(w);
    size_t n = 0;
    for (int i = 0; f && i < f->n; i++)
        if (f->tensors[i].used)
            n += (size_t)f->tensors[i].numel;
    return n * (dtype == M2P_DTYPE_BF16 ? 2 : 4);
}

int m2p_model_load(const char *ref, const m2p_model_params *params, m2p_model **out)
{
    *out = NULL;
    m2p_model *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "model: out of memory");
    m->params = params ? *params : m2p_model_default_params();
    m->params.taesd = NULL; /* the caller's string is not ours to keep */
    int rc = 0;
    if (m->params.compute_dtype != M2P_DTYPE_F32 && m->params.compute_dtype != M2P_DTYPE_BF16) {
        rc = m2p_error(M2P_EINVAL, "compute dtype %d: must be f32 (0) or bf16 (1)",
                       m->params.compute_dtype);
        goto fail;
    }
    if (m->params.compute_dtype == M2P_DTYPE_BF16 && !op_bf16_supported()) {
        rc = m2p_error(M2P_EUNSUPPORTED,
                       "bf16: this CPU has no avx512_bf16 or AMX (oneDNN would run bf16 at a "
                       "fraction of the f32 speed); use f32");
        goto fail;
    }
    if ((rc = m2p_model_resolve(ref, m->path, sizeof m->path)))
        goto fail;
    if ((rc = check_index(m->path)))
        goto fail;
    set_threads(m->params.n_threads);
    int dt = m->params.compute_dtype;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/scheduler/scheduler_config.json", m->path);
    if ((rc = lcm_config_load(dir, &m->sched)))
        goto fail;
    snprintf(dir, sizeof dir, "%s/tokenizer", m->path);
    if ((rc = clip_tokenizer_load(dir, &m->tok)))
        goto fail;
    snprintf(dir, sizeof dir, "%s/text_encoder", m->path);
    if ((rc = clip_text_load(dir, &m->params, &m->text)))
        goto fail;
    m->memory += used_bytes(clip_text_weights(m->text), dt);
    if (clip_text_weights(m->text))
        weights_release(clip_text_weights(m->text));
    snprintf(dir, sizeof dir, "%s/unet", m->path);
    if ((rc = unet_load(dir, &m->params, &m->unet)))
        goto fail;
    m->memory += used_bytes(unet_weights(m->unet), dt);
    if (unet_weights(m->unet))
        weights_release(unet_weights(m->unet));
    if (m->params.load_vae) {
        snprintf(dir, sizeof dir, "%s/vae", m->path);
        if ((rc = vae_load(dir, &m->params, &m->vae)))
            goto fail;
        m->memory += used_bytes(vae_weights(m->vae), dt);
        if (vae_weights(m->vae))
            weights_release(vae_weights(m->vae));
    }
    if (params && params->taesd) {
        if ((rc = taesd_load(params->taesd, &m->params, &m->taesd))) {
            m2p_error_wrap(rc, "loading TAESD from %s", params->taesd);
            goto fail;
        }
    }
    if (clip_text_hidden(m->text) != unet_cross_dim(m->unet)) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: text_encoder hidden size %d does not match unet "
                       "cross_attention_dim %d",
                       m->path, clip_text_hidden(m->text), unet_cross_dim(m->unet));
        goto fail;
    }
    if (m->vae && vae_latent_channels(m->vae) != unet_in_channels(m->unet)) {
        rc = m2p_error(M2P_EFORMAT, "%s: vae latent_channels %d does not match unet in_channels %d",
                       m->path, vae_latent_channels(m->vae), unet_in_channels(m->unet));
        goto fail;
    }
    /* One scratch for all: the UNet's is free while the VAE decodes, so peak memory is the
     * weights plus the larger of the two, not their sum. */
    clip_text_set_arena(m->text, &m->scratch);
    unet_set_arena(m->unet, &m->scratch);
    if (m->vae)
        vae_set_arena(m->vae, &m->scratch);
    if (m->taesd)
        taesd_set_arena(m->taesd, &m->scratch);
    *out = m;
    return 0;
fail:
    m2p_model_free(m);
    return rc;
}

void m2p_model_free(m2p_model *m)
{
    if (!m)
        return;
    clip_tokenizer_free(m->tok);
    if (m->text)
        clip_text_free(m->text);
    if (m->unet)
        unet_free(m->unet);
    if (m->vae)
        vae_free(m->vae);
    if (m->taesd)
        taesd_free(m->taesd);
    nn_arena_free(&m->scratch);
    free(m);
}

const char *m2p_model_path(const m2p_model *m)
{
    return m ? m->path : NULL;
}
size_t m2p_model_memory(const m2p_model *m)
{
    return m ? m->memory : 0;
}

void pipeline_set_tap(m2p_model *m, sd_tap tap, void *ud)
{
    m->tap = tap;
    m->tap_ud = ud;
}
const clip_tokenizer *pipeline_tokenizer(const m2p_model *m)
{
    return m->tok;
}
unet *pipeline_unet(m2p_model *m)
{
    return m->unet;
}
vae *pipeline_vae(m2p_model *m)
{
    return m->vae;
}
taesd *pipeline_taesd(m2p_model *m)
{
    return m->taesd;
}

int m2p_tokenize(const m2p_model *model, const char *text, int32_t ids[M2P_CLIP_MAX_TOKENS],
                 int *n_untruncated)
{
    if (!model)
        return m2p_error(M2P_EINVAL, "tokenize: no model");
    return clip_tokenize(model->tok, text, ids, M2P_CLIP_MAX_TOKENS, n_untruncated);
}

/* ---------------------------------------------------------------------------------------- */
/* Generation                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* MemAvailable from /proc/meminfo in bytes, capped by $M2P_MEMORY_LIMIT (bytes) when set, so
 * a server can keep generation within a budget; 0 when unknown. */
static size_t mem_available(void)
{
    size_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        size_t kb = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
                break;
        fclose(f);
        avail = kb * 1024;
    }
    const char *lim = getenv("M2P_MEMORY_LIMIT");
    if (lim && *lim) {
        char *end;
        unsigned long long v = strtoull(lim, &end, 10);
        if (*end == '\0' && v > 0 && (!avail || v < avail))
            avail = (size_t)v;
    }
    return avail;
}

static int validate(const m2p_model *m, const m2p_gen_params *p, int *steps)
{
    *steps = LCM_DEFAULT_STEPS;
    if (!m)
        return m2p_error(M2P_EINVAL, "generate: no model");
    if (!p)
        return m2p_error(M2P_EINVAL, "generate: no parameters");
    if (!p->prompt)
        return m2p_error(M2P_EINVAL, "prompt: missing");
    *steps = p->steps ? p->steps : LCM_DEFAULT_STEPS;
    if (p->steps < 0 || p->steps > MAX_STEPS)
        return m2p_error(M2P_EINVAL, "steps %d: must be 1..%d (0 = the model's default, %d)",
                         p->steps, MAX_STEPS, LCM_DEFAULT_STEPS);
    if (*steps > m->sched.original_inference_steps)
        return m2p_error(M2P_EINVAL, "steps %d: this model's LCM schedule allows at most %d",
                         *steps, m->sched.original_inference_steps);
    if (p->variations < 1 || p->variations > MAX_VARIATIONS)
        return m2p_error(M2P_EINVAL, "variations %d: must be 1..%d", p->variations, MAX_VARIATIONS);
    if (p->width < 64 || p->width > 2048 || p->width % 8)
        return m2p_error(M2P_EINVAL, "width %d: must be a multiple of 8 in 64..2048", p->width);
    if (p->height < 64 || p->height > 2048 || p->height % 8)
        return m2p_error(M2P_EINVAL, "height %d: must be a multiple of 8 in 64..2048", p->height);
    if (!isfinite(p->guidance))
        return m2p_error(M2P_EINVAL, "guidance: must be a finite number");
    if (p->preview < M2P_PREVIEW_NONE || p->preview > M2P_PREVIEW_TAESD)
        return m2p_error(M2P_EINVAL, "preview %d: must be 0 (none), 1 (latent RGB) or 2 (TAESD)",
                         p->preview);
    if ((p->preview == M2P_PREVIEW_TAESD || p->use_taesd) && !m->taesd)
        return m2p_error(M2P_EINVAL, "%s: no TAESD decoder was loaded with the model",
                         p->use_taesd ? "use_taesd" : "preview");
    if (!p->use_taesd && !m->vae)
        return m2p_error(M2P_EINVAL, "use_taesd: the model was loaded without its VAE");
    return 0;
}

typedef struct {
    float *ctx, *cond, *lat, *pred, *den, *noise, *img, *z;
    uint8_t *preview;
    m2p_rng *rng;
} gen_bufs;

static void bufs_free(gen_bufs *b)
{
    free(b->ctx);
    free(b->cond);
    free(b->lat);
    free(b->pred);
    free(b->den);
    free(b->noise);
    free(b->img);
    free(b->z);
    free(b->preview);
    free(b->rng);
}

static void tap4(const m2p_model *m, const char *name, const float *x, int64_t a, int64_t b,
                 int64_t c, int64_t d)
{
    if (!m->tap)
        return;
    const int64_t shape[4] = {a, b, c, d};
    m->tap(name, x, 4, shape, m->tap_ud);
}

static int report(const m2p_gen_params *p, m2p_step_info *info)
{
    if (!p->callback)
        return 0;
    if (p->callback(info, p->user_data))
        return m2p_error(M2P_ECANCELED, "generation canceled by the step callback (%s %d/%d)",
                         info->stage == M2P_STAGE_STEP ? "step" : "stage",
                         info->stage == M2P_STAGE_STEP ? info->step : info->stage, info->steps);
    return 0;
}

int m2p_generate(m2p_model *m, const m2p_gen_params *p, m2p_image *out)
{
    int steps;
    int rc = validate(m, p, &steps);
    if (rc)
        return rc;
    if (!out)
        return m2p_error(M2P_EINVAL, "generate: no output array");
    const int N = p->variations, H = p->height, W = p->width;
    const int h = H / 8, w = W / 8, C = unet_in_channels(m->unet);
    const int L = M2P_CLIP_MAX_TOKENS, hidden = clip_text_hidden(m->text);
    const int cond_dim = unet_cond_dim(m->unet);
    const size_t nl = (size_t)C * (size_t)h * (size_t)w; /* one variation's latents */
    const size_t npix = (size_t)3 * (size_t)H * (size_t)W;
    set_threads(m->params.n_threads);

    /* Refuse what would not fit: UNet scratch for the batch, decoder scratch for one image,
     * and our own buffers. */
    size_t own =
        ((size_t)N * L * hidden + 4 * N * nl + 2 * npix) * sizeof(float) + (size_t)N * npix;
    size_t dec = p->use_taesd ? 16 * npix * sizeof(float) : vae_scratch_bytes(m->vae, 1, h, w);
    size_t un = unet_scratch_bytes(m->unet, N, h, w, L);
    size_t need = own + (un > dec ? un : dec);
    size_t avail = mem_available();
    if (avail && need > avail)
        return m2p_error(M2P_ENOMEM,
                         "width %d x height %d with %d variation(s) needs about %.1f GiB of "
                         "working memory, but only %.1f GiB is available; use a smaller size or "
                         "fewer variations",
                         W, H, N, need / 1073741824.0, avail / 1073741824.0);

    const double t0 = now_s();
    gen_bufs b = {0};
    b.ctx = malloc((size_t)N * L * hidden * sizeof(float));
    b.cond = cond_dim > 0 ? malloc((size_t)N * cond_dim * sizeof(float)) : NULL;
    b.lat = malloc(N * nl * sizeof(float));
    b.pred = malloc(N * nl * sizeof(float));
    b.den = malloc(N * nl * sizeof(float));
    b.noise = malloc(nl * sizeof(float));
    b.img = malloc(npix * sizeof(float));
    b.z = malloc(nl * sizeof(float));
    b.rng = calloc((size_t)N, sizeof *b.rng);
    if (p->preview == M2P_PREVIEW_LATENT_RGB)
        b.preview = malloc((size_t)N * h * w * 3);
    else if (p->preview == M2P_PREVIEW_TAESD)
        b.preview = malloc((size_t)N * npix);
    for (int i = 0; i < N; i++)
        memset(&out[i], 0, sizeof out[i]);
    if (!b.ctx || (cond_dim > 0 && !b.cond) || !b.lat || !b.pred || !b.den || !b.noise || !b.img ||
        !b.z || !b.rng || (p->preview && !b.preview)) {
        bufs_free(&b);
        return m2p_error(M2P_ENOMEM, "generate: out of memory");
    }
    lcm_scheduler sched = {0};
    m2p_step_info info = {.variation_first = 0, .variation_count = N, .steps = steps};

    /* 1. prompt -> text embeddings (one pass, copied to every variation) */
    info.stage = M2P_STAGE_ENCODE;
    info.elapsed_s = now_s() - t0;
    if ((rc = report(p, &info)))
        goto done;
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    if ((rc = clip_tokenize(m->tok, p->prompt, ids, L, NULL)))
        goto done;
    if ((rc = clip_text_forward(m->text, ids, 1, L, b.ctx)))
        goto done;
    if (m->tap) {
        const int64_t s3[3] = {1, L, hidden};
        m->tap("prompt_embeds", b.ctx, 3, s3, m->tap_ud);
    }
    for (int i = 1; i < N; i++)
        memcpy(b.ctx + (size_t)i * L * hidden, b.ctx, (size_t)L * hidden * sizeof(float));

    /* 2. guidance -> w-embedding (timestep_cond), the same for the batch */
    if (cond_dim > 0) {
        lcm_guidance_embedding(p->guidance, cond_dim, b.cond);
        if (m->tap) {
            const int64_t s2[2] = {1, cond_dim};
            m->tap("timestep_cond", b.cond, 2, s2, m->tap_ud);
        }
        for (int i = 1; i < N; i++)
            memcpy(b.cond + (size_t)i * cond_dim, b.cond, (size_t)cond_dim * sizeof(float));
    }

    /* 3. schedule and initial latents (init_noise_sigma is 1 for LCM) */
    if ((rc = lcm_init(&sched, &m->sched)) || (rc = lcm_set_timesteps(&sched, steps)))
        goto done;
    for (int i = 0; i < N; i++) {
        m2p_rng_init(&b.rng[i], p->seed + (uint64_t)i);
        if (p->latents)
            memcpy(b.lat + i * nl, p->latents + i * nl, nl * sizeof(float));
        else
            m2p_rng_normal(&b.rng[i], b.lat + i * nl, nl);
    }
    tap4(m, "latents_in", b.lat, N, C, h, w);

    /* 4. LCM steps: one UNet pass for the whole batch, then each variation's step */
    for (int s = 0; s < steps; s++) {
        char name[64];
        float t = (float)sched.timesteps[s];
        if ((rc = unet_forward(m->unet, b.lat, N, h, w, t, b.cond, NULL, b.ctx, L, b.pred))) {
            m2p_error_wrap(rc, "step %d", s + 1);
            goto done;
        }
        snprintf(name, sizeof name, "step%d.noise_pred", s);
        tap4(m, name, b.pred, N, C, h, w);
        for (int i = 0; i < N; i++) {
            const float *z = NULL;
            if (s < steps - 1) {
                if (p->noise) {
                    z = p->noise + ((size_t)s * N + i) * nl;
                } else {
                    m2p_rng_normal(&b.rng[i], b.noise, nl);
                    z = b.noise;
                }
            }
            rc = lcm_step(&sched, s, b.pred + i * nl, b.lat + i * nl, z, nl, b.den + i * nl,
                          b.lat + i * nl);
            if (rc)
                goto done;
        }
        snprintf(name, sizeof name, "step%d.denoised", s);
        tap4(m, name, b.den, N, C, h, w);
        snprintf(name, sizeof name, "step%d.latents", s);
        tap4(m, name, b.lat, N, C, h, w);

        info.stage = M2P_STAGE_STEP;
        info.step = s + 1;
        info.preview_rgb = NULL;
        info.preview_w = info.preview_h = 0;
        if (p->callback && p->preview == M2P_PREVIEW_LATENT_RGB && C == 4) {
            for (int i = 0; i < N; i++)
                preview_latent_rgb(b.den + i * nl, h, w, b.preview + (size_t)i * h * w * 3);
            info.preview_rgb = b.preview;
            info.preview_w = w;
            info.preview_h = h;
        } else if (p->callback && p->preview == M2P_PREVIEW_TAESD) {
            if ((rc = preview_taesd(m->taesd, b.den, N, h, w, b.preview)))
                goto done;
            info.preview_rgb = b.preview;
            info.preview_w = W;
            info.preview_h = H;
        }
        info.elapsed_s = now_s() - t0;
        if ((rc = report(p, &info)))
            goto done;
    }

    /* 5. decode each variation: VAE on denoised / scaling_factor, or TAESD on raw latents */
    info.stage = M2P_STAGE_DECODE;
    info.step = 0;
    info.preview_rgb = NULL;
    info.preview_w = info.preview_h = 0;
    info.elapsed_s = now_s() - t0;
    if ((rc = report(p, &info)))
        goto done;
    for (int i = 0; i < N; i++) {
        const float *den = b.den + i * nl;
        if (p->use_taesd) {
            rc = taesd_decode(m->taesd, den, 1, h, w, b.img);
        } else {
            float sf = vae_scaling_factor(m->vae);
            for (size_t k = 0; k < nl; k++)
                b.z[k] = den[k] / sf;
            rc = vae_decode(m->vae, b.z, 1, h, w, b.img);
        }
        if (rc) {
            m2p_error_wrap(rc, "decoding variation %d", i + 1);
            goto done;
        }
        if (m->tap) {
            char name[32];
            snprintf(name, sizeof name, "image_decoded.%d", i);
            tap4(m, N == 1 ? "image_decoded" : name, b.img, 1, 3, H, W);
        }
        out[i].width = W;
        out[i].height = H;
        out[i].seed = p->seed + (uint64_t)i;
        out[i].rgb = malloc(npix);
        out[i].raw = p->want_raw ? malloc(npix * sizeof(float)) : NULL;
        if (!out[i].rgb || (p->want_raw && !out[i].raw)) {
            rc = m2p_error(M2P_ENOMEM, "generate: out of memory");
            goto done;
        }
        image_postprocess(b.img, H, W, out[i].raw, out[i].rgb);
    }
    double total = now_s() - t0;
    for (int i = 0; i < N; i++)
        out[i].seconds = total / N;
done:
    if (rc)
        for (int i = 0; i < N; i++)
            m2p_image_free(&out[i]);
    lcm_free(&sched);
    bufs_free(&b);
    return rc;
}

void m2p_image_free(m2p_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    free(img->raw);
    img->rgb = NULL;
    img->raw = NULL;
}
