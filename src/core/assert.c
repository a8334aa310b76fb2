/*
 * assert.c — what a failed M2P_ASSERT does (assert.h): one line naming the invariant and where
 * it is, then abort() so a test run or a core dump shows the stack. Only reached on a bug.
 */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

void m2p_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "mus2pic: assertion failed: %s (%s:%d, %s); this is a bug, please report it\n",
            cond, file, line, func);
    fflush(stderr);
    abort();
}

int m2p_assert_enabled(void)
{
#if defined(M2P_ASSERTIONS) && M2P_ASSERTIONS
    return 1;
#else
    return 0;
#endif
}
