/*
 * fetch.c — `models fetch`: downloads a diffusers model from the Hugging Face hub (libcurl;
 * HF_ENDPOINT, HF_TOKEN as Bearer) into the cache layout huggingface_hub / diffusers use, so both
 * share one copy: <cache>/models--ORG--NAME/ blobs/<sha256 | git blob id>, snapshots/<commit>/
 * <path> -> ../../blobs/<id> (relative links) and refs/main (the commit). The file list comes
 * from {endpoint}/api/models/{repo}/revision/main?blobs=true; only what the engine needs is
 * fetched from {endpoint}/{repo}/resolve/{commit}/{path} (select_files). Each blob goes to
 * blobs/<id>.incomplete, resumes with a Range request after a drop (also across runs), is checked
 * (size, sha256) and renamed; model_index.json is linked last, as resolve.c only accepts
 * snapshots that have it, so a half-downloaded model is never used. A registry name also fetches
 * its companions, as the original ran them: TAESD (madebyollin/taesd, taesdxl for SDXL) and, for
 * sdxl_lightning, ByteDance/SDXL-Lightning's sdxl_lightning_4step_unet.safetensors.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/http.h"
#include "model/resolve.h"
#include "mus2pic.h"

#define FETCH_RETRIES 4
#define API_MAX_BYTES (16 << 20)
#define FETCH_MAX_PATH 500 /* bytes of a repo-relative path (safe_path) */

typedef struct {
    char path[512];  /* repo-relative */
    char blob[80];   /* blob id: lfs sha256, else git blob id */
    char sha256[65]; /* "" when the hub gives none */
    int64_t size;    /* -1 unknown */
} fetch_file;

typedef struct {
    const char *repo, *endpoint, *token, *commit;
    const char *name; /* what the user asked for (registry name or hub id), for the advice */
    char repo_dir[4096];
    m2p_fetch_progress progress;
    void *ud;
} fetch_ctx;

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static struct curl_slist *auth_headers(const fetch_ctx *c)
{
    struct curl_slist *h = NULL;
    if (c->token && *c->token) {
        char buf[1024];
        snprintf(buf, sizeof buf, "Authorization: Bearer %s", c->token);
        h = curl_slist_append(h, buf);
    }
    return h;
}

static void common_opts(CURL *e, struct curl_slist *hdr)
{
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
}

static int http_status_error(long code, const char *what, const char *repo)
{
    if (code == 401 || code == 403)
        return m2p_error(M2P_ENETWORK,
                         "%s: access denied (HTTP %ld); the repo may be gated or private: set "
                         "HF_TOKEN to a token that can read %s",
                         what, code, repo);
    if (code == 404)
        return m2p_error(M2P_ENOTFOUND, "%s: not found (HTTP 404)", what);
    return m2p_error(M2P_ENETWORK, "%s: HTTP %ld", what, code);
}

/* No answer at all (offline, DNS, refused, timed out): curl's words alone ("Couldn't resolve
 * host name") do not say what to do, so name the ways to a model without this hub. */
static int unreachable(const fetch_ctx *c, const char *url, CURLcode cc)
{
    if (cc != CURLE_COULDNT_RESOLVE_HOST && cc != CURLE_COULDNT_RESOLVE_PROXY &&
        cc != CURLE_COULDNT_CONNECT && cc != CURLE_OPERATION_TIMEDOUT)
        return m2p_error(M2P_ENETWORK, "%s: %s", url, curl_easy_strerror(cc));
    const m2p_registry_entry *r = m2p_registry_find(c->name);
    const char *n = r ? r->name : "NAME";
    return m2p_error(M2P_ENETWORK,
                     "%s: %s. %s cannot be reached from this machine: check the network (or "
                     "https_proxy), set HF_ENDPOINT to a hub mirror you can reach, or copy the "
                     "model's folder (a diffusers folder, or models--%.*s--%s from another "
                     "machine's Hugging Face cache) here and use it with `mus2pic serve --model "
                     "%s=DIR` (or MUS2PIC_MODEL=DIR, or put it under ./models/)",
                     url, curl_easy_strerror(cc), c->endpoint,
                     (int)(strchr(c->repo, '/') ? strchr(c->repo, '/') - c->repo : 0), c->repo,
                     strchr(c->repo, '/') ? strchr(c->repo, '/') + 1 : c->repo, n);
}

/* The repo's file list at main: commit sha and siblings. */
static int list_files(fetch_ctx *c, json_t **out)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/api/models/%s/revision/main?blobs=true", c->endpoint, c->repo);
    CURL *e = m2p_curl_new(30);
    if (!e)
        return m2p_error(M2P_ENOMEM, "curl: cannot start");
    struct curl_slist *hdr = auth_headers(c);
    m2p_curl_sink b = {.over = 0}; /* the answer, capped at API_MAX_BYTES */
    m2p_buf_init(&b.body, API_MAX_BYTES);
    common_opts(e, hdr);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, m2p_curl_sink_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
    CURLcode cc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdr);
    int rc = 0;
    if (cc != CURLE_OK)
        rc =
            b.over ? m2p_error(M2P_ENETWORK, "%s: answer too large", url) : unreachable(c, url, cc);
    else if (code != 200)
        rc = http_status_error(code, url, c->repo);
    if (!rc) {
        json_error_t jerr;
        *out = json_loadb(b.body.data ? b.body.data : "", b.body.len, 0, &jerr);
        if (!*out || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = m2p_error(M2P_EFORMAT, "%s: not a JSON object (%s)", url, jerr.text);
        }
    }
    m2p_buf_free(&b.body);
    return rc;
}

typedef struct {
    FILE *f;
    int64_t offset; /* bytes already on disk when this request started */
    int checked;    /* response code looked at */
    int restart;    /* server ignored Range: file truncated, writing from 0 */
    int bad;        /* error status: body not written */
    CURL *e;
    const fetch_ctx *c;
    const fetch_file *file;
} dl_state;

static size_t file_write(char *p, size_t sz, size_t n, void *ud)
{
    dl_state *s = ud;
    if (!s->checked) {
        long code = 0;
        curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &code);
        s->checked = 1;
        if (code == 200 && s->offset > 0) {
            /* the server sent the whole file: start over */
            if (ftruncate(fileno(s->f), 0) != 0 || fseek(s->f, 0, SEEK_SET) != 0)
                return 0;
            s->offset = 0;
            s->restart = 1;
        } else if (code != 200 && code != 206) {
            s->bad = 1;
            return 0;
        }
    }
    return fwrite(p, sz, n, s->f) == n ? sz * n : 0;
}

static int xfer_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    (void)dltotal;
    dl_state *s = ud;
    if (s->c->progress)
        s->c->progress(s->file->path, s->offset + (int64_t)dlnow, s->file->size, s->c->ud);
    return 0;
}

static int64_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return m2p_error(M2P_EIO, "%s: cannot read: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], dig[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(md, buf, n);
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, dig, &dl);
    EVP_MD_CTX_free(md);
    fclose(f);
    if (!ok)
        return m2p_error(M2P_EIO, "%s: sha256 failed", path);
    for (unsigned i = 0; i < dl; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return 0;
}

/* One blob: resume/download to .incomplete, verify, rename. */
static int download_blob(const fetch_ctx *c, const fetch_file *f, const char *blob_path)
{
    if (file_size(blob_path) >= 0 && (f->size < 0 || file_size(blob_path) == f->size))
        return 0; /* already there (shared with diffusers) */
    char part[4400], url[4096];
    snprintf(part, sizeof part, "%s.incomplete", blob_path);
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", c->endpoint, c->repo, c->commit, f->path);
    int rc = 0;
    for (int attempt = 0; attempt < FETCH_RETRIES; attempt++) {
        int64_t have = file_size(part);
        if (have < 0)
            have = 0;
        if (f->size >= 0 && have > f->size) {
            unlink(part);
            have = 0;
        }
        if (f->size >= 0 && have == f->size)
            break; /* complete from an earlier run */
        FILE *out = fopen(part, have ? "r+b" : "wb");
        if (!out)
            return m2p_error(M2P_EIO, "%s: cannot write: %s", part, strerror(errno));
        if (fseek(out, have, SEEK_SET) != 0) {
            fclose(out);
            return m2p_error(M2P_EIO, "%s: cannot seek", part);
        }
        CURL *e = m2p_curl_new(30);
        struct curl_slist *hdr = auth_headers(c);
        dl_state s = {out, have, 0, 0, 0, e, c, f};
        common_opts(e, hdr);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, file_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xfer_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, &s);
        if (have > 0)
            curl_easy_setopt(e, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
        CURLcode cc = curl_easy_perform(e);
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(e);
        curl_slist_free_all(hdr);
        int wr = fclose(out);
        if (cc == CURLE_OK && wr == 0 && code >= 200 && code < 300) {
            rc = 0;
            break;
        }
        if (code == 416) { /* range past the end: what we hold is all there is, or garbage */
            if (f->size >= 0 && file_size(part) == f->size) {
                rc = 0;
                break;
            }
            unlink(part);
            rc = m2p_error(M2P_ENETWORK, "%s: HTTP 416", url);
            continue;
        }
        if (s.bad || (code >= 400 && code != 416)) {
            rc = http_status_error(code, url, c->repo);
            if (code >= 400 && code < 500 && code != 408 && code != 429)
                return rc; /* will not get better by retrying; keep the partial file */
            continue;
        }
        if (wr)
            return m2p_error(M2P_ENETWORK, "%s: write failed", url);
        rc = unreachable(c, url, cc);
    }
    if (rc)
        return rc;
    int64_t got = file_size(part);
    if (f->size >= 0 && got != f->size) {
        unlink(part);
        return m2p_error(M2P_ENETWORK, "%s: got %lld bytes, expected %lld", f->path, (long long)got,
                         (long long)f->size);
    }
    if (f->sha256[0]) {
        char hex[65];
        if ((rc = sha256_file(part, hex)))
            return rc;
        if (strcmp(hex, f->sha256) != 0) {
            unlink(part);
            return m2p_error(M2P_EFORMAT,
                             "%s: sha256 mismatch (got %s, the hub says %s); the download was "
                             "removed, nothing was installed",
                             f->path, hex, f->sha256);
        }
    }
    if (rename(part, blob_path) != 0)
        return m2p_error(M2P_EIO, "%s: cannot rename into place: %s", blob_path, strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* File selection and the cache layout                                                       */
/* ---------------------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return m2p_error(M2P_EIO, "%s: cannot create: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return m2p_error(M2P_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

/* A safe repo-relative path: no absolute, no "..", no empty components. */
static int safe_path(const char *p)
{
    if (!*p || p[0] == '/' || strlen(p) >= FETCH_MAX_PATH)
        return 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return !strpbrk(p, "\\\n\r");
}

static json_t *sibling(json_t *sibs, const char *path)
{
    size_t i;
    json_t *s;
    json_array_foreach(sibs, i, s)
    {
        const char *r = json_string_value(json_object_get(s, "rfilename"));
        if (r && !strcmp(r, path))
            return s;
    }
    return NULL;
}

static int add_file(json_t *s, fetch_file *files, int *n, int max)
{
    if (*n >= max)
        return m2p_error(M2P_ETOOBIG, "too many files to fetch");
    fetch_file *f = &files[(*n)++];
    memset(f, 0, sizeof *f);
    const char *r = json_string_value(json_object_get(s, "rfilename"));
    snprintf(f->path, sizeof f->path, "%s", r);
    f->size = -1;
    json_t *lfs = json_object_get(s, "lfs");
    const char *sha = json_string_value(json_object_get(lfs, "sha256"));
    if (!sha)
        sha = json_string_value(json_object_get(lfs, "oid"));
    if (sha && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64)
        snprintf(f->sha256, sizeof f->sha256, "%s", sha);
    json_t *sz = json_object_get(s, "size");
    if (!json_is_integer(sz))
        sz = json_object_get(lfs, "size");
    if (json_is_integer(sz) && json_integer_value(sz) >= 0)
        f->size = json_integer_value(sz);
    const char *blob = json_string_value(json_object_get(s, "blobId"));
    if (f->sha256[0])
        snprintf(f->blob, sizeof f->blob, "%s", f->sha256);
    else if (blob && strlen(blob) < sizeof f->blob &&
             strspn(blob, "0123456789abcdef") == strlen(blob))
        snprintf(f->blob, sizeof f->blob, "%s", blob);
    return 0;
}

/* What the engine needs: model_index.json, the scheduler config, tokenizer/, and config +
 * safetensors weights of text_encoder, unet and vae, preferring *.fp16.safetensors; SDXL repos
 * add text_encoder_2/ and tokenizer_2/. Never the VAE encoder's separate files, the safety
 * checker or feature extractor, .bin / .ckpt duplicates. */
static int select_files(json_t *sibs, fetch_file *files, int *n, int max)
{
    *n = 0;
    int rc;
    size_t i;
    json_t *s;
    const char *required[] = {"model_index.json", "scheduler/scheduler_config.json",
                              "text_encoder/config.json", "unet/config.json", "vae/config.json"};
    for (int k = 0; k < 5; k++) {
        json_t *x = sibling(sibs, required[k]);
        if (!x)
            return m2p_error(M2P_EUNSUPPORTED,
                             "the repo has no %s: not a diffusers pipeline this version runs",
                             required[k]);
        if ((rc = add_file(x, files, n, max)))
            return rc;
    }
    /* SDXL: a second text encoder (with projection) and its tokenizer, when the repo has one */
    int xl = sibling(sibs, "text_encoder_2/config.json") != NULL;
    if (xl && (rc = add_file(sibling(sibs, "text_encoder_2/config.json"), files, n, max)))
        return rc;
    for (int t = 0; t < 1 + xl; t++) {
        const char *dir = t ? "tokenizer_2/" : "tokenizer/";
        size_t dl = strlen(dir);
        int tok = 0;
        json_array_foreach(sibs, i, s)
        {
            const char *r = json_string_value(json_object_get(s, "rfilename"));
            if (r && !strncmp(r, dir, dl) && !strchr(r + dl, '/')) {
                if ((rc = add_file(s, files, n, max)))
                    return rc;
                tok++;
            }
        }
        if (!tok)
            return m2p_error(M2P_EUNSUPPORTED, "the repo has no %s files", dir);
    }
    struct {
        const char *part, *names[4];
    } weights[] = {
        {"text_encoder", {"model.fp16.safetensors", "model.safetensors", NULL, NULL}},
        {"text_encoder_2", {"model.fp16.safetensors", "model.safetensors", NULL, NULL}},
        {"unet",
         {"diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors", NULL,
          NULL}},
        {"vae",
         {"diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors", NULL,
          NULL}},
    };
    for (int w = 0; w < 4; w++) {
        if (w == 1 && !xl)
            continue;
        json_t *x = NULL;
        for (int k = 0; !x && weights[w].names[k]; k++) {
            char p[256];
            snprintf(p, sizeof p, "%s/%s", weights[w].part, weights[w].names[k]);
            x = sibling(sibs, p);
        }
        if (!x)
            return m2p_error(M2P_EUNSUPPORTED,
                             "the repo has no safetensors weights for %s (only .safetensors "
                             "files are loaded)",
                             weights[w].part);
        if ((rc = add_file(x, files, n, max)))
            return rc;
    }
    for (int k = 0; k < *n; k++)
        if (!safe_path(files[k].path))
            return m2p_error(M2P_EFORMAT, "the hub listed an unsafe path '%s'", files[k].path);
    return 0;
}

/* snapshots/<commit>/<path> -> ../../blobs/<id> (relative, as huggingface_hub writes), made
 * atomically by renaming a temporary link over it. */
static int link_file(const char *snap, const fetch_file *f)
{
    /* safe_path (checked on every listed path) keeps a path under FETCH_MAX_PATH bytes with no
     * empty component, so it has at most FETCH_MAX_PATH / 2 slashes: target holds that many
     * "../" plus two, "blobs/" and the blob id, by construction. */
    char link[4700], tmp[4800],
        target[(FETCH_MAX_PATH / 2 + 2) * 3 + sizeof "blobs/" + sizeof f->blob];
    snprintf(link, sizeof link, "%s/%s", snap, f->path);
    char dir[4700];
    snprintf(dir, sizeof dir, "%s", link);
    *strrchr(dir, '/') = '\0';
    int rc = mkdirs(dir);
    if (rc)
        return rc;
    int depth = 0;
    for (const char *p = f->path; *p; p++)
        depth += *p == '/';
    M2P_ASSERT(safe_path(f->path) && depth <= FETCH_MAX_PATH / 2);
    size_t o = 0;
    for (int i = 0; i < depth + 2; i++, o += 3)
        memcpy(target + o, "../", 3);
    int w = snprintf(target + o, sizeof target - o, "blobs/%s", f->blob);
    M2P_ASSERT(w > 0 && (size_t)w < sizeof target - o); /* not cut: the link would dangle */
    snprintf(tmp, sizeof tmp, "%s.tmp-link.%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return m2p_error(M2P_EIO, "%s: cannot link: %s", link, strerror(errno));
    if (rename(tmp, link) != 0) {
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: cannot link: %s", link, strerror(errno));
    }
    return 0;
}

static int write_ref(const char *repo_dir, const char *commit)
{
    char dir[4200], path[4300], tmp[4400];
    snprintf(dir, sizeof dir, "%s/refs", repo_dir);
    int rc = mkdirs(dir);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/main", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return m2p_error(M2P_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fputs(commit, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return m2p_error(M2P_EIO, "%s: cannot write", path);
    }
    return 0;
}

/* These files of the repo, all required (a companion: the Lightning UNet, TAESD). */
static int select_named(json_t *sibs, const char *const *only, fetch_file *files, int *n, int max)
{
    *n = 0;
    for (int k = 0; only[k]; k++) {
        json_t *x = sibling(sibs, only[k]);
        if (!x)
            return m2p_error(M2P_ENOTFOUND, "the repo has no %s", only[k]);
        int rc = add_file(x, files, n, max);
        if (rc)
            return rc;
    }
    return 0;
}

/* One repo into the cache: the engine's files (only == NULL) or the named ones. */
static int fetch_repo(const char *name, const char *repo, const char *const *only,
                      m2p_fetch_progress progress, void *user_data, char *out, size_t out_len)
{
    fetch_ctx c = {.repo = repo, .name = name, .progress = progress, .ud = user_data};
    char endpoint[1024];
    const char *ep = getenv("HF_ENDPOINT");
    snprintf(endpoint, sizeof endpoint, "%s", ep && *ep ? ep : "https://huggingface.co");
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        endpoint[--el] = '\0';
    c.endpoint = endpoint;
    c.token = getenv("HF_TOKEN");
    int rc = hub_repo_dir(repo, c.repo_dir, sizeof c.repo_dir);
    if (rc)
        return rc;

    json_t *info = NULL;
    if ((rc = list_files(&c, &info)))
        return m2p_error_wrap(rc, "fetching %s", repo);
    const char *commit = json_string_value(json_object_get(info, "sha"));
    json_t *sibs = json_object_get(info, "siblings");
    if (!commit || strlen(commit) > 64 || !safe_path(commit) || strchr(commit, '/') ||
        !json_is_array(sibs)) {
        json_decref(info);
        return m2p_error(M2P_EFORMAT, "%s: the hub's answer has no commit sha or file list", repo);
    }
    char commit_buf[80];
    snprintf(commit_buf, sizeof commit_buf, "%s", commit);
    c.commit = commit_buf;
    enum { MAX_FILES = 64 };
    fetch_file *files = calloc(MAX_FILES, sizeof *files);
    if (!files) {
        json_decref(info);
        return m2p_error(M2P_ENOMEM, "fetch: out of memory");
    }
    int n = 0;
    rc = only ? select_named(sibs, only, files, &n, MAX_FILES)
              : select_files(sibs, files, &n, MAX_FILES);
    json_decref(info);
    char blobs[4200], snap[4300];
    snprintf(blobs, sizeof blobs, "%s/blobs", c.repo_dir);
    snprintf(snap, sizeof snap, "%s/snapshots/%s", c.repo_dir, c.commit);
    if (!rc)
        rc = mkdirs(blobs);
    /* blobs first; nothing is linked until every file is complete and verified */
    for (int i = 0; i < n && !rc; i++) {
        char bp[4400];
        if (!files[i].blob[0]) {
            /* no id from the hub: download under a temporary name, name it by its sha256 */
            char tmpname[4400], hex[65];
            snprintf(tmpname, sizeof tmpname, "%s/tmp-%s-%d", blobs, c.commit, i);
            if ((rc = download_blob(&c, &files[i], tmpname)))
                break;
            if ((rc = sha256_file(tmpname, hex)))
                break;
            snprintf(files[i].blob, sizeof files[i].blob, "%s", hex);
            snprintf(bp, sizeof bp, "%s/%s", blobs, hex);
            if (rename(tmpname, bp) != 0)
                rc = m2p_error(M2P_EIO, "%s: cannot rename: %s", bp, strerror(errno));
            continue;
        }
        snprintf(bp, sizeof bp, "%s/%s", blobs, files[i].blob);
        rc = download_blob(&c, &files[i], bp);
    }
    /* then the links, model_index.json (files[0]) last: it marks the snapshot complete */
    for (int i = 1; i < n && !rc; i++)
        rc = link_file(snap, &files[i]);
    if (!rc)
        rc = link_file(snap, &files[0]);
    if (!rc)
        rc = write_ref(c.repo_dir, c.commit);
    free(files);
    if (rc)
        return m2p_error_wrap(rc, "fetching %s", repo);
    if (strlen(snap) >= out_len)
        return m2p_error(M2P_EINVAL, "fetch: output buffer too small");
    strcpy(out, snap);
    return 0;
}

/* The original's companions of a registry model: sdxl_lightning ran the SDXL base with
 * ByteDance/SDXL-Lightning's 4-step UNet; every model gets the TAESD of its family for previews
 * (madebyollin/taesdxl for SDXL, taesd otherwise). */
static const char *const lightning_files[] = {"sdxl_lightning_4step_unet.safetensors", NULL};
static const char *const taesd_files[] = {"config.json", "diffusion_pytorch_model.safetensors",
                                          NULL};

int m2p_model_fetch(const char *name_or_hub_id, m2p_fetch_progress progress, void *user_data,
                    char *out, size_t out_len)
{
    if (!name_or_hub_id || !*name_or_hub_id)
        return m2p_error(M2P_EINVAL, "fetch: no model given");
    const m2p_registry_entry *reg = m2p_registry_find(name_or_hub_id);
    const char *repo = reg ? reg->hub_id : name_or_hub_id;
    if (!hub_is_repo_id(repo))
        return m2p_error(M2P_EINVAL,
                         "'%s' is neither a known model name (`mus2pic models list`) nor a hub "
                         "id ORG/NAME",
                         name_or_hub_id);
    int rc = fetch_repo(name_or_hub_id, repo, NULL, progress, user_data, out, out_len);
    if (rc || !reg)
        return rc;
    char extra[4400];
    int xl = !strcmp(reg->name, "turbo") || !strcmp(reg->name, "sdxl_lightning");
    if (!strcmp(reg->name, "sdxl_lightning") &&
        (rc = fetch_repo(name_or_hub_id, "ByteDance/SDXL-Lightning", lightning_files, progress,
                         user_data, extra, sizeof extra)))
        return rc;
    return fetch_repo(name_or_hub_id, xl ? "madebyollin/taesdxl" : "madebyollin/taesd", taesd_files,
                      progress, user_data, extra, sizeof extra);
}
