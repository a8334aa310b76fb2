/*
 * tempo.h — onset strength, tempo, beats and onsets (internal).
 */
#ifndef M2P_AUDIO_TEMPO_H
#define M2P_AUDIO_TEMPO_H

/* librosa.onset.onset_strength from a log-power mel spectrogram (T frames x n_mels, frame
 * major): lag 1, max_size 1, mean over bands, centred (shifted by 1 + n_fft/(2 hop)). */
void tempo_onset_env(const float *mel_db, int T, int n_mels, float *env);

/* Tempo in BPM from an onset envelope (fps frames a second); 0 when the envelope is flat.
 * Also returns the librosa estimate before octave checks in *prior_bpm (optional). */
double tempo_estimate(const float *env, int T, double fps, double *prior_bpm);

/* Ellis' dynamic-programming beat tracker (librosa.beat.beat_track, tightness 100, trim).
 * Writes beat frames into beats (capacity T); returns the count, or -1 on no memory. */
int tempo_beats(const float *env, int T, double fps, double bpm, int *beats);

/* librosa.onset.onset_detect's peak picking on the normalised envelope; returns the count. */
int tempo_onset_count(const float *env, int T);

#endif
