/*
 * test_key.c — key and mode (src/audio/key.c):
 *  - key_estimate on pitch-class weightings of the tonic triad and scale in all 24 keys;
 *  - is_major_key / mode_confidence stay the original's Krumhansl-Kessler values (computed
 *    here independently);
 *  - key_best (the reported key) finds all 24 keys for every profile set, and key_peak_chroma
 *    puts a C major triad on C, E and G (at tuning 0 and +0.3 semitone);
 *  - a flat chroma gives no key.
 * Audio is checked only against keys an independent source states: synthesized chords
 * (test_features.c) and the MIDI tunes of ../shared/fixtures/audio/tunes (bench/eval_tempo_key).
 * librosa's brahms.ogg has no stated key (its fixture README), so no answer of ours is pinned.
 */
#include "audio/key.h"
#include "mus2pic.h"
#include "test.h"

#include <stdlib.h>

static double pearson(const double *x, const double *p, int rot)
{
    double mx = 0, my = 0;
    for (int i = 0; i < 12; i++) {
        mx += x[i];
        my += p[i];
    }
    mx /= 12;
    my /= 12;
    double a = 0, b = 0, c = 0;
    for (int i = 0; i < 12; i++) {
        double u = x[i] - mx, v = p[(i - rot + 12) % 12] - my;
        a += u * v;
        b += u * u;
        c += v * v;
    }
    return a / sqrt(b * c);
}

int main(void)
{
    static const double kk_maj[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09,
                                      2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
    static const double kk_min[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53,
                                      2.54, 4.75, 3.98, 2.69, 3.34, 3.17};
    /* scale degrees 1, tonic triad 0.5 extra; harmonic minor for minor keys */
    static const int maj_scale[7] = {0, 2, 4, 5, 7, 9, 11}, min_scale[7] = {0, 2, 3, 5, 7, 8, 11};
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < 12; k++) {
            double ch[12] = {0};
            const int *sc = mode ? min_scale : maj_scale;
            for (int i = 0; i < 7; i++)
                ch[(k + sc[i]) % 12] += 1.0;
            ch[k] += 0.8;
            ch[(k + sc[2]) % 12] += 0.4;
            ch[(k + 7) % 12] += 0.6;
            key_result r = key_estimate(ch);
            CHECK_INT(r.tonic, k);
            CHECK_INT(r.major, !mode);
            CHECK_INT(r.key_tonic, k);
            CHECK_INT(r.key_major, !mode);
            double bmaj = -2, bmin = -2;
            for (int j = 0; j < 12; j++) {
                bmaj = fmax(bmaj, pearson(ch, kk_maj, j));
                bmin = fmax(bmin, pearson(ch, kk_min, j));
            }
            CHECK_NEAR(r.mode_confidence, (bmaj - bmin + 1) / 2, 1e-12);
            CHECK_INT(r.major, bmaj >= bmin);
            for (int p = 0; p < 4; p++) {
                int t, m;
                key_best(ch, p, &t, &m);
                CHECK_INT(t, k);
                CHECK_INT(m, !mode);
            }
        }
    /* key_peak_chroma: a C major triad (C4 E4 G4, bins of a 2048-point FFT at 22,050 Hz, each
     * peak spread over 3 bins) at tuning 0 and at +0.3 semitone with the tones raised alike. */
    for (int tu = 0; tu < 2; tu++) {
        float mag[1025] = {0};
        static const double hz[3] = {261.63, 329.63, 392.0};
        double tuning = tu ? 0.3 : 0;
        for (int i = 0; i < 3; i++) {
            double b = hz[i] * pow(2, tuning / 12) * 2048 / 22050;
            int k = (int)lround(b);
            mag[k] = 1.0f - 0.1f * i;
            mag[k - 1] = mag[k + 1] = 0.3f;
        }
        double acc[12] = {0};
        CHECK_INT(key_peak_chroma(mag, 1025, 22050, 2048, tuning, acc), 1);
        CHECK_NEAR(acc[0], 1.0, 1e-9);
        CHECK_NEAR(acc[4], 0.9, 1e-6);
        CHECK_NEAR(acc[7], 0.8, 1e-6);
        CHECK_NEAR(acc[1] + acc[2] + acc[3] + acc[5] + acc[6] + acc[8] + acc[9] + acc[10] + acc[11], 0, 1e-12);
    }
    {
        float silent[1025] = {0};
        double acc[12] = {0};
        CHECK_INT(key_peak_chroma(silent, 1025, 22050, 2048, 0, acc), 0);
    }
    double flat[12];
    for (int i = 0; i < 12; i++)
        flat[i] = 0.3;
    key_result r = key_estimate(flat);
    CHECK_INT(r.tonic, -1);
    CHECK_INT(r.key_tonic, -1);
    CHECK_NEAR(r.mode_confidence, 0.5, 0);

    TEST_DONE();
}
