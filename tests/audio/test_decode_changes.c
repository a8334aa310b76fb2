/*
 * test_decode_changes.c — streams whose channel count or sample rate changes mid-file (two MP3s
 * concatenated, as `cat stereo.mp3 mono.mp3` makes): every part is decoded through a resampler
 * built for it. Before the fix the resampler of the first frame read the later frames' freed
 * planes (heap use-after-free under ASan; a tempo computed from garbage in release).
 * The reference is each part decoded on its own (one format throughout, the path that was
 * always right): the joined file's length is the sum of the parts and each side of the switch
 * has its part's level.
 */
#include "mus2pic.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static char *tmp;

static int run(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "cd '%s' && %s", tmp, cmd);
    return system(full);
}

/* RMS of samples [from, to) */
static double rms(const float *x, long from, long to)
{
    double s = 0;
    for (long i = from; i < to; i++)
        s += (double)x[i] * x[i];
    return sqrt(s / (double)(to - from));
}

static double level_alone(const char *name)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    m2p_audio a;
    if (m2p_audio_decode(path, 0, 0, &a) != 0) {
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
        test_failures++;
        return -1;
    }
    long sr = a.sample_rate;
    double r = rms(a.samples, sr / 2, a.n - sr / 2);
    m2p_audio_free(&a);
    return r;
}

static void check_file(const char *name, const char *part1, const char *part2, double part_s)
{
    double want1 = level_alone(part1), want2 = level_alone(part2);
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    m2p_audio a;
    int rc = m2p_audio_decode(path, 0, 0, &a);
    if (rc)
        fprintf(stderr, "%s: %s\n", name, m2p_errmsg());
    CHECK_INT(rc, 0);
    if (rc)
        return;
    /* MP3 adds up to ~50 ms of encoder delay/padding per part. */
    CHECK_NEAR((double)a.n / a.sample_rate, 2 * part_s, 0.15);
    long sr = a.sample_rate;
    double first = rms(a.samples, sr / 2, (long)(part_s * sr) - sr / 2);
    double second = rms(a.samples, (long)(part_s * sr) + sr / 2, (long)(2 * part_s * sr) - sr / 2);
    fprintf(stderr, "%s: %.2f s, rms %.4f | %.4f (parts alone: %.4f | %.4f)\n", name,
            (double)a.n / a.sample_rate, first, second, want1, want2);
    CHECK_NEAR(first, want1, 0.01 * want1);
    CHECK_NEAR(second, want2, 0.01 * want2);

    m2p_features f;
    CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
    CHECK(isfinite(f.energy));
    m2p_features_free(&f);
    m2p_audio_free(&a);
}

int main(void)
{
    tmp = test_tmpdir("decode-changes");
    const double part_s = 6;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t):s=44100' -t %g "
             "-c:a pcm_f32le a.wav",
             part_s);
    CHECK_INT(run(cmd), 0);
    CHECK_INT(run("ffmpeg -v error -y -i a.wav -ac 2 -b:a 192k st.mp3 && "
                  "ffmpeg -v error -y -i a.wav -ac 1 -b:a 128k mo.mp3 && "
                  "ffmpeg -v error -y -i a.wav -ac 1 -ar 22050 -b:a 96k lo.mp3 && "
                  "cat st.mp3 mo.mp3 > channels.mp3 && cat mo.mp3 st.mp3 > channels2.mp3 && "
                  "cat st.mp3 lo.mp3 > rate.mp3"),
              0);
    check_file("channels.mp3", "st.mp3", "mo.mp3", part_s); /* stereo then mono */
    /* mono then stereo: more planes than the first frame had */
    check_file("channels2.mp3", "mo.mp3", "st.mp3", part_s);
    check_file("rate.mp3", "st.mp3", "lo.mp3", part_s); /* 44.1 kHz then 22.05 kHz */
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
