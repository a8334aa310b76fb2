/*
 * genre.c — genre inference and the source chain of m2p_genre_find.
 *
 * Inference follows prompt-rules.json (genre_infer: first matching tempo/energy rule); the
 * normalisation table is ruleset.c's. The chain is the issue's:
 * metadata (container tag) -> youtube (yt-dlp tags/categories) -> spotify -> musicbrainz ->
 * inferred -> default, each reported as genre_source. Network answers are cached (m2p_cache)
 * by genre_sources.c; failures are not cached and fall through to the next source.
 */
#include "music/genre.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "music/prompt.h"
#include "music/rules.h"
#include "music/text.h"

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
