/*
 * test_security.c — the server findings of issue 7, each as an attack that crashed, stalled or
 * fooled the server before its fix: nested JSON (HTTP, WebSocket, a stored row), cross-site
 * requests (text/plain bodies, foreign Origin, DNS-rebound Host, WebSocket upgrades from other
 * sites), tokens with %00 or over 255 bytes, a WebSocket client that never reads, WebSocket
 * frames announcing 256 MB or sent unmasked, and half-sent requests held open (slowloris).
 * Talks raw sockets where CivetWeb's client would add its own headers.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/time.h>

#include "harness.h"
#include "mus2pic.h"
#include "store/jobs_store.h"

static char tmp_root[512];

/* A TCP connection to the server on loopback (rcvbuf > 0 shrinks the receive buffer first). */
static int tcp_open(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send a whole request (head: request line and headers without the blank line) and read the
 * answer until the server closes; returns the status, the body into out (cap bytes). */
static int raw_http(int port, const char *head, const char *body, char *out, size_t cap)
{
    int fd = tcp_open(port, 0);
    if (fd < 0)
        return -1;
    char req[8192];
    snprintf(req, sizeof req, "%s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", head,
             body ? strlen(body) : 0);
    if (write_all(fd, req, strlen(req)) || (body && write_all(fd, body, strlen(body)))) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(fd);
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *b = strstr(buf, "\r\n\r\n");
    if (out)
        snprintf(out, cap, "%s", b ? b + 4 : "");
    return status;
}

/* A WebSocket upgrade with extra headers; returns the socket when the server answered 101
 * (and -1 otherwise, closing it), *status the status. */
static int ws_upgrade(int port, const char *extra, int rcvbuf, int *status)
{
    *status = -1;
    int fd = tcp_open(port, rcvbuf);
    if (fd < 0)
        return -1;
    char req[2048];
    snprintf(req, sizeof req,
             "GET /ws/progress HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra);
    if (write_all(fd, req, strlen(req))) {
        close(fd);
        return -1;
    }
    char buf[2048];
    size_t n = 0;
    while (n < sizeof buf - 1 && !strstr(buf, "\r\n\r\n")) {
        ssize_t r = read(fd, buf + n, 1); /* byte by byte: stop at the head's end */
        if (r <= 0)
            break;
        n++;
        buf[n] = 0;
    }
    buf[n] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || *status != 101) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One masked text frame (RFC 6455 5.2: a client masks every frame). */
static int ws_send_text(int fd, const char *text)
{
    size_t n = strlen(text), h = 0;
    unsigned char *f = malloc(n + 14);
    if (!f)
        return -1;
    f[h++] = 0x81;
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = (unsigned char)text[i] ^ mask[i & 3];
    int rc = write_all(fd, f, h + n);
    free(f);
    return rc;
}

static char *nested(int depth, const char *open, const char *close, const char *prefix,
                    const char *suffix)
{
    size_t no = strlen(open), nc = strlen(close);
    char *s = malloc(strlen(prefix) + strlen(suffix) + (no + nc) * (size_t)depth + 1);
    char *p = s + sprintf(s, "%s", prefix);
    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", open);
    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", close);
    sprintf(p, "%s", suffix);
    return s;
}

/* A multipart body: the fixture song as "file" named filename, with a band field. */
static char *upload_body(const char *filename, const char *band, size_t *len)
{
    FILE *f = fopen(test_fixture("audio/librosa/choice.ogg"), "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char head[1024];
    snprintf(head, sizeof head,
             "--B0und\r\nContent-Disposition: form-data; name=\"duration\"\r\n\r\n30\r\n"
             "--B0und\r\nContent-Disposition: form-data; name=\"band\"\r\n\r\n%s\r\n"
             "--B0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
             "Content-Type: audio/ogg\r\n\r\n",
             band, filename);
    const char *tail = "\r\n--B0und--\r\n";
    *len = strlen(head) + (size_t)n + strlen(tail);
    char *b = malloc(*len);
    memcpy(b, head, strlen(head));
    size_t o = strlen(head) + fread(b + strlen(head), 1, (size_t)n, f);
    memcpy(b + o, tail, strlen(tail));
    fclose(f);
    return b;
}

static json_t *post_upload(int port, const char *filename, const char *band, int *status)
{
    size_t len = 0;
    char *body = upload_body(filename, band, &len);
    resp r;
    *status = -1;
    if (body && !http_req(port, "POST", "/api/analyze", "multipart/form-data; boundary=B0und", body,
                          len, NULL, &r)) {
        *status = r.status;
        json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
        resp_free(&r);
        free(body);
        return j;
    }
    free(body);
    return NULL;
}

static long long count_files(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
    FILE *p = popen(cmd, "r");
    long long n = -1;
    if (p) {
        if (fscanf(p, "%lld", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

/* Medium: a file name that is not UTF-8 answered {"success":true,"job_id":0} with no job.
 * Issue 10.5: the same bytes uploaded again (under any name) are analysed once. */
static void check_uploads(int port, const char *data)
{
    int st;
    json_t *a = post_upload(port, "\xff\xfe\xc3(.ogg", "Admiral Bob", &st);
    CHECK_INT(st, 202);
    long long id = jint(a, "job_id");
    CHECK(id > 0);
    CHECK(json_is_false(json_object_get(a, "cached")));
    CHECK_INT((long long)strlen(jstr(a, "sha256")), 64);
    json_decref(a);
    json_t *j = wait_job(port, id, 120);
    CHECK_STR(jstr(j, "state"), "done");
    json_decref(j);

    /* the same bytes under another name: the same job, nothing queued, the copy not kept */
    a = post_upload(port, "copy of choice.ogg", "Admiral Bob", &st);
    CHECK_INT(st, 202);
    CHECK_INT(jint(a, "job_id"), id);
    CHECK(json_is_true(json_object_get(a, "cached")));
    CHECK_STR(jstr(a, "state"), "done");
    json_decref(a);
    char up[700];
    snprintf(up, sizeof up, "%s/uploads", data);
    CHECK_INT(count_files(up), 0);
    /* another band asked for is another answer: a new job */
    a = post_upload(port, "choice.ogg", "Someone Else", &st);
    CHECK_INT(st, 202);
    long long id2 = jint(a, "job_id");
    CHECK(id2 > 0 && id2 != id);
    json_decref(a);
    json_decref(wait_job(port, id2, 120));
    /* a band that is not UTF-8 is a clear 400 naming it */
    a = post_upload(port, "choice.ogg", "\xff\xff", &st);
    CHECK_INT(st, 400);
    CHECK_STR(jstr(a, "field"), "band");
    json_decref(a);
    CHECK_INT(count_files(up), 0);
}

static int count_fds(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A body that ends inside the file field (no closing boundary) left CivetWeb's open file
 * behind: each such request cost the server a file descriptor until none were left (found by
 * fuzz_multipart). 100 of them must not change the server's count of open files. */
static void check_truncated_uploads(int port, pid_t pid, const char *data)
{
    const char *body = "--B0und\r\nContent-Disposition: form-data; name=\"file\"; "
                       "filename=\"cut.mp3\"\r\n\r\nID3 and the body ends here";
    json_decref(api(port, "GET", "/api/health", NULL, NULL));
    int before = count_fds(pid);
    int n400 = 0;
    for (int i = 0; i < 100; i++) {
        resp r;
        if (!http_req(port, "POST", "/api/analyze", "multipart/form-data; boundary=B0und", body,
                      strlen(body), NULL, &r))
            n400 += r.status == 400;
        resp_free(&r);
    }
    json_decref(api(port, "GET", "/api/health", NULL, NULL));
    int after = count_fds(pid);
    fprintf(stderr, "truncated uploads: %d answered 400; server fds %d -> %d\n", n400, before,
            after);
    CHECK_INT(n400, 100);
    CHECK(before > 0 && after <= before + 5); /* a few keep-alive sockets may linger */
    char up[700];
    snprintf(up, sizeof up, "%s/uploads", data);
    CHECK_INT(count_files(up), 0);
}

/* Medium: a second server on the same --data retried the first one's running jobs. */
static void check_second_server(const char *data)
{
    srv s2;
    CHECK(srv_start(&s2, data, NULL) != 0);
    FILE *f = fopen(s2.log, "r");
    char line[512];
    int said = 0;
    while (f && fgets(line, sizeof line, f))
        said |= strstr(line, "another server") != NULL && strstr(line, "--data") != NULL;
    if (f)
        fclose(f);
    CHECK(said);
}

/* Low: {"steps":1e300} was cast out of range; CR/LF in api_key went into a request header;
 * analysis URLs could name the server itself or a private network. */
static void check_low(int port)
{
    int st;
    const char *bad_steps[] = {
        "{\"prompt\":\"x\",\"steps\":1e300}", "{\"prompt\":\"x\",\"steps\":-1e300}",
        "{\"prompt\":\"x\",\"steps\":2.5}", "{\"prompt\":\"x\",\"seed\":1e300}",
        "{\"prompt\":\"x\",\"width\":-1e19}"};
    for (int i = 0; i < 5; i++) {
        json_t *j = api(port, "POST", "/api/generate", bad_steps[i], &st);
        CHECK_INT(st, 400);
        json_decref(j);
    }
    json_t *j = api(port, "POST", "/api/validate-api-key",
                    "{\"api_key\":\"sk-1\\r\\nX-Injected: 1\"}", &st);
    CHECK_INT(st, 400);
    CHECK_STR(jstr(j, "field"), "api_key");
    json_decref(j);
    const char *priv[] = {"http://127.0.0.1:1/a.mp3",
                          "http://2130706433/a.mp3",
                          "http://127.1/a.mp3",
                          "http://[::1]:9/a.mp3",
                          "http://localhost./a.mp3",
                          "https://10.1.2.3/a.mp3",
                          "http://192.168.0.9/a.mp3",
                          "http://169.254.169.254/latest/meta-data",
                          "http://[::ffff:127.0.0.1]/a.mp3",
                          "http://0.0.0.0:9090/api/health",
                          "http://172.16.0.1/a.mp3",
                          "http://app.localhost/a.mp3",
                          /* found by fuzz_url: a zone id, percent-encoding */
                          "http://[::1%25lo]:9/a.mp3",
                          "http://%31%32%37.0.0.1/a.mp3",
                          "http://[::%..]/a.mp3"};
    for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"url\":\"%s\",\"duration\":30}", priv[i]);
        j = api(port, "POST", "/api/analyze", body, &st);
        if (st != 400 || !strstr(jstr(j, "error"), "--allow-private-urls"))
            fprintf(stderr, "accepted: %s (%d)\n", priv[i], st);
        CHECK_INT(st, 400);
        json_decref(j);
    }
    /* public addresses and names pass the check (nothing is fetched: the job is canceled) */
    const char *pub[] = {"http://93.184.216.34/a.mp3", "http://172.32.0.1/a.mp3",
                         "https://example.com/a.mp3"};
    for (int i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"url\":\"%s\",\"duration\":30}", pub[i]);
        j = api(port, "POST", "/api/analyze", body, &st);
        CHECK_INT(st, 202);
        char path[96];
        snprintf(path, sizeof path, "/api/jobs/%lld", jint(j, "job_id"));
        json_decref(j);
        json_decref(api(port, "DELETE", path, NULL, &st));
    }
    /* A host over 300 bytes was cut before its ".localhost" was seen (found by fuzz_url). */
    char longhost[700];
    snprintf(longhost, sizeof longhost, "{\"url\":\"http://%0400d.localhost/a.mp3\"}", 0);
    j = api(port, "POST", "/api/analyze", longhost, &st);
    CHECK_INT(st, 400);
    json_decref(j);
    /* A \u0000 in the URL is refused, not cut off where C reads it (found by fuzz_url). */
    j = api(port, "POST", "/api/analyze",
            "{\"url\":\"https://example.com/a.mp3\\u0000x\",\"duration\":30}", &st);
    CHECK_INT(st, 400);
    CHECK(strstr(jstr(j, "error"), "NUL") != NULL);
    json_decref(j);
}

static int alive(int port)
{
    int st;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    json_decref(h);
    return st == 200;
}

/* Critical: ~1000 nested arrays on /api/generate (any Content-Type) and on the WebSocket killed
 * the server (SIGSEGV in jansson on a 100 KiB worker stack). */
static void check_deep_requests(int port)
{
    char *arrays = nested(1000, "[", "]", "{\"prompt\":\"x\",\"features\":", "}");
    char *objects = nested(225, "{\"a\":", "}", "{\"prompt\":\"x\",\"features\":", "}");
    resp r;
    CHECK_INT(
        http_req(port, "POST", "/api/generate", "text/plain", arrays, strlen(arrays), NULL, &r), 0);
    CHECK_INT(r.status, 415);
    resp_free(&r);
    int st;
    json_t *j = api(port, "POST", "/api/generate", arrays, &st);
    CHECK_INT(st, 400);
    CHECK(strstr(jstr(j, "error"), "nested deeper than 32") != NULL);
    json_decref(j);
    j = api(port, "POST", "/api/generate", objects, &st);
    CHECK_INT(st, 400);
    json_decref(j);
    /* 32 levels are still fine (features are an object of arrays in practice) */
    char *ok = nested(30, "[", "]", "{\"prompt\":\"x\",\"steps\":1,\"features\":{\"a\":", "}}");
    j = api(port, "POST", "/api/generate", ok, &st);
    CHECK(st == 202 || st == 400); /* 400 only if the features' shape is refused, never a crash */
    json_decref(j);
    CHECK(alive(port));

    wsc *w = wsc_open(port, "/ws/progress");
    CHECK(w != NULL);
    if (w) {
        size_t at = 0;
        char *msg = nested(1000, "[", "]", "{\"type\":\"subscribe\",\"jobs\":", "}");
        CHECK(wsc_send(w, msg) > 0);
        json_t *e = wsc_wait(w, &at, "error", 0, 30);
        CHECK(e != NULL);
        json_decref(e);
        CHECK(wsc_send(w, "{\"type\":\"ping\"}") > 0);
        json_t *p = wsc_wait(w, &at, "pong", 0, 30);
        CHECK(p != NULL);
        json_decref(p);
        free(msg);
        wsc_close(w);
    }
    CHECK(alive(port));
    free(arrays);
    free(objects);
    free(ok);
}

static char *gallery_result(const int64_t *ids, int n, void *ud)
{
    (void)ud;
    char *s = malloc(64);
    snprintf(s, 64, "{\"images\":[%lld],\"n\":%d}", n ? (long long)ids[0] : 0LL, n);
    return s;
}

/* Critical: a job stored with features 225 deep crashed the server on every WebSocket subscribe
 * to it and every GET, after each restart too. Such a row is written here straight into the
 * store (as an older server accepted it). */
static void check_deep_stored(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/deep", tmp_root);
    mkdir(data, 0755);
    m2p_store *st = NULL;
    CHECK_INT(m2p_store_open(data, &st), 0);
    char *params = nested(225, "{\"a\":", "}", "{\"prompt\":\"x\",\"features\":", "}");
    int64_t id = 0;
    CHECK_INT(store_job_create(st, STORE_JOB_GENERATE, params, 0, 0, 0, 0, &id), 0);
    CHECK_INT(store_job_fail(st, id, 0, "stored by an older server", 0), 0);
    free(params);

    /* Low: gallery rows carried each post's whole features (curves of thousands of numbers) */
    int64_t gid = 0;
    CHECK_INT(store_job_create(st, STORE_JOB_GENERATE, "{\"prompt\":\"x\"}", 0, 0, 0, 0, &gid), 0);
    store_job claimed;
    store_lease lease = {.worker = "test", .lease_ms = 60000};
    CHECK_INT(store_job_claim(st, STORE_JOB_GENERATE, &lease, &claimed), 0);
    CHECK_INT(claimed.id, gid);
    char *meta = malloc(40000);
    char *m = meta + sprintf(meta, "{\"prompt\":\"x\",\"features\":{\"tempo\":120.5,"
                                   "\"energy\":0.4,\"key\":\"C\",\"envelope\":[");
    for (int i = 0; i < 3000; i++)
        m += sprintf(m, "%s0.5", i ? "," : "");
    sprintf(m, "],\"beats\":[1,2,3]}}");
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    store_result r = {0, 7, 64, 64, 0.1, png, sizeof png};
    CHECK_INT(store_job_finish_with_results(st, &claimed, meta, &r, 1, gallery_result, NULL), 0);
    store_job_clear(&claimed);
    free(meta);
    m2p_store_close(st);

    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld", (long long)id);
    int code;
    json_t *j = api(s.port, "GET", path, NULL, &code);
    CHECK_INT(code, 200);
    CHECK_STR(jstr(j, "state"), "failed");
    json_decref(j);
    wsc *w = wsc_open(s.port, "/ws/progress");
    CHECK(w != NULL);
    if (w) {
        size_t at = 0;
        char sub[96];
        snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", (long long)id);
        CHECK(wsc_send(w, sub) > 0);
        json_t *e = wsc_wait(w, &at, "state", id, 30);
        CHECK(e != NULL);
        json_decref(e);
        wsc_close(w);
    }
    j = api(s.port, "GET", "/api/gallery", NULL, &code);
    CHECK_INT(code, 200);
    json_t *f = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "items"), 0), "meta"), "features");
    CHECK(json_real_value(json_object_get(f, "tempo")) == 120.5);
    CHECK_STR(jstr(f, "key"), "C");
    CHECK(json_object_get(f, "envelope") == NULL);
    CHECK(json_object_get(f, "beats") == NULL);
    json_decref(j);
    /* the job itself still has them */
    snprintf(path, sizeof path, "/api/jobs/%lld", (long long)gid);
    j = api(s.port, "GET", path, NULL, &code);
    CHECK_INT(code, 200);
    json_decref(j);
    CHECK(alive(s.port));
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
}

/* High: a page of another site could queue jobs (text/plain "simple" POST), read the API after
 * DNS rebinding (foreign Host) and watch jobs over a WebSocket (foreign Origin). */
static void check_cross_site(int port)
{
    const char *gen = "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64}";
    char head[512], body[4096];
    resp r;
    CHECK_INT(http_req(port, "POST", "/api/generate", "text/plain", gen, strlen(gen), NULL, &r), 0);
    CHECK_INT(r.status, 415);
    CHECK(r.body && strstr(r.body, "application/json") != NULL);
    resp_free(&r);
    CHECK_INT(http_req(port, "POST", "/api/generate", "application/x-www-form-urlencoded", gen,
                       strlen(gen), NULL, &r),
              0);
    CHECK_INT(r.status, 415);
    resp_free(&r);

    /* a foreign Origin: 403, and the message says how to allow it */
    snprintf(head, sizeof head,
             "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://evil.example\r\n"
             "Content-Type: application/json",
             port);
    CHECK_INT(raw_http(port, head, gen, body, sizeof body), 403);
    CHECK(strstr(body, "--allowed-origin") != NULL);
    snprintf(head, sizeof head, "GET /api/gallery HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: null",
             port);
    CHECK_INT(raw_http(port, head, NULL, body, sizeof body), 403);
    /* DNS rebinding: the browser sends the attacker's name as Host (and as Origin) */
    snprintf(head, sizeof head,
             "GET /api/gallery HTTP/1.1\r\nHost: evil.example:%d\r\nOrigin: http://evil.example:%d",
             port, port);
    CHECK_INT(raw_http(port, head, NULL, body, sizeof body), 403);
    snprintf(head, sizeof head, "GET /api/health HTTP/1.1\r\nHost: evil.example:%d", port);
    CHECK_INT(raw_http(port, head, NULL, body, sizeof body), 403);
    /* the server's own page, under each of its names */
    const char *names[] = {"127.0.0.1", "localhost", "[::1]", "LOCALHOST"};
    for (int i = 0; i < 4; i++) {
        snprintf(head, sizeof head,
                 "POST /api/generate-prompt HTTP/1.1\r\nHost: %s:%d\r\nOrigin: http://%s:%d\r\n"
                 "Content-Type: application/json; charset=utf-8",
                 names[i], port, names[i], port);
        CHECK_INT(raw_http(port, head, "{\"features\":{\"tempo\":120}}", body, sizeof body), 200);
    }
    /* another port on localhost is another origin */
    snprintf(head, sizeof head,
             "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1:%d", port,
             port == 1 ? 2 : port - 1);
    CHECK_INT(raw_http(port, head, NULL, body, sizeof body), 403);
    /* curl and scripts send no Origin */
    snprintf(head, sizeof head, "GET /api/health HTTP/1.1\r\nHost: localhost:%d", port);
    CHECK_INT(raw_http(port, head, NULL, body, sizeof body), 200);

    /* WebSocket upgrades */
    char extra[256];
    int status;
    snprintf(extra, sizeof extra, "Host: 127.0.0.1:%d\r\nOrigin: http://evil.example\r\n", port);
    int fd = ws_upgrade(port, extra, 0, &status);
    CHECK(fd < 0 && status != 101);
    if (fd >= 0)
        close(fd);
    snprintf(extra, sizeof extra, "Host: rebound.example:%d\r\n", port);
    fd = ws_upgrade(port, extra, 0, &status);
    CHECK(fd < 0 && status != 101);
    if (fd >= 0)
        close(fd);
    snprintf(extra, sizeof extra, "Host: localhost:%d\r\nOrigin: http://localhost:%d\r\n", port,
             port);
    fd = ws_upgrade(port, extra, 0, &status);
    CHECK_INT(status, 101);
    if (fd >= 0)
        close(fd);
}

/* --allowed-origin opens the API to one more site (and its name as Host); a token of over 255
 * bytes is refused at start rather than cut; ?token=T%00x is not T. */
static void check_origin_option_and_token(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/origin", tmp_root);
    srv s;
    const char *extra[] = {"--allowed-origin",
                           "https://poster.example:8443",
                           "--token",
                           "T0k",
                           "--allow-private-urls",
                           NULL};
    if (srv_start(&s, data, extra)) {
        CHECK(!"the server did not start");
        return;
    }
    char head[512], body[4096];
    snprintf(head, sizeof head,
             "GET /api/health?token=T0k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Origin: https://poster.example:8443",
             s.port);
    CHECK_INT(raw_http(s.port, head, NULL, body, sizeof body), 200);
    snprintf(head, sizeof head,
             "GET /api/health?token=T0k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Origin: https://poster.example:8444",
             s.port);
    CHECK_INT(raw_http(s.port, head, NULL, body, sizeof body), 403);
    int st;
    json_t *j = api(s.port, "GET", "/api/health?token=T0k%00x", NULL, &st);
    CHECK_INT(st, 401);
    json_decref(j);
    j = api(s.port, "GET", "/api/health?token=T0", NULL, &st);
    CHECK_INT(st, 401);
    json_decref(j);
    j = api(s.port, "GET", "/api/health?token=T0k", NULL, &st);
    CHECK_INT(st, 200);
    json_decref(j);
    /* --allow-private-urls: a local address is accepted (the job may fail later, not here) */
    j = api(s.port, "POST", "/api/analyze?token=T0k",
            "{\"url\":\"http://127.0.0.1:1/a.mp3\",\"duration\":30}", &st);
    CHECK_INT(st, 202);
    json_decref(j);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);

    char tok[301];
    memset(tok, 'k', 300);
    tok[300] = 0;
    const char *long_tok[] = {"--token", tok, NULL};
    snprintf(data, sizeof data, "%s/longtoken", tmp_root);
    CHECK(srv_start(&s, data, long_tok) != 0);
}

/* High/medium: a WebSocket client that stops reading stalled every other client and
 * /api/health (the bus wrote under its subscriber lock, up to the 30 s write timeout).
 * Here one client with a 4 KiB receive buffer asks for 500 KB state events until the server
 * takes no more of its frames, and never reads. /api/health must answer and report it dropped,
 * and another client must be served. (Before the fix, /api/health took 58.7 s here.) The 15 s
 * bound is half the server's 30 s write timeout: the stall it guards against. */
static void check_slow_client(int port)
{
    /* a job whose state event is ~500 KB: features with many numbers */
    size_t nf = 40000;
    char *big = malloc(nf * 16 + 128);
    char *p = big + sprintf(big, "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64,"
                                 "\"features\":{");
    for (size_t i = 0; i < nf; i++)
        p += sprintf(p, "%s\"f%zu\":1", i ? "," : "", i);
    sprintf(p, "}}");
    int st;
    json_t *j = api(port, "POST", "/api/generate", big, &st);
    long long id = jint(j, "job_id");
    json_decref(j);
    free(big);
    if (st != 202) {
        CHECK(!"the big job was not accepted");
        return;
    }
    char extra[128];
    snprintf(extra, sizeof extra, "Host: 127.0.0.1:%d\r\n", port);
    int status;
    int fd = ws_upgrade(port, extra, 4096, &status);
    CHECK_INT(status, 101);
    if (fd < 0)
        return;
    char sub[128], unsub[2200];
    snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
    snprintf(unsub, sizeof unsub, "{\"type\":\"unsubscribe\",\"jobs\":[%lld],\"pad\":\"%02000d\"}",
             id, 0);
    /* It asks for state events until its frames are no longer taken: the server's thread for
     * it has stopped reading (stuck writing to it: the stall) or has closed it (dropped as a
     * client that does not read: the fix). Non-blocking, so this thread never waits on it. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int sent = 0;
    for (; sent < 1000000; sent++)
        if (ws_send_text(fd, sub) || ws_send_text(fd, unsub))
            break;
    fprintf(stderr, "the client that never reads asked for %d state events (%s)\n", sent,
            strerror(errno));

    /* The server answers, and says it dropped the client that does not read. */
    double t0 = now_s(), health_s = 0;
    long long dropped = 0;
    while (dropped < 1 && now_s() < t0 + 60) {
        double t1 = now_s();
        json_t *h = api(port, "GET", "/api/health", NULL, &st);
        CHECK_INT(st, 200); /* answered while a client does not read */
        if (now_s() - t1 > health_s)
            health_s = now_s() - t1;
        dropped = jint(h, "websockets_dropped");
        json_decref(h);
        if (dropped < 1)
            sleep_ms(50);
    }
    CHECK(dropped >= 1);
    /* and another client is served */
    wsc *w = wsc_open(port, "/ws/progress");
    CHECK(w != NULL);
    double sub_s = 1e9;
    if (w) {
        size_t at = 0;
        t0 = now_s();
        CHECK(wsc_send(w, sub) > 0);
        json_t *e = wsc_wait(w, &at, "state", id, 60);
        CHECK(e != NULL);
        sub_s = now_s() - t0;
        json_decref(e);
        wsc_close(w);
    }
    fprintf(stderr, "with a client not reading: /api/health at most %.2f s, a subscribe %.2f s\n",
            health_s, sub_s);
    close(fd);
    CHECK(alive(port));
    /* the job ends before the next check measures the server's memory (on a busy machine it
     * was still generating there: +13 MB resident) */
    json_t *done = wait_job(port, id, 120);
    CHECK(done != NULL);
    json_decref(done);
}

/* The server's resident memory (/api/health rss_kb). */
static long long server_rss_kb(int port)
{
    int st;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    long long kb = st == 200 ? jint(h, "rss_kb") : -1;
    json_decref(h);
    return kb;
}

/* The peak resident memory of process pid (VmHWM), in KiB; -1 when unknown. */
static long long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atoll(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* Low: WebSocket frames were read whole before the 64 KiB check (two 256 MB frames took the
 * server from 37 to 550 MB), and unmasked client frames were accepted. A header announcing
 * 256 MB must be refused (close 1009) and the connection closed before any of the payload is
 * sent, with the server's memory (now and at its peak) unchanged; an unmasked frame closes
 * with 1002. Before the fix the server waited for the payload, and took all of it. */
static void check_ws_frames(int port, pid_t pid)
{
    long long rss0 = server_rss_kb(port), peak0 = peak_rss_kb(pid);
    size_t chunk_len = 1u << 20, most_sent = 0;
    char *chunk = calloc(1, chunk_len);
    for (int i = 0; i < 2 && chunk; i++) {
        int st;
        char head[1024], reason[128];
        int fd = wsr_open(port, "/ws/progress", NULL, &st, head, sizeof head);
        CHECK_INT(st, 101);
        if (fd < 0)
            break;
        /* a final text frame of 256 MB (64-bit length), masked: only its 14-byte header */
        static const unsigned char hdr[14] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0x10,
                                              0,    0,          0, 1, 2, 3, 4};
        CHECK_INT(send(fd, hdr, sizeof hdr, MSG_NOSIGNAL), (long)sizeof hdr);
        CHECK_INT(wsr_close_code(fd, reason, sizeof reason), 1009);
        CHECK(strstr(reason, "64 KiB") != NULL);
        CHECK(wsr_eof(fd));
        /* the payload finds the connection closed: no more than the kernel buffers goes out */
        size_t sent = 0;
        while (sent < (256u << 20)) {
            ssize_t w = send(fd, chunk, chunk_len, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        if (sent > most_sent)
            most_sent = sent;
        close(fd);
    }
    free(chunk);
    CHECK(most_sent < (32u << 20));
    long long rss1 = server_rss_kb(port), peak1 = peak_rss_kb(pid);
    fprintf(stderr,
            "two WebSocket frames announcing 256 MB: server RSS %lld -> %lld KiB, peak %lld -> "
            "%lld KiB, at most %zu payload bytes taken by the kernel\n",
            rss0, rss1, peak0, peak1, most_sent);
    CHECK(rss0 > 0 && rss1 > 0 && peak0 > 0 && peak1 > 0);
    CHECK(rss1 - rss0 < 8 * 1024);
    CHECK(peak1 - peak0 < 8 * 1024);

    /* an unmasked frame (RFC 6455 5.1): close 1002, and the message is not handled */
    int st;
    char head[1024];
    int fd = wsr_open(port, "/ws/progress", NULL, &st, head, sizeof head);
    CHECK_INT(st, 101);
    if (fd < 0)
        return;
    unsigned char buf[256];
    size_t len;
    CHECK_INT(wsr_frame(fd, buf, sizeof buf, &len), 0x81); /* hello */
    CHECK_INT(wsr_send(fd, 0x81, 0, "{\"type\":\"ping\"}", 15), 0);
    int b0 = wsr_frame(fd, buf, sizeof buf, &len);
    CHECK_INT(b0, 0x88); /* the close, not a pong */
    CHECK(b0 == 0x88 && len >= 2 && ((buf[0] << 8) | buf[1]) == 1002);
    CHECK(wsr_eof(fd));
    close(fd);
    CHECK(alive(port));
}

/* Slowloris: SLOW_CONNS connections each send half a request and stop. Before the fix they
 * held all 320 HTTP workers (max_ws + 64) until CivetWeb's 30 s request timeout, and
 * /api/health waited behind them. Now /api/health must answer while every slow connection is
 * still open: none of them has been answered or closed by the time health answers (the server
 * closes a half-sent request only at its request timeout), so the answer did not come from a
 * worker freed by that timeout. */
#define SLOW_CONNS 400
static void check_slowloris(int port)
{
    int fds[SLOW_CONNS], n = 0;
    char half[128];
    snprintf(half, sizeof half, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: ", port);
    for (int i = 0; i < SLOW_CONNS; i++) {
        int fd = tcp_open(port, 0);
        if (fd < 0)
            break;
        if (write_all(fd, half, strlen(half))) {
            close(fd);
            break;
        }
        fds[n++] = fd;
    }
    CHECK_INT(n, SLOW_CONNS);
    int st = 0;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    CHECK_INT(st, 200);
    json_decref(h);
    /* Still open: nothing to read on any of them (no answer, no EOF). */
    int open_now = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        if (poll(&p, 1, 0) == 0)
            open_now++;
    }
    fprintf(stderr, "slowloris: %d half-sent requests, %d still open when /api/health answered\n",
            n, open_now);
    CHECK_INT(open_now, n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    CHECK(alive(port));
}

int main(void)
{
    harness_init();
    srv_http_threads = 0; /* the server's own worker count: what a hostile or busy client meets */
    char *t = test_tmpdir("server-security");
    snprintf(tmp_root, sizeof tmp_root, "%s", t);
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    check_deep_requests(s.port);
    check_cross_site(s.port);
    check_low(s.port);
    check_slow_client(s.port);
    check_ws_frames(s.port, s.pid);
    check_slowloris(s.port);
    check_uploads(s.port, data);
    check_truncated_uploads(s.port, s.pid, data);
    check_second_server(data);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    check_deep_stored();
    check_origin_option_and_token();
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
