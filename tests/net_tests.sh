#!/usr/bin/env bash
# tests/net_tests.sh - kTLS over a real network path, in the kTLS guest
# (tests/uml.sh --module veth --module sch_netem) or natively on a kernel
# with kTLS: the server in one network namespace, the client in another,
# joined by a veth pair; IPv4 and IPv6, MTU 1500 and 9000, and netem's
# delay, loss and reordering. Large transfers both ways (--bench down and
# up, --get with sendfile, --echo with --send-file, and on kernels that can
# rekey KeyUpdates during it) must arrive intact on kTLS both ways with no
# decrypt errors; then the path dies in the middle of a transfer, for less
# and for more than the idle timeout: the transfer completes, or both sides
# end with a clear error line in bounded time, never a hang.
# A kernel without network namespaces, veth or netem is a failure, not a
# skip. HK_ONLY='test_bench down' runs just the named calls (debugging).
set -u
. "$(dirname "$0")/lib.sh"
hk_init

require_ktls

NS_S=hk-srv-$$
NS_C=hk-cli-$$
DEV_S=veth-hks
DEV_C=veth-hkc
ADDR4_S=10.99.0.1 ADDR4_C=10.99.0.2
ADDR6_S=fd00:99::1 ADDR6_C=fd00:99::2
NET_UP=
CERTS=$WORK/certs
BULK=$WORK/bulk.bin
# Modest sizes: the guest's kTLS crypto runs at tens of MB/s, and a path
# with 1% loss and 10 ms of round trip at a few MB/s.
BENCH_BYTES=$((8 * 1024 * 1024))
GET_BYTES=$((4 * 1024 * 1024 + 4321))
ECHO_BYTES=$((3 * 1024 * 1024 + 777))

net_down() {
	[ -n "$NET_UP" ] || return 0
	ip netns del "$NS_C" 2>/dev/null
	ip netns del "$NS_S" 2>/dev/null
	NET_UP=
}
trap 'stop_server; net_down; rm -rf "$WORK"' EXIT

# setup_failed WHAT: the kernel (or the tools) cannot build the path; a
# failure, never a skip.
setup_failed() {
	echo "FAIL - network setup: $1"
	[ -s "$WORK/net.log" ] && sed 's/^/    | /' "$WORK/net.log" | tail -n 10
	echo "$PASSED passed, $((FAILED + 1)) failed"
	exit 1
}

# The two namespaces and the veth pair between them. In the UML guest
# /run (where ip netns keeps the names) is the host's, through hostfs:
# the guest gets a /run of its own, a tmpfs, so nothing lands on the host.
net_setup() {
	if grep -q '^vendor_id.*User Mode Linux' /proc/cpuinfo; then
		mount -t tmpfs -o mode=755 hk-run /run && mkdir /run/netns ||
		    setup_failed "cannot mount a tmpfs on /run in the guest"
	fi
	ip netns add "$NS_S" >"$WORK/net.log" 2>&1 && NET_UP=1 &&
	    ip netns add "$NS_C" >>"$WORK/net.log" 2>&1 ||
	    setup_failed "ip netns add failed (kernel without CONFIG_NET_NS?)"
	ip -n "$NS_S" link add "$DEV_S" type veth peer name "$DEV_C" netns "$NS_C" \
	    >>"$WORK/net.log" 2>&1 ||
	    setup_failed "ip link add type veth failed (no CONFIG_VETH, or veth not loaded?)"
	{
		ip -n "$NS_S" link set lo up &&
		    ip -n "$NS_C" link set lo up &&
		    ip -n "$NS_S" addr add "$ADDR4_S/24" dev "$DEV_S" &&
		    ip -n "$NS_C" addr add "$ADDR4_C/24" dev "$DEV_C" &&
		    ip -n "$NS_S" addr add "$ADDR6_S/64" dev "$DEV_S" nodad &&
		    ip -n "$NS_C" addr add "$ADDR6_C/64" dev "$DEV_C" nodad &&
		    ip -n "$NS_S" link set "$DEV_S" up &&
		    ip -n "$NS_C" link set "$DEV_C" up
	} >>"$WORK/net.log" 2>&1 || setup_failed "cannot address the veth pair (IPv6?)"
	tc -n "$NS_C" qdisc add dev "$DEV_C" root netem delay 1ms >>"$WORK/net.log" 2>&1 &&
	    tc -n "$NS_C" qdisc del dev "$DEV_C" root >>"$WORK/net.log" 2>&1 ||
	    setup_failed "tc qdisc netem failed (no CONFIG_NET_SCH_NETEM, or sch_netem not loaded?)"
	pass "two network namespaces, a veth pair, IPv4 and IPv6 addresses, netem"
}

# path MTU NETEM...: both ends at MTU, and the netem qdisc NETEM on both
# egresses (none when NETEM is empty).
path() {
	local mtu=$1 ns dev
	shift
	for ns in "$NS_S" "$NS_C"; do
		dev=$DEV_S
		[ "$ns" = "$NS_C" ] && dev=$DEV_C
		ip -n "$ns" link set "$dev" mtu "$mtu" || return 1
		tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null
		if [ $# -gt 0 ]; then
			tc -n "$ns" qdisc add dev "$dev" root netem "$@" || return 1
		fi
	done
	PATH_NAME="MTU $mtu${1:+, netem $*}"
}

# The server certificate names the veth addresses (the test CA's
# server-cert.pem has localhost, 127.0.0.1 and ::1 only).
make_certs() {
	cp -r "$HK_CERTS" "$CERTS" &&
	    "$HK_ROOT/hello_ktls_setup.sh" -o "$CERTS" issue net-server --cn net-server \
		--server --san "IP:$ADDR4_S" --san "IP:$ADDR6_S" >"$WORK/issue.log" 2>&1 ||
	    setup_failed "cannot issue a server certificate for $ADDR4_S and $ADDR6_S: $(tail -n 3 "$WORK/issue.log")"
	cd "$CERTS" || exit 1
}

# ns_stat NS NAME: a /proc/net/tls_stat counter of namespace NS (the
# counters are per network namespace).
ns_stat() {
	ip netns exec "$1" awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }' /proc/net/tls_stat
}

# decrypt_errors: TlsDecryptError of both namespaces, summed.
decrypt_errors() {
	echo $(($(ns_stat "$NS_S" TlsDecryptError) + $(ns_stat "$NS_C" TlsDecryptError)))
}

# srv ARGS...: our server in the server namespace, on all addresses and a
# free port; sets PORT, SRV_PID (timeout(1) in front of ip netns exec,
# which execs the server), SRV_LOG.
srv() {
	new_log SRV_LOG server
	timeout -k 20 300 ip netns exec "$NS_S" "$SERVER" -p 0 \
	    --cert net-server-cert.pem --key net-server-key.pem "$@" >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	wait_for_port "$SRV_LOG" 'Server listening on port '
}

# cli OUT SECS ADDR ARGS...: our client in the client namespace against
# ADDR:PORT, killed after SECS (a hang is then exit status 124); sets CLI_RC.
cli() {
	local out=$1 secs=$2 addr=$3
	shift 3
	CLI_RC=0
	timeout -k 5 "$secs" ip netns exec "$NS_C" "$CLIENT" -H "$addr" -p "$PORT" "$@" \
	    >"$out" 2>&1 || CLI_RC=$?
}

# Both directions of this connection in the kernel, as both sides say.
ktls_both() {
	has "$1" "kTLS TX: active (software)" && has "$1" "kTLS RX: active (software)"
}

# run_ok NAME ADDR [SERVER-ARGS...] -- CLIENT-ARGS...: a --once server and
# the client, both --ktls require; both exit 0 on kTLS both ways and no
# decrypt error is counted. Sets NAME_OK=1 on that, else reports the
# failure (the caller checks what the transfer itself must show).
run_ok() {
	local name=$1 addr=$2 err0 err1
	local -a sargs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		sargs+=("$1")
		shift
	done
	shift
	RUN_OK=
	err0=$(decrypt_errors)
	srv --once --ktls require "${sargs[@]}" || { fail "$name" "server did not start"; return; }
	cli "$WORK/c.log" 120 "$addr" --ktls require "$@"
	wait_server
	err1=$(decrypt_errors)
	if [ "$CLI_RC" -ne 0 ] || [ "$SRV_RC" -ne 0 ]; then
		fail "$name" "exit codes client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	elif ! ktls_both "$WORK/c.log" || ! ktls_both "$SRV_LOG"; then
		fail "$name" "not on kTLS both ways on both sides" "$WORK/c.log" "$SRV_LOG"
	elif [ "$err1" -ne "$err0" ]; then
		fail "$name" "TlsDecryptError $err0 -> $err1" "$WORK/c.log" "$SRV_LOG"
	else
		RUN_OK=1
	fi
}

# test_bench ADDR down|up: --bench over the path, the byte count checked
# on both sides (the receiver compares every byte with the pattern).
test_bench() {
	local addr=$1 dir=$2 name
	name="$PATH_NAME, $addr: --bench $dir $BENCH_BYTES bytes"
	run_ok "$name" "$addr" -- --bench "$BENCH_BYTES" --direction "$dir"
	[ -n "$RUN_OK" ] || return
	if grep -q "^BENCH side=server dir=$dir bytes=$BENCH_BYTES .*path=ktls-sw" "$WORK/c.log" &&
	    grep -q "^BENCH side=client dir=$dir bytes=$BENCH_BYTES .*path=ktls-sw" "$WORK/c.log"; then
		pass "$name, kTLS both ends"
	else
		fail "$name" "BENCH lines wrong" "$WORK/c.log"
	fi
}

# test_get ADDR: --get of a multi-MB file, sent with sendfile through
# kTLS TX; compared by sha256.
test_get() {
	local addr=$1 name
	name="$PATH_NAME, $addr: --get $GET_BYTES bytes with sendfile"
	mkdir -p "$WORK/root"
	[ -f "$WORK/root/big.bin" ] || head -c "$GET_BYTES" /dev/urandom >"$WORK/root/big.bin"
	rm -f "$WORK/got.bin"
	run_ok "$name" "$addr" --root "$WORK/root" -- --get big.bin -o "$WORK/got.bin"
	[ -n "$RUN_OK" ] || return
	if [ "$(sha256sum <"$WORK/root/big.bin")" = "$(sha256sum <"$WORK/got.bin" 2>/dev/null)" ] &&
	    has "$SRV_LOG" "Sent big.bin ($GET_BYTES bytes) with sendfile (kTLS TX)" &&
	    has "$WORK/c.log" "Received $GET_BYTES bytes into $WORK/got.bin (ktls-sw)"; then
		pass "$name, sha256 equal"
	else
		fail "$name" "file differs, or not sent with sendfile" "$WORK/c.log" "$SRV_LOG"
	fi
}

# test_echo ADDR [rekey]: --send-file through an --echo server, compared
# by the client and by sha256; with rekey (TLS 1.3, kernels that can),
# both sides send a KeyUpdate every few hundred KiB during the transfer.
test_echo() {
	local addr=$1 rekey=${2:-} name sent recv
	local -a sargs=(--echo) cargs=()
	name="$PATH_NAME, $addr: --echo --send-file $ECHO_BYTES bytes"
	if [ -n "$rekey" ]; then
		sargs+=(--tls-version 1.3 --key-update-bytes 256K)
		cargs+=(--tls-version 1.3 --key-update-bytes 200K)
		name="$name, KeyUpdates every 200/256 KiB"
	fi
	rm -f "$WORK/back.bin"
	run_ok "$name" "$addr" "${sargs[@]}" -- "${cargs[@]}" \
	    --send-file "$BULK" --output "$WORK/back.bin"
	[ -n "$RUN_OK" ] || return
	sent=$(sed -n 's/^TLS 1.3 key updates: sent \([0-9]*\).*/\1/p' "$WORK/c.log")
	recv=$(sed -n 's/^TLS 1.3 key updates: sent [0-9]*, received \([0-9]*\)/\1/p' "$WORK/c.log")
	if [ "$(sha256sum <"$BULK")" != "$(sha256sum <"$WORK/back.bin" 2>/dev/null)" ] ||
	    ! has "$SRV_LOG" "Echoed $ECHO_BYTES bytes"; then
		fail "$name" "the echo differs or the count is wrong" "$WORK/c.log" "$SRV_LOG"
	elif [ -n "$rekey" ] && { [ "${sent:-0}" -lt 10 ] || [ "${recv:-0}" -lt 8 ]; }; then
		fail "$name" "client sent ${sent:-0} and received ${recv:-0} KeyUpdates" "$WORK/c.log"
	else
		pass "$name, sha256 equal${rekey:+ (client sent $sent KeyUpdates, received $recv)}"
	fi
}

# test_stats ADDR: --stats names the veth interface the route goes out of.
test_stats() {
	local addr=$1 name
	name="$PATH_NAME, $addr: --stats names the veth interface"
	run_ok "$name" "$addr" --stats -- --stats --bench 1M
	[ -n "$RUN_OK" ] || return
	if grep -q "^Interface: $DEV_C: " "$WORK/c.log" && ! grep -q '^Interface: lo' "$WORK/c.log" &&
	    grep -q "\] Interface: $DEV_S: " "$SRV_LOG"; then
		pass "$name ($(grep '^Interface:' "$WORK/c.log"))"
	else
		fail "$name" "no Interface: $DEV_C line" "$WORK/c.log" "$SRV_LOG"
	fi
}

# transfers ADDR: everything that must arrive intact over the path.
transfers() {
	test_bench "$1" down
	test_bench "$1" up
	test_get "$1"
	test_echo "$1"
	if can_rekey; then
		test_echo "$1" rekey
	fi
	case $PATH_NAME in *netem*) test_netem_acted ;; esac
}

# test_netem_acted: the impairment was real, netem dropped packets of the
# transfers above on both ends (its counters start anew with each path).
test_netem_acted() {
	local ns dev n out=
	for ns in "$NS_S" "$NS_C"; do
		dev=$DEV_S
		[ "$ns" = "$NS_C" ] && dev=$DEV_C
		n=$(tc -s -n "$ns" qdisc show dev "$dev" | sed -n 's/.*(dropped \([0-9]*\),.*/\1/p')
		out="$out $dev dropped ${n:-?}"
		[ "${n:-0}" -gt 0 ] || { fail "$PATH_NAME: netem dropped packets" "$dev: ${n:-no count}"; return; }
	done
	pass "$PATH_NAME: netem dropped packets ($out )"
}

# outage HOW on|off: the path dies (HOW link: the client's end of the veth
# goes down, both ways dead; HOW loss: netem drops every packet both
# ways) or comes back.
outage() {
	local how=$1 state=$2 ns dev
	if [ "$how" = link ] && [ "$state" = on ]; then
		ip -n "$NS_C" link set "$DEV_C" down
		return
	elif [ "$how" = link ]; then
		# Down flushed the IPv6 address (keep_addr_on_down is 0).
		ip -n "$NS_C" link set "$DEV_C" up &&
		    ip -n "$NS_C" addr replace "$ADDR6_C/64" dev "$DEV_C" nodad
		return
	fi
	for ns in "$NS_S" "$NS_C"; do
		dev=$DEV_S
		[ "$ns" = "$NS_C" ] && dev=$DEV_C
		if [ "$state" = on ]; then
			tc -n "$ns" qdisc change dev "$dev" root netem loss 100%
		else
			tc -n "$ns" qdisc change dev "$dev" root netem rate "$OUTAGE_RATE"
		fi
	done
}

# bytes_moved PID: bytes in and out of the server's veth end so far,
# read in the network namespace of process PID (/proc/PID/net/dev: no
# fork).
bytes_moved() {
	local line f
	while read -r line; do
		[[ $line == "$DEV_S:"* ]] || continue
		read -r -a f <<<"${line#*:}"
		echo $((f[0] + f[8]))
		return
	done <"/proc/$1/net/dev" 2>/dev/null
	echo 0
}

# test_outage ADDR DIR HOW SECS: a --bench DIR over a rate-limited path
# (so that it lasts several seconds) dies in the middle: HOW (link or
# loss) for SECS seconds, against idle timeouts of IDLE seconds on both
# sides. Shorter than IDLE: the transfer completes, intact. SECS 0 (the
# path stays dead): both sides end with the timeout's error line within
# a bound (timeout(1) around the client is the hang detector: exit 124).
OUTAGE_RATE=20mbit
OUTAGE_BYTES=$((16 * 1024 * 1024))
test_outage() {
	local addr=$1 dir=$2 how=$3 secs=$4 idle name tpid i t0 rc=0 log base
	local t t_cli t_srv t_err bound
	idle=$([ "$secs" -eq 0 ] && echo 3 || echo 12)
	# The timeout, the close's 2 s linger, a margin. (A blocking kTLS
	# write() or sendfile() waited out SO_SNDTIMEO several times: senders
	# took 3 to 6 times their timeout to give up; see ktls_io.c.)
	bound=$((idle + 2 + 4))
	name="$addr: --bench $dir, the path dies ($how) in the middle"
	if [ "$secs" -eq 0 ]; then
		name="$name for good, idle timeouts ${idle} s: both sides give up with an error"
	else
		name="$name for $secs s, idle timeouts ${idle} s: the transfer completes"
	fi
	path 1500 rate "$OUTAGE_RATE" || { fail "$name" "cannot set up netem rate"; return; }
	srv --once --ktls require --idle-timeout "$idle" && server_proc ||
	    { fail "$name" "server did not start"; return; }
	base=$(bytes_moved "$SRV_PROC")
	new_log log client
	timeout -k 5 60 ip netns exec "$NS_C" "$CLIENT" -H "$addr" -p "$PORT" --ktls require \
	    --timeout "$idle" --bench "$OUTAGE_BYTES" --direction "$dir" >"$log" 2>&1 &
	tpid=$!
	# In the middle: a quarter of the bytes have moved (at 20 Mbit/s,
	# about 2 s in); bounded, the transfer may not start at all.
	for ((i = 0; i < 400; i++)); do
		kill -0 "$tpid" 2>/dev/null || break
		[ "$(bytes_moved "$SRV_PROC")" -gt $((base + OUTAGE_BYTES / 4)) ] && break
		nap 0.05
	done
	if [ "$i" -ge 400 ] || ! kill -0 "$tpid" 2>/dev/null; then
		fail "$name" "the transfer never got a quarter of the way (or ended early)" "$log" "$SRV_LOG"
		outage "$how" off
		wait "$tpid"
		stop_server
		return
	fi
	t0=$SECONDS
	outage "$how" on
	if [ "$secs" -gt 0 ]; then
		nap "$secs"    # the outage itself: a duration, not a wait
		outage "$how" off
	fi
	# Both sides' ends, timed from the cut (each poll stays inside bash).
	t_cli='' t_srv='' t_err=''
	for ((i = 0; i < 70 * 20; i++)); do
		[ -z "$t_err" ] && has "$log" "timed out" && t_err=$((SECONDS - t0))
		[ -z "$t_cli" ] && ! kill -0 "$tpid" 2>/dev/null && t_cli=$((SECONDS - t0))
		[ -z "$t_srv" ] && ! kill -0 "$SRV_PID" 2>/dev/null && t_srv=$((SECONDS - t0))
		[ -n "$t_cli" ] && [ -n "$t_srv" ] && break
		nap 0.05
	done
	wait "$tpid" || rc=$?
	if [ -z "$t_srv" ]; then
		fail "$name" "the server still runs 70 s after the cut (a hang)" "$log" "$SRV_LOG"
		[ "$secs" -eq 0 ] && outage "$how" off
		stop_server
		return
	fi
	wait_server
	[ "$secs" -eq 0 ] && outage "$how" off
	t=$t_cli
	if [ "$secs" -gt 0 ]; then
		if [ "$rc" -eq 0 ] && [ "$SRV_RC" -eq 0 ] &&
		    grep -q "^BENCH side=client dir=$dir bytes=$OUTAGE_BYTES .*path=ktls-sw" "$log" &&
		    grep -q "^BENCH side=server dir=$dir bytes=$OUTAGE_BYTES .*path=ktls-sw" "$log"; then
			pass "$name (${t} s after the cut)"
		else
			fail "$name" "exit codes client=$rc server=$SRV_RC" "$log" "$SRV_LOG"
		fi
		return
	fi
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "$name" "the client hung: killed by timeout(1) after 60 s" "$log" "$SRV_LOG"
	elif [ "$rc" -ne 1 ] || [ "$SRV_RC" -ne 1 ] || [ "$t_cli" -gt "$bound" ] ||
	    [ "$t_srv" -gt "$bound" ]; then
		fail "$name" "exit codes client=$rc server=$SRV_RC after $t_cli/$t_srv s, want 1 and 1 within $bound s" "$log" "$SRV_LOG"
	elif ! grep -q "^hello_ktls_client: $addr:$PORT: .*timed out waiting for the peer" "$log" ||
	    ! grep -q "timed out waiting for the peer" "$SRV_LOG"; then
		fail "$name" "no 'timed out waiting for the peer' line on both sides" "$log" "$SRV_LOG"
	else
		pass "$name (after the cut: client error ${t_err:-?} s, exit $t_cli s; server exit $t_srv s)"
		grep '^hello_ktls_client:' "$log" | tail -n 1 | sed 's/^/    client: /'
		grep 'timed out' "$SRV_LOG" | sed 's/^/    server: /'
	fi
}

net_setup
make_certs
head -c "$ECHO_BYTES" /dev/urandom >"$BULK"
if [ -n "${HK_ONLY:-}" ]; then
	path 1500
	eval "$HK_ONLY"
	hk_summary
	exit
fi

path 1500 && test_stats "$ADDR4_S" && transfers "$ADDR4_S"
path 9000 && transfers "$ADDR6_S"
path 1500 delay 5ms 2ms loss 1% reorder 5% && transfers "$ADDR6_S"
path 9000 delay 5ms 2ms loss 1% reorder 5% && transfers "$ADDR4_S"
test_outage "$ADDR4_S" down link 3
test_outage "$ADDR6_S" up loss 3
test_outage "$ADDR4_S" down link 0
test_outage "$ADDR6_S" up loss 0
can_rekey || echo "# kernel $(uname -r) cannot rekey kTLS: no KeyUpdate transfers here (the sid guest runs them)"
hk_summary
