/*
 * clip_normalize.h — internal to the CLIP tokenizer: code point buffers, strict UTF-8 decoding
 * and the BasicTokenizer clean-up (clip_normalize.c) that clip_tokenizer.c runs before BPE.
 */
#ifndef M2P_SD_CLIP_NORMALIZE_H
#define M2P_SD_CLIP_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

/* The most code points (and tokens) one text may become: far past any prompt a body carries. */
#define CLIP_MAX_TEXT_CPS ((size_t)1 << 24)

/* A growable array of code points (core/buf.h m2p_array_grow, at most CLIP_MAX_TEXT_CPS);
 * zero-initialise, free(v) when done. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} clip_cpbuf;

/* Appends c; -1 when out of memory or over the limit. */
int clip_cp_push(clip_cpbuf *b, int32_t c);

/* UTF-8 -> code points appended to out; ill-formed bytes are dropped. -1 when out of memory. */
int clip_utf8_decode(const unsigned char *s, size_t n, clip_cpbuf *out);

/* One code point as UTF-8 at out (up to 4 bytes, no NUL); returns the byte count. */
int clip_utf8_put(int32_t cp, char *out);

/* Code points -> a malloc'd NUL-terminated UTF-8 string and its length. -1 when out of memory. */
int clip_cps_to_utf8(const int32_t *v, size_t n, char **out, size_t *len);

/* One piece of text (no special tokens in it) -> normalised code points appended to out.
 * -1 when out of memory. */
int clip_normalize_piece(const int32_t *v, size_t n, clip_cpbuf *out);

#endif
