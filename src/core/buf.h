/*
 * buf.h — one growable byte buffer with a hard limit, for text and data whose size is known only
 * as it arrives (a child's output, a response body, JSON being built). It doubles its capacity
 * as needed, never grows past its limit (M2P_ETOOBIG, with the limit in the message), reports
 * allocation failure as M2P_ENOMEM, and keeps its bytes NUL-terminated so text can be read as a
 * C string. m2p_vec is the same for arrays of one element type (rows read from a query, samples,
 * code points): the same doubling and the same limit rule, counted in elements. Every growing
 * allocation in src/ goes through one of the two (tests/core/test_tree_rules.sh checks).
 */
#ifndef M2P_CORE_BUF_H
#define M2P_CORE_BUF_H

#include <stddef.h>

#include "core/error.h"

typedef struct m2p_buf {
    char *data;   /* NULL until the first append; else len bytes and a terminating NUL */
    size_t len;   /* bytes held */
    size_t cap;   /* bytes allocated (len + 1 <= cap) */
    size_t limit; /* most bytes it may hold */
} m2p_buf;

/* An empty buffer that holds at most limit bytes (0: no limit but memory). */
void m2p_buf_init(m2p_buf *b, size_t limit);
/* Room for extra more bytes: 0, M2P_ETOOBIG over the limit, M2P_ENOMEM. */
int m2p_buf_reserve(m2p_buf *b, size_t extra);
/* Append n bytes (all or nothing). */
int m2p_buf_append(m2p_buf *b, const void *p, size_t n);
int m2p_buf_puts(m2p_buf *b, const char *s);
int m2p_buf_printf(m2p_buf *b, const char *fmt, ...) M2P_PRINTF(2, 3);
/* Hand the bytes to the caller (free() them; "" when empty, NULL when out of memory) and leave
 * the buffer empty. */
char *m2p_buf_detach(m2p_buf *b);
void m2p_buf_free(m2p_buf *b);

/* The growth rule itself, for arrays a struct keeps as its own pointer and counts (zeroed =
 * empty; a code-point string, a token list): data grown to hold at least need (>= 1) elements of
 * elem bytes, *cap doubling up to limit elements (0: no limit but memory). Returns the array,
 * maybe moved, or NULL with M2P_ETOOBIG or M2P_ENOMEM recorded and data untouched (still the
 * caller's to free). */
void *m2p_array_grow(void *data, size_t *cap, size_t need, size_t elem, size_t limit);

typedef struct m2p_vec {
    void *data;   /* NULL until the first reserve; else cap elements of elem bytes */
    size_t n;     /* elements held */
    size_t cap;   /* elements allocated */
    size_t elem;  /* bytes per element */
    size_t limit; /* most elements it may hold */
} m2p_vec;

/* An empty array of elem-byte elements that holds at most limit of them (0: no limit but
 * memory). */
void m2p_vec_init(m2p_vec *v, size_t elem, size_t limit);
/* Room for extra more elements after the n held: 0, M2P_ETOOBIG over the limit, M2P_ENOMEM.
 * The caller may then write up to extra elements at (char *)data + n * elem and add to n. */
int m2p_vec_reserve(m2p_vec *v, size_t extra);
/* Append one element copied from x (elem bytes). */
int m2p_vec_push(m2p_vec *v, const void *x);
/* Hand the elements to the caller (free() them; NULL when empty), their count in *n, and leave
 * the array empty. */
void *m2p_vec_detach(m2p_vec *v, size_t *n);
void m2p_vec_free(m2p_vec *v);

#endif
