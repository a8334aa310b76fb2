/*
 * server.h — the web app: CivetWeb serving the JSON API (/api), the WebSocket progress channel
 * (/ws/progress) and the page (web/), over the persistent job queue (src/jobs).
 */
#ifndef M2P_SERVER_SERVER_H
#define M2P_SERVER_SERVER_H

#include <stddef.h>

#define SERVER_MAX_MODELS 16
#define SERVER_MAX_ORIGINS 16

typedef struct server_config {
    const char *host;     /* default 127.0.0.1; anything else needs a token */
    int port;             /* default 9090 */
    const char *data_dir; /* default ./data (SQLite, uploads, audio cache) */
    const char *web_dir;  /* NULL: found at start (installed share/mus2pic/web, else the source tree) */
    const char *token;    /* access token; NULL = $MUS2PIC_TOKEN */
    int threads;          /* CivetWeb worker threads; 0 = max_ws + 1024 */
    int compute_threads;  /* the image engine's threads; 0 = every core */
    int compute_dtype;    /* M2P_DTYPE_F32 (default, matches diffusers) or M2P_DTYPE_BF16 */
    int max_ws;           /* concurrent WebSocket clients; default 256 */
    int max_variations;   /* 4 (default) or 8 */
    int analysis_workers; /* default 2 */
    int max_queued;       /* default 200 */
    size_t max_body;      /* JSON body bytes; default 1 MiB */
    size_t max_upload;    /* uploaded audio bytes; default 100 MiB */
    int genre_offline;    /* 1: no network genre lookups */
    int64_t audio_cache_limit; /* downloaded audio kept (LRU); 0 = default 2 GiB */
    size_t model_budget;  /* bytes of loaded models kept; default 12 GiB */
    /* Many machines (src/jobs/queue.h): */
    const char *store_url;   /* NULL: SQLite in data_dir; else a store URL (postgresql://...) */
    int no_worker;           /* 1: queue and serve only, run no jobs */
    const char *worker_name; /* lease holder's name; NULL = the host's */
    int lease_ms;            /* 0 = the queue's default (30 s) */
    int kinds;               /* bit 1 << JOBS_*: kinds this node runs; 0 = both */
    int n_models;
    const char *model_names[SERVER_MAX_MODELS];
    const char *model_refs[SERVER_MAX_MODELS];
    /* Browser origins allowed besides the server's own (http://localhost:PORT, ...), e.g.
     * "https://poster.example.org"; a request with any other Origin header gets 403. */
    int n_origins;
    const char *allowed_origins[SERVER_MAX_ORIGINS];
    int allow_private_urls; /* 1: analysis URLs may name loopback and private addresses */
} server_config;

server_config server_default_config(void);

typedef struct server server;

/* Open the store, start the workers and the HTTP server. */
int server_start(const server_config *cfg, server **out);
/* The port actually bound. */
int server_port(const server *s);
void server_stop(server *s);
/* The store's location without its password (for the start-up line). */
const char *server_store_where(const server *s);

#endif
