/*
 * test_weights_random_model.c — tools/make-random-model derives tensor names and shapes from
 * the configs the way diffusers / transformers do: rebuilt from the sd-tiny fixture's configs,
 * every part must hold exactly the fixture's tensors (names, shapes, order), with weights in
 * the documented range and norms 1 / 0. Also checks the fp16 variant naming and the errors.
 */
#include "core/error.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test.h"

#include <sys/stat.h>

static int run(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/make-random-model' %s 2>/dev/null",
             test_env("M2P_BUILD_DIR", "build"), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void compare_part(const char *out, const char *rel)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", test_fixture(rel));
    snprintf(b, sizeof b, "%s/%s", out, strchr(rel, '/') + 1 + strlen("model"));
    st_file *fa = NULL, *fb = NULL;
    CHECK_INT(st_open(a, &fa), 0);
    int rc = st_open(b, &fb);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    if (!fa || !fb) {
        st_close(fa);
        st_close(fb);
        return;
    }
    CHECK_INT(fb->n, fa->n);
    int same = fa->n == fb->n;
    for (int i = 0; same && i < fa->n; i++) {
        const st_tensor *x = &fa->tensors[i], *y = &fb->tensors[i];
        same = strcmp(x->name, y->name) == 0 && x->ndim == y->ndim;
        for (int d = 0; same && d < x->ndim; d++)
            same = x->shape[d] == y->shape[d];
        if (!same)
            fprintf(stderr, "%s: tensor %d is '%s', fixture has '%s'\n", rel, i, y->name, x->name);
    }
    CHECK(same);
    /* values: weights within +-1/sqrt(fan_in), norm weights 1, biases 0 */
    int ok = 1;
    for (int i = 0; i < fb->n; i++) {
        const st_tensor *t = &fb->tensors[i];
        float *v = malloc((size_t)t->numel * sizeof(float));
        st_to_f32(t, v);
        double fan = 1;
        for (int d = 1; d < t->ndim; d++)
            fan *= (double)t->shape[d];
        int is_norm = strstr(t->name, "norm") != NULL;
        int is_bias = strstr(t->name, ".bias") != NULL;
        double bound = strstr(t->name, "text_model.embeddings.") ? 0.035 : 1.0 / sqrt(fan) * 1.001;
        double sumsq = 0;
        for (int64_t k = 0; k < t->numel; k++) {
            if (is_bias)
                ok &= v[k] == 0.0f;
            else if (is_norm)
                ok &= v[k] == 1.0f;
            else
                ok &= fabs(v[k]) <= bound;
            sumsq += (double)v[k] * v[k];
        }
        if (!is_bias && !is_norm && t->numel > 1000)
            ok &= sumsq > 0; /* really random */
        if (!ok) {
            fprintf(stderr, "%s: values of '%s' out of the expected range\n", rel, t->name);
            free(v);
            break;
        }
        free(v);
    }
    CHECK(ok);
    st_close(fa);
    st_close(fb);
}

int main(void)
{
    char *tmp = test_tmpdir("rndmodel");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();
    char out[4096], args[8192];
    snprintf(out, sizeof out, "%s/tiny", tmp);
    snprintf(args, sizeof args, "--out '%s' --config-from '%s' --dtype f32", out,
             test_fixture("sd-tiny/model"));
    CHECK_INT(run(args), 0);
    compare_part(out, "sd-tiny/model/unet/diffusion_pytorch_model.safetensors");
    compare_part(out, "sd-tiny/model/vae/diffusion_pytorch_model.safetensors");
    compare_part(out, "sd-tiny/model/text_encoder/model.safetensors");
    /* configs and tokenizer are copied */
    struct stat st;
    char p[8192];
    const char *files[] = {"model_index.json",
                           "unet/config.json",
                           "vae/config.json",
                           "text_encoder/config.json",
                           "scheduler/scheduler_config.json",
                           "tokenizer/vocab.json",
                           "tokenizer/merges.txt"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        CHECK(stat(p, &st) == 0 && st.st_size > 0);
    }

    /* f16 variant: *.fp16.safetensors, F16 tensors, found by weights_open */
    snprintf(out, sizeof out, "%s/tiny16", tmp);
    snprintf(args, sizeof args, "--out '%s' --config-from '%s' --fp16-variant", out,
             test_fixture("sd-tiny/model"));
    CHECK_INT(run(args), 0);
    snprintf(p, sizeof p, "%s/unet", out);
    weights *w = NULL;
    CHECK_INT(weights_open(p, &w), 0);
    if (w) {
        CHECK(strstr(weights_path(w), "diffusion_pytorch_model.fp16.safetensors") != NULL);
        st_tensor *t = st_find(weights_file(w), "conv_in.weight");
        CHECK(t && t->dtype == ST_F16);
        weights_close(w);
    }

    /* bad arguments and a missing config folder are errors */
    CHECK(run("") != 0);
    CHECK(run("--dtype f8 --out /nonexistent") != 0);
    snprintf(args, sizeof args, "--out '%s/x' --config-from '%s/nope'", tmp, tmp);
    CHECK(run(args) != 0);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
