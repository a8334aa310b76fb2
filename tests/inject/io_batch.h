/*
 * io_batch.h — the store's writes failing, and the process dying at a write, over a batch's
 * whole life (queue -> analysis -> its generation -> result -> gallery) on the in-process
 * server (server_start) with the tiny model and a fake yt-dlp (tests/server/harness.h).
 *
 * A SQLite VFS shim wrapping the default VFS (installed as the default before the store opens)
 * counts xWrite and xSync calls: in "kill" mode the Nth ends the process at once (_exit, as
 * kill -9 between two writes), in "fail" mode it answers SQLITE_IOERR once. N walks over the
 * writes of a clean run: test_io_kill.c kills at every write of the batch's life and at a
 * stride over the server's first start (the migrations of a new file); test_io_fail.c fails every
 * write of the batch's life. M2P_INJECT_AT=N runs only write N. Each run is a child process; after
 * it, a fresh server on the same data folder must bring the batch to "finished" (every item's
 * analysis and generation done, or failed with a reason: never an item left running or done with
 * nothing queued after it, the bug a separate commit of the analysis and of its generation had),
 * the API must have answered every request with JSON (an error when a write failed), and the store
 * must pass integrity_check.
 */
#ifndef M2P_TEST_IO_BATCH_H
#define M2P_TEST_IO_BATCH_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "../server/harness.h"
#include "core/error.h"
#include "inject.h" /* the allocation wrappers every tests/inject program links with */
#include "server/server.h"
#include "store/store.h"

#define BATCH                                                                                      \
    "{\"urls\":[\"https://www.youtube.com/watch?v=fakeid12345\"],\"duration\":30,\"steps\":2,"     \
    "\"width\":64,\"height\":64,\"variations\":1}"
#define START_RUNS 8 /* kills while the server starts on a new folder, at a stride */

/* ---- the VFS shim ---- */

enum { SHIM_COUNT, SHIM_KILL, SHIM_FAIL };
typedef struct shim_file {
    sqlite3_file base;
    sqlite3_io_methods methods;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
} shim_file;

static sqlite3_vfs shim_vfs, *real_vfs;
static int shim_mode;
static long shim_at;
static atomic_long shim_writes;

/* 1 when this write or sync must fail (or has ended the process). */
static int shim_hit(void)
{
    long n = atomic_fetch_add(&shim_writes, 1) + 1;
    if (shim_mode == SHIM_KILL && n == shim_at)
        _exit(99);
    return shim_mode == SHIM_FAIL && n == shim_at;
}

#define REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return shim_hit() ? SQLITE_IOERR_WRITE : REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int shim_sync(sqlite3_file *f, int flags)
{
    return shim_hit() ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int shim_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}
static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    shim_file *sf = (shim_file *)file;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->base.pMethods = NULL;
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    if (rc != SQLITE_OK || !sf->real->pMethods)
        return rc;
    const sqlite3_io_methods *m = sf->real->pMethods;
    sqlite3_io_methods w = {m->iVersion,    shim_close,    shim_read,     shim_write,
                            shim_truncate,  shim_sync,     shim_size,     shim_lock,
                            shim_unlock,    shim_reserved, shim_fcntl,    shim_sector,
                            shim_devchar,   shim_shm_map,  shim_shm_lock, shim_shm_barrier,
                            shim_shm_unmap, shim_fetch,    shim_unfetch};
    sf->methods = w;
    sf->base.pMethods = &sf->methods;
    return SQLITE_OK;
}

/* The default VFS with counted writes becomes the default (in the child, before any open). */
static void shim_install(int mode, long at)
{
    real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *real_vfs;
    shim_vfs.zName = "m2p-inject";
    shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_mode = mode;
    shim_at = at;
    atomic_store(&shim_writes, 0);
    sqlite3_vfs_register(&shim_vfs, 1);
}

/* ---- one life of a batch ---- */

static server *start(const char *data)
{
    server_config cfg = server_default_config();
    cfg.port = 0; /* the kernel picks; server_port() says which */
    cfg.data_dir = data;
    cfg.genre_offline = 1;
    cfg.analysis_workers = 1;
    cfg.compute_threads = 2;
    /* a few HTTP workers: the default 1,280 (sized for slowloris, test_security's subject) are
     * each a thread created at every start, two starts a walked write, and under ASan each
     * creation maps its stack and shadow: 0.7 s of system time a start */
    cfg.threads = 8;
    cfg.max_ws = 2;
    /* a write that fails while a job ends leaves its claim to expire (its outcome is dropped,
     * the job goes back to the queue when its lease runs out): a short lease keeps each such
     * run to seconds instead of the default 30 s; renewed every third of it */
    cfg.lease_ms = 4000;
    cfg.n_models = 1;
    cfg.model_names[0] = "lcm";
    cfg.model_refs[0] = test_fixture("sd-tiny/model");
    server *s = NULL;
    if (server_start(&cfg, &s)) {
        fprintf(stderr, "server_start: %s\n", m2p_errmsg());
        return NULL;
    }
    return s;
}

/* Every answer is JSON: 2xx, or an error with a message. 1 when not. */
static int bad_answer(json_t *j, int st, const char *what)
{
    if (st >= 200 && st < 300 && j)
        return 0;
    if (st >= 400 && json_is_object(j) && (*jstr(j, "error") || *jstr(j, "message")))
        return 0;
    fprintf(stderr, "%s: status %d, %s\n", what, st, j ? "no error message" : "no JSON");
    return 1;
}

/* Wait for the newest batch to finish; 0 when it did (or none was ever queued), and each item
 * ended done with its image or failed with a reason. */
static int batch_settles(int port, double timeout_s)
{
    int st;
    json_t *l = api(port, "GET", "/api/batches", NULL, &st);
    if (bad_answer(l, st, "GET /api/batches")) {
        json_decref(l);
        return 1;
    }
    json_t *b0 = json_array_get(json_object_get(l, "batches"), 0);
    long long bid = b0 ? jint(b0, "id") : 0;
    json_decref(l);
    if (bid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/api/batches/%lld", bid);
    double end = now_s() + timeout_s;
    json_t *s = NULL;
    while (now_s() < end) {
        json_decref(s);
        s = api(port, "GET", path, NULL, &st);
        if (st == 200 && !strcmp(jstr(s, "state"), "finished"))
            break;
        sleep_ms(100);
    }
    int bad = strcmp(jstr(s, "state"), "finished") != 0;
    json_t *items = json_object_get(s, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        json_t *an = json_object_get(it, "analysis"), *gen = json_object_get(it, "generation");
        const char *as = jstr(an, "state"), *gs = jstr(gen, "state");
        int ok = !strcmp(as, "failed") ||
                 (!strcmp(as, "done") &&
                  (!strcmp(gs, "failed") ||
                   (!strcmp(gs, "done") && json_array_size(json_object_get(gen, "images")) == 1)));
        if (!ok) {
            fprintf(stderr, "batch %lld item %zu: analysis %s, generation %s\n", bid, i, as,
                    gen ? gs : "(none)");
            bad = 1;
        }
    }
    if (bad) {
        char *d = json_dumps(s, JSON_COMPACT);
        fprintf(stderr, "batch %lld did not settle: %.2000s\n", bid, d ? d : "");
        free(d);
    }
    json_decref(s);
    return bad;
}

/* The child: queue a batch, watch it to the end, read the gallery. Exit 0: the life ended
 * before write N; 1: an answer was wrong; 99 (from the shim): killed at write N. */
static void child_life(const char *data, int mode, long at, const char *counts)
{
    /* kills walk the server's start (the migrations of a new file) too; failures only the
     * batch's life, after the start */
    shim_install(mode == SHIM_KILL ? SHIM_KILL : SHIM_COUNT, at);
    server *s = start(data);
    if (!s)
        _exit(2);
    long at_start = atomic_load(&shim_writes);
    if (mode == SHIM_FAIL) {
        atomic_store(&shim_writes, 0);
        shim_mode = SHIM_FAIL;
    }
    int port = server_port(s), st, bad = 0;
    json_t *b = api(port, "POST", "/api/batches", BATCH, &st);
    bad |= bad_answer(b, st, "POST /api/batches");
    if (getenv("M2P_INJECT_DEBUG")) {
        char *d = json_dumps(b, JSON_COMPACT);
        fprintf(stderr, "POST /api/batches: %d %s (writes so far %ld)\n", st, d ? d : "",
                atomic_load(&shim_writes));
        free(d);
    }
    json_decref(b);
    if (st == 202)
        bad |= batch_settles(port, 60);
    else if (mode == SHIM_COUNT)
        bad = 1; /* the clean life must queue its batch */
    json_t *g = api(port, "GET", "/api/gallery", NULL, &st);
    bad |= bad_answer(g, st, "GET /api/gallery");
    json_decref(g);
    if (counts) {
        FILE *f = fopen(counts, "w");
        if (f) {
            fprintf(f, "%ld %ld\n", atomic_load(&shim_writes), at_start);
            fclose(f);
        }
    }
    _exit(bad);
}

/* After a faulted life: a fresh server settles the batch. Exit 0 when it did. */
static void child_recover(const char *data)
{
    server *s = start(data);
    if (!s)
        _exit(2);
    int bad = batch_settles(server_port(s), 60);
    server_stop(s);
    _exit(bad);
}

static int run_child(void (*fn)(const char *, int, long, const char *), const char *data, int mode,
                     long at, const char *counts)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        fn(data, mode, at, counts);
    int stt = 0;
    waitpid(pid, &stt, 0);
    return WIFEXITED(stt) ? WEXITSTATUS(stt) : 128 + WTERMSIG(stt);
}

static void recover_adapter(const char *data, int mode, long at, const char *counts)
{
    child_recover(data);
}

/* Integrity and valid states, read by this (single-threaded) process. */
static void check_store(const char *data, const char *what)
{
    m2p_store *db = NULL;
    CHECK_INT(m2p_store_open(data, &db), 0);
    if (!db)
        return;
    int64_t v = 0;
    CHECK_INT(store_scalar(db,
                           "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check = "
                           "'ok'",
                           &v),
              0);
    if (v != 1)
        fprintf(stderr, "%s: integrity_check failed\n", what);
    CHECK_INT(v, 1);
    /* no job outside the state machine, none done without its outcome, no orphan image */
    CHECK_INT(store_scalar(db,
                           "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('queued', 'running', "
                           "'done', 'failed', 'canceled') OR state = 'done' AND result IS NULL"
                           " OR state = 'done' AND kind = 1 AND NOT EXISTS (SELECT 1 FROM "
                           "results WHERE job_id = jobs.id)",
                           &v),
              0);
    if (v)
        fprintf(stderr, "%s: %lld jobs in an impossible state\n", what, (long long)v);
    CHECK_INT(v, 0);
    CHECK_INT(store_scalar(db,
                           "SELECT COUNT(*) FROM results r WHERE NOT EXISTS (SELECT 1 FROM jobs j "
                           "WHERE j.id = r.job_id AND j.state = 'done')",
                           &v),
              0);
    CHECK_INT(v, 0);
    m2p_store_close(db);
}

/* Walk N from `from` to `to` (write numbers as the child counts them) by stride. */
static void walk(const char *root, int mode, long from, long to, long stride)
{
    const char *name = mode == SHIM_KILL ? "kill" : "fail";
    long only = atol(test_env("M2P_INJECT_AT", "0"));
    int runs = 0;
    for (long n = from; n <= to; n += stride) {
        if (only && n != only)
            continue;
        char data[700];
        snprintf(data, sizeof data, "%s/%s-%ld", root, name, n);
        int rc = run_child(child_life, data, mode, n, NULL);
        runs++;
        if (mode == SHIM_KILL ? rc != 99 && rc != 0 : rc != 0) { /* 0: the life ended first */
            fprintf(stderr, "%s at write %ld: the run ended with %d\n", name, n, rc);
            test_failures++;
        }
        rc = run_child(recover_adapter, data, 0, 0, NULL);
        if (rc != 0) {
            fprintf(stderr, "%s at write %ld: the restarted server did not settle the batch (%d)\n",
                    name, n, rc);
            test_failures++;
        }
        check_store(data, name);
        test_rmtree(data);
    }
    fprintf(stderr, "%s: %d runs, writes %ld to %ld\n", name, runs, from, to);
}

/* The test: count the writes of a clean life, then walk mode over them. */
static int io_batch_main(int mode)
{
    harness_init();
    char *tmp = test_tmpdir(mode == SHIM_KILL ? "io-kill" : "io-fail");
    write_fake_ytdlp(tmp);
    /* The download's audio: 6 s of test_write_wav instead of the 25 s fixture (the fake yt-dlp
     * names its copy .ogg; the decoder reads the content). The walk is about the store's writes,
     * and every life analyses the audio, twice when a fault ends the first: the fixture made each
     * life 0.6 s longer under ASan, a minute of the walk's two minutes. */
    char audio[700];
    snprintf(audio, sizeof audio, "%s/short.wav", tmp);
    CHECK_INT(test_write_wav(audio, 6.0, 0), 0);
    setenv("FAKE_AUDIO", audio, 1);

    /* the clean life: how many writes it makes */
    char data[700], counts[700];
    snprintf(data, sizeof data, "%s/clean", tmp);
    snprintf(counts, sizeof counts, "%s/clean.count", tmp);
    CHECK_INT(run_child(child_life, data, SHIM_COUNT, 0, counts), 0);
    char *c = test_read_file(counts, NULL);
    long total = 0, at_start = 0;
    if (!c || sscanf(c, "%ld %ld", &total, &at_start) != 2)
        CHECK(!"the clean run's write count");
    free(c);
    fprintf(stderr,
            "writes and syncs: %ld starting the server on a new folder, %ld more in the "
            "batch's life\n",
            at_start, total - at_start);
    CHECK(at_start > 0);
    CHECK(total - at_start > 5);
    check_store(data, "clean");

    if (total - at_start > 5 && mode == SHIM_KILL) {
        walk(tmp, SHIM_KILL, 1, at_start, at_start / START_RUNS + 1);
        walk(tmp, SHIM_KILL, at_start + 1, total, 1);
    } else if (total - at_start > 5) {
        walk(tmp, SHIM_FAIL, 1, total - at_start, 1);
    }
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}

#endif
