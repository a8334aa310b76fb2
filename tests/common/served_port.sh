# served_port.sh — sourced by the shell tests that start a server on port 0:
#   served_port LOG [PID]
# waits (up to 60 s, or until process PID exits) for the line in which the server names the port
# the kernel gave it ("mus2pic ...: serving http://HOST:PORT", or "listening PORT" from the tests'
# node servers) and prints that port; prints nothing when it never came. A port picked by the test
# and handed over could be taken by a test running beside it first (tests/server/harness.h).
served_port() {
    local p="" i
    for i in $(seq 1 600); do
        p=$(sed -n -e 's|.*serving http://[^:]*:\([0-9]*\).*|\1|p' -e 's|^listening \([0-9]*\)$|\1|p' \
            "$1" 2>/dev/null | head -1)
        [ -n "$p" ] && break
        [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && break
        sleep 0.1
    done
    echo "$p"
}
