/*
 * test_png_meta.c — the text chunks a poster PNG carries, read back with libpng: "parameters"
 * in AUTOMATIC1111's infotext format (prompt line, "Negative prompt:" line, then "Key: value"
 * pairs; a value holding ',' ':' or a newline is JSON-quoted, as infotext_utils.quote does),
 * "Title" and "Software"; ASCII text in tEXt, other UTF-8 in iTXt; no chunks without meta.
 * Then `mus2pic generate` with the sd-tiny model writes them into its files too.
 */
#define _GNU_SOURCE
#include <png.h>
#include <stdlib.h>

#include "mus2pic.h"
#include "test.h"

typedef struct chunk {
    char key[80];
    char *text;
    int itxt;
} chunk;

/* Every text chunk of a PNG file in memory, through libpng's reader. */
static int read_chunks(const uint8_t *data, size_t len, chunk *out, int max)
{
    FILE *f = fmemopen((void *)data, len, "rb");
    if (!f)
        return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int n = -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_textp t = NULL;
    int nt = 0;
    png_get_text(png, info, &t, &nt);
    n = 0;
    for (int i = 0; i < nt && n < max; i++, n++) {
        snprintf(out[n].key, sizeof out[n].key, "%s", t[i].key);
        out[n].text = strdup(t[i].text);
        out[n].itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                      t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return n;
}

static const chunk *find(const chunk *c, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].key, key))
            return &c[i];
    return NULL;
}

static void free_chunks(chunk *c, int n)
{
    for (int i = 0; i < n; i++)
        free(c[i].text);
}

int main(void)
{
    const int w = 16, h = 8;
    uint8_t rgb[16 * 8 * 3];
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i * 7);

    /* ASCII: tEXt, the infotext exactly as the web UI writes it. */
    m2p_png_meta m = {.prompt = "neon city at night, rain",
                      .negative_prompt = "blurry, text",
                      .model = "lcm",
                      .artist = "Admiral Bob",
                      .song = "Choice",
                      .seed = 123,
                      .steps = 4,
                      .width = 512,
                      .height = 768,
                      .guidance = 8.5};
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK_INT(m2p_png_encode_meta(rgb, w, h, &m, &png, &len), 0);
    chunk c[8];
    int n = read_chunks(png, len, c, 8);
    CHECK_INT(n, 3);
    const chunk *p = find(c, n, "parameters");
    CHECK(p != NULL);
    if (p) {
        CHECK_STR(p->text, "neon city at night, rain\nNegative prompt: blurry, text\n"
                           "Steps: 4, Sampler: LCM, CFG scale: 8.5, Seed: 123, Size: 512x768, "
                           "Model: lcm, Song: Admiral Bob - Choice, Version: mus2pic " M2P_VERSION);
        CHECK(!p->itxt);
    }
    const chunk *t = find(c, n, "Title");
    CHECK(t && !strcmp(t->text, "Admiral Bob \xe2\x80\x93 Choice") && t->itxt);
    const chunk *sw = find(c, n, "Software");
    CHECK(sw && !strcmp(sw->text, "mus2pic " M2P_VERSION) && !sw->itxt);
    free_chunks(c, n);
    /* the pixels are untouched by the chunks */
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_memory(&im, png, len));
    im.format = PNG_FORMAT_RGB;
    uint8_t back[16 * 8 * 3];
    CHECK(png_image_finish_read(&im, NULL, back, 0, NULL));
    CHECK(memcmp(back, rgb, sizeof rgb) == 0);
    free(png);

    /* UTF-8 in iTXt; values with ',' or ':' quoted as JSON; no negative line when empty; the
     * song alone. */
    m2p_png_meta u = {.prompt = "東京の夜景, neon",
                      .model = "my, model: v2",
                      .song = "Señorita \"live\"",
                      .seed = 18446744073709551615ull,
                      .steps = 8};
    CHECK_INT(m2p_png_encode_meta(rgb, w, h, &u, &png, &len), 0);
    n = read_chunks(png, len, c, 8);
    CHECK_INT(n, 3);
    p = find(c, n, "parameters");
    CHECK(p && p->itxt);
    if (p)
        CHECK_STR(
            p->text,
            "東京の夜景, neon\nSteps: 8, Sampler: LCM, Seed: 18446744073709551615, "
            "Model: \"my, model: v2\", Song: Señorita \"live\", Version: mus2pic " M2P_VERSION);
    t = find(c, n, "Title");
    CHECK(t && !strcmp(t->text, "Señorita \"live\""));
    free_chunks(c, n);
    free(png);

    /* without meta: no text chunks */
    CHECK_INT(m2p_png_encode(rgb, w, h, &png, &len), 0);
    CHECK_INT(read_chunks(png, len, c, 8), 0);
    free(png);

    /* download names */
    char name[200];
    m2p_poster_filename("Beyoncé", "Halo (Live)", 7, name, sizeof name);
    CHECK_STR(name, "beyonce-halo-live-7.png");
    m2p_poster_filename(NULL, "", 5, name, sizeof name);
    CHECK_STR(name, "mus2pic-5.png");
    m2p_poster_filename("Admiral Bob \xe2\x80\x93 Choice", NULL, 123, name, sizeof name);
    CHECK_STR(name, "admiral-bob-choice-123.png");
    m2p_poster_filename("東京", "../../etc/passwd", 1, name, sizeof name);
    CHECK_STR(name, "etc-passwd-1.png");

    /* the CLI's files carry them too */
    char *dir = test_tmpdir("pngmeta");
    char cmd[4096], out[600];
    snprintf(out, sizeof out, "%s/poster.png", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' generate --model '%s' --prompt 'a red barn, at dusk' --negative-prompt 'fog'"
             " --width 64 --height 64 --steps 2 --seed 42 --out '%s' 2>/dev/null",
             test_env("M2P_BIN", "./mus2pic"), test_fixture("sd-tiny/model"), out);
    CHECK_INT(system(cmd), 0);
    size_t flen = 0;
    char *file = test_read_file(out, &flen);
    CHECK(file != NULL);
    if (file) {
        n = read_chunks((const uint8_t *)file, flen, c, 8);
        CHECK_INT(n, 2); /* no song: no Title */
        p = find(c, n, "parameters");
        CHECK(p != NULL);
        if (p)
            CHECK_STR(p->text, "a red barn, at dusk\nNegative prompt: fog\nSteps: 2, Sampler: LCM, "
                               "CFG scale: 8.5, Seed: 42, Size: 64x64, Model: model, Version: "
                               "mus2pic " M2P_VERSION);
        free_chunks(c, n > 0 ? n : 0);
        free(file);
    }
    test_rmtree(dir);
    free(dir);
    TEST_DONE();
}
