/*
 * store_admin.h — what `mus2pic store migrate|status` reports about a store: its schema version
 * against this build's, the queue per state and kind, and the workers with their heartbeat.
 */
#ifndef M2P_JOBS_STORE_ADMIN_H
#define M2P_JOBS_STORE_ADMIN_H

#include <stdio.h>

/* Open the store at url (a data folder, sqlite:FILE or postgresql://...; opening applies the
 * migrations under the backend's lock) and write its report to out: the schema version only
 * (status 0, `migrate`), or also the queue and the workers (status 1). *current (optional) gets
 * 1 when the schema is the version this build knows. 0, or an M2P_E* code with m2p_errmsg(). */
int jobs_store_report(const char *url, int status, FILE *out, int *current);

#endif
