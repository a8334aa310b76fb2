/*
 * cmd_tokenize.c — `mus2pic tokenize --model M TEXT`: the 77 CLIP token ids the pipeline feeds
 * the text encoder, on one line separated by spaces. Only the model's tokenizer/ is loaded.
 * With --count, the untruncated token count (BOS and EOS included) goes to stderr.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "mus2pic.h"
#include "sd/clip_tokenizer.h"

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"count", no_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL;
    int count = 0, c;
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
        case 'h':
            printf("usage: mus2pic tokenize --model DIR|NAME|HUB_ID [--count] TEXT\n");
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
        fprintf(stderr, "usage: mus2pic tokenize --model DIR|NAME|HUB_ID [--count] TEXT\n");
        return 2;
    }
    char dir[4096], tdir[4200];
    if (m2p_model_resolve(model, dir, sizeof dir)) {
        fprintf(stderr, "mus2pic tokenize: %s\n", m2p_errmsg());
        return 1;
    }
    snprintf(tdir, sizeof tdir, "%s/tokenizer", dir);
    clip_tokenizer *t;
    if (clip_tokenizer_load(tdir, &t)) {
        fprintf(stderr, "mus2pic tokenize: %s\n", m2p_errmsg());
        return 1;
    }
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    int n;
    int rc = clip_tokenize(t, argv[optind], ids, M2P_CLIP_MAX_TOKENS, &n);
    clip_tokenizer_free(t);
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
