/*
 * test_beats.c — beats, downbeats and beat confidence against positions known independently
 * of the analyser, scored with mir_eval's beat F-measure (a detection within ±70 ms of an
 * unmatched reference counts; F = 2PR/(P+R)):
 *  - click tracks synthesised here, a low click on the first beat of each bar and high clicks
 *    on the others, in 4/4 and 3/4 at 70 ... 180 BPM: beats and downbeats where the clicks are;
 *  - the four MIDI tunes of ../shared/fixtures/audio/tunes (score: one tempo, notes from tick 0,
 *    a chord per bar, kick on beat 1), rendered with fluidsynth: beat k at k * 60 / bpm s, bar
 *    lines every 4 (3 for the waltz) beats; the meter comes back too;
 *  - white noise has no pulse: its beat confidence stays below the click tracks'.
 */
#include "mus2pic.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

#define SR 22050
#define TOL 0.07 /* mir_eval.beat.f_measure's default window */

/* mir_eval-style F-measure: greedy one-to-one matching within TOL (both lists increasing). */
static double f_measure(const double *ref, int nr, const double *est, int ne)
{
    if (nr == 0 || ne == 0)
        return 0;
    int hit = 0, j = 0;
    for (int i = 0; i < nr; i++) {
        while (j < ne && est[j] < ref[i] - TOL)
            j++;
        if (j < ne && est[j] <= ref[i] + TOL) {
            hit++;
            j++;
        }
    }
    double p = (double)hit / ne, r = (double)hit / nr;
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

/* Reference beats k * per + t0 within [lo, hi] s (every `every` beats from beat `first`). */
static int grid(double t0, double per, double lo, double hi, int first, int every, double *out,
                int cap)
{
    int n = 0;
    for (int k = first; n < cap; k += every) {
        double t = t0 + k * per;
        if (t > hi)
            break;
        if (t >= lo)
            out[n++] = t;
    }
    return n;
}

static void click(float *x, int64_t n, double t, double hz, double amp)
{
    int64_t s0 = (int64_t)llround(t * SR);
    for (int i = 0; i < 600 && s0 + i < n; i++)
        x[s0 + i] += (float)(amp * exp(-i / 90.0) * sin(2 * M_PI * hz * i / SR));
}

static double click_conf;

static void clicks(double bpm, int per_bar)
{
    const double dur = 30, t0 = 0.5, per = 60.0 / bpm;
    int64_t n = (int64_t)(dur * SR);
    float *x = calloc((size_t)n, sizeof *x);
    int k = 0;
    for (double t = t0; t < dur - 0.05; t += per, k++) {
        if (k % per_bar == 0)
            click(x, n, t, 110, 0.9); /* the bar's first beat: a low, loud click */
        else
            click(x, n, t, 1500, 0.5);
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    /* the tracker trims weak beats at both ends: score the 2 s .. dur - 2 s span */
    double ref[400], refd[200], est[400], estd[200];
    int nr = grid(t0, per, 2, dur - 2, 0, 1, ref, 400);
    int nrd = grid(t0, per, 2, dur - 2, 0, per_bar, refd, 200);
    int ne = 0, ned = 0;
    for (int i = 0; i < f.n_beats && ne < 400; i++)
        if (f.beats[i] >= 2 - TOL && f.beats[i] <= dur - 2 + TOL)
            est[ne++] = f.beats[i];
    for (int i = 0; i < f.n_downbeats && ned < 200; i++)
        if (f.downbeats[i] >= 2 - TOL && f.downbeats[i] <= dur - 2 + TOL)
            estd[ned++] = f.downbeats[i];
    double fb = f_measure(ref, nr, est, ne), fd = f_measure(refd, nrd, estd, ned);
    fprintf(stderr,
            "clicks %g BPM %d/4: tempo %.1f, beat F %.3f, downbeat F %.3f, %d a bar, "
            "confidence %.2f\n",
            bpm, per_bar, f.tempo, fb, fd, f.beats_per_bar, f.beat_confidence);
    CHECK(fb >= 0.95);
    CHECK(fd >= 0.95);
    CHECK_INT(f.beats_per_bar, per_bar);
    CHECK(f.beat_confidence > 0.5);
    if (click_conf == 0 || f.beat_confidence < click_conf)
        click_conf = f.beat_confidence;
    /* downbeats are beats */
    for (int i = 0; i < f.n_downbeats; i++) {
        int found = 0;
        for (int j = 0; j < f.n_beats && !found; j++)
            found = f.beats[j] == f.downbeats[i];
        CHECK(found);
    }
    m2p_features_free(&f);
    free(x);
}

static void noise(void)
{
    const double dur = 20;
    int64_t n = (int64_t)(dur * SR);
    float *x = malloc(sizeof(float) * (size_t)n);
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(0.3 * ((double)(s >> 8) / (1 << 24) - 0.5));
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    fprintf(stderr, "white noise: %d beats, confidence %.2f (clicks: >= %.2f)\n", f.n_beats,
            f.beat_confidence, click_conf);
    CHECK(f.beat_confidence < 0.3);
    CHECK(f.beat_confidence < click_conf);
    m2p_features_free(&f);
    free(x);
}

static void tune(const char *tmp, const char *name, double bpm, int per_bar, double len)
{
    char mid[1024], wav[1024], cmd[4096];
    snprintf(mid, sizeof mid, "%s%s.mid", test_fixture("audio/tunes/"), name);
    snprintf(wav, sizeof wav, "%s/%s.wav", tmp, name);
    snprintf(cmd, sizeof cmd,
             "fluidsynth -ni -r 44100 -F '%s' -T wav /usr/share/sounds/sf2/TimGM6mb.sf2 '%s' "
             ">/dev/null 2>&1",
             wav, mid);
    CHECK_INT(system(cmd), 0);
    m2p_audio a;
    int rc = m2p_audio_decode(wav, 0, 0, &a);
    CHECK_INT(rc, 0);
    if (rc)
        return;
    m2p_features f;
    CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
    double per = 60.0 / bpm, ref[400], refd[200], est[400], estd[200];
    /* the notes end at len (the bars played); score from 2 s to 2 s before the end */
    int nr = grid(0, per, 2, len - 2, 0, 1, ref, 400);
    int nrd = grid(0, per, 2, len - 2, 0, per_bar, refd, 200);
    int ne = 0, ned = 0;
    for (int i = 0; i < f.n_beats && ne < 400; i++)
        if (f.beats[i] >= 2 - TOL && f.beats[i] <= len - 2 + TOL)
            est[ne++] = f.beats[i];
    for (int i = 0; i < f.n_downbeats && ned < 200; i++)
        if (f.downbeats[i] >= 2 - TOL && f.downbeats[i] <= len - 2 + TOL)
            estd[ned++] = f.downbeats[i];
    double fb = f_measure(ref, nr, est, ne), fd = f_measure(refd, nrd, estd, ned);
    fprintf(stderr, "%s: tempo %.1f, beat F %.3f, downbeat F %.3f, %d a bar, confidence %.2f\n",
            name, f.tempo, fb, fd, f.beats_per_bar, f.beat_confidence);
    CHECK(fb >= 0.9);
    CHECK(fd >= 0.9);
    CHECK_INT(f.beats_per_bar, per_bar);
    m2p_features_free(&f);
    m2p_audio_free(&a);
}

int main(void)
{
    static const double bpms[] = {70, 100, 128, 150, 180};
    for (size_t i = 0; i < sizeof bpms / sizeof bpms[0]; i++) {
        clicks(bpms[i], 4);
        clicks(bpms[i], 3);
    }
    noise();
    char *tmp = test_tmpdir("beats");
    /* bars played x beats a bar x 60 / bpm: where the score's last bar ends */
    tune(tmp, "01_c_major_120", 120, 4, 16 * 4 * 0.5);
    tune(tmp, "02_e_minor_140", 140, 4, 32 * 4 * 60.0 / 140);
    tune(tmp, "03_b_flat_major_150_waltz", 150, 3, 32 * 3 * 0.4);
    tune(tmp, "04_f_sharp_minor_90", 90, 4, 16 * 4 * 60.0 / 90);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
