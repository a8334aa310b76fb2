/*
 * test_shared_upload.c — an upload shared through PostgreSQL, as processes: a web node
 * (`serve --store URL --no-worker`) receives a multipart upload and answers 202; the web node is
 * then killed (-9), and a `mus2pic worker` with a DIFFERENT --data folder, started only
 * afterwards, analyses the upload from the store's copy; a second web node (another --data)
 * reports the analysis (to a WebSocket client that subscribes late too), queues the generation
 * from its prompt and serves the finished poster. Nothing of the upload stays behind: no copy
 * in either --data folder, none in the store (audio_files).
 * A URL's download is shared too: far-1 downloads it (a fake yt-dlp), then a second worker
 * whose yt-dlp cannot download anything analyses the same URL from the store's copy.
 * Uploads whose jobs are canceled while queued, or deleted, leave nothing in the store either.
 */
#include "../server/harness.h"
#include "pgtest.h"
#include "store/store.h"

static const char *boundary = "----m2psharedupload";

/* A multipart body with the fixture's bytes as "file" and a duration. */
static char *multipart(const char *file, const char *duration, size_t *len)
{
    size_t n = 0;
    char *audio = test_read_file(file, &n);
    if (!audio)
        return NULL;
    char head[512], tail[128];
    snprintf(head, sizeof head,
             "--%s\r\nContent-Disposition: form-data; name=\"duration\"\r\n\r\n%s\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"choice.ogg\"\r\n"
             "Content-Type: audio/ogg\r\n\r\n",
             boundary, duration, boundary);
    snprintf(tail, sizeof tail, "\r\n--%s--\r\n", boundary);
    *len = strlen(head) + n + strlen(tail);
    char *b = malloc(*len);
    if (b) {
        memcpy(b, head, strlen(head));
        memcpy(b + strlen(head), audio, n);
        memcpy(b + strlen(head) + n, tail, strlen(tail));
    }
    free(audio);
    return b;
}

/* Files under dir/uploads (the folder itself may be missing: 0). */
static int count_uploads(const char *data)
{
    char cmd[900];
    snprintf(cmd, sizeof cmd, "find '%s/uploads' -type f 2>/dev/null | wc -l", data);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static long long count(m2p_store *s, const char *sql)
{
    int64_t v = -1;
    if (store_scalar(s, sql, &v))
        fprintf(stderr, "%s: %s\n", sql, m2p_errmsg());
    return v;
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("jobs-shared-upload");
    pgtest pg;
    char url[700];
    if (pgtest_start(&pg) || pgtest_createdb(&pg, "m2p", url, sizeof url)) {
        CHECK(!"a PostgreSQL cluster");
        TEST_DONE();
    }
    char web_data[700], web2_data[700], worker_data[700], worker_log[700];
    snprintf(web_data, sizeof web_data, "%s/web", t);
    snprintf(web2_data, sizeof web2_data, "%s/web2", t);
    snprintf(worker_data, sizeof worker_data, "%s/worker", t);
    snprintf(worker_log, sizeof worker_log, "%s/worker.log", t);
    const char *extra[] = {"--store", url, "--no-worker", NULL};
    write_fake_ytdlp(t); /* far-1's yt-dlp (MUS2PIC_YTDLP) */
    srv web;
    CHECK_INT(srv_start(&web, web_data, extra), 0);

    /* 1: the upload is acknowledged once its bytes are in the store, not in the node's --data */
    size_t len = 0;
    char *body = multipart(test_fixture("audio/librosa/choice.ogg"), "30", &len);
    CHECK(body != NULL);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
    resp r;
    CHECK_INT(http_req(web.port, "POST", "/api/analyze", ctype, body, len, NULL, &r), 0);
    CHECK_INT(r.status, 202);
    json_t *ack = r.body ? json_loads(r.body, 0, NULL) : NULL;
    long long id = jint(ack, "job_id");
    CHECK(id > 0);
    CHECK_STR(jstr(ack, "state"), "queued");
    json_decref(ack);
    resp_free(&r);
    free(body);
    CHECK_INT(count_uploads(web_data), 0);
    m2p_store *db = NULL;
    CHECK_INT(m2p_store_open(url, &db), 0);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_files"), 1);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'"), 1);

    /* 2: the web node dies; what it acknowledged is not lost */
    CHECK_INT(srv_stop(&web, SIGKILL), 128 + SIGKILL);

    /* 3: a worker on "another host" (its own --data) analyses and generates */
    char model[700];
    snprintf(model, sizeof model, "lcm=%s", test_fixture("sd-tiny/model"));
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    const char *argv[] = {bin,         "worker",  "--store", url,   "--model",          model,
                          "--name",    "far-1",   "--kinds", "analyze,generate", "--data",
                          worker_data, "--offline", "--compute-threads", "1", "-v", NULL};
    pid_t w = fork();
    if (w == 0) {
        FILE *f = freopen(worker_log, "a", stdout);
        (void)f;
        dup2(1, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    CHECK(w > 0);
    srv web2;
    CHECK_INT(srv_start(&web2, web2_data, extra), 0);
    json_t *j = wait_job(web2.port, id, 300);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_STR(jstr(j, "worker"), "far-1");
    json_t *result = json_object_get(j, "result");
    const char *prompt = jstr(result, "prompt");
    CHECK(prompt && *prompt);
    json_t *features = json_object_get(result, "features");
    CHECK(json_is_object(features));
    /* the analysis read the real file: librosa's beat_track gives choice.ogg 136.0 BPM
     * (fixtures/audio/README.md); a file of something else would not land near it */
    json_t *tempo = json_object_get(features, "tempo");
    CHECK(json_is_number(tempo) && json_number_value(tempo) > 120 &&
          json_number_value(tempo) < 150);
    if (!json_is_number(tempo))
        fprintf(stderr, "no tempo in the features\n");

    /* a WebSocket client that subscribes late on the second web node gets the current state
     * of a job a worker ran, with its analysis */
    wsc *late = wsc_open(web2.port, "/ws/progress");
    CHECK(late != NULL);
    if (late) {
        char sub[96];
        snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"jobs\":[%lld]}", id);
        wsc_send(late, sub);
        size_t at = 0;
        json_t *st = wsc_wait(late, &at, "state", id, 30);
        json_t *job = json_object_get(st, "state");
        CHECK_STR(jstr(job, "state"), "done");
        CHECK(jstr(json_object_get(job, "result"), "prompt") != NULL);
        json_decref(st);
        wsc_close(late);
    }

    /* 4: the generation from its prompt, served by the second web node */
    json_t *gen = json_pack("{s:s, s:i, s:i, s:i, s:i}", "prompt", prompt ? prompt : "x", "steps",
                            2, "width", 64, "height", 64, "seed", 7);
    char *gs = json_dumps(gen, JSON_COMPACT);
    json_decref(gen);
    json_decref(j);
    long long gid = submit(web2.port, gs);
    free(gs);
    CHECK(gid > 0);
    j = wait_job(web2.port, gid, 300);
    CHECK_STR(jstr(j, "state"), "done");
    long long img =
        jint(json_array_get(json_object_get(json_object_get(j, "result"), "images"), 0), "id");
    json_decref(j);
    char path[96];
    snprintf(path, sizeof path, "/api/images/%lld.png", img);
    CHECK_INT(http_req(web2.port, "GET", path, NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK(r.len > 8 && !memcmp(r.body, "\x89PNG", 4));
    resp_free(&r);

    /* 5: nothing of the upload left behind */
    CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_files"), 0);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_chunks"), 0);
    CHECK_INT(count_uploads(worker_data), 0);
    CHECK_INT(count_uploads(web_data), 0);
    char *log = test_read_file(worker_log, NULL);
    CHECK(log && strstr(log, "from the store") != NULL);
    free(log);

    /* 6: a URL: far-1 downloads it (the fake yt-dlp) and shares the download; far-1 stops, and
     * far-2, on a host whose yt-dlp cannot download anything, analyses the same URL from the
     * store's copy */
    const char *url_job = "{\"url\":\"https://www.youtube.com/watch?v=fakeid12345\","
                          "\"duration\":%d}";
    char jb[160];
    snprintf(jb, sizeof jb, url_job, 30);
    int st = 0;
    json_t *a = api(web2.port, "POST", "/api/analyze", jb, &st);
    CHECK_INT(st, 202);
    if (st != 202)
        fprintf(stderr, "analyze: %s\n", jstr(a, "error") ? jstr(a, "error") : "?");
    long long u1 = jint(a, "job_id");
    json_decref(a);
    j = wait_job(web2.port, u1, u1 > 0 ? 300 : 1);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_STR(jstr(j, "worker"), "far-1");
    double tempo1 = json_number_value(
        json_object_get(json_object_get(json_object_get(j, "result"), "features"), "tempo"));
    json_decref(j);
    CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_files WHERE key = 'dl-youtube-fakeid12345'"),
              1);
    kill(w, SIGTERM);
    int status = 0;
    waitpid(w, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    char broken[700], worker2_data[700], worker2_log[700];
    snprintf(broken, sizeof broken, "%s/no-yt-dlp", t);
    FILE *f = fopen(broken, "w");
    if (f) {
        fputs("#!/bin/sh\necho 'ERROR: this host cannot download' >&2\nexit 1\n", f);
        fclose(f);
    }
    chmod(broken, 0755);
    setenv("MUS2PIC_YTDLP", broken, 1);
    snprintf(worker2_data, sizeof worker2_data, "%s/worker2", t);
    snprintf(worker2_log, sizeof worker2_log, "%s/worker2.log", t);
    const char *argv2[] = {bin,          "worker",  "--store", url,   "--model",          model,
                           "--name",     "far-2",   "--kinds", "analyze", "--data",
                           worker2_data, "--offline", "-v",    NULL};
    pid_t w2 = fork();
    if (w2 == 0) {
        FILE *lf = freopen(worker2_log, "a", stdout);
        (void)lf;
        dup2(1, 2);
        execv(bin, (char *const *)argv2);
        _exit(127);
    }
    CHECK(w2 > 0);
    snprintf(jb, sizeof jb, url_job, 60);
    a = api(web2.port, "POST", "/api/analyze", jb, &st);
    CHECK_INT(st, 202);
    long long u2 = jint(a, "job_id");
    json_decref(a);
    j = wait_job(web2.port, u2, u2 > 0 ? 300 : 1);
    CHECK_STR(jstr(j, "state"), "done");
    CHECK_STR(jstr(j, "worker"), "far-2");
    double tempo2 = json_number_value(
        json_object_get(json_object_get(json_object_get(j, "result"), "features"), "tempo"));
    CHECK(tempo1 > 120 && tempo1 < 150 && tempo2 > 120 && tempo2 < 150);
    if (!(tempo2 > 120 && tempo2 < 150))
        fprintf(stderr, "tempo %g then %g; %s\n", tempo1, tempo2, jstr(j, "error"));
    json_decref(j);
    log = test_read_file(worker2_log, NULL);
    CHECK(log && strstr(log, "youtube-fakeid12345 came from the shared store") != NULL);
    free(log);
    kill(w2, SIGTERM);
    waitpid(w2, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* 7: uploads whose jobs never run (no worker now): canceled while queued, or deleted, they
     * let go of their shared copy */
    const char *durations[2] = {"60", "full"};
    for (int k = 0; k < 2; k++) {
        body = multipart(test_fixture("audio/librosa/choice.ogg"), durations[k], &len);
        CHECK_INT(http_req(web2.port, "POST", "/api/analyze", ctype, body, len, NULL, &r), 0);
        free(body);
        CHECK_INT(r.status, 202);
        ack = r.body ? json_loads(r.body, 0, NULL) : NULL;
        long long qid = jint(ack, "job_id");
        json_decref(ack);
        resp_free(&r);
        CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_files WHERE key LIKE 'up-%'"), 1);
        snprintf(path, sizeof path, k ? "/api/jobs/%lld" : "/api/jobs/%lld/cancel", qid);
        json_decref(api(web2.port, k ? "DELETE" : "POST", path, k ? NULL : "{}", &st));
        CHECK(st == 200 || st == 202 || st == 204);
        CHECK_INT(count(db, "SELECT COUNT(*) FROM audio_files WHERE key LIKE 'up-%'"), 0);
    }
    CHECK_INT(count_uploads(web2_data), 0);
    m2p_store_close(db);
    CHECK_INT(srv_stop(&web2, SIGTERM), 0);
    if (test_failures) {
        srv_dump_log(&web);
        srv_dump_log(&web2);
        char *wl = test_read_file(worker_log, NULL);
        fprintf(stderr, "---- worker ----\n%s\n", wl ? wl : "");
        free(wl);
        wl = test_read_file(worker2_log, NULL);
        fprintf(stderr, "---- worker 2 ----\n%s\n", wl ? wl : "");
        free(wl);
    }
    pgtest_stop(&pg);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
