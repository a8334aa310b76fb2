#!/usr/bin/env bash
# test_cli_serve.sh — `mus2pic serve` refuses bad options before binding anything: each case
# exits with a status and names the option; a non-loopback bind without a token is refused.
set -u
: "${M2P_BIN:?M2P_BIN is set by ctest}"
fails=0
expect() { # expect STATUS PATTERN -- args...
    local want=$1 pat=$2; shift 3
    local out rc
    out=$(timeout 20 "$M2P_BIN" serve "$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
        echo "FAIL: serve $* -> status $rc (want $want), output: $out"
        fails=$((fails + 1))
    fi
}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
expect 2 "must be f32 or bf16" -- --dtype fp8 --data "$T"
expect 2 "audio-cache-mb needs an integer" -- --audio-cache-mb 0 --data "$T"
expect 2 "max-variations is 4 or 8" -- --max-variations 6 --data "$T"
expect 2 "port needs an integer" -- --port 70000 --data "$T"
expect 2 "NAME=DIR" -- --model lcm --data "$T"
expect 2 "unknown or incomplete option" -- --frobnicate --data "$T"
expect 1 "token" -- --host 0.0.0.0 --port 0 --data "$T"
expect 0 "--dtype f32|bf16" -- --help
[ "$fails" -eq 0 ] && echo "all serve option checks passed"
exit "$fails"
