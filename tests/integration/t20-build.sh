#!/bin/bash
# slate-bundle build + verify of examples/craft-site: the printed id is the
# manifest's SHA-256, the archive is exactly the manifest's entries in
# order, builds are byte-reproducible, and verify trusts only the given
# keys. The image is a copy of images/php-8.2 repinned to what this host
# has installed (the committed pins may be older than the host's PHP).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
TEST_KEY_ID=fc63122641d0ab11
export SOURCE_DATE_EPOCH=1700000000 TZ=UTC
committed_image_sum=$(sha256sum <"$SLATE_TOP/images/php-8.2/image.json")

forge() { python3 "$SLATE_TOP/tests/forge.py" "$@"; }

test_expect_success 'setup: test keys and a copy of the image' '
	copy_keys &&
	copy_image
'

test_expect_success 'build the example (repinned image copy): exit 0, prints the bundle id' '
	bundle_build "$EXAMPLE" "$GOOD" --repin >"$TEST_TMP/good.id" 2>"$TEST_TMP/build.err" &&
	test "$(wc -l <"$TEST_TMP/good.id")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/good.id" "^[0-9a-f]{64}$" &&
	test -z "$(grep -v "^slate-bundle: repin: " "$TEST_TMP/build.err")" &&
	zstd -q -dc "$GOOD" >"$TEST_TMP/good.tar" &&
	tar -xOf "$TEST_TMP/good.tar" .slate/manifest.json >"$TEST_TMP/manifest.json" &&
	tar -tf "$TEST_TMP/good.tar" >"$TEST_TMP/good.list"
'

test_expect_success 'a build against the repinned image prints the id and nothing else' '
	bundle_build "$EXAMPLE" "$TEST_TMP/again.slate" >"$TEST_TMP/again.id" 2>"$TEST_TMP/again.err" &&
	test_cmp "$TEST_TMP/good.id" "$TEST_TMP/again.id" &&
	test ! -s "$TEST_TMP/again.err"
'

test_expect_success 'the bundle id is the sha256 of the manifest member' '
	test "$(sha256sum <"$TEST_TMP/manifest.json" | cut -d" " -f1)" = "$(cat "$TEST_TMP/good.id")"
'

test_expect_success 'the first members are the manifest and its 72-byte signature member (key id, signature)' '
	sed -n 1,2p "$TEST_TMP/good.list" >"$TEST_TMP/head.list" &&
	printf ".slate/manifest.json\n.slate/manifest.sig\n" >"$TEST_TMP/head.expected" &&
	test_cmp "$TEST_TMP/head.expected" "$TEST_TMP/head.list" &&
	test "$(tar -xOf "$TEST_TMP/good.tar" .slate/manifest.sig | wc -c)" -eq 72
'

test_expect_success 'the manifest is canonical, integer-only JSON naming the signer and the image' '
	python3 - "$TEST_TMP/manifest.json" "$TEST_KEY_ID" <<-\EOF
	import json, sys
	raw = open(sys.argv[1], "rb").read()
	m = json.loads(raw)
	again = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
	assert raw == again, "not canonical"
	def no_floats(v):
	    assert not isinstance(v, float), v
	    for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else []):
	        no_floats(x)
	no_floats(m)
	assert m["format"] == 1 and m["signer"] == sys.argv[2], (m["format"], m["signer"])
	assert m["name"] == "craft-site" and m["created"] == 1700000000 and m["sequence"] == 1700000000
	assert m["image"]["name"] == "php-8.2" and m["image"]["packages"]
	assert m["settings"]["writable"] == ["storage", "web/cpresources"], m["settings"]
	for e in m["entries"]:
	    keys = {"dir": ["mode", "path", "type"], "file": ["mode", "path", "sha256", "size", "type"],
	            "symlink": ["mode", "path", "target", "type"]}[e["type"]]
	    assert sorted(e) == keys, e
	    assert not e["path"].startswith("/") and ".." not in e["path"].split("/"), e
	EOF
'

test_expect_success 'the archive holds exactly the manifest entries, image first, then app/' '
	python3 -c "import json, sys
for e in json.load(open(sys.argv[1]))[\"entries\"]: print(e[\"path\"])" "$TEST_TMP/manifest.json" >"$TEST_TMP/entries.list" &&
	sed -e 1,2d -e "s|/\$||" "$TEST_TMP/good.list" >"$TEST_TMP/members.list" &&
	test_cmp "$TEST_TMP/entries.list" "$TEST_TMP/members.list" &&
	first_app=$(grep -n "^app\$" "$TEST_TMP/members.list" | cut -d: -f1) &&
	test "$first_app" -gt 1 &&
	test -z "$(sed -n "$first_app,\$p" "$TEST_TMP/members.list" | grep -v "^app\(/\|\$\)")" &&
	grep -qx "usr/sbin/php-fpm8.2" "$TEST_TMP/members.list" &&
	grep -qx "app/web/index.php" "$TEST_TMP/members.list"
'

test_expect_success 'every member has uid/gid 0 and the created time as mtime' '
	tar --numeric-owner --full-time -tvf "$TEST_TMP/good.tar" >"$TEST_TMP/good.tv" &&
	test -z "$(grep -v " 0/0 " "$TEST_TMP/good.tv")" &&
	test -z "$(grep -v " 2023-11-14 22:13:20 " "$TEST_TMP/good.tv")"
'

test_expect_success 'verify with the test key: exit 0, prints the same id' '
	"$SLATE_BUNDLE" verify --key "$PUB" "$GOOD" >"$TEST_TMP/verify.id" &&
	test_cmp "$TEST_TMP/good.id" "$TEST_TMP/verify.id"
'

test_expect_success 'a second build is byte-identical' '
	cmp "$GOOD" "$TEST_TMP/again.slate"
'

test_expect_success 'the same project elsewhere, with fresh mtimes, gives the same bytes' '
	mkdir "$TEST_TMP/elsewhere" &&
	cp -r "$EXAMPLE" "$TEST_TMP/elsewhere/craft-site" &&
	touch "$TEST_TMP/elsewhere/craft-site/web/index.php" &&
	bundle_build "$TEST_TMP/elsewhere/craft-site" "$TEST_TMP/elsewhere.slate" >/dev/null &&
	cmp "$GOOD" "$TEST_TMP/elsewhere.slate"
'

test_expect_success '--threads 1 and --threads 2 give the same bytes as the default' '
	bundle_build "$EXAMPLE" "$TEST_TMP/t1.slate" --threads 1 >/dev/null &&
	bundle_build "$EXAMPLE" "$TEST_TMP/t2.slate" --threads 2 >/dev/null &&
	cmp "$TEST_TMP/t1.slate" "$TEST_TMP/t2.slate" &&
	cmp "$GOOD" "$TEST_TMP/t1.slate"
'

test_expect_success 'another --sequence gives another bundle, with that sequence signed in' '
	bundle_build "$EXAMPLE" "$TEST_TMP/seq.slate" --sequence 4242 >"$TEST_TMP/seq.id" &&
	test_must_fail cmp -s "$GOOD" "$TEST_TMP/seq.slate" &&
	test "$(cat "$TEST_TMP/seq.id")" != "$(cat "$TEST_TMP/good.id")" &&
	zstd -q -dc "$TEST_TMP/seq.slate" | tar -xOf - .slate/manifest.json >"$TEST_TMP/seq.json" &&
	assert_file_has_content "$TEST_TMP/seq.json" "\"sequence\":4242," &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/seq.slate" >/dev/null
'

test_expect_success 'verify --keys DIR trusts every *.pub in DIR' '
	mkdir "$TEST_TMP/trusted" &&
	cp "$OTHER_PUB" "$PUB" "$TEST_TMP/trusted/" &&
	"$SLATE_BUNDLE" verify --keys "$TEST_TMP/trusted" "$GOOD" >"$TEST_TMP/keys.id" &&
	test_cmp "$TEST_TMP/good.id" "$TEST_TMP/keys.id"
'

test_expect_success 'verify tries every --key (the signer given last)' '
	"$SLATE_BUNDLE" verify --key "$OTHER_PUB" --key "$PUB" "$GOOD" >"$TEST_TMP/two.id" &&
	test_cmp "$TEST_TMP/good.id" "$TEST_TMP/two.id"
'

test_expect_success 'verify with only an untrusted key: exit 1, "unknown key" naming the signer' '
	verify_refuses "$GOOD" "unknown key" "$TEST_KEY_ID" -- --key "$OTHER_PUB"
'

test_expect_success 'verify --keys DIR without the signer: exit 1, "unknown key"' '
	mkdir "$TEST_TMP/untrusted" &&
	cp "$OTHER_PUB" "$TEST_TMP/untrusted/" &&
	verify_refuses "$GOOD" "unknown key" -- --keys "$TEST_TMP/untrusted"
'

test_expect_success 'a flipped bit in the signature: exit 1, "bad signature"' '
	forge sig-flip "$GOOD" "$TEST_TMP/sig-flip.slate" &&
	verify_refuses "$TEST_TMP/sig-flip.slate" "bad signature"
'

test_expect_success 'the manifest re-signed by another key: exit 1, "unknown key"; "bad signature" when both keys are trusted' '
	forge resign-other "$GOOD" "$TEST_TMP/resign-other.slate" --key "$OTHER" &&
	verify_refuses "$TEST_TMP/resign-other.slate" "unknown key" "cff9af40260904dd" &&
	verify_refuses "$TEST_TMP/resign-other.slate" "bad signature" -- --key "$PUB" --key "$OTHER_PUB"
'

test_expect_success 'verify of a file that is not a bundle: exit 1; of a missing file: exit 3' '
	: >"$TEST_TMP/empty.slate" &&
	verify_refuses "$TEST_TMP/empty.slate" "empty\.slate" &&
	echo "hello" | zstd -q >"$TEST_TMP/hello.slate" &&
	verify_refuses "$TEST_TMP/hello.slate" "hello\.slate" &&
	test_must_fail --code 3 "$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/missing.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "missing\.slate"
'

test_expect_success 'the committed image description was not touched' '
	test "$(sha256sum <"$SLATE_TOP/images/php-8.2/image.json")" = "$committed_image_sum"
'

test_done
