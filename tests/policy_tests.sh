#!/usr/bin/env bash
# tests/policy_tests.sh - who gets in: the server's --policy with the real
# binaries (no kernel TLS needed; kernel_tests.sh shows that a denied
# client never gets kTLS keys):
#   --check-policy's output and exit codes; one policy per matcher kind
#   that allows one identity and denies another; a denied client's
#   refusal line in TLS 1.2 and 1.3, and its resumed attempt denied too;
#   grants for --get, --bench and --echo as ERR lines while the server
#   keeps serving; every allow and deny in the --audit trail, checked
#   field by field (tests/audit_check.py policy); a policy with an error
#   refused at start with FILE:LINE.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

HELLO_C='Received from server: Hello from kTLS server! Your certificate was validated.'
DENIED='access denied by the server: access denied'
# The identities tests/make_test_certs.sh issues with hello_ktls_setup.sh:
# policy-web (OU=Frontend, URI spiffe://example.org/ns/prod/web, DNS
# web.example.org), policy-contractor (OU=Contractors and OU=Frontend),
# policy-device (device ID DEV-0042, email device@example.org, IP
# 10.1.2.3).
ID=$HK_CERTS

as() { echo --cert "$ID/policy-$1-cert.pem" --key "$ID/policy-$1-key.pem"; }
WEB=($(as web))
CONTRACTOR=($(as contractor))
DEVICE=($(as device))
REVOKED=(--cert revoked-client-cert.pem --key revoked-client-key.pem)

# The policy most tests use.
write_policy() {
	cat >"$WORK/main.policy" <<'EOF'
# Contractors never, even from the front end.
deny contractors {
    subject.OU = Contractors
}
allow web {
    subject.OU = Frontend
    san.uri = spiffe://example.org/ns/prod/*
    grant get:/static/ get:/health
}
allow devices {
    ext.1.3.6.1.4.1.32473.1.1 = DEV-0042, DEV-0043
    grant echo bench
}
allow test-client {
    subject.CN = Test Client
    issuer.O = TestCA
}
EOF
}

# checked NAME RC CERT LINE...: --check-policy exits RC and prints LINEs.
checked() {
	local name=$1 want=$2 cert=$3 rc=0 line ok=1
	shift 3
	timeout 10 "$SERVER" --policy "$WORK/main.policy" --check-policy "$cert" \
	    >"$WORK/cp.log" 2>&1 || rc=$?
	for line in "$@"; do
		grep -qxF -- "$line" "$WORK/cp.log" || ok=0
	done
	if [ "$rc" -eq "$want" ] && [ "$ok" -eq 1 ]; then
		pass "$name"
	else
		fail "$name" "rc=$rc, want $want and: $*" "$WORK/cp.log"
	fi
}

test_check_policy() {
	checked "--check-policy: web is allowed by its SPIFFE ID, with its grants" 0 \
	    "$ID/policy-web-cert.pem" \
	    'Decision: allow: rule web (san.uri=spiffe://example.org/ns/prod/web)' \
	    'Rule: web' 'Grants: messages, get below /static/, /health' \
	    "Policy: $WORK/main.policy (4 rules)" \
	    'Certificate: /C=US/ST=CA/L=SantaClara/O=TestOrg/OU=Frontend/CN=policy-web'
	checked "--check-policy: a contractor is denied first (OU=Contractors + OU=Frontend)" 1 \
	    "$ID/policy-contractor-cert.pem" \
	    'Decision: deny: rule contractors (subject.OU=Contractors)' \
	    'Rule: contractors' 'Grants: none'
	checked "--check-policy: the device by its device-ID extension" 0 \
	    "$ID/policy-device-cert.pem" \
	    'Decision: allow: rule devices (ext.1.3.6.1.4.1.32473.1.1=DEV-0042)' \
	    'Grants: messages, echo, bench'
	checked "--check-policy: client-cert.pem by CN and issuer O" 0 \
	    client-cert.pem 'Decision: allow: rule test-client (issuer.O=TestCA)'
	checked "--check-policy: no rule matched: deny, exit 1" 1 \
	    revoked-client-cert.pem 'Decision: deny: no rule matched' \
	    'Rule: none' 'Grants: none'
	checked "--check-policy: a file that is no certificate: exit 2" 2 \
	    garbage.pem "hello_ktls_server: --check-policy garbage.pem: not a readable PEM certificate"
	checked "--check-policy needs no --cert/--key/--ca, starts no server" 0 \
	    client-cert.pem
	has "$WORK/cp.log" "Server listening" &&
	    fail "--check-policy started a server" "see the log" "$WORK/cp.log"
}

# One matcher kind: "LINE|ALLOWED|DENIED" (an identity name, - for none).
spki_pin() {
	openssl x509 -in "$ID/policy-web-cert.pem" -noout -pubkey |
	    openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary |
	    base64
}
matcher_cases() {
	local serial
	serial=$(openssl x509 -in "$ID/policy-device-cert.pem" -noout -serial)
	cat <<EOF
subject.CN = Test Client|client|web
subject.OU = Frontend|web|device
subject.OU = Contractors|contractor|web
issuer = CN=Test CA,O=TestCA,L=SantaClara,ST=CA,C=US|device|-
issuer.CN = Other CA|-|client
san.dns = *.example.org|web|contractor
san.uri = spiffe://example.org/ns/prod/*|web|device
san.email = device@example.org|device|web
san.ip = 10.1.0.0/16|device|web
serial = ${serial#serial=}|device|web
spki.sha256 = $(spki_pin)|web|device
eku = clientAuth|client|-
eku = serverAuth|-|client
ext.1.3.6.1.4.1.32473.1.1 = DEV-0042|device|web
EOF
}

# id_args NAME: the client options of an identity.
id_args() {
	case $1 in
	client) echo "" ;;
	*) as "$1" ;;
	esac
}

test_matchers() {
	local line matcher yes no kind
	while IFS='|' read -r matcher yes no; do
		kind=${matcher%% =*}
		printf 'allow m {\n    %s\n}\n' "$matcher" >"$WORK/m.policy"
		start_server --policy "$WORK/m.policy"
		if [ "$yes" != - ]; then
			run_client "$WORK/y.log" $(id_args "$yes")
			if [ "$CLI_RC" -eq 0 ] && has "$WORK/y.log" "$HELLO_C" &&
			    wait_for_line "$SRV_LOG" "Allowed: rule m ($kind="; then
				pass "$kind end to end: $yes allowed"
			else
				fail "$kind end to end: $yes allowed" "rc=$CLI_RC" \
				    "$WORK/y.log" "$SRV_LOG"
			fi
		fi
		if [ "$no" != - ]; then
			run_client "$WORK/n.log" $(id_args "$no")
			if [ "$CLI_RC" -eq 1 ] && ! has "$WORK/n.log" "$HELLO_C" &&
			    wait_for_line "$SRV_LOG" "Denied: no rule matched"; then
				pass "$kind end to end: $no denied"
			else
				fail "$kind end to end: $no denied" "rc=$CLI_RC" \
				    "$WORK/n.log" "$SRV_LOG"
			fi
		fi
		stop_server
	done < <(matcher_cases)
}

# A denied client: one plain line and exit 1, in both versions; the
# server goes on serving.
test_denied() {
	local v
	AUDIT_POLICY=$WORK/policy.jsonl
	start_server --policy "$WORK/main.policy" --audit "$AUDIT_POLICY"
	run_client "$WORK/w.log" "${WEB[@]}"
	check "audit run: web is served" test "$CLI_RC" -eq 0
	for v in 1.3 1.2; do
		client_refused "TLS $v: a denied client exits 1 with the refusal line" \
		    "Denied: rule contractors (subject.OU=Contractors)" "$DENIED" \
		    --tls-version "$v" "${CONTRACTOR[@]}"
		check "TLS $v: the refusal is the client's one line" \
		    grep -q "^hello_ktls_client: 127.0.0.1:$PORT: $DENIED\$" "$WORK/bad.log"
	done
	run_client "$WORK/r.log" "${REVOKED[@]}"
	check "no rule matched: the client exits 1" test "$CLI_RC" -eq 1
	run_client "$WORK/d.log" "${DEVICE[@]}"
	check "after the denials the server still serves (device)" has "$WORK/d.log" "$HELLO_C"
	wait_count "$AUDIT_POLICY" '"hk.connection.id":5' 2
	stop_server
	POLICY_SRV_LOG=$SRV_LOG
}

# A denied client's ticket: its resumed connection is decided on again.
test_resumed_denied() {
	local v n sess=$WORK/sess.pem log
	for v in 1.3 1.2; do
		rm -f "$sess"
		start_server --policy "$WORK/main.policy" --tls-version "$v"
		for n in 1 2; do
			local -a io=(-sess_out "$sess")
			[ "$n" -eq 2 ] && io=(-sess_in "$sess")
			new_log log s_client
			(printf 'Hello\n'; wait_for_line "$SRV_LOG" "Denied:" && nap 0.3) |
			    timeout 30 openssl s_client -connect "127.0.0.1:$PORT" \
			    "${CONTRACTOR[@]/--/-}" -CAfile ca-cert.pem \
			    "-tls${v/./_}" "${io[@]}" >"$log" 2>&1
		done
		wait_count "$SRV_LOG" "Denied: rule contractors" 2
		if has "$log" "Reused, TLSv$v" && has "$SRV_LOG" "Session: resumed" &&
		    [ "$(grep -c 'Denied: rule contractors' "$SRV_LOG")" -eq 2 ] &&
		    ! has "$log" "Hello from kTLS server"; then
			pass "TLS $v: a denied client's resumed session is denied too"
		else
			fail "TLS $v: a denied client's resumed session is denied too" \
			    "see the logs" "$log" "$SRV_LOG"
		fi
		stop_server
	done
}

# Grants: web may get below /static/ and /health only, devices may bench
# and echo; anything else is an ERR line, and the server goes on.
test_grants() {
	local root=$WORK/root why
	why='server refused: not allowed: rule web grants get below /static/, /health only'
	mkdir -p "$root/static" && echo css >"$root/static/a.css" &&
	    echo secret >"$root/secret.txt" && echo ok >"$root/health" &&
	    echo x >"$root/staticx"
	start_server --policy "$WORK/main.policy" --root "$root"
	run_client "$WORK/g.log" "${WEB[@]}" --get static/a.css -o "$WORK/a.css"
	check "grants: web may --get static/a.css" cmp -s "$WORK/a.css" "$root/static/a.css"
	run_client "$WORK/g.log" "${WEB[@]}" --get health -o "$WORK/health"
	check "grants: web may --get health" cmp -s "$WORK/health" "$root/health"
	for p in secret.txt staticx; do
		run_client "$WORK/g.log" "${WEB[@]}" --get "$p" -o "$WORK/x"
		if [ "$CLI_RC" -eq 1 ] && has "$WORK/g.log" "$why" && [ ! -e "$WORK/x" ]; then
			pass "grants: web may not --get $p: the ERR line, exit 1"
		else
			fail "grants: web may not --get $p" "rc=$CLI_RC" "$WORK/g.log"
		fi
	done
	run_client "$WORK/g.log" "${WEB[@]}" --bench 1M
	if [ "$CLI_RC" -eq 1 ] && has "$WORK/g.log" "$why"; then
		pass "grants: web may not --bench: the ERR line, exit 1"
	else
		fail "grants: web may not --bench" "rc=$CLI_RC" "$WORK/g.log"
	fi
	run_client "$WORK/g.log" "${DEVICE[@]}" --bench 1M
	check "grants: devices may --bench" grep -q '^BENCH side=server' "$WORK/g.log"
	run_client "$WORK/g.log" "${DEVICE[@]}" --get health -o "$WORK/x"
	check "grants: devices may not --get" has "$WORK/g.log" \
	    'server refused: not allowed: rule devices grants echo, bench only'
	run_client "$WORK/g.log" "${WEB[@]}"
	check "grants: a message is always allowed, the server still serves" \
	    has "$WORK/g.log" "$HELLO_C"
	stop_server

	head -c 100000 /dev/urandom >"$WORK/blob"
	start_server --policy "$WORK/main.policy" --echo
	run_client "$WORK/g.log" "${WEB[@]}" --send-file "$WORK/blob"
	if [ "$CLI_RC" -eq 1 ] && has "$WORK/g.log" "$why"; then
		pass "grants: web may not use --echo: the ERR line, exit 1"
	else
		fail "grants: web may not use --echo" "rc=$CLI_RC" "$WORK/g.log"
	fi
	run_client "$WORK/g.log" "${WEB[@]}"
	check "grants: nor send a message to an --echo server" has "$WORK/g.log" "$why"
	run_client "$WORK/g.log" "${DEVICE[@]}" --send-file "$WORK/blob"
	check "grants: devices may --echo" has "$WORK/g.log" "Echo verified: 100000 bytes"
	stop_server
}

# bad_policy NAME TEXT WANT: the server does not start, and says WANT.
bad_policy() {
	local rc=0
	printf '%b' "$2" >"$WORK/bad.policy"
	timeout 10 "$SERVER" -p 0 --policy "$WORK/bad.policy" >"$WORK/e.log" 2>&1 || rc=$?
	if [ "$rc" -eq 1 ] && has "$WORK/e.log" "hello_ktls_server: $WORK/bad.policy:$3" &&
	    ! has "$WORK/e.log" "Server listening"; then
		pass "$1"
	else
		fail "$1" "rc=$rc, want 1 and '$WORK/bad.policy:$3'" "$WORK/e.log"
	fi
}

test_bad_policies() {
	bad_policy "a policy with an unknown matcher is refused at start" \
	    '# x\nallow a {\n    subject.CN = a\n    san.url = x\n}\n' \
	    "4: unknown matcher 'san.url'"
	bad_policy "a shadowed rule is refused at start" \
	    'allow everyone {\n}\ndeny late {\n    subject.OU = x\n}\n' \
	    "3: rule late can never match: rule everyone (line 1)"
	bad_policy "a bad CIDR is refused at start" \
	    'allow a {\n    san.ip = 10.0.0.0/40\n}\n' \
	    "2: san.ip: 10.0.0.0/40: bad prefix length (0-32)"
	local rc=0
	timeout 10 "$SERVER" -p 0 --policy "$WORK/none.policy" >"$WORK/e.log" 2>&1 || rc=$?
	check "a missing policy file: exit 1 with the reason" \
	    has "$WORK/e.log" "--policy $WORK/none.policy: No such file or directory"
}

# The trail of test_denied, by tests/audit_check.py.
check_audit() {
	WEB_SUBJECT=$(openssl x509 -in "$ID/policy-web-cert.pem" -noout -subject -nameopt RFC2253)
	CONTRACTOR_SUBJECT=$(openssl x509 -in "$ID/policy-contractor-cert.pem" -noout -subject -nameopt RFC2253)
	WEB_SUBJECT=${WEB_SUBJECT#subject=} CONTRACTOR_SUBJECT=${CONTRACTOR_SUBJECT#subject=}
	export AUDIT_POLICY POLICY_SRV_LOG WEB_SUBJECT CONTRACTOR_SUBJECT
	relay_checks 6 python3 "$HK_ROOT/tests/audit_check.py" policy
}

for f in web contractor device; do
	if [ ! -r "$ID/policy-$f-cert.pem" ]; then
		fail "the policy identities" "no $ID/policy-$f-cert.pem (tests/make_test_certs.sh)"
		hk_summary
		exit 1
	fi
done
write_policy
test_check_policy
test_bad_policies
test_matchers
test_denied
test_resumed_denied
test_grants
check_audit
hk_summary
