#!/usr/bin/env bash
# tests/install_tests.sh - installing and operating: `make install
# DESTDIR=... PREFIX=/usr` lays out exactly the expected files with their
# modes, the installed programs run, uninstall removes them; both man
# pages render without a groff warning and name every option their
# program's --help lists, and no other (so they cannot drift); the
# systemd unit passes `systemd-analyze verify` and its offline security
# review, and the server starts with the unit's own ExecStart options
# (paths moved to this test's), answers a client and a scrape on the
# unit's --status socket, and survives `systemctl reload`'s SIGHUP.
set -u
. "$(dirname "$0")/lib.sh"
hk_init

MAKE=(make -s -C "$HK_ROOT" -f Makefile.ktls)

# The files and modes of an install with PREFIX=/usr.
EXPECTED='644 usr/lib/modules-load.d/hello_ktls.conf
644 usr/lib/systemd/system/hello_ktls_server.service
644 usr/share/doc/hello_ktls/README.md
644 usr/share/doc/hello_ktls/hello_ktls_server.default
644 usr/share/man/man1/hello_ktls_client.1
644 usr/share/man/man8/hello_ktls_server.8
755 usr/bin/hello_ktls_client
755 usr/bin/hello_ktls_setup.sh
755 usr/sbin/hello_ktls_server'

test_layout() {
	local d=$WORK/destdir got v
	"${MAKE[@]}" install DESTDIR="$d" PREFIX=/usr >"$WORK/install.log" 2>&1 ||
	    { fail "install: make install" "failed" "$WORK/install.log"; return; }
	got=$(cd "$d" && find . -type f -printf '%m %P\n' | sort)
	if [ "$got" = "$(sort <<<"$EXPECTED")" ]; then
		pass "install: DESTDIR=... PREFIX=/usr lays out exactly the expected files and modes"
	else
		echo "$got" >"$WORK/got.txt"
		fail "install: the layout" "differs from the expected one" "$WORK/got.txt"
	fi
	v=$("$d/usr/sbin/hello_ktls_server" --version 2>&1)
	check "install: the installed server runs (--version: $v)" \
	    like "$v" 'hello_ktls_server 1.0.0 (OpenSSL *'
	v=$("$d/usr/bin/hello_ktls_client" --version 2>&1)
	check "install: the installed client runs (--version: $v)" \
	    like "$v" 'hello_ktls_client 1.0.0 (OpenSSL *'
	check "install: the unit runs the installed server" \
	    grep -qx 'ExecStart=/usr/sbin/hello_ktls_server --port 8443 \\' \
	    "$d/usr/lib/systemd/system/hello_ktls_server.service"
	"${MAKE[@]}" uninstall DESTDIR="$d" PREFIX=/usr >"$WORK/uninstall.log" 2>&1
	got=$(find "$d" -type f | wc -l)
	check "install: uninstall removes every file ($got left)" [ "$got" -eq 0 ]
}

like() { [[ $1 == $2 ]]; }

# man_renders PAGE: man -l formats it (exit 0, some text).
man_renders() {
	local out
	out=$(MANWIDTH=80 man -l "$1" 2>/dev/null) && [ -n "$out" ]
}

# reopened FILE: the new audit FILE has lines, and the server still runs.
reopened() { [ -s "$1" ] && kill -0 "$SRV_PROC" 2>/dev/null; }

# options TEXT-FILE: every --long and -s option named in it, sorted, unique.
options() {
	grep -oE -- '(^|[^a-zA-Z0-9-])--?[a-z][a-z0-9-]*' "$1" |
	    grep -oE -- '--?[a-z][a-z0-9-]*$' | sort -u
}

# test_man PROG PAGE: renders cleanly, and its options are --help's.
test_man() {
	local prog=$1 page=$HK_ROOT/man/$2 name=$2
	groff -man -Tutf8 -ww "$page" >/dev/null 2>"$WORK/groff.err"
	check "man $name: groff -man -ww renders it without a warning" [ ! -s "$WORK/groff.err" ]
	check "man $name: man -l renders it" man_renders "$page"
	# Plain ASCII, so that \- is a hyphen, unhyphenated and unwrapped;
	# only the OPTIONS section (the examples name other programs' options).
	groff -man -rHY=0 -rLL=300n -Tascii -P-cbou "$page" 2>/dev/null |
	    sed -n '/^OPTIONS/,/^[A-Z]/p' >"$WORK/man.txt"
	"$HK_ROOT/$prog" --help | sed 1d >"$WORK/help.txt"
	options "$WORK/help.txt" >"$WORK/help.opts"
	options "$WORK/man.txt" >"$WORK/man.opts"
	comm -23 "$WORK/help.opts" "$WORK/man.opts" >"$WORK/missing.txt"
	comm -13 "$WORK/help.opts" "$WORK/man.opts" >"$WORK/extra.txt"
	check "man $name: every option of $prog --help is in it ($(wc -l <"$WORK/help.opts") options)" \
	    [ ! -s "$WORK/missing.txt" ]
	[ -s "$WORK/missing.txt" ] && sed 's/^/    | missing: /' "$WORK/missing.txt"
	check "man $name: it names no option $prog does not have" \
	    [ ! -s "$WORK/extra.txt" ]
	[ -s "$WORK/extra.txt" ] && sed 's/^/    | not in --help: /' "$WORK/extra.txt"
}

# The unit, installed under a PREFIX where its ExecStart exists.
test_unit() {
	local p=$WORK/prefix unit out score
	"${MAKE[@]}" install PREFIX="$p" >"$WORK/install2.log" 2>&1 ||
	    { fail "unit: make install PREFIX=..." "failed" "$WORK/install2.log"; return; }
	unit=$p/lib/systemd/system/hello_ktls_server.service
	if ! command -v systemd-analyze >/dev/null; then
		fail "unit: systemd-analyze" "not installed (.ci/run installs systemd)"
		return
	fi
	out=$(MANPATH=$p/share/man systemd-analyze verify "$unit" 2>&1)
	check "unit: systemd-analyze verify says nothing${out:+: $out}" [ -z "$out" ]
	systemd-analyze security --offline=true "$unit" >"$WORK/security.txt" 2>&1
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p' "$WORK/security.txt")
	check "unit: offline security review scores $score (at most 2.0: OK)" \
	    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
	unit_execstart "$unit"
}

# The unit's ExecStart, its paths moved here, runs and serves.
unit_execstart() {
	local line args=() a audit=$WORK/log/audit.jsonl
	mkdir -p "$WORK/log" "$WORK/run"
	# Join the continuation lines; take what follows the program.
	line=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$1" | sed 's/\\$//' | tr -d '\n')
	line=${line#ExecStart=* }
	line=${line//\/etc\/hello_ktls\//$HK_CERTS\/}
	line=${line//\/var\/log\/hello_ktls\//$WORK\/log\/}
	line=${line//\/run\/hello_ktls\//$WORK\/run\/}
	for a in $line; do
		case $a in
		'$HK_OPTS') ;;
		8443) args+=(0) ;;
		*) args+=("$a") ;;
		esac
	done
	check "unit: ExecStart has --port, --cert, --key, --ca, --audit, --status" \
	    like "${args[*]}" '--port 0 --cert */server-cert.pem --key */server-key.pem --ca */ca-cert.pem --audit * --status unix:*'
	new_log SRV_LOG server
	timeout -k 20 300 "$SERVER" "${args[@]}" >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	wait_for_port "$SRV_LOG" 'Server listening on port ' ||
	    { fail "unit: the server starts with the unit's options" "no port" "$SRV_LOG"; return; }
	pass "unit: the server starts with the unit's ExecStart options"
	run_client "$WORK/c.log"
	check "unit: a client is served" [ "$CLI_RC" -eq 0 ]
	out=$(timeout 10 python3 "$HK_ROOT/tests/metrics_peer.py" scrape "unix:$WORK/run/status.sock")
	check "unit: the --status socket answers" \
	    like "$out" '*hk_handshakes_total{result="ok",reason="none"} 1*'
	mv "$audit" "$audit.1"
	server_proc && kill -HUP "$SRV_PROC"
	wait_for_line "$audit.1" 'connection-closed' &&
	    run_client "$WORK/c2.log" && wait_for_line "$audit" 'connection-closed'
	check "unit: ExecReload's SIGHUP reopens the audit file, the server serves on" \
	    reopened "$audit"
	stop_server
}

test_layout
test_man hello_ktls_server hello_ktls_server.8
test_man hello_ktls_client hello_ktls_client.1
test_unit
hk_summary
