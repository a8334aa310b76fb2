/*
 * test_store.c — the store suite, run unchanged against both backends: a SQLite data folder and
 * a throwaway PostgreSQL cluster (tests/common/pgtest.c). Migrations (idempotent, two handles,
 * PostgreSQL: four nodes migrating a fresh database at once), the key/value cache (get, put,
 * overwrite, expiry, bad arguments), concurrent writers on one handle and on a handle each, and
 * the job queue: claim with a lease, renew, cancel requests, a late write refused after the
 * lease expired and another worker took the job, recovery up to max attempts, results with PNG
 * bytes, gallery, batches, workers and queue depth; shared audio files (PostgreSQL; chunked,
 * byte for byte through a second handle, limit, replace, trim, delete). SQLite only: WAL mode and a
 * file where the folder should be.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "store/jobs_store.h"
#include "store/migrations.h"
#include "store/store.h"
#include "test.h"

#define N_THREADS 4
#define N_PER_THREAD 150

static long long scalar(m2p_store *s, const char *sql)
{
    int64_t v = -1;
    if (store_scalar(s, sql, &v) != 0)
        fprintf(stderr, "scalar %s: %s\n", sql, m2p_errmsg());
    return v;
}

struct worker {
    m2p_store *shared; /* NULL: open an own connection */
    const char *url;
    int id;
    int errors;
};

static void *writer(void *arg)
{
    struct worker *w = arg;
    m2p_store *s = w->shared;
    if (!s && m2p_store_open(w->url, &s) != 0) {
        fprintf(stderr, "worker %d: open: %s\n", w->id, m2p_errmsg());
        w->errors++;
        return NULL;
    }
    for (int i = 0; i < N_PER_THREAD; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "k%d-%d", w->id, i);
        snprintf(val, sizeof val, "v%d-%d", w->id, i * 7);
        if (store_cache_put(s, w->shared ? "shared" : "own", key, val, 0) != 0) {
            fprintf(stderr, "worker %d: put: %s\n", w->id, m2p_errmsg());
            w->errors++;
        }
        char *got = NULL;
        if (store_cache_get(s, w->shared ? "shared" : "own", key, &got) != 0 || !got ||
            strcmp(got, val) != 0)
            w->errors++;
        free(got);
    }
    if (!w->shared)
        m2p_store_close(s);
    return NULL;
}

static void concurrent(const char *url, m2p_store *shared, const char *ns)
{
    pthread_t th[N_THREADS];
    struct worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.shared = shared, .url = url, .id = i};
        CHECK_INT(pthread_create(&th[i], NULL, writer, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].errors, 0);
    }
    m2p_store *s;
    CHECK_INT(m2p_store_open(url, &s), 0);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM cache WHERE ns = '%s'", ns);
    CHECK_INT(scalar(s, sql), N_THREADS * N_PER_THREAD);
    char *v = NULL;
    CHECK_INT(store_cache_get(s, ns, "k3-149", &v), 0);
    CHECK_STR(v, "v3-1043");
    free(v);
    m2p_store_close(s);
}

static void cache_suite(const char *url, int backend)
{
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(url, &s), 0);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_STR(store_backend_name(s), backend == STORE_POSTGRESQL ? "postgresql" : "sqlite");
    int n_mig;
    const store_migration *mig = store_migrations(backend, &n_mig);
    CHECK(n_mig >= 3);
    CHECK_STR(mig[0].name, "cache: namespaced key/value cache with expiry");
    CHECK_INT(store_schema_version(s), n_mig);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM schema_version"), n_mig);

    /* A second handle on the same database while the first is open: nothing more to migrate. */
    m2p_store *s2 = NULL;
    CHECK_INT(m2p_store_open(url, &s2), 0);
    CHECK_INT(scalar(s2, "SELECT COUNT(*) FROM schema_version"), n_mig);
    CHECK_INT(store_migrate(s2), 0);
    CHECK_INT(scalar(s2, "SELECT COUNT(*) FROM schema_version"), n_mig);

    /* A database a newer build migrated further is left alone, both versions named. */
    char sql[200], want[100];
    snprintf(sql, sizeof sql,
             "INSERT INTO schema_version (version, name, applied_ms) VALUES (%d, 'newer', 0)",
             n_mig + 1);
    CHECK_INT(store_exec(s2, sql), 0);
    CHECK_INT(store_migrate(s2), M2P_EUNSUPPORTED);
    snprintf(want, sizeof want, "schema version %d but this build knows only %d", n_mig + 1, n_mig);
    CHECK(strstr(m2p_errmsg(), want) != NULL);
    CHECK(strstr(m2p_errmsg(), "newer mus2pic") != NULL);
    snprintf(sql, sizeof sql, "DELETE FROM schema_version WHERE version = %d", n_mig + 1);
    CHECK_INT(store_exec(s2, sql), 0);
    CHECK_INT(store_migrate(s2), 0);

    /* get/put */
    char *v = (char *)"junk";
    CHECK_INT(store_cache_get(s, "band_song", "abc", &v), M2P_ENOTFOUND);
    CHECK(v == NULL);
    CHECK(strstr(m2p_errmsg(), "band_song") != NULL);
    CHECK_INT(store_cache_put(s, "band_song", "abc", "{\"band\":\"Queen\"}", 0), 0);
    CHECK_INT(store_cache_get(s2, "band_song", "abc", &v), 0); /* visible to the other handle */
    CHECK_STR(v, "{\"band\":\"Queen\"}");
    free(v);
    CHECK_INT(store_cache_put(s, "band_song", "abc", "second", 0), 0); /* overwrite */
    CHECK_INT(store_cache_get(s, "band_song", "abc", &v), 0);
    CHECK_STR(v, "second");
    free(v);
    CHECK_INT(store_cache_get(s, "genre:musicbrainz", "abc", &v), M2P_ENOTFOUND); /* namespaces */
    CHECK_INT(store_cache_put(s, "ns", "empty", "", 0), 0);
    CHECK_INT(store_cache_get(s, "ns", "empty", &v), 0);
    CHECK_STR(v, "");
    free(v);

    /* expiry: a 1 s entry is there at once and goes (polled: no sleep decides the order; the
     * deadline fails only on a hang); a 1-hour entry stays */
    CHECK_INT(store_cache_put(s, "ttl", "short", "x", 1), 0);
    CHECK_INT(store_cache_put(s, "ttl", "long", "y", 3600), 0);
    CHECK_INT(store_cache_get(s, "ttl", "short", &v), 0);
    CHECK_STR(v, "x");
    free(v);
    int gone = 0;
    for (time_t end = time(NULL) + 120; !gone && time(NULL) < end;) {
        gone = store_cache_get(s, "ttl", "short", &v) == M2P_ENOTFOUND;
        if (!gone) {
            free(v);
            usleep(20 * 1000);
        }
    }
    CHECK(gone);
    CHECK_INT(store_cache_get(s, "ttl", "long", &v), 0);
    CHECK_STR(v, "y");
    free(v);
    /* a later write drops the expired row */
    CHECK_INT(store_cache_put(s, "ttl", "other", "z", 0), 0);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM cache WHERE ns = 'ttl' AND key = 'short'"), 0);

    /* bad arguments */
    CHECK_INT(store_cache_get(s, NULL, "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_get(s, "", "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_get(NULL, "ns", "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_put(s, "ns", "k", NULL, 0), M2P_EINVAL);
    CHECK_INT(store_cache_put(s, "ns", "k", "v", -5), M2P_EINVAL);
    CHECK_INT(store_exec(s, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42)"), 0);
    CHECK_INT(scalar(s, "SELECT x FROM t"), 42);
    CHECK_INT(store_exec(s, "NOT SQL AT ALL"), M2P_EIO);
    CHECK(strstr(m2p_errmsg(), "syntax error") != NULL);
    m2p_store_close(s2);

    /* concurrency: 4 threads on one handle, then 4 threads with a connection each */
    concurrent(url, s, "shared");
    concurrent(url, NULL, "own");
    m2p_store_close(s);
}

static char *make_result(const int64_t *ids, int n, void *ud)
{
    (void)ud;
    char *r = malloc(64);
    if (r)
        snprintf(r, 64, "{\"n\":%d,\"first\":%lld}", n, n ? (long long)ids[0] : 0LL);
    return r;
}

static void jobs_suite(const char *url)
{
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(url, &s), 0);
    if (!s)
        return;
    int64_t a = 0, b = 0, g = 0, id = 0;
    CHECK_INT(store_job_create(s, STORE_JOB_ANALYZE, "{\"source\":\"x\"}", 0, 0, 0, 3, &a), 0);
    CHECK_INT(store_job_create(s, STORE_JOB_ANALYZE, "{\"source\":\"y\"}", 0, 1, 0, 3, &b), 0);
    CHECK_INT(store_job_create(s, STORE_JOB_GENERATE, "{\"model\":\"lcm\",\"prompt\":\"p\"}", 0, 0,
                               a, 3, &g),
              0);
    CHECK(a > 0 && b > a && g > b);
    CHECK_INT(store_job_create(s, STORE_JOB_ANALYZE, "{}", 0, 0, 0, 3, &id), M2P_EBUSY);
    int64_t n = 0;
    CHECK_INT(store_job_count(s, "queued", -1, &n), 0);
    CHECK_INT(n, 3);

    /* claim: oldest of its kind, with a lease; a worker without the model leaves generations */
    store_lease l1 = {.worker = "w1", .lease_ms = 60000};
    store_lease other = {.worker = "w3", .lease_ms = 60000, .models = "sd15,other"};
    store_job j, k;
    CHECK_INT(store_job_claim(s, STORE_JOB_GENERATE, &other, &j), M2P_ENOTFOUND);
    CHECK_INT(store_job_claim(s, STORE_JOB_ANALYZE, &l1, &j), 0);
    CHECK_INT(j.id, a);
    CHECK_STR(j.state, "running");
    CHECK_INT(j.attempts, 1);
    CHECK_STR(j.worker, "w1");
    CHECK(j.lease_until_ms > j.started_ms);
    int cancel = -1;
    CHECK_INT(store_job_renew(s, &j, 60000, &cancel), 0);
    CHECK_INT(cancel, 0);
    CHECK_INT(store_job_request_cancel(s, a), 0);
    CHECK_INT(store_job_renew(s, &j, 60000, &cancel), 0);
    CHECK_INT(cancel, 1);
    CHECK_INT(store_job_request_cancel(s, b), M2P_EINVAL); /* queued, not running */
    CHECK_INT(store_job_finish(s, &j, "{\"ok\":1}"), 0);
    CHECK_INT(store_job_get(s, a, &k), 0);
    CHECK_STR(k.state, "done");
    CHECK_STR(k.result, "{\"ok\":1}");
    store_job_clear(&k);
    CHECK_INT(store_job_finish(s, &j, "{\"twice\":1}"), M2P_ENOTFOUND); /* done once only */
    store_job_clear(&j);

    /* The lease: w1 claims b with a 1 ms lease and "hangs"; recovery requeues it; w2 claims it
     * (attempt 2) and finishes; w1's late write and late failure are refused. */
    store_lease brief = {.worker = "w1", .lease_ms = 1};
    store_lease l2 = {.worker = "w2", .lease_ms = 60000};
    store_job late;
    CHECK_INT(store_job_claim(s, STORE_JOB_ANALYZE, &brief, &late), 0);
    CHECK_INT(late.id, b);
    int requeued = -1, failed = -1;
    /* Recover once the 1 ms lease has run out: wait for the clock to pass it (polled, no sleep
     * decides the order; the bound only catches a hang). Recovering while the lease runs out
     * would race store_jobs_recover's requeue and fail statements, which each read the clock. */
    for (time_t end = time(NULL) + 120; time(NULL) < end;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 > late.lease_until_ms)
            break;
        usleep(1000);
    }
    CHECK_INT(store_jobs_recover(s, 3, NULL, &requeued, &failed), 0);
    CHECK_INT(requeued, 1);
    CHECK_INT(failed, 0);
    CHECK_INT(store_job_fail(s, b, late.attempts, "late failure", 0), M2P_ENOTFOUND);
    CHECK_INT(store_job_claim(s, STORE_JOB_ANALYZE, &l2, &j), 0);
    CHECK_INT(j.id, b);
    CHECK_INT(j.attempts, 2);
    CHECK_INT(store_job_renew(s, &late, 60000, NULL), M2P_ENOTFOUND);
    CHECK_INT(store_job_finish(s, &j, "{\"by\":\"w2\"}"), 0);
    CHECK_INT(store_job_finish(s, &late, "{\"by\":\"w1\"}"), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "not written") != NULL);
    CHECK_INT(store_job_get(s, b, &k), 0);
    CHECK_STR(k.result, "{\"by\":\"w2\"}");
    CHECK_STR(k.worker, "w2");
    CHECK_INT(k.attempts, 2);
    store_job_clear(&k);
    store_job_clear(&j);
    store_job_clear(&late);

    /* Generation with results, written only while the lease holds. */
    store_lease l3 = {.worker = "w3", .lease_ms = 60000, .models = "sd15,lcm"};
    CHECK_INT(store_job_claim(s, STORE_JOB_GENERATE, &l3, &j), 0);
    CHECK_INT(j.id, g);
    uint8_t png1[300], png2[5] = {0x89, 'P', 0, 'N', 'G'};
    for (int i = 0; i < 300; i++)
        png1[i] = (uint8_t)(i * 7);
    store_result r[2] = {
        {.variation = 0,
         .seed = 42,
         .width = 64,
         .height = 64,
         .seconds = 1.5,
         .png = png1,
         .png_len = sizeof png1},
        {.variation = 1,
         .seed = 43,
         .width = 64,
         .height = 64,
         .seconds = 1.25,
         .png = png2,
         .png_len = sizeof png2},
    };
    store_job stale = j;
    stale.attempts = 7; /* a claim that is not the current one */
    CHECK_INT(
        store_job_finish_with_results(s, &stale, "{\"prompt\":\"p\"}", r, 2, make_result, NULL),
        M2P_ENOTFOUND);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM results"), 0); /* nothing written */
    CHECK_INT(store_job_finish_with_results(s, &j, "{\"prompt\":\"p\"}", r, 2, make_result, NULL),
              0);
    int64_t *ids = NULL;
    int nids = 0;
    CHECK_INT(store_results_of_job(s, g, &ids, &nids), 0);
    CHECK_INT(nids, 2);
    uint8_t *png = NULL;
    size_t len = 0;
    if (nids == 2) {
        CHECK_INT(store_result_png(s, ids[0], &png, &len), 0);
        CHECK_INT(len, sizeof png1);
        CHECK(png && memcmp(png, png1, sizeof png1) == 0);
        free(png);
        CHECK_INT(store_result_png(s, ids[1], &png, &len), 0);
        CHECK_INT(len, sizeof png2);
        CHECK(png && memcmp(png, png2, sizeof png2) == 0); /* a zero byte survives */
        free(png);
        char expect[64];
        snprintf(expect, sizeof expect, "{\"n\":2,\"first\":%lld}", (long long)ids[0]);
        CHECK_INT(store_job_get(s, g, &k), 0);
        CHECK_STR(k.result, expect);
        store_job_clear(&k);
    }
    char *json = NULL;
    int64_t total = 0;
    CHECK_INT(store_gallery(s, 0, 10, &json, &total), 0);
    CHECK_INT(total, 2);
    CHECK(json && strstr(json, "\"seed\":43") && strstr(json, "\"meta\":{\"prompt\":\"p\"}"));
    if (json && nids == 2) { /* both backends write the same entries (store_gallery_add) */
        char want[400];
        snprintf(want, sizeof want,
                 "[{\"id\":%lld,\"job_id\":%lld,\"variation\":1,\"seed\":43,\"width\":64,"
                 "\"height\":64,\"seconds\":1.250,\"created_ms\":",
                 (long long)ids[1], (long long)g);
        CHECK(strncmp(json, want, strlen(want)) == 0);
        snprintf(want, sizeof want,
                 "\"url\":\"/api/images/%lld.png\",\"meta\":{\"prompt\":\"p\"}},{\"id\":%lld,",
                 (long long)ids[1], (long long)ids[0]);
        CHECK(strstr(json, want) != NULL);
        CHECK(json[strlen(json) - 1] == ']');
    }
    free(json);
    /* what is not there is named, the same way by both backends */
    uint8_t *none = NULL;
    CHECK_INT(store_result_png(s, 999999, &none, &len), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "image 999999 does not exist") != NULL);
    char *no_params = NULL;
    CHECK_INT(store_batch_get(s, 999999, &no_params, NULL), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "batch 999999 does not exist") != NULL);
    CHECK_INT(store_job_get(s, 999999, &k), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "job 999999 does not exist") != NULL);
    store_job last;
    CHECK_INT(store_last_generation(s, "lcm", &last), 0);
    CHECK_INT(last.id, g);
    store_job_clear(&last);
    CHECK_INT(store_last_generation(s, "sd15", &last), M2P_ENOTFOUND);
    store_job_clear(&j);
    if (nids == 2)
        CHECK_INT(store_result_delete(s, ids[1]), 0);
    free(ids);

    /* Recovery: a worker that restarts gets its own running jobs back at once; after max
     * attempts a job fails with the reason. */
    int64_t c = 0;
    CHECK_INT(store_job_create(s, STORE_JOB_ANALYZE, "{\"source\":\"z\"}", 0, 0, 0, 0, &c), 0);
    for (int attempt = 1; attempt <= 2; attempt++) {
        CHECK_INT(store_job_claim(s, STORE_JOB_ANALYZE, &l1, &j), 0);
        CHECK_INT(j.attempts, attempt);
        store_job_clear(&j);
        CHECK_INT(store_jobs_recover(s, 2, "other", &requeued, &failed), 0);
        CHECK_INT(requeued + failed, 0); /* w1's lease holds and it is not "other" */
        CHECK_INT(store_jobs_recover(s, 2, "w1", &requeued, &failed), 0);
        CHECK_INT(requeued, attempt == 1);
        CHECK_INT(failed, attempt == 2);
    }
    CHECK_INT(store_job_get(s, c, &k), 0);
    CHECK_STR(k.state, "failed");
    CHECK(k.error && strstr(k.error, "w1") && strstr(k.error, "2 attempts"));
    store_job_clear(&k);

    /* Hand back (a stopping worker), cancel of a queued job, delete. */
    int64_t d = 0;
    CHECK_INT(store_job_create(s, STORE_JOB_ANALYZE, "{}", 0, 0, 0, 0, &d), 0);
    CHECK_INT(store_job_claim(s, STORE_JOB_ANALYZE, &l1, &j), 0);
    CHECK_INT(store_job_release(s, &j), 0);
    CHECK_INT(store_job_release(s, &j), M2P_ENOTFOUND);
    CHECK_INT(store_job_get(s, d, &k), 0);
    CHECK_STR(k.state, "queued");
    CHECK_INT(k.attempts, 1);
    store_job_clear(&k);
    store_job_clear(&j);
    CHECK_INT(store_job_fail(s, d, 0, "canceled by request", 1), 0);
    CHECK_INT(store_job_get(s, d, &k), 0);
    CHECK_STR(k.state, "canceled");
    store_job_clear(&k);
    CHECK_INT(store_job_delete(s, d), 0);
    CHECK_INT(store_job_delete(s, d), M2P_ENOTFOUND);

    /* Batches, workers, queue depth. */
    int64_t bt = 0, bt2 = 0;
    CHECK_INT(store_batch_create(s, "{\"urls\":[]}", &bt), 0);
    CHECK_INT(store_batch_create(s, "{\"urls\":[1]}", &bt2), 0);
    char *params = NULL;
    int64_t created = 0;
    CHECK_INT(store_batch_get(s, bt, &params, &created), 0);
    CHECK_STR(params, "{\"urls\":[]}");
    CHECK(created > 0);
    free(params);
    CHECK_INT(store_batches_list(s, 0, 10, &ids, &nids), 0);
    CHECK_INT(nids, 2);
    if (nids == 2)
        CHECK_INT(ids[0], bt2);
    free(ids);
    store_worker w = {.pid = 123, .started_ms = 1000, .job = a};
    snprintf(w.name, sizeof w.name, "gpu-1");
    snprintf(w.host, sizeof w.host, "box");
    snprintf(w.kinds, sizeof w.kinds, "generate");
    CHECK_INT(store_worker_beat(s, &w), 0);
    w.job = 0;
    CHECK_INT(store_worker_beat(s, &w), 0); /* the same name again: one row */
    store_worker *ws = NULL;
    int nw = 0;
    CHECK_INT(store_workers_list(s, 0, &ws, &nw), 0);
    CHECK_INT(nw, 1);
    if (nw == 1) {
        CHECK_STR(ws[0].name, "gpu-1");
        CHECK_INT(ws[0].pid, 123);
        CHECK_INT(ws[0].job, 0);
    }
    free(ws);
    CHECK_INT(store_queue_depth(s, &json), 0);
    CHECK_STR(json, "{\"analyze\":{\"queued\":0,\"running\":0,\"done\":2,\"failed\":1,\"canceled\":"
                    "0},\"generate\":{\"queued\":0,\"running\":0,\"done\":1,\"failed\":0,"
                    "\"canceled\":0}}");
    free(json);
    m2p_store_close(s);
}

/* Four nodes open a fresh database at once: one migrates, the others wait and find it done. */
static void *open_close(void *arg)
{
    m2p_store *s = NULL;
    intptr_t rc = m2p_store_open((const char *)arg, &s);
    if (rc)
        fprintf(stderr, "open: %s\n", m2p_errmsg());
    m2p_store_close(s);
    return (void *)rc;
}

static void concurrent_migrations(const char *url, int backend)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_INT(pthread_create(&th[i], NULL, open_close, (void *)url), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        pthread_join(th[i], &rc);
        CHECK_INT((intptr_t)rc, 0);
    }
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(url, &s), 0);
    int n;
    store_migrations(backend, &n);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM schema_version"), n);
    m2p_store_close(s);
}

/* Shared audio files: a 2.5-chunk file goes in and comes back byte for byte; a limit, a key
 * that is not stored, a bad key and deletion. SQLite has none (EUNSUPPORTED). */
static void audio_suite(const char *url, int backend, const char *tmp)
{
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(url, &s), 0);
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/audio-in.bin", tmp);
    snprintf(out, sizeof out, "%s/audio-out.bin", tmp);
    size_t n = STORE_AUDIO_CHUNK * 5 / 2 + 7;
    uint8_t *data = malloc(n);
    CHECK(data != NULL);
    if (!data) {
        m2p_store_close(s);
        return;
    }
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        data[i] = (uint8_t)(x >> 24);
    }
    FILE *f = fopen(in, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n);
    if (f)
        fclose(f);
    int64_t size = -1;
    if (backend == STORE_SQLITE) {
        CHECK_INT(store_audio_put(s, "up-1", in, 0, &size), M2P_EUNSUPPORTED);
        CHECK(strstr(m2p_errmsg(), "PostgreSQL") != NULL);
        free(data);
        m2p_store_close(s);
        return;
    }
    CHECK_INT(store_audio_put(s, "up-1", in, (int64_t)n, &size), 0);
    CHECK_INT(size, (long long)n);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_chunks WHERE key = 'up-1'"), 3);
    /* a second handle (another node) reads it back */
    m2p_store *s2 = NULL;
    CHECK_INT(m2p_store_open(url, &s2), 0);
    size = -1;
    CHECK_INT(store_audio_get(s2, "up-1", out, &size), 0);
    CHECK_INT(size, (long long)n);
    size_t got_n = 0;
    char *got = test_read_file(out, &got_n);
    CHECK(got && got_n == n && !memcmp(got, data, n));
    free(got);
    /* over the limit: refused, nothing stored */
    CHECK_INT(store_audio_put(s, "up-2", in, (int64_t)n - 1, &size), M2P_ETOOBIG);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_chunks WHERE key = 'up-2'"), 0);
    CHECK_INT(store_audio_get(s2, "up-2", out, &size), M2P_ENOTFOUND);
    CHECK(access(out, F_OK) == 0); /* the earlier copy is untouched */
    CHECK_INT(store_audio_put(s, "../x", in, 0, &size), M2P_EINVAL);
    CHECK_INT(store_audio_put(s, "up-3", "/nonexistent/file", 0, &size), M2P_EIO);
    /* putting a key again replaces it */
    f = fopen(in, "wb");
    CHECK(f && fwrite("short", 1, 5, f) == 5);
    if (f)
        fclose(f);
    CHECK_INT(store_audio_put(s, "up-1", in, 0, &size), 0);
    CHECK_INT(size, 5);
    CHECK_INT(store_audio_get(s2, "up-1", out, &size), 0);
    got = test_read_file(out, &got_n);
    CHECK(got && got_n == 5 && !memcmp(got, "short", 5));
    free(got);
    /* trim: the oldest of a prefix go until the rest fit; other prefixes are not touched */
    int removed = -1;
    CHECK_INT(store_audio_put(s, "dl-a", in, 0, &size), 0);
    CHECK_INT(store_audio_put(s, "dl-b", in, 0, &size), 0);
    CHECK_INT(store_audio_put(s, "dl-c", in, 0, &size), 0);
    CHECK_INT(store_audio_trim(s, "dl-", 10, &removed), 0);
    CHECK_INT(removed, 1);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_files WHERE key LIKE 'dl-%'"), 2);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_chunks WHERE key LIKE 'dl-%'"), 2);
    CHECK_INT(store_audio_trim(s, "dl-", 0, &removed), 0);
    CHECK_INT(removed, 2);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_files WHERE key = 'up-1'"), 1);
    CHECK_INT(store_audio_delete(s2, "up-1"), 0);
    CHECK_INT(store_audio_delete(s2, "up-1"), 0);
    CHECK_INT(store_audio_get(s, "up-1", out, &size), M2P_ENOTFOUND);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM audio_chunks"), 0);
    free(data);
    m2p_store_close(s2);
    m2p_store_close(s);
}

int main(void)
{
    char *tmp = test_tmpdir("store");
    CHECK(tmp != NULL);

    /* SQLite: a data folder (missing parents are created) and a sqlite:FILE URL. */
    char dir[512], path[600], url[700];
    snprintf(dir, sizeof dir, "%s/a/b/data", tmp);
    cache_suite(dir, STORE_SQLITE);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/mus2pic.db", dir);
    CHECK(access(path, F_OK) == 0);
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(dir, &s), 0);
    int64_t wal = 0;
    CHECK_INT(store_scalar(s, "SELECT journal_mode = 'wal' FROM pragma_journal_mode", &wal), 0);
    CHECK_INT(wal, 1);
    CHECK_STR(store_where(s), path);
    m2p_store_close(s);
    snprintf(url, sizeof url, "sqlite:%s/jobs/q.db", tmp);
    jobs_suite(url);
    snprintf(path, sizeof path, "%s/jobs/q.db", tmp);
    CHECK(access(path, F_OK) == 0);
    snprintf(url, sizeof url, "sqlite:%s/fresh.db", tmp);
    concurrent_migrations(url, STORE_SQLITE);
    audio_suite(url, STORE_SQLITE, tmp);

    s = (m2p_store *)1;
    CHECK_INT(m2p_store_open("", &s), M2P_EINVAL); /* *out is NULL after a failure */
    CHECK(s == NULL);
    snprintf(path, sizeof path, "%s/afile", tmp);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    m2p_store *bad = (m2p_store *)1;
    CHECK_INT(m2p_store_open(path, &bad), M2P_EIO); /* a file where the folder should be */
    CHECK(bad == NULL);
    CHECK(strstr(m2p_errmsg(), "afile") != NULL);
    m2p_store_close(NULL);

    /* PostgreSQL: the same suites on a throwaway cluster, a database each. */
    pgtest pg;
    CHECK_INT(pgtest_start(&pg), 0);
    char db[700];
    CHECK_INT(pgtest_createdb(&pg, "cache", db, sizeof db), 0);
    cache_suite(db, STORE_POSTGRESQL);
    CHECK_INT(pgtest_createdb(&pg, "jobs", db, sizeof db), 0);
    jobs_suite(db);
    CHECK_INT(pgtest_createdb(&pg, "fresh", db, sizeof db), 0);
    concurrent_migrations(db, STORE_POSTGRESQL);
    audio_suite(db, STORE_POSTGRESQL, tmp);
    /* the password never shows in messages; a server that is not there is a clear error */
    char nowhere[700];
    snprintf(nowhere, sizeof nowhere, "postgresql://u:secret@/x?host=%s/none&port=%d", pg.dir,
             pg.port);
    bad = (m2p_store *)1;
    CHECK_INT(m2p_store_open(nowhere, &bad), M2P_EBUSY);
    CHECK(bad == NULL);
    CHECK(strstr(m2p_errmsg(), "cannot connect") != NULL);
    CHECK(strstr(m2p_errmsg(), "secret") == NULL);
    pgtest_stop(&pg);

    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
