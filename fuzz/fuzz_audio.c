/*
 * fuzz_audio.c — libFuzzer target for audio decoding from memory: FFmpeg's probe, demuxers
 * and decoders through a custom AVIOContext over the input (audio_decode_memory in
 * src/audio/decode.c), our resampling to mono 22,050 Hz, then the features on whatever comes
 * out (src/audio/features.c), as an upload reaches them.
 *
 * Input: any bytes as an audio file (at most 256 KiB); the decode is bounded to 2 s so one
 * input stays cheap. Oracle: a success has finite samples at 22,050 Hz no longer than asked,
 * and features that are finite numbers with beats inside the audio.
 *
 * fuzz-flags: -detect_leaks=0 (FFmpeg's frame threads and buffer pools allocate across inputs,
 * so the per-input leak check would scan after nearly every input: 23 exec/s instead of ~160;
 * leaks are still reported at exit). FFmpeg is Debian's, not instrumented: coverage guides
 * through our code only.
 */
#include "audio/audio.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define FUZZ_AUDIO_S 2.0

static void check_features(const m2p_features *f, double seconds)
{
    const double v[] = {f->tempo, f->energy, f->brightness, f->spectral_rolloff,
                        f->spectral_bandwidth, f->zero_crossing_rate, f->chroma_std,
                        f->harmonicity, f->hp_ratio, f->onset_density, f->dynamic_range,
                        f->valence_scientific, f->arousal_scientific, f->duration_analyzed};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (!isfinite(v[i]))
            abort();
    if (f->key_tonic < -1 || f->key_tonic > 11 || f->n_beats < 0 || f->n_envelope < 0)
        abort();
    for (int i = 0; i < f->n_beats; i++)
        if (!(f->beats[i] >= 0 && f->beats[i] <= seconds + 0.1))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    m2p_audio a;
    if (audio_decode_memory(data, size, FUZZ_AUDIO_S, &a) != 0)
        return 0;
    if (a.sample_rate != M2P_SAMPLE_RATE || a.n < 0 ||
        a.n > (int64_t)(FUZZ_AUDIO_S * M2P_SAMPLE_RATE) + 1)
        abort();
    for (int64_t i = 0; i < a.n; i++)
        if (!isfinite(a.samples[i]))
            abort();
    if (a.n > 0) {
        m2p_features f;
        if (m2p_features_compute(a.samples, a.n, a.sample_rate, &f) == 0) {
            check_features(&f, (double)a.n / a.sample_rate);
            m2p_features_free(&f);
        }
    }
    m2p_audio_free(&a);
    return 0;
}
