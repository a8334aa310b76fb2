/*
 * spectral.c — spectral centroid, bandwidth, roll-off, contrast and zero-crossing rate of
 * one frame, as librosa.feature computes them (spectral_centroid, spectral_bandwidth p=2,
 * spectral_rolloff roll_percent 0.85, spectral_contrast fmin 200 / 6 bands / quantile 0.02
 * (Jiang et al. 2002, "Music type classification by spectral contrast feature"),
 * zero_crossing_rate). Contrast needs only the mean of the lowest and highest 2 % of each
 * band, found by quickselect instead of a full sort.
 */
#include "audio/spectral.h"

#include <math.h>
#include <string.h>

void spectral_init(spectral_ctx *c, int sr)
{
    memset(c, 0, sizeof *c);
    c->sr = sr;
    for (int k = 0; k < DSP_NBINS; k++)
        c->freq[k] = (double)k * sr / DSP_NFFT;
    double octa[SPECTRAL_NBANDS + 1];
    octa[0] = 0;
    for (int i = 1; i <= SPECTRAL_NBANDS; i++)
        octa[i] = 200.0 * pow(2.0, i - 1);
    int nb = 0;
    for (int k = 0; k < SPECTRAL_NBANDS; k++) {
        if (octa[k] >= 0.5 * sr)
            break; /* librosa refuses bands over Nyquist; we drop them */
        int first = -1, last = -1;
        for (int b = 0; b < DSP_NBINS; b++)
            if (c->freq[b] >= octa[k] && c->freq[b] <= octa[k + 1]) {
                if (first < 0)
                    first = b;
                last = b;
            }
        if (first < 0)
            break;
        int lo = k > 0 && first > 0 ? first - 1 : first;
        int hi = k == SPECTRAL_NBANDS - 1 ? DSP_NBINS - 1 : last;
        int count = hi - lo + 1;
        if (k < SPECTRAL_NBANDS - 1 && hi > lo)
            hi--;
        int q = (int)nearbyint(0.02 * count);
        c->band_lo[nb] = lo;
        c->band_hi[nb] = hi;
        c->band_q[nb] = q < 1 ? 1 : q;
        nb++;
    }
    c->n_bands = nb;
}

void spectral_frame(spectral_ctx *c, const float *S, spectral_frame_out *o)
{
    double sum = 0, wsum = 0;
    for (int k = 0; k < DSP_NBINS; k++) {
        sum += S[k];
        wsum += S[k] * c->freq[k];
    }
    double cen = sum > 0 ? wsum / sum : 0;
    double bw = 0;
    if (sum > 0) {
        for (int k = 0; k < DSP_NBINS; k++) {
            double d = c->freq[k] - cen;
            bw += S[k] * d * d;
        }
        bw = sqrt(bw / sum);
    }
    double thr = 0.85 * sum, acc = 0, roll = 0;
    for (int k = 0; k < DSP_NBINS; k++) {
        acc += S[k];
        if (acc >= thr) {
            roll = c->freq[k];
            break;
        }
    }
    o->centroid = (float)cen;
    o->bandwidth = (float)bw;
    o->rolloff = (float)roll;
    for (int b = 0; b < c->n_bands; b++) {
        int n = c->band_hi[b] - c->band_lo[b] + 1, q = c->band_q[b];
        if (q > n)
            q = n;
        float *v = c->scratch;
        memcpy(v, S + c->band_lo[b], sizeof(float) * (size_t)n);
        dsp_partition_k(v, n, q);
        double lo = 0;
        for (int i = 0; i < q; i++)
            lo += v[i];
        dsp_partition_k(v, n, n - q);
        double hi = 0;
        for (int i = n - q; i < n; i++)
            hi += v[i];
        o->valley[b] = (float)(lo / q);
        o->peak[b] = (float)(hi / q);
    }
}

float spectral_zcr(const float *x, int n)
{
    int count = 0;
    const float th = 1e-10f;
    int prev = !(fabsf(x[0]) <= th) && x[0] < 0;
    for (int i = 1; i < n; i++) {
        int neg = !(fabsf(x[i]) <= th) && x[i] < 0;
        count += neg != prev;
        prev = neg;
    }
    return (float)count / n;
}
