/*
 * cmd_serve.c — `mus2pic serve`: parses the options, starts the web app (src/server) and runs
 * until SIGINT or SIGTERM, then stops it cleanly (running jobs are recovered on the next start).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/node_args.h"
#include "core/paths.h"
#include "mus2pic.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mus2pic serve [options]\n\n"
            "  --host H              address to bind (default 127.0.0.1; others need a token)\n"
            "  --port P              port (default 9090)\n"
            "  --data DIR            database, uploads and audio cache (default ./data)\n"
            "  --store URL           the shared store instead of DIR's SQLite file:\n"
            "                        postgresql://user@host/db, sqlite:FILE (MUS2PIC_STORE)\n"
            "  --no-worker           queue and serve only; `mus2pic worker` runs the jobs\n"
            "  --kinds LIST          the jobs this node runs: generate, analyze or both (default)\n"
            "  --name NAME           this node's worker name (default: the host name)\n"
            "  --lease-s N           a running job's lease, renewed while it runs (default 30)\n"
            "  --model NAME=DIR      a model folder under a name (repeatable); MUS2PIC_MODEL\n"
            "                        names one when no --model is given\n"
            "  --token T             access token for /api and /ws (or MUS2PIC_TOKEN)\n"
            "  --allowed-origin O    a web origin (scheme://host[:port]) whose pages may call\n"
            "                        the API besides the server's own (repeatable)\n"
            "  --allow-private-urls  analysis URLs may name loopback or private addresses\n"
            "  --threads N           HTTP worker threads (default: max WebSockets + 1024)\n"
            "  --compute-threads N   threads the image engine uses (default: OMP_NUM_THREADS or\n"
            "                        every core)\n"
            "  --dtype f32|bf16      engine compute type (default f32; bf16 is about twice as\n"
            "                        fast and needs AVX512-BF16 or AMX)\n"
            "  --model-memory-gb N   model weights kept loaded, in GiB (default 12; 0 = no\n"
            "                        limit); the least recently used idle model goes first\n"
            "  --max-ws N            concurrent WebSocket clients (default 256)\n"
            "  --max-variations 4|8  variations per generation (default 4)\n"
            "  --workers N           analysis workers (default 2)\n"
            "  --max-queue N         queued jobs accepted (default 200)\n"
            "  --max-upload-mb N     audio upload limit (default 100)\n"
            "  --audio-cache-mb N    downloaded audio kept, least recently used first\n"
            "                        (default 2048)\n"
            "  --web DIR             the page's folder (default: <prefix>/share/mus2pic/web)\n"
            "  --offline             no network genre lookups (MusicBrainz, Spotify)\n"
            "  -v, --verbose         log requests and jobs\n");
}

_Static_assert(NODE_MAX_MODELS <= SERVER_MAX_MODELS, "serve takes every --model node_arg does");

int cmd_serve(int argc, char **argv)
{
    server_config cfg = server_default_config();
    node_args na = {.cmd = "serve",
                    .data_dir = cfg.data_dir,
                    .kinds = cfg.kinds,
                    .lease_s = cfg.lease_ms / 1000,
                    .workers = cfg.analysis_workers,
                    .compute_threads = cfg.compute_threads,
                    .dtype = cfg.compute_dtype,
                    .model_budget = cfg.model_budget};
    int upload_mb = 100, cache_mb = 0, web_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1, bad = 0, shared = node_arg(&na, argc, argv, &i);
        if (shared) {
            bad = shared < 0;
            used = 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            node_args_free(&na);
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host") && v) {
            cfg.host = v;
        } else if (!strcmp(a, "--port")) {
            bad = cli_int_arg("serve", a, v, 0, 65535, &cfg.port);
        } else if (!strcmp(a, "--no-worker")) {
            cfg.no_worker = 1;
            used = 0;
        } else if (!strcmp(a, "--web") && v) {
            cfg.web_dir = v;
            web_given = 1;
        } else if (!strcmp(a, "--token") && v) {
            cfg.token = v;
        } else if (!strcmp(a, "--allowed-origin") && v) {
            if (cfg.n_origins == SERVER_MAX_ORIGINS) {
                fprintf(stderr, "mus2pic serve: at most %d --allowed-origin options\n",
                        SERVER_MAX_ORIGINS);
                bad = 1;
            } else {
                cfg.allowed_origins[cfg.n_origins++] = v;
            }
        } else if (!strcmp(a, "--allow-private-urls")) {
            cfg.allow_private_urls = 1;
            used = 0;
        } else if (!strcmp(a, "--threads")) {
            bad = cli_int_arg("serve", a, v, 4, 4096, &cfg.threads);
        } else if (!strcmp(a, "--max-ws")) {
            bad = cli_int_arg("serve", a, v, 1, 4000, &cfg.max_ws);
        } else if (!strcmp(a, "--max-queue")) {
            bad = cli_int_arg("serve", a, v, 1, 100000, &cfg.max_queued);
        } else if (!strcmp(a, "--max-upload-mb")) {
            bad = cli_int_arg("serve", a, v, 1, 4096, &upload_mb);
        } else if (!strcmp(a, "--audio-cache-mb")) {
            bad = cli_int_arg("serve", a, v, 1, 1 << 20, &cache_mb);
        } else if (!strcmp(a, "--max-variations")) {
            bad = cli_int_arg("serve", a, v, 4, 8, &cfg.max_variations);
            if (!bad && cfg.max_variations != 4 && cfg.max_variations != 8) {
                fprintf(stderr, "mus2pic serve: --max-variations is 4 or 8\n");
                bad = 1;
            }
        } else {
            fprintf(stderr, "mus2pic serve: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            bad = 1;
        }
        if (bad) {
            node_args_free(&na);
            return 2;
        }
        i += used;
    }
    cfg.store_url = na.store_url;
    cfg.worker_name = na.name;
    cfg.data_dir = na.data_dir;
    cfg.kinds = na.kinds;
    cfg.lease_ms = na.lease_s * 1000;
    cfg.analysis_workers = na.workers;
    cfg.compute_threads = na.compute_threads;
    cfg.compute_dtype = na.dtype;
    cfg.model_budget = na.model_budget;
    cfg.genre_offline = na.offline;
    cfg.n_models = na.n_models;
    for (int k = 0; k < na.n_models; k++) {
        cfg.model_names[k] = na.model_names[k];
        cfg.model_refs[k] = na.model_refs[k];
    }
    if (!cfg.store_url && getenv("MUS2PIC_STORE") && *getenv("MUS2PIC_STORE"))
        cfg.store_url = getenv("MUS2PIC_STORE");
    cfg.max_upload = (size_t)upload_mb << 20;
    cfg.audio_cache_limit = (int64_t)cache_mb << 20;
    /* The page comes from the installed share/mus2pic/web (or the source tree for build/mus2pic).
     */
    static char web_dir[4096];
    if (!web_given) {
        if (m2p_find_web_dir(web_dir, sizeof web_dir)) {
            fprintf(stderr, "mus2pic serve: %s\n", m2p_errmsg());
            node_args_free(&na);
            return 1;
        }
        cfg.web_dir = web_dir;
    }

    /* SIGINT/SIGTERM are blocked here, so every thread the server starts inherits the mask and
     * only sigwait below receives them. */
    sigset_t set;
    node_block_signals(&set);

    server *s = NULL;
    int rc = server_start(&cfg, &s);
    node_args_free(&na);
    if (rc) {
        fprintf(stderr, "mus2pic serve: %s\n", m2p_errmsg());
        return 1;
    }
    printf("mus2pic %s: serving http://%s:%d (data in %s%s%s)%s\n", M2P_VERSION,
           strcmp(cfg.host, "127.0.0.1") ? cfg.host : "localhost", server_port(s), cfg.data_dir,
           cfg.store_url ? ", store " : "", cfg.store_url ? server_store_where(s) : "",
           cfg.no_worker ? ", running no jobs" : "");
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "mus2pic serve: stopping\n");
    server_stop(s);
    return 0;
}
