/*
 * fuzz_validate.c — libFuzzer target for API request bodies through the validators of
 * src/server/validate.c as the router hands them over (m2p_json_loadb's depth limit, then
 * validate_generate, validate_url, validate_duration, validate_prompt_version) on a server with
 * the sd-tiny fixture installed as model "tiny" and no job workers (fuzz_server_env.h).
 *
 * Input: a JSON body (at most 64 KiB). Oracle: a refusal carries a status and a message; an
 * accepted generation has every number in its documented range and serialises as JSON, as
 * submit_generate stores it.
 *
 * fuzz-flags: -detect_leaks=0 (fuzz_server_env.h says why)
 */
#include "core/json_limit.h"
#include "fuzz_server_env.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_params(const json_t *p)
{
    json_int_t steps = json_integer_value(json_object_get(p, "steps"));
    json_int_t var = json_integer_value(json_object_get(p, "variations"));
    json_int_t w = json_integer_value(json_object_get(p, "width"));
    json_int_t h = json_integer_value(json_object_get(p, "height"));
    json_int_t seed = json_integer_value(json_object_get(p, "seed"));
    double g = json_real_value(json_object_get(p, "guidance"));
    if (steps < 1 || steps > 50 || var < 1 || var > 8 || w < 64 || w > 1024 || w % 8 || h < 64 ||
        h > 1024 || h % 8 || seed < 0 || seed > 9007199254740991LL || !(g >= 0 && g <= 20))
        abort();
    if (!json_is_string(json_object_get(p, "model")) ||
        !json_is_string(json_object_get(p, "negative_prompt")))
        abort();
    char *dump = json_dumps(p, JSON_COMPACT);
    if (!dump)
        abort();
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    server *s = fuzz_server();
    json_error_t jerr;
    json_t *b = m2p_json_loadb((const char *)data, size, 0, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        return 0;
    }
    for (int need_prompt = 0; need_prompt < 2; need_prompt++) {
        api_error e;
        json_t *p = validate_generate(s, b, need_prompt, &e);
        if (p)
            check_params(p);
        else if (!e.status || !e.message[0])
            abort();
        json_decref(p);
    }
    api_error e = {0};
    json_t *u = json_object_get(b, "url");
    if (u && validate_url(s, u, "url", &e) != 0 && !e.message[0])
        abort();
    double d;
    int ver;
    memset(&e, 0, sizeof e);
    if (validate_duration(json_object_get(b, "duration"), &d, &e) == 0 && !(d >= 0))
        abort();
    memset(&e, 0, sizeof e);
    if (validate_prompt_version(json_object_get(b, "prompt_version"), &ver, &e) == 0 &&
        ver != 1 && ver != 3 && ver != 4)
        abort();
    json_decref(b);
    return 0;
}
