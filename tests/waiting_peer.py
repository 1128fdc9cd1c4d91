#!/usr/bin/env python3
"""A TLS client that handshakes with our server, then mostly listens.

  waiting_peer.py PORT [SECS] [LINE] [SLOW]

Prints "ready" once the handshake is done; with LINE, sends it and a
newline. Then it reads until the server ends the connection: slowly,
1 KiB every 10 ms, for the first SLOW seconds (default 0) or, with SLOW
"usr1", until it gets SIGUSR1, so that the server is kept blocked in the
middle of a long write; then as fast as it can. It prints the server's first lines as "got: LINE", the byte count
as "bytes: N", and how the connection ended: "close_notify" for a clean
TLS end, "no close_notify: ..." for a TCP close without one, or
"timeout" when nothing came for SECS (default 30). Run from the test
certificate directory. The shutdown tests use it to see whether the
server says goodbye properly to a client it cuts off; the framing tests
to send request lines our client never would.
"""
import signal
import socket
import ssl
import sys
import time

fast_now = False


def go_fast(signum, frame):
    global fast_now
    fast_now = True


def main():
    port = int(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 30
    line = sys.argv[3] if len(sys.argv) > 3 else ""
    slow = sys.argv[4] if len(sys.argv) > 4 else "0"
    if slow == "usr1":
        signal.signal(signal.SIGUSR1, go_fast)
        fast_from = float("inf")
    else:
        fast_from = time.monotonic() + float(slow)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain("client-cert.pem", "client-key.pem")
    ctx.load_verify_locations("ca-cert.pem")
    with socket.create_connection(("127.0.0.1", port), timeout=secs) as raw:
        # Ragged EOFs are what this reports, so they must not look clean.
        tls = ctx.wrap_socket(raw, server_hostname="localhost",
                              suppress_ragged_eofs=False)
        print("ready", flush=True)
        if line:
            tls.sendall(line.encode() + b"\n")
        head = bytearray()  # where lines are looked for: the start only
        total = 0
        end = None
        try:
            while True:
                slow_now = not fast_now and time.monotonic() < fast_from
                data = tls.recv(1024 if slow_now else 65536)
                if not data:
                    end = "close_notify"
                    break
                total += len(data)
                if len(head) < 4096:
                    head += data
                    while b"\n" in head[:4096]:
                        first, _, rest = bytes(head).partition(b"\n")
                        print("got:", first.decode(errors="replace"), flush=True)
                        head = bytearray(rest)
                if slow_now:
                    time.sleep(0.01)
        except socket.timeout:
            end = "timeout"
        except (ssl.SSLError, OSError) as e:
            end = "no close_notify: " + repr(e)
        print("bytes:", total, flush=True)
        print(end, flush=True)


main()
