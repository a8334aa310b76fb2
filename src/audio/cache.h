/*
 * cache.h — the audio download cache: one folder per entry, LRU eviction by size.
 *
 *   <cache_dir>/e/<key>/audio.<ext>   the downloaded audio (never partial)
 *   <cache_dir>/e/<key>/info.json     what we know about it (m2p_source_info as JSON)
 *   <cache_dir>/e/<alias> -> <key>    symlink: a direct URL's hash -> its content-hash entry
 *   <cache_dir>/tmp/dl-XXXXXX/        a download in progress (private, mode 0700)
 *   <cache_dir>/locks/<key>.lock      flock'ed while one process downloads <key>
 *   <cache_dir>/.lock                 flock'ed while evicting
 *
 * An entry appears by rename(2) of a finished temporary folder, which is atomic, so readers see
 * a whole entry or none. Using an entry sets its folder's mtime (the LRU clock).
 */
#ifndef M2P_AUDIO_CACHE_H
#define M2P_AUDIO_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "mus2pic.h"

typedef struct audio_cache {
    char dir[1024];
    int64_t limit; /* bytes; <= 0: no limit */
} audio_cache;

/* The shared level (m2p_fetch_params.shared_get / shared_put; many machines): get copies an
 * entry another machine downloaded into this cache (0, with *info and path as
 * audio_cache_get; M2P_ENOTFOUND when there is none or it cannot be had); put offers the entry
 * at path (a failure is logged only). Call get under the key's lock. */
int audio_cache_get_shared(audio_cache *c, const m2p_fetch_params *p, const char *key,
                           m2p_source_info *info, char *path, size_t path_len);
void audio_cache_put_shared(const m2p_fetch_params *p, const char *key, const char *path,
                            const m2p_source_info *info);

/* Create the folders; dir NULL = the default ($XDG_CACHE_HOME/mus2pic/audio,
 * ~/.cache/mus2pic/audio, else ./data/cache). */
int audio_cache_open(audio_cache *c, const char *dir, int64_t limit);

/* A key is safe as a file name: [A-Za-z0-9_.-], not starting with '.', at most 100 chars.
 * Writes the sanitised form of raw (other bytes become '_'). */
void audio_cache_key(const char *raw, char *key, size_t len);

/* Look up key: on a hit, fill info (from info.json, from_cache = 1), write the audio path and
 * touch the entry; M2P_ENOTFOUND on a miss. */
int audio_cache_get(audio_cache *c, const char *key, m2p_source_info *info, char *path,
                    size_t path_len);

/* A fresh private temporary folder inside the cache (same file system as the entries). */
int audio_cache_tmpdir(audio_cache *c, char *out, size_t len);

/* Move audio_file (inside tmpdir) to tmpdir/audio.<ext>, write tmpdir/info.json, delete
 * everything else in tmpdir, and rename tmpdir to the entry key. If another process stored key
 * first, tmpdir is removed and theirs is used. Then evict down to the limit (never key itself).
 * On success path gets the entry's audio file; on failure tmpdir is removed. */
int audio_cache_commit(audio_cache *c, const char *tmpdir, const char *audio_file, const char *key,
                       const m2p_source_info *info, char *path, size_t path_len);

/* Point alias at key (atomic symlink replace). Failure is not an error for the caller. */
int audio_cache_alias(audio_cache *c, const char *alias, const char *key);

/* Exclusive per-key lock (blocks while another process downloads the same key). Returns an fd
 * to pass to audio_cache_unlock, or a negative M2P_E* code. */
int audio_cache_lock(audio_cache *c, const char *key);
void audio_cache_unlock(int fd);

/* Drop least recently used entries until the total is at most the limit; keep is never
 * dropped. Also removes temporary folders older than a day (crashed downloads) and dangling
 * aliases. */
int audio_cache_evict(audio_cache *c, const char *keep);

/* Total bytes of the entries. */
int64_t audio_cache_size(audio_cache *c);

/* rm -r (no symlink following). */
void audio_rmtree(const char *path);

/* Source info <-> JSON (the cache's info.json, with yt-dlp's names; also the "source" object of
 * the analysis JSON). */
json_t *audio_info_json(const m2p_source_info *info);
char *audio_info_to_json(const m2p_source_info *info);
int audio_info_from_json(const char *text, m2p_source_info *info);

#endif
