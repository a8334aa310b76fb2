/*
 * buf.c — the growable buffer of buf.h: capacity doubles from 256 bytes, capped at the limit
 * (plus the NUL), so appending n bytes one at a time costs O(n) and a hostile producer costs at
 * most the limit. Sizes are checked before they are added, so no size_t overflows.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void m2p_buf_init(m2p_buf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit ? limit : SIZE_MAX / 2;
}

int m2p_buf_reserve(m2p_buf *b, size_t extra)
{
    if (extra > b->limit || b->len > b->limit - extra)
        return m2p_error(M2P_ETOOBIG, "more than the limit of %zu bytes", b->limit);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    if (cap > b->limit + 1)
        cap = b->limit + 1;
    char *d = realloc(b->data, cap);
    if (!d)
        return m2p_error(M2P_ENOMEM, "out of memory (a buffer of %zu bytes)", cap);
    b->data = d;
    b->cap = cap;
    return 0;
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
