#!/usr/bin/env bash
# Creates the test CA and the mTLS server and client certificates that the
# hello_ktls server and client load. Run with -h for the options.
set -euo pipefail

prog=${0##*/}

readonly CA_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestCA/CN=Test CA'
readonly SERVER_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=localhost'
readonly CLIENT_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Test Client'
readonly REVOKED_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Revoked Client'
readonly CRL_DAYS=30
readonly SERVER_SAN='DNS:localhost, IP:127.0.0.1, IP:::1'
readonly CA_DAYS=3650
# 825 days is the longest TLS server certificate lifetime that Apple's
# platforms accept, so the certificates also work in tools on macOS.
readonly DEFAULT_LEAF_DAYS=825

usage() {
    cat <<EOF
Usage: $prog [-o DIR] [--days N] [--rsa] [--force]

Creates a test CA and the mutual-TLS certificates for hello_ktls:
  ca-cert.pem      ca-key.pem       CN=Test CA      ($CA_DAYS days)
  server-cert.pem  server-key.pem   CN=localhost    (serverAuth; $SERVER_SAN)
  client-cert.pem  client-key.pem   CN=Test Client  (clientAuth)
  revoked-client-cert.pem, revoked-client-key.pem
                                    CN=Revoked Client (clientAuth; revoked)
  crl.pem          the CA's CRL, listing the revoked client ($CRL_DAYS days)
  ca-db/           the CA's database for openssl ca (index.txt, crlnumber,
                   openssl.cnf, a copy of every certificate it issued)

Options:
  -o, --out-dir DIR  write the files to DIR, creating it if needed
                     (default: the current directory)
      --days N       validity of the server and client certificates in days
                     (default: $DEFAULT_LEAF_DAYS)
      --rsa          RSA-2048 keys instead of ECDSA P-256
      --force        regenerate every file, even those that exist
  -h, --help         show this help and exit

Existing files are kept. If the CA certificate or key is missing, everything is
regenerated, since the old leaves could not chain to a new CA; if only a server
or client file is missing, that certificate and key are re-issued from the
existing CA. crl.pem is made anew on every run that creates anything.

To revoke another certificate later, from DIR:
  (cd ca-db && openssl ca -config openssl.cnf -revoke ../CERT.pem)
  (cd ca-db && openssl ca -config openssl.cnf -gencrl -out ../crl.pem)
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

usage_error() {
    printf '%s: %s\n' "$prog" "$*" >&2
    usage >&2
    exit 2
}

out_dir=.
leaf_days=$DEFAULT_LEAF_DAYS
key_type=ec
force=0

while (($# > 0)); do
    case $1 in
        -o | --out-dir)
            (($# >= 2)) || usage_error "option $1 needs a directory"
            out_dir=$2
            shift 2
            ;;
        --out-dir=*)
            out_dir=${1#*=}
            shift
            ;;
        --days)
            (($# >= 2)) || usage_error "option $1 needs a number of days"
            leaf_days=$2
            shift 2
            ;;
        --days=*)
            leaf_days=${1#*=}
            shift
            ;;
        --rsa)
            key_type=rsa
            shift
            ;;
        --force)
            force=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            usage_error "unknown option: $1"
            ;;
        *)
            usage_error "unexpected argument: $1"
            ;;
    esac
done

[[ -n $out_dir ]] || usage_error "the output directory must not be empty"
# Capped at five digits so that openssl's int parsing cannot overflow and the
# end date stays a representable year.
[[ $leaf_days =~ ^[1-9][0-9]{0,4}$ ]] ||
    usage_error "--days needs a whole number from 1 to 99999, not '$leaf_days'"

command -v openssl >/dev/null 2>&1 || die "openssl not found"

# Every file openssl writes below, keys included, starts out owner-only;
# certificates are opened up explicitly once complete.
umask 077

mkdir -p -- "$out_dir" 2>/dev/null || die "cannot create output directory $out_dir"
[[ -d $out_dir && -w $out_dir ]] || die "output directory $out_dir is not writable"

tmp=
cleanup() {
    if [[ -n $tmp ]]; then
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT
# Turning signals into exits makes the EXIT trap remove the temp dir there too.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hello_ktls_setup.XXXXXX") ||
    die "cannot create a temporary directory"

# openssl reports progress on success; its output only matters on failure.
ossl() {
    local what=$1
    shift
    if ! openssl "$@" >"$tmp/openssl.log" 2>&1; then
        printf '%s: failed to %s\n' "$prog" "$what" >&2
        sed 's/^/    /' "$tmp/openssl.log" >&2
        exit 1
    fi
}

# A random 128-bit serial keeps re-issued certificates distinct from earlier
# ones with the same issuer, and avoids x509's .srl file next to the CA.
new_serial() {
    local hex
    hex=$(openssl rand -hex 16 2>/dev/null) || die "failed to generate a serial number (openssl rand)"
    printf '0x%s\n' "$hex"
}

gen_key() {
    local path=$1 what=$2
    case $key_type in
        ec)
            ossl "generate the $what key" genpkey -algorithm EC \
                -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
                -out "$path"
            ;;
        rsa)
            ossl "generate the $what key" genpkey -algorithm RSA \
                -pkeyopt rsa_keygen_bits:2048 -out "$path"
            ;;
    esac
    chmod 600 -- "$path"
}

# keyEncipherment is for RSA key transport; RFC 5480 forbids it on EC keys.
if [[ $key_type == rsa ]]; then
    leaf_ku='digitalSignature, keyEncipherment'
    key_desc='RSA-2048'
else
    leaf_ku='digitalSignature'
    key_desc='ECDSA P-256'
fi

# A private config keeps the system openssl.cnf from adding or changing
# extensions, so the result is the same on every machine.
cnf=$tmp/openssl.cnf
cat >"$cnf" <<EOF
[ req ]
distinguished_name = req_dn
string_mask = utf8only

[ req_dn ]

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, $leaf_ku
extendedKeyUsage = serverAuth
subjectAltName = $SERVER_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, $leaf_ku
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

# The CA's database; openssl ca runs inside ca-db/, so paths are relative.
[ ca ]
default_ca = hk_ca

[ hk_ca ]
database = index.txt
new_certs_dir = .
# Required even with -rand_serial (OpenSSL 3.0), though never read.
serial = serial
crlnumber = crlnumber
certificate = ../ca-cert.pem
private_key = ../ca-key.pem
default_md = sha256
default_crl_days = $CRL_DAYS
policy = policy_any
unique_subject = no
preserve = yes
email_in_dn = no
copy_extensions = none

[ policy_any ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
commonName = supplied
EOF

have() { [[ -f $out_dir/$1-cert.pem && -f $out_dir/$1-key.pem ]]; }

# Same public key in both files, compared via their SubjectPublicKeyInfo.
# An unreadable file is reported as such rather than as a mismatch.
key_matches_cert() {
    local cert=$1 key=$2 cert_pub key_pub
    cert_pub=$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null) ||
        die "cannot read $cert as a PEM certificate"
    key_pub=$(openssl pkey -in "$key" -pubout 2>/dev/null) ||
        die "cannot read $key as a PEM private key"
    [[ $cert_pub == "$key_pub" ]]
}

check_set() {
    local d=$1 name
    ossl "verify server-cert.pem and client-cert.pem against ca-cert.pem in $d" \
        verify -CAfile "$d/ca-cert.pem" "$d/server-cert.pem" "$d/client-cert.pem"
    # Plain verify accepts a leaf with the wrong EKU; the TLS handshake would not.
    ossl "verify server-cert.pem for TLS server use in $d" \
        verify -CAfile "$d/ca-cert.pem" -purpose sslserver "$d/server-cert.pem"
    ossl "verify client-cert.pem for TLS client use in $d" \
        verify -CAfile "$d/ca-cert.pem" -purpose sslclient "$d/client-cert.pem"
    ossl "verify client-cert.pem against crl.pem in $d" \
        verify -crl_check -CAfile "$d/ca-cert.pem" -CRLfile "$d/crl.pem" "$d/client-cert.pem"
    if openssl verify -crl_check -CAfile "$d/ca-cert.pem" -CRLfile "$d/crl.pem" \
        "$d/revoked-client-cert.pem" >/dev/null 2>&1; then
        die "$d/crl.pem does not revoke $d/revoked-client-cert.pem"
    fi
    for name in ca server client revoked-client; do
        key_matches_cert "$d/$name-cert.pem" "$d/$name-key.pem" ||
            die "$d/$name-key.pem does not match $d/$name-cert.pem"
    done
}

if ((force == 0)) && have ca && have server && have client && have revoked-client &&
    [[ -f $out_dir/crl.pem && -d $out_dir/ca-db ]]; then
    # Subshell, because check_set exits on failure and the hint must follow.
    (check_set "$out_dir") ||
        die "the existing files in $out_dir do not form a valid set; --force regenerates them"
    printf '%s: all certificates already exist in %s; keeping them (--force regenerates)\n' \
        "$prog" "$out_dir"
    exit 0
fi

new_ca=0 new_server=0 new_client=0 new_revoked_client=0
if ((force == 1)) || ! have ca; then
    new_ca=1 new_server=1 new_client=1 new_revoked_client=1
else
    have server || new_server=1
    have client || new_client=1
    have revoked-client || new_revoked_client=1
fi

if ((new_ca == 1)); then
    ca_cert=$tmp/ca-cert.pem
    ca_key=$tmp/ca-key.pem
    gen_key "$ca_key" CA
    ossl "create the CA certificate" req -new -x509 -config "$cnf" -extensions ca_ext \
        -key "$ca_key" -subj "$CA_SUBJ" -days "$CA_DAYS" -sha256 \
        -set_serial "$(new_serial)" -out "$ca_cert"
else
    ca_cert=$out_dir/ca-cert.pem
    ca_key=$out_dir/ca-key.pem
    # Fail here, naming the files, rather than with a signing error later.
    key_matches_cert "$ca_cert" "$ca_key" ||
        die "$ca_key does not match $ca_cert; rerun with --force"
fi

# The CA's database lives in ca-db/ next to the CA; a new CA starts a new one.
db=$out_dir/ca-db
if ((new_ca == 1)); then
    rm -rf -- "$db"
fi
if [[ ! -d $db ]]; then
    mkdir -p -- "$db" || die "cannot create $db"
    : >"$db/index.txt"
    echo 01 >"$db/crlnumber"
fi
cp -- "$cnf" "$db/openssl.cnf"
# Absolute: ca_run works from inside the database.
db=$(cd -- "$db" && pwd)
tmp=$(cd -- "$tmp" && pwd)
ca_cert=$(cd -- "$(dirname -- "$ca_cert")" && pwd)/${ca_cert##*/}
ca_key=$(cd -- "$(dirname -- "$ca_key")" && pwd)/${ca_key##*/}

# ca_run WHAT ARGS...: openssl ca inside the database, with this CA.
ca_run() {
    local what=$1
    shift
    (
        cd -- "$db"
        ossl "$what" ca -batch -config openssl.cnf -cert "$ca_cert" -keyfile "$ca_key" "$@"
    )
}

issue_leaf() {
    local name=$1 subj=$2 ext=$3
    gen_key "$tmp/$name-key.pem" "$name"
    ossl "create the $name certificate request" req -new -config "$cnf" \
        -key "$tmp/$name-key.pem" -subj "$subj" -sha256 -out "$tmp/$name.csr"
    ca_run "sign the $name certificate" -notext -rand_serial -days "$leaf_days" \
        -extensions "$ext" -in "$tmp/$name.csr" -out "$tmp/$name-cert.pem"
}

((new_server == 0)) || issue_leaf server "$SERVER_SUBJ" server_ext
((new_client == 0)) || issue_leaf client "$CLIENT_SUBJ" client_ext
if ((new_revoked_client == 1)); then
    issue_leaf revoked-client "$REVOKED_SUBJ" client_ext
    ca_run "revoke the revoked-client certificate" \
        -revoke "$tmp/revoked-client-cert.pem" -crl_reason keyCompromise
fi
ca_run "make the CRL" -gencrl -out "$tmp/crl.pem"
chmod 644 -- "$tmp/crl.pem"

# Removing the old file first means a copy across filesystems creates a fresh
# file under our umask instead of rewriting one that may be world-readable.
install_pair() {
    local name=$1 f
    chmod 644 -- "$tmp/$name-cert.pem"
    for f in "$name-key.pem" "$name-cert.pem"; do
        rm -f -- "$out_dir/$f"
        mv -- "$tmp/$f" "$out_dir/$f" 2>/dev/null || die "cannot write $out_dir/$f"
    done
}

created=()
kept=()
for name in ca server client revoked-client; do
    var=new_${name//-/_}
    if ((${!var} == 1)); then
        install_pair "$name"
        created+=("$name")
    else
        kept+=("$name-cert.pem" "$name-key.pem")
    fi
done

rm -f -- "$out_dir/crl.pem"
mv -- "$tmp/crl.pem" "$out_dir/crl.pem" 2>/dev/null || die "cannot write $out_dir/crl.pem"

check_set "$out_dir"

printf '%s: created in %s (new keys are %s):\n' "$prog" "$out_dir" "$key_desc"
for name in "${created[@]}"; do
    case $name in
        ca) printf '  ca-cert.pem, ca-key.pem          %s, %s days\n' "$CA_SUBJ" "$CA_DAYS" ;;
        server) printf '  server-cert.pem, server-key.pem  %s, %s days, %s\n' \
            "$SERVER_SUBJ" "$leaf_days" "$SERVER_SAN" ;;
        client) printf '  client-cert.pem, client-key.pem  %s, %s days\n' \
            "$CLIENT_SUBJ" "$leaf_days" ;;
        revoked-client) printf '  revoked-client-cert.pem, revoked-client-key.pem  %s, revoked\n' \
            "$REVOKED_SUBJ" ;;
    esac
done
if ((${#kept[@]} > 0)); then
    kept_list=$(printf '%s, ' "${kept[@]}")
    printf '  kept existing: %s\n' "${kept_list%, }"
fi
printf '  crl.pem revokes revoked-client-cert.pem (next update in %s days); database in ca-db/\n' \
    "$CRL_DAYS"
printf '%s: server-cert.pem and client-cert.pem verify against ca-cert.pem\n' "$prog"
