/*
 * api_ux.c — routes that exist for the page: the token count of a prompt (the chosen model's
 * CLIP tokenizer, so the counter shows what the text encoder will read) and small cacheable
 * thumbnails for the gallery (the stored PNG decoded, box-filtered down, encoded again).
 *
 * The tokenizer of the last model asked for stays loaded (s->tok, under s->tok_lock); a result's
 * PNG never changes under its id, so a thumbnail may be cached by the browser for a day.
 */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "server/server_internal.h"

#define UX_TOKEN_LIMIT 77 /* CLIPTextModel max_position_embeddings: BOS + 75 tokens + EOS */
#define UX_THUMB_SIDE 256 /* the gallery shows posters at most 240 CSS px wide */

/* The tokenizer of the model folder dir, loaded once and kept until another folder is asked
 * for. Returns it with s->tok_lock held (the caller unlocks), or NULL with the lock released. */
static m2p_tokenizer *ux_tokenizer(server *s, const char *dir)
{
    pthread_mutex_lock(&s->tok_lock);
    if (s->tok && !strcmp(s->tok_dir, dir))
        return s->tok;
    char tdir[1100];
    snprintf(tdir, sizeof tdir, "%s/tokenizer", dir);
    m2p_tokenizer *t = NULL;
    if (m2p_tokenizer_load(tdir, &t)) {
        pthread_mutex_unlock(&s->tok_lock);
        return NULL;
    }
    m2p_tokenizer_free(s->tok);
    s->tok = t;
    snprintf(s->tok_dir, sizeof s->tok_dir, "%s", dir);
    return t;
}

/* The vocabulary pieces of ids[from..to) as text: "</w>" ends a word. The text is at most most
 * bytes (NULL beyond, as when out of memory). */
static json_t *ux_detokenize(const m2p_tokenizer *t, const int32_t *ids, int from, int to,
                             size_t most)
{
    m2p_buf out;
    m2p_buf_init(&out, most);
    for (int i = from; i < to; i++) {
        const char *p = m2p_token_text(t, ids[i]);
        if (!p)
            continue;
        size_t n = strlen(p);
        int word_end = n >= 4 && !strcmp(p + n - 4, "</w>");
        if (word_end)
            n -= 4;
        if (m2p_buf_append(&out, p, n) ||
            (word_end && i + 1 < to && m2p_buf_append(&out, " ", 1))) {
            m2p_buf_free(&out);
            return NULL;
        }
    }
    /* The vocabulary is valid UTF-8 (byte-level BPE maps every byte to a character); jansson
     * checks it anyway. */
    json_t *v = json_stringn(out.data ? out.data : "", out.len);
    m2p_buf_free(&out);
    return v ? v : json_string("");
}

/* POST /api/tokens {text, model?}: {count, limit, ignored} — count includes the start and end
 * tokens, as the limit does; ignored is the text past the limit, as the tokenizer reads it. */
void api_tokens(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *tv = json_object_get(a->body, "text");
    json_t *mv = json_object_get(a->body, "model");
    if (!json_is_string(tv) || json_string_length(tv) > 16000) {
        http_error(c, 400, "text", "text must be a string of at most 16000 bytes");
        return;
    }
    if (mv && !json_is_null(mv) && !json_is_string(mv)) {
        http_error(c, 400, "model", "model must be a model name from /api/models");
        return;
    }
    char name[128] = "", dir[1024];
    if (json_is_string(mv) && json_string_length(mv))
        snprintf(name, sizeof name, "%s", json_string_value(mv));
    else
        model_cache_default(s->models, name, sizeof name);
    if (!name[0]) {
        http_error(c, 404, "model",
                   "no model is installed to count tokens with; download one with `mus2pic "
                   "models fetch lcm`");
        return;
    }
    if (!model_cache_installed(s->models, name, dir, sizeof dir)) {
        http_error(c, 404, "model", "model %s is not installed (see /api/models)", name);
        return;
    }
    m2p_tokenizer *t = ux_tokenizer(s, dir);
    if (!t) {
        http_error(c, 500, "model", "the tokenizer of model %s cannot be read: %s", name,
                   m2p_errmsg());
        return;
    }
    int32_t *ids = NULL;
    int n = 0;
    int rc = m2p_tokenizer_encode_all(t, json_string_value(tv), &ids, &n);
    json_t *ignored = NULL;
    if (!rc && n > UX_TOKEN_LIMIT) /* the last kept slot is EOS: tokens 76.. (before EOS) drop */
        /* pieces are the normalized text cut up, so 4x the text's bytes bounds them */
        ignored = ux_detokenize(t, ids, UX_TOKEN_LIMIT - 1, n - 1,
                                4 * strlen(json_string_value(tv)) + 64);
    pthread_mutex_unlock(&s->tok_lock);
    free(ids);
    if (rc || (n > UX_TOKEN_LIMIT && !ignored)) {
        http_error(c, 500, NULL, "out of memory counting tokens");
        return;
    }
    http_json(c, 200,
              json_pack("{s:b, s:i, s:i, s:o}", "success", 1, "count", n, "limit", UX_TOKEN_LIMIT,
                        "ignored", ignored ? ignored : json_string("")));
}

/* The stored PNG -> RGB8 (malloc'd). */
static int ux_png_decode(const uint8_t *png, size_t len, uint8_t **rgb, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, png, len))
        return m2p_error(M2P_EFORMAT, "thumbnail: the stored image is not a PNG: %s", im.message);
    im.format = PNG_FORMAT_RGB;
    *rgb = malloc(PNG_IMAGE_SIZE(im));
    if (!*rgb) {
        png_image_free(&im);
        return m2p_error(M2P_ENOMEM, "thumbnail: out of memory");
    }
    if (!png_image_finish_read(&im, NULL, *rgb, 0, NULL)) {
        free(*rgb);
        *rgb = NULL;
        return m2p_error(M2P_EFORMAT, "thumbnail: the stored image cannot be read: %s", im.message);
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return 0;
}

/* Box filter: each output pixel is the mean of the source pixels it covers. */
static void ux_downscale(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    for (int y = 0; y < dh; y++) {
        int y0 = (int)((long)y * sh / dh), y1 = (int)((long)(y + 1) * sh / dh);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < dw; x++) {
            int x0 = (int)((long)x * sw / dw), x1 = (int)((long)(x + 1) * sw / dw);
            if (x1 <= x0)
                x1 = x0 + 1;
            unsigned sum[3] = {0, 0, 0}, n = 0;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++, n++)
                    for (int ch = 0; ch < 3; ch++)
                        sum[ch] += src[((size_t)yy * (size_t)sw + (size_t)xx) * 3 + (size_t)ch];
            for (int ch = 0; ch < 3; ch++)
                dst[((size_t)y * (size_t)dw + (size_t)x) * 3 + (size_t)ch] =
                    (uint8_t)((sum[ch] + n / 2) / n);
        }
    }
}

/* GET /api/images/{id}/thumb.png: at most 256 px on the long side, cacheable. */
void api_image_thumb(server *s, struct mg_connection *c, const route_args *a)
{
    uint8_t *png = NULL, *rgb = NULL, *small = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    int w = 0, h = 0;
    int rc = jobs_result_png(s->q, a->id, &png, &len);
    if (rc) {
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    rc = ux_png_decode(png, len, &rgb, &w, &h);
    if (!rc) {
        int long_side = w > h ? w : h;
        int dw = w, dh = h;
        if (long_side > UX_THUMB_SIDE) {
            dw = (int)((long)w * UX_THUMB_SIDE / long_side);
            dh = (int)((long)h * UX_THUMB_SIDE / long_side);
            dw = dw < 1 ? 1 : dw;
            dh = dh < 1 ? 1 : dh;
        }
        small = malloc((size_t)dw * (size_t)dh * 3);
        if (!small)
            rc = m2p_error(M2P_ENOMEM, "thumbnail: out of memory");
        else {
            ux_downscale(rgb, w, h, small, dw, dh);
            rc = m2p_png_encode(small, dw, dh, &out, &out_len);
        }
    }
    free(png);
    free(rgb);
    free(small);
    if (rc) {
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    /* The bytes under an id never change; the page may keep them (http_send says no-store). */
    mg_printf(c,
              "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %zu\r\n"
              "Cache-Control: private, max-age=86400\r\nX-Content-Type-Options: nosniff\r\n\r\n",
              out_len);
    mg_write(c, out, out_len);
    free(out);
}

/* ---- download names ---- */

typedef struct ux_mem {
    const uint8_t *p;
    size_t len, at;
} ux_mem;

static void ux_mem_read(png_structp png, png_bytep out, png_size_t n)
{
    ux_mem *m = png_get_io_ptr(png);
    if (n > m->len - m->at)
        png_error(png, "truncated");
    memcpy(out, m->p + m->at, n);
    m->at += n;
}

/* The text chunks of a stored PNG (written before the pixels, so only the header is read):
 * up to max key/value pairs, malloc'd (free with ux_texts_free). Returns the count, 0 when the
 * image has none or cannot be read. */
static int ux_png_texts(const uint8_t *data, size_t len, char **keys, char **values, int max)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return 0;
    }
    ux_mem m = {data, len, 0};
    volatile int n = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return n;
    }
    png_set_read_fn(png, &m, ux_mem_read);
    png_read_info(png, info);
    png_textp t = NULL;
    int nt = 0;
    png_get_text(png, info, &t, &nt);
    for (int i = 0; i < nt && n < max; i++) {
        keys[n] = strdup(t[i].key);
        values[n] = strdup(t[i].text ? t[i].text : "");
        if (!keys[n] || !values[n]) {
            free(keys[n]);
            free(values[n]);
            break;
        }
        n++;
    }
    png_destroy_read_struct(&png, &info, NULL);
    return n;
}

static void ux_texts_free(char **keys, char **values, int n)
{
    for (int i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
}

/* The name a stored poster downloads under: artist-song-seed.png from its text chunks (the
 * Title and the Seed of "parameters"); mus2pic-<id>.png for an image without them. */
void api_image_filename(const uint8_t *data, size_t len, int64_t id, char *out, size_t n)
{
    snprintf(out, n, "mus2pic-%lld.png", (long long)id);
    char *keys[16], *values[16];
    int nt = ux_png_texts(data, len, keys, values, 16);
    const char *title = NULL, *params = NULL;
    for (int i = 0; i < nt; i++) {
        if (!strcmp(keys[i], "Title"))
            title = values[i];
        else if (!strcmp(keys[i], "parameters"))
            params = values[i];
    }
    const char *last = params ? strrchr(params, '\n') : NULL;
    const char *seed = last ? strstr(last, "Seed: ") : NULL;
    if (seed)
        m2p_poster_filename(title, NULL, strtoull(seed + 6, NULL, 10), out, n);
    ux_texts_free(keys, values, nt);
}

/* GET /api/images/{id}/poster.png?layout=top|bottom|band&title=SONG&artist=ARTIST: the poster
 * with its text, drawn on request from the stored plain image (which stays as it is); the text
 * chunks of the plain image come along. */
void api_image_poster(server *s, struct mg_connection *c, const route_args *a)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *qs = ri->query_string ? ri->query_string : "";
    size_t qn = strlen(qs);
    char layout_s[16] = "", title[1024] = "", artist[1024] = "";
    mg_get_var(qs, qn, "layout", layout_s, sizeof layout_s);
    int tl = mg_get_var(qs, qn, "title", title, sizeof title);
    int al = mg_get_var(qs, qn, "artist", artist, sizeof artist);
    m2p_poster_text t = {.title = title, .artist = artist, .layout = m2p_poster_layout(layout_s)};
    if (t.layout < 0) {
        http_error(c, 400, "layout", "layout must be top, bottom or band");
        return;
    }
    if (tl < -1 || al < -1 || strlen(title) > 256 || strlen(artist) > 256) {
        http_error(c, 400, tl < -1 || strlen(title) > 256 ? "title" : "artist",
                   "title and artist take at most 256 bytes each");
        return;
    }
    if (!title[0] && !artist[0]) {
        http_error(c, 400, "title", "give a title (the song), an artist, or both");
        return;
    }
    uint8_t *png = NULL, *rgb = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    int w = 0, h = 0;
    int rc = jobs_result_png(s->q, a->id, &png, &len);
    if (rc) {
        http_error(c, http_status_of(rc), "id", "%s", m2p_errmsg());
        return;
    }
    char *keys[16], *values[16], name[200];
    int nt = ux_png_texts(png, len, keys, values, 16);
    api_image_filename(png, len, a->id, name, sizeof name);
    rc = ux_png_decode(png, len, &rgb, &w, &h);
    free(png);
    if (!rc)
        rc = m2p_poster_draw_text(rgb, w, h, &t, NULL);
    if (!rc)
        rc = m2p_png_encode_text(rgb, w, h, (const char *const *)keys, (const char *const *)values,
                                 nt, &out, &out_len);
    free(rgb);
    ux_texts_free(keys, values, nt);
    if (rc) {
        http_error(c, rc == M2P_EINVAL ? 400 : http_status_of(rc), NULL, "%s", m2p_errmsg());
        return;
    }
    char *dot = strrchr(name, '.');
    if (dot)
        *dot = 0;
    mg_printf(c,
              "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %zu\r\n"
              "Content-Disposition: inline; filename=\"%s-text.png\"\r\n"
              "Cache-Control: private, max-age=86400\r\nX-Content-Type-Options: nosniff\r\n\r\n",
              out_len, name);
    mg_write(c, out, out_len);
    free(out);
}

/* ---- models given at start that cannot be used ---- */

/* Each --model NAME=DIR (or MUS2PIC_MODEL) that does not resolve to a model folder: a warning
 * on stderr now, and {name, ref, message} in s->model_problems for /api/models (the page's
 * banner) and for the answer to a generation that names it. */
void ux_check_models(server *s, const char *const *names, const char *const *refs, int n)
{
    s->model_problems = json_array();
    for (int i = 0; i < n; i++) {
        char path[1024];
        if (m2p_model_resolve(refs[i], path, sizeof path) == 0)
            continue;
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", m2p_errmsg());
        M2P_LOGW("model %s cannot be used until this is fixed: %s", names[i], msg);
        json_array_append_new(s->model_problems, json_pack("{s:s, s:s, s:s}", "name", names[i],
                                                           "ref", refs[i], "message", msg));
    }
}

/* The problem of a configured model (its message), or NULL. */
const char *ux_model_problem(server *s, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(s->model_problems, i, p)
    {
        if (!strcmp(json_string_value(json_object_get(p, "name")), name))
            return json_string_value(json_object_get(p, "message"));
    }
    return NULL;
}

/* ---- serve -v ---- */

void ux_end_request(const struct mg_connection *c, int status)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri)
        M2P_LOGI("%s %s -> %d", ri->request_method ? ri->request_method : "?",
                 ri->local_uri ? ri->local_uri : "?", status);
}
