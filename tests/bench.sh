#!/usr/bin/env bash
# tests/bench.sh - what `make -f Makefile.ktls bench` runs: a small benchmark
# of our programs next to reference numbers measured in the same run on the
# same machine, printed as one markdown-style table per question:
#   (a) bulk throughput of our userspace path (--ktls off) vs `openssl speed`
#       for the same AEAD (one core's crypto limit);
#   (b) full mTLS handshakes per second, `openssl s_time -new` against our
#       server vs against `openssl s_server`, same certificates;
#   (c) where the kernel has kTLS (natively, else in the UML guest of
#       tests/uml.sh): our kTLS path vs our userspace path, sendfile vs
#       write, and ours vs a bare kTLS socket pair (tests/ktls_pair_bench);
#   (d) full mTLS handshakes per second against our server with its
#       identity checks on (--crl, --audit FILE, and --policy when the
#       server has it) vs the same server without them;
#   (e) resumed vs full handshakes per second against our server,
#       `openssl s_time -reuse` vs `-new`, with the resumptions counted
#       and the server's CPU per connection;
#   (f) full mTLS handshakes against ours vs nginx from the distribution
#       (ssl_verify_client on, two workers), TLS 1.3 and 1.2, ours with
#       --quiet: session tickets off on both, then on on both; handshakes
#       per second and server CPU per handshake;
#   (m) server memory per idle mTLS connection: N held by
#       tests/idle_peer.py, on the host (userspace) and in the kTLS guest,
#       and a new client's time meanwhile;
#   (s) where the kernel has kTLS (else in the UML guest): one large file
#       served with kTLS TX + sendfile(), ours (--get) vs nginx
#       (ssl_conf_command Options KTLS, sendfile on), the same client
#       (tests/fetch_peer.py): server CPU per GB and Gbit/s.
# Not a test: nothing passes or fails; it exits non-zero only when it could
# not measure at all. Loopback only; every step has a time limit.
#
# Environment (sizes take K, M, G = 2^10, 2^20, 2^30):
#   HK_BENCH_BYTES      bytes per transfer (default 256M; 64M in the guest)
#   HK_BENCH_UML_BYTES  bytes per transfer in the UML guest only
#   HK_BENCH_RUNS       repetitions of each transfer and s_time run; the
#                       median is shown (default 3)
#   HK_BENCH_CIPHER     aes-128-gcm (default), aes-256-gcm, chacha20-poly1305
#   HK_BENCH_HS_SECONDS s_time duration (default 5)
#   HK_BENCH_IDLE_N     idle connections held in (m) on the host (10000)
#   HK_BENCH_IDLE_UML_N idle connections held in (m) in the guest (1000)
#   HK_BENCH_SENDFILE_BYTES  the file (s) serves (default 256M)
#   HK_BENCH_PARTS      which parts, e.g. "f m" (default: a b d e f m c s)
#   HK_BENCH_POLICY     the --policy file for (d) (default: one rule that
#                       allows the bench client by its CN)
#   HK_UML_BIN, HK_UML_MODULES  another guest kernel, as for tests/uml.sh
# Internal: tests/bench.sh --ktls-part RESULTS BYTES RUNS CIPHER IDLE_N PARTS SF_BYTES
# runs (c), (s) and the kTLS row of (m) (in the guest) and appends its numbers to RESULTS.
set -u
. "$(dirname "$0")/lib.sh"
PAIR=$HK_ROOT/tests/ktls_pair_bench

say() { echo "bench: $*" >&2; }

# want PART: PART (a letter) is among HK_BENCH_PARTS.
want() { [[ " $PARTS " == *" $1 "* ]]; }

# to_bytes SIZE: 256M -> 268435456.
to_bytes() {
	local n=${1%[kKmMgG]} mult=1
	case $1 in
	*[kK]) mult=1024 ;;
	*[mM]) mult=$((1024 * 1024)) ;;
	*[gG]) mult=$((1024 * 1024 * 1024)) ;;
	esac
	case $n in
	'' | *[!0-9]*) echo "bench: not a size: $1" >&2; return 1 ;;
	esac
	echo $((n * mult))
}

# fmt EXPR: a number computed by awk, 2 decimals; "-" if it cannot be.
fmt() { awk "BEGIN { x = $1; printf \"%.2f\", x }" 2>/dev/null || echo -; }

# ratio A B: A/B as "0.42"; "-" when either is missing or B is 0.
ratio() {
	case "$1$2" in *-*|'') echo -; return ;; esac
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

# Results: KEY=VALUE lines in $RESULTS (the guest appends to the same file).
put() { echo "$1=$2" >>"$RESULTS"; }
get() {
	local v
	v=$(sed -n "s/^$1=//p" "$RESULTS" | tail -n 1)
	echo "${v:--}"
}

# median FILE: the line whose first field is the median (upper of two).
median() { sort -n "$1" | awk '{ l[NR] = $0 } END { if (NR) print l[int(NR / 2) + 1] }'; }

# cipher CIPHER: the TLS 1.3 suite name for our programs.
suite_for() {
	case $1 in
	aes-128-gcm) echo TLS_AES_128_GCM_SHA256 ;;
	aes-256-gcm) echo TLS_AES_256_GCM_SHA384 ;;
	chacha20-poly1305) echo TLS_CHACHA20_POLY1305_SHA256 ;;
	*) echo "bench: unknown HK_BENCH_CIPHER $1" >&2; return 1 ;;
	esac
}

has_bench() { "$CLIENT" --help 2>&1 | grep -q -- '--bench'; }

# bench_parse DIR < client output: "gbps send_cpu recv_cpu send_path recv_path"
# from the two BENCH lines of that direction. Throughput over the longer of
# the two sides' times: the transfer as both ends saw it.
bench_parse() {
	awk -v dir="$1" '
	$1 == "BENCH" {
		split("", f)
		for (i = 2; i <= NF; i++) {
			eq = index($i, "=")
			f[substr($i, 1, eq - 1)] = substr($i, eq + 1)
		}
		if (f["dir"] != dir) next
		s = f["side"]; sec[s] = f["seconds"]; cpu[s] = f["cpu_per_gb"]
		path[s] = f["path"]; bytes = f["bytes"]
	}
	END {
		snd = dir == "down" ? "server" : "client"
		rcv = dir == "down" ? "client" : "server"
		if (!(snd in sec) || !(rcv in sec) || sec[snd] + 0 <= 0) exit 1
		t = sec[snd] + 0 > sec[rcv] + 0 ? sec[snd] : sec[rcv]
		printf "%.3f %s %s %s %s\n", bytes * 8 / t / 1e9, cpu[snd], cpu[rcv], path[snd], path[rcv]
	}'
}

# ours KEY KTLS DIRECTION [CLIENT ARGS...]: RUNS transfers through one
# server; records KEY_<dir>="gbps send_cpu recv_cpu send_path recv_path"
# of the median run.
ours() {
	local key=$1 ktls=$2 direction=$3 d out line
	shift 3
	local tls=(--tls-version 1.3 --ciphersuites "$SUITE")
	if ! start_server --ktls "$ktls" "${tls[@]}"; then
		put "${key}_err" "server did not start"
		return
	fi
	rm -f "$WORK/$key".*
	for _ in $(seq "$RUNS"); do
		new_log out "client-$key"
		timeout 300 "$CLIENT" -p "$PORT" --bench "$BYTES" --direction "$direction" \
		    --ktls "$ktls" "${tls[@]}" "$@" >"$out" 2>&1
		for d in down up; do
			[ "$direction" = both ] || [ "$direction" = "$d" ] || continue
			if line=$(bench_parse "$d" <"$out"); then
				echo "$line" >>"$WORK/$key.$d"
			else
				put "${key}_err" "$(grep -v '^BENCH' "$out" | tail -n 1)"
			fi
		done
	done
	stop_server
	for d in down up; do
		[ -s "$WORK/$key.$d" ] && put "${key}_$d" "$(median "$WORK/$key.$d")"
	done
}

# pair KEY ARGS...: RUNS bare kTLS pair transfers; KEY=gbps send_cpu recv_cpu.
pair() {
	local key=$1 out
	shift
	rm -f "$WORK/$key.runs"
	if [ ! -x "$PAIR" ]; then
		put "${key}_err" "tests/ktls_pair_bench not built"
		return
	fi
	for _ in $(seq "$RUNS"); do
		out=$(timeout 300 "$PAIR" --bytes "$BYTES" "$@" 2>&1)
		if ! echo "$out" | grep -q '^PAIR '; then
			put "${key}_err" "$(echo "$out" | tail -n 1)"
			return
		fi
		echo "$out" | awk '/^PAIR / {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			print f["gbps"], f["tx_cpu_per_gb"], f["rx_cpu_per_gb"] }' >>"$WORK/$key.runs"
	done
	put "$key" "$(median "$WORK/$key.runs")"
}

# (c): everything that needs kTLS, in whatever kernel this runs on.
ktls_part() {
	put ktls_kernel "$(uname -r)"
	if [ ! -e /proc/net/tls_stat ]; then
		put ktls_err "this kernel has no kTLS"
		return
	fi
	if want m; then
		say "(m) $IDLE_N idle connections, --ktls require"
		idle_part m_ktls "$IDLE_N" require
	fi
	want s && part_s
	want c || return 0
	if has_bench; then
		say "(c) ours, --ktls off, $BYTES bytes each way"
		ours c_us off both
		say "(c) ours, --ktls require, sendfile"
		ours c_sf require both --bench-path sendfile
		say "(c) ours, --ktls require, read+write"
		ours c_rw require down --bench-path readwrite
	else
		put c_us_err "our client has no --bench"
		put c_sf_err "our client has no --bench"
		put c_rw_err "our client has no --bench"
	fi
	# The baseline makes the calls our benchmark makes (hk_bench.c: 1 MiB
	# per write or sendfile, 64 KiB per read): where syscalls are dear, as
	# in UML, the call sizes decide the throughput as much as the crypto.
	say "(c) bare kTLS socket pair, plain TCP pair"
	pair c_pair_w --cipher "$CIPHER" --write-size 1M --read-size 64K
	pair c_pair_sf --cipher "$CIPHER" --sendfile --write-size 1M --read-size 64K
	pair c_pair_16k --cipher "$CIPHER" --write-size 16K --read-size 16K
	pair c_plain --plain --write-size 1M --read-size 64K
	put ktls_stat "$(awk '$1 == "TlsDecryptError" { print $2 }' /proc/net/tls_stat)"
}

# (a): our userspace path and one core's AEAD rate.
part_a() {
	local out v
	say "(a) openssl speed -evp $CIPHER -bytes 16384 -seconds 3"
	out=$(timeout 60 openssl speed -evp "$CIPHER" -bytes 16384 -seconds 3 2>/dev/null)
	# "The 'numbers' are in 1000s of bytes per second": the last line is
	# "AES-128-GCM   3259406.48k".
	v=$(echo "$out" | awk '/bytes$/ { t = 1; next } t && NF >= 2 { sub(/k$/, "", $NF); printf "%.0f\n", $NF * 1000; exit }')
	[ -n "$v" ] && put a_speed "$v"
	# The same loopback without TLS: what TCP alone costs on this machine.
	say "(a) plain TCP pair, no TLS, $BYTES bytes, 64K calls, $RUNS runs"
	pair a_plain --plain --write-size 64K --read-size 64K
	if has_bench; then
		say "(a) ours, --ktls off, $BYTES bytes each way, $RUNS runs"
		ours a_us off both
	else
		put a_us_err "our client has no --bench"
	fi
}

# s_time_rate NAME PORT [S_TIME ARGS...]: one s_time run (-new unless
# ARGS say otherwise); appends "connections/s count" to $WORK/b_NAME.runs
# and the log's name to $WORK/b_NAME.logs.
s_time_rate() {
	local name=$1 port=$2 log t0 t1 n
	shift 2
	[ $# -gt 0 ] || set -- -new
	new_log log "s_time-$name"
	echo "$log" >>"$WORK/b_$name.logs"
	t0=$(date +%s.%N)
	timeout $((HS_SECONDS + 30)) openssl s_time -connect "127.0.0.1:$port" "$@" \
	    -time "$HS_SECONDS" -cert client-cert.pem -key client-key.pem \
	    -CAfile ca-cert.pem >"$log" 2>&1
	t1=$(date +%s.%N)
	# s_time reports whole seconds ("N connections in 6 real seconds"):
	# divide its count by the wall time measured here instead.
	n=$(sed -n 's/^\([0-9][0-9]*\) connections in [0-9]* real seconds.*/\1/p' "$log")
	if [ -z "$n" ]; then
		put "b_${name}_err" "s_time: $(tail -n 1 "$log")"
		return
	fi
	awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f %d\n", n / (b - a), n }' \
	    >>"$WORK/b_$name.runs"
}

# (b): handshakes per second, ours vs s_server, runs interleaved so that
# a change of load on the machine hits both alike.
part_b() {
	local ss_port ss_log ss_pid
	say "(b) openssl s_time -new -time $HS_SECONDS, ours vs s_server, $RUNS runs"
	start_server --ktls off || { put b_ours_err "server did not start"; return; }
	ss_port=$(free_port)
	new_log ss_log s_server
	# -www: s_server then never reads its stdin (whose end would stop it);
	# s_time sends no request without its own -www, so the handshake is
	# all either server does per connection. Not -quiet: it logs each
	# client, as ours does, and says ACCEPT when it listens.
	openssl s_server -accept "127.0.0.1:$ss_port" -cert server-cert.pem \
	    -key server-key.pem -CAfile ca-cert.pem -Verify 1 -www \
	    </dev/null >"$ss_log" 2>&1 &
	ss_pid=$!
	SS_PID=$ss_pid
	wait_for_line "$ss_log" ACCEPT
	for _ in $(seq "$RUNS"); do
		s_time_rate ours "$PORT"
		s_time_rate s_server "$ss_port"
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then put b_ours_alive yes; else put b_ours_alive no; fi
	put b_ours_warnings "$(grep -c '^hello_ktls_server: client' "$SRV_LOG")"
	put b_ours_served "$(grep -c 'TLS handshake completed successfully' "$SRV_LOG")"
	stop_server
	kill "$ss_pid" 2>/dev/null
	wait "$ss_pid" 2>/dev/null
	SS_PID=
	[ -s "$WORK/b_ours.runs" ] && put b_ours "$(median "$WORK/b_ours.runs")"
	[ -s "$WORK/b_s_server.runs" ] && put b_s_server "$(median "$WORK/b_s_server.runs")"
}

# bench_policy FILE: a --policy that allows the bench client (by the CN
# of client-cert.pem), in the format of mtls_policy.h.
bench_policy() {
	local cn
	cn=$(openssl x509 -in client-cert.pem -noout -subject -nameopt sep_multiline,utf8 |
	    sed -n 's/^ *CN=//p')
	printf '# make bench: the bench client, by its CN\nallow bench {\n    subject.CN = %s\n}\n' \
	    "$cn" >"$1"
}

# (d): the same server with its identity checks on and off, runs
# interleaved. Both servers run at once, each on its own port.
part_d() {
	local -a checks=(--crl crl.pem --audit "$WORK/d-audit.jsonl")
	local off_pid off_log off_port policy=${HK_BENCH_POLICY:-}
	if "$SERVER" --help 2>&1 | grep -q -- --policy; then
		if [ -z "$policy" ]; then
			policy=$WORK/bench.policy
			bench_policy "$policy"
		fi
		checks+=(--policy "$policy")
	fi
	put d_on_args "${checks[*]}"
	say "(d) openssl s_time -new -time $HS_SECONDS, checks on vs off, $RUNS runs"
	start_server --ktls off || { put b_d_off_err "server did not start"; return; }
	off_pid=$SRV_PID off_log=$SRV_LOG off_port=$PORT
	if ! start_server --ktls off "${checks[@]}"; then
		put b_d_on_err "server did not start: $(grep -v '^=' "$SRV_LOG" | tail -n 1)"
		SRV_PID=
	fi
	for _ in $(seq "$RUNS"); do
		s_time_rate d_off "$off_port"
		[ -n "$SRV_PID" ] && s_time_rate d_on "$PORT"
	done
	put d_audit_lines "$(wc -l <"$WORK/d-audit.jsonl" 2>/dev/null || echo 0)"
	put d_on_allowed "$(grep -c '"access-allowed"' "$WORK/d-audit.jsonl" 2>/dev/null)"
	put d_on_refused "$(grep -c -e '"tls-handshake-failed"' -e '"access-denied"' "$WORK/d-audit.jsonl" 2>/dev/null)"
	stop_server
	SRV_PID=$off_pid SRV_LOG=$off_log
	stop_server
	[ -s "$WORK/b_d_off.runs" ] && put d_off "$(median "$WORK/b_d_off.runs")"
	[ -s "$WORK/b_d_on.runs" ] && put d_on "$(median "$WORK/b_d_on.runs")"
}

# count_marks CHAR LOG...: how many connections s_time marked with CHAR
# ('r' resumed, '*' full) on its progress lines in LOGs.
count_marks() {
	local c=$1
	shift
	cat "$@" 2>/dev/null | grep -E '^[*r]+$' | tr -cd "$c" | wc -c
}

# (e): resumed vs full handshakes against one server. -www / makes
# s_time send a request and read the reply, and with it the TLS 1.3
# tickets (which come after the handshake): without it -reuse has no
# ticket to offer and every connection is a full handshake.
part_e() {
	local -a e_new e_reuse
	say "(e) openssl s_time -www / -new vs -reuse -time $HS_SECONDS, $RUNS runs"
	# --quiet: the server's one line per client says full or resumed.
	start_server --ktls off --quiet || { put b_e_new_err "server did not start"; return; }
	server_proc
	for _ in $(seq "$RUNS"); do
		s_time_cpu e_new "$PORT" "$SRV_PROC" -new -www /
		s_time_cpu e_reuse "$PORT" "$SRV_PROC" -reuse -www /
	done
	stop_server
	mapfile -t e_new <"$WORK/b_e_new.logs"
	mapfile -t e_reuse <"$WORK/b_e_reuse.logs"
	put e_reuse_resumed "$(count_marks r "${e_reuse[@]}")"
	put e_reuse_full "$(count_marks '*' "${e_reuse[@]}")"
	put e_new_resumed "$(count_marks r "${e_new[@]}")"
	put e_server_resumed "$(grep -c 'Client done: .* resumed; ' "$SRV_LOG")"
	put e_server_served "$(grep -cE 'Client done: .* (full|resumed); ' "$SRV_LOG")"
	[ -s "$WORK/b_e_new.runs" ] && put e_new "$(median "$WORK/b_e_new.runs")"
	[ -s "$WORK/b_e_reuse.runs" ] && put e_reuse "$(median "$WORK/b_e_reuse.runs")"
	[ -s "$WORK/b_e_new.cpu" ] && put e_new_cpu "$(median "$WORK/b_e_new.cpu")"
	[ -s "$WORK/b_e_reuse.cpu" ] && put e_reuse_cpu "$(median "$WORK/b_e_reuse.cpu")"
}

# ---------------------------------------------------------------------------
# Server CPU, nginx, idle connections.
# ---------------------------------------------------------------------------

# cpu_split PID...: "user system" clock ticks of these processes so far
# (fields 14 and 15 of /proc/PID/stat; a process's own counts include
# its threads, the ended ones too). The comm field may hold spaces: cut
# after its closing parenthesis.
cpu_split() {
	local pid line usr=0 sys=0 f
	for pid in "$@"; do
		line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		read -r -a f <<<"${line##*) }"
		usr=$((usr + f[11])) sys=$((sys + f[12]))
	done
	echo "$usr $sys"
}

# cpu_ticks PID...: user+system clock ticks of these processes so far.
cpu_ticks() {
	local usr sys
	read -r usr sys <<<"$(cpu_split "$@")"
	echo $((usr + sys))
}

# s_time_cpu NAME PORT PIDS S_TIME ARGS...: s_time_rate, and the servers'
# CPU milliseconds per connection of that run appended to $WORK/b_NAME.cpu.
# PIDS: a space-separated list (all of nginx's processes).
s_time_cpu() {
	local name=$1 port=$2 pids=$3 c0 c1 n0 n1
	shift 3
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	n0=$(cat "$WORK/b_$name.runs" 2>/dev/null | wc -l)
	s_time_rate "$name" "$port" "$@"
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	n1=$(cat "$WORK/b_$name.runs" 2>/dev/null | wc -l)
	[ "$n1" -gt "$n0" ] || return 0
	tail -n 1 "$WORK/b_$name.runs" | awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
	    '{ if ($2 > 0) printf "%.3f\n", t * 1000 / hz / $2 }' >>"$WORK/b_$name.cpu"
}

# nginx_start DIR PORT TICKETS [SERVER_LINES]: nginx from the
# distribution, in DIR only (its pid, logs and temp files; nothing of the
# system's configuration), for mTLS with the bench certificates, TLS 1.2
# and 1.3, two workers, no session cache, session tickets TICKETS
# (on/off), answering GET / with a small body, or with what SERVER_LINES
# (directives for its server block) say instead. Sets NGX_PID (the master).
nginx_start() {
	local dir=$1 port=$2 tickets=$3 d i
	local lines=${4:-'location / { return 200 "Hello from nginx\n"; }'}
	mkdir -p "$dir/logs"
	for d in body proxy fastcgi uwsgi scgi; do mkdir -p "$dir/tmp/$d"; done
	cat >"$dir/nginx.conf" <<-EOF
	worker_processes 2;
	pid $dir/nginx.pid;
	error_log $dir/logs/error.log;
	events { worker_connections 1024; }
	http {
	    access_log $dir/logs/access.log;
	    client_body_temp_path $dir/tmp/body;
	    proxy_temp_path $dir/tmp/proxy;
	    fastcgi_temp_path $dir/tmp/fastcgi;
	    uwsgi_temp_path $dir/tmp/uwsgi;
	    scgi_temp_path $dir/tmp/scgi;
	    server {
	        listen 127.0.0.1:$port ssl;
	        ssl_certificate $HK_CERTS/server-cert.pem;
	        ssl_certificate_key $HK_CERTS/server-key.pem;
	        ssl_client_certificate $HK_CERTS/ca-cert.pem;
	        ssl_verify_client on;
	        ssl_protocols TLSv1.2 TLSv1.3;
	        ssl_session_cache off;
	        ssl_session_tickets $tickets;
	        $lines
	    }
	}
	EOF
	NGX_PID=
	timeout -k 10 900 nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
	    -g 'daemon off;' >"$dir/logs/stdout.log" 2>&1 &
	for ((i = 0; i < 200; i++)); do
		NGX_PID=$(cat "$dir/nginx.pid" 2>/dev/null)
		[ -n "$NGX_PID" ] && [ "$(cat "/proc/$NGX_PID/task/$NGX_PID/children" 2>/dev/null | wc -w)" -ge 2 ] && return 0
		nap 0.05
	done
	NGX_PID=
	return 1
}

# nginx_pids [MASTER]: the master and its workers.
nginx_pids() {
	local m=${1:-$NGX_PID}
	echo "$m $(cat "/proc/$m/task/$m/children" 2>/dev/null)"
}

# nginx_stop [MASTER]: stop that nginx (default NGX_PID).
nginx_stop() {
	local i m=${1:-${NGX_PID:-}}
	[ -n "$m" ] || return 0
	kill -QUIT "$m" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		[ -e "/proc/$m" ] || break
		nap 0.05
	done
	kill -KILL "$m" 2>/dev/null
	[ "$m" = "${NGX_PID:-}" ] && NGX_PID=
	[ "$m" = "${NGX_T_PID:-}" ] && NGX_T_PID=
	return 0
}

# (f): full mTLS handshakes, ours vs nginx, TLS 1.3 and 1.2, with each
# server's CPU per handshake. The servers run at once; runs alternate.
# -www / on both sides: each connection sends a request and reads a small
# answer, so neither server is judged on a client that vanishes. Ours
# sends a session ticket after every full handshake, which
# the reference nginx does not: a second nginx with tickets on shows what
# they cost there (TLS 1.3 only).
part_f() {
	local v ngx_port ngx_t_port
	if ! command -v nginx >/dev/null; then
		put f_err "nginx is not installed (apt-get install nginx)"
		return
	fi
	ngx_t_port=$(free_port)
	if nginx_start "$WORK/nginx-t" "$ngx_t_port" on; then
		NGX_T_PID=$NGX_PID
	fi
	ngx_port=$(free_port)
	if ! nginx_start "$WORK/nginx" "$ngx_port" off; then
		put f_err "nginx did not start: $(tail -n 1 "$WORK/nginx/logs/error.log" 2>/dev/null)"
		nginx_stop "${NGX_T_PID:-}"
		return
	fi
	# Ours as each nginx is configured: one line per connection (nginx's
	# access log), and session tickets off, or on (one per handshake).
	if ! start_server --ktls off --max-connections 4096 --quiet; then
		put f_err "our server did not start"
		nginx_stop
		nginx_stop "${NGX_T_PID:-}"
		return
	fi
	server_proc
	local t_pid=$SRV_PID t_proc=$SRV_PROC t_port=$PORT t_log=$SRV_LOG
	if ! start_server --ktls off --max-connections 4096 --quiet \
	    --session-tickets off; then
		put f_err "our server did not start"
		SRV_PID=$t_pid stop_server
		nginx_stop
		nginx_stop "${NGX_T_PID:-}"
		return
	fi
	server_proc
	say "(f) openssl s_time -new -www / -time $HS_SECONDS, ours vs nginx, TLS 1.3 and 1.2, $RUNS runs"
	for _ in $(seq "$RUNS"); do
		for v in 1_3 1_2; do
			s_time_cpu "f_ngx_$v" "$ngx_port" "$(nginx_pids)" -new -www / "-tls$v"
			s_time_cpu "f_ours_$v" "$PORT" "$SRV_PROC" -new -www / "-tls$v"
		done
		[ -n "${NGX_T_PID:-}" ] || continue
		s_time_cpu f_ngxt_1_3 "$ngx_t_port" "$(nginx_pids "$NGX_T_PID")" -new -www / -tls1_3
		s_time_cpu f_ourst_1_3 "$t_port" "$t_proc" -new -www / -tls1_3
	done
	put f_ngx_requests "$(wc -l <"$WORK/nginx/logs/access.log")"
	put f_ngx_ok "$(grep -c '" 200 ' "$WORK/nginx/logs/access.log")"
	# --quiet's line per client: "full" once its handshake completed.
	put f_ours_served "$(grep -c 'Client done: .* full; ' "$SRV_LOG")"
	put f_ourst_served "$(grep -c 'Client done: .* full; ' "$t_log")"
	stop_server
	SRV_PID=$t_pid SRV_LOG=$t_log stop_server
	nginx_stop
	nginx_stop "${NGX_T_PID:-}"
	for v in f_ngx_1_3 f_ngxt_1_3 f_ours_1_3 f_ourst_1_3 f_ngx_1_2 f_ours_1_2; do
		[ -s "$WORK/b_$v.runs" ] && put "$v" "$(median "$WORK/b_$v.runs")"
		[ -s "$WORK/b_$v.cpu" ] && put "${v}_cpu" "$(median "$WORK/b_$v.cpu")"
	done
}

# rss_kb PID [FIELD]: VmRSS (or FIELD) of /proc/PID/status in kB.
status_kb() { awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status"; }
pss_kb() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null; }

# idle_part PREFIX N KTLS: N idle mTLS connections held against our server
# (tests/idle_peer.py); the server's memory before and after, per
# connection, and how long a new client takes meanwhile.
idle_part() {
	local pre=$1 n=$2 ktls=$3 log hold t0 t1 i held out
	ulimit -n $((2 * n + 512)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	if ! start_server --ktls "$ktls" --max-connections $((n + 64)) \
	    --idle-timeout 600 --handshake-timeout 60; then
		put "${pre}_err" "our server did not start"
		return
	fi
	server_proc
	# One client first: what every connection shares (the first
	# handshake's lazy initialisations) is in the baseline.
	timeout 30 "$CLIENT" -p "$PORT" --ktls "$ktls" >/dev/null 2>&1
	put "${pre}_rss0" "$(status_kb "$SRV_PROC")"
	put "${pre}_pss0" "$(pss_kb "$SRV_PROC")"
	new_log log idle
	hold=$WORK/idle.hold
	rm -f "$hold"
	mkfifo "$hold"
	python3 "$HK_ROOT/tests/idle_peer.py" "$PORT" "$n" 100 600 <"$hold" >"$log" 2>&1 &
	exec 8>"$hold"
	held=
	for ((i = 0; i < 6000; i++)); do
		held=$(sed -n 's/^held \([0-9]*\) .*/\1/p' "$log")
		[ -n "$held" ] && break
		kill -0 $! 2>/dev/null || break
		nap 0.1
	done
	if [ -z "$held" ]; then
		put "${pre}_err" "idle_peer: $(tail -n 1 "$log")"
		exec 8>&-
		stop_server
		return
	fi
	# Every held connection past its switch (the server's "kTLS RX:" line).
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c 'kTLS RX:' "$SRV_LOG")" -ge $((held + 1)) ] && break
		nap 0.1
	done
	put "${pre}_n" "$held"
	put "${pre}_failed" "$(sed -n 's/^held [0-9]* failed \([0-9]*\)/\1/p' "$log")"
	put "${pre}_threads" "$(client_threads "$SRV_PROC")"
	put "${pre}_rss1" "$(status_kb "$SRV_PROC")"
	put "${pre}_pss1" "$(pss_kb "$SRV_PROC")"
	put "${pre}_path" "$(grep -m 1 'kTLS RX:' "$SRV_LOG" | sed 's/.*kTLS RX: //' | cut -c1-40)"
	[ -e /proc/net/tls_stat ] && put "${pre}_tls_rx" "$(awk '$1 == "TlsCurrRxSw" { print $2 }' /proc/net/tls_stat)"
	# A new client while they are held.
	new_log out idle-client
	t0=$(date +%s%N)
	timeout 30 "$CLIENT" -p "$PORT" --ktls "$ktls" >"$out" 2>&1
	t1=$(date +%s%N)
	if grep -q 'Hello from kTLS server' "$out"; then
		put "${pre}_new_ms" $(((t1 - t0) / 1000000))
	else
		put "${pre}_new_ms" "failed: $(tail -n 1 "$out")"
	fi
	exec 8>&-
	wait $! 2>/dev/null
	stop_server
}

# col_median FILE N: the median (upper of two) of column N of FILE.
col_median() {
	awk -v c="$2" '{ print $c }' "$1" | sort -n |
	    awk '{ l[NR] = $0 } END { if (NR) print l[int(NR / 2) + 1] }'
}

# s_fetch NAME PROTO PORT PIDS: one fetch of (s)'s file with
# tests/fetch_peer.py from the server whose processes are PIDS (a
# space-separated list). Appends "cpu_s_per_gb gbps user_ticks sys_ticks
# tx_sockets" to $WORK/s_NAME.runs, tx_sockets being how many kTLS TX
# sockets the kernel set up meanwhile (TlsTxSw; the client sets up none);
# a fetch that did not bring exactly the file's size puts s_NAME_err.
s_fetch() {
	local name=$1 proto=$2 port=$3 pids=$4 out u0 s0 u1 s1 tx0 tx1 body secs
	new_log out "fetch-$name"
	tx0=$(stat_get TlsTxSw)
	# shellcheck disable=SC2086
	read -r u0 s0 <<<"$(cpu_split $pids)"
	timeout 300 python3 "$HK_ROOT/tests/fetch_peer.py" "$port" "$proto" \
	    sendfile.bin >"$out" 2>&1
	# shellcheck disable=SC2086
	read -r u1 s1 <<<"$(cpu_split $pids)"
	tx1=$(stat_get TlsTxSw)
	body=$(sed -n 's/^FETCH body=\([0-9]*\) .*/\1/p' "$out")
	secs=$(sed -n 's/^FETCH .* seconds=\([0-9.]*\) .*/\1/p' "$out")
	if [ "${body:-}" != "$SF_BYTES" ] || [ -z "$secs" ]; then
		put "s_${name}_err" "got ${body:-no} bytes of $SF_BYTES: $(grep -v '^FETCH' "$out" | tail -n 1 | cut -c1-60)"
		return 1
	fi
	put "s_${name}_tls" "$(sed -n 's/^FETCH .* cipher=\([^ ]*\) version=\([^ ]*\)$/\2 \1/p' "$out")"
	awk -v b="$SF_BYTES" -v t="$secs" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
	    -v hz="$(getconf CLK_TCK)" -v tx=$((tx1 - tx0)) \
	    'BEGIN { printf "%.3f %.3f %d %d %d\n", (u + s) / hz / (b / 1e9), b * 8 / t / 1e9, u, s, tx }' \
	    >>"$WORK/s_$name.runs"
}

# (s): one large file served with kTLS TX + sendfile(), ours (--get) vs
# nginx (ssl_conf_command Options KTLS, sendfile on), TLS 1.3 with
# SUITE only on both, fetched by the same client; runs alternate, after
# one unmeasured fetch from each (the file into the page cache).
part_s() {
	local dir=$WORK/sf ngx_port n
	if ! command -v nginx >/dev/null; then
		put s_err "nginx is not installed (apt-get install nginx-light)"
		return
	fi
	# nginx's workers run as nobody when it is started as root (the
	# guest's user): they must reach the file.
	mkdir -p "$dir"
	chmod go+x "$WORK"
	chmod 755 "$dir"
	say "(s) a $SF_BYTES-byte file, ours vs nginx with kTLS sendfile, $RUNS runs"
	if ! head -c "$SF_BYTES" /dev/urandom >"$dir/sendfile.bin"; then
		put s_err "could not write the $SF_BYTES-byte file"
		return
	fi
	chmod 644 "$dir/sendfile.bin"
	if ! start_server --ktls require --tls-version 1.3 --ciphersuites "$SUITE" \
	    --root "$dir"; then
		put s_err "our server did not start: $(tail -n 1 "$SRV_LOG")"
		return
	fi
	server_proc
	ngx_port=$(free_port)
	if ! nginx_start "$WORK/nginx-s" "$ngx_port" off "ssl_conf_command Options KTLS;
	        ssl_conf_command Ciphersuites $SUITE;
	        sendfile on;
	        location / { root $dir; }"; then
		put s_err "nginx did not start: $(tail -n 1 "$WORK/nginx-s/logs/error.log" 2>/dev/null)"
		stop_server
		return
	fi
	s_fetch ours_warm hk "$PORT" "$SRV_PROC"
	s_fetch ngx_warm http "$ngx_port" "$(nginx_pids)"
	for _ in $(seq "$RUNS"); do
		s_fetch ngx http "$ngx_port" "$(nginx_pids)"
		s_fetch ours hk "$PORT" "$SRV_PROC"
	done
	put s_ours_sent "$(grep -m 1 'Sent sendfile.bin' "$SRV_LOG" | sed 's/.*\(Sent sendfile.bin\)/\1/')"
	put s_ngx_ok "$(grep -c '" 200 ' "$WORK/nginx-s/logs/access.log")"
	stop_server
	nginx_stop
	for n in ours ngx; do
		[ -s "$WORK/s_$n.runs" ] || continue
		# median CPU s/GB, median Gbit/s, user and system ticks and
		# kTLS TX sockets over all runs, runs.
		put "s_$n" "$(col_median "$WORK/s_$n.runs" 1) $(col_median "$WORK/s_$n.runs" 2) $(awk '
		    { u += $3; s += $4; tx += $5 } END { print u, s, tx, NR }' "$WORK/s_$n.runs")"
		put "s_${n}_each" "$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }' "$WORK/s_$n.runs")"
	done
}

# ---------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------
W=40 # measurement column
P=26 # data path column
dashes() { printf -- '-%.0s' $(seq "$1"); }
head_row() {
	printf '| %-*s | %-*s | %7s | %13s | %13s | %-24s |\n' "$W" "$1" "$P" \
	    "data path (send > recv)" Gbit/s "send CPU s/GB" "recv CPU s/GB" ratio
	printf '|%s|%s|%s|%s|%s|%s|\n' "$(dashes $((W + 2)))" "$(dashes $((P + 2)))" \
	    "$(dashes 8):" "$(dashes 14):" "$(dashes 14):" "$(dashes 26)"
}
# row LABEL PATH "gbps send_cpu recv_cpu" RATIO-TEXT
row() {
	local g s r
	read -r g s r _ <<<"$3"
	g=$(num "$g") s=$(num "$s") r=$(num "$r")
	printf '| %-*s | %-*s | %7s | %13s | %13s | %-24s |\n' "$W" "$1" "$P" "$2" \
	    "${g:--}" "${s:--}" "${r:--}" "$4"
}
# ours_row LABEL KEY ERRKEY RATIO: one of our transfers, or why it is missing.
ours_row() {
	local v g s r sp rp
	v=$(get "$2")
	if [ "$v" = - ]; then
		row "$1" - "- - -" "n/a: $(get "$3_err" | cut -c1-50)"
		return
	fi
	read -r g s r sp rp <<<"$v"
	row "$1" "$sp > $rp" "$g $s $r" "$4"
}
# pair_row LABEL KEY PATH RATIO
pair_row() {
	local v
	v=$(get "$2")
	if [ "$v" = - ]; then
		row "$1" "$3" "- - -" "n/a: $(get "$2_err" | cut -c1-50)"
	else
		row "$1" "$3" "$v" "$4"
	fi
}
first() { echo "${1%% *}"; }
mib() { echo "$(($1 / 1048576)) MiB"; }
# num X: X with 2 decimals when it is a number, else X.
num() {
	if [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; then printf '%.2f' "$1"; else echo "${1:--}"; fi
}

print_env() {
	local cpu ktls
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	ktls="no (kTLS part in a User-Mode Linux guest)"
	[ -e /proc/net/tls_stat ] && ktls=yes
	echo "# hello_ktls benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- kernel: $(uname -r) ($(uname -m)); kTLS here: $ktls"
	echo "- CPU: ${cpu:-unknown}, $(nproc) cores online, AES-NI: $(grep -qw aes /proc/cpuinfo && echo yes || echo no); load average at start: $LOAD0_3"
	echo "- OpenSSL: $(openssl version); our programs: $("$CLIENT" --version 2>&1 | head -n 1)"
	echo "- cipher: TLS 1.3 $SUITE ($CIPHER); $(mib "$HOST_BYTES") per transfer on the host; $RUNS run(s) each, median shown"
	echo "- Gbit/s = 10^9 bit/s; CPU s/GB = user+system CPU seconds per 10^9 bytes, per side"
	echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	# A shared machine: say when other work competed for the cores.
	if awk -v a="$LOAD0" -v b="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" \
	    'BEGIN { exit !(a > n / 2 || b > n) }'; then
		echo "- NOTE: the machine was busy with other work; expect noisy numbers"
	fi
	echo
}

print_a() {
	local speed g plain
	speed=$(get a_speed)
	echo "## (a) bulk throughput: our userspace path vs one core's $CIPHER (host)"
	echo
	head_row measurement
	if [ "$speed" = - ]; then
		row "openssl speed -evp $CIPHER 16K" - "- - -" "n/a: openssl speed failed"
	else
		g=$(fmt "$speed * 8 / 1e9")
		row "openssl speed -evp $CIPHER 16K" "EVP, 1 core, encrypt" "$g $(fmt "1e9 / $speed") -" "1.00 (reference)"
	fi
	pair_row "plain TCP pair, no TLS" a_plain "write 64K > read 64K" \
	    "$(ratio "$(first "$(get a_plain)")" "${g:--}") x openssl speed"
	ours_row "ours --ktls off, down (server sends)" a_us_down a_us \
	    "$(ratio "$(first "$(get a_us_down)")" "${g:--}") x openssl speed"
	ours_row "ours --ktls off, up (client sends)" a_us_up a_us \
	    "$(ratio "$(first "$(get a_us_up)")" "${g:--}") x openssl speed"
	echo
	echo "openssl speed counts user CPU time on one core, encryption only; a"
	echo "transfer encrypts on one core and decrypts on the other, plus TCP."
	# What loopback TCP alone does with the same call sizes, for scale:
	# on a small VM it, not the cipher, is most of the cost.
	plain=$(first "$(get a_plain)")
	if [ "$plain" != - ]; then
		echo "The plain TCP pair moves the same bytes with the same 64 KiB calls and no"
		echo "TLS at all: ours reaches $(ratio "$(first "$(get a_us_down)")" "$plain") (down) and $(ratio "$(first "$(get a_us_up)")" "$plain") (up) of it."
	fi
	echo
}

print_b() {
	local ours ss
	ours=$(get b_ours) ss=$(get b_s_server)
	echo "## (b) full mTLS handshakes per second: openssl s_time -new (host)"
	echo
	printf '| %-*s | %13s | %11s | %-22s |\n' "$W" server "handshakes/s" connections ratio
	printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq $((W + 2))))" '--------------:' '------------:' '------------------------'
	printf '| %-*s | %13s | %11s | %-22s |\n' "$W" "openssl s_server -Verify 1 -www" \
	    "$(first "$ss")" "${ss##* }" "1.00 (reference)"
	printf '| %-*s | %13s | %11s | %-22s |\n' "$W" "hello_ktls_server --ktls off" \
	    "$(first "$ours")" "${ours##* }" "$(ratio "$(first "$ours")" "$(first "$ss")") x s_server"
	echo
	echo "Same s_time command for both, $HS_SECONDS s per run (connections: median run);"
	echo "rate = connections / wall time. s_time sends nothing after the handshake"
	echo "and closes without close_notify: our server served $(get b_ours_served) handshakes, logged"
	echo "$(get b_ours_warnings) per-connection warnings (truncated / reset, expected), still"
	echo "serving afterwards: $(get b_ours_alive). Ours hands each client to a pool"
	echo "thread (kept for the next client); s_server serves connections one after"
	echo "another in one process."
	[ "$(get b_ours_err)" != - ] && echo "ours: $(get b_ours_err)"
	[ "$(get b_s_server_err)" != - ] && echo "s_server: $(get b_s_server_err)"
	echo
}

print_d() {
	local off on
	off=$(get d_off) on=$(get d_on)
	echo "## (d) full mTLS handshakes per second, identity checks on vs off: openssl s_time -new (host)"
	echo
	printf '| %-*s | %13s | %11s | %-26s |\n' "$W" server "handshakes/s" connections ratio
	printf '|%s|%s|%s|%s|\n' "$(dashes $((W + 2)))" '--------------:' '------------:' "$(dashes 28)"
	printf '| %-*s | %13s | %11s | %-26s |\n' "$W" "hello_ktls_server --ktls off" \
	    "$(first "$off")" "${off##* }" "1.00 (reference)"
	printf '| %-*s | %13s | %11s | %-26s |\n' "$W" "the same with the checks below" \
	    "$(first "$on")" "${on##* }" "$(ratio "$(first "$on")" "$(first "$off")") x off (target >= 0.9)"
	echo
	echo "Checks: $(get d_on_args | sed "s|$WORK/||g") (a policy is used when the server"
	echo "has --policy; HK_BENCH_POLICY names one, else one rule allows the client's CN)."
	echo "Both servers run at once, s_time runs alternate between them ($HS_SECONDS s each,"
	echo "connections: median run). The checked server's audit file got $(get d_audit_lines) lines:"
	echo "$(get d_on_allowed) clients allowed, $(get d_on_refused) refused (want 0)."
	[ "$(get b_d_off_err)" != - ] && echo "off: $(get b_d_off_err)"
	[ "$(get b_d_on_err)" != - ] && echo "on: $(get b_d_on_err)"
	echo
}

print_e() {
	local full res
	full=$(get e_new) res=$(get e_reuse)
	echo "## (e) resumed vs full handshakes per second: openssl s_time -www / (host)"
	echo
	printf '| %-*s | %13s | %11s | %-9s | %13s | %-30s |\n' "$W" "s_time mode" "connections/s" connections "resumed" "server CPU ms" ratio
	printf '|%s|%s|%s|%s|%s|%s|\n' "$(dashes $((W + 2)))" '--------------:' '------------:' '----------:' '--------------:' "$(dashes 32)"
	printf '| %-*s | %13s | %11s | %9s | %13s | %-30s |\n' "$W" "-new (a full handshake each)" \
	    "$(first "$full")" "${full##* }" "$(get e_new_resumed)" "$(get e_new_cpu)" "1.00 (reference)"
	printf '| %-*s | %13s | %11s | %9s | %13s | %-30s |\n' "$W" "-reuse (TLS 1.3 ticket of the 1st)" \
	    "$(first "$res")" "${res##* }" "$(get e_reuse_resumed)" "$(get e_reuse_cpu)" \
	    "$(ratio "$(first "$res")" "$(first "$full")") x full (target >= 3)"
	echo
	echo "Server CPU: user+system time of the server process (all its threads) over"
	echo "a run, in milliseconds per connection, median run; full / resumed CPU:"
	echo "$(ratio "$(get e_new_cpu)" "$(get e_reuse_cpu)") (the steadier number on a shared machine)."
	echo
	echo "Against hello_ktls_server --ktls off; each connection sends a request line and"
	echo "reads the reply (and with it the tickets). resumed: connections s_time marked"
	echo "as reused, over all runs; with -reuse it marked $(get e_reuse_full) as full handshakes."
	echo "The server logged a resumed session for $(get e_server_resumed) of the"
	echo "$(get e_server_served) handshakes it completed (all runs of both modes)."
	[ "$(get b_e_new_err)" != - ] && echo "-new: $(get b_e_new_err)"
	[ "$(get b_e_reuse_err)" != - ] && echo "-reuse: $(get b_e_reuse_err)"
	echo
}

# f_row LABEL TLS KEY REFKEY: one server's row of (f).
f_row() {
	local v cpu rcpu
	v=$(get "$3") cpu=$(get "$3_cpu") rcpu=$(get "$4_cpu")
	printf '| %-*s | %-7s | %13s | %11s | %13s | %-18s | %-18s |\n' 24 "$1" "$2" \
	    "$(first "$v")" "${v##* }" "$cpu" \
	    "$(ratio "$(first "$v")" "$(first "$(get "$4")")") x nginx" \
	    "$(ratio "$cpu" "$rcpu") x nginx"
}

print_f() {
	local v
	echo "## (f) full mTLS handshakes, ours vs nginx: openssl s_time -new -www / (host)"
	echo
	if [ "$(get f_err)" != - ]; then
		echo "not measured: $(get f_err)"
		echo
		return
	fi
	printf '| %-24s | %-7s | %13s | %11s | %13s | %-18s | %-18s |\n' server TLS handshakes/s connections "server CPU ms" "handshakes/s" "CPU/handshake"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(dashes 26)" "$(dashes 9)" '--------------:' '------------:' '--------------:' "$(dashes 20)" "$(dashes 20)"
	for v in 1_3 1_2; do
		f_row "nginx, tickets off" "${v/_/.}" "f_ngx_$v" "f_ngx_$v"
		f_row "ours, tickets off" "${v/_/.}" "f_ours_$v" "f_ngx_$v"
	done
	f_row "nginx, tickets on" 1.3 f_ngxt_1_3 f_ngxt_1_3
	f_row "ours, tickets on" 1.3 f_ourst_1_3 f_ngxt_1_3
	echo
	echo "$(nginx -v 2>&1 | sed 's/^nginx version: //') from the distribution, configured by this script in a temp"
	echo "dir: ssl_verify_client on, the same certificates and CA, TLSv1.2 TLSv1.3,"
	echo "worker_processes 2, ssl_session_cache off, ssl_session_tickets off, an"
	echo "access log, \`return 200\` with a 17-byte body. Ours: --ktls off (the host"
	echo "has no kTLS), --quiet (one line per connection, as nginx's access log)"
	echo "and --session-tickets off, as nginx. All run at once, s_time runs alternate"
	echo "($HS_SECONDS s each, median run). server CPU ms: user+system time of the"
	echo "server's processes (nginx: master and workers; ours: the process with all"
	echo "its threads) from /proc/PID/stat over the run, per connection. Targets:"
	echo "handshakes/s >= 1.0x nginx, CPU per handshake <= 1.0x nginx. The last two"
	echo "rows: the same nginx with ssl_session_tickets on, and ours with its"
	echo "default (one ticket after each full handshake), compared with that nginx."
	echo "nginx (tickets off) logged $(get f_ngx_ok) of $(get f_ngx_requests) requests with status 200; ours"
	echo "completed $(get f_ours_served) handshakes (tickets off) and $(get f_ourst_served) (tickets on)."
	echo
}

# m_row LABEL PREFIX: one idle-connection measurement.
m_row() {
	local p=$2 n r0 r1 s0 s1 per pper
	n=$(get "${p}_n") r0=$(get "${p}_rss0") r1=$(get "${p}_rss1")
	s0=$(get "${p}_pss0") s1=$(get "${p}_pss1")
	if [ "$n" = - ] || [ "$r1" = - ]; then
		printf '| %-34s | %6s | %9s | %9s | %9s | %9s | %-22s |\n' "$1" - - - - - "n/a: $(get "${p}_err" | cut -c1-40)"
		return
	fi
	per=$(awk -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
	pper=$(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.1f", (b - a) / n }')
	printf '| %-34s | %6s | %9s | %9s | %9s | %9s | %-22s |\n' "$1" "$n" "$r0" "$r1" "$per" "$pper" \
	    "$(get "${p}_new_ms") ms"
}

print_m() {
	echo "## (m) server memory per idle mTLS connection"
	echo
	printf '| %-34s | %6s | %9s | %9s | %9s | %9s | %-22s |\n' "where, data path" held "RSS0 kB" "RSS1 kB" "kB/conn" "PSS kB/c" "new client meanwhile"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(dashes 36)" '-------:' '----------:' '----------:' '----------:' '----------:' "$(dashes 24)"
	m_row "host, userspace (--ktls off)" m_host
	if [ "$KTLS_WHERE" = uml ]; then
		m_row "UML guest, kTLS TX+RX (require)" m_ktls
	else
		m_row "kTLS TX+RX (require)" m_ktls
	fi
	echo
	echo "tests/idle_peer.py opens the connections (100 handshakes in flight at a"
	echo "time), completes each mTLS handshake and then sends nothing; the server"
	echo "waits for each one's request. RSS0: the server's VmRSS after one client,"
	echo "RSS1: with all held; kB/conn = (RSS1 - RSS0) / held; PSS from"
	echo "/proc/PID/smaps_rollup likewise. new client meanwhile: wall time of one"
	echo "hello_ktls_client run while they are held (target < 1000 ms). Targets:"
	echo "<= 32 kB per connection after the switch to kTLS; 10,000 held on the host."
	echo "Failed handshakes: host $(get m_host_failed), guest $(get m_ktls_failed); server client threads"
	echo "while held: host $(get m_host_threads), guest $(get m_ktls_threads); kTLS RX sockets in the guest: $(get m_ktls_tls_rx)."
	echo "On kTLS (both directions in the kernel, OpenSSL's connection freed) an idle"
	echo "client waits in the pool's parking lot without a thread of its own; the"
	echo "threads counted there are spare pool threads, which end a second after"
	echo "the last busy one. In userspace each idle client keeps its thread and SSL."
	echo
}

print_c() {
	local us_d us_u sf_d sf_u rw_d pw ps p16 plain where
	where="natively"
	[ "$KTLS_WHERE" = uml ] && where="in the UML guest"
	echo "## (c) kTLS, $where (kernel $(get ktls_kernel)), $(mib "$KTLS_BYTES") per transfer"
	echo
	if [ "$KTLS_WHERE" = uml ]; then
		echo "CAVEAT: the UML guest's kernel crypto is generic C, without AES-NI, while"
		echo "userspace OpenSSL in the guest still runs on the host CPU with AES-NI: only"
		echo "ratios between rows of this table mean anything, kTLS vs userspace is biased"
		echo "against kTLS here, and no number of it is absolute performance."
		echo
	fi
	if [ "$(get ktls_err)" != - ]; then
		echo "not measured: $(get ktls_err)"
		echo
		return
	fi
	us_d=$(first "$(get c_us_down)") us_u=$(first "$(get c_us_up)")
	sf_d=$(first "$(get c_sf_down)") sf_u=$(first "$(get c_sf_up)")
	rw_d=$(first "$(get c_rw_down)")
	pw=$(first "$(get c_pair_w)") ps=$(first "$(get c_pair_sf)")
	plain=$(first "$(get c_plain)") p16=$(first "$(get c_pair_16k)")
	head_row measurement
	ours_row "ours userspace, down" c_us_down c_us "1.00 (reference)"
	ours_row "ours kTLS sendfile, down" c_sf_down c_sf "$(ratio "$sf_d" "$us_d") x userspace"
	ours_row "ours kTLS read+write, down" c_rw_down c_rw "$(ratio "$rw_d" "$us_d") x userspace"
	ours_row "ours userspace, up" c_us_up c_us "1.00 (reference for up)"
	ours_row "ours kTLS write, up" c_sf_up c_sf "$(ratio "$sf_u" "$us_u") x userspace"
	pair_row "bare kTLS pair" c_pair_w "write 1M > recvmsg 64K" "$(ratio "$pw" "$us_d") x userspace down"
	pair_row "bare kTLS pair" c_pair_sf "sendfile 1M > recvmsg 64K" "$(ratio "$ps" "$us_d") x userspace down"
	pair_row "bare kTLS pair, 16 KiB calls" c_pair_16k "write 16K > recvmsg 16K" "$(ratio "$p16" "$us_d") x userspace down"
	pair_row "plain TCP pair, no TLS (for scale)" c_plain "write 1M > recv 64K" "$(ratio "$plain" "$us_d") x userspace down"
	echo
	echo "| comparison                                     | ratio | target |"
	echo "|------------------------------------------------|------:|--------|"
	printf '| %-46s | %5s | %-6s |\n' "kTLS sendfile / kTLS read+write (ours, down)" "$(ratio "$sf_d" "$rw_d")" ""
	printf '| %-46s | %5s | %-6s |\n' "ours kTLS write / bare pair write (up)" "$(ratio "$sf_u" "$pw")" ">= 0.9"
	printf '| %-46s | %5s | %-6s |\n' "ours kTLS read+write / bare pair write (down)" "$(ratio "$rw_d" "$pw")" ">= 0.9"
	printf '| %-46s | %5s | %-6s |\n' "ours kTLS sendfile / bare pair sendfile" "$(ratio "$sf_d" "$ps")" ">= 0.9"
	printf '| %-46s | %5s | %-6s |\n' "ours kTLS sendfile / ours userspace (down)" "$(ratio "$sf_d" "$us_d")" ""
	echo
	[ "$(get ktls_stat)" != - ] && echo "TlsDecryptError after the runs: $(get ktls_stat)"
	echo
}

# s_row LABEL KEY RATIO_GBPS RATIO_CPU: one server's row of (s).
s_row() {
	local v cpu g tx n ktls
	v=$(get "$2")
	if [ "$v" = - ]; then
		printf '| %-42s | %7s | %9s | %-22s | %-12s | %-12s |\n' "$1" - - \
		    "n/a: $(get "$2_err" | cut -c1-60)" - -
		return
	fi
	read -r cpu g _ _ tx n <<<"$v"
	ktls="yes, $tx TX sockets/$n"
	[ "$tx" -ge "$n" ] || ktls="NO: TlsTxSw +$tx in $n"
	printf '| %-42s | %7s | %9s | %-22s | %-12s | %-12s |\n' "$1" "$(num "$g")" \
	    "$(num "$cpu")" "$ktls" "$3" "$4"
}

print_s() {
	local where ours ngx tx n label
	where="natively"
	[ "$KTLS_WHERE" = uml ] && where="in the UML guest"
	echo "## (s) one file sent with kTLS TX + sendfile(), ours vs nginx, $where (kernel $(get ktls_kernel)), $(mib "$SF_BYTES")"
	echo
	if [ "$(get ktls_err)" != - ] || [ "$(get s_err)" != - ]; then
		echo "skipped: $(get ktls_err | sed 's/^-$//')$(get s_err | sed 's/^-$//')"
		echo
		return
	fi
	ours=$(get s_ours) ngx=$(get s_ngx)
	read -r _ _ _ _ tx n <<<"$ngx"
	label="nginx, KTLS + sendfile on, 2 workers"
	[ "$ngx" != - ] && [ "${tx:-0}" -lt "${n:-1}" ] && label="nginx, 2 workers: kTLS NOT used"
	printf '| %-42s | %7s | %9s | %-22s | %-12s | %-12s |\n' server Gbit/s "CPU s/GB" \
	    "kTLS TX (TlsTxSw)" "Gbit/s ratio" "CPU ratio"
	printf '|%s|%s|%s|%s|%s|%s|\n' "$(dashes 44)" '--------:' '----------:' \
	    "$(dashes 24)" "$(dashes 14)" "$(dashes 14)"
	s_row "$label" s_ngx "1.00 (ref)" "1.00 (ref)"
	s_row "hello_ktls_server --ktls require, --get" s_ours \
	    "$(ratio "$(echo "$ours" | cut -d' ' -f2)" "$(echo "$ngx" | cut -d' ' -f2)") x nginx" \
	    "$(ratio "$(first "$ours")" "$(first "$ngx")") x nginx"
	echo
	if [ "$ngx" != - ] && [ "${tx:-0}" -lt "${n:-1}" ]; then
		echo "NOT A kTLS COMPARISON: /proc/net/tls_stat TlsTxSw moved by only $tx during"
		echo "$n nginx fetches, so nginx (OpenSSL $(openssl version | cut -d' ' -f2)) did not send through kTLS:"
		echo "its row is nginx encrypting in userspace (SSL_write), not kTLS sendfile."
		echo
	fi
	echo "Both servers run at once, TLS 1.3 $SUITE only (the client offers OpenSSL's"
	echo "default list), client certificate required, the same certificates and CA."
	echo "Client: tests/fetch_peer.py (Python ssl, the same reads for both; only the"
	echo "response header differs and is not counted); a fetch counts only if exactly"
	echo "$SF_BYTES bytes came after the header. One unmeasured fetch from each first"
	echo "(page cache), then $RUNS runs alternating, medians. nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), \`ssl_conf_command"
	echo "Options KTLS\`, \`sendfile on\`, sendfile_max_chunk at its default (2m),"
	echo "worker_processes 2 (one serves the single connection), access log on;"
	echo "$(get s_ngx_ok) requests logged 200. Ours logged: $(get s_ours_sent)."
	echo "CPU s/GB: user+system CPU seconds of all the server's processes and threads"
	echo "(/proc/PID/stat, $(getconf CLK_TCK) ticks/s) per 10^9 bytes of the file. kTLS TX: kTLS TX"
	echo "sockets the kernel set up (TlsTxSw) during the measured fetches, one per fetch"
	echo "when the server sent through kTLS. CPU s/GB of each run, in order: nginx"
	echo "$(get s_ngx_each); ours $(get s_ours_each)."
	if [ "$KTLS_WHERE" = uml ]; then
		echo "In the guest the kernel's AES-GCM is generic C (no AES-NI): both servers pay"
		echo "it alike, so the ratios are the result, not the absolute numbers. UML's CPU"
		echo "accounting counts the guest kernel's work as user time, so no user/system"
		echo "split is shown. The guest has one CPU, shared with the client's userspace"
		echo "decryption, which bounds Gbit/s."
	fi
	for n in ours_warm ngx_warm ours ngx; do
		[ "$(get "s_${n}_err")" != - ] && echo "$n: $(get "s_${n}_err")"
	done
	echo "Negotiated: ours $(get s_ours_tls), nginx $(get s_ngx_tls)."
	echo
}

# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------
if [ "${1:-}" = --ktls-part ]; then
	# In the guest (or natively): certificates and results are the host's.
	RESULTS=$2 BYTES=$3 RUNS=$4 CIPHER=$5 IDLE_N=$6 PARTS=$7 SF_BYTES=$8
	SUITE=$(suite_for "$CIPHER") || exit 2
	HK_CERTS=$(dirname "$RESULTS")/certs
	hk_init
	ktls_part
	exit 0
fi

RUNS=${HK_BENCH_RUNS:-3}
CIPHER=${HK_BENCH_CIPHER:-aes-128-gcm}
HS_SECONDS=${HK_BENCH_HS_SECONDS:-5}
SUITE=$(suite_for "$CIPHER") || exit 2
HOST_BYTES=$(to_bytes "${HK_BENCH_BYTES:-256M}") || exit 2
HOST_IDLE_N=${HK_BENCH_IDLE_N:-10000}
UML_IDLE_N=${HK_BENCH_IDLE_UML_N:-1000}
SF_BYTES=$(to_bytes "${HK_BENCH_SENDFILE_BYTES:-256M}") || exit 2
PARTS=${HK_BENCH_PARTS:-a b d e f m c s}
case $RUNS$HS_SECONDS in *[!0-9]*) echo "bench: HK_BENCH_RUNS and HK_BENCH_HS_SECONDS are counts" >&2; exit 2 ;; esac
if [ ! -x "$SERVER" ] || [ ! -x "$CLIENT" ]; then
	echo "bench: build first: make -f Makefile.ktls all tests/ktls_pair_bench" >&2
	exit 1
fi

TOP=$(mktemp -d "${TMPDIR:-/tmp}/hk-bench.XXXXXX")
SS_PID=
trap 'stop_server; nginx_stop; nginx_stop "${NGX_T_PID:-}"; [ -n "$SS_PID" ] && kill "$SS_PID" 2>/dev/null; rm -rf "$TOP" "${WORK:-}"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RESULTS=$TOP/results
: >"$RESULTS"
HK_CERTS=$TOP/certs
if ! bash "$HK_ROOT/hello_ktls_setup.sh" -o "$HK_CERTS" >"$TOP/setup.log" 2>&1; then
	cat "$TOP/setup.log" >&2
	exit 1
fi
hk_init
# hk_init's trap would forget the temp dirs and s_server.
trap 'stop_server; nginx_stop; nginx_stop "${NGX_T_PID:-}"; [ -n "$SS_PID" ] && kill "$SS_PID" 2>/dev/null; rm -rf "$TOP" "$WORK"' EXIT
has_bench || say "our client has no --bench yet: our transfer rows stay empty"

LOAD0_3=$(cut -d' ' -f1-3 /proc/loadavg)
LOAD0=${LOAD0_3%% *}
BYTES=$HOST_BYTES
want a && part_a
want b && part_b
want d && part_d
want e && part_e
want f && part_f
if want m; then
	say "(m) $HOST_IDLE_N idle connections on the host, --ktls off"
	idle_part m_host "$HOST_IDLE_N" off
fi
if ! want c && ! want m && ! want s; then
	:
elif [ -e /proc/net/tls_stat ]; then
	IDLE_N=$HOST_IDLE_N
	KTLS_WHERE=native KTLS_BYTES=$BYTES
	ktls_part
else
	KTLS_WHERE=uml
	KTLS_BYTES=$(to_bytes "${HK_BENCH_UML_BYTES:-${HK_BENCH_BYTES:-64M}}") || exit 2
	say "(c) no kTLS here: booting the UML guest (tests/uml.sh)"
	bash "$HK_ROOT/tests/uml.sh" --timeout 900 -- bash "$HK_ROOT/tests/bench.sh" \
	    --ktls-part "$RESULTS" "$KTLS_BYTES" "$RUNS" "$CIPHER" "$UML_IDLE_N" "$PARTS" \
	    "$SF_BYTES"
	rc=$?
	[ "$rc" -eq 0 ] || put ktls_err "the UML guest failed (tests/uml.sh exit $rc)"
fi

print_env
want a && print_a
want b && print_b
want d && print_d
want e && print_e
want f && print_f
want m && print_m
want c && print_c
want s && print_s
exit 0
