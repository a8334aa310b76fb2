/*
 * text.c — the artist and the song set on a poster (m2p_poster_draw_text): fonts found through
 * fontconfig (a bold sans first, then whichever installed font covers each character, so any
 * script the system has fonts for is drawn: DejaVu, Noto), shaped with HarfBuzz run by run
 * (script and direction guessed per run), rasterised with FreeType into a coverage mask.
 * Legibility comes from the pixels under the text: a scrim (a band, or a fade at the top or
 * bottom) is blended in until the text colour reaches a contrast ratio of 4.5:1 against the
 * mean luminance there (WCAG 2.x relative luminance and contrast ratio), plus a thin outline.
 * Only pixels inside the returned box change; the caller keeps the plain image.
 */
#include <fontconfig/fontconfig.h>
#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "mus2pic.h"

#define POSTER_MAX_FONTS 8      /* fallback fonts per line */
#define POSTER_MIN_CONTRAST 4.5 /* WCAG 2.x AA for normal text */

/* fontconfig and FreeType are not thread safe around their global set-up: one lock for both. */
static pthread_mutex_t poster_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct line_mask {
    uint8_t *a; /* coverage, w x h */
    int w, h;
    int baseline;
} line_mask;

/* UTF-8 -> code points (malloc'd); invalid bytes are skipped. */
static int utf8_decode(const char *s, uint32_t **out, int *n)
{
    size_t len = strlen(s);
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp)
        return m2p_error(M2P_ENOMEM, "poster text: out of memory");
    int k = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        int extra = c < 0x80             ? 0
                    : (c & 0xE0) == 0xC0 ? 1
                    : (c & 0xF0) == 0xE0 ? 2
                    : (c & 0xF8) == 0xF0 ? 3
                                         : -1;
        if (extra < 0 || i + (size_t)extra >= len) {
            i++;
            continue;
        }
        uint32_t v = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
        int ok = 1;
        for (int j = 1; j <= extra; j++) {
            unsigned char d = (unsigned char)s[i + (size_t)j];
            if ((d & 0xC0) != 0x80) {
                ok = 0;
                break;
            }
            v = (v << 6) | (d & 0x3F);
        }
        i += ok ? (size_t)extra + 1 : 1;
        if (ok && v >= 0x20 && v != 0x7F)
            cp[k++] = v;
    }
    *out = cp;
    *n = k;
    return 0;
}

/* The fonts for these code points: the preferred bold sans first, then fontconfig's sorted
 * fallbacks that cover a character the earlier ones do not. */
typedef struct font_set {
    FT_Face face[POSTER_MAX_FONTS];
    FcCharSet *cover[POSTER_MAX_FONTS];
    int n;
} font_set;

static void fonts_free(font_set *fs)
{
    for (int i = 0; i < fs->n; i++) {
        FT_Done_Face(fs->face[i]);
        FcCharSetDestroy(fs->cover[i]);
    }
    fs->n = 0;
}

static int fonts_find(FT_Library ft, const uint32_t *cp, int n, font_set *fs)
{
    memset(fs, 0, sizeof *fs);
    FcPattern *pat = FcNameParse((const FcChar8 *)"sans-serif:bold");
    if (!pat)
        return m2p_error(M2P_ENOMEM, "poster text: out of memory");
    FcConfigSubstitute(NULL, pat, FcMatchPattern);
    FcDefaultSubstitute(pat);
    FcResult res;
    FcFontSet *sorted = FcFontSort(NULL, pat, FcTrue, NULL, &res);
    FcPatternDestroy(pat);
    if (!sorted || sorted->nfont == 0) {
        if (sorted)
            FcFontSetDestroy(sorted);
        return m2p_error(M2P_ENOTFOUND, "poster text: fontconfig finds no font; install "
                                        "fonts-dejavu-core (and fonts-noto-core for more scripts)");
    }
    int missing = 1;
    for (int f = 0; f < sorted->nfont && fs->n < POSTER_MAX_FONTS && missing; f++) {
        FcCharSet *cs = NULL;
        FcChar8 *file = NULL;
        int index = 0;
        if (FcPatternGetCharSet(sorted->fonts[f], FC_CHARSET, 0, &cs) != FcResultMatch ||
            FcPatternGetString(sorted->fonts[f], FC_FILE, 0, &file) != FcResultMatch)
            continue;
        FcPatternGetInteger(sorted->fonts[f], FC_INDEX, 0, &index);
        /* useful when it covers a character no earlier font does (the first always is) */
        int useful = fs->n == 0;
        missing = 0;
        for (int i = 0; i < n; i++) {
            int covered = 0;
            for (int k = 0; k < fs->n && !covered; k++)
                covered = FcCharSetHasChar(fs->cover[k], cp[i]);
            if (!covered) {
                if (FcCharSetHasChar(cs, cp[i]))
                    useful = 1;
                else
                    missing = 1;
            }
        }
        if (!useful)
            continue;
        FT_Face face;
        if (FT_New_Face(ft, (const char *)file, index, &face))
            continue;
        fs->face[fs->n] = face;
        fs->cover[fs->n] = FcCharSetCopy(cs);
        fs->n++;
    }
    FcFontSetDestroy(sorted);
    if (!fs->n)
        return m2p_error(M2P_ENOTFOUND, "poster text: no installed font could be opened");
    return 0;
}

/* Which font draws code point c: the first that has it (else the first, which draws a box). */
static int font_of(const font_set *fs, uint32_t c)
{
    for (int k = 0; k < fs->n; k++)
        if (FcCharSetHasChar(fs->cover[k], c))
            return k;
    return 0;
}

/* One line at px pixels: shaped run by run (a run = consecutive characters of one font) and
 * drawn into a coverage mask. With mask NULL only the advance width is measured. */
static int line_render(const font_set *fs, const uint32_t *cp, int n, int px, int *width,
                       line_mask *mask)
{
    for (int k = 0; k < fs->n; k++)
        if (FT_Set_Pixel_Sizes(fs->face[k], 0, (FT_UInt)px))
            return m2p_error(M2P_EINTERNAL, "poster text: the font cannot be scaled to %d px", px);
    int ascent = 0, descent = 0;
    for (int k = 0; k < fs->n; k++) {
        int a = (int)(fs->face[k]->size->metrics.ascender >> 6);
        int d = (int)(-fs->face[k]->size->metrics.descender >> 6);
        ascent = a > ascent ? a : ascent;
        descent = d > descent ? d : descent;
    }
    if (mask) {
        mask->h = ascent + descent + 2;
        mask->baseline = ascent + 1;
        mask->a = calloc((size_t)mask->w * (size_t)mask->h, 1);
        if (!mask->a)
            return m2p_error(M2P_ENOMEM, "poster text: out of memory");
    }
    long pen = 0; /* 26.6 */
    int rc = 0;
    for (int i = 0; i < n && !rc;) {
        int k = font_of(fs, cp[i]), j = i + 1;
        while (j < n && font_of(fs, cp[j]) == k)
            j++;
        hb_font_t *hf = hb_ft_font_create_referenced(fs->face[k]);
        hb_buffer_t *buf = hb_buffer_create();
        if (!hf || !hb_buffer_allocation_successful(buf)) {
            hb_font_destroy(hf);
            hb_buffer_destroy(buf);
            return m2p_error(M2P_ENOMEM, "poster text: out of memory");
        }
        hb_buffer_add_utf32(buf, cp, n, (unsigned)i, j - i);
        hb_buffer_guess_segment_properties(buf); /* script and direction of this run */
        hb_shape(hf, buf, NULL, 0);
        unsigned ng = 0;
        hb_glyph_info_t *gi = hb_buffer_get_glyph_infos(buf, &ng);
        hb_glyph_position_t *gp = hb_buffer_get_glyph_positions(buf, NULL);
        for (unsigned g = 0; g < ng; g++) {
            if (mask && !FT_Load_Glyph(fs->face[k], gi[g].codepoint, FT_LOAD_DEFAULT) &&
                !FT_Render_Glyph(fs->face[k]->glyph, FT_RENDER_MODE_NORMAL)) {
                FT_GlyphSlot sl = fs->face[k]->glyph;
                int x0 = (int)((pen + gp[g].x_offset) >> 6) + sl->bitmap_left + 1;
                int y0 = mask->baseline - (int)(gp[g].y_offset >> 6) - sl->bitmap_top;
                for (unsigned r = 0; r < sl->bitmap.rows; r++) {
                    int y = y0 + (int)r;
                    if (y < 0 || y >= mask->h)
                        continue;
                    const uint8_t *src = sl->bitmap.buffer + (long)r * sl->bitmap.pitch;
                    for (unsigned c = 0; c < sl->bitmap.width; c++) {
                        int x = x0 + (int)c;
                        if (x < 0 || x >= mask->w)
                            continue;
                        uint8_t *d = &mask->a[(size_t)y * (size_t)mask->w + (size_t)x];
                        if (src[c] > *d)
                            *d = src[c];
                    }
                }
            }
            pen += gp[g].x_advance;
        }
        hb_buffer_destroy(buf);
        hb_font_destroy(hf);
        i = j;
    }
    *width = (int)(pen >> 6) + 2;
    return rc;
}

/* WCAG 2.x relative luminance of an sRGB colour (0..255 channels). */
static double rel_lum(double r, double g, double b)
{
    double c[3] = {r / 255, g / 255, b / 255};
    for (int i = 0; i < 3; i++)
        c[i] = c[i] <= 0.04045 ? c[i] / 12.92 : pow((c[i] + 0.055) / 1.055, 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

static double contrast(double l1, double l2)
{
    return l1 > l2 ? (l1 + 0.05) / (l2 + 0.05) : (l2 + 0.05) / (l1 + 0.05);
}

static int poster_draw(uint8_t *rgb, int width, int height, const m2p_poster_text *t, int box[4])
{
    if (box)
        box[0] = box[1] = box[2] = box[3] = 0;
    if (!rgb || width < 32 || height < 32 || !t)
        return m2p_error(M2P_EINVAL, "poster text: an image of at least 32x32 is needed");
    if (t->layout < M2P_TEXT_TOP || t->layout > M2P_TEXT_BAND)
        return m2p_error(M2P_EINVAL, "poster text: layout must be top, bottom or band");
    const char *lines[2] = {t->title && *t->title ? t->title : NULL,
                            t->artist && *t->artist ? t->artist : NULL};
    if (!lines[0] && !lines[1])
        return m2p_error(M2P_EINVAL, "poster text: give a title or an artist");
    if ((lines[0] && strlen(lines[0]) > 512) || (lines[1] && strlen(lines[1]) > 512))
        return m2p_error(M2P_EINVAL, "poster text: a title or artist is longer than 512 bytes");

    uint32_t *cp[2] = {NULL, NULL};
    int ncp[2] = {0, 0}, rc = 0;
    for (int l = 0; l < 2 && !rc; l++)
        if (lines[l])
            rc = utf8_decode(lines[l], &cp[l], &ncp[l]);
    line_mask m[2];
    memset(m, 0, sizeof m);
    pthread_mutex_lock(&poster_lock);
    FT_Library ft = NULL;
    font_set fs[2];
    memset(fs, 0, sizeof fs);
    if (!rc && !FcInit())
        rc = m2p_error(M2P_EINTERNAL, "poster text: fontconfig cannot start");
    if (!rc && FT_Init_FreeType(&ft))
        rc = m2p_error(M2P_EINTERNAL, "poster text: FreeType cannot start");
    /* Sizes: the title about 1/12 of the short side, the artist 60 % of it; both shrink until
     * the line fits 90 % of the width. */
    int shortside = width < height ? width : height;
    int size[2] = {shortside / 12, shortside * 6 / 100};
    int lw[2] = {0, 0};
    for (int l = 0; l < 2 && !rc; l++) {
        if (!cp[l] || !ncp[l])
            continue;
        if ((rc = fonts_find(ft, cp[l], ncp[l], &fs[l])))
            break;
        size[l] = size[l] < 8 ? 8 : size[l];
        for (;;) {
            if ((rc = line_render(&fs[l], cp[l], ncp[l], size[l], &lw[l], NULL)))
                break;
            if (lw[l] <= width * 9 / 10 || size[l] <= 8)
                break;
            int next = size[l] * (width * 9 / 10) / lw[l];
            size[l] = next < size[l] ? (next < 8 ? 8 : next) : size[l] - 1;
        }
        m[l].w = lw[l] < width ? lw[l] : width;
        if (!rc)
            rc = line_render(&fs[l], cp[l], ncp[l], size[l], &lw[l], &m[l]);
    }
    for (int l = 0; l < 2; l++)
        fonts_free(&fs[l]);
    if (ft)
        FT_Done_FreeType(ft);
    pthread_mutex_unlock(&poster_lock);
    free(cp[0]);
    free(cp[1]);
    if (rc) {
        free(m[0].a);
        free(m[1].a);
        return rc;
    }

    /* The box: both lines stacked and centred, with a margin; where the layout puts it. */
    int gap = m[0].a && m[1].a ? shortside / 80 : 0;
    int text_h = (m[0].a ? m[0].h : 0) + gap + (m[1].a ? m[1].h : 0);
    int pad = shortside / 24;
    int bw = width, bh = text_h + 2 * pad;
    if (bh > height)
        bh = height;
    int by = t->layout == M2P_TEXT_TOP      ? 0
             : t->layout == M2P_TEXT_BOTTOM ? height - bh
                                            : (height * 2) / 3 - bh / 2;
    if (by < 0)
        by = 0;
    if (by + bh > height)
        by = height - bh;

    /* The pixels under it: their mean luminance picks the text colour (white on dark, near
     * black on light) and how much scrim is needed for a 4.5:1 contrast. */
    double sum[3] = {0, 0, 0};
    for (int y = by; y < by + bh; y++)
        for (int x = 0; x < bw; x++)
            for (int c = 0; c < 3; c++)
                sum[c] += rgb[((size_t)y * (size_t)width + (size_t)x) * 3 + (size_t)c];
    double npx = (double)bw * bh;
    double mean[3] = {sum[0] / npx, sum[1] / npx, sum[2] / npx};
    double bg = rel_lum(mean[0], mean[1], mean[2]);
    int light_text = contrast(1.0, bg) >= contrast(rel_lum(20, 20, 24), bg);
    double text_rgb[3] = {light_text ? 255 : 20, light_text ? 255 : 20, light_text ? 255 : 24};
    double scrim_rgb[3] = {light_text ? 0 : 255, light_text ? 0 : 255, light_text ? 0 : 255};
    double tl = rel_lum(text_rgb[0], text_rgb[1], text_rgb[2]);
    double alpha = 0;
    while (alpha < 0.85) {
        double mixed[3];
        for (int c = 0; c < 3; c++)
            mixed[c] = mean[c] * (1 - alpha) + scrim_rgb[c] * alpha;
        if (contrast(tl, rel_lum(mixed[0], mixed[1], mixed[2])) >= POSTER_MIN_CONTRAST)
            break;
        alpha += 0.05;
    }
    /* a band is always visible as a band; a top/bottom fade only as strong as needed */
    if (t->layout == M2P_TEXT_BAND && alpha < 0.35)
        alpha = 0.35;
    for (int y = by; y < by + bh; y++) {
        double a = alpha;
        if (t->layout != M2P_TEXT_BAND) { /* fade out towards the image, full at the edge */
            double d =
                t->layout == M2P_TEXT_TOP ? (double)(y - by) / bh : (double)(by + bh - 1 - y) / bh;
            a = alpha * (d < 0.6 ? 1.0 : (1.0 - d) / 0.4);
        }
        for (int x = 0; x < bw; x++) {
            uint8_t *px = &rgb[((size_t)y * (size_t)width + (size_t)x) * 3];
            for (int c = 0; c < 3; c++)
                px[c] = (uint8_t)lrint(px[c] * (1 - a) + scrim_rgb[c] * a);
        }
    }
    /* the lines: a 1-px outline in the scrim colour (the mask dilated), then the text */
    int y = by + pad;
    for (int l = 0; l < 2; l++) {
        if (!m[l].a)
            continue;
        int x0 = (width - m[l].w) / 2;
        for (int pass = 0; pass < 2; pass++) {
            for (int yy = 0; yy < m[l].h; yy++) {
                int py = y + yy;
                if (py < by || py >= by + bh)
                    continue;
                for (int xx = 0; xx < m[l].w; xx++) {
                    int px = x0 + xx;
                    if (px < 0 || px >= width)
                        continue;
                    int cov = m[l].a[(size_t)yy * (size_t)m[l].w + (size_t)xx];
                    if (pass == 0) { /* outline: the strongest neighbour */
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++) {
                                int ny = yy + dy, nx = xx + dx;
                                if (ny >= 0 && ny < m[l].h && nx >= 0 && nx < m[l].w) {
                                    int v = m[l].a[(size_t)ny * (size_t)m[l].w + (size_t)nx];
                                    cov = v > cov ? v : cov;
                                }
                            }
                        cov = cov * 6 / 10;
                    }
                    if (!cov)
                        continue;
                    const double *col = pass == 0 ? scrim_rgb : text_rgb;
                    uint8_t *p = &rgb[((size_t)py * (size_t)width + (size_t)px) * 3];
                    double a = cov / 255.0;
                    for (int c = 0; c < 3; c++)
                        p[c] = (uint8_t)lrint(p[c] * (1 - a) + col[c] * a);
                }
            }
        }
        y += m[l].h + gap;
        free(m[l].a);
    }
    if (box) {
        box[0] = 0;
        box[1] = by;
        box[2] = bw;
        box[3] = bh;
    }
    return 0;
}

/* fontconfig, FreeType and HarfBuzz want more stack than a web server's worker thread may have
 * (CivetWeb's workers: about 100 KB; a frame that jumps the guard page lands in another
 * thread's memory), so the drawing runs on a thread of its own with a stack of 2 MiB. */
typedef struct draw_call {
    uint8_t *rgb;
    int width, height;
    const m2p_poster_text *t;
    int *box;
    int rc;
    char msg[512];
} draw_call;

static void *draw_main(void *arg)
{
    draw_call *d = arg;
    d->rc = poster_draw(d->rgb, d->width, d->height, d->t, d->box);
    if (d->rc)
        snprintf(d->msg, sizeof d->msg, "%s", m2p_errmsg());
    return NULL;
}

int m2p_poster_draw_text(uint8_t *rgb, int width, int height, const m2p_poster_text *t, int box[4])
{
    draw_call d = {rgb, width, height, t, box, 0, ""};
    pthread_attr_t at;
    pthread_t th;
    if (pthread_attr_init(&at))
        return m2p_error(M2P_ENOMEM, "poster text: cannot start a thread");
    pthread_attr_setstacksize(&at, 2u << 20);
    int err = pthread_create(&th, &at, draw_main, &d);
    pthread_attr_destroy(&at);
    if (err)
        return m2p_error(M2P_ENOMEM, "poster text: cannot start a thread");
    pthread_join(th, NULL);
    if (d.rc)
        return m2p_error(d.rc, "%s", d.msg);
    return 0;
}

int m2p_poster_layout(const char *name)
{
    if (!name)
        return -1;
    if (!strcmp(name, "top"))
        return M2P_TEXT_TOP;
    if (!strcmp(name, "bottom"))
        return M2P_TEXT_BOTTOM;
    if (!strcmp(name, "band"))
        return M2P_TEXT_BAND;
    return -1;
}

void m2p_poster_cleanup(void)
{
    pthread_mutex_lock(&poster_lock);
    FcFini();
    pthread_mutex_unlock(&poster_lock);
}
