#!/usr/bin/env bash
# load-cache.sh — model load time of a fresh `mus2pic generate` process with and without the
# on-disk weight cache, in the page-cache states a user meets, rounds alternated:
#   write   the load that converts and writes the cache (the first one ever)
#   disk    the load right after it (the cache file was written with O_DIRECT: read from disk)
#   warm    the file in the page cache
#   cold    after dropping the page cache (echo 3 > /proc/sys/vm/drop_caches; needs root)
#   evicted after another process touched EVICT_GIB of memory (default 21 of this machine's
#           24), which pushes the page cache out as a big program does
# "none" is the same load with --no-weight-cache (conversion from the safetensors each time),
# measured in the same state right after.
# Usage: bench/load-cache.sh MODEL DTYPE ROUNDS [BIN]    (run from the repository root)
# e.g.   bench/load-cache.sh /var/tmp/m2p-random-lcm f32 3
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,13p "$0"; exit 2; }
model=$1 dtype=$2 rounds=$3 bin=${4:-build/mus2pic}
evict=${EVICT_GIB:-21}
cache=$(mktemp -d /var/tmp/m2p-load-cache.XXXXXX)
trap 'rm -rf "$cache"' EXIT
export M2P_WEIGHT_CACHE_DIR=$cache

load() { # prints the "loaded in" seconds of one generate
    "$bin" generate -v --model "$model" --prompt "a red fox" --steps 1 --dtype "$dtype" --seed 1 \
        --width 256 --height 256 --decoder taesd --taesd ../shared/fixtures/taesd/model \
        --out "$cache/img.png" "$@" 2>&1 | sed -n 's/.* loaded in \([0-9.]*\)s.*/\1/p'
}
drop() { sync && echo 3 >/proc/sys/vm/drop_caches; }
hog() { python3 -c "
b = bytearray($evict << 30)
for i in range(0, len(b), 4096): b[i] = 1"; }

for ((r = 1; r <= rounds; r++)); do
    rm -f "$cache"/*.m2pw
    drop
    w=$(load)
    echo "round $r: write $w  disk $(load)"
    load --no-weight-cache >/dev/null # both files in the page cache
    echo "round $r: warm $(load)  none-warm $(load --no-weight-cache)"
    drop
    c=$(load)
    drop
    echo "round $r: cold $c  none-cold $(load --no-weight-cache)"
    hog
    e=$(load)
    hog
    echo "round $r: evicted $e  none-evicted $(load --no-weight-cache)"
done
ls -l "$cache"/*.m2pw | awk '{ s += $5 } END { printf "cache files: %.2f GiB\n", s / 1073741824 }'
