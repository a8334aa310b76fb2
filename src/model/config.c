/*
 * config.c — typed access to a part's config.json (diffusers ConfigMixin / transformers
 * PretrainedConfig files) with defaults for absent or null keys and errors that name the file
 * and the key. Parsing is jansson's strict decoder; nothing here knows any particular model.
 */
#include "model/config.h"

#include "core/error.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct m2p_config {
    char *path;
    json_t *root;
};

int config_open(const char *path, m2p_config **out)
{
    *out = NULL;
    size_t n = strlen(path);
    char *file;
    if (n >= 5 && strcmp(path + n - 5, ".json") == 0) {
        file = strdup(path);
    } else {
        file = malloc(n + 16);
        if (file)
            snprintf(file, n + 16, "%s/config.json", path);
    }
    if (!file)
        return m2p_error(M2P_ENOMEM, "out of memory reading config %s", path);
    struct stat st;
    if (stat(file, &st) != 0) {
        int rc = m2p_error(M2P_ENOTFOUND, "%s: file not found", file);
        free(file);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        int rc =
            m2p_error(M2P_EFORMAT, "%s: invalid JSON at line %d: %s", file, jerr.line, jerr.text);
        free(file);
        return rc;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        int rc = m2p_error(M2P_EFORMAT, "%s: not a JSON object", file);
        free(file);
        return rc;
    }
    m2p_config *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(root);
        free(file);
        return m2p_error(M2P_ENOMEM, "out of memory reading config %s", path);
    }
    c->path = file;
    c->root = root;
    *out = c;
    return 0;
}

void config_free(m2p_config *c)
{
    if (!c)
        return;
    json_decref(c->root);
    free(c->path);
    free(c);
}

const char *config_path(const m2p_config *c)
{
    return c->path;
}

static json_t *get(const m2p_config *c, const char *key)
{
    json_t *v = json_object_get(c->root, key);
    return json_is_null(v) ? NULL : v;
}

int config_has(const m2p_config *c, const char *key)
{
    return get(c, key) != NULL;
}

static int missing(const m2p_config *c, const char *key)
{
    return m2p_error(M2P_EFORMAT, "%s: missing key '%s'", c->path, key);
}

static int bad_type(const m2p_config *c, const char *key, const char *what)
{
    return m2p_error(M2P_EFORMAT, "%s: '%s' must be %s", c->path, key, what);
}

/* JSON integer (or a real with an integral value, as some writers emit 1.0) -> int. */
static int as_int(const m2p_config *c, const char *key, json_t *v, int *out)
{
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && fabs(json_real_value(v)) < 9.2e18 &&
             json_real_value(v) == (double)(long long)json_real_value(v))
        d = json_real_value(v); /* range first: casting 1e92 to long long is undefined (fuzz_config) */
    else
        return bad_type(c, key, "an integer");
    if (d < -2147483647.0 || d > 2147483647.0)
        return bad_type(c, key, "an integer in the int range");
    *out = (int)d;
    return 0;
}

int config_int(const m2p_config *c, const char *key, int *out)
{
    json_t *v = get(c, key);
    if (!v)
        return missing(c, key);
    return as_int(c, key, v, out);
}

int config_opt_int(const m2p_config *c, const char *key, int def, int *out)
{
    json_t *v = get(c, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return as_int(c, key, v, out);
}

int config_float(const m2p_config *c, const char *key, float *out)
{
    json_t *v = get(c, key);
    if (!v)
        return missing(c, key);
    if (!json_is_number(v))
        return bad_type(c, key, "a number");
    *out = (float)json_number_value(v);
    return 0;
}

int config_opt_float(const m2p_config *c, const char *key, float def, float *out)
{
    if (!get(c, key)) {
        *out = def;
        return 0;
    }
    return config_float(c, key, out);
}

int config_opt_bool(const m2p_config *c, const char *key, int def, int *out)
{
    json_t *v = get(c, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return bad_type(c, key, "true or false");
    *out = json_is_true(v);
    return 0;
}

int config_string(const m2p_config *c, const char *key, const char **out)
{
    json_t *v = get(c, key);
    if (!v)
        return missing(c, key);
    if (!json_is_string(v))
        return bad_type(c, key, "a string");
    *out = json_string_value(v);
    return 0;
}

int config_opt_string(const m2p_config *c, const char *key, const char *def, const char **out)
{
    if (!get(c, key)) {
        *out = def;
        return 0;
    }
    return config_string(c, key, out);
}

int config_int_array(const m2p_config *c, const char *key, int *out, int max, int *n)
{
    json_t *v = get(c, key);
    if (!v)
        return missing(c, key);
    if (!json_is_array(v))
        return bad_type(c, key, "an array of integers");
    size_t len = json_array_size(v);
    if (len == 0 || len > (size_t)max)
        return m2p_error(M2P_EFORMAT, "%s: '%s' has %zu entries, expected 1 to %d", c->path, key,
                         len, max);
    for (size_t i = 0; i < len; i++) {
        int rc = as_int(c, key, json_array_get(v, i), &out[i]);
        if (rc)
            return bad_type(c, key, "an array of integers");
    }
    *n = (int)len;
    return 0;
}

int config_string_array(const m2p_config *c, const char *key, const char **out, int max, int *n)
{
    json_t *v = get(c, key);
    if (!v)
        return missing(c, key);
    if (!json_is_array(v))
        return bad_type(c, key, "an array of strings");
    size_t len = json_array_size(v);
    if (len == 0 || len > (size_t)max)
        return m2p_error(M2P_EFORMAT, "%s: '%s' has %zu entries, expected 1 to %d", c->path, key,
                         len, max);
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s))
            return bad_type(c, key, "an array of strings");
        out[i] = json_string_value(s);
    }
    *n = (int)len;
    return 0;
}

int config_int_per_block(const m2p_config *c, const char *key, int n, int def, int *out)
{
    json_t *v = get(c, key);
    if (!v) {
        if (def < 0)
            return missing(c, key);
        for (int i = 0; i < n; i++)
            out[i] = def;
        return 0;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) != (size_t)n)
            return m2p_error(M2P_EFORMAT, "%s: '%s' has %zu entries, expected %d (one per block)",
                             c->path, key, json_array_size(v), n);
        for (int i = 0; i < n; i++) {
            int rc = as_int(c, key, json_array_get(v, (size_t)i), &out[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    int x = 0;
    int rc = as_int(c, key, v, &x);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        out[i] = x;
    return 0;
}
