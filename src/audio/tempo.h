/*
 * tempo.h — onset strength, tempo, beats and onsets (internal).
 */
#ifndef M2P_AUDIO_TEMPO_H
#define M2P_AUDIO_TEMPO_H

#include <stdint.h>

/* librosa.onset.onset_strength from a log-power mel spectrogram (T frames x n_mels, frame
 * major): lag 1, max_size 1, mean over bands, centred (shifted by 1 + n_fft/(2 hop)). */
void tempo_onset_env(const float *mel_db, int T, int n_mels, float *env);

/* The log-power mel spectrogram librosa.onset.onset_strength works on: centred STFT (n_fft
 * 2048, hop 512, Hann, zero padding), 128-band Slaney mel power, power_to_db(top_db 80), into
 * mel (1 + n / 512 frames x 128, frame major). Returns 0, or -1 on no memory. */
int tempo_mel_db(const float *x, int64_t n, int sr, float *mel);

/* librosa.onset.onset_strength(y=x, sr=sr) from samples: centred STFT (n_fft 2048, hop 512,
 * Hann, zero padding), 128-band Slaney mel power, power_to_db(top_db 80), tempo_onset_env.
 * env gets 1 + n / 512 values. Returns 0, or -1 on no memory. */
int tempo_onset_strength(const float *x, int64_t n, int sr, float *env);

/* What the tempo estimators return when an allocation failed (a tempo is never negative). */
#define TEMPO_NOMEM (-1.0)

/* librosa.feature.tempo(onset_envelope=env, sr, hop_length=512) exactly: mean autocorrelation
 * tempogram over 8 s windows, argmax of log1p(1e6 tg) + log prior on integer lags. The prior is
 * librosa's default log-normal around 120 BPM, or scipy.stats.uniform(30, 300) when
 * uniform_prior. When frames is not NULL it gets the per-frame estimates (aggregate=None), T
 * values. Returns the aggregate estimate in BPM, 0 for a flat envelope, TEMPO_NOMEM when memory
 * ran out. */
double tempo_librosa(const float *env, int T, double fps, int uniform_prior, double *frames);

/* Tempo in BPM from an onset envelope (fps frames a second): librosa's pick, a 2:3 check, an
 * octave check that doubles into 204 BPM at most, and a reading above 208 BPM halved; 0 when
 * the envelope is flat, TEMPO_NOMEM when memory ran out.
 * Also returns the librosa estimate before octave checks in *prior_bpm (optional). */
double tempo_estimate(const float *env, int T, double fps, double *prior_bpm);

/* Tempo in BPM from a log-power mel spectrogram (tempo_mel_db layout: T frames x nm bands
 * between 0 and sr/2): tempo_estimate on the drum-band envelope, the onset strength of the
 * bands below 200 Hz plus that of 200 Hz - 3 kHz, each divided by its standard deviation
 * (hi-hats left out), which env (T values) receives; then halved when the harmonic-change
 * novelty of the mel bands repeats at 6 or 8 estimated beats rather than 3 or 4 (chords change
 * on bar lines; see harmonic_check in tempo.c), raised by 3/2 when the music repeats more
 * strongly at the bars of a beat 3/2 as fast than at its own bars (bar_grid_check) or else when
 * the bass band repeats clearly more strongly at 2/3 of the period (bass_metrical_check),
 * lowered to 2/3 when a 6/8 bar shows at 3 estimated beats (compound_check) or, when no such
 * move was made, to 3/4 when the music repeats more strongly at the 4-beat bars of a beat 3/4
 * as fast than at its own 2- and 3-beat bars (dotted_grid_check), and doubled when the
 * music's onsets come 3.3 or more times per estimated beat in a duple division
 * (density_check). 0 when flat, TEMPO_NOMEM on no memory. */
double tempo_estimate_mel(const float *mel_db, int T, int nm, int sr, double fps, float *env);

/* Ellis' dynamic-programming beat tracker (librosa.beat.beat_track, tightness 100, trim).
 * Writes beat frames into beats (capacity T); returns the count, or -1 on no memory. */
int tempo_beats(const float *env, int T, double fps, double bpm, int *beats);

/* librosa.onset.onset_detect's peak picking on the normalised envelope; returns the count. */
int tempo_onset_count(const float *env, int T);

/* aubio_tempo (method "default", "specflux", ...; window 1024, hop 256) over the samples: its
 * final BPM (and confidence), 0 when it found none. */
double tempo_aubio(const float *x, int64_t n, int sr, const char *method, double *confidence);

/* The mean autocorrelation tempogram's peak (parabolic, sub-frame) within +-range of bpm;
 * bpm itself when there is no local maximum there. */
double tempo_refine(const float *env, int T, double fps, double bpm, double range);

/* Index of the first of nm mel bands (Slaney, 0 .. sr/2) whose centre is at or above f Hz. */
int tempo_mel_band(double f, int nm, int sr);

#endif
