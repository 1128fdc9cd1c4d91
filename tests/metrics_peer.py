#!/usr/bin/env python3
"""tests/metrics_peer.py - the peers tests/metrics_tests.sh needs:

  raw ADDR REQUEST       send REQUEST (\\r\\n escapes allowed) to ADDR
                         (HOST:PORT, [::1]:PORT or unix:PATH), print the answer
  scrape ADDR            GET /metrics, print the body (exit 1 unless 200)
  hold PORT CERT KEY CA  an mTLS client that connects to 127.0.0.1:PORT,
                         prints "held", and stays until its stdin closes
"""
import socket
import ssl
import sys


def connect(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(addr[5:])
        return s
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def exchange(addr, request):
    s = connect(addr)
    s.sendall(request)
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    s.close()
    return out


def main():
    cmd = sys.argv[1]
    if cmd == "raw":
        req = sys.argv[3].encode().decode("unicode_escape").encode("latin-1")
        sys.stdout.write(exchange(sys.argv[2], req).decode("latin-1"))
        return 0
    if cmd == "scrape":
        out = exchange(sys.argv[2], b"GET /metrics HTTP/1.0\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        sys.stdout.write(body.decode())
        return 0 if head.startswith(b"HTTP/1.0 200 ") else 1
    if cmd == "hold":
        port, cert, key, ca = sys.argv[2:6]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        tls = ctx.wrap_socket(raw)
        print("held", flush=True)
        sys.stdin.read()
        tls.close()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
