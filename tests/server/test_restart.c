/*
 * test_restart.c — kill -9 during a generation, then start the server again on the same data:
 * the interrupted job is retried and completes, a job queued behind it runs, earlier results are
 * byte-for-byte intact; a job interrupted a second time is failed with a reason, not run again.
 */
#include "harness.h"

#define SLOW                                                                                       \
    "{\"prompt\":\"slow\",\"steps\":30,\"variations\":4,\"width\":128,\"height\":128,\"seed\":9}"
/* Killed twice, never run to its end: long enough that a restarted server cannot finish it
 * before it answers /api/health (a restart under ThreadSanitizer took 14 s to answer on an
 * AVX-512 host, while it ran SLOW's four variations in 10 s) */
#define SLOWER                                                                                     \
    "{\"prompt\":\"slower\",\"steps\":50,\"variations\":4,\"width\":384,\"height\":384,"           \
    "\"seed\":9}"

/* Wait (over the WebSocket) until job has finished a step of its current run: 0. 1 when the job
 * ended before that (its "done" or "failed" came, or its state was already final), -1 when
 * nothing came in 60 s (the messages are printed). */
static int wait_step(int port, long long id)
{
    wsc *w = wsc_open(port, "/ws/progress");
    if (!w)
        return -1;
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
    wsc_send(w, msg);
    int rc = -1;
    for (int waited = 0; rc == -1 && waited < 60000; waited += 50) {
        json_t *all = wsc_messages(w);
        size_t i;
        json_t *m;
        json_array_foreach(all, i, m)
        {
            if (jint(m, "job") != id)
                continue;
            const char *type = jstr(m, "type");
            const char *state = jstr(json_object_get(m, "state"), "state");
            if (!strcmp(type, "step")) {
                rc = 0;
                break;
            }
            if (!strcmp(type, "done") || !strcmp(type, "failed") ||
                (!strcmp(type, "state") && (!strcmp(state, "done") || !strcmp(state, "failed"))))
                rc = 1;
        }
        json_decref(all);
        if (rc == -1)
            sleep_ms(50);
    }
    if (rc == -1) {
        json_t *all = wsc_messages(w);
        char *text = json_dumps(all, JSON_COMPACT);
        fprintf(stderr, "  no step of job %lld; the WebSocket got: %.4000s\n", id,
                text ? text : "?");
        free(text);
        json_decref(all);
    }
    wsc_close(w);
    return rc;
}

static char *png_of(int port, long long image_id, size_t *len)
{
    char path[64];
    snprintf(path, sizeof path, "/api/images/%lld.png", image_id);
    resp r;
    if (http_req(port, "GET", path, NULL, NULL, 0, NULL, &r) || r.status != 200) {
        resp_free(&r);
        return NULL;
    }
    *len = r.len;
    return r.body;
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("server-restart");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;
    CHECK_INT(srv_start(&s, data, NULL), 0);

    /* an earlier result */
    long long first = submit(s.port, "{\"prompt\":\"kept\",\"steps\":2,\"width\":64,\"height\":64,"
                                     "\"seed\":3}");
    json_t *j = wait_job(s.port, first, 60);
    CHECK_STR(jstr(j, "state"), "done");
    long long img =
        jint(json_array_get(json_object_get(json_object_get(j, "result"), "images"), 0), "id");
    json_decref(j);
    size_t len0 = 0;
    char *png0 = png_of(s.port, img, &len0);
    CHECK(png0 != NULL);

    /* a slow generation and a job queued behind it; kill -9 in the middle of a step loop */
    long long slow = submit(s.port, SLOW);
    long long behind = submit(s.port, "{\"prompt\":\"behind\",\"steps\":2,\"width\":64,"
                                      "\"height\":64}");
    CHECK_INT(wait_step(s.port, slow), 0);
    CHECK_INT(srv_stop(&s, SIGKILL), 128 + SIGKILL);

    /* an upload no job reads any more (as a crash between storing and queueing leaves it) */
    char orphan[700], orphan_file[800];
    snprintf(orphan, sizeof orphan, "%s/uploads/up-00000000deadbeef", data);
    snprintf(orphan_file, sizeof orphan_file, "%s/song.ogg", orphan);
    CHECK_INT(mkdir(orphan, 0700), 0);
    FILE *of = fopen(orphan_file, "w");
    if (of) {
        fputs("not really audio", of);
        fclose(of);
    }

    /* restart: the slow job runs again (second attempt) and completes; the other one too */
    CHECK_INT(srv_start(&s, data, NULL), 0);
    struct stat sb;
    CHECK(stat(orphan, &sb) != 0); /* removed at start */
    j = wait_job(s.port, slow, 120);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_INT(jint(j, "attempts"), 2);
    json_t *imgs = json_object_get(json_object_get(j, "result"), "images");
    CHECK_INT(json_array_size(imgs), 4);
    CHECK_INT(jint(json_array_get(imgs, 3), "seed"), 12);
    json_decref(j);
    j = wait_job(s.port, behind, 60);
    CHECK_STR(jstr(j, "state"), "done");
    json_decref(j);
    size_t len1 = 0;
    char *png1 = png_of(s.port, img, &len1);
    CHECK(png0 && png1 && len0 == len1 && !memcmp(png0, png1, len0));
    free(png1);

    /* a job killed on both of its attempts is failed with a reason. A restarted server runs the
     * re-queued job at once, and a job can finish before /api/health answers (seen with SLOW
     * under ThreadSanitizer: 4 x 2.6 s, done before the test subscribed); such a job ran to
     * "done" on its second attempt, and a new one takes its place, up to 4 times */
    long long twice = 0;
    int caught = 0, escaped = 0;
    for (int tries = 0; tries < 4 && !caught; tries++) {
        twice = submit(s.port, SLOWER);
        CHECK_INT(wait_step(s.port, twice), 0);
        CHECK_INT(srv_stop(&s, SIGKILL), 128 + SIGKILL);
        CHECK_INT(srv_start(&s, data, NULL), 0);
        int w2 = wait_step(s.port, twice);
        CHECK(w2 >= 0);
        caught = w2 == 0;
        if (caught) {
            CHECK_INT(srv_stop(&s, SIGKILL), 128 + SIGKILL);
            CHECK_INT(srv_start(&s, data, NULL), 0);
        } else {
            fprintf(stderr, "  job %lld ended before the test saw a step; another one\n", twice);
            j = wait_job(s.port, twice, 60);
            CHECK_STR(jstr(j, "state"), "done");
            CHECK_INT(jint(j, "attempts"), 2);
            json_decref(j);
            escaped++;
        }
    }
    CHECK(caught);
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld", twice);
    int st;
    j = api(s.port, "GET", path, NULL, &st);
    CHECK_STR(jstr(j, "state"), "failed");
    CHECK_INT(jint(j, "attempts"), 2);
    CHECK(strstr(jstr(j, "error"), "server stopped") != NULL);
    json_decref(j);

    /* earlier results are all still there, and the server works */
    png1 = png_of(s.port, img, &len1);
    CHECK(png0 && png1 && len0 == len1 && !memcmp(png0, png1, len0));
    free(png1);
    json_t *g = api(s.port, "GET", "/api/gallery?per_page=100", NULL, &st);
    CHECK_INT(jint(g, "total"), 1 + 4 + 1 + 4 * escaped);
    json_decref(g);
    long long after =
        submit(s.port, "{\"prompt\":\"after\",\"steps\":2,\"width\":64,\"height\":64}");
    j = wait_job(s.port, after, 60);
    CHECK_STR(jstr(j, "state"), "done");
    json_decref(j);

    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (test_failures)
        srv_dump_log(&s);
    free(png0);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
