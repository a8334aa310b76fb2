/*
 * httpd.c — see httpd.h: a CivetWeb server on 127.0.0.1 with an OS-chosen port.
 */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_httpd {
    struct mg_context *ctx;
    int port;
    char url[64];
};

test_httpd *test_httpd_start(void)
{
    static int inited;
    if (!inited) {
        mg_init_library(0);
        inited = 1;
    }
    test_httpd *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    const char *opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8",
                          "request_timeout_ms", "20000", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    h->ctx = mg_start(&cb, h, opts);
    if (!h->ctx) {
        fprintf(stderr, "test_httpd: could not start CivetWeb\n");
        free(h);
        return NULL;
    }
    struct mg_server_port ports[4];
    memset(ports, 0, sizeof ports);
    int n = mg_get_server_ports(h->ctx, 4, ports);
    h->port = n > 0 ? ports[0].port : 0;
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", h->port);
    return h;
}

int test_httpd_port(const test_httpd *h) { return h->port; }
const char *test_httpd_url(const test_httpd *h) { return h->url; }

void test_httpd_route(test_httpd *h, const char *uri, mg_request_handler fn, void *ud)
{
    mg_set_request_handler(h->ctx, uri, fn, ud);
}

int test_httpd_reply(struct mg_connection *c, int status, const char *content_type,
                     const void *body, size_t len)
{
    mg_printf(c,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n",
              status, mg_get_response_code_text(c, status),
              content_type ? content_type : "application/octet-stream", len);
    if (len)
        mg_write(c, body, len);
    return status;
}

size_t test_httpd_body(struct mg_connection *c, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        int r = mg_read(c, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (cap)
        buf[got] = '\0';
    return got;
}

void test_httpd_stop(test_httpd *h)
{
    if (!h)
        return;
    mg_stop(h->ctx);
    free(h);
}
