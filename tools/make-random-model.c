/*
 * make-random-model — writes a full-size diffusers folder shaped like a hub model with random
 * weights, for benchmarks and memory tests without downloading gigabytes: --family sd15
 * (SimianLuo/LCM_Dreamshaper_v7, the default), sd14, sd2 (2.1, v-prediction), sdxl (base) and
 * sdxl-turbo; --count-only prints each part's parameter count and writes nothing.
 * Configs: the real model's (random_model_configs.h, random_model_families.h) or --config-from's;
 * tensor names and shapes
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
#include "random_model_families.h"
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
    if (!ts)
        return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
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
    size_t len = 0;
    *text = NULL;
    if (from) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", from, rel);
        *text = read_file(p, &len);
        if (!*text)
            return m2p_error(M2P_ENOTFOUND, "%s: cannot read", p);
    } else {
        len = strlen(builtin);
        *text = strdup(builtin);
        if (!*text)
            return m2p_error(M2P_ENOMEM, "out of memory");
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

/* A family: the hub repo's configs and the fixture tokenizers that have its vocabulary and
 * padding (SD 2.x and SDXL's second tokenizer pad with "!"). */
typedef struct family {
    const char *name, *repo;
    const char *index, *unet, *vae, *text, *text2, *sched;
    const char *tok, *tok2; /* under $M2P_FIXTURES */
} family;

static const family families[] = {
    {"sd15", "SimianLuo/LCM_Dreamshaper_v7 (SD 1.5, LCM)", cfg_model_index, cfg_unet, cfg_vae,
     cfg_text, NULL, cfg_scheduler, "sd-tiny/model/tokenizer", NULL},
    {"sd14", "CompVis/stable-diffusion-v1-4 (PNDM)", cfg_sd14_index, cfg_sd14_unet, cfg_sd14_vae,
     cfg_sd14_text, NULL, cfg_sd14_sched, "sd-tiny/model/tokenizer", NULL},
    {"sd2", "stabilityai/stable-diffusion-2-1 (v-prediction, DDIM)", cfg_sd2_index, cfg_sd2_unet,
     cfg_sd2_vae, cfg_sd2_text, NULL, cfg_sd2_sched, "sd2-tiny/model/tokenizer", NULL},
    {"sdxl", "stabilityai/stable-diffusion-xl-base-1.0 (Euler)", cfg_xl_index, cfg_xl_unet,
     cfg_xl_vae, cfg_xl_text, cfg_xl_text2, cfg_xl_sched, "sdxl-tiny/model/tokenizer",
     "sdxl-tiny/model/tokenizer_2"},
    {"sdxl-turbo", "stabilityai/sdxl-turbo (Euler ancestral, trailing)", cfg_turbo_index,
     cfg_turbo_unet, cfg_xl_vae, cfg_xl_text, cfg_xl_text2, cfg_turbo_sched,
     "sdxl-tiny/model/tokenizer", "sdxl-tiny/model/tokenizer_2"},
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

static void usage(void)
{
    fprintf(stderr,
            "usage: make-random-model --out DIR [--family NAME] [--config-from MODEL_DIR]\n"
            "                         [--tokenizer-from DIR] [--tokenizer2-from DIR]\n"
            "                         [--dtype f16|bf16|f32] [--fp16-variant] [--seed N]\n"
            "       make-random-model --count-only [--family NAME | --config-from MODEL_DIR]\n"
            "Writes a random-weight diffusers folder with the configs of a hub model:\n");
    for (int i = 0; i < N_FAMILIES; i++)
        fprintf(stderr, "  --family %-10s %s%s\n", families[i].name, families[i].repo,
                i ? "" : " (default)");
    fprintf(stderr, "--config-from takes the configs from a diffusers folder instead.\n"
                    "--count-only prints the parameters per part and writes nothing.\n");
}

static void free_list(tlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Parameters of a part; for the VAE also those of the decoder the engine keeps. */
static int64_t count(const tlist *l, int64_t *decoder)
{
    int64_t n = 0, d = 0;
    for (int i = 0; i < l->n; i++) {
        int64_t k = 1;
        for (int j = 0; j < l->v[i].ndim; j++)
            k *= l->v[i].shape[j];
        n += k;
        if (strncmp(l->v[i].name, "encoder.", 8) && strncmp(l->v[i].name, "quant_conv.", 11))
            d += k;
    }
    if (decoder)
        *decoder = d;
    return n;
}

enum { C_INDEX, C_UNET, C_VAE, C_TEXT, C_SCHED, C_TEXT2, N_CONFIGS };

int main(int argc, char **argv)
{
    const char *out = NULL, *tok = NULL, *tok2 = NULL, *from = NULL, *fam_name = "sd15";
    st_dtype dtype = ST_F16;
    int variant = 0, count_only = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer-from") && i + 1 < argc)
            tok = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer2-from") && i + 1 < argc)
            tok2 = argv[++i];
        else if (!strcmp(argv[i], "--config-from") && i + 1 < argc)
            from = argv[++i];
        else if (!strcmp(argv[i], "--family") && i + 1 < argc)
            fam_name = argv[++i];
        else if (!strcmp(argv[i], "--count-only"))
            count_only = 1;
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
                fprintf(stderr, "make-random-model: --dtype '%s': use f16, bf16 or f32\n", d);
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "make-random-model: unknown or incomplete option '%s'\n", argv[i]);
            usage();
            return 2;
        }
    }
    const family *fam = NULL;
    for (int i = 0; i < N_FAMILIES; i++)
        if (!strcmp(families[i].name, fam_name))
            fam = &families[i];
    if (!fam) {
        fprintf(stderr,
                "make-random-model: --family '%s': use sd15, sd14, sd2, sdxl or "
                "sdxl-turbo\n",
                fam_name);
        return 2;
    }
    if (!out && !count_only) {
        usage();
        return 2;
    }
    const char *fx = getenv("M2P_FIXTURES");
    fx = fx && *fx ? fx : "../shared/fixtures";
    char deftok[4096], deftok2[4096];
    snprintf(deftok, sizeof deftok, "%s/%s", fx, fam->tok);
    snprintf(deftok2, sizeof deftok2, "%s/%s", fx, fam->tok2 ? fam->tok2 : "");
    if (!tok)
        tok = deftok;

    /* Configs: the family's, or --config-from's (with text_encoder_2 when the folder has it). */
    static const char *rels[N_CONFIGS] = {"model_index.json",
                                          "unet/config.json",
                                          "vae/config.json",
                                          "text_encoder/config.json",
                                          "scheduler/scheduler_config.json",
                                          "text_encoder_2/config.json"};
    const char *builtins[N_CONFIGS] = {fam->index, fam->unet,  fam->vae,
                                       fam->text,  fam->sched, fam->text2};
    int has2 = fam->text2 != NULL;
    if (from) {
        char te2[4096];
        snprintf(te2, sizeof te2, "%s/text_encoder_2/config.json", from);
        has2 = access(te2, R_OK) == 0;
        if (!tok2) {
            snprintf(deftok2, sizeof deftok2, "%s/tokenizer_2", from);
        }
    }
    if (!tok2)
        tok2 = deftok2;
    char *texts[N_CONFIGS] = {0};
    json_t *jsons[N_CONFIGS] = {0};
    int rc = 0;
    for (int i = 0; i < N_CONFIGS && !rc; i++)
        if (i != C_TEXT2 || has2)
            rc = config(from, rels[i], builtins[i], &texts[i], &jsons[i]);

    tlist lt = {0}, lu = {0}, lv = {0}, lt2 = {0};
    if (!rc)
        rc = text_tensors(jsons[C_TEXT], &lt);
    if (!rc && has2)
        rc = text_tensors(jsons[C_TEXT2], &lt2);
    if (!rc)
        rc = unet_tensors(jsons[C_UNET], &lu);
    if (!rc)
        rc = vae_tensors(jsons[C_VAE], &lv);

    if (!rc && count_only) {
        /* Parameter counts as PyTorch's sum(p.numel() for p in model.parameters()). */
        int64_t dec = 0, t1 = count(&lt, NULL), t2 = count(&lt2, NULL), u = count(&lu, NULL),
                v = count(&lv, &dec);
        printf("family %s\n", from ? from : fam->name);
        printf("text_encoder %lld\n", (long long)t1);
        if (has2)
            printf("text_encoder_2 %lld\n", (long long)t2);
        printf("unet %lld\n", (long long)u);
        printf("vae %lld\n", (long long)v);
        printf("vae_decoder %lld\n", (long long)dec);
        printf("total %lld\n", (long long)(t1 + t2 + u + v));
        printf("engine_bytes_bf16 %lld\n", (long long)(t1 + t2 + u + dec) * 2);
    }
    const char *ext = variant ? ".fp16.safetensors" : ".safetensors";
    static const char *tokfiles[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                     "special_tokens_map.json"};
    if (!rc && !count_only) {
        const char *dirs[] = {
            "",           "/unet",           "/vae",        "/text_encoder", "/scheduler",
            "/tokenizer", "/text_encoder_2", "/tokenizer_2"};
        for (int i = 0; i < (has2 ? 8 : 6) && !rc; i++)
            rc = mkdirs(cat("%s%s", out, dirs[i]));
        for (int i = 0; i < N_CONFIGS && !rc; i++) {
            if (!texts[i])
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", out, rels[i]);
            rc = write_text(p, texts[i], strlen(texts[i]));
        }
        for (int i = 0; i < 4 && !rc; i++)
            rc =
                copy_file(cat("%s/%s", tok, tokfiles[i]), cat("%s/tokenizer/%s", out, tokfiles[i]));
        for (int i = 0; i < 4 && !rc && has2; i++)
            rc = copy_file(cat("%s/%s", tok2, tokfiles[i]),
                           cat("%s/tokenizer_2/%s", out, tokfiles[i]));
        if (!rc && has2)
            rc = write_part(cat("%s/text_encoder_2/model%s", out, ext), &lt2, dtype, seed,
                            "text_encoder_2");
        if (!rc)
            rc = write_part(cat("%s/text_encoder/model%s", out, ext), &lt, dtype, seed,
                            "text_encoder");
        if (!rc)
            rc = write_part(cat("%s/unet/diffusion_pytorch_model%s", out, ext), &lu, dtype, seed,
                            "unet");
        if (!rc)
            rc = write_part(cat("%s/vae/diffusion_pytorch_model%s", out, ext), &lv, dtype, seed,
                            "vae");
    }
    for (int i = 0; i < N_CONFIGS; i++) {
        free(texts[i]);
        json_decref(jsons[i]);
    }
    free_list(&lt);
    free_list(&lt2);
    free_list(&lu);
    free_list(&lv);
    if (rc) {
        fprintf(stderr, "make-random-model: %s\n", m2p_errmsg());
        return 1;
    }
    if (!count_only)
        fprintf(stderr, "make-random-model: wrote %s (%s)\n", out, from ? from : fam->repo);
    return 0;
}
