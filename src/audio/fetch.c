/*
 * fetch.c — source -> a local audio file and what we know about it.
 *
 * Three kinds of source:
 *   - a local file: used in place (never copied into the cache: it is already on disk); its id
 *     is "sha256:<hex>" of its content, so the same song under another name shares cached
 *     band/song and genre answers;
 *   - a direct http(s) audio URL (path ends in a known audio extension): libcurl with a size
 *     limit and timeout, cached by content hash (entry "sha256-<hex>") with an alias from the
 *     URL's hash ("url-<hex>") so the same URL is not downloaded twice;
 *   - anything else http(s): yt-dlp (ytdlp.c), cached by video id ("youtube-<id>" when the id
 *     is in the URL, which is checked before yt-dlp runs at all; else "url-<hash of URL>").
 * Downloads go to a private temporary folder and enter the cache by an atomic rename (cache.c).
 * With a shared level (params.shared_get/put: many machines on PostgreSQL) an entry missing
 * here is asked for there before anything is downloaded, and a download is offered to it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/cache.h"
#include "audio/ytdlp.h"
#include "core/error.h"
#include "core/http.h"

#define URL_MAX 2048

m2p_fetch_params m2p_fetch_default_params(void)
{
    m2p_fetch_params p;
    memset(&p, 0, sizeof p);
    p.cache_dir = NULL; /* resolved at fetch time: $XDG_CACHE_HOME/mus2pic/audio, ... */
    p.cache_limit = (int64_t)2 << 30;
    p.ytdlp = NULL; /* resolved at fetch time: $MUS2PIC_YTDLP or "yt-dlp" on PATH */
    p.timeout_s = 300;
    p.max_bytes = (int64_t)200 << 20;
    return p;
}

static int why_fail(char *why, size_t len, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    if (why && len)
        snprintf(why, len, "%s", msg);
    return m2p_error(M2P_EINVAL, "%s", msg);
}

int m2p_url_check(const char *url, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!url || !*url)
        return why_fail(why, why_len, "the URL is empty%s", "");
    if (url[0] == '-')
        return why_fail(why, why_len, "the URL starts with '-' and would be read as an option%s",
                        "");
    size_t n = strlen(url);
    if (n > URL_MAX) {
        char lim[32];
        snprintf(lim, sizeof lim, "%d", URL_MAX);
        return why_fail(why, why_len, "the URL is longer than %s characters", lim);
    }
    /* The scheme first: "not a url" is not an http URL with spaces in it. */
    const char *rest;
    if (!strncasecmp(url, "https://", 8))
        rest = url + 8;
    else if (!strncasecmp(url, "http://", 7))
        rest = url + 7;
    else {
        const char *colon = strchr(url, ':');
        char scheme[32] = "";
        if (colon && colon - url < (int)sizeof scheme && !memchr(url, ' ', (size_t)(colon - url)))
            snprintf(scheme, sizeof scheme, "%.*s", (int)(colon - url), url);
        if (scheme[0])
            return why_fail(why, why_len, "only http and https URLs are accepted, not '%s:'",
                            scheme);
        return why_fail(why, why_len,
                        "this is not a URL: it must start with http:// or https://%s", "");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c < 0x20 || c == 0x7f)
            return why_fail(why, why_len, "the URL contains a control character%s", "");
        if (c == ' ')
            return why_fail(why, why_len, "the URL contains a space (write it as %%20)%s", "");
    }
    size_t host = strcspn(rest, "/?#");
    if (host == 0)
        return why_fail(why, why_len, "the URL has no host%s", "");
    if (memchr(rest, '@', host))
        return why_fail(why, why_len, "URLs with a user name or password are not accepted%s", "");
    if (rest[0] == '-' || rest[0] == '.')
        return why_fail(why, why_len, "the URL's host is not valid%s", "");
    return 0;
}

/* The YouTube video id in url (watch?v=, youtu.be/, shorts/, embed/, live/, v/), or 0. */
static int youtube_id(const char *url, char *id, size_t len)
{
    const char *s = strstr(url, "://");
    if (!s || len < 12)
        return 0;
    s += 3;
    size_t hn = strcspn(s, "/?#:");
    char host[256];
    if (hn >= sizeof host)
        return 0;
    for (size_t i = 0; i < hn; i++)
        host[i] = (char)tolower((unsigned char)s[i]);
    host[hn] = '\0';
    const char *h = host;
    if (!strncmp(h, "www.", 4))
        h += 4;
    else if (!strncmp(h, "m.", 2))
        h += 2;
    else if (!strncmp(h, "music.", 6))
        h += 6;
    const char *path = s + hn;
    if (*path == ':') /* port */
        path += strcspn(path, "/?#");
    const char *cand = NULL;
    if (!strcmp(h, "youtu.be")) {
        if (*path == '/')
            cand = path + 1;
    } else if (!strcmp(h, "youtube.com") || !strcmp(h, "youtube-nocookie.com")) {
        static const char *prefixes[] = {"/shorts/", "/embed/", "/live/", "/v/"};
        for (size_t i = 0; i < 4 && !cand; i++)
            if (!strncmp(path, prefixes[i], strlen(prefixes[i])))
                cand = path + strlen(prefixes[i]);
        if (!cand && (!strncmp(path, "/watch?", 7) || !strncmp(path, "/watch/?", 8))) {
            const char *q = strchr(path, '?') + 1;
            while (*q && *q != '#') {
                if (!strncmp(q, "v=", 2)) {
                    cand = q + 2;
                    break;
                }
                q += strcspn(q, "&#");
                if (*q == '&')
                    q++;
            }
        }
    }
    if (!cand)
        return 0;
    size_t n = 0;
    while (cand[n] && (isalnum((unsigned char)cand[n]) || cand[n] == '_' || cand[n] == '-'))
        n++;
    if (n != 11 || (cand[n] && !strchr("?&#/", cand[n])))
        return 0;
    memcpy(id, cand, 11);
    id[11] = '\0';
    return 1;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_text(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    hex(md, n, out);
}

static int sha256_file(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return m2p_error(M2P_EIO, "cannot read %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 16);
    if (!ctx || !buf) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        free(buf);
        return m2p_error(M2P_ENOMEM, "out of memory hashing %s", path);
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t r;
    while ((r = fread(buf, 1, 1 << 16, f)) > 0)
        EVP_DigestUpdate(ctx, buf, r);
    int bad = ferror(f);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    free(buf);
    if (bad)
        return m2p_error(M2P_EIO, "error reading %s", path);
    hex(md, n, out);
    return 0;
}

/* The last path segment of a path or URL, without extension, query or fragment. */
static void title_from(const char *s, char *out, size_t len)
{
    size_t end = strcspn(s, "?#");
    const char *b = s;
    for (size_t i = 0; i < end; i++)
        if (s[i] == '/')
            b = s + i + 1;
    size_t n = (size_t)(s + end - b);
    const char *dot = memrchr(b, '.', n);
    if (dot && dot > b)
        n = (size_t)(dot - b);
    snprintf(out, len, "%.*s", (int)n, b);
}

/* ---- local files ------------------------------------------------------------------------- */

static int fetch_file(const char *source, m2p_source_info *info, char *path, size_t path_len)
{
    struct stat st;
    if (stat(source, &st) != 0) {
        if (errno == ENOENT)
            return m2p_error(M2P_ENOTFOUND, "%s: no such file (and not an http or https URL)",
                             source);
        return m2p_error(M2P_EIO, "%s: %s", source, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return m2p_error(M2P_EINVAL, "%s is a folder, not an audio file", source);
    if (!S_ISREG(st.st_mode))
        return m2p_error(M2P_EINVAL, "%s is not a regular file", source);
    if (st.st_size == 0)
        return m2p_error(M2P_EFORMAT, "%s is empty, not audio", source);
    char real[PATH_MAX];
    if (!realpath(source, real))
        return m2p_error(M2P_EIO, "%s: %s", source, strerror(errno));
    if (strlen(real) >= path_len)
        return m2p_error(M2P_EINVAL, "path too long: %s", real);
    char digest[65];
    int rc = sha256_file(real, digest);
    if (rc)
        return rc;
    snprintf(info->id, sizeof info->id, "sha256:%s", digest);
    title_from(real, info->title, sizeof info->title);
    snprintf(path, path_len, "%s", real);
    info->from_cache = 1; /* nothing was downloaded */
    return 0;
}

/* ---- direct http(s) URLs ----------------------------------------------------------------- */

static int is_direct_audio(const char *url)
{
    static const char *exts[] = {"mp3", "ogg", "oga",  "opus", "wav",  "flac", "m4a", "aac",
                                 "wma", "aif", "aiff", "mka",  "weba", "mp2",  "ape", "wv"};
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    size_t end = strcspn(s, "?#");
    const char *slash = memchr(s, '/', end);
    if (!slash)
        return 0;
    const char *dot = memrchr(slash, '.', (size_t)(s + end - slash));
    if (!dot || memchr(dot, '/', (size_t)(s + end - dot)))
        return 0;
    size_t n = (size_t)(s + end - dot - 1);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (n == strlen(exts[i]) && !strncasecmp(dot + 1, exts[i], n))
            return 1;
    return 0;
}

typedef struct http_dl {
    FILE *f;
    EVP_MD_CTX *md;
    int64_t bytes, max;
    int over, write_err, canceled;
    const m2p_fetch_params *p;
} http_dl;

static size_t http_write(char *data, size_t size, size_t nmemb, void *ud)
{
    http_dl *d = ud;
    size_t n = size * nmemb;
    if (d->max > 0 && d->bytes + (int64_t)n > d->max) {
        d->over = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (fwrite(data, 1, n, d->f) != n) {
        d->write_err = 1;
        return 0;
    }
    EVP_DigestUpdate(d->md, data, n);
    d->bytes += (int64_t)n;
    return n;
}

static int http_progress(void *ud, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un)
{
    http_dl *d = ud;
    double pct = total > 0 ? 100.0 * (double)now / (double)total : -1;
    if (d->p->progress && d->p->progress(pct, d->p->user_data))
        d->canceled = 1;
    return d->canceled; /* nonzero aborts the transfer (CURLE_ABORTED_BY_CALLBACK) */
}

static int http_get(const char *url, const m2p_fetch_params *p, const char *file, char digest[65])
{
    http_dl d = {.max = p->max_bytes, .p = p};
    d.f = fopen(file, "wb");
    if (!d.f)
        return m2p_error(M2P_EIO, "cannot write %s: %s", file, strerror(errno));
    d.md = EVP_MD_CTX_new();
    long t = p->timeout_s > 0 ? p->timeout_s : 300;
    CURL *c = m2p_curl_new(t < 30 ? t : 30L);
    if (!d.md || !c) {
        fclose(d.f);
        EVP_MD_CTX_free(d.md);
        if (c)
            curl_easy_cleanup(c);
        return m2p_error(M2P_ENOMEM, "out of memory starting a download");
    }
    EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, t);
    if (p->max_bytes > 0)
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cr = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    int closed_ok = fclose(d.f) == 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(d.md, md, &n);
    EVP_MD_CTX_free(d.md);
    if (d.over || cr == CURLE_FILESIZE_EXCEEDED)
        return m2p_error(M2P_ETOOBIG, "%s: the download is over the limit of %lld bytes", url,
                         (long long)p->max_bytes);
    if (d.canceled)
        return m2p_error(M2P_ECANCELED, "%s: the download was canceled", url);
    if (d.write_err || !closed_ok)
        return m2p_error(M2P_EIO, "cannot write %s", file);
    if (cr == CURLE_OPERATION_TIMEDOUT)
        return m2p_error(M2P_ETIMEOUT, "%s: the download took longer than %ld s", url, t);
    if (cr == CURLE_HTTP_RETURNED_ERROR)
        return m2p_error(M2P_ENETWORK, "%s: the server answered HTTP %ld", url, code);
    if (cr != CURLE_OK)
        return m2p_error(M2P_ENETWORK, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cr));
    if (d.bytes == 0)
        return m2p_error(M2P_EFORMAT, "%s: the server sent an empty body, not audio", url);
    hex(md, n, digest);
    return 0;
}

static int fetch_direct(const char *url, const m2p_fetch_params *p, audio_cache *cache,
                        m2p_source_info *info, char *path, size_t path_len)
{
    char url_hash[65], alias[80], key[80];
    sha256_text(url, url_hash);
    snprintf(alias, sizeof alias, "url-%s", url_hash);
    if (audio_cache_get(cache, alias, info, path, path_len) == 0)
        return 0;
    int lock = audio_cache_lock(cache, alias);
    if (lock < 0)
        return lock;
    int rc = 0;
    if (audio_cache_get(cache, alias, info, path, path_len) == 0)
        goto out; /* another process fetched it while we waited */
    if (audio_cache_get_shared(cache, p, alias, info, path, path_len) == 0)
        goto out; /* another machine did */
    char tmp[1200], file[1400];
    rc = audio_cache_tmpdir(cache, tmp, sizeof tmp);
    if (rc)
        goto out;
    const char *dot = NULL;
    {
        size_t end = strcspn(url, "?#");
        dot = memrchr(url, '.', end);
        char ext[16];
        audio_cache_key(dot ? dot + 1 : "bin", ext, sizeof ext);
        ext[strcspn(ext, "_")] = '\0';
        snprintf(file, sizeof file, "%s/download.%s", tmp, ext[0] ? ext : "bin");
    }
    char digest[65];
    rc = http_get(url, p, file, digest);
    if (rc) {
        audio_rmtree(tmp); /* nothing partial stays behind */
        goto out;
    }
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "sha256:%s", digest);
    title_from(url, info->title, sizeof info->title);
    snprintf(key, sizeof key, "sha256-%s", digest);
    if (audio_cache_get(cache, key, info, path, path_len) == 0) {
        audio_rmtree(tmp); /* same content under another URL */
        info->from_cache = 0;
    } else {
        rc = audio_cache_commit(cache, tmp, file, key, info, path, path_len);
        if (rc)
            goto out;
    }
    audio_cache_alias(cache, alias, key);
    audio_cache_put_shared(p, alias, path, info);
out:
    audio_cache_unlock(lock);
    return rc;
}

/* ---- yt-dlp ------------------------------------------------------------------------------ */

static int fetch_ytdlp(const char *url, const m2p_fetch_params *p, audio_cache *cache,
                       m2p_source_info *info, char *path, size_t path_len)
{
    char vid[16] = "", key[80];
    if (youtube_id(url, vid, sizeof vid)) {
        snprintf(key, sizeof key, "youtube-%s", vid);
    } else {
        char h[65];
        sha256_text(url, h);
        snprintf(key, sizeof key, "url-%s", h);
    }
    /* a second analysis of the same video runs nothing at all */
    if (audio_cache_get(cache, key, info, path, path_len) == 0)
        return 0;
    const char *prog = ytdlp_program(p);
    int rc = p->shared_get ? 0 : ytdlp_find(prog); /* with a shared level: once it missed */
    if (rc)
        return rc;
    int lock = audio_cache_lock(cache, key);
    if (lock < 0)
        return lock;
    if (audio_cache_get(cache, key, info, path, path_len) == 0)
        goto out;
    if (audio_cache_get_shared(cache, p, key, info, path, path_len) == 0)
        goto out; /* another machine downloaded it */
    if (p->shared_get && (rc = ytdlp_find(prog)))
        goto out;
    char tmp[1200], audio[4096];
    rc = audio_cache_tmpdir(cache, tmp, sizeof tmp);
    if (rc)
        goto out;
    memset(info, 0, sizeof *info);
    rc = ytdlp_download(prog, url, tmp, p, audio, sizeof audio, info);
    if (rc) {
        audio_rmtree(tmp); /* partial files go; the cache is untouched */
        goto out;
    }
    if (!info->id[0])
        snprintf(info->id, sizeof info->id, "%s", vid[0] ? vid : key);
    if (!info->title[0])
        title_from(url, info->title, sizeof info->title);
    rc = audio_cache_commit(cache, tmp, audio, key, info, path, path_len);
    info->from_cache = 0;
    if (!rc)
        audio_cache_put_shared(p, key, path, info);
out:
    audio_cache_unlock(lock);
    return rc;
}

int m2p_fetch(const char *source, const m2p_fetch_params *params, m2p_source_info *info,
              char *path_out, size_t path_len)
{
    if (!source || !info || !path_out || path_len < 2)
        return m2p_error(M2P_EINVAL, "fetch: source, info and path are required");
    m2p_fetch_params p = params ? *params : m2p_fetch_default_params();
    memset(info, 0, sizeof *info);
    path_out[0] = '\0';
    if (!*source)
        return m2p_error(M2P_EINVAL, "the source is empty: give a URL or a file");
    if (source[0] == '-' && !strstr(source, "://"))
        return m2p_error(M2P_EINVAL,
                         "'%s' starts with '-' and would be read as an option; for a file of "
                         "that name write ./%s",
                         source, source);
    int is_url = strstr(source, "://") != NULL;
    if (!is_url)
        return fetch_file(source, info, path_out, path_len);
    char why[256];
    int rc = m2p_url_check(source, why, sizeof why);
    if (rc)
        return m2p_error(M2P_EINVAL, "rejected URL: %s", why);
    if (p.max_bytes < 0 || p.timeout_s < 0)
        return m2p_error(M2P_EINVAL, "fetch: max_bytes and timeout_s must not be negative");
    audio_cache cache;
    rc = audio_cache_open(&cache, p.cache_dir, p.cache_limit);
    if (rc)
        return rc;
    return is_direct_audio(source) ? fetch_direct(source, &p, &cache, info, path_out, path_len)
                                   : fetch_ytdlp(source, &p, &cache, info, path_out, path_len);
}
