/*
 * song_args.h — what `mus2pic analyze` and `mus2pic prompt` share: the source options
 * (--offset, --duration, --data, --cache, --offline, --ytdlp, --timeout) and running the
 * analysis with a progress bar on stderr when stderr is a terminal.
 */
#ifndef M2P_CLI_SONG_ARGS_H
#define M2P_CLI_SONG_ARGS_H

#include <getopt.h>

#include "mus2pic.h"

typedef struct song_args {
    const char *source;
    double offset_s, duration_s;
    const char *data_dir;  /* store (band/song and genre caches): $MUS2PIC_DATA, else the user's
                              cache folder ($XDG_CACHE_HOME/mus2pic or ~/.cache/mus2pic), else
                              none; never a folder in the current directory unless asked */
    char data_buf[1024];
    const char *cache_dir; /* audio cache; default the fetch default */
    const char *ytdlp;
    int timeout_s;
    int offline;
    int json;
    int quiet;
} song_args;

/* The long options both commands take; codes from SONG_OPT_BASE up. */
enum {
    SONG_OPT_BASE = 1000,
    SONG_OPT_OFFSET = SONG_OPT_BASE,
    SONG_OPT_DURATION,
    SONG_OPT_DATA,
    SONG_OPT_CACHE,
    SONG_OPT_OFFLINE,
    SONG_OPT_YTDLP,
    SONG_OPT_TIMEOUT,
    SONG_OPT_JSON,
    SONG_OPT_QUIET,
    SONG_OPT_END
};
#define SONG_LONG_OPTIONS                                                                          \
    {"offset", required_argument, 0, SONG_OPT_OFFSET},                                             \
        {"duration", required_argument, 0, SONG_OPT_DURATION},                                     \
        {"data", required_argument, 0, SONG_OPT_DATA},                                             \
        {"cache", required_argument, 0, SONG_OPT_CACHE},                                           \
        {"offline", no_argument, 0, SONG_OPT_OFFLINE},                                             \
        {"ytdlp", required_argument, 0, SONG_OPT_YTDLP},                                           \
        {"timeout", required_argument, 0, SONG_OPT_TIMEOUT},                                       \
        {"json", no_argument, 0, SONG_OPT_JSON},                                                   \
    {                                                                                              \
        "quiet", no_argument, 0, SONG_OPT_QUIET                                                    \
    }

#define SONG_OPTIONS_HELP                                                                          \
    "  --offset S          skip the first S seconds (default 5)\n"                                 \
    "  --duration D        30, 60 or full, or seconds (default 60)\n"                              \
    "  --json              print JSON\n"                                                           \
    "  --data DIR          store for cached band/song and genre answers (default\n"               \
    "                      $MUS2PIC_DATA, else ~/.cache/mus2pic)\n"                                \
    "  --cache DIR         audio download cache (default ~/.cache/mus2pic/audio)\n"                \
    "  --offline           no network lookups for the genre\n"                                     \
    "  --ytdlp PATH        the yt-dlp program (default $MUS2PIC_YTDLP or yt-dlp on PATH)\n"        \
    "  --timeout S         download time limit (default 300)\n"                                    \
    "  --quiet             no progress bar\n"

void song_args_init(song_args *a);
/* Handle one of the SONG_OPT_* codes; returns 0, or 2 with a message on stderr. */
int song_args_option(song_args *a, const char *cmd, int code, const char *arg);

/* Run the analysis of a->source (store opened at a->data_dir when possible). Returns 0, or 1
 * with "mus2pic CMD: message" on stderr. */
int song_args_analyze(const song_args *a, const char *cmd, m2p_analysis *out);

#endif
