#!/usr/bin/env bash
# tests/metrics_tests.sh - the server's --status endpoint (no kTLS
# needed): after good clients, clients refused in the handshake (revoked
# by --crl, expired, another CA, garbage) and a client --policy denies,
# the scrape says exactly what the test did, matching the --audit trail
# line for line; an open connection is counted while it is open, one
# over --max-connections as refused; the certificate and CRL gauges agree
# with openssl; a unix socket works and is removed at exit; non-loopback
# addresses are refused at start; a bad request gets 400 (or 405), a
# scraper that sends nothing is cut off, and clients are served meanwhile.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

PEER=$HK_ROOT/tests/metrics_peer.py
GOOD=3
MSG_IN=51  # "Hello from kTLS client! I have a valid certificate."
MSG_OUT=55 # "Hello from kTLS server! Your certificate was validated."

# status_addr LOG: the "Metrics: ADDR" line of a started server; sets STATUS.
status_addr() {
	STATUS=
	wait_for_line "$1" 'Metrics: ' || return 1
	STATUS=$(sed -n 's/^Metrics: //p' "$1")
	[ -n "$STATUS" ]
}

# scrape: the metrics into $WORK/m.txt; 1 unless HTTP 200.
scrape() {
	timeout 20 python3 "$PEER" scrape "$STATUS" >"$WORK/m.txt" 2>&1
}

# metric 'NAME{LABELS}': its value in the last scrape ("" if absent).
# (Label values may hold spaces: the value is what follows the last one.)
metric() {
	local line
	while IFS= read -r line; do
		[[ $line == "$1 "* ]] && { echo "${line##* }"; return; }
	done <"$WORK/m.txt"
}

# like STRING PATTERN: STRING matches the glob PATTERN (for check).
like() { [[ $1 == $2 ]]; }
not_like() { [[ $1 != $2 ]]; }

# near GOT WANT: GOT is a number within 5 of WANT.
near() { [ -n "$1" ] && [ $(($1 - $2)) -le 5 ] && [ $(($2 - $1)) -le 5 ]; }

# expect NAME 'SERIES=VALUE'...: each series has that value in the scrape.
expect() {
	local name=$1 kv bad=
	shift
	for kv in "$@"; do
		[ "$(metric "${kv%=*}")" = "${kv##*=}" ] ||
		    bad+=" ${kv%=*} is '$(metric "${kv%=*}")', want ${kv##*=};"
	done
	if [ -z "$bad" ]; then pass "$name"; else fail "$name" "$bad" "$WORK/m.txt"; fi
}

# settle SERIES VALUE: scrape until SERIES has VALUE (a client thread ends
# a moment after its client), up to 5 s.
settle() {
	local i
	for ((i = 0; i < 50; i++)); do
		scrape && [ "$(metric "$1")" = "$2" ] && return 0
		nap 0.1
	done
	return 1
}

write_policy() {
	cat >"$WORK/m.policy" <<'EOF'
deny contractors {
    subject.OU = Contractors
}
allow test-client {
    subject.CN = Test Client
}
EOF
}

# 1. The numbers match what the clients did, and the audit trail.
test_counts() {
	local i audit=$WORK/audit.jsonl
	write_policy
	start_server --status 127.0.0.1:0 --crl crl.pem --policy "$WORK/m.policy" \
	    --audit "$audit" || { fail "counts: server starts" "no port"; return; }
	status_addr "$SRV_LOG" || { fail "counts: Metrics line" "none" "$SRV_LOG"; return; }
	check "counts: the status address is loopback" like "$STATUS" '127.0.0.1:*'
	scrape
	expect "counts: a fresh server's counters are 0, generation 1" \
	    'hk_handshakes_total{result="ok",reason="none"}=0' \
	    'hk_reloads_total{result="ok"}=0' 'hk_reloads_total{result="failed"}=0' \
	    'hk_config_generation=1' 'hk_bytes_total{direction="in"}=0'
	for ((i = 0; i < GOOD; i++)); do
		run_client "$WORK/good.log"
		[ "$CLI_RC" -eq 0 ] || fail "counts: good client $i" "rc=$CLI_RC" "$WORK/good.log"
	done
	run_client "$WORK/bad.log" --cert revoked-client-cert.pem --key revoked-client-key.pem
	run_client "$WORK/bad.log" --cert expired-client-cert.pem --key expired-client-key.pem
	run_client "$WORK/bad.log" --cert other-client-cert.pem --key other-client-key.pem
	run_client "$WORK/bad.log" --cert other-client-cert.pem --key other-client-key.pem
	run_client "$WORK/bad.log" --cert policy-contractor-cert.pem --key policy-contractor-key.pem
	python3 "$PEER" raw "127.0.0.1:$PORT" 'GET / HTTP/1.0\r\n\r\n' >/dev/null 2>&1
	settle 'hk_handshakes_total{result="failed",reason="protocol"}' 1
	settle 'hk_bytes_total{direction="in"}' $((GOOD * MSG_IN))
	expect "counts: handshakes by result and reason" \
	    "hk_handshakes_total{result=\"ok\",reason=\"none\"}=$((GOOD + 1))" \
	    'hk_handshakes_total{result="failed",reason="certificate_revoked"}=1' \
	    'hk_handshakes_total{result="failed",reason="expired"}=1' \
	    'hk_handshakes_total{result="failed",reason="unknown_ca"}=2' \
	    'hk_handshakes_total{result="failed",reason="protocol"}=1' \
	    'hk_handshakes_total{result="failed",reason="timeout"}=0' \
	    'hk_handshakes_total{result="failed",reason="other"}=0'
	expect "counts: authorizations by decision and rule" \
	    "hk_authorizations_total{decision=\"allow\",rule=\"test-client\"}=$GOOD" \
	    'hk_authorizations_total{decision="deny",rule="test-client"}=0' \
	    'hk_authorizations_total{decision="deny",rule="contractors"}=1' \
	    'hk_authorizations_total{decision="allow",rule="contractors"}=0'
	expect "counts: bytes of the closed connections, none open" \
	    "hk_bytes_total{direction=\"in\"}=$((GOOD * MSG_IN))" \
	    "hk_bytes_total{direction=\"out\"}=$((GOOD * MSG_OUT))" \
	    'hk_connections_open{tx="unavailable",rx="unavailable"}=0' \
	    'hk_connections_open{tx="off",rx="off"}=0'
	# The same events, counted by the audit trail.
	local fails allows denies
	fails=$(grep -c '"event.action":"tls-handshake-failed"' "$audit")
	allows=$(grep -c '"event.action":"access-allowed"' "$audit")
	denies=$(grep -c '"event.action":"access-denied"' "$audit")
	check "counts: metrics and audit trail agree (5 failed, $GOOD allowed, 1 denied)" \
	    [ "$fails/$allows/$denies" = "5/$GOOD/1" ]
	certificate_gauges
	stop_server
}

# The expiry gauges against openssl's dates (a few seconds of slack).
certificate_gauges() {
	local now want got issuer
	now=$(date +%s)
	want=$(($(date -d "$(openssl x509 -in server-cert.pem -noout -enddate | cut -d= -f2)" +%s) - now))
	got=$(metric 'hk_certificate_expiry_seconds{which="server"}')
	check "gauges: server certificate expiry ($got s, openssl: $want s)" \
	    near "$got" "$want"
	want=$(($(date -d "$(openssl x509 -in ca-cert.pem -noout -enddate | cut -d= -f2)" +%s) - now))
	got=$(metric 'hk_certificate_expiry_seconds{which="ca"}')
	check "gauges: CA certificate expiry ($got s, openssl: $want s)" \
	    near "$got" "$want"
	issuer=$(openssl crl -in crl.pem -noout -issuer | sed 's/^issuer=//; s/ = /=/g; s/, /\//g')
	want=$(($(date -d "$(openssl crl -in crl.pem -noout -nextupdate | cut -d= -f2)" +%s) - now))
	got=$(metric "hk_crl_next_update_seconds{issuer=\"/$issuer\"}")
	check "gauges: --crl next update by issuer /$issuer ($got s, openssl: $want s)" \
	    near "$got" "$want"
}

# open_total: the sum of hk_connections_open over its labels, last scrape.
open_total() {
	local line n=0
	while IFS= read -r line; do
		[[ $line == 'hk_connections_open{'* ]] && n=$((n + ${line##* }))
	done <"$WORK/m.txt"
	echo "$n"
}

# settle_open N: scrape until N connections are counted open, up to 5 s.
settle_open() {
	local i
	for ((i = 0; i < 50; i++)); do
		scrape && [ "$(open_total)" = "$1" ] && return 0
		nap 0.1
	done
	return 1
}

# 2. An open connection is counted while it lasts; one more is refused.
test_open() {
	local line mode
	# A long --idle-timeout: the held client sends nothing.
	start_server --status '[::1]:0' --max-connections 1 --idle-timeout 600 ||
	    { fail "open: server starts" "no port"; return; }
	status_addr "$SRV_LOG" || { fail "open: Metrics line" "none" "$SRV_LOG"; return; }
	coproc HOLD { python3 "$PEER" hold "$PORT" client-cert.pem client-key.pem ca-cert.pem 2>&1; }
	read -r -t 30 -u "${HOLD[0]}" line || line=
	check "open: a client holds its connection" [ "$line" = held ]
	# Both directions "unavailable" on a kernel without kTLS, "software"
	# with it.
	mode=unavailable
	[ -e /proc/net/tls_stat ] && mode=software
	if settle_open 1 &&
	    [ "$(metric "hk_connections_open{tx=\"$mode\",rx=\"$mode\"}")" = 1 ]; then
		pass "open: the held connection is counted open, tx and rx $mode"
	else
		fail "open: the held connection is counted open" "see the scrape" "$WORK/m.txt" "$SRV_LOG"
	fi
	run_client "$WORK/over.log"
	settle 'hk_connections_refused_total' 1
	expect "open: the client over --max-connections 1 is counted refused" \
	    'hk_connections_refused_total=1'
	exec {HOLD[1]}>&-
	wait "$HOLD_PID" 2>/dev/null
	if settle_open 0; then
		pass "open: closed, it is no longer counted"
	else
		fail "open: closed, it is no longer counted" "see the scrape" "$WORK/m.txt"
	fi
	check "open: [::1] is accepted" like "$STATUS" '\[::1\]:*'
	stop_server
}

# 3. A unix socket; removed at exit.
test_unix() {
	local sock=$WORK/hk.sock
	start_server --status "unix:$sock" || { fail "unix: server starts" "no port"; return; }
	status_addr "$SRV_LOG"
	run_client "$WORK/good.log"
	if settle 'hk_handshakes_total{result="ok",reason="none"}' 1; then
		pass "unix: scraped over unix:$sock"
	else
		fail "unix: scraped over the socket" "see the scrape" "$WORK/m.txt" "$SRV_LOG"
	fi
	stop_server
	check "unix: the socket is removed at exit" [ ! -e "$sock" ]
	: >"$sock"
	refused_at_start "unix: a file that is no socket is refused" \
	    "--status unix:$sock: exists, not a socket" --status "unix:$sock"
	rm -f "$sock"
}

# refused_at_start NAME LINE ARGS...: the server exits 1 saying LINE.
refused_at_start() {
	local name=$1 line=$2 rc=0
	shift 2
	timeout 10 "$SERVER" -p 0 "$@" >"$WORK/start.log" 2>&1 || rc=$?
	if [ "$rc" -eq 1 ] && grep -qxF "hello_ktls_server: $line" "$WORK/start.log" &&
	    ! grep -q 'Server listening' "$WORK/start.log"; then
		pass "$name"
	else
		fail "$name" "rc=$rc, want 1 and '$line'" "$WORK/start.log"
	fi
}

# 4. Only loopback.
test_refused() {
	local a why='not a loopback address; the metrics are for this host only (127.0.0.1:PORT, [::1]:PORT or unix:PATH)'
	for a in 0.0.0.0:9100 '[::]:9100' 192.0.2.1:9100 '[2001:db8::1]:9100' example.org:9100; do
		refused_at_start "refused: --status $a" "--status $a: $why" --status "$a"
	done
	refused_at_start "refused: --status 9100 (no host)" \
	    "--status 9100: not unix:PATH, 127.0.0.1:PORT or [::1]:PORT" --status 9100
	refused_at_start "refused: --status 127.0.0.1:99999" \
	    "--status 127.0.0.1:99999: not unix:PATH, 127.0.0.1:PORT or [::1]:PORT" \
	    --status 127.0.0.1:99999
}

# 5. Bad requests and a silent scraper; clients are served meanwhile.
test_hostile() {
	local out
	start_server --status 127.0.0.1:0 || { fail "hostile: server starts" "no port"; return; }
	status_addr "$SRV_LOG"
	out=$(timeout 10 python3 "$PEER" raw "$STATUS" 'BLAH\r\n\r\n')
	check "hostile: garbage gets 400" like "$out" 'HTTP/1.0 400 Bad Request*'
	out=$(timeout 10 python3 "$PEER" raw "$STATUS" 'GET /\x01 HTTP/9\r\n\r\n')
	check "hostile: a bad request line gets 400" like "$out" 'HTTP/1.0 400 *'
	out=$(timeout 10 python3 "$PEER" raw "$STATUS" 'POST /metrics HTTP/1.0\r\n\r\n')
	check "hostile: POST gets 405" like "$out" 'HTTP/1.0 405 *'
	out=$(timeout 10 python3 "$PEER" raw "$STATUS" "$(printf 'GET /%05000d HTTP/1.0' 0)")
	check "hostile: an over-long request gets 400" like "$out" 'HTTP/1.0 400 *'
	out=$(timeout 10 python3 "$PEER" raw "$STATUS" 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n')
	check "hostile: HEAD gets the headers only" \
	    like "$out" 'HTTP/1.0 200 OK*Content-Length: [1-9]*'
	check "hostile: HEAD gets no body" not_like "$out" '*hk_handshakes_total*'
	# A scraper that connects and says nothing: cut off within the
	# request deadline (2 s), and a client is served meanwhile.
	python3 - "$STATUS" >"$WORK/silent.log" 2>&1 <<'EOF' &
import socket, sys, time
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)), timeout=15)
t0 = time.monotonic()
got = s.recv(100)
print("got %r after %d s" % (got, time.monotonic() - t0), flush=True)
EOF
	local silent=$!
	run_client "$WORK/good.log"
	check "hostile: a client is served while a scraper stalls" [ "$CLI_RC" -eq 0 ]
	wait "$silent"
	check "hostile: the silent scraper is cut off within 4 s ($(cat "$WORK/silent.log"))" \
	    like "$(cat "$WORK/silent.log")" "got b'' after [0-4] s"
	if scrape && [ "$(metric 'hk_handshakes_total{result="ok",reason="none"}')" = 1 ]; then
		pass "hostile: the endpoint still answers, and counted the client"
	else
		fail "hostile: the endpoint still answers" "see the scrape" "$WORK/m.txt"
	fi
	stop_server
}

test_counts
test_open
test_unix
test_refused
test_hostile
hk_summary
