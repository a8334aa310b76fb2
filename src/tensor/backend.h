/*
 * backend.h — the compute backend interface the SD networks (src/sd) run on, after ggml's
 * backends: a table of function pointers plus an opaque context. A backend owns its memory
 * (activations, and the small norm / embedding weights the networks keep), its conv and linear
 * objects, and every op that reads or writes that memory; code outside a backend never touches
 * it: it moves host arrays in and out with upload / download, and only does pointer arithmetic
 * on backend pointers (offsets into one allocation, as with device pointers).
 * Layout and numerics are those of ops.h (NHWC float32 activations, PyTorch-layout weights
 * handed to the create functions as host arrays). The CPU backend (cpu/backend_cpu.c) is ops.h
 * behind this table with zero copies: its memory is host memory. tests/sd/test_backend_guard.c
 * runs the networks on a backend whose memory is unreadable outside its calls.
 * Errors: int results are 0 or a negative M2P_E* with the message set (core/error.h).
 */
#ifndef M2P_TENSOR_BACKEND_H
#define M2P_TENSOR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct m2p_backend m2p_backend;
typedef struct bk_conv bk_conv;     /* a conv with its weights, in the backend's memory */
typedef struct bk_linear bk_linear; /* a linear (matmul + bias) likewise */

/* A norm or activation run in front of a conv / linear (ops.h op_pre, same meaning): the
 * backend may write its result straight into the op's input (bf16) instead of a float copy.
 * gamma / beta are backend memory. */
enum {
    BK_PRE_GROUPNORM = 1, /* groupnorm(x, B, HW, C, groups, eps, gamma, beta, silu) */
    BK_PRE_LAYERNORM,     /* layernorm over each of the B*HW rows */
    BK_PRE_GEGLU,         /* geglu: x [rows, 2C] -> [rows, C] */
    BK_PRE_UPSAMPLE2X,    /* upsample2x: x [B, H/2, W/2, C] -> [B, H, W, C] */
    BK_PRE_GEGLU_BF16,    /* geglu of bf16 x [rows, 2C] (a linear_forward_bf16 output) */
    /* groupnorm (as BK_PRE_GROUPNORM) of bf16 x [B, HW, C] (a conv_forward_bf16 output) widened
     * exactly, plus `add` [B, C] when not NULL: add[b, c] is added to every x[b, :, c] in f32
     * before the statistics (add_channel_bias's values: the resnets' time embedding). */
    BK_PRE_GROUPNORM_BF16,
};
enum { BK_CONV_UPSAMPLED = 1 }; /* conv_create's flags */
typedef struct bk_pre {
    int kind;
    int groups; /* GroupNorm */
    float eps;
    const float *gamma, *beta;
    int silu;         /* GroupNorm: fused SiLU */
    const float *add; /* GROUPNORM_BF16: per (batch, channel) vector [B, C] or NULL */
} bk_pre;

/* An op's weights as the backend holds them after create, for the on-disk weight cache
 * (model/wcache.c): an opaque layout descriptor and host bytes in it (ops.h op_prepared). */
typedef struct bk_prepared {
    const void *layout;
    size_t layout_size;
    const void *data; /* 64-byte aligned */
    size_t size;      /* bytes */
    void (*release)(void *ud);
    void *release_ud;
} bk_prepared;

/* Every float * / const float * called x, y, out, tmp, residual, q, k, v, gamma, beta, tok,
 * pos, tile, wsum below is backend memory (from alloc, or an offset into it); w and bias of the
 * create functions, src of upload, dst of download, ids, wy and wx are host memory. */
struct m2p_backend {
    const char *name; /* "cpu" */
    void *ctx;        /* the backend's own state */

    /* ---- device ---- */
    /* 1 when bf16 compute runs natively (ops.h op_bf16_supported for the CPU). */
    int (*bf16_supported)(const m2p_backend *be);
    /* Compute threads (<= 0: the default); results do not depend on it. */
    void (*set_threads)(const m2p_backend *be, int n);

    /* ---- buffers (floats; 64-byte aligned) ---- */
    /* NULL with the message set when out of memory. */
    float *(*alloc)(const m2p_backend *be, size_t n);
    /* alloc for activations (the networks' arenas): the CPU backs big ones with huge pages */
    float *(*alloc_scratch)(const m2p_backend *be, size_t n);
    void (*free)(const m2p_backend *be, float *p); /* NULL is fine (either alloc's) */
    int (*upload)(const m2p_backend *be, float *dst, const float *src, size_t n);
    int (*download)(const m2p_backend *be, float *dst, const float *src, size_t n);
    int (*zero)(const m2p_backend *be, float *dst, size_t n);
    int (*copy)(const m2p_backend *be, float *dst, const float *src, size_t n);

    /* ---- conv: k x k, stride, zero padding; x [B,H,W,cin] -> y [B,Ho,Wo,cout] (+ residual,
     * which may equal y). dtype M2P_DTYPE_F32 / _BF16. flags: BK_CONV_UPSAMPLED when the
     * conv's input is (nearly always) a 2x upsample, conv_forward_pre's BK_PRE_UPSAMPLE2X: the
     * backend may prepare a faster way for that (the CPU's: ops.h OP_CONV_UPSAMPLED). ---- */
    int (*conv_create)(const m2p_backend *be, bk_conv **out, const float *w, const float *bias,
                       int cin, int cout, int k, int stride, int pad, int dtype, int flags);
    /* 1 (not an error) when the prepared layout is not this backend's: convert instead. */
    int (*conv_create_prepared)(const m2p_backend *be, bk_conv **out, const bk_prepared *pw,
                                const float *bias, int cin, int cout, int k, int stride, int pad,
                                int dtype, int flags);
    /* The conv's weights as prepared; when pw->release is set, call it once they are written
     * (a copy made for the call); pw->data NULL: out of memory. */
    void (*conv_prepared)(const m2p_backend *be, const bk_conv *c, bk_prepared *pw);
    int (*conv_forward)(const m2p_backend *be, bk_conv *c, const float *x, int B, int H, int W,
                        float *y, const float *residual);
    /* conv of pre(x) at H x W (ops.h op_conv_forward_pre; tmp: B*H*W*cin floats). */
    int (*conv_forward_pre)(const m2p_backend *be, bk_conv *c, const bk_pre *pre, const float *x,
                            int B, int H, int W, float *tmp, float *y, const float *residual);
    void (*conv_out_hw)(const m2p_backend *be, const bk_conv *c, int H, int W, int *Ho, int *Wo);
    void (*conv_free)(const m2p_backend *be, bk_conv *c); /* NULL is fine */

    /* ---- linear: w [out,in]; x [rows,in] -> y [rows,out] (+ residual, may equal y) ---- */
    int (*linear_create)(const m2p_backend *be, bk_linear **out, const float *w, const float *bias,
                         int in, int n_out, int dtype);
    int (*linear_create_prepared)(const m2p_backend *be, bk_linear **out, const bk_prepared *pw,
                                  const float *bias, int in, int n_out, int dtype);
    void (*linear_prepared)(const m2p_backend *be, const bk_linear *l, bk_prepared *pw);
    int (*linear_forward)(const m2p_backend *be, bk_linear *l, const float *x, int rows, float *y,
                          const float *residual);
    int (*linear_forward_pre)(const m2p_backend *be, bk_linear *l, const bk_pre *pre,
                              const float *x, int B, int HW, float *tmp, float *y,
                              const float *residual);
    void (*linear_free)(const m2p_backend *be, bk_linear *l); /* NULL is fine */
    /* ---- bf16 activations between ops: a linear or conv output that only a bf16 consumer
     * reads stays bf16. Such a buffer is still a float buffer: element i (bfloat16 bits) is the
     * 16-bit word i from its start, so n values fill its first n / 2 floats. linear_forward_bf16
     * and conv_forward_bf16 write one, and attention_bf16io; BK_PRE_GEGLU_BF16,
     * BK_PRE_GROUPNORM_BF16, attention_bf16io and linear_forward_bf16in read one. ---- */
    /* linear_forward_pre (pre NULL: the linear of x [B*HW, in], and tmp is not used) with y
     * rounded to bf16 (nearest even) after the f32 accumulation and bias: y holds B*HW*n_out bf16
     * values. Only for linears created with M2P_DTYPE_BF16 (an error otherwise); no residual. */
    int (*linear_forward_bf16)(const m2p_backend *be, bk_linear *l, const bk_pre *pre,
                               const float *x, int B, int HW, float *tmp, float *y);
    /* conv_forward_pre (pre NULL: the conv of x, and tmp is not used) with y rounded to bf16
     * (nearest even) after the f32 accumulation and bias: y holds B*Ho*Wo*cout bf16 values. Only
     * for convs created with M2P_DTYPE_BF16 (an error otherwise); no residual. A conv_forward_pre
     * reading it through BK_PRE_GROUPNORM_BF16 may take its tmp equal to x (y's buffer). */
    int (*conv_forward_bf16)(const m2p_backend *be, bk_conv *c, const bk_pre *pre, const float *x,
                             int B, int H, int W, float *tmp, float *y);
    /* linear_forward of bf16 x [rows, in] (an attention_bf16io output), read as it is: the
     * numbers of linear_forward on its widened values. Only for linears created with
     * M2P_DTYPE_BF16 (an error otherwise). */
    int (*linear_forward_bf16in)(const m2p_backend *be, bk_linear *l, const float *x, int rows,
                                 float *y, const float *residual);
    /* What prepared layouts depend on (ops.h op_prepared_tag). */
    void (*prepared_tag)(const m2p_backend *be, int dtype, char *buf, size_t n);

    /* ---- attention (ops.h op_attention / op_attention_bf16: q [B,Lq,*] row stride q_stride,
     * k, v [B,Lk,*] row stride kv_stride, out [B,Lq,heads*dh]) ---- */
    int (*attention)(const m2p_backend *be, const float *q, int q_stride, const float *k,
                     const float *v, int kv_stride, int B, int Lq, int Lk, int heads, int dh,
                     float scale, int causal, float *out);
    int (*attention_bf16)(const m2p_backend *be, const float *q, int q_stride, const float *k,
                          const float *v, int kv_stride, int B, int Lq, int Lk, int heads, int dh,
                          float scale, int causal, float *out);
    /* attention_bf16 on bf16 q, k, v (linear_forward_bf16 outputs) into bf16 out: q starts at
     * bf16 value q_off of qb, its rows q_stride values apart; k and v at values k_off and v_off
     * of kvb, rows kv_stride apart; out [B, Lq, heads*dh] holds bf16 values (for
     * linear_forward_bf16in): attention_bf16's numbers on the widened inputs (bf16 -> f32 is
     * exact), rounded to nearest even. */
    int (*attention_bf16io)(const m2p_backend *be, const float *qb, size_t q_off, int q_stride,
                            const float *kvb, size_t k_off, size_t v_off, int kv_stride, int B,
                            int Lq, int Lk, int heads, int dh, float scale, int causal, float *out);

    /* ---- norms (y may equal x) ---- */
    int (*groupnorm)(const m2p_backend *be, const float *x, int B, int HW, int C, int groups,
                     float eps, const float *gamma, const float *beta, int silu, float *y);
    int (*layernorm)(const m2p_backend *be, const float *x, int rows, int C, float eps,
                     const float *gamma, const float *beta, float *y);

    /* ---- elementwise and layout (ops.h, same names) ---- */
    int (*geglu)(const m2p_backend *be, const float *x, int rows, int D, float *y);
    int (*silu)(const m2p_backend *be, float *x, size_t n);
    int (*gelu)(const m2p_backend *be, float *x, size_t n);
    int (*quick_gelu)(const m2p_backend *be, float *x, size_t n);
    int (*relu)(const m2p_backend *be, float *x, size_t n);
    int (*tanh_scale)(const m2p_backend *be, float *x, size_t n, float s);
    int (*add)(const m2p_backend *be, float *y, const float *x, size_t n);
    int (*scale)(const m2p_backend *be, float *y, float s, size_t n);
    int (*add_channel_bias)(const m2p_backend *be, float *y, const float *v, int B, int HW, int C);
    int (*upsample2x)(const m2p_backend *be, const float *x, int B, int H, int W, int C, float *y);
    int (*concat_channels)(const m2p_backend *be, const float *a, int Ca, const float *b, int Cb,
                           int B, int HW, float *y);
    int (*nchw_to_nhwc)(const m2p_backend *be, const float *x, int B, int C, int H, int W,
                        float *y);
    int (*nhwc_to_nchw)(const m2p_backend *be, const float *x, int B, int H, int W, int C,
                        float *y);
    /* Nearest resize NHWC (PyTorch 'nearest': src = min(floor(dst * in/out), in-1)). */
    int (*resize_nearest)(const m2p_backend *be, const float *x, int B, int H, int W, int C, int Ho,
                          int Wo, float *y);
    /* Token + position embedding (CLIPTextEmbeddings): out [B, L, C] with
     * out[b,t] = tok[ids[b*L + t]] + pos[t]; ids (host) are valid rows of tok. */
    int (*embed)(const m2p_backend *be, const int32_t *ids, int B, int L, const float *tok,
                 const float *pos, int C, float *out);
    /* Tiled decoding's blend (diffusers AutoencoderKL.tiled_decode, linear ramps): a tile
     * [BC, TH, TW] placed at (Y0, X0) of an image [BC, H, W] adds wy[y] * wx[x] * tile into out
     * and wy[y] * wx[x] into wsum [H, W]; wy [TH] and wx [TW] are host arrays. */
    int (*blend_tile)(const m2p_backend *be, float *out, float *wsum, const float *tile, int BC,
                      int H, int W, int Y0, int X0, int TH, int TW, const float *wy,
                      const float *wx);
    /* out [BC, HW] /= wsum [HW] once every tile is in. */
    int (*blend_finish)(const m2p_backend *be, float *out, const float *wsum, int BC, size_t HW);
};

/* The CPU backend (oneDNN + our vector kernels, ops.h): one process-wide instance. */
const m2p_backend *m2p_backend_cpu(void);

#endif
