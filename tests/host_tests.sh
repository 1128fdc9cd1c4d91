#!/usr/bin/env bash
# tests/host_tests.sh - system tests that need no kernel TLS: the
# userspace fallback, --ktls require refusing, bad certificates, keys,
# files and flags. A running server must keep serving good clients after
# every bad one.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
HELLO_S='Received from client: Hello from kTLS client! I have a valid certificate.'
NO_ULP='kernel has no TLS ULP (CONFIG_TLS / tls module)'

# good_client NAME: a good client still gets its answer from the server.
good_client() {
	run_client "$WORK/good.log"
	if [ "$CLI_RC" -eq 0 ] && has "$WORK/good.log" "$HELLO_C"; then
		pass "$1: a good client is served afterwards"
	else
		fail "$1: a good client is served afterwards" "rc=$CLI_RC" "$WORK/good.log" "$SRV_LOG"
	fi
}

# bad_client NAME SERVER_SAYS CLIENT_SAYS ARGS...: a rejected client.
bad_client() {
	client_refused "$@"
	good_client "$1"
}

host_has_ktls() { [ -e /proc/net/tls_stat ]; }

# --quiet: one line per client, when it leaves, and none of its progress;
# a refused client's line says why; warnings still come.
test_quiet() {
	local v=$1 line subject='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Test Client'
	start_server --quiet --ktls off --tls-version "$v"
	run_client "$WORK/q1.log"
	run_client "$WORK/q2.log" --cert other-client-cert.pem --key other-client-key.pem
	wait_count "$SRV_LOG" "Client done: " 2
	stop_server
	check "TLS $v --quiet: the client was served" has "$WORK/q1.log" "$HELLO_C"
	line="Client done: $subject; TLSv$v "
	if grep -F "$line" "$SRV_LOG" | grep -qE "^\[127\.0\.0\.1:[0-9]+\] .* full; kTLS TX off RX off; in 51 B, out 55 B; close_notify$"; then
		pass "TLS $v --quiet: the served client's line (who, protocol, kTLS, bytes, close_notify)"
	else
		fail "TLS $v --quiet: the served client's line" "no line with $line... full; kTLS TX off RX off; in 51 B, out 55 B; close_notify" "$SRV_LOG"
	fi
	check "TLS $v --quiet: the refused client's line says why" \
	    has "$SRV_LOG" "Client done: no TLS session; client certificate rejected: unable to get local issuer certificate"
	if [ "$(grep -c '^\[' "$SRV_LOG")" -eq 2 ] &&
	    ! has "$SRV_LOG" "Performing TLS handshake" &&
	    has "$SRV_LOG" "Quiet: one line per client, when it leaves"; then
		pass "TLS $v --quiet: nothing else about the clients on stdout"
	else
		fail "TLS $v --quiet: nothing else about the clients" \
		    "$(grep -c '^\[' "$SRV_LOG") client lines, want 2" "$SRV_LOG"
	fi
}

test_fallback() {
	if host_has_ktls; then
		echo "# this kernel has kTLS: the fallback tests need one without it"
		return
	fi
	start_server --once
	run_client "$WORK/c.log"
	wait_server
	if [ "$CLI_RC" -eq 0 ] && [ "$SRV_RC" -eq 0 ] &&
	    has "$WORK/c.log" "kTLS TX: unavailable ($NO_ULP)" &&
	    has "$WORK/c.log" "kTLS RX: unavailable ($NO_ULP)" &&
	    has "$SRV_LOG" "kTLS TX: unavailable ($NO_ULP)" &&
	    has "$WORK/c.log" "$HELLO_C" && has "$SRV_LOG" "$HELLO_S"; then
		pass "auto: falls back to userspace TLS and still exchanges the messages"
	else
		fail "auto fallback" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi

	start_server --once
	run_client "$WORK/c.log" --ktls require
	wait_server
	if [ "$CLI_RC" -eq 1 ] && [ "$SRV_RC" -eq 1 ] &&
	    has "$WORK/c.log" "kTLS required but RX stayed in userspace: $NO_ULP" &&
	    has "$SRV_LOG" "client closed before sending a message"; then
		pass "require (client): exits 1 with the reason"
	else
		fail "require (client)" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi

	start_server --once --ktls require
	run_client "$WORK/c.log"
	wait_server
	if [ "$SRV_RC" -eq 1 ] && has "$SRV_LOG" "kTLS required but RX stayed in userspace: $NO_ULP" &&
	    [ "$CLI_RC" -eq 1 ]; then
		pass "require (server): the --once server exits 1 with the reason"
	else
		fail "require (server)" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi
}

test_off() {
	start_server --once --ktls off
	run_client "$WORK/c.log" --ktls off
	wait_server
	if [ "$CLI_RC" -eq 0 ] && [ "$SRV_RC" -eq 0 ] &&
	    has "$WORK/c.log" "kTLS TX: off (disabled with --ktls off)" &&
	    has "$SRV_LOG" "kTLS RX: off (disabled with --ktls off)" &&
	    has "$WORK/c.log" "$HELLO_C"; then
		pass "off: never tries kTLS and exchanges the messages"
	else
		fail "off" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi
}

# The same rejections under each protocol version: the failure surfaces
# in the handshake (1.2) or at the first read after it (1.3).
test_bad_clients() {
	local v=$1
	start_server --tls-version "$v"
	bad_client "TLS $v other CA" "client certificate rejected: unable to get local issuer certificate" \
	    "server refused the connection" --cert other-client-cert.pem --key other-client-key.pem
	bad_client "TLS $v expired client certificate" "client certificate rejected: certificate has expired" \
	    "certificate expired" --cert expired-client-cert.pem --key expired-client-key.pem
	bad_client "TLS $v not-yet-valid client certificate" "client certificate rejected: certificate is not yet valid" \
	    "bad certificate" --cert notyetvalid-client-cert.pem --key notyetvalid-client-key.pem
	bad_client "TLS $v client certificate for serverAuth only" "client certificate rejected: unsuitable certificate purpose" \
	    "unsupported certificate" --cert serveronly-client-cert.pem --key serveronly-client-key.pem
	bad_client "TLS $v chain through a non-CA intermediate" "client certificate rejected: invalid CA certificate" \
	    "unknown ca" --cert badchain-client-chain.pem --key badchain-client-key.pem

	# No client certificate at all: only a foreign client can do that.
	(echo hello; wait_for_line "$SRV_LOG" "the client sent no certificate") |
	    timeout 20 openssl s_client -connect "127.0.0.1:$PORT" \
	    -CAfile ca-cert.pem -quiet >"$WORK/sc.log" 2>&1
	check "TLS $v client without a certificate is rejected" \
	    wait_for_line "$SRV_LOG" "client certificate rejected: the client sent no certificate"
	good_client "TLS $v no certificate"
	check "TLS $v server still running after the bad clients" kill -0 "$SRV_PID"
	stop_server
}

test_server_name() {
	start_server --cert wrongname-server-cert.pem --key wrongname-server-key.pem
	run_client "$WORK/c.log" -H localhost
	check "server certificate for another name: rejected by name" \
	    has "$WORK/c.log" "server certificate rejected: hostname mismatch"
	check "server certificate for another name: exit 1" [ "$CLI_RC" -eq 1 ]
	run_client "$WORK/c.log" -H 127.0.0.1
	check "server certificate without our IP: rejected by address" \
	    has "$WORK/c.log" "server certificate rejected: IP address mismatch"
	stop_server
	# The good certificate names localhost, 127.0.0.1 and ::1.
	start_server
	run_client "$WORK/c.log" -H localhost
	check "server certificate matches the name localhost" [ "$CLI_RC" -eq 0 ]
	if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
		run_client "$WORK/c.log" -H ::1
		check "IPv6 literal ::1 connects and matches the certificate" has "$WORK/c.log" "$HELLO_C"
	fi
	stop_server
}

# expect_start_error NAME RC TEXT PROGRAM ARGS...: fails before any network.
expect_start_error() {
	local name=$1 want=$2 text=$3 rc=0
	shift 3
	timeout 10 "$@" >"$WORK/e.log" 2>&1 || rc=$?
	if [ "$rc" -eq "$want" ] && has "$WORK/e.log" "$text"; then
		pass "$name"
	else
		fail "$name" "rc=$rc, want $want and '$text'" "$WORK/e.log"
	fi
}

test_bad_files_and_flags() {
	local b
	for b in "$SERVER" "$CLIENT"; do
		local n=${b##*/}
		expect_start_error "$n: missing certificate file" 1 \
		    "cannot load certificate nope.pem: No such file or directory" "$b" --cert nope.pem
		expect_start_error "$n: certificate file that is not PEM" 1 \
		    "cannot load certificate garbage.pem" "$b" --cert garbage.pem
		expect_start_error "$n: key that does not match the certificate" 1 \
		    "private key mismatched-key.pem does not match the certificate" "$b" --key mismatched-key.pem
		expect_start_error "$n: missing CA file" 1 \
		    "cannot load CA certificate nope.pem" "$b" --ca nope.pem
		expect_start_error "$n: unknown option" 2 "unknown option '--bogus'" "$b" --bogus
		expect_start_error "$n: unknown option inside a cluster" 2 "unknown option '-z'" "$b" -zq
		expect_start_error "$n: a value for an option that takes none" 2 \
		    "option '--help' takes no value" "$b" --help=1
		expect_start_error "$n: --port with a sign" 2 "invalid value for --port" "$b" --port +80
		expect_start_error "$n: --port with a leading space" 2 "invalid value for --port" "$b" --port " 80"
		expect_start_error "$n: bad --ktls value" 2 "invalid value for --ktls" "$b" --ktls maybe
		expect_start_error "$n: bad --tls-version" 2 "invalid value for --tls-version" "$b" --tls-version 1.1
		expect_start_error "$n: bad --port" 2 "invalid value for --port" "$b" --port 70000
		expect_start_error "$n: unusable --ciphers" 1 "no usable TLS 1.2 cipher" "$b" --ciphers NOPE
		expect_start_error "$n: --help" 0 "usage:" "$b" --help
		expect_start_error "$n: --version" 0 "$n 1." "$b" --version
	done
	expect_start_error "client: nobody listening" 1 "cannot connect to 127.0.0.1 port" \
	    "$CLIENT" -p "$(free_port)"
}

# SSLKEYLOGFILE: secrets go to that file (with a warning), nowhere else.
test_keylog() {
	local keys=$WORK/keys.log secret
	start_server --once --tls-version 1.3
	SSLKEYLOGFILE=$keys run_client "$WORK/c.log"
	wait_server
	secret=$(awk '$1 == "CLIENT_TRAFFIC_SECRET_0" { print $3; exit }' "$keys" 2>/dev/null)
	if [ "$CLI_RC" -eq 0 ] && [ ${#secret} -eq 96 ] &&
	    has "$WORK/c.log" "warning: SSLKEYLOGFILE is set" &&
	    [ "$(stat -c %a "$keys")" = 600 ] &&
	    ! grep -qi "$secret" "$WORK/c.log" "$SRV_LOG"; then
		pass "SSLKEYLOGFILE gets the TLS 1.3 secrets (mode 0600, with a warning), the logs do not"
	else
		fail "SSLKEYLOGFILE" "rc=$CLI_RC secret length ${#secret}" "$WORK/c.log" "$keys"
	fi
}

# --get: downloads below --root, refusals for everything else.
test_get() {
	local root=$WORK/root p
	mkdir -p "$root/sub" && head -c 3000000 /dev/urandom >"$root/big.bin"
	echo hello >"$root/sub/a.txt"
	ln -sf /etc/passwd "$root/escape"
	mkfifo "$root/fifo"
	start_server --root "$root"
	run_client "$WORK/c.log" --get big.bin -o "$WORK/got.bin"
	if [ "$CLI_RC" -eq 0 ] && cmp -s "$root/big.bin" "$WORK/got.bin" &&
	    wait_for_line "$SRV_LOG" "Sent big.bin (3000000 bytes) with read + SSL_write (userspace TLS)"; then
		pass "--get: a 3 MB file arrives intact (userspace path named)"
	else
		fail "--get" "rc=$CLI_RC" "$WORK/c.log" "$SRV_LOG"
	fi
	CLI_RC=0
	timeout 20 "$CLIENT" -p "$PORT" --get sub/a.txt -o - >"$WORK/stdout" 2>"$WORK/c.log" || CLI_RC=$?
	check "--get -o -: only the file's bytes on stdout" cmp -s "$root/sub/a.txt" "$WORK/stdout"
	for p in "../etc/passwd:leaves the served directory" \
	    "/etc/passwd:only paths relative to the served directory" \
	    "escape:leaves the served directory" "fifo:not a regular file" \
	    "sub:not a regular file" "nope:No such file or directory"; do
		run_client "$WORK/c.log" --get "${p%%:*}" -o "$WORK/x"
		if [ "$CLI_RC" -eq 1 ] && has "$WORK/c.log" "server refused: ${p%%:*}: ${p#*:}" &&
		    [ ! -e "$WORK/x" ] && [ ! -e "$WORK/x.part" ]; then
			pass "--get ${p%%:*}: refused ('${p#*:}'), nothing written"
		else
			fail "--get ${p%%:*}" "rc=$CLI_RC" "$WORK/c.log"
		fi
	done
	good_client "--get refusals"
	stop_server
	start_server
	run_client "$WORK/c.log" --get big.bin -o "$WORK/x"
	check "--get from a server without --root is refused" \
	    has "$WORK/c.log" "server refused: this server serves no files (no --root)"
	stop_server
}

# --bench in userspace: both directions, both sides measured.
test_bench() {
	start_server --ktls off
	run_client "$WORK/c.log" --ktls off --bench 64M --direction both
	stop_server
	if [ "$CLI_RC" -eq 0 ] &&
	    [ "$(grep -c '^BENCH side=.* bytes=67108864 .*path=userspace$' "$WORK/c.log")" -eq 4 ]; then
		pass "--bench both --ktls off: 4 measurements (client/server x down/up), data checked"
	else
		fail "--bench" "rc=$CLI_RC" "$WORK/c.log"
	fi
	check "--bench: malformed size is a usage error" expect_start_error \
	    "bench size" 2 "invalid value for --bench" "$CLIENT" --bench 12Q
}

# Request lines our client never sends: each gets one ERR line and a
# clean close, and one log line; the well-formed line after them works.
test_framing() {
	local line out
	start_server
	for line in 'HKTLS/1 BENCH  UP 5' 'HKTLS/1 BENCH UP 5 x' 'HKTLS/1 BENCH UP +5' \
	    'HKTLS/1 BENCH DOWN 5 sendfile ' 'HKTLS/1 BENCH UP' 'HKTLS/1 PUT x' \
	    'HKTLS/1 BENCH DOWN 18446744073709551616 sendfile'; do
		new_log out framing
		timeout 30 python3 "$HK_ROOT/tests/waiting_peer.py" "$PORT" 10 "$line" >"$out" 2>&1
		if has "$out" "got: HKTLS/1 ERR malformed request" && [ "$(tail -n 1 "$out")" = close_notify ]; then
			pass "request '$line': refused as malformed, then close_notify"
		else
			fail "request '$line' refused" "no ERR line or no close_notify" "$out"
		fi
	done
	check "each malformed request logged once" \
	    test "$(grep -c ': refused: malformed request$' "$SRV_LOG")" -eq 7
	new_log out framing
	timeout 30 python3 "$HK_ROOT/tests/waiting_peer.py" "$PORT" 10 'HKTLS/1 BENCH UP 0' >"$out" 2>&1
	check "the well-formed 'HKTLS/1 BENCH UP 0' is answered with STATS" \
	    has "$out" "got: HKTLS/1 STATS 0 "
	stop_server
}

# idle_conns N SECS [HALF]: N raw TCP connections to PORT that say nothing
# for SECS, and HALF more that send the start of a ClientHello record and
# then nothing.
idle_conns() {
	python3 -c 'import socket, sys, time
port, n, secs, half = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = [socket.create_connection(("127.0.0.1", port)) for _ in range(n + half)]
for c in s[n:]:
    c.sendall(bytes([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]) + bytes(30))
print("open", flush=True)
time.sleep(secs)' "$PORT" "$1" "$2" "${3:-0}" >"$WORK/idle.log" 2>&1 &
	IDLE_PID=$!
	wait_for_line "$WORK/idle.log" open
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Deadlines and limits: silent clients are dropped on time, a server at
# its limit refuses quickly, and good clients are served throughout.
test_limits() {
	local t0 ms i
	local n=${HK_SLOW_CLIENTS:-200} limit_ms=${HK_SLOW_LIMIT_MS:-1000}
	start_server --handshake-timeout 3 --max-connections 1024
	idle_conns "$n" 8 "$n"
	t0=$(now_ms)
	run_client "$WORK/c.log"
	ms=$(($(now_ms) - t0))
	check "a good client is served while $n silent and $n half-handshake clients wait (${ms} ms, limit ${limit_ms})" \
	    test "$CLI_RC" -eq 0 -a "$ms" -le "$limit_ms"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c 'handshake not finished within 3 s (--handshake-timeout)' "$SRV_LOG")" -ge $((2 * n)) ] && break
		nap 0.1
	done
	check "all $((2 * n)) dropped at --handshake-timeout" \
	    test "$(grep -c 'handshake not finished within 3 s (--handshake-timeout)' "$SRV_LOG")" -eq $((2 * n))
	wait "$IDLE_PID"
	stop_server

	start_server --handshake-timeout 2 --max-connections 3
	idle_conns 3 4 0
	wait_clients 3
	run_client "$WORK/c.log"
	check "over --max-connections: refused at once" test "$CLI_RC" -eq 1
	check "over --max-connections: the refusal is logged" \
	    wait_for_line "$SRV_LOG" "connections open (--max-connections)"
	wait "$IDLE_PID"
	wait_clients 0
	run_client "$WORK/c.log"
	check "below the limit again: a good client is served" test "$CLI_RC" -eq 0
	stop_server
}

# SIGTERM during downloads: one that ends within --grace completes; ones
# kept blocked in the middle of a long write (readers that stay slow
# until told) are cut after it, each at a record boundary with
# close_notify, not a bare FIN, once their reader catches up.
test_shutdown_transfers() {
	local rc=0 ok=0 out i
	local -a peers=() pids=()
	mkdir -p "$WORK/root"
	head -c 64M /dev/zero >"$WORK/root/big"
	head -c 8M /dev/zero >"$WORK/root/small"
	start_server --root "$WORK/root" --grace 2
	for i in 1 2 3; do
		new_log out cut
		peers+=("$out")
		python3 "$HK_ROOT/tests/waiting_peer.py" "$PORT" 60 "HKTLS/1 GET big" usr1 >"$out" 2>&1 &
		pids+=($!)
	done
	new_log out within
	python3 "$HK_ROOT/tests/waiting_peer.py" "$PORT" 60 "HKTLS/1 GET small" 1 >"$out" 2>&1 &
	for i in "${peers[@]}" "$out"; do
		wait_long "$i" "got: HKTLS/1 OK" 30
	done
	kill -TERM "$SRV_PID"
	# Past the grace period the server cuts the slow ones; then they
	# read fast so that what it sent, close_notify last, can arrive.
	wait_for_line "$SRV_LOG" "Shutting down"
	wait_count "$SRV_LOG" "closed, the server is shutting down" 3 10
	kill -USR1 "${pids[@]}" 2>/dev/null
	wait "$SRV_PID" || rc=$?
	SRV_PID=
	wait
	check "SIGTERM during downloads: the server exits 0" test "$rc" -eq 0
	check "a download that ends within --grace completes (8 MiB, close_notify)" \
	    test "$(tail -n 2 "$out" | tr '\n' ' ')" = "bytes: 8388627 close_notify "
	for out in "${peers[@]}"; do
		[ "$(tail -n 1 "$out")" = close_notify ] && ok=$((ok + 1))
	done
	check "downloads cut after --grace end with close_notify ($ok of 3)" test "$ok" -eq 3
	check "each cut download got less than the file" \
	    test "$(grep -l "^bytes: $((20 + 64 * 1048576))\$" "${peers[@]}" | wc -l)" -eq 0
}

# SIGTERM: stop accepting, give open clients --grace, then end them:
# one still in its handshake, one established and silent, which must get
# close_notify (in userspace TLS here; kernel_tests.sh does it with kTLS).
test_shutdown() {
	local rc=0 t0 peer
	start_server --grace 1 --handshake-timeout 30
	idle_conns 1 10 0
	new_log peer waiting
	python3 "$HK_ROOT/tests/waiting_peer.py" "$PORT" 20 >"$peer" 2>&1 &
	wait_for_line "$peer" ready
	# Both taken by the server before it is told to stop: a connection
	# still in the listen queue at SIGTERM is never accepted.
	wait_clients 2
	t0=$SECONDS
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" || rc=$?
	SRV_PID=
	kill "$IDLE_PID" 2>/dev/null
	check "SIGTERM: exit 0 within the grace period" test "$rc" -eq 0 -a $((SECONDS - t0)) -le 4
	check "SIGTERM: both open clients are told and closed" \
	    test "$(grep -c 'closed, the server is shutting down' "$SRV_LOG")" -eq 2
	wait_for_line "$peer" "close_notify"
	check "SIGTERM: the established client got close_notify, not a bare FIN" \
	    test "$(tail -n 1 "$peer")" = close_notify
}

[ -n "${HK_ONLY:-}" ] && { eval "$HK_ONLY"; hk_summary; exit; }
test_fallback
test_no_kernel_cipher
test_resumption 1.2 auto
test_resumption 1.3 auto
test_no_tickets 1.2
test_no_tickets 1.3
test_quiet 1.2
test_quiet 1.3
test_limits
test_shutdown
test_shutdown_transfers
test_get
test_bench
test_framing
test_keylog
test_off
for v in 1.2 1.3; do
	test_openssl_ktls_conf "$v" off
	test_openssl_ktls_conf "$v" auto
done
test_bad_clients 1.2
test_bad_clients 1.3
test_server_name
test_bad_files_and_flags
hk_summary
