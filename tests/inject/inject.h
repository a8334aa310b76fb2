/*
 * inject.h — allocation-failure injection in SQLite's style, for the tests in tests/inject/
 * (each includes this once). CMake links them with -Wl,--wrap=malloc,... so every allocation
 * OUR objects make (the library and the test) goes through the counting __wrap_* below, which
 * fails the Nth one and otherwise calls __real_* (the libc or ASan allocator); FFmpeg, SQLite,
 * jansson and the other libraries allocate untouched.
 *
 * inject_walk() runs a scenario once to count its allocations and their call sites
 * (__builtin_return_address), then again with allocation N failing, for N at the first
 * allocation of every call site and at a stride over the whole count. Each faulted run must end
 * with an error and a message, or succeed with the same outcome as the clean run; ASan's leak
 * check at exit finds what a failure path forgot to free. M2P_INJECT_AT=N runs only the Nth.
 */
#ifndef M2P_TEST_INJECT_H
#define M2P_TEST_INJECT_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "mus2pic.h"
#include "test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);

#define INJECT_MAX_SITES 8192

static atomic_int inject_armed;         /* counting at all */
static atomic_long inject_count;        /* allocations counted since inject_arm */
static atomic_long inject_fail_at;      /* 0: none fails */
static atomic_int inject_failed;        /* how many allocations were failed */
static _Thread_local int inject_exempt; /* this thread's allocations are not counted */
static int inject_show_stack;           /* M2P_INJECT_AT given: show where it fails */
static long inject_now;                 /* the faulted run's N (0: the clean run) */
/* the sanitizers' stack printer (absent from the release build) */
void __sanitizer_print_stack_trace(void) __attribute__((weak));

/* Call sites of the counting run: return address and the index of its first allocation. */
static pthread_mutex_t inject_site_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int inject_recording;
static void *inject_site_addr[INJECT_MAX_SITES];
static long inject_site_first[INJECT_MAX_SITES];
static int inject_n_sites;

static void inject_record(void *site, long n)
{
    pthread_mutex_lock(&inject_site_lock);
    int known = 0;
    for (int i = 0; i < inject_n_sites && !known; i++)
        known = inject_site_addr[i] == site;
    if (!known && inject_n_sites < INJECT_MAX_SITES) {
        inject_site_addr[inject_n_sites] = site;
        inject_site_first[inject_n_sites++] = n;
    }
    pthread_mutex_unlock(&inject_site_lock);
}

/* 1: this allocation must fail. */
static int inject_hit(void *site)
{
    if (!atomic_load(&inject_armed) || inject_exempt)
        return 0;
    long n = atomic_fetch_add(&inject_count, 1) + 1;
    if (atomic_load(&inject_recording))
        inject_record(site, n);
    if (n == atomic_load(&inject_fail_at)) {
        atomic_fetch_add(&inject_failed, 1);
        if (inject_show_stack && __sanitizer_print_stack_trace) {
            fprintf(stderr, "allocation %ld fails here:\n", n);
            __sanitizer_print_stack_trace();
        }
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_strndup(s, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return inject_hit(__builtin_return_address(0)) ? 12 /* ENOMEM */
                                                   : __real_posix_memalign(p, align, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : __real_aligned_alloc(align, n);
}

/* SQLite's allocations counted too (inject_libraries: SQLITE_CONFIG_MALLOC, before its first
 * use). jansson's are already ours: the server makes jansson allocate through the library's
 * malloc (m2p_json_track_alloc), which the wrapping reaches. */

static sqlite3_mem_methods inject_sqlite_real;

static void *inject_sqlite_malloc(int n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : inject_sqlite_real.xMalloc(n);
}

static void *inject_sqlite_realloc(void *p, int n)
{
    return inject_hit(__builtin_return_address(0)) ? NULL : inject_sqlite_real.xRealloc(p, n);
}

static __attribute__((unused)) int inject_libraries(void)
{
    static sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &inject_sqlite_real) != SQLITE_OK)
        return -1;
    m = inject_sqlite_real;
    m.xMalloc = inject_sqlite_malloc;
    m.xRealloc = inject_sqlite_realloc;
    return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK ? 0 : -1;
}

/* Count from now; allocation fail_at (1-based; 0 = none) fails. */
static __attribute__((unused)) void inject_arm(long fail_at)
{
    atomic_store(&inject_count, 0);
    atomic_store(&inject_failed, 0);
    atomic_store(&inject_fail_at, fail_at);
    atomic_store(&inject_armed, 1);
}

/* Stop counting; returns the number of allocations counted. */
static __attribute__((unused)) long inject_disarm(void)
{
    atomic_store(&inject_armed, 0);
    atomic_store(&inject_fail_at, 0);
    return atomic_load(&inject_count);
}

/* A scenario: run once (0 = success, else an M2P_E* code with m2p_errmsg() set). check is
 * called after a successful run to compare its outcome with the clean run's (returns 0 when it
 * is the same); cleanup undoes what a run left (files, rows) so the next run starts alike. */
typedef struct inject_scenario {
    const char *name;
    int (*run)(void *ud);
    int (*check)(void *ud);
    void (*cleanup)(void *ud);
    void *ud;
    int max_runs; /* faulted runs at most besides the first allocation of every site */
} inject_scenario;

typedef struct inject_stats {
    long allocations; /* in the clean run */
    int sites;        /* distinct call sites in the clean run */
    int runs;         /* faulted runs */
    int failed_clean; /* faulted runs that ended with an error and a message */
    int recovered;    /* faulted runs that succeeded with the clean outcome */
} inject_stats;

static int inject_cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Walk N over sc (see the file comment); failures are CHECKs. */
static __attribute__((unused)) inject_stats inject_walk(const inject_scenario *sc)
{
    inject_stats st = {0};
    pthread_mutex_lock(&inject_site_lock);
    inject_n_sites = 0;
    pthread_mutex_unlock(&inject_site_lock);
    atomic_store(&inject_recording, 1);
    inject_arm(0);
    int rc = sc->run(sc->ud);
    st.allocations = inject_disarm();
    atomic_store(&inject_recording, 0);
    st.sites = inject_n_sites;
    if (rc) {
        fprintf(stderr, "%s: the clean run failed: %s\n", sc->name, m2p_errmsg());
        test_failures++;
        return st;
    }
    if (sc->check && sc->check(sc->ud)) {
        fprintf(stderr, "%s: the clean run's outcome is wrong\n", sc->name);
        test_failures++;
    }
    if (sc->cleanup)
        sc->cleanup(sc->ud);

    /* every site's first allocation, then a stride over the rest */
    int max_runs = sc->max_runs > 0 ? sc->max_runs : 200;
    long stride = st.allocations / max_runs + 1;
    size_t cap = (size_t)st.sites + (size_t)(st.allocations / stride) + 2;
    long *ns = __real_malloc(cap * sizeof *ns);
    if (!ns) {
        test_failures++;
        return st;
    }
    size_t k = 0;
    for (int i = 0; i < st.sites; i++)
        ns[k++] = inject_site_first[i];
    for (long n = 1; n <= st.allocations && k < cap; n += stride)
        ns[k++] = n;
    qsort(ns, k, sizeof *ns, inject_cmp_long);

    /* M2P_INJECT_AT=N reproduces one faulted run */
    long only = atol(test_env("M2P_INJECT_AT", "0"));
    inject_show_stack = only > 0;
    long prev = 0;
    for (size_t i = 0; i < k; i++) {
        if (ns[i] == prev || (only && ns[i] != only))
            continue;
        prev = ns[i];
        m2p_error_clear();
        inject_now = ns[i];
        inject_arm(ns[i]);
        rc = sc->run(sc->ud);
        inject_disarm();
        st.runs++;
        if (rc) {
            const char *msg = m2p_errmsg();
            if (!msg || !msg[0]) {
                fprintf(stderr, "%s: allocation %ld failed: error %d without a message\n", sc->name,
                        ns[i], rc);
                test_failures++;
            } else {
                st.failed_clean++;
            }
        } else if (sc->check && sc->check(sc->ud)) {
            fprintf(stderr, "%s: allocation %ld failed, the run succeeded with a wrong outcome\n",
                    sc->name, ns[i]);
            test_failures++;
        } else {
            st.recovered++;
        }
        if (sc->cleanup)
            sc->cleanup(sc->ud);
    }
    free(ns);
    inject_now = 0;
    fprintf(stderr,
            "%s: %ld allocations at %d call sites; %d faulted runs: %d failed with a message, %d "
            "recovered\n",
            sc->name, st.allocations, st.sites, st.runs, st.failed_clean, st.recovered);
    return st;
}

#endif
