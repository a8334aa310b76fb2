/*
 * make-random-model — writes a full-size diffusers folder shaped like SD 1.5 /
 * SimianLuo/LCM_Dreamshaper_v7 (CLIP ViT-L/14 text encoder, LCM UNet with time_cond_proj_dim
 * 256, AutoencoderKL with its encoder, LCMScheduler) with random weights, for benchmarks and
 * memory tests without downloading 4 GB. Usage: see usage() below.
 * Configs: the real model's (random_model_configs.h) or --config-from's; tensor names and shapes
 * from them (random_model_tensors.h, diffusers 0.26 / transformers 4.37). Weights are uniform in
 * +-1/sqrt(fan_in) (PyTorch's default init bound), norms 1 / 0, biases 0, embeddings +-0.035,
 * written tensor by tensor (st_write_stream), so memory stays at one tensor.
 */
#define _GNU_SOURCE
#include "core/error.h"
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "random_model_configs.h"
#include "random_model_tensors.h"

/* ---------------------------------------------------------------------------------------- */
/* Random data                                                                              */
/* ---------------------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static uint16_t f32_to_f16(float f)
{
#if defined(__F16C__) || defined(__AVX512F__)
    return (uint16_t)_cvtss_sh(f, 0);
#else
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t e = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
#endif
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

typedef struct {
    const tlist *l;
    st_dtype dtype;
    uint64_t seed;
    size_t done, total;
    const char *label;
} fill_ctx;

static int fill(int i, void *buf, size_t nbytes, void *ud)
{
    fill_ctx *fc = ud;
    const tspec *t = &fc->l->v[i];
    size_t n = nbytes / st_dtype_size(fc->dtype);
    double fan_in = 1;
    for (int d = 1; d < t->ndim; d++)
        fan_in *= (double)t->shape[d];
    float bound = t->kind == K_WEIGHT ? (float)(1.0 / sqrt(fan_in)) : 0.0346f;
    float constant = t->kind == K_NORM_W ? 1.0f : 0.0f;
    int random = t->kind == K_WEIGHT || t->kind == K_EMBED;
    uint64_t base = hash_str(t->name) ^ fc->seed;
    const size_t chunk = 1 << 16;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        uint64_t s = base + c * 0x632be59bd9b4e019ull;
        size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
        for (size_t k = b; k < e; k++) {
            float v = constant;
            if (random) {
                uint64_t r = splitmix(&s);
                v = ((float)(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * bound;
            }
            switch (fc->dtype) {
            case ST_F16:
                ((uint16_t *)buf)[k] = f32_to_f16(v);
                break;
            case ST_BF16:
                ((uint16_t *)buf)[k] = f32_to_bf16(v);
                break;
            default:
                ((float *)buf)[k] = v;
                break;
            }
        }
    }
    fc->done += nbytes;
    if (isatty(2))
        fprintf(stderr, "\r  %s: %5.1f%%", fc->label, 100.0 * fc->done / (double)fc->total);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const tspec *)a)->name, ((const tspec *)b)->name);
}

static int write_part(const char *path, tlist *l, st_dtype dtype, uint64_t seed, const char *label)
{
    qsort(l->v, (size_t)l->n, sizeof *l->v, name_cmp); /* safetensors' own order */
    st_out_tensor *ts = calloc((size_t)l->n, sizeof *ts);
    size_t total = 0;
    for (int i = 0; i < l->n; i++) {
        ts[i].name = l->v[i].name;
        ts[i].dtype = dtype;
        ts[i].ndim = l->v[i].ndim;
        size_t nb = st_dtype_size(dtype);
        for (int d = 0; d < l->v[i].ndim; d++) {
            ts[i].shape[d] = l->v[i].shape[d];
            nb *= (size_t)l->v[i].shape[d];
        }
        total += nb;
    }
    fill_ctx fc = {l, dtype, seed, 0, total, label};
    int rc = st_write_stream(path, ts, l->n, fill, &fc);
    if (isatty(2))
        fprintf(stderr, "\r");
    fprintf(stderr, "  %-55s %5d tensors %8.1f MB\n", path, l->n, total / 1e6);
    free(ts);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "%s: cannot create folder: %s", path, strerror(errno));
    return 0;
}

static int write_text(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return m2p_error(M2P_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(text, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: write failed", path);
    }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

/* Config text: from --config-from's file, or the built-in one. */
static int config(const char *from, const char *rel, const char *builtin, char **text,
                  json_t **json)
{
    size_t len = strlen(builtin);
    *text = NULL;
    if (from) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", from, rel);
        *text = read_file(p, &len);
        if (!*text)
            return m2p_error(M2P_ENOTFOUND, "%s: cannot read", p);
    } else {
        *text = strdup(builtin);
    }
    json_error_t err;
    *json = json_loadb(*text, len, 0, &err);
    if (!*json)
        return m2p_error(M2P_EFORMAT, "%s: invalid JSON: %s", rel, err.text);
    return 0;
}

static int copy_file(const char *src, const char *dst)
{
    size_t len;
    char *b = read_file(src, &len);
    if (!b)
        return m2p_error(M2P_ENOTFOUND, "%s: cannot read (use --tokenizer-from DIR)", src);
    int rc = write_text(dst, b, len);
    free(b);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: make-random-model --out DIR [--tokenizer-from DIR] [--config-from MODEL_DIR]\n"
            "                         [--dtype f16|bf16|f32] [--fp16-variant] [--seed N]\n"
            "Writes a random-weight diffusers folder shaped like SimianLuo/LCM_Dreamshaper_v7.\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL, *tok = NULL, *from = NULL;
    st_dtype dtype = ST_F16;
    int variant = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer-from") && i + 1 < argc)
            tok = argv[++i];
        else if (!strcmp(argv[i], "--config-from") && i + 1 < argc)
            from = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--fp16-variant"))
            variant = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "f16") || !strcmp(d, "fp16"))
                dtype = ST_F16;
            else if (!strcmp(d, "bf16"))
                dtype = ST_BF16;
            else if (!strcmp(d, "f32") || !strcmp(d, "fp32"))
                dtype = ST_F32;
            else {
                usage();
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (!out) {
        usage();
        return 2;
    }
    char deftok[4096];
    if (!tok) {
        const char *fx = getenv("M2P_FIXTURES");
        snprintf(deftok, sizeof deftok, "%s/sd-tiny/model/tokenizer",
                 fx && *fx ? fx : "../shared/fixtures");
        tok = deftok;
    }
    const char *ext = variant ? ".fp16.safetensors" : ".safetensors";
    char *texts[5] = {0};
    json_t *jsons[5] = {0};
    static const char *rels[5] = {"model_index.json", "unet/config.json", "vae/config.json",
                                  "text_encoder/config.json", "scheduler/scheduler_config.json"};
    const char *builtins[5] = {cfg_model_index, cfg_unet, cfg_vae, cfg_text, cfg_scheduler};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++)
        rc = config(from, rels[i], builtins[i], &texts[i], &jsons[i]);
    const char *dirs[] = {"", "/unet", "/vae", "/text_encoder", "/scheduler", "/tokenizer"};
    for (int i = 0; i < 6 && !rc; i++)
        rc = mkdirs(cat("%s%s", out, dirs[i]));
    for (int i = 0; i < 5 && !rc; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", out, rels[i]);
        rc = write_text(p, texts[i], strlen(texts[i]));
    }
    static const char *tokfiles[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                     "special_tokens_map.json"};
    for (int i = 0; i < 4 && !rc; i++) {
        char *s = NULL, *d = NULL;
        if (asprintf(&s, "%s/%s", tok, tokfiles[i]) < 0 ||
            asprintf(&d, "%s/tokenizer/%s", out, tokfiles[i]) < 0)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
        else
            rc = copy_file(s, d);
        free(s);
        free(d);
    }
    /* SDXL (--config-from a folder with text_encoder_2/): the second encoder, with projection,
     * and tokenizer_2 from that folder */
    tlist lt = {0}, lu = {0}, lv = {0}, lt2 = {0};
    char *text2 = NULL;
    json_t *json2 = NULL;
    char te2[4096];
    snprintf(te2, sizeof te2, "%s/text_encoder_2/config.json", from ? from : "");
    if (!rc && from && access(te2, R_OK) == 0) {
        rc = config(from, "text_encoder_2/config.json", "", &text2, &json2);
        if (!rc)
            rc = mkdirs(cat("%s/text_encoder_2", out));
        if (!rc)
            rc = mkdirs(cat("%s/tokenizer_2", out));
        if (!rc)
            rc = write_text(cat("%s/text_encoder_2/config.json", out), text2, strlen(text2));
        for (int i = 0; i < 4 && !rc; i++)
            rc = copy_file(cat("%s/tokenizer_2/%s", from, tokfiles[i]),
                           cat("%s/tokenizer_2/%s", out, tokfiles[i]));
        if (!rc)
            rc = text_tensors(json2, &lt2);
        if (!rc)
            rc = write_part(cat("%s/text_encoder_2/model%s", out, ext), &lt2, dtype, seed,
                            "text_encoder_2");
    }
    free(text2);
    json_decref(json2);
    for (int i = 0; i < lt2.n; i++)
        free(lt2.v[i].name);
    free(lt2.v);
    if (!rc)
        rc = text_tensors(jsons[3], &lt);
    if (!rc)
        rc = unet_tensors(jsons[1], &lu);
    if (!rc)
        rc = vae_tensors(jsons[2], &lv);
    if (!rc)
        rc = write_part(cat("%s/text_encoder/model%s", out, ext), &lt, dtype, seed, "text_encoder");
    if (!rc)
        rc = write_part(cat("%s/unet/diffusion_pytorch_model%s", out, ext), &lu, dtype, seed,
                        "unet");
    if (!rc)
        rc = write_part(cat("%s/vae/diffusion_pytorch_model%s", out, ext), &lv, dtype, seed, "vae");
    for (int i = 0; i < 5; i++) {
        free(texts[i]);
        json_decref(jsons[i]);
    }
    tlist *ls[3] = {&lt, &lu, &lv};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ls[k]->n; i++)
            free(ls[k]->v[i].name);
        free(ls[k]->v);
    }
    if (rc) {
        fprintf(stderr, "make-random-model: %s\n", m2p_errmsg());
        return 1;
    }
    fprintf(stderr, "make-random-model: wrote %s\n", out);
    return 0;
}
