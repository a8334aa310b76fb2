/*
 * test_handback.c — a server stopped (SIGTERM) or killed (-9) while it runs a generation does
 * not lose the job and never calls it "canceled by request": a stop hands the job back to the
 * queue (state queued, attempts 1, no error), a kill leaves it running until the restart
 * requeues it; either way the restarted server runs it again (attempts 2) to done with all its
 * images. A cancel by request still cancels.
 */
#include "../server/harness.h"
#include "store/jobs_store.h"
#include "store/store.h"

#define SLOW                                                                                       \
    "{\"prompt\":\"slow\",\"steps\":30,\"variations\":4,\"width\":128,\"height\":128,\"seed\":5}"

/* Submit SLOW and watch it from the start: returns its id once it reported one of its first 5
 * steps (25 more to go, so a stop lands mid-run however fast the machine), or -1. */
static long long submit_and_wait_early_step(int port)
{
    long long id = submit(port, SLOW);
    wsc *w = wsc_open(port, "/ws/progress");
    if (!w || id <= 0)
        return -1;
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
    wsc_send(w, msg);
    size_t at = 0;
    json_t *s = wsc_wait(w, &at, "step", id, 120);
    long long step = s ? jint(s, "step") : -1;
    json_decref(s);
    int early = step >= 1 && step <= 5;
    if (!early) /* none, or we joined late: this job cannot show a stop mid-run */
        fprintf(stderr, "job %lld: first step seen %lld\n", id, step);
    wsc_close(w);
    return early ? id : -1;
}

/* The job's row while no server runs. */
static void check_row(const char *data, long long id, const char *state, int attempts)
{
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(data, &s), 0);
    store_job j;
    CHECK_INT(store_job_get(s, id, &j), 0);
    CHECK_STR(j.state, state);
    CHECK_INT(j.attempts, attempts);
    CHECK(j.error == NULL);
    store_job_clear(&j);
    m2p_store_close(s);
}

static void run_again(srv *s, const char *data, long long id)
{
    CHECK_INT(srv_start(s, data, NULL), 0);
    json_t *j = wait_job(s->port, id, 300);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_INT(jint(j, "attempts"), 2);
    CHECK(json_is_null(json_object_get(j, "error")));
    CHECK_INT(json_array_size(json_object_get(json_object_get(j, "result"), "images")), 4);
    json_decref(j);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-handback");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;

    /* SIGTERM mid-generation: handed back, then done after the restart */
    CHECK_INT(srv_start(&s, data, NULL), 0);
    long long a = submit_and_wait_early_step(s.port);
    CHECK(a > 0);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    check_row(data, a, "queued", 1);
    char *log = test_read_file(s.log, NULL);
    CHECK(log && strstr(log, "handed back to the queue") == NULL); /* info lines are off */
    CHECK(log && strstr(log, "canceled") == NULL);
    free(log);
    run_again(&s, data, a);

    /* kill -9 mid-generation: still running in the table; the restart requeues it at once */
    long long b = submit_and_wait_early_step(s.port);
    CHECK(b > 0);
    CHECK_INT(srv_stop(&s, SIGKILL), 128 + SIGKILL);
    check_row(data, b, "running", 1);
    run_again(&s, data, b);

    /* a cancel by request is still a cancel */
    long long c = submit_and_wait_early_step(s.port);
    CHECK(c > 0);
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", c);
    int st = 0;
    json_decref(api(s.port, "POST", path, "{}", &st));
    json_t *j = wait_job(s.port, c, 300);
    CHECK_STR(jstr(j, "state"), "canceled");
    CHECK_STR(jstr(j, "error"), "canceled by request");
    CHECK_INT(jint(j, "attempts"), 1);
    json_decref(j);

    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
