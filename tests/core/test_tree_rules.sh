#!/usr/bin/env bash
# test_tree_rules.sh — rules the test suite keeps (issue 13):
#  - every ctest test reports "could not run here" as skipped: SKIP_RETURN_CODE 77 (the C tests'
#    TEST_SKIP_CODE in tests/common/test.h, `exit 77` in the shell tests), never as passed;
#  - no wall-clock upper bound is asserted in a test (CHECK(dt < ...), CHECK(load_ms < ...)):
#    a loaded machine must not fail the suite; timings belong in bench/ and BENCHMARKS.md;
#  - no thread-unsafe gmtime/localtime in src/ (tests/tsan.supp hides races inside gmtime).
set -u
: "${M2P_BUILD_DIR:?M2P_BUILD_DIR is set by ctest}" "${M2P_SOURCE_DIR:?}"
fails=0
json=$(cd "$M2P_BUILD_DIR" && ctest --show-only=json-v1) || { echo "FAIL: ctest --show-only"; exit 1; }
bad=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
for t in d["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    if str(props.get("SKIP_RETURN_CODE")) != "77":
        print(t["name"])
' <<<"$json")
n=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tests"]))' <<<"$json")
[ "$n" -gt 10 ] || { echo "FAIL: only $n tests listed"; fails=$((fails + 1)); }
[ -z "$bad" ] || { echo "FAIL: tests without SKIP_RETURN_CODE 77: $bad"; fails=$((fails + 1)); }
limits=$(grep -rnE 'CHECK\((dt|s|[a-z_]+_(s|ms)|now_s\(\) - [a-z0-9_]+) <' "$M2P_SOURCE_DIR/tests" \
    --include='*.c' --include='*.h')
[ -z "$limits" ] || { echo "FAIL: wall-clock limits asserted in tests:"; echo "$limits"; fails=$((fails + 1)); }
# tests/tsan.supp suppresses races in gmtime() (CivetWeb's, from its workers): our code must not
# call it, or a race of ours would be hidden; gmtime_r / localtime_r only.
unsafe=$(grep -rnE '\b(gmtime|localtime|asctime|ctime)[[:space:]]*\(' "$M2P_SOURCE_DIR/src" --include='*.c')
[ -z "$unsafe" ] || { echo "FAIL: thread-unsafe time functions in src/ (use the _r forms):"; echo "$unsafe"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] && echo "tree rules: $n tests report skips to ctest; no wall-clock limits in tests"
exit "$fails"
