/*
 * progress.h — progress for CLI commands: a bar redrawn in place on a terminal, or one plain
 * line per update when the output is not a terminal and lines were asked for (-v), else quiet.
 *
 *   progress *p = progress_start(stderr, "generate", 8, PROGRESS_COUNT, verbose);
 *   progress_update(p, step, -1, "step 3/8");   // total -1: keep the one given at start
 *   progress_finish(p);                          // ends the line, frees p
 */
#ifndef M2P_CLI_PROGRESS_H
#define M2P_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

enum { PROGRESS_COUNT = 0, PROGRESS_BYTES = 1 };

typedef struct progress progress;

/* total <= 0: unknown. lines: print a line per update when out is not a terminal. Never NULL
 * (a quiet progress on allocation failure). */
progress *progress_start(FILE *out, const char *label, int64_t total, int unit, int lines);
/* done so far; total (>= 0) replaces the total; detail (optional) is shown after the numbers.
 * Terminal redraws are limited to ~10 per second, except the final one. */
void progress_update(progress *p, int64_t done, int64_t total, const char *detail);
/* Change the label (e.g. the file being downloaded). */
void progress_label(progress *p, const char *label);
void progress_finish(progress *p);
/* 1 when the bar is drawn on a terminal. */
int progress_is_tty(const progress *p);
/* "1.5 MB" style size into buf. */
const char *progress_bytes(int64_t n, char *buf, size_t len);

#endif
