/*
 * bench_bf16dot.c — how many AVX-512 FMAs (vfmadd231ps zmm, 32 FLOP) and AVX512-BF16 dot
 * products (vdpbf16ps zmm, 64 FLOP) one core retires per second: 24 independent accumulators in
 * registers, no memory traffic, so the loop is bound by the instructions' throughput, not their
 * latency. Decides whether a bf16 dot-product kernel can beat the f32 FMA kernels (it cannot
 * where vdpbf16ps issues at a quarter of the FMA rate; attention_amx.c uses AMX tiles instead).
 *
 *   taskset -c 1 ./build/bench_bf16dot [--rounds N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
#define ZERO(i) "vpxord %%zmm" #i ", %%zmm" #i ", %%zmm" #i "\n"
#define ZERO24                                                                                     \
    ZERO(0)                                                                                        \
    ZERO(1) ZERO(2) ZERO(3) ZERO(4) ZERO(5) ZERO(6) ZERO(7) ZERO(8) ZERO(9) ZERO(10) ZERO(11)      \
        ZERO(12) ZERO(13) ZERO(14) ZERO(15) ZERO(16) ZERO(17) ZERO(18) ZERO(19) ZERO(20) ZERO(21)  \
            ZERO(22) ZERO(23)
#define OP(ins, i) ins " %%zmm30, %%zmm31, %%zmm" #i "\n"
#define OP24(ins)                                                                                  \
    OP(ins, 0)                                                                                     \
    OP(ins, 1) OP(ins, 2) OP(ins, 3) OP(ins, 4) OP(ins, 5) OP(ins, 6) OP(ins, 7) OP(ins, 8)        \
        OP(ins, 9) OP(ins, 10) OP(ins, 11) OP(ins, 12) OP(ins, 13) OP(ins, 14) OP(ins, 15)         \
            OP(ins, 16) OP(ins, 17) OP(ins, 18) OP(ins, 19) OP(ins, 20) OP(ins, 21) OP(ins, 22)    \
                OP(ins, 23)
#define CLOBBER                                                                                    \
    "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",      \
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

static const float one[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* zmm16-31 are not clobber-listable without AVX-512 enabled for the file; the functions carry
 * the target attribute so the asm may use them */
__attribute__((target("avx512f,avx512bf16"))) static double run_fma(long n)
{
    double t0 = now();
    __asm__ volatile(ZERO24 "vmovups (%1), %%zmm30\n vmovups (%1), %%zmm31\n"
                            "1:\n" OP24("vfmadd231ps") "dec %0\n jnz 1b\n"
                     : "+r"(n)
                     : "r"(one)
                     : CLOBBER, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
                       "xmm23", "xmm30", "xmm31");
    return now() - t0;
}

__attribute__((target("avx512f,avx512bf16"))) static double run_dpbf16(long n)
{
    double t0 = now();
    __asm__ volatile(ZERO24 "vmovups (%1), %%zmm30\n vmovups (%1), %%zmm31\n"
                            "1:\n" OP24("vdpbf16ps") "dec %0\n jnz 1b\n"
                     : "+r"(n)
                     : "r"(one)
                     : CLOBBER, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
                       "xmm23", "xmm30", "xmm31");
    return now() - t0;
}
#endif

int main(int argc, char **argv)
{
    int rounds = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_bf16dot [--rounds N]\n");
            return 2;
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
        printf("bench_bf16dot: this CPU has no AVX512-BF16\n");
        return 0;
    }
    const long n = 20000000; /* loop iterations of 24 instructions */
    printf("round  vfmadd231ps zmm  vdpbf16ps zmm  (G instructions/s)  FLOP ratio bf16/f32\n");
    for (int r = 0; r < rounds; r++) {
        double tf = run_fma(n), td = run_dpbf16(n);
        printf("%5d  %15.2f  %13.2f  %33.2f\n", r + 1, 24.0 * n / tf * 1e-9, 24.0 * n / td * 1e-9,
               (64.0 / td) / (32.0 / tf));
    }
#else
    printf("bench_bf16dot: x86-64 only\n");
#endif
    return 0;
}
