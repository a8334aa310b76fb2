#!/usr/bin/env bash
# ab-generate.sh — two mus2pic binaries, the same `generate` command, run alternately (A B A B
# ...) so that host noise falls on both; prints each run's wall time and peak RSS, then the
# medians. Usage: bench/ab-generate.sh A_BIN B_BIN ROUNDS [generate arguments...]
# e.g. bench/ab-generate.sh /tmp/oldb/mus2pic build/mus2pic 2 --model /var/tmp/m2p-random-lcm \
#        --prompt "a red fox" --steps 4 --width 512 --height 512 --dtype f32
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,6p "$0"; exit 2; }
a=$1 b=$2 rounds=$3
shift 3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
    for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        /usr/bin/time -f "%e %M" -o "$out/t" "$bin" generate "$@" --out "$out/img.png" >/dev/null 2>"$out/err" ||
            { cat "$out/err"; exit 1; }
        read -r wall kb <"$out/t"
        echo "$side $wall $kb" >>"$out/runs"
        awk -v s="$side" -v i="$i" -v w="$wall" -v k="$kb" \
            'BEGIN { printf "%s round %d: %6.2f s  peak RSS %.2f GiB\n", s, i, w, k / 1048576 }'
    done
done
for side in A B; do
    walls=$(awk -v s="$side" '$1 == s { print $2 }' "$out/runs" | sort -n)
    peak=$(awk -v s="$side" '$1 == s { print $3 }' "$out/runs" | sort -n | tail -1)
    echo "$walls" | awk -v s="$side" -v k="$peak" '{ w[NR] = $1 }
        END { m = int((NR + 1) / 2); med = NR % 2 ? w[m] : (w[m] + w[m + 1]) / 2;
              printf "%s median: %.2f s, peak RSS %.2f GiB (%d runs)\n", s, med, k / 1048576, NR }'
done
