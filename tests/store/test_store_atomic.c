/*
 * test_store_atomic.c — the two all-or-nothing writes of a batch, on SQLite and on PostgreSQL (a
 * throwaway cluster, tests/common/pgtest.h): store_batch_submit (the batch row and its analysis
 * jobs) and store_job_finish_and_queue (an item's analysis result and its generation). Each
 * commits everything on success and nothing when refused (a job without parameters; a claim that
 * no longer holds its job). A crash at every write of these paths (SQLite) is walked by
 * tests/inject/test_io_kill.
 */
#include "pgtest.h"
#include "store/jobs_store.h"
#include "store/store.h"
#include "test.h"

static int64_t count(m2p_store *s, const char *sql)
{
    int64_t v = -1;
    CHECK_INT(store_scalar(s, sql, &v), 0);
    return v;
}

static void check_backend(const char *url)
{
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(url, &s), 0);
    if (!s)
        return;
    /* a batch of two with its jobs, at indexes 0 and 1 */
    const char *jp[2] = {"{\"source\":\"a\"}", "{\"source\":\"b\"}"};
    int64_t bid = 0, ids[2] = {0, 0};
    CHECK_INT(
        store_batch_submit(s, "{\"urls\":[\"a\",\"b\"]}", STORE_JOB_ANALYZE, jp, 2, &bid, ids), 0);
    CHECK(bid > 0 && ids[0] > 0 && ids[1] > ids[0]);
    store_job *items = NULL;
    int n = 0;
    CHECK_INT(store_jobs_of_batch(s, bid, &items, &n), 0);
    CHECK_INT(n, 2);
    for (int i = 0; i < n; i++) {
        CHECK_INT(items[i].batch_index, i);
        CHECK_STR(items[i].state, "queued");
        store_job_clear(&items[i]);
    }
    free(items);
    /* a job without parameters refuses the whole batch: no batch row is added */
    int64_t before = count(s, "SELECT COUNT(*) FROM batches");
    const char *bad[2] = {"{}", NULL};
    CHECK(store_batch_submit(s, "{}", STORE_JOB_ANALYZE, bad, 2, &bid, ids) != 0);
    CHECK_INT(count(s, "SELECT COUNT(*) FROM batches"), before);

    /* claim item 0, finish it together with its generation */
    store_lease lease = {.worker = "atomic-test", .lease_ms = 30000};
    store_job job;
    int rc = store_job_claim(s, STORE_JOB_ANALYZE, &lease, &job);
    CHECK_INT(rc, 0);
    if (rc) {
        m2p_store_close(s);
        return;
    }
    int64_t gen = 0;
    CHECK_INT(store_job_finish_and_queue(s, &job, "{\"prompt\":\"p\"}", STORE_JOB_GENERATE,
                                         "{\"prompt\":\"p\"}", &gen),
              0);
    store_job g;
    CHECK_INT(store_job_get(s, gen, &g), 0);
    CHECK_STR(g.state, "queued");
    CHECK_INT(g.kind, STORE_JOB_GENERATE);
    CHECK_INT(g.batch_id, job.batch_id);
    CHECK_INT(g.batch_index, job.batch_index);
    CHECK_INT(g.parent_id, job.id);
    store_job_clear(&g);
    store_job done;
    CHECK_INT(store_job_get(s, job.id, &done), 0);
    CHECK_STR(done.state, "done");
    store_job_clear(&done);

    /* the claim no longer holds the job: neither the result nor the generation is written */
    int64_t gens = count(s, "SELECT COUNT(*) FROM jobs WHERE kind = 1");
    CHECK_INT(store_job_finish_and_queue(s, &job, "{}", STORE_JOB_GENERATE, "{}", &gen),
              M2P_ENOTFOUND);
    CHECK_INT(count(s, "SELECT COUNT(*) FROM jobs WHERE kind = 1"), gens);
    store_job_clear(&job);
    m2p_store_close(s);
}

int main(void)
{
    char *tmp = test_tmpdir("store-atomic");
    char url[700];
    snprintf(url, sizeof url, "%s/data", tmp);
    check_backend(url);

    pgtest pg;
    if (pgtest_start(&pg) == 0) {
        char db[600];
        CHECK_INT(pgtest_createdb(&pg, "atomic", db, sizeof db), 0);
        check_backend(db);
        pgtest_stop(&pg);
    } else {
        CHECK(!"PostgreSQL could not start (scripts/install-deps --test installs it)");
    }
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
