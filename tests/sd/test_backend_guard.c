/*
 * test_backend_guard.c — the backend interface (tensor/backend.h) is complete: nothing in src/sd
 * reads or writes the memory of its backend except through the backend's calls. A "guard"
 * backend wraps the CPU backend but keeps every buffer it hands out (activations, the arena,
 * norm and embedding weights) in its own page-aligned mmap that is PROT_NONE outside its calls:
 * each call makes them readable and writable on entry and takes that back before returning, so
 * a direct access from outside a backend call (a loop over a feature map, a memcpy of the
 * latents, a tap that reads it) faults, as it would on a GPU's memory. The networks then run
 * through whole pipelines (sd-tiny: text encoder, UNet with every tap on, the VAE untiled and
 * tiled, TAESD as decoder and for previews; sd2-tiny with CFG; sdxl-tiny's two encoders and
 * added conditioning; f32, and bf16 where the CPU has it) and everything they produce must be
 * the same bits as on the CPU backend: images, raw images, previews and every tapped tensor.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "sd/components.h"
#include "sd/pipeline.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "test.h"

/* ---- the guard backend ------------------------------------------------------------------- */

typedef struct guard_buf {
    void *p;
    size_t bytes;
} guard_buf;

typedef struct guard {
    const m2p_backend *inner;
    guard_buf *buf;
    int n, cap;
    int depth;        /* inside a call (the wrappers never nest, but be safe) */
    long calls, peak; /* backend calls made; most buffers alive at once */
    size_t page;
} guard;

static void guard_protect(guard *g, int prot)
{
    for (int i = 0; i < g->n; i++)
        if (mprotect(g->buf[i].p, g->buf[i].bytes, prot) != 0) {
            perror("guard: mprotect");
            abort();
        }
}

static guard *G(const m2p_backend *be)
{
    return be->ctx;
}

static void enter(const m2p_backend *be)
{
    guard *g = G(be);
    g->calls++;
    if (g->depth++ == 0)
        guard_protect(g, PROT_READ | PROT_WRITE);
}

static void leave(const m2p_backend *be)
{
    guard *g = G(be);
    if (--g->depth == 0)
        guard_protect(g, PROT_NONE);
}

#define IN(be) (G(be)->inner)

/* A wrapper that unprotects, calls the CPU backend's function of the same name, protects. */
#define WRAP(ret, name, params, args)                                                              \
    static ret g_##name params                                                                     \
    {                                                                                              \
        enter(be);                                                                                 \
        ret r = IN(be)->name args;                                                                 \
        leave(be);                                                                                 \
        return r;                                                                                  \
    }
#define WRAP_VOID(name, params, args)                                                              \
    static void g_##name params                                                                    \
    {                                                                                              \
        enter(be);                                                                                 \
        IN(be)->name args;                                                                         \
        leave(be);                                                                                 \
    }

static float *g_alloc(const m2p_backend *be, size_t n)
{
    guard *g = G(be);
    enter(be);
    float *r = NULL;
    size_t bytes = ((n ? n : 1) * sizeof(float) + g->page - 1) / g->page * g->page;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        m2p_error(M2P_ENOMEM, "guard backend: no %zu bytes", bytes);
    } else if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        guard_buf *nb = realloc(g->buf, (size_t)cap * sizeof *nb);
        if (!nb) {
            munmap(p, bytes);
            m2p_error(M2P_ENOMEM, "guard backend: out of memory");
        } else {
            g->buf = nb;
            g->cap = cap;
        }
    }
    if (p != MAP_FAILED && g->n < g->cap) {
        g->buf[g->n++] = (guard_buf){p, bytes};
        g->peak = g->n > g->peak ? g->n : g->peak;
        r = p;
    }
    leave(be);
    return r;
}

static void g_free(const m2p_backend *be, float *p)
{
    guard *g = G(be);
    if (!p)
        return;
    for (int i = 0; i < g->n; i++)
        if (g->buf[i].p == p) {
            munmap(p, g->buf[i].bytes);
            g->buf[i] = g->buf[--g->n];
            return;
        }
    fprintf(stderr, "guard: free of %p, which the guard backend did not allocate\n", (void *)p);
    abort();
}

WRAP(int, bf16_supported, (const m2p_backend *be), (IN(be)))
WRAP_VOID(set_threads, (const m2p_backend *be, int n), (IN(be), n))
WRAP(int, upload, (const m2p_backend *be, float *dst, const float *src, size_t n),
     (IN(be), dst, src, n))
WRAP(int, download, (const m2p_backend *be, float *dst, const float *src, size_t n),
     (IN(be), dst, src, n))
WRAP(int, zero, (const m2p_backend *be, float *dst, size_t n), (IN(be), dst, n))
WRAP(int, copy, (const m2p_backend *be, float *dst, const float *src, size_t n),
     (IN(be), dst, src, n))
WRAP(int, conv_create,
     (const m2p_backend *be, bk_conv **out, const float *w, const float *bias, int cin, int cout,
      int k, int stride, int pad, int dtype, int flags),
     (IN(be), out, w, bias, cin, cout, k, stride, pad, dtype, flags))
WRAP(int, conv_create_prepared,
     (const m2p_backend *be, bk_conv **out, const bk_prepared *pw, const float *bias, int cin,
      int cout, int k, int stride, int pad, int dtype, int flags),
     (IN(be), out, pw, bias, cin, cout, k, stride, pad, dtype, flags))
WRAP_VOID(conv_prepared, (const m2p_backend *be, const bk_conv *c, bk_prepared *pw),
          (IN(be), c, pw))
WRAP(int, conv_forward,
     (const m2p_backend *be, bk_conv *c, const float *x, int B, int H, int W, float *y,
      const float *residual),
     (IN(be), c, x, B, H, W, y, residual))
WRAP(int, conv_forward_pre,
     (const m2p_backend *be, bk_conv *c, const bk_pre *pre, const float *x, int B, int H, int W,
      float *tmp, float *y, const float *residual),
     (IN(be), c, pre, x, B, H, W, tmp, y, residual))
WRAP_VOID(conv_out_hw, (const m2p_backend *be, const bk_conv *c, int H, int W, int *Ho, int *Wo),
          (IN(be), c, H, W, Ho, Wo))
WRAP_VOID(conv_free, (const m2p_backend *be, bk_conv *c), (IN(be), c))
WRAP(int, linear_create,
     (const m2p_backend *be, bk_linear **out, const float *w, const float *bias, int in, int n_out,
      int dtype),
     (IN(be), out, w, bias, in, n_out, dtype))
WRAP(int, linear_create_prepared,
     (const m2p_backend *be, bk_linear **out, const bk_prepared *pw, const float *bias, int in,
      int n_out, int dtype),
     (IN(be), out, pw, bias, in, n_out, dtype))
WRAP_VOID(linear_prepared, (const m2p_backend *be, const bk_linear *l, bk_prepared *pw),
          (IN(be), l, pw))
WRAP(int, linear_forward,
     (const m2p_backend *be, bk_linear *l, const float *x, int rows, float *y,
      const float *residual),
     (IN(be), l, x, rows, y, residual))
WRAP(int, linear_forward_pre,
     (const m2p_backend *be, bk_linear *l, const bk_pre *pre, const float *x, int B, int HW,
      float *tmp, float *y, const float *residual),
     (IN(be), l, pre, x, B, HW, tmp, y, residual))
WRAP(int, linear_forward_bf16,
     (const m2p_backend *be, bk_linear *l, const bk_pre *pre, const float *x, int B, int HW,
      float *tmp, float *y),
     (IN(be), l, pre, x, B, HW, tmp, y))
WRAP(int, conv_forward_bf16,
     (const m2p_backend *be, bk_conv *c, const bk_pre *pre, const float *x, int B, int H, int W,
      float *tmp, float *y),
     (IN(be), c, pre, x, B, H, W, tmp, y))
WRAP_VOID(linear_free, (const m2p_backend *be, bk_linear *l), (IN(be), l))
WRAP_VOID(prepared_tag, (const m2p_backend *be, int dtype, char *buf, size_t n),
          (IN(be), dtype, buf, n))
WRAP(int, attention,
     (const m2p_backend *be, const float *q, int q_stride, const float *k, const float *v,
      int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out),
     (IN(be), q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))
WRAP(int, attention_bf16,
     (const m2p_backend *be, const float *q, int q_stride, const float *k, const float *v,
      int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out),
     (IN(be), q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))
WRAP(int, attention_bf16io,
     (const m2p_backend *be, const float *qb, size_t q_off, int q_stride, const float *kvb,
      size_t k_off, size_t v_off, int kv_stride, int B, int Lq, int Lk, int heads, int dh,
      float scale, int causal, float *out),
     (IN(be), qb, q_off, q_stride, kvb, k_off, v_off, kv_stride, B, Lq, Lk, heads, dh, scale,
      causal, out))
WRAP(int, linear_forward_bf16in,
     (const m2p_backend *be, bk_linear *l, const float *x, int rows, float *y,
      const float *residual),
     (IN(be), l, x, rows, y, residual))
WRAP(int, groupnorm,
     (const m2p_backend *be, const float *x, int B, int HW, int C, int groups, float eps,
      const float *gamma, const float *beta, int silu, float *y),
     (IN(be), x, B, HW, C, groups, eps, gamma, beta, silu, y))
WRAP(int, layernorm,
     (const m2p_backend *be, const float *x, int rows, int C, float eps, const float *gamma,
      const float *beta, float *y),
     (IN(be), x, rows, C, eps, gamma, beta, y))
WRAP(int, geglu, (const m2p_backend *be, const float *x, int rows, int D, float *y),
     (IN(be), x, rows, D, y))
WRAP(int, silu, (const m2p_backend *be, float *x, size_t n), (IN(be), x, n))
WRAP(int, gelu, (const m2p_backend *be, float *x, size_t n), (IN(be), x, n))
WRAP(int, quick_gelu, (const m2p_backend *be, float *x, size_t n), (IN(be), x, n))
WRAP(int, relu, (const m2p_backend *be, float *x, size_t n), (IN(be), x, n))
WRAP(int, tanh_scale, (const m2p_backend *be, float *x, size_t n, float s), (IN(be), x, n, s))
WRAP(int, add, (const m2p_backend *be, float *y, const float *x, size_t n), (IN(be), y, x, n))
WRAP(int, scale, (const m2p_backend *be, float *y, float s, size_t n), (IN(be), y, s, n))
WRAP(int, add_channel_bias, (const m2p_backend *be, float *y, const float *v, int B, int HW, int C),
     (IN(be), y, v, B, HW, C))
WRAP(int, upsample2x, (const m2p_backend *be, const float *x, int B, int H, int W, int C, float *y),
     (IN(be), x, B, H, W, C, y))
WRAP(int, concat_channels,
     (const m2p_backend *be, const float *a, int Ca, const float *b, int Cb, int B, int HW,
      float *y),
     (IN(be), a, Ca, b, Cb, B, HW, y))
WRAP(int, nchw_to_nhwc,
     (const m2p_backend *be, const float *x, int B, int C, int H, int W, float *y),
     (IN(be), x, B, C, H, W, y))
WRAP(int, nhwc_to_nchw,
     (const m2p_backend *be, const float *x, int B, int H, int W, int C, float *y),
     (IN(be), x, B, H, W, C, y))
WRAP(int, resize_nearest,
     (const m2p_backend *be, const float *x, int B, int H, int W, int C, int Ho, int Wo, float *y),
     (IN(be), x, B, H, W, C, Ho, Wo, y))
WRAP(int, embed,
     (const m2p_backend *be, const int32_t *ids, int B, int L, const float *tok, const float *pos,
      int C, float *out),
     (IN(be), ids, B, L, tok, pos, C, out))
WRAP(int, blend_tile,
     (const m2p_backend *be, float *out, float *wsum, const float *tile, int BC, int H, int W,
      int Y0, int X0, int TH, int TW, const float *wy, const float *wx),
     (IN(be), out, wsum, tile, BC, H, W, Y0, X0, TH, TW, wy, wx))
WRAP(int, blend_finish, (const m2p_backend *be, float *out, const float *wsum, int BC, size_t HW),
     (IN(be), out, wsum, BC, HW))

static guard g_state;
static const m2p_backend guard_backend = {
    .name = "guard",
    .ctx = &g_state,
#define F(n) .n = g_##n
    F(bf16_supported),
    F(set_threads),
    F(alloc),
    .alloc_scratch = g_alloc, /* the guard keeps activations in its own pages too */
    F(free),
    F(upload),
    F(download),
    F(zero),
    F(copy),
    F(conv_create),
    F(conv_create_prepared),
    F(conv_prepared),
    F(conv_forward),
    F(conv_forward_pre),
    F(conv_out_hw),
    F(conv_free),
    F(linear_create),
    F(linear_create_prepared),
    F(linear_prepared),
    F(linear_forward),
    F(linear_forward_pre),
    F(linear_forward_bf16),
    F(conv_forward_bf16),
    F(linear_free),
    F(prepared_tag),
    F(attention),
    F(attention_bf16),
    F(attention_bf16io),
    F(linear_forward_bf16in),
    F(groupnorm),
    F(layernorm),
    F(geglu),
    F(silu),
    F(gelu),
    F(quick_gelu),
    F(relu),
    F(tanh_scale),
    F(add),
    F(scale),
    F(add_channel_bias),
    F(upsample2x),
    F(concat_channels),
    F(nchw_to_nhwc),
    F(nhwc_to_nchw),
    F(resize_nearest),
    F(embed),
    F(blend_tile),
    F(blend_finish),
#undef F
};

/* A fault on guarded memory: say so (the backtrace of a core dump shows where). */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    static const char msg[] = "test_backend_guard: SIGSEGV: code outside the backend touched "
                              "backend memory (or a plain crash); run it under gdb to see "
                              "where\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    (void)si;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- checks ------------------------------------------------------------------------------ */

/* Every entry of the table is set, and none is the CPU backend's own function (a new entry the
 * guard does not wrap would bypass it). */
static void test_table_complete(void)
{
    typedef void (*fn)(void);
    const m2p_backend *cpu = m2p_backend_cpu();
    size_t first = offsetof(m2p_backend, bf16_supported);
    size_t n = (sizeof(m2p_backend) - first) / sizeof(fn);
    CHECK(first + n * sizeof(fn) == sizeof(m2p_backend));
    CHECK(n >= 40);
    for (size_t i = 0; i < n; i++) {
        fn a, b;
        memcpy(&a, (const char *)&guard_backend + first + i * sizeof(fn), sizeof a);
        memcpy(&b, (const char *)cpu + first + i * sizeof(fn), sizeof b);
        if (!a || !b || a == b)
            fprintf(stderr, "backend table entry %zu: guard %p, cpu %p\n", i, (void *)(intptr_t)a,
                    (void *)(intptr_t)b);
        CHECK(a != NULL);
        CHECK(b != NULL);
        CHECK(a != b);
    }
    CHECK_STR(cpu->name, "cpu");
}

/* The guard is armed: a read of its memory outside a call faults (in a child), and the same
 * read inside a call does not (upload / download go through it). */
static void test_guard_faults(void)
{
    const m2p_backend *be = &guard_backend;
    float *p = be->alloc(be, 1000);
    CHECK(p != NULL);
    if (!p)
        return;
    float src[1000], back[1000];
    for (int i = 0; i < 1000; i++)
        src[i] = (float)i * 0.5f;
    CHECK_INT(be->upload(be, p, src, 1000), 0);
    CHECK_INT(be->silu(be, p, 1000), 0);
    CHECK_INT(be->download(be, back, p, 1000), 0);
    CHECK(back[2] > 0.73f && back[2] < 0.74f); /* silu(1) = 0.7311 */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        volatile float v = p[999]; /* must fault */
        (void)v;
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    /* SIGSEGV, or ASan's report of it (exit 1) where its handler stays */
    CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
    be->free(be, p);
}

/* FNV-1a over what a run produced, so two runs compare bit for bit. */
typedef struct digest {
    uint64_t h;
    long taps, values, previews;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ c[i]) * 1099511628211ull;
}

static void on_tap(const char *name, const float *data, int ndim, const int64_t *shape, void *ud)
{
    digest *d = ud;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    mix(d, name, strlen(name));
    mix(d, shape, (size_t)ndim * sizeof *shape);
    mix(d, data, n * sizeof *data);
    d->taps++;
    d->values += (long)n;
}

static int on_step(const m2p_step_info *info, void *ud)
{
    digest *d = ud;
    if (info->preview_rgb) {
        mix(d, info->preview_rgb,
            (size_t)info->variation_count * info->preview_w * info->preview_h * 3);
        d->previews++;
    }
    return 0;
}

typedef struct run_cfg {
    const char *what, *model, *taesd;
    int dtype, steps, size_w, size_h, variations, use_taesd, vae_tile, preview, taps;
    float guidance;
} run_cfg;

/* One generate on backend be (NULL: the CPU's): the digest of every tap, preview and image. */
static int run(const run_cfg *c, const m2p_backend *be, digest *d)
{
    memset(d, 0, sizeof *d);
    d->h = 1469598103934665603ull;
    m2p_model_params mp = m2p_model_default_params();
    mp.compute_dtype = c->dtype;
    mp.weight_cache = 0;
    mp.taesd = c->taesd;
    m2p_model *m = NULL;
    int rc = pipeline_model_load(test_fixture(c->model), &mp, be, &m);
    if (rc) {
        fprintf(stderr, "%s: %s\n", c->what, m2p_errmsg());
        return rc;
    }
    if (c->taps) {
        pipeline_set_tap(m, on_tap, d);
        unet_set_tap(pipeline_unet(m), on_tap, d);
        if (pipeline_vae(m))
            vae_set_tap(pipeline_vae(m), on_tap, d);
        if (pipeline_taesd(m))
            taesd_set_tap(pipeline_taesd(m), on_tap, d);
        clip_text_set_tap(pipeline_text_encoder(m, 0), on_tap, d);
        if (pipeline_text_encoder(m, 1))
            clip_text_set_tap(pipeline_text_encoder(m, 1), on_tap, d);
    }
    m2p_gen_params gp = m2p_gen_default_params();
    gp.prompt = "a lighthouse at dusk, oil painting";
    gp.negative_prompt = c->guidance > 1 ? "blurry" : NULL;
    gp.steps = c->steps;
    gp.guidance = c->guidance;
    gp.width = c->size_w;
    gp.height = c->size_h;
    gp.seed = 1234;
    gp.variations = c->variations;
    gp.use_taesd = c->use_taesd;
    gp.vae_tile = c->vae_tile;
    gp.preview = c->preview;
    gp.want_raw = 1;
    gp.callback = on_step;
    gp.user_data = d;
    m2p_image img[4];
    rc = m2p_generate(m, &gp, img);
    if (rc)
        fprintf(stderr, "%s: %s\n", c->what, m2p_errmsg());
    for (int i = 0; !rc && i < c->variations; i++) {
        mix(d, img[i].rgb, (size_t)img[i].width * img[i].height * 3);
        mix(d, img[i].raw, (size_t)img[i].width * img[i].height * 3 * sizeof(float));
        m2p_image_free(&img[i]);
    }
    m2p_model_free(m);
    return rc;
}

static void compare(const run_cfg *c)
{
    digest cpu, gd;
    guard *g = &g_state;
    long calls0 = g->calls;
    int rc1 = run(c, NULL, &cpu);
    int rc2 = run(c, &guard_backend, &gd);
    CHECK_INT(rc1, 0);
    CHECK_INT(rc2, 0);
    printf("%-34s %4ld taps (%ld values), %ld previews, %6ld guarded calls: %s\n", c->what, gd.taps,
           gd.values, gd.previews, g->calls - calls0, cpu.h == gd.h ? "same bits" : "DIFFERENT");
    CHECK(cpu.h == gd.h);
    CHECK(cpu.taps == gd.taps);
    CHECK(!c->taps || gd.taps > 10);
    CHECK(!c->preview || gd.previews == c->steps);
    CHECK(g->calls - calls0 > 100);
    CHECK_INT(g->n, 0); /* every buffer given back when the model was freed */
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    g_state.inner = m2p_backend_cpu();
    g_state.page = (size_t)sysconf(_SC_PAGESIZE);

    test_table_complete();
    test_guard_faults();

    char taesd[1024]; /* test_fixture's buffer is reused by the next call */
    snprintf(taesd, sizeof taesd, "%s", test_fixture("taesd/model"));
    int dt[2] = {M2P_DTYPE_F32, M2P_DTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        if (dt[k] == M2P_DTYPE_BF16 && !op_bf16_supported()) {
            test_skip("bf16 runs: this CPU has no avx512_bf16 / AMX");
            break;
        }
        const char *f = dt[k] ? " bf16" : " f32";
        char w[6][64];
        snprintf(w[0], sizeof w[0], "sd-tiny, taps, TAESD previews%s", f);
        snprintf(w[1], sizeof w[1], "sd-tiny, TAESD decoder%s", f);
        snprintf(w[2], sizeof w[2], "sd-tiny, tiled VAE, odd size%s", f);
        snprintf(w[3], sizeof w[3], "sd2-tiny, CFG, taps%s", f);
        snprintf(w[4], sizeof w[4], "sdxl-tiny, CFG, taps%s", f);
        run_cfg runs[] = {
            /* every tap of every network, 2 variations, TAESD previews each step */
            {w[0], "sd-tiny/model", taesd, dt[k], 2, 64, 64, 2, 0, 0, M2P_PREVIEW_TAESD, 1, 8.5f},
            {w[1], "sd-tiny/model", taesd, dt[k], 2, 64, 64, 1, 1, 0, M2P_PREVIEW_LATENT_RGB, 0,
             8.5f},
            /* 144 x 200: latents 18 x 25, tiles of 8 with overlap; odd sizes take the UNet's
             * nearest resize instead of the 2x upsample */
            {w[2], "sd-tiny/model", NULL, dt[k], 2, 200, 144, 1, 0, 8, 0, 0, 8.5f},
            {w[3], "sd2-tiny/model", NULL, dt[k], 2, 64, 64, 1, 0, 0, 0, 1, 7.5f},
            {w[4], "sdxl-tiny/model", NULL, dt[k], 2, 64, 64, 1, 0, 0, 0, 1, 5.0f},
        };
        for (size_t i = 0; i < sizeof runs / sizeof *runs; i++)
            compare(&runs[i]);
    }
    printf("guard backend: %ld calls, at most %ld buffers alive\n", g_state.calls, g_state.peak);
    free(g_state.buf);
    TEST_DONE();
}
