/*
 * fuzz_url.c — libFuzzer target for the analysis URL checks: m2p_url_check (src/audio/fetch.c)
 * and validate_url's refusal of this machine and private networks (src/server/validate.c).
 *
 * Input: a URL's bytes (at most 4 KiB). Oracle: a URL validate_url accepts without
 * --allow-private-urls must not name a loopback, private, link-local or unspecified address
 * once its host is read as a fetcher may read it (percent-decoded, brackets and port dropped,
 * trailing dots removed); with --allow-private-urls, acceptance equals m2p_url_check's.
 */
#include "core/error.h"
#include "server/server_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* An independent reading of the URL's host: 1 when it is this machine or a private network. */
static int oracle_private(const char *url)
{
    const char *rest = strstr(url, "://");
    if (!rest)
        return 0;
    rest += 3;
    size_t n = strcspn(rest, "/?#");
    char raw[4200];
    if (n >= sizeof raw)
        return 0;
    memcpy(raw, rest, n);
    raw[n] = 0;
    /* brackets and port first, on the raw text; then percent-decoding; then the zone id */
    char *r = raw;
    int bracketed = r[0] == '[';
    if (bracketed) {
        char *rb = strchr(r, ']');
        if (!rb)
            return 0;
        *rb = 0;
        r++;
    } else {
        char *colon = strchr(r, ':');
        if (colon)
            *colon = 0;
    }
    char host[4200];
    size_t k = 0;
    for (size_t i = 0; r[i]; i++) {
        if (r[i] == '%' && hexval((unsigned char)r[i + 1]) >= 0 &&
            hexval((unsigned char)r[i + 2]) >= 0) {
            host[k++] = (char)(hexval((unsigned char)r[i + 1]) * 16 + hexval((unsigned char)r[i + 2]));
            i += 2;
        } else {
            host[k++] = r[i];
        }
    }
    host[k] = 0;
    char *h = host;
    if (bracketed) {
        char *zone = strchr(h, '%');
        if (zone)
            *zone = 0;
    }
    size_t hl = strlen(h);
    while (hl && h[hl - 1] == '.')
        h[--hl] = 0;
    if (!strcasecmp(h, "localhost") || (hl > 10 && !strcasecmp(h + hl - 10, ".localhost")))
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    int mapped = 0;
    if (inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6)) {
        memcpy(&a4.s_addr, a6.s6_addr + 12, 4);
        mapped = 1;
    }
    if (mapped || inet_aton(h, &a4)) {
        uint32_t a = ntohl(a4.s_addr);
        uint32_t top = a >> 24;
        return top == 0 || top == 127 || top == 10 || (a & 0xfff00000u) == 0xac100000u ||
               (a & 0xffff0000u) == 0xc0a80000u || (a & 0xffff0000u) == 0xa9fe0000u;
    }
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
               IN6_IS_ADDR_LINKLOCAL(&a6);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    char why[256];
    int checked = m2p_url_check(url, why, sizeof why) == 0;
    if (!checked && !why[0])
        abort(); /* a refusal always says why */

    server s;
    memset(&s, 0, sizeof s);
    json_t *v = json_stringn(url, size); /* NULL for bytes that are not UTF-8 */
    if (v) {
        api_error e = {0};
        int strict = validate_url(&s, v, "url", &e) == 0;
        if (!strict && !e.message[0])
            abort();
        if (strict && oracle_private(url)) {
            fprintf(stderr, "fuzz_url: accepted a private address: %s\n", url);
            abort();
        }
        s.cfg.allow_private_urls = 1;
        memset(&e, 0, sizeof e);
        int loose = validate_url(&s, v, "url", &e) == 0;
        if (loose != (checked && strlen(url) == size && size <= 2048))
            abort();
        json_decref(v);
    }
    free(url);
    return 0;
}
