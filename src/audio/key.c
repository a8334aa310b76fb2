/*
 * key.c — tuning estimation and key/mode from chroma.
 *
 * Tuning follows librosa.estimate_tuning (piptrack peaks with parabolic interpolation between
 * 150 and 4000 Hz above 0.1 of the frame maximum, keep peaks at or above the median
 * magnitude, histogram of deviations in 0.01-semitone bins). The key is the best Pearson
 * correlation of the mean chroma with a key profile in all 12 rotations (Krumhansl 1990,
 * "Cognitive Foundations of Musical Pitch"; the profiles and mode_confidence formula are the
 * original app's, see ORIGINAL.md).
 */
#include "audio/key.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void key_tuning_add_frame(key_tuning *kt, const float *S, int nbins, int sr, int nfft)
{
    if (kt->failed)
        return;
    float ref = 0;
    for (int k = 0; k < nbins; k++)
        if (S[k] > ref)
            ref = S[k];
    ref *= 0.1f;
    const double fmin = 150.0, fmax = 4000.0;
    for (int k = 1; k + 1 < nbins; k++) {
        double f = (double)k * sr / nfft;
        if (f < fmin || f >= fmax)
            continue;
        float x = S[k] > ref ? S[k] : 0;
        float xl = S[k - 1] > ref ? S[k - 1] : 0, xr = S[k + 1] > ref ? S[k + 1] : 0;
        if (!(x > xl && x >= xr))
            continue;
        double avg = 0.5 * ((double)S[k + 1] - S[k - 1]);
        double sh = 2.0 * S[k] - S[k + 1] - S[k - 1];
        sh = fabs(sh) < 1e-30 ? avg / (sh + 1) : avg / sh;
        if (kt->n == kt->cap) {
            size_t cap = kt->cap ? kt->cap * 2 : 4096;
            float *nf = realloc(kt->freq, cap * sizeof *nf);
            if (nf)
                kt->freq = nf;
            float *nm = realloc(kt->mag, cap * sizeof *nm);
            if (nm)
                kt->mag = nm;
            if (!nf || !nm) {
                kt->failed = 1;
                return;
            }
            kt->cap = cap;
        }
        kt->freq[kt->n] = (float)((k + sh) * sr / nfft);
        kt->mag[kt->n] = (float)(S[k] + 0.5 * avg * sh);
        kt->n++;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double key_tuning_estimate(key_tuning *kt)
{
    if (kt->failed || kt->n == 0)
        return 0;
    float *m = malloc(kt->n * sizeof *m);
    if (!m)
        return 0;
    memcpy(m, kt->mag, kt->n * sizeof *m);
    qsort(m, kt->n, sizeof *m, cmp_float);
    float med = kt->n & 1 ? m[kt->n / 2] : 0.5f * (m[kt->n / 2 - 1] + m[kt->n / 2]);
    free(m);
    int counts[100] = {0};
    for (size_t i = 0; i < kt->n; i++) {
        if (kt->mag[i] < med || !(kt->freq[i] > 0))
            continue;
        double r = fmod(12.0 * log2(kt->freq[i] / 27.5), 1.0);
        if (r < 0)
            r += 1;
        if (r >= 0.5)
            r -= 1.0;
        int b = (int)floor((r + 0.5) / 0.01);
        if (b < 0)
            b = 0;
        if (b > 99)
            b = 99;
        counts[b]++;
    }
    int best = 0;
    for (int b = 1; b < 100; b++)
        if (counts[b] > counts[best])
            best = b;
    return -0.5 + 0.01 * best;
}

void key_tuning_free(key_tuning *kt)
{
    free(kt->freq);
    free(kt->mag);
    memset(kt, 0, sizeof *kt);
}

/* Krumhansl-Kessler probe-tone profiles (as in the original app). */
static const double KK_MAJOR[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09,
                                    2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
static const double KK_MINOR[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53,
                                    2.54, 4.75, 3.98, 2.69, 3.34, 3.17};

static double pearson(const double *x, const double *prof, int rot)
{
    double mx = 0, my = 0;
    for (int i = 0; i < 12; i++) {
        mx += x[i];
        my += prof[i];
    }
    mx /= 12;
    my /= 12;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < 12; i++) {
        double a = x[i] - mx, b = prof[(i - rot + 12) % 12] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

key_result key_estimate(const double chroma[12])
{
    key_result r = {.tonic = -1, .major = 1, .mode_confidence = 0.5, .strength = 0};
    double mn = chroma[0], mx = chroma[0];
    for (int i = 1; i < 12; i++) {
        mn = fmin(mn, chroma[i]);
        mx = fmax(mx, chroma[i]);
    }
    if (!(mx - mn > 1e-9 * (mx > 0 ? mx : 1)))
        return r;
    double bmaj = -2, bmin = -2;
    int tmaj = 0, tmin = 0;
    for (int k = 0; k < 12; k++) {
        double a = pearson(chroma, KK_MAJOR, k), b = pearson(chroma, KK_MINOR, k);
        if (a > bmaj) {
            bmaj = a;
            tmaj = k;
        }
        if (b > bmin) {
            bmin = b;
            tmin = k;
        }
    }
    r.major = bmaj >= bmin;
    r.tonic = r.major ? tmaj : tmin;
    r.strength = r.major ? bmaj : bmin;
    r.mode_confidence = (bmaj - bmin + 1) / 2;
    return r;
}
