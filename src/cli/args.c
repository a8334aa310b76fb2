/*
 * args.c — what every command parses the same way (commands.h): integer options, with one
 * message for a value that is not an integer, is out of range or is missing, naming the range.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"

int cli_int_arg(const char *cmd, const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "mus2pic %s: %s needs an integer from %d to %d, not '%s'\n", cmd, opt, lo,
                hi, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}
