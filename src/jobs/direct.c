/*
 * direct.c — the answers the API gives without a queued job (jobs/direct.h): the names a
 * request passes and the prompt built straight from posted features. The rules themselves are
 * the music module's (band_song.c, genre.c, prompt.c); here they are put together the way the
 * original's /api/generate-prompt does: a given genre is "metadata", none is inferred from the
 * features, and the hint is the normalised genre.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "jobs/direct.h"
#include "music/band_song.h"
#include "music/genre.h"
#include "music/prompt.h"

int jobs_names_passed(const char *band_name, const char *song_title, char **band, char **song)
{
    return band_song_passed(band_name, song_title, band, song);
}

void jobs_prompt_clear(jobs_prompt *p)
{
    if (!p)
        return;
    free(p->prompt);
    free(p->negative);
    free(p->band);
    free(p->song);
    memset(p, 0, sizeof *p);
}

int jobs_prompt_from_features(int version, const json_t *features, const char *band_name,
                              const char *song_title, const char *genre, jobs_prompt *out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "prompt: out is NULL");
    memset(out, 0, sizeof *out);
    if (!json_is_object(features))
        return m2p_error(M2P_EINVAL, "features must be an object of numbers");
    int rc = band_song_passed(band_name, song_title, &out->band, &out->song);
    if (rc < 0)
        return rc;
    const char *raw = genre && *genre ? genre : NULL;
    out->genre_source = "metadata";
    if (!raw) {
        out->genre_source = "none";
        if (genre_infer_json(features, &raw) == 0 && raw)
            out->genre_source = "inferred";
        else
            raw = NULL;
    }
    json_t *rawj = raw ? json_string(raw) : json_null();
    if (!rawj) {
        jobs_prompt_clear(out);
        return m2p_error(M2P_ENOMEM, "prompt: out of memory");
    }
    rc = prompt_build_json(version, features, out->band, out->song, rawj, &out->prompt,
                           &out->negative);
    const char *hint = genre_normalize_json(rawj);
    json_decref(rawj);
    if (rc) {
        jobs_prompt_clear(out);
        return rc;
    }
    out->genre_hint = hint ? hint : "abstract";
    return 0;
}
