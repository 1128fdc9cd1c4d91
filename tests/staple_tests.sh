#!/usr/bin/env bash
# tests/staple_tests.sh - OCSP stapling of the server's certificate:
# --ocsp-staple at the server (checked at start, sent in TLS 1.2 and 1.3)
# and the client's check of what it gets (--require-staple). The
# responses are real: `openssl ocsp` answers from the CA's database with
# the delegated responder (ocsp-cert.pem), and tests/ocsp_response.py signs
# the ones with dates openssl ocsp cannot set (already expired, nearly
# stale). A server that staples a revoked or expired response is played
# by `openssl s_server -status_file`, since ours refuses to start with one.
# Works on a copy of HK_CERTS: it issues and revokes certificates.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
CA=$WORK/ca
cp -r "$HK_CERTS" "$CA" && cd "$CA" || exit 1
SETUP=$HK_ROOT/hello_ktls_setup.sh

# respond CERT OUT [ARGS...]: what the CA's responder says about CERT.
respond() {
	local cert=$1 out=$2
	shift 2
	openssl ocsp -issuer ca-cert.pem -cert "$cert" -no_nonce \
	    -reqout "$WORK/req.der" >/dev/null 2>&1 &&
	    openssl ocsp -index ca-db/index.txt -CA ca-cert.pem \
	    -rsigner ocsp-cert.pem -rkey ocsp-key.pem -reqin "$WORK/req.der" \
	    -respout "$out" "$@" >/dev/null 2>&1
}

# dated CERT STATUS THIS NEXT OUT: a response with offsets from now.
dated() {
	python3 "$HK_ROOT/tests/ocsp_response.py" ca-cert.pem ocsp-cert.pem \
	    ocsp-key.pem "$1" "$2" "$3" "$4" "$5"
}

# A server certificate revoked in the CA's database, and its response.
bash "$SETUP" -o . issue gone-server --server --san DNS:localhost \
    --san IP:127.0.0.1 >/dev/null &&
    bash "$SETUP" -o . revoke gone-server >/dev/null || exit 1
if ! respond server-cert.pem good.der -ndays 7 ||
    ! respond gone-server-cert.pem revoked.der -ndays 7 ||
    ! respond client-cert.pem other.der -ndays 7 ||
    ! dated server-cert.pem good -7200 -60 expired.der ||
    ! dated server-cert.pem good -259200 43200 stale-soon.der ||
    ! openssl ocsp -index ca-db/index.txt -CA ca-cert.pem \
	-rsigner other-ca-cert.pem -rkey other-ca-key.pem \
	-reqin "$WORK/req.der" -respout foreign.der >/dev/null 2>&1; then
	echo "FAIL - cannot make the OCSP responses"
	echo "0 passed, 1 failed"
	exit 1
fi



# refused NAME TEXT ARGS...: the client exits 1 with a line starting TEXT.
refused() {
	local name=$1 text=$2
	shift 2
	run_client "$WORK/c.log" "$@"
	if [ "$CLI_RC" -eq 1 ] && grep -qF "hello_ktls_client: 127.0.0.1:$PORT: $text" \
	    "$WORK/c.log" && ! has "$WORK/c.log" "$HELLO_C"; then
		pass "$name"
	else
		fail "$name" "rc=$CLI_RC, want 1 and '$text'" "$WORK/c.log" "$SRV_LOG"
	fi
}

# s_server STAPLE [NAME]: openssl s_server with NAME-cert.pem (server)
# stapling STAPLE as it is, for one connection; sets PORT. Its stdin is
# the suite's FIFO that nobody writes to: at EOF it would quit.
s_server() {
	local name=${2:-server}
	new_log SRV_LOG s_server
	PORT=$(free_port)
	timeout -k 5 60 openssl s_server -accept "$PORT" -cert "$name-cert.pem" \
	    -key "$name-key.pem" -CAfile ca-cert.pem -Verify 1 -naccept 1 \
	    -status_file "$1" >"$SRV_LOG" 2>&1 <&9 &
	# shellcheck disable=SC2034 # lib.sh's wait_server waits for it
	SRV_PID=$!
	wait_for_line "$SRV_LOG" ACCEPT
}

test_good() {
	local v
	for v in 1.2 1.3; do
		start_server --tls-version "$v" --ocsp-staple good.der
		HK_SERVED_TEXT='OCSP staple: good, next update in ' \
		    served "TLS $v: a good staple is accepted" \
		    --require-staple
		# -ndays 7: 7d within the second it was made, 6d 23h after.
		check "TLS $v: reported in one line, with its next update" \
		    grep -qxE 'OCSP staple: good, next update in (7d|6d 23h)' "$WORK/c.log"
		stop_server
	done
	check "the server says which staple it loads" has "$SRV_LOG" \
	    'Loading OCSP staple: good.der'
}

test_no_staple() {
	start_server
	HK_SERVED_TEXT='TLS handshake completed successfully' \
	    served "no staple: a client without --require-staple is served"
	check "no staple: and prints no staple line" \
	    test "$(grep -c 'OCSP staple' "$WORK/c.log")" -eq 0
	refused "no staple: --require-staple refuses the server" \
	    'server sent no OCSP staple (--require-staple)' --require-staple
	check "no staple: the server hears why" wait_for_line "$SRV_LOG" \
	    'bad certificate status response'
	HK_SERVED_TEXT='TLS handshake completed successfully' \
	    served "no staple: the server still serves the next client"
	stop_server
}

test_client_refuses() {
	s_server revoked.der
	refused "a staple for another certificate is refused" \
	    "server's OCSP staple refused: it has no status for this certificate"
	wait_server
	s_server revoked.der gone-server
	refused "a revoked staple is refused" \
	    "server's OCSP staple refused: the certificate is revoked (unspecified)"
	wait_server
	s_server expired.der
	refused "an expired staple is refused" \
	    "server's OCSP staple refused: it expired: nextUpdate was 1m"
	wait_server
	s_server foreign.der
	refused "a staple signed by another CA is refused" \
	    "server's OCSP staple refused: its signature does not verify"
	wait_server
}

test_start_errors() {
	start_error "start: a staple for another certificate" 1 \
	    '--ocsp-staple other.der: it has no status for this certificate' \
	    --ocsp-staple other.der
	start_error "start: a revoked certificate's staple" 1 \
	    '--ocsp-staple revoked.der: the certificate is revoked (unspecified)' \
	    --cert gone-server-cert.pem --key gone-server-key.pem \
	    --ocsp-staple revoked.der
	start_error "start: garbage" 1 '--ocsp-staple garbage.pem: not a DER OCSP response' \
	    --ocsp-staple garbage.pem
	start_error "start: a PEM certificate is not a response" 1 \
	    '--ocsp-staple ca-cert.pem: not a DER OCSP response' --ocsp-staple ca-cert.pem
	start_error "start: a missing file" 1 \
	    '--ocsp-staple nothing.der: No such file or directory' --ocsp-staple nothing.der
	start_error "start: an expired response" 1 \
	    '--ocsp-staple expired.der: it expired: nextUpdate was 1m' \
	    --ocsp-staple expired.der
	start_error "start: signed by another CA" 1 \
	    '--ocsp-staple foreign.der: its signature does not verify' \
	    --ocsp-staple foreign.der
	check "--ocsp-staple is the server's" sh -c \
	    "! '$CLIENT' --ocsp-staple good.der >'$WORK/o.log' 2>&1 && grep -q ocsp-staple '$WORK/o.log'"
}

test_stale_soon() {
	start_server --ocsp-staple stale-soon.der
	check "a staple with < 1/4 of its life left: a warning at start" grep -qF \
	    'less than a quarter of its lifetime left' \
	    "$SRV_LOG"
	HK_SERVED_TEXT='OCSP staple: good, next update in' \
	    served "and it is still stapled" \
	    --require-staple
	stop_server
}

test_good
test_no_staple
test_client_refuses
test_start_errors
test_stale_soon
hk_summary
