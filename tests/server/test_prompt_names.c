/*
 * test_prompt_names.c — POST /api/generate-prompt with posted features and every band/song
 * combination, against the original's answers as spec/prompt-rules.json states them
 * (genre_infer.source_chain.band_song_passed): when band_name and song_title are both
 * non-empty each is trimmed, otherwise both become null.
 *
 * The features are PROMPTS.md's example A (Slayer, "Raining Blood"); its V3 and V4 answers for
 * both names are quoted from there. The V4 answers for other names follow the spec's selection
 * hash (MD5 of "{B}_{S}_185_0.82", first 8 hex digits, modulo each pool's length) over the
 * pools of prompt-rules.json, worked out by hand with Python's hashlib, not by this program.
 */
#include "harness.h"

/* PROMPTS.md section 8, example A (features not listed there are absent). */
static const char *example_a =
    "\"tempo\":184.5703125,\"energy\":0.82,\"spectral_centroid\":3150.4,"
    "\"spectral_rolloff\":6320.7,\"spectral_bandwidth\":2710.2,\"spectral_contrast\":21.3,"
    "\"zcr\":0.118,\"chroma_std\":0.27,\"rhythm_stability\":0.41,\"harmonicity\":0.52,"
    "\"is_major_key\":false,\"mode_confidence\":0.47,\"spectral_flux\":0.68,"
    "\"onset_density\":0.74,\"hp_ratio\":0.22,\"dynamic_range\":0.22,\"pitch_register\":0.59,"
    "\"attack_sharpness\":0.55,\"valence_scientific\":0.4105,\"arousal_scientific\":0.7804";

/* seed Slayer_Raining Blood_185_0.82 (PROMPTS.md example A, V4) */
#define V4_BOTH                                                                                    \
    "shattered cathedral consumed by dark flames, ominous power, deep crimson and black, dark "    \
    "fantasy art"
/* seed unknown_unknown_185_0.82: md5 14196ea0 -> scene 0, atmosphere 0, colors 0, style 0 */
#define V4_NONE                                                                                    \
    "ancient fortress crumbling under cosmic storm, ominous power, deep crimson and black, dark "  \
    "fantasy art"
/* seed unknown_Raining Blood_185_0.82, md5 c74d2c08 -> scene 8, atmosphere 0, colors 4,
 * style 0 (the band was only spaces: trimmed to "") */
#define V4_SONG_ONLY_TRIMMED                                                                       \
    "eclipse over burning ancient city, ominous power, midnight blue and copper, dark fantasy art"
/* what keeping a lone band would give (seed Slayer_unknown_185_0.82): must never come back */
#define V4_WRONG_BAND_KEPT                                                                         \
    "ancient fortress crumbling under cosmic storm, furious darkness, blood red and charcoal, "    \
    "epic concept art"

#define V3_A                                                                                       \
    "abstract thrash metal poster, relentless aggression, explosive power, fractured shards, "     \
    "corroded metal texture, storm clouds, bold dramatic lighting, explosive chaos, bold "         \
    "saturated colors, explosive asymmetric, professional design, no text, no faces, 4k, high "    \
    "quality"

/* Post example A with the given names (a JSON fragment, may be empty) and version. */
static json_t *post(int port, const char *version, const char *names, int *st)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"prompt_version\":\"%s\",\"genre\":\"thrash metal\"%s%s,\"features\":{%s}}",
             version, names[0] ? "," : "", names, example_a);
    return api(port, "POST", "/api/generate-prompt", body, st);
}

static void expect_prompt(int port, const char *version, const char *names, const char *want)
{
    int st = 0;
    json_t *m = post(port, version, names, &st);
    if (st != 200 || !jstr(m, "prompt") || strcmp(jstr(m, "prompt"), want) != 0) {
        fprintf(stderr, "  %s with {%s}: HTTP %d, prompt \"%s\"\n  expected \"%s\"\n", version,
                names, st, jstr(m, "prompt") ? jstr(m, "prompt") : "(none)", want);
        test_failures++;
    }
    json_decref(m);
}

static void check_names(int port)
{
    /* both given: the spec's example answers */
    expect_prompt(port, "v4", "\"band_name\":\"Slayer\",\"song_title\":\"Raining Blood\"", V4_BOTH);
    expect_prompt(port, "v3", "\"band_name\":\"Slayer\",\"song_title\":\"Raining Blood\"", V3_A);
    /* surrounding whitespace (spaces, tab, newline, no-break space U+00A0) is trimmed */
    expect_prompt(port, "v4",
                  "\"band_name\":\"  Slayer\\t\",\"song_title\":\"\\nRaining Blood\\u00a0 \"",
                  V4_BOTH);
    /* neither, only one, or one empty: both become null -> unknown_unknown */
    expect_prompt(port, "v4", "", V4_NONE);
    expect_prompt(port, "v4", "\"band_name\":\"Slayer\"", V4_NONE);
    expect_prompt(port, "v4", "\"song_title\":\"Raining Blood\"", V4_NONE);
    expect_prompt(port, "v4", "\"band_name\":\"Slayer\",\"song_title\":\"\"", V4_NONE);
    expect_prompt(port, "v4", "\"band_name\":\"\",\"song_title\":\"Raining Blood\"", V4_NONE);
    expect_prompt(port, "v4", "\"band_name\":\"\",\"song_title\":\"\"", V4_NONE);
    expect_prompt(port, "v4", "\"band_name\":null,\"song_title\":\"Raining Blood\"", V4_NONE);
    /* V3 does not read the names: the same answer without them */
    expect_prompt(port, "v3", "\"band_name\":\"Slayer\"", V3_A);
    /* only spaces counts as given (non-empty), then trims to "" -> "unknown" for that one */
    expect_prompt(port, "v4", "\"band_name\":\"   \",\"song_title\":\"Raining Blood\"",
                  V4_SONG_ONLY_TRIMMED);

    /* the lone-band answer differs from the spec's, so the checks above can fail */
    CHECK(strcmp(V4_WRONG_BAND_KEPT, V4_NONE) != 0);

    /* the answer's band/song fields are the names the builders got */
    int st = 0;
    json_t *m =
        post(port, "v4", "\"band_name\":\" Slayer \",\"song_title\":\" Raining Blood\"", &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(m, "band"), "Slayer");
    CHECK_STR(jstr(m, "song"), "Raining Blood");
    json_decref(m);
    m = post(port, "v4", "\"band_name\":\"Slayer\"", &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(m, "band"), "");
    CHECK_STR(jstr(m, "song"), "");
    json_decref(m);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("server-prompt-names");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    check_names(s.port);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
