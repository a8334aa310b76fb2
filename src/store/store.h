/*
 * store.h — the persistent store behind the public m2p_store handle (SQLite, WAL mode).
 *
 * One list of migrations (src/store/migrations.c) makes the schema; every module's tables are
 * in it. This header has the key/value cache every module shares; the web app's job/result
 * functions live in src/store/jobs_store.h.
 * All functions are safe to call from several threads on one handle (SQLite serialised mode
 * plus a busy timeout).
 */
#ifndef M2P_STORE_STORE_H
#define M2P_STORE_STORE_H

#include <sqlite3.h>
#include <stdint.h>

#include "mus2pic.h"

struct m2p_store {
    sqlite3 *db;
    char *dir;
};

/* Namespaced cache ("band_song", "genre:musicbrainz", "genre:spotify", ...). get: *value is
 * malloc'd, M2P_ENOTFOUND when absent or expired. ttl_s 0 = forever. Never store a network
 * failure. */
int store_cache_get(m2p_store *s, const char *ns, const char *key, char **value);
int store_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                    int64_t ttl_s);

/* Run a statement without results (DDL, simple updates). */
int store_exec(m2p_store *s, const char *sql);

#endif
