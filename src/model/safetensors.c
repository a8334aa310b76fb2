/*
 * safetensors.c — read safetensors files by mmap with a full header check, convert float
 * tensors to float32, and write files atomically.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes
 * of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
 * the data block; offsets are relative to the data block. Everything in the header is checked
 * before any tensor is handed out, so later code may trust shape, size and pointer.
 */
#define _GNU_SOURCE
#include "model/safetensors.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* A header larger than this is not a real model (the spec's reference reader uses 100 MB). */
#define ST_MAX_HEADER (100u << 20)

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

const char *st_dtype_name(st_dtype t)
{
    return (int)t >= 0 && (int)t < N_DTYPES ? dtype_info[t].name : "?";
}

size_t st_dtype_size(st_dtype t)
{
    return (int)t >= 0 && (int)t < N_DTYPES ? dtype_info[t].size : 0;
}

static int dtype_parse(const char *s, st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Index sorted by name for st_find: stored after the tensor array. */
static int name_cmp(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

typedef struct st_file_priv {
    st_file pub;
    st_tensor **by_name;
} st_file_priv;

static int parse_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Parse and validate one header entry into t. data_size is the data block's length. */
static int parse_entry(const char *path, const char *name, json_t *e, uint64_t data_size,
                       const uint8_t *data, st_tensor *t, span *sp)
{
    if (!json_is_object(e))
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': header entry is not a JSON object", path,
                         name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd))
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': missing or non-string dtype", path, name);
    if (dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name,
                         json_string_value(jd));
    if (!json_is_array(js))
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': missing or non-array shape", path, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': %zu dimensions (at most %d supported)",
                         path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (parse_u64(json_array_get(js, i), &d) != 0)
            return m2p_error(M2P_EFORMAT,
                             "%s: tensor '%s': shape[%zu] is not a non-negative integer", path,
                             name, i);
        if (d != 0 && numel > (UINT64_MAX >> 4) / d)
            return m2p_error(M2P_EFORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    if (numel > ((uint64_t)1 << 56))
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': shape too large", path, name);
    t->numel = (int64_t)numel;
    uint64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        parse_u64(json_array_get(jo, 0), &begin) != 0 ||
        parse_u64(json_array_get(jo, 1), &end) != 0)
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", path,
                         name);
    if (end < begin)
        return m2p_error(M2P_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin",
                         path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return m2p_error(M2P_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data "
                         "(%llu bytes; file truncated?)",
                         path, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)data_size);
    uint64_t nbytes = numel * dtype_info[t->dtype].size;
    if (nbytes != end - begin)
        return m2p_error(M2P_EFORMAT,
                         "%s: tensor '%s': shape and dtype %s need %llu bytes, data_offsets "
                         "[%llu, %llu] hold %llu",
                         path, name, dtype_info[t->dtype].name, (unsigned long long)nbytes,
                         (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)(end - begin));
    t->nbytes = (size_t)nbytes;
    t->data = data + begin;
    sp->begin = begin;
    sp->end = end;
    return 0;
}

static int parse_header(st_file_priv *p, const uint8_t *hdr, uint64_t hlen, uint64_t data_size)
{
    st_file *f = &p->pub;
    const uint8_t *data = hdr + hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return m2p_error(M2P_EFORMAT, "%s: header is not valid JSON (%s at byte %d)", f->path,
                         jerr.text, jerr.position);
    int rc = 0;
    span *spans = NULL;
    if (!json_is_object(root)) {
        rc = m2p_error(M2P_EFORMAT, "%s: header is not a JSON object", f->path);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    spans = calloc(cap ? cap : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        rc = m2p_error(M2P_ENOMEM, "%s: out of memory reading the header", f->path);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = m2p_error(M2P_EFORMAT, "%s: __metadata__ is not a JSON object", f->path);
                goto out;
            }
            continue;
        }
        st_tensor *t = &f->tensors[f->n];
        rc = parse_entry(f->path, key, val, data_size, data, t, &spans[f->n]);
        if (rc)
            goto out;
        t->name = strdup(key);
        if (!t->name) {
            rc = m2p_error(M2P_ENOMEM, "%s: out of memory", f->path);
            goto out;
        }
        spans[f->n].idx = f->n;
        f->n++;
    }
    /* No two tensors may share bytes (empty tensors occupy nothing). */
    qsort(spans, (size_t)f->n, sizeof *spans, span_cmp);
    uint64_t reach = 0, reach_begin = 0;
    int reach_idx = -1;
    for (int i = 0; i < f->n; i++) {
        if (spans[i].begin == spans[i].end)
            continue;
        if (reach_idx >= 0 && spans[i].begin < reach) {
            rc = m2p_error(M2P_EFORMAT,
                           "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", f->path,
                           f->tensors[reach_idx].name, (unsigned long long)reach_begin,
                           (unsigned long long)reach, f->tensors[spans[i].idx].name,
                           (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
            goto out;
        }
        reach = spans[i].end;
        reach_begin = spans[i].begin;
        reach_idx = spans[i].idx;
    }
    p->by_name = calloc(f->n > 0 ? (size_t)f->n : 1, sizeof *p->by_name);
    if (!p->by_name) {
        rc = m2p_error(M2P_ENOMEM, "%s: out of memory", f->path);
        goto out;
    }
    for (int i = 0; i < f->n; i++)
        p->by_name[i] = &f->tensors[i];
    qsort(p->by_name, (size_t)f->n, sizeof *p->by_name, name_cmp);
out:
    free(spans);
    json_decref(root);
    return rc;
}

int st_open(const char *path, st_file **out)
{
    *out = NULL;
    st_file_priv *p = calloc(1, sizeof *p);
    if (!p)
        return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
    st_file *f = &p->pub;
    f->path = strdup(path);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = m2p_error(errno == ENOENT ? M2P_ENOTFOUND : M2P_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
        goto fail;
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        rc = m2p_error(M2P_EIO, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    uint64_t size = (uint64_t)stt.st_size;
    if (size == 0) {
        rc = m2p_error(M2P_EFORMAT, "%s: empty file (not a safetensors file)", path);
        close(fd);
        goto fail;
    }
    if (size < 8) {
        rc = m2p_error(M2P_EFORMAT, "%s: %llu bytes, too short for a safetensors header", path,
                       (unsigned long long)size);
        close(fd);
        goto fail;
    }
    f->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = m2p_error(M2P_EIO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    f->size = (size_t)size;
    const uint8_t *b = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | b[i];
    if (hlen == 0 || hlen > size - 8 || hlen > ST_MAX_HEADER) {
        rc = m2p_error(M2P_EFORMAT,
                       "%s: bad header length %llu (file has %llu bytes after the length field%s)",
                       path, (unsigned long long)hlen, (unsigned long long)(size - 8),
                       hlen > ST_MAX_HEADER ? "; limit 100 MB" : "");
        goto fail;
    }
    rc = parse_header(p, b + 8, hlen, size - 8 - hlen);
    if (rc)
        goto fail;
    *out = f;
    return 0;
fail:
    st_close(f);
    return rc;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    st_file_priv *p = (st_file_priv *)f;
    if (f->map)
        munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(p->by_name);
    free(f->path);
    free(p);
}

st_tensor *st_find(st_file *f, const char *name)
{
    st_file_priv *p = (st_file_priv *)f;
    if (!f || !p->by_name)
        return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(name, p->by_name[mid]->name);
        if (c == 0)
            return p->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Conversion                                                                               */
/* ---------------------------------------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#if defined(__x86_64__) && !defined(__F16C__) && !defined(__AVX512F__)
/* The default build targets any x86-64: F16C (every x86-64-v3 CPU) is used where the CPU has
 * it, checked once (the scalar loop costs about 3 CPU-seconds more on a 2 GB fp16 model). */
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(const uint8_t *src, float *dst,
                                                                   size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const void *)(src + 2 * i))));
    return i;
}

static int st_cpu_f16c(void)
{
    static _Atomic int has = -1;
    int v = has;
    if (v < 0) { /* cpuid leaf 1 (clang 14 has no "f16c" in __builtin_cpu_supports), and the OS
                  * saves the AVX registers (XCR0 bits 1 and 2) */
        unsigned a, b, c, d;
        v = 0;
        if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && (c & bit_AVX) &&
            (c & bit_OSXSAVE)) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            v = (lo & 6) == 6;
        }
        has = v;
    }
    return v;
}
#define ST_F16C_DISPATCH 1
#endif

static void f16_to_f32(const uint8_t *src, float *dst, size_t n)
{
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(src + 2 * i))));
#elif defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const void *)(src + 2 * i))));
#elif defined(ST_F16C_DISPATCH)
    if (st_cpu_f16c())
        i = f16_to_f32_f16c(src, dst, n);
#endif
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
    }
}

static void bf16_to_f32(const uint8_t *src, float *dst, size_t n)
{
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const void *)(src + 2 * i));
        __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(w));
    }
#endif
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t bits = (uint32_t)h << 16;
        memcpy(dst + i, &bits, 4);
    }
}

int st_to_f32(const st_tensor *t, float *dst)
{
    const uint8_t *src = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        memcpy(dst, src, n * 4);
        return 0;
    case ST_F16:
    case ST_BF16: {
        /* Chunks so both threads share a big tensor; converting is memory bound. */
        void (*cvt)(const uint8_t *, float *, size_t) =
            t->dtype == ST_F16 ? f16_to_f32 : bf16_to_f32;
        const size_t chunk = 1 << 16;
        size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (nchunks > 4)
        for (size_t c = 0; c < nchunks; c++) {
            size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
            cvt(src + 2 * b, dst + b, e - b);
        }
        return 0;
    }
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return m2p_error(M2P_EFORMAT, "tensor '%s' has dtype %s, not a float type",
                         t->name ? t->name : "?", st_dtype_name(t->dtype));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t out_nbytes(const st_out_tensor *t)
{
    size_t n = st_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

int st_write_stream(const char *path, const st_out_tensor *tensors, int n, st_fill_fn fill,
                    void *ud)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    size_t maxbytes = 0;
    for (int i = 0; i < n; i++) {
        const st_out_tensor *t = &tensors[i];
        if ((int)t->dtype < 0 || (int)t->dtype >= N_DTYPES || t->ndim < 0 ||
            t->ndim > ST_MAX_DIMS || !t->name) {
            json_decref(root);
            return m2p_error(M2P_EINVAL, "%s: bad tensor description #%d", path, i);
        }
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        size_t nb = out_nbytes(t);
        if (nb > maxbytes)
            maxbytes = nb;
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "dtype", json_string(dtype_info[t->dtype].name));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, t->name, e) != 0) {
            json_decref(root);
            return m2p_error(M2P_EINVAL, "%s: bad tensor name #%d", path, i);
        }
        off += nb;
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr)
        return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7; /* keep the data block 8-byte aligned */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(hdr);
        return m2p_error(M2P_EINVAL, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(hdr);
        return m2p_error(M2P_EIO, "%s: cannot create: %s", tmp, strerror(e));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, hdr, hlen);
    for (size_t i = hlen; i < padded && !bad; i++)
        bad = write_all(fd, " ", 1);
    free(hdr);
    void *buf = NULL;
    if (fill && !bad && maxbytes) {
        buf = malloc(maxbytes);
        if (!buf) {
            close(fd);
            unlink(tmp);
            return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
        }
    }
    for (int i = 0; i < n && !bad; i++) {
        size_t nb = out_nbytes(&tensors[i]);
        const void *src = tensors[i].data;
        if (fill) {
            int rc = fill(i, buf, nb, ud);
            if (rc) {
                free(buf);
                close(fd);
                unlink(tmp);
                return rc;
            }
            src = buf;
        }
        if (nb && !src) {
            free(buf);
            close(fd);
            unlink(tmp);
            return m2p_error(M2P_EINVAL, "%s: tensor '%s' has no data", path, tensors[i].name);
        }
        bad = write_all(fd, src, nb);
    }
    free(buf);
    if (bad || close(fd) != 0) {
        int e = errno;
        if (bad)
            close(fd);
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: write failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}

int st_write(const char *path, const st_out_tensor *tensors, int n)
{
    return st_write_stream(path, tensors, n, NULL, NULL);
}
