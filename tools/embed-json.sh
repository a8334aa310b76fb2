#!/usr/bin/env bash
# embed-json.sh — turns a JSON file into a C source holding it as one string constant, so the
# library carries its data and never reads ../shared at run time.
# Usage: tools/embed-json.sh INPUT.json SYMBOL OUTPUT.c
# The build runs it (CMakeLists.txt, add_custom_command):
#   tools/embed-json.sh src/music/prompt-rules.json m2p_rules_json <build>/generated/rules_data.c
# Bytes outside printable ASCII, '\' and '"' are written as 3-digit octal escapes; one source
# line per input line. Only coreutils/awk are needed (runs on a fresh Debian).
set -euo pipefail
in="$1"; sym="$2"; out="$3"
tmp="$out.tmp.$$"
{
  echo "/*"
  echo " * $(basename "$out") — GENERATED at build time by tools/embed-json.sh from $(basename "$in");"
  echo " * do not edit. tests/music/test_rules.c checks that it equals the spec file byte for byte."
  echo " */"
  echo "#include <stddef.h>"
  echo ""
  echo "const char ${sym}[] ="
  lastnl=1
  if [ -s "$in" ] && [ "$(tail -c 1 "$in" | od -An -tu1 | tr -d ' ')" != "10" ]; then lastnl=0; fi
  LC_ALL=C awk -v lastnl="$lastnl" '
    BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
    {
      s = ""
      n = length($0)
      for (i = 1; i <= n; i++) {
        c = substr($0, i, 1); o = ord[c]
        if (c == "\\") s = s "\\\\"
        else if (c == "\"") s = s "\\\""
        else if (o < 32 || o >= 127) s = s sprintf("\\%03o", o)
        else s = s c
      }
      if (NR > 1) printf "    \"%s\\n\"\n", prev
      prev = s
    }
    END { if (NR > 0) printf "    \"%s%s\"\n", prev, (lastnl ? "\\n" : "") }' "$in"
  echo "    ;"
  echo "const size_t ${sym}_len = sizeof(${sym}) - 1;"
} > "$tmp"
mv "$tmp" "$out"
