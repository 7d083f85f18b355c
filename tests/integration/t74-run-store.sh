#!/bin/bash
# slate run and the store: a bundle is verified before it is used and
# unpacked once into ROOT/store/<id>. Refused bundles (tampered bytes, a
# content forgery under a valid signature, an untrusted signer, no trusted
# key) leave nothing in the store; an interrupted unpack is never reused
# and is removed by the next command; concurrent first runs give one
# complete copy; later runs reuse it untouched.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

OTHER_KEY=$TEST_TMP/other.key

# flip_byte FILE OFFSET: invert every bit of one byte, in place.
flip_byte() {
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# store_clean [ROOT]: no tree of a refused bundle, no temporary unpack, no
# directory at all in the store (lock files may stay).
store_clean() {
	local root=${1:-$ROOT} left
	[ -d "$root/store" ] || return 0
	left=$(find "$root/store" -mindepth 1 ! -name "*.lock")
	[ -z "$left" ] || { echo "left in the store: $left" >&2; return 1; }
}

# The tree of a bundle, in the store of ROOT: every path and file complete.
store_hash_of() { # ROOT
	local d
	d=$(find "$1/store" -mindepth 1 -maxdepth 1 -type d ! -name ".tmp-*")
	[ "$(echo "$d" | wc -l)" -eq 1 ] || { echo "not one copy in $1/store: $d" >&2; return 1; }
	store_hash "$d/root"
}

test_expect_success 'setup: the test bundle, one signed by another key, and tampered ones' '
	run_setup &&
	"$SLATE_BUNDLE" build "$SLATE_TOP/examples/craft-site" --image "$IMAGE" --key "$OTHER_KEY" \
		-o "$TEST_TMP/other.slate" >"$TEST_TMP/other.id" 2>/dev/null &&
	cp "$SITE" "$TEST_TMP/flipped.slate" &&
	flip_byte "$TEST_TMP/flipped.slate" $(($(stat -c %s "$SITE") / 2)) &&
	! cmp -s "$SITE" "$TEST_TMP/flipped.slate" &&
	python3 "$SLATE_TOP/tests/forge.py" content "$SITE" "$TEST_TMP/content.slate" &&
	test ! -e "$ROOT/store"
'
require_bundle

test_expect_success 'a bundle signed by an untrusted key: exit 1 "unknown key", nothing unpacked' '
	test_must_fail --code 1 slate_run "$TEST_TMP/other.slate" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "unknown key" &&
	test "$(wc -l <"$TEST_TMP/err")" -eq 1 &&
	test ! -s "$TEST_TMP/out" &&
	store_clean &&
	test ! -e "$ROOT/store/$(cat "$TEST_TMP/other.id")"
'

if [ -e /etc/slate/keys ]; then
	test_skip 'no --key and no /etc/slate/keys: "no trusted key"' "/etc/slate/keys exists on this machine"
else
	test_expect_success 'no --key and no /etc/slate/keys: exit 1 "no trusted key", nothing unpacked' '
		test_must_fail --code 1 "$SLATE" --root "$ROOT" run "$SITE" -- "$PROBE" exit 0 >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
		assert_file_has_content "$TEST_TMP/err" "no trusted key" &&
		test ! -s "$TEST_TMP/out" &&
		store_clean
	'
fi

test_expect_success '--keys with an empty directory: exit 1 naming it, nothing unpacked' '
	mkdir -p "$TEST_TMP/nokeys" &&
	test_must_fail --code 1 "$SLATE" --root "$ROOT" run --keys "$TEST_TMP/nokeys" "$SITE" -- "$PROBE" exit 0 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no .*keys? .*nokeys|no trusted key" &&
	store_clean
'

test_expect_success 'a byte flipped in the middle of the compressed bundle: exit 1, nothing in the store' '
	test_must_fail --code 1 slate_run "$TEST_TMP/flipped.slate" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "flipped\.slate|does not match|corrupt|truncated" &&
	test ! -s "$TEST_TMP/out" &&
	store_clean &&
	test ! -e "$(store_dir)"
'

test_expect_success 'a changed vendor file under a valid signature: exit 1 naming it, nothing in the store' '
	test_must_fail --code 1 slate_run "$TEST_TMP/content.slate" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "app/vendor/acme/greeter/src/Greeter\.php" &&
	test ! -s "$TEST_TMP/out" &&
	store_clean &&
	test ! -e "$(store_dir)"
'

test_expect_success 'the first run unpacks into store/<id>: root/ and manifest.json, root-owned, no group/other write' '
	t0=$(now_ms) &&
	probe -- exit 0 &&
	t1=$(now_ms) &&
	echo $((t1 - t0)) >"$TEST_TMP/cold.ms" &&
	test -d "$(store_dir)/root/app/web" &&
	test -f "$(store_dir)/manifest.json" &&
	test -z "$(find "$ROOT/store" -maxdepth 1 -name ".tmp-*")" &&
	test -z "$(find "$(store_dir)" ! -user root)" &&
	test -z "$(find "$(store_dir)" \( -type f -o -type d \) -perm /022)" &&
	test "$(stat -c %a "$(store_dir)")" = 700 &&
	store_hash >"$TEST_TMP/store.hash" &&
	stat -c "%i %Y" "$(store_dir)" "$(store_dir)/root" "$(store_dir)/root/app/web/index.php" >"$TEST_TMP/store.stat"
'

test_expect_success 'a second run reuses the store copy: same inodes and mtimes, faster than the first' '
	t0=$(now_ms) &&
	probe -- exit 0 &&
	t1=$(now_ms) &&
	warm=$((t1 - t0)) cold=$(cat "$TEST_TMP/cold.ms") &&
	echo "cold ${cold} ms, warm ${warm} ms" &&
	test "$warm" -lt "$cold" &&
	stat -c "%i %Y" "$(store_dir)" "$(store_dir)/root" "$(store_dir)/root/app/web/index.php" >"$TEST_TMP/store.stat2" &&
	test_cmp "$TEST_TMP/store.stat" "$TEST_TMP/store.stat2" &&
	store_hash >"$TEST_TMP/store.hash2" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash2"
'

test_expect_success 'an interrupted unpack (.tmp-<id>-<pid> half tree) is not used, and is removed' '
	rm -rf "$(store_dir)" &&
	tmp="$ROOT/store/.tmp-$(site_id)-99999" &&
	mkdir -p "$tmp/root/app/web" "$tmp/root/etc" &&
	echo "<?php evil();" >"$tmp/root/app/web/evil.php" &&
	echo "half" >"$tmp/root/etc/passwd" &&
	probe -- stat /app/web/evil.php >"$TEST_TMP/evil" &&
	grep -qx "stat_error ENOENT" "$TEST_TMP/evil" &&
	probe -- read /etc/passwd >"$TEST_TMP/passwd" &&
	grep -q "^www-data:" "$TEST_TMP/passwd" &&
	test ! -e "$tmp" &&
	test -z "$(find "$ROOT/store" -maxdepth 1 -name ".tmp-*")" &&
	store_hash >"$TEST_TMP/store.hash3" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash3"
'

test_expect_success 'a stale .tmp-<id>-<pid> beside a complete copy is removed by the next command' '
	tmp="$ROOT/store/.tmp-$(site_id)-99998" &&
	mkdir -p "$tmp/root/app" &&
	echo x >"$tmp/root/app/x" &&
	probe -- exit 0 &&
	test ! -e "$tmp"
'

test_expect_success 'three concurrent first runs of one bundle: all succeed, the store holds one complete copy' '
	trap bg_stop_all EXIT
	root2=$TEST_TMP/root2
	pids=""
	for i in 1 2 3; do
		"$SLATE" --root "$root2" run --key "$PUB" --name "conc$i" "$SITE" -- "$PROBE" read /app/web/index.php \
			>"$TEST_TMP/conc$i.out" 2>"$TEST_TMP/conc$i.err" &
		pids="$pids $!"
		echo "$!" >>"$BG_PIDS"
	done
	for p in $pids; do
		rc=0
		wait "$p" || rc=$?
		test "$rc" -eq 0 || { echo "a concurrent run exited $rc" >&2; cat "$TEST_TMP"/conc*.err >&2; exit 1; }
	done
	cmp "$TEST_TMP/conc1.out" "$TEST_TMP/conc2.out"
	cmp "$TEST_TMP/conc1.out" "$TEST_TMP/conc3.out"
	test -s "$TEST_TMP/conc1.out"
	test -z "$(find "$root2/store" -maxdepth 1 -name ".tmp-*")"
	test "$(find "$root2/store" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 1
	store_hash_of "$root2" >"$TEST_TMP/store.hash.conc"
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash.conc"
	rm -rf "$root2"
'

test_expect_success 'an untrusted bundle does not disturb the stored copy of a good one' '
	test_must_fail --code 1 slate_run "$TEST_TMP/other.slate" -- "$PROBE" exit 0 2>/dev/null &&
	store_hash >"$TEST_TMP/store.hash4" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash4" &&
	test -z "$(find "$ROOT/store" -maxdepth 1 -name ".tmp-*")" &&
	test "$(find "$ROOT/store" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 1
'

# A forgery that keeps the signed manifest has the good bundle'"'"'s id: once
# that id is stored, slate uses the stored (verified) tree and never reads
# the forged members. Either a refusal or a run of the signed bytes is
# safe; running the forged bytes, or changing the store, is not.
test_expect_success 'a content forgery of a stored bundle: refused, or runs the signed bytes; the store unchanged' '
	f=app/vendor/acme/greeter/src/Greeter.php
	for b in content flipped; do
		rc=0
		slate_run "$TEST_TMP/$b.slate" -- "$PROBE" read "/$f" >"$TEST_TMP/forged.out" 2>"$TEST_TMP/forged.err" || rc=$?
		case $rc in
		1) ;;
		0) cmp "$TEST_TMP/forged.out" "$(store_dir)/root/$f" || { echo "$b: the instance read forged bytes" >&2; exit 1; } ;;
		*) echo "$b: exit $rc" >&2; cat "$TEST_TMP/forged.err" >&2; exit 1 ;;
		esac
		echo "$b.slate with its id stored: exit $rc"
	done
	cmp "$(store_dir)/root/$f" "$SLATE_TOP/examples/craft-site/vendor/acme/greeter/src/Greeter.php"
	store_hash >"$TEST_TMP/store.hash5"
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash5"
	test -z "$(find "$ROOT/store" -maxdepth 1 -name ".tmp-*")"
'

test_done
