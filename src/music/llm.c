/*
 * llm.c — prompt writing by a chat model on any OpenAI-compatible endpoint.
 *
 * Follows the original's llm_prompt_generator: POST {base_url}/chat/completions with a system
 * message (album-cover art director: evoke the song's feeling, the artist's visual world, era
 * and genre, never literal, no text, no detailed faces, at most 50 words, only the prompt) and
 * a user message "Song: "<song>"\nArtist: <artist>[\nGenre: <genre>][\nContext: <context>]",
 * max_tokens 100; the answer is trimmed, unquoted, stripped of a "Prompt:" prefix and gets
 * ", masterpiece, best quality" when it names no quality keyword. Three tries with backoff on
 * network errors, 429 and 5xx; a 4xx is final. Bearer authorisation with the API key.
 * m2p_llm_key_check asks the endpoint whether it takes a key (GET {base_url}/models).
 */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "music/net.h"

#define LLM_TRIES 3
#define LLM_BACKOFF_S 0.25 /* then 0.5 */

static const char *SYSTEM_PROMPT =
    "You are an art director writing prompts for a fast text-to-image model that paints album "
    "cover art.\n"
    "Never read a song title literally: ask what feeling the song evokes and what world it "
    "builds, and paint that with symbols, not objects named in the title.\n"
    "Use what you know of the artist's visual identity, the era and the genre (disco glamour is "
    "not 80s synthwave, which is not 90s grunge).\n"
    "Strong colours and lighting work best. No text, letters or logos in the image; avoid "
    "detailed faces (use silhouettes, crowds or abstract forms).\n"
    "At most 50 words. Reply with the prompt only: no quotes, no explanation, no prefix.\n"
    "Example - Song: \"Dancing Queen\" by ABBA (Disco): glittering 70s disco euphoria, golden "
    "stage lights bursting through sparkles, joyful silhouettes dancing, warm champagne and "
    "gold tones, mirror reflections in rainbow prisms, masterpiece, best quality";

/* Is the key one header value: printable ASCII, no CR/LF (it goes into "Authorization:"). */
int m2p_llm_key_ok(const char *key)
{
    for (const unsigned char *c = (const unsigned char *)key; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            return 0;
    return 1;
}

m2p_llm_params m2p_llm_default_params(void)
{
    m2p_llm_params p;
    memset(&p, 0, sizeof p);
    const char *u = getenv("MUS2PIC_LLM_URL"), *m = getenv("MUS2PIC_LLM_MODEL");
    const char *k = getenv("OPENAI_API_KEY");
    p.base_url = u && u[0] ? u : "https://api.openai.com/v1";
    p.model = m && m[0] ? m : "gpt-4o-mini";
    p.api_key = k && k[0] ? k : NULL;
    p.temperature = 0.7;
    p.additional_context = NULL;
    p.timeout_s = 30;
    return p;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* trim, unquote, drop "Prompt:", add quality words; returns malloc'd text */
static char *clean_answer(const char *in)
{
    const char *a = in;
    while (*a && isspace((unsigned char)*a))
        a++;
    size_t n = strlen(a);
    while (n && isspace((unsigned char)a[n - 1]))
        n--;
    for (int q = 0; q < 2; q++) {
        char qc = q == 0 ? '"' : '\'';
        if (n >= 2 && a[0] == qc && a[n - 1] == qc) {
            a++;
            n -= 2;
        }
    }
    if (n >= 7 && strncasecmp(a, "prompt:", 7) == 0) {
        a += 7;
        n -= 7;
        while (n && isspace((unsigned char)*a))
            a++, n--;
        while (n && isspace((unsigned char)a[n - 1]))
            n--;
    }
    if (n == 0)
        return strdup("");
    char *low = strndup(a, n);
    if (!low)
        return NULL;
    for (char *p = low; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int has_quality = strstr(low, "masterpiece") || strstr(low, "best quality") ||
                      strstr(low, "high quality");
    free(low);
    if (has_quality)
        return strndup(a, n);
    while (n && (a[n - 1] == '.' || a[n - 1] == ','))
        n--;
    const char *tail = ", masterpiece, best quality";
    char *out = malloc(n + strlen(tail) + 1);
    if (!out)
        return NULL;
    memcpy(out, a, n);
    strcpy(out + n, tail);
    return out;
}

static char *request_body(const m2p_llm_params *p, const char *song, const char *artist,
                          const char *genre)
{
    size_t cap = strlen(song) + strlen(artist) + (genre ? strlen(genre) : 0) +
                 (p->additional_context ? strlen(p->additional_context) : 0) + 64;
    char *user = malloc(cap);
    if (!user)
        return NULL;
    int k = snprintf(user, cap, "Song: \"%s\"\nArtist: %s", song, artist);
    if (genre && genre[0])
        k += snprintf(user + k, cap - (size_t)k, "\nGenre: %s", genre);
    if (p->additional_context && p->additional_context[0])
        snprintf(user + k, cap - (size_t)k, "\nContext: %s", p->additional_context);
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i, s:f}", "model", p->model,
                             "messages", "role", "system", "content", SYSTEM_PROMPT, "role",
                             "user", "content", user, "max_tokens", 100, "temperature",
                             p->temperature);
    free(user);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return s;
}

int m2p_prompt_llm(const m2p_llm_params *params, const char *song, const char *artist,
                   const char *genre, char **prompt, int *tokens_used)
{
    if (!prompt)
        return m2p_error(M2P_EINVAL, "llm: output pointer required");
    *prompt = NULL;
    if (tokens_used)
        *tokens_used = 0;
    m2p_llm_params defaults = m2p_llm_default_params();
    const m2p_llm_params *p = params ? params : &defaults;
    if (!p->api_key || !p->api_key[0])
        return m2p_error(M2P_EINVAL, "llm: no API key (set OPENAI_API_KEY or pass api_key)");
    if (!m2p_llm_key_ok(p->api_key))
        return m2p_error(M2P_EINVAL, "llm: the API key has control characters (CR, LF, ...); "
                                     "paste the key alone");
    if (!(p->temperature >= 0.0 && p->temperature <= 1.0))
        return m2p_error(M2P_EINVAL, "llm: temperature %g outside 0..1", p->temperature);
    if (!song || !song[0] || !artist || !artist[0])
        return m2p_error(M2P_EINVAL, "llm: song title and artist are required");
    if (!p->base_url || strncmp(p->base_url, "http", 4) != 0)
        return m2p_error(M2P_EINVAL, "llm: base_url must be an http(s) URL");
    if (!p->model || !p->model[0])
        return m2p_error(M2P_EINVAL, "llm: model required");

    char *body = request_body(p, song, artist, genre);
    size_t ul = strlen(p->base_url) + 32, kl = strlen(p->api_key) + 32;
    char *url = malloc(ul), *auth = malloc(kl);
    int rc = 0;
    if (!body || !url || !auth) {
        rc = m2p_error(M2P_ENOMEM, "out of memory");
        goto out;
    }
    size_t bl = strlen(p->base_url);
    while (bl && p->base_url[bl - 1] == '/')
        bl--;
    snprintf(url, ul, "%.*s/chat/completions", (int)bl, p->base_url);
    snprintf(auth, kl, "Authorization: Bearer %s", p->api_key);
    const char *hdr[] = {auth, "Content-Type: application/json", "Accept: application/json",
                         NULL};
    net_request rq = {.method = "POST", .url = url, .headers = hdr, .body = body,
                      .timeout_s = p->timeout_s > 0 ? p->timeout_s : 30};
    for (int attempt = 0; attempt < LLM_TRIES; attempt++) {
        if (attempt)
            sleep_s(LLM_BACKOFF_S * (double)(1 << (attempt - 1)));
        long status = 0;
        char *resp = NULL;
        rc = net_fetch(&rq, &status, &resp, NULL);
        if (rc) /* network error or timeout: try again */
            continue;
        if (status == 429 || status >= 500) {
            rc = m2p_error(M2P_ENETWORK, "llm: %s answered HTTP %ld", url, status);
            free(resp);
            continue;
        }
        json_t *j = json_loads(resp, 0, NULL);
        if (status != 200) {
            const char *msg = json_string_value(
                json_object_get(json_object_get(j, "error"), "message"));
            rc = status == 401 || status == 403
                     ? m2p_error(M2P_EINVAL, "llm: API key rejected (HTTP %ld)%s%s", status,
                                 msg ? ": " : "", msg ? msg : "")
                     : m2p_error(M2P_EINVAL, "llm: request refused (HTTP %ld)%s%s", status,
                                 msg ? ": " : "", msg ? msg : "");
            json_decref(j);
            free(resp);
            break; /* a 4xx will not change by asking again */
        }
        free(resp);
        const json_t *content = json_object_get(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
            "content");
        if (!json_is_string(content)) {
            rc = m2p_error(M2P_EFORMAT, "llm: malformed answer (no choices[0].message.content)");
            json_decref(j);
            break;
        }
        *prompt = clean_answer(json_string_value(content));
        if (!*prompt)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
        else if (tokens_used)
            *tokens_used = (int)json_integer_value(
                json_object_get(json_object_get(j, "usage"), "total_tokens"));
        json_decref(j);
        if (*prompt && !(*prompt)[0]) {
            free(*prompt);
            *prompt = NULL;
            rc = m2p_error(M2P_EFORMAT, "llm: the model answered an empty prompt");
        }
        break;
    }
out:
    free(body);
    free(url);
    free(auth);
    return rc;
}

int m2p_llm_key_check(const m2p_llm_params *params, const char *key, int *valid)
{
    if (!valid)
        return m2p_error(M2P_EINVAL, "llm: valid is NULL");
    *valid = 0;
    if (!key || !*key)
        return m2p_error(M2P_EINVAL, "llm: no API key to check");
    if (!m2p_llm_key_ok(key))
        return m2p_error(M2P_EINVAL, "llm: the API key has control characters (CR, LF, ...); "
                                     "paste the key alone");
    m2p_llm_params p = params ? *params : m2p_llm_default_params();
    size_t bl = strlen(p.base_url);
    while (bl && p.base_url[bl - 1] == '/')
        bl--;
    char url[1100], auth[600];
    if (bl >= 1000 || strlen(key) >= 512)
        return m2p_error(M2P_EINVAL, "llm: the endpoint URL or the API key is too long");
    snprintf(url, sizeof url, "%.*s/models", (int)bl, p.base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hdr[] = {auth, "Accept: application/json", NULL};
    net_request rq = {.method = "GET", .url = url, .headers = hdr, .timeout_s = 20};
    long status = 0;
    char *body = NULL;
    int rc = net_fetch(&rq, &status, &body, NULL);
    free(body);
    if (rc)
        return rc;
    if (status != 200 && status != 401 && status != 403)
        return m2p_error(M2P_ENETWORK, "%s answered HTTP %ld", url, status);
    *valid = status == 200;
    return 0;
}
