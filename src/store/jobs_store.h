/*
 * jobs_store.h — the web app's persistent rows: jobs (the queue), results (PNG bytes and their
 * metadata), batches and the workers seen, in either backend of the store (SQLite or PostgreSQL,
 * tables made by src/store/migrations.c).
 *
 * A job moves queued -> running -> done | failed | canceled. Claiming is one transaction
 * (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED), so two workers never run the same job. The
 * claim is a lease: the worker renews it while it works, and every write of the outcome checks
 * that the worker still holds it (same id, still running, same attempt), so a worker that was
 * paused past its lease cannot write a second result. A job whose lease expired goes back to the
 * queue (attempts counts the claims) or, after max attempts, fails with the reason. Results are
 * written in the same transaction that marks a generation done, so a finished image is never
 * lost and never orphaned.
 * All strings given in are copied; strings handed out are malloc'd and owned by the caller.
 */
#ifndef M2P_STORE_JOBS_STORE_H
#define M2P_STORE_JOBS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum { STORE_JOB_ANALYZE = 0, STORE_JOB_GENERATE = 1 };

typedef struct store_job {
    int64_t id;
    int kind;          /* STORE_JOB_* */
    char state[12];    /* queued | running | done | failed | canceled */
    char *params;      /* JSON object as submitted (validated) */
    char *result;      /* JSON, NULL until done */
    char *error;       /* message, NULL unless failed/canceled */
    int attempts;      /* times it was claimed */
    int64_t batch_id;  /* 0 when not part of a batch */
    int batch_index;   /* position of its URL in the batch */
    int64_t parent_id; /* the analysis job a batch generation came from, else 0 */
    int64_t created_ms, started_ms, finished_ms;
    char worker[64];        /* the worker that claimed it last ("" before any claim) */
    int64_t lease_until_ms; /* while running: the lease's end */
    int cancel_requested;   /* a node asked the running job to stop */
} store_job;

/* Who claims and for how long. models: comma-separated model names the worker can run
 * (generation jobs for other models are left to others); NULL or "" = any. */
typedef struct store_lease {
    const char *worker;
    int lease_ms;
    const char *models;
} store_lease;

void store_job_clear(store_job *j);
const char *store_job_kind_name(int kind);

/* Insert a queued job. M2P_EBUSY when max_queued (> 0) jobs are already queued. */
int store_job_create(m2p_store *s, int kind, const char *params, int64_t batch_id, int batch_index,
                     int64_t parent_id, int max_queued, int64_t *id);
/* Oldest queued job of this kind the lease's worker can run -> running (attempts + 1, worker,
 * lease until now + lease_ms). M2P_ENOTFOUND when none. */
int store_job_claim(m2p_store *s, int kind, const store_lease *lease, store_job *out);
/* Extend the lease of a claimed job (job as claimed: id and attempts) by lease_ms from now;
 * *cancel gets 1 when some node asked it to stop. M2P_ENOTFOUND when the lease was lost. */
int store_job_renew(m2p_store *s, const store_job *job, int lease_ms, int *cancel);
/* Hand a claimed job back to the queue (its worker is stopping); attempts stay counted. */
int store_job_release(m2p_store *s, const store_job *job);
int store_job_get(m2p_store *s, int64_t id, store_job *out);
/* running -> done with its result JSON, only while the lease holds (M2P_ENOTFOUND: the job is
 * no longer this claim's, e.g. its lease expired and another worker took it). */
int store_job_finish(m2p_store *s, const store_job *job, const char *result);
/* store_job_finish and store_job_create of the job that follows it (kind, params; same batch and
 * index, parent = job) in one transaction: both happen or neither (a batch item's analysis and
 * its generation). No queue limit: a batch was admitted whole. */
int store_job_finish_and_queue(m2p_store *s, const store_job *job, const char *result, int kind,
                               const char *params, int64_t *id);
/* -> failed (or canceled when canceled = 1) with a message, unless already finished. attempt:
 * the claim's attempts (the write is refused when the job was claimed again since), 0 = any. */
int store_job_fail(m2p_store *s, int64_t id, int attempt, const char *error, int canceled);
/* Ask a running job to stop; its worker sees it at its next renewal. M2P_EINVAL when the job is
 * not running. */
int store_job_request_cancel(m2p_store *s, int64_t id);
/* Delete a job and its results. M2P_ENOTFOUND when absent. */
int store_job_delete(m2p_store *s, int64_t id);
/* Number of jobs in a state (NULL = all) and kind (-1 = all). */
int store_job_count(m2p_store *s, const char *state, int kind, int64_t *n);
/* Jobs "running" whose lease expired (their worker died or hung), and with worker set, every
 * job that worker still holds (it restarted, so they are not running any more), go back to
 * queued when attempts < max_attempts, else to failed with the reason. Counts go to *requeued /
 * *failed (either may be NULL). */
int store_jobs_recover(m2p_store *s, int max_attempts, const char *worker, int *requeued,
                       int *failed);
/* The jobs in state (e.g. "queued"), oldest first. *out is malloc'd (store_job_clear each). */
int store_jobs_in_state(m2p_store *s, const char *state, store_job **out, int *n);
/* The jobs of a batch, by batch_index then id. *out is malloc'd (store_job_clear each). */
int store_jobs_of_batch(m2p_store *s, int64_t batch_id, store_job **out, int *n);

/* The generation with this model that finished last (its params and result say how long it took
 * and for what). M2P_ENOTFOUND when none has. */
int store_last_generation(m2p_store *s, const char *model, store_job *out);

/* One image of a finished generation. */
typedef struct store_result {
    int variation; /* 0-based */
    uint64_t seed;
    int width, height;
    double seconds;
    const uint8_t *png;
    size_t png_len;
} store_result;

/* Write n results and mark the job done with result JSON built by make_result from the new
 * result ids, all in one transaction that also checks the lease (M2P_ENOTFOUND when lost:
 * nothing is written). */
int store_job_finish_with_results(m2p_store *s, const store_job *job, const char *meta,
                                  const store_result *r, int n,
                                  char *(*make_result)(const int64_t *ids, int n, void *ud),
                                  void *ud);
/* The PNG of one result (malloc'd). M2P_ENOTFOUND when absent. */
int store_result_png(m2p_store *s, int64_t id, uint8_t **png, size_t *len);
int store_result_delete(m2p_store *s, int64_t id);
/* Gallery page, newest first: a JSON array (malloc'd) of results with id, job_id, variation,
 * seed, width, height, seconds, created_ms and the job's meta (prompt, parameters, features,
 * source). *total gets the number of results. */
int store_gallery(m2p_store *s, int offset, int limit, char **json, int64_t *total);
/* The result ids of a job, in variation order (*ids malloc'd). */
int store_results_of_job(m2p_store *s, int64_t job_id, int64_t **ids, int *n);

int store_batch_create(m2p_store *s, const char *params, int64_t *id);
/* A batch (params) and its n queued jobs of kind (job_params[i] at batch index i; ids into
 * job_ids) in one transaction: all or nothing. No queue limit (the caller checked the room). */
int store_batch_submit(m2p_store *s, const char *params, int kind, const char *const *job_params,
                       int n, int64_t *id, int64_t *job_ids);
/* params JSON (malloc'd) and creation time. M2P_ENOTFOUND when absent. */
int store_batch_get(m2p_store *s, int64_t id, char **params, int64_t *created_ms);
/* Newest first: ids (malloc'd). */
int store_batches_list(m2p_store *s, int offset, int limit, int64_t **ids, int *n);

/* A worker process (or a serve node that runs jobs), as its heartbeat records it. */
typedef struct store_worker {
    char name[64];
    char host[64];
    char kinds[32];    /* "generate,analyze" */
    char models[256];  /* comma-separated, "" = any */
    int pid;
    int64_t started_ms, seen_ms;
    int64_t job;       /* the job it runs now, 0 when idle */
} store_worker;
/* Insert or refresh w (seen_ms = now). */
int store_worker_beat(m2p_store *s, const store_worker *w);
/* Workers seen since seen_since_ms, by name (*out malloc'd). */
int store_workers_list(m2p_store *s, int64_t seen_since_ms, store_worker **out, int *n);
/* Queue depth per state and kind: a JSON object {"analyze":{"queued":n,...},"generate":{...}}
 * (malloc'd). */
int store_queue_depth(m2p_store *s, char **json);

#endif
