/*
 * test_workers.c — many machines, as processes on one: a throwaway PostgreSQL cluster, one web
 * node (`serve --store URL --no-worker`) and three `mus2pic worker` processes on the tiny
 * fixture model, with 2 s leases.
 *   - 30 generations; one worker is killed (-9) while it runs the first one: all 30 end done
 *     exactly once (one result row per variation, no duplicates), and the killed job shows
 *     attempts 2 and another worker's name.
 *   - a WebSocket client on the web node sees step events of a job a worker process runs.
 *   - a worker stopped (SIGSTOP) past its lease: another worker finishes the job; continued
 *     (SIGCONT), its outcome is refused and it says so in its log.
 *   - a worker sent SIGTERM mid-job hands the job back, says so and exits 0; another finishes.
 *   - PostgreSQL restarts (pg_ctl restart -m fast) during a run: every job still ends done
 *     once, and the web node's log says it reconnected.
 *   - PostgreSQL stopped: the web node answers 503 with the reason, and 200 once it is back.
 *   - a second web node on the same store answers for the first one's jobs, images and gallery,
 *     and its WebSocket clients see a worker's steps.
 *   - cancel from the web node stops a job a worker runs; /api/health lists the live workers;
 *     the original's /ws/progress protocol works on the web node for a job a worker runs.
 */
#include "../server/harness.h"
#include "pgtest.h"
#include "store/store.h"
#include "worker_proc.h"

#define FAST "{\"prompt\":\"fast %d\",\"steps\":2,\"width\":64,\"height\":64,\"seed\":%d}"
#define SLOW                                                                                       \
    "{\"prompt\":\"slow\",\"steps\":40,\"variations\":4,\"width\":128,\"height\":128,\"seed\":9}"

static const char *store_url;

/* Poll the job until it is running; its worker's name goes to worker. */
static int wait_running(int port, long long id, char *worker, size_t n, double timeout_s)
{
    double end = now_s() + timeout_s;
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld", id);
    while (now_s() < end) {
        int st = 0;
        json_t *j = api(port, "GET", path, NULL, &st);
        const char *state = jstr(j, "state");
        const char *w = jstr(j, "worker");
        int running = state && !strcmp(state, "running") && w && *w;
        if (running)
            snprintf(worker, n, "%s", w);
        json_decref(j);
        if (running)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

/* A WebSocket client on the web node subscribed to a job as soon as it was queued. */
static wsc *watch(int port, long long id)
{
    wsc *w = wsc_open(port, "/ws/progress");
    if (!w)
        return NULL;
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
    wsc_send(w, msg);
    return w;
}

/* Its first step event, from the worker process through PostgreSQL: 1 when it is one of the
 * first 8 of 40 steps (32 to go, so what the test does next lands mid-run however fast the
 * machine), 0 otherwise. Closes the client. */
static int early_step(wsc *w, long long id)
{
    if (!w)
        return 0;
    size_t at = 0;
    json_t *s = wsc_wait(w, &at, "step", id, 120);
    long long step = s ? jint(s, "step") : -1, steps = s ? jint(s, "steps") : -1;
    json_decref(s);
    wsc_close(w);
    if (step < 1 || step > 8 || steps != 40)
        fprintf(stderr, "job %lld: first step event %lld of %lld\n", id, step, steps);
    return step >= 1 && step <= 8 && steps == 40;
}

/* The original's /ws/progress protocol on the web node, for a job a worker runs: its
 * {type:"progress"} messages and the final {type:"complete"} come through the relay. */
static void check_original(int port)
{
    wsc *w = wsc_open(port, "/ws/progress");
    CHECK(w != NULL);
    if (!w)
        return;
    CHECK(wsc_send(w, "{\"type\":\"generate\",\"prompt\":\"orig\",\"negative_prompt\":\"\","
                      "\"num_steps\":3,\"num_variations\":2,\"model\":\"lcm\",\"width\":64,"
                      "\"height\":64}") > 0);
    size_t at = 0;
    json_t *complete = wsc_wait(w, &at, "complete", 0, 60);
    CHECK(complete != NULL);
    CHECK_INT(jint(complete, "count"), 2);
    CHECK_INT(jint(complete, "progress"), 100);
    json_decref(complete);
    json_t *msgs = wsc_messages(w);
    int n_progress = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const char *t = jstr(json_array_get(msgs, i), "type");
        n_progress += t && !strcmp(t, "progress");
    }
    CHECK(n_progress >= 1);
    json_decref(msgs);
    wsc_close(w);
}

static long long count(m2p_store *s, const char *sql)
{
    int64_t v = -1;
    if (store_scalar(s, sql, &v))
        fprintf(stderr, "%s: %s\n", sql, m2p_errmsg());
    return v;
}

static proc *by_name(proc *w, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i].name, name))
            return &w[i];
    return NULL;
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-workers");
    pgtest pg;
    char url[700];
    if (pgtest_start(&pg) || pgtest_createdb(&pg, "m2p", url, sizeof url)) {
        CHECK(!"a PostgreSQL cluster");
        TEST_DONE();
    }
    store_url = url;
    char data[700];
    snprintf(data, sizeof data, "%s/web", t);
    const char *extra[] = {"--store", url, "--no-worker", "--lease-s", "2", NULL};
    srv web;
    CHECK_INT(srv_start(&web, data, extra), 0);
    proc w[4];
    const char *names[4] = {"w1", "w2", "w3", "w4"};
    for (int i = 0; i < 3; i++)
        CHECK_INT(worker_start(&w[i], t, store_url, names[i], "2"), 0);

    /* 1: 30 jobs, the first one slow; kill -9 the worker that runs it. */
    long long ids[30];
    ids[0] = submit(web.port, SLOW);
    wsc *first = watch(web.port, ids[0]);
    char body[160];
    for (int i = 1; i < 30; i++) {
        snprintf(body, sizeof body, FAST, i, i);
        ids[i] = submit(web.port, body);
    }
    char victim[64] = "";
    CHECK(early_step(first, ids[0])); /* a step event from the worker process, over /ws */
    CHECK_INT(wait_running(web.port, ids[0], victim, sizeof victim, 60), 0);
    proc *v = by_name(w, 3, victim);
    CHECK(v != NULL);
    if (v)
        CHECK_INT(proc_stop(v, SIGKILL), 128 + SIGKILL);
    for (int i = 0; i < 30; i++) {
        json_t *j = wait_job(web.port, ids[i], 300);
        CHECK_STR(jstr(j, "state"), "done");
        if (i == 0) {
            CHECK_INT(jint(j, "attempts"), 2);
            CHECK(jstr(j, "worker") && strcmp(jstr(j, "worker"), victim) != 0);
            CHECK_INT(json_array_size(json_object_get(json_object_get(j, "result"), "images")), 4);
        }
        json_decref(j);
    }
    m2p_store *db = NULL;
    CHECK_INT(m2p_store_open(url, &db), 0);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"), 30);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM results"), 4 + 29);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM (SELECT DISTINCT job_id, variation FROM results) r"),
              4 + 29);
    /* the web node lists the live workers: the two left, and the killed one drops out once its
     * heartbeat is older than three leases */
    double until = now_s() + 30;
    int live = 0, victim_listed = 1;
    while (now_s() < until && (live != 2 || victim_listed)) {
        int st = 0;
        json_t *h = api(web.port, "GET", "/api/health", NULL, &st);
        CHECK_STR(jstr(h, "store"), "postgresql");
        json_t *ws = json_object_get(h, "workers");
        live = 0;
        victim_listed = 0;
        for (size_t i = 0; i < json_array_size(ws); i++) {
            const char *name = jstr(json_array_get(ws, i), "name");
            if (name && !strcmp(name, victim))
                victim_listed = 1;
            else if (name)
                live++;
        }
        json_decref(h);
        if (live != 2 || victim_listed)
            sleep_ms(200);
    }
    CHECK_INT(live, 2);
    CHECK_INT(victim_listed, 0);
    CHECK_INT(worker_start(&w[3], t, store_url, "w4", "2"), 0); /* back to three */
    check_original(web.port);

    /* 2: SIGSTOP a worker past its lease; another finishes; SIGCONT: its outcome is refused. */
    long long slow2 = submit(web.port, SLOW);
    wsc *second = watch(web.port, slow2);
    char paused[64] = "";
    CHECK(early_step(second, slow2));
    CHECK_INT(wait_running(web.port, slow2, paused, sizeof paused, 60), 0);
    proc *p = by_name(w, 4, paused);
    CHECK(p != NULL);
    if (p)
        kill(p->pid, SIGSTOP);
    json_t *j = wait_job(web.port, slow2, 300);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_INT(jint(j, "attempts"), 2);
    CHECK(jstr(j, "worker") && strcmp(jstr(j, "worker"), paused) != 0);
    json_decref(j);
    if (p) {
        kill(p->pid, SIGCONT);
        /* its heartbeat or its result write meets the lost lease; wait for it to say so */
        double end = now_s() + 30;
        char needle[96];
        snprintf(needle, sizeof needle, "job %lld: ", slow2);
        int said = 0;
        while (!said && now_s() < end) {
            char *log = test_read_file(p->log, NULL);
            const char *at = log ? strstr(log, needle) : NULL;
            for (; at && !said; at = strstr(at + 1, needle))
                said = !strncmp(at + strlen(needle), "late result refused", 19) ||
                       !strncmp(at + strlen(needle), "attempt 1 lost its lease", 24);
            free(log);
            if (!said)
                sleep_ms(100);
        }
        CHECK(said);
        if (!said)
            dump(p->log);
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM results WHERE job_id = %lld", slow2);
    CHECK_INT(count(db, sql), 4);

    /* 2b: SIGTERM a worker while it runs a job: it hands the job back, says so and exits 0;
     * another worker runs it to done (the handed-back attempt stays counted). */
    long long slow3 = submit(web.port, SLOW);
    wsc *third_watch = watch(web.port, slow3);
    char termed[64] = "";
    CHECK(early_step(third_watch, slow3));
    CHECK_INT(wait_running(web.port, slow3, termed, sizeof termed, 60), 0);
    proc *tp = by_name(w, 4, termed);
    CHECK(tp != NULL);
    if (tp) {
        CHECK_INT(proc_stop(tp, SIGTERM), 0);
        char *log = test_read_file(tp->log, NULL);
        char needle[96];
        snprintf(needle, sizeof needle, "job %lld: handed back to the queue", slow3);
        CHECK(log && strstr(log, needle) != NULL);
        free(log);
    }
    j = wait_job(web.port, slow3, 300);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_INT(jint(j, "attempts"), 2);
    CHECK(jstr(j, "worker") && strcmp(jstr(j, "worker"), termed) != 0);
    json_decref(j);
    if (tp) {
        CHECK_INT(worker_start(tp, t, store_url, termed, "2"), 0); /* back to three */
        /* up and connected before PostgreSQL restarts below (a worker that cannot connect at
         * start exits 1: that is its service manager's to retry) */
        char up[96];
        snprintf(up, sizeof up, "worker %s running", termed);
        double until_up = now_s() + 60;
        int is_up = 0;
        while (!is_up && now_s() < until_up) {
            char *log = test_read_file(tp->log, NULL);
            char *last = log ? strstr(log, "handed back to the queue") : NULL;
            is_up = last && strstr(last, up) != NULL;
            free(log);
            if (!is_up)
                sleep_ms(20);
        }
        CHECK(is_up);
    }

    /* 3: PostgreSQL restarts during a run: every job still ends done once, and the nodes say
     * in their logs that they lost the server and reconnected. */
    long long more[12];
    more[0] = submit(web.port, SLOW);
    for (int i = 1; i < 12; i++) {
        snprintf(body, sizeof body, FAST, 100 + i, 100 + i);
        more[i] = submit(web.port, body);
    }
    char dummy[64];
    CHECK_INT(wait_running(web.port, more[0], dummy, sizeof dummy, 60), 0);
    CHECK_INT(pgtest_restart(&pg), 0);
    for (int i = 0; i < 12; i++) {
        j = wait_job(web.port, more[i], 300);
        CHECK_STR(jstr(j, "state"), "done");
        json_decref(j);
    }
    char *wlog = test_read_file(web.log, NULL);
    CHECK(wlog && strstr(wlog, "store: reconnected to") != NULL);
    free(wlog);
    m2p_store_close(db);
    db = NULL;
    CHECK_INT(m2p_store_open(url, &db), 0);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"), 30 + 1 + 1 + 1 + 12);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM results"), 4 + 29 + 2 + 4 + 4 + 4 + 11);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM (SELECT DISTINCT job_id, variation FROM results) r"),
              4 + 29 + 2 + 4 + 4 + 4 + 11);

    /* A second web node on the same store answers for the first one's jobs, images and gallery,
     * and its WebSocket clients see a worker's steps too. */
    char data2[700];
    snprintf(data2, sizeof data2, "%s/web2", t);
    srv web2;
    CHECK_INT(srv_start(&web2, data2, extra), 0);
    j = wait_job(web2.port, ids[0], 10);
    CHECK_STR(jstr(j, "state"), "done");
    long long img =
        jint(json_array_get(json_object_get(json_object_get(j, "result"), "images"), 0), "id");
    json_decref(j);
    snprintf(sql, sizeof sql, "/api/images/%lld.png", img);
    resp png;
    CHECK_INT(http_req(web2.port, "GET", sql, NULL, NULL, 0, NULL, &png), 0);
    CHECK_INT(png.status, 200);
    CHECK(png.len > 8 && !memcmp(png.body, "\x89PNG", 4));
    resp_free(&png);
    int st2 = 0;
    json_t *g = api(web2.port, "GET", "/api/gallery?per_page=100", NULL, &st2);
    CHECK_INT(jint(g, "total"), 4 + 29 + 2 + 4 + 4 + 4 + 11);
    json_decref(g);
    long long third = submit(web2.port, SLOW);
    CHECK(early_step(watch(web2.port, third), third));
    json_decref(wait_job(web.port, third, 300));

    /* 4: cancel on the web node reaches the worker that runs the job. The job is 4x SLOW's
     * pixels, so it is still running when the cancel arrives (within a heartbeat, lease / 3)
     * however loaded the machine; once canceled it stops at its next step. */
    long long c = submit(web.port, "{\"prompt\":\"cancel me\",\"steps\":40,\"variations\":4,"
                                   "\"width\":256,\"height\":256,\"seed\":9}");
    CHECK_INT(wait_running(web.port, c, dummy, sizeof dummy, 60), 0);
    snprintf(sql, sizeof sql, "/api/jobs/%lld/cancel", c);
    int st = 0;
    json_decref(api(web.port, "POST", sql, "{}", &st));
    CHECK_INT(st, 202); /* accepted: the worker stops at its next step */
    j = wait_job(web.port, c, 300);
    CHECK_STR(jstr(j, "state"), "canceled");
    json_decref(j);
    m2p_store_close(db);

    /* 5: PostgreSQL down: the web node answers 503 with the reason and does not crash; once it
     * is back, the node reconnects (backoff up to 5 s) and answers again. */
    CHECK_INT(pgtest_pause(&pg), 0);
    snprintf(sql, sizeof sql, "/api/jobs/%lld", ids[1]);
    resp r;
    CHECK_INT(http_req(web.port, "GET", sql, NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    CHECK(r.body && strstr(r.body, "unreachable") != NULL);
    resp_free(&r);
    CHECK_INT(pgtest_resume(&pg), 0);
    double back = now_s() + 30;
    st = 0;
    while (st != 200 && now_s() < back) {
        json_decref(api(web.port, "GET", sql, NULL, &st));
        if (st != 200)
            sleep_ms(100);
    }
    CHECK_INT(st, 200);

    /* SIGTERM: workers and the web node exit cleanly */
    for (int i = 0; i < 4; i++)
        if (w[i].pid > 0)
            CHECK_INT(proc_stop(&w[i], SIGTERM), 0);
    CHECK_INT(srv_stop(&web, SIGTERM), 0);
    CHECK_INT(srv_stop(&web2, SIGTERM), 0);
    if (test_failures) {
        srv_dump_log(&web);
        for (int i = 0; i < 4; i++)
            dump(w[i].log);
    }
    pgtest_stop(&pg);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
