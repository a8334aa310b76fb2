#!/usr/bin/env python3
"""ws_big_frames.py — the server's memory under WebSocket frames announcing 256 MB (issue 7).

Starts `BIN serve` on a fresh data folder, opens two /ws/progress connections at once, and on each
sends a masked text frame header announcing 256 MB followed by as much of its payload as the
server takes (1 MiB writes until one fails). Prints the server's resident memory (/api/health
rss_kb) and its peak (VmHWM in /proc/PID/status) before and after, the payload bytes each
connection got out, and the close code the server answered with (if any).

    python3 bench/ws_big_frames.py build/mus2pic
"""
import json, os, re, signal, socket, struct, subprocess, sys, tempfile, threading, time
import urllib.request

MB = 1 << 20
FRAME = 256 * MB


def health(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as r:
        return json.load(r)


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def one(port, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /ws/progress HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    s.sendall(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", FRAME) + b"\0\0\0\0")
    sent, chunk = 0, b"a" * MB
    try:
        while sent < FRAME:
            s.sendall(chunk)
            sent += MB
    except OSError:
        pass
    s.settimeout(10)
    code, data = None, b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    i = 0
    while i + 2 <= len(data):  # server frames: unmasked, find the close
        n, h = data[i + 1] & 0x7F, 2
        if n == 126:
            n, h = struct.unpack(">H", data[i + 2:i + 4])[0], 4
        elif n == 127:
            n, h = struct.unpack(">Q", data[i + 2:i + 10])[0], 10
        if data[i] & 0x0F == 8 and n >= 2 and i + h + 2 <= len(data):
            code = struct.unpack(">H", data[i + h:i + h + 2])[0]
        i += h + n
    s.close()
    out.append((sent, code))


def main():
    binary = sys.argv[1]
    d = tempfile.mkdtemp()
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([binary, "serve", "--port", "0", "--data", os.path.join(d, "data"),
                          "--offline"], stdout=log, stderr=subprocess.STDOUT)
    port = 0
    for _ in range(600):
        log.seek(0)
        m = re.search(r"serving http://[^:]+:(\d+)", log.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    try:
        rss0, hwm0 = health(port)["rss_kb"], hwm_kb(p.pid)
        out = []
        ts = [threading.Thread(target=one, args=(port, out)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        rss1, hwm1 = health(port)["rss_kb"], hwm_kb(p.pid)
        print(f"{binary}: RSS {rss0} -> {rss1} KiB, peak (VmHWM) {hwm0} -> {hwm1} KiB; "
              "per connection (payload bytes sent, close code): " +
              ", ".join(f"({s}, {c})" for s, c in out))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()


if __name__ == "__main__":
    main()
