/*
 * test_registry.c — the compiled-in registry (src/model/registry.c) against the spec's
 * model-registry.json: every one of the six names with its hub id, title, description and
 * default steps, and the defaults the spec's "scheduler" text states (guidance, scheduler class,
 * Lightning's trailing spacing, SD 2.1 at 768 px); the sizes of the SDXL models are the original's
 * (Turbo 512², Lightning 1024²). The negative prompt counts only where guidance > 1.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mus2pic.h"
#include "test.h"

/* The number after "guidance " in the spec's scheduler text ("..., guidance 7.5 (...)"). */
static double spec_guidance(const char *text)
{
    const char *g = strstr(text, "guidance ");
    CHECK(g != NULL);
    return g ? strtod(g + 9, NULL) : -1.0;
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model-registry.json", test_env("M2P_SPEC", "../shared/spec"));
    /* the in-repo copy the build generates the table from equals the spec, byte for byte */
    char repo[1024];
    snprintf(repo, sizeof repo, "%s/src/model/model-registry.json", test_env("M2P_SOURCE_DIR", "."));
    CHECK(test_same_file(repo, path));

    json_error_t err;
    json_t *spec = json_load_file(path, 0, &err);
    CHECK(spec != NULL);
    if (!spec)
        TEST_DONE();
    int n = 0;
    m2p_registry(&n);
    CHECK_INT(n, (int)json_object_size(spec));

    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v)
    {
        const m2p_registry_entry *e = m2p_registry_find(key);
        CHECK(e != NULL);
        if (!e)
            continue;
        const char *hub = json_string_value(json_object_get(v, "hub_id"));
        CHECK(strncmp(hub, e->hub_id, strlen(e->hub_id)) == 0);
        CHECK(m2p_registry_find(e->hub_id) == e);
        CHECK_STR(e->title, json_string_value(json_object_get(v, "name")));
        CHECK_STR(e->description, json_string_value(json_object_get(v, "description")));
        CHECK_INT(e->default_steps, (int)json_integer_value(json_object_get(v, "default_steps")));

        const char *sched = json_string_value(json_object_get(v, "scheduler"));
        double g = spec_guidance(sched);
        CHECK_NEAR(e->default_guidance, g, 1e-6);
        CHECK_INT(m2p_registry_uses_negative(e), g > 1.0);
        CHECK(e->scheduler != NULL);
        if (!strncmp(sched, "LCM", 3))
            CHECK_STR(e->scheduler, "LCMScheduler");
        if (strstr(sched, "PNDM"))
            CHECK_STR(e->scheduler, "PNDMScheduler");
        if (strstr(sched, "Euler ancestral"))
            CHECK_STR(e->scheduler, "EulerAncestralDiscreteScheduler");
        if (!strncmp(sched, "Euler, trailing", 15)) {
            CHECK_STR(e->scheduler, "EulerDiscreteScheduler");
            CHECK(e->timestep_spacing && !strcmp(e->timestep_spacing, "trailing"));
        } else {
            CHECK(e->timestep_spacing == NULL);
        }
        int px = strstr(sched, "768 px") ? 768 : 512;
        if (!strcmp(key, "sdxl_lightning"))
            px = 1024;
        CHECK_INT(e->default_width, px);
        CHECK_INT(e->default_height, px);
    }
    CHECK(m2p_registry_find("no-such-model") == NULL);
    CHECK(m2p_registry_find(NULL) == NULL);
    json_decref(spec);
    TEST_DONE();
}
