/*
 * hpss.c — harmonic/percussive separation by median filtering, streamed frame by frame.
 *
 * Follows librosa.decompose.hpss (Fitzgerald 2010, "Harmonic/percussive separation using
 * median filtering"): kernel 31, harmonic = median over time, percussive = median over
 * frequency (scipy.ndimage.median_filter, mode 'reflect'), soft masks with power 2 and
 * margin 1. Instead of inverting the STFT we keep only what the features need: the energy
 * of the masked spectrum per frame (by Parseval proportional to the frame's signal energy).
 * Medians use sorted windows that slide by one element (O(shift) per step; at the reflected
 * edges too), and only the last 32 frames are held, so memory does not grow with the song.
 */
#include "audio/hpss.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define K 31
#define HALF 15
#define RING 32
#define KP 32 /* a window's stride: K sorted values and +inf */

struct hpss {
    int nb;
    int64_t T, pushed, done;
    double *eh, *ep;
    float *ring; /* RING x nb magnitudes, frame t at slot t % RING */
    /* 1 + nb x KP + 1 floats: nb sorted time windows of KP (each +inf at K) from [1], and
     * one float either side for replace_sorted's loads */
    float *tsort_mem;
    float *harm;                /* nb: time medians of the current centre frame */
    float fwin_mem[1 + KP + 1]; /* the sorted frequency window from [1], the same way */
    int64_t tsort_center;       /* centre of the time windows, -2 when not valid */
};

hpss *hpss_new(int nb, int64_t n_frames, double *eh, double *ep)
{
    hpss *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->nb = nb;
    h->T = n_frames;
    h->eh = eh;
    h->ep = ep;
    h->ring = malloc(sizeof(float) * RING * (size_t)nb);
    h->tsort_mem = malloc(sizeof(float) * (KP * (size_t)nb + 2));
    if (h->tsort_mem) /* read by replace_sorted's vector loads, never used */
        h->tsort_mem[0] = h->tsort_mem[KP * (size_t)nb + 1] = 0;
    h->harm = malloc(sizeof(float) * (size_t)nb);
    h->tsort_center = -2;
    if (!h->ring || !h->tsort_mem || !h->harm) {
        hpss_free(h);
        return NULL;
    }
    return h;
}

void hpss_free(hpss *h)
{
    if (!h)
        return;
    free(h->ring);
    free(h->tsort_mem);
    free(h->harm);
    free(h);
}

/* scipy.ndimage 'reflect' (d c b a | a b c d | d c b a) into [0, n). */
static int64_t reflect(int64_t i, int64_t n)
{
    if (n == 1)
        return 0;
    for (;;) {
        if (i < 0)
            i = -i - 1;
        else if (i >= n)
            i = 2 * n - 1 - i;
        else
            return i;
    }
}

static void sort_small(float *v, int n)
{
    for (int i = 1; i < n; i++) {
        float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

/* Replace one occurrence of old by nw in the sorted window w[K] (+inf at w[K]; w[-1] and
 * w[KP] readable), keeping it sorted. Branch-free, so that the compiler can vectorise it: the
 * ranks of old and nw come from counts, then each slot takes its own value, its neighbour's
 * (the values between the two ranks move by one towards the hole) or nw. */
static void replace_sorted(float *w, float old, float nw)
{
    int i = 0, j = 0;
    for (int p = 0; p < KP; p++) {
        i += w[p] < old; /* old's slot: the values are finite, so the count is its index */
        j += w[p] < nw;
    }
    int up = nw > old; /* nw lands at j - 1 (old, below it, leaves), else at j */
    int at = up ? j - 1 : j;
    int lo = up ? i : at, hi = up ? at : i;
    const float *next = up ? w + 1 : w - 1; /* where a moving value comes from */
    float out[KP];
    for (int p = 0; p < KP; p++) {
        float keep = w[p], moved = next[p];
        out[p] = p < lo || p > hi ? keep : p == at ? nw : moved;
    }
    memcpy(w, out, sizeof out);
}

static const float *frame_at(const hpss *h, int64_t t)
{
    return h->ring + (t % RING) * h->nb;
}

static void process_center(hpss *h, int64_t c)
{
    const int nb = h->nb;
    const int64_t T = h->T;
    float *tsort = h->tsort_mem + 1, *fwin = h->fwin_mem + 1;
    /* Harmonic: median over time for every bin. The window of centre c holds the frames
     * reflect(c - HALF .. c + HALF); from c - 1 to c one frame leaves and one enters, at the
     * edges too (reflected indices), so only a segment's first centre sorts. */
    if (h->tsort_center == c - 1) {
        const float *old = frame_at(h, reflect(c - HALF - 1, T));
        const float *nw = frame_at(h, reflect(c + HALF, T));
        for (int k = 0; k < nb; k++)
            replace_sorted(tsort + (size_t)k * KP, old[k], nw[k]);
    } else {
        for (int j = 0; j < K; j++) {
            const float *f = frame_at(h, reflect(c - HALF + j, T));
            for (int k = 0; k < nb; k++)
                tsort[(size_t)k * KP + j] = f[k];
        }
        for (int k = 0; k < nb; k++) {
            sort_small(tsort + (size_t)k * KP, K);
            tsort[(size_t)k * KP + K] = INFINITY;
        }
    }
    h->tsort_center = c;
    for (int k = 0; k < nb; k++)
        h->harm[k] = tsort[(size_t)k * KP + HALF];

    /* Percussive: median over frequency within this frame, then the soft masks. */
    const float *s = frame_at(h, c);
    double eh = 0, ep = 0;
    for (int k = 0; k < nb; k++) {
        if (k > 0) { /* the same sliding, over bins */
            replace_sorted(fwin, s[reflect(k - HALF - 1, nb)], s[reflect(k + HALF, nb)]);
        } else {
            for (int j = 0; j < K; j++)
                fwin[j] = s[reflect(k - HALF + j, nb)];
            sort_small(fwin, K);
            fwin[K] = INFINITY;
        }
        double H = h->harm[k], P = fwin[HALF], x = s[k];
        double h2 = H * H, p2 = P * P, d = h2 + p2;
        if (d < (double)FLT_MIN * FLT_MIN)
            continue;       /* librosa.util.softmask: both references ~0 -> mask 0 */
        double inv = x / d; /* masked values: x * h2 / d and x * p2 / d */
        eh += (h2 * inv) * (h2 * inv);
        ep += (p2 * inv) * (p2 * inv);
    }
    h->eh[c] = eh;
    h->ep[c] = ep;
}

void hpss_push(hpss *h, const float *mag)
{
    memcpy(h->ring + (h->pushed % RING) * h->nb, mag, sizeof(float) * (size_t)h->nb);
    h->pushed++;
    /* Centre c needs frames up to c + HALF. */
    while (h->done < h->T && h->done + HALF < h->pushed)
        process_center(h, h->done++);
}

void hpss_finish(hpss *h)
{
    while (h->done < h->pushed)
        process_center(h, h->done++);
}
