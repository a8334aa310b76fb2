/*
 * test.c — fixture paths, temporary folders, array comparison and WAV files for the C tests.
 */
#define _GNU_SOURCE
#include "test.h"

#include <ftw.h>
#include <stdarg.h>
#include <unistd.h>

int test_failures = 0;
int test_skips = 0;

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "SKIP: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    test_skips++;
}

const char *test_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *test_fixture(const char *rel)
{
    static char bufs[8][4096];
    static int next = 0;
    char *b = bufs[next++ & 7];
    snprintf(b, 4096, "%s/%s", test_env("M2P_FIXTURES", "../shared/fixtures"), rel);
    return b;
}

char *test_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "%s/m2p-%s-XXXXXX", test_env("TMPDIR", "/tmp"), tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

void test_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

double test_max_abs_diff(const float *got, const float *want, size_t n, const char *what)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (d > worst || d != d) {
            worst = d != d ? INFINITY : d;
            at = i;
        }
    }
    if (n)
        fprintf(stderr, "%s: max abs diff %.3g at %zu (got %.7g want %.7g)\n", what ? what : "",
                worst, at, got[at], want[at]);
    return worst;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (!b)
        return NULL;
    b[n] = '\0';
    if (len)
        *len = (size_t)n;
    return b;
}

int test_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

int test_same_file(const char *got, const char *want)
{
    size_t na = 0, nb = 0;
    char *a = test_read_file(got, &na), *b = test_read_file(want, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    if (!a || !b)
        fprintf(stderr, "cannot read %s\n", !a ? got : want);
    else if (!same)
        fprintf(stderr, "%s differs from %s: copy the second over the first\n", got, want);
    free(a);
    free(b);
    return same;
}

void test_wav_header(FILE *f, uint16_t fmt_tag, uint16_t ch, uint16_t bits, uint32_t rate,
                     uint32_t n)
{
    uint16_t align = (uint16_t)(bits / 8 * ch);
    uint32_t data_bytes = n * align, riff = 36 + data_bytes, fmt_len = 16, byte_rate = rate * align;
    fwrite("RIFF", 1, 4, f);
    fwrite(&riff, 4, 1, f);
    fwrite("WAVEfmt ", 1, 8, f);
    fwrite(&fmt_len, 4, 1, f);
    fwrite(&fmt_tag, 2, 1, f);
    fwrite(&ch, 2, 1, f);
    fwrite(&rate, 4, 1, f);
    fwrite(&byte_rate, 4, 1, f);
    fwrite(&align, 2, 1, f);
    fwrite(&bits, 2, 1, f);
    fwrite("data", 1, 4, f);
    fwrite(&data_bytes, 4, 1, f);
}

int test_write_wav(const char *path, double seconds, int silent)
{
    const uint32_t rate = 22050, n = (uint32_t)(seconds * rate);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    test_wav_header(f, 1, 1, 16, rate, n);
    for (uint32_t i = 0; i < n; i++) {
        double t = (double)i / rate, beat = fmod(t, 0.5);
        double v = silent ? 0 : 0.3 * sin(2 * M_PI * 440 * t) + (beat < 0.01 ? 0.6 : 0);
        int16_t s = (int16_t)lrint(v * 32000);
        fwrite(&s, 2, 1, f);
    }
    return fclose(f) ? -1 : 0;
}
