/*
 * cache.c — the audio download cache (layout in cache.h): entries committed by an atomic
 * rename of a finished temporary folder, looked up by key (video id or content hash), touched
 * on use, and evicted least-recently-used first when the folder grows over its size limit.
 *
 * Concurrency: rename(2) makes an entry appear whole; eviction runs under an exclusive flock on
 * <dir>/.lock and first renames a victim into tmp/ so that no reader sees half an entry; a
 * per-key lock lets one process download while the others wait and then find it cached.
 * Many machines: an optional shared level behind this one (m2p_fetch_params.shared_get/put,
 * the PostgreSQL store) hands an entry another machine downloaded to this cache.
 */
#define _GNU_SOURCE
#include "audio/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio/ytdlp.h"
#include "core/buf.h"
#include "core/error.h"

#define STALE_TMP_S (24 * 3600)
#define CACHE_MAX_ENTRIES 1000000 /* songs one trim pass lists: far more than a disk holds */

static int mkdirs(const char *path)
{
    char p[1024];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return m2p_error(M2P_EINVAL, "cache: folder name too long: %s", path);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || !*c) {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return m2p_error(M2P_EIO, "cache: cannot create %s: %s", p, strerror(errno));
            *c = save;
            if (!save)
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return m2p_error(M2P_EIO, "cache: %s is not a folder", path);
    return 0;
}

int audio_cache_open(audio_cache *c, const char *dir, int64_t limit)
{
    memset(c, 0, sizeof *c);
    c->limit = limit;
    int n;
    if (dir && *dir) {
        n = snprintf(c->dir, sizeof c->dir, "%s", dir);
    } else if (getenv("XDG_CACHE_HOME") && getenv("XDG_CACHE_HOME")[0] == '/') {
        n = snprintf(c->dir, sizeof c->dir, "%s/mus2pic/audio", getenv("XDG_CACHE_HOME"));
    } else if (getenv("HOME") && getenv("HOME")[0] == '/') {
        n = snprintf(c->dir, sizeof c->dir, "%s/.cache/mus2pic/audio", getenv("HOME"));
    } else {
        n = snprintf(c->dir, sizeof c->dir, "data/cache");
    }
    if (n < 0 || n >= (int)sizeof c->dir - 128)
        return m2p_error(M2P_EINVAL, "cache: folder name too long");
    static const char *subs[] = {"", "/e", "/tmp", "/locks"};
    for (int i = 0; i < 4; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s%s", c->dir, subs[i]);
        int rc = mkdirs(p);
        if (rc)
            return rc;
    }
    return 0;
}

void audio_cache_key(const char *raw, char *key, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; raw && raw[i] && j + 1 < len && j < 100; i++) {
        unsigned char ch = (unsigned char)raw[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || (ch == '.' && j > 0);
        key[j++] = ok ? (char)ch : '_';
    }
    if (len)
        key[j] = '\0';
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void audio_rmtree(const char *path)
{
    if (path && *path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The single "audio.*" file of an entry folder (not info.json). */
static int find_audio(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return m2p_error(M2P_ENOTFOUND, "cache: %s: %s", dir, strerror(errno));
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, "audio.", 6)) {
            found = snprintf(path, len, "%s/%s", dir, e->d_name) < (int)len;
            break;
        }
    }
    closedir(d);
    return found ? 0 : m2p_error(M2P_ENOTFOUND, "cache: no audio file in %s", dir);
}

static json_t *string_array(const char *text)
{
    json_t *a = json_loads(text && *text ? text : "[]", 0, NULL);
    if (json_is_array(a))
        return a;
    json_decref(a);
    return json_array();
}

json_t *audio_info_json(const m2p_source_info *info)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(info->id));
    json_object_set_new(o, "title", json_string(info->title));
    json_object_set_new(o, "uploader", json_string(info->uploader));
    json_object_set_new(o, "artist", json_string(info->artist));
    json_object_set_new(o, "track", json_string(info->track));
    json_object_set_new(o, "creator", json_string(info->creator));
    json_object_set_new(o, "description", json_string(info->description));
    json_object_set_new(o, "tags", string_array(info->tags_json));
    json_object_set_new(o, "categories", string_array(info->categories_json));
    json_object_set_new(o, "duration", json_real(info->duration > 0 ? info->duration : 0));
    return o;
}

char *audio_info_to_json(const m2p_source_info *info)
{
    json_t *o = audio_info_json(info);
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

/* The trimmed info.json keeps yt-dlp's own names, so yt-dlp's parser reads it. */
int audio_info_from_json(const char *text, m2p_source_info *info)
{
    memset(info, 0, sizeof *info);
    return ytdlp_parse_info(text, info);
}

static void touch(const char *path)
{
    utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
}

static char *read_text(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int audio_cache_get(audio_cache *c, const char *key, m2p_source_info *info, char *path,
                    size_t path_len)
{
    char entry[1200], real[PATH_MAX];
    snprintf(entry, sizeof entry, "%s/e/%s", c->dir, key);
    struct stat st;
    if (stat(entry, &st) != 0 || !S_ISDIR(st.st_mode)) {
        struct stat lst;
        if (lstat(entry, &lst) == 0 && S_ISLNK(lst.st_mode))
            unlink(entry); /* alias to an evicted entry */
        return m2p_error(M2P_ENOTFOUND, "cache: no entry %s", key);
    }
    if (!realpath(entry, real))
        return m2p_error(M2P_ENOTFOUND, "cache: no entry %s", key);
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/info.json", real);
    char *text = read_text(file, 1 << 20);
    int rc = text ? audio_info_from_json(text, info)
                  : m2p_error(M2P_ENOTFOUND, "cache: %s has no info.json", key);
    free(text);
    if (!rc)
        rc = find_audio(real, path, path_len);
    if (rc)
        return rc == M2P_ENOTFOUND ? rc
                                   : m2p_error(M2P_ENOTFOUND, "cache: entry %s unreadable", key);
    info->from_cache = 1;
    touch(real);
    return 0;
}

int audio_cache_tmpdir(audio_cache *c, char *out, size_t len)
{
    if (snprintf(out, len, "%s/tmp/dl-XXXXXX", c->dir) >= (int)len)
        return m2p_error(M2P_EINVAL, "cache: path too long");
    if (!mkdtemp(out))
        return m2p_error(M2P_EIO, "cache: cannot create a temporary folder in %s/tmp: %s", c->dir,
                         strerror(errno));
    return 0;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return m2p_error(M2P_EIO, "cache: cannot write %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : m2p_error(M2P_EIO, "cache: cannot write %s", path);
}

int audio_cache_commit(audio_cache *c, const char *tmpdir, const char *audio_file, const char *key,
                       const m2p_source_info *info, char *path, size_t path_len)
{
    int rc = 0;
    char *json = NULL;
    /* the extension of the audio file, if it is a short plain one */
    const char *base = strrchr(audio_file, '/');
    base = base ? base + 1 : audio_file;
    const char *dot = strrchr(base, '.');
    char ext[16] = "bin";
    if (dot && dot[1] && strlen(dot + 1) < sizeof ext) {
        audio_cache_key(dot + 1, ext, sizeof ext);
    }
    char audio[1400], infopath[1400];
    snprintf(audio, sizeof audio, "%s/audio.%s", tmpdir, ext);
    snprintf(infopath, sizeof infopath, "%s/info.json", tmpdir);
    if (strcmp(audio, audio_file) != 0 && rename(audio_file, audio) != 0) {
        rc = m2p_error(M2P_EIO, "cache: cannot move %s: %s", audio_file, strerror(errno));
        goto fail;
    }
    /* keep only audio.<ext> and info.json */
    DIR *d = opendir(tmpdir);
    if (!d) {
        rc = m2p_error(M2P_EIO, "cache: %s: %s", tmpdir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, audio + strlen(tmpdir) + 1))
            continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        audio_rmtree(p);
    }
    closedir(d);
    json = audio_info_to_json(info);
    if (!json) {
        rc = m2p_error(M2P_ENOMEM, "cache: out of memory");
        goto fail;
    }
    rc = write_file(infopath, json);
    free(json);
    if (rc)
        goto fail;
    char entry[1200];
    snprintf(entry, sizeof entry, "%s/e/%s", c->dir, key);
    if (rename(tmpdir, entry) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            /* another process committed the same key first: theirs is as good as ours */
            audio_rmtree(tmpdir);
            m2p_source_info tmp;
            rc = audio_cache_get(c, key, &tmp, path, path_len);
            if (!rc)
                audio_cache_evict(c, key);
            return rc;
        }
        rc = m2p_error(M2P_EIO, "cache: cannot store %s: %s", entry, strerror(errno));
        goto fail;
    }
    touch(entry);
    if (snprintf(path, path_len, "%s/audio.%s", entry, ext) >= (int)path_len) {
        rc = m2p_error(M2P_EINVAL, "cache: path too long");
        return rc;
    }
    audio_cache_evict(c, key);
    return 0;
fail:
    audio_rmtree(tmpdir);
    return rc;
}

int audio_cache_alias(audio_cache *c, const char *alias, const char *key)
{
    char tmp[1300], link[1200];
    snprintf(link, sizeof link, "%s/e/%s", c->dir, alias);
    snprintf(tmp, sizeof tmp, "%s/tmp/alias-%ld-%s", c->dir, (long)getpid(), alias);
    unlink(tmp);
    if (symlink(key, tmp) != 0)
        return m2p_error(M2P_EIO, "cache: alias %s: %s", alias, strerror(errno));
    if (rename(tmp, link) != 0) {
        unlink(tmp);
        return m2p_error(M2P_EIO, "cache: alias %s: %s", alias, strerror(errno));
    }
    return 0;
}

int audio_cache_lock(audio_cache *c, const char *key)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/locks/%s.lock", c->dir, key);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return m2p_error(M2P_EIO, "cache: cannot open lock %s: %s", p, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return m2p_error(M2P_EIO, "cache: cannot lock %s: %s", p, strerror(errno));
        }
    }
    return fd;
}

void audio_cache_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static int64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            total += st.st_size;
    }
    closedir(d);
    return total;
}

typedef struct entry_stat {
    char name[256];
    int64_t bytes;
    struct timespec used;
} entry_stat;

static int by_age(const void *a, const void *b)
{
    const entry_stat *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    if (x->used.tv_nsec != y->used.tv_nsec)
        return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The entries (real folders, not aliases); dangling aliases are removed on the way. */
static int list_entries(audio_cache *c, entry_stat **out, int *n_out, int64_t *total)
{
    char edir[1200];
    snprintf(edir, sizeof edir, "%s/e", c->dir);
    DIR *d = opendir(edir);
    *out = NULL;
    *n_out = 0;
    *total = 0;
    if (!d)
        return m2p_error(M2P_EIO, "cache: %s: %s", edir, strerror(errno));
    m2p_vec v;
    m2p_vec_init(&v, sizeof(entry_stat), CACHE_MAX_ENTRIES);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(((entry_stat *)0)->name))
            continue;
        char p[2048];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", edir, e->d_name);
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            struct stat tst;
            if (stat(p, &tst) != 0)
                unlink(p);
            continue;
        }
        if (!S_ISDIR(st.st_mode))
            continue;
        entry_stat x;
        snprintf(x.name, sizeof x.name, "%s", e->d_name);
        x.bytes = dir_bytes(p);
        x.used = st.st_mtim;
        int rc = m2p_vec_push(&v, &x);
        if (rc) {
            m2p_vec_free(&v);
            closedir(d);
            return m2p_error_wrap(rc, "cache: listing %s", edir);
        }
        *total += x.bytes;
    }
    closedir(d);
    size_t n;
    *out = m2p_vec_detach(&v, &n);
    *n_out = (int)n;
    return 0;
}

int64_t audio_cache_size(audio_cache *c)
{
    entry_stat *v;
    int n;
    int64_t total;
    if (list_entries(c, &v, &n, &total))
        return -1;
    free(v);
    return total;
}

static void remove_stale_tmp(audio_cache *c)
{
    char tdir[1200];
    snprintf(tdir, sizeof tdir, "%s/tmp", c->dir);
    DIR *d = opendir(tdir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[2048];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", tdir, e->d_name);
        if (lstat(p, &st) == 0 && now - st.st_mtime > STALE_TMP_S)
            audio_rmtree(p);
    }
    closedir(d);
}

int audio_cache_evict(audio_cache *c, const char *keep)
{
    char lock[1200];
    snprintf(lock, sizeof lock, "%s/.lock", c->dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return m2p_error(M2P_EIO, "cache: cannot open %s: %s", lock, strerror(errno));
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    remove_stale_tmp(c);
    entry_stat *v;
    int n;
    int64_t total;
    int rc = list_entries(c, &v, &n, &total);
    if (!rc && c->limit > 0 && total > c->limit) {
        qsort(v, (size_t)n, sizeof *v, by_age);
        for (int i = 0; i < n && total > c->limit; i++) {
            if (keep && !strcmp(v[i].name, keep))
                continue;
            /* rename out of sight first: a reader sees the whole entry or none */
            char from[2048], to[2048];
            snprintf(from, sizeof from, "%s/e/%s", c->dir, v[i].name);
            snprintf(to, sizeof to, "%s/tmp/evict-%ld-%s", c->dir, (long)getpid(), v[i].name);
            if (rename(from, to) == 0) {
                audio_rmtree(to);
                total -= v[i].bytes;
                M2P_LOGI("cache: evicted %s (%lld bytes)", v[i].name, (long long)v[i].bytes);
            }
        }
    }
    free(v);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

int audio_cache_get_shared(audio_cache *c, const m2p_fetch_params *p, const char *key,
                           m2p_source_info *info, char *path, size_t path_len)
{
    if (!p->shared_get)
        return M2P_ENOTFOUND;
    char tmp[1200], file[1400];
    int rc = audio_cache_tmpdir(c, tmp, sizeof tmp);
    if (rc)
        return rc;
    char *js = NULL;
    file[0] = 0;
    rc = p->shared_get(p->shared_ud, key, tmp, file, sizeof file, &js);
    if (rc == M2P_ENOTFOUND) {
        audio_rmtree(tmp);
        free(js);
        return rc;
    }
    if (!rc && strncmp(file, tmp, strlen(tmp)) != 0)
        rc = m2p_error(M2P_EINTERNAL, "cache: the shared copy of %s is outside %s", key, tmp);
    m2p_source_info got;
    memset(&got, 0, sizeof got);
    if (!rc)
        rc = js ? audio_info_from_json(js, &got)
                : m2p_error(M2P_EFORMAT, "cache: no info with the shared copy of %s", key);
    free(js);
    if (!rc)
        rc = audio_cache_commit(c, tmp, file, key, &got, path, path_len);
    else
        audio_rmtree(tmp);
    if (rc) {
        M2P_LOGW("cache: the shared copy of %s could not be used (%s); downloading", key,
                 m2p_errmsg());
        return M2P_ENOTFOUND;
    }
    *info = got;
    info->from_cache = 1;
    M2P_LOGI("cache: %s came from the shared store", key);
    return 0;
}

void audio_cache_put_shared(const m2p_fetch_params *p, const char *key, const char *path,
                            const m2p_source_info *info)
{
    if (!p->shared_put)
        return;
    char *js = audio_info_to_json(info);
    if (!js || p->shared_put(p->shared_ud, key, path, js))
        M2P_LOGW("cache: %s stays on this machine: %s", key, js ? m2p_errmsg() : "out of memory");
    free(js);
}
