#!/usr/bin/env bash
# test_random_model_families.sh — tools/make-random-model --family builds every part with the
# architecture of the real hub model: --count-only's parameter counts per part are the published
# PyTorch counts (sum of p.numel() over model.parameters()) of diffusers / transformers:
#   UNet SD 1.x 859,520,964 (+81,920 for LCM's time_cond_proj), SD 2.x 865,910,724,
#   SDXL 2,567,463,684; CLIP ViT-L text 123,060,480; OpenCLIP ViT-H (SD 2.1, 23 layers)
#   340,387,840; OpenCLIP ViT-bigG with projection (SDXL text_encoder_2) 694,659,840;
#   AutoencoderKL 83,653,863 of which the decoder side (decoder + post_quant_conv) 49,490,199.
# --config-from the sdxl-tiny fixture (made by diffusers) counts what its safetensors hold.
# Nothing full-size is written.
set -u
BIN="${M2P_BIN:?}"
MRM="$(dirname "$BIN")/make-random-model"
FX="${M2P_FIXTURES:?}"
fail=0
check() { # family part expected
    got=$("$MRM" --count-only --family "$1" | awk -v p="$2" '$1 == p { print $2 }')
    if [ "$got" != "$3" ]; then
        echo "FAIL: --family $1: $2 has ${got:-no} parameters, expected $3" >&2
        fail=$((fail + 1))
    fi
}
for f in sd15 sd14 sd2 sdxl sdxl-turbo; do
    check "$f" vae 83653863
    check "$f" vae_decoder 49490199
done
check sd15 unet 859602884
check sd15 text_encoder 123060480
check sd14 unet 859520964
check sd14 text_encoder 123060480
check sd2 unet 865910724
check sd2 text_encoder 340387840
for f in sdxl sdxl-turbo; do
    check "$f" unet 2567463684
    check "$f" text_encoder 123060480
    check "$f" text_encoder_2 694659840
done
# SDXL's conditioning as published: both encoders together 817,720,320.
t=$("$MRM" --count-only --family sdxl | awk '$1 ~ /^text_encoder/ { s += $2 } END { print s }')
[ "$t" = 817720320 ] || { echo "FAIL: sdxl text encoders $t" >&2; fail=$((fail + 1)); }

# --config-from a diffusers folder: the counts of the files diffusers wrote.
"$MRM" --count-only --config-from "$FX/sdxl-tiny/model" >/tmp/m2p_mrm_$$ 2>&1 ||
    { echo "FAIL: --count-only --config-from: $(cat /tmp/m2p_mrm_$$)" >&2; fail=$((fail + 1)); }
for part in text_encoder text_encoder_2 unet vae; do
    want=$("$BIN" inspect "$FX/sdxl-tiny/model" 2>/dev/null |
        awk -v p="  $part:" '$0 == p { on = 1; next } on && /parameters:/ { gsub(",", "", $4); print $4; exit }')
    got=$(awk -v p="$part" '$1 == p { print $2 }' /tmp/m2p_mrm_$$)
    if [ -z "$want" ] || [ "$got" != "$want" ]; then
        echo "FAIL: --config-from sdxl-tiny: $part $got, the fixture's file holds ${want:-?}" >&2
        fail=$((fail + 1))
    fi
done
rm -f /tmp/m2p_mrm_$$

# Bad input: a clear message, exit 2, nothing written.
out=$("$MRM" --count-only --family sd3 2>&1)
[ $? = 2 ] && echo "$out" | grep -q "use sd15, sd14, sd2, sdxl or sdxl-turbo" ||
    { echo "FAIL: unknown family: $out" >&2; fail=$((fail + 1)); }
"$MRM" --family sd2 >/dev/null 2>&1
[ $? = 2 ] || { echo "FAIL: no --out accepted" >&2; fail=$((fail + 1)); }
[ "$fail" = 0 ] && echo "ok" || { echo "$fail failure(s)" >&2; exit 1; }
