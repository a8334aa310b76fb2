/*
 * test_records.c — src/jobs/records.c, the rows the server reads and writes through the queue
 * handle, against the store's contract (src/store/jobs_store.h): a queue that runs nothing
 * (run_jobs 0) over a fresh SQLite folder. A job's record carries its row (kind, state, params,
 * error); jobs_wait hands out a finished one and cleans up after a timeout; batches come back
 * in batch_index order; an upload answers again only while its job is queued, running or done;
 * a result written by a worker is read as the same PNG bytes, listed in the gallery, named as
 * the model's last generation and deleted; shared uploads need a PostgreSQL store URL.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/records.h"
#include "store/jobs_store.h"
#include "test.h"

static char *one_result(const int64_t *ids, int n, void *ud)
{
    (void)ud;
    char *s = malloc(64);
    if (s)
        snprintf(s, 64, "{\"images\":[%lld],\"total_time\":0.5}", n ? (long long)ids[0] : 0LL);
    return s;
}

static void check_jobs(jobs *q)
{
    int64_t id = 0, n = -1;
    CHECK_INT(jobs_submit(q, JOBS_ANALYZE, "{\"source\":\"https://example.com/a\"}", 0, 0, 0, &id),
              0);
    jobs_record r;
    CHECK_INT(jobs_job_get(q, id, &r), 0);
    CHECK_INT(r.id, id);
    CHECK_INT(r.kind, JOBS_ANALYZE);
    CHECK_STR(r.state, "queued");
    CHECK_STR(r.params ? r.params : "", "{\"source\":\"https://example.com/a\"}");
    CHECK(r.result == NULL && r.error == NULL);
    CHECK(r.created_ms > 0 && r.finished_ms == 0);

    /* the API's shapes of the record */
    char *js = jobs_job_json(&r);
    json_t *o = js ? json_loads(js, 0, NULL) : NULL;
    CHECK_INT(json_integer_value(json_object_get(o, "id")), id);
    CHECK_STR(json_string_value(json_object_get(o, "kind")), "analyze");
    CHECK_STR(json_string_value(json_object_get(json_object_get(o, "params"), "source")),
              "https://example.com/a");
    CHECK(json_is_null(json_object_get(o, "result")));
    json_decref(o);
    free(js);
    js = jobs_state_event(&r);
    o = js ? json_loads(js, 0, NULL) : NULL;
    CHECK_STR(json_string_value(json_object_get(o, "type")), "state");
    CHECK_INT(json_integer_value(json_object_get(o, "job")), id);
    CHECK_STR(json_string_value(json_object_get(json_object_get(o, "state"), "state")), "queued");
    json_decref(o);
    free(js);
    jobs_record_clear(&r);
    CHECK(r.params == NULL && r.id == 0);

    CHECK_INT(jobs_count(q, "queued", -1, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(jobs_count(q, "queued", JOBS_GENERATE, &n), 0);
    CHECK_INT(n, 0);

    /* absent: the store's M2P_ENOTFOUND, and nothing to free */
    CHECK_INT(jobs_job_get(q, id + 1000, &r), M2P_ENOTFOUND);
    CHECK(r.params == NULL && r.id == 0);

    /* a wait that runs out says so and hands out nothing (ASan: nothing leaks) */
    CHECK_INT(jobs_wait(q, id, 0, &r), M2P_ETIMEOUT);
    CHECK(r.params == NULL && r.id == 0);

    /* canceled while queued: the wait hands out the finished record */
    int now = 0;
    CHECK_INT(jobs_cancel(q, id, &now), 0);
    CHECK_INT(now, 1);
    CHECK_INT(jobs_wait(q, id, 1000, &r), 0);
    CHECK_STR(r.state, "canceled");
    CHECK_STR(r.error ? r.error : "", "canceled by request");
    CHECK(r.finished_ms > 0);
    jobs_record_clear(&r);
}

static void check_batches(jobs *q)
{
    const char *items[3] = {"{\"i\":0}", "{\"i\":1}", "{\"i\":2}"};
    int64_t bid = 0, ids[3] = {0};
    CHECK_INT(jobs_submit_batch(q, "{\"urls\":[1,2,3]}", JOBS_ANALYZE, items, 3, &bid, ids), 0);
    char *params = NULL;
    int64_t created = 0;
    CHECK_INT(jobs_batch_get(q, bid, &params, &created), 0);
    CHECK_STR(params ? params : "", "{\"urls\":[1,2,3]}");
    CHECK(created > 0);
    free(params);
    CHECK_INT(jobs_batch_get(q, bid + 1000, &params, &created), M2P_ENOTFOUND);

    jobs_record *r = NULL;
    int n = 0;
    CHECK_INT(jobs_batch_jobs(q, bid, &r, &n), 0);
    CHECK_INT(n, 3);
    for (int i = 0; i < n && i < 3; i++) {
        CHECK_INT(r[i].id, ids[i]);
        CHECK_INT(r[i].batch_id, bid);
        CHECK_INT(r[i].batch_index, i);
        CHECK_INT(r[i].kind, JOBS_ANALYZE);
        CHECK_STR(r[i].params ? r[i].params : "", items[i]);
        jobs_record_clear(&r[i]);
    }
    free(r);
    CHECK_INT(jobs_batch_jobs(q, bid + 1000, &r, &n), 0);
    CHECK(n == 0 && r == NULL);

    int64_t *list = NULL;
    CHECK_INT(jobs_batches_list(q, 0, 10, &list, &n), 0);
    CHECK_INT(n, 1);
    CHECK(n == 1 && list[0] == bid);
    free(list);
    for (int i = 0; i < 3; i++)
        CHECK_INT(jobs_delete(q, ids[i]), 0);
}

static void check_uploads(jobs *q)
{
    int64_t id = 0, got = 0;
    char state[16] = "";
    CHECK_INT(jobs_upload_find(q, "sha|60|4||", &got, state, sizeof state), 0);
    CHECK_INT(got, 0);
    CHECK_INT(jobs_submit(q, JOBS_ANALYZE, "{\"source\":\"up\",\"upload\":true}", 0, 0, 0, &id), 0);
    CHECK_INT(jobs_upload_remember(q, "sha|60|4||", id), 0);
    CHECK_INT(jobs_upload_find(q, "sha|60|4||", &got, state, sizeof state), 1);
    CHECK_INT(got, id);
    CHECK_STR(state, "queued");
    /* another duration is another answer */
    CHECK_INT(jobs_upload_find(q, "sha|30|4||", &got, state, sizeof state), 0);
    /* a canceled job no longer answers, though it is still named */
    int now = 0;
    CHECK_INT(jobs_cancel(q, id, &now), 0);
    got = 0;
    CHECK_INT(jobs_upload_find(q, "sha|60|4||", &got, state, sizeof state), 0);
    CHECK_INT(got, id);
    CHECK_STR(state, "canceled");
    /* nor does a deleted one */
    CHECK_INT(jobs_delete(q, id), 0);
    got = 0;
    CHECK_INT(jobs_upload_find(q, "sha|60|4||", &got, state, sizeof state), 0);
    CHECK_INT(got, 0);

    /* SQLite: every job runs beside the one data folder, nothing is shared */
    CHECK_STR(jobs_store_backend(q), "sqlite");
    int64_t size = -1;
    CHECK_INT(jobs_audio_put(q, "up-0", "/nonexistent", 0, &size), M2P_EUNSUPPORTED);
    CHECK_INT(size, 0);
}

/* A generation finished by a worker (the store's own calls, as run_generate writes it). */
static void check_results(jobs *q, const char *data)
{
    jobs_record r;
    CHECK_INT(jobs_last_generation(q, "tiny", &r), M2P_ENOTFOUND);
    int64_t id = 0;
    CHECK_INT(jobs_submit(q, JOBS_GENERATE, "{\"prompt\":\"x\",\"model\":\"tiny\",\"steps\":2}", 0,
                          0, 0, &id),
              0);
    m2p_store *st = NULL;
    CHECK_INT(m2p_store_open(data, &st), 0);
    store_job claimed;
    store_lease lease = {.worker = "test", .lease_ms = 60000};
    if (!st || store_job_claim(st, STORE_JOB_GENERATE, &lease, &claimed)) {
        CHECK(0);
        m2p_store_close(st);
        return;
    }
    CHECK_INT(claimed.id, id);
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3};
    store_result res = {0, 7, 64, 48, 0.5, png, sizeof png};
    CHECK_INT(store_job_finish_with_results(st, &claimed, "{\"prompt\":\"x\"}", &res, 1, one_result,
                                            NULL),
              0);
    store_job_clear(&claimed);
    m2p_store_close(st);

    CHECK_INT(jobs_last_generation(q, "tiny", &r), 0);
    CHECK_INT(r.id, id);
    CHECK_INT(r.kind, JOBS_GENERATE);
    CHECK_STR(r.state, "done");
    CHECK(r.finished_ms > 0);
    json_t *result = r.result ? json_loads(r.result, 0, NULL) : NULL;
    json_t *images = json_object_get(result, "images");
    CHECK_INT(json_array_size(images), 1);
    int64_t rid = json_integer_value(json_array_get(images, 0));
    json_decref(result);
    jobs_record_clear(&r);
    CHECK_INT(jobs_last_generation(q, "other", &r), M2P_ENOTFOUND);

    uint8_t *got = NULL;
    size_t len = 0;
    CHECK_INT(jobs_result_png(q, rid, &got, &len), 0);
    CHECK(len == sizeof png && got && !memcmp(got, png, len));
    free(got);

    char *items = NULL;
    int64_t total = 0;
    CHECK_INT(jobs_gallery(q, 0, 10, &items, &total), 0);
    CHECK_INT(total, 1);
    json_t *arr = items ? json_loads(items, 0, NULL) : NULL;
    json_t *it = json_array_get(arr, 0);
    CHECK_INT(json_integer_value(json_object_get(it, "id")), rid);
    CHECK_INT(json_integer_value(json_object_get(it, "job_id")), id);
    CHECK_INT(json_integer_value(json_object_get(it, "seed")), 7);
    CHECK_INT(json_integer_value(json_object_get(it, "width")), 64);
    CHECK_INT(json_integer_value(json_object_get(it, "height")), 48);
    json_decref(arr);
    free(items);

    CHECK_INT(jobs_result_delete(q, rid), 0);
    CHECK_INT(jobs_result_png(q, rid, &got, &len), M2P_ENOTFOUND);
    CHECK_INT(jobs_result_delete(q, rid), M2P_ENOTFOUND);
    CHECK_INT(jobs_gallery(q, 0, 10, &items, &total), 0);
    CHECK_INT(total, 0);
    free(items);
}

int main(void)
{
    char *t = test_tmpdir("jobs-records");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    m2p_store *store = NULL;
    CHECK_INT(m2p_store_open(data, &store), 0);
    progress_bus *bus = progress_bus_new(256);
    model_cache *models = model_cache_new((size_t)1 << 30);
    jobs_config cfg = jobs_default_config();
    cfg.data_dir = data;
    cfg.run_jobs = 0; /* queue only: the rows stay as this test leaves them */
    jobs *q = NULL;
    CHECK(store && bus && models);
    if (store && bus && models)
        CHECK_INT(jobs_start(&cfg, store, bus, models, &q), 0);
    if (q) {
        check_jobs(q);
        check_batches(q);
        check_uploads(q);
        check_results(q, data);
    }
    jobs_stop(q);
    model_cache_free(models);
    progress_bus_free(bus);
    m2p_store_close(store);
    test_rmtree(t);
    free(t);
    TEST_DONE();
}
