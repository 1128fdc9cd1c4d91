#!/usr/bin/env bash
# tests/expiry_tests.sh - certificates near their end: the warnings of
# both programs about their own certificate and their peer's, the time
# left in the server's log and audit trail, and --close-at-expiry, which
# ends an --echo connection when its client's one-minute certificate
# expires, while a server without it keeps the same kind of connection
# open past that. About 70 s, most of it the one minute.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

SETUP=$HK_ROOT/hello_ktls_setup.sh
CA=$WORK/ca

cert_end() {
	local d
	d=$(openssl x509 -in "$1" -noout -enddate) || return 1
	date -u -d "${d#*=}" +%s
}

# An --echo client that holds its connection open: it sends what the
# FIFO gives it, 64 KiB at a time, and blocks on the FIFO in between.
# hold NAME PORT: starts it with FIFO $WORK/NAME.fifo on fd HOLD_FD.
# The clients must not hold the FIFOs' write ends themselves, or closing
# ours would never give them the end of the file.
HOLD_FDS=()
hold() {
	mkfifo "$WORK/$1.fifo"
	exec {HOLD_FD}<>"$WORK/$1.fifo"
	HOLD_FDS+=("$HOLD_FD")
	(
		for f in "${HOLD_FDS[@]}"; do exec {f}>&-; done
		exec timeout 150 "$CLIENT" -p "$2" --cert "$CA/minute-cert.pem" \
		    --key "$CA/minute-key.pem" --ca "$CA/ca-cert.pem" \
		    --send-file "$WORK/$1.fifo"
	) >"$WORK/$1.log" 2>&1 &
}

# chunk FD: one 64 KiB block into a holding client's FIFO.
chunk() { head -c 65536 /dev/zero >&"$1"; }

test_warnings() {
	bash "$SETUP" -o "$CA" >/dev/null 2>&1 &&
	    bash "$SETUP" -o "$CA" issue tiny --lifetime 10s >/dev/null 2>&1 &&
	    bash "$SETUP" -o "$CA" issue tinysrv --server --lifetime 10s \
	    --san DNS:localhost --san IP:127.0.0.1 >/dev/null 2>&1 ||
	    { fail "short certificates" "setup failed"; return; }
	start_server --cert "$CA/tinysrv-cert.pem" --key "$CA/tinysrv-key.pem" \
	    --ca "$CA/ca-cert.pem" || return
	check "server: warns at start that its own certificate is near its end" \
	    wait_for_line "$SRV_LOG" 'warning: server certificate expires in '
	run_client "$WORK/c1.log" --cert "$CA/tiny-cert.pem" --key "$CA/tiny-key.pem" \
	    --ca "$CA/ca-cert.pem"
	check "client: the exchange works" test "$CLI_RC" -eq 0
	check "client: warns about its own certificate" \
	    has "$WORK/c1.log" 'hello_ktls_client: warning: client certificate expires in '
	check "client: warns about the server's" \
	    has "$WORK/c1.log" 'hello_ktls_client: warning: server certificate expires in '
	check "server: logs the time left on the client's certificate" \
	    wait_for_line "$SRV_LOG" '] Client certificate expires in '
	stop_server
	start_server --cert "$CA/server-cert.pem" --key "$CA/server-key.pem" \
	    --ca "$CA/ca-cert.pem" --audit "$WORK/audit.json" || return
	run_client "$WORK/c2.log" --cert "$CA/client-cert.pem" --key "$CA/client-key.pem" \
	    --ca "$CA/ca-cert.pem"
	check "an 825-day certificate: no warning on either side" \
	    sh -c "! grep -q warning '$SRV_LOG' '$WORK/c2.log'"
	check "the client says how long the server's certificate has" \
	    grep -Eq '^Server certificate expires in 82[45]d [0-9]+h$' "$WORK/c2.log"
	check "audit: hk.client.expires_in_s on access-allowed" \
	    grep -q '"event.action":"access-allowed".*"hk.client.expires_in_s":71[0-9][0-9][0-9][0-9][0-9][0-9]' \
	    "$WORK/audit.json"
	stop_server
}

test_close_at_expiry() {
	local na port_a port_b log_a log_b fd_a fd_b closed_at
	bash "$SETUP" -o "$CA" issue minute --lifetime 1m >/dev/null 2>&1 ||
	    { fail "a one-minute client certificate" "setup failed"; return; }
	na=$(cert_end "$CA/minute-cert.pem")
	# An idle timeout longer than the minute, so that only the expiry
	# can end the connection.
	start_server --echo --close-at-expiry --idle-timeout 300 --cert "$CA/server-cert.pem" \
	    --key "$CA/server-key.pem" --ca "$CA/ca-cert.pem" \
	    --audit "$WORK/audit-a.json" || return
	port_a=$PORT log_a=$SRV_LOG
	local srv_a=$SRV_PID
	# A second server, without --close-at-expiry.
	start_server --echo --idle-timeout 300 --cert "$CA/server-cert.pem" \
	    --key "$CA/server-key.pem" --ca "$CA/ca-cert.pem" || return
	port_b=$PORT log_b=$SRV_LOG
	hold a "$port_a"
	fd_a=$HOLD_FD
	hold b "$port_b"
	fd_b=$HOLD_FD
	chunk "$fd_a"
	chunk "$fd_b"
	check "both connections are up, one with the deadline" \
	    eval "wait_for_line '$log_a' 'Connection ends at the certificate' &&
	    wait_for_line '$log_b' 'Client certificate expires in'"
	# Up to 10 s past notAfter (about a minute from now) for the close.
	while [ "$EPOCHSECONDS" -le $((na + 10)) ] &&
	    ! has "$log_a" 'client certificate expired'; do
		nap 0.2
	done
	closed_at=$EPOCHSECONDS
	if has "$log_a" 'client certificate expired' && [ "$closed_at" -ge "$na" ] &&
	    [ "$closed_at" -le $((na + 2)) ]; then
		pass "--close-at-expiry: the server ends the connection at notAfter"
	else
		fail "--close-at-expiry: the server ends the connection at notAfter" \
		    "closed at $closed_at, notAfter $na" "$log_a"
	fi
	check "--close-at-expiry: audit connection-closed, client certificate expired" \
	    wait_for_line "$WORK/audit-a.json" '"event.action":"connection-closed","event.outcome":"failure","event.reason":"client certificate expired"'
	# A few seconds past the expiry, both clients send again.
	while [ "$EPOCHSECONDS" -le $((na + 3)) ]; do nap 0.2; done
	chunk "$fd_a"
	chunk "$fd_b"
	exec {fd_a}>&- {fd_b}>&-
	wait_for_line "$WORK/a.log" 'our certificate expired'
	check "--close-at-expiry: the client says its certificate expired" \
	    has "$WORK/a.log" 'hello_ktls_client: our certificate expired '
	if wait_for_line "$WORK/b.log" 'Echo verified: 131072 bytes sent and received intact'; then
		pass "without it: the connection still echoes past the expiry"
	else
		fail "without it: the connection still echoes past the expiry" \
		    "no echo of the second block" "$WORK/b.log" "$log_b"
	fi
	check "without it: the server did not end the connection" \
	    sh -c "! grep -q 'certificate expired' '$log_b'"
	stop_server
	SRV_PID=$srv_a SRV_LOG=$log_a
	stop_server
}

test_warnings
test_close_at_expiry
hk_summary
