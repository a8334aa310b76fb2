#!/usr/bin/env bash
# test_cli_tokenize.sh — `mus2pic tokenize --model DIR [--encoder 2] TEXT` against the golden
# token ids of transformers' CLIPTokenizer (sdxl-tiny/golden/tokens.json: tokenizer/ pads with
# <|endoftext|>, tokenizer_2/ with "!", which also splits prompts at every "!"; sd2-tiny pads
# with "!"), every prompt of both files, and bad input (exit 2 for usage, 1 for runtime).
set -u
BIN="${M2P_BIN:?}"
FX="${M2P_FIXTURES:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HF_HOME="$T/hf"
fail=0

# every prompt through the CLI, compared with the golden ids (python3 reads the JSON only)
check_tokens() { # model dir, tokens.json, ids key, extra args...
    local model="$1" json="$2" key="$3"; shift 3
    rm -rf "$T/p"; mkdir -p "$T/p"
    python3 - "$json" "$key" "$T/p" <<'PY'
import json, sys
for i, e in enumerate(json.load(open(sys.argv[1]))["prompts"]):
    open(f"{sys.argv[3]}/{i}.txt", "w").write(e["prompt"])
    open(f"{sys.argv[3]}/{i}.ids", "w").write(" ".join(map(str, e[sys.argv[2]])))
PY
    local f got n=0
    for f in "$T"/p/*.txt; do
        n=$((n + 1))
        if ! got=$("$BIN" tokenize --model "$model" "$@" "$(cat "$f")" 2>"$T/err"); then
            echo "FAIL: tokenize $model $* $f: $(cat "$T/err")" >&2; fail=$((fail + 1)); continue
        fi
        if [ "$got" != "$(cat "${f%.txt}.ids")" ]; then
            echo "FAIL: tokenize $model $* $(cat "$f"): got $got, expected $(cat "${f%.txt}.ids")" >&2
            fail=$((fail + 1))
        fi
    done
    [ "$n" = 15 ] || { echo "FAIL: $json: $n prompts, expected 15" >&2; fail=$((fail + 1)); }
}
XL="$FX/sdxl-tiny/model"
check_tokens "$XL" "$FX/sdxl-tiny/golden/tokens.json" input_ids
check_tokens "$XL" "$FX/sdxl-tiny/golden/tokens.json" input_ids_2 --encoder 2
check_tokens "$FX/sd2-tiny/model" "$FX/sd2-tiny/golden/tokens.json" input_ids

# the two tokenizers differ on "!"
a=$("$BIN" tokenize --model "$XL" --encoder 1 "hello! world" | cut -d' ' -f1-6)
b=$("$BIN" tokenize --model "$XL" --encoder 2 "hello! world" | cut -d' ' -f1-6)
[ "$a" = "49406 3306 256 1002 49407 49407" ] || { echo "FAIL: encoder 1 'hello! world': $a" >&2; fail=$((fail + 1)); }
[ "$b" = "49406 3306 0 1002 49407 0" ] || { echo "FAIL: encoder 2 'hello! world': $b" >&2; fail=$((fail + 1)); }

expect_exit() { # code, what, args...
    local code="$1" what="$2"; shift 2
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" != "$code" ]; then
        echo "FAIL: $what: exit $rc, expected $code; stderr: $(cat "$T/err")" >&2; fail=$((fail + 1))
    elif [ ! -s "$T/err" ]; then
        echo "FAIL: $what: no error message" >&2; fail=$((fail + 1))
    fi
}
expect_exit 2 "--encoder 3" tokenize --model "$XL" --encoder 3 "x"
expect_exit 2 "--encoder abc" tokenize --model "$XL" --encoder abc "x"
expect_exit 1 "--encoder 2 on a one-encoder model" tokenize --model "$FX/sd2-tiny/model" --encoder 2 "x"
grep -q "tokenizer_2" "$T/err" || { echo "FAIL: the error should name tokenizer_2/: $(cat "$T/err")" >&2; fail=$((fail + 1)); }
# a tokenizer folder whose pad_token is not in the vocabulary fails naming the key
mkdir -p "$T/bad/tokenizer"
cp "$XL/tokenizer_2/vocab.json" "$XL/tokenizer_2/merges.txt" "$T/bad/tokenizer/"
echo '{"pad_token": "<|nope|>"}' >"$T/bad/tokenizer/tokenizer_config.json"
expect_exit 1 "pad_token not in the vocabulary" tokenize --model "$T/bad" "x"
grep -q "pad_token" "$T/err" || { echo "FAIL: the error should name pad_token: $(cat "$T/err")" >&2; fail=$((fail + 1)); }

[ "$fail" = 0 ] && echo "all tokenize checks passed"
exit "$fail"
