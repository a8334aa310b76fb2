/*
 * rules.h — the evaluator of the prompt rules' expression language (the rules as data are
 * ruleset.h's, which this header includes).
 *
 * Every "when" and derive "then"
 * is evaluated by rule_eval() exactly as prompt-rules.json "expression_language" says:
 * doubles rounded after every operation (compiled with -ffp-contract=off), C-style
 * precedence, clip/min/max/has/contains/normalize/hash.
 */
#ifndef M2P_MUSIC_RULES_H
#define M2P_MUSIC_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "music/ruleset.h"

typedef enum { RV_NULL = 0, RV_NUM, RV_BOOL, RV_STR } rule_kind;

typedef struct rule_value {
    rule_kind kind;
    double num; /* RV_NUM */
    int b;      /* RV_BOOL */
    char *str;  /* RV_STR, malloc'd, owned by the value */
} rule_value;

void rule_value_free(rule_value *v);
/* Python truthiness: false/0/""/null are false, NaN is true. */
int rule_truthy(const rule_value *v);

#define RULE_MAX_VARS 96

/* What a bare name in an expression can mean (expression_language "names"). */
typedef struct rule_env {
    const json_t *features;   /* object: feature name -> value (has() tests presence here) */
    const json_t *inputs;     /* the builder's "inputs" list: name, default, optional type */
    const char *band_name;    /* never NULL ("" for none) */
    const char *song_title;   /* never NULL */
    const json_t *raw_genres; /* null, a string or a list of strings (argument of normalize) */
    struct {
        char name[48];
        rule_value v;
    } vars[RULE_MAX_VARS];
    int n_vars;
} rule_env;

void rule_env_init(rule_env *env, const json_t *features, const json_t *inputs,
                   const char *band_name, const char *song_title, const json_t *raw_genres);
void rule_env_free(rule_env *env);
/* Set (or overwrite) a variable; takes ownership of v. */
int rule_env_set(rule_env *env, const char *name, rule_value *v);
/* The current value of a variable, or NULL. */
const rule_value *rule_env_get(const rule_env *env, const char *name);
/* Resolve a name: variable, band_name/song_title, then input feature (default when absent). */
int rule_lookup(const rule_env *env, const char *name, rule_value *out);

/* Evaluate one expression. M2P_EFORMAT for a syntax error, M2P_EINVAL for a feature that is
 * present but not usable (null or a string where a number is needed). */
int rule_eval(const rule_env *env, const char *expr, rule_value *out);

/* V4 selection hash: MD5("{B}_{S}_{T:.0f}_{E:.2f}") first 4 bytes big-endian (PROMPTS.md 5). */
uint32_t rules_seed_hash(const char *band, const char *song, double tempo, double energy);

#endif
