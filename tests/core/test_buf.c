/*
 * test_buf.c — the growable buffer (src/core/buf.c): appends of every size keep the bytes and
 * the NUL, printf appends, the hard limit refuses the append that would cross it (all or
 * nothing, M2P_ETOOBIG naming the limit) while filling exactly to it works, sizes near SIZE_MAX
 * do not overflow, detach hands over the bytes and leaves an empty buffer. The typed array
 * (m2p_vec) keeps its elements through growth, refuses the element past its limit the same way,
 * refuses element counts whose byte size would overflow, and detaches NULL when empty.
 */
#include <stdint.h>
#include <stdio.h>

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

    /* m2p_vec: structs pushed one at a time keep their values as capacity doubles */
    typedef struct {
        int64_t id;
        char name[20];
    } row;
    m2p_vec v;
    m2p_vec_init(&v, sizeof(row), 1000);
    for (int i = 0; i < 1000; i++) {
        row r = {.id = 7 * i};
        snprintf(r.name, sizeof r.name, "row %d", i);
        CHECK_INT(m2p_vec_push(&v, &r), 0);
    }
    CHECK_INT(v.n, 1000);
    CHECK(v.cap == 1000); /* doubling capped at the limit */
    const row *rows = v.data;
    CHECK(rows[0].id == 0 && rows[999].id == 6993);
    CHECK_STR(rows[500].name, "row 500");
    row extra = {.id = -1};
    CHECK_INT(m2p_vec_push(&v, &extra), M2P_ETOOBIG);
    CHECK(strstr(m2p_errmsg(), "limit of 1000 items") != NULL);
    CHECK_INT(v.n, 1000);
    CHECK_INT(m2p_vec_reserve(&v, SIZE_MAX), M2P_ETOOBIG);
    size_t n = 0;
    row *got = m2p_vec_detach(&v, &n);
    CHECK(got && n == 1000 && got[999].id == 6993);
    free(got);
    CHECK(v.data == NULL && v.n == 0 && v.limit == 1000);
    CHECK(m2p_vec_detach(&v, &n) == NULL && n == 0);

    /* reserve, then write in place (as a decoder does) */
    m2p_vec_init(&v, sizeof(float), 0);
    CHECK_INT(m2p_vec_reserve(&v, 100000), 0);
    CHECK(v.cap >= 100000);
    float *f = v.data;
    for (int i = 0; i < 100000; i++)
        f[i] = (float)i;
    v.n = 100000;
    CHECK_INT(m2p_vec_reserve(&v, 1), 0);
    f = v.data;
    CHECK(f[99999] == 99999.0f);
    /* no limit but memory: a count whose bytes overflow size_t is refused, not wrapped */
    CHECK_INT(m2p_vec_reserve(&v, SIZE_MAX / 2), M2P_ETOOBIG);
    CHECK_INT(v.n, 100000);
    m2p_vec_free(&v);
    CHECK(v.data == NULL && v.n == 0);
    TEST_DONE();
}
