/*
 * quick_info.h — a URL's yt-dlp information without its audio (for the original's quick
 * metadata route).
 */
#ifndef M2P_JOBS_QUICK_INFO_H
#define M2P_JOBS_QUICK_INFO_H

#include "mus2pic.h"

/* url must have passed m2p_url_check. Fills info (id, title, uploader, artist, track, tags). */
int jobs_quick_info(const char *url, m2p_source_info *info);

#endif
