/*
 * server.c — starts and stops the web app: the store (SQLite in --data), the progress bus, the
 * model cache, the job workers, and CivetWeb with the /api router (routes.c), the WebSocket and
 * the page (web/ served as static files). /api/openapi.json is built once here from the routes.
 *
 * Sizing: CivetWeb runs each connection on one of num_threads workers, from its first byte:
 * a WebSocket holds its worker for as long as it is open, and so does a client that sends its
 * request slowly or never finishes it (slowloris), until request_timeout_ms (10 s for the whole
 * header). So num_threads = max_ws + SERVER_HTTP_THREADS: while max_ws clients watch, 1024
 * half-sent requests are needed to keep /api/health waiting, and each costs one idle thread
 * (a few pages of stack and a 16 KiB buffer). Up to 64 more wait in CivetWeb's queue
 * (connection_queue) and 128 in the kernel's (listen_backlog); beyond those a connection is
 * refused. Binding anything but loopback needs a token.
 *
 * One server per SQLite --data: an exclusive flock on DATA/server.lock is held for its life
 * (the kernel drops it when the process dies, so a crash leaves nothing stale); a second
 * server on the same folder refuses to start instead of retrying the first one's running jobs.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_limit.h"
#include "core/paths.h"
#include "server/server_internal.h"

#define SERVER_HTTP_THREADS 1024 /* workers for HTTP besides max_ws (the comment above) */

#ifndef M2P_WEB_DIR
#define M2P_WEB_DIR "web"
#endif

server_config server_default_config(void)
{
    server_config c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = 9090;
    c.data_dir = "data";
    c.web_dir = NULL; /* found at start: installed share/ folder or the source tree (paths.c) */
    c.max_ws = 256;
    c.max_variations = 4;
    c.analysis_workers = 2;
    c.max_queued = 200;
    c.max_body = 1 << 20;
    c.max_upload = 100u << 20;
    c.model_budget = (size_t)12 << 30;
    return c;
}

const char *server_store_where(const server *s)
{
    return m2p_store_where(s->store);
}

static int is_loopback(const char *host)
{
    return !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "::1") ||
           !strncmp(host, "127.", 4);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    M2P_LOGI("civetweb: %s", message);
    return 1;
}

/* The data folder's lock (see the comment at the top). */
static int server_lock_data(server *s)
{
    char path[1100];
    snprintf(path, sizeof path, "%s", s->data_dir);
    for (char *p = path + 1;; p++) { /* mkdir -p */
        int end = !*p;
        if (*p != '/' && !end)
            continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return m2p_error(M2P_EIO, "cannot create the data folder %s: %s", path,
                             strerror(errno));
        if (end)
            break;
        *p = '/';
    }
    snprintf(path, sizeof path, "%s/server.lock", s->data_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0)
        return m2p_error(M2P_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        char pid[32] = "";
        ssize_t n = busy ? pread(s->lock_fd, pid, sizeof pid - 1, 0) : 0;
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        pid[16] = 0;
        close(s->lock_fd);
        s->lock_fd = -1;
        if (busy)
            return m2p_error(M2P_EBUSY,
                             "another server%s%s is using %s; stop it, or give this one "
                             "another --data folder",
                             pid[0] ? " (pid " : "", pid[0] ? strcat(pid, ")") : "", s->data_dir);
        return m2p_error(M2P_EIO, "cannot lock %s: %s", path, strerror(errno));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n)
        M2P_LOGW("cannot write the pid into %s", path);
    return 0;
}

int server_start(const server_config *cfg, server **out)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s)
        return m2p_error(M2P_ENOMEM, "out of memory");
    s->cfg = *cfg;
    snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir ? cfg->data_dir : "data");
    if (cfg->web_dir)
        snprintf(s->web_dir, sizeof s->web_dir, "%s", cfg->web_dir);
    else if (m2p_find_web_dir(s->web_dir, sizeof s->web_dir))
        snprintf(s->web_dir, sizeof s->web_dir, "%s", M2P_WEB_DIR);
    const char *tok = cfg->token ? cfg->token : getenv("MUS2PIC_TOKEN");
    if (tok && (strlen(tok) >= sizeof s->token || strpbrk(tok, "\r\n"))) {
        free(s);
        return m2p_error(M2P_EINVAL, "the access token must be 1 to %zu bytes on one line",
                         sizeof s->token - 1);
    }
    snprintf(s->token, sizeof s->token, "%s", tok ? tok : "");
    s->cfg.host = s->host;
    s->cfg.data_dir = s->data_dir;
    s->cfg.web_dir = s->web_dir;
    s->cfg.token = NULL;
    if (s->cfg.max_ws < 1)
        s->cfg.max_ws = 1;
    if (s->cfg.threads <= 0)
        s->cfg.threads = s->cfg.max_ws + SERVER_HTTP_THREADS;
    if (s->cfg.max_variations != 8)
        s->cfg.max_variations = 4;
    pthread_mutex_init(&s->lock, NULL);
    s->lock_fd = -1;
    pthread_mutex_init(&s->tok_lock, NULL);
    pthread_mutex_init(&s->fetch_lock, NULL);

    int rc = 0;
    if (!(s->openapi = openapi_build())) {
        rc = m2p_error(M2P_ENOMEM, "the OpenAPI document could not be built");
        goto fail;
    }
    if (!is_loopback(s->host) && !s->token[0]) {
        rc = m2p_error(M2P_EINVAL,
                       "binding %s (not loopback) needs an access token: --token T or "
                       "MUS2PIC_TOKEN",
                       s->host);
        goto fail;
    }
    if (strchr(s->host, ',') || strchr(s->host, ' ')) {
        rc = m2p_error(M2P_EINVAL, "--host '%s' is not a host name or address", s->host);
        goto fail;
    }
    /* With a store URL (PostgreSQL) the jobs are leased (src/store), and nodes may share it. */
    if (!(cfg->store_url && *cfg->store_url) && (rc = server_lock_data(s)))
        goto fail;
    if ((rc = m2p_store_open(cfg->store_url && *cfg->store_url ? cfg->store_url : s->data_dir,
                             &s->store)))
        goto fail;
    s->bus = progress_bus_new(4096);
    s->models = model_cache_new(s->cfg.model_budget);
    if (!s->bus || !s->models) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto fail;
    }
    model_cache_set_compute(s->models, cfg->compute_threads, cfg->compute_dtype);
    for (int i = 0; i < cfg->n_models; i++)
        if ((rc = model_cache_add(s->models, cfg->model_names[i], cfg->model_refs[i])))
            goto fail;
    const char *env_model = getenv("MUS2PIC_MODEL");
    if (env_model && *env_model && cfg->n_models == 0) {
        const m2p_registry_entry *r = m2p_registry_find(env_model);
        if ((rc = model_cache_add(s->models, r ? r->name : "lcm", env_model)))
            goto fail;
        const char *env_name = r ? r->name : "lcm";
        ux_check_models(s, &env_name, &env_model, 1);
    } else {
        ux_check_models(s, (const char *const *)cfg->model_names,
                        (const char *const *)cfg->model_refs, cfg->n_models);
    }
    jobs_config jc = jobs_default_config();
    jc.data_dir = s->data_dir;
    jc.analysis_workers = s->cfg.analysis_workers;
    jc.max_queued = s->cfg.max_queued;
    jc.genre_offline = s->cfg.genre_offline;
    jc.audio_cache_limit = s->cfg.audio_cache_limit;
    jc.store_url = cfg->store_url && *cfg->store_url ? cfg->store_url : NULL;
    jc.run_jobs = !cfg->no_worker;
    jc.progress_from_others = 1;
    if (cfg->kinds)
        jc.kinds = cfg->kinds;
    jc.worker_name = cfg->worker_name;
    if (cfg->lease_ms > 0)
        jc.lease_ms = cfg->lease_ms;
    if ((rc = jobs_start(&jc, s->store, s->bus, s->models, &s->q)))
        goto fail;

    char ports[320], threads[16], maxreq[16];
    snprintf(ports, sizeof ports, "%s:%d", s->host, cfg->port);
    snprintf(threads, sizeof threads, "%d", s->cfg.threads);
    snprintf(maxreq, sizeof maxreq, "%d", 16384);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             threads,
                             "document_root",
                             s->web_dir,
                             "enable_directory_listing",
                             "no",
                             "max_request_size",
                             maxreq,
                             "request_timeout_ms",
                             "10000",
                             "enable_keep_alive",
                             "yes",
                             "connection_queue",
                             "64",
                             "listen_backlog",
                             "128",
                             "additional_header",
                             "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: "
                             "default-src 'self'; img-src 'self' data: blob:; connect-src "
                             "'self' ws: wss:; style-src 'self'; script-src 'self'",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    cb.end_request = ux_end_request; /* serve -v logs each request */
    /* /ws/progress: CivetWeb hands the request over before it answers it (ws.c frames it) */
    cb.begin_request = ws_begin_request;
    /* answers dumped while memory ran out are refused (http.c) */
    m2p_json_track_alloc();
    mg_init_library(0);
    s->ctx = mg_start(&cb, s, options);
    if (!s->ctx) {
        rc = m2p_error(M2P_EIO, "cannot listen on %s (in use, or not an address of this host?)",
                       ports);
        goto fail;
    }
    struct mg_server_port sp[4];
    int np = mg_get_server_ports(s->ctx, 4, sp);
    s->port = np > 0 ? sp[0].port : cfg->port;
    mg_set_request_handler(s->ctx, "/api", router_handle, s);
    *out = s;
    return 0;
fail:
    server_stop(s);
    return rc;
}

int server_port(const server *s)
{
    return s->port;
}

/* CivetWeb's master thread polls the listening sockets two seconds at a time (its
 * SOCKET_TIMEOUT_QUANTUM) and sees mg_stop's flag only when a poll returns, so every stop waited
 * up to 2 s. While mg_stop runs, this thread connects to the server's own port every 10 ms: the
 * poll returns, the master sees the flag and closes the sockets (the next connect is refused). */
typedef struct listener_waker {
    pthread_t thread;
    atomic_int done;
    struct addrinfo *addr;
} listener_waker;

static void *wake_listener(void *arg)
{
    listener_waker *w = arg;
    while (!atomic_load(&w->done)) {
        int fd = socket(w->addr->ai_family, w->addr->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            (void)connect(fd, w->addr->ai_addr, w->addr->ai_addrlen);
            close(fd);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Starts the waker for s's port; 0 when it runs (a failure only leaves the 2 s wait). */
static int listener_waker_start(const server *s, listener_waker *w)
{
    char host[sizeof s->host], port[16];
    snprintf(host, sizeof host, "%s", s->host[0] == '[' ? s->host + 1 : s->host);
    char *rb = strchr(host, ']');
    if (rb)
        *rb = 0;
    /* a server on every address answers on loopback */
    if (!strcmp(host, "0.0.0.0") || !host[0])
        snprintf(host, sizeof host, "127.0.0.1");
    else if (!strcmp(host, "::"))
        snprintf(host, sizeof host, "::1");
    snprintf(port, sizeof port, "%d", s->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    w->addr = NULL;
    atomic_init(&w->done, 0);
    if (s->port <= 0 || getaddrinfo(host, port, &hints, &w->addr) || !w->addr)
        return -1;
    if (pthread_create(&w->thread, NULL, wake_listener, w)) {
        freeaddrinfo(w->addr);
        return -1;
    }
    return 0;
}

static void listener_waker_stop(listener_waker *w)
{
    atomic_store(&w->done, 1);
    pthread_join(w->thread, NULL);
    freeaddrinfo(w->addr);
}

void server_stop(server *s)
{
    if (!s)
        return;
    /* Running jobs stop at their next step and go back to the queue while CivetWeb's threads
     * wind down (which takes a while), not after. */
    jobs_request_stop(s->q);
    if (s->ctx) {
        /* the WebSockets close, mg_stop waits for their threads: no bus writes after this */
        ws_stop(s);
        listener_waker w;
        int waking = listener_waker_start(s, &w) == 0;
        mg_stop(s->ctx);
        if (waking)
            listener_waker_stop(&w);
    }
    jobs_stop(s->q);
    progress_bus_free(s->bus);
    model_cache_free(s->models);
    m2p_store_close(s->store);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the data folder's lock */
    pthread_mutex_destroy(&s->lock);
    m2p_tokenizer_free(s->tok);
    json_decref(s->model_problems);
    ux_fetch_stop(s);
    m2p_poster_cleanup(); /* the HTTP threads that drew poster text are gone */
    pthread_mutex_destroy(&s->tok_lock);
    free(s->openapi);
    free(s);
}
