#!/usr/bin/env bash
# test_one_growth.sh — one growable buffer type (issue 13): every allocation in src/ that grows
# goes through src/core/buf.c (m2p_buf for bytes, m2p_vec and m2p_array_grow for arrays), which
# keeps a hard limit and reports allocation failure. A realloc() anywhere else, or a hand-rolled
# doubling of a capacity, fails this test; use core/buf.h instead.
#
# Allowed, each for a reason (file:what):
#  - src/core/buf.c: the one growth rule itself.
# A fixed-size table sized once by doubling a power of two (e.g. clip_tokenizer.c's merge hash
# table, `cap <<= 1` before one calloc) does not grow, so it is not matched: the patterns look
# for realloc and for doubling a variable named *cap*.
set -u
: "${M2P_SOURCE_DIR:?M2P_SOURCE_DIR is set by ctest}"
src="$M2P_SOURCE_DIR/src"
[ -f "$src/core/buf.c" ] || { echo "FAIL: $src/core/buf.c not found"; exit 1; }
allow='^src/core/buf\.c:'
# realloc and its relatives; a capacity doubled by hand (cap * 2, cap *= 2, cap += cap, 2 * cap).
pattern='\b(realloc|reallocarray|av_realloc|av_realloc_array)\s*\(|\b[a-z_>.-]*cap[a-z_]*\s*(\*\s*2\b|\*=\s*2\b|\+=\s*[a-z_>.-]*cap)|\b2\s*\*\s*[a-z_>.-]*cap[a-z_]*\s*[;)]'
found=$(cd "$M2P_SOURCE_DIR" && grep -rnE "$pattern" src --include='*.c' --include='*.h' |
    grep -vE "$allow" | grep -vE ':\s*(/\*|\*|//)')
# the check must see a real growth loop: core/buf.c's own must match the pattern
self=$(cd "$M2P_SOURCE_DIR" && grep -cE "$pattern" src/core/buf.c)
if [ "$self" -lt 1 ]; then
    echo "FAIL: the pattern no longer matches core/buf.c's own growth (found $self); fix the test"
    exit 1
fi
if [ -n "$found" ]; then
    echo "FAIL: hand-rolled growth outside src/core/buf.c (use m2p_buf, m2p_vec or m2p_array_grow"
    echo "from core/buf.h, with a hard limit):"
    echo "$found"
    exit 1
fi
echo "one growth rule: realloc and capacity doubling only in src/core/buf.c ($self there)"
