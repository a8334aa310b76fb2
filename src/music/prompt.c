/*
 * prompt.c — the V1, V3 and V4 prompt builders, driven entirely by prompt-rules.json.
 *
 * A builder section ("v1", "v3", "v4") lists steps; each runs in order (PROMPTS.md 2):
 * "derive" sets a variable from the first rule whose "when" holds, "slot" produces prompt
 * text (literal with {band_name}/{song_title}, or {pick}/{pool}/{table}/{lookup} from the
 * section's pools and tables), "modify" (V1's enable_variation) never runs because the app
 * never enables it. The template (or V3's first matching template rule) then gets every
 * {name} replaced verbatim, empty slots kept. Expressions are evaluated by rules.c.
 */
#include "music/prompt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "music/rules.h"

/* ---------------------------------------------------------------------------------------- */
/* Features struct -> map                                                                   */
/* ---------------------------------------------------------------------------------------- */

json_t *prompt_features_json(const m2p_features *f)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    struct {
        const char *name;
        double v;
    } nums[] = {
        {"tempo", f->tempo},
        {"raw_energy", f->raw_energy},
        {"energy", f->energy},
        {"brightness", f->brightness},
        {"spectral_centroid", f->brightness},
        {"spectral_rolloff", f->spectral_rolloff},
        {"spectral_bandwidth", f->spectral_bandwidth},
        {"spectral_contrast", f->spectral_contrast},
        {"zero_crossing_rate", f->zero_crossing_rate},
        {"zcr", f->zero_crossing_rate},
        {"chroma_std", f->chroma_std},
        {"rhythm_stability", f->rhythm_stability},
        {"attack_sharpness", f->attack_sharpness},
        {"harmonicity", f->harmonicity},
        {"hp_ratio", f->hp_ratio},
        {"mode_confidence", f->mode_confidence},
        {"spectral_flux", f->spectral_flux},
        {"onset_density", f->onset_density},
        {"onset_density_raw", f->onset_density_raw},
        {"dynamic_range", f->dynamic_range},
        {"dynamic_range_db", f->dynamic_range_db},
        {"pitch_register", f->pitch_register},
        {"valence_scientific", f->valence_scientific},
        {"arousal_scientific", f->arousal_scientific},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        bad |= json_object_set_new(o, nums[i].name, /* JSON has no NaN: null (M2P_EINVAL) */
                                   isfinite(nums[i].v) ? json_real(nums[i].v) : json_null());
    bad |= json_object_set_new(o, "is_major_key", json_boolean(f->is_major_key));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Replace each {name} in tmpl via resolve(); other characters literal. */
typedef int (*resolve_fn)(void *ud, const char *name, const char **text);

static int substitute(const char *tmpl, resolve_fn resolve, void *ud, char **out)
{
    m2p_buf b;
    m2p_buf_init(&b, 0);
    int oom = m2p_buf_append(&b, "", 0);
    const char *p = tmpl;
    while (*p) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            oom |= m2p_buf_puts(&b, p);
            break;
        }
        oom |= m2p_buf_append(&b, p, (size_t)(open - p));
        char name[64];
        size_t nl = (size_t)(close - open - 1);
        if (nl >= sizeof name) {
            m2p_buf_free(&b);
            return m2p_error(M2P_EINTERNAL, "template placeholder too long in \"%s\"", tmpl);
        }
        memcpy(name, open + 1, nl);
        name[nl] = 0;
        const char *text = NULL;
        int rc = resolve(ud, name, &text);
        if (rc) {
            m2p_buf_free(&b);
            return rc;
        }
        oom |= m2p_buf_puts(&b, text);
        p = close + 1;
    }
    if (oom) {
        m2p_buf_free(&b);
        return m2p_error(M2P_ENOMEM, "out of memory");
    }
    *out = m2p_buf_detach(&b);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The builder                                                                              */
/* ---------------------------------------------------------------------------------------- */

#define MAX_SLOTS 24

typedef struct build {
    const json_t *sec;
    rule_env env;
    struct {
        const char *name;
        char *text;
    } slots[MAX_SLOTS];
    int n_slots;
    char numbuf[64];
} build;

static int resolve_literal(void *ud, const char *name, const char **text)
{
    build *b = ud;
    if (strcmp(name, "band_name") == 0)
        *text = b->env.band_name;
    else if (strcmp(name, "song_title") == 0)
        *text = b->env.song_title;
    else
        return m2p_error(M2P_EINTERNAL, "slot text names unknown {%s}", name);
    return 0;
}

static int resolve_template(void *ud, const char *name, const char **text)
{
    build *b = ud;
    for (int i = 0; i < b->n_slots; i++)
        if (strcmp(b->slots[i].name, name) == 0) {
            *text = b->slots[i].text;
            return 0;
        }
    const rule_value *v = rule_env_get(&b->env, name);
    if (v && v->kind == RV_STR) {
        *text = v->str;
        return 0;
    }
    if (v && v->kind == RV_NUM) {
        snprintf(b->numbuf, sizeof b->numbuf, "%.17g", v->num);
        *text = b->numbuf;
        return 0;
    }
    return resolve_literal(ud, name, text);
}

static const json_t *find_pool(const build *b, const char *name)
{
    const json_t *p = json_object_get(json_object_get(b->sec, "pools"), name);
    if (!p)
        p = json_object_get(json_object_get(b->sec, "tables"), name);
    if (!p)
        m2p_error(M2P_EINTERNAL, "prompt rules have no pool '%s'", name);
    return p;
}

static const char *var_str(const build *b, const char *name)
{
    const rule_value *v = rule_env_get(&b->env, name);
    if (v && v->kind == RV_STR)
        return v->str;
    if (strcmp(name, "band_name") == 0)
        return b->env.band_name;
    if (strcmp(name, "song_title") == 0)
        return b->env.song_title;
    return NULL;
}

static int pool_item(const json_t *pool, size_t idx, const char *what, const char **out)
{
    const char *s = json_string_value(json_array_get(pool, idx));
    if (!s)
        return m2p_error(M2P_EINTERNAL, "prompt rules: %s has no item %zu", what, idx);
    *out = s;
    return 0;
}

/* A slot's "then": literal text or a pick/pool/table/lookup object. */
static int slot_text(build *b, const json_t *then, char **out)
{
    if (json_is_string(then))
        return substitute(json_string_value(then), resolve_literal, b, out);
    const char *item = NULL;
    int rc;
    const json_t *x;
    if ((x = json_object_get(then, "pick"))) {
        const char *name = json_string_value(x);
        const json_t *pool = find_pool(b, name);
        const rule_value *h = rule_env_get(&b->env, "seed_hash");
        if (!pool)
            return M2P_EINTERNAL;
        if (!h || h->kind != RV_NUM || json_array_size(pool) == 0)
            return m2p_error(M2P_EINTERNAL, "pick from '%s' without seed_hash", name);
        uint32_t hv = (uint32_t)h->num;
        if ((rc = pool_item(pool, hv % (uint32_t)json_array_size(pool), name, &item)))
            return rc;
    } else if ((x = json_object_get(then, "pool"))) {
        char *name = NULL;
        if ((rc = substitute(json_string_value(x), resolve_template, b, &name)))
            return rc;
        const json_t *pool = find_pool(b, name);
        rc = pool ? pool_item(pool, (size_t)json_integer_value(json_object_get(then, "index")),
                              name, &item)
                  : M2P_EINTERNAL;
        free(name);
        if (rc)
            return rc;
    } else if ((x = json_object_get(then, "table"))) {
        const json_t *table = find_pool(b, json_string_value(x));
        const char *row = var_str(b, json_string_value(json_object_get(then, "row")));
        if (!table)
            return M2P_EINTERNAL;
        const json_t *r = row ? json_object_get(table, row) : NULL;
        if (!r) /* v3 flavour note: a missing row would use the "abstract" row */
            r = json_object_get(table, "abstract");
        if ((rc = pool_item(r, (size_t)json_integer_value(json_object_get(then, "index")),
                            json_string_value(x), &item)))
            return rc;
    } else if ((x = json_object_get(then, "lookup"))) {
        const json_t *map = find_pool(b, json_string_value(x));
        const char *key = var_str(b, json_string_value(json_object_get(then, "key")));
        if (!map)
            return M2P_EINTERNAL;
        const json_t *hit = key ? json_object_get(map, key) : NULL; /* exact, case-sensitive */
        item = hit ? json_string_value(hit) : json_string_value(json_object_get(then, "default"));
        if (!item)
            item = "";
    } else {
        return m2p_error(M2P_EINTERNAL, "prompt rules: unknown slot value");
    }
    *out = strdup(item);
    return *out ? 0 : m2p_error(M2P_ENOMEM, "out of memory");
}

/* The first rule whose "when" holds, or NULL. */
static int first_rule(build *b, const json_t *rules, const json_t **hit)
{
    *hit = NULL;
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        rule_value v;
        int rc = rule_eval(&b->env, json_string_value(json_object_get(rule, "when")), &v);
        if (rc)
            return rc;
        int t = rule_truthy(&v);
        rule_value_free(&v);
        if (t) {
            *hit = rule;
            return 0;
        }
    }
    return 0;
}

static int run_steps(build *b)
{
    size_t i;
    const json_t *step;
    json_array_foreach(json_object_get(b->sec, "steps"), i, step)
    {
        const json_t *hit = NULL;
        const char *name;
        int rc;
        if ((name = json_string_value(json_object_get(step, "derive")))) {
            if ((rc = first_rule(b, json_object_get(step, "rules"), &hit)))
                return rc;
            if (!hit) /* "the variable keeps its previous value" */
                continue;
            rule_value v;
            if ((rc = rule_eval(&b->env, json_string_value(json_object_get(hit, "then")), &v)))
                return rc;
            if ((rc = rule_env_set(&b->env, name, &v)))
                return rc;
        } else if ((name = json_string_value(json_object_get(step, "slot")))) {
            if ((rc = first_rule(b, json_object_get(step, "rules"), &hit)))
                return rc;
            if (!hit)
                return m2p_error(M2P_EINTERNAL, "prompt rules: no rule of slot '%s' holds", name);
            char *text = NULL;
            if ((rc = slot_text(b, json_object_get(hit, "then"), &text)))
                return rc;
            int k;
            for (k = 0; k < b->n_slots && strcmp(b->slots[k].name, name) != 0; k++)
                ;
            if (k == MAX_SLOTS) {
                free(text);
                return m2p_error(M2P_EINTERNAL, "prompt rules: too many slots");
            }
            if (k == b->n_slots)
                b->n_slots++;
            free(b->slots[k].text);
            b->slots[k].name = name;
            b->slots[k].text = text;
        }
        /* "modify" (V1 enable_variation): the app never enables it, so it never runs. */
    }
    return 0;
}

/* Python's str.strip() on ASCII whitespace; the templates never produce other edges. */
static void strip_ascii(char *s)
{
    size_t n = strlen(s), a = 0;
    while (n > 0 && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r')))
        s[--n] = 0;
    while (s[a] == ' ' || (s[a] >= '\t' && s[a] <= '\r'))
        a++;
    memmove(s, s + a, n - a + 1);
}

int prompt_build_json(int version, const json_t *features, const char *band, const char *song,
                      const json_t *raw_genres, char **prompt, char **neg)
{
    if (!prompt || !neg)
        return m2p_error(M2P_EINVAL, "prompt_build: output pointers required");
    *prompt = *neg = NULL;
    const char *secname = version == M2P_PROMPT_V1   ? "v1"
                          : version == M2P_PROMPT_V3 ? "v3"
                          : version == M2P_PROMPT_V4 ? "v4"
                                                     : NULL;
    if (!secname)
        return m2p_error(M2P_EINVAL,
                         "prompt version %d: expected v1, v3 or v4 (llm uses m2p_prompt_llm)",
                         version);
    if (features && !json_is_object(features))
        return m2p_error(M2P_EINVAL, "features must be an object of name -> number");
    if (raw_genres && !json_is_null(raw_genres) && !json_is_string(raw_genres) &&
        !json_is_array(raw_genres))
        return m2p_error(M2P_EINVAL, "raw genres must be null, a string or a list of strings");
    build b;
    memset(&b, 0, sizeof b);
    b.sec = rules_section(secname);
    if (!b.sec)
        return M2P_EINTERNAL;
    rule_env_init(&b.env, features, json_object_get(b.sec, "inputs"), band, song, raw_genres);
    int rc = run_steps(&b);
    if (rc == 0) {
        const char *tmpl = json_string_value(json_object_get(b.sec, "template"));
        const json_t *trules = json_object_get(b.sec, "template_rules");
        if (trules) {
            const json_t *hit = NULL;
            rc = first_rule(&b, trules, &hit);
            tmpl = hit ? json_string_value(json_object_get(hit, "then")) : NULL;
        }
        if (rc == 0 && !tmpl)
            rc = m2p_error(M2P_EINTERNAL, "prompt rules: %s has no template", secname);
        if (rc == 0)
            rc = substitute(tmpl, resolve_template, &b, prompt);
    }
    if (rc == 0) {
        const char *n = json_string_value(json_object_get(b.sec, "negative_prompt"));
        *neg = strdup(n ? n : "");
        if (!*neg)
            rc = m2p_error(M2P_ENOMEM, "out of memory");
    }
    for (int i = 0; i < b.n_slots; i++)
        free(b.slots[i].text);
    rule_env_free(&b.env);
    if (rc) {
        free(*prompt);
        free(*neg);
        *prompt = *neg = NULL;
        return rc;
    }
    strip_ascii(*prompt);
    strip_ascii(*neg);
    return 0;
}

int m2p_prompt_build(int version, const m2p_features *f, const char *band, const char *song,
                     const char *raw_genre, char **prompt, char **negative_prompt)
{
    if (!f)
        return m2p_error(M2P_EINVAL, "m2p_prompt_build: features required");
    json_t *fj = prompt_features_json(f);
    json_t *rg = genre_raw_parse(raw_genre);
    int rc;
    if (!fj || !rg)
        rc = m2p_error(M2P_ENOMEM, "out of memory");
    else
        rc = prompt_build_json(version, fj, band, song, rg, prompt, negative_prompt);
    json_decref(fj);
    json_decref(rg);
    return rc;
}
