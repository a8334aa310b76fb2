/*
 * http.c — libcurl set-up shared by every module that talks HTTP (see http.h for the defaults
 * and why each is there).
 */
#include "core/http.h"

#include <pthread.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void m2p_curl_global_init(void)
{
    pthread_once(&curl_once, curl_init);
}

CURL *m2p_curl_new(long connect_timeout_s)
{
    m2p_curl_global_init();
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, M2P_USER_AGENT);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_timeout_s > 0 ? connect_timeout_s : 30L);
    return c;
}

size_t m2p_curl_sink_write(char *p, size_t size, size_t n, void *sink)
{
    m2p_curl_sink *s = sink;
    size_t k = size * n;
    int rc = m2p_buf_append(&s->body, p, k);
    if (rc == M2P_ETOOBIG)
        s->over = 1;
    return rc ? 0 : k; /* 0 makes curl stop with CURLE_WRITE_ERROR */
}
