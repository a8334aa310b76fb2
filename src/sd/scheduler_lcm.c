/*
 * scheduler_lcm.c — LCM multistep sampling (Luo et al. 2023, "Latent Consistency Models",
 * Algorithm 3) exactly as diffusers 0.26 LCMScheduler computes it: the timestep schedule from
 * the model's scheduler_config.json, then per step the pipeline's UNet output eps and latents x
 * -> x_prev (formulas with each function below). Every scalar is float32 with torch's operation
 * order (betas by torch.linspace's vectorised kernel, cumprod accumulated in double as torch's
 * CPU kernel does), so results match bit for bit or within an ulp.
 */
#include "sd/scheduler_lcm.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void lcm_config_default(lcm_config *c)
{
    *c = (lcm_config){
        .num_train_timesteps = 1000,
        .beta_start = 0.00085f,
        .beta_end = 0.012f,
        .scaled_linear = 1,
        .original_inference_steps = 50,
        .set_alpha_to_one = 1,
        .prediction_type = LCM_PRED_EPSILON,
        .timestep_scaling = 10.0f,
        .clip_sample = 0,
        .clip_sample_range = 1.0f,
    };
}

static int get_num(json_t *root, const char *path, const char *key, double *v, int *present)
{
    json_t *x = json_object_get(root, key);
    *present = 0;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_number(x))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be a number", path, key);
    *v = json_number_value(x);
    *present = 1;
    return 0;
}

static int get_bool(json_t *root, const char *path, const char *key, int *v)
{
    json_t *x = json_object_get(root, key);
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_boolean(x))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be true or false", path, key);
    *v = json_is_true(x);
    return 0;
}

int lcm_config_load(const char *path, lcm_config *c)
{
    lcm_config_default(c);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return m2p_error(M2P_EFORMAT, "%s: %s", path, jerr.text);
    int rc = 0, has;
    double v;
    if (!json_is_object(root)) {
        rc = m2p_error(M2P_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    const char *cls = json_string_value(json_object_get(root, "_class_name"));
    if (cls && strcmp(cls, "LCMScheduler") != 0) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: scheduler '%s' is not supported (LCMScheduler only)",
                       path, cls);
        goto out;
    }
    if ((rc = get_num(root, path, "num_train_timesteps", &v, &has)))
        goto out;
    if (has) {
        if (v < 2 || v > 100000 || v != floor(v)) {
            rc = m2p_error(M2P_EFORMAT, "%s: 'num_train_timesteps' %g out of range", path, v);
            goto out;
        }
        c->num_train_timesteps = (int)v;
    }
    if ((rc = get_num(root, path, "beta_start", &v, &has)))
        goto out;
    if (has)
        c->beta_start = (float)v;
    if ((rc = get_num(root, path, "beta_end", &v, &has)))
        goto out;
    if (has)
        c->beta_end = (float)v;
    if ((rc = get_num(root, path, "original_inference_steps", &v, &has)))
        goto out;
    if (has) {
        if (v < 1 || v > c->num_train_timesteps || v != floor(v)) {
            rc = m2p_error(M2P_EFORMAT, "%s: 'original_inference_steps' %g out of range 1..%d",
                           path, v, c->num_train_timesteps);
            goto out;
        }
        c->original_inference_steps = (int)v;
    }
    if ((rc = get_num(root, path, "timestep_scaling", &v, &has)))
        goto out;
    if (has)
        c->timestep_scaling = (float)v;
    if ((rc = get_num(root, path, "clip_sample_range", &v, &has)))
        goto out;
    if (has)
        c->clip_sample_range = (float)v;
    if ((rc = get_bool(root, path, "set_alpha_to_one", &c->set_alpha_to_one)) ||
        (rc = get_bool(root, path, "clip_sample", &c->clip_sample)))
        goto out;
    int flag = 0;
    if ((rc = get_bool(root, path, "thresholding", &flag)))
        goto out;
    if (flag) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'thresholding' is not supported", path);
        goto out;
    }
    flag = 0;
    if ((rc = get_bool(root, path, "rescale_betas_zero_snr", &flag)))
        goto out;
    if (flag) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'rescale_betas_zero_snr' is not supported", path);
        goto out;
    }
    json_t *tb = json_object_get(root, "trained_betas");
    if (tb && !json_is_null(tb)) {
        rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'trained_betas' is not supported", path);
        goto out;
    }
    const char *sched = json_string_value(json_object_get(root, "beta_schedule"));
    if (sched) {
        if (!strcmp(sched, "scaled_linear"))
            c->scaled_linear = 1;
        else if (!strcmp(sched, "linear"))
            c->scaled_linear = 0;
        else {
            rc =
                m2p_error(M2P_EUNSUPPORTED, "%s: beta_schedule '%s' is not supported", path, sched);
            goto out;
        }
    }
    const char *pred = json_string_value(json_object_get(root, "prediction_type"));
    if (pred) {
        if (!strcmp(pred, "epsilon"))
            c->prediction_type = LCM_PRED_EPSILON;
        else if (!strcmp(pred, "sample"))
            c->prediction_type = LCM_PRED_SAMPLE;
        else if (!strcmp(pred, "v_prediction"))
            c->prediction_type = LCM_PRED_V;
        else {
            rc = m2p_error(M2P_EUNSUPPORTED, "%s: prediction_type '%s' is not supported", path,
                           pred);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

/* torch.linspace(start, end, n, dtype=float32) on CPU (torch 1.13 RangeFactoriesKernel): the
 * first half counts up from start, the second half down from end; blocks of 2 x 8 lanes come from
 * Vectorized::arange(base, step) = base + j*step, the tail from the scalar formula. */
static void torch_linspace_f32(float start, float end, int n, float *out)
{
    const float step = n > 1 ? (end - start) / (float)(n - 1) : 0.0f;
    const int64_t half = n / 2;
    const int vec = 8;
    const int64_t n_vec = (int64_t)n / (2 * vec) * (2 * vec);
    int64_t i = 0;
    for (; i < n_vec; i += vec) {
        float base = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
        for (int j = 0; j < vec; j++)
            out[i + j] = base + (float)j * step;
    }
    for (; i < n; i++)
        out[i] = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
}

int lcm_init(lcm_scheduler *s, const lcm_config *c)
{
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    int T = c->num_train_timesteps;
    s->alphas_cumprod = malloc((size_t)T * sizeof *s->alphas_cumprod);
    float *betas = malloc((size_t)T * sizeof *betas);
    if (!s->alphas_cumprod || !betas) {
        free(betas);
        lcm_free(s);
        return m2p_error(M2P_ENOMEM, "scheduler: out of memory");
    }
    if (c->scaled_linear) {
        /* betas = linspace(beta_start**0.5, beta_end**0.5, T, float32) ** 2 (sqrt in double) */
        torch_linspace_f32((float)sqrt((double)c->beta_start), (float)sqrt((double)c->beta_end), T,
                           betas);
        for (int i = 0; i < T; i++)
            betas[i] = betas[i] * betas[i];
    } else {
        torch_linspace_f32(c->beta_start, c->beta_end, T, betas);
    }
    double acc = 1.0; /* torch's CPU cumprod accumulates float32 in double */
    for (int i = 0; i < T; i++) {
        float alpha = 1.0f - betas[i];
        acc *= (double)alpha;
        s->alphas_cumprod[i] = (float)acc;
    }
    free(betas);
    s->final_alpha_cumprod = c->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    return 0;
}

void lcm_free(lcm_scheduler *s)
{
    free(s->alphas_cumprod);
    free(s->timesteps);
    s->alphas_cumprod = NULL;
    s->timesteps = NULL;
    s->n_steps = 0;
}

/* k = T / original_steps, origin = [k-1, 2k-1, ..., T-1] reversed, taken at the evenly strided
 * indices floor(linspace(0, len, steps, endpoint=False)). */
int lcm_set_timesteps(lcm_scheduler *s, int steps)
{
    const lcm_config *c = &s->cfg;
    int orig = c->original_inference_steps;
    if (steps < 1)
        return m2p_error(M2P_EINVAL, "steps %d: must be at least 1", steps);
    if (steps > orig)
        return m2p_error(M2P_EINVAL,
                         "steps %d: LCM cannot take more steps than original_inference_steps (%d); "
                         "the schedule is a subset of that one",
                         steps, orig);
    int k = c->num_train_timesteps / orig;
    int64_t *ts = malloc((size_t)steps * sizeof *ts);
    if (!ts)
        return m2p_error(M2P_ENOMEM, "scheduler: out of memory");
    /* origin[j] (reversed) = (orig - j) * k - 1; indices floor(j * (orig / steps)) as numpy's
     * linspace(0, orig, steps, endpoint=False) computes them in double. */
    double step = (double)orig / (double)steps;
    for (int j = 0; j < steps; j++) {
        int64_t idx = (int64_t)floor((double)j * step);
        ts[j] = (int64_t)(orig - idx) * k - 1;
    }
    free(s->timesteps);
    s->timesteps = ts;
    s->n_steps = steps;
    return 0;
}

/* The consistency boundary condition (paper eq. 4 with timestep_scaling s = 10, sd = 0.5):
 * c_skip = sd^2 / ((s t)^2 + sd^2), c_out = s t / sqrt((s t)^2 + sd^2). */
void lcm_scalings(const lcm_scheduler *s, int64_t t, float *c_skip, float *c_out)
{
    const float sigma2 = 0.25f; /* sigma_data = 0.5 */
    float st = (float)t * s->cfg.timestep_scaling;
    float d = st * st + sigma2;
    /* torch: 0.25 / tensor is tensor.reciprocal() * 0.25; ** 0.5 is sqrt */
    *c_skip = (1.0f / d) * sigma2;
    *c_out = st / sqrtf(d);
}

/* x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t) (or the sample / v prediction), denoised =
 * c_out x0 + c_skip x, x_prev = sqrt(a_prev) denoised + sqrt(1 - a_prev) z, except on the last
 * step where x_prev = denoised. */
int lcm_step(const lcm_scheduler *s, int step_index, const float *model_output, const float *sample,
             const float *noise, size_t n, float *denoised, float *prev_sample)
{
    if (step_index < 0 || step_index >= s->n_steps)
        return m2p_error(M2P_EINVAL, "scheduler: step %d outside 0..%d", step_index,
                         s->n_steps - 1);
    int last = step_index == s->n_steps - 1;
    if (!last && !noise)
        return m2p_error(M2P_EINVAL, "scheduler: step %d needs noise", step_index);
    int64_t t = s->timesteps[step_index];
    int64_t tp = last ? t : s->timesteps[step_index + 1];
    float a_t = s->alphas_cumprod[t];
    float a_prev = tp >= 0 ? s->alphas_cumprod[tp] : s->final_alpha_cumprod;
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    float sa = sqrtf(a_t), sb = sqrtf(b_t), sap = sqrtf(a_prev), sbp = sqrtf(b_prev);
    float c_skip, c_out;
    lcm_scalings(s, t, &c_skip, &c_out);
    const int pred = s->cfg.prediction_type;
    const int clip = s->cfg.clip_sample;
    const float r = s->cfg.clip_sample_range;
    for (size_t i = 0; i < n; i++) {
        float x = sample[i], m = model_output[i], x0;
        if (pred == LCM_PRED_EPSILON)
            x0 = (x - sb * m) / sa;
        else if (pred == LCM_PRED_SAMPLE)
            x0 = m;
        else
            x0 = sa * x - sb * m;
        if (clip)
            x0 = x0 < -r ? -r : x0 > r ? r : x0;
        float d = c_out * x0 + c_skip * x;
        denoised[i] = d;
        prev_sample[i] = last ? d : sap * d + sbp * noise[i];
    }
    return 0;
}

/* torch's vectorised float exp on AVX2 is SLEEF's expf_u10 (sleefsimdsp.c xexpf): Cody-Waite
 * reduction by ln 2, a degree-6 polynomial, fused multiply-adds. Reproducing it (rather than
 * libm's expf, 1 ulp away at some inputs) matters here: the argument is later multiplied by
 * w*1000 = 7500, so one ulp of exp moves sin/cos by ~4e-4. */
static float sleef_expf(float d)
{
    int q = (int)rintf(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    float s = fmaf((float)q, -0.693145751953125f, d);
    s = fmaf((float)q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    u = ldexpf(u, q);
    if (d < -104.0f)
        u = 0.0f;
    if (d > 100.0f)
        u = INFINITY;
    return u;
}

void lcm_guidance_embedding(float guidance, int dim, float *out)
{
    /* w = torch.tensor(guidance_scale - 1) (float32), then w * 1000.0 */
    float w = (float)((double)guidance - 1.0) * 1000.0f;
    int half = dim / 2;
    float scale = half > 1 ? logf(10000.0f) / (float)(half - 1) : 0.0f;
    for (int i = 0; i < half; i++) {
        float freq = sleef_expf((float)i * -scale);
        float a = w * freq;
        out[i] = sinf(a);
        out[half + i] = cosf(a);
    }
    if (dim % 2)
        out[dim - 1] = 0.0f;
}
