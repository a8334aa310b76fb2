/*
 * band_song.h — band and song from a video's metadata (prompt-rules.json "band_song").
 */
#ifndef M2P_MUSIC_BAND_SONG_H
#define M2P_MUSIC_BAND_SONG_H

#include "mus2pic.h"

/* The yt-dlp info fields the rules read; NULL = absent (the rules' defaults apply:
 * title "Unknown", uploader "Unknown Artist", description ""). */
typedef struct band_song_input {
    const char *title, *uploader, *artist, *creator, *track, *description;
} band_song_input;

/* The rules' steps (metadata, title patterns, description, 「」, fallback, clean-ups), minus the
 * clean-up defects (see band_song.c). *band and *song are malloc'd ("" when none). */
int band_song_extract(const band_song_input *in, char **band, char **song);

/* m2p_band_song with the per-video cache: when info->id is set and cache is not NULL, a cached
 * pair (both non-empty) is used, and a found pair with both non-empty is stored (namespace
 * "band_song", key = video id). from_cache (optional) says which happened. */
int band_song_find(const m2p_cache *cache, const m2p_source_info *info, char *band, size_t band_len,
                   char *song, size_t song_len, int *from_cache);

/* The band and song the original's prompt endpoint hands to the builders (prompt-rules.json
 * genre_infer.source_chain.band_song_passed): only when both band_name and song_title are
 * non-empty, each stripped of Python whitespace (so "  " becomes ""). Returns 1 with *band and
 * *song malloc'd, 0 with both NULL when one of them is missing or empty (the caller then uses
 * null, or the video's own pair), or M2P_ENOMEM. */
int band_song_passed(const char *band_name, const char *song_title, char **band, char **song);

#endif
