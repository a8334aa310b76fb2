/*
 * resolve.h — where models live on disk: the Hugging Face hub cache (shared with diffusers) and
 * ./models. m2p_model_resolve() (mus2pic.h) is the entry point; these helpers are shared with
 * fetch.c and the `models` command.
 */
#ifndef M2P_MODEL_RESOLVE_H
#define M2P_MODEL_RESOLVE_H

#include <stddef.h>

/* The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 * else ~/.cache/huggingface/hub. */
int hub_cache_dir(char *out, size_t len);
/* 1 when ref has the shape of a hub repo id: "ORG/NAME" (one slash, no leading '.' or '/'). */
int hub_is_repo_id(const char *ref);
/* "<cache>/models--ORG--NAME" for a repo id. */
int hub_repo_dir(const char *repo_id, char *out, size_t len);
/* The installed snapshot of a repo in the hub cache (refs/main, else the newest snapshot that
 * holds model_index.json). M2P_ENOTFOUND when none. */
int hub_find_snapshot(const char *repo_id, char *out, size_t len);
/* <cache>/models--ORG--NAME/snapshots/<refs/main>/<file> when it is there (a single file of a
 * repo that is no pipeline, e.g. the Lightning UNet), else M2P_ENOTFOUND. */
int hub_find_file(const char *repo_id, const char *file, char *out, size_t len);

/* The TAESD decoder for the model in model_dir, as `models fetch` brings it along:
 * madebyollin/taesdxl when the folder is SDXL (it has text_encoder_2/), madebyollin/taesd
 * otherwise; from the hub cache, else ./models/taesd or ./models/taesdxl. Writes the folder
 * (config.json + diffusion_pytorch_model.safetensors). M2P_ENOTFOUND when there is none. */
int hub_find_taesd(const char *model_dir, char *out, size_t len);

#endif
