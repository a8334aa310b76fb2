/*
 * test_public_calls.c — the calls issue 13 added to include/mus2pic.h so that programs (the
 * CLI, the server) need no internal header: this file includes the public header only.
 * The tokenizer against transformers' slow CLIPTokenizer (sd-tiny's golden tokens.json), the
 * scheduler checks, float32 tensor files written and read back, the system info, and the cache
 * interface over a store.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mus2pic.h"
#include "test.h"

static void test_tokenizer(void)
{
    m2p_tokenizer *t = NULL;
    CHECK(m2p_tokenizer_load("/nonexistent/tokenizer", &t) != 0);
    CHECK(t == NULL);
    CHECK(strstr(m2p_errmsg(), "/nonexistent/tokenizer") != NULL); /* the message names it */
    CHECK_INT(m2p_tokenizer_load(NULL, &t), M2P_EINVAL);

    CHECK_INT(m2p_tokenizer_load(test_fixture("sd-tiny/model/tokenizer"), &t), 0);
    if (!t)
        return;
    json_t *root = json_load_file(test_fixture("sd-tiny/golden/tokens.json"), 0, NULL);
    json_t *prompts = json_object_get(root, "prompts");
    CHECK(json_array_size(prompts) > 0);
    for (size_t p = 0; p < json_array_size(prompts); p++) {
        json_t *e = json_array_get(prompts, p);
        const char *text = json_string_value(json_object_get(e, "prompt"));
        json_t *want = json_object_get(e, "input_ids");
        int32_t ids[M2P_CLIP_MAX_TOKENS];
        int n = -1;
        CHECK_INT(m2p_tokenizer_encode(t, text, ids, &n), 0);
        CHECK_INT(n, json_integer_value(json_object_get(e, "num_tokens_untruncated")));
        int same = json_array_size(want) == M2P_CLIP_MAX_TOKENS;
        for (int i = 0; same && i < M2P_CLIP_MAX_TOKENS; i++)
            same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
        if (!same)
            fprintf(stderr, "ids of '%s' differ from transformers'\n", text);
        CHECK(same);
        int32_t *all = NULL;
        int n_all = 0;
        CHECK_INT(m2p_tokenizer_encode_all(t, text, &all, &n_all), 0);
        json_t *want_all = json_object_get(e, "input_ids_untruncated");
        json_t *strs = json_object_get(e, "tokens_untruncated");
        CHECK_INT(n_all, (long long)json_array_size(want_all));
        for (int i = 0; i < n_all && (size_t)i < json_array_size(strs); i++)
            CHECK_STR(m2p_token_text(t, all[i]), json_string_value(json_array_get(strs, i)));
        free(all);
    }
    json_decref(root);
    CHECK(m2p_token_text(t, -1) == NULL);
    CHECK(m2p_token_text(NULL, 0) == NULL);
    m2p_tokenizer_free(t);
    m2p_tokenizer_free(NULL);
}

static void test_schedulers(const char *dir)
{
    const char *names[] = {"lcm", "ddim", "pndm", "euler", "euler_a"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK_INT(m2p_scheduler_known(names[i]), 1);
    CHECK_INT(m2p_scheduler_known("dpm++"), 0);
    CHECK_INT(m2p_scheduler_known(NULL), 0);
    CHECK_INT(m2p_scheduler_config_check(
                  test_fixture("sd-tiny/model/scheduler/scheduler_config.json"), NULL),
              0);
    /* diffusers' DDIMScheduler takes thresholding; this engine cannot honour it: refused,
     * naming the key, before any model loads */
    char path[4200];
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true}", f);
    fclose(f);
    CHECK_INT(m2p_scheduler_config_check(path, NULL), M2P_EUNSUPPORTED);
    CHECK(strstr(m2p_errmsg(), "thresholding") != NULL);
    CHECK(m2p_scheduler_config_check("/nonexistent/scheduler_config.json", "lcm") != 0);
}

static void test_tensor_files(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/latents.safetensors", dir);
    const int64_t shape[4] = {2, 4, 3, 5};
    float data[120];
    for (int i = 0; i < 120; i++)
        data[i] = (float)i * 0.25f - 7.0f;
    CHECK_INT(m2p_tensor_write_f32(path, "latents", 4, shape, data), 0);
    int ndim = 0;
    int64_t got[8];
    float *back = NULL;
    CHECK_INT(m2p_tensor_read_f32(path, "latents", &ndim, got, &back), 0);
    CHECK_INT(ndim, 4);
    for (int i = 0; i < ndim && i < 4; i++)
        CHECK_INT(got[i], shape[i]);
    CHECK(back && memcmp(back, data, sizeof data) == 0);
    free(back);
    back = NULL;
    CHECK_INT(m2p_tensor_read_f32(path, "noise", &ndim, got, &back), M2P_ENOTFOUND);
    CHECK(back == NULL);
    CHECK(strstr(m2p_errmsg(), "noise") != NULL);
    /* an int64 tensor (the golden token ids diffusers saved) is not float32 */
    const char *golden = test_fixture("sd-tiny/golden/text_encoder.safetensors");
    CHECK_INT(m2p_tensor_read_f32(golden, "input_ids", &ndim, got, &back), M2P_EFORMAT);
    CHECK(back == NULL);
    CHECK(strstr(m2p_errmsg(), "not float32") != NULL);
    CHECK_INT(m2p_tensor_write_f32(path, "x", 0, shape, data), M2P_EINVAL);
    CHECK_INT(m2p_tensor_write_f32(path, "x", 9, shape, data), M2P_EINVAL);
    CHECK(m2p_tensor_read_f32("/nonexistent.safetensors", "x", &ndim, got, &back) != 0);
}

static void test_system_info(void)
{
    m2p_system_info si = m2p_system_info_get();
    CHECK(si.bf16 == 0 || si.bf16 == 1);
    CHECK(si.kernels && (!strcmp(si.kernels, "avx512") || !strcmp(si.kernels, "avx2") ||
                         !strcmp(si.kernels, "generic") || !strcmp(si.kernels, "native")));
    CHECK(si.threads >= 1);
}

static void test_store_cache(const char *dir)
{
    m2p_store *st = NULL;
    CHECK_INT(m2p_store_open(dir, &st), 0);
    if (!st)
        return;
    CHECK(strstr(m2p_store_where(st), dir) != NULL);
    m2p_cache c = m2p_store_cache(st);
    char *v = NULL;
    CHECK(c.get(c.user_data, "band_song", "vid1", &v) != 0);
    CHECK(v == NULL);
    CHECK_INT(c.put(c.user_data, "band_song", "vid1", "{\"band\":\"a\",\"song\":\"b\"}", 0), 0);
    CHECK_INT(c.get(c.user_data, "band_song", "vid1", &v), 0);
    CHECK_STR(v, "{\"band\":\"a\",\"song\":\"b\"}");
    free(v);
    v = NULL;
    CHECK(c.get(c.user_data, "genre:spotify", "vid1", &v) != 0); /* namespaces are apart */
    m2p_store_close(st);
}

int main(void)
{
    char *dir = test_tmpdir("public_calls");
    test_tokenizer();
    test_schedulers(dir);
    test_tensor_files(dir);
    test_system_info();
    test_store_cache(dir);
    test_rmtree(dir);
    free(dir);
    TEST_DONE();
}
