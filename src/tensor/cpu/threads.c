/*
 * threads.c — the compute thread count (tensor/ops.h op_set_threads, op_get_threads) and
 * ops_sync_threads (cpu.h), which every op calls before its parallel region. On its own so
 * that the kernels (kernels.c, attention*.c) and the oneDNN ops that call them depend on it
 * and not on each other.
 */
#include "tensor/ops.h"

#include <omp.h>
#include <stdlib.h>

#include "tensor/cpu/cpu.h"

static int g_threads = 0; /* 0: not set (OpenMP default) */

void op_set_threads(int n)
{
    if (n < 1) { /* OMP_NUM_THREADS when set, else every core */
        const char *e = getenv("OMP_NUM_THREADS");
        int v = e ? atoi(e) : 0;
        n = v > 0 && v <= 4096 ? v : omp_get_num_procs();
    }
    g_threads = n;
    omp_set_num_threads(n);
}

int op_get_threads(void)
{
    return g_threads > 0 ? g_threads : omp_get_max_threads();
}

/* OpenMP's thread count is per calling thread: make the caller's match the process setting
 * (server workers are plain pthreads that start with the default). */
void ops_sync_threads(void)
{
    if (g_threads > 0 && omp_get_max_threads() != g_threads)
        omp_set_num_threads(g_threads);
}
