/*
 * fuzz_server_env.h — for the fuzz targets that need a running server (fuzz_ws, fuzz_validate):
 * one in-process server per fuzzing process on 127.0.0.1 (a free port), with its data folder
 * under $TMPDIR or /tmp (removed at exit), the sd-tiny fixture installed as model "tiny" and no
 * job workers, so requests are validated and queued but nothing runs.
 *
 * The server's own threads allocate while an input runs, so libFuzzer's per-input leak check
 * (a full LeakSanitizer scan whenever mallocs and frees differ) would run on nearly every input:
 * the targets that include this say "fuzz-flags: -detect_leaks=0" (scripts/fuzz passes it on);
 * leaks are still reported when the process exits.
 */
#ifndef M2P_FUZZ_SERVER_ENV_H
#define M2P_FUZZ_SERVER_ENV_H

#include "server/server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static server *fuzz_srv;
static char fuzz_srv_dir[512];

static void fuzz_server_stop(void)
{
    server_stop(fuzz_srv);
    fuzz_srv = NULL;
    if (fuzz_srv_dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_srv_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz: could not remove %s\n", fuzz_srv_dir);
    }
}

/* The server, started on the first call; aborts when it cannot start (nothing to fuzz). */
static server *fuzz_server(void)
{
    if (fuzz_srv)
        return fuzz_srv;
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_srv_dir, sizeof fuzz_srv_dir, "%s/m2p-fuzz-srv-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fuzz_srv_dir))
        abort();
    server_config cfg = server_default_config();
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.data_dir = fuzz_srv_dir;
    cfg.no_worker = 1;
    cfg.max_ws = 4;
    cfg.threads = 16;
    cfg.genre_offline = 1;
    cfg.max_queued = 100000;
    cfg.n_models = 1;
    cfg.model_names[0] = "tiny";
    cfg.model_refs[0] = M2P_FIXTURES "/sd-tiny/model";
    if (server_start(&cfg, &fuzz_srv) != 0) {
        fprintf(stderr, "fuzz: the server did not start: %s\n", m2p_errmsg());
        abort();
    }
    atexit(fuzz_server_stop);
    return fuzz_srv;
}

#endif
