#!/bin/bash
# The tamper alarm, on real instances of examples/craft-site: a webshell
# written into web/cpresources raises an event within 2 s (`slate events`,
# with its path and sha256), its copy is kept as evidence under that hash,
# the audit log and the app's log have it, and the operator's hook gets the
# event as JSON on its stdin; a harmless file raises nothing, a .txt that
# opens with <?php does; a hostile name is escaped; --heal makes a dropped
# file unreachable within a bounded time (the time is printed); a flood of
# 10,000 files leaves bounded events and evidence and a monitor that keeps
# answering; a crashed instance leaves a tar of what it wrote before its
# restart. With T87_FIGURES=FILE, the measured times are appended to FILE.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t87tamper
HOOK_OUT=$TEST_TMP/hook.jsonl

SHELL_CODE='<?php system($_GET["c"] ?? "id"); // t87 webshell'
WRITE='$r = file_put_contents($argv[1], $argv[2]); printf("%.6f %d\n", microtime(true), $r);'

# put PATH CONTENT: written by the app user inside the instance.
put() { php_in "$APP" "$WRITE" "$1" "$2"; }

events_json() { sl events --json "$APP"; }

# wait_event PYEXPR: an event e for which PYEXPR holds appears (at most
# $2 seconds, default 2); prints it.
wait_event() {
	local i limit=$((${2:-2} * 20))
	for i in $(seq "$limit"); do
		events_json | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if eval(sys.argv[1]):
        print(json.dumps(e)); sys.exit(0)
sys.exit(1)' "$1" && return 0
		sleep 0.05
	done
	echo "no event with $1 after ${2:-2} s; events:" >&2
	events_json >&2
	app_log_tail "$APP"
	return 1
}

test_expect_success 'setup: bundle v1; a free port' '
	apps_setup v1
	pick_ports 1 18870 18889 >"$TEST_TMP/ports"
'
require_bundles "$V1"
PORT=$(head -1 "$TEST_TMP/ports")

test_expect_success 'deploy with --on-tamper (kept with the app); events is empty; bad usage refused' '
	sl deploy --key "$PUB" "$APP" "$V1" -p "127.0.0.1:$PORT:80" \
		--on-tamper "cat >>$HOOK_OUT; echo; echo t87-hook-ran" >/dev/null
	pj "j[\"options\"][\"on_tamper\"]" <"$ROOT/apps/$APP/app.json" | grep -q "t87-hook-ran"
	test "$(get "$PORT" /)" = 200
	test -z "$(events_json)"
	sl events --help | grep -q "^usage: slate .*events"
	test_must_fail --code 2 sl events
	test_must_fail --code 2 sl events --bogus "$APP"
	test_must_fail --code 1 sl events t87-no-such-app
'

test_expect_success 'a webshell in web/cpresources: an event within 2 s with path and sha256; evidence; audit; log; hook' '
	put /app/web/cpresources/x.php "$SHELL_CODE" >"$TEST_TMP/put"
	sha=$(printf "%s" "$SHELL_CODE" | sha256sum | cut -d" " -f1)
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"] == \"/app/web/cpresources/x.php\" and e.get(\"sha256\") == \"$sha\"" >"$TEST_TMP/ev"
	cat "$TEST_TMP/ev"
	test "$(pj "j[\"reason\"]" <"$TEST_TMP/ev")" = php-name
	test "$(pj "j[\"release\"]" <"$TEST_TMP/ev")" = 1
	test "$(pj "j[\"evidence\"]" <"$TEST_TMP/ev")" = "evidence/$sha"
	ev=$ROOT/apps/$APP/evidence/$sha
	test "$(sha256sum <"$ev" | cut -d" " -f1)" = "$sha"
	test "$(stat -c "%a %u" "$ev")" = "600 0"
	test "$(stat -c "%a %u" "$ROOT/apps/$APP/evidence")" = "700 0"
	test "$(stat -c "%a" "$ROOT/apps/$APP/events.jsonl")" = 600
	sl audit "$APP" >"$TEST_TMP/audit"
	grep -E "tamper +$APP .*php-name /app/web/cpresources/x\.php sha256:$sha" "$TEST_TMP/audit"
	grep -q "tamper: php-name /app/web/cpresources/x.php sha256:$sha" "$ROOT/apps/$APP/logs/current.log"
	sl events "$APP" | grep -E "tamper +php-name +/app/web/cpresources/x\.php +sha256:$sha"
	for i in $(seq 50); do grep -q t87-hook-ran "$ROOT/apps/$APP/logs/current.log" && break; sleep 0.1; done
	grep -q "hook t87-hook-ran" "$ROOT/apps/$APP/logs/current.log"
	head -1 "$HOOK_OUT" | pj "j[\"path\"]" | grep -qx /app/web/cpresources/x.php
	head -1 "$HOOK_OUT" | pj "j[\"app\"]" | grep -qx "$APP"
'

test_expect_success 'harmless files raise nothing; a .txt that opens with <?php does; a symlink x.php is never followed' '
	put /app/web/cpresources/site.css "body { color: red }" >/dev/null
	put /app/storage/notes.txt "just notes" >/dev/null
	put /app/storage/inc.txt "<?php echo 1; // t87 include" >/dev/null
	sl exec "$APP" -- php -r "symlink(\"/etc/passwd\", \"/app/storage/link.php\");"
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"] == \"/app/storage/inc.txt\" and e[\"reason\"] == \"php-code\""
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"] == \"/app/storage/link.php\" and e[\"type\"] == \"symlink\""
	sleep 0.5
	events_json >"$TEST_TMP/all"
	assert_file_lacks_content "$TEST_TMP/all" "site\.css|notes\.txt|root:x:0"
'

test_expect_success 'a hostile name is escaped: one line, no control byte' '
	sl exec "$APP" -- php -r "file_put_contents(\"/app/storage/a\nb\x1b[31m.php\", \"x\");"
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"].startswith(\"/app/storage/a\\\\x0ab\\\\x1b\")"
	sl events "$APP" >"$TEST_TMP/text"
	# One line per event (at its creation, and at its close with content).
	test "$(grep -c "storage/a" "$TEST_TMP/text")" = "$(events_json | grep -c "storage/a")"
	! grep -q "^b" "$TEST_TMP/text"
	! grep -q "$(printf "\033")" "$TEST_TMP/text"
'

test_expect_success '--heal: a dropped file is unreachable over HTTP within 10 s; same release; a second heal within 10 s is suppressed' '
	sl redeploy --heal "$APP" >/dev/null
	wait_running "$APP"
	test "$(get "$PORT" /cpresources/h.txt)" = 404
	pid_before=$(sl status --json "$APP" | pj "j[\"instance_pid\"]")
	put /app/web/cpresources/h.txt "<?php echo 1; // t87 heal" >"$TEST_TMP/put"
	written=$(cut -d" " -f1 "$TEST_TMP/put")
	served=0
	for i in $(seq 1000); do
		code=$(curl -s -m 2 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$PORT/cpresources/h.txt")
		case $code in 200) served=$((served + 1)) ;; 404) break ;; esac
		sleep 0.01
	done
	gone=$(date +%s.%N)
	test "$code" = 404
	echo "foothold: $(python3 -c "print(round(($gone - $written) * 1000))") ms from the write to 404 ($served GETs served it)" |
		tee -a "${T87_FIGURES:-/dev/null}"
	python3 -c "import sys; sys.exit(0 if $gone - $written < 10 else 1)"
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"] == \"/app/web/cpresources/h.txt\" and e[\"heal\"] == \"started\""
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 1
	test "$(sl status --json "$APP" | pj "j[\"instance_pid\"]")" != "$pid_before"
	test "$(get "$PORT" /)" = 200
	put /app/web/cpresources/h2.php "x" >/dev/null
	wait_event "e[\"kind\"] == \"tamper\" and e[\"path\"] == \"/app/web/cpresources/h2.php\" and e[\"heal\"].startswith(\"suppressed\")"
	sl redeploy --no-heal "$APP" >/dev/null
'

test_expect_success 'a flood of 10,000 files: bounded events and evidence; the monitor keeps answering' '
	wait_running "$APP"
	bg_start "$TEST_TMP/flood.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" exec "$APP" -- php -r "
		@mkdir(\"/app/storage/flood\");
		for (\$i = 0; \$i < 10000; \$i++)
			file_put_contents(\"/app/storage/flood/f\$i.php\", \"<?php echo \$i;\");
		echo \"flood done\n\";"
	flood=$BG_PID
	n=0
	while kill -0 "$flood" 2>/dev/null && [ "$n" -lt 600 ]; do
		timeout 5 "$SLATE" --root "$ROOT" --run-dir "$RUN" status --json "$APP" | pj "j[\"state\"]" | grep -qx running
		n=$((n + 1))
		sleep 0.1
	done
	! kill -0 "$flood" 2>/dev/null
	grep -q "flood done" "$TEST_TMP/flood.out"
	echo "flood: $n status calls answered during it" | tee -a "${T87_FIGURES:-/dev/null}"
	test "$(php_in "$APP" "echo count(glob(\"/app/storage/flood/*\"));")" = 10000
	# The window ends: the rest is counted in one event.
	wait_event "e[\"kind\"] == \"suppressed\" and e[\"count\"] > 1000" 15 >"$TEST_TMP/sup"
	cat "$TEST_TMP/sup"
	dir=$ROOT/apps/$APP
	ls "$dir/evidence" | grep -v "^crash-" | wc -l >"$TEST_TMP/nfiles"
	test "$(cat "$TEST_TMP/nfiles")" -le 64
	test "$(du -sb "$dir/evidence" | cut -f1)" -le $((17 << 20))
	test "$(cat "$dir/events.jsonl" "$dir/events.jsonl.1" 2>/dev/null | wc -c)" -le $((2 << 20))
	test "$(events_json | grep -c "/app/storage/flood/")" -le 100
	test "$(get "$PORT" /)" = 200
	sl status --json "$APP" | pj "j[\"state\"]" | grep -qx running
'

test_expect_success 'a crash (the instance init killed): what it wrote is kept as a tar before the restart' '
	wait_running "$APP"
	put /app/storage/crash-marker.txt "written before the crash" >/dev/null
	restarts=$(sl status --json "$APP" | pj "j[\"restarts\"]")
	ipid=$(sl status --json "$APP" | pj "j[\"instance_pid\"]")
	kill -KILL "$ipid"
	wait_event "e[\"kind\"] == \"crash\" and e.get(\"evidence\")" 5 >"$TEST_TMP/crash"
	tar=$ROOT/apps/$APP/$(pj "j[\"evidence\"]" <"$TEST_TMP/crash")
	for i in $(seq 100); do
		test "$(sl status --json "$APP" | pj "j[\"restarts\"]")" -gt "$restarts" && break
		sleep 0.1
	done
	test "$(sl status --json "$APP" | pj "j[\"restarts\"]")" -gt "$restarts"
	for i in $(seq 100); do test -s "$tar" && break; sleep 0.1; done
	tar -tf "$tar" >"$TEST_TMP/list"
	grep -qx app/storage/crash-marker.txt "$TEST_TMP/list"
	grep -qx .slate-diff/diff.json "$TEST_TMP/list"
	test "$(tar -xOf "$tar" app/storage/crash-marker.txt)" = "written before the crash"
	test "$(stat -c "%a %u" "$tar")" = "600 0"
	wait_running "$APP"
	wait_http "$PORT"
'

test_done
