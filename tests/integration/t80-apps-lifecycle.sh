#!/bin/bash
# The life of an app on examples/craft-site, with real php-fpm and nginx
# over HTTP on loopback through the published port: deploy; what the app
# writes to storage and a webshell dropped with `slate exec` are listed by
# `slate diff` (and kept by --save) and gone after a redeploy; the code tree
# is read-only even for the instance's root; deploy v2, then rollback
# serves v1 again; verify finds a corrupted store file; gc keeps what is
# current; the audit log and the logs; stop, start, rm.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t80life

READ_WEBLOG='echo @file_get_contents("/app/storage/logs/web.log");'
WRITE_STORAGE='var_dump(file_put_contents("/app/storage/note.txt", "written by the instance\n"));'
READ_STORAGE='var_dump(@file_get_contents("/app/storage/note.txt"));'
DROP_SHELL='var_dump(file_put_contents("/app/web/cpresources/shell.php", "<?php echo \"SHELL-RAN:\" . php_uname(); system(\$_GET[\"c\"] ?? \"id\");"));
var_dump(file_put_contents("/app/web/cpresources/hacked.html", "<h1>owned by t80</h1>\n"));'
WRITE_CODE='var_dump(@file_put_contents("/app/web/index.php", "x"));
var_dump(@file_put_contents("/app/vendor/autoload.php", "x", FILE_APPEND));
var_dump(@file_put_contents("/app/web/new.php", "<?php echo 1;"));
var_dump(@mkdir("/app/config/evil"));'

test_expect_success 'setup: bundles v1 (sequence 10) and v2 (sequence 20); a free port' '
	apps_setup v1 v2
	pick_ports 1 18300 18319 >"$TEST_TMP/ports"
'
require_bundles "$V1" "$V2"
PORT=$(head -1 "$TEST_TMP/ports")

test_expect_success 'every app command has --help (exit 0, its usage on stdout)' '
	for c in deploy redeploy rollback releases ps status logs exec diff verify stop start rm port connect gc audit; do
		sl "$c" --help >"$TEST_TMP/help" 2>"$TEST_TMP/help.err"
		grep -q "^usage: slate .*$c" "$TEST_TMP/help" || { echo "$c --help:" >&2; cat "$TEST_TMP/help" "$TEST_TMP/help.err" >&2; exit 1; }
	done
'

test_expect_success 'slate-monitor: --help; links no shared library (libarchive, OpenSSL) unless sanitized' '
	"$SLATE_BUILD/slate-monitor" --help | grep -q "^usage: slate-monitor --root DIR --run-dir DIR APP"
	test_must_fail --code 2 "$SLATE_BUILD/slate-monitor" --root "$ROOT" "$APP"
	test_must_fail --code 2 "$SLATE_BUILD/slate-monitor" --root "$ROOT" --run-dir "$RUN" "Bad/Name"
	readelf -d "$SLATE_BUILD/slate-monitor" >"$TEST_TMP/dyn"
	assert_file_lacks_content "$TEST_TMP/dyn" "libarchive|libssl"
	if ! grep -q libasan "$TEST_TMP/dyn"; then
		test "$(grep -c NEEDED "$TEST_TMP/dyn")" = 0
	fi
	# Static: of OpenSSL only the SHA-256 block functions, no EVP layer.
	if nm "$SLATE_BUILD/slate-monitor" >"$TEST_TMP/syms" 2>/dev/null && ! grep -q libasan "$TEST_TMP/dyn"; then
		grep -q " SHA256_Update" "$TEST_TMP/syms"
		assert_file_lacks_content "$TEST_TMP/syms" " (EVP_|archive_read_)"
	fi
'

test_expect_success 'deploy: release 1 printed; the page is served through the published port (PHP 8.2)' '
	sl deploy --key "$PUB" "$APP" "$V1" -p "127.0.0.1:$PORT:80" >"$TEST_TMP/out"
	test "$(cat "$TEST_TMP/out")" = 1
	test "$(get "$PORT" /)" = 200
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
	grep -q "Craft Site on slate" "$TEST_TMP/body"
	assert_file_lacks_content "$TEST_TMP/body" "Version two"
	test "$(get "$PORT" /about)" = 200
	test "$(get "$PORT" /no-such-page)" = 404
'

test_expect_success 'ps, status, releases and the state files tell: running, release 1, the port, bundle v1' '
	id=$(bundle_id "$V1")
	sl ps --json >"$TEST_TMP/ps.json"
	pj "[a for a in j if a[\"app\"] == \"$APP\"][0]" <"$TEST_TMP/ps.json" >"$TEST_TMP/me.json"
	test "$(pj "j[\"state\"]" <"$TEST_TMP/me.json")" = running
	test "$(pj "j[\"release\"]" <"$TEST_TMP/me.json")" = 1
	test "$(pj "j[\"serving_release\"]" <"$TEST_TMP/me.json")" = 1
	test "$(pj "j[\"bundle\"]" <"$TEST_TMP/me.json")" = "$id"
	test "$(pj "j[\"restarts\"]" <"$TEST_TMP/me.json")" = 0
	pj "j[\"ports\"]" <"$TEST_TMP/me.json" | grep -F "127.0.0.1:$PORT->80" >/dev/null
	sl ps >"$TEST_TMP/ps.txt"
	grep -E "^$APP +running +1 +${id:0:12} " "$TEST_TMP/ps.txt"
	sl status --json "$APP" | pj "j[\"state\"]" | grep -x running >/dev/null
	sl releases "$APP" >"$TEST_TMP/rel.txt"
	grep -E "^\* 1 +${id:0:12} +10 +deploy " "$TEST_TMP/rel.txt"
	test "$(release_count "$APP")" = 1
	test "$(current_release "$APP")" = 1
	test "$(pj "j[\"state\"]" <"$RUN/$APP/running.json")" = running
	test "$(pj "j[\"bundle\"]" <"$RUN/$APP/running.json")" = "$id"
	test -S "$RUN/$APP/monitor.sock"
	test "$(stat -c %a "$RUN")" = 700
	pj "j[\"options\"][\"ports\"]" <"$ROOT/apps/$APP/app.json" | grep -F "127.0.0.1:$PORT:80" >/dev/null
'

test_expect_success 'what the app writes to storage is in the instance and listed by diff' '
	test "$(get "$PORT" "/?marker=t80-storage-mark")" = 200
	php_in "$APP" "$READ_WEBLOG" >"$TEST_TMP/weblog"
	grep -q "GET /?marker=t80-storage-mark 200" "$TEST_TMP/weblog"
	php_in "$APP" "$WRITE_STORAGE" | grep -x "int(24)" >/dev/null
	php_in "$APP" "$READ_STORAGE" | grep "written by the instance" >/dev/null
	sl diff --json "$APP" >"$TEST_TMP/diff.json"
	pj "[e[\"kind\"] for e in j if e[\"path\"] == \"/app/storage/logs/web.log\"]" <"$TEST_TMP/diff.json" | grep -F "[\"added\"]" >/dev/null
	pj "[e[\"size\"] for e in j if e[\"path\"] == \"/app/storage/note.txt\"]" <"$TEST_TMP/diff.json" | grep -x "\[24\]" >/dev/null
	# Nothing of it reached the store.
	test ! -e "$ROOT/store/$(bundle_id "$V1")/root/app/storage/logs/web.log"
	test ! -e "$ROOT/store/$(bundle_id "$V1")/root/app/storage/note.txt"
'

test_expect_success 'a webshell dropped with exec into web/cpresources: listed by diff, kept by --save, PHP not run' '
	php_in "$APP" "$DROP_SHELL" >"$TEST_TMP/drop"
	test "$(grep -c "^int(" "$TEST_TMP/drop")" = 2
	sl diff "$APP" >"$TEST_TMP/diff.txt"
	grep -E "^A /app/web/cpresources/shell\.php +[0-9]+ bytes +sha256:[0-9a-f]{64}" "$TEST_TMP/diff.txt"
	grep -E "^A /app/web/cpresources/hacked\.html " "$TEST_TMP/diff.txt"
	sl diff --json "$APP" >"$TEST_TMP/diff.json"
	test "$(pj "[e[\"kind\"] for e in j if e[\"path\"] == \"/app/web/cpresources/shell.php\"][0]" <"$TEST_TMP/diff.json")" = added
	sha=$(pj "[e[\"sha256\"] for e in j if e[\"path\"] == \"/app/web/cpresources/shell.php\"][0]" <"$TEST_TMP/diff.json")
	sl diff --save "$TEST_TMP/evidence.tar" "$APP" >/dev/null
	tar -tf "$TEST_TMP/evidence.tar" >"$TEST_TMP/tar.list"
	grep -qx "app/web/cpresources/shell.php" "$TEST_TMP/tar.list"
	grep -qx "app/web/cpresources/hacked.html" "$TEST_TMP/tar.list"
	tar -xOf "$TEST_TMP/evidence.tar" app/web/cpresources/shell.php >"$TEST_TMP/shell.copy"
	grep -q "SHELL-RAN" "$TEST_TMP/shell.copy"
	test "$(sha256sum <"$TEST_TMP/shell.copy" | cut -d" " -f1)" = "$sha"
	# Static files in a writable path are served; PHP there never runs.
	test "$(get "$PORT" /cpresources/hacked.html)" = 200
	grep -q "owned by t80" "$TEST_TMP/body"
	code=$(get "$PORT" "/cpresources/shell.php?c=id")
	echo "GET /cpresources/shell.php -> $code"
	case $code in 403|404) ;; *) exit 1 ;; esac
	assert_file_lacks_content "$TEST_TMP/body" "SHELL-RAN|uid="
'

test_expect_success 'a write to the code tree fails, as the image user and as the instance root' '
	php_in "$APP" "$WRITE_CODE" >"$TEST_TMP/w-user"
	test "$(grep -c "^bool(false)$" "$TEST_TMP/w-user")" = 4
	sl exec --user root "$APP" -- php -r "$WRITE_CODE" >"$TEST_TMP/w-root"
	test "$(grep -c "^bool(false)$" "$TEST_TMP/w-root")" = 4
	sl diff --json "$APP" >"$TEST_TMP/diff.json"
	pj "[e[\"path\"] for e in j]" <"$TEST_TMP/diff.json" >"$TEST_TMP/paths"
	assert_file_lacks_content "$TEST_TMP/paths" "/app/(web/index\.php|vendor|web/new\.php|config)"
	test "$(get "$PORT" /)" = 200
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
'

test_expect_success 'redeploy: same release, fresh filesystem: storage writes and the webshell are gone' '
	sl redeploy "$APP" >"$TEST_TMP/out"
	test "$(cat "$TEST_TMP/out")" = 1
	test "$(release_count "$APP")" = 1
	test "$(current_release "$APP")" = 1
	test "$(get "$PORT" /)" = 200
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
	php_in "$APP" "$READ_WEBLOG" >"$TEST_TMP/weblog"
	assert_file_lacks_content "$TEST_TMP/weblog" "t80-storage-mark"
	php_in "$APP" "$READ_STORAGE" | grep -x "bool(false)" >/dev/null
	sl diff "$APP" >"$TEST_TMP/diff.txt"
	assert_file_lacks_content "$TEST_TMP/diff.txt" "cpresources/shell\.php|cpresources/hacked\.html|storage/note\.txt"
	sl diff --json "$APP" >"$TEST_TMP/diff.json"
	pj "[e[\"path\"] for e in j]" <"$TEST_TMP/diff.json" >"$TEST_TMP/paths"
	assert_file_lacks_content "$TEST_TMP/paths" "shell\.php"
	code=$(get "$PORT" /cpresources/shell.php)
	echo "GET /cpresources/shell.php -> $code"
	case $code in 403|404) ;; *) exit 1 ;; esac
	test "$(get "$PORT" /cpresources/hacked.html)" = 404
	sl ps --json | pj "[a[\"state\"] for a in j if a[\"app\"] == \"$APP\"]" | grep -F "[\"running\"]" >/dev/null
'

test_expect_success 'deploy v2: release 2 serves "Version two"' '
	sl deploy --key "$PUB" "$APP" "$V2" >"$TEST_TMP/out"
	test "$(cat "$TEST_TMP/out")" = 2
	test "$(get "$PORT" /)" = 200
	grep -q "Version two" "$TEST_TMP/body"
	test "$(release_count "$APP")" = 2
	test "$(sl status --json "$APP" | pj "j[\"bundle\"]")" = "$(bundle_id "$V2")"
'

test_expect_success 'rollback: release 3 (kind rollback) with the bundle of release 1 serves v1 again' '
	sl rollback "$APP" >"$TEST_TMP/out"
	test "$(cat "$TEST_TMP/out")" = 3
	test "$(get "$PORT" /)" = 200
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
	assert_file_lacks_content "$TEST_TMP/body" "Version two"
	test "$(release_count "$APP")" = 3
	test "$(current_release "$APP")" = 3
	rel=$ROOT/apps/$APP/releases.json
	test "$(pj "j[\"releases\"][2][\"kind\"]" <"$rel")" = rollback
	test "$(pj "j[\"releases\"][2][\"bundle\"]" <"$rel")" = "$(bundle_id "$V1")"
	test "$(pj "[r[\"number\"] for r in j[\"releases\"]]" <"$rel")" = "[1, 2, 3]"
	sl releases "$APP" >"$TEST_TMP/rel.txt"
	cat "$TEST_TMP/rel.txt"
	test "$(grep -cE "^[ *] [0-9]+ " "$TEST_TMP/rel.txt")" = 3
	grep -E "^\* 3 +$(bundle_id "$V1" | cut -c1-12) +10 +rollback " "$TEST_TMP/rel.txt"
	grep -E "^  2 +$(bundle_id "$V2" | cut -c1-12) +20 +deploy " "$TEST_TMP/rel.txt"
	sl ps --json | pj "[a[\"release\"] for a in j if a[\"app\"] == \"$APP\"]" | grep -x "\[3\]" >/dev/null
'

test_expect_success 'verify: 0 on the fresh store; a byte appended to a store file: 1, naming it' '
	sl verify "$APP" >"$TEST_TMP/verify.txt"
	grep -q ", 0 drifted" "$TEST_TMP/verify.txt"
	f=$ROOT/store/$(bundle_id "$V1")/root/app/web/index.php
	cp -p "$f" "$TEST_TMP/index.php.orig"
	printf "x" >>"$f"
	trap "cp -p \"$TEST_TMP/index.php.orig\" \"$f\"" EXIT
	test_must_fail --code 1 sl verify "$APP" >"$TEST_TMP/verify.txt"
	cat "$TEST_TMP/verify.txt"
	grep -qx "app/web/index.php: content changed" "$TEST_TMP/verify.txt"
	grep -q ", 1 drifted" "$TEST_TMP/verify.txt"
	test_must_fail --code 1 sl verify --json "$APP" >"$TEST_TMP/verify.json"
	test "$(pj "[d[\"path\"] for d in j[\"drift\"]]" <"$TEST_TMP/verify.json")" = "[\"app/web/index.php\"]"
	test "$(pj "j[\"ok\"]" <"$TEST_TMP/verify.json")" = false
	cp -p "$TEST_TMP/index.php.orig" "$f"
	trap - EXIT
	# The same bytes back, but the copy was changed: it stays drifted until repaired.
	test_must_fail --code 1 sl redeploy "$APP" 2>/dev/null
	sl verify --repair --key "$PUB" "$APP" "$V1" >/dev/null
	sl verify "$APP" >/dev/null
'

test_expect_success 'gc --keep 1: removes the unused v2 bundle, keeps v1 (current); rollback to 2 is then refused' '
	v1=$(bundle_id "$V1") v2=$(bundle_id "$V2")
	test -d "$ROOT/store/$v2"
	sl gc --keep 1 >"$TEST_TMP/gc.txt"
	cat "$TEST_TMP/gc.txt"
	grep -qx "removed $v2" "$TEST_TMP/gc.txt"
	assert_file_lacks_content "$TEST_TMP/gc.txt" "$v1"
	test ! -e "$ROOT/store/$v2"
	test -d "$ROOT/store/$v1/root"
	cp "$ROOT/apps/$APP/releases.json" "$TEST_TMP/rel.before"
	test_must_fail --code 1 sl rollback "$APP" 2 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	grep -q "garbage collected" "$TEST_TMP/err"
	test_cmp "$TEST_TMP/rel.before" "$ROOT/apps/$APP/releases.json"
	test "$(get "$PORT" /)" = 200
	assert_file_lacks_content "$TEST_TMP/body" "Version two"
	sl verify "$APP" >/dev/null
'

test_expect_success 'audit: deploy, redeploy, rollback lines with their results; --json parses' '
	sl audit "$APP" >"$TEST_TMP/audit.txt"
	cat "$TEST_TMP/audit.txt"
	ts="^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z uid=0 +"
	grep -E "${ts}deploy +$APP +release=1 bundle=$(bundle_id "$V1" | cut -c1-12) ok$" "$TEST_TMP/audit.txt"
	grep -E "${ts}redeploy +$APP +release=1 .* ok$" "$TEST_TMP/audit.txt"
	grep -E "${ts}deploy +$APP +release=2 bundle=$(bundle_id "$V2" | cut -c1-12) ok$" "$TEST_TMP/audit.txt"
	grep -E "${ts}rollback +$APP +release=3 .* ok$" "$TEST_TMP/audit.txt"
	grep -E "${ts}rollback +$APP +release=- .*garbage collected" "$TEST_TMP/audit.txt"
	grep -E "${ts}verify +$APP .* drift$" "$TEST_TMP/audit.txt"
	grep -E "${ts}diff +$APP .* saved$" "$TEST_TMP/audit.txt"
	sl audit --json "$APP" | python3 -c "import json, sys; [json.loads(l) for l in sys.stdin]"
	sl audit >"$TEST_TMP/audit-all.txt"
	grep -E "${ts}gc +- +release=- bundle=- removed 1$" "$TEST_TMP/audit-all.txt"
'

test_expect_success 'logs -n 5: five timestamped lines of the instance and of the monitor' '
	sl logs -n 5 "$APP" >"$TEST_TMP/logs.txt"
	cat "$TEST_TMP/logs.txt"
	test "$(wc -l <"$TEST_TMP/logs.txt")" = 5
	test "$(grep -cE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z (out|err|slate) " "$TEST_TMP/logs.txt")" = 5
	sl logs -n 1000 "$APP" >"$TEST_TMP/logs-all.txt"
	grep -q " slate serving release 3$" "$TEST_TMP/logs-all.txt"
	grep -q "GET /?marker=t80-storage-mark" "$TEST_TMP/logs-all.txt"
'

test_expect_success 'stop: the port closes, ps says stopped; start: served again, release 3' '
	mpid=$(monitor_pid "$APP")
	test -n "$mpid"
	kids=$(descendants "$mpid")
	sl stop "$APP"
	wait_refused "$PORT"
	assert_no_leftovers "$mpid" $kids
	test "$(sl status --json "$APP" | pj "j[\"state\"]")" = stopped
	sl ps | grep -E "^$APP +stopped +3 "
	sl start "$APP"
	wait_http "$PORT"
	assert_file_lacks_content "$TEST_TMP/body" "Version two"
	test "$(sl status --json "$APP" | pj "j[\"state\"]")" = running
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 3
'

test_expect_success 'stop and start back to back (three times): the app serves after each start' '
	for i in 1 2 3; do
		sl stop "$APP"
		sl start "$APP"
		wait_http "$PORT"
		test "$(sl status --json "$APP" | pj "j[\"state\"]")" = running
	done
'

test_expect_success 'rm: the app, its monitor and instance are gone; the port refuses' '
	mpid=$(monitor_pid "$APP")
	kids=$(descendants "$mpid")
	sl rm "$APP"
	wait_refused "$PORT"
	assert_no_leftovers "$mpid" $kids
	test ! -e "$ROOT/apps/$APP"
	test ! -e "$RUN/$APP"
	sl ps >"$TEST_TMP/ps.txt"
	assert_file_lacks_content "$TEST_TMP/ps.txt" "^$APP "
	test_must_fail --code 1 sl status "$APP"
'

test_done
