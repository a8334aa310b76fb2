/*
 * wcache.h — the on-disk cache of one safetensors file's prepared weights: what the compute ops
 * made of each tensor (bf16 in oneDNN's blocked layout, tensor/ops.h op_prepared), written once
 * by the first load and memory-mapped by every later one, so a fresh process maps instead of
 * converting and the weights sit in memory once (page cache), with no converted anonymous copy.
 *
 * One file per source file and tag under $M2P_WEIGHT_CACHE_DIR, else $XDG_CACHE_HOME/mus2pic/
 * weights, else ~/.cache/mus2pic/weights. A file is used only when its header names the source's
 * size and mtime and the same tag (dtype, oneDNN version, ISA) and its header, index and sampled
 * data check out; anything else (stale, truncated, corrupt) is ignored and rewritten.
 */
#ifndef M2P_MODEL_WCACHE_H
#define M2P_MODEL_WCACHE_H

#include <stddef.h>

typedef struct wcache wcache;

#define WC_MIN_FREE ((unsigned long long)2 << 30) /* bytes the cache never takes from a disk */

/* The cache of source file src for tag: a valid file is mapped (reader), otherwise a new one is
 * started (writer) when the cache folder's file system has room for `expect` bytes (what the
 * entries will take, about) and still keeps WC_MIN_FREE free after them, or
 * $M2P_WEIGHT_CACHE_MIN_FREE bytes. Never an error for the load: NULL in *out when no cache
 * can be used or written (a full disk is said at info level, other reasons at debug level). */
void wcache_open(const char *src, const char *tag, size_t expect, wcache **out);
/* 1 if this cache maps a valid file. */
int wcache_is_reader(const wcache *c);
/* Reader: the entry `key` (layout, data; data is 64-byte aligned and stays mapped while a
 * reference is held, wcache_ref). 0 when found and its sampled checksum matches, else
 * M2P_ENOTFOUND: the file is then marked stale and answers nothing more (the rest of the load
 * converts from the source; commit removes the file). */
int wcache_find(wcache *c, const char *key, const void **layout, size_t *layout_size,
                const void **data, size_t *size);
/* Reader: an entry could not be used after all (layout of another CPU): rewrite at commit. */
void wcache_mark_stale(wcache *c);
/* Writer: appends an entry. A write error turns the writer off (logged), never fails. */
void wcache_add(wcache *c, const char *key, const void *layout, size_t layout_size,
                const void *data, size_t size);
/* The load finished: a writer writes its index and header, syncs and renames the file into
 * place; a reader that met stale entries removes its file so that the next load rewrites it. A
 * reader then has a thread at idle priority read the rest of its file into the page cache, in
 * order, so a cold file comes in while the first steps run instead of window by window inside
 * the load (until then the mapping reads only the pages touched). */
void wcache_commit(wcache *c);
/* References: the opener holds one; each op built on mapped data holds one (wcache_unref is
 * its release callback). The mapping goes when the last is dropped; an uncommitted writer's
 * temporary file is removed then. */
void wcache_ref(wcache *c);
void wcache_unref(void *c);
/* Reader: the mapped pages leave the process's resident set (they stay in the page cache, so
 * the next use maps them again without reading the disk). */
void wcache_drop_pages(wcache *c);
/* The file's path (for messages and tests). */
const char *wcache_path(const wcache *c);

#endif
