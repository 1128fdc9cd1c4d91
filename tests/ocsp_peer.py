#!/usr/bin/env python3
"""An HTTP peer in front of an OCSP responder, for tests/ocsp_tests.sh.

  ocsp_peer.py PORT UPSTREAM_PORT DELAY   forward each request to the
                                          responder on UPSTREAM_PORT
                                          after DELAY seconds
  ocsp_peer.py PORT silent                accept, read, never answer
  ocsp_peer.py PORT dns-silent            a name server (UDP) that reads
                                          each query and never answers

Listens on 127.0.0.1:PORT and prints "listening", then "request N" as
each request comes in (before any delay), so that a test can count the
queries the server sends and see when one is in flight.
"""
import socket
import sys
import threading
import time

count = 0
lock = threading.Lock()


def say(text):
    print(text, flush=True)


def read_request(conn):
    """One HTTP request, headers and body, as bytes ('' if cut short)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        body += chunk
    return head + b"\r\n\r\n" + body


def serve(conn, upstream, delay):
    global count
    with conn:
        request = read_request(conn)
        if not request:
            return
        with lock:
            count += 1
            say(f"request {count}")
        if upstream is None:
            # Silent: hold the connection until the server gives up.
            while conn.recv(4096):
                pass
            return
        time.sleep(delay)
        with socket.create_connection(("127.0.0.1", upstream)) as up:
            up.sendall(request)
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                conn.sendall(chunk)


def dns_silent(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    say("listening")
    n = 0
    while True:
        sock.recvfrom(4096)
        n += 1
        say(f"query {n}")


def main():
    port = int(sys.argv[1])
    if sys.argv[2] == "dns-silent":
        dns_silent(port)
    upstream = None if sys.argv[2] == "silent" else int(sys.argv[2])
    delay = float(sys.argv[3]) if upstream is not None else 0
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    say("listening")
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, upstream, delay),
                         daemon=True).start()


if __name__ == "__main__":
    main()
