/*
 * api_fetch.c — the page's model manager: POST /api/models/fetch starts downloading a registry
 * model with the same fetcher as `mus2pic models fetch` (m2p_model_fetch: hub file list, fp16
 * weights, resume, sha256, HF_ENDPOINT / HF_TOKEN), on a thread of its own; GET
 * /api/models/fetch says how far it is (file, bytes, state, error). One download at a time.
 *
 * Each model's needs for the list (ux_model_needs): download or bytes on disk, memory in the
 * server's compute dtype (model_info_of in jobs/models.c), whether its TAESD is there for live previews, and
 * whether its guidance is built into the UNet (LCM: the page then says the negative prompt
 * is not used).
 *
 * The download's state lives in its own heap block shared by the server and the thread, with a
 * reference count: the server can stop while a download runs (the fetcher cannot be
 * interrupted), and whichever lets go last frees it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "server/server_internal.h"

struct ux_fetch {
    pthread_mutex_t lock;
    int refs;
    char name[64];
    char state[16]; /* downloading, done, failed */
    char file[256];
    int64_t done, total; /* bytes of the current file (total -1 when unknown) */
    int files;           /* files finished */
    int64_t bytes;       /* bytes of finished files */
    char error[600], path[1024];
    double started, finished;
};

static double ux_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ux_fetch_release(ux_fetch *f)
{
    pthread_mutex_lock(&f->lock);
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->lock);
    if (last) {
        pthread_mutex_destroy(&f->lock);
        free(f);
    }
}

static void on_fetch_progress(const char *file, int64_t done, int64_t total, void *ud)
{
    ux_fetch *f = ud;
    pthread_mutex_lock(&f->lock);
    if (strcmp(f->file, file ? file : "")) {
        if (f->file[0]) {
            f->files++;
            f->bytes += f->done;
        }
        snprintf(f->file, sizeof f->file, "%s", file ? file : "");
    }
    f->done = done;
    f->total = total;
    pthread_mutex_unlock(&f->lock);
}

static void *fetch_main(void *arg)
{
    ux_fetch *f = arg;
    char out[1024] = "";
    int rc = m2p_model_fetch(f->name, on_fetch_progress, f, out, sizeof out);
    pthread_mutex_lock(&f->lock);
    if (rc) {
        snprintf(f->state, sizeof f->state, "failed");
        snprintf(f->error, sizeof f->error, "%s", m2p_errmsg());
    } else {
        snprintf(f->state, sizeof f->state, "done");
        snprintf(f->path, sizeof f->path, "%s", out);
        if (f->file[0]) {
            f->files++;
            f->bytes += f->done;
            f->file[0] = 0;
        }
    }
    f->finished = ux_now();
    pthread_mutex_unlock(&f->lock);
    M2P_LOGI("model %s: download %s%s%s", f->name, rc ? "failed: " : "done: ", rc ? f->error : "",
             rc ? "" : out);
    ux_fetch_release(f);
    return NULL;
}

static json_t *fetch_json(ux_fetch *f)
{
    if (!f)
        return json_pack("{s:b, s:s}", "success", 1, "state", "idle");
    pthread_mutex_lock(&f->lock);
    json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:i, s:I, s:f}", "success", 1, "state",
                          f->state, "name", f->name, "file", f->file, "done", (json_int_t)f->done,
                          "total", (json_int_t)f->total, "files_done", f->files, "bytes_done",
                          (json_int_t)(f->bytes + f->done), "seconds",
                          (f->finished > 0 ? f->finished : ux_now()) - f->started);
    if (o && f->error[0])
        json_object_set_new(o, "error", json_string(f->error));
    if (o && f->path[0])
        json_object_set_new(o, "path", json_string(f->path));
    pthread_mutex_unlock(&f->lock);
    return o;
}

/* POST /api/models/fetch {name}: 202 with the state; 409 while another download runs. */
void api_models_fetch(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *nv = json_object_get(a->body, "name");
    const char *name = json_is_string(nv) ? json_string_value(nv) : NULL;
    const m2p_registry_entry *r = name ? m2p_registry_find(name) : NULL;
    if (!r || strcmp(r->name, name) != 0) {
        http_error(c, 400, "name", "name must be a model name from /api/models (lcm, ...)");
        return;
    }
    if (!r->supported) {
        http_error(c, 400, "name",
                   "%s (%s) cannot run in this version; download it with `mus2pic models fetch "
                   "%s` if you want the files anyway",
                   r->name, r->hub_id, r->name);
        return;
    }
    pthread_mutex_lock(&s->fetch_lock);
    ux_fetch *old = s->fetch;
    int busy = 0;
    if (old) {
        pthread_mutex_lock(&old->lock);
        busy = !strcmp(old->state, "downloading");
        pthread_mutex_unlock(&old->lock);
    }
    if (busy) {
        pthread_mutex_unlock(&s->fetch_lock);
        http_error(c, 409, "name", "%s is downloading; one download at a time", old->name);
        return;
    }
    ux_fetch *f = calloc(1, sizeof *f);
    if (!f) {
        pthread_mutex_unlock(&s->fetch_lock);
        http_error(c, 500, NULL, "out of memory");
        return;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->refs = 2; /* the server's and the thread's */
    snprintf(f->name, sizeof f->name, "%s", r->name);
    snprintf(f->state, sizeof f->state, "downloading");
    f->total = -1;
    f->started = ux_now();
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&th, &at, fetch_main, f);
    pthread_attr_destroy(&at);
    if (err) {
        pthread_mutex_unlock(&s->fetch_lock);
        pthread_mutex_destroy(&f->lock);
        free(f);
        http_error(c, 503, NULL, "cannot start the download now; try again");
        return;
    }
    s->fetch = f;
    pthread_mutex_unlock(&s->fetch_lock);
    if (old)
        ux_fetch_release(old);
    M2P_LOGI("model %s: download started (%s)", r->name, r->hub_id);
    http_json(c, 202, fetch_json(f));
}

/* GET /api/models/fetch: the current (or last) download. */
void api_models_fetch_get(server *s, struct mg_connection *c, const route_args *a)
{
    (void)a;
    pthread_mutex_lock(&s->fetch_lock);
    json_t *o = fetch_json(s->fetch);
    pthread_mutex_unlock(&s->fetch_lock);
    http_json(c, 200, o);
}

void ux_fetch_stop(server *s)
{
    if (s->fetch)
        ux_fetch_release(s->fetch);
    s->fetch = NULL;
    pthread_mutex_destroy(&s->fetch_lock);
}

void ux_model_needs(server *s, json_t *e, const char *name, const char *path)
{
    if (!e)
        return;
    model_info mi;
    if (model_info_of(name, path, &mi))
        return;
    int bf16 = s->cfg.compute_dtype == M2P_DTYPE_BF16;
    json_object_set_new(e, "ram_bytes", json_integer(bf16 ? mi.ram_bf16 : mi.ram_f32));
    json_object_set_new(e, "dtype", json_string(bf16 ? "bf16" : "f32"));
    json_object_set_new(e, "download_bytes",
                        mi.download_bytes > 0 ? json_integer(mi.download_bytes) : json_null());
    json_object_set_new(e, "disk_bytes",
                        mi.disk_bytes >= 0 ? json_integer(mi.disk_bytes) : json_null());
    json_object_set_new(e, "guidance_embedded", json_boolean(mi.guidance_embedded));
    json_object_set_new(e, "preview", json_string(mi.taesd ? "taesd" : "latent"));
}
