#!/usr/bin/env bash
# test_readme_many_machines.sh — the README's "Many machines" commands, run as written: one
# PostgreSQL, one web node and two workers (each "host" a folder of its own with ./models/lcm
# and its own ./data), then a poster through the web node. The commands are read from README.md,
# never copied here; only these substitutions are made, so a README edit that breaks a command
# breaks this test:
#   - the database host is a throwaway cluster (initdb into a temporary folder, owned by the
#     postgres user when run as root) laid out as Debian's: `include_dir = 'conf.d'`, host
#     connections need scram-sha-256; /etc/postgresql/15/main/ is that cluster's folder;
#   - `sudo -u postgres CMD` runs CMD as the cluster's owner against it (PGHOST/PGPORT), `sudo
#     CMD` runs CMD; `apt-get install postgresql` checks that it is installed; `systemctl
#     restart postgresql` is `pg_ctl restart`; createuser's password prompt reads PW twice;
#   - addresses: listen_addresses '*' and 0.0.0.0 become 127.0.0.1, 10.0.0.0/24 becomes
#     127.0.0.1/32, db-host:5432 the cluster's free port, and the web node gets a free --port;
#     PASSWORD is PW; /run/postgresql (the Unix-socket URL) is the cluster's socket folder;
#   - `mus2pic` on PATH is this build's binary; ./models/lcm is the tiny fixture model.
set -u
: "${M2P_BIN:?M2P_BIN is set by ctest}"
: "${M2P_FIXTURES:?M2P_FIXTURES is set by ctest}"
. "$(dirname "$0")/../common/served_port.sh"
README="${M2P_SOURCE_DIR:-$(dirname "$0")/../..}/README.md"
fail=0
check() { # description, command...
    local what="$1"; shift
    if ! "$@"; then echo "FAIL: $what" >&2; fail=1; fi
}

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ]; then
    echo "FAIL: PostgreSQL is not installed; run scripts/install-deps --test" >&2
    exit 1
fi
T=$(mktemp -d /tmp/m2p-readme-XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    [ -d "$T/db/data" ] && as_owner "$PGBIN/pg_ctl" -D "$T/db/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT

as_owner() { # run as the cluster's owner, against the cluster
    local envs=(PATH="$PGBIN:$PATH" PGHOST="$T/db" PGPORT="$PGPORT" PGUSER=postgres)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env "${envs[@]}" "$@"
    else env "${envs[@]}" "$@"; fi
}
free_port() { # a port nothing listens on, below the kernel's range for outgoing connections:
    # PostgreSQL names its socket after the port, so it cannot take port 0, and a port in the
    # ephemeral range may be a busy test's client socket by the time the cluster binds it
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
    while :; do
        p=$((10000 + RANDOM % (lo - 10000)))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# ---- the README's commands, in order ----
section=$(awk '/^## Many machines/{on=1; next} on && /^## /{exit} on' "$README")
mapfile -t CMDS < <(grep -E '^    [^ ]' <<<"$section" | sed 's/^    //')
n_db=0
for c in "${CMDS[@]}"; do [[ $c == *sudo* ]] && n_db=$((n_db + 1)); done
EXPORT=$(printf '%s\n' "${CMDS[@]}" | grep -E '^export MUS2PIC_STORE=')
MIGRATE=$(printf '%s\n' "${CMDS[@]}" | grep -E '^mus2pic store migrate')
SERVE=$(printf '%s\n' "${CMDS[@]}" | grep -E '^mus2pic serve ')
mapfile -t WORKERS < <(printf '%s\n' "${CMDS[@]}" | grep -E '^mus2pic worker ')
SOCKET_URL=$(grep -oE 'postgresql:///[^`]*' <<<"$section" | head -1)
if [ "$n_db" != 6 ] || [ -z "$EXPORT" ] || [ -z "$MIGRATE" ] || [ -z "$SERVE" ] ||
    [ "${#WORKERS[@]}" != 2 ] || [ -z "$SOCKET_URL" ] || [ "${#CMDS[@]}" != 11 ]; then
    echo "FAIL: README's Many machines section is not laid out as this test expects" \
        "(6 sudo lines, export, store migrate, serve, 2 workers, a Unix-socket URL):" >&2
    printf '  %s\n' "${CMDS[@]}" >&2
    exit 1
fi

# ---- the database host ----
PGPORT=$(free_port)
PW="pw-$RANDOM$RANDOM"
mkdir -p "$T/db"
[ "$(id -u)" = 0 ] && chown postgres "$T/db"
as_owner initdb -D "$T/db/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --no-instructions >"$T/initdb.log" 2>&1 || { cat "$T/initdb.log"; exit 1; }
# (as in Debian's postgresql.conf, conf.d comes last so that what it sets wins)
as_owner sh -c "mkdir '$T/db/data/conf.d' && printf '%s\n' \"port = $PGPORT\" \
\"unix_socket_directories = '$T/db'\" \"listen_addresses = ''\" 'fsync = off' \
\"include_dir = 'conf.d'\" >> '$T/db/data/postgresql.conf'"
as_owner pg_ctl -D "$T/db/data" -l "$T/db/log" -w -t 60 start >/dev/null ||
    { cat "$T/db/log"; exit 1; }

sudo() {
    if [ "${1:-}" = -u ]; then shift 2; as_owner setsid -w "$@"; else "$@"; fi
}
apt-get() { dpkg -s postgresql >/dev/null 2>&1 || [ -x "$PGBIN/postgres" ]; }
systemctl() { as_owner pg_ctl -D "$T/db/data" -l "$T/db/log" -w -t 60 -m fast restart >/dev/null; }
for c in "${CMDS[@]}"; do
    [[ $c == *sudo* ]] || continue
    c=${c//\/etc\/postgresql\/15\/main/$T/db/data}
    c=${c//"listen_addresses = '*'"/"listen_addresses = '127.0.0.1'"}
    c=${c//10.0.0.0\/24/127.0.0.1/32}
    printf '%s\n%s\n' "$PW" "$PW" | eval "$c" >>"$T/db-host.log" 2>&1
    check "database host: $c (see its log below)" test $? = 0
done

# ---- every mus2pic host: the binary on PATH, a folder each with ./models/lcm ----
mkdir -p "$T/bin"
ln -s "$(readlink -f "$M2P_BIN")" "$T/bin/mus2pic"
export PATH="$T/bin:$PATH"
for h in web gen-1 gen-2; do
    mkdir -p "$T/$h/models"
    ln -s "$M2P_FIXTURES/sd-tiny/model" "$T/$h/models/lcm"
done
e=${EXPORT//PASSWORD/$PW}
e=${e//db-host:5432/127.0.0.1:$PGPORT}
eval "$e"
check "MUS2PIC_STORE is set: $e" test -n "${MUS2PIC_STORE:-}"
out=$(cd "$T/web" && eval "$MIGRATE" 2>&1)
check "store migrate over TCP with the password: $out" grep -q "schema version" <<<"$out"

# The kernel picks the web node's port and the log line says which (a port picked here could be
# taken by a test running beside this one first).
s=${SERVE//--host 0.0.0.0/--host 127.0.0.1 --port 0}
(cd "$T/web" && eval "exec $s") >"$T/web.log" 2>&1 &
PIDS+=($!)
WEBPORT=$(served_port "$T/web.log" "${PIDS[0]}")
for i in 0 1; do
    (cd "$T/gen-$((i + 1))" && eval "exec ${WORKERS[$i]}") >"$T/gen-$((i + 1)).log" 2>&1 &
    PIDS+=($!)
done
TOKEN=$(grep -oE -- '--token [^ ]+' <<<"$SERVE" | cut -d' ' -f2)
web() { # METHOD PATH [JSON]
    curl -s --max-time 30 -H "Authorization: Bearer $TOKEN" -X "$1" \
        ${3:+-H 'Content-Type: application/json' --data "$3"} "http://127.0.0.1:$WEBPORT$2"
}
deadline=$((SECONDS + 60))
until web GET /api/health 2>/dev/null | grep -q '"store"'; do
    if [ $SECONDS -gt $deadline ] || ! kill -0 "${PIDS[0]}" 2>/dev/null; then
        echo "FAIL: the web node did not come up" >&2; cat "$T/web.log" >&2; exit 1
    fi
    sleep 0.1
done
# both workers are seen before the jobs go in, so each of them can take one
deadline=$((SECONDS + 60))
until h=$(web GET /api/health) && grep -q '"gen-1"' <<<"$h" && grep -q '"gen-2"' <<<"$h"; do
    [ $SECONDS -gt $deadline ] && break
    sleep 0.1
done
check "/api/health lists both workers: $h" grep -q '"gen-2"' <<<"$h"
check "the web node refuses requests without the token" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEBPORT/api/jobs/1")" = 401

# ---- posters through the web node ----
ids=()
for i in 1 2 3 4; do
    r=$(web POST /api/generate "{\"prompt\":\"poster $i\",\"model\":\"lcm\",\"steps\":2,\"width\":64,\"height\":64,\"seed\":$i}")
    id=$(grep -oE '"job_id": *[0-9]+' <<<"$r" | grep -oE '[0-9]+$')
    check "generate is accepted: $r" test -n "$id"
    ids+=("$id")
done
workers_seen=""
for id in "${ids[@]}"; do
    deadline=$((SECONDS + 300))
    until j=$(web GET "/api/jobs/$id") && grep -qE '"state": *"(done|failed|canceled)"' <<<"$j"; do
        [ $SECONDS -gt $deadline ] && break
        sleep 0.1
    done
    check "job $id is done: $j" grep -qE '"state": *"done"' <<<"$j"
    workers_seen+=" $(grep -oE '"worker": *"[^"]*"' <<<"$j")"
    img=$(grep -oE '"images": *\[\{"id": *[0-9]+' <<<"$j" | grep -oE '[0-9]+$')
    code=$(curl -s -H "Authorization: Bearer $TOKEN" -o "$T/poster-$id.png" -w '%{http_code}' \
        "http://127.0.0.1:$WEBPORT/api/images/$img.png")
    check "poster of job $id is served: $code" test "$code" = 200
    check "poster of job $id is a PNG" bash -c "head -c 4 '$T/poster-$id.png' | grep -q PNG"
done
check "the workers ran the generations, not the web node: $workers_seen" \
    bash -c "! grep -vqE '^( \"worker\": *\"gen-[12]\")+\$' <<<'$workers_seen'"

# ---- operations ----
out=$(mus2pic store status 2>&1)
check "store status names both workers: $out" bash -c "grep -q gen-1 <<<'$out' && grep -q gen-2 <<<'$out'"
check "store status hides the password" bash -c "! grep -q '$PW' <<<'$out'"
u=${SOCKET_URL//\/run\/postgresql/$T/db}
u=${u//port=5432/port=$PGPORT}
out=$(cd "$T/web" && mus2pic store status --store "$u" 2>&1)
check "the README's Unix-socket URL works: $u: $out" grep -q "done" <<<"$out"

# SIGTERM: every node exits cleanly
for p in "${PIDS[@]}"; do kill -TERM "$p"; done
for p in "${PIDS[@]}"; do
    wait "$p"; rc=$?
    check "node $p exits 0 on SIGTERM (got $rc)" test "$rc" = 0
done
PIDS=()
if [ "$fail" != 0 ]; then
    for l in web gen-1 gen-2 db-host; do echo "---- $l ----"; cat "$T/$l.log"; done >&2
fi
exit $fail
