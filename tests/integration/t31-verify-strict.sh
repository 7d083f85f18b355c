#!/bin/bash
# Verification strictness (issue 7, attack review items 1 and 2).
#
# Nothing after the end of the archive: a member after the tar end blocks,
# a second zstd frame, bytes after the frame, a frame that never ends, a
# tar without its end blocks; and the container cases the stock recipe
# refuses: a pax global header, an unknown type flag, a compressed tar
# inside the frame. Each is refused (exit 1, one line naming it) by
# `slate-bundle verify`, `slate run` and `slate deploy` (they share lib/),
# with nothing left in the store, and by tests/stock-verify.sh.
#
# And the signature member names its key: an unknown or forged key id is
# refused as such, without the manifest being parsed (tests/unit/
# test_bundle.c measures the memory that takes).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
BASE=$TEST_TMP/base.slate
STOCK_VERIFY=$SLATE_TOP/tests/stock-verify.sh
ROOT=$TEST_TMP/root RUN=$TEST_TMP/run

# store_is_empty: no bundle was stored (nor left half-unpacked); the
# per-id lock files of the attempts may stay.
store_is_empty() {
	test -z "$(ls -A "$ROOT/store" 2>/dev/null | grep -v "\.lock$")"
}

# refused_by_all CASE REGEX: forge CASE from the base bundle; every
# verifier refuses it with exit 1, slate's naming REGEX.
refused_by_all() {
	local c=$1 re=$2 out=$TEST_TMP/f-$1.slate
	python3 "$SLATE_TOP/tests/forge.py" "$c" "$BASE" "$out" &&
	verify_refuses "$out" "$re" &&
	test_must_fail --code 1 "$SLATE" --root "$ROOT" run --key "$PUB" "$out" -- /bin/true \
		>"$TEST_TMP/rout" 2>"$TEST_TMP/rerr" &&
	assert_file_has_content "$TEST_TMP/rerr" "$re" &&
	test_must_fail --code 1 timeout 60 "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" strict "$out" \
		>"$TEST_TMP/dout" 2>"$TEST_TMP/derr" &&
	assert_file_has_content "$TEST_TMP/derr" "$re" &&
	store_is_empty &&
	test_must_fail --code 1 "$STOCK_VERIFY" "$out" "$PUB" >"$TEST_TMP/sout" 2>"$TEST_TMP/serr" &&
	test ! -s "$TEST_TMP/sout"
}

test_expect_success 'setup: keys and a small base bundle; all four verifiers accept it' '
	copy_keys &&
	copy_image &&
	make_small_image &&
	build_with "$EXAMPLE" "$SMALL_IMAGE" "$BASE" --repin >"$TEST_TMP/base.id" 2>/dev/null &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$BASE" >/dev/null &&
	"$STOCK_VERIFY" "$BASE" "$PUB" >"$TEST_TMP/stock.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/stock.id"
'

test_expect_success 'control: the tar grown to a multiple of 1.25 MiB (pax comments) verifies, same id' '
	python3 "$SLATE_TOP/tests/forge.py" aligned "$BASE" "$TEST_TMP/aligned.slate" &&
	test $(($(zstd -q -dc "$TEST_TMP/aligned.slate" | wc -c) % (5 * 262144))) -eq 0 &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/aligned.slate" >"$TEST_TMP/aligned.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/aligned.id" &&
	"$STOCK_VERIFY" "$TEST_TMP/aligned.slate" "$PUB" >/dev/null
'

# After the end of the archive.
test_expect_success 'a whole member (a webshell) after the tar end blocks: refused by all' '
	refused_by_all after-end-member "data after the end of the archive" &&
	zstd -q -dc "$TEST_TMP/f-after-end-member.slate" | tar -i -tf - | grep -qx "app/web/x\.php"
'
test_expect_success 'a second zstd frame holding more members: refused by all' '
	refused_by_all second-frame "data after the zstd frame"
'
test_expect_success 'bytes after the frame, the tar a multiple of the decompression chunk: refused by all' '
	refused_by_all garbage-after-frame "data after the zstd frame"
'
test_expect_success 'a frame that never ends (its checksum cut), the tar complete: refused by all' '
	refused_by_all endless-frame "the zstd frame does not end"
'
test_expect_success 'a tar without its end-of-archive blocks: refused by all' '
	refused_by_all no-end "no end-of-archive blocks"
'
test_expect_success 'a tar with one end block only: refused by all' '
	refused_by_all one-end-block "no end-of-archive blocks"
'

# The container.
test_expect_success 'a pax global header before the manifest: refused by all' '
	refused_by_all pax-global "pax global header"
'
test_expect_success 'a member with an unknown type flag (Z, read as a file by tar readers): refused by all' '
	refused_by_all unknown-type "unknown type flag 0x5a"
'
test_expect_success 'a zstd-compressed tar inside the zstd frame: refused by all' '
	refused_by_all nested-zstd "not POSIX ustar"
'

# The signature member names its key.
test_expect_success 'a flipped bit in the signature member key id: "unknown key" naming the claimed id' '
	python3 "$SLATE_TOP/tests/forge.py" sig-keyid "$BASE" "$TEST_TMP/f-sig-keyid.slate" &&
	verify_refuses "$TEST_TMP/f-sig-keyid.slate" "unknown key: signed by key fd63122641d0ab11" &&
	test_must_fail --code 1 "$STOCK_VERIFY" "$TEST_TMP/f-sig-keyid.slate" "$PUB" 2>/dev/null
'
test_expect_success 'the signature member is the key id then the signature (72 bytes)' '
	zstd -q -dc "$BASE" | tar -xOf - .slate/manifest.sig >"$TEST_TMP/sig" &&
	test "$(wc -c <"$TEST_TMP/sig")" -eq 72 &&
	test "$(head -c 8 "$TEST_TMP/sig" | od -An -tx1 | tr -d " \n")" = fc63122641d0ab11
'

test_expect_success 'nothing was stored by any refusal' '
	store_is_empty
'

test_done
