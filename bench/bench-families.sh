#!/usr/bin/env bash
# bench-families.sh — speed and peak memory of the other model families (issue 8, "Numbers") on
# full-size random-weight models from tools/make-random-model --family (speed does not depend on
# the weight values): SDXL Turbo 512² 1 step, SDXL UNet steps at 512² and 1024², SDXL Lightning
# 1024² 4 steps, SD 2.1 768² 20 steps with CFG, SD 1.4 512² 20 PNDM steps with CFG.
# Each command runs under /usr/bin/time (wall, peak RSS, cpu share); `generate -v` prints the
# load time and a line per step, from which the per-step time is taken (mean of the steps after
# the first). The load average is printed before each command: the numbers are only comparable
# at similar load.
#
#   bench/bench-families.sh [BUILD_DIR]          (default build; Release recommended)
#   M2P_BENCH_MODELS=/var/tmp/m2p-models         where the models are written (~18 GB at fp16;
#                                                made once, skipped when present)
#   DTYPE=bf16 (default) | f32                   engine compute type
#   ONLY="turbo unet lightning sd21 sd14"        a subset
set -u
BUILD="${1:-build}"
M="${M2P_BENCH_MODELS:-/var/tmp/m2p-models}"
DTYPE="${DTYPE:-bf16}"
ONLY="${ONLY:-turbo unet lightning sd21 sd14}"
BIN="$BUILD/mus2pic"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PROMPT="a concert poster, neon city at night, synthwave"
mkdir -p "$M"

make_model() { # family folder
    [ -f "$M/$2/.complete" ] && return 0
    rm -rf "${M:?}/$2"
    echo "== make-random-model --family $1 --out $M/$2"
    /usr/bin/time -f "   wall %e s, max RSS %M KB" "$BUILD/make-random-model" --family "$1" \
        --out "$M/$2" 2>&1 | grep -v '%' && touch "$M/$2/.complete"
}

# label, command...: load average, the command's stderr summary, wall / RSS, per-step time
measure() {
    local label="$1"; shift
    echo "== $label"
    echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "   \$ $*"
    /usr/bin/time -f "TIME wall %e s, max RSS %M KB, cpu %P" "$@" >"$OUT/stdout" 2>"$OUT/stderr"
    local rc=$?
    grep -E "loaded in|TIME|error|mus2pic" "$OUT/stderr" | sed 's/^/   /'
    [ "$rc" = 0 ] || { echo "   FAILED (exit $rc)"; tail -3 "$OUT/stderr"; return; }
    # "generate: k/n step s/S (12.3s)": per-step time from consecutive step lines
    awk -F'[()]' '/ step [0-9]+\/[0-9]+ \(/ { t = $2 + 0; if (n++) { d = t - prev; s += d;
        if (d > mx) mx = d } prev = t } /decoding/ { dec = $2 + 0 } /done/ { done = $2 + 0 }
        END { if (n > 1) printf "   steps: %d, per step %.2f s (mean of steps 2..%d, max %.2f s)\n", n, s / (n - 1), n, mx;
              if (dec) printf "   decode: %.2f s (VAE)\n", done - dec }' "$OUT/stderr"
}

gen() { # model folder, then generate options
    local model="$1"; shift
    measure "$*" "$BIN" generate -v --dtype "$DTYPE" --model "$M/$model" --prompt "$PROMPT" \
        --seed 1 --out "$OUT/x.png" "$@"
}

echo "bench-families: $(date -u '+%F %T') UTC, $(nproc) cores, dtype $DTYPE, $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null)"
case " $ONLY " in *" turbo "*|*" unet "*|*" lightning "*) make_model sdxl-turbo sdxl-turbo ;; esac
case " $ONLY " in *" sd21 "*) make_model sd2 sd21 ;; esac
case " $ONLY " in *" sd14 "*) make_model sd14 sd14 ;; esac

for what in $ONLY; do
    case "$what" in
    turbo) # its own config: Euler ancestral, trailing
        gen sdxl-turbo --steps 1 --guidance 0 --width 512 --height 512 ;;
    unet)
        measure "SDXL UNet step, batch 1, 512 and 1024" "$BUILD/bench_engine" \
            --model "$M/sdxl-turbo" --sizes 512,1024 --dtype "$DTYPE" --only-unet --no-batch4 --no-images \
            --reps 1
        sed 's/^/   /' "$OUT/stdout" ;;
    lightning) # SDXL networks with Lightning's sampler: Euler, trailing (from_config over the
               # turbo config keeps its trailing spacing), 4 steps, no CFG
        gen sdxl-turbo --scheduler euler --steps 4 --guidance 0 --width 1024 --height 1024 ;;
    sd21) # its own config: DDIM, v-prediction; CFG 7.5 runs the UNet at batch 2
        gen sd21 --steps 20 --guidance 7.5 --width 768 --height 768 ;;
    sd14) # its own config: PNDM (PLMS), 20 steps = 21 UNet calls at batch 2
        gen sd14 --steps 20 --guidance 7.5 --width 512 --height 512 ;;
    esac
done
