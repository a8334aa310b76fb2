#!/usr/bin/env bash
# test_cli_ux.sh — what a newcomer meets on the command line: `analyze` and `prompt` keep their
# cache in the user's cache folder, never ./data of the folder they run in; the text summary and
# --json give the same key; `prompt --version llm` without a key stops before the analysis and
# names --llm-key; `generate` prints no seed for a model it cannot load, and with --title/--artist
# writes FILE-text.png beside the unchanged plain FILE.png; `serve -v` logs each request and
# each job; a typo in MUS2PIC_MODEL is a warning at start; offline, `models fetch` says what to
# do (HF_ENDPOINT, a copied folder with --model NAME=DIR); `models list` says what each model
# needs on disk and in memory.
set -uo pipefail
: "${M2P_BIN:?M2P_BIN is set by ctest}" "${M2P_FIXTURES:?M2P_FIXTURES is set by ctest}"
BIN="$M2P_BIN"
. "$(dirname "$0")/../common/served_port.sh"
T="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$T"
}
trap cleanup EXIT
fail=0
check() { local what="$1"; shift; if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=$((fail + 1)); fi; }
AUDIO="$M2P_FIXTURES/audio/librosa/choice.ogg"

# 1. no ./data in the working folder; the cache goes to $XDG_CACHE_HOME/mus2pic
mkdir -p "$T/work" "$T/xdg" "$T/home"
(cd "$T/work" && env -u MUS2PIC_DATA HOME="$T/home" XDG_CACHE_HOME="$T/xdg" \
  "$BIN" analyze "$AUDIO" --offline --quiet --duration 30 >"$T/text" 2>"$T/err")
rc=$? # kept before the message's $(...) runs: that would reset $?
check "analyze exit 0 (exit $rc: $(tail -30 "$T/err"))" test "$rc" = 0
check "no ./data in the working folder" test ! -e "$T/work/data"
check "the store is in \$XDG_CACHE_HOME/mus2pic" test -f "$T/xdg/mus2pic/mus2pic.db"
(cd "$T/work" && env -u MUS2PIC_DATA -u XDG_CACHE_HOME HOME="$T/home" \
  "$BIN" prompt "$AUDIO" --offline --quiet --duration 30 >/dev/null 2>"$T/err")
check "prompt exit 0" test $? = 0
check "without XDG_CACHE_HOME: ~/.cache/mus2pic" test -f "$T/home/.cache/mus2pic/mus2pic.db"
check "still no ./data" test ! -e "$T/work/data"

# 2. one key: the summary prints the key --json reports
(cd "$T/work" && HOME="$T/home" XDG_CACHE_HOME="$T/xdg" \
  "$BIN" analyze "$AUDIO" --offline --quiet --duration 30 --json >"$T/json" 2>/dev/null)
want="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["key"], d["mode"])' "$T/json")"
got="$(sed -n 's/^Key  *\([A-G][#b]* [a-z]*\) (mode confidence.*/\1/p' "$T/text")"
check "summary key '$got' = JSON key '$want'" test -n "$want" -a "$got" = "$want"

# 3. prompt --version llm without a key: exit 2 at once, naming --llm-key; nothing analysed
rm -rf "$T/xdg2"
env -u OPENAI_API_KEY HOME="$T/home" XDG_CACHE_HOME="$T/xdg2" \
  "$BIN" prompt "$AUDIO" --version llm --offline --quiet >/dev/null 2>"$T/err"
check "llm without a key: exit 2" test $? = 2
check "llm without a key names --llm-key" grep -q -- "--llm-key" "$T/err"
check "llm without a key: no analysis ran (no store made)" test ! -e "$T/xdg2/mus2pic/mus2pic.db"

# 4. generate with a model folder that does not exist: no seed line, the folder named
"$BIN" generate --model "$T/no-such-model" --prompt "a cat" --out "$T/x.png" >/dev/null 2>"$T/err"
check "generate with a missing model: exit 1" test $? = 1
check "no seed printed before the model failed" bash -c "! grep -q '^seed:' '$T/err'"
check "the error names the folder" grep -q "$T/no-such-model" "$T/err"

# 5. poster text: FILE.png stays the plain image, FILE-text.png differs from it only in the
#    top third (--text-layout top)
G=(generate --model "$M2P_FIXTURES/sd-tiny/model" --prompt "a cat" --width 128 --height 192 --steps 2 --seed 5)
"$BIN" "${G[@]}" --out "$T/p.png" >/dev/null 2>&1
"$BIN" "${G[@]}" --out "$T/t.png" --title "Jóga" --artist "Björk" --text-layout top >"$T/out" 2>"$T/err"
rc=$?
check "generate with poster text: exit 0 (exit $rc: $(tail -30 "$T/err"))" test "$rc" = 0
check "it names the text file" grep -q "t-text.png" "$T/out"
python3 - "$T/p.png" "$T/t.png" "$T/t-text.png" <<'PY' >"$T/rows" 2>&1
import sys, zlib
def pixels(p):  # 8-bit RGB, non-interlaced (what mus2pic writes): rows after PNG unfiltering
    b = open(p, 'rb').read(); at = 8; idat = b''; w = h = 0
    while at < len(b):
        n = int.from_bytes(b[at:at + 4], 'big'); t = b[at + 4:at + 8]; d = b[at + 8:at + 8 + n]
        if t == b'IHDR': w, h = int.from_bytes(d[:4], 'big'), int.from_bytes(d[4:8], 'big')
        if t == b'IDAT': idat += d
        at += 12 + n
    raw = zlib.decompress(idat); stride = w * 3; rows = []; prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0; up = prev[i]; c = prev[i - 3] if i >= 3 else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return rows
plain, same, text = pixels(sys.argv[1]), pixels(sys.argv[2]), pixels(sys.argv[3])
assert plain == same, 'FILE.png is not the plain image'
changed = [y for y in range(len(plain)) if plain[y] != text[y]]
# the text box of the top layout is at most the top third (the C test pins the box itself)
assert len(changed) >= 10 and changed[-1] < len(plain) // 3, changed
print('rows', len(changed))
PY
check "plain kept, text only in the top third ($(tail -1 "$T/rows"))" grep -q "^rows" "$T/rows"
"$BIN" "${G[@]}" --out "$T/x.png" --title "x" --text-layout middle >/dev/null 2>"$T/err"
check "a bad --text-layout: exit 2 naming the choices" grep -q "top, bottom or band" "$T/err"

# 6. serve -v: each request and each job in the log (no query string: a token stays out)
# The kernel picks the port; the server prints it once it listens, and the test reads that line
# (an event, not a sleep; EOF if the server exits first).
mkfifo "$T/serve.out"
"$BIN" serve -v --port 0 --data "$T/data" --offline --model "lcm=$M2P_FIXTURES/sd-tiny/model" >"$T/serve.out" 2>"$T/serve.log" &
pid=$!
exec 4<"$T/serve.out"
read -r line <&4 || true
port="$(sed -n 's|.*serving http://[^:]*:\([0-9]*\).*|\1|p' <<<"$line")"
check "serve printed its address ($line)" test -n "$port"
curl -s "http://127.0.0.1:$port/api/health?secret=1" >/dev/null
job="$(curl -s -H 'Content-Type: application/json' -d '{"prompt":"a cat","width":64,"height":64,"steps":2}' \
  "http://127.0.0.1:$port/api/generate" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')"
state=""
for _ in $(seq 1 3000); do # polled; the bound (minutes) fails only on a hang
  state="$(curl -s "http://127.0.0.1:$port/api/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
  [ "$state" = done ] || [ "$state" = failed ] && break
  sleep 0.1
done
check "the job finished ($state)" test "$state" = done
kill "$pid"; wait "$pid" 2>/dev/null; pid=""; exec 4<&-
check "serve -v logs a request with its status" grep -q "GET /api/health -> 200" "$T/serve.log"
check "no query string in the log" bash -c "! grep -q 'secret=1' '$T/serve.log'"
check "serve -v logs the POST" grep -q "POST /api/generate -> 202" "$T/serve.log"
check "serve -v logs the job start" grep -q "job $job (generate) started" "$T/serve.log"
check "serve -v logs the job end" grep -q "job $job (generate) ended after" "$T/serve.log"

# 6b. a typo in MUS2PIC_MODEL: a warning at start naming the folder, and /api/models says so
MUS2PIC_MODEL="$T/no-such-model-folder" HF_HOME="$T/hf" "$BIN" serve --port 0 --data "$T/data3" --offline >"$T/serve3.log" 2>&1 &
pid=$!
port="$(served_port "$T/serve3.log" "$pid")"
curl -s "http://127.0.0.1:$port/api/models" >"$T/models.json"
kill "$pid"; wait "$pid" 2>/dev/null; pid=""
check "MUS2PIC_MODEL typo: warned at start" grep -q "warn: model lcm cannot be used until this is fixed: .*$T/no-such-model-folder.*no such folder" "$T/serve3.log"
check "MUS2PIC_MODEL typo: /api/models names the problem" python3 -c '
import json, sys
p = json.load(open(sys.argv[1])).get("problems", [])
sys.exit(0 if any(x["name"] == "lcm" and "no such folder" in x["message"] for x in p) else 1)' "$T/models.json"

# 7. models fetch with no way to the hub (a local port nobody listens on): curl's words plus
# what to do instead
closed="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HF_HOME="$T/hf" HF_ENDPOINT="http://127.0.0.1:$closed" "$BIN" models fetch lcm >"$T/out" 2>"$T/err"
check "offline fetch: exit 1" test $? = 1
check "offline fetch: curl's reason" grep -q "Couldn't connect to server" "$T/err"
check "offline fetch: names HF_ENDPOINT" grep -q "set HF_ENDPOINT to a hub mirror" "$T/err"
check "offline fetch: names --model lcm=DIR" grep -q -- "--model lcm=DIR" "$T/err"
check "offline fetch: names the cache folder to copy" grep -q "models--SimianLuo--LCM_Dreamshaper_v7" "$T/err"
check "offline fetch: nothing half-made in the cache" test -z "$(find "$T/hf" -name model_index.json 2>/dev/null)"

# 8. models list: download size (not installed) and memory per model; sdxl_lightning brings a
# second UNet, so it downloads more than turbo
HF_HOME="$T/hf" "$BIN" models list >"$T/ml" 2>"$T/err"
check "models list: exit 0" test $? = 0
check "models list: DISK and RAM columns" grep -q "DISK .*RAM F32, BF16" "$T/ml"
gb() { awk -v n="$1" '$1 == n { for (i = 1; i <= NF; i++) if ($i == "download") print substr($(i - 2), 2) }' "$T/ml"; }
check "lightning downloads more than turbo ($(gb sdxl_lightning) > $(gb turbo))" \
  awk -v a="$(gb sdxl_lightning)" -v b="$(gb turbo)" 'BEGIN { exit !(a > b && b > 1) }'

[ "$fail" -eq 0 ] || { echo "---- serve log ----"; cat "$T/serve.log"; echo "$fail check(s) failed"; exit 1; }
echo "all passed"
