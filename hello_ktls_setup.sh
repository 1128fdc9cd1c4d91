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
# RFC 5612 reserves enterprise number 32473 for documentation: an example of
# a private OID for the device-ID extension, to be replaced by one's own.
readonly DEVICE_ID_OID=1.3.6.1.4.1.32473.1.1
# openssl ca -crl_reason's names.
readonly REASONS=(unspecified keyCompromise CACompromise affiliationChanged
    superseded cessationOfOperation certificateHold)
# --lifetime certificates start this many seconds in the past, as step-ca's
# do: a verifier whose clock is a little behind ours still accepts a
# certificate issued a moment ago. notAfter is DURATION from now.
readonly BACKDATE_SECS=60
# The longest --lifetime, as for --days.
readonly MAX_LIFETIME_SECS=$((99999 * 86400))

usage() {
    cat <<EOF
Usage: $prog [-o DIR] [--days N | --lifetime D] [--rsa] [--force]
       $prog [-o DIR] issue NAME [--cn CN] [--ou OU]... [--o ORG] [--san SAN]...
                [--device-id ID] [--ocsp-url URL] [--days N | --lifetime D]
                [--server] [--rsa] [--force]
       $prog [-o DIR] renew NAME [--new-key] [--atomic-dir] [--days N | --lifetime D]
       $prog [-o DIR] sign-csr NAME CSR [--san SAN]... [--days N | --lifetime D]
                [--server] [--force]
       $prog [-o DIR] revoke NAME|CERT.pem [--reason REASON]
       $prog [-o DIR] crl [--days N]
       $prog [-o DIR] ocsp-signer [--days N | --lifetime D] [--rsa] [--force]

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
      --lifetime D   instead of --days: D is a number and a unit, s, m, h or
                     d (90s, 15m, 2h, 3d); notAfter is D from now, and
                     notBefore is $BACKDATE_SECS s in the past, for verifiers
                     whose clock is a little behind
      --rsa          RSA-2048 keys instead of ECDSA P-256
      --force        regenerate every file, even those that exist
  -h, --help         show this help and exit

Existing files are kept. If the CA certificate or key is missing, everything is
regenerated, since the old leaves could not chain to a new CA; if only a server
or client file is missing, that certificate and key are re-issued from the
existing CA. crl.pem is made anew on every run that creates anything.

Commands, for the CA already in DIR (its ca-db/ records all they do):
  issue NAME       a new identity, NAME-cert.pem and NAME-key.pem, signed by
                   the CA through openssl ca; clientAuth unless --server
    --cn CN        subject CN (default: NAME); the subject is
                   /C=US/ST=CA/L=SantaClara/O=ORG[/OU=OU...]/CN=CN
    --ou OU        an organizationalUnitName; repeat for several
    --o ORG        organizationName (default: TestOrg)
    --san SAN      a subjectAltName in openssl syntax, repeatable:
                   URI:spiffe://example.org/ns/web  DNS:host.example
                   email:a@b.example  IP:10.0.0.1  IP:2001:db8::1
    --device-id ID a device ID as a UTF8String in the extension
                   $DEVICE_ID_OID, an example private OID under
                   1.3.6.1.4.1.32473, the arc RFC 5612 reserves for
                   documentation: replace it with an OID of your own
    --ocsp-url URL authorityInfoAccess OCSP;URI:URL
    --days N       validity in days (default: $DEFAULT_LEAF_DAYS)
    --lifetime D   validity D from now (15m, 2h, ...), as above
    --server       serverAuth instead of clientAuth
    --force        issue anew when NAME-cert.pem already exists
  renew NAME       NAME-cert.pem again, with the subject, SANs and extensions
                   it was issued with (kept in ca-db/issued/) and the same
                   key, for --days N or --lifetime D (default: what it was
                   issued for); the old certificate stays valid until it
                   expires (revoke it by its path in ca-db/ if it must not)
    --new-key      a new key as well (same type), NAME-key.pem replaced
    --atomic-dir   keep the pair in NAME.d/SERIAL/ and make NAME-cert.pem
                   and NAME-key.pem symlinks through NAME.d/current, which
                   one rename switches: the pair changes at one instant
  sign-csr NAME CSR
                   NAME-cert.pem for the key that signed the request CSR
                   (a key that stays where it is: a TPM, a token), with
                   the request's subject; clientAuth unless --server;
                   --san, --days, --lifetime and --force as for issue;
                   the request's own extensions are ignored (renewing a
                   key that stays in a TPM is signing its request again)
  revoke NAME      revoke NAME-cert.pem (or the certificate file given) in
                   ca-db/ and rewrite crl.pem; --reason REASON is one of
                   ${REASONS[*]:0:4}
                   ${REASONS[*]:4} (default: unspecified)
  crl              write crl.pem anew, e.g. after it expired (--days N: its
                   nextUpdate, default $CRL_DAYS days)
  ocsp-signer      ocsp-cert.pem and ocsp-key.pem: a delegated OCSP responder
                   certificate (OCSPSigning, noCheck); prints the
                   openssl ocsp command that answers from ca-db/index.txt
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

# One line: the help is now too long to repeat after every typo.
usage_error() {
    printf '%s: %s (-h for help)\n' "$prog" "$*" >&2
    exit 2
}

out_dir=.
leaf_days=$DEFAULT_LEAF_DAYS
days_set=0
key_type=ec
force=0
args=()
# Options of the commands; parse_args checks which command may have them.
opt_cn='' opt_org='' opt_device_id='' opt_ocsp_url='' opt_reason='' opt_server=0
opt_new_key=0 opt_atomic_dir=0
lifetime='' lifetime_secs=0
opt_ou=() opt_san=()
cmd_opts=()

# need_value OPTION COUNT: the option has its value.
need_value() {
    (($2 >= 2)) || usage_error "option $1 needs a value"
}

while (($# > 0)); do
    # --opt=value is --opt value.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    case $1 in
        -o | --out-dir)
            need_value "$1" $#
            out_dir=$2
            ;;
        --days)
            need_value "$1" $#
            leaf_days=$2
            days_set=1
            ;;
        --lifetime)
            need_value "$1" $#
            lifetime=$2
            ;;
        --cn | --ou | --o | --san | --device-id | --ocsp-url | --reason)
            need_value "$1" $#
            [[ -n $2 && $2 != *[[:cntrl:]]* ]] ||
                usage_error "option $1 needs a non-empty value without control characters"
            cmd_opts+=("$1")
            case $1 in
                --cn) opt_cn=$2 ;;
                --ou) opt_ou+=("$2") ;;
                --o) opt_org=$2 ;;
                --san) opt_san+=("$2") ;;
                --device-id) opt_device_id=$2 ;;
                --ocsp-url) opt_ocsp_url=$2 ;;
                --reason) opt_reason=$2 ;;
            esac
            ;;
        --rsa | --force | --server | --new-key | --atomic-dir)
            case $1 in
                --rsa) key_type=rsa ;;
                --force) force=1 ;;
                --server) opt_server=1 cmd_opts+=("$1") ;;
                --new-key) opt_new_key=1 cmd_opts+=("$1") ;;
                --atomic-dir) opt_atomic_dir=1 cmd_opts+=("$1") ;;
            esac
            shift
            continue
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            usage_error "unknown option: $1"
            ;;
        *)
            args+=("$1")
            shift
            continue
            ;;
    esac
    shift 2
done

cmd=
if ((${#args[@]} > 0)); then
    cmd=${args[0]}
    case $cmd in
        issue | revoke | renew) ((${#args[@]} == 2)) || usage_error "$cmd needs exactly one NAME" ;;
        sign-csr) ((${#args[@]} == 3)) || usage_error "sign-csr needs a NAME and a CSR file" ;;
        crl | ocsp-signer) ((${#args[@]} == 1)) || usage_error "unexpected argument: ${args[1]}" ;;
        *) usage_error "unknown command: $cmd" ;;
    esac
fi
# Each option of a command belongs to one command only.
for o in "${cmd_opts[@]}"; do
    case $cmd:$o in
        revoke:--reason) ;;
        sign-csr:--san | sign-csr:--server) ;;
        issue:--reason) usage_error "--reason is for revoke only" ;;
        issue:--new-key | issue:--atomic-dir) usage_error "$o is for renew only" ;;
        issue:*) ;;
        renew:--new-key | renew:--atomic-dir) ;;
        *) usage_error "$o is not an option of ${cmd:-the default run}" ;;
    esac
done
case $cmd in
    revoke) ((days_set == 0 && force == 0)) || usage_error "revoke takes no --days or --force" ;;
    crl) ((force == 0)) || usage_error "crl takes no --force" ;;
    renew) ((force == 0)) || usage_error "renew takes no --force" ;;
esac
if [[ -n $lifetime ]]; then
    case $cmd in
        '' | issue | renew | sign-csr | ocsp-signer) ;;
        *) usage_error "--lifetime is not an option of $cmd" ;;
    esac
    ((days_set == 0)) || usage_error "--days and --lifetime are exclusive: give one"
fi

[[ -n $out_dir ]] || usage_error "the output directory must not be empty"
# Capped at five digits so that openssl's int parsing cannot overflow and the
# end date stays a representable year.
[[ $leaf_days =~ ^[1-9][0-9]{0,4}$ ]] ||
    usage_error "--days needs a whole number from 1 to 99999, not '$leaf_days'"

# parse_lifetime D: its seconds in lifetime_secs, or one line and exit 2.
parse_lifetime() {
    local n unit
    [[ $1 =~ ^([1-9][0-9]{0,8})([smhd])$ ]] ||
        usage_error "--lifetime needs a number and a unit s, m, h or d (90s, 15m, 2h, 3d), not '$1'"
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in
        s) lifetime_secs=$n ;;
        m) lifetime_secs=$((n * 60)) ;;
        h) lifetime_secs=$((n * 3600)) ;;
        d) lifetime_secs=$((n * 86400)) ;;
    esac
    ((lifetime_secs <= MAX_LIFETIME_SECS)) || usage_error "--lifetime '$1' is longer than 99999 days"
}
if [[ -n $lifetime ]]; then
    parse_lifetime "$lifetime"
fi

# openssl ca's options for the validity asked for: -days, or the dates of
# --lifetime in UTC (YYYYMMDDHHMMSSZ, which openssl ca takes as is).
validity_args() {
    local now
    if ((lifetime_secs == 0)); then
        validity=(-days "$leaf_days")
        return
    fi
    now=$(date -u +%s)
    validity=(-startdate "$(date -u -d "@$((now - BACKDATE_SECS))" +%Y%m%d%H%M%SZ)"
        -enddate "$(date -u -d "@$((now + lifetime_secs))" +%Y%m%d%H%M%SZ)")
}
# What the validity is, in words.
validity_words() {
    if ((lifetime_secs > 0)); then printf '%s' "$lifetime"; else printf '%s days' "$leaf_days"; fi
}

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
organizationalUnitName = optional
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

# ca_run WHAT ARGS...: openssl ca inside the database, with this CA.
ca_run() {
    local what=$1
    shift
    (
        cd -- "$db"
        ossl "$what" ca -batch -config openssl.cnf -cert "$ca_cert" -keyfile "$ca_key" "$@"
    )
}

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

# ---- commands: more from the CA already in DIR -------------------------------

# ca_lock DB: hold DB/.lock until this run ends. openssl ca rewrites
# index.txt and serial in place, so two runs at once (two renewal loops,
# say) would read each other's half-written files.
ca_lock() {
    exec 9>>"$1/.lock" || die "cannot open $1/.lock"
    flock -w 60 9 || die "the CA database $1 stayed busy for 60 s (another $prog holds $1/.lock)"
}

# ca_open: the CA and database of DIR, for the commands.
ca_open() {
    [[ -f $out_dir/ca-cert.pem && -f $out_dir/ca-key.pem && -f $out_dir/ca-db/index.txt &&
        -f $out_dir/ca-db/openssl.cnf ]] ||
        die "no CA in $out_dir (ca-cert.pem, ca-key.pem, ca-db/): run $prog -o $out_dir first"
    db=$(cd -- "$out_dir/ca-db" && pwd)
    ca_lock "$db"
    ca_cert=$(cd -- "$out_dir" && pwd)/ca-cert.pem
    ca_key=${ca_cert%/*}/ca-key.pem
    tmp=$(cd -- "$tmp" && pwd)
    # As on every run: a database made by an older version gets today's policy.
    cp -- "$cnf" "$db/openssl.cnf"
}

# The reason in the first error line of openssl's log, for a one-line message.
openssl_reason() {
    local line
    line=$(grep -m1 ':error:' "$tmp/openssl.log") || line=$(head -n1 "$tmp/openssl.log")
    line=$(cut -d: -f6 <<<"$line")
    printf '%s\n' "${line:-openssl failed}"
}

# Values end up in an openssl config file, where these characters would be
# read as syntax ($ variables, # comments, \ escapes, "," list separators).
config_safe() { [[ $1 != *[[:space:],\$#\\\"\']* ]]; }

# check_san SAN KEY: shape first, then openssl's own parser, so that the
# error names the SAN instead of coming later out of openssl ca.
check_san() {
    local san=$1 type=${1%%:*} value=${1#*:} why=
    if [[ $san != *:* || -z $value ]]; then
        why='want TYPE:VALUE, e.g. DNS:host.example'
    elif ! config_safe "$value"; then
        why='spaces, commas, quotes, $, # and \ are not allowed'
    else
        case $type in
            URI) [[ $value =~ ^[A-Za-z][A-Za-z0-9+.-]*:.+$ ]] ||
                why='a URI needs a scheme, e.g. URI:spiffe://example.org/ns/web' ;;
            DNS) [[ $value =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ && $value != *..* ]] ||
                why='not a DNS name' ;;
            email) [[ $value =~ ^[^@]+@[^@]+$ ]] || why='not an email address' ;;
            IP) ;;
            *) why="unknown type '$type' (URI, DNS, email or IP)" ;;
        esac
    fi
    if [[ -z $why ]] && ! openssl req -new -x509 -config "$cnf" -key "$2" -subj /CN=check \
        -addext "subjectAltName=$san" -out /dev/null >"$tmp/openssl.log" 2>&1; then
        why=$(openssl_reason)
    fi
    [[ -z $why ]] || die "bad --san '$san': $why"
}

# A DN attribute value for -subj, where / and + separate and \ escapes.
dn_escape() {
    local v=${1//\\/\\\\}
    v=${v//\//\\/}
    printf '%s' "${v//+/\\+}"
}

refuse_existing() {
    ((force == 1)) || [[ ! -e $out_dir/$1-cert.pem && ! -e $out_dir/$1-key.pem ]] ||
        die "$out_dir/$1-cert.pem already exists (--force issues a new one)"
}

# sign_only NAME SUBJECT: request and openssl ca for $tmp/NAME-key.pem with
# the extensions in $tmp/ext.cnf section ext, into $tmp/NAME-cert.pem.
sign_only() {
    local name=$1 subj=$2 validity
    ossl "create the $name certificate request" req -new -config "$cnf" \
        -key "$tmp/$name-key.pem" -subj "$subj" -sha256 -out "$tmp/$name.csr"
    validity_args
    ca_run "sign the $name certificate" -notext -rand_serial "${validity[@]}" \
        -extfile "$tmp/ext.cnf" -extensions ext -in "$tmp/$name.csr" -out "$tmp/$name-cert.pem"
}

# remember NAME SUBJECT: what renew needs to issue NAME again, in
# ca-db/issued/: the subject, the extensions, the key type, the validity.
remember() {
    local d=$db/issued
    mkdir -p -- "$d" || die "cannot create $d"
    cp -- "$tmp/ext.cnf" "$d/$1.ext"
    printf '%s\n' "$2" >"$d/$1.subj"
    printf '%s\n' "$key_type" >"$d/$1.keytype"
    if ((lifetime_secs > 0)); then
        printf 'lifetime %s\n' "$lifetime" >"$d/$1.validity"
    else
        printf 'days %s\n' "$leaf_days" >"$d/$1.validity"
    fi
}

# sign NAME SUBJECT: sign_only, then NAME-cert.pem and NAME-key.pem.
sign() {
    sign_only "$1" "$2"
    remember "$1" "$2"
    install_pair "$1"
}

describe() {
    local f=$out_dir/$1-cert.pem subject serial end
    subject=$(openssl x509 -in "$f" -noout -subject -nameopt compat) || die "cannot read $f"
    serial=$(openssl x509 -in "$f" -noout -serial)
    end=$(openssl x509 -in "$f" -noout -enddate)
    printf '%s: %s %s and %s-key.pem: %s, serial %s, until %s\n' "$prog" "${2:-issued}" \
        "$f" "$1" "${subject#subject=}" "${serial#serial=}" "${end#notAfter=}"
}

cmd_issue() {
    local name=$1 subj ou san sans=
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
        die "bad NAME '$name': up to 64 letters, digits, '.', '_' and '-'"
    [[ $name != ca ]] || die "NAME 'ca' is the CA's own"
    refuse_existing "$name"
    [[ -z $opt_device_id || $opt_device_id =~ ^[[:alnum:]._:/@+=-]{1,64}$ ]] ||
        die "bad --device-id '$opt_device_id': up to 64 letters, digits and ._:/@+=-"
    if [[ -n $opt_ocsp_url ]] && { [[ ! $opt_ocsp_url =~ ^https?://.+ ]] || ! config_safe "$opt_ocsp_url"; }; then
        die "bad --ocsp-url '$opt_ocsp_url': want http://host[:port][/path]"
    fi
    gen_key "$tmp/$name-key.pem" "$name"
    for san in "${opt_san[@]}"; do
        check_san "$san" "$tmp/$name-key.pem"
        sans+=${sans:+, }$san
    done
    subj="/C=US/ST=CA/L=SantaClara/O=$(dn_escape "${opt_org:-TestOrg}")"
    for ou in "${opt_ou[@]}"; do
        subj+="/OU=$(dn_escape "$ou")"
    done
    subj+="/CN=$(dn_escape "${opt_cn:-$name}")"
    {
        printf '[ ext ]\nbasicConstraints = critical, CA:FALSE\n'
        printf 'keyUsage = critical, %s\n' "$leaf_ku"
        printf 'extendedKeyUsage = %s\n' "$( ((opt_server)) && echo serverAuth || echo clientAuth)"
        printf 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid, issuer\n'
        if [[ -n $sans ]]; then printf 'subjectAltName = %s\n' "$sans"; fi
        if [[ -n $opt_device_id ]]; then
            printf '%s = ASN1:UTF8String:%s\n' "$DEVICE_ID_OID" "$opt_device_id"
        fi
        if [[ -n $opt_ocsp_url ]]; then
            printf 'authorityInfoAccess = OCSP;URI:%s\n' "$opt_ocsp_url"
        fi
    } >"$tmp/ext.cnf"
    sign "$name" "$subj"
    describe "$name"
}

# sign-csr NAME CSR: a certificate for a key we never see (it signed the
# request inside its TPM or token), so only NAME-cert.pem is written. The
# request's signature proves possession of the key; its subject is kept,
# its requested extensions are not (copy_extensions = none): what the
# certificate may do is decided here, as for issue.
cmd_sign_csr() {
    local name=$1 csr=$2 san sans= subject end validity
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
        die "bad NAME '$name': up to 64 letters, digits, '.', '_' and '-'"
    [[ $name != ca ]] || die "NAME 'ca' is the CA's own"
    ((force == 1)) || [[ ! -e $out_dir/$name-cert.pem ]] ||
        die "$out_dir/$name-cert.pem already exists (--force issues a new one)"
    [[ -f $csr ]] || die "no certificate request $csr"
    openssl req -in "$csr" -noout -verify >"$tmp/openssl.log" 2>&1 ||
        die "$csr: not a certificate request whose signature verifies: $(openssl_reason)"
    subject=$(openssl req -in "$csr" -noout -subject -nameopt compat)
    [[ $subject == */CN=* ]] || die "$csr: its subject has no CN"
    cp -- "$csr" "$tmp/$name.csr"
    for san in "${opt_san[@]}"; do
        [[ $san == *:?* ]] && config_safe "${san#*:}" || die "bad --san '$san': want TYPE:VALUE"
        sans+=${sans:+, }$san
    done
    {
        printf '[ ext ]\nbasicConstraints = critical, CA:FALSE\n'
        # The request's key decides the key usage, not --rsa.
        if openssl req -in "$csr" -noout -text | grep -q 'rsaEncryption'; then
            printf 'keyUsage = critical, digitalSignature, keyEncipherment\n'
        else
            printf 'keyUsage = critical, digitalSignature\n'
        fi
        printf 'extendedKeyUsage = %s\n' "$( ((opt_server)) && echo serverAuth || echo clientAuth)"
        printf 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid, issuer\n'
        if [[ -n $sans ]]; then printf 'subjectAltName = %s\n' "$sans"; fi
    } >"$tmp/ext.cnf"
    validity_args
    ca_run "sign the request $csr" -notext -rand_serial "${validity[@]}" \
        -extfile "$tmp/ext.cnf" -extensions ext -in "$tmp/$name.csr" -out "$tmp/$name-cert.pem"
    chmod 644 -- "$tmp/$name-cert.pem"
    rm -f -- "$out_dir/$name-cert.pem"
    mv -- "$tmp/$name-cert.pem" "$out_dir/$name-cert.pem" 2>/dev/null ||
        die "cannot write $out_dir/$name-cert.pem"
    end=$(openssl x509 -in "$out_dir/$name-cert.pem" -noout -enddate)
    printf '%s: issued %s for the key of %s: %s, until %s\n' "$prog" "$out_dir/$name-cert.pem" \
        "$csr" "${subject#subject=}" "${end#notAfter=}"
}

# revoke NAME|CERT: in the database, then a new crl.pem.
cmd_revoke() {
    local what=$1 cert reason=${opt_reason:-unspecified} r ok=0
    for r in "${REASONS[@]}"; do
        [[ $r != "$reason" ]] || ok=1
    done
    ((ok == 1)) || die "bad --reason '$reason': one of ${REASONS[*]}"
    if [[ $what == */* || $what == *.pem ]]; then cert=$what; else cert=$out_dir/$what-cert.pem; fi
    [[ -f $cert ]] || die "unknown certificate '$what': no $cert"
    cert=$(cd -- "$(dirname -- "$cert")" && pwd)/${cert##*/}
    openssl x509 -in "$cert" -noout >/dev/null 2>&1 || die "$cert is not a PEM certificate"
    # openssl ca -revoke would add any certificate to the database.
    openssl verify -no_check_time -CAfile "$ca_cert" "$cert" >/dev/null 2>&1 ||
        die "$cert was not issued by $ca_cert"
    if ! (cd -- "$db" && openssl ca -batch -config openssl.cnf -cert "$ca_cert" \
        -keyfile "$ca_key" -revoke "$cert" -crl_reason "$reason") >"$tmp/openssl.log" 2>&1; then
        grep -q 'Already revoked' "$tmp/openssl.log" && die "$cert is already revoked"
        die "cannot revoke $cert: $(openssl_reason)"
    fi
    printf '%s: revoked %s (%s)\n' "$prog" "$cert" "$reason"
    cmd_crl
}

cmd_crl() {
    local days=$CRL_DAYS next
    ((days_set == 0)) || days=$leaf_days
    ca_run "make the CRL" -gencrl -crldays "$days" -out "$tmp/crl.pem"
    chmod 644 -- "$tmp/crl.pem"
    rm -f -- "$out_dir/crl.pem"
    mv -- "$tmp/crl.pem" "$out_dir/crl.pem" 2>/dev/null || die "cannot write $out_dir/crl.pem"
    next=$(openssl crl -in "$out_dir/crl.pem" -noout -nextupdate)
    printf '%s: wrote %s/crl.pem: %d revoked, next update %s\n' "$prog" "$out_dir" \
        "$(grep -c '^R' "$db/index.txt" || true)" "${next#nextUpdate=}"
}

# A delegated responder (RFC 6960 4.2.2.2): signed by the CA, OCSPSigning,
# and id-pkix-ocsp-nocheck so that clients need not check its own status.
cmd_ocsp_signer() {
    refuse_existing ocsp
    gen_key "$tmp/ocsp-key.pem" "OCSP responder"
    cat >"$tmp/ext.cnf" <<EXT
[ ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EXT
    sign ocsp '/C=US/ST=CA/L=SantaClara/O=TestCA/CN=Test CA OCSP Responder'
    describe ocsp
    printf 'To answer OCSP requests for this CA on port N (-ndays D sets nextUpdate), from %s:\n' "$out_dir"
    printf '  openssl ocsp -index ca-db/index.txt -CA ca-cert.pem -rsigner ocsp-cert.pem -rkey ocsp-key.pem -port N\n'
}

# ---- renew: the same identity again, written so readers never see half ----

# stage SRC DIR MODE: a copy of SRC in DIR (the destination's filesystem, so
# that rename is atomic), flushed to disk; its path on stdout.
stage() {
    local t
    t=$(mktemp "$2/.${1##*/}.XXXXXX") || die "cannot write in $2"
    cat -- "$1" >"$t" && chmod "$3" -- "$t" && sync -- "$t" || {
        rm -f -- "$t"
        die "cannot write $t"
    }
    printf '%s\n' "$t"
}

# Plain files: each rename is atomic, so a reader sees the old file or the
# new one, never a mix. With --new-key the pair changes in two renames:
# the key first, then the certificate, whose change is what watchers wait
# for. A reader between the two sees the new key with the old certificate,
# a mismatch it must refuse and read again (hello_ktls_server's reload
# does); --atomic-dir closes that window.
install_renewed_files() {
    local name=$1 key=$2 t_key='' t_cert
    t_cert=$(stage "$tmp/$name-cert.pem" "$out_dir" 644)
    if ((key)); then
        t_key=$(stage "$tmp/$name-key.pem" "$out_dir" 600)
        mv -f -- "$t_key" "$out_dir/$name-key.pem" || die "cannot write $out_dir/$name-key.pem"
    fi
    mv -f -- "$t_cert" "$out_dir/$name-cert.pem" || die "cannot write $out_dir/$name-cert.pem"
    sync -- "$out_dir" 2>/dev/null || true
}

# link_to TARGET LINK: LINK becomes a symlink to TARGET in one rename.
link_to() {
    local dir=${2%/*}
    ln -sfn -- "$1" "$dir/.link.$$" && mv -fT -- "$dir/.link.$$" "$2" ||
        die "cannot link $2 to $1"
}

# --atomic-dir: NAME.d/SERIAL/ holds a complete pair, NAME.d/current links
# to the newest, and NAME-cert.pem, NAME-key.pem link through current (as
# Kubernetes' ..data does). One rename of current switches both files.
install_renewed_dir() {
    local name=$1 d=$out_dir/$1.d serial new old
    serial=$(openssl x509 -in "$tmp/$name-cert.pem" -noout -serial) || die "cannot read the new certificate"
    serial=${serial#serial=}
    mkdir -p -- "$d" || die "cannot create $d"
    new=$(mktemp -d "$d/.new.XXXXXX") || die "cannot write in $d"
    chmod 755 -- "$new"
    cp -- "$tmp/$name-key.pem" "$new/$name-key.pem" && chmod 600 -- "$new/$name-key.pem" &&
        cp -- "$tmp/$name-cert.pem" "$new/$name-cert.pem" && chmod 644 -- "$new/$name-cert.pem" &&
        sync -- "$new"/* "$new" || die "cannot write $new"
    mv -T -- "$new" "$d/$serial" || die "cannot write $d/$serial"
    old=$(readlink -- "$d/current" 2>/dev/null || true)
    link_to "$serial" "$d/current"
    # The first time, the files become links (one rename each).
    [[ -L $out_dir/$name-cert.pem ]] || link_to "$name.d/current/$name-cert.pem" "$out_dir/$name-cert.pem"
    [[ -L $out_dir/$name-key.pem ]] || link_to "$name.d/current/$name-key.pem" "$out_dir/$name-key.pem"
    sync -- "$d" "$out_dir" 2>/dev/null || true
    # The previous pair stays for a reader that resolved current before
    # the switch; older ones go.
    for f in "$d"/*; do
        [[ ${f##*/} == "$serial" || ${f##*/} == "$old" || ${f##*/} == current ]] || rm -rf -- "$f"
    done
}

# The issue parameters ca-db/issued/ keeps, back into the options.
recall() {
    local d=$db/issued/$1 how n
    [[ -f $d.subj && -f $d.ext && -f $d.keytype && -f $d.validity ]] ||
        die "no issue parameters for $1 in $db/issued/ (issued by an older $prog): use issue $1 --force"
    key_type=$(<"$d.keytype")
    if [[ -z $lifetime ]] && ((days_set == 0)); then
        read -r how n <"$d.validity"
        if [[ $how == lifetime ]]; then
            lifetime=$n
            parse_lifetime "$n"
        else
            leaf_days=$n
        fi
    fi
    cp -- "$d.ext" "$tmp/ext.cnf"
}

cmd_renew() {
    local name=$1 key=$out_dir/$1-key.pem subj
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
        die "bad NAME '$name': up to 64 letters, digits, '.', '_' and '-'"
    [[ $name != ca ]] || die "NAME 'ca' is the CA's own"
    [[ -f $out_dir/$name-cert.pem && -f $key ]] ||
        die "no $name-cert.pem and $name-key.pem in $out_dir: issue $name first"
    recall "$name"
    subj=$(<"$db/issued/$name.subj")
    if ((opt_new_key)); then
        gen_key "$tmp/$name-key.pem" "$name"
    else
        cat -- "$key" >"$tmp/$name-key.pem" 2>/dev/null || die "cannot read $key"
    fi
    sign_only "$name" "$subj"
    remember "$name" "$subj"
    key_matches_cert "$tmp/$name-cert.pem" "$tmp/$name-key.pem" ||
        die "the renewed $name certificate does not match its key"
    if ((opt_atomic_dir)) || [[ -L $out_dir/$name.d/current ]]; then
        install_renewed_dir "$name"
    else
        install_renewed_files "$name" "$opt_new_key"
    fi
    describe "$name" "renewed ($( ((opt_new_key)) && echo new || echo same) key)"
}

if [[ -n $cmd ]]; then
    ca_open
    "cmd_${cmd//-/_}" "${args[@]:1}"
    exit 0
fi

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
ca_lock "$db"
cp -- "$cnf" "$db/openssl.cnf"
# Absolute: ca_run works from inside the database.
db=$(cd -- "$db" && pwd)
tmp=$(cd -- "$tmp" && pwd)
ca_cert=$(cd -- "$(dirname -- "$ca_cert")" && pwd)/${ca_cert##*/}
ca_key=$(cd -- "$(dirname -- "$ca_key")" && pwd)/${ca_key##*/}

# issue_leaf NAME SUBJECT SECTION: the section of the config becomes the
# certificate's extensions, and what renew reads.
issue_leaf() {
    local name=$1 subj=$2 ext=$3
    gen_key "$tmp/$name-key.pem" "$name"
    {
        printf '[ ext ]\n'
        sed -n "/^\[ $ext \]\$/,/^\$/{/^\[/d;/^\$/d;p}" "$cnf"
    } >"$tmp/ext.cnf"
    sign_only "$name" "$subj"
    remember "$name" "$subj"
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
        server) printf '  server-cert.pem, server-key.pem  %s, %s, %s\n' \
            "$SERVER_SUBJ" "$(validity_words)" "$SERVER_SAN" ;;
        client) printf '  client-cert.pem, client-key.pem  %s, %s\n' \
            "$CLIENT_SUBJ" "$(validity_words)" ;;
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
