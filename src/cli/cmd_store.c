/*
 * cmd_store.c — `mus2pic store migrate|status --store URL`: apply the schema migrations (the
 * first node to start does this anyway), or show the store's schema version, its queue depth
 * per state and kind, and the workers seen with their last heartbeat.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "jobs/store_admin.h"
#include "mus2pic.h"

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
    int current = 0;
    if (jobs_store_report(url && *url ? url : data, !strcmp(action, "status"), stdout, &current)) {
        fprintf(stderr, "mus2pic store: %s\n", m2p_errmsg());
        return 1;
    }
    return !strcmp(action, "migrate") && !current ? 1 : 0;
}
