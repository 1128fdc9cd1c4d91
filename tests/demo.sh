#!/usr/bin/env bash
# tests/demo.sh - what `make -f Makefile.ktls demo` shows: the server and
# the client talking, with both sides' output. Where this kernel has no
# kTLS, the same demo then runs in a User-Mode Linux guest that has it.
set -u
cd "$(dirname "$0")/.." || exit 1

demo() {
	local log port i rc
	log=$(mktemp)
	./hello_ktls_server --once -p 0 >"$log" 2>&1 &
	local pid=$!
	for i in $(seq 100); do
		port=$(sed -n 's/^Server listening on port //p' "$log")
		[ -n "$port" ] && break
		sleep 0.05
	done
	echo "----- client -----"
	./hello_ktls_client -p "${port:-8443}"
	rc=$?
	wait "$pid" || rc=1
	echo "----- server -----"
	cat "$log"
	rm -f "$log"
	return "$rc"
}

if [ "${1:-}" = --here ]; then
	demo
	exit
fi
echo "===== on this machine's kernel ($(uname -r)) ====="
demo || exit 1
if [ ! -e /proc/net/tls_stat ]; then
	echo
	echo "===== this kernel has no kTLS: the same demo in a User-Mode Linux guest ====="
	bash tests/uml.sh -- bash tests/demo.sh --here
fi
