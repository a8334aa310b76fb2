/*
 * needs.c — what each model needs: download, disk and memory, for `models list` and the page's
 * model manager. Parameters per family are those of the diffusers configs the registry's repos
 * ship (SD 1.x UNet 859.5 M, CLIP ViT-L text 123.1 M; SD 2.x UNet 865.9 M, OpenCLIP ViT-H text
 * 340.4 M at 23 layers; SDXL UNet 2567.5 M, text_encoder_2 694.7 M; VAE 83.7 M of which the
 * decoder, all the engine loads, is 49.5 M); an installed folder's are counted from its
 * safetensors headers. Download = the files `models fetch` picks (fetch.c: fp16 variants where
 * the repo has them) + TAESD; installed, the folder and those companions as they lie; memory =
 * weights in the compute dtype + working memory measured for lcm at 512² (BENCHMARKS.md: 4.58 GiB
 * f32 / 2.86 GiB bf16 for 1032 M parameters), scaled by the default image's pixels.
 */
#define _XOPEN_SOURCE 700
#include "model/needs.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "model/resolve.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "mus2pic.h"

typedef struct {
    const char *name;
    int64_t unet, text, text2; /* parameters */
    int64_t extra_download;    /* companion files: Lightning's UNet (fp16) */
    int file_bytes;            /* bytes per parameter of the repo's weight files fetch picks */
} family;

/* VAE: 83.65 M in the file, 49.49 M in the decoder the engine loads (diffusers AutoencoderKL). */
static const int64_t VAE_FILE = 83653863LL, VAE_DECODER = 49490199LL;
static const int64_t TAESD_BYTES = 9800000LL; /* madebyollin/taesd(xl) safetensors, ~2.4 M f32 */

static const family families[] = {
    /* SimianLuo/LCM_Dreamshaper_v7 ships f32 weights only */
    {"lcm", 859520964LL, 123060480LL, 0, 0, 4},
    {"sd14", 859520964LL, 123060480LL, 0, 0, 2},
    {"sd21", 865910724LL, 340387840LL, 0, 0, 2},
    {"lcm_sd21", 865910724LL, 340387840LL, 0, 0, 4},
    {"turbo", 2567463684LL, 123060480LL, 694659840LL, 0, 2},
    /* the SDXL base plus sdxl_lightning_4step_unet.safetensors (fp16) */
    {"sdxl_lightning", 2567463684LL, 123060480LL, 694659840LL, 2567463684LL * 2, 2},
};

/* Working memory at 512² beyond the weights, measured for lcm (BENCHMARKS.md, generate
 * --steps 4): 4.58 GiB - 1032 M x 4 B in f32, 2.86 GiB - 1032 M x 2 B in bf16. */
static const int64_t WORK_F32_512 = 790000000LL, WORK_BF16_512 = 1010000000LL;

/* Float parameters of one part as the loader opens it (VAE: the decoder only). */
static int part_params(const char *dir, int is_vae, int64_t *n)
{
    weights *w = NULL;
    int rc = weights_open(dir, &w);
    if (rc)
        return rc;
    st_file *f = weights_file(w);
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
            continue;
        if (is_vae && (!strncmp(t->name, "encoder.", 8) || !strncmp(t->name, "quant_conv.", 11)))
            continue;
        *n += t->numel;
    }
    weights_close(w);
    return 0;
}

int model_folder_params(const char *dir, int64_t *params)
{
    static const char *parts[] = {"text_encoder", "text_encoder_2", "unet", "vae"};
    int64_t n = 0;
    for (int i = 0; i < 4; i++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, parts[i]);
        if (i == 1 && stat(p, &st) != 0)
            continue; /* only SDXL has a second text encoder */
        int rc = part_params(p, i == 3, &n);
        if (rc)
            return rc;
    }
    *params = n;
    return 0;
}

int model_needs_of(const char *name, const char *dir, model_needs *out)
{
    memset(out, 0, sizeof *out);
    out->download_bytes = -1;
    const family *fam = NULL;
    for (size_t i = 0; name && i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].name, name))
            fam = &families[i];
    const m2p_registry_entry *r = name ? m2p_registry_find(name) : NULL;
    if (!fam && !dir)
        return m2p_error(M2P_ENOTFOUND, "model '%s': no sizes known (not in `models list`)",
                         name ? name : "");
    if (fam) {
        out->params = fam->unet + fam->text + fam->text2 + VAE_DECODER;
        out->download_bytes = (fam->unet + fam->text + fam->text2 + VAE_FILE) * fam->file_bytes +
                              fam->extra_download + TAESD_BYTES;
    }
    if (dir) {
        int64_t n = 0;
        if (model_folder_params(dir, &n) == 0 && n > 0)
            out->params = n;
        else
            m2p_error_clear(); /* not a loadable folder: the family's counts stand */
    }
    double px =
        r && r->default_width > 0 ? (double)r->default_width * r->default_height : 512.0 * 512.0;
    double scale = px / (512.0 * 512.0);
    out->ram_f32 = out->params * 4 + (int64_t)(WORK_F32_512 * scale);
    out->ram_bf16 = out->params * 2 + (int64_t)(WORK_BF16_512 * scale);
    return 0;
}

static __thread int64_t disk_sum;

static int disk_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode))
        disk_sum += (int64_t)st->st_size;
    return 0;
}

int64_t model_disk_bytes(const char *dir)
{
    disk_sum = 0;
    /* flags 0: stat() follows the snapshot's links to their blobs */
    if (!dir || nftw(dir, disk_add, 16, 0) != 0)
        return -1;
    return disk_sum;
}

int64_t model_installed_bytes(const char *name, const char *dir)
{
    int64_t n = model_disk_bytes(dir);
    if (n < 0)
        return n;
    char p[4400];
    if (hub_find_taesd(dir, p, sizeof p) == 0) {
        int64_t t = model_disk_bytes(p);
        n += t > 0 ? t : 0;
    }
    struct stat st;
    if (name && !strcmp(name, "sdxl_lightning") &&
        hub_find_file("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_unet.safetensors", p,
                      sizeof p) == 0 &&
        stat(p, &st) == 0)
        n += (int64_t)st.st_size;
    return n;
}

const char *model_fmt_bytes(int64_t n, char *buf, size_t len)
{
    if (n < 0)
        snprintf(buf, len, "?");
    else if (n >= 1000000000LL)
        snprintf(buf, len, "%.1f GB", (double)n / 1e9);
    else if (n >= 1000000LL)
        snprintf(buf, len, "%.0f MB", (double)n / 1e6);
    else
        snprintf(buf, len, "%.0f kB", (double)n / 1e3);
    return buf;
}
