/*
 * ws.c — WebSocket /ws/progress: clients subscribe to jobs and receive their events from the
 * progress bus (src/jobs/progress.h).
 *
 * Client messages (text frames, JSON, at most 64 KiB):
 *   {type:"subscribe", jobs:[id, ...]}   -> a {type:"state"} event per job from the database,
 *                                           then the job's current progress, then its events
 *   {type:"unsubscribe", jobs:[...]}     {type:"ping"} -> {type:"pong"}
 *   {type:"generate", prompt, negative_prompt, num_steps, num_variations, model, ...}
 *       the original's message: queues a generation and answers in the original's messages
 *       (progress per variation per step, generation_time per variation, complete | error).
 * Anything else gets {type:"error", message}; a frame that is not a complete text frame, or is
 * too big, closes the connection. The number of clients is capped (cfg.max_ws): CivetWeb keeps
 * a worker thread per WebSocket, and its thread count is sized from that cap.
 *
 * A client that stops reading costs only itself: nothing writes to its socket but its own writer
 * thread, fed by a bounded queue (WS_QUEUE_MSGS messages, WS_QUEUE_BYTES bytes). The progress
 * bus and the client's requests only append to it. When it is full, step and progress messages
 * (the bulky ones, with previews) are dropped; anything else overflowing marks the client dead:
 * the bus drops it, the queue is emptied and nothing more is sent (it gets the state again when
 * it reconnects and subscribes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json_limit.h"
#include "server/server_internal.h"

#define WS_MAX_MESSAGE (64 * 1024)

#define WS_QUEUE_MSGS 512
#define WS_QUEUE_BYTES (8u << 20)

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    char text[];
} ws_msg;

typedef struct ws_client {
    server *s;
    struct mg_connection *conn;
    progress_sub *sub;
    pthread_t writer;
    pthread_mutex_t m;
    pthread_cond_t cv;
    ws_msg *head, *tail; /* the queue (m) */
    size_t n, bytes;
    int dead, stop; /* dead: overflowed or a write failed, nothing more is sent */
    long dropped;
} ws_client;

static void queue_clear(ws_client *w)
{
    while (w->head) {
        ws_msg *m = w->head;
        w->head = m->next;
        free(m);
    }
    w->tail = NULL;
    w->n = w->bytes = 0;
}

static void *ws_writer(void *arg)
{
    ws_client *w = arg;
    pthread_mutex_lock(&w->m);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->m);
        if (!w->head)
            break;
        ws_msg *m = w->head;
        w->head = m->next;
        if (!w->head)
            w->tail = NULL;
        w->n--;
        w->bytes -= m->len;
        pthread_mutex_unlock(&w->m);
        int ok = mg_websocket_write(w->conn, MG_WEBSOCKET_OPCODE_TEXT, m->text, m->len) > 0;
        free(m);
        pthread_mutex_lock(&w->m);
        if (!ok && !w->dead) {
            w->dead = 1;
            queue_clear(w);
        }
    }
    pthread_mutex_unlock(&w->m);
    return NULL;
}

/* Step and progress messages may be dropped; the next one supersedes them. */
static int droppable(const char *msg, size_t len)
{
    static const char *const types[] = {"{\"type\":\"step\"", "{\"type\":\"progress\""};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(types[i]);
        if (len >= n && !memcmp(msg, types[i], n))
            return 1;
    }
    return 0;
}

/* Queue one message for the writer; -1 when the client is dead (the bus then drops it). */
static int ws_write(void *ctx, const char *msg, size_t len)
{
    ws_client *w = ctx;
    int rc = 0;
    pthread_mutex_lock(&w->m);
    if (w->dead || w->stop) {
        rc = -1;
    } else if (w->n >= WS_QUEUE_MSGS || w->bytes + len > WS_QUEUE_BYTES) {
        if (droppable(msg, len)) {
            w->dropped++;
        } else {
            M2P_LOGW("websocket: a client is not reading (%zu messages, %zu bytes queued); "
                     "dropping it",
                     w->n, w->bytes);
            w->dead = 1;
            queue_clear(w);
            rc = -1;
            pthread_mutex_lock(&w->s->lock);
            w->s->ws_dropped++;
            pthread_mutex_unlock(&w->s->lock);
        }
    } else {
        ws_msg *m = malloc(sizeof *m + len + 1);
        if (!m) {
            rc = -1;
        } else {
            m->next = NULL;
            m->len = len;
            memcpy(m->text, msg, len);
            m->text[len] = 0;
            if (w->tail)
                w->tail->next = m;
            else
                w->head = m;
            w->tail = m;
            w->n++;
            w->bytes += len;
            pthread_cond_signal(&w->cv);
        }
    }
    pthread_mutex_unlock(&w->m);
    return rc;
}

static void send_json(ws_client *w, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s)
        ws_write(w, s, strlen(s));
    free(s);
}

static void client_free(ws_client *w)
{
    if (w->sub)
        progress_sub_free(w->s->bus, w->sub); /* waits for a delivery in progress */
    pthread_mutex_lock(&w->m);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->m);
    pthread_join(w->writer, NULL);
    queue_clear(w);
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void send_error(ws_client *w, const char *field, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", msg);
    if (o && field)
        json_object_set_new(o, "field", json_string(field));
    send_json(w, o);
}

static int ws_connect(const struct mg_connection *conn, void *cbdata)
{
    server *s = cbdata;
    char why[512];
    if (!http_same_site(s, conn, why, sizeof why)) {
        M2P_LOGW("websocket: refusing a client: %s", why);
        return 1; /* CivetWeb answers the upgrade request with an error and closes */
    }
    if (!http_authorized(s, conn))
        return 1;
    pthread_mutex_lock(&s->lock);
    int ok = s->n_ws < s->cfg.max_ws;
    if (ok)
        s->n_ws++;
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        M2P_LOGW("websocket: refusing a client, %d are connected (the limit)", s->cfg.max_ws);
    return ok ? 0 : 1;
}

static void ws_ready(struct mg_connection *conn, void *cbdata)
{
    server *s = cbdata;
    ws_client *w = calloc(1, sizeof *w);
    if (w) {
        w->s = s;
        w->conn = conn;
        pthread_mutex_init(&w->m, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->writer, NULL, ws_writer, w)) {
            M2P_LOGW("websocket: cannot start a writer thread; closing the client");
            pthread_mutex_destroy(&w->m);
            pthread_cond_destroy(&w->cv);
            free(w);
            w = NULL;
        } else if (!(w->sub = progress_sub_new(s->bus, ws_write, w))) {
            client_free(w);
            w = NULL;
        }
    }
    mg_set_user_connection_data(conn, w);
    if (w)
        send_json(w, json_pack("{s:s, s:s}", "type", "hello", "version", M2P_VERSION));
}

static void subscribe(ws_client *w, json_t *ids, int on)
{
    json_t *list = json_is_array(ids) ? json_incref(ids) : json_pack("[O]", ids);
    if (!list || json_array_size(list) == 0 || json_array_size(list) > 64) {
        json_decref(list);
        send_error(w, "jobs", "jobs must be a job id or an array of 1 to 64 job ids");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            send_error(w, "jobs", "job ids are positive integers");
            continue;
        }
        int64_t id = json_integer_value(v);
        if (!on) {
            progress_unsubscribe(w->s->bus, w->sub, id);
            continue;
        }
        store_job j;
        if (store_job_get(w->s->store, id, &j)) {
            json_t *e = json_pack("{s:s, s:I, s:s}", "type", "error", "job", (json_int_t)id,
                                  "message", m2p_errmsg());
            send_json(w, e);
            continue;
        }
        char *state = jobs_state_event(&j);
        store_job_clear(&j);
        if (progress_subscribe(w->s->bus, w->sub, id, PROGRESS_PROTO_EVENTS, state))
            send_error(w, "jobs", m2p_errmsg());
        free(state);
    }
    json_decref(list);
}

/* The original page's {type:"generate"}: queue it and stream the original's messages. */
static void generate(ws_client *w, json_t *msg)
{
    api_error e;
    int64_t id = 0;
    /* Deliveries wait until this client is subscribed: a free worker may run the job (and
     * publish its first steps) before submit_generate returns. */
    progress_hold(w->s->bus);
    json_t *p = submit_generate(w->s, msg, &id, &e);
    if (!p) {
        progress_release(w->s->bus);
        send_error(w, e.field[0] ? e.field : NULL, e.message);
        return;
    }
    char *first = NULL;
    json_t *acc = json_pack("{s:s, s:I, s:O}", "type", "job", "job", (json_int_t)id, "seed",
                            json_object_get(p, "seed"));
    json_decref(p);
    first = acc ? json_dumps(acc, JSON_COMPACT) : NULL;
    json_decref(acc);
    int rc = progress_subscribe(w->s->bus, w->sub, id, PROGRESS_PROTO_ORIGINAL, first);
    progress_release(w->s->bus);
    if (rc)
        send_error(w, NULL, m2p_errmsg());
    free(first);
}

static int ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    ws_client *w = mg_get_user_connection_data(conn);
    int opcode = bits & 0x0f;
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    if (opcode == MG_WEBSOCKET_OPCODE_PING || opcode == MG_WEBSOCKET_OPCODE_PONG)
        return 1;
    if (!w)
        return 0;
    pthread_mutex_lock(&w->m);
    int dead = w->dead;
    pthread_mutex_unlock(&w->m);
    if (dead)
        return 0; /* it stopped reading and was dropped: close now that it speaks again */
    if (opcode != MG_WEBSOCKET_OPCODE_TEXT || !(bits & 0x80)) {
        send_error(w, NULL, "only complete text frames with JSON messages are accepted");
        return 0;
    }
    if (len > WS_MAX_MESSAGE) {
        send_error(w, NULL, "message over 64 KiB");
        return 0;
    }
    json_error_t err;
    json_t *msg = m2p_json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(msg)) {
        json_decref(msg);
        send_error(w, NULL, "messages must be JSON objects with a \"type\"");
        return 1;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        send_error(w, "type", "a message needs a \"type\"");
    } else if (!strcmp(type, "subscribe") || !strcmp(type, "unsubscribe")) {
        json_t *ids = json_object_get(msg, "jobs");
        if (!ids)
            ids = json_object_get(msg, "job");
        subscribe(w, ids, type[0] == 's');
    } else if (!strcmp(type, "generate")) {
        generate(w, msg);
    } else if (!strcmp(type, "ping")) {
        send_json(w, json_pack("{s:s}", "type", "pong"));
    } else {
        send_error(w, "type", "type must be subscribe, unsubscribe, generate or ping");
    }
    json_decref(msg);
    return 1;
}

static void ws_close(const struct mg_connection *conn, void *cbdata)
{
    server *s = cbdata;
    ws_client *w = mg_get_user_connection_data(conn);
    if (w) {
        client_free(w);
        mg_set_user_connection_data(conn, NULL);
    }
    pthread_mutex_lock(&s->lock);
    s->n_ws--;
    pthread_mutex_unlock(&s->lock);
}

void ws_register(server *s)
{
    mg_set_websocket_handler(s->ctx, "/ws/progress", ws_connect, ws_ready, ws_data, ws_close, s);
}
