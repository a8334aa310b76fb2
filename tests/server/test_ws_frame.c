/*
 * test_ws_frame.c — src/server/ws_frame.c against RFC 6455 and RFC 3629: the frames of RFC 6455
 * 5.7's examples parsed and unmasked, server frame headers of each length form, the header
 * checks (masking, reserved bits and opcodes, control frames, fragmentation, the message limit
 * counted over fragments), close payloads and UTF-8 (RFC 3629 section 7's examples).
 */
#include <string.h>

#include "server/ws_frame.h"
#include "test.h"

static void check_rfc_examples(void)
{
    /* 5.7: a single-frame masked text message containing "Hello" */
    uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_INT(ws_frame_header_len(masked), 6);
    ws_frame f;
    ws_frame_parse(masked, &f);
    CHECK_INT(f.fin, 1);
    CHECK_INT(f.opcode, WS_OP_TEXT);
    CHECK_INT(f.masked, 1);
    CHECK_INT(f.len, 5);
    CHECK_INT(f.header_len, 6);
    ws_frame_unmask(masked + 6, 5, f.mask, 0);
    CHECK(!memcmp(masked + 6, "Hello", 5));
    ws_reassembly r = {0, 0, 64 * 1024};
    const char *why = NULL;
    CHECK_INT(ws_frame_check(&r, &f, &why), 0);
    CHECK_INT(r.len, 5);
    CHECK_INT(r.in_message, 0);

    /* unmasking in pieces (offset) gives the same bytes */
    uint8_t again[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    ws_frame_unmask(again, 3, f.mask, 0);
    ws_frame_unmask(again + 3, 2, f.mask, 3);
    CHECK(!memcmp(again, "Hello", 5));

    /* 5.7: the same message unmasked is what a server sends; from a client it is refused */
    uint8_t head[10];
    CHECK_INT(ws_frame_head(head, WS_OP_TEXT, 5), 2);
    CHECK(head[0] == 0x81 && head[1] == 0x05);
    uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    ws_frame_parse(unmasked, &f);
    ws_reassembly r2 = {0, 0, 64 * 1024};
    CHECK_INT(ws_frame_check(&r2, &f, &why), WS_CLOSE_PROTOCOL);
    CHECK(why && strstr(why, "masked"));

    /* 5.7: 256 bytes in one frame (16-bit length), 64 KiB in one frame (64-bit length) */
    CHECK_INT(ws_frame_head(head, WS_OP_BINARY, 256), 4);
    CHECK(head[0] == 0x82 && head[1] == 0x7e && head[2] == 0x01 && head[3] == 0x00);
    CHECK_INT(ws_frame_head(head, WS_OP_BINARY, 65536), 10);
    static const uint8_t len64[10] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    CHECK(!memcmp(head, len64, 10));
    CHECK_INT(ws_frame_head(head, WS_OP_TEXT, 125), 2);
    CHECK_INT(ws_frame_head(head, WS_OP_TEXT, 126), 4);
    CHECK_INT(ws_frame_head(head, WS_OP_TEXT, 65535), 4);
    CHECK_INT(ws_frame_header_len((const uint8_t[]){0x82, 0xff}), 14);
    CHECK_INT(ws_frame_header_len((const uint8_t[]){0x82, 0xfe}), 8);
    CHECK_INT(ws_frame_header_len((const uint8_t[]){0x82, 0x7f}), 10);
}

/* One header with the given first byte, masked, announcing len bytes. */
static int check_one(ws_reassembly *r, int b0, uint64_t len, const char **why)
{
    uint8_t h[14] = {(uint8_t)b0, 0x80 | 127};
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)(len >> (8 * (7 - i)));
    ws_frame f;
    ws_frame_parse(h, &f);
    return ws_frame_check(r, &f, why);
}

static void check_rules(void)
{
    const char *why;
    ws_reassembly r = {0, 0, 64 * 1024};
    /* the limit: exactly 64 KiB passes, one byte more does not (from the header alone) */
    CHECK_INT(check_one(&r, 0x81, 65536, &why), 0);
    ws_reassembly_done(&r);
    CHECK_INT(check_one(&r, 0x81, 65537, &why), WS_CLOSE_TOO_BIG);
    CHECK_INT(check_one(&r, 0x81, 256u << 20, &why), WS_CLOSE_TOO_BIG);
    CHECK_INT(check_one(&r, 0x81, UINT64_MAX >> 1, &why), WS_CLOSE_TOO_BIG);
    CHECK_INT(check_one(&r, 0x81, UINT64_MAX, &why), WS_CLOSE_PROTOCOL); /* top bit: 5.2 */
    CHECK_INT(r.len, 0);

    /* fragments count together; control frames may come between them (5.4) */
    CHECK_INT(check_one(&r, 0x01, 40000, &why), 0);
    CHECK_INT(r.in_message, 1);
    CHECK_INT(check_one(&r, 0x89, 3, &why), 0); /* a ping in the middle */
    CHECK_INT(check_one(&r, 0x00, 25536, &why), 0);
    CHECK_INT(r.len, 65536);
    CHECK_INT(check_one(&r, 0x80, 1, &why), WS_CLOSE_TOO_BIG);
    ws_reassembly_done(&r);
    CHECK_INT(check_one(&r, 0x01, 10, &why), 0);
    CHECK_INT(check_one(&r, 0x81, 10, &why), WS_CLOSE_PROTOCOL); /* new message inside one */
    ws_reassembly_done(&r);
    CHECK_INT(check_one(&r, 0x80, 10, &why), WS_CLOSE_PROTOCOL); /* nothing to continue */

    /* control frames: at most 125 bytes, never fragmented; reserved opcodes and bits */
    CHECK_INT(check_one(&r, 0x89, 125, &why), 0);
    CHECK_INT(check_one(&r, 0x89, 126, &why), WS_CLOSE_PROTOCOL);
    CHECK_INT(check_one(&r, 0x09, 1, &why), WS_CLOSE_PROTOCOL);
    CHECK_INT(check_one(&r, 0x88, 2, &why), 0);
    CHECK_INT(check_one(&r, 0x8a, 0, &why), 0);
    for (int op = 3; op <= 7; op++)
        CHECK_INT(check_one(&r, 0x80 | op, 1, &why), WS_CLOSE_PROTOCOL);
    for (int op = 0xb; op <= 0xf; op++)
        CHECK_INT(check_one(&r, 0x80 | op, 1, &why), WS_CLOSE_PROTOCOL);
    CHECK_INT(check_one(&r, 0xc1, 1, &why), WS_CLOSE_PROTOCOL); /* RSV1 (no extension) */
    CHECK_INT(check_one(&r, 0x91, 1, &why), WS_CLOSE_PROTOCOL); /* RSV3 */
    CHECK_INT(check_one(&r, 0x82, 1, &why), WS_CLOSE_UNSUPPORTED);
    CHECK_INT(r.len, 0);
}

static void check_close(void)
{
    int code = 0;
    CHECK_INT(ws_close_parse(NULL, 0, &code), 0);
    CHECK_INT(code, 1005); /* 7.1.5: no status code */
    CHECK_INT(ws_close_parse((const uint8_t *)"\x03", 1, &code), WS_CLOSE_PROTOCOL);
    CHECK_INT(ws_close_parse((const uint8_t *)"\x03\xe8ok", 4, &code), 0);
    CHECK_INT(code, 1000);
    CHECK_INT(ws_close_parse((const uint8_t *)"\x0f\xa0", 2, &code), 0); /* 4000: private use */
    CHECK_INT(code, 4000);
    /* 7.4.1: 1005, 1006 and 1015 are never sent; 999 and 5000 are not codes */
    const char *bad[] = {"\x03\xed", "\x03\xee", "\x03\xf7", "\x03\xe7", "\x13\x88", "\x03\xec"};
    for (int i = 0; i < 6; i++)
        CHECK_INT(ws_close_parse((const uint8_t *)bad[i], 2, &code), WS_CLOSE_PROTOCOL);
    CHECK_INT(ws_close_parse((const uint8_t *)"\x03\xe8\xc0\xaf", 4, &code), WS_CLOSE_BAD_DATA);

    uint8_t p[WS_MAX_CONTROL];
    CHECK_INT(ws_close_payload(p, 1009, "too big"), 9);
    CHECK(p[0] == 0x03 && p[1] == 0xf1 && !memcmp(p + 2, "too big", 7));
    char longer[300];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    CHECK_INT(ws_close_payload(p, 1002, longer), WS_MAX_CONTROL); /* cut to fit 5.5 */
}

static void check_utf8(void)
{
    /* RFC 3629 section 7 */
    const char *good[] = {"\x41\xe2\x89\xa2\xce\x91\x2e",
                          "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
                          "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                          "\xef\xbb\xbf\xf0\xa3\x8e\xb4",
                          "",
                          "plain",
                          "\xf4\x8f\xbf\xbf",
                          "\xed\x9f\xbf",
                          "\xee\x80\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_INT(ws_utf8_valid((const uint8_t *)good[i], strlen(good[i])), 1);
    const char *bad[] = {"\xc0\xaf",
                         "\xe0\x80\xaf",
                         "\xf0\x80\x80\xaf",
                         "\xed\xa0\x80",
                         "\xed\xbf\xbf",
                         "\xf4\x90\x80\x80",
                         "\xe2\x82",
                         "\x80",
                         "\xff",
                         "\xf8\x88\x80\x80\x80",
                         "a\xc3",
                         "\xc3\x28"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(ws_utf8_valid((const uint8_t *)bad[i], strlen(bad[i])), 0);
    CHECK_INT(ws_utf8_valid((const uint8_t *)"a\0b", 3), 1); /* U+0000 is a character */
}

int main(void)
{
    check_rfc_examples();
    check_rules();
    check_close();
    check_utf8();
    TEST_DONE();
}
