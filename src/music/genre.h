/*
 * genre.h — internal genre functions: inference from a feature map, and the network sources
 * (genre_sources.c); normalisation and the raw-genre text forms are ruleset.h's (included).
 */
#ifndef M2P_MUSIC_GENRE_H
#define M2P_MUSIC_GENRE_H

#include <jansson.h>

#include "mus2pic.h"
#include "music/ruleset.h"

/* genre_infer rules on a feature map: "electronic", "rock", "metal", "ambient" or NULL. */
int genre_infer_json(const json_t *features, const char **genre);

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
