/*
 * test_ws.c — WebSocket /ws/progress of `mus2pic serve`: the event sequence of a generation
 * (state, encoding, step s/t per variation with elapsed, ETA and a PNG preview, decoding, done
 * with image URLs and the seed), a late client getting the current state, several clients on
 * one job, the original's {type:"generate"} messages and progress numbers, hostile frames, the
 * RFC 6455 framing with frames of the test's making (fragments, control frames, close codes),
 * refused handshakes, the close when the server stops, idle clients, the client cap and the
 * token.
 */
#include "harness.h"

static void subscribe(wsc *w, long long id)
{
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
    CHECK(wsc_send(w, msg) > 0);
}

static void check_sequence(int port)
{
    /* A slow job holds the generation worker so the watched job is still queued when the client
     * subscribes; then the slow one is canceled and the watched one runs. */
    long long blocker = submit(port, "{\"prompt\":\"block\",\"steps\":50,\"variations\":4,"
                                     "\"width\":256,\"height\":256}");
    long long id = submit(port, "{\"prompt\":\"watched\",\"steps\":3,\"variations\":2,"
                                "\"width\":64,\"height\":64,\"seed\":5}");
    wsc *a = wsc_open(port, "/ws/progress");
    CHECK(a != NULL);
    if (!a)
        return;
    size_t at = 0;
    json_t *hello = wsc_wait(a, &at, "hello", 0, 5);
    CHECK(hello != NULL);
    json_decref(hello);
    subscribe(a, id);
    json_t *st = wsc_wait(a, &at, "state", id, 5);
    CHECK(st != NULL);
    CHECK_STR(jstr(json_object_get(st, "state"), "state"), "queued");
    json_decref(st);
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", blocker);
    int code;
    json_decref(api(port, "POST", path, NULL, &code));
    CHECK(code == 200 || code == 202);

    json_t *done = wsc_wait(a, &at, "done", id, 60);
    CHECK(done != NULL);
    json_t *imgs = json_object_get(done, "images");
    CHECK_INT(json_array_size(imgs), 2);
    CHECK_INT(jint(done, "seed"), 5);
    CHECK(strncmp(jstr(json_array_get(imgs, 0), "url"), "/api/images/", 12) == 0);
    json_decref(done);

    /* every event of the job, in order */
    json_t *msgs = wsc_messages(a);
    int encoding = -1, decoding = -1, done_at = -1, steps[2][4] = {{0}}, n_steps = 0;
    int last_step[2] = {0, 0}, ordered = 1, previews = 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (jint(m, "job") != id)
            continue;
        const char *t = jstr(m, "type");
        if (!strcmp(t, "stage") && !strcmp(jstr(m, "stage"), "encoding") && encoding < 0)
            encoding = (int)i;
        if (!strcmp(t, "stage") && !strcmp(jstr(m, "stage"), "decoding_image"))
            decoding = (int)i;
        if (!strcmp(t, "done"))
            done_at = (int)i;
        if (!strcmp(t, "step")) {
            long long v = jint(m, "variation"), s = jint(m, "step");
            CHECK_INT(jint(m, "steps"), 3);
            CHECK_INT(jint(m, "variations"), 2);
            CHECK(json_is_number(json_object_get(m, "elapsed")));
            CHECK(json_is_number(json_object_get(m, "eta")));
            if (v >= 1 && v <= 2 && s >= 1 && s <= 3) {
                steps[v - 1][s]++;
                ordered &= s > last_step[v - 1];
                last_step[v - 1] = (int)s;
            }
            previews += !strncmp(jstr(m, "preview"), "data:image/png;base64,", 22);
            n_steps++;
            if (encoding < 0 || (int)i < encoding)
                ordered = 0;
        }
    }
    CHECK(encoding >= 0);
    CHECK(decoding > encoding);
    CHECK(done_at > decoding);
    CHECK_INT(n_steps, 6);
    for (int v = 0; v < 2; v++)
        for (int s = 1; s <= 3; s++)
            CHECK_INT(steps[v][s], 1);
    CHECK(ordered);
    CHECK_INT(previews, 6);
    json_decref(msgs);

    /* a client that comes back later gets the current state at once */
    wsc *b = wsc_open(port, "/ws/progress");
    size_t bt = 0;
    subscribe(b, id);
    json_t *bs = wsc_wait(b, &bt, "state", id, 5);
    CHECK_STR(jstr(json_object_get(bs, "state"), "state"), "done");
    json_decref(bs);
    json_t *bd = wsc_wait(b, &bt, "done", id, 5);
    CHECK(bd != NULL);
    CHECK_INT(json_array_size(json_object_get(bd, "images")), 2);
    json_decref(bd);

    /* several clients on one job; one client on several jobs */
    long long id2 = submit(port, "{\"prompt\":\"many\",\"steps\":2,\"width\":64,\"height\":64}");
    char msg[128];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld,%lld]}", id, id2);
    wsc *c = wsc_open(port, "/ws/progress");
    size_t ct = 0;
    CHECK(wsc_send(c, msg) > 0);
    subscribe(b, id2);
    json_t *d1 = wsc_wait(b, &bt, "done", id2, 30);
    json_t *d2 = wsc_wait(c, &ct, "done", id2, 30);
    CHECK(d1 != NULL && d2 != NULL);
    json_decref(d1);
    json_decref(d2);
    ct = 0;
    json_t *d3 = wsc_wait(c, &ct, "done", id, 5);
    CHECK(d3 != NULL);
    json_decref(d3);

    /* a job that does not exist */
    subscribe(c, 987654);
    json_t *e = wsc_wait(c, &ct, "error", 987654, 5);
    CHECK(e != NULL && strstr(jstr(e, "message"), "987654") != NULL);
    json_decref(e);
    wsc_close(a);
    wsc_close(b);
    wsc_close(c);
}

/* A client that joins (or comes back) while a generation runs gets its current state at once:
 * the job row, then its last stage and the last step of every variation, before any new event. */
static void check_midrun(int port)
{
    long long id = submit(port, "{\"prompt\":\"long\",\"steps\":50,\"variations\":3,"
                                "\"width\":256,\"height\":256}");
    wsc *a = wsc_open(port, "/ws/progress");
    if (!a)
        return;
    subscribe(a, id);
    size_t at = 0;
    int seen[3] = {0, 0, 0};
    double end = now_s() + 60;
    while (!(seen[0] && seen[1] && seen[2]) && now_s() < end) {
        json_t *m = wsc_wait(a, &at, "step", id, 60);
        long long v = jint(m, "variation");
        if (v >= 1 && v <= 3)
            seen[v - 1] = 1;
        json_decref(m);
    }
    CHECK(seen[0] && seen[1] && seen[2]);

    wsc *b = wsc_open(port, "/ws/progress");
    size_t bt = 0;
    subscribe(b, id);
    json_t *st = wsc_wait(b, &bt, "state", id, 5);
    CHECK_STR(jstr(json_object_get(st, "state"), "state"), "running");
    json_decref(st);
    json_t *last = NULL;
    for (int k = 0; k < 4; k++) { /* the replay: stage, then variations 1..3 */
        json_decref(last);
        last = wsc_wait(b, &bt, k == 0 ? "stage" : "step", id, 5);
    }
    json_decref(last);
    json_t *msgs = wsc_messages(b);
    size_t i0 = 0, i;
    json_t *m;
    json_array_foreach(msgs, i, m) if (!strcmp(jstr(m, "type"), "state")) i0 = i;
    CHECK_STR(jstr(json_array_get(msgs, i0 + 1), "type"), "stage");
    CHECK_STR(jstr(json_array_get(msgs, i0 + 1), "stage"), "encoding");
    for (int v = 1; v <= 3; v++) {
        json_t *e = json_array_get(msgs, i0 + 1 + (size_t)v);
        CHECK_STR(jstr(e, "type"), "step");
        CHECK_INT(jint(e, "variation"), v);
        CHECK(jint(e, "step") >= 1);
        CHECK(!strncmp(jstr(e, "preview"), "data:image/png;base64,", 22));
    }
    json_decref(msgs);

    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", id);
    int code;
    json_decref(api(port, "POST", path, NULL, &code));
    CHECK_INT(code, 202);
    json_t *e = wsc_wait(b, &bt, "error", id, 60);
    CHECK(e != NULL && strstr(jstr(e, "message"), "cancel") != NULL);
    json_decref(e);
    wsc_close(a);
    wsc_close(b);
}

/* An analysis over the WebSocket: download percentages, decoding, analysing, done. */
static void check_analysis_events(int port)
{
    int st;
    json_t *q =
        api(port, "POST", "/api/analyze",
            "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\",\"duration\":30}", &st);
    CHECK_INT(st, 202);
    long long id = jint(q, "job_id");
    json_decref(q);
    wsc *w = wsc_open(port, "/ws/progress");
    if (!w)
        return;
    subscribe(w, id); /* the fake yt-dlp waits a second before it "downloads" */
    size_t at = 0;
    json_t *done = wsc_wait(w, &at, "done", id, 60);
    CHECK(done != NULL);
    CHECK_STR(jstr(done, "kind"), "analyze");
    CHECK_STR(jstr(json_object_get(done, "result"), "band"), "Admiral Bob");
    json_decref(done);
    json_t *msgs = wsc_messages(w);
    int pct60 = 0, decoding = 0, analysing = 0, order_ok = 1, seen_analysing = 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (strcmp(jstr(m, "type"), "stage") || jint(m, "job") != id)
            continue;
        const char *stage = jstr(m, "stage");
        if (!strcmp(stage, "download")) {
            pct60 |= fabs(json_number_value(json_object_get(m, "percent")) - 60) < 1e-9;
            order_ok &= !seen_analysing;
        }
        decoding |= !strcmp(stage, "decoding");
        if (!strcmp(stage, "analysing"))
            analysing = seen_analysing = 1;
    }
    CHECK(pct60);
    CHECK(decoding);
    CHECK(analysing);
    CHECK(order_ok);
    json_decref(msgs);
    wsc_close(w);
}

static void check_original(int port)
{
    wsc *w = wsc_open(port, "/ws/progress");
    CHECK(w != NULL);
    if (!w)
        return;
    CHECK(wsc_send(w, "{\"type\":\"generate\",\"prompt\":\"orig\",\"negative_prompt\":\"\","
                      "\"num_steps\":2,\"num_variations\":2,\"model\":\"lcm\",\"width\":64,"
                      "\"height\":64}") > 0);
    size_t at = 0;
    json_t *complete = wsc_wait(w, &at, "complete", 0, 60);
    CHECK(complete != NULL);
    CHECK_INT(jint(complete, "count"), 2);
    CHECK_INT(jint(complete, "progress"), 100);
    CHECK_INT(json_array_size(json_object_get(complete, "images")), 2);
    CHECK_INT(json_array_size(json_object_get(complete, "generation_times")), 2);
    CHECK(json_number_value(json_object_get(complete, "total_time")) > 0);
    json_decref(complete);
    json_t *msgs = wsc_messages(w);
    int n_progress = 0, n_time = 0, bad_progress = 0, time_before_complete = 1;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *t = jstr(m, "type");
        if (!strcmp(t, "progress")) {
            n_progress++;
            double v = (double)jint(m, "variation"), k = (double)jint(m, "step");
            double n = (double)jint(m, "total_variations"), s = (double)jint(m, "total_steps");
            double want = ((v - 1) / n + k / (s * n)) * 100;
            if (want > 99)
                want = 99;
            if (fabs(json_number_value(json_object_get(m, "progress")) - want) > 1e-6)
                bad_progress++;
        }
        if (!strcmp(t, "generation_time")) {
            n_time++;
            CHECK(json_number_value(json_object_get(m, "time")) > 0);
        }
        if (!strcmp(t, "complete"))
            time_before_complete &= n_time == 2;
    }
    CHECK_INT(n_progress, 4); /* 2 steps x 2 variations */
    CHECK_INT(n_time, 2);
    CHECK_INT(bad_progress, 0);
    CHECK(time_before_complete);
    json_decref(msgs);

    /* validation errors come back as the original's error message, naming the field */
    CHECK(wsc_send(w, "{\"type\":\"generate\",\"prompt\":\"x\",\"num_variations\":9}") > 0);
    json_t *e = wsc_wait(w, &at, "error", 0, 5);
    CHECK_STR(jstr(e, "field"), "num_variations");
    json_decref(e);
    wsc_close(w);
}

/* Raw TCP: a handshake, then (after the 101, as RFC 6455 4.1 asks of a client) one frame of
 * our making; 1 when the server then closed the connection within wait_s. */
static int raw_ws(int port, const unsigned char *frame, size_t len, double wait_s)
{
    int st;
    char head[1024];
    int fd = wsr_open(port, "/ws/progress", NULL, &st, head, sizeof head);
    if (fd < 0)
        return -1;
    if (send(fd, frame, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    /* read until the server closes (or wait_s) */
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    int closed = 0;
    double end = now_s() + wait_s;
    while (now_s() < end) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            closed = 1;
            break;
        }
    }
    close(fd);
    return closed;
}

static void check_hostile(int port)
{
    wsc *w = wsc_open(port, "/ws/progress");
    size_t at = 0;
    CHECK(wsc_send(w, "{not json") > 0);
    json_t *e = wsc_wait(w, &at, "error", 0, 5);
    CHECK(e != NULL);
    json_decref(e);
    CHECK(wsc_send(w, "{\"type\":\"dance\"}") > 0);
    e = wsc_wait(w, &at, "error", 0, 5);
    CHECK_STR(jstr(e, "field"), "type");
    json_decref(e);
    CHECK(wsc_send(w, "{\"type\":\"subscribe\",\"jobs\":\"all\"}") > 0);
    e = wsc_wait(w, &at, "error", 0, 5);
    CHECK_STR(jstr(e, "field"), "jobs");
    json_decref(e);
    CHECK(wsc_send(w, "{\"type\":\"ping\"}") > 0);
    json_t *p = wsc_wait(w, &at, "pong", 0, 5);
    CHECK(p != NULL);
    json_decref(p);
    /* A binary frame closes the connection with 1003: check_frames sends it from a raw socket
     * and reads the code. CivetWeb's client is not used for it: about one run in ten its
     * mg_websocket_client_write of a binary frame returned -1 (errno 0, connection open, our
     * pong just read), so the frame never left this process. */
    wsc_close(w);

    /* a message over 64 KiB closes the connection */
    w = wsc_open(port, "/ws/progress");
    size_t big = 70 * 1024;
    char *s = malloc(big + 1);
    memset(s, 'a', big);
    s[big] = 0;
    wsc_send(w, s); /* the server may close before the whole frame is written: not checked */
    free(s);
    CHECK(wsc_wait_closed(w, 5));
    wsc_close(w);

    /* frames with absurd lengths, unmasked frames, reserved opcodes: each connection ends */
    static const unsigned char huge[] = {0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 1,    2,    3,    4};
    static const unsigned char unmasked[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    static const unsigned char reserved[] = {0x83, 0x80, 1, 2, 3, 4};
    CHECK_INT(raw_ws(port, huge, sizeof huge, 5), 1);
    CHECK_INT(raw_ws(port, unmasked, sizeof unmasked, 5), 1);
    CHECK_INT(raw_ws(port, reserved, sizeof reserved, 5), 1);

    /* and the server keeps serving */
    int st;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    CHECK_INT(st, 200);
    json_decref(h);
    w = wsc_open(port, "/ws/progress");
    at = 0;
    CHECK(w != NULL);
    if (w) {
        CHECK(wsc_send(w, "{\"type\":\"ping\"}") > 0);
        p = wsc_wait(w, &at, "pong", 0, 5);
        CHECK(p != NULL);
        json_decref(p);
        wsc_close(w);
    }
}

/* ---- RFC 6455 framing, with frames of our making ---- */

/* A raw client past the handshake and the hello; -1 when refused. */
static int frames_open(int port)
{
    int st;
    char head[1024];
    int fd = wsr_open(port, "/ws/progress", NULL, &st, head, sizeof head);
    CHECK_INT(st, 101);
    if (fd < 0)
        return -1;
    unsigned char buf[256];
    size_t len;
    CHECK_INT(wsr_frame(fd, buf, sizeof buf, &len), 0x81); /* final text frame, unmasked */
    CHECK(len > 15 && len < sizeof buf && !memcmp(buf, "{\"type\":\"hello\"", 15));
    return fd;
}

/* The next server frame is a text message of type type. */
static void expect_text(int fd, const char *type)
{
    unsigned char buf[1024];
    size_t len = 0;
    CHECK_INT(wsr_frame(fd, buf, sizeof buf - 1, &len), 0x81);
    buf[len < sizeof buf - 1 ? len : sizeof buf - 1] = 0;
    json_t *m = json_loads((char *)buf, 0, NULL);
    CHECK_STR(jstr(m, "type"), type);
    json_decref(m);
}

typedef struct bad_frames {
    const char *what;
    int b0[2];         /* first bytes of up to two frames (0: none) */
    const char *pl[2]; /* their payloads */
    size_t len[2];
    int want; /* the close code */
} bad_frames;

static void check_frames(int port)
{
    unsigned char buf[256];
    size_t len;

    /* the handshake's accept key: RFC 6455 1.3's example */
    int st;
    char head[1024];
    int fd = wsr_open(port, "/ws/progress", NULL, &st, head, sizeof head);
    CHECK_INT(st, 101);
    CHECK(strstr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    if (fd >= 0)
        close(fd);

    /* a message in three fragments, a ping between them (answered at once, RFC 6455 5.4), the
     * middle one with a 16-bit length and a UTF-8 character split over two fragments */
    fd = frames_open(port);
    if (fd >= 0) {
        char mid[400];
        int n = snprintf(mid, sizeof mid, "\"ping\",\"pad\":\"%0300d\xc3", 0);
        CHECK_INT(wsr_send(fd, 0x01, 1, "{\"type\":", 8), 0);
        CHECK_INT(wsr_send(fd, 0x89, 1, "abc", 3), 0);
        CHECK_INT(wsr_send(fd, 0x00, 1, mid, (size_t)n), 0);
        CHECK_INT(wsr_send(fd, 0x80, 1, "\xa9\"}", 3), 0);
        CHECK_INT(wsr_frame(fd, buf, sizeof buf, &len), 0x8a); /* pong, the ping's payload */
        CHECK(len == 3 && !memcmp(buf, "abc", 3));
        expect_text(fd, "pong"); /* the reassembled message was handled */
        /* a ping of 125 bytes, the most a control frame carries */
        char p125[125];
        memset(p125, 'p', sizeof p125);
        CHECK_INT(wsr_send(fd, 0x89, 1, p125, sizeof p125), 0);
        CHECK_INT(wsr_frame(fd, buf, sizeof buf, &len), 0x8a);
        CHECK(len == 125 && !memcmp(buf, p125, 125));
        /* the client closes: the server answers with the same code, then ends the connection */
        CHECK_INT(wsr_send(fd, 0x88, 1,
                           "\x03\xe8"
                           "bye",
                           5),
                  0);
        CHECK_INT(wsr_close_code(fd, NULL, 0), 1000);
        CHECK(wsr_eof(fd));
        close(fd);
    }

    /* frames that end the connection, with the code RFC 6455 gives them */
    static char big[40 * 1024];
    memset(big, ' ', sizeof big);
    char p126[126];
    memset(p126, 'p', sizeof p126);
    const bad_frames bad[] = {
        {"control frame over 125 bytes", {0x89}, {p126}, {sizeof p126}, 1002},
        {"fragmented control frame", {0x09}, {"x"}, {1}, 1002},
        {"continuation without a message", {0x80}, {"{}"}, {2}, 1002},
        {"new message inside one", {0x01, 0x81}, {"{", "{}"}, {1, 2}, 1002},
        {"reserved bit", {0xc1}, {"{}"}, {2}, 1002},
        {"reserved data opcode", {0x83}, {"{}"}, {2}, 1002},
        {"reserved control opcode", {0x8b}, {""}, {0}, 1002},
        {"binary message", {0x82}, {"\x01\x02"}, {2}, 1003},
        {"overlong UTF-8", {0x81}, {"{\"type\":\"\xc0\xaf\"}"}, {13}, 1007},
        {"UTF-16 surrogate", {0x81}, {"{\"type\":\"\xed\xa0\x80\"}"}, {14}, 1007},
        {"close code 999", {0x88}, {"\x03\xe7"}, {2}, 1002},
        {"close of one byte", {0x88}, {"\x03"}, {1}, 1002},
        {"close reason not UTF-8", {0x88}, {"\x03\xe8\xff"}, {3}, 1007},
        {"fragments over 64 KiB", {0x01, 0x80}, {big, big}, {sizeof big, sizeof big}, 1009},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fd = frames_open(port);
        if (fd < 0)
            continue;
        for (int k = 0; k < 2 && bad[i].b0[k]; k++)
            wsr_send(fd, bad[i].b0[k], 1, bad[i].pl[k], bad[i].len[k]);
        char reason[128];
        int code = wsr_close_code(fd, reason, sizeof reason);
        if (code != bad[i].want)
            fprintf(stderr, "%s: close %d (%s), expected %d\n", bad[i].what, code, reason,
                    bad[i].want);
        CHECK_INT(code, bad[i].want);
        CHECK(wsr_eof(fd));
        close(fd);
    }

    /* the 64 KiB limit counts a message's fragments, and is checked from the header: the
     * second fragment's header alone closes the connection */
    fd = frames_open(port);
    if (fd >= 0) {
        CHECK_INT(wsr_send(fd, 0x01, 1, big, sizeof big), 0);
        static const unsigned char cont[8] = {0x80, 0x80 | 126, 0xa0, 0x00, 9, 8, 7, 6};
        CHECK_INT(send(fd, cont, sizeof cont, MSG_NOSIGNAL), (long)sizeof cont);
        CHECK_INT(wsr_close_code(fd, NULL, 0), 1009);
        CHECK(wsr_eof(fd));
        close(fd);
    }
}

/* Upgrade requests the server refuses, with the status RFC 6455 4.2.2 and RFC 9110 give. */
static void check_handshake_refusals(int port)
{
    struct {
        const char *what, *req, *header;
        int status;
    } cases[] = {
        {"no upgrade", "GET /ws/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "Upgrade: websocket",
         426},
        {"version 8",
         "GET /ws/progress HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
         "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
         "8\r\n\r\n",
         "Sec-WebSocket-Version: 13", 426},
        {"bad key",
         "GET /ws/progress HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
         "Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "Sec-WebSocket-Key", 400},
        {"POST", "POST /ws/progress HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
         "Allow: GET", 405},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        char resp[4096] = "";
        size_t n = 0;
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            send(fd, cases[i].req, strlen(cases[i].req), MSG_NOSIGNAL) > 0) {
            ssize_t r;
            while (n < sizeof resp - 1 && !strstr(resp, "}") &&
                   (r = read(fd, resp + n, sizeof resp - 1 - n)) > 0) {
                n += (size_t)r;
                resp[n] = 0;
            }
        }
        if (fd >= 0)
            close(fd);
        int status = 0;
        sscanf(resp, "HTTP/1.1 %d", &status);
        if (status != cases[i].status || !strstr(resp, cases[i].header))
            fprintf(stderr, "%s: %s\n", cases[i].what, resp);
        CHECK_INT(status, cases[i].status);
        CHECK(strstr(resp, cases[i].header) != NULL);
    }
}

/* A silent client gets pings (M2P_WS_PING_MS shortens the wait from a minute); one that
 * answers stays, one that stops answering is closed (1001) after the third unanswered ping. */
static void check_idle(const char *root)
{
    char data[600];
    snprintf(data, sizeof data, "%s/idle", root);
    setenv("M2P_WS_PING_MS", "200", 1);
    srv s;
    int started = srv_start(&s, data, NULL) == 0;
    unsetenv("M2P_WS_PING_MS");
    CHECK(started);
    if (!started)
        return;
    int fd = frames_open(s.port);
    if (fd >= 0) {
        unsigned char buf[256];
        size_t len;
        CHECK_INT(wsr_frame(fd, buf, sizeof buf, &len), 0x89); /* a ping, answered */
        CHECK_INT(wsr_send(fd, 0x8a, 1, buf, len), 0);
        int pings = 0, b0;
        while ((b0 = wsr_frame(fd, buf, sizeof buf, &len)) == 0x89)
            pings++;
        CHECK_INT(pings, 3);
        CHECK_INT(b0, 0x88);
        CHECK(b0 == 0x88 && len >= 2 && ((buf[0] << 8) | buf[1]) == 1001);
        CHECK(wsr_eof(fd));
        close(fd);
    }
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
}

static void check_cap_and_token(const char *root)
{
    char data[600];
    snprintf(data, sizeof data, "%s/cap", root);
    srv s;
    const char *extra[] = {"--max-ws", "2", "--token", "tok", NULL};
    if (srv_start(&s, data, extra)) {
        CHECK(!"the capped server did not start");
        return;
    }
    char ebuf[128];
    struct mg_connection *no = mg_connect_websocket_client(
        "127.0.0.1", s.port, 0, ebuf, sizeof ebuf, "/ws/progress", NULL, NULL, NULL, NULL);
    CHECK(no == NULL);
    if (no)
        mg_close_connection(no);
    wsc *a = wsc_open(s.port, "/ws/progress?token=tok");
    wsc *b = wsc_open(s.port, "/ws/progress?token=tok");
    CHECK(a != NULL && b != NULL);
    struct mg_connection *third =
        mg_connect_websocket_client("127.0.0.1", s.port, 0, ebuf, sizeof ebuf,
                                    "/ws/progress?token=tok", NULL, NULL, NULL, NULL);
    CHECK(third == NULL);
    if (third)
        mg_close_connection(third);
    int st;
    json_t *h = api(s.port, "GET", "/api/health?token=tok", NULL, &st);
    CHECK_INT(jint(h, "websockets"), 2);
    json_decref(h);
    wsc_close(a);
    /* a place frees up once a client leaves */
    double end = now_s() + 120; /* fails only on a hang */
    wsc *c = NULL;
    while (!c && now_s() < end) {
        sleep_ms(100);
        c = wsc_open(s.port, "/ws/progress?token=tok");
    }
    CHECK(c != NULL);
    wsc_close(b);
    wsc_close(c);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("server-ws");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    write_fake_ytdlp(t);
    setenv("FAKE_SLEEP", "1", 1);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    double t0 = now_s();
    check_sequence(s.port);
    fprintf(stderr, "sequence: %.1f s\n", now_s() - t0);
    check_midrun(s.port);
    fprintf(stderr, "mid-run: %.1f s\n", now_s() - t0);
    check_analysis_events(s.port);
    fprintf(stderr, "analysis: %.1f s\n", now_s() - t0);
    check_original(s.port);
    fprintf(stderr, "original: %.1f s\n", now_s() - t0);
    check_hostile(s.port);
    fprintf(stderr, "hostile: %.1f s\n", now_s() - t0);
    check_frames(s.port);
    check_handshake_refusals(s.port);
    fprintf(stderr, "frames: %.1f s\n", now_s() - t0);
    /* a server that stops says so to its clients (1001) and closes their connections */
    int fd = frames_open(s.port);
    kill(s.pid, SIGTERM);
    if (fd >= 0) {
        CHECK_INT(wsr_close_code(fd, NULL, 0), 1001);
        CHECK(wsr_eof(fd));
        close(fd);
    }
    CHECK_INT(srv_stop(&s, 0), 0);
    check_cap_and_token(t);
    fprintf(stderr, "cap and token: %.1f s\n", now_s() - t0);
    check_idle(t);
    fprintf(stderr, "idle: %.1f s\n", now_s() - t0);
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
