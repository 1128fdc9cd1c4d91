#!/usr/bin/env bash
# tests/renewal_tests.sh - a real renewal loop: a client certificate and
# the server's, each living 45 s, renewed by hello_ktls_setup.sh at two
# thirds of their lifetime (computed from the certificate's own dates, as
# `step ca renew` does), while our client connects again and again to our
# server, which picks its new certificate up by watching the directory
# (live reload). Every connection must succeed, also after the first
# certificates have expired, and the server must have seen each renewed
# client certificate. About 55 s.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

SETUP=$HK_ROOT/hello_ktls_setup.sh
CA=$WORK/ca
LIFETIME=45s

# not_after/not_before FILE: the certificate's dates, in epoch seconds.
cert_date() {
	local d
	d=$(openssl x509 -in "$2" -noout "-$1") || return 1
	date -u -d "${d#*=}" +%s
}

# The loop a deployment runs (README, "Rotating identities"): sleep until
# two thirds of the current certificate's lifetime, renew, repeat. The
# clock is polled, so a suspended machine renews at once when it wakes.
# renew_loop NAME: for NAME-cert.pem.
renew_loop() {
	local nb na at
	while [ ! -e "$WORK/stop" ]; do
		nb=$(cert_date startdate "$CA/$1-cert.pem") &&
		    na=$(cert_date enddate "$CA/$1-cert.pem") || {
			echo "renew loop: cannot read $1-cert.pem"
			return 1
		}
		at=$((nb + (na - nb) * 2 / 3))
		while [ "$EPOCHSECONDS" -lt "$at" ] && [ ! -e "$WORK/stop" ]; do
			nap 0.2
		done
		[ -e "$WORK/stop" ] && break
		bash "$SETUP" -o "$CA" renew "$1" || echo "renew loop: renew failed"
	done
}

serials_in() { grep -o '"tls.client.x509.serial_number":"[0-9A-F]*"' "$1" | sort -u | wc -l; }

test_renewal_loop() {
	local first_na srv_na key ok=0 bad=0 after=0 renewals started
	bash "$SETUP" -o "$CA" >"$WORK/setup.log" 2>&1 &&
	    bash "$SETUP" -o "$CA" issue rot --lifetime "$LIFETIME" \
	    --san URI:spiffe://example.org/rot >>"$WORK/setup.log" 2>&1 &&
	    bash "$SETUP" -o "$CA" issue srv --server --lifetime "$LIFETIME" \
	    --cn localhost --san DNS:localhost --san IP:127.0.0.1 >>"$WORK/setup.log" 2>&1 ||
	    { fail "a CA, a $LIFETIME client and server" "setup failed" "$WORK/setup.log"; return; }
	first_na=$(cert_date enddate "$CA/rot-cert.pem")
	srv_na=$(cert_date enddate "$CA/srv-cert.pem")
	key=$(openssl x509 -in "$CA/rot-cert.pem" -noout -pubkey)
	start_server --cert "$CA/srv-cert.pem" --key "$CA/srv-key.pem" \
	    --ca "$CA/ca-cert.pem" --audit "$WORK/audit.json" || return
	renew_loop rot >"$WORK/renew.log" 2>&1 &
	local loop=$!
	renew_loop srv >"$WORK/renew-srv.log" 2>&1 &
	local loop_srv=$!
	started=$EPOCHSECONDS
	# Until 5 s past the first certificate's notAfter: without renewals
	# the last connections would be refused.
	[ "$srv_na" -gt "$first_na" ] && first_na=$srv_na
	while [ "$EPOCHSECONDS" -le $((first_na + 5)) ] &&
	    [ $((EPOCHSECONDS - started)) -lt 110 ]; do
		run_client "$WORK/client.log" --cert "$CA/rot-cert.pem" \
		    --key "$CA/rot-key.pem" --ca "$CA/ca-cert.pem"
		if [ "$CLI_RC" -eq 0 ] && has "$WORK/client.log" 'Received from server:'; then
			ok=$((ok + 1))
			[ "$EPOCHSECONDS" -gt "$first_na" ] && after=$((after + 1))
		else
			bad=$((bad + 1))
			cp "$WORK/client.log" "$WORK/client.bad.log"
		fi
		nap 0.3
	done
	: >"$WORK/stop"
	wait "$loop" "$loop_srv"
	# The last renewals may have come after the last connection: the
	# server reloads its own within a moment, and one more connection
	# shows it the client's.
	wait_count "$SRV_LOG" 'Reloaded configuration' \
	    "$(grep -c 'renewed (same key)' "$WORK/renew-srv.log")"
	run_client "$WORK/client.log" --cert "$CA/rot-cert.pem" \
	    --key "$CA/rot-key.pem" --ca "$CA/ca-cert.pem"
	if [ "$CLI_RC" -eq 0 ]; then
		ok=$((ok + 1))
	else
		bad=$((bad + 1))
		cp "$WORK/client.log" "$WORK/client.bad.log"
	fi
	renewals=$(grep -c 'renewed (same key)' "$WORK/renew.log")
	if [ "$bad" -eq 0 ] && [ "$ok" -ge 20 ]; then
		pass "every connection succeeded across the renewals ($ok)"
	else
		fail "every connection succeeded across the renewals" \
		    "$ok succeeded, $bad failed" "$WORK/client.bad.log" "$WORK/renew.log" \
		    "$WORK/renew-srv.log" "$SRV_LOG"
	fi
	check "connections after the first certificates expired ($after)" test "$after" -ge 3
	if [ "$renewals" -ge 3 ] && ! has "$WORK/renew.log" 'renew loop:'; then
		pass "renewed at two thirds of each lifetime ($renewals times)"
	else
		fail "renewed at two thirds of each lifetime" "$renewals renewals" "$WORK/renew.log"
	fi
	check "the server saw every renewed certificate (serials in the audit)" \
	    test "$(serials_in "$WORK/audit.json")" -ge $((renewals + 1))
	check "the server reloaded each renewed certificate of its own" \
	    test "$(grep -c 'Reloaded configuration' "$SRV_LOG")" -ge \
	    "$(grep -c 'renewed (same key)' "$WORK/renew-srv.log")" -a \
	    "$(grep -c 'renewed (same key)' "$WORK/renew-srv.log")" -ge 3
	check "the key stayed the same" test \
	    "$(openssl x509 -in "$CA/rot-cert.pem" -noout -pubkey)" = "$key"
	check "the server logged the time left on each" \
	    wait_count "$SRV_LOG" 'Client certificate expires in ' "$ok"
	stop_server
}

test_renewal_loop
hk_summary
