#!/usr/bin/env python3
"""tests/fetch_peer.py - fetch one file over mTLS, from ours or from nginx.

    python3 tests/fetch_peer.py PORT hk|http PATH

Run in a directory with ca-cert.pem, client-cert.pem and client-key.pem
(make_test_certs.sh). Connects to 127.0.0.1:PORT with TLS 1.3 only,
sends one request and reads the answer to the end of the connection:
  hk    our framing (hk_proto.c): "HKTLS/1 GET PATH\\n", answer
        "HKTLS/1 OK <size>\\n", then the file;
  http  "GET /PATH HTTP/1.0", answer a status line 200 and headers with
        Content-Length, then the file (nginx closes after it).
The same program and the same reads for both servers: only the header
differs, and it is not counted. Prints one line
  FETCH body=N size=M header=H seconds=S cipher=C version=V
where N is what came after the header and M the size the header
announced; exits 1 (with one line saying why) unless N == M. The body is
counted, not kept. Each socket operation gives up after 60 s; the caller
bounds the whole fetch (timeout(1)).
"""
import socket
import ssl
import sys
import time

CHUNK = 1 << 20


def header(sock, proto):
    """Read up to the end of the header; return (size, header_len, rest)."""
    end = b"\n" if proto == "hk" else b"\r\n\r\n"
    data = b""
    while end not in data:
        more = sock.recv(16384)
        if not more:
            raise ValueError("connection ended in the header: %r" % data[:80])
        data += more
        if len(data) > 65536:
            raise ValueError("no end of header in 64 KiB")
    head, rest = data.split(end, 1)
    text = head.decode("latin-1")
    if proto == "hk":
        f = text.split(" ")
        if len(f) != 3 or f[:2] != ["HKTLS/1", "OK"]:
            raise ValueError("not an OK: %s" % text[:80])
        return int(f[2]), len(head) + len(end), rest
    lines = text.split("\r\n")
    if lines[0].split(" ")[1:2] != ["200"]:
        raise ValueError("not a 200: %s" % lines[0][:80])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip()), len(head) + len(end), rest
    raise ValueError("no Content-Length: %s" % lines[0][:80])


def main(port, proto, path):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile="ca-cert.pem")
    ctx.load_cert_chain("client-cert.pem", "client-key.pem")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    buf = bytearray(CHUNK)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            if proto == "hk":
                req = "HKTLS/1 GET %s\n" % path
            else:
                req = "GET /%s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path
            s.sendall(req.encode())
            size, hlen, rest = header(s, proto)
            body = len(rest)
            while True:
                n = s.recv_into(buf, CHUNK)
                if n == 0:
                    break
                body += n
            cipher, version, _ = s.cipher()
    secs = time.monotonic() - t0
    print("FETCH body=%d size=%d header=%d seconds=%.3f cipher=%s version=%s"
          % (body, size, hlen, secs, cipher, version), flush=True)
    if body != size:
        print("fetch_peer: got %d bytes after the header, announced %d"
              % (body, size), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("hk", "http"):
        print("usage: fetch_peer.py PORT hk|http PATH", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
    except (OSError, ssl.SSLError, ValueError) as e:
        print("fetch_peer: %s" % e, flush=True)
        sys.exit(1)
