#!/usr/bin/env python3
"""tests/idle_peer.py - hold many idle mTLS connections to a server.

    python3 tests/idle_peer.py PORT N [CONCURRENCY] [LIMIT] [serve]

Run in a directory with ca-cert.pem, client-cert.pem and client-key.pem
(make_test_certs.sh). Opens N connections to 127.0.0.1:PORT, at most
CONCURRENCY (100) handshakes in flight at once, and completes each
handshake; then sends nothing. The TLS 1.3 tickets are left unread in the
socket: the server is then past its handshake and waiting for a request,
which is what an idle client costs it. Prints "held K failed F" once all
attempts are done, then holds the connections until its stdin ends
(the caller closes its end of a pipe), and closes them all at once;
with "serve", each then sends a hello first, reads the answer and closes
with close_notify, and "served K" says how many got one.
LIMIT (300) seconds bounds the whole run: nothing hangs.
"""
import asyncio
import ssl
import sys


async def hello(r, w):
    try:
        w.write(b"Hello from an idle peer")
        await w.drain()
        got = await asyncio.wait_for(r.read(4096), 30)
        w.close()
        await asyncio.wait_for(w.wait_closed(), 10)
        return len(got) > 0
    except (OSError, ssl.SSLError, asyncio.TimeoutError):
        return False


async def main(port, n, conc, serve):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile="ca-cert.pem")
    ctx.load_cert_chain("client-cert.pem", "client-key.pem")
    gate = asyncio.Semaphore(conc)
    errors = {}

    async def one():
        async with gate:
            try:
                return await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                    ssl_handshake_timeout=30)
            except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
                errors[repr(e)[:100]] = errors.get(repr(e)[:100], 0) + 1
                return None

    conns = [c for c in await asyncio.gather(*(one() for _ in range(n)))
             if c is not None]
    print("held %d failed %d" % (len(conns), n - len(conns)), flush=True)
    for e, k in errors.items():
        print("error %dx %s" % (k, e), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    if serve:
        ok = await asyncio.gather(*(hello(r, w) for r, w in conns))
        print("served %d" % sum(ok), flush=True)
        return
    for _, w in conns:
        w.transport.abort()


if __name__ == "__main__":
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 300
    serve = len(sys.argv) > 5 and sys.argv[5] == "serve"
    try:
        asyncio.run(asyncio.wait_for(main(port, n, conc, serve), limit))
    except asyncio.TimeoutError:
        print("idle_peer: gave up after %g s" % limit, flush=True)
        sys.exit(1)
