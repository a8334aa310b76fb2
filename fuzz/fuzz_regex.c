/*
 * fuzz_regex.c — libFuzzer target for the backtracking regex engine (src/music/regex.c).
 *
 * Input: "<flags byte><pattern>\0<subject>". The pattern is compiled (bad syntax must give an
 * error, never a crash) and searched over the subject's code points from every start; group
 * bounds reported must lie inside the subject. The matcher remembers failed (node, position)
 * pairs, so a search is polynomial (it was exponential on a*a*a*...b until a run here found
 * one taking 14 s); subjects are capped at 64 code points because this target searches from
 * every start, each search up to nodes x positions x run length.
 */
#include "music/regex.h"
#include "music/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 512)
        return 0;
    static const char *const flag_sets[] = {"", "I", "M", "IM"};
    const char *flags = flag_sets[data[0] & 3];
    char *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *pattern = buf;
    size_t plen = strlen(pattern);
    const char *subject = plen + 1 < size - 1 ? buf + plen + 1 : "";
    rx *r = NULL;
    if (rx_compile(pattern, flags, &r) == 0 && r) {
        ustr u = {0};
        if (ustr_from_utf8(&u, subject) == 0) {
            size_t n = u.n < 64 ? u.n : 64;
            for (size_t start = 0; start <= n; start++) {
                size_t g[2 * (RX_MAX_GROUPS + 1)];
                if (rx_search(r, u.c, n, start, g) == 1) {
                    if (g[0] > g[1] || g[1] > n || g[0] < start)
                        abort();
                    for (int i = 1; i <= RX_MAX_GROUPS; i++)
                        if (g[2 * i] != (size_t)-1 && (g[2 * i] > g[2 * i + 1] || g[2 * i + 1] > n))
                            abort();
                }
            }
        }
        ustr_free(&u);
        rx_free(r);
    }
    free(buf);
    return 0;
}
