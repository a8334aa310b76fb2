/*
 * api.c — this server's REST handlers under /api (routed from the table in routes.c): health,
 * models, analyze (URL or multipart upload), generate, jobs (status, cancel, delete), images,
 * gallery, batches and the OpenAPI document.
 *
 * Every route that starts work only validates and queues a job (src/jobs); the answer is the
 * job id, and progress comes over /ws/progress or GET /api/jobs/{id}. Images are served from the
 * database by result id. An upload is analysed once per content: its SHA-256 (with the duration,
 * prompt version, band and song) names the job that answers every later copy of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_limit.h"
#include "server/server_internal.h"

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

void api_health(server *s, struct mg_connection *c, const route_args *a)
{
    (void)a;
    jobs_stats js;
    jobs_get_stats(s->q, &js);
    progress_stats ps;
    progress_get_stats(s->bus, &ps);
    char def[128];
    model_cache_default(s->models, def, sizeof def);
    char *loaded = model_cache_loaded_json(s->models);
    json_t *lj = loaded ? m2p_json_loads(loaded, 0, NULL) : NULL;
    free(loaded);
    pthread_mutex_lock(&s->lock);
    int n_ws = s->n_ws;
    long ws_dropped = s->ws_dropped;
    pthread_mutex_unlock(&s->lock);
    json_t *o =
        json_pack("{s:b, s:s, s:s, s:o, s:s?, s:{s:I, s:I, s:I, s:I}, s:i, s:{s:I, s:I, s:I, s:i},"
                  " s:I, s:i}",
                  "success", 1, "status", "ok", "version", M2P_VERSION, "models_loaded",
                  lj ? lj : json_array(), "default_model", def[0] ? def : NULL, "jobs", "queued",
                  (json_int_t)js.queued, "running", (json_int_t)js.running, "done",
                  (json_int_t)js.done, "failed", (json_int_t)js.failed, "websockets", n_ws,
                  "progress", "published", (json_int_t)ps.published, "delivered",
                  (json_int_t)ps.delivered, "dropped", (json_int_t)ps.dropped, "queued", ps.queued,
                  "rss_kb", (json_int_t)rss_kb(), "threads", s->cfg.threads);
    if (o) {
        json_object_set_new(o, "websockets_dropped", json_integer(ws_dropped));
        /* The model cache's memory budget and use (--model-memory-gb). */
        model_cache_stats ms;
        model_cache_get_stats(s->models, &ms);
        json_object_set_new(o, "model_memory",
                            json_pack("{s:I, s:I, s:i, s:i, s:i}", "budget_bytes",
                                      (json_int_t)ms.budget_bytes, "used_bytes",
                                      (json_int_t)ms.used_bytes, "running", ms.running, "waiting",
                                      ms.waiting, "evictions", ms.evictions));
        /* Many machines: the store's backend and the workers with a recent heartbeat. */
        char *workers = jobs_workers_json(s->q);
        json_t *wj = workers ? json_loads(workers, 0, NULL) : NULL;
        free(workers);
        json_object_set_new(o, "store", json_string(jobs_store_backend(s->q)));
        json_object_set_new(o, "workers", wj ? wj : json_array());
    }
    http_json(c, 200, o);
}

/* The last generation with model on this server: how long it took and for what (NULL when none
 * ran). expected_time gets it in words; the original's fixed claims ("6-12 seconds") were for
 * a GPU and are not shown. */
static json_t *measured(server *s, const char *model, char *expected, size_t len)
{
    expected[0] = 0;
    jobs_record j;
    if (jobs_last_generation(s->q, model, &j))
        return NULL;
    json_t *p = m2p_json_loads(j.params ? j.params : "", 0, NULL);
    json_t *r = m2p_json_loads(j.result ? j.result : "", 0, NULL);
    json_t *o = NULL;
    json_t *t = json_object_get(r, "total_time");
    if (json_is_number(t)) {
        int n = (int)json_array_size(json_object_get(r, "images"));
        int steps = (int)json_integer_value(json_object_get(p, "steps"));
        int w = (int)json_integer_value(json_object_get(p, "width"));
        int h = (int)json_integer_value(json_object_get(p, "height"));
        double sec = json_number_value(t);
        o = json_pack("{s:f, s:i, s:i, s:i, s:i, s:I}", "seconds", sec, "images", n, "steps", steps,
                      "width", w, "height", h, "finished_ms", (json_int_t)j.finished_ms);
        snprintf(expected, len, "%.*f seconds for %d image%s at %dx%d, %d steps (last run here)",
                 sec < 1 ? 2 : 1, sec, n, n == 1 ? "" : "s", w, h, steps);
    }
    json_decref(p);
    json_decref(r);
    jobs_record_clear(&j);
    return o;
}

static json_t *model_entry(server *s, const char *name, const m2p_registry_entry *r)
{
    char path[1024], expected[160];
    json_t *m = measured(s, name, expected, sizeof expected);
#define OR_EMPTY(f) (r && r->f ? r->f : "")
    int installed = model_cache_installed(s->models, name, path, sizeof path);
    json_t *e = json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:b}", "name",
        r && r->title ? r->title : name, "description",
        r ? OR_EMPTY(description) : "A local diffusers folder given with --model", "expected_time",
        expected, "measured", m ? m : json_null(), "memory", OR_EMPTY(memory), "quality",
        OR_EMPTY(quality), "speed", OR_EMPTY(speed), "hub_id", OR_EMPTY(hub_id), "default_steps",
        r && r->default_steps > 0 ? r->default_steps : 8, "supported", r ? r->supported : 1,
        "installed", installed, "loaded", model_cache_is_loaded(s->models, name));
    ux_model_needs(s, e, name, installed ? path : NULL); /* RAM, disk, previews (api_fetch.c) */
    /* The original's per-model defaults (registry.c) for the page's controls; a local folder
     * given with --model has none (its scheduler_config decides). */
    if (e && r) {
        json_object_set_new(e, "default_guidance", json_real(r->default_guidance));
        json_object_set_new(e, "default_width", json_integer(r->default_width));
        json_object_set_new(e, "default_height", json_integer(r->default_height));
        json_object_set_new(e, "uses_negative_prompt", json_boolean(m2p_registry_uses_negative(r)));
        json_object_set_new(e, "scheduler", json_string(r->scheduler ? r->scheduler : ""));
    }
    return e;
#undef OR_EMPTY
}

/* The original's shape: models is an object keyed by name; plus installed, loaded, measured. */
void api_models(server *s, struct mg_connection *c, const route_args *a)
{
    (void)a;
    int n = 0;
    const m2p_registry_entry *r = m2p_registry(&n);
    json_t *models = json_object();
    char def[128];
    model_cache_default(s->models, def, sizeof def);
    for (int i = 0; i < n; i++)
        json_object_set_new(models, r[i].name, model_entry(s, r[i].name, &r[i]));
    int ne = model_cache_n_extra(s->models);
    for (int i = 0; i < ne; i++) {
        char name[64], ref[1024];
        if (!model_cache_extra(s->models, i, name, sizeof name, ref, sizeof ref))
            json_object_set_new(models, name, model_entry(s, name, NULL));
    }
    json_t *o = json_pack("{s:b, s:o, s:s?, s:i}", "success", 1, "models", models, "default_model",
                          def[0] ? def : NULL, "max_variations", s->cfg.max_variations);
    if (o && json_array_size(s->model_problems))
        json_object_set(o, "problems", s->model_problems);
    if (o && !def[0])
        json_object_set_new(o, "hint",
                            json_string("No model is installed. Download one with `mus2pic "
                                        "models fetch lcm` (about 4 GB), then reload."));
    http_json(c, 200, o);
}

/* audio_key: an upload whose bytes are in the shared store under that key (PostgreSQL). */
static int submit_analysis(server *s, const char *source, int upload, const char *audio_key,
                           double duration, int version, const char *band, const char *song,
                           int64_t *id, api_error *err)
{
    json_t *p = json_pack("{s:s, s:b, s:f, s:i}", "source", source, "upload", upload, "duration",
                          duration, "prompt_version", version);
    if (p && audio_key)
        json_object_set_new(p, "audio_key", json_string(audio_key));
    if (p && band && *band)
        json_object_set_new(p, "band", json_string(band));
    if (p && song && *song)
        json_object_set_new(p, "song", json_string(song));
    char *ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    int rc = ps ? jobs_submit(s->q, JOBS_ANALYZE, ps, 0, 0, 0, id)
                : m2p_error(M2P_EINVAL, "the source, band and song must be UTF-8 text");
    free(ps);
    if (rc) {
        err->status = http_status_of(rc);
        err->field[0] = 0;
        snprintf(err->message, sizeof err->message, "%s", m2p_errmsg());
    }
    return rc;
}

int api_submit_analysis(server *s, const char *source, int upload, double duration, int version,
                        const char *band, const char *song, int64_t *id, api_error *err)
{
    return submit_analysis(s, source, upload, NULL, duration, version, band, song, id, err);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void analyze_json(server *s, struct mg_connection *c, json_t *b)
{
    api_error e = {0};
    double duration;
    int version;
    int64_t id;
    if (validate_url(s, json_object_get(b, "url"), "url", &e) ||
        validate_duration(json_object_get(b, "duration"), &duration, &e) ||
        validate_prompt_version(json_object_get(b, "prompt_version"), &version, &e) ||
        validate_opt_string(b, "band", 256, &e) || validate_opt_string(b, "song", 256, &e) ||
        api_submit_analysis(s, jstr(b, "url"), 0, duration, version, jstr(b, "band"),
                            jstr(b, "song"), &id, &e)) {
        http_api_error(c, &e);
        return;
    }
    http_json(
        c, 202,
        json_pack("{s:b, s:I, s:s}", "success", 1, "job_id", (json_int_t)id, "state", "queued"));
}

/* ---- multipart upload ----
 * The file is stored into data/uploads/up-<random>/<the sanitised original name> (the name
 * becomes the song's title when the file has no tags). The size limit is enforced on
 * Content-Length before anything is read, so a request without one is refused (411).
 * We write the file ourselves from CivetWeb's field chunks (MG_FORM_FIELD_STORAGE_GET) and
 * close it on every path: CivetWeb 1.15's own storing (STORAGE_STORE) leaks the open file of a
 * body that ends inside the file field, so ~1000 such requests exhausted the server's file
 * descriptors (found by fuzz_multipart). */

typedef struct upload {
    server *s;
    char dir[1200], path[1500];
    long long size;
    int have_file, stored;
    char duration[16], version[16], band[257], song[257];
    char audio_key[64]; /* the file's key in the shared store, once it is there */
    char *field; /* the form field being received into a buffer */
    size_t field_cap, field_len;
    FILE *file;     /* the upload being written (form_get), closed by upload_close */
    int file_field; /* the field being received is the file */
    int write_failed;
} upload;

/* Close the upload's file; 0 when everything written reached it. */
static int upload_close(upload *u)
{
    if (!u->file)
        return u->write_failed ? -1 : 0;
    int rc = fclose(u->file);
    u->file = NULL;
    if (rc != 0)
        u->write_failed = 1;
    return u->write_failed ? -1 : 0;
}

static void sanitize_name(const char *in, char *out, size_t len)
{
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    const char *bs = strrchr(base, '\\');
    base = bs ? bs + 1 : base;
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)base; *p && k + 1 < len; p++) {
        unsigned char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == '_' || ch == ' ' || ch == '(' || ch == ')' ||
                 ch >= 0x80;
        out[k++] = ok ? (char)ch : '_';
    }
    out[k] = 0;
    json_t *utf8 = json_string(out); /* NULL when the bytes are not UTF-8 */
    if (!utf8)
        for (char *q = out; *q; q++)
            if ((unsigned char)*q >= 0x80)
                *q = '_';
    json_decref(utf8);
    if (!k || out[0] == '.' || out[0] == '-')
        snprintf(out, len, "upload%s",
                 strrchr(base, '.') && strlen(strrchr(base, '.')) < 8 ? strrchr(base, '.') : "");
}

static int form_found(const char *key, const char *filename, char *path, size_t pathlen, void *ud)
{
    upload *u = ud;
    u->field = NULL;
    if (u->file_field) { /* the file field ended: a new field begins */
        u->file_field = 0;
        if (upload_close(u) == 0)
            u->stored = 1;
    }
    if (filename && *filename && (!strcmp(key, "file") || !strcmp(key, "audio"))) {
        if (u->have_file)
            return MG_FORM_FIELD_STORAGE_SKIP;
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)(uintptr_t)u ^ (uint64_t)time(NULL);
        snprintf(u->dir, sizeof u->dir, "%s/uploads/up-%016llx", u->s->data_dir,
                 (unsigned long long)r);
        if (mkdir(u->dir, 0700) != 0) {
            u->dir[0] = 0;
            return MG_FORM_FIELD_STORAGE_ABORT;
        }
        char name[200];
        sanitize_name(filename, name, sizeof name);
        snprintf(u->path, sizeof u->path, "%s/%s", u->dir, name);
        (void)path;
        (void)pathlen;
        int fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || !(u->file = fdopen(fd, "wb"))) {
            if (fd >= 0)
                close(fd);
            u->path[0] = 0;
            return MG_FORM_FIELD_STORAGE_ABORT;
        }
        u->have_file = 1;
        u->file_field = 1;
        return MG_FORM_FIELD_STORAGE_GET;
    }
    if (!strcmp(key, "duration")) {
        u->field = u->duration;
        u->field_cap = sizeof u->duration;
    } else if (!strcmp(key, "prompt_version")) {
        u->field = u->version;
        u->field_cap = sizeof u->version;
    } else if (!strcmp(key, "band")) {
        u->field = u->band;
        u->field_cap = sizeof u->band;
    } else if (!strcmp(key, "song")) {
        u->field = u->song;
        u->field_cap = sizeof u->song;
    } else {
        return MG_FORM_FIELD_STORAGE_SKIP;
    }
    u->field_len = 0;
    u->field[0] = 0;
    return MG_FORM_FIELD_STORAGE_GET;
}

static int form_get(const char *key, const char *value, size_t len, void *ud)
{
    upload *u = ud;
    if (u->file_field) {
        u->size += (long long)len;
        if (u->size > (long long)u->s->cfg.max_upload)
            return MG_FORM_FIELD_HANDLE_ABORT;
        if (len && fwrite(value, 1, len, u->file) != len) {
            u->write_failed = 1;
            return MG_FORM_FIELD_HANDLE_ABORT;
        }
        return MG_FORM_FIELD_HANDLE_GET;
    }
    if (u->field) {
        size_t room = u->field_cap - 1 - u->field_len;
        size_t k = len < room ? len : room;
        memcpy(u->field + u->field_len, value, k);
        u->field_len += k;
        u->field[u->field_len] = 0;
    }
    return MG_FORM_FIELD_HANDLE_GET;
}

/* CivetWeb's field_store: not called, as no field is left to CivetWeb to store (see above). */
static int form_stored(const char *path, long long size, void *ud)
{
    upload *u = ud;
    u->stored = 1;
    u->size = size;
    return MG_FORM_FIELD_HANDLE_NEXT;
}

static void remove_upload(upload *u)
{
    if (u->path[0])
        unlink(u->path);
    if (u->dir[0])
        rmdir(u->dir);
}

/* SHA-256 of a file as 64 hex digits. */
static int sha256_file(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return m2p_error(M2P_EIO, "cannot read the upload %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 16);
    int rc = 0;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = m2p_error(M2P_ENOMEM, "out of memory hashing the upload");
    } else {
        size_t r;
        while ((r = fread(buf, 1, 1 << 16, f)) > 0)
            EVP_DigestUpdate(ctx, buf, r);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (ferror(f) || !EVP_DigestFinal_ex(ctx, md, &n) || n != 32)
            rc = m2p_error(M2P_EIO, "cannot read the upload %s", path);
        for (unsigned i = 0; !rc && i < n; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    fclose(f);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* On a PostgreSQL store the job may run on a worker on another host: the file goes into the
 * store (jobs_audio_put) under its folder's name before the job is queued, so an acknowledged
 * upload survives this node; the local copy is then removed. A SQLite store keeps it here.
 * The copy runs on a connection of its own: the node's shared one stays free for the other
 * requests while a large file streams (100 MiB take about 2 s on loopback). */
static int share_upload(server *s, upload *u, api_error *e)
{
    if (strcmp(jobs_store_backend(s->q), "postgresql") != 0 || !s->cfg.store_url)
        return 0;
    const char *name = strrchr(u->dir, '/');
    name = name ? name + 1 : u->dir;
    int64_t size = 0;
    int rc = jobs_audio_put(s->q, name, u->path, (int64_t)s->cfg.max_upload, &size);
    if (rc) {
        e->status = http_status_of(rc);
        snprintf(e->field, sizeof e->field, "file");
        snprintf(e->message, sizeof e->message, "the upload could not be shared: %s",
                 m2p_errmsg());
        return rc;
    }
    if (snprintf(u->audio_key, sizeof u->audio_key, "%.*s", (int)sizeof u->audio_key - 1,
                 name) >= (int)sizeof u->audio_key)
        u->audio_key[0] = 0;
    return 0;
}

static void analyze_upload(server *s, struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->content_length < 0) {
        http_error(c, 411, "file", "an upload needs a Content-Length (limit %zu bytes)",
                   s->cfg.max_upload);
        return;
    }
    /* The multipart overhead is small: a body over the upload limit is refused unread. */
    if (ri->content_length > (long long)(s->cfg.max_upload + 64 * 1024)) {
        http_error(c, 413, "file", "the upload has %lld bytes; the limit is %zu",
                   ri->content_length, s->cfg.max_upload);
        return;
    }
    upload u;
    memset(&u, 0, sizeof u);
    u.s = s;
    struct mg_form_data_handler h = {form_found, form_get, form_stored, &u};
    int n = mg_handle_form_request(c, &h);
    if (u.file_field) { /* the file was the last field: complete only when the form was */
        u.file_field = 0;
        if (upload_close(&u) == 0 && n >= 0)
            u.stored = 1;
    }
    upload_close(&u); /* closed on every path */
    api_error e = {0};
    double duration = 60;
    int version = M2P_PROMPT_V4;
    int64_t id = 0;
    int cached = 0;
    char digest[65] = "", key[700], state[16] = "";
    if (n < 0 || (u.have_file && !u.stored)) {
        e.status = 400;
        snprintf(e.field, sizeof e.field, "file");
        snprintf(e.message, sizeof e.message, "the upload could not be read or stored");
    } else if (!u.have_file || u.size <= 0) {
        e.status = 400;
        snprintf(e.field, sizeof e.field, "file");
        snprintf(e.message, sizeof e.message,
                 "send the audio as a non-empty multipart field named \"file\"");
    } else if (u.size > (long long)s->cfg.max_upload) {
        e.status = 413;
        snprintf(e.field, sizeof e.field, "file");
        snprintf(e.message, sizeof e.message, "the upload is over the limit of %zu bytes",
                 s->cfg.max_upload);
    } else {
        json_t *dv = u.duration[0] ? json_string(u.duration) : NULL;
        json_t *vv = u.version[0] ? json_string(u.version) : NULL;
        json_t *bv = json_string(u.band), *sv = json_string(u.song);
        if (!bv || !sv) {
            e.status = 400;
            snprintf(e.field, sizeof e.field, "%s", bv ? "song" : "band");
            snprintf(e.message, sizeof e.message, "%s must be UTF-8 text", bv ? "song" : "band");
        } else if (!validate_duration(dv, &duration, &e) &&
                   !validate_prompt_version(vv, &version, &e)) {
            if (sha256_file(u.path, digest)) {
                e.status = 500;
                snprintf(e.message, sizeof e.message, "%s", m2p_errmsg());
            } else {
                /* Uploads are analysed once per content: the key is the bytes' SHA-256 with
                 * what changes the answer (duration, prompt version, band, song). An earlier
                 * job that is queued, running or done answers the same request again; a failed
                 * or deleted one does not (jobs_upload_find). */
                snprintf(key, sizeof key, "%s|%g|%d|%s|%s", digest, duration, version, u.band,
                         u.song);
                if (jobs_upload_find(s->q, key, &id, state, sizeof state))
                    cached = 1;
                else if (!share_upload(s, &u, &e) &&
                         !submit_analysis(s, u.path, 1, u.audio_key[0] ? u.audio_key : NULL,
                                          duration, version, u.band, u.song, &id, &e))
                    jobs_upload_remember(s->q, key, id);
                else if (u.audio_key[0])
                    jobs_audio_delete(s->q, u.audio_key); /* not queued: nobody needs it */
            }
        }
        json_decref(bv);
        json_decref(sv);
        json_decref(dv);
        json_decref(vv);
    }
    if (!e.message[0] && id <= 0) {
        e.status = 500;
        snprintf(e.message, sizeof e.message, "the analysis job could not be queued");
    }
    /* A cached answer needs no second copy; a shared one is in the store now. */
    if (e.message[0] || cached || u.audio_key[0])
        remove_upload(&u);
    if (e.message[0]) {
        http_api_error(c, &e);
        return;
    }
    http_json(c, 202,
              json_pack("{s:b, s:I, s:s, s:I, s:b, s:s}", "success", 1, "job_id", (json_int_t)id,
                        "state", cached ? state : "queued", "bytes", (json_int_t)u.size, "cached",
                        cached, "sha256", digest));
}

/* POST /api/analyze: a multipart upload, or JSON naming a URL. */
void api_analyze(server *s, struct mg_connection *c, const route_args *a)
{
    if (a->body)
        analyze_json(s, c, a->body);
    else
        analyze_upload(s, c);
}

void api_generate(server *s, struct mg_connection *c, const route_args *a)
{
    api_error e;
    int64_t id = 0;
    json_t *p = submit_generate(s, a->body, &id, &e);
    if (!p) {
        http_api_error(c, &e);
        return;
    }
    json_t *o = json_pack("{s:b, s:I, s:s, s:O, s:O}", "success", 1, "job_id", (json_int_t)id,
                          "state", "queued", "seed", json_object_get(p, "seed"), "params", p);
    json_decref(p);
    char *js = http_dumps(o);
    json_decref(o);
    /* The job is queued: out of memory for the full answer, the client still learns its id. */
    char small[96];
    if (!js)
        snprintf(small, sizeof small, "{\"success\":true,\"job_id\":%lld,\"state\":\"queued\"}",
                 (long long)id);
    http_send(c, 202, "application/json", js ? js : small, strlen(js ? js : small), NULL);
    free(js);
}

void api_job_get(server *s, struct mg_connection *c, const route_args *a)
{
    jobs_record j;
    int rc = jobs_job_get(s->q, a->id, &j);
    if (rc) {
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    char *js = jobs_job_json(&j);
    jobs_record_clear(&j);
    json_t *o = js ? m2p_json_loads(js, 0, NULL) : NULL;
    free(js);
    if (o)
        json_object_set_new(o, "success", json_true());
    http_json(c, 200, o);
}

static void deleted(struct mg_connection *c, int rc, int64_t id)
{
    if (rc)
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
    else
        http_json(c, 200,
                  json_pack("{s:b, s:I, s:b}", "success", 1, "id", (json_int_t)id, "deleted", 1));
}

void api_job_delete(server *s, struct mg_connection *c, const route_args *a)
{
    deleted(c, jobs_delete(s->q, a->id), a->id);
}

void api_job_cancel(server *s, struct mg_connection *c, const route_args *a)
{
    int now = 0;
    int rc = jobs_cancel(s->q, a->id, &now);
    if (rc) {
        http_error(c, rc == M2P_EINVAL ? 409 : http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    http_json(c, now ? 200 : 202,
              json_pack("{s:b, s:I, s:s}", "success", 1, "id", (json_int_t)a->id, "state",
                        now ? "canceled" : "canceling"));
}

void api_image_get(server *s, struct mg_connection *c, const route_args *a)
{
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = jobs_result_png(s->q, a->id, &png, &len);
    if (rc) {
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    char name[160], hdr[240];
    api_image_filename(png, len, a->id, name, sizeof name);
    snprintf(hdr, sizeof hdr, "Content-Disposition: inline; filename=\"%s\"\r\n", name);
    http_send(c, 200, "image/png", png, len, hdr);
    free(png);
}

void api_image_delete(server *s, struct mg_connection *c, const route_args *a)
{
    deleted(c, jobs_result_delete(s->q, a->id), a->id);
}

void api_gallery(server *s, struct mg_connection *c, const route_args *a)
{
    long page = a->query[0], per = a->query[1];
    char *items = NULL;
    int64_t total = 0;
    int rc = jobs_gallery(s->q, (int)((page - 1) * per), (int)per, &items, &total);
    if (rc) {
        http_error(c, 500, NULL, "%s", m2p_errmsg());
        return;
    }
    json_t *arr = m2p_json_loads(items, 0, NULL);
    free(items);
    /* A listing carries each song's numbers (tempo, energy, ...) but not its curves (envelope,
     * beats, chroma...: ~3 MB a post made one page 84 MB); GET /api/jobs/{job_id} has them all. */
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        json_t *f = json_object_get(json_object_get(it, "meta"), "features");
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(f, tmp, k, v)
        {
            if (!json_is_number(v) && !json_is_string(v))
                json_object_del(f, k);
        }
    }
    http_json(c, 200,
              json_pack("{s:b, s:i, s:i, s:I, s:o}", "success", 1, "page", (int)page, "per_page",
                        (int)per, "total", (json_int_t)total, "items", arr ? arr : json_array()));
}

/* ---- batches ---- */

#define MAX_BATCH_URLS 50

void api_batch_post(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *b = a->body;
    api_error e = {0};
    json_t *urls = json_object_get(b, "urls");
    double duration;
    int version;
    json_t *gen = NULL;
    if (!json_is_array(urls) || json_array_size(urls) == 0 ||
        json_array_size(urls) > MAX_BATCH_URLS) {
        e.status = 400;
        snprintf(e.field, sizeof e.field, "urls");
        snprintf(e.message, sizeof e.message, "urls must be an array of 1 to %d URLs",
                 MAX_BATCH_URLS);
        goto bad;
    }
    /* Named by line, counted from 1 as the page's text box shows them. */
    for (size_t i = 0; i < json_array_size(urls); i++) {
        json_t *u = json_array_get(urls, i);
        char why[256] = "";
        if (json_is_string(u) && json_string_length(u) <= 2048 &&
            m2p_url_check(json_string_value(u), why, sizeof why) == 0) {
            char field[32];
            snprintf(field, sizeof field, "urls[%zu]", i);
            if (!validate_url(s, u, field, &e)) /* the private-address check */
                continue;
            goto bad;
        }
        e.status = 400;
        snprintf(e.field, sizeof e.field, "urls[%zu]", i);
        snprintf(e.message, sizeof e.message, "line %zu: %s", i + 1,
                 !json_is_string(u)               ? "not a string"
                 : json_string_length(u) > 2048 ? "the URL is longer than 2048 characters"
                 : why[0]                         ? why
                                                  : m2p_errmsg());
        goto bad;
    }
    if (validate_duration(json_object_get(b, "duration"), &duration, &e) ||
        validate_prompt_version(json_object_get(b, "prompt_version"), &version, &e))
        goto bad;
    if (!(gen = validate_generate(s, b, 0, &e)))
        goto bad;
    /* Each item gets its own seed when its analysis finishes, unless one was given. */
    if (!json_object_get(b, "seed"))
        json_object_del(gen, "seed");
    json_object_del(gen, "prompt");
    int64_t queued = 0;
    jobs_count(s->q, "queued", -1, &queued);
    if (queued + (int64_t)json_array_size(urls) > s->cfg.max_queued) {
        json_decref(gen);
        http_error(c, 503, NULL, "the queue has room for %lld more jobs; this batch needs %zu",
                   (long long)(s->cfg.max_queued - queued), json_array_size(urls));
        return;
    }
    json_t *bp = json_pack("{s:O, s:f, s:i, s:O}", "urls", urls, "duration", duration,
                           "prompt_version", version, "generate", gen);
    char *bps = bp ? json_dumps(bp, JSON_COMPACT) : NULL;
    json_decref(bp);
    /* the batch and its analyses are queued together or not at all */
    int64_t bid = 0, jid[MAX_BATCH_URLS];
    char *jps[MAX_BATCH_URLS] = {0};
    int n = (int)json_array_size(urls), rc = bps ? 0 : M2P_ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        json_t *p = json_pack("{s:O, s:b, s:f, s:i, s:O}", "source",
                              json_array_get(urls, (size_t)i), "upload", 0, "duration", duration,
                              "prompt_version", version, "generate", gen);
        jps[i] = p ? json_dumps(p, JSON_COMPACT) : NULL;
        json_decref(p);
        if (!jps[i])
            rc = m2p_error(M2P_ENOMEM, "out of memory queuing the batch");
    }
    json_t *ids = json_array();
    if (!rc && !ids)
        rc = m2p_error(M2P_ENOMEM, "out of memory queuing the batch");
    else if (!rc)
        rc = jobs_submit_batch(s->q, bps, JOBS_ANALYZE, (const char *const *)jps, n, &bid, jid);
    else if (!bps)
        m2p_error(M2P_ENOMEM, "out of memory queuing the batch");
    free(bps);
    for (int i = 0; i < n; i++)
        free(jps[i]);
    json_decref(gen);
    if (rc) {
        json_decref(ids);
        http_error(c, http_status_of(rc), NULL, "%s", m2p_errmsg());
        return;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(ids, json_integer(jid[i]));
    http_json(c, 202,
              json_pack("{s:b, s:I, s:o}", "success", 1, "batch_id", (json_int_t)bid,
                        "analysis_jobs", ids));
    return;
bad:
    json_decref(gen);
    http_api_error(c, &e);
}

static json_t *loads_or_null(const char *s)
{
    json_t *v = s ? m2p_json_loads(s, 0, NULL) : NULL;
    return v ? v : json_null();
}

static int terminal(const char *st)
{
    return !strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "canceled");
}

/* A batch with its items: each URL's analysis job and generation job. */
static json_t *batch_object(server *s, int64_t id, int with_items)
{
    char *params = NULL;
    int64_t created = 0;
    if (jobs_batch_get(s->q, id, &params, &created))
        return NULL;
    json_t *bp = loads_or_null(params);
    free(params);
    json_t *urls = json_object_get(bp, "urls");
    size_t n = json_array_size(urls);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:i, s:O, s:n, s:n}", "index", (int)i, "url",
                                               json_array_get(urls, i), "analysis", "generation"));
    jobs_record *jobs = NULL;
    int nj = 0;
    jobs_batch_jobs(s->q, id, &jobs, &nj);
    int done = 0, failed = 0, active = 0;
    for (int k = 0; k < nj; k++) {
        jobs_record *j = &jobs[k];
        json_t *it = json_array_get(items, (size_t)j->batch_index);
        if (it) {
            json_t *jo = json_pack("{s:I, s:s, s:s?}", "id", (json_int_t)j->id, "state", j->state,
                                   "error", j->error);
            json_t *r = loads_or_null(j->result);
            if (j->kind == JOBS_ANALYZE) {
                json_object_set(jo, "band", json_object_get(r, "band"));
                json_object_set(jo, "song", json_object_get(r, "song"));
                json_object_set(jo, "genre", json_object_get(r, "genre"));
                json_object_set(jo, "prompt", json_object_get(r, "prompt"));
                json_object_set_new(it, "analysis", jo);
            } else {
                json_object_set(jo, "images", json_object_get(r, "images"));
                json_object_set(jo, "seed", json_object_get(r, "seed"));
                json_object_set_new(it, "generation", jo);
            }
            json_decref(r);
        }
        /* An item is finished when its generation is, or its analysis did not succeed. */
        if (j->kind == JOBS_GENERATE) {
            if (!strcmp(j->state, "done"))
                done++;
            else if (terminal(j->state))
                failed++;
            else
                active++;
        } else if (terminal(j->state) && strcmp(j->state, "done")) {
            failed++;
        }
        jobs_record_clear(j);
    }
    free(jobs);
    int finished = done + failed;
    json_t *o = json_pack("{s:I, s:I, s:s, s:i, s:i, s:i, s:i}", "id", (json_int_t)id, "created_ms",
                          (json_int_t)created, "state", finished >= (int)n ? "finished" : "running",
                          "total", (int)n, "done", done, "failed", failed, "active", active);
    json_object_set(o, "params", json_object_get(bp, "generate"));
    json_object_set(o, "duration", json_object_get(bp, "duration"));
    if (with_items)
        json_object_set_new(o, "items", items);
    else
        json_decref(items);
    json_decref(bp);
    return o;
}

void api_batch_list(server *s, struct mg_connection *c, const route_args *a)
{
    long page = a->query[0], per = a->query[1];
    int64_t *ids = NULL;
    int n = 0;
    if (jobs_batches_list(s->q, (int)((page - 1) * per), (int)per, &ids, &n)) {
        http_error(c, 500, NULL, "%s", m2p_errmsg());
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = batch_object(s, ids[i], 0);
        if (o)
            json_array_append_new(arr, o);
    }
    free(ids);
    http_json(c, 200, json_pack("{s:b, s:o}", "success", 1, "batches", arr));
}

void api_batch_get(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *o = batch_object(s, a->id, 1);
    if (!o) {
        http_error(c, 404, "id", "batch %lld does not exist", (long long)a->id);
        return;
    }
    json_object_set_new(o, "success", json_true());
    http_json(c, 200, o);
}

void api_openapi(server *s, struct mg_connection *c, const route_args *a)
{
    (void)a;
    http_send(c, 200, "application/json", s->openapi, strlen(s->openapi), NULL);
}
