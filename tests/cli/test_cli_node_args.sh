#!/usr/bin/env bash
# test_cli_node_args.sh — the options `serve` and `worker` share (src/cli/node_args.c) are one
# parser: for each shared option a bad value is refused by both commands alike, exit status 2
# and the same message with the command's name, before anything starts; a value both accept
# gets past the shared parser in both (here to the next refusal, an unknown option).
set -u
: "${M2P_BIN:?M2P_BIN is set by ctest}"
fails=0
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
both() { # both STATUS PATTERN -- args...: serve and worker answer alike
    local want=$1 pat=$2; shift 3
    local cmd out rc
    for cmd in serve worker; do
        out=$(timeout 20 "$M2P_BIN" "$cmd" --data "$T" "$@" 2>&1); rc=$?
        if [ "$rc" -ne "$want" ] || ! grep -q -- "mus2pic $cmd: $pat" <<<"$out"; then
            echo "FAIL: $cmd $* -> status $rc (want $want, 'mus2pic $cmd: $pat'), output: $out"
            fails=$((fails + 1))
        fi
    done
}
both 2 "--kinds 'paint': use generate, analyze or generate,analyze" -- --kinds paint
both 2 "--kinds 'generate,,x': use generate" -- --kinds generate,,x
both 2 "--lease-s needs an integer from 1 to 3600" -- --lease-s 0
both 2 "--workers needs an integer from 1 to 15" -- --workers 16
both 2 "--compute-threads needs an integer from 1 to 1024" -- --compute-threads 2x
both 2 "--dtype 'fp8' must be f32 or bf16" -- --dtype fp8
both 2 "--model-memory-gb needs GiB from 0" -- --model-memory-gb -1
both 2 "--model takes NAME=DIR" -- --model =./dir
both 2 "--model takes NAME=DIR" -- --model lcm=
models=()
for k in $(seq 1 16); do models+=(--model "m$k=./d$k"); done
both 2 "at most 16 --model options" -- "${models[@]}" --model m17=./d17
# accepted values pass the shared parser in both commands: the refusal is the unknown option
both 2 "unknown or incomplete option '--frobnicate'" -- --store "sqlite:$T/w.db" --name n1 \
    --kinds analyze,generate --lease-s 45 --workers 3 --compute-threads 2 --dtype f32 \
    --model-memory-gb 0.5 --model lcm=./models/lcm --offline -v --frobnicate
both 2 "unknown or incomplete option '--store'" -- --store
[ "$fails" -eq 0 ] && echo "serve and worker parse their shared options alike"
exit "$fails"
