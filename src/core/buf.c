/*
 * buf.c — the growable buffer and array of buf.h: capacity doubles from 256 bytes, capped at the
 * limit (plus the NUL for text), so appending n items one at a time costs O(n) and a hostile
 * producer costs at most the limit. Sizes are checked before they are added or multiplied, so no
 * size_t overflows. grow() is the one place in src/ that grows an allocation.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

void m2p_buf_init(m2p_buf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit ? limit : SIZE_MAX / 2;
}

/* Capacity doubles from 256 bytes' worth of elements, never past most (need <= most, and
 * most * elem fits a size_t). */
static int grow(void **data, size_t *cap, size_t need, size_t most, size_t elem)
{
    M2P_ASSERT(need <= most && most <= SIZE_MAX / elem);
    if (need <= *cap && *data)
        return 0;
    size_t c = *cap ? *cap : (256 + elem - 1) / elem;
    while (c < need)
        c = c > SIZE_MAX / 4 ? need : c * 2;
    if (c > most)
        c = most;
    void *d = realloc(*data, c * elem);
    if (!d)
        return m2p_error(M2P_ENOMEM, "out of memory (a buffer of %zu bytes)", c * elem);
    *data = d;
    *cap = c;
    return 0;
}

/* The most elements of elem bytes an array may hold: limit, or what fits half of size_t. */
static size_t most_of(size_t limit, size_t elem)
{
    return limit && limit <= SIZE_MAX / 2 / elem ? limit : SIZE_MAX / 2 / elem;
}

void *m2p_array_grow(void *data, size_t *cap, size_t need, size_t elem, size_t limit)
{
    M2P_ASSERT(elem > 0 && need > 0);
    size_t most = most_of(limit, elem);
    if (need > most) {
        m2p_error(M2P_ETOOBIG, "more than the limit of %zu items", most);
        return NULL;
    }
    return grow(&data, cap, need, most, elem) ? NULL : data;
}

int m2p_buf_reserve(m2p_buf *b, size_t extra)
{
    if (extra > b->limit || b->len > b->limit - extra)
        return m2p_error(M2P_ETOOBIG, "more than the limit of %zu bytes", b->limit);
    void *d = b->data;
    int rc = grow(&d, &b->cap, b->len + extra + 1, b->limit + 1, 1);
    b->data = d;
    return rc;
}

int m2p_buf_append(m2p_buf *b, const void *p, size_t n)
{
    int rc = m2p_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int m2p_buf_puts(m2p_buf *b, const char *s)
{
    return m2p_buf_append(b, s, strlen(s));
}

int m2p_buf_printf(m2p_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return m2p_error(M2P_EINVAL, "bad format: %s", fmt);
    int rc = m2p_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *m2p_buf_detach(m2p_buf *b)
{
    char *d = b->data ? b->data : strdup("");
    size_t limit = b->limit;
    m2p_buf_init(b, limit);
    return d;
}

void m2p_buf_free(m2p_buf *b)
{
    free(b->data);
    m2p_buf_init(b, b->limit);
}

void m2p_vec_init(m2p_vec *v, size_t elem, size_t limit)
{
    M2P_ASSERT(elem > 0);
    memset(v, 0, sizeof *v);
    v->elem = elem;
    v->limit = most_of(limit, elem);
}

int m2p_vec_reserve(m2p_vec *v, size_t extra)
{
    if (extra > v->limit || v->n > v->limit - extra)
        return m2p_error(M2P_ETOOBIG, "more than the limit of %zu items", v->limit);
    return grow(&v->data, &v->cap, v->n + extra, v->limit, v->elem);
}

int m2p_vec_push(m2p_vec *v, const void *x)
{
    int rc = m2p_vec_reserve(v, 1);
    if (rc)
        return rc;
    memcpy((char *)v->data + v->n * v->elem, x, v->elem);
    v->n++;
    return 0;
}

void *m2p_vec_detach(m2p_vec *v, size_t *n)
{
    void *d = v->n ? v->data : NULL;
    if (!v->n)
        free(v->data);
    if (n)
        *n = v->n;
    v->data = NULL;
    v->n = v->cap = 0;
    return d;
}

void m2p_vec_free(m2p_vec *v)
{
    free(v->data);
    v->data = NULL;
    v->n = v->cap = 0;
}
