/*
 * key.c — tuning, and key and mode from chroma.
 *
 * Tuning: librosa.estimate_tuning (piptrack peaks 150-4000 Hz over 0.1 of the frame maximum,
 * those at or above the median, a histogram of deviations in 0.01-semitone bins).
 * Key: the Pearson correlation of a mean chroma with a 12-value profile in every rotation
 * (Krumhansl 1990). is_major_key and mode_confidence are the original's (ORIGINAL.md:
 * Krumhansl-Kessler, (best major r - best minor r + 1) / 2), the scale the prompt rules read.
 * The reported key (features.c) is key_best with Temperley's profiles (2007, "Music and
 * Probability") on the spectral-peak chroma (key_peak_chroma, 55-2000 Hz); Albrecht-Shanahan
 * (2013, Music Perception 31) on chroma_stft keeps the original's mode. Profiles compared on
 * generated tunes, the rendered MIDI and brahms.ogg (G minor as arranged): BENCHMARKS.md.
 */
#include "audio/key.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Peaks collected for one tuning estimate: features.c feeds it a sample of frames, a few
 * hundred peaks each; a full 30-minute song of every frame stays under this. */
#define KEY_MAX_PEAKS ((size_t)1 << 26)

void key_tuning_add_frame(key_tuning *kt, const float *S, int nbins, int sr, int nfft)
{
    if (kt->failed)
        return;
    if (!kt->peaks.elem)
        m2p_vec_init(&kt->peaks, sizeof(key_peak), KEY_MAX_PEAKS);
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
        key_peak pk = {(float)((k + sh) * sr / nfft), (float)(S[k] + 0.5 * avg * sh)};
        if (m2p_vec_push(&kt->peaks, &pk)) {
            kt->failed = 1;
            return;
        }
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double key_tuning_estimate(key_tuning *kt)
{
    size_t n = kt->peaks.n;
    const key_peak *pk = kt->peaks.data;
    if (kt->failed || n == 0)
        return 0;
    float *m = malloc(n * sizeof *m);
    if (!m) {
        kt->failed = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        m[i] = pk[i].mag;
    qsort(m, n, sizeof *m, cmp_float);
    float med = n & 1 ? m[n / 2] : 0.5f * (m[n / 2 - 1] + m[n / 2]);
    free(m);
    int counts[100] = {0};
    for (size_t i = 0; i < n; i++) {
        if (pk[i].mag < med || !(pk[i].freq > 0))
            continue;
        double r = fmod(12.0 * log2(pk[i].freq / 27.5), 1.0);
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
    m2p_vec_free(&kt->peaks);
    memset(kt, 0, sizeof *kt);
}

/* Krumhansl-Kessler probe-tone profiles (as in the original app). */
static const double KK_MAJOR[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09,
                                    2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
static const double KK_MINOR[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53,
                                    2.54, 4.75, 3.98, 2.69, 3.34, 3.17};
/* Albrecht & Shanahan (2013), Table 1. */
static const double AS_MAJOR[12] = {0.238, 0.006, 0.111, 0.006, 0.137, 0.094,
                                    0.016, 0.214, 0.009, 0.080, 0.008, 0.081};
static const double AS_MINOR[12] = {0.220, 0.006, 0.104, 0.123, 0.019, 0.103,
                                    0.012, 0.214, 0.062, 0.022, 0.061, 0.052};

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

/* The best rotation of one profile: returns r, tonic in *k. */
static double best_rotation(const double *chroma, const double *prof, int *k)
{
    double best = -2;
    *k = 0;
    for (int i = 0; i < 12; i++) {
        double r = pearson(chroma, prof, i);
        if (r > best) {
            best = r;
            *k = i;
        }
    }
    return best;
}

key_result key_estimate(const double chroma[12])
{
    key_result r = {.tonic = -1,
                    .major = 1,
                    .mode_confidence = 0.5,
                    .strength = 0,
                    .key_tonic = -1,
                    .key_major = 1};
    double mn = chroma[0], mx = chroma[0];
    for (int i = 1; i < 12; i++) {
        mn = fmin(mn, chroma[i]);
        mx = fmax(mx, chroma[i]);
    }
    if (!(mx - mn > 1e-9 * (mx > 0 ? mx : 1)))
        return r;
    /* The original's mode and confidence (Krumhansl-Kessler). */
    int tmaj, tmin;
    double bmaj = best_rotation(chroma, KK_MAJOR, &tmaj);
    double bmin = best_rotation(chroma, KK_MINOR, &tmin);
    r.major = bmaj >= bmin;
    r.mode_confidence = (bmaj - bmin + 1) / 2;
    /* The tonic (Albrecht-Shanahan), in the original's mode and free. */
    int amaj, amin;
    double rmaj = best_rotation(chroma, AS_MAJOR, &amaj);
    double rmin = best_rotation(chroma, AS_MINOR, &amin);
    r.tonic = r.major ? amaj : amin;
    r.strength = r.major ? rmaj : rmin;
    r.key_major = rmaj >= rmin;
    r.key_tonic = r.key_major ? amaj : amin;
    return r;
}

/* Temperley (2007, "Music and Probability"), Kostka-Payne corpus profiles. */
static const double TP_MAJOR[12] = {0.748, 0.060, 0.488, 0.082, 0.670, 0.460,
                                    0.096, 0.715, 0.104, 0.366, 0.057, 0.400};
static const double TP_MINOR[12] = {0.712, 0.084, 0.474, 0.618, 0.049, 0.460,
                                    0.105, 0.747, 0.404, 0.067, 0.133, 0.330};

double key_best(const double chroma[12], int profiles, int *tonic, int *major)
{
    const double *maj[3] = {KK_MAJOR, TP_MAJOR, AS_MAJOR}, *min[3] = {KK_MINOR, TP_MINOR, AS_MINOR};
    double best = -INFINITY;
    *tonic = -1;
    *major = 1;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 12; k++) {
            double s = 0;
            for (int p = 0; p < 3; p++)
                if (profiles == KEY_PROF_COMBINED || profiles == p)
                    s += pearson(chroma, m ? min[p] : maj[p], k);
            if (s > best) {
                best = s;
                *tonic = k;
                *major = !m;
            }
        }
    return best;
}

int key_peak_chroma(const float *mag, int nbins, int sr, int nfft, double tuning, double acc[12])
{
    double c[12] = {0}, fmx = 0, cmx = 0;
    for (int k = 1; k + 1 < nbins; k++) /* not fmax(): a libm call per bin */
        fmx = mag[k] > fmx ? mag[k] : fmx;
    if (!(fmx > 0))
        return 0;
    for (int k = 2; k + 1 < nbins; k++) {
        double f = (double)k * sr / nfft;
        if (f < KEY_PEAK_FMIN)
            continue;
        if (f > KEY_PEAK_FMAX)
            break;
        double a = mag[k - 1], b = mag[k], d = mag[k + 1];
        if (b < KEY_PEAK_REL * fmx || b < a || b < d)
            continue;
        double den = a - 2 * b + d, off = den < 0 ? 0.5 * (a - d) / den : 0;
        double midi = 69.0 + 12.0 * log2((k + off) * sr / nfft / 440.0) - tuning;
        c[((int)lround(midi) % 12 + 12) % 12] += b;
    }
    for (int i = 0; i < 12; i++)
        cmx = fmax(cmx, c[i]);
    if (!(cmx > 0))
        return 0;
    for (int i = 0; i < 12; i++)
        acc[i] += c[i] / cmx;
    return 1;
}
