/*
 * test_poster_text.c — m2p_poster_draw_text on dark, light and busy images in the three
 * layouts: pixels differ from the plain image only inside the box it reports, and enough of
 * them to be text; the box sits where the layout says; the text is light on dark and dark on
 * light; other scripts (Greek, Cyrillic, Arabic, Devanagari) are drawn with a font that has
 * them (fontconfig's fallbacks), not as empty boxes; same input, same pixels; bad input is an
 * error that leaves the image alone.
 */
#include <math.h>

#include "mus2pic.h"
#include "test.h"

#define W 256
#define H 384

static void fill(uint8_t *rgb, int kind)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = &rgb[((size_t)y * W + (size_t)x) * 3];
            if (kind == 0) /* dark */
                p[0] = 20, p[1] = 24, p[2] = 40;
            else if (kind == 1) /* light */
                p[0] = 235, p[1] = 230, p[2] = 220;
            else /* busy: stripes and a gradient */
                p[0] = (uint8_t)((x * 7) & 255), p[1] = (uint8_t)(((x / 8 + y / 8) & 1) * 255),
                p[2] = (uint8_t)(y * 255 / H);
        }
}

/* Changed pixels inside and outside box; the brightest and darkest changed luma. */
typedef struct diff {
    long inside, outside;
    int max_luma, min_luma;
} diff;

static diff compare(const uint8_t *a, const uint8_t *b, const int box[4])
{
    diff d = {0, 0, 0, 255};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = &a[((size_t)y * W + (size_t)x) * 3],
                          *q = &b[((size_t)y * W + (size_t)x) * 3];
            if (!memcmp(p, q, 3))
                continue;
            int in = x >= box[0] && x < box[0] + box[2] && y >= box[1] && y < box[1] + box[3];
            if (in)
                d.inside++;
            else
                d.outside++;
            int l = (q[0] * 299 + q[1] * 587 + q[2] * 114) / 1000;
            d.max_luma = l > d.max_luma ? l : d.max_luma;
            d.min_luma = l < d.min_luma ? l : d.min_luma;
        }
    return d;
}

int main(void)
{
    static uint8_t plain[W * H * 3], img[W * H * 3], again[W * H * 3];
    const char *names[] = {"top", "bottom", "band"};
    for (int kind = 0; kind < 3; kind++)
        for (int l = 0; l < 3; l++) {
            int layout = m2p_poster_layout(names[l]);
            CHECK(layout > 0);
            fill(plain, kind);
            memcpy(img, plain, sizeof img);
            m2p_poster_text t = {.title = "Bohemian Rhapsody", .artist = "Queen", .layout = layout};
            int box[4];
            CHECK_INT(m2p_poster_draw_text(img, W, H, &t, box), 0);
            diff d = compare(plain, img, box);
            if (d.outside || d.inside < 500)
                fprintf(stderr, "kind %d %s: box %d,%d %dx%d inside %ld outside %ld\n", kind,
                        names[l], box[0], box[1], box[2], box[3], d.inside, d.outside);
            CHECK_INT(d.outside, 0);
            CHECK(d.inside >= 500);
            CHECK(box[2] > 0 && box[3] > 0 && box[3] < H / 3);
            if (layout == M2P_TEXT_TOP)
                CHECK_INT(box[1], 0);
            if (layout == M2P_TEXT_BOTTOM)
                CHECK_INT(box[1] + box[3], H);
            if (layout == M2P_TEXT_BAND)
                CHECK(abs(box[1] + box[3] / 2 - H * 2 / 3) <= 2);
            /* light text on the dark image, dark text on the light one */
            if (kind == 0)
                CHECK(d.max_luma > 200);
            if (kind == 1)
                CHECK(d.min_luma < 60);
            /* the same call draws the same pixels */
            memcpy(again, plain, sizeof again);
            CHECK_INT(m2p_poster_draw_text(again, W, H, &t, NULL), 0);
            CHECK(memcmp(again, img, sizeof img) == 0);
        }

    /* other scripts: each drawn differently from a run of .notdef boxes of the same length */
    const char *scripts[] = {"Καλημέρα κόσμε", "Привет мир", "مرحبا بالعالم", "नमस्ते दुनिया"};
    for (int i = 0; i < 4; i++) {
        fill(plain, 0);
        memcpy(img, plain, sizeof img);
        m2p_poster_text t = {.title = scripts[i], .layout = M2P_TEXT_BAND};
        int box[4];
        CHECK_INT(m2p_poster_draw_text(img, W, H, &t, box), 0);
        diff d = compare(plain, img, box);
        CHECK_INT(d.outside, 0);
        CHECK(d.inside > 300);
        /* a private-use code point no font has: boxes (or nothing) */
        memcpy(again, plain, sizeof again);
        m2p_poster_text boxes = {.title = "\xef\x80\x80\xef\x80\x80\xef\x80\x80\xef\x80\x80",
                                 .layout = M2P_TEXT_BAND};
        CHECK_INT(m2p_poster_draw_text(again, W, H, &boxes, NULL), 0);
        CHECK(memcmp(again, img, sizeof img) != 0);
    }

    /* bad input: an error, the image untouched */
    fill(plain, 2);
    memcpy(img, plain, sizeof img);
    m2p_poster_text none = {.layout = M2P_TEXT_TOP};
    CHECK_INT(m2p_poster_draw_text(img, W, H, &none, NULL), M2P_EINVAL);
    m2p_poster_text bad = {.title = "x", .layout = 7};
    CHECK_INT(m2p_poster_draw_text(img, W, H, &bad, NULL), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "top, bottom or band") != NULL);
    CHECK_INT(m2p_poster_draw_text(img, 16, 16, &bad, NULL), M2P_EINVAL);
    CHECK(memcmp(img, plain, sizeof img) == 0);
    CHECK_INT(m2p_poster_layout("middle"), -1);
    m2p_poster_cleanup(); /* fontconfig's set-up is freed: the leak check stays clean */
    TEST_DONE();
}
