#!/usr/bin/env bash
# test_cli_scheduler_from_config.sh — `generate --scheduler NAME` builds that class from the
# model's scheduler config as diffusers' Scheduler.from_config does: the config's other keys
# (timestep_spacing "trailing" included) carry over. Checked against the sdxl-tiny goldens:
# - Euler from_config over sdxl-tiny's Euler ancestral trailing config = the Lightning run;
# - the registry's sdxl_lightning (a fake Hugging Face cache: an SDXL base snapshot whose config
#   is Euler *leading*, as the real base's, plus ByteDance's UNet file) runs Euler trailing, as
#   the original set it, and keeps trailing under --scheduler euler_a (= the turbo 4-step run);
# - the same base by its hub id is the plain base: Euler leading (= the CFG run).
set -u
BIN="${M2P_BIN:?}"
FX="${M2P_FIXTURES:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
. "$(dirname "$0")/golden_runs.sh"
XL="$FX/sdxl-tiny/model"

run_model "$XL" sdxl-tiny pipeline_lightning_4step --scheduler euler

# The fake cache, in huggingface_hub's layout.
H="$T/hf"
base="$H/models--stabilityai--stable-diffusion-xl-base-1.0"
snap="$base/snapshots/r1"
mkdir -p "$snap/scheduler" "$H/models--ByteDance--SDXL-Lightning/snapshots/r1"
for p in model_index.json text_encoder text_encoder_2 tokenizer tokenizer_2 unet vae; do
    ln -s "$XL/$p" "$snap/$p"
done
python3 - "$FX/sdxl-tiny/golden/manifest.json" "$snap/scheduler/scheduler_config.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['files']['pipeline_cfg_4step.safetensors']
c = dict(m['scheduler_config']); c['_class_name'] = m['scheduler_class']
assert c['_class_name'] == 'EulerDiscreteScheduler' and c['timestep_spacing'] == 'leading'
json.dump(c, open(sys.argv[2], 'w'))
PY
echo r1 >"$base/refs/main" 2>/dev/null || { mkdir -p "$base/refs" && echo r1 >"$base/refs/main"; }
mkdir -p "$H/models--ByteDance--SDXL-Lightning/refs"
echo r1 >"$H/models--ByteDance--SDXL-Lightning/refs/main"
ln -s "$XL/unet/diffusion_pytorch_model.safetensors" \
    "$H/models--ByteDance--SDXL-Lightning/snapshots/r1/sdxl_lightning_4step_unet.safetensors"
export HF_HUB_CACHE="$H"

run_model sdxl_lightning sdxl-tiny pipeline_lightning_4step
run_model sdxl_lightning sdxl-tiny pipeline_turbo_4step --scheduler euler_a
run_model stabilityai/stable-diffusion-xl-base-1.0 sdxl-tiny pipeline_cfg_4step
grep -aq "Sampler: Euler a" "$T/pipeline_turbo_4step/out.png" ||
    { echo "FAIL: euler_a infotext" >&2; fail=$((fail + 1)); }

[ "$fail" = 0 ] && echo "ok" || { echo "$fail failure(s)" >&2; exit 1; }
