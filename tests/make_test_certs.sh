#!/usr/bin/env bash
# Usage: tests/make_test_certs.sh DIR
#
# Writes certificate fixtures for hello_ktls's bad-input tests into DIR: the
# good set from hello_ktls_setup.sh, plus certificates that a correct mTLS peer
# must reject, each broken in exactly one way. Ends by checking with
# `openssl verify` that every fixture fails (or passes) for the intended reason,
# so a test that expects a rejection cannot pass because of a broken fixture.
set -euo pipefail

prog=${0##*/}
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

readonly DN_BASE='/C=US/ST=CA/L=SantaClara'

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

usage() {
    printf 'Usage: %s DIR\n' "$prog"
}

case ${1-} in
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        printf '%s: unknown option: %s\n' "$prog" "$1" >&2
        usage >&2
        exit 2
        ;;
esac
if (($# != 1)) || [[ -z $1 ]]; then
    printf '%s: expected exactly one argument, the output directory\n' "$prog" >&2
    usage >&2
    exit 2
fi
dir=$1

command -v openssl >/dev/null 2>&1 || die "openssl not found"

umask 077

# --force so that rerunning over an old DIR gives a fresh, self-consistent set.
bash "$root/hello_ktls_setup.sh" --force -o "$dir" >/dev/null ||
    die "hello_ktls_setup.sh failed to create the good set in $dir"

# setup COMMAND ARGS...: more identities from the same CA, through the
# script's own commands, so that they are in its database (ca-db/index.txt).
setup() {
    bash "$root/hello_ktls_setup.sh" -o "$dir" "$@" >/dev/null ||
        die "hello_ktls_setup.sh $* failed in $dir"
}
# For the identity policy tests.
setup issue policy-web --force --ou Frontend \
    --san URI:spiffe://example.org/ns/prod/web --san DNS:web.example.org
setup issue policy-contractor --force --ou Contractors --ou Frontend
setup issue policy-device --force --device-id DEV-0042 \
    --san email:device@example.org --san IP:10.1.2.3
# The delegated OCSP responder, for OCSP responses the tests make.
setup ocsp-signer --force

tmp=
cleanup() {
    if [[ -n $tmp ]]; then
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make_test_certs.XXXXXX") ||
    die "cannot create a temporary directory"
# Absolute, because the script changes directory later (TMPDIR may be relative).
tmp=$(cd -- "$tmp" && pwd)
# Fixtures are built here and moved into DIR only once all of them exist.
out=$tmp/out
mkdir "$out" "$tmp/ca"

ossl() {
    local what=$1
    shift
    if ! openssl "$@" >"$tmp/openssl.log" 2>&1; then
        printf '%s: failed to %s\n' "$prog" "$what" >&2
        sed 's/^/    /' "$tmp/openssl.log" >&2
        exit 1
    fi
}

cnf=$tmp/openssl.cnf
cat >"$cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
string_mask = utf8only

[ req_dn ]

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ wrongname_server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ serveronly_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

# keyCertSign is present so that CA:FALSE is the only reason it cannot issue.
[ notca_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
# `openssl ca` (not `x509 -req`) where a notBefore is set (-startdate), with
# the good CA's database and its config from hello_ktls_setup.sh.
ca_cnf=$(cd -- "$dir/ca-db" && pwd)/openssl.cnf

# P-256 throughout: fast, and the same key type as the default good set.
gen_key() {
    ossl "generate $1" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$out/$1"
}

new_serial() {
    local hex
    hex=$(openssl rand -hex 16 2>/dev/null) || die "failed to generate a serial number (openssl rand)"
    printf '0x%s\n' "$hex"
}

# issue NAME SUBJECT EXTENSIONS ISSUER_CERT ISSUER_KEY [START END]
# Writes NAME-key.pem and NAME-cert.pem to $out. With START and END
# (YYYYMMDDHHMMSSZ) the validity is fixed instead of starting now.
issue() {
    local name=$1 subj=$2 ext=$3 ca_cert=$4 ca_key=$5 start=${6-} end=${7-}
    gen_key "$name-key.pem"
    ossl "create the $name request" req -new -config "$cnf" \
        -key "$out/$name-key.pem" -subj "$subj" -sha256 -out "$tmp/$name.csr"
    if [[ -z $start ]]; then
        ossl "sign $name-cert.pem" x509 -req -in "$tmp/$name.csr" \
            -CA "$ca_cert" -CAkey "$ca_key" -set_serial "$(new_serial)" \
            -days 825 -sha256 -extfile "$cnf" -extensions "$ext" \
            -out "$out/$name-cert.pem"
    else
        # openssl ca resolves the database paths from the working directory.
        (
            cd "${ca_cnf%/*}"
            ossl "sign $name-cert.pem" ca -batch -config "$ca_cnf" -notext \
                -rand_serial -cert "$ca_cert" -keyfile "$ca_key" \
                -startdate "$start" -enddate "$end" -extfile "$cnf" \
                -extensions "$ext" -in "$tmp/$name.csr" -out "$out/$name-cert.pem"
        )
    fi
}

# Absolute, because issue() may run openssl from another directory.
abs_dir=$(cd -- "$dir" && pwd)
good_ca_cert=$abs_dir/ca-cert.pem
good_ca_key=$abs_dir/ca-key.pem

# A second CA, and a client whose subject is identical to the good client's,
# so that only the chain, not the name, tells them apart.
gen_key other-ca-key.pem
ossl "create other-ca-cert.pem" req -new -x509 -config "$cnf" -extensions ca_ext \
    -key "$out/other-ca-key.pem" -subj "$DN_BASE/O=OtherCA/CN=Other CA" \
    -days 3650 -sha256 -set_serial "$(new_serial)" -out "$out/other-ca-cert.pem"
issue other-client "$DN_BASE/O=TestOrg/CN=Test Client" client_ext \
    "$out/other-ca-cert.pem" "$out/other-ca-key.pem"

issue expired-client "$DN_BASE/O=TestOrg/CN=Expired Client" client_ext \
    "$good_ca_cert" "$good_ca_key" 20200101000000Z 20200102000000Z
# GeneralizedTime is needed here: UTCTime cannot encode years after 2049.
issue notyetvalid-client "$DN_BASE/O=TestOrg/CN=Not Yet Valid Client" client_ext \
    "$good_ca_cert" "$good_ca_key" 20990101000000Z 20991231235959Z

issue wrongname-server "$DN_BASE/O=TestOrg/CN=wrong.example" wrongname_server_ext \
    "$good_ca_cert" "$good_ca_key"

issue serveronly-client "$DN_BASE/O=TestOrg/CN=Server Only Client" serveronly_ext \
    "$good_ca_cert" "$good_ca_key"

issue badchain-intermediate "$DN_BASE/O=TestOrg/CN=Not A CA" notca_ext \
    "$good_ca_cert" "$good_ca_key"
issue badchain-client "$DN_BASE/O=TestOrg/CN=Badchain Client" client_ext \
    "$out/badchain-intermediate-cert.pem" "$out/badchain-intermediate-key.pem"
cat "$out/badchain-client-cert.pem" "$out/badchain-intermediate-cert.pem" \
    >"$out/badchain-client-chain.pem"
# Only the intermediate's certificate is a fixture; its key stays here.
mv -- "$out/badchain-intermediate-key.pem" "$tmp/"

# CRLs beside the good crl.pem (from hello_ktls_setup.sh, revoking
# revoked-client-cert.pem): the same list past its nextUpdate, by the good
# CA's own database; in DER, whole and with its signature broken; and an
# empty one from the other CA, so that a directory can hold two issuers.
(
    cd "$abs_dir/ca-db"
    ossl "make crl-expired.pem" ca -batch -config openssl.cnf -gencrl \
        -crl_lastupdate "$(date -u -d '-3 hours' +%Y%m%d%H%M%SZ)" \
        -crl_nextupdate "$(date -u -d '-10 minutes' +%Y%m%d%H%M%SZ)" \
        -out "$out/crl-expired.pem"
)
ossl "make crl.der" crl -in "$abs_dir/crl.pem" -outform DER -out "$out/crl.der"
# The last byte is inside the signature value, so only the signature breaks.
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
    "$out/crl.der" "$out/crl-badsig.der" || die "cannot write crl-badsig.der"
# The other CA's database: empty, in $tmp.
: >"$tmp/ca/index.txt"
echo 01 >"$tmp/ca/crlnumber"
(
    cd "$tmp/ca"
    ossl "make other-ca-crl.pem" ca -batch -config "$ca_cnf" -gencrl -crldays 30 \
        -cert "$out/other-ca-cert.pem" -keyfile "$out/other-ca-key.pem" \
        -out "$out/other-ca-crl.pem"
)

# A fresh key: it matches no certificate anywhere.
gen_key mismatched-key.pem

# Random bytes with no PEM armour, so every PEM reader must reject it.
ossl "generate garbage.pem" rand -out "$out/garbage.pem" 512

fixtures=()
for f in "$out"/*; do
    name=${f##*/}
    case $name in
        *-key.pem) chmod 600 -- "$f" ;;
        *) chmod 644 -- "$f" ;;
    esac
    # Removing first means a cross-filesystem move creates the file under our
    # umask rather than rewriting an old one with looser permissions.
    rm -f -- "$dir/$name"
    mv -- "$f" "$dir/$name" 2>/dev/null || die "cannot write $dir/$name"
    fixtures+=("$name")
done

# ---- expectations ----------------------------------------------------------

failures=0
fail() {
    printf '%s: FAIL: %s\n' "$prog" "$*" >&2
    failures=$((failures + 1))
}

first_error() {
    grep -m1 -E '^error [0-9]+ at' <<<"$1" || printf '%s\n' "${1%%$'\n'*}"
}

expect_ok() {
    local what=$1 log
    shift
    log=$(openssl verify "$@" 2>&1) ||
        fail "$what: expected to verify, got: $(first_error "$log")"
}

expect_error() {
    local what=$1 want=$2 log
    shift 2
    if log=$(openssl verify "$@" 2>&1); then
        fail "$what: verified, but should fail with '$want'"
    elif ! grep -qF -- "$want" <<<"$log"; then
        fail "$what: failed, but not with '$want': $(first_error "$log")"
    fi
}

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }

# All checks run from DIR so the messages show the fixture names.
cd -- "$dir"

expect_ok "client-cert.pem (good) against ca-cert.pem" \
    -CAfile ca-cert.pem -purpose sslclient client-cert.pem
expect_ok "server-cert.pem (good) for localhost" \
    -CAfile ca-cert.pem -purpose sslserver -verify_hostname localhost server-cert.pem

expect_error "other-client-cert.pem against ca-cert.pem" \
    "unable to get local issuer certificate" \
    -CAfile ca-cert.pem other-client-cert.pem
# The fixture itself must be sound, so a rejection above is about the CA.
expect_ok "other-client-cert.pem against its own other-ca-cert.pem" \
    -CAfile other-ca-cert.pem -purpose sslclient other-client-cert.pem

expect_error "expired-client-cert.pem" "certificate has expired" \
    -CAfile ca-cert.pem expired-client-cert.pem
expect_error "notyetvalid-client-cert.pem" "certificate is not yet valid" \
    -CAfile ca-cert.pem notyetvalid-client-cert.pem

expect_ok "wrongname-server-cert.pem chain and purpose" \
    -CAfile ca-cert.pem -purpose sslserver wrongname-server-cert.pem
expect_error "wrongname-server-cert.pem for localhost" "hostname mismatch" \
    -CAfile ca-cert.pem -purpose sslserver -verify_hostname localhost wrongname-server-cert.pem
expect_error "wrongname-server-cert.pem for 127.0.0.1" "IP address mismatch" \
    -CAfile ca-cert.pem -purpose sslserver -verify_ip 127.0.0.1 wrongname-server-cert.pem

expect_ok "serveronly-client-cert.pem as a server certificate" \
    -CAfile ca-cert.pem -purpose sslserver serveronly-client-cert.pem
# OpenSSL 3.0 words X509_V_ERR_INVALID_PURPOSE as "unsuitable certificate purpose".
expect_error "serveronly-client-cert.pem as a client certificate" \
    "unsuitable certificate purpose" \
    -CAfile ca-cert.pem -purpose sslclient serveronly-client-cert.pem

expect_error "badchain-client-cert.pem via its CA:FALSE intermediate" \
    "invalid CA certificate" \
    -CAfile ca-cert.pem -untrusted badchain-intermediate-cert.pem badchain-client-cert.pem
expect_error "badchain-client-cert.pem via badchain-client-chain.pem" \
    "invalid CA certificate" \
    -CAfile ca-cert.pem -untrusted badchain-client-chain.pem badchain-client-cert.pem
[[ $(openssl x509 -in badchain-client-chain.pem -noout -fingerprint -sha256 2>/dev/null) == \
    "$(openssl x509 -in badchain-client-cert.pem -noout -fingerprint -sha256 2>/dev/null)" ]] ||
    fail "badchain-client-chain.pem does not start with badchain-client-cert.pem"
[[ $(grep -c -- '-----BEGIN CERTIFICATE-----' badchain-client-chain.pem) == 2 ]] ||
    fail "badchain-client-chain.pem does not hold exactly two certificates"

expect_ok "client-cert.pem (good) against crl.pem" \
    -crl_check -CAfile ca-cert.pem -CRLfile crl.pem client-cert.pem
expect_error "revoked-client-cert.pem against crl.pem" "certificate revoked" \
    -crl_check -CAfile ca-cert.pem -CRLfile crl.pem revoked-client-cert.pem
expect_error "client-cert.pem against crl-expired.pem" "CRL has expired" \
    -crl_check -CAfile ca-cert.pem -CRLfile crl-expired.pem client-cert.pem
expect_ok "client-cert.pem against crl.der" \
    -crl_check -CAfile ca-cert.pem -CRLfile crl.der client-cert.pem
expect_error "client-cert.pem against crl-badsig.der" "CRL signature failure" \
    -crl_check -CAfile ca-cert.pem -CRLfile crl-badsig.der client-cert.pem
expect_ok "other-client-cert.pem against other-ca-crl.pem" \
    -crl_check -CAfile other-ca-cert.pem -CRLfile other-ca-crl.pem other-client-cert.pem

# ext_has NAME EXTENSION TEXT: `openssl x509 -ext` of NAME-cert.pem shows TEXT.
ext_has() {
    local out
    out=$(openssl x509 -in "$1-cert.pem" -noout -ext "$2" 2>&1) || out=
    grep -qF -- "$3" <<<"$out" || fail "$1-cert.pem: no '$3' in its $2"
}
subject_is() {
    local out
    out=$(openssl x509 -in "$1-cert.pem" -noout -subject -nameopt compat 2>&1) || out=
    [[ $out == "subject=$2" ]] || fail "$1-cert.pem: subject is '${out#subject=}', want '$2'"
}

for name in policy-web policy-contractor policy-device; do
    expect_ok "$name-cert.pem as a client certificate" \
        -crl_check -CAfile ca-cert.pem -CRLfile crl.pem -purpose sslclient "$name-cert.pem"
    grep -q "/CN=$name\$" ca-db/index.txt || fail "$name-cert.pem is not in ca-db/index.txt"
done
subject_is policy-web "$DN_BASE/O=TestOrg/OU=Frontend/CN=policy-web"
ext_has policy-web subjectAltName 'URI:spiffe://example.org/ns/prod/web, DNS:web.example.org'
subject_is policy-contractor "$DN_BASE/O=TestOrg/OU=Contractors/OU=Frontend/CN=policy-contractor"
subject_is policy-device "$DN_BASE/O=TestOrg/CN=policy-device"
ext_has policy-device subjectAltName 'email:device@example.org, IP Address:10.1.2.3'
# x509 -ext knows extensions by name only: the private OID is read from -text.
device_ext=$(openssl x509 -in policy-device-cert.pem -noout -text 2>&1 |
    grep -A1 -F '1.3.6.1.4.1.32473.1.1:') || device_ext=
[[ $device_ext == *DEV-0042* ]] ||
    fail "policy-device-cert.pem: no DEV-0042 in extension 1.3.6.1.4.1.32473.1.1"
expect_ok "ocsp-cert.pem as an OCSP responder" -CAfile ca-cert.pem -purpose ocsphelper ocsp-cert.pem
ext_has ocsp extendedKeyUsage 'OCSP Signing'
ext_has ocsp noCheck 'OCSP No Check'

# Each fixture key must belong to its certificate, so a failed handshake in a
# test can only come from the defect the fixture is named for.
for cert in *-cert.pem; do
    key=${cert%-cert.pem}-key.pem
    [[ -f $key ]] || continue
    [[ $(pubkey_of_cert "$cert") == "$(pubkey_of_key "$key")" ]] ||
        fail "$key does not match $cert"
done

if ! mismatched_pub=$(pubkey_of_key mismatched-key.pem) || [[ -z $mismatched_pub ]]; then
    fail "mismatched-key.pem is not a readable private key"
else
    for cert in *-cert.pem; do
        [[ $(pubkey_of_cert "$cert") != "$mismatched_pub" ]] ||
            fail "mismatched-key.pem matches $cert"
    done
fi

if grep -aq -- '-----BEGIN' garbage.pem; then
    fail "garbage.pem contains PEM armour"
fi
if openssl x509 -in garbage.pem -noout >/dev/null 2>&1 ||
    openssl pkey -in garbage.pem -noout >/dev/null 2>&1; then
    fail "garbage.pem parses as a certificate or key"
fi

if ((failures > 0)); then
    die "$failures fixture expectation(s) failed in $dir"
fi

printf '%s: wrote %d test fixtures plus the good set to %s; all expectations hold\n' \
    "$prog" "${#fixtures[@]}" "$dir"
