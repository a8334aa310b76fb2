/*
 * migrations.h — the ordered lists of schema migrations, one per backend, kept in step.
 *
 * Every module's tables are created by entries in src/store/migrations.c; an entry's version is
 * its position in its list (1-based), recorded in the schema_version table once applied. The
 * SQLite and PostgreSQL lists have the same length and entry N makes the same tables in both
 * (types differ: BLOB/BYTEA, INTEGER/BIGINT ...). The backends apply them (store_migrate).
 */
#ifndef M2P_STORE_MIGRATIONS_H
#define M2P_STORE_MIGRATIONS_H

typedef struct store_migration {
    const char *name; /* short description, stored in schema_version */
    const char *sql;  /* one or more statements, run inside the migration's transaction */
} store_migration;

/* The list of backend (STORE_SQLITE | STORE_POSTGRESQL), in order; *n gets its length. */
const store_migration *store_migrations(int backend, int *n);
/* A database at schema version have (negative: reading it failed, that error) against the n
 * migrations of this build: 0 when versions have+1..n may be applied, else the error (a
 * database written by a newer mus2pic is left alone). */
int store_schema_check(int have, int n);

#endif
