/*
 * net.c — a minimal libcurl wrapper for the music sources: one easy handle per request with
 * the shared defaults of core/http.c (http(s) only, redirects, no signals, the app's user
 * agent), a total timeout, and a 4 MiB cap on what is kept of a response.
 */
#include "music/net.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/http.h"

#define NET_MAX_BODY (4u << 20)

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
    m2p_curl_sink s = {.over = 0}; /* the body, capped at NET_MAX_BODY (core/http.h) */
    m2p_buf_init(&s.body, NET_MAX_BODY - 1);
    struct curl_slist *hl = NULL;
    for (const char *const *h = rq->headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, m2p_curl_sink_write);
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
        if (s.over)
            rc = m2p_error(M2P_ETOOBIG, "%s: response larger than %u bytes", rq->url, NET_MAX_BODY);
        else if (cr == CURLE_OPERATION_TIMEDOUT)
            rc = m2p_error(M2P_ETIMEOUT, "%s: no answer within %ld s", rq->url, timeout);
        else
            rc = m2p_error(M2P_ENETWORK, "%s: %s", rq->url, curl_easy_strerror(cr));
        m2p_buf_free(&s.body);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        size_t n = s.body.len;
        *body = m2p_buf_detach(&s.body);
        if (!*body)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
        if (body_len)
            *body_len = *body ? n : 0;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}
