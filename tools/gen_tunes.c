/*
 * gen_tunes.c — writes the labelled test tunes of tools/midigen.h as MIDI files.
 *
 *   gen_tunes OUT_DIR [N=48] [SEED=1]
 *
 * Writes OUT_DIR/<name>.mid for tunes 0..N-1 and prints a TSV of the labels
 * (name, bpm, tonic, mode, meter, drums, programs, style, progression, soundfont, bars).
 * Render one with: fluidsynth -ni -r 22050 -F x.wav -T wav /usr/share/sounds/sf2/TimGM6mb.sf2 x.mid
 * (tunes with soundfont 1 are meant for FluidR3_GM.sf2).
 */
#include "../tools/midigen.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_tunes OUT_DIR [N=48] [SEED=1]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 48;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    printf("name\tbpm\ttonic\tmode\tmeter\tdrums\tmelody\tchords\tbass\tstyle\tprogression\t"
           "soundfont\tbars\n");
    for (int i = 0; i < n; i++) {
        mg_tune t = mg_tune_make(seed, i, n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.mid", argv[1], t.name);
        if (mg_write_midi(&t, seed, i, path) < 0) {
            fprintf(stderr, "gen_tunes: cannot write %s\n", path);
            return 1;
        }
        printf("%s\t%g\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n", t.name, t.bpm, t.tonic,
               t.major ? "major" : "minor", t.meter, t.drums, t.prog_melody, t.prog_chords,
               t.prog_bass, t.style, t.progression, t.soundfont ? "FluidR3_GM" : "TimGM6mb",
               t.bars);
    }
    return 0;
}
