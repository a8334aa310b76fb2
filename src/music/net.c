/*
 * net.c — a minimal libcurl wrapper for the music sources: one easy handle per request with
 * the shared defaults of core/http.c (http(s) only, redirects, no signals, the app's user
 * agent), a total timeout, and a 4 MiB cap on what is kept of a response.
 */
#include "music/net.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/http.h"

#define NET_MAX_BODY (4u << 20)


typedef struct sink {
    char *buf;
    size_t n, cap;
    int overflow;
} sink;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    sink *s = ud;
    size_t k = sz * nm;
    if (s->n + k + 1 > NET_MAX_BODY) {
        s->overflow = 1;
        return 0;
    }
    if (s->n + k + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + k + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, p, k);
    s->n += k;
    s->buf[s->n] = 0;
    return k;
}

char *net_escape(const char *s)
{
    m2p_curl_global_init();
    char *e = curl_easy_escape(NULL, s ? s : "", 0);
    if (!e)
        return NULL;
    char *r = strdup(e);
    curl_free(e);
    return r;
}

int net_fetch(const net_request *rq, long *status, char **body, size_t *body_len)
{
    *body = NULL;
    if (body_len)
        *body_len = 0;
    *status = 0;
    long timeout = rq->timeout_s > 0 ? rq->timeout_s : 10;
    CURL *c = m2p_curl_new(timeout < 10 ? timeout : 10L);
    if (!c)
        return m2p_error(M2P_ENOMEM, "curl_easy_init failed");
    sink s = {0};
    struct curl_slist *hl = NULL;
    for (const char *const *h = rq->headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (rq->userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, rq->userpwd);
    }
    if ((rq->method && strcmp(rq->method, "POST") == 0) || rq->body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
    }
    CURLcode cr = curl_easy_perform(c);
    int rc = 0;
    if (cr != CURLE_OK) {
        if (s.overflow)
            rc = m2p_error(M2P_ETOOBIG, "%s: response larger than %u bytes", rq->url,
                           NET_MAX_BODY);
        else if (cr == CURLE_OPERATION_TIMEDOUT)
            rc = m2p_error(M2P_ETIMEOUT, "%s: no answer within %ld s", rq->url, timeout);
        else
            rc = m2p_error(M2P_ENETWORK, "%s: %s", rq->url, curl_easy_strerror(cr));
        free(s.buf);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (!s.buf)
            s.buf = calloc(1, 1);
        if (!s.buf)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
        *body = s.buf;
        if (body_len)
            *body_len = s.n;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}
