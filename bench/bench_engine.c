/*
 * bench_engine.c — the image engine's speed and memory on a full-size model (e.g. the folder
 * tools/make-random-model writes): model load (first and warm), a whole 4-step image through
 * m2p_generate, peak RSS, then per component: text encoder, one UNet step at batch 1 and 4,
 * VAE decode and TAESD decode, for each image size asked for.
 *
 *   ./build/bench_engine --model DIR [--sizes 512,256] [--threads N] [--dtype f32|bf16]
 *                        [--taesd DIR] [--reps N] [--no-batch4] [--no-components]
 *                        [--no-images] [--only-unet] [--batches 1,4] [--ratio-rounds N]
 *                        [--ab-ff-chunk N]
 *
 * --batches lists the UNet step's batch sizes (default 1,4; --no-batch4 is --batches 1), e.g.
 * --batches 4 to profile the batch alone.
 *
 * Peak RSS is read (getrusage) right after the whole-image runs, before the components are
 * timed, so it is the RSS of load + generate as the CLI does them. Component times are the
 * best of --reps runs after one warm-up run (oneDNN primitive creation).
 * --ratio-rounds N: only batch 4 against batch 1 on adjacent runs, N rounds, at the first size
 * (SD-style UNets; see ratio_rounds). --ab-ff-chunk N: the feed-forward's row chunks against
 * none, N alternated rounds (see ab_ff_chunk).
 */
#define _GNU_SOURCE
#include "core/error.h"
#include "mus2pic.h"
#include "sd/components.h"
#include "sd/pipeline.h"
#include "sd/unet_blocks.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the process (user + system): cpu / wall near the thread count means the
 * machine was not shared during a measurement; much lower means other load took cores. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static double peak_rss_gib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

static float *randn(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof(float));
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i += 2) {
        x = x * 1664525u + 1013904223u;
        double u1 = ((x >> 8) + 1.0) / 16777217.0;
        x = x * 1664525u + 1013904223u;
        double u2 = (x >> 8) / 16777216.0;
        double r = sqrt(-2 * log(u1));
        p[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n)
            p[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    return p;
}

/* B copies of one random row of n: what variations of one prompt share (its text context,
 * pooled embedding and guidance embedding); only their latents differ */
static float *randn_shared(int B, size_t n, uint32_t seed)
{
    float *p = randn((size_t)B * n, seed);
    for (int b = 1; p && b < B; b++)
        memcpy(p + (size_t)b * n, p, n * sizeof *p);
    return p;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, m2p_errmsg());
    exit(1);
}

/* s: wall seconds, cpu: CPU seconds of the same run */
static void line(const char *what, int size, double s, double cpu)
{
    double cores = s > 0 ? cpu / s : 0;
    char sz[16] = "";
    if (size)
        snprintf(sz, sizeof sz, "%4d²", size);
    printf("| %-34s | %5s | %9.3f s | %5.2f |\n", what, sz, s, cores);
    fflush(stdout);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A UNet step's inputs at one size for batches up to 4 (batch-major, so the first B images are
 * a batch of B); SD-style UNets (no added conditioning) only. */
typedef struct step_inputs {
    int h, w;
    float *lat, *ctx, *cond, *pred;
} step_inputs;

static step_inputs step_inputs_make(unet *u, int size, const char *what)
{
    const int B = 4;
    int cross = unet_cross_dim(u), cond_dim = unet_cond_dim(u), inch = unet_in_channels(u);
    int add_in = 0, add_t = 0;
    if (unet_added_dims(u, &add_in, &add_t)) {
        fprintf(stderr, "bench_engine: %s: SDXL-style UNets are not covered\n", what);
        exit(2);
    }
    step_inputs s = {size / 8, size / 8, NULL, NULL, NULL, NULL};
    s.lat = randn((size_t)B * inch * s.h * s.w, 1);
    s.ctx = randn_shared(B, (size_t)77 * cross, 2);
    s.cond = cond_dim ? randn_shared(B, (size_t)cond_dim, 3) : NULL;
    s.pred = malloc((size_t)B * inch * s.h * s.w * sizeof(float));
    if (!s.lat || !s.ctx || (cond_dim && !s.cond) || !s.pred)
        die("out of memory");
    return s;
}

static void step_inputs_free(step_inputs *s)
{
    free(s->lat);
    free(s->ctx);
    free(s->cond);
    free(s->pred);
}

/* One UNet step of batch B, in seconds */
static double step_s(unet *u, const step_inputs *in, int B)
{
    double t0 = now();
    if (unet_forward(u, in->lat, B, in->h, in->w, 759.0f, in->cond, NULL, in->ctx, 77, in->pred))
        die("unet");
    return now() - t0;
}

/* --ratio-rounds N: batch 4 against batch 1 on adjacent runs, so the host's slow minutes hit
 * both: each round is a batch-4 step between two batch-1 steps, and its ratio is batch 4 over
 * the mean of those two. */
static void ratio_rounds(unet *u, int size, int rounds)
{
    step_inputs in = step_inputs_make(u, size, "--ratio-rounds");
    double *t1 = calloc((size_t)rounds, sizeof(double)),
           *t4 = calloc((size_t)rounds, sizeof(double)),
           *ra = calloc((size_t)rounds, sizeof(double));
    if (!t1 || !t4 || !ra)
        die("out of memory");
    step_s(u, &in, 1); /* warm-up: both shapes' primitives */
    step_s(u, &in, 4);
    printf("\n| round | batch 1 (s) | batch 4 (s) | ratio |\n");
    double prev = step_s(u, &in, 1);
    for (int r = 0; r < rounds; r++) {
        t4[r] = step_s(u, &in, 4);
        double next = step_s(u, &in, 1);
        t1[r] = 0.5 * (prev + next);
        ra[r] = t4[r] / t1[r];
        prev = next;
        printf("| %5d | %11.3f | %11.3f | %5.2f |\n", r + 1, t1[r], t4[r], ra[r]);
        fflush(stdout);
    }
    printf("| median | %10.3f | %11.3f | %5.2f |\n", median(t1, rounds), median(t4, rounds),
           median(ra, rounds));
    step_inputs_free(&in);
    free(t1);
    free(t4);
    free(ra);
}

/* --ab-ff-chunk N: the bf16 feed-forward in row chunks (the default) against all rows at once
 * (unet_set_ff_chunk 0), a step of each per round at batches 1 and 4, the order alternating
 * from round to round; the median of each and of the per-round differences. */
static void ab_ff_chunk(unet *u, int size, int rounds)
{
    step_inputs in = step_inputs_make(u, size, "--ab-ff-chunk");
    double *t[2][2], *d[2];
    for (int k = 0; k < 2; k++) {
        t[k][0] = calloc((size_t)rounds, sizeof(double));
        t[k][1] = calloc((size_t)rounds, sizeof(double));
        d[k] = calloc((size_t)rounds, sizeof(double));
        if (!t[k][0] || !t[k][1] || !d[k])
            die("out of memory");
    }
    const int bs[2] = {1, 4};
    for (int v = 0; v < 2; v++) { /* warm-up */
        unet_set_ff_chunk(u, v ? UNET_FF_CHUNK : 0);
        for (int k = 0; k < 2; k++)
            step_s(u, &in, bs[k]);
    }
    printf("\n| round | batch | all rows (s) | chunked (s) |\n");
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < 2; i++) {
                const int v = i ^ (r & 1);
                unet_set_ff_chunk(u, v ? UNET_FF_CHUNK : 0);
                t[k][v][r] = step_s(u, &in, bs[k]);
            }
            d[k][r] = t[k][1][r] - t[k][0][r];
            printf("| %5d | %5d | %12.3f | %11.3f |\n", r + 1, bs[k], t[k][0][r], t[k][1][r]);
            fflush(stdout);
        }
    for (int k = 0; k < 2; k++) {
        int faster = 0;
        for (int r = 0; r < rounds; r++)
            faster += d[k][r] < 0;
        double dm = median(d[k], rounds);
        printf("batch %d: median all rows %.3f s, chunked %.3f s; median difference %+.3f s, "
               "chunked faster in %d of %d rounds\n",
               bs[k], median(t[k][0], rounds), median(t[k][1], rounds), dm, faster, rounds);
    }
    unet_set_ff_chunk(u, UNET_FF_CHUNK);
    for (int k = 0; k < 2; k++) {
        free(t[k][0]);
        free(t[k][1]);
        free(d[k]);
    }
    step_inputs_free(&in);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *taesd_dir = NULL;
    int threads = 0, dtype = M2P_DTYPE_F32, reps = 2, batch4 = 1, components = 1, images = 1;
    int only_unet = 0, ratio_n = 0, ab_n = 0;
    int sizes[4] = {512, 256}, nsizes = 2;
    int batches[4] = {1, 4}, nbatches = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--taesd") && i + 1 < argc)
            taesd_dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ratio-rounds") && i + 1 < argc)
            ratio_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ab-ff-chunk") && i + 1 < argc)
            ab_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-batch4"))
            batch4 = 0;
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            nbatches = 0;
            for (char *s = argv[++i]; *s && nbatches < 4;) {
                int v = (int)strtol(s, &s, 10);
                if (v <= 0 || v > 64) {
                    fprintf(stderr, "bench_engine: --batches wants sizes 1..64, e.g. 1,4\n");
                    return 2;
                }
                batches[nbatches++] = v;
                if (*s == ',')
                    s++;
            }
        } else if (!strcmp(argv[i], "--no-components"))
            components = 0;
        else if (!strcmp(argv[i], "--no-images"))
            images = 0;
        else if (!strcmp(argv[i], "--only-unet"))
            only_unet = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtype = !strcmp(argv[++i], "bf16") ? M2P_DTYPE_BF16 : M2P_DTYPE_F32;
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *s = argv[++i]; *s && nsizes < 4;) {
                int v = (int)strtol(s, &s, 10);
                if (v <= 0)
                    break; /* "--sizes none": load only */
                sizes[nsizes++] = v;
                if (*s == ',')
                    s++;
            }
        } else {
            fprintf(stderr, "usage: bench_engine --model DIR [--sizes 512,256] [--threads N] "
                            "[--dtype f32|bf16] [--taesd DIR] [--reps N] [--no-batch4] "
                            "[--no-components] [--no-images] [--only-unet] [--batches 1,4] "
                            "[--ratio-rounds N] [--ab-ff-chunk N]\n");
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "bench_engine: --model DIR is required (see tools/make-random-model)\n");
        return 2;
    }
    char deftaesd[4096];
    if (!taesd_dir) {
        const char *fx = getenv("M2P_FIXTURES");
        snprintf(deftaesd, sizeof deftaesd, "%s/taesd/model",
                 fx && *fx ? fx : "../shared/fixtures");
        taesd_dir = deftaesd;
    }
    m2p_model_params mp = m2p_model_default_params();
    mp.n_threads = threads;
    mp.compute_dtype = dtype;
    mp.taesd = taesd_dir;
    op_set_threads(threads);
    printf("bench_engine: model %s, %d threads, compute %s\n\n", model, op_get_threads(),
           dtype == M2P_DTYPE_BF16 ? "bf16" : "f32");
    printf("| %-34s | %5s | %11s | %5s |\n", "what", "size", "time", "cores");
    printf("|%s|%s|%s|%s|\n", "------------------------------------", "-------", "-------------",
           "-------");

    /* load: first (page cache as it is), then warm */
    m2p_model *m = NULL;
    double t0 = now(), c0 = cpu_s();
    if (m2p_model_load(model, &mp, &m))
        die("load");
    line("model load (first)", 0, now() - t0, cpu_s() - c0);
    m2p_model_free(m);
    t0 = now();
    c0 = cpu_s();
    if (m2p_model_load(model, &mp, &m))
        die("load");
    line("model load (warm page cache)", 0, now() - t0, cpu_s() - c0);

    /* whole images */
    for (int si = 0; si < nsizes && images; si++) {
        m2p_gen_params gp = m2p_gen_default_params();
        gp.prompt = "a poster of a rock band on stage, dramatic light";
        gp.steps = 4;
        gp.width = gp.height = sizes[si];
        gp.seed = 42;
        gp.variations = 1;
        /* the first run at a size also creates its oneDNN primitives, as the CLI's only run */
        for (int r = 0; r < 2; r++) {
            m2p_image img;
            t0 = now();
            c0 = cpu_s();
            if (m2p_generate(m, &gp, &img))
                die("generate");
            line(r ? "4-step image, again" : "4-step image (first at this size)", sizes[si],
                 now() - t0, cpu_s() - c0);
            m2p_image_free(&img);
        }
    }
    printf("| %-34s | %5s | %9.2f GiB | %5s |\n", "peak RSS (load + images)", "", peak_rss_gib(),
           "");
    if (!components) {
        m2p_model_free(m);
        return 0;
    }

    /* components */
    unet *u = pipeline_unet(m);
    vae *v = pipeline_vae(m);
    taesd *td = pipeline_taesd(m);
    char tdir[8192];
    snprintf(tdir, sizeof tdir, "%s/text_encoder", model);
    char resolved[4096];
    if (m2p_model_resolve(model, resolved, sizeof resolved) == 0)
        snprintf(tdir, sizeof tdir, "%s/text_encoder", resolved);
    clip_text *ct = NULL;
    if (!only_unet && clip_text_load(tdir, &mp, NULL, &ct))
        die("text encoder load");
    if (ct) {
        int32_t ids[77];
        for (int i = 0; i < 77; i++)
            ids[i] = i == 0 ? 49406 : i < 20 ? 320 + i * 7 : 49407;
        float *out = malloc((size_t)77 * clip_text_hidden(ct) * sizeof(float));
        double best = 1e30, bestc = 0;
        for (int r = 0; r <= reps; r++) {
            t0 = now();
            c0 = cpu_s();
            if (clip_text_forward(ct, ids, 1, 77, out))
                die("text encoder");
            double t = now() - t0, tc = cpu_s() - c0;
            if ((r || !reps) && t < best) {
                best = t;
                bestc = tc;
            }
        }
        line("text encoder (77 tokens)", 0, best, bestc);
        free(out);
    }
    clip_text_free(ct);

    if (ab_n > 0) {
        ab_ff_chunk(u, sizes[0], ab_n);
        m2p_model_free(m);
        return 0;
    }
    if (ratio_n > 0) {
        ratio_rounds(u, sizes[0], ratio_n);
        m2p_model_free(m);
        return 0;
    }
    int cross = unet_cross_dim(u), cond_dim = unet_cond_dim(u), inch = unet_in_channels(u);
    for (int si = 0; si < nsizes; si++) {
        int h = sizes[si] / 8, w = sizes[si] / 8;
        for (int bi = 0; bi < nbatches; bi++) {
            const int B = batches[bi];
            if (B != 1 && !batch4)
                continue;
            float *lat = randn((size_t)B * inch * h * w, 1),
                  *ctx = randn_shared(B, (size_t)77 * cross, 2),
                  *cond = cond_dim ? randn_shared(B, (size_t)cond_dim, 3) : NULL,
                  *pred = malloc((size_t)B * inch * h * w * sizeof(float));
            /* SDXL (text_time): pooled text_embeds + the 6 time ids of this size */
            int add_in = 0, add_t = 0, nte = 0;
            float *temb = NULL, *tids = NULL;
            if (unet_added_dims(u, &add_in, &add_t)) {
                nte = add_in - 6 * add_t;
                temb = randn_shared(B, (size_t)(nte > 0 ? nte : 1), 5);
                tids = malloc((size_t)B * 6 * sizeof *tids);
                if (!temb || !tids)
                    die("out of memory");
                for (int b = 0; b < B; b++) {
                    const float t6[6] = {(float)sizes[si], (float)sizes[si], 0, 0,
                                         (float)sizes[si], (float)sizes[si]};
                    memcpy(tids + 6 * b, t6, sizeof t6);
                }
            }
            unet_added_cond added = {temb, nte, tids, 6};
            double best = 1e30, bestc = 0;
            for (int r = 0; r <= reps; r++) {
                t0 = now();
                c0 = cpu_s();
                if (unet_forward(u, lat, B, h, w, 759.0f, cond, temb ? &added : NULL, ctx, 77,
                                 pred))
                    die("unet");
                double t = now() - t0, tc = cpu_s() - c0;
                if ((r || !reps) && t < best) {
                    best = t;
                    bestc = tc;
                }
            }
            char what[64];
            snprintf(what, sizeof what, "UNet step, batch %d", B);
            line(what, sizes[si], best, bestc);
            free(lat);
            free(ctx);
            free(cond);
            free(pred);
            free(temb);
            free(tids);
        }
        float *z = randn((size_t)4 * h * w, 4);
        float *img = malloc((size_t)3 * 64 * h * w * sizeof(float));
        if (v && !only_unet) {
            double best = 1e30, bestc = 0;
            for (int r = 0; r <= reps; r++) {
                t0 = now();
                c0 = cpu_s();
                if (vae_decode(v, z, 1, h, w, img))
                    die("vae");
                double t = now() - t0, tc = cpu_s() - c0;
                if ((r || !reps) && t < best) {
                    best = t;
                    bestc = tc;
                }
            }
            line("VAE decode", sizes[si], best, bestc);
        }
        if (td && !only_unet) {
            double best = 1e30, bestc = 0;
            for (int r = 0; r <= reps; r++) {
                t0 = now();
                c0 = cpu_s();
                if (taesd_decode(td, z, 1, h, w, img))
                    die("taesd");
                double t = now() - t0, tc = cpu_s() - c0;
                if ((r || !reps) && t < best) {
                    best = t;
                    bestc = tc;
                }
            }
            line("TAESD decode", sizes[si], best, bestc);
        }
        free(z);
        free(img);
    }
    printf("| %-34s | %5s | %9.2f GiB | %5s |\n", "peak RSS (incl. components)", "", peak_rss_gib(),
           "");
    m2p_model_free(m);
    return 0;
}
