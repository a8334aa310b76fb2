/*
 * test_attention_bf16.c — op_attention_bf16 (AMX tiles or AVX512-BF16 dot products: bf16
 * products, f32 softmax and accumulation) against a double-precision softmax(q k^T * scale) v on
 * random inputs in [-1, 1]: the UNet's self and cross attention shapes (dh 40 / 80 / 160), the
 * VAE's one head of 512, CLIP's causal 77 tokens, strided (fused qkv) inputs, sizes off the
 * kernel's 32-query / 128-key / 16-key tiles, big scores, batches. Tolerance: bf16 keeps 8
 * significant bits (relative rounding 2^-9 = 0.2%) of q, k, v and P: an output that is one key's v
 * (causal row 0) is off by up to 2^-9 |v|, and a score s by about 2^-8 |s|. Budgets on unit-range
 * inputs: max abs 8e-3 (4 x 2^-9) and mean abs 2e-3 (one rounding of a unit v); scores scaled by
 * 10: max 3e-2, mean 5e-3 (measured here: max 3.5e-3 / 7e-3, mean <= 1.4e-3 / 1e-3). Key rows
 * scaled up with their index (scores x4 whose maximum grows every key block, so every block
 * rescales the running output) take the scores-scaled budgets: measured max 1.8e-2, mean 1.4e-3.
 * Scores of one key block that jump by +29 or +12 log2 units (the kernel's softmax reference moves
 * past a margin of 16, or not) take the unit budgets. On a CPU with AMX, or without it but with
 * AVX512-BF16 (the same kernel with its tile products as vdpbf16ps dot products), the bf16 result
 * must differ from op_attention's (a bf16 path ran); with neither (or both turned off:
 * MUS2PIC_AMX=0 and MUS2PIC_BF16DOT=0) it must equal it. ctest runs it three ways: as the CPU
 * allows, with AMX off (the dot products where the CPU has AMX), and with both off.
 * op_attention_bf16in (bf16 q, k, v: the UNet's linears write them so) must give, bit for bit,
 * op_attention_bf16's result on the same values widened to f32, in every case, and so stay within
 * the same budgets against the reference on the unrounded inputs; op_attention_bf16io (its output
 * as bf16, for the bf16 to_out) must give exactly that result rounded to nearest even.
 */
#include "attention_ref.h"
#include "tensor/ops.h"
#include "test.h"

#include <stdint.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    return attn_frand(&rng);
}

static int bf16_expected; /* the CPU has AMX-BF16 or AVX512-BF16 and nothing turned them off */

/* round to nearest even (finite inputs) */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* op_attention_bf16in on the n inputs of buf (q at 0, k at ko, v at vo) rounded to bf16 against
 * op_attention_bf16 on the same values widened: the same bits; its error against ref in budget */
static void check_bf16in(const float *buf, size_t n, size_t ko, size_t vo, int qs, int kvs, int B,
                         int Lq, int Lk, int heads, int dh, float scale, int causal,
                         const float *ref, double tmax, double tmean)
{
    size_t on = (size_t)B * Lq * heads * dh;
    uint16_t *hb = malloc(n * sizeof(uint16_t));
    float *wb = malloc(n * sizeof(float)), *o1 = malloc(on * sizeof(float)),
          *o2 = malloc(on * sizeof(float));
    CHECK(hb && wb && o1 && o2);
    if (hb && wb && o1 && o2) {
        for (size_t i = 0; i < n; i++) {
            hb[i] = to_bf16(buf[i]);
            uint32_t u = (uint32_t)hb[i] << 16;
            memcpy(&wb[i], &u, 4);
        }
        CHECK_INT(op_attention_bf16(wb, qs, wb + ko, wb + vo, kvs, B, Lq, Lk, heads, dh, scale,
                                    causal, o1),
                  0);
        CHECK_INT(op_attention_bf16in(hb, qs, hb + ko, hb + vo, kvs, B, Lq, Lk, heads, dh, scale,
                                      causal, o2),
                  0);
        CHECK(memcmp(o1, o2, on * sizeof(float)) == 0);
        /* bf16 out: the same values rounded (wb reused: on <= n) */
        uint16_t *ob = (uint16_t *)wb;
        CHECK_INT(op_attention_bf16io(hb, qs, hb + ko, hb + vo, kvs, B, Lq, Lk, heads, dh, scale,
                                      causal, ob),
                  0);
        size_t bad = 0;
        for (size_t i = 0; i < on; i++)
            bad += ob[i] != to_bf16(o2[i]);
        CHECK_INT(bad, 0);
        double mx = 0, mean = 0;
        for (size_t i = 0; i < on; i++) {
            double e = fabs((double)o2[i] - ref[i]);
            mx = e > mx ? e : mx;
            mean += e;
        }
        mean /= (double)on;
        printf("  bf16 inputs: max %.2e mean %.2e\n", mx, mean);
        CHECK(mx <= tmax);
        CHECK(mean <= tmean);
    }
    free(hb);
    free(wb);
    free(o1);
    free(o2);
}
static int ran_bf16, ran_f32;

/* rise > 0: key j's row is scaled by 1 + rise * j / Lk, so the scores' maximum grows from key block
 * to key block and every block rescales the running output (alpha < 1 in every lane). jump > 0:
 * every query's first dimension is 1 and every key's 0, but jump for keys 768-1023 (the fourth key
 * block of 256), so every score of that block rises by jump * scale * log2(e) log2 units over the
 * others (jump 128 at dh 40: +29.2, past the kernel's margin of 16: its reference moves mid-row;
 * 52: +11.9, inside it: the reference stays and that block's P reach 2^12). Both are exact in bf16
 * and shift a whole block alike, so the rounding of the big product cancels in the softmax. */
static void run_case_x(int B, int Lq, int Lk, int heads, int dh, int causal, int fused, float qmul,
                       float rise, float jump)
{
    int C = heads * dh;
    int qs = fused ? 3 * C : C, kvs = fused ? 3 * C : C;
    size_t nq = (size_t)B * Lq * qs, nk = (size_t)B * Lk * kvs;
    if (fused && Lq != Lk)
        return;
    float *qbuf = malloc((fused ? nq : nq + 2 * nk) * sizeof(float));
    CHECK(qbuf != NULL);
    if (!qbuf)
        return;
    float *kbuf = fused ? qbuf + C : qbuf + nq, *vbuf = fused ? qbuf + 2 * C : qbuf + nq + nk;
    for (size_t i = 0; i < (fused ? nq : nq + 2 * nk); i++)
        qbuf[i] = frand();
    if (!fused)
        for (size_t i = 0; i < nq; i++)
            qbuf[i] *= qmul;
    if (rise > 0 && !fused)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Lk; j++)
                for (int c = 0; c < kvs; c++)
                    kbuf[((size_t)b * Lk + j) * kvs + c] *= 1.0f + rise * (float)j / (float)Lk;
    if (jump > 0 && !fused)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < Lq; i++)
                    qbuf[((size_t)b * Lq + i) * qs + (size_t)h * dh] = 1.0f;
                for (int j = 0; j < Lk; j++)
                    kbuf[((size_t)b * Lk + j) * kvs + (size_t)h * dh] =
                        j >= 768 && j < 1024 ? jump : 0.0f;
            }
    size_t on = (size_t)B * Lq * C;
    float *out = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float)),
          *f32 = malloc(on * sizeof(float));
    CHECK(out && ref && f32);
    if (!out || !ref || !f32)
        return;
    float scale = 1.0f / sqrtf((float)dh);
    ref_attention(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, ref);
    CHECK_INT(
        op_attention_bf16(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, out), 0);
    CHECK_INT(op_attention(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, f32), 0);
    double mx = 0, mean = 0;
    for (size_t i = 0; i < on; i++) {
        double e = fabs((double)out[i] - ref[i]);
        mx = e > mx ? e : mx;
        mean += e;
    }
    mean /= (double)on;
    int same = memcmp(out, f32, on * sizeof(float)) == 0;
    ran_bf16 += !same;
    ran_f32 += same;
    double tmax = qmul > 1 ? 3e-2 : 8e-3, tmean = qmul > 1 ? 5e-3 : 2e-3;
    printf("bf16 attention B%d Lq%d Lk%d heads%d dh%d causal%d fused%d qmul%g rise%g jump%g: max "
           "%.2e mean %.2e%s\n",
           B, Lq, Lk, heads, dh, causal, fused, qmul, rise, jump, mx, mean,
           same ? " (f32 kernel)" : "");
    CHECK(mx <= tmax);
    CHECK(mean <= tmean);
    check_bf16in(qbuf, fused ? nq : nq + 2 * nk, (size_t)(kbuf - qbuf), (size_t)(vbuf - qbuf), qs,
                 kvs, B, Lq, Lk, heads, dh, scale, causal, ref, tmax, tmean);
    /* one thread gives the same numbers: tasks are independent and the packing is exact */
    op_set_threads(1);
    CHECK_INT(
        op_attention_bf16(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, f32), 0);
    op_set_threads(2);
    CHECK(memcmp(out, f32, on * sizeof(float)) == 0);
    free(qbuf);
    free(out);
    free(ref);
    free(f32);
}

static void run_case_r(int B, int Lq, int Lk, int heads, int dh, int causal, int fused, float qmul,
                       float rise)
{
    run_case_x(B, Lq, Lk, heads, dh, causal, fused, qmul, rise, 0);
}

static void run_case(int B, int Lq, int Lk, int heads, int dh, int causal, int fused, float qmul)
{
    run_case_r(B, Lq, Lk, heads, dh, causal, fused, qmul, 0);
}

int main(void)
{
    const char *amx = getenv("MUS2PIC_AMX"), *dot = getenv("MUS2PIC_BF16DOT");
    int amx_on = !(amx && strcmp(amx, "0") == 0), dot_on = !(dot && strcmp(dot, "0") == 0);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[16384];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) {
            int bf16 = strstr(line, " avx512_bf16") != NULL;
            int tiles = strstr(line, " amx_bf16") && strstr(line, " amx_tile");
            bf16_expected = bf16 && ((tiles && amx_on) || dot_on);
            printf("CPU: avx512_bf16 %d, AMX %d; MUS2PIC_AMX %s, MUS2PIC_BF16DOT %s\n", bf16, tiles,
                   amx ? amx : "unset", dot ? dot : "unset");
            break;
        }
    if (f)
        fclose(f);
    /* the bf16 kernels are in the AVX-512 build only (MUS2PIC_CPU=generic or avx2 caps the
     * choice, and m2p_cpu_kernels says which build runs) */
    if (strcmp(m2p_cpu_kernels(), "generic") == 0 || strcmp(m2p_cpu_kernels(), "avx2") == 0)
        bf16_expected = 0;
    op_set_threads(2);
    run_case(1, 4096 / 8, 4096 / 8, 8, 40, 0, 1, 1); /* UNet level 0 self, fused qkv */
    run_case(2, 300, 77, 8, 40, 0, 0, 1);            /* UNet cross attention, batch 2 */
    run_case(1, 256, 256, 8, 80, 0, 0, 1);           /* level 1 */
    run_case(1, 100, 64, 8, 160, 0, 0, 1);           /* level 2: dh 160 */
    run_case(1, 256, 256, 1, 512, 0, 1, 1);          /* VAE mid: one head of 512 */
    run_case(2, 77, 77, 12, 64, 1, 1, 1);            /* CLIP ViT-L, causal */
    run_case(1, 200, 200, 2, 29, 1, 0, 1);           /* causal, odd dh, many tiles */
    run_case(1, 33, 300, 2, 40, 0, 0, 1);            /* Lk > 2 key blocks, one query tile */
    run_case(3, 17, 5, 3, 20, 0, 0, 1);              /* tiny: one partial tile each way */
    run_case(1, 1, 1, 1, 1, 0, 0, 1);                /* degenerate */
    run_case(1, 90, 150, 2, 40, 0, 0, 10);           /* big scores: softmax stability */
    /* the kernel's pipeline: S^T of key block i + 1 and P V of block i - 1 run during block i's
     * softmax, from two buffers each (blocks of 256 keys); these cover 1, 2 and 5 blocks with a
     * short last block (257: one key; 333: 77), running maxima that grow every block, causal
     * rows over two blocks, and the VAE's 32 dimension tiles */
    run_case_r(1, 64, 257, 8, 40, 0, 0, 4, 3);
    run_case_r(2, 45, 333, 3, 40, 0, 0, 4, 3);
    run_case_r(1, 40, 205, 2, 64, 0, 0, 1, 0);
    run_case_r(1, 300, 300, 2, 40, 1, 0, 4, 3);
    run_case_r(1, 70, 1100, 1, 512, 0, 0, 2, 2);
    /* the kernel keeps a reference per query that moves only when a block's scores rise more than
     * 16 log2 units above it: 6 blocks where block 3 jumps by +29 (it moves mid-row), by +12 (it
     * never moves; P up to 2^12), causal over the jump, and 6 plain blocks (it never moves) */
    run_case_x(1, 70, 1400, 2, 40, 0, 0, 1, 0, 128);
    run_case_x(1, 70, 1400, 2, 40, 0, 0, 1, 0, 52);
    run_case_x(1, 1100, 1100, 1, 40, 1, 0, 1, 0, 128);
    run_case_x(1, 70, 1400, 2, 40, 0, 0, 1, 0, 0);
    if (bf16_expected) {
        CHECK(ran_bf16 > 0);
        CHECK_INT(ran_f32, 0);
    } else {
        CHECK_INT(ran_bf16, 0);
        printf("no AMX or AVX512-BF16 here (or turned off): op_attention_bf16 ran the f32 "
               "kernel\n");
    }
    float x[4] = {0};
    CHECK(op_attention_bf16(x, 1, x, x, 1, 1, 1, 1, 2, 1, 1.0f, 0, x) != 0);
    uint16_t xb[4] = {0};
    CHECK(op_attention_bf16in(xb, 1, xb, xb, 1, 1, 1, 1, 2, 1, 1.0f, 0, x) != 0);
    CHECK(op_attention_bf16io(xb, 1, xb, xb, 1, 1, 1, 1, 2, 1, 1.0f, 0, xb) != 0);
    TEST_DONE();
}
