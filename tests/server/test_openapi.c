/*
 * test_openapi.c — /api/openapi.json against the router of `mus2pic serve`: both come from one
 * route table (src/server/routes.c), and this checks that they agree from the outside. Every
 * documented path answers exactly its documented methods (a PATCH gets 405 listing them in
 * Allow), undocumented paths get 404, every $ref resolves, every operation documents 401, and
 * the document lists every route of the API, the original's included.
 */
#include "harness.h"

/* Every "$ref" in v names a schema of the document. */
static int refs_resolve(json_t *v, json_t *schemas)
{
    int ok = 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (!strcmp(k, "$ref")) {
                const char *r = json_string_value(x);
                const char *pre = "#/components/schemas/";
                int found =
                    r && !strncmp(r, pre, strlen(pre)) && json_object_get(schemas, r + strlen(pre));
                if (!found)
                    fprintf(stderr, "  $ref %s does not resolve\n", r ? r : "(not a string)");
                ok &= found;
            } else {
                ok &= refs_resolve(x, schemas);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) ok &= refs_resolve(x, schemas);
    }
    return ok;
}

/* /api/openapi.json and the router agree: each documented path answers exactly its documented
 * methods (a PATCH gets 405 with them in Allow), undocumented paths are 404, and the document
 * holds every route of the API, the original's included. */
static void check_openapi(int port)
{
    int st;
    json_t *o = api(port, "GET", "/api/openapi.json", NULL, &st);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(o, "openapi"), "3.0.3");
    json_t *paths = json_object_get(o, "paths");
    static const char *expected[] = {"/api/health",
                                     "/api/models",
                                     "/api/models/fetch",
                                     "/api/openapi.json",
                                     "/api/analyze",
                                     "/api/generate",
                                     "/api/jobs/{id}",
                                     "/api/jobs/{id}/cancel",
                                     "/api/images/{id}.png",
                                     "/api/images/{id}",
                                     "/api/images/{id}/thumb.png",
                                     "/api/images/{id}/poster.png",
                                     "/api/tokens",
                                     "/api/gallery",
                                     "/api/batches",
                                     "/api/batches/{id}",
                                     "/api/extract-metadata",
                                     "/api/generate-prompt",
                                     "/api/extract-metadata-quick",
                                     "/api/generate-prompt-llm",
                                     "/api/validate-api-key",
                                     "/api/generate-image",
                                     "/ws/progress"};
    size_t n_expected = sizeof expected / sizeof expected[0];
    CHECK_INT(json_object_size(paths), n_expected);
    for (size_t i = 0; i < n_expected; i++)
        if (!json_object_get(paths, expected[i])) {
            fprintf(stderr, "  %s is not in the document\n", expected[i]);
            test_failures++;
        }
    CHECK(refs_resolve(o, json_object_get(json_object_get(o, "components"), "schemas")));
    CHECK(json_object_get(json_object_get(json_object_get(o, "components"), "schemas"),
                          "GenerateParams") != NULL);

    const char *path;
    json_t *item;
    int n_ops = 0;
    json_object_foreach(paths, path, item)
    {
        if (!strncmp(path, "/ws/", 4))
            continue;
        char want[64] = "", url[128];
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            char up[8];
            size_t k = 0;
            for (; method[k] && k + 1 < sizeof up; k++)
                up[k] = (char)(method[k] & ~0x20);
            up[k] = 0;
            if (want[0])
                strcat(want, ", ");
            strcat(want, up);
            n_ops++;
            CHECK(json_object_get(json_object_get(op, "responses"), "401") != NULL);
            CHECK(strlen(jstr(op, "summary")) > 5);
        }
        /* {id} -> 7; every other part as written */
        size_t u = 0;
        for (const char *p = path; *p && u + 2 < sizeof url;) {
            if (!strncmp(p, "{id}", 4)) {
                url[u++] = '7';
                p += 4;
            } else {
                url[u++] = *p++;
            }
        }
        url[u] = 0;
        resp r;
        CHECK_INT(http_req(port, "PATCH", url, NULL, NULL, 0, NULL, &r), 0);
        if (r.status != 405 || strcmp(r.allow, want) != 0) {
            fprintf(stderr, "  PATCH %s -> %d, Allow '%s'; the document says '%s'\n", url, r.status,
                    r.allow, want);
            test_failures++;
        }
        resp_free(&r);
    }
    CHECK_INT(n_ops, 25);
    static const char *undocumented[] = {
        "/api",          "/api/jobs",        "/api/jobs/0",   "/api/jobs/x", "/api/images/7.jpg",
        "/api/health/x", "/api/batches/7/x", "/api/generate/"};
    for (size_t i = 0; i < sizeof undocumented / sizeof undocumented[0]; i++) {
        json_t *j = api(port, "GET", undocumented[i], NULL, &st);
        if (st != 404) {
            fprintf(stderr, "  GET %s -> %d; expected 404\n", undocumented[i], st);
            test_failures++;
        }
        json_decref(j);
    }
    json_decref(o);
}

int main(void)
{
    harness_init();
    char *t = test_tmpdir("server-openapi");
    char data[600];
    snprintf(data, sizeof data, "%s/data", t);
    srv s;
    if (srv_start(&s, data, NULL)) {
        CHECK(!"the server did not start");
        TEST_DONE();
    }
    check_openapi(s.port);
    CHECK_INT(srv_stop(&s, SIGTERM), 0);
    if (test_failures)
        srv_dump_log(&s);
    test_rmtree(t);
    free(t);
    mg_exit_library();
    TEST_DONE();
}
