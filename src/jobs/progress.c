/*
 * progress.c — the progress bus (see progress.h): a bounded event queue, one dispatcher thread,
 * a subscriber list, and a small table of recent jobs' current state.
 *
 * Locks: q_lock guards the queue; st_lock the state table; s_lock the subscribers, and it is
 * held while writing to clients, so a subscriber is never freed during a write and a late
 * subscriber gets the state before any later event. Publishers take only q_lock and st_lock,
 * so a slow client (bounded by CivetWeb's write timeout) never stalls a worker. Order when
 * nested: s_lock, then st_lock. progress_hold is s_lock itself (recursive, so its holder may
 * subscribe): the dispatcher cannot deliver while a job is being created and subscribed to.
 */
#include "jobs/progress.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_VARIATIONS 16
#define MAX_SUB_JOBS 64
#define MAX_STATES 256

typedef struct event {
    struct event *next;
    int64_t job;
    int kind, variation;
    char *json;
    char **orig;
    int n_orig;
} event;

typedef struct job_state {
    int64_t job;
    uint64_t touched;
    char *stage;                /* last stage event */
    char *step[MAX_VARIATIONS]; /* last step event per variation */
    char *final;                /* done or error */
} job_state;

struct progress_sub {
    progress_sub *next;
    progress_write_fn write;
    void *ctx;
    int dead;
    int n;
    int64_t jobs[MAX_SUB_JOBS];
    int proto[MAX_SUB_JOBS];
};

struct progress_bus {
    pthread_mutex_t q_lock, s_lock, st_lock;
    pthread_cond_t q_cond;
    pthread_t thread;
    int stop;
    event *head, *tail;
    int queued, cap;
    progress_sub *subs;
    int n_subs;
    job_state states[MAX_STATES];
    uint64_t tick;
    int64_t published, delivered, dropped;
};

static void event_free(event *e)
{
    if (!e)
        return;
    free(e->json);
    for (int i = 0; i < e->n_orig; i++)
        free(e->orig[i]);
    free(e->orig);
    free(e);
}

static void state_clear(job_state *st)
{
    free(st->stage);
    for (int i = 0; i < MAX_VARIATIONS; i++)
        free(st->step[i]);
    free(st->final);
    memset(st, 0, sizeof *st);
}

/* The state slot of job (st_lock held); create evicts the least recently touched slot. */
static job_state *state_find(progress_bus *b, int64_t job, int create)
{
    job_state *victim = NULL;
    for (int i = 0; i < MAX_STATES; i++) {
        job_state *st = &b->states[i];
        if (st->job == job) {
            st->touched = ++b->tick;
            return st;
        }
        if (!victim || st->touched < victim->touched)
            victim = st;
    }
    if (!create)
        return NULL;
    state_clear(victim);
    victim->job = job;
    victim->touched = ++b->tick;
    return victim;
}

static void state_update(progress_bus *b, const event *e)
{
    job_state *st = state_find(b, e->job, 1);
    char **slot = NULL;
    if (e->kind == PROGRESS_STAGE)
        slot = &st->stage;
    else if (e->kind == PROGRESS_STEP && e->variation >= 0 && e->variation < MAX_VARIATIONS)
        slot = &st->step[e->variation];
    else if (e->kind == PROGRESS_DONE || e->kind == PROGRESS_ERROR)
        slot = &st->final;
    if (!slot)
        return;
    char *copy = strdup(e->json);
    if (!copy)
        return;
    free(*slot);
    *slot = copy;
}

static int sub_index(const progress_sub *s, int64_t job)
{
    for (int i = 0; i < s->n; i++)
        if (s->jobs[i] == job)
            return i;
    return -1;
}

static void deliver(progress_bus *b, progress_sub *s, const char *msg)
{
    if (s->dead || !msg)
        return;
    if (s->write(s->ctx, msg, strlen(msg)) < 0)
        s->dead = 1;
    else
        b->delivered++;
}

static void *dispatcher(void *arg)
{
    progress_bus *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->q_lock);
        while (!b->head && !b->stop)
            pthread_cond_wait(&b->q_cond, &b->q_lock);
        if (!b->head && b->stop) {
            pthread_mutex_unlock(&b->q_lock);
            return NULL;
        }
        event *e = b->head;
        b->head = e->next;
        if (!b->head)
            b->tail = NULL;
        b->queued--;
        pthread_mutex_unlock(&b->q_lock);

        pthread_mutex_lock(&b->s_lock);
        for (progress_sub *s = b->subs; s; s = s->next) {
            int i = sub_index(s, e->job);
            if (i < 0)
                continue;
            if (s->proto[i] == PROGRESS_PROTO_ORIGINAL) {
                for (int k = 0; k < e->n_orig; k++)
                    deliver(b, s, e->orig[k]);
            } else {
                deliver(b, s, e->json);
            }
        }
        pthread_mutex_unlock(&b->s_lock);
        event_free(e);
    }
}

progress_bus *progress_bus_new(int queue_cap)
{
    progress_bus *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cap = queue_cap > 0 ? queue_cap : 4096;
    pthread_mutex_init(&b->q_lock, NULL);
    /* recursive: progress_hold's holder subscribes (progress_subscribe locks it again) */
    pthread_mutexattr_t ra;
    pthread_mutexattr_init(&ra);
    pthread_mutexattr_settype(&ra, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->s_lock, &ra);
    pthread_mutexattr_destroy(&ra);
    pthread_mutex_init(&b->st_lock, NULL);
    pthread_cond_init(&b->q_cond, NULL);
    if (pthread_create(&b->thread, NULL, dispatcher, b) != 0) {
        pthread_mutex_destroy(&b->q_lock);
        pthread_mutex_destroy(&b->s_lock);
        pthread_mutex_destroy(&b->st_lock);
        pthread_cond_destroy(&b->q_cond);
        free(b);
        return NULL;
    }
    return b;
}

void progress_bus_free(progress_bus *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->q_lock);
    b->stop = 1;
    pthread_cond_signal(&b->q_cond);
    pthread_mutex_unlock(&b->q_lock);
    pthread_join(b->thread, NULL);
    while (b->head) {
        event *e = b->head;
        b->head = e->next;
        event_free(e);
    }
    while (b->subs) {
        progress_sub *s = b->subs;
        b->subs = s->next;
        free(s);
    }
    for (int i = 0; i < MAX_STATES; i++)
        state_clear(&b->states[i]);
    pthread_mutex_destroy(&b->q_lock);
    pthread_mutex_destroy(&b->s_lock);
    pthread_mutex_destroy(&b->st_lock);
    pthread_cond_destroy(&b->q_cond);
    free(b);
}

void progress_publish(progress_bus *b, int64_t job, int kind, int variation, const char *json,
                      const char *const *orig, int n_orig)
{
    event *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->job = job;
    e->kind = kind;
    e->variation = variation;
    e->json = strdup(json ? json : "{}");
    if (n_orig > 0)
        e->orig = calloc((size_t)n_orig, sizeof *e->orig);
    int bad = !e->json || (n_orig > 0 && !e->orig);
    for (int i = 0; !bad && i < n_orig; i++) {
        e->orig[i] = strdup(orig[i]);
        bad = !e->orig[i];
        e->n_orig = i + 1;
    }
    if (bad) {
        event_free(e);
        return;
    }
    pthread_mutex_lock(&b->st_lock);
    state_update(b, e);
    pthread_mutex_unlock(&b->st_lock);

    pthread_mutex_lock(&b->q_lock);
    b->published++;
    if (b->queued >= b->cap && kind == PROGRESS_STEP) {
        /* A client that is this far behind gets the next step instead; the state table
         * already holds this one for anyone who subscribes now. */
        b->dropped++;
        pthread_mutex_unlock(&b->q_lock);
        event_free(e);
        return;
    }
    if (b->tail)
        b->tail->next = e;
    else
        b->head = e;
    b->tail = e;
    b->queued++;
    pthread_cond_signal(&b->q_cond);
    pthread_mutex_unlock(&b->q_lock);
}

void progress_forget(progress_bus *b, int64_t job)
{
    pthread_mutex_lock(&b->st_lock);
    job_state *st = state_find(b, job, 0);
    if (st)
        state_clear(st);
    pthread_mutex_unlock(&b->st_lock);
}

progress_sub *progress_sub_new(progress_bus *b, progress_write_fn write, void *ctx)
{
    progress_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->write = write;
    s->ctx = ctx;
    pthread_mutex_lock(&b->s_lock);
    s->next = b->subs;
    b->subs = s;
    b->n_subs++;
    pthread_mutex_unlock(&b->s_lock);
    return s;
}

int progress_subscribe(progress_bus *b, progress_sub *s, int64_t job, int proto,
                       const char *first_msg)
{
    pthread_mutex_lock(&b->s_lock);
    int i = sub_index(s, job);
    if (i < 0) {
        if (s->n >= MAX_SUB_JOBS) {
            pthread_mutex_unlock(&b->s_lock);
            return m2p_error(M2P_EBUSY, "at most %d jobs per connection", MAX_SUB_JOBS);
        }
        i = s->n++;
        s->jobs[i] = job;
    }
    s->proto[i] = proto;
    deliver(b, s, first_msg);
    if (proto == PROGRESS_PROTO_EVENTS) {
        /* Copies, so the state table is not held during the writes. */
        char *msgs[MAX_VARIATIONS + 1] = {0};
        int n = 0;
        pthread_mutex_lock(&b->st_lock);
        job_state *st = state_find(b, job, 0);
        if (st && st->final) {
            msgs[n++] = strdup(st->final);
        } else if (st) {
            if (st->stage)
                msgs[n++] = strdup(st->stage);
            for (int v = 0; v < MAX_VARIATIONS && n <= MAX_VARIATIONS; v++)
                if (st->step[v])
                    msgs[n++] = strdup(st->step[v]);
        }
        pthread_mutex_unlock(&b->st_lock);
        for (int k = 0; k < n; k++) {
            deliver(b, s, msgs[k]);
            free(msgs[k]);
        }
    }
    pthread_mutex_unlock(&b->s_lock);
    return 0;
}

void progress_hold(progress_bus *b)
{
    pthread_mutex_lock(&b->s_lock);
}

void progress_release(progress_bus *b)
{
    pthread_mutex_unlock(&b->s_lock);
}

void progress_unsubscribe(progress_bus *b, progress_sub *s, int64_t job)
{
    pthread_mutex_lock(&b->s_lock);
    int i = sub_index(s, job);
    if (i >= 0) {
        s->jobs[i] = s->jobs[s->n - 1];
        s->proto[i] = s->proto[s->n - 1];
        s->n--;
    }
    pthread_mutex_unlock(&b->s_lock);
}

void progress_sub_free(progress_bus *b, progress_sub *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&b->s_lock);
    for (progress_sub **p = &b->subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            b->n_subs--;
            break;
        }
    }
    pthread_mutex_unlock(&b->s_lock);
    free(s);
}

void progress_get_stats(progress_bus *b, progress_stats *out)
{
    pthread_mutex_lock(&b->s_lock);
    out->subscribers = b->n_subs;
    out->delivered = b->delivered;
    pthread_mutex_unlock(&b->s_lock);
    pthread_mutex_lock(&b->q_lock);
    out->published = b->published;
    out->dropped = b->dropped;
    out->queued = b->queued;
    pthread_mutex_unlock(&b->q_lock);
}
