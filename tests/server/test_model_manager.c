/*
 * test_model_manager.c — the page's model manager over the API: a server with no model
 * (HF_HOME empty) downloads "lcm" through POST /api/models/fetch from an in-process fake hub
 * (HF_ENDPOINT; it serves the sd-tiny fixture as SimianLuo/LCM_Dreamshaper_v7 and the taesd one
 * as madebyollin/taesd, which `fetch` brings along), GET
 * /api/models/fetch follows it to "done" with the files counted, and /api/models then lists lcm
 * as installed and the default. Bad names and a hub that answers 404 are errors that say so.
 * Each model says what it needs (download before, bytes on disk after: the files served, memory)
 * and the fetched TAESD is used for the live previews without being named: a step's preview is
 * the full image size (TAESD decodes x8), not the latent-size RGB projection.
 */
#define _GNU_SOURCE
#include <openssl/evp.h>

#include "harness.h"
#include "httpd.h"

#define REPO "SimianLuo/LCM_Dreamshaper_v7"
#define COMMIT "89abcdef0123456789abcdef0123456789abcdef"

#define TAESD "madebyollin/taesd"

static const struct {
    const char *path;
    int lfs;
    const char *repo, *fixture; /* NULL: REPO, sd-tiny/model */
} files[] = {
    {"model_index.json", 0, NULL, NULL},
    {"scheduler/scheduler_config.json", 0, NULL, NULL},
    {"text_encoder/config.json", 0, NULL, NULL},
    {"text_encoder/model.safetensors", 1, NULL, NULL},
    {"tokenizer/merges.txt", 0, NULL, NULL},
    {"tokenizer/special_tokens_map.json", 0, NULL, NULL},
    {"tokenizer/tokenizer_config.json", 0, NULL, NULL},
    {"tokenizer/vocab.json", 0, NULL, NULL},
    {"unet/config.json", 0, NULL, NULL},
    {"unet/diffusion_pytorch_model.safetensors", 1, NULL, NULL},
    {"vae/config.json", 0, NULL, NULL},
    {"vae/diffusion_pytorch_model.safetensors", 1, NULL, NULL},
    {"config.json", 0, TAESD, "taesd/model"},
    {"diffusion_pytorch_model.safetensors", 1, TAESD, "taesd/model"},
};
#define NFILES (int)(sizeof files / sizeof files[0])

static int hub_broken; /* answer 404 to everything */

static const char *repo_of(int i)
{
    return files[i].repo ? files[i].repo : REPO;
}

static char *fixture_file(int i, size_t *n)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s",
             test_fixture(files[i].fixture ? files[i].fixture : "sd-tiny/model"), files[i].path);
    return test_read_file(p, n);
}

/* GET /api/models/REPO/revision/main?blobs=true: the file list with sizes and sha256. */
static int list_handler(struct mg_connection *c, void *ud)
{
    (void)ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *repo = !strcmp(ri->local_uri, "/api/models/" REPO "/revision/main")    ? REPO
                       : !strcmp(ri->local_uri, "/api/models/" TAESD "/revision/main") ? TAESD
                                                                                       : NULL;
    if (hub_broken || !repo)
        return test_httpd_reply(c, 404, "application/json", "{\"error\":\"not found\"}", 21);
    size_t cap = 16384, len = 0;
    char *body = malloc(cap);
    len +=
        (size_t)snprintf(body, cap, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[", repo, COMMIT);
    int first = 1;
    for (int i = 0; i < NFILES; i++) {
        if (strcmp(repo_of(i), repo) != 0)
            continue;
        size_t n = 0;
        char *data = fixture_file(i, &n);
        unsigned char d[32];
        unsigned dl = 0;
        EVP_Digest(data, n, d, &dl, EVP_sha256(), NULL);
        char hex[65];
        for (int k = 0; k < 32; k++)
            snprintf(hex + 2 * k, 3, "%02x", d[k]);
        free(data);
        if (files[i].lfs)
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%040d\","
                                    "\"lfs\":{\"sha256\":\"%s\",\"size\":%zu}}",
                                    first ? "" : ",", files[i].path, n, i, hex, n);
        else
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%.40s\"}",
                                    first ? "" : ",", files[i].path, n, hex);
        first = 0;
    }
    len += (size_t)snprintf(body + len, cap - len, "]}");
    int st = test_httpd_reply(c, 200, "application/json", body, len);
    free(body);
    return st;
}

/* GET /REPO/resolve/COMMIT/PATH: the file. */
static int file_handler(struct mg_connection *c, void *ud)
{
    (void)ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    for (int i = 0; i < NFILES; i++) {
        char prefix[200];
        snprintf(prefix, sizeof prefix, "/%s/resolve/" COMMIT "/", repo_of(i));
        if (!strncmp(ri->local_uri, prefix, strlen(prefix)) &&
            !strcmp(ri->local_uri + strlen(prefix), files[i].path)) {
            size_t n = 0;
            char *data = fixture_file(i, &n);
            int st = test_httpd_reply(c, 200, "application/octet-stream", data, n);
            free(data);
            return st;
        }
    }
    return test_httpd_reply(c, 404, "text/plain", "no", 2);
}

/* `mus2pic serve` without --model (the harness's srv_start always gives one). */
static int start_bare(srv *s, const char *data)
{
    memset(s, 0, sizeof *s);
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    const char *argv[] = {bin, "serve", "--port", "0", "--data", data, "--offline", "-v", NULL};
    return srv_spawn(s, data, argv);
}

/* Width and height from a "data:image/png;base64,..." preview (IHDR, bytes 16..23). */
static int preview_size(const char *uri, int *w, int *h)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = uri && !strncmp(uri, "data:image/png;base64,", 22) ? uri + 22 : NULL;
    unsigned char b[24];
    if (!p || strlen(p) < 32)
        return -1;
    for (int i = 0; i < 8; i++) {
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
            const char *c = strchr(tab, p[4 * i + k]);
            if (!c || !*c)
                return -1;
            v = v << 6 | (unsigned)(c - tab);
        }
        b[3 * i] = (unsigned char)(v >> 16);
        b[3 * i + 1] = (unsigned char)(v >> 8);
        b[3 * i + 2] = (unsigned char)v;
    }
    *w = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
    *h = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
    return 0;
}

/* Poll the download until it is no longer running (bounded). */
static json_t *wait_fetch(int port)
{
    json_t *o = NULL;
    for (int i = 0; i < 1200; i++) {
        json_decref(o);
        o = api(port, "GET", "/api/models/fetch", NULL, NULL);
        const char *st = json_string_value(json_object_get(o, "state"));
        if (st && strcmp(st, "downloading"))
            return o;
        sleep_ms(50);
    }
    return o;
}

int main(void)
{
    harness_init();
    test_httpd *hub = test_httpd_start();
    CHECK(hub != NULL);
    if (!hub)
        TEST_DONE();
    test_httpd_route(hub, "/api/models", list_handler, NULL);
    test_httpd_route(hub, "/" REPO "/resolve", file_handler, NULL);
    test_httpd_route(hub, "/" TAESD "/resolve", file_handler, NULL);
    char *root = test_tmpdir("manager");
    char hf[600], data[600];
    snprintf(hf, sizeof hf, "%s/hf", root);
    snprintf(data, sizeof data, "%s/data", root);
    setenv("HF_HOME", hf, 1);
    setenv("HF_ENDPOINT", test_httpd_url(hub), 1);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_TOKEN");
    unsetenv("MUS2PIC_MODEL");
    char cwd[600];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_INT(chdir(root), 0); /* no ./models where the test runs */

    srv s;
    CHECK_INT(start_bare(&s, data), 0);
    int st = 0;
    json_t *m = api(s.port, "GET", "/api/models", NULL, &st);
    CHECK_INT(st, 200);
    json_t *lcm = json_object_get(json_object_get(m, "models"), "lcm");
    CHECK(json_is_false(json_object_get(lcm, "installed")));
    /* what it needs before it is here: a download of GBs and the memory of ~1 G parameters */
    CHECK(json_integer_value(json_object_get(lcm, "download_bytes")) > 1000000000LL);
    CHECK(json_is_null(json_object_get(lcm, "disk_bytes")));
    CHECK(json_integer_value(json_object_get(lcm, "ram_bytes")) > 4LL * 1032000000LL);
    CHECK_STR(json_string_value(json_object_get(lcm, "dtype")), "f32");
    CHECK(json_integer_value(json_object_get(
              json_object_get(json_object_get(m, "models"), "sdxl_lightning"), "download_bytes")) >
          json_integer_value(json_object_get(json_object_get(json_object_get(m, "models"), "turbo"),
                                             "download_bytes")));
    CHECK(json_object_get(m, "default_model") == NULL ||
          json_is_null(json_object_get(m, "default_model")));
    json_decref(m);
    m = api(s.port, "GET", "/api/models/fetch", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_STR(json_string_value(json_object_get(m, "state")), "idle");
    json_decref(m);

    /* bad names */
    m = api(s.port, "POST", "/api/models/fetch", "{\"name\":\"nope\"}", &st);
    CHECK_INT(st, 400);
    CHECK_STR(json_string_value(json_object_get(m, "field")), "name");
    json_decref(m);
    /* (every registry model runs since issue 8, so none is refused as unrunnable) */

    /* a hub that does not have it: failed, with the hub's answer */
    hub_broken = 1;
    m = api(s.port, "POST", "/api/models/fetch", "{\"name\":\"lcm\"}", &st);
    CHECK_INT(st, 202);
    json_decref(m);
    m = wait_fetch(s.port);
    CHECK_STR(json_string_value(json_object_get(m, "state")), "failed");
    CHECK(strstr(json_string_value(json_object_get(m, "error"))
                     ? json_string_value(json_object_get(m, "error"))
                     : "",
                 "404") != NULL);
    json_decref(m);

    /* the download */
    hub_broken = 0;
    m = api(s.port, "POST", "/api/models/fetch", "{\"name\":\"lcm\"}", &st);
    CHECK_INT(st, 202);
    CHECK_STR(json_string_value(json_object_get(m, "name")), "lcm");
    json_decref(m);
    m = wait_fetch(s.port);
    CHECK_STR(json_string_value(json_object_get(m, "state")), "done");
    CHECK_INT(json_integer_value(json_object_get(m, "files_done")), NFILES);
    CHECK(json_integer_value(json_object_get(m, "bytes_done")) > 100000);
    const char *path = json_string_value(json_object_get(m, "path"));
    CHECK(path && strstr(path, hf) == path);
    json_decref(m);
    m = api(s.port, "GET", "/api/models", NULL, &st);
    lcm = json_object_get(json_object_get(m, "models"), "lcm");
    CHECK(json_is_true(json_object_get(lcm, "installed")));
    CHECK_STR(json_string_value(json_object_get(m, "default_model")), "lcm");
    /* on disk: exactly the files the hub served, the model's and its TAESD's */
    long long served = 0;
    for (int i = 0; i < NFILES; i++) {
        size_t n = 0;
        free(fixture_file(i, &n));
        served += (long long)n;
    }
    CHECK_INT(json_integer_value(json_object_get(lcm, "disk_bytes")), served);
    CHECK_STR(json_string_value(json_object_get(lcm, "preview")), "taesd");
    json_decref(m);

    /* it generates, with TAESD previews nobody asked for by folder: a slow run holds the worker
     * while the client subscribes to the watched one, then is canceled */
    long long blocker = submit(s.port, "{\"prompt\":\"block\",\"width\":64,\"height\":64,"
                                       "\"steps\":50,\"variations\":4}");
    long long id = submit(s.port, "{\"prompt\":\"a cat\",\"width\":64,\"height\":64,"
                                  "\"steps\":2}");
    CHECK(blocker > 0 && id > 0);
    wsc *w = wsc_open(s.port, "/ws/progress");
    CHECK(w != NULL);
    if (w) {
        char msg[96], path2[64];
        snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
        CHECK(wsc_send(w, msg) > 0);
        size_t at = 0;
        json_decref(wsc_wait(w, &at, "state", id, 10));
        snprintf(path2, sizeof path2, "/api/jobs/%lld/cancel", blocker);
        json_decref(api(s.port, "POST", path2, NULL, &st));
        json_t *step = wsc_wait(w, &at, "step", id, 120);
        CHECK(step != NULL);
        int pw = 0, ph = 0;
        CHECK_INT(preview_size(jstr(step, "preview"), &pw, &ph), 0);
        CHECK_INT(pw, 64); /* latent RGB would be 8x8 */
        CHECK_INT(ph, 64);
        json_decref(step);
        json_t *done = wsc_wait(w, &at, "done", id, 120);
        CHECK(done != NULL);
        json_decref(done);
        wsc_close(w);
    }

    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    test_httpd_stop(hub);
    CHECK_INT(chdir(cwd), 0);
    test_rmtree(root);
    free(root);
    TEST_DONE();
}
