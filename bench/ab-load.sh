#!/usr/bin/env bash
# ab-load.sh — the load and the whole command of two mus2pic builds in the page-cache states a
# fresh process meets, rounds alternated (the machine is shared and noisy):
#   warm     the model's and the cache's files read into the page cache just before
#   cold     after dropping the page cache (echo 3 > /proc/sys/vm/drop_caches; needs root)
#   evicted  after another process touched EVICT_GIB of memory (default 21 of this machine's
#            24), which pushes the page cache out as a big program does
#   slow     cold, with reads throttled to SLOW_BPS bytes a second (a SATA SSD: 419430400) by
#            a blkio cgroup (v1 blkio.throttle or v2 io.max on the device of the cache folder);
#            only when SLOW_BPS is set
# Each round: both builds in each state at 256², 1 step, TAESD (the load printed by
# `generate -v`, and the wall time); then BIG_ROUNDS rounds of the whole 512², 4-step command
# with the full VAE decoder, evicted (and slow), wall time and peak RSS. Both builds must read the
# same weight-cache files: write them first with one generate of either build, e.g.
#   M2P_WEIGHT_CACHE_DIR=/var/tmp/m2p-wcache build/mus2pic generate --model M --dtype f32 ...
# Usage: bench/ab-load.sh MODEL DTYPE OLD_BIN NEW_BIN ROUNDS [BIG_ROUNDS]  (from the repo root)
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,18p "$0"; exit 2; }
model=$1 dtype=$2 old=$3 new=$4 rounds=$5 big=${6:-2}
evict=${EVICT_GIB:-21}
out=$(mktemp -d /tmp/m2p-ab-load.XXXXXX)
trap 'rm -rf "$out"' EXIT
drop() { sync && echo 3 >/proc/sys/vm/drop_caches; }
hog() { python3 -c "
b = bytearray($evict << 30)
for i in range(0, len(b), 4096): b[i] = 1"; }
gen() { # BIN LABEL ARGS...: "load X s, wall Y s, peak Z GiB"
    local bin=$1 label=$2
    shift 2
    /usr/bin/time -f "wall %e s, peak %M KB" "$bin" generate -v --model "$model" \
        --prompt "a red fox" --seed 1 --dtype "$dtype" --out "$out/$label.png" "$@" 2>&1 |
        sed -n 's/.* loaded in \([0-9.]*\)s.*/load \1 s,/p; /^wall/p' | tr '\n' ' '
}
slowcg=""
if [ -n "${SLOW_BPS:-}" ]; then # a cgroup whose reads from the cache folder's disk are throttled
    dev=$(lsblk -no MAJ:MIN "$(df --output=source "${M2P_WEIGHT_CACHE_DIR:-$HOME/.cache}" |
        tail -1)" | head -1 | tr -d ' ')
    pdev=$(lsblk -no PKNAME "$(df --output=source "${M2P_WEIGHT_CACHE_DIR:-$HOME/.cache}" |
        tail -1)" | head -1)
    [ -n "$pdev" ] && dev=$(lsblk -dno MAJ:MIN "/dev/$pdev" | tr -d ' ')
    if [ -d /sys/fs/cgroup/blkio ]; then
        slowcg=/sys/fs/cgroup/blkio/m2p-ab-slow
        mkdir -p $slowcg
        echo "$dev $SLOW_BPS" >$slowcg/blkio.throttle.read_bps_device
    else
        slowcg=/sys/fs/cgroup/m2p-ab-slow
        echo +io >/sys/fs/cgroup/cgroup.subtree_control
        mkdir -p $slowcg
        echo "$dev rbps=$SLOW_BPS" >$slowcg/io.max
    fi
fi
slow() { # ARGS of gen, in the throttled cgroup, after dropping the page cache
    drop
    bash -c "echo \$\$ >$slowcg/cgroup.procs; $(declare -f gen); model=$model dtype=$dtype \
        out=$out; $(printf '%q ' gen "$@")"
}
small=(--steps 1 --width 256 --height 256 --decoder taesd --taesd ../shared/fixtures/taesd/model)
for ((r = 1; r <= rounds; r++)); do
    for v in old new; do
        bin=$old
        [ $v = new ] && bin=$new
        cat "$model"/*/*.safetensors "${M2P_WEIGHT_CACHE_DIR:-$HOME/.cache/mus2pic/weights}"/*.m2pw \
            >/dev/null
        echo "round $r $v warm:    $(gen "$bin" $v "${small[@]}")"
        drop
        echo "round $r $v cold:    $(gen "$bin" $v "${small[@]}")"
        hog
        echo "round $r $v evicted: $(gen "$bin" $v "${small[@]}")"
        [ -z "$slowcg" ] || echo "round $r $v slow:    $(slow "$bin" $v "${small[@]}")"
    done
done
for ((r = 1; r <= big; r++)); do
    for v in new old; do
        bin=$old
        [ $v = new ] && bin=$new
        hog
        echo "round $r $v evicted, 512² 4 steps full VAE: $(gen "$bin" $v-512 --steps 4 --width 512 --height 512)"
        [ -z "$slowcg" ] ||
            echo "round $r $v slow, 512² 4 steps full VAE: $(slow "$bin" $v-512 --steps 4 --width 512 --height 512)"
    done
done
cmp "$out/old-512.png" "$out/new-512.png" && echo "512² images identical" || true
