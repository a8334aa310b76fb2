/*
 * genre.c — genre normalisation, inference and the source chain of m2p_genre_find.
 *
 * Normalisation and inference follow prompt-rules.json (genre_normalize: ordered weighted
 * substring table, highest weight wins, first recorded wins a tie, "abstract" when nothing
 * matches; genre_infer: first matching tempo/energy rule). The chain is the issue's:
 * metadata (container tag) -> youtube (yt-dlp tags/categories) -> spotify -> musicbrainz ->
 * inferred -> default, each reported as genre_source. Network answers are cached (m2p_cache)
 * by genre_sources.c; failures are not cached and fall through to the next source.
 */
#include "music/genre.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "music/prompt.h"
#include "music/rules.h"
#include "music/text.h"

/* ---------------------------------------------------------------------------------------- */
/* Normalisation                                                                            */
/* ---------------------------------------------------------------------------------------- */

static const json_t *norm_table(void)
{
    const json_t *s = rules_section("genre_normalize");
    return s ? json_object_get(s, "table") : NULL;
}

const char *genre_normalize_json(const json_t *raw)
{
    const json_t *table = norm_table();
    if (!raw || json_is_null(raw) || !table)
        return "abstract";
    size_t n_el = json_is_array(raw) ? json_array_size(raw) : 1;
    size_t n_keys = json_array_size(table);
    /* the ordered map "scores": recorded keys in order of first recording */
    const char *best = NULL;
    long long best_w = 0;
    for (size_t e = 0; e < n_el; e++) {
        const json_t *el = json_is_array(raw) ? json_array_get(raw, e) : raw;
        if (!json_is_string(el)) /* the original fails on non-strings; we skip them */
            continue;
        char *g = text_lower(json_string_value(el));
        if (!g)
            continue;
        for (size_t k = 0; k < n_keys; k++) {
            const json_t *row = json_array_get(table, k);
            const char *key = json_string_value(json_array_get(row, 0));
            long long w = json_integer_value(json_array_get(row, 1));
            if (!key || !strstr(g, key))
                continue;
            /* A key recorded earlier with the same weight keeps its place: only a strictly
             * larger weight replaces the current best, which is the first-recorded tie rule. */
            if (!best || w > best_w) {
                best = key;
                best_w = w;
            }
        }
        free(g);
    }
    return best ? best : "abstract";
}

json_t *genre_raw_parse(const char *raw)
{
    if (!raw || !raw[0])
        return json_null();
    if (raw[0] == '[') {
        json_t *j = json_loads(raw, JSON_REJECT_DUPLICATES, NULL);
        if (j && json_is_array(j))
            return j;
        json_decref(j);
    }
    return json_string(raw);
}

void genre_raw_format(const json_t *list, char *out, size_t len)
{
    if (!len)
        return;
    out[0] = 0;
    size_t n = json_array_size(list);
    if (n == 0)
        return;
    if (n == 1) {
        const char *s = json_string_value(json_array_get(list, 0));
        if (s && strlen(s) < len)
            memcpy(out, s, strlen(s) + 1);
        return;
    }
    json_t *copy = json_array();
    if (!copy)
        return;
    for (size_t i = 0; i < n; i++) {
        json_array_append(copy, json_array_get(list, i));
        char *t = json_dumps(copy, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!t || strlen(t) >= len) {
            free(t);
            break;
        }
        memcpy(out, t, strlen(t) + 1);
        free(t);
    }
    json_decref(copy);
}

const char *m2p_genre_normalize(const char *raw)
{
    json_t *j = genre_raw_parse(raw);
    const char *g = genre_normalize_json(j);
    json_decref(j);
    return g;
}

int genre_word_match(const char *t, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strstr(t, key); p; p = strstr(p + 1, key)) {
        int before = p > t && isalnum((unsigned char)p[-1]);
        int after = isalnum((unsigned char)p[kl]);
        if (!before && !after)
            return 1;
    }
    return 0;
}

const char *genre_table_word(const char *lower_text)
{
    const json_t *table = norm_table();
    size_t k;
    const json_t *row;
    json_array_foreach(table, k, row)
    {
        const char *key = json_string_value(json_array_get(row, 0));
        if (key && strcmp(key, "abstract") != 0 && genre_word_match(lower_text, key))
            return key;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Inference                                                                                */
/* ---------------------------------------------------------------------------------------- */

int genre_infer_json(const json_t *features, const char **genre)
{
    *genre = NULL;
    const json_t *sec = rules_section("genre_infer");
    if (!sec)
        return M2P_EINTERNAL;
    rule_env env;
    rule_env_init(&env, features, json_object_get(sec, "inputs"), "", "", NULL);
    size_t i;
    const json_t *rule;
    int rc = 0;
    json_array_foreach(json_object_get(sec, "rules"), i, rule)
    {
        rule_value v;
        if ((rc = rule_eval(&env, json_string_value(json_object_get(rule, "when")), &v)))
            break;
        int t = rule_truthy(&v);
        rule_value_free(&v);
        if (t) {
            *genre = json_string_value(json_object_get(rule, "then")); /* null: no genre */
            break;
        }
    }
    rule_env_free(&env);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The source chain                                                                         */
/* ---------------------------------------------------------------------------------------- */

m2p_genre_params m2p_genre_default_params(void)
{
    m2p_genre_params p;
    const char *mb = getenv("MUS2PIC_MUSICBRAINZ_URL");
    const char *sa = getenv("MUS2PIC_SPOTIFY_AUTH_URL");
    const char *sp = getenv("MUS2PIC_SPOTIFY_API_URL");
    const char *off = getenv("MUS2PIC_OFFLINE");
    p.musicbrainz_url = mb && mb[0] ? mb : "https://musicbrainz.org";
    p.spotify_auth_url = sa && sa[0] ? sa : "https://accounts.spotify.com/api/token";
    p.spotify_api_url = sp && sp[0] ? sp : "https://api.spotify.com/v1";
    p.offline = off && off[0] && strcmp(off, "0") != 0;
    return p;
}

static void set_out(char *buf, size_t len, const char *s)
{
    if (len) {
        size_t n = strlen(s);
        if (n >= len)
            n = len - 1;
        memcpy(buf, s, n);
        buf[n] = 0;
    }
}

/* YouTube: tags and categories that name a genre of the normalisation table as a whole word
 * ("thrash metal", "Jazz Piano"). A category like "Music" or a tag like "official video"
 * names none, so it is no answer; whole words keep "demo" from reading as "emo". */
static json_t *youtube_genres(const m2p_source_info *info)
{
    json_t *out = json_array();
    const char *srcs[2] = {info->tags_json, info->categories_json};
    for (int s = 0; s < 2 && out; s++) {
        if (!srcs[s][0])
            continue;
        json_t *arr = json_loads(srcs[s], 0, NULL);
        size_t i;
        json_t *el;
        json_array_foreach(arr, i, el)
        {
            const char *t = json_string_value(el);
            if (!t || !t[0] || strlen(t) > 64 || json_array_size(out) >= 8)
                continue;
            char *low = text_lower(t);
            if (low && genre_table_word(low))
                json_array_append_new(out, json_string(low));
            free(low);
        }
        json_decref(arr);
    }
    return out;
}

static int take_list(json_t *list, const char *source, char *genre_raw, size_t genre_len,
                     char *src_out, size_t src_len)
{
    if (!list || json_array_size(list) == 0)
        return 0;
    genre_raw_format(list, genre_raw, genre_len);
    set_out(src_out, src_len, source);
    return 1;
}

int m2p_genre_find(const m2p_source_info *info, const char *band, const m2p_features *features,
                   const m2p_genre_params *params, const m2p_cache *cache, char *genre_raw,
                   size_t genre_len, char *source, size_t source_len)
{
    if (!genre_raw || !source || !genre_len || !source_len)
        return m2p_error(M2P_EINVAL, "m2p_genre_find: output buffers required");
    genre_raw[0] = 0;
    source[0] = 0;
    m2p_genre_params defaults = m2p_genre_default_params();
    const m2p_genre_params *p = params ? params : &defaults;
    if (!rules_root())
        return M2P_EINTERNAL;

    /* 1. metadata: the container's genre tag, lower-cased (genre_infer.source_chain) */
    if (info && info->meta_genre[0]) {
        char *low = text_lower(info->meta_genre);
        ustr u;
        int found = 0;
        if (low && ustr_from_utf8(&u, low) == 0) {
            size_t a = 0, b = u.n;
            while (a < b && text_is_space(u.c[a]))
                a++;
            while (b > a && text_is_space(u.c[b - 1]))
                b--;
            if (b > a) {
                ustr t = {.c = u.c + a, .n = b - a};
                char *s = ustr_to_utf8(&t);
                if (s) {
                    set_out(genre_raw, genre_len, s);
                    set_out(source, source_len, "metadata");
                    found = 1;
                }
                free(s);
            }
            ustr_free(&u);
        }
        free(low);
        if (found)
            return 0;
    }

    /* 2. youtube: yt-dlp tags and categories */
    if (info) {
        json_t *yt = youtube_genres(info);
        int got = take_list(yt, "youtube", genre_raw, genre_len, source, source_len);
        json_decref(yt);
        if (got)
            return 0;
    }

    /* 3. spotify (only with credentials), 4. musicbrainz; not for the placeholder band_song.c
     * gives a video without an artist (a lookup of "Unknown Artist" finds some band's genre) */
    if (!p->offline && band && band[0] && strcasecmp(band, "Unknown Artist") != 0) {
        const char *id = getenv("SPOTIFY_CLIENT_ID"), *secret = getenv("SPOTIFY_CLIENT_SECRET");
        if (id && id[0] && secret && secret[0]) {
            json_t *g = NULL;
            int rc = genre_spotify(band, p, cache, &g);
            if (rc)
                M2P_LOGW("genre: spotify lookup for '%s' failed: %s", band, m2p_errmsg());
            int got = rc == 0 && take_list(g, "spotify", genre_raw, genre_len, source, source_len);
            json_decref(g);
            if (got)
                return 0;
        }
        json_t *g = NULL;
        int rc = genre_musicbrainz(band, p, cache, &g);
        if (rc)
            M2P_LOGW("genre: musicbrainz lookup for '%s' failed: %s", band, m2p_errmsg());
        int got = rc == 0 && take_list(g, "musicbrainz", genre_raw, genre_len, source, source_len);
        json_decref(g);
        if (got)
            return 0;
    }

    /* 5. inferred from the features */
    if (features && !features->undetermined) {
        json_t *fj = prompt_features_json(features);
        if (!fj)
            return m2p_error(M2P_ENOMEM, "out of memory");
        const char *g = NULL;
        int rc = genre_infer_json(fj, &g);
        if (rc == 0 && g) {
            set_out(genre_raw, genre_len, g);
            set_out(source, source_len, "inferred");
        }
        json_decref(fj);
        if (rc)
            return rc;
        if (g)
            return 0;
    }

    /* 6. default: no raw genre (the builders normalise it to "abstract") */
    set_out(source, source_len, "default");
    m2p_error_clear();
    return 0;
}
