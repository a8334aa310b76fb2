/*
 * spectral.h — per-frame spectral descriptors (internal).
 */
#ifndef M2P_AUDIO_SPECTRAL_H
#define M2P_AUDIO_SPECTRAL_H

#include "audio/dsp.h"

#define SPECTRAL_NBANDS 7 /* librosa spectral_contrast: n_bands 6 -> 7 rows */

typedef struct spectral_ctx {
    int sr;
    double freq[DSP_NBINS];
    int band_lo[SPECTRAL_NBANDS], band_hi[SPECTRAL_NBANDS]; /* inclusive bin ranges */
    int band_q[SPECTRAL_NBANDS];                            /* bins averaged per side */
    int n_bands;
    float scratch[DSP_NBINS];
} spectral_ctx;

typedef struct spectral_frame_out {
    float centroid, bandwidth, rolloff;
    float peak[SPECTRAL_NBANDS], valley[SPECTRAL_NBANDS];
} spectral_frame_out;

void spectral_init(spectral_ctx *c, int sr);
/* S: magnitude spectrum (DSP_NBINS). */
void spectral_frame(spectral_ctx *c, const float *S, spectral_frame_out *o);
/* Zero-crossing rate of one frame (librosa.feature.zero_crossing_rate: threshold 1e-10,
 * zero counts as positive, crossings / frame length). */
float spectral_zcr(const float *x, int n);

#endif
