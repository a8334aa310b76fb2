/*
 * test_unet.c — UNet2DConditionModel against diffusers' golden values
 * (sd-tiny/golden/unet.safetensors): noise_pred at t=999 and t=259 with LCM's timestep_cond,
 * every per-block intermediate through the taps, a batch of 2, batches whose images share contexts,
 * proj_in/proj_out stored as linears (use_linear_projection true), an odd latent size, and loading
 * errors that name the tensor and the file.
 */
#include "sd/components.h"
#include "sd/unet_blocks.h"
#include "sd_golden.h"
#include "tensor/ops.h"

#include <math.h>

static const char *KEY = "unet.safetensors";
static const char *ST = "diffusion_pytorch_model.safetensors";

typedef struct inputs {
    float *sample, *ctx, *cond;
    int64_t ss[4], cs[3];
} inputs;

static void check_t(unet *m, st_file *g, json_t *man, const inputs *in, int t, int B, int with_taps)
{
    char name[64], prefix[64];
    snprintf(name, sizeof name, "noise_pred_t%d", t);
    snprintf(prefix, sizeof prefix, "t%d.intermediate.", t);
    float *want = gold_get(g, name, NULL, NULL);
    if (!want)
        return;
    size_t n = (size_t)(in->ss[1] * in->ss[2] * in->ss[3]), nc = (size_t)(in->cs[1] * in->cs[2]);
    float *x = malloc(n * B * sizeof *x), *ctx = malloc(nc * B * sizeof *ctx);
    float *cond = malloc(256 * (size_t)B * sizeof *cond), *got = malloc(n * B * sizeof *got);
    for (int b = 0; b < B; b++) {
        memcpy(x + n * b, in->sample, n * sizeof *x);
        memcpy(ctx + nc * b, in->ctx, nc * sizeof *ctx);
        memcpy(cond + 256 * b, in->cond, 256 * sizeof *cond);
    }
    gold_taps taps = {g, man, KEY, prefix, 0, 0};
    unet_set_tap(m, with_taps ? gold_tap : NULL, &taps);
    int rc = unet_forward(m, x, B, (int)in->ss[2], (int)in->ss[3], (float)t, cond, NULL, ctx,
                          (int)in->cs[1], got);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    double tol = gold_tol(man, KEY, name);
    for (int b = 0; b < B; b++)
        CHECK(test_max_abs_diff(got + n * b, want, n, name) <= tol);
    if (with_taps) {
        /* time_proj, time_embedding, conv_in, 4 down blocks, mid, 4 up blocks, conv_norm_out */
        CHECK_INT(taps.compared, 13);
        fprintf(stderr, "t=%d taps: worst err/tol %.3f\n", t, taps.worst_ratio);
    }
    unet_set_tap(m, NULL, NULL);
    free(x);
    free(ctx);
    free(cond);
    free(got);
    free(want);
}

static void test_golden(const char *dir, const inputs *in, st_file *g, json_t *man, int full)
{
    unet *m = NULL;
    int rc = unet_load(dir, NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!m)
        return;
    CHECK_INT(unet_in_channels(m), 4);
    CHECK_INT(unet_cond_dim(m), 256);
    CHECK_INT(unet_cross_dim(m), 32);
    CHECK_INT(unet_sample_size(m), 8);
    check_t(m, g, man, in, 999, 1, full);
    check_t(m, g, man, in, 259, 1, full);
    if (full) {
        check_t(m, g, man, in, 259, 2, 0);
        size_t s1 = unet_scratch_bytes(m, 1, 8, 8, 77), s2 = unet_scratch_bytes(m, 2, 8, 8, 77);
        CHECK(s1 > 0 && s2 > s1);
        CHECK(unet_scratch_bytes(m, 1, 64, 64, 77) > 32 * s1);
        /* timestep_cond is required by an LCM UNet */
        float out[256];
        CHECK_INT(unet_forward(m, in->sample, 1, 8, 8, 999, NULL, NULL, in->ctx, 77, out),
                  M2P_EINVAL);
        /* an odd latent size goes 9 -> 5 -> 3 -> 2 and back up through nearest resizes */
        float *x = malloc(4 * 9 * 9 * sizeof *x), *y = malloc(4 * 9 * 9 * sizeof *y);
        for (int i = 0; i < 4 * 81; i++)
            x[i] = in->sample[i % 256];
        CHECK_INT(unet_forward(m, x, 1, 9, 9, 499, in->cond, NULL, in->ctx, 77, y), 0);
        int finite = 1;
        for (int i = 0; i < 4 * 81; i++)
            finite &= isfinite(y[i]);
        CHECK(finite);
        free(x);
        free(y);
    }
    unet_free(m);
}

/* The same weights with proj_in/proj_out stored as linears [out, in] and
 * use_linear_projection true must give the same result. */
static void test_linear_projection(const inputs *in, st_file *g, json_t *man)
{
    const char *src = test_fixture("sd-tiny/model/unet");
    char *d = test_tmpdir("unet-linproj");
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", src);
    json_error_t e;
    json_t *cfg = json_load_file(p, 0, &e);
    CHECK(cfg != NULL);
    if (!cfg)
        goto out;
    json_object_set_new(cfg, "use_linear_projection", json_true());
    snprintf(p, sizeof p, "%s/config.json", d);
    CHECK_INT(json_dump_file(cfg, p, 0), 0);
    json_decref(cfg);
    snprintf(p, sizeof p, "%s/%s", src, ST);
    st_file *f = NULL;
    CHECK_INT(st_open(p, &f), 0);
    if (!f)
        goto out;
    st_out_tensor *ts = calloc((size_t)f->n, sizeof *ts);
    int changed = 0;
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->tensors[i];
        ts[i] = (st_out_tensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(ts[i].shape, t->shape, sizeof ts[i].shape);
        if (t->ndim == 4 &&
            (strstr(t->name, ".proj_in.weight") || strstr(t->name, ".proj_out.weight"))) {
            ts[i].ndim = 2;
            changed++;
        }
    }
    CHECK_INT(changed, 32); /* 6 down + 1 mid + 9 up transformers, proj_in and proj_out */
    snprintf(p, sizeof p, "%s/%s", d, ST);
    CHECK_INT(st_write(p, ts, f->n), 0);
    free(ts);
    st_close(f);
    test_golden(d, in, g, man, 0);
out:
    test_rmtree(d);
    free(d);
}

/* The sd-tiny UNet computing in dtype, without the weight cache; NULL (a failed check) when it
 * does not load. */
static unet *load_tiny(int dtype)
{
    m2p_model_params p = m2p_model_default_params();
    p.compute_dtype = dtype;
    p.weight_cache = 0;
    unet *m = NULL;
    CHECK_INT(unet_load(test_fixture("sd-tiny/model/unet"), &p, NULL, &m), 0);
    return m;
}

/* bf16 on a 64 x 64 latent (level 0: 4096 rows, so its feed-forward runs in row chunks): the
 * chunked pass gives the same bits as all rows at once, at batch 1 and at batch 2 */
static void test_ff_chunks(const inputs *in)
{
    if (!op_bf16_supported()) {
        fprintf(stderr, "no native bf16 on this CPU: the feed-forward chunks are not compared\n");
        return;
    }
    unet *m = load_tiny(M2P_DTYPE_BF16);
    if (!m)
        return;
    const int B = 2, h = 64, w = 64, inch = unet_in_channels(m);
    const size_t n = (size_t)B * inch * h * w, nc = (size_t)(in->cs[1] * in->cs[2]);
    float *x = malloc(n * sizeof *x), *ctx = malloc(nc * B * sizeof *ctx);
    float *cond = malloc(256 * (size_t)B * sizeof *cond);
    float *whole = malloc(n * sizeof *whole), *chunked = malloc(n * sizeof *chunked);
    for (size_t i = 0; i < n; i++)
        x[i] = in->sample[i % (size_t)(in->ss[1] * in->ss[2] * in->ss[3])];
    for (int b = 0; b < B; b++) {
        memcpy(ctx + nc * b, in->ctx, nc * sizeof *ctx);
        memcpy(cond + 256 * b, in->cond, 256 * sizeof *cond);
    }
    for (int bb = 1; bb <= B; bb++) {
        const size_t nb = n / B * bb;
        unet_set_ff_chunk(m, 0);
        CHECK_INT(unet_forward(m, x, bb, h, w, 259.0f, cond, NULL, ctx, (int)in->cs[1], whole), 0);
        unet_set_ff_chunk(m, UNET_FF_CHUNK);
        CHECK_INT(unet_forward(m, x, bb, h, w, 259.0f, cond, NULL, ctx, (int)in->cs[1], chunked),
                  0);
        CHECK(memcmp(whole, chunked, nb * sizeof *whole) == 0);
        double sum = 0;
        for (size_t i = 0; i < nb; i++)
            sum += fabs(chunked[i]);
        CHECK(sum > 0 && isfinite(sum)); /* a real output, not zeros both times */
    }
    unet_free(m);
    free(x);
    free(ctx);
    free(cond);
    free(whole);
    free(chunked);
}

/* Images that share a context share its keys and values (unet_forward computes them once per
 * run of images with one context): batches of 4 with contexts A A C C (two runs, as with
 * guidance), A C A C (no runs) and A A A A give each image what a batch of 1 with its own
 * context gives, in f32 and (where the CPU has it) bf16. */
static void test_shared_contexts(const inputs *in, int dtype)
{
    unet *m = load_tiny(dtype);
    if (!m)
        return;
    const int B = 4, h = 8, w = 8, L = (int)in->cs[1];
    const size_t n = (size_t)(in->ss[1] * in->ss[2] * in->ss[3]), nc = (size_t)(L * in->cs[2]);
    float *ctx2 = malloc(nc * sizeof *ctx2), *x = malloc(n * B * sizeof *x);
    float *ctx = malloc(nc * B * sizeof *ctx), *cond = malloc(256 * (size_t)B * sizeof *cond);
    float *got = malloc(n * B * sizeof *got), *one = malloc(n * 2 * sizeof *one);
    for (size_t i = 0; i < nc; i++) /* C: not a permutation of A's rows, which keys ignore */
        ctx2[i] = 0.5f - 2.0f * in->ctx[i];
    for (int b = 0; b < B; b++) { /* four different latents */
        for (size_t i = 0; i < n; i++)
            x[n * b + i] = in->sample[(i + 17 * (size_t)b) % n];
        memcpy(cond + 256 * b, in->cond, 256 * sizeof *cond);
    }
    const char *layouts[] = {"AACC", "ACAC", "AAAA"};
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < B; b++)
            memcpy(ctx + nc * b, layouts[k][b] == 'A' ? in->ctx : ctx2, nc * sizeof *ctx);
        CHECK_INT(unet_forward(m, x, B, h, w, 259.0f, cond, NULL, ctx, L, got), 0);
        for (int b = 0; b < B; b++) {
            const float *c = layouts[k][b] == 'A' ? in->ctx : ctx2;
            CHECK_INT(unet_forward(m, x + n * b, 1, h, w, 259.0f, cond, NULL, c, L, one), 0);
            /* the other context's answer, to show the two differ */
            CHECK_INT(unet_forward(m, x + n * b, 1, h, w, 259.0f, cond, NULL,
                                   c == ctx2 ? in->ctx : ctx2, L, one + n),
                      0);
            CHECK(test_max_abs_diff(got + n * b, one, n, layouts[k]) <= 1e-5);
            CHECK(test_max_abs_diff(one + n, one, n, "other context") > 1e-3);
        }
    }
    unet_free(m);
    free(ctx2);
    free(x);
    free(ctx);
    free(cond);
    free(got);
    free(one);
}

static int load_unet(const char *dir, void **out)
{
    unet *m = NULL;
    int rc = unet_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

static void test_bad_folders(void)
{
    gold_check_bad_folders(test_fixture("sd-tiny/model/unet"), ST, "unet",
                           "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight",
                           "time_embedding.cond_proj.weight", load_unet);
}

int main(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sd-tiny/golden/unet.safetensors"), &g), 0);
    json_t *man = gold_manifest("sd-tiny/golden/manifest.json");
    inputs in = {0};
    if (g) {
        in.sample = gold_get(g, "sample", in.ss, NULL);
        in.ctx = gold_get(g, "encoder_hidden_states", in.cs, NULL);
        in.cond = gold_get(g, "timestep_cond", NULL, NULL);
    }
    if (in.sample && in.ctx && in.cond && man) {
        test_golden(test_fixture("sd-tiny/model/unet"), &in, g, man, 1);
        test_linear_projection(&in, g, man);
        test_ff_chunks(&in);
        test_shared_contexts(&in, M2P_DTYPE_F32);
        if (op_bf16_supported())
            test_shared_contexts(&in, M2P_DTYPE_BF16);
    }
    test_bad_folders();
    free(in.sample);
    free(in.ctx);
    free(in.cond);
    st_close(g);
    json_decref(man);
    TEST_DONE();
}
