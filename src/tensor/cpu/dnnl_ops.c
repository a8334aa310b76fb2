/*
 * dnnl_ops.c — convolution and linear layers through oneDNN (v2.x C API) (the compute thread
 * count is threads.c's). Activations stay float32 NHWC / [rows, in] in the caller's buffers.
 * Weights arrive in PyTorch layouts (oihw, [out, in]) and are reordered once, at create, into the
 * layout and data type (f32 or bf16) the primitive prefers ("format any"). Primitives depend on the
 * input size, so each op keeps a small cache of them keyed by size. With bf16 weights the input
 * is converted to bf16 in a per-thread scratch buffer and accumulation stays in f32; the
 * op_*_forward_pre entry points have a norm / GEGLU / upsample kernel (kernels.c) write that bf16
 * input itself instead (one pass less over the activation, no f32 copy of it). A residual add is
 * oneDNN's sum post-op: y is preloaded with the residual and the primitive adds into it. A bf16
 * linear or conv whose only reader is a bf16 kernel (the feed-forward's GEGLU, the resnets'
 * second GroupNorm) may write bf16 itself (op_linear_forward_bf16, op_conv_forward_bf16: the
 * primitive's dst is bf16, rounded after the f32 accumulation), and one whose input is bf16
 * already (the attention's output) reads it as it is (op_linear_forward_bf16in). On CPUs
 * without AVX-512 an f32 conv on a big map runs in the blocked nChw8c layout instead, its input,
 * residual and output reordered around it, in bands of rows when those copies would be big
 * (conv_blocked, conv_forward_banded).
 */
#define _GNU_SOURCE
#include "tensor/ops.h"

#include "core/error.h"
#include "mus2pic.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tensor/cpu/cpu.h"

/* ---------------------------------------------------------------------------------------- */
/* Engine, stream, threads, scratch                                                         */
/* ---------------------------------------------------------------------------------------- */

static dnnl_engine_t g_engine;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_engine_status = dnnl_success;

/* Per-thread state (stream, scratch) is released when its thread exits: thread_state_used
 * registers the calling thread for that. */
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static void thread_state_free(void *p);

static void key_init(void)
{
    pthread_key_create(&g_key, thread_state_free);
}

static void thread_state_used(void)
{
    pthread_once(&g_key_once, key_init);
    pthread_setspecific(g_key, (void *)1); /* non-NULL: run the destructor at exit */
}

static void engine_init(void)
{
    g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

static dnnl_engine_t engine(void)
{
    pthread_once(&g_once, engine_init);
    return g_engine_status == dnnl_success ? g_engine : NULL;
}

/* The primitive descriptor for op_desc: oneDNN's first (best) implementation, except in
 * AddressSanitizer builds, which skip "brgconv:avx512_core_amx". oneDNN 2.6.3's AMX brgemm
 * convolution reads one 8-byte entry past the end of a heap array of its own while it generates
 * its kernel (index = length, seen with gdb at every such conv: a 16-entry array in a 144-byte
 * glibc chunk read at [16]). In a glibc heap those bytes are the next chunk's header, always
 * mapped; ASan's allocator can end the array at an unmapped page, and then the run dies with a
 * SEGV inside libdnnl (1 run in 20 of a bf16 generate at 16 threads here, once in CI). Release
 * builds keep the implementation; sanitized ones take the next one oneDNN offers. */
#if defined(__SANITIZE_ADDRESS__)
#define M2P_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define M2P_ASAN_BUILD 1
#endif
#endif
static dnnl_status_t pd_create(dnnl_primitive_desc_t *pd, const void *op_desc,
                               const_dnnl_primitive_attr_t attr)
{
#ifdef M2P_ASAN_BUILD
    dnnl_primitive_desc_iterator_t it = NULL;
    dnnl_status_t st = dnnl_primitive_desc_iterator_create(&it, op_desc, attr, engine(), NULL);
    if (st != dnnl_success)
        return st;
    do {
        dnnl_primitive_desc_t cur = dnnl_primitive_desc_iterator_fetch(it);
        const char *impl = NULL;
        if (cur &&
            dnnl_primitive_desc_query(cur, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
            impl && strncmp(impl, "brgconv:avx512_core_amx", 23) != 0) {
            *pd = cur;
            dnnl_primitive_desc_iterator_destroy(it);
            return dnnl_success;
        }
        if (cur)
            dnnl_primitive_desc_destroy(cur);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
#endif
    return dnnl_primitive_desc_create(pd, op_desc, attr, engine(), NULL);
}

/* One stream per calling thread (a CPU stream is cheap; oneDNN streams are not meant to be
 * shared between threads that execute concurrently). */
static _Thread_local dnnl_stream_t t_stream;

static _Thread_local void *t_scratch[OPS_SCRATCH_SLOTS];
static _Thread_local size_t t_scratch_size[OPS_SCRATCH_SLOTS];

static void thread_state_free(void *p)
{
    (void)p;
    if (t_stream)
        dnnl_stream_destroy(t_stream);
    t_stream = NULL;
    for (int i = 0; i < OPS_SCRATCH_SLOTS; i++) {
        free(t_scratch[i]);
        t_scratch[i] = NULL;
        t_scratch_size[i] = 0;
    }
}

static dnnl_stream_t stream(void)
{
    if (!t_stream && engine()) {
        dnnl_stream_create(&t_stream, engine(), dnnl_stream_default_flags);
        thread_state_used();
    }
    return t_stream;
}

int op_bf16_supported(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

/* oneDNN has no bf16 convolution or matmul for CPUs without AVX512-BF16 (plain AVX2, say): it
 * answers "unimplemented", which would read as an internal error */
static int bf16_refused(const char *what)
{
    return m2p_error(M2P_EUNSUPPORTED,
                     "%s: bf16 needs a CPU with avx512_bf16 or AMX, which this one "
                     "lacks; use f32 (--dtype f32)",
                     what);
}

/* Bytes the kernel could hand out as 2 MiB pages right now without compacting memory: free
 * buddy blocks of order >= 9 (/proc/buddyinfo). 0 when unknown. */
static size_t free_huge_bytes(void)
{
    FILE *f = fopen("/proc/buddyinfo", "r");
    if (!f)
        return 0;
    char line[512];
    size_t pages = 0; /* in 4 KiB units */
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "zone");
        if (!p)
            continue;
        p += 4;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ') /* the zone name */
            p++;
        for (int order = 0;; order++) {
            char *end;
            unsigned long long cnt = strtoull(p, &end, 10);
            if (end == p)
                break;
            if (order >= 9)
                pages += (size_t)cnt << order;
            p = end;
        }
    }
    fclose(f);
    return pages * 4096;
}

/* Big buffers are 2 MiB aligned. Huge pages only while free 2 MiB blocks exist, and for weights
 * only on request (M2P_THP=1, for a long-running server: about 1 s less per 4-step 512² image
 * from fewer TLB misses): measured here, advised weights made a cold model load 2.0-6.1 s
 * instead of 1.6-1.9 s (zeroing and, with defrag=madvise, direct compaction in the faults; once
 * 13 s), so by default the load stays robust within its 2 s target. Activations (scratch, the
 * networks' arenas) get them unless M2P_THP=0: a fresh process faults in every page of them
 * once, 4 KiB at a time without (the VAE's 512² maps: about 1.2 s of a 512² bf16 decode on an
 * AVX-512 EPYC, BENCHMARKS.md). */
void *ops_big_alloc(size_t n, int activations)
{
    const size_t huge = (size_t)2 << 20, reserve = (size_t)256 << 20;
    if (n < 2 * huge)
        return aligned_alloc(64, (n + 63) & ~(size_t)63);
    void *p = NULL;
    if (posix_memalign(&p, huge, n) != 0)
        return NULL;
    const char *thp = getenv("M2P_THP");
    int advise = thp && *thp ? !strcmp(thp, "1") : activations;
    if (advise && free_huge_bytes() >= n + reserve)
        madvise(p, n & ~(huge - 1), MADV_HUGEPAGE);
    return p;
}

void *ops_scratch(int slot, size_t n)
{
    if (n > t_scratch_size[slot]) {
        thread_state_used();
        free(t_scratch[slot]);
        t_scratch[slot] = ops_big_alloc(n, 1);
        t_scratch_size[slot] = t_scratch[slot] ? n : 0;
    }
    return t_scratch[slot];
}

#define DNNL_TRY(call, what)                                                                       \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            rc = m2p_error(M2P_EINTERNAL, "oneDNN: %s failed (status %d)", what, (int)st_);        \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int exec(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args)
{
    dnnl_stream_t s = stream();
    if (!s)
        return m2p_error(M2P_EINTERNAL, "oneDNN: no CPU stream");
    dnnl_status_t st = dnnl_primitive_execute(p, s, nargs, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(s);
    if (st != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: execute failed (status %d)", (int)st);
    return 0;
}

/* Reorder src (memory desc + pointer) into dst (desc + pointer), one-off. */
static int reorder_once(const dnnl_memory_desc_t *smd, const void *src,
                        const dnnl_memory_desc_t *dmd, void *dst)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t sm = NULL, dm = NULL;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, smd, engine(), dmd, engine(), NULL),
             "reorder desc");
    DNNL_TRY(dnnl_primitive_create(&p, pd), "reorder create");
    DNNL_TRY(dnnl_memory_create(&sm, smd, engine(), (void *)src), "memory");
    DNNL_TRY(dnnl_memory_create(&dm, dmd, engine(), dst), "memory");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, sm}, {DNNL_ARG_TO, dm}};
    rc = exec(p, 2, args);
fail:
    if (sm)
        dnnl_memory_destroy(sm);
    if (dm)
        dnnl_memory_destroy(dm);
    if (p)
        dnnl_primitive_destroy(p);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* f32 -> bf16 conversion of an activation (same plain layout): a cached reorder primitive. */
typedef struct {
    int64_t n;
    dnnl_primitive_t p;
    dnnl_memory_t src, dst;
} cvt_entry;

static void cvt_free(cvt_entry *c)
{
    if (c->p)
        dnnl_primitive_destroy(c->p);
    if (c->src)
        dnnl_memory_destroy(c->src);
    if (c->dst)
        dnnl_memory_destroy(c->dst);
    memset(c, 0, sizeof *c);
}

static int cvt_init(cvt_entry *c, const dnnl_memory_desc_t *f32md, const dnnl_memory_desc_t *bfmd)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, f32md, engine(), bfmd, engine(), NULL),
             "bf16 reorder desc");
    DNNL_TRY(dnnl_primitive_create(&c->p, pd), "bf16 reorder");
    DNNL_TRY(dnnl_memory_create(&c->src, f32md, engine(), DNNL_MEMORY_NONE), "memory");
    DNNL_TRY(dnnl_memory_create(&c->dst, bfmd, engine(), DNNL_MEMORY_NONE), "memory");
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int cvt_run(cvt_entry *c, const float *x, void *out)
{
    dnnl_memory_set_data_handle(c->src, (void *)x);
    dnnl_memory_set_data_handle(c->dst, out);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, c->src}, {DNNL_ARG_TO, c->dst}};
    return exec(c->p, 2, args);
}

static dnnl_data_type_t wdt(int dtype)
{
    return dtype == M2P_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
}

static int make_attr(int sum, dnnl_primitive_attr_t *attr)
{
    *attr = NULL;
    if (!sum)
        return 0;
    dnnl_post_ops_t po = NULL;
    if (dnnl_primitive_attr_create(attr) != dnnl_success ||
        dnnl_post_ops_create(&po) != dnnl_success ||
        dnnl_post_ops_append_sum(po, 1.0f) != dnnl_success ||
        dnnl_primitive_attr_set_post_ops(*attr, po) != dnnl_success) {
        if (po)
            dnnl_post_ops_destroy(po);
        if (*attr)
            dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
        return m2p_error(M2P_EINTERNAL, "oneDNN: post-op attribute failed");
    }
    dnnl_post_ops_destroy(po);
    return 0;
}

/* A weights buffer in the layout some primitive wants. */
typedef struct {
    dnnl_memory_desc_t md;
    void *data;
    dnnl_memory_t mem;
    int borrowed; /* data belongs to someone else (a mapped weight cache), not freed here */
} wbuf;

static void wbuf_free(wbuf *w)
{
    if (w->mem)
        dnnl_memory_destroy(w->mem);
    if (!w->borrowed)
        free(w->data);
    memset(w, 0, sizeof *w);
}

static int wbuf_make(wbuf *w, const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *srcmd,
                     const void *src)
{
    w->md = *md;
    size_t sz = dnnl_memory_desc_get_size(md);
    w->data = ops_big_alloc(sz, 0);
    if (!w->data)
        return m2p_error(M2P_ENOMEM, "out of memory for weights (%zu bytes)", sz);
    int rc = reorder_once(srcmd, src, md, w->data);
    if (rc)
        return rc;
    if (dnnl_memory_create(&w->mem, md, engine(), w->data) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: weights memory failed");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* What conv and linear share: weights, bias and a small cache of per-size primitives        */
/* ---------------------------------------------------------------------------------------- */

#define DNNL_TRY_OP(call, op, what)                                                                \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            rc = m2p_error(M2P_EINTERNAL, "oneDNN: %s %s failed (status %d)", op, what, (int)st_); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

#define PRIM_CACHE 6

/* One primitive for one input size. key: conv {B, H, W, sum | dst_bf16 << 1}, linear {rows, sum,
 * dst_bf16, 0} (dst_bf16: op_*_forward_bf16's bf16 output). */
typedef struct {
    int key[4];
    unsigned long last;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst;
    wbuf own_w; /* only when this size wants another weights layout */
    cvt_entry cvt;
    size_t src_bf16_bytes;
    /* an f32 conv in the blocked layout (conv_blocked): reorders from NHWC x and residual,
     * and back to NHWC y, through two per-thread scratch buffers */
    cvt_entry blk_in, blk_res, blk_out;
    size_t blk_src_bytes, blk_dst_bytes;
} prim_entry;

typedef struct {
    int dtype;
    wbuf w;             /* weights in the layout chosen at create */
    dnnl_memory_t bias; /* f32 [out], or NULL */
    float *bias_data;
    prim_entry cache[PRIM_CACHE];
    unsigned long tick;
    void (*keep_release)(void *); /* called at free when w.data is borrowed */
    void *keep_ud;
} prim_op;

static void prim_entry_free(prim_entry *e)
{
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->src)
        dnnl_memory_destroy(e->src);
    if (e->dst)
        dnnl_memory_destroy(e->dst);
    wbuf_free(&e->own_w);
    cvt_free(&e->cvt);
    cvt_free(&e->blk_in);
    cvt_free(&e->blk_res);
    cvt_free(&e->blk_out);
    memset(e, 0, sizeof *e);
}

static void prim_op_free(prim_op *o)
{
    for (int i = 0; i < PRIM_CACHE; i++)
        prim_entry_free(&o->cache[i]);
    wbuf_free(&o->w);
    if (o->bias)
        dnnl_memory_destroy(o->bias);
    free(o->bias_data);
    if (o->keep_release)
        o->keep_release(o->keep_ud);
    o->keep_release = NULL;
}

/* Keeps a copy of the f32 bias (n values) as a oneDNN memory of shape {n} (ndim 1) or {1, n}. */
static int prim_op_bias(prim_op *o, const float *bias, int n, int ndim)
{
    int rc = 0;
    o->bias_data = malloc((size_t)n * sizeof(float));
    if (!o->bias_data)
        return m2p_error(M2P_ENOMEM, "out of memory");
    memcpy(o->bias_data, bias, (size_t)n * sizeof(float));
    dnnl_dims_t bd = {1, n};
    if (ndim == 1)
        bd[0] = n;
    dnnl_memory_desc_t bmd;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&bmd, ndim, bd, dnnl_f32, ndim == 1 ? dnnl_a : dnnl_ab),
             "bias desc");
    DNNL_TRY(dnnl_memory_create(&o->bias, &bmd, engine(), o->bias_data), "bias memory");
fail:
    return rc;
}

/* Reorders the f32 PyTorch-layout weights `w` (described by srcmd) once into the layout that
 * the primitive of op_desc (a typical size) prefers. */
static int prim_op_weights(prim_op *o, const void *op_desc, const dnnl_memory_desc_t *srcmd,
                           const float *w, const char *op)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    DNNL_TRY_OP(pd_create(&pd, op_desc, NULL), op, "primitive desc");
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    rc = wbuf_make(&o->w, wmd, srcmd, w);
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Uses prepared weights (op_prepared) as they are when their layout is the one the primitive
 * of op_desc prefers now: 0 and o->w borrows data, 1 when the layout differs (another CPU or
 * oneDNN wrote them), negative on error. */
static int prim_op_weights_prepared(prim_op *o, const void *op_desc, const op_prepared *pw,
                                    const char *op)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    if (pw->layout_size != sizeof(dnnl_memory_desc_t))
        return 1;
    dnnl_memory_desc_t md;
    memcpy(&md, pw->layout, sizeof md);
    DNNL_TRY_OP(pd_create(&pd, op_desc, NULL), op, "primitive desc");
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!dnnl_memory_desc_equal(wmd, &md) || dnnl_memory_desc_get_size(wmd) != pw->size ||
        ((uintptr_t)pw->data & 63) != 0) {
        rc = 1;
        goto fail;
    }
    o->w.md = *wmd;
    o->w.data = (void *)pw->data;
    o->w.borrowed = 1;
    if (dnnl_memory_create(&o->w.mem, wmd, engine(), o->w.data) != dnnl_success)
        rc = m2p_error(M2P_EINTERNAL, "oneDNN: weights memory failed");
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

static void prim_op_prepared(const prim_op *o, op_prepared *pw)
{
    pw->layout = &o->w.md;
    pw->layout_size = sizeof o->w.md;
    pw->data = o->w.data;
    pw->size = dnnl_memory_desc_get_size(&o->w.md);
}

/* The cached primitive for `key`; NULL when there is none, with *victim the free or least
 * recently used slot. */
static prim_entry *prim_op_find(prim_op *o, const int key[4], prim_entry **victim)
{
    prim_entry *v = &o->cache[0];
    for (int i = 0; i < PRIM_CACHE; i++) {
        prim_entry *ce = &o->cache[i];
        if (ce->prim && memcmp(ce->key, key, sizeof ce->key) == 0)
            return ce;
        if (!ce->prim || (v->prim && ce->last < v->last))
            v = ce;
    }
    *victim = v;
    return NULL;
}

/* Builds e, the primitive of op_desc (one input size): a sum post-op when `sum`, its own
 * weights copy when this size wants another layout than o->w, src/dst memories whose data
 * handles are set per call, and for bf16 the conversion from the plain f32 input f32src.
 * `op` and `label` name it in messages. */
static int prim_entry_init(prim_op *o, prim_entry *e, const int key[4], int sum,
                           const void *op_desc, const dnnl_memory_desc_t *f32src, const char *op,
                           const char *label)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    memcpy(e->key, key, sizeof e->key);
    rc = make_attr(sum, &attr);
    if (rc)
        goto fail;
    DNNL_TRY_OP(pd_create(&pd, op_desc, attr), op, "primitive desc");
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!dnnl_memory_desc_equal(wmd, &o->w.md)) {
        M2P_LOGD("%s wants another weights layout; reordering", label);
        rc = wbuf_make(&e->own_w, wmd, &o->w.md, o->w.data);
        if (rc)
            goto fail;
    }
    DNNL_TRY_OP(dnnl_primitive_create(&e->prim, pd), op, "primitive");
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    DNNL_TRY(dnnl_memory_create(&e->src, smd, engine(), DNNL_MEMORY_NONE), "memory");
    DNNL_TRY(dnnl_memory_create(&e->dst, dmd, engine(), DNNL_MEMORY_NONE), "memory");
    if (o->dtype == M2P_DTYPE_BF16) {
        rc = cvt_init(&e->cvt, f32src, smd);
        if (rc)
            goto fail;
        e->src_bf16_bytes = dnnl_memory_desc_get_size(smd);
    }
fail:
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        prim_entry_free(e);
    return rc;
}

/* Where the bf16 input comes from when the op computes in bf16: a copy of x made by oneDNN's
 * reorder (pre NULL), or pre's kernel writing bf16 straight into the scratch. */
typedef struct {
    const op_pre *pre;
    int B, H, W, C; /* pre's output, the op's input: [B, H, W, C] (a linear's: W = 1) */
} pre_call;

static int pre_run_bf16(const pre_call *pc, const float *x, uint16_t *out)
{
    const op_pre *p = pc->pre;
    switch (p->kind) {
    case OP_PRE_GROUPNORM:
        return op_groupnorm_bf16(x, pc->B, pc->H * pc->W, pc->C, p->groups, p->eps, p->gamma,
                                 p->beta, p->silu, out);
    case OP_PRE_LAYERNORM:
        op_layernorm_bf16(x, pc->B * pc->H * pc->W, pc->C, p->eps, p->gamma, p->beta, out);
        return 0;
    case OP_PRE_GEGLU:
        op_geglu_bf16(x, pc->B * pc->H * pc->W, pc->C, out);
        return 0;
    case OP_PRE_GEGLU_BF16:
        op_geglu_from_bf16((const uint16_t *)x, pc->B * pc->H * pc->W, pc->C, NULL, out);
        return 0;
    case OP_PRE_GROUPNORM_BF16:
        return op_groupnorm_from_bf16((const uint16_t *)x, p->add, pc->B, pc->H * pc->W, pc->C,
                                      p->groups, p->eps, p->gamma, p->beta, p->silu, NULL, out);
    case OP_PRE_UPSAMPLE2X:
        op_upsample2x_bf16(x, pc->B, pc->H / 2, pc->W / 2, pc->C, out);
        return 0;
    default:
        return m2p_error(M2P_EINTERNAL, "unknown pre-op %d", p->kind);
    }
}

/* y = residual (n floats), for the sum post-op, on every compute thread: a 64x64x320 residual
 * is 5 MiB, and one thread copying it kept the other waiting (memmove was 1.1 % of a UNet
 * step's samples, and the idle thread's spin in libgomp as much again). */
static void copy_residual(float *y, const float *residual, size_t n)
{
    if (n < ((size_t)1 << 16)) {
        memcpy(y, residual, n * sizeof(float));
        return;
    }
    ops_sync_threads();
#pragma omp parallel
    {
        const size_t t = (size_t)omp_get_thread_num(), k = (size_t)omp_get_num_threads();
        size_t a = (n / k * t) & ~(size_t)15, b = t + 1 == k ? n : (n / k * (t + 1)) & ~(size_t)15;
        memcpy(y + a, residual + a, (b - a) * sizeof(float));
    }
}

/* e's primitive from src to dst, both in the layouts e was built for */
static int prim_entry_exec(const prim_op *o, prim_entry *e, const void *src, void *dst)
{
    dnnl_memory_set_data_handle(e->src, (void *)src);
    dnnl_memory_set_data_handle(e->dst, dst);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, e->src},
        {DNNL_ARG_WEIGHTS, e->own_w.mem ? e->own_w.mem : o->w.mem},
        {DNNL_ARG_DST, e->dst},
        {DNNL_ARG_BIAS, o->bias},
    };
    return exec(e->prim, o->bias ? 4 : 3, args);
}

/* x -> y through e; y (f32, or bf16 when e was built so) is first loaded with `residual` (ny
 * floats) unless it already holds it, and a bf16 op reads a bf16 copy of x (or pre(x), when pc)
 * from the per-thread scratch, or x itself when pc's pre is NULL (x already holds bf16 values:
 * op_linear_forward_bf16in). */
static int prim_entry_run(prim_op *o, prim_entry *e, const float *x, const pre_call *pc, void *y,
                          const float *residual, size_t ny)
{
    e->last = ++o->tick;
    const void *src = x;
    if (o->dtype == M2P_DTYPE_BF16 && pc && !pc->pre) {
        if (residual && residual != y)
            copy_residual(y, residual, ny);
    } else if (o->dtype == M2P_DTYPE_BF16) {
        void *buf = ops_scratch(OPS_SCRATCH_BF16, e->src_bf16_bytes);
        if (!buf)
            return m2p_error(M2P_ENOMEM, "out of memory for a bf16 input copy");
        int rc = pc ? pre_run_bf16(pc, x, buf) : 0;
        if (rc)
            return rc;
        if (residual && residual != y) /* after pre, which may read y's memory */
            copy_residual(y, residual, ny);
        if (!pc && (rc = cvt_run(&e->cvt, x, buf)))
            return rc;
        src = buf;
    } else if (residual && residual != y) {
        copy_residual(y, residual, ny);
    }
    return prim_entry_exec(o, e, src, y);
}

/* ---------------------------------------------------------------------------------------- */
/* Convolution                                                                              */
/* ---------------------------------------------------------------------------------------- */

struct op_conv {
    int cin, cout, k, stride, pad;
    int may_block; /* f32 with channels in 8s: conv_blocked decides per input size */
    int may_wino;  /* f32 3x3, stride 1, padding 1, cin in 8s, cout in 16s: conv_winograd */
    int w_blocked; /* the weights are in oneDNN's ABcd8b8a layout (op_winograd2_conv reads it) */
    float *wino;   /* the F(4x4)-transformed weights, made at the first such call */
    /* A phase conv (conv_up_phases) is 1 + its phase; 0 for every other conv. */
    int phase;
    /* a bf16 3x3 conv made with OP_CONV_UPSAMPLED: its four phase convs (conv_up_phases) */
    op_conv *up[4];
    prim_op op;
};

/* A conv path's setting, read once: 0 never (NAME=0), 2 at every size (NAME=1 or any other
 * value), 3 (NAME=2: a second variant at every size), and when NAME is unset 1 (the caller's
 * size rule) on CPUs without AVX-512, else 0. */
static int conv_env_mode(atomic_int *state, const char *name)
{
    int st = atomic_load_explicit(state, memory_order_relaxed); /* 0 unknown, else mode + 1 */
    if (!st) {
        const char *e = getenv(name);
        __builtin_cpu_init();
        int mode = !e || !*e         ? !__builtin_cpu_supports("avx512f")
                   : !strcmp(e, "0") ? 0
                   : !strcmp(e, "2") ? 3
                                     : 2;
        st = mode + 1;
        atomic_store_explicit(state, st, memory_order_relaxed);
    }
    return st - 1;
}

/* A switch that is on unless NAME=0, read once (state: 0 unknown, 1 off, 2 on). */
static int env_switch_on(atomic_int *state, const char *name)
{
    int st = atomic_load_explicit(state, memory_order_relaxed);
    if (!st) {
        const char *e = getenv(name);
        st = e && !strcmp(e, "0") ? 1 : 2;
        atomic_store_explicit(state, st, memory_order_relaxed);
    }
    return st == 2;
}

/* A size in bytes for a conv path, read once: NAME's value when it is 1024 or more (tests),
 * else dflt. */
static size_t conv_env_bytes(_Atomic size_t *cache, const char *name, size_t dflt)
{
    size_t n = atomic_load_explicit(cache, memory_order_relaxed);
    if (!n) {
        const char *e = getenv(name);
        long long v = e ? atoll(e) : 0;
        n = v >= 1024 ? (size_t)v : dflt;
        atomic_store_explicit(cache, n, memory_order_relaxed);
    }
    return n;
}

/* When f32 convs run in oneDNN's blocked nChw8c layout, reordered from and to NHWC at each
 * call: 0 never, 1 on inputs of 64x64 pixels or more, 2 always. On CPUs without AVX-512 the
 * default is 1: there oneDNN 2.6's NHWC f32 convs on big maps run at about half the rate
 * (an AVX2 EPYC, bench_ops best of 3, NHWC vs blocked with both reorders: the VAE's 3x3 convs
 * at 64^2-512^2 164-837 ms vs 108-513 ms), while at 8^2-32^2 (the UNet's inner levels) they
 * are even or faster, and the two layouts take the same weights. MUS2PIC_CONV_BLOCKED=0 or 1
 * (always) overrides. */
static int conv_blocked_mode(void)
{
    static atomic_int state;
    return conv_env_mode(&state, "MUS2PIC_CONV_BLOCKED");
}

static int conv_blocked(const op_conv *c, int H, int W)
{
    int mode = c->may_block ? conv_blocked_mode() : 0;
    return mode >= 2 || (mode == 1 && H * W >= 64 * 64);
}

/* conv_entry_init's key[3]: sum | dst_bf16 << 1 | band | KEY_BLOCKED, band = 0 or, for a band
 * of rows (conv_forward_banded), KEY_BAND | its top padding << 3 | its output rows << 8 */
#define KEY_BAND (1 << 2)
#define KEY_BLOCKED (1 << 30)

void op_conv_out_hw(const op_conv *c, int H, int W, int *Ho, int *Wo)
{
    if (c->phase) { /* conv_up_phases: one output per input pixel */
        *Ho = H;
        *Wo = W;
        return;
    }
    *Ho = (H + 2 * c->pad - c->k) / c->stride + 1;
    *Wo = (W + 2 * c->pad - c->k) / c->stride + 1;
}

/* The conv of B x H x W inputs; a band of rows (conv_forward) has its own top padding pt and
 * output rows Ho, else pt < 0 (the conv's padding and output size). */
static int conv_desc(const op_conv *c, int B, int H, int W, int dst_bf16, int pt, int Ho,
                     int blocked, dnnl_convolution_desc_t *cd)
{
    int Hfull, Wo, ph = c->phase - 1; /* a phase conv's top and left padding: 1 - py, 1 - px */
    int pad_t = ph >= 0 ? 1 - ph / 2 : c->pad, pad_l = ph >= 0 ? 1 - ph % 2 : c->pad;
    op_conv_out_hw(c, H, W, &Hfull, &Wo);
    if (pt < 0) {
        pt = pad_t;
        Ho = Hfull;
    }
    dnnl_dims_t sd = {B, c->cin, H, W}, dd = {B, c->cout, Ho, Wo},
                wd = {c->cout, c->cin, c->k, c->k}, bd = {c->cout};
    dnnl_memory_desc_t smd, dmd, wmd, bmd;
    dnnl_data_type_t dt = wdt(c->op.dtype);
    dnnl_format_tag_t tag = blocked ? dnnl_nChw8c : dnnl_nhwc;
    if (dnnl_memory_desc_init_by_tag(&smd, 4, sd, dt, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dst_bf16 ? dnnl_bf16 : dnnl_f32, tag) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dt, dnnl_format_tag_any) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: conv memory desc failed");
    dnnl_dims_t strides = {c->stride, c->stride}, pl = {pt, pad_l};
    /* padding_r so that the output size is exactly Ho, Wo */
    dnnl_dims_t pr = {(Ho - 1) * c->stride + c->k - H - pt,
                      (Wo - 1) * c->stride + c->k - W - pad_l};
    if (dnnl_convolution_forward_desc_init(cd, dnnl_forward_inference, dnnl_convolution_direct,
                                           &smd, &wmd, c->op.bias ? &bmd : NULL, &dmd, strides, pl,
                                           pr) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: conv desc failed (%d->%d k%d s%d p%d, %dx%d)",
                         c->cin, c->cout, c->k, c->stride, c->pad, H, W);
    return 0;
}

/* When f32 3x3 convs run as Winograd convs (winograd.c): 0 never, 1 by the rule of
 * conv_winograd (the default on CPUs without AVX-512), 2 always F(4x4, 3x3), 3 always F(2x2,
 * 3x3). There oneDNN 2.6 has no Winograd f32 conv, and its direct convs already run near the
 * cores' peak (an AVX2 EPYC: 160-186 GFLOP/s of about 190), so only fewer multiplies make them
 * faster. MUS2PIC_CONV_WINOGRAD=0, 1 (F(4x4) always) or 2 (F(2x2) always) overrides. */
static int conv_winograd_mode(void)
{
    static atomic_int state;
    return conv_env_mode(&state, "MUS2PIC_CONV_WINOGRAD");
}

/* The transformed weights are 4 times the conv's. Up to a quarter of WINO_PART_BYTES they are kept
 * with the conv (the UNet's 320-channel convs: 14.7 MB); bigger ones are made again at each call
 * into a scratch buffer, at most WINO_PART_BYTES of them at a time: a conv with more runs in
 * parts of its output channels, each part's transformed weights made in turn (the input
 * transform is done again for each part). Made per call they pay from about 64 tiles on: on
 * the AVX2 EPYC (bench_ops, ms, direct / kept / made per call) 640 channels at 32x32 (64
 * tiles) 45-48 / 21 / 26-29, 1280 at 16x16 (16 tiles) 45 / 37 / 58-61, 512 at 64x64 105 / 47 /
 * 45-48. */
#define WINO_PART_BYTES ((size_t)64 << 20)

/* WINO_PART_BYTES, or MUS2PIC_WINOGRAD_BYTES (tests: small convs in parts; the kept ones then
 * up to a quarter of it) */
static size_t winograd_part_bytes(void)
{
    static _Atomic size_t bytes;
    return conv_env_bytes(&bytes, "MUS2PIC_WINOGRAD_BYTES", WINO_PART_BYTES);
}

/* Whether a conv keeps its F(4x4) weights (a quarter of a part at most) */
static int winograd_keeps(const op_conv *c)
{
    return op_winograd_weights_floats(c->cin, c->cout) * sizeof(float) <= winograd_part_bytes() / 4;
}

/* Which Winograd conv runs B x H x W: 4 (F(4x4)), 2 (F(2x2)) or 0 (a direct conv). F(4x4)
 * where it has 64 tiles of 4x4 or more and keeps its weights, F(2x2) on small maps (16-256
 * tiles of 2x2), F(4x4) with weights made at each call above that. On the AVX2 EPYC
 * (bench_ops, ms, direct / F(4x4) made per call / F(2x2)): 1280 channels at 16x16 44 / 58-61
 * / 24-25, at 8x8 12 / - / 10.4-11.1, at 32x32 174-179 / 116 / 84-86; 640 at 32x32 43-46 /
 * 26-30 / 21-22; 320 at 64x64 (1024 tiles of 2x2) 41 / 13-15 (kept) / 37-42: F(2x2) reads its
 * whole input transform again for each group of output channels, which big maps make too big
 * for the caches. */
static int conv_winograd(const op_conv *c, int B, int H, int W)
{
    int mode = c->may_wino ? conv_winograd_mode() : 0;
    long t4 = (long)B * ((H + 3) / 4) * ((W + 3) / 4), t2 = (long)B * ((H + 1) / 2) * ((W + 1) / 2);
    if (mode != 1)
        return mode == 2 ? 4 : mode == 3 ? 2 : 0;
    if (t4 >= 64 && winograd_keeps(c))
        return 4;
    if (t2 >= 16 && t2 <= 256)
        return 2;
    return t4 >= 64 ? 4 : 0;
}

/* A 3x3 conv's weights reordered into w [3][3][cin][cout] (HWIO), or an error */
static int conv_weights_hwio(const op_conv *c, float *w)
{
    dnnl_dims_t wd = {c->cout, c->cin, 3, 3};
    dnnl_memory_desc_t hwio;
    if (!w)
        return m2p_error(M2P_ENOMEM, "out of memory for a conv's Winograd weights");
    if (dnnl_memory_desc_init_by_tag(&hwio, 4, wd, dnnl_f32, dnnl_hwio) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: weights desc failed");
    return reorder_once(&c->op.w.md, c->op.w.data, &hwio, w);
}

/* y = conv(x) (+ residual) as an F(2x2) conv, from the weights in oneDNN's layout when it is
 * ABcd8b8a, else from an HWIO copy in the calling thread's scratch */
static int conv_winograd2_run(op_conv *c, const float *x, int B, int H, int W, float *y,
                              const float *residual)
{
    const float *w = c->op.w.data;
    if (!c->w_blocked) {
        float *hw =
            ops_scratch(OPS_SCRATCH_WINOGRAD_W, (size_t)c->cout * c->cin * 9 * sizeof(float));
        int rc = conv_weights_hwio(c, hw);
        if (rc)
            return rc;
        w = hw;
    }
    return op_winograd2_conv(w, c->w_blocked, c->op.bias_data, c->cin, c->cout, x, B, H, W, y,
                             c->cout, residual);
}

/* y = conv(x) (+ residual) as Winograd convs: with the kept weights, else with weights made
 * from the conv's (reordered to HWIO, into the calling thread's scratch), kept when small,
 * else made into that scratch too, part by part. */
static int conv_winograd_run(op_conv *c, const float *x, int B, int H, int W, float *y,
                             const float *residual)
{
    const int cin = c->cin, cout = c->cout;
    const float *bias = c->op.bias_data;
    if (c->wino)
        return op_winograd_conv(c->wino, bias, cin, cout, x, B, H, W, y, cout, residual);
    size_t per16 = op_winograd_weights_floats(cin, 16) * sizeof(float), pb = winograd_part_bytes();
    int keep = winograd_keeps(c);
    size_t fit = pb / per16 * 16;
    int part = keep || fit >= (size_t)cout ? cout : fit < 16 ? 16 : (int)fit;
    size_t ub = per16 * (size_t)(part / 16), wb = (size_t)cout * cin * 9 * sizeof(float);
    char *tmp = ops_scratch(OPS_SCRATCH_WINOGRAD_W, keep ? wb : ub + wb);
    float *u = keep ? ops_big_alloc(ub, 0) : (float *)tmp;
    float *w = !tmp ? NULL : (float *)(keep ? tmp : tmp + ub);
    int rc = conv_weights_hwio(c, u ? w : NULL);
    for (int o0 = 0; o0 < cout && !rc; o0 += part) {
        int n = cout - o0 < part ? cout - o0 : part;
        op_winograd_weights(w + o0, cin, n, cout, u);
        rc = op_winograd_conv(u, bias ? bias + o0 : NULL, cin, n, x, B, H, W, y + o0, cout,
                              residual ? residual + o0 : NULL);
    }
    if (keep && !rc)
        c->wino = u;
    else if (keep)
        free(u);
    return rc;
}

/* ---- a 3x3 conv of a nearest-2x upsampled input, in four phases ----
 * Output pixel (2i + py, 2j + px) of a 3x3 conv (stride 1, padding 1) of up(x), up(x)[Y, X] =
 * x[Y / 2, X / 2], reads with kernel row r (0..2) the upsampled row 2i + py + r - 1, which is
 * x's row i + (py + r + 1) / 2 - 1: two rows of x, i - 1 + py and i + py, the rows r that land
 * on the same one summed. So each of the four output phases (py, px) is a 2x2 conv of x itself
 * with summed weights (top padding 1 - py, left 1 - px, one output per input pixel): 16 taps
 * per 2x2 output pixels instead of 36, and the upsampled input is never made. In bf16 the
 * summed weights are rounded once, as the conv's own are; f32 convs keep the exact path. On
 * the AVX-512-BF16 EPYC (bench_ops) the VAE's 256-channel upsample conv at 512^2 took 393-402 ms
 * through the upsampled input, 200-203 ms in phases; 2.0-2.25x on the UNet's too. */

/* MUS2PIC_UPCONV=0 (or MUS2PIC_FUSE=0): bf16 upsample convs run on the upsampled input */
static int up_phases_enabled(void)
{
    static atomic_int state;
    return env_switch_on(&state, "MUS2PIC_UPCONV");
}

/* The phase weights: phase p = 2 py + px of w [cout, cin, 3, 3] as [cout, cin, 2, 2] */
static void conv_phase_weights(const float *w, size_t oi, int p, float *out)
{
    int py = p / 2, px = p % 2;
    memset(out, 0, oi * 4 * sizeof *out);
    for (size_t n = 0; n < oi; n++)
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++)
                out[n * 4 + ((py + r + 1) / 2 - py) * 2 + (px + s + 1) / 2 - px] +=
                    w[n * 9 + r * 3 + s];
}

/* Whether conv_create gives c phases: OP_CONV_UPSAMPLED on a bf16 3x3 conv, stride 1, padding
 * 1, whose four phase outputs fit where the upsampled input would (cout <= cin). */
static int conv_wants_phases(const op_conv *c, int flags)
{
    return (flags & OP_CONV_UPSAMPLED) && c->op.dtype == M2P_DTYPE_BF16 && !c->phase && c->k == 3 &&
           c->stride == 1 && c->pad == 1 && c->cout <= c->cin && up_phases_enabled();
}

/* Where the five weights of a conv with phases lie in its prepared block: the conv's, then
 * phase 0..3's, each 64-byte aligned; returns the block's size. */
static size_t phase_offsets(const dnnl_memory_desc_t md[5], size_t off[5])
{
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        off[i] = at;
        at = (at + dnnl_memory_desc_get_size(&md[i]) + 63) & ~(size_t)63;
    }
    return off[4] + dnnl_memory_desc_get_size(&md[4]);
}

static int conv_create(op_conv **out, const float *w, const op_prepared *pw, const float *bias,
                       int cin, int cout, int k, int stride, int pad, int dtype, int flags,
                       int phase);

/* c's phase convs: from the f32 weights w, or from the prepared block pw (then c's own
 * weights are its first part, borrowed by the caller). 1 when pw's layout is not this CPU's. */
static int conv_make_phases(op_conv *c, const float *w, const op_prepared *pw, const float *bias)
{
    size_t oi = (size_t)c->cout * c->cin;
    int rc = 0;
    if (pw) {
        dnnl_memory_desc_t md[5];
        size_t off[5];
        memcpy(md, pw->layout, sizeof md);
        if (phase_offsets(md, off) != pw->size)
            return 1;
        for (int p = 0; p < 4 && !rc; p++) {
            op_prepared part = {&md[1 + p],
                                sizeof md[0],
                                (const char *)pw->data + off[1 + p],
                                dnnl_memory_desc_get_size(&md[1 + p]),
                                NULL,
                                NULL};
            rc = conv_create(&c->up[p], NULL, &part, bias, c->cin, c->cout, 2, 1, 0, c->op.dtype, 0,
                             1 + p);
        }
        return rc;
    }
    float *pwt = malloc(oi * 4 * sizeof *pwt);
    if (!pwt)
        return m2p_error(M2P_ENOMEM, "out of memory for an upsample conv's phase weights");
    for (int p = 0; p < 4 && !rc; p++) {
        conv_phase_weights(w, oi, p, pwt);
        rc = conv_create(&c->up[p], pwt, NULL, bias, c->cin, c->cout, 2, 1, 0, c->op.dtype, 0,
                         1 + p);
    }
    free(pwt);
    return rc;
}

/* op_conv_create and op_conv_create_prepared: weights from f32 w, or borrowed from pw; phase:
 * 1 + the phase of a conv_make_phases conv, else 0. */
static int conv_create(op_conv **out, const float *w, const op_prepared *pw, const float *bias,
                       int cin, int cout, int k, int stride, int pad, int dtype, int flags,
                       int phase)
{
    *out = NULL;
    if (cin <= 0 || cout <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return m2p_error(M2P_EINVAL, "conv: bad geometry %d->%d k%d s%d p%d", cin, cout, k, stride,
                         pad);
    if (dtype == M2P_DTYPE_BF16 && !op_bf16_supported())
        return bf16_refused("conv");
    if (!engine())
        return m2p_error(M2P_EINTERNAL, "oneDNN: no CPU engine");
    op_conv *c = calloc(1, sizeof *c);
    if (!c)
        return m2p_error(M2P_ENOMEM, "out of memory");
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->phase = phase;
    c->op.dtype = dtype == M2P_DTYPE_BF16 ? M2P_DTYPE_BF16 : M2P_DTYPE_F32;
    c->may_block = c->op.dtype == M2P_DTYPE_F32 && !phase && cin % 8 == 0 && cout % 8 == 0;
    c->may_wino = c->op.dtype == M2P_DTYPE_F32 && !phase && k == 3 && stride == 1 && pad == 1 &&
                  cin % 8 == 0 && cout % 16 == 0;
    int rc = bias ? prim_op_bias(&c->op, bias, cout, 1) : 0;
    if (rc)
        goto fail;
    /* The weights layout a typical size wants (oneDNN's choice for direct convs does not
     * depend on the spatial size in practice; other sizes check and reorder if it does). */
    int rep = 32 * stride;
    dnnl_convolution_desc_t cd;
    rc = conv_desc(c, 1, rep, rep, 0, -1, 0, 0, &cd);
    if (rc)
        goto fail;
    int phases = conv_wants_phases(c, flags);
    if (pw) { /* with phases: the conv's weights, then its phases' (op_conv_prepared) */
        size_t n_md = phases ? 5 : 1;
        dnnl_memory_desc_t md0;
        rc = pw->layout_size == n_md * sizeof md0 ? 0 : 1; /* 1: convert instead */
        if (!rc) {
            memcpy(&md0, pw->layout, sizeof md0);
            op_prepared own = {&md0,     sizeof md0,
                               pw->data, phases ? dnnl_memory_desc_get_size(&md0) : pw->size,
                               NULL,     NULL};
            rc = prim_op_weights_prepared(&c->op, &cd, &own, "conv");
        }
        if (!rc && phases)
            rc = conv_make_phases(c, NULL, pw, bias);
        if (rc)
            goto fail;
        c->op.keep_release = pw->release;
        c->op.keep_ud = pw->release_ud;
    } else {
        dnnl_dims_t wd = {cout, cin, k, k};
        dnnl_memory_desc_t src;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&src, 4, wd, dnnl_f32, dnnl_oihw), "weights desc");
        rc = prim_op_weights(&c->op, &cd, &src, w, "conv");
        if (!rc && phases)
            rc = conv_make_phases(c, w, NULL, bias);
        if (rc)
            goto fail;
    }
    if (c->may_wino) {
        dnnl_dims_t wd = {cout, cin, k, k};
        dnnl_memory_desc_t b8;
        c->w_blocked =
            dnnl_memory_desc_init_by_tag(&b8, 4, wd, dnnl_f32, dnnl_ABcd8b8a) == dnnl_success &&
            dnnl_memory_desc_equal(&b8, &c->op.w.md);
    }
    *out = c;
    return 0;
fail:
    op_conv_free(c);
    return rc;
}

int op_conv_create(op_conv **out, const float *w, const float *bias, int cin, int cout, int k,
                   int stride, int pad, int dtype)
{
    return conv_create(out, w, NULL, bias, cin, cout, k, stride, pad, dtype, 0, 0);
}

int op_conv_create_flags(op_conv **out, const float *w, const float *bias, int cin, int cout, int k,
                         int stride, int pad, int dtype, int flags)
{
    return conv_create(out, w, NULL, bias, cin, cout, k, stride, pad, dtype, flags, 0);
}

int op_conv_create_prepared(op_conv **out, const op_prepared *pw, const float *bias, int cin,
                            int cout, int k, int stride, int pad, int dtype, int flags)
{
    return conv_create(out, NULL, pw, bias, cin, cout, k, stride, pad, dtype, flags, 0);
}

void op_conv_prepared(const op_conv *c, op_prepared *pw)
{
    prim_op_prepared(&c->op, pw);
    pw->release = NULL;
    pw->release_ud = NULL;
    if (!c->up[0])
        return;
    /* one block: the five layouts (64 bytes rounded), then the five weights (phase_offsets) */
    dnnl_memory_desc_t md[5];
    size_t off[5], head = (sizeof md + 63) & ~(size_t)63;
    md[0] = c->op.w.md;
    for (int p = 0; p < 4; p++)
        md[1 + p] = c->up[p]->op.w.md;
    size_t size = phase_offsets(md, off);
    char *block = aligned_alloc(64, (head + size + 63) & ~(size_t)63);
    pw->data = NULL;
    if (!block)
        return;
    memcpy(block, md, sizeof md);
    for (int i = 0; i < 5; i++) {
        const wbuf *wb = i ? &c->up[i - 1]->op.w : &c->op.w;
        memcpy(block + head + off[i], wb->data, dnnl_memory_desc_get_size(&md[i]));
    }
    pw->layout = block;
    pw->layout_size = sizeof md;
    pw->data = block + head;
    pw->size = size;
    pw->release = free;
    pw->release_ud = block;
}

/* key: {B, H, W, flags} (KEY_BAND) */
static int conv_entry_init(op_conv *c, prim_entry *e, const int key[4])
{
    int B = key[0], H = key[1], W = key[2], sum = key[3] & 1, band = key[3] & KEY_BAND;
    int blocked = (key[3] & KEY_BLOCKED) != 0;
    int pt = band ? (key[3] >> 3) & 31 : -1, Ho = band ? (key[3] & ~KEY_BLOCKED) >> 8 : 0;
    dnnl_convolution_desc_t cd;
    int rc = conv_desc(c, B, H, W, (key[3] >> 1) & 1, pt, Ho, blocked, &cd);
    if (rc)
        return rc;
    dnnl_dims_t sd = {B, c->cin, H, W};
    dnnl_memory_desc_t f32md;
    if (dnnl_memory_desc_init_by_tag(&f32md, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: desc failed");
    char label[96];
    snprintf(label, sizeof label, "conv %d->%d k%d at %dx%d", c->cin, c->cout, c->k, H, W);
    rc = prim_entry_init(&c->op, e, key, sum, &cd, &f32md, "conv", label);
    if (rc || !blocked)
        return rc;
    /* the reorders between the blocked src / dst and NHWC memory of the same sizes */
    dnnl_memory_desc_t ymd;
    const dnnl_memory_desc_t *smd, *dmd;
    if (dnnl_memory_get_memory_desc(e->src, &smd) != dnnl_success ||
        dnnl_memory_get_memory_desc(e->dst, &dmd) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&ymd, 4, dmd->dims, dnnl_f32, dnnl_nhwc) != dnnl_success)
        rc = m2p_error(M2P_EINTERNAL, "oneDNN: desc failed");
    if (!rc)
        rc = cvt_init(&e->blk_in, &f32md, smd);
    if (!rc)
        rc = cvt_init(&e->blk_res, &ymd, dmd);
    if (!rc)
        rc = cvt_init(&e->blk_out, dmd, &ymd);
    if (rc) {
        prim_entry_free(e);
        return rc;
    }
    e->blk_src_bytes = dnnl_memory_desc_get_size(smd);
    e->blk_dst_bytes = dnnl_memory_desc_get_size(dmd);
    return 0;
}

/* x -> y through e, a blocked f32 conv: x (and the residual) reordered into the blocked
 * layout, the conv, and its output reordered back into y. */
static int conv_run_blocked(op_conv *c, prim_entry *e, const float *x, float *y,
                            const float *residual)
{
    e->last = ++c->op.tick;
    void *bs = ops_scratch(OPS_SCRATCH_BLK_SRC, e->blk_src_bytes);
    void *bd = ops_scratch(OPS_SCRATCH_BLK_DST, e->blk_dst_bytes);
    if (!bs || !bd)
        return m2p_error(M2P_ENOMEM, "out of memory for a conv's blocked copies");
    int rc = cvt_run(&e->blk_in, x, bs);
    if (!rc && residual)
        rc = cvt_run(&e->blk_res, residual, bd);
    if (!rc)
        rc = prim_entry_exec(&c->op, e, bs, bd);
    return rc ? rc : cvt_run(&e->blk_out, bd, y);
}

/* y: f32, or bf16 when dst_bf16 (then no residual) */
/* The cached primitive for key, built when missing */
static int conv_entry(op_conv *c, const int key[4], prim_entry **out)
{
    prim_entry *victim = NULL;
    *out = prim_op_find(&c->op, key, &victim);
    if (*out)
        return 0;
    prim_entry_free(victim);
    int rc = conv_entry_init(c, victim, key);
    if (!rc)
        *out = victim;
    return rc;
}

/* A blocked conv's copies stay below this many bytes (24 MiB; MUS2PIC_CONV_BAND_BYTES for
 * tests): a bigger one (the VAE decoder's last levels: up to 256 MiB at 512^2) runs image by
 * image in bands of output rows, each band's input rows (its halo included) copied in turn, so
 * memory stays bounded at any image size. */
static size_t blocked_band_bytes(void)
{
    static _Atomic size_t bytes;
    return conv_env_bytes(&bytes, "MUS2PIC_CONV_BAND_BYTES", (size_t)24 << 20);
}

static int conv_forward_banded(op_conv *c, const float *x, int B, int H, int W, float *y,
                               const float *residual)
{
    int Ho, Wo;
    op_conv_out_hw(c, H, W, &Ho, &Wo);
    size_t row = (size_t)W * (c->cin > c->cout ? c->cin : c->cout) * sizeof(float);
    int ob = (int)(blocked_band_bytes() / row) - c->k;
    ob = ob < 8 ? 8 : ob;
    int nb = (Ho + ob - 1) / ob;
    ob = (Ho + nb - 1) / nb; /* equal bands but the last */
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * H * W * c->cin;
        float *yb = y + (size_t)b * Ho * Wo * c->cout;
        for (int o0 = 0; o0 < Ho; o0 += ob) {
            int o1 = o0 + ob < Ho ? o0 + ob : Ho;
            int lo = o0 - c->pad, hi = o1 - 1 - c->pad + c->k; /* input rows [lo, hi) */
            int i0 = lo < 0 ? 0 : lo, i1 = hi > H ? H : hi;
            const int key[4] = {1, i1 - i0, W,
                                (residual != NULL) | KEY_BAND | (i0 - lo) << 3 | (o1 - o0) << 8 |
                                    KEY_BLOCKED};
            prim_entry *e;
            int rc = conv_entry(c, key, &e);
            size_t off = (size_t)o0 * Wo * c->cout;
            if (!rc)
                rc = conv_run_blocked(c, e, xb + (size_t)i0 * W * c->cin, yb + off,
                                      residual ? residual + (size_t)b * Ho * Wo * c->cout + off
                                               : NULL);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int conv_forward(op_conv *c, const float *x, const pre_call *pc, int B, int H, int W,
                        void *y, const float *residual, int dst_bf16)
{
    ops_sync_threads();
    int Ho, Wo;
    op_conv_out_hw(c, H, W, &Ho, &Wo);
    if (B <= 0 || Ho <= 0 || Wo <= 0)
        return m2p_error(M2P_EINVAL, "conv: bad input size %dx%dx%d", B, H, W);
    int wino = !dst_bf16 && !pc && (const void *)x != y ? conv_winograd(c, B, H, W) : 0;
    if (wino == 4)
        return conv_winograd_run(c, x, B, H, W, y, residual);
    if (wino == 2)
        return conv_winograd2_run(c, x, B, H, W, y, residual);
    /* bands need an input that the output does not overwrite, rows of one stride, and
     * paddings that fit conv_entry_init's key */
    int blocked = conv_blocked(c, H, W);
    if (blocked && c->stride == 1 && c->pad < 32 && (const void *)x != y &&
        (size_t)B * H * W * (c->cin > c->cout ? c->cin : c->cout) * sizeof(float) >
            blocked_band_bytes())
        return conv_forward_banded(c, x, B, H, W, y, residual);
    const int key[4] = {B, H, W, (residual != NULL) | dst_bf16 << 1 | (blocked ? KEY_BLOCKED : 0)};
    prim_entry *e;
    int rc = conv_entry(c, key, &e);
    if (rc)
        return rc;
    if (blocked)
        return conv_run_blocked(c, e, x, y, residual);
    return prim_entry_run(&c->op, e, x, pc, y, residual, (size_t)B * Ho * Wo * c->cout);
}

int op_conv_forward(op_conv *c, const float *x, int B, int H, int W, float *y,
                    const float *residual)
{
    return conv_forward(c, x, NULL, B, H, W, y, residual, 0);
}

/* The n bf16 values at the start of buf widened to the n floats of buf. Values n/2.. first: f32
 * element i takes bytes [4i, 4i + 4), which hold bf16 values 2i and 2i + 1, so when [lo, hi)
 * with hi <= 2 lo is widened, its reads (bytes [2 lo, 2 hi)) and writes (from 4 lo) do not
 * meet and every value below lo is still unread: each such range runs in parallel. */
static void widen_in_place(float *buf, size_t n)
{
    ops_sync_threads();
    const uint16_t *h = (const uint16_t *)buf;
    size_t hi = n;
    while (hi > 1) {
        size_t lo = (hi + 1) / 2;
#pragma omp parallel for schedule(static) if (hi - lo >= 32768)
        for (size_t i = lo; i < hi; i++)
            buf[i] = ops_f32(h[i]);
        hi = lo;
    }
    if (n)
        buf[0] = ops_f32(h[0]);
}

/* pre(x) in f32 into tmp: the unfused path (f32 ops, or MUS2PIC_FUSE=0). */
int op_pre_run(const op_pre *p, const float *x, int B, int H, int W, int C, float *tmp)
{
    int HW = H * W;
    switch (p->kind) {
    case OP_PRE_GROUPNORM:
        return op_groupnorm(x, B, HW, C, p->groups, p->eps, p->gamma, p->beta, p->silu, tmp);
    case OP_PRE_LAYERNORM:
        op_layernorm(x, B * HW, C, p->eps, p->gamma, p->beta, tmp);
        return 0;
    case OP_PRE_GEGLU:
        op_geglu(x, B * HW, C, tmp);
        return 0;
    case OP_PRE_GEGLU_BF16:
        op_geglu_from_bf16((const uint16_t *)x, B * HW, C, tmp, NULL);
        return 0;
    case OP_PRE_GROUPNORM_BF16:
        if ((const void *)x == (void *)tmp) { /* the resnets' conv2 (backend.h): widen in place */
            widen_in_place(tmp, (size_t)B * HW * C);
            if (p->add)
                op_add_channel_bias(tmp, p->add, B, HW, C);
            return op_groupnorm(tmp, B, HW, C, p->groups, p->eps, p->gamma, p->beta, p->silu, tmp);
        }
        return op_groupnorm_from_bf16((const uint16_t *)x, p->add, B, HW, C, p->groups, p->eps,
                                      p->gamma, p->beta, p->silu, tmp, NULL);
    case OP_PRE_UPSAMPLE2X:
        op_upsample2x(x, B, H / 2, W / 2, C, tmp);
        return 0;
    default:
        return m2p_error(M2P_EINTERNAL, "unknown pre-op %d", p->kind);
    }
}

int op_fuse_enabled(void)
{
    static atomic_int state;
    return env_switch_on(&state, "MUS2PIC_FUSE");
}

/* Whether the conv of pre(x) runs as conv_up_phases: a conv made with its phases (their output
 * fits in the tmp the caller gives for the upsampled input, as cout <= cin). */
static int conv_up_phases_apply(const op_conv *c, const op_pre *pre)
{
    return pre->kind == OP_PRE_UPSAMPLE2X && c->up[0] && op_fuse_enabled();
}

/* y [B, H, W, cout] = conv(up(x)) (+ residual), x [B, H/2, W/2, cin]; tmp: B*H*W*cin floats */
static int conv_up_phases(op_conv *c, const float *x, int B, int H, int W, float *tmp, float *y,
                          const float *residual)
{
    int h = H / 2, w = W / 2, rc = 0;
    size_t nx = (size_t)B * h * w * c->cin, q = (size_t)B * h * w * c->cout;
    uint16_t *xb = ops_scratch(OPS_SCRATCH_BF16, nx * sizeof *xb);
    if (!xb)
        return m2p_error(M2P_ENOMEM, "out of memory for a bf16 input copy");
    op_to_bf16(x, nx, xb);
    pre_call bf16_input = {NULL, B, h, w, c->cin}; /* no pre: x is bf16 already */
    for (int p = 0; p < 4 && !rc; p++)
        rc = conv_forward(c->up[p], (const float *)xb, &bf16_input, B, h, w, tmp + p * q, NULL, 0);
    if (!rc)
        op_interleave2x2(tmp, B, h, w, c->cout, y, residual);
    return rc;
}

int op_conv_forward_pre(op_conv *c, const op_pre *pre, const float *x, int B, int H, int W,
                        float *tmp, float *y, const float *residual)
{
    if (pre->kind == OP_PRE_UPSAMPLE2X && (H % 2 || W % 2))
        return m2p_error(M2P_EINVAL, "conv: upsampled input %dx%d is not even", H, W);
    if (conv_up_phases_apply(c, pre))
        return conv_up_phases(c, x, B, H, W, tmp, y, residual);
    if (c->op.dtype != M2P_DTYPE_BF16 || !op_fuse_enabled()) {
        int rc = op_pre_run(pre, x, B, H, W, c->cin, tmp);
        return rc ? rc : op_conv_forward(c, tmp, B, H, W, y, residual);
    }
    pre_call pc = {pre, B, H, W, c->cin};
    return conv_forward(c, x, &pc, B, H, W, y, residual, 0);
}

int op_conv_forward_bf16(op_conv *c, const op_pre *pre, const float *x, int B, int H, int W,
                         float *tmp, uint16_t *y)
{
    if (c->op.dtype != M2P_DTYPE_BF16)
        return m2p_error(M2P_EINVAL, "conv: a bf16 output needs a bf16 conv (%d -> %d)", c->cin,
                         c->cout);
    if (pre && pre->kind == OP_PRE_UPSAMPLE2X && (H % 2 || W % 2))
        return m2p_error(M2P_EINVAL, "conv: upsampled input %dx%d is not even", H, W);
    if (pre && !op_fuse_enabled()) {
        int rc = op_pre_run(pre, x, B, H, W, c->cin, tmp);
        if (rc)
            return rc;
        x = tmp;
        pre = NULL;
    }
    pre_call pc = {pre, B, H, W, c->cin};
    return conv_forward(c, x, pre ? &pc : NULL, B, H, W, y, NULL, 1);
}

void op_conv_free(op_conv *c)
{
    if (!c)
        return;
    for (int p = 0; p < 4; p++) /* first: they may borrow c's prepared block */
        op_conv_free(c->up[p]);
    prim_op_free(&c->op);
    free(c->wino);
    free(c);
}

/* ---------------------------------------------------------------------------------------- */
/* Linear (matmul)                                                                          */
/* ---------------------------------------------------------------------------------------- */

struct op_linear {
    int in, out;
    int as_conv; /* runs as a 1x1 conv (linear_as_conv) */
    prim_op op;
};

/* Whether f32 linears run as 1x1 convs of a 1 x rows image: 1 on CPUs without AVX-512, where
 * oneDNN 2.6 has no brgemm matmul and its matmul is gemm:jit on plain weights, which packs
 * them again at every call. There the conv reads weights packed once, at create (an AVX2
 * EPYC, bench_ops best of 3, matmul vs 1x1 conv: the UNet's 16x16 feed-forward input, 256 x
 * 1280 -> 10240, 75 vs 38 ms). MUS2PIC_LINEAR_CONV=0 or 1 overrides. The weights' layout
 * differs, so the choice is part of op_prepared_tag. */
static int linear_as_conv_mode(void)
{
    static atomic_int state;
    return conv_env_mode(&state, "MUS2PIC_LINEAR_CONV") != 0;
}

/* A linear's primitive: a matmul, or a 1x1 conv (as_conv) */
typedef union {
    dnnl_matmul_desc_t mm;
    dnnl_convolution_desc_t conv;
} lin_op_desc;

/* The 1x1 conv of rows x in inputs: a 1 x rows NHWC image, whose memory is the matmul's
 * row-major [rows][in] (and [rows][out] for the output). */
static int lin_conv_desc(const op_linear *l, int rows, dnnl_convolution_desc_t *cd)
{
    dnnl_dims_t sd = {1, l->in, 1, rows}, dd = {1, l->out, 1, rows}, wd = {l->out, l->in, 1, 1},
                bd = {l->out}, st = {1, 1}, pad = {0, 0};
    dnnl_memory_desc_t smd, wmd, dmd, bmd;
    if (dnnl_memory_desc_init_by_tag(&smd, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: linear-as-conv memory desc failed");
    if (dnnl_convolution_forward_desc_init(cd, dnnl_forward_inference, dnnl_convolution_direct,
                                           &smd, &wmd, l->op.bias ? &bmd : NULL, &dmd, st, pad,
                                           pad) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: linear-as-conv desc failed (%d x %d -> %d)", rows,
                         l->in, l->out);
    return 0;
}

static int lin_desc(const op_linear *l, int rows, int dst_bf16, lin_op_desc *od)
{
    if (l->as_conv)
        return lin_conv_desc(l, rows, &od->conv);
    dnnl_matmul_desc_t *md = &od->mm;
    dnnl_dims_t sd = {rows, l->in}, wd = {l->in, l->out}, dd = {rows, l->out}, bd = {1, l->out};
    dnnl_memory_desc_t smd, wmd, dmd, bmd;
    dnnl_data_type_t dt = wdt(l->op.dtype);
    if (dnnl_memory_desc_init_by_tag(&smd, 2, sd, dt, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dst_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ab) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: matmul memory desc failed");
    if (dnnl_matmul_desc_init(md, &smd, &wmd, l->op.bias ? &bmd : NULL, &dmd) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: matmul desc failed (%d x %d -> %d)", rows, l->in,
                         l->out);
    return 0;
}

static int linear_create(op_linear **out, const float *w, const op_prepared *pw, const float *bias,
                         int in, int outn, int dtype)
{
    *out = NULL;
    if (in <= 0 || outn <= 0)
        return m2p_error(M2P_EINVAL, "linear: bad size %d -> %d", in, outn);
    if (dtype == M2P_DTYPE_BF16 && !op_bf16_supported())
        return bf16_refused("linear");
    if (!engine())
        return m2p_error(M2P_EINTERNAL, "oneDNN: no CPU engine");
    op_linear *l = calloc(1, sizeof *l);
    if (!l)
        return m2p_error(M2P_ENOMEM, "out of memory");
    l->in = in;
    l->out = outn;
    l->op.dtype = dtype == M2P_DTYPE_BF16 ? M2P_DTYPE_BF16 : M2P_DTYPE_F32;
    l->as_conv = l->op.dtype == M2P_DTYPE_F32 && linear_as_conv_mode();
    const char *kind = l->as_conv ? "conv" : "matmul";
    int rc = bias ? prim_op_bias(&l->op, bias, outn, l->as_conv ? 1 : 2) : 0;
    if (rc)
        goto fail;
    lin_op_desc md;
    rc = lin_desc(l, 1024, 0, &md);
    if (rc)
        goto fail;
    if (pw) {
        rc = prim_op_weights_prepared(&l->op, &md, pw, kind);
        if (rc)
            goto fail;
        l->op.keep_release = pw->release;
        l->op.keep_ud = pw->release_ud;
    } else {
        /* PyTorch [out, in] row-major is the transposed ("ba") layout of a [in, out] matrix,
         * and a 1x1 conv's oihw weights */
        dnnl_dims_t wd = {in, outn}, cwd = {outn, in, 1, 1};
        dnnl_memory_desc_t src;
        DNNL_TRY(l->as_conv ? dnnl_memory_desc_init_by_tag(&src, 4, cwd, dnnl_f32, dnnl_oihw)
                            : dnnl_memory_desc_init_by_tag(&src, 2, wd, dnnl_f32, dnnl_ba),
                 "weights desc");
        rc = prim_op_weights(&l->op, &md, &src, w, kind);
        if (rc)
            goto fail;
    }
    *out = l;
    return 0;
fail:
    op_linear_free(l);
    return rc;
}

int op_linear_create(op_linear **out, const float *w, const float *bias, int in, int outn,
                     int dtype)
{
    return linear_create(out, w, NULL, bias, in, outn, dtype);
}

int op_linear_create_prepared(op_linear **out, const op_prepared *pw, const float *bias, int in,
                              int outn, int dtype)
{
    return linear_create(out, NULL, pw, bias, in, outn, dtype);
}

void op_linear_prepared(const op_linear *l, op_prepared *pw)
{
    prim_op_prepared(&l->op, pw);
}

/* What decides whether prepared weights still fit: oneDNN's version, the ISA it dispatches to
 * (the blocked layouts differ between AVX-512 and AMX) and the layout descriptor's size. */
void op_prepared_tag(int dtype, char *buf, size_t n)
{
    const dnnl_version_t *v = dnnl_version();
    int lin1x1 = dtype != M2P_DTYPE_BF16 && linear_as_conv_mode();
    snprintf(buf, n, "onednn %d.%d.%d %s isa 0x%x md %zu%s", v->major, v->minor, v->patch,
             dtype == M2P_DTYPE_BF16 ? "bf16" : "f32", (unsigned)dnnl_get_effective_cpu_isa(),
             sizeof(dnnl_memory_desc_t), lin1x1 ? " linear 1x1" : "");
}

static int lin_entry_init(op_linear *l, prim_entry *e, const int key[4])
{
    int rows = key[0], sum = key[1];
    lin_op_desc md;
    int rc = lin_desc(l, rows, key[2], &md);
    if (rc)
        return rc;
    dnnl_dims_t sd = {rows, l->in};
    dnnl_memory_desc_t f32md;
    if (dnnl_memory_desc_init_by_tag(&f32md, 2, sd, dnnl_f32, dnnl_ab) != dnnl_success)
        return m2p_error(M2P_EINTERNAL, "oneDNN: desc failed");
    char label[96];
    snprintf(label, sizeof label, "linear %d->%d at %d rows", l->in, l->out, rows);
    return prim_entry_init(&l->op, e, key, sum, &md, &f32md, l->as_conv ? "conv" : "matmul", label);
}

/* y: f32, or bf16 when dst_bf16 (then no residual) */
static int linear_forward(op_linear *l, const float *x, const pre_call *pc, int rows, void *y,
                          const float *residual, int dst_bf16)
{
    ops_sync_threads();
    if (rows <= 0)
        return m2p_error(M2P_EINVAL, "linear: %d rows", rows);
    const int key[4] = {rows, residual != NULL, dst_bf16, 0};
    prim_entry *victim = NULL, *e = prim_op_find(&l->op, key, &victim);
    if (!e) {
        prim_entry_free(victim);
        int rc = lin_entry_init(l, victim, key);
        if (rc)
            return rc;
        e = victim;
    }
    return prim_entry_run(&l->op, e, x, pc, y, residual, (size_t)rows * l->out);
}

int op_linear_forward(op_linear *l, const float *x, int rows, float *y, const float *residual)
{
    return linear_forward(l, x, NULL, rows, y, residual, 0);
}

int op_linear_forward_pre(op_linear *l, const op_pre *pre, const float *x, int B, int HW,
                          float *tmp, float *y, const float *residual)
{
    if (pre->kind == OP_PRE_UPSAMPLE2X)
        return m2p_error(M2P_EINVAL, "linear: an upsample does not go in front of a linear");
    if (l->op.dtype != M2P_DTYPE_BF16 || !op_fuse_enabled()) {
        int rc = op_pre_run(pre, x, B, HW, 1, l->in, tmp);
        return rc ? rc : op_linear_forward(l, tmp, B * HW, y, residual);
    }
    pre_call pc = {pre, B, HW, 1, l->in};
    return linear_forward(l, x, &pc, B * HW, y, residual, 0);
}

int op_linear_forward_bf16(op_linear *l, const op_pre *pre, const float *x, int B, int HW,
                           float *tmp, uint16_t *y)
{
    if (l->op.dtype != M2P_DTYPE_BF16)
        return m2p_error(M2P_EINVAL, "linear: a bf16 output needs a bf16 linear (%d -> %d)", l->in,
                         l->out);
    if (pre && pre->kind == OP_PRE_UPSAMPLE2X)
        return m2p_error(M2P_EINVAL, "linear: an upsample does not go in front of a linear");
    if (pre && !op_fuse_enabled()) {
        int rc = op_pre_run(pre, x, B, HW, 1, l->in, tmp);
        if (rc)
            return rc;
        x = tmp;
        pre = NULL;
    }
    pre_call pc = {pre, B, HW, 1, l->in};
    return linear_forward(l, x, pre ? &pc : NULL, B * HW, y, NULL, 1);
}

int op_linear_forward_bf16in(op_linear *l, const uint16_t *x, int rows, float *y,
                             const float *residual)
{
    if (l->op.dtype != M2P_DTYPE_BF16)
        return m2p_error(M2P_EINVAL, "linear: a bf16 input needs a bf16 linear (%d -> %d)", l->in,
                         l->out);
    const pre_call as_is = {NULL, rows, 1, 1, l->in};
    return linear_forward(l, (const float *)x, &as_is, rows, y, residual, 0);
}

void op_linear_free(op_linear *l)
{
    if (!l)
        return;
    prim_op_free(&l->op);
    free(l);
}
