/*
 * backend_cpu.c — the CPU backend (tensor/backend.h): ops.h (oneDNN conv / matmul, our vector
 * kernels) and backend_ops.c behind the interface's table. Its memory is host memory, so
 * buffers are plain aligned allocations, upload / download are memcpy, and every op is a thin
 * wrapper: no copies, one indirect call more than calling ops.h directly. bk_conv / bk_linear
 * are ops.h's op_conv / op_linear under the interface's names.
 */
#include "tensor/backend.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tensor/cpu/backend_ops.h"
#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

#define CONV(c) ((op_conv *)(c))
#define LIN(l) ((op_linear *)(l))

/* ---- device ---- */

static int cpu_bf16_supported(const m2p_backend *be)
{
    (void)be;
    return op_bf16_supported();
}

static void cpu_set_threads(const m2p_backend *be, int n)
{
    (void)be;
    op_set_threads(n);
}

/* ---- buffers ---- */

static float *cpu_alloc(const m2p_backend *be, size_t n)
{
    (void)be;
    void *p = NULL;
    if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
        m2p_error(M2P_ENOMEM, "out of memory: %zu MiB of buffers", n * sizeof(float) >> 20);
        return NULL;
    }
    return p;
}

/* activations: ops_big_alloc's huge pages for the big ones, so a fresh process faults in its big
 * maps 2 MiB at a time */
static float *cpu_alloc_scratch(const m2p_backend *be, size_t n)
{
    if (n == 0 || n > SIZE_MAX / sizeof(float))
        return cpu_alloc(be, n);
    float *p = ops_big_alloc(n * sizeof(float), 1);
    if (!p)
        m2p_error(M2P_ENOMEM, "out of memory: %zu MiB of buffers", n * sizeof(float) >> 20);
    return p;
}

static void cpu_free(const m2p_backend *be, float *p)
{
    (void)be;
    free(p);
}

static int cpu_copy(const m2p_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
    if (n && dst != src)
        memmove(dst, src, n * sizeof *dst);
    return 0;
}

static int cpu_zero(const m2p_backend *be, float *dst, size_t n)
{
    (void)be;
    if (n)
        memset(dst, 0, n * sizeof *dst);
    return 0;
}

/* ---- conv ---- */

static int conv_flags(int flags)
{
    return flags & BK_CONV_UPSAMPLED ? OP_CONV_UPSAMPLED : 0;
}

static int cpu_conv_create(const m2p_backend *be, bk_conv **out, const float *w, const float *bias,
                           int cin, int cout, int k, int stride, int pad, int dtype, int flags)
{
    (void)be;
    return op_conv_create_flags((op_conv **)out, w, bias, cin, cout, k, stride, pad, dtype,
                                conv_flags(flags));
}

static int cpu_conv_create_prepared(const m2p_backend *be, bk_conv **out, const bk_prepared *pw,
                                    const float *bias, int cin, int cout, int k, int stride,
                                    int pad, int dtype, int flags)
{
    (void)be;
    return op_conv_create_prepared((op_conv **)out, pw, bias, cin, cout, k, stride, pad, dtype,
                                   conv_flags(flags));
}

static void cpu_conv_prepared(const m2p_backend *be, const bk_conv *c, bk_prepared *pw)
{
    (void)be;
    op_conv_prepared((const op_conv *)c, pw);
}

static int cpu_conv_forward(const m2p_backend *be, bk_conv *c, const float *x, int B, int H, int W,
                            float *y, const float *residual)
{
    (void)be;
    return op_conv_forward(CONV(c), x, B, H, W, y, residual);
}

static int cpu_conv_forward_pre(const m2p_backend *be, bk_conv *c, const bk_pre *pre,
                                const float *x, int B, int H, int W, float *tmp, float *y,
                                const float *residual)
{
    (void)be;
    return op_conv_forward_pre(CONV(c), pre, x, B, H, W, tmp, y, residual);
}

static int cpu_conv_forward_bf16(const m2p_backend *be, bk_conv *c, const bk_pre *pre,
                                 const float *x, int B, int H, int W, float *tmp, float *y)
{
    (void)be;
    return op_conv_forward_bf16(CONV(c), pre, x, B, H, W, tmp, (uint16_t *)y);
}

static void cpu_conv_out_hw(const m2p_backend *be, const bk_conv *c, int H, int W, int *Ho, int *Wo)
{
    (void)be;
    op_conv_out_hw((const op_conv *)c, H, W, Ho, Wo);
}

static void cpu_conv_free(const m2p_backend *be, bk_conv *c)
{
    (void)be;
    op_conv_free(CONV(c));
}

/* ---- linear ---- */

static int cpu_linear_create(const m2p_backend *be, bk_linear **out, const float *w,
                             const float *bias, int in, int n_out, int dtype)
{
    (void)be;
    return op_linear_create((op_linear **)out, w, bias, in, n_out, dtype);
}

static int cpu_linear_create_prepared(const m2p_backend *be, bk_linear **out, const bk_prepared *pw,
                                      const float *bias, int in, int n_out, int dtype)
{
    (void)be;
    return op_linear_create_prepared((op_linear **)out, pw, bias, in, n_out, dtype);
}

static void cpu_linear_prepared(const m2p_backend *be, const bk_linear *l, bk_prepared *pw)
{
    (void)be;
    op_linear_prepared((const op_linear *)l, pw);
}

static int cpu_linear_forward(const m2p_backend *be, bk_linear *l, const float *x, int rows,
                              float *y, const float *residual)
{
    (void)be;
    return op_linear_forward(LIN(l), x, rows, y, residual);
}

static int cpu_linear_forward_pre(const m2p_backend *be, bk_linear *l, const bk_pre *pre,
                                  const float *x, int B, int HW, float *tmp, float *y,
                                  const float *residual)
{
    (void)be;
    return op_linear_forward_pre(LIN(l), pre, x, B, HW, tmp, y, residual);
}

static int cpu_linear_forward_bf16(const m2p_backend *be, bk_linear *l, const bk_pre *pre,
                                   const float *x, int B, int HW, float *tmp, float *y)
{
    (void)be;
    return op_linear_forward_bf16(LIN(l), pre, x, B, HW, tmp, (uint16_t *)y);
}

static void cpu_linear_free(const m2p_backend *be, bk_linear *l)
{
    (void)be;
    op_linear_free(LIN(l));
}

static void cpu_prepared_tag(const m2p_backend *be, int dtype, char *buf, size_t n)
{
    (void)be;
    op_prepared_tag(dtype, buf, n);
}

/* ---- attention, norms ---- */

static int cpu_attention(const m2p_backend *be, const float *q, int q_stride, const float *k,
                         const float *v, int kv_stride, int B, int Lq, int Lk, int heads, int dh,
                         float scale, int causal, float *out)
{
    (void)be;
    return op_attention(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out);
}

static int cpu_attention_bf16(const m2p_backend *be, const float *q, int q_stride, const float *k,
                              const float *v, int kv_stride, int B, int Lq, int Lk, int heads,
                              int dh, float scale, int causal, float *out)
{
    (void)be;
    return op_attention_bf16(q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal,
                             out);
}

static int cpu_attention_bf16io(const m2p_backend *be, const float *qb, size_t q_off, int q_stride,
                                const float *kvb, size_t k_off, size_t v_off, int kv_stride, int B,
                                int Lq, int Lk, int heads, int dh, float scale, int causal,
                                float *out)
{
    (void)be;
    const uint16_t *q = (const uint16_t *)qb, *kv = (const uint16_t *)kvb;
    return op_attention_bf16io(q + q_off, q_stride, kv + k_off, kv + v_off, kv_stride, B, Lq, Lk,
                               heads, dh, scale, causal, (uint16_t *)out);
}

static int cpu_linear_forward_bf16in(const m2p_backend *be, bk_linear *l, const float *x, int rows,
                                     float *y, const float *residual)
{
    (void)be;
    return op_linear_forward_bf16in(LIN(l), (const uint16_t *)x, rows, y, residual);
}

static int cpu_groupnorm(const m2p_backend *be, const float *x, int B, int HW, int C, int groups,
                         float eps, const float *gamma, const float *beta, int silu, float *y)
{
    (void)be;
    return op_groupnorm(x, B, HW, C, groups, eps, gamma, beta, silu, y);
}

static int cpu_layernorm(const m2p_backend *be, const float *x, int rows, int C, float eps,
                         const float *gamma, const float *beta, float *y)
{
    (void)be;
    op_layernorm(x, rows, C, eps, gamma, beta, y);
    return 0;
}

/* ---- elementwise and layout ---- */

static int cpu_geglu(const m2p_backend *be, const float *x, int rows, int D, float *y)
{
    (void)be;
    op_geglu(x, rows, D, y);
    return 0;
}

#define CPU_UNARY(name)                                                                            \
    static int cpu_##name(const m2p_backend *be, float *x, size_t n)                               \
    {                                                                                              \
        (void)be;                                                                                  \
        op_##name(x, n);                                                                           \
        return 0;                                                                                  \
    }
CPU_UNARY(silu)
CPU_UNARY(gelu)
CPU_UNARY(quick_gelu)
CPU_UNARY(relu)

static int cpu_tanh_scale(const m2p_backend *be, float *x, size_t n, float s)
{
    (void)be;
    op_tanh_scale(x, n, s);
    return 0;
}

static int cpu_add(const m2p_backend *be, float *y, const float *x, size_t n)
{
    (void)be;
    op_add(y, x, n);
    return 0;
}

static int cpu_scale(const m2p_backend *be, float *y, float s, size_t n)
{
    (void)be;
    op_scale(y, s, n);
    return 0;
}

static int cpu_add_channel_bias(const m2p_backend *be, float *y, const float *v, int B, int HW,
                                int C)
{
    (void)be;
    op_add_channel_bias(y, v, B, HW, C);
    return 0;
}

static int cpu_upsample2x(const m2p_backend *be, const float *x, int B, int H, int W, int C,
                          float *y)
{
    (void)be;
    op_upsample2x(x, B, H, W, C, y);
    return 0;
}

static int cpu_concat_channels(const m2p_backend *be, const float *a, int Ca, const float *b,
                               int Cb, int B, int HW, float *y)
{
    (void)be;
    op_concat_channels(a, Ca, b, Cb, B, HW, y);
    return 0;
}

static int cpu_nchw_to_nhwc(const m2p_backend *be, const float *x, int B, int C, int H, int W,
                            float *y)
{
    (void)be;
    op_nchw_to_nhwc(x, B, C, H, W, y);
    return 0;
}

static int cpu_nhwc_to_nchw(const m2p_backend *be, const float *x, int B, int H, int W, int C,
                            float *y)
{
    (void)be;
    op_nhwc_to_nchw(x, B, H, W, C, y);
    return 0;
}

static int cpu_resize_nearest(const m2p_backend *be, const float *x, int B, int H, int W, int C,
                              int Ho, int Wo, float *y)
{
    (void)be;
    op_resize_nearest(x, B, H, W, C, Ho, Wo, y);
    return 0;
}

static int cpu_embed(const m2p_backend *be, const int32_t *ids, int B, int L, const float *tok,
                     const float *pos, int C, float *out)
{
    (void)be;
    op_embed(ids, B, L, tok, pos, C, out);
    return 0;
}

static int cpu_blend_tile(const m2p_backend *be, float *out, float *wsum, const float *tile, int BC,
                          int H, int W, int Y0, int X0, int TH, int TW, const float *wy,
                          const float *wx)
{
    (void)be;
    op_blend_tile(out, wsum, tile, BC, H, W, Y0, X0, TH, TW, wy, wx);
    return 0;
}

static int cpu_blend_finish(const m2p_backend *be, float *out, const float *wsum, int BC, size_t HW)
{
    (void)be;
    op_blend_finish(out, wsum, BC, HW);
    return 0;
}

static const m2p_backend cpu_backend = {
    .name = "cpu",
    .ctx = NULL,
    .bf16_supported = cpu_bf16_supported,
    .set_threads = cpu_set_threads,
    .alloc = cpu_alloc,
    .alloc_scratch = cpu_alloc_scratch,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .conv_create = cpu_conv_create,
    .conv_create_prepared = cpu_conv_create_prepared,
    .conv_prepared = cpu_conv_prepared,
    .conv_forward = cpu_conv_forward,
    .conv_forward_pre = cpu_conv_forward_pre,
    .conv_out_hw = cpu_conv_out_hw,
    .conv_free = cpu_conv_free,
    .linear_create = cpu_linear_create,
    .linear_create_prepared = cpu_linear_create_prepared,
    .linear_prepared = cpu_linear_prepared,
    .linear_forward = cpu_linear_forward,
    .linear_forward_pre = cpu_linear_forward_pre,
    .linear_forward_bf16 = cpu_linear_forward_bf16,
    .conv_forward_bf16 = cpu_conv_forward_bf16,
    .linear_free = cpu_linear_free,
    .prepared_tag = cpu_prepared_tag,
    .attention = cpu_attention,
    .attention_bf16 = cpu_attention_bf16,
    .attention_bf16io = cpu_attention_bf16io,
    .linear_forward_bf16in = cpu_linear_forward_bf16in,
    .groupnorm = cpu_groupnorm,
    .layernorm = cpu_layernorm,
    .geglu = cpu_geglu,
    .silu = cpu_silu,
    .gelu = cpu_gelu,
    .quick_gelu = cpu_quick_gelu,
    .relu = cpu_relu,
    .tanh_scale = cpu_tanh_scale,
    .add = cpu_add,
    .scale = cpu_scale,
    .add_channel_bias = cpu_add_channel_bias,
    .upsample2x = cpu_upsample2x,
    .concat_channels = cpu_concat_channels,
    .nchw_to_nhwc = cpu_nchw_to_nhwc,
    .nhwc_to_nchw = cpu_nhwc_to_nchw,
    .resize_nearest = cpu_resize_nearest,
    .embed = cpu_embed,
    .blend_tile = cpu_blend_tile,
    .blend_finish = cpu_blend_finish,
};

const m2p_backend *m2p_backend_cpu(void)
{
    return &cpu_backend;
}
