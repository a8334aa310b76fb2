/*
 * json_limit.h — JSON parsing with a nesting limit, for every text that comes from a client or
 * from a stored row a client once sent.
 *
 * jansson parses and dumps recursively, one C stack frame per level; CivetWeb's workers run on
 * small fixed stacks (Debian's libcivetweb is built with 100 KiB), so ~930 nested arrays in a
 * 2 KB body, or ~225 nested objects dumped from a stored job, overflow them. m2p_json_depth
 * pre-scans the bytes (brackets outside strings; no recursion) so deep text is refused before
 * jansson sees it. Nothing this project sends or stores needs more than a few levels.
 */
#ifndef M2P_CORE_JSON_LIMIT_H
#define M2P_CORE_JSON_LIMIT_H

#include <jansson.h>
#include <stddef.h>

/* The deepest nesting accepted: objects and arrays together, the outermost counting 1. */
#define M2P_JSON_MAX_DEPTH 32

/* The deepest nesting of [ and { in text (n bytes), not counting brackets inside strings.
 * Stops counting at max + 1 (so the scan stays linear and cheap on hostile input). */
int m2p_json_depth(const char *text, size_t n, int max);

/* json_loadb that refuses text nested deeper than M2P_JSON_MAX_DEPTH: NULL with err filled
 * ("nested deeper than 32 levels", line and column of the first bracket past it). */
json_t *m2p_json_loadb(const char *text, size_t n, size_t flags, json_error_t *err);
/* The same for a NUL-terminated string; NULL text gives NULL. */
json_t *m2p_json_loads(const char *text, size_t flags, json_error_t *err);

/* jansson 2.14 (Debian 12) ignores a failed allocation while it writes an object's key in
 * json_dumps and returns text with the key missing: invalid JSON. m2p_json_track_alloc() makes
 * jansson allocate through malloc while counting, per thread, the allocations that failed
 * (m2p_json_alloc_failures()); a dump during which the count moved is thrown away. */
void m2p_json_track_alloc(void);
unsigned m2p_json_alloc_failures(void);

#endif
