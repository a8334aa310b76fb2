#!/usr/bin/env bash
# test_cli_generate_out.sh — `mus2pic generate --out` writes regular files only (issue 7): a
# device node (/dev/null, as root it was replaced by a PNG), a folder or a FIFO is refused before
# any work with exit 2; a symlink is followed (the target gets the PNG, the link stays a link);
# a dangling symlink is refused.
set -u
BIN="${M2P_BIN:?}"
MODEL="${M2P_FIXTURES:?}/sd-tiny/model"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HF_HOME="$T/hf"
fail=0
G=(generate --model "$MODEL" --width 64 --height 64 --steps 1 --seed 3 --prompt "a cat")
is_png() { test "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a; }
refused() { # description, out path
    "$BIN" "${G[@]}" --out "$2" >"$T/o" 2>"$T/e"
    local rc=$?
    if [ "$rc" != 2 ] || ! grep -q "not a regular file\|symlink to nothing" "$T/e"; then
        echo "FAIL: $1: exit $rc, stderr: $(cat "$T/e")" >&2; fail=$((fail + 1))
    fi
}

# a device node: our own copy of /dev/null (root can make one), so a regression cannot break
# the machine's; without root, /dev/null itself (which cannot be replaced then)
DEV=/dev/null
if [ "$(id -u)" = 0 ] && mknod "$T/null.png" c 1 3 2>/dev/null; then DEV="$T/null.png"; fi
refused "a device" "$DEV"
if [ ! -c "$DEV" ]; then echo "FAIL: $DEV is no longer a device" >&2; fail=$((fail + 1)); fi
mkdir "$T/dir.png"
refused "a folder" "$T/dir.png"
mkfifo "$T/fifo.png"
refused "a fifo" "$T/fifo.png"
if [ ! -p "$T/fifo.png" ]; then echo "FAIL: the fifo was replaced" >&2; fail=$((fail + 1)); fi
ln -s "$T/nowhere/x.png" "$T/dangling.png"
refused "a dangling symlink" "$T/dangling.png"
# two variations: the second name is a device link -> refused before the first is written
ln -s "$DEV" "$T/v-2.png"
"$BIN" "${G[@]}" --variations 2 --out "$T/v.png" >"$T/o" 2>"$T/e"
rc=$?
if [ "$rc" != 2 ] || [ -e "$T/v-1.png" ]; then
    echo "FAIL: variations with a device link: exit $rc, v-1 written: $(ls "$T")" >&2; fail=$((fail + 1))
fi

# a symlink to a file: the target is replaced, the link stays
echo old >"$T/target.png"
ln -s "$T/target.png" "$T/link.png"
"$BIN" "${G[@]}" --out "$T/link.png" >"$T/o" 2>"$T/e"
rc=$?
if [ "$rc" != 0 ] || [ ! -L "$T/link.png" ] || ! is_png "$T/target.png"; then
    echo "FAIL: symlink: exit $rc, link kept: $([ -L "$T/link.png" ] && echo yes || echo no); $(cat "$T/e")" >&2
    fail=$((fail + 1))
fi
# a plain new file still works
"$BIN" "${G[@]}" --out "$T/new.png" >"$T/o" 2>"$T/e" && is_png "$T/new.png" ||
    { echo "FAIL: a new file: $(cat "$T/e")" >&2; fail=$((fail + 1)); }

[ "$fail" -eq 0 ] && echo "generate --out: all checks passed"
exit "$fail"
