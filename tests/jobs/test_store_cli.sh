#!/usr/bin/env bash
# test_store_cli.sh — `mus2pic store migrate|status` on a SQLite data folder and on sqlite:FILE
# (schema version, queue depth per state and kind, workers), and the usage errors of `store`,
# `worker` and serve's new options (exit 2 with a message that says what to do; exit 1 when the
# store cannot be reached, with the URL's password hidden).
set -u
BIN="${M2P_BIN:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # description, command...
    local what="$1"; shift
    if ! "$@"; then echo "FAIL: $what" >&2; fail=1; fi
}

out=$("$BIN" store migrate --data "$T/data" 2>&1); rc=$?
check "migrate exits 0" test "$rc" = 0
check "migrate names the version: $out" grep -q "schema version 4 (this build knows 4)" <<<"$out"
check "the data folder's database exists" test -f "$T/data/mus2pic.db"
out=$("$BIN" store status --store "sqlite:$T/q.db" 2>&1); rc=$?
check "status exits 0" test "$rc" = 0
check "status: backend and file: $out" grep -q "store: sqlite $T/q.db" <<<"$out"
check "status: version" grep -q "schema version: 4 of 4" <<<"$out"
check "status: depth" grep -q '"generate":{"queued":0,"running":0,"done":0' <<<"$out"
check "status: no workers yet" grep -q "(none yet)" <<<"$out"
out=$(MUS2PIC_STORE="sqlite:$T/env.db" "$BIN" store status 2>&1)
check "MUS2PIC_STORE is read: $out" grep -q "store: sqlite $T/env.db" <<<"$out"

"$BIN" store 2>/dev/null; check "store without an action exits 2" test $? = 2
out=$("$BIN" store vacuum --data "$T/data" 2>&1); rc=$?
check "unknown action exits 2" test "$rc" = 2
check "unknown action is named: $out" grep -q "'vacuum' is not migrate or status" <<<"$out"
out=$("$BIN" store status --store "postgresql://u:secret@/x?host=$T/nowhere&port=1" 2>&1); rc=$?
check "an unreachable PostgreSQL exits 1" test "$rc" = 1
check "says it cannot connect: $out" grep -q "cannot connect" <<<"$out"
check "hides the password" bash -c "! grep -q secret <<<'$out'"

out=$(env -u MUS2PIC_STORE "$BIN" worker --model lcm=/x 2>&1); rc=$?
check "worker without --store exits 2" test "$rc" = 2
check "worker says --store is required: $out" grep -q "\-\-store URL is required" <<<"$out"
out=$("$BIN" worker --store "sqlite:$T/w.db" 2>&1); rc=$?
check "a generating worker without a model exits 2" test "$rc" = 2
check "says --model is needed: $out" grep -q "needs --model NAME=DIR" <<<"$out"
out=$("$BIN" worker --store "sqlite:$T/w.db" --kinds paint 2>&1); rc=$?
check "bad --kinds exits 2" test "$rc" = 2
check "bad --kinds is explained: $out" grep -q "use generate, analyze or generate,analyze" <<<"$out"
out=$("$BIN" worker --store "sqlite:$T/w.db" --kinds analyze --lease-s 0 2>&1); rc=$?
check "bad --lease-s exits 2: $out" test "$rc" = 2
out=$("$BIN" serve --kinds paint 2>&1); rc=$?
check "serve: bad --kinds exits 2: $out" test "$rc" = 2
exit $fail
