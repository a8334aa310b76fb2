/*
 * dsp.h — shared signal-processing pieces of the audio analysis (internal).
 *
 * The constants are librosa's defaults (n_fft 2048, hop 512, centred frames, periodic Hann
 * window) so that features keep librosa's scales. FFT plans (fftw3f) are made once per size
 * under a lock and reused by every thread with the new-array execute functions.
 */
#ifndef M2P_AUDIO_DSP_H
#define M2P_AUDIO_DSP_H

#include <stddef.h>
#include <stdint.h>

#define DSP_NFFT 2048
#define DSP_HOP 512
#define DSP_NBINS (DSP_NFFT / 2 + 1)
#define DSP_NMELS 128

/* A real-to-complex FFT of size n (power of two). in: n floats, out: (n/2+1)*2 floats
 * (re, im interleaved). Both must come from dsp_alloc. */
typedef struct dsp_fft dsp_fft;
dsp_fft *dsp_fft_get(int n); /* cached, never freed; NULL on failure */
void dsp_fft_run(const dsp_fft *f, float *in, float *out);
float *dsp_alloc(size_t n_floats); /* SIMD-aligned, zeroed; free with dsp_free */
void dsp_free(void *p);

/* Periodic Hann window of length n (scipy.signal.get_window('hann', n)). */
void dsp_hann(float *w, int n);

/* Sparse mel filterbank (librosa.filters.mel: Slaney scale, norm='slaney', fmin 0,
 * fmax sr/2). Filter m covers bins [lo[m], lo[m]+len[m]) with weights w + off[m]. */
typedef struct dsp_melbank {
    int n_mels;
    int lo[DSP_NMELS], len[DSP_NMELS], off[DSP_NMELS];
    float *w;
} dsp_melbank;
int dsp_melbank_init(dsp_melbank *mb, int sr);
void dsp_melbank_free(dsp_melbank *mb);
void dsp_melbank_apply(const dsp_melbank *mb, const float *power, float *mel);

/* Chroma filterbank (librosa.filters.chroma: n_chroma 12, ctroct 5, octwidth 2, L2 norm,
 * base C) for a tuning offset in fractions of a semitone; dense 12 x DSP_NBINS. */
int dsp_chromabank_init(float *wts, int sr, double tuning);

/* Helpers. */
double dsp_percentile(double *v, int n, double q); /* numpy linear interpolation; sorts v */
double dsp_median_f(float *v, int n);              /* partially reorders v */
/* Quickselect (Hoare): afterwards v[k] is the k-th smallest, v[0..k-1] <= v[k] <= v[k+1..]. */
void dsp_partition_k(float *v, int n, int k);
static inline double dsp_clip01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : (x == x ? x : 0);
}

#endif
