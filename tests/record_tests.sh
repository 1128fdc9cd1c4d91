#!/usr/bin/env bash
# tests/record_tests.sh - our server against a careful peer (tests/record_peer.py)
# that uses the record layer's freedoms: handshake messages fragmented down to
# one byte per record (the TLS 1.2 Finished included), coalesced flights, TLS
# 1.3 KeyUpdates with bad values or cut across records, records a server must
# refuse after the handshake, and TLS 1.2 renegotiation attempts. Every
# scenario is its own connection to one server, which must go on serving.
#
#   record_tests.sh          in userspace (--ktls off), on any kernel
#   record_tests.sh kernel   with --ktls require, on a kernel with kTLS
#
# The expected answers are OpenSSL's in userspace and RFC 8446/5246's; where
# the kernel cannot tell a case apart (below), the kTLS path's answer is
# pinned as what it is, so that a change shows.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

MODE=${1:-user}
[ "$MODE" = kernel ] && require_ktls
PEER=$HK_ROOT/tests/record_peer.py
PEER_LOG=$WORK/peer.log


if [ "$MODE" = kernel ]; then
	KTLS=require
	# After the handshake the kernel decrypts, and it reports a TLS 1.3
	# record with no content type (all-zero inner plaintext) and a record
	# too short to be protected (a plaintext CCS) as EBADMSG, the errno of
	# a failed decryption; there is no per-socket way to tell them apart,
	# so the peer gets bad_record_mac where RFC 8446 5.2 / 5.4 ask for
	# unexpected_message (README, Limitations).
	NOTYPE=bad_record_mac
	RENEG_FRAG="expect-alert:warning:no_renegotiation data:y close"
	# Application data between two pieces of a renegotiation ClientHello:
	# RFC 5246 6.2.1 allows interleaving, and the kTLS path refuses the
	# renegotiation and delivers the data (OpenSSL 3.0 in userspace ends
	# the connection instead).
	RENEG_SPLIT="expect-alert:warning:no_renegotiation expect-data:zz data:y close"
	if can_rekey; then
		KU_FRAG="data:y keyupdate:1 data:z close"
		# Linux 6.14+ also stops decrypting TLS 1.2 at a handshake
		# record starting with byte 24 (the peer's renegotiation
		# ClientHello puts one at a record start) and takes no TLS 1.2
		# key again: the server refuses the renegotiation, then ends
		# (README, Limitations).
		RENEG_FRAG="expect-alert:warning:no_renegotiation expect-alert:fatal:internal_error"
	else
		# Before Linux 6.14 no kTLS key can change: a clean end.
		KU_FRAG="expect-alert:fatal:internal_error"
	fi
else
	KTLS=off
	NOTYPE=unexpected_message
	RENEG_FRAG="expect-alert:warning:no_renegotiation data:y close"
	RENEG_SPLIT="expect-alert:fatal:unexpected_message"
	KU_FRAG="data:y keyupdate:1 data:z close"
fi

# name | scenario (see tests/record_peer.py). The first group must leave
# TlsDecryptError untouched: a wrong sequence number would raise it.
GOOD="
TLS 1.2 Finished and every handshake message in 1-byte records|1.2 frag=1 data:hello bigdata:70000 close
TLS 1.2 ChaCha20, 5-byte records, coalesced flights|1.2 suite=ECDHE-ECDSA-CHACHA20-POLY1305 frag=5 coalesce data:hello close
TLS 1.2 AES-256-GCM, whole flights in one record|1.2 suite=ECDHE-ECDSA-AES256-GCM-SHA384 coalesce data:x close
TLS 1.3 client flight in 1-byte records|1.3 frag=1 data:hello bigdata:70000 close
TLS 1.3 ChaCha20, 7-byte records, coalesced|1.3 suite=TLS_CHACHA20_POLY1305_SHA256 frag=7 coalesce data:x close
TLS 1.2 renegotiation ClientHello: warning no_renegotiation, then data|1.2 data:x reneg expect-alert:warning:no_renegotiation data:y close
TLS 1.2 renegotiation ClientHello with renegotiation_info in 3-byte records|1.2 frag=3 data:x reneg-ri $RENEG_FRAG
"
BAD="
TLS 1.3 KeyUpdate request 2: illegal_parameter|1.3 data:x keyupdate:2 expect-alert:fatal:illegal_parameter
TLS 1.3 KeyUpdate request 255 in 2-byte records: illegal_parameter|1.3 frag=2 data:x keyupdate:255 expect-alert:fatal:illegal_parameter
TLS 1.3 KeyUpdate in 1-byte records|1.3 frag=1 data:x keyupdate:0 $KU_FRAG
TLS 1.3 data inside a fragmented KeyUpdate: unexpected_message|1.3 data:x keyupdate-data:zz expect-alert:fatal:unexpected_message
TLS 1.3 record without a content type: $NOTYPE|1.3 data:x zerotype expect-alert:fatal:$NOTYPE
TLS 1.3 ChangeCipherSpec after the handshake: $NOTYPE|1.3 data:x ccs expect-alert:fatal:$NOTYPE
TLS 1.2 renegotiation ClientHello split around application data|1.2 data:x reneg-data:zz $RENEG_SPLIT
the server still serves a plain client|1.3 data:still-here close
"

# run_peer GROUP: one peer process for all of GROUP's scenarios (a Python
# start costs seconds in the UML guest); then one result per scenario.
run_peer() {
	local names=() scenarios=() name scen i line
	while IFS='|' read -r name scen; do
		[ -n "$name" ] || continue
		names+=("$name")
		scenarios+=("$scen")
	done <<<"$1"
	timeout 600 python3 "$PEER" --timeout 20 "$PORT" "${scenarios[@]}" >"$PEER_LOG" 2>&1
	for i in "${!names[@]}"; do
		line="$((i + 1)) done ok"
		if has "$PEER_LOG" "$line"; then
			pass "${names[$i]} ($KTLS)"
		else
			grep "^$((i + 1)) \|^SCENARIO $((i + 1)):" "$PEER_LOG" >"$WORK/one.log"
			fail "${names[$i]} ($KTLS)" "scenario $((i + 1)) did not pass" \
			    "$WORK/one.log" "$SRV_LOG"
		fi
	done
}

start_server --echo --ktls "$KTLS" --idle-timeout 30
err0=$(stat_get TlsDecryptError)
run_peer "$GOOD"
if [ "$MODE" = kernel ]; then
	err1=$(stat_get TlsDecryptError)
	if [ "$err1" -eq "$err0" ]; then
		pass "no decrypt errors with fragmented handshakes (TlsDecryptError $err0)"
	else
		fail "no decrypt errors with fragmented handshakes" \
		    "TlsDecryptError $err0 -> $err1" "$SRV_LOG"
	fi
	# Each of the seven connections had both directions in the kernel.
	n=$(grep -c 'kTLS RX: active (software)' "$SRV_LOG")
	if [ "$n" -ge 7 ]; then
		pass "every good connection ran kTLS RX ($n)"
	else
		fail "every good connection ran kTLS RX" "$n of 7" "$SRV_LOG"
	fi
fi
run_peer "$BAD"
if kill -0 "$SRV_PID" 2>/dev/null; then
	pass "the server is still running after every refusal"
else
	fail "the server is still running after every refusal" "it exited" "$SRV_LOG"
fi
stop_server
hk_summary
