/*
 * paths.c — finds the web page's folder for an installed or a just-built program (see paths.h).
 * The running program's folder comes from /proc/self/exe; the compiled-in folders come from
 * CMakeLists.txt (M2P_INSTALL_WEB_DIR, M2P_WEB_DIR for the source tree, M2P_BUILD_BIN_DIR). An
 * installed binary never serves the source tree's files, even when the tree is still there.
 */
#include "core/paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

#ifndef M2P_INSTALL_WEB_DIR
#define M2P_INSTALL_WEB_DIR "/usr/local/share/mus2pic/web"
#endif

static int paths_has_page(const char *dir)
{
    char p[PATH_MAX + 16];
    if (snprintf(p, sizeof p, "%s/index.html", dir) >= (int)sizeof p)
        return 0;
    return access(p, R_OK) == 0;
}

static int paths_put(char *out, size_t n, const char *dir)
{
    if (snprintf(out, n, "%s", dir) >= (int)n)
        return m2p_error(M2P_ETOOBIG, "web folder path too long: %s", dir);
    return 0;
}

int m2p_find_web_dir(char *out, size_t n)
{
    const char *env = getenv("MUS2PIC_WEB_DIR");
    if (env && *env)
        return paths_put(out, n, env);

    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char rel[PATH_MAX + 32] = "";
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(rel, sizeof rel, "%s/../share/mus2pic/web", exe);
        if (paths_has_page(rel)) {
            char real[PATH_MAX];
            return paths_put(out, n, realpath(rel, real) ? real : rel);
        }
    }
    if (paths_has_page(M2P_INSTALL_WEB_DIR))
        return paths_put(out, n, M2P_INSTALL_WEB_DIR);
#if defined(M2P_WEB_DIR) && defined(M2P_BUILD_BIN_DIR)
    /* A program under the build folder (build/mus2pic, build/test_*) uses the source tree. */
    char build[PATH_MAX];
    if (len > 0 && realpath(M2P_BUILD_BIN_DIR, build)) {
        size_t bl = strlen(build);
        if (!strncmp(exe, build, bl) && (exe[bl] == '\0' || exe[bl] == '/') &&
            paths_has_page(M2P_WEB_DIR))
            return paths_put(out, n, M2P_WEB_DIR);
    }
#endif
    return m2p_error(M2P_ENOTFOUND,
                     "the web page (index.html) was not found in %s or %s: reinstall mus2pic "
                     "(cmake --install), or name the folder with --web DIR or MUS2PIC_WEB_DIR",
                     rel[0] ? rel : "<program folder>/../share/mus2pic/web", M2P_INSTALL_WEB_DIR);
}
