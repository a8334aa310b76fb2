/*
 * winograd.c — f32 3x3 convolutions (stride 1, padding 1, NHWC) by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2016): each 6x6 input tile d and 3x3 filter g give the 4x4 output tile A^T [(G g G^T) .
 * (B^T d B)] A, so a conv's multiply-adds become 36 matrix products of (tiles x cin) by
 * (cin x cout), 4 times fewer than direct convolution's. Used for the f32 convs on big maps
 * (dnnl_ops.c decides when), where oneDNN runs direct convolutions near the cores' peak.
 *
 * The interpolation points are 0, 1, -1, 2, -2 and infinity (Lavin's matrices). The filter
 * transform's weights are 1/4, 1/6, 1/12 and 1/24 (in f32); the input and output transforms
 * take integer weights only (1, 2, 4, 5, 8). Against double-precision convolution the error is
 * 3-5 times a direct f32 conv's (tests/tensor/test_ops.c; BENCHMARKS.md).
 *
 * Work is split over blocks of tiles, each done whole by one thread: its input transform into
 * V [nt][36][cin], the 36 products into M [nt][36][cout] (register tiles of WR tiles x 16
 * output channels, the weights packed in panels of 16 columns), and the output transform
 * with the bias and residual into y. V and M (about 3 MiB) stay in the caches between the
 * steps.
 */
#include "core/error.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define WT 36  /* transformed positions of a 6x6 tile */
#define WN 16  /* output channels of a packed weight panel */
#define KC 256 /* input channels per pass of a register tile */
#if VF_W == 8
#define WR 6 /* tiles per register tile: 12 accumulators of the 16 ymm registers */
#else
#define WR 3 /* 12 accumulators of the 16 xmm registers */
#endif
#define WV (WN / VF_W)

#define INLINE static inline __attribute__((always_inline))

/* r = G g along one direction of a filter */
INLINE void g3(vf g0, vf g1, vf g2, vf r[6])
{
    const float q = 1.0f / 4, s = 1.0f / 6, t = 1.0f / 12, e = 1.0f / 24;
    r[0] = q * g0;
    r[1] = -s * (g0 + g2) - s * g1;
    r[2] = -s * (g0 + g2) + s * g1;
    r[3] = e * g0 + t * g1 + s * g2;
    r[4] = e * g0 - t * g1 + s * g2;
    r[5] = g2;
}

/* u [36][cout / 16][cin][16] = G g G^T of every filter g of w [3][3][cin][ldw] (HWIO, the first
 * cout of ldw output channels), 16 output channels at a time in vectors (f32, FMA: the
 * rounding of u is a few ulps) */
void op_winograd_weights(const float *w, int cin, int cout, int ldw, float *u)
{
    const size_t panel = (size_t)cin * WN, pos = (size_t)cin * cout;
#pragma omp parallel for schedule(static) collapse(2)
    for (int p = 0; p < cout / WN; p++)
        for (int i = 0; i < cin; i++)
            for (int v = 0; v < WV; v++) {
                vf g[9], h[6][3];
                for (int k = 0; k < 9; k++)
                    g[k] = vf_load(w + ((size_t)k * cin + i) * ldw + p * WN + v * VF_W);
                for (int j = 0; j < 3; j++) { /* h = G g, column j */
                    vf r[6];
                    g3(g[j], g[3 + j], g[6 + j], r);
                    for (int a = 0; a < 6; a++)
                        h[a][j] = r[a];
                }
                float *uo = u + (size_t)p * panel + (size_t)i * WN + v * VF_W;
                for (int a = 0; a < 6; a++) { /* u = h G^T, row a */
                    vf r[6];
                    g3(h[a][0], h[a][1], h[a][2], r);
                    for (int b = 0; b < 6; b++)
                        vf_store(uo + (size_t)(a * 6 + b) * pos, r[b]);
                }
            }
}

/* r = B^T d along one direction of the tile */
INLINE void bt6(vf d0, vf d1, vf d2, vf d3, vf d4, vf d5, vf r[6])
{
    vf four = vf_splat(4.0f), five = vf_splat(5.0f), two = vf_splat(2.0f);
    r[0] = four * d0 - five * d2 + d4;
    r[1] = (d3 + d4) - four * (d1 + d2);
    r[2] = (d4 - d3) + four * (d1 - d2);
    r[3] = (d4 - d2) + two * (d3 - d1);
    r[4] = (d4 - d2) + two * (d1 - d3);
    r[5] = four * d1 - five * d3 + d5;
}

/* r = B^T d (F(2x2)) along one direction of a tile */
INLINE void bt4(vf d0, vf d1, vf d2, vf d3, vf r[4])
{
    r[0] = d0 - d2;
    r[1] = d1 + d2;
    r[2] = d2 - d1;
    r[3] = d1 - d3;
}

/* B^T d along one direction of an n x n input tile: F(4x4)'s (n = 6) or F(2x2)'s (n = 4) */
INLINE void bt_n(int n, const vf d[6], vf r[6])
{
    if (n == 6)
        bt6(d[0], d[1], d[2], d[3], d[4], d[5], r);
    else
        bt4(d[0], d[1], d[2], d[3], r);
}

/* r = A^T m along one direction */
INLINE void at6(vf m0, vf m1, vf m2, vf m3, vf m4, vf m5, vf r[4])
{
    vf a = m1 + m2, s = m1 - m2, b = m3 + m4, t = m3 - m4;
    r[0] = m0 + a + b;
    r[1] = s + vf_splat(2.0f) * t;
    r[2] = a + vf_splat(4.0f) * b;
    r[3] = s + vf_splat(8.0f) * t + m5;
}

/* r = A^T m (F(2x2)) along one direction */
INLINE void at4(vf m0, vf m1, vf m2, vf m3, vf r[2])
{
    r[0] = m0 + m1 + m2;
    r[1] = m1 - m2 - m3;
}

/* A^T m along one direction of an n x n tile: F(4x4)'s (n = 6) or F(2x2)'s (n = 4) */
INLINE void at_n(int n, const vf m[6], vf r[4])
{
    if (n == 6)
        at6(m[0], m[1], m[2], m[3], m[4], m[5], r);
    else
        at4(m[0], m[1], m[2], m[3], r);
}

/* The output transform of one tile: the n x n products m[xi ps] (n = 6 or 4, a constant at
 * each call) give (n - 2) x (n - 2) outputs, of which the first ny x nx are stored, plus the
 * bias and the residual, at y[i row + j ldy] (residual at the same offsets). */
INLINE void output_tile_at(int n, const float *m, size_t ps, vf bias, int ny, int nx, float *y,
                           const float *residual, size_t row, size_t ldy)
{
    vf t1[4][6];
    for (int j = 0; j < n; j++) {
        vf d[6], r[4];
        for (int i = 0; i < n; i++)
            d[i] = vf_load(m + (size_t)(i * n + j) * ps);
        at_n(n, d, r);
        for (int i = 0; i < n - 2; i++)
            t1[i][j] = r[i];
    }
    for (int i = 0; i < ny; i++) {
        vf r[4];
        at_n(n, t1[i], r);
        for (int j = 0; j < nx; j++) {
            size_t off = i * row + j * ldy;
            vf o = r[j] + bias;
            if (residual)
                o += vf_load(residual + off);
            vf_store(y + off, o);
        }
    }
}

typedef struct {
    const float *u, *bias, *x, *residual;
    float *y;
    int cin, cout, ldy, B, H, W, th, tw; /* ldy: y's and the residual's channels a pixel */
    long ntiles;
    int nt; /* tiles per block, a multiple of WR */
} wino_args;

/* Image b and the top-left output pixel (y0, x0) of tile t, of m x m output pixels, th x tw
 * tiles an image */
static void tile_origin(long t, int th, int tw, int m, int *b, int *y0, int *x0)
{
    long per = (long)th * tw, rest = t % per;
    *b = (int)(t / per);
    *y0 = (int)(rest / tw) * m;
    *x0 = (int)(rest % tw) * m;
}

/* The offsets (pixel times cin) in an H x W image of the n x n input tile at (y0, x0), and ok
 * where the pixel is inside (off 0 elsewhere); 1 when all of them are. */
static int tile_pixels(int y0, int x0, int n, int H, int W, int cin, ptrdiff_t *off, char *ok)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int yy = y0 + i, xx = x0 + j;
            ok[i * n + j] = yy >= 0 && yy < H && xx >= 0 && xx < W;
            off[i * n + j] = ok[i * n + j] ? ((ptrdiff_t)yy * W + xx) * cin : 0;
        }
    return y0 >= 0 && x0 >= 0 && y0 + n <= H && x0 + n <= W;
}

/* The input transform of one n x n tile (n = 6 or 4, a constant at each call, as is full, so
 * the loops unroll into registers and the branch is compiled away): channels from xb +
 * off[i n + j] where ok[i n + j] (all of them when full), zeros elsewhere, position xi = i n + j
 * into vr + xi ps. Each column is loaded into registers and transformed at once. */
INLINE void input_tile_at(int n, const float *xb, const ptrdiff_t *off, const char *ok, int full,
                          int cin, size_t ps, float *vr)
{
    for (int c = 0; c < cin; c += VF_W) {
        vf t1[6][6];
        for (int j = 0; j < n; j++) {
            vf d[6], r[6];
            for (int i = 0; i < n; i++)
                d[i] = full || ok[i * n + j] ? vf_load(xb + off[i * n + j] + c) : vf_splat(0.0f);
            bt_n(n, d, r);
            for (int i = 0; i < n; i++)
                t1[i][j] = r[i];
        }
        for (int i = 0; i < n; i++) {
            vf r[6];
            bt_n(n, t1[i], r);
            for (int j = 0; j < n; j++)
                vf_store(vr + (size_t)(i * n + j) * ps + c, r[j]);
        }
    }
}

/* The input transform of tile t (row `row` of the block) into v [nt][36][cin] */
static void input_tile(const wino_args *a, long t, int row, float *v)
{
    const int cin = a->cin, H = a->H, W = a->W;
    int b, y0, x0;
    tile_origin(t, a->th, a->tw, 4, &b, &y0, &x0);
    const float *xb = a->x + (size_t)b * H * W * cin;
    ptrdiff_t off[36];
    char ok[36];
    float *vr = v + (size_t)row * WT * cin;
    /* the input tile starts a pixel up and left (padding 1) */
    if (tile_pixels(y0 - 1, x0 - 1, 6, H, W, cin, off, ok))
        input_tile_at(6, xb, off, ok, 1, cin, cin, vr);
    else
        input_tile_at(6, xb, off, ok, 0, cin, cin, vr);
}

/* The output transform of row `row` of m [nt][36][cout] into tile t of y, with the bias and
 * the residual */
static void output_tile(const wino_args *a, long t, int row, const float *m)
{
    const int cout = a->cout, H = a->H, W = a->W;
    int b, y0, x0;
    tile_origin(t, a->th, a->tw, 4, &b, &y0, &x0);
    const int ny = H - y0 < 4 ? H - y0 : 4, nx = W - x0 < 4 ? W - x0 : 4;
    const float *mr = m + (size_t)row * WT * cout;
    const size_t at = ((size_t)b * H * W + (size_t)y0 * W + x0) * a->ldy;
    for (int c = 0; c < cout; c += VF_W)
        output_tile_at(6, mr + c, cout, a->bias ? vf_load(a->bias + c) : vf_splat(0.0f), ny, nx,
                       a->y + at + c, a->residual ? a->residual + at + c : NULL, (size_t)W * a->ldy,
                       a->ldy);
}

/* c [WR][16] (row stride ldc) = (acc ? c : 0) + a [WR][kc] (row stride lda) x b [kc][16] */
INLINE void gemm_tile(int kc, const float *a, int lda, const float *b, float *c, int ldc, int acc)
{
    vf s[WR][WV];
    for (int r = 0; r < WR; r++)
        for (int v = 0; v < WV; v++)
            s[r][v] = acc ? vf_load(c + (size_t)r * ldc + v * VF_W) : vf_splat(0.0f);
    for (int k = 0; k < kc; k++) {
        vf bv[WV];
        for (int v = 0; v < WV; v++)
            bv[v] = vf_load(b + (size_t)k * WN + v * VF_W);
        for (int r = 0; r < WR; r++) {
            float av = a[(size_t)r * lda + k];
            for (int v = 0; v < WV; v++)
                s[r][v] += av * bv[v];
        }
    }
    for (int r = 0; r < WR; r++)
        for (int v = 0; v < WV; v++)
            vf_store(c + (size_t)r * ldc + v * VF_W, s[r][v]);
}

/* m[xi] = v[xi] x u[xi] for the first nr rows (a multiple of WR) of each of the 36 products */
static void products(const wino_args *a, int nr, const float *v, float *m)
{
    const int cin = a->cin, cout = a->cout, lda = WT * cin, ldc = WT * cout;
    for (int xi = 0; xi < WT; xi++) {
        const float *va = v + (size_t)xi * cin, *ua = a->u + (size_t)xi * cin * cout;
        float *ma = m + (size_t)xi * cout;
        for (int k0 = 0; k0 < cin; k0 += KC) {
            int kc = cin - k0 < KC ? cin - k0 : KC;
            for (int j = 0; j < cout; j += WN) {
                const float *panel = ua + (size_t)j * cin + (size_t)k0 * WN;
                for (int r = 0; r < nr; r += WR)
                    gemm_tile(kc, va + (size_t)r * lda + k0, lda, panel, ma + (size_t)r * ldc + j,
                              ldc, k0 > 0);
            }
        }
    }
}

static void run_block(const wino_args *a, long blk, float *v, float *m)
{
    long t0 = blk * a->nt;
    int n = a->ntiles - t0 < a->nt ? (int)(a->ntiles - t0) : a->nt;
    int nr = (n + WR - 1) / WR * WR;
    for (int r = 0; r < n; r++)
        input_tile(a, t0 + r, r, v);
    if (nr > n) /* the last block's rows past its tiles */
        memset(v + (size_t)n * WT * a->cin, 0, (size_t)(nr - n) * WT * a->cin * sizeof(float));
    products(a, nr, v, m);
    for (int r = 0; r < n; r++)
        output_tile(a, t0 + r, r, m);
}

int op_winograd_conv(const float *u, const float *bias, int cin, int cout, const float *x, int B,
                     int H, int W, float *y, int ldy, const float *residual)
{
    if (cin <= 0 || cout <= 0 || cin % VF_W || cout % WN || ldy < cout || B <= 0 || H <= 0 ||
        W <= 0)
        return m2p_error(M2P_EINVAL, "winograd conv: bad shape %d->%d at %dx%dx%d", cin, cout, B, H,
                         W);
    wino_args a = {u, bias, x, residual,    y,           cin, cout, ldy,
                   B, H,    W, (H + 3) / 4, (W + 3) / 4, 0,   0};
    a.ntiles = (long)B * a.th * a.tw;
    /* Every block reads all of u, so V and M of a block get a budget as big as u, within 3-12
     * MiB, but at least 48 tiles (each panel of weights serves 8 register tiles or more), and
     * there are at least two blocks a thread. On the AVX2 EPYC (bench_ops, ms), against 3 MiB
     * and four blocks a thread: 512 channels at 64x64 (u 38 MB) 45 -> 37, 320 at 64x64 (15 MB)
     * 16 -> 13, 512 at 128x128 141-148 -> 138-139; at 128 channels (2.4 MB) 12 MiB blocks took
     * 157-166 against 140 at 512x512. Earlier, with 3 MiB: the 512-channel convs at 128x128
     * 134-146 ms from 48 tiles on against 168-231 below. */
    int threads = omp_get_max_threads();
    const long ub = (long)(op_winograd_weights_floats(cin, cout) * sizeof(float));
    const long budget = ub < (3L << 20) ? 3L << 20 : ub > (12L << 20) ? 12L << 20 : ub;
    long nt = budget / ((long)WT * (cin + cout) * 4);
    nt = nt >= 48 ? nt : 48;
    long fair = (a.ntiles + 2L * threads - 1) / (2L * threads);
    nt = nt < fair ? nt : fair;
    nt = (nt + WR - 1) / WR * WR;
    a.nt = (int)(nt < WR ? WR : nt);
    long nblocks = (a.ntiles + a.nt - 1) / a.nt;
    size_t vn = (size_t)WT * a.nt * cin, mn = (size_t)WT * a.nt * cout;
    int failed = 0;
#pragma omp parallel
    {
        float *buf = ops_scratch(OPS_SCRATCH_WINOGRAD, (vn + mn) * sizeof(float));
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (long blk = 0; blk < nblocks; blk++)
            if (buf)
                run_block(&a, blk, buf, buf + vn);
    }
    return failed ? m2p_error(M2P_ENOMEM, "out of memory for a conv's scratch") : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* F(2x2, 3x3) on small maps, the weights transformed as they are used                      */
/* ---------------------------------------------------------------------------------------- */

/* On the UNet's 16x16 and 8x8 levels (1280 channels, 16-64 tiles of 4x4) F(4x4) loses: its
 * transformed weights (4 times the conv's, 236 MB at 1280 channels) cost more to make or read
 * at each call than its products save. F(2x2, 3x3) takes 16 products of (tiles x cin) by (cin
 * x cout), 2.25 times fewer multiplies than direct convolution, and its weights are never
 * made whole: a thread takes a group of output channels, transforms its weights a chunk of
 * input channels at a time (G g G^T, 16 values a filter, into L2-sized pieces) from the conv's
 * own weights, and multiplies every tile by that chunk before it makes the next one. The
 * input transform (all tiles, all channels: 5 MB at 16x16 with 1280 channels) is made once,
 * shared by the threads. Points 0, 1, -1 and infinity: the transforms take 1/2 and integers,
 * so the error is about a direct conv's. */
#define W2T 16  /* transformed positions of a 4x4 tile */
#define W2P 4   /* panels of WN output channels in a group at most */
/* input channels of a weight chunk: on the AVX2 EPYC 128-256 ran the same, 64 slower (1280
 * channels at 32x32: 109 against 84-86 ms) */
#define W2KC 128
/* floats past each position of a weight chunk: weights_chunk2 stores a filter's 16 values at
 * 16 positions np x kc x 16 floats apart (32 KiB at 4 panels, 128 channels), all in one set
 * of L1 (8 ways); 64 bytes more spread them (AVX2 EPYC: 1280 channels at 8x8 10.7-11.0 ->
 * 10.0-10.3 ms, at 16x16 25.2-25.9 -> 24.4-24.5) */
#define UPAD 16

/* Floats from one position of a weight chunk of np panels and kc input channels to the next */
static inline size_t chunk_pos(int np, int kc)
{
    return (size_t)np * kc * WN + UPAD;
}

typedef struct {
    const float *w, *bias, *x, *residual;
    float *y, *v; /* v [16][ntp][cin]: every tile's input transform */
    int cin, cout, ldy, B, H, W, th, tw, ntp, np;
    long ntiles;
    size_t so, sib, sii, st; /* w's offsets: a block of 8 outputs, of 8 inputs, an input, a tap */
} wino2_args;

/* r = G g along one direction of a filter */
INLINE void g4(vf g0, vf g1, vf g2, vf r[4])
{
    vf h = vf_splat(0.5f) * (g0 + g2), k = vf_splat(0.5f) * g1;
    r[0] = g0;
    r[1] = h + k;
    r[2] = h - k;
    r[3] = g2;
}

/* The input transform of tile t into v[xi][t] (zeros for the rows past the last tile) */
static void input_tile2(const wino2_args *a, long t)
{
    const int cin = a->cin, H = a->H, W = a->W;
    const size_t ps = (size_t)a->ntp * cin; /* one position's rows */
    float *vr = a->v + (size_t)t * cin;
    if (t >= a->ntiles) {
        for (int xi = 0; xi < W2T; xi++)
            memset(vr + xi * ps, 0, (size_t)cin * sizeof(float));
        return;
    }
    int b, y0, x0;
    tile_origin(t, a->th, a->tw, 2, &b, &y0, &x0);
    const float *xb = a->x + (size_t)b * H * W * cin;
    ptrdiff_t off[16];
    char ok[16];
    if (tile_pixels(y0 - 1, x0 - 1, 4, H, W, cin, off, ok))
        input_tile_at(4, xb, off, ok, 1, cin, ps, vr);
    else
        input_tile_at(4, xb, off, ok, 0, cin, ps, vr);
}

/* u [16][np][kc][16] = G g G^T of the filters of input channels k0.. k0 + kc and output
 * channels o0.. o0 + 16 np */
static void weights_chunk2(const wino2_args *a, int o0, int np, int k0, int kc, float *u)
{
    for (int pp = 0; pp < np; pp++)
        for (int i = 0; i < kc; i++)
            for (int v = 0; v < WV; v++) {
                int o = o0 + pp * WN + v * VF_W, ci = k0 + i;
                const float *src = a->w + (size_t)(o / 8) * a->so + o % 8 +
                                   (size_t)(ci / 8) * a->sib + (size_t)(ci % 8) * a->sii;
                vf h[4][3];
                for (int j = 0; j < 3; j++) { /* h = G g, column j */
                    vf r[4];
                    g4(vf_load(src + j * a->st), vf_load(src + (3 + j) * a->st),
                       vf_load(src + (6 + j) * a->st), r);
                    for (int q = 0; q < 4; q++)
                        h[q][j] = r[q];
                }
                float *uo = u + ((size_t)pp * kc + i) * WN + v * VF_W;
                const size_t pos = chunk_pos(np, kc);
                for (int q = 0; q < 4; q++) { /* u = h G^T, row q */
                    vf r[4];
                    g4(h[q][0], h[q][1], h[q][2], r);
                    for (int s = 0; s < 4; s++)
                        vf_store(uo + (size_t)(q * 4 + s) * pos, r[s]);
                }
            }
}

/* The output transform of group g's m [16][np][ntp][16] into y, with the bias and residual */
static void output_group2(const wino2_args *a, int o0, int np, const float *m)
{
    const int H = a->H, W = a->W;
    const size_t pos = (size_t)np * a->ntp * WN;
    for (long t = 0; t < a->ntiles; t++) {
        int b, y0, x0;
        tile_origin(t, a->th, a->tw, 2, &b, &y0, &x0);
        const int ny = H - y0 < 2 ? H - y0 : 2, nx = W - x0 < 2 ? W - x0 : 2;
        const size_t at = ((size_t)b * H * W + (size_t)y0 * W + x0) * a->ldy;
        for (int pp = 0; pp < np; pp++)
            for (int v = 0; v < WV; v++) {
                const int c = o0 + pp * WN + v * VF_W;
                output_tile_at(4, m + ((size_t)pp * a->ntp + t) * WN + v * VF_W, pos,
                               a->bias ? vf_load(a->bias + c) : vf_splat(0.0f), ny, nx,
                               a->y + at + c, a->residual ? a->residual + at + c : NULL,
                               (size_t)W * a->ldy, a->ldy);
            }
    }
}

/* Output channels o0.. o0 + 16 np: their weights chunk by chunk, the 16 products, the output
 * transform. u: 16 x np x W2KC x 16 floats, m: 16 x np x ntp x 16. */
static void run_group2(const wino2_args *a, int o0, int np, float *u, float *m)
{
    const int cin = a->cin, ntp = a->ntp;
    for (int k0 = 0; k0 < cin; k0 += W2KC) {
        int kc = cin - k0 < W2KC ? cin - k0 : W2KC;
        weights_chunk2(a, o0, np, k0, kc, u);
        for (int xi = 0; xi < W2T; xi++) {
            const float *va = a->v + (size_t)xi * ntp * cin + k0;
            const float *ux = u + xi * chunk_pos(np, kc);
            float *mx = m + (size_t)xi * np * ntp * WN;
            for (int r = 0; r < ntp; r += WR)
                for (int pp = 0; pp < np; pp++)
                    gemm_tile(kc, va + (size_t)r * cin, cin, ux + (size_t)pp * kc * WN,
                              mx + ((size_t)pp * ntp + r) * WN, WN, k0 > 0);
        }
    }
    output_group2(a, o0, np, m);
}

int op_winograd2_conv(const float *w, int w_blocked, const float *bias, int cin, int cout,
                      const float *x, int B, int H, int W, float *y, int ldy, const float *residual)
{
    if (cin <= 0 || cout <= 0 || cin % 8 || cout % WN || ldy < cout || B <= 0 || H <= 0 || W <= 0)
        return m2p_error(M2P_EINVAL, "winograd conv: bad shape %d->%d at %dx%dx%d", cin, cout, B, H,
                         W);
    wino2_args a = {.w = w,
                    .bias = bias,
                    .x = x,
                    .residual = residual,
                    .y = y,
                    .cin = cin,
                    .cout = cout,
                    .ldy = ldy,
                    .B = B,
                    .H = H,
                    .W = W,
                    .th = (H + 1) / 2,
                    .tw = (W + 1) / 2};
    a.ntiles = (long)B * a.th * a.tw;
    a.ntp = (int)((a.ntiles + WR - 1) / WR * WR);
    if (w_blocked) { /* oneDNN's ABcd8b8a: [cout / 8][cin / 8][3][3][8 in][8 out] */
        a.st = 64;
        a.sii = 8;
        a.sib = 9 * 64;
        a.so = (size_t)(cin / 8) * 9 * 64;
    } else { /* HWIO [3][3][cin][cout] */
        a.so = 8;
        a.sii = (size_t)cout;
        a.sib = (size_t)8 * cout;
        a.st = (size_t)cin * cout;
    }
    /* groups of np panels, at least four groups a thread where the panels allow */
    int threads = omp_get_max_threads(), panels = cout / WN;
    int np = panels / (4 * threads);
    a.np = np < 1 ? 1 : np > W2P ? W2P : np;
    int ngroups = (panels + a.np - 1) / a.np;
    a.v = ops_scratch(OPS_SCRATCH_WINOGRAD_V, (size_t)W2T * a.ntp * cin * sizeof(float));
    if (!a.v)
        return m2p_error(M2P_ENOMEM, "out of memory for a conv's scratch");
    size_t un = W2T * chunk_pos(a.np, W2KC), mn = (size_t)W2T * a.np * a.ntp * WN;
    int failed = 0;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (long t = 0; t < a.ntp; t++)
            input_tile2(&a, t);
        float *buf = ops_scratch(OPS_SCRATCH_WINOGRAD, (un + mn) * sizeof(float));
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int g = 0; g < ngroups; g++) {
            int o0 = g * a.np * WN, np = panels - g * a.np < a.np ? panels - g * a.np : a.np;
            if (buf)
                run_group2(&a, o0, np, buf, buf + un);
        }
    }
    return failed ? m2p_error(M2P_ENOMEM, "out of memory for a conv's scratch") : 0;
}
