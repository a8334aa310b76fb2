/*
 * scheduler.c — DDIM (Song et al. 2020, eq. 12 with eta 0), PNDM's PLMS steps (Liu et al. 2022,
 * "Pseudo Numerical Methods for Diffusion Models", eq. 12 with skip_prk_steps), Euler and Euler
 * ancestral (Karras et al. 2022, Algorithm 1 / k-diffusion's sample_euler_ancestral) and LCM
 * (scheduler_lcm.c) exactly as diffusers 0.26.3 computes them: the timestep schedule of each
 * timestep_spacing from the scheduler_config.json, then per UNet call the model output and the
 * sample -> the previous sample. Scalars are float32 in torch's order of operations, the
 * schedules follow numpy's arange / linspace / round-half-even / interp, so the fixtures'
 * tables match exactly and every step within an ulp or two.
 */
#include "sd/scheduler.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const kind_names[SCHED_N_KINDS] = {"lcm", "ddim", "pndm", "euler", "euler_a"};
static const char *const class_names[SCHED_N_KINDS] = {"LCMScheduler", "DDIMScheduler",
                                                       "PNDMScheduler", "EulerDiscreteScheduler",
                                                       "EulerAncestralDiscreteScheduler"};

int sched_kind_from_name(const char *name)
{
    for (int k = 0; name && k < SCHED_N_KINDS; k++)
        if (!strcmp(name, kind_names[k]))
            return k;
    return -1;
}

const char *sched_class_name(sched_kind kind)
{
    return kind >= 0 && kind < SCHED_N_KINDS ? class_names[kind] : "?";
}

int sched_kind_from_class(const char *class_name)
{
    for (int k = 0; class_name && k < SCHED_N_KINDS; k++)
        if (!strcmp(class_name, class_names[k]))
            return k;
    return -1;
}

const char *sched_display_name(const sched_config *c)
{
    switch (c->kind) {
    case SCHED_LCM:
        return "LCM";
    case SCHED_DDIM:
        return "DDIM";
    case SCHED_PNDM:
        return c->skip_prk_steps ? "PLMS" : "PNDM";
    case SCHED_EULER:
        return "Euler";
    case SCHED_EULER_A:
        return "Euler a";
    default:
        return "?";
    }
}

/* The __init__ defaults of each class in diffusers 0.26.3. */
void sched_config_default(sched_kind kind, sched_config *c)
{
    *c = (sched_config){
        .kind = kind,
        .num_train_timesteps = 1000,
        .beta_start = 0.0001f,
        .beta_end = 0.02f,
        .scaled_linear = 0,
        .prediction_type = LCM_PRED_EPSILON,
        .timestep_spacing = SCHED_SPACING_LEADING,
        .steps_offset = 0,
        .set_alpha_to_one = 0,
        .clip_sample = 0,
        .clip_sample_range = 1.0f,
        .original_inference_steps = 50,
        .timestep_scaling = 10.0f,
    };
    switch (kind) {
    case SCHED_LCM:
        c->beta_start = 0.00085f;
        c->beta_end = 0.012f;
        c->scaled_linear = 1;
        c->set_alpha_to_one = 1;
        break;
    case SCHED_DDIM:
        c->clip_sample = 1;
        c->set_alpha_to_one = 1;
        break;
    case SCHED_EULER:
    case SCHED_EULER_A:
        c->timestep_spacing = SCHED_SPACING_LINSPACE;
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Config                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    json_t *root;
    const char *path;
} cfg_src;

static int cfg_num(cfg_src *s, const char *key, double *v, int *has)
{
    json_t *x = json_object_get(s->root, key);
    *has = 0;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_number(x))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be a number", s->path, key);
    *v = json_number_value(x);
    *has = 1;
    return 0;
}

static int cfg_int(cfg_src *s, const char *key, int lo, int hi, int *out)
{
    double v;
    int has, rc = cfg_num(s, key, &v, &has);
    if (rc || !has)
        return rc;
    if (v != floor(v) || v < lo || v > hi)
        return m2p_error(M2P_EFORMAT, "%s: '%s' %g must be an integer in %d..%d", s->path, key, v,
                         lo, hi);
    *out = (int)v;
    return 0;
}

static int cfg_float(cfg_src *s, const char *key, float *out)
{
    double v;
    int has, rc = cfg_num(s, key, &v, &has);
    if (rc || !has)
        return rc;
    if (!isfinite(v))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be finite", s->path, key);
    *out = (float)v;
    return 0;
}

static int cfg_bool(cfg_src *s, const char *key, int *out)
{
    json_t *x = json_object_get(s->root, key);
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_boolean(x))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be true or false", s->path, key);
    *out = json_is_true(x);
    return 0;
}

/* A key that, set to anything but its harmless value, asks for what this engine lacks. */
static int cfg_refuse_true(cfg_src *s, const char *key, const char *why)
{
    int v = 0, rc = cfg_bool(s, key, &v);
    if (rc)
        return rc;
    if (v)
        return m2p_error(M2P_EUNSUPPORTED, "%s: '%s': true is not supported (%s)", s->path, key,
                         why);
    return 0;
}

static int cfg_str(cfg_src *s, const char *key, const char **out)
{
    json_t *x = json_object_get(s->root, key);
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_string(x))
        return m2p_error(M2P_EFORMAT, "%s: '%s' must be a string", s->path, key);
    *out = json_string_value(x);
    return 0;
}

static int parse(cfg_src *s, int kind, sched_config *c)
{
    const char *cls = NULL;
    int rc = cfg_str(s, "_class_name", &cls);
    if (rc)
        return rc;
    if (kind < 0) {
        if (!cls)
            return m2p_error(M2P_EFORMAT, "%s: no '_class_name' (which scheduler?)", s->path);
        kind = sched_kind_from_class(cls);
        if (kind < 0)
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: '_class_name' %s is not supported (LCMScheduler, "
                             "DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler, "
                             "EulerAncestralDiscreteScheduler; or --scheduler "
                             "lcm|ddim|pndm|euler|euler_a)",
                             s->path, cls);
    }
    sched_config_default((sched_kind)kind, c);
    if ((rc = cfg_int(s, "num_train_timesteps", 2, 100000, &c->num_train_timesteps)) ||
        (rc = cfg_float(s, "beta_start", &c->beta_start)) ||
        (rc = cfg_float(s, "beta_end", &c->beta_end)) ||
        (rc = cfg_int(s, "steps_offset", 0, c->num_train_timesteps - 1, &c->steps_offset)))
        return rc;
    if (!(c->beta_start > 0 && c->beta_end > 0 && c->beta_start < 1 && c->beta_end < 1))
        return m2p_error(M2P_EFORMAT, "%s: 'beta_start' and 'beta_end' must lie in (0, 1)",
                         s->path);
    json_t *tb = json_object_get(s->root, "trained_betas");
    if (tb && !json_is_null(tb))
        return m2p_error(M2P_EUNSUPPORTED, "%s: 'trained_betas' is not supported", s->path);
    const char *str = NULL;
    if ((rc = cfg_str(s, "beta_schedule", &str)))
        return rc;
    if (str) {
        if (!strcmp(str, "scaled_linear"))
            c->scaled_linear = 1;
        else if (!strcmp(str, "linear"))
            c->scaled_linear = 0;
        else
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: 'beta_schedule' %s is not supported (linear, scaled_linear)",
                             s->path, str);
    }
    str = NULL;
    if ((rc = cfg_str(s, "prediction_type", &str)))
        return rc;
    if (str) {
        if (!strcmp(str, "epsilon"))
            c->prediction_type = LCM_PRED_EPSILON;
        else if (!strcmp(str, "v_prediction"))
            c->prediction_type = LCM_PRED_V;
        else if (!strcmp(str, "sample") && kind != SCHED_PNDM && kind != SCHED_EULER_A)
            c->prediction_type = LCM_PRED_SAMPLE;
        else
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: 'prediction_type' %s is not supported by %s (epsilon, "
                             "v_prediction%s)",
                             s->path, str, class_names[kind],
                             kind != SCHED_PNDM && kind != SCHED_EULER_A ? ", sample" : "");
    }
    str = NULL;
    if ((rc = cfg_str(s, "timestep_spacing", &str)))
        return rc;
    if (str && kind != SCHED_LCM) { /* LCM has its own schedule and ignores the key */
        if (!strcmp(str, "leading"))
            c->timestep_spacing = SCHED_SPACING_LEADING;
        else if (!strcmp(str, "trailing"))
            c->timestep_spacing = SCHED_SPACING_TRAILING;
        else if (!strcmp(str, "linspace"))
            c->timestep_spacing = SCHED_SPACING_LINSPACE;
        else
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: 'timestep_spacing' %s is not supported (leading, trailing, "
                             "linspace)",
                             s->path, str);
    }
    if (kind == SCHED_DDIM || kind == SCHED_PNDM || kind == SCHED_LCM)
        if ((rc = cfg_bool(s, "set_alpha_to_one", &c->set_alpha_to_one)))
            return rc;
    if (kind == SCHED_DDIM || kind == SCHED_LCM) {
        if ((rc = cfg_bool(s, "clip_sample", &c->clip_sample)) ||
            (rc = cfg_float(s, "clip_sample_range", &c->clip_sample_range)) ||
            (rc = cfg_refuse_true(s, "thresholding", "dynamic thresholding")))
            return rc;
    }
    if (kind != SCHED_PNDM &&
        (rc = cfg_refuse_true(s, "rescale_betas_zero_snr", "zero terminal SNR betas")))
        return rc;
    if (kind == SCHED_PNDM && (rc = cfg_bool(s, "skip_prk_steps", &c->skip_prk_steps)))
        return rc;
    if (kind == SCHED_EULER) {
        if ((rc = cfg_refuse_true(s, "use_karras_sigmas", "Karras sigmas")))
            return rc;
        str = NULL;
        if ((rc = cfg_str(s, "interpolation_type", &str)))
            return rc;
        if (str && strcmp(str, "linear"))
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: 'interpolation_type' %s is not supported (linear)", s->path, str);
        str = NULL;
        if ((rc = cfg_str(s, "timestep_type", &str)))
            return rc;
        if (str && strcmp(str, "discrete"))
            return m2p_error(M2P_EUNSUPPORTED, "%s: 'timestep_type' %s is not supported (discrete)",
                             s->path, str);
    }
    if (kind == SCHED_EULER || kind == SCHED_EULER_A) {
        str = NULL;
        if ((rc = cfg_str(s, "final_sigmas_type", &str)))
            return rc;
        if (str && strcmp(str, "zero"))
            return m2p_error(M2P_EUNSUPPORTED, "%s: 'final_sigmas_type' %s is not supported (zero)",
                             s->path, str);
    }
    if (kind == SCHED_LCM) {
        if ((rc = cfg_int(s, "original_inference_steps", 1, c->num_train_timesteps,
                          &c->original_inference_steps)) ||
            (rc = cfg_float(s, "timestep_scaling", &c->timestep_scaling)))
            return rc;
    }
    return 0;
}

static int load_root(json_t *root, const char *path, int kind, sched_config *c)
{
    int rc;
    if (!json_is_object(root)) {
        rc = m2p_error(M2P_EFORMAT, "%s: not a JSON object", path);
    } else {
        cfg_src s = {root, path};
        rc = parse(&s, kind, c);
    }
    json_decref(root);
    return rc;
}

int sched_config_load(const char *path, int kind, sched_config *c)
{
    if (kind >= SCHED_N_KINDS)
        return m2p_error(M2P_EINVAL, "scheduler kind %d: unknown", kind);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return m2p_error(json_error_code(&jerr) == json_error_cannot_open_file ? M2P_ENOTFOUND
                                                                               : M2P_EFORMAT,
                         "%s: %s", path, jerr.text);
    return load_root(root, path, kind, c);
}

int sched_config_parse(const char *json_text, const char *what, int kind, sched_config *c)
{
    if (kind >= SCHED_N_KINDS)
        return m2p_error(M2P_EINVAL, "scheduler kind %d: unknown", kind);
    json_error_t jerr;
    json_t *root = json_loads(json_text, 0, &jerr);
    if (!root)
        return m2p_error(M2P_EFORMAT, "%s: %s", what, jerr.text);
    return load_root(root, what, kind, c);
}

/* ---------------------------------------------------------------------------------------- */
/* Schedules                                                                                 */
/* ---------------------------------------------------------------------------------------- */

int sched_init(scheduler *s, const sched_config *c)
{
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    lcm_config lc;
    lcm_config_default(&lc);
    lc.num_train_timesteps = c->num_train_timesteps;
    lc.beta_start = c->beta_start;
    lc.beta_end = c->beta_end;
    lc.scaled_linear = c->scaled_linear;
    lc.original_inference_steps = c->original_inference_steps;
    lc.set_alpha_to_one = c->set_alpha_to_one;
    lc.prediction_type = c->prediction_type;
    lc.timestep_scaling = c->timestep_scaling;
    lc.clip_sample = c->clip_sample;
    lc.clip_sample_range = c->clip_sample_range;
    /* betas and alphas_cumprod exactly as torch: shared with the LCM code */
    return lcm_init(&s->lcm, &lc);
}

static void free_state(scheduler *s)
{
    free(s->ets);
    free(s->cur_sample);
    free(s->cur_mo);
    s->ets = s->cur_sample = s->cur_mo = NULL;
    s->n_ets = s->counter = 0;
    s->n_state = 0;
}

void sched_free(scheduler *s)
{
    lcm_free(&s->lcm);
    free(s->timesteps);
    free(s->sigmas);
    s->timesteps = s->sigmas = NULL;
    free_state(s);
}

/* The N base timesteps of a spacing, descending, in double (Euler keeps them float32):
 *   leading:  (arange(N) * (T // N)).round()[::-1] + steps_offset
 *   trailing: round(arange(T, 0, -T / N)) - 1   (numpy fills arange as start + i * delta with
 *             delta = (start + step) - start)
 *   linspace: linspace(0, T - 1, N)[::-1], rounded for the integer schedulers. */
static void base_timesteps(const sched_config *c, int N, int round_it, double *out)
{
    const int T = c->num_train_timesteps;
    if (c->timestep_spacing == SCHED_SPACING_LEADING) {
        int ratio = T / N;
        for (int j = 0; j < N; j++)
            out[j] = (double)(N - 1 - j) * ratio + c->steps_offset;
    } else if (c->timestep_spacing == SCHED_SPACING_TRAILING) {
        double step = -(double)T / (double)N;
        double delta = ((double)T + step) - (double)T;
        for (int j = 0; j < N; j++)
            out[j] = nearbyint((double)T + (double)j * delta) - 1.0;
    } else {
        double step = N > 1 ? (double)(T - 1) / (double)(N - 1) : 0.0;
        for (int j = 0; j < N; j++) {
            int i = N - 1 - j;
            double v = (N > 1 && i == N - 1) ? (double)(T - 1) : (double)i * step;
            out[j] = round_it ? nearbyint(v) : v;
        }
    }
}

/* np.interp(x, arange(T), fp) for 0 <= x <= T-1, in double. */
static double interp(double x, const float *fp, int T)
{
    if (x <= 0)
        return fp[0];
    if (x >= T - 1)
        return fp[T - 1];
    int j = (int)floor(x);
    double slope = (double)fp[j + 1] - (double)fp[j]; /* xp spacing 1 */
    return slope * (x - (double)j) + (double)fp[j];
}

int sched_set_timesteps(scheduler *s, int steps)
{
    const sched_config *c = &s->cfg;
    const int T = c->num_train_timesteps;
    if (steps < 1)
        return m2p_error(M2P_EINVAL, "steps %d: must be at least 1", steps);
    if (steps > T)
        return m2p_error(M2P_EINVAL, "steps %d: more than the %d training timesteps", steps, T);
    free(s->timesteps);
    free(s->sigmas);
    s->timesteps = s->sigmas = NULL;
    free_state(s);
    s->n_steps = s->n_calls = s->n_prk = 0;
    s->init_noise_sigma = 1.0f;
    const int prk = c->kind == SCHED_PNDM && !c->skip_prk_steps;
    if (prk && steps < 4)
        return m2p_error(M2P_EINVAL,
                         "steps %d: PNDM with its Runge-Kutta warm-up (skip_prk_steps false) needs "
                         "at least 4 steps",
                         steps);

    if (c->kind == SCHED_LCM) {
        int rc = lcm_set_timesteps(&s->lcm, steps);
        if (rc)
            return rc;
        if (!(s->timesteps = malloc((size_t)steps * sizeof *s->timesteps)))
            return m2p_error(M2P_ENOMEM, "scheduler: out of memory");
        for (int j = 0; j < steps; j++)
            s->timesteps[j] = (float)s->lcm.timesteps[j];
        s->n_steps = s->n_calls = steps;
        return 0;
    }
    double *base = malloc((size_t)steps * sizeof *base);
    int n_calls = prk ? steps + 9 : c->kind == SCHED_PNDM && steps > 1 ? steps + 1 : steps;
    s->timesteps = malloc((size_t)n_calls * sizeof *s->timesteps);
    int euler = c->kind == SCHED_EULER || c->kind == SCHED_EULER_A;
    if (euler)
        s->sigmas = malloc((size_t)(n_calls + 1) * sizeof *s->sigmas);
    float *all = euler ? malloc((size_t)T * sizeof *all) : NULL;
    if (!base || !s->timesteps || (euler && (!s->sigmas || !all))) {
        free(base);
        free(all);
        return m2p_error(M2P_ENOMEM, "scheduler: out of memory");
    }
    base_timesteps(c, steps, !euler, base);
    if (prk) {
        /* Runge-Kutta: each of the last 4 leading timesteps T (ascending) and T + r/2, four
         * calls per step (t, t - r/2 twice, t - r), then PLMS over the others:
         * prk = (repeat2(T4) + tile([0, r/2]))[:-1].repeat(2)[1:-1] reversed, plms =
         * T[:-3] reversed. */
        const int half = T / steps / 2;
        int v[8], w[14];
        for (int k = 0; k < 8; k++)
            v[k] = (int)base[3 - k / 2] + (k % 2 ? half : 0); /* base is descending */
        for (int k = 0; k < 14; k++)
            w[k] = v[k / 2];
        for (int k = 0; k < 12; k++)
            s->timesteps[k] = (float)w[12 - k];
        for (int j = 3; j < steps; j++)
            s->timesteps[12 + j - 3] = (float)base[j];
        s->n_prk = 12;
    } else if (c->kind == SCHED_PNDM && steps > 1) {
        /* plms_timesteps = [T_0, T_1, T_1, T_2, ..., T_{N-1}] */
        s->timesteps[0] = (float)base[0];
        for (int j = 1; j < steps; j++)
            s->timesteps[j + 1] = (float)base[j];
        s->timesteps[1] = (float)base[1];
    } else {
        for (int j = 0; j < steps; j++)
            s->timesteps[j] = (float)base[j]; /* Euler: astype(float32) */
    }
    if (euler) {
        /* sigma(t) = ((1 - a_t) / a_t) ** 0.5 in float32, np.interp at the timesteps, + 0 */
        for (int t = 0; t < T; t++) {
            float a = s->lcm.alphas_cumprod[t];
            all[t] = sqrtf((1.0f - a) / a);
        }
        float mx = 0.0f;
        for (int j = 0; j < steps; j++) {
            s->sigmas[j] = (float)interp((double)s->timesteps[j], all, T);
            mx = s->sigmas[j] > mx ? s->sigmas[j] : mx;
        }
        s->sigmas[steps] = 0.0f;
        /* diffusers 0.26.3: sigma_max for linspace / trailing, sqrt(sigma_max^2 + 1) else */
        s->init_noise_sigma =
            c->timestep_spacing == SCHED_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
    free(base);
    free(all);
    s->n_steps = steps;
    s->n_calls = n_calls;
    return 0;
}

int sched_noise_draws(const scheduler *s)
{
    switch (s->cfg.kind) {
    case SCHED_LCM:
        return s->n_steps - 1;
    case SCHED_EULER:
    case SCHED_EULER_A:
        return s->n_steps;
    default:
        return 0;
    }
}

int sched_draws_noise(const scheduler *s, int i)
{
    switch (s->cfg.kind) {
    case SCHED_LCM:
        return i < s->n_calls - 1;
    case SCHED_EULER:
    case SCHED_EULER_A:
        return 1;
    default:
        return 0;
    }
}

void sched_scale_model_input(const scheduler *s, int i, const float *x, float *out, size_t n)
{
    if (s->sigmas && i >= 0 && i < s->n_calls) {
        float sg = s->sigmas[i];
        float d = sqrtf(sg * sg + 1.0f);
        for (size_t k = 0; k < n; k++)
            out[k] = x[k] / d;
    } else if (out != x) {
        memmove(out, x, n * sizeof *out);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Steps                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static float alpha_at(const scheduler *s, int64_t t)
{
    return t >= 0 ? s->lcm.alphas_cumprod[t] : s->lcm.final_alpha_cumprod;
}

/* DDIMScheduler.step, eta 0: x0 and eps from the prediction, then
 * x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps. */
static void ddim_step(const scheduler *s, int i, const float *mo, const float *x, size_t n,
                      float *den, float *prev)
{
    const sched_config *c = &s->cfg;
    int64_t t = (int64_t)s->timesteps[i];
    int64_t tp = t - c->num_train_timesteps / s->n_steps;
    float a_t = alpha_at(s, t), a_p = alpha_at(s, tp);
    float b_t = 1.0f - a_t;
    float sa = sqrtf(a_t), sb = sqrtf(b_t), sap = sqrtf(a_p);
    float dir = sqrtf(1.0f - a_p - 0.0f); /* std_dev_t = 0 */
    const float r = c->clip_sample_range;
    for (size_t k = 0; k < n; k++) {
        float x0, eps;
        if (c->prediction_type == LCM_PRED_EPSILON) {
            x0 = (x[k] - sb * mo[k]) / sa;
            eps = mo[k];
        } else if (c->prediction_type == LCM_PRED_SAMPLE) {
            x0 = mo[k];
            eps = (x[k] - sa * x0) / sb;
        } else {
            x0 = sa * x[k] - sb * mo[k];
            eps = sa * mo[k] + sb * x[k];
        }
        if (c->clip_sample)
            x0 = x0 < -r ? -r : x0 > r ? r : x0;
        den[k] = x0;
        prev[k] = sap * x0 + dir * eps;
    }
}

/* prev(x, t -> p, e) of PNDM (the paper's transfer, eq. 9 of arXiv 2202.09778) */
static void pndm_coefs(const scheduler *s, int64_t t, int64_t tp, float *coef, float *diff,
                       float *denom)
{
    float a_t = alpha_at(s, t), a_p = alpha_at(s, tp);
    float b_t = 1.0f - a_t, b_p = 1.0f - a_p;
    *coef = sqrtf(a_p / a_t);
    *denom = a_t * sqrtf(b_p) + sqrtf(a_t * b_t * a_p);
    *diff = a_p - a_t;
}

/* x0 implied by a model output at timestep t (previews; diffusers' PNDM returns none). */
static float pndm_x0(int pred, float sa, float sb, float x, float m)
{
    return pred == LCM_PRED_V ? sa * x - sb * m : (x - sb * m) / sa;
}

/* PNDMScheduler.step_prk: the 4 calls of a Runge-Kutta step (t, t - r/2, t - r/2, t - r) each
 * move from the step's start sample; the 4th with e = (e1 + 2 e2 + 2 e3 + e4) / 6. */
static int prk_step(scheduler *s, int i, const float *mo, const float *x, size_t n, float *den,
                    float *prev)
{
    const sched_config *c = &s->cfg;
    const int q = s->counter % 4;
    int64_t t_in = (int64_t)s->timesteps[i];
    int64_t tp = t_in - (s->counter % 2 ? 0 : c->num_train_timesteps / s->n_steps / 2);
    int64_t t = (int64_t)s->timesteps[s->counter / 4 * 4];
    if (q == 0) {
        memcpy(s->ets + (size_t)(s->n_ets % 4) * n, mo, n * sizeof *mo);
        s->n_ets++;
    }
    float coef, diff, denom;
    pndm_coefs(s, t, tp, &coef, &diff, &denom);
    float a_t = alpha_at(s, t), sa = sqrtf(a_t), sb = sqrtf(1.0f - a_t);
    float a_i = alpha_at(s, t_in), sa_i = sqrtf(a_i), sb_i = sqrtf(1.0f - a_i);
    const float sixth = 1.0f / 6.0f, third = 1.0f / 3.0f;
    for (size_t k = 0; k < n; k++) {
        float m = mo[k];
        den[k] = pndm_x0(c->prediction_type, sa_i, sb_i, x[k], m);
        if (q == 0) {
            s->cur_mo[k] = 0.0f + sixth * m;
            s->cur_sample[k] = x[k];
        } else if (q == 1 || q == 2) {
            s->cur_mo[k] = s->cur_mo[k] + third * m;
        } else {
            m = s->cur_mo[k] + sixth * m;
            s->cur_mo[k] = 0.0f;
        }
        float xs = s->cur_sample[k];
        if (c->prediction_type == LCM_PRED_V)
            m = sa * m + sb * xs;
        prev[k] = coef * xs - diff * m / denom;
    }
    s->counter++;
    return 0;
}

/* PNDMScheduler.step_plms (skip_prk_steps): a linear multistep combination of the remembered
 * outputs (Adams-Bashforth 1-4), then _get_prev_sample (the paper's transfer, eq. 11). */
static int pndm_step(scheduler *s, int i, const float *mo, const float *x, size_t n, float *den,
                     float *prev)
{
    const sched_config *c = &s->cfg;
    if (i == 0) {
        free_state(s);
        s->ets = malloc(4 * n * sizeof *s->ets);
        s->cur_sample = malloc(n * sizeof *s->cur_sample);
        s->cur_mo = s->n_prk ? calloc(n, sizeof *s->cur_mo) : NULL;
        if (!s->ets || !s->cur_sample || (s->n_prk && !s->cur_mo)) {
            free_state(s);
            return m2p_error(M2P_ENOMEM, "scheduler: out of memory");
        }
        s->n_state = n;
    } else if (n != s->n_state || s->counter != i) {
        return m2p_error(M2P_EINVAL, "scheduler: PNDM step %d out of order or of another size", i);
    }
    const int r = c->num_train_timesteps / s->n_steps;
    if (s->counter < s->n_prk)
        return prk_step(s, i, mo, x, n, den, prev);
    int64_t t = (int64_t)s->timesteps[i], tp = t - r;
    float *e[4] = {NULL, NULL, NULL, NULL}; /* e[0] newest */
    if (s->counter != 1) {
        /* ets = ets[-3:] + [model_output]: a ring of 4, newest at n_ets - 1 */
        memcpy(s->ets + (size_t)(s->n_ets % 4) * n, mo, n * sizeof *mo);
        s->n_ets++;
    } else {
        tp = t;
        t = t + r;
    }
    int have = s->n_ets < 4 ? s->n_ets : 4;
    for (int k = 0; k < have; k++)
        e[k] = s->ets + (size_t)((s->n_ets - 1 - k) % 4) * n;
    const float *xs = x;
    if (s->counter == 1)
        xs = s->cur_sample;
    float coef, diff, denom;
    pndm_coefs(s, t, tp, &coef, &diff, &denom);
    float a_t = alpha_at(s, t), sa = sqrtf(a_t), sb = sqrtf(1.0f - a_t);
    /* the x0 this call's own output implies (for previews; diffusers returns none) */
    float a_i = alpha_at(s, (int64_t)s->timesteps[i]);
    float sa_i = sqrtf(a_i), sb_i = sqrtf(1.0f - a_i);
    const float third = 1.0f / 24.0f;
    for (size_t k = 0; k < n; k++) {
        float m;
        if (s->n_ets == 1 && s->counter == 0)
            m = mo[k];
        else if (s->n_ets == 1 && s->counter == 1)
            m = (mo[k] + e[0][k]) / 2.0f;
        else if (have == 2)
            m = (3.0f * e[0][k] - e[1][k]) / 2.0f;
        else if (have == 3)
            m = (23.0f * e[0][k] - 16.0f * e[1][k] + 5.0f * e[2][k]) / 12.0f;
        else
            m = third * (55.0f * e[0][k] - 59.0f * e[1][k] + 37.0f * e[2][k] - 9.0f * e[3][k]);
        float xv = xs[k];
        if (c->prediction_type == LCM_PRED_V)
            m = sa * m + sb * xv;
        den[k] = pndm_x0(c->prediction_type, sa_i, sb_i, x[k], mo[k]);
        if (s->counter == 0)
            s->cur_sample[k] = x[k];
        prev[k] = coef * xv - diff * m / denom;
    }
    s->counter++;
    return 0;
}

/* EulerDiscreteScheduler.step (s_churn 0, so sigma_hat = sigma) and
 * EulerAncestralDiscreteScheduler.step, float32 throughout. */
static void euler_step(const scheduler *s, int i, const float *mo, const float *x,
                       const float *noise, size_t n, float *den, float *prev)
{
    const int pred = s->cfg.prediction_type;
    float sg = s->sigmas[i], sn = s->sigmas[i + 1];
    float v_out = -sg / sqrtf(sg * sg + 1.0f), v_in = sg * sg + 1.0f;
    float dt = sn - sg, up = 0.0f;
    if (s->cfg.kind == SCHED_EULER_A) {
        float sf2 = sg * sg, st2 = sn * sn;
        up = sqrtf(st2 * (sf2 - st2) / sf2);
        float down = sqrtf(st2 - up * up);
        dt = down - sg;
    }
    for (size_t k = 0; k < n; k++) {
        float x0;
        if (pred == LCM_PRED_EPSILON)
            x0 = x[k] - sg * mo[k];
        else if (pred == LCM_PRED_V)
            x0 = mo[k] * v_out + x[k] / v_in;
        else
            x0 = mo[k];
        float d = (x[k] - x0) / sg;
        float p = x[k] + d * dt;
        if (s->cfg.kind == SCHED_EULER_A)
            p = p + noise[k] * up;
        den[k] = x0;
        prev[k] = p;
    }
}

int sched_step(scheduler *s, int i, const float *model_output, const float *sample,
               const float *noise, size_t n, float *denoised, float *prev_sample)
{
    if (i < 0 || i >= s->n_calls)
        return m2p_error(M2P_EINVAL, "scheduler: step %d outside 0..%d", i, s->n_calls - 1);
    if (sched_draws_noise(s, i) && !noise && s->cfg.kind != SCHED_EULER)
        return m2p_error(M2P_EINVAL, "scheduler: step %d needs noise", i);
    switch (s->cfg.kind) {
    case SCHED_LCM:
        return lcm_step(&s->lcm, i, model_output, sample, noise, n, denoised, prev_sample);
    case SCHED_DDIM:
        ddim_step(s, i, model_output, sample, n, denoised, prev_sample);
        return 0;
    case SCHED_PNDM:
        return pndm_step(s, i, model_output, sample, n, denoised, prev_sample);
    case SCHED_EULER:
    case SCHED_EULER_A:
        euler_step(s, i, model_output, sample, noise, n, denoised, prev_sample);
        return 0;
    default:
        return m2p_error(M2P_EINTERNAL, "scheduler: kind %d", s->cfg.kind);
    }
}
