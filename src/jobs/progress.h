/*
 * progress.h — the in-process progress bus: workers publish a job's events, WebSocket clients
 * subscribe to jobs and receive them.
 *
 * Publishing never blocks on a client: events go into a bounded queue that one dispatcher thread
 * delivers (step events are dropped when the queue is full; stage, done and error never are).
 * The bus keeps each recent job's current state (last stage, last step of each variation, the
 * final event), so a client that subscribes late or reconnects gets it at once.
 * A subscriber chooses per job the message set: this server's events, or the original Mus2Pic's
 * {type:"progress"|"generation_time"|"complete"|"error"} messages.
 */
#ifndef M2P_JOBS_PROGRESS_H
#define M2P_JOBS_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

enum { PROGRESS_STAGE = 0, PROGRESS_STEP = 1, PROGRESS_DONE = 2, PROGRESS_ERROR = 3 };
enum { PROGRESS_PROTO_EVENTS = 0, PROGRESS_PROTO_ORIGINAL = 1 };

typedef struct progress_bus progress_bus;
typedef struct progress_sub progress_sub;

/* Write one text message to a subscriber; return < 0 when it is gone. Called by one thread at
 * a time for a given subscriber. */
typedef int (*progress_write_fn)(void *ctx, const char *msg, size_t len);

progress_bus *progress_bus_new(int queue_cap);
void progress_bus_free(progress_bus *bus);

/* Publish an event of job. json is this server's message; orig (n_orig messages) the original
 * protocol's translation (may be 0). variation: 0-based for PROGRESS_STEP, else -1. The bus
 * copies the strings. */
void progress_publish(progress_bus *bus, int64_t job, int kind, int variation, const char *json,
                      const char *const *orig, int n_orig);
/* Forget a job's state (after deletion). */
void progress_forget(progress_bus *bus, int64_t job);

progress_sub *progress_sub_new(progress_bus *bus, progress_write_fn write, void *ctx);
/* Subscribe to job: writes first_msg (if any), then the job's current state, then its events.
 * At most 64 jobs per subscriber (M2P_EBUSY beyond). */
int progress_subscribe(progress_bus *bus, progress_sub *sub, int64_t job, int proto,
                       const char *first_msg);
void progress_unsubscribe(progress_bus *bus, progress_sub *sub, int64_t job);
/* Hold every delivery (publishers are not held: their events queue) until progress_release.
 * For queueing a job and subscribing to it with nothing of it delivered in between: its worker
 * may start at once, and the original protocol gets no replay of missed steps. The holder may
 * call progress_subscribe; keep the hold short (one job creation). */
void progress_hold(progress_bus *bus);
void progress_release(progress_bus *bus);
/* Unsubscribe from everything and free; waits for a delivery in progress to this subscriber. */
void progress_sub_free(progress_bus *bus, progress_sub *sub);

/* Counters for /api/health and tests. */
typedef struct progress_stats {
    int64_t published, delivered, dropped;
    int subscribers, queued;
} progress_stats;
void progress_get_stats(progress_bus *bus, progress_stats *out);

#endif
