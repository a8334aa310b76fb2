/*
 * api_original.c — the original Mus2Pic's routes and shapes, so its page and scripts work here:
 * /api/extract-metadata, /api/generate-prompt, /api/extract-metadata-quick,
 * /api/generate-prompt-llm, /api/validate-api-key and /api/generate-image (spec/ORIGINAL.md).
 *
 * The long ones queue a job like every other route and answer when it has finished, as the
 * original did; the job id is in the answer too. /api/generate-prompt with posted features
 * builds the prompt directly (no download), through jobs/direct.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json_limit.h"
#include "jobs/direct.h"
#include "jobs/quick_info.h"
#include "server/server_internal.h"

#define ANALYSIS_WAIT_MS (15 * 60 * 1000)
#define GENERATION_WAIT_MS (60 * 60 * 1000)

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Wait for job id; on success *result is its result object (new reference). Sends the error
 * response itself and returns -1 otherwise. */
static int wait_result(server *s, struct mg_connection *c, int64_t id, int timeout_ms,
                       json_t **result)
{
    jobs_record j;
    int rc = jobs_wait(s->q, id, timeout_ms, &j);
    if (rc) {
        http_error(c, http_status_of(rc), NULL, "job %lld: %s", (long long)id, m2p_errmsg());
        return -1;
    }
    if (strcmp(j.state, "done") != 0) {
        http_error(c, !strcmp(j.state, "canceled") ? 409 : 500, NULL, "job %lld %s: %s",
                   (long long)id, j.state, j.error ? j.error : "no reason recorded");
        jobs_record_clear(&j);
        return -1;
    }
    *result = j.result ? m2p_json_loads(j.result, 0, NULL) : NULL;
    jobs_record_clear(&j);
    if (!json_is_object(*result)) {
        json_decref(*result);
        http_error(c, 500, NULL, "job %lld has no readable result", (long long)id);
        return -1;
    }
    return 0;
}

/* Validate {url, duration[, prompt_version, band_name, song_title]} and queue the analysis. */
static int start_analysis(server *s, struct mg_connection *c, json_t *b, int64_t *id)
{
    api_error e = {0};
    double duration;
    int version;
    if (validate_url(s, json_object_get(b, "url"), "url", &e) ||
        validate_duration(json_object_get(b, "duration"), &duration, &e) ||
        validate_prompt_version(json_object_get(b, "prompt_version"), &version, &e) ||
        validate_opt_string(b, "band_name", 256, &e) ||
        validate_opt_string(b, "song_title", 256, &e)) {
        http_api_error(c, &e);
        return -1;
    }
    /* both names or neither (jobs_names_passed): one alone leaves the video's pair */
    char *band = NULL, *song = NULL;
    if (jobs_names_passed(jstr(b, "band_name"), jstr(b, "song_title"), &band, &song) < 0) {
        http_error(c, 500, NULL, "%s", m2p_errmsg());
        return -1;
    }
    int rc = api_submit_analysis(s, jstr(b, "url"), 0, duration, version, band, song, id, &e);
    free(band);
    free(song);
    if (rc) {
        http_api_error(c, &e);
        return -1;
    }
    return 0;
}

void api_extract_metadata(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *b = a->body;
    int64_t id;
    json_t *r;
    if (start_analysis(s, c, b, &id) || wait_result(s, c, id, ANALYSIS_WAIT_MS, &r))
        return;
    json_t *src = json_object_get(r, "source");
    http_json(
        c, 200,
        json_pack("{s:b, s:O?, s:O?, s:O?, s:O?, s:O?, s:b, s:I}", "success", 1, "band",
                  json_object_get(r, "band"), "song", json_object_get(r, "song"), "genre",
                  json_object_get(r, "genre"), "genre_source", json_object_get(r, "genre_source"),
                  "features", json_object_get(r, "features"), "is_cached",
                  json_is_true(json_object_get(src, "from_cache")), "job_id", (json_int_t)id));
    json_decref(r);
}

/* With features posted back by the page: no download, the builder runs on them directly. */
static void prompt_from_features(struct mg_connection *c, json_t *b, json_t *features)
{
    api_error e = {0};
    int version;
    if (validate_prompt_version(json_object_get(b, "prompt_version"), &version, &e) ||
        validate_opt_string(b, "band_name", 256, &e) ||
        validate_opt_string(b, "song_title", 256, &e) || validate_opt_string(b, "genre", 256, &e)) {
        http_api_error(c, &e);
        return;
    }
    jobs_prompt p;
    int rc = jobs_prompt_from_features(version, features, jstr(b, "band_name"),
                                       jstr(b, "song_title"), jstr(b, "genre"), &p);
    if (rc) {
        http_error(c, http_status_of(rc), rc == M2P_ENOMEM ? NULL : "features", "%s",
                   m2p_errmsg());
        return;
    }
    http_json(c, 200,
              json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "success", 1, "prompt",
                        p.prompt, "negative_prompt", p.negative ? p.negative : "", "band",
                        p.band ? p.band : "", "song", p.song ? p.song : "", "genre_hint",
                        p.genre_hint, "genre_source", p.genre_source, "features", features));
    jobs_prompt_clear(&p);
}

void api_generate_prompt(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *b = a->body;
    json_t *f = json_object_get(b, "features");
    if (f && !json_is_null(f)) {
        if (!json_is_object(f)) {
            http_error(c, 400, "features", "features must be an object of numbers");
            return;
        }
        prompt_from_features(c, b, f);
        return;
    }
    int64_t id;
    json_t *r;
    if (start_analysis(s, c, b, &id) || wait_result(s, c, id, ANALYSIS_WAIT_MS, &r))
        return;
    http_json(c, 200,
              json_pack("{s:b, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:I}", "success", 1,
                        "prompt", json_object_get(r, "prompt"), "negative_prompt",
                        json_object_get(r, "negative_prompt"), "band", json_object_get(r, "band"),
                        "song", json_object_get(r, "song"), "genre_hint",
                        json_object_get(r, "genre"), "genre_source",
                        json_object_get(r, "genre_source"), "features",
                        json_object_get(r, "features"), "prompt_version",
                        json_object_get(r, "prompt_version"), "job_id", (json_int_t)id));
    json_decref(r);
}

void api_extract_metadata_quick(server *s, struct mg_connection *c, const route_args *a)
{
    json_t *b = a->body;
    api_error e = {0};
    if (validate_url(s, json_object_get(b, "url"), "url", &e)) {
        http_api_error(c, &e);
        return;
    }
    m2p_source_info info;
    int rc = jobs_quick_info(jstr(b, "url"), &info);
    if (rc) {
        http_error(c, http_status_of(rc) == 500 ? 502 : http_status_of(rc), "url", "%s",
                   m2p_errmsg());
        return;
    }
    char band[256] = "", song[256] = "", raw[256] = "", source[32] = "";
    m2p_band_song(&info, band, sizeof band, song, sizeof song);
    m2p_genre_params gp = m2p_genre_default_params();
    gp.offline = s->cfg.genre_offline;
    if (m2p_genre_find(&info, band, NULL, &gp, NULL, raw, sizeof raw, source, sizeof source))
        raw[0] = 0;
    http_json(c, 200,
              json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s}", "success", 1, "band", band, "song",
                        song, "genre", raw[0] ? m2p_genre_normalize(raw) : "", "genre_raw", raw,
                        "genre_source", source[0] ? source : "none", "title", info.title));
}

void api_generate_prompt_llm(server *s, struct mg_connection *c, const route_args *a)
{
    (void)s;
    json_t *b = a->body;
    api_error e = {0};
    if (validate_opt_string(b, "song_title", 256, &e) ||
        validate_opt_string(b, "artist", 256, &e) || validate_opt_string(b, "api_key", 512, &e) ||
        validate_opt_string(b, "genre", 256, &e) ||
        validate_opt_string(b, "additional_context", 2000, &e)) {
        http_api_error(c, &e);
        return;
    }
    if (!jstr(b, "song_title") || !*jstr(b, "song_title")) {
        http_error(c, 400, "song_title", "song_title is required");
        return;
    }
    if (!jstr(b, "artist") || !*jstr(b, "artist")) {
        http_error(c, 400, "artist", "artist is required");
        return;
    }
    m2p_llm_params p = m2p_llm_default_params();
    json_t *t = json_object_get(b, "temperature");
    if (t && !json_is_null(t)) {
        if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1) {
            http_error(c, 400, "temperature", "temperature must be a number from 0 to 1");
            return;
        }
        p.temperature = json_number_value(t);
    }
    if (jstr(b, "api_key") && *jstr(b, "api_key"))
        p.api_key = jstr(b, "api_key");
    p.additional_context = jstr(b, "additional_context");
    char *prompt = NULL;
    int tokens = 0;
    int rc = m2p_prompt_llm(&p, jstr(b, "song_title"), jstr(b, "artist") ? jstr(b, "artist") : "",
                            jstr(b, "genre"), &prompt, &tokens);
    if (rc) {
        /* EINVAL here is the key: missing, or refused by the endpoint (the rest was checked) */
        const char *why = m2p_errmsg();
        http_error(c, rc == M2P_EINVAL ? 400 : 502,
                   rc == M2P_EINVAL && strstr(why, "key") ? "api_key" : NULL, "%s", why);

        return;
    }
    /* gpt-4o-mini list prices (USD per token: 0.15/M in, 0.60/M out); the original reported
     * an estimate from the total, which we compute at the output price as an upper bound. */
    http_json(c, 200,
              json_pack("{s:b, s:s, s:i, s:f, s:s}", "success", 1, "prompt", prompt, "tokens_used",
                        tokens, "estimated_cost", tokens * 0.60e-6, "model",
                        p.model ? p.model : ""));
    free(prompt);
}

/* Does the chat endpoint accept the key (m2p_llm_key_check)? 200 is valid, 401/403 is not;
 * anything else is the endpoint's failure (502), not an answer about the key. */
void api_validate_api_key(server *s, struct mg_connection *c, const route_args *a)
{
    (void)s;
    api_error e = {0};
    if (validate_opt_string(a->body, "api_key", 512, &e)) {
        http_api_error(c, &e);
        return;
    }
    const char *key = jstr(a->body, "api_key");
    if (!key || !*key) {
        http_error(c, 400, "api_key", "api_key is required");
        return;
    }
    if (!m2p_llm_key_ok(key)) { /* it goes into a request header: no CR/LF smuggling */
        http_error(c, 400, "api_key",
                   "api_key has control characters (CR, LF, ...); paste the key alone");
        return;
    }
    int valid = 0;
    if (m2p_llm_key_check(NULL, key, &valid)) {
        http_error(c, 502, NULL, "%s", m2p_errmsg());
        return;
    }
    http_json(c, 200,
              json_pack("{s:b, s:b, s:s}", "success", 1, "valid", valid, "message",
                        valid ? "the API key is valid" : "the API key was rejected"));
}

void api_generate_image(server *s, struct mg_connection *c, const route_args *a)
{
    api_error e;
    int64_t id = 0;
    json_t *p = submit_generate(s, a->body, &id, &e);
    if (!p) {
        http_api_error(c, &e);
        return;
    }
    json_decref(p);
    json_t *r;
    if (wait_result(s, c, id, GENERATION_WAIT_MS, &r))
        return;
    json_object_set_new(r, "success", json_true());
    json_object_set_new(r, "job_id", json_integer(id));
    http_json(c, 200, r);
}
