/*
 * key.h — tuning, chroma and key/mode (internal).
 */
#ifndef M2P_AUDIO_KEY_H
#define M2P_AUDIO_KEY_H

#include <stddef.h>

#include "core/buf.h"

/* Tuning estimation (librosa.estimate_tuning on a power spectrogram): collect the spectral
 * peaks of some frames, then take the most common deviation from equal temperament. */
typedef struct key_peak {
    float freq, mag;
} key_peak;
typedef struct key_tuning {
    m2p_vec peaks; /* key_peak, at most KEY_MAX_PEAKS; a zeroed key_tuning is empty */
    int failed;
} key_tuning;
void key_tuning_add_frame(key_tuning *kt, const float *power, int nbins, int sr, int nfft);
/* Semitone fraction in [-0.5, 0.5); when memory ran out (here or collecting) kt->failed is set
 * and the answer is 0: the caller reports M2P_ENOMEM. */
double key_tuning_estimate(key_tuning *kt);
void key_tuning_free(key_tuning *kt);

typedef struct key_result {
    int tonic;              /* 0..11, C = 0: the best key (Albrecht-Shanahan) in mode major */
    int major;              /* the original's is_major_key (Krumhansl-Kessler), 1 major */
    double mode_confidence; /* the original's (best major r - best minor r + 1) / 2 (KK) */
    double strength;        /* A-S correlation of (tonic, major) */
    int key_tonic;          /* the best A-S key over both modes: tonic ... */
    int key_major;          /* ... and its mode (1 major) */
} key_result;

/* Key from a mean chroma vector (C..B); see key.c for the method and its evidence. Returns
 * -1 in tonic and key_tonic when the chroma is flat. */
key_result key_estimate(const double chroma[12]);

/* The best key of one profile set (KEY_PROF_*; COMBINED sums the three correlations) over
 * both modes: returns the score, tonic and mode in *tonic, *major. */
enum { KEY_PROF_KK = 0, KEY_PROF_TEMPERLEY = 1, KEY_PROF_AS = 2, KEY_PROF_COMBINED = 3 };
double key_best(const double chroma[12], int profiles, int *tonic, int *major);

/* Spectral-peak chroma of one magnitude frame (a log-frequency chroma): the local maxima of
 * the spectrum between KEY_PEAK_FMIN and KEY_PEAK_FMAX Hz above KEY_PEAK_REL of the frame's
 * largest bin, each at its parabolically interpolated frequency (less the tuning), add their
 * magnitude to their pitch class; the frame's vector, scaled to max 1, is added to acc.
 * Returns 1, or 0 for a frame with no peak. */
#define KEY_PEAK_FMIN 55.0
#define KEY_PEAK_FMAX 2000.0
#define KEY_PEAK_REL 0.02
int key_peak_chroma(const float *mag, int nbins, int sr, int nfft, double tuning, double acc[12]);

#endif
