#!/usr/bin/env bash
# tests/load_test.sh - the server under many concurrent mTLS clients, on
# loopback, in userspace TLS (no kernel TLS needed):
#   1. HK_LOAD_N (500) clients from one python3 asyncio loop: all
#      handshakes in flight at once, then all send, then all read, so
#      every one of the server's per-client threads is alive together;
#   2. HK_LOAD_N of our own hello_ktls_client processes started at once.
# Each wave must be served completely within HK_LOAD_SECS (120) s. After
# each, the server must be back where it started: the same open fds, its
# RSS within 2 MiB of the baseline, no per-client thread left.
# Prints each wave's timings and ends with "N passed, N failed".
#
# Standalone: bash tests/load_test.sh (makes its own certificates unless
# HK_CERTS names a directory of them, as tests/run_tests.sh sets).
set -u
. "$(dirname "$0")/lib.sh"
N=${HK_LOAD_N:-500}
LIMIT=${HK_LOAD_SECS:-120}
RSS_SLACK_KB=2048
# HK_LOAD_RSS=0 leaves out the RSS check, for runs under a sanitizer
# whose shadow memory grows with every thread it has seen.
CHECK_RSS=${HK_LOAD_RSS:-1}

if [ -z "${HK_CERTS:-}" ]; then
	HK_CERTS=$(mktemp -d "${TMPDIR:-/tmp}/hk-certs.XXXXXX")
	export HK_CERTS
	if ! bash "$HK_ROOT/tests/make_test_certs.sh" "$HK_CERTS" >"$HK_CERTS/make.log" 2>&1; then
		cat "$HK_CERTS/make.log"
		rm -rf "$HK_CERTS"
		echo "0 passed, 1 failed"
		exit 1
	fi
	OWN_CERTS=$HK_CERTS
fi
hk_init
trap 'stop_server; rm -rf "$WORK" ${OWN_CERTS:+"$OWN_CERTS"}' EXIT

# Each client process needs a few fds and the server one per client.
ulimit -n 4096 2>/dev/null || true

now_ms() { echo $(($(date +%s%N) / 1000000)); }

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" | wc -l; }
nhandlers() { client_threads "$1"; }

# settle PID: wait up to 10 s for the server's per-client threads to end.
settle() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(nhandlers "$1")" -eq 0 ] && return 0
		nap 0.1
	done
	return 1
}

# check_baseline WAVE: fds exactly, RSS within RSS_SLACK_KB, no handlers.
check_baseline() {
	local wave=$1 left rss fds i
	settle "$SPID"
	left=$(nhandlers "$SPID")
	check "$wave: no per-client thread left afterwards (found $left)" test "$left" -eq 0
	fds=$(nfds "$SPID")
	check "$wave: server fds back to the baseline ($fds, was $BASE_FDS)" \
	    test "$fds" -eq "$BASE_FDS"
	if [ "$CHECK_RSS" = 0 ]; then
		echo "# $wave: RSS not checked (HK_LOAD_RSS=0)"
		return
	fi
	# The server gives memory back once it has been idle for a second.
	for ((i = 0; i < 50; i++)); do
		rss=$(rss_kb "$SPID")
		[ "$rss" -le $((BASE_RSS + RSS_SLACK_KB)) ] && break
		nap 0.1
	done
	check "$wave: server RSS within 2 MiB of the baseline (${rss} kB, was ${BASE_RSS} kB)" \
	    test "$rss" -le $((BASE_RSS + RSS_SLACK_KB))
	echo "# $wave: server RSS ${BASE_RSS} -> ${rss} kB, fds ${BASE_FDS} -> ${fds}, handler threads $left"
}

# The server's one-line reports so far (none expected), for the log.
server_warnings() {
	grep '^hello_ktls_server: ' "$SRV_LOG" | sed 's/^/    | /' | tail -n 20
}

# Wave 1: one asyncio loop, three phases, each with its own barrier.
# Prints "ok N", the per-phase milliseconds, and one line per failure.
DRIVER='
import asyncio, ssl, sys, time
port, n, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
MSG = b"Hello from kTLS client! I have a valid certificate."
WANT = b"Hello from kTLS server! Your certificate was validated."
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile="ca-cert.pem")
ctx.load_cert_chain("client-cert.pem", "client-key.pem")

async def handshake(i):
    for attempt in range(3):
        try:
            return await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                server_hostname="localhost", ssl_handshake_timeout=limit)
        except OSError as e:
            err = e
    raise err

async def reply(r):
    data = b""
    while True:
        try:
            more = await r.read(4096)
        except (ssl.SSLError, ConnectionResetError) as e:
            # Data read before an unclean close still counts below.
            return data, repr(e)
        if not more:
            return data, None
        data += more

async def main():
    t = [time.monotonic()]
    conns = await asyncio.gather(*(handshake(i) for i in range(n)),
                                 return_exceptions=True)
    t.append(time.monotonic())
    live = [c for c in conns if not isinstance(c, BaseException)]
    for e in conns:
        if isinstance(e, BaseException):
            print("handshake failed:", repr(e))
    for r, w in live:
        w.write(MSG)
    await asyncio.gather(*(w.drain() for r, w in live))
    t.append(time.monotonic())
    got = await asyncio.gather(*(reply(r) for r, w in live))
    t.append(time.monotonic())
    ok = 0
    for data, err in got:
        if WANT in data:
            ok += 1
        else:
            print("bad reply:", data[:80], err)
    for r, w in live:
        w.close()
    print("ok", ok)
    print("ms handshake=%d send=%d read=%d total=%d" % tuple(
        int(1000 * x) for x in (t[1] - t[0], t[2] - t[1], t[3] - t[2], t[3] - t[0])))

asyncio.run(asyncio.wait_for(main(), limit))
'

wave_asyncio() {
	local out=$WORK/asyncio.log t0 ms ok
	t0=$(now_ms)
	timeout $((LIMIT + 10)) python3 -c "$DRIVER" "$PORT" "$N" "$LIMIT" >"$out" 2>&1
	ms=$(($(now_ms) - t0))
	ok=$(awk '$1 == "ok" { print $2 }' "$out")
	if [ "${ok:-0}" -eq "$N" ]; then
		pass "asyncio: all $N concurrent mTLS clients got the server's reply"
	else
		fail "asyncio: all $N concurrent clients served" "${ok:-0} of $N" "$out"
	fi
	check "asyncio: $N clients within ${LIMIT} s (${ms} ms)" test "$ms" -le $((LIMIT * 1000))
	echo "# asyncio wave: $(grep '^ms ' "$out")"
	settle "$SPID"
	check "asyncio: the server logged $N clean closes" \
	    test "$(grep -c '^\[.*\] Connection closed$' "$SRV_LOG")" -ge "$N"
	server_warnings
}

# Wave 2: our own client binary, N processes at once.
wave_processes() {
	local d=$WORK/procs i t0 ms ok before
	mkdir -p "$d"
	before=$(grep -c '^\[.*\] Connection closed$' "$SRV_LOG")
	t0=$(now_ms)
	for ((i = 0; i < N; i++)); do
		timeout "$LIMIT" "$CLIENT" -p "$PORT" --timeout 60 >"$d/$i.log" 2>&1 &
	done
	wait_clients
	ms=$(($(now_ms) - t0))
	ok=$(grep -l "Received from server: Hello from kTLS server! Your certificate was validated." \
	    "$d"/*.log | wc -l)
	if [ "$ok" -eq "$N" ]; then
		pass "processes: all $N concurrent hello_ktls_client runs got the reply"
	else
		fail "processes: all $N concurrent clients served" "$ok of $N" \
		    "$(grep -L 'Received from server' "$d"/*.log | head -n 1)"
	fi
	check "processes: $N clients within ${LIMIT} s (${ms} ms)" test "$ms" -le $((LIMIT * 1000))
	echo "# process wave: $N clients in ${ms} ms"
	# A thread logs its close after the client has gone: count when all
	# have ended, not when the clients have.
	settle "$SPID"
	check "processes: the server logged $N more clean closes" \
	    test "$(($(grep -c '^\[.*\] Connection closed$' "$SRV_LOG") - before))" -ge "$N"
	server_warnings
}

# wait for every background client, but not for the server.
wait_clients() {
	local p
	for p in $(jobs -p); do
		[ "$p" = "$SRV_PID" ] || wait "$p"
	done
}

start_server --max-connections $((N + 64)) --handshake-timeout 60 || {
	echo "0 passed, 1 failed"
	exit 1
}
server_proc || { fail "find the server's pid" "no child of $SRV_PID"; hk_summary; exit; }
SPID=$SRV_PROC
# A warm-up client: the baseline is after the first thread and handshake,
# so lazily loaded OpenSSL state does not count as a leak.
run_client "$WORK/warm.log"
check "warm-up client served" test "$CLI_RC" -eq 0
settle "$SPID"
BASE_RSS=$(rss_kb "$SPID")
BASE_FDS=$(nfds "$SPID")
echo "# baseline: server pid $SPID, RSS $BASE_RSS kB, $BASE_FDS fds"

wave_asyncio
check_baseline asyncio
wave_processes
check_baseline processes
check "the server is still running" kill -0 "$SPID"
stop_server
hk_summary
