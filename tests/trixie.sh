#!/usr/bin/env bash
# tests/trixie.sh - build and test the project on Debian trixie's userland
# (OpenSSL 3.5, gcc 14, clang 19, Python 3.13), from a bookworm host.
#
#   tests/trixie.sh            (as root; `make -f Makefile.ktls check-trixie`)
#
# 1. Once: a minimal trixie tree made with debootstrap from the system's own
#    Debian mirror into .cache/trixie (HK_TRIXIE_DIR), with the packages the
#    build and the tests need.  Reused while its marker file is there.
# 2. The project's files (tracked and untracked, not ignored) are copied into
#    the tree at the same absolute path, so that every path the tests print
#    or pass around means the same inside and outside.
# 3. In a private mount namespace (unshare -m: every mount made here goes away
#    with it, however the script ends): /proc, /sys and /dev bound into the
#    tree, then `chroot`:
#      - builds with clang and gcc, -Werror;
#      - runs the unit and host suites (tests/run_tests.sh --no-kernel);
#      - runs kernel_tests.sh, record_tests.sh kernel and tamper_tests.sh in
#        the sid UML kernel (tests/fetch_uml_sid.sh, fetched on the host and
#        bound in read-only) through tests/uml.sh.  uml.sh runs linux.uml
#        with hostfs=/, and a process in the chroot sees the trixie tree as /:
#        the guest's root filesystem is the trixie tree, so the kernel suites
#        run trixie's OpenSSL, Python and shell against a kTLS kernel
#        (checked: the guest's `openssl version` must be the tree's).
# Prints every suite's results and one closing "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
readonly prog=trixie.sh
start=$SECONDS

die() {
	echo "$prog: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

((EUID == 0)) || die "needs root (debootstrap, mounts and chroot); run it as root"
for tool in unshare chroot mount apt-cache apt-get; do
	command -v "$tool" >/dev/null || die "needs $tool"
done

tree=${HK_TRIXIE_DIR:-$ROOT/.cache/trixie}
ready=$tree/.hk-ready
# What the build and every suite need, beyond debootstrap's minbase.
# (python3-cffi-backend by name: debootstrap does not resolve the virtual
# python3-cffi-backend-api-* that python3-cryptography depends on.)
packages=build-essential,make,clang,libssl-dev,openssl,python3
packages+=,python3-cryptography,python3-cffi-backend,procps,iproute2,curl,busybox-static
packages+=,patchelf,xz-utils,zstd,util-linux,ca-certificates
# tests/tpm_tests.sh and tests/install_tests.sh run on trixie too.
packages+=,swtpm,swtpm-tools,tpm2-tools,tpm2-abrmd,tpm2-openssl
packages+=,libtss2-tcti-tabrmd0,dbus,groff-base,man-db,systemd

# The mirror of the system's own Debian release, as apt itself resolved it
# (one-line and deb822 sources alike): e.g. http://deb.debian.org/debian.
system_mirror() {
	local codename
	# shellcheck disable=SC1091  # a system file, read at run time
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || return 1
	apt-cache policy | awk -v s="$codename/main" '$3 == s { print $2; exit }'
}

prepare_tree() {
	local mirror t0=$SECONDS
	if ! command -v debootstrap >/dev/null; then
		echo "$prog: installing debootstrap" >&2
		DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 \
		    install -y debootstrap >/dev/null || die "cannot install debootstrap"
	fi
	mirror=$(system_mirror) || mirror=
	[ -n "$mirror" ] || die "found no Debian mirror for this system's release in its apt sources"
	echo "$prog: debootstrap trixie from $mirror into $tree (once)" >&2
	rm -rf "$tree.new" "$tree"
	mkdir -p "$(dirname "$tree")" || die "cannot create $(dirname "$tree")"
	debootstrap --variant=minbase --include="$packages" trixie "$tree.new" "$mirror" \
	    >"$tree.log" 2>&1 || {
		tail -n 20 "$tree.log" >&2
		die "debootstrap failed (log: $tree.log)"
	}
	mv "$tree.new" "$tree" && echo "$packages" >"$ready" ||
	    die "cannot finish $tree"
	echo "$prog: trixie tree ready in $((SECONDS - t0)) s ($(du -sh "$tree" | cut -f1))" >&2
}

# A tree made with another package list is made again.
[ "$(cat "$ready" 2>/dev/null)" = "$packages" ] || prepare_tree

# The sid UML kernel (7.x, with kTLS rekey), fetched on the host.
sid=$(bash tests/fetch_uml_sid.sh) || die "the sid UML kernel could not be prepared"
eval "$sid"
sid_cache=$(dirname "$(dirname "$(dirname "$(dirname "$HK_UML_BIN")")")")

# The project's files, at the same path inside the tree; its earlier build
# products go with the rest.
dest=$tree$ROOT
rm -rf "$dest" && mkdir -p "$dest" "$tree$sid_cache" ||
	die "cannot create $dest"
# (Existing files only: a tracked file deleted in the worktree is left out.)
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do
		if [ -e "$f" ]; then printf '%s\0' "$f"; fi
	done |
	tar --null -T - -cf - | tar -C "$dest" -xf - || die "cannot copy the project into $dest"

# The inner script: runs as root in the chroot.
inner=$(
	cat <<'EOF'
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C.UTF-8
unset TMPDIR
cd "$HK_DIR" || exit 1
passed=0 failed=0
# result LINE RC NAME: add a suite's closing "N passed, N failed".
result() {
	local line=$1 rc=$2 name=$3
	line=${line##*: }
	if [[ ! $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		echo "FAIL - $name: ended (exit $rc) without a result line"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + BASH_REMATCH[1]))
	failed=$((failed + BASH_REMATCH[2]))
	if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
		echo "FAIL - $name: exit $rc"
		failed=$((failed + 1))
	fi
}
suite() {
	local name=$1 log rc t0=$SECONDS
	shift
	echo "=== trixie: $name"
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	echo "# trixie: $name: $((SECONDS - t0)) s"
	result "$(grep -E '^(.*: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)" "$rc" "$name"
	rm -f "$log"
}
# build CC: every program, -Werror; the compiler's messages if it fails.
build() {
	local log
	log=$(mktemp)
	if make -f Makefile.ktls clean >/dev/null &&
	    make -f Makefile.ktls -j2 CC="$1" WERROR=-Werror programs >"$log" 2>&1; then
		echo "ok - $1: $(grep -c -- ' -c ' "$log") files compiled warning-free"
		echo "1 passed, 0 failed"
	else
		grep -E 'warning|error' "$log" | head -n 40
		echo "FAIL - $1: the build failed or warned"
		echo "0 passed, 1 failed"
	fi
	rm -f "$log"
}
echo "# trixie: $(. /etc/os-release; echo "$PRETTY_NAME"), $(openssl version)," \
    "$(gcc --version | head -n 1), $(clang --version | head -n 1)"
suite "build with clang, -Werror" build clang
suite "build with gcc, -Werror" build gcc
suite "unit and host suites" bash tests/run_tests.sh --no-kernel
HK_CERTS=$(mktemp -d)
export HK_CERTS
bash tests/make_test_certs.sh "$HK_CERTS" >/dev/null 2>&1 || echo "cannot make test certificates"
# The guest's root is this tree: its openssl is trixie's, not the host's.
guest_openssl() {
	local want got
	want=$(openssl version)
	got=$(bash tests/uml.sh -- openssl version) || got="(guest failed: $?)"
	if [ "$got" = "$want" ]; then
		echo "ok - the guest runs trixie's $got"
		echo "1 passed, 0 failed"
	else
		echo "FAIL - the guest runs '$got', not trixie's '$want'"
		echo "0 passed, 1 failed"
	fi
}
suite "the UML guest's root is the trixie tree" guest_openssl
suite "kernel (UML guest, sid kernel, trixie root)" bash tests/uml.sh -- \
    bash "$HK_DIR/tests/kernel_tests.sh"
suite "kernel (UML guest, sid kernel, trixie root): careful peer" bash tests/uml.sh -- \
    bash "$HK_DIR/tests/record_tests.sh" kernel
suite "kernel (UML guest, sid kernel, trixie root): tampered records" bash tests/uml.sh -- \
    bash "$HK_DIR/tests/tamper_tests.sh"
rm -rf "$HK_CERTS"
echo "=== trixie: total"
echo "$passed passed, $failed failed"
EOF
)

# Mounts: private to this namespace, gone when it ends.
# shellcheck disable=SC2016  # expanded by the inner bash
unshare --mount --propagation private -- env -i \
    HK_TREE="$tree" HK_DIR="$ROOT" HK_SID="$sid_cache" HK_UML_BIN="$HK_UML_BIN" \
    HK_UML_MODULES="$HK_UML_MODULES" HK_INNER="$inner" PATH="$PATH" bash -c '
	set -e
	# The tree a mount point of its own, so that / in the chroot is one
	# (unshare --mount inside, as tests/audit_tests.sh uses, needs that).
	mount --bind "$HK_TREE" "$HK_TREE"
	mount -t proc proc "$HK_TREE/proc"
	mount --rbind /sys "$HK_TREE/sys"
	mount --rbind /dev "$HK_TREE/dev"
	mount --bind "$HK_SID" "$HK_TREE$HK_SID"
	mount -o remount,bind,ro "$HK_TREE$HK_SID"
	set +e
	chroot "$HK_TREE" /bin/bash -c "$HK_INNER"
' 2>&1 | tee "$tree.run.log"
rc=${PIPESTATUS[0]}
echo "# $prog: $((SECONDS - start)) s in all"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tree.run.log" | tail -n 1)
[ -n "$last" ] || die "the chroot run ended (exit $rc) without a result line"
[[ $last =~ \ 0\ failed ]] && [ "$rc" -eq 0 ]
