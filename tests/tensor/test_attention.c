/*
 * test_attention.c — op_attention against a plain double-precision softmax(q k^T * scale) v:
 * self and cross attention (Lk = 77), Lk != Lq, causal (CLIP), strided q/k/v as in a fused
 * qkv buffer, head sizes 8 / 20 / 40 / 64 / 80 / 160 / 512 and sizes that are not multiples of
 * the kernel's blocks, large scores (softmax stability), and 1 vs 2 threads.
 */
#include "attention_ref.h"
#include "tensor/ops.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(void)
{
    return attn_frand(&rng);
}

/* fused: q, k, v live in one [L, 3C] buffer (strides 3C), as a packed qkv projection would */
static void run_case(int B, int Lq, int Lk, int heads, int dh, int causal, int fused, float qmul)
{
    int C = heads * dh;
    int qs = fused ? 3 * C : C, kvs = fused ? 3 * C : C;
    float *qbuf, *kbuf, *vbuf, *pack = NULL;
    if (fused) {
        if (Lq != Lk)
            return;
        pack = malloc((size_t)B * Lq * 3 * C * sizeof(float));
        for (size_t i = 0; i < (size_t)B * Lq * 3 * C; i++)
            pack[i] = frand();
        qbuf = pack;
        kbuf = pack + C;
        vbuf = pack + 2 * C;
    } else {
        qbuf = malloc((size_t)B * Lq * C * sizeof(float));
        kbuf = malloc((size_t)B * Lk * C * sizeof(float));
        vbuf = malloc((size_t)B * Lk * C * sizeof(float));
        for (size_t i = 0; i < (size_t)B * Lq * C; i++)
            qbuf[i] = frand() * qmul;
        for (size_t i = 0; i < (size_t)B * Lk * C; i++) {
            kbuf[i] = frand();
            vbuf[i] = frand();
        }
    }
    size_t on = (size_t)B * Lq * C;
    float *out = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float)),
          *out1 = malloc(on * sizeof(float));
    float scale = 1.0f / sqrtf((float)dh);
    ref_attention(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, ref);
    int rc = op_attention(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, out);
    CHECK_INT(rc, 0);
    char what[160];
    snprintf(what, sizeof what, "attention B%d Lq%d Lk%d heads%d dh%d causal%d fused%d qmul%g", B,
             Lq, Lk, heads, dh, causal, fused, qmul);
    CHECK(test_max_abs_diff(out, ref, on, what) <= 2e-6 * (qmul > 1 ? 4 : 1));
    /* one thread gives the same numbers within float reassociation */
    op_set_threads(1);
    op_attention(qbuf, qs, kbuf, vbuf, kvs, B, Lq, Lk, heads, dh, scale, causal, out1);
    op_set_threads(2);
    CHECK(test_max_abs_diff(out1, out, on, "  1 thread vs 2") <= 1e-6);
    if (fused) {
        free(pack);
    } else {
        free(qbuf);
        free(kbuf);
        free(vbuf);
    }
    free(out);
    free(ref);
    free(out1);
}

int main(void)
{
    op_set_threads(2);
    run_case(1, 77, 77, 4, 8, 1, 0, 1);    /* CLIP (tiny) */
    run_case(2, 77, 77, 12, 64, 1, 0, 1);  /* CLIP ViT-L */
    run_case(1, 70, 70, 2, 20, 1, 1, 1);   /* causal across two key blocks, fused qkv */
    run_case(2, 100, 77, 8, 40, 0, 0, 1);  /* UNet cross attention */
    run_case(1, 130, 130, 2, 80, 0, 1, 1); /* self attention, fused qkv */
    run_case(1, 64, 64, 8, 40, 0, 0, 1);   /* exact blocks */
    run_case(1, 33, 200, 2, 160, 0, 0, 1); /* Lk > Lq, dh 160 */
    run_case(1, 200, 33, 2, 160, 0, 0, 1); /* Lk < Lq */
    run_case(1, 5, 3, 3, 20, 0, 0, 1);     /* tiny */
    run_case(1, 1, 1, 1, 1, 0, 0, 1);      /* degenerate */
    run_case(1, 64, 64, 1, 512, 0, 0, 1);  /* VAE mid attention: one head of 512 */
    run_case(1, 67, 67, 1, 32, 0, 0, 1);   /* VAE tiny fixture: one head of 32 */
    run_case(1, 90, 150, 2, 40, 0, 0, 30); /* big scores: softmax stability */
    run_case(3, 17, 17, 5, 24, 1, 0, 10);  /* causal, big scores, batch 3 */
    run_case(1, 200, 200, 2, 29, 1, 1, 1); /* causal over several query tiles and key blocks */
    run_case(2, 130, 77, 3, 135, 0, 0, 1); /* dh 135: two q chunks, 3 dims left over */
    run_case(1, 100, 250, 1, 11, 0, 0, 1); /* dh 11: 5 dims left over, Lk past two key blocks */
    /* bad sizes are an error, not a crash */
    float x[4] = {0};
    CHECK(op_attention(x, 1, x, x, 1, 1, 1, 1, 2, 1, 1.0f, 0, x) != 0);
    TEST_DONE();
}
