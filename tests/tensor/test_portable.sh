#!/usr/bin/env bash
# test_portable.sh — the default build runs on any x86-64: outside the AVX2 and AVX-512 builds
# of the vector kernels (CMakeFiles/m2p_kernels_avx2.dir and m2p_kernels_avx512.dir, chosen at
# run time by dispatch.c), no
# function of the library or the programs uses an AVX or AVX-512 register (ymm, zmm), except
# functions named for the extension they were compiled for (*_f16c, *_avx2, *_avx512: target
# attributes, called only after a CPU check). Checked on the objects of this build with objdump. A -DM2P_NATIVE=ON build is tuned for its CPU on
# purpose: reported as a skip.
set -u
: "${M2P_BUILD_DIR:?M2P_BUILD_DIR is set by ctest}"
if grep -q '^M2P_NATIVE:BOOL=ON' "$M2P_BUILD_DIR/CMakeCache.txt"; then
    echo "SKIP: -DM2P_NATIVE=ON build (tuned for this CPU on purpose)"; exit 77
fi
# The object lists of this configuration (CMakeLists.txt writes them with file(GENERATE)).
portable="$M2P_BUILD_DIR/m2p_objects_portable.txt" avx512="$M2P_BUILD_DIR/m2p_objects_avx512.txt"
avx2="$M2P_BUILD_DIR/m2p_objects_avx2.txt"
[ -s "$portable" ] && [ -s "$avx2" ] && [ -s "$avx512" ] || { echo "FAIL: no object lists in $M2P_BUILD_DIR"; exit 1; }
fails=0 n=0
while IFS= read -r o; do
    [ -n "$o" ] || continue
    n=$((n + 1))
    bad=$(objdump -d --no-show-raw-insn "$o" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; next }
        /%[yz]mm[0-9]/ && fn !~ /_(f16c|avx2|avx512)(\.[a-z0-9.]+)?>:$/ { print fn ": " $0; n++ }
        n >= 3 { exit }')
    if [ -n "$bad" ]; then
        echo "FAIL: $o uses AVX/AVX-512 registers outside a dispatched function:"
        echo "$bad"
        fails=$((fails + 1))
    fi
done <"$portable"
xargs objdump -d --no-show-raw-insn <"$avx512" | grep -qE '%zmm[0-9]' ||
    { echo "FAIL: the AVX-512 kernels use no zmm register"; fails=$((fails + 1)); }
# the AVX2 build is for CPUs without AVX-512: ymm registers, and no zmm or EVEX-only one
xargs objdump -d --no-show-raw-insn <"$avx2" | grep -qE '%ymm[0-9]' ||
    { echo "FAIL: the AVX2 kernels use no ymm register"; fails=$((fails + 1)); }
if xargs objdump -d --no-show-raw-insn <"$avx2" | grep -qE '%zmm[0-9]|%[xy]mm(1[6-9]|2[0-9]|3[01])|%k[0-7]'; then
    echo "FAIL: the AVX2 kernels use AVX-512 registers"; fails=$((fails + 1))
fi
[ "$n" -gt 50 ] || { echo "FAIL: only $n objects found"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] && echo "portable: $n objects use no ymm/zmm outside the AVX2 and AVX-512 kernels"
exit "$fails"
