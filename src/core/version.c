/*
 * version.c — m2p_version(): the version libmus2pic was built as. The number comes from
 * project(mus2pic VERSION ...) in CMakeLists.txt through the generated mus2pic_version.h, so a
 * program can compare it with the M2P_VERSION of the header it was compiled against.
 */
#include "mus2pic.h"

const char *m2p_version(void)
{
    return M2P_VERSION;
}
