/*
 * pipeline.c — text-to-image as diffusers 0.26 StableDiffusionPipeline, StableDiffusionXLPipeline
 * and LatentConsistencyModelPipeline compute it:
 *   prompt -> CLIP tokenizer(s) (77 ids) -> text encoder: SD 1.x/2.x last_hidden_state; SDXL both
 *     encoders' penultimate hidden states concatenated + text_encoder_2's pooled text_embeds
 *     and time ids (orig h, w, crop 0, 0, target h, w) as added conditioning
 *   classifier-free guidance when guidance > 1 and the UNet has no guidance embedding: the
 *     negative prompt ("" when none; SDXL zeros, force_zeros_for_empty_prompt) and the prompt as
 *     one UNet batch of 2 x variations, then uncond + g (cond - uncond); LCM's UNet takes the
 *     guidance as a w-embedding (timestep_cond) instead
 *   latents (Philox stream of seed + i per variation, or given) x init_noise_sigma -> for each
 *     scheduler call (scheduler.c: the model's scheduler_config.json, another class, or a given
 *     config): scale_model_input, one UNet pass, guidance, step (noise from each variation's
 *     stream, or given), step callback (progress, preview, cancel)
 *   final latents / scaling_factor -> VAE decoder (or TAESD) -> clamp(x/2+0.5) -> RGB8.
 * Also the model handle: resolve, model_index.json, the parts' loaders (components.h).
 */
#define _GNU_SOURCE
#include "sd/pipeline.h"

#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/resolve.h"
#include "sd/nn.h"
#include "sd/scheduler.h"
#include "tensor/backend.h"

#define LCM_DEFAULT_STEPS 8 /* the original app's default for lcm (model-registry.json) */
#define DEFAULT_STEPS 50    /* StableDiffusion(XL)Pipeline's num_inference_steps default */
#define MAX_STEPS 50
#define MAX_VARIATIONS 8

struct m2p_model {
    const m2p_backend *be; /* what every network runs on (the CPU's) */
    char path[4096];
    m2p_model_params params;
    clip_tokenizer *tok, *tok2; /* tok2, text2: SDXL's second tokenizer and text encoder */
    clip_text *text, *text2;
    unet *unet;                /* NULL between generates when params.release_unet: ensure_unet */
    char unet_file[4400];      /* the UNet's weights file when not the folder's (sdxl_lightning) */
    int unet_in_ch, unet_cond; /* unet_in_channels, unet_cond_dim: known while it is released */
    vae *vae;
    taesd *taesd;
    int xl;             /* StableDiffusionXLPipeline: two encoders, text_time added conditioning */
    int force_zeros;    /* model_index.json force_zeros_for_empty_prompt (SDXL, default true) */
    sched_config sched; /* the model's own scheduler/scheduler_config.json */
    int sched_spacing;  /* a spacing set over the file's (sdxl_lightning's trailing), else -1 */
    char sched_path[4200];
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
    return (m2p_model_params){.n_threads = 0,
                              .compute_dtype = M2P_DTYPE_F32,
                              .load_vae = 1,
                              .taesd = NULL,
                              .weight_cache = 1,
                              .release_text_encoder = 0};
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

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* model_index.json: a pipeline this engine runs, with the parts it needs. Sets *xl for
 * StableDiffusionXLPipeline and *force_zeros from force_zeros_for_empty_prompt. */
static int check_index(const char *dir, int *xl, int *force_zeros)
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
    *xl = 0;
    *force_zeros = 1;
    if (!json_is_object(root) || !cls) {
        rc = m2p_error(M2P_EFORMAT, "%s: no _class_name", path);
    } else if (strstr(cls, "Kandinsky") || strstr(cls, "Video") || strstr(cls, "Flux") ||
               strstr(cls, "StableDiffusion3") || strstr(cls, "Img2Img") ||
               strstr(cls, "Inpaint") || strstr(cls, "Refiner") || strstr(cls, "Upscale")) {
        rc = m2p_error(M2P_EUNSUPPORTED,
                       "%s: %s is not supported by this version (text-to-image SD 1.x, SD 2.x, "
                       "SDXL and LCM)",
                       path, cls);
    } else {
        *xl = strstr(cls, "XL") != NULL;
        json_t *fz = json_object_get(root, "force_zeros_for_empty_prompt");
        if (json_is_boolean(fz))
            *force_zeros = json_is_true(fz);
        const char *parts[] = {"text_encoder", "tokenizer",      "unet",       "vae",
                               "scheduler",    "text_encoder_2", "tokenizer_2"};
        for (int i = 0; i < (*xl ? 7 : 5) && !rc; i++) {
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

/* A part has loaded completely: a new weight cache file is written now, and the source
 * mapping's pages are dropped (everything has been copied or mapped out of it). */
static void part_loaded(weights *w)
{
    if (!w)
        return;
    weights_cache_commit(w);
    weights_release(w);
}

int m2p_model_load(const char *ref, const m2p_model_params *params, m2p_model **out)
{
    return pipeline_model_load(ref, params, NULL, out);
}

int pipeline_model_load(const char *ref, const m2p_model_params *params,
                        const struct m2p_backend *be, m2p_model **out)
{
    *out = NULL;
    m2p_model *m = calloc(1, sizeof *m);
    if (!m)
        return m2p_error(M2P_ENOMEM, "model: out of memory");
    m->be = be = be ? be : m2p_backend_cpu();
    m->scratch.be = be;
    m->params = params ? *params : m2p_model_default_params();
    m->params.taesd = NULL; /* the caller's strings are not ours to keep */
    m->params.unet_file = NULL;
    int rc = 0;
    if (m->params.compute_dtype != M2P_DTYPE_F32 && m->params.compute_dtype != M2P_DTYPE_BF16) {
        rc = m2p_error(M2P_EINVAL, "compute dtype %d: must be f32 (0) or bf16 (1)",
                       m->params.compute_dtype);
        goto fail;
    }
    if (m->params.compute_dtype == M2P_DTYPE_BF16 && !be->bf16_supported(be)) {
        rc = m2p_error(M2P_EUNSUPPORTED,
                       "bf16: this CPU has no avx512_bf16 or AMX (oneDNN would run bf16 at a "
                       "fraction of the f32 speed); use f32");
        goto fail;
    }
    if ((rc = m2p_model_resolve(ref, m->path, sizeof m->path)))
        goto fail;
    if ((rc = check_index(m->path, &m->xl, &m->force_zeros)))
        goto fail;
    be->set_threads(be, m->params.n_threads); /* <= 0: OMP_NUM_THREADS, else every core */
    int dt = m->params.compute_dtype;
    char dir[4200];
    snprintf(m->sched_path, sizeof m->sched_path, "%s/scheduler/scheduler_config.json", m->path);
    if ((rc = sched_config_load(m->sched_path, -1, &m->sched)))
        goto fail;
    snprintf(dir, sizeof dir, "%s/tokenizer", m->path);
    if ((rc = clip_tokenizer_load(dir, &m->tok)))
        goto fail;
    snprintf(dir, sizeof dir, "%s/text_encoder", m->path);
    if ((rc = clip_text_load(dir, &m->params, be, &m->text)))
        goto fail;
    m->memory += used_bytes(clip_text_weights(m->text), dt);
    part_loaded(clip_text_weights(m->text));
    if (m->xl) {
        snprintf(dir, sizeof dir, "%s/tokenizer_2", m->path);
        if ((rc = clip_tokenizer_load(dir, &m->tok2)))
            goto fail;
        snprintf(dir, sizeof dir, "%s/text_encoder_2", m->path);
        if ((rc = clip_text_load(dir, &m->params, be, &m->text2)))
            goto fail;
        m->memory += used_bytes(clip_text_weights(m->text2), dt);
        part_loaded(clip_text_weights(m->text2));
    }
    /* The registry's sdxl_lightning is the SDXL base with ByteDance's 4-step UNet and Euler,
     * trailing spacing, as the original ran it (fetched together by `models fetch`). */
    /* By its short name only: the base's hub id is the plain SDXL base. */
    const m2p_registry_entry *reg = m2p_registry_find(ref);
    const char *unet_file = params ? params->unet_file : NULL;
    char light[4400];
    m->sched_spacing = -1;
    if (reg && !strcmp(ref, "sdxl_lightning")) {
        if (!unet_file) {
            if ((rc =
                     hub_find_file("ByteDance/SDXL-Lightning",
                                   "sdxl_lightning_4step_unet.safetensors", light, sizeof light))) {
                rc = m2p_error_wrap(rc, "sdxl_lightning needs its UNet; get it with `mus2pic "
                                        "models fetch sdxl_lightning`");
                goto fail;
            }
            unet_file = light;
        }
        if ((rc = sched_config_load(m->sched_path, sched_kind_from_class(reg->scheduler),
                                    &m->sched)))
            goto fail;
        m->sched.timestep_spacing = m->sched_spacing = SCHED_SPACING_TRAILING;
    }
    snprintf(dir, sizeof dir, "%s/unet", m->path);
    if ((rc = unet_load_file(dir, unet_file, &m->params, be, &m->unet)))
        goto fail;
    if (unet_file)
        snprintf(m->unet_file, sizeof m->unet_file, "%s", unet_file);
    m->unet_in_ch = unet_in_channels(m->unet);
    m->unet_cond = unet_cond_dim(m->unet);
    m->memory += used_bytes(unet_weights(m->unet), dt);
    part_loaded(unet_weights(m->unet));
    if (m->params.load_vae) {
        snprintf(dir, sizeof dir, "%s/vae", m->path);
        if ((rc = vae_load(dir, &m->params, be, &m->vae)))
            goto fail;
        m->memory += used_bytes(vae_weights(m->vae), dt);
        part_loaded(vae_weights(m->vae));
    }
    /* TAESD: the folder given, else the one `models fetch` put in the hub cache */
    const char *taesd_dir = params ? params->taesd : NULL,
               *taesd_repo = m->xl ? "madebyollin/taesdxl" : "madebyollin/taesd";
    char found[4400];
    int taesd_auto = 0;
    if (!taesd_dir && hub_find_file(taesd_repo, "diffusion_pytorch_model.safetensors", found,
                                    sizeof found) == 0) {
        char *slash = strrchr(found, '/');
        if (slash)
            *slash = 0;
        taesd_dir = found;
        taesd_auto = 1;
    }
    m2p_error_clear();
    if (taesd_dir && *taesd_dir && (rc = taesd_load(taesd_dir, &m->params, be, &m->taesd))) {
        m2p_error_wrap(rc, "loading TAESD from %s", taesd_dir);
        if (!taesd_auto || !m->vae)
            goto fail;
        M2P_LOGW("%s (previews use the latent colours instead)", m2p_errmsg());
        rc = 0;
    }
    if (!m->vae && !m->taesd) {
        rc = m2p_error(M2P_ENOTFOUND,
                       "%s: no decoder: the VAE was not loaded and no TAESD (%s) is in the model "
                       "cache; `mus2pic models fetch NAME` of a registry model brings it along, "
                       "or give a TAESD folder (generate --taesd DIR)",
                       m->path, taesd_repo);
        goto fail;
    }
    int ctx_dim = clip_text_hidden(m->text) + (m->xl ? clip_text_hidden(m->text2) : 0);
    if (ctx_dim != unet_cross_dim(m->unet)) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: text encoder hidden size %d%s does not match unet "
                       "cross_attention_dim %d",
                       m->path, ctx_dim, m->xl ? " (text_encoder + text_encoder_2)" : "",
                       unet_cross_dim(m->unet));
        goto fail;
    }
    int add_in = 0, add_time = 0, has_add = unet_added_dims(m->unet, &add_in, &add_time);
    if (m->xl) {
        int proj = clip_text_projection_dim(m->text2);
        if (!has_add || proj <= 0 || proj + 6 * add_time != add_in) {
            rc = m2p_error(M2P_EFORMAT,
                           "%s: an SDXL pipeline needs unet addition_embed_type \"text_time\" "
                           "with projection_class_embeddings_input_dim (%d) = text_encoder_2 "
                           "projection_dim (%d) + 6 x addition_time_embed_dim (%d)",
                           m->path, add_in, proj, add_time);
            goto fail;
        }
    } else if (has_add) {
        rc = m2p_error(M2P_EUNSUPPORTED,
                       "%s: unet 'addition_embed_type' text_time needs an SDXL pipeline "
                       "(StableDiffusionXLPipeline with text_encoder_2)",
                       m->path);
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
    if (m->text2)
        clip_text_set_arena(m->text2, &m->scratch);
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
    clip_tokenizer_free(m->tok2);
    if (m->text)
        clip_text_free(m->text);
    if (m->text2)
        clip_text_free(m->text2);
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
/* The UNet loaded again after a generate released it (params.release_unet) */
static int ensure_unet(m2p_model *m)
{
    if (m->unet)
        return 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/unet", m->path);
    int rc =
        unet_load_file(dir, m->unet_file[0] ? m->unet_file : NULL, &m->params, m->be, &m->unet);
    if (rc)
        return m2p_error_wrap(rc, "loading the UNet again");
    unet_set_arena(m->unet, &m->scratch);
    return 0;
}

unet *pipeline_unet(m2p_model *m)
{
    return ensure_unet(m) ? NULL : m->unet;
}

int pipeline_unet_loaded(const m2p_model *m)
{
    return m->unet != NULL;
}
clip_text *pipeline_text_encoder(m2p_model *m, int which)
{
    return which ? m->text2 : m->text;
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
    size_t avail = m2p_mem_available();
    const char *lim = getenv("M2P_MEMORY_LIMIT");
    if (lim && *lim) {
        char *end;
        unsigned long long v = strtoull(lim, &end, 10);
        if (*end == '\0' && v > 0 && (!avail || v < avail))
            avail = (size_t)v;
    }
    return avail;
}

/* The scheduler a generation uses: the given config file or the model's own, with another
 * class when p->scheduler names one (Scheduler.from_config). */
static int gen_sched_config(const m2p_model *m, const m2p_gen_params *p, sched_config *c)
{
    int kind = -1;
    if (p->scheduler && *p->scheduler) {
        kind = sched_kind_from_name(p->scheduler);
        if (kind < 0)
            return m2p_error(M2P_EINVAL,
                             "scheduler '%s': must be lcm, ddim, pndm, euler or euler_a",
                             p->scheduler);
    }
    if (p->scheduler_config && *p->scheduler_config)
        return sched_config_load(p->scheduler_config, kind, c);
    if (kind < 0) {
        *c = m->sched;
        return 0;
    }
    /* from_config over the model's config as the pipeline holds it: a spacing set over the
     * file's (the original's EulerDiscreteScheduler.from_config(..., timestep_spacing=
     * "trailing") for Lightning) is part of it, so it carries over to the other class. */
    int rc = sched_config_load(m->sched_path, kind, c);
    if (!rc && m->sched_spacing >= 0)
        c->timestep_spacing = m->sched_spacing;
    return rc;
}

/* Classifier-free guidance runs when guidance > 1 and the UNet has no guidance embedding. */
static int gen_uses_cfg(const m2p_model *m, float guidance)
{
    return guidance > 1.0f && m->unet_cond == 0;
}

/* diffusers' vae_scale_factor (image size / latent size); TAESD decodes x8 only. */
static int latent_factor(const m2p_model *m)
{
    return m->vae ? vae_scale_factor(m->vae) : 8;
}

int m2p_model_latent_shape(const m2p_model *m, int width, int height, int *channels, int *h, int *w)
{
    if (!m)
        return m2p_error(M2P_EINVAL, "latent shape: no model");
    const int f = latent_factor(m);
    if (width <= 0 || height <= 0 || width % f || height % f)
        return m2p_error(M2P_EINVAL, "width %d x height %d: must be multiples of %d for this model",
                         width, height, f);
    *channels = m->unet_in_ch;
    *h = height / f;
    *w = width / f;
    return 0;
}

int m2p_model_uses_negative_prompt(const m2p_model *m, float guidance)
{
    return m && gen_uses_cfg(m, guidance);
}

static int validate(const m2p_model *m, const m2p_gen_params *p)
{
    if (!m)
        return m2p_error(M2P_EINVAL, "generate: no model");
    if (!p)
        return m2p_error(M2P_EINVAL, "generate: no parameters");
    if (!p->prompt)
        return m2p_error(M2P_EINVAL, "prompt: missing");
    if (p->steps < 0 || p->steps > MAX_STEPS)
        return m2p_error(M2P_EINVAL, "steps %d: must be 1..%d (0 = the model's default)", p->steps,
                         MAX_STEPS);
    if (p->variations < 1 || p->variations > MAX_VARIATIONS)
        return m2p_error(M2P_EINVAL, "variations %d: must be 1..%d", p->variations, MAX_VARIATIONS);
    if (p->width < 64 || p->width > 2048 || p->width % 8)
        return m2p_error(M2P_EINVAL, "width %d: must be a multiple of 8 in 64..2048", p->width);
    if (p->height < 64 || p->height > 2048 || p->height % 8)
        return m2p_error(M2P_EINVAL, "height %d: must be a multiple of 8 in 64..2048", p->height);
    if (!isfinite(p->guidance))
        return m2p_error(M2P_EINVAL, "guidance: must be a finite number");
    if (p->preview < M2P_PREVIEW_NONE || p->preview > M2P_PREVIEW_AUTO)
        return m2p_error(M2P_EINVAL,
                         "preview %d: must be 0 (none), 1 (latent RGB), 2 (TAESD) or 3 (TAESD when "
                         "the model has it, else latent RGB)",
                         p->preview);
    if ((p->preview == M2P_PREVIEW_TAESD || p->use_taesd) && !m->taesd)
        return m2p_error(M2P_EINVAL, "%s: no TAESD decoder was loaded with the model",
                         p->use_taesd ? "use_taesd" : "preview");
    if (!p->use_taesd && !m->vae)
        return m2p_error(M2P_EINVAL, "use_taesd: the model was loaded without its VAE");
    if (p->vae_tile < -1 || (p->vae_tile > 0 && p->vae_tile < 8) || p->vae_tile > 256)
        return m2p_error(M2P_EINVAL,
                         "vae_tile %d: must be 8..256 latents, 0 (default) or -1 (never tile)",
                         p->vae_tile);
    if (p->n_noise < 0)
        return m2p_error(M2P_EINVAL, "n_noise %d: must not be negative", p->n_noise);
    return 0;
}

typedef struct {
    float *ctx, *cond, *text_embeds, *time_ids, *lat, *unet_in, *unet_out, *pred, *den, *noise,
        *img, *z, *h1, *h2;
    uint8_t *preview;
    m2p_rng *rng;
} gen_bufs;

static void bufs_free(gen_bufs *b)
{
    free(b->ctx);
    free(b->cond);
    free(b->text_embeds);
    free(b->time_ids);
    free(b->lat);
    free(b->unet_in);
    free(b->unet_out);
    free(b->pred);
    free(b->den);
    free(b->noise);
    free(b->img);
    free(b->z);
    free(b->h1);
    free(b->h2);
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

static void tapn(const m2p_model *m, const char *name, const float *x, int ndim, int64_t a,
                 int64_t b, int64_t c)
{
    if (!m->tap)
        return;
    const int64_t shape[3] = {a, b, c};
    m->tap(name, x, ndim, shape, m->tap_ud);
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

/* One prompt -> ctx [L, ctx_dim] and, for SDXL, text_embeds [proj] (encode_prompt of the
 * pipelines: SD last_hidden_state; SDXL hidden_states[-2] of both encoders side by side and
 * text_encoder_2's projected pooled output). */
static int encode_prompt(m2p_model *m, gen_bufs *b, const char *text, float *ctx,
                         float *text_embeds)
{
    const int L = M2P_CLIP_MAX_TOKENS;
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    int rc = clip_tokenize(m->tok, text, ids, L, NULL);
    if (rc)
        return rc;
    if (!m->xl)
        return clip_text_forward(m->text, ids, 1, L, ctx);
    const int d1 = clip_text_hidden(m->text), d2 = clip_text_hidden(m->text2);
    if ((rc = clip_text_encode(m->text, ids, 1, L, 1, 0, b->h1, NULL, NULL)))
        return rc;
    if ((rc = clip_tokenize(m->tok2, text, ids, L, NULL)))
        return rc;
    if ((rc = clip_text_encode(m->text2, ids, 1, L, 1, 0, b->h2, NULL, text_embeds)))
        return rc;
    for (int t = 0; t < L; t++) {
        memcpy(ctx + (size_t)t * (d1 + d2), b->h1 + (size_t)t * d1, (size_t)d1 * sizeof(float));
        memcpy(ctx + (size_t)t * (d1 + d2) + d1, b->h2 + (size_t)t * d2,
               (size_t)d2 * sizeof(float));
    }
    return 0;
}

/* Copies row 0 of x (row floats) to rows 1..n-1. */
static void repeat_rows(float *x, size_t row, int n)
{
    for (int i = 1; i < n; i++)
        memcpy(x + (size_t)i * row, x, row * sizeof(float));
}

int m2p_generate(m2p_model *m, const m2p_gen_params *params, m2p_image *out)
{
    int rc = validate(m, params);
    if (rc)
        return rc;
    m2p_gen_params resolved = *params; /* M2P_PREVIEW_AUTO made concrete */
    if (resolved.preview == M2P_PREVIEW_AUTO)
        resolved.preview =
            m->taesd && latent_factor(m) == 8 ? M2P_PREVIEW_TAESD : M2P_PREVIEW_LATENT_RGB;
    const m2p_gen_params *p = &resolved;
    if (!out)
        return m2p_error(M2P_EINVAL, "generate: no output array");
    sched_config scfg;
    if ((rc = gen_sched_config(m, p, &scfg)))
        return rc;
    const int steps = p->steps                 ? p->steps
                      : scfg.kind == SCHED_LCM ? LCM_DEFAULT_STEPS
                                               : DEFAULT_STEPS;
    if (scfg.kind == SCHED_LCM && steps > scfg.original_inference_steps)
        return m2p_error(M2P_EINVAL, "steps %d: this model's LCM schedule allows at most %d", steps,
                         scfg.original_inference_steps);
    const int N = p->variations, H = p->height, W = p->width;
    const int cfg = gen_uses_cfg(m, p->guidance);
    const int B = cfg ? 2 * N : N; /* UNet batch: [uncond x N, cond x N] with CFG */
    int C = 0, h = 0, w = 0;
    if ((rc = m2p_model_latent_shape(m, W, H, &C, &h, &w)))
        return rc;
    if ((p->use_taesd || p->preview == M2P_PREVIEW_TAESD) && latent_factor(m) != 8)
        return m2p_error(M2P_EINVAL,
                         "%s: TAESD decodes latents x8, this model's VAE scale factor is %d",
                         p->use_taesd ? "use_taesd" : "preview", latent_factor(m));
    if ((rc = ensure_unet(m)))
        return rc;
    const int L = M2P_CLIP_MAX_TOKENS, ctx_dim = unet_cross_dim(m->unet);
    const int cond_dim = unet_cond_dim(m->unet);
    const int proj = m->xl ? clip_text_projection_dim(m->text2) : 0;
    const size_t nl = (size_t)C * (size_t)h * (size_t)w; /* one variation's latents */
    const size_t npix = (size_t)3 * (size_t)H * (size_t)W;
    m->be->set_threads(m->be, m->params.n_threads); /* <= 0: OMP_NUM_THREADS, else all cores */

    /* Refuse what would not fit: UNet scratch for the batch, decoder scratch for one image,
     * and our own buffers. */
    size_t own =
        ((size_t)B * L * ctx_dim + (3 * (size_t)B + 4 * N) * nl + 2 * npix) * sizeof(float) +
        (size_t)N * npix;
    const int tile = p->vae_tile > 0 ? p->vae_tile : VAE_TILE_DEFAULT;
    const int tile_overlap = p->vae_tile > 0 ? (tile + 3) / 4 : VAE_TILE_OVERLAP;
    size_t dec = p->use_taesd        ? 16 * npix * sizeof(float)
                 : p->vae_tile == -1 ? vae_scratch_bytes(m->vae, 1, h, w)
                                     : vae_decode_tiled_bytes(m->vae, 1, h, w, tile, tile_overlap);
    size_t un = unet_scratch_bytes(m->unet, B, h, w, L);
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
    scheduler sched = {0};
    for (int i = 0; i < N; i++)
        memset(&out[i], 0, sizeof out[i]);
    b.ctx = malloc((size_t)B * L * ctx_dim * sizeof(float));
    b.cond = cond_dim > 0 ? malloc((size_t)B * cond_dim * sizeof(float)) : NULL;
    if (m->xl) {
        b.text_embeds = calloc((size_t)B * proj, sizeof(float));
        b.time_ids = malloc((size_t)B * 6 * sizeof(float));
        b.h1 = malloc((size_t)L * clip_text_hidden(m->text) * sizeof(float));
        b.h2 = malloc((size_t)L * clip_text_hidden(m->text2) * sizeof(float));
    }
    b.lat = malloc(N * nl * sizeof(float));
    b.unet_in = malloc(B * nl * sizeof(float));
    b.unet_out = malloc(B * nl * sizeof(float));
    b.pred = cfg ? malloc(N * nl * sizeof(float)) : NULL;
    b.den = malloc(N * nl * sizeof(float));
    b.noise = malloc(N * nl * sizeof(float));
    b.img = malloc(npix * sizeof(float));
    b.z = malloc(nl * sizeof(float));
    b.rng = calloc((size_t)N, sizeof *b.rng);
    if (p->preview == M2P_PREVIEW_LATENT_RGB)
        b.preview = malloc((size_t)N * h * w * 3);
    else if (p->preview == M2P_PREVIEW_TAESD)
        b.preview = malloc((size_t)N * npix);
    if (!b.ctx || (cond_dim > 0 && !b.cond) ||
        (m->xl && (!b.text_embeds || !b.time_ids || !b.h1 || !b.h2)) || !b.lat || !b.unet_in ||
        !b.unet_out || (cfg && !b.pred) || !b.den || !b.noise || !b.img || !b.z || !b.rng ||
        (p->preview && !b.preview)) {
        bufs_free(&b);
        return m2p_error(M2P_ENOMEM, "generate: out of memory");
    }
    float *pred = cfg ? b.pred : b.unet_out; /* what the scheduler steps with */
    m2p_step_info info = {.variation_first = 0, .variation_count = N, .steps = steps};

    /* 1. schedule (checks steps and the noise given before any network runs) */
    if ((rc = sched_init(&sched, &scfg)) || (rc = sched_set_timesteps(&sched, steps)))
        goto done;
    info.steps = sched.n_calls;
    const int draws = sched_noise_draws(&sched);
    if (p->noise && p->n_noise && p->n_noise != draws) {
        rc = m2p_error(M2P_EINVAL,
                       "noise: %s with %d steps draws %d noise tensor(s) per run, but %d were "
                       "given",
                       sched_class_name(scfg.kind), steps, draws, p->n_noise);
        goto done;
    }

    /* 2. prompts -> text embeddings: rows [uncond x N, cond x N] with CFG, [cond x N] without */
    info.stage = M2P_STAGE_ENCODE;
    info.elapsed_s = now_s() - t0;
    if ((rc = report(p, &info)))
        goto done;
    const size_t row = (size_t)L * ctx_dim;
    float *ctx_cond = b.ctx + (cfg ? (size_t)N * row : 0);
    float *te_cond = m->xl ? b.text_embeds + (cfg ? (size_t)N * proj : 0) : NULL;
    if ((rc = encode_prompt(m, &b, p->prompt, ctx_cond, te_cond)))
        goto done;
    tapn(m, "prompt_embeds", ctx_cond, 3, 1, L, ctx_dim);
    repeat_rows(ctx_cond, row, N);
    if (te_cond)
        repeat_rows(te_cond, (size_t)proj, N);
    if (cfg) {
        const char *neg = p->negative_prompt ? p->negative_prompt : "";
        if (m->xl && !*neg && m->force_zeros) {
            /* diffusers' force_zeros_for_empty_prompt: zero negative embeddings */
            memset(b.ctx, 0, (size_t)N * row * sizeof(float));
            memset(b.text_embeds, 0, (size_t)N * proj * sizeof(float));
        } else {
            if ((rc = encode_prompt(m, &b, neg, b.ctx, b.text_embeds)))
                goto done;
            repeat_rows(b.ctx, row, N);
            if (m->xl)
                repeat_rows(b.text_embeds, (size_t)proj, N);
        }
    }
    tapn(m, "encoder_hidden_states", b.ctx, 3, B, L, ctx_dim);
    /* Weights mapped from the weight cache leave the resident set while other networks run
     * (they stay in the page cache): the peak is then the largest network plus its scratch,
     * not the sum of all of them. */
    weights_release(clip_text_weights(m->text));
    if (m->text2)
        weights_release(clip_text_weights(m->text2));
    /* uncached weights are anonymous memory: a one-shot generate frees them
     * (they load again on the next prompt), and malloc_trim gives the freed heap pages back */
    if (m->params.release_text_encoder) {
        clip_text_unload(m->text);
        if (m->text2)
            clip_text_unload(m->text2);
        malloc_trim(0);
    }
    unet_added_cond added = {0};
    if (m->xl) {
        /* add_time_ids = original_size (h, w) + crops_coords_top_left (0, 0) + target (h, w) */
        const float ids[6] = {(float)H, (float)W, 0.0f, 0.0f, (float)H, (float)W};
        for (int i = 0; i < B; i++)
            memcpy(b.time_ids + (size_t)i * 6, ids, sizeof ids);
        added = (unet_added_cond){b.text_embeds, proj, b.time_ids, 6};
        tapn(m, "add_text_embeds", b.text_embeds, 2, B, proj, 0);
        tapn(m, "add_time_ids", b.time_ids, 2, B, 6, 0);
    }

    /* 3. guidance -> w-embedding (timestep_cond) for a UNet that takes one (LCM) */
    if (cond_dim > 0) {
        lcm_guidance_embedding(p->guidance, cond_dim, b.cond);
        tapn(m, "timestep_cond", b.cond, 2, 1, cond_dim, 0);
        repeat_rows(b.cond, (size_t)cond_dim, B);
    }

    /* 4. initial latents x init_noise_sigma */
    for (int i = 0; i < N; i++) {
        m2p_rng_init(&b.rng[i], p->seed + (uint64_t)i);
        if (p->latents)
            memcpy(b.lat + i * nl, p->latents + i * nl, nl * sizeof(float));
        else
            m2p_rng_normal(&b.rng[i], b.lat + i * nl, nl);
    }
    tap4(m, "latents_in", b.lat, N, C, h, w);
    for (size_t k = 0; k < N * nl; k++)
        b.lat[k] = b.lat[k] * sched.init_noise_sigma;
    tap4(m, "latents_init", b.lat, N, C, h, w);

    /* 5. scheduler calls: one UNet pass over the whole batch, guidance, the step */
    int drawn = 0;
    for (int s = 0; s < sched.n_calls; s++) {
        char name[64];
        float t = sched.timesteps[s];
        sched_scale_model_input(&sched, s, b.lat, b.unet_in, N * nl);
        if (cfg)
            memcpy(b.unet_in + N * nl, b.unet_in, N * nl * sizeof(float));
        snprintf(name, sizeof name, "step%d.unet_in", s);
        tap4(m, name, b.unet_in, B, C, h, w);
        if ((rc = unet_forward(m->unet, b.unet_in, B, h, w, t, b.cond, m->xl ? &added : NULL, b.ctx,
                               L, b.unet_out))) {
            m2p_error_wrap(rc, "step %d", s + 1);
            goto done;
        }
        snprintf(name, sizeof name, "step%d.unet_out", s);
        tap4(m, name, b.unet_out, B, C, h, w);
        if (cfg) {
            const float g = p->guidance;
            const float *u = b.unet_out, *c = b.unet_out + N * nl;
            for (size_t k = 0; k < N * nl; k++)
                b.pred[k] = u[k] + g * (c[k] - u[k]);
        }
        snprintf(name, sizeof name, "step%d.noise_pred", s);
        tap4(m, name, pred, N, C, h, w);
        const float *z = NULL;
        if (sched_draws_noise(&sched, s)) {
            if (p->noise) {
                z = p->noise + (size_t)drawn * N * nl;
            } else {
                for (int i = 0; i < N; i++)
                    m2p_rng_normal(&b.rng[i], b.noise + i * nl, nl);
                z = b.noise;
            }
            drawn++;
        }
        if ((rc = sched_step(&sched, s, pred, b.lat, z, N * nl, b.den, b.lat)))
            goto done;
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
                preview_latent_rgb(b.den + i * nl, h, w, m->xl, b.preview + (size_t)i * h * w * 3);
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

    weights_release(unet_weights(m->unet));
    /* a one-shot generate frees uncached UNet weights before the decoder runs: they are most
     * of the resident set (3.2 GiB at f32 for SD 1.5), and the decode's big
     * activations came on top of them */
    if (m->params.release_unet) {
        unet_free(m->unet);
        m->unet = NULL;
        malloc_trim(0);
    }

    /* 6. decode each variation's final latents: VAE on latents / scaling_factor, or TAESD on
     * the raw latents */
    info.stage = M2P_STAGE_DECODE;
    info.step = 0;
    info.preview_rgb = NULL;
    info.preview_w = info.preview_h = 0;
    info.elapsed_s = now_s() - t0;
    if ((rc = report(p, &info)))
        goto done;
    for (int i = 0; i < N; i++) {
        const float *lat = b.lat + i * nl;
        if (p->use_taesd) {
            rc = taesd_decode(m->taesd, lat, 1, h, w, b.img);
        } else {
            float sf = vae_scaling_factor(m->vae);
            for (size_t k = 0; k < nl; k++)
                b.z[k] = lat[k] / sf;
            rc = p->vae_tile == -1
                     ? vae_decode(m->vae, b.z, 1, h, w, b.img)
                     : vae_decode_tiled(m->vae, b.z, 1, h, w, tile, tile_overlap, b.img);
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
        out[i].steps = steps;
        out[i].sampler = sched_display_name(&scfg);
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
    sched_free(&sched);
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
