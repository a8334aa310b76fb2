/*
 * audio.h — the audio stage's entry points with a progress tick that can cancel: the
 * analysis (src/music/analyze.c) runs decoding and features through these so that a long
 * decode or a 3-hour file stops soon after its caller asks. m2p_audio_decode and
 * m2p_features_compute are these with no tick.
 */
#ifndef M2P_AUDIO_AUDIO_H
#define M2P_AUDIO_AUDIO_H

#include "mus2pic.h"

/* Called now and then from a long loop with the fraction done (0..1, -1 unknown); a nonzero
 * return stops the work, which then returns M2P_ECANCELED. */
typedef struct audio_tick {
    int (*fn)(double fraction, void *user_data);
    void *user_data;
} audio_tick;

/* Nonzero when tick asks to stop (sets the error message). */
int audio_tick_canceled(const audio_tick *tick, double fraction);

int audio_decode_ticked(const char *path, double offset_s, double duration_s, m2p_audio *out,
                        const audio_tick *tick);
/* The audio file in data[0..size) (any format FFmpeg probes) -> mono 22,050 Hz, at most
 * duration_s seconds (0 = up to the 30 min cap), through a custom AVIOContext: no file. */
int audio_decode_memory(const uint8_t *data, size_t size, double duration_s, m2p_audio *out);
int audio_features_ticked(const float *samples, int64_t n, int sample_rate, m2p_features *out,
                          const audio_tick *tick);

#endif
