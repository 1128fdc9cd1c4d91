#!/usr/bin/env bash
# tests/audit_tests.sh - the server's --audit trail (no kTLS needed): a
# verified client gives connection-accepted, access-allowed and
# connection-closed, with every field checked against openssl's view of
# the certificate; a client of another CA, a peer sending garbage and a
# revoked client give tls-handshake-failed with the reason the server logs
# and the refused certificate's identity; a client over --max-connections
# gives connection-refused; 50 clients at once give whole lines only;
# logrotate's rename + SIGHUP loses no line; --audit syslog sends one
# datagram per event to /dev/log (a private one: see run_syslog).
# The servers run first; then one python3 checks every file, and prints
# one "ok -"/"FAIL -" line per test, which are counted here.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

# How many results tests/audit_check.py prints.
CHECKS=23
MSG='audit me, 26 bytes long :)'
REPLY='Hello from kTLS server! Your certificate was validated.'

# A client certificate whose subject and SANs need escaping in JSON: a
# quote, a backslash and UTF-8 in the subject; a tab and raw non-ASCII
# bytes in DNS names; every SAN type the trail reports.
make_san_cert() {
	local d=$WORK/san
	mkdir -p "$d"
	printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
	    'keyUsage = critical, digitalSignature' 'extendedKeyUsage = clientAuth' \
	    "subjectAltName = DNS:client.example, DNS:tab$(printf '\t')x.example, DNS:caf$(printf '\303\251').example, URI:spiffe://example.org/c, email:c@example.org, IP:192.0.2.7, IP:2001:db8::1" \
	    >"$d/ext.cnf"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$d/key.pem" -out "$d/req.csr" -utf8 \
	    -subj '/O=Te"st\\Org/CN=Tést Client' >"$d/log" 2>&1 &&
	    openssl x509 -req -in "$d/req.csr" -CA ca-cert.pem -CAkey ca-key.pem \
	    -set_serial 0x0123456789abcdef01 -days 30 -extfile "$d/ext.cnf" \
	    -out "$d/cert.pem" >>"$d/log" 2>&1
}

# x509_field FLAG...: one line of `openssl x509` on the SAN certificate,
# without its "name=".
x509_field() {
	local out
	out=$(openssl x509 -in "$WORK/san/cert.pem" -noout "$@") || return 1
	echo "${out#*=}"
}

# audit_server FILE ARGS...: start_server with --audit FILE.
audit_server() {
	local file=$1
	shift
	start_server --audit "$file" "$@"
}

# 1. One verified client with the SAN certificate; one client from curl,
#    whose source port we choose.
run_good() {
	AUDIT_GOOD=$WORK/good.jsonl
	audit_server "$AUDIT_GOOD"
	GOOD_PORT=$PORT
	run_client "$WORK/good-client.log" --cert "$WORK/san/cert.pem" \
	    --key "$WORK/san/key.pem" --message "$MSG"
	GOOD_RC=$CLI_RC
	wait_count "$AUDIT_GOOD" '"connection-closed"' 1
	CURL_PORT=$(free_port)
	timeout 30 curl -s -o /dev/null --local-port "$CURL_PORT" \
	    --cacert ca-cert.pem --cert client-cert.pem --key client-key.pem \
	    "https://127.0.0.1:$PORT/" 2>/dev/null
	wait_count "$AUDIT_GOOD" '"connection-closed"' 2
	stop_server
	GOOD_SRV_LOG=$SRV_LOG
}

# 2. A client of another CA, then a peer that sends bytes that are no TLS,
#    then a client that crl.pem revokes.
run_refused() {
	AUDIT_BAD=$WORK/bad.jsonl
	audit_server "$AUDIT_BAD" --crl crl.pem
	run_client "$WORK/other.log" --cert other-client-cert.pem \
	    --key other-client-key.pem
	wait_count "$AUDIT_BAD" '"tls-handshake-failed"' 1
	{
		exec 3<>"/dev/tcp/127.0.0.1/$PORT" &&
		    { printf '\000\377'; head -c 62 /dev/urandom; } >&3 &&
		    timeout 10 cat <&3 >/dev/null
		exec 3<&-
	} 2>/dev/null
	wait_count "$AUDIT_BAD" '"tls-handshake-failed"' 2
	run_client "$WORK/revoked.log" --cert revoked-client-cert.pem \
	    --key revoked-client-key.pem
	wait_count "$AUDIT_BAD" '"tls-handshake-failed"' 3
	stop_server
	BAD_SRV_LOG=$SRV_LOG
}

# 2b. --max-connections 1: a silent peer holds the one place, the next
#     client is refused at accept.
run_maxconn() {
	AUDIT_MAX=$WORK/max.jsonl
	audit_server "$AUDIT_MAX" --max-connections 1 --handshake-timeout 10
	MAX_PORT=$PORT
	exec 4<>"/dev/tcp/127.0.0.1/$PORT"
	wait_clients 1
	run_client "$WORK/max.log"
	MAX_RC=$CLI_RC
	wait_count "$AUDIT_MAX" '"connection-refused"' 1
	exec 4<&-
	wait_count "$AUDIT_MAX" '"tls-handshake-failed"' 1
	stop_server
	MAX_SRV_LOG=$SRV_LOG
}

# 5. --audit syslog. glibc's syslog() writes to /dev/log, a fixed path;
#    this machine may have none, or a real one whose log we must not
#    fill. So this part runs in a mount namespace of its own (unshare),
#    with a private tmpfs on /dev (the host's null, zero, random and
#    urandom bound into it), where a python3 listener binds /dev/log and
#    writes each datagram as one line of $SYSLOG_OUT. Nothing outside the
#    namespace sees that /dev; the host's /dev is never bound anywhere a
#    cleanup could reach.
run_syslog() {
	SYSLOG_OUT=$WORK/syslog.out
	: >"$SYSLOG_OUT"
	local -a ns=(unshare --mount)
	[ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --mount)
	SYSLOG_RC=0
	"${ns[@]}" bash "$HK_ROOT/tests/audit_tests.sh" --syslog-part \
	    "$SYSLOG_OUT" >"$WORK/syslog-part.log" 2>&1 || SYSLOG_RC=$?
	SYSLOG_WHY=$(tail -n 1 "$WORK/syslog-part.log")
}

# private_dev: a tmpfs with the four devices, built aside, then moved
# onto /dev (the binds move with it).
private_dev() {
	local stage=$WORK/dev n
	mkdir "$stage" && mount -t tmpfs -o mode=755 hk-dev "$stage" || return 1
	for n in null zero random urandom; do
		: >"$stage/$n" && mount --bind "/dev/$n" "$stage/$n" || return 1
	done
	ln -s /proc/self/fd "$stage/fd" && mount --move "$stage" /dev
}

# In the namespace: /dev made private, the listener, a server with
# --audit syslog, a good client and one of another CA. Writes the
# server's pid to OUT.pid.
syslog_part() {
	local out=$1 i listener
	if ! private_dev; then
		echo "cannot make a private /dev in a mount namespace"
		return 1
	fi
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
out = open(sys.argv[1], "ab", buffering=0)
print("listening", flush=True)
while True:
    out.write(s.recv(1 << 20).replace(b"\n", b"\\n") + b"\n")
' "$out" >"$WORK/listener.log" 2>&1 &
	listener=$!
	wait_for_line "$WORK/listener.log" listening || {
		echo "the /dev/log listener did not start: $(cat "$WORK/listener.log")"
		return 1
	}
	start_server --audit syslog || return 1
	server_proc && echo "$SRV_PROC" >"$out.pid"
	run_client "$WORK/good.log"
	echo "$CLI_RC" >"$out.rc"
	run_client "$WORK/other.log" --cert other-client-cert.pem \
	    --key other-client-key.pem
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c . "$out")" -ge 5 ] && break
		nap 0.05
	done
	stop_server
	kill "$listener"
	wait "$listener" 2>/dev/null
	return 0
}

# clients_start N: N of our clients in the background; clients_wait: all
# of those started so far have ended.
PIDS=()
clients_start() {
	local i
	for ((i = 0; i < $1; i++)); do
		timeout 60 "$CLIENT" -p "$PORT" >/dev/null 2>&1 &
		PIDS+=($!)
	done
}
clients_wait() {
	[ "${#PIDS[@]}" -gt 0 ] && wait "${PIDS[@]}"
	PIDS=()
}
clients() {
	clients_start "$1"
	clients_wait
}

# 3. 50 clients at once.
run_concurrent() {
	AUDIT_MANY=$WORK/many.jsonl
	audit_server "$AUDIT_MANY"
	clients 50
	wait_count "$AUDIT_MANY" '"connection-closed"' 50 20
	stop_server
}

# 4. Rotation: 5 clients, then 20 at once while the file is renamed and
#    the server gets SIGHUP, then 5 after it has reopened: 30 connections,
#    90 lines, the first 15 in the old file, the last 15 in the new one.
run_rotation() {
	local i
	AUDIT_ROT=$WORK/rot.jsonl
	audit_server "$AUDIT_ROT"
	clients 5
	wait_count "$AUDIT_ROT" '"connection-closed"' 5
	clients_start 20
	mv "$AUDIT_ROT" "$AUDIT_ROT.1"
	server_proc && kill -HUP "$SRV_PROC"
	for ((i = 0; i < 100; i++)); do
		[ -e "$AUDIT_ROT" ] && break
		nap 0.05
	done
	clients_wait
	clients 5
	for ((i = 0; i < 100; i++)); do
		[ "$(cat "$AUDIT_ROT.1" "$AUDIT_ROT" 2>/dev/null |
		    grep -c connection-closed)" -ge 30 ] && break
		nap 0.05
	done
	stop_server
	ROT_SRV_LOG=$SRV_LOG
}

# 0. A trail that cannot be opened stops the server at start.
test_unwritable() {
	local out=$WORK/unwritable.log rc=0
	timeout 20 "$SERVER" -p 0 --audit "$WORK/no/such/dir" >"$out" 2>&1 || rc=$?
	if [ "$rc" -eq 1 ] &&
	    has "$out" "--audit $WORK/no/such/dir: No such file or directory"; then
		pass "--audit to a path that cannot be opened: exit 1 with the reason"
	else
		fail "--audit to a path that cannot be opened" "rc=$rc" "$out"
	fi
}

if [ "${1:-}" = --syslog-part ]; then
	hk_init
	syslog_part "$2"
	exit
fi

test_unwritable
if ! make_san_cert; then
	fail "a client certificate with SANs" "openssl failed" "$WORK/san/log"
	hk_summary
	exit 1
fi
run_good
run_refused
run_maxconn
run_concurrent
run_rotation
run_syslog

export AUDIT_GOOD AUDIT_BAD AUDIT_MANY AUDIT_ROT GOOD_SRV_LOG BAD_SRV_LOG \
    ROT_SRV_LOG GOOD_RC CURL_PORT MSG REPLY GOOD_PORT AUDIT_MAX MAX_PORT \
    MAX_RC MAX_SRV_LOG SYSLOG_OUT SYSLOG_RC SYSLOG_WHY HK_CERTS
SAN_SERIAL=$(x509_field -serial)
SAN_SHA256=$(x509_field -fingerprint -sha256)
SAN_SUBJECT=$(x509_field -subject -nameopt RFC2253)
SAN_ISSUER=$(x509_field -issuer -nameopt RFC2253)
SAN_NOT_AFTER=$(x509_field -enddate)
export SAN_SERIAL SAN_SHA256 SAN_SUBJECT SAN_ISSUER SAN_NOT_AFTER

relay_checks "$CHECKS" python3 "$HK_ROOT/tests/audit_check.py"
hk_summary
