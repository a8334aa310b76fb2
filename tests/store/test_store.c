/*
 * test_store.c — the SQLite store: folder creation, WAL mode, idempotent migrations, the
 * key/value cache (get, put, overwrite, expiry, bad arguments) and concurrent writers, both
 * threads sharing one handle and threads with a connection each.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/migrations.h"
#include "store/store.h"
#include "test.h"

#define N_THREADS 4
#define N_PER_THREAD 150

static char *tmp;

static long long scalar(m2p_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *text1(m2p_store *s, const char *sql, char *buf, size_t n)
{
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

struct worker {
    m2p_store *shared; /* NULL: open an own connection */
    const char *dir;
    int id;
    int errors;
};

static void *writer(void *arg)
{
    struct worker *w = arg;
    m2p_store *s = w->shared;
    if (!s && m2p_store_open(w->dir, &s) != 0) {
        fprintf(stderr, "worker %d: open: %s\n", w->id, m2p_errmsg());
        w->errors++;
        return NULL;
    }
    for (int i = 0; i < N_PER_THREAD; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "k%d-%d", w->id, i);
        snprintf(val, sizeof val, "v%d-%d", w->id, i * 7);
        if (store_cache_put(s, w->shared ? "shared" : "own", key, val, 0) != 0) {
            fprintf(stderr, "worker %d: put: %s\n", w->id, m2p_errmsg());
            w->errors++;
        }
        char *got = NULL;
        if (store_cache_get(s, w->shared ? "shared" : "own", key, &got) != 0 || !got ||
            strcmp(got, val) != 0)
            w->errors++;
        free(got);
    }
    if (!w->shared)
        m2p_store_close(s);
    return NULL;
}

static void concurrent(const char *dir, m2p_store *shared, const char *ns)
{
    pthread_t th[N_THREADS];
    struct worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.shared = shared, .dir = dir, .id = i};
        CHECK_INT(pthread_create(&th[i], NULL, writer, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].errors, 0);
    }
    m2p_store *s;
    CHECK_INT(m2p_store_open(dir, &s), 0);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM cache WHERE ns = '%s'", ns);
    CHECK_INT(scalar(s, sql), N_THREADS * N_PER_THREAD);
    char *v = NULL;
    CHECK_INT(store_cache_get(s, ns, "k3-149", &v), 0);
    CHECK_STR(v, "v3-1043");
    free(v);
    m2p_store_close(s);
}

int main(void)
{
    tmp = test_tmpdir("store");
    CHECK(tmp != NULL);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/a/b/data", tmp); /* missing parents are created */

    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(dir, &s), 0);
    CHECK(s != NULL);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    char path[600];
    snprintf(path, sizeof path, "%s/mus2pic.db", dir);
    CHECK(access(path, F_OK) == 0);

    char buf[64];
    CHECK_STR(text1(s, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    int n_mig;
    const store_migration *mig = store_migrations(&n_mig);
    CHECK(n_mig >= 1);
    CHECK_STR(mig[0].name, "cache: namespaced key/value cache with expiry");
    CHECK_INT(store_schema_version(s->db), n_mig);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM schema_version"), n_mig);
    CHECK_INT(sqlite3_threadsafe() != 0, 1);

    /* A second handle on the same folder while the first is open: migrations do nothing more. */
    m2p_store *s2 = NULL;
    CHECK_INT(m2p_store_open(dir, &s2), 0);
    CHECK_INT(scalar(s2, "SELECT COUNT(*) FROM schema_version"), n_mig);
    CHECK_INT(store_migrate(s2->db), 0);
    CHECK_INT(scalar(s2, "SELECT COUNT(*) FROM schema_version"), n_mig);

    /* get/put */
    char *v = (char *)"junk";
    CHECK_INT(store_cache_get(s, "band_song", "abc", &v), M2P_ENOTFOUND);
    CHECK(v == NULL);
    CHECK(strstr(m2p_errmsg(), "band_song") != NULL);
    CHECK_INT(store_cache_put(s, "band_song", "abc", "{\"band\":\"Queen\"}", 0), 0);
    CHECK_INT(store_cache_get(s2, "band_song", "abc", &v), 0); /* visible to the other handle */
    CHECK_STR(v, "{\"band\":\"Queen\"}");
    free(v);
    CHECK_INT(store_cache_put(s, "band_song", "abc", "second", 0), 0); /* overwrite */
    CHECK_INT(store_cache_get(s, "band_song", "abc", &v), 0);
    CHECK_STR(v, "second");
    free(v);
    CHECK_INT(store_cache_get(s, "genre:musicbrainz", "abc", &v), M2P_ENOTFOUND); /* namespaces */
    CHECK_INT(store_cache_put(s, "ns", "empty", "", 0), 0);
    CHECK_INT(store_cache_get(s, "ns", "empty", &v), 0);
    CHECK_STR(v, "");
    free(v);

    /* expiry: a 1 s entry is there at once and gone after 1.2 s; a 1-hour entry stays */
    CHECK_INT(store_cache_put(s, "ttl", "short", "x", 1), 0);
    CHECK_INT(store_cache_put(s, "ttl", "long", "y", 3600), 0);
    CHECK_INT(store_cache_get(s, "ttl", "short", &v), 0);
    CHECK_STR(v, "x");
    free(v);
    usleep(1200 * 1000);
    CHECK_INT(store_cache_get(s, "ttl", "short", &v), M2P_ENOTFOUND);
    CHECK_INT(store_cache_get(s, "ttl", "long", &v), 0);
    CHECK_STR(v, "y");
    free(v);
    /* a later write drops the expired row */
    CHECK_INT(store_cache_put(s, "ttl", "other", "z", 0), 0);
    CHECK_INT(scalar(s, "SELECT COUNT(*) FROM cache WHERE ns = 'ttl' AND key = 'short'"), 0);

    /* bad arguments */
    CHECK_INT(store_cache_get(s, NULL, "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_get(s, "", "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_get(NULL, "ns", "k", &v), M2P_EINVAL);
    CHECK_INT(store_cache_put(s, "ns", "k", NULL, 0), M2P_EINVAL);
    CHECK_INT(store_cache_put(s, "ns", "k", "v", -5), M2P_EINVAL);
    CHECK_INT(store_exec(s, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42)"), 0);
    CHECK_INT(scalar(s, "SELECT x FROM t"), 42);
    CHECK_INT(store_exec(s, "NOT SQL AT ALL"), M2P_EIO);
    CHECK(strstr(m2p_errmsg(), "syntax error") != NULL);
    m2p_store_close(s2);
    s2 = (m2p_store *)1;
    CHECK_INT(m2p_store_open("", &s2), M2P_EINVAL); /* *out is NULL after a failure */
    CHECK(s2 == NULL);
    snprintf(path, sizeof path, "%s/afile", tmp);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    m2p_store *bad = (m2p_store *)1;
    CHECK_INT(m2p_store_open(path, &bad), M2P_EIO); /* a file where the folder should be */
    CHECK(bad == NULL);
    CHECK(strstr(m2p_errmsg(), "afile") != NULL);

    /* concurrency: 4 threads on one handle, then 4 threads with a connection each */
    concurrent(dir, s, "shared");
    concurrent(dir, NULL, "own");

    m2p_store_close(s);
    m2p_store_close(NULL);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
