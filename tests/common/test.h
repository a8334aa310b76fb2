/*
 * test.h — tiny assertion helpers shared by the C tests, and access to the fixtures.
 *
 * A test is a main() that calls CHECK*(); each failing check prints file:line and the values.
 * TEST_DONE() exits 1 when a check failed, else TEST_SKIP_CODE when a part could not run here
 * (test_skip() says which and why; ctest reports the test as skipped, never as passed), else 0.
 * Shell tests use the same code: `exit 77` after "SKIP: reason".
 */
#ifndef M2P_TEST_H
#define M2P_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int test_failures;
extern int test_skips;

/* Exit status for "could not run here" (CMakeLists.txt sets it as ctest's SKIP_RETURN_CODE). */
#define TEST_SKIP_CODE 77
/* Record that a part of the test did not run, printing "SKIP: <reason>". */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
            test_failures++;                                                               \
        }                                                                                  \
    } while (0)

#define CHECK_INT(a, b)                                                                    \
    do {                                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);                              \
        if (va_ != vb_) {                                                                  \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, va_, #b, vb_);                                                     \
            test_failures++;                                                               \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        const char *sa_ = (a), *sb_ = (b);                                                 \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                       \
            fprintf(stderr, "%s:%d: %s == \"%s\"\n    expected \"%s\"\n", __FILE__,         \
                    __LINE__, #a, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");             \
            test_failures++;                                                               \
        }                                                                                  \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double va_ = (a), vb_ = (b);                                                       \
        if (!(fabs(va_ - vb_) <= (tol))) {                                                 \
            fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tol %g)\n", __FILE__,       \
                    __LINE__, #a, va_, vb_, (double)(tol));                                \
            test_failures++;                                                               \
        }                                                                                  \
    } while (0)

/* The shared fixtures folder ($M2P_FIXTURES); path joins "<fixtures>/<rel>" into a static
 * rotating buffer. */
const char *test_fixture(const char *rel);
/* Environment variable or a default. */
const char *test_env(const char *name, const char *fallback);
/* A fresh empty temporary directory (removed by the caller with test_rmtree). */
char *test_tmpdir(const char *tag);
void test_rmtree(const char *path);
/* A whole file, NUL-terminated and malloc'd (length in *len when len is not NULL); NULL when it
 * cannot be read. */
char *test_read_file(const char *path, size_t *len);
/* 1 when the two files hold the same bytes; else 0, saying which differs or cannot be read and
 * how to fix it ("copy <want> over <got>"). */
int test_same_file(const char *got, const char *want);
/* Newlines in a file (0 when it does not exist). */
int test_count_lines(const char *path);
/* Compare float arrays; prints the worst element and returns its abs error. */
double test_max_abs_diff(const float *got, const float *want, size_t n, const char *what);
/* A WAV header (RIFF, fmt, data) for n samples of ch channels of format tag fmt_tag (1 PCM, 3
 * float) at bits per sample and rate Hz, as a file claims it: the rate is written as given. */
void test_wav_header(FILE *f, uint16_t fmt_tag, uint16_t ch, uint16_t bits, uint32_t rate,
                     uint32_t n);
/* A mono 16-bit WAV of seconds at 22,050 Hz: a 440 Hz tone with clicks at 120 BPM, or silence.
 * 0 when written. */
int test_write_wav(const char *path, double seconds, int silent);

#define TEST_DONE()                                                                        \
    do {                                                                                   \
        if (test_failures)                                                                 \
            fprintf(stderr, "%d check(s) failed\n", test_failures);                        \
        else if (test_skips)                                                               \
            fprintf(stderr, "%d part(s) skipped\n", test_skips);                           \
        return test_failures ? 1 : test_skips ? TEST_SKIP_CODE : 0;                        \
    } while (0)

#endif
