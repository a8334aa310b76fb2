/*
 * test_audio_badinput.c — bad audio gets a clear error or undetermined features, never a
 * crash: non-audio bytes, an empty file, truncated files, silence, a 1-second clip, a float
 * WAV holding NaN and infinity, and a 3-hour file analysed with a 60 s window (must be quick
 * and small).
 */
#include "mus2pic.h"
#include "test.h"

#include <libavutil/mem.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

static char *tmp;

static const char *path_of(const char *name)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 1024, "%s/%s", tmp, name);
    return b;
}

static int sh(const char *fmt, const char *a)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, a, a);
    return system(cmd);
}

static void expect_decode_error(const char *name, const char *what)
{
    m2p_audio a;
    int rc = m2p_audio_decode(path_of(name), 0, 60, &a);
    if (rc != M2P_EDECODE)
        fprintf(stderr, "%s: rc %d (%s)\n", what, rc, m2p_errmsg());
    CHECK_INT(rc, M2P_EDECODE);
    if (rc == 0)
        m2p_audio_free(&a);
    CHECK(strlen(m2p_errmsg()) > 10);
    CHECK(a.samples == NULL && a.n == 0);
    fprintf(stderr, "%s -> %s\n", what, m2p_errmsg());
}

static void check_no_nan(const m2p_features *f);

/* A 16-bit mono WAV header claiming rate Hz, with 0.1 s of a tone at 8 kHz worth of samples. */
static void write_wav_rate(const char *name, uint32_t rate)
{
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    const uint32_t n = 800;
    test_wav_header(f, 1, 1, 16, rate, n);
    for (uint32_t i = 0; i < n; i++) {
        int16_t x = (int16_t)(8000.0f * sinf(2.0f * 3.14159265f * (float)i / 20.0f));
        fwrite(&x, 2, 1, f);
    }
    fclose(f);
}

/* A header claiming a sample rate no audio has: refused with M2P_EDECODE before the resampler
 * is built (a 1 GHz claim cost seconds of CPU and ~1 GB in swr_init; found by fuzz_audio),
 * while the edges of the accepted range still decode. */
static void check_absurd_rate(void)
{
    write_wav_rate("ghz.wav", 1048584000u);
    expect_decode_error("ghz.wav", "1 GHz sample rate");
    CHECK(strstr(m2p_errmsg(), "1048584000 Hz") != NULL);
    write_wav_rate("slow.wav", 999);
    expect_decode_error("slow.wav", "999 Hz sample rate");
    const uint32_t ok[] = {8000, 768000};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "ok%u.wav", ok[i]);
        write_wav_rate(name, ok[i]);
        m2p_audio a;
        int rc = m2p_audio_decode(path_of(name), 0, 0, &a);
        if (rc)
            fprintf(stderr, "%u Hz: %s\n", ok[i], m2p_errmsg());
        CHECK_INT(rc, 0);
        if (rc == 0) {
            CHECK(a.n > 0);
            m2p_audio_free(&a);
        }
    }
}

/* A header claiming 1000 channels is refused before the decoder sizes its frames from it, and
 * no single FFmpeg allocation may pass 128 MB (decode.c: a fuzz_audio campaign once saw 2.3
 * GB between two small inputs). */
static void check_header_claims(void)
{
    FILE *f = fopen(path_of("wide.wav"), "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    test_wav_header(f, 1, 1000, 16, 44100, 50);
    for (int i = 0; i < 50 * 1000; i++)
        fwrite(&(int16_t){(int16_t)(i % 977)}, 2, 1, f);
    fclose(f);
    expect_decode_error("wide.wav", "1000 channels");
    CHECK(strstr(m2p_errmsg(), "1000 channels") != NULL);
    void *big = av_malloc((size_t)256 << 20);
    CHECK(big == NULL);
    av_free(big);
}

/* n samples of a 440 Hz tone at 22,050 Hz, some replaced by spoil(i, x), as a 32-bit float
 * WAV: decoded, every sample is finite and the features are numbers; their brightness (the
 * spectral centroid) is returned, or -1 when the file was not decoded. */
static double check_float_tone(const char *name, uint32_t n, float (*spoil)(uint32_t i, float x))
{
    const uint32_t rate = 22050;
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f != NULL);
    if (!f)
        return -1;
    test_wav_header(f, 3, 1, 32, rate, n); /* WAVE_FORMAT_IEEE_FLOAT */
    for (uint32_t i = 0; i < n; i++) {
        float x = spoil(i, 0.5f * sinf(2.0f * 3.14159265f * 440.0f * (float)i / (float)rate));
        fwrite(&x, 4, 1, f);
    }
    fclose(f);
    m2p_audio a;
    int rc = m2p_audio_decode(path_of(name), 0, 0, &a);
    CHECK_INT(rc, 0);
    if (rc)
        return -1;
    int64_t bad = 0;
    for (int64_t i = 0; i < a.n; i++)
        bad += !isfinite(a.samples[i]);
    CHECK_INT(bad, 0);
    m2p_features feat;
    CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &feat), 0);
    check_no_nan(&feat);
    double brightness = feat.brightness;
    m2p_features_free(&feat);
    m2p_audio_free(&a);
    return brightness;
}

static float spoil_nan(uint32_t i, float x)
{
    return i % 1000 == 7 ? NAN : i % 1000 == 500 ? (i % 2 ? INFINITY : -INFINITY) : x;
}

static float spoil_huge(uint32_t i, float x)
{
    return i % 100 == 3 ? (i % 200 == 3 ? 3e38f : -3e38f) : x;
}

/* Float WAVs with NaN, +inf and -inf in them (the NaN reached the features and their JSON
 * before), and with every 100th sample +-3e38, finite but near FLT_MAX (the spectra overflowed
 * to infinity and the brightness became NaN): both found by fuzz_audio. */
static void check_float_spoiled(void)
{
    check_float_tone("nan.wav", 2 * 22050, spoil_nan);
    double brightness = check_float_tone("huge.wav", 22050, spoil_huge);
    CHECK(isfinite(brightness) && brightness > 0);
}

static void check_no_nan(const m2p_features *f)
{
    const double v[] = {f->tempo,
                        f->raw_energy,
                        f->energy,
                        f->brightness,
                        f->spectral_rolloff,
                        f->spectral_bandwidth,
                        f->spectral_contrast,
                        f->zero_crossing_rate,
                        f->chroma_std,
                        f->rhythm_stability,
                        f->attack_sharpness,
                        f->harmonicity,
                        f->hp_ratio,
                        f->mode_confidence,
                        f->spectral_flux,
                        f->onset_density,
                        f->onset_density_raw,
                        f->dynamic_range,
                        f->dynamic_range_db,
                        f->pitch_register,
                        f->valence_scientific,
                        f->arousal_scientific,
                        f->duration_analyzed};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        CHECK(isfinite(v[i]));
    for (int i = 0; i < M2P_N_MFCC; i++)
        CHECK(isfinite(f->mfcc_mean[i]) && isfinite(f->mfcc_std[i]));
    for (int i = 0; i < f->n_envelope; i++)
        CHECK(f->envelope[i] >= 0 && f->envelope[i] <= 1);
}

int main(void)
{
    tmp = test_tmpdir("badaudio");
    if (!tmp)
        return 1;

    /* Not audio, empty, truncated. */
    FILE *fp = fopen(path_of("text.mp3"), "w");
    for (int i = 0; i < 2000; i++)
        fprintf(fp, "this is not audio %d\n", i);
    fclose(fp);
    expect_decode_error("text.mp3", "text");
    fp = fopen(path_of("empty.wav"), "w");
    fclose(fp);
    expect_decode_error("empty.wav", "empty");
    CHECK_INT(sh("sox -n -r 22050 -c 1 -b 16 %s/full.wav synth 10 sine 440 vol 0.5", tmp), 0);
    CHECK_INT(sh("head -c 100000 %s/full.wav > %s/trunc.wav", tmp), 0);
    expect_decode_error("trunc.wav", "truncated wav");
    CHECK_INT(sh("ffmpeg -v error -y -i %s/full.wav %s/full.flac", tmp), 0);
    CHECK_INT(sh("head -c 30000 %s/full.flac > %s/trunc.flac", tmp), 0);
    expect_decode_error("trunc.flac", "truncated flac");
    CHECK_INT(sh("head -c 40 %s/full.flac > %s/head.flac", tmp), 0);
    expect_decode_error("head.flac", "header only");

    /* Silence: undetermined, defaults, no NaN. */
    {
        float *z = calloc(22050 * 10, sizeof *z);
        m2p_features f;
        CHECK_INT(m2p_features_compute(z, 22050 * 10, 22050, &f), 0);
        CHECK_INT(f.undetermined, 1);
        CHECK_NEAR(f.tempo, 0, 0);
        CHECK_INT(f.key_tonic, -1);
        CHECK_STR(m2p_key_name(f.key_tonic), "");
        CHECK_NEAR(f.mode_confidence, 0.5, 0);
        CHECK_NEAR(f.energy, 0, 0);
        CHECK_NEAR(f.duration_analyzed, 10, 1e-9);
        check_no_nan(&f);
        CHECK(f.n_envelope > 0 && f.n_envelope <= 400);
        m2p_features_free(&f);
        /* empty input too */
        CHECK_INT(m2p_features_compute(z, 0, 22050, &f), 0);
        CHECK_INT(f.undetermined, 1);
        check_no_nan(&f);
        m2p_features_free(&f);
        /* NaN samples are treated as zeros */
        z[100] = NAN;
        z[200] = INFINITY;
        for (int i = 1000; i < 22050 * 10; i++)
            z[i] = 0.3f * sinf(2 * 3.14159265f * 440 * i / 22050);
        CHECK_INT(m2p_features_compute(z, 22050 * 10, 22050, &f), 0);
        check_no_nan(&f);
        CHECK_INT(f.undetermined, 0);
        m2p_features_free(&f);
        CHECK_INT(m2p_features_compute(z, 22050, 100, &f), M2P_EINVAL);
        free(z);
    }

    /* Silence through the decoder; a 1-second clip; half a second. */
    CHECK_INT(sh("sox -n -r 44100 -c 2 %s/silence.wav trim 0 8", tmp), 0);
    CHECK_INT(sh("sox -n -r 44100 -c 2 %s/clip1.wav synth 1 pluck C4 vol 0.5", tmp), 0);
    CHECK_INT(sh("sox -n -r 44100 -c 2 %s/clip05.wav synth 0.5 pluck C4 vol 0.5", tmp), 0);
    const char *clips[] = {"silence.wav", "clip1.wav", "clip05.wav"};
    const int undet[] = {1, 0, 1};
    for (int i = 0; i < 3; i++) {
        m2p_audio a;
        m2p_features f;
        int rc = m2p_audio_decode(path_of(clips[i]), 0, 60, &a);
        CHECK_INT(rc, 0);
        if (rc)
            continue;
        CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
        CHECK_INT(f.undetermined, undet[i]);
        check_no_nan(&f);
        m2p_features_free(&f);
        m2p_audio_free(&a);
    }

    /* A 3-hour file: a 60 s window from 5 s must be quick (decoding stops after the window). */
    CHECK_INT(sh("ffmpeg -v error -y -f lavfi -i 'sine=frequency=220:sample_rate=8000' -t 10800 "
                 "-c:a flac -compression_level 0 %s/long.flac",
                 tmp),
              0);
    {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        m2p_audio a;
        int rc = m2p_audio_decode(path_of("long.flac"), 5, 60, &a);
        CHECK_INT(rc, 0);
        if (!rc) {
            CHECK_INT(a.n, 60 * 22050);
            CHECK_NEAR(a.source_duration, 10800, 5);
            m2p_features f;
            CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
            CHECK_NEAR(f.duration_analyzed, 60, 1e-9);
            check_no_nan(&f);
            m2p_features_free(&f);
            m2p_audio_free(&a);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        /* Reported, not asserted (timings go to bench/; a loaded machine must not fail). */
        fprintf(stderr, "3-hour file, 60 s window: %.2f s\n", s);
        /* a long offset seeks instead of decoding through */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = m2p_audio_decode(path_of("long.flac"), 7200, 10, &a);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK_INT(rc, 0);
        if (!rc) {
            CHECK_INT(a.n, 10 * 22050);
            m2p_audio_free(&a);
        }
        s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        fprintf(stderr, "3-hour file, 10 s at 2 h: %.2f s\n", s);
    }

    check_float_spoiled();
    check_absurd_rate();
    check_header_claims();
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
