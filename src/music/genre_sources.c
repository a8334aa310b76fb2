/*
 * genre_sources.c — genre lookups on the network: Spotify and MusicBrainz, both cached.
 *
 * Spotify (Web API): client-credentials token from the accounts service (HTTP Basic with
 * SPOTIFY_CLIENT_ID:SPOTIFY_CLIENT_SECRET), then GET /search?type=artist; the artist whose
 * name scores best against the band (exact > one contains the other > shared words, as the
 * original's name matching) gives its genre list. MusicBrainz (ws/2): artist search
 * query=artist:"<band>", then /artist/<mbid>?inc=tags; tags that name a genre of the
 * normalisation table, most voted first. MusicBrainz allows one request a second per client:
 * a process-wide mutex keeps requests GENRE_MUSICBRAINZ_INTERVAL_S (1.1 s, the original's
 * delay) apart. Answers (also "no genre") are cached per lower-cased trimmed band name in the
 * cache the caller gives (m2p_cache: the store's for jobs and the CLI); failures are not.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "music/genre.h"
#include "music/net.h"
#include "music/text.h"

#define NEGATIVE_TTL_S (7 * 24 * 3600) /* a "no genre" answer is asked again after a week */

/* lower-cased, trimmed band name: the cache key */
static char *band_key(const char *band)
{
    char *low = text_lower(band);
    if (!low)
        return NULL;
    ustr u;
    if (ustr_from_utf8(&u, low)) {
        free(low);
        return NULL;
    }
    free(low);
    size_t a = 0, b = u.n;
    while (a < b && text_is_space(u.c[a]))
        a++;
    while (b > a && text_is_space(u.c[b - 1]))
        b--;
    ustr t = {.c = u.c + a, .n = b - a};
    char *r = ustr_to_utf8(&t);
    ustr_free(&u);
    return r;
}

static int cache_get(const m2p_cache *cache, const char *ns, const char *key, json_t **genres)
{
    char *v = NULL;
    if (!cache || cache->get(cache->user_data, ns, key, &v) != 0)
        return 0;
    json_t *j = json_loads(v, 0, NULL);
    free(v);
    if (!json_is_array(j)) {
        json_decref(j);
        return 0;
    }
    *genres = j;
    return 1;
}

static void cache_put(const m2p_cache *cache, const char *ns, const char *key,
                      const json_t *genres)
{
    if (!cache)
        return;
    char *v = json_dumps(genres, JSON_COMPACT);
    if (v && cache->put(cache->user_data, ns, key, v,
                        json_array_size(genres) ? 0 : NEGATIVE_TTL_S))
        M2P_LOGW("genre cache (%s): %s", ns, m2p_errmsg());
    free(v);
}

static int parse_json_answer(const char *what, long status, const char *body, json_t **out)
{
    if (status >= 500)
        return m2p_error(M2P_ENETWORK, "%s: HTTP %ld", what, status);
    if (status != 200)
        return m2p_error(M2P_ENETWORK, "%s: HTTP %ld", what, status);
    json_error_t err;
    *out = json_loads(body, 0, &err);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return m2p_error(M2P_EFORMAT, "%s: malformed JSON answer (%s)", what, err.text);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Spotify                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static pthread_mutex_t g_sp_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_sp_token[512], g_sp_token_for[512];
static time_t g_sp_expiry;

static int spotify_token(const m2p_genre_params *p, const char *id, const char *secret, char *tok,
                         size_t tok_len)
{
    char who[512];
    snprintf(who, sizeof who, "%s|%s", p->spotify_auth_url, id);
    pthread_mutex_lock(&g_sp_lock);
    if (g_sp_token[0] && strcmp(g_sp_token_for, who) == 0 && time(NULL) + 30 < g_sp_expiry) {
        snprintf(tok, tok_len, "%s", g_sp_token);
        pthread_mutex_unlock(&g_sp_lock);
        return 0;
    }
    pthread_mutex_unlock(&g_sp_lock);

    size_t cl = strlen(id) + strlen(secret) + 2;
    char *userpwd = malloc(cl);
    if (!userpwd)
        return m2p_error(M2P_ENOMEM, "out of memory");
    snprintf(userpwd, cl, "%s:%s", id, secret);
    const char *hdr[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    net_request rq = {.method = "POST",
                      .url = p->spotify_auth_url,
                      .headers = hdr,
                      .body = "grant_type=client_credentials",
                      .userpwd = userpwd,
                      .timeout_s = 10};
    long status;
    char *body = NULL;
    int rc = net_fetch(&rq, &status, &body, NULL);
    free(userpwd);
    if (rc)
        return rc;
    if (status == 400 || status == 401) {
        free(body);
        return m2p_error(M2P_EINVAL, "spotify: credentials rejected (HTTP %ld)", status);
    }
    json_t *j = NULL;
    rc = parse_json_answer("spotify token", status, body, &j);
    free(body);
    if (rc)
        return rc;
    const char *t = json_string_value(json_object_get(j, "access_token"));
    json_int_t exp = json_integer_value(json_object_get(j, "expires_in"));
    if (!t || !t[0] || strlen(t) >= sizeof g_sp_token || strlen(t) >= tok_len) {
        json_decref(j);
        return m2p_error(M2P_EFORMAT, "spotify token: no usable access_token in the answer");
    }
    snprintf(tok, tok_len, "%s", t);
    pthread_mutex_lock(&g_sp_lock);
    snprintf(g_sp_token, sizeof g_sp_token, "%s", t);
    snprintf(g_sp_token_for, sizeof g_sp_token_for, "%s", who);
    g_sp_expiry = time(NULL) + (exp > 0 ? (time_t)exp : 3600);
    pthread_mutex_unlock(&g_sp_lock);
    json_decref(j);
    return 0;
}

/* Name score of a candidate artist against the band we look for (both lower-cased):
 * 100 exact, 60 when one contains the other, else 10 per shared word; 0 = no match. */
static int name_score(const char *want, const char *got)
{
    if (strcmp(want, got) == 0)
        return 100;
    if (strstr(want, got) || strstr(got, want))
        return 60;
    int shared = 0;
    char *w = strdup(want), *save = NULL;
    if (!w)
        return 0;
    for (char *t = strtok_r(w, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        size_t tl = strlen(t);
        for (const char *q = strstr(got, t); q; q = strstr(q + 1, t))
            if ((q == got || q[-1] == ' ') && (q[tl] == 0 || q[tl] == ' ')) {
                shared++;
                break;
            }
    }
    free(w);
    return shared * 10;
}

/* The band's cache key, and the answer when there is nothing to ask: 1 with *genres set (no
 * band, or a cached answer), 0 with *key to ask with (caller frees), or M2P_ENOMEM. */
static int lookup_start(const m2p_cache *cache, const char *ns, const char *band, char **key,
                        json_t **genres)
{
    *key = band_key(band);
    if (!*key)
        return m2p_error(M2P_ENOMEM, "out of memory");
    if ((*key)[0] && !cache_get(cache, ns, *key, genres))
        return 0;
    if (!(*key)[0])
        *genres = json_array();
    free(*key);
    *key = NULL;
    return 1;
}

int genre_spotify(const char *band, const m2p_genre_params *p, const m2p_cache *cache,
                  json_t **genres)
{
    *genres = NULL;
    const char *id = getenv("SPOTIFY_CLIENT_ID"), *secret = getenv("SPOTIFY_CLIENT_SECRET");
    if (!id || !id[0] || !secret || !secret[0])
        return m2p_error(M2P_EINVAL, "spotify: SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET unset");
    char *key = NULL;
    int known = lookup_start(cache, "genre:spotify", band, &key, genres);
    if (known)
        return known < 0 ? known : 0;
    char tok[512];
    int rc = spotify_token(p, id, secret, tok, sizeof tok);
    char *q = NULL, *url = NULL, *body = NULL;
    json_t *j = NULL;
    if (rc)
        goto out;
    size_t ql = strlen(key) + 16;
    char *query = malloc(ql);
    if (!query) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(query, ql, "artist:%s", key);
    q = net_escape(query);
    free(query);
    size_t ul = strlen(p->spotify_api_url) + (q ? strlen(q) : 0) + 64;
    url = malloc(ul);
    if (!q || !url) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(url, ul, "%s/search?q=%s&type=artist&limit=10", p->spotify_api_url, q);
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    const char *hdr[] = {auth, "Accept: application/json", NULL};
    net_request rq = {.url = url, .headers = hdr, .timeout_s = 10};
    long status;
    if ((rc = net_fetch(&rq, &status, &body, NULL)))
        goto out;
    if (status == 401) { /* token revoked: drop it so the next call asks again */
        pthread_mutex_lock(&g_sp_lock);
        g_sp_token[0] = 0;
        pthread_mutex_unlock(&g_sp_lock);
    }
    if ((rc = parse_json_answer("spotify search", status, body, &j)))
        goto out;
    const json_t *items = json_object_get(json_object_get(j, "artists"), "items");
    if (!json_is_array(items)) {
        rc = m2p_error(M2P_EFORMAT, "spotify search: answer has no artists.items");
        goto out;
    }
    const json_t *best = NULL;
    int best_score = 0;
    size_t i;
    const json_t *a;
    json_array_foreach(items, i, a)
    {
        char *name = text_lower(json_string_value(json_object_get(a, "name")));
        int sc = name ? name_score(key, name) : 0;
        free(name);
        if (sc > best_score) { /* ties keep Spotify's relevance order */
            best_score = sc;
            best = a;
        }
    }
    json_t *list = json_array();
    if (!list) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    if (best && best_score >= 60) {
        const json_t *g;
        json_array_foreach(json_object_get(best, "genres"), i, g)
        {
            if (json_is_string(g) && json_string_length(g))
                json_array_append(list, (json_t *)g);
        }
    }
    cache_put(cache, "genre:spotify", key, list);
    *genres = list;
out:
    json_decref(j);
    free(body);
    free(url);
    free(q);
    free(key);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* MusicBrainz                                                                              */
/* ---------------------------------------------------------------------------------------- */

static pthread_mutex_t g_mb_lock = PTHREAD_MUTEX_INITIALIZER;
static double g_mb_last = -1e9;
static double g_mb_interval = GENRE_MUSICBRAINZ_INTERVAL_S;

double genre_musicbrainz_set_interval(double seconds)
{
    pthread_mutex_lock(&g_mb_lock);
    double old = g_mb_interval;
    g_mb_interval = seconds;
    pthread_mutex_unlock(&g_mb_lock);
    return old;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One MusicBrainz request, at least GENRE_MUSICBRAINZ_INTERVAL_S after the previous one in
 * this process (the lock is held while waiting, so callers queue up in order). */
static int mb_get(const char *url, json_t **out)
{
    pthread_mutex_lock(&g_mb_lock);
    double wait = g_mb_last + g_mb_interval - now_s();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    g_mb_last = now_s();
    const char *hdr[] = {"Accept: application/json", NULL};
    net_request rq = {.url = url, .headers = hdr, .timeout_s = 10};
    long status;
    char *body = NULL;
    int rc = net_fetch(&rq, &status, &body, NULL);
    g_mb_last = now_s();
    pthread_mutex_unlock(&g_mb_lock);
    if (rc)
        return rc;
    rc = parse_json_answer("musicbrainz", status, body, out);
    free(body);
    return rc;
}

static int by_count_desc(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    json_int_t cx = json_integer_value(json_object_get(x, "count"));
    json_int_t cy = json_integer_value(json_object_get(y, "count"));
    return cx < cy ? 1 : cx > cy ? -1 : 0;
}

int genre_musicbrainz(const char *band, const m2p_genre_params *p, const m2p_cache *cache,
                      json_t **genres)
{
    *genres = NULL;
    const char *base = p && p->musicbrainz_url && p->musicbrainz_url[0] ? p->musicbrainz_url
                                                                        : "https://musicbrainz.org";
    char *key = NULL;
    int known = lookup_start(cache, "genre:musicbrainz", band, &key, genres);
    if (known)
        return known < 0 ? known : 0;
    int rc = 0;
    char *q = NULL, *url = NULL, *mbid = NULL;
    json_t *search = NULL, *artist = NULL, *list = NULL;
    const json_t **tags = NULL;
    /* Lucene phrase query; a '"' or '\' in the name is escaped for Lucene */
    size_t ql = strlen(key) * 2 + 16;
    char *query = malloc(ql);
    if (!query) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    size_t k = (size_t)snprintf(query, ql, "artist:\"");
    for (const char *s = key; *s; s++) {
        if (*s == '"' || *s == '\\')
            query[k++] = '\\';
        query[k++] = *s;
    }
    query[k++] = '"';
    query[k] = 0;
    q = net_escape(query);
    free(query);
    size_t ul = strlen(base) + (q ? strlen(q) : 0) + 128;
    url = malloc(ul);
    if (!q || !url) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(url, ul, "%s/ws/2/artist?query=%s&fmt=json&limit=5", base, q);
    if ((rc = mb_get(url, &search)))
        goto out;
    const json_t *artists = json_object_get(search, "artists");
    if (!json_is_array(artists)) {
        rc = m2p_error(M2P_EFORMAT, "musicbrainz search: answer has no artists list");
        goto out;
    }
    /* the first artist with exactly this name, else the first with a search score >= 90 */
    const json_t *pick = NULL;
    size_t i;
    const json_t *a;
    json_array_foreach(artists, i, a)
    {
        char *name = text_lower(json_string_value(json_object_get(a, "name")));
        int exact = name && strcmp(name, key) == 0;
        free(name);
        if (exact) {
            pick = a;
            break;
        }
    }
    if (!pick) {
        json_array_foreach(artists, i, a)
        {
            if (json_integer_value(json_object_get(a, "score")) >= 90) {
                pick = a;
                break;
            }
        }
    }
    list = json_array();
    if (!list) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    const char *id = pick ? json_string_value(json_object_get(pick, "id")) : NULL;
    if (id) {
        mbid = net_escape(id);
        if (!mbid) {
            rc = m2p_error(M2P_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(url, ul, "%s/ws/2/artist/%s?inc=tags&fmt=json", base, mbid);
        if ((rc = mb_get(url, &artist)))
            goto out;
        const json_t *tl = json_object_get(artist, "tags");
        size_t nt = json_array_size(tl);
        tags = nt ? malloc(nt * sizeof *tags) : NULL;
        if (nt && !tags) {
            rc = m2p_error(M2P_ENOMEM, "out of memory");
            goto out;
        }
        for (i = 0; i < nt; i++)
            tags[i] = json_array_get(tl, i);
        /* most voted first; qsort is not stable, so equal counts keep the order of a stable
         * insertion sort instead */
        for (size_t x = 1; x < nt; x++)
            for (size_t y = x; y > 0 && by_count_desc(&tags[y - 1], &tags[y]) > 0; y--) {
                const json_t *t = tags[y];
                tags[y] = tags[y - 1];
                tags[y - 1] = t;
            }
        for (i = 0; i < nt && json_array_size(list) < 8; i++) {
            char *name = text_lower(json_string_value(json_object_get(tags[i], "name")));
            if (name && name[0] && genre_table_word(name))
                json_array_append_new(list, json_string(name));
            free(name);
        }
    }
    cache_put(cache, "genre:musicbrainz", key, list);
    *genres = list;
    list = NULL;
out:
    json_decref(list);
    json_decref(search);
    json_decref(artist);
    free(tags);
    free(mbid);
    free(url);
    free(q);
    free(key);
    return rc;
}
