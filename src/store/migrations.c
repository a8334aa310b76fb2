/*
 * migrations.c — the schema of the store: ONE ordered list of migrations.
 *
 * To add tables, APPEND one entry at the end of `list` below:
 *
 *     {"jobs: job queue", "CREATE TABLE jobs (...); CREATE INDEX ...;"},
 *
 * That is the whole change. Never edit or reorder an entry that has shipped: a database
 * remembers how many entries it has applied (table schema_version), and on open every newer
 * entry runs, in order, inside one transaction, so a failing migration leaves the database as
 * it was. An entry's version is its 1-based position in the list.
 *
 * The PostgreSQL list (pg_list) mirrors it entry for entry: append to both, in the same commit.
 * PostgreSQL nodes migrate under an advisory lock (store_pg.c), SQLite ones in an IMMEDIATE
 * transaction (store_sqlite.c).
 */
#include "store/migrations.h"

#include "core/error.h"
#include "store/store.h"

static const store_migration list[] = {
    /* 1: the shared key/value cache (band/song by video id, genre answers, ...). Times are
     * Unix milliseconds; expires_ms 0 = never. */
    {"cache: namespaced key/value cache with expiry",
     "CREATE TABLE cache (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
     " PRIMARY KEY (ns, key)) WITHOUT ROWID;"
     "CREATE INDEX cache_expires ON cache (expires_ms) WHERE expires_ms > 0;"},
    /* 2: the web app's job queue, results (PNG bytes + metadata) and batches (jobs_store.c).
     * kind: 0 analyze, 1 generate; state: queued|running|done|failed|canceled. */
    {"jobs, results, batches: the web app's persistent queue and gallery",
     "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,"
     " state TEXT NOT NULL, params TEXT NOT NULL, result TEXT, error TEXT,"
     " attempts INTEGER NOT NULL DEFAULT 0, batch_id INTEGER, batch_index INTEGER NOT NULL"
     " DEFAULT 0, parent_id INTEGER, created_ms INTEGER NOT NULL, started_ms INTEGER,"
     " finished_ms INTEGER);"
     "CREATE INDEX jobs_queue ON jobs (state, kind, id);"
     "CREATE INDEX jobs_batch ON jobs (batch_id, batch_index) WHERE batch_id IS NOT NULL;"
     "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL,"
     " variation INTEGER NOT NULL, seed INTEGER NOT NULL, width INTEGER NOT NULL,"
     " height INTEGER NOT NULL, seconds REAL NOT NULL, png BLOB NOT NULL, meta TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL);"
     "CREATE INDEX results_job ON results (job_id, variation);"
     "CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, params TEXT NOT NULL,"
     " created_ms INTEGER NOT NULL);"},
    /* 3: many machines. A claim is a lease (worker, lease_until_ms) that its worker renews;
     * cancel_requested tells the holder to stop. workers: the heartbeat of each worker node.
     * events: progress events for other nodes (PostgreSQL only; kept for symmetry). There it
     * is UNLOGGED: events are transient (a job's state is in jobs), so writing one waits for no
     * disk flush and a step reaches the other nodes in milliseconds. */
    {"leases, workers, events: jobs run by worker processes on many machines",
     "ALTER TABLE jobs ADD COLUMN worker TEXT;"
     "ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;"
     "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX jobs_lease ON jobs (lease_until_ms) WHERE state = 'running';"
     "CREATE TABLE workers (name TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
     " kinds TEXT NOT NULL, models TEXT NOT NULL, job INTEGER, started_ms INTEGER NOT NULL,"
     " seen_ms INTEGER NOT NULL);"
     "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL,"
     " event TEXT NOT NULL, created_ms INTEGER NOT NULL);"},
    /* 4: shared audio files: an upload's bytes in chunks, for workers on other hosts
     * (PostgreSQL only; kept for symmetry, see store_audio_put). */
    {"audio_files, audio_chunks: uploaded audio shared by every node",
     "CREATE TABLE audio_files (key TEXT PRIMARY KEY, size INTEGER NOT NULL,"
     " chunks INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
     "CREATE TABLE audio_chunks (key TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
     " PRIMARY KEY (key, seq));"},
    /* Append new migrations here (one line each). */
};

/* The same schema in PostgreSQL's types; entry N here is entry N above. */
static const store_migration pg_list[] = {
    {"cache: namespaced key/value cache with expiry",
     "CREATE TABLE cache (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     " created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (ns, key));"
     "CREATE INDEX cache_expires ON cache (expires_ms) WHERE expires_ms > 0;"},
    {"jobs, results, batches: the web app's persistent queue and gallery",
     "CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, kind INTEGER NOT NULL, state TEXT NOT NULL,"
     " params TEXT NOT NULL, result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
     " batch_id BIGINT, batch_index INTEGER NOT NULL DEFAULT 0, parent_id BIGINT,"
     " created_ms BIGINT NOT NULL, started_ms BIGINT, finished_ms BIGINT);"
     "CREATE INDEX jobs_queue ON jobs (state, kind, id);"
     "CREATE INDEX jobs_batch ON jobs (batch_id, batch_index) WHERE batch_id IS NOT NULL;"
     "CREATE TABLE results (id BIGSERIAL PRIMARY KEY, job_id BIGINT NOT NULL,"
     " variation INTEGER NOT NULL, seed BIGINT NOT NULL, width INTEGER NOT NULL,"
     " height INTEGER NOT NULL, seconds DOUBLE PRECISION NOT NULL, png BYTEA NOT NULL,"
     " meta TEXT NOT NULL, created_ms BIGINT NOT NULL);"
     "CREATE INDEX results_job ON results (job_id, variation);"
     "CREATE TABLE batches (id BIGSERIAL PRIMARY KEY, params TEXT NOT NULL,"
     " created_ms BIGINT NOT NULL);"},
    {"leases, workers, events: jobs run by worker processes on many machines",
     "ALTER TABLE jobs ADD COLUMN worker TEXT;"
     "ALTER TABLE jobs ADD COLUMN lease_until_ms BIGINT;"
     "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX jobs_lease ON jobs (lease_until_ms) WHERE state = 'running';"
     "CREATE TABLE workers (name TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
     " kinds TEXT NOT NULL, models TEXT NOT NULL, job BIGINT, started_ms BIGINT NOT NULL,"
     " seen_ms BIGINT NOT NULL);"
     "CREATE UNLOGGED TABLE events (id BIGSERIAL PRIMARY KEY, job_id BIGINT NOT NULL,"
     " event TEXT NOT NULL,"
     " created_ms BIGINT NOT NULL);"
     "CREATE INDEX events_created ON events (created_ms);"},
    {"audio_files, audio_chunks: uploaded audio shared by every node",
     "CREATE TABLE audio_files (key TEXT PRIMARY KEY, size BIGINT NOT NULL,"
     " chunks INTEGER NOT NULL, created_ms BIGINT NOT NULL);"
     "CREATE TABLE audio_chunks (key TEXT NOT NULL, seq INTEGER NOT NULL, data BYTEA NOT NULL,"
     " PRIMARY KEY (key, seq));"
     "ALTER TABLE audio_chunks ALTER COLUMN data SET STORAGE EXTERNAL;"},
};

_Static_assert(sizeof list / sizeof list[0] == sizeof pg_list / sizeof pg_list[0],
               "the SQLite and PostgreSQL migration lists must have the same length");

const store_migration *store_migrations(int backend, int *n)
{
    *n = (int)(sizeof list / sizeof list[0]);
    return backend == STORE_POSTGRESQL ? pg_list : list;
}

int store_schema_check(int have, int n)
{
    if (have < 0)
        return have;
    if (have > n)
        return m2p_error(M2P_EUNSUPPORTED,
                         "store: the database has schema version %d but this build knows only "
                         "%d; it was written by a newer mus2pic",
                         have, n);
    return 0;
}
