/*
 * cmd_analyze.c — `mus2pic analyze SOURCE`: a song (URL or file) -> features, band, song,
 * genre and the three rule-based prompts; a readable summary, or everything as JSON (--json).
 * Exit status: 0 done, 1 the analysis failed (message on stderr), 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/song_args.h"
#include "mus2pic.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mus2pic analyze SOURCE [options]\n\n"
               "SOURCE is a YouTube (or any yt-dlp) URL, a direct http(s) audio URL, or a file.\n\n"
               "options:\n" SONG_OPTIONS_HELP "  -h, --help          this text\n");
}

static void summary(const m2p_analysis *a)
{
    const m2p_features *f = &a->features;
    const m2p_source_info *in = &a->info;
    printf("Source     %s (%s)%s\n", in->title[0] ? in->title : "?", in->id,
           in->from_cache ? " [no download]" : "");
    if (in->uploader[0])
        printf("Uploader   %s\n", in->uploader);
    printf("Band       %s\n", a->band[0] ? a->band : "(unknown)");
    printf("Song       %s\n", a->song[0] ? a->song : "(unknown)");
    printf("Genre      %s (%s%s%s%s)\n", a->genre, a->genre_source, a->genre_raw[0] ? ": \"" : "",
           a->genre_raw, a->genre_raw[0] ? "\"" : "");
    if (f->undetermined) {
        printf("Features   undetermined (silence or too little audio)\n");
    } else {
        const char *key = f->key_tonic >= 0 ? m2p_key_name(f->key_tonic) : NULL;
        printf("Tempo      %.1f BPM, %d beats\n", f->tempo, f->n_beats);
        if (f->beats_per_bar > 0)
            printf("Bars       %d beats a bar, %d downbeats (beat confidence %.2f)\n",
                   f->beats_per_bar, f->n_downbeats, f->beat_confidence);
        /* The reported key, as --json and the page give it. The original's is_major_key (its
         * own estimator, which the prompt rules read) is named as such when it disagrees. */
        if (key && *key)
            printf("Key        %s %s (mode confidence %.2f)\n", key,
                   f->key_major ? "major" : "minor", f->mode_confidence);
        else
            printf("Key        undetermined\n");
        if (key && *key && !f->is_major_key != !f->key_major)
            printf("           (the prompt rules read the original's is_major_key: %s)\n",
                   f->is_major_key ? "major" : "minor");
        printf("Energy     %.2f   valence %.2f   arousal %.2f\n", f->energy, f->valence_scientific,
               f->arousal_scientific);
        printf("Brightness %.0f Hz   onsets %.2f/s   dynamic range %.1f dB\n", f->brightness,
               f->onset_density_raw, f->dynamic_range_db);
    }
    printf("Analysed   %.1f s\n", f->duration_analyzed);
    printf("Prompt v4  %s\n", a->prompt_v4 ? a->prompt_v4 : "");
    printf("Negative   %s\n", a->negative_v4 ? a->negative_v4 : "");
}

int cmd_analyze(int argc, char **argv)
{
    song_args a;
    song_args_init(&a);
    static const struct option opts[] = {
        SONG_LONG_OPTIONS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?') {
            usage(stderr);
            return 2;
        }
        int rc = song_args_option(&a, "analyze", c, optarg);
        if (rc)
            return rc;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "mus2pic analyze: %s\n\n",
                optind >= argc ? "give one SOURCE (a URL or a file)" : "give only one SOURCE");
        usage(stderr);
        return 2;
    }
    a.source = argv[optind];
    m2p_analysis an;
    if (song_args_analyze(&a, "analyze", &an) != 0)
        return 1;
    int status = 0;
    if (a.json) {
        char *j = m2p_analysis_to_json(&an);
        if (j) {
            puts(j);
            free(j);
        } else {
            fprintf(stderr, "mus2pic analyze: out of memory writing JSON\n");
            status = 1;
        }
    } else {
        summary(&an);
    }
    m2p_analysis_free(&an);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "mus2pic analyze: cannot write the output\n");
        status = 1;
    }
    return status;
}
