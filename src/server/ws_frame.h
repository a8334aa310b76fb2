/*
 * ws_frame.h — RFC 6455 framing for /ws/progress (ws_frame.c): client frame headers checked
 * before their payload is read, message reassembly limits, server frame headers, close codes and
 * UTF-8 validation. No I/O here (ws.c reads and writes).
 */
#ifndef M2P_WS_FRAME_H
#define M2P_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 5.2). */
enum {
    WS_OP_CONT = 0,
    WS_OP_TEXT = 1,
    WS_OP_BINARY = 2,
    WS_OP_CLOSE = 8,
    WS_OP_PING = 9,
    WS_OP_PONG = 10
};

/* Close status codes (RFC 6455 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,  /* server stopping, client idle */
    WS_CLOSE_PROTOCOL = 1002,    /* unmasked, reserved bits or opcodes, bad fragmentation */
    WS_CLOSE_UNSUPPORTED = 1003, /* binary messages */
    WS_CLOSE_BAD_DATA = 1007,    /* text that is not UTF-8 */
    WS_CLOSE_POLICY = 1008,      /* a client dropped for not reading */
    WS_CLOSE_TOO_BIG = 1009,     /* message over the limit */
    WS_CLOSE_INTERNAL = 1011
};

#define WS_MAX_CONTROL 125 /* RFC 6455 5.5: control frame payloads */

typedef struct ws_frame {
    int fin, rsv, opcode, masked;
    uint8_t mask[4];
    uint64_t len;      /* payload length */
    size_t header_len; /* 2 to 14 bytes */
} ws_frame;

/* The header's whole length from its first two bytes (2 to 14). */
size_t ws_frame_header_len(const uint8_t b[2]);
/* Parse a header of ws_frame_header_len(b) bytes. */
void ws_frame_parse(const uint8_t *b, ws_frame *f);

/* A client's data message being reassembled from its frames. */
typedef struct ws_reassembly {
    int in_message; /* a first frame without FIN came, its continuations are expected */
    size_t len;     /* payload bytes so far */
    size_t max;     /* the message limit */
} ws_reassembly;

/* Is this client frame header acceptable before its payload is read? 0, or the close code to
 * answer with *why (static text) set: 1002 for an unmasked frame, reserved bits or opcodes, a
 * fragmented or oversized control frame, a continuation without a message or a new message
 * inside one; 1003 for binary; 1009 when the message would pass r->max. A data frame that is
 * accepted is counted into r (r->len grows; ws_reassembly_done after its FIN frame). */
int ws_frame_check(ws_reassembly *r, const ws_frame *f, const char **why);
void ws_reassembly_done(ws_reassembly *r);

/* XOR a payload with the frame's mask; offset is the payload position of p[0]. */
void ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* A server frame's header (FIN set, not masked) into out; its length (2, 4 or 10). */
size_t ws_frame_head(uint8_t out[10], int opcode, uint64_t len);

/* A close frame's payload (code, then reason) into out (2 + at most 123 bytes); its length. */
size_t ws_close_payload(uint8_t out[WS_MAX_CONTROL], int code, const char *reason);
/* Check a client's close payload: 0 with *code (1005 when it carries none), or the close code
 * to answer with (1002 for a 1-byte payload or a code not for the wire, 1007 for a reason that
 * is not UTF-8). */
int ws_close_parse(const uint8_t *p, size_t n, int *code);

/* Is p[0..n) well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF)? */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
