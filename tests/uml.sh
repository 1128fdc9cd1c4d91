#!/bin/bash
# tests/uml.sh - run a command inside a User-Mode Linux (UML) guest whose
# kernel has kernel TLS (kTLS), and exit with the command's exit status.
#
#   tests/uml.sh [--timeout SECS] [--mem SIZE] [--module NAME]... -- COMMAND [ARGS...]
#
# Why: the machines this project is built on run a kernel without CONFIG_TLS,
# so TCP_ULP "tls" fails there.  Debian's `user-mode-linux` kernel has
# CONFIG_TLS=m and boots in a few seconds as an ordinary process, with the
# host's / as its root filesystem (hostfs).  The guest therefore sees the same
# files, binaries and libraries as the caller, and COMMAND runs unchanged.
#
# What the guest does (generated scripts in a private temp dir, run as PID 1):
#   mount /proc, /sys, /dev/pts, /dev/shm; load tls and the AEAD crypto
#   modules (with their dependencies); check /proc/net/tls_stat; bring up lo;
#   cd to the caller's directory; restore the caller's exported environment,
#   umask and open-files limit; run COMMAND with stdin from /dev/null; record
#   its exit status in the temp dir (the host's, via hostfs); power off.
#
# COMMAND's stdout and stderr reach uml.sh's stdout and stderr separately
# (through two extra UML consoles); kernel messages go to a console log that
# is shown only when something goes wrong.
#
# Exit status: COMMAND's, or 125 when the guest itself failed (could not get
# the kernel, did not boot, no kTLS, timed out, never reported a status).
# That is always a failure, never a skip.
#
# Environment:
#   HK_UML_BIN      alternative linux.uml binary (e.g. a newer kernel)
#   HK_UML_MODULES  its modules directory (the one holding modules.dep);
#                   default: <bin>/../lib/uml/modules/<linux.uml --version>
#   HK_UML_CACHE    where to fetch the Debian packages when they are not
#                   installed; default: <project root>/.cache/uml
set -euo pipefail

readonly prog=uml.sh

usage() {
    cat <<'EOF'
usage: tests/uml.sh [--timeout SECS] [--mem SIZE] -- COMMAND [ARGS...]

Runs COMMAND inside a User-Mode Linux guest with kernel TLS, in the current
directory and with the current exported environment; exits with COMMAND's
status, or 125 if the guest failed (boot failure, no kTLS, timeout).

  --timeout SECS  kill the guest after SECS seconds (default 900)
  --mem SIZE      guest memory, e.g. 768M (default 768M)
  --module NAME   also load this module (and its dependencies), e.g. veth,
                  sch_netem; repeatable; no such module is an error

Environment: HK_UML_BIN, HK_UML_MODULES, HK_UML_CACHE (see the script header).
EOF
}

# Every failure of the harness itself is reported as one line starting with
# "uml.sh: " and exit status 125, so callers can tell it from COMMAND failing.
die() {
    echo "$prog: $*" >&2
    exit 125
}

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
timeout_secs=900
mem=768M
extra_modules=()
while (($#)); do
    case $1 in
        --timeout)   (($# >= 2)) || die "--timeout needs a value"; timeout_secs=$2; shift 2 ;;
        --timeout=*) timeout_secs=${1#*=}; shift ;;
        --mem)       (($# >= 2)) || die "--mem needs a value"; mem=$2; shift 2 ;;
        --mem=*)     mem=${1#*=}; shift ;;
        --module)    (($# >= 2)) || die "--module needs a value"; extra_modules+=("$2"); shift 2 ;;
        --module=*)  extra_modules+=("${1#*=}"); shift ;;
        -h|--help)   usage; exit 0 ;;
        --)          shift; break ;;
        -*)          die "unknown option: $1 (see --help)" ;;
        *)           break ;;   # COMMAND without a leading "--"
    esac
done
(($#)) || die "no COMMAND given (usage: tests/uml.sh [--timeout SECS] [--mem SIZE] -- COMMAND [ARGS...])"
[[ $timeout_secs =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive number of seconds, not '$timeout_secs'"
[[ $mem =~ ^[1-9][0-9]*[kKmMgG]?$ ]] || die "--mem wants a size like 768M, not '$mem'"

# Capture what the guest must reproduce *before* this script changes anything.
caller_cwd=$PWD
caller_umask=$(umask)
# The open-files limit: the guest's default (1024) is far below a typical
# host's, and tests that open many sockets should behave the same in both.
caller_nofile_hard=$(ulimit -Hn)
caller_nofile_soft=$(ulimit -Sn)
# The caller's exported variables, as bash assignments.  `compgen -e` lists
# exactly the exported names; %q quotes any value safely.  Variables that bash
# manages itself (and some of which are read-only) are left to the guest bash.
caller_env=$(
    for name in $(compgen -e); do
        case $name in
            BASHOPTS|SHELLOPTS|BASH_*|SHLVL|PWD|OLDPWD|_) continue ;;
        esac
        printf 'export %s=%q\n' "$name" "${!name}"
    done
)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project_root=$(dirname "$script_dir")
cache=${HK_UML_CACHE:-$project_root/.cache/uml}

# ---------------------------------------------------------------------------
# The kernel and busybox
# ---------------------------------------------------------------------------

# Download Debian package $1 into the cache and unpack it there, once.
# apt-get download needs no root; dpkg -x just unpacks.  A lock keeps
# concurrent runs from fetching into the same cache at the same time, and the
# marker file, written last, makes an interrupted fetch get redone rather than
# trusted.  A filled cache is only read (it may belong to another user).
fetch_package() {
    local pkg=$1 marker=$cache/.unpacked-$1
    [[ -e $marker ]] && return 0
    mkdir -p "$cache" || die "cannot create the cache directory $cache"
    exec 9>>"$cache/.lock" || die "cannot write $cache/.lock"
    flock 9 || die "cannot lock $cache/.lock"
    if [[ ! -e $marker ]]; then
        echo "$prog: fetching $pkg into $cache" >&2
        local apt_opts=(-q)
        # As root, apt warns that its _apt user may not be able to write the
        # directory and downloads as root anyway; say so up front, quietly.
        ((EUID == 0)) && apt_opts+=(-o APT::Sandbox::User=root)
        (cd "$cache" && rm -f "$pkg"_*.deb && apt-get "${apt_opts[@]}" download "$pkg" >&2) ||
            die "apt-get download $pkg failed (package lists missing or stale? run 'apt-get update')"
        dpkg -x "$cache/$pkg"_*.deb "$cache" || die "dpkg -x of $pkg failed"
        rm -f "$cache/$pkg"_*.deb    # unpacked is all we need
        touch "$marker"
    fi
    exec 9>&-
}

if [[ -n ${HK_UML_BIN:-} ]]; then
    uml_bin=$HK_UML_BIN
elif [[ -x /usr/bin/linux.uml ]] &&
     [[ -d /usr/lib/uml/modules/$(/usr/bin/linux.uml --version 2>/dev/null) ]]; then
    uml_bin=/usr/bin/linux.uml       # the user-mode-linux package is installed
else
    fetch_package user-mode-linux
    uml_bin=$cache/usr/bin/linux.uml
fi
[[ -x $uml_bin ]] || die "no executable UML kernel at $uml_bin"
uml_bin=$(realpath "$uml_bin")
# A UML kernel prints its release with --version and exits, without booting.
kver=$("$uml_bin" --version 2>/dev/null) || kver=
if [[ ! $kver =~ ^[0-9]+\.[0-9]+[^[:space:]/]*$ ]]; then
    die "$uml_bin --version did not print a kernel release; is it a User-Mode Linux kernel?"
fi
modules_dir=${HK_UML_MODULES:-$(dirname "$uml_bin")/../lib/uml/modules/$kver}
[[ -f $modules_dir/modules.dep ]] || die "no modules.dep in $modules_dir (set HK_UML_MODULES)"
modules_dir=$(realpath "$modules_dir")

# The guest's setup runs in busybox sh, which must find its applets itself,
# without PATH (the host has no insmod): true of busybox-static's /bin/busybox,
# so use that if installed, else the cached one.
busybox_applets=(cat insmod ip ln mkdir mkfifo mount poweroff stty)
busybox_ok() {
    # shellcheck disable=SC2016  # $a is for the busybox shell
    [[ -x $1 ]] &&
        env -i PATH=/nonexistent "$1" sh -c \
            'for a; do command -v "$a" >/dev/null || exit 1; done' sh "${busybox_applets[@]}"
}
if busybox_ok /bin/busybox; then
    busybox=/bin/busybox
else
    fetch_package busybox-static
    busybox=$cache/bin/busybox
    busybox_ok "$busybox" || die "$busybox lacks a standalone shell or one of: ${busybox_applets[*]}"
fi

# ---------------------------------------------------------------------------
# Private temp dir: init script, console log, exit status, FIFOs.
# The guest writes only here (and wherever COMMAND itself writes).
# ---------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uml.XXXXXXXX")
tmp=$(realpath "$tmp")
uml_pid='' out_cat='' err_cat=''
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    # The guest is still running only if uml.sh itself was interrupted;
    # timeout(1) forwards the TERM to the whole guest.  (No `a && b` here:
    # under set -e a failing last command would end the trap early.)
    if [[ -n $uml_pid ]]; then
        kill -TERM "$uml_pid" 2>/dev/null || true
        wait "$uml_pid" 2>/dev/null || true
        # The output relays, in case they still wait for a writer.
        local pid
        for pid in "$out_cat" "$err_cat"; do
            if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# Modules to load, in dependency order.
# ---------------------------------------------------------------------------
# Named the way the kernel itself asks for them (request_module() aliases,
# looked up in modules.alias), because the module names behind them change
# between kernels (6.1: chacha20 is in chacha_generic, gcm needs ghash_generic;
# 7.x: chacha20 is in chacha, gcm uses a GHASH library found by modules.dep).
# The kernel cannot load them on demand in the guest: no modprobe knows this
# kernel's modules there.
#   tcp-ulp-tls                  kTLS itself (setsockopt TCP_ULP "tls")
#   crypto-gcm -ccm -rfc7539     AEAD templates software kTLS instantiates:
#                                gcm(aes), ccm(aes), rfc7539(chacha20,poly1305)
#   crypto-aes -ghash -ctr -cbcmac -chacha20 -poly1305
#                                what those templates look up by name at run
#                                time (not in modules.dep)
#   cryptomgr                    builds template instances
#   net-pf-10                    IPv6 (a module in Debian's 6.1 UML kernel;
#                                without it socket(AF_INET6) fails)
# A name with no module file is built in or unused by that kernel: skipped.
wanted_modules=(
    tcp-ulp-tls cryptomgr
    crypto-gcm crypto-ccm crypto-rfc7539
    crypto-aes crypto-ghash crypto-ctr crypto-cbcmac crypto-chacha20 crypto-poly1305
    net-pf-10
)

# Module name as the kernel sees it, into $REPLY: the file name without
# .ko[.xz|.zst|.gz], with "-" and "_" equivalent.  (No $(...): forking once
# per line of modules.dep would cost seconds.)
modname() {
    REPLY=${1##*/}
    REPLY=${REPLY%%.ko*}
    REPLY=${REPLY//-/_}
}

declare -A mod_path=() mod_deps=() alias_mods=() seen=()
while IFS= read -r line; do
    file=${line%%:*}
    modname "$file"
    mod_path[$REPLY]=$modules_dir/$file
    mod_deps[$REPLY]=${line#*:}
done <"$modules_dir/modules.dep"
# "alias NAME MODULE", possibly several modules per name (modprobe loads all).
if [[ -f $modules_dir/modules.alias ]]; then
    while read -r keyword name module; do
        if [[ $keyword == alias ]]; then alias_mods[$name]+=" $module"; fi
    done <"$modules_dir/modules.alias"
fi

load_order=()    # paths the guest will insmod, dependencies first
skipped=()       # wanted names with no module file (built in, or not used)
# Depth-first: every dependency before the module that needs it, each once.
# modules.dep lists the full transitive set, recursing is still harmless.
resolve() {
    local name=$1 dep
    [[ -n ${seen[$name]:-} ]] && return 0
    seen[$name]=1
    for dep in ${mod_deps[$name]}; do
        modname "$dep"
        resolve "$REPLY"
    done
    local path
    path=$(plain_module "$name") || exit $?
    load_order+=("$path")
}

# busybox insmod passes the file to init_module() as is, and kernels only take
# compressed modules through finit_module(); so unpack compressed ones into
# the temp dir on the host side and load the plain copy.
plain_module() {
    local name=$1 path=${mod_path[$1]} out=$tmp/modules/$1.ko
    case $path in
        *.ko) echo "$path"; return ;;
        *.ko.xz)  set -- xz -dc ;;
        *.ko.zst) set -- zstd -qdc ;;
        *.ko.gz)  set -- gzip -dc ;;
        *) die "do not know how to load module file $path" ;;
    esac
    command -v "$1" >/dev/null || die "need $1 to decompress $path"
    mkdir -p "$tmp/modules"
    "$@" "$path" >"$out" || die "could not decompress $path"
    echo "$out"
}

# --module NAME: what a suite needs beyond kTLS (veth, sch_netem for the
# network tests).  Asked for by name, so a missing one is the guest's fault.
for name in "${extra_modules[@]}"; do
    modname "$name"
    [[ -n ${mod_path[$REPLY]:-} ]] || die "--module $name: no such module in $modules_dir"
    resolve "$REPLY"
done
for name in "${wanted_modules[@]}"; do
    modname "$name"
    if [[ -n ${mod_path[$REPLY]:-} ]]; then
        resolve "$REPLY"
    elif [[ -n ${alias_mods[$name]:-} ]]; then
        for module in ${alias_mods[$name]}; do
            modname "$module"
            if [[ -n ${mod_path[$REPLY]:-} ]]; then resolve "$REPLY"; fi
        done
    else
        skipped+=("$name")
    fi
done

# ---------------------------------------------------------------------------
# The guest's PID 1, in two parts.
#   init  busybox sh: sets the guest up.  Creating processes is what is slow
#         in UML, and busybox sh runs its applets without exec'ing programs.
#   run   bash, exec'ed by init: the caller's environment (bash-quoted) and
#         COMMAND; records the exit status and powers off.
# Both are the host's binaries, read through hostfs.
# ---------------------------------------------------------------------------

# Quote $1 for any POSIX sh (single quotes; ' becomes '\'').
shq() {
    local q=\'\\\'\'
    printf "'%s'" "${1//\'/$q}"
}

mkdir "$tmp/uml"
{
    printf '#!%s sh\n' "$busybox"
    cat <<'EOF'
# Generated by tests/uml.sh: PID 1 of the UML guest, part 1 (setup).
EOF
    printf 'tmp=%s\n' "$(shq "$tmp")"
    printf 'bb=%s\n' "$(shq "$busybox")"
    cat <<'EOF'

# A failure of the guest setup: tell uml.sh why (it prints it and exits 125).
# poweroff syncs first.  PID 1 must not just exit (the kernel would panic).
fail() {
    echo "uml.sh init: $*"
    echo "$*" >"$tmp/setup-error"
    "$bb" poweroff -f
    exit 1
}

# /proc first, and by explicit path: busybox runs some applets by executing
# /proc/self/exe, and until the guest's procfs is mounted, /proc is the
# host's (through hostfs), whose self/exe is the UML kernel binary.
"$bb" mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
# /dev is the guest's own devtmpfs (the kernel mounts it there itself when
# built with DEVTMPFS_MOUNT), not the host's.  Complete it as udev would:
# ptys, POSIX shared memory/semaphores (e.g. Python multiprocessing), /dev/fd
# and /dev/std{in,out,err} (scripts write to /dev/stderr).
[ -e /dev/tty1 ] || mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs on /dev"
mkdir -p /dev/pts /dev/shm &&
    mount -t devpts devpts /dev/pts &&
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "cannot mount /dev/pts or /dev/shm"
ln -sf /proc/self/fd /dev/fd && ln -sf fd/0 /dev/stdin &&
    ln -sf fd/1 /dev/stdout && ln -sf fd/2 /dev/stderr || fail "cannot create the /dev/fd links"

# Modules, dependencies first (resolved by uml.sh from modules.dep).
EOF
    for path in "${load_order[@]}"; do
        printf 'insmod %s || fail "insmod %s failed"\n' "$(shq "$path")" "${path##*/}"
    done
    if ((${#skipped[@]})); then
        printf 'echo "uml.sh init: no module for (built in?): %s"\n' "${skipped[*]}"
    fi
    cat <<'EOF'
[ -e /proc/net/tls_stat ] || fail "kTLS not available: no /proc/net/tls_stat after loading tls"
# Autoloading cannot work (no modprobe knows this kernel's modules); fail fast.
echo >/proc/sys/kernel/modprobe

ip link set lo up || fail "cannot bring up lo"

# COMMAND's output goes through pipes (so it does not see a terminal, as in
# CI), relayed by two cats to the consoles tty1 and tty2, which uml.sh
# connects to its own stdout and stderr.  -opost: no \n -> \r\n on the way.
stty -F /dev/tty1 -opost && stty -F /dev/tty2 -opost ||
    fail "cannot set the output consoles to raw"
mkfifo "$tmp/out" "$tmp/err" "$tmp/tick" || fail "cannot create FIFOs"
cat <"$tmp/out" >/dev/tty1 &
out_pid=$!
cat <"$tmp/err" >/dev/tty2 &
err_pid=$!

EOF
    # shellcheck disable=SC2016  # $out_pid, $err_pid: for the guest
    printf 'exec %s %s "$out_pid" "$err_pid"\n' "$(shq "$BASH")" "$(shq "$tmp/run")"
    printf 'fail %s\n' "$(shq "cannot run $BASH")"
} >"$tmp/init"
chmod +x "$tmp/init"

{
    cat <<'EOF'
# Generated by tests/uml.sh: PID 1 of the UML guest, part 2 (COMMAND).
# Arguments: the PIDs of the two output relays started by part 1.
EOF
    printf 'tmp=%q\n' "$tmp"
    printf 'bb=%q\n' "$busybox"
    printf 'cwd=%q\n' "$caller_cwd"
    printf 'command=('; printf ' %q' "$@"; printf ' )\n'
    cat <<'EOF'
out_pid=$1 err_pid=$2

# poweroff syncs first, so the status file reaches the host.  PID 1 must
# never just exit (the kernel would panic instead of stopping).
trap '"$bb" poweroff -f' EXIT

cd "$cwd" || { echo "cannot cd to $cwd" >"$tmp/setup-error"; exit 1; }

# The caller's environment, and nothing from the kernel (TERM=linux, HOME=/,
# unknown boot options).
for v in $(compgen -e); do unset "$v"; done
EOF
    printf '%s\n' "$caller_env"
    printf 'umask %s\n' "$caller_umask"
    # soft, hard, soft again: works whichever way the limits move.
    printf 'ulimit -Sn %s 2>/dev/null; ulimit -Hn %s 2>/dev/null; ulimit -Sn %s 2>/dev/null\n' \
        "$caller_nofile_soft" "$caller_nofile_hard" "$caller_nofile_soft"
    cat <<'EOF'

# Say "command not found" without naming this generated file.
command_not_found_handle() {
    echo "uml.sh guest: $1: command not found" >&2
    return 127
}
"${command[@]}" </dev/null >"$tmp/out" 2>"$tmp/err"
status=$?

# Let the output drain; but a background process COMMAND left behind may
# hold the pipes open forever, so do not wait for that beyond 5 seconds.
# (read -t on a FIFO nobody writes is a sleep without starting a process.)
exec 5<>"$tmp/tick"
for ((i = 0; i < 100; i++)); do
    kill -0 "$out_pid" 2>/dev/null || kill -0 "$err_pid" 2>/dev/null || break
    read -r -t 0.05 -u 5 || true
done

echo "$status" >"$tmp/status"
EOF
} >"$tmp/run"

# ---------------------------------------------------------------------------
# Boot.
# ---------------------------------------------------------------------------
# UML gets FIFOs, not our stdout/stderr: it makes its channel descriptors
# non-blocking, which would otherwise leak O_NONBLOCK into the caller's
# terminal or pipe after we exit.  Two cats relay them (started after the
# guest, so that an interrupt in between cannot leave them waiting forever).
mkfifo "$tmp/stdout" "$tmp/stderr"

# UML backs guest memory with an unlinked file in $TMPDIR; use our own dir,
# which is writable.  The caller's TMPDIR is untouched inside the guest.
# uml_dir keeps UML's pid/mconsole directory out of $HOME/.uml.
# con=null: no other consoles; con0 (the kernel console) goes to the log;
# con1/con2 carry COMMAND's stdout/stderr.
# Two boot-time savers (together about 1.5 s of a 2 s boot): no legacy BSD
# ptys (creating 256 of them), and no RAID6 algorithm benchmark (btrfs is
# built in, but nothing in the guest uses RAID6); its initcall is
# raid6_select_algo in 6.1 and raid6_init in 7.x (unknown names are ignored).
# shellcheck disable=SC2054  # the commas belong to UML's con options
boot=(
    "$uml_bin" "mem=$mem" root=/dev/root rootfstype=hostfs hostfs=/ rw
    "init=$tmp/init" quiet "uml_dir=$tmp/uml"
    con=null con0=null,fd:3 con1=null,fd:4 con2=null,fd:5
    pty.legacy_count=0 initcall_blacklist=raid6_select_algo,raid6_init
)
start=$SECONDS
TMPDIR=$tmp timeout --kill-after=10 "$timeout_secs" "${boot[@]}" \
    </dev/null >>"$tmp/console.log" 2>&1 3>&1 4>"$tmp/stdout" 5>"$tmp/stderr" &
uml_pid=$!
cat <"$tmp/stdout" &
out_cat=$!
cat <"$tmp/stderr" >&2 &
err_cat=$!
rc=0
wait "$uml_pid" || rc=$?
uml_pid=
elapsed=$((SECONDS - start))
wait "$out_cat" "$err_cat" || true

# ---------------------------------------------------------------------------
# Outcome.
# ---------------------------------------------------------------------------
guest_failed() {
    echo "$prog: $*" >&2
    if [[ -s $tmp/console.log ]]; then
        echo "$prog: last lines of the guest console log:" >&2
        tail -n 25 "$tmp/console.log" | sed 's/\r$//; s/^/  | /' >&2
    fi
    exit 125
}

if [[ -s $tmp/setup-error ]]; then
    guest_failed "guest setup failed: $(<"$tmp/setup-error")"
fi
if [[ -s $tmp/status ]]; then
    status=$(<"$tmp/status")
    [[ $status =~ ^[0-9]+$ ]] || guest_failed "guest wrote a bad exit status: '$status'"
    exit "$status"
fi
if ((rc == 124 || (rc == 137 && elapsed >= timeout_secs))); then
    guest_failed "guest timed out after ${timeout_secs} s (--timeout) and was killed"
fi
guest_failed "guest ended without reporting COMMAND's exit status (linux.uml exit status $rc after ${elapsed} s; boot failure?)"
