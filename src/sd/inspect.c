/*
 * inspect.c — `mus2pic inspect`: what a diffusers model folder holds and what this engine makes
 * of it. First what the folder runs: family (SD 1.x, SD 2.x, SDXL, LCM-distilled, from the
 * UNet config), prediction type, the scheduler class and its settings (scheduler.c), the
 * defaults a generation uses (the registry's for its six names) and the weights' memory. Then
 * for each network part (text_encoder, text_encoder_2, unet, vae) the weights file, tensor
 * count, parameters per dtype and size; each part is loaded with the engine's strict loader, so
 * a missing or mis-shaped tensor shows up here with its name, and every tensor the loader did
 * not use (the VAE encoder, ...) is listed as skipped.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/weights.h"
#include "mus2pic.h"
#include "sd/clip_tokenizer.h"
#include "sd/components.h"
#include "sd/scheduler.h"

typedef struct {
    FILE *out;
    int n;
    int64_t params;
} skip_ctx;

static void print_shape(FILE *out, const st_tensor *t)
{
    fputc('[', out);
    for (int i = 0; i < t->ndim; i++)
        fprintf(out, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    fputc(']', out);
}

static void on_unused(const st_tensor *t, void *ud)
{
    skip_ctx *c = ud;
    fprintf(c->out, "      %s %s ", t->name, st_dtype_name(t->dtype));
    print_shape(c->out, t);
    fputc('\n', c->out);
    c->n++;
    c->params += t->numel;
}

static void file_summary(FILE *out, weights *w)
{
    st_file *f = weights_file(w);
    int64_t per[ST_BOOL + 1] = {0};
    int count[ST_BOOL + 1] = {0};
    size_t bytes = 0;
    int64_t total = 0;
    for (int i = 0; i < f->n; i++) {
        per[f->tensors[i].dtype] += f->tensors[i].numel;
        count[f->tensors[i].dtype]++;
        bytes += f->tensors[i].nbytes;
        total += f->tensors[i].numel;
    }
    fprintf(out, "    file: %s\n    tensors: %d, parameters: %lld (%.1f MB)\n", weights_path(w),
            f->n, (long long)total, bytes / 1e6);
    for (int d = 0; d <= ST_BOOL; d++)
        if (count[d])
            fprintf(out, "      %s: %d tensors, %lld parameters\n", st_dtype_name((st_dtype)d),
                    count[d], (long long)per[d]);
}

static void used_summary(FILE *out, weights *w, skip_ctx *sk)
{
    st_file *f = weights_file(w);
    int64_t used = 0;
    int n = 0;
    for (int i = 0; i < f->n; i++)
        if (f->tensors[i].used) {
            used += f->tensors[i].numel;
            n++;
        }
    fprintf(out, "    loaded: %d tensors, %lld parameters\n", n, (long long)used);
    fprintf(out, "    skipped: %d tensors, %lld parameters%s\n", sk->n, (long long)sk->params,
            sk->n ? " (listed above)" : "");
}

/* One network part: summary, strict load, skipped tensors. Returns the load result. */
static int inspect_part(FILE *out, const char *model, const char *part)
{
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/%s", model, part);
    fprintf(out, "  %s:\n", part);
    m2p_model_params mp = m2p_model_default_params();
    int rc;
    weights *w = NULL;
    clip_text *ct = NULL;
    unet *un = NULL;
    vae *va = NULL;
    if (!strncmp(part, "text_encoder", 12)) {
        rc = clip_text_load(dir, &mp, NULL, &ct);
        w = ct ? clip_text_weights(ct) : NULL;
    } else if (!strcmp(part, "unet")) {
        rc = unet_load(dir, &mp, NULL, &un);
        w = un ? unet_weights(un) : NULL;
    } else {
        rc = vae_load(dir, &mp, NULL, &va);
        w = va ? vae_weights(va) : NULL;
    }
    if (rc) {
        /* Describe the file even when the strict load failed, if it opens at all. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        weights *raw = NULL;
        if (weights_open(dir, &raw) == 0) {
            file_summary(out, raw);
            weights_close(raw);
        }
        fprintf(out, "    ERROR: %s\n", msg);
        m2p_error(rc, "%s", msg);
        return rc;
    }
    if (w) {
        file_summary(out, w);
        skip_ctx sk = {out, 0, 0};
        fprintf(out, "    skipped tensors:\n");
        weights_foreach_unused(w, on_unused, &sk);
        if (!sk.n)
            fprintf(out, "      (none)\n");
        used_summary(out, w, &sk);
    }
    if (ct)
        clip_text_free(ct);
    if (un)
        unet_free(un);
    if (va)
        vae_free(va);
    return 0;
}

static const char *pred_name(int p)
{
    return p == LCM_PRED_V ? "v_prediction" : p == LCM_PRED_SAMPLE ? "sample" : "epsilon";
}

static const char *spacing_name(int s)
{
    return s == SCHED_SPACING_TRAILING   ? "trailing"
           : s == SCHED_SPACING_LINSPACE ? "linspace"
                                         : "leading";
}

/* The family from unet/config.json: SDXL's added text_time conditioning, SD 2.x's linear
 * projections / 1024-wide context, else SD 1.x; LCM-distilled when it has a guidance
 * embedding (time_cond_proj_dim). */
static int print_family(FILE *out, const char *path, int xl)
{
    char file[4300];
    snprintf(file, sizeof file, "%s/unet/config.json", path);
    json_t *u = json_load_file(file, 0, NULL);
    const char *add = json_string_value(json_object_get(u, "addition_embed_type"));
    json_int_t cross = json_integer_value(json_object_get(u, "cross_attention_dim"));
    int linear = json_is_true(json_object_get(u, "use_linear_projection"));
    json_int_t cond = json_integer_value(json_object_get(u, "time_cond_proj_dim"));
    const char *fam = xl || (add && !strcmp(add, "text_time")) ? "SDXL (two text encoders, "
                                                                 "text_time conditioning)"
                      : linear || cross == 1024                ? "SD 2.x (OpenCLIP text encoder)"
                                                               : "SD 1.x (CLIP ViT-L text encoder)";
    fprintf(out, "  family: %s%s\n", u ? fam : "? (unet/config.json unreadable)",
            cond > 0 ? ", LCM-distilled (guidance embedding: guidance is an input, no "
                       "classifier-free guidance)"
                     : "");
    json_decref(u);
    return cond > 0;
}

/* The scheduler a generation runs by default, and the defaults of a generation. */
static int print_scheduler(FILE *out, const char *ref, const char *path, int embeds_guidance,
                           char *msg, size_t len)
{
    char file[4300];
    snprintf(file, sizeof file, "%s/scheduler/scheduler_config.json", path);
    const m2p_registry_entry *reg = m2p_registry_find(ref);
    if (reg && strcmp(reg->name, ref))
        reg = NULL; /* a hub id runs its repo's own config, not the registry's choice */
    int kind = reg && reg->timestep_spacing ? sched_kind_from_class(reg->scheduler) : -1;
    sched_config sc;
    int rc = sched_config_load(file, kind, &sc);
    if (rc) {
        fprintf(out, "  scheduler: ERROR: %s\n", m2p_errmsg());
        snprintf(msg, len, "%s", m2p_errmsg());
        return rc;
    }
    if (reg && reg->timestep_spacing && !strcmp(reg->timestep_spacing, "trailing"))
        sc.timestep_spacing = SCHED_SPACING_TRAILING;
    fprintf(out, "  prediction: %s\n", pred_name(sc.prediction_type));
    fprintf(out,
            "  scheduler: %s (%s), timestep_spacing %s, steps_offset %d, %s betas %g..%g, "
            "%d train timesteps",
            sched_class_name(sc.kind), sched_display_name(&sc), spacing_name(sc.timestep_spacing),
            sc.steps_offset, sc.scaled_linear ? "scaled_linear" : "linear", sc.beta_start,
            sc.beta_end, sc.num_train_timesteps);
    if (sc.kind == SCHED_LCM)
        fprintf(out, ", original_inference_steps %d, timestep_scaling %g",
                sc.original_inference_steps, sc.timestep_scaling);
    if (sc.kind == SCHED_DDIM || sc.kind == SCHED_PNDM)
        fprintf(out, ", set_alpha_to_one %s", sc.set_alpha_to_one ? "true" : "false");
    if (sc.kind == SCHED_PNDM)
        fprintf(out, ", skip_prk_steps %s", sc.skip_prk_steps ? "true" : "false");
    fprintf(out, "%s\n",
            reg && reg->timestep_spacing ? " (set by the registry, as the original ran it)" : "");
    fprintf(out, "    other classes: generate --scheduler lcm|ddim|pndm|euler|euler_a builds one "
                 "from this config\n");
    if (reg)
        fprintf(out, "  defaults (registry '%s'): %d steps, guidance %.1f%s, %dx%d\n", reg->name,
                reg->default_steps, reg->default_guidance,
                m2p_registry_uses_negative(reg) ? "" : " (the negative prompt is ignored)",
                reg->default_width, reg->default_height);
    else
        fprintf(out, "  defaults (a folder): %d steps, guidance 8.5 (%s), 512x512\n",
                sc.kind == SCHED_LCM ? 8 : 50,
                embeds_guidance ? "an input of the guidance embedding; the negative prompt is "
                                  "ignored"
                                : "> 1: classifier-free guidance with the negative prompt");
    return 0;
}

/* Weights the engine keeps (float tensors; the VAE without its encoder) at f32 and bf16. */
static void print_memory(FILE *out, const char *path, int xl)
{
    static const char *parts[] = {"text_encoder", "text_encoder_2", "unet", "vae"};
    int64_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (i == 1 && !xl)
            continue;
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/%s", path, parts[i]);
        weights *w = NULL;
        if (weights_open(dir, &w))
            return; /* the part's own section says why */
        st_file *f = weights_file(w);
        for (int k = 0; k < f->n; k++) {
            const st_tensor *t = &f->tensors[k];
            if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 &&
                t->dtype != ST_F64)
                continue;
            if (i == 3 &&
                (!strncmp(t->name, "encoder.", 8) || !strncmp(t->name, "quant_conv.", 11)))
                continue;
            n += t->numel;
        }
        weights_close(w);
    }
    fprintf(out, "  memory: %.1f MiB of weights at f32, %.1f MiB at bf16 (--dtype bf16)\n",
            n * 4 / 1048576.0, n * 2 / 1048576.0);
}

int m2p_model_inspect(const char *ref, FILE *out)
{
    char path[4096];
    int rc = m2p_model_resolve(ref, path, sizeof path);
    if (rc)
        return rc;
    char file[4300];
    snprintf(file, sizeof file, "%s/model_index.json", path);
    json_error_t jerr;
    json_t *idx = json_load_file(file, 0, &jerr);
    if (!idx)
        return m2p_error(M2P_EFORMAT, "%s: %s", file, jerr.text);
    const char *cls = json_string_value(json_object_get(idx, "_class_name"));
    int xl = cls && strstr(cls, "XL") != NULL;
    fprintf(out, "model: %s\n  pipeline: %s (diffusers %s)\n", path, cls ? cls : "?",
            json_string_value(json_object_get(idx, "_diffusers_version"))
                ? json_string_value(json_object_get(idx, "_diffusers_version"))
                : "?");
    json_decref(idx);

    int first_err = 0;
    char msg[1024] = "";
    int embeds = print_family(out, path, xl);
    first_err = print_scheduler(out, ref, path, embeds, msg, sizeof msg);
    print_memory(out, path, xl);
    static const char *toks[] = {"tokenizer", "tokenizer_2"};
    for (int i = 0; i < (xl ? 2 : 1); i++) {
        snprintf(file, sizeof file, "%s/%s", path, toks[i]);
        clip_tokenizer *tok = NULL;
        if ((rc = clip_tokenizer_load(file, &tok))) {
            fprintf(out, "  %s: ERROR: %s\n", toks[i], m2p_errmsg());
            if (!first_err) {
                first_err = rc;
                snprintf(msg, sizeof msg, "%s", m2p_errmsg());
            }
        } else {
            const char *pad = clip_token_str(tok, clip_pad_id(tok));
            fprintf(out, "  %s: CLIP BPE, bos %d, eos %d, pad %d (\"%s\")\n", toks[i],
                    clip_bos_id(tok), clip_eos_id(tok), clip_pad_id(tok), pad ? pad : "?");
            clip_tokenizer_free(tok);
        }
    }
    const char *parts[] = {"text_encoder", "text_encoder_2", "unet", "vae"};
    for (int i = 0; i < 4; i++) {
        if (i == 1 && !xl)
            continue;
        rc = inspect_part(out, path, parts[i]);
        if (rc && !first_err) {
            first_err = rc;
            snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        }
    }
    if (first_err && msg[0])
        m2p_error(first_err, "%s", msg);
    return first_err;
}
