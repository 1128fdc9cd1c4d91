#!/bin/bash
# tests/uml.sh - run a command inside a User-Mode Linux (UML) guest whose
# kernel has kernel TLS (kTLS), and exit with the command's exit status.
#
#   tests/uml.sh [--timeout SECS] [--mem SIZE] -- COMMAND [ARGS...]
#
# Why: the machines this project is built on run a kernel without CONFIG_TLS,
# so TCP_ULP "tls" fails there.  Debian's `user-mode-linux` kernel has
# CONFIG_TLS=m and boots in a few seconds as an ordinary process, with the
# host's / as its root filesystem (hostfs).  The guest therefore sees the same
# files, binaries and libraries as the caller, and COMMAND runs unchanged.
#
# What the guest does (generated init script, run as PID 1):
#   mount /proc and /sys, load tls + the AEAD crypto modules (with their
#   dependencies), check /proc/net/tls_stat, bring up lo, cd to the caller's
#   directory, restore the caller's exported environment, run COMMAND with
#   stdin from /dev/null, record its exit status on the host side, power off.
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
while (($#)); do
    case $1 in
        --timeout)   (($# >= 2)) || die "--timeout needs a value"; timeout_secs=$2; shift 2 ;;
        --timeout=*) timeout_secs=${1#*=}; shift ;;
        --mem)       (($# >= 2)) || die "--mem needs a value"; mem=$2; shift 2 ;;
        --mem=*)     mem=${1#*=}; shift ;;
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
kver=$("$uml_bin" --version 2>/dev/null) && [[ $kver =~ ^[0-9]+\.[0-9]+[^[:space:]/]*$ ]] ||
    die "$uml_bin --version did not print a kernel release; is it a User-Mode Linux kernel?"
modules_dir=${HK_UML_MODULES:-$(dirname "$uml_bin")/../lib/uml/modules/$kver}
[[ -f $modules_dir/modules.dep ]] || die "no modules.dep in $modules_dir (set HK_UML_MODULES)"
modules_dir=$(realpath "$modules_dir")

# The guest runs the host's files, so any busybox with the applets we use
# works, static or not; busybox-static (in the cache) always has them.
busybox_applets=(insmod ip mount poweroff stty sync sleep)
has_applets() {
    local list
    list=$("$1" --list 2>/dev/null) || return 1
    local applet
    for applet in "${busybox_applets[@]}"; do
        grep -qx "$applet" <<<"$list" || return 1
    done
}
if has_applets /bin/busybox; then
    busybox=/bin/busybox
else
    fetch_package busybox-static
    busybox=$cache/bin/busybox
    has_applets "$busybox" || die "$busybox lacks one of: ${busybox_applets[*]}"
fi

# ---------------------------------------------------------------------------
# Private temp dir: init script, console log, exit status, FIFOs.
# The guest writes only here (and wherever COMMAND itself writes).
# ---------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uml.XXXXXXXX")
tmp=$(realpath "$tmp")
uml_pid=
cleanup() {
    # The guest is still running only if uml.sh itself was interrupted;
    # timeout(1) forwards the TERM to the whole guest.  (No `a && b` here:
    # under set -e a failing last command would end the trap early.)
    if [[ -n $uml_pid ]]; then
        kill -TERM "$uml_pid" 2>/dev/null || true
        wait "$uml_pid" 2>/dev/null || true
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
# tls itself, and the crypto the kernel's software kTLS asks for: gcm(aes),
# ccm(aes) (uses ctr) and rfc7539(chacha20,poly1305).  The crypto API finds
# the pieces of those templates (ghash, chacha20, poly1305, aes) at run time
# through request_module(), which modules.dep does not record and which cannot
# work here (no modprobe for this kernel), so they are named explicitly.
# ipv6 is a module in Debian's UML kernel; without it socket(AF_INET6) fails.
# Names that are built into a kernel are skipped.
wanted_modules=(
    tls
    cryptomgr aes_generic gcm ghash_generic ctr ccm
    chacha_generic poly1305_generic chacha20poly1305
    ipv6
)

# Module name as the kernel sees it, into $REPLY: the file name without
# .ko[.xz|.zst|.gz], with "-" and "_" equivalent.  (No $(...): forking once
# per line of modules.dep would cost seconds.)
modname() {
    REPLY=${1##*/}
    REPLY=${REPLY%%.ko*}
    REPLY=${REPLY//-/_}
}

declare -A mod_path=() mod_deps=() builtin=() seen=()
while IFS= read -r line; do
    file=${line%%:*}
    modname "$file"
    mod_path[$REPLY]=$modules_dir/$file
    mod_deps[$REPLY]=${line#*:}
done <"$modules_dir/modules.dep"
if [[ -f $modules_dir/modules.builtin ]]; then
    while IFS= read -r line; do modname "$line"; builtin[$REPLY]=1; done <"$modules_dir/modules.builtin"
fi

load_order=()    # paths the guest will insmod, dependencies first
skipped=()       # wanted names with no module file
# Depth-first: every dependency before the module that needs it, each once.
# modules.dep lists the full transitive set, recursing is still harmless.
resolve() {
    local name=$1 dep
    [[ -n ${seen[$name]:-} ]] && return 0
    seen[$name]=1
    if [[ -z ${mod_path[$name]:-} ]]; then
        [[ -n ${builtin[$name]:-} ]] || skipped+=("$name")
        return 0
    fi
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

for name in "${wanted_modules[@]}"; do
    modname "$name"
    resolve "$REPLY"
done

# ---------------------------------------------------------------------------
# The guest's init script (PID 1).  Bash, because the caller's environment is
# restored from bash-quoted assignments; it is the host's bash, via hostfs.
# ---------------------------------------------------------------------------
mkdir "$tmp/dev" "$tmp/uml"
{
    printf '#!%s\n' "$BASH"
    cat <<'EOF'
# Generated by tests/uml.sh; runs as PID 1 inside the UML guest.
EOF
    printf 'tmp=%q\n' "$tmp"
    printf 'bb=%q\n' "$busybox"
    printf 'cwd=%q\n' "$caller_cwd"
    echo 'modules=('
    for path in "${load_order[@]}"; do printf '    %q\n' "$path"; done
    echo ')'
    printf 'skipped=(%s)\n' "${skipped[*]}"
    printf 'command=('; printf ' %q' "$@"; printf ' )\n'
    cat <<'EOF'

# PID 1 must never just exit (the kernel would panic instead of stopping).
halt() { "$bb" sync; "$bb" poweroff -f; "$bb" sleep 60; }
trap halt EXIT

# A failure of the guest setup: tell uml.sh why (it prints it and exits 125).
fail() {
    echo "uml.sh init: $*"
    echo "$*" >"$tmp/setup-error"
    exit 1
}

"$bb" mount -t proc proc /proc || fail "cannot mount /proc"
"$bb" mount -t sysfs sysfs /sys || fail "cannot mount /sys"
# Private devtmpfs for the two consoles carrying COMMAND's output (tty1, tty2);
# everything else keeps using the host's /dev through hostfs.
"$bb" mount -t devtmpfs devtmpfs "$tmp/dev" || fail "cannot mount devtmpfs"

for m in "${modules[@]}"; do
    "$bb" insmod "$m" || fail "insmod $m failed"
done
((${#skipped[@]} == 0)) || echo "uml.sh init: no module file (not built in either?): ${skipped[*]}"
[[ -e /proc/net/tls_stat ]] || fail "kTLS not available: no /proc/net/tls_stat after loading tls"
# Autoloading cannot work (no modprobe for this kernel); fail fast, not slowly.
echo >/proc/sys/kernel/modprobe

"$bb" ip link set lo up || fail "cannot bring up lo"
cd "$cwd" || fail "cannot cd to $cwd"

# The caller's environment, and nothing from the kernel (TERM=linux, HOME=/).
for v in $(compgen -e); do unset "$v"; done
EOF
    printf '%s\n' "$caller_env"
    printf 'umask %s\n' "$caller_umask"
    cat <<'EOF'

# COMMAND's output: through pipes (so it does not see a terminal, as in CI)
# to the two consoles, which uml.sh connects to its own stdout and stderr.
# -opost: no \n -> \r\n translation on the way out.
exec 3>"$tmp/dev/tty1" 4>"$tmp/dev/tty2" || fail "cannot open the output consoles"
"$bb" stty -F "$tmp/dev/tty1" -opost && "$bb" stty -F "$tmp/dev/tty2" -opost ||
    fail "cannot set the output consoles to raw"
"$bb" mkfifo "$tmp/dev/out" "$tmp/dev/err" || fail "cannot create FIFOs"
"$bb" cat <"$tmp/dev/out" >&3 3>&- 4>&- &
out_pid=$!
"$bb" cat <"$tmp/dev/err" >&4 3>&- 4>&- &
err_pid=$!

# Say "command not found" without naming this generated file.
command_not_found_handle() {
    echo "uml.sh guest: $1: command not found" >&2
    return 127
}
"${command[@]}" </dev/null >"$tmp/dev/out" 2>"$tmp/dev/err" 3>&- 4>&-
status=$?

# Let the output drain; but a background process COMMAND left behind may
# hold the pipes open forever, so do not wait for that beyond a few seconds.
for ((i = 0; i < 50; i++)); do
    kill -0 "$out_pid" 2>/dev/null || kill -0 "$err_pid" 2>/dev/null || break
    "$bb" sleep 0.1
done
exec 3>&- 4>&-

echo "$status" >"$tmp/status"
EOF
} >"$tmp/init"
chmod +x "$tmp/init"

# ---------------------------------------------------------------------------
# Boot.
# ---------------------------------------------------------------------------
# UML gets FIFOs, not our stdout/stderr: it makes its channel descriptors
# non-blocking, which would otherwise leak O_NONBLOCK into the caller's
# terminal or pipe after we exit.
mkfifo "$tmp/stdout" "$tmp/stderr"
cat <"$tmp/stdout" &
out_cat=$!
cat <"$tmp/stderr" >&2 &
err_cat=$!

# UML backs guest memory with an unlinked file in $TMPDIR; use our own dir,
# which is writable.  The caller's TMPDIR is untouched inside the guest.
# uml_dir keeps UML's pid/mconsole directory out of $HOME/.uml.
# con=null: no other consoles; con0 (the kernel console) goes to the log;
# con1/con2 carry COMMAND's stdout/stderr.
# Two boot-time savers (together about 1.5 s of a 2 s boot): no legacy BSD
# ptys (creating 256 of them), and no RAID6 algorithm benchmark (btrfs is
# built in, but nothing in the guest uses RAID6).
boot=(
    "$uml_bin" "mem=$mem" root=/dev/root rootfstype=hostfs hostfs=/ rw
    "init=$tmp/init" quiet "uml_dir=$tmp/uml"
    con=null con0=null,fd:3 con1=null,fd:4 con2=null,fd:5
    pty.legacy_count=0 initcall_blacklist=raid6_select_algo
)
start=$SECONDS
TMPDIR=$tmp timeout --kill-after=10 "$timeout_secs" "${boot[@]}" \
    </dev/null >>"$tmp/console.log" 2>&1 3>&1 4>"$tmp/stdout" 5>"$tmp/stderr" &
uml_pid=$!
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

if [[ -s $tmp/status ]]; then
    status=$(<"$tmp/status")
    [[ $status =~ ^[0-9]+$ ]] || guest_failed "guest wrote a bad exit status: '$status'"
    exit "$status"
fi
if [[ -s $tmp/setup-error ]]; then
    guest_failed "guest setup failed: $(<"$tmp/setup-error")"
fi
if ((rc == 124 || (rc == 137 && elapsed >= timeout_secs))); then
    guest_failed "guest timed out after ${timeout_secs} s (--timeout) and was killed"
fi
guest_failed "guest ended without reporting COMMAND's exit status (linux.uml exit status $rc after ${elapsed} s; boot failure?)"
