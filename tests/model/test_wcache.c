/*
 * test_wcache.c — the on-disk weight cache (src/model/wcache.c): entries written, committed and
 * mapped back byte for byte; every way a file can go bad (truncated, extended, header, index or
 * data bytes changed, source touched, another tag, garbage, empty) is refused at open or at
 * find and rebuilt, never trusted; no file is started where the disk would keep less than the
 * reserve. Then the whole pipeline on the sd-tiny fixture, in f32 and, where the CPU runs it,
 * bf16: the first load writes the cache, the next maps it (the file shows in /proc/self/maps),
 * and images from a converted load, a mapped load, a corrupted cache and its rebuild are
 * identical bit for bit.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "model/wcache.h"
#include "mus2pic.h"
#include "tensor/ops.h"
#include "test.h"

static char *tmp;
static char src[600];

#define NENT 3
static const size_t sizes[NENT] = {20000, 100, 70001};
static unsigned char *data[NENT];
static const char *keys[NENT] = {"conv a.weight 8x4x3x3", "linear b:16 in 4", "conv c"};
static const char layouts[NENT][24] = {"layout-0", "layout-one", "layout-2-longer-than"};

static void write_cache(const char *tag)
{
    wcache *c = NULL;
    wcache_open(src, tag, 1 << 20, &c);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(!wcache_is_reader(c));
    for (int i = 0; i < NENT; i++)
        wcache_add(c, keys[i], layouts[i], sizeof layouts[i], data[i], sizes[i]);
    wcache_commit(c);
    wcache_unref(c);
}

/* Opens the cache for tag; 1 when it maps a valid file whose every entry reads back intact. */
static int read_back(const char *tag, char *path, size_t n)
{
    wcache *c = NULL;
    wcache_open(src, tag, 1 << 20, &c);
    if (!c)
        return 0;
    if (path)
        snprintf(path, n, "%s", wcache_path(c));
    int ok = wcache_is_reader(c);
    for (int i = 0; ok && i < NENT; i++) {
        const void *l, *d;
        size_t ls, ds;
        ok = wcache_find(c, keys[i], &l, &ls, &d, &ds) == 0 && ls == sizeof layouts[i] &&
             !memcmp(l, layouts[i], ls) && ds == sizes[i] && !memcmp(d, data[i], ds) &&
             ((uintptr_t)d & 63) == 0;
    }
    if (wcache_is_reader(c)) /* removes a file found stale; a writer here has written nothing */
        wcache_commit(c);
    wcache_unref(c);
    return ok;
}

static void patch(const char *path, long off, int whence, unsigned char xor_with)
{
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    off_t at = lseek(fd, off, whence);
    unsigned char b = 0;
    CHECK(pread(fd, &b, 1, at) == 1);
    b ^= xor_with;
    CHECK(pwrite(fd, &b, 1, at) == 1);
    close(fd);
}

static void test_file_level(void)
{
    char path[1200];
    write_cache("tag one");
    CHECK(read_back("tag one", path, sizeof path));
    /* a second reader at once: the mapping is shared, nothing rewritten */
    struct stat st0, st1;
    CHECK_INT(stat(path, &st0), 0);
    CHECK(read_back("tag one", NULL, 0));
    CHECK_INT(stat(path, &st1), 0);
    CHECK(st0.st_ino == st1.st_ino);

    /* another tag (dtype, oneDNN, CPU): its own file, the first stays valid */
    CHECK(!read_back("tag two", NULL, 0));
    CHECK(read_back("tag one", NULL, 0));

    struct {
        const char *what;
        long off;
        int whence;
    } flips[] = {
        {"header (tag)", 48, SEEK_SET},
        {"header (entry count)", 180, SEEK_SET},
        {"index (last byte)", -1, SEEK_END},
        {"index (a key)", -40, SEEK_END},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        patch(path, flips[i].off, flips[i].whence, 0x20);
        if (read_back("tag one", NULL, 0)) {
            fprintf(stderr, "a changed %s was trusted\n", flips[i].what);
            test_failures++;
        }
        write_cache("tag one"); /* rebuilt */
        CHECK(read_back("tag one", NULL, 0));
    }

    /* a key the file lacks (a load that wants more than was written): nothing more is served
     * from it, and the commit removes it */
    wcache *c = NULL;
    wcache_open(src, "tag one", 1 << 20, &c);
    CHECK(wcache_is_reader(c));
    if (c) {
        const void *l, *d;
        size_t ls, ds;
        CHECK_INT(wcache_find(c, "no such key", &l, &ls, &d, &ds), M2P_ENOTFOUND);
        CHECK_INT(wcache_find(c, keys[0], &l, &ls, &d, &ds), M2P_ENOTFOUND);
        wcache_commit(c);
        wcache_unref(c);
    }
    CHECK(access(path, F_OK) != 0);
    write_cache("tag one");
    CHECK(read_back("tag one", NULL, 0));

    /* a changed data byte (the first of entry 0, page 1): found by its sampled checksum; the
     * commit then removes the file and the next open rebuilds it */
    patch(path, 4096, SEEK_SET, 0x01);
    CHECK(!read_back("tag one", NULL, 0));
    CHECK(access(path, F_OK) != 0);
    write_cache("tag one");
    CHECK(read_back("tag one", NULL, 0));

    /* truncated, extended */
    CHECK_INT(stat(path, &st0), 0);
    CHECK_INT(truncate(path, st0.st_size - 1), 0);
    CHECK(!read_back("tag one", NULL, 0));
    write_cache("tag one");
    CHECK_INT(truncate(path, st0.st_size + 4096), 0);
    CHECK(!read_back("tag one", NULL, 0));
    write_cache("tag one");
    CHECK(read_back("tag one", NULL, 0));

    /* garbage and empty files */
    FILE *f = fopen(path, "wb");
    for (int i = 0; f && i < 9000; i++)
        fputc((i * 131) & 255, f);
    if (f)
        fclose(f);
    CHECK(!read_back("tag one", NULL, 0));
    f = fopen(path, "wb");
    if (f)
        fclose(f);
    CHECK(!read_back("tag one", NULL, 0));
    write_cache("tag one");
    CHECK(read_back("tag one", NULL, 0));

    /* the source changed (size kept, mtime moved): stale */
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 5}};
    CHECK_INT(utimensat(AT_FDCWD, src, ts, 0), 0);
    CHECK(!read_back("tag one", NULL, 0));
    write_cache("tag one");
    CHECK(read_back("tag one", NULL, 0));

    /* an uncommitted writer leaves nothing behind */
    CHECK_INT(unlink(path), 0);
    c = NULL;
    wcache_open(src, "tag one", 1 << 20, &c);
    CHECK(c && !wcache_is_reader(c));
    if (c)
        wcache_add(c, keys[0], layouts[0], sizeof layouts[0], data[0], sizes[0]);
    wcache_unref(c);
    CHECK(access(path, F_OK) != 0);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/cache')\"", tmp);
    CHECK_INT(system(cmd), 0);

    /* a disk that would keep less than the reserve: no writer, no file; a file already there
     * is still read */
    setenv("M2P_WEIGHT_CACHE_MIN_FREE", "18000000000000000000", 1); /* 18 EB */
    c = NULL;
    wcache_open(src, "tag one", 1 << 20, &c);
    CHECK(c == NULL);
    wcache_unref(c);
    CHECK(access(path, F_OK) != 0);
    setenv("M2P_WEIGHT_CACHE_MIN_FREE", "0", 1);
    c = NULL; /* nor a file bigger than the disk's free space */
    wcache_open(src, "tag one", SIZE_MAX / 2, &c);
    CHECK(c == NULL);
    wcache_unref(c);
    unsetenv("M2P_WEIGHT_CACHE_MIN_FREE");
    write_cache("tag one");
    setenv("M2P_WEIGHT_CACHE_MIN_FREE", "18000000000000000000", 1);
    CHECK(read_back("tag one", NULL, 0));
    unsetenv("M2P_WEIGHT_CACHE_MIN_FREE");
    CHECK_INT(unlink(path), 0);

    /* temporary files of writers that died are removed by the next writer; a live writer's
     * (the parent) and a recently written one are not */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    CHECK(dead > 0);
    waitpid(dead, NULL, 0);
    char orphan[1300], live[1300], fresh[1300];
    snprintf(orphan, sizeof orphan, "%s.tmp.%ld", path, (long)dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    snprintf(fresh, sizeof fresh, "%s.tmp.%ld", path, (long)dead + 1000000);
    struct timespec old_times[2] = {{1000000000, 0}, {1000000000, 0}};
    const char *made[3] = {orphan, live, fresh};
    for (int i = 0; i < 3; i++) {
        FILE *t = fopen(made[i], "wb");
        CHECK(t != NULL);
        if (t)
            fclose(t);
        if (i < 2)
            CHECK_INT(utimensat(AT_FDCWD, made[i], old_times, 0), 0);
    }
    write_cache("tag one");
    CHECK(access(orphan, F_OK) != 0);
    CHECK(access(live, F_OK) == 0);
    CHECK(access(fresh, F_OK) == 0);
    CHECK(read_back("tag one", NULL, 0));
    unlink(live);
    unlink(fresh);
    CHECK_INT(unlink(path), 0);
}

/* ---- the pipeline on sd-tiny ---------------------------------------------------------------- */

/* How many cache files the process maps (distinct paths: a file that is being read in has a
 * second, passing mapping of a part of it, wcache.c populate). */
static int maps_cache(void)
{
    FILE *f = fopen("/proc/self/maps", "r"); /* size 0 to stat(): read it line by line */
    char dir[700], line[2048], seen[8][2048];
    snprintf(dir, sizeof dir, "%s/cache/", tmp);
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, dir);
        int dup = 0;
        for (int i = 0; p && i < n; i++)
            dup |= !strcmp(seen[i], p);
        if (p && !dup && n < 8)
            snprintf(seen[n++], sizeof seen[0], "%s", p);
    }
    if (f)
        fclose(f);
    return n;
}

/* One 64x64 4-step image of sd-tiny in dtype; *mapped gets how many cache files the loaded
 * model maps. */
static uint8_t *image(int dtype, int cache, int *mapped)
{
    m2p_model_params mp = m2p_model_default_params();
    mp.compute_dtype = dtype;
    mp.weight_cache = cache;
    mp.n_threads = 2;
    m2p_model *m = NULL;
    int rc = m2p_model_load(test_fixture("sd-tiny/model"), &mp, &m);
    if (rc)
        fprintf(stderr, "load: %s\n", m2p_errmsg());
    CHECK_INT(rc, 0);
    if (rc)
        return NULL;
    *mapped = maps_cache();
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = "a poster";
    p.steps = 4;
    p.width = p.height = 64;
    p.seed = 7;
    m2p_image img;
    rc = m2p_generate(m, &p, &img);
    CHECK_INT(rc, 0);
    m2p_model_free(m);
    if (rc)
        return NULL;
    uint8_t *rgb = img.rgb;
    img.rgb = NULL;
    m2p_image_free(&img);
    return rgb;
}

static void check_same(const uint8_t *a, const uint8_t *b, const char *what)
{
    if (!a || !b || memcmp(a, b, 64 * 64 * 3)) {
        fprintf(stderr, "%s: image differs from the converted load's\n", what);
        test_failures++;
    }
}

static int count_files(void)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "exit $(ls '%s/cache' | grep -c '\\.m2pw$')", tmp);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_pipeline(int dtype)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/cache'", tmp);
    CHECK_INT(system(cmd), 0);
    int mapped = 0;
    uint8_t *ref = image(dtype, 0, &mapped); /* converted, no cache */
    CHECK_INT(mapped, 0);
    CHECK_INT(count_files(), 0);
    uint8_t *first = image(dtype, 1, &mapped); /* converts and writes */
    CHECK_INT(mapped, 0);
    CHECK_INT(count_files(), 3); /* text_encoder, unet, vae */
    check_same(ref, first, "the load that wrote the cache");
    uint8_t *second = image(dtype, 1, &mapped); /* maps */
    CHECK_INT(mapped, 3);
    check_same(ref, second, "the mapped load");
    /* damage every cache file's first data page: detected, converted, removed, rebuilt */
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/cache/*.m2pw; do printf '\\377\\377\\377\\377' | dd of=\"$f\" bs=1 "
             "seek=4100 conv=notrunc status=none; done",
             tmp);
    CHECK_INT(system(cmd), 0);
    uint8_t *bad = image(dtype, 1, &mapped);
    check_same(ref, bad, "the load over a corrupted cache");
    CHECK_INT(count_files(), 0);
    uint8_t *again = image(dtype, 1, &mapped);
    CHECK_INT(count_files(), 3);
    uint8_t *mapped_again = image(dtype, 1, &mapped);
    CHECK_INT(mapped, 3);
    check_same(ref, again, "the rebuilding load");
    check_same(ref, mapped_again, "the load of the rebuilt cache");
    free(ref);
    free(first);
    free(second);
    free(bad);
    free(again);
    free(mapped_again);
}

/* Pages of the file at path in the page cache, and how many it has. */
static size_t resident(const char *path, size_t *pages)
{
    *pages = 0;
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = ((size_t)st.st_size + pg - 1) / pg, in = 0;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *v = malloc(n);
    if (m != MAP_FAILED && v && mincore(m, (size_t)st.st_size, v) == 0)
        for (size_t i = 0; i < n; i++)
            in += v[i] & 1;
    free(v);
    if (m != MAP_FAILED)
        munmap(m, (size_t)st.st_size);
    close(fd);
    *pages = n;
    return in;
}

/* A cold file: while the network loads, its sampled checksums read a page each (MADV_RANDOM),
 * not a read-around window; once it has loaded (commit), the whole file is read in behind the
 * caller's back, in order, for the first steps that use it. */
static void test_prefetch(void)
{
    const size_t big = (size_t)40 << 20; /* several of the reader's 8 MB reads */
    unsigned char *d = malloc(big);
    CHECK(d != NULL);
    if (!d)
        return;
    for (size_t j = 0; j < big; j++)
        d[j] = (unsigned char)(j * 31 + j / 4093);
    wcache *c = NULL;
    wcache_open(src, "prefetch", big + (1 << 20), &c);
    CHECK(c != NULL && !wcache_is_reader(c));
    if (!c) {
        free(d);
        return;
    }
    wcache_add(c, "big", "L", 1, d, big);
    wcache_add(c, "small", "S", 1, d, 5000);
    wcache_commit(c);
    wcache_unref(c);
    c = NULL;
    wcache_open(src, "prefetch", big + (1 << 20), &c);
    CHECK(wcache_is_reader(c));
    char path[1200];
    snprintf(path, sizeof path, "%s", c ? wcache_path(c) : "");
    wcache_unref(c);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* out of the page cache, where it can */
        close(fd);
    }
    size_t pages, in = resident(path, &pages);
    if (in > pages / 8) { /* tmpfs and the like keep their pages: nothing to observe */
        test_skip("prefetch: the file system keeps the cache file's pages in memory");
        free(d);
        return;
    }
    c = NULL;
    wcache_open(src, "prefetch", big + (1 << 20), &c);
    CHECK(wcache_is_reader(c));
    const void *l, *data_big, *data_small;
    size_t ls, ds;
    CHECK_INT(wcache_find(c, "big", &l, &ls, &data_big, &ds), 0);
    CHECK_INT(wcache_find(c, "small", &l, &ls, &data_small, &ds), 0);
    in = resident(path, &pages);
    if (in > pages / 4) {
        fprintf(stderr, "the load's checks read %zu of %zu pages (read-around, not a page each)\n",
                in, pages);
        test_failures++;
    }
    wcache_commit(c); /* loaded: the rest comes in behind */
    for (int i = 0; i < 1000 && (in = resident(path, &pages)) < pages; i++)
        usleep(10000);
    if (in < pages) {
        fprintf(stderr, "10 s after the load %zu of %zu pages were read in\n", in, pages);
        test_failures++;
    }
    CHECK(ds == 5000 && !memcmp(data_small, d, 5000) && !memcmp(data_big, d, big));
    wcache_unref(c);
    free(d);
}

int main(void)
{
    tmp = test_tmpdir("wcache");
    char dir[700];
    snprintf(dir, sizeof dir, "%s/cache", tmp);
    setenv("M2P_WEIGHT_CACHE_DIR", dir, 1);
    snprintf(src, sizeof src, "%s/source.safetensors", tmp);
    FILE *f = fopen(src, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("not read by the cache, only stat()ed", f);
        fclose(f);
    }
    for (int i = 0; i < NENT; i++) {
        data[i] = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            data[i][j] = (unsigned char)(j * 7 + (size_t)i * 13 + j / 251);
    }
    test_file_level();
    test_prefetch();
    test_pipeline(M2P_DTYPE_F32);
    if (op_bf16_supported())
        test_pipeline(M2P_DTYPE_BF16);
    else
        test_skip("bf16: not supported by this CPU, its cache not loaded");
    for (int i = 0; i < NENT; i++)
        free(data[i]);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
