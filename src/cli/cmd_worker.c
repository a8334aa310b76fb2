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
#include "core/error.h"
#include "jobs/queue.h"
#include "mus2pic.h"

#define WORKER_MAX_MODELS 16

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
            "  --compute-threads N   threads the image engine uses (default: every core)\n"
            "  --dtype f32|bf16      engine compute type (default f32)\n"
            "  --model-memory-gb N   model weights kept loaded, in GiB (default 12; 0 = no\n"
            "                        limit); the least recently used idle model goes first\n"
            "  --data DIR            local files: uploads and audio cache (default ./data)\n"
            "  --offline             no network genre lookups\n"
            "  -v, --verbose         log each job\n");
}

static int int_arg(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "mus2pic worker: %s needs an integer from %d to %d\n", opt, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_kinds(const char *v, int *kinds)
{
    *kinds = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "generate"))
            *kinds |= 1 << JOBS_GENERATE;
        else if (!strcmp(t, "analyze"))
            *kinds |= 1 << JOBS_ANALYZE;
        else
            return -1;
    }
    return *kinds ? 0 : -1;
}

int cmd_worker(int argc, char **argv)
{
    jobs_config jc = jobs_default_config();
    jc.max_attempts = 3;
    const char *store_url = getenv("MUS2PIC_STORE");
    const char *names[WORKER_MAX_MODELS], *refs[WORKER_MAX_MODELS];
    char *owned[WORKER_MAX_MODELS] = {0};
    int n_models = 0, threads = 0, dtype = M2P_DTYPE_F32, lease_s = 30, bad = 0;
    size_t model_budget = (size_t)12 << 30; /* as serve's default */
    char models[512] = "";
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--store") && v) {
            store_url = v;
        } else if (!strcmp(a, "--name") && v) {
            jc.worker_name = v;
        } else if (!strcmp(a, "--kinds") && v) {
            if (parse_kinds(v, &jc.kinds)) {
                fprintf(stderr,
                        "mus2pic worker: --kinds '%s': use generate, analyze or "
                        "generate,analyze\n",
                        v);
                bad = 1;
            }
        } else if (!strcmp(a, "--lease-s")) {
            bad = int_arg(a, v, 1, 3600, &lease_s);
        } else if (!strcmp(a, "--max-attempts")) {
            bad = int_arg(a, v, 1, 100, &jc.max_attempts);
        } else if (!strcmp(a, "--workers")) {
            bad = int_arg(a, v, 1, 15, &jc.analysis_workers);
        } else if (!strcmp(a, "--compute-threads")) {
            bad = int_arg(a, v, 1, 1024, &threads);
        } else if (!strcmp(a, "--dtype") && v) {
            if (strcmp(v, "f32") && strcmp(v, "bf16")) {
                fprintf(stderr, "mus2pic worker: --dtype '%s' must be f32 or bf16\n", v);
                bad = 1;
            } else if (!strcmp(v, "bf16") && !m2p_system_info_get().bf16) {
                fprintf(stderr, "mus2pic worker: --dtype bf16 needs a CPU with AVX512-BF16 or "
                                "AMX; this one has neither (use f32)\n");
                bad = 1;
            }
            dtype = strcmp(v, "bf16") ? M2P_DTYPE_F32 : M2P_DTYPE_BF16;
        } else if (!strcmp(a, "--model-memory-gb")) {
            if (model_cache_parse_gb(v, &model_budget)) {
                fprintf(stderr, "mus2pic worker: --model-memory-gb needs GiB from 0 (no limit) "
                                "to 65536, e.g. 12 or 0.5\n");
                bad = 1;
            }
        } else if (!strcmp(a, "--data") && v) {
            jc.data_dir = v;
        } else if (!strcmp(a, "--model") && v) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "mus2pic worker: --model takes NAME=DIR (e.g. lcm=./models/lcm)\n");
                bad = 1;
            } else if (n_models == WORKER_MAX_MODELS) {
                fprintf(stderr, "mus2pic worker: at most %d --model options\n", WORKER_MAX_MODELS);
                bad = 1;
            } else if (!(owned[n_models] = strndup(v, (size_t)(eq - v)))) {
                fprintf(stderr, "mus2pic worker: out of memory\n");
                bad = 1;
            } else {
                names[n_models] = owned[n_models];
                refs[n_models] = eq + 1;
                size_t len = strlen(models);
                snprintf(models + len, sizeof models - len, "%s%s", len ? "," : "",
                         owned[n_models]);
                n_models++;
            }
        } else if (!strcmp(a, "--offline")) {
            jc.genre_offline = 1;
            used = 0;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            m2p_log_set_level(M2P_LOG_INFO);
            used = 0;
        } else {
            fprintf(stderr, "mus2pic worker: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            bad = 1;
        }
        i += used;
    }
    if (!bad && (!store_url || !*store_url)) {
        fprintf(stderr, "mus2pic worker: --store URL is required (the store the web nodes use, "
                        "e.g. postgresql://mus2pic@db-host/mus2pic)\n");
        bad = 1;
    }
    if (!bad && (jc.kinds & 1 << JOBS_GENERATE) && n_models == 0) {
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
    jc.lease_ms = lease_s * 1000;
    jc.store_url = store_url;
    jc.models = n_models ? models : NULL;

    /* SIGINT/SIGTERM blocked before any thread starts: only sigwait below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (m2p_store_open(store_url, &store) || !(bus = progress_bus_new(1024)) ||
        !(mc = model_cache_new(model_budget))) {
        fprintf(stderr, "mus2pic worker: %s\n", store ? "out of memory" : m2p_errmsg());
        rc = 1;
        goto out;
    }
    model_cache_set_compute(mc, threads, dtype);
    for (int i = 0; i < n_models; i++)
        if (model_cache_add(mc, names[i], refs[i])) {
            fprintf(stderr, "mus2pic worker: --model %s: %s\n", names[i], m2p_errmsg());
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
           m2p_store_where(store), lease_s);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "mus2pic worker: stopping (a running job goes back to the queue)\n");
out:
    jobs_stop(q);
    model_cache_free(mc);
    progress_bus_free(bus);
    m2p_store_close(store);
    for (int i = 0; i < n_models; i++)
        free(owned[i]);
    return rc;
}
