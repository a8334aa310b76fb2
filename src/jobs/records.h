/*
 * records.h — the rows the web app reads and writes, through the queue handle: jobs (as the API
 * shows them), results (a poster's PNG, the gallery), batches, uploads (analysed once per
 * content; on PostgreSQL shared with the other nodes) and the store's backend. The server calls
 * these instead of the store (dependencies point one way: server -> jobs -> store), with the
 * store's semantics and error codes (src/store/jobs_store.h says what each row holds).
 * All strings handed out are malloc'd and owned by the caller.
 */
#ifndef M2P_JOBS_RECORDS_H
#define M2P_JOBS_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/queue.h"

/* A job's row as the API shows it (the lease's end and the cancel flag stay with the queue). */
struct jobs_record {
    int64_t id;
    int kind;          /* JOBS_* */
    char state[12];    /* queued | running | done | failed | canceled */
    char *params;      /* JSON object as submitted (validated) */
    char *result;      /* JSON, NULL until done */
    char *error;       /* message, NULL unless failed/canceled */
    int attempts;      /* times it was claimed */
    int64_t batch_id;  /* 0 when not part of a batch */
    int batch_index;   /* position of its URL in the batch */
    int64_t parent_id; /* the analysis job a batch generation came from, else 0 */
    int64_t created_ms, started_ms, finished_ms;
    char worker[64]; /* the worker that claimed it last ("" before any claim) */
};

/* Free the strings and zero the record (a zeroed or failed one too). */
void jobs_record_clear(jobs_record *r);

/* ---- jobs ---- */
/* M2P_ENOTFOUND when absent. */
int jobs_job_get(jobs *q, int64_t id, jobs_record *out);
/* A job as the API shows it: {id, kind, state, params, result, error, ...} (malloc'd JSON;
 * NULL when memory ran out). */
char *jobs_job_json(const jobs_record *j);
/* The event that tells a client the job's current state ({type:"state"}; NULL when memory ran
 * out). */
char *jobs_state_event(const jobs_record *j);
/* Number of jobs in a state (NULL = all) and kind (-1 = all). */
int jobs_count(jobs *q, const char *state, int kind, int64_t *n);
/* The generation with this model that finished last (its params and result say how long it took
 * and for what). M2P_ENOTFOUND when none has. */
int jobs_last_generation(jobs *q, const char *model, jobs_record *out);

/* ---- results ---- */
/* The PNG of one result (malloc'd). M2P_ENOTFOUND when absent. */
int jobs_result_png(jobs *q, int64_t id, uint8_t **png, size_t *len);
/* M2P_ENOTFOUND when absent. */
int jobs_result_delete(jobs *q, int64_t id);
/* Gallery page, newest first: a JSON array (malloc'd) of results with id, job_id, variation,
 * seed, width, height, seconds, created_ms and the job's meta (prompt, parameters, features,
 * source). *total gets the number of results. */
int jobs_gallery(jobs *q, int offset, int limit, char **json, int64_t *total);

/* ---- batches ---- */
/* params JSON (malloc'd) and creation time. M2P_ENOTFOUND when absent. */
int jobs_batch_get(jobs *q, int64_t id, char **params, int64_t *created_ms);
/* Newest first: ids (malloc'd). */
int jobs_batches_list(jobs *q, int offset, int limit, int64_t **ids, int *n);
/* The jobs of a batch, by batch_index then id. *out is malloc'd (jobs_record_clear each). */
int jobs_batch_jobs(jobs *q, int64_t batch_id, jobs_record **out, int *n);

/* ---- uploads ----
 * An upload is analysed once per content: key names the content and what changes the answer
 * (the server's choice), the value is the job that answers it. */
/* 1 when the job remembered under key is queued, running or done (it answers again), else 0.
 * When a job is remembered and still exists, *id and state get it (failed ones too). */
int jobs_upload_find(jobs *q, const char *key, int64_t *id, char *state, size_t len);
/* Remember job id as the answer to key (for good). */
int jobs_upload_remember(jobs *q, const char *key, int64_t id);
/* The shared copy of an upload (PostgreSQL: a worker on another host analyses it): the file at
 * path goes into the store under key on a connection of its own (the queue's store URL), so the
 * queue's shared one stays free while a large file streams. M2P_ETOOBIG over max_bytes (0: no
 * limit); M2P_EUNSUPPORTED without a store URL or on SQLite. *size gets its length. */
int jobs_audio_put(jobs *q, const char *key, const char *path, int64_t max_bytes, int64_t *size);
/* Let go of a shared upload (0 also when it was gone already). */
int jobs_audio_delete(jobs *q, const char *key);

/* ---- the store ---- */
/* "sqlite" or "postgresql". */
const char *jobs_store_backend(jobs *q);

#endif
