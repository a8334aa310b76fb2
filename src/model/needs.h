/*
 * needs.h — what a model needs on this machine: the bytes `models fetch` downloads, the bytes
 * a folder takes on disk, and the memory its weights take once loaded (see needs.c).
 * Consumers: `models list` and the page's model manager (/api/models).
 */
#ifndef M2P_MODEL_NEEDS_H
#define M2P_MODEL_NEEDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct model_needs {
    int64_t download_bytes; /* what `models fetch NAME` brings (estimate; -1 unknown) */
    int64_t params;         /* parameters the engine loads (text encoders, UNet, VAE decoder) */
    int64_t ram_f32;        /* about the peak resident memory of one image at the default size */
    int64_t ram_bf16;       /*   ... with --dtype bf16 */
} model_needs;

/* For a registry name; with dir (an installed folder, or NULL) the parameters are counted from
 * its safetensors headers instead of the family's. M2P_ENOTFOUND for a name not in the
 * registry and no dir. */
int model_needs_of(const char *name, const char *dir, model_needs *out);
/* Float parameters the engine loads from a model folder (text encoders, UNet, VAE decoder), read
 * from the safetensors headers as the loader opens them. */
int model_folder_params(const char *dir, int64_t *params);
/* Bytes the files under dir take (a hub snapshot's links counted as their blobs); -1 when dir
 * cannot be read. */
int64_t model_disk_bytes(const char *dir);
/* What an installed model takes with the companions `models fetch NAME` brought: its folder,
 * its TAESD and, for sdxl_lightning, the Lightning UNet file; -1 when dir cannot be read. */
int64_t model_installed_bytes(const char *name, const char *dir);
/* "4.3 GB" (decimal, as disks and the hub count) into buf. */
const char *model_fmt_bytes(int64_t n, char *buf, size_t len);

#endif
