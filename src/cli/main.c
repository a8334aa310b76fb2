/*
 * main.c — `mus2pic <command> ...`: dispatches to one file per subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "mus2pic.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"generate", cmd_generate, "prompt -> poster images (LCM)"},
    {"tokenize", cmd_tokenize, "print the 77 CLIP token ids of a text"},
    {"inspect", cmd_inspect, "list a model folder's parts, dtypes and parameter counts"},
    {"models", cmd_models, "list known models, or fetch one (models list | models fetch NAME)"},
    {"analyze", cmd_analyze, "song (URL or file) -> features, band, song, genre"},
    {"prompt", cmd_prompt, "song (URL or file) -> image prompt (v1, v3, v4, llm)"},
    {"serve", cmd_serve, "web app and JSON API (default http://127.0.0.1:9090)"},
    {"worker", cmd_worker, "run jobs from a shared store (PostgreSQL) for the web nodes"},
    {"store", cmd_store, "the store's schema and queue (store migrate | store status)"},
};

static void usage(FILE *f)
{
    fprintf(f, "mus2pic %s: turns a song into poster art\n\nusage: mus2pic <command> [options]\n\n",
            M2P_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`mus2pic <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mus2pic %s\n", M2P_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "mus2pic: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
