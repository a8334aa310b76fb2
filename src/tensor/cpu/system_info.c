/*
 * system_info.c — m2p_system_info_get: what this machine offers the engine, for programs that
 * see only the public API (the CLI refuses --dtype bf16 where oneDNN would run slow reference
 * code). The answers come from the tensor module: oneDNN's effective ISA (op_bf16_supported),
 * the kernel build dispatch.c picked and the compute thread count.
 */
#include "mus2pic.h"
#include "tensor/ops.h"

m2p_system_info m2p_system_info_get(void)
{
    m2p_system_info si = {
        .bf16 = op_bf16_supported(),
        .kernels = m2p_cpu_kernels(),
        .threads = op_get_threads(),
    };
    return si;
}
