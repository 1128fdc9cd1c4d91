#!/usr/bin/env python3
"""A man-in-the-middle TCP proxy that tampers with one TLS record per connection.

  tamper_proxy.py [--timeout SECS] TARGET_PORT PLAN...   PLAN: MODE:N, one per connection

Listens on a free loopback port (printed as "port P"), then takes clients
one after another: the Kth is connected to 127.0.0.1:TARGET_PORT and
handled by the Kth PLAN; after the last one the proxy exits. It forwards
bytes both ways. From client to server it splits the stream into TLS
records (5-byte headers) and counts those of type 23 (application data; in
TLS 1.3 every encrypted record is type 23 on the wire); the Nth one is, by
MODE:

  flip      forwarded with one bit of its ciphertext flipped;
  oversize  replaced by a header announcing 2^14 + 257 bytes, more than a
            TLS 1.3 record may carry (2^14 + 256) and more than the kernel
            accepts for TLS 1.2 AEAD records, followed by that many random
            bytes;
  pass      forwarded unchanged (the control).

Log lines, each prefixed "K " for the Kth connection: "upstream port P"
(the client port the server sees), every record ("c>s type T len L", the
tampered one with what was done; "s>c ..." for the server's), EOFs and
resets, and at the end "hit record N" or "never reached record N", then
"done". After the server ends its side the proxy passes that on as a FIN
and drops what the client still sends. Standard library only (it starts
once per test run: a Python start costs seconds in the UML guest);
every connection is bounded by --timeout seconds.
"""
import os
import selectors
import socket
import sys
import time

OVERSIZE = 2**14 + 257


def log(*words):
    print(*words, flush=True)


def records(state, data):
    """Whole records from one direction; a partial one waits in state."""
    state[0] += data
    buf = state[0]
    while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
        n = 5 + int.from_bytes(buf[3:5], "big")
        rec, buf = buf[:n], buf[n:]
        yield rec
    state[0] = buf


def tamper(rec, mode):
    if mode == "flip":
        at = 5 + (len(rec) - 5) // 2
        return (rec[:at] + bytes([rec[at] ^ 0x01]) + rec[at + 1:],
                "flipped bit 0 of ciphertext byte %d of %d" % (at - 5, len(rec) - 5))
    if mode == "oversize":
        return (bytes([23, 3, 3]) + OVERSIZE.to_bytes(2, "big") + os.urandom(OVERSIZE),
                "replaced by a header announcing %d bytes, and as many bytes" % OVERSIZE)
    return rec, "passed unchanged"


def handle(tag, client, target, mode, nth, timeout):
    start = time.monotonic()
    deadline = start + timeout
    server = socket.create_connection(("127.0.0.1", target), timeout=timeout)
    log(tag, "upstream port", server.getsockname()[1])
    client.setblocking(False)
    server.setblocking(False)
    name = {client: "c>s", server: "s>c"}    # what reading from it means
    peer = {client: server, server: client}
    pending = {client: b"", server: b""}     # still to be sent to it
    ended = {client: False, server: False}   # it sent EOF or reset
    shut = {client: False, server: False}    # we sent it our FIN
    parse = {client: [b""], server: [b""]}
    count, hit = 0, False
    sel = selectors.DefaultSelector()
    events = {client: 0, server: 0}

    while not (ended[client] and ended[server]):
        for sock in (client, server):
            ev = (0 if ended[sock] else selectors.EVENT_READ) | (
                selectors.EVENT_WRITE if pending[sock] else 0)
            if ev != events[sock]:
                if events[sock] and ev:
                    sel.modify(sock, ev)
                elif ev:
                    sel.register(sock, ev)
                else:
                    sel.unregister(sock)
                events[sock] = ev
        if not (events[client] or events[server]):
            break
        left = deadline - time.monotonic()
        if left <= 0:
            log(tag, "timeout")
            break
        for key, ev in sel.select(min(left, 1.0)):
            sock = key.fileobj
            if ev & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = None
                if not data:
                    ended[sock] = True
                    log(tag, name[sock], "reset" if data is None else "eof",
                        "after %.2f s" % (time.monotonic() - start))
                    if sock is server:
                        pending[server] = b""   # nobody left to take it
                elif ended[peer[sock]]:
                    pass                        # the other side is gone: drop
                elif sock is server:
                    for rec in records(parse[server], data):
                        log(tag, "s>c type %d len %d" % (rec[0], len(rec) - 5))
                    pending[client] += data
                else:
                    for rec in records(parse[client], data):
                        what = "c>s type %d len %d" % (rec[0], len(rec) - 5)
                        if rec[0] == 23:
                            count += 1
                            if count == nth:
                                rec, how = tamper(rec, mode)
                                hit = True
                                what += " %s: record %d of type 23 %s" % (mode, nth, how)
                        log(tag, what)
                        pending[server] += rec
            if ev & selectors.EVENT_WRITE and pending[sock]:
                try:
                    pending[sock] = pending[sock][sock.send(pending[sock]):]
                except OSError:
                    pending[sock] = b""
                    ended[sock] = True
                    log(tag, "send to", "server" if sock is server else "client",
                        "failed: reset")
        # A side that ended: once its data is through, pass its FIN on.
        for sock in (client, server):
            if ended[peer[sock]] and not pending[sock] and not shut[sock]:
                shut[sock] = True
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    sel.close()
    client.close()
    server.close()
    log(tag, "hit record %d" % nth if hit else
        "never reached record %d: only %d type-23 records" % (nth, count))


def main():
    args = sys.argv[1:]
    timeout = 60.0
    if args[:1] == ["--timeout"]:
        timeout, args = float(args[1]), args[2:]
    if len(args) < 2:
        sys.exit("usage: tamper_proxy.py [--timeout SECS] TARGET_PORT MODE:N...")
    target, plans = int(args[0]), []
    for p in args[1:]:
        mode, _, n = p.partition(":")
        if mode not in ("flip", "oversize", "pass") or not n.isdigit() or int(n) < 1:
            sys.exit("bad plan %r: want flip:N, oversize:N or pass:N" % p)
        plans.append((mode, int(n)))
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    log("port", lsock.getsockname()[1])
    for k, (mode, n) in enumerate(plans, 1):
        lsock.settimeout(timeout)
        client, _ = lsock.accept()
        handle(k, client, target, mode, n, timeout)
        log(k, "done")
    lsock.close()


if __name__ == "__main__":
    main()
