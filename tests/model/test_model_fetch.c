/*
 * test_fetch.c — `models fetch` against an in-process fake hub (tests/common/httpd) serving the
 * sd-tiny fixture model: the file list API, only the needed files (fp16 weights preferred, other
 * files never requested), the HF cache layout (blobs, relative snapshot links, refs/main), a
 * resumed download after the server drops the connection mid-file, Bearer token, a sha256
 * mismatch (error, nothing installed), 404 and 401; then the fetched snapshot loads and resolves.
 * A second repo serves the sdxl-tiny fixture as the SDXL repos lay it out (text_encoder_2/,
 * tokenizer_2/, fp16 variants, a safety checker and .bin duplicates that must not be fetched),
 * also as the SDXL base for the registry's sdxl_lightning, fetched with ByteDance/SDXL-Lightning's
 * 4-step UNet file and madebyollin/taesdxl.
 */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"
#include "model/resolve.h"
#include "mus2pic.h"
#include "test.h"

#define REPO "test-org/tiny-lcm"
#define COMMIT "0123456789abcdef0123456789abcdef01234567"

/* repo path -> fixture file; weights are offered as fp16 variants (same bytes: F32 inside). */
static const struct {
    const char *path, *fixture;
    int lfs;
} files[] = {
    {"model_index.json", "model_index.json", 0},
    {"scheduler/scheduler_config.json", "scheduler/scheduler_config.json", 0},
    {"text_encoder/config.json", "text_encoder/config.json", 0},
    {"text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors", 1},
    {"text_encoder/model.safetensors", "text_encoder/model.safetensors", 1},
    {"tokenizer/merges.txt", "tokenizer/merges.txt", 0},
    {"tokenizer/special_tokens_map.json", "tokenizer/special_tokens_map.json", 0},
    {"tokenizer/tokenizer_config.json", "tokenizer/tokenizer_config.json", 0},
    {"tokenizer/vocab.json", "tokenizer/vocab.json", 0},
    {"unet/config.json", "unet/config.json", 0},
    {"unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
     1},
    {"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors", 1},
    {"vae/config.json", "vae/config.json", 0},
    {"vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", 1},
    {"README.md", "model_index.json", 0},
};
#define NFILES (int)(sizeof files / sizeof files[0])

static void sha256_hex(const char *data, size_t len, char hex[65]);

#define XL_REPO "test-org/tiny-sdxl"
#define LIGHT_BASE "stabilityai/stable-diffusion-xl-base-1.0" /* serves XL_REPO's files */
/* the SDXL layout; want = 1 where `models fetch` must download the file, 2 where it must link
 * it without a download (same bytes as tokenizer/'s file, hence the same blob, as on the hub) */
static const struct {
    const char *repo, *path, *fixture; /* fixture: under the fixtures folder */
    int want;
} xl_files[] = {
    {XL_REPO, "model_index.json", "sdxl-tiny/model/model_index.json", 1},
    {XL_REPO, "scheduler/scheduler_config.json", "sdxl-tiny/model/scheduler/scheduler_config.json", 1},
    {XL_REPO, "text_encoder/config.json", "sdxl-tiny/model/text_encoder/config.json", 1},
    {XL_REPO, "text_encoder/model.fp16.safetensors", "sdxl-tiny/model/text_encoder/model.safetensors", 1},
    {XL_REPO, "text_encoder/model.safetensors", "sdxl-tiny/model/text_encoder/model.safetensors", 0},
    {XL_REPO, "text_encoder/pytorch_model.bin", "sdxl-tiny/model/text_encoder/model.safetensors", 0},
    {XL_REPO, "text_encoder_2/config.json", "sdxl-tiny/model/text_encoder_2/config.json", 1},
    {XL_REPO, "text_encoder_2/model.fp16.safetensors", "sdxl-tiny/model/text_encoder_2/model.safetensors", 1},
    {XL_REPO, "text_encoder_2/model.safetensors", "sdxl-tiny/model/text_encoder_2/model.safetensors", 0},
    {XL_REPO, "tokenizer/merges.txt", "sdxl-tiny/model/tokenizer/merges.txt", 1},
    {XL_REPO, "tokenizer/special_tokens_map.json", "sdxl-tiny/model/tokenizer/special_tokens_map.json", 1},
    {XL_REPO, "tokenizer/tokenizer_config.json", "sdxl-tiny/model/tokenizer/tokenizer_config.json", 1},
    {XL_REPO, "tokenizer/vocab.json", "sdxl-tiny/model/tokenizer/vocab.json", 1},
    {XL_REPO, "tokenizer_2/merges.txt", "sdxl-tiny/model/tokenizer_2/merges.txt", 2},
    {XL_REPO, "tokenizer_2/special_tokens_map.json", "sdxl-tiny/model/tokenizer_2/special_tokens_map.json", 1},
    {XL_REPO, "tokenizer_2/tokenizer_config.json", "sdxl-tiny/model/tokenizer_2/tokenizer_config.json", 1},
    {XL_REPO, "tokenizer_2/vocab.json", "sdxl-tiny/model/tokenizer_2/vocab.json", 2},
    {XL_REPO, "unet/config.json", "sdxl-tiny/model/unet/config.json", 1},
    {XL_REPO, "unet/diffusion_pytorch_model.fp16.safetensors", "sdxl-tiny/model/unet/diffusion_pytorch_model.safetensors", 1},
    {XL_REPO, "unet/diffusion_pytorch_model.safetensors", "sdxl-tiny/model/unet/diffusion_pytorch_model.safetensors", 0},
    {XL_REPO, "vae/config.json", "sdxl-tiny/model/vae/config.json", 1},
    {XL_REPO, "vae/diffusion_pytorch_model.fp16.safetensors", "sdxl-tiny/model/vae/diffusion_pytorch_model.safetensors", 1},
    {XL_REPO, "vae/diffusion_pytorch_model.safetensors", "sdxl-tiny/model/vae/diffusion_pytorch_model.safetensors", 0},
    {XL_REPO, "safety_checker/config.json", "sdxl-tiny/model/vae/config.json", 0},
    {XL_REPO, "vae_1_0/diffusion_pytorch_model.safetensors", "sdxl-tiny/model/vae/diffusion_pytorch_model.safetensors", 0},
    /* the companions of the registry's sdxl_lightning: the SDXL base (above, as LIGHT_BASE),
     * Lightning's 4-step UNet (not the others) and TAESD for SDXL */
    {"ByteDance/SDXL-Lightning", "sdxl_lightning_4step_unet.safetensors",
     "sdxl-tiny/model/unet/diffusion_pytorch_model.safetensors", 1},
    {"ByteDance/SDXL-Lightning", "sdxl_lightning_8step_unet.safetensors",
     "sdxl-tiny/model/unet/diffusion_pytorch_model.safetensors", 0},
    {"madebyollin/taesdxl", "config.json", "taesd/model/config.json", 1},
    {"madebyollin/taesdxl", "diffusion_pytorch_model.safetensors",
     "taesd/model/diffusion_pytorch_model.safetensors", 1},
};
#define XL_NFILES (int)(sizeof xl_files / sizeof xl_files[0])
static int xl_requests[XL_NFILES]; /* under hub_state.mu */

static const char *xl_fixture_of(int i)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", test_fixture(""), xl_files[i].fixture);
    return buf;
}

/* The SDXL repo's file list (all files as LFS entries with their real sha256). */
static int xl_is(int i, const char *repo)
{
    return !strcmp(xl_files[i].repo, repo) ||
           (!strcmp(repo, LIGHT_BASE) && !strcmp(xl_files[i].repo, XL_REPO));
}

static int xl_api(struct mg_connection *c, const char *repo)
{
    size_t cap = 64 * 1024, len = 0;
    char *body = malloc(cap);
    if (!body)
        return test_httpd_reply(c, 500, "text/plain", "oom", 3);
    len += (size_t)snprintf(body + len, cap - len, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[",
                            repo, COMMIT);
    int first = 1;
    for (int i = 0; i < XL_NFILES; i++) {
        if (!xl_is(i, repo))
            continue;
        size_t n;
        char *data = test_read_file(xl_fixture_of(i), &n);
        char hex[65];
        sha256_hex(data, n, hex);
        free(data);
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%040d\","
                                "\"lfs\":{\"sha256\":\"%s\",\"size\":%zu}}",
                                first ? "" : ",", xl_files[i].path, n, i + 100, hex, n);
        first = 0;
    }
    len += (size_t)snprintf(body + len, cap - len, "]}");
    int st = test_httpd_reply(c, 200, "application/json", body, len);
    free(body);
    return st;
}

static int xl_file(struct mg_connection *c, pthread_mutex_t *mu, const char *repo,
                   const char *path)
{
    for (int i = 0; i < XL_NFILES; i++)
        if (xl_is(i, repo) && !strcmp(xl_files[i].path, path)) {
            pthread_mutex_lock(mu);
            xl_requests[i]++;
            pthread_mutex_unlock(mu);
            size_t n;
            char *data = test_read_file(xl_fixture_of(i), &n);
            int st = test_httpd_reply(c, 200, "application/octet-stream", data, n);
            free(data);
            return st;
        }
    return test_httpd_reply(c, 404, "text/plain", "no", 2);
}

typedef struct {
    pthread_mutex_t mu;
    int requests[NFILES];
    int drop_once;       /* drop the unet weights mid-file on the first request */
    int dropped, ranged; /* what happened */
    int bad_sha;         /* list a wrong sha256 for the vae weights */
    char token_seen[128];
} hub_state;

static void sha256_hex(const char *data, size_t len, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static const char *fixture_of(int i)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", test_fixture("sd-tiny/model"), files[i].fixture);
    return buf;
}

static int api_handler(struct mg_connection *c, void *ud)
{
    hub_state *s = ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *auth = mg_get_header(c, "Authorization");
    pthread_mutex_lock(&s->mu);
    snprintf(s->token_seen, sizeof s->token_seen, "%s", auth ? auth : "");
    pthread_mutex_unlock(&s->mu);
    if (!strcmp(ri->local_uri, "/api/models/test-org/private/revision/main"))
        return test_httpd_reply(c, 401, "application/json", "{\"error\":\"unauthorized\"}", 24);
    for (int i = 0; i < XL_NFILES; i++) {
        char u[256];
        snprintf(u, sizeof u, "/api/models/%s/revision/main", xl_files[i].repo);
        if (!strcmp(ri->local_uri, u))
            return xl_api(c, xl_files[i].repo);
    }
    if (!strcmp(ri->local_uri, "/api/models/" LIGHT_BASE "/revision/main"))
        return xl_api(c, LIGHT_BASE);
    if (strcmp(ri->local_uri, "/api/models/" REPO "/revision/main") != 0)
        return test_httpd_reply(c, 404, "application/json", "{\"error\":\"not found\"}", 21);
    if (!ri->query_string || !strstr(ri->query_string, "blobs=true"))
        return test_httpd_reply(c, 400, "text/plain", "blobs", 5);
    size_t cap = 64 * 1024, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body + len, cap - len, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[",
                            REPO, COMMIT);
    for (int i = 0; i < NFILES; i++) {
        size_t n;
        char *data = test_read_file(fixture_of(i), &n);
        char hex[65];
        sha256_hex(data, n, hex);
        free(data);
        if (s->bad_sha && strstr(files[i].path, "vae/diffusion"))
            hex[0] = hex[0] == '0' ? '1' : '0';
        if (files[i].lfs)
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%040d\","
                                    "\"lfs\":{\"sha256\":\"%s\",\"size\":%zu,\"pointerSize\":"
                                    "134}}",
                                    i ? "," : "", files[i].path, n, i, hex, n);
        else /* small files: git blob id only (fake but well-formed) */
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%.40s\"}",
                                    i ? "," : "", files[i].path, n, hex);
    }
    len += (size_t)snprintf(body + len, cap - len, "]}");
    int st = test_httpd_reply(c, 200, "application/json", body, len);
    free(body);
    return st;
}

static int file_handler(struct mg_connection *c, void *ud)
{
    hub_state *s = ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *prefix = "/" REPO "/resolve/" COMMIT "/";
    const char *xl_repos[] = {XL_REPO, LIGHT_BASE, "ByteDance/SDXL-Lightning",
                              "madebyollin/taesdxl"};
    for (int k = 0; k < 4; k++) {
        char xp[256];
        snprintf(xp, sizeof xp, "/%s/resolve/" COMMIT "/", xl_repos[k]);
        if (!strncmp(ri->local_uri, xp, strlen(xp)))
            return xl_file(c, &s->mu, xl_repos[k], ri->local_uri + strlen(xp));
    }
    if (strncmp(ri->local_uri, prefix, strlen(prefix)) != 0)
        return test_httpd_reply(c, 404, "text/plain", "no", 2);
    const char *path = ri->local_uri + strlen(prefix);
    int idx = -1;
    for (int i = 0; i < NFILES; i++)
        if (!strcmp(files[i].path, path))
            idx = i;
    if (idx < 0)
        return test_httpd_reply(c, 404, "text/plain", "no", 2);
    size_t n;
    char *data = test_read_file(fixture_of(idx), &n);
    const char *range = mg_get_header(c, "Range");
    long from = 0;
    int drop = 0;
    pthread_mutex_lock(&s->mu);
    s->requests[idx]++;
    if (range && sscanf(range, "bytes=%ld-", &from) == 1 && strstr(path, "unet/diffusion"))
        s->ranged++;
    if (s->drop_once && !s->dropped && strstr(path, "unet/diffusion")) {
        s->dropped = 1;
        drop = 1;
    }
    pthread_mutex_unlock(&s->mu);
    if (from < 0 || (size_t)from > n)
        from = 0;
    if (drop) {
        /* promise the whole file, send 40% of it, hang up */
        mg_printf(c,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  n);
        mg_write(c, data, n * 2 / 5);
        free(data);
        return 200;
    }
    int st;
    if (from > 0) {
        mg_printf(c,
                  "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Range: bytes %ld-%zu/%zu\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  from, n - 1, n, n - (size_t)from);
        mg_write(c, data + from, n - (size_t)from);
        st = 206;
    } else {
        st = test_httpd_reply(c, 200, "application/octet-stream", data, n);
    }
    free(data);
    return st;
}

static int is_link(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

int main(void)
{
    hub_state s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    test_httpd *h = test_httpd_start();
    CHECK(h != NULL);
    if (!h)
        TEST_DONE();
    test_httpd_route(h, "/api/models", api_handler, &s);
    test_httpd_route(h, "/" REPO "/resolve", file_handler, &s);
    test_httpd_route(h, "/" XL_REPO "/resolve", file_handler, &s);
    test_httpd_route(h, "/" LIGHT_BASE "/resolve", file_handler, &s);
    test_httpd_route(h, "/ByteDance/SDXL-Lightning/resolve", file_handler, &s);
    test_httpd_route(h, "/madebyollin/taesdxl/resolve", file_handler, &s);
    setenv("HF_ENDPOINT", test_httpd_url(h), 1);
    setenv("HF_TOKEN", "hf_testtoken", 1);
    char *root = test_tmpdir("fetch");
    char home[512];
    snprintf(home, sizeof home, "%s/hf", root);
    setenv("HF_HOME", home, 1);
    unsetenv("HF_HUB_CACHE");
    char out[4096], p[4600];

    /* unknown repo and gated repo */
    CHECK_INT(m2p_model_fetch("test-org/nothing", NULL, NULL, out, sizeof out), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "404") != NULL);
    CHECK_INT(m2p_model_fetch("test-org/private", NULL, NULL, out, sizeof out), M2P_ENETWORK);
    CHECK(strstr(m2p_errmsg(), "HF_TOKEN") != NULL);
    CHECK_INT(m2p_model_fetch("not a repo", NULL, NULL, out, sizeof out), M2P_EINVAL);

    /* a sha256 mismatch: error, nothing installed (no usable snapshot) */
    s.bad_sha = 1;
    CHECK_INT(m2p_model_fetch(REPO, NULL, NULL, out, sizeof out), M2P_EFORMAT);
    CHECK(strstr(m2p_errmsg(), "sha256") != NULL);
    CHECK(strstr(m2p_errmsg(), "vae/diffusion_pytorch_model.safetensors") != NULL);
    CHECK_INT(m2p_model_resolve(REPO, out, sizeof out), M2P_ENOTFOUND);
    snprintf(p, sizeof p, "%s/hub/models--test-org--tiny-lcm/snapshots/%s/model_index.json", home,
             COMMIT);
    CHECK(access(p, F_OK) != 0);
    s.bad_sha = 0;
    test_rmtree(home); /* start clean, so every needed file is requested below */

    /* a good fetch, with the connection dropped once mid-file: resumed with Range */
    s.drop_once = 1;
    memset(s.requests, 0, sizeof s.requests);
    CHECK_INT(m2p_model_fetch(REPO, NULL, NULL, out, sizeof out), 0);
    snprintf(p, sizeof p, "%s/hub/models--test-org--tiny-lcm/snapshots/%s", home, COMMIT);
    CHECK_STR(out, p);
    CHECK_INT(s.dropped, 1);
    CHECK(s.ranged >= 1);
    CHECK_STR(s.token_seen, "Bearer hf_testtoken");
    /* only what the engine needs; fp16 preferred */
    for (int i = 0; i < NFILES; i++) {
        int want = strcmp(files[i].path, "README.md") &&
                   strcmp(files[i].path, "text_encoder/model.safetensors") &&
                   strcmp(files[i].path, "unet/diffusion_pytorch_model.safetensors");
        if (!want)
            CHECK_INT(s.requests[i], 0);
        else
            CHECK(s.requests[i] >= 1);
    }
    /* layout: relative links into blobs, refs/main, no leftovers */
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.fp16.safetensors", out);
    CHECK(is_link(p));
    char target[1024] = "";
    ssize_t tl = readlink(p, target, sizeof target - 1);
    if (tl > 0)
        target[tl] = '\0';
    CHECK(!strncmp(target, "../../../blobs/", 15));
    snprintf(p, sizeof p, "%s/model_index.json", out);
    CHECK(is_link(p));
    snprintf(p, sizeof p, "%s/hub/models--test-org--tiny-lcm/refs/main", home);
    size_t rl;
    char *ref = test_read_file(p, &rl);
    CHECK(ref && rl == 40 && !memcmp(ref, COMMIT, 40));
    free(ref);
    snprintf(p, sizeof p, "%s/README.md", out);
    CHECK(access(p, F_OK) != 0);
    /* the blob holds exactly the served bytes */
    size_t n1, n2;
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.fp16.safetensors", out);
    char *got = test_read_file(p, &n1);
    char *want = test_read_file(test_fixture("sd-tiny/model/unet/diffusion_pytorch_model.safetensors"), &n2);
    CHECK(got && want && n1 == n2 && !memcmp(got, want, n1));
    free(got);
    free(want);

    /* it resolves by hub id and loads */
    char res[4096];
    CHECK_INT(m2p_model_resolve(REPO, res, sizeof res), 0);
    CHECK_STR(res, out);
    m2p_model *m = NULL;
    CHECK_INT(m2p_model_load(REPO, NULL, &m), 0);
    if (!m)
        fprintf(stderr, "%s\n", m2p_errmsg());
    m2p_model_free(m);

    /* a second fetch downloads nothing again */
    memset(s.requests, 0, sizeof s.requests);
    CHECK_INT(m2p_model_fetch(REPO, NULL, NULL, out, sizeof out), 0);
    int total = 0;
    for (int i = 0; i < NFILES; i++)
        total += s.requests[i];
    CHECK_INT(total, 0);

    /* a partial .incomplete left by an interrupted run is resumed, not restarted */
    test_rmtree(home);
    snprintf(p, sizeof p, "%s/hub/models--test-org--tiny-lcm/blobs", home);
    char cmd[5000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    CHECK_INT(system(cmd), 0);
    size_t un;
    char *ud = test_read_file(test_fixture("sd-tiny/model/unet/diffusion_pytorch_model.safetensors"), &un);
    char hex[65];
    sha256_hex(ud, un, hex);
    snprintf(p, sizeof p, "%s/hub/models--test-org--tiny-lcm/blobs/%s.incomplete", home, hex);
    FILE *f = fopen(p, "wb");
    fwrite(ud, 1, un / 2, f);
    fclose(f);
    free(ud);
    s.ranged = 0;
    s.drop_once = 0;
    CHECK_INT(m2p_model_fetch(REPO, NULL, NULL, out, sizeof out), 0);
    CHECK_INT(s.ranged, 1);
    CHECK(access(p, F_OK) != 0); /* renamed into place */

    /* SDXL: both encoders and tokenizers, fp16 variants only, nothing else; then it loads */
    int rc = m2p_model_fetch(XL_REPO, NULL, NULL, out, sizeof out);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    for (int i = 0; i < XL_NFILES; i++) {
        if (strcmp(xl_files[i].repo, XL_REPO) != 0)
            continue;
        int want = xl_files[i].want == 1;
        if (want != xl_requests[i])
            fprintf(stderr, "FAIL: %s requested %d times\n", xl_files[i].path, xl_requests[i]);
        CHECK_INT(xl_requests[i], want);
        snprintf(p, sizeof p, "%s/%s", out, xl_files[i].path);
        CHECK_INT(access(p, R_OK) == 0, xl_files[i].want != 0);
    }
    snprintf(p, sizeof p, "%s/text_encoder_2/model.fp16.safetensors", out);
    CHECK(is_link(p));
    m2p_model *xm = NULL;
    CHECK_INT(m2p_model_load(XL_REPO, NULL, &xm), 0);
    if (!xm)
        fprintf(stderr, "%s\n", m2p_errmsg());
    m2p_model_free(xm);

    /* sdxl_lightning: the SDXL base, Lightning's 4-step UNet file and TAESD for SDXL, each in
     * its own repo folder of the cache; the other Lightning UNets are not fetched */
    memset(xl_requests, 0, sizeof xl_requests);
    rc = m2p_model_fetch("sdxl_lightning", NULL, NULL, out, sizeof out);
    if (rc)
        fprintf(stderr, "%s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    CHECK(strstr(out, "models--stabilityai--stable-diffusion-xl-base-1.0/snapshots/") != NULL);
    for (int i = 0; i < XL_NFILES; i++)
        if (strcmp(xl_files[i].repo, XL_REPO) != 0)
            CHECK_INT(xl_requests[i], xl_files[i].want);
    snprintf(p, sizeof p, "%s/hub/models--ByteDance--SDXL-Lightning/snapshots/" COMMIT
             "/sdxl_lightning_4step_unet.safetensors", home);
    CHECK(is_link(p) && access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/hub/models--madebyollin--taesdxl/snapshots/" COMMIT
             "/diffusion_pytorch_model.safetensors", home);
    CHECK(is_link(p) && access(p, R_OK) == 0);
    char lres[4096];
    CHECK_INT(m2p_model_resolve("sdxl_lightning", lres, sizeof lres), 0);
    CHECK_STR(lres, out);
    /* and it loads with that UNet file; without it, the error says how to get it */
    m2p_model *lm = NULL;
    CHECK_INT(m2p_model_load("sdxl_lightning", NULL, &lm), 0);
    if (!lm)
        fprintf(stderr, "%s\n", m2p_errmsg());
    m2p_model_free(lm);
    snprintf(p, sizeof p, "%s/hub/models--ByteDance--SDXL-Lightning", home);
    test_rmtree(p);
    CHECK_INT(m2p_model_load("sdxl_lightning", NULL, &lm), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "models fetch sdxl_lightning") != NULL);

    test_httpd_stop(h);
    test_rmtree(root);
    free(root);
    TEST_DONE();
}
