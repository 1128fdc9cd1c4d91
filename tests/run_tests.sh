#!/usr/bin/env bash
# tests/run_tests.sh - every test, as `make -f Makefile.ktls check` runs it:
#   1. unit tests: the key derivations (tests/test_ktls_keys), the record
#      sequence numbers (tests/test_record_seq), and every failure of the
#      switch to kTLS against a fake kernel (tests/test_offload)
#   1b. the --policy module (tests/test_policy)
#   2. host system tests: userspace fallback, bad certificates and flags,
#      the --audit trail, hello_ktls_setup.sh's commands, --policy, keys
#      held by a software TPM (tests/tpm_tests.sh; also in the guest),
#      live reload (certificate rotation, --reauthorize, tickets),
#      the --status metrics, make install, the man pages, the systemd unit,
#      short-lived certificates (warnings, --close-at-expiry, a renewal
#      loop: about two minutes of waiting for certificates to expire)
#   3. kernel system tests: natively when this kernel has kTLS, otherwise
#      in two User-Mode Linux guests: Debian bookworm's 6.1 kernel (no kTLS
#      rekey: the refusal tests) and Debian sid's 7.x (TLS 1.3 KeyUpdate).
#      A guest that cannot be fetched or does not boot is a failure.
#   3b. network tests (tests/net_tests.sh): two network namespaces joined by
#      a veth pair, IPv4/IPv6, MTU 1500/9000, netem, a path that dies; in
#      both guests (veth and sch_netem loaded as modules: both kernels have
#      CONFIG_NET_NS, CONFIG_VETH=m, CONFIG_NET_SCH_NETEM=m), KeyUpdates
#      during the transfers only on sid's (6.1 cannot rekey kTLS).
#   4. all of that again on Debian trixie (OpenSSL 3.5, gcc 14, clang 19):
#      tests/trixie.sh (root; a debootstrap tree in .cache/trixie, a chroot,
#      the sid UML guest with that tree as its root). About 4 minutes
#      cached, 5 the first time.
# With --no-kernel, only 1 and 2 (tests/trixie.sh runs them in its chroot).
# Prints each suite's results, then the total as "N passed, N failed".
set -u
kernel=yes
if [ "${1:-}" = --no-kernel ]; then kernel=no; fi
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
TOTAL_PASSED=0
TOTAL_FAILED=0

HK_CERTS=$(mktemp -d "${TMPDIR:-/tmp}/hk-certs.XXXXXX")
export HK_CERTS
trap 'rm -rf "$HK_CERTS"' EXIT

# suite NAME COMMAND...: run it, add its closing "N passed, N failed".
suite() {
	local name=$1 log rc=0 line start=$SECONDS
	shift
	echo "=== $name"
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^(.*: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	echo "# $name: $((SECONDS - start)) s"
	if [ -z "$line" ]; then
		echo "FAIL - $name: ended (exit $rc) without a result line"
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		return
	fi
	line=${line##*: }
	set -- $line
	TOTAL_PASSED=$((TOTAL_PASSED + $1))
	TOTAL_FAILED=$((TOTAL_FAILED + $3))
	if [ "$rc" -ne 0 ] && [ "$3" -eq 0 ]; then
		echo "FAIL - $name: exit $rc"
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
	fi
}

if ! bash tests/make_test_certs.sh "$HK_CERTS" >"$HK_CERTS/make.log" 2>&1; then
	cat "$HK_CERTS/make.log"
	echo "0 passed, 1 failed"
	exit 1
fi

suite "unit: key derivation and crypto_info layout" tests/test_ktls_keys
suite "unit: record sequence numbers" tests/test_record_seq
suite "unit: session resumption re-checks the client" tests/test_resume
suite "unit: --policy rules, matchers and grants" tests/test_policy
suite "unit: every ktls_offload() failure, against a fake kernel" tests/test_offload
suite "unit: a fatal alert sealed in userspace (ktls_send_alert)" tests/test_alert
suite "unit: the server's client threads, reused" tests/test_pool
suite "host: fallback, bad input" bash tests/host_tests.sh
suite "host: hello_ktls_setup.sh commands" bash tests/setup_tests.sh
suite "host: certificates near expiry, --close-at-expiry" bash tests/expiry_tests.sh
suite "host: a renewal loop at two thirds of the lifetime" bash tests/renewal_tests.sh
suite "host: egress interface and counters" tests/nic_probe
suite "host: revocation (CRL)" bash tests/revocation_tests.sh
suite "host: revocation (OCSP)" bash tests/ocsp_tests.sh
suite "host: OCSP stapling" bash tests/staple_tests.sh
suite "host: hostile input" bash tests/hostile_tests.sh
suite "host: --audit trail" bash tests/audit_tests.sh
suite "host: --policy (who gets in, and what for)" bash tests/policy_tests.sh
suite "host: live reload of the identity set" bash tests/reload_tests.sh
suite "host: careful peer (userspace TLS)" bash tests/record_tests.sh
suite "host: keys in a TPM (swtpm), --key-pass" bash tests/tpm_tests.sh
suite "host: --status metrics" bash tests/metrics_tests.sh
suite "host: install, man pages, systemd unit" bash tests/install_tests.sh
if [ $kernel = no ]; then
	echo "# --no-kernel: the kernel suites are left out"
elif [ -e /proc/net/tls_stat ]; then
	suite "kernel (native $(uname -r))" bash tests/kernel_tests.sh
	suite "kernel (native): tampered records" bash tests/tamper_tests.sh
	suite "kernel (native): careful peer" bash tests/record_tests.sh kernel
	suite "kernel (native): TPM-held keys with kTLS" bash tests/tpm_tests.sh kernel
	suite "network (native): namespaces, veth, netem" bash tests/net_tests.sh
else
	echo "# this kernel has no kTLS: the kernel tests run in UML guests"
	suite "kernel (UML guest, bookworm 6.1)" bash tests/uml.sh -- bash "$ROOT/tests/kernel_tests.sh"
	suite "kernel (UML guest, bookworm 6.1): careful peer" bash tests/uml.sh -- \
	    bash "$ROOT/tests/record_tests.sh" kernel
	suite "kernel (UML guest, bookworm 6.1): TPM-held keys with kTLS" bash tests/uml.sh -- \
	    bash "$ROOT/tests/tpm_tests.sh" kernel
	suite "network (UML guest, bookworm 6.1): namespaces, veth, netem" \
	    bash tests/uml.sh --module veth --module sch_netem -- \
	    bash "$ROOT/tests/net_tests.sh"
	if sid=$(bash tests/fetch_uml_sid.sh); then
		suite "kernel (UML guest, sid: rekey)" env $sid bash tests/uml.sh -- \
		    bash "$ROOT/tests/kernel_tests.sh"
		suite "kernel (UML guest, sid): tampered records" env $sid \
		    bash tests/uml.sh -- bash "$ROOT/tests/tamper_tests.sh"
		suite "kernel (UML guest, sid): careful peer" env $sid \
		    bash tests/uml.sh -- bash "$ROOT/tests/record_tests.sh" kernel
		suite "network (UML guest, sid): namespaces, veth, netem, KeyUpdates" \
		    env $sid bash tests/uml.sh --module veth --module sch_netem -- \
		    bash "$ROOT/tests/net_tests.sh"
	else
		echo "FAIL - the newer UML kernel (Debian sid) could not be prepared"
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
	fi
fi

if [ $kernel = yes ]; then
	suite "Debian trixie (OpenSSL 3.5): builds, unit, host and kernel suites" \
	    bash tests/trixie.sh
fi

echo "=== total"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
