/*
 * migrations.h — the one ordered list of schema migrations and the function that applies them.
 *
 * Every module's tables are created by entries in src/store/migrations.c; an entry's version is
 * its position in that list (1-based), recorded in the schema_version table once applied.
 */
#ifndef M2P_STORE_MIGRATIONS_H
#define M2P_STORE_MIGRATIONS_H

#include <sqlite3.h>

typedef struct store_migration {
    const char *name; /* short description, stored in schema_version */
    const char *sql;  /* one or more statements, run inside the migration's transaction */
} store_migration;

/* The list, in order; *n gets its length. */
const store_migration *store_migrations(int *n);

/* Apply every migration newer than the database's schema_version, all in one IMMEDIATE
 * transaction (so two processes opening a fresh database at once do not both migrate).
 * Returns 0 or a negative M2P_E* code with the message set. */
int store_migrate(sqlite3 *db);

/* The highest applied version (0 for a fresh database), or a negative M2P_E* code. */
int store_schema_version(sqlite3 *db);

#endif
