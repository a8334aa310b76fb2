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
#include "core/paths.h"
#include "jobs/models.h"
#include "mus2pic.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mus2pic serve [options]\n\n"
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
               "  --compute-threads N   threads the image engine uses (default: every core)\n"
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

static int int_arg(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "mus2pic serve: %s needs an integer from %d to %d\n", opt, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    server_config cfg = server_default_config();
    char *specs[SERVER_MAX_MODELS] = {0};
    int upload_mb = 100, cache_mb = 0, web_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1, bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host") && v) {
            cfg.host = v;
        } else if (!strcmp(a, "--port")) {
            bad = int_arg(a, v, 0, 65535, &cfg.port);
        } else if (!strcmp(a, "--data") && v) {
            cfg.data_dir = v;
        } else if (!strcmp(a, "--store") && v) {
            cfg.store_url = v;
        } else if (!strcmp(a, "--no-worker")) {
            cfg.no_worker = 1;
            used = 0;
        } else if (!strcmp(a, "--name") && v) {
            cfg.worker_name = v;
        } else if (!strcmp(a, "--kinds") && v) {
            cfg.kinds = (strstr(v, "generate") ? 2 : 0) | (strstr(v, "analyze") ? 1 : 0);
            if (!cfg.kinds || strspn(v, "generatalyz,") != strlen(v)) {
                fprintf(stderr, "mus2pic serve: --kinds '%s': use generate, analyze or "
                                "generate,analyze\n",
                        v);
                bad = 1;
            }
        } else if (!strcmp(a, "--lease-s")) {
            int lease = 0;
            bad = int_arg(a, v, 1, 3600, &lease);
            cfg.lease_ms = lease * 1000;
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
            bad = int_arg(a, v, 4, 4096, &cfg.threads);
        } else if (!strcmp(a, "--compute-threads")) {
            bad = int_arg(a, v, 1, 1024, &cfg.compute_threads);
        } else if (!strcmp(a, "--dtype") && v) {
            if (!strcmp(v, "f32") || !strcmp(v, "bf16")) {
                cfg.compute_dtype = strcmp(v, "bf16") ? M2P_DTYPE_F32 : M2P_DTYPE_BF16;
            } else {
                fprintf(stderr, "mus2pic serve: --dtype '%s' must be f32 or bf16\n", v);
                bad = 1;
            }
            if (!bad && cfg.compute_dtype == M2P_DTYPE_BF16 && !m2p_system_info_get().bf16) {
                fprintf(stderr, "mus2pic serve: --dtype bf16 needs a CPU with AVX512-BF16 or "
                                "AMX; this one has neither (use f32)\n");
                bad = 1;
            }
        } else if (!strcmp(a, "--model-memory-gb")) {
            if (model_cache_parse_gb(v, &cfg.model_budget)) {
                fprintf(stderr, "mus2pic serve: --model-memory-gb needs GiB from 0 (no limit) to "
                                "65536, e.g. 12 or 0.5\n");
                bad = 1;
            }
        } else if (!strcmp(a, "--max-ws")) {
            bad = int_arg(a, v, 1, 4000, &cfg.max_ws);
        } else if (!strcmp(a, "--workers")) {
            bad = int_arg(a, v, 1, 15, &cfg.analysis_workers);
        } else if (!strcmp(a, "--max-queue")) {
            bad = int_arg(a, v, 1, 100000, &cfg.max_queued);
        } else if (!strcmp(a, "--max-upload-mb")) {
            bad = int_arg(a, v, 1, 4096, &upload_mb);
        } else if (!strcmp(a, "--audio-cache-mb")) {
            bad = int_arg(a, v, 1, 1 << 20, &cache_mb);
        } else if (!strcmp(a, "--max-variations")) {
            bad = int_arg(a, v, 4, 8, &cfg.max_variations);
            if (!bad && cfg.max_variations != 4 && cfg.max_variations != 8) {
                fprintf(stderr, "mus2pic serve: --max-variations is 4 or 8\n");
                bad = 1;
            }
        } else if (!strcmp(a, "--model") && v) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "mus2pic serve: --model takes NAME=DIR (e.g. lcm=./models/lcm)\n");
                bad = 1;
            } else if (cfg.n_models == SERVER_MAX_MODELS) {
                fprintf(stderr, "mus2pic serve: at most %d --model options\n", SERVER_MAX_MODELS);
                bad = 1;
            } else {
                char *name = strndup(v, (size_t)(eq - v));
                specs[cfg.n_models] = name;
                cfg.model_names[cfg.n_models] = name;
                cfg.model_refs[cfg.n_models] = eq + 1;
                cfg.n_models++;
            }
        } else if (!strcmp(a, "--offline")) {
            cfg.genre_offline = 1;
            used = 0;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            m2p_log_set_level(M2P_LOG_INFO);
            used = 0;
        } else {
            fprintf(stderr, "mus2pic serve: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            bad = 1;
        }
        if (bad) {
            for (int k = 0; k < cfg.n_models; k++)
                free(specs[k]);
            return 2;
        }
        i += used;
    }
    if (!cfg.store_url && getenv("MUS2PIC_STORE") && *getenv("MUS2PIC_STORE"))
        cfg.store_url = getenv("MUS2PIC_STORE");
    cfg.max_upload = (size_t)upload_mb << 20;
    cfg.audio_cache_limit = (int64_t)cache_mb << 20;
    /* The page comes from the installed share/mus2pic/web (or the source tree for build/mus2pic). */
    static char web_dir[4096];
    if (!web_given) {
        if (m2p_find_web_dir(web_dir, sizeof web_dir)) {
            fprintf(stderr, "mus2pic serve: %s\n", m2p_errmsg());
            for (int k = 0; k < cfg.n_models; k++)
                free(specs[k]);
            return 1;
        }
        cfg.web_dir = web_dir;
    }

    /* SIGINT/SIGTERM are blocked here, so every thread the server starts inherits the mask and
     * only sigwait below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = NULL;
    int rc = server_start(&cfg, &s);
    for (int k = 0; k < cfg.n_models; k++)
        free(specs[k]);
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
