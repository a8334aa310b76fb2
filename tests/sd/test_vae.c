/*
 * test_vae.c — the AutoencoderKL decoder against diffusers' golden values
 * (sd-tiny/golden/vae_decoder.safetensors): the raw image, every recorded intermediate, a
 * batch of 2, the old attention names (query/key/value/proj_attn), encoder tensors being
 * optional, and loading errors that name the tensor and the file.
 */
#include "sd/components.h"
#include "sd_golden.h"

static const char *KEY = "vae_decoder.safetensors";
static const char *ST = "diffusion_pytorch_model.safetensors";

/* Decodes the golden latents (batch of `B` copies) and compares with the golden image. */
static void check_decode(vae *m, st_file *g, json_t *man, int B, const char *what)
{
    int64_t zs[4], ys[4];
    float *z1 = gold_get(g, "latents_scaled", zs, NULL), *want = gold_get(g, "image", ys, NULL);
    if (!z1 || !want)
        goto done;
    size_t nz = (size_t)(zs[1] * zs[2] * zs[3]), ny = (size_t)(ys[1] * ys[2] * ys[3]);
    float *z = malloc(nz * B * sizeof *z), *got = malloc(ny * B * sizeof *got);
    for (int b = 0; b < B; b++)
        memcpy(z + nz * b, z1, nz * sizeof *z);
    int rc = vae_decode(m, z, B, (int)zs[2], (int)zs[3], got);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    double tol = gold_tol(man, KEY, "image");
    for (int b = 0; b < B; b++)
        CHECK(test_max_abs_diff(got + ny * b, want, ny, what) <= tol);
    free(z);
    free(got);
done:
    free(z1);
    free(want);
}

static void test_golden(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sd-tiny/golden/vae_decoder.safetensors"), &g), 0);
    json_t *man = gold_manifest("sd-tiny/golden/manifest.json");
    vae *m = NULL;
    int rc = vae_load(test_fixture("sd-tiny/model/vae"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!g || !m || !man)
        goto done;
    CHECK_NEAR(vae_scaling_factor(m), 0.18215, 1e-7);
    CHECK_INT(vae_latent_channels(m), 4);
    /* the input the fixture records is latents / scaling_factor */
    float *lat = gold_get(g, "latents", NULL, NULL),
          *ls = gold_get(g, "latents_scaled", NULL, NULL);
    if (lat && ls) {
        float sf = vae_scaling_factor(m);
        double worst = 0;
        for (int i = 0; i < 4 * 8 * 8; i++)
            worst = fmax(worst, fabs(lat[i] / sf - ls[i]));
        CHECK(worst <= gold_tol(man, KEY, "latents_scaled"));
    }
    free(lat);
    free(ls);
    gold_taps taps = {g, man, KEY, "intermediate.", 0, 0};
    vae_set_tap(m, gold_tap, &taps);
    check_decode(m, g, man, 1, "image");
    /* post_quant_conv, decoder.conv_in, decoder.mid_block, decoder.up_blocks.0/1 */
    CHECK_INT(taps.compared, 5);
    fprintf(stderr, "taps: worst err/tol %.3f\n", taps.worst_ratio);
    vae_set_tap(m, NULL, NULL);
    check_decode(m, g, man, 2, "image (batch of 2)");
    CHECK(vae_scratch_bytes(m, 2, 8, 8) > vae_scratch_bytes(m, 1, 8, 8));
    float dummy[4];
    CHECK_INT(vae_decode(m, dummy, 1, 0, 8, dummy), M2P_EINVAL);
done:
    vae_free(m);
    st_close(g);
    json_decref(man);
}

/* A copy of the VAE with the mid-block attention under the old names and without the encoder:
 * it must load and give the same image. */
static void test_old_names(void)
{
    const char *src = test_fixture("sd-tiny/model/vae");
    char *d = test_tmpdir("vae-old");
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", src);
    char q[1024];
    snprintf(q, sizeof q, "%s/config.json", d);
    CHECK_INT(copy_file(p, q), 0);
    snprintf(p, sizeof p, "%s/%s", src, ST);
    st_file *f = NULL;
    CHECK_INT(st_open(p, &f), 0);
    if (!f)
        goto out;
    st_out_tensor *ts = calloc((size_t)f->n, sizeof *ts);
    char(*names)[128] = calloc((size_t)f->n, 128);
    int n = 0;
    static const char *from[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    static const char *to[4] = {"query", "key", "value", "proj_attn"};
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "encoder.", 8) == 0 || strncmp(t->name, "quant_conv.", 11) == 0)
            continue;
        snprintf(names[n], 128, "%s", t->name);
        const char *a = "decoder.mid_block.attentions.0.";
        if (strncmp(t->name, a, strlen(a)) == 0)
            for (int k = 0; k < 4; k++) {
                size_t l = strlen(a) + strlen(from[k]);
                if (strncmp(t->name + strlen(a), from[k], strlen(from[k])) == 0 &&
                    t->name[l] == '.')
                    snprintf(names[n], 128, "%s%s%s", a, to[k], t->name + l);
            }
        ts[n] = (st_out_tensor){names[n], t->dtype, t->ndim, {0}, t->data};
        memcpy(ts[n].shape, t->shape, sizeof ts[n].shape);
        n++;
    }
    snprintf(q, sizeof q, "%s/%s", d, ST);
    CHECK_INT(st_write(q, ts, n), 0);
    free(ts);
    free(names);
    st_close(f);
    vae *m = NULL;
    int rc = vae_load(d, NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    st_file *g = NULL;
    json_t *man = gold_manifest("sd-tiny/golden/manifest.json");
    CHECK_INT(st_open(test_fixture("sd-tiny/golden/vae_decoder.safetensors"), &g), 0);
    if (m && g && man)
        check_decode(m, g, man, 1, "image (old attention names)");
    vae_free(m);
    st_close(g);
    json_decref(man);
out:
    test_rmtree(d);
    free(d);
}

static int load_vae(const char *dir, void **out)
{
    vae *m = NULL;
    int rc = vae_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

static void test_bad_folders(void)
{
    gold_check_bad_folders(test_fixture("sd-tiny/model/vae"), ST, "vae",
                           "decoder.up_blocks.1.resnets.2.conv2.weight",
                           "decoder.mid_block.attentions.0.to_v.weight", load_vae);
}

int main(void)
{
    test_golden();
    test_old_names();
    test_bad_folders();
    TEST_DONE();
}
