/*
 * queue_internal.h — what the queue (queue.c) shares with the two job runners
 * (run_generate.c, run_analyze.c): the queue struct, cancellation flags and event helpers.
 */
#ifndef M2P_JOBS_QUEUE_INTERNAL_H
#define M2P_JOBS_QUEUE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "jobs/queue.h"

#define JOBS_MAX_WORKERS 16

typedef struct worker_slot {
    jobs *q;
    int kind;
    pthread_t thread;
    int64_t running;     /* job id being run, 0 when idle (q->lock) */
    volatile int cancel; /* set by jobs_cancel for the running job */
} worker_slot;

struct jobs {
    jobs_config cfg;
    char data_dir[1024];
    m2p_store *store; /* jobs, results, batches (jobs_store) */
    m2p_store *cache; /* a second connection for the analysis' own caching */
    progress_bus *bus;
    model_cache *models;
    pthread_mutex_t lock;
    pthread_cond_t work[2]; /* per kind: a job was queued */
    pthread_cond_t done;    /* some job finished */
    int stop;
    worker_slot slots[JOBS_MAX_WORKERS];
    int n_slots;
};

/* Run one claimed job; each writes the outcome to the store and publishes the final event. */
void run_generate(jobs *q, worker_slot *slot, const store_job *job);
void run_analyze(jobs *q, worker_slot *slot, const store_job *job);

/* Publish json (stolen) as job's event of kind, plus the original protocol's messages. */
void jobs_publish(jobs *q, int64_t job, int kind, int variation, json_t *event, json_t *const *orig,
                  int n_orig);
/* {type:"stage", job, stage, ...extra} */
void jobs_publish_stage(jobs *q, int64_t job, const char *stage, double percent);
/* Mark failed (or canceled) in the store and publish the error event. */
void jobs_fail(jobs *q, int64_t job, const char *message, int canceled);

/* base64 of bytes (malloc'd, NUL terminated). */
char *jobs_base64(const uint8_t *data, size_t n);

#endif
