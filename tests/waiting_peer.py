#!/usr/bin/env python3
"""A TLS client that handshakes with our server, then only listens.

  waiting_peer.py PORT [SECS]

Prints "ready" once the handshake is done, then waits up to SECS (30)
for the server to end the connection and prints how it did:
"close_notify" for a clean TLS end, "no close_notify: ..." for a TCP
close without one, "timeout" if nothing came. Run from the test
certificate directory. Shutdown tests use it to see whether the server
says goodbye properly to a client it has to cut off.
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
        tls = ctx.wrap_socket(raw, server_hostname="localhost",
                              suppress_ragged_eofs=False)
        print("ready", flush=True)
        try:
            while True:
                data = tls.recv(4096)
                if not data:
                    print("close_notify", flush=True)
                    return
        except socket.timeout:
            print("timeout", flush=True)
        except (ssl.SSLError, OSError) as e:
            print("no close_notify:", repr(e), flush=True)


main()
