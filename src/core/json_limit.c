/*
 * json_limit.c — the nesting pre-scan in front of jansson (see json_limit.h): one pass over the
 * bytes tracking only "inside a string" and "after a backslash", counting [ and { up and ] and }
 * down. Malformed text is left for jansson to report; only depth is judged here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_limit.h"

/* Depth, and where (line, column, offset) it first went past max. */
static int scan(const char *t, size_t n, int max, int *line, int *col, size_t *pos)
{
    int depth = 0, deepest = 0, in_str = 0, esc = 0, ln = 1, cl = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        cl++;
        if (ch == '\n') {
            ln++;
            cl = 0;
        }
        if (in_str) {
            if (esc)
                esc = 0;
            else if (ch == '\\')
                esc = 1;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest)
                deepest = depth;
            if (depth > max) {
                *line = ln;
                *col = cl;
                *pos = i;
                return deepest;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

int m2p_json_depth(const char *text, size_t n, int max)
{
    int line, col;
    size_t pos;
    return text ? scan(text, n, max, &line, &col, &pos) : 0;
}

json_t *m2p_json_loadb(const char *text, size_t n, size_t flags, json_error_t *err)
{
    int line = 0, col = 0;
    size_t pos = 0;
    if (!text)
        return NULL;
    if (scan(text, n, M2P_JSON_MAX_DEPTH, &line, &col, &pos) > M2P_JSON_MAX_DEPTH) {
        if (err) {
            memset(err, 0, sizeof *err);
            err->line = line;
            err->column = col;
            err->position = (int)pos;
            snprintf(err->text, sizeof err->text, "nested deeper than %d levels",
                     M2P_JSON_MAX_DEPTH);
            snprintf(err->source, sizeof err->source, "<buffer>");
        }
        return NULL;
    }
    return json_loadb(text, n, flags, err);
}

json_t *m2p_json_loads(const char *text, size_t flags, json_error_t *err)
{
    return text ? m2p_json_loadb(text, strlen(text), flags, err) : NULL;
}

static _Thread_local unsigned json_alloc_failed;

static void *json_tracked_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        json_alloc_failed++;
    return p;
}

static void json_tracked_free(void *p)
{
    free(p);
}

void m2p_json_track_alloc(void)
{
    /* the same allocator as jansson's default, so values made before this still free alike */
    json_set_alloc_funcs(json_tracked_malloc, json_tracked_free);
}

unsigned m2p_json_alloc_failures(void)
{
    return json_alloc_failed;
}
