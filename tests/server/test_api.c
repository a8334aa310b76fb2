/*
 * test_api.c — the JSON API of `mus2pic serve`, against a real server process on a free port
 * with the tiny fixture model: every route's shape, the 400s that name their field, the limits,
 * generation (seeds, PNGs, determinism, gallery pages, deletion, cancellation, the measured time
 * in /api/models), analysis of an uploaded file and of a URL through a fake yt-dlp, the
 * original's routes (the LLM prompt and key check against a fake endpoint), batches, the queue
 * limit and the access token. test_openapi.c checks the document against the router.
 */
#include "harness.h"
#include "httpd.h"

static char tmp_root[512];

/* POST body to path and check a 400 naming field. */
static void expect_400(int port, const char *path, const char *body, const char *field)
{
    int st;
    json_t *j = api(port, "POST", path, body, &st);
    if (st != 400 || strcmp(jstr(j, "field"), field) != 0) {
        fprintf(stderr, "  %s %s -> %d field '%s' (%s); expected 400 field '%s'\n", path, body, st,
                jstr(j, "field"), jstr(j, "error"), field);
        test_failures++;
    }
    CHECK(strlen(jstr(j, "error")) > 10);
    CHECK_STR(jstr(j, "error"), jstr(j, "detail"));
    json_decref(j);
}

static void check_shapes(int port)
{
    int st;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(h, "status"), "ok");
    CHECK_STR(jstr(h, "default_model"), "lcm");
    CHECK(json_is_array(json_object_get(h, "models_loaded")));
    CHECK(json_is_object(json_object_get(h, "jobs")));
    json_decref(h);

    json_t *m = api(port, "GET", "/api/models", NULL, &st);
    CHECK_INT(st, 200);
    CHECK(json_is_true(json_object_get(m, "success")));
    json_t *lcm = json_object_get(json_object_get(m, "models"), "lcm");
    CHECK(json_is_object(lcm));
    static const char *keys[] = {"name",   "description", "expected_time",
                                 "memory", "quality",     "speed"};
    for (int i = 0; i < 6; i++)
        CHECK(json_is_string(json_object_get(lcm, keys[i])));
    CHECK_INT(jint(lcm, "default_steps"), 8);
    CHECK(json_is_true(json_object_get(lcm, "installed")));
    CHECK(json_is_object(json_object_get(json_object_get(m, "models"), "sd14")));
    /* the original's per-model defaults for the page (ORIGINAL.md, model-registry.json) */
    CHECK_INT(jint(lcm, "default_width"), 512);
    CHECK(!json_is_true(json_object_get(lcm, "uses_negative_prompt")));
    json_t *sd21 = json_object_get(json_object_get(m, "models"), "sd21");
    CHECK_INT(jint(sd21, "default_width"), 768);
    CHECK_INT(jint(sd21, "default_height"), 768);
    CHECK(json_number_value(json_object_get(sd21, "default_guidance")) == 7.5);
    CHECK(json_is_true(json_object_get(sd21, "uses_negative_prompt")));
    json_t *light = json_object_get(json_object_get(m, "models"), "sdxl_lightning");
    CHECK_INT(jint(light, "default_width"), 1024);
    CHECK_INT(jint(light, "default_steps"), 4);
    CHECK(json_is_number(json_object_get(light, "default_guidance")));
    CHECK(json_number_value(json_object_get(light, "default_guidance")) == 0.0);
    CHECK(!json_is_true(json_object_get(light, "uses_negative_prompt")));
    json_decref(m);

    json_t *nf = api(port, "GET", "/api/nothing", NULL, &st);
    CHECK_INT(st, 404);
    json_decref(nf);

    /* the page is served */
    resp r;
    CHECK_INT(http_req(port, "GET", "/index.html", NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "mus2pic") != NULL);
    resp_free(&r);
}

static void check_bad_input(int port)
{
    const char *g = "/api/generate";
    expect_400(port, g, "{\"prompt\":\"x\",\"steps\":0}", "steps");
    expect_400(port, g, "{\"prompt\":\"x\",\"steps\":51}", "steps");
    expect_400(port, g, "{\"prompt\":\"x\",\"num_steps\":\"many\"}", "num_steps");
    expect_400(port, g, "{\"prompt\":\"x\",\"variations\":5}", "variations");
    expect_400(port, g, "{\"prompt\":\"x\",\"num_variations\":0}", "num_variations");
    expect_400(port, g, "{\"prompt\":\"x\",\"width\":100}", "width");
    expect_400(port, g, "{\"prompt\":\"x\",\"height\":2048}", "height");
    expect_400(port, g, "{\"prompt\":\"x\",\"guidance\":25}", "guidance");
    expect_400(port, g, "{\"prompt\":\"x\",\"seed\":-1}", "seed");
    expect_400(port, g, "{\"prompt\":\"\"}", "prompt");
    expect_400(port, g, "{\"steps\":4}", "prompt");
    expect_400(port, g, "{\"prompt\":\"x\",\"model\":\"nosuch\"}", "model");
    expect_400(port, g, "{\"prompt\":\"x\",\"model\":\"sd14\"}", "model"); /* not installed */
    expect_400(port, g, "{\"prompt\": \"x\", ", "body");
    expect_400(port, g, "[1,2]", "body");
    expect_400(port, g, "{\"prompt\":\"x\",\"prompt\":\"y\"}", "body");
    expect_400(port, "/api/analyze", "{\"url\":\"file:///etc/passwd\"}", "url");
    expect_400(port, "/api/analyze", "{\"url\":\"-o/tmp/x\"}", "url");
    expect_400(port, "/api/analyze", "{\"url\":\"https://example.com/a\",\"duration\":45}",
               "duration");
    expect_400(port, "/api/analyze", "{\"duration\":30}", "url");
    expect_400(port, "/api/generate-image", "{\"prompt\":\"x\",\"num_steps\":99}", "num_steps");
    expect_400(port, "/api/batches", "{\"urls\":[]}", "urls");
    expect_400(port, "/api/batches", "{\"urls\":[\"https://a.example/x\",\"ftp://b\"]}", "urls[1]");
    expect_400(port, "/api/generate-prompt",
               "{\"url\":\"https://a.example/x\",\"prompt_version\":\"v9\"}", "prompt_version");

    /* a body over the 1 MiB limit */
    size_t big = (1u << 20) + 100;
    char *b = malloc(big + 1);
    memset(b, ' ', big);
    b[0] = '{';
    b[big - 1] = '}';
    b[big] = 0;
    int st;
    json_t *j = api(port, "POST", g, b, &st);
    CHECK_INT(st, 413);
    json_decref(j);
    free(b);

    /* wrong ids */
    j = api(port, "GET", "/api/jobs/abc", NULL, &st);
    CHECK_INT(st, 404);
    json_decref(j);
    j = api(port, "GET", "/api/jobs/999999", NULL, &st);
    CHECK_INT(st, 404);
    json_decref(j);
    j = api(port, "GET", "/api/gallery?per_page=1000", NULL, &st);
    CHECK_INT(st, 400);
    CHECK_STR(jstr(j, "field"), "per_page");
    json_decref(j);

    /* the server is still serving */
    j = api(port, "GET", "/api/health", NULL, &st);
    CHECK_INT(st, 200);
    json_decref(j);
}

static int get_png(int port, const char *url, char **body, size_t *len)
{
    resp r;
    if (http_req(port, "GET", url, NULL, NULL, 0, NULL, &r) || r.status != 200) {
        resp_free(&r);
        return -1;
    }
    CHECK_STR(r.ctype, "image/png");
    CHECK(r.len > 8 && !memcmp(r.body, "\x89PNG\r\n\x1a\n", 8));
    *body = r.body;
    *len = r.len;
    return 0;
}

static void check_generate(int port)
{
    const char *body = "{\"prompt\":\"a red poster\",\"negative_prompt\":\"blurry\",\"steps\":3,"
                       "\"variations\":2,\"width\":64,\"height\":64,\"seed\":42,"
                       "\"source\":{\"band\":\"B\"}}";
    long long id = submit(port, body);
    json_t *j = wait_job(port, id, 60);
    CHECK(j != NULL);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_STR(jstr(j, "kind"), "generate");
    json_t *res = json_object_get(j, "result");
    json_t *imgs = json_object_get(res, "images");
    CHECK_INT(json_array_size(imgs), 2);
    CHECK_INT(jint(res, "seed"), 42);
    CHECK_INT(jint(json_array_get(imgs, 0), "seed"), 42);
    CHECK_INT(jint(json_array_get(imgs, 1), "seed"), 43);
    CHECK_INT(jint(json_array_get(imgs, 0), "width"), 64);
    CHECK_INT(json_array_size(json_object_get(res, "generation_times")), 2);
    CHECK_INT(jint(json_object_get(j, "params"), "steps"), 3);
    char *png1 = NULL, *png1b = NULL;
    size_t len1 = 0, len1b = 0;
    const char *url = jstr(json_array_get(imgs, 0), "url");
    CHECK_INT(get_png(port, url, &png1, &len1), 0);
    long long img_id = jint(json_array_get(imgs, 1), "id");

    /* the same seed and parameters give the same image */
    long long id2 = submit(port, body);
    json_t *j2 = wait_job(port, id2, 60);
    CHECK_STR(jstr(j2, "state"), "done");
    const char *url2 =
        jstr(json_array_get(json_object_get(json_object_get(j2, "result"), "images"), 0), "url");
    CHECK(strcmp(url, url2) != 0);
    CHECK_INT(get_png(port, url2, &png1b, &len1b), 0);
    CHECK(len1 == len1b && png1 && png1b && !memcmp(png1, png1b, len1));
    free(png1);
    free(png1b);

    /* gallery: newest first, with the prompt, parameters, seed and source */
    int st;
    json_t *g = api(port, "GET", "/api/gallery?page=1&per_page=3", NULL, &st);
    CHECK_INT(st, 200);
    CHECK(jint(g, "total") >= 4);
    json_t *items = json_object_get(g, "items");
    CHECK_INT(json_array_size(items), 3);
    json_t *first = json_array_get(items, 0);
    CHECK_INT(jint(first, "job_id"), id2);
    CHECK_STR(jstr(json_object_get(first, "meta"), "prompt"), "a red poster");
    CHECK_STR(jstr(json_object_get(first, "meta"), "negative_prompt"), "blurry");
    CHECK_INT(jint(json_object_get(first, "meta"), "steps"), 3);
    CHECK_STR(jstr(json_object_get(json_object_get(first, "meta"), "source"), "band"), "B");
    CHECK(jint(first, "seed") == 42 || jint(first, "seed") == 43);
    long long total = jint(g, "total");
    long long first_id = jint(first, "id"), third_id = jint(json_array_get(items, 2), "id");
    json_decref(g);
    /* the next page goes on where the first stopped; a page past the end is empty */
    g = api(port, "GET", "/api/gallery?page=2&per_page=3", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_INT(jint(g, "page"), 2);
    items = json_object_get(g, "items");
    CHECK_INT(json_array_size(items), total - 3 < 3 ? total - 3 : 3);
    CHECK(jint(json_array_get(items, 0), "id") < third_id);
    json_decref(g);
    g = api(port, "GET", "/api/gallery?page=1000&per_page=3", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_INT(json_array_size(json_object_get(g, "items")), 0);
    CHECK_INT(jint(g, "total"), total);
    json_decref(g);
    CHECK(first_id > third_id);

    /* the models list shows the time measured on this server, not the original's claim */
    json_t *m = api(port, "GET", "/api/models", NULL, &st);
    json_t *lcm = json_object_get(json_object_get(m, "models"), "lcm");
    json_t *meas = json_object_get(lcm, "measured");
    CHECK_INT(jint(meas, "images"), 2);
    CHECK_INT(jint(meas, "steps"), 3);
    CHECK_INT(jint(meas, "width"), 64);
    CHECK(json_number_value(json_object_get(meas, "seconds")) > 0);
    CHECK(strstr(jstr(lcm, "expected_time"), "2 images at 64x64, 3 steps") != NULL);
    CHECK(strstr(jstr(lcm, "expected_time"), "6-12") == NULL);
    CHECK(json_is_null(
        json_object_get(json_object_get(json_object_get(m, "models"), "sd14"), "measured")));
    json_decref(m);

    /* delete one image, then a whole job */
    char path[64];
    snprintf(path, sizeof path, "/api/images/%lld", img_id);
    json_t *d = api(port, "DELETE", path, NULL, &st);
    CHECK_INT(st, 200);
    json_decref(d);
    resp r;
    snprintf(path, sizeof path, "/api/images/%lld.png", img_id);
    http_req(port, "GET", path, NULL, NULL, 0, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    snprintf(path, sizeof path, "/api/jobs/%lld", id2);
    d = api(port, "DELETE", path, NULL, &st);
    CHECK_INT(st, 200);
    json_decref(d);
    d = api(port, "GET", path, NULL, &st);
    CHECK_INT(st, 404);
    json_decref(d);
    http_req(port, "GET", url2, NULL, NULL, 0, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    json_decref(j);
    json_decref(j2);
}

static void check_cancel(int port)
{
    /* a slow job runs; a second one waits behind it: cancel both */
    long long slow = submit(port, "{\"prompt\":\"slow\",\"steps\":50,\"variations\":4,"
                                  "\"width\":256,\"height\":256,\"seed\":1}");
    long long queued = submit(port, "{\"prompt\":\"q\",\"steps\":2,\"width\":64,\"height\":64}");
    char path[64];
    int st;
    double end = now_s() + 30;
    for (;;) { /* wait until the slow one runs */
        snprintf(path, sizeof path, "/api/jobs/%lld", slow);
        json_t *j = api(port, "GET", path, NULL, &st);
        int running = !strcmp(jstr(j, "state"), "running");
        json_decref(j);
        if (running || now_s() > end)
            break;
        sleep_ms(50);
    }
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", queued);
    json_t *c = api(port, "POST", path, NULL, &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(c, "state"), "canceled");
    json_decref(c);
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", slow);
    c = api(port, "POST", path, NULL, &st);
    CHECK_INT(st, 202);
    CHECK_STR(jstr(c, "state"), "canceling");
    json_decref(c);
    json_t *j = wait_job(port, slow, 60);
    CHECK_STR(jstr(j, "state"), "canceled");
    CHECK(strstr(jstr(j, "error"), "cancel") != NULL);
    json_decref(j);
    j = wait_job(port, queued, 5);
    CHECK_STR(jstr(j, "state"), "canceled");
    json_decref(j);
    /* a finished job cannot be canceled */
    c = api(port, "POST", path, NULL, &st);
    CHECK_INT(st, 409);
    json_decref(c);
}

static const char *boundary = "----m2ptestboundary";

static char *multipart(const char *file, const char *duration, size_t *len)
{
    FILE *f = fopen(file, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char head[512], mid[512], tail[128];
    snprintf(head, sizeof head,
             "--%s\r\nContent-Disposition: form-data; name=\"duration\"\r\n\r\n%s\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"choice.ogg\"\r\n"
             "Content-Type: audio/ogg\r\n\r\n",
             boundary, duration, boundary);
    snprintf(mid, sizeof mid, "\r\n");
    snprintf(tail, sizeof tail, "--%s--\r\n", boundary);
    *len = strlen(head) + (size_t)n + strlen(mid) + strlen(tail);
    char *b = malloc(*len);
    size_t o = 0;
    memcpy(b, head, strlen(head));
    o += strlen(head);
    o += fread(b + o, 1, (size_t)n, f);
    memcpy(b + o, mid, strlen(mid));
    o += strlen(mid);
    memcpy(b + o, tail, strlen(tail));
    fclose(f);
    return b;
}

static void check_analysis(int port)
{
    /* an uploaded file */
    size_t len;
    char *body = multipart(test_fixture("audio/librosa/choice.ogg"), "30", &len);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
    resp r;
    CHECK_INT(http_req(port, "POST", "/api/analyze", ctype, body, len, NULL, &r), 0);
    CHECK_INT(r.status, 202);
    json_t *a = json_loads(r.body ? r.body : "", 0, NULL);
    resp_free(&r);
    long long id = jint(a, "job_id");
    CHECK_INT(jint(a, "bytes"), 137526);
    json_decref(a);
    json_t *j = wait_job(port, id, 90);
    CHECK_STR(jstr(j, "state"), "done");
    json_t *res = json_object_get(j, "result");
    json_t *f = json_object_get(res, "features");
    double tempo = json_number_value(json_object_get(f, "tempo"));
    CHECK(tempo > 60 && tempo < 200);
    CHECK(json_array_size(json_object_get(f, "envelope")) > 10);
    CHECK(json_array_size(json_object_get(f, "beats")) > 10);
    CHECK_STR(jstr(res, "song"), "choice");
    CHECK(strlen(jstr(res, "prompt")) > 20);
    CHECK_INT(jint(res, "prompt_version"), 4);
    CHECK(json_is_object(json_object_get(json_object_get(res, "prompts"), "v3")));
    json_t *src = json_object_get(res, "source");
    char first_key[160];
    snprintf(first_key, sizeof first_key, "%s", jstr(src, "id"));
    CHECK(strncmp(first_key, "sha256:", 7) == 0);
    json_decref(j);

    /* the same bytes again are the same source: it is known by its content hash */
    CHECK_INT(http_req(port, "POST", "/api/analyze", ctype, body, len, NULL, &r), 0);
    CHECK_INT(r.status, 202);
    a = json_loads(r.body ? r.body : "", 0, NULL);
    resp_free(&r);
    j = wait_job(port, jint(a, "job_id"), 90);
    json_decref(a);
    CHECK_STR(jstr(j, "state"), "done");
    src = json_object_get(json_object_get(j, "result"), "source");
    CHECK_STR(jstr(src, "id"), first_key);
    json_decref(j);

    /* an upload without a file, and one over a small limit are covered by the limits test */
    char *nofile =
        "--x\r\nContent-Disposition: form-data; name=\"duration\"\r\n\r\n30\r\n--x--\r\n";
    CHECK_INT(http_req(port, "POST", "/api/analyze", "multipart/form-data; boundary=x", nofile,
                       strlen(nofile), NULL, &r),
              0);
    CHECK_INT(r.status, 400);
    CHECK(r.body && strstr(r.body, "\"field\":\"file\""));
    resp_free(&r);
    /* a bad duration in a form */
    free(body);
    body = multipart(test_fixture("audio/librosa/choice.ogg"), "45", &len);
    CHECK_INT(http_req(port, "POST", "/api/analyze", ctype, body, len, NULL, &r), 0);
    CHECK_INT(r.status, 400);
    CHECK(r.body && strstr(r.body, "\"field\":\"duration\""));
    resp_free(&r);
    free(body);

    /* a URL through the fake yt-dlp, with the band and song from its title */
    int st;
    json_t *q = api(port, "POST", "/api/analyze",
                    "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\",\"duration\":30,"
                    "\"prompt_version\":\"v3\"}",
                    &st);
    CHECK_INT(st, 202);
    j = wait_job(port, jint(q, "job_id"), 90);
    json_decref(q);
    CHECK_STR(jstr(j, "state"), "done");
    res = json_object_get(j, "result");
    CHECK_STR(jstr(res, "band"), "Admiral Bob");
    CHECK_STR(jstr(res, "song"), "Choice");
    CHECK_INT(jint(res, "prompt_version"), 3);
    CHECK_STR(jstr(res, "prompt"),
              jstr(json_object_get(json_object_get(res, "prompts"), "v3"), "prompt"));
    json_decref(j);

    /* the original's routes */
    json_t *m =
        api(port, "POST", "/api/extract-metadata",
            "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\",\"duration\":30}", &st);
    CHECK_INT(st, 200);
    CHECK(json_is_true(json_object_get(m, "success")));
    CHECK_STR(jstr(m, "band"), "Admiral Bob");
    CHECK_STR(jstr(m, "song"), "Choice");
    CHECK(json_is_true(json_object_get(m, "is_cached"))); /* the audio came from the cache */
    json_t *feats = json_deep_copy(json_object_get(m, "features"));
    CHECK(json_is_object(feats));
    json_decref(m);

    /* band and song corrected by the user rebuild the prompt with those names (V1 says them) */
    m = api(port, "POST", "/api/generate-prompt",
            "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\",\"duration\":30,"
            "\"prompt_version\":\"v1\",\"band_name\":\"The Testers\",\"song_title\":\"Unit\"}",
            &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(m, "band"), "The Testers");
    CHECK(strstr(jstr(m, "prompt"), "The Testers") != NULL);
    CHECK(strlen(jstr(m, "negative_prompt")) > 5);
    json_decref(m);

    /* posted features: no download */
    json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "prompt_version", "v4", "band_name", "X",
                            "song_title", "Y", "features", feats);
    char *rs = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    m = api(port, "POST", "/api/generate-prompt", rs, &st);
    free(rs);
    CHECK_INT(st, 200);
    CHECK(strlen(jstr(m, "prompt")) > 20);
    CHECK(strlen(jstr(m, "genre_source")) > 0);
    CHECK(json_object_get(m, "job_id") == NULL); /* built at once: no analysis job, no download */
    json_decref(m);

    m = api(port, "POST", "/api/extract-metadata-quick",
            "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\"}", &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(m, "band"), "Admiral Bob");
    CHECK_STR(jstr(m, "song"), "Choice");
    json_decref(m);

    m = api(port, "POST", "/api/generate-image",
            "{\"prompt\":\"original\",\"num_steps\":2,\"num_variations\":2,\"width\":64,"
            "\"height\":64,\"model\":\"lcm\"}",
            &st);
    CHECK_INT(st, 200);
    CHECK(json_is_true(json_object_get(m, "success")));
    CHECK_INT(jint(m, "count"), 2);
    json_t *im = json_array_get(json_object_get(m, "images"), 1);
    CHECK(strncmp(jstr(im, "url"), "/api/images/", 12) == 0);
    CHECK(strlen(jstr(im, "filename")) > 4);
    CHECK_INT(json_array_size(json_object_get(m, "generation_times")), 2);
    CHECK(json_number_value(json_object_get(m, "total_time")) > 0);
    json_decref(m);
}

/* The fake OpenAI-compatible endpoint: checks the key, answers one prompt. */
static int fake_llm(struct mg_connection *c, void *ud)
{
    char body[8192];
    test_httpd_body(c, body, sizeof body);
    const char *auth = mg_get_header(c, "Authorization");
    if (!auth || strcmp(auth, "Bearer good-key") != 0) {
        const char *e = "{\"error\":{\"message\":\"Incorrect API key provided\"}}";
        return test_httpd_reply(c, 401, "application/json", e, strlen(e));
    }
    int ok = strstr(body, "Choice") && strstr(body, "Admiral Bob");
    const char *a = ok ? "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
                         "\"a neon skyline poster\"}}],\"usage\":{\"total_tokens\":42}}"
                       : "{\"choices\":[{\"message\":{\"content\":\"the song was not in the "
                         "request\"}}],\"usage\":{\"total_tokens\":1}}";
    return test_httpd_reply(c, 200, "application/json", a, strlen(a));
}

/* The fake endpoint's model list: answers the good key only. */
static int fake_models(struct mg_connection *c, void *ud)
{
    const char *auth = mg_get_header(c, "Authorization");
    if (!auth || strcmp(auth, "Bearer good-key") != 0) {
        const char *e = "{\"error\":{\"message\":\"Incorrect API key provided\"}}";
        return test_httpd_reply(c, 401, "application/json", e, strlen(e));
    }
    const char *a = "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o-mini\"}]}";
    return test_httpd_reply(c, 200, "application/json", a, strlen(a));
}

static void check_llm(int port)
{
    int st;
    json_t *m = api(port, "POST", "/api/generate-prompt-llm",
                    "{\"song_title\":\"Choice\",\"artist\":\"Admiral Bob\",\"api_key\":"
                    "\"good-key\",\"temperature\":0.5}",
                    &st);
    CHECK_INT(st, 200);
    CHECK(strncmp(jstr(m, "prompt"), "a neon skyline poster", 21) == 0);
    CHECK_INT(jint(m, "tokens_used"), 42);
    CHECK(json_number_value(json_object_get(m, "estimated_cost")) > 0);
    json_decref(m);
    m = api(port, "POST", "/api/generate-prompt-llm",
            "{\"song_title\":\"Choice\",\"artist\":\"Admiral Bob\",\"api_key\":\"bad\"}", &st);
    CHECK_INT(st, 400);
    CHECK_STR(jstr(m, "field"), "api_key");
    json_decref(m);
    expect_400(port, "/api/generate-prompt-llm",
               "{\"song_title\":\"Choice\",\"artist\":\"A\",\"temperature\":2}", "temperature");
    expect_400(port, "/api/generate-prompt-llm", "{\"song_title\":\"Choice\"}", "artist");

    /* the original's key check */
    m = api(port, "POST", "/api/validate-api-key", "{\"api_key\":\"good-key\"}", &st);
    CHECK_INT(st, 200);
    CHECK(json_is_true(json_object_get(m, "valid")));
    json_decref(m);
    m = api(port, "POST", "/api/validate-api-key", "{\"api_key\":\"bad\"}", &st);
    CHECK_INT(st, 200);
    CHECK(json_is_false(json_object_get(m, "valid")));
    CHECK(strstr(jstr(m, "message"), "rejected") != NULL);
    json_decref(m);
    expect_400(port, "/api/validate-api-key", "{}", "api_key");
    expect_400(port, "/api/validate-api-key", "{\"api_key\":5}", "api_key");
}

static void check_batch(int port)
{
    int st;
    json_t *b = api(port, "POST", "/api/batches",
                    "{\"urls\":[\"https://www.youtube.com/watch?v=fakeid12345\","
                    "\"https://example.com/song?v=2\"],\"duration\":30,\"steps\":2,"
                    "\"width\":64,\"height\":64,\"variations\":1}",
                    &st);
    CHECK_INT(st, 202);
    long long bid = jint(b, "batch_id");
    CHECK_INT(json_array_size(json_object_get(b, "analysis_jobs")), 2);
    json_decref(b);
    char path[64];
    snprintf(path, sizeof path, "/api/batches/%lld", bid);
    json_t *s = NULL;
    double end = now_s() + 120;
    while (now_s() < end) {
        json_decref(s);
        s = api(port, "GET", path, NULL, &st);
        if (!strcmp(jstr(s, "state"), "finished"))
            break;
        sleep_ms(200);
    }
    CHECK_STR(jstr(s, "state"), "finished");
    CHECK_INT(jint(s, "total"), 2);
    CHECK_INT(jint(s, "done"), 2);
    json_t *items = json_object_get(s, "items");
    CHECK_INT(json_array_size(items), 2);
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        CHECK_STR(jstr(json_object_get(it, "analysis"), "state"), "done");
        json_t *gen = json_object_get(it, "generation");
        CHECK_STR(jstr(gen, "state"), "done");
        CHECK_INT(json_array_size(json_object_get(gen, "images")), 1);
    }
    CHECK_STR(jstr(json_object_get(json_array_get(items, 0), "analysis"), "band"), "Admiral Bob");
    json_decref(s);
    s = api(port, "GET", "/api/batches", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_INT(jint(json_array_get(json_object_get(s, "batches"), 0), "id"), bid);
    json_decref(s);
}

/* A second server with tight limits: queue length, upload size, token. */
static void check_limits(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/limits", tmp_root);
    srv s;
    const char *extra[] = {"--max-queue", "1", "--max-upload-mb", "1", "--token", "sekrit", NULL};
    if (srv_start(&s, data, extra)) {
        CHECK(!"the limits server did not start");
        return;
    }
    int st;
    json_t *j = api(s.port, "GET", "/api/health", NULL, &st);
    CHECK_INT(st, 401);
    json_decref(j);
    resp r;
    CHECK_INT(http_req(s.port, "GET", "/api/health", NULL, NULL, 0,
                       "Authorization: Bearer sekrit\r\n", &r),
              0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(http_req(s.port, "GET", "/api/health", NULL, NULL, 0,
                       "Authorization: Bearer wrong\r\n", &r),
              0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    j = api(s.port, "GET", "/api/health?token=sekrit", NULL, &st);
    CHECK_INT(st, 200);
    json_decref(j);
    /* the page itself needs no token */
    CHECK_INT(http_req(s.port, "GET", "/", NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);

    /* queue length: slow jobs, one runs, one waits, the rest are refused with 503 */
    const char *slow = "{\"prompt\":\"s\",\"steps\":30,\"variations\":4,\"width\":256,"
                       "\"height\":256}";
    int n503 = 0, n202 = 0;
    long long ids[6] = {0};
    for (int i = 0; i < 6; i++) {
        j = api(s.port, "POST", "/api/generate?token=sekrit", slow, &st);
        if (st == 503) {
            n503++;
            CHECK(strstr(jstr(j, "error"), "queue") != NULL);
        } else if (st == 202) {
            ids[n202++] = jint(j, "job_id");
        }
        json_decref(j);
    }
    CHECK(n503 >= 3);
    CHECK(n202 >= 1 && n202 <= 3);
    for (int i = 0; i < n202; i++) {
        char path[96];
        snprintf(path, sizeof path, "/api/jobs/%lld/cancel?token=sekrit", ids[i]);
        json_decref(api(s.port, "POST", path, NULL, &st));
    }

    /* an upload over 1 MiB is refused before it is read */
    size_t big = (2u << 20);
    char *body = calloc(1, big);
    char ctype[64];
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=x");
    CHECK_INT(http_req(s.port, "POST", "/api/analyze?token=sekrit", ctype, body, big, NULL, &r), 0);
    CHECK_INT(r.status, 413);
    resp_free(&r);
    free(body);

    CHECK_INT(srv_stop(&s, SIGTERM), 0);

    /* a non-loopback bind without a token is refused */
    snprintf(data, sizeof data, "%s/open", tmp_root);
    const char *open_extra[] = {"--host", "0.0.0.0", NULL};
    unsetenv("MUS2PIC_TOKEN");
    CHECK(srv_start(&s, data, open_extra) != 0);
    FILE *f = fopen(s.log, "r");
    char line[512] = "";
    int said = 0;
    while (f && fgets(line, sizeof line, f))
        said |= strstr(line, "token") != NULL;
    if (f)
        fclose(f);
    CHECK(said);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("server-api");
    snprintf(tmp_root, sizeof tmp_root, "%s", t);
    write_fake_ytdlp(tmp_root);
    test_httpd *llm = test_httpd_start();
    test_httpd_route(llm, "/v1/chat/completions", fake_llm, NULL);
    test_httpd_route(llm, "/v1/models", fake_models, NULL);
    char llm_url[256];
    snprintf(llm_url, sizeof llm_url, "%s/v1", test_httpd_url(llm));
    setenv("MUS2PIC_LLM_URL", llm_url, 1);
    unsetenv("OPENAI_API_KEY");
    char data[600];
    snprintf(data, sizeof data, "%s/data", tmp_root);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    check_shapes(s.port);
    check_bad_input(s.port);
    check_generate(s.port);
    check_cancel(s.port);
    check_analysis(s.port);
    check_batch(s.port);
    check_llm(s.port);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    test_httpd_stop(llm);
    check_limits();
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
