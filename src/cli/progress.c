/*
 * progress.c — terminal progress bar / plain progress lines for the CLI (see progress.h).
 * On a terminal: "\r<label> [#####.....]  42%  3/8  detail  1.2s" redrawn in place, at most
 * ten times a second; elsewhere (logs, pipes): a line per update only when asked, so scripted
 * runs stay quiet. The elapsed time comes from CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE
#include "cli/progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct progress {
    FILE *out;
    char label[128];
    int64_t total, done;
    int unit, tty, lines, drawn, quiet;
    double t0, last_draw;
    int last_pct;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *progress_bytes(int64_t n, char *buf, size_t len)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", (long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

progress *progress_start(FILE *out, const char *label, int64_t total, int unit, int lines)
{
    static progress quiet = {.quiet = 1};
    progress *p = calloc(1, sizeof *p);
    if (!p)
        return &quiet;
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->unit = unit;
    p->tty = out && isatty(fileno(out));
    p->lines = lines;
    p->t0 = now_s();
    p->last_draw = -1;
    p->last_pct = -1;
    return p;
}

int progress_is_tty(const progress *p)
{
    return p && !p->quiet && p->tty;
}

void progress_label(progress *p, const char *label)
{
    if (p && !p->quiet)
        snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

static void numbers(const progress *p, char *buf, size_t len)
{
    if (p->unit == PROGRESS_BYTES) {
        char a[32], b[32];
        if (p->total > 0)
            snprintf(buf, len, "%s / %s", progress_bytes(p->done, a, sizeof a),
                     progress_bytes(p->total, b, sizeof b));
        else
            snprintf(buf, len, "%s", progress_bytes(p->done, a, sizeof a));
    } else if (p->total > 0) {
        snprintf(buf, len, "%lld/%lld", (long long)p->done, (long long)p->total);
    } else {
        snprintf(buf, len, "%lld", (long long)p->done);
    }
}

void progress_update(progress *p, int64_t done, int64_t total, const char *detail)
{
    if (!p || p->quiet || !p->out)
        return;
    if (total >= 0)
        p->total = total;
    p->done = done;
    double t = now_s();
    int final = p->total > 0 && done >= p->total;
    int pct = p->total > 0 ? (int)(100.0 * (double)done / (double)p->total) : -1;
    char nums[96];
    numbers(p, nums, sizeof nums);
    if (p->tty) {
        if (!final && p->last_draw >= 0 && t - p->last_draw < 0.1)
            return;
        p->last_draw = t;
        char bar[31];
        int width = 30, fill = pct >= 0 ? pct * width / 100 : 0;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        if (pct >= 0)
            fprintf(p->out, "\r\033[K%s [%s] %3d%%  %s%s%s  %.1fs", p->label, bar, pct, nums,
                    detail ? "  " : "", detail ? detail : "", t - p->t0);
        else
            fprintf(p->out, "\r\033[K%s  %s%s%s  %.1fs", p->label, nums, detail ? "  " : "",
                    detail ? detail : "", t - p->t0);
        fflush(p->out);
        p->drawn = 1;
        return;
    }
    if (!p->lines)
        return;
    /* byte counts: a line per 10%, counts (steps): every update */
    if (p->unit == PROGRESS_BYTES && !final) {
        if (pct < 0 ? t - p->last_draw < 2.0 : pct / 10 == p->last_pct / 10)
            return;
    }
    p->last_pct = pct;
    p->last_draw = t;
    fprintf(p->out, "%s: %s%s%s (%.1fs)\n", p->label, nums, detail ? " " : "", detail ? detail : "",
            t - p->t0);
    fflush(p->out);
}

void progress_finish(progress *p)
{
    if (!p || p->quiet)
        return;
    if (p->tty && p->drawn) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}
