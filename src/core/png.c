/*
 * png.c — RGB8 images to PNG with libpng: in memory (m2p_png_encode) and to a file
 * (m2p_png_write) through a temporary file in the same folder that is renamed into place, so a
 * reader never sees a partial image, even when the process dies mid-write.
 * libpng reports errors by longjmp; every call that can fail runs under setjmp here.
 */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "mus2pic.h"

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom;
} membuf;

static void mem_write(png_structp png, png_bytep src, png_size_t n)
{
    membuf *b = png_get_io_ptr(png);
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->oom = 1;
            png_error(png, "out of memory");
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
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

int m2p_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!rgb || width <= 0 || height <= 0 || width > 1000000 || height > 1000000)
        return m2p_error(M2P_EINVAL, "png: bad image %dx%d", width, height);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, png_warn_silent);
    if (!png)
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    membuf buf = {0};
    png_bytep *rows = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return m2p_error(M2P_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(buf.data);
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
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = buf.data;
    *out_len = buf.len;
    return 0;
}

int m2p_png_write(const char *path, const uint8_t *rgb, int width, int height)
{
    uint8_t *data;
    size_t len;
    int rc = m2p_png_encode(rgb, width, height, &data, &len);
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
