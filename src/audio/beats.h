/*
 * beats.h — bar level on top of the beat tracker (internal): meter, downbeats and a beat
 * confidence from the beat frames of tempo_beats and the log-power mel spectrogram.
 */
#ifndef M2P_AUDIO_BEATS_H
#define M2P_AUDIO_BEATS_H

/* Downbeats among nb beat frames (beats, increasing) of a log-power mel spectrogram (T frames x
 * nm bands between 0 and sr/2, tempo_mel_db layout): the meter (3 or 4 beats a bar) and phase
 * whose beats carry the most bar-level evidence, bass power and chord changes (see beats.c). Writes
 * the downbeats' indices into beats[] into down (capacity nb) and the meter into *per_bar; returns
 * the count, 0 when there are too few beats to tell, or -1 on no memory. */
int beat_downbeats(const float *mel_db, int T, int nm, int sr, const int *beats, int nb,
                   int *per_bar, int *down);

/* How clearly the onset envelope pulses on the tracked beats, 0..1: the envelope's mean peak
 * near the beats against its mean over the frames between them (see beats.c). 0 for no beats. */
double beat_confidence(const float *env, int T, const int *beats, int nb);

#endif
