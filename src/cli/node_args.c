/*
 * node_args.c — the options `serve` and `worker` share (see node_args.h): one parser, so both
 * commands take the same values with the same ranges and say the same thing about a bad one.
 * The values land in a node_args the command filled with its defaults beforehand.
 */
#define _GNU_SOURCE
#include "cli/node_args.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "jobs/models.h"
#include "jobs/queue.h"
#include "mus2pic.h"

/* "generate", "analyze" or both, comma-separated -> 1 << JOBS_* bits (0: not that). */
static int parse_kinds(const char *v)
{
    int kinds = 0;
    char buf[64];
    if (strlen(v) >= sizeof buf)
        return 0;
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "generate"))
            kinds |= 1 << JOBS_GENERATE;
        else if (!strcmp(t, "analyze"))
            kinds |= 1 << JOBS_ANALYZE;
        else
            return 0;
    }
    return kinds;
}

/* --model NAME=DIR */
static int model_arg(node_args *na, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1]) {
        fprintf(stderr, "mus2pic %s: --model takes NAME=DIR (e.g. lcm=./models/lcm)\n", na->cmd);
        return -1;
    }
    if (na->n_models == NODE_MAX_MODELS) {
        fprintf(stderr, "mus2pic %s: at most %d --model options\n", na->cmd, NODE_MAX_MODELS);
        return -1;
    }
    char *name = strndup(v, (size_t)(eq - v));
    if (!name) {
        fprintf(stderr, "mus2pic %s: out of memory\n", na->cmd);
        return -1;
    }
    na->model_names[na->n_models] = name;
    na->model_refs[na->n_models] = eq + 1;
    na->n_models++;
    return 0;
}

static int dtype_arg(node_args *na, const char *v)
{
    if (strcmp(v, "f32") && strcmp(v, "bf16")) {
        fprintf(stderr, "mus2pic %s: --dtype '%s' must be f32 or bf16\n", na->cmd, v);
        return -1;
    }
    na->dtype = strcmp(v, "bf16") ? M2P_DTYPE_F32 : M2P_DTYPE_BF16;
    if (na->dtype == M2P_DTYPE_BF16 && !m2p_system_info_get().bf16) {
        fprintf(stderr,
                "mus2pic %s: --dtype bf16 needs a CPU with AVX512-BF16 or AMX; this one "
                "has neither (use f32)\n",
                na->cmd);
        return -1;
    }
    return 0;
}

int node_arg(node_args *na, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int bad = 0;
    if (!strcmp(a, "--offline")) {
        na->offline = 1;
        return 1;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
        m2p_log_set_level(M2P_LOG_INFO);
        return 1;
    } else if (!v) {
        return 0; /* every other one takes a value: the caller reports it incomplete */
    } else if (!strcmp(a, "--store")) {
        na->store_url = v;
    } else if (!strcmp(a, "--name")) {
        na->name = v;
    } else if (!strcmp(a, "--data")) {
        na->data_dir = v;
    } else if (!strcmp(a, "--kinds")) {
        if (!(na->kinds = parse_kinds(v))) {
            fprintf(stderr, "mus2pic %s: --kinds '%s': use generate, analyze or generate,analyze\n",
                    na->cmd, v);
            bad = 1;
        }
    } else if (!strcmp(a, "--lease-s")) {
        bad = cli_int_arg(na->cmd, a, v, 1, 3600, &na->lease_s);
    } else if (!strcmp(a, "--workers")) {
        bad = cli_int_arg(na->cmd, a, v, 1, 15, &na->workers);
    } else if (!strcmp(a, "--compute-threads")) {
        bad = cli_int_arg(na->cmd, a, v, 1, 1024, &na->compute_threads);
    } else if (!strcmp(a, "--dtype")) {
        bad = dtype_arg(na, v);
    } else if (!strcmp(a, "--model-memory-gb")) {
        if (model_cache_parse_gb(v, &na->model_budget)) {
            fprintf(stderr,
                    "mus2pic %s: --model-memory-gb needs GiB from 0 (no limit) to 65536, "
                    "e.g. 12 or 0.5\n",
                    na->cmd);
            bad = 1;
        }
    } else if (!strcmp(a, "--model")) {
        bad = model_arg(na, v);
    } else {
        return 0;
    }
    if (bad)
        return -1;
    (*i)++;
    return 1;
}

void node_args_free(node_args *na)
{
    for (int k = 0; k < na->n_models; k++)
        free(na->model_names[k]);
    na->n_models = 0;
}

void node_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}
