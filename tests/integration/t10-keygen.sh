#!/bin/bash
# slate-bundle keygen: Ed25519 key pairs that stock openssl reads, created
# exclusively (never overwriting, never through a symlink), and the key id
# that manifests name (first 8 bytes of SHA-256 of the raw public key).
. "$(dirname "$0")/../lib.sh"
FIXTURES=$SLATE_TOP/tests/fixtures

# key_id PUBFILE: the key id, computed with openssl and sha256sum only.
key_id() {
	openssl pkey -pubin -in "$1" -outform DER | tail -c 32 | sha256sum | cut -c1-16
}

test_expect_success 'keygen writes a 0600 private key and FILE.pub, prints a 16-hex key id' '
	"$SLATE_BUNDLE" keygen -o "$TEST_TMP/k" >"$TEST_TMP/k.id" &&
	test "$(stat -c %a "$TEST_TMP/k")" = 600 &&
	test -f "$TEST_TMP/k.pub" &&
	test "$(wc -l <"$TEST_TMP/k.id")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/k.id" "^[0-9a-f]{16}$"
'

test_expect_success 'the private key is PKCS#8 PEM, the public one SubjectPublicKeyInfo PEM' '
	assert_file_has_content "$TEST_TMP/k" "^-----BEGIN PRIVATE KEY-----$" &&
	assert_file_has_content "$TEST_TMP/k.pub" "^-----BEGIN PUBLIC KEY-----$" &&
	openssl pkey -in "$TEST_TMP/k" -noout &&
	openssl pkey -pubin -in "$TEST_TMP/k.pub" -noout &&
	openssl pkey -in "$TEST_TMP/k" -text -noout >"$TEST_TMP/k.txt" &&
	assert_file_has_content "$TEST_TMP/k.txt" "ED25519"
'

test_expect_success 'FILE.pub is the public half of FILE' '
	openssl pkey -in "$TEST_TMP/k" -pubout >"$TEST_TMP/k.derived.pub" &&
	test_cmp "$TEST_TMP/k.derived.pub" "$TEST_TMP/k.pub"
'

test_expect_success 'the printed id is the first 8 bytes of sha256 of the raw public key' '
	key_id "$TEST_TMP/k.pub" >"$TEST_TMP/k.id.expected" &&
	test_cmp "$TEST_TMP/k.id.expected" "$TEST_TMP/k.id"
'

test_expect_success 'a key signs what openssl verifies (the key pair works with stock tools)' '
	printf "slate-manifest-v1\n{}" >"$TEST_TMP/msg" &&
	openssl pkeyutl -sign -rawin -inkey "$TEST_TMP/k" -in "$TEST_TMP/msg" -out "$TEST_TMP/sig" &&
	test "$(stat -c %s "$TEST_TMP/sig")" -eq 64 &&
	openssl pkeyutl -verify -pubin -inkey "$TEST_TMP/k.pub" -rawin -in "$TEST_TMP/msg" \
		-sigfile "$TEST_TMP/sig"
'

test_expect_success 'two keygens make two different keys' '
	"$SLATE_BUNDLE" keygen -o "$TEST_TMP/k2" >"$TEST_TMP/k2.id" &&
	test "$(cat "$TEST_TMP/k.id")" != "$(cat "$TEST_TMP/k2.id")"
'

test_expect_success 'keygen refuses to overwrite a key, and leaves both files unchanged' '
	cp "$TEST_TMP/k" "$TEST_TMP/k.before" && cp "$TEST_TMP/k.pub" "$TEST_TMP/k.pub.before" &&
	test_must_fail "$SLATE_BUNDLE" keygen -o "$TEST_TMP/k" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "exists" &&
	cmp "$TEST_TMP/k" "$TEST_TMP/k.before" &&
	cmp "$TEST_TMP/k.pub" "$TEST_TMP/k.pub.before" &&
	test "$(stat -c %a "$TEST_TMP/k")" = 600 &&
	test ! -s "$TEST_TMP/out"
'

test_expect_success 'keygen refuses when only FILE.pub exists, and creates nothing' '
	echo "keep me" >"$TEST_TMP/lone.pub" &&
	test_must_fail "$SLATE_BUNDLE" keygen -o "$TEST_TMP/lone" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "lone\.pub" &&
	test ! -e "$TEST_TMP/lone" &&
	test "$(cat "$TEST_TMP/lone.pub")" = "keep me"
'

test_expect_success 'keygen does not write through a symlink at FILE' '
	ln -s "$TEST_TMP/victim" "$TEST_TMP/link" &&
	test_must_fail "$SLATE_BUNDLE" keygen -o "$TEST_TMP/link" 2>"$TEST_TMP/err" &&
	test ! -e "$TEST_TMP/victim" &&
	test ! -e "$TEST_TMP/link.pub"
'

test_expect_success 'keygen into a missing directory is a system error (exit 3)' '
	test_must_fail --code 3 "$SLATE_BUNDLE" keygen -o "$TEST_TMP/no/such/dir/k" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no/such/dir/k"
'

test_expect_success 'keygen --help exits 0 and describes the command' '
	"$SLATE_BUNDLE" keygen --help >"$TEST_TMP/help" &&
	assert_file_has_content "$TEST_TMP/help" "^usage: slate-bundle keygen -o FILE"
'

test_expect_success 'keygen with bad arguments exits 2 with a usage line' '
	for args in "" "-o" "$TEST_TMP/x extra" "--bogus -o $TEST_TMP/x" "-o $TEST_TMP/x extra"; do
		# shellcheck disable=SC2086
		test_must_fail --code 2 "$SLATE_BUNDLE" keygen $args 2>"$TEST_TMP/err" &&
		assert_file_has_content "$TEST_TMP/err" "usage: slate-bundle keygen" || exit 1
	done &&
	test ! -e "$TEST_TMP/x" && test ! -e "$TEST_TMP/x.pub"
'

test_expect_success 'the fixture keys are Ed25519 keys with their fixed ids' '
	for k in test other; do
		openssl pkey -in "$FIXTURES/$k.key" -noout &&
		openssl pkey -pubin -in "$FIXTURES/$k.key.pub" -noout &&
		openssl pkey -in "$FIXTURES/$k.key" -pubout | cmp - "$FIXTURES/$k.key.pub" || exit 1
	done &&
	test "$(key_id "$FIXTURES/test.key.pub")" = fc63122641d0ab11 &&
	test "$(key_id "$FIXTURES/other.key.pub")" = cff9af40260904dd
'

test_done
