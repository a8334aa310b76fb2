/*
 * routes.c — every route of /api in one table, and the router that answers from it.
 *
 * The table is the single description of the API: router_handle matches a request against it
 * (token check, path template, method; 404 for an unknown path, 405 with Allow for a known path
 * with another method), reads the JSON body and the query parameters the route declares, and
 * calls the handler; openapi.c builds /api/openapi.json from the same rows. Adding a route here
 * documents it; a route cannot be answered without being documented.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define PAGE                                                                                       \
    {                                                                                              \
        "page", 1, 1000000, 1                                                                      \
    }
#define NO_QUERY                                                                                   \
    {                                                                                              \
        {                                                                                          \
            NULL, 0, 0, 0                                                                          \
        }                                                                                          \
    }

/* clang-format off */
const route api_routes[] = {
    {"GET", "/api/health", api_health,
     "Is the server up; loaded models, queue counts, WebSocket clients, memory",
     NULL, NULL, 200, "Health", "", NO_QUERY},
    {"GET", "/api/models", api_models,
     "Known models keyed by name (the original's shape), with installed, loaded and the last "
     "measured generation time",
     NULL, NULL, 200, "Models", "", NO_QUERY},
    {"POST", "/api/models/fetch", api_models_fetch,
     "Download a model of the registry (as `mus2pic models fetch NAME`) on the server, one at "
     "a time; follow it with GET /api/models/fetch",
     "FetchRequest", NULL, 202, "FetchState", "400 409 413 503", NO_QUERY},
    {"GET", "/api/models/fetch", api_models_fetch_get,
     "The current or last model download: file, bytes, state (idle, downloading, done, failed)",
     NULL, NULL, 200, "FetchState", "", NO_QUERY},
    {"GET", "/api/openapi.json", api_openapi, "This document", NULL, NULL, 200, "Object", "", NO_QUERY},
    {"POST", "/api/analyze", api_analyze,
     "Analyse a song from a URL (JSON) or an uploaded audio file (multipart field 'file'); "
     "returns a job whose result has features, band, song, genre and its source, and the V1, V3 "
     "and V4 prompts",
     "AnalyzeRequest", "AnalyzeUpload", 202, "JobAccepted", "400 411 413 503", NO_QUERY},
    {"POST", "/api/generate", api_generate,
     "Generate 1-4 variations (up to 8 with --max-variations 8) as one batch; returns a job",
     "GenerateRequest", NULL, 202, "JobAccepted", "400 413 503", NO_QUERY},
    {"GET", "/api/jobs/{id}", api_job_get,
     "A job: state, parameters, result (images or analysis), error",
     NULL, NULL, 200, "Job", "404", NO_QUERY},
    {"DELETE", "/api/jobs/{id}", api_job_delete,
     "Delete a job and its images (a running one is canceled first)",
     NULL, NULL, 200, "Deleted", "404", NO_QUERY},
    {"POST", "/api/jobs/{id}/cancel", api_job_cancel,
     "Cancel a queued job (200) or a running generation at its next step (202)",
     NULL, NULL, 200, "Canceled", "404 409", NO_QUERY},
    {"GET", "/api/images/{id}.png", api_image_get, "One image as PNG",
     NULL, NULL, 200, "image/png", "404", NO_QUERY},
    {"DELETE", "/api/images/{id}", api_image_delete, "Delete one image",
     NULL, NULL, 200, "Deleted", "404", NO_QUERY},
    {"GET", "/api/images/{id}/thumb.png", api_image_thumb,
     "One image at most 256 px on its long side, as PNG (cacheable: an id's image never changes)",
     NULL, NULL, 200, "image/png", "404", NO_QUERY},
    {"GET", "/api/images/{id}/poster.png", api_image_poster,
     "One image with poster text: query layout=top|bottom|band, title (the song) and artist, "
     "URL-encoded; drawn on request, the stored image stays plain",
     NULL, NULL, 200, "image/png", "400 404", NO_QUERY},
    {"POST", "/api/tokens", api_tokens,
     "How many CLIP tokens a prompt takes with a model's tokenizer (the text encoder reads 77, "
     "start and end included) and the text past the limit",
     "TokenRequest", NULL, 200, "TokenCount", "400 404 413", NO_QUERY},
    {"GET", "/api/gallery", api_gallery,
     "Past results, newest first, each with its prompt, parameters, seed, features and source",
     NULL, NULL, 200, "Gallery", "400", {PAGE, {"per_page", 1, 100, 24}}},
    {"POST", "/api/batches", api_batch_post,
     "A list of URLs: one analysis and one generation per URL, with the generation parameters "
     "of GenerateRequest (the prompt comes from each analysis)",
     "BatchRequest", NULL, 202, "BatchAccepted", "400 413 503", NO_QUERY},
    {"GET", "/api/batches", api_batch_list, "Recent batches, newest first, with their counts",
     NULL, NULL, 200, "BatchList", "400", {PAGE, {"per_page", 1, 100, 20}}},
    {"GET", "/api/batches/{id}", api_batch_get,
     "A batch: each URL's analysis and generation jobs, states and images",
     NULL, NULL, 200, "Batch", "404", NO_QUERY},
    {"POST", "/api/extract-metadata", api_extract_metadata,
     "Original: analyse a URL and answer when the analysis is done",
     "PromptRequest", NULL, 200, "Metadata", "400 413 500 503", NO_QUERY},
    {"POST", "/api/generate-prompt", api_generate_prompt,
     "Original: the prompt for a URL (analysed, answering when done) or for posted features "
     "(built at once, nothing downloaded)",
     "PromptRequest", NULL, 200, "PromptAnswer", "400 413 500 503", NO_QUERY},
    {"POST", "/api/extract-metadata-quick", api_extract_metadata_quick,
     "Original: band, song and genre from what yt-dlp knows of the URL, without the audio",
     "QuickRequest", NULL, 200, "QuickMetadata", "400 413 502 504", NO_QUERY},
    {"POST", "/api/generate-prompt-llm", api_generate_prompt_llm,
     "Original: a prompt written by an OpenAI-compatible chat model",
     "LlmRequest", NULL, 200, "LlmPrompt", "400 413 502", NO_QUERY},
    {"POST", "/api/validate-api-key", api_validate_api_key,
     "Original: does the chat endpoint accept this API key (it lists its models with it)",
     "ApiKeyRequest", NULL, 200, "ApiKeyCheck", "400 413 502", NO_QUERY},
    {"POST", "/api/generate-image", api_generate_image,
     "Original: generate and answer when the images are ready (a job underneath)",
     "GenerateRequest", NULL, 200, "ImagesAnswer", "400 413 500 503", NO_QUERY},
};
/* clang-format on */
const int api_n_routes = (int)(sizeof api_routes / sizeof api_routes[0]);

/* Does one path segment (seg, n bytes) match a template segment (up to '/' or the end)?
 * "{id}" and what follows it ("{id}.png") take a positive integer without leading zeros. */
static int segment_match(const char *tpl, size_t tn, const char *seg, size_t n, int64_t *id)
{
    if (tn >= 4 && !strncmp(tpl, "{id}", 4)) {
        const char *suffix = tpl + 4;
        size_t sn = tn - 4, digits = 0;
        while (digits < n && seg[digits] >= '0' && seg[digits] <= '9')
            digits++;
        if (!digits || digits > 18 || seg[0] == '0' || n - digits != sn ||
            strncmp(seg + digits, suffix, sn))
            return 0;
        *id = strtoll(seg, NULL, 10);
        return 1;
    }
    return tn == n && !strncmp(tpl, seg, n);
}

/* Does path match the template? Writes the {id} it carries. */
static int path_match(const char *tpl, const char *path, int64_t *id)
{
    *id = 0;
    for (;;) {
        size_t tn = strcspn(tpl, "/"), n = strcspn(path, "/");
        if (!segment_match(tpl, tn, path, n, id))
            return 0;
        tpl += tn;
        path += n;
        if (!*tpl || !*path)
            return !*tpl && !*path;
        tpl++;
        path++;
    }
}

static void unauthorized(struct mg_connection *c)
{
    static const char body[] = "{\"success\":false,\"error\":\"a valid access token is "
                               "required\",\"detail\":\"a valid access token is required\"}";
    http_send(c, 401, "application/json", body, sizeof body - 1, "WWW-Authenticate: Bearer\r\n");
}

/* The handlers run on a stack we size, not on the CivetWeb worker's: Debian's libcivetweb is
 * built with 100 KiB worker stacks (USE_STACK_SIZE, fixed at its build), and a handler that
 * draws a poster (fontconfig, FreeType, HarfBuzz, libpng) or parses JSON needs more than that; a
 * frame bigger than the guard page then writes into whatever lies below instead of faulting.
 * The worker waits for the handler's thread, so the connection still has one user at a time. */
#define ROUTE_STACK (8u << 20)

typedef struct route_job {
    const route *r;
    server *s;
    struct mg_connection *c;
    const route_args *a;
} route_job;

static void *route_thread(void *arg)
{
    route_job *j = arg;
    j->r->fn(j->s, j->c, j->a);
    return NULL;
}

static void route_call(const route *r, server *s, struct mg_connection *c, const route_args *a)
{
    route_job j = {r, s, c, a};
    pthread_attr_t at;
    pthread_t t;
    int ok = pthread_attr_init(&at) == 0;
    if (ok && pthread_attr_setstacksize(&at, ROUTE_STACK) == 0 &&
        pthread_create(&t, &at, route_thread, &j) == 0) {
        pthread_attr_destroy(&at);
        pthread_join(t, NULL);
        return;
    }
    if (ok)
        pthread_attr_destroy(&at);
    http_error(c, 503, NULL, "the server cannot start a thread for this request; retry later");
}

int router_handle(struct mg_connection *c, void *cbdata)
{
    server *s = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *path = ri->local_uri ? ri->local_uri : "";
    const char *method = ri->request_method;
    char why[512];
    if (!http_same_site(s, c, why, sizeof why)) {
        http_error(c, 403, NULL, "%s", why);
        return 403;
    }
    if (!http_authorized(s, c)) {
        unauthorized(c);
        return 401;
    }
    const route *r = NULL;
    char allow[64] = "";
    route_args a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < api_n_routes && !r; i++) {
        int64_t id = 0;
        if (!path_match(api_routes[i].path, path, &id))
            continue;
        if (!strcmp(api_routes[i].method, method)) {
            r = &api_routes[i];
            a.id = id;
        } else if (strlen(allow) + strlen(api_routes[i].method) + 3 < sizeof allow) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, api_routes[i].method);
        }
    }
    if (!r && allow[0]) {
        char hdr[96];
        snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
        json_t *o = json_pack("{s:b, s:s++, s:s++}", "success", 0, "error", path, " takes only ",
                              allow, "detail", path, " takes only ", allow);
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        http_send(c, 405, "application/json", txt ? txt : "{}", txt ? strlen(txt) : 2, hdr);
        free(txt);
        return 405;
    }
    if (!r) {
        http_error(c, 404, NULL, "%s %s is not part of the API; see /api/openapi.json", method,
                   path);
        return 404;
    }
    for (int q = 0; q < 2 && r->query[q].name; q++)
        if (http_query_int(c, r->query[q].name, r->query[q].lo, r->query[q].hi, r->query[q].def,
                           &a.query[q]))
            return 400;
    if (r->body) {
        const char *ct = mg_get_header(c, "Content-Type");
        int multipart = ct && !strncasecmp(ct, "multipart/form-data", 19);
        if (!(r->upload && multipart) && !http_is_json(c)) {
            /* A browser sends text/plain and form bodies cross-site without asking first;
             * application/json it never does. */
            http_error(c, 415, "body",
                       "send the body as JSON with Content-Type: application/json%s",
                       r->upload ? " (or an upload as multipart/form-data)" : "");
            return 415;
        }
        if (!(r->upload && multipart) && !(a.body = http_read_json(s, c)))
            return 400;
    }
    route_call(r, s, c, &a);
    json_decref(a.body);
    return r->status;
}
