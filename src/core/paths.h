/*
 * paths.h — where the installed program finds its data files (the web page).
 */
#ifndef M2P_CORE_PATHS_H
#define M2P_CORE_PATHS_H

#include <stddef.h>

/* The folder that holds the web page (index.html), found in this order:
 *   1. $MUS2PIC_WEB_DIR when set (used as given, even when it lacks index.html);
 *   2. <folder of the running program>/../share/mus2pic/web (a relocated install);
 *   3. the install prefix compiled in (CMAKE_INSTALL_FULL_DATADIR/mus2pic/web);
 *   4. the source tree's web/, only for a program that runs from the build folder.
 * Writes the folder to out; 0, or M2P_ENOTFOUND with a message naming what was tried. */
int m2p_find_web_dir(char *out, size_t n);

#endif
