/*
 * test_scheduler.c — LCM scheduler against diffusers 0.26 (sd-tiny golden scheduler.json and
 * scheduler.safetensors): config loading, timesteps for 1/2/3/4/8/50 steps (exact), the float32
 * alphas_cumprod table, c_skip/c_out per step, four step() calls with injected noise, the
 * guidance embedding (timestep_cond of unet.safetensors and pipeline.safetensors), and the
 * errors for 0 or too many steps.
 */
#include <jansson.h>

#include "model/safetensors.h"
#include "mus2pic.h"
#include "sd/scheduler_lcm.h"
#include "test.h"

static const float *tensor(st_file *f, const char *name, size_t numel)
{
    st_tensor *t = st_find(f, name);
    CHECK(t != NULL);
    if (!t)
        return NULL;
    CHECK_INT(t->dtype, ST_F32);
    CHECK_INT(t->numel, (long long)numel);
    return (const float *)t->data;
}

/* max |got - want| / max(1, max|want|) */
static double rel_err(const float *got, const float *want, size_t n)
{
    double worst = 0, mx = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst)
            worst = d;
        if (fabs(want[i]) > mx)
            mx = fabs(want[i]);
    }
    return worst / mx;
}

int main(void)
{
    lcm_config cfg;
    CHECK_INT(lcm_config_load(test_fixture("sd-tiny/model/scheduler/scheduler_config.json"), &cfg),
              0);
    CHECK_INT(cfg.num_train_timesteps, 1000);
    CHECK_INT(cfg.original_inference_steps, 50);
    CHECK_NEAR(cfg.timestep_scaling, 10.0, 0);
    CHECK_INT(cfg.scaled_linear, 1);
    CHECK_INT(cfg.prediction_type, LCM_PRED_EPSILON);

    lcm_scheduler s;
    CHECK_INT(lcm_init(&s, &cfg), 0);

    /* alphas_cumprod vs torch */
    st_file *sf = NULL;
    CHECK_INT(st_open(test_fixture("sd-tiny/golden/scheduler.safetensors"), &sf), 0);
    if (!sf) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        TEST_DONE();
    }
    const float *ac = tensor(sf, "alphas_cumprod", 1000);
    int exact = 0;
    double worst = 0;
    for (int i = 0; ac && i < 1000; i++) {
        exact += s.alphas_cumprod[i] == ac[i];
        double d = fabs((double)s.alphas_cumprod[i] - ac[i]);
        worst = d > worst ? d : worst;
    }
    printf("alphas_cumprod: %d/1000 bit-exact, max abs diff %.3g\n", exact, worst);
    CHECK(worst <= 2e-7); /* fixture tolerance 1e-5 */

    /* timesteps */
    json_error_t jerr;
    json_t *root = json_load_file(test_fixture("sd-tiny/golden/scheduler.json"), 0, &jerr);
    CHECK(root != NULL);
    json_t *tsets = json_object_get(root, "timesteps");
    const char *key;
    json_t *val;
    int n_sets = 0;
    json_object_foreach(tsets, key, val)
    {
        int steps = atoi(key);
        CHECK_INT(lcm_set_timesteps(&s, steps), 0);
        CHECK_INT(s.n_steps, (long long)json_array_size(val));
        for (int i = 0; i < s.n_steps && (size_t)i < json_array_size(val); i++)
            CHECK_INT(s.timesteps[i], json_integer_value(json_array_get(val, (size_t)i)));
        n_sets++;
    }
    CHECK_INT(n_sets, 6);

    /* per-step scalars of the 4-step schedule */
    CHECK_INT(lcm_set_timesteps(&s, 4), 0);
    json_t *steps = json_object_get(json_object_get(root, "step_test"), "steps");
    CHECK_INT(json_array_size(steps), 4);
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_t *e = json_array_get(steps, i);
        int64_t t = json_integer_value(json_object_get(e, "timestep"));
        CHECK_INT(s.timesteps[i], t);
        float c_skip, c_out;
        lcm_scalings(&s, t, &c_skip, &c_out);
        double want_skip = json_number_value(json_object_get(e, "c_skip"));
        CHECK_NEAR(c_skip, want_skip, fabs(want_skip) * 1e-6);
        CHECK_NEAR(c_out, json_number_value(json_object_get(e, "c_out")), 1e-7);
        CHECK_NEAR(s.alphas_cumprod[t], json_number_value(json_object_get(e, "alpha_prod_t")),
                   1e-7);
    }
    json_decref(root);

    /* four step() calls with the recorded inputs */
    const size_t n = 4 * 8 * 8;
    float den[256], prev[256];
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "step%d.model_output", i);
        const float *mo = tensor(sf, name, n);
        snprintf(name, sizeof name, "step%d.sample", i);
        const float *x = tensor(sf, name, n);
        snprintf(name, sizeof name, "step%d.noise", i);
        const float *z = tensor(sf, name, n);
        snprintf(name, sizeof name, "step%d.denoised", i);
        const float *wd = tensor(sf, name, n);
        snprintf(name, sizeof name, "step%d.prev_sample", i);
        const float *wp = tensor(sf, name, n);
        if (!mo || !x || !z || !wd || !wp)
            continue;
        CHECK_INT(lcm_step(&s, i, mo, x, z, n, den, prev), 0);
        double ed = rel_err(den, wd, n), ep = rel_err(prev, wp, n);
        printf("step %d: denoised rel err %.3g, prev_sample rel err %.3g\n", i, ed, ep);
        CHECK(ed <= 5e-6);
        CHECK(ep <= 5e-6);
    }
    /* the last step takes no noise; others need it */
    CHECK_INT(lcm_step(&s, 3, den, den, NULL, n, den, prev), 0);
    CHECK(lcm_step(&s, 0, den, den, NULL, n, den, prev) == M2P_EINVAL);
    CHECK(lcm_step(&s, 4, den, den, NULL, n, den, prev) == M2P_EINVAL);
    st_close(sf);

    /* guidance embedding vs the recorded timestep_cond (guidance 8.5, dim 256) */
    const char *files[] = {"sd-tiny/golden/unet.safetensors",
                           "sd-tiny/golden/pipeline.safetensors"};
    for (int f = 0; f < 2; f++) {
        st_file *uf = NULL;
        CHECK_INT(st_open(test_fixture(files[f]), &uf), 0);
        if (!uf)
            continue;
        const float *want = tensor(uf, "timestep_cond", 256);
        float emb[256];
        lcm_guidance_embedding(8.5f, 256, emb);
        if (want) {
            double e = test_max_abs_diff(emb, want, 256, "timestep_cond");
            printf("timestep_cond max abs diff %.3g\n", e);
            CHECK(e <= 1e-6); /* fixture tolerance 0.005; sin/cos within an ulp */
        }
        st_close(uf);
    }
    float odd[5];
    lcm_guidance_embedding(1.0f, 5, odd); /* w = 0: sin 0 = 0, cos 0 = 1, zero pad */
    CHECK_NEAR(odd[0], 0, 0);
    CHECK_NEAR(odd[2], 1, 0);
    CHECK_NEAR(odd[4], 0, 0);

    /* steps out of range: diffusers raises for more than original_inference_steps */
    CHECK_INT(lcm_set_timesteps(&s, 0), M2P_EINVAL);
    CHECK_INT(lcm_set_timesteps(&s, 51), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "original_inference_steps") != NULL);
    CHECK_INT(lcm_set_timesteps(&s, 50), 0);
    CHECK_INT(s.timesteps[49], 19);

    /* a shorter original schedule (other LCM configs) */
    lcm_config c2 = cfg;
    c2.original_inference_steps = 10;
    lcm_scheduler s2;
    CHECK_INT(lcm_init(&s2, &c2), 0);
    CHECK_INT(lcm_set_timesteps(&s2, 4), 0);
    /* k = 100, origin reversed [999, 899, ..., 99], indices floor([0, 2.5, 5, 7.5]) */
    CHECK_INT(s2.timesteps[0], 999);
    CHECK_INT(s2.timesteps[1], 799);
    CHECK_INT(s2.timesteps[2], 499);
    CHECK_INT(s2.timesteps[3], 299);
    CHECK_INT(lcm_set_timesteps(&s2, 11), M2P_EINVAL);
    lcm_free(&s2);

    /* bad config files */
    char *dir = test_tmpdir("sched");
    char path[512];
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"_class_name\": \"LCMScheduler\", \"thresholding\": true}", fp);
    fclose(fp);
    CHECK_INT(lcm_config_load(path, &c2), M2P_EUNSUPPORTED);
    CHECK(strstr(m2p_errmsg(), "thresholding") != NULL);
    fp = fopen(path, "w");
    fputs("{\"num_train_timesteps\": \"many\"}", fp);
    fclose(fp);
    CHECK_INT(lcm_config_load(path, &c2), M2P_EFORMAT);
    fp = fopen(path, "w");
    fputs("{not json", fp);
    fclose(fp);
    CHECK_INT(lcm_config_load(path, &c2), M2P_EFORMAT);
    CHECK(lcm_config_load("/nonexistent-m2p/scheduler_config.json", &c2) < 0);
    test_rmtree(dir);
    free(dir);

    lcm_free(&s);
    TEST_DONE();
}
