/*
 * mem.h — what the kernel says about memory: how much is available, and advice on mapped pages.
 */
#ifndef M2P_CORE_MEM_H
#define M2P_CORE_MEM_H

#include <stddef.h>

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
size_t m2p_mem_available(void);

/* Starts reading the pages under [p, p+n) of a file mapping in, without waiting for them
 * (MADV_WILLNEED on the pages that hold any of those bytes). */
void m2p_will_need(const void *p, size_t n);

#endif
