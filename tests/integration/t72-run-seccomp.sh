#!/bin/bash
# slate run: the seccomp filter, by the bad-pointer method (tests/probe):
# an allowed call fails harmlessly (EFAULT, EBADF, EINVAL, ENOSYS), a
# filtered one with the filter's EPERM. Each list is checked against the
# same probe run without a filter (under `unshare -Urn` on the host), so
# that an EPERM is known to be the filter's and not the kernel's. Covers
# the x86_64 ABI, TIOCSTI with high bits set (CVE-2019-10063), the i386
# ABI (refused as a whole by the default profile; with a profile that
# applies the rules to it, each call refused) and the x32 ABI.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

# The tries that the filter must refuse (tests/probe/README.md).
REFUSED="mount umount2 pivot_root keyctl add_key request_key bpf perf_event_open userfaultfd
kexec_load kexec_file_load init_module finit_module delete_module open_by_handle_at acct iopl ioperm
swapon swapoff reboot io_uring_setup io_uring_enter io_uring_register unshare setns clone tiocsti tiocsti_high"

# expect_syscalls FILE ABI: the probe's output holds the controls, every
# REFUSED try as EPERM (n/a where the ABI has no such call), clone3 EPERM
# or ENOSYS (ENOSYS: Docker's and slate's choice, so glibc falls back to
# clone, which the filter can inspect), and ends with the last try.
expect_syscalls() {
	local f=$1 abi=$2 name got bad=0
	grep -qx "abi $abi" "$f" || { echo "no abi $abi" >&2; bad=1; }
	grep -qx "getpid OK" "$f" || { echo "control getpid not OK" >&2; bad=1; }
	grep -qx "uname EFAULT" "$f" || { echo "control uname not EFAULT" >&2; bad=1; }
	grep -qx "read EBADF" "$f" || { echo "control read not EBADF" >&2; bad=1; }
	for name in $REFUSED; do
		got=$(awk -v n="$name" '$1 == n { print $2 }' "$f")
		case "$abi:$name:$got" in
		*:*:EPERM) ;;
		i386:kexec_file_load:n/a | i386:tiocsti_high:n/a) ;;
		*) echo "$name: ${got:-missing}, want EPERM" >&2; bad=1 ;;
		esac
	done
	got=$(awk '$1 == "clone3" { print $2 }' "$f")
	case "$got" in EPERM | ENOSYS) ;; *) echo "clone3: ${got:-missing}, want ENOSYS or EPERM" >&2; bad=1 ;; esac
	tail -n 1 "$f" | grep -q "^tiocsti_high " || { echo "the output stops early" >&2; bad=1; }
	[ "$bad" -eq 0 ] || { cat "$f" >&2; return 1; }
}

test_expect_success 'setup: the test bundle; profiles derived from the default one' '
	run_setup &&
	python3 - "$SLATE_TOP/runtime/seccomp-default.json" "$TEST_TMP" <<-EOF
	import json, sys
	src, out = sys.argv[1], sys.argv[2]
	def variant(name, change):
	    d = json.load(open(src))
	    change(d)
	    json.dump(d, open(out + "/" + name, "w"), indent=1)
	variant("x86-rules.json", lambda d: d["architectures"].update(x86="rules"))
	variant("eacces.json", lambda d: d.update(default={"action": "errno", "errno": "EACCES"}))
	variant("allow-mount.json", lambda d: d["rules"].append({"action": "allow", "syscalls": ["mount"]}))
	variant("default-allow.json", lambda d: d.update(default={"action": "allow"}))
	EOF
'
require_bundle

test_expect_success 'control: without a filter (unshare -Urn on the host) the refused tries are not EPERM' '
	unshare -Urn "$SLATE_BUILD/tests/probe" syscalls >"$TEST_TMP/host-syscalls" &&
	for name in mount umount2 keyctl add_key request_key bpf perf_event_open userfaultfd open_by_handle_at \
		swapon io_uring_setup io_uring_enter io_uring_register unshare setns clone clone3 tiocsti tiocsti_high; do
		got=$(awk -v n="$name" "\$1 == n { print \$2 }" "$TEST_TMP/host-syscalls") &&
		case "$got" in EPERM | "") echo "$name: $got without a filter" >&2; exit 1 ;; esac
	done
'

test_expect_success 'x86_64: every refused syscall EPERM; controls getpid OK, uname EFAULT, read EBADF' '
	probe -- syscalls >"$TEST_TMP/syscalls" &&
	expect_syscalls "$TEST_TMP/syscalls" x86_64
'

test_expect_success 'x86_64 as the instance'"'"'s root (--user root): the same' '
	probe --user root -- syscalls >"$TEST_TMP/syscalls-root" &&
	expect_syscalls "$TEST_TMP/syscalls-root" x86_64
'

test_expect_success 'TIOCSTI refused, and with bit 32 set too (the kernel truncates cmd to 32 bits)' '
	probe -- syscalls tiocsti tiocsti_high read >"$TEST_TMP/tiocsti" &&
	grep -qx "tiocsti EPERM" "$TEST_TMP/tiocsti" &&
	grep -qx "tiocsti_high EPERM" "$TEST_TMP/tiocsti" &&
	grep -qx "read EBADF" "$TEST_TMP/tiocsti" &&
	grep -qx "tiocsti_high EBADF" "$TEST_TMP/host-syscalls"
'

if have_probe32; then
	test_expect_success 'i386 ABI: refused as a whole by the default profile (probe32 dies before printing)' '
		unshare -Urn "$SLATE_BUILD/tests/probe32" syscalls getpid >"$TEST_TMP/host32" &&
		grep -qx "abi i386" "$TEST_TMP/host32" &&
		rc=0 &&
		{ slate_run "$SITE" -- "$PROBE32" syscalls >"$TEST_TMP/syscalls32" 2>&1 || rc=$?; } &&
		case "$rc" in 139 | 159) ;; *) echo "probe32 exit $rc, want SIGSEGV (139) or SIGSYS (159)" >&2; exit 1 ;; esac &&
		test ! -s "$TEST_TMP/syscalls32"
	'
	test_expect_success 'i386 ABI with a profile that applies the rules to it: every refused syscall EPERM' '
		probe --seccomp-profile "$TEST_TMP/x86-rules.json" -- exit 0 &&
		slate_run --seccomp-profile "$TEST_TMP/x86-rules.json" "$SITE" -- "$PROBE32" syscalls >"$TEST_TMP/syscalls32" &&
		expect_syscalls "$TEST_TMP/syscalls32" i386 &&
		grep -qxE "socketcall (EPERM|EINVAL)" "$TEST_TMP/syscalls32" &&
		grep -qx "umount EPERM" "$TEST_TMP/syscalls32"
	'
else
	test_skip 'i386 ABI: refused as a whole by the default profile' "build/tests/probe32 not built (no gcc -m32)"
	test_skip 'i386 ABI with a profile that applies the rules to it' "build/tests/probe32 not built (no gcc -m32)"
fi

test_expect_success 'x32 ABI: covered by the filter (EPERM, or killed), where the kernel alone says ENOSYS' '
	unshare -Urn "$SLATE_BUILD/tests/probe" syscalls-x32 >"$TEST_TMP/host-x32" &&
	rc=0 &&
	{ probe -- syscalls-x32 >"$TEST_TMP/x32" || rc=$?; } &&
	if [ "$rc" -eq 159 ]; then
		test ! -s "$TEST_TMP/x32"
	else
		test "$rc" -eq 0 &&
		grep -qx "x32_mount EPERM" "$TEST_TMP/x32" &&
		grep -qx "x32_getpid EPERM" "$TEST_TMP/x32" &&
		# The kernel here has no x32 ABI: unfiltered, both are ENOSYS.
		grep -qxE "x32_mount (ENOSYS|EFAULT)" "$TEST_TMP/host-x32"
	fi
'

# Custom profiles.
test_expect_success '--seccomp-profile is what the instance runs under (default errno EACCES)' '
	probe --seccomp-profile "$TEST_TMP/eacces.json" -- syscalls mount bpf getpid >"$TEST_TMP/eacces" &&
	grep -qx "mount EACCES" "$TEST_TMP/eacces" &&
	grep -qx "bpf EACCES" "$TEST_TMP/eacces" &&
	grep -qx "getpid OK" "$TEST_TMP/eacces" &&
	probe --seccomp-profile "$TEST_TMP/eacces.json" -- status >"$TEST_TMP/status" &&
	grep -qx "Seccomp 2" "$TEST_TMP/status"
'

test_expect_success 'a profile allowing mount, or allowing by default: refused (exit 1), nothing runs' '
	for p in allow-mount default-allow; do
		test_must_fail --code 1 probe --seccomp-profile "$TEST_TMP/$p.json" -- write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
		test ! -s "$TEST_TMP/out" &&
		assert_file_has_content "$TEST_TMP/err" "$p\.json" || exit 1
	done &&
	test_must_fail probe --seccomp-profile "$TEST_TMP/no-such.json" -- exit 0 >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no-such\.json" &&
	test ! -s "$TEST_TMP/out"
'

test_expect_success 'the seccomp cache: one compiled filter per profile, root-only' '
	test -d "$ROOT/cache" &&
	test "$(stat -c "%U %a" "$ROOT/cache")" = "root 700" &&
	n=$(find "$ROOT/cache" -type f | wc -l) &&
	probe -- exit 0 &&
	probe --seccomp-profile "$TEST_TMP/eacces.json" -- exit 0 &&
	test "$(find "$ROOT/cache" -type f | wc -l)" -eq "$n" &&
	test -z "$(find "$ROOT/cache" -type f -perm /077)"
'

test_done
