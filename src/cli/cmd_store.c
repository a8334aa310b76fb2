/*
 * cmd_store.c — `mus2pic store migrate|status --store URL`: apply the schema migrations (the
 * first node to start does this anyway), or show the store's schema version, its queue depth
 * per state and kind, and the workers seen with their last heartbeat.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "core/error.h"
#include "mus2pic.h"
#include "store/jobs_store.h"
#include "store/migrations.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mus2pic store migrate|status [--store URL | --data DIR]\n\n"
               "  migrate   apply the schema migrations this build knows (safe to repeat)\n"
               "  status    schema version, jobs per state and kind, workers and their last\n"
               "            heartbeat\n"
               "  --store URL  postgresql://..., sqlite:FILE (or MUS2PIC_STORE)\n"
               "  --data DIR   the data folder of a single-machine install (default ./data)\n");
}

int cmd_store(int argc, char **argv)
{
    const char *action = argc > 1 ? argv[1] : NULL;
    const char *url = getenv("MUS2PIC_STORE"), *data = "data";
    if (!action || !strcmp(action, "--help") || !strcmp(action, "-h")) {
        usage(action ? stdout : stderr);
        return action ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
            url = NULL;
        } else {
            fprintf(stderr, "mus2pic store: unknown or incomplete option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (strcmp(action, "migrate") && strcmp(action, "status")) {
        fprintf(stderr, "mus2pic store: '%s' is not migrate or status\n\n", action);
        usage(stderr);
        return 2;
    }
    m2p_store *s = NULL;
    /* Opening applies the migrations (under the backend's lock), so migrate is an open. */
    if (m2p_store_open(url && *url ? url : data, &s)) {
        fprintf(stderr, "mus2pic store: %s\n", m2p_errmsg());
        return 1;
    }
    int known;
    store_migrations(store_url_kind(url && *url ? url : data), &known);
    int version = store_schema_version(s);
    if (!strcmp(action, "migrate")) {
        printf("%s %s: schema version %d (this build knows %d)\n", store_backend_name(s),
               store_where(s), version, known);
        m2p_store_close(s);
        return version == known ? 0 : 1;
    }
    char *depth = NULL;
    store_worker *w = NULL;
    int n = 0, rc = 0;
    if (store_queue_depth(s, &depth) || store_workers_list(s, 0, &w, &n)) {
        fprintf(stderr, "mus2pic store: %s\n", m2p_errmsg());
        rc = 1;
    } else {
        printf("store: %s %s\nschema version: %d of %d\njobs: %s\nworkers:\n",
               store_backend_name(s), store_where(s), version, known, depth);
        int64_t now = (int64_t)time(NULL) * 1000;
        for (int i = 0; i < n; i++)
            printf("  %-24s host %s pid %d kinds %s models %s job %lld last heartbeat %.1f s "
                   "ago\n",
                   w[i].name, w[i].host, w[i].pid, w[i].kinds, w[i].models[0] ? w[i].models : "any",
                   (long long)w[i].job, (double)(now - w[i].seen_ms) / 1000.0);
        if (n == 0)
            printf("  (none yet)\n");
    }
    free(depth);
    free(w);
    m2p_store_close(s);
    return rc;
}
