# tests/lib.sh - helpers for the system tests: run the real binaries,
# check exit codes and output, count results. Sourced, not run.
#
# Each test script sets up with hk_init, reports with pass/fail, and
# ends with hk_summary, which prints "N passed, N failed".

HK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER=$HK_ROOT/hello_ktls_server
CLIENT=$HK_ROOT/hello_ktls_client
PASSED=0
FAILED=0
SRV_PID=
SRV_LOG=
PORT=
LOGS=0

hk_init() {
	: "${HK_CERTS:?HK_CERTS must name the test certificate directory}"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/hk-test.XXXXXX")
	trap 'stop_server; rm -rf "$WORK"' EXIT
	# A FIFO nobody writes to: read -t on it is a sleep without a fork.
	mkfifo "$WORK/.nap" && exec 9<>"$WORK/.nap"
	cd "$HK_CERTS" || exit 1
}

# require_ktls: a kernel suite on a kernel without kTLS is one failure,
# never a skip.
require_ktls() {
	[ -e /proc/net/tls_stat ] && return 0
	echo "FAIL - this kernel has no kTLS (/proc/net/tls_stat missing)"
	echo "0 passed, 1 failed"
	exit 1
}

# stat_get NAME: a /proc/net/tls_stat counter (0 where there is none).
stat_get() {
	local name value
	[ -r /proc/net/tls_stat ] || { echo 0; return; }
	while read -r name value; do
		[ "$name" = "$1" ] && echo "$value" && return
	done </proc/net/tls_stat
	echo 0
}

# can_rekey: this kernel can change a kTLS key (Linux 6.14+).
can_rekey() { grep -q '^TlsTxRekeyOk' /proc/net/tls_stat 2>/dev/null; }

# In the UML guest every fork and exec costs tens of milliseconds, so
# the helpers polled in loops stay inside bash.
nap() { read -r -t "$1" -u 9 _ || true; }

# Each result line ends with the seconds since the previous one.
LAST=$SECONDS
took() {
	TOOK="[$((SECONDS - LAST)) s]"
	LAST=$SECONDS
}

pass() {
	PASSED=$((PASSED + 1))
	took
	echo "ok - $1 $TOOK"
}

# fail NAME WHY [LOG...]: report, then show the logs that explain it.
fail() {
	local name=$1 why=$2 f
	shift 2
	FAILED=$((FAILED + 1))
	took
	echo "FAIL - $name: $why $TOOK"
	for f in "$@"; do
		[ -f "$f" ] && sed 's/^/    | /' "$f" | tail -n 40
	done
	return 0
}

# check NAME CONDITION-COMMAND... : pass if the command succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "$*"; fi
}

has() {
	local text=
	[ -r "$1" ] || return 1
	IFS= read -r -d '' text <"$1"
	[[ $text == *"$2"* ]]
}

# wait_for_line FILE TEXT: up to 5 s for another process to write TEXT.
wait_for_line() {
	local i
	for ((i = 0; i < 100; i++)); do
		has "$1" "$2" && return 0
		nap 0.05
	done
	return 1
}

# client_threads PID: how many threads the server PID has serving clients
# (it names them hk-client), without a fork.
client_threads() {
	local f name n=0
	for f in /proc/"$1"/task/*/comm; do
		# A thread may end between the glob and the read.
		{ read -r name <"$f"; } 2>/dev/null && [ "$name" = hk-client ] && n=$((n + 1))
	done
	echo "$n"
}

# server_proc: the server process itself (start_server's $! is the
# timeout(1) in front of it); sets SRV_PROC, waiting up to 5 s for it.
server_proc() {
	local i c
	SRV_PROC=
	for ((i = 0; i < 100; i++)); do
		c=
		read -r c _ <"/proc/$SRV_PID/task/$SRV_PID/children" 2>/dev/null
		[ -n "$c" ] && { SRV_PROC=$c; return 0; }
		nap 0.05
	done
	return 1
}

# wait_clients N: up to 5 s until the server serves exactly N clients
# (its hk-client threads).
wait_clients() {
	local i
	server_proc || return 1
	for ((i = 0; i < 100; i++)); do
		[ "$(client_threads "$SRV_PROC")" -eq "$1" ] && return 0
		nap 0.05
	done
	return 1
}

# wait_count FILE TEXT N [SECS]: up to SECS (5) s until TEXT stands N
# times in FILE (counted inside bash: no fork per poll).
wait_count() {
	local i n text rest
	for ((i = 0; i < ${4:-5} * 20; i++)); do
		text=
		[ -r "$1" ] && IFS= read -r -d '' text <"$1"
		n=0 rest=$text
		while [[ $rest == *"$2"* ]]; do
			rest=${rest#*"$2"}
			n=$((n + 1))
		done
		[ "$n" -ge "$3" ] && return 0
		nap 0.05
	done
	return 1
}

# wait_long FILE TEXT SECS: wait_for_line for up to SECS (a multiple of 5)
# seconds, for peers that start slowly (python3 in a loaded UML guest).
wait_long() {
	local i
	for ((i = 0; i < $3 / 5; i++)); do
		wait_for_line "$1" "$2" && return 0
	done
	return 1
}

# new_log VAR NAME: set VAR to a fresh file name. A background job
# creates its log only when it starts, so reusing a name could show the
# last run's contents. (Not $(...): the count must survive the call.)
new_log() {
	LOGS=$((LOGS + 1))
	printf -v "$1" '%s/%s.%d.log' "$WORK" "$2" "$LOGS"
}

# start_server ARGS...: our server on a free port; sets PORT, SRV_PID, SRV_LOG.
start_server() {
	new_log SRV_LOG server
	# Bounded: a test that never connects must not hang the suite.
	timeout -k 20 300 "$SERVER" -p 0 "$@" >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	wait_for_port "$SRV_LOG" 'Server listening on port '
}

# wait_for_port LOG PREFIX: up to 20 s for PREFIX<port> in LOG; sets PORT.
wait_for_port() {
	local i text re="(^|"$'\n'")$2([0-9]+)"$'\n'
	PORT=
	for ((i = 0; i < 400; i++)); do
		text=
		[ -r "$1" ] && IFS= read -r -d '' text <"$1"
		if [[ $text =~ $re ]]; then
			PORT=${BASH_REMATCH[2]}
			return 0
		fi
		nap 0.05
	done
	echo "server did not start:" >&2
	cat "$1" >&2
	return 1
}

# stop_server: SIGTERM, and the server must be gone within 20 s, or it is
# killed and that is a failure, not a hang. One exception, seen under
# ASan on loaded machines: LeakSanitizer's exit check stalls, its tracer
# child waiting for a stop that never comes (the server has already left
# main). That is the sanitizer's, not ours: said, killed, not counted.
stop_server() {
	local i proc= tracer=0 line
	[ -n "$SRV_PID" ] || return 0
	read -r proc _ <"/proc/$SRV_PID/task/$SRV_PID/children" 2>/dev/null
	kill "$SRV_PID" 2>/dev/null
	for ((i = 0; i < 400; i++)); do
		[ -n "$proc" ] && [ -e "/proc/$proc" ] || { proc=; break; }
		nap 0.05
	done
	if [ -n "$proc" ]; then
		while read -r line; do
			[[ $line == TracerPid:* ]] && tracer=${line##*[[:space:]]}
		done <"/proc/$proc/status" 2>/dev/null
		kill -KILL "$proc" 2>/dev/null
		if [ "$tracer" != 0 ] && [ -n "${ASAN_OPTIONS:-}" ]; then
			echo "# note: the server's LeakSanitizer exit check stalled (tracer $tracer); killed, its leak check lost"
		else
			fail "the server exits at SIGTERM" \
			    "still running 20 s after SIGTERM, killed" "$SRV_LOG"
		fi
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# wait_server: wait for a --once server; sets SRV_RC.
wait_server() {
	SRV_RC=0
	wait "$SRV_PID" || SRV_RC=$?
	SRV_PID=
}

# run_client OUT ARGS...: our client against PORT; sets CLI_RC.
run_client() {
	local out=$1
	shift
	CLI_RC=0
	timeout 60 "$CLIENT" -p "$PORT" "$@" >"$out" 2>&1 || CLI_RC=$?
}

# served NAME ARGS...: the client (run with ARGS) gets the server's hello
# and exits 0; with HK_SERVED_TEXT set, it also prints that.
served() {
	local name=$1
	shift
	run_client "$WORK/c.log" "$@"
	if [ "$CLI_RC" -eq 0 ] && has "$WORK/c.log" "$HELLO_C" &&
	    { [ -z "${HK_SERVED_TEXT-}" ] || has "$WORK/c.log" "$HK_SERVED_TEXT"; }; then
		pass "$name"
	else
		fail "$name" "rc=$CLI_RC, want 0 ${HK_SERVED_TEXT-}" "$WORK/c.log" \
		    "$SRV_LOG"
	fi
}

# start_error NAME RC TEXT ARGS...: the server, started with ARGS, exits
# RC before listening, with exactly one "hello_ktls_server: " line that
# holds TEXT.
start_error() {
	local name=$1 want=$2 text=$3 rc=0
	shift 3
	timeout 10 "$SERVER" -p 0 "$@" >"$WORK/e.log" 2>&1 || rc=$?
	if [ "$rc" -eq "$want" ] && has "$WORK/e.log" "$text" &&
	    [ "$(grep -c '^hello_ktls_server: ' "$WORK/e.log")" -eq 1 ] &&
	    ! has "$WORK/e.log" "Server listening"; then
		pass "$name"
	else
		fail "$name" "rc=$rc, want $want and one line '$text'" "$WORK/e.log"
	fi
}

# idle_clients N LOG: N mTLS clients (tests/idle_peer.py ... serve) that
# hold their connections past the handshake, sending nothing, until
# idle_clients_go; then each sends a hello, reads the answer and closes
# with close_notify. LOG gets "held N failed F", later "served K".
idle_clients() {
	local hold=$WORK/idle.$$.hold
	rm -f "$hold" && mkfifo "$hold" || return 1
	timeout 120 python3 "$HK_ROOT/tests/idle_peer.py" "$PORT" "$1" "$1" 100 serve \
	    <"$hold" >"$2" 2>&1 &
	exec {IDLE_FD}>"$hold"
	rm -f "$hold"
}

idle_clients_go() { exec {IDLE_FD}>&-; }

# relay_checks WANT COMMAND...: run a checker that prints "ok - NAME" and
# "FAIL - NAME: WHY" lines; each becomes a pass or a fail here, its other
# lines are shown. A checker that crashes, or checks other than WANT
# things, is a failure too.
relay_checks() {
	local want=$1 rc=0 line results=0
	shift
	"$@" >"$WORK/check.log" 2>&1 || rc=$?
	while IFS= read -r line; do
		# A checker of lib.sh's own adds its time: pass and fail add ours.
		[[ $line == "ok - "* || $line == "FAIL - "* ]] && line=${line% \[*s\]}
		case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"FAIL - "*) line=${line#FAIL - } && fail "${line%%: *}" "${line#*: }" ;;
		*) echo "    | $line" && continue ;;
		esac
		results=$((results + 1))
	done <"$WORK/check.log"
	[ "$rc" -eq 0 ] && [ "$results" -eq "$want" ] ||
	    fail "${*##*/}" "exit $rc, $results results, want $want"
}

# client_refused NAME SERVER_SAYS CLIENT_SAYS ARGS...: our client exits 1
# saying CLIENT_SAYS, and the server logs SERVER_SAYS (its client thread
# may log a moment after the client ends). The client's output: $WORK/bad.log.
client_refused() {
	local name=$1 srv_says=$2 cli_says=$3 out=$WORK/bad.log
	shift 3
	run_client "$out" "$@"
	if [ "$CLI_RC" -eq 1 ] && has "$out" "$cli_says" &&
	    wait_for_line "$SRV_LOG" "$srv_says"; then
		pass "$name"
	else
		fail "$name" "client rc=$CLI_RC, want 1 and '$cli_says'; server log wants '$srv_says'" "$out" "$SRV_LOG"
	fi
}

# A free TCP port for peers that cannot pick their own and report it: a
# random one no socket here is bound to (/proc/net/tcp*, read without a
# fork: python3 for this took seconds in the UML guest). The race with
# another program taking it meanwhile is the same as for bind(0).
free_port() {
	local p hex line f taken
	while :; do
		p=$((20000 + RANDOM % 30000))
		printf -v hex ':%04X ' "$p"
		taken=
		for f in /proc/net/tcp /proc/net/tcp6; do
			[ -r "$f" ] || continue
			while IFS= read -r line; do
				# "  sl  local_address rem_address ...": local is field 2.
				line=${line#*: }
				[[ ${line%% *} == *"${hex% }" ]] && { taken=1; break; }
			done <"$f"
			[ -n "$taken" ] && break
		done
		[ -z "$taken" ] && { echo "$p"; return 0; }
	done
}

# A suite kTLS has no cipher for (TLS 1.2 CBC, on both sides: the
# server's default list has none) stays in userspace on every kernel:
# the cipher is checked before the socket is touched, so the reason is
# the same with kTLS or without. --ktls auto talks in userspace, --ktls
# require exits 1 with that reason. host_tests.sh and kernel_tests.sh
# both run it; they set HELLO_C and HELLO_S.
test_no_kernel_cipher() {
	local cbc=ECDHE-ECDSA-AES128-SHA256 tx rx need
	local -a suite=(--tls-version 1.2 --ciphers "$cbc")
	tx='kTLS TX: unavailable (kept in userspace with RX)'
	rx="kTLS RX: unavailable (kernel TLS has no cipher for $cbc)"
	need="kTLS required but RX stayed in userspace: kernel TLS has no cipher for $cbc"
	start_server --once "${suite[@]}"
	run_client "$WORK/c.log" "${suite[@]}"
	wait_server
	if [ "$CLI_RC" -eq 0 ] && [ "$SRV_RC" -eq 0 ] &&
	    has "$WORK/c.log" "Cipher: $cbc" && has "$WORK/c.log" "$tx" &&
	    has "$WORK/c.log" "$rx" && has "$SRV_LOG" "$tx" && has "$SRV_LOG" "$rx" &&
	    has "$WORK/c.log" "$HELLO_C" && has "$SRV_LOG" "$HELLO_S"; then
		pass "TLS 1.2 $cbc, auto: no kernel cipher, both sides talk in userspace"
	else
		fail "TLS 1.2 $cbc, auto" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi

	start_server --once "${suite[@]}"
	run_client "$WORK/c.log" --ktls require "${suite[@]}"
	wait_server
	if [ "$CLI_RC" -eq 1 ] && [ "$SRV_RC" -eq 1 ] && has "$WORK/c.log" "$need" &&
	    has "$SRV_LOG" "client closed before sending a message"; then
		pass "TLS 1.2 $cbc, require (client): exits 1 with the reason"
	else
		fail "TLS 1.2 $cbc, require (client)" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi

	start_server --once --ktls require "${suite[@]}"
	run_client "$WORK/c.log" "${suite[@]}"
	wait_server
	if [ "$SRV_RC" -eq 1 ] && [ "$CLI_RC" -eq 1 ] && has "$SRV_LOG" "$need"; then
		pass "TLS 1.2 $cbc, require (server): the --once server exits 1 with the reason"
	else
		fail "TLS 1.2 $cbc, require (server)" "rc client=$CLI_RC server=$SRV_RC" "$WORK/c.log" "$SRV_LOG"
	fi
}

# test_resumption V MODE [SERVER-ARGS...]: openssl s_client resumes its
# first connection's ticket on a second one (-sess_out, -sess_in), our
# server with --ktls MODE (and SERVER-ARGS); with require, the resumed
# connection must run on kTLS too.
# two_sessions V LOG1 LOG2: two s_client connections to $PORT, the second
# offering the session (TLS 1.3: ticket) the first one got, if it got one
# (s_client saves a TLS 1.3 session only from a ticket); each stays until
# the reply is in (and with it TLS 1.3's tickets).
two_sessions() {
	local v=$1 sess=$WORK/sess.pem n log
	local reply='Hello from kTLS server! Your certificate was validated.'
	rm -f "$sess"
	for n in 1 2; do
		local -a io=(-sess_out "$sess")
		log=$2
		[ "$n" -eq 2 ] && io=() log=$3
		[ "$n" -eq 2 ] && [ -s "$sess" ] && io=(-sess_in "$sess")
		(printf 'Hello %s\n' "$n"; wait_for_line "$log" "$reply") |
		    timeout 30 openssl s_client -connect "127.0.0.1:$PORT" \
		    -cert client-cert.pem -key client-key.pem -CAfile ca-cert.pem \
		    "-tls${v/./_}" "${io[@]}" >"$log" 2>&1
	done
}

test_resumption() {
	local v=$1 mode=$2 name log1 log2
	local reply='Hello from kTLS server! Your certificate was validated.'
	shift 2
	name="TLS $v session resumption (--ktls $mode${1:+ $*})"
	new_log log1 s_client
	new_log log2 s_client
	start_server --ktls "$mode" --tls-version "$v" "$@"
	two_sessions "$v" "$log1" "$log2"
	wait_count "$SRV_LOG" "Connection closed" 2
	stop_server
	if has "$log1" "New, TLSv$v" && has "$log2" "Reused, TLSv$v" &&
	    has "$log2" "$reply" && has "$SRV_LOG" "Session: resumed" &&
	    { [ "$mode" != require ] ||
	    [ "$(grep -c 'kTLS RX: active' "$SRV_LOG")" -eq 2 ]; }; then
		pass "$name: the second connection resumed, served"
	else
		fail "$name" "see the logs" "$log1" "$log2" "$SRV_LOG"
	fi
}

# --session-tickets off: no ticket, so the second connection is a full
# handshake again (TLS 1.2: no RFC 5077 ticket and no session cache).
test_no_tickets() {
	local v=$1 log1 log2
	local reply='Hello from kTLS server! Your certificate was validated.'
	new_log log1 s_client
	new_log log2 s_client
	start_server --tls-version "$v" --session-tickets off
	two_sessions "$v" "$log1" "$log2"
	wait_count "$SRV_LOG" "Connection closed" 2
	stop_server
	if has "$SRV_LOG" "Session tickets: off (no resumption)" &&
	    ! has "$log1" "Session Ticket arrived" &&
	    has "$log1" "New, TLSv$v" && has "$log2" "New, TLSv$v" &&
	    has "$log2" "$reply" && ! has "$SRV_LOG" "Session: resumed"; then
		pass "TLS $v --session-tickets off: no resumption, both served"
	else
		fail "TLS $v --session-tickets off" "see the logs" "$log1" "$log2" "$SRV_LOG"
	fi
}

# openssl_ktls_conf FILE: an openssl.cnf that is the distribution's own
# plus "Options = KTLS" in its system default section, as kTLS guides tell
# administrators to add; point OPENSSL_CONF at it. Re-opening a section
# adds to it, so the distribution's settings there (CipherString) stay.
openssl_ktls_conf() {
	local dir
	dir=$(openssl version -d | sed -n 's/^OPENSSLDIR: "\(.*\)"$/\1/p')
	printf '%s\n' ".include $dir/openssl.cnf" '[openssl_init]' 'ssl_conf = ssl_sect' \
	    '[ssl_sect]' 'system_default = system_default_sect' '[system_default_sect]' \
	    'Options = KTLS' >"$1"
}

# test_openssl_ktls_conf V MODE: with OPENSSL_CONF asking for OpenSSL's own
# kTLS (see openssl_ktls_conf), both programs at --ktls MODE and TLS V still
# exchange the messages, say that OpenSSL's kTLS is off, and, where the
# kernel has kTLS and MODE is not off, run both directions on this module's
# kTLS. Without the rule, OpenSSL put the "tls" ULP on the socket first:
# lost messages, a --once server that never exits, "already has a
# different ULP". host_tests.sh and kernel_tests.sh both run it; they set
# HELLO_C and HELLO_S.
test_openssl_ktls_conf() {
	local v=$1 mode=$2 name="OPENSSL_CONF with Options = KTLS, TLS $1, --ktls $2"
	local i notice="kTLS: OpenSSL's own kTLS (Options = KTLS in openssl.cnf) is turned off"
	local why=
	openssl_ktls_conf "$WORK/ktls-openssl.cnf"
	export OPENSSL_CONF=$WORK/ktls-openssl.cnf
	start_server --once --ktls "$mode" --tls-version "$v"
	run_client "$WORK/c.log" --ktls "$mode" --tls-version "$v"
	unset OPENSSL_CONF
	# Bounded: the --once server must end after its one client.
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		nap 0.05
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then
		why="the --once server still runs 10 s after its client"
		stop_server
	else
		wait_server
		[ "$SRV_RC" -eq 0 ] && [ "$CLI_RC" -eq 0 ] ||
		    why="exit codes client=$CLI_RC server=$SRV_RC"
	fi
	if [ -z "$why" ]; then
		if ! has "$WORK/c.log" "$HELLO_C" || ! has "$SRV_LOG" "$HELLO_S"; then
			why="messages lost"
		elif ! has "$WORK/c.log" "$notice" || ! has "$SRV_LOG" "$notice"; then
			why="no line saying OpenSSL's kTLS is off"
		elif [ "$mode" != off ] && [ -e /proc/net/tls_stat ] &&
		    ! { has "$WORK/c.log" "kTLS TX: active (software)" &&
		        has "$WORK/c.log" "kTLS RX: active (software)" &&
		        has "$SRV_LOG" "kTLS TX: active (software)" &&
		        has "$SRV_LOG" "kTLS RX: active (software)"; }; then
			why="this module's kTLS is not active in both directions"
		fi
	fi
	if [ -n "$why" ]; then
		fail "$name" "$why" "$WORK/c.log" "$SRV_LOG"
	else
		pass "$name: exchange intact, OpenSSL's own kTLS said to be off"
	fi
}

hk_summary() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
