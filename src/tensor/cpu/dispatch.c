/*
 * dispatch.c — one binary for every x86-64: kernels.c, attention.c, attention_amx.c and
 * winograd.c are compiled three times by CMakeLists.txt (portable x86-64 as op_*_generic, x86-64-v3
 * = AVX2 and FMA as op_*_avx2, x86-64-v4 = AVX-512 F/BW/DQ/VL as op_*_avx512), and the op_* entry
 * points here pick one per call from a CPU check made once (cpuid through
 * __builtin_cpu_supports, which also checks that the OS saves the AVX state).
 * MUS2PIC_CPU=generic or avx2 caps the choice (tests compare the builds). With
 * -DM2P_NATIVE=ON the kernels are compiled once for this CPU and nothing here dispatches.
 * A new exported function in those files needs its wrapper here and its name in
 * M2P_DISPATCHED_OPS (CMakeLists.txt).
 */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/cpu/cpu.h"
#include "tensor/ops.h"

/* 0 unknown, 1 portable, 2 AVX2, 3 AVX-512 */
static atomic_int cpu_level;

#if M2P_DISPATCH
static int detect_level(void)
{
    const char *force = getenv("MUS2PIC_CPU");
    int cap = !force || !*force           ? 3
              : !strcmp(force, "generic") ? 1
              : !strcmp(force, "avx2")    ? 2
                                          : 3;
    __builtin_cpu_init();
    int lv = 1;
    unsigned a, b, c, d; /* F16C from cpuid leaf 1: clang 14 has no "f16c" for the builtin */
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("bmi2") && f16c)
        lv = 2;
    if (lv == 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        lv = 3;
    return lv < cap ? lv : cap;
}

static int level(void)
{
    int lv = atomic_load_explicit(&cpu_level, memory_order_relaxed);
    if (!lv) {
        lv = detect_level();
        atomic_store_explicit(&cpu_level, lv, memory_order_relaxed);
    }
    return lv;
}
#endif

const char *m2p_cpu_kernels(void)
{
#if M2P_DISPATCH
    static const char *const names[] = {"", "generic", "avx2", "avx512"};
    return names[level()];
#else
    (void)cpu_level;
    return "native";
#endif
}

#if M2P_DISPATCH

/* Each op: its three compiled variants and the entry point that picks one. */
#define PICK(name) (level() == 3 ? name##_avx512 : level() == 2 ? name##_avx2 : name##_generic)
#define DECLARE(ret, name, params)                                                                 \
    ret name##_generic params;                                                                     \
    ret name##_avx2 params;                                                                        \
    ret name##_avx512 params;
#define DISPATCH_VOID(name, params, args)                                                          \
    DECLARE(void, name, params)                                                                    \
    void name params                                                                               \
    {                                                                                              \
        PICK(name) args;                                                                           \
    }
#define DISPATCH_INT(name, params, args)                                                           \
    DECLARE(int, name, params)                                                                     \
    int name params                                                                                \
    {                                                                                              \
        return PICK(name) args;                                                                    \
    }

DISPATCH_INT(op_groupnorm,
             (const float *x, int B, int HW, int C, int groups, float eps, const float *gamma,
              const float *beta, int silu, float *y),
             (x, B, HW, C, groups, eps, gamma, beta, silu, y))
DISPATCH_INT(op_groupnorm_bf16,
             (const float *x, int B, int HW, int C, int groups, float eps, const float *gamma,
              const float *beta, int silu, uint16_t *y),
             (x, B, HW, C, groups, eps, gamma, beta, silu, y))
DISPATCH_INT(op_groupnorm_from_bf16,
             (const uint16_t *x, const float *add, int B, int HW, int C, int groups, float eps,
              const float *gamma, const float *beta, int silu, float *y, uint16_t *yb),
             (x, add, B, HW, C, groups, eps, gamma, beta, silu, y, yb))
DISPATCH_VOID(op_layernorm_bf16,
              (const float *x, int rows, int C, float eps, const float *gamma, const float *beta,
               uint16_t *y),
              (x, rows, C, eps, gamma, beta, y))
DISPATCH_VOID(op_geglu_bf16, (const float *x, int rows, int D, uint16_t *y), (x, rows, D, y))
DISPATCH_VOID(op_geglu_from_bf16, (const uint16_t *x, int rows, int D, float *y, uint16_t *yb),
              (x, rows, D, y, yb))
DISPATCH_VOID(op_upsample2x_bf16, (const float *x, int B, int H, int W, int C, uint16_t *y),
              (x, B, H, W, C, y))
DISPATCH_VOID(op_to_bf16, (const float *x, size_t n, uint16_t *y), (x, n, y))
DISPATCH_VOID(op_interleave2x2,
              (const float *q, int B, int H, int W, int C, float *y, const float *residual),
              (q, B, H, W, C, y, residual))
DISPATCH_VOID(op_layernorm,
              (const float *x, int rows, int C, float eps, const float *gamma, const float *beta,
               float *y),
              (x, rows, C, eps, gamma, beta, y))
DISPATCH_VOID(op_geglu, (const float *x, int rows, int D, float *y), (x, rows, D, y))
DISPATCH_VOID(op_silu, (float *x, size_t n), (x, n))
DISPATCH_VOID(op_gelu, (float *x, size_t n), (x, n))
DISPATCH_VOID(op_quick_gelu, (float *x, size_t n), (x, n))
DISPATCH_VOID(op_relu, (float *x, size_t n), (x, n))
DISPATCH_VOID(op_tanh_scale, (float *x, size_t n, float s), (x, n, s))
DISPATCH_VOID(op_add, (float *y, const float *x, size_t n), (y, x, n))
DISPATCH_VOID(op_scale, (float *y, float s, size_t n), (y, s, n))
DISPATCH_VOID(op_add_channel_bias, (float *y, const float *v, int B, int HW, int C),
              (y, v, B, HW, C))
DISPATCH_VOID(op_upsample2x, (const float *x, int B, int H, int W, int C, float *y),
              (x, B, H, W, C, y))
DISPATCH_VOID(op_concat_channels,
              (const float *a, int Ca, const float *b, int Cb, int B, int HW, float *y),
              (a, Ca, b, Cb, B, HW, y))
DISPATCH_VOID(op_nchw_to_nhwc, (const float *x, int B, int C, int H, int W, float *y),
              (x, B, C, H, W, y))
DISPATCH_VOID(op_nhwc_to_nchw, (const float *x, int B, int H, int W, int C, float *y),
              (x, B, H, W, C, y))

DISPATCH_INT(op_attention,
             (const float *q, int q_stride, const float *k, const float *v, int kv_stride, int B,
              int Lq, int Lk, int heads, int dh, float scale, int causal, float *out),
             (q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))
/* attention_amx.c: the AVX-512 build checks for AMX itself and falls back to op_attention */
DISPATCH_INT(op_attention_bf16,
             (const float *q, int q_stride, const float *k, const float *v, int kv_stride, int B,
              int Lq, int Lk, int heads, int dh, float scale, int causal, float *out),
             (q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))
DISPATCH_INT(op_attention_bf16in,
             (const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v, int kv_stride,
              int B, int Lq, int Lk, int heads, int dh, float scale, int causal, float *out),
             (q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))
DISPATCH_INT(op_attention_bf16io,
             (const uint16_t *q, int q_stride, const uint16_t *k, const uint16_t *v, int kv_stride,
              int B, int Lq, int Lk, int heads, int dh, float scale, int causal, uint16_t *out),
             (q, q_stride, k, v, kv_stride, B, Lq, Lk, heads, dh, scale, causal, out))

DISPATCH_VOID(op_winograd_weights, (const float *w, int cin, int cout, int ldw, float *u),
              (w, cin, cout, ldw, u))
DISPATCH_INT(op_winograd_conv,
             (const float *u, const float *bias, int cin, int cout, const float *x, int B, int H,
              int W, float *y, int ldy, const float *residual),
             (u, bias, cin, cout, x, B, H, W, y, ldy, residual))
DISPATCH_INT(op_winograd2_conv,
             (const float *w, int w_blocked, const float *bias, int cin, int cout, const float *x,
              int B, int H, int W, float *y, int ldy, const float *residual),
             (w, w_blocked, bias, cin, cout, x, B, H, W, y, ldy, residual))

#endif
