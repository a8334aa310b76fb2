#!/usr/bin/env bash
# test_cli_families.sh — every whole diffusers run of sd2-tiny (DDIM-v CFG, Euler-v CFG, PNDM
# CFG, LCM-v) and sdxl-tiny (turbo 1/4 steps, Lightning, Euler CFG 5) reproduced through
# `mus2pic generate`: the model's own scheduler, --scheduler NAME (from_config over the model's
# config) or --scheduler-config FILE (the run's config from the fixture manifest), --latents /
# --noise with the recorded tensors, --guidance (0 included), --negative, --unet; --raw-out against
# image_np and the PNG against image_uint8 within the fixture tolerances. Then the usage errors
# of the new options (exit 2, no output).
set -u
BIN="${M2P_BIN:?}"
FX="${M2P_FIXTURES:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

. "$(dirname "$0")/golden_runs.sh" # prep, compare, run_model

run() { # fixture, run, extra generate args...: the fixture's own model folder
    local fx="$1"; shift
    run_model "$FX/$fx/model" "$fx" "$@"
}

# sd2-tiny: its own DDIM-v config; Euler and LCM from_config over it; PNDM as SD 1.4 ships it
run sd2-tiny pipeline_ddim
run sd2-tiny pipeline_euler --scheduler euler
run sd2-tiny pipeline_lcm --scheduler lcm
run sd2-tiny pipeline_pndm --scheduler-config "$T/pipeline_pndm/sched.json"
# sdxl-tiny: its own Euler ancestral trailing (turbo); Lightning's and SDXL base's Euler configs
run sdxl-tiny pipeline_turbo_1step
run sdxl-tiny pipeline_turbo_4step
run sdxl-tiny pipeline_lightning_4step --scheduler-config "$T/pipeline_lightning_4step/sched.json"
run sdxl-tiny pipeline_cfg_4step --scheduler-config "$T/pipeline_cfg_4step/sched.json"

# the PNG's infotext names the sampler and the steps it ran
grep -aq "Steps: 4, Sampler: DDIM" "$T/pipeline_ddim/out.png" || { echo "FAIL: DDIM infotext" >&2; fail=$((fail + 1)); }
grep -aq "Sampler: PLMS" "$T/pipeline_pndm/out.png" || { echo "FAIL: PLMS infotext" >&2; fail=$((fail + 1)); }
grep -aq "Steps: 1, Sampler: Euler a" "$T/pipeline_turbo_1step/out.png" || { echo "FAIL: Euler a infotext" >&2; fail=$((fail + 1)); }

# --unet: the folder's config with other weights (as SDXL-Lightning's UNet file over the base):
# an identical copy reproduces the turbo run, one with conv_out.bias shifted changes the image,
# another model's UNet is refused naming the file
python3 - "$FX/sdxl-tiny/model/unet/diffusion_pytorch_model.safetensors" "$T" <<'PY'
import json, struct, sys
raw = bytearray(open(sys.argv[1], 'rb').read())
open(sys.argv[2] + '/same_unet.safetensors', 'wb').write(raw)
n = struct.unpack('<Q', raw[:8])[0]; hdr = json.loads(raw[8:8 + n])
a, b = hdr['conv_out.bias']['data_offsets']
v = struct.unpack('<%df' % ((b - a) // 4), raw[8 + n + a:8 + n + b])
raw[8 + n + a:8 + n + b] = struct.pack('<%df' % len(v), *[x + 0.25 for x in v])
open(sys.argv[2] + '/other_unet.safetensors', 'wb').write(raw)
PY
run sdxl-tiny pipeline_turbo_1step --unet "$T/same_unet.safetensors"
"$BIN" generate --model "$FX/sdxl-tiny/model" --prompt x --steps 1 --guidance 0 --width 64 --height 64 \
    --seed 1 --out "$T/u0.png" >/dev/null 2>&1
"$BIN" generate --model "$FX/sdxl-tiny/model" --prompt x --steps 1 --guidance 0 --width 64 --height 64 \
    --seed 1 --unet "$T/other_unet.safetensors" --out "$T/u1.png" >/dev/null 2>"$T/eu1"
test -s "$T/u1.png" || { echo "FAIL: --unet run: $(cat "$T/eu1")" >&2; fail=$((fail + 1)); }
cmp -s "$T/u0.png" "$T/u1.png" && { echo "FAIL: --unet weights not used" >&2; fail=$((fail + 1)); }
"$BIN" generate --model "$FX/sdxl-tiny/model" --prompt x --steps 1 --guidance 0 --width 64 --height 64 \
    --unet "$FX/sd2-tiny/model/unet/diffusion_pytorch_model.safetensors" --out "$T/u2.png" >/dev/null 2>"$T/eu2"
rc=$?
[ "$rc" = 1 ] && [ ! -e "$T/u2.png" ] && grep -q "diffusion_pytorch_model.safetensors" "$T/eu2" ||
    { echo "FAIL: another model's UNet: exit $rc: $(cat "$T/eu2")" >&2; fail=$((fail + 1)); }

# a VAE of 3 levels (scale factor 4, as held-out models may have): the latents are H/4 x W/4,
# the image keeps its size, latents of the x8 shape are refused naming the right one
python3 - "$FX/sd2-tiny/model" "$T/cfg4" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
for part in ['model_index.json', 'scheduler/scheduler_config.json', 'text_encoder/config.json',
             'unet/config.json', 'vae/config.json']:
    c = json.load(open(src + '/' + part))
    if part.startswith('vae'):
        c.update({'block_out_channels': [16, 32, 32], 'down_block_types': ['DownEncoderBlock2D'] * 3,
                  'up_block_types': ['UpDecoderBlock2D'] * 3})
    os.makedirs(os.path.dirname(dst + '/' + part), exist_ok=True)
    json.dump(c, open(dst + '/' + part, 'w'))
PY
"$(dirname "$BIN")/make-random-model" --out "$T/m4" --config-from "$T/cfg4" \
    --tokenizer-from "$FX/sd2-tiny/model/tokenizer" --dtype f32 >/dev/null 2>&1 ||
    { echo "FAIL: make-random-model for the x4 VAE" >&2; fail=$((fail + 1)); }
"$BIN" generate --model "$T/m4" --prompt x --steps 2 --guidance 0 --width 72 --height 64 --seed 1 \
    --out "$T/m4.png" >"$T/m4.out" 2>"$T/m4.err"
grep -q "72x64" "$T/m4.out" && test "$(head -c 24 "$T/m4.png" | tail -c 8 | od -An -tx1 | tr -d ' \n')" = 0000004800000040 ||
    { echo "FAIL: x4 VAE run: $(cat "$T/m4.err")" >&2; fail=$((fail + 1)); }
mkdir -p "$T/out"
"$BIN" generate --model "$T/m4" --prompt x --steps 4 --latents "$T/pipeline_ddim/lat.safetensors" \
    --width 64 --height 64 --out "$T/out/m4.png" >/dev/null 2>"$T/m4.err2"
rc=$?
[ "$rc" = 2 ] && grep -q "\[4,16,16\]" "$T/m4.err2" && [ ! -e "$T/out/m4.png" ] ||
    { echo "FAIL: x8 latents on the x4 model: exit $rc: $(cat "$T/m4.err2")" >&2; fail=$((fail + 1)); }

# a negative prompt at guidance 0 is said to be ignored; at guidance 5 it changes the image
M="$FX/sdxl-tiny/model"
G=(generate --model "$M" --prompt "a cat" --width 64 --height 64 --steps 1 --seed 3)
"$BIN" "${G[@]}" --guidance 0 --negative "dogs" --out "$T/n0.png" >/dev/null 2>"$T/e0"
grep -q "ignore the negative prompt" "$T/e0" || { echo "FAIL: no note at guidance 0" >&2; fail=$((fail + 1)); }
"$BIN" "${G[@]}" --guidance 5 --out "$T/n1.png" >/dev/null 2>"$T/e1"
"$BIN" "${G[@]}" --guidance 5 --negative "dogs" --out "$T/n2.png" >/dev/null 2>"$T/e2"
grep -q "ignore the negative prompt" "$T/e2" && { echo "FAIL: note with CFG" >&2; fail=$((fail + 1)); }
cmp -s "$T/n1.png" "$T/n2.png" && { echo "FAIL: negative prompt changed nothing" >&2; fail=$((fail + 1)); }
test -s "$T/n0.png" -a -s "$T/n1.png" || { echo "FAIL: guidance 0/5 runs" >&2; fail=$((fail + 1)); }

# usage errors of the new options: exit 2, a message, no output
mkdir -p "$T/out"
expect2() { # description, args...
    local what="$1"; shift
    rm -f "$T/out/"*
    "$BIN" "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ "$rc" = 2 ] || { echo "FAIL: $what: exit $rc, expected 2: $(cat "$T/err")" >&2; fail=$((fail + 1)); }
    [ -s "$T/err" ] || { echo "FAIL: $what: no message" >&2; fail=$((fail + 1)); }
    [ -z "$(ls -A "$T/out")" ] || { echo "FAIL: $what: left output" >&2; fail=$((fail + 1)); }
}
O="$T/out/x.png"
expect2 "unknown scheduler" "${G[@]}" --scheduler dpm --out "$O"
grep -q "euler_a" "$T/err" || { echo "FAIL: scheduler names not listed" >&2; fail=$((fail + 1)); }
expect2 "scheduler config missing" "${G[@]}" --scheduler-config "$T/none.json" --out "$O"
echo '{"_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": true}' >"$T/karras.json"
expect2 "karras sigmas" "${G[@]}" --scheduler-config "$T/karras.json" --out "$O"
grep -q "use_karras_sigmas" "$T/err" || { echo "FAIL: key not named: $(cat "$T/err")" >&2; fail=$((fail + 1)); }
echo '{"_class_name": "KDPM2DiscreteScheduler"}' >"$T/kdpm.json"
expect2 "unsupported class" "${G[@]}" --scheduler-config "$T/kdpm.json" --out "$O"
echo '{"_class_name": ' >"$T/broken.json"
expect2 "broken json" "${G[@]}" --scheduler-config "$T/broken.json" --out "$O"
# noise with the wrong number of draws: turbo 1 step draws 1, 4 given
expect2 "noise count" "${G[@]}" --steps 1 --guidance 0 --noise "$T/pipeline_turbo_4step/noise.safetensors" --out "$O"
grep -q "draws 1 noise" "$T/err" || { echo "FAIL: noise message: $(cat "$T/err")" >&2; fail=$((fail + 1)); }

[ "$fail" = 0 ] && echo "all family CLI checks passed"
exit "$fail"
