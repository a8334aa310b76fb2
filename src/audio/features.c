/*
 * features.c — mono samples -> the original app's features (m2p_features_compute).
 *
 * One streaming pass over centred STFT frames (librosa defaults: n_fft 2048, hop 512, periodic
 * Hann, zero padding) computes per frame: RMS, zero crossings, spectral centroid / bandwidth /
 * roll-off / contrast, flux, a 128-band mel power spectrum, chroma (chroma_stft for the original's
 * mode; a spectral-peak chroma for the reported key, key.c), and the harmonic and
 * percussive energies (hpss.c). Only small per-frame rows are kept (the 128 mel bands are the
 * largest: 13 MB for 10 minutes); no full spectrogram is held. A first, sparse pass estimates
 * the tuning for the chroma filterbank (librosa.feature.chroma_stft does the same).
 * The summary formulas (energy, rhythm_stability, valence, arousal, ...) are the original
 * app's, quoted in ../shared/spec/ORIGINAL.md. Silence or under 1 s of audio gives
 * undetermined = 1 with neutral defaults: tempo 0, key_tonic -1, mode_confidence 0.5.
 * A tick (audio.h) every 512 frames reports the fraction done and can cancel.
 */
#include "audio/audio.h"
#include "audio/beats.h"
#include "audio/dsp.h"
#include "audio/hpss.h"
#include "audio/key.h"
#include "audio/spectral.h"
#include "audio/tempo.h"
#include "core/error.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENVELOPE_MAX_POINTS 400
#define TUNING_FRAMES 1000                     /* frames sampled for the tuning estimate */
#define SILENCE_PEAK 1e-4                      /* peak amplitude under -80 dBFS counts as silence */
#define KEY_REPORT_PROFILES KEY_PROF_TEMPERLEY /* chosen by bench/eval_tempo_key */
/* HPSS median filtering is the costly part. Up to HPSS_FULL_FRAMES (30 s) it runs on every
 * frame, as librosa; longer audio is sampled in HPSS_SEGMENTS evenly spaced segments of
 * HPSS_SEG_FRAMES (5 s each, separated with the filter's edge rule), and the harmonic and
 * percussive shares are measured on those 20 s. */
#define HPSS_FULL_FRAMES 1292
#define HPSS_SEGMENTS 4
#define HPSS_SEG_FRAMES 215

m2p_analysis_params m2p_analysis_default_params(void)
{
    m2p_analysis_params p = {0};
    p.offset_s = 5.0;    /* the original skips the first 5 s */
    p.duration_s = 60.0; /* the original page's default */
    return p;
}

const char *m2p_key_name(int pc)
{
    static const char *names[12] = {"C",  "C#", "D",  "D#", "E",  "F",
                                    "F#", "G",  "G#", "A",  "A#", "B"};
    return pc >= 0 && pc < 12 ? names[pc] : "";
}

void m2p_features_free(m2p_features *f)
{
    if (!f)
        return;
    free(f->beats);
    free(f->downbeats);
    free(f->envelope);
    f->downbeats = NULL;
    f->n_downbeats = 0;
    f->beats = NULL;
    f->envelope = NULL;
    f->n_beats = f->n_envelope = 0;
}

static double clip01(double x)
{
    return dsp_clip01(x);
}

/* The original's derived values from the primary ones. */
static void derive(m2p_features *f)
{
    f->energy = clip01((f->raw_energy - 0.01) / 0.29);
    f->pitch_register = clip01((f->brightness - 500.0) / 4500.0);
    f->onset_density = clip01(f->onset_density_raw / 10.0);
    f->dynamic_range = clip01((f->dynamic_range_db - 5.0) / 35.0);
    f->valence_scientific = 0.5 * f->mode_confidence + 0.25 * f->hp_ratio +
                            0.15 * f->pitch_register + 0.10 * (1.0 - f->spectral_flux);
    f->arousal_scientific = 0.35 * f->energy + 0.25 * clip01((f->tempo - 60.0) / 140.0) +
                            0.20 * f->onset_density + 0.10 * f->attack_sharpness +
                            0.10 * f->spectral_flux;
}

static void set_defaults(m2p_features *f)
{
    f->tempo = 0;
    f->key_tonic = -1;
    f->key_major = 1;
    f->is_major_key = 1;
    f->mode_confidence = 0.5;
    f->rhythm_stability = 0.5;
    derive(f);
}

/* librosa.power_to_db(x, ref=1, amin=1e-10, top_db=80) over the whole array, in place. */
static void power_to_db(float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x[i] = 10.0f * log10f(x[i] > 1e-10f ? x[i] : 1e-10f);
        if (x[i] > mx)
            mx = x[i];
    }
    for (size_t i = 0; i < n; i++)
        if (x[i] < mx - 80.0f)
            x[i] = mx - 80.0f;
}

/* 1 when a chroma sum is not flat (a key can be read from it). */
static int chroma_varies(const double *c)
{
    double mn = c[0], mx = c[0];
    for (int i = 1; i < 12; i++) {
        mn = fmin(mn, c[i]);
        mx = fmax(mx, c[i]);
    }
    return mx - mn > 1e-9 * (mx > 0 ? mx : 1);
}

static double mean_f(const float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0;
}

typedef struct work {
    float *frame, *spec, *mag, *prev, *power, *win, *chroma_w;
    float *rms, *zcr, *cen, *bw, *roll, *peak, *valley, *mel, *env;
    double *eh, *ep, *ex, *tmp;
    int *beats;
    hpss *hp;
    dsp_melbank mb;
    spectral_ctx *sc;
    key_tuning kt;
} work;

static void work_free(work *w)
{
    dsp_free(w->frame);
    dsp_free(w->spec);
    free(w->mag);
    free(w->prev);
    free(w->power);
    free(w->win);
    free(w->chroma_w);
    free(w->rms);
    free(w->zcr);
    free(w->cen);
    free(w->bw);
    free(w->roll);
    free(w->peak);
    free(w->valley);
    free(w->mel);
    free(w->env);
    free(w->eh);
    free(w->ep);
    free(w->ex);
    free(w->tmp);
    free(w->beats);
    hpss_free(w->hp);
    dsp_melbank_free(&w->mb);
    free(w->sc);
    key_tuning_free(&w->kt);
}

/* Centred frame t (zero padded) into buf; returns the valid range for crossings. */
static void load_frame(const float *x, int64_t n, int64_t t, float *buf, int *v0, int *v1)
{
    int64_t start = t * DSP_HOP - DSP_NFFT / 2;
    *v0 = -1;
    *v1 = -1;
    for (int i = 0; i < DSP_NFFT; i++) {
        int64_t j = start + i;
        float s = j >= 0 && j < n ? x[j] : 0.0f;
        if (!isfinite(s))
            s = 0;
        buf[i] = s;
        if (j >= 0 && j < n) {
            if (*v0 < 0)
                *v0 = i;
            *v1 = i + 1;
        }
    }
}

static void magnitude(const dsp_fft *fft, const float *frame, const float *win, float *tmp,
                      float *spec, float *mag)
{
    for (int i = 0; i < DSP_NFFT; i++)
        tmp[i] = frame[i] * win[i];
    dsp_fft_run(fft, tmp, spec);
    for (int k = 0; k < DSP_NBINS; k++)
        mag[k] = sqrtf(spec[2 * k] * spec[2 * k] + spec[2 * k + 1] * spec[2 * k + 1]);
}

int audio_features_ticked(const float *x, int64_t n, int sr, m2p_features *out,
                          const audio_tick *tick)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "features: out is NULL");
    memset(out, 0, sizeof *out);
    if (n < 0 || (n > 0 && !x))
        return m2p_error(M2P_EINVAL, "features: no samples");
    if (sr < 4000 || sr > 384000)
        return m2p_error(M2P_EINVAL, "features: sample rate %d Hz out of range 4000..384000", sr);
    out->duration_analyzed = (double)n / sr;
    double fps = (double)sr / DSP_HOP;

    double peak = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i]) && fabs(x[i]) > peak)
            peak = fabs(x[i]);
    int64_t T = 1 + n / DSP_HOP;
    if (T > INT32_MAX / DSP_NMELS)
        return m2p_error(M2P_ETOOBIG, "features: %.0f s of audio is too long",
                         out->duration_analyzed);

    work w = {0};
    int rc = 0;
    w.frame = dsp_alloc(DSP_NFFT);
    w.spec = dsp_alloc(DSP_NFFT + 2);
    float *wtmp = dsp_alloc(DSP_NFFT);
    w.mag = malloc(sizeof(float) * DSP_NBINS);
    w.prev = calloc(DSP_NBINS, sizeof(float));
    w.power = malloc(sizeof(float) * DSP_NBINS);
    w.win = malloc(sizeof(float) * DSP_NFFT);
    w.chroma_w = malloc(sizeof(float) * 12 * DSP_NBINS);
    w.rms = malloc(sizeof(float) * (size_t)T);
    w.zcr = malloc(sizeof(float) * (size_t)T);
    w.cen = malloc(sizeof(float) * (size_t)T);
    w.bw = malloc(sizeof(float) * (size_t)T);
    w.roll = malloc(sizeof(float) * (size_t)T);
    w.peak = malloc(sizeof(float) * (size_t)T * SPECTRAL_NBANDS);
    w.valley = malloc(sizeof(float) * (size_t)T * SPECTRAL_NBANDS);
    w.mel = malloc(sizeof(float) * (size_t)T * DSP_NMELS);
    w.env = malloc(sizeof(float) * (size_t)T);
    w.eh = calloc((size_t)T, sizeof(double));
    w.ep = calloc((size_t)T, sizeof(double));
    w.ex = calloc((size_t)T, sizeof(double));
    w.tmp = malloc(sizeof(double) * (size_t)T);
    w.beats = malloc(sizeof(int) * (size_t)T);
    w.sc = malloc(sizeof *w.sc);
    dsp_fft *fft = dsp_fft_get(DSP_NFFT);
    if (!w.frame || !w.spec || !wtmp || !w.mag || !w.prev || !w.power || !w.win || !w.chroma_w ||
        !w.rms || !w.zcr || !w.cen || !w.bw || !w.roll || !w.peak || !w.valley || !w.mel ||
        !w.env || !w.eh || !w.ep || !w.ex || !w.tmp || !w.beats || !w.sc || !fft ||
        dsp_melbank_init(&w.mb, sr) < 0) {
        rc = m2p_error(M2P_ENOMEM, "features: out of memory for %lld frames", (long long)T);
        goto done;
    }

    if (n < sr || peak < SILENCE_PEAK) {
        /* Too little audio or silence: neutral values, no error. */
        out->undetermined = 1;
        set_defaults(out);
        goto envelope_only;
    }

    dsp_hann(w.win, DSP_NFFT);
    spectral_init(w.sc, sr);
    int v0, v1;

    /* Pass 1 (sparse): tuning for the chroma filterbank. */
    int64_t stride = T / TUNING_FRAMES > 1 ? T / TUNING_FRAMES : 1;
    for (int64_t t = 0; t < T; t += stride) {
        load_frame(x, n, t, w.frame, &v0, &v1);
        magnitude(fft, w.frame, w.win, wtmp, w.spec, w.mag);
        for (int k = 0; k < DSP_NBINS; k++)
            w.power[k] = w.mag[k] * w.mag[k];
        key_tuning_add_frame(&w.kt, w.power, DSP_NBINS, sr, DSP_NFFT);
    }
    double tuning = key_tuning_estimate(&w.kt);
    if (w.kt.failed || dsp_chromabank_init(w.chroma_w, sr, tuning) < 0) {
        rc = m2p_error(M2P_ENOMEM, "features: out of memory");
        goto done;
    }

    /* HPSS segments: [seg_a[i], seg_a[i] + seg_n) */
    int nseg = T <= HPSS_FULL_FRAMES ? 1 : HPSS_SEGMENTS;
    int64_t seg_n = T <= HPSS_FULL_FRAMES ? T : HPSS_SEG_FRAMES, seg_a[HPSS_SEGMENTS];
    for (int i = 0; i < nseg; i++) {
        int64_t a = nseg == 1 ? 0 : (int64_t)((i + 0.5) * (double)T / nseg) - seg_n / 2;
        seg_a[i] = a < 0 ? 0 : a + seg_n > T ? T - seg_n : a;
    }
    int seg = 0;

    /* Pass 2: every frame. */
    double flux_sum = 0, csum[12] = {0}, csum2 = 0, csum1 = 0, psum[12] = {0};
    for (int64_t t = 0; t < T; t++) {
        if (t % 512 == 511 && audio_tick_canceled(tick, 0.9 * (double)t / (double)T)) {
            rc = M2P_ECANCELED;
            goto done;
        }
        load_frame(x, n, t, w.frame, &v0, &v1);
        double e = 0;
        for (int i = 0; i < DSP_NFFT; i++)
            e += (double)w.frame[i] * w.frame[i];
        w.rms[t] = (float)sqrt(e / DSP_NFFT);
        w.zcr[t] = v1 > v0 + 1 ? spectral_zcr(w.frame + v0, v1 - v0) * (v1 - v0) / DSP_NFFT : 0;
        magnitude(fft, w.frame, w.win, wtmp, w.spec, w.mag);
        double ex = 0;
        for (int k = 0; k < DSP_NBINS; k++) {
            w.power[k] = w.mag[k] * w.mag[k];
            ex += w.power[k];
        }
        w.ex[t] = ex;
        spectral_frame_out so;
        spectral_frame(w.sc, w.mag, &so);
        w.cen[t] = so.centroid;
        w.bw[t] = so.bandwidth;
        w.roll[t] = so.rolloff;
        for (int b = 0; b < SPECTRAL_NBANDS; b++) {
            w.peak[t * SPECTRAL_NBANDS + b] = so.peak[b];
            w.valley[t * SPECTRAL_NBANDS + b] = so.valley[b];
        }
        if (t > 0) {
            double d = 0;
            for (int k = 0; k < DSP_NBINS; k++) {
                double q = w.mag[k] - w.prev[k];
                d += q * q;
            }
            flux_sum += sqrt(d);
        }
        memcpy(w.prev, w.mag, sizeof(float) * DSP_NBINS);
        key_peak_chroma(w.mag, DSP_NBINS, sr, DSP_NFFT, tuning, psum);
        dsp_melbank_apply(&w.mb, w.power, w.mel + t * DSP_NMELS);
        /* chroma_stft: filterbank, then each frame scaled to max 1 */
        double ch[12], cmax = 0;
        for (int c = 0; c < 12; c++) {
            const float *wr = w.chroma_w + c * DSP_NBINS;
            float s = 0;
            for (int k = 0; k < DSP_NBINS; k++)
                s += wr[k] * w.power[k];
            ch[c] = s;
            if (s > cmax)
                cmax = s;
        }
        for (int c = 0; c < 12; c++) {
            double v = cmax > FLT_MIN ? ch[c] / cmax : ch[c];
            csum[c] += v;
            csum1 += v;
            csum2 += v * v;
        }
        if (seg < nseg && t == seg_a[seg]) {
            w.hp = hpss_new(DSP_NBINS, seg_n, w.eh + t, w.ep + t);
            if (!w.hp) {
                rc = m2p_error(M2P_ENOMEM, "features: out of memory");
                goto done;
            }
        }
        if (w.hp) {
            hpss_push(w.hp, w.mag);
            if (t + 1 == seg_a[seg] + seg_n) {
                hpss_finish(w.hp);
                hpss_free(w.hp);
                w.hp = NULL;
                seg++;
            }
        }
    }

    /* Energy, spectral shape. */
    out->raw_energy = mean_f(w.rms, (int)T);
    out->brightness = mean_f(w.cen, (int)T);
    out->spectral_bandwidth = mean_f(w.bw, (int)T);
    out->spectral_rolloff = mean_f(w.roll, (int)T);
    out->zero_crossing_rate = mean_f(w.zcr, (int)T);
    out->spectral_flux = T > 1 ? clip01(flux_sum / (double)(T - 1) / 50.0) : 0;
    int nbands = w.sc->n_bands;
    if (nbands > 0) {
        /* power_to_db over the whole peak and valley arrays (bands beyond Nyquist unused) */
        for (int64_t t = 0; t < T; t++)
            for (int b = nbands; b < SPECTRAL_NBANDS; b++)
                w.peak[t * SPECTRAL_NBANDS + b] = w.valley[t * SPECTRAL_NBANDS + b] =
                    w.peak[t * SPECTRAL_NBANDS];
        power_to_db(w.peak, (size_t)T * SPECTRAL_NBANDS);
        power_to_db(w.valley, (size_t)T * SPECTRAL_NBANDS);
        double cs = 0;
        for (int64_t t = 0; t < T; t++)
            for (int b = 0; b < nbands; b++)
                cs += w.peak[t * SPECTRAL_NBANDS + b] - w.valley[t * SPECTRAL_NBANDS + b];
        out->spectral_contrast = cs / ((double)T * nbands);
    }

    /* Chroma spread and key. */
    double cn = 12.0 * (double)T, cm = csum1 / cn;
    out->chroma_std = sqrt(fmax(0.0, csum2 / cn - cm * cm));
    double cmean[12];
    for (int c = 0; c < 12; c++)
        cmean[c] = csum[c] / (double)T;
    key_result kr = key_estimate(cmean);
    out->is_major_key = kr.major;
    /* The reported key: KEY_REPORT_PROFILES on the spectral-peak chroma (bench/eval_tempo_key,
     * BENCHMARKS.md); the A-S key of the STFT chroma when no frame had a peak. */
    out->key_tonic = kr.key_tonic;
    out->key_major = kr.key_major;
    if (kr.key_tonic >= 0 && chroma_varies(psum))
        key_best(psum, KEY_REPORT_PROFILES, &out->key_tonic, &out->key_major);
    out->mode_confidence = kr.mode_confidence;

    /* MFCC: DCT-II (orthonormal) of the log-power mel spectrum, first 13. */
    power_to_db(w.mel, (size_t)T * DSP_NMELS);
    {
        double dct[M2P_N_MFCC][DSP_NMELS];
        for (int k = 0; k < M2P_N_MFCC; k++)
            for (int m = 0; m < DSP_NMELS; m++)
                dct[k][m] = cos(M_PI * k * (2 * m + 1) / (2.0 * DSP_NMELS)) *
                            sqrt((k == 0 ? 1.0 : 2.0) / DSP_NMELS);
        double s1[M2P_N_MFCC] = {0}, s2[M2P_N_MFCC] = {0};
        for (int64_t t = 0; t < T; t++) {
            const float *mr = w.mel + t * DSP_NMELS;
            for (int k = 0; k < M2P_N_MFCC; k++) {
                double c = 0;
                for (int m = 0; m < DSP_NMELS; m++)
                    c += dct[k][m] * mr[m];
                s1[k] += c;
                s2[k] += c * c;
            }
        }
        for (int k = 0; k < M2P_N_MFCC; k++) {
            out->mfcc_mean[k] = s1[k] / (double)T;
            out->mfcc_std[k] =
                sqrt(fmax(0.0, s2[k] / (double)T - out->mfcc_mean[k] * out->mfcc_mean[k]));
        }
    }

    if (audio_tick_canceled(tick, 0.9)) {
        rc = M2P_ECANCELED;
        goto done;
    }

    /* Onsets, rhythm, tempo, beats. */
    tempo_onset_env(w.mel, (int)T, DSP_NMELS, w.env);
    {
        double m = mean_f(w.env, (int)T), v = 0;
        for (int64_t t = 0; t < T; t++)
            v += (w.env[t] - m) * (w.env[t] - m);
        double cv = sqrt(v / (double)T) / (m + 1e-6);
        out->rhythm_stability = 1.0 - clip01(cv);
        out->attack_sharpness = clip01(cv / 2.0);
    }
    /* Tempo from the drum-band envelope (kick/bass and snare/chord bands, hi-hats left out:
     * tempo_estimate_mel, measured in BENCHMARKS.md); beats tracked on the full envelope. */
    {
        float *be = malloc(sizeof(float) * (size_t)T);
        if (!be) {
            rc = m2p_error(M2P_ENOMEM, "features: out of memory");
            goto done;
        }
        out->tempo = tempo_estimate_mel(w.mel, (int)T, DSP_NMELS, sr, fps, be);
        free(be);
        if (out->tempo < 0) {
            out->tempo = 0;
            rc = m2p_error(M2P_ENOMEM, "features: out of memory estimating the tempo");
            goto done;
        }
    }
    int nb = out->tempo > 0 ? tempo_beats(w.env, (int)T, fps, out->tempo, w.beats) : 0;
    if (nb < 0) {
        rc = m2p_error(M2P_ENOMEM, "features: out of memory in the beat tracker");
        goto done;
    }
    if (nb > 0) {
        out->beats = malloc(sizeof(double) * (size_t)nb);
        if (!out->beats) {
            rc = m2p_error(M2P_ENOMEM, "features: out of memory");
            goto done;
        }
        for (int i = 0; i < nb; i++)
            out->beats[i] = (double)w.beats[i] * DSP_HOP / sr;
        out->n_beats = nb;
        out->beat_confidence = beat_confidence(w.env, (int)T, w.beats, nb);
        int *down = malloc(sizeof(int) * (size_t)nb);
        int nd = down ? beat_downbeats(w.mel, (int)T, DSP_NMELS, sr, w.beats, nb,
                                       &out->beats_per_bar, down)
                      : -1;
        if (nd > 0)
            out->downbeats = malloc(sizeof(double) * (size_t)nd);
        if (nd < 0 || (nd > 0 && !out->downbeats)) {
            free(down);
            rc = m2p_error(M2P_ENOMEM, "features: out of memory finding the downbeats");
            goto done;
        }
        for (int i = 0; i < nd; i++)
            out->downbeats[i] = out->beats[down[i]];
        out->n_downbeats = nd > 0 ? nd : 0;
        free(down);
    }
    out->onset_density_raw = tempo_onset_count(w.env, (int)T) / out->duration_analyzed;

    /* Harmonic / percussive: per-frame RMS split by the masked spectral energy (Parseval),
     * on the HPSS frames; mean(RMS_h) is scaled from those frames to the whole. */
    {
        double hs = 0, ps = 0, xs = 0;
        for (int i = 0; i < nseg; i++)
            for (int64_t t = seg_a[i]; t < seg_a[i] + seg_n; t++) {
                xs += w.rms[t];
                if (w.ex[t] <= 0)
                    continue;
                hs += w.rms[t] * sqrt(w.eh[t] / w.ex[t]);
                ps += w.rms[t] * sqrt(w.ep[t] / w.ex[t]);
            }
        double scale = xs > 0 ? out->raw_energy / xs : 0;
        hs *= scale;
        ps *= scale;
        out->harmonicity = clip01(hs / (out->raw_energy + 1e-6));
        out->hp_ratio = clip01(hs / (ps + 1e-6) / 3.0);
    }

    /* Dynamic range: 95th - 5th percentile of RMS in dB (amplitude_to_db, top_db 80). */
    {
        double mx = -INFINITY;
        for (int64_t t = 0; t < T; t++) {
            w.tmp[t] = 20.0 * log10(w.rms[t] > 1e-5f ? w.rms[t] : 1e-5);
            mx = fmax(mx, w.tmp[t]);
        }
        for (int64_t t = 0; t < T; t++)
            w.tmp[t] = fmax(w.tmp[t], mx - 80.0);
        double p95 = dsp_percentile(w.tmp, (int)T, 95), p5 = dsp_percentile(w.tmp, (int)T, 5);
        out->dynamic_range_db = p95 - p5;
    }
    derive(out);

envelope_only:
    if (out->undetermined) {
        for (int64_t t = 0; t < T; t++) {
            int a, b;
            load_frame(x, n, t, w.frame, &a, &b);
            double e = 0;
            for (int i = 0; i < DSP_NFFT; i++)
                e += (double)w.frame[i] * w.frame[i];
            w.rms[t] = (float)sqrt(e / DSP_NFFT);
        }
    }
    {
        int64_t per = (T + ENVELOPE_MAX_POINTS - 1) / ENVELOPE_MAX_POINTS;
        int ne = (int)((T + per - 1) / per);
        out->envelope = malloc(sizeof(float) * (size_t)ne);
        if (!out->envelope) {
            rc = m2p_error(M2P_ENOMEM, "features: out of memory");
            goto done;
        }
        double emax = 0;
        for (int i = 0; i < ne; i++) {
            double s = 0;
            int64_t a = i * per, b = a + per < T ? a + per : T;
            for (int64_t t = a; t < b; t++)
                s += (double)w.rms[t] * w.rms[t];
            out->envelope[i] = (float)sqrt(s / (double)(b - a));
            emax = fmax(emax, out->envelope[i]);
        }
        for (int i = 0; i < ne; i++)
            out->envelope[i] = emax > 1e-9 ? (float)(out->envelope[i] / emax) : 0.0f;
        out->n_envelope = ne;
        out->envelope_hop_s = (double)per * DSP_HOP / sr;
    }

done:
    dsp_free(wtmp);
    work_free(&w);
    if (rc)
        m2p_features_free(out);
    return rc;
}

int m2p_features_compute(const float *x, int64_t n, int sr, m2p_features *out)
{
    return audio_features_ticked(x, n, sr, out, NULL);
}
