/*
 * wcache.c — prepared weights cached on disk (wcache.h), one file per safetensors source.
 *
 * Layout (host byte order: the contents are for this machine's CPU anyway):
 *   [0, 4096)      header: magic, version, source size + mtime, tag, entry count, index offset
 *                  and size, file size, FNV-1a 64 of the index and of the header itself
 *   4096-aligned   each entry's data (so every tensor is page aligned in the mapping)
 *   index          per entry: data offset, size, FNV-1a of three 64-byte samples of the data
 *                  (start, middle, end), key and layout bytes, each record 8-byte aligned
 * A writer fills "<file>.tmp.<pid>", syncs it and renames it into place, so a reader never sees
 * a half-written file; the checks at open catch what a crash, a full disk, a copy or an edit
 * leaves behind. Data is checked by samples, not in full: hashing 1.7 GB would cost the load
 * more than the conversion it saves.
 */
#define _GNU_SOURCE
#include "model/wcache.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define WC_MAGIC "M2PWCv1"
#define WC_VERSION 1u
#define WC_HDR 4096u
#define WC_TAG 128
#define WC_MAX_INDEX (64u << 20) /* records of one model file: ~100 B per tensor */

typedef struct {
    char magic[8];
    uint32_t version, header_size;
    uint64_t src_size;
    int64_t src_mtime_s, src_mtime_ns;
    char tag[WC_TAG];
    uint64_t n, index_off, index_size, file_size, index_hash;
    uint64_t header_hash; /* of every byte above */
} wc_header;

typedef struct {
    uint64_t data_off, data_size, sample_hash;
    uint32_t key_len, layout_size;
} wc_record;

typedef struct {
    const char *key;
    size_t key_len;
    const void *layout, *data;
    size_t layout_size, size;
    uint64_t sample_hash;
} wc_entry;

struct wcache {
    atomic_int refs;
    char path[PATH_MAX];
    /* reader */
    void *map;
    size_t map_size;
    wc_entry *ent;
    size_t n, cursor;
    int stale;
    /* reader: a thread that reads the file into the page cache ahead of its use */
    pthread_t pf;
    int pf_fd, pf_on;
    uint64_t pf_end;
    atomic_int pf_stop;
    /* writer */
    int fd;
    int direct;     /* fd writes with O_DIRECT (the data bypasses the page cache) */
    char *stage;    /* a DIRECT_STAGE, page-aligned bounce buffer for O_DIRECT writes */
    char tmp[PATH_MAX + 32];
    uint64_t cur;
    m2p_buf index; /* the records written so far, at most WC_MAX_INDEX bytes */
    size_t n_written;
    int failed, committed;
    wc_header hdr;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

/* The bytes of an entry of n bytes that its checksum covers: three 64-byte samples at the
 * offsets in at (start, middle, end), or one sample of all n when n <= 192. The count. */
static int samples(size_t n, size_t at[3], size_t *len)
{
    at[0] = 0;
    *len = n <= 192 ? n : 64;
    if (n <= 192)
        return 1;
    at[1] = n / 2 & ~(size_t)63;
    at[2] = n - 64;
    return 3;
}

static uint64_t sample_hash(const void *data, size_t n)
{
    size_t at[3], len;
    uint64_t h = FNV0;
    for (int k = 0, m = samples(n, at, &len); k < m; k++)
        h = fnv(h, (const char *)data + at[k], len);
    return h;
}

static int mkdirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return -1;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

/* The cache folder (wcache.h); 0 when none can be named. */
static int cache_dir(char *out, size_t n)
{
    const char *v;
    int k;
    if ((v = getenv("M2P_WEIGHT_CACHE_DIR")) && *v)
        k = snprintf(out, n, "%s", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && v[0] == '/')
        k = snprintf(out, n, "%s/mus2pic/weights", v);
    else if ((v = getenv("HOME")) && v[0] == '/')
        k = snprintf(out, n, "%s/.cache/mus2pic/weights", v);
    else
        return 0;
    return k > 0 && (size_t)k < n - 128;
}

/* "<dir>/<part>-<hash of the source's real path and tag>.m2pw": one file per source and tag,
 * so a changed source overwrites its old cache instead of adding another. */
static int cache_path(const char *src, const char *tag, char *out, size_t n)
{
    char dir[PATH_MAX], real[PATH_MAX];
    if (!cache_dir(dir, sizeof dir) || !realpath(src, real))
        return 0;
    uint64_t h = fnv(fnv(FNV0, real, strlen(real) + 1), tag, strlen(tag));
    /* the part folder's name ("unet") makes the folder readable: from the path as given, since
     * a hub snapshot's files are links into its blobs folder */
    const char *slash = strrchr(src, '/');
    const char *part = "weights";
    char pbuf[64];
    if (slash && slash > src) {
        const char *ps = slash - 1;
        while (ps > src && ps[-1] != '/')
            ps--;
        snprintf(pbuf, sizeof pbuf, "%.*s", (int)(slash - ps) < 40 ? (int)(slash - ps) : 40, ps);
        if (pbuf[0])
            part = pbuf;
    }
    int k = snprintf(out, n, "%s/%s-%016llx.m2pw", dir, part, (unsigned long long)h);
    return k > 0 && (size_t)k < n - 32;
}

static void header_fill(wc_header *h, const struct stat *st, const char *tag)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, WC_MAGIC, sizeof h->magic);
    h->version = WC_VERSION;
    h->header_size = WC_HDR;
    h->src_size = (uint64_t)st->st_size;
    h->src_mtime_s = (int64_t)st->st_mtim.tv_sec;
    h->src_mtime_ns = (int64_t)st->st_mtim.tv_nsec;
    snprintf(h->tag, sizeof h->tag, "%s", tag);
}

/* Reading a cold file in. One MADV_WILLNEED over the whole mapping reads only its first
 * max(read_ahead_kb, max_sectors_kb) (the kernel clamps each request), and the load's own
 * touches (the sampled checksums, spread over the file) then each faulted in a read-around
 * window of that size, one after another: a cold 3.4 GB f32 UNet read most of its file inside
 * the load (1.1-2.6 s here, 9.8 s on a disk throttled to 420 MB/s). Now the mapping is advised
 * MADV_RANDOM while the network loads, so those touches read a page each, and the pages are
 * asked for all at once when the index is read (the disk serves them side by side: ~700 faults
 * of a cold SD 1.5 load fell to 120-230). Once the part has loaded (wcache_commit), a thread
 * reads the rest in, in file order, which is the order the weights are used in, while the text
 * encoder and the first step run. It runs at SCHED_IDLE (prefetch_main), is skipped when the
 * file is already in the page cache, and reads nothing beyond half the memory available, where
 * the first pages would be evicted again before their use. BENCHMARKS.md, "The load of a cold
 * weight cache", has the measurements. */
#define PF_POP ((uint64_t)8 << 20) /* bytes a populate call reads */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Reads [off, off+n) of the file into the page cache and waits for it: populating a mapping of
 * its own reads through the fault path's read-around (one call, one wait, however the device
 * clamps a request) without adding the pages to the reader's mapping (the process's resident
 * set: a part's pages come in when it runs, and leave after, weights_release). 0 or -1 where
 * MADV_POPULATE_READ is unknown (Linux < 5.14). */
static int populate(int fd, uint64_t off, uint64_t n)
{
    void *m = mmap(NULL, (size_t)n, PROT_READ, MAP_SHARED, fd, (off_t)off);
    if (m == MAP_FAILED)
        return -1;
    int rc = madvise(m, (size_t)n, MADV_POPULATE_READ);
    munmap(m, (size_t)n);
    return rc;
}

static void *prefetch_main(void *arg)
{
    wcache *c = arg;
    /* Only on a CPU that would idle: reading a page in costs CPU time too (page-cache pages,
     * on this VM a host fault each), and taking it from one thread of a 2-thread OpenMP team
     * stalls both at the next barrier. The compute threads wait for the disk, and leave a CPU
     * to this thread, only where the disk is the slower side. */
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    /* before Linux 5.14 populate fails at once and the first steps fault the pages in */
    for (uint64_t off = WC_HDR, n; off < c->pf_end && !atomic_load(&c->pf_stop); off += n) {
        n = c->pf_end - off < PF_POP ? c->pf_end - off : PF_POP;
        if (populate(c->pf_fd, off, n))
            break;
    }
    return NULL;
}

/* The share of the file's pages already in the page cache (a warm start needs no thread). */
static double resident_share(const wcache *c)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (c->map_size + pg - 1) / pg, in = 0;
    unsigned char *v = malloc(n);
    if (!v || mincore(c->map, c->map_size, v)) {
        free(v);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        in += v[i] & 1;
    free(v);
    return (double)in / (double)n;
}

static void prefetch_start(wcache *c)
{
    madvise(c->map, c->map_size, MADV_NORMAL);
    uint64_t avail = m2p_mem_available() / 2;
    c->pf_end = c->map_size < avail ? c->map_size : avail;
    if (c->pf_end <= WC_HDR || resident_share(c) > 0.95)
        return;
    atomic_init(&c->pf_stop, 0);
    c->pf_on = pthread_create(&c->pf, NULL, prefetch_main, c) == 0;
}

/* Maps and checks the file at c->path against `want` (source key and tag). 0 or a reason. */
static const char *reader_open(wcache *c, const wc_header *want)
{
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "absent";
    struct stat st;
    if (fstat(fd, &st) || (size_t)st.st_size < WC_HDR) {
        close(fd);
        return "shorter than its header";
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return "cannot be mapped";
    }
    c->map = map;
    c->map_size = (size_t)st.st_size;
    c->pf_fd = fd; /* the prefetch thread's, or closed by reader_drop */
    /* the header, the index and the load's samples: a page each, not a read-around window */
    madvise(map, c->map_size, MADV_RANDOM);
    wc_header h;
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, WC_MAGIC, sizeof h.magic) || h.version != WC_VERSION ||
        h.header_size != WC_HDR)
        return "not a weight cache of this version";
    if (h.header_hash != fnv(FNV0, &h, offsetof(wc_header, header_hash)))
        return "header checksum mismatch";
    if (h.src_size != want->src_size || h.src_mtime_s != want->src_mtime_s ||
        h.src_mtime_ns != want->src_mtime_ns)
        return "stale (the source file changed)";
    if (strncmp(h.tag, want->tag, sizeof h.tag))
        return "written for another dtype, oneDNN or CPU";
    if (h.file_size != c->map_size)
        return "truncated or extended";
    if (h.index_off < WC_HDR || h.index_off > c->map_size ||
        h.index_size > c->map_size - h.index_off || h.n > h.index_size / sizeof(wc_record))
        return "index out of bounds";
    const char *idx = (const char *)map + h.index_off;
    m2p_will_need(idx, h.index_size); /* one request, not a fault per page */
    if (h.index_hash != fnv(FNV0, idx, h.index_size))
        return "index checksum mismatch";
    c->ent = calloc(h.n ? h.n : 1, sizeof *c->ent);
    if (!c->ent)
        return "out of memory";
    size_t at = 0;
    for (uint64_t i = 0; i < h.n; i++) {
        wc_record r;
        if (h.index_size - at < sizeof r)
            return "index truncated";
        memcpy(&r, idx + at, sizeof r);
        size_t rec = sizeof r + (size_t)r.key_len + (size_t)r.layout_size;
        if (r.key_len == 0 || r.key_len > 4096 || r.layout_size > 65536 || h.index_size - at < rec)
            return "index record out of bounds";
        if (r.data_off < WC_HDR || (r.data_off & 63) || r.data_off > h.index_off ||
            r.data_size > h.index_off - r.data_off)
            return "entry data out of bounds";
        wc_entry *e = &c->ent[i];
        e->key = idx + at + sizeof r;
        e->key_len = r.key_len;
        e->layout = idx + at + sizeof r + r.key_len;
        e->layout_size = r.layout_size;
        e->data = (const char *)map + r.data_off;
        e->size = (size_t)r.data_size;
        e->sample_hash = r.sample_hash;
        at += (rec + 7) & ~(size_t)7;
    }
    c->n = (size_t)h.n;
    /* ask for every sampled page at once: the disk serves them side by side, where the load's
     * touches, one after another, would each wait for a read */
    for (size_t i = 0; i < c->n; i++) {
        size_t at[3], len;
        for (int k = 0, m = samples(c->ent[i].size, at, &len); k < m; k++)
            m2p_will_need((const char *)c->ent[i].data + at[k], len);
    }
    return NULL;
}

static void reader_drop(wcache *c)
{
    if (c->pf_on) {
        atomic_store(&c->pf_stop, 1);
        pthread_join(c->pf, NULL);
        c->pf_on = 0;
    }
    if (c->pf_fd >= 0)
        close(c->pf_fd);
    c->pf_fd = -1;
    if (c->map)
        munmap(c->map, c->map_size);
    c->map = NULL;
    c->map_size = 0;
    free(c->ent);
    c->ent = NULL;
    c->n = 0;
}

/* Entries are written with O_DIRECT where the file system takes it: buffered writes of a
 * 3.4 GB f32 UNet cost 5-10 s of kernel time here (copies into the page cache, delayed
 * allocation, writeback), direct ones 2-2.5 s at the disk's pace with 0.5 s of CPU
 * (BENCHMARKS.md). The next load then reads the file from disk instead of the page cache. */
#define DIRECT_ALIGN 4096u
#define DIRECT_STAGE ((size_t)4 << 20)

static void direct_off(wcache *c)
{
    if (c->direct) {
        int fl = fcntl(c->fd, F_GETFL);
        if (fl != -1)
            fcntl(c->fd, F_SETFL, fl & ~O_DIRECT);
    }
    c->direct = 0;
    free(c->stage);
    c->stage = NULL;
}

/* The bytes the cache must leave free on its disk (wcache_open). */
static unsigned long long min_free(void)
{
    const char *v = getenv("M2P_WEIGHT_CACHE_MIN_FREE");
    char *end;
    if (v && *v) {
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!errno && !*end)
            return n;
        M2P_LOGW("M2P_WEIGHT_CACHE_MIN_FREE=%s is not a number of bytes; using %llu", v,
                 WC_MIN_FREE);
    }
    return WC_MIN_FREE;
}

/* Removes "<file>.tmp.<pid>" files in dir left by writers that died (killed during their first
 * load: 3.5 GB each for an f32 UNet): their process is gone and the file has not been written
 * to for a minute. A live writer keeps its file's mtime fresh. */
static void remove_orphans(const char *dir, const char *file)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t fl = strlen(file);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, file, fl) || strncmp(n + fl, ".tmp.", 5))
            continue;
        char *end;
        long pid = strtol(n + fl + 5, &end, 10);
        char p[PATH_MAX];
        struct stat st;
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH) ||
            snprintf(p, sizeof p, "%s/%s", dir, n) >= (int)sizeof p || stat(p, &st) ||
            time(NULL) - st.st_mtime < 60)
            continue;
        if (unlink(p) == 0)
            M2P_LOGI("weight cache: removed %s, left by a load that did not finish", p);
    }
    closedir(d);
}

static int writer_start(wcache *c, size_t expect)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    if (mkdirs(dir)) {
        M2P_LOGD("weight cache: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    remove_orphans(dir, slash ? slash + 1 : c->path);
    struct statvfs vfs;
    unsigned long long keep = min_free();
    if (statvfs(dir, &vfs) == 0) {
        unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        if (avail < keep || avail - keep < expect) {
            M2P_LOGI("weight cache: not written: %s has %.1f GiB free, the cache would take "
                     "%.1f GiB and leave less than %.1f GiB (later loads convert again; free "
                     "space or set M2P_WEIGHT_CACHE_DIR to another disk)",
                     dir, avail / 1073741824.0, expect / 1073741824.0, keep / 1073741824.0);
            return -1;
        }
    }
    snprintf(c->tmp, sizeof c->tmp, "%s.tmp.%ld", c->path, (long)getpid());
    c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        M2P_LOGD("weight cache: cannot write %s: %s", c->tmp, strerror(errno));
        return -1;
    }
    /* the stage first: O_DIRECT is set only when the writes can go through it */
    int fl = fcntl(c->fd, F_GETFL);
    if (fl != -1 && posix_memalign((void **)&c->stage, DIRECT_ALIGN, DIRECT_STAGE) == 0)
        c->direct = fcntl(c->fd, F_SETFL, fl | O_DIRECT) == 0;
    if (!c->direct)
        direct_off(c);
    c->cur = WC_HDR;
    return 0;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *b = p;
    while (n) {
        ssize_t k = pwrite(fd, b, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static void writer_fail(wcache *c, const char *what)
{
    if (!c->failed)
        M2P_LOGW("weight cache: %s %s: %s (the model loads without it)", what, c->tmp,
                 strerror(errno));
    c->failed = 1;
    if (c->fd >= 0) {
        close(c->fd);
        unlink(c->tmp);
    }
    c->fd = -1;
}

void wcache_open(const char *src, const char *tag, size_t expect, wcache **out)
{
    *out = NULL;
    struct stat st;
    if (stat(src, &st) || !S_ISREG(st.st_mode))
        return;
    wcache *c = calloc(1, sizeof *c);
    if (!c)
        return;
    atomic_init(&c->refs, 1);
    c->fd = -1;
    c->pf_fd = -1;
    m2p_buf_init(&c->index, WC_MAX_INDEX);
    if (!cache_path(src, tag, c->path, sizeof c->path)) {
        M2P_LOGD("weight cache: no cache folder for %s", src);
        free(c);
        return;
    }
    header_fill(&c->hdr, &st, tag);
    const char *why = reader_open(c, &c->hdr);
    if (!why) {
        M2P_LOGD("weight cache: mapped %s (%zu entries)", c->path, c->n);
        *out = c;
        return;
    }
    M2P_LOGD("weight cache: %s: %s; writing a new one", c->path, why);
    reader_drop(c);
    if (writer_start(c, expect)) {
        free(c);
        return;
    }
    *out = c;
}

int wcache_is_reader(const wcache *c)
{
    return c && c->map != NULL;
}

const char *wcache_path(const wcache *c)
{
    return c->path;
}

int wcache_find(wcache *c, const char *key, const void **layout, size_t *layout_size,
                const void **data, size_t *size)
{
    if (!c || !c->map || !c->n || c->stale) /* once stale, the rest converts from the source */
        return M2P_ENOTFOUND;
    size_t kl = strlen(key);
    for (size_t k = 0; k < c->n; k++) { /* loads ask in the order they wrote: usually k = 0 */
        size_t i = (c->cursor + k) % c->n;
        wc_entry *e = &c->ent[i];
        if (e->key_len != kl || memcmp(e->key, key, kl))
            continue;
        if (sample_hash(e->data, e->size) != e->sample_hash) {
            M2P_LOGW("weight cache: %s: entry '%s' is corrupt; it will be rewritten", c->path, key);
            c->stale = 1;
            return M2P_ENOTFOUND;
        }
        c->cursor = i + 1;
        *layout = e->layout;
        *layout_size = e->layout_size;
        *data = e->data;
        *size = e->size;
        return 0;
    }
    c->stale = 1;
    return M2P_ENOTFOUND;
}

void wcache_mark_stale(wcache *c)
{
    if (c)
        c->stale = 1;
}

/* n bytes of p at off (a multiple of DIRECT_ALIGN) with O_DIRECT: the whole pages of a
 * page-aligned buffer as they are, anything else through the stage, its last block padded with
 * zeros (the padding lies before the next entry's aligned offset, or is cut by the commit's
 * truncate). A file system that refuses O_DIRECT halfway turns it off: the rest is buffered. */
static int write_data(wcache *c, const void *p, size_t n, uint64_t off)
{
    const char *b = p;
    while (c->direct && n) {
        const char *from = b;
        size_t k = n & ~(size_t)(DIRECT_ALIGN - 1), len = k;
        if (((uintptr_t)b & (DIRECT_ALIGN - 1)) || !k) {
            k = n < DIRECT_STAGE ? n : DIRECT_STAGE;
            len = (k + DIRECT_ALIGN - 1) & ~(size_t)(DIRECT_ALIGN - 1);
            memcpy(c->stage, b, k);
            memset(c->stage + k, 0, len - k);
            from = c->stage;
        }
        if (pwrite_all(c->fd, from, len, off)) {
            if (errno != EINVAL)
                return -1;
            direct_off(c);
            break;
        }
        b += k;
        n -= k;
        off += k;
    }
    return n ? pwrite_all(c->fd, b, n, off) : 0;
}

void wcache_add(wcache *c, const char *key, const void *layout, size_t layout_size,
                const void *data, size_t size)
{
    if (!c || c->map || c->failed || c->committed || c->fd < 0)
        return;
    c->cur = (c->cur + WC_HDR - 1) & ~(uint64_t)(WC_HDR - 1);
    if (write_data(c, data, size, c->cur)) {
        writer_fail(c, "writing");
        return;
    }
    wc_record r = {.data_off = c->cur,
                   .data_size = size,
                   .sample_hash = sample_hash(data, size),
                   .key_len = (uint32_t)strlen(key),
                   .layout_size = (uint32_t)layout_size};
    size_t rec = (sizeof r + r.key_len + layout_size + 7) & ~(size_t)7;
    int grown = m2p_buf_reserve(&c->index, rec);
    if (grown) {
        errno = grown == M2P_ETOOBIG ? EFBIG : ENOMEM;
        writer_fail(c, "indexing");
        return;
    }
    char *at = c->index.data + c->index.len;
    memset(at, 0, rec);
    memcpy(at, &r, sizeof r);
    memcpy(at + sizeof r, key, r.key_len);
    memcpy(at + sizeof r + r.key_len, layout, layout_size);
    c->index.len += rec;
    c->index.data[c->index.len] = '\0';
    c->n_written++;
    c->cur += size;
}

void wcache_commit(wcache *c)
{
    if (!c || c->committed)
        return;
    c->committed = 1;
    if (c->map) {
        prefetch_start(c);
        if (c->stale) { /* the next load writes a complete one */
            M2P_LOGD("weight cache: %s had stale entries; removed", c->path);
            unlink(c->path);
        }
        return;
    }
    if (c->failed || c->fd < 0)
        return;
    direct_off(c); /* the index and header are small and not block-sized */
    wc_header *h = &c->hdr;
    h->n = c->n_written;
    h->index_off = (c->cur + 7) & ~(uint64_t)7;
    h->index_size = c->index.len;
    h->file_size = h->index_off + h->index_size;
    h->index_hash = fnv(FNV0, c->index.data, c->index.len);
    h->header_hash = fnv(FNV0, h, offsetof(wc_header, header_hash));
    char page[WC_HDR];
    memset(page, 0, sizeof page);
    memcpy(page, h, sizeof *h);
    if (pwrite_all(c->fd, c->index.data, c->index.len, h->index_off) ||
        pwrite_all(c->fd, page, sizeof page, 0) || ftruncate(c->fd, (off_t)h->file_size) ||
        fsync(c->fd)) {
        writer_fail(c, "finishing");
        return;
    }
    close(c->fd);
    c->fd = -1;
    if (rename(c->tmp, c->path)) {
        M2P_LOGW("weight cache: cannot rename %s: %s", c->tmp, strerror(errno));
        unlink(c->tmp);
        return;
    }
    M2P_LOGD("weight cache: wrote %s (%zu entries, %llu bytes)", c->path, c->n_written,
             (unsigned long long)h->file_size);
}

void wcache_ref(wcache *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
}

void wcache_unref(void *p)
{
    wcache *c = p;
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->fd >= 0) { /* never committed: the temporary file is not a cache */
        close(c->fd);
        unlink(c->tmp);
    }
    reader_drop(c);
    m2p_buf_free(&c->index);
    free(c->stage);
    free(c);
}

void wcache_drop_pages(wcache *c)
{
    /* a shared read-only file mapping: this only unmaps the pages from the process, the page
     * cache keeps them and the next touch maps them again (a minor fault) */
    if (c && c->map)
        madvise(c->map, c->map_size, MADV_DONTNEED);
}
