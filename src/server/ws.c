/*
 * ws.c — WebSocket /ws/progress: clients subscribe to jobs and receive their events from the
 * progress bus (src/jobs/progress.h).
 *
 * Client messages (text, JSON, at most 64 KiB, may be fragmented):
 *   {type:"subscribe", jobs:[id, ...]}   -> a {type:"state"} event per job from the database,
 *                                           then the job's current progress, then its events
 *   {type:"unsubscribe", jobs:[...]}     {type:"ping"} -> {type:"pong"}
 *   {type:"generate", prompt, negative_prompt, num_steps, num_variations, model, ...}
 *       the original's message: queues a generation and answers in the original's messages
 *       (progress per variation per step, generation_time per variation, complete | error).
 * Anything else gets {type:"error", message}.
 *
 * The connection is ours, not CivetWeb's WebSocket (which reads a whole frame into memory before
 * a callback sees its size, and takes unmasked frames): ws_begin_request, CivetWeb's
 * begin_request callback, takes /ws/progress before CivetWeb answers it, checks the upgrade
 * (Origin/Host, token, client cap, ws_upgrade.c), answers 101 on the request's socket and runs
 * the connection on the same worker thread until it closes (CivetWeb then closes the socket; an
 * upgraded request is never kept alive). Each frame's header is checked (ws_frame.c) before its
 * payload is read; a broken rule closes with the RFC 6455 code (1002, 1003, 1007, 1009). A client
 * silent for WS_PING_MS gets a ping, and after WS_IDLE_PINGS unanswered ones a close (1001), as
 * does every client when the server stops (ws_stop). Bytes sent before the 101 (RFC 6455 4.1
 * forbids it) were read by CivetWeb with the request and are lost. Clients are capped
 * (cfg.max_ws): each holds a worker thread, and server.c sizes the thread count from the cap.
 *
 * A client that stops reading costs only itself: nothing writes to its socket but its own writer
 * thread, fed by a bounded queue (WS_QUEUE_MSGS messages, WS_QUEUE_BYTES bytes). The progress
 * bus and the client's requests only append to it. When it is full, step and progress messages
 * (the bulky ones, with previews) are dropped; anything else overflowing marks the client dead:
 * the bus drops it, the queue is emptied, nothing more is sent and the connection is closed (it
 * gets the state again when it reconnects and subscribes).
 *
 * ws_message_check (one message) and ws_stream_check (a client's bytes, from memory) run the same
 * code without a socket for fuzz_ws.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/json_limit.h"
#include "server/server_internal.h"
#include "server/ws_frame.h"
#include "server/ws_upgrade.h"

#define WS_MAX_MESSAGE (64 * 1024)

#define WS_QUEUE_MSGS 512
#define WS_QUEUE_BYTES (8u << 20)

#define WS_PING_MS 60000      /* a ping after a minute without a byte (M2P_WS_PING_MS: less) */
#define WS_IDLE_PINGS 3       /* closed when that many pings in a row got nothing back */
#define WS_CLOSE_WAIT_MS 1000 /* for our close frame to go out, then for the client to close */
#define WS_WRITE_POLL_MS 1000 /* a blocked writer looks at its stop flag this often */
#define WS_LINGER_BYTES (64u << 10) /* at most read after our close (ws_linger) */

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    int opcode; /* WS_OP_TEXT, or a control frame of ours (ping, pong, close) */
    char text[];
} ws_msg;

struct ws_client {
    server *s;
    int fd; /* the connection's socket (CivetWeb's; never closed here), -1 for ws_message_check */
    progress_sub *sub;
    pthread_t writer;
    pthread_mutex_t m;
    pthread_cond_t cv;   /* the writer waits for frames */
    pthread_cond_t sent; /* the reader waits for its close frame to go out */
    ws_msg *head, *tail; /* the queue (m) */
    size_t n, bytes;
    int dead, stop;          /* dead: overflowed or a write failed, nothing more is sent */
    int closing, close_sent; /* a close frame is queued / was written: no more frames */
    int has_writer;          /* 0 for ws_message_check's client without a socket */
    long dropped;
    int ping_ms;       /* the silence before a ping (ws_ping_ms) */
    const uint8_t *in; /* ws_stream_check: the client's bytes, from memory instead of fd */
    size_t in_len;
    ws_client *next; /* s->ws_clients (s->lock) */
};

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

/* The client is lost (w->m held): nothing more is queued or sent, and its reader wakes up (its
 * socket reads end) to close the connection. */
static void client_kill(ws_client *w)
{
    if (w->dead)
        return;
    w->dead = 1;
    queue_clear(w);
    if (w->fd >= 0)
        shutdown(w->fd, SHUT_RD);
    pthread_cond_broadcast(&w->sent);
}

/* Write all of p to the socket; -1 when it fails or the client stops. */
static int send_all(ws_client *w, int fd, const void *p, size_t n, int more)
{
    const char *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return -1;
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, WS_WRITE_POLL_MS) < 0 && errno != EINTR)
            return -1;
        if (pf.revents & (POLLERR | POLLHUP | POLLNVAL))
            return -1;
        if (w) {
            pthread_mutex_lock(&w->m);
            int stop = w->stop;
            pthread_mutex_unlock(&w->m);
            if (stop)
                return -1;
        }
    }
    return 0;
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
        uint8_t h[10];
        size_t hl = ws_frame_head(h, m->opcode, m->len);
        int ok = !send_all(w, w->fd, h, hl, m->len > 0) && !send_all(w, w->fd, m->text, m->len, 0);
        int op = m->opcode;
        free(m);
        pthread_mutex_lock(&w->m);
        if (!ok) {
            client_kill(w);
        } else if (op == WS_OP_CLOSE) {
            w->close_sent = 1;
            pthread_cond_broadcast(&w->sent);
        }
    }
    pthread_mutex_unlock(&w->m);
    return NULL;
}

/* Append one frame to the queue (w->m held); -1 when memory ran out. */
static int queue_push(ws_client *w, int opcode, const void *data, size_t len)
{
    ws_msg *m = malloc(sizeof *m + len + 1);
    if (!m)
        return -1;
    m->next = NULL;
    m->len = len;
    m->opcode = opcode;
    if (len)
        memcpy(m->text, data, len);
    m->text[len] = 0;
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
    w->n++;
    w->bytes += len;
    pthread_cond_signal(&w->cv);
    return 0;
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

/* Queue one text message for the writer; -1 when the client is dead (the bus then drops it). */
static int ws_write(void *ctx, const char *msg, size_t len)
{
    ws_client *w = ctx;
    int rc = 0;
    pthread_mutex_lock(&w->m);
    if (w->dead || w->stop || w->closing) {
        rc = -1;
    } else if (w->n >= WS_QUEUE_MSGS || w->bytes + len > WS_QUEUE_BYTES) {
        if (droppable(msg, len)) {
            w->dropped++;
        } else {
            M2P_LOGW("websocket: a client is not reading (%zu messages, %zu bytes queued); "
                     "dropping it",
                     w->n, w->bytes);
            client_kill(w);
            rc = -1;
            pthread_mutex_lock(&w->s->lock);
            w->s->ws_dropped++;
            pthread_mutex_unlock(&w->s->lock);
        }
    } else if (queue_push(w, WS_OP_TEXT, msg, len)) {
        rc = -1;
    }
    pthread_mutex_unlock(&w->m);
    return rc;
}

/* A ping or pong of ours; skipped when the queue is full (the client is not reading, and a
 * pong may answer only the latest ping: RFC 6455 5.5.3). */
static void ws_control(ws_client *w, int opcode, const void *data, size_t len)
{
    pthread_mutex_lock(&w->m);
    if (!w->dead && !w->stop && !w->closing && w->n < WS_QUEUE_MSGS)
        queue_push(w, opcode, data, len);
    pthread_mutex_unlock(&w->m);
}

/* Send a close frame as the last one (what is still queued is dropped) and wait, at most
 * WS_CLOSE_WAIT_MS, until it is written. */
static void ws_close_frame(ws_client *w, int code, const char *reason)
{
    uint8_t p[WS_MAX_CONTROL];
    size_t n = ws_close_payload(p, code, reason);
    pthread_mutex_lock(&w->m);
    if (!w->dead && !w->closing) {
        queue_clear(w);
        w->closing = 1;
        if (queue_push(w, WS_OP_CLOSE, p, n) == 0) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += WS_CLOSE_WAIT_MS / 1000;
            until.tv_nsec += (long)(WS_CLOSE_WAIT_MS % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!w->close_sent && !w->dead)
                if (pthread_cond_timedwait(&w->sent, &w->m, &until))
                    break;
        }
    }
    pthread_mutex_unlock(&w->m);
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
    if (w->has_writer)
        pthread_join(w->writer, NULL);
    queue_clear(w);
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->sent);
    free(w);
}

/* The silence before a ping: WS_PING_MS, or less from M2P_WS_PING_MS (tests of the idle close). */
static int ws_ping_ms(void)
{
    const char *v = getenv("M2P_WS_PING_MS");
    long ms = v && *v ? strtol(v, NULL, 10) : 0;
    return ms >= 10 && ms < WS_PING_MS ? (int)ms : WS_PING_MS;
}

static ws_client *client_new(server *s, int fd)
{
    ws_client *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->s = s;
    w->fd = fd;
    w->ping_ms = ws_ping_ms();
    pthread_mutex_init(&w->m, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->sent, NULL);
    if (fd >= 0) {
        if (pthread_create(&w->writer, NULL, ws_writer, w)) {
            M2P_LOGW("websocket: cannot start a writer thread; closing the client");
            client_free(w);
            return NULL;
        }
        w->has_writer = 1;
    }
    if (!(w->sub = progress_sub_new(s->bus, ws_write, w))) {
        client_free(w);
        return NULL;
    }
    return w;
}

static void send_error(ws_client *w, const char *field, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", msg);
    if (o && field)
        json_object_set_new(o, "field", json_string(field));
    send_json(w, o);
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
        jobs_record j;
        if (jobs_job_get(w->s->q, id, &j)) {
            json_t *e = json_pack("{s:s, s:I, s:s}", "type", "error", "job", (json_int_t)id,
                                  "message", m2p_errmsg());
            send_json(w, e);
            continue;
        }
        char *state = jobs_state_event(&j);
        jobs_record_clear(&j);
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

/* One client message (bits: FIN and opcode): 0 keeps the connection open, else the close code
 * to end it with (*why says why). */
static int ws_handle(ws_client *w, int bits, const char *data, size_t len, const char **why)
{
    int opcode = bits & 0x0f;
    *why = NULL;
    if (opcode == WS_OP_CLOSE)
        return WS_CLOSE_NORMAL;
    if (opcode == WS_OP_PING || opcode == WS_OP_PONG)
        return 0;
    pthread_mutex_lock(&w->m);
    int dead = w->dead;
    pthread_mutex_unlock(&w->m);
    if (dead) {
        /* it stopped reading and was dropped: close now that it speaks again */
        *why = "the client stopped reading and was dropped; reconnect and subscribe again";
        return WS_CLOSE_POLICY;
    }
    if (opcode != WS_OP_TEXT || !(bits & 0x80)) {
        *why = "only complete text messages with JSON are accepted";
        send_error(w, NULL, *why);
        return opcode == WS_OP_BINARY ? WS_CLOSE_UNSUPPORTED : WS_CLOSE_PROTOCOL;
    }
    if (len > WS_MAX_MESSAGE) {
        *why = "message over 64 KiB";
        send_error(w, NULL, *why);
        return WS_CLOSE_TOO_BIG;
    }
    if (!ws_utf8_valid((const uint8_t *)data, len)) {
        *why = "a text message must be UTF-8";
        return WS_CLOSE_BAD_DATA;
    }
    json_error_t err;
    json_t *msg = m2p_json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(msg)) {
        json_decref(msg);
        send_error(w, NULL, "messages must be JSON objects with a \"type\"");
        return 0;
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
    return 0;
}

/* For the fuzz targets: is every frame the client would be sent well-formed (text: a JSON
 * object with a "type"; control frames of ours at most 125 bytes)? */
static int check_answers(ws_client *w)
{
    int rc = 0;
    for (ws_msg *m = w->head; m && !rc; m = m->next) {
        if (m->opcode != WS_OP_TEXT) {
            if ((m->opcode != WS_OP_PING && m->opcode != WS_OP_PONG && m->opcode != WS_OP_CLOSE) ||
                m->len > WS_MAX_CONTROL)
                rc = m2p_error(M2P_EFORMAT, "a control frame of opcode %d and %zu bytes", m->opcode,
                               m->len);
            continue;
        }
        json_error_t err;
        json_t *o = json_loadb(m->text, m->len, 0, &err);
        if (!json_is_object(o) || !json_is_string(json_object_get(o, "type")))
            rc = m2p_error(M2P_EFORMAT, "an answer is not a JSON object with a type: %.200s",
                           m->text);
        json_decref(o);
    }
    return rc;
}

int ws_message_check(server *s, int bits, const char *data, size_t len, int *keep_open)
{
    ws_client *w = client_new(s, -1);
    if (!w)
        return m2p_error(M2P_ENOMEM, "out of memory");
    const char *why;
    *keep_open = ws_handle(w, bits, data, len, &why) == 0;
    /* Unsubscribe first: after this no event from the bus reaches the queue. */
    progress_sub_free(s->bus, w->sub);
    w->sub = NULL;
    int rc = check_answers(w);
    client_free(w);
    return rc;
}

/* ---- the connection: handshake, frames, close ---- */

enum { WS_READ_OK, WS_READ_EOF, WS_READ_IDLE };

/* Read exactly n bytes from the client. A silence of w->ping_ms sends a ping; WS_READ_IDLE
 * when WS_IDLE_PINGS in a row got nothing back, WS_READ_EOF when the socket's reads end. */
static int ws_recv(ws_client *w, int *pings, uint8_t *p, size_t n)
{
    if (w->fd < 0) { /* ws_stream_check */
        if (w->in_len < n)
            return WS_READ_EOF;
        if (n)
            memcpy(p, w->in, n);
        w->in += n;
        w->in_len -= n;
        return WS_READ_OK;
    }
    while (n) {
        struct pollfd pf = {w->fd, POLLIN, 0};
        int r = poll(&pf, 1, w->ping_ms);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return WS_READ_EOF;
        }
        if (r == 0) {
            if (*pings >= WS_IDLE_PINGS)
                return WS_READ_IDLE;
            (*pings)++;
            ws_control(w, WS_OP_PING, NULL, 0);
            continue;
        }
        ssize_t k = recv(w->fd, p, n, MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            *pings = 0;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        return WS_READ_EOF;
    }
    return WS_READ_OK;
}

/* Why the client's reads ended (rc from ws_recv): silence (1001), the server stops (1001), the
 * client was dropped for not reading (1008, though nothing more reaches it), or it went away (0:
 * nothing to send). */
static int ws_read_end(ws_client *w, int rc, const char **why)
{
    if (rc == WS_READ_IDLE) {
        *why = "the client was silent and did not answer pings";
        return WS_CLOSE_GOING_AWAY;
    }
    pthread_mutex_lock(&w->s->lock);
    int stopping = w->s->ws_stopping;
    pthread_mutex_unlock(&w->s->lock);
    pthread_mutex_lock(&w->m);
    int dead = w->dead;
    pthread_mutex_unlock(&w->m);
    if (stopping) {
        *why = "the server is stopping";
        return WS_CLOSE_GOING_AWAY;
    }
    if (dead) {
        *why = "the client stopped reading and was dropped; reconnect and subscribe again";
        return WS_CLOSE_POLICY;
    }
    return 0;
}

/* The client's frames until the connection ends: the close code to answer with (0 when the
 * client is gone), *why the reason, *echo 1 when it answers the client's own close. Each
 * frame's header is checked before its payload is read; a message's fragments are gathered in
 * msg (at most WS_MAX_MESSAGE bytes), control frames in ctl. */
static int ws_session(ws_client *w, const char **why, int *echo)
{
    ws_reassembly r = {0, 0, WS_MAX_MESSAGE};
    m2p_buf msg;
    m2p_buf_init(&msg, WS_MAX_MESSAGE);
    int pings = 0, code = 0, rc;
    *why = NULL;
    *echo = 0;
    for (;;) {
        uint8_t h[14], ctl[WS_MAX_CONTROL], *p = ctl;
        pthread_mutex_lock(&w->m);
        int dead = w->dead;
        pthread_mutex_unlock(&w->m);
        if (dead) { /* dropped for not reading: whatever it still sends is not read */
            code = ws_read_end(w, WS_READ_EOF, why);
            break;
        }
        if ((rc = ws_recv(w, &pings, h, 2)) ||
            (rc = ws_recv(w, &pings, h + 2, ws_frame_header_len(h) - 2))) {
            code = ws_read_end(w, rc, why);
            break;
        }
        ws_frame f;
        ws_frame_parse(h, &f);
        /* decided from the header: none of the payload is read when it is refused */
        if ((code = ws_frame_check(&r, &f, why)))
            break;
        M2P_ASSERT(f.opcode & 8 ? f.len <= WS_MAX_CONTROL : r.len <= r.max && f.len <= r.len);
        if (!(f.opcode & 8)) {
            /* a data frame: its payload goes after the message's so far */
            if (m2p_buf_reserve(&msg, (size_t)f.len)) {
                code = WS_CLOSE_INTERNAL;
                *why = "out of memory";
                break;
            }
            M2P_ASSERT(msg.len + (size_t)f.len == r.len);
            p = (uint8_t *)msg.data + msg.len;
        }
        if ((rc = ws_recv(w, &pings, p, (size_t)f.len))) {
            code = ws_read_end(w, rc, why);
            break;
        }
        ws_frame_unmask(p, (size_t)f.len, f.mask, 0);
        if (!(f.opcode & 8)) {
            msg.len += (size_t)f.len;
            msg.data[msg.len] = 0;
        }
        if (f.opcode == WS_OP_PING) {
            ws_control(w, WS_OP_PONG, ctl, (size_t)f.len);
            continue;
        }
        if (f.opcode == WS_OP_PONG)
            continue;
        if (f.opcode == WS_OP_CLOSE) {
            int theirs;
            code = ws_close_parse(ctl, (size_t)f.len, &theirs);
            if (code) {
                *why = code == WS_CLOSE_BAD_DATA ? "the close reason is not UTF-8"
                                                 : "the close frame's status code is invalid";
            } else {
                code = theirs == 1005 ? WS_CLOSE_NORMAL : theirs; /* RFC 6455 5.5.1: echo it */
                *echo = 1;
            }
            break;
        }
        if (!f.fin)
            continue; /* more fragments follow */
        ws_reassembly_done(&r);
        code = ws_handle(w, 0x80 | WS_OP_TEXT, msg.data, msg.len, why);
        msg.len = 0;
        if (code)
            break;
    }
    m2p_buf_free(&msg);
    return code;
}

int ws_stream_check(server *s, const uint8_t *data, size_t len, int *close_code)
{
    ws_client *w = client_new(s, -1);
    if (!w)
        return m2p_error(M2P_ENOMEM, "out of memory");
    w->in = data;
    w->in_len = len;
    const char *why;
    int echo;
    *close_code = ws_session(w, &why, &echo);
    progress_sub_free(s->bus, w->sub);
    w->sub = NULL;
    int rc = check_answers(w);
    if (!rc && *close_code && (*close_code < 1000 || *close_code > 4999 || (!echo && !why)))
        rc = m2p_error(M2P_EFORMAT, "close code %d (%s)", *close_code, why ? why : "no reason");
    client_free(w);
    return rc;
}

/* After our close frame: no more writes, and read what the client still sends until its own
 * close frame, its end or WS_CLOSE_WAIT_MS (at most WS_LINGER_BYTES), so that the socket is not
 * closed with unread bytes, which resets the connection and can lose the close frame before the
 * client reads it. A client still sending a big frame is cut off (reset) at the limit. */
static void ws_linger(int fd)
{
    shutdown(fd, SHUT_WR);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint8_t buf[4096];
    size_t got = 0, total = 0;
    while (total < WS_LINGER_BYTES) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= WS_CLOSE_WAIT_MS)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, (int)(WS_CLOSE_WAIT_MS - ms));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        /* the first frame is kept to see whether it is the client's close */
        ssize_t k = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break;
        if (k < 0)
            continue;
        total += (size_t)k;
        got += (size_t)k;
        if (got >= 2 && (buf[0] & 0x0f) == WS_OP_CLOSE && (buf[1] & 0x7f) <= WS_MAX_CONTROL &&
            got >= ws_frame_header_len(buf) + (buf[1] & 0x7f))
            break; /* the client answered our close */
        if (got == sizeof buf)
            got = 0;
    }
}

/* The connection after the 101: hello, the client's frames, the close. */
static void ws_run(server *s, int fd)
{
    ws_client *w = client_new(s, fd);
    if (!w) {
        static const uint8_t oom[] = {0x88, 2, WS_CLOSE_INTERNAL >> 8, WS_CLOSE_INTERNAL & 0xff};
        send_all(NULL, fd, oom, sizeof oom, 0);
        return;
    }
    pthread_mutex_lock(&s->lock);
    int stopping = s->ws_stopping;
    if (!stopping) {
        w->next = s->ws_clients;
        s->ws_clients = w;
    }
    pthread_mutex_unlock(&s->lock);
    const char *why = "the server is stopping";
    int echo = 0, code = WS_CLOSE_GOING_AWAY;
    if (!stopping) {
        send_json(w, json_pack("{s:s, s:s}", "type", "hello", "version", M2P_VERSION));
        code = ws_session(w, &why, &echo);
    }
    /* no more events from the bus, then the close frame as the last one */
    progress_sub_free(s->bus, w->sub);
    w->sub = NULL;
    if (code) {
        if (!echo)
            M2P_LOGI("websocket: closing a client (%d): %s", code, why ? why : "");
        ws_close_frame(w, code, echo ? NULL : why);
        if (!echo)
            ws_linger(fd);
    }
    pthread_mutex_lock(&s->lock);
    for (ws_client **p = &s->ws_clients; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    shutdown(fd, SHUT_RDWR); /* a writer blocked on it returns; CivetWeb closes it */
    client_free(w);
}

int ws_begin_request(struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (!ri || !ri->local_uri || strcmp(ri->local_uri, WS_PATH))
        return 0; /* not ours: CivetWeb goes on with it */
    server *s = ri->user_data;
    char why[512];
    if (!http_same_site(s, c, why, sizeof why)) {
        M2P_LOGW("websocket: refusing a client: %s", why);
        return ws_upgrade_refuse(c, 403, NULL, why);
    }
    if (!http_authorized(s, c))
        return ws_upgrade_refuse(c, 401, "WWW-Authenticate: Bearer\r\n",
                                 "a valid access token is required");
    char accept[29];
    int st = ws_upgrade_check(c, ri, accept);
    if (st)
        return st;
    pthread_mutex_lock(&s->lock);
    int ok = s->n_ws < s->cfg.max_ws && !s->ws_stopping;
    if (ok)
        s->n_ws++;
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        M2P_LOGW("websocket: refusing a client, %d are connected (the limit)", s->cfg.max_ws);
        snprintf(why, sizeof why,
                 "%d WebSocket clients are connected, the server's limit (--max-ws); retry later",
                 s->cfg.max_ws);
        return ws_upgrade_refuse(c, 503, "Retry-After: 5\r\n", why);
    }
    int fd = ws_upgrade_socket(ri);
    if (fd < 0) {
        M2P_LOGE("websocket: the socket of %s:%d was not found", ri->remote_addr, ri->remote_port);
        st = ws_upgrade_refuse(c, 500, NULL, "the server could not take over this connection");
    } else {
        char head[160];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         accept);
        if (send_all(NULL, fd, head, (size_t)n, 0) == 0)
            ws_run(s, fd);
        else
            shutdown(fd, SHUT_RDWR);
        st = 101;
    }
    pthread_mutex_lock(&s->lock);
    s->n_ws--;
    pthread_mutex_unlock(&s->lock);
    return st;
}

void ws_stop(server *s)
{
    pthread_mutex_lock(&s->lock);
    s->ws_stopping = 1;
    for (ws_client *w = s->ws_clients; w; w = w->next)
        shutdown(w->fd, SHUT_RD); /* its reader wakes up and closes it with 1001 */
    pthread_mutex_unlock(&s->lock);
}
