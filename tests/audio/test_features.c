/*
 * test_features.c — each prompt-relevant feature on synthetic signals with known answers:
 * a 1 kHz sine (centroid, roll-off, bandwidth ~ 1 kHz, low zcr, harmonic), white noise (high
 * zcr and flux, flat chroma, wide spectrum), loud vs quiet (energy), a C major chord (C major)
 * and an A minor chord (A minor), dynamics (a fading tone), the envelope and the helpers.
 */
#include "mus2pic.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define SR 22050
#define PI 3.14159265358979323846

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static float *tone(int n, const double *freqs, int nf, double amp)
{
    float *x = malloc(sizeof *x * (size_t)n);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < nf; k++)
            s += sin(2 * PI * freqs[k] * i / SR);
        x[i] = (float)(amp * s / nf);
    }
    return x;
}

static void compute(const float *x, int n, m2p_features *f)
{
    int rc = m2p_features_compute(x, n, SR, f);
    CHECK_INT(rc, 0);
    CHECK_INT(f->undetermined, 0);
}

int main(void)
{
    const int n = 10 * SR;
    m2p_features f, g;

    /* 1 kHz sine */
    double k1 = 1000;
    float *x = tone(n, &k1, 1, 0.5);
    compute(x, n, &f);
    CHECK_NEAR(f.brightness, 1000, 30);
    CHECK_NEAR(f.spectral_rolloff, 1000, 30);
    CHECK(f.spectral_bandwidth < 150);
    CHECK_NEAR(f.zero_crossing_rate, 2000.0 / SR, 0.002);
    CHECK_NEAR(f.raw_energy, 0.5 / sqrt(2.0), 0.01);
    CHECK_NEAR(f.energy, 1.0, 1e-9); /* clip((0.354 - 0.01) / 0.29) */
    CHECK_NEAR(f.pitch_register, (f.brightness - 500) / 4500, 1e-9);
    CHECK(f.harmonicity > 0.9); /* steady tone: harmonic */
    CHECK(f.hp_ratio > 0.9);
    CHECK(f.spectral_flux < 0.05);
    CHECK(f.dynamic_range_db < 1.0);
    CHECK_NEAR(f.dynamic_range, 0, 1e-9);
    CHECK(f.onset_density_raw < 0.5);
    CHECK(f.n_envelope > 0 && f.n_envelope <= 400);
    CHECK_NEAR(f.envelope_hop_s * f.n_envelope, 10.0, 0.3);
    CHECK_NEAR(f.duration_analyzed, 10.0, 1e-9);
    CHECK(f.spectral_contrast > 15); /* one peak over empty bands */
    double sine_contrast = f.spectral_contrast;
    double sine_flux = f.spectral_flux, sine_zcr = f.zero_crossing_rate;
    double sine_chroma_std = f.chroma_std;
    m2p_features_free(&f);

    /* same sine 20 dB quieter: energy scales, spectral shape does not */
    for (int i = 0; i < n; i++)
        x[i] *= 0.1f;
    compute(x, n, &g);
    CHECK_NEAR(g.raw_energy, 0.05 / sqrt(2.0), 0.002);
    CHECK_NEAR(g.energy, (0.05 / sqrt(2.0) - 0.01) / 0.29, 0.01);
    CHECK_NEAR(g.brightness, 1000, 30);
    m2p_features_free(&g);
    free(x);

    /* white noise */
    x = malloc(sizeof *x * (size_t)n);
    for (int i = 0; i < n; i++)
        x[i] = (float)(0.5 * (2 * urand() - 1));
    compute(x, n, &f);
    CHECK(f.zero_crossing_rate > 0.4); /* ~0.5 for white noise */
    CHECK(f.zero_crossing_rate > 5 * sine_zcr);
    CHECK_NEAR(f.brightness, SR / 4.0, 500); /* flat spectrum: centroid at Nyquist / 2 */
    CHECK(f.spectral_rolloff > 8500);
    CHECK(f.spectral_flux > sine_flux * 5);
    CHECK(f.chroma_std < sine_chroma_std); /* noise spreads over all pitch classes */
    CHECK(f.chroma_std < 0.2);
    CHECK(f.spectral_contrast < sine_contrast - 3);
    CHECK(f.harmonicity < 0.8);
    m2p_features_free(&f);
    free(x);

    /* C major chord (C4 E4 G4 with octave doublings) -> C major */
    double cmaj[] = {261.63, 329.63, 392.00, 523.25, 130.81};
    x = tone(n, cmaj, 5, 0.5);
    compute(x, n, &f);
    CHECK_INT(f.key_tonic, 0);
    CHECK_STR(m2p_key_name(f.key_tonic), "C");
    CHECK_INT(f.is_major_key, 1);
    CHECK(f.mode_confidence > 0.5);
    m2p_features_free(&f);
    free(x);

    /* A minor chord (A3 C4 E4 A4) -> A minor */
    double amin[] = {220.00, 261.63, 329.63, 440.00, 110.00};
    x = tone(n, amin, 5, 0.5);
    compute(x, n, &f);
    CHECK_INT(f.key_tonic, 9);
    CHECK_INT(f.is_major_key, 0);
    CHECK(f.mode_confidence < 0.5);
    m2p_features_free(&f);
    free(x);

    /* A tone fading by 40 dB: a wide dynamic range, envelope from 1 down */
    x = tone(n, &k1, 1, 0.5);
    for (int i = 0; i < n; i++)
        x[i] *= (float)pow(10.0, -2.0 * i / n);
    compute(x, n, &f);
    CHECK_NEAR(f.dynamic_range_db, 36, 3); /* 95th - 5th percentile of a 40 dB linear fade */
    CHECK_NEAR(f.dynamic_range, (f.dynamic_range_db - 5) / 35, 1e-9);
    CHECK(f.envelope[1] > 0.95f); /* [0] holds the zero-padded first frame */
    CHECK(f.envelope[f.n_envelope - 1] < 0.05f);
    m2p_features_free(&f);
    free(x);

    /* Derived values follow the original's formulas. */
    double k2[] = {440, 660};
    x = tone(n, k2, 2, 0.3);
    compute(x, n, &f);
    double v = 0.5 * f.mode_confidence + 0.25 * f.hp_ratio + 0.15 * f.pitch_register +
               0.10 * (1 - f.spectral_flux);
    CHECK_NEAR(f.valence_scientific, v, 1e-12);
    double tc = (f.tempo - 60) / 140;
    tc = tc < 0 ? 0 : tc > 1 ? 1 : tc;
    double a = 0.35 * f.energy + 0.25 * tc + 0.20 * f.onset_density + 0.10 * f.attack_sharpness +
               0.10 * f.spectral_flux;
    CHECK_NEAR(f.arousal_scientific, a, 1e-12);
    CHECK(f.mfcc_mean[0] < 0 && f.mfcc_std[0] >= 0);
    m2p_features_free(&f);
    free(x);

    /* Helpers */
    m2p_analysis_params p = m2p_analysis_default_params();
    CHECK_NEAR(p.offset_s, 5, 0);
    CHECK_NEAR(p.duration_s, 60, 0);
    CHECK_STR(m2p_key_name(6), "F#");
    CHECK_STR(m2p_key_name(10), "A#");
    CHECK_STR(m2p_key_name(12), "");
    m2p_features_free(NULL);
    TEST_DONE();
}
