# slate integration test helpers, in the spirit of git's test-lib:
#   test_expect_success NAME 'commands'   the commands must succeed
#   test_must_fail [--code N] CMD...      CMD must fail (with exit N)
#   test_skip NAME REASON                 a case that cannot run here
#   assert_file_has_content FILE REGEX
#   test_cmp EXPECTED ACTUAL
#   test_done                             ends the script
# Each case prints "ok - NAME" or "not ok - NAME" (with its output) on
# stdout; tests/run.sh counts them. Cases run in a fresh subshell with
# `set -e`-like semantics: the first failing command fails the case.
set -u
SLATE_TOP=${SLATE_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SLATE_BUILD=${SLATE_BUILD:-$SLATE_TOP/build}
SLATE_BUNDLE=$SLATE_BUILD/slate-bundle
SLATE=$SLATE_BUILD/slate
TEST_TMP=$(mktemp -d /tmp/slate-test.XXXXXX)
export SLATE_TOP SLATE_BUILD SLATE_BUNDLE SLATE TEST_TMP
test_count=0
test_failed=0
cleanup_test_tmp() { rm -rf "$TEST_TMP"; }
trap cleanup_test_tmp EXIT

test_expect_success() {
	local name=$1 body=$2 out rc=0
	test_count=$((test_count + 1))
	out=$TEST_TMP/.case-$test_count.log
	# Not `if (...)`: bash ignores set -e inside a subshell that is an
	# if condition, and only the body's last command would count.
	(set -eE -o pipefail; eval "$body") >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok - $name"
	else
		test_failed=$((test_failed + 1))
		echo "not ok - $name"
		sed 's/^/#   /' "$out" | tail -n 30
	fi
}

test_skip() {
	echo "skip - $1: $2"
}

# test_must_fail [--code N] CMD...: CMD must exit non-zero (or exactly N),
# and must not have been killed by a signal.
test_must_fail() {
	local want="" rc=0
	if [ "$1" = --code ]; then want=$2; shift 2; fi
	"$@" || rc=$?
	if [ "$rc" -eq 0 ]; then echo "expected failure, got success: $*" >&2; return 1; fi
	if [ "$rc" -gt 128 ]; then echo "killed by signal $((rc - 128)): $*" >&2; return 1; fi
	if [ -n "$want" ] && [ "$rc" -ne "$want" ]; then echo "expected exit $want, got $rc: $*" >&2; return 1; fi
	return 0
}

assert_file_has_content() {
	if ! grep -qE -- "$2" "$1"; then
		echo "file $1 does not match /$2/; it holds:" >&2
		head -c 2000 "$1" >&2
		return 1
	fi
}

assert_file_lacks_content() {
	if grep -qE -- "$2" "$1"; then
		echo "file $1 matches /$2/ but must not:" >&2
		grep -E -- "$2" "$1" | head -5 >&2
		return 1
	fi
}

test_cmp() {
	diff -u "$1" "$2"
}

test_done() {
	[ "$test_failed" -eq 0 ]
	exit $?
}

# slate's instances need user namespaces, which the kernel refuses inside a
# chroot (and on hosts that disable them). There the runtime tests cannot
# run at all: say so, as a skip, instead of failing every case.
require_user_namespaces() {
	if ! unshare --user true 2>/dev/null; then
		echo "skip - $(basename "$0" .sh): this machine cannot create user namespaces (a chroot, or user namespaces disabled): slate run needs them"
		exit 0
	fi
}
