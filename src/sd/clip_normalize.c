/*
 * clip_normalize.c — the text clean-up CLIPTokenizer runs before its regex split, as
 * transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False) does it without
 * ftfy (transformers 4.37, tokenization_clip.py / tokenization_bert.py): drop U+0000, U+FFFD and
 * category C* except \t\n\r, whitespace -> ' ', spaces around CJK ideographs, NFC (utf8proc),
 * split on whitespace, Unicode lower case (Python's str.lower), join with single spaces.
 * Input is UTF-8 from the prompt; output goes as code points to clip_tokenizer.c's regex + BPE.
 */
#include "sd/clip_normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/buf.h"
#include "core/error.h"
#include "sd/clip_tokenizer.h"

/* ---------------------------------------------------------------------------------------- */
/* Code point buffers                                                                        */
/* ---------------------------------------------------------------------------------------- */

int clip_cp_push(clip_cpbuf *b, int32_t c)
{
    if (b->n == b->cap) {
        int32_t *nv = m2p_array_grow(b->v, &b->cap, b->n + 1, sizeof *nv, CLIP_MAX_TEXT_CPS);
        if (!nv)
            return -1;
        b->v = nv;
    }
    b->v[b->n++] = c;
    return 0;
}

int clip_utf8_put(int32_t cp, char *out)
{
    utf8proc_ssize_t n = utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
    return (int)n;
}

/* UTF-8 -> code points. A byte that does not start a well-formed sequence (RFC 3629: no
 * overlongs, no surrogates, <= U+10FFFF) is dropped; decoding goes on at the next byte. */
int clip_utf8_decode(const unsigned char *s, size_t n, clip_cpbuf *out)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len = 0;
        int32_t cp = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            len = 1;
            cp = (int32_t)c;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        }
        int ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++) {
            unsigned cc = s[i + (size_t)k];
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (cc < l || cc > h)
                ok = 0;
            else
                cp = (cp << 6) | (int32_t)(cc & 0x3F);
        }
        if (!ok) {
            i++;
            continue;
        }
        if (clip_cp_push(out, cp))
            return -1;
        i += (size_t)len;
    }
    return 0;
}

int clip_cps_to_utf8(const int32_t *v, size_t n, char **out, size_t *len)
{
    char *s = malloc(n * 4 + 1);
    if (!s)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)clip_utf8_put(v[i], s + k);
    s[k] = '\0';
    *out = s;
    *len = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* BasicTokenizer pre-normalisation                                                          */
/* ---------------------------------------------------------------------------------------- */

static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

static int is_ws_basic(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

/* Python's str.isspace() (what str.split() splits on). */
static int is_py_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* BERT's _is_chinese_char: the CJK Unified Ideograph blocks (not kana or hangul). */
static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_cased(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
}

static int is_case_ignorable(int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        break;
    }
    /* Word_Break MidLetter, MidNumLet, Single_Quote */
    return c == 0x27 || c == 0x2E || c == 0x3A || c == 0xB7 || c == 0x387 || c == 0x5F4 ||
           c == 0x2018 || c == 0x2019 || c == 0x2024 || c == 0x2027 || c == 0xFE13 || c == 0xFE52 ||
           c == 0xFE55 || c == 0xFF07 || c == 0xFF0E || c == 0xFF1A;
}

/* Python's str.lower() on one whitespace-free word: full mapping for U+0130 and the
 * Final_Sigma rule for U+03A3, simple mapping otherwise. */
static int lower_word(const int32_t *w, size_t n, clip_cpbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        int32_t c = w[i];
        if (c == 0x130) {
            if (clip_cp_push(out, 'i') || clip_cp_push(out, 0x307))
                return -1;
            continue;
        }
        if (c == 0x3A3) {
            size_t j = i;
            int32_t p = 0;
            int found = 0;
            while (j > 0) {
                p = w[--j];
                if (!is_case_ignorable(p)) {
                    found = 1;
                    break;
                }
            }
            int final = found && is_cased(p);
            if (final) {
                size_t k = i + 1;
                while (k < n && is_case_ignorable(w[k]))
                    k++;
                final = k == n || !is_cased(w[k]);
            }
            if (clip_cp_push(out, final ? 0x3C2 : 0x3C3))
                return -1;
            continue;
        }
        if (clip_cp_push(out, utf8proc_tolower(c)))
            return -1;
    }
    return 0;
}

/* One piece of text (no special tokens in it) -> normalised code points in out. */
int clip_normalize_piece(const int32_t *v, size_t n, clip_cpbuf *out)
{
    clip_cpbuf a = {0};
    int rc = -1;
    char *u8 = NULL;
    utf8proc_uint8_t *nfc = NULL;
    clip_cpbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t c = v[i];
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        if (is_ws_basic(c))
            c = ' ';
        if (is_cjk(c)) {
            if (clip_cp_push(&a, ' ') || clip_cp_push(&a, c) || clip_cp_push(&a, ' '))
                goto done;
        } else if (clip_cp_push(&a, c)) {
            goto done;
        }
    }
    size_t len;
    if (clip_cps_to_utf8(a.v, a.n, &u8, &len))
        goto done;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)u8, (utf8proc_ssize_t)len, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
        /* Cannot happen for valid scalar values; keep the text unnormalised rather than fail. */
        if (clip_utf8_decode((const unsigned char *)u8, len, &b))
            goto done;
    } else if (clip_utf8_decode(nfc, (size_t)m, &b)) {
        goto done;
    }
    /* whitespace split, lower case per word, join with one space */
    size_t i = 0;
    int first = 1;
    while (i < b.n) {
        while (i < b.n && is_py_space(b.v[i]))
            i++;
        if (i >= b.n)
            break;
        size_t s = i;
        while (i < b.n && !is_py_space(b.v[i]))
            i++;
        if (!first && clip_cp_push(out, ' '))
            goto done;
        first = 0;
        if (lower_word(b.v + s, i - s, out))
            goto done;
    }
    rc = 0;
done:
    free(a.v);
    free(b.v);
    free(u8);
    free(nfc);
    return rc;
}

int clip_normalize(const char *text, char **out)
{
    clip_cpbuf in = {0}, norm = {0};
    size_t len;
    *out = NULL;
    int rc = clip_utf8_decode((const unsigned char *)text, strlen(text), &in);
    if (!rc)
        rc = clip_normalize_piece(in.v, in.n, &norm);
    if (!rc)
        rc = clip_cps_to_utf8(norm.v, norm.n, out, &len);
    free(in.v);
    free(norm.v);
    return rc ? m2p_error(M2P_ENOMEM, "tokenizer: out of memory") : 0;
}
