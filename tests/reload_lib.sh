# tests/reload_lib.sh - live reload: helpers, and the tests that both
# tests/reload_tests.sh (userspace TLS, on the host) and
# tests/kernel_tests.sh (kTLS, in the guest) run. Sourced after lib.sh
# and hk_init.

SETUP=$HK_ROOT/hello_ktls_setup.sh
# Where test_reload_rotate keeps the server's files. The UML guest's root
# is hostfs, where a directory looked up again may be a new inode, which
# loses its inotify watch (only the current directory, pinned, keeps
# it): kernel_tests.sh points this at the guest's tmpfs.
RELOAD_LIVE=${RELOAD_LIVE:-live}

# pki_copy: a private copy of the test PKI, made the current directory
# (the tests replace, issue and revoke), with the server's certificate
# and key in live/, where the tests rotate them.
pki_copy() {
	rm -rf "$WORK/pki"
	cp -r "$HK_CERTS" "$WORK/pki" && cd "$WORK/pki" || return 1
	mkdir -p live && cp server-cert.pem server-key.pem live/
}

# issue NAME ARGS...: a new identity from the test CA.
issue() { bash "$SETUP" -o . issue "$@" >>"$WORK/setup.log" 2>&1; }

# issue_server NAME: a server certificate that fits the client's checks.
issue_server() {
	issue "$1" --server --cn localhost --san DNS:localhost \
	    --san IP:127.0.0.1 --san IP:::1
}

# serial_of CERT: its serial as openssl prints it (upper-case hex).
serial_of() {
	local s
	s=$(openssl x509 -in "$1" -noout -serial)
	echo "${s#serial=}"
}

# served_serial: the serial of the certificate a new client gets.
served_serial() {
	local s
	s=$(timeout 20 openssl s_client -connect "127.0.0.1:$PORT" \
	    -cert client-cert.pem -key client-key.pem -CAfile ca-cert.pem \
	    </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null)
	echo "${s#serial=}"
}

# echo_open [BASE]: openssl s_client with BASE-cert.pem (client-cert.pem)
# to an --echo server, staying connected, its stdin a FIFO held open by
# us: sets EC_PID, EC_FD (write lines there) and EC_LOG (they come back).
echo_open() {
	local base=${1:-client} fifo
	new_log EC_LOG echo
	fifo=$EC_LOG.in
	mkfifo "$fifo"
	timeout 120 openssl s_client -connect "127.0.0.1:$PORT" \
	    -cert "$base-cert.pem" -key "$base-key.pem" -CAfile ca-cert.pem \
	    -quiet <"$fifo" >"$EC_LOG" 2>&1 &
	EC_PID=$!
	exec {EC_FD}>"$fifo"
}

# echo_say FD LOG TEXT: TEXT sent on the connection comes back. In a
# subshell: a write to a FIFO whose reader has gone is a SIGPIPE.
echo_say() {
	(printf '%s\n' "$3" >&"$1") 2>/dev/null && wait_for_line "$2" "$3"
}

# echo_close FD PID: end the client (stdin closed; -quiet ignores EOF).
echo_close() {
	eval "exec $1>&-"
	kill "$2" 2>/dev/null
	wait "$2" 2>/dev/null
}

# gone PID: up to 5 s for the process to end.
gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		nap 0.05
	done
	return 1
}

# test_reload_rotate MODE: the server certificate and key replaced (two
# copies, as a renewer that writes files does) under an open --echo
# connection; the server's --ktls MODE. The open connection keeps
# echoing, a new one gets the new certificate, and the audit trail has
# each connection's generation.
test_reload_rotate() {
	local mode=$1 name new a=$WORK/rotate.audit
	local pid fd log
	name="reload (--ktls $mode)"
	pki_copy && issue_server srv2 || { fail "$name" "setup" "$WORK/setup.log"; return; }
	new=$(serial_of srv2-cert.pem)
	mkdir -p "$RELOAD_LIVE"
	cp server-cert.pem server-key.pem "$RELOAD_LIVE"/
	start_server --echo --ktls "$mode" --audit "$a" \
	    --cert "$RELOAD_LIVE/server-cert.pem" --key "$RELOAD_LIVE/server-key.pem"
	echo_open client
	pid=$EC_PID fd=$EC_FD log=$EC_LOG
	if ! echo_say "$fd" "$log" "before the reload"; then
		fail "$name: an --echo connection is open" "no echo" "$log" "$SRV_LOG"
		echo_close "$fd" "$pid"
		stop_server
		return
	fi
	cp srv2-cert.pem "$RELOAD_LIVE/server-cert.pem"
	cp srv2-key.pem "$RELOAD_LIVE/server-key.pem"
	if wait_long "$SRV_LOG" "Reloaded configuration (generation 2): certificate /C=US/ST=CA/L=SantaClara/O=TestOrg/CN=localhost, serial $new" 10; then
		pass "$name: a certificate and key written in two steps are reloaded as one"
	else
		fail "$name: the new certificate is reloaded" "no reload line" "$SRV_LOG"
	fi
	if echo_say "$fd" "$log" "after the reload"; then
		pass "$name: the connection open across the reload keeps echoing"
	else
		fail "$name: the open connection keeps echoing" "no echo" "$log" "$SRV_LOG"
	fi
	check "$name: a new client gets the new certificate (serial $new)" \
	    [ "$(served_serial)" = "$new" ]
	if [ "$mode" = require ]; then
		check "$name: the open connection was on kTLS" \
		    has "$SRV_LOG" "kTLS TX: active"
	fi
	echo_close "$fd" "$pid"
	wait_count "$a" '"connection-closed"' 2
	if has "$a" '"hk.config.generation":1' && has "$a" '"hk.config.generation":2' &&
	    [ "$(grep -c '"connection-accepted".*"hk.config.generation":1' "$a")" -eq 1 ]; then
		pass "$name: the audit lines carry each connection's hk.config.generation"
	else
		fail "$name: audit hk.config.generation" "want one connection of 1, one of 2" "$a"
	fi
	stop_server
	cd "$HK_CERTS" || exit 1
}

# test_reload_reauthorize_crl MODE [--reauthorize]: two --echo clients
# open, one of them revoked (the CRL rewritten by the setup script).
# With --reauthorize its connection ends (close_notify, an audit line
# with the reason) and the other keeps echoing; without, both stay.
test_reload_reauthorize_crl() {
	local mode=$1 re=${2:-} name a
	local p1 f1 l1 p2 f2 l2
	name="reload (--ktls $mode${re:+ $re}): a CRL revoking a connected client"
	a=$WORK/reauth$re.audit
	pki_copy && issue rc1 --cn rc1 || { fail "$name" "setup" "$WORK/setup.log"; return; }
	start_server --echo --ktls "$mode" --crl crl.pem --audit "$a" ${re:+"$re"}
	echo_open rc1
	p1=$EC_PID f1=$EC_FD l1=$EC_LOG
	echo_open client
	p2=$EC_PID f2=$EC_FD l2=$EC_LOG
	if ! echo_say "$f1" "$l1" "rc1 before" || ! echo_say "$f2" "$l2" "client before"; then
		fail "$name: two --echo connections are open" "no echo" "$l1" "$l2" "$SRV_LOG"
	fi
	bash "$SETUP" -o . revoke rc1 >>"$WORK/setup.log" 2>&1
	if ! wait_long "$SRV_LOG" "Reloaded configuration (generation 2)" 10; then
		fail "$name: the new CRL is reloaded" "no reload line" "$SRV_LOG"
	elif [ -n "$re" ]; then
		if wait_for_line "$SRV_LOG" "Reauthorize: 1 of 2 open connections refused" &&
		    gone "$p1" &&
		    wait_for_line "$SRV_LOG" "closed: reauthorize: certificate revoked (close_notify sent)" &&
		    wait_for_line "$a" '"event.action":"connection-closed","event.outcome":"failure","event.reason":"reauthorize: certificate revoked"'; then
			pass "$name: its connection is ended, logged and audited with the reason"
		else
			fail "$name: its connection is ended" "see the logs" "$l1" "$SRV_LOG" "$a"
		fi
		check "$name: the other client keeps echoing" \
		    echo_say "$f2" "$l2" "client after"
	else
		if echo_say "$f1" "$l1" "rc1 after" && echo_say "$f2" "$l2" "client after" &&
		    ! has "$SRV_LOG" "Reauthorize"; then
			pass "$name: without --reauthorize, both open connections keep echoing"
		else
			fail "$name: both keep echoing" "see the logs" "$l1" "$l2" "$SRV_LOG"
		fi
	fi
	run_client "$WORK/rc1.log" --cert rc1-cert.pem --key rc1-key.pem
	check "$name: a new connection of the revoked client is refused" \
	    [ "$CLI_RC" -eq 1 ]
	echo_close "$f1" "$p1"
	echo_close "$f2" "$p2"
	stop_server
	cd "$HK_CERTS" || exit 1
}
