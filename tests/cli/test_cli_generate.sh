#!/usr/bin/env bash
# test_cli_generate.sh — `mus2pic generate / tokenize / inspect / models list` on the sd-tiny
# model: outputs, seeds and variations, the golden run reproduced through --latents/--noise/
# --raw-out, and bad input (exit 2 for usage, 1 for runtime, never a partial output file).
set -u
BIN="${M2P_BIN:?}"
MODEL="${M2P_FIXTURES:?}/sd-tiny/model"
GOLD="$M2P_FIXTURES/sd-tiny/golden/pipeline.safetensors"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HF_HOME="$T/hf"
fail=0
check() { # description, then a command that must succeed
    local what="$1"; shift
    if ! "$@"; then echo "FAIL: $what" >&2; fail=$((fail + 1)); fi
}
expect_exit() { # code, description, args... ; no file may appear in $T/out
    local code="$1" what="$2"; shift 2
    rm -rf "$T/out"; mkdir -p "$T/out"
    "$BIN" "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    if [ "$rc" != "$code" ]; then
        echo "FAIL: $what: exit $rc, expected $code; stderr: $(cat "$T/stderr")" >&2; fail=$((fail + 1))
    fi
    if [ -n "$(ls -A "$T/out")" ]; then
        echo "FAIL: $what: left files: $(ls "$T/out")" >&2; fail=$((fail + 1))
    fi
    if [ "$code" != 0 ] && [ ! -s "$T/stderr" ]; then
        echo "FAIL: $what: no error message" >&2; fail=$((fail + 1))
    fi
}
G=(generate --model "$MODEL" --width 64 --height 64 --steps 2)

# a plain run: PNG written, seed printed
"$BIN" "${G[@]}" --prompt "a cat" --seed 11 --out "$T/a.png" --raw-out "$T/a.safetensors" \
    >"$T/o1" 2>"$T/e1"
check "generate exit 0" test $? = 0
check "png written" test "$(head -c 8 "$T/a.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a
check "seed printed" grep -q "seed: 11" "$T/e1"
check "output line" grep -q "a.png  seed 11" "$T/o1"
# same seed twice = same bytes; a random seed is printed when none is given
"$BIN" "${G[@]}" --prompt "a cat" --seed 11 --out "$T/b.png" >/dev/null 2>&1
check "same seed, same bytes" cmp -s "$T/a.png" "$T/b.png"
"$BIN" "${G[@]}" --prompt "a cat" --out "$T/r.png" >/dev/null 2>"$T/e2"
check "random seed printed" grep -Eq "^seed: [0-9]+$" "$T/e2"
# variations: FILE-1.png, FILE-2.png; variation 2 == a single run with seed + 1. The batch of 2
# runs the UNet's GEMMs at twice the rows, and oneDNN may pick other kernels for them (it does on
# AVX2-only CPUs), so variation 2 is the seed-12 picture up to f32 rounding: compared as raw
# floats, where a wrong seed or a mixed-up batch row differs by tenths.
"$BIN" "${G[@]}" --prompt "a cat" --seed 11 --variations 2 --out "$T/v.png" \
    --raw-out "$T/v.safetensors" >/dev/null 2>&1
check "variation files" test -f "$T/v-1.png" -a -f "$T/v-2.png" -a ! -f "$T/v.png"
"$BIN" "${G[@]}" --prompt "a cat" --seed 12 --out "$T/c.png" --raw-out "$T/c.safetensors" \
    >/dev/null 2>&1
same_image() { # raw A's batch row I against raw B's only row: max abs difference <= 1e-4
  python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
def image(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    meta = {k: v for k, v in json.loads(b[8:8 + n]).items() if k != '__metadata__'}
    t = next(iter(meta.values())); lo, hi = t['data_offsets']
    return t['shape'], struct.unpack('<%df' % ((hi - lo) // 4), b[8 + n + lo:8 + n + hi])
(sa, a), (sb, b) = image(sys.argv[1]), image(sys.argv[2])
per = len(b); row = int(sys.argv[3])
if sa[1:] != sb[1:] or sb[0] != 1 or len(a) < (row + 1) * per:
    print('shapes %s %s' % (sa, sb), file=sys.stderr); sys.exit(1)
worst = max(abs(x - y) for x, y in zip(a[row * per:(row + 1) * per], b))
print('batch row %d vs single run: max abs diff %.3g' % (row, worst))
sys.exit(0 if worst <= 1e-4 else 1)
PY
}
check "variation 1 = seed 11" same_image "$T/v.safetensors" "$T/a.safetensors" 0
check "variation 2 = seed 12" same_image "$T/v.safetensors" "$T/c.safetensors" 1
not() { ! "$@"; }
check "variation 2 is not seed 11" not same_image "$T/v.safetensors" "$T/a.safetensors" 1
# negative prompt: accepted, said to be ignored, same image
"$BIN" "${G[@]}" --prompt "a cat" --seed 11 --negative-prompt "ugly" --out "$T/n.png" >/dev/null 2>"$T/e3"
check "negative prompt note" grep -q "ignore the negative prompt" "$T/e3"
# same pixels (the files differ: their text chunks name the negative prompt)
same_pixels() {
  python3 - "$1" "$2" <<'PY'
import sys, zlib
def pixels(p):
    b = open(p, 'rb').read(); at = 8; idat = b''
    while at < len(b):
        n = int.from_bytes(b[at:at + 4], 'big'); t = b[at + 4:at + 8]
        if t == b'IDAT': idat += b[at + 8:at + 8 + n]
        at += 12 + n
    return zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY
}
check "negative prompt ignored" same_pixels "$T/n.png" "$T/a.png"
# -v off a terminal: a line per step
"$BIN" "${G[@]}" --prompt "a cat" --seed 11 -v --out "$T/p.png" >/dev/null 2>"$T/e4"
check "progress lines" test "$(grep -c 'step [0-9]/2' "$T/e4")" = 2

# the golden diffusers run through --latents / --noise / --raw-out
python3 - "$GOLD" "$T" <<'PY'
import json, struct, sys
gold, t = sys.argv[1], sys.argv[2]
raw = open(gold, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); base = 8 + n
def get(name):
    a, b = hdr[name]['data_offsets']; return raw[base + a:base + b]
def write(path, name, shape, data):
    h = json.dumps({name: {'dtype': 'F32', 'shape': shape, 'data_offsets': [0, len(data)]}}).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
write(t + '/lat.safetensors', 'latents', [1, 4, 8, 8], get('latents_in'))
write(t + '/noise.safetensors', 'noise', [3, 1, 4, 8, 8], get('noise0') + get('noise1') + get('noise2'))
write(t + '/badlat.safetensors', 'latents', [2, 4, 8, 8], get('latents_in') * 2)
PY
"$BIN" generate --model "$MODEL" --width 64 --height 64 --steps 4 --guidance 8.5 \
    --prompt "Self-portrait oil painting, a beautiful cyborg with golden hair, 8k" \
    --latents "$T/lat.safetensors" --noise "$T/noise.safetensors" --raw-out "$T/raw.safetensors" \
    --out "$T/g.png" >/dev/null 2>"$T/e5"
check "golden run exit 0 ($(cat "$T/e5" | tail -1))" test -f "$T/g.png"
python3 - "$GOLD" "$T/raw.safetensors" <<'PY' || fail=$((fail + 1))
import json, struct, sys
def load(p):
    raw = open(p, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw, 8 + n
gh, graw, gb = load(sys.argv[1]); rh, rraw, rb = load(sys.argv[2])
assert rh['image']['shape'] == [1, 3, 64, 64] and rh['image']['dtype'] == 'F32', rh
a, b = gh['image_np']['data_offsets']; want = struct.unpack('<%df' % (64 * 64 * 3), graw[gb + a:gb + b])
a, b = rh['image']['data_offsets']; got = struct.unpack('<%df' % (64 * 64 * 3), rraw[rb + a:rb + b])
worst = max(abs(got[c * 4096 + p] - want[p * 3 + c]) for p in range(4096) for c in range(3))
print('raw-out vs diffusers image_np: max abs err %.3g' % worst)
if not worst <= 2e-5:
    print('FAIL: raw-out differs from image_np', file=sys.stderr); sys.exit(1)
PY

# usage errors: exit 2, no output
O="$T/out/x.png"
expect_exit 2 "steps 0" "${G[@]}" --prompt x --steps 0 --out "$O"
expect_exit 2 "steps 51" "${G[@]}" --prompt x --steps 51 --out "$O"
expect_exit 2 "variations 0" "${G[@]}" --prompt x --variations 0 --out "$O"
expect_exit 2 "variations 9" "${G[@]}" --prompt x --variations 9 --out "$O"
expect_exit 2 "width not /8" "${G[@]}" --prompt x --width 100 --out "$O"
expect_exit 2 "width too big" "${G[@]}" --prompt x --width 4096 --out "$O"
expect_exit 2 "height too small" "${G[@]}" --prompt x --height 32 --out "$O"
expect_exit 2 "guidance nan" "${G[@]}" --prompt x --guidance nan --out "$O"
expect_exit 2 "steps not a number" "${G[@]}" --prompt x --steps four --out "$O"
expect_exit 2 "negative seed" "${G[@]}" --prompt x --seed -1 --out "$O"
expect_exit 2 "no prompt" "${G[@]}" --out "$O"
expect_exit 2 "no out" "${G[@]}" --prompt x
expect_exit 2 "unknown option" "${G[@]}" --prompt x --bogus 1 --out "$O"
expect_exit 2 "latents wrong shape" "${G[@]}" --prompt x --latents "$T/badlat.safetensors" --out "$O"
grep -q "shape \[1,4,8,8\]" "$T/stderr" || { echo "FAIL: latents shape message" >&2; fail=$((fail + 1)); }
expect_exit 2 "noise wrong steps" "${G[@]}" --prompt x --noise "$T/noise.safetensors" --out "$O"
expect_exit 2 "out folder missing" "${G[@]}" --prompt x --out "$T/out/nodir/x.png"
expect_exit 2 "dtype f16" "${G[@]}" --prompt x --dtype f16 --out "$O"
# bf16 compute: a clear error where oneDNN sees no avx512_bf16/AMX (simulated by capping its
# ISA), an image where the CPU has it
ONEDNN_MAX_CPU_ISA=AVX2 expect_exit 1 "bf16 without avx512_bf16" "${G[@]}" --prompt x --dtype bf16 --out "$O"
grep -q "no avx512_bf16 or AMX" "$T/stderr" || { echo "FAIL: bf16 message: $(cat "$T/stderr")" >&2; fail=$((fail + 1)); }
if grep -qw avx512_bf16 /proc/cpuinfo; then
    "$BIN" "${G[@]}" --prompt "a cat" --seed 11 --dtype bf16 --out "$T/bf.png" -v >/dev/null 2>"$T/e6"
    # on failure the whole tail: a sanitizer's report is 20 lines, its last says only ABORTING
    test -s "$T/bf.png" || { echo "FAIL: bf16 run: $(tail -30 "$T/e6")" >&2; fail=$((fail + 1)); }
    check "bf16 load line" grep -q "loaded in .*(bf16)" "$T/e6"
else
    echo "SKIP: bf16 run: this CPU has no avx512_bf16"; skipped=1
fi
# runtime errors: exit 1, no output
expect_exit 1 "missing model" generate --model "$T/nope" --prompt x --out "$O"
expect_exit 1 "unknown hub id" generate --model someone/nothing --prompt x --out "$O"
grep -q "models fetch" "$T/stderr" || { echo "FAIL: fetch hint" >&2; fail=$((fail + 1)); }
mkdir -p "$T/broken"; for p in scheduler text_encoder tokenizer vae model_index.json; do ln -s "$MODEL/$p" "$T/broken/$p"; done
mkdir -p "$T/broken/unet"; cp "$MODEL/unet/config.json" "$T/broken/unet/"
head -c 100000 "$MODEL/unet/diffusion_pytorch_model.safetensors" >"$T/broken/unet/diffusion_pytorch_model.safetensors"
expect_exit 1 "truncated unet" generate --model "$T/broken" --prompt x --width 64 --height 64 --out "$O"
grep -q "diffusion_pytorch_model.safetensors" "$T/stderr" || { echo "FAIL: truncated file not named: $(cat "$T/stderr")" >&2; fail=$((fail + 1)); }
M2P_MEMORY_LIMIT=1000000 expect_exit 1 "too large for memory" generate --model "$MODEL" --prompt x --width 1024 --height 1024 --out "$O"
grep -q "memory" "$T/stderr" || { echo "FAIL: memory message" >&2; fail=$((fail + 1)); }

# tokenize: 77 ids on one line
ids=$("$BIN" tokenize --model "$MODEL" "a photo of a cat")
check "tokenize 77 ids" test "$(echo "$ids" | wc -w)" = 77
check "tokenize ids" test "$(echo "$ids" | cut -d' ' -f1-8)" = "49406 320 1125 539 320 2368 49407 49407"
expect_exit 2 "tokenize without text" tokenize --model "$MODEL"
expect_exit 1 "tokenize missing model" tokenize --model "$T/nope" "x"
# inspect: parts, dtypes, parameter counts, skipped VAE encoder
"$BIN" inspect "$MODEL" >"$T/insp" 2>&1
check "inspect exit 0" test $? = 0
check "inspect dtypes" grep -q "F32: 685 tensors, 831572 parameters" "$T/insp"
check "inspect skipped encoder" grep -q "encoder.conv_in.weight F32 \[16,3,3,3\]" "$T/insp"
expect_exit 1 "inspect broken" inspect "$T/broken"
expect_exit 2 "inspect no arg" inspect
# models list: all six runnable with the original's defaults, none installed in this empty cache
"$BIN" models list >"$T/ml"
check "models list rows" test "$(grep -c '/' "$T/ml")" = 6
check "lcm runnable" grep -Eq "^lcm +SimianLuo/LCM_Dreamshaper_v7 +yes +8 +1\.0 +512x512 +no +~[0-9.]+ GB download +~[0-9.]+ GB, [0-9.]+ GB +no$" "$T/ml"
check "sd21 defaults" grep -Eq "^sd21 +stabilityai/stable-diffusion-2-1 +[a-z]+ +20 +7\.5 +768x768 +yes " "$T/ml"
check "lightning defaults" grep -Eq "^sdxl_lightning +[^ ]+ +[a-z]+ +4 +0\.0 +1024x1024 +no " "$T/ml"
check "all six runnable" test "$(grep -Ec "^[a-z0-9_]+ +[^ ]+/[^ ]+ +yes " "$T/ml")" = 6
expect_exit 2 "models bad subcommand" models frobnicate
expect_exit 2 "models fetch bad id" models fetch "not a repo"

[ "$fail" = 0 ] && echo "all CLI checks passed"
[ "$fail" = 0 ] && [ "${skipped:-0}" = 1 ] && exit 77 # ctest SKIP_RETURN_CODE
exit "$fail"
