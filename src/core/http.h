/*
 * http.h — the one place libcurl is set up for mus2pic's requests (model hub, direct audio URLs,
 * MusicBrainz, Spotify, LLM endpoints): curl_global_init exactly once (thread safe), and easy
 * handles with what every request wants — http(s) only, also after redirects; redirects
 * followed (at most 10); no signals (worker threads); the app's user agent, which MusicBrainz
 * requires to name the app and a contact; a connect timeout. Callers add URL, body, limits.
 */
#ifndef M2P_CORE_HTTP_H
#define M2P_CORE_HTTP_H

#include <curl/curl.h>

#include "core/buf.h"
#include "mus2pic.h"

#define M2P_USER_AGENT "mus2pic/" M2P_VERSION " ( https://github.com/mus2pic )"

/* A new easy handle with the defaults above (NULL when out of memory). */
CURL *m2p_curl_new(long connect_timeout_s);
/* curl_global_init, once per process; safe from any thread. */
void m2p_curl_global_init(void);

/* A response body kept in a growable buffer with a hard limit: m2p_buf_init(&s.body, limit),
 * then CURLOPT_WRITEFUNCTION m2p_curl_sink_write and CURLOPT_WRITEDATA &s. Past the limit (or
 * out of memory) the transfer stops with CURLE_WRITE_ERROR; over says it was the limit. */
typedef struct m2p_curl_sink {
    m2p_buf body;
    int over;
} m2p_curl_sink;
size_t m2p_curl_sink_write(char *p, size_t size, size_t n, void *sink);

#endif
