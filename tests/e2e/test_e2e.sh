#!/usr/bin/env bash
# test_e2e.sh — browser test of the page (ctest label e2e): starts `mus2pic serve` with the tiny
# fixture model and a fake yt-dlp on a free port, then runs flow.js (playwright-core + Debian's
# chromium). scripts/test installs the npm package (npm install in tests/e2e) and chromium.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${M2P_BIN:?M2P_BIN is set by ctest}" "${M2P_FIXTURES:?M2P_FIXTURES is set by ctest}"

command -v node >/dev/null || { echo "node is missing (scripts/install-deps --test installs it)"; exit 1; }
chromium="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] || { echo "$chromium is missing (scripts/install-deps --test installs it)"; exit 1; }
[ -d "$here/node_modules/playwright-core" ] ||
  { echo "playwright-core is missing: run (cd tests/e2e && npm install)"; exit 1; }

tmp="$(mktemp -d)"
pid=""
pid2=""
pid3=""
cleanup() {
  if [ -n "$pid3" ]; then kill "$pid3" 2>/dev/null || true; wait "$pid3" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$pid2" ]; then kill "$pid2" 2>/dev/null || true; wait "$pid2" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A fake yt-dlp for the batch page: copies the fixture and writes an info JSON.
cat > "$tmp/yt-dlp" <<'EOF'
#!/bin/sh
info='{"id": "fakeid12345", "title": "Admiral Bob - Choice", "uploader": "someone", "tags": [], "duration": 25.0}'
tmpl=''; prev=''
for a in "$@"; do if [ "$prev" = '-o' ]; then tmpl="$a"; fi; prev="$a"; done
base="${tmpl%.*}"
echo '[download]  50.0% of 134.30KiB'
cp "$FAKE_AUDIO" "$base.ogg"
echo "$info" > "$base.info.json"
echo '[download] 100.0% of 134.30KiB'
EOF
chmod +x "$tmp/yt-dlp"

# A fake OpenAI-compatible chat endpoint for the page's LLM prompt option.
. "$here/../common/served_port.sh" # servers here listen on port 0 and say which they got
node "$here/fake_llm.js" 0 >"$tmp/llm.log" 2>&1 &
pid3=$!
llmport="$(served_port "$tmp/llm.log" "$pid3")"
mkdir -p "$tmp/data"
MUS2PIC_LLM_URL="http://127.0.0.1:$llmport/v1" OPENAI_API_KEY="" \
MUS2PIC_YTDLP="$tmp/yt-dlp" FAKE_AUDIO="$M2P_FIXTURES/audio/librosa/choice.ogg" \
  "$M2P_BIN" serve --port 0 --data "$tmp/data" --offline \
  --model "lcm=$M2P_FIXTURES/sd-tiny/model" >"$tmp/server.log" 2>&1 &
pid=$!
port="$(served_port "$tmp/server.log" "$pid")"

# A second server started with a model folder that does not exist (a typo): it warns at start
# and the page shows a banner naming the folder.
mkdir -p "$tmp/data2"
"$M2P_BIN" serve --port 0 --data "$tmp/data2" --offline \
  --model "lcm=$M2P_FIXTURES/sd-tiny/model" --model "typo=$tmp/no-such-folder" >"$tmp/server2.log" 2>&1 &
pid2=$!
port2="$(served_port "$tmp/server2.log" "$pid2")"
grep -q "warn: model typo cannot be used until this is fixed: .*'$tmp/no-such-folder'.*no such folder" "$tmp/server2.log" ||
  { echo "FAILED: no warning at start for the missing model folder:"; cat "$tmp/server2.log"; exit 1; }

# Screenshots of the main states, for a reviewer: build/tests/e2e-screenshots (or M2P_SHOTS).
shots="${M2P_SHOTS:-$PWD/e2e-screenshots}"
mkdir -p "$shots"
status=0
M2P_URL="http://127.0.0.1:$port" M2P_AUDIO="$M2P_FIXTURES/audio/librosa/choice.ogg" \
  M2P_TOKENS="$M2P_FIXTURES/sd-tiny/golden/tokens.json" M2P_SHOTS="$shots" \
  M2P_BAD_URL="http://127.0.0.1:$port2" M2P_BAD_FOLDER="$tmp/no-such-folder" M2P_BIN="$M2P_BIN" \
  M2P_FIXTURES="$M2P_FIXTURES" M2P_LLM="http://127.0.0.1:$llmport" \
  CHROMIUM="$chromium" timeout 840 node "$here/flow.js" || status=$?
if [ "$status" -ne 0 ]; then
  echo "---- server log ----"
  cat "$tmp/server.log"
fi
exit "$status"
