/*
 * quick_info.c — what yt-dlp knows about a URL without downloading its audio, for the original's
 * POST /api/extract-metadata-quick (server/api_original.c asks here: the server reaches the audio
 * module only through jobs). The process is run by the one yt-dlp runner
 * (audio/ytdlp.c, ytdlp_info: argv, never a shell, the URL after "--", a minimal environment,
 * bounded output and time); here are only the route's limits.
 */
#include "jobs/quick_info.h"

#include "audio/ytdlp.h"

/* A long video's --dump-single-json (every format and thumbnail) is 0.5-2 MB. */
#define QUICK_INFO_MAX_JSON (16u << 20)
#define QUICK_INFO_TIMEOUT_S 60

int jobs_quick_info(const char *url, m2p_source_info *info)
{
    m2p_fetch_params fp = m2p_fetch_default_params();
    return ytdlp_info(ytdlp_program(&fp), url, QUICK_INFO_TIMEOUT_S, QUICK_INFO_MAX_JSON, info);
}
