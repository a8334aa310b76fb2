/*
 * node_args.h — the options `mus2pic serve` and `mus2pic worker` share (both run jobs from a
 * store): --store, --name, --kinds, --lease-s, --workers, --compute-threads, --dtype,
 * --model-memory-gb, --data, --model NAME=DIR, --offline and -v, parsed in one place
 * (node_args.c) with the same ranges and messages; each command keeps its own options and
 * defaults and copies what it needs out of a node_args. Both also stop the same way on SIGINT or
 * SIGTERM (node_block_signals).
 */
#ifndef M2P_CLI_NODE_ARGS_H
#define M2P_CLI_NODE_ARGS_H

#include <signal.h>
#include <stddef.h>

#define NODE_MAX_MODELS 16

typedef struct node_args {
    const char *cmd; /* "serve" or "worker": the messages' prefix */
    const char *store_url, *name, *data_dir;
    int kinds; /* bits 1 << JOBS_* */
    int lease_s, workers, compute_threads, dtype, offline;
    size_t model_budget;
    int n_models;
    char *model_names[NODE_MAX_MODELS]; /* malloc'd (node_args_free) */
    const char *model_refs[NODE_MAX_MODELS];
} node_args;

/* argv[*i] when it is one of the shared options: 1, with *i on its last word (its value, if it
 * takes one); 0 when it is not one of them (or lacks its value); -1 when its value is bad (the
 * message printed). */
int node_arg(node_args *na, int argc, char **argv, int *i);
void node_args_free(node_args *na);

/* Before the node starts any thread: SIGINT and SIGTERM blocked (every thread started later
 * inherits the mask, so only the caller's sigwait(set) receives them) and SIGPIPE ignored. */
void node_block_signals(sigset_t *set);

#endif
