/*
 * models.h — the server's models: names configured with --model NAME=DIR (or MUS2PIC_MODEL) and
 * the registry's names, loaded lazily on first use and kept in an LRU cache with a memory budget.
 *
 * Jobs get a model (loading it if needed: one load at a time) and release it when they end; a
 * model a job holds is never evicted or freed (asserted in models.c). Any thread may ask what is
 * installed or loaded, so the table is guarded by a lock.
 * Compute threads 0 means OpenMP's default: OMP_NUM_THREADS when set, else every core.
 */
#ifndef M2P_JOBS_MODELS_H
#define M2P_JOBS_MODELS_H

#include <stddef.h>

#include "mus2pic.h"

typedef struct model_cache model_cache;

/* budget_bytes: the most bytes of model weights kept loaded (0 = no limit). A model's size is its
 * resident weights at the compute dtype, known before loading from the safetensors headers
 * (model_cache_need); to make room, loaded models that no job is running are evicted, least
 * recently used first. */
model_cache *model_cache_new(size_t budget_bytes);
void model_cache_free(model_cache *mc);
/* --model-memory-gb's value: GiB, decimals allowed, 0 = no limit. -1 when not a number in
 * 0..65536. */
int model_cache_parse_gb(const char *v, size_t *bytes);
/* Compute threads (0 = OMP_NUM_THREADS when set, else every core; the default) and dtype (M2P_DTYPE_F32, default, or
 * M2P_DTYPE_BF16) for models loaded from now on. */
void model_cache_set_compute(model_cache *mc, int n_threads, int dtype);

/* Configure name -> folder (or hub id). The first configured model is the default. */
int model_cache_add(model_cache *mc, const char *name, const char *ref);
/* The default model's name: MUS2PIC_MODEL's, the first configured, or the first installed
 * registry entry; "" when none is installed. */
void model_cache_default(model_cache *mc, char *out, size_t len);
/* Is name configured or a registry name whose model is on disk? Writes its folder. */
int model_cache_installed(model_cache *mc, const char *name, char *path, size_t len);
/* Is name known at all (configured or in the registry)? */
int model_cache_known(model_cache *mc, const char *name);
/* Load (once) and return the model, marked running until model_cache_release: a running model is
 * never evicted. When the budget is held by running models, waits until they are released. A
 * model alone larger than the budget fails with M2P_ETOOBIG naming both sizes. */
int model_cache_get(model_cache *mc, const char *name, m2p_model **out);
/* The job that got m from model_cache_get is done with it (it may now be evicted). */
void model_cache_release(model_cache *mc, m2p_model *m);
/* Bytes the model named by ref (folder, hub id or registry name) will hold once loaded at dtype:
 * the float tensors of text_encoder(_2), unet and the VAE decoder, from the safetensors headers
 * (nothing is read but the headers). */
int model_cache_need(const char *ref, int dtype, size_t *bytes);
typedef struct model_cache_stats {
    size_t budget_bytes; /* 0 = no limit */
    size_t used_bytes;   /* loaded models plus those being loaded */
    int loaded, running, waiting, evictions;
} model_cache_stats;
void model_cache_get_stats(model_cache *mc, model_cache_stats *st);
/* Is the model already loaded (no load cost)? */
int model_cache_is_loaded(model_cache *mc, const char *name);
/* Configured names not in the registry: count, and the i-th name and folder. */
int model_cache_n_extra(model_cache *mc);
int model_cache_extra(model_cache *mc, int i, char *name, size_t name_len, char *ref,
                      size_t ref_len);
/* The loaded models as a JSON array of {name, memory_bytes, running} (malloc'd). */
char *model_cache_loaded_json(model_cache *mc);

/* What the models lists (the page's /api/models, `mus2pic models list`) say of a registry name
 * or configured model beyond its name; the model module's estimates (model/needs.c). */
typedef struct model_info {
    int64_t download_bytes;    /* what `models fetch NAME` brings (estimate); -1 unknown */
    int64_t disk_bytes;        /* installed: its folder and the companions fetched with it; -1 not
                                  installed or unreadable */
    int64_t ram_f32, ram_bf16; /* about the peak memory of one image at the default size; -1 */
    int guidance_embedded;     /* LCM: guidance distilled into the UNet, no negative prompt */
    int taesd;                 /* its TAESD is there for live previews */
} model_info;
/* path: the installed folder, or NULL. M2P_ENOTFOUND for a name not in the registry and no
 * path (the sizes are then -1, the rest 0). */
int model_info_of(const char *name, const char *path, model_info *out);
/* "4.3 GB" (decimal, as disks and the hub count) into buf. */
const char *model_info_fmt_bytes(int64_t n, char *buf, size_t len);

#endif
