/*
 * test_schedulers.c — every scheduler of sd2-tiny and sdxl-tiny (golden scheduler.json and
 * scheduler.safetensors, diffusers 0.26.3) through the generic interface: the class from its
 * name, alphas_cumprod, the tables for 1/2/4/8/20/50 steps (timesteps and DDIM's
 * prev_timestep exact, init_noise_sigma, Euler sigmas, alpha_prod_t), and the sequential step()
 * calls with injected noise (prev_sample, denoised, Euler's scale_model_input) within the
 * manifest's tolerances. Then the models' own configs, from_config with another class, PNDM's
 * Runge-Kutta warm-up schedule (diffusers' set_timesteps) and, for every sampler, the exact
 * trajectory of a model that always predicts the true noise (x_t = sqrt(a_t) x0 +
 * sqrt(1 - a_t) eps, or x0 + sigma eps, must end at x0's noised value of the last timestep),
 * and the configs this engine refuses (naming the key).
 */
#include <jansson.h>
#include <math.h>

#include "core/error.h"
#include "sd/scheduler.h"
#include "sd_golden.h"

static double rel(double got, double want)
{
    return fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1);
}

/* A float list from the tables against our values (relative error <= tol). */
static void check_list(json_t *want, const float *got, int n, double tol, const char *what)
{
    CHECK_INT((long long)json_array_size(want), n);
    for (int i = 0; i < n && i < (int)json_array_size(want); i++) {
        double w = json_number_value(json_array_get(want, i));
        if (!(rel(got[i], w) <= tol)) {
            fprintf(stderr, "%s[%d] = %.9g, expected %.9g\n", what, i, got[i], w);
            test_failures++;
            return;
        }
    }
}

static int check_steps(const char *fx, const char *name, scheduler *s, json_t *step_test,
                       st_file *gold, json_t *manifest)
{
    int steps = (int)json_integer_value(json_object_get(step_test, "num_inference_steps"));
    CHECK_INT(sched_set_timesteps(s, steps), 0);
    json_t *calls = json_object_get(step_test, "calls");
    CHECK_INT((long long)json_array_size(calls), s->n_calls);
    int compared = 0;
    for (int i = 0; i < s->n_calls; i++) {
        char key[160];
        int64_t shape[8];
        int nd;
        json_t *call = json_array_get(calls, i);
        CHECK_NEAR(json_number_value(json_object_get(call, "timestep")), s->timesteps[i], 0);
        CHECK_INT(json_is_true(json_object_get(call, "noise_drawn")), sched_draws_noise(s, i));
#define GET(var, suffix)                                                                           \
    snprintf(key, sizeof key, "%s.step%d." suffix, name, i);                                       \
    float *var = st_find(gold, key) ? gold_get(gold, key, shape, &nd) : NULL
        GET(mo, "model_output");
        GET(x, "sample");
        GET(noise, "noise");
        GET(scaled, "scaled_model_input");
        GET(prev, "prev_sample");
        GET(den, "denoised");
#undef GET
        size_t n = 1;
        for (int d = 0; d < nd; d++)
            n *= (size_t)shape[d];
        float *got_in = malloc(n * sizeof(float)), *got_prev = malloc(n * sizeof(float)),
              *got_den = malloc(n * sizeof(float));
        CHECK(mo && x && prev && got_in && got_prev && got_den);
        if (mo && x && prev && got_in && got_prev && got_den) {
            if (scaled) {
                sched_scale_model_input(s, i, x, got_in, n);
                snprintf(key, sizeof key, "%s.step%d.scaled_model_input", name, i);
                double err = test_max_abs_diff(got_in, scaled, n, key);
                CHECK(err <= gold_tol(manifest, "scheduler.safetensors", key));
            }
            int rc = sched_step(s, i, mo, x, noise, n, got_den, got_prev);
            if (rc)
                fprintf(stderr, "%s\n", m2p_errmsg());
            CHECK_INT(rc, 0);
            snprintf(key, sizeof key, "%s.step%d.prev_sample", name, i);
            double err = test_max_abs_diff(got_prev, prev, n, key), tol;
            tol = gold_tol(manifest, "scheduler.safetensors", key);
            if (!(err <= tol))
                fprintf(stderr, "%s %s: %.3g over %.3g\n", fx, key, err, tol);
            CHECK(err <= tol);
            if (den) {
                snprintf(key, sizeof key, "%s.step%d.denoised", name, i);
                err = test_max_abs_diff(got_den, den, n, key);
                tol = gold_tol(manifest, "scheduler.safetensors", key);
                if (!(err <= tol))
                    fprintf(stderr, "%s %s: %.3g over %.3g\n", fx, key, err, tol);
                CHECK(err <= tol);
            }
            compared++;
        }
        free(mo), free(x), free(noise), free(scaled), free(prev), free(den);
        free(got_in), free(got_prev), free(got_den);
    }
    return compared;
}

static void check_fixture(const char *fx)
{
    char p[256];
    snprintf(p, sizeof p, "%s/golden/scheduler.json", fx);
    json_error_t jerr;
    json_t *root = json_load_file(test_fixture(p), 0, &jerr);
    CHECK(root != NULL);
    snprintf(p, sizeof p, "%s/golden/manifest.json", fx);
    json_t *manifest = gold_manifest(p);
    snprintf(p, sizeof p, "%s/golden/scheduler.safetensors", fx);
    st_file *gold = NULL;
    CHECK_INT(st_open(test_fixture(p), &gold), 0);
    if (!root || !manifest || !gold)
        goto out;
    int64_t shape[1];
    float *ac = gold_get(gold, "alphas_cumprod", shape, NULL);
    const char *name;
    json_t *sch;
    int n_sched = 0, n_tables = 0, n_calls = 0;
    json_object_foreach(json_object_get(root, "schedulers"), name, sch)
    {
        const char *cls = json_string_value(json_object_get(sch, "class"));
        int kind = sched_kind_from_class(cls);
        CHECK(kind >= 0);
        char *text = json_dumps(json_object_get(sch, "config"), 0);
        sched_config cfg;
        int rc = sched_config_parse(text, name, kind, &cfg);
        free(text);
        if (rc)
            fprintf(stderr, "%s\n", m2p_errmsg());
        CHECK_INT(rc, 0);
        scheduler s;
        CHECK_INT(sched_init(&s, &cfg), 0);
        if (ac) {
            double tol = gold_tol(manifest, "scheduler.safetensors", "alphas_cumprod");
            CHECK(test_max_abs_diff(s.lcm.alphas_cumprod, ac, (size_t)shape[0], name) <= tol);
        }
        const char *nkey;
        json_t *tab;
        json_object_foreach(json_object_get(sch, "tables"), nkey, tab)
        {
            int steps = atoi(nkey);
            CHECK_INT(sched_set_timesteps(&s, steps), 0);
            char what[96];
            snprintf(what, sizeof what, "%s/%s %d steps timesteps", fx, name, steps);
            check_list(json_object_get(tab, "timesteps"), s.timesteps, s.n_calls, 0, what);
            /* alphas_cumprod agrees with torch's within ~2e-7 relative, not bit for bit (its
             * cumprod's order of operations is not reproduced), so what derives from it is
             * compared within 1e-6 relative: a few float32 ulps */
            CHECK(rel(s.init_noise_sigma,
                      json_number_value(json_object_get(tab, "init_noise_sigma"))) <= 1e-6);
            if (json_object_get(tab, "sigmas")) {
                snprintf(what, sizeof what, "%s/%s %d steps sigmas", fx, name, steps);
                check_list(json_object_get(tab, "sigmas"), s.sigmas, s.n_calls + 1, 1e-6, what);
            }
            json_t *apt = json_object_get(tab, "alpha_prod_t");
            for (int i = 0; i < s.n_calls && apt; i++)
                CHECK(rel(s.lcm.alphas_cumprod[(int)s.timesteps[i]],
                          json_number_value(json_array_get(apt, i))) <= 1e-6);
            json_t *prev_t = json_object_get(tab, "prev_timestep");
            json_t *prev_a = json_object_get(tab, "alpha_prod_t_prev");
            for (int i = 0; i < s.n_calls && prev_t; i++) {
                int tp = (int)s.timesteps[i] - cfg.num_train_timesteps / steps;
                CHECK_INT(tp, json_integer_value(json_array_get(prev_t, i)));
                float ap = tp >= 0 ? s.lcm.alphas_cumprod[tp] : s.lcm.final_alpha_cumprod;
                CHECK(rel(ap, json_number_value(json_array_get(prev_a, i))) <= 1e-6);
            }
            json_t *cs = json_object_get(tab, "c_skip"), *co = json_object_get(tab, "c_out");
            for (int i = 0; i < s.n_calls && cs; i++) {
                float a, b;
                lcm_scalings(&s.lcm, s.lcm.timesteps[i], &a, &b);
                CHECK(rel(a, json_number_value(json_array_get(cs, i))) <= 1e-6);
                CHECK(rel(b, json_number_value(json_array_get(co, i))) <= 1e-6);
            }
            n_tables++;
        }
        n_calls += check_steps(fx, name, &s, json_object_get(sch, "step_test"), gold, manifest);
        /* draws over a run, as the fixtures count them */
        CHECK_INT(sched_set_timesteps(&s, 4), 0);
        int draws = 0;
        for (int i = 0; i < s.n_calls; i++)
            draws += sched_draws_noise(&s, i);
        CHECK_INT(draws, sched_noise_draws(&s));
        sched_free(&s);
        n_sched++;
    }
    printf("%s: %d schedulers, %d tables, %d step() calls within tolerance\n", fx, n_sched,
           n_tables, n_calls);
    CHECK(n_sched >= 3 && n_calls >= 12);
    free(ac);
out:
    json_decref(root);
    json_decref(manifest);
    if (gold)
        st_close(gold);
}

/* A model that always outputs the true eps: DDIM's and PNDM's transfer, every PLMS / Runge-
 * Kutta average of a constant and Euler's step are exact, so the run ends where the closed
 * form says: sqrt(a_final) x0 + sqrt(1 - a_final) eps (a_final = final_alpha_cumprod), or x0
 * for Euler. */
static void check_exact_trajectory(const char *json, int kind, int steps)
{
    sched_config c;
    CHECK_INT(sched_config_parse(json, "trajectory", kind, &c), 0);
    scheduler s;
    CHECK_INT(sched_init(&s, &c), 0);
    CHECK_INT(sched_set_timesteps(&s, steps), 0);
    enum { n = 16 };
    float x0[n], eps[n], x[n], den[n], want[n];
    for (int k = 0; k < n; k++) {
        x0[k] = sinf(0.7f * k) * 0.9f;
        eps[k] = cosf(1.3f * k + 0.2f) * 1.5f;
    }
    float a0 = s.lcm.alphas_cumprod[(int)s.timesteps[0]], af = s.lcm.final_alpha_cumprod;
    for (int k = 0; k < n; k++) {
        if (s.sigmas) {
            x[k] = x0[k] + s.sigmas[0] * eps[k];
            want[k] = x0[k];
        } else {
            x[k] = sqrtf(a0) * x0[k] + sqrtf(1 - a0) * eps[k];
            want[k] = sqrtf(af) * x0[k] + sqrtf(1 - af) * eps[k];
        }
    }
    float zero[n] = {0};
    for (int i = 0; i < s.n_calls; i++)
        CHECK_INT(sched_step(&s, i, eps, x, zero, n, den, x), 0);
    double err = 0;
    for (int k = 0; k < n; k++)
        err = fmax(err, fabs(x[k] - want[k]));
    printf("%s %d steps (%d calls): exact-noise trajectory ends %.2g from the closed form\n",
           sched_class_name(c.kind), steps, s.n_calls, err);
    CHECK(err <= 1e-4);
    sched_free(&s);
}

static void expect_refused(const char *json, int kind, const char *needle)
{
    sched_config c;
    int rc = sched_config_parse(json, "test config", kind, &c);
    CHECK(rc != 0);
    if (rc && !strstr(m2p_errmsg(), needle)) {
        fprintf(stderr, "message '%s' does not name '%s'\n", m2p_errmsg(), needle);
        test_failures++;
    }
}

int main(void)
{
    (void)gold_tap; /* sd_golden.h helpers this test does not need */
    (void)gold_check_bad_folders;
    check_fixture("sd2-tiny");
    check_fixture("sdxl-tiny");

    /* the models' own configs: the class from _class_name */
    sched_config c;
    CHECK_INT(
        sched_config_load(test_fixture("sd2-tiny/model/scheduler/scheduler_config.json"), -1, &c),
        0);
    CHECK_INT(c.kind, SCHED_DDIM);
    CHECK_INT(c.prediction_type, LCM_PRED_V);
    CHECK_INT(c.steps_offset, 1);
    CHECK_INT(c.set_alpha_to_one, 0);
    CHECK_INT(c.clip_sample, 0);
    CHECK_INT(
        sched_config_load(test_fixture("sdxl-tiny/model/scheduler/scheduler_config.json"), -1, &c),
        0);
    CHECK_INT(c.kind, SCHED_EULER_A);
    CHECK_INT(c.timestep_spacing, SCHED_SPACING_TRAILING);
    CHECK_INT(
        sched_config_load(test_fixture("sd-tiny/model/scheduler/scheduler_config.json"), -1, &c),
        0);
    CHECK_INT(c.kind, SCHED_LCM);

    /* from_config with another class: shared keys kept, the rest the class defaults */
    CHECK_INT(sched_config_load(test_fixture("sd2-tiny/model/scheduler/scheduler_config.json"),
                                SCHED_EULER, &c),
              0);
    CHECK_INT(c.kind, SCHED_EULER);
    CHECK_INT(c.prediction_type, LCM_PRED_V);
    CHECK_INT(c.timestep_spacing, SCHED_SPACING_LEADING);
    CHECK_INT(sched_config_load(test_fixture("sd2-tiny/model/scheduler/scheduler_config.json"),
                                SCHED_PNDM, &c),
              0); /* skip_prk_steps true in SD 2.1's DDIM config */
    sched_config_default(SCHED_DDIM, &c);
    CHECK_INT(c.clip_sample, 1);
    CHECK_INT(c.set_alpha_to_one, 1);
    CHECK_INT(sched_kind_from_name("euler_a"), SCHED_EULER_A);
    CHECK_INT(sched_kind_from_name("dpm"), -1);

    /* linspace spacing (no golden; numpy's values): DDIM 4 steps -> 999 666 333 0, Euler
     * float32 timesteps 999, 666, 333, 0 and sigma_max without the +1 */
    CHECK_INT(sched_config_parse("{\"timestep_spacing\": \"linspace\", \"beta_schedule\": "
                                 "\"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}",
                                 "linspace", SCHED_DDIM, &c),
              0);
    scheduler s;
    CHECK_INT(sched_init(&s, &c), 0);
    CHECK_INT(sched_set_timesteps(&s, 4), 0);
    CHECK_NEAR(s.timesteps[0], 999, 0);
    CHECK_NEAR(s.timesteps[1], 666, 0);
    CHECK_NEAR(s.timesteps[2], 333, 0);
    CHECK_NEAR(s.timesteps[3], 0, 0);
    sched_free(&s);
    c.kind = SCHED_EULER;
    CHECK_INT(sched_init(&s, &c), 0);
    CHECK_INT(sched_set_timesteps(&s, 3), 0);
    CHECK_NEAR(s.timesteps[1], 499.5, 0);
    CHECK(s.sigmas[1] > 0);
    CHECK_NEAR(s.init_noise_sigma, s.sigmas[0], 0);
    /* steps out of range */
    CHECK_INT(sched_set_timesteps(&s, 0), M2P_EINVAL);
    CHECK_INT(sched_set_timesteps(&s, 1001), M2P_EINVAL);
    sched_free(&s);

    /* PNDM with its Runge-Kutta warm-up (the class default): diffusers' set_timesteps for 10
     * leading steps, offset 1: the last four timesteps 601..901 and +50 in 12 RK calls, then
     * PLMS from 601 down */
    CHECK_INT(sched_config_parse("{\"_class_name\": \"PNDMScheduler\", \"steps_offset\": 1}",
                                 "pndm-prk", -1, &c),
              0);
    CHECK_INT(c.skip_prk_steps, 0);
    CHECK_INT(sched_init(&s, &c), 0);
    CHECK_INT(sched_set_timesteps(&s, 10), 0);
    static const int prk10[] = {901, 851, 851, 801, 801, 751, 751, 701, 701, 651,
                                651, 601, 601, 501, 401, 301, 201, 101, 1};
    CHECK_INT(s.n_calls, 19);
    for (int i = 0; i < 19 && i < s.n_calls; i++)
        CHECK_NEAR(s.timesteps[i], prk10[i], 0);
    CHECK_INT(sched_set_timesteps(&s, 3), M2P_EINVAL);
    sched_free(&s);
    const char *sd = "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
                     "\"beta_end\": 0.012, \"steps_offset\": 1";
    char js[512];
    snprintf(js, sizeof js, "{%s, \"skip_prk_steps\": false}", sd);
    check_exact_trajectory(js, SCHED_PNDM, 10);
    check_exact_trajectory(js, SCHED_PNDM, 4);
    snprintf(js, sizeof js, "{%s, \"skip_prk_steps\": true}", sd);
    check_exact_trajectory(js, SCHED_PNDM, 20);
    snprintf(js, sizeof js, "{%s, \"set_alpha_to_one\": false, \"clip_sample\": false}", sd);
    check_exact_trajectory(js, SCHED_DDIM, 20);
    snprintf(js, sizeof js, "{%s, \"timestep_spacing\": \"trailing\"}", sd);
    check_exact_trajectory(js, SCHED_EULER, 8);
    snprintf(js, sizeof js, "{%s, \"timestep_spacing\": \"linspace\"}", sd);
    check_exact_trajectory(js, SCHED_EULER, 7);

    /* refused configs name the key */
    expect_refused("{\"_class_name\": \"DPMSolverMultistepScheduler\"}", -1, "_class_name");
    expect_refused("{}", -1, "_class_name");
    expect_refused("{\"use_karras_sigmas\": true}", SCHED_EULER, "use_karras_sigmas");
    expect_refused("{\"thresholding\": true}", SCHED_DDIM, "thresholding");
    expect_refused("{\"rescale_betas_zero_snr\": true}", SCHED_EULER_A, "rescale_betas_zero_snr");
    expect_refused("{\"beta_schedule\": \"squaredcos_cap_v2\"}", SCHED_DDIM, "beta_schedule");
    expect_refused("{\"timestep_spacing\": \"karras\"}", SCHED_DDIM, "timestep_spacing");
    expect_refused("{\"prediction_type\": \"sample\"}", SCHED_PNDM, "prediction_type");
    expect_refused("{\"trained_betas\": [0.1, 0.2]}", SCHED_DDIM, "trained_betas");
    expect_refused("{\"num_train_timesteps\": \"many\"}", SCHED_DDIM, "num_train_timesteps");
    expect_refused("[1, 2]", SCHED_DDIM, "not a JSON object");
    expect_refused("{", SCHED_DDIM, "test config");
    CHECK_INT(sched_config_load("/nonexistent/scheduler_config.json", -1, &c), M2P_ENOTFOUND);
    TEST_DONE();
}
