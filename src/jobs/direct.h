/*
 * direct.h — what the API answers at once, without a queued job: the band/song pair a request
 * passes and the prompt from features the page posts back (the original's /api/generate-prompt
 * with features). The server reaches the music module only through here and the public API.
 */
#ifndef M2P_JOBS_DIRECT_H
#define M2P_JOBS_DIRECT_H

#include <jansson.h>

/* Both names or neither (prompt-rules.json genre_infer.source_chain.band_song_passed): 1 with
 * *band and *song malloc'd and trimmed when both are non-empty, 0 with both NULL otherwise, or
 * M2P_ENOMEM. */
int jobs_names_passed(const char *band_name, const char *song_title, char **band, char **song);

typedef struct jobs_prompt {
    char *prompt, *negative;  /* malloc'd */
    char *band, *song;        /* the names passed (jobs_names_passed), or NULL */
    const char *genre_hint;   /* the normalised genre ("abstract" when none); static */
    const char *genre_source; /* "metadata" (genre given), "inferred" (from features) or "none" */
} jobs_prompt;

/* The prompt of rules version `version` from a feature map (name -> number, as the analysis
 * reports them), the names the request passed (both or neither count) and its genre text
 * (NULL or "": inferred from the features when the rules can). M2P_EINVAL names a bad feature;
 * on success free with jobs_prompt_clear. */
int jobs_prompt_from_features(int version, const json_t *features, const char *band_name,
                              const char *song_title, const char *genre, jobs_prompt *out);
void jobs_prompt_clear(jobs_prompt *p);

#endif
