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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "server/server_internal.h"

#define WS_MAX_MESSAGE (64 * 1024)

typedef struct ws_client {
    server *s;
    struct mg_connection *conn;
    progress_sub *sub;
} ws_client;

static int ws_write(void *ctx, const char *msg, size_t len)
{
    ws_client *w = ctx;
    return mg_websocket_write(w->conn, MG_WEBSOCKET_OPCODE_TEXT, msg, len) > 0 ? 0 : -1;
}

static void send_json(ws_client *w, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s)
        mg_websocket_write(w->conn, MG_WEBSOCKET_OPCODE_TEXT, s, strlen(s));
    free(s);
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
    if (!http_authorized(s, conn))
        return 1; /* CivetWeb answers the upgrade request with an error and closes */
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
        w->sub = progress_sub_new(s->bus, ws_write, w);
        if (!w->sub) {
            free(w);
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
    json_t *p = submit_generate(w->s, msg, &id, &e);
    if (!p) {
        send_error(w, e.field[0] ? e.field : NULL, e.message);
        return;
    }
    char *first = NULL;
    json_t *acc = json_pack("{s:s, s:I, s:O}", "type", "job", "job", (json_int_t)id, "seed",
                            json_object_get(p, "seed"));
    json_decref(p);
    first = acc ? json_dumps(acc, JSON_COMPACT) : NULL;
    json_decref(acc);
    if (progress_subscribe(w->s->bus, w->sub, id, PROGRESS_PROTO_ORIGINAL, first))
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
    if (opcode != MG_WEBSOCKET_OPCODE_TEXT || !(bits & 0x80)) {
        send_error(w, NULL, "only complete text frames with JSON messages are accepted");
        return 0;
    }
    if (len > WS_MAX_MESSAGE) {
        send_error(w, NULL, "message over 64 KiB");
        return 0;
    }
    json_error_t err;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
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
        progress_sub_free(s->bus, w->sub); /* waits for a delivery in progress */
        free(w);
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
