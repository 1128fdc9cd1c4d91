#!/usr/bin/env bash
# tests/ocsp_tests.sh - who gets in: the server asks an OCSP responder
# about each client certificate (--ocsp, --ocsp-url, --ocsp-timeout,
# --ocsp-nonce, --revocation hard|soft). A real `openssl ocsp` responder
# on loopback answers good, revoked and unknown; one that is not running,
# and one that never answers (tests/ocsp_peer.py silent), show the
# failure policy; a counting proxy (tests/ocsp_peer.py) shows the cache
# and the shared query. Each case also checks its audit line.
# No kernel TLS needed.
set -u
. "$(dirname "$0")/lib.sh"
hk_init
PEERS=()
trap 'stop_peers; stop_server; rm -rf "$WORK"' EXIT

PEER_PY=$HK_ROOT/tests/ocsp_peer.py
HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
REVOKED=(--cert revoked-client-cert.pem --key revoked-client-key.pem)
DN='/C=US/ST=CA/L=SantaClara/O=TestOrg'

stop_peers() {
	local p
	for p in "${PEERS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PEERS=()
}

# serial_of CERT: its serial as the server prints it.
serial_of() {
	local s
	s=$(openssl x509 -in "$1" -noout -serial) || return 1
	echo "${s#serial=}"
}

# start_responder PORT [CERT KEY]: openssl ocsp on our CA's database,
# signing with the CA itself or CERT, nextUpdate in an hour; its log:
# $RESP_LOG.
start_responder() {
	new_log RESP_LOG responder
	openssl ocsp -index "$WORK/ca-db/index.txt" -CA ca-cert.pem \
	    -rsigner "${2:-ca-cert.pem}" -rkey "${3:-ca-key.pem}" -port "$1" \
	    -nmin 60 >"$RESP_LOG" 2>&1 &
	PEERS+=($!)
	wait_for_line "$RESP_LOG" "waiting for OCSP client connections"
}

# start_peer PORT ARGS...: tests/ocsp_peer.py; its log: $PEER_LOG.
start_peer() {
	new_log PEER_LOG peer
	python3 "$PEER_PY" "$@" >"$PEER_LOG" 2>&1 &
	PEERS+=($!)
	wait_long "$PEER_LOG" "listening" 20
}



# audit_has NAME FILE N KEY=JSON...: the Nth revocation-checked line of
# FILE has each KEY with the JSON value (KEY~=JSON: a string holding it).
audit_has() {
	local name=$1 file=$2 n=$3 why
	shift 3
	wait_count "$file" '"revocation-checked"' "$n"
	if why=$(python3 - "$file" "$n" "$@" <<'EOF'
import json, sys
# Whole lines only: the server may be writing the next one.
lines = [json.loads(l) for l in open(sys.argv[1]).read().split("\n")[:-1]]
rev = [o for o in lines if o.get("event.action") == "revocation-checked"]
n = int(sys.argv[2])
if len(rev) < n:
    sys.exit(f"{len(rev)} revocation-checked lines, want {n}")
o = rev[n - 1]
for kv in sys.argv[3:]:
    k, _, v = kv.partition("=")
    want = json.loads(v)
    if k.endswith("~"):
        k = k[:-1]
        if want not in str(o.get(k)):
            sys.exit(f"{k} is {o.get(k)!r}, want it to hold {want!r}")
    elif o.get(k) != want:
        sys.exit(f"{k} is {o.get(k)!r}, want {want!r}")
EOF
	); then
		pass "$name"
	else
		fail "$name" "$why" "$file"
	fi
}

# Certificates made here: issued through a copy of the CA's database, so
# that the responder knows them; one with an AIA naming the responder,
# one with an AIA naming a responder that never answers; one issued
# without the database, so that the responder does not know it; and a
# delegated responder certificate (OCSPSigning, issued by the CA).
make_certs() {
	local name aia
	cp -r "$HK_CERTS/ca-db" "$WORK/ca-db"
	printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
	    'keyUsage = critical, digitalSignature' \
	    'extendedKeyUsage = OCSPSigning' >"$WORK/signer.cnf"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$WORK/signer-key.pem" -out "$WORK/signer.csr" \
	    -subj "$DN/CN=OCSP signer" >>"$WORK/certs.log" 2>&1 &&
	    openssl x509 -req -in "$WORK/signer.csr" -CA ca-cert.pem \
	    -CAkey ca-key.pem -set_serial 0x5161 -days 30 \
	    -extfile "$WORK/signer.cnf" -out "$WORK/signer-cert.pem" \
	    >>"$WORK/certs.log" 2>&1 || return 1
	for name in aia slow unknown; do
		aia=$AIA_PORT
		[ "$name" = slow ] && aia=$SLOW_PORT
		printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
		    'keyUsage = critical, digitalSignature' \
		    'extendedKeyUsage = clientAuth' \
		    "authorityInfoAccess = OCSP;URI:http://127.0.0.1:$aia/" \
		    >"$WORK/$name.cnf"
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$WORK/$name-key.pem" -out "$WORK/$name.csr" \
		    -subj "$DN/CN=OCSP $name client" >>"$WORK/certs.log" 2>&1 || return 1
		if [ "$name" = unknown ]; then
			openssl x509 -req -in "$WORK/$name.csr" -CA ca-cert.pem \
			    -CAkey ca-key.pem -set_serial 0x0CC5 -days 30 \
			    -out "$WORK/$name-cert.pem" >>"$WORK/certs.log" 2>&1
		else
			(cd "$WORK/ca-db" && openssl ca -batch -config openssl.cnf \
			    -cert "$HK_CERTS/ca-cert.pem" -keyfile "$HK_CERTS/ca-key.pem" \
			    -notext -rand_serial -days 30 -extfile "$WORK/$name.cnf" \
			    -in "$WORK/$name.csr" -out "$WORK/$name-cert.pem") \
			    >>"$WORK/certs.log" 2>&1
		fi || return 1
	done
}

AIA_PORT=$(free_port)
SLOW_PORT=$(free_port)
while [ "$SLOW_PORT" = "$AIA_PORT" ]; do SLOW_PORT=$(free_port); done
if ! make_certs; then
	fail "the test certificates are made" "openssl failed" "$WORK/certs.log"
	hk_summary
	exit 1
fi
AIA=(--cert "$WORK/aia-cert.pem" --key "$WORK/aia-key.pem")
SLOW=(--cert "$WORK/slow-cert.pem" --key "$WORK/slow-key.pem")
UNKNOWN=(--cert "$WORK/unknown-cert.pem" --key "$WORK/unknown-key.pem")
REVOKED_NAMES="subject $DN/CN=Revoked Client, serial $(serial_of revoked-client-cert.pem)"
GOOD_NAMES="subject $DN/CN=Test Client, serial $(serial_of client-cert.pem)"
UNKNOWN_NAMES="subject $DN/CN=OCSP unknown client, serial 0CC5"

test_options() {
	start_error "--ocsp-url must be a URL" 1 \
	    "--ocsp-url nope: not a URL like http://host[:port]/path" --ocsp-url nope
	start_error "--ocsp-url https:// is refused, saying why" 1 \
	    "--ocsp-url https://127.0.0.1/: https is not supported" \
	    --ocsp-url https://127.0.0.1/
	start_error "--ocsp-nonce without --ocsp is a usage error" 2 \
	    "--ocsp-nonce and --ocsp-timeout go with --ocsp or --ocsp-url" --ocsp-nonce
	start_error "--ocsp-timeout without --ocsp is a usage error" 2 \
	    "--ocsp-nonce and --ocsp-timeout go with --ocsp or --ocsp-url" \
	    --ocsp-timeout 2s
	start_error "--ocsp-timeout takes a duration" 2 \
	    "invalid value for --ocsp-timeout" --ocsp --ocsp-timeout 0
	start_error "--revocation alone is a usage error" 2 \
	    "--revocation go with --crl (--revocation also with --ocsp)" \
	    --revocation soft
}

# good, revoked (in the handshake: certificate_revoked), cache hits.
test_good_revoked() {
	local v=$1 url="http://127.0.0.1:$RESP_PORT/" audit=$WORK/gr$1.jsonl
	start_server --tls-version "$v" --ocsp-url "$url" --audit "$audit"
	check "TLS $v: the start line says how OCSP is used" \
	    has "$SRV_LOG" "OCSP: checking client certificates (responder: $url; timeout 5s; nonce off; hard)"
	served "TLS $v: a good client is served"
	audit_has "TLS $v: audit: ocsp good, fresh, not from the cache" "$audit" 1 \
	    'hk.revocation.source="ocsp"' 'hk.revocation.status="good"' \
	    "hk.revocation.responder=\"$url\"" 'hk.revocation.cache_hit=false' \
	    'hk.revocation.soft_pass=false' 'event.outcome="success"' \
	    'hk.revocation.this_update~="T"' 'hk.revocation.next_update~="T"'
	client_refused "TLS $v: the revoked client is refused in the handshake" \
	    "client certificate rejected: certificate revoked ($REVOKED_NAMES; OCSP responder $url: revoked (keyCompromise))" \
	    "access denied by the server: certificate revoked" "${REVOKED[@]}"
	check "TLS $v: the refused client's line is the plain one" \
	    grep -q "^hello_ktls_client: 127.0.0.1:$PORT: access denied by the server: certificate revoked\$" "$WORK/bad.log"
	check "TLS $v: the revoked client never got a reply" \
	    not_has "$WORK/bad.log" "Received from server"
	audit_has "TLS $v: audit: ocsp revoked, a failure with the reason" "$audit" 2 \
	    'hk.revocation.status="revoked"' 'event.outcome="failure"' \
	    "event.reason=\"OCSP responder $url: revoked (keyCompromise)\""
	served "TLS $v: the good client again"
	audit_has "TLS $v: audit: the second time from the cache" "$audit" 3 \
	    'hk.revocation.status="good"' 'hk.revocation.cache_hit=true'
	stop_server
}

not_has() { ! has "$@"; }

# N sequential connections of one client: one query.
test_cache_sequential() {
	local i
	start_peer "$PROXY_PORT" "$RESP_PORT" 0
	start_server --ocsp-url "http://127.0.0.1:$PROXY_PORT/"
	for i in 1 2 3 4 5; do
		run_client "$WORK/c$i.log"
		[ "$CLI_RC" -eq 0 ] || break
	done
	if [ "$CLI_RC" -eq 0 ] && [ "$(grep -c '^request' "$PEER_LOG")" -eq 1 ]; then
		pass "5 connections of one client: served, with one query"
	else
		fail "5 connections of one client" "rc=$CLI_RC, $(grep -c '^request' "$PEER_LOG") queries" "$SRV_LOG" "$PEER_LOG"
	fi
	stop_server
	check "the counts at shutdown: 1 query, 4 cache hits" \
	    has "$SRV_LOG" "OCSP: 1 queries, 4 cache hits, 0 soft passes"
	stop_peers
	start_responder "$RESP_PORT"
}

# 4 first connections at once, the query slowed to 1 s: they share it.
test_cache_concurrent() {
	local i pids=() ok=1
	start_peer "$PROXY_PORT" "$RESP_PORT" 1
	start_server --ocsp-url "http://127.0.0.1:$PROXY_PORT/"
	for i in 1 2 3 4; do
		timeout 60 "$CLIENT" -p "$PORT" >"$WORK/p$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || ok=0; done
	if [ "$ok" -eq 1 ] && [ "$(grep -c '^request' "$PEER_LOG")" -eq 1 ]; then
		pass "4 first connections at once: all served, one query"
	else
		fail "4 first connections at once" "ok=$ok, $(grep -c '^request' "$PEER_LOG") queries" "$SRV_LOG" "$PEER_LOG"
	fi
	stop_server
	stop_peers
	start_responder "$RESP_PORT"
}

# A certificate the responder does not know: hard refuses, soft lets in.
test_unknown() {
	local url="http://127.0.0.1:$RESP_PORT/" audit=$WORK/unknown.jsonl
	start_server --ocsp-url "$url"
	client_refused "hard: status unknown is refused" \
	    "client certificate rejected: OCSP unknown cert ($UNKNOWN_NAMES; OCSP responder $url: status unknown)" \
	    "access denied by the server: certificate unknown" "${UNKNOWN[@]}"
	stop_server
	start_server --ocsp-url "$url" --revocation soft --audit "$audit"
	served "soft: status unknown is let in" "${UNKNOWN[@]}"
	check "soft: the pass is logged and counted" wait_for_line "$SRV_LOG" \
	    "Revocation: not checked: OCSP responder $url: status unknown, let in (--revocation soft) (1 so far)"
	audit_has "soft: audit: unknown, soft pass, a success" "$audit" 1 \
	    'hk.revocation.status="unknown"' 'hk.revocation.soft_pass=true' \
	    'event.outcome="success"'
	client_refused "soft: the revoked client is still refused" \
	    "certificate revoked ($REVOKED_NAMES" \
	    "access denied by the server: certificate revoked" "${REVOKED[@]}"
	stop_server
}

# Nothing listens on the responder's port.
test_down() {
	local url="http://127.0.0.1:$DOWN_PORT/" audit=$WORK/down.jsonl
	start_server --ocsp-url "$url" --audit "$audit"
	client_refused "hard: a responder not running refuses the client, saying why" \
	    "client certificate rejected: OCSP verification failed ($GOOD_NAMES; OCSP responder $url: Connection refused)" \
	    "access denied by the server: certificate unknown"
	audit_has "hard: audit: error, connection refused, a failure" "$audit" 1 \
	    'hk.revocation.status="error"' 'event.outcome="failure"' \
	    "event.reason=\"OCSP responder $url: Connection refused\""
	stop_server
	start_server --ocsp-url "$url" --revocation soft --audit "$audit.soft"
	served "soft: a responder not running lets the client in"
	check "soft: the pass is logged and counted" wait_for_line "$SRV_LOG" \
	    "Revocation: not checked: OCSP responder $url: Connection refused, let in (--revocation soft) (1 so far)"
	served "soft: a second connection (the failure is cached)"
	check "soft: the second pass is counted" wait_for_line "$SRV_LOG" "(2 so far)"
	audit_has "soft: audit: the failure came from the cache" "$audit.soft" 2 \
	    'hk.revocation.status="error"' 'hk.revocation.soft_pass=true' \
	    'hk.revocation.cache_hit=true'
	stop_server
	check "soft: the counts at shutdown" \
	    has "$SRV_LOG" "OCSP: 1 queries, 1 cache hits, 2 soft passes"
}

# A certificate without an AIA and no --ocsp-url.
test_no_aia() {
	start_server --ocsp
	client_refused "hard: a certificate without AIA is refused, naming it" \
	    "OCSP verification failed ($GOOD_NAMES; OCSP responder (none): none: the certificate names no OCSP responder (AIA) and there is no --ocsp-url)" \
	    "access denied by the server: certificate unknown"
	stop_server
	start_server --ocsp --revocation soft
	served "soft: a certificate without AIA is let in"
	check "soft: that pass is noted" wait_for_line "$SRV_LOG" \
	    "Revocation: not checked: OCSP responder (none): none: the certificate names no OCSP responder"
	stop_server
}

# --ocsp alone: each certificate's AIA; a slow responder holds up only
# the client that needs it.
test_aia_and_slow() {
	local audit=$WORK/aia.jsonl slow_pid start ms
	start_peer "$SLOW_PORT" silent
	start_server --ocsp --ocsp-timeout 1s --audit "$audit"
	check "--ocsp: the start line says the responder is from AIA" \
	    has "$SRV_LOG" "OCSP: checking client certificates (responder: from AIA; timeout 1s; nonce off; hard)"
	served "AIA: a client whose AIA names the responder is served" "${AIA[@]}"
	audit_has "AIA: audit: the responder from the AIA" "$audit" 1 \
	    "hk.revocation.responder=\"http://127.0.0.1:$AIA_PORT/\"" \
	    'hk.revocation.status="good"'
	start=$(date +%s%N)
	timeout 60 "$CLIENT" -p "$PORT" "${SLOW[@]}" >"$WORK/slow.log" 2>&1 &
	slow_pid=$!
	# Its query is in flight: the silent peer has it.
	wait_for_line "$PEER_LOG" "request 1"
	served "slow responder: meanwhile a cached client is served" "${AIA[@]}"
	if kill -0 "$slow_pid" 2>/dev/null; then
		pass "slow responder: ... before the slow client's answer"
	else
		fail "slow responder: the cached client did not wait" "the slow client was already done" "$WORK/slow.log"
	fi
	wait "$slow_pid"
	CLI_RC=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	if [ "$CLI_RC" -eq 1 ] && [ "$ms" -ge 900 ] && [ "$ms" -lt 4000 ] &&
	    has "$WORK/slow.log" "access denied by the server: certificate unknown" &&
	    wait_for_line "$SRV_LOG" "OCSP responder http://127.0.0.1:$SLOW_PORT/: timed out)"; then
		pass "slow responder, --ocsp-timeout 1s: refused after about 1 s (${ms} ms), timed out"
	else
		fail "slow responder, --ocsp-timeout 1s" "rc=$CLI_RC after $ms ms" "$WORK/slow.log" "$SRV_LOG"
	fi
	stop_server
	stop_peers
	start_responder "$RESP_PORT"
}

test_nonce() {
	local audit=$WORK/nonce.jsonl
	start_server --ocsp-url "http://127.0.0.1:$RESP_PORT/" --ocsp-nonce --audit "$audit"
	check "--ocsp-nonce: the start line says so" has "$SRV_LOG" "nonce on; hard)"
	served "--ocsp-nonce: a responder that returns the nonce: served"
	client_refused "--ocsp-nonce: the revoked client is refused" \
	    "certificate revoked ($REVOKED_NAMES" \
	    "access denied by the server: certificate revoked" "${REVOKED[@]}"
	stop_server
}

# Who may sign the answers: a delegated signer (OCSPSigning, issued by
# the CA) may; another CA, or a certificate of ours without OCSPSigning,
# may not: hard refuses.
test_signers() {
	local url="http://127.0.0.1:$SIGNER_PORT/"
	start_responder "$SIGNER_PORT" "$WORK/signer-cert.pem" "$WORK/signer-key.pem"
	start_server --ocsp-url "$url"
	served "a delegated signer (OCSPSigning by the CA): the good client is served"
	client_refused "a delegated signer: the revoked client is refused" \
	    "certificate revoked ($REVOKED_NAMES; OCSP responder $url: revoked (keyCompromise))" \
	    "access denied by the server: certificate revoked" "${REVOKED[@]}"
	stop_server
	kill "${PEERS[-1]}" && wait "${PEERS[-1]}" 2>/dev/null
	start_responder "$SIGNER_PORT" other-ca-cert.pem other-ca-key.pem
	start_server --ocsp-url "$url"
	client_refused "answers signed by another CA are refused" \
	    "OCSP verification failed ($GOOD_NAMES; OCSP responder $url: the response does not verify" \
	    "access denied by the server: certificate unknown"
	stop_server
	kill "${PEERS[-1]}" && wait "${PEERS[-1]}" 2>/dev/null
	start_responder "$SIGNER_PORT" server-cert.pem server-key.pem
	start_server --ocsp-url "$url"
	client_refused "answers signed by a CA's certificate without OCSPSigning are refused" \
	    "OCSP verification failed ($GOOD_NAMES; OCSP responder $url: the response does not verify" \
	    "access denied by the server: certificate unknown"
	stop_server
}

# The CRL checks have their revocation-checked line too, and with --crl
# and --ocsp a client has both.
test_crl_audit() {
	local audit=$WORK/crl.jsonl
	start_server --crl crl.pem --ocsp-url "http://127.0.0.1:$RESP_PORT/" --audit "$audit"
	served "--crl and --ocsp: the good client is served"
	audit_has "--crl: audit: crl good, the CRL's lastUpdate and nextUpdate" "$audit" 1 \
	    'hk.revocation.source="crl"' 'hk.revocation.status="good"' \
	    'hk.revocation.this_update~="T"' 'hk.revocation.next_update~="T"' \
	    'event.outcome="success"'
	audit_has "--crl and --ocsp: audit: then ocsp good" "$audit" 2 \
	    'hk.revocation.source="ocsp"' 'hk.revocation.status="good"'
	client_refused "--crl and --ocsp: the revoked client is refused by the CRL" \
	    "certificate revoked ($REVOKED_NAMES)" \
	    "access denied by the server: certificate revoked" "${REVOKED[@]}"
	audit_has "--crl: audit: crl revoked, a failure" "$audit" 3 \
	    'hk.revocation.source="crl"' 'hk.revocation.status="revoked"' \
	    'event.outcome="failure"'
	stop_server
}

# --reauthorize with --ocsp: after a reload the open connections' clients
# are asked about again (a new context, a new OCSP cache), here through a
# proxy that takes 3 s. Connections that end meanwhile must not wait for
# those queries (the re-checks held the list's lock through them).
test_reauthorize_slow() {
	local policy=$WORK/reauth.policy log cn n0
	cn=$(openssl x509 -in client-cert.pem -noout -subject -nameopt sep_multiline,utf8 |
	    sed -n 's/^ *CN=//p')
	printf 'allow clients {\n    subject.CN = %s\n}\n' "$cn" >"$policy"
	start_peer "$PROXY_PORT" "$RESP_PORT" 3
	start_server --ocsp-url "http://127.0.0.1:$PROXY_PORT/" --ocsp-timeout 10s \
	    --reauthorize --policy "$policy" --ktls off
	new_log log idle
	idle_clients 2 "$log"
	# Held by the client once its side is done; the server's side waits
	# for the OCSP answer (3 s) before it lets each in.
	if ! wait_long "$log" "held 2 failed 0" 30 ||
	    ! wait_count "$SRV_LOG" "Allowed: rule clients" 2 15; then
		fail "--reauthorize with a slow --ocsp: two idle clients" "they did not connect" "$log" "$SRV_LOG"
		idle_clients_go
		stop_server
		stop_peers
		start_responder "$RESP_PORT"
		return
	fi
	n0=$(grep -c '^request' "$PEER_LOG")
	printf '# changed\n' >>"$policy"
	server_proc && kill -HUP "$SRV_PROC"
	wait_for_line "$SRV_LOG" "Reloaded configuration (generation 2)"
	# A re-check is on the proxy now (3 s); the clients leave meanwhile.
	wait_count "$PEER_LOG" "request" $((n0 + 1)) 10
	idle_clients_go
	if wait_count "$SRV_LOG" "Connection closed" 2 1 &&
	    ! has "$SRV_LOG" "Reauthorize:"; then
		pass "--reauthorize with a slow --ocsp: clients leaving meanwhile close at once"
	else
		fail "--reauthorize with a slow --ocsp: clients leaving meanwhile close at once" \
		    "not both closed within 1 s of leaving, before the re-checks' end" "$SRV_LOG"
	fi
	check "... and the re-checks end: none refused" wait_long "$SRV_LOG" \
	    "Reauthorize: 0 of 2 open connections refused" 10
	stop_server
	stop_peers
	start_responder "$RESP_PORT"
}

# A responder named by a host name whose name server never answers: the
# lookup is bounded by --ocsp-timeout like the rest of the query, though
# resolv.conf's own bound here is 4 s x 2 attempts. In a mount and network
# namespace of its own (see run_dns_part), whose resolv.conf names a
# name server on its loopback that reads each query and never answers.
dns_part() {
	local start ms url=http://ocsp.hk-test.invalid:8080/
	if ! ip link set lo up; then
		fail "a network namespace for the DNS test" "cannot bring up lo"
		return
	fi
	printf 'nameserver 127.0.0.1\noptions timeout:4 attempts:2\n' >"$WORK/resolv.conf"
	if ! mount --bind "$WORK/resolv.conf" /etc/resolv.conf; then
		fail "a private resolv.conf for the DNS test" "mount --bind failed"
		return
	fi
	start_peer 53 dns-silent
	start_server --ocsp-url "$url" --ocsp-timeout 2s
	start=$(date +%s%N)
	client_refused "a responder whose name server never answers: the client is refused" \
	    "OCSP responder $url: timed out looking up ocsp.hk-test.invalid)" \
	    "access denied by the server: certificate unknown"
	ms=$((($(date +%s%N) - start) / 1000000))
	check "... the name server was asked" has "$PEER_LOG" "query 1"
	if [ "$ms" -ge 1900 ] && [ "$ms" -lt 5000 ]; then
		pass "... within --ocsp-timeout 2s (${ms} ms; resolv.conf alone: 8 s)"
	else
		fail "... within --ocsp-timeout 2s" "${ms} ms"
	fi
	stop_server
}

run_dns_part() {
	local -a ns=(unshare --mount --net)
	[ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --mount --net)
	relay_checks 3 "${ns[@]}" bash "$HK_ROOT/tests/ocsp_tests.sh" --dns-part
}

if [ "${1:-}" = --dns-part ]; then
	dns_part
	hk_summary
	exit
fi

# The AIA responder is the main one: the AIA certificates name its port.
RESP_PORT=$AIA_PORT
PROXY_PORT=$(free_port)
DOWN_PORT=$(free_port)
SIGNER_PORT=$(free_port)
start_responder "$RESP_PORT"
test_options
test_good_revoked 1.3
test_good_revoked 1.2
test_cache_sequential
test_cache_concurrent
test_unknown
test_down
test_no_aia
test_aia_and_slow
test_nonce
test_signers
test_crl_audit
test_reauthorize_slow
run_dns_part
if [ -x "$HK_ROOT/tests/test_ocsp" ]; then
	# The unit test against the same responder: the OCSP decision and
	# the alert each refusal gives.
	"$HK_ROOT/tests/test_ocsp" "http://127.0.0.1:$RESP_PORT/" "$WORK/unknown-cert.pem" >"$WORK/unit.log" 2>&1
	rc=$?
	cat "$WORK/unit.log"
	if [ "$rc" -eq 0 ] && grep -q ' 0 failed' "$WORK/unit.log"; then
		pass "tests/test_ocsp: $(grep -o '[0-9]* passed' "$WORK/unit.log")"
	else
		fail "tests/test_ocsp" "exit $rc"
	fi
else
	fail "tests/test_ocsp" "not built"
fi
hk_summary
