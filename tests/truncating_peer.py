#!/usr/bin/env python3
"""A TLS peer that ends the connection with a TCP FIN and no close_notify.

  truncating_peer.py client PORT   handshake with our server, then FIN
  truncating_peer.py server        listen on a free port (printed as
                                   "port N"), read one message, then FIN

Run from the test certificate directory. Python's SSLSocket.shutdown()
shuts the TCP socket down without sending close_notify, which is the
point: the other side must report truncation, not a clean end.
"""
import socket
import ssl
import sys
import time


def client(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain("client-cert.pem", "client-key.pem")
    ctx.load_verify_locations("ca-cert.pem")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        # Give the server time to offload: the kernel attaches kTLS
        # only to an established connection, not to a half-closed one.
        time.sleep(1)
        tls.shutdown(socket.SHUT_WR)
        time.sleep(1)


def server():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("server-cert.pem", "server-key.pem")
    ctx.load_verify_locations("ca-cert.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        print("port", lsock.getsockname()[1], flush=True)
        lsock.settimeout(20)
        raw, _ = lsock.accept()
        raw.settimeout(20)
        tls = ctx.wrap_socket(raw, server_side=True)
        tls.recv(4096)
        tls.shutdown(socket.SHUT_WR)
        time.sleep(1)
        raw.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client(int(sys.argv[2]))
    else:
        server()
