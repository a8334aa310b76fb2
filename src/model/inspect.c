/*
 * inspect.c — `mus2pic inspect`: what a diffusers model folder holds and what this engine makes
 * of it. For each network part (text_encoder, unet, vae) the weights file, tensor count,
 * parameters per dtype and size; then the part is loaded with the engine's strict loader, so a
 * missing or mis-shaped tensor shows up here with its name, and every tensor the loader did not
 * use (the VAE encoder, ...) is listed as skipped. Tokenizer and scheduler are summarised too.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/weights.h"
#include "mus2pic.h"
#include "sd/clip_tokenizer.h"
#include "sd/components.h"
#include "sd/scheduler_lcm.h"

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
    if (!strcmp(part, "text_encoder")) {
        rc = clip_text_load(dir, &mp, &ct);
        w = ct ? clip_text_weights(ct) : NULL;
    } else if (!strcmp(part, "unet")) {
        rc = unet_load(dir, &mp, &un);
        w = un ? unet_weights(un) : NULL;
    } else {
        rc = vae_load(dir, &mp, &va);
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
    fprintf(out, "model: %s\n  pipeline: %s (diffusers %s)\n", path, cls ? cls : "?",
            json_string_value(json_object_get(idx, "_diffusers_version"))
                ? json_string_value(json_object_get(idx, "_diffusers_version"))
                : "?");
    json_decref(idx);

    int first_err = 0;
    char msg[1024] = "";
    snprintf(file, sizeof file, "%s/scheduler/scheduler_config.json", path);
    lcm_config sc;
    if ((rc = lcm_config_load(file, &sc))) {
        fprintf(out, "  scheduler: ERROR: %s\n", m2p_errmsg());
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        first_err = rc;
    } else {
        fprintf(out,
                "  scheduler: LCMScheduler, %d train timesteps, original_inference_steps %d, "
                "timestep_scaling %g, %s betas %g..%g\n",
                sc.num_train_timesteps, sc.original_inference_steps, sc.timestep_scaling,
                sc.scaled_linear ? "scaled_linear" : "linear", sc.beta_start, sc.beta_end);
    }
    snprintf(file, sizeof file, "%s/tokenizer", path);
    clip_tokenizer *tok = NULL;
    if ((rc = clip_tokenizer_load(file, &tok))) {
        fprintf(out, "  tokenizer: ERROR: %s\n", m2p_errmsg());
        if (!first_err) {
            first_err = rc;
            snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        }
    } else {
        fprintf(out, "  tokenizer: CLIP BPE, bos %d, eos %d\n", clip_bos_id(tok), clip_eos_id(tok));
        clip_tokenizer_free(tok);
    }
    const char *parts[] = {"text_encoder", "unet", "vae"};
    for (int i = 0; i < 3; i++) {
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
