/*
 * weights.h — one model part's weights (e.g. unet/): finds its safetensors file in a diffusers
 * folder (diffusion_pytorch_model.safetensors or model.safetensors, or the *.fp16 variants),
 * and hands tensors out by name with a strict shape check. Tensors never asked for are the
 * "skipped" ones (the VAE encoder, ...), listed by weights_foreach_unused().
 */
#ifndef M2P_MODEL_WEIGHTS_H
#define M2P_MODEL_WEIGHTS_H

#include "model/safetensors.h"
#include "model/wcache.h"

typedef struct weights weights;

/* part_dir: e.g. "<model>/unet". */
int weights_open(const char *part_dir, weights **out);
/* One given .safetensors file instead of a folder's (e.g. SDXL-Lightning's UNet file over the
 * base model's unet/); messages name the file as given. */
int weights_open_file(const char *file, weights **out);
void weights_close(weights *w);
const char *weights_path(const weights *w);

/* Tensor `name` as float32 with exactly the given shape. *out points into the mapping (F32)
 * or into *owned (converted; the caller frees *owned when done). Errors name file and tensor:
 * "unet/diffusion_pytorch_model.safetensors: tensor 'conv_in.weight' has shape [16,4,3,3],
 * expected [32,4,3,3]". Marks the tensor used. */
int weights_get(weights *w, const char *name, int ndim, const int64_t *shape, const float **out,
                float **owned);
/* Give a converted buffer (*owned of weights_get) back instead of free(): the next conversion
 * reuses it, so loading a part does not fault in a second copy of its weights. free() stays
 * correct too. The pool is emptied by weights_release / weights_close. */
void weights_put(weights *w, float *owned);
/* weights_get's checks (exists, float dtype, exact shape) and the mark as used, without
 * reading the data (its prepared form comes from the weight cache). */
int weights_check(weights *w, const char *name, int ndim, const int64_t *shape);
/* The weight cache (model/wcache.h): off until weights_set_cache(w, 1). weights_cache opens it
 * at its first call for tag (tensor/ops.h op_prepared_tag), for prepared weights of elem_bytes
 * per value (which sizes the room it needs on disk), and returns NULL when it is off or
 * unavailable; weights_cache_commit is called once the part has loaded completely (a new
 * cache file is written only then). */
void weights_set_cache(weights *w, int on);
wcache *weights_cache(weights *w, const char *tag, int elem_bytes);
void weights_cache_commit(weights *w);
/* 1 if the tensor exists (for optional tensors / alternative names). */
int weights_has(weights *w, const char *name);
void weights_foreach_unused(weights *w, void (*fn)(const st_tensor *t, void *ud), void *ud);
/* Per dtype parameter counts etc. for `inspect`. */
st_file *weights_file(weights *w);
/* Drop the mapping's resident pages once everything has been copied out (keeps RSS low), and
 * the mapped weight cache's: those stay in the page cache and come back on the next use, so
 * the pipeline calls this on a network it will not need for a while (the UNet before the
 * decoder runs). */
void weights_release(weights *w);

#endif
