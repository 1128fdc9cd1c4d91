#!/bin/bash
# tests/fetch_uml_sid.sh - fetch Debian sid's User-Mode Linux kernel and make
# it runnable here, for tests/uml.sh.
#
#   eval "$(bash tests/fetch_uml_sid.sh)"
#   HK_UML_BIN=$HK_UML_BIN HK_UML_MODULES=$HK_UML_MODULES tests/uml.sh -- ...
#
# Why: TLS 1.3 rekey (a second TLS_TX/TLS_RX after a KeyUpdate) needs kernel
# >= 6.14, and the UML kernel of the system's own Debian release may be older
# (bookworm's is 6.1).  Debian sid's `user-mode-linux` is a current kernel with
# CONFIG_TLS=m, but its linux.uml is linked against sid's newer glibc.  So we
# download sid's user-mode-linux and libc6 with apt-get (nothing is installed
# system-wide), unpack both, and patch the unpacked linux.uml to use sid's
# dynamic loader and libraries.  Running it as `ld.so linux.uml` instead does
# not work: UML re-executes itself and sizes its memory from its load address.
#
# On success prints exactly two lines, for eval, to stdout:
#   HK_UML_BIN=<absolute path of the patched linux.uml>
#   HK_UML_MODULES=<absolute path of its modules directory (has modules.dep)>
# Everything else goes to stderr.  On failure: one line on stderr starting
# with "fetch_uml_sid.sh: ", and exit status 1.
#
# The result is cached in ${HK_UML_CACHE:-<project root>/.cache/uml}/sid and
# reused as it is on later runs (no network then).  It stays at the sid
# version first fetched; delete that directory to get a newer one.
#
# apt: the system's sources and package lists are only read.  Our own sources
# list (the system's Debian mirror, suite sid), package lists and apt cache
# live in the cache directory; `apt-get update` with those options writes only
# there.  The mirror is taken from the system's apt configuration at run time.
set -euo pipefail

readonly prog=fetch_uml_sid.sh

die() {
    echo "$prog: $*" >&2
    exit 1
}
# Progress and tool output: stderr only, stdout is for the result.
say() {
    echo "$prog: $*" >&2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project_root=$(dirname "$script_dir")
cache_dir=${HK_UML_CACHE:-$project_root/.cache/uml}/sid
ready=$cache_dir/ready     # paths of the kernel and its modules; written last

# ---------------------------------------------------------------------------
# Reuse a finished cache.
# ---------------------------------------------------------------------------
# The patched binary holds absolute paths (its loader and libraries), so a
# cache that was moved or half-deleted must not be trusted: check that the
# kernel still starts (`linux.uml --version` prints its release and exits
# without booting, in milliseconds) and that its modules are there.
cache_ok() {
    [[ -s $ready ]] || return 1
    local bin modules kver
    { IFS= read -r bin && IFS= read -r modules; } <"$ready" || return 1
    [[ -x $bin && -f $modules/modules.dep ]] || return 1
    kver=$("$bin" --version 2>/dev/null) || return 1
    [[ $kver == "${modules##*/}" ]]
}
# The result lines, quoted for eval (%q leaves ordinary paths as they are).
print_result() {
    local bin modules
    { IFS= read -r bin && IFS= read -r modules; } <"$ready"
    printf 'HK_UML_BIN=%q\nHK_UML_MODULES=%q\n' "$bin" "$modules"
}

if cache_ok; then
    print_result
    exit 0
fi

for tool in apt-get apt-config dpkg flock; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get, apt-config, dpkg: a Debian system)"
done
mkdir -p "$cache_dir" || die "cannot create the cache directory $cache_dir"
cache_dir=$(cd "$cache_dir" && pwd -P)
ready=$cache_dir/ready
# One fetch at a time per cache (parallel test runs); whoever waited for the
# lock finds the finished cache.
exec 9>>"$cache_dir/.lock" || die "cannot write $cache_dir/.lock"
flock 9 || die "cannot lock $cache_dir/.lock"
if cache_ok; then
    print_result
    exit 0
fi
rm -f "$ready"

# ---------------------------------------------------------------------------
# The system's Debian mirror and release, from its apt sources.
# ---------------------------------------------------------------------------
# Prints "SUITE<TAB>URI<TAB>SIGNED-BY" for each binary ("deb") source entry,
# from one-line (*.list) and deb822 (*.sources) files.  SIGNED-BY is empty
# unless it is a single key file or fingerprint (an inline key is not copied;
# apt then falls back to its trusted keyrings).
list_entries_oneline() {
    local line opts uri suite signed
    # "deb [OPTIONS] URI SUITE COMPONENTS..." (not deb-src)
    local re='^[[:space:]]*deb[[:space:]]+(\[([^]]*)\][[:space:]]*)?([^[:space:]]+)[[:space:]]+([^[:space:]]+)'
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%#*}
        [[ $line =~ $re ]] || continue
        opts=${BASH_REMATCH[2]} uri=${BASH_REMATCH[3]} suite=${BASH_REMATCH[4]} signed=''
        if [[ $opts =~ (^|[[:space:]])signed-by=([^[:space:]]+) ]]; then
            signed=${BASH_REMATCH[2]}
        fi
        printf '%s\t%s\t%s\n' "$suite" "$uri" "$signed"
    done <"$1"
}
list_entries_deb822() {
    awk '
        function flush(   n, i, s, u) {
            if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no" && uris != "") {
                split(uris, u, /[ \t]+/)
                if (signed ~ /[ \t]/) signed = ""
                n = split(suites, s, /[ \t]+/)
                for (i = 1; i <= n; i++)
                    if (s[i] != "") print s[i] "\t" u[1] "\t" signed
            }
            types = uris = suites = signed = enabled = key = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/   { if (key == "signed-by") signed = ""; next }   # inline key
        {
            key = tolower(substr($0, 1, index($0, ":") - 1))
            val = substr($0, index($0, ":") + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", val)
            if (key == "types") types = val
            else if (key == "uris") uris = val
            else if (key == "suites") suites = val
            else if (key == "signed-by") signed = val
            else if (key == "enabled") enabled = val
        }
        END { flush() }
    ' "$1"
}
list_entries() {
    local SL='' SP='' f
    # Where this apt reads its sources (normally /etc/apt/sources.list{,.d}).
    eval "$(apt-config shell SL Dir::Etc::sourcelist/f SP Dir::Etc::sourceparts/d)"
    if [[ -n $SL && -f $SL ]]; then list_entries_oneline "$SL"; fi
    if [[ -n $SP && -d $SP ]]; then
        for f in "$SP"/*.list; do
            if [[ -f $f ]]; then list_entries_oneline "$f"; fi
        done
        for f in "$SP"/*.sources; do
            if [[ -f $f ]]; then list_entries_deb822 "$f"; fi
        done
    fi
}

# Sets mirror, signed_by and system_suite from the entry for the system's
# Debian release (bookworm, ...).  Matching the suite rather than the host
# keeps third-party repositories and -security/-updates entries (other URIs)
# out.
find_mirror() {
    local codename suite uri signed
    # shellcheck disable=SC1091  # a system file, read at run time
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || codename=''
    mirror='' signed_by='' system_suite=''
    while IFS=$'\t' read -r suite uri signed; do
        case $suite in
            "$codename"|stable|testing|unstable|sid) ;;
            *) continue ;;
        esac
        [[ -n $suite ]] || continue
        mirror=$uri signed_by=$signed system_suite=$suite
        # An exact match of the system's own codename wins over a generic name.
        if [[ $suite == "$codename" ]]; then break; fi
    done < <(list_entries)
    [[ -n $mirror ]] ||
        die "found no Debian mirror for release '${codename:-?}' in the system's apt sources"
}

# ---------------------------------------------------------------------------
# Download (once): user-mode-linux and libc6 from sid; patchelf from the
# system's own release when it is not installed.
# ---------------------------------------------------------------------------
patchelf=$(command -v patchelf || true)
debs_dir=$cache_dir/debs
wanted="user-mode-linux libc6"
[[ -n $patchelf ]] || wanted+=" patchelf"

# .complete records what was downloaded; redo the download if that changed
# (e.g. patchelf was uninstalled) or an earlier download was interrupted.
if [[ ! -f $debs_dir/.complete || $(<"$debs_dir/.complete") != "$wanted" ]]; then
    find_mirror
    say "sid from the system's Debian mirror (that of its $system_suite entry)"
    packages=(user-mode-linux/sid libc6/sid)
    [[ -n $patchelf ]] || packages+=("patchelf/$system_suite")
    arch=$(dpkg --print-architecture)
    apt_dir=$cache_dir/apt
    rm -rf "$apt_dir" "$debs_dir"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$debs_dir" ||
        die "cannot create $apt_dir"
    {
        # Same mirror and key as the system's entry; sid always, the
        # system's release only for patchelf.
        opts="arch=$arch${signed_by:+ signed-by=$signed_by}"
        echo "deb [$opts] $mirror sid main"
        if [[ -z $patchelf && $system_suite != sid ]]; then
            echo "deb [$opts] $mirror $system_suite main"
        fi
    } >"$apt_dir/sources.list"
    # Private sources, lists and cache: nothing under the system's apt state
    # is written.  The system's apt.conf.d still applies (proxies, ...).
    apt_opts=(
        -q
        -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
        -o Dir::Etc::sourceparts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o Acquire::Languages=none
    )
    # As root apt downloads as its _apt user, which cannot write our
    # directories; it would warn and use root anyway.  Say so up front.
    ((EUID == 0)) && apt_opts+=(-o APT::Sandbox::User=root)

    start=$SECONDS
    say "apt-get update (private lists in $apt_dir)"
    # --error-on=any: by default a list that failed to download is only a
    # warning, and the download below would then fail less clearly.
    apt-get "${apt_opts[@]}" update --error-on=any >&2 ||
        die "apt-get update of the private sid sources failed (mirror $mirror unreachable?)"
    say "apt-get download ${packages[*]}"
    (cd "$debs_dir" && apt-get "${apt_opts[@]}" download "${packages[@]}" >&2) ||
        die "apt-get download ${packages[*]} failed"
    debs_kb=$(du -sk "$debs_dir" | cut -f1)
    say "package lists and packages downloaded in $((SECONDS - start)) s (packages: ${debs_kb} KiB)"
    # The lists are only needed for this download; sid's go stale anyway.
    rm -rf "$apt_dir"
    printf '%s' "$wanted" >"$debs_dir/.complete"
fi

# ---------------------------------------------------------------------------
# Unpack and patch.
# ---------------------------------------------------------------------------
# Unpack the one .deb of package $1 in debs/ (apt names them
# NAME_VERSION_ARCH.deb) into the fresh directory $2.
unpack() {
    local debs=("$debs_dir/$1"_*.deb)
    [[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] ||
        die "expected one $1 package in $debs_dir (delete $cache_dir to fetch again)"
    rm -rf "$2"
    dpkg -x "${debs[0]}" "$2" || die "dpkg -x of ${debs[0]##*/} failed"
}
unpack user-mode-linux "$cache_dir/uml"
unpack libc6 "$cache_dir/libc"
if [[ -z $patchelf ]]; then
    unpack patchelf "$cache_dir/tools"
    patchelf=$cache_dir/tools/usr/bin/patchelf
    # Built for the system's release, so the system's libraries suffice.
    "$patchelf" --version >/dev/null 2>&1 || die "the downloaded patchelf does not run"
fi

orig=$cache_dir/uml/usr/bin/linux.uml
[[ -f $orig ]] || die "sid's user-mode-linux has no usr/bin/linux.uml"

# sid's loader: the file named like the interpreter linux.uml asks for.
# Regular files only: the package's symlinks may be absolute, i.e. point at
# the host's own (older) loader and libc.
interp=$("$patchelf" --print-interpreter "$orig") || die "cannot read the ELF interpreter of $orig"
loader=$(find "$cache_dir/libc" -type f -name "${interp##*/}" | head -n 1)
[[ -n $loader ]] || die "sid's libc6 has no ${interp##*/}"
libc=$(find "$cache_dir/libc" -type f -name libc.so.6 | head -n 1)
[[ -n $libc ]] || die "sid's libc6 has no libc.so.6"
libdir=$(dirname "$libc")

# Every library linux.uml needs must come from sid's libc6: a host library
# next to sid's loader would not work.
needed=$("$patchelf" --print-needed "$orig") || die "cannot read the needed libraries of $orig"
for lib in $needed; do
    [[ -e $libdir/$lib ]] || die "linux.uml needs $lib, which sid's libc6 does not provide"
done

# Patched where dpkg -x put it (a fresh unpack of the .deb, our own copy):
# there tests/uml.sh also finds the modules by itself, at
# <bin>/../lib/uml/modules/<release>, should a caller set only HK_UML_BIN.
bin=$orig
# --force-rpath: DT_RPATH (unlike the default DT_RUNPATH) is searched before
# LD_LIBRARY_PATH, so a caller's LD_LIBRARY_PATH cannot slip the host's libc
# in under sid's loader.
"$patchelf" --set-interpreter "$loader" --force-rpath --set-rpath "$libdir" "$bin" ||
    die "patchelf of $bin failed"

kver=$("$bin" --version 2>/dev/null) ||
    die "the patched linux.uml does not start ($bin --version failed)"
[[ $kver =~ ^[0-9]+\.[0-9]+ ]] || die "$bin --version printed '$kver', not a kernel release"
modules=$cache_dir/uml/usr/lib/uml/modules/$kver
[[ -f $modules/modules.dep ]] || die "no modules.dep in $modules"
say "sid UML kernel $kver ready in $cache_dir"

printf '%s\n%s\n' "$bin" "$modules" >"$ready.tmp"
mv "$ready.tmp" "$ready"
print_result
