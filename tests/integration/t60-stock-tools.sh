#!/bin/bash
# A third party verifies a bundle without slate: zstd, tar, sha256sum,
# openssl, and python3 to read the JSON. First the recipe of
# docs/FORMAT.md step by step, then tests/stock-verify.sh (that recipe as a
# script) on the good bundle and on forgeries, where it must refuse what
# slate-bundle verify refuses.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
BASE=$TEST_TMP/base.slate
STOCK_VERIFY=$SLATE_TOP/tests/stock-verify.sh

# stock_refuses CASE [--key K] REGEX: forge CASE from the base bundle;
# both stock-verify.sh and slate-bundle verify must refuse it (exit 1).
stock_refuses() {
	local c=$1 out=$TEST_TMP/f-$1.slate key=()
	shift
	if [ "${1:-}" = --key ]; then key=(--key "$2"); shift 2; fi
	python3 "$SLATE_TOP/tests/forge.py" "$c" "$BASE" "$out" "${key[@]}" &&
	test_must_fail --code 1 "$STOCK_VERIFY" "$out" "$PUB" >"$TEST_TMP/sout" 2>"$TEST_TMP/serr" &&
	test ! -s "$TEST_TMP/sout" &&
	assert_file_has_content "$TEST_TMP/serr" "$1" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" verify --key "$PUB" "$out" 2>/dev/null
}

test_expect_success 'setup: keys, the example bundle, a small base bundle for forging' '
	copy_keys &&
	copy_image &&
	build_with "$EXAMPLE" "$IMAGE" "$GOOD" --repin >"$TEST_TMP/good.id" 2>/dev/null &&
	make_small_image &&
	build_with "$EXAMPLE" "$SMALL_IMAGE" "$BASE" >"$TEST_TMP/base.id"
'

test_expect_success 'the FORMAT.md recipe, step by step, verifies the example bundle' '
	mkdir "$TEST_TMP/x" && cd "$TEST_TMP/x" &&
	test "$(zstd -lv "$GOOD" | sed -n "s/^# Zstandard Frames: //p")" = 1 &&
	zstd -q -dc "$GOOD" | tar -xf - .slate/manifest.json .slate/manifest.sig &&
	test "$(wc -c <.slate/manifest.sig)" -eq 72 &&
	tail -c 64 .slate/manifest.sig >sig.bin &&
	test "$(head -c 8 .slate/manifest.sig | od -An -tx1 | tr -d " \n")" = \
		"$(openssl pkey -pubin -in "$PUB" -outform DER | tail -c 32 | sha256sum | cut -c1-16)" &&
	{ printf "slate-manifest-v1\n"; cat .slate/manifest.json; } >signed.bin &&
	openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in signed.bin -sigfile sig.bin &&
	test "$(sha256sum <.slate/manifest.json | cut -d" " -f1)" = "$(cat "$TEST_TMP/good.id")" &&
	mkdir root && zstd -q -dc "$GOOD" | tar -C root -xf - &&
	python3 -c "import json
m = json.load(open(\".slate/manifest.json\"))
for e in m[\"entries\"]:
    if e[\"type\"] == \"file\": print(e[\"sha256\"] + \"  root/\" + e[\"path\"])" >sums &&
	test "$(wc -l <sums)" -gt 100 &&
	sha256sum --quiet --strict -c sums
'

test_expect_success 'the recipe: the signature does not verify with another key, nor over a changed manifest' '
	cd "$TEST_TMP/x" &&
	test_must_fail openssl pkeyutl -verify -pubin -inkey "$OTHER_PUB" -rawin -in signed.bin \
		-sigfile sig.bin >/dev/null &&
	sed "s/craft-site/craft-sitf/" signed.bin >changed.bin &&
	test_must_fail openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in changed.bin \
		-sigfile sig.bin >/dev/null &&
	tail -c +19 signed.bin >unprefixed.bin && cmp unprefixed.bin .slate/manifest.json &&
	test_must_fail openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in unprefixed.bin \
		-sigfile sig.bin >/dev/null
'

test_expect_success 'stock-verify.sh accepts the example bundle and prints its id' '
	"$STOCK_VERIFY" "$GOOD" "$PUB" >"$TEST_TMP/stock.id" &&
	test_cmp "$TEST_TMP/good.id" "$TEST_TMP/stock.id"
'

test_expect_success 'stock-verify.sh accepts the base bundle and its faithful rewrite (forge.py copy)' '
	"$STOCK_VERIFY" "$BASE" "$PUB" >"$TEST_TMP/stock.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/stock.id" &&
	python3 "$SLATE_TOP/tests/forge.py" copy "$BASE" "$TEST_TMP/copy.slate" &&
	"$STOCK_VERIFY" "$TEST_TMP/copy.slate" "$PUB" >"$TEST_TMP/stock.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/stock.id"
'

test_expect_success 'stock-verify.sh refuses an untrusted key' '
	test_must_fail --code 1 "$STOCK_VERIFY" "$GOOD" "$OTHER_PUB" 2>"$TEST_TMP/serr" &&
	assert_file_has_content "$TEST_TMP/serr" "bad signature"
'

test_expect_success 'stock-verify.sh refuses a flipped signature bit' '
	stock_refuses sig-flip "bad signature"
'
test_expect_success 'stock-verify.sh refuses a bundle signed by another key that names it' '
	stock_refuses other-signer --key "$OTHER" "bad signature"
'
test_expect_success 'stock-verify.sh refuses changed content' '
	stock_refuses content "content differs: root/app/vendor/acme/greeter/src/Greeter\.php"
'
test_expect_success 'stock-verify.sh refuses an extra member before extracting it' '
	stock_refuses extra-member "app/web/x\.php"
'
test_expect_success 'stock-verify.sh refuses a missing member' '
	stock_refuses drop-middle "app/templates/about\.html"
'
test_expect_success 'stock-verify.sh refuses a changed mode' '
	stock_refuses mode "modes differ"
'
test_expect_success 'stock-verify.sh refuses a changed symlink target' '
	stock_refuses symlink-target "symlink targets differ"
'
test_expect_success 'stock-verify.sh refuses a fifo in place of a file' '
	stock_refuses fifo "types or modes differ"
'
test_expect_success 'stock-verify.sh refuses the signature first' '
	stock_refuses first-not-manifest "first members"
'

test_expect_success 'stock-verify.sh with bad arguments: exit 2 with a usage line' '
	test_must_fail --code 2 "$STOCK_VERIFY" "$GOOD" 2>"$TEST_TMP/serr" &&
	assert_file_has_content "$TEST_TMP/serr" "^usage: stock-verify\.sh BUNDLE PUBKEY"
'

test_done
