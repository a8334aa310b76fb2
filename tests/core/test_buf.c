/*
 * test_buf.c — the growable buffer (src/core/buf.c): appends of every size keep the bytes and
 * the NUL, printf appends, the hard limit refuses the append that would cross it (all or
 * nothing, M2P_ETOOBIG naming the limit) while filling exactly to it works, sizes near SIZE_MAX
 * do not overflow, detach hands over the bytes and leaves an empty buffer.
 */
#include <stdint.h>

#include "core/buf.h"
#include "test.h"

int main(void)
{
    m2p_buf b;
    m2p_buf_init(&b, 0);
    CHECK(b.data == NULL && b.len == 0);
    char want[5000];
    for (int i = 0; i < 5000; i++) {
        want[i] = (char)('a' + i % 26);
        CHECK_INT(m2p_buf_append(&b, &want[i], 1), 0);
    }
    CHECK_INT(b.len, 5000);
    CHECK(b.cap >= 5001 && b.cap <= 2 * 5001);
    CHECK(memcmp(b.data, want, 5000) == 0 && b.data[5000] == '\0');
    CHECK_INT(m2p_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    CHECK_STR(b.data + 5000, "-42-x");
    CHECK_INT(m2p_buf_append(&b, NULL, 0), 0);
    char *d = m2p_buf_detach(&b);
    CHECK(d && strlen(d) == 5005);
    free(d);
    CHECK(b.data == NULL && b.len == 0);
    d = m2p_buf_detach(&b); /* empty: "" */
    CHECK_STR(d, "");
    free(d);

    /* the limit: exactly full is fine, one more byte is refused and changes nothing */
    m2p_buf_init(&b, 10);
    CHECK_INT(m2p_buf_puts(&b, "0123456"), 0);
    CHECK_INT(m2p_buf_puts(&b, "7890"), M2P_ETOOBIG);
    CHECK(strstr(m2p_errmsg(), "limit of 10 bytes") != NULL);
    CHECK_STR(b.data, "0123456");
    CHECK_INT(m2p_buf_puts(&b, "789"), 0);
    CHECK_STR(b.data, "0123456789");
    CHECK(b.cap <= 11);
    CHECK_INT(m2p_buf_printf(&b, "%s", "x"), M2P_ETOOBIG);
    CHECK_INT(b.len, 10);
    CHECK_INT(m2p_buf_reserve(&b, SIZE_MAX), M2P_ETOOBIG);
    m2p_buf_free(&b);
    CHECK(b.data == NULL && b.limit == 10);

    /* no limit: a size near SIZE_MAX is refused without overflow, not attempted */
    m2p_buf_init(&b, 0);
    CHECK_INT(m2p_buf_puts(&b, "ab"), 0);
    CHECK(m2p_buf_reserve(&b, SIZE_MAX - 1) != 0);
    CHECK_STR(b.data, "ab");
    m2p_buf_free(&b);
    TEST_DONE();
}
