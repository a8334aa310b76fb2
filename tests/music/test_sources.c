/*
 * test_sources.c — genre sources and the LLM against fake services on 127.0.0.1 (no network):
 * MusicBrainz (user agent, query, tags, 1 request/s, no caching of failures), Spotify
 * (client-credentials token, artist search, name scoring), the m2p_genre_find chain, and an
 * OpenAI-compatible chat endpoint (success, 500 then success, 401, garbage, always 500).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"
#include "music/genre.h"
#include "store/store.h"
#include "test.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- fake MusicBrainz ------- */

static struct {
    pthread_mutex_t lock;
    int n;
    double t[32];
    int bad_agent, fail;
    char last_query[512];
} mb = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int mb_handler(struct mg_connection *c, void *ud)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *ua = mg_get_header(c, "User-Agent");
    pthread_mutex_lock(&mb.lock);
    if (mb.n < 32)
        mb.t[mb.n] = now_s();
    mb.n++;
    if (!ua || strcmp(ua, "mus2pic/0.1.0 ( https://github.com/mus2pic )") != 0)
        mb.bad_agent++;
    snprintf(mb.last_query, sizeof mb.last_query, "%s?%s", ri->local_uri,
             ri->query_string ? ri->query_string : "");
    int fail = mb.fail;
    pthread_mutex_unlock(&mb.lock);
    if (fail)
        return test_httpd_reply(c, 503, "text/plain", "busy", 4);
    const char *body;
    if (strcmp(ri->local_uri, "/ws/2/artist") == 0) {
        const char *q = ri->query_string ? ri->query_string : "";
        if (strstr(q, "query=artist%3A%22slayer%22") && strstr(q, "fmt=json"))
            body = "{\"artists\":[{\"id\":\"other\",\"name\":\"Slayer Tribute\",\"score\":100},"
                   "{\"id\":\"abc-123\",\"name\":\"Slayer\",\"score\":98}]}";
        else if (strstr(q, "weird"))
            body = "not json";
        else
            body = "{\"artists\":[]}";
    } else if (strcmp(ri->local_uri, "/ws/2/artist/abc-123") == 0 && ri->query_string &&
               strcmp(ri->query_string, "inc=tags&fmt=json") == 0) {
        body = "{\"id\":\"abc-123\",\"name\":\"Slayer\",\"tags\":["
               "{\"count\":3,\"name\":\"speed metal\"},{\"count\":1,\"name\":\"american\"},"
               "{\"count\":5,\"name\":\"Thrash Metal\"},{\"count\":3,\"name\":\"heavy metal\"}]}";
    } else {
        return test_httpd_reply(c, 404, "application/json", "{}", 2);
    }
    return test_httpd_reply(c, 200, "application/json", body, strlen(body));
}

static void test_musicbrainz(test_httpd *h, m2p_store *st)
{
    m2p_cache cache = m2p_store_cache(st);
    m2p_genre_params p = m2p_genre_default_params();
    p.musicbrainz_url = test_httpd_url(h);
    json_t *g = NULL;
    double t0 = now_s();
    /* search + tags: 2 requests with the real 1.1 s spacing */
    CHECK_INT(genre_musicbrainz("Slayer", &p, &cache, &g), 0);
    char *s = json_dumps(g, JSON_COMPACT);
    CHECK_STR(s, "[\"thrash metal\",\"speed metal\",\"heavy metal\"]"); /* most votes first */
    free(s);
    json_decref(g);
    CHECK_INT(mb.n, 2);
    CHECK(mb.n >= 2 && mb.t[1] - mb.t[0] >= 1.0); /* a lower bound: load only adds to it */
    fprintf(stderr, "two MusicBrainz requests: %.2f s\n", now_s() - t0);
    CHECK_INT(mb.bad_agent, 0);
    /* cached: no request, also with other case and spaces */
    CHECK_INT(genre_musicbrainz("  SLAYER ", &p, &cache, &g), 0);
    CHECK_INT(json_array_size(g), 3);
    json_decref(g);
    CHECK_INT(mb.n, 2);

    /* the rest runs with a short spacing to keep the test fast */
    double old = genre_musicbrainz_set_interval(0.05);
    CHECK(old == 1.1);
    CHECK_INT(genre_musicbrainz("Nobody Known", &p, &cache, &g), 0); /* no artist: empty, cached */
    CHECK_INT(json_array_size(g), 0);
    json_decref(g);
    CHECK_INT(mb.n, 3);
    CHECK(strstr(mb.last_query, "artist%3A%22nobody%20known%22") != NULL);
    CHECK_INT(genre_musicbrainz("Nobody Known", &p, &cache, &g), 0);
    json_decref(g);
    CHECK_INT(mb.n, 3);
    /* failures are errors and are not cached */
    mb.fail = 1;
    CHECK_INT(genre_musicbrainz("Failing Band", &p, &cache, &g), M2P_ENETWORK);
    CHECK(g == NULL);
    CHECK_INT(genre_musicbrainz("Failing Band", &p, &cache, &g), M2P_ENETWORK);
    CHECK_INT(mb.n, 5);
    mb.fail = 0;
    CHECK_INT(genre_musicbrainz("weird", &p, &cache, &g), M2P_EFORMAT);
    char *v = NULL;
    CHECK_INT(store_cache_get(st, "genre:musicbrainz", "failing band", &v), M2P_ENOTFOUND);
    CHECK_INT(store_cache_get(st, "genre:musicbrainz", "weird", &v), M2P_ENOTFOUND);
    /* a server that is not there: a network error, quickly */
    p.musicbrainz_url = "http://127.0.0.1:1";
    CHECK_INT(genre_musicbrainz("Closed Port", &p, NULL, &g), M2P_ENETWORK);
    genre_musicbrainz_set_interval(old);
    genre_musicbrainz_set_interval(0.05);
}

/* ---------------------------------------------------------------- fake Spotify ----------- */

static struct {
    int token_calls, search_calls, bad_auth;
} sp;

static int sp_token(struct mg_connection *c, void *ud)
{
    char body[256];
    test_httpd_body(c, body, sizeof body);
    const char *auth = mg_get_header(c, "Authorization");
    sp.token_calls++;
    /* base64("cid:csecret") */
    if (!auth || strcmp(auth, "Basic Y2lkOmNzZWNyZXQ=") != 0 ||
        strcmp(body, "grant_type=client_credentials") != 0) {
        sp.bad_auth++;
        return test_httpd_reply(c, 401, "application/json", "{\"error\":\"invalid_client\"}", 26);
    }
    const char *r = "{\"access_token\":\"tok123\",\"token_type\":\"Bearer\",\"expires_in\":3600}";
    return test_httpd_reply(c, 200, "application/json", r, strlen(r));
}

static int sp_search(struct mg_connection *c, void *ud)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *auth = mg_get_header(c, "Authorization");
    sp.search_calls++;
    if (!auth || strcmp(auth, "Bearer tok123") != 0)
        return test_httpd_reply(c, 401, "application/json", "{}", 2);
    const char *q = ri->query_string ? ri->query_string : "";
    const char *r;
    if (strstr(q, "q=artist%3Aslayer") && strstr(q, "type=artist"))
        r = "{\"artists\":{\"items\":[{\"name\":\"Slayer Tribute Band\",\"genres\":[\"tribute\"]},"
            "{\"name\":\"Slayer\",\"genres\":[\"thrash metal\",\"speed metal\"]}]}}";
    else if (strstr(q, "q=artist%3Amiles"))
        r = "{\"artists\":{\"items\":[{\"name\":\"Someone Else\",\"genres\":[\"pop\"]}]}}";
    else
        r = "{\"artists\":{\"items\":[]}}";
    return test_httpd_reply(c, 200, "application/json", r, strlen(r));
}

static void test_spotify(test_httpd *h, m2p_store *st)
{
    m2p_cache cache = m2p_store_cache(st);
    char auth_url[256], api_url[256];
    snprintf(auth_url, sizeof auth_url, "%s/token", test_httpd_url(h));
    snprintf(api_url, sizeof api_url, "%s/v1", test_httpd_url(h));
    m2p_genre_params p = m2p_genre_default_params();
    p.spotify_auth_url = auth_url;
    p.spotify_api_url = api_url;
    p.musicbrainz_url = test_httpd_url(h);
    json_t *g = NULL;
    unsetenv("SPOTIFY_CLIENT_ID");
    CHECK_INT(genre_spotify("Slayer", &p, &cache, &g), M2P_EINVAL); /* no credentials */
    setenv("SPOTIFY_CLIENT_ID", "cid", 1);
    setenv("SPOTIFY_CLIENT_SECRET", "csecret", 1);
    CHECK_INT(genre_spotify("Slayer", &p, &cache, &g), 0);
    char *s = json_dumps(g, JSON_COMPACT);
    CHECK_STR(s, "[\"thrash metal\",\"speed metal\"]"); /* the exact name beats the first hit */
    free(s);
    json_decref(g);
    /* a poor name match gives no genre (cached as such); the token is reused */
    CHECK_INT(genre_spotify("Miles Davis", &p, &cache, &g), 0);
    CHECK_INT(json_array_size(g), 0);
    json_decref(g);
    CHECK_INT(sp.token_calls, 1);
    CHECK_INT(sp.search_calls, 2);
    CHECK_INT(genre_spotify("slayer", &p, &cache, &g), 0); /* cached */
    json_decref(g);
    CHECK_INT(sp.search_calls, 2);
    CHECK_INT(sp.bad_auth, 0);

    /* the chain: spotify answers first when credentials are set */
    m2p_source_info info;
    memset(&info, 0, sizeof info);
    char raw[256], src[32];
    CHECK_INT(m2p_genre_find(&info, "Slayer", NULL, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "spotify");
    CHECK_STR(raw, "[\"thrash metal\",\"speed metal\"]");
    CHECK_STR(m2p_genre_normalize(raw), "thrash metal");
    /* without a store Spotify is asked again (the token is still reused) */
    CHECK_INT(m2p_genre_find(&info, "slayer ", NULL, &p, NULL, raw, sizeof raw, src, sizeof src),
              0);
    CHECK_STR(src, "spotify");
    CHECK_INT(sp.token_calls, 1);
    /* Spotify has no genre for this band: MusicBrainz answers (none there either: default) */
    CHECK_INT(m2p_genre_find(&info, "Miles Davis", NULL, &p, &cache, raw, sizeof raw, src, sizeof src),
              0);
    CHECK_STR(src, "default");
    unsetenv("SPOTIFY_CLIENT_ID");
    unsetenv("SPOTIFY_CLIENT_SECRET");
}

/* ---------------------------------------------------------------- the chain -------------- */

static void test_chain(test_httpd *h, m2p_store *st)
{
    m2p_cache cache = m2p_store_cache(st);
    m2p_genre_params p = m2p_genre_default_params();
    p.musicbrainz_url = test_httpd_url(h);
    m2p_source_info info;
    memset(&info, 0, sizeof info);
    char raw[256], src[32];
    m2p_features f;
    memset(&f, 0, sizeof f);
    f.tempo = 150;
    f.energy = 0.8;

    /* metadata wins, lower-cased and trimmed */
    snprintf(info.meta_genre, sizeof info.meta_genre, "  Progressive Rock ");
    snprintf(info.tags_json, sizeof info.tags_json, "[\"jazz\"]");
    CHECK_INT(m2p_genre_find(&info, "Slayer", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "metadata");
    CHECK_STR(raw, "progressive rock");
    /* youtube: tags naming a genre as a whole word; "Music" alone is no genre */
    info.meta_genre[0] = 0;
    snprintf(info.tags_json, sizeof info.tags_json,
             "[\"official video\",\"Slayer\",\"Thrash Metal\",\"demo\",\"80s metal\"]");
    snprintf(info.categories_json, sizeof info.categories_json, "[\"Music\"]");
    CHECK_INT(m2p_genre_find(&info, "Slayer", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "youtube");
    CHECK_STR(raw, "[\"thrash metal\",\"80s metal\"]");
    snprintf(info.tags_json, sizeof info.tags_json, "[\"demo\",\"trapped\",\"live\"]");
    /* musicbrainz (from the cache filled above: no request) */
    int before = mb.n;
    CHECK_INT(m2p_genre_find(&info, "Slayer", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "musicbrainz");
    CHECK_STR(raw, "[\"thrash metal\",\"speed metal\",\"heavy metal\"]");
    CHECK_INT(mb.n, before);
    /* offline: inferred from the features (tempo > 140 and energy > 0.7: electronic) */
    p.offline = 1;
    CHECK_INT(m2p_genre_find(&info, "Slayer", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "inferred");
    CHECK_STR(raw, "electronic");
    /* no rule: default, empty raw genre */
    f.tempo = 110;
    f.energy = 0.5;
    CHECK_INT(m2p_genre_find(&info, "Slayer", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "default");
    CHECK_STR(raw, "");
    f.undetermined = 1;
    f.tempo = 150;
    f.energy = 0.9;
    CHECK_INT(m2p_genre_find(&info, NULL, &f, &p, NULL, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "default");
    /* a failing MusicBrainz falls through, and is asked again next time */
    p.offline = 0;
    mb.fail = 1;
    f.undetermined = 0;
    before = mb.n;
    CHECK_INT(m2p_genre_find(&info, "Unlucky", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "inferred");
    CHECK_INT(m2p_genre_find(&info, "Unlucky", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_INT(mb.n, before + 2);
    mb.fail = 0;
    /* the placeholder for a video without an artist is not looked up */
    before = mb.n;
    CHECK_INT(m2p_genre_find(&info, "Unknown Artist", &f, &p, &cache, raw, sizeof raw, src, sizeof src),
              0);
    CHECK_STR(src, "inferred");
    CHECK_INT(mb.n, before);
    /* bad arguments */
    CHECK_INT(m2p_genre_find(&info, "x", &f, &p, &cache, NULL, 0, src, sizeof src), M2P_EINVAL);
    /* malformed tags JSON is no answer, not a crash */
    snprintf(info.tags_json, sizeof info.tags_json, "[\"jazz\"");
    p.offline = 1;
    CHECK_INT(m2p_genre_find(&info, "x", &f, &p, &cache, raw, sizeof raw, src, sizeof src), 0);
    CHECK_STR(src, "inferred");
}

/* ---------------------------------------------------------------- fake LLM --------------- */

static struct {
    int mode; /* 0 ok, 1 500 then ok, 2 401, 3 garbage, 4 always 500, 5 quoted + prefix */
    int calls, bad_request;
} llm;

static int llm_handler(struct mg_connection *c, void *ud)
{
    char body[16384];
    test_httpd_body(c, body, sizeof body);
    const char *auth = mg_get_header(c, "Authorization");
    llm.calls++;
    json_t *j = json_loads(body, 0, NULL);
    const char *model = json_string_value(json_object_get(j, "model"));
    const json_t *msgs = json_object_get(j, "messages");
    const char *role0 = json_string_value(json_object_get(json_array_get(msgs, 0), "role"));
    const char *user = json_string_value(json_object_get(json_array_get(msgs, 1), "content"));
    if (!auth || strcmp(auth, "Bearer sk-test") != 0 || !model || strcmp(model, "tiny-model") ||
        json_integer_value(json_object_get(j, "max_tokens")) != 100 || !role0 ||
        strcmp(role0, "system") || !user ||
        strcmp(user, "Song: \"So What\"\nArtist: Miles Davis\nGenre: cool jazz\nContext: live") ||
        json_real_value(json_object_get(j, "temperature")) != 0.5)
        llm.bad_request++;
    json_decref(j);
    const char *ok = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"  smoky blue club at midnight, trumpet silhouette.  \"}}],"
                     "\"usage\":{\"total_tokens\":42}}";
    switch (llm.mode) {
    case 1:
        if (llm.calls == 1)
            return test_httpd_reply(c, 500, "text/plain", "oops", 4);
        break;
    case 2: {
        const char *e = "{\"error\":{\"message\":\"Incorrect API key provided\"}}";
        return test_httpd_reply(c, 401, "application/json", e, strlen(e));
    }
    case 3: return test_httpd_reply(c, 200, "application/json", "{\"choices\":7}", 13);
    case 4: return test_httpd_reply(c, 503, "text/plain", "down", 4);
    case 5: {
        const char *q = "{\"choices\":[{\"message\":{\"content\":\"\\\"Prompt: neon rain, "
                        "high quality\\\"\"}}]}";
        return test_httpd_reply(c, 200, "application/json", q, strlen(q));
    }
    }
    return test_httpd_reply(c, 200, "application/json", ok, strlen(ok));
}

static void test_llm(test_httpd *h)
{
    char base[256];
    snprintf(base, sizeof base, "%s/v1/", test_httpd_url(h)); /* trailing slash tolerated */
    m2p_llm_params p = m2p_llm_default_params();
    p.base_url = base;
    p.model = "tiny-model";
    p.api_key = "sk-test";
    p.temperature = 0.5;
    p.additional_context = "live";
    p.timeout_s = 5;
    char *out = NULL;
    int tokens = -1;

    llm.mode = 0;
    llm.calls = 0;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens), 0);
    CHECK_STR(out, "smoky blue club at midnight, trumpet silhouette, masterpiece, best quality");
    CHECK_INT(tokens, 42);
    CHECK_INT(llm.calls, 1);
    CHECK_INT(llm.bad_request, 0);
    free(out);

    llm.mode = 1;
    llm.calls = 0;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens), 0);
    CHECK_INT(llm.calls, 2);
    CHECK(out != NULL);
    free(out);

    llm.mode = 2;
    llm.calls = 0;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens),
              M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "401") && strstr(m2p_errmsg(), "Incorrect API key"));
    CHECK_INT(llm.calls, 1); /* no retry on 4xx */
    CHECK(out == NULL);

    llm.mode = 3;
    llm.calls = 0;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens),
              M2P_EFORMAT);
    CHECK(out == NULL);

    llm.mode = 4;
    llm.calls = 0;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens),
              M2P_ENETWORK);
    CHECK_INT(llm.calls, 3);

    llm.mode = 5;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", "cool jazz", &out, &tokens), 0);
    CHECK_STR(out, "neon rain, high quality");
    CHECK_INT(tokens, 0);
    free(out);

    /* clear errors before any request */
    llm.calls = 0;
    p.api_key = NULL;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", NULL, &out, NULL), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "API key") != NULL);
    p.api_key = "sk-test";
    p.temperature = 1.5;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", NULL, &out, NULL), M2P_EINVAL);
    p.temperature = 0.5;
    CHECK_INT(m2p_prompt_llm(&p, "", "Miles Davis", NULL, &out, NULL), M2P_EINVAL);
    CHECK_INT(llm.calls, 0);
    /* nothing listening */
    p.base_url = "http://127.0.0.1:1/v1";
    p.timeout_s = 2;
    CHECK_INT(m2p_prompt_llm(&p, "So What", "Miles Davis", NULL, &out, NULL), M2P_ENETWORK);
}

int main(void)
{
    test_httpd *h = test_httpd_start();
    CHECK(h != NULL);
    if (!h)
        TEST_DONE();
    test_httpd_route(h, "/ws/2/artist", mb_handler, NULL);
    test_httpd_route(h, "/token", sp_token, NULL);
    test_httpd_route(h, "/v1/search", sp_search, NULL);
    test_httpd_route(h, "/v1/chat/completions", llm_handler, NULL);
    char *dir = test_tmpdir("genre");
    m2p_store *st = NULL;
    CHECK_INT(m2p_store_open(dir, &st), 0);
    unsetenv("MUS2PIC_OFFLINE");

    test_musicbrainz(h, st);
    test_spotify(h, st);
    test_chain(h, st);
    test_llm(h);

    m2p_store_close(st);
    test_rmtree(dir);
    free(dir);
    test_httpd_stop(h);
    TEST_DONE();
}
