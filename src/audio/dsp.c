/*
 * dsp.c — FFT plan cache (fftw3f), Hann window, mel and chroma filterbanks, percentiles.
 *
 * Filterbanks follow librosa.filters.mel (Slaney mel scale and area normalisation) and
 * librosa.filters.chroma (Ellis' chroma weights: Gaussian bumps in log frequency, L2 norm per
 * FFT bin, Gaussian octave weighting centred on octave 5 with width 2, rows starting at C).
 */
#include "audio/dsp.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

struct dsp_fft {
    int n;
    fftwf_plan plan;
};

static pthread_mutex_t fft_lock = PTHREAD_MUTEX_INITIALIZER;
static dsp_fft fft_cache[8];
static int fft_count;

dsp_fft *dsp_fft_get(int n)
{
    dsp_fft *f = NULL;
    pthread_mutex_lock(&fft_lock);
    for (int i = 0; i < fft_count; i++)
        if (fft_cache[i].n == n)
            f = &fft_cache[i];
    if (!f && fft_count < 8) {
        float *in = fftwf_alloc_real((size_t)n);
        fftwf_complex *out = fftwf_alloc_complex((size_t)n / 2 + 1);
        if (in && out) {
            /* Plans are made once under the lock; executing them is thread safe. */
            fftwf_plan p = fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE);
            if (p) {
                f = &fft_cache[fft_count++];
                f->n = n;
                f->plan = p;
            }
        }
        fftwf_free(in);
        fftwf_free(out);
    }
    pthread_mutex_unlock(&fft_lock);
    return f;
}

void dsp_fft_run(const dsp_fft *f, float *in, float *out)
{
    fftwf_execute_dft_r2c(f->plan, in, (fftwf_complex *)out);
}

float *dsp_alloc(size_t n)
{
    float *p = fftwf_alloc_real(n ? n : 1);
    if (p)
        memset(p, 0, (n ? n : 1) * sizeof *p);
    return p;
}

void dsp_free(void *p)
{
    if (p)
        fftwf_free(p);
}

void dsp_hann(float *w, int n)
{
    for (int i = 0; i < n; i++)
        w[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
}

/* Slaney's mel scale (librosa.hz_to_mel with htk=False). */
static double hz_to_mel(double f)
{
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = 15.0;
    const double logstep = log(6.4) / 27.0;
    return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}

static double mel_to_hz(double m)
{
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = 15.0;
    const double logstep = log(6.4) / 27.0;
    return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

int dsp_melbank_init(dsp_melbank *mb, int sr)
{
    memset(mb, 0, sizeof *mb);
    mb->n_mels = DSP_NMELS;
    double mel_f[DSP_NMELS + 2];
    double mmax = hz_to_mel(sr / 2.0);
    for (int i = 0; i < DSP_NMELS + 2; i++)
        mel_f[i] = mel_to_hz(mmax * i / (DSP_NMELS + 1));
    /* Triangles overlap only their neighbours, so all of them together cover each FFT bin at
     * most twice, plus a few bins of rounding per filter: far under this capacity. */
    const size_t cap = (size_t)DSP_NBINS * 4 + (size_t)DSP_NMELS * 8;
    float *tmp = malloc(sizeof(float) * DSP_NBINS);
    mb->w = malloc(sizeof(float) * cap);
    if (!tmp || !mb->w) {
        free(tmp);
        free(mb->w);
        mb->w = NULL;
        return -1;
    }
    int used = 0;
    for (int m = 0; m < DSP_NMELS; m++) {
        double fd0 = mel_f[m + 1] - mel_f[m], fd1 = mel_f[m + 2] - mel_f[m + 1];
        double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        int lo = -1, hi = -1;
        for (int k = 0; k < DSP_NBINS; k++) {
            double f = (double)k * sr / DSP_NFFT;
            double lower = (f - mel_f[m]) / fd0, upper = (mel_f[m + 2] - f) / fd1;
            double w = fmax(0.0, fmin(lower, upper)) * enorm;
            tmp[k] = (float)w;
            if (w > 0) {
                if (lo < 0)
                    lo = k;
                hi = k;
            }
        }
        if (lo < 0)
            lo = hi = 0, tmp[0] = 0;
        mb->lo[m] = lo;
        mb->len[m] = hi - lo + 1;
        mb->off[m] = used;
        M2P_ASSERT(lo >= 0 && hi >= lo && hi < DSP_NBINS);
        M2P_ASSERT((size_t)used + (size_t)(hi - lo + 1) <= cap);
        memcpy(mb->w + used, tmp + lo, sizeof(float) * (size_t)(hi - lo + 1));
        used += hi - lo + 1;
    }
    free(tmp);
    return 0;
}

void dsp_melbank_free(dsp_melbank *mb)
{
    free(mb->w);
    mb->w = NULL;
}

void dsp_melbank_apply(const dsp_melbank *mb, const float *power, float *mel)
{
    for (int m = 0; m < mb->n_mels; m++) {
        const float *w = mb->w + mb->off[m], *p = power + mb->lo[m];
        float s = 0;
        for (int k = 0; k < mb->len[m]; k++)
            s += w[k] * p[k];
        mel[m] = s;
    }
}

int dsp_chromabank_init(float *wts, int sr, double tuning)
{
    const int nc = 12;
    double *frq = malloc(sizeof(double) * DSP_NFFT);
    double *bw = malloc(sizeof(double) * DSP_NFFT);
    double *col = malloc(sizeof(double) * DSP_NFFT * 12);
    if (!frq || !bw || !col) {
        free(frq);
        free(bw);
        free(col);
        return -1;
    }
    double a440 = 440.0 * pow(2.0, tuning / nc);
    for (int k = 1; k < DSP_NFFT; k++)
        frq[k] = nc * log2(((double)k * sr / DSP_NFFT) / (a440 / 16.0));
    frq[0] = frq[1] - 1.5 * nc;
    for (int k = 0; k < DSP_NFFT - 1; k++)
        bw[k] = fmax(frq[k + 1] - frq[k], 1.0);
    bw[DSP_NFFT - 1] = 1.0;
    for (int k = 0; k < DSP_NBINS; k++) {
        double norm = 0;
        for (int c = 0; c < nc; c++) {
            double d = frq[k] - c;
            d = fmod(d + 6 + 10 * nc, nc);
            if (d < 0)
                d += nc;
            d -= 6;
            double w = exp(-0.5 * pow(2 * d / bw[k], 2));
            col[c * DSP_NFFT + k] = w;
            norm += w * w;
        }
        norm = sqrt(norm);
        double oct = exp(-0.5 * pow((frq[k] / nc - 5.0) / 2.0, 2));
        for (int c = 0; c < nc; c++) {
            double w = norm > 0 ? col[c * DSP_NFFT + k] / norm : 0;
            /* base_c: rows start at C, three semitones above A */
            wts[((c + nc - 3) % nc) * DSP_NBINS + k] = (float)(w * oct);
        }
    }
    free(frq);
    free(bw);
    free(col);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dsp_percentile(double *v, int n, double q)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double pos = q / 100.0 * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1)
        return v[n - 1];
    double fr = pos - i;
    return v[i] + (v[i + 1] - v[i]) * fr;
}

void dsp_partition_k(float *v, int n, int k)
{
    M2P_ASSERT(n > 0 && k >= 0 && k < n);
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
}

/* The k-th smallest. */
static float select_k(float *v, int n, int k)
{
    dsp_partition_k(v, n, k);
    return v[k];
}

double dsp_median_f(float *v, int n)
{
    if (n <= 0)
        return 0;
    if (n & 1)
        return select_k(v, n, n / 2);
    float a = select_k(v, n, n / 2 - 1);
    float b = select_k(v, n, n / 2);
    return 0.5 * ((double)a + b);
}
