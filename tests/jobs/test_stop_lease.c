/*
 * test_stop_lease.c — a worker sent SIGTERM keeps renewing its job's lease until it has handed
 * the job back, even when the step it must finish first takes longer than the lease.
 *
 * Two workers on one sqlite:FILE store with 1 s leases, a web node without workers to submit.
 * Worker A runs a 384x384 job on one thread (a step of the tiny model there takes about 3 s on
 * an AVX2 core, three leases); it is sent SIGTERM mid-step. Before the fix its heartbeat thread
 * ended at the signal, so the lease expired while the step ran, worker B requeued and claimed the
 * job, and A's hand-back was refused ("could not hand it back"). Now A says "handed back to the
 * queue" and exits 0, and B runs the job to done as attempt 2 with all its images.
 */
#include "../server/harness.h"

#define JOB "{\"prompt\":\"long steps\",\"steps\":2,\"width\":384,\"height\":384,\"seed\":3}"

typedef struct proc {
    pid_t pid;
    char log[700];
} proc;

static int worker_start(proc *w, const char *dir, const char *store, const char *name)
{
    snprintf(w->log, sizeof w->log, "%s/%s.log", dir, name);
    char model[700], data[700];
    snprintf(model, sizeof model, "lcm=%s", test_fixture("sd-tiny/model"));
    snprintf(data, sizeof data, "%s/%s-data", dir, name);
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    const char *argv[] = {bin,      "worker", "--store",   store, "--model",           model,
                          "--name", name,     "--lease-s", "1",   "--kinds",           "generate",
                          "--data", data,     "--offline", "-v",  "--compute-threads", "1",
                          NULL};
    w->pid = fork();
    if (w->pid == 0) {
        FILE *f = freopen(w->log, "a", stdout);
        (void)f;
        dup2(1, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return w->pid > 0 ? 0 : -1;
}

static int proc_stop(proc *w, int sig)
{
    if (w->pid <= 0)
        return -1;
    kill(w->pid, sig);
    int status = 0;
    waitpid(w->pid, &status, 0);
    w->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int log_has(const char *path, const char *needle)
{
    char *t = test_read_file(path, NULL);
    int has = t && strstr(t, needle) != NULL;
    free(t);
    return has;
}

static void dump(const char *path)
{
    char *t = test_read_file(path, NULL);
    fprintf(stderr, "---- %s ----\n%s\n", path, t ? t : "(none)");
    free(t);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-stop-lease");
    char store[760], data[700];
    snprintf(store, sizeof store, "sqlite:%s/queue.db", t);
    snprintf(data, sizeof data, "%s/web", t);
    const char *extra[] = {"--store", store, "--no-worker", "--lease-s", "1", NULL};
    srv web;
    CHECK_INT(srv_start(&web, data, extra), 0);
    proc a = {0}, b = {0};
    CHECK_INT(worker_start(&a, t, store, "wa"), 0);

    long long id = submit(web.port, JOB);
    char started[64];
    snprintf(started, sizeof started, "job %lld (generate) started", id);
    double end = now_s() + 120;
    while (!log_has(a.log, started) && now_s() < end)
        sleep_ms(20);
    CHECK(log_has(a.log, started));
    /* B only now, so that A holds the job; B requeues leases that expire. */
    CHECK_INT(worker_start(&b, t, store, "wb"), 0);
    char up[64];
    snprintf(up, sizeof up, "worker wb running");
    while (!log_has(b.log, up) && now_s() < end)
        sleep_ms(20);
    CHECK(log_has(b.log, up));
    /* A is inside its first steps (each several leases long); SIGTERM lands mid-step. */
    sleep_ms(500);
    CHECK_INT(proc_stop(&a, SIGTERM), 0);
    char back[96];
    snprintf(back, sizeof back, "job %lld: handed back to the queue", id);
    CHECK(log_has(a.log, back));
    CHECK(!log_has(a.log, "could not hand it back"));

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
