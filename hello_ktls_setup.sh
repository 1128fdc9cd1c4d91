#!/usr/bin/env bash
# Creates the test CA and the mTLS server and client certificates that the
# hello_ktls server and client load. Run with -h for the options.
set -euo pipefail

prog=${0##*/}

readonly CA_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestCA/CN=Test CA'
readonly SERVER_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=localhost'
readonly CLIENT_SUBJ='/C=US/ST=CA/L=SantaClara/O=TestOrg/CN=Test Client'
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
existing CA.
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
    for name in ca server client; do
        key_matches_cert "$d/$name-cert.pem" "$d/$name-key.pem" ||
            die "$d/$name-key.pem does not match $d/$name-cert.pem"
    done
}

if ((force == 0)) && have ca && have server && have client; then
    # Subshell, because check_set exits on failure and the hint must follow.
    (check_set "$out_dir") ||
        die "the existing files in $out_dir do not form a valid set; --force regenerates them"
    printf '%s: all certificates already exist in %s; keeping them (--force regenerates)\n' \
        "$prog" "$out_dir"
    exit 0
fi

new_ca=0 new_server=0 new_client=0
if ((force == 1)) || ! have ca; then
    new_ca=1 new_server=1 new_client=1
else
    have server || new_server=1
    have client || new_client=1
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

issue_leaf() {
    local name=$1 subj=$2
    gen_key "$tmp/$name-key.pem" "$name"
    ossl "create the $name certificate request" req -new -config "$cnf" \
        -key "$tmp/$name-key.pem" -subj "$subj" -sha256 -out "$tmp/$name.csr"
    ossl "sign the $name certificate" x509 -req -in "$tmp/$name.csr" \
        -CA "$ca_cert" -CAkey "$ca_key" -set_serial "$(new_serial)" \
        -days "$leaf_days" -sha256 -extfile "$cnf" -extensions "${name}_ext" \
        -out "$tmp/$name-cert.pem"
}

((new_server == 0)) || issue_leaf server "$SERVER_SUBJ"
((new_client == 0)) || issue_leaf client "$CLIENT_SUBJ"

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
for name in ca server client; do
    var=new_$name
    if ((${!var} == 1)); then
        install_pair "$name"
        created+=("$name")
    else
        kept+=("$name-cert.pem" "$name-key.pem")
    fi
done

check_set "$out_dir"

printf '%s: created in %s (new keys are %s):\n' "$prog" "$out_dir" "$key_desc"
for name in "${created[@]}"; do
    case $name in
        ca) printf '  ca-cert.pem, ca-key.pem          %s, %s days\n' "$CA_SUBJ" "$CA_DAYS" ;;
        server) printf '  server-cert.pem, server-key.pem  %s, %s days, %s\n' \
            "$SERVER_SUBJ" "$leaf_days" "$SERVER_SAN" ;;
        client) printf '  client-cert.pem, client-key.pem  %s, %s days\n' \
            "$CLIENT_SUBJ" "$leaf_days" ;;
    esac
done
if ((${#kept[@]} > 0)); then
    kept_list=$(printf '%s, ' "${kept[@]}")
    printf '  kept existing: %s\n' "${kept_list%, }"
fi
printf '%s: server-cert.pem and client-cert.pem verify against ca-cert.pem\n' "$prog"
