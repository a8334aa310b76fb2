/*
 * bench_queue.c — the job queue across machines (numbers go to BENCHMARKS.md, "Many machines").
 *
 *   overhead URL [--jobs N] [--threads T]   claim (which takes the lease) + result write (which
 *                                           checks it) per no-op job, T claimers with a
 *                                           connection each (target >= 200/s)
 *   workers URL --model DIR [--jobs N] [--workers K]
 *                                           tiny-model generations per second with K `mus2pic
 *                                           worker` processes (model load excluded: one warm-up
 *                                           job per worker first)
 *   latency URL --model DIR [--jobs N]      a worker's step event -> a WebSocket client of a web
 *                                           node (`serve --no-worker`): p50/p99/max in ms, from
 *                                           the event's created_ms to the client's receipt
 *   audio URL [--mb M]                      an upload shared through the store: put (web node)
 *                                           and get (worker) of an M MiB file (default 100, the
 *                                           default upload limit) in MB/s, and the process's
 *                                           peak RSS growth (the copy streams in 1 MiB chunks)
 * URL: a store URL (postgresql://... or sqlite:FILE); use a fresh database, the jobs table is
 * expected to be empty. The mus2pic binary is $M2P_BIN or ./mus2pic.
 */
#define _GNU_SOURCE
#include <civetweb.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mus2pic.h"
#include "store/jobs_store.h"
#include "store/store.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static const char *url;

static char *noop_result(const int64_t *ids, int n, void *ud)
{
    (void)ids;
    (void)n;
    (void)ud;
    return strdup("{}");
}

typedef struct claimer {
    int done, errors;
} claimer;

static void *claim_loop(void *arg)
{
    claimer *c = arg;
    m2p_store *s = NULL;
    if (m2p_store_open(url, &s)) {
        fprintf(stderr, "open: %s\n", m2p_errmsg());
        c->errors++;
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof name, "bench-%p", (void *)c);
    store_lease l = {.worker = name, .lease_ms = 30000};
    for (;;) {
        store_job j;
        int rc = store_job_claim(s, STORE_JOB_GENERATE, &l, &j);
        if (rc == M2P_ENOTFOUND)
            break;
        if (rc) {
            fprintf(stderr, "claim: %s\n", m2p_errmsg());
            c->errors++;
            break;
        }
        /* The claim takes the lease; renewals are periodic (every lease / 3), not per job. */
        uint8_t png[64] = {0x89, 'P', 'N', 'G'};
        store_result r = {.width = 1, .height = 1, .png = png, .png_len = sizeof png};
        if (store_job_finish_with_results(s, &j, "{}", &r, 1, noop_result, NULL)) {
            fprintf(stderr, "finish: %s\n", m2p_errmsg());
            c->errors++;
        } else {
            c->done++;
        }
        store_job_clear(&j);
    }
    m2p_store_close(s);
    return NULL;
}

static int overhead(int n, int threads)
{
    m2p_store *s = NULL;
    if (m2p_store_open(url, &s)) {
        fprintf(stderr, "bench_queue: %s\n", m2p_errmsg());
        return 1;
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int64_t id;
        if (store_job_create(s, STORE_JOB_GENERATE, "{\"model\":\"noop\"}", 0, 0, 0, 0, &id)) {
            fprintf(stderr, "create: %s\n", m2p_errmsg());
            return 1;
        }
    }
    double t1 = now();
    pthread_t th[16];
    claimer c[16] = {{0}};
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, claim_loop, &c[i]);
    int done = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        done += c[i].done;
        errors += c[i].errors;
    }
    double t2 = now();
    int64_t left = -1;
    store_job_count(s, "done", -1, &left);
    printf("%-10s submit %6.0f jobs/s   claim+lease+result %6.0f jobs/s (%d claimer%s, %d jobs, "
           "%d errors, %lld done in the table)\n",
           store_backend_name(s), n / (t1 - t0), done / (t2 - t1), threads, threads > 1 ? "s" : "",
           done, errors, (long long)left);
    m2p_store_close(s);
    return errors != 0;
}

static pid_t spawn(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(1, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static pid_t start_worker(const char *bin, const char *model, int i)
{
    char name[32], mspec[1100], log[64], data[64];
    snprintf(name, sizeof name, "bench-w%d", i);
    snprintf(mspec, sizeof mspec, "lcm=%s", model);
    snprintf(log, sizeof log, "/tmp/bench-queue-w%d.log", i);
    snprintf(data, sizeof data, "/tmp/bench-queue-w%d", i);
    const char *argv[] = {
        bin,       "worker",   "--store", url,  "--model",           mspec, "--name", name,
        "--kinds", "generate", "--data",  data, "--compute-threads", "1",   NULL};
    return spawn(argv, log);
}

static int wait_done(m2p_store *s, int64_t want, double timeout_s)
{
    double end = now() + timeout_s;
    while (now() < end) {
        int64_t n = 0;
        if (store_job_count(s, "done", -1, &n) == 0 && n >= want)
            return 0;
        usleep(20 * 1000);
    }
    return -1;
}

static int submit_tiny(m2p_store *s, int n, int steps, int64_t *last)
{
    char params[256];
    for (int i = 0; i < n; i++) {
        snprintf(params, sizeof params,
                 "{\"prompt\":\"bench %d\",\"model\":\"lcm\",\"steps\":%d,\"width\":64,"
                 "\"height\":64,\"variations\":1,\"seed\":%d,\"guidance\":8.5}",
                 i, steps, i);
        if (store_job_create(s, STORE_JOB_GENERATE, params, 0, 0, 0, 0, last)) {
            fprintf(stderr, "create: %s\n", m2p_errmsg());
            return -1;
        }
    }
    return 0;
}

static int workers(const char *bin, const char *model, int n, int k)
{
    m2p_store *s = NULL;
    if (m2p_store_open(url, &s)) {
        fprintf(stderr, "bench_queue: %s\n", m2p_errmsg());
        return 1;
    }
    int64_t base = 0, last = 0;
    store_job_count(s, "done", -1, &base);
    pid_t pid[8];
    for (int i = 0; i < k; i++)
        pid[i] = start_worker(bin, model, i);
    /* warm-up: one job per worker (loads the model) */
    int rc = submit_tiny(s, k, 2, &last) || wait_done(s, base + k, 120);
    double t0 = now();
    rc = rc || submit_tiny(s, n, 2, &last) || wait_done(s, base + k + n, 600);
    double t1 = now();
    if (!rc)
        printf("%d worker%s: %d tiny generations (64x64, 2 steps) in %.2f s = %.2f jobs/s\n", k,
               k > 1 ? "s" : "", n, t1 - t0, n / (t1 - t0));
    for (int i = 0; i < k; i++) {
        kill(pid[i], SIGTERM);
        waitpid(pid[i], NULL, 0);
    }
    m2p_store_close(s);
    return rc;
}

/* latency: step events received by a WebSocket client, keyed by (job, variation, step) */
typedef struct rx {
    pthread_mutex_t m;
    json_t *got; /* array of {job, variation, step, at_ms} */
} rx;

static int on_data(struct mg_connection *c, int bits, char *data, size_t len, void *ud)
{
    (void)c;
    rx *r = ud;
    double at = wall_ms();
    if ((bits & 0xf) != MG_WEBSOCKET_OPCODE_TEXT)
        return 1;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && !strcmp(type, "step")) {
        json_object_set_new(j, "at_ms", json_real(at));
        pthread_mutex_lock(&r->m);
        json_array_append(r->got, j);
        pthread_mutex_unlock(&r->m);
    }
    json_decref(j);
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int latency(const char *bin, const char *model, int n)
{
    m2p_store *s = NULL;
    if (m2p_store_open(url, &s)) {
        fprintf(stderr, "bench_queue: %s\n", m2p_errmsg());
        return 1;
    }
    int port = 20000 + getpid() % 20000;
    char ports[16], mspec[1100];
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(mspec, sizeof mspec, "lcm=%s", model);
    const char *web_argv[] = {bin,
                              "serve",
                              "--port",
                              ports,
                              "--store",
                              url,
                              "--no-worker",
                              "--model",
                              mspec,
                              "--data",
                              "/tmp/bench-queue-web",
                              "--offline",
                              NULL};
    pid_t web = spawn(web_argv, "/tmp/bench-queue-web.log");
    pid_t w = start_worker(bin, model, 0);
    int64_t base = 0, last = 0;
    store_job_count(s, "done", -1, &base);
    int rc = submit_tiny(s, 1, 2, &last) || wait_done(s, base + 1, 120); /* warm-up */
    mg_init_library(0);
    rx r = {.got = json_array()};
    pthread_mutex_init(&r.m, NULL);
    struct mg_connection *c = NULL;
    for (int tries = 0; !c && tries < 100; tries++) {
        char ebuf[256];
        c = mg_connect_websocket_client("127.0.0.1", port, 0, ebuf, sizeof ebuf, "/ws/progress",
                                        NULL, on_data, NULL, &r);
        if (!c)
            usleep(100 * 1000);
    }
    if (!c) {
        fprintf(stderr, "bench_queue: no web node on port %d\n", port);
        rc = 1;
    }
    for (int i = 0; !rc && i < n; i++) {
        rc = submit_tiny(s, 1, 50, &last);
        char msg[96];
        snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", (long long)last);
        mg_websocket_client_write(c, MG_WEBSOCKET_OPCODE_TEXT, msg, strlen(msg));
        rc = rc || wait_done(s, base + 2 + i, 120);
    }
    usleep(300 * 1000); /* the last events are in flight */
    /* the worker's time of each step event: events.created_ms */
    double *lat = calloc(json_array_size(r.got) + 1, sizeof *lat);
    int nl = 0;
    pthread_mutex_lock(&r.m);
    for (size_t i = 0; lat && i < json_array_size(r.got); i++) {
        json_t *e = json_array_get(r.got, i);
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT created_ms FROM events WHERE job_id = %lld AND event LIKE "
                 "'%%\"type\":\"step\",\"job\":%lld,\"variation\":%lld,%%\"step\":%lld,%%'",
                 (long long)json_integer_value(json_object_get(e, "job")),
                 (long long)json_integer_value(json_object_get(e, "job")),
                 (long long)json_integer_value(json_object_get(e, "variation")),
                 (long long)json_integer_value(json_object_get(e, "step")));
        int64_t created = 0;
        if (store_scalar(s, sql, &created) == 0)
            lat[nl++] = json_real_value(json_object_get(e, "at_ms")) - (double)created;
    }
    pthread_mutex_unlock(&r.m);
    if (nl > 0) {
        qsort(lat, (size_t)nl, sizeof *lat, cmp_double);
        printf("step -> WebSocket on the web node: %d events, p50 %.1f ms, p99 %.1f ms, max %.1f "
               "ms (created_ms has 1 ms resolution)\n",
               nl, lat[nl / 2], lat[(int)(nl * 0.99)], lat[nl - 1]);
    } else {
        printf("no step events received\n");
        rc = 1;
    }
    free(lat);
    if (c)
        mg_close_connection(c);
    kill(w, SIGTERM);
    kill(web, SIGTERM);
    waitpid(w, NULL, 0);
    waitpid(web, NULL, 0);
    json_decref(r.got);
    m2p_store_close(s);
    return rc;
}

/* Peak resident set (VmHWM) in KiB, -1 when unknown. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int audio(int mb)
{
    m2p_store *s = NULL;
    if (m2p_store_open(url, &s)) {
        fprintf(stderr, "bench_queue: %s\n", m2p_errmsg());
        return 1;
    }
    char in[] = "/tmp/m2p-bench-audio-XXXXXX";
    int fd = mkstemp(in);
    if (fd < 0) {
        m2p_store_close(s);
        return 1;
    }
    /* incompressible bytes, as audio is */
    uint8_t buf[1 << 16];
    uint64_t x = 88172645463325252ull;
    for (int64_t left = (int64_t)mb << 20; left > 0; left -= (int64_t)sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            close(fd);
            unlink(in);
            m2p_store_close(s);
            return 1;
        }
    }
    close(fd);
    char out[64];
    snprintf(out, sizeof out, "%s.out", in);
    long rss0 = peak_rss_kb();
    int64_t size = 0;
    double t0 = now();
    int rc = store_audio_put(s, "up-bench", in, 0, &size);
    double t1 = now();
    if (!rc)
        rc = store_audio_get(s, "up-bench", out, &size);
    double t2 = now();
    long rss1 = peak_rss_kb();
    if (rc)
        fprintf(stderr, "bench_queue: %s\n", m2p_errmsg());
    else
        printf("audio %s: %d MiB put %.0f MB/s (%.2f s), get %.0f MB/s (%.2f s), peak RSS "
               "+%ld KiB\n",
               store_backend_name(s), mb, (double)size / 1e6 / (t1 - t0), t1 - t0,
               (double)size / 1e6 / (t2 - t1), t2 - t1, rss1 - rss0);
    store_audio_delete(s, "up-bench");
    unlink(in);
    unlink(out);
    m2p_store_close(s);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_queue overhead|workers|latency|audio URL [--jobs N] [--threads T]"
                        " [--workers K] [--model DIR] [--mb M]\n");
        return 2;
    }
    url = argv[2];
    int n = 0, threads = 1, k = 1, mb = 100;
    const char *model = NULL, *bin = getenv("M2P_BIN") ? getenv("M2P_BIN") : "./mus2pic";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--jobs"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers"))
            k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--mb"))
            mb = atoi(argv[i + 1]);
    }
    if (threads < 1 || threads > 16 || k < 1 || k > 8) {
        fprintf(stderr, "bench_queue: --threads 1..16, --workers 1..8\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "overhead"))
        return overhead(n > 0 ? n : 2000, threads);
    if (!strcmp(argv[1], "audio"))
        return audio(mb > 0 && mb <= 4096 ? mb : 100);
    if (!model) {
        fprintf(stderr, "bench_queue: %s needs --model DIR (the tiny fixture model)\n", argv[1]);
        return 2;
    }
    if (!strcmp(argv[1], "workers"))
        return workers(bin, model, n > 0 ? n : 30, k);
    if (!strcmp(argv[1], "latency"))
        return latency(bin, model, n > 0 ? n : 5);
    fprintf(stderr, "bench_queue: unknown mode %s\n", argv[1]);
    return 2;
}
