/*
 * test_model_defaults.c — POST /api/generate without steps, guidance or size takes the chosen
 * model's own, as the original's registry has them (../shared/spec/model-registry.json and
 * ORIGINAL.md: SD 2.1 20 steps, 7.5, 768²; SDXL Turbo 1 step, 0.0, 512²; LCM 8 steps, 1.0,
 * 512²), the same defaults `generate --model NAME` and the page use; anything given wins. The
 * tiny fixtures stand in under the registry names (sd21 = sd2-tiny, turbo = sdxl-tiny).
 */
#include "harness.h"

static void check_defaults(int port, const char *body, int steps, double guidance, int side)
{
    int st = 0;
    json_t *j = api(port, "POST", "/api/generate", body, &st);
    CHECK_INT(st, 202);
    json_t *p = json_object_get(j, "params");
    CHECK_INT(jint(p, "steps"), steps);
    CHECK(fabs(json_number_value(json_object_get(p, "guidance")) - guidance) < 1e-9);
    CHECK_INT(jint(p, "width"), side);
    CHECK_INT(jint(p, "height"), side);
    if (st != 202 || fabs(json_number_value(json_object_get(p, "guidance")) - guidance) >= 1e-9) {
        char *d = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "for %s: %s\n", body, d ? d : "?");
        free(d);
    }
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/cancel", jint(j, "job_id"));
    json_decref(api(port, "POST", path, NULL, &st)); /* not needed to run */
    json_decref(j);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("model-defaults");
    char data[600], sd21[700], turbo[700];
    snprintf(data, sizeof data, "%s/data", t);
    snprintf(sd21, sizeof sd21, "sd21=%s", test_fixture("sd2-tiny/model"));
    snprintf(turbo, sizeof turbo, "turbo=%s", test_fixture("sdxl-tiny/model"));
    const char *extra[] = {"--model", sd21, "--model", turbo, NULL};
    srv s;
    CHECK_INT(srv_start(&s, data, extra), 0);

    check_defaults(s.port, "{\"prompt\":\"a\",\"model\":\"sd21\"}", 20, 7.5, 768);
    check_defaults(s.port, "{\"prompt\":\"a\",\"model\":\"turbo\"}", 1, 0.0, 512);
    check_defaults(s.port, "{\"prompt\":\"a\",\"model\":\"lcm\"}", 8, 1.0, 512);
    /* what the request says wins, guidance 0 included */
    check_defaults(s.port,
                   "{\"prompt\":\"a\",\"model\":\"sd21\",\"steps\":3,\"guidance\":0,"
                   "\"width\":64,\"height\":64}",
                   3, 0.0, 64);
    check_defaults(s.port,
                   "{\"prompt\":\"a\",\"model\":\"turbo\",\"guidance_scale\":2.5,\"width\":64,"
                   "\"height\":64}",
                   1, 2.5, 64);

    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (!test_failures)
        test_rmtree(t);
    free(t);
    TEST_DONE();
}
