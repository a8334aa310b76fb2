/*
 * mem.c — memory figures from /proc and advice on mapped pages (mem.h).
 */
#include "core/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

size_t m2p_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

void m2p_will_need(const void *p, size_t n)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)p & ~(pg - 1);
    if (n)
        madvise((void *)b, (uintptr_t)p + n - b, MADV_WILLNEED);
}
