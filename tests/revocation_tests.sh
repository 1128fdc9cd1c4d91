#!/usr/bin/env bash
# tests/revocation_tests.sh - who gets in: client certificate revocation
# by CRL at the server (--crl, --crl-check, --crl-grace, --revocation),
# and what a refused client prints. No kernel TLS needed; the kTLS side
# (a revoked client never gets keys) is in kernel_tests.sh.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
DENIED='access denied by the server: certificate revoked'
REVOKED=(--cert revoked-client-cert.pem --key revoked-client-key.pem)
OTHER=(--cert other-client-cert.pem --key other-client-key.pem)

# Both CAs in one --ca file, so that the other CA's clients chain.
cat ca-cert.pem other-ca-cert.pem >"$WORK/both-ca.pem"
SERIAL=$(openssl x509 -in revoked-client-cert.pem -noout -serial) || exit 1
SERIAL=${SERIAL#serial=}
REFUSED="client certificate rejected: certificate revoked (subject /C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Revoked Client, serial $SERIAL)"



# The control: without --crl the revoked client's certificate is valid.
test_without_crl() {
	start_server
	served "without --crl the revoked client is served" "${REVOKED[@]}"
	stop_server
}

test_revoked() {
	local v=$1
	start_server --tls-version "$v" --crl crl.pem
	served "TLS $v --crl: the good client is served"
	client_refused "TLS $v --crl: the revoked client is refused in the handshake" \
	    "$REFUSED" "$DENIED" "${REVOKED[@]}"
	check "TLS $v --crl: the refused client's line is the plain one" \
	    grep -q "^hello_ktls_client: 127.0.0.1:$PORT: $DENIED\$" "$WORK/bad.log"
	check "TLS $v --crl: the refusal is logged once" \
	    [ "$(grep -c 'certificate revoked' "$SRV_LOG")" -eq 1 ]
	check "TLS $v --crl: the revoked client never got a reply" \
	    not_has "$WORK/bad.log" "Received from server"
	served "TLS $v --crl: a good client is served afterwards"
	stop_server
}

not_has() { ! has "$@"; }

test_bad_crls() {
	start_error "a garbage CRL is refused at start, naming the file" 1 \
	    "--crl garbage.pem: no CRL in it (not PEM or DER)" --crl garbage.pem
	start_error "a CRL with a broken signature is refused at start" 1 \
	    "--crl crl-badsig.der: bad signature: not signed by the --ca certificate" \
	    --crl crl-badsig.der
	start_error "a CRL from a CA not in --ca is refused at start" 1 \
	    "--crl other-ca-crl.pem: its issuer /C=US/ST=CA/L=SantaClara/O=OtherCA/CN=Other CA is not a --ca certificate" \
	    --crl other-ca-crl.pem
	start_error "a missing CRL file is refused at start" 1 \
	    "--crl nope.pem: No such file or directory" --crl nope.pem
	mkdir -p "$WORK/bad-dir"
	cp crl.pem "$WORK/bad-dir/a.pem"
	cp garbage.pem "$WORK/bad-dir/b.pem"
	start_error "a bad file in a --crl directory is refused, naming it" 1 \
	    "--crl $WORK/bad-dir/b.pem: no CRL in it" --crl "$WORK/bad-dir"
	start_error "--crl-grace without --crl is a usage error" 2 \
	    "--crl-check, --crl-grace and --revocation go with --crl" --crl-grace 1h
	start_error "--crl-grace takes a duration" 2 \
	    "invalid value for --crl-grace" --crl crl.pem --crl-grace 1w
	start_error "--revocation takes hard or soft" 2 \
	    "invalid value for --revocation (hard or soft): 'maybe'" --crl crl.pem --revocation maybe
}

test_expired_crl() {
	start_error "an expired CRL fails closed at start" 1 \
	    "--crl crl-expired.pem: expired " --crl crl-expired.pem
	start_error "an expired CRL beyond --crl-grace fails closed" 1 \
	    "--crl crl-expired.pem: expired " --crl crl-expired.pem --crl-grace 1m
	start_server --crl crl-expired.pem --crl-grace 1d
	check "an expired CRL within --crl-grace is logged once at start" \
	    grep -q "^hello_ktls_server: warning: --crl crl-expired.pem: expired .* ago, used within --crl-grace 1d\$" "$SRV_LOG"
	served "within --crl-grace the good client is served"
	check "within --crl-grace the pass is logged" \
	    wait_for_line "$SRV_LOG" "Revocation: not checked: the CRL of /C=US/ST=CA/L=SantaClara/O=TestCA/CN=Test CA expired"
	client_refused "within --crl-grace the revoked client is still refused" \
	    "$REFUSED" "$DENIED" "${REVOKED[@]}"
	check "the grace warning was printed once" \
	    [ "$(grep -c 'used within --crl-grace' "$SRV_LOG")" -eq 1 ]
	stop_server
}

test_issuer_without_crl() {
	start_server --ca "$WORK/both-ca.pem" --crl crl.pem
	client_refused "hard: a client whose issuer has no CRL is refused" \
	    "client certificate rejected: unable to get certificate CRL (subject /C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Test Client" \
	    "server refused the connection" "${OTHER[@]}"
	served "hard: the good client is served"
	stop_server

	start_server --ca "$WORK/both-ca.pem" --crl crl.pem --revocation soft
	served "soft: a client whose issuer has no CRL is let in" "${OTHER[@]}"
	check "soft: the pass is logged and counted" \
	    wait_for_line "$SRV_LOG" "Revocation: not checked: no CRL for its issuer, let in (--revocation soft) (1 so far)"
	served "soft: a second such client" "${OTHER[@]}"
	check "soft: the counter counts" wait_for_line "$SRV_LOG" "(2 so far)"
	client_refused "soft: the revoked client is still refused" \
	    "$REFUSED" "$DENIED" "${REVOKED[@]}"
	served "soft: the good client is served, without a pass line"
	check "soft: only the two passes are logged" \
	    [ "$(grep -c 'Revocation: not checked' "$SRV_LOG")" -eq 2 ]
	stop_server
}

# A directory: DER and PEM, two issuers.
test_directory() {
	mkdir -p "$WORK/crls"
	cp crl.der other-ca-crl.pem "$WORK/crls/"
	start_server --ca "$WORK/both-ca.pem" --crl "$WORK/crls" --crl-check chain
	served "--crl DIR: the good client is served"
	served "--crl DIR: the other CA's client is served (its CRL is there)" "${OTHER[@]}"
	check "--crl DIR: no pass was needed" not_has "$SRV_LOG" "Revocation: not checked"
	client_refused "--crl DIR (DER): the revoked client is refused" \
	    "$REFUSED" "$DENIED" "${REVOKED[@]}"
	stop_server
}

test_without_crl
test_revoked 1.3
test_revoked 1.2
test_bad_crls
test_expired_crl
test_issuer_without_crl
test_directory
hk_summary
