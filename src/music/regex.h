/*
 * regex.h — a small backtracking regular-expression engine over Unicode code points, for the
 * band/song clean-up patterns of prompt-rules.json (Python 're' semantics: leftmost match,
 * greedy and lazy quantifiers, alternation left to right).
 *
 * Supported: literals and escapes (\s \S \d \w \b \n \t, any escaped punctuation), '.', classes
 * [...] / [^...] with ranges and \s, groups (...) and (?:...), '|', quantifiers * + ? {m,n}
 * (greedy, or lazy with a trailing '?') on single characters/classes, '^' and '$'.
 * Flags: 'I' (case-insensitive, simple case folding) and 'M' (multi-line ^ and $).
 */
#ifndef M2P_MUSIC_REGEX_H
#define M2P_MUSIC_REGEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx rx;

#define RX_MAX_GROUPS 9
/* The largest {m,n} count accepted; larger ones are M2P_EFORMAT. */
#define RX_MAX_REPEAT 65535

/* Compile pattern (UTF-8) with flags ("", "I", "M", "IM"). M2P_EFORMAT on bad syntax. */
int rx_compile(const char *pattern, const char *flags, rx **out);
void rx_free(rx *r);
/* Leftmost match at or after start. 1 found, 0 not, M2P_ENOMEM when the search's memo (one bit
 * per pattern node and subject position) cannot be allocated. g (optional,
 * 2*(RX_MAX_GROUPS+1)) gets start/end of the whole match (g[0], g[1]) and of each group
 * ((size_t)-1 when unset). Time is polynomial: at most nodes x positions node visits. */
int rx_search(const rx *r, const uint32_t *s, size_t n, size_t start, size_t *g);

#endif
