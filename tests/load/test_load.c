/*
 * test_load.c — the bounded load test (ctest label "load"): 200 WebSocket clients watch one
 * generation while 50 threads make API requests at the same time (generate, job status, models,
 * health, gallery, images). Every request must succeed, every client must see every step of
 * every variation and the final event, and the server's memory must stay within a bound.
 * Prints the figures recorded in BENCHMARKS.md (RSS per WebSocket client, request latency).
 */
#include "../server/harness.h"

#define N_WS 200
#define N_API 50
#define REQS_PER_THREAD 6
#define RSS_BOUND_KB (512 * 1024) /* the whole server, tiny model loaded, 200 clients */

static int port;
static long long watched;

typedef struct api_thread {
    pthread_t t;
    int index, ok, bad;
    double worst_s, total_s;
    int n;
} api_thread;

static long long rss_kb(void)
{
    int st;
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    long long r = jint(h, "rss_kb");
    json_decref(h);
    return r;
}

static void *api_main(void *arg)
{
    api_thread *a = arg;
    for (int k = 0; k < REQS_PER_THREAD; k++) {
        int st = 0, want = 200;
        json_t *j = NULL;
        double t0 = now_s();
        switch ((a->index + k) % 6) {
        case 0:
            j = api(port, "POST", "/api/generate",
                    "{\"prompt\":\"load\",\"steps\":1,\"width\":64,\"height\":64}", &st);
            want = 202;
            break;
        case 1:
            j = api(port, "GET", "/api/models", NULL, &st);
            break;
        case 2:
            j = api(port, "GET", "/api/health", NULL, &st);
            break;
        case 3:
            j = api(port, "GET", "/api/gallery?per_page=10", NULL, &st);
            break;
        case 4: {
            char path[64];
            snprintf(path, sizeof path, "/api/jobs/%lld", watched);
            j = api(port, "GET", path, NULL, &st);
            break;
        }
        default: {
            resp r;
            if (http_req(port, "GET", "/api/images/1.png", NULL, NULL, 0, NULL, &r) == 0)
                st = r.status;
            if (st == 200 && (r.len < 8 || memcmp(r.body, "\x89PNG", 4)))
                st = -2;
            resp_free(&r);
            break;
        }
        }
        double dt = now_s() - t0;
        a->total_s += dt;
        a->n++;
        if (dt > a->worst_s)
            a->worst_s = dt;
        if (st == want && (j || want == 200)) {
            a->ok++;
        } else {
            a->bad++;
            fprintf(stderr, "request kind %d: status %d\n", (a->index + k) % 6, st);
        }
        json_decref(j);
    }
    return NULL;
}

int main(void)
{
    harness_init();
    srv_http_threads = 0; /* the server's own worker count: what a hostile or busy client meets */
    char *t = test_tmpdir("load");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    port = s.port;

    /* warm up: the model loads and the first image exists (/api/images/1.png) */
    int st;
    json_t *j = api(port, "POST", "/api/generate",
                    "{\"prompt\":\"warm\",\"steps\":1,\"width\":64,\"height\":64}", &st);
    json_t *w = wait_job(port, jint(j, "job_id"), 60);
    CHECK_STR(jstr(w, "state"), "done");
    json_decref(j);
    json_decref(w);
    long long rss_base = rss_kb();

    /* a blocker keeps the watched job queued while the clients subscribe */
    j = api(port, "POST", "/api/generate",
            "{\"prompt\":\"block\",\"steps\":50,\"variations\":4,\"width\":256,\"height\":256}",
            &st);
    long long blocker = jint(j, "job_id");
    json_decref(j);
    j = api(port, "POST", "/api/generate",
            "{\"prompt\":\"watched\",\"steps\":8,\"variations\":4,\"width\":64,\"height\":64,"
            "\"seed\":77}",
            &st);
    watched = jint(j, "job_id");
    json_decref(j);

    double t0 = now_s();
    static wsc *clients[N_WS];
    int connected = 0;
    char sub[96];
    snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", watched);
    for (int i = 0; i < N_WS; i++) {
        clients[i] = wsc_open(port, "/ws/progress");
        if (clients[i] && wsc_send(clients[i], sub) > 0)
            connected++;
    }
    double connect_s = now_s() - t0;
    CHECK_INT(connected, N_WS);
    /* every client has its state event before the job starts */
    for (int i = 0; i < N_WS; i++) {
        size_t at = 0;
        json_t *m = clients[i] ? wsc_wait(clients[i], &at, "state", watched, 20) : NULL;
        CHECK(m != NULL);
        json_decref(m);
    }
    long long rss_ws = rss_kb();
    json_t *h = api(port, "GET", "/api/health", NULL, &st);
    CHECK_INT(jint(h, "websockets"), N_WS);
    json_decref(h);

    /* go: the watched job runs while 50 threads make requests */
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", blocker);
    json_decref(api(port, "POST", path, NULL, &st));
    api_thread threads[N_API];
    memset(threads, 0, sizeof threads);
    double ta = now_s();
    for (int i = 0; i < N_API; i++) {
        threads[i].index = i;
        pthread_create(&threads[i].t, NULL, api_main, &threads[i]);
    }
    int ok = 0, bad = 0, n = 0;
    double worst = 0, total = 0;
    for (int i = 0; i < N_API; i++) {
        pthread_join(threads[i].t, NULL);
        ok += threads[i].ok;
        bad += threads[i].bad;
        n += threads[i].n;
        total += threads[i].total_s;
        if (threads[i].worst_s > worst)
            worst = threads[i].worst_s;
    }
    double api_s = now_s() - ta;
    CHECK_INT(bad, 0);
    CHECK_INT(ok, N_API * REQS_PER_THREAD);

    /* every client saw 8 steps x 4 variations and the final event */
    int complete = 0;
    for (int i = 0; i < N_WS; i++) {
        if (!clients[i])
            continue;
        size_t at = 0;
        json_t *d = wsc_wait(clients[i], &at, "done", watched, 120);
        json_t *msgs = wsc_messages(clients[i]);
        int steps = 0, errors = 0;
        size_t k;
        json_t *m;
        json_array_foreach(msgs, k, m)
        {
            steps += !strcmp(jstr(m, "type"), "step") && jint(m, "job") == watched;
            errors += !strcmp(jstr(m, "type"), "error");
        }
        if (d && steps == 32 && errors == 0)
            complete++;
        else
            fprintf(stderr, "client %d: done %s, %d step events, %d errors\n", i, d ? "yes" : "no",
                    steps, errors);
        json_decref(d);
        json_decref(msgs);
    }
    CHECK_INT(complete, N_WS);
    long long rss_peak = rss_kb();
    h = api(port, "GET", "/api/health", NULL, &st);
    json_t *pr = json_object_get(h, "progress");
    long long dropped = jint(pr, "dropped"), delivered = jint(pr, "delivered");
    json_decref(h);
    CHECK_INT(dropped, 0);

    for (int i = 0; i < N_WS; i++)
        wsc_close(clients[i]);
    /* the server notices the closed clients and frees their places */
    double end = now_s() + 20;
    long long left = -1;
    while (now_s() < end) {
        h = api(port, "GET", "/api/health", NULL, &st);
        left = jint(h, "websockets");
        json_decref(h);
        if (left == 0)
            break;
        sleep_ms(100);
    }
    CHECK_INT(left, 0);
    long long rss_after = rss_kb();
    CHECK(rss_peak > 0 && rss_peak < RSS_BOUND_KB);
    CHECK(rss_after > 0 && rss_after < RSS_BOUND_KB);

    printf("load: %d WebSocket clients connected in %.2f s; %d API requests from %d threads in "
           "%.2f s (mean %.1f ms, worst %.1f ms), %d failed\n",
           connected, connect_s, n, N_API, api_s, 1000 * total / (n ? n : 1), 1000 * worst, bad);
    printf("load: server RSS %lld MiB warm, %lld MiB with %d clients (%.0f KiB per client), "
           "%lld MiB at the peak, %lld MiB after they left; %lld events delivered, %lld dropped\n",
           rss_base / 1024, rss_ws / 1024, N_WS, (double)(rss_ws - rss_base) / N_WS,
           rss_peak / 1024, rss_after / 1024, delivered, dropped);

    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
