/*
 * beats.c — meter, downbeats and beat confidence from the tracked beats (tempo_beats).
 *
 * Each beat gets a bar-level salience: the peak linear power of the bass bands (< 200 Hz) at its
 * onset (kick drums and bass notes fall on strong beats) plus the harmonic change into it, the L1
 * distance (dB) between the mean mel spectra (150 Hz - 5 kHz) of the beat interval it starts
 * and of the one before (chords change on bar lines: Goto 2001, J. New Music Research 30(2);
 * Davies & Plumbley 2006, "A spectral difference approach to downbeat extraction"). Each term
 * is divided by its mean over the beats. The meter (3 or 4 beats a bar) and the phase are the
 * pair whose beats stand out most from the others. The beat confidence compares the onset
 * envelope's peak near each beat with its mean between beats.
 */
#include "audio/beats.h"

#include <math.h>
#include <stdlib.h>

#include "audio/tempo.h"

/* Largest value of x[a..b] (clamped to [0, n)). */
static double beats_peak(const float *x, int n, int a, int b)
{
    double m = 0;
    for (int t = a < 0 ? 0 : a; t <= b && t < n; t++)
        if (x[t] > m)
            m = x[t];
    return m;
}

/* Mean mel spectrum over frames [a, b) of bands [m0, m1) into out (m1 - m0 values). */
static void beats_mean_spec(const float *mel, int nm, int a, int b, int m0, int m1, double *out)
{
    for (int m = m0; m < m1; m++)
        out[m - m0] = 0;
    if (b <= a)
        return;
    for (int t = a; t < b; t++)
        for (int m = m0; m < m1; m++)
            out[m - m0] += mel[(size_t)t * nm + m];
    for (int m = m0; m < m1; m++)
        out[m - m0] /= (b - a);
}

int beat_downbeats(const float *mel_db, int T, int nm, int sr, const int *beats, int nb,
                   int *per_bar, int *down)
{
    *per_bar = 0;
    if (nb < 8)
        return 0;
    int b200 = tempo_mel_band(200.0, nm, sr);
    int h0 = tempo_mel_band(150.0, nm, sr), h1 = tempo_mel_band(5000.0, nm, sr);
    if (b200 < 1 || h1 <= h0)
        return 0;
    int nh = h1 - h0;
    float *bass = malloc(sizeof(float) * (size_t)T);
    double *sal = malloc(sizeof(double) * (size_t)nb), *hc = malloc(sizeof(double) * (size_t)nb);
    double *prev = malloc(sizeof(double) * (size_t)nh), *cur = malloc(sizeof(double) * (size_t)nh);
    if (!bass || !sal || !hc || !prev || !cur) {
        free(bass);
        free(sal);
        free(hc);
        free(prev);
        free(cur);
        return -1;
    }
    /* bass power: mean linear power of the bands below 200 Hz (kick drums, bass notes) */
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int m = 0; m < b200; m++)
            s += pow(10.0, mel_db[(size_t)t * nm + m] / 10.0);
        bass[t] = (float)(s / b200);
    }
    double mb = 0, mh = 0;
    beats_mean_spec(mel_db, nm, beats[0], beats[1], h0, h1, prev);
    for (int i = 0; i < nb; i++) {
        sal[i] = beats_peak(bass, T, beats[i] - 3, beats[i] + 1);
        int end = i + 1 < nb ? beats[i + 1] : beats[i] + (beats[i] - beats[i - 1]);
        beats_mean_spec(mel_db, nm, beats[i], end > T ? T : end, h0, h1, cur);
        double d = 0;
        for (int m = 0; m < nh; m++) {
            d += fabs(cur[m] - prev[m]);
            prev[m] = cur[m];
        }
        hc[i] = i > 0 ? d / nh : 0;
        mb += sal[i];
        mh += hc[i];
    }
    mb /= nb;
    mh /= nb - 1;
    for (int i = 0; i < nb; i++)
        sal[i] = (mb > 0 ? sal[i] / mb : 0) + (mh > 0 ? hc[i] / mh : 0);
    /* the (meter, phase) whose beats stand out most from the rest */
    double best = -1e300;
    int bm = 4, bp = 0;
    for (int m = 3; m <= 4; m++)
        for (int p = 0; p < m; p++) {
            double on = 0, off = 0;
            int non = 0, noff = 0;
            for (int i = 1; i < nb; i++) {
                if (i % m == p) {
                    on += sal[i];
                    non++;
                } else {
                    off += sal[i];
                    noff++;
                }
            }
            double c = non && noff ? on / non - off / noff : 0;
            if (c > best) {
                best = c;
                bm = m;
                bp = p;
            }
        }
    int n = 0;
    for (int i = bp; i < nb; i += bm)
        down[n++] = i;
    *per_bar = bm;
    free(bass);
    free(sal);
    free(hc);
    free(prev);
    free(cur);
    return n;
}

double beat_confidence(const float *env, int T, const int *beats, int nb)
{
    if (nb < 2 || T < 4)
        return 0;
    double on = 0, off = 0;
    int noff = 0;
    for (int i = 0; i < nb; i++)
        on += beats_peak(env, T, beats[i] - 2, beats[i] + 2);
    on /= nb;
    for (int i = 0; i + 1 < nb; i++)
        for (int t = beats[i] + 3; t <= beats[i + 1] - 3; t++) {
            off += env[t];
            noff++;
        }
    if (!(on > 0))
        return 0;
    off = noff ? off / noff : 0;
    /* 0 when the beats are no stronger than the frames between them, 1 when those are silent */
    double c = 1.0 - off / on;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}
