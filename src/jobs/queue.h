/*
 * queue.h — the persistent job queue and its worker pool.
 *
 * Every long operation (download + analysis, generation) is a row in the jobs table; workers
 * claim rows, run them and write the outcome back, publishing progress on the bus as they go.
 * Analysis runs on cfg.analysis_workers threads; generation on one thread (the engine already
 * uses every core). A claim is a lease that a heartbeat thread renews; when the queue stops, a
 * running job goes back to the queue for the next start or another worker. On start, jobs this
 * node held when it died, and any whose lease expired, are retried (up to max_attempts) or
 * failed with a reason (store_jobs_recover). With a PostgreSQL store, progress events also go to
 * the other nodes (store_event_put) and theirs come back onto this node's bus.
 */
#ifndef M2P_JOBS_QUEUE_H
#define M2P_JOBS_QUEUE_H

#include <stdint.h>

#include "jobs/models.h"
#include "jobs/progress.h"

/* The job kinds (the store's STORE_JOB_*: queue.c checks they agree). */
enum { JOBS_ANALYZE = 0, JOBS_GENERATE = 1 };
/* A job's row as the API shows it (jobs/records.h). */
typedef struct jobs_record jobs_record;

typedef struct jobs_config {
    const char *data_dir; /* uploads/ and cache/ live here */
    int analysis_workers; /* default 2 */
    int max_queued;       /* queued jobs accepted at once; default 200 */
    int max_attempts;     /* a job interrupted by a crash runs at most this often; 2 */
    int preview;          /* M2P_PREVIEW_* for step previews; default AUTO (TAESD if cached) */
    int genre_offline;    /* 1: no network genre sources (tests) */
    int64_t audio_cache_limit; /* bytes of downloaded audio kept; 0 = fetch's default */
    /* Many machines (a PostgreSQL store): */
    const char *store_url;  /* the store's URL, for the analysis cache's and the relay's own
                               connections; NULL = data_dir's SQLite file */
    const char *worker_name; /* the lease holder's name; NULL = this host's name */
    int lease_ms;           /* a claim's lease, renewed every third of it; default 30000 */
    int run_jobs;           /* 0: queue only, run nothing (serve --no-worker); default 1 */
    int kinds;              /* bit 1 << JOBS_*: the kinds this node runs; default both */
    const char *models;     /* comma-separated models this node can run; NULL = any */
    int generate_workers;   /* generation threads; default 1 (the engine uses every core) */
    int progress_from_others; /* 1 (web nodes): other nodes' events come onto this bus */
} jobs_config;

jobs_config jobs_default_config(void);

typedef struct jobs jobs;

int jobs_start(const jobs_config *cfg, m2p_store *store, progress_bus *bus, model_cache *models,
               jobs **out);
/* Tell the workers to stop: a running job stops at its next step and goes back to the queue
 * (never "canceled"). Returns at once; jobs_stop waits for them and frees the queue. */
void jobs_request_stop(jobs *q);
void jobs_stop(jobs *q);

/* Queue a job (params: a validated JSON object). M2P_EBUSY when the queue is full. */
int jobs_submit(jobs *q, int kind, const char *params, int64_t batch_id, int batch_index,
                int64_t parent_id, int64_t *id);
/* Queue a batch (store_batch_submit: the batch row and its n jobs, all or nothing). */
int jobs_submit_batch(jobs *q, const char *params, int kind, const char *const *job_params, int n,
                      int64_t *batch_id, int64_t *ids);
/* Cancel: a queued job at once (*now = 1), a running generation at its next step (*now = 0).
 * M2P_ENOTFOUND when absent; M2P_EINVAL when it already finished. */
int jobs_cancel(jobs *q, int64_t id, int *now);
/* Delete a job and its images (a running one is canceled first). */
int jobs_delete(jobs *q, int64_t id);
/* Wait until the job is done, failed or canceled (or timeout_ms passes: M2P_ETIMEOUT). */
int jobs_wait(jobs *q, int64_t id, int timeout_ms, jobs_record *out);

/* Counts for /api/health. */
typedef struct jobs_stats {
    int64_t queued, running, done, failed;
} jobs_stats;
void jobs_get_stats(jobs *q, jobs_stats *out);
/* The workers whose heartbeat is recent (within 3 leases): a JSON array (malloc'd) of
 * {name, host, pid, kinds, models, job, seen_ms}. */
char *jobs_workers_json(jobs *q);

#endif
