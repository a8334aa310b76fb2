/*
 * test_alloc_request.c — whole API requests on the in-process server (server_start, queue only:
 * no worker runs the jobs) with the Nth allocation of the server's threads failing, N walked over
 * every call site, jansson's and SQLite's allocations included (tests/inject/inject.h; this
 * thread, the client, is exempt): POST
 * /api/generate (validation, the job row, its "queued" event), then GET /api/jobs/{id} and GET
 * /api/gallery. Each request must answer 2xx with the clean run's content, or an error status
 * with a JSON message; a job is queued exactly when its 202 said so; the server keeps serving;
 * the store passes integrity_check; LeakSanitizer (the ASan build) checks the failure paths.
 */
#include "../server/harness.h"
#include "inject.h"
#include "server/server.h"
#include "store/jobs_store.h"
#include "store/store.h"

#define BODY                                                                                       \
    "{\"prompt\":\"a lighthouse in the fog\",\"steps\":2,\"width\":64,\"height\":64,\"seed\":7}"

typedef struct req_case {
    int port;
    long long job; /* the job the last POST queued (0: none) */
    m2p_store *db; /* this thread's own handle on the server's store */
} req_case;

/* 0 when r is 2xx, else a negative code with the answer's message as m2p_errmsg(). */
static int answer(const char *what, int st, json_t *j)
{
    if (st >= 200 && st < 300 && j)
        return 0;
    const char *msg = jstr(j, "error");
    if (st < 400 || !*msg) {
        fprintf(stderr, "allocation %ld failed: %s: status %d without a JSON error\n", inject_now,
                what, st);
        test_failures++;
        return m2p_error(M2P_EINTERNAL, "%s: status %d", what, st);
    }
    return m2p_error(st == 503 ? M2P_EBUSY : M2P_EINTERNAL, "%s: %d %s", what, st, msg);
}

static int req_run(void *ud)
{
    req_case *c = ud;
    int st;
    c->job = 0;
    json_t *j = api(c->port, "POST", "/api/generate", BODY, &st);
    int rc = answer("POST /api/generate", st, j);
    if (!rc)
        c->job = jint(j, "job_id");
    json_decref(j);
    if (rc)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld", c->job);
    j = api(c->port, "GET", path, NULL, &st);
    rc = answer("GET /api/jobs/{id}", st, j);
    if (!rc && (strcmp(jstr(j, "state"), "queued") != 0 || jint(j, "id") != c->job))
        rc = m2p_error(M2P_EINTERNAL, "GET %s: not the queued job", path);
    json_decref(j);
    if (rc)
        return rc;
    j = api(c->port, "GET", "/api/gallery", NULL, &st);
    rc = answer("GET /api/gallery", st, j);
    json_decref(j);
    return rc;
}

static int req_check(void *ud)
{
    req_case *c = ud;
    return c->job > 0 ? 0 : 1;
}

/* The queue holds exactly the jobs whose 202 came back (read from a second store handle): a job
 * queued without its 202 is one the client never heard of. They are deleted for the next run. */
static void req_cleanup(void *ud)
{
    req_case *c = ud;
    store_job *jobs = NULL;
    int n = 0;
    CHECK_INT(store_jobs_in_state(c->db, "queued", &jobs, &n), 0);
    for (int i = 0; i < n; i++) {
        if (jobs[i].id != c->job) {
            fprintf(stderr,
                    "allocation %ld failed: job %lld is queued but its request answered an "
                    "error\n",
                    inject_now, (long long)jobs[i].id);
            test_failures++;
        }
        CHECK_INT(store_job_delete(c->db, jobs[i].id), 0);
        store_job_clear(&jobs[i]);
    }
    free(jobs);
}

int main(void)
{
    /* the server's SQLite allocations fail too (set before SQLite's first use); its jansson
     * ones already do (server_start: m2p_json_track_alloc) */
    CHECK_INT(inject_libraries(), 0);
    harness_init();
    inject_exempt = 1; /* this thread is the client */
    char *tmp = test_tmpdir("alloc-request");
    char data[700];
    snprintf(data, sizeof data, "%s/data", tmp);
    server_config cfg = server_default_config();
    cfg.port = 0; /* the kernel picks; server_port() says which */
    cfg.data_dir = data;
    cfg.genre_offline = 1;
    cfg.no_worker = 1;
    cfg.threads = 4;
    cfg.n_models = 1;
    cfg.model_names[0] = "lcm";
    cfg.model_refs[0] = test_fixture("sd-tiny/model");
    server *s = NULL;
    CHECK_INT(server_start(&cfg, &s), 0);
    if (!s)
        TEST_DONE();
    req_case c = {.port = server_port(s)};
    CHECK_INT(m2p_store_open(data, &c.db), 0);
    if (!c.db)
        TEST_DONE();

    inject_scenario sc = {"request", req_run, req_check, req_cleanup, &c, 300};
    inject_stats st = inject_walk(&sc);
    CHECK(st.allocations > 100);
    CHECK(st.sites > 5);
    CHECK(st.failed_clean > 0);

    /* still serving, and the store is whole */
    CHECK_INT(req_run(&c), 0);
    req_cleanup(&c);
    server_stop(s);
    m2p_store *db = c.db;
    if (db) {
        int64_t ok = 0;
        CHECK_INT(store_scalar(db,
                               "SELECT COUNT(*) FROM pragma_integrity_check WHERE "
                               "integrity_check = 'ok'",
                               &ok),
                  0);
        CHECK_INT(ok, 1);
        m2p_store_close(db);
    }
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
