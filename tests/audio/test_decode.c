/*
 * test_decode.c — m2p_audio_decode on many containers, codecs, layouts and rates, made with
 * sox/ffmpeg at test time; container tags; librosa's documented decoder values (brahms
 * offset 15 s duration 5 s first/last samples, choice length).
 */
#include "mus2pic.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static char *tmp;

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static const char *path_of(const char *name)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 1024, "%s/%s", tmp, name);
    return b;
}

/* A 440 Hz tone: the decoded signal must be a sine of that frequency and level. */
static void check_tone(const char *file, double seconds, double amp, double tol_amp)
{
    m2p_audio a;
    int rc = m2p_audio_decode(path_of(file), 0, 0, &a);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s: %s\n", file, m2p_errmsg());
        return;
    }
    CHECK_INT(a.sample_rate, 22050);
    CHECK_NEAR((double)a.n / 22050, seconds, 0.06);
    /* RMS of the middle second and zero crossings -> frequency */
    int64_t s0 = a.n / 2 - 11025, s1 = a.n / 2 + 11025;
    double e = 0;
    int zc = 0;
    for (int64_t i = s0; i < s1; i++) {
        e += a.samples[i] * a.samples[i];
        if (i > s0 && (a.samples[i] >= 0) != (a.samples[i - 1] >= 0))
            zc++;
    }
    double rms = sqrt(e / (s1 - s0));
    CHECK_NEAR(rms, amp / sqrt(2.0), tol_amp);
    CHECK_NEAR(zc / 2.0, 440.0, 4.0);
    m2p_audio_free(&a);
}

int main(void)
{
    tmp = test_tmpdir("decode");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();

    /* Same tone through four codecs, with tags. */
    CHECK_INT(sh("sox -n -r 44100 -c 2 -b 16 %s/tone.wav synth 3 sine 440 vol 0.5%s", tmp, ""), 0);
    CHECK_INT(sh("ffmpeg -v error -y -i %s/tone.wav -metadata artist='Test Artist' -metadata "
                 "title='Test Title' -metadata genre='Shoegaze' %s/tone.flac",
                 tmp, tmp),
              0);
    CHECK_INT(sh("ffmpeg -v error -y -i %s/tone.wav -c:a libvorbis -metadata artist='Test "
                 "Artist' -metadata genre='Shoegaze' %s/tone.ogg",
                 tmp, tmp),
              0);
    CHECK_INT(sh("ffmpeg -v error -y -i %s/tone.wav -c:a libmp3lame -b:a 128k -metadata "
                 "artist='Test Artist' -metadata genre='Shoegaze' %s/tone.mp3",
                 tmp, tmp),
              0);
    check_tone("tone.wav", 3.0, 0.5, 0.01);
    check_tone("tone.flac", 3.0, 0.5, 0.01);
    check_tone("tone.ogg", 3.0, 0.5, 0.02);
    check_tone("tone.mp3", 3.0, 0.5, 0.02);
    const char *tagged[] = {"tone.flac", "tone.ogg", "tone.mp3"};
    for (int i = 0; i < 3; i++) {
        m2p_audio a;
        if (m2p_audio_decode(path_of(tagged[i]), 0, 1, &a) == 0) {
            CHECK_STR(a.meta_artist, "Test Artist");
            CHECK_STR(a.meta_genre, "Shoegaze");
            CHECK_NEAR((double)a.n, 22050, 1);
            CHECK_NEAR(a.source_duration, 3.0, 0.1);
            m2p_audio_free(&a);
        } else {
            CHECK(!"tagged file decodes");
        }
    }
    {
        m2p_audio a;
        if (m2p_audio_decode(path_of("tone.flac"), 0, 0, &a) == 0) {
            CHECK_STR(a.meta_title, "Test Title");
            m2p_audio_free(&a);
        }
    }

    /* 8 kHz mono and 192 kHz with 8 channels (7.1). */
    CHECK_INT(sh("sox -n -r 8000 -c 1 -b 16 %s/tone8k.wav synth 2 sine 440 vol 0.5%s", tmp, ""), 0);
    check_tone("tone8k.wav", 2.0, 0.5, 0.01);
    CHECK_INT(
        sh("sox -n -r 192000 -c 8 -b 24 %s/tone192k8.wav synth 2 sine 440 vol 0.5%s", tmp, ""), 0);
    check_tone("tone192k8.wav", 2.0, 0.5, 0.01);
    CHECK_INT(sh("ffmpeg -v error -y -i %s/tone192k8.wav -c:a flac -ch_layout 7.1 "
                 "%s/tone71.flac",
                 tmp, tmp),
              0);
    check_tone("tone71.flac", 2.0, 0.5, 0.01);

    /* Offset and duration are sample exact: a ramp 0..1 over 4 s at 22,050 Hz. */
    CHECK_INT(sh("sox -n -r 22050 -c 1 -e float -b 32 %s/ramp.wav synth 4 sawtooth 0.25 vol 1 "
                 "%s",
                 tmp, ""),
              0);
    {
        m2p_audio a, b;
        if (m2p_audio_decode(path_of("ramp.wav"), 0, 0, &a) == 0 &&
            m2p_audio_decode(path_of("ramp.wav"), 1.5, 1.0, &b) == 0) {
            CHECK_INT(b.n, 22050);
            int64_t off = (int64_t)llround(1.5 * 22050);
            double d = 0;
            for (int64_t i = 0; i < b.n && off + i < a.n; i++)
                d = fmax(d, fabs(b.samples[i] - a.samples[off + i]));
            CHECK_NEAR(d, 0.0, 1e-6);
            m2p_audio_free(&a);
            m2p_audio_free(&b);
        } else {
            CHECK(!"ramp decodes");
        }
    }

    /* librosa's documented decoder values. */
    {
        m2p_audio a;
        int rc = m2p_audio_decode(test_fixture("audio/librosa/brahms.ogg"), 15.0, 5.0, &a);
        CHECK_INT(rc, 0);
        if (!rc) {
            CHECK_INT(a.n, 5 * 22050);
            CHECK_NEAR(a.samples[0], 0.146, 0.002);
            CHECK_NEAR(a.samples[1], 0.144, 0.002);
            CHECK_NEAR(a.samples[a.n - 2], 0.128, 0.002);
            CHECK_NEAR(a.samples[a.n - 1], 0.015, 0.002);
            m2p_audio_free(&a);
        }
        rc = m2p_audio_decode(test_fixture("audio/librosa/choice.ogg"), 0, 0, &a);
        CHECK_INT(rc, 0);
        if (!rc) {
            CHECK_INT(a.n, 551823); /* librosa.get_duration: 25.025986 s */
            CHECK_NEAR((double)a.n / a.sample_rate, 25.025986394557822, 1e-6);
            m2p_audio_free(&a);
        }
    }

    /* Offset past the end and missing files are errors with messages. */
    {
        m2p_audio a;
        CHECK(m2p_audio_decode(path_of("tone.wav"), 10.0, 0, &a) < 0);
        CHECK(strlen(m2p_errmsg()) > 0);
        CHECK_INT(m2p_audio_decode(path_of("missing.wav"), 0, 0, &a), M2P_ENOTFOUND);
        CHECK_INT(m2p_audio_decode(path_of("tone.wav"), -1, 0, &a), M2P_EINVAL);
        CHECK(a.samples == NULL);
    }

    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
