/*
 * validate.c — request checks shared by every route that starts work (REST, the original's
 * paths, the WebSocket "generate" message, batches). Each failure names the field and its
 * allowed range (DESIGN.md, "Every part and bad input"); nothing invalid reaches a job.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/error.h"
#include "server/server_internal.h"

#define MAX_PROMPT 4000
#define MIN_SIDE 64
#define MAX_SIDE 1024
#define MAX_SEED 9007199254740991LL /* 2^53 - 1: survives JavaScript numbers */

static int fail(api_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(api_error *e, const char *field, const char *fmt, ...)
{
    e->status = 400;
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* The first present key of names (aliases: the original's num_steps, ...). */
static json_t *get_any(json_t *o, const char *const *names, const char **which)
{
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(o, names[i]);
        if (v && !json_is_null(v)) {
            *which = names[i];
            return v;
        }
    }
    *which = names[0];
    return NULL;
}

/* An integer field (an integral number, or a string of digits from a form) in [lo, hi]. */
static int get_int(json_t *o, const char *const *names, long long lo, long long hi, long long def,
                   long long *out, const char *range, api_error *e)
{
    const char *f;
    json_t *v = get_any(o, names, &f);
    if (!v) {
        *out = def;
        return 0;
    }
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        /* Range first, in double: casting 1e300 or NaN to an integer is undefined behaviour. */
        double d = json_real_value(v);
        if (!(d >= (double)lo && d <= (double)hi))
            return fail(e, f, "%s is %g; it must be %s", f, d, range);
        if (d != floor(d))
            return fail(e, f, "%s must be an integer %s", f, range);
        x = (long long)d;
    } else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 20) {
        char *end;
        x = strtoll(json_string_value(v), &end, 10);
        if (*end)
            return fail(e, f, "%s must be an integer %s", f, range);
    } else {
        return fail(e, f, "%s must be an integer %s", f, range);
    }
    if (x < lo || x > hi)
        return fail(e, f, "%s is %lld; it must be %s", f, x, range);
    *out = x;
    return 0;
}

int validate_opt_string(json_t *body, const char *key, size_t max, api_error *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(e, key, "%s must be a string", key);
    if (json_string_length(v) > max)
        return fail(e, key, "%s has %zu bytes; at most %zu are allowed", key, json_string_length(v),
                    max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(e, key, "%s must not contain NUL characters", key);
    return 0;
}

json_t *validate_generate(server *s, json_t *b, int need_prompt, api_error *e)
{
    memset(e, 0, sizeof *e);
    json_t *out = json_object();
    if (!out) {
        fail(e, "body", "out of memory");
        e->status = 500;
        return NULL;
    }
    /* prompt */
    json_t *p = json_object_get(b, "prompt");
    if (need_prompt && (!json_is_string(p) || json_string_length(p) == 0)) {
        fail(e, "prompt", "prompt must be a non-empty string");
        goto bad;
    }
    if (validate_opt_string(b, "prompt", MAX_PROMPT, e) ||
        validate_opt_string(b, "negative_prompt", MAX_PROMPT, e) ||
        validate_opt_string(b, "model", 64, e))
        goto bad;
    if (json_is_string(p))
        json_object_set(out, "prompt", p);
    json_t *np = json_object_get(b, "negative_prompt");
    json_object_set_new(out, "negative_prompt",
                        json_string(json_is_string(np) ? json_string_value(np) : ""));

    /* model */
    char model[128];
    json_t *m = json_object_get(b, "model");
    if (json_is_string(m) && json_string_length(m)) {
        snprintf(model, sizeof model, "%s", json_string_value(m));
    } else {
        model_cache_default(s->models, model, sizeof model);
        if (!model[0]) {
            fail(e, "model",
                 "no model is installed; download one with `mus2pic models fetch lcm` or start "
                 "the server with --model NAME=DIR");
            goto bad;
        }
    }
    char path[1024];
    if (!model_cache_known(s->models, model)) {
        fail(e, "model", "unknown model '%s'; GET /api/models lists the known ones", model);
        goto bad;
    }
    if (!model_cache_installed(s->models, model, path, sizeof path)) {
        const char *why = ux_model_problem(s, model);
        if (why)
            fail(e, "model", "%s (the server was started with it; fix the folder and restart)",
                 why);
        else
            fail(e, "model",
                 "model '%s' is not installed; download it with `mus2pic models fetch %s`", model,
                 model);
        goto bad;
    }
    const m2p_registry_entry *reg = m2p_registry_find(model);
    json_object_set_new(out, "model", json_string(model));

    /* numbers */
    long long steps, variations, width, height, seed;
    static const char *const n_steps[] = {"steps", "num_steps", "num_inference_steps", NULL};
    static const char *const n_var[] = {"variations", "num_variations", NULL};
    static const char *const n_w[] = {"width", NULL};
    static const char *const n_h[] = {"height", NULL};
    static const char *const n_seed[] = {"seed", NULL};
    char vrange[64];
    snprintf(vrange, sizeof vrange, "from 1 to %d", s->cfg.max_variations);
    int def_steps = reg && reg->default_steps > 0 ? reg->default_steps : 8;
    if (get_int(b, n_steps, 1, 50, def_steps, &steps, "from 1 to 50", e) ||
        get_int(b, n_var, 1, s->cfg.max_variations, 1, &variations, vrange, e) ||
        get_int(b, n_w, MIN_SIDE, MAX_SIDE, reg ? reg->default_width : 512, &width,
                "a multiple of 8 from 64 to 1024", e) ||
        get_int(b, n_h, MIN_SIDE, MAX_SIDE, reg ? reg->default_height : 512, &height,
                "a multiple of 8 from 64 to 1024", e))
        goto bad;
    if (width % 8) {
        fail(e, "width", "width is %lld; it must be a multiple of 8 from 64 to 1024", width);
        goto bad;
    }
    if (height % 8) {
        fail(e, "height", "height is %lld; it must be a multiple of 8 from 64 to 1024", height);
        goto bad;
    }
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint64_t)time(NULL) * 2654435761u;
    if (get_int(b, n_seed, 0, MAX_SEED, (long long)(rnd & 0xffffffffu), &seed,
                "from 0 to 9007199254740991", e))
        goto bad;
    /* unless given: the model's own (the original's registry: 7.5 with CFG, 1.0 LCM, 0.0
     * Turbo/Lightning), as `generate --model NAME` and the page do; 8.5 for a bare folder */
    double guidance = reg ? reg->default_guidance : 8.5;
    const char *gf;
    static const char *const n_g[] = {"guidance", "guidance_scale", NULL};
    json_t *g = get_any(b, n_g, &gf);
    if (g) {
        if (!json_is_number(g)) {
            fail(e, gf, "%s must be a number from 0 to 20", gf);
            goto bad;
        }
        guidance = json_number_value(g);
        if (!(guidance >= 0 && guidance <= 20)) {
            fail(e, gf, "%s is %g; it must be from 0 to 20", gf, guidance);
            goto bad;
        }
    }
    /* a value lost to a failed allocation would queue the job without it */
    if (json_object_set_new(out, "steps", json_integer(steps)) ||
        json_object_set_new(out, "variations", json_integer(variations)) ||
        json_object_set_new(out, "width", json_integer(width)) ||
        json_object_set_new(out, "height", json_integer(height)) ||
        json_object_set_new(out, "seed", json_integer(seed)) ||
        json_object_set_new(out, "guidance", json_real(guidance)))
        goto oom;

    /* what the gallery shows beside the image */
    json_t *f = json_object_get(b, "features");
    if (f && !json_is_null(f)) {
        if (!json_is_object(f)) {
            fail(e, "features", "features must be an object of numbers");
            goto bad;
        }
        if (json_object_set(out, "features", f))
            goto oom;
    }
    json_t *src = json_object_get(b, "source");
    if (src && !json_is_null(src)) {
        if (!json_is_object(src)) {
            fail(e, "source", "source must be an object (url, band, song, genre)");
            goto bad;
        }
        if (json_object_set(out, "source", src))
            goto oom;
    }
    return out;
oom:
    fail(e, "body", "out of memory");
    e->status = 500;
bad:
    json_decref(out);
    return NULL;
}

int validate_duration(json_t *v, double *out, api_error *e)
{
    *out = 60;
    if (!v)
        return 0;
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "full") || !strcmp(s, "0")) {
            *out = 0;
            return 0;
        }
        if (!strcmp(s, "30") || !strcmp(s, "60")) {
            *out = atoi(s);
            return 0;
        }
    } else if (json_is_number(v)) {
        double d = json_number_value(v);
        if (d <= 0) {
            *out = 0; /* the original: null or <= 0 means the whole song */
            return 0;
        }
        if (d == 30 || d == 60) {
            *out = d;
            return 0;
        }
    }
    return fail(e, "duration", "duration must be 30, 60 or \"full\"");
}

int validate_prompt_version(json_t *v, int *out, api_error *e)
{
    *out = M2P_PROMPT_V4;
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    if ((s && (!strcmp(s, "v1") || !strcmp(s, "1"))) || n == 1)
        *out = M2P_PROMPT_V1;
    else if ((s && (!strcmp(s, "v3") || !strcmp(s, "3"))) || n == 3)
        *out = M2P_PROMPT_V3;
    else if ((s && (!strcmp(s, "v4") || !strcmp(s, "4"))) || n == 4)
        *out = M2P_PROMPT_V4;
    else
        return fail(e, "prompt_version",
                    "prompt_version must be \"v1\", \"v3\" or \"v4\" (the LLM prompt is "
                    "POST /api/generate-prompt-llm)");
    return 0;
}

static int hexdigit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Is the URL's host this machine or a private network, as written (an IPv4 address in any form
 * inet_aton reads: 127.1, 0x7f000001, 2130706433; an IPv6 literal; localhost)? Names are not
 * resolved here: the fetcher connects to what DNS says at that time. */
static int private_host(const char *url, char *host, size_t cap)
{
    const char *rest = strstr(url, "://");
    rest = rest ? rest + 3 : url;
    size_t n = strcspn(rest, "/?#");
    const char *h = rest, *end = rest + n;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (!rb)
            return 0;
        h++;
        end = rb;
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon)
            end = colon;
    }
    /* Percent-decoded (a fetcher may decode "%31%32%37.0.0.1"), without an IPv6 zone id
     * ("[::1%25lo]" is ::1 on interface lo): both slipped past this check (found by fuzz_url). */
    size_t hl = 0;
    for (const char *q = h; q < end && hl + 1 < cap; q++) {
        int hi, lo;
        if (*q == '%' && end - q >= 3 && (hi = hexdigit(q[1])) >= 0 && (lo = hexdigit(q[2])) >= 0) {
            host[hl++] = (char)(hi * 16 + lo);
            q += 2;
        } else {
            host[hl++] = *q;
        }
    }
    host[hl] = 0;
    hl = strlen(host); /* a %00 ends it */
    if (h != rest) { /* bracketed: drop the zone id */
        char *zone = strchr(host, '%');
        if (zone)
            *zone = 0;
        hl = strlen(host);
    }
    while (hl && host[hl - 1] == '.')
        host[--hl] = 0; /* "localhost." */
    if (!strcasecmp(host, "localhost") || (hl > 10 && !strcasecmp(host + hl - 10, ".localhost")))
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_aton(host, &a4)) {
        uint32_t a = ntohl(a4.s_addr);
        return (a >> 24) == 0 || (a >> 24) == 127 || (a >> 24) == 10 ||
               (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
               (a >> 16) == (169u << 8 | 254) || (a >> 22) == (100u << 2 | 1) || /* CGNAT */
               (a >> 28) >= 14;                                                  /* mcast, res. */
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        const uint8_t *b = a6.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, v4mapped, 12)) {
            snprintf(host, cap, "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
            char dummy[64];
            char url4[80];
            snprintf(url4, sizeof url4, "http://%s/", host);
            return private_host(url4, dummy, sizeof dummy);
        }
        return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
               IN6_IS_ADDR_LINKLOCAL(&a6) || IN6_IS_ADDR_SITELOCAL(&a6) ||
               IN6_IS_ADDR_MULTICAST(&a6) || (b[0] & 0xfe) == 0xfc; /* fc00::/7 */
    }
    return 0;
}

int validate_url(server *s, json_t *v, const char *field, api_error *e)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(e, field, "%s must be a non-empty string", field);
    if (json_string_length(v) > 2048)
        return fail(e, field, "%s is longer than 2048 bytes", field);
    /* A \u0000 would cut the URL short where C reads it (found by fuzz_url) */
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(e, field, "%s must not contain NUL characters", field);
    char why[256] = "";
    if (m2p_url_check(json_string_value(v), why, sizeof why) != 0)
        return fail(e, field, "%s is not accepted: %s", field, why[0] ? why : m2p_errmsg());
    char host[2100]; /* the whole host: a cut one could hide ".localhost" (found by fuzz_url) */
    if (!s->cfg.allow_private_urls && private_host(json_string_value(v), host, sizeof host))
        return fail(e, field,
                    "%s names %s, this machine or a private network; start the server with "
                    "--allow-private-urls to analyse from there",
                    field, host);
    return 0;
}

json_t *submit_generate(server *s, json_t *body, int64_t *id, api_error *err)
{
    json_t *p = validate_generate(s, body, 1, err);
    if (!p)
        return NULL;
    char *ps = json_dumps(p, JSON_COMPACT);
    int rc = ps ? jobs_submit(s->q, JOBS_GENERATE, ps, 0, 0, 0, id)
                : m2p_error(M2P_ENOMEM, "out of memory queuing the job");
    free(ps);
    if (rc) {
        json_decref(p);
        err->status = http_status_of(rc);
        err->field[0] = '\0';
        snprintf(err->message, sizeof err->message, "%s", m2p_errmsg());
        return NULL;
    }
    return p;
}
