/*
 * test_json_limit.c — the nesting pre-scan in front of jansson (src/core/json_limit.c): depth
 * counted over [ and { outside strings (escaped quotes included), text at the limit parsed, one
 * level deeper refused with the position of the first bracket past it, malformed text left to
 * jansson, and a hostile 1,000,000-deep text refused without recursion.
 */
#include <stdlib.h>
#include <string.h>

#include "core/json_limit.h"
#include "test.h"

static char *nest(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[2 * depth - 1 - i] = ']';
    }
    s[2 * depth] = 0;
    return s;
}

int main(void)
{
    CHECK_INT(m2p_json_depth("{}", 2, 99), 1);
    CHECK_INT(m2p_json_depth("{\"a\":[1,{\"b\":[]}]}", 18, 99), 4);
    CHECK_INT(m2p_json_depth("\"[[[[\"", 6, 99), 0);         /* brackets in a string */
    CHECK_INT(m2p_json_depth("[\"\\\"[[\",[]]", 11, 99), 2); /* an escaped quote */
    CHECK_INT(m2p_json_depth("[\"\\\\\",[[]]]", 11, 99), 3); /* an escaped backslash */
    CHECK_INT(m2p_json_depth("]]]][", 5, 99), 1);            /* never below zero */

    char *ok = nest(M2P_JSON_MAX_DEPTH), *deep = nest(M2P_JSON_MAX_DEPTH + 1);
    json_error_t err;
    json_t *j = m2p_json_loads(ok, 0, &err);
    CHECK(json_is_array(j));
    json_decref(j);
    j = m2p_json_loads(deep, 0, &err);
    CHECK(j == NULL);
    CHECK(strstr(err.text, "nested deeper than 32") != NULL);
    CHECK_INT(err.column, M2P_JSON_MAX_DEPTH + 1);
    CHECK_INT(err.position, M2P_JSON_MAX_DEPTH);
    free(ok);
    free(deep);

    /* a million levels: refused after the scan stops at 33 (no recursion anywhere) */
    char *huge = nest(1000000);
    CHECK_INT(m2p_json_depth(huge, strlen(huge), M2P_JSON_MAX_DEPTH), M2P_JSON_MAX_DEPTH + 1);
    CHECK(m2p_json_loadb(huge, strlen(huge), 0, &err) == NULL);
    free(huge);

    /* malformed text is jansson's to report */
    j = m2p_json_loads("{\"a\":", 0, &err);
    CHECK(j == NULL);
    CHECK(strstr(err.text, "nested") == NULL);
    CHECK(m2p_json_loads(NULL, 0, &err) == NULL);
    TEST_DONE();
}
