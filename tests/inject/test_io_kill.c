/*
 * test_io_kill.c — the store's Nth write ends the process (as kill -9 would) over a batch's
 * life on the in-process server, N walked over the writes of a clean life; a restarted server
 * must settle the batch and the store stay consistent (tests/inject/io_batch.h).
 */
#include "io_batch.h"

int main(void)
{
    return io_batch_main(SHIM_KILL);
}
