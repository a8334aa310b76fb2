/* test_httpd.c — the test HTTP server answers on its own port (used by every network test). */
#include <curl/curl.h>

#include "httpd.h"
#include "test.h"

static int hello(struct mg_connection *c, void *ud)
{
    (void)ud;
    return test_httpd_reply(c, 200, "text/plain", "hello", 5);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    char *buf = ud;
    size_t len = strlen(buf), add = sz * n;
    if (len + add < 64) {
        memcpy(buf + len, p, add);
        buf[len + add] = 0;
    }
    return add;
}

int main(void)
{
    test_httpd *h = test_httpd_start();
    CHECK(h != NULL);
    if (!h)
        TEST_DONE();
    CHECK(test_httpd_port(h) > 0);
    test_httpd_route(h, "/hello", hello, NULL);
    char url[128], body[64] = "";
    snprintf(url, sizeof url, "%s/hello", test_httpd_url(h));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    CHECK_INT(curl_easy_perform(c), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    CHECK_INT(code, 200);
    CHECK_STR(body, "hello");
    curl_easy_cleanup(c);
    test_httpd_stop(h);
    TEST_DONE();
}
