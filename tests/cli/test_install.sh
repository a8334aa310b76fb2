#!/usr/bin/env bash
# test_install.sh — the installed tree works on its own: `cmake --install` into a temporary
# prefix, then (1) the installed bin/mus2pic, run from another folder, serves / and an asset from
# <prefix>/share/mus2pic/web (not the source tree) on a port the kernel picks; (2) a small C
# program compiled with `pkg-config --cflags --libs mus2pic` links libmus2pic and gets
# m2p_version() equal to the header's M2P_VERSION and to `mus2pic --version`; (3) the library
# exports the functions the header declares and nothing else.
set -u
: "${M2P_BUILD_DIR:?M2P_BUILD_DIR is set by ctest}"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
T=$(mktemp -d); srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
P="$T/prefix"

cmake --install "$M2P_BUILD_DIR" --prefix "$P" >"$T/install.log" 2>&1 || { cat "$T/install.log"; exit 1; }
for f in bin/mus2pic include/mus2pic.h include/mus2pic_version.h share/mus2pic/web/index.html; do
    [ -e "$P/$f" ] || fail "$f not installed"
done
lib=$(find "$P" -name libmus2pic.a | head -1); [ -n "$lib" ] || fail "libmus2pic.a not installed"
pc=$(find "$P" -name mus2pic.pc | head -1); [ -n "$pc" ] || fail "mus2pic.pc not installed"

# (1) serve from another folder; the page must come from the prefix, so the copy there is marked.
echo "<!-- installed copy -->" >>"$P/share/mus2pic/web/index.html"
mkdir -p "$T/elsewhere"
mkfifo "$T/out"
(cd "$T/elsewhere" && exec env -u MUS2PIC_WEB_DIR "$P/bin/mus2pic" serve --port 0 --data "$T/data" \
    --offline >"$T/out" 2>"$T/serve.err") &
srv=$!
# The server prints its address once it listens: wait for that line (or for it to exit).
line=
exec 3<"$T/out"
read -r line <&3 || true
port=$(sed -n 's|.*serving http://[^:]*:\([0-9]*\).*|\1|p' <<<"$line")
if [ -z "$port" ]; then
    fail "installed mus2pic serve did not start: '$line' $(cat "$T/serve.err")"
else
    page=$(curl -s --max-time 60 "http://127.0.0.1:$port/") || fail "GET / failed"
    grep -q "installed copy" <<<"$page" || fail "GET / did not serve the installed index.html"
    code=$(curl -s --max-time 60 -o "$T/style.css" -w '%{http_code}' "http://127.0.0.1:$port/style.css")
    [ "$code" = 200 ] || fail "GET /style.css -> $code"
    cmp -s "$T/style.css" "$P/share/mus2pic/web/style.css" || fail "style.css differs from the installed file"
fi
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=
exec 3<&-

# An installed tree without its web folder: a clear error that says what to do.
mv "$P/share/mus2pic/web" "$P/share/mus2pic/web.away"
out=$(cd "$T/elsewhere" && env -u MUS2PIC_WEB_DIR "$P/bin/mus2pic" serve --port 0 --data "$T/data" 2>&1 </dev/null)
rc=$?
[ "$rc" -eq 1 ] && grep -q -- "--web DIR" <<<"$out" || fail "serve without its web folder: status $rc, '$out'"
mv "$P/share/mus2pic/web.away" "$P/share/mus2pic/web"

# (2) a program built against the installed library through pkg-config
cat >"$T/v.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <mus2pic.h>
int main(void)
{
    printf("%s\n", m2p_version());
    return strcmp(m2p_version(), M2P_VERSION) != 0;
}
C
export PKG_CONFIG_PATH="$(dirname "${pc:-$P}")"
flags=$(pkg-config --cflags --libs mus2pic) || fail "pkg-config mus2pic failed"
# A sanitizer build's library needs its runtime in the program too.
san=
grep -q '^M2P_SANITIZE:BOOL=ON' "$M2P_BUILD_DIR/CMakeCache.txt" && san="-fsanitize=address,undefined"
grep -q '^M2P_TSAN:BOOL=ON' "$M2P_BUILD_DIR/CMakeCache.txt" && san="-fsanitize=thread"
if cc $san -o "$T/v" "$T/v.c" $flags >"$T/cc.log" 2>&1; then
    got=$("$T/v") || fail "m2p_version() differs from the header's M2P_VERSION"
    want=$("$P/bin/mus2pic" --version | awk '{print $2}')
    [ "$got" = "$want" ] || fail "m2p_version() '$got', mus2pic --version '$want'"
    [ "$(pkg-config --modversion mus2pic)" = "$want" ] || fail "mus2pic.pc version differs"
else
    fail "compiling against the installed library: $(cat "$T/cc.log")"
fi
# (3) the library exports exactly the header's interface: every function include/mus2pic.h
# declares is defined, and no other name (config_open, op_add: hidden, made local at install).
declared=$(cc -E -P -I"$P/include" "$P/include/mus2pic.h" 2>/dev/null |
    grep -oE '\bm2p_[a-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:](]//g' | sort -u)
exported=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u)
[ -n "$declared" ] || fail "no m2p_ function found in the installed mus2pic.h"
extra=$(comm -13 <(echo "$declared") <(echo "$exported") | head -20)
[ -z "$extra" ] || fail "the installed library exports names outside include/mus2pic.h: $(echo $extra)"
missing=$(comm -23 <(echo "$declared") <(echo "$exported") | head -20)
[ -z "$missing" ] || fail "functions include/mus2pic.h declares but the library does not export: $(echo $missing)"

[ "$fails" -eq 0 ] && echo "install: serve from the prefix, pkg-config link and the exported names passed"
exit "$fails"
