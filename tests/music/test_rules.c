/*
 * test_rules.c — the embedded rules equal the spec file, the expression evaluator follows
 * prompt-rules.json "expression_language", genre_normalize and genre_infer match every example
 * and threshold of the spec.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "music/genre.h"
#include "music/rules.h"
#include "test.h"

static void test_embedded_copy(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/prompt-rules.json", test_env("M2P_SPEC", "../shared/spec"));
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL); /* the spec is part of the checkout; without it this copy is unchecked */
    if (!f) {
        fprintf(stderr, "%s: cannot read the spec to compare the embedded rules with\n", path);
    } else {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
        fclose(f);
        CHECK_INT(m2p_rules_json_len, n);
        CHECK(buf && (size_t)n == m2p_rules_json_len && memcmp(buf, m2p_rules_json, (size_t)n) == 0);
        free(buf);
    }
    /* the in-repo source of the embedded copy equals the spec too (the build embeds it) */
    char repo[4096];
    snprintf(repo, sizeof repo, "%s/src/music/prompt-rules.json", test_env("M2P_SOURCE_DIR", "."));
    CHECK(test_same_file(repo, path));
    CHECK(rules_root() != NULL);
    CHECK(rules_section("v4") != NULL);
    CHECK(rules_section("no such section") == NULL);
}

/* Evaluate expr with features fj ({} when NULL); returns the value (caller frees). */
static rule_value ev(const char *features, const char *expr, int *rc_out)
{
    json_t *fj = json_loads(features ? features : "{}", 0, NULL);
    json_t *inputs = json_loads("[{\"name\":\"x\",\"default\":2},{\"name\":\"y\",\"default\":3},"
                                "{\"name\":\"flag\",\"default\":true,\"type\":\"boolean\"},"
                                "{\"name\":\"mode\",\"default\":\"major\",\"type\":\"string\"},"
                                "{\"name\":\"tempo\",\"default\":120},"
                                "{\"name\":\"energy\",\"default\":0.5}]",
                                0, NULL);
    rule_env env;
    json_t *rg = json_pack("[s,s]", "rock", "metal");
    rule_env_init(&env, fj, inputs, "Band", "Song", rg);
    rule_value v = {0};
    int rc = rule_eval(&env, expr, &v);
    if (rc_out)
        *rc_out = rc;
    rule_env_free(&env);
    json_decref(fj);
    json_decref(inputs);
    json_decref(rg);
    return v;
}

static double num(const char *f, const char *e)
{
    int rc;
    rule_value v = ev(f, e, &rc);
    CHECK_INT(rc, 0);
    CHECK(v.kind == RV_NUM);
    double x = v.num;
    rule_value_free(&v);
    return x;
}

static int truth(const char *f, const char *e)
{
    int rc;
    rule_value v = ev(f, e, &rc);
    CHECK_INT(rc, 0);
    int t = rule_truthy(&v);
    rule_value_free(&v);
    return t;
}

static void test_evaluator(void)
{
    /* precedence and associativity */
    CHECK_NEAR(num(NULL, "1 + 2 * 3"), 7, 0);
    CHECK_NEAR(num(NULL, "(1 + 2) * 3"), 9, 0);
    CHECK_NEAR(num(NULL, "10 - 4 - 3"), 3, 0);
    CHECK_NEAR(num(NULL, "16 / 4 / 2"), 2, 0);
    CHECK_NEAR(num(NULL, "-x * 2"), -4, 0);
    CHECK_NEAR(num(NULL, "- -3"), 3, 0);
    /* rounding after every operation, written order: 0.1*3 + 0.7 != 1 exactly */
    CHECK(num(NULL, "0.1 * 3 + 0.7") == 0.1 * 3 + 0.7);
    volatile double a = 0.6, b = 0.74, c = 0.4, d = 0.82;
    CHECK(num("{\"p\":0}", "0.74 * 0.6 + 0.82 * 0.4") == (b * a) + (d * c));
    /* defaults apply only when absent; present values win */
    CHECK_NEAR(num(NULL, "x + y"), 5, 0);
    CHECK_NEAR(num("{\"x\":10}", "x + y"), 13, 0);
    CHECK_NEAR(num("{\"x\":true}", "x"), 1, 0);
    CHECK(truth(NULL, "has(\"x\")") == 0);
    CHECK(truth("{\"x\":2}", "has(\"x\")") == 1); /* presence, even when equal to the default */
    /* comparisons: strict vs non-strict, NaN false */
    CHECK(truth(NULL, "x > 2") == 0);
    CHECK(truth(NULL, "x >= 2") == 1);
    CHECK(truth(NULL, "x < 2") == 0);
    CHECK(truth(NULL, "x <= 2") == 1);
    CHECK(truth(NULL, "x == 2 && y != 2") == 1);
    CHECK(truth(NULL, "x > 2 || y > 2") == 1);
    CHECK(truth(NULL, "!(x > 2) && !false") == 1);
    CHECK(truth(NULL, "true || false && false") == 1); /* && binds tighter */
    CHECK(truth(NULL, "1 < 2 == true") == 1);          /* < binds tighter than == */
    /* booleans: truthiness of the input */
    CHECK(truth(NULL, "flag") == 1);
    CHECK(truth("{\"flag\":false}", "flag") == 0);
    CHECK(truth("{\"flag\":0}", "!flag") == 1);
    CHECK(truth("{\"flag\":\"false\"}", "flag") == 1); /* a non-empty string is true */
    CHECK(truth("{\"flag\":null}", "flag") == 0);
    /* strings */
    CHECK(truth(NULL, "mode == \"major\"") == 1);
    CHECK(truth("{\"mode\":\"minor\"}", "mode == \"major\"") == 0);
    CHECK(truth("{\"mode\":null}", "mode == \"major\"") == 0);
    CHECK(truth(NULL, "band_name == \"Band\" && song_title != \"\"") == 1);
    CHECK(truth(NULL, "contains(band_name, \"an\")") == 1);
    CHECK(truth(NULL, "contains(band_name, \"AN\")") == 0); /* case-sensitive */
    /* functions */
    CHECK_NEAR(num(NULL, "clip(1.5)"), 1, 0);
    CHECK_NEAR(num(NULL, "clip(-0.5)"), 0, 0);
    CHECK_NEAR(num(NULL, "clip(0.25)"), 0.25, 0);
    CHECK_NEAR(num(NULL, "min(x, y)"), 2, 0);
    CHECK_NEAR(num(NULL, "max(x, y)"), 3, 0);
    CHECK(isnan(num("{\"x\":0}", "clip(0 / x)"))); /* NaN passes clip, as min(max(nan,0),1) */
    CHECK(truth("{\"x\":0}", "0 / x > 0.5") == 0);
    CHECK(truth("{\"x\":0}", "0 / x <= 0.5") == 0);
    CHECK_NEAR(num(NULL, "hash()"), (double)rules_seed_hash("Band", "Song", 120, 0.5), 0);
    int rc;
    rule_value v = ev(NULL, "normalize(raw_genres)", &rc);
    CHECK_INT(rc, 0);
    CHECK(v.kind == RV_STR && strcmp(v.str, "rock") == 0);
    rule_value_free(&v);
    v = ev(NULL, "\"metal\"", &rc);
    CHECK(rc == 0 && v.kind == RV_STR && strcmp(v.str, "metal") == 0);
    rule_value_free(&v);
    /* errors */
    v = ev(NULL, "x >", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
    v = ev(NULL, "unknown_name > 1", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
    v = ev(NULL, "x 1", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
    v = ev(NULL, "clip(1, 2)", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
    v = ev(NULL, "\"a\" > 1", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
    v = ev("{\"x\":null}", "x > 1", &rc);
    CHECK_INT(rc, M2P_EINVAL);
    v = ev("{\"y\":\"3\"}", "y > 1", &rc);
    CHECK_INT(rc, M2P_EINVAL);
    v = ev(NULL, "(x", &rc);
    CHECK_INT(rc, M2P_EFORMAT);
}

static const char *norm(const char *json)
{
    json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);
    const char *g = genre_normalize_json(j);
    json_decref(j);
    return g;
}

static void test_normalize(void)
{
    /* every example of genre_normalize.examples, read from the embedded rules */
    const json_t *ex = json_object_get(rules_section("genre_normalize"), "examples");
    CHECK(json_array_size(ex) >= 15);
    size_t i;
    const json_t *e;
    json_array_foreach(ex, i, e)
    {
        const char *want = json_string_value(json_object_get(e, "result"));
        const char *got = genre_normalize_json(json_object_get(e, "raw_genres"));
        CHECK_STR(got, want);
    }
    /* and the PROMPTS.md 6 examples written out */
    CHECK_STR(norm("[\"hard rock\",\"metal\",\"rock\",\"thrash metal\"]"), "hard rock");
    CHECK_STR(norm("[\"cool jazz\",\"hard bop\",\"jazz\",\"bebop\"]"), "cool jazz");
    CHECK_STR(norm("[\"rock\",\"metal\"]"), "rock");
    CHECK_STR(norm("[\"metal\",\"rock\"]"), "metal");
    CHECK_STR(norm("[\"k-pop\"]"), "pop");
    CHECK_STR(norm("[\"Soundtrack\"]"), "abstract");
    CHECK_STR(norm("null"), "abstract");
    CHECK_STR(norm("\"\""), "abstract");
    CHECK_STR(norm("[\"ABSTRACT\"]"), "abstract");
    CHECK_STR(norm("[\"abstract\",\"rock\"]"), "abstract"); /* tie 5/5: recorded first */
    CHECK_STR(norm("[\"SYMPHONIC METAL\"]"), "symphonic metal");
    CHECK_STR(norm("[\"demo\"]"), "emo"); /* plain substrings, as the original */
    CHECK_STR(norm("[1, \"jazz\"]"), "jazz"); /* non-strings skipped */
    CHECK_STR(norm("[\"\\u212Aorean pop\"]"), "pop"); /* KELVIN SIGN lower-cases to k */
    /* public text form: plain text or a JSON list */
    CHECK_STR(m2p_genre_normalize("Melodic Death Metal"), "death metal");
    CHECK_STR(m2p_genre_normalize("[\"rock\",\"metal\"]"), "rock");
    CHECK_STR(m2p_genre_normalize("[\"metal\",\"rock\"]"), "metal");
    CHECK_STR(m2p_genre_normalize("[broken"), "abstract");
    CHECK_STR(m2p_genre_normalize(""), "abstract");
    CHECK_STR(m2p_genre_normalize(NULL), "abstract");
    /* raw-genre text round trip */
    json_t *l = json_pack("[s,s]", "thrash metal", "speed metal");
    char buf[64];
    genre_raw_format(l, buf, sizeof buf);
    CHECK_STR(buf, "[\"thrash metal\",\"speed metal\"]");
    genre_raw_format(l, buf, 20); /* the second does not fit: dropped, still valid */
    CHECK_STR(buf, "[\"thrash metal\"]");
    json_decref(l);
    l = json_pack("[s]", "jazz");
    genre_raw_format(l, buf, sizeof buf);
    CHECK_STR(buf, "jazz");
    json_decref(l);
}

static const char *infer(const char *features)
{
    json_t *f = json_loads(features, 0, NULL);
    const char *g = (const char *)1;
    CHECK_INT(genre_infer_json(f, &g), 0);
    json_decref(f);
    return g;
}

#define CHECK_GENRE(got, want)                                                                 \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        if (!w_)                                                                               \
            CHECK(g_ == NULL);                                                                 \
        else                                                                                   \
            CHECK_STR(g_, w_);                                                                 \
    } while (0)

static void test_infer(void)
{
    /* genre_infer rules at their thresholds ('>' and '<' are strict) */
    CHECK_GENRE(infer("{\"tempo\":140.001,\"energy\":0.701}"), "electronic");
    CHECK_GENRE(infer("{\"tempo\":140,\"energy\":0.701}"), "rock");
    CHECK_GENRE(infer("{\"tempo\":140.001,\"energy\":0.7}"), "rock");
    CHECK_GENRE(infer("{\"tempo\":120.001,\"energy\":0.601}"), "rock");
    CHECK_GENRE(infer("{\"tempo\":120,\"energy\":0.601}"), "metal");
    CHECK_GENRE(infer("{\"tempo\":130,\"energy\":0.6}"), "metal");
    CHECK_GENRE(infer("{\"tempo\":100.001,\"energy\":0.501}"), "metal");
    CHECK_GENRE(infer("{\"tempo\":100,\"energy\":0.9}"), NULL);
    CHECK_GENRE(infer("{\"tempo\":110,\"energy\":0.5}"), NULL);
    CHECK_GENRE(infer("{\"tempo\":89.999,\"energy\":0.399}"), "ambient");
    CHECK_GENRE(infer("{\"tempo\":90,\"energy\":0.1}"), NULL);
    CHECK_GENRE(infer("{\"tempo\":60,\"energy\":0.4}"), NULL);
    CHECK_GENRE(infer("{}"), NULL); /* defaults tempo 120, energy 0.5: no rule -> none */
}

int main(void)
{
    test_embedded_copy();
    test_evaluator();
    test_normalize();
    test_infer();
    TEST_DONE();
}
