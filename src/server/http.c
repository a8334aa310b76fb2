/*
 * http.c — the server's HTTP plumbing: whole responses with Content-Length, JSON and error
 * bodies, reading a JSON body under the size limit, query parameters, and the token check.
 *
 * Error bodies carry both `error` (this API) and `detail` (what the original FastAPI app sent),
 * plus `field` when one request field is at fault, so a client can point at it.
 *
 * Cross-site requests: without a token, a page on another site could otherwise POST to the
 * loopback server or read it through DNS rebinding. http_same_site accepts a request when its
 * Host names this server (localhost, 127.0.0.1, [::1], the bound host, an --allowed-origin's
 * host; checked without a token only: with one, the token is the guard) and its Origin, when it
 * has one, is the request's own origin or an --allowed-origin (the Fetch standard's rules: a
 * browser sends Origin on every cross-origin request and on same-origin POSTs).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/json_limit.h"
#include "server/server_internal.h"

void http_send(struct mg_connection *c, int status, const char *type, const void *body, size_t len,
               const char *extra_headers)
{
    mg_printf(c,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
              status, mg_get_response_code_text(c, status), type, len,
              extra_headers ? extra_headers : "");
    if (len)
        mg_write(c, body, len);
}

char *http_dumps(const json_t *json)
{
    unsigned failed = m2p_json_alloc_failures();
    char *s = json ? json_dumps(json, JSON_COMPACT) : NULL;
    if (s && m2p_json_alloc_failures() != failed) { /* see m2p_json_track_alloc */
        free(s);
        s = NULL;
    }
    return s;
}

void http_json(struct mg_connection *c, int status, json_t *json)
{
    char *s = http_dumps(json);
    json_decref(json);
    if (!s) {
        static const char oom[] = "{\"success\":false,\"error\":\"out of memory\"}";
        http_send(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    http_send(c, status, "application/json", s, strlen(s), NULL);
    free(s);
}

void http_error(struct mg_connection *c, int status, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:b, s:s, s:s}", "success", 0, "error", msg, "detail", msg);
    if (o && field)
        json_object_set_new(o, "field", json_string(field));
    if (status == 503 || status == 429) {
        char *s = http_dumps(o);
        json_decref(o);
        static const char oom[] = "{\"success\":false,\"error\":\"out of memory\"}";
        /* out of memory for the message: still an answer, with the same status */
        http_send(c, status, "application/json", s ? s : oom, s ? strlen(s) : sizeof oom - 1,
                  "Retry-After: 5\r\n");
        free(s);
        return;
    }
    http_json(c, status, o);
}

void http_api_error(struct mg_connection *c, const api_error *e)
{
    http_error(c, e->status ? e->status : 400, e->field[0] ? e->field : NULL, "%s", e->message);
}

int http_status_of(int code)
{
    switch (code) {
    case M2P_EINVAL:
    case M2P_EFORMAT:
        return 400;
    case M2P_ENOTFOUND:
        return 404;
    case M2P_EBUSY:
        return 503;
    case M2P_ETOOBIG:
        return 413;
    case M2P_ETIMEOUT:
        return 504;
    case M2P_ENETWORK:
        return 502;
    case M2P_EUNSUPPORTED:
        return 422;
    default:
        return 500;
    }
}

json_t *http_read_json(server *s, struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    size_t max = s->cfg.max_body;
    if (ri->content_length > (long long)max) {
        http_error(c, 413, NULL, "the request body has %lld bytes; the limit is %zu",
                   ri->content_length, max);
        return NULL;
    }
    /* The body in a growable buffer capped at the limit; the declared length is only a hint. */
    m2p_buf body;
    m2p_buf_init(&body, max);
    int rc = m2p_buf_reserve(&body, ri->content_length > 0 ? (size_t)ri->content_length : 0);
    char chunk[16384];
    int r;
    while (!rc && (r = mg_read(c, chunk, sizeof chunk)) > 0)
        rc = m2p_buf_append(&body, chunk, (size_t)r);
    if (rc) {
        m2p_buf_free(&body);
        if (rc == M2P_ETOOBIG)
            http_error(c, 413, NULL, "the request body is over the limit of %zu bytes", max);
        else
            http_error(c, 500, NULL, "out of memory");
        return NULL;
    }
    size_t n = body.len;
    char *buf = m2p_buf_detach(&body);
    if (!buf) {
        http_error(c, 500, NULL, "out of memory");
        return NULL;
    }
    json_error_t err;
    json_t *j = m2p_json_loadb(buf, n, JSON_REJECT_DUPLICATES, &err);
    free(buf);
    if (!j) {
        http_error(c, 400, "body", "malformed JSON at line %d, column %d: %s", err.line, err.column,
                   err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(c, 400, "body", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

int http_query_int(struct mg_connection *c, const char *name, long lo, long hi, long def, long *out)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    char buf[64];
    *out = def;
    if (!ri->query_string)
        return 0;
    int n = mg_get_var(ri->query_string, strlen(ri->query_string), name, buf, sizeof buf);
    if (n < 0)
        return 0;
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (n == 0 || *end || v < lo || v > hi) {
        http_error(c, 400, name, "%s must be an integer from %ld to %ld", name, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Compare without an early exit, so the time taken says nothing about the token. */
static int same(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < nb; i++)
        d |= (unsigned char)(a[i < na ? i : 0] ^ b[i]);
    return d == 0;
}

int http_authorized(server *s, const struct mg_connection *c)
{
    if (!s->token[0])
        return 1;
    const char *h = mg_get_header(c, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7) && same(h + 7, s->token))
        return 1;
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->query_string) {
        char buf[300];
        int n = mg_get_var(ri->query_string, strlen(ri->query_string), "token", buf, sizeof buf);
        /* n is the decoded length: a %00 inside makes it longer than the string compared */
        if (n > 0 && (size_t)n == strlen(buf) && same(buf, s->token))
            return 1;
    }
    return 0;
}

/* Split "host[:port]" or "[v6]:port" (n bytes): the host without brackets, lower-cased, into
 * name; the port, or -1 when absent. Returns -1 when malformed. */
static int split_host(const char *h, size_t n, char *name, size_t cap, long *port)
{
    const char *end = h + n, *colon = NULL;
    *port = -1;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (!rb)
            return -1;
        if ((size_t)(rb - h - 1) >= cap)
            return -1;
        memcpy(name, h + 1, (size_t)(rb - h - 1));
        name[rb - h - 1] = 0;
        colon = rb + 1 < end ? rb + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
    } else {
        colon = memchr(h, ':', n);
        size_t hn = colon ? (size_t)(colon - h) : n;
        if (!hn || hn >= cap)
            return -1;
        memcpy(name, h, hn);
        name[hn] = 0;
    }
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (colon) {
        long v = 0;
        const char *p = colon + 1;
        if (p == end)
            return -1;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || v > 65535)
                return -1;
            v = v * 10 + (*p - '0');
        }
        *port = v;
    }
    return 0;
}

/* The host part of an origin "scheme://host[:port]"; -1 when it is not one. */
static int origin_host(const char *o, char *name, size_t cap, long *port)
{
    const char *sep = strstr(o, "://");
    if (!sep)
        return -1;
    const char *h = sep + 3;
    size_t n = strcspn(h, "/");
    if (h[n])
        return -1; /* an origin has no path */
    if (split_host(h, n, name, cap, port))
        return -1;
    if (*port < 0)
        *port = !strncasecmp(o, "https://", 8) ? 443 : 80;
    return 0;
}

/* Is name one of this server's own names? */
static int own_name(const server *s, const char *name)
{
    if (!strcmp(name, "localhost") || !strcmp(name, "127.0.0.1") || !strcmp(name, "::1") ||
        !strcasecmp(name, s->host))
        return 1;
    for (int i = 0; i < s->cfg.n_origins; i++) {
        char h[256];
        long p;
        if (!origin_host(s->cfg.allowed_origins[i], h, sizeof h, &p) && !strcmp(h, name))
            return 1;
    }
    return 0;
}

int http_same_site(server *s, const struct mg_connection *c, char *why, size_t cap)
{
    const char *host = mg_get_header(c, "Host");
    char hname[256], oname[256];
    long hport = -1, oport = -1;
    if (!host || split_host(host, strlen(host), hname, sizeof hname, &hport)) {
        snprintf(why, cap, "the request needs a Host header naming this server");
        return 0;
    }
    if (!s->token[0] && !own_name(s, hname)) {
        snprintf(why, cap,
                 "Host '%.200s' is not this server's name; open it as http://localhost:%d "
                 "(or start it with --allowed-origin for another name)",
                 host, s->port);
        return 0;
    }
    const char *origin = mg_get_header(c, "Origin");
    if (!origin)
        return 1; /* not a browser, or a same-origin GET */
    for (int i = 0; i < s->cfg.n_origins; i++)
        if (!strcasecmp(origin, s->cfg.allowed_origins[i]))
            return 1;
    if (hport < 0)
        hport = !strncasecmp(origin, "https://", 8) ? 443 : 80;
    if (!origin_host(origin, oname, sizeof oname, &oport) && !strcmp(oname, hname) &&
        oport == hport)
        return 1; /* the page this server served */
    snprintf(why, cap,
             "requests from pages of %.200s are not allowed; start the server with "
             "--allowed-origin %.200s to allow them",
             origin, origin);
    return 0;
}

int http_is_json(const struct mg_connection *c)
{
    const char *ct = mg_get_header(c, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16))
        return 0;
    return ct[16] == 0 || ct[16] == ';' || ct[16] == ' ';
}
