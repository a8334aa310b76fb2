/*
 * text.h — Unicode text helpers for the music rules: UTF-8 <-> code points, Python's
 * str.lower() and str.strip() whitespace, so that band/song and genre rules count and
 * compare code points the way the original (Python 3) did.
 */
#ifndef M2P_MUSIC_TEXT_H
#define M2P_MUSIC_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* A code-point string (NUL-free; length n). */
typedef struct ustr {
    uint32_t *c;
    size_t n, cap;
} ustr;

/* Decode UTF-8 (invalid bytes become U+FFFD). 0 or M2P_ENOMEM. */
int ustr_from_utf8(ustr *u, const char *s);
/* Encode as malloc'd UTF-8, or NULL on allocation failure. */
char *ustr_to_utf8(const ustr *u);
int ustr_push(ustr *u, uint32_t c);
void ustr_free(ustr *u);

/* Python's str.isspace() for the characters \s and strip() use. */
int text_is_space(uint32_t c);
/* Python str.lower() of one code point (simple mapping; U+0130 handled by text_lower). */
uint32_t text_lower_cp(uint32_t c);
/* Python str.lower() of a UTF-8 string: malloc'd, NULL on allocation failure. */
char *text_lower(const char *s);

#endif
