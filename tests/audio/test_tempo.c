/*
 * test_tempo.c — tempo, beats and key on audio with known answers:
 *  - click tracks synthesised here at 60 ... 200 BPM (tempo within 4 %, beats on the clicks);
 *  - a rock drum pattern synthesised here at 120, 140, 180 and 190 BPM (tempo within 4 %: the
 *    fast ones were read at half before the onset-density check);
 *  - a 3+3+2 (tresillo) groove synthesised here in 4/4 at 120, 150, 170 and 180 BPM: bass and
 *    stabs on eighths 1, 4 and 7 of each bar, hi-hat on every eighth, a new chord each bar
 *    (tempo within 4 %: 150, 170 and 180 were read at 2/3, the dotted level, 100, 113 and 120,
 *    before the bar-grid check);
 *  - a dotted-eighth figure synthesised here in 4/4 at 110, 127 and 140 BPM: bass and stabs on
 *    sixteenths 0, 3, 6, 9 and 12 of each bar, hi-hat on every eighth, a new chord each bar
 *    (tempo within 4 %: read at 4/3, 146, 170 and 185, before the dotted-grid check);
 *  - a 6/8 arpeggio in even eighths at 80 and 100 BPM (the dotted quarter; read at 3/2 before
 *    the compound-meter check) and a 3/4 waltz on the same chords at 90-180 BPM (tempo within
 *    4 %);
 *  - onset envelopes: eighths at 102 BPM with the beat 10 % louder (read at 202 before the
 *    octave check's limit went to 204 BPM) and a dotted-eighth figure over sixteenths at 104
 *    BPM (read at 210 before the range check);
 *  - the first 6 tunes of the evaluation set (tools/midigen.h; bench/eval_tempo_key) and two
 *    fast 4/4 tunes without drums (g25, g42) rendered here: tempo Acc1 8/8, Acc2 8/8, key and
 *    mode 8/8 (as measured);
 *  - the four MIDI tunes of ../shared/fixtures/audio/tunes rendered with fluidsynth and the
 *    TimGM6mb SoundFont (tempo within 4 %, tonic and mode as in tunes.tsv; the README flags
 *    the 3/4 waltz as possibly locking onto the bar, so x3 and 1/3 also count there);
 *  - librosa's documented beat_track on the first 10 s of choice (135.999 BPM, 20 beats);
 *  - librosa.feature.tempo on nutcracker, reproduced step by step (tempo_onset_strength,
 *    tempo_librosa), against a published run of librosa on the whole file.
 *
 * nutcracker: librosa's tempo docstring (0.8 to main) prints 143.555 BPM for the first 30 s,
 * 161.499 with a uniform prior and per-frame 89.103 ... 123.047. librosa itself does not give
 * these on this file: a published run of librosa 0.8/0.9 on the whole nutcracker example
 * (blog.paperspace.com/audio-analysis-processing-maching-learning, "Beat and Tempo":
 * librosa.beat.tempo(onset_envelope=onset_strength(x, sr)) -> array([107.66601562]); aggregate=None
 * -> [112.34714674, 112.34714674, ..., 107.66601562]) matches our implementation to the lag. Our
 * first-30-s values (112.347 for all three calls) agree with that run's first frame. The
 * docstring's 143.555 and 161.499 are the very numbers the 0.7 docstring printed per frame for
 * its previous example file (Vibe Ace), so they were likely not re-run on nutcracker. The test
 * asserts librosa's actual output; the docstring values are printed for the record (see
 * BENCHMARKS.md).
 */
#include "../../tools/midigen.h"
#include "audio/tempo.h"
#include "mus2pic.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

#define SR 22050

static int within(double got, double want, double tol)
{
    return fabs(got / want - 1) <= tol;
}

static void clicks(double bpm)
{
    const double dur = 30;
    int64_t n = (int64_t)(dur * SR);
    float *x = calloc((size_t)n, sizeof *x);
    double per = 60.0 / bpm, t0 = 0.25;
    for (double t = t0; t < dur - 0.05; t += per) {
        int64_t s0 = (int64_t)llround(t * SR);
        for (int i = 0; i < 400 && s0 + i < n; i++)
            x[s0 + i] += (float)(0.8 * exp(-i / 60.0) * sin(2 * M_PI * 1000 * i / SR));
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    if (!within(f.tempo, bpm, 0.04))
        fprintf(stderr, "click %g BPM: got %.2f\n", bpm, f.tempo);
    CHECK(within(f.tempo, bpm, 0.04));
    /* beats fall on clicks (within 2 frames) and are spaced by the period */
    CHECK(f.n_beats >= (int)(dur / per) - 6);
    int on = 0;
    for (int i = 0; i < f.n_beats; i++) {
        double k = (f.beats[i] - t0) / per, d = fabs(k - floor(k + 0.5)) * per;
        on += d < 0.05;
    }
    CHECK(on >= f.n_beats - 1);
    free(x);
    m2p_features_free(&f);
}

/* A rock drum pattern synthesised here, so its beat is known by construction: kick (a falling
 * 55 Hz sine) on beats 1 and 3, snare (noise and a 200 Hz body) on 2 and 4, a closed hi-hat
 * (differenced noise) on every eighth note. At 180 and 190 BPM the kick-snare pairs repeat at
 * 90 and 95, the level librosa's prior prefers: the onsets (four per half-tempo beat) place
 * the beat (audio/tempo.c density_check). At 120 and 140 BPM the same pattern keeps its tempo
 * (not doubled). */
static unsigned rock_noise_state = 1;
static float rock_noise(void)
{
    unsigned v = rock_noise_state;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    rock_noise_state = v;
    return (float)(v / 4294967296.0 * 2 - 1);
}

static void rock(double bpm)
{
    const double dur = 30, per = 60.0 / bpm;
    int64_t n = (int64_t)(dur * SR);
    float *x = calloc((size_t)n, sizeof *x);
    CHECK(x != NULL);
    if (!x)
        return;
    for (int b = 0; b < (int)(dur / per); b++) {
        int64_t t0 = (int64_t)(b * per * SR);
        for (int i = 0; i < SR * 0.15 && t0 + i < n; i++) {
            double t = (double)i / SR;
            if (b % 2 == 0)
                x[t0 + i] += (float)(0.8 * sin(2 * M_PI * (55 + 60 * exp(-t * 30)) * t) *
                                     exp(-t * 20));
            else if (t < 0.12)
                x[t0 + i] += (float)((0.5 * rock_noise() + 0.3 * sin(2 * M_PI * 200 * t)) *
                                     exp(-t * 30));
        }
        for (int h = 0; h < 2; h++) {
            int64_t th = t0 + (int64_t)(h * per / 2 * SR);
            float prev = 0;
            for (int i = 0; i < SR * 0.03 && th + i < n; i++) {
                float w = rock_noise();
                x[th + i] += 0.15f * (w - prev) * expf(-(float)i / SR * 120);
                prev = w;
            }
        }
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    fprintf(stderr, "rock pattern %g BPM: tempo %.2f\n", bpm, f.tempo);
    CHECK(within(f.tempo, bpm, 0.04));
    free(x);
    m2p_features_free(&f);
}

/* A groove synthesised here so its beat and bar are known by construction: bars of `steps`
 * notes of 1/per_beat of a beat each, a bass note with a chord stab on the steps marked 'x' in
 * accents, a closed hi-hat on every hat_every-th step, and a held chord that changes on every
 * bar line (four chords in turn). The tempo must be read within 4 %. */
static void accent_groove(const char *what, double bpm, int per_beat, int steps,
                          const char *accents, int hat_every)
{
    const double dur = 30, step = 60.0 / bpm / per_beat; /* one step, s */
    static const double chords[4][3] = {{261.63, 329.63, 392.00},
                                        {220.00, 261.63, 329.63},
                                        {174.61, 220.00, 261.63},
                                        {196.00, 246.94, 293.66}};
    int64_t n = (int64_t)(dur * SR);
    float *x = calloc((size_t)n, sizeof *x);
    CHECK(x != NULL);
    if (!x)
        return;
    int nbar = (int)(dur / (steps * step));
    for (int b = 0; b < nbar; b++) {
        const double *c = chords[b % 4];
        int64_t s0 = (int64_t)(b * steps * step * SR), len = (int64_t)(steps * step * SR);
        for (int64_t i = 0; i < len && s0 + i < n; i++) {
            double t = (double)i / SR,
                   env = fmin(1.0, t / 0.02) * fmin(1.0, (steps * step - t) / 0.02);
            for (int k = 0; k < 3; k++)
                x[s0 + i] += (float)(0.06 * env * sin(2 * M_PI * c[k] * t));
        }
        for (int j = 0; j < steps; j++) {
            int64_t t0 = s0 + (int64_t)(j * step * SR);
            if (j % hat_every == 0) {
                float prev = 0;
                for (int i = 0; i < SR * 0.03 && t0 + i < n; i++) {
                    float w = rock_noise();
                    x[t0 + i] += 0.1f * (w - prev) * expf(-(float)i / SR * 120);
                    prev = w;
                }
            }
            if (accents[j] != 'x')
                continue;
            for (int i = 0; i < SR * 0.25 && t0 + i < n; i++) {
                double t = (double)i / SR, d = exp(-t * 12);
                x[t0 + i] += (float)(0.6 * sin(2 * M_PI * (45 + 25 * exp(-t * 20)) * t) * d);
                for (int k = 0; k < 3; k++)
                    x[t0 + i] += (float)(0.08 * sin(2 * M_PI * 2 * c[k] * t) * exp(-t * 25));
            }
        }
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    fprintf(stderr, "%s %g BPM: tempo %.2f\n", what, bpm, f.tempo);
    CHECK(within(f.tempo, bpm, 0.04));
    free(x);
    m2p_features_free(&f);
}

/* A 3+3+2 groove in 4/4, synthesised here so its beat and bar are known by construction: each
 * bar of 8 eighths has a bass note (a falling sine, 70 Hz and down) with a chord stab on eighths
 * 0, 3 and 6, a closed hi-hat on every eighth, and a held chord that changes on every bar line
 * (four chords in turn). The 3-3-2 accents repeat every dotted quarter twice a bar, the level
 * librosa's tempogram prefers (150-180 BPM read at 100-120 before); the bar, 4 beats, places the
 * beat (audio/tempo.c bar_grid_check). */
static void tresillo(double bpm)
{
    accent_groove("3+3+2 groove", bpm, 2, 8, "x..x..x.", 1);
}

/* A dotted-eighth figure in 4/4, synthesised here so its beat and bar are known by construction:
 * each bar of 16 sixteenths has a bass note with a chord stab on sixteenths 0, 3, 6, 9 and 12
 * (3+3+3+3+4), a closed hi-hat on every eighth, and a held chord that changes on every bar line
 * (four chords in turn). The accents repeat every three sixteenths, 4/3 of the tempo, the level
 * librosa's tempogram prefers; the bar, 16 sixteenths, is no whole number of dotted eighths and
 * places the beat (audio/tempo.c dotted_grid_check). */
static void dotted_sixteenths(double bpm)
{
    accent_groove("dotted-eighth figure", bpm, 4, 16, "x..x..x..x..x...", 2);
}

static void tune(const char *tmp, const char *name, double bpm, int tonic, int major, int waltz)
{
    char mid[1024], wav[1024], cmd[4096];
    snprintf(mid, sizeof mid, "%s", test_fixture("audio/tunes/"));
    strncat(mid, name, sizeof mid - strlen(mid) - 5);
    strcat(mid, ".mid");
    snprintf(wav, sizeof wav, "%s/%s.wav", tmp, name);
    snprintf(cmd, sizeof cmd,
             "fluidsynth -ni -r 44100 -F '%s' -T wav /usr/share/sounds/sf2/TimGM6mb.sf2 '%s' "
             ">/dev/null 2>&1",
             wav, mid);
    int rc = system(cmd);
    CHECK_INT(rc, 0);
    m2p_audio a;
    rc = m2p_audio_decode(wav, 0, 0, &a);
    CHECK_INT(rc, 0);
    if (rc)
        return;
    m2p_features f;
    CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
    fprintf(stderr, "%s: tempo %.2f (want %g), key %s %s (conf %.2f)\n", name, f.tempo, bpm,
            m2p_key_name(f.key_tonic), f.is_major_key ? "major" : "minor", f.mode_confidence);
    int ok = within(f.tempo, bpm, 0.04);
    if (waltz)
        ok = ok || within(f.tempo, bpm * 3, 0.04) || within(f.tempo, bpm / 3, 0.04);
    CHECK(ok);
    CHECK_INT(f.key_tonic, tonic);
    CHECK_INT(f.is_major_key, major);
    CHECK(major ? f.mode_confidence > 0.5 : f.mode_confidence < 0.5);
    m2p_features_free(&f);
    m2p_audio_free(&a);
}

/* The first 6 tunes of the evaluation set (tools/midigen.h, seed 1, n 48), rendered here with
 * fluidsynth at 22,050 Hz as bench/eval_tempo_key does. Measured there (BENCHMARKS.md): tempo
 * within 4 % on all 6 since the tempo reads the drum-band envelope (tempo_estimate_mel; before,
 * 4 of 6: g00, 6/8 at 60.5, read x3 and g03, 65.5 BPM, read x2), key and mode right on all 6.
 * Plus g25 and g42 of the same set, fast 4/4 tunes without drums (171.1 and 175.6 BPM), read
 * at half (85.5, 87.9) before the cut-time check in tempo.c's harmonic_check. */
static void generated(const char *tmp)
{
    static const char *sf[2] = {"/usr/share/sounds/sf2/TimGM6mb.sf2",
                                "/usr/share/sounds/sf2/FluidR3_GM.sf2"};
    static const int idx[] = {0, 1, 2, 3, 4, 5, 25, 42};
    int a1 = 0, a2 = 0, key = 0, n = (int)(sizeof idx / sizeof idx[0]);
    for (int j = 0; j < n; j++) {
        int i = idx[j];
        mg_tune t = mg_tune_make(1, i, 48);
        char mid[1024], wav[1024], cmd[4096];
        snprintf(mid, sizeof mid, "%s/%s.mid", tmp, t.name);
        snprintf(wav, sizeof wav, "%s/%s.wav", tmp, t.name);
        CHECK_INT(mg_write_midi(&t, 1, i, mid), 0);
        CHECK(access(sf[t.soundfont], R_OK) == 0);
        snprintf(cmd, sizeof cmd, "fluidsynth -ni -r 22050 -F '%s' -T wav %s '%s' >/dev/null 2>&1",
                 wav, sf[t.soundfont], mid);
        CHECK_INT(system(cmd), 0);
        m2p_audio a;
        int rc = m2p_audio_decode(wav, 0, 60, &a);
        CHECK_INT(rc, 0);
        if (rc)
            continue;
        m2p_features f;
        CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
        int ok1 = within(f.tempo, t.bpm, 0.04), ok2 = 0;
        static const double mul[5] = {1, 2, 3, 0.5, 1.0 / 3};
        for (int m = 0; m < 5; m++)
            ok2 |= within(f.tempo, t.bpm * mul[m], 0.04);
        int okk = f.key_tonic == t.tonic && f.key_major == t.major;
        fprintf(stderr, "%s: tempo %.2f (want %g)%s, key %s %s%s\n", t.name, f.tempo, t.bpm,
                ok1   ? ""
                : ok2 ? " (octave)"
                      : " (wrong)",
                m2p_key_name(f.key_tonic), f.key_major ? "major" : "minor", okk ? "" : " (wrong)");
        a1 += ok1;
        a2 += ok2;
        key += okk;
        m2p_features_free(&f);
        m2p_audio_free(&a);
    }
    fprintf(stderr, "generated tunes: tempo Acc1 %d/%d, Acc2 %d/%d, key %d/%d\n", a1, n, a2, n, key,
            n);
    CHECK_INT(a1, n);
    CHECK_INT(a2, n);
    CHECK_INT(key, n);
}

/* librosa.feature.tempo on nutcracker (whole file and first 30 s), by the librosa method. */
static void nutcracker(void)
{
    const double fps = 22050.0 / 512;
    m2p_audio a;
    int rc = m2p_audio_decode(test_fixture("audio/librosa/nutcracker.ogg"), 0, 0, &a);
    CHECK_INT(rc, 0);
    if (rc)
        return;
    CHECK_INT(a.sample_rate, 22050);
    int T = (int)(1 + a.n / 512);
    float *env = malloc(sizeof(float) * (size_t)T);
    double *frames = malloc(sizeof(double) * (size_t)T);
    CHECK_INT(tempo_onset_strength(a.samples, a.n, a.sample_rate, env), 0);
    /* whole file: 107.666 (lag 24), per frame 112.347 (lag 23) first, 107.666 last */
    double bpm = tempo_librosa(env, T, fps, 0, frames);
    CHECK_NEAR(bpm, 60 * fps / 24, 1e-6);
    CHECK_NEAR(frames[0], 60 * fps / 23, 1e-6);
    CHECK_NEAR(frames[1], 60 * fps / 23, 1e-6);
    CHECK_NEAR(frames[T - 1], 60 * fps / 24, 1e-6);
    CHECK_NEAR(frames[T - 2], 60 * fps / 24, 1e-6);
    fprintf(stderr, "nutcracker whole: librosa tempo %.3f, frames %.3f ... %.3f\n", bpm, frames[0],
            frames[T - 1]);

    /* first 30 s (the docstring's excerpt) */
    int64_t n30 = 30 * 22050;
    int T30 = (int)(1 + n30 / 512);
    CHECK_INT(tempo_onset_strength(a.samples, n30, a.sample_rate, env), 0);
    double b30 = tempo_librosa(env, T30, fps, 0, frames);
    double u30 = tempo_librosa(env, T30, fps, 1, NULL);
    fprintf(stderr,
            "nutcracker 30 s: librosa tempo %.3f (docstring 143.555), uniform prior %.3f "
            "(161.499), frames %.3f (89.103) ... %.3f (123.047)\n",
            b30, u30, frames[0], frames[T30 - 1]);
    CHECK(within(b30, 112.347, 0.04));          /* the same pulse as the whole file */
    CHECK_NEAR(frames[0], 60 * fps / 23, 1e-6); /* = the published whole-file first frame */
    /* our reported tempo stays on that pulse */
    m2p_features f;
    CHECK_INT(m2p_features_compute(a.samples, n30, a.sample_rate, &f), 0);
    CHECK(within(f.tempo, b30, 0.04));
    m2p_features_free(&f);
    free(env);
    free(frames);
    m2p_audio_free(&a);
}

/* A 6/8 arpeggio in even eighths, synthesised here so its beat and bar are known by
 * construction: every eighth note of a bar plays one note of the bar's chord (root, third,
 * fifth, octave, fifth, third: a plucked sine, all equally loud) over the chord held for the
 * bar; the chords change on every bar line (four in turn). Nothing accents the dotted-quarter
 * beat but the bar, six eighths, and the tempogram prefers the quarter (two eighths): 80 and
 * 100 BPM were read at 3/2, 120 and 150, before the compound-meter check (audio/tempo.c
 * compound_check). Known limits, not tested: at 60 the eighths are read (181, x3) and at 120
 * the quarter (181, x3/2). The same chords as a waltz at 90-180 BPM (bass on the bar's first
 * quarter, chord stabs on its second and third) must keep its quarter-note beat. */
static void compound(double bpm, int waltz)
{
    const double dur = 30, e = waltz ? 30.0 / bpm : 20.0 / bpm; /* an eighth note, s */
    static const double chords[4][3] = {{261.63, 329.63, 392.00},
                                        {220.00, 261.63, 329.63},
                                        {174.61, 220.00, 261.63},
                                        {196.00, 246.94, 293.66}};
    static const double arp[6] = {1, 5.0 / 4, 3.0 / 2, 2, 3.0 / 2, 5.0 / 4};
    int64_t n = (int64_t)(dur * SR);
    float *x = calloc((size_t)n, sizeof *x);
    CHECK(x != NULL);
    if (!x)
        return;
    int nbar = (int)(dur / (6 * e));
    for (int b = 0; b < nbar; b++) {
        const double *c = chords[b % 4];
        int64_t s0 = (int64_t)(b * 6 * e * SR), len = (int64_t)(6 * e * SR);
        for (int64_t i = 0; i < len && s0 + i < n; i++) {
            double t = (double)i / SR, env = fmin(1.0, t / 0.02) * fmin(1.0, (6 * e - t) / 0.02);
            for (int k = 0; k < 3; k++)
                x[s0 + i] += (float)(0.05 * env * sin(2 * M_PI * c[k] * t));
        }
        for (int j = 0; j < 6; j++) {
            int64_t t0 = s0 + (int64_t)(j * e * SR);
            for (int i = 0; i < SR * 2 * e && t0 + i < n; i++) {
                double t = (double)i / SR;
                if (!waltz) {
                    x[t0 + i] += (float)(0.3 * sin(2 * M_PI * 2 * c[0] * arp[j] * t) * exp(-t * 8));
                } else if (j == 0) {
                    x[t0 + i] += (float)(0.6 * sin(2 * M_PI * c[0] / 4 * t) * exp(-t * 6));
                } else if (j == 2 || j == 4) {
                    for (int k = 0; k < 3; k++)
                        x[t0 + i] += (float)(0.15 * sin(2 * M_PI * 2 * c[k] * t) * exp(-t * 10));
                }
            }
        }
    }
    m2p_features f;
    CHECK_INT(m2p_features_compute(x, n, SR, &f), 0);
    fprintf(stderr, "%s %g BPM: tempo %.2f\n", waltz ? "3/4 waltz" : "6/8 arpeggio", bpm, f.tempo);
    CHECK(within(f.tempo, bpm, 0.04));
    free(x);
    m2p_features_free(&f);
}

/* The octave check's limit (audio/tempo.c tempo_estimate): an onset envelope of eighth notes at
 * 102 BPM, each beat's eighth 10 % louder than the off-beat's (placed between frames as the
 * audio would be). The accent is within the check's 10 % allowance, so it takes the eighths as
 * as strong as the beat and would double the reading; before round 4 of bench/tempo-devset.sh
 * it did (202), as it did to two dev songs at 102 and 104 BPM (203 and 208). Now it doubles only
 * a reading of 102 BPM or less (the doubled level within 204 BPM), and the beat stays. */
static void accented_eighths(void)
{
    const double bpm = 102, fps = (double)SR / 512;
    const int T = (int)(30 * fps);
    float *env = calloc((size_t)T, sizeof *env);
    CHECK(env != NULL);
    if (!env)
        return;
    double s8 = 60.0 / bpm / 2 * fps;
    for (int k = 0; k * s8 < T - 2; k++) {
        double pos = k * s8, fr = pos - floor(pos), v = k % 2 ? 0.9 : 1.0;
        env[(int)pos] += (float)(v * (1 - fr));
        env[(int)pos + 1] += (float)(v * fr);
    }
    double got = tempo_estimate(env, T, fps, NULL);
    fprintf(stderr, "accented eighths at %g BPM: tempo %.2f\n", bpm, got);
    CHECK(within(got, bpm, 0.04));
    free(env);
}

/* The range check (audio/tempo.c tempo_estimate): an onset envelope of sixteenth notes at 104
 * BPM, the eighths louder than the sixteenths between them and every third sixteenth accented
 * (a dotted-eighth figure across the bar, as in a dev song of bench/tempo-devset.sh). The
 * tempogram picks the dotted eighth (139 BPM) and the 2:3 check moves it to the eighth, whose
 * sub-frame peak lies at 210 BPM, past the 208 the level moves keep to; before round 4 that was
 * the reading (x2). A reading above 208 is halved: 105. */
static void dotted_figure(void)
{
    const double bpm = 104, fps = (double)SR / 512;
    const int T = (int)(30 * fps);
    float *env = calloc((size_t)T, sizeof *env);
    CHECK(env != NULL);
    if (!env)
        return;
    double s16 = 60.0 / bpm / 4 * fps;
    for (int k = 0; k * s16 < T - 1; k++)
        env[(int)lround(k * s16)] += (float)(k % 3 == 0 ? 1.0 : k % 2 == 0 ? 0.5 : 0.2);
    double got = tempo_estimate(env, T, fps, NULL);
    fprintf(stderr, "dotted-eighth figure over sixteenths at %g BPM: tempo %.2f\n", bpm, got);
    CHECK(within(got, bpm, 0.04));
    free(env);
}

int main(void)
{
    nutcracker();

    const double bpms[] = {60, 72, 90, 100, 120, 137, 150, 174, 200};
    for (size_t i = 0; i < sizeof bpms / sizeof bpms[0]; i++)
        clicks(bpms[i]);
    const double rock_bpms[] = {120, 140, 180, 190};
    for (size_t i = 0; i < sizeof rock_bpms / sizeof rock_bpms[0]; i++)
        rock(rock_bpms[i]);
    const double tresillo_bpms[] = {120, 150, 170, 180};
    for (size_t i = 0; i < sizeof tresillo_bpms / sizeof tresillo_bpms[0]; i++)
        tresillo(tresillo_bpms[i]);
    const double dotted_bpms[] = {110, 127, 140};
    for (size_t i = 0; i < sizeof dotted_bpms / sizeof dotted_bpms[0]; i++)
        dotted_sixteenths(dotted_bpms[i]);
    compound(80, 0);
    compound(100, 0);
    const double waltz_bpms[] = {90, 120, 150, 180};
    for (size_t i = 0; i < sizeof waltz_bpms / sizeof waltz_bpms[0]; i++)
        compound(waltz_bpms[i], 1);
    accented_eighths();
    dotted_figure();

    char *tmp = test_tmpdir("tunes");
    CHECK(tmp != NULL);
    if (tmp && access("/usr/share/sounds/sf2/TimGM6mb.sf2", R_OK) == 0) {
        tune(tmp, "01_c_major_120", 120, 0, 1, 0);
        tune(tmp, "02_e_minor_140", 140, 4, 0, 0);
        tune(tmp, "03_b_flat_major_150_waltz", 150, 10, 1, 1);
        tune(tmp, "04_f_sharp_minor_90", 90, 6, 0, 0);
        generated(tmp);
    } else {
        CHECK(!"TimGM6mb SoundFont installed (scripts/install-deps: timgm6mb-soundfont)");
    }
    test_rmtree(tmp);
    free(tmp);

    /* librosa.beat.beat_track on choice, first 10 s. */
    m2p_audio a;
    int rc = m2p_audio_decode(test_fixture("audio/librosa/choice.ogg"), 0, 10, &a);
    CHECK_INT(rc, 0);
    if (!rc) {
        m2p_features f;
        CHECK_INT(m2p_features_compute(a.samples, a.n, a.sample_rate, &f), 0);
        CHECK(within(f.tempo, 135.99917763157896, 0.04));
        static const double want[20] = {0.07,  0.488, 0.929, 1.37,  1.811, 2.229, 2.694,
                                        3.135, 3.576, 4.017, 4.458, 4.899, 5.341, 5.782,
                                        6.223, 6.664, 7.105, 7.546, 7.988, 8.429};
        CHECK_INT(f.n_beats, 20);
        for (int i = 0; i < 20 && i < f.n_beats; i++)
            CHECK_NEAR(f.beats[i], want[i], 0.025); /* about one frame */
        fprintf(stderr, "choice 10 s: tempo %.3f, %d beats\n", f.tempo, f.n_beats);
        m2p_features_free(&f);
        m2p_audio_free(&a);
    }
    TEST_DONE();
}
