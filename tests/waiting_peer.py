#!/usr/bin/env python3
"""A TLS client that handshakes with our server, then only listens.

  waiting_peer.py PORT [SECS] [LINE]

Prints "ready" once the handshake is done; with LINE, sends it and a
newline. Then prints every line the server sends as "got: LINE" and waits
up to SECS (30) for the server to end the connection, and prints how it
did: "close_notify" for a clean TLS end, "no close_notify: ..." for a TCP
close without one, "timeout" if nothing came. Run from the test
certificate directory. The shutdown tests use it to see whether the
server says goodbye properly to a client it cuts off; the framing tests
to send request lines our client never would.
"""
import socket
import ssl
import sys


def main():
    port = int(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 30
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain("client-cert.pem", "client-key.pem")
    ctx.load_verify_locations("ca-cert.pem")
    with socket.create_connection(("127.0.0.1", port), timeout=secs) as raw:
        # Ragged EOFs are what this reports, so they must not look clean.
        tls = ctx.wrap_socket(raw, server_hostname="localhost",
                              suppress_ragged_eofs=False)
        print("ready", flush=True)
        if len(sys.argv) > 3:
            tls.sendall(sys.argv[3].encode() + b"\n")
        pending = b""
        try:
            while True:
                data = tls.recv(4096)
                if not data:
                    print("close_notify", flush=True)
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    print("got:", line.decode(errors="replace"), flush=True)
        except socket.timeout:
            print("timeout", flush=True)
        except (ssl.SSLError, OSError) as e:
            print("no close_notify:", repr(e), flush=True)


main()
