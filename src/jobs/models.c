/*
 * models.c — the server's model table and LRU cache (see models.h).
 *
 * A name resolves to a folder in this order: --model NAME=DIR, then the registry name through
 * m2p_model_resolve (Hugging Face cache, ./models). m2p_model_load runs once per name; the model
 * stays until the sum of m2p_model_memory() over loaded models exceeds the budget, when the least
 * recently used others are freed. Loading happens outside the lock, on the generation worker.
 * The model's TAESD (fetched with it) is loaded too when found, for the live previews.
 */
#include "jobs/models.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/resolve.h"

#define MAX_MODELS 32

typedef struct entry {
    char name[64];
    char ref[1024]; /* configured folder or hub id; "" for registry names */
    m2p_model *model;
    size_t memory;
    unsigned long long used;
} entry;

struct model_cache {
    pthread_mutex_t lock;
    entry e[MAX_MODELS];
    int n;
    size_t budget;
    int n_threads;
    int dtype;
    unsigned long long tick;
};

model_cache *model_cache_new(size_t budget_bytes)
{
    model_cache *mc = calloc(1, sizeof *mc);
    if (!mc)
        return NULL;
    pthread_mutex_init(&mc->lock, NULL);
    mc->budget = budget_bytes;
    return mc;
}

void model_cache_free(model_cache *mc)
{
    if (!mc)
        return;
    for (int i = 0; i < mc->n; i++)
        m2p_model_free(mc->e[i].model);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
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

/* Free least recently used models (other than keep) until the loaded total fits the budget
 * (lock held). */
static void evict(model_cache *mc, entry *keep)
{
    if (!mc->budget)
        return;
    for (;;) {
        size_t total = 0;
        entry *lru = NULL;
        for (int i = 0; i < mc->n; i++) {
            entry *e = &mc->e[i];
            if (!e->model)
                continue;
            total += e->memory;
            if (e != keep && (!lru || e->used < lru->used))
                lru = e;
        }
        if (total <= mc->budget || !lru)
            return;
        M2P_LOGI("model cache: evicting '%s' (%zu MiB) to fit the budget", lru->name,
                 lru->memory >> 20);
        m2p_model_free(lru->model);
        lru->model = NULL;
        lru->memory = 0;
    }
}

int model_cache_get(model_cache *mc, const char *name, m2p_model **out)
{
    *out = NULL;
    pthread_mutex_lock(&mc->lock);
    entry *e = find(mc, name);
    if (e && e->model) {
        e->used = ++mc->tick;
        *out = e->model;
        pthread_mutex_unlock(&mc->lock);
        return 0;
    }
    char ref[1024] = "";
    if (e && e->ref[0])
        snprintf(ref, sizeof ref, "%s", e->ref);
    int n_threads = mc->n_threads, dtype = mc->dtype;
    pthread_mutex_unlock(&mc->lock);

    if (!ref[0]) {
        const m2p_registry_entry *r = m2p_registry_find(name);
        if (!r)
            return m2p_error(M2P_ENOTFOUND, "model '%s' is not known", name);
        snprintf(ref, sizeof ref, "%s", r->name);
    }
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
    int rc = m2p_model_load(ref, &mp, &m);
    if (rc && mp.taesd) {
        M2P_LOGW("model '%s': TAESD from %s not used for previews: %s", name, taesd, m2p_errmsg());
        mp.taesd = NULL;
        rc = m2p_model_load(ref, &mp, &m);
    }
    if (rc)
        return m2p_error_wrap(rc, "model '%s'", name);

    pthread_mutex_lock(&mc->lock);
    e = find(mc, name);
    if (!e) {
        if (mc->n == MAX_MODELS) {
            pthread_mutex_unlock(&mc->lock);
            m2p_model_free(m);
            return m2p_error(M2P_ETOOBIG, "at most %d models", MAX_MODELS);
        }
        e = &mc->e[mc->n++];
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    e->model = m;
    e->memory = m2p_model_memory(m);
    e->used = ++mc->tick;
    evict(mc, e);
    *out = m;
    pthread_mutex_unlock(&mc->lock);
    return 0;
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
        n += (size_t)snprintf(s + n, cap - n, "%s{\"name\":\"%s\",\"memory_bytes\":%zu}",
                              first ? "" : ",", e->name, e->memory);
        first = 0;
    }
    pthread_mutex_unlock(&mc->lock);
    snprintf(s + n, cap - n, "]");
    return s;
}
