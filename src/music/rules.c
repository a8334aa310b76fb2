/*
 * rules.c — loads the embedded prompt rules and evaluates their expression language.
 *
 * Follows prompt-rules.json "expression_language": operators by precedence ( ) calls, prefix
 * ! -, * /, + -, < <= > >=, == !=, &&, || (left-associative); functions clip, min, max, has,
 * contains, normalize, hash. Values are IEEE doubles, booleans and strings; arithmetic is done
 * in the written order (no FMA: the build uses -ffp-contract=off). Names resolve to derived
 * variables, band_name/song_title, or input features with their defaults (absent key only).
 * The evaluator parses and evaluates in one recursive-descent pass; expressions are short.
 */
#include "music/rules.h"

#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------------------------------------- */
/* Values and the environment                                                               */
/* ---------------------------------------------------------------------------------------- */

void rule_value_free(rule_value *v)
{
    if (v && v->kind == RV_STR)
        free(v->str);
    if (v) {
        v->str = NULL;
        v->kind = RV_NULL;
    }
}

int rule_truthy(const rule_value *v)
{
    switch (v->kind) {
    case RV_NUM: return v->num != 0.0; /* NaN != 0 is true, as Python's bool(nan) */
    case RV_BOOL: return v->b;
    case RV_STR: return v->str && v->str[0];
    default: return 0;
    }
}

static rule_value rv_num(double x) { return (rule_value){.kind = RV_NUM, .num = x}; }
static rule_value rv_bool(int b) { return (rule_value){.kind = RV_BOOL, .b = b ? 1 : 0}; }

static int rv_str(const char *s, rule_value *out)
{
    char *d = strdup(s ? s : "");
    if (!d)
        return m2p_error(M2P_ENOMEM, "out of memory");
    *out = (rule_value){.kind = RV_STR, .str = d};
    return 0;
}

static int rv_copy(const rule_value *src, rule_value *dst)
{
    if (src->kind == RV_STR)
        return rv_str(src->str, dst);
    *dst = *src;
    return 0;
}

void rule_env_init(rule_env *env, const json_t *features, const json_t *inputs,
                   const char *band_name, const char *song_title, const json_t *raw_genres)
{
    memset(env, 0, sizeof *env);
    env->features = features;
    env->inputs = inputs;
    env->band_name = band_name ? band_name : "";
    env->song_title = song_title ? song_title : "";
    env->raw_genres = raw_genres;
}

void rule_env_free(rule_env *env)
{
    for (int i = 0; i < env->n_vars; i++)
        rule_value_free(&env->vars[i].v);
    env->n_vars = 0;
}

const rule_value *rule_env_get(const rule_env *env, const char *name)
{
    for (int i = 0; i < env->n_vars; i++)
        if (strcmp(env->vars[i].name, name) == 0)
            return &env->vars[i].v;
    return NULL;
}

int rule_env_set(rule_env *env, const char *name, rule_value *v)
{
    for (int i = 0; i < env->n_vars; i++) {
        if (strcmp(env->vars[i].name, name) == 0) {
            rule_value_free(&env->vars[i].v);
            env->vars[i].v = *v;
            v->kind = RV_NULL;
            v->str = NULL;
            return 0;
        }
    }
    if (env->n_vars >= RULE_MAX_VARS || strlen(name) >= sizeof env->vars[0].name) {
        rule_value_free(v);
        return m2p_error(M2P_EINTERNAL, "too many rule variables (at '%s')", name);
    }
    snprintf(env->vars[env->n_vars].name, sizeof env->vars[0].name, "%s", name);
    env->vars[env->n_vars].v = *v;
    env->n_vars++;
    v->kind = RV_NULL;
    v->str = NULL;
    return 0;
}

/* JSON truthiness as Python's bool(): false, null, 0, "", [] and {} are false. */
static int json_truthy(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_TRUE: return 1;
    case JSON_FALSE:
    case JSON_NULL: return 0;
    case JSON_INTEGER: return json_integer_value(j) != 0;
    case JSON_REAL: return json_real_value(j) != 0.0;
    case JSON_STRING: return json_string_length(j) > 0;
    case JSON_ARRAY: return json_array_size(j) > 0;
    case JSON_OBJECT: return json_object_size(j) > 0;
    }
    return 0;
}

/* Convert a JSON value (a present feature or an input default) by the input's declared type. */
static int input_value(const char *name, const char *type, const json_t *j, rule_value *out)
{
    if (type && strcmp(type, "boolean") == 0) {
        *out = rv_bool(json_truthy(j)); /* conventions.booleans */
        return 0;
    }
    if (type && strcmp(type, "string") == 0) {
        /* V1's mode is only compared with "major": a non-string can never equal it. */
        if (json_is_string(j))
            return rv_str(json_string_value(j), out);
        *out = (rule_value){.kind = RV_NULL};
        return 0;
    }
    if (json_is_integer(j)) {
        *out = rv_num((double)json_integer_value(j));
        return 0;
    }
    if (json_is_real(j)) {
        *out = rv_num(json_real_value(j));
        return 0;
    }
    if (json_is_boolean(j)) { /* Python bools are ints */
        *out = rv_num(json_is_true(j) ? 1.0 : 0.0);
        return 0;
    }
    /* conventions.missing_vs_null: present but null / not a number is an error, never a
     * silently invented value. */
    return m2p_error(M2P_EINVAL, "feature '%s' must be a number (got %s)", name,
                     json_is_null(j) ? "null" : json_is_string(j) ? "a string" : "a non-number");
}

int rule_lookup(const rule_env *env, const char *name, rule_value *out)
{
    const rule_value *v = rule_env_get(env, name);
    if (v)
        return rv_copy(v, out);
    if (strcmp(name, "band_name") == 0)
        return rv_str(env->band_name, out);
    if (strcmp(name, "song_title") == 0)
        return rv_str(env->song_title, out);
    size_t i;
    const json_t *in;
    json_array_foreach(env->inputs, i, in)
    {
        const char *iname = json_string_value(json_object_get(in, "name"));
        if (!iname || strcmp(iname, name) != 0)
            continue;
        const char *type = json_string_value(json_object_get(in, "type"));
        const json_t *fv = env->features ? json_object_get(env->features, name) : NULL;
        if (fv)
            return input_value(name, type, fv, out);
        const json_t *def = json_object_get(in, "default");
        if (!def)
            return m2p_error(M2P_EINTERNAL, "input '%s' has no default", name);
        return input_value(name, type, def, out);
    }
    return m2p_error(M2P_EFORMAT, "rule expression names unknown '%s'", name);
}

/* ---------------------------------------------------------------------------------------- */
/* The selection hash                                                                       */
/* ---------------------------------------------------------------------------------------- */

uint32_t rules_seed_hash(const char *band, const char *song, double tempo, double energy)
{
    /* v4.selection_hash: "{B}_{S}_{T}_{E}", glibc printf rounding (exact binary, ties even). */
    const char *b = band && band[0] ? band : "unknown";
    const char *s = song && song[0] ? song : "unknown";
    int n = snprintf(NULL, 0, "%s_%s_%.0f_%.2f", b, s, tempo, energy);
    char small[512];
    char *buf = (size_t)n < sizeof small ? small : malloc((size_t)n + 1);
    if (!buf)
        return 0;
    snprintf(buf, (size_t)n + 1, "%s_%s_%.0f_%.2f", b, s, tempo, energy);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_md5(), NULL);
    if (buf != small)
        free(buf);
    return ((uint32_t)md[0] << 24) | ((uint32_t)md[1] << 16) | ((uint32_t)md[2] << 8) |
           (uint32_t)md[3];
}

/* ---------------------------------------------------------------------------------------- */
/* The expression evaluator                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct parser {
    const rule_env *env;
    const char *src, *p;
} parser;

static int parse_or(parser *ps, rule_value *out);

static void skip_ws(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static int accept(parser *ps, const char *tok)
{
    skip_ws(ps);
    size_t n = strlen(tok);
    if (strncmp(ps->p, tok, n) != 0)
        return 0;
    /* "<" must not take the first char of "<=", "!" not of "!=", "&" etc. */
    if (n == 1 && (tok[0] == '<' || tok[0] == '>' || tok[0] == '!' || tok[0] == '=') &&
        ps->p[1] == '=')
        return 0;
    ps->p += n;
    return 1;
}

static int syntax(parser *ps, const char *what)
{
    return m2p_error(M2P_EFORMAT, "rule expression \"%s\": %s at offset %d", ps->src, what,
                     (int)(ps->p - ps->src));
}

static double as_num(const rule_value *v) { return v->kind == RV_BOOL ? (double)v->b : v->num; }
static int is_numeric(const rule_value *v) { return v->kind == RV_NUM || v->kind == RV_BOOL; }

static int parse_string_lit(parser *ps, rule_value *out)
{
    /* JSON-style string literal; the rules only use plain text and \" */
    skip_ws(ps);
    if (*ps->p != '"')
        return syntax(ps, "expected a string literal");
    const char *q = ps->p + 1;
    size_t cap = strlen(q) + 1, n = 0;
    char *s = malloc(cap);
    if (!s)
        return m2p_error(M2P_ENOMEM, "out of memory");
    while (*q && *q != '"') {
        if (*q == '\\' && q[1]) {
            q++;
            char c = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            s[n++] = c;
            q++;
        } else {
            s[n++] = *q++;
        }
    }
    if (*q != '"') {
        free(s);
        return syntax(ps, "unterminated string");
    }
    s[n] = 0;
    ps->p = q + 1;
    *out = (rule_value){.kind = RV_STR, .str = s};
    return 0;
}

static int parse_ident(parser *ps, char *buf, size_t cap)
{
    skip_ws(ps);
    size_t n = 0;
    if (!(isalpha((unsigned char)*ps->p) || *ps->p == '_'))
        return syntax(ps, "expected a name");
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 >= cap)
            return syntax(ps, "name too long");
        buf[n++] = *ps->p++;
    }
    buf[n] = 0;
    return 0;
}

static int expect(parser *ps, const char *tok)
{
    if (!accept(ps, tok)) {
        char what[64];
        snprintf(what, sizeof what, "expected '%.16s'", tok);
        return syntax(ps, what);
    }
    return 0;
}

static int need_num(parser *ps, const rule_value *v, const char *op)
{
    if (!is_numeric(v)) {
        char what[64];
        snprintf(what, sizeof what, "'%s' needs numbers", op);
        return syntax(ps, what);
    }
    return 0;
}

static int parse_call(parser *ps, const char *fn, rule_value *out)
{
    int rc;
    if (strcmp(fn, "has") == 0) {
        rule_value key;
        if ((rc = parse_string_lit(ps, &key)) || (rc = expect(ps, ")"))) {
            rule_value_free(&key);
            return rc;
        }
        int present = ps->env->features && json_object_get(ps->env->features, key.str);
        rule_value_free(&key);
        *out = rv_bool(present);
        return 0;
    }
    if (strcmp(fn, "normalize") == 0) {
        char arg[48];
        if ((rc = parse_ident(ps, arg, sizeof arg)))
            return rc;
        if (strcmp(arg, "raw_genres") != 0)
            return syntax(ps, "normalize() takes raw_genres");
        if ((rc = expect(ps, ")")))
            return rc;
        return rv_str(genre_normalize_json(ps->env->raw_genres), out);
    }
    if (strcmp(fn, "hash") == 0) {
        if ((rc = expect(ps, ")")))
            return rc;
        rule_value t = {0}, e = {0};
        if ((rc = rule_lookup(ps->env, "tempo", &t)) || (rc = rule_lookup(ps->env, "energy", &e)))
            return rc;
        *out = rv_num((double)rules_seed_hash(ps->env->band_name, ps->env->song_title,
                                              as_num(&t), as_num(&e)));
        return 0;
    }
    /* functions of evaluated arguments */
    rule_value a[2] = {{0}, {0}};
    int n = 0;
    skip_ws(ps);
    if (!accept(ps, ")")) {
        for (;;) {
            if (n == 2) {
                rc = syntax(ps, "too many arguments");
                goto done;
            }
            if ((rc = parse_or(ps, &a[n])))
                goto done;
            n++;
            if (accept(ps, ")"))
                break;
            if ((rc = expect(ps, ",")))
                goto done;
        }
    }
    rc = 0;
    if (strcmp(fn, "clip") == 0 && n == 1 && is_numeric(&a[0])) {
        double x = as_num(&a[0]);
        double m = 0.0 > x ? 0.0 : x; /* max(x, 0): x when equal */
        *out = rv_num(1.0 < m ? 1.0 : m); /* min(m, 1) */
    } else if (strcmp(fn, "min") == 0 && n == 2 && is_numeric(&a[0]) && is_numeric(&a[1])) {
        double x = as_num(&a[0]), y = as_num(&a[1]);
        *out = rv_num(y < x ? y : x);
    } else if (strcmp(fn, "max") == 0 && n == 2 && is_numeric(&a[0]) && is_numeric(&a[1])) {
        double x = as_num(&a[0]), y = as_num(&a[1]);
        *out = rv_num(y > x ? y : x);
    } else if (strcmp(fn, "contains") == 0 && n == 2 && a[0].kind == RV_STR &&
               a[1].kind == RV_STR) {
        *out = rv_bool(strstr(a[0].str, a[1].str) != NULL);
    } else {
        char what[80];
        snprintf(what, sizeof what, "bad call of %.20s() with %d argument(s)", fn, n);
        rc = syntax(ps, what);
    }
done:
    rule_value_free(&a[0]);
    rule_value_free(&a[1]);
    return rc;
}

static int parse_primary(parser *ps, rule_value *out)
{
    skip_ws(ps);
    const char *p = ps->p;
    if (*p == '(') {
        ps->p++;
        int rc = parse_or(ps, out);
        if (rc)
            return rc;
        if ((rc = expect(ps, ")"))) {
            rule_value_free(out);
            return rc;
        }
        return 0;
    }
    if (*p == '"')
        return parse_string_lit(ps, out);
    if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        char *end;
        double x = strtod(p, &end); /* correctly rounded decimal -> double */
        ps->p = end;
        *out = rv_num(x);
        return 0;
    }
    char name[48];
    int rc = parse_ident(ps, name, sizeof name);
    if (rc)
        return rc;
    if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0) {
        *out = rv_bool(name[0] == 't');
        return 0;
    }
    if (accept(ps, "("))
        return parse_call(ps, name, out);
    return rule_lookup(ps->env, name, out);
}

static int parse_unary(parser *ps, rule_value *out)
{
    int rc;
    if (accept(ps, "!")) {
        rule_value v;
        if ((rc = parse_unary(ps, &v)))
            return rc;
        int t = rule_truthy(&v);
        rule_value_free(&v);
        *out = rv_bool(!t);
        return 0;
    }
    if (accept(ps, "-")) {
        rule_value v;
        if ((rc = parse_unary(ps, &v)))
            return rc;
        if ((rc = need_num(ps, &v, "-"))) {
            rule_value_free(&v);
            return rc;
        }
        *out = rv_num(-as_num(&v));
        return 0;
    }
    return parse_primary(ps, out);
}

static int parse_mul(parser *ps, rule_value *out)
{
    int rc = parse_unary(ps, out);
    for (;;) {
        if (rc)
            return rc;
        int op = accept(ps, "*") ? '*' : accept(ps, "/") ? '/' : 0;
        if (!op)
            return 0;
        rule_value r;
        if ((rc = parse_unary(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        if ((rc = need_num(ps, out, op == '*' ? "*" : "/")) ||
            (rc = need_num(ps, &r, op == '*' ? "*" : "/"))) {
            rule_value_free(out);
            rule_value_free(&r);
            return rc;
        }
        double x = as_num(out), y = as_num(&r);
        *out = rv_num(op == '*' ? x * y : x / y);
    }
}

static int parse_add(parser *ps, rule_value *out)
{
    int rc = parse_mul(ps, out);
    for (;;) {
        if (rc)
            return rc;
        int op = accept(ps, "+") ? '+' : accept(ps, "-") ? '-' : 0;
        if (!op)
            return 0;
        rule_value r;
        if ((rc = parse_mul(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        if ((rc = need_num(ps, out, "+/-")) || (rc = need_num(ps, &r, "+/-"))) {
            rule_value_free(out);
            rule_value_free(&r);
            return rc;
        }
        double x = as_num(out), y = as_num(&r);
        *out = rv_num(op == '+' ? x + y : x - y);
    }
}

static int parse_rel(parser *ps, rule_value *out)
{
    int rc = parse_add(ps, out);
    for (;;) {
        if (rc)
            return rc;
        int op = accept(ps, "<=") ? 'l' : accept(ps, ">=") ? 'g' : accept(ps, "<") ? '<'
                 : accept(ps, ">")  ? '>'
                                    : 0;
        if (!op)
            return 0;
        rule_value r;
        if ((rc = parse_add(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        if ((rc = need_num(ps, out, "comparison")) || (rc = need_num(ps, &r, "comparison"))) {
            rule_value_free(out);
            rule_value_free(&r);
            return rc;
        }
        double x = as_num(out), y = as_num(&r); /* any comparison with NaN is false */
        int b = op == 'l' ? x <= y : op == 'g' ? x >= y : op == '<' ? x < y : x > y;
        *out = rv_bool(b);
    }
}

static int values_equal(const rule_value *a, const rule_value *b)
{
    if (is_numeric(a) && is_numeric(b))
        return as_num(a) == as_num(b);
    if (a->kind == RV_STR && b->kind == RV_STR)
        return strcmp(a->str, b->str) == 0;
    return a->kind == RV_NULL && b->kind == RV_NULL;
}

static int parse_eq(parser *ps, rule_value *out)
{
    int rc = parse_rel(ps, out);
    for (;;) {
        if (rc)
            return rc;
        int op = accept(ps, "==") ? '=' : accept(ps, "!=") ? '!' : 0;
        if (!op)
            return 0;
        rule_value r;
        if ((rc = parse_rel(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        int eq = values_equal(out, &r);
        rule_value_free(out);
        rule_value_free(&r);
        *out = rv_bool(op == '=' ? eq : !eq);
    }
}

static int parse_and(parser *ps, rule_value *out)
{
    int rc = parse_eq(ps, out);
    for (;;) {
        if (rc)
            return rc;
        if (!accept(ps, "&&"))
            return 0;
        rule_value r;
        if ((rc = parse_eq(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        /* Operands have no side effects, so evaluating both is the same as short-circuit. */
        int b = rule_truthy(out) && rule_truthy(&r);
        rule_value_free(out);
        rule_value_free(&r);
        *out = rv_bool(b);
    }
}

static int parse_or(parser *ps, rule_value *out)
{
    int rc = parse_and(ps, out);
    for (;;) {
        if (rc)
            return rc;
        if (!accept(ps, "||"))
            return 0;
        rule_value r;
        if ((rc = parse_and(ps, &r))) {
            rule_value_free(out);
            return rc;
        }
        int b = rule_truthy(out) || rule_truthy(&r);
        rule_value_free(out);
        rule_value_free(&r);
        *out = rv_bool(b);
    }
}

int rule_eval(const rule_env *env, const char *expr, rule_value *out)
{
    *out = (rule_value){.kind = RV_NULL};
    if (!expr)
        return m2p_error(M2P_EFORMAT, "rule expression missing");
    parser ps = {.env = env, .src = expr, .p = expr};
    int rc = parse_or(&ps, out);
    if (rc)
        return rc;
    skip_ws(&ps);
    if (*ps.p) {
        rule_value_free(out);
        return syntax(&ps, "unexpected text");
    }
    return 0;
}
