/*
 * server_internal.h — what the server's files share: the server struct, response helpers,
 * request validation, the route table and the route handlers.
 */
#ifndef M2P_SERVER_INTERNAL_H
#define M2P_SERVER_INTERNAL_H

#include <civetweb.h>
#include <jansson.h>
#include <pthread.h>

#include "jobs/queue.h"
#include "jobs/records.h" /* the rows the routes read and write (jobs, results, batches, uploads) */
#include "server/server.h"

typedef struct ux_fetch ux_fetch; /* api_fetch.c: a model download from the page */

typedef struct ws_client ws_client; /* ws.c: one /ws/progress connection */

struct server {
    server_config cfg;
    char host[256], data_dir[1024], web_dir[1024], token[256];
    struct mg_context *ctx;
    m2p_store *store;
    progress_bus *bus;
    model_cache *models;
    jobs *q;
    pthread_mutex_t lock;
    int n_ws; /* open WebSocket clients (lock) */
    long ws_dropped; /* clients dropped for not reading (lock) */
    /* ws.c: the open WebSockets, for ws_stop, which sets ws_stopping (lock) */
    ws_client *ws_clients;
    int ws_stopping;
    int port;
    int lock_fd; /* DATA/server.lock, flock'd while the server runs */
    char *openapi; /* /api/openapi.json, built at start */
    /* api_ux.c: the tokenizer of the last model a token count asked for (tok_lock) */
    pthread_mutex_t tok_lock;
    m2p_tokenizer *tok;
    char tok_dir[1024];
    json_t *model_problems; /* api_ux.c: configured models that cannot be used (read-only) */
    pthread_mutex_t fetch_lock;
    ux_fetch *fetch; /* api_fetch.c: the current or last download (fetch_lock) */
};

/* ---- responses (http.c) ---- */
/* json_dumps (compact), NULL when memory ran out while dumping (m2p_json_track_alloc). */
char *http_dumps(const json_t *json);
void http_send(struct mg_connection *c, int status, const char *type, const void *body, size_t len,
               const char *extra_headers);
/* Sends json (stolen). */
void http_json(struct mg_connection *c, int status, json_t *json);
/* {success:false, error, detail, field?} with status. */
void http_error(struct mg_connection *c, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Status for an M2P_E* code (EINVAL 400, ENOTFOUND 404, EBUSY 503, ETOOBIG 413, ...). */
int http_status_of(int code);

/* Read a JSON object body (limit s->cfg.max_body). On failure the error is sent and NULL
 * returned. */
json_t *http_read_json(server *s, struct mg_connection *c);
/* Integer query parameter, or def; returns 0 or -1 (error sent) when not an integer in range. */
int http_query_int(struct mg_connection *c, const char *name, long lo, long hi, long def,
                   long *out);
/* Does the request carry the token (Bearer header or ?token=)? Always 1 without a token. */
int http_authorized(server *s, const struct mg_connection *c);

/* Is the request from this server's own page or a non-browser client (http.c's comment)?
 * 0 with why filled when not. */
int http_same_site(server *s, const struct mg_connection *c, char *why, size_t cap);
/* Is the body declared as application/json (any parameters)? */
int http_is_json(const struct mg_connection *c);

/* ---- validation (validate.c) ---- */
typedef struct api_error {
    int status;
    char field[64];
    char message[512];
} api_error;

/* A generation request -> normalised params (new reference) with prompt, negative_prompt, model,
 * steps, guidance, width, height, variations, seed, and the optional features/source.
 * need_prompt 0 accepts a missing prompt (batches fill it in). */
json_t *validate_generate(server *s, json_t *body, int need_prompt, api_error *err);
/* Validate a generation request and queue it: the validated params (the caller decrefs them)
 * with the job id, or NULL with err filled (400 for bad input, the queue's status when it
 * refuses). The one path for /api/generate, /api/generate-image and the WebSocket. */
json_t *submit_generate(server *s, json_t *body, int64_t *id, api_error *err);
/* duration 30 | 60 | "full" | null | <= 0 -> seconds (0 = full). */
int validate_duration(json_t *v, double *out, api_error *err);
/* prompt_version "v1"|"v3"|"v4"|1|3|4 (default v4). */
int validate_prompt_version(json_t *v, int *out, api_error *err);
/* url: a string that m2p_url_check accepts, whose host is not loopback, private, link-local
 * or unspecified when written as an address or as localhost (unless --allow-private-urls). */
int validate_url(server *s, json_t *v, const char *field, api_error *err);
/* Optional string of at most max bytes. */
int validate_opt_string(json_t *body, const char *key, size_t max, api_error *err);
void http_api_error(struct mg_connection *c, const api_error *e);

/* ---- routes (routes.c: the table; router.c: matching and dispatch) ----
 * One table lists every route of /api: the router answers from it and openapi.c builds
 * /api/openapi.json from it, so the document cannot drift from what the server answers. */

/* What the router hands a handler. */
typedef struct route_args {
    int64_t id;    /* the path's {id}, 0 when the path has none */
    json_t *body;  /* the JSON body (borrowed) of a route that takes one, else NULL */
    long query[2]; /* the route's query parameters, in table order (validated) */
} route_args;

typedef void route_fn(server *s, struct mg_connection *c, const route_args *a);

typedef struct route_query {
    const char *name;
    long lo, hi, def;
} route_query;

typedef struct route {
    const char *method; /* GET, POST or DELETE */
    const char *path;   /* OpenAPI template; "{id}" matches a positive integer, e.g. {id}.png */
    route_fn *fn;
    const char *summary; /* one line for the document */
    const char *body;    /* schema of the JSON body (read and parsed by the router), or NULL */
    const char *upload;  /* schema of a multipart/form-data body (read by the handler), or NULL */
    int status;          /* the answer's status on success */
    const char *answer;  /* its schema (JSON), or a media type containing '/' */
    const char *errors;  /* the error statuses it can answer besides 401, e.g. "400 413 503" */
    route_query query[2];
} route;

extern const route api_routes[];
extern const int api_n_routes;

/* The /api request handler registered with CivetWeb (token check, match, 404/405). */
int router_handle(struct mg_connection *c, void *cbdata);

/* Handlers (api.c, api_original.c). */
route_fn api_health, api_models, api_openapi, api_analyze, api_generate, api_job_get,
    api_job_delete, api_job_cancel, api_image_get, api_image_delete, api_gallery, api_batch_post,
    api_batch_list, api_batch_get, api_extract_metadata, api_generate_prompt,
    api_extract_metadata_quick, api_generate_prompt_llm, api_validate_api_key, api_generate_image;
/* api_ux.c: the page's helpers. */
route_fn api_tokens, api_image_thumb, api_image_poster, api_models_fetch, api_models_fetch_get;
/* api_fetch.c: let go of the download at server stop (it finishes on its own thread). */
void ux_fetch_stop(server *s);
/* api_fetch.c: a model's needs into its /api/models entry e: ram_bytes (this server's dtype),
 * download_bytes, disk_bytes (path: its folder when installed, else NULL), preview,
 * guidance_embedded. */
void ux_model_needs(server *s, json_t *e, const char *name, const char *path);
/* The download name of a stored poster (artist-song-seed.png, from its PNG text chunks). */
void api_image_filename(const uint8_t *png, size_t len, int64_t id, char *out, size_t n);
/* Check the configured models at start (warnings, s->model_problems); the problem of one. */
void ux_check_models(server *s, const char *const *names, const char *const *refs, int n);
const char *ux_model_problem(server *s, const char *name);
/* CivetWeb's end_request: "METHOD PATH -> STATUS" at INFO (serve -v); no query string, so a
 * ?token= never reaches the log. */
void ux_end_request(const struct mg_connection *c, int status);

/* Submit an analysis job of source (URL or saved upload). */
int api_submit_analysis(server *s, const char *source, int upload, double duration, int version,
                        const char *band, const char *song, int64_t *id, api_error *err);

/* The OpenAPI 3.0 document built from api_routes and the schemas (malloc'd JSON text). */
char *openapi_build(void);
/* ws.c: CivetWeb's begin_request callback; takes the requests for /ws/progress (the WebSocket,
 * framed by us: ws.c's comment) and returns 0 for every other one. */
int ws_begin_request(struct mg_connection *c);
/* ws.c: close every WebSocket (1001) and take no new one; before mg_stop, which waits for them. */
void ws_stop(server *s);
/* ws.c, for fuzz_ws: one client message (bits: FIN and opcode, as in a frame's first byte)
 * handled as for a connected client without a socket. *keep_open gets 1 when the connection
 * would stay open; returns nonzero when an answer it would send is not a JSON object with a
 * "type". */
int ws_message_check(server *s, int bits, const char *data, size_t len, int *keep_open);
/* ws.c, for fuzz_ws: data as the bytes a client sends after the handshake, read by the same
 * frame reader as a socket's (to their end). *close_code gets the code the connection would
 * close with (0: it ran out of bytes); returns nonzero when a frame it would send is malformed. */
int ws_stream_check(server *s, const uint8_t *data, size_t len, int *close_code);

#endif
