/*
 * midigen.h — seeded generator of labelled test tunes as Standard MIDI Files (type 1).
 *
 * Each tune has a known tempo, key, mode and meter: a chord progression that spells the key
 * (I-IV-V-I, I-vi-IV-V, ii-V-I, i-iv-V-i, i-VI-iv-V, ...; minor chords from the harmonic
 * minor, so V is major), a bass on the chord roots, a melody from the scale (chord tones on
 * strong beats, steps in between) and, for most tunes, a GM drum part (kick+snare only, hats on
 * 8ths or 16ths, syncopated kick, four-on-the-floor). Meters 4/4, 3/4 and 6/8 (the 6/8 label
 * is the dotted-quarter beat, as a listener taps it). Instruments are GM programs (piano,
 * strings, guitars, organs, ...). Tempos are spread log-uniformly over 60-200 BPM (6/8: 60-100
 * dotted quarters), keys cover all 24 tonic/mode pairs twice in 48 tunes. Everything follows
 * from (seed, index) through a splitmix64 generator, so the set is reproducible.
 *
 * The file format follows the MIDI 1.0 "Standard MIDI Files 1.0" specification: header MThd
 * (format 1, 2 tracks, 480 ticks per quarter), a tempo/meter track and one track holding all
 * channel events (channel 10 = drums).
 *
 * Header-only (static functions) so that the evaluator (bench/eval_tempo_key.c), the tool
 * (tools/gen_tunes.c) and the tests (tests/audio/test_tempo.c) share one generator.
 */
#ifndef M2P_TOOLS_MIDIGEN_H
#define M2P_TOOLS_MIDIGEN_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MG_TPQ 480

typedef struct mg_tune {
    char name[64];
    double bpm;        /* label: beats a minute (quarter; dotted quarter in 6/8) */
    int tonic;         /* 0..11, C = 0 */
    int major;         /* 1 major, 0 minor */
    int meter;         /* 4 (4/4), 3 (3/4), 6 (6/8) */
    int drums;         /* 0 none, 1 kick+snare, 2 +8th hats, 3 +16th hats, 4 syncopated, 5 four-floor */
    int prog_melody, prog_chords, prog_bass;
    int style;         /* accompaniment: 0 block each beat, 1 held, 2 arpeggio 8ths, 3 oom-pah */
    int progression;   /* index into the mode's progression table */
    int soundfont;     /* 0 TimGM6mb, 1 FluidR3_GM */
    int bars;
} mg_tune;

typedef struct mg_rng {
    uint64_t s;
} mg_rng;

static uint64_t mg_next(mg_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double mg_uniform(mg_rng *r)
{
    return (double)(mg_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
static int mg_int(mg_rng *r, int n)
{
    return (int)(mg_uniform(r) * n);
}

static const int MG_MAJOR[7] = {0, 2, 4, 5, 7, 9, 11};
static const int MG_HMINOR[7] = {0, 2, 3, 5, 7, 8, 11}; /* chords in minor */
static const int MG_NMINOR[7] = {0, 2, 3, 5, 7, 8, 10}; /* melody in minor */
static const int MG_PROG_MAJOR[][4] = {{0, 3, 4, 0}, {0, 5, 3, 4}, {1, 4, 0, 0},
                                       {0, 4, 5, 3}, {0, 3, 0, 4}};
static const int MG_PROG_MINOR[][4] = {{0, 3, 4, 0}, {0, 5, 3, 4}, {0, 3, 0, 4},
                                       {1, 4, 0, 0}, {0, 5, 1, 4}};
static const int MG_PROG_MELODY[] = {0, 0, 1, 4, 24, 25, 48, 49, 16, 19, 40, 73, 56, 11, 71, 65};
static const int MG_PROG_CHORDS[] = {0, 0, 4, 24, 48, 49, 16, 19, 89, 46, 5, 27};
static const int MG_PROG_BASS[] = {32, 33, 34, 35, 43, 38, 0};
#define MG_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The i-th tune of the set drawn from seed. */
static mg_tune mg_tune_make(uint64_t seed, int i, int n)
{
    mg_tune t;
    memset(&t, 0, sizeof t);
    mg_rng r = {seed * 1000003ull + (uint64_t)i * 7919ull + 1};
    for (int k = 0; k < 4; k++)
        mg_next(&r);
    double u = mg_uniform(&r);
    t.meter = u < 0.6 ? 4 : u < 0.85 ? 3 : 6;
    /* stratified log-uniform tempo: tune i in the i-th of n equal log slices */
    int slot = (i * 17) % n; /* decouple tempo order from key order */
    double lo = 60, hi = t.meter == 6 ? 100 : 200;
    double q = (slot + mg_uniform(&r)) / n;
    t.bpm = round(10.0 * lo * pow(hi / lo, q)) / 10.0;
    int key = i % 24;
    t.major = key < 12;
    t.tonic = (key * 7) % 12; /* circle of fifths */
    u = mg_uniform(&r);
    t.drums = u < 0.25 ? 0 : 1 + mg_int(&r, 5);
    t.prog_melody = MG_PROG_MELODY[mg_int(&r, MG_N(MG_PROG_MELODY))];
    t.prog_chords = MG_PROG_CHORDS[mg_int(&r, MG_N(MG_PROG_CHORDS))];
    t.prog_bass = MG_PROG_BASS[mg_int(&r, MG_N(MG_PROG_BASS))];
    t.style = mg_int(&r, 4);
    t.progression = mg_int(&r, t.major ? MG_N(MG_PROG_MAJOR) : MG_N(MG_PROG_MINOR));
    t.soundfont = i % 2;
    double bar_s = t.meter == 6 ? 2 * 60.0 / t.bpm : t.meter * 60.0 / t.bpm;
    t.bars = 4 * (int)ceil(40.0 / bar_s / 4.0);
    if (t.bars < 8)
        t.bars = 8;
    static const char *names[12] = {"c",  "cs", "d",  "ds", "e",  "f",
                                    "fs", "g",  "gs", "a",  "as", "b"};
    snprintf(t.name, sizeof t.name, "g%02d_%s_%s_%g_%d", i, names[t.tonic],
             t.major ? "major" : "minor", t.bpm, t.meter == 6 ? 68 : t.meter * 10 + 4);
    return t;
}

/* --- events and the file --- */
typedef struct mg_ev {
    uint32_t tick;
    uint32_t seq; /* insertion order, for a stable sort */
    uint8_t b[3];
} mg_ev;

typedef struct mg_song {
    mg_ev *ev;
    size_t n, cap;
    int fail;
} mg_song;

static void mg_push(mg_song *s, uint32_t tick, int b0, int b1, int b2)
{
    if (s->fail)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        mg_ev *e = realloc(s->ev, cap * sizeof *e);
        if (!e) {
            s->fail = 1;
            return;
        }
        s->ev = e;
        s->cap = cap;
    }
    mg_ev *e = &s->ev[s->n];
    e->tick = tick;
    e->seq = (uint32_t)s->n;
    e->b[0] = (uint8_t)b0;
    e->b[1] = (uint8_t)b1;
    e->b[2] = (uint8_t)b2;
    s->n++;
}

static void mg_note(mg_song *s, int ch, long on, long dur, int key, int vel)
{
    if (on < 0)
        on = 0;
    if (dur < 10)
        dur = 10;
    if (key < 0 || key > 127)
        return;
    vel = vel < 1 ? 1 : vel > 127 ? 127 : vel;
    mg_push(s, (uint32_t)on, 0x90 | ch, key, vel);
    mg_push(s, (uint32_t)(on + dur), 0x80 | ch, key, 0);
}

static int mg_ev_cmp(const void *a, const void *b)
{
    const mg_ev *x = a, *y = b;
    if (x->tick != y->tick)
        return x->tick < y->tick ? -1 : 1;
    int xo = (x->b[0] & 0xF0) == 0x80, yo = (y->b[0] & 0xF0) == 0x80; /* offs first */
    if (xo != yo)
        return xo ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void mg_vlq(FILE *f, uint32_t v)
{
    uint8_t buf[5];
    int n = 0;
    buf[n++] = v & 0x7F;
    while (v >>= 7)
        buf[n++] = 0x80 | (v & 0x7F);
    while (n--)
        fputc(buf[n], f);
}

static void mg_be32(FILE *f, uint32_t v)
{
    fputc(v >> 24, f);
    fputc((v >> 16) & 0xFF, f);
    fputc((v >> 8) & 0xFF, f);
    fputc(v & 0xFF, f);
}

/* Pitch of scale degree d (any integer) in octave base (MIDI note of the tonic). */
static int mg_degree(const int *scale, int tonic_note, int d)
{
    int o = d >= 0 ? d / 7 : -((-d + 6) / 7);
    int k = d - 7 * o;
    return tonic_note + 12 * o + scale[k];
}

/* Writes the tune as an SMF to path. Returns 0, or -1. */
static int mg_write_midi(const mg_tune *t, uint64_t seed, int index, const char *path)
{
    mg_rng r = {seed * 6364136223846793005ull + (uint64_t)index * 1442695040888963407ull + 7};
    mg_song s = {0};
    const int *cs = t->major ? MG_MAJOR : MG_HMINOR, *ms = t->major ? MG_MAJOR : MG_NMINOR;
    const int(*prog)[4] = t->major ? MG_PROG_MAJOR : MG_PROG_MINOR;
    /* beats: quarter (4/4, 3/4) or dotted quarter (6/8); sub: eighth for 6/8, 16th otherwise */
    int nbeats = t->meter == 6 ? 2 : t->meter;
    long beat = t->meter == 6 ? 3 * MG_TPQ / 2 : MG_TPQ, bar = nbeats * beat;
    int ch_mel = 0, ch_chd = 1, ch_bass = 2, ch_dr = 9;
    mg_push(&s, 0, 0xC0 | ch_mel, t->prog_melody, 0);
    mg_push(&s, 0, 0xC0 | ch_chd, t->prog_chords, 0);
    mg_push(&s, 0, 0xC0 | ch_bass, t->prog_bass, 0);
    mg_push(&s, 0, 0xB0 | ch_mel, 7, 100);
    mg_push(&s, 0, 0xB0 | ch_chd, 7, 80);
    mg_push(&s, 0, 0xB0 | ch_bass, 7, 100);
    int tn = 60 + t->tonic - (t->tonic > 6 ? 12 : 0); /* tonic near middle C */
    int mel = 2 * 7;                                  /* melody degree (two octaves up index) */
    for (int b = 0; b < t->bars; b++) {
        long b0 = (long)b * bar;
        int last = b == t->bars - 1;
        int deg = last ? 0 : prog[t->progression][b % 4];
        int chord[3];
        for (int k = 0; k < 3; k++)
            chord[k] = mg_degree(cs, tn - 12, deg + 2 * k);
        int root = mg_degree(cs, tn - 24, deg);
        if (root < 36)
            root += 12;
        /* accompaniment */
        int jit = 8;
        for (int be = 0; be < nbeats; be++) {
            long on = b0 + be * beat;
            int vel = (be == 0 ? 78 : 66) + mg_int(&r, 10);
            if (last && be > 0)
                break;
            if (t->style == 1 || last) {
                if (be == 0)
                    for (int k = 0; k < 3; k++)
                        mg_note(&s, ch_chd, on + mg_int(&r, jit), bar - 20, chord[k], vel);
            } else if (t->style == 2) {
                int nsub = t->meter == 6 ? 3 : 2;
                for (int q = 0; q < nsub; q++) {
                    int k = (be * nsub + q) % 4;
                    int key = k == 3 ? chord[1] : chord[k] + (k == 0 && q == 0 ? 0 : 0);
                    mg_note(&s, ch_chd, on + q * beat / nsub + mg_int(&r, jit), beat / nsub,
                            key, vel - 6 * (q > 0));
                }
            } else if (t->style == 3 && be > 0) {
                for (int k = 0; k < 3; k++)
                    mg_note(&s, ch_chd, on + mg_int(&r, jit), beat * 2 / 3, chord[k], vel - 8);
            } else if (t->style == 0) {
                for (int k = 0; k < 3; k++)
                    mg_note(&s, ch_chd, on + mg_int(&r, jit), beat * 9 / 10, chord[k], vel);
            }
        }
        /* bass: root on beat 1; fifth or root on the middle beat of 4/4 */
        mg_note(&s, ch_bass, b0, last ? bar : (t->meter == 4 ? 2 * beat : beat) - 20, root, 96);
        if (!last && t->meter == 4)
            mg_note(&s, ch_bass, b0 + 2 * beat, 2 * beat - 20, mg_int(&r, 2) ? root : root + 7,
                    88);
        if (!last && t->meter == 6)
            mg_note(&s, ch_bass, b0 + beat, beat - 20, root + 7, 86);
        /* melody */
        if (last) {
            mg_note(&s, ch_mel, b0, bar, mg_degree(ms, tn, 7), 90);
        } else {
            long sub = t->meter == 6 ? beat / 3 : beat / 2;
            long pos = 0;
            while (pos < bar) {
                int strong = pos % beat == 0;
                double u = mg_uniform(&r);
                long dur = strong ? (u < 0.45 ? beat : u < 0.85 ? sub : 2 * beat) : sub;
                if (pos + dur > bar)
                    dur = bar - pos;
                if (strong) { /* nearest chord tone to the current melody degree */
                    int best = mel, bd = 99;
                    for (int d = mel - 3; d <= mel + 3; d++) {
                        int rel = ((d - deg) % 7 + 7) % 7;
                        if ((rel == 0 || rel == 2 || rel == 4) && abs(d - mel) < bd &&
                            (abs(d - mel) > 0 || mg_uniform(&r) < 0.3)) {
                            bd = abs(d - mel);
                            best = d;
                        }
                    }
                    mel = best;
                } else {
                    mel += mg_uniform(&r) < 0.5 ? 1 : -1;
                }
                if (mel < 10)
                    mel += 2;
                if (mel > 20)
                    mel -= 2;
                /* in minor over V, the raised 7th */
                const int *sc = !t->major && (deg == 4) ? MG_HMINOR : ms;
                int key = mg_degree(sc, tn, mel - 7);
                if (mg_uniform(&r) > 0.08) /* occasional rest */
                    mg_note(&s, ch_mel, b0 + pos + mg_int(&r, 6), dur - 15, key,
                            (strong ? 92 : 80) + mg_int(&r, 12));
                pos += dur;
            }
        }
        /* drums */
        if (t->drums && !last) {
            int kick = 36, snare = 38, hat = 42, ohat = 46;
            if (b % 8 == 0)
                mg_note(&s, ch_dr, b0, 200, 49, 90); /* crash every 8 bars */
            if (t->meter == 6) {
                long e8 = beat / 3;
                for (int k = 0; k < 6; k++) {
                    if (k == 0)
                        mg_note(&s, ch_dr, b0, 100, kick, 110);
                    if (k == 3)
                        mg_note(&s, ch_dr, b0 + 3 * e8, 100, t->drums == 1 ? kick : snare, 100);
                    if (t->drums >= 2)
                        mg_note(&s, ch_dr, b0 + k * e8, 60, hat, k % 3 == 0 ? 80 : 60);
                }
            } else {
                long s16 = beat / 4;
                int n16 = nbeats * 4;
                for (int k = 0; k < n16; k++) {
                    long on = b0 + k * s16;
                    int onbeat = k % 4 == 0, be = k / 4;
                    int is_kick = 0, is_snare = 0;
                    if (t->meter == 3) {
                        is_kick = k == 0 || (t->drums == 4 && k == 10);
                        is_snare = onbeat && be > 0;
                    } else {
                        if (t->drums == 4)
                            is_kick = k == 0 || k == 6 || k == 10 || (k == 11 && b % 2);
                        else if (t->drums == 5)
                            is_kick = onbeat;
                        else
                            is_kick = k == 0 || k == 8;
                        is_snare = k == 4 || k == 12;
                    }
                    if (is_kick)
                        mg_note(&s, ch_dr, on, 100, kick, 108 + mg_int(&r, 10));
                    if (is_snare)
                        mg_note(&s, ch_dr, on, 100, snare, 96 + mg_int(&r, 10));
                    if (t->drums == 2 && k % 2 == 0)
                        mg_note(&s, ch_dr, on, 50, hat, onbeat ? 80 : 62);
                    if (t->drums == 3)
                        mg_note(&s, ch_dr, on, 40, hat, onbeat ? 78 : k % 2 ? 50 : 64);
                    if (t->drums == 4 && k % 2 == 0)
                        mg_note(&s, ch_dr, on, 50, hat, 70);
                    if (t->drums == 5 && k % 4 == 2)
                        mg_note(&s, ch_dr, on, 80, ohat, 70);
                }
            }
        }
    }
    if (s.fail) {
        free(s.ev);
        return -1;
    }
    qsort(s.ev, s.n, sizeof *s.ev, mg_ev_cmp);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(s.ev);
        return -1;
    }
    fwrite("MThd", 1, 4, f);
    mg_be32(f, 6);
    fputc(0, f), fputc(1, f); /* format 1 */
    fputc(0, f), fputc(2, f); /* 2 tracks */
    fputc(MG_TPQ >> 8, f), fputc(MG_TPQ & 0xFF, f);
    /* track 0: tempo and meter */
    double qbpm = t->meter == 6 ? 1.5 * t->bpm : t->bpm;
    uint32_t uspq = (uint32_t)lround(60e6 / qbpm);
    uint8_t t0[] = {0x00, 0xFF, 0x51, 0x03, (uint8_t)(uspq >> 16), (uint8_t)(uspq >> 8),
                    (uint8_t)uspq, 0x00, 0xFF, 0x58, 0x04,
                    (uint8_t)(t->meter == 6 ? 6 : t->meter), (uint8_t)(t->meter == 6 ? 3 : 2),
                    24, 8, 0x00, 0xFF, 0x2F, 0x00};
    fwrite("MTrk", 1, 4, f);
    mg_be32(f, sizeof t0);
    fwrite(t0, 1, sizeof t0, f);
    /* track 1: the notes (length patched afterwards) */
    fwrite("MTrk", 1, 4, f);
    long lenpos = ftell(f);
    mg_be32(f, 0);
    uint32_t prev = 0;
    for (size_t i = 0; i < s.n; i++) {
        mg_vlq(f, s.ev[i].tick - prev);
        prev = s.ev[i].tick;
        int st = s.ev[i].b[0] & 0xF0;
        fwrite(s.ev[i].b, 1, st == 0xC0 ? 2 : 3, f);
    }
    fputc(0, f), fputc(0xFF, f), fputc(0x2F, f), fputc(0, f);
    long end = ftell(f);
    fseek(f, lenpos, SEEK_SET);
    mg_be32(f, (uint32_t)(end - lenpos - 4));
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    free(s.ev);
    return rc;
}

#endif
