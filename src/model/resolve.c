/*
 * resolve.c — a model reference -> a diffusers folder on disk. Tried in order:
 *   1. an existing folder (path as given);
 *   2. a registry name ("lcm") becomes its hub id;
 *   3. a hub id "ORG/NAME" in the Hugging Face cache, the layout huggingface_hub writes:
 *      <cache>/models--ORG--NAME/snapshots/<rev>/ with <rev> from refs/main, else the newest
 *      snapshot that holds model_index.json (cache dir: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/...);
 *   4. ./models/ORG--NAME, then ./models/NAME.
 * Snapshots appear only complete (fetch.c renames them into place), so a half-downloaded model
 * is never picked.
 */
#define _GNU_SOURCE
#include "model/resolve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "mus2pic.h"

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int copy_out(char *out, size_t len, const char *s)
{
    if (strlen(s) >= len)
        return m2p_error(M2P_EINVAL, "model path too long: %s", s);
    strcpy(out, s);
    return 0;
}

int hub_cache_dir(char *out, size_t len)
{
    const char *v;
    int n;
    if ((v = getenv("HF_HUB_CACHE")) && *v)
        n = snprintf(out, len, "%s", v);
    else if ((v = getenv("HF_HOME")) && *v)
        n = snprintf(out, len, "%s/hub", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v)
        n = snprintf(out, len, "%s/huggingface/hub", v);
    else if ((v = getenv("HOME")) && *v)
        n = snprintf(out, len, "%s/.cache/huggingface/hub", v);
    else
        return m2p_error(M2P_ENOTFOUND, "no Hugging Face cache: set HF_HOME or HOME");
    if (n < 0 || (size_t)n >= len)
        return m2p_error(M2P_EINVAL, "Hugging Face cache path too long");
    return 0;
}

int hub_is_repo_id(const char *ref)
{
    if (!ref || !*ref || ref[0] == '.' || ref[0] == '/' || ref[0] == '-')
        return 0;
    const char *slash = strchr(ref, '/');
    if (!slash || slash == ref || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    if (strstr(ref, "..") || strstr(ref, "--"))
        return 0;
    for (const char *p = ref; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return 0;
    }
    return strlen(ref) <= 96;
}

int hub_repo_dir(const char *repo_id, char *out, size_t len)
{
    char cache[4096];
    int rc = hub_cache_dir(cache, sizeof cache);
    if (rc)
        return rc;
    const char *slash = strchr(repo_id, '/');
    if (!slash)
        return m2p_error(M2P_EINVAL, "'%s' is not a hub repo id (ORG/NAME)", repo_id);
    int n = snprintf(out, len, "%s/models--%.*s--%s", cache, (int)(slash - repo_id), repo_id,
                     slash + 1);
    if (n < 0 || (size_t)n >= len)
        return m2p_error(M2P_EINVAL, "hub cache path too long");
    return 0;
}

static int snapshot_ok(const char *dir)
{
    char p[4800];
    snprintf(p, sizeof p, "%s/model_index.json", dir);
    return is_file(p);
}

int hub_find_snapshot(const char *repo_id, char *out, size_t len)
{
    char repo[4096], path[4400];
    int rc = hub_repo_dir(repo_id, repo, sizeof repo);
    if (rc)
        return rc;
    /* refs/main names the revision the hub's "main" pointed at when it was downloaded */
    snprintf(path, sizeof path, "%s/refs/main", repo);
    FILE *f = fopen(path, "r");
    if (f) {
        char rev[256] = "";
        if (fgets(rev, sizeof rev, f)) {
            rev[strcspn(rev, " \t\r\n")] = '\0';
            if (rev[0] && !strchr(rev, '/') && strcmp(rev, "..") && strcmp(rev, ".")) {
                snprintf(path, sizeof path, "%s/snapshots/%s", repo, rev);
                if (snapshot_ok(path)) {
                    fclose(f);
                    return copy_out(out, len, path);
                }
            }
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/snapshots", repo);
    DIR *d = opendir(path);
    if (!d)
        return m2p_error(M2P_ENOTFOUND, "%s is not in the Hugging Face cache (%s)", repo_id, repo);
    struct dirent *e;
    char best[4700] = "";
    struct timespec best_t = {0, 0};
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char snap[4700];
        snprintf(snap, sizeof snap, "%s/%s", path, e->d_name);
        struct stat st;
        if (!snapshot_ok(snap) || stat(snap, &st) != 0)
            continue;
        if (!best[0] || st.st_mtim.tv_sec > best_t.tv_sec ||
            (st.st_mtim.tv_sec == best_t.tv_sec && st.st_mtim.tv_nsec > best_t.tv_nsec)) {
            strcpy(best, snap);
            best_t = st.st_mtim;
        }
    }
    closedir(d);
    if (!best[0])
        return m2p_error(M2P_ENOTFOUND, "%s: no complete snapshot in %s", repo_id, path);
    return copy_out(out, len, best);
}

int hub_find_file(const char *repo_id, const char *file, char *out, size_t len)
{
    char repo[4096], path[4400], rev[256] = "";
    int rc = hub_repo_dir(repo_id, repo, sizeof repo);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/refs/main", repo);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(rev, sizeof rev, f))
            rev[0] = '\0';
        fclose(f);
    }
    rev[strcspn(rev, " \t\r\n")] = '\0';
    if (!rev[0] || strchr(rev, '/') || !strcmp(rev, "..") || !strcmp(rev, "."))
        return m2p_error(M2P_ENOTFOUND, "%s is not in the Hugging Face cache (%s)", repo_id, repo);
    if ((size_t)snprintf(path, sizeof path, "%s/snapshots/%s/%s", repo, rev, file) >= sizeof path ||
        !is_file(path))
        return m2p_error(M2P_ENOTFOUND, "%s: %s is not in the Hugging Face cache (%s)", repo_id,
                         file, repo);
    return copy_out(out, len, path);
}

int m2p_model_resolve(const char *ref, char *out, size_t out_len)
{
    if (!ref || !*ref)
        return m2p_error(M2P_EINVAL, "no model given (a folder, a hub id or a name like 'lcm')");
    if (is_dir(ref))
        return copy_out(out, out_len, ref);
    const char *id = ref;
    const m2p_registry_entry *e = m2p_registry_find(ref);
    if (e)
        id = e->hub_id;
    if (hub_is_repo_id(id)) {
        if (hub_find_snapshot(id, out, out_len) == 0)
            return 0;
        char p[4200];
        const char *slash = strchr(id, '/');
        snprintf(p, sizeof p, "models/%.*s--%s", (int)(slash - id), id, slash + 1);
        if (is_dir(p))
            return copy_out(out, out_len, p);
        snprintf(p, sizeof p, "models/%s", slash + 1);
        if (is_dir(p))
            return copy_out(out, out_len, p);
        char cache[4096] = "?";
        hub_cache_dir(cache, sizeof cache);
        return m2p_error(M2P_ENOTFOUND,
                         "model '%s' not found: not in the Hugging Face cache (%s) nor in "
                         "./models; get it with `mus2pic models fetch %s`",
                         ref, cache, e ? e->name : id);
    }
    return m2p_error(M2P_ENOTFOUND,
                     "model '%s' not found: no such folder, and not a hub id (ORG/NAME) or a "
                     "known model name (`mus2pic models list`)",
                     ref);
}

int hub_find_taesd(const char *model_dir, char *out, size_t len)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/text_encoder_2", model_dir ? model_dir : "");
    int xl = is_dir(p);
    const char *repo = xl ? "madebyollin/taesdxl" : "madebyollin/taesd";
    char cfg[4400];
    if (hub_find_file(repo, "diffusion_pytorch_model.safetensors", p, sizeof p) == 0 &&
        hub_find_file(repo, "config.json", cfg, sizeof cfg) == 0) {
        *strrchr(p, '/') = '\0';
        return copy_out(out, len, p);
    }
    snprintf(p, sizeof p, "models/%s/diffusion_pytorch_model.safetensors", repo + 12);
    if (is_file(p)) {
        *strrchr(p, '/') = '\0';
        return copy_out(out, len, p);
    }
    return m2p_error(M2P_ENOTFOUND,
                     "no TAESD for %s: `mus2pic models fetch` brings %s along (or put it under "
                     "./models/%s)",
                     model_dir ? model_dir : "the model", repo, repo + 12);
}
