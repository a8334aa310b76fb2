/*
 * weights.c — one diffusers part folder's safetensors file, handed out tensor by tensor.
 *
 * The file is found by the names diffusers / transformers save_pretrained use
 * (diffusion_pytorch_model.safetensors, model.safetensors, or their .fp16 variants as
 * downloaded with variant="fp16"). weights_get is strict: the tensor must exist, be a float
 * type and have exactly the shape the config implies; the error names file, tensor and shapes.
 * Converted tensors (F16/BF16/F64) drop their source pages right away so the mapping does not
 * add to the peak RSS while a part is being built. With the weight cache on (weights_set_cache)
 * the ops' prepared weights come from a mapped cache file (model/wcache.c) instead, and the
 * source is only read for its header, biases and norms.
 */
#define _GNU_SOURCE
#include "model/weights.h"

#include "core/error.h"
#include "core/mem.h"
#include "model/wcache.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL 4 /* conversion buffers kept for reuse (weights_put) */

typedef struct {
    float *p;
    size_t cap; /* floats */
} pooled;

struct weights {
    st_file *f;
    char *path;             /* full path of the file */
    char *display;          /* "<part>/<file>" for messages */
    pooled free_bufs[POOL]; /* given back, ready for the next conversion */
    pooled lent[16];        /* handed out by weights_get, with their capacity */
    int cache_on, cache_tried;
    wcache *cache;  /* prepared weights on disk, opened at the first weights_cache */
    int src_random; /* the source is advised MADV_RANDOM while a cache answers (below) */
};

/* Preference order: full precision first (what from_pretrained loads without a variant). */
static const char *const candidates[] = {
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
};

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int weights_open(const char *part_dir, weights **out)
{
    *out = NULL;
    if (!is_dir(part_dir))
        return m2p_error(M2P_ENOTFOUND, "%s: model part folder is missing", part_dir);
    char path[PATH_MAX];
    const char *found = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", part_dir, candidates[i]);
        if (is_file(path)) {
            found = candidates[i];
            break;
        }
    }
    if (!found) {
        char idx[PATH_MAX];
        snprintf(idx, sizeof idx, "%s/diffusion_pytorch_model.safetensors.index.json", part_dir);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", part_dir);
        if (is_file(idx) || is_file(path))
            return m2p_error(M2P_EUNSUPPORTED,
                             "%s: sharded safetensors (*.index.json) are not supported", part_dir);
        return m2p_error(M2P_ENOTFOUND,
                         "%s: no weights file (diffusion_pytorch_model.safetensors, "
                         "model.safetensors or their .fp16 variants)",
                         part_dir);
    }
    weights *w = calloc(1, sizeof *w);
    if (!w)
        return m2p_error(M2P_ENOMEM, "out of memory");
    w->path = strdup(path);
    /* display name: last component of part_dir + "/" + file name */
    size_t dl = strlen(part_dir);
    while (dl > 1 && part_dir[dl - 1] == '/')
        dl--;
    size_t ds = dl;
    while (ds > 0 && part_dir[ds - 1] != '/')
        ds--;
    size_t need = (dl - ds) + 1 + strlen(found) + 1;
    w->display = malloc(need);
    if (!w->path || !w->display) {
        weights_close(w);
        return m2p_error(M2P_ENOMEM, "out of memory");
    }
    snprintf(w->display, need, "%.*s/%s", (int)(dl - ds), part_dir + ds, found);
    int rc = st_open(w->path, &w->f);
    if (rc) {
        weights_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

int weights_open_file(const char *file, weights **out)
{
    *out = NULL;
    if (!is_file(file))
        return m2p_error(M2P_ENOTFOUND, "%s: weights file not found", file);
    weights *w = calloc(1, sizeof *w);
    if (!w)
        return m2p_error(M2P_ENOMEM, "out of memory");
    w->path = strdup(file);
    w->display = strdup(file);
    if (!w->path || !w->display) {
        weights_close(w);
        return m2p_error(M2P_ENOMEM, "out of memory");
    }
    int rc = st_open(w->path, &w->f);
    if (rc) {
        weights_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

static void pool_drain(weights *w)
{
    for (int i = 0; i < POOL; i++) {
        free(w->free_bufs[i].p);
        w->free_bufs[i].p = NULL;
        w->free_bufs[i].cap = 0;
    }
}

void weights_close(weights *w)
{
    if (!w)
        return;
    pool_drain(w);
    wcache_unref(w->cache); /* ops built on its mapping keep their own references */
    st_close(w->f);
    free(w->path);
    free(w->display);
    free(w);
}

const char *weights_path(const weights *w)
{
    return w->path;
}

st_file *weights_file(weights *w)
{
    return w->f;
}

int weights_has(weights *w, const char *name)
{
    return st_find(w->f, name) != NULL;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

#define SMALL_READ ((size_t)1 << 20) /* a bias or a norm, not a weight being converted */

/* Give the pages strictly inside [p, p+n) back to the page cache (the process no longer
 * needs them once converted). */
static void drop_pages(const void *p, size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t b = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)pg - 1);
    if (e > b)
        madvise((void *)b, e - b, MADV_DONTNEED);
}

/* A float buffer for free(). No huge-page advice: conversion buffers live for one tensor and
 * are recycled through the pool (weights_put), so they fault in only a few times per load, and
 * an advised fault can stall in kernel compaction. */
static float *alloc_f32(size_t n)
{
    return malloc((n ? n : 1) * sizeof(float));
}

/* The tensor `name` if it exists with a float dtype and exactly `shape`, marked used. */
static int check_tensor(weights *w, const char *name, int ndim, const int64_t *shape,
                        st_tensor **out)
{
    *out = NULL;
    st_tensor *t = st_find(w->f, name);
    if (!t)
        return m2p_error(M2P_ENOTFOUND, "%s: tensor '%s' is missing", w->display, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[256], want[256];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", w->display, name,
                         got, want);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s' has dtype %s, expected a float type",
                         w->display, name, st_dtype_name(t->dtype));
    t->used = 1;
    *out = t;
    return 0;
}

int weights_check(weights *w, const char *name, int ndim, const int64_t *shape)
{
    st_tensor *t;
    return check_tensor(w, name, ndim, shape, &t);
}

int weights_get(weights *w, const char *name, int ndim, const int64_t *shape, const float **out,
                float **owned)
{
    *out = NULL;
    *owned = NULL;
    st_tensor *t;
    int rc = check_tensor(w, name, ndim, shape, &t);
    if (rc)
        return rc;
    if (w->src_random && t->nbytes > SMALL_READ) { /* converting after all: read around again */
        madvise(w->f->map, w->f->size, MADV_NORMAL);
        w->src_random = 0;
    }
    if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = t->data;
        return 0;
    }
    size_t n = (size_t)t->numel, cap = n;
    float *buf = NULL;
    int best = -1;
    for (int i = 0; i < POOL; i++) /* the smallest pooled buffer that fits */
        if (w->free_bufs[i].p && w->free_bufs[i].cap >= n &&
            (best < 0 || w->free_bufs[i].cap < w->free_bufs[best].cap))
            best = i;
    if (best >= 0) {
        buf = w->free_bufs[best].p;
        cap = w->free_bufs[best].cap;
        w->free_bufs[best].p = NULL;
        w->free_bufs[best].cap = 0;
    } else {
        buf = alloc_f32(n);
    }
    if (buf) {                       /* remember the capacity for weights_put */
        for (int i = 0; i < 16; i++) /* a stale entry: that buffer was free()d, not put */
            if (w->lent[i].p == buf)
                w->lent[i].p = NULL;
        for (int i = 0; i < 16; i++)
            if (!w->lent[i].p) {
                w->lent[i].p = buf;
                w->lent[i].cap = cap;
                break;
            }
    }
    if (!buf)
        return m2p_error(M2P_ENOMEM, "%s: out of memory converting tensor '%s'", w->display, name);
    st_to_f32(t, buf);
    if (t->dtype != ST_F32)
        drop_pages(t->data, t->nbytes);
    *out = buf;
    *owned = buf;
    return 0;
}

void weights_foreach_unused(weights *w, void (*fn)(const st_tensor *t, void *ud), void *ud)
{
    for (int i = 0; i < w->f->n; i++)
        if (!w->f->tensors[i].used)
            fn(&w->f->tensors[i], ud);
}

void weights_put(weights *w, float *owned)
{
    if (!owned)
        return;
    size_t cap = 0;
    for (int i = 0; i < 16; i++)
        if (w->lent[i].p == owned) {
            cap = w->lent[i].cap;
            w->lent[i].p = NULL;
            break;
        }
    if (!cap) { /* not ours, or not tracked */
        free(owned);
        return;
    }
    int slot = -1; /* an empty slot, else replace the smallest if this one is bigger */
    for (int i = 0; i < POOL; i++)
        if (!w->free_bufs[i].p) {
            slot = i;
            break;
        }
    if (slot < 0) {
        slot = 0;
        for (int i = 1; i < POOL; i++)
            if (w->free_bufs[i].cap < w->free_bufs[slot].cap)
                slot = i;
        if (w->free_bufs[slot].cap >= cap) {
            free(owned);
            return;
        }
        free(w->free_bufs[slot].p);
    }
    w->free_bufs[slot].p = owned;
    w->free_bufs[slot].cap = cap;
}

void weights_release(weights *w)
{
    if (!w)
        return;
    pool_drain(w);
    if (w->f && w->f->map)
        madvise(w->f->map, w->f->size, MADV_DONTNEED);
    wcache_drop_pages(w->cache);
}

void weights_set_cache(weights *w, int on)
{
    w->cache_on = on;
}

wcache *weights_cache(weights *w, const char *tag, int elem_bytes)
{
    if (!w->cache_on)
        return NULL;
    if (!w->cache_tried) {
        w->cache_tried = 1;
        /* every tensor at elem_bytes, page aligned, and 1/32 for blocked layouts' padding */
        size_t expect = 0;
        for (int i = 0; i < w->f->n; i++)
            expect += (size_t)w->f->tensors[i].numel * (size_t)elem_bytes + 4096;
        wcache_open(w->path, tag, expect + expect / 32, &w->cache);
        /* With a cache the load reads only biases and norms from the source, a few KB each
         * spread over the file: a page each, not a read-around window, and all asked for at
         * once so that a cold disk serves them side by side instead of one fault at a time. */
        if (wcache_is_reader(w->cache) && w->f->map) {
            madvise(w->f->map, w->f->size, MADV_RANDOM);
            w->src_random = 1;
            for (int i = 0; i < w->f->n; i++) {
                const st_tensor *t = &w->f->tensors[i];
                if (t->ndim == 1 && t->nbytes <= SMALL_READ)
                    m2p_will_need(t->data, t->nbytes);
            }
        }
    }
    return w->cache;
}

void weights_cache_commit(weights *w)
{
    if (w)
        wcache_commit(w->cache);
}
