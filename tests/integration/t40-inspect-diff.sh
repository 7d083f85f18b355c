#!/bin/bash
# slate-bundle inspect (text and --json) and diff (text and --json) on
# bundles of examples/craft-site, a changed copy of it, and image copies
# with an extra rootfs file or a changed description.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
A=$TEST_TMP/a.slate
export SOURCE_DATE_EPOCH=1700000000 TZ=UTC


test_expect_success 'setup: keys, a repinned image copy, the example bundle A' '
	copy_keys &&
	copy_image &&
	build_with "$EXAMPLE" "$IMAGE" "$A" --repin >"$TEST_TMP/a.id" 2>/dev/null &&
	zstd -q -dc "$A" | tar -tf - >"$TEST_TMP/a.list"
'

test_expect_success 'inspect shows id, name, version, created, sequence, signer, image, pins, entries, settings' '
	"$SLATE_BUNDLE" inspect "$A" >"$TEST_TMP/inspect.txt" &&
	php=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[\"php\"])" "$IMAGE/image.json") &&
	fpm=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[\"packages\"][\"php8.2-fpm\"])" "$IMAGE/image.json") &&
	entries=$(($(wc -l <"$TEST_TMP/a.list") - 2)) &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^id +$(cat "$TEST_TMP/a.id")$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^name +craft-site$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^version +unversioned$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^created +2023-11-14T22:13:20Z \(1700000000\)$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^sequence +1700000000$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^signer +fc63122641d0ab11 .*not verified" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^image +php-8\.2, PHP $php$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^ +pin +php8\.2-fpm $fpm$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^ +pin +nginx " &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^entries +$entries$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^size " &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^webroot +web$" &&
	assert_file_has_content "$TEST_TMP/inspect.txt" "^writable +storage, web/cpresources$"
'

test_expect_success 'inspect --json: id, name, version, sequence, signer, image, php, packages, entries, settings' '
	"$SLATE_BUNDLE" inspect --json "$A" >"$TEST_TMP/inspect.json" &&
	python3 - "$TEST_TMP/inspect.json" "$(cat "$TEST_TMP/a.id")" "$IMAGE/image.json" \
		$(($(wc -l <"$TEST_TMP/a.list") - 2)) <<-\EOF
	import json, sys
	j = json.load(open(sys.argv[1]))
	img = json.load(open(sys.argv[3]))
	def eq(a, b):
	    assert a == b, (a, b)
	eq(j["id"], sys.argv[2])
	eq(j["name"], "craft-site")
	eq(j["version"], "unversioned")
	eq(j["created"], 1700000000)
	eq(j["sequence"], 1700000000)
	eq(j["signer"], "fc63122641d0ab11")
	eq(j["image"]["name"], "php-8.2")
	eq(j["image"]["php"], img["php"])
	eq(j["image"]["packages"], img["packages"])
	eq(j["image"]["user"], "www-data")
	eq([p["name"] for p in j["image"]["processes"]], ["php-fpm", "nginx"])
	eq(j["entries"], int(sys.argv[4]))
	eq(j["settings"]["webroot"], "web")
	eq(j["settings"]["writable"], ["storage", "web/cpresources"])
	assert j["size"] > 0 and 0 < j["files"] < j["entries"], j
	EOF
'

test_expect_success 'inspect shows --name, --version and --sequence as built' '
	build_with "$EXAMPLE" "$IMAGE" "$TEST_TMP/named.slate" --name shop --version 1.2.3 --sequence 42 >/dev/null &&
	"$SLATE_BUNDLE" inspect --json "$TEST_TMP/named.slate" |
		python3 -c "import json, sys
j = json.load(sys.stdin)
assert (j[\"name\"], j[\"version\"], j[\"sequence\"]) == (\"shop\", \"1.2.3\", 42), j" &&
	"$SLATE_BUNDLE" inspect "$TEST_TMP/named.slate" >"$TEST_TMP/named.txt" &&
	assert_file_has_content "$TEST_TMP/named.txt" "^name +shop$" &&
	assert_file_has_content "$TEST_TMP/named.txt" "^version +1\.2\.3$" &&
	assert_file_has_content "$TEST_TMP/named.txt" "^sequence +42$"
'

test_expect_success 'inspect of a non-bundle: exit 1; of a missing file: exit 3' '
	echo "not a bundle" >"$TEST_TMP/junk.slate" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" inspect "$TEST_TMP/junk.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "junk\.slate" &&
	test_must_fail --code 3 "$SLATE_BUNDLE" inspect "$TEST_TMP/missing.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "missing\.slate"
'

test_expect_success 'setup: B from a changed copy of the project (one file added, one changed, one removed, one chmod)' '
	cp -a "$EXAMPLE" "$TEST_TMP/site-b" &&
	echo "<?php echo \"new\";" >"$TEST_TMP/site-b/web/new.php" &&
	echo "<p>changed</p>" >>"$TEST_TMP/site-b/templates/index.html" &&
	rm "$TEST_TMP/site-b/templates/about.html" &&
	chmod 0755 "$TEST_TMP/site-b/config/general.php" &&
	build_with "$TEST_TMP/site-b" "$IMAGE" "$TEST_TMP/b.slate" >"$TEST_TMP/b.id"
'

test_expect_success 'diff A B lists +added, -removed, ~changed, and "runtime unchanged"' '
	"$SLATE_BUNDLE" diff "$A" "$TEST_TMP/b.slate" >"$TEST_TMP/diff.txt" &&
	grep -qxF -- "+ app/web/new.php" "$TEST_TMP/diff.txt" &&
	grep -qxF -- "- app/templates/about.html" "$TEST_TMP/diff.txt" &&
	grep -qx "~ app/templates/index\.html (content.*)" "$TEST_TMP/diff.txt" &&
	grep -qxF -- "~ app/config/general.php (mode 0644 -> 0755)" "$TEST_TMP/diff.txt" &&
	grep -qxF -- "1 added, 1 removed, 2 changed; runtime unchanged" "$TEST_TMP/diff.txt" &&
	test "$(wc -l <"$TEST_TMP/diff.txt")" -eq 5
'

test_expect_success 'diff --json: added, removed, changed arrays and runtime_changed false' '
	"$SLATE_BUNDLE" diff --json "$A" "$TEST_TMP/b.slate" >"$TEST_TMP/diff.json" &&
	python3 - "$TEST_TMP/diff.json" "$(cat "$TEST_TMP/a.id")" "$(cat "$TEST_TMP/b.id")" <<-\EOF
	import json, sys
	j = json.load(open(sys.argv[1]))
	paths = lambda k: sorted(e["path"] for e in j[k])
	assert paths("added") == ["app/web/new.php"], j["added"]
	assert paths("removed") == ["app/templates/about.html"], j["removed"]
	assert paths("changed") == ["app/config/general.php", "app/templates/index.html"], j["changed"]
	assert j["runtime_changed"] is False, j
	assert (j["a"], j["b"]) == (sys.argv[2], sys.argv[3]), (j["a"], j["b"])
	EOF
'

test_expect_success 'diff B A reverses added and removed' '
	"$SLATE_BUNDLE" diff "$TEST_TMP/b.slate" "$A" >"$TEST_TMP/rdiff.txt" &&
	grep -qxF -- "- app/web/new.php" "$TEST_TMP/rdiff.txt" &&
	grep -qxF -- "+ app/templates/about.html" "$TEST_TMP/rdiff.txt"
'

test_expect_success 'diff of a bundle with itself: nothing, runtime unchanged' '
	"$SLATE_BUNDLE" diff "$A" "$A" >"$TEST_TMP/same.txt" &&
	echo "0 added, 0 removed, 0 changed; runtime unchanged" >"$TEST_TMP/same.expected" &&
	test_cmp "$TEST_TMP/same.expected" "$TEST_TMP/same.txt"
'

test_expect_success 'diff against an image copy with an extra rootfs file: runtime changed' '
	cp -a "$IMAGE" "$TEST_TMP/php-8.2-motd" &&
	echo "welcome" >"$TEST_TMP/php-8.2-motd/rootfs/etc/motd" &&
	build_with "$EXAMPLE" "$TEST_TMP/php-8.2-motd" "$TEST_TMP/c.slate" >/dev/null &&
	"$SLATE_BUNDLE" diff "$A" "$TEST_TMP/c.slate" >"$TEST_TMP/cdiff.txt" &&
	grep -qxF -- "+ etc/motd" "$TEST_TMP/cdiff.txt" &&
	grep -qxF -- "1 added, 0 removed, 0 changed; runtime changed" "$TEST_TMP/cdiff.txt" &&
	"$SLATE_BUNDLE" diff --json "$A" "$TEST_TMP/c.slate" |
		python3 -c "import json, sys
j = json.load(sys.stdin)
assert j[\"runtime_changed\"] is True and [e[\"path\"] for e in j[\"added\"]] == [\"etc/motd\"], j"
'

test_expect_success 'diff against an image whose description changed (no file changed): runtime changed' '
	cp -a "$IMAGE" "$TEST_TMP/php-8.2-health" &&
	python3 -c "import json, sys
d = json.load(open(sys.argv[1])); d[\"health\"][\"timeout\"] = 31
json.dump(d, open(sys.argv[1], \"w\"), indent=2)" "$TEST_TMP/php-8.2-health/image.json" &&
	build_with "$EXAMPLE" "$TEST_TMP/php-8.2-health" "$TEST_TMP/d.slate" >/dev/null &&
	"$SLATE_BUNDLE" diff "$A" "$TEST_TMP/d.slate" >"$TEST_TMP/ddiff.txt" &&
	grep -qxF -- "0 added, 0 removed, 0 changed; runtime changed" "$TEST_TMP/ddiff.txt"
'

test_expect_success 'diff with a missing bundle: exit 3; with a non-bundle: exit 1' '
	test_must_fail --code 3 "$SLATE_BUNDLE" diff "$A" "$TEST_TMP/missing.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "missing\.slate" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" diff "$TEST_TMP/junk.slate" "$A" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "junk\.slate"
'

test_done
