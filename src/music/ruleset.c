/*
 * ruleset.c — the prompt rules as data, below everything that reads them: the embedded
 * prompt-rules.json parsed once (rules_root, rules_section), and the genre normalisation table
 * it holds (genre_normalize: ordered weighted substring table, highest weight wins, the first
 * recorded wins a tie, "abstract" when nothing matches) with the raw-genre text forms. The
 * expression evaluator (rules.c), the builders (prompt.c), band/song (band_song.c) and the genre
 * chain (genre.c) all build on this file; it uses none of them.
 */
#include "music/ruleset.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "music/text.h"

/* ---------------------------------------------------------------------------------------- */
/* The embedded data                                                                        */
/* ---------------------------------------------------------------------------------------- */

static json_t *g_root;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_parse_err[256];

static void rules_load(void)
{
    json_error_t err;
    g_root = json_loadb(m2p_rules_json, m2p_rules_json_len, 0, &err);
    if (!g_root)
        snprintf(g_parse_err, sizeof g_parse_err, "line %d: %s", err.line, err.text);
}

const json_t *rules_root(void)
{
    pthread_once(&g_once, rules_load);
    if (!g_root)
        m2p_error(M2P_EINTERNAL, "embedded prompt rules do not parse: %s", g_parse_err);
    return g_root;
}

const json_t *rules_section(const char *name)
{
    const json_t *root = rules_root();
    if (!root)
        return NULL;
    const json_t *s = json_object_get(root, name);
    if (!s)
        m2p_error(M2P_EINTERNAL, "prompt rules have no section '%s'", name);
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Normalisation                                                                            */
/* ---------------------------------------------------------------------------------------- */

static const json_t *norm_table(void)
{
    const json_t *s = rules_section("genre_normalize");
    return s ? json_object_get(s, "table") : NULL;
}

const char *genre_normalize_json(const json_t *raw)
{
    const json_t *table = norm_table();
    if (!raw || json_is_null(raw) || !table)
        return "abstract";
    size_t n_el = json_is_array(raw) ? json_array_size(raw) : 1;
    size_t n_keys = json_array_size(table);
    /* the ordered map "scores": recorded keys in order of first recording */
    const char *best = NULL;
    long long best_w = 0;
    for (size_t e = 0; e < n_el; e++) {
        const json_t *el = json_is_array(raw) ? json_array_get(raw, e) : raw;
        if (!json_is_string(el)) /* the original fails on non-strings; we skip them */
            continue;
        char *g = text_lower(json_string_value(el));
        if (!g)
            continue;
        for (size_t k = 0; k < n_keys; k++) {
            const json_t *row = json_array_get(table, k);
            const char *key = json_string_value(json_array_get(row, 0));
            long long w = json_integer_value(json_array_get(row, 1));
            if (!key || !strstr(g, key))
                continue;
            /* A key recorded earlier with the same weight keeps its place: only a strictly
             * larger weight replaces the current best, which is the first-recorded tie rule. */
            if (!best || w > best_w) {
                best = key;
                best_w = w;
            }
        }
        free(g);
    }
    return best ? best : "abstract";
}

json_t *genre_raw_parse(const char *raw)
{
    if (!raw || !raw[0])
        return json_null();
    if (raw[0] == '[') {
        json_t *j = json_loads(raw, JSON_REJECT_DUPLICATES, NULL);
        if (j && json_is_array(j))
            return j;
        json_decref(j);
    }
    return json_string(raw);
}

void genre_raw_format(const json_t *list, char *out, size_t len)
{
    if (!len)
        return;
    out[0] = 0;
    size_t n = json_array_size(list);
    if (n == 0)
        return;
    if (n == 1) {
        const char *s = json_string_value(json_array_get(list, 0));
        if (s && strlen(s) < len)
            memcpy(out, s, strlen(s) + 1);
        return;
    }
    json_t *copy = json_array();
    if (!copy)
        return;
    for (size_t i = 0; i < n; i++) {
        json_array_append(copy, json_array_get(list, i));
        char *t = json_dumps(copy, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!t || strlen(t) >= len) {
            free(t);
            break;
        }
        memcpy(out, t, strlen(t) + 1);
        free(t);
    }
    json_decref(copy);
}

const char *m2p_genre_normalize(const char *raw)
{
    json_t *j = genre_raw_parse(raw);
    const char *g = genre_normalize_json(j);
    json_decref(j);
    return g;
}

int genre_word_match(const char *t, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strstr(t, key); p; p = strstr(p + 1, key)) {
        int before = p > t && isalnum((unsigned char)p[-1]);
        int after = isalnum((unsigned char)p[kl]);
        if (!before && !after)
            return 1;
    }
    return 0;
}

const char *genre_table_word(const char *lower_text)
{
    const json_t *table = norm_table();
    size_t k;
    const json_t *row;
    json_array_foreach(table, k, row)
    {
        const char *key = json_string_value(json_array_get(row, 0));
        if (key && strcmp(key, "abstract") != 0 && genre_word_match(lower_text, key))
            return key;
    }
    return NULL;
}
