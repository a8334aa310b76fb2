/*
 * openapi.c — /api/openapi.json, built once at start-up with jansson from the route table
 * (routes.c) and the schemas below, so the document lists exactly the routes the server answers.
 *
 * The schemas are written short: JSON with single quotes (so no description may hold a quote),
 * where a schema is either a full JSON Schema (it has 'type', 'allOf', 'oneOf' or '$ref') or
 * just its properties. A property (or items, additionalProperties) may be a string
 * "TYPE[?][|description]": TYPE is a JSON type, '#Name' (another schema) or '[TYPE]' (an array),
 * '?' makes it nullable. A property name ending in '*' is required.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "server/server_internal.h"

/* clang-format off */
static const struct { const char *name, *text; } schemas[] = {
    {"Error", "{'success':'boolean', 'error':'string|what went wrong',"
              " 'detail':'string|the same message (the field the original FastAPI app sent)',"
              " 'field':'string|the request field at fault, when one is'}"},
    {"Object", "{'type':'object'}"},
    {"Health", "{'success':'boolean', 'status':'string|ok', 'version':'string',"
               " 'models_loaded':'[object]|models in memory: name, path, memory_bytes',"
               " 'default_model':'string?', 'jobs':'object|queued, running, done, failed',"
               " 'websockets':'integer|clients connected now',"
               " 'websockets_dropped':'integer|clients dropped since the start for not reading their messages',"
               " 'progress':'object|progress bus counters: published, delivered, dropped, queued',"
               " 'rss_kb':'integer|resident memory of the server', 'threads':'integer|HTTP worker threads',"
               " 'store':'string|sqlite or postgresql',"
               " 'workers':'[object]|workers with a recent heartbeat: name, host, pid, kinds, models, job, seen_ms'}"},
    {"Models", "{'success':'boolean', 'default_model':'string?', 'max_variations':'integer',"
               " 'hint':'string|how to get a model, when none is installed',"
               " 'problems':{'type':'array', 'description':'models given with --model or MUS2PIC_MODEL that cannot be used',"
               "             'items':{'type':'object', 'properties':{'name':{'type':'string'}, 'ref':{'type':'string'}, 'message':{'type':'string'}}}},"
               " 'models':{'type':'object', 'additionalProperties':'#Model',"
               "           'description':'keyed by model name (lcm, sd14, ...)'}}"},
    {"Model", "{'name':'string', 'description':'string',"
              " 'expected_time':'string|the last generation with this model on this server, or empty when none ran yet',"
              " 'measured':{'type':'object', 'nullable':true, 'description':'that generation',"
              "   'properties':{'seconds':'number|the whole batch', 'images':'integer', 'steps':'integer',"
              "                 'width':'integer', 'height':'integer', 'finished_ms':'integer'}},"
              " 'memory':'string', 'quality':'string', 'speed':'string', 'hub_id':'string',"
              " 'default_steps':'integer', 'supported':'boolean|the engine runs this family',"
              " 'default_guidance':'number|registry models only', 'default_width':'integer',"
              " 'default_height':'integer', 'uses_negative_prompt':'boolean|guidance > 1 (CFG)',"
              " 'scheduler':'string|diffusers _class_name the original ran',"
              " 'installed':'boolean', 'loaded':'boolean',"
              " 'ram_bytes':'integer|about the peak memory of one image at the default size, in dtype',"
              " 'dtype':'string|f32 or bf16, as serve --dtype',"
              " 'download_bytes':'integer|about what models fetch downloads (null: not a registry model)',"
              " 'disk_bytes':'integer|what the installed folder takes (null: not installed)',"
              " 'preview':'string|taesd (its TAESD was fetched with it) or latent (RGB projection)',"
              " 'guidance_embedded':'boolean|LCM: guidance is a UNet input, the negative prompt is never used'}"},
    {"Duration", "{'description':'30, 60 or full (null or <= 0 also mean the whole song); default 60',"
                 " 'oneOf':[{'type':'integer', 'enum':[30, 60]}, {'type':'string', 'enum':['30', '60', 'full']}],"
                 " 'nullable':true}"},
    {"PromptVersion", "{'type':'string', 'enum':['v1', 'v3', 'v4'], 'default':'v4'}"},
    {"AnalyzeRequest", "{'url*':'string|an http(s) URL that yt-dlp or a direct download accepts',"
                       " 'duration':'#Duration', 'prompt_version':'#PromptVersion',"
                       " 'band':'string|the artist, when the user corrected it', 'song':'string|the song, likewise'}"},
    {"AnalyzeUpload", "{'file*':{'type':'string', 'format':'binary', 'description':'the audio (field audio also works)'},"
                      " 'duration':'string|30, 60 or full', 'prompt_version':'string|v1, v3 or v4',"
                      " 'band':'string', 'song':'string'}"},
    {"PromptRequest", "{'url':'string|required unless features are given', 'duration':'#Duration',"
                      " 'prompt_version':'#PromptVersion', 'band_name':'string|replaces the artist found',"
                      " 'song_title':'string|replaces the song found',"
                      " 'genre':'string|with features: the raw genre (else inferred from the features)',"
                      " 'features':'object|a feature map as an analysis returns it; with it nothing is downloaded'}"},
    {"QuickRequest", "{'url*':'string'}"},
    {"LlmRequest", "{'song_title*':'string', 'artist*':'string',"
                   " 'api_key':'string|default: the server environment OPENAI_API_KEY',"
                   " 'genre':'string', 'additional_context':'string',"
                   " 'temperature':{'type':'number', 'minimum':0, 'maximum':1, 'default':0.7}}"},
    {"ApiKeyRequest", "{'api_key*':'string'}"},
    {"GenerateParams", "{'negative_prompt':{'type':'string', 'maxLength':4000},"
                       " 'model':'string|a name from /api/models; default: the first installed',"
                       " 'steps':{'type':'integer', 'minimum':1, 'maximum':50, 'description':'alias num_steps; default: the model default'},"
                       " 'variations':{'type':'integer', 'minimum':1, 'maximum':8, 'default':1,"
                       "               'description':'alias num_variations; at most 4 unless the server runs with --max-variations 8'},"
                       " 'guidance':{'type':'number', 'minimum':0, 'maximum':20,"
                       "             'description':'alias guidance_scale; default: the model default (default_guidance), 8.5 for a folder'},"
                       " 'width':{'type':'integer', 'minimum':64, 'maximum':1024, 'multipleOf':8,"
                       "          'description':'default: the model default (default_width), 512 for a folder'},"
                       " 'height':{'type':'integer', 'minimum':64, 'maximum':1024, 'multipleOf':8,"
                       "           'description':'default: the model default (default_height), 512 for a folder'},"
                       " 'seed':{'type':'integer', 'minimum':0, 'maximum':9007199254740991,"
                       "         'description':'variation i uses seed + i; random when absent'},"
                       " 'features':'object|kept with the images for the gallery',"
                       " 'source':'object|url, band, song, genre: kept with the images'}"},
    {"GenerateRequest", "{'allOf':[{'$ref':'#/components/schemas/GenerateParams'},"
                        "          {'type':'object', 'required':['prompt'],"
                        "           'properties':{'prompt':{'type':'string', 'minLength':1, 'maxLength':4000}}}]}"},
    {"JobAccepted", "{'success':'boolean', 'job_id':'integer', 'state':'string|queued',"
                    " 'seed':'integer|generation: the first variation seed',"
                    " 'params':'object|generation: the normalised parameters',"
                    " 'bytes':'integer|upload: the bytes received'}"},
    {"Job", "{'success':'boolean', 'id':'integer', 'kind':{'type':'string', 'enum':['analyze', 'generate']},"
            " 'state':{'type':'string', 'enum':['queued', 'running', 'done', 'failed', 'canceled']},"
            " 'params':'object', 'result':'object?|analysis: features, band, song, genre, prompts; generation: images',"
            " 'error':'string?', 'attempts':'integer|times it was claimed', 'worker':'string?|the worker that ran it last', 'batch_id':'integer?', 'created_ms':'integer',"
            " 'started_ms':'integer?', 'finished_ms':'integer?'}"},
    {"Deleted", "{'success':'boolean', 'id':'integer', 'deleted':'boolean'}"},
    {"Canceled", "{'success':'boolean', 'id':'integer', 'state':{'type':'string', 'enum':['canceled', 'canceling']}}"},
    {"Image", "{'id':'integer', 'url':'string', 'filename':'string', 'variation':'integer', 'seed':'integer',"
              " 'seconds':'number', 'width':'integer', 'height':'integer'}"},
    {"Gallery", "{'success':'boolean', 'page':'integer', 'per_page':'integer', 'total':'integer',"
                " 'items':'[#GalleryItem]'}"},
    {"GalleryItem", "{'id':'integer', 'job_id':'integer', 'variation':'integer', 'url':'string', 'seed':'integer',"
                    " 'width':'integer', 'height':'integer', 'seconds':'number', 'created_ms':'integer',"
                    " 'meta':'object|prompt, parameters, source, and the features that are numbers (the curves are in the job)'}"},
    {"BatchRequest", "{'allOf':[{'$ref':'#/components/schemas/GenerateParams'},"
                     "          {'type':'object', 'required':['urls'], 'properties':{"
                     "            'urls':{'type':'array', 'minItems':1, 'maxItems':50, 'items':{'type':'string'}},"
                     "            'duration':{'$ref':'#/components/schemas/Duration'},"
                     "            'prompt_version':{'$ref':'#/components/schemas/PromptVersion'}}}]}"},
    {"BatchAccepted", "{'success':'boolean', 'batch_id':'integer', 'analysis_jobs':'[integer]'}"},
    {"Batch", "{'success':'boolean', 'id':'integer', 'created_ms':'integer',"
              " 'state':{'type':'string', 'enum':['running', 'finished']}, 'total':'integer',"
              " 'done':'integer', 'failed':'integer', 'active':'integer', 'params':'object', 'duration':'number',"
              " 'items':'[#BatchItem]|GET /api/batches/{id} only'}"},
    {"BatchItem", "{'index':'integer', 'url':'string',"
                  " 'analysis':'object?|id, state, error, band, song, genre, prompt',"
                  " 'generation':'object?|id, state, error, images, seed'}"},
    {"BatchList", "{'success':'boolean', 'batches':'[#Batch]'}"},
    {"Metadata", "{'success':'boolean', 'band':'string', 'song':'string', 'genre':'string', 'genre_source':'string',"
                 " 'features':'object', 'is_cached':'boolean|the audio came from the cache', 'job_id':'integer'}"},
    {"PromptAnswer", "{'success':'boolean', 'prompt':'string', 'negative_prompt':'string', 'band':'string',"
                     " 'song':'string', 'genre_hint':'string', 'genre_source':'string|metadata, youtube, spotify,"
                     " musicbrainz, inferred, default or none', 'features':'object', 'prompt_version':'integer',"
                     " 'job_id':'integer|when an analysis ran'}"},
    {"QuickMetadata", "{'success':'boolean', 'band':'string', 'song':'string', 'genre':'string',"
                      " 'genre_raw':'string', 'genre_source':'string', 'title':'string'}"},
    {"LlmPrompt", "{'success':'boolean', 'prompt':'string', 'tokens_used':'integer',"
                  " 'estimated_cost':'number|USD, at the output token price (an upper bound)', 'model':'string'}"},
    {"FetchRequest", "{'name*':'string|a model name from /api/models'}"},
    {"FetchState", "{'success':'boolean', 'state':{'type':'string', 'enum':['idle', 'downloading', 'done', 'failed']},"
                   " 'name':'string', 'file':'string|the file being downloaded', 'done':'integer|its bytes so far',"
                   " 'total':'integer|its size, -1 when unknown', 'files_done':'integer', 'bytes_done':'integer',"
                   " 'seconds':'number', 'error':'string|when failed', 'path':'string|the model folder, when done'}"},
    {"TokenRequest", "{'text*':'string|the prompt', 'model':'string|a name from /api/models; default: the default model'}"},
    {"TokenCount", "{'success':'boolean', 'count':'integer|tokens, start and end included',"
                   " 'limit':'integer|77: what the text encoder reads', 'ignored':'string|the text past the limit, as the tokenizer reads it'}"},
    {"ApiKeyCheck", "{'success':'boolean', 'valid':'boolean', 'message':'string'}"},
    {"ImagesAnswer", "{'success':'boolean', 'images':'[#Image]', 'count':'integer', 'generation_times':'[number]',"
                     " 'total_time':'number', 'seed':'integer', 'job_id':'integer'}"},
};

static const struct { int status; const char *text; } statuses[] = {
    {200, "OK"},
    {202, "Queued: follow the job on /ws/progress or GET /api/jobs/{id}"},
    {400, "Bad input: field names the request field at fault and the message its allowed range"},
    {401, "A valid access token is required (the server runs with --token)"},
    {403, "The request came from a page of another site (Origin) or named another host (Host); "
          "see --allowed-origin"},
    {404, "Not found"},
    {409, "The job has already finished"},
    {411, "An upload needs a Content-Length"},
    {413, "The body or the upload is over the limit"},
    {415, "A JSON body needs Content-Type: application/json"},
    {500, "The job failed; the message says why"},
    {502, "A remote service failed (yt-dlp, the chat endpoint)"},
    {503, "The queue is full; retry later (Retry-After)"},
    {504, "A remote service did not answer in time"},
};

static const char ws_doc[] =
    "WebSocket (text frames of JSON, at most 64 KiB). Send {type: subscribe, jobs: [ids]} "
    "(and unsubscribe, ping) for events {type, job, ...}: state (the job from the database, "
    "first, also after a reconnect), stage (queued, loading_model, download with percent, "
    "decoding, analysing, genre, prompts, encoding, decoding_image), step (variation, "
    "variations, step, steps, elapsed, eta, preview: a data: URL of a PNG), done (images, seed, "
    "generation_times, total_time; an analysis: its result) and error (message). Or send the "
    "original {type: generate, prompt, negative_prompt, num_steps, num_variations, model} for "
    "its messages: job (id, seed), progress (variation, total_variations, step, total_steps, "
    "progress = (i/n + k/(s n)) 100 capped at 99) for each variation at each step, "
    "generation_time (variation, time) for each variation, then complete (progress 100, "
    "images, count, generation_times, total_time, seed) or error. With a token: ?token=T.";
/* clang-format on */

static json_t *schema(json_t *v);

static json_t *ref(const char *name, size_t n)
{
    return json_pack("{s:s++#}", "$ref", "#/components/schemas/", "", name, (int)n);
}

/* "TYPE[?][|description]" -> a schema. */
static json_t *short_type(const char *spec)
{
    const char *bar = strchr(spec, '|');
    size_t n = bar ? (size_t)(bar - spec) : strlen(spec);
    int nullable = n && spec[n - 1] == '?';
    n -= (size_t)nullable;
    json_t *t;
    if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {
        char inner[128];
        snprintf(inner, sizeof inner, "%.*s", (int)(n - 2), spec + 1);
        t = json_pack("{s:s, s:o}", "type", "array", "items", short_type(inner));
    } else if (spec[0] == '#') {
        t = ref(spec + 1, n - 1);
        if (nullable || bar)
            t = json_pack("{s:[o]}", "allOf", t); /* $ref takes no siblings in OpenAPI 3.0 */
    } else {
        t = json_pack("{s:s#}", "type", spec, (int)n);
    }
    if (t && nullable)
        json_object_set_new(t, "nullable", json_true());
    if (t && bar)
        json_object_set_new(t, "description", json_string(bar + 1));
    return t;
}

/* A properties map -> {properties, required}, each property expanded. */
static void properties(json_t *out, json_t *props)
{
    json_t *p = json_object(), *req = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v)
    {
        size_t n = strlen(k);
        char name[128];
        int required = n && k[n - 1] == '*';
        snprintf(name, sizeof name, "%.*s", (int)(n - (size_t)required), k);
        json_object_set_new(p, name, schema(v));
        if (required)
            json_array_append_new(req, json_string(name));
    }
    json_object_set_new(out, "properties", p);
    if (json_array_size(req))
        json_object_set_new(out, "required", req);
    else
        json_decref(req);
}

static json_t *schema(json_t *v)
{
    if (json_is_string(v))
        return short_type(json_string_value(v));
    if (!json_is_object(v))
        return json_incref(v);
    int full = json_is_string(json_object_get(v, "type")) || json_object_get(v, "allOf") ||
               json_object_get(v, "oneOf") || json_object_get(v, "$ref");
    json_t *out = json_object();
    if (!full) {
        json_object_set_new(out, "type", json_string("object"));
        properties(out, v);
        return out;
    }
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (!strcmp(k, "properties") && json_is_object(x)) {
            properties(out, x);
        } else if (!strcmp(k, "items") || !strcmp(k, "additionalProperties")) {
            json_object_set_new(out, k, schema(x));
        } else if (!strcmp(k, "allOf") || !strcmp(k, "oneOf")) {
            json_t *arr = json_array();
            size_t i;
            json_t *e;
            json_array_foreach(x, i, e) json_array_append_new(arr, schema(e));
            json_object_set_new(out, k, arr);
        } else if (!json_object_get(out, k)) {
            json_object_set(out, k, x);
        }
    }
    return out;
}

/* Single-quoted JSON -> jansson. A malformed schema is a bug: it fails the start-up. */
static json_t *load_sq(const char *name, const char *text)
{
    char *t = strdup(text);
    if (!t)
        return NULL;
    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t err;
    json_t *j = json_loads(t, JSON_REJECT_DUPLICATES, &err);
    free(t);
    if (!j)
        M2P_LOGE("openapi: schema %s: %s at column %d", name, err.text, err.column);
    return j;
}

static const char *status_text(int status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status)
            return statuses[i].text;
    return "Error";
}

static json_t *response(int status, const char *answer)
{
    json_t *r = json_pack("{s:s}", "description", status_text(status));
    if (!answer)
        return r;
    json_t *sch = strchr(answer, '/')
                      ? json_pack("{s:s, s:s}", "type", "string", "format", "binary")
                      : ref(answer, strlen(answer));
    json_object_set_new(
        r, "content",
        json_pack("{s:{s:o}}", strchr(answer, '/') ? answer : "application/json", "schema", sch));
    return r;
}

static json_t *operation(const route *r)
{
    json_t *op = json_pack("{s:s, s:{}}", "summary", r->summary, "responses");
    json_t *resp = json_object_get(op, "responses");
    char code[8];
    snprintf(code, sizeof code, "%d", r->status);
    json_object_set_new(resp, code, response(r->status, r->answer));
    for (const char *e = r->errors; *e;) {
        char *end;
        long st = strtol(e, &end, 10);
        if (end == e)
            break;
        snprintf(code, sizeof code, "%ld", st);
        json_object_set_new(resp, code, response((int)st, "Error"));
        e = end;
    }
    json_object_set_new(resp, "401", response(401, "Error"));
    json_object_set_new(resp, "403", response(403, "Error"));
    if (r->body)
        json_object_set_new(resp, "415", response(415, "Error"));

    json_t *params = json_array();
    if (strstr(r->path, "{id}"))
        json_array_append_new(params,
                              json_pack("{s:s, s:s, s:b, s:{s:s, s:i}}", "name", "id", "in", "path",
                                        "required", 1, "schema", "type", "integer", "minimum", 1));
    for (int q = 0; q < 2 && r->query[q].name; q++)
        json_array_append_new(params, json_pack("{s:s, s:s, s:{s:s, s:I, s:I, s:I}}", "name",
                                                r->query[q].name, "in", "query", "schema", "type",
                                                "integer", "minimum", (json_int_t)r->query[q].lo,
                                                "maximum", (json_int_t)r->query[q].hi, "default",
                                                (json_int_t)r->query[q].def));
    if (json_array_size(params))
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);

    if (r->body || r->upload) {
        json_t *content = json_object();
        if (r->body)
            json_object_set_new(content, "application/json",
                                json_pack("{s:o}", "schema", ref(r->body, strlen(r->body))));
        if (r->upload)
            json_object_set_new(content, "multipart/form-data",
                                json_pack("{s:o}", "schema", ref(r->upload, strlen(r->upload))));
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:o}", "required", 1, "content", content));
    }
    return op;
}

char *openapi_build(void)
{
    json_t *comps = json_object(), *paths = json_object();
    int ok = comps && paths;
    for (size_t i = 0; ok && i < sizeof schemas / sizeof schemas[0]; i++) {
        json_t *raw = load_sq(schemas[i].name, schemas[i].text);
        ok = raw != NULL;
        if (ok)
            json_object_set_new(comps, schemas[i].name, schema(raw));
        json_decref(raw);
    }
    for (int i = 0; ok && i < api_n_routes; i++) {
        const route *r = &api_routes[i];
        json_t *item = json_object_get(paths, r->path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, r->path, item);
        }
        char m[8];
        size_t k = 0;
        for (; r->method[k] && k + 1 < sizeof m; k++)
            m[k] = (char)(r->method[k] | 0x20); /* lower case */
        m[k] = 0;
        json_object_set_new(item, m, operation(r));
    }
    json_object_set_new(paths, "/ws/progress",
                        json_pack("{s:{s:s, s:s, s:{s:{s:s}}}}", "get", "summary",
                                  "Progress of jobs (WebSocket)", "description", ws_doc,
                                  "responses", "101", "description", "Switching protocols"));
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{}, {s:[]}, {s:[]}], s:o, s:{s:o, s:{s:{s:s, s:s}, "
        "s:{s:s, s:s, s:s}}}}",
        "openapi", "3.0.3", "info", "title", "mus2pic", "version", M2P_VERSION, "description",
        "A song goes in, poster art comes out. Every long operation is a job in a persistent "
        "queue, with progress over /ws/progress. A server started with --token (required off "
        "loopback) needs Authorization: Bearer T or ?token=T on /api and /ws.",
        "security", "bearer", "token", "paths", paths, "components", "schemas", comps,
        "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "token", "type", "apiKey",
        "in", "query", "name", "token");
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    char *s = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    return s;
}
