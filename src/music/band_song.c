/*
 * band_song.c — band and song from yt-dlp metadata, after prompt-rules.json "band_song".
 *
 * Steps in the spec's order: metadata (artist/creator + track), the first title pattern whose
 * condition holds ("Band - Song", "song by band", "Song (Band)", "Song [Band]", "Band: Song",
 * "Band | Song"), description lines (regex A / B), Japanese 「Band」Song, the uploader/channel
 * fallback, then the band, song and "aggressive" clean-up lists, whose regexes are read from
 * the embedded rules and run by regex.c with Python 're' semantics over code points.
 *
 * Deliberate difference (ORIGINAL.md "bugs we do not copy"): the clean-up patterns
 * "\s*Official.*$" (band) and "\s*(HD|HQ|4K|8K|Official|Lyric|Video|Audio).*$" (aggressive)
 * are not word-bounded in the original, so "Audioslave" became "", "Happy Birthday" became
 * "Happy Birt" and "Unofficial" became "Un". We run them with \b word boundaries (and
 * "Lyrics?"), so only whole words such as "Official", "HD" or "Lyric Video" are cut.
 * Description regex A skips a hyphenated word, a date or a number range ("Auto-generated",
 * "Released on: 2005-09-26"), so the next line, or regex B ("Song · Band"), answers.
 */
#include "music/band_song.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "music/regex.h"
#include "music/rules.h"
#include "music/text.h"

/* ---------------------------------------------------------------------------------------- */
/* Compiled rules                                                                           */
/* ---------------------------------------------------------------------------------------- */

typedef struct cleanup_op {
    int kind; /* 'r' remove, 'c' cut, 't' trim */
    rx *re;
} cleanup_op;

#define MAX_OPS 12
typedef struct cleanup_list {
    cleanup_op ops[MAX_OPS];
    int n;
} cleanup_list;

/* The two defective patterns and what we run instead (see the comment at the top). */
static const struct {
    const char *original, *fixed;
} g_fixes[] = {
    {"\\s*Official.*$", "\\s*\\bOfficial\\b.*$"},
    {"\\s*(HD|HQ|4K|8K|Official|Lyric|Video|Audio).*$",
     "\\s*\\b(HD|HQ|4K|8K|Official|Lyrics?|Video|Audio)\\b.*$"},
};

static struct {
    int ok;
    cleanup_list band, song, aggressive;
    rx *desc_a, *desc_b, *jp_group, *jp_all, *paren_end, *lyrics;
    const json_t *quality, *venue, *channel;
} g;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int load_list(const json_t *bs, const char *id, cleanup_list *out)
{
    size_t i;
    const json_t *step, *found = NULL;
    json_array_foreach(json_object_get(bs, "steps"), i, step)
    {
        const char *sid = json_string_value(json_object_get(step, "id"));
        if (sid && strcmp(sid, id) == 0)
            found = step;
    }
    if (!found)
        return -1;
    const json_t *op;
    json_array_foreach(json_object_get(found, "ordered"), i, op)
    {
        if (out->n == MAX_OPS)
            return -1;
        cleanup_op *o = &out->ops[out->n];
        const char *pat = json_string_value(json_object_get(op, "remove"));
        o->kind = 'r';
        if (!pat) {
            pat = json_string_value(json_object_get(op, "cut"));
            o->kind = 'c';
        }
        if (!pat) {
            if (!json_is_true(json_object_get(op, "trim")))
                return -1;
            o->kind = 't';
            out->n++;
            continue;
        }
        for (size_t f = 0; f < sizeof g_fixes / sizeof g_fixes[0]; f++)
            if (strcmp(pat, g_fixes[f].original) == 0)
                pat = g_fixes[f].fixed;
        if (rx_compile(pat, json_string_value(json_object_get(op, "flags")), &o->re))
            return -1;
        out->n++;
    }
    return 0;
}

static void load(void)
{
    const json_t *bs = rules_section("band_song");
    if (!bs)
        return;
    const json_t *lists = json_object_get(bs, "lists");
    g.quality = json_object_get(lists, "quality_indicators");
    g.venue = json_object_get(lists, "venue_indicators");
    g.channel = json_object_get(lists, "channel_words");
    if (!g.quality || !g.venue || !g.channel)
        return;
    if (load_list(bs, "band_cleanup", &g.band) || load_list(bs, "song_cleanup", &g.song) ||
        load_list(bs, "aggressive_cleanup", &g.aggressive))
        return;
    /* the regexes written in the steps' prose (band_song.steps description / japanese) */
    if (rx_compile("^([^-\u00b7\\n]+)\\s*[-\u2013\u2014]\\s*([^\\n(]+)", "M", &g.desc_a) ||
        rx_compile("^([^\u00b7\\n]+)\\s*[\u00b7\u2022]\\s*([^\\n]+)", "M", &g.desc_b) ||
        rx_compile("\u300c([^\u300d]+)\u300d", "", &g.jp_group) ||
        rx_compile("\u300c[^\u300d]+\u300d", "", &g.jp_all) ||
        rx_compile("\\s*\\(.*?\\)$", "", &g.paren_end) ||
        rx_compile("\\s*lyrics.*$", "I", &g.lyrics))
        return;
    g.ok = 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Code-point string helpers (a NULL .c means "null"; n == 0 is "")                         */
/* ---------------------------------------------------------------------------------------- */

typedef struct bs_ctx {
    int oom;
} bs_ctx;

/* rx_search, with a memo that cannot be allocated counted as out of memory (no match). */
static int search(bs_ctx *cx, const rx *re, const ustr *u, size_t start, size_t *gr)
{
    int rc = rx_search(re, u->c, u->n, start, gr);
    if (rc < 0)
        cx->oom = 1;
    return rc > 0;
}

static ustr u_copy(bs_ctx *cx, const uint32_t *c, size_t n)
{
    ustr u = {0};
    if (ustr_push(&u, 0)) {
        cx->oom = 1;
        return u;
    }
    u.n = 0;
    for (size_t i = 0; i < n; i++)
        if (ustr_push(&u, c[i])) {
            cx->oom = 1;
            break;
        }
    return u;
}

static ustr u_utf8(bs_ctx *cx, const char *s)
{
    ustr u = {0};
    if (s && ustr_from_utf8(&u, s))
        cx->oom = 1;
    return u;
}

static void u_set(ustr *dst, ustr src)
{
    ustr_free(dst);
    *dst = src;
}

static int u_empty(const ustr *u)
{
    return !u->c || u->n == 0;
}

static ustr u_trimmed(bs_ctx *cx, const uint32_t *c, size_t n)
{
    size_t a = 0, b = n;
    while (a < b && text_is_space(c[a]))
        a++;
    while (b > a && text_is_space(c[b - 1]))
        b--;
    return u_copy(cx, c + a, b - a);
}

static ustr u_lower(bs_ctx *cx, const ustr *u)
{
    char *s = ustr_to_utf8(u), *l = s ? text_lower(s) : NULL;
    ustr r = {0};
    if (!l)
        cx->oom = 1;
    else
        r = u_utf8(cx, l);
    free(s);
    free(l);
    return r;
}

/* first (last = 0) or last index of needle (UTF-8) in u, or -1 */
static long u_find(const ustr *u, const char *needle, int last)
{
    ustr nd;
    if (ustr_from_utf8(&nd, needle))
        return -1;
    long hit = -1;
    for (size_t i = 0; nd.n <= u->n && i + nd.n <= u->n; i++) {
        if (memcmp(u->c + i, nd.c, nd.n * sizeof(uint32_t)) == 0) {
            hit = (long)i;
            if (!last)
                break;
        }
    }
    ustr_free(&nd);
    return hit;
}

static int u_ends_with(const ustr *u, uint32_t c)
{
    return u->n > 0 && u->c[u->n - 1] == c;
}

/* any element of list (UTF-8 strings) occurs in u as a substring */
static int u_contains_any(const ustr *u, const json_t *list)
{
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        if (json_is_string(e) && u_find(u, json_string_value(e), 0) >= 0)
            return 1;
    }
    return 0;
}

static int u_equals_any(const ustr *u, const json_t *list)
{
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        ustr x;
        if (!json_is_string(e) || ustr_from_utf8(&x, json_string_value(e)))
            continue;
        int eq = x.n == u->n && memcmp(x.c, u->c, x.n * sizeof(uint32_t)) == 0;
        ustr_free(&x);
        if (eq)
            return 1;
    }
    return 0;
}

/* 'remove R': every non-overlapping match, left to right, replaced by "" */
static ustr rx_remove(bs_ctx *cx, const rx *re, const ustr *u)
{
    ustr out = u_copy(cx, NULL, 0);
    size_t pos = 0, gr[2 * (RX_MAX_GROUPS + 1)];
    while (pos <= u->n && search(cx, re, u, pos, gr)) {
        for (size_t i = pos; i < gr[0]; i++)
            cx->oom |= ustr_push(&out, u->c[i]) != 0;
        if (gr[1] == gr[0]) { /* empty match: keep one character and go on */
            if (gr[0] < u->n)
                cx->oom |= ustr_push(&out, u->c[gr[0]]) != 0;
            pos = gr[0] + 1;
        } else {
            pos = gr[1];
        }
    }
    for (size_t i = pos; i < u->n; i++)
        cx->oom |= ustr_push(&out, u->c[i]) != 0;
    return out;
}

static void apply_list(bs_ctx *cx, const cleanup_list *l, ustr *u)
{
    for (int k = 0; k < l->n; k++) {
        const cleanup_op *o = &l->ops[k];
        if (o->kind == 't') {
            u_set(u, u_trimmed(cx, u->c, u->n));
        } else if (o->kind == 'r') {
            u_set(u, rx_remove(cx, o->re, u));
        } else { /* cut: keep only the text before the first match */
            size_t gr[2 * (RX_MAX_GROUPS + 1)];
            if (search(cx, o->re, u, 0, gr))
                u->n = gr[0];
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The steps                                                                                */
/* ---------------------------------------------------------------------------------------- */

static int nonempty(const char *s)
{
    return s && s[0];
}

static int is_space(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == 0xA0 || c == 0x3000;
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

/* Regex A over the description, skipping the matches that are no "Band - Song": a dash glued
 * to both neighbours ("Auto-generated", "2005-09-26") or between two numbers ("1999 - 2001").
 * The original took them, so "Released on: 2005-09-26" gave band "Released on: 2005", song
 * "09-26" (a defect the spec notes). Group 1 cannot hold a dash, so the dash is at gr[3]. */
static int desc_a_search(bs_ctx *cx, const ustr *desc, size_t *gr)
{
    const uint32_t *c = desc->c;
    size_t pos = 0;
    while (pos <= desc->n && search(cx, g.desc_a, desc, pos, gr)) {
        size_t e1 = gr[3];
        while (e1 > gr[2] && is_space(c[e1 - 1]))
            e1--;
        int glued = e1 == gr[3] && gr[4] == gr[3] + 1;
        int numbers = e1 > gr[2] && gr[4] < gr[5] && is_digit(c[e1 - 1]) && is_digit(c[gr[4]]);
        if (!glued && !numbers)
            return 1;
        pos = gr[1] > gr[0] ? gr[1] : gr[0] + 1;
    }
    return 0;
}

int band_song_extract(const band_song_input *in, char **band_out, char **song_out)
{
    *band_out = *song_out = NULL;
    pthread_once(&g_once, load);
    if (!g.ok)
        return m2p_error(M2P_EINTERNAL, "band/song rules did not load: %s", m2p_errmsg());
    bs_ctx cx = {0};
    ustr title = u_utf8(&cx, in->title ? in->title : "Unknown");
    ustr uploader = u_utf8(&cx, in->uploader ? in->uploader : "Unknown Artist");
    ustr desc = u_utf8(&cx, in->description ? in->description : "");
    ustr band = {0}, song = {0};
    size_t gr[2 * (RX_MAX_GROUPS + 1)];

    /* metadata */
    const char *artist = nonempty(in->artist)    ? in->artist
                         : nonempty(in->creator) ? in->creator
                                                 : NULL;
    if (artist && nonempty(in->track)) {
        band = u_utf8(&cx, artist);
        song = u_utf8(&cx, in->track);
    } else if (artist) {
        band = u_utf8(&cx, artist);
        song = u_copy(&cx, title.c, title.n);
    }

    /* title_patterns: the first whose condition holds is the only one applied */
    if (!(!u_empty(&band) && !u_empty(&song))) {
        long i;
        ustr low = u_lower(&cx, &title);
        size_t colons = 0;
        for (size_t k = 0; k < title.n; k++)
            colons += title.c[k] == ':';
        if ((i = u_find(&title, " - ", 0)) >= 0) {
            u_set(&band, u_trimmed(&cx, title.c, (size_t)i));
            u_set(&song, u_trimmed(&cx, title.c + i + 3, title.n - (size_t)i - 3));
        } else if (u_empty(&band) && (i = u_find(&low, " by ", 0)) >= 0) {
            u_set(&song, u_trimmed(&cx, low.c, (size_t)i));
            u_set(&band, u_trimmed(&cx, low.c + i + 4, low.n - (size_t)i - 4));
        } else if (u_empty(&band) && u_find(&title, " (", 0) >= 0 && u_ends_with(&title, ')')) {
            i = u_find(&title, " (", 1);
            ustr inner = u_copy(&cx, title.c + i + 2, title.n - (size_t)i - 3);
            ustr tr = u_trimmed(&cx, inner.c, inner.n);
            ustr test = u_lower(&cx, &tr);
            if (!u_equals_any(&test, g.quality) && !u_contains_any(&test, g.venue) && test.n > 2) {
                u_set(&song, u_trimmed(&cx, title.c, (size_t)i));
                u_set(&band, u_trimmed(&cx, inner.c, inner.n));
            }
            ustr_free(&inner);
            ustr_free(&tr);
            ustr_free(&test);
        } else if (u_empty(&band) && u_find(&title, " [", 0) >= 0 && u_ends_with(&title, ']')) {
            i = u_find(&title, " [", 1);
            ustr inner = u_copy(&cx, title.c + i + 2, title.n - (size_t)i - 3);
            ustr tr = u_trimmed(&cx, inner.c, inner.n);
            ustr test = u_lower(&cx, &tr);
            if (!u_contains_any(&test, g.venue)) {
                u_set(&song, u_trimmed(&cx, title.c, (size_t)i));
                u_set(&band, u_trimmed(&cx, inner.c, inner.n));
            }
            ustr_free(&inner);
            ustr_free(&tr);
            ustr_free(&test);
        } else if (u_empty(&band) && colons == 1) {
            i = u_find(&title, ":", 0);
            u_set(&band, u_trimmed(&cx, title.c, (size_t)i));
            u_set(&song, u_trimmed(&cx, title.c + i + 1, title.n - (size_t)i - 1));
        } else if (u_empty(&band) && (i = u_find(&title, "|", 0)) >= 0) {
            u_set(&band, u_trimmed(&cx, title.c, (size_t)i));
            u_set(&song, u_trimmed(&cx, title.c + i + 1, title.n - (size_t)i - 1));
        }
        ustr_free(&low);
    }

    /* description lines */
    if (u_empty(&band) || u_empty(&song)) {
        if (desc_a_search(&cx, &desc, gr)) {
            u_set(&band, u_trimmed(&cx, desc.c + gr[2], gr[3] - gr[2]));
            u_set(&song, u_trimmed(&cx, desc.c + gr[4], gr[5] - gr[4]));
            u_set(&song, rx_remove(&cx, g.paren_end, &song));
            u_set(&song, u_trimmed(&cx, song.c, song.n));
        } else if (search(&cx, g.desc_b, &desc, 0, gr)) {
            u_set(&song, u_trimmed(&cx, desc.c + gr[2], gr[3] - gr[2]));
            u_set(&band, u_trimmed(&cx, desc.c + gr[4], gr[5] - gr[4]));
        }
    }

    /* Japanese brackets 「Band」Song */
    if (u_empty(&band) && u_find(&title, "\u300c", 0) >= 0 && u_find(&title, "\u300d", 0) >= 0 &&
        search(&cx, g.jp_group, &title, 0, gr)) {
        u_set(&band, u_trimmed(&cx, title.c + gr[2], gr[3] - gr[2]));
        ustr s = rx_remove(&cx, g.jp_all, &title);
        u_set(&song, u_trimmed(&cx, s.c, s.n));
        ustr_free(&s);
        u_set(&song, rx_remove(&cx, g.paren_end, &song));
        u_set(&song, rx_remove(&cx, g.lyrics, &song));
        u_set(&song, u_trimmed(&cx, song.c, song.n));
    }

    /* fallback: song = title; band = uploader unless it looks like a channel */
    if (u_empty(&band) || u_empty(&song)) {
        u_set(&song, u_copy(&cx, title.c, title.n));
        ustr lu = u_lower(&cx, &uploader);
        if (!u_contains_any(&lu, g.channel)) {
            u_set(&band, u_copy(&cx, uploader.c, uploader.n));
        } else {
            /* the first min(3, count) whitespace-separated words of the title */
            ustr w = u_copy(&cx, NULL, 0);
            int words = 0, total = 0;
            for (size_t k = 0; k < title.n;) {
                while (k < title.n && text_is_space(title.c[k]))
                    k++;
                if (k >= title.n)
                    break;
                size_t a = k;
                while (k < title.n && !text_is_space(title.c[k]))
                    k++;
                total++;
                if (words < 3) {
                    if (words)
                        cx.oom |= ustr_push(&w, ' ') != 0;
                    for (size_t j = a; j < k; j++)
                        cx.oom |= ustr_push(&w, title.c[j]) != 0;
                    words++;
                }
            }
            if (total > 1)
                u_set(&band, w);
            else {
                ustr_free(&w);
                u_set(&band, u_utf8(&cx, "Unknown Artist"));
            }
        }
        ustr_free(&lu);
    }

    if (!band.c)
        band = u_copy(&cx, NULL, 0);
    if (!song.c)
        song = u_copy(&cx, NULL, 0);
    apply_list(&cx, &g.band, &band);
    apply_list(&cx, &g.song, &song);
    if (!u_empty(&band))
        apply_list(&cx, &g.aggressive, &band);
    if (!u_empty(&song))
        apply_list(&cx, &g.aggressive, &song);

    int rc = 0;
    if (!cx.oom) {
        *band_out = ustr_to_utf8(&band);
        *song_out = ustr_to_utf8(&song);
    }
    if (cx.oom || !*band_out || !*song_out) {
        free(*band_out);
        free(*song_out);
        *band_out = *song_out = NULL;
        rc = m2p_error(M2P_ENOMEM, "out of memory");
    }
    ustr_free(&title);
    ustr_free(&uploader);
    ustr_free(&desc);
    ustr_free(&band);
    ustr_free(&song);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Public entry points and the per-video cache                                              */
/* ---------------------------------------------------------------------------------------- */

static int copy_out(const char *s, char *buf, size_t len, const char *what)
{
    if (!buf || !len)
        return m2p_error(M2P_EINVAL, "%s: output buffer required", what);
    size_t n = strlen(s);
    if (n >= len) { /* cut on a UTF-8 character boundary */
        n = len - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    return 0;
}

int band_song_find(const m2p_cache *cache, const m2p_source_info *info, char *band,
                   size_t band_len, char *song, size_t song_len, int *from_cache)
{
    if (from_cache)
        *from_cache = 0;
    if (!info)
        return m2p_error(M2P_EINVAL, "band/song: source info required");
    if (!band || !song || !band_len || !song_len)
        return m2p_error(M2P_EINVAL, "band/song: output buffers required");
    if (cache && info->id[0]) {
        char *v = NULL;
        if (cache->get(cache->user_data, "band_song", info->id, &v) == 0) {
            json_t *j = json_loads(v, 0, NULL);
            const char *b = json_string_value(json_object_get(j, "band"));
            const char *s = json_string_value(json_object_get(j, "song"));
            int hit = nonempty(b) && nonempty(s);
            if (hit) {
                copy_out(b, band, band_len, "band");
                copy_out(s, song, song_len, "song");
                if (from_cache)
                    *from_cache = 1;
            }
            json_decref(j);
            free(v);
            if (hit)
                return 0;
        }
    }
    band_song_input in = {
        .title = info->title[0] ? info->title : NULL,
        .uploader = info->uploader[0] ? info->uploader : NULL,
        .artist = info->artist,
        .creator = info->creator,
        .track = info->track,
        .description = info->description,
    };
    char *b = NULL, *s = NULL;
    int rc = band_song_extract(&in, &b, &s);
    if (rc)
        return rc;
    copy_out(b, band, band_len, "band");
    copy_out(s, song, song_len, "song");
    if (cache && info->id[0] && b[0] && s[0]) {
        json_t *j = json_pack("{s:s,s:s}", "band", band, "song", song);
        char *v = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (v && cache->put(cache->user_data, "band_song", info->id, v, 0))
            M2P_LOGW("band/song cache: %s", m2p_errmsg());
        free(v);
        json_decref(j);
    }
    free(b);
    free(s);
    return 0;
}

int m2p_band_song(const m2p_source_info *info, char *band, size_t band_len, char *song,
                  size_t song_len)
{
    return band_song_find(NULL, info, band, band_len, song, song_len, NULL);
}

/* Python's str.strip() over UTF-8: a malloc'd copy without the leading/trailing whitespace
 * (text_is_space), or NULL on allocation failure. */
static char *bs_strip(const char *s)
{
    ustr u = {0};
    if (ustr_from_utf8(&u, s)) {
        ustr_free(&u);
        return NULL;
    }
    size_t a = 0, b = u.n;
    while (a < b && text_is_space(u.c[a]))
        a++;
    while (b > a && text_is_space(u.c[b - 1]))
        b--;
    ustr t = {.c = u.c ? u.c + a : NULL, .n = b - a, .cap = b - a};
    char *out = ustr_to_utf8(&t);
    ustr_free(&u);
    return out;
}

int band_song_passed(const char *band_name, const char *song_title, char **band, char **song)
{
    *band = *song = NULL;
    if (!band_name || !*band_name || !song_title || !*song_title)
        return 0;
    *band = bs_strip(band_name);
    *song = bs_strip(song_title);
    if (!*band || !*song) {
        free(*band);
        free(*song);
        *band = *song = NULL;
        return m2p_error(M2P_ENOMEM, "out of memory trimming the band and song names");
    }
    return 1;
}
