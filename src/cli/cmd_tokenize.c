/*
 * cmd_tokenize.c — `mus2pic tokenize --model M [--encoder 2] TEXT`: the 77 CLIP token ids the
 * pipeline feeds the first (tokenizer/) or, with --encoder 2, the second text encoder
 * (tokenizer_2/ of SDXL, whose "!" padding changes prompts containing "!"), on one line
 * separated by spaces. Only that tokenizer folder is loaded. With --count, the untruncated token
 * count (BOS and EOS included) goes to stderr.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "mus2pic.h"

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"count", no_argument, 0, 'c'},
        {"encoder", required_argument, 0, 'e'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL;
    int count = 0, encoder = 1, c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'c':
            count = 1;
            break;
        case 'e':
            encoder = (int)strtol(optarg, &end, 10);
            if (*end || (encoder != 1 && encoder != 2)) {
                fprintf(stderr,
                        "mus2pic tokenize: --encoder %s: must be 1 (tokenizer/) or 2 "
                        "(tokenizer_2/ of SDXL models)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: mus2pic tokenize --model DIR|NAME|HUB_ID [--encoder 1|2] [--count] "
                   "TEXT\n");
            return 0;
        case ':':
            fprintf(stderr, "mus2pic tokenize: %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "mus2pic tokenize: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!model || optind != argc - 1) {
        fprintf(stderr,
                "usage: mus2pic tokenize --model DIR|NAME|HUB_ID [--encoder 1|2] [--count] TEXT\n");
        return 2;
    }
    char dir[4096], tdir[4200];
    if (m2p_model_resolve(model, dir, sizeof dir)) {
        fprintf(stderr, "mus2pic tokenize: %s\n", m2p_errmsg());
        return 1;
    }
    snprintf(tdir, sizeof tdir, "%s/tokenizer%s", dir, encoder == 2 ? "_2" : "");
    struct stat st;
    if (encoder == 2 && stat(tdir, &st) != 0) {
        fprintf(stderr,
                "mus2pic tokenize: %s has one text encoder (no tokenizer_2/); --encoder 2 is for "
                "SDXL models, leave it out for this one\n",
                dir);
        return 1;
    }
    m2p_tokenizer *t;
    if (m2p_tokenizer_load(tdir, &t)) {
        fprintf(stderr, "mus2pic tokenize: %s\n", m2p_errmsg());
        return 1;
    }
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    int n;
    int rc = m2p_tokenizer_encode(t, argv[optind], ids, &n);
    m2p_tokenizer_free(t);
    if (rc) {
        fprintf(stderr, "mus2pic tokenize: %s\n", m2p_errmsg());
        return 1;
    }
    for (int i = 0; i < M2P_CLIP_MAX_TOKENS; i++)
        printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    if (count)
        fprintf(stderr, "%d tokens%s\n", n, n > M2P_CLIP_MAX_TOKENS ? " (truncated to 77)" : "");
    return 0;
}
