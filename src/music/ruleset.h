/*
 * ruleset.h — the prompt rules as data: the embedded prompt-rules.json, parsed, and the genre
 * normalisation table it holds. The lowest file of the music module's rules: the evaluator
 * (rules.h), the builders (prompt.h) and the genre chain (genre.h) build on it.
 *
 * The rules are ../shared/spec/prompt-rules.json, copied to src/music/prompt-rules.json and
 * embedded at build time into rules_data.c by tools/embed-json.sh, parsed once per process
 * with jansson.
 *
 * Raw genre text (what m2p_genre_find writes and m2p_prompt_build reads) is either one genre
 * ("thrash metal") or, when a source gave a list, that list as a JSON array of strings
 * (["thrash metal","speed metal"]): the order of the list decides ties in normalisation, so it
 * is kept rather than joined.
 */
#ifndef M2P_MUSIC_RULESET_H
#define M2P_MUSIC_RULESET_H

#include <jansson.h>
#include <stddef.h>

/* The embedded copy of prompt-rules.json (rules_data.c, generated). */
extern const char m2p_rules_json[];
extern const size_t m2p_rules_json_len;

/* The parsed rules (process lifetime; never free it). NULL with an error set if the embedded
 * text does not parse, which would be a build bug. */
const json_t *rules_root(void);
/* rules_root()[name] ("v1", "v3", "v4", "genre_normalize", ...), NULL with an error if absent. */
const json_t *rules_section(const char *name);

/* genre_normalize of prompt-rules.json: a key of its table or "abstract" (static storage). */
const char *genre_normalize_json(const json_t *raw);
/* Raw genre text -> a new JSON value: null ("" or NULL), a list (text starting with '[' that
 * parses as an array), else a string. NULL only on allocation failure. */
json_t *genre_raw_parse(const char *raw);
/* A raw-genre list -> text for genre_raw buffers: one element as plain text, more as a JSON
 * array; trailing elements that do not fit in len are dropped. */
void genre_raw_format(const json_t *list, char *out, size_t len);
/* 1 when lower(text) holds key as a whole word (neighbours are not ASCII letters/digits). */
int genre_word_match(const char *lower_text, const char *key);
/* The normalisation table key (not "abstract") that lower_text holds as a whole word, or NULL. */
const char *genre_table_word(const char *lower_text);

#endif
