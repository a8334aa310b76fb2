/*
 * models.c — the server's model table and LRU cache (see models.h).
 *
 * A name resolves to a folder in this order: --model NAME=DIR, then the registry name through
 * m2p_model_resolve (Hugging Face cache, ./models). Before a model loads, its size at the compute
 * dtype is read from its safetensors headers (model_cache_need) and room is made for it within
 * the budget (--model-memory-gb) by freeing the least recently used models no job is running;
 * a job holds its model from model_cache_get to model_cache_release, so a running model is never
 * freed under it. Loading happens outside the lock, on the generation worker that asked; other
 * workers asking for the same model wait for that load instead of loading it twice.
 * The model's TAESD (fetched with it) is loaded too when found, for the live previews.
 */
#include "jobs/models.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/error.h"
#include "model/needs.h"
#include "model/resolve.h"

#define MAX_MODELS 32

typedef struct entry {
    char name[64];
    char ref[1024]; /* configured folder or hub id; "" for registry names */
    m2p_model *model;
    size_t memory;           /* m2p_model_memory once loaded; the estimate while loading */
    unsigned long long used; /* tick of the last get: least recently used goes first */
    int running;             /* jobs between get and release */
    int loading;             /* a worker is loading it (memory is reserved) */
} entry;

struct model_cache {
    pthread_mutex_t lock;
    entry e[MAX_MODELS];
    int n;
    size_t budget;
    int n_threads;
    int dtype;
    unsigned long long tick;
    pthread_cond_t changed; /* a load finished or a model was released */
    int waiting, evictions;
};

model_cache *model_cache_new(size_t budget_bytes)
{
    model_cache *mc = calloc(1, sizeof *mc);
    if (!mc)
        return NULL;
    pthread_mutex_init(&mc->lock, NULL);
    pthread_cond_init(&mc->changed, NULL);
    mc->budget = budget_bytes;
    return mc;
}

void model_cache_free(model_cache *mc)
{
    if (!mc)
        return;
    for (int i = 0; i < mc->n; i++) {
        /* the queue's workers have stopped: no job holds a model, none is loading */
        M2P_ASSERT(mc->e[i].running == 0 && !mc->e[i].loading);
        m2p_model_free(mc->e[i].model);
    }
    pthread_cond_destroy(&mc->changed);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
}

int model_cache_parse_gb(const char *v, size_t *bytes)
{
    char *end = NULL;
    double gb = v ? strtod(v, &end) : -1;
    if (!v || !*v || *end || !(gb >= 0 && gb <= 65536))
        return -1;
    *bytes = (size_t)(gb * 1073741824.0);
    return 0;
}

void model_cache_set_compute(model_cache *mc, int n_threads, int dtype)
{
    pthread_mutex_lock(&mc->lock);
    mc->n_threads = n_threads > 0 ? n_threads : 0;
    mc->dtype = dtype;
    pthread_mutex_unlock(&mc->lock);
}

static entry *find(model_cache *mc, const char *name)
{
    for (int i = 0; i < mc->n; i++)
        if (!strcmp(mc->e[i].name, name))
            return &mc->e[i];
    return NULL;
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

int model_cache_add(model_cache *mc, const char *name, const char *ref)
{
    if (!valid_name(name))
        return m2p_error(M2P_EINVAL, "model name '%s': use 1-63 letters, digits, '_', '-', '.'",
                         name);
    if (!ref || !*ref || strlen(ref) >= sizeof mc->e[0].ref)
        return m2p_error(M2P_EINVAL, "model '%s': empty or too long folder", name);
    pthread_mutex_lock(&mc->lock);
    entry *e = find(mc, name);
    if (!e) {
        if (mc->n == MAX_MODELS) {
            pthread_mutex_unlock(&mc->lock);
            return m2p_error(M2P_ETOOBIG, "at most %d models", MAX_MODELS);
        }
        e = &mc->e[mc->n++];
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    snprintf(e->ref, sizeof e->ref, "%s", ref);
    pthread_mutex_unlock(&mc->lock);
    return 0;
}

int model_cache_known(model_cache *mc, const char *name)
{
    pthread_mutex_lock(&mc->lock);
    entry *e = find(mc, name);
    int known = e && e->ref[0];
    pthread_mutex_unlock(&mc->lock);
    return known || m2p_registry_find(name) != NULL;
}

int model_cache_installed(model_cache *mc, const char *name, char *path, size_t len)
{
    char ref[1024] = "";
    pthread_mutex_lock(&mc->lock);
    entry *e = find(mc, name);
    if (e && e->ref[0])
        snprintf(ref, sizeof ref, "%s", e->ref);
    pthread_mutex_unlock(&mc->lock);
    if (ref[0])
        return m2p_model_resolve(ref, path, len) == 0;
    const m2p_registry_entry *r = m2p_registry_find(name);
    if (!r)
        return 0;
    return m2p_model_resolve(r->name, path, len) == 0;
}

void model_cache_default(model_cache *mc, char *out, size_t len)
{
    out[0] = 0;
    pthread_mutex_lock(&mc->lock);
    for (int i = 0; i < mc->n && !out[0]; i++)
        if (mc->e[i].ref[0])
            snprintf(out, len, "%s", mc->e[i].name);
    pthread_mutex_unlock(&mc->lock);
    if (out[0])
        return;
    int n = 0;
    const m2p_registry_entry *r = m2p_registry(&n);
    char path[1024];
    for (int i = 0; i < n; i++) {
        if (r[i].supported && model_cache_installed(mc, r[i].name, path, sizeof path)) {
            snprintf(out, len, "%s", r[i].name);
            return;
        }
    }
}

int model_cache_is_loaded(model_cache *mc, const char *name)
{
    pthread_mutex_lock(&mc->lock);
    entry *e = find(mc, name);
    int loaded = e && e->model;
    pthread_mutex_unlock(&mc->lock);
    return loaded;
}

/* "10.2 MiB" / "6.94 GiB" for messages. */
static const char *human(size_t bytes, char *buf, size_t len)
{
    if (bytes < ((size_t)1 << 30))
        snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, len, "%.2f GiB", bytes / 1073741824.0);
    return buf;
}

static const char *dtype_name(int dtype)
{
    return dtype == M2P_DTYPE_BF16 ? "bf16" : "f32";
}

/* Float parameters of one part that the engine keeps: all but the VAE's encoder (the loader
 * skips encoder.* and quant_conv.*, see src/sd/vae.c) and integer buffers (position_ids). */
int model_cache_need(const char *ref, int dtype, size_t *bytes)
{
    *bytes = 0;
    char path[4096];
    int rc = m2p_model_resolve(ref, path, sizeof path);
    if (rc)
        return rc;
    /* sdxl_lightning's UNet file replaces the base's unet/ with the same architecture, so the
     * base folder's header gives its size too. */
    int64_t n = 0;
    if ((rc = model_folder_params(path, &n)))
        return rc;
    *bytes = (size_t)n * (dtype == M2P_DTYPE_BF16 ? 2 : 4);
    return 0;
}

/* Bytes held by loaded models and reserved by loads in progress (lock held). */
static size_t used_bytes(model_cache *mc)
{
    size_t total = 0;
    for (int i = 0; i < mc->n; i++)
        if (mc->e[i].model || mc->e[i].loading)
            total += mc->e[i].memory;
    return total;
}

/* Free least recently used models that no job is running until need more bytes fit the budget
 * (lock held). Returns 1 when they fit, 0 when running or loading models hold the rest. */
static int make_room(model_cache *mc, size_t need)
{
    if (!mc->budget)
        return 1;
    for (;;) {
        size_t total = used_bytes(mc);
        if (total + need <= mc->budget)
            return 1;
        entry *lru = NULL;
        for (int i = 0; i < mc->n; i++) {
            entry *e = &mc->e[i];
            if (e->model && !e->running && !e->loading && (!lru || e->used < lru->used))
                lru = e;
        }
        if (!lru)
            return 0;
        M2P_ASSERT(lru->running == 0 && !lru->loading); /* never a model a job holds */
        M2P_LOGI("model cache: evicting '%s' (%zu MiB) to fit the %zu MiB budget", lru->name,
                 lru->memory >> 20, mc->budget >> 20);
        m2p_model_free(lru->model);
        lru->model = NULL;
        lru->memory = 0;
        mc->evictions++;
    }
}

static entry *add_entry(model_cache *mc, const char *name)
{
    if (mc->n == MAX_MODELS)
        return NULL;
    entry *e = &mc->e[mc->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

int model_cache_get(model_cache *mc, const char *name, m2p_model **out)
{
    *out = NULL;
    char ref[1024] = "";
    pthread_mutex_lock(&mc->lock);
    entry *e;
    for (;;) {
        e = find(mc, name);
        if (e && e->model) {
            e->used = ++mc->tick;
            e->running++;
            *out = e->model;
            pthread_mutex_unlock(&mc->lock);
            return 0;
        }
        if (!e || !e->loading)
            break;
        mc->waiting++; /* another worker loads it: use that load */
        pthread_cond_wait(&mc->changed, &mc->lock);
        mc->waiting--;
    }
    if (e && e->ref[0])
        snprintf(ref, sizeof ref, "%s", e->ref);
    int n_threads = mc->n_threads, dtype = mc->dtype;
    size_t budget = mc->budget;
    pthread_mutex_unlock(&mc->lock);

    if (!ref[0]) {
        const m2p_registry_entry *r = m2p_registry_find(name);
        if (!r)
            return m2p_error(M2P_ENOTFOUND, "model '%s' is not known", name);
        snprintf(ref, sizeof ref, "%s", r->name);
    }
    size_t need = 0;
    int rc = model_cache_need(ref, dtype, &need);
    if (rc)
        return m2p_error_wrap(rc, "model '%s'", name);
    if (budget && need > budget) {
        char hn[32], hb[32];
        return m2p_error(
            M2P_ETOOBIG,
            "model '%s' needs %s of %s weights, more than the model memory budget "
            "of %s: raise --model-memory-gb%s",
            name, human(need, hn, sizeof hn), dtype_name(dtype), human(budget, hb, sizeof hb),
            dtype == M2P_DTYPE_BF16 ? "" : " or run with --dtype bf16 (half the size)");
    }

    /* Reserve the room, waiting while running models hold it; then load without the lock. */
    pthread_mutex_lock(&mc->lock);
    for (;;) {
        e = find(mc, name);
        if (e && e->model) { /* loaded by another worker meanwhile */
            e->used = ++mc->tick;
            e->running++;
            *out = e->model;
            pthread_mutex_unlock(&mc->lock);
            return 0;
        }
        if (!(e && e->loading) && make_room(mc, need))
            break;
        mc->waiting++;
        pthread_cond_wait(&mc->changed, &mc->lock);
        mc->waiting--;
    }
    if (!e && !(e = add_entry(mc, name))) {
        pthread_mutex_unlock(&mc->lock);
        return m2p_error(M2P_ETOOBIG, "at most %d models", MAX_MODELS);
    }
    e->loading = 1;
    e->memory = need;
    pthread_mutex_unlock(&mc->lock);

    m2p_model_params mp = m2p_model_default_params();
    if (n_threads > 0)
        mp.n_threads = n_threads;
    mp.compute_dtype = dtype;
    /* Live previews through TAESD when `models fetch` brought it along (model/resolve.c); a
     * TAESD that does not load only costs the previews, never the model. */
    char dir[4096], taesd[4096];
    if (m2p_model_resolve(ref, dir, sizeof dir) == 0 &&
        hub_find_taesd(dir, taesd, sizeof taesd) == 0)
        mp.taesd = taesd;
    m2p_model *m = NULL;
    rc = m2p_model_load(ref, &mp, &m);
    if (rc && mp.taesd) {
        M2P_LOGW("model '%s': TAESD from %s not used for previews: %s", name, taesd, m2p_errmsg());
        mp.taesd = NULL;
        rc = m2p_model_load(ref, &mp, &m);
    }

    pthread_mutex_lock(&mc->lock);
    e = find(mc, name); /* entries never move or go away */
    e->loading = 0;
    if (rc) {
        e->memory = 0;
    } else {
        e->model = m;
        e->memory = m2p_model_memory(m);
        /* held before any eviction: make_room must not take the model this job just loaded */
        e->used = ++mc->tick;
        e->running = 1;
        if (e->memory > need) /* the headers' estimate was short: make up for it */
            make_room(mc, 0);
        M2P_ASSERT(e->model == m);
        *out = m;
    }
    pthread_cond_broadcast(&mc->changed);
    pthread_mutex_unlock(&mc->lock);
    return rc ? m2p_error_wrap(rc, "model '%s'", name) : 0;
}

void model_cache_release(model_cache *mc, m2p_model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&mc->lock);
    int held = 0;
    for (int i = 0; i < mc->n; i++)
        if (mc->e[i].model == m && mc->e[i].running > 0) {
            mc->e[i].running--;
            held = 1;
        }
    /* a release without its get would let a model another job runs be evicted under it */
    M2P_ASSERT(held);
    pthread_cond_broadcast(&mc->changed);
    pthread_mutex_unlock(&mc->lock);
}

void model_cache_get_stats(model_cache *mc, model_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&mc->lock);
    st->budget_bytes = mc->budget;
    st->used_bytes = used_bytes(mc);
    for (int i = 0; i < mc->n; i++) {
        st->loaded += mc->e[i].model != NULL;
        st->running += mc->e[i].running;
    }
    st->waiting = mc->waiting;
    st->evictions = mc->evictions;
    pthread_mutex_unlock(&mc->lock);
}

int model_cache_n_extra(model_cache *mc)
{
    int k = 0;
    pthread_mutex_lock(&mc->lock);
    for (int i = 0; i < mc->n; i++)
        if (mc->e[i].ref[0] && !m2p_registry_find(mc->e[i].name))
            k++;
    pthread_mutex_unlock(&mc->lock);
    return k;
}

int model_cache_extra(model_cache *mc, int idx, char *name, size_t name_len, char *ref,
                      size_t ref_len)
{
    int k = 0, rc = M2P_ENOTFOUND;
    pthread_mutex_lock(&mc->lock);
    for (int i = 0; i < mc->n; i++) {
        if (!mc->e[i].ref[0] || m2p_registry_find(mc->e[i].name))
            continue;
        if (k++ == idx) {
            snprintf(name, name_len, "%s", mc->e[i].name);
            snprintf(ref, ref_len, "%s", mc->e[i].ref);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&mc->lock);
    return rc;
}

char *model_cache_loaded_json(model_cache *mc)
{
    size_t cap = 64 + (size_t)MAX_MODELS * 1200;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "[");
    pthread_mutex_lock(&mc->lock);
    int first = 1;
    for (int i = 0; i < mc->n; i++) {
        entry *e = &mc->e[i];
        if (!e->model)
            continue;
        /* Names are checked by valid_name or come from the registry: no JSON escaping needed. */
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"name\":\"%s\",\"memory_bytes\":%zu,\"running\":%s}",
                              first ? "" : ",", e->name, e->memory, e->running ? "true" : "false");
        first = 0;
    }
    pthread_mutex_unlock(&mc->lock);
    snprintf(s + n, cap - n, "]");
    return s;
}

int model_info_of(const char *name, const char *path, model_info *out)
{
    memset(out, 0, sizeof *out);
    out->download_bytes = out->disk_bytes = out->ram_f32 = out->ram_bf16 = -1;
    model_needs nd;
    int rc = model_needs_of(name, path, &nd);
    if (!rc) {
        out->download_bytes = nd.download_bytes;
        out->ram_f32 = nd.ram_f32;
        out->ram_bf16 = nd.ram_bf16;
    }
    if (path)
        out->disk_bytes = model_installed_bytes(name, path);
    /* LCM distils the guidance into the UNet (time_cond_proj_dim, diffusers
     * UNet2DConditionModel): no unconditional pass, so no negative prompt at any guidance */
    if (path) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/unet/config.json", path);
        json_t *u = json_load_file(cfg, 0, NULL);
        out->guidance_embedded = json_integer_value(json_object_get(u, "time_cond_proj_dim")) > 0;
        json_decref(u);
        char taesd[4096];
        out->taesd = hub_find_taesd(path, taesd, sizeof taesd) == 0;
    } else {
        const m2p_registry_entry *r = name ? m2p_registry_find(name) : NULL;
        out->guidance_embedded = r && r->scheduler && !strcmp(r->scheduler, "LCMScheduler");
    }
    return rc;
}

const char *model_info_fmt_bytes(int64_t n, char *buf, size_t len)
{
    return model_fmt_bytes(n, buf, len);
}
