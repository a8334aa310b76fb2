/*
 * png.c — RGB8 images to PNG with libpng: in memory (m2p_png_encode) and to a file
 * (m2p_png_write) through a temporary file in the same folder that is renamed into place, so a
 * reader never sees a partial image, even when the process dies mid-write.
 * The _meta variants add text chunks saying how the poster was made: "parameters" in the
 * infotext format of AUTOMATIC1111's stable-diffusion-webui (modules/infotext_utils.py:
 * prompt, "Negative prompt: ...", then "Key: value" pairs, a value with ',' ':' or a newline
 * quoted as JSON), which other image tools read back, plus "Title" and "Software".
 * libpng reports errors by longjmp; every call that can fail runs under setjmp here.
 */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "core/buf.h"
#include "core/error.h"
#include "mus2pic.h"

/* The encoded file, in a growable buffer (core/buf.c). */
typedef struct {
    m2p_buf b;
    int oom;
} membuf;

static void mem_write(png_structp png, png_bytep src, png_size_t n)
{
    membuf *b = png_get_io_ptr(png);
    if (b->oom)
        return;
    if (m2p_buf_append(&b->b, src, n)) {
        b->oom = 1;
        png_error(png, "out of memory");
    }
}

static void mem_flush(png_structp png)
{
    (void)png;
}

static void png_warn_silent(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* ---- the text chunks ---- */

/* Text built with a growable buffer; the first failure sticks (checked once at the end). */
typedef struct strbuf {
    m2p_buf b;
    int oom;
} strbuf;

static void sb_init(strbuf *b)
{
    m2p_buf_init(&b->b, 0);
    b->oom = m2p_buf_append(&b->b, "", 0) != 0;
}

static void sb_putn(strbuf *b, const char *s, size_t n)
{
    if (!b->oom && m2p_buf_append(&b->b, s, n))
        b->oom = 1;
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* infotext_utils.quote: plain unless the value holds ',', ':' or a newline; then JSON
 * (json.dumps with ensure_ascii=False: only '"', '\\' and control characters escaped). */
static void sb_value(strbuf *b, const char *v)
{
    if (!strpbrk(v, ",:\n")) {
        sb_puts(b, v);
        return;
    }
    sb_putn(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            sb_putn(b, esc, 2);
        } else if (*c == '\n') {
            sb_puts(b, "\\n");
        } else if (*c == '\t') {
            sb_puts(b, "\\t");
        } else if (*c == '\r') {
            sb_puts(b, "\\r");
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)c, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

static void sb_param(strbuf *b, const char *key, const char *value)
{
    if (!value || !*value)
        return;
    if (b->b.len && b->b.data[b->b.len - 1] != '\n')
        sb_puts(b, ", ");
    sb_puts(b, key);
    sb_puts(b, ": ");
    sb_value(b, value);
}

int m2p_png_parameters(const m2p_png_meta *m, char **out)
{
    *out = NULL;
    strbuf b;
    sb_init(&b);
    char num[64];
    sb_puts(&b, m->prompt ? m->prompt : "");
    if (m->negative_prompt && *m->negative_prompt) {
        sb_puts(&b, "\nNegative prompt: ");
        sb_puts(&b, m->negative_prompt);
    }
    sb_puts(&b, "\n");
    if (m->steps > 0) {
        snprintf(num, sizeof num, "%d", m->steps);
        sb_param(&b, "Steps", num);
    }
    sb_param(&b, "Sampler", m->sampler && *m->sampler ? m->sampler : "LCM");
    if (m->guidance > 0) {
        snprintf(num, sizeof num, "%g", m->guidance);
        sb_param(&b, "CFG scale", num);
    }
    snprintf(num, sizeof num, "%llu", (unsigned long long)m->seed);
    sb_param(&b, "Seed", num);
    if (m->width > 0 && m->height > 0) {
        snprintf(num, sizeof num, "%dx%d", m->width, m->height);
        sb_param(&b, "Size", num);
    }
    sb_param(&b, "Model", m->model);
    if ((m->artist && *m->artist) || (m->song && *m->song)) {
        strbuf song;
        sb_init(&song);
        sb_puts(&song, m->artist && *m->artist ? m->artist : "");
        if (m->artist && *m->artist && m->song && *m->song)
            sb_puts(&song, " - ");
        sb_puts(&song, m->song && *m->song ? m->song : "");
        if (song.oom)
            b.oom = 1;
        else
            sb_param(&b, "Song", song.b.data);
        m2p_buf_free(&song.b);
    }
    sb_param(&b, "Version", "mus2pic " M2P_VERSION);
    if (b.oom) {
        m2p_buf_free(&b.b);
        return m2p_error(M2P_ENOMEM, "png: out of memory writing the parameters");
    }
    *out = m2p_buf_detach(&b.b);
    return 0;
}

/* s -> at most max chars of [a-z0-9-] (NFKD, marks stripped, runs of others -> '-'). */
static size_t slug(const char *s, char *out, size_t max)
{
    size_t k = 0;
    if (!s || !*s)
        return 0;
    utf8proc_uint8_t *d = NULL;
    if (utf8proc_map((const utf8proc_uint8_t *)s, 0, &d,
                     UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE |
                         UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD) < 0)
        d = NULL;
    const unsigned char *p = d ? d : (const unsigned char *)s;
    int dash = 0;
    for (; *p && k < max; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (dash && k)
                out[k++] = '-';
            if (k < max)
                out[k++] = (char)c;
            dash = 0;
        } else {
            dash = 1;
        }
    }
    free(d);
    return k;
}

void m2p_poster_filename(const char *artist, const char *song, uint64_t seed, char *out, size_t len)
{
    char a[61], b[61];
    size_t na = slug(artist, a, 60), nb = slug(song, b, 60);
    a[na] = 0;
    b[nb] = 0;
    snprintf(out, len, "%s%s%s-%llu.png", na || nb ? a : "mus2pic", na && nb ? "-" : "", b,
             (unsigned long long)seed);
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static void text_chunk(png_text *t, const char *key, char *value)
{
    memset(t, 0, sizeof *t);
    t->key = (png_charp)key;
    t->text = value;
    t->text_length = strlen(value);
    /* tEXt is Latin-1; UTF-8 beyond ASCII goes in iTXt (uncompressed, no language). */
    t->compression = is_ascii(value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    if (t->compression == PNG_ITXT_COMPRESSION_NONE) {
        t->itxt_length = t->text_length;
        t->text_length = 0;
        t->lang = (png_charp) "";
        t->lang_key = (png_charp) "";
    }
}

int m2p_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len)
{
    return m2p_png_encode_meta(rgb, width, height, NULL, out, out_len);
}

int m2p_png_encode_meta(const uint8_t *rgb, int width, int height, const m2p_png_meta *meta,
                        uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!meta)
        return m2p_png_encode_text(rgb, width, height, NULL, NULL, 0, out, out_len);
    char *params = NULL, *title = NULL;
    if (m2p_png_parameters(meta, &params))
        return M2P_ENOMEM;
    const char *a = meta->artist && *meta->artist ? meta->artist : NULL;
    const char *sg = meta->song && *meta->song ? meta->song : NULL;
    if (a || sg) {
        size_t n = (a ? strlen(a) : 0) + (sg ? strlen(sg) : 0) + 8;
        if (!(title = malloc(n))) {
            free(params);
            return m2p_error(M2P_ENOMEM, "png: out of memory");
        }
        snprintf(title, n, "%s%s%s", a ? a : "", a && sg ? " \u2013 " : "", sg ? sg : "");
    }
    const char *keys[3] = {"parameters", title ? "Title" : "Software", "Software"};
    const char *values[3] = {params, title ? title : "mus2pic " M2P_VERSION,
                             "mus2pic " M2P_VERSION};
    int rc = m2p_png_encode_text(rgb, width, height, keys, values, title ? 3 : 2, out, out_len);
    free(params);
    free(title);
    return rc;
}

int m2p_png_encode_text(const uint8_t *rgb, int width, int height, const char *const *keys,
                        const char *const *values, int n_text, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!rgb || width <= 0 || height <= 0 || width > 1000000 || height > 1000000 || n_text < 0 ||
        n_text > 16)
        return m2p_error(M2P_EINVAL, "png: bad image %dx%d", width, height);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, png_warn_silent);
    if (!png)
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    membuf buf = {.oom = 0};
    m2p_buf_init(&buf.b, 0);
    /* volatile: set after setjmp and read after the longjmp (else it may read as NULL there and
     * leak; found by tests/inject/test_alloc_generate) */
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        m2p_buf_free(&buf.b);
        return m2p_error(buf.oom ? M2P_ENOMEM : M2P_EINTERNAL, "png: encoding failed");
    }
    rows = malloc((size_t)height * sizeof *rows);
    if (!rows)
        png_error(png, "out of memory");
    for (int y = 0; y < height; y++)
        rows[y] = (png_bytep)(rgb + (size_t)y * (size_t)width * 3);
    png_set_write_fn(png, &buf, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    if (n_text) {
        /* before the pixels, so a reader of the header alone finds them */
        png_text t[16];
        for (int i = 0; i < n_text; i++)
            text_chunk(&t[i], keys[i], (char *)values[i]);
        png_set_text(png, info, t, n_text);
    }
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out_len = buf.b.len;
    *out = (uint8_t *)m2p_buf_detach(&buf.b);
    if (!*out)
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    return 0;
}

int m2p_png_write(const char *path, const uint8_t *rgb, int width, int height)
{
    return m2p_png_write_meta(path, rgb, width, height, NULL);
}

int m2p_png_write_meta(const char *path, const uint8_t *rgb, int width, int height,
                       const m2p_png_meta *meta)
{
    uint8_t *data;
    size_t len;
    int rc = m2p_png_encode_meta(rgb, width, height, meta, &data, &len);
    if (rc)
        return rc;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 40);
    if (!tmp) {
        free(data);
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    }
    /* A unique name next to the target (same filesystem, so rename is atomic); 0666 & umask. */
    static _Atomic unsigned counter;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, plen + 40, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = m2p_error(M2P_EIO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        free(data);
        return rc;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = m2p_error(M2P_EIO, "%s: write failed: %s", path, strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 && !rc)
        rc = m2p_error(M2P_EIO, "%s: write failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = m2p_error(M2P_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    free(data);
    return rc;
}
