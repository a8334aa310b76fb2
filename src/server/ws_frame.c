/*
 * ws_frame.c — RFC 6455 framing for /ws/progress, without I/O: ws.c reads a client frame's
 * header from the socket, asks ws_frame_check whether it may read the payload (masked, known
 * opcode, control frames whole and at most 125 bytes, the message under its limit: all decided
 * from the header, so an announced 256 MB frame is refused before one payload byte is read), and
 * writes server frames with ws_frame_head. References: RFC 6455 sections 5.2 (frame layout),
 * 5.4-5.5 (fragmentation, control frames), 7.4 (close codes); RFC 3629 (UTF-8).
 */
#include "server/ws_frame.h"

#include <string.h>

size_t ws_frame_header_len(const uint8_t b[2])
{
    size_t n = 2 + ((b[1] & 0x80) ? 4 : 0);
    unsigned len7 = b[1] & 0x7f;
    return n + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

void ws_frame_parse(const uint8_t *b, ws_frame *f)
{
    memset(f, 0, sizeof *f);
    f->fin = (b[0] >> 7) & 1;
    f->rsv = (b[0] >> 4) & 7;
    f->opcode = b[0] & 0x0f;
    f->masked = (b[1] >> 7) & 1;
    unsigned len7 = b[1] & 0x7f;
    size_t at = 2;
    if (len7 == 126) {
        f->len = ((uint64_t)b[2] << 8) | b[3];
        at = 4;
    } else if (len7 == 127) {
        for (int i = 0; i < 8; i++)
            f->len = (f->len << 8) | b[2 + i];
        at = 10;
    } else {
        f->len = len7;
    }
    if (f->masked) {
        memcpy(f->mask, b + at, 4);
        at += 4;
    }
    f->header_len = at;
}

int ws_frame_check(ws_reassembly *r, const ws_frame *f, const char **why)
{
    if (!f->masked) {
        *why = "client frames must be masked (RFC 6455 5.1)";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->rsv) {
        *why = "reserved bits are set, and no extension was agreed";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->len >> 63) {
        *why = "the 64-bit length has its top bit set (RFC 6455 5.2)";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->opcode & 8) {
        if (f->opcode > WS_OP_PONG) {
            *why = "reserved control opcode";
            return WS_CLOSE_PROTOCOL;
        }
        if (!f->fin) {
            *why = "a control frame must not be fragmented";
            return WS_CLOSE_PROTOCOL;
        }
        if (f->len > WS_MAX_CONTROL) {
            *why = "a control frame carries at most 125 bytes";
            return WS_CLOSE_PROTOCOL;
        }
        return 0;
    }
    if (f->opcode > WS_OP_BINARY) {
        *why = "reserved data opcode";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->opcode == WS_OP_CONT && !r->in_message) {
        *why = "a continuation frame without a message to continue";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->opcode != WS_OP_CONT && r->in_message) {
        *why = "a new message started before the last one ended";
        return WS_CLOSE_PROTOCOL;
    }
    if (f->opcode == WS_OP_BINARY) {
        *why = "only text messages (JSON) are accepted";
        return WS_CLOSE_UNSUPPORTED;
    }
    if (f->len > r->max - r->len) {
        *why = "message over 64 KiB";
        return WS_CLOSE_TOO_BIG;
    }
    r->len += (size_t)f->len;
    r->in_message = !f->fin;
    return 0;
}

void ws_reassembly_done(ws_reassembly *r)
{
    r->in_message = 0;
    r->len = 0;
}

void ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t ws_frame_head(uint8_t out[10], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (8 * (7 - i)));
    return 10;
}

size_t ws_close_payload(uint8_t out[WS_MAX_CONTROL], int code, const char *reason)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > WS_MAX_CONTROL - 2)
        n = WS_MAX_CONTROL - 2; /* our reasons are ASCII: no character is cut */
    memcpy(out + 2, reason ? reason : "", n);
    return 2 + n;
}

int ws_close_parse(const uint8_t *p, size_t n, int *code)
{
    *code = 1005; /* RFC 6455 7.1.5: no status code present */
    if (n == 0)
        return 0;
    if (n == 1)
        return WS_CLOSE_PROTOCOL;
    int c = (p[0] << 8) | p[1];
    /* 7.4.1-7.4.2: codes a peer may send; 1004-1006 and 1015 never go on the wire */
    int ok = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    if (!ok)
        return WS_CLOSE_PROTOCOL;
    if (!ws_utf8_valid(p + 2, n - 2))
        return WS_CLOSE_BAD_DATA;
    *code = c;
    return 0;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0; /* a continuation byte first, or 0xf8-0xff */
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}
