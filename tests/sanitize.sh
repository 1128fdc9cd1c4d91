#!/usr/bin/env bash
# tests/sanitize.sh - the programs under the sanitizers and valgrind:
#   1. a normal build (-O2 -g) of a copy of this tree; one end-to-end
#      run of `hello_ktls_server --once` and `hello_ktls_client`, both
#      under valgrind memcheck: no errors and no definite leaks;
#   2. the same copy rebuilt with clang -fsanitize=address,undefined;
#      the unit tests (tests/test_pool too), tests/nic_probe, tests/host_tests.sh,
#      tests/audit_tests.sh and tests/metrics_tests.sh run on those
#      binaries. Any sanitizer report, from any process, is a failure;
#   3. rebuilt with clang -fsanitize=thread: tests/nic_probe (threads
#      sharing the NIC feature cache the server's threads share),
#      tests/test_pool (the client threads handed client after client),
#      tests/host_tests.sh, tests/audit_tests.sh (the trail's lock and
#      SIGHUP reopen), tests/metrics_tests.sh (the status thread reading
#      the counters and the context) and the load test (HK_TSAN_LOAD_N,
#      default 200, concurrent clients, each in its own server thread;
#      its RSS check is left out, TSan's shadow memory grows with every
#      thread). Any
#      ThreadSanitizer report fails.
# Sanitizer reports go to files (log_path), not to stderr, so the tests
# that check stderr text are not disturbed and reports from children
# whose stderr a test throws away are still seen.
#
# LeakSanitizer checks at exit(): the server returns from main after
# SIGTERM, having joined its client threads, so its serving code is
# leak-checked as well as every client run.
#
# Needs clang with its sanitizer runtimes (Debian: clang, libclang-rt-*-dev
# on newer releases), valgrind, python3, openssl. Prints "N passed, N failed".
set -u
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/tests/lib.sh"
SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined'
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hk-san.XXXXXX")
TREE=$TMP/tree
REPORTS=$TMP/reports
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TREE" "$REPORTS"
# lib.sh's nap (used by wait_for_port) reads this FIFO; hk_init is not used.
mkfifo "$TMP/.nap" && exec 9<>"$TMP/.nap"

# The working tree as it is (uncommitted edits included), minus objects.
tar -C "$SRC" --exclude=.git --exclude=.cache --exclude='*.o' -cf - . | tar -C "$TREE" -xf -

export HK_CERTS=$TMP/certs
if ! bash "$TREE/tests/make_test_certs.sh" "$HK_CERTS" >"$TMP/certs.log" 2>&1; then
	fail "test certificates" "make_test_certs.sh failed" "$TMP/certs.log"
	hk_summary
	exit 1
fi

# build NAME MAKE-ARGS...: a clean build of the copy.
build() {
	local name=$1
	shift
	if make -C "$TREE" -f Makefile.ktls clean >/dev/null &&
	    make -C "$TREE" -f Makefile.ktls "$@" all tests/test_ktls_keys \
	    tests/test_record_seq tests/test_offload tests/test_resume tests/nic_probe \
	    tests/test_pool >"$TMP/build.log" 2>&1; then
		pass "$name build"
	else
		fail "$name build" "make failed" "$TMP/build.log"
		hk_summary
		exit 1
	fi
}

# --- valgrind: one conversation, both sides under memcheck -------------
VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite
    --error-exitcode=99 --trace-children=no)

valgrind_e2e() {
	local s=$TMP/vg-server.log c=$TMP/vg-client.log pid src=0 crc=0
	cd "$HK_CERTS" || return
	# Generous deadlines: everything runs 20-50 times slower.
	timeout 300 "${VG[@]}" "$TREE/hello_ktls_server" --once -p 0 \
	    --handshake-timeout 120 >"$s" 2>&1 &
	pid=$!
	if ! wait_for_port_long "$s"; then
		kill "$pid" 2>/dev/null
		fail "valgrind: server starts" "no port" "$s"
		return
	fi
	timeout 240 "${VG[@]}" "$TREE/hello_ktls_client" -p "$PORT" --timeout 120 \
	    >"$c" 2>&1 || crc=$?
	wait "$pid" || src=$?
	check "valgrind: client exits 0, no memcheck errors or definite leaks (rc $crc)" \
	    test "$crc" -eq 0
	check "valgrind: --once server exits 0, no memcheck errors or definite leaks (rc $src)" \
	    test "$src" -eq 0
	if has "$c" "Received from server: Hello from kTLS server!" &&
	    has "$s" "Received from client: Hello from kTLS client!"; then
		pass "valgrind: the hello exchange completed"
	else
		fail "valgrind: the hello exchange completed" "messages missing" "$c" "$s"
	fi
	[ "$crc$src" = 00 ] || sed 's/^/    | /' "$c" "$s" | grep -E '==[0-9]+==' | head -n 60
	cd "$TMP" || return
}

# lib.sh's wait_for_port gives up after 20 s; valgrind can need more.
wait_for_port_long() {
	local i
	for ((i = 0; i < 6; i++)); do
		wait_for_port "$1" 'Server listening on port ' 2>/dev/null && return 0
	done
	return 1
}

# --- sanitizers: the unit and host tests -------------------------------
# The host suite's one timing bound (a good client served within 1 s
# while 400 slow ones wait) is checked on the normal build by `check`;
# instrumented binaries run several times slower, so here it is 5 s.
# run_suite NAME LOG COMMAND...: pass when it exits 0 with "0 failed".
# $UNDER names the sanitizers.
run_suite() {
	local name=$1 log=$2 rc=0 line
	shift 2
	"$@" >"$log" 2>&1 || rc=$?
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ] && [[ $line == *" 0 failed" ]]; then
		pass "$name under $UNDER: ${line##*: }"
	else
		fail "$name under $UNDER" "exit $rc, '${line:-no result line}'"
		grep -E -A3 '^FAIL' "$log" | head -n 40 | sed 's/^/    | /'
	fi
}

sanitized_tests() {
	UNDER=ASan/UBSan
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$REPORTS/asan"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan"
	export LSAN_OPTIONS="log_path=$REPORTS/lsan"
	run_suite "unit tests (tests/test_ktls_keys)" "$TMP/unit.log" "$TREE/tests/test_ktls_keys"
	run_suite "unit tests (tests/test_record_seq)" "$TMP/seq.log" "$TREE/tests/test_record_seq"
	run_suite "unit tests (tests/test_offload)" "$TMP/offload.log" "$TREE/tests/test_offload"
	run_suite "unit tests (tests/test_resume)" "$TMP/resume.log" "$TREE/tests/test_resume"
	run_suite "tests/nic_probe" "$TMP/nic.log" "$TREE/tests/nic_probe"
	run_suite "unit tests (tests/test_pool)" "$TMP/pool.log" "$TREE/tests/test_pool"
	# The copied tests/ find the sanitized binaries through their own lib.sh.
	run_suite "host system tests (tests/host_tests.sh)" "$TMP/host.log" \
	    env HK_SLOW_LIMIT_MS=5000 bash "$TREE/tests/host_tests.sh"
	run_suite "--audit trail (tests/audit_tests.sh)" "$TMP/audit.log" \
	    bash "$TREE/tests/audit_tests.sh"
	run_suite "--status metrics (tests/metrics_tests.sh)" "$TMP/metrics.log" \
	    bash "$TREE/tests/metrics_tests.sh"
	unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
	# Reports in the log files, or on a stderr a test kept.
	local hits
	hits=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
	    "$REPORTS"/* "$TMP"/unit.log "$TMP"/offload.log "$TMP"/nic.log \
	    "$TMP"/host.log 2>/dev/null)
	if [ -z "$hits" ]; then
		pass "no AddressSanitizer, LeakSanitizer or UBSan report from any process"
	else
		fail "sanitizer reports" "$(echo "$hits" | wc -l) file(s)"
		for f in $hits; do
			echo "    === ${f##*/}"
			grep -A 25 -E 'ERROR: |runtime error:' "$f" | head -n 40 | sed 's/^/    | /'
		done
	fi
}

# --- ThreadSanitizer: the server's threads -----------------------------
# OpenSSL itself is not instrumented; its locks are still seen, and so
# is every access of ours to state the threads share.
tsan_tests() {
	UNDER=TSan
	export TSAN_OPTIONS="halt_on_error=1:log_path=$REPORTS/tsan"
	run_suite "tests/nic_probe" "$TMP/tsan-nic.log" "$TREE/tests/nic_probe"
	run_suite "the client threads (tests/test_pool)" "$TMP/tsan-pool.log" \
	    "$TREE/tests/test_pool"
	run_suite "host system tests (tests/host_tests.sh)" "$TMP/tsan-host.log" \
	    env HK_SLOW_LIMIT_MS=5000 bash "$TREE/tests/host_tests.sh"
	run_suite "--audit trail (tests/audit_tests.sh)" "$TMP/tsan-audit.log" \
	    bash "$TREE/tests/audit_tests.sh"
	run_suite "--status metrics (tests/metrics_tests.sh)" "$TMP/tsan-metrics.log" \
	    bash "$TREE/tests/metrics_tests.sh"
	run_suite "load test, ${HK_TSAN_LOAD_N:-200} clients at once" "$TMP/tsan-load.log" \
	    env HK_LOAD_N="${HK_TSAN_LOAD_N:-200}" HK_LOAD_RSS=0 bash "$TREE/tests/load_test.sh"
	unset TSAN_OPTIONS
	local hits
	hits=$(grep -lE 'WARNING: ThreadSanitizer|ERROR: ThreadSanitizer' \
	    "$REPORTS"/tsan* "$TMP"/tsan-*.log 2>/dev/null)
	if [ -z "$hits" ]; then
		pass "no ThreadSanitizer report from any process"
	else
		fail "ThreadSanitizer reports" "$(echo "$hits" | wc -l) file(s)"
		for f in $hits; do
			echo "    === ${f##*/}"
			grep -A 30 'ThreadSanitizer' "$f" | head -n 50 | sed 's/^/    | /'
		done
	fi
}

build "normal (-O2 -g)"
valgrind_e2e
build "clang ASan/UBSan" CC=clang CFLAGS="-O1 -g $SAN" LDFLAGS="$SAN"
sanitized_tests
build "clang TSan" CC=clang CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread"
tsan_tests
hk_summary
