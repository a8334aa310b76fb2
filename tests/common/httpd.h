/*
 * httpd.h — an in-process HTTP server for tests (CivetWeb on 127.0.0.1, a free port), standing
 * in for every remote service: the model hub, direct audio URLs, MusicBrainz, Spotify, LLMs.
 *
 *   test_httpd *h = test_httpd_start();
 *   test_httpd_route(h, "/api/thing", my_handler, &state);   // civetweb mg_request_handler
 *   ... use test_httpd_url(h) ("http://127.0.0.1:PORT") ...
 *   test_httpd_stop(h);
 *
 * A handler returns the HTTP status it sent (CivetWeb convention: nonzero = handled).
 */
#ifndef M2P_TEST_HTTPD_H
#define M2P_TEST_HTTPD_H

#include <civetweb.h>
#include <stddef.h>

typedef struct test_httpd test_httpd;

test_httpd *test_httpd_start(void);
int test_httpd_port(const test_httpd *h);
const char *test_httpd_url(const test_httpd *h);
/* uri: exact path, or a prefix when it ends in '$'-less pattern like "/files" (CivetWeb
 * matches "/files" and "/files/..." both). */
void test_httpd_route(test_httpd *h, const char *uri, mg_request_handler fn, void *ud);
/* Send a whole response with Content-Length; returns status. */
int test_httpd_reply(struct mg_connection *c, int status, const char *content_type,
                     const void *body, size_t len);
/* Read the request body (up to cap-1 bytes, NUL terminated); returns bytes read. */
size_t test_httpd_body(struct mg_connection *c, char *buf, size_t cap);
void test_httpd_stop(test_httpd *h);

#endif
