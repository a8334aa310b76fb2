/*
 * test_thresholds.c — every prompt rule of prompt-rules.json at its thresholds: just below,
 * at and just above ('>' vs '>=' matters), for V1, V3 and V4, plus the V3/V4 category of every
 * normalised genre against the spec's category_by_genre maps, and V4's has() fallbacks.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "music/prompt.h"
#include "music/rules.h"
#include "test.h"

static char *build(int version, const char *features, const char *genre)
{
    json_t *f = json_loads(features, 0, NULL);
    json_t *g = genre ? json_string(genre) : NULL;
    char *p = NULL, *n = NULL;
    CHECK(f != NULL);
    int rc = prompt_build_json(version, f, "b", "s", g, &p, &n);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  error: %s (features %s)\n", m2p_errmsg(), features);
    free(n);
    json_decref(f);
    json_decref(g);
    return p;
}

/* the prompt holds phrase (as a whole comma-separated part when whole is set) */
static void expect(int version, const char *features, const char *genre, const char *phrase,
                   int want, int line)
{
    char *p = build(version, features, genre);
    int has = 0;
    if (p) {
        size_t pl = strlen(phrase);
        for (const char *q = strstr(p, phrase); q && !has; q = strstr(q + 1, phrase))
            has = (q == p || (q >= p + 2 && q[-2] == ',' && q[-1] == ' ')) &&
                  (q[pl] == 0 || q[pl] == ',' || strncmp(q + pl, " colors,", 8) == 0 ||
                   strncmp(q + pl, " shapes,", 8) == 0);
    }
    if (has != want) {
        fprintf(stderr, "%s:%d: v%d %s %s \"%s\"\n  features %s genre %s\n  prompt: %s\n",
                __FILE__, line, version, want ? "lacks" : "has", "phrase", phrase, features,
                genre ? genre : "(none)", p ? p : "(null)");
        test_failures++;
    }
    free(p);
}
#define HAS(v, f, g, phrase) expect(v, f, g, phrase, 1, __LINE__)
#define LACKS(v, f, g, phrase) expect(v, f, g, phrase, 0, __LINE__)

static void test_v1(void)
{
    const int V = M2P_PROMPT_V1;
    /* composition: tempo > 140, > 110, > 90 */
    HAS(V, "{\"tempo\":140.0001}", NULL, "chaotic energetic asymmetry");
    HAS(V, "{\"tempo\":140}", NULL, "dynamic rhythmic motion");
    HAS(V, "{\"tempo\":110.0001}", NULL, "dynamic rhythmic motion");
    HAS(V, "{\"tempo\":110}", NULL, "flowing balanced symmetry");
    HAS(V, "{\"tempo\":90.0001}", NULL, "flowing balanced symmetry");
    HAS(V, "{\"tempo\":90}", NULL, "minimal serene centered");
    /* colors: energy > 0.7, > 0.4 */
    HAS(V, "{\"energy\":0.7000001}", NULL, "vivid neon high contrast");
    HAS(V, "{\"energy\":0.7}", NULL, "rich warm tones");
    HAS(V, "{\"energy\":0.4000001}", NULL, "rich warm tones");
    HAS(V, "{\"energy\":0.4}", NULL, "pastel muted soft");
    /* mood: valence > 0.7, > 0.4 */
    HAS(V, "{\"valence\":0.7000001}", NULL, "euphoric uplifting");
    HAS(V, "{\"valence\":0.7}", NULL, "nostalgic introspective");
    HAS(V, "{\"valence\":0.4000001}", NULL, "nostalgic introspective");
    HAS(V, "{\"valence\":0.4}", NULL, "dark mysterious");
    /* texture: spectral_centroid > 5000, > 2500 (brightness is not read) */
    HAS(V, "{\"spectral_centroid\":5000.001}", NULL, "sharp crystalline detail");
    HAS(V, "{\"spectral_centroid\":5000}", NULL, "smooth modern surface");
    HAS(V, "{\"spectral_centroid\":2500.001}", NULL, "smooth modern surface");
    HAS(V, "{\"spectral_centroid\":2500}", NULL, "soft atmospheric haze");
    HAS(V, "{\"brightness\":9000}", NULL, "smooth modern surface");
    /* style: mode == "major" */
    HAS(V, "{}", NULL, "geometric");
    HAS(V, "{\"mode\":\"minor\"}", NULL, "organic");
    HAS(V, "{\"mode\":null}", NULL, "organic");
    HAS(V, "{\"mode\":\"Major\"}", NULL, "organic");
    /* rhythm: rhythm_stability > 0.6 */
    HAS(V, "{\"rhythm_stability\":0.6000001}", NULL, "structured repetition");
    HAS(V, "{\"rhythm_stability\":0.6}", NULL, "fluid motion");
    /* lighting: energy > 0.7 && valence < 0.4; valence > 0.7 */
    HAS(V, "{\"energy\":0.71,\"valence\":0.3999}", NULL, "harsh contrast red-blue glow");
    HAS(V, "{\"energy\":0.71,\"valence\":0.4}", NULL, "dim ambient shadows");
    HAS(V, "{\"energy\":0.7,\"valence\":0.3}", NULL, "dim ambient shadows");
    HAS(V, "{\"valence\":0.7000001}", NULL, "bright golden light");
    HAS(V, "{\"valence\":0.7}", NULL, "dim ambient shadows");
    /* theme */
    HAS(V, "{\"instrumentalness\":0.7001,\"energy\":0.4999}", NULL, "ambient cinematic depth");
    HAS(V, "{\"instrumentalness\":0.7,\"energy\":0.4}", NULL, "atmospheric emotional balance");
    HAS(V, "{\"instrumentalness\":0.8,\"energy\":0.5}", NULL, "atmospheric emotional balance");
    HAS(V, "{\"energy\":0.8001,\"valence\":0.3999}", NULL, "chaotic aggression and tension");
    HAS(V, "{\"energy\":0.8,\"valence\":0.3}", NULL, "atmospheric emotional balance");
    HAS(V, "{\"valence\":0.7001,\"danceability\":0.6001}", NULL, "playful rhythmic geometry");
    HAS(V, "{\"valence\":0.7001,\"danceability\":0.6}", NULL, "atmospheric emotional balance");
    /* style_hint: exact band lookup (band "b" here has none: empty slot kept) */
    char *p = NULL, *n = NULL;
    CHECK_INT(prompt_build_json(V, NULL, "Brutus", "", NULL, &p, &n), 0);
    CHECK(p && strstr(p, "dim ambient shadows, stormy lighting, shattered textures, crimson-blue "
                         "tones, inspired by the music of Brutus, , modern design"));
    free(p);
    free(n);
    CHECK_INT(prompt_build_json(V, NULL, "brutus", "It's", NULL, &p, &n), 0);
    CHECK(p && strstr(p, "dim ambient shadows, , inspired by the music of brutus, titled 'It's', "
                         "modern design"));
    free(p);
    free(n);
}

static void test_v3(void)
{
    const int V = M2P_PROMPT_V3;
    /* mood (first match) */
    HAS(V, "{\"chroma_std\":0.1999,\"energy\":0.5501}", NULL, "aggressive intensity");
    HAS(V, "{\"chroma_std\":0.2,\"energy\":0.5501}", NULL, "introspective");
    HAS(V, "{\"chroma_std\":0.1999,\"energy\":0.55}", NULL, "introspective");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140.001}", "metal", "explosive power");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140.001}", "punk rock", "explosive power");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140.001}", "grunge", "explosive power");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140}", "metal", "introspective");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140.001}", "jazz", "introspective");
    HAS(V, "{\"chroma_std\":0.4001,\"harmonicity\":0.6001}", NULL, "complex emotional depth");
    HAS(V, "{\"chroma_std\":0.4,\"harmonicity\":0.6001}", NULL, "introspective");
    HAS(V, "{\"chroma_std\":0.4001,\"harmonicity\":0.6}", NULL, "introspective");
    HAS(V, "{\"harmonicity\":0.2999,\"zcr\":0.1501}", NULL, "chaotic energy");
    HAS(V, "{\"harmonicity\":0.3,\"zcr\":0.1501}", NULL, "introspective");
    HAS(V, "{\"harmonicity\":0.2999,\"zcr\":0.15}", NULL, "introspective");
    HAS(V, "{\"chroma_std\":0.5001,\"energy\":0.3999}", NULL, "melancholic");
    HAS(V, "{\"chroma_std\":0.5,\"energy\":0.3999}", NULL, "introspective");
    HAS(V, "{\"chroma_std\":0.5001,\"energy\":0.4}", NULL, "introspective");
    HAS(V, "{\"energy\":0.2499}", NULL, "meditative calm");
    HAS(V, "{\"energy\":0.25}", NULL, "introspective");
    HAS(V, "{\"harmonicity\":0.6501,\"energy\":0.4501}", NULL, "euphoric power");
    HAS(V, "{\"harmonicity\":0.65,\"energy\":0.4501}", NULL, "introspective");
    HAS(V, "{\"harmonicity\":0.6501,\"energy\":0.45}", NULL, "introspective");
    /* lighting */
    HAS(V, "{\"spectral_rolloff\":7000.1,\"spectral_centroid\":4000.1}", NULL,
        "sharp bright contrast");
    HAS(V, "{\"spectral_rolloff\":7000,\"spectral_centroid\":4000.1}", NULL, "cinematic glow");
    HAS(V, "{\"spectral_rolloff\":7000.1,\"spectral_centroid\":4000}", NULL, "cinematic glow");
    HAS(V, "{\"spectral_rolloff\":2999.9,\"spectral_centroid\":1999.9}", NULL, "deep shadows");
    HAS(V, "{\"spectral_rolloff\":3000,\"spectral_centroid\":1999.9}", NULL, "cinematic glow");
    HAS(V, "{\"spectral_rolloff\":2999.9,\"spectral_centroid\":2000}", NULL, "cinematic glow");
    HAS(V, "{\"spectral_contrast\":25.001}", NULL, "dramatic chiaroscuro");
    HAS(V, "{\"spectral_contrast\":25}", NULL, "cinematic glow");
    HAS(V, "{\"energy\":0.6001}", NULL, "bold dramatic lighting");
    HAS(V, "{\"energy\":0.6}", NULL, "cinematic glow");
    HAS(V, "{\"brightness\":9000,\"spectral_rolloff\":9000}", NULL, "cinematic glow");
    /* motion */
    HAS(V, "{\"tempo\":150.001,\"rhythm_stability\":0.4999}", NULL, "explosive chaos");
    HAS(V, "{\"tempo\":150,\"rhythm_stability\":0.4999}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":150.001,\"rhythm_stability\":0.5}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":150.001,\"rhythm_stability\":0.6001}", NULL, "relentless drive");
    HAS(V, "{\"tempo\":150.001,\"rhythm_stability\":0.6}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":120.001,\"energy\":0.7001}", NULL, "aggressive rhythmic force");
    HAS(V, "{\"tempo\":120,\"energy\":0.7001}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":120.001,\"energy\":0.7}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":130.001,\"energy\":0.5001}", NULL, "dynamic rhythmic drive");
    HAS(V, "{\"tempo\":130,\"energy\":0.5001}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":130.001,\"energy\":0.5}", NULL, "rhythmic pulse");
    HAS(V, "{\"tempo\":79.999}", NULL, "glacial weight");
    HAS(V, "{\"tempo\":80}", NULL, "rhythmic pulse");
    HAS(V, "{\"rhythm_stability\":0.3999}", NULL, "organic flow");
    HAS(V, "{\"rhythm_stability\":0.4}", NULL, "rhythmic pulse");
    /* colors */
    HAS(V, "{\"energy\":0.6501,\"spectral_centroid\":4000.1}", NULL, "neon electric");
    HAS(V, "{\"energy\":0.65,\"spectral_centroid\":4000.1}", NULL, "atmospheric gradient");
    HAS(V, "{\"energy\":0.6501,\"spectral_centroid\":4000}", NULL, "atmospheric gradient");
    HAS(V, "{\"energy\":0.5501}", "metal", "bold saturated");
    HAS(V, "{\"energy\":0.55}", "metal", "atmospheric gradient");
    HAS(V, "{\"energy\":0.5501}", "grunge", "atmospheric gradient");
    HAS(V, "{\"spectral_centroid\":1999.9,\"energy\":0.3999}", NULL, "dark muted");
    HAS(V, "{\"spectral_centroid\":2000,\"energy\":0.3999}", NULL, "atmospheric gradient");
    HAS(V, "{\"spectral_centroid\":1999.9,\"energy\":0.4}", NULL, "atmospheric gradient");
    HAS(V, "{\"harmonicity\":0.6501}", NULL, "rich harmonious");
    HAS(V, "{\"harmonicity\":0.65}", NULL, "atmospheric gradient");
    /* composition */
    HAS(V, "{\"energy\":0.2499}", NULL, "minimal centered");
    HAS(V, "{\"energy\":0.25}", NULL, "balanced depth");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140.001}", NULL, "explosive asymmetric");
    HAS(V, "{\"energy\":0.5501,\"tempo\":140}", NULL, "dynamic bold arrangement");
    HAS(V, "{\"energy\":0.55,\"tempo\":141}", NULL, "dynamic bold arrangement");
    HAS(V, "{\"energy\":0.5001}", NULL, "dynamic bold arrangement");
    HAS(V, "{\"energy\":0.5}", NULL, "balanced depth");
    /* flavour (row "rock": electric energy, driving rhythm, guitar power, raw sound) */
    HAS(V, "{\"energy\":0.6501}", "rock", "electric energy");
    HAS(V, "{\"energy\":0.65}", "rock", "raw sound");
    HAS(V, "{\"chroma_std\":0.4501}", "rock", "guitar power");
    HAS(V, "{\"chroma_std\":0.45}", "rock", "raw sound");
    HAS(V, "{\"harmonicity\":0.6501}", "rock", "guitar power");
    HAS(V, "{\"energy\":0.3499}", "rock", "driving rhythm");
    HAS(V, "{\"energy\":0.35}", "rock", "raw sound");
    HAS(V, "{\"energy\":0.3499,\"harmonicity\":0.66}", "rock", "guitar power");
    /* visual / texture / atmosphere (category default for rock) */
    HAS(V, "{\"energy\":0.7001}", "rock", "abstract geometric forms");
    HAS(V, "{\"energy\":0.7}", "rock", "flowing patterns");
    HAS(V, "{\"energy\":0.2999}", "rock", "dynamic shapes");
    HAS(V, "{\"energy\":0.3}", "rock", "flowing patterns");
    HAS(V, "{\"energy\":0.7001}", "rock", "screen-print texture");
    HAS(V, "{\"energy\":0.7}", "rock", "poster grain");
    HAS(V, "{\"energy\":0.2999}", "rock", "analog warmth");
    HAS(V, "{\"energy\":0.3}", "rock", "poster grain");
    HAS(V, "{\"harmonicity\":0.6001}", "rock", "volumetric depth");
    HAS(V, "{\"harmonicity\":0.6}", "rock", "cinematic mood");
    /* template: genre head or "music poster art" */
    char *p = build(V, "{}", NULL);
    CHECK(p && strncmp(p, "music poster art, sonic essence, ", 33) == 0);
    free(p);
    p = build(V, "{}", "Soundtrack");
    CHECK(p && strncmp(p, "music poster art, ", 18) == 0);
    free(p);
    p = build(V, "{}", "Hard Rock");
    CHECK(p && strncmp(p, "abstract hard rock poster, ", 27) == 0);
    free(p);

    /* the category of every normalised genre (v3.category_by_genre), via visual index 0 */
    const json_t *map = json_object_get(json_object_get(rules_section("v3"), "category_by_genre"),
                                        "map");
    const json_t *pools = json_object_get(rules_section("v3"), "pools");
    CHECK_INT(json_object_size(map), 87);
    const char *genre;
    const json_t *cat;
    json_object_foreach((json_t *)map, genre, cat)
    {
        char pool[64];
        snprintf(pool, sizeof pool, "v3.visual.%s", json_string_value(cat));
        const char *item = json_string_value(json_array_get(json_object_get(pools, pool), 0));
        CHECK(item != NULL);
        if (item)
            HAS(V, "{\"energy\":0.9}", genre, item);
    }
}

/* ---- V4: which pool each of the four parts came from ---- */

static const char *v4_item(const char *pool, const char *features)
{
    json_t *f = json_loads(features, 0, NULL);
    const json_t *t = json_object_get(f, "tempo"), *e = json_object_get(f, "energy");
    double tempo = t ? json_number_value(t) : 120, energy = e ? json_number_value(e) : 0.5;
    json_decref(f);
    const json_t *list = json_object_get(json_object_get(rules_section("v4"), "pools"), pool);
    CHECK(json_array_size(list) > 0);
    uint32_t h = rules_seed_hash("b", "s", tempo, energy);
    return json_array_size(list) ? json_string_value(json_array_get(list, h % json_array_size(list)))
                                 : "";
}

static void v4_expect(const char *features, const char *genre, int part, const char *pool,
                      int line)
{
    char *p = build(M2P_PROMPT_V4, features, genre);
    const char *want = v4_item(pool, features);
    /* split into the four ", "-separated parts (no pool item holds a comma) */
    char got[512] = "";
    if (p) {
        const char *s = p;
        for (int k = 0; k < part && s; k++) {
            s = strstr(s, ", ");
            if (s)
                s += 2;
        }
        if (s) {
            const char *e = strstr(s, ", ");
            size_t n = e ? (size_t)(e - s) : strlen(s);
            snprintf(got, sizeof got, "%.*s", (int)n, s);
        }
    }
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s:%d: v4 part %d is \"%s\", expected \"%s\" from %s\n  features %s genre %s\n",
                __FILE__, line, part, got, want, pool, features, genre ? genre : "(none)");
        test_failures++;
    }
    free(p);
}
#define SCENE(f, g, pool) v4_expect(f, g, 0, pool, __LINE__)
#define ATMO(f, g, pool) v4_expect(f, g, 1, pool, __LINE__)
#define COLORS(f, g, pool) v4_expect(f, g, 2, pool, __LINE__)
#define STYLE(f, g, pool) v4_expect(f, g, 3, pool, __LINE__)

static void test_v4(void)
{
    /* valence_score > 0.52 major, < 0.42 minor (colours at energy 0.5) */
    COLORS("{\"valence_scientific\":0.5201}", NULL, "v4.colors.major_soft");
    COLORS("{\"valence_scientific\":0.52}", NULL, "v4.colors.neutral");
    COLORS("{\"valence_scientific\":0.42}", NULL, "v4.colors.neutral");
    COLORS("{\"valence_scientific\":0.4199}", NULL, "v4.colors.minor_soft");
    /* energy > 0.6 vs <= 0.6 */
    COLORS("{\"valence_scientific\":0.6,\"energy\":0.6001}", NULL, "v4.colors.major_energetic");
    COLORS("{\"valence_scientific\":0.6,\"energy\":0.6}", NULL, "v4.colors.major_soft");
    COLORS("{\"valence_scientific\":0.3,\"energy\":0.6001}", NULL, "v4.colors.minor_energetic");
    COLORS("{\"valence_scientific\":0.3,\"energy\":0.6}", NULL, "v4.colors.minor_soft");
    /* key override: mode_confidence > 0.6 and not is_major_key -> minor, valence <= 0.45 */
    COLORS("{\"valence_scientific\":0.6,\"mode_confidence\":0.6001,\"is_major_key\":false}", NULL,
           "v4.colors.minor_soft");
    COLORS("{\"valence_scientific\":0.6,\"mode_confidence\":0.6,\"is_major_key\":false}", NULL,
           "v4.colors.major_soft");
    COLORS("{\"valence_scientific\":0.6,\"mode_confidence\":0.9,\"is_major_key\":true}", NULL,
           "v4.colors.major_soft");
    COLORS("{\"valence_scientific\":0.6,\"mode_confidence\":0.9,\"is_major_key\":0}", NULL,
           "v4.colors.minor_soft");
    /* override caps valence at 0.45: quiet music then reads as sad (valence < 0.55) */
    ATMO("{\"valence_scientific\":0.9,\"energy\":0.2,\"mode_confidence\":0.7,"
         "\"is_major_key\":false}", NULL, "v4.atmosphere.quiet_sad");
    /* arousal > 0.55 tense, < 0.35 relaxed */
    ATMO("{\"valence_scientific\":0.6,\"arousal_scientific\":0.5501}", NULL,
         "v4.atmosphere.major_tense");
    ATMO("{\"valence_scientific\":0.6,\"arousal_scientific\":0.55}", NULL,
         "v4.atmosphere.major_not_tense");
    ATMO("{\"valence_scientific\":0.3,\"arousal_scientific\":0.5501}", NULL,
         "v4.atmosphere.minor_tense");
    ATMO("{\"valence_scientific\":0.3,\"arousal_scientific\":0.3499}", NULL,
         "v4.atmosphere.minor_relaxed");
    ATMO("{\"valence_scientific\":0.3,\"arousal_scientific\":0.35}", NULL,
         "v4.atmosphere.neutral");
    ATMO("{\"valence_scientific\":0.5,\"arousal_scientific\":0.9}", NULL,
         "v4.atmosphere.neutral");
    /* quiet: energy < 0.25 */
    ATMO("{\"valence_scientific\":0.3,\"energy\":0.2499}", NULL, "v4.atmosphere.quiet_sad");
    ATMO("{\"valence_scientific\":0.5499,\"energy\":0.2499}", NULL, "v4.atmosphere.quiet_sad");
    ATMO("{\"valence_scientific\":0.55,\"energy\":0.2499}", NULL, "v4.atmosphere.quiet_warm");
    ATMO("{\"valence_scientific\":0.55,\"energy\":0.25}", NULL, "v4.atmosphere.major_not_tense");
    /* extreme metal forces its own pools whatever the features */
    const char *loud = "{\"valence_scientific\":0.9,\"energy\":0.9,\"arousal_scientific\":0.1}";
    SCENE(loud, "black metal", "v4.scene.metal.black_metal");
    ATMO(loud, "black metal", "v4.atmosphere.black_metal");
    COLORS(loud, "black metal", "v4.colors.black_metal");
    SCENE(loud, "melodic death metal", "v4.scene.metal.death_metal");
    ATMO(loud, "death metal", "v4.atmosphere.death_metal");
    COLORS(loud, "death metal", "v4.colors.death_metal");
    SCENE(loud, "doom metal", "v4.scene.metal.doom_metal");
    ATMO(loud, "doom metal", "v4.atmosphere.doom_metal");
    COLORS(loud, "doom metal", "v4.colors.doom_metal");
    STYLE(loud, "doom metal", "v4.style.metal");
    /* metal: intense (energy > 0.65 or tense), dark (minor and energy < 0.45), else epic */
    SCENE("{\"energy\":0.6501,\"arousal_scientific\":0.4}", "metal", "v4.scene.metal.intense");
    SCENE("{\"energy\":0.65,\"arousal_scientific\":0.4}", "metal", "v4.scene.metal.epic");
    SCENE("{\"energy\":0.3,\"arousal_scientific\":0.5501}", "metal", "v4.scene.metal.intense");
    SCENE("{\"energy\":0.4499,\"arousal_scientific\":0.4,\"valence_scientific\":0.3}", "metal",
          "v4.scene.metal.dark");
    SCENE("{\"energy\":0.45,\"arousal_scientific\":0.4,\"valence_scientific\":0.3}", "metal",
          "v4.scene.metal.epic");
    SCENE("{\"energy\":0.3,\"arousal_scientific\":0.4,\"valence_scientific\":0.5}", "metal",
          "v4.scene.metal.epic");
    /* electronic: intense (tense or energy > 0.7), ethereal (sparse or relaxed), hypnotic */
    SCENE("{\"energy\":0.7001,\"arousal_scientific\":0.4}", "techno",
          "v4.scene.electronic.intense");
    SCENE("{\"energy\":0.7,\"arousal_scientific\":0.4,\"onset_density\":0.9}", "techno",
          "v4.scene.electronic.hypnotic");
    SCENE("{\"arousal_scientific\":0.3499}", "trance", "v4.scene.electronic.ethereal");
    SCENE("{\"arousal_scientific\":0.4,\"onset_density\":0.2}", "dubstep",
          "v4.scene.electronic.ethereal"); /* density 0.32 < 0.35: sparse */
    SCENE("{\"arousal_scientific\":0.4,\"onset_density\":0.3}", "house",
          "v4.scene.electronic.hypnotic"); /* density 0.38 */
    /* jazz: soulful (minor or energy < 0.4), else smooth */
    SCENE("{\"valence_scientific\":0.5,\"energy\":0.3999}", "jazz", "v4.scene.jazz.soulful");
    SCENE("{\"valence_scientific\":0.5,\"energy\":0.4}", "jazz", "v4.scene.jazz.smooth");
    SCENE("{\"valence_scientific\":0.41,\"energy\":0.5}", "blues", "v4.scene.jazz.soulful");
    /* classical: grand (dense or energy > 0.5) */
    SCENE("{\"energy\":0.5001,\"onset_density\":0}", "classical", "v4.scene.classical.grand");
    SCENE("{\"energy\":0.5,\"onset_density\":0.6}", "classical", "v4.scene.classical.intimate");
    SCENE("{\"energy\":0.5,\"onset_density\":0.7}", "opera", "v4.scene.classical.grand");
    /* ambient: intimate when sparse */
    SCENE("{\"energy\":0.1,\"onset_density\":0.5}", "ambient", "v4.scene.ambient.intimate");
    SCENE("{\"energy\":0.5,\"onset_density\":0.5}", "shoegaze", "v4.scene.ambient.vast");
    /* rock */
    SCENE("{\"energy\":0.2499,\"valence_scientific\":0.9}", "rock", "v4.scene.rock.contemplative");
    SCENE("{\"energy\":0.5001,\"valence_scientific\":0.5201}", "rock",
          "v4.scene.rock.triumphant");
    SCENE("{\"energy\":0.5,\"valence_scientific\":0.9}", "rock", "v4.scene.rock.contemplative");
    SCENE("{\"energy\":0.5501,\"valence_scientific\":0.5}", "rock", "v4.scene.rock.energetic");
    SCENE("{\"energy\":0.55,\"valence_scientific\":0.5}", "rock", "v4.scene.rock.contemplative");
    /* hiphop: bold (dense or energy > 0.6) */
    SCENE("{\"energy\":0.6001,\"onset_density\":0}", "hip hop", "v4.scene.hiphop.bold");
    SCENE("{\"energy\":0.6,\"onset_density\":0}", "rap", "v4.scene.hiphop.street");
    /* folk: mystical when minor or tense */
    SCENE("{\"valence_scientific\":0.41}", "folk", "v4.scene.folk.mystical");
    SCENE("{\"valence_scientific\":0.5,\"arousal_scientific\":0.5501}", "country",
          "v4.scene.folk.mystical");
    SCENE("{\"valence_scientific\":0.5,\"arousal_scientific\":0.5}", "bluegrass",
          "v4.scene.folk.pastoral");
    /* abstract */
    SCENE("{\"energy\":0.5001}", "pop", "v4.scene.abstract.energetic");
    SCENE("{\"energy\":0.5}", NULL, "v4.scene.abstract.calm");
    /* style order: jazz or folk before classical; rock uses default */
    STYLE("{}", "folk rock", "v4.style.jazz_folk");
    STYLE("{}", "rock", "v4.style.default");
    STYLE("{}", "baroque", "v4.style.classical");

    /* has(): fallbacks only for absent keys. valence = 0.5*0.45 + 0.5*0.35 + 0.4*0.15 +
     * 0.75*0.05 = 0.4975 (neutral); harmonicity 0.6 gives 0.5425 (major) */
    COLORS("{}", NULL, "v4.colors.neutral");
    COLORS("{\"harmonicity\":0.6}", NULL, "v4.colors.major_soft");
    COLORS("{\"harmonicity\":0.6,\"valence_scientific\":0.5}", NULL, "v4.colors.neutral");
    /* arousal fallback 0.5 (neither); contrast 30 gives 0.6 (tense) */
    ATMO("{\"valence_scientific\":0.6}", NULL, "v4.atmosphere.major_not_tense");
    ATMO("{\"valence_scientific\":0.6,\"spectral_contrast\":30}", NULL,
         "v4.atmosphere.major_tense");
    /* density fallback: bandwidth 2000 -> 0.583 (not dense), 3000 -> 0.75 (dense) */
    SCENE("{\"energy\":0.5}", "orchestral", "v4.scene.classical.intimate");
    SCENE("{\"energy\":0.5,\"spectral_bandwidth\":3000}", "orchestral",
          "v4.scene.classical.grand");

    /* every normalised genre: scene family and style pool (v4.category_by_genre) */
    const json_t *map = json_object_get(json_object_get(rules_section("v4"), "category_by_genre"),
                                        "map");
    const json_t *pools = json_object_get(rules_section("v4"), "pools");
    CHECK_INT(json_object_size(map), 87);
    const char *genre;
    const json_t *cat;
    const char *f = "{\"energy\":0.5,\"valence_scientific\":0.5,\"arousal_scientific\":0.5}";
    json_object_foreach((json_t *)map, genre, cat)
    {
        char pool[96];
        snprintf(pool, sizeof pool, "v4.style.%s",
                 json_string_value(json_object_get(cat, "style")));
        STYLE(f, genre, pool);
        /* the scene comes from a pool of the family */
        char *p = build(M2P_PROMPT_V4, f, genre);
        char prefix[96];
        snprintf(prefix, sizeof prefix, "v4.scene.%s",
                 json_string_value(json_object_get(cat, "scene_family")));
        int found = 0;
        const char *pname;
        const json_t *list;
        json_object_foreach((json_t *)pools, pname, list)
        {
            if (strncmp(pname, prefix, strlen(prefix)) != 0 ||
                (pname[strlen(prefix)] != '.' && pname[strlen(prefix)] != 0))
                continue;
            size_t i;
            const json_t *it;
            json_array_foreach(list, i, it)
            {
                size_t l = strlen(json_string_value(it));
                if (p && strncmp(p, json_string_value(it), l) == 0 && strncmp(p + l, ", ", 2) == 0)
                    found = 1;
            }
        }
        if (!found)
            fprintf(stderr, "  genre %s: scene not from %s: %s\n", genre, prefix, p);
        CHECK(found);
        free(p);
    }
}

int main(void)
{
    test_v1();
    test_v3();
    test_v4();
    TEST_DONE();
}
