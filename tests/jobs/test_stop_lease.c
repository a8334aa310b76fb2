/*
 * test_stop_lease.c — a worker sent SIGTERM keeps renewing its job's lease until it has handed
 * the job back, even when the step it must finish first takes longer than the lease.
 *
 * Two workers on one sqlite:FILE store with 2 s leases, a web node without workers to submit.
 * Worker A runs a job on one thread whose steps take several leases; it is sent SIGTERM mid-step.
 * How big that image must be depends on the CPU (a step of the tiny model at 448x448 takes about
 * 4.5 s on an AVX2 core, 0.1 s with AVX-512) and on the build (sanitizers), so the test first
 * times one-step generations of the same binary on one thread, growing the size (then the
 * variations, a batch) until one takes 6 s. Before the fix its heartbeat thread
 * ended at the signal, so the lease expired while the step ran, worker B requeued and claimed the
 * job, and A's hand-back was refused ("could not hand it back"). Now A says "handed back to the
 * queue" and exits 0, and B runs the job to done as attempt 2 with all its images. (With 1 s
 * leases and 384x384 the old code failed 2 runs of 2; 2 s leave a renewal more room on a loaded
 * machine.)
 */
#include "../server/harness.h"
#include "worker_proc.h"

/* The first of a few (size, variations) at which a one-step `mus2pic generate` of the tiny model
 * on one thread takes 6 s or more (load and decode included: the step is most of it), else the
 * last (the API's limits: sides up to 1024, 4 variations). 0 when generate failed. */
static int pick_job(const char *dir, int *variations)
{
    static const int ladder[][2] = {{448, 1},  {576, 1},  {704, 1}, {896, 1},
                                    {1024, 1}, {1024, 2}, {1024, 4}};
    const int n = (int)(sizeof ladder / sizeof ladder[0]);
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    char model[700], out[700], log[700], wh[16], nv[16];
    snprintf(model, sizeof model, "%s", test_fixture("sd-tiny/model"));
    snprintf(out, sizeof out, "%s/probe.png", dir);
    snprintf(log, sizeof log, "%s/probe.log", dir);
    for (int i = 0; i < n; i++) {
        snprintf(wh, sizeof wh, "%d", ladder[i][0]);
        snprintf(nv, sizeof nv, "%d", ladder[i][1]);
        const char *argv[] = {bin,        "generate", "--model",
                              model,      "--prompt", "long steps",
                              "--steps",  "1",        "--variations",
                              nv,         "--width",  wh,
                              "--height", wh,         "--threads",
                              "1",        "--seed",   "3",
                              "--out",    out,        NULL};
        double t0 = now_s();
        proc p = {0};
        if (proc_spawn(&p, "probe", log, argv) || proc_stop(&p, 0) != 0)
            return 0;
        double s = now_s() - t0;
        fprintf(stderr, "probe: %dx%d x %d, one step: %.1f s in all\n", ladder[i][0], ladder[i][0],
                ladder[i][1], s);
        *variations = ladder[i][1];
        if (s >= 6.0 || i == n - 1)
            return ladder[i][0];
    }
    return 0;
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-stop-lease");
    int nv = 1;
    const int size = pick_job(t, &nv);
    CHECK(size > 0);
    char job[192];
    snprintf(job, sizeof job,
             "{\"prompt\":\"long steps\",\"steps\":2,\"width\":%d,\"height\":%d,"
             "\"variations\":%d,\"seed\":3}",
             size, size, nv);
    char store[760], data[700];
    snprintf(store, sizeof store, "sqlite:%s/queue.db", t);
    snprintf(data, sizeof data, "%s/web", t);
    const char *extra[] = {"--store", store, "--no-worker", "--lease-s", "2", NULL};
    srv web;
    CHECK_INT(srv_start(&web, data, extra), 0);
    proc a = {0}, b = {0};
    CHECK_INT(worker_start(&a, t, store, "wa", "2"), 0);

    long long id = submit(web.port, job);
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
    CHECK_INT(json_array_size(json_object_get(json_object_get(j, "result"), "images")), nv);
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
