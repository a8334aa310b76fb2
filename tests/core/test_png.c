/*
 * test_png.c — PNG encoding round trip through libpng's reader (pixels identical), the atomic
 * file write (no temporary files left, unwritable folder is an error and leaves nothing), and
 * bad arguments.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <png.h>

#include "mus2pic.h"
#include "test.h"

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    const int w = 37, h = 23;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i * 31 + i / 7);
    uint8_t *png;
    size_t len;
    CHECK_INT(m2p_png_encode(rgb, w, h, &png, &len), 0);
    CHECK(len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);

    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_memory(&img, png, len));
    CHECK_INT(img.width, w);
    CHECK_INT(img.height, h);
    img.format = PNG_FORMAT_RGB;
    uint8_t *back = malloc(PNG_IMAGE_SIZE(img));
    CHECK(png_image_finish_read(&img, NULL, back, 0, NULL));
    CHECK(memcmp(back, rgb, (size_t)w * h * 3) == 0);
    free(back);
    free(png);

    char *dir = test_tmpdir("png");
    char path[512];
    snprintf(path, sizeof path, "%s/out.png", dir);
    CHECK_INT(m2p_png_write(path, rgb, w, h), 0);
    CHECK_INT(count_files(dir), 1);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f) {
        unsigned char sig[8];
        CHECK_INT(fread(sig, 1, 8, f), 8);
        CHECK(memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
        fclose(f);
    }
    /* overwrite in place */
    CHECK_INT(m2p_png_write(path, rgb, w, h), 0);
    CHECK_INT(count_files(dir), 1);

    snprintf(path, sizeof path, "%s/no-such-dir/out.png", dir);
    CHECK_INT(m2p_png_write(path, rgb, w, h), M2P_EIO);
    CHECK(strstr(m2p_errmsg(), "out.png") != NULL);
    CHECK_INT(count_files(dir), 1);

    CHECK_INT(m2p_png_encode(rgb, 0, h, &png, &len), M2P_EINVAL);
    CHECK_INT(m2p_png_encode(NULL, w, h, &png, &len), M2P_EINVAL);

    test_rmtree(dir);
    free(dir);
    free(rgb);
    TEST_DONE();
}
