/*
 * text.c — UTF-8 decoding/encoding and Python-compatible lower-casing and whitespace.
 *
 * Lower-casing follows Python's str.lower(): utf8proc's simple lower-case mapping plus the
 * one full mapping that differs (U+0130 -> "i" U+0307). Whitespace is Python's isspace() set
 * as prompt-rules.json band_song.regex_dialect.whitespace lists it.
 */
#include "music/text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/buf.h"

/* Code points in one string: titles, descriptions and names are far shorter. */
#define USTR_MAX ((size_t)1 << 24)

int ustr_push(ustr *u, uint32_t c)
{
    if (u->n + 1 > u->cap) {
        uint32_t *p = m2p_array_grow(u->c, &u->cap, u->n + 1, sizeof *p, USTR_MAX);
        if (!p)
            return -2; /* M2P_ENOMEM */
        u->c = p;
    }
    u->c[u->n++] = c;
    return 0;
}

void ustr_free(ustr *u)
{
    free(u->c);
    u->c = NULL;
    u->n = u->cap = 0;
}

int ustr_from_utf8(ustr *u, const char *s)
{
    memset(u, 0, sizeof *u);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)(s ? s : "");
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen((const char *)p);
    if (ustr_push(u, 0)) /* make sure c is allocated even for "" */
        return -2;
    u->n = 0;
    while (len > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, len, &cp);
        if (k < 0) {
            cp = 0xFFFD;
            k = 1;
        }
        if (ustr_push(u, (uint32_t)cp)) {
            ustr_free(u);
            return -2;
        }
        p += k;
        len -= k;
    }
    return 0;
}

char *ustr_to_utf8(const ustr *u)
{
    char *out = malloc(u->n * 4 + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++)
        k += (size_t)utf8proc_encode_char((utf8proc_int32_t)u->c[i], (utf8proc_uint8_t *)out + k);
    out[k] = 0;
    return out;
}

int text_is_space(uint32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 ||
        c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
        c == 0x202F || c == 0x205F || c == 0x3000)
        return 1;
    return 0;
}

uint32_t text_lower_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

char *text_lower(const char *s)
{
    ustr in, out = {0};
    if (ustr_from_utf8(&in, s))
        return NULL;
    int bad = ustr_push(&out, 0);
    out.n = 0;
    for (size_t i = 0; i < in.n && !bad; i++) {
        if (in.c[i] == 0x130) /* LATIN CAPITAL I WITH DOT ABOVE: Python gives "i\u0307" */
            bad = ustr_push(&out, 'i') || ustr_push(&out, 0x307);
        else
            bad = ustr_push(&out, text_lower_cp(in.c[i]));
    }
    char *r = bad ? NULL : ustr_to_utf8(&out);
    ustr_free(&in);
    ustr_free(&out);
    return r;
}
