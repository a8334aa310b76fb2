/*
 * prompt.h — the prompt builders (V1, V3, V4) on a feature map, for callers that hold features
 * as JSON (the web API receives them posted back by the page) and for m2p_prompt_build.
 */
#ifndef M2P_MUSIC_PROMPT_H
#define M2P_MUSIC_PROMPT_H

#include <jansson.h>

#include "mus2pic.h"

/* version M2P_PROMPT_V1/V3/V4; features: object name -> value (has() tests presence, absent
 * keys take the builder's defaults, a present null/string number is M2P_EINVAL); band/song may
 * be NULL (= ""); raw_genres: NULL/null, a string or an array of strings. *prompt and *neg are
 * malloc'd. */
int prompt_build_json(int version, const json_t *features, const char *band, const char *song,
                      const json_t *raw_genres, char **prompt, char **neg);

/* The m2p_features struct as the rules' feature map: the original analyser's names
 * (tempo, energy, brightness, spectral_rolloff, ..., valence_scientific) plus the names the
 * builders read for the same quantities (spectral_centroid = brightness,
 * zcr = zero_crossing_rate). New reference, NULL on allocation failure. */
json_t *prompt_features_json(const m2p_features *f);

#endif
