/*
 * cmd_generate.c — `mus2pic generate`: prompt -> PNG images with the LCM pipeline.
 * Parses and checks every option before loading anything (usage errors exit 2, runtime errors
 * exit 1), shows a progress bar on a terminal (a line per step with -v otherwise), and writes
 * FILE.png, or FILE-1.png ... FILE-N.png for N variations, each atomically; when any write fails
 * the ones already written are removed, so a failed run leaves no output. Ctrl-C cancels.
 * --latents / --noise / --raw-out exchange float32 safetensors with other tools (diffusers);
 * --scheduler / --scheduler-config pick the sampler as diffusers' Scheduler.from_config does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "mus2pic.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mus2pic generate --model DIR|NAME|HUB_ID --prompt TEXT --out FILE.png [options]\n"
        "\n"
        "  --model M            model folder, hub id (SimianLuo/LCM_Dreamshaper_v7) or name (lcm)\n"
        "  --prompt TEXT        what to draw\n"
        "  --negative T         what to avoid (alias --negative-prompt); used with "
        "classifier-free\n"
        "                       guidance, i.e. guidance > 1 on a model without LCM's guidance\n"
        "                       embedding; SDXL uses zero embeddings when none is given\n"
        "  --steps N            1..50 (default: the model's, 8 for lcm, else 50)\n"
        "  --guidance G         guidance scale (default: a named model's, `models list`, else\n"
        "                       8.5): > 1 runs classifier-free guidance\n"
        "                       (0 or 1: none, as SDXL Turbo / Lightning use); LCM models take\n"
        "                       it as their w-embedding instead\n"
        "  --scheduler S        lcm|ddim|pndm|euler|euler_a: that sampler over the model's\n"
        "                       scheduler config (diffusers Scheduler.from_config)\n"
        "  --scheduler-config F a diffusers scheduler_config.json (its _class_name picks the\n"
        "                       sampler unless --scheduler names one)\n"
        "  --width W --height H multiples of 8 in 64..2048 (default: a named model's size,\n"
        "                       e.g. 768 for sd21, 1024 for sdxl_lightning, else 512)\n"
        "  --seed N             variation i uses seed N+i (default: random, printed)\n"
        "  --variations N       1..8 images, one batch (FILE-1.png ... FILE-N.png)\n"
        "  --threads N          compute threads (default: OMP_NUM_THREADS or all cores)\n"
        "  --dtype f32|bf16     compute type (default f32, exact; bf16 is faster, not exact,\n"
        "                       and needs a CPU with avx512_bf16 or AMX)\n"
        "  --taesd DIR          decode with the TAESD tiny decoder from DIR (fast, no VAE;\n"
        "                       an explicit --decoder vae still decodes with the VAE)\n"
        "  --decoder vae|taesd  final decoder (default vae); taesd is about 15x faster, less\n"
        "                       detailed, and uses madebyollin/taesd from the model cache\n"
        "                       (`models fetch` brings it) unless --taesd names a folder\n"
        "  --no-weight-cache    convert the weights at load instead of mapping the weight\n"
        "                       cache (written by the first load of a model and dtype)\n"
        "  --vae-tile N|off     VAE decoder tiles of N latents (8..256; default 128: images\n"
        "                       above 1024x1024 decode in overlapping tiles, bounded memory)\n"
        "  --unet F.safetensors UNet weights replacing the model folder's (same config), e.g.\n"
        "                       sdxl_lightning_4step_unet.safetensors over the SDXL base\n"
        "  --latents F          initial latents: safetensors tensor 'latents' f32 [N,4,H/8,W/8]\n"
        "  --noise F            tensor 'noise' f32 [K,N,4,H/8,W/8]: every random tensor the\n"
        "                       sampler draws, in order (K: lcm steps-1, euler / euler_a steps,\n"
        "                       ddim / pndm none)\n"
        "  --raw-out F          also write tensor 'image' f32 [N,3,H,W] in [0,1]\n"
        "  --out FILE.png       output image\n"
        "  --title T --artist A poster text: also write FILE-text.png with the song and the\n"
        "                       artist set on it (the plain FILE.png is kept)\n"
        "  --text-layout L      top, bottom (default) or band\n"
        "  -v, --verbose        a progress line per step when not on a terminal\n");
}

/* "dir/out.png" -> "dir/out-3.png" */
static void numbered(const char *out, int i, char *buf, size_t len)
{
    const char *slash = strrchr(out, '/');
    const char *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash) || dot == out || (slash && dot == slash + 1))
        snprintf(buf, len, "%s-%d", out, i);
    else
        snprintf(buf, len, "%.*s-%d%s", (int)(dot - out), out, i, dot);
}

/* NAME.png -> NAME-text.png */
static void text_path(const char *name, char *path, size_t len)
{
    const char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
    if (!dot || (slash && dot < slash))
        snprintf(path, len, "%s-text.png", name);
    else
        snprintf(path, len, "%.*s-text%s", (int)(dot - name), name, dot);
}

/* Poster text: a copy of the image with the title and artist on it, as NAME-text.png next to
 * the plain NAME.png. */
static int write_with_text(const char *name, const m2p_image *im, const m2p_poster_text *t,
                           const m2p_png_meta *meta)
{
    size_t n = (size_t)im->width * (size_t)im->height * 3;
    uint8_t *copy = malloc(n);
    if (!copy) {
        fprintf(stderr, "mus2pic generate: out of memory for the poster text\n");
        return -1;
    }
    memcpy(copy, im->rgb, n);
    char path[4300];
    text_path(name, path, sizeof path);
    int rc = m2p_poster_draw_text(copy, im->width, im->height, t, NULL);
    if (!rc)
        rc = m2p_png_write_meta(path, copy, im->width, im->height, meta);
    if (rc)
        fprintf(stderr, "mus2pic generate: %s\n", m2p_errmsg());
    free(copy);
    m2p_poster_cleanup();
    return rc ? -1 : 0;
}

typedef struct {
    progress *bar;
    int steps;
} cb_ctx;

static int on_step(const m2p_step_info *info, void *ud)
{
    cb_ctx *c = ud;
    char detail[64];
    c->steps = info->steps; /* the sampler's UNet calls (PNDM: steps + 1) */
    if (info->stage == M2P_STAGE_STEP) {
        snprintf(detail, sizeof detail, "step %d/%d", info->step, info->steps);
        progress_update(c->bar, info->step, info->steps + 1, detail);
    } else if (info->stage == M2P_STAGE_DECODE) {
        progress_update(c->bar, info->steps, info->steps + 1, "decoding");
    } else {
        progress_update(c->bar, 0, info->steps + 1, "encoding prompt");
    }
    return interrupted;
}

/* A float32 tensor with exactly the given shape from a safetensors file (copied); a negative
 * shape[0] takes any first dimension of at least 1 (written back). */
static int read_tensor(const char *opt, const char *path, const char *name, int ndim,
                       int64_t *shape, float **out)
{
    int got_ndim = 0;
    int64_t got[8];
    float *data = NULL;
    int rc = m2p_tensor_read_f32(path, name, &got_ndim, got, &data);
    if (rc && rc != M2P_ENOTFOUND && rc != M2P_EFORMAT) {
        fprintf(stderr, "mus2pic generate: %s: %s\n", opt, m2p_errmsg());
        return -1;
    }
    int ok = !rc && got_ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = got[i] == shape[i] || (i == 0 && shape[0] < 0 && got[0] >= 1);
    if (!ok) {
        char want[128] = "", *p = want;
        for (int i = 0; i < ndim; i++) {
            if (i == 0 && shape[0] < 0)
                p += snprintf(p, sizeof want, "K");
            else
                p += snprintf(p, sizeof want - (size_t)(p - want), "%s%lld", i ? "," : "",
                              (long long)shape[i]);
        }
        fprintf(stderr, "mus2pic generate: %s %s: needs a float32 tensor '%s' of shape [%s]\n", opt,
                path, name, want);
        free(data);
        return -1;
    }
    shape[0] = got[0];
    *out = data;
    return 0;
}

/* Where an image named path is written: a regular file only. A missing file is created; a
 * symlink is followed (its target is replaced, not the link); a device, folder, FIFO or socket
 * is refused, so `--out /dev/null` as root cannot replace the device node. 0, or -1 with the
 * message printed. */
static int out_target(const char *path, char *real, size_t len)
{
    struct stat st;
    snprintf(real, len, "%s", path);
    if (lstat(path, &st) != 0)
        return 0; /* a new file */
    if (S_ISLNK(st.st_mode)) {
        char *r = realpath(path, NULL);
        if (!r) {
            fprintf(stderr,
                    "mus2pic generate: --out '%s' is a symlink to nothing that exists; point it "
                    "at a file or remove it\n",
                    path);
            return -1;
        }
        snprintf(real, len, "%s", r);
        free(r);
        if (stat(real, &st) != 0)
            return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr,
                "mus2pic generate: --out '%s' is %s, not a regular file; name a .png file to "
                "write\n",
                path, S_ISDIR(st.st_mode) ? "a folder" : "a device or special file");
        return -1;
    }
    return 0;
}

static int folder_of_exists(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!dir[0])
        return 1;
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"negative-prompt", required_argument, 0, 'n'},
        {"negative", required_argument, 0, 'n'},
        {"scheduler", required_argument, 0, 'C'},
        {"unet", required_argument, 0, 'U'},
        {"scheduler-config", required_argument, 0, 'J'},
        {"steps", required_argument, 0, 's'},
        {"guidance", required_argument, 0, 'g'},
        {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'},
        {"seed", required_argument, 0, 'S'},
        {"variations", required_argument, 0, 'V'},
        {"threads", required_argument, 0, 't'},
        {"taesd", required_argument, 0, 'T'},
        {"decoder", required_argument, 0, 'E'},
        {"vae-tile", required_argument, 0, 'Z'},
        {"no-weight-cache", no_argument, 0, 'K'},
        {"latents", required_argument, 0, 'L'},
        {"noise", required_argument, 0, 'N'},
        {"raw-out", required_argument, 0, 'R'},
        {"out", required_argument, 0, 'o'},
        {"dtype", required_argument, 0, 'D'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"title", required_argument, 0, 'X'},
        {"artist", required_argument, 0, 'A'},
        {"text-layout", required_argument, 0, 'Y'},
        {0, 0, 0, 0},
    };
    m2p_poster_text text = {.layout = M2P_TEXT_BOTTOM};
    const char *model = NULL, *out = NULL, *taesd = NULL, *latents_f = NULL, *noise_f = NULL,
               *raw_f = NULL, *unet_f = NULL;
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = NULL;
    int threads = 0, verbose = 0, have_seed = 0, dtype = M2P_DTYPE_F32, use_taesd = -1;
    int no_weight_cache = 0;
    int have_guidance = 0, have_width = 0, have_height = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'p':
            p.prompt = optarg;
            break;
        case 'X':
            text.title = optarg;
            break;
        case 'A':
            text.artist = optarg;
            break;
        case 'Y':
            if ((text.layout = m2p_poster_layout(optarg)) < 0) {
                fprintf(stderr,
                        "mus2pic generate: --text-layout is top, bottom or band, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'n':
            p.negative_prompt = optarg;
            break;
        case 's':
            if (cli_int_arg("generate", "--steps", optarg, 1, 50, &p.steps))
                return 2;
            break;
        case 'g': {
            char *end;
            errno = 0;
            double g = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(g) || fabs(g) > 1000) {
                fprintf(stderr,
                        "mus2pic generate: --guidance '%s' must be a number in -1000..1000\n",
                        optarg);
                return 2;
            }
            p.guidance = (float)g;
            have_guidance = 1;
            break;
        }
        case 'W':
            if (cli_int_arg("generate", "--width", optarg, 64, 2048, &p.width))
                return 2;
            have_width = 1;
            break;
        case 'H':
            if (cli_int_arg("generate", "--height", optarg, 64, 2048, &p.height))
                return 2;
            have_height = 1;
            break;
        case 'S': {
            char *end;
            errno = 0;
            if (optarg[0] == '-' || !optarg[0]) {
                fprintf(stderr, "mus2pic generate: --seed '%s' must be a non-negative integer\n",
                        optarg);
                return 2;
            }
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end) {
                fprintf(stderr, "mus2pic generate: --seed '%s' must be a non-negative integer\n",
                        optarg);
                return 2;
            }
            p.seed = v;
            have_seed = 1;
            break;
        }
        case 'V':
            if (cli_int_arg("generate", "--variations", optarg, 1, 8, &p.variations))
                return 2;
            break;
        case 't':
            if (cli_int_arg("generate", "--threads", optarg, 1, 1024, &threads))
                return 2;
            break;
        case 'D':
            if (strcmp(optarg, "f32") && strcmp(optarg, "bf16")) {
                fprintf(stderr, "mus2pic generate: --dtype '%s' must be f32 or bf16\n", optarg);
                return 2;
            }
            dtype = strcmp(optarg, "bf16") ? M2P_DTYPE_F32 : M2P_DTYPE_BF16;
            break;
        case 'T':
            taesd = optarg;
            break;
        case 'E':
            if (strcmp(optarg, "vae") && strcmp(optarg, "taesd")) {
                fprintf(stderr, "mus2pic generate: --decoder '%s' must be vae or taesd\n", optarg);
                return 2;
            }
            use_taesd = !strcmp(optarg, "taesd");
            break;
        case 'K':
            no_weight_cache = 1;
            break;
        case 'Z':
            if (!strcmp(optarg, "off"))
                p.vae_tile = -1;
            else if (cli_int_arg("generate", "--vae-tile", optarg, 8, 256, &p.vae_tile))
                return 2;
            break;
        case 'C':
            if (!m2p_scheduler_known(optarg)) {
                fprintf(stderr,
                        "mus2pic generate: --scheduler '%s' must be lcm, ddim, pndm, euler or "
                        "euler_a\n",
                        optarg);
                return 2;
            }
            p.scheduler = optarg;
            break;
        case 'J':
            p.scheduler_config = optarg;
            break;
        case 'U':
            unet_f = optarg;
            break;
        case 'L':
            latents_f = optarg;
            break;
        case 'N':
            noise_f = optarg;
            break;
        case 'R':
            raw_f = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "mus2pic generate: %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "mus2pic generate: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mus2pic generate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model || !p.prompt || !out) {
        fprintf(stderr, "mus2pic generate: %s is required\n\n",
                !model      ? "--model"
                : !p.prompt ? "--prompt"
                            : "--out");
        usage(stderr);
        return 2;
    }
    /* A registry name runs with the original's defaults (registry.c: SD 2.1 768² at 7.5, Turbo
     * 0.0, Lightning 1024² ...) unless the option was given; a folder keeps the generic ones. */
    const m2p_registry_entry *reg = m2p_registry_find(model);
    if (reg) {
        if (!have_guidance)
            p.guidance = reg->default_guidance;
        if (!have_width)
            p.width = reg->default_width;
        if (!have_height)
            p.height = reg->default_height;
    }
    if (p.width % 8 || p.height % 8) {
        fprintf(stderr, "mus2pic generate: --%s %d must be a multiple of 8\n",
                p.width % 8 ? "width" : "height", p.width % 8 ? p.width : p.height);
        return 2;
    }
    if (!folder_of_exists(out) || (raw_f && !folder_of_exists(raw_f))) {
        fprintf(stderr, "mus2pic generate: the folder of '%s' does not exist\n",
                !folder_of_exists(out) ? out : raw_f);
        return 2;
    }
    for (int i = 0; i < p.variations; i++) { /* refuse before the work, not after it */
        char name[4200], real[4200];
        if (p.variations == 1)
            snprintf(name, sizeof name, "%s", out);
        else
            numbered(out, i + 1, name, sizeof name);
        if (out_target(name, real, sizeof real))
            return 2;
    }
    if (p.scheduler_config) {
        /* a bad file is a usage error, found before the model loads */
        if (m2p_scheduler_config_check(p.scheduler_config, p.scheduler)) {
            fprintf(stderr, "mus2pic generate: --scheduler-config: %s\n", m2p_errmsg());
            return 2;
        }
    }
    int steps = p.steps ? p.steps : (reg ? reg->default_steps : 0);
    p.steps = steps;
    const int N = p.variations, h = p.height / 8, w = p.width / 8;
    float *lat = NULL, *noise = NULL;
    int rc = 2;
    if (latents_f) {
        int64_t shape[4] = {N, 4, h, w};
        if (read_tensor("--latents", latents_f, "latents", 4, shape, &lat))
            goto out_free;
        p.latents = lat;
    }
    if (noise_f) {
        int64_t shape[5] = {-1, N, 4, h, w}; /* K is checked against the sampler's draws */
        if (read_tensor("--noise", noise_f, "noise", 5, shape, &noise))
            goto out_free;
        p.noise = noise;
        p.n_noise = (int)shape[0];
    }
    if (!have_seed) {
        FILE *r = fopen("/dev/urandom", "rb");
        uint32_t s = 0;
        if (!r || fread(&s, sizeof s, 1, r) != 1)
            s = (uint32_t)getpid() ^ (uint32_t)time(NULL);
        if (r)
            fclose(r);
        p.seed = s;
    }

    rc = 1;
    m2p_model_params mp = m2p_model_default_params();
    mp.n_threads = threads;
    mp.compute_dtype = dtype;
    mp.unet_file = unet_f;
    mp.weight_cache = !no_weight_cache;
    /* one m2p_generate call: the encoder is not needed again, nor the UNet after its steps */
    mp.release_text_encoder = mp.release_unet = 1;
    if (use_taesd < 0) /* no --decoder: --taesd DIR alone means "decode with it" */
        use_taesd = taesd != NULL;
    if (use_taesd) { /* TAESD alone: the VAE is not even loaded */
        mp.taesd = taesd;
        mp.load_vae = 0;
        p.use_taesd = 1;
    }
    m2p_model *m = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (m2p_model_load(model, &mp, &m)) {
        fprintf(stderr, "mus2pic generate: %s\n", m2p_errmsg());
        goto out_free;
    }
    /* Only once the model is there: a seed printed before a failed load reads like a run. */
    fprintf(stderr, "seed: %llu\n", (unsigned long long)p.seed);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (verbose)
        fprintf(stderr, "model: %s loaded in %.2fs (%s)\n", m2p_model_path(m),
                (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9,
                dtype == M2P_DTYPE_BF16 ? "bf16" : "f32");
    int lc = 0, lh = 0, lw = 0; /* the tensors read above assumed [.., 4, H/8, W/8] */
    if ((lat || noise) && (m2p_model_latent_shape(m, p.width, p.height, &lc, &lh, &lw) || lc != 4 ||
                           lh != h || lw != w)) {
        fprintf(stderr,
                "mus2pic generate: --latents / --noise: this model's latents for %dx%d are "
                "[%d,%d,%d] per image, not [4,%d,%d]\n",
                p.width, p.height, lc, lh, lw, h, w);
        m2p_model_free(m);
        rc = 2;
        goto out_free;
    }
    if (p.negative_prompt && *p.negative_prompt && !m2p_model_uses_negative_prompt(m, p.guidance))
        fprintf(stderr,
                "note: this run will ignore the negative prompt, as diffusers does: it is used "
                "by classifier-free guidance, i.e. guidance > 1 (here %g) on a model without "
                "LCM's guidance embedding\n",
                p.guidance);
    m2p_image *imgs = calloc((size_t)N, sizeof *imgs);
    if (!imgs) {
        m2p_model_free(m);
        goto out_free;
    }
    cb_ctx cb = {
        progress_start(stderr, "generate", (steps ? steps : 50) + 1, PROGRESS_COUNT, verbose),
        steps};
    p.callback = on_step;
    p.user_data = &cb;
    p.want_raw = raw_f != NULL;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    int g = m2p_generate(m, &p, imgs);
    sigaction(SIGINT, &old, NULL);
    if (g == 0)
        progress_update(cb.bar, cb.steps + 1, cb.steps + 1, "done");
    progress_finish(cb.bar);
    if (g) {
        fprintf(stderr, "mus2pic generate: %s\n", m2p_errmsg());
        rc = g == M2P_EINVAL ? 2 : g == M2P_ECANCELED ? 130 : 1;
        goto out_model;
    }
    /* write every file, or none */
    char(*names)[4200] = calloc((size_t)N, sizeof *names);
    int written = 0, failed = 0;
    /* The file says how it was made (text chunks); a folder given as the model is named by
     * its last component, not the local path. */
    const char *model_name = reg ? reg->name : model;
    const char *slash = strrchr(model_name, '/');
    if (!reg && slash && slash[1] && !m2p_registry_find(model))
        model_name = slash + 1;
    m2p_png_meta meta = {.prompt = p.prompt,
                         .negative_prompt = p.negative_prompt,
                         .model = model_name,
                         .steps = imgs[0].steps,
                         .sampler = imgs[0].sampler,
                         .guidance = p.guidance,
                         .width = p.width,
                         .height = p.height,
                         .artist = text.artist,
                         .song = text.title};
    int with_text = (text.title && *text.title) || (text.artist && *text.artist);
    for (int i = 0; names && i < N && !failed; i++) {
        if (N == 1)
            snprintf(names[i], sizeof names[i], "%s", out);
        else
            numbered(out, i + 1, names[i], sizeof names[i]);
        char real[4200];
        meta.seed = imgs[i].seed;
        if (out_target(names[i], real, sizeof real)) {
            failed = 1;
        } else if (m2p_png_write_meta(real, imgs[i].rgb, imgs[i].width, imgs[i].height, &meta)) {
            fprintf(stderr, "mus2pic generate: %s\n", m2p_errmsg());
            failed = 1;
        } else {
            written++;
            if (with_text && write_with_text(names[i], &imgs[i], &text, &meta))
                failed = 1;
        }
    }
    if (!names)
        failed = 1;
    if (!failed && raw_f) {
        size_t per = (size_t)3 * p.width * p.height;
        float *all = malloc((size_t)N * per * sizeof(float));
        if (!all) {
            failed = 1;
        } else {
            for (int i = 0; i < N; i++)
                memcpy(all + i * per, imgs[i].raw, per * sizeof(float));
            const int64_t shape[4] = {N, 3, p.height, p.width};
            if (m2p_tensor_write_f32(raw_f, "image", 4, shape, all)) {
                fprintf(stderr, "mus2pic generate: %s\n", m2p_errmsg());
                failed = 1;
            }
            free(all);
        }
    }
    char tp[4300];
    if (failed) {
        for (int i = 0; i < written; i++) {
            unlink(names[i]);
            text_path(names[i], tp, sizeof tp);
            if (with_text)
                unlink(tp);
        }
    } else {
        for (int i = 0; i < N; i++) {
            printf("%s  seed %llu  %dx%d  %.1fs\n", names[i], (unsigned long long)imgs[i].seed,
                   imgs[i].width, imgs[i].height, imgs[i].seconds);
            text_path(names[i], tp, sizeof tp);
            if (with_text)
                printf("%s  the same with the poster text\n", tp);
        }
        if (raw_f)
            printf("%s  raw float image [%d,3,%d,%d]\n", raw_f, N, p.height, p.width);
        rc = 0;
    }
    free(names);
out_model:
    for (int i = 0; i < N; i++)
        m2p_image_free(&imgs[i]);
    free(imgs);
    m2p_model_free(m);
out_free:
    free(lat);
    free(noise);
    return rc;
}
