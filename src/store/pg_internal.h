/*
 * pg_internal.h — what the PostgreSQL backend's two files (store_pg.c: connection, reconnects,
 * migrations, cache, events; jobs_pg.c: jobs, results, batches, workers) share: running a
 * statement with parameters and the parameter list.
 */
#ifndef M2P_STORE_PG_INTERNAL_H
#define M2P_STORE_PG_INTERNAL_H

#include <libpq-fe.h>

#include "store/store_internal.h"

#define PG_MAX_PARAMS 12

/* Parameters of one statement: text, except bytea given with pgp_bin. */
typedef struct pgp {
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS], fmt[PG_MAX_PARAMS];
    char buf[PG_MAX_PARAMS][24];
    int n;
} pgp;
void pgp_i64(pgp *p, int64_t x);
void pgp_str(pgp *p, const char *x); /* NULL -> SQL NULL */
void pgp_bin(pgp *p, const void *data, size_t n);

/* Run sql with p (may be NULL); *res gets the result (PQclear it) when it returned rows or
 * commands. binary: ask for binary results. Errors: M2P_EBUSY when the server cannot be reached
 * (the store reconnects with backoff on the next call), M2P_EIO otherwise; "what" names the
 * operation in the message. */
int pg_run(m2p_store *s, const char *sql, const pgp *p, int binary, PGresult **res,
           const char *what);
/* Same without a result. *changes (if given) gets the rows changed. */
int pg_cmd(m2p_store *s, const char *sql, const pgp *p, int *changes, const char *what);
int pg_begin(m2p_store *s);
int pg_commit(m2p_store *s);
int pg_rollback(m2p_store *s, int rc);

int64_t pg_i64(const PGresult *r, int row, int col);  /* NULL -> 0 */
char *pg_strdup(const PGresult *r, int row, int col); /* NULL -> NULL; malloc'd */

#endif
