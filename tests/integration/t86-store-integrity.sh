#!/bin/bash
# The store's integrity: a bundle file whose head matches a stored bundle
# is used only if it is the very file that verified (else it is verified in
# full: a corrupt body is refused); a downgrade is refused before anything
# is unpacked or locked; a store copy changed on the host (a file added,
# changed) is reported by `slate verify`, never used again by redeploy,
# start, deploy or run (which unpack afresh when they have the bundle
# file), and `slate verify --repair` restores it; gc never removes a bundle
# that an instance or an in-flight deploy uses, and `rm` waits for a
# deploy in progress.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t86store
RMAPP=t86rm

# flip_byte FILE OFFSET: invert every bit of one byte, in place.
flip_byte() {
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# page_is PORT v1|v2|v3: GET / is 200 and shows that version.
page_is() {
	local code
	code=$(get "$1" /)
	[ "$code" = 200 ] || { echo "GET / on $1: $code" >&2; app_log_tail "$APP"; return 1; }
	case $2 in
	v1) if grep -q "Version t" "$TEST_TMP/body"; then echo "not v1" >&2; return 1; fi ;;
	v2) grep -q "Version two" "$TEST_TMP/body" || { echo "not v2" >&2; return 1; } ;;
	v3) grep -q "Version three" "$TEST_TMP/body" || { echo "not v3" >&2; return 1; } ;;
	esac
}

# php_run BUNDLE CODE: `slate run` of BUNDLE with `php -r CODE`.
php_run() { sl run --key "$PUB" --name t86run "$1" -- php -r "$2"; }

test_expect_success 'setup: bundles v1 (10), v2 (20), v3 (40), slow (25); a free port' '
	apps_setup v1 v2 v3 slow
	pick_ports 1 18400 18419 >"$TEST_TMP/ports"
'
require_bundles "$V1" "$V2" "$V3" "$SLOW"
PORT=$(head -1 "$TEST_TMP/ports")
S=$ROOT/store

test_expect_success 'a downgrade is refused before anything is unpacked: no copy, no temporary, no lock file' '
	test "$(sl deploy --key "$PUB" "$APP" "$V2" -p "127.0.0.1:$PORT:80")" = 1
	page_is "$PORT" v2
	test_must_fail --code 1 sl deploy --key "$PUB" "$APP" "$V1" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	grep -q "downgrade" "$TEST_TMP/err"
	ls -A "$S" >"$TEST_TMP/store.ls"
	cat "$TEST_TMP/store.ls"
	bundle_id "$V2" >"$TEST_TMP/store.want"
	test_cmp "$TEST_TMP/store.want" "$TEST_TMP/store.ls"
'

test_expect_success 'a file whose head matches a stored bundle but whose body is corrupt: deploy and run refuse (exit 1)' '
	test "$(sl deploy --key "$PUB" --allow-downgrade "$APP" "$V1")" = 2
	size=$(stat -c %s "$V1")
	head -c $((size - 64)) "$V1" >"$TEST_TMP/trunc.slate"
	cp "$V1" "$TEST_TMP/flip.slate"
	flip_byte "$TEST_TMP/flip.slate" $((size * 3 / 4))
	for b in trunc flip; do
		test_must_fail --code 1 sl deploy --key "$PUB" --allow-downgrade "$APP" "$TEST_TMP/$b.slate" 2>"$TEST_TMP/err"
		cat "$TEST_TMP/err"
		test "$(release_count "$APP")" = 2
		test_must_fail --code 1 php_run "$TEST_TMP/$b.slate" "echo \"RAN\n\";" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
		cat "$TEST_TMP/err"
		assert_file_lacks_content "$TEST_TMP/out" RAN
	done
	page_is "$PORT" v1
	cp "$V1" "$TEST_TMP/copy.slate"
	php_run "$TEST_TMP/copy.slate" "echo \"RAN\n\";" >"$TEST_TMP/out"
	grep -qx RAN "$TEST_TMP/out"
	test -z "$(find "$S" -maxdepth 1 -name "*.lock" -o -maxdepth 1 -name ".tmp-*")"
'

test_expect_success 'a file added to the store copy: verify reports it as added (exit 1), and redeploy refuses it' '
	v1=$(bundle_id "$V1")
	sl verify "$APP" >"$TEST_TMP/verify.txt"
	grep -q ", 0 drifted" "$TEST_TMP/verify.txt"
	printf "<?php echo \"ADDED\";\n" >"$S/$v1/root/app/web/added.php"
	test_must_fail --code 1 sl verify "$APP" >"$TEST_TMP/verify.txt"
	cat "$TEST_TMP/verify.txt"
	grep -qx "app/web/added.php: added" "$TEST_TMP/verify.txt"
	test_must_fail --code 1 sl verify --json "$APP" >"$TEST_TMP/verify.json"
	test "$(pj "[d[\"path\"] for d in j[\"drift\"]]" <"$TEST_TMP/verify.json")" = "[\"app/web/added.php\"]"
	test_must_fail --code 1 sl redeploy "$APP" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	grep -q "drifted" "$TEST_TMP/err"
	test "$(release_count "$APP")" = 2
'

test_expect_success 'run with the bundle file unpacks a drifted copy afresh (the drifted one kept aside as evidence)' '
	v1=$(bundle_id "$V1")
	php_run "$V1" "echo file_exists(\"/app/web/added.php\") ? \"yes\n\" : \"no\n\";" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	grep -qx no "$TEST_TMP/out"
	test ! -e "$S/$v1/root/app/web/added.php"
	ls -d "$S"/.drifted-"$v1"-*/root/app/web/added.php
	sl verify "$APP" >/dev/null
'

test_expect_success 'deploy with the bundle file unpacks a drifted copy afresh: the new instance does not have the added file' '
	v1=$(bundle_id "$V1")
	printf "<?php echo \"ADDED\";\n" >"$S/$v1/root/app/web/added.php"
	test "$(sl deploy --key "$PUB" --allow-downgrade "$APP" "$V1")" = 3
	test "$(get "$PORT" /added.php)" != 200 || { cat "$TEST_TMP/body"; exit 1; }
	page_is "$PORT" v1
	test ! -e "$S/$v1/root/app/web/added.php"
	sl verify "$APP" >/dev/null
'

test_expect_success 'start refuses a changed store copy (the monitor does not run it); verify names the file' '
	v1=$(bundle_id "$V1")
	sl stop "$APP"
	printf "x" >>"$S/$v1/root/app/web/index.php"
	sl start "$APP"
	sleep 2
	test "$(sl status --json "$APP" | pj "j[\"state\"]")" != running
	grep -q "drifted" "$ROOT/apps/$APP/logs/current.log"
	test "$(get "$PORT" /)" != 200
	test_must_fail --code 1 sl verify "$APP" >"$TEST_TMP/verify.txt"
	grep -qx "app/web/index.php: content changed" "$TEST_TMP/verify.txt"
'

test_expect_success 'verify --repair APP BUNDLE restores the copy (only from the current bundle); start then serves it' '
	test_must_fail --code 1 sl verify --repair --key "$PUB" "$APP" "$V2" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	test_must_fail --code 1 sl verify "$APP" >/dev/null
	test_must_fail --code 1 sl verify --repair --key "$PUB" "$APP" "$TEST_TMP/flip.slate" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	sl verify --repair --key "$PUB" "$APP" "$V1" >"$TEST_TMP/repair.txt"
	cat "$TEST_TMP/repair.txt"
	grep -q ", 0 drifted" "$TEST_TMP/repair.txt"
	sl verify "$APP" >/dev/null
	sl stop "$APP"
	sl start "$APP"
	wait_running "$APP"
	wait_http "$PORT"
	page_is "$PORT" v1
'

test_expect_success 'gc keeps a bundle that a `slate run` instance uses, and removes it once the run ended' '
	v3=$(bundle_id "$V3")
	bg_start "$TEST_TMP/run3.out" timeout -k 5 60 "$SLATE" --root "$ROOT" --run-dir "$RUN" run --key "$PUB" --name t86gc \
		"$V3" -- php -r "echo \"UP\n\"; sleep(30);"
	pid=$BG_PID
	for i in $(seq 100); do grep -q UP "$TEST_TMP/run3.out" && break; sleep 0.1; done
	grep -q UP "$TEST_TMP/run3.out"
	sl gc --keep 0 >"$TEST_TMP/gc.txt"
	cat "$TEST_TMP/gc.txt"
	test -d "$S/$v3/root"
	assert_file_lacks_content "$TEST_TMP/gc.txt" "removed $v3"
	kill -TERM "$pid"
	wait_gone "$pid"
	sl gc --keep 0 >"$TEST_TMP/gc.txt"
	cat "$TEST_TMP/gc.txt"
	grep -qx "removed $v3" "$TEST_TMP/gc.txt"
	test ! -e "$S/$v3"
'

test_expect_success 'deploys racing `gc --keep 1` in a loop never lose their bundle' '
	# gc in a loop until told to stop (bounded: 20,000 runs, 120 s).
	rm -f "$TEST_TMP/gc.stop"
	(
		n=0 t0=$SECONDS
		while [ ! -e "$TEST_TMP/gc.stop" ] && [ "$n" -lt 20000 ] && [ $((SECONDS - t0)) -lt 120 ]; do
			"$SLATE" --root "$ROOT" --run-dir "$RUN" gc --keep 1 >>"$TEST_TMP/gc.loop" 2>&1 || true
			n=$((n + 1))
		done
		echo "$n" >"$TEST_TMP/gc.count"
	) &
	gcpid=$!
	echo "$gcpid" >>"$BG_PIDS"
	for i in 1 2 3 4 5 6; do
		if [ $((i % 2)) = 1 ]; then b=$V3 v=v3; else b=$V2 v=v2; fi
		sl deploy --key "$PUB" --allow-downgrade --timeout 20 "$APP" "$b" >"$TEST_TMP/race.out" 2>"$TEST_TMP/race.err" ||
			{ cat "$TEST_TMP/race.err" >&2; touch "$TEST_TMP/gc.stop"; exit 1; }
		page_is "$PORT" "$v"
		test ! -e "$TEST_TMP/gc.count" || { echo "the gc loop ended before deploy $i" >&2; exit 1; }
	done
	touch "$TEST_TMP/gc.stop"
	wait "$gcpid"
	echo "$(cat "$TEST_TMP/gc.count") gc runs, $(grep -c "^removed" "$TEST_TMP/gc.loop") removals, $(grep -c "^in use" "$TEST_TMP/gc.loop") skipped in use"
	grep -q "^removed" "$TEST_TMP/gc.loop"
	sl verify "$APP" >/dev/null
'

test_expect_success 'rm of an app whose deploy is in progress waits for it (the app lock), then removes it all' '
	test "$(sl deploy --key "$PUB" "$RMAPP" "$V1")" = 1
	slow=$(bundle_id "$SLOW")
	bg_start "$TEST_TMP/slowdeploy.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" "$RMAPP" "$SLOW"
	dpid=$BG_PID
	for i in $(seq 200); do test -d "$S/$slow/root" && break; sleep 0.05; done
	test -d "$S/$slow/root"
	kill -0 "$dpid"
	sl rm "$RMAPP"
	rc=0
	wait "$dpid" || rc=$?
	cat "$TEST_TMP/slowdeploy.out"
	test "$rc" = 0
	test ! -e "$ROOT/apps/$RMAPP"
	sl audit "$RMAPP" >"$TEST_TMP/audit.txt"
	cat "$TEST_TMP/audit.txt"
	tail -n 2 "$TEST_TMP/audit.txt" | head -n 1 | grep -qE "deploy +$RMAPP +release=2 .* ok$"
	tail -n 1 "$TEST_TMP/audit.txt" | grep -qE "rm +$RMAPP .* ok$"
'

test_done
