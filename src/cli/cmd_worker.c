/*
 * cmd_worker.c — `mus2pic worker`: a process that runs jobs from a shared store and serves
 * nothing. It claims queued jobs it can run (its kinds, its models) with a lease it renews while
 * it works (src/jobs/queue.c), writes results into the store, and sends its progress events to
 * the web nodes through the store (PostgreSQL NOTIFY). SIGINT/SIGTERM: the running job is handed
 * back to the queue at its next step and the process exits 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/node_args.h"
#include "core/error.h"
#include "jobs/queue.h"
#include "mus2pic.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mus2pic worker --store URL --model NAME=DIR ... [options]\n\n"
            "  --store URL           the shared store: postgresql://user@host:port/db or\n"
            "                        postgresql:///db?host=/socket/dir&port=5432, or\n"
            "                        sqlite:FILE on this machine (or MUS2PIC_STORE)\n"
            "  --model NAME=DIR      a model this worker runs, under the name the web nodes use\n"
            "                        (repeatable; generations for other models are left to\n"
            "                        other workers)\n"
            "  --name NAME           the worker's name in job JSON and `store status`\n"
            "                        (default: HOST-PID)\n"
            "  --kinds LIST          generate,analyze (default both)\n"
            "  --lease-s N           a running job's lease; renewed every N/3 s (default 30)\n"
            "  --max-attempts N      a job whose worker died runs at most N times (default 3)\n"
            "  --workers N           analysis threads (default 2)\n"
            "  --compute-threads N   threads the image engine uses (default: OMP_NUM_THREADS or\n"
            "                        every core)\n"
            "  --dtype f32|bf16      engine compute type (default f32)\n"
            "  --model-memory-gb N   model weights kept loaded, in GiB (default 12; 0 = no\n"
            "                        limit); the least recently used idle model goes first\n"
            "  --data DIR            local files: uploads and audio cache (default ./data)\n"
            "  --offline             no network genre lookups\n"
            "  -v, --verbose         log each job\n");
}

int cmd_worker(int argc, char **argv)
{
    jobs_config jc = jobs_default_config();
    jc.max_attempts = 3;
    node_args na = {.cmd = "worker",
                    .store_url = getenv("MUS2PIC_STORE"),
                    .data_dir = jc.data_dir,
                    .kinds = jc.kinds,
                    .lease_s = 30,
                    .workers = jc.analysis_workers,
                    .dtype = M2P_DTYPE_F32,
                    .model_budget = (size_t)12 << 30}; /* as serve's default */
    int bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int shared = node_arg(&na, argc, argv, &i);
        if (shared) {
            bad = shared < 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            node_args_free(&na);
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--max-attempts")) {
            bad = cli_int_arg("worker", a, v, 1, 100, &jc.max_attempts);
            i++;
        } else {
            fprintf(stderr, "mus2pic worker: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            bad = 1;
        }
    }
    const char *store_url = na.store_url;
    char models[512] = "";
    for (int k = 0; k < na.n_models; k++) {
        size_t len = strlen(models);
        snprintf(models + len, sizeof models - len, "%s%s", len ? "," : "", na.model_names[k]);
    }
    jc.worker_name = na.name;
    jc.data_dir = na.data_dir;
    jc.kinds = na.kinds;
    jc.analysis_workers = na.workers;
    jc.genre_offline = na.offline;
    if (!bad && (!store_url || !*store_url)) {
        fprintf(stderr, "mus2pic worker: --store URL is required (the store the web nodes use, "
                        "e.g. postgresql://mus2pic@db-host/mus2pic)\n");
        bad = 1;
    }
    if (!bad && (jc.kinds & 1 << JOBS_GENERATE) && na.n_models == 0) {
        fprintf(stderr, "mus2pic worker: a worker that generates needs --model NAME=DIR (or "
                        "--kinds analyze)\n");
        bad = 1;
    }
    int rc = 0;
    m2p_store *store = NULL;
    progress_bus *bus = NULL;
    model_cache *mc = NULL;
    jobs *q = NULL;
    char name[64];
    if (bad) {
        rc = 2;
        goto out;
    }
    if (!jc.worker_name) {
        char host[48] = "worker";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = 0;
        snprintf(name, sizeof name, "%s-%d", host, (int)getpid());
        jc.worker_name = name;
    }
    jc.lease_ms = na.lease_s * 1000;
    jc.store_url = store_url;
    jc.models = na.n_models ? models : NULL;

    /* SIGINT/SIGTERM blocked before any thread starts: only sigwait below receives them. */
    sigset_t set;
    node_block_signals(&set);

    if (m2p_store_open(store_url, &store) || !(bus = progress_bus_new(1024)) ||
        !(mc = model_cache_new(na.model_budget))) {
        fprintf(stderr, "mus2pic worker: %s\n", store ? "out of memory" : m2p_errmsg());
        rc = 1;
        goto out;
    }
    model_cache_set_compute(mc, na.compute_threads, na.dtype);
    for (int i = 0; i < na.n_models; i++)
        if (model_cache_add(mc, na.model_names[i], na.model_refs[i])) {
            fprintf(stderr, "mus2pic worker: --model %s: %s\n", na.model_names[i], m2p_errmsg());
            rc = 1;
            goto out;
        }
    if (jobs_start(&jc, store, bus, mc, &q)) {
        fprintf(stderr, "mus2pic worker: %s\n", m2p_errmsg());
        rc = 1;
        goto out;
    }
    printf("mus2pic %s: worker %s running %s%s%s jobs from %s (lease %d s)\n", M2P_VERSION,
           jc.worker_name, jc.kinds & 1 << JOBS_GENERATE ? "generate" : "",
           (jc.kinds & 3) == 3 ? "," : "", jc.kinds & 1 << JOBS_ANALYZE ? "analyze" : "",
           m2p_store_where(store), na.lease_s);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "mus2pic worker: stopping (a running job goes back to the queue)\n");
out:
    jobs_stop(q);
    model_cache_free(mc);
    progress_bus_free(bus);
    m2p_store_close(store);
    node_args_free(&na);
    return rc;
}
