#!/usr/bin/env bash
# tests/reload_tests.sh - live reload of the server's identity set, in
# userspace TLS on the host (kernel_tests.sh runs the kTLS ones): the
# certificate rotated under an open connection; a broken set refused
# with its reason, once, the old one still served; a Kubernetes-style
# "..data" symlink swap; SIGHUP; --reauthorize after a CRL or a policy
# change; ticket resumption across a reload. Every wait is for a line.
# HK_ONLY='test_reload_sighup' runs just the named test calls.
set -u
. "$(dirname "$0")/lib.sh"
hk_init
. "$HK_ROOT/tests/reload_lib.sh"

# refused_once WHAT CERT KEY N NAME: after copying CERT and KEY into
# live/, the reload fails saying WHAT and the old certificate is still
# served; a file event and a SIGHUP with the same files say nothing
# more (the new client served after the SIGHUP shows the server has
# handled it: the accept loop reloads before it accepts); the good files
# back are "unchanged" (the Nth time), and WHAT was said once.
refused_once() {
	local what=$1 cert=$2 key=$3 n=$4 name="reload: $5" old
	old=$(serial_of live/server-cert.pem)
	[ "$cert" = live/server-cert.pem ] || cp "$cert" live/server-cert.pem
	[ "$key" = live/server-key.pem ] || cp "$key" live/server-key.pem
	if wait_long "$SRV_LOG" "Reload failed, keeping generation 1: $what" 10 &&
	    [ "$(served_serial)" = "$old" ]; then
		pass "$name: refused with the reason, the old certificate still served"
	else
		fail "$name: refused with the reason" "want '$what'" "$SRV_LOG"
	fi
	touch live/server-cert.pem
	kill -HUP "$SRV_PROC"
	[ "$(served_serial)" = "$old" ] || fail "$name: still served" "after SIGHUP" "$SRV_LOG"
	cp server-cert.pem live/server-cert.pem
	cp server-key.pem live/server-key.pem
	if wait_count "$SRV_LOG" "the files are unchanged, keeping generation 1" "$n" 10 &&
	    [ "$(grep -c "Reload failed" "$SRV_LOG")" -eq "$n" ]; then
		pass "$name: said once, however many events and SIGHUPs follow"
	else
		fail "$name: said once" "want $n failure line(s) in all" "$SRV_LOG"
	fi
}

test_reload_refused() {
	pki_copy || return
	start_server --echo --cert live/server-cert.pem --key live/server-key.pem
	server_proc
	refused_once "cannot load certificate live/server-cert.pem: no start line" \
	    garbage.pem live/server-key.pem 1 "a certificate that is not PEM"
	refused_once "private key live/server-key.pem does not match the certificate" \
	    live/server-cert.pem mismatched-key.pem 2 "a key that does not match"
	refused_once "--cert live/server-cert.pem: unable to get local issuer certificate (checked against --ca ca-cert.pem)" \
	    other-client-cert.pem other-client-key.pem 3 "a certificate of another CA"
	stop_server
	cd "$HK_CERTS" || exit 1
}

# The layout of a Kubernetes secret volume: timestamped directories, a
# "..data" symlink to the current one, and the files as symlinks through
# it. An update writes a new directory and renames a new "..data" over
# the old: the files the server opened never change.
test_reload_k8s() {
	local name="reload: a Kubernetes ..data symlink swap" new
	pki_copy && issue_server srv2 || { fail "$name" "setup" "$WORK/setup.log"; return; }
	new=$(serial_of srv2-cert.pem)
	mkdir -p k8s/..2026_12_02_01
	cp server-cert.pem k8s/..2026_12_02_01/tls.crt
	cp server-key.pem k8s/..2026_12_02_01/tls.key
	ln -s ..2026_12_02_01 k8s/..data
	ln -s ..data/tls.crt k8s/tls.crt
	ln -s ..data/tls.key k8s/tls.key
	start_server --echo --cert k8s/tls.crt --key k8s/tls.key
	mkdir k8s/..2026_12_02_02
	cp srv2-cert.pem k8s/..2026_12_02_02/tls.crt
	cp srv2-key.pem k8s/..2026_12_02_02/tls.key
	ln -s ..2026_12_02_02 k8s/..data_tmp
	mv -T k8s/..data_tmp k8s/..data
	rm -rf k8s/..2026_12_02_01
	if wait_long "$SRV_LOG" "Reloaded configuration (generation 2): certificate /C=US/ST=CA/L=SantaClara/O=TestOrg/CN=localhost, serial $new" 10 &&
	    [ "$(served_serial)" = "$new" ]; then
		pass "$name: picked up, new clients get the new certificate"
	else
		fail "$name" "no reload to serial $new" "$SRV_LOG"
	fi
	stop_server
	cd "$HK_CERTS" || exit 1
}

# SIGHUP reloads at once: the watch waits a minute here.
test_reload_sighup() {
	local name="reload: SIGHUP" new
	pki_copy && issue_server srv2 || { fail "$name" "setup" "$WORK/setup.log"; return; }
	new=$(serial_of srv2-cert.pem)
	start_server --echo --reload-quiet 60000 --status 127.0.0.1:0 \
	    --cert live/server-cert.pem --key live/server-key.pem
	server_proc
	cp srv2-cert.pem live/server-cert.pem
	cp srv2-key.pem live/server-key.pem
	kill -HUP "$SRV_PROC"
	if wait_for_line "$SRV_LOG" "Reloaded configuration (generation 2)" &&
	    [ "$(served_serial)" = "$new" ]; then
		pass "$name: reloads without waiting for the quiet time"
	else
		fail "$name" "no reload" "$SRV_LOG"
	fi
	# The metrics say the same: one reload, generation 2, and the
	# server certificate's expiry is the new one's.
	if wait_for_line "$SRV_LOG" 'Metrics: ' &&
	    timeout 20 python3 "$HK_ROOT/tests/metrics_peer.py" scrape \
		"$(sed -n 's/^Metrics: //p' "$SRV_LOG")" >"$WORK/m.txt" 2>&1 &&
	    grep -qx 'hk_reloads_total{result="ok"} 1' "$WORK/m.txt" &&
	    grep -qx 'hk_reloads_total{result="failed"} 0' "$WORK/m.txt" &&
	    grep -qx 'hk_config_generation 2' "$WORK/m.txt"; then
		pass "$name: --status counts the reload and shows generation 2"
	else
		fail "$name: --status after the reload" "" "$WORK/m.txt"
	fi
	stop_server
	cd "$HK_CERTS" || exit 1
}

# test_reload_policy [--reauthorize]: a new policy that denies a
# connected client (written aside and renamed over the old file).
test_reload_policy() {
	local re=${1:-} name p1 f1 l1 p2 f2 l2
	name="reload${re:+ $re}: a policy that now denies a connected client"
	pki_copy && issue rc1 --cn rc1 || { fail "$name" "setup" "$WORK/setup.log"; return; }
	printf 'allow all {\n    issuer.O = TestCA\n    grant echo\n}\n' >app.policy
	start_server --echo --policy app.policy ${re:+"$re"}
	echo_open rc1
	p1=$EC_PID f1=$EC_FD l1=$EC_LOG
	echo_open client
	p2=$EC_PID f2=$EC_FD l2=$EC_LOG
	echo_say "$f1" "$l1" "rc1 before" && echo_say "$f2" "$l2" "client before" ||
	    fail "$name: two --echo connections are open" "no echo" "$l1" "$l2" "$SRV_LOG"
	printf 'deny rc1 {\n    subject.CN = rc1\n}\nallow all {\n    issuer.O = TestCA\n    grant echo\n}\n' >app.policy.new
	mv app.policy.new app.policy
	if ! wait_long "$SRV_LOG" "Reloaded configuration (generation 2)" 10; then
		fail "$name: the new policy is reloaded" "no reload line" "$SRV_LOG"
	elif [ -n "$re" ]; then
		if gone "$p1" && wait_for_line "$SRV_LOG" "closed: reauthorize: deny: rule rc1" &&
		    echo_say "$f2" "$l2" "client after"; then
			pass "$name: its connection is ended with the rule, the other keeps echoing"
		else
			fail "$name: its connection is ended" "see the logs" "$l1" "$l2" "$SRV_LOG"
		fi
	elif echo_say "$f1" "$l1" "rc1 after" && ! has "$SRV_LOG" "reauthorize"; then
		pass "$name: without --reauthorize, its connection keeps echoing"
	else
		fail "$name: untouched without --reauthorize" "see the logs" "$l1" "$SRV_LOG"
	fi
	echo_close "$f1" "$p1"
	echo_close "$f2" "$p2"
	stop_server
	cd "$HK_CERTS" || exit 1
}

# resume N IN OUT: one s_client connection that sends a line and waits
# for its echo, resuming the session in IN (if given), saving to OUT.
resume() {
	local -a io=()
	[ -n "$2" ] && io+=(-sess_in "$2")
	io+=(-sess_out "$3")
	new_log RES_LOG s_client
	(printf 'ping %s\n' "$1"; wait_for_line "$RES_LOG" "ping $1") |
	    timeout 30 openssl s_client -connect "127.0.0.1:$PORT" \
	    -cert client-cert.pem -key client-key.pem -CAfile ca-cert.pem \
	    -tls1_3 "${io[@]}" >"$RES_LOG" 2>&1
}

# Tickets: the ticket keys survive a reload, so a certificate-only
# reload keeps resumption; a CRL change voids the older tickets (the
# authorization generation, mtls.c).
test_reload_tickets() {
	local name="reload: TLS 1.3 tickets"
	pki_copy && issue_server srv2 && issue gone1 --cn gone1 ||
	    { fail "$name" "setup" "$WORK/setup.log"; return; }
	start_server --echo --crl crl.pem \
	    --cert live/server-cert.pem --key live/server-key.pem
	resume 1 "" "$WORK/s1.pem"
	has "$RES_LOG" "New, TLSv1.3" || fail "$name: the first connection" "not new" "$RES_LOG"
	cp srv2-cert.pem live/server-cert.pem
	cp srv2-key.pem live/server-key.pem
	wait_long "$SRV_LOG" "Reloaded configuration (generation 2)" 10
	resume 2 "$WORK/s1.pem" "$WORK/s2.pem"
	if has "$RES_LOG" "Reused, TLSv1.3" && has "$RES_LOG" "ping 2"; then
		pass "$name: a ticket from before a certificate-only reload resumes"
	else
		fail "$name: resumes across a certificate-only reload" "not reused" "$RES_LOG" "$SRV_LOG"
	fi
	bash "$SETUP" -o . revoke gone1 >>"$WORK/setup.log" 2>&1
	wait_long "$SRV_LOG" "Reloaded configuration (generation 3)" 10
	resume 3 "$WORK/s2.pem" "$WORK/s3.pem"
	if has "$RES_LOG" "New, TLSv1.3" && has "$RES_LOG" "ping 3"; then
		pass "$name: after a CRL change, the older ticket is declined (full handshake)"
	else
		fail "$name: a CRL change voids older tickets" "reused" "$RES_LOG" "$SRV_LOG"
	fi
	stop_server
	cd "$HK_CERTS" || exit 1
}

[ -n "${HK_ONLY:-}" ] && { eval "$HK_ONLY"; hk_summary; exit; }
test_reload_rotate auto
test_reload_refused
test_reload_k8s
test_reload_sighup
test_reload_reauthorize_crl auto --reauthorize
test_reload_reauthorize_crl auto
test_reload_policy --reauthorize
test_reload_policy
test_reload_tickets
hk_summary
