/*
 * fuzz_ws.c — libFuzzer target for /ws/progress (src/server/ws.c, ws_frame.c) on a server with no
 * job workers (fuzz_server_env.h). Each input is used three ways:
 *
 *   - as one message: the first byte is a frame's first byte (FIN and opcode, as ws.c's frame
 *     reader hands a message over), the rest its payload (at most 70 KiB, past the 64 KiB message
 *     limit): subscribe, unsubscribe, generate, ping. Every answer the client would be sent must
 *     be a JSON object with a "type"; a text message that is a JSON object keeps the connection
 *     open.
 *   - as the bytes a client sends after the handshake, read by the same frame reader as a
 *     socket's (headers, masks, fragments, control frames, close): every frame it would send back
 *     must be well-formed, and a close code one RFC 6455 allows.
 *   - as text: ws_utf8_valid must agree with utf8proc (an independent UTF-8 decoder).
 *
 * fuzz-flags: -detect_leaks=0 (fuzz_server_env.h says why)
 */
#include "core/error.h"
#include "fuzz_server_env.h"
#include "server/ws_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <utf8proc.h>

/* UTF-8 as utf8proc reads it: well-formed code points, no surrogates (RFC 3629). */
static int utf8_reference(const uint8_t *p, size_t n)
{
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp < 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

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
    int code = -1;
    if (ws_stream_check(s, data, size, &code) != 0) {
        fprintf(stderr, "fuzz_ws (frames): %s\n", m2p_errmsg());
        abort();
    }
    if (ws_utf8_valid(data, size) != utf8_reference(data, size)) {
        fprintf(stderr, "fuzz_ws: ws_utf8_valid says %d, utf8proc the opposite\n",
                ws_utf8_valid(data, size));
        abort();
    }
    return 0;
}
