#!/usr/bin/env bash
# tests/setup_tests.sh - hello_ktls_setup.sh's commands (issue, revoke, crl,
# ocsp-signer), checked with openssl itself on a CA of their own in a
# temporary directory: what each certificate holds, that a revocation
# reaches the CRL and an OCSP responder, and that bad input gets one line.
set -u
. "$(dirname "$0")/lib.sh"
HK_CERTS=${HK_CERTS:-$PWD}
hk_init

SETUP=$HK_ROOT/hello_ktls_setup.sh
CA=$WORK/ca

# setup ARGS...: the script on $CA; its output in $WORK/out, $WORK/err.
setup() {
	SETUP_RC=0
	bash "$SETUP" -o "$CA" "$@" >"$WORK/out" 2>"$WORK/err" || SETUP_RC=$?
}

# ok NAME ARGS...: the command succeeds.
ok() {
	local name=$1
	shift
	setup "$@"
	if [ "$SETUP_RC" -eq 0 ]; then
		pass "$name"
	else
		fail "$name" "exit $SETUP_RC" "$WORK/err"
	fi
}

# refused NAME RC TEXT ARGS...: exit RC, nothing on stdout, and exactly one
# line on stderr, which holds TEXT.
refused() {
	local name=$1 want=$2 text=$3 lines
	shift 3
	setup "$@"
	lines=$(wc -l <"$WORK/err")
	if [ "$SETUP_RC" -eq "$want" ] && [ "$lines" -eq 1 ] &&
	    has "$WORK/err" "$text" && [ ! -s "$WORK/out" ]; then
		pass "$name"
	else
		fail "$name" "exit $SETUP_RC ($lines lines), want $want and one line with '$text'" \
		    "$WORK/out" "$WORK/err"
	fi
}

# text_has NAME FILE TEXT COMMAND...: COMMAND's output holds TEXT.
text_has() {
	local name=$1 text=$2
	shift 2
	if "$@" >"$WORK/t" 2>&1 && has "$WORK/t" "$text"; then
		pass "$name"
	else
		fail "$name" "no '$text' in: $*" "$WORK/t"
	fi
}

quiet() { "$@" >/dev/null 2>&1; }

# Names are asked for with -nameopt oneline: the default format for
# -subject differs between OpenSSL versions ("C = US" in 3.0).
x509() { openssl x509 -in "$CA/$1-cert.pem" -noout "${@:2}"; }

serial_of() {
	local s
	s=$(x509 "$1" -serial) || return 1
	echo "${s#serial=}"
}

# ocsp_status NAME: what an OCSP responder answering from ca-db/index.txt
# with the delegated signer says about NAME-cert.pem, verified by openssl.
ocsp_status() {
	(cd "$CA" && openssl ocsp -issuer ca-cert.pem -cert "$1-cert.pem" -no_nonce \
	    -reqout "$WORK/req.der" >/dev/null 2>&1 &&
	    openssl ocsp -index ca-db/index.txt -CA ca-cert.pem \
	    -rsigner ocsp-cert.pem -rkey ocsp-key.pem -reqin "$WORK/req.der" \
	    -respout "$WORK/resp.der" -ndays 1 >/dev/null 2>&1 &&
	    openssl ocsp -respin "$WORK/resp.der" -CAfile ca-cert.pem \
	    -issuer ca-cert.pem -cert "$1-cert.pem" 2>&1)
}

test_issue_options() {
	ok "the default run makes the CA" --days 30
	ok "issue with every option" issue web --cn 'Web Frontend' --ou Frontend \
	    --ou Contractors --o 'Example Org' \
	    --san URI:spiffe://example.org/ns/prod/web --san DNS:web.example.org \
	    --san email:web@example.org --san IP:10.0.0.1 --san IP:2001:db8::1 \
	    --device-id DEV-0042 --ocsp-url http://127.0.0.1:8888/ocsp --days 7
	text_has "issue: the subject has both OUs, in order, the O and the CN" \
	    'subject=C = US, ST = CA, L = SantaClara, O = Example Org, OU = Frontend, OU = Contractors, CN = Web Frontend' \
	    x509 web -subject -nameopt oneline
	text_has "issue: every SAN, in order" \
	    'URI:spiffe://example.org/ns/prod/web, DNS:web.example.org, email:web@example.org, IP Address:10.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1' \
	    x509 web -ext subjectAltName
	text_has "issue: clientAuth by default" 'TLS Web Client Authentication' \
	    x509 web -ext extendedKeyUsage
	text_has "issue: the OCSP URL in authorityInfoAccess" \
	    'OCSP - URI:http://127.0.0.1:8888/ocsp' x509 web -ext authorityInfoAccess
	# In DER: the OID, then the OCTET STRING (04 0A) that wraps the
	# UTF8String (0C 08) "DEV-0042".
	text_has "issue: --device-id as a UTF8String under 1.3.6.1.4.1.32473.1.1" \
	    '060A2B0601040181FD590101040A0C084445562D30303432' sh -c "openssl x509 -in '$CA/web-cert.pem' -outform DER |
	    od -An -tx1 -v | tr -d ' \n' | tr a-f A-F"
	text_has "issue: --days 7 sets notAfter" "$(date -u -d '+7 days' '+%b %e')" \
	    x509 web -enddate
	check "issue: the certificate is in the CA's database" \
	    grep -q "^V.*	$(serial_of web)	unknown	/C=US/.*/CN=Web Frontend\$" "$CA/ca-db/index.txt"
	check "issue: it verifies as a TLS client with the CRL" quiet openssl verify -crl_check \
	    -CAfile "$CA/ca-cert.pem" -CRLfile "$CA/crl.pem" -purpose sslclient "$CA/web-cert.pem"
	check "issue: the key is mode 0600" test "$(stat -c %a "$CA/web-key.pem")" = 600

	ok "issue --server --rsa" issue api --server --rsa --san DNS:api.example.org
	check "issue --server: verifies as a TLS server for its DNS SAN" quiet openssl verify \
	    -CAfile "$CA/ca-cert.pem" -purpose sslserver -verify_hostname api.example.org \
	    "$CA/api-cert.pem"
	text_has "issue --rsa: an RSA key" 'rsaEncryption' x509 api -text
	text_has "issue without --cn: CN is NAME, O is TestOrg" \
	    'O = TestOrg, CN = api' x509 api -subject -nameopt oneline

	refused "issue: an existing NAME is refused" 1 'web-cert.pem already exists (--force' \
	    issue web
	local before
	before=$(serial_of web)
	ok "issue --force: an existing NAME is issued anew" issue web --force
	check "issue --force: a new serial" test "$(serial_of web)" != "$before"
}

test_bad_input() {
	refused "bad --san: IP out of range" 1 "bad --san 'IP:10.0.0.300': bad ip address" \
	    issue x --san IP:10.0.0.300
	refused "bad --san: no TYPE:" 1 "bad --san 'web.example.org': want TYPE:VALUE" \
	    issue x --san web.example.org
	refused "bad --san: unknown type" 1 "bad --san 'FOO:bar': unknown type 'FOO'" \
	    issue x --san FOO:bar
	refused "bad --san: URI without a scheme" 1 "a URI needs a scheme" \
	    issue x --san URI:example.org/web
	refused "bad --san: a comma would add a SAN" 1 "commas" \
	    issue x --san DNS:a.example,DNS:b.example
	refused "bad --san: not an email address" 1 "not an email address" \
	    issue x --san email:nobody
	refused "bad --device-id" 1 "bad --device-id 'a b'" issue x --device-id 'a b'
	refused "bad --ocsp-url" 1 "bad --ocsp-url 'ftp://x'" issue x --ocsp-url ftp://x
	refused "bad NAME" 1 "bad NAME '../x'" issue ../x
	refused "NAME ca is the CA's" 1 "NAME 'ca' is the CA's own" issue ca --force
	check "nothing was issued for the refused commands" test ! -e "$CA/x-cert.pem"
	refused "revoke: unknown NAME" 1 "unknown certificate 'nobody'" revoke nobody
	refused "revoke: bad --reason" 1 "bad --reason 'lost'" revoke web --reason lost
	openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$WORK/self-key.pem" -subj /CN=self -out "$WORK/self.pem" \
	    -days 1 >/dev/null 2>&1
	refused "revoke: a certificate of another CA" 1 "was not issued by" \
	    revoke "$WORK/self.pem"
	refused "unknown command" 2 "unknown command: frob" frob
	refused "an issue option on another command" 2 "--san is not an option of crl" \
	    crl --san DNS:x
	refused "issue without NAME" 2 "issue needs exactly one NAME" issue
	SETUP_RC=0
	bash "$SETUP" -o "$WORK/empty" issue x >"$WORK/out" 2>"$WORK/err" || SETUP_RC=$?
	if [ "$SETUP_RC" -eq 1 ] && has "$WORK/err" "no CA in $WORK/empty"; then
		pass "a command without a CA says so"
	else
		fail "a command without a CA says so" "exit $SETUP_RC" "$WORK/err"
	fi
}

test_revoke() {
	local serial
	serial=$(serial_of web)
	ok "revoke NAME" revoke web --reason keyCompromise
	text_has "revoke: the CRL lists the serial" "Serial Number: $serial" \
	    openssl crl -in "$CA/crl.pem" -noout -text
	text_has "revoke: with its reason" 'Key Compromise' \
	    openssl crl -in "$CA/crl.pem" -noout -text
	text_has "revoke: openssl verify -crl_check refuses it" 'certificate revoked' \
	    sh -c "! openssl verify -crl_check -CAfile '$CA/ca-cert.pem' -CRLfile '$CA/crl.pem' '$CA/web-cert.pem'"
	check "revoke: the others still verify" quiet openssl verify -crl_check \
	    -CAfile "$CA/ca-cert.pem" -CRLfile "$CA/crl.pem" "$CA/api-cert.pem" "$CA/client-cert.pem"
	refused "revoke: twice is refused" 1 "is already revoked" revoke web
	ok "revoke by path" revoke "$CA/api-cert.pem"
	text_has "revoke by path: in the CRL" "Serial Number: $(serial_of api)" \
	    openssl crl -in "$CA/crl.pem" -noout -text

	local number
	number=$(openssl crl -in "$CA/crl.pem" -noout -crlnumber)
	ok "crl --days 2" crl --days 2
	text_has "crl: nextUpdate in 2 days" "$(date -u -d '+2 days' '+%b %e')" \
	    openssl crl -in "$CA/crl.pem" -noout -nextupdate
	check "crl: a new CRL number" \
	    test "$(openssl crl -in "$CA/crl.pem" -noout -crlnumber)" != "$number"
	check "crl: still verifies against the CA" quiet openssl crl -in "$CA/crl.pem" \
	    -CAfile "$CA/ca-cert.pem" -noout
}

test_ocsp_signer() {
	ok "ocsp-signer" ocsp-signer
	check "ocsp-signer: prints the responder's command line" grep -qxF \
	    '  openssl ocsp -index ca-db/index.txt -CA ca-cert.pem -rsigner ocsp-cert.pem -rkey ocsp-key.pem -port N' \
	    "$WORK/out"
	text_has "ocsp-signer: extendedKeyUsage OCSPSigning" 'OCSP Signing' \
	    x509 ocsp -ext extendedKeyUsage
	text_has "ocsp-signer: the noCheck extension" 'OCSP No Check' x509 ocsp -ext noCheck
	check "ocsp-signer: verifies for OCSP signing" quiet openssl verify \
	    -CAfile "$CA/ca-cert.pem" -purpose ocsphelper "$CA/ocsp-cert.pem"
	refused "ocsp-signer: again without --force" 1 'ocsp-cert.pem already exists' ocsp-signer
	text_has "OCSP: a good client is good" 'client-cert.pem: good' ocsp_status client
	text_has "OCSP: the revoked one is revoked" 'web-cert.pem: revoked' ocsp_status web
	text_has "OCSP: the response verifies through the delegated signer" \
	    'Response verify OK' ocsp_status client
}

# epoch X509-DATE-LINE: "notAfter=Dec  2 07:06:53 2026 GMT" as seconds.
epoch() { date -u -d "${1#*=}" +%s; }

# span NAME: notAfter - notBefore of NAME-cert.pem, in seconds.
span() {
	local nb na
	nb=$(x509 "$1" -startdate) && na=$(x509 "$1" -enddate) || return 1
	echo $(($(epoch "$na") - $(epoch "$nb")))
}

pubkey() { x509 "$1" -pubkey; }

test_lifetime() {
	local now na
	now=$(date -u +%s)
	ok "issue --lifetime 15m" issue short --lifetime 15m --ou Devices \
	    --san URI:spiffe://example.org/dev/1 --device-id DEV-7
	check "--lifetime 15m: notAfter - notBefore is 15 min and the 60 s backdate" \
	    test "$(span short)" -eq $((15 * 60 + 60))
	na=$(epoch "$(x509 short -enddate)")
	check "--lifetime 15m: notAfter is 15 min from now" \
	    test $((na - now)) -ge 899 -a $((na - now)) -le 905
	ok "issue --lifetime 90s" issue s90 --lifetime 90s
	check "--lifetime 90s: 150 s from notBefore to notAfter" test "$(span s90)" -eq 150
	ok "issue --lifetime 2h" issue h2 --lifetime 2h
	check "--lifetime 2h" test "$(span h2)" -eq $((7200 + 60))
	ok "issue --lifetime 3d" issue d3 --lifetime 3d
	check "--lifetime 3d" test "$(span d3)" -eq $((3 * 86400 + 60))
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$WORK/csr-key.pem" -subj /CN=held -out "$WORK/held.csr" >/dev/null 2>&1
	ok "sign-csr --lifetime 10m" sign-csr held "$WORK/held.csr" --lifetime 10m
	check "sign-csr --lifetime 10m" test "$(span held)" -eq $((600 + 60))
	check "--lifetime: kept for renew in ca-db/issued/" \
	    grep -qx 'lifetime 15m' "$CA/ca-db/issued/short.validity"
	refused "--lifetime without a unit" 2 "--lifetime needs a number and a unit" \
	    issue x --lifetime 15
	refused "--lifetime 0m" 2 "not '0m'" issue x --lifetime 0m
	refused "--lifetime with an unknown unit" 2 "not '3w'" issue x --lifetime 3w
	refused "--lifetime too long" 2 "longer than 99999 days" issue x --lifetime 999999999d
	refused "--lifetime and --days together" 2 "--days and --lifetime are exclusive" \
	    issue x --lifetime 1h --days 2
	refused "--lifetime on crl" 2 "--lifetime is not an option of crl" crl --lifetime 1h
	refused "--new-key on issue" 2 "--new-key is for renew only" issue x --new-key
	check "nothing was issued for the refused --lifetime" test ! -e "$CA/x-cert.pem"
}

test_renew() {
	local serial key subj sans
	serial=$(serial_of short) key=$(pubkey short)
	subj=$(x509 short -subject) sans=$(x509 short -ext subjectAltName)
	ok "renew NAME" renew short
	check "renew: a new serial" test "$(serial_of short)" != "$serial"
	check "renew: the same key" test "$(pubkey short)" = "$key"
	check "renew: the same subject (OU included)" test "$(x509 short -subject)" = "$subj"
	check "renew: the same SANs" test "$(x509 short -ext subjectAltName)" = "$sans"
	check "renew: the device ID again" sh -c "openssl x509 -in '$CA/short-cert.pem' -outform DER |
	    od -An -tx1 -v | tr -d ' \n' | grep -qi 0C054445562D37"
	check "renew: the lifetime it was issued with (15m)" test "$(span short)" -eq $((15 * 60 + 60))
	check "renew: the old certificate stays valid in index.txt (not superseded)" \
	    grep -q "^V.*	$serial	unknown	" "$CA/ca-db/index.txt"
	check "renew: the new one is in index.txt" \
	    grep -q "^V.*	$(serial_of short)	unknown	" "$CA/ca-db/index.txt"
	check "renew: the pair matches" test "$(openssl pkey -in "$CA/short-key.pem" -pubout)" = "$key"
	check "renew: the key stays mode 0600" test "$(stat -c %a "$CA/short-key.pem")" = 600
	ok "renew --lifetime 2h" renew short --lifetime 2h
	check "renew --lifetime: the new lifetime" test "$(span short)" -eq $((7200 + 60))
	ok "renew --new-key" renew short --new-key
	check "renew --new-key: another key" test "$(pubkey short)" != "$key"
	check "renew --new-key: key and certificate match" \
	    test "$(openssl pkey -in "$CA/short-key.pem" -pubout)" = "$(pubkey short)"
	check "renew --new-key: still verifies as a TLS client" quiet openssl verify \
	    -CAfile "$CA/ca-cert.pem" -purpose sslclient "$CA/short-cert.pem"
	ok "renew a default-run leaf (server)" renew server --days 5
	check "renew server: still a TLS server for localhost" quiet openssl verify \
	    -CAfile "$CA/ca-cert.pem" -purpose sslserver -verify_hostname localhost \
	    "$CA/server-cert.pem"
	ok "renew --atomic-dir --new-key" renew d3 --atomic-dir --new-key
	check "--atomic-dir: the files are links through d3.d/current" \
	    test "$(readlink "$CA/d3-cert.pem")" = d3.d/current/d3-cert.pem -a \
	    "$(readlink "$CA/d3-key.pem")" = d3.d/current/d3-key.pem
	check "--atomic-dir: current names the new serial" \
	    test "$(readlink "$CA/d3.d/current")" = "$(serial_of d3)"
	serial=$(serial_of d3)
	ok "renew again: --atomic-dir is kept" renew d3
	check "--atomic-dir: the new pair is current, the previous one kept" \
	    test "$(readlink "$CA/d3.d/current")" = "$(serial_of d3)" -a -d "$CA/d3.d/$serial"
	check "--atomic-dir: pair matches through the links" \
	    test "$(openssl pkey -in "$CA/d3-key.pem" -pubout)" = "$(pubkey d3)"
	ok "renew a third time" renew d3
	check "--atomic-dir: older pairs are removed" \
	    test "$(find "$CA/d3.d" -mindepth 1 -maxdepth 1 | wc -l)" -eq 3
	refused "renew: unknown NAME" 1 "no nobody-cert.pem and nobody-key.pem" renew nobody
	refused "renew: bad NAME" 1 "bad NAME '../ca'" renew ../ca
	refused "renew: the CA is not renewed" 1 "NAME 'ca' is the CA's own" renew ca
	rm -f "$CA/ca-db/issued/h2."*
	refused "renew without issue parameters" 1 "no issue parameters for h2" renew h2
	refused "renew --force" 2 "renew takes no --force" renew short --force
	refused "renew: --san is not its option" 2 "--san is not an option of renew" \
	    renew short --san DNS:x
}

test_default_run_keeps() {
	ok "the default run afterwards" --days 30
	check "the default run keeps what the commands made" has "$WORK/out" \
	    'all certificates already exist'
	check "issued certificates survive it" test -s "$CA/ocsp-cert.pem"
}

# Commands at once on one CA (two renewal loops, say): each waits for the
# database's lock, so all succeed and index.txt stays whole.
test_concurrent() {
	local i pids=() bad=0
	ok "issue par1" issue par1 --lifetime 1h
	ok "issue par2" issue par2 --lifetime 1h
	for i in 1 2 3 4 5 6; do
		bash "$SETUP" -o "$CA" renew "par$((i % 2 + 1))" >"$WORK/par$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { bad=$((bad + 1)); cat "$WORK/par$((i + 1)).log" >>"$WORK/par.err"; }
	done
	check "6 renews at once on one CA: all succeed" test "$bad" -eq 0
	[ "$bad" -eq 0 ] || sed 's/^/    | /' "$WORK/par.err" | head -n 6
	check "and index.txt is whole: 8 entries for par1 and par2" \
	    test "$(grep -c '/CN=par[12]$' "$CA/ca-db/index.txt")" -eq 8
}

test_issue_options
test_bad_input
test_lifetime
test_renew
test_revoke
test_ocsp_signer
test_concurrent
test_default_run_keeps
hk_summary
