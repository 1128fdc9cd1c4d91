#!/usr/bin/env bash
# tests/tamper_tests.sh - a man in the middle (tests/tamper_proxy.py)
# between our client and our --echo server, both with kTLS required, changes
# one application-data record from the client after the handshake:
#   flip      one ciphertext bit: the server's kTLS read fails authentication
#             (EBADMSG), TlsDecryptError goes up, the client (kTLS RX) gets
#             the bad_record_mac alert;
#   oversize  a record header longer than any TLS record: the server's kTLS
#             read fails with EMSGSIZE, the client gets record_overflow.
# The same transfer through the untouched proxy is the control. One server
# runs throughout, the clients pin TLS 1.3 or 1.2: a client streaming to it
# directly while each tampered connection fails, and one after, are served.
# Runs where kernel_tests.sh runs: bash tests/uml.sh -- bash tests/tamper_tests.sh
set -u
. "$(dirname "$0")/lib.sh"
hk_init

require_ktls

DATA=$WORK/data.bin       # through the proxy: 19 records of up to 16 KiB
BIG=$WORK/big.bin         # directly, alongside
head -c 300000 /dev/urandom >"$DATA"
head -c 2000000 /dev/urandom >"$BIG"


# The client's type-23 records before its first application data: in TLS
# 1.3 its encrypted Certificate, CertificateVerify and Finished (mutual
# TLS: three, each its own record); in TLS 1.2 none (its Finished is type
# 22, after ChangeCipherSpec). The control test prints the sequence seen.
first_data() { [ "$1" = 1.3 ] && echo 4 || echo 1; }

# The proxy's plan: connection K (1, 2, ...) is the Kth entry. Each
# version: the control, a flip of the first data record, a flip of one
# further on (after the server has echoed some), an oversized record.
PLAN=()
for v in 1.3 1.2; do
	n=$(first_data "$v")
	PLAN+=("pass:$n" "flip:$n" "flip:$((n + 10))" "oversize:$n")
done
CONN=0

# Python starts slowly in the UML guest (seconds): one proxy for all.
start_proxy() {
	local i text re=$'(^|\n)port ([0-9]+)\n'
	new_log PX_LOG proxy
	timeout 600 python3 "$HK_ROOT/tests/tamper_proxy.py" --timeout 60 "$PORT" \
	    "${PLAN[@]}" >"$PX_LOG" 2>&1 &
	PX_PID=$!
	PX_PORT=
	for ((i = 0; i < 1200; i++)); do
		text=
		[ -r "$PX_LOG" ] && IFS= read -r -d '' text <"$PX_LOG"
		[[ $text =~ $re ]] && PX_PORT=${BASH_REMATCH[2]} && return 0
		nap 0.05
	done
	return 1
}

# conn_done NAME: the proxy finished its connection CONN and reached the
# record it was to change. Sets UP_PORT (the client port the server saw)
# and BEFORE (the types of the client's records before that one).
conn_done() {
	local re="(^|"$'\n'")$CONN upstream port ([0-9]+)"$'\n' n=${PLAN[CONN - 1]#*:}
	if ! wait_for_line "$PX_LOG" $'\n'"$CONN done"$'\n'; then
		fail "$1: the proxy handled the connection" "no '$CONN done' in its log" "$PX_LOG"
		return 1
	fi
	UP_PORT=
	[[ $(<"$PX_LOG") =~ $re ]] && UP_PORT=${BASH_REMATCH[2]}
	BEFORE=$(awk -v k="$CONN" '$1 == k && $2 == "c>s" && $3 == "type" {
		if (NF > 6) exit; printf "%s%s", sep, $4; sep = " " }' "$PX_LOG")
	if ! has "$PX_LOG" $'\n'"$CONN hit record $n"$'\n'; then
		fail "$1: the proxy reached record $n" "$(grep "^$CONN never" "$PX_LOG")"
		return 1
	fi
}

# alongside V: a client streaming BIG to the server directly, in the background.
alongside() {
	new_log BG_LOG direct
	rm -f "$WORK/big.back"
	timeout 120 "$CLIENT" -p "$PORT" --ktls require --tls-version "$1" \
	    --send-file "$BIG" --output "$WORK/big.back" >"$BG_LOG" 2>&1 &
	BG_PID=$!
}

alongside_ok() {
	local rc=0
	wait "$BG_PID" || rc=$?
	if [ "$rc" -eq 0 ] && has "$BG_LOG" "Echo verified: $(stat -c %s "$BIG") bytes" &&
	    cmp -s "$BIG" "$WORK/big.back"; then
		pass "$1: a direct connection meanwhile streams $(stat -c %s "$BIG") bytes intact"
	else
		fail "$1: a direct connection meanwhile" "rc=$rc" "$BG_LOG"
	fi
}

# after NAME V: the server still runs and serves a direct client.
after() {
	local out
	new_log out good
	run_client "$out" --ktls require --tls-version "$2" --message "after the tampering"
	if kill -0 "$SRV_PID" 2>/dev/null && [ "$CLI_RC" -eq 0 ] &&
	    has "$out" "Received from server: after the tampering" &&
	    has "$out" "kTLS RX: active (software)"; then
		pass "$1: server still up, a direct client is served afterwards"
	else
		fail "$1: server still up, a direct client is served afterwards" "rc=$CLI_RC" "$out" "$SRV_LOG"
	fi
}

# through_proxy OUT V: our client sends DATA through the proxy (connection CONN).
through_proxy() {
	CONN=$((CONN + 1))
	rm -f "$WORK/back.bin"
	CLI_RC=0
	timeout 60 "$CLIENT" -p "$PX_PORT" --ktls require --tls-version "$2" \
	    --send-file "$DATA" --output "$WORK/back.bin" >"$1" 2>&1 || CLI_RC=$?
}

# control V: the transfer through the untouched proxy succeeds.
control() {
	local v=$1 name="TLS $1 through the proxy, untouched" err0 out
	new_log out client
	err0=$(stat_get TlsDecryptError)
	through_proxy "$out" "$v"
	conn_done "$name" || return
	if [ "$CLI_RC" -eq 0 ] && cmp -s "$DATA" "$WORK/back.bin" &&
	    has "$out" "kTLS RX: active (software)" &&
	    [ "$(stat_get TlsDecryptError)" -eq "$err0" ]; then
		pass "$name: echo intact, no decrypt errors; client records before its first data: $BEFORE"
	else
		fail "$name" "rc=$CLI_RC" "$out" "$PX_LOG"
	fi
}

# tamper V MODE SERVER_SAYS CLIENT_SAYS DECRYPT_ERRORS: the next planned
# connection, whose server and client must fail as said, and TlsDecryptError
# must go up by exactly DECRYPT_ERRORS: a bad record is decrypted once.
tamper() {
	local v=$1 srv_says=$3 cli_says=$4 want=$5 err0 err line out
	local name="TLS $1 ${PLAN[CONN]/:/ of type-23 record }"
	new_log out client
	err0=$(stat_get TlsDecryptError)
	alongside "$v"
	through_proxy "$out" "$v"
	if conn_done "$name"; then
		line="hello_ktls_server: client 127.0.0.1:$UP_PORT: "
		if wait_for_line "$SRV_LOG" "$line$srv_says"$'\n'; then
			pass "$name: the server's read fails: '$srv_says'"
		else
			fail "$name: the server's read fails: '$srv_says'" \
			    "it logged '$(grep -F "$line" "$SRV_LOG")'" "$PX_LOG"
		fi
		line="hello_ktls_client: 127.0.0.1:$PX_PORT: "
		if [ "$CLI_RC" -eq 1 ] && has "$out" "$line$cli_says"$'\n' &&
		    has "$out" "kTLS RX: active (software)"; then
			pass "$name: the client gets the alert: '$cli_says'"
		else
			fail "$name: the client gets the alert: '$cli_says'" \
			    "rc=$CLI_RC; it said '$(grep -F "$line" "$out")'"
		fi
	fi
	err=$(stat_get TlsDecryptError)
	if [ "$err" -eq $((err0 + want)) ]; then
		pass "$name: TlsDecryptError $err0 -> $err"
	else
		fail "$name: TlsDecryptError" "$err0 -> $err, want +$want"
	fi
	alongside_ok "$name"
	after "$name" "$v"
}

MAC="kTLS read: record failed authentication (bad_record_mac)"
OVERFLOW="kTLS read: record too large (record_overflow)"

echo "# kernel $(uname -r)"
start_server --echo --ktls require
if ! start_proxy; then
	fail "tamper_proxy.py starts" "no port within 60 s" "$PX_LOG"
	hk_summary
	exit
fi
for v in 1.3 1.2; do
	control "$v"
	tamper "$v" flip "$MAC" "peer sent fatal alert: bad record mac" 1
	tamper "$v" flip "$MAC" "peer sent fatal alert: bad record mac" 1
	tamper "$v" oversize "$OVERFLOW" "peer sent fatal alert: record overflow" 0
done
wait "$PX_PID"
check "the server ran throughout" kill -0 "$SRV_PID"
stop_server
hk_summary
