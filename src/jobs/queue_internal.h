/*
 * queue_internal.h — what the queue (queue.c) shares with the two job runners
 * (run_generate.c, run_analyze.c) and the records (records.c): the queue struct, cancellation
 * flags and the runner API (runner.c). Calls go one way: queue.c -> run_*.c -> runner.c, and
 * queue.c -> records.c, which calls only the store (tests/core/test_layering.sh).
 */
#ifndef M2P_JOBS_QUEUE_INTERNAL_H
#define M2P_JOBS_QUEUE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "jobs/queue.h"
#include "jobs/records.h"
#include "store/jobs_store.h"

#define JOBS_MAX_WORKERS 16

typedef struct worker_slot {
    jobs *q;
    int kind;
    pthread_t thread;
    int64_t running; /* job id being run, 0 when idle (q->lock) */
    int attempt;     /* the running claim's attempts: its lease token (q->lock) */
    /* Read by the runner's callbacks without q->lock, so atomics: */
    atomic_int cancel; /* a node asked the running job to stop */
    atomic_int lost;   /* the heartbeat found the lease gone: stop and write nothing */
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
    pthread_cond_t beat;    /* wakes the heartbeat thread to stop */
    atomic_int stop;        /* jobs_stop: runners hand their job back and return */
    int beat_stop;          /* under lock: the runners have returned, the heartbeat may end */
    worker_slot slots[JOBS_MAX_WORKERS];
    int n_slots;
    pthread_t heartbeat;
    int heartbeat_started;
    pthread_t relay; /* PostgreSQL: other nodes' progress events -> this bus */
    int relay_started;
    int remote;               /* PostgreSQL store: events go to the other nodes too */
    atomic_int relay_failing; /* the last event could not be written for the other nodes */
    char name[64];            /* this node's worker name (the lease holder) */
    char host[64];
    char node[96]; /* this process, unique: relayed events it wrote itself are skipped */
    int64_t started_ms;
};

/* Run one claimed job (called by queue.c only); each writes the outcome to the store and
 * publishes the final event through the runner API below. */
void run_generate(jobs *q, worker_slot *slot, const store_job *job);
void run_analyze(jobs *q, worker_slot *slot, const store_job *job);

/* ---- the runner API (runner.c): what a runner may call ---- */

/* Publish json (stolen) as job's event of kind, plus the original protocol's messages. */
void jobs_publish(jobs *q, int64_t job, int kind, int variation, json_t *event, json_t *const *orig,
                  int n_orig);
/* {type:"stage", job, stage, ...extra} */
void jobs_publish_stage(jobs *q, int64_t job, const char *stage, double percent);
/* Mark failed (or canceled) in the store and publish the error event. attempt: the claim's
 * attempts (a claim that lost its lease writes nothing), 0 for a queued job. */
void jobs_fail(jobs *q, int64_t job, int attempt, const char *message, int canceled);
/* The runner was interrupted (its callback answered "stop"): canceled by request -> canceled;
 * the lease was lost -> nothing is written; the queue is stopping -> the job goes back to the
 * queue for the next worker (never "canceled"). */
void jobs_interrupted(jobs *q, worker_slot *slot, const store_job *job);
/* Write a job's outcome with write(q, job, ud) (a store call). While the store is unreachable
 * (M2P_EBUSY: PostgreSQL restarting) it tries again with backoff, for up to one lease; a write
 * whose answer was lost may have committed, so when a retry finds the job done by this very
 * claim (same worker and attempt) that counts as written. Returns write's last result. */
int jobs_write_outcome(jobs *q, const store_job *job,
                       int (*write)(jobs *q, const store_job *job, void *ud), void *ud);
/* Nonzero when the running job must stop now (any of the three reasons above). */
int jobs_should_stop(const worker_slot *slot);

/* records.c: the store's row j into out, for the API; its strings move (j is left cleared). */
void jobs_record_take(jobs_record *out, store_job *j);

/* base64 of bytes (malloc'd, NUL terminated). */
char *jobs_base64(const uint8_t *data, size_t n);

#endif
