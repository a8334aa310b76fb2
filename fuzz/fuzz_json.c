/*
 * fuzz_json.c — libFuzzer target for the JSON nesting pre-scan and the request validators that
 * take a parsed value (src/core/json_limit.c, src/server/validate.c).
 *
 * Input: arbitrary bytes as a request body. Checks that m2p_json_depth never disagrees with
 * m2p_json_loadb (deep text refused, shallow text handed to jansson), then runs the duration,
 * prompt-version and optional-string validators on every member of a parsed object.
 */
#include "core/json_limit.h"
#include "server/server_internal.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int depth = m2p_json_depth(text, size, M2P_JSON_MAX_DEPTH);
    if (depth < 0 || depth > M2P_JSON_MAX_DEPTH + 1)
        abort(); /* the scan stops counting at max + 1 */
    json_error_t jerr;
    json_t *root = m2p_json_loadb(text, size, JSON_DISABLE_EOF_CHECK, &jerr);
    if (root && depth > M2P_JSON_MAX_DEPTH)
        abort(); /* deep text must never reach jansson */
    if (!root)
        return 0;
    if (json_is_object(root)) {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            api_error e = {0};
            double d;
            int ver;
            validate_duration(v, &d, &e);
            validate_prompt_version(v, &ver, &e);
            validate_opt_string(root, key, 256, &e);
        }
        char *dump = json_dumps(root, JSON_COMPACT);
        free(dump);
    }
    json_decref(root);
    return 0;
}
