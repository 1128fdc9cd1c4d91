#!/usr/bin/env bash
# tests/hostile_tests.sh - hostile and broken peers against one long-running
# server, in userspace TLS (no kTLS needed): garbage, plain HTTP, SSLv2
# hellos, truncated and oversized records, old protocol versions, weak
# cipher offers, a peer that hangs up mid-handshake. For each one:
#   - the peer is dropped promptly (EOF within a few seconds, not a hang
#     until the handshake deadline), with the alert OpenSSL sends for it;
#   - the server logs exactly one line for that client, naming the problem;
#   - the server still runs, has no handler thread left over, and serves a
#     good client right afterwards.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
# A hostile peer must be dropped within this many seconds. The server's
# handshake deadline is far above it, so a server that waits for more
# bytes instead of refusing fails here rather than being rescued by it.
PROMPT=3
DEADLINE=20

# The raw peer. Modes:
#   capture FILE            a real ClientHello from openssl s_client, into FILE
#   send PORT WHAT [FILE]   connect, send WHAT, read what comes back until
#                           EOF; prints "port=P result=eof|reset|timeout
#                           secs=S got=alert:N,..|nothing sent=HEX"
#   hangup PORT FILE        send the first half of FILE's ClientHello, close
RAW_PY=$(cat <<'EOF'
import os, socket, subprocess, sys, time

def ext(t, body):
    return t.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body

def tls12_hello(suites):
    """A TLS 1.2 ClientHello offering exactly these cipher suites."""
    s = b"".join(x.to_bytes(2, "big") for x in suites)
    e = (ext(0x000a, b"\x00\x04\x00\x1d\x00\x17") +     # groups: x25519, P-256
         ext(0x000b, b"\x01\x00") +                     # uncompressed points
         ext(0x000d, b"\x00\x06\x04\x03\x08\x04\x04\x01"))  # signature algorithms
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + len(s).to_bytes(2, "big") + s +
            b"\x01\x00" + len(e).to_bytes(2, "big") + e)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs

def sslv2_hello(version, specs):
    """A ClientHello in the SSLv2 record format (2-byte header, high bit set)."""
    chal = os.urandom(16)
    body = (b"\x01" + version.to_bytes(2, "big") + len(specs).to_bytes(2, "big") +
            b"\x00\x00" + len(chal).to_bytes(2, "big") + specs + chal)
    return bytes([0x80 | len(body) >> 8, len(body) & 0xFF]) + body

def garbage():
    """64 random bytes that do not begin like a TLS or SSLv2 record (those
    have tests of their own), so the server's answer is predictable."""
    while True:
        b = os.urandom(64)
        if b[1] != 3 and not (b[0] & 0x80 and b[2] == 1):
            return b

def payload(what, chfile):
    if what == "random":
        return garbage()
    if what == "http":
        return b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    if what == "sslv2":       # real SSLv2: version 2, RC4-MD5 and 3DES-MD5 kinds
        return sslv2_hello(0x0002, bytes.fromhex("0100800700c0"))
    if what == "sslv2-tls10": # the SSLv2-compatible hello of old TLS 1.0 clients
        return sslv2_hello(0x0301, bytes.fromhex("00c00900c00a00002f000035"))
    if what == "rc4":         # ECDHE-ECDSA-RC4-SHA, ECDHE-RSA-RC4-SHA, RC4-SHA, RC4-MD5
        return tls12_hello([0xC007, 0xC011, 0x0005, 0x0004])
    if what == "truncated":
        return open(chfile, "rb").read()[:40]
    if what == "oversize":    # a length no TLS record may have (> 2^14 + 2048)
        return bytes([22, 3, 3, 0x48, 0x00]) + bytes(1024)
    if what == "plain-2^14+1":  # a whole plaintext record one byte over 2^14
        return bytes([22, 3, 3, 0x40, 0x01]) + bytes(0x4001)
    raise SystemExit("unknown payload " + what)

def records(data):
    out, i = [], 0
    while i + 5 <= len(data):
        t, n = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        body = data[i + 5:i + 5 + n]
        out.append("alert:%d" % body[1] if t == 21 and len(body) == 2 else "record:%d" % t)
        i += 5 + n
    if i < len(data):
        out.append("partial")
    return ",".join(out) or "nothing"

def send(port, what, chfile, limit):
    data = payload(what, chfile)
    s = socket.create_connection(("127.0.0.1", port))
    print("port=%d" % s.getsockname()[1], end=" ", flush=True)
    s.sendall(data)
    if what == "truncated":
        s.shutdown(socket.SHUT_WR)  # "then close": the server sees our FIN
    s.settimeout(limit)
    got, result, t0 = b"", "eof", time.monotonic()
    try:
        while True:
            x = s.recv(65536)
            if not x:
                break
            got += x
    except socket.timeout:
        result = "timeout"
    except ConnectionResetError:
        result = "reset"
    print("result=%s secs=%.2f got=%s sent=%s" % (result, time.monotonic() - t0,
          records(got), data[:16].hex()))
    s.close()

def hangup(port, chfile):
    ch = open(chfile, "rb").read()
    s = socket.create_connection(("127.0.0.1", port))
    print("port=%d" % s.getsockname()[1], flush=True)
    s.sendall(ch[:len(ch) // 2])
    s.close()

def capture(out):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(10)
    sc = subprocess.Popen(["openssl", "s_client", "-connect",
                           "127.0.0.1:%d" % lsock.getsockname()[1]],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    c, _ = lsock.accept()
    c.settimeout(10)
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        x = c.recv(65536)
        if not x:
            break
        data += x
    sc.kill()
    sc.wait()
    open(out, "wb").write(data)
    print("captured %d bytes" % len(data))

a = sys.argv[1:]
if a[0] == "capture":
    capture(a[1])
elif a[0] == "send":
    send(int(a[1]), a[2], a[3] if len(a) > 3 else None, float(os.environ.get("LIMIT", "8")))
elif a[0] == "hangup":
    hangup(int(a[1]), a[2])
EOF
)
raw() { timeout 30 python3 -c "$RAW_PY" "$@"; }

CH=$WORK/clienthello.bin

threads() { client_threads "$SRV_PROC"; }

# no_handlers: up to 5 s for every per-client thread to end.
no_handlers() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(threads)" = 0 ] && return 0
		nap 0.05
	done
	return 1
}

# The server's one-line failure reports so far.
error_lines() { grep -c '^hello_ktls_server: client ' "$SRV_LOG"; }

# logged NAME CPORT REASON: the server's line for the client at CPORT
# (up to 5 s) is exactly "client 127.0.0.1:CPORT: REASON", and it is the
# only failure line since ERR0 (the count before the hostile peer).
# REASON is OpenSSL's reason for the failure, or several separated by "|"
# where OpenSSL versions word it differently (the line is one of them, in
# full: our prefix, then OpenSSL's reason, nothing else).
logged() {
	local name="$1: server logs '$3'" prefix="hello_ktls_server: client 127.0.0.1:$2: " line n
	local reason ok= reasons
	if ! wait_for_line "$SRV_LOG" "$prefix"; then
		fail "$name" "no line for client port $2" "$SRV_LOG"
		return
	fi
	line=$(grep -F "$prefix" "$SRV_LOG")
	nap 0.2
	n=$(error_lines)
	IFS='|' read -ra reasons <<<"$3"
	for reason in "${reasons[@]}"; do
		if [ "$line" = "$prefix$reason" ]; then ok=1; fi
	done
	if [ -z "$ok" ]; then
		fail "$name" "it logged '${line#"$prefix"}'" "$SRV_LOG"
	elif [ "$n" -ne $((ERR0 + 1)) ]; then
		fail "$name" "$((n - ERR0)) new failure lines, want 1" "$SRV_LOG"
	else
		pass "$name"
	fi
}

# after NAME: the server is alive, no handler thread is left behind, and
# a good client is served.
after() {
	local name=$1 out
	new_log out good
	run_client "$out"
	if ! kill -0 "$SRV_PROC" 2>/dev/null; then
		fail "$name: server survives" "server process $SRV_PROC is gone" "$SRV_LOG"
	elif [ "$CLI_RC" -ne 0 ] || ! has "$out" "$HELLO_C"; then
		fail "$name: a good client is served afterwards" "rc=$CLI_RC" "$out" "$SRV_LOG"
	elif ! no_handlers; then
		fail "$name: server survives" "per-client threads left over: $(threads)"
	else
		pass "$name: server alive, no thread left over, a good client is served afterwards"
	fi
}

# hostile NAME WHAT REASON GOT: a raw peer sends WHAT and must see EOF
# within PROMPT seconds, having received GOT (e.g. alert:70, nothing).
hostile() {
	local name=$1 what=$2 reason=$3 want=$4 out re
	new_log out raw
	ERR0=$(error_lines)
	LIMIT=$((PROMPT + 5)) raw send "$PORT" "$what" "$CH" >"$out" 2>&1
	re='^port=([0-9]+) result=([a-z]+) secs=([0-9.]+) got=([^ ]+) '
	if ! [[ $(<"$out") =~ $re ]]; then
		fail "$name" "raw peer failed" "$out"
		return
	fi
	local cport=${BASH_REMATCH[1]} result=${BASH_REMATCH[2]} secs=${BASH_REMATCH[3]} got=${BASH_REMATCH[4]}
	if [ "$result" = timeout ] || [ "${secs%.*}" -ge "$PROMPT" ]; then
		fail "$name: dropped promptly" "peer saw $result after $secs s (limit $PROMPT s)" "$out" "$SRV_LOG"
	elif [ "$got" != "$want" ]; then
		fail "$name: dropped promptly" "peer got '$got' then $result, want '$want'" "$out"
	else
		pass "$name: dropped in $secs s ($result), peer got $want"
	fi
	logged "$name" "$cport" "$reason"
	after "$name"
}

# foreign NAME REASON S_CLIENT_SAYS ARGS...: openssl s_client with ARGS
# (and our client certificate) is refused promptly with REASON.
foreign() {
	local name=$1 reason=$2 says=$3 out cport t0 rc=0
	shift 3
	new_log out s_client
	ERR0=$(error_lines)
	cport=$(free_port)
	t0=$EPOCHREALTIME
	timeout $((PROMPT + 5)) openssl s_client -brief -connect "127.0.0.1:$PORT" -bind "127.0.0.1:$cport" \
	    -cert client-cert.pem -key client-key.pem -CAfile ca-cert.pem "$@" \
	    </dev/null >"$out" 2>&1 || rc=$?
	local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
	if [ "$rc" -eq 124 ] || [ "$ms" -ge $((PROMPT * 1000)) ]; then
		fail "$name: refused promptly" "s_client took $ms ms (rc $rc)" "$out"
	elif [ "$rc" -eq 0 ] || ! has "$out" "$says"; then
		fail "$name: refused" "s_client rc=$rc, want 1 and '$says'" "$out"
	else
		pass "$name: refused in $ms ms, s_client sees '$says'"
	fi
	logged "$name" "$cport" "$reason"
	after "$name"
}

# A peer that hangs up mid-handshake: nothing to read back, so the
# promptness is the server's: its line and its handler's exit.
hangup() {
	local name="first half of a ClientHello, then the peer hangs up" out re t0
	new_log out raw
	ERR0=$(error_lines)
	t0=$SECONDS
	raw hangup "$PORT" "$CH" >"$out" 2>&1
	re='^port=([0-9]+)'
	if ! [[ $(<"$out") =~ $re ]]; then
		fail "$name" "raw peer failed" "$out"
		return
	fi
	logged "$name" "${BASH_REMATCH[1]}" \
	    "the client closed the connection without close_notify (truncated)"
	if no_handlers && [ $((SECONDS - t0)) -lt "$PROMPT" ]; then
		pass "$name: its handler exited within $PROMPT s"
	else
		fail "$name: its handler exited within $PROMPT s" "still there after $((SECONDS - t0)) s" "$SRV_LOG"
	fi
	after "$name"
}

if ! raw capture "$CH" >"$WORK/capture.log" 2>&1 || [ "$(stat -c %s "$CH")" -lt 100 ]; then
	fail "capture a ClientHello from openssl s_client" "nothing captured" "$WORK/capture.log"
	hk_summary
	exit
fi

start_server --handshake-timeout "$DEADLINE"
server_proc
check "server started (process $SRV_PROC)" [ -n "$SRV_PROC" ]

# Not TLS at all: OpenSSL drops it without an alert.
hostile "64 random bytes" random "wrong version number" nothing
hostile "plain HTTP request" http "http request" nothing
# SSLv2 record format: real SSLv2, and SSLv2-compatible TLS 1.0 (70: protocol_version).
hostile "SSLv2 ClientHello (version 2)" sslv2 "unknown protocol" alert:70
hostile "SSLv2-format ClientHello offering TLS 1.0" sslv2-tls10 "unsupported protocol" alert:70
# OpenSSL 3.0 reports an EOF inside a record as truncation, with decode_error (50).
hostile "first 40 bytes of a ClientHello, then FIN" truncated \
    "the client closed the connection without close_notify (truncated)" alert:50
# Record lengths (22: record_overflow): refused from the header alone.
# (OpenSSL 3.0 says "packet length too long", 3.2 and later "data length too long".)
hostile "record header announcing 0x4800 bytes" oversize \
    "packet length too long|data length too long" alert:22
hostile "plaintext record of 2^14+1 bytes" "plain-2^14+1" "data length too long" alert:22
hangup
# Weak offers (40: handshake_failure). OpenSSL 3.0's s_client cannot offer RC4.
hostile "TLS 1.2 ClientHello offering only RC4 suites" rc4 "no shared cipher" alert:40
foreign "TLS 1.1-only offer" "unsupported protocol" "alert protocol version" \
    -tls1_1 -cipher DEFAULT@SECLEVEL=0
foreign "TLS 1.0-only offer" "unsupported protocol" "alert protocol version" \
    -tls1 -cipher DEFAULT@SECLEVEL=0
# Every CBC (MAC-then-encrypt, no kTLS) suite of OpenSSL's default list.
foreign "TLS 1.2 CBC-only offer" "no shared cipher" "alert handshake failure" \
    -tls1_2 -cipher 'DEFAULT:!AESGCM:!AESCCM:!CHACHA20'

check "the same server process ran throughout" kill -0 "$SRV_PROC"
stop_server
hk_summary
