/*
 * sd_golden.h — helpers shared by the network tests (header-only, static): read golden tensors
 * as float32, look up the fixtures' suggested tolerances in manifest.json, compare every debug
 * tap against the golden intermediate of the same name, and build broken copies of a model part
 * (one tensor missing / one tensor reshaped) for the bad-input tests that every network shares.
 */
#ifndef M2P_TESTS_SD_GOLDEN_H
#define M2P_TESTS_SD_GOLDEN_H

#include "core/error.h"
#include "model/safetensors.h"
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Golden tensor `name` as a malloc'd float32 array (NULL + failed check when absent). */
static float *gold_get(st_file *f, const char *name, int64_t *shape, int *ndim)
{
    st_tensor *t = f ? st_find(f, name) : NULL;
    if (!t) {
        fprintf(stderr, "golden tensor '%s' missing\n", name);
        test_failures++;
        return NULL;
    }
    float *d = malloc((size_t)t->numel * sizeof *d);
    if (!d || st_to_f32(t, d) != 0) {
        free(d);
        test_failures++;
        return NULL;
    }
    if (shape)
        memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    if (ndim)
        *ndim = t->ndim;
    return d;
}

/* Suggested tolerance from a fixture manifest: sd-tiny keeps "suggested_tolerances" keyed
 * "file:tensor"; taesd keeps files[file].tensors[tensor].suggested_max_abs_err. */
static double gold_tol(json_t *manifest, const char *file, const char *tensor)
{
    char key[512];
    snprintf(key, sizeof key, "%s:%s", file, tensor);
    json_t *v = json_object_get(json_object_get(manifest, "suggested_tolerances"), key);
    if (!v) {
        json_t *t = json_object_get(
            json_object_get(json_object_get(json_object_get(manifest, "files"), file), "tensors"),
            tensor);
        v = json_object_get(t, "suggested_max_abs_err");
    }
    if (!json_is_number(v)) {
        fprintf(stderr, "no tolerance for %s in the manifest\n", key);
        test_failures++;
        return 0;
    }
    return json_number_value(v);
}

static json_t *gold_manifest(const char *rel)
{
    json_error_t e;
    json_t *m = json_load_file(test_fixture(rel), 0, &e);
    if (!m) {
        fprintf(stderr, "%s: %s\n", rel, e.text);
        test_failures++;
    }
    return m;
}

/* Every tap is compared with "<prefix><name>" when the golden file has it. */
typedef struct gold_taps {
    st_file *gold;
    json_t *manifest;
    const char *file;   /* manifest key of the golden file */
    const char *prefix; /* e.g. "t999.intermediate." */
    int compared;
    double worst_ratio; /* max over taps of err / tol */
} gold_taps;

static void gold_tap(const char *name, const float *data, int ndim, const int64_t *shape, void *ud)
{
    gold_taps *g = ud;
    char full[256];
    snprintf(full, sizeof full, "%s%s", g->prefix, name);
    st_tensor *t = st_find(g->gold, full);
    if (!t)
        return;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        fprintf(stderr, "tap %s: shape differs from the golden tensor\n", full);
        test_failures++;
        return;
    }
    float *want = malloc((size_t)t->numel * sizeof *want);
    if (!want || st_to_f32(t, want) != 0) {
        free(want);
        test_failures++;
        return;
    }
    double tol = gold_tol(g->manifest, g->file, full);
    double err = test_max_abs_diff(data, want, (size_t)t->numel, full);
    if (!(err <= tol)) {
        fprintf(stderr, "  %s: %.3g over tolerance %.3g\n", full, err, tol);
        test_failures++;
    }
    if (tol > 0 && err / tol > g->worst_ratio)
        g->worst_ratio = err / tol;
    g->compared++;
    free(want);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0)
        ok = fwrite(buf, 1, n, b) == n;
    if (a)
        fclose(a);
    if (b && fclose(b) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

/* Writes <dst>/config.json and <dst>/<st_name>, a copy of <src>/<st_name> without tensor `drop`
 * (may be NULL) and with tensor `reshape` (may be NULL) given a different shape of the same
 * size. Returns 0 on success. */
static int make_broken_part(const char *src, const char *dst, const char *st_name, const char *drop,
                            const char *reshape)
{
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/config.json", src);
    snprintf(q, sizeof q, "%s/config.json", dst);
    if (copy_file(p, q))
        return -1;
    snprintf(p, sizeof p, "%s/%s", src, st_name);
    st_file *f;
    if (st_open(p, &f))
        return -1;
    st_out_tensor *ts = calloc((size_t)f->n, sizeof *ts);
    int n = 0, found = 0;
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->tensors[i];
        if (drop && strcmp(t->name, drop) == 0) {
            found = 1;
            continue;
        }
        st_out_tensor *o = &ts[n++];
        o->name = t->name;
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        o->data = t->data;
        if (reshape && strcmp(t->name, reshape) == 0) {
            found = 1;
            if (t->ndim >= 2 && t->shape[0] != t->shape[1]) {
                o->shape[0] = t->shape[1];
                o->shape[1] = t->shape[0];
            } else {
                o->ndim = 2;
                o->shape[0] = 1;
                o->shape[1] = t->numel;
            }
        }
    }
    snprintf(q, sizeof q, "%s/%s", dst, st_name);
    int rc = found ? st_write(q, ts, n) : -1;
    free(ts);
    st_close(f);
    return rc;
}

/* 1 when the last error message mentions both strings. */
static int err_mentions(const char *a, const char *b)
{
    const char *m = m2p_errmsg();
    int ok = m && strstr(m, a) && (!b || strstr(m, b));
    if (!ok)
        fprintf(stderr, "error message \"%s\" should name '%s' and '%s'\n", m ? m : "", a,
                b ? b : "");
    return ok;
}

/* Loads the model folder `dir` into *out (NULL on failure); one per network under test. */
typedef int (*gold_load_fn)(const char *dir, void **out);

/* The bad-folder checks every network shares: a copy of `src` without tensor `missing` and one
 * with tensor `reshaped` given another shape must both fail to load, and the error must name
 * the tensor and the safetensors file `st`. `tag` names the temporary folders. */
static void gold_check_bad_folders(const char *src, const char *st, const char *tag,
                                   const char *missing, const char *reshaped, gold_load_fn load)
{
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "%s-missing", tag);
    snprintf(n2, sizeof n2, "%s-shape", tag);
    char *d1 = test_tmpdir(n1), *d2 = test_tmpdir(n2);
    void *m = NULL;
    CHECK_INT(make_broken_part(src, d1, st, missing, NULL), 0);
    CHECK(load(d1, &m) < 0);
    CHECK(m == NULL);
    CHECK(err_mentions(missing, st));
    CHECK_INT(make_broken_part(src, d2, st, NULL, reshaped), 0);
    CHECK(load(d2, &m) < 0);
    CHECK(err_mentions(reshaped, st));
    test_rmtree(d1);
    test_rmtree(d2);
    free(d1);
    free(d2);
}

#endif
