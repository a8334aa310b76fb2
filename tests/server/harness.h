/*
 * harness.h — helpers for the server tests (included by each tests/server/test_*.c):
 * start `$M2P_BIN serve` on a free port as a subprocess with the tiny fixture model, talk HTTP
 * to it with CivetWeb's client (mg_connect_client + mg_get_response), and watch its WebSocket
 * with mg_connect_websocket_client, collecting every message as JSON.
 */
#ifndef M2P_TEST_SERVER_HARNESS_H
#define M2P_TEST_SERVER_HARNESS_H

#include <civetweb.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static __attribute__((unused)) double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static __attribute__((unused)) void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for something that must happen (a job's end, an event) fail only on a hang: whatever a
 * caller asks, they last at least this long, so a loaded machine cannot fail them. */
#define HARNESS_MIN_WAIT_S 120.0

/* ---- HTTP ---- */

typedef struct resp {
    int status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[64]; /* the Allow header of a 405 */
} resp;

static __attribute__((unused)) void resp_free(resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One request; returns 0 when a response came back (r->status set). */
static __attribute__((unused)) int http_req(int port, const char *method, const char *path,
                                            const char *ctype, const void *body, size_t len,
                                            const char *headers, resp *r)
{
    memset(r, 0, sizeof *r);
    char ebuf[256] = "";
    struct mg_connection *c = mg_connect_client("127.0.0.1", port, 0, ebuf, sizeof ebuf);
    if (!c)
        return -1;
    mg_printf(c, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
              headers ? headers : "");
    if (body)
        mg_printf(c, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                  ctype ? ctype : "application/json", len);
    mg_printf(c, "\r\n");
    if (body && len)
        mg_write(c, body, len);
    if (mg_get_response(c, ebuf, sizeof ebuf, 120000) < 0) {
        mg_close_connection(c);
        return -1;
    }
    const struct mg_response_info *ri = mg_get_response_info(c);
    r->status = ri->status_code;
    for (int i = 0; i < ri->num_headers; i++)
        if (!strcasecmp(ri->http_headers[i].name, "Content-Type"))
            snprintf(r->ctype, sizeof r->ctype, "%s", ri->http_headers[i].value);
        else if (!strcasecmp(ri->http_headers[i].name, "Allow"))
            snprintf(r->allow, sizeof r->allow, "%s", ri->http_headers[i].value);
    size_t cap = 4096;
    r->body = malloc(cap + 1);
    int n;
    while (r->body && (n = mg_read(c, r->body + r->len, cap - r->len)) > 0) {
        r->len += (size_t)n;
        if (r->len == cap) {
            cap *= 2;
            r->body = realloc(r->body, cap + 1);
        }
    }
    if (r->body)
        r->body[r->len] = 0;
    mg_close_connection(c);
    return 0;
}

/* A JSON request (body may be NULL); returns the parsed answer (or NULL) and sets *status. */
static __attribute__((unused)) json_t *api(int port, const char *method, const char *path,
                                           const char *body, int *status)
{
    resp r;
    int rc =
        http_req(port, method, path, "application/json", body, body ? strlen(body) : 0, NULL, &r);
    if (status)
        *status = rc ? -1 : r.status;
    json_t *j = rc || !r.body ? NULL : json_loadb(r.body, r.len, 0, NULL);
    resp_free(&r);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static __attribute__((unused)) long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* Poll GET /api/jobs/{id} until it is done, failed or canceled. */
static __attribute__((unused)) json_t *wait_job(int port, long long id, double timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld", id);
    double end = now_s() + (timeout_s > HARNESS_MIN_WAIT_S ? timeout_s : HARNESS_MIN_WAIT_S);
    while (now_s() < end) {
        int st;
        json_t *j = api(port, "GET", path, NULL, &st);
        const char *s = jstr(j, "state");
        if (!strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "canceled"))
            return j;
        json_decref(j);
        sleep_ms(100);
    }
    return NULL;
}

/* POST /api/generate with body; checks the 202 and returns the job id. */
static __attribute__((unused)) long long submit(int port, const char *body)
{
    int st;
    json_t *j = api(port, "POST", "/api/generate", body, &st);
    CHECK_INT(st, 202);
    long long id = jint(j, "job_id");
    json_decref(j);
    return id;
}

/* ---- a fake yt-dlp ----
 * A download copies $FAKE_AUDIO (the choice.ogg fixture) and writes an info JSON after
 * printing download percentages (sleeping $FAKE_SLEEP seconds first, 0 by default);
 * --dump-single-json prints the info. The title gives band and song ("Admiral Bob - Choice").
 * write_fake_ytdlp(dir) writes it to dir/yt-dlp and points MUS2PIC_YTDLP at it. */
static const char *fake_ytdlp_script =
    "#!/bin/sh\n"
    "info='{\"id\": \"fakeid12345\", \"title\": \"Admiral Bob - Choice\", \"uploader\": "
    "\"someone\", \"tags\": [], \"categories\": [\"Music\"], \"duration\": 25.0}'\n"
    "for a in \"$@\"; do if [ \"$a\" = --dump-single-json ]; then echo \"$info\"; exit 0; fi; "
    "done\n"
    "tmpl=''; prev=''\n"
    "for a in \"$@\"; do if [ \"$prev\" = '-o' ]; then tmpl=\"$a\"; fi; prev=\"$a\"; done\n"
    "base=\"${tmpl%.*}\"\n"
    "sleep \"${FAKE_SLEEP:-0}\"\n"
    "echo '[download]  10.0% of 134.30KiB'\n"
    "echo '[download]  60.0% of 134.30KiB'\n"
    "cp \"$FAKE_AUDIO\" \"$base.ogg\"\n"
    "echo \"$info\" > \"$base.info.json\"\n"
    "echo '[download] 100.0% of 134.30KiB'\n";

static __attribute__((unused)) void write_fake_ytdlp(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/yt-dlp", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fputs(fake_ytdlp_script, f);
    fclose(f);
    chmod(path, 0755);
    setenv("MUS2PIC_YTDLP", path, 1);
    setenv("FAKE_AUDIO", test_fixture("audio/librosa/choice.ogg"), 1);
}

/* ---- the server subprocess ---- */

typedef struct srv {
    pid_t pid;
    int port;
    char data[1024];
    char log[1100];
} srv;

static void srv_dump_log(const srv *s);

/* What every server test does first: SIGPIPE ignored (a closed socket is an error code, not a
 * signal), CivetWeb's client library started. */
static __attribute__((unused)) void harness_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    mg_init_library(0);
}

/* The port `mus2pic serve` reports in its log ("serving http://HOST:PORT") after offset, or 0
 * while it has not said so yet. */
static __attribute__((unused)) int srv_log_port(const srv *s, long offset)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return 0;
    int port = 0;
    char line[2048];
    if (fseek(f, offset, SEEK_SET) == 0)
        while (!port && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, ": serving http://");
            const char *colon = p ? strchr(p + 17, ':') : NULL;
            if (colon)
                port = atoi(colon + 1);
        }
    fclose(f);
    return port;
}

/* Run argv (a `mus2pic serve` with --port 0) with its output appended to s->log, and wait until
 * it reports the port the kernel gave it and /api/health answers there. The server picks its own
 * port: a port picked here and handed over could be taken by a test running beside this one,
 * whose server would then answer in its place. */
static __attribute__((unused)) int srv_spawn(srv *s, const char *data, const char *const *argv)
{
    s->port = 0;
    snprintf(s->data, sizeof s->data, "%s", data);
    snprintf(s->log, sizeof s->log, "%s.log", data);
    struct stat lst;
    long offset = stat(s->log, &lst) == 0 ? (long)lst.st_size : 0;
    s->pid = fork();
    if (s->pid == 0) {
        FILE *f = freopen(s->log, "a", stdout);
        (void)f;
        dup2(1, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    double end = now_s() + 30;
    while (now_s() < end) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            srv_dump_log(s);
            return -1;
        }
        if (!s->port)
            s->port = srv_log_port(s, offset);
        int st = 0;
        if (s->port) {
            json_t *h = api(s->port, "GET", "/api/health", NULL, &st);
            json_decref(h);
        }
        if (st > 0)
            return 0;
        sleep_ms(50);
    }
    srv_dump_log(s);
    return -1;
}

/* srv_start's HTTP workers (--threads) unless extra names them; 0: the server's default
 * (max WebSockets + 1,024, sized for slowloris), which test_security and test_load keep. The
 * others need a few: every start creates them all, which under TSan took the server 14 s
 * before it answered (test_restart's race), and a few hundred ms under ASan. */
static __attribute__((unused)) int srv_http_threads = 32;

/* Start `mus2pic serve` with the tiny model on data (the server creates the folder); extra:
 * NULL-terminated extra arguments. Waits until /api/health answers; when the process exits
 * first or never answers, prints its log and returns -1. */
static __attribute__((unused)) int srv_start(srv *s, const char *data, const char *const *extra)
{
    memset(s, 0, sizeof s[0]);
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    char model[700], threads[16];
    snprintf(model, sizeof model, "lcm=%s", test_fixture("sd-tiny/model"));
    snprintf(threads, sizeof threads, "%d", srv_http_threads);
    const char *argv[40] = {bin,  "serve",   "--port", "0",        "--data",
                            data, "--model", model,    "--offline"};
    int n = 9;
    int named = 0;
    for (int i = 0; extra && extra[i]; i++)
        named |= !strcmp(extra[i], "--threads");
    if (srv_http_threads > 0 && !named) {
        argv[n++] = "--threads";
        argv[n++] = threads;
    }
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return srv_spawn(s, data, argv);
}

/* Send sig and reap; returns the exit status (or 128 + signal). */
static __attribute__((unused)) int srv_stop(srv *s, int sig)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    int status = 0;
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void srv_dump_log(const srv *s)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- server log %s ----\n", s->log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* ---- WebSocket client ---- */

typedef struct wsc {
    struct mg_connection *c;
    pthread_mutex_t m;
    pthread_cond_t cv;
    json_t *msgs; /* every message received, parsed (strings kept raw when not JSON) */
    int closed;
    size_t bytes;
} wsc;

static __attribute__((unused)) int wsc_on_data(struct mg_connection *c, int bits, char *data,
                                               size_t len, void *ud)
{
    wsc *w = ud;
    int op = bits & 0xf;
    if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        pthread_mutex_lock(&w->m);
        w->closed = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->m);
        return 0;
    }
    if (op != MG_WEBSOCKET_OPCODE_TEXT)
        return 1;
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j)
        j = json_stringn(data, len);
    pthread_mutex_lock(&w->m);
    json_array_append_new(w->msgs, j);
    w->bytes += len;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->m);
    return 1;
}

static __attribute__((unused)) void wsc_on_close(const struct mg_connection *c, void *ud)
{
    wsc *w = ud;
    pthread_mutex_lock(&w->m);
    w->closed = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->m);
}

static __attribute__((unused)) wsc *wsc_open(int port, const char *path)
{
    wsc *w = calloc(1, sizeof *w);
    pthread_mutex_init(&w->m, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->msgs = json_array();
    char ebuf[256] = "";
    w->c = mg_connect_websocket_client("127.0.0.1", port, 0, ebuf, sizeof ebuf, path, NULL,
                                       wsc_on_data, wsc_on_close, w);
    if (!w->c) {
        fprintf(stderr, "websocket connect %s: %s\n", path, ebuf);
        json_decref(w->msgs);
        pthread_mutex_destroy(&w->m);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

static __attribute__((unused)) int wsc_send(wsc *w, const char *text)
{
    return mg_websocket_client_write(w->c, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text));
}

/* Wait for the first message at index >= *from whose type is type (and job is job when > 0);
 * returns a new reference and moves *from past it, or NULL on timeout. */
static __attribute__((unused)) json_t *wsc_wait(wsc *w, size_t *from, const char *type,
                                                long long job, double timeout_s)
{
    double end = now_s() + (timeout_s > HARNESS_MIN_WAIT_S ? timeout_s : HARNESS_MIN_WAIT_S);
    pthread_mutex_lock(&w->m);
    for (;;) {
        for (size_t i = *from; i < json_array_size(w->msgs); i++) {
            json_t *m = json_array_get(w->msgs, i);
            if (!strcmp(jstr(m, "type"), type) && (job <= 0 || jint(m, "job") == job)) {
                *from = i + 1;
                json_incref(m);
                pthread_mutex_unlock(&w->m);
                return m;
            }
        }
        if (w->closed || now_s() > end)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->m, &ts);
    }
    pthread_mutex_unlock(&w->m);
    return NULL;
}

/* Wait until the server closed the connection. */
static __attribute__((unused)) int wsc_wait_closed(wsc *w, double timeout_s)
{
    double end = now_s() + timeout_s;
    pthread_mutex_lock(&w->m);
    while (!w->closed && now_s() < end) {
        pthread_mutex_unlock(&w->m);
        sleep_ms(20);
        pthread_mutex_lock(&w->m);
    }
    int closed = w->closed;
    pthread_mutex_unlock(&w->m);
    return closed;
}

/* A snapshot copy of the messages so far. */
static __attribute__((unused)) json_t *wsc_messages(wsc *w)
{
    pthread_mutex_lock(&w->m);
    json_t *copy = json_copy(w->msgs);
    pthread_mutex_unlock(&w->m);
    return copy;
}

static __attribute__((unused)) void wsc_close(wsc *w)
{
    if (!w)
        return;
    /* CivetWeb's client reader thread only notices a local close after its receive timeout
     * (seconds); asking the server to close first ends it at once. */
    pthread_mutex_lock(&w->m);
    int closed = w->closed; /* set by CivetWeb's reader thread */
    pthread_mutex_unlock(&w->m);
    if (!closed) {
        mg_websocket_client_write(w->c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
        wsc_wait_closed(w, 3);
    }
    mg_close_connection(w->c);
    json_decref(w->msgs);
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* ---- raw WebSocket: frames of the test's making on a plain socket (RFC 6455 5.2) ---- */

/* Connect to port and send an upgrade for path with extra header lines (each ending in CRLF).
 * Returns the socket when the server answered 101, else -1; *status gets the status and head
 * (cap bytes) the answer's head. */
static __attribute__((unused)) int wsr_open(int port, const char *path, const char *extra,
                                            int *status, char *head, size_t cap)
{
    *status = -1;
    head[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval tv = {(time_t)HARNESS_MIN_WAIT_S, 0}; /* a read that hangs fails */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, port, extra ? extra : "");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < cap - 1 && !strstr(head, "\r\n\r\n")) {
        ssize_t r = read(fd, head + got, 1); /* byte by byte: nothing past the head */
        if (r <= 0)
            break;
        head[++got] = 0;
    }
    if (sscanf(head, "HTTP/1.1 %d", status) != 1 || *status != 101) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One client frame: b0 is its first byte (FIN, RSV, opcode); masked with a fixed key unless
 * masked is 0; the length in the shortest form (126: 16 bits, 127: 64 bits). */
static __attribute__((unused)) int wsr_send(int fd, int b0, int masked, const void *payload,
                                            size_t len)
{
    unsigned char *f = malloc(len + 14);
    if (!f)
        return -1;
    size_t h = 0;
    f[h++] = (unsigned char)b0;
    unsigned char m = masked ? 0x80 : 0;
    if (len < 126) {
        f[h++] = (unsigned char)(m | len);
    } else if (len < 65536) {
        f[h++] = m | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) {
        memcpy(f + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        f[h + i] = ((const unsigned char *)payload)[i] ^ (masked ? key[i & 3] : 0);
    ssize_t w = send(fd, f, h + len, MSG_NOSIGNAL);
    free(f);
    return w == (ssize_t)(h + len) ? 0 : -1;
}

static __attribute__((unused)) int wsr_read_all(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One server frame: its first byte (FIN, opcode), its payload into buf (cap bytes; the rest is
 * read and dropped) and its length into *len; -1 when the connection ended (or hung), -2 for a
 * masked server frame (RFC 6455 5.1 forbids it). */
static __attribute__((unused)) int wsr_frame(int fd, unsigned char *buf, size_t cap, size_t *len)
{
    unsigned char h[10];
    if (wsr_read_all(fd, h, 2))
        return -1;
    if (h[1] & 0x80)
        return -2;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        if (wsr_read_all(fd, h + 2, 2))
            return -1;
        n = ((uint64_t)h[2] << 8) | h[3];
    } else if (n == 127) {
        if (wsr_read_all(fd, h + 2, 8))
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | h[2 + i];
    }
    *len = (size_t)n;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c;
        if (wsr_read_all(fd, &c, 1))
            return -1;
        if (i < cap)
            buf[i] = c;
    }
    return h[0];
}

/* Read frames until the server's close: its status code (1005 when it has none), -1 when the
 * connection ended (or hung) first. The close's reason goes into reason (cap bytes). */
static __attribute__((unused)) int wsr_close_code(int fd, char *reason, size_t cap)
{
    unsigned char buf[256];
    size_t len;
    int b0;
    if (reason)
        reason[0] = 0;
    while ((b0 = wsr_frame(fd, buf, sizeof buf, &len)) >= 0)
        if ((b0 & 0x0f) == 8) {
            if (len < 2)
                return 1005;
            if (reason && cap)
                snprintf(reason, cap, "%.*s", (int)(len - 2 < cap ? len - 2 : cap - 1),
                         (const char *)buf + 2);
            return (buf[0] << 8) | buf[1];
        }
    return -1;
}

/* After the server's close: does it end the TCP connection (EOF; not a hang)? */
static __attribute__((unused)) int wsr_eof(int fd)
{
    char c;
    ssize_t r;
    while ((r = read(fd, &c, 1)) > 0) {
    }
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

#endif
