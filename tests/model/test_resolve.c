/*
 * test_resolve.c — model references -> folders: an existing folder, a hub id in a fake Hugging
 * Face cache (refs/main, else the newest complete snapshot; an incomplete one is skipped), a
 * registry name, ./models/ORG--NAME and ./models/NAME, and the not-found messages. Also the
 * compiled-in registry (six models, only lcm runnable).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/resolve.h"
#include "mus2pic.h"
#include "test.h"

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{}", f);
        fclose(f);
    }
}

static void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

int main(void)
{
    int n;
    const m2p_registry_entry *reg = m2p_registry(&n);
    CHECK_INT(n, 6);
    int supported = 0;
    for (int i = 0; i < n; i++)
        supported += reg[i].supported;
    CHECK_INT(supported, 6); /* SD 1.x, 2.x and SDXL all run since issue 8 */
    const m2p_registry_entry *lcm = m2p_registry_find("lcm");
    CHECK(lcm != NULL);
    if (lcm) {
        CHECK_STR(lcm->hub_id, "SimianLuo/LCM_Dreamshaper_v7");
        CHECK_INT(lcm->default_steps, 8);
        CHECK(lcm->supported);
    }
    CHECK(m2p_registry_find("simianluo/lcm_dreamshaper_v7") == lcm);
    CHECK(m2p_registry_find("sdxl_lightning") != NULL);
    CHECK(m2p_registry_find("sdxl_lightning")->supported);
    CHECK(m2p_registry_find("nope") == NULL);

    CHECK(hub_is_repo_id("SimianLuo/LCM_Dreamshaper_v7"));
    CHECK(!hub_is_repo_id("./x/y"));
    CHECK(!hub_is_repo_id("/abs/path"));
    CHECK(!hub_is_repo_id("a/b/c"));
    CHECK(!hub_is_repo_id("a/../b"));
    CHECK(!hub_is_repo_id("noslash"));

    char *root = test_tmpdir("resolve");
    char home[512], p[1024], out[4096];
    snprintf(home, sizeof home, "%s/hf", root);
    setenv("HF_HOME", home, 1);
    unsetenv("HF_HUB_CACHE");
    CHECK_INT(hub_cache_dir(out, sizeof out), 0);
    snprintf(p, sizeof p, "%s/hub", home);
    CHECK_STR(out, p);

    /* not installed yet: a message that says how to get it */
    CHECK_INT(m2p_model_resolve("lcm", out, sizeof out), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "models fetch lcm") != NULL);
    CHECK_INT(m2p_model_resolve("no-such-thing", out, sizeof out), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "no-such-thing") != NULL);
    CHECK_INT(m2p_model_resolve("", out, sizeof out), M2P_EINVAL);

    /* two snapshots: refs/main picks one; without refs, the newest complete one */
    const char *repo = "hf/hub/models--SimianLuo--LCM_Dreamshaper_v7";
    snprintf(p, sizeof p, "%s/%s/snapshots/aaa", root, repo);
    mkdirs(p);
    strcat(p, "/model_index.json");
    touch(p);
    snprintf(p, sizeof p, "%s/%s/snapshots/bbb", root, repo);
    mkdirs(p);
    strcat(p, "/model_index.json");
    touch(p);
    snprintf(p, sizeof p, "%s/%s/snapshots/ccc-incomplete", root, repo);
    mkdirs(p); /* no model_index.json: never used */
    snprintf(p, sizeof p, "%s/%s/refs", root, repo);
    mkdirs(p);
    strcat(p, "/main");
    FILE *f = fopen(p, "w");
    fputs("aaa\n", f);
    fclose(f);
    CHECK_INT(m2p_model_resolve("SimianLuo/LCM_Dreamshaper_v7", out, sizeof out), 0);
    snprintf(p, sizeof p, "%s/%s/snapshots/aaa", root, repo);
    CHECK_STR(out, p);
    CHECK_INT(m2p_model_resolve("lcm", out, sizeof out), 0);
    CHECK_STR(out, p);
    snprintf(p, sizeof p, "%s/%s/refs/main", root, repo);
    unlink(p);
    /* make bbb clearly newer */
    snprintf(p, sizeof p, "%s/%s/snapshots/aaa", root, repo);
    struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
    utimensat(AT_FDCWD, p, old, 0);
    CHECK_INT(m2p_model_resolve("lcm", out, sizeof out), 0);
    snprintf(p, sizeof p, "%s/%s/snapshots/bbb", root, repo);
    CHECK_STR(out, p);

    /* ./models fallbacks (relative to the working folder) */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_INT(chdir(root), 0);
    CHECK_INT(m2p_model_resolve("CompVis/stable-diffusion-v1-4", out, sizeof out), M2P_ENOTFOUND);
    mkdirs("models/stable-diffusion-v1-4");
    CHECK_INT(m2p_model_resolve("sd14", out, sizeof out), 0);
    CHECK_STR(out, "models/stable-diffusion-v1-4");
    mkdirs("models/CompVis--stable-diffusion-v1-4");
    CHECK_INT(m2p_model_resolve("CompVis/stable-diffusion-v1-4", out, sizeof out), 0);
    CHECK_STR(out, "models/CompVis--stable-diffusion-v1-4");
    /* a folder as given */
    CHECK_INT(m2p_model_resolve("models", out, sizeof out), 0);
    CHECK_STR(out, "models");
    CHECK_INT(chdir(cwd), 0);

    /* HF_HUB_CACHE wins over HF_HOME */
    setenv("HF_HUB_CACHE", "/somewhere/else", 1);
    CHECK_INT(hub_cache_dir(out, sizeof out), 0);
    CHECK_STR(out, "/somewhere/else");
    unsetenv("HF_HUB_CACHE");
    /* too small an output buffer is an error, not an overflow */
    char tiny[8];
    CHECK_INT(m2p_model_resolve(root, tiny, sizeof tiny), M2P_EINVAL);

    test_rmtree(root);
    free(root);
    TEST_DONE();
}
