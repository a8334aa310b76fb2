/*
 * ytdlp.h — run yt-dlp as a program (argv, never a shell) into a private folder.
 */
#ifndef M2P_AUDIO_YTDLP_H
#define M2P_AUDIO_YTDLP_H

#include <stddef.h>

#include "mus2pic.h"

/* The program to run: params->ytdlp, else $MUS2PIC_YTDLP, else "yt-dlp" (found on PATH). */
const char *ytdlp_program(const m2p_fetch_params *p);

/* Check that prog exists and is executable (searching PATH when it has no '/'). On failure the
 * message says how to install a current yt-dlp. */
int ytdlp_find(const char *prog);

/* Download url's audio into dir: runs
 *   prog --ignore-config --no-playlist -f bestaudio/best --newline --write-info-json
 *        --max-filesize N --socket-timeout S -o DIR/audio.%(ext)s -- URL
 * in its own process group with stdin from /dev/null, parses "[download] 42.0%" lines into
 * p->progress, keeps stderr for the message, kills the whole group on timeout or when the
 * folder outgrows p->max_bytes. On success audio gets the downloaded file and info is filled
 * from the info JSON (id, title, uploader, artist, track, tags, categories, duration). */
int ytdlp_download(const char *prog, const char *url, const char *dir, const m2p_fetch_params *p,
                   char *audio, size_t audio_len, m2p_source_info *info);

/* What yt-dlp knows about url without downloading it: runs
 *   prog --ignore-config --no-playlist --skip-download --dump-single-json --socket-timeout 20
 *        -- URL
 * through the same runner as ytdlp_download (minimal environment, own process group), reads
 * at most max_bytes of JSON, stops the group after timeout_s, and fills info. */
int ytdlp_info(const char *prog, const char *url, int timeout_s, size_t max_bytes,
               m2p_source_info *info);

/* Fill info from yt-dlp's info JSON text. */
int ytdlp_parse_info(const char *text, m2p_source_info *info);

#endif
