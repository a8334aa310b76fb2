/*
 * gen_registry.c — build-time generator of src/model's registry table: reads the registry
 * (src/model/model-registry.json, a copy of ../shared/spec/model-registry.json) and the engine's
 * additions (src/model/model-engine.json) and writes registry_data.c with one
 * m2p_registry_entry per model, in the spec's order. Run by CMake (add_custom_command); a model
 * missing from either file, or a field of the wrong type, stops the build with a message.
 * Usage: gen_registry REGISTRY.json ENGINE.json OUT.c
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gen_fail(const char *what, const char *name)
{
    fprintf(stderr, "gen_registry: %s%s%s\n", what, name ? ": " : "", name ? name : "");
    return 1;
}

/* A C string literal for s (NULL -> NULL); bytes outside printable ASCII as octal escapes. */
static void gen_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("NULL", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 32 || *p >= 127)
            fprintf(f, "\\%03o", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The engine's field when present, else the registry's. */
static json_t *gen_field(json_t *reg, json_t *eng, const char *key)
{
    json_t *v = json_object_get(eng, key);
    return v ? v : json_object_get(reg, key);
}

static int gen_entry(FILE *f, const char *name, json_t *reg, json_t *eng)
{
    static const char *texts[] = {"hub_id", "name", "description", "expected_time",
                                  "memory", "quality", "speed", "scheduler"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!json_is_string(gen_field(reg, eng, texts[i])))
            return gen_fail(texts[i], name);
    json_t *steps = gen_field(reg, eng, "default_steps"), *g = json_object_get(eng, "guidance");
    json_t *w = json_object_get(eng, "width"), *h = json_object_get(eng, "height");
    json_t *sup = json_object_get(eng, "supported"), *sp = json_object_get(eng, "timestep_spacing");
    if (!json_is_integer(steps) || !json_is_number(g) || !json_is_integer(w) ||
        !json_is_integer(h) || !json_is_integer(sup) || (sp && !json_is_string(sp)))
        return gen_fail("default_steps, guidance, width, height, supported (numbers) or "
                        "timestep_spacing (text) missing or of the wrong type",
                        name);
    /* The spec's hub_id may continue with prose ("... with the UNet from ..."): its first word. */
    const char *hub = json_string_value(gen_field(reg, eng, "hub_id"));
    size_t hub_len = strcspn(hub, " ");
    char hub_id[256];
    if (hub_len == 0 || hub_len >= sizeof hub_id)
        return gen_fail("hub_id empty or too long", name);
    memcpy(hub_id, hub, hub_len);
    hub_id[hub_len] = '\0';

    fputs("    {", f);
    gen_str(f, name);
    fputs(", ", f);
    gen_str(f, hub_id);
    for (size_t i = 1; i < 7; i++) {
        fputs(", ", f);
        gen_str(f, json_string_value(gen_field(reg, eng, texts[i])));
    }
    fprintf(f, ", %lld, %lld, (float)%.9g, %lld, %lld, ", (long long)json_integer_value(steps),
            (long long)json_integer_value(sup), json_number_value(g),
            (long long)json_integer_value(w), (long long)json_integer_value(h));
    gen_str(f, json_string_value(gen_field(reg, eng, "scheduler")));
    fputs(", ", f);
    gen_str(f, sp ? json_string_value(sp) : NULL);
    fputs("},\n", f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return gen_fail("usage: gen_registry REGISTRY.json ENGINE.json OUT.c", NULL);
    json_error_t err;
    json_t *reg = json_load_file(argv[1], 0, &err), *eng = json_load_file(argv[2], 0, &err);
    if (!reg || !eng || !json_is_object(reg) || !json_is_object(eng)) {
        fprintf(stderr, "gen_registry: %s:%d: %s\n", err.source, err.line, err.text);
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return gen_fail("cannot write", tmp);
    fprintf(f, "/*\n * registry_data.c — GENERATED at build time by tools/codegen/gen_registry.c "
               "from\n * src/model/model-registry.json and src/model/model-engine.json; do not "
               "edit.\n */\n#include \"model/registry_data.h\"\n\n"
               "const m2p_registry_entry m2p_registry_entries[] = {\n");
    int rc = 0, n = 0;
    const char *name;
    json_t *v;
    json_object_foreach(reg, name, v)
    {
        json_t *e = json_object_get(eng, name);
        if (!json_is_object(v) || !json_is_object(e)) {
            rc = gen_fail("model in model-registry.json without an entry in model-engine.json",
                          name);
            break;
        }
        if ((rc = gen_entry(f, name, v, e)))
            break;
        n++;
    }
    json_object_foreach(eng, name, v)
    {
        if (name[0] != '_' && !json_object_get(reg, name)) {
            rc = gen_fail("model in model-engine.json that model-registry.json does not list", name);
            break;
        }
    }
    fprintf(f, "};\nconst int m2p_registry_n_entries = %d;\n", n);
    if (fclose(f) != 0 && !rc)
        rc = gen_fail("write failed", tmp);
    if (!rc && rename(tmp, argv[3]) != 0)
        rc = gen_fail("cannot rename to", argv[3]);
    if (rc)
        remove(tmp);
    json_decref(reg);
    json_decref(eng);
    return rc;
}
