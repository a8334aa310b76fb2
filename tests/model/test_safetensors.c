/*
 * test_safetensors.c — reading the fixture files, writing and reading back, every float dtype,
 * and each kind of broken file getting a clear error that names the file (and the tensor).
 */
#include "core/error.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>

static char *tmp;

static const char *tpath(const char *name)
{
    static char b[4][1024];
    static int k;
    char *p = b[k++ & 3];
    snprintf(p, 1024, "%s/%s", tmp, name);
    return p;
}

/* A file with a given header (padded with nothing) and `data_len` zero bytes of data. */
static void write_raw(const char *path, const char *hdr, uint64_t hlen_field, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)(hlen_field >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < data_len; i++)
        fputc(0, f);
    fclose(f);
}

static void write_hdr(const char *path, const char *hdr, size_t data_len)
{
    write_raw(path, hdr, strlen(hdr), data_len);
}

/* Expect st_open to fail with `code` and a message containing each of the given parts. */
static void expect_fail(const char *path, int code, const char *part1, const char *part2)
{
    st_file *f = NULL;
    m2p_error_clear();
    int rc = st_open(path, &f);
    CHECK_INT(rc, code);
    CHECK(f == NULL);
    const char *msg = m2p_errmsg();
    fprintf(stderr, "  expected error: %s\n", msg);
    CHECK(strstr(msg, path) != NULL);
    if (part1 && !strstr(msg, part1)) {
        fprintf(stderr, "  missing '%s' in message\n", part1);
        CHECK(0);
    }
    if (part2 && !strstr(msg, part2)) {
        fprintf(stderr, "  missing '%s' in message\n", part2);
        CHECK(0);
    }
}

static void test_fixture_unet(void)
{
    st_file *f = NULL;
    const char *p = test_fixture("sd-tiny/model/unet/diffusion_pytorch_model.safetensors");
    int rc = st_open(p, &f);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        return;
    }
    CHECK_INT(f->n, 685);
    st_tensor *t = st_find(f, "conv_in.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_INT(t->dtype, ST_F32);
        CHECK_INT(t->ndim, 4);
        CHECK_INT(t->shape[0], 16);
        CHECK_INT(t->shape[1], 4);
        CHECK_INT(t->shape[2], 3);
        CHECK_INT(t->shape[3], 3);
        CHECK_INT(t->numel, 576);
        CHECK_INT(t->nbytes, 2304);
    }
    CHECK(st_find(f, "no.such.tensor") == NULL);
    /* every tensor found by name */
    int all = 1;
    for (int i = 0; i < f->n; i++)
        all &= st_find(f, f->tensors[i].name) == &f->tensors[i];
    CHECK(all);
    st_close(f);

    /* the other two fixture files open too */
    CHECK_INT(st_open(test_fixture("sd-tiny/model/text_encoder/model.safetensors"), &f), 0);
    if (f) {
        CHECK(st_find(f, "text_model.embeddings.token_embedding.weight") != NULL);
        st_close(f);
    }
    CHECK_INT(st_open(test_fixture("sd-tiny/model/vae/diffusion_pytorch_model.safetensors"), &f),
              0);
    st_close(f);
}

static void test_weights_fixture(void)
{
    weights *w = NULL;
    int rc = weights_open(test_fixture("sd-tiny/model/unet"), &w);
    CHECK_INT(rc, 0);
    if (rc)
        return;
    const float *d;
    float *owned;
    int64_t shp[4] = {16, 4, 3, 3};
    CHECK_INT(weights_get(w, "conv_in.weight", 4, shp, &d, &owned), 0);
    CHECK(d != NULL && owned == NULL);
    CHECK(weights_has(w, "conv_in.bias"));
    CHECK(!weights_has(w, "conv_in.nope"));

    /* wrong shape: the message names file, tensor and both shapes */
    int64_t bad[4] = {32, 4, 3, 3};
    m2p_error_clear();
    CHECK_INT(weights_get(w, "conv_in.weight", 4, bad, &d, &owned), M2P_EFORMAT);
    CHECK_STR(m2p_errmsg(), "unet/diffusion_pytorch_model.safetensors: tensor 'conv_in.weight' "
                            "has shape [16,4,3,3], expected [32,4,3,3]");
    int64_t s1[1] = {16};
    CHECK_INT(weights_get(w, "conv_in.weight", 1, s1, &d, &owned), M2P_EFORMAT);
    /* missing */
    CHECK_INT(weights_get(w, "conv_in.nope", 1, s1, &d, &owned), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "conv_in.nope") != NULL);
    CHECK(strstr(m2p_errmsg(), "unet/diffusion_pytorch_model.safetensors") != NULL);

    weights_release(w);
    /* still readable after release (pages come back from the page cache) */
    CHECK_INT(weights_get(w, "conv_in.bias", 1, s1, &d, &owned), 0);
    weights_close(w);
}

static void count_unused(const st_tensor *t, void *ud)
{
    (void)t;
    (*(int *)ud)++;
}

static void test_unused(void)
{
    weights *w = NULL;
    if (weights_open(test_fixture("sd-tiny/model/unet"), &w) != 0)
        return;
    int n0 = 0, n1 = 0;
    weights_foreach_unused(w, count_unused, &n0);
    CHECK_INT(n0, 685);
    const float *d;
    float *owned;
    int64_t s1[1] = {16};
    weights_get(w, "conv_in.bias", 1, s1, &d, &owned);
    weights_foreach_unused(w, count_unused, &n1);
    CHECK_INT(n1, 684);
    weights_close(w);
}

static uint16_t f2h(float f) /* exact for the small values used below */
{
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000;
    int e = (int)((b >> 23) & 0xff) - 127 + 15;
    if ((b & 0x7fffffff) == 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | ((uint32_t)e << 10) | ((b >> 13) & 0x3ff));
}

static void test_roundtrip_dtypes(void)
{
    float f32[6] = {1.5f, -2.25f, 0.0f, 3.0f, 1e-3f, -7.75f};
    uint16_t f16[6], bf16[6];
    double f64[6];
    for (int i = 0; i < 6; i++) {
        f16[i] = f2h(f32[i]);
        uint32_t b;
        memcpy(&b, &f32[i], 4);
        bf16[i] = (uint16_t)(b >> 16);
        f64[i] = f32[i];
    }
    f16[4] = 0x0001; /* smallest subnormal half: 2^-24 */
    int64_t ids[3] = {49406, 1, 49407};
    st_out_tensor ts[] = {
        {"a.f32", ST_F32, 2, {2, 3}, f32}, {"b.f16", ST_F16, 2, {3, 2}, f16},
        {"c.bf16", ST_BF16, 1, {6}, bf16}, {"d.f64", ST_F64, 3, {1, 2, 3}, f64},
        {"e.ids", ST_I64, 1, {3}, ids},    {"f.empty", ST_F32, 2, {0, 4}, NULL},
    };
    const char *p = tpath("rt.safetensors");
    CHECK_INT(st_write(p, ts, 6), 0);
    struct stat st;
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", p);
    CHECK(stat(tmpname, &st) != 0); /* no .tmp left behind */
    st_file *f = NULL;
    CHECK_INT(st_open(p, &f), 0);
    if (!f) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        return;
    }
    CHECK_INT(f->n, 6);
    CHECK_STR(f->tensors[0].name, "a.f32"); /* header order kept */
    float out[6];
    const char *names[] = {"a.f32", "b.f16", "c.bf16", "d.f64"};
    for (int k = 0; k < 4; k++) {
        st_tensor *t = st_find(f, names[k]);
        CHECK(t != NULL);
        if (!t)
            continue;
        CHECK_INT(t->numel, 6);
        CHECK_INT(st_to_f32(t, out), 0);
        for (int i = 0; i < 6; i++) {
            float want = f32[i];
            if (k == 1 && i == 4)
                want = 5.9604645e-08f;
            if (k == 1 && i != 4)
                CHECK_NEAR(out[i], want, 0);
            else if (k == 2)
                CHECK_NEAR(out[i], want, fabsf(want) / 128);
            else
                CHECK_NEAR(out[i], want, 0);
        }
    }
    st_tensor *t = st_find(f, "e.ids");
    CHECK(t && t->dtype == ST_I64 && t->nbytes == 24);
    CHECK(t && memcmp(t->data, ids, 24) == 0);
    CHECK(st_to_f32(t, out) == M2P_EFORMAT);
    t = st_find(f, "f.empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0);
    /* data block 8-byte aligned */
    CHECK(((uintptr_t)st_find(f, "a.f32")->data & 7) == 0);
    st_close(f);

    /* a long f16 tensor exercises the vector path and its tail */
    enum { N = 1000 };
    uint16_t h[N];
    float ref[N], got[N];
    for (int i = 0; i < N; i++) {
        ref[i] = (float)((i % 37) - 18) * 0.125f;
        h[i] = f2h(ref[i]);
    }
    st_out_tensor big = {"h", ST_F16, 1, {N}, h};
    CHECK_INT(st_write(p, &big, 1), 0);
    CHECK_INT(st_open(p, &f), 0);
    if (f) {
        st_to_f32(&f->tensors[0], got);
        CHECK(test_max_abs_diff(got, ref, N, "f16 long") == 0);
        st_close(f);
    }
}

static void test_weights_folder(void)
{
    /* fp16 variant found; converted tensors come back owned */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/unet", tmp);
    mkdir(dir, 0755);
    uint16_t h[4] = {f2h(1.0f), f2h(-0.5f), f2h(2.0f), f2h(0.25f)};
    st_out_tensor t = {"w", ST_F16, 2, {2, 2}, h};
    char p[1200];
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.fp16.safetensors", dir);
    CHECK_INT(st_write(p, &t, 1), 0);
    weights *w = NULL;
    CHECK_INT(weights_open(dir, &w), 0);
    if (w) {
        CHECK(strstr(weights_path(w), "diffusion_pytorch_model.fp16.safetensors") != NULL);
        const float *d;
        float *owned;
        int64_t s[2] = {2, 2};
        CHECK_INT(weights_get(w, "w", 2, s, &d, &owned), 0);
        CHECK(owned != NULL && d == owned);
        if (d) {
            CHECK_NEAR(d[0], 1.0, 0);
            CHECK_NEAR(d[1], -0.5, 0);
            CHECK_NEAR(d[3], 0.25, 0);
        }
        free(owned);
        weights_close(w);
    }
    /* weights_put recycles a conversion buffer for the next tensor that fits */
    if (weights_open(dir, &w) == 0) {
        const float *d1, *d2;
        float *o1, *o2;
        int64_t s[2] = {2, 2};
        CHECK_INT(weights_get(w, "w", 2, s, &d1, &o1), 0);
        weights_put(w, o1);
        CHECK_INT(weights_get(w, "w", 2, s, &d2, &o2), 0);
        CHECK(o2 == o1);
        CHECK_NEAR(d2[1], -0.5, 0);
        free(o2); /* free() stays fine */
        CHECK_INT(weights_get(w, "w", 2, s, &d2, &o2), 0);
        weights_put(w, o2);
        weights_put(w, NULL);
        weights_release(w); /* empties the pool */
        weights_close(w);
    }
    /* model.safetensors (transformers) is found too */
    snprintf(dir, sizeof dir, "%s/text_encoder", tmp);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_INT(st_write(p, &t, 1), 0);
    CHECK_INT(weights_open(dir, &w), 0);
    weights_close(w);

    /* missing folder, folder without weights */
    m2p_error_clear();
    snprintf(dir, sizeof dir, "%s/nope", tmp);
    CHECK_INT(weights_open(dir, &w), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), dir) != NULL);
    snprintf(dir, sizeof dir, "%s/empty", tmp);
    mkdir(dir, 0755);
    CHECK_INT(weights_open(dir, &w), M2P_ENOTFOUND);
    fprintf(stderr, "  expected error: %s\n", m2p_errmsg());
    CHECK(strstr(m2p_errmsg(), "safetensors") != NULL);

    /* a broken file inside a part folder: the error names the file */
    snprintf(dir, sizeof dir, "%s/vae", tmp);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    write_hdr(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    CHECK_INT(weights_open(dir, &w), M2P_EFORMAT);
    fprintf(stderr, "  expected error: %s\n", m2p_errmsg());
    CHECK(strstr(m2p_errmsg(), "diffusion_pytorch_model.safetensors") != NULL);
    CHECK(strstr(m2p_errmsg(), "'x'") != NULL);
}

static void test_bad_files(void)
{
    const char *p;
    /* empty file */
    p = tpath("empty.safetensors");
    fclose(fopen(p, "wb"));
    expect_fail(p, M2P_EFORMAT, "empty", NULL);
    /* shorter than the length field */
    p = tpath("short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_fail(p, M2P_EFORMAT, "too short", NULL);
    /* header length 0, and header length past the end of the file */
    p = tpath("len0.safetensors");
    write_raw(p, "{}", 0, 0);
    expect_fail(p, M2P_EFORMAT, "header length", NULL);
    p = tpath("lenpast.safetensors");
    write_raw(p, "{}", 1000, 0);
    expect_fail(p, M2P_EFORMAT, "header length 1000", NULL);
    p = tpath("lenhuge.safetensors");
    write_raw(p, "{}", UINT64_MAX, 0);
    expect_fail(p, M2P_EFORMAT, "header length", NULL);
    /* invalid JSON, and JSON that is not an object */
    p = tpath("badjson.safetensors");
    write_hdr(p, "{\"a\": [1, 2", 0);
    expect_fail(p, M2P_EFORMAT, "not valid JSON", NULL);
    p = tpath("array.safetensors");
    write_hdr(p, "[1,2,3]", 0);
    expect_fail(p, M2P_EFORMAT, "not a JSON object", NULL);
    p = tpath("dup.safetensors");
    write_hdr(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              8);
    expect_fail(p, M2P_EFORMAT, "JSON", NULL);
    /* offsets past the end (truncated file) */
    p = tpath("past.safetensors");
    write_hdr(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              20);
    expect_fail(p, M2P_EFORMAT, "'b.w'", "past the end");
    /* overlapping offsets */
    p = tpath("overlap.safetensors");
    write_hdr(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              16);
    expect_fail(p, M2P_EFORMAT, "overlap", "'a'");
    /* end before begin */
    p = tpath("backwards.safetensors");
    write_hdr(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16);
    expect_fail(p, M2P_EFORMAT, "'a'", NULL);
    /* unknown dtype */
    p = tpath("dtype.safetensors");
    write_hdr(p, "{\"a\":{\"dtype\":\"F8_E9\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_fail(p, M2P_EFORMAT, "unknown dtype 'F8_E9'", "'a'");
    /* shape * dtype size != end - begin */
    p = tpath("size.safetensors");
    write_hdr(p, "{\"w\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16);
    expect_fail(p, M2P_EFORMAT, "'w'", "18 bytes");
    /* malformed entries */
    p = tpath("noshape.safetensors");
    write_hdr(p, "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4);
    expect_fail(p, M2P_EFORMAT, "'w'", "shape");
    p = tpath("negshape.safetensors");
    write_hdr(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    expect_fail(p, M2P_EFORMAT, "'w'", "shape");
    p = tpath("nooffs.safetensors");
    write_hdr(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4);
    expect_fail(p, M2P_EFORMAT, "'w'", "data_offsets");
    p = tpath("meta.safetensors");
    write_hdr(p, "{\"__metadata__\":3}", 0);
    expect_fail(p, M2P_EFORMAT, "__metadata__", NULL);
    p = tpath("huge.safetensors");
    write_hdr(p,
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
              "\"data_offsets\":[0,4]}}",
              4);
    expect_fail(p, M2P_EFORMAT, "'w'", NULL);
    /* missing file */
    m2p_error_clear();
    st_file *sf = NULL;
    CHECK_INT(st_open(tpath("does-not-exist.safetensors"), &sf), M2P_ENOTFOUND);
    /* a valid header with an empty tensor list opens fine */
    p = tpath("none.safetensors");
    write_hdr(p, "{\"__metadata__\":{\"format\":\"pt\"}}", 0);
    CHECK_INT(st_open(p, &sf), 0);
    if (sf) {
        CHECK_INT(sf->n, 0);
        CHECK(st_find(sf, "x") == NULL);
        st_close(sf);
    }
    /* unaligned F32 data is still handed out correctly (copied) by weights_get */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/odd", tmp);
    mkdir(dir, 0755);
    char fp[1200];
    snprintf(fp, sizeof fp, "%s/model.safetensors", dir);
    {
        const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
        FILE *o = fopen(fp, "wb");
        uint64_t hl = strlen(hdr);
        fwrite(&hl, 8, 1, o);
        fwrite(hdr, 1, hl, o);
        float v[2] = {3.5f, -1.25f};
        fputc(0, o);
        fwrite(v, 4, 2, o);
        fclose(o);
        weights *w = NULL;
        CHECK_INT(weights_open(dir, &w), 0);
        if (w) {
            const float *d;
            float *owned;
            int64_t s[1] = {2};
            CHECK_INT(weights_get(w, "w", 1, s, &d, &owned), 0);
            if (d) {
                CHECK(((uintptr_t)d & 3) == 0);
                CHECK_NEAR(d[0], 3.5, 0);
                CHECK_NEAR(d[1], -1.25, 0);
            }
            free(owned);
            weights_close(w);
        }
    }
}

int main(void)
{
    tmp = test_tmpdir("st");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();
    test_fixture_unet();
    test_weights_fixture();
    test_unused();
    test_roundtrip_dtypes();
    test_weights_folder();
    test_bad_files();
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
