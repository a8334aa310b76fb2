/*
 * song_args.c — the source options shared by `analyze` and `prompt`, and the analysis run
 * behind both: fetch params from the options, the store in --data (opened if it can be; the
 * analysis works without it), and a progress bar by stage on a terminal.
 */
#define _GNU_SOURCE
#include "cli/song_args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"

void song_args_init(song_args *a)
{
    memset(a, 0, sizeof *a);
    m2p_analysis_params d = m2p_analysis_default_params();
    a->offset_s = d.offset_s;
    a->duration_s = d.duration_s;
    /* The lookups' cache goes where caches go (XDG base directories), not into ./data of
     * whatever folder the command runs in. */
    const char *env = getenv("MUS2PIC_DATA"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    a->data_dir = NULL; /* no store: the analysis works without one */
    if (env && *env) {
        a->data_dir = env;
    } else if (xdg && xdg[0] == '/') {
        snprintf(a->data_buf, sizeof a->data_buf, "%s/mus2pic", xdg);
        a->data_dir = a->data_buf;
    } else if (home && home[0] == '/') {
        snprintf(a->data_buf, sizeof a->data_buf, "%s/.cache/mus2pic", home);
        a->data_dir = a->data_buf;
    }
}

static int number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int song_args_option(song_args *a, const char *cmd, int code, const char *arg)
{
    double v;
    switch (code) {
    case SONG_OPT_OFFSET:
        if (number(arg, &v) != 0 || v > 86400) {
            fprintf(stderr, "mus2pic %s: --offset wants seconds from 0 to 86400, not '%s'\n", cmd,
                    arg);
            return 2;
        }
        a->offset_s = v;
        return 0;
    case SONG_OPT_DURATION:
        if (!strcmp(arg, "full")) {
            a->duration_s = M2P_DURATION_FULL;
            return 0;
        }
        if (number(arg, &v) != 0 || v < 1 || v > 86400) {
            fprintf(stderr, "mus2pic %s: --duration wants 30, 60, full or seconds, not '%s'\n", cmd,
                    arg);
            return 2;
        }
        a->duration_s = v;
        return 0;
    case SONG_OPT_DATA:
        a->data_dir = arg;
        return 0;
    case SONG_OPT_CACHE:
        a->cache_dir = arg;
        return 0;
    case SONG_OPT_OFFLINE:
        a->offline = 1;
        return 0;
    case SONG_OPT_YTDLP:
        a->ytdlp = arg;
        return 0;
    case SONG_OPT_TIMEOUT:
        if (number(arg, &v) != 0 || v < 1 || v > 86400) {
            fprintf(stderr, "mus2pic %s: --timeout wants seconds from 1 to 86400, not '%s'\n", cmd,
                    arg);
            return 2;
        }
        a->timeout_s = (int)v;
        return 0;
    case SONG_OPT_JSON:
        a->json = 1;
        return 0;
    case SONG_OPT_QUIET:
        a->quiet = 1;
        return 0;
    }
    return 2;
}

static int on_stage(const char *stage, double fraction, void *ud)
{
    progress *p = ud;
    progress_label(p, stage);
    progress_update(p, fraction < 0 ? 0 : (int64_t)llround(fraction * 100), -1, NULL);
    return 0; /* the CLI never cancels: Ctrl-C ends the process */
}

int song_args_analyze(const song_args *a, const char *cmd, m2p_analysis *out)
{
    m2p_fetch_params fp = m2p_fetch_default_params();
    fp.cache_dir = a->cache_dir;
    fp.ytdlp = a->ytdlp;
    if (a->timeout_s > 0)
        fp.timeout_s = a->timeout_s;
    m2p_analysis_params ap = m2p_analysis_default_params();
    ap.offset_s = a->offset_s;
    ap.duration_s = a->duration_s;
    m2p_genre_params gp = m2p_genre_default_params();
    gp.offline = a->offline;

    m2p_store *store = NULL;
    if (a->data_dir && *a->data_dir && m2p_store_open(a->data_dir, &store) != 0) {
        fprintf(stderr, "mus2pic %s: warning: no cache store (%s); continuing without it\n", cmd,
                m2p_errmsg());
        store = NULL;
    }
    progress *bar = NULL;
    if (!a->quiet) {
        bar = progress_start(stderr, "analyse", 100, PROGRESS_COUNT, 0);
        if (progress_is_tty(bar)) {
            ap.progress = on_stage;
            ap.user_data = bar;
        }
    }
    m2p_cache cache = m2p_store_cache(store);
    int rc = m2p_analyze(a->source, &fp, &ap, &gp, store ? &cache : NULL, out);
    if (bar)
        progress_finish(bar);
    m2p_store_close(store);
    if (rc) {
        fprintf(stderr, "mus2pic %s: %s\n", cmd, m2p_errmsg()[0] ? m2p_errmsg() : m2p_strerror(rc));
        return 1;
    }
    return 0;
}
