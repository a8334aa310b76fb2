/*
 * test_dispatch.c — the run-time choice of vector kernels (src/tensor/cpu/dispatch.c):
 *  - the default build picks "avx512" exactly when /proc/cpuinfo lists avx512f, dq, bw and vl,
 *    else "avx2" when it lists avx2, fma, bmi2 and f16c, else "generic"; MUS2PIC_CPU=generic
 *    or avx2 caps the choice (in a child process: the choice is made once);
 *  - every build of the kernels this CPU can run agrees with the chosen one: GroupNorm+SiLU,
 *    LayerNorm, GEGLU, GELU, SiLU and attention on the same inputs, the capped results from
 *    the children, within float rounding (test_ops.c checks the kernels themselves against
 *    double-precision loops).
 * A -DM2P_NATIVE=ON build has one build of the kernels: reported as a skip.
 */
#include "mus2pic.h"
#include "tensor/ops.h"
#include "test.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

enum { B = 2, HW = 96, C = 64, ROWS = 80, D = 48, LQ = 70, LK = 77, HEADS = 2, DH = 40 };
#define N_OUT (B * HW * C + ROWS * C + ROWS * D + ROWS * D + B * HW * C + B * LQ * HEADS * DH)

static float *inputs(size_t n)
{
    uint64_t r = 0x9e3779b97f4a7c15ull;
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; p && i < n; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        p[i] = (float)((r >> 40) * (1.0 / 8388608.0) - 1.0) * 3.0f;
    }
    return p;
}

/* Every op on fixed inputs, outputs one after the other into out[N_OUT]. */
static int run_ops(float *out)
{
    size_t nin = (size_t)B * LK * HEADS * DH * 3 + (size_t)ROWS * 2 * D + B * HW * C;
    float *x = inputs(nin), *gamma = inputs(C);
    if (!x || !gamma)
        return -1;
    float *o = out;
    op_groupnorm(x, B, HW, C, 8, 1e-5f, gamma, x + 7, 1, o);
    o += B * HW * C;
    op_layernorm(x + 3, ROWS, C, 1e-5f, gamma, x + 11, o);
    o += ROWS * C;
    op_geglu(x + 5, ROWS, D, o);
    o += ROWS * D;
    memcpy(o, x + 13, ROWS * D * sizeof(float));
    op_gelu(o, ROWS * D);
    o += ROWS * D;
    memcpy(o, x + 17, (size_t)B * HW * C * sizeof(float));
    op_silu(o, (size_t)B * HW * C);
    o += B * HW * C;
    const float *q = x, *k = x + B * LK * HEADS * DH, *v = k + B * LK * HEADS * DH;
    int rc = op_attention(q, HEADS * DH, k, v, HEADS * DH, B, LQ, LK, HEADS, DH, 0.158f, 0, o);
    free(x);
    free(gamma);
    return rc;
}

/* flag in the first "flags" line of /proc/cpuinfo (read line by line: /proc reports size 0) */
static int cpu_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    static char line[16384];
    char pat[64];
    snprintf(pat, sizeof pat, " %s", flag);
    size_t n = strlen(pat);
    int yes = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        for (const char *p = strstr(line, pat); p && !yes; p = strstr(p + 1, pat))
            yes = p[n] == ' ' || p[n] == '\n';
        break;
    }
    if (f)
        fclose(f);
    return yes;
}

/* The results of the kernels MUS2PIC_CPU=name picks, from a child process, into theirs. */
static int run_capped(const char *argv0, const char *dir, const char *name, float *theirs)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MUS2PIC_CPU", name, 1);
        execl("/proc/self/exe", argv0, "--child", name, path, (char *)NULL);
        _exit(127);
    }
    int status = 0, ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                         WEXITSTATUS(status) == 0;
    size_t n = 0;
    char *got = ok ? test_read_file(path, &n) : NULL;
    ok = got && n == N_OUT * sizeof(float);
    if (ok)
        memcpy(theirs, got, n);
    free(got);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    float *mine = malloc(N_OUT * sizeof(float)), *theirs = malloc(N_OUT * sizeof(float));
    CHECK(mine && theirs);
    if (argc == 4 && !strcmp(argv[1], "--child")) { /* MUS2PIC_CPU=argv[2]: write the results */
        FILE *f = fopen(argv[3], "wb");
        int ok = f && !strcmp(m2p_cpu_kernels(), argv[2]) && run_ops(mine) == 0 &&
                 fwrite(mine, sizeof(float), N_OUT, f) == N_OUT;
        if (f)
            fclose(f);
        free(mine);
        free(theirs);
        return ok ? 0 : 1;
    }
    const char *k = m2p_cpu_kernels();
    printf("kernels: %s\n", k);
    if (!strcmp(k, "native")) {
        test_skip("a -DM2P_NATIVE=ON build has one build of the kernels, nothing to dispatch");
        free(mine);
        free(theirs);
        TEST_DONE();
    }
    int avx2 = cpu_has("avx2") && cpu_has("fma") && cpu_has("bmi2") && cpu_has("f16c");
    int avx512 = avx2 && cpu_has("avx512f") && cpu_has("avx512dq") && cpu_has("avx512bw") &&
                 cpu_has("avx512vl");
    CHECK_STR(k, avx512 ? "avx512" : avx2 ? "avx2" : "generic");
    CHECK_INT(run_ops(mine), 0);

    char *dir = test_tmpdir("dispatch");
    const char *lower[] = {"generic", "avx2"};
    for (int i = 0; i < 1 + (avx512 ? 1 : 0); i++) {
        printf("%s vs %s\n", lower[i], k);
        CHECK_INT(run_capped(argv[0], dir, lower[i], theirs), 0);
        /* float rounding of sums over <= 80 terms of magnitude <= ~10: 1e-4 absolute */
        CHECK(test_max_abs_diff(theirs, mine, N_OUT, "capped vs dispatched kernels") <= 1e-4);
    }
    test_rmtree(dir);
    free(dir);
    free(mine);
    free(theirs);
    TEST_DONE();
}
