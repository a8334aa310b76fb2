/*
 * fuzz_ws.c — libFuzzer target for the WebSocket messages of /ws/progress (src/server/ws.c:
 * subscribe, unsubscribe, generate, ping) on a server with no job workers (fuzz_server_env.h).
 *
 * Input: the first byte is the frame's first byte as CivetWeb hands it over (FIN and opcode),
 * the rest its payload (at most 70 KiB, past the 64 KiB message limit). Every answer the client
 * would be sent must be a JSON object with a "type"; a text frame that is a JSON object keeps
 * the connection open.
 *
 * fuzz-flags: -detect_leaks=0 (fuzz_server_env.h says why)
 */
#include "core/error.h"
#include "fuzz_server_env.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70 * 1024)
        return 0;
    server *s = fuzz_server();
    int keep = -1;
    if (ws_message_check(s, data[0], (const char *)data + 1, size - 1, &keep) != 0) {
        fprintf(stderr, "fuzz_ws: %s\n", m2p_errmsg());
        abort();
    }
    if (keep != 0 && keep != 1)
        abort();
    return 0;
}
