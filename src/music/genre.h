/*
 * genre.h — internal genre functions: normalisation on a JSON raw-genre value, inference from
 * a feature map, and the network sources (genre_sources.c).
 *
 * Raw genre text (what m2p_genre_find writes and m2p_prompt_build reads) is either one genre
 * ("thrash metal") or, when a source gave a list, that list as a JSON array of strings
 * (["thrash metal","speed metal"]): the order of the list decides ties in normalisation, so it
 * is kept rather than joined.
 */
#ifndef M2P_MUSIC_GENRE_H
#define M2P_MUSIC_GENRE_H

#include <jansson.h>

#include "mus2pic.h"

/* genre_normalize of prompt-rules.json: a key of its table or "abstract" (static storage). */
const char *genre_normalize_json(const json_t *raw);
/* Raw genre text -> a new JSON value: null ("" or NULL), a list (text starting with '[' that
 * parses as an array), else a string. NULL only on allocation failure. */
json_t *genre_raw_parse(const char *raw);
/* A raw-genre list -> text for genre_raw buffers: one element as plain text, more as a JSON
 * array; trailing elements that do not fit in len are dropped. */
void genre_raw_format(const json_t *list, char *out, size_t len);
/* genre_infer rules on a feature map: "electronic", "rock", "metal", "ambient" or NULL. */
int genre_infer_json(const json_t *features, const char **genre);
/* 1 when lower(text) holds key as a whole word (neighbours are not ASCII letters/digits). */
int genre_word_match(const char *lower_text, const char *key);
/* The normalisation table key (not "abstract") that lower_text holds as a whole word, or NULL. */
const char *genre_table_word(const char *lower_text);

/* Network sources. Each returns 0 with *genres a new JSON array (empty = the source has no
 * genre for this band; that answer is cached), or a negative code for a failure that is not
 * cached (network, timeout, 5xx, malformed answer). cache may be NULL. */
int genre_spotify(const char *band, const m2p_genre_params *p, const m2p_cache *cache,
                  json_t **genres);
int genre_musicbrainz(const char *band, const m2p_genre_params *p, const m2p_cache *cache,
                      json_t **genres);
/* MusicBrainz asks for at most one request a second; the original waited 1.1 s. */
#define GENRE_MUSICBRAINZ_INTERVAL_S 1.1
/* Tests only: change the spacing (seconds); returns the previous value. */
double genre_musicbrainz_set_interval(double seconds);

#endif
