#!/usr/bin/env bash
# test_cli_inspect_families.sh — `mus2pic inspect` describes what each family folder runs, from
# its configs (the fixtures' diffusers-written configs are the reference): family, prediction
# type, the scheduler class with its spacing, the defaults, both tokenizers and text encoders of
# SDXL with their "!" padding; every part loads (exit 0). The registry's sdxl_lightning (a fake
# Hugging Face cache) shows the Euler trailing the original ran.
set -u
BIN="${M2P_BIN:?}"
FX="${M2P_FIXTURES:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
has() { # file, fixed string
    grep -qF -- "$2" "$1" || { echo "FAIL: $(basename "$1"): no '$2'" >&2; fail=$((fail + 1)); }
}
for f in sd-tiny sd2-tiny sdxl-tiny; do
    "$BIN" inspect "$FX/$f/model" >"$T/$f" 2>"$T/$f.err" ||
        { echo "FAIL: inspect $f: $(cat "$T/$f.err")" >&2; fail=$((fail + 1)); }
    if grep -q "LCMScheduler only\|ERROR" "$T/$f"; then
        echo "FAIL: inspect $f reports an error" >&2; fail=$((fail + 1))
    fi
done
has "$T/sd-tiny" "family: SD 1.x (CLIP ViT-L text encoder), LCM-distilled"
has "$T/sd-tiny" "prediction: epsilon"
has "$T/sd-tiny" "scheduler: LCMScheduler (LCM), timestep_spacing leading, steps_offset 1"
has "$T/sd-tiny" "original_inference_steps 50, timestep_scaling 10"
has "$T/sd-tiny" "defaults (a folder): 8 steps"
has "$T/sd2-tiny" "family: SD 2.x"
has "$T/sd2-tiny" "prediction: v_prediction"
has "$T/sd2-tiny" "scheduler: DDIMScheduler (DDIM), timestep_spacing leading"
has "$T/sd2-tiny" "set_alpha_to_one false"
has "$T/sd2-tiny" 'tokenizer: CLIP BPE, bos 49406, eos 49407, pad 0 ("!")'
has "$T/sdxl-tiny" "family: SDXL (two text encoders, text_time conditioning)"
has "$T/sdxl-tiny" "scheduler: EulerAncestralDiscreteScheduler (Euler a), timestep_spacing trailing"
has "$T/sdxl-tiny" 'tokenizer_2: CLIP BPE, bos 49406, eos 49407, pad 0 ("!")'
has "$T/sdxl-tiny" "  text_encoder_2:"
has "$T/sdxl-tiny" "text_encoder_2/model.safetensors"
# 797573 + 1202343 + 785476 + 255543 (the VAE decoder) f32 parameters
has "$T/sdxl-tiny" "memory: 11.6 MiB of weights at f32, 5.8 MiB at bf16"

# The registry name: Lightning's Euler, trailing, and the original's defaults.
H="$T/hf"
snap="$H/models--stabilityai--stable-diffusion-xl-base-1.0/snapshots/r1"
mkdir -p "$snap" "$H/models--stabilityai--stable-diffusion-xl-base-1.0/refs"
for p in model_index.json scheduler text_encoder text_encoder_2 tokenizer tokenizer_2 unet vae; do
    ln -s "$FX/sdxl-tiny/model/$p" "$snap/$p"
done
echo r1 >"$H/models--stabilityai--stable-diffusion-xl-base-1.0/refs/main"
HF_HUB_CACHE="$H" "$BIN" inspect sdxl_lightning >"$T/light" 2>&1 ||
    { echo "FAIL: inspect sdxl_lightning: $(tail -1 "$T/light")" >&2; fail=$((fail + 1)); }
has "$T/light" "scheduler: EulerDiscreteScheduler (Euler), timestep_spacing trailing"
has "$T/light" "(set by the registry, as the original ran it)"
has "$T/light" "defaults (registry 'sdxl_lightning'): 4 steps, guidance 0.0 (the negative prompt is ignored), 1024x1024"
[ "$fail" = 0 ] && echo "ok" || { echo "$fail failure(s)" >&2; exit 1; }
