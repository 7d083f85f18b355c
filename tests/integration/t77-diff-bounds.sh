#!/bin/bash
# `slate diff` and `--save` are bounded by the instance's own limits
# (attack review item 10). Inside a live app with a 16M tmpfs the instance
# makes, each on a fresh tmpfs (a redeploy between them), then all at once:
#   - 25 nested directories with 200-byte names (a path past PATH_MAX):
#     the diff lists the subtree as one entry flagged too deep, exit 0;
#   - a 4 MiB file with 100 hard links: the tar holds its bytes once and
#     100 hard links, so it stays about the size of what the tmpfs holds;
#   - a sparse file of 8 EiB (ftruncate to PHP_INT_MAX): the diff finishes
#     in seconds (the file is listed, not hashed) and the tar stores it
#     sparse (GNU sparse 1.0, as stock tar reads it).
# Every diff runs under a 10 s limit.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t77bounds
BIG_SIZE=4194304
HUGE=9223372036854775807

DEEP='chdir("/app/storage") or exit(1);
mkdir("deep") && chdir("deep") or exit(1);
for ($i = 0; $i < 25; $i++) {
	$n = str_repeat(chr(97 + $i), 200);
	if (!mkdir($n) || !chdir($n)) exit(2);
}
echo "deep ok\n";'
LINKS='$f = fopen("/app/storage/big", "w") or exit(1);
for ($i = 0; $i < 64; $i++) fwrite($f, random_bytes(65536));
fclose($f);
mkdir("/app/storage/links") or exit(1);
for ($i = 0; $i < 100; $i++) link("/app/storage/big", sprintf("/app/storage/links/l%03d", $i)) or exit(2);
clearstatcache();
echo filesize("/app/storage/big"), " ", stat("/app/storage/big")["nlink"], "\n";'
SPARSE='$f = fopen("/app/storage/sparse", "w") or exit(1);
ftruncate($f, PHP_INT_MAX) or exit(2);
fclose($f);
clearstatcache();
echo filesize("/app/storage/sparse"), "\n";'

# bounded CMD...: CMD must finish (with any status) within 10 s.
bounded() {
	local start=$SECONDS rc=0
	timeout -k 2 10 "$@" || rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "did not finish in 10 s: $*" >&2
		return 1
	fi
	echo "# $((SECONDS - start)) s: $*" >&2
	return "$rc"
}

sld() { bounded "$SLATE" --root "$ROOT" --run-dir "$RUN" "$@"; }

fresh() { # a new instance: a clean tmpfs
	sl redeploy "$APP" >/dev/null
	wait_running "$APP"
}

test_expect_success 'setup: bundle v1; the app deployed with a 16M tmpfs' '
	apps_setup v1 &&
	sl deploy --key "$PUB" --tmpfs-size 16M "$APP" "$V1" >/dev/null &&
	wait_running "$APP"
'
require_bundles "$V1"

test_expect_success '25 nested 200-byte directory names: diff exit 0, the subtree one entry flagged too deep' '
	php_in "$APP" "$DEEP" | grep -x "deep ok"
	sld diff "$APP" >"$TEST_TMP/deep.txt"
	cat "$TEST_TMP/deep.txt"
	grep -E "^A /app/storage/deep  dir$" "$TEST_TMP/deep.txt"
	test "$(grep -c "too deep" "$TEST_TMP/deep.txt")" = 1
	grep -E "^A /app/storage/deep/([a-z]{200}/)+[a-z]{200}  dir  too deep" "$TEST_TMP/deep.txt"
	# Every listed path fits in PATH_MAX.
	awk "{ if (length(\$2) >= 4096) { print \"too long: \" length(\$2); exit 1 } }" "$TEST_TMP/deep.txt"
	sld diff --json "$APP" >"$TEST_TMP/deep.json"
	test "$(pj "len([e for e in j if e.get(\"too_deep\")])" <"$TEST_TMP/deep.json")" = 1
	test "$(pj "[e[\"type\"] for e in j if e.get(\"too_deep\")][0]" <"$TEST_TMP/deep.json")" = dir
	sld diff --save "$TEST_TMP/deep.tar" "$APP" >/dev/null
	tar -tf "$TEST_TMP/deep.tar" >"$TEST_TMP/deep.list"
	grep -E "^app/storage/deep/" "$TEST_TMP/deep.list" >/dev/null
'

test_expect_success '100 hard links to a 4 MiB file: listed with one hash, saved once and as 100 links' '
	fresh
	php_in "$APP" "$LINKS" | grep -x "$BIG_SIZE 101"
	sld diff --json "$APP" >"$TEST_TMP/links.json"
	sha=$(pj "[e[\"sha256\"] for e in j if e[\"path\"] == \"/app/storage/big\"][0]" <"$TEST_TMP/links.json")
	test "$(pj "len([e for e in j if e[\"path\"].startswith(\"/app/storage/links/l\") and e[\"sha256\"] == \"$sha\" and e[\"size\"] == $BIG_SIZE])" <"$TEST_TMP/links.json")" = 100
	sld diff --save "$TEST_TMP/links.tar" "$APP" >/dev/null
	size=$(stat -c %s "$TEST_TMP/links.tar")
	echo "tar: $size bytes"
	test "$size" -lt $((BIG_SIZE + 1048576))
	tar -tvf "$TEST_TMP/links.tar" >"$TEST_TMP/links.list"
	test "$(grep -cE "^h.* app/storage/links/l[0-9]{3} link to app/storage/big$" "$TEST_TMP/links.list")" = 100
	grep -E "^-.* $BIG_SIZE .* app/storage/big$" "$TEST_TMP/links.list"
	mkdir "$TEST_TMP/x"
	tar -xf "$TEST_TMP/links.tar" -C "$TEST_TMP/x" app/storage/big app/storage/links/l042
	test "$(sha256sum <"$TEST_TMP/x/app/storage/links/l042" | cut -d" " -f1)" = "$sha"
	test "$(stat -c %h "$TEST_TMP/x/app/storage/big")" = 2
'

test_expect_success 'a sparse 8 EiB file: diff finishes in seconds, lists it not hashed; the tar stores it sparse' '
	fresh
	php_in "$APP" "$SPARSE" | grep -x "$HUGE"
	sld diff "$APP" >"$TEST_TMP/sparse.txt"
	grep -E "^A /app/storage/sparse  $HUGE bytes  not hashed" "$TEST_TMP/sparse.txt"
	sld diff --json "$APP" >"$TEST_TMP/sparse.json"
	test "$(pj "[e.get(\"not_hashed\") for e in j if e[\"path\"] == \"/app/storage/sparse\"][0]" <"$TEST_TMP/sparse.json")" = true
	test "$(pj "[\"sha256\" in e for e in j if e[\"path\"] == \"/app/storage/sparse\"][0]" <"$TEST_TMP/sparse.json")" = false
	sld diff --save "$TEST_TMP/sparse.tar" "$APP" >/dev/null
	size=$(stat -c %s "$TEST_TMP/sparse.tar")
	echo "tar: $size bytes"
	test "$size" -lt 1048576
	tar -tvf "$TEST_TMP/sparse.tar" >"$TEST_TMP/sparse.list"
	grep -E "^-.* $HUGE .* app/storage/sparse$" "$TEST_TMP/sparse.list"
	grep -a "GNU.sparse.realsize=$HUGE" "$TEST_TMP/sparse.tar" >/dev/null
'

test_expect_success 'all three at once: diff and --save finish in seconds, exit 0; the tar stays below the tmpfs use' '
	fresh
	php_in "$APP" "$DEEP" | grep -x "deep ok"
	php_in "$APP" "$LINKS" | grep -x "$BIG_SIZE 101"
	php_in "$APP" "$SPARSE" | grep -x "$HUGE"
	sld diff "$APP" >"$TEST_TMP/all.txt"
	test "$(grep -c "too deep" "$TEST_TMP/all.txt")" = 1
	grep -E "^A /app/storage/sparse  $HUGE bytes  not hashed" "$TEST_TMP/all.txt"
	test "$(grep -cE "^A /app/storage/links/l[0-9]{3}  $BIG_SIZE bytes  sha256:" "$TEST_TMP/all.txt")" = 100
	sld diff --save "$TEST_TMP/all.tar" "$APP" >/dev/null
	size=$(stat -c %s "$TEST_TMP/all.tar")
	echo "tar: $size bytes"
	test "$size" -lt $((BIG_SIZE + 1048576))
	tar -tvf "$TEST_TMP/all.tar" >"$TEST_TMP/all.list"
	test "$(grep -c "^h" "$TEST_TMP/all.list")" = 100
	grep -E "^-.* $HUGE .* app/storage/sparse$" "$TEST_TMP/all.list"
'

test_done
