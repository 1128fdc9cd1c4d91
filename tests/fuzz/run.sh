#!/usr/bin/env bash
# tests/fuzz/run.sh - libFuzzer on every parser of bytes from outside:
#   fuzz_proto    request, reply and STATS lines (hk_proto.c)
#   fuzz_records  kTLS handshake and alert records (ktls_io.c)
#   fuzz_keylog   keylog lines (ktls_keys.c)
#   fuzz_config   the command line and sizes (hk_config.c)
# For each: build with clang's ASan and UBSan, replay every input in
# tests/fuzz/regress/<name>/ (past crashes), then fuzz for FUZZ_SECONDS
# (default 15) from generated seeds plus the corpus kept in
# tests/fuzz/out/. A new crash is copied to regress/<name>/ so that it is
# replayed from then on: commit it with the fix it called for (or, if the
# harness was wrong, fix the harness and delete it). Needs clang with its
# runtime (Debian: libclang-rt-14-dev). Ends with "N passed, N failed";
# exits 1 on a failure.
set -u
cd "$(dirname "$0")/../.." || exit 1

SECS=${FUZZ_SECONDS:-15}
FUZZ_CC=${FUZZ_CC:-clang}
OUT=tests/fuzz/out
REGRESS=tests/fuzz/regress
CFLAGS=(-g -O1 "-fsanitize=fuzzer,address,undefined"
	-fno-sanitize-recover=undefined -D_GNU_SOURCE -std=c11 -I.
	-Wall -Wextra -Werror)
LIBS=(-lssl -lcrypto)
PASSED=0
FAILED=0

declare -A SOURCES=(
	[proto]="hk_proto.c"
	[records]="ktls_io.c ktls_keys.c ktls_derive.c ktls_syscalls.c"
	[keylog]="ktls_keys.c ktls_derive.c ktls_io.c ktls_syscalls.c"
	[config]="hk_config.c"
)
HARNESSES=(proto records keylog config)

pass() { PASSED=$((PASSED + 1)); echo "ok - fuzz_$1: $2"; }

# fail NAME WHY [LOG]: report, then the end of LOG without libFuzzer's
# progress lines.
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL - fuzz_$1: $2"
	[ -n "${3:-}" ] && [ -f "$3" ] &&
		grep -Ev '^(#|INFO|    (NEW|REDUCE|pulse))' "$3" | tail -n 40 | sed 's/^/    | /'
	return 0
}

# seed NAME FILE PRINTF-FORMAT: one seed input, bytes as printf makes them
# (use \xHH for binary: \0NNN would swallow following digits).
seed() {
	# shellcheck disable=SC2059
	printf "$3" >"$OUT/corpus/$1/seed-$2"
}

# args NAME FILE ARG...: an argv for fuzz_config, NUL-separated.
args() {
	local name=$1 file=$2
	shift 2
	printf '%s\0' "$@" >"$OUT/corpus/$name/seed-$file"
}

seeds() {
	local h cr=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
	local s32=a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0
	# A TLS 1.3 NewSessionTicket: lifetime, age_add, nonce; ticket, no extensions.
	local body1='\x00\x00\x1c\x20\x01\x02\x03\x04\x08NONCE123' # 17 bytes
	local body2='\x00\x10TICKETTICKETTICK\x00\x00'                   # 20 bytes
	local nst="\\x04\\x00\\x00\\x25$body1$body2"                    # 41 bytes
	for h in "${HARNESSES[@]}"; do mkdir -p "$OUT/corpus/$h"; done

	seed proto get 'HKTLS/1 GET index.html'
	seed proto get-deep 'HKTLS/1 GET a/b/../c.txt'
	seed proto bench-down 'HKTLS/1 BENCH DOWN 1048576 sendfile'
	seed proto bench-rw 'HKTLS/1 BENCH DOWN 4096 readwrite'
	seed proto bench-up 'HKTLS/1 BENCH UP 536870912'
	seed proto ok 'HKTLS/1 OK 1234'
	seed proto err 'HKTLS/1 ERR x: leaves the served directory'
	seed proto stats 'HKTLS/1 STATS 1048576 0.012345 0.001000 0.010000 ktls-sw-sendfile'
	seed proto hello 'Hello from kTLS client! I have a valid certificate.'

	# Records: flags (1 TLS 1.3, 2 secrets, 4 TX on), then [type][len][bytes]
	# with type 0 alert, 1 handshake, 2 data, 3 other.
	seed records close-notify '\x05\x00\x02\x01\x00'
	seed records close-notify-split '\x05\x00\x01\x01\x00\x01\x00'
	seed records fatal-alert '\x05\x00\x02\x02\x28'
	seed records alert-too-long '\x05\x00\x03\x01\x00\x00'
	seed records nst "\\x07\\x01\\x29$nst\\x02\\x03abc\\x00\\x02\\x01\\x00"
	seed records nst-split "\\x07\\x01\\x02\\x04\\x00\\x01\\x02\\x00\\x25\\x01\\x11$body1\\x01\\x14$body2"
	seed records nst-two "\\x05\\x01\\x52$nst$nst\\x00\\x02\\x01\\x00"
	seed records key-update '\x07\x01\x05\x18\x00\x00\x01\x00'
	seed records key-update-request '\x07\x01\x05\x18\x00\x00\x01\x01'
	seed records key-update-bad '\x07\x01\x05\x18\x00\x00\x01\x02'
	seed records key-update-split '\x07\x01\x02\x18\x00\x01\x02\x00\x01\x01\x01\x00'
	seed records key-update-mid '\x07\x01\x09\x18\x00\x00\x01\x00\x04\x00\x00\x00'
	seed records key-update-tls12 '\x04\x01\x05\x18\x00\x00\x01\x00'
	seed records hello-request '\x04\x01\x04\x00\x00\x00\x00\x02\x02hi\x00\x02\x01\x00'
	seed records hello-request-tls13 '\x05\x01\x04\x00\x00\x00\x00'
	seed records unknown-type '\x05\x03\x02\x01\x00'

	seed keylog client "\\x00CLIENT_TRAFFIC_SECRET_0 $cr $s32\\nSERVER_TRAFFIC_SECRET_0 $cr $s32$s32"
	seed keylog server "\\x01SERVER_TRAFFIC_SECRET_0 $cr $s32$s32$s32\\nCLIENT_TRAFFIC_SECRET_0 $cr $s32"
	seed keylog others "\\x00CLIENT_HANDSHAKE_TRAFFIC_SECRET $cr $s32\\nEXPORTER_SECRET $cr $s32\\nCLIENT_RANDOM $cr $s32$s32$s32"
	seed keylog bad-hex "\\x00CLIENT_TRAFFIC_SECRET_0 $cr ${s32}zz\\nSERVER_TRAFFIC_SECRET_0 $cr abc"

	args config get --port 8443 --host localhost --get /etc/passwd -o -
	args config server -p 0 --once --echo --root /tmp --zerocopy-sendfile -b ::1
	args config bench --bench 512M --direction both --bench-path readwrite
	args config keys --key-update-bytes 1M --tls-version 1.3 --ktls require \
		--stats --rx-expect-no-pad --timeout=5
	args config ciphers --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 \
		--ciphersuites TLS_AES_128_GCM_SHA256 --cert c.pem --key k.pem --ca ca.pem
	args config send-file --send-file big.bin --output echo.bin --message hi
	args config exclusive --send-file x --get y
	args config help -h
	args config version --version
	args config bad --tls-version 1.1 -x extra
	args config crl --crl crls --crl-check chain --crl-grace 1h --revocation soft
	args config crl-grace --crl x --crl-grace 3650000d
}

# build NAME: tests/fuzz/out/fuzz_NAME
build() {
	local h=$1
	# shellcheck disable=SC2086
	"$FUZZ_CC" "${CFLAGS[@]}" -o "$OUT/fuzz_$h" "tests/fuzz/fuzz_$h.c" \
		${SOURCES[$h]} "${LIBS[@]}" >"$OUT/build_$h.log" 2>&1
}

# keep NAME: copy new crash inputs into regress/NAME/; prints their names.
keep() {
	local h=$1 f
	mkdir -p "$REGRESS/$h"
	for f in "$OUT/artifacts/$h"/*; do
		[ -f "$f" ] || continue
		cp "$f" "$REGRESS/$h/" && echo "$REGRESS/$h/${f##*/}"
		rm -f "$f"
	done
}

fuzz() {
	local h=$1 bin=$OUT/fuzz_$1 log=$OUT/fuzz_$1.log inputs kept runs
	if ! build "$h"; then
		fail "$h" "build failed" "$OUT/build_$h.log"
		return
	fi
	inputs=()
	[ -d "$REGRESS/$h" ] && mapfile -t inputs < <(find "$REGRESS/$h" -type f | sort)
	if [ ${#inputs[@]} -gt 0 ] &&
		! "$bin" "${inputs[@]}" >"$OUT/replay_$h.log" 2>&1; then
		fail "$h" "a regression input in $REGRESS/$h crashes again" \
			"$OUT/replay_$h.log"
		return
	fi
	mkdir -p "$OUT/artifacts/$h"
	if ! "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$OUT/artifacts/$h/" \
		"$OUT/corpus/$h" >"$log" 2>&1; then
		kept=$(keep "$h" | tr '\n' ' ')
		fail "$h" "crashed; input kept as ${kept:-(none written)}" "$log"
		return
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	pass "$h" "${runs:-?} runs in $SECS s, ${#inputs[@]} regression inputs replayed"
}

if ! [[ $SECS =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: FUZZ_SECONDS must be a whole number of seconds, not '$SECS'" >&2
	exit 2
fi
mkdir -p "$OUT"
cat >"$OUT/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d, (void)n; return 0; }
EOF
if ! "$FUZZ_CC" "${CFLAGS[@]}" -o "$OUT/probe" "$OUT/probe.c" >"$OUT/probe.log" 2>&1; then
	echo "FAIL - $FUZZ_CC cannot build libFuzzer targets" \
		"(Debian: apt-get install clang libclang-rt-14-dev)"
	sed 's/^/    | /' "$OUT/probe.log" | tail -n 5
	echo "0 passed, ${#HARNESSES[@]} failed"
	exit 1
fi
seeds
for h in "${HARNESSES[@]}"; do
	fuzz "$h"
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
