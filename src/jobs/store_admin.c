/*
 * store_admin.c — the report of `mus2pic store migrate|status` (store_admin.h), so the CLI
 * reads the store's schema, queue and workers through jobs: the store's own calls
 * (store_schema_version, store_queue_depth, store_workers_list) stay below this module.
 */
#include "jobs/store_admin.h"

#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "store/jobs_store.h"
#include "store/migrations.h"
#include "store/store.h"

int jobs_store_report(const char *url, int status, FILE *out, int *current)
{
    if (current)
        *current = 0;
    m2p_store *s = NULL;
    /* Opening applies the migrations (under the backend's lock), so migrate is an open. */
    int rc = m2p_store_open(url, &s);
    if (rc)
        return rc;
    int known;
    store_migrations(store_url_kind(url), &known);
    int version = store_schema_version(s);
    if (current)
        *current = version == known;
    if (!status) {
        fprintf(out, "%s %s: schema version %d (this build knows %d)\n", store_backend_name(s),
                store_where(s), version, known);
        m2p_store_close(s);
        return 0;
    }
    char *depth = NULL;
    store_worker *w = NULL;
    int n = 0;
    rc = store_queue_depth(s, &depth);
    if (!rc)
        rc = store_workers_list(s, 0, &w, &n);
    if (!rc) {
        fprintf(out, "store: %s %s\nschema version: %d of %d\njobs: %s\nworkers:\n",
                store_backend_name(s), store_where(s), version, known, depth);
        int64_t now = (int64_t)time(NULL) * 1000;
        for (int i = 0; i < n; i++)
            fprintf(out,
                    "  %-24s host %s pid %d kinds %s models %s job %lld last heartbeat %.1f s "
                    "ago\n",
                    w[i].name, w[i].host, w[i].pid, w[i].kinds,
                    w[i].models[0] ? w[i].models : "any", (long long)w[i].job,
                    (double)(now - w[i].seen_ms) / 1000.0);
        if (n == 0)
            fprintf(out, "  (none yet)\n");
    }
    free(depth);
    free(w);
    m2p_store_close(s);
    return rc;
}
