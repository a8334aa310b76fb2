/*
 * test_stop_lease.c — a worker sent SIGTERM keeps renewing its job's lease until it has handed
 * the job back, even when the step it must finish first takes longer than the lease.
 *
 * Two workers on one sqlite:FILE store with 2 s leases, a web node without workers to submit.
 * Worker A runs a 448x448 job on one thread (a step of the tiny model there takes about 4.5 s on
 * an AVX2 core: two leases); it is sent SIGTERM mid-step. Before the fix its heartbeat thread
 * ended at the signal, so the lease expired while the step ran, worker B requeued and claimed the
 * job, and A's hand-back was refused ("could not hand it back"). Now A says "handed back to the
 * queue" and exits 0, and B runs the job to done as attempt 2 with all its images. (With 1 s
 * leases and 384x384 the old code failed 2 runs of 2; 2 s leave a renewal more room on a loaded
 * machine.)
 */
#include "../server/harness.h"
#include "worker_proc.h"

#define JOB "{\"prompt\":\"long steps\",\"steps\":2,\"width\":448,\"height\":448,\"seed\":3}"

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-stop-lease");
    char store[760], data[700];
    snprintf(store, sizeof store, "sqlite:%s/queue.db", t);
    snprintf(data, sizeof data, "%s/web", t);
    const char *extra[] = {"--store", store, "--no-worker", "--lease-s", "2", NULL};
    srv web;
    CHECK_INT(srv_start(&web, data, extra), 0);
    proc a = {0}, b = {0};
    CHECK_INT(worker_start(&a, t, store, "wa", "2"), 0);

    long long id = submit(web.port, JOB);
    char started[64];
    snprintf(started, sizeof started, "job %lld (generate) started", id);
    double end = now_s() + 120;
    while (!log_has(&a, started) && now_s() < end)
        sleep_ms(20);
    CHECK(log_has(&a, started));
    /* B only now, so that A holds the job; B requeues leases that expire. */
    CHECK_INT(worker_start(&b, t, store, "wb", "2"), 0);
    char up[64];
    snprintf(up, sizeof up, "worker wb running");
    while (!log_has(&b, up) && now_s() < end)
        sleep_ms(20);
    CHECK(log_has(&b, up));
    /* A is inside its first steps (each several leases long); SIGTERM lands mid-step. */
    sleep_ms(500);
    CHECK_INT(proc_stop(&a, SIGTERM), 0);
    char back[96];
    snprintf(back, sizeof back, "job %lld: handed back to the queue", id);
    CHECK(log_has(&a, back));
    CHECK(!log_has(&a, "could not hand it back"));

    json_t *j = wait_job(web.port, id, 600);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_INT(jint(j, "attempts"), 2);
    CHECK_STR(jstr(j, "worker"), "wb");
    CHECK_INT(json_array_size(json_object_get(json_object_get(j, "result"), "images")), 1);
    json_decref(j);

    CHECK_INT(proc_stop(&b, SIGTERM), 0);
    CHECK_INT(srv_stop(&web, SIGTERM), 0);
    if (test_failures) {
        srv_dump_log(&web);
        dump(a.log);
        dump(b.log);
    }
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
