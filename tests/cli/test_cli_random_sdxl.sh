#!/usr/bin/env bash
# test_cli_random_sdxl.sh — tools/make-random-model --config-from an SDXL folder (the sdxl-tiny
# fixture, made by diffusers): every tensor of the UNet (list-valued transformer_layers_per_block,
# add_embedding), text_encoder, text_encoder_2 (text_projection) and VAE has the name and shape
# diffusers gave it (`mus2pic inspect` of both), tokenizer_2 is there, and the result generates.
set -u
BIN="${M2P_BIN:?}"
FX="${M2P_FIXTURES:?}/sdxl-tiny/model"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
"$(dirname "$BIN")/make-random-model" --out "$T/m" --config-from "$FX" \
    --tokenizer-from "$FX/tokenizer" --dtype f32 2>"$T/err" ||
    { echo "FAIL: make-random-model: $(cat "$T/err")" >&2; exit 1; }
# tensor lines: "name DTYPE [shape]" per part; the part headers name the folders, so drop them
"$BIN" inspect "$FX" | grep -E '^ +([a-z_]+\.[^ ]+ [A-Z0-9]+ \[|tensors: |loaded: |skipped: )' | sort >"$T/want"
"$BIN" inspect "$T/m" | grep -E '^ +([a-z_]+\.[^ ]+ [A-Z0-9]+ \[|tensors: |loaded: |skipped: )' | sort >"$T/got"
if [ "$(wc -l <"$T/want")" -lt 100 ] || ! cmp -s "$T/want" "$T/got"; then
    echo "FAIL: tensors differ from diffusers' ($(wc -l <"$T/want") vs $(wc -l <"$T/got") lines):" >&2
    diff "$T/want" "$T/got" | head -20 >&2
    fail=$((fail + 1))
fi
for f in vocab.json merges.txt; do
    cmp -s "$FX/tokenizer_2/$f" "$T/m/tokenizer_2/$f" || { echo "FAIL: tokenizer_2/$f" >&2; fail=$((fail + 1)); }
done
"$BIN" generate --model "$T/m" --prompt "a cat" --steps 1 --guidance 0 --width 64 --height 64 \
    --seed 1 --out "$T/x.png" >/dev/null 2>"$T/err" && [ -s "$T/x.png" ] ||
    { echo "FAIL: generate on the random SDXL model: $(cat "$T/err")" >&2; fail=$((fail + 1)); }
[ "$fail" = 0 ] && echo "ok" || { echo "$fail failure(s)" >&2; exit 1; }
