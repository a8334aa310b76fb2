/*
 * store.h — the persistent store behind the public m2p_store handle: SQLite (a file, WAL mode;
 * the embedded default) or PostgreSQL (shared by many machines), chosen by the URL given to
 * m2p_store_open. Both backends have the same tables and answer the same functions.
 *
 * One list of migrations per backend (src/store/migrations.c) makes the schema. This header has
 * the key/value cache every module shares and a few plain helpers; the web app's job/result
 * functions live in src/store/jobs_store.h.
 * All functions are safe to call from several threads on one handle: each takes the handle's own
 * lock for its whole length (a transaction belongs to the connection, not to the thread).
 */
#ifndef M2P_STORE_STORE_H
#define M2P_STORE_STORE_H

#include <stdint.h>

#include "mus2pic.h"

/* What a store URL names. m2p_store_open accepts:
 *   postgresql://... or postgres://...  a libpq URI (Unix-socket forms such as
 *                                       postgresql:///db?host=/run/x&port=5433&user=u too)
 *   sqlite:PATH                         the SQLite database file PATH
 *   anything else                       a data folder; the database is FOLDER/mus2pic.db */
enum { STORE_SQLITE = 0, STORE_POSTGRESQL = 1 };
int store_url_kind(const char *url);

/* "sqlite" or "postgresql". */
const char *store_backend_name(m2p_store *s);
/* The database file, or the URL without its password (for logs and status). */
const char *store_where(m2p_store *s);

/* Namespaced cache ("band_song", "genre:musicbrainz", "genre:spotify", ...). get: *value is
 * malloc'd, M2P_ENOTFOUND when absent or expired. ttl_s 0 = forever. Never store a network
 * failure. */
int store_cache_get(m2p_store *s, const char *ns, const char *key, char **value);
int store_cache_put(m2p_store *s, const char *ns, const char *key, const char *value,
                    int64_t ttl_s);

/* Run statements without results (DDL, simple updates). */
int store_exec(m2p_store *s, const char *sql);
/* Run a query whose first column of its first row is an integer (M2P_ENOTFOUND: no row). */
int store_scalar(m2p_store *s, const char *sql, int64_t *v);

/* Apply every migration newer than the database's schema version (m2p_store_open already did;
 * a second call finds nothing to do). PostgreSQL: under an advisory lock, so two nodes starting
 * at once do not both migrate. */
int store_migrate(m2p_store *s);
/* The highest applied migration (0 for a fresh database), or a negative M2P_E* code. */
int store_schema_version(m2p_store *s);

/* Progress events for other nodes (PostgreSQL only): the event JSON goes into the events table
 * and its id is announced with NOTIFY m2p_events, 'JOB:ID'. M2P_EUNSUPPORTED on SQLite. */
int store_event_put(m2p_store *s, int64_t job, const char *event, int64_t *id);

/* The other end: a connection of its own that LISTENs on m2p_events and reconnects (with
 * backoff) when the server went away, then delivers the events written meanwhile. Events are
 * handed out in id order from the first connection on. wait: 0 with the next event (*event
 * malloc'd),
 * M2P_ETIMEOUT after timeout_ms without one, M2P_EBUSY while the database is unreachable. */
typedef struct store_listener store_listener;
int store_listener_open(const char *url, store_listener **out);
int store_listener_wait(store_listener *l, int timeout_ms, int64_t *job, char **event);
void store_listener_close(store_listener *l);

/* Shared audio files (PostgreSQL only; M2P_EUNSUPPORTED on SQLite, where every job runs beside
 * the one data folder): the bytes of an uploaded file live in the store under a key (the upload's
 * folder name, "up-<hex>"), so that a worker on another host analyses what a web node received.
 * The bytes go in chunks of STORE_AUDIO_CHUNK (tables audio_files, audio_chunks); put and get
 * stream between a file and the database, so memory stays bounded whatever the file's size.
 * put: the whole file in one transaction, M2P_ETOOBIG over max_bytes (0: no limit); *size gets
 * its length. get: writes path (through path.part and a rename: never half a file),
 * M2P_ENOTFOUND when the key is not stored. delete: 0 also when it was gone already. */
#define STORE_AUDIO_CHUNK (1 << 20)
int store_audio_put(m2p_store *s, const char *key, const char *path, int64_t max_bytes,
                    int64_t *size);
int store_audio_get(m2p_store *s, const char *key, const char *path, int64_t *size);
int store_audio_delete(m2p_store *s, const char *key);
/* Keep the files whose key starts with prefix under max_bytes in all: the oldest go first.
 * *removed (may be NULL) gets how many went. */
int store_audio_trim(m2p_store *s, const char *prefix, int64_t max_bytes, int *removed);

#endif
