#!/bin/bash
# What an instance writes reaches the operator's terminal escaped, by the one
# escaper (slate_escape): a log line with ESC and bidi controls in `slate
# logs`, file names with ESC, bidi controls and invalid UTF-8 in `slate diff`
# (text, and --json that stays valid ASCII JSON). A live app of
# examples/craft-site with one more page that logs such a line.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t51esc
ESC=$(printf '\033')
RLO=$(printf '\342\200\256') # U+202E
LRM=$(printf '\342\200\216') # U+200E
SRC=$TEST_TMP/src-esc BUNDLE=$TEST_TMP/esc.slate

MAKE_FILES='foreach (["\x1b[31mred", "evil\u{202e}gnp.php", "mark\u{200e}x", "bad\xff\xfe"] as $n)
	var_dump(file_put_contents("/app/storage/$n", "x"));'

test_expect_success 'setup: the example with web/log.php (logs ESC and bidi controls); deployed; a free port' '
	apps_setup &&
	cp -a "$SLATE_TOP/examples/craft-site" "$SRC" &&
	printf "%s\n" "<?php" "error_log(\"esc-line \\x1b[2J\\x1b]0;owned\\x07 rlo \\u{202e}txt lrm \\u{200e} c1 \\u{9b}\");" \
		"echo \"logged\\n\";" >"$SRC/web/log.php" &&
	build_bundle "$SRC" "$BUNDLE" 10 &&
	pick_ports 1 18340 18359 >"$TEST_TMP/ports" &&
	sl deploy --key "$PUB" "$APP" "$BUNDLE" -p "127.0.0.1:$(cat "$TEST_TMP/ports"):80" >/dev/null
'
require_bundles "$BUNDLE"
PORT=$(cat "$TEST_TMP/ports")

# php-fpm escapes C0 controls in what its workers log itself, but not the
# bidi controls; any other process of the instance (nginx, a master) writes
# raw bytes, as does this line appended to the log like one of theirs.
test_expect_success 'slate logs: log lines with ESC, OSC, BEL, C1 and bidi controls come out escaped' '
	test "$(get "$PORT" /log.php)" = 200 &&
	printf "2026-01-01T00:00:00.000Z err raw-line \033[2J\033]0;owned\007 \342\200\256x \302\233 \233\n" \
		>>"$ROOT/apps/$APP/logs/current.log" &&
	for i in $(seq 50); do sl logs -n 1000 "$APP" >"$TEST_TMP/logs" && grep -q esc-line "$TEST_TMP/logs" && break; sleep 0.1; done &&
	assert_file_has_content "$TEST_TMP/logs" "esc-line .* rlo \\\\u202etxt lrm \\\\u200e c1" &&
	assert_file_has_content "$TEST_TMP/logs" "err raw-line \\\\x1b\[2J\\\\x1b\]0;owned\\\\x07 \\\\u202ex \\\\u009b \\\\x9b\$" &&
	! grep -q "$ESC" "$TEST_TMP/logs" && ! grep -q "$RLO" "$TEST_TMP/logs" && ! grep -q "$LRM" "$TEST_TMP/logs" &&
	! grep -q "$(printf "\a")" "$TEST_TMP/logs"
'

test_expect_success 'slate diff: file names with ESC, bidi controls and invalid UTF-8 come out escaped' '
	php_in "$APP" "$MAKE_FILES" >/dev/null &&
	sl diff "$APP" >"$TEST_TMP/diff.txt" &&
	assert_file_has_content "$TEST_TMP/diff.txt" "^A /app/storage/\\\\x1b\[31mred  1 bytes" &&
	assert_file_has_content "$TEST_TMP/diff.txt" "^A /app/storage/evil\\\\u202egnp\.php  1 bytes" &&
	assert_file_has_content "$TEST_TMP/diff.txt" "^A /app/storage/mark\\\\u200ex  1 bytes" &&
	assert_file_has_content "$TEST_TMP/diff.txt" "^A /app/storage/bad\\\\xff\\\\xfe  1 bytes" &&
	! grep -q "$ESC" "$TEST_TMP/diff.txt" && ! grep -q "$RLO" "$TEST_TMP/diff.txt" &&
	! grep -q "$LRM" "$TEST_TMP/diff.txt"
'

test_expect_success 'slate diff --json: valid ASCII JSON, the names recoverable, the invalid one marked escaped' '
	sl diff --json "$APP" >"$TEST_TMP/diff.json" &&
	! LC_ALL=C grep -q "[^[:print:][:space:]]" "$TEST_TMP/diff.json" &&
	python3 -c "import json, sys
d = {e[\"path\"]: e for e in json.load(open(sys.argv[1]))}
for p in (\"/app/storage/\\x1b[31mred\", \"/app/storage/evil\\u202egnp.php\", \"/app/storage/mark\\u200ex\"):
    assert p in d and not d[p].get(\"escaped\"), (p, sorted(d))
assert d[\"/app/storage/bad\\\\xff\\\\xfe\"][\"escaped\"] is True, sorted(d)" "$TEST_TMP/diff.json"
'

test_expect_success 'cleanup: rm the app' '
	sl rm "$APP" >/dev/null
'

test_done
