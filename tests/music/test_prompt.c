/*
 * test_prompt.c — the V1/V3/V4 builders against PROMPTS.md section 8 (worked examples A, B,
 * C computed by the original), the V4 selection hash examples, and the struct entry point.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "music/genre.h"
#include "music/prompt.h"
#include "music/rules.h"
#include "test.h"

/* PROMPTS.md 8: the feature table (all three examples read from the same mapping). */
static json_t *example(char which)
{
    const char *a = "{\"tempo\":184.5703125,\"energy\":0.82,\"spectral_centroid\":3150.4,"
                    "\"spectral_rolloff\":6320.7,\"spectral_bandwidth\":2710.2,"
                    "\"spectral_contrast\":21.3,\"zcr\":0.118,\"chroma_std\":0.27,"
                    "\"rhythm_stability\":0.41,\"harmonicity\":0.52,\"is_major_key\":false,"
                    "\"mode_confidence\":0.47,\"spectral_flux\":0.68,\"onset_density\":0.74,"
                    "\"hp_ratio\":0.22,\"dynamic_range\":0.22,\"pitch_register\":0.59,"
                    "\"attack_sharpness\":0.55,\"valence_scientific\":0.4105,"
                    "\"arousal_scientific\":0.7804}";
    const char *b = "{\"tempo\":86.1328125,\"energy\":0.06,\"spectral_centroid\":1480.2,"
                    "\"spectral_rolloff\":2650.3,\"spectral_bandwidth\":1620.5,"
                    "\"spectral_contrast\":23.8,\"zcr\":0.031,\"chroma_std\":0.34,"
                    "\"rhythm_stability\":0.71,\"harmonicity\":0.88,\"is_major_key\":true,"
                    "\"mode_confidence\":0.54,\"spectral_flux\":0.08,\"onset_density\":0.09,"
                    "\"hp_ratio\":0.93,\"dynamic_range\":0.61,\"pitch_register\":0.22,"
                    "\"attack_sharpness\":0.18,\"valence_scientific\":0.6275,"
                    "\"arousal_scientific\":0.1117}";
    const char *c = "{\"tempo\":135.99917763157896,\"energy\":0.31,\"spectral_centroid\":2210.6,"
                    "\"spectral_rolloff\":4105.9,\"spectral_bandwidth\":2302.4,"
                    "\"spectral_contrast\":24.6,\"zcr\":0.072,\"chroma_std\":0.36,"
                    "\"rhythm_stability\":0.55,\"harmonicity\":0.69,\"is_major_key\":false,"
                    "\"mode_confidence\":0.46,\"spectral_flux\":0.29,\"onset_density\":0.38,"
                    "\"hp_ratio\":0.58,\"dynamic_range\":0.48,\"pitch_register\":0.38,"
                    "\"attack_sharpness\":0.36,\"valence_scientific\":0.503,"
                    "\"arousal_scientific\":0.3852}";
    json_t *j = json_loads(which == 'A' ? a : which == 'B' ? b : c, 0, NULL);
    CHECK(j != NULL);
    return j;
}

static void check_build(int version, const json_t *f, const char *band, const char *song,
                        const char *genres_json, const char *want, const char *want_neg)
{
    json_t *g = genres_json ? json_loads(genres_json, JSON_DECODE_ANY, NULL) : NULL;
    char *p = NULL, *n = NULL;
    int rc = prompt_build_json(version, f, band, song, g, &p, &n);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  error: %s\n", m2p_errmsg());
    CHECK_STR(p, want);
    if (want_neg)
        CHECK_STR(n, want_neg);
    free(p);
    free(n);
    json_decref(g);
}

static const char *NEG1 = "text, logo, watermark, words, lowres, jpeg artifacts, cropped, collage, "
                          "grain, border, frame, blurry, distorted face, unfocused, overexposed, "
                          "underexposed, duplicate, noisy, deformed";
static const char *NEG3 = "text, letters, words, watermark, faces, people, portraits, photo, "
                          "realistic, messy, blurry, low quality";
static const char *NEG4 = "text, words, letters, watermark, signature, blurry, ugly, deformed, "
                          "amateur";

static void test_worked_examples(void)
{
    json_t *A = example('A'), *B = example('B'), *C = example('C');
    const char *gA = "[\"thrash metal\", \"speed metal\"]";
    const char *gB = "[\"ambient\", \"drone\"]";
    const char *gC = "[\"cool jazz\", \"hard bop\", \"jazz\", \"bebop\"]";

    check_build(M2P_PROMPT_V1, A, "Slayer", "Raining Blood", gA,
                "music-inspired abstract art poster, atmospheric emotional balance, chaotic "
                "energetic asymmetry, vivid neon high contrast, nostalgic introspective, smooth "
                "modern surface, geometric shapes, fluid motion, dim ambient shadows, , inspired "
                "by the music of Slayer, titled 'Raining Blood', modern design, cinematic "
                "lighting, detailed, high quality",
                NEG1);
    check_build(M2P_PROMPT_V3, A, "Slayer", "Raining Blood", gA,
                "abstract thrash metal poster, relentless aggression, explosive power, fractured "
                "shards, corroded metal texture, storm clouds, bold dramatic lighting, explosive "
                "chaos, bold saturated colors, explosive asymmetric, professional design, no "
                "text, no faces, 4k, high quality",
                NEG3);
    check_build(M2P_PROMPT_V4, A, "Slayer", "Raining Blood", gA,
                "shattered cathedral consumed by dark flames, ominous power, deep crimson and "
                "black, dark fantasy art",
                NEG4);

    check_build(M2P_PROMPT_V1, B, "Brian Eno", "An Ending (Ascent)", gB,
                "music-inspired abstract art poster, atmospheric emotional balance, minimal "
                "serene centered, pastel muted soft, nostalgic introspective, soft atmospheric "
                "haze, geometric shapes, structured repetition, dim ambient shadows, , inspired "
                "by the music of Brian Eno, titled 'An Ending (Ascent)', modern design, "
                "cinematic lighting, detailed, high quality",
                NEG1);
    check_build(M2P_PROMPT_V3, B, "Brian Eno", "An Ending (Ascent)", gB,
                "abstract ambient poster, layered dimensions, meditative calm, ethereal wisps, "
                "gossamer fabric, cosmic void, deep shadows, rhythmic pulse, dark muted colors, "
                "minimal centered, professional design, no text, no faces, 4k, high quality",
                NEG3);
    check_build(M2P_PROMPT_V4, B, "Brian Eno", "An Ending (Ascent)", gB,
                "water dripping from moss, tender moment, coral pink and warm white, ethereal "
                "photography",
                NEG4);

    check_build(M2P_PROMPT_V1, C, "Miles Davis", "So What", gC,
                "music-inspired abstract art poster, atmospheric emotional balance, dynamic "
                "rhythmic motion, pastel muted soft, nostalgic introspective, soft atmospheric "
                "haze, geometric shapes, fluid motion, dim ambient shadows, , inspired by the "
                "music of Miles Davis, titled 'So What', modern design, cinematic lighting, "
                "detailed, high quality",
                NEG1);
    check_build(M2P_PROMPT_V3, C, "Miles Davis", "So What", gC,
                "abstract cool jazz poster, smooth intellectualism, introspective, syncopated "
                "patterns, brushstroke texture, dimmed stage lighting, cinematic glow, rhythmic "
                "pulse, rich harmonious colors, balanced depth, professional design, no text, no "
                "faces, 4k, high quality",
                NEG3);
    check_build(M2P_PROMPT_V4, C, "Miles Davis", "So What", gC,
                "old radio glowing in dim room, mysterious atmosphere, subtle gradient palette, "
                "vintage poster art",
                NEG4);

    /* V1 for example A with band and song empty: four commas (NULL and "" behave the same) */
    const char *v1_empty =
        "music-inspired abstract art poster, atmospheric emotional balance, chaotic energetic "
        "asymmetry, vivid neon high contrast, nostalgic introspective, smooth modern surface, "
        "geometric shapes, fluid motion, dim ambient shadows, , , , modern design, cinematic "
        "lighting, detailed, high quality";
    check_build(M2P_PROMPT_V1, A, NULL, NULL, NULL, v1_empty, NEG1);
    check_build(M2P_PROMPT_V1, A, "", "", NULL, v1_empty, NEG1);
    json_decref(A);
    json_decref(B);
    json_decref(C);
}

static void test_hash(void)
{
    /* PROMPTS.md 5 and 8 */
    CHECK_INT(rules_seed_hash("", "", 120, 0.5), 3630233955u);
    CHECK_INT(rules_seed_hash(NULL, NULL, 120, 0.5), 3630233955u);
    CHECK_INT(rules_seed_hash("Slayer", "Raining Blood", 184.5703125, 0.82), 2219270352u);
    CHECK_INT(rules_seed_hash("Brian Eno", "An Ending (Ascent)", 86.1328125, 0.06), 3982894157u);
    CHECK_INT(rules_seed_hash("Miles Davis", "So What", 135.99917763157896, 0.31), 3092433576u);
    /* printf rounding: 120.5 -> 120 and 121.5 -> 122; 0.125 -> 0.12, 0.375 -> 0.38 */
    CHECK_INT(rules_seed_hash("a", "b", 120.5, 0.5), rules_seed_hash("a", "b", 120, 0.5));
    CHECK(rules_seed_hash("a", "b", 121.5, 0.5) == rules_seed_hash("a", "b", 122, 0.5));
    CHECK(rules_seed_hash("a", "b", 120, 0.125) == rules_seed_hash("a", "b", 120, 0.12));
    CHECK(rules_seed_hash("a", "b", 120, 0.375) == rules_seed_hash("a", "b", 120, 0.38));
    CHECK(rules_seed_hash("a", "b", 120, 0.115) == rules_seed_hash("a", "b", 120, 0.12));
    CHECK(rules_seed_hash("a", "b", 120, 0.5) != rules_seed_hash("a", "c", 120, 0.5));
}

/* The struct entry point maps brightness -> spectral_centroid, zero_crossing_rate -> zcr. */
static void test_struct_entry(void)
{
    m2p_features f;
    memset(&f, 0, sizeof f);
    f.tempo = 184.5703125;
    f.energy = 0.82;
    f.brightness = 3150.4;
    f.spectral_rolloff = 6320.7;
    f.spectral_bandwidth = 2710.2;
    f.spectral_contrast = 21.3;
    f.zero_crossing_rate = 0.118;
    f.chroma_std = 0.27;
    f.rhythm_stability = 0.41;
    f.harmonicity = 0.52;
    f.is_major_key = 0;
    f.mode_confidence = 0.47;
    f.spectral_flux = 0.68;
    f.onset_density = 0.74;
    f.hp_ratio = 0.22;
    f.dynamic_range = 0.22;
    f.pitch_register = 0.59;
    f.attack_sharpness = 0.55;
    f.valence_scientific = 0.4105;
    f.arousal_scientific = 0.7804;
    char *p = NULL, *n = NULL;
    CHECK_INT(m2p_prompt_build(M2P_PROMPT_V4, &f, "Slayer", "Raining Blood",
                               "[\"thrash metal\",\"speed metal\"]", &p, &n),
              0);
    CHECK_STR(p, "shattered cathedral consumed by dark flames, ominous power, deep crimson and "
                 "black, dark fantasy art");
    CHECK_STR(n, NEG4);
    free(p);
    free(n);
    CHECK_INT(m2p_prompt_build(M2P_PROMPT_V3, &f, "Slayer", "Raining Blood", "thrash metal", &p,
                               &n),
              0);
    CHECK_STR(p, "abstract thrash metal poster, relentless aggression, explosive power, "
                 "fractured shards, corroded metal texture, storm clouds, bold dramatic "
                 "lighting, explosive chaos, bold saturated colors, explosive asymmetric, "
                 "professional design, no text, no faces, 4k, high quality");
    free(p);
    free(n);
    /* bad input: a clear error, no output */
    p = n = (char *)1;
    CHECK_INT(m2p_prompt_build(7, &f, "", "", NULL, &p, &n), M2P_EINVAL);
    CHECK(p == NULL && n == NULL);
    CHECK_INT(m2p_prompt_build(M2P_PROMPT_LLM, &f, "", "", NULL, &p, &n), M2P_EINVAL);
    CHECK_INT(m2p_prompt_build(M2P_PROMPT_V4, NULL, "", "", NULL, &p, &n), M2P_EINVAL);
}

/* A present null or string number is an error (conventions.missing_vs_null). */
static void test_bad_features(void)
{
    char *p = NULL, *n = NULL;
    json_t *f = json_pack("{s:n}", "tempo");
    CHECK_INT(prompt_build_json(M2P_PROMPT_V4, f, "", "", NULL, &p, &n), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "tempo") != NULL);
    CHECK(p == NULL && n == NULL);
    json_decref(f);
    f = json_pack("{s:s}", "energy", "loud");
    CHECK_INT(prompt_build_json(M2P_PROMPT_V3, f, "", "", NULL, &p, &n), M2P_EINVAL);
    json_decref(f);
    f = json_pack("[i]", 1);
    CHECK_INT(prompt_build_json(M2P_PROMPT_V3, f, "", "", NULL, &p, &n), M2P_EINVAL);
    json_decref(f);
    json_t *g = json_integer(3);
    CHECK_INT(prompt_build_json(M2P_PROMPT_V3, NULL, "", "", g, &p, &n), M2P_EINVAL);
    json_decref(g);
    /* no features at all: every default applies */
    CHECK_INT(prompt_build_json(M2P_PROMPT_V4, NULL, NULL, NULL, NULL, &p, &n), 0);
    CHECK(p && strlen(p) > 10);
    free(p);
    free(n);
}

int main(void)
{
    test_worked_examples();
    test_hash();
    test_struct_entry();
    test_bad_features();
    TEST_DONE();
}
