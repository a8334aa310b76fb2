#!/bin/sh
# tempo-devset.sh — the recipe of the real-music tempo development set (issue 10): composed
# songs that Debian ships together with the tempo their files state, rendered to audio.
#
#   LMMS demo projects (lmms-common: /usr/share/lmms/projects/**.mmp[z]; bpm = <head bpm=...>,
#     meter = timesig_numerator/denominator), rendered with `lmms --allowroot -r`;
#   Hydrogen demo songs (hydrogen-data: demo_songs/*.h2song; <bpm>), rendered with `h2cli`;
#   MMA song examples (mma: /usr/share/doc/mma/examples; one fixed "Tempo N" line and a named
#     Groove), compiled to MIDI by `mma` and rendered by fluidsynth with FluidR3_GM.
# Each render is cut to a 60 s mono 22,050 Hz excerpt (from 0 s) in $CACHE (default
# /var/cache/m2p-tempo-devset; no audio goes into the repo) and listed in $CACHE/truth.tsv:
#   id <TAB> file <TAB> bpm <TAB> meter <TAB> split <TAB> source
# split: "dev" or "held" from the parity of the cksum of the id (deterministic, independent of
# the order of the files and of our results): tune on dev only, report held-out.
# Usage: bench/tempo-devset.sh [cache-dir]   (re-running renders only what is missing)
# LMMS renders whole songs (about a minute each on a loaded 2-core machine); LMMS_RENDER=0
# lists only the LMMS pieces already in the cache and renders no new ones.
set -eu
CACHE=${1:-/var/cache/m2p-tempo-devset}
mkdir -p "$CACHE/wav"
TRUTH="$CACHE/truth.tsv"
NICE="nice -n 15"

need=""
command -v lmms >/dev/null || need="$need lmms"
command -v h2cli >/dev/null || need="$need hydrogen"
command -v mma >/dev/null || need="$need mma"
command -v fluidsynth >/dev/null || need="$need fluidsynth"
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need="$need fluid-soundfont-gm"
command -v ffmpeg >/dev/null || need="$need ffmpeg"
if [ -n "$need" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi

split_of() { # dev | held, from the id's checksum
    n=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
    if [ $((n % 2)) -eq 0 ]; then echo dev; else echo held; fi
}

excerpt() { # excerpt <rendered file> <id>: 60 s mono 22,050 Hz FLAC in the cache
    ffmpeg -nostdin -loglevel error -y -i "$1" -t 60 -ac 1 -ar 22050 "$CACHE/wav/$2.flac"
}

add() { # add <id> <bpm> <meter> <source>
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "wav/$1.flac" "$2" "$3" "$(split_of "$1")" "$4" \
        >>"$TRUTH.new"
}

: >"$TRUTH.new"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---- Hydrogen: <bpm> of the .h2song (4/4 drum patterns) ----
for f in /usr/share/hydrogen/data/demo_songs/*.h2song; do
    id="hydrogen-$(basename "$f" .h2song)"
    bpm=$(sed -n 's:.*<bpm>\([0-9.]*\)</bpm>.*:\1:p' "$f" | head -1)
    if [ ! -f "$CACHE/wav/$id.flac" ]; then
        $NICE h2cli -s "$f" -o "$TMP/$id.wav" >/dev/null 2>&1 && excerpt "$TMP/$id.wav" "$id" ||
            echo "h2cli: $f did not render" >&2
        rm -f "$TMP/$id.wav"
    fi
    if [ -f "$CACHE/wav/$id.flac" ]; then add "$id" "$bpm" "4/4" "hydrogen-data $f (bpm)"; fi
done

# ---- MMA: songs with exactly one absolute "Tempo N" and a named Groove (no metronome-only
#      grooves, no tempo variables or changes); the groove name gives the feel/meter ----
find /usr/share/doc/mma/examples -name '*.mma' | sort | while read -r f; do
    [ "$(grep -ciE '^[[:space:]]*tempo\b' "$f")" = 1 ] || continue
    bpm=$(sed -n 's/^[[:space:]]*[Tt][Ee][Mm][Pp][Oo][[:space:]]\+\([0-9]\+\)\b.*/\1/p' "$f")
    groove=$(sed -n 's/^[[:space:]]*[Gg][Rr][Oo][Oo][Vv][Ee][[:space:]]\+\([A-Za-z0-9-]*\).*/\1/p' "$f" | head -1)
    [ -n "$bpm" ] && [ -n "$groove" ] || continue
    case "$groove" in [Mm]etronome*) continue ;; esac
    [ "$bpm" -ge 60 ] && [ "$bpm" -le 200 ] || continue
    # ids name the folder too (delay/solo and solo/solo differ); identical copies count once
    id="mma-$(basename "$(dirname "$f")")-$(basename "$f" .mma)"
    sum=$(cksum <"$f" | cut -d' ' -f1)
    grep -qx "$sum" "$TMP/mma-sums" 2>/dev/null && continue
    echo "$sum" >>"$TMP/mma-sums"
    case "$groove" in *[Ww]altz*) meter=3/4 ;; *[Ss]wing* | *[Jj]azz* | *[Ff]oxtrot*) meter=4/4-swing ;; *) meter=4/4 ;; esac
    if [ ! -f "$CACHE/wav/$id.flac" ]; then
        (cd "$(dirname "$f")" && $NICE mma -f "$TMP/$id.mid" "$f" >/dev/null 2>&1) &&
            $NICE fluidsynth -ni -q -F "$TMP/$id.wav" -r 22050 /usr/share/sounds/sf2/FluidR3_GM.sf2 \
                "$TMP/$id.mid" >/dev/null 2>&1 && excerpt "$TMP/$id.wav" "$id" ||
            echo "mma: $f did not render" >&2
        rm -f "$TMP/$id.mid" "$TMP/$id.wav"
    fi
    if [ -f "$CACHE/wav/$id.flac" ]; then add "$id" "$bpm" "$meter" "mma $f (Tempo, Groove $groove)"; fi
done

# ---- LMMS: the project XML (.mmpz = 4-byte length + zlib) states bpm and time signature ----
find /usr/share/lmms/projects/demos /usr/share/lmms/projects/shorties \
    -name '*.mmp' -o -name '*.mmpz' | sort | while read -r f; do
    id="lmms-$(basename "$f" | sed 's/\.mmpz*$//; s/[^A-Za-z0-9_-]/_/g')"
    meta=$(python3 - "$f" <<'EOF'
import re, sys, zlib
d = open(sys.argv[1], 'rb').read()
if sys.argv[1].endswith('.mmpz'):
    d = zlib.decompress(d[4:])
h = re.search(rb'<head[^>]*>', d).group(0).decode()
g = lambda k, dflt: (re.search(k + r'="([0-9.]+)"', h) or [None, dflt])[1]
print(g('bpm', '140'), g('timesig_numerator', '4') + '/' + g('timesig_denominator', '4'))
EOF
)
    bpm=${meta% *}
    meter=${meta#* }
    if [ ! -f "$CACHE/wav/$id.flac" ] && [ "${LMMS_RENDER:-1}" != 0 ]; then
        QT_QPA_PLATFORM=offscreen $NICE lmms --allowroot -r "$f" -f wav -o "$TMP/$id.wav" \
            >/dev/null 2>&1 && excerpt "$TMP/$id.wav" "$id" || echo "lmms: $f did not render" >&2
        rm -f "$TMP/$id.wav"
    fi
    if [ -f "$CACHE/wav/$id.flac" ]; then add "$id" "$bpm" "$meter" "lmms-common $f (head bpm)"; fi
done

sort "$TRUTH.new" >"$TRUTH"
rm -f "$TRUTH.new"
echo "$(wc -l <"$TRUTH") pieces in $TRUTH ($(grep -c '	dev	' "$TRUTH") dev," \
    "$(grep -c '	held	' "$TRUTH") held-out)"
