/*
 * store_internal.h — what the store front (store.c) shares with its two backends: the handle and
 * the table of backend operations (store_sqlite.c + jobs_store.c for SQLite, store_pg.c +
 * jobs_pg.c for PostgreSQL).
 *
 * store.c chooses the backend from the URL, takes the handle's lock around every operation and
 * calls the backend; a backend function therefore runs alone on its connection and never locks.
 */
#ifndef M2P_STORE_STORE_INTERNAL_H
#define M2P_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "core/buf.h"
#include "store/jobs_store.h"
#include "store/store.h"

typedef struct store_backend {
    const char *name; /* "sqlite" | "postgresql" */
    void (*close)(m2p_store *s);
    int (*exec)(m2p_store *s, const char *sql);
    int (*scalar)(m2p_store *s, const char *sql, int64_t *v);
    int (*migrate)(m2p_store *s);
    int (*schema_version)(m2p_store *s);
    int (*cache_get)(m2p_store *s, const char *ns, const char *key, char **value);
    int (*cache_put)(m2p_store *s, const char *ns, const char *key, const char *value,
                     int64_t ttl_s);
    /* jobs_store.h, with the same arguments */
    int (*job_create)(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                      int64_t parent_id, int max_queued, int64_t *id);
    int (*job_claim)(m2p_store *s, int kinds, const store_lease *lease, store_job *out);
    int (*job_renew)(m2p_store *s, const store_job *job, int lease_ms, int *cancel);
    int (*job_release)(m2p_store *s, const store_job *job);
    int (*job_get)(m2p_store *s, int64_t id, store_job *out);
    int (*job_finish)(m2p_store *s, const store_job *job, const char *result);
    int (*job_finish_and_queue)(m2p_store *s, const store_job *job, const char *result, int kind,
                                const char *params, int64_t *id);
    int (*job_fail)(m2p_store *s, int64_t id, int attempt, const char *error, int canceled);
    int (*job_request_cancel)(m2p_store *s, int64_t id);
    int (*job_delete)(m2p_store *s, int64_t id);
    int (*job_count)(m2p_store *s, const char *state, int kind, int64_t *n);
    int (*jobs_recover)(m2p_store *s, int max_attempts, const char *worker, int *requeued,
                        int *failed);
    int (*jobs_in_state)(m2p_store *s, const char *state, store_job **out, int *n);
    int (*jobs_of_batch)(m2p_store *s, int64_t batch_id, store_job **out, int *n);
    int (*last_generation)(m2p_store *s, const char *model, store_job *out);
    int (*finish_with_results)(m2p_store *s, const store_job *job, const char *meta,
                               const store_result *r, int n,
                               char *(*make_result)(const int64_t *ids, int n, void *ud), void *ud);
    int (*result_png)(m2p_store *s, int64_t id, uint8_t **png, size_t *len);
    int (*result_delete)(m2p_store *s, int64_t id);
    int (*gallery)(m2p_store *s, int offset, int limit, char **json, int64_t *total);
    int (*results_of_job)(m2p_store *s, int64_t job_id, int64_t **ids, int *n);
    int (*batch_create)(m2p_store *s, const char *params, int64_t *id);
    int (*batch_submit)(m2p_store *s, const char *params, int kind, const char *const *job_params,
                        int n, int64_t *id, int64_t *job_ids);
    int (*batch_get)(m2p_store *s, int64_t id, char **params, int64_t *created_ms);
    int (*batches_list)(m2p_store *s, int offset, int limit, int64_t **ids, int *n);
    int (*worker_beat)(m2p_store *s, const store_worker *w);
    int (*workers_list)(m2p_store *s, int64_t seen_since_ms, store_worker **out, int *n);
    int (*queue_depth)(m2p_store *s, char **json);
    int (*event_put)(m2p_store *s, int64_t job, const char *event, int64_t *id);
    /* store.h, shared audio files (NULL: the backend has none) */
    int (*audio_put)(m2p_store *s, const char *key, const char *path, int64_t max_bytes,
                     int64_t *size);
    int (*audio_get)(m2p_store *s, const char *key, const char *path, int64_t *size);
    int (*audio_delete)(m2p_store *s, const char *key);
    int (*audio_trim)(m2p_store *s, const char *prefix, int64_t max_bytes, int *removed);
} store_backend;

struct m2p_store {
    const store_backend *be;
    pthread_mutex_t lock;  /* recursive: one operation or transaction at a time on this handle */
    char *where;           /* the database file or the URL without its password, for messages */
    sqlite3 *db;           /* SQLite backend */
    struct pg_conn *pg;    /* PostgreSQL backend (libpq's PGconn) */
    int64_t next_retry_ms; /* PostgreSQL: no reconnect attempt before this time (backoff) */
    int backoff_ms;
};

/* The tables are defined with the job operations (jobs_store.c, jobs_pg.c); the connection
 * operations they name come from store_sqlite.c and store_pg.c. */
extern const store_backend store_sqlite_backend;
extern const store_backend store_pg_backend;

void store_sqlite_close(m2p_store *s);
int store_sqlite_exec(m2p_store *s, const char *sql);
int store_sqlite_scalar(m2p_store *s, const char *sql, int64_t *v);
int store_sqlite_migrate(m2p_store *s);
int store_sqlite_schema_version(m2p_store *s);
int store_sqlite_cache_get(m2p_store *s, const char *ns, const char *key, char **value);
int store_sqlite_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                           int64_t ttl_s);

void store_pg_close(m2p_store *s);
int store_pg_exec(m2p_store *s, const char *sql);
int store_pg_scalar(m2p_store *s, const char *sql, int64_t *v);
int store_pg_migrate(m2p_store *s);
int store_pg_schema_version(m2p_store *s);
int store_pg_cache_get(m2p_store *s, const char *ns, const char *key, char **value);
int store_pg_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                       int64_t ttl_s);
int store_pg_event_put(m2p_store *s, int64_t job, const char *event, int64_t *id);
int store_pg_audio_put(m2p_store *s, const char *key, const char *path, int64_t max_bytes,
                       int64_t *size);
int store_pg_audio_get(m2p_store *s, const char *key, const char *path, int64_t *size);
int store_pg_audio_delete(m2p_store *s, const char *key);
int store_pg_audio_trim(m2p_store *s, const char *prefix, int64_t max_bytes, int *removed);

/* Backend constructors: fill s (be, db or pg) or return an error. */
int store_sqlite_open(m2p_store *s, const char *file);
int store_pg_open(m2p_store *s, const char *url);

int64_t store_now_ms(void);
/* M2P_ENOTFOUND "<thing> <id> does not exist" (thing: job, image, batch), for both backends. */
int store_not_found(const char *thing, int64_t id);
/* When a cache entry put at now with a lifetime of ttl_s seconds expires: 0 (never) for ttl_s
 * <= 0 or a time past int64. */
int64_t store_expires_ms(int64_t now, int64_t ttl_s);

/* The most rows a list read from the store holds in memory at once (pages ask for far fewer). */
#define STORE_MAX_ROWS 1000000

/* One image of the gallery as both backends read it; store_gallery_add appends its JSON
 * ({"id":..,"url":..,"meta":{..}}) to b, after a comma unless b holds only the opening "[". */
typedef struct store_result_row {
    int64_t id, job_id, created_ms;
    uint64_t seed;
    int variation, width, height;
    double seconds;
    const char *meta; /* JSON written by this program (validated on the way in); NULL or "": {} */
} store_result_row;
int store_gallery_add(m2p_buf *b, const store_result_row *r);

/* Queue depth: the index of a state in queued, running, done, failed, canceled (-1: other),
 * and the JSON of store_queue_depth from counts[kind][state] (*json malloc'd). */
int store_state_index(const char *state);
int store_depth_json(const int64_t counts[2][5], char **json);

#endif
