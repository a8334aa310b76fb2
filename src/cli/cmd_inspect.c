/*
 * cmd_inspect.c — `mus2pic inspect DIR|NAME|HUB_ID`: a model folder's parts, dtypes, parameter
 * counts and the tensors the engine skips (see src/model/inspect.c). Exit 1 when a part does
 * not load; the report still shows everything that could be read.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "mus2pic.h"

int cmd_inspect(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: mus2pic inspect DIR|NAME|HUB_ID\n");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: mus2pic inspect DIR|NAME|HUB_ID\n");
        return 2;
    }
    if (m2p_model_inspect(argv[1], stdout)) {
        fflush(stdout);
        fprintf(stderr, "mus2pic inspect: %s\n", m2p_errmsg());
        return 1;
    }
    return 0;
}
