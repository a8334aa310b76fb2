/*
 * test_clip_text.c — the CLIP text encoder against transformers' CLIPTextModel golden values
 * (sd-tiny/golden/text_encoder.safetensors): last_hidden_state for a batch of 3 prompts, every
 * recorded intermediate through the taps, a shorter sequence, and strict loading errors.
 */
#include "sd/components.h"
#include "sd_golden.h"

static void test_golden(void)
{
    st_file *g = NULL;
    CHECK_INT(st_open(test_fixture("sd-tiny/golden/text_encoder.safetensors"), &g), 0);
    json_t *man = gold_manifest("sd-tiny/golden/manifest.json");
    clip_text *m = NULL;
    int rc = clip_text_load(test_fixture("sd-tiny/model/text_encoder"), NULL, NULL, &m);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (!g || !m)
        goto done;
    CHECK_INT(clip_text_hidden(m), 32);
    st_tensor *ids_t = st_find(g, "input_ids");
    CHECK(ids_t && ids_t->dtype == ST_I64 && ids_t->ndim == 2);
    if (!ids_t)
        goto done;
    int B = (int)ids_t->shape[0], L = (int)ids_t->shape[1];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * L);
    const int64_t *src = ids_t->data;
    for (int i = 0; i < B * L; i++)
        ids[i] = (int32_t)src[i];

    gold_taps taps = {g, man, "text_encoder.safetensors", "intermediate.", 0, 0};
    clip_text_set_tap(m, gold_tap, &taps);
    int64_t shape[3];
    float *want = gold_get(g, "last_hidden_state", shape, NULL);
    float *got = malloc(sizeof(float) * (size_t)B * L * 32);
    CHECK_INT(clip_text_forward(m, ids, B, L, got), 0);
    double tol = gold_tol(man, "text_encoder.safetensors", "last_hidden_state");
    double err = test_max_abs_diff(got, want, (size_t)B * L * 32, "last_hidden_state");
    CHECK(err <= tol);
    /* embeddings + one tap per encoder layer */
    CHECK_INT(taps.compared, 3);
    fprintf(stderr, "taps: worst err/tol %.3f\n", taps.worst_ratio);

    /* Batch item 2 alone, and only its first 20 tokens: causal attention makes the prefix of
     * the full-length result the exact answer for a shorter sequence. */
    clip_text_set_tap(m, NULL, NULL);
    float *one = malloc(sizeof(float) * 20 * 32);
    CHECK_INT(clip_text_forward(m, ids + 2 * L, 1, 20, one), 0);
    CHECK(test_max_abs_diff(one, want + (size_t)2 * L * 32, 20 * 32, "prefix of prompt 2") <= tol);

    /* bad input */
    int32_t bad[2] = {49406, 49408};
    CHECK_INT(clip_text_forward(m, bad, 1, 2, one), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "49408") != NULL);
    CHECK_INT(clip_text_forward(m, ids, 1, 78, one), M2P_EINVAL);

    /* unloaded (a one-shot generate frees the weights after encoding), the next encode loads
     * them again and gives the same numbers, bit for bit */
    clip_text_unload(m);
    CHECK(!clip_text_loaded(m));
    CHECK_INT(clip_text_hidden(m), 32);
    float *again = malloc(sizeof(float) * (size_t)B * L * 32);
    CHECK_INT(clip_text_forward(m, ids, B, L, again), 0);
    CHECK(clip_text_loaded(m));
    CHECK(memcmp(again, got, sizeof(float) * (size_t)B * L * 32) == 0);
    free(again);
    free(one);
    free(ids);
    free(want);
    free(got);
done:
    clip_text_free(m);
    st_close(g);
    json_decref(man);
}

static int load_clip(const char *dir, void **out)
{
    clip_text *m = NULL;
    int rc = clip_text_load(dir, NULL, NULL, &m);
    *out = m;
    return rc;
}

static void test_bad_folders(void)
{
    gold_check_bad_folders(test_fixture("sd-tiny/model/text_encoder"), "model.safetensors", "clip",
                           "text_model.encoder.layers.1.mlp.fc2.weight",
                           "text_model.embeddings.position_embedding.weight", load_clip);

    /* a folder without config.json */
    clip_text *m = NULL;
    char *d3 = test_tmpdir("clip-empty");
    CHECK(clip_text_load(d3, NULL, NULL, &m) < 0);
    CHECK(err_mentions("config.json", NULL));
    test_rmtree(d3);
    free(d3);
}

int main(void)
{
    test_golden();
    test_bad_folders();
    TEST_DONE();
}
