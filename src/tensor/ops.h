/*
 * ops.h — the compute ops of the image engine (CPU: oneDNN for conv and matmul, our own
 * vectorised kernels for the rest).
 *
 * Layout: activations are float32 NHWC, x[((b*H + y)*W + x)*C + c]. A sequence [B, L, C] is
 * the same thing with H*W = L, so a UNet feature map is already the token matrix a transformer
 * block needs. Conversions to/from NCHW happen only at the engine's boundaries.
 * Weights come in PyTorch layouts (conv [out,in,kh,kw], linear [out,in]) as float32; the
 * create functions copy/reorder them into their own memory (compute dtype f32 or bf16), so the
 * source may be freed after create returns.
 * Threading: ops use the process-wide compute threads (op_set_threads). Results do not depend
 * on the thread count beyond float reassociation inside oneDNN.
 */
#ifndef M2P_TENSOR_OPS_H
#define M2P_TENSOR_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/backend.h"

void op_set_threads(int n);
int op_get_threads(void);
/* 1 when this CPU runs bf16 matmuls/convs natively (AVX512-BF16 or AMX, as oneDNN sees it:
 * ONEDNN_MAX_CPU_ISA lowers it); without them oneDNN would fall back to slow reference code. */
int op_bf16_supported(void);
/* Which build of the vector kernels runs: "avx512", "avx2" or "generic" (picked once from the
 * CPU; MUS2PIC_CPU=generic or avx2 caps it), or "native" (-DM2P_NATIVE=ON builds). */
const char *m2p_cpu_kernels(void);

typedef struct op_conv op_conv;
/* k x k conv, stride, zero padding pad. bias may be NULL. dtype: M2P_DTYPE_F32 / _BF16. */
int op_conv_create(op_conv **out, const float *w, const float *bias, int cin, int cout, int k,
                   int stride, int pad, int dtype);
/* op_conv_create with flags. OP_CONV_UPSAMPLED: the conv's input is a 2x nearest upsample
 * (op_conv_forward_pre with OP_PRE_UPSAMPLE2X); a bf16 3x3 conv (stride 1, padding 1, cout <=
 * cin) then also holds the 2x2 convs of its four output phases, which that call runs instead
 * of the upsample and the conv (dnnl_ops.c conv_up_phases); its prepared weights hold both. */
enum { OP_CONV_UPSAMPLED = 1 };
int op_conv_create_flags(op_conv **out, const float *w, const float *bias, int cin, int cout, int k,
                         int stride, int pad, int dtype, int flags);
/* x [B,H,W,cin] -> y [B,Ho,Wo,cout]. If residual != NULL (shape of y), y = conv(x) + residual
 * (residual may equal y). */
int op_conv_forward(op_conv *c, const float *x, int B, int H, int W, float *y,
                    const float *residual);
void op_conv_out_hw(const op_conv *c, int H, int W, int *Ho, int *Wo);
void op_conv_free(op_conv *c);

typedef struct op_linear op_linear;
/* w [out,in], bias [out] or NULL. */
int op_linear_create(op_linear **out, const float *w, const float *bias, int in, int n_out,
                     int dtype);
/* x [rows,in] -> y [rows,out] (+ residual [rows,out] when not NULL; may equal y). */
int op_linear_forward(op_linear *l, const float *x, int rows, float *y, const float *residual);
void op_linear_free(op_linear *l);

/* ---- a norm or activation in front of a conv / linear -----------------------------------
 * op_*_forward_pre computes op(pre(x)): in bf16 mode pre writes its result as bf16 straight
 * into the buffer the op reads (no f32 copy and no separate f32 -> bf16 pass); in f32 mode (or
 * with MUS2PIC_FUSE=0) it writes f32 to tmp and the op runs on tmp as before, so the numbers are
 * exactly those of the two calls. The bf16 values are bit-identical to converting pre's f32
 * output (round to nearest even). */
/* The pre-op and its kinds are the backend interface's (tensor/backend.h bk_pre), so the CPU
 * backend hands them through unchanged. */
enum {
    OP_PRE_GROUPNORM = BK_PRE_GROUPNORM,
    OP_PRE_LAYERNORM = BK_PRE_LAYERNORM,
    OP_PRE_GEGLU = BK_PRE_GEGLU,
    OP_PRE_UPSAMPLE2X = BK_PRE_UPSAMPLE2X,
    OP_PRE_GEGLU_BF16 = BK_PRE_GEGLU_BF16,
    OP_PRE_GROUPNORM_BF16 = BK_PRE_GROUPNORM_BF16,
};
typedef bk_pre op_pre;
/* conv of pre(x) at H x W (the conv's input size; x is [B, H/2, W/2, cin] for UPSAMPLE2X).
 * tmp: room for B*H*W*cin floats, used in f32 mode (may equal x where pre allows y == x). */
int op_conv_forward_pre(op_conv *c, const op_pre *pre, const float *x, int B, int H, int W,
                        float *tmp, float *y, const float *residual);
/* linear of pre(x) over B*HW rows (GroupNorm needs B and HW; the others see rows). */
int op_linear_forward_pre(op_linear *l, const op_pre *pre, const float *x, int B, int HW,
                          float *tmp, float *y, const float *residual);
/* bf16 activations between ops (backend.h linear_forward_bf16): the linear of pre(x) (pre NULL:
 * of x) rounded to bf16 (nearest even) into y, B*HW*n_out values; bf16 linears only, no
 * residual. In f32 the products and the bias are those of op_linear_forward_pre. */
int op_linear_forward_bf16(op_linear *l, const op_pre *pre, const float *x, int B, int HW,
                           float *tmp, uint16_t *y);
/* op_linear_forward of bf16 x [rows, in] (backend.h linear_forward_bf16in): the bf16 op reads x
 * as it is (no conversion); bf16 linears only. */
int op_linear_forward_bf16in(op_linear *l, const uint16_t *x, int rows, float *y,
                             const float *residual);
/* bf16 activations between ops (backend.h conv_forward_bf16): the conv of pre(x) (pre NULL: of
 * x) rounded to bf16 (nearest even) into y, B*Ho*Wo*cout values; bf16 convs only, no residual.
 * In f32 the products and the bias are those of op_conv_forward_pre. */
int op_conv_forward_bf16(op_conv *c, const op_pre *pre, const float *x, int B, int H, int W,
                         float *tmp, uint16_t *y);
/* pre(x) alone, in f32, into out (the unfused path of the two calls above; C is the input's
 * channel count, H x W the output's). */
int op_pre_run(const op_pre *pre, const float *x, int B, int H, int W, int C, float *out);
/* 1 unless MUS2PIC_FUSE=0 (read once): bf16 producers write the ops' inputs directly. */
int op_fuse_enabled(void);

/* ---- prepared weights (for the on-disk weight cache, model/wcache.c) ----------------------
 * An op's weights as it holds them after create: the layout oneDNN chose for this CPU (an
 * opaque descriptor) and the bytes in it. op_*_create_prepared builds the same op from such
 * bytes without converting or copying them; they must stay valid until the op calls
 * release(release_ud) at free (release may be NULL). Those return 1, not an error, when the
 * layout is not the one this CPU / oneDNN build would choose (the caller converts from the
 * source weights instead). op_prepared_tag names what the layouts depend on (oneDNN version,
 * dispatched ISA, dtype): prepared weights written under another tag are not to be used. */
typedef bk_prepared op_prepared; /* tensor/backend.h */
int op_conv_create_prepared(op_conv **out, const op_prepared *pw, const float *bias, int cin,
                            int cout, int k, int stride, int pad, int dtype, int flags);
int op_linear_create_prepared(op_linear **out, const op_prepared *pw, const float *bias, int in,
                              int n_out, int dtype);
/* The op's own weights (valid while the op lives); release fields are left NULL, except for a
 * conv with phases (OP_CONV_UPSAMPLED), whose weights are copied into one block that
 * release(release_ud) frees: call it once they are written. NULL data: out of memory. */
void op_conv_prepared(const op_conv *c, op_prepared *pw);
void op_linear_prepared(const op_linear *l, op_prepared *pw);
void op_prepared_tag(int dtype, char *buf, size_t n);

/* GroupNorm over NHWC x [B, HW, C] with `groups` groups; optional fused SiLU. y may equal x.
 * 0, or M2P_ENOMEM when its per-channel scratch cannot be allocated. */
int op_groupnorm(const float *x, int B, int HW, int C, int groups, float eps,
                  const float *gamma, const float *beta, int silu, float *y);
/* LayerNorm over the last dim of x [rows, C]. y may equal x. */
void op_layernorm(const float *x, int rows, int C, float eps, const float *gamma,
                  const float *beta, float *y);
/* The same three with the result rounded to bf16 (nearest even) into y (never aliasing x). */
int op_groupnorm_bf16(const float *x, int B, int HW, int C, int groups, float eps,
                      const float *gamma, const float *beta, int silu, uint16_t *y);
void op_layernorm_bf16(const float *x, int rows, int C, float eps, const float *gamma,
                       const float *beta, uint16_t *y);
void op_geglu_bf16(const float *x, int rows, int D, uint16_t *y);
/* GroupNorm of bf16 x [B, HW, C] (a conv's bf16 output, widened exactly) plus add [B, C] (per
 * batch and channel, in f32, before the statistics: op_add_channel_bias's sums; NULL: none), to
 * f32 y, or to bf16 yb when y is NULL; neither may overlap x. 0 or M2P_ENOMEM. */
int op_groupnorm_from_bf16(const uint16_t *x, const float *add, int B, int HW, int C, int groups,
                           float eps, const float *gamma, const float *beta, int silu, float *y,
                           uint16_t *yb);
/* GEGLU of bf16 x [rows, 2D] (a linear's bf16 output) to f32 y, or to bf16 yb when y is NULL. */
void op_geglu_from_bf16(const uint16_t *x, int rows, int D, float *y, uint16_t *yb);
void op_upsample2x_bf16(const float *x, int B, int H, int W, int C, uint16_t *y);
/* x (n floats) rounded to bf16 (nearest even, as oneDNN's reorder) into y. */
void op_to_bf16(const float *x, size_t n, uint16_t *y);
/* The four output phases of a 2x upsampled map joined: q holds four [B, H, W, C] maps one after
 * the other, phase 2 py + px at y[b, 2i + py, 2j + px, :] of y [B, 2H, 2W, C], plus residual
 * [B, 2H, 2W, C] when not NULL (it may be y); q may not overlap y. */
void op_interleave2x2(const float *q, int B, int H, int W, int C, float *y, const float *residual);

/* Multi-head attention, tiled (flash-style online softmax): never builds Lq x Lk for all heads.
 * q [B, Lq, *] with row stride q_stride floats, head h at columns h*dh..; k, v [B, Lk, *] with
 * row stride kv_stride; out [B, Lq, heads*dh] contiguous. softmax(scale * q k^T) v;
 * causal: key j > query i is masked (CLIP). */
int op_attention(const float *q, int q_stride, const float *k, const float *v, int kv_stride,
                 int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out);
/* The same for bf16 compute: q, k, v rounded to bf16, products on AMX tiles (or, without AMX,
 * as AVX512-BF16 dot products) with f32 accumulation, softmax and output in f32
 * (cpu/attention_amx.c). Where the CPU (or the OS) has neither, and in the portable kernels, it
 * is op_attention. MUS2PIC_AMX=0 turns AMX off, MUS2PIC_BF16DOT=0 the dot products. */
int op_attention_bf16(const float *q, int q_stride, const float *k, const float *v, int kv_stride,
                      int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out);
/* op_attention_bf16 on bf16 q, k, v (linears' bf16 outputs, op_linear_forward_bf16; strides in
 * elements): the same numbers as op_attention_bf16 on their widened (exact f32) values. Without
 * AMX and AVX512-BF16: op_attention on widened copies. */
int op_attention_bf16in(const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v,
                        int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                        int causal, float *out);
/* op_attention_bf16in with the output rounded to bf16 (nearest even, as ops_bf16) into out
 * [B, Lq, heads*dh] (the input of op_linear_forward_bf16in). */
int op_attention_bf16io(const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v,
                        int kv_stride, int B, int Lq, int Lk, int heads, int dh, float scale,
                        int causal, uint16_t *out);

/* x [rows, 2D] = [h | gate] -> y [rows, D] = h * gelu_erf(gate) (diffusers GEGLU). */
void op_geglu(const float *x, int rows, int D, float *y);
void op_silu(float *x, size_t n);
void op_gelu(float *x, size_t n);       /* exact (erf) */
void op_quick_gelu(float *x, size_t n); /* x * sigmoid(1.702 x) (CLIP) */
void op_relu(float *x, size_t n);
void op_tanh_scale(float *x, size_t n, float s); /* x = tanh(x/s)*s (TAESD input clamp) */
void op_add(float *y, const float *x, size_t n); /* y += x */
void op_scale(float *y, float s, size_t n);
/* Per-channel add over NHWC: y[b,p,c] += v[b*C + c] (time embedding into a feature map). */
void op_add_channel_bias(float *y, const float *v, int B, int HW, int C);
/* Nearest x2 upsample, NHWC. */
void op_upsample2x(const float *x, int B, int H, int W, int C, float *y);
/* NHWC channel concat: a [B,HW,Ca], b [B,HW,Cb] -> y [B,HW,Ca+Cb]. */
void op_concat_channels(const float *a, int Ca, const float *b, int Cb, int B, int HW, float *y);
void op_nchw_to_nhwc(const float *x, int B, int C, int H, int W, float *y);
void op_nhwc_to_nchw(const float *x, int B, int H, int W, int C, float *y);

#endif
